//! The fleet's reports in the operator's terms, so `decide` and `settle` run unchanged on a
//! local fleet. Pure.
//!
//! - a fleet Deployment is a [`DeploymentView`] (desired, Ready);
//! - a relay is a [`PodView`]: its address is the pod IP, draining is terminating, its time to
//!   Ready is counted in trace seconds (wall seconds × speed, the planner's clock);
//! - each Deployment's tier Service gets, as its "load-balancer address", its stand-in
//!   address ([`super::service_proxy`]), or without one the address of one of its relays (the
//!   first Ready one, else the first running), so the status endpoints name addresses a local
//!   publisher or player can reach;
//! - an [`ApplyReport`]'s removed Deployments are the orphans deleted, its failures the
//!   objects refused.

use std::collections::BTreeSet;

use crate::decide::Applied;
use crate::observe::{DeploymentCounts, DeploymentView, Observed, PodView, ServiceView};

use super::status::{ApplyReport, DeploymentStatus, FleetStatus, RelayStatus};

/// What the fleet runs, as `gather` would have listed it (no scrapes yet: see
/// [`Observed::pods`] for whom to scrape). `speed` is trace seconds per wall second.
pub fn observed_from_fleet(status: &FleetStatus, speed: f64) -> Observed {
    let deployments = status
        .deployments
        .iter()
        .map(|d| DeploymentView {
            name: d.name.clone(),
            tier: Some((d.region.clone(), d.tier)),
            counts: DeploymentCounts {
                desired: count(d.desired),
                ready: count(d.ready),
            },
        })
        .collect();
    let pods = status.relays().map(|r| pod_view(r, speed)).collect();
    let services = status
        .deployments
        .iter()
        .map(|d| ServiceView {
            name: d.name.clone(),
            external_host: tier_address(d),
        })
        .collect();
    Observed {
        deployments,
        pods,
        scrapes: Default::default(),
        services,
        nodes: Vec::new(),
        signing_key: None,
        integrity: Default::default(),
        upstreams: Default::default(),
        rooms: Default::default(),
        overflow_viewers: Default::default(),
    }
}

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn pod_view(r: &RelayStatus, speed: f64) -> PodView {
    PodView {
        name: r.name.clone(),
        tier: r.tier,
        region: r.region.clone(),
        ip: Some(r.http.ip().to_string()),
        ready: r.ready,
        ready_after_seconds: r.ready_after.map(|d| d.as_secs_f64() * speed),
        deletion_cost: r.deletion_cost.clone(),
        terminating: r.draining,
        node: None,
        advertise_host: None,
    }
}

/// Where a player or publisher reaches the tier: its Service's stand-in, else one of its
/// relays, Ready ones first.
fn tier_address(d: &DeploymentStatus) -> Option<String> {
    if let Some(address) = d.service_address {
        return Some(address.to_string());
    }
    let running = d.relays.iter().filter(|r| !r.draining);
    let relay = running
        .clone()
        .find(|r| r.ready)
        .or_else(|| running.min_by_key(|r| r.address))?;
    Some(relay.address.to_string())
}

/// What applying did, as `settle` reads it: a relay that could not start is a refused object.
pub fn applied_from_report(report: &ApplyReport) -> Applied {
    Applied {
        refused: report
            .failures
            .iter()
            .map(|f| format!("Deployment {}: {f}", f.deployment))
            .collect(),
        removed_deployments: report.removed.clone(),
    }
}

