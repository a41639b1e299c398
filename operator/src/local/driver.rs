//! The reconcile loop of one Stream on a local fleet: the operator's own
//! [`step`](crate::reconcile::step) (observe → decide → apply → settle) over a [`FleetBackend`],
//! then a report as log lines and an in-memory status. IO.
//!
//! Time runs `speed` times faster for the control loop: the planner's clock is wall seconds
//! × speed and the loop comes back after `requeue_after / speed`, so a Stream's windows and
//! intervals (all in trace seconds) match `surge-load replay --speed` on the same trace.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use tracing::{info, warn};

use super::config::FleetError;
use super::fleet::Fleet;
use super::observed::{applied_from_report, newly_ready, observed_from_fleet};
use super::status::RelayFailure;
use crate::build::Target;
use crate::config::OperatorConfig;
use crate::context::{Published, lock};
use crate::crd::{Stream, StreamStatus};
use crate::decide::{Applied, Clock, Outcome, Planned, StreamMemory};
use crate::gather::scrape_all;
use crate::integrity::KeySecret;
use crate::metrics::Metrics;
use crate::observe::Observed;
use crate::reconcile::{Backend, record_reconcile, step};
use crate::report::record_metrics;
use crate::scrape::Scraper;

/// Why a Stream's loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The first apply's relays must come up: a relay that dies at once will not do better.
    #[error("{0}")]
    DiedAtStart(RelayFailure),
}

/// One Stream run locally, shared with the API.
pub struct LocalStream {
    /// As loaded; the loop keeps its own copy with the status.
    pub stream: Stream,
    pub target: Target,
    pub fleet: Arc<Fleet>,
    /// The last status, exactly as it would be written to the Stream.
    pub status: Mutex<Option<StreamStatus>>,
    /// The latest events, as the terminal view shows them.
    pub events: Mutex<std::collections::VecDeque<String>>,
}

/// What every Stream's loop shares: settings, the scraper and the metrics.
pub struct Driver {
    pub cfg: OperatorConfig,
    pub scraper: Scraper,
    pub metrics: Arc<Metrics>,
    /// Trace seconds per wall second.
    pub speed: f64,
    published: Mutex<HashMap<(String, String), Published>>,
}

impl Driver {
    pub fn new(cfg: OperatorConfig, scraper: Scraper, metrics: Arc<Metrics>, speed: f64) -> Self {
        Driver {
            cfg,
            scraper,
            metrics,
            speed,
            published: Mutex::new(HashMap::new()),
        }
    }

    /// Reconciles `local` until an error (a relay that dies at the first apply, a fleet that
    /// refuses a Deployment); runs until dropped otherwise.
    pub async fn drive(&self, local: &LocalStream) -> Result<(), DriveError> {
        let backend = FleetBackend {
            driver: self,
            fleet: &local.fleet,
            applied_once: AtomicBool::new(false),
            ready: Mutex::new(BTreeSet::new()),
            warned_key: AtomicBool::new(false),
        };
        let started = Instant::now();
        let mut stream = local.stream.clone();
        let mut memory = StreamMemory::default();
        loop {
            let began = Instant::now();
            let clock = Clock {
                seconds: started.elapsed().as_secs_f64() * self.speed,
                now: Timestamp::now(),
            };
            // Any error ends the loop, so the memory kept before applying is not needed.
            let keep = |_| {};
            let target = &local.target;
            let result = step(&backend, &stream, target, clock, &self.cfg, &memory, keep).await;
            record_reconcile(&self.metrics, began, result.is_ok());
            let outcome = result?;
            memory = outcome.memory.clone();
            let requeue = outcome.requeue_after;
            if let Some(status) = self.report(local, outcome, clock.seconds) {
                stream.status = Some(status);
            }
            tokio::time::sleep(requeue.div_f64(self.speed)).await;
        }
    }

    /// Logs the events (and keeps the latest for the view), sets the gauges and keeps the
    /// status; returns it. `trace_seconds`: the loop's clock.
    fn report(
        &self,
        local: &LocalStream,
        outcome: Outcome,
        trace_seconds: f64,
    ) -> Option<StreamStatus> {
        let name = &local.target.stream;
        for note in &outcome.events {
            match note.type_ {
                EventType::Warning => warn!("{name}: {} {}", note.reason, note.note),
                EventType::Normal => info!("{name}: {} {}", note.reason, note.note),
            }
            let line = super::view::event_line(trace_seconds, name, note.reason, &note.note);
            super::view::remember(&mut lock(&local.events), line);
        }
        let status = outcome.status?;
        if outcome.gauges {
            let origin_region = local.stream.spec.origin_region().unwrap_or_default();
            let (metrics, published) = (&self.metrics, &self.published);
            record_metrics(metrics, published, &local.target, origin_region, &status);
        }
        *lock(&local.status) = Some(status.clone());
        Some(status)
    }
}

