//! What a ReplicaSet and the kubelet decide, for the local fleet. Pure.

use std::time::Duration;

/// A running relay of a Deployment, as a scale-down weighs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub ready: bool,
    /// Its `controller.kubernetes.io/pod-deletion-cost`, if set.
    pub deletion_cost: Option<String>,
    /// Start order within the Deployment (higher: newer).
    pub serial: u64,
}

/// The `excess` relays to remove, in order, as a ReplicaSet picks them: not Ready first,
/// then the lowest pod-deletion cost (unset or unparsable: 0), then the newest.
pub fn victims(candidates: &[Candidate], excess: usize) -> Vec<String> {
    let mut ranked: Vec<&Candidate> = candidates.iter().collect();
    ranked.sort_by_key(|c| {
        let cost = c
            .deletion_cost
            .as_deref()
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        (c.ready, cost, std::cmp::Reverse(c.serial))
    });
    ranked
        .into_iter()
        .take(excess)
        .map(|c| c.name.clone())
        .collect()
}

/// How long to wait before replacing a relay after `crashes_in_a_row` crashes: `base`,
/// doubling with each further crash, at most 30 s (the kubelet's backoff, shortened).
pub fn restart_backoff(base: Duration, crashes_in_a_row: u32) -> Duration {
    let doublings = crashes_in_a_row.saturating_sub(1).min(16);
    base.saturating_mul(2u32.pow(doublings))
        .min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, ready: bool, cost: Option<&str>, serial: u64) -> Candidate {
        Candidate {
            name: name.to_string(),
            ready,
            deletion_cost: cost.map(str::to_string),
            serial,
        }
    }

    #[test]
    fn not_ready_then_cheapest_then_newest() {
        let relays = [
            c("a", true, Some("5"), 1),
            c("b", true, Some("-1"), 2),
            c("c", false, Some("100"), 3),
            c("d", true, None, 4),
            c("e", true, Some("x"), 5),
            c("f", true, Some("0"), 6),
        ];
        assert_eq!(victims(&relays, 6), ["c", "b", "f", "e", "d", "a"]);
        assert_eq!(victims(&relays, 2), ["c", "b"]);
        assert!(victims(&relays, 0).is_empty());
        // Costs decide over age: the older, cheaper one goes.
        let two = [c("old", true, Some("0"), 1), c("new", true, Some("1"), 2)];
        assert_eq!(victims(&two, 1), ["old"]);
        let two = [c("old", true, None, 1), c("new", true, None, 2)];
        assert_eq!(victims(&two, 1), ["new"]);
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let base = Duration::from_secs(1);
        let waits: Vec<u64> = (0..8).map(|n| restart_backoff(base, n).as_secs()).collect();
        assert_eq!(waits, [1, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(restart_backoff(base, u32::MAX), Duration::from_secs(30));
    }
}