/// Relays Ready now that were not in `before` (the names Ready then), and the new set.
pub fn newly_ready(
    before: &BTreeSet<String>,
    status: &FleetStatus,
) -> (Vec<String>, BTreeSet<String>) {
    let now: BTreeSet<String> = status
        .relays()
        .filter(|r| r.ready && !r.draining)
        .map(|r| r.name.clone())
        .collect();
    let fresh = now.difference(before).cloned().collect();
    (fresh, now)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::labels::TierKind;
    use crate::local::RelayFailure;

    fn relay(name: &str, deployment: &str, tier: TierKind, address: [u8; 4]) -> RelayStatus {
        let ip = Ipv4Addr::from(address);
        RelayStatus {
            name: name.to_string(),
            deployment: deployment.to_string(),
            region: "eu-west".to_string(),
            tier,
            address: ip,
            rtmp: SocketAddr::from((ip, 1935)),
            http: SocketAddr::from((ip, 8080)),
            admin: SocketAddr::from((ip, 9090)),
            pid: 4242,
            ready: true,
            draining: false,
            age: Duration::from_secs(10),
            ready_after: Some(Duration::from_secs(3)),
            deletion_cost: None,
            args: Vec::new(),
            log: PathBuf::from("/tmp/x.log"),
        }
    }

    fn fleet() -> FleetStatus {
        let origin = relay(
            "talk-origin-1",
            "talk-origin",
            TierKind::Origin,
            [127, 200, 0, 1],
        );
        let mut edge1 = relay(
            "talk-eu-edge-1",
            "talk-eu-edge",
            TierKind::Edge,
            [127, 200, 1, 1],
        );
        edge1.ready = false;
        edge1.ready_after = None;
        let mut edge2 = relay(
            "talk-eu-edge-2",
            "talk-eu-edge",
            TierKind::Edge,
            [127, 200, 1, 2],
        );
        edge2.deletion_cost = Some("1".to_string());
        let mut draining = relay(
            "talk-eu-edge-3",
            "talk-eu-edge",
            TierKind::Edge,
            [127, 200, 1, 3],
        );
        draining.ready = false;
        draining.draining = true;
        let orphan = RelayStatus {
            draining: true,
            ready: false,
            ..relay(
                "talk-eu-reflector-1-1",
                "talk-eu-reflector-1",
                TierKind::Reflector(1),
                [127, 200, 2, 1],
            )
        };
        FleetStatus {
            deployments: vec![
                DeploymentStatus {
                    name: "talk-origin".to_string(),
                    region: "eu-west".to_string(),
                    tier: TierKind::Origin,
                    desired: 1,
                    running: 1,
                    ready: 1,
                    restarts: 0,
                    last_failure: None,
                    waiting: None,
                    service_address: None,
                    relays: vec![origin],
                },
                DeploymentStatus {
                    name: "talk-eu-edge".to_string(),
                    region: "eu-west".to_string(),
                    tier: TierKind::Edge,
                    desired: 3,
                    running: 2,
                    ready: 1,
                    restarts: 1,
                    last_failure: None,
                    waiting: None,
                    service_address: None,
                    relays: vec![edge1, edge2, draining],
                },
            ],
            orphans: vec![orphan],
            services: Vec::new(),
        }
    }

    #[test]
    fn deployments_and_relays_become_the_views_decide_reads() {
        let observed = observed_from_fleet(&fleet(), 10.0);
        assert_eq!(
            observed.deployments,
            [
                DeploymentView {
                    name: "talk-origin".to_string(),
                    tier: Some(("eu-west".to_string(), TierKind::Origin)),
                    counts: DeploymentCounts {
                        desired: 1,
                        ready: 1
                    },
                },
                DeploymentView {
                    name: "talk-eu-edge".to_string(),
                    tier: Some(("eu-west".to_string(), TierKind::Edge)),
                    counts: DeploymentCounts {
                        desired: 3,
                        ready: 1
                    },
                },
            ]
        );
        let pods: Vec<(&str, Option<&str>, bool, bool)> = observed
            .pods
            .iter()
            .map(|p| (p.name.as_str(), p.ip.as_deref(), p.ready, p.terminating))
            .collect();
        // Orphans too: draining relays are terminating pods (neither scraped nor counted).
        assert_eq!(
            pods,
            [
                ("talk-origin-1", Some("127.200.0.1"), true, false),
                ("talk-eu-edge-1", Some("127.200.1.1"), false, false),
                ("talk-eu-edge-2", Some("127.200.1.2"), true, false),
                ("talk-eu-edge-3", Some("127.200.1.3"), false, true),
                ("talk-eu-reflector-1-1", Some("127.200.2.1"), false, true),
            ]
        );
        let edge2 = &observed.pods[2];
        assert_eq!(edge2.deletion_cost.as_deref(), Some("1"));
        assert_eq!(edge2.tier, TierKind::Edge);
        assert_eq!(edge2.region, "eu-west");
        assert!(observed.scrapes.is_empty());
    }

    #[test]
    fn time_to_ready_is_in_trace_seconds() {
        let observed = observed_from_fleet(&fleet(), 10.0);
        assert_eq!(observed.pods[0].ready_after_seconds, Some(30.0));
        assert_eq!(observed.pods[1].ready_after_seconds, None);
        let real_time = observed_from_fleet(&fleet(), 1.0);
        assert_eq!(real_time.pods[0].ready_after_seconds, Some(3.0));
    }

    #[test]
    fn a_tier_is_reached_at_a_ready_relay_else_a_running_one() {
        let mut status = fleet();
        let hosts = observed_from_fleet(&status, 1.0).external_hosts();
        assert_eq!(hosts["talk-origin"], "127.200.0.1");
        // edge-1 is not Ready, edge-2 is.
        assert_eq!(hosts["talk-eu-edge"], "127.200.1.2");
        // None Ready: the lowest running address, never a draining one.
        for r in &mut status.deployments[1].relays {
            r.ready = false;
        }
        let hosts = observed_from_fleet(&status, 1.0).external_hosts();
        assert_eq!(hosts["talk-eu-edge"], "127.200.1.1");
        status.deployments[1].relays.retain(|r| r.draining);
        let hosts = observed_from_fleet(&status, 1.0).external_hosts();
        assert!(!hosts.contains_key("talk-eu-edge"), "{hosts:?}");
        // A Service stand-in is the tier's address, whatever its relays do.
        status.deployments[1].service_address = Some(std::net::Ipv4Addr::new(127, 200, 1, 0));
        let hosts = observed_from_fleet(&status, 1.0).external_hosts();
        assert_eq!(hosts["talk-eu-edge"], "127.200.1.0");
    }

    #[test]
    fn counts_feed_the_planner_inputs() {
        let observed = observed_from_fleet(&fleet(), 1.0);
        let by_tier = observed.counts_by_tier();
        let edges = by_tier[&("eu-west".to_string(), TierKind::Edge)];
        assert_eq!((edges.desired, edges.ready), (3, 1));
        assert_eq!(observed.counts_by_name()["talk-origin"].desired, 1);
    }

    #[test]
    fn failures_are_refused_objects_and_removed_tiers_are_orphans() {
        let report = ApplyReport {
            started: vec!["talk-eu-edge-4".to_string()],
            stopping: vec!["talk-eu-edge-1".to_string()],
            removed: vec!["talk-eu-reflector-1".to_string()],
            failures: vec![RelayFailure {
                relay: "talk-eu-edge-4".to_string(),
                deployment: "talk-eu-edge".to_string(),
                reason: "exited (exit status: 1) 0.1 s after start: boom".to_string(),
            }],
        };
        assert_eq!(
            applied_from_report(&report),
            Applied {
                refused: vec![
                    "Deployment talk-eu-edge: relay talk-eu-edge-4: exited (exit status: 1) 0.1 s after start: boom"
                        .to_string()
                ],
                removed_deployments: vec!["talk-eu-reflector-1".to_string()],
            }
        );
        assert_eq!(
            applied_from_report(&ApplyReport::default()),
            Applied::default()
        );
    }

    #[test]
    fn newly_ready_relays_are_named_once() {
        let status = fleet();
        let (fresh, seen) = newly_ready(&BTreeSet::new(), &status);
        assert_eq!(fresh, ["talk-eu-edge-2", "talk-origin-1"]);
        let (fresh, again) = newly_ready(&seen, &status);
        assert!(fresh.is_empty());
        assert_eq!(again, seen);
    }
}