/// Observing and applying on a local fleet.
struct FleetBackend<'a> {
    driver: &'a Driver,
    fleet: &'a Fleet,
    applied_once: AtomicBool,
    /// Relays seen Ready, to log each one becoming Ready once.
    ready: Mutex<BTreeSet<String>>,
    /// The warning that a named key Secret is not read here was given.
    warned_key: AtomicBool,
}

impl FleetBackend<'_> {
    /// Where the Stream's key files are.
    fn key_dir(&self, target: &Target) -> std::path::PathBuf {
        let log_dir = &self.fleet.config().log_dir;
        super::keys::key_dir(log_dir, &target.namespace, &target.stream)
    }
}

impl Backend for FleetBackend<'_> {
    type Error = DriveError;

    // Local relays run on no node: nothing to read for their advertised host.
    async fn observe(
        &self,
        target: &Target,
        _host_ports: bool,
        key: Option<&KeySecret>,
    ) -> Result<Observed, DriveError> {
        let status = self.fleet.observe();
        let (fresh, now) = newly_ready(&lock(&self.ready), &status);
        let speed = self.driver.speed;
        for relay in status.relays().filter(|r| fresh.contains(&r.name)) {
            // In trace time, as the planner's messages.
            let wall = relay.ready_after.unwrap_or_default().as_secs_f64();
            let also = if speed == 1.0 {
                String::new()
            } else {
                format!(" ({wall:.1} s wall)")
            };
            let after = wall * speed;
            info!(
                "relay {} ready on {} after {after:.1} s{also}",
                relay.name, relay.address
            );
        }
        *lock(&self.ready) = now;
        let d = self.driver;
        let mut observed = observed_from_fleet(&status, d.speed);
        // Each relay's admin port, at its own address (as a pod IP in a cluster).
        let port = d.cfg.relay_admin_port;
        let scrapes = scrape_all(&d.scraper, port, &observed.pods, target, &d.metrics).await;
        observed.scrapes = scrapes.outcomes;
        observed.integrity = scrapes.integrity;
        observed.upstreams = scrapes.upstreams;
        observed.rooms = scrapes.rooms;
        observed.overflow_viewers = scrapes.overflow_viewers;
        if let Some(key) = key {
            // No Secrets here: a key file of the Stream's own stands for any Secret.
            if !key.generated && !self.warned_key.swap(true, Ordering::Relaxed) {
                warn!(
                    "{}: local mode ignores spec.integrity.signingKeySecretRef ({}): it signs with {}",
                    target.stream,
                    key.name,
                    self.key_dir(target)
                        .join(crate::integrity::SIGNING_ITEM)
                        .display()
                );
            }
            observed.signing_key = Some(super::keys::read_or_create(&self.key_dir(target)));
        }
        Ok(observed)
    }

    async fn apply(&self, target: &Target, planned: &Planned) -> Result<Applied, DriveError> {
        let dir = self.key_dir(target);
        if let Some(map) = &planned.verify_keys
            && let Err(e) = super::keys::write_verify_keys(&dir, map)
        {
            warn!(
                "{}: could not write the trusted keys in {}: {e}",
                target.stream,
                dir.display()
            );
        }
        let objects = super::keys::localize(&planned.objects, &dir);
        let report = self
            .fleet
            .apply(&objects, &planned.peers_services, &planned.deletion_costs)
            .await?;
        let first = !self.applied_once.swap(true, Ordering::Relaxed);
        if let (true, Some(failure)) = (first, report.failures.first()) {
            return Err(DriveError::DiedAtStart(failure.clone()));
        }
        Ok(applied_from_report(&report))
    }
}

/// The scraper's timeout: a relay on loopback answers at once; a stuck one must not hold a
/// sped-up loop for long.
pub fn scrape_timeout(interval: Duration, speed: f64) -> Duration {
    interval
        .div_f64(speed)
        .clamp(Duration::from_millis(200), Duration::from_secs(2))
}
