//! Leader election with a `coordination.k8s.io` Lease, so two replicas never both act.
//!
//! Timing follows client-go's leader election, scaled to the configured lease duration
//! (defaults: lease 15 s, renew deadline 10 s, retry period 2 s). The leader renews every retry
//! period and stops acting once it has gone a renew deadline without a successful renewal.
//! Because the deadline is shorter than the lease, the old leader has stopped before another
//! replica may take the expired Lease (the difference is the margin for the time the
//! controller needs to wind down). A standby judges expiry on its own monotonic clock, from
//! when it first saw the holder's latest renewTime, so clock skew between nodes does not
//! matter. Every Lease API call has a timeout, so a hung
//! connection cannot hold the leader past its deadline. Updates use the Lease's
//! resourceVersion, so two candidates cannot both win.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

/// The timing of the election, all derived from the lease duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease holds without renewal; another replica may take it afterwards.
    pub lease_duration: Duration,
    /// The leader stops acting when it has not renewed for this long.
    pub renew_deadline: Duration,
    /// Pause between renewals (leader) and between attempts to acquire (standby).
    pub retry_period: Duration,
    /// Longest wait for one Lease API call.
    pub call_timeout: Duration,
}

impl Timing {
    /// client-go's proportions (15 s / 10 s / 2 s) applied to `lease_duration`. Below one
    /// second the lease is raised to one second: the Lease stores whole seconds, and a zero
    /// duration would let any replica take it at once.
    pub fn for_lease(lease_duration: Duration) -> Self {
        let lease_duration = lease_duration.max(Duration::from_secs(1));
        let renew_deadline = lease_duration * 2 / 3;
        let retry_period = lease_duration * 2 / 15;
        Timing {
            lease_duration,
            renew_deadline,
            retry_period,
            // Two retry periods: long enough for a busy API server, short enough that a hung
            // call leaves time for another attempt before the renew deadline.
            call_timeout: retry_period * 2,
        }
    }

    /// Whole seconds for `LeaseSpec.leaseDurationSeconds`, rounded up so that other replicas
    /// never see a shorter lease than the one this replica's deadline is computed from.
    fn lease_seconds(&self) -> i32 {
        let secs =
            self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }
}

/// What a leader does next, `since_renewed` after the start of its last successful renewal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewStep {
    /// Try to renew now; give up on the attempt after `timeout`.
    Renew { timeout: Duration },
    /// The renew deadline has passed: stop acting as leader.
    Stop,
}

/// The leader's pure timing decision. An attempt never runs past the renew deadline, so the
/// leader stops in time even when the API server does not answer at all.
pub fn renew_step(timing: &Timing, since_renewed: Duration) -> RenewStep {
    match timing.renew_deadline.checked_sub(since_renewed) {
        Some(left) if !left.is_zero() => RenewStep::Renew {
            timeout: left.min(timing.call_timeout),
        },
        _ => RenewStep::Stop,
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// When the last successful acquire or renewal started: the Lease's renewTime is taken
    /// then, so the lease expires for the others `lease_duration` after this instant.
    renewed_at: Mutex<Option<Instant>>,
    /// The other holder's Lease as last seen while waiting (see [`may_take`]).
    observed: Mutex<Option<Observation>>,
}

/// Another replica's Lease as this replica last saw it, and when (on this replica's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    holder: String,
    renew_time: Option<MicroTime>,
    seen_at: Instant,
}

/// Whether `identity` may take `lease` at `now`, and what it has now observed. A free Lease or
/// our own may be taken at once. Another holder's Lease may be taken once its renewTime has
/// stayed the same for a whole lease duration *measured on this replica's monotonic clock*
/// from when this replica first saw that renewTime (as client-go does), so a clock skew
/// between replicas cannot make a live leader's Lease look expired.
pub fn may_take(
    lease: &LeaseSpec,
    identity: &str,
    observed: Option<&Observation>,
    now: Instant,
) -> (bool, Option<Observation>) {
    let holder = lease.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return (true, None);
    }
    let duration = Duration::from_secs(lease.lease_duration_seconds.unwrap_or(15).max(0) as u64);
    match observed {
        Some(o) if o.holder == holder && o.renew_time == lease.renew_time => {
            (now.duration_since(o.seen_at) > duration, Some(o.clone()))
        }
        _ => (
            false,
            Some(Observation {
                holder: holder.to_string(),
                renew_time: lease.renew_time.clone(),
                seen_at: now,
            }),
        ),
    }
}

