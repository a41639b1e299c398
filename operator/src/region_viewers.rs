//! A region's viewers: the demand the planner sizes its edges for. A locator whose region's
//! edges are all full sends new viewers along the overflow order — to the tier above (the
//! region's reflectors, or the origin) or to another region's edges — with `region=R` in the
//! play URL, and the relay serving them reports them by region (`overflow_viewers` in
//! `/api/v1/streams`). Counting only what each region's edges hold would drop those viewers
//! from R's demand (or give them to the region whose edges took them), so a region that
//! overflows from the start would never scale for them. Pure.

use std::collections::BTreeMap;

use crate::labels::TierKind;
use crate::observe::{PodView, ScrapeOutcome};

/// Per region of `regions`: the viewers of its own on its edges (each edge's count less the
/// other regions' viewers it holds by overflow) plus its viewers placed by overflow on any
/// relay of the tree. `None` when no edge of the region answered and no relay reported any of
/// its viewers (nothing was counted, which is not zero). `served` is [`served_by_relay`]'s
/// answer (terminating pods and pods that did not answer are not in it).
pub fn region_viewers(
    regions: &[String],
    served: &BTreeMap<String, BTreeMap<String, u64>>,
) -> BTreeMap<String, Option<u64>> {
    let mut counted: BTreeMap<String, Option<u64>> =
        regions.iter().map(|r| (r.clone(), None)).collect();
    for (region, n) in served.values().flatten() {
        if let Some(v) = counted.get_mut(region) {
            *v = Some(v.unwrap_or(0) + n);
        }
    }
    counted
}

/// Per relay that answered (terminating pods left out): the viewers it serves by the region
/// they belong to — an edge's own region's viewers (its count less the viewers it holds by
/// overflow; 0 counts too: the edge answered) and the viewers placed on it by overflow, by
/// their region. Regions outside the spec may appear; [`region_viewers`] drops them.
pub fn served_by_relay(
    pods: &[PodView],
    scrapes: &BTreeMap<String, ScrapeOutcome>,
    overflow: &BTreeMap<String, BTreeMap<String, u64>>,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for pod in pods.iter().filter(|p| !p.terminating) {
        let Some(Ok(viewers)) = scrapes.get(&pod.name) else {
            continue;
        };
        let placed = overflow.get(&pod.name);
        let placed_here: u64 = placed.map_or(0, |m| m.values().sum());
        let mut served: BTreeMap<String, u64> = BTreeMap::new();
        if pod.tier == TierKind::Edge {
            served.insert(pod.region.clone(), viewers.saturating_sub(placed_here));
        }
        for (region, n) in placed.into_iter().flatten() {
            *served.entry(region.clone()).or_default() += n;
        }
        out.insert(pod.name.clone(), served);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, tier: TierKind, region: &str) -> PodView {
        PodView {
            name: name.into(),
            tier,
            region: region.into(),
            ip: Some("10.0.0.1".into()),
            ready: true,
            ready_after_seconds: None,
            deletion_cost: None,
            terminating: false,
            node: None,
            advertise_host: None,
        }
    }

    fn regions() -> Vec<String> {
        vec!["us-east".into(), "eu-west".into(), "ap-south".into()]
    }

    fn by_region(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect()
    }

    #[test]
    fn viewers_on_overflow_count_for_their_own_region() {
        // The demo's start: eu-west's one edge is full, its locator sent 134 viewers to the
        // origin (no reflector runs yet) and 10 to a us-east edge.
        let pods = vec![
            pod("origin", TierKind::Origin, "us-east"),
            pod("eu-0", TierKind::Edge, "eu-west"),
            pod("us-0", TierKind::Edge, "us-east"),
            pod("eu-r1", TierKind::Reflector(1), "eu-west"),
        ];
        let scrapes = BTreeMap::from([
            ("origin".to_string(), Ok(150)),
            ("eu-0".to_string(), Ok(60)),
            ("us-0".to_string(), Ok(40)),
            ("eu-r1".to_string(), Ok(5)),
        ]);
        let overflow = BTreeMap::from([
            (
                "origin".to_string(),
                by_region(&[("eu-west", 134), ("ap-south", 16)]),
            ),
            ("us-0".to_string(), by_region(&[("eu-west", 10)])),
            ("eu-r1".to_string(), by_region(&[("eu-west", 5)])),
        ]);
        let counted = region_viewers(&regions(), &served_by_relay(&pods, &scrapes, &overflow));
        assert_eq!(counted["eu-west"], Some(60 + 134 + 10 + 5));
        assert_eq!(counted["us-east"], Some(30), "us-0 less eu-west's 10");
        assert_eq!(
            counted["ap-south"],
            Some(16),
            "no edge answered, but its overflowed viewers count"
        );
        // Every viewer of an edge or on overflow is counted once.
        let total: u64 = counted.values().flatten().sum();
        assert_eq!(total, 60 + 40 + 150 + 5);
    }

    #[test]
    fn without_overflow_only_the_edges_count_and_nothing_answered_is_none() {
        let mut gone = pod("eu-1", TierKind::Edge, "eu-west");
        gone.terminating = true;
        let pods = vec![
            pod("origin", TierKind::Origin, "us-east"),
            pod("eu-0", TierKind::Edge, "eu-west"),
            gone,
            pod("us-0", TierKind::Edge, "us-east"),
        ];
        let scrapes = BTreeMap::from([
            ("origin".to_string(), Ok(7)),
            ("eu-0".to_string(), Ok(0)),
            ("eu-1".to_string(), Ok(50)),
            ("us-0".to_string(), Err("timeout".to_string())),
        ]);
        let counted = region_viewers(
            &regions(),
            &served_by_relay(&pods, &scrapes, &BTreeMap::new()),
        );
        assert_eq!(counted["eu-west"], Some(0), "an edge that answered 0");
        assert_eq!(
            counted["us-east"], None,
            "direct origin viewers are no edge's"
        );
        assert_eq!(counted["ap-south"], None);
    }

    #[test]
    fn regions_outside_the_spec_are_ignored_and_counts_never_underflow() {
        let pods = vec![pod("eu-0", TierKind::Edge, "eu-west")];
        let scrapes = BTreeMap::from([("eu-0".to_string(), Ok(3))]);
        // A relay's counts are read at slightly different moments: more tagged than total.
        let overflow = BTreeMap::from([(
            "eu-0".to_string(),
            by_region(&[("us-east", 4), ("mars", 9)]),
        )]);
        let counted = region_viewers(&regions(), &served_by_relay(&pods, &scrapes, &overflow));
        assert_eq!(counted["eu-west"], Some(0));
        assert_eq!(counted["us-east"], Some(4));
        assert!(!counted.contains_key("mars"));
    }
}
