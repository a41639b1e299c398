//! The edges' own load as the planner's second signal (`surge_planner::quality`): what each
//! relay reports in `relay.load` and `relay.viewers` of its `/api/v1/streams` answer, summed
//! per region. Pure.
//!
//! Every edge that answered with a load counts, Ready or not: a relay whose load reached
//! `--ready-max-load` fails its readiness probe (so the Service sends new viewers elsewhere)
//! while it keeps serving the ones it has, and that is the edge the signal is about. Relays
//! that predate the field report no load and are left out.

use std::collections::BTreeMap;

use surge_planner::EdgeLoad;
use surge_wire::streams_api::RelayStats;

use crate::labels::TierKind;
use crate::observe::PodView;

/// What one relay reported about its own load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelayRoom {
    /// Viewers of all its streams (what the load counts).
    pub viewers: u64,
    /// Viewers over what it holds at its streams' current bitrates (0..1).
    pub load: f64,
}

impl RelayRoom {
    /// The load part of a relay's answer; `None` when it has none or an unusable one.
    pub fn of(stats: &RelayStats) -> Option<RelayRoom> {
        let load = stats.relay.load.filter(|l| l.is_finite() && *l >= 0.0)?;
        Some(RelayRoom {
            viewers: stats.relay.viewers,
            load,
        })
    }
}

/// Per region of `regions`, the load its edges (not terminating) reported; regions where no
/// edge reported one are left out.
pub fn edge_loads(
    regions: &[String],
    pods: &[PodView],
    rooms: &BTreeMap<String, RelayRoom>,
) -> BTreeMap<String, EdgeLoad> {
    let mut out = BTreeMap::new();
    for region in regions {
        let mut sum = EdgeLoad::default();
        let reported = pods
            .iter()
            .filter(|p| &p.region == region && p.tier == TierKind::Edge && !p.terminating)
            .filter_map(|p| rooms.get(&p.name));
        for room in reported {
            sum.edges += 1;
            sum.viewers += room.viewers;
            sum.load_sum += room.load;
        }
        if sum.edges > 0 {
            out.insert(region.clone(), sum);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, region: &str, tier: TierKind, ready: bool, terminating: bool) -> PodView {
        PodView {
            name: name.into(),
            tier,
            region: region.into(),
            ip: Some("10.0.0.1".into()),
            ready,
            ready_after_seconds: None,
            deletion_cost: None,
            terminating,
            node: None,
            advertise_host: None,
        }
    }

    #[test]
    fn the_relay_answer_gives_its_room() {
        let json = r#"{"relay":{"tier":"edge","viewers":1500,"max_viewers":4000,
            "capacity":2000,"load":0.75,"ready":true},"streams":[]}"#;
        let stats: RelayStats = serde_json::from_str(json).unwrap();
        assert_eq!(
            RelayRoom::of(&stats),
            Some(RelayRoom {
                viewers: 1500,
                load: 0.75
            })
        );
        let old: RelayStats = serde_json::from_str(r#"{"relay":{"viewers":3}}"#).unwrap();
        assert_eq!(RelayRoom::of(&old), None, "relays before the field");
        let mut bad = stats.clone();
        bad.relay.load = Some(f64::NAN);
        assert_eq!(RelayRoom::of(&bad), None);
    }

    #[test]
    fn edges_sum_per_region_full_ones_included_others_not() {
        let pods = [
            pod("eu-e0", "eu", TierKind::Edge, true, false),
            // Full: not Ready, still serving.
            pod("eu-e1", "eu", TierKind::Edge, false, false),
            pod("eu-e2", "eu", TierKind::Edge, true, true),
            pod("eu-r0", "eu", TierKind::Reflector(1), true, false),
            pod("eu-e3", "eu", TierKind::Edge, true, false),
            pod("us-e0", "us", TierKind::Edge, true, false),
        ];
        let room = |viewers, load| RelayRoom { viewers, load };
        let rooms = BTreeMap::from([
            ("eu-e0".to_string(), room(1_000, 0.25)),
            ("eu-e1".to_string(), room(3_000, 0.75)),
            ("eu-e2".to_string(), room(500, 0.125)),
            ("eu-r0".to_string(), room(0, 0.5)),
            // eu-e3 did not answer with a load.
        ]);
        let loads = edge_loads(&["eu".into(), "us".into()], &pods, &rooms);
        assert_eq!(
            loads.get("eu"),
            Some(&EdgeLoad {
                edges: 2,
                viewers: 4_000,
                load_sum: 1.0,
            })
        );
        assert!(!loads.contains_key("us"), "no edge reported a load");
    }
}