/// Why one Lease attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("Lease API call timed out after {0:?}")]
    Timeout(Duration),
}

/// Runs one API call with a timeout.
async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, LeaseError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LeaseError::Timeout(limit)),
    }
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, lease_duration: Duration) -> Self {
        LeaderElector {
            api,
            name: name.to_string(),
            identity: identity.to_string(),
            timing: Timing::for_lease(lease_duration),
            renewed_at: Mutex::new(None),
            observed: Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    fn renewed_at(&self) -> Option<Instant> {
        // A poisoned lock only means a panic elsewhere; the instant inside is still valid.
        *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_renewed_at(&self, at: Instant) {
        *self.renewed_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// One attempt to acquire or renew, each API call bounded by `call_timeout`. `Ok(true)`
    /// when we hold the lease afterwards.
    pub async fn try_acquire(&self, call_timeout: Duration) -> Result<bool, LeaseError> {
        // Taken before any request: the renewTime written below is no later than this
        // instant, so our deadline never ends after the lease the others see.
        let started = Instant::now();
        let now = Timestamp::now();
        let duration_s = self.timing.lease_seconds();
        let won = match bounded(call_timeout, self.api.get_opt(&self.name)).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(duration_s),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match bounded(
                    call_timeout,
                    self.api.create(&PostParams::default(), &lease),
                )
                .await
                {
                    Ok(_) => true,
                    Err(LeaseError::Api(kube::Error::Api(s))) if s.code == 409 => false,
                    Err(e) => return Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                let take = {
                    // A poisoned lock only means a panic elsewhere; the record is still valid.
                    let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
                    let (take, seen) =
                        may_take(spec, &self.identity, observed.as_ref(), Instant::now());
                    *observed = seen;
                    take
                };
                if !take {
                    return Ok(false);
                }
                if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    spec.acquire_time = Some(MicroTime(now));
                    spec.holder_identity = Some(self.identity.clone());
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(duration_s);
                match bounded(
                    call_timeout,
                    self.api.replace(&self.name, &PostParams::default(), &lease),
                )
                .await
                {
                    Ok(_) => true,
                    Err(LeaseError::Api(kube::Error::Api(s))) if s.code == 409 => false,
                    Err(e) => return Err(e),
                }
            }
        };
        if won {
            self.set_renewed_at(started);
        }
        Ok(won)
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut logged = false;
        loop {
            match self.try_acquire(self.timing.call_timeout).await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    return;
                }
                Ok(false) => {
                    if !logged {
                        tracing::info!(lease = %self.name, "another replica leads; waiting");
                        logged = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election failed; retrying")
                }
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews every retry period; returns (leadership lost, stop acting) when another replica
    /// holds the Lease or when no renewal succeeded for the renew deadline. Call it only after
    /// [`Self::acquire`]; without a successful acquire it returns at once.
    pub async fn keep_renewing(&self) {
        loop {
            let Some(renewed_at) = self.renewed_at() else {
                tracing::error!(lease = %self.name, "keep_renewing called without holding the lease");
                return;
            };
            // Never sleep past the deadline: the check below must run when it passes.
            let left = self
                .timing
                .renew_deadline
                .saturating_sub(renewed_at.elapsed());
            tokio::time::sleep(self.timing.retry_period.min(left)).await;
            let timeout = match renew_step(&self.timing, renewed_at.elapsed()) {
                RenewStep::Renew { timeout } => timeout,
                RenewStep::Stop => {
                    tracing::error!(
                        lease = %self.name,
                        renew_deadline = ?self.timing.renew_deadline,
                        "lease not renewed within the renew deadline; stopping before it expires"
                    );
                    return;
                }
            };
            match self.try_acquire(timeout).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(lease = %self.name, "lease taken by another replica");
                    return;
                }
                Err(e) => tracing::warn!(lease = %self.name, error = %e, "lease renewal failed"),
            }
        }
    }

    /// Gives the lease up so a successor need not wait for it to expire.
    pub async fn release(&self) {
        let limit = self.timing.call_timeout;
        if let Ok(Some(mut lease)) = bounded(limit, self.api.get_opt(&self.name)).await {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                match bounded(
                    limit,
                    self.api.replace(&self.name, &PostParams::default(), &lease),
                )
                .await
                {
                    Ok(_) => tracing::info!(lease = %self.name, "released leadership"),
                    Err(e) => {
                        tracing::warn!(lease = %self.name, error = %e, "could not release lease")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    fn spec(holder: &str, renewed_s_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::now() - SignedDuration::from_secs(renewed_s_ago),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn free_and_own_leases_are_taken_at_once() {
        let now = Instant::now();
        assert!(may_take(&LeaseSpec::default(), "a", None, now).0);
        assert!(may_take(&spec("a", 1), "a", None, now).0);
    }

    #[test]
    fn another_holders_lease_expires_a_lease_duration_after_this_replica_saw_it() {
        let t0 = Instant::now();
        // Even a renewTime far in the past (a skewed clock, or a stale Lease) is first only
        // observed: the standby does not trust the holder's clock.
        let stale = spec("b", 3600);
        let (take, seen) = may_take(&stale, "a", None, t0);
        assert!(!take);
        let s = Duration::from_secs;
        let (take, seen) = may_take(&stale, "a", seen.as_ref(), t0 + s(10));
        assert!(!take, "10 s < the 15 s lease");
        let (take, _) = may_take(&stale, "a", seen.as_ref(), t0 + s(16));
        assert!(take, "unchanged for more than 15 s on our clock");
    }

    #[test]
    fn a_renewal_or_a_new_holder_restarts_the_wait() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let first = spec("b", 0);
        let (_, seen) = may_take(&first, "a", None, t0);
        let mut renewed = first.clone();
        renewed.renew_time = Some(MicroTime(Timestamp::now() + SignedDuration::from_secs(2)));
        let (take, seen2) = may_take(&renewed, "a", seen.as_ref(), t0 + s(14));
        assert!(!take);
        let (take, _) = may_take(&renewed, "a", seen2.as_ref(), t0 + s(20));
        assert!(!take, "renewed at t0+14 s: not expired until t0+29 s");
        let mut other = renewed.clone();
        other.holder_identity = Some("c".into());
        let (take, _) = may_take(&other, "a", seen2.as_ref(), t0 + s(40));
        assert!(!take, "a new holder is observed afresh");
    }

    #[test]
    fn timing_matches_client_go_and_scales_with_the_lease() {
        let t = Timing::for_lease(Duration::from_secs(15));
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert_eq!(t.retry_period, Duration::from_secs(2));
        assert_eq!(t.call_timeout, Duration::from_secs(4));
        let t = Timing::for_lease(Duration::from_secs(60));
        assert_eq!(t.renew_deadline, Duration::from_secs(40));
        assert_eq!(t.retry_period, Duration::from_secs(8));
        for secs in [1, 2, 7, 15, 30, 137] {
            let t = Timing::for_lease(Duration::from_secs(secs));
            assert!(t.retry_period < t.renew_deadline, "{t:?}");
            assert!(t.renew_deadline < t.lease_duration, "{t:?}");
        }
        // A sub-second lease is raised to one second, never written as 0 s.
        let t = Timing::for_lease(Duration::from_millis(100));
        assert_eq!(t.lease_duration, Duration::from_secs(1));
        assert_eq!(t.lease_seconds(), 1);
        assert_eq!(
            Timing::for_lease(Duration::from_millis(1500)).lease_seconds(),
            2
        );
    }

    #[test]
    fn leader_stops_at_the_renew_deadline_before_the_lease_expires() {
        let t = Timing::for_lease(Duration::from_secs(15));
        let s = Duration::from_secs;
        // Fresh renewal: a full call timeout.
        assert_eq!(renew_step(&t, s(2)), RenewStep::Renew { timeout: s(4) });
        // Near the deadline the attempt gets only what is left of it.
        assert_eq!(
            renew_step(&t, Duration::from_millis(8_500)),
            RenewStep::Renew {
                timeout: Duration::from_millis(1_500)
            }
        );
        // At and after the deadline (10 s): stop, although the lease (15 s) has not expired.
        assert_eq!(renew_step(&t, s(10)), RenewStep::Stop);
        assert_eq!(renew_step(&t, s(12)), RenewStep::Stop);
        assert_eq!(renew_step(&t, s(15)), RenewStep::Stop);
        // Whatever the moment, an attempt never ends after the deadline.
        for ms in (0..12_000).step_by(250) {
            let since = Duration::from_millis(ms);
            if let RenewStep::Renew { timeout } = renew_step(&t, since) {
                assert!(
                    since + timeout <= t.renew_deadline,
                    "{since:?} + {timeout:?}"
                );
            }
        }
    }
}
