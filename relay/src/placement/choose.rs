//! Where a new viewer (or a child relay) goes, from a view of the relays around: the
//! least-loaded Ready edge of its region with room; when every edge there is full, the first
//! relay with room along the overflow order (the tier above, then other regions); otherwise a
//! refusal. Pure: the locator feeds it the view it polls, tests feed it fixtures.

use crate::config::Tier;

/// What the locator knows about one relay (from its `/api/v1/streams`, at most a poll old).
#[derive(Debug, Clone, PartialEq)]
pub struct RelayView {
    /// Which relay (its instance id in the locator's view; any unique name in tests).
    pub id: String,
    pub region: String,
    pub tier: Tier,
    /// Its `/readyz` says yes: answering, not draining, not full by its readiness gate.
    pub ready: bool,
    /// Takes viewers at all (answering, not draining), even past its high mark.
    pub accepting: bool,
    /// 0..1 of its capacity, including viewers this locator sent since the last poll.
    pub load: f64,
    /// Already holds the stream being asked for (no new upstream pull needed).
    pub has_stream: bool,
    /// Relays pulling from this one.
    pub children: usize,
}

/// One step of the overflow order (`spec.placement.overflow`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverflowStep {
    /// The relays above the region's edges: its reflectors, or the origin without them.
    TierAbove,
    /// Another region's edges.
    Region(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement<'a> {
    /// An edge of the viewer's region.
    Edge(&'a RelayView),
    /// Every edge of the region is full: a relay further along the overflow order.
    Overflow(&'a RelayView),
    /// Nothing in the tree has room.
    Refused,
}

impl<'a> Placement<'a> {
    pub fn relay(&self) -> Option<&'a RelayView> {
        match self {
            Placement::Edge(r) | Placement::Overflow(r) => Some(r),
            Placement::Refused => None,
        }
    }
}

/// Least loaded first; on a tie the one already holding the stream, then by id so the
/// same view always gives the same answer.
fn least_loaded<'a>(candidates: impl Iterator<Item = &'a RelayView>) -> Option<&'a RelayView> {
    candidates.min_by(|a, b| {
        a.load
            .total_cmp(&b.load)
            .then(b.has_stream.cmp(&a.has_stream))
            .then(a.id.cmp(&b.id))
    })
}

/// Places one viewer. First pass: relays that are Ready and under `high_mark` — the region's
/// edges, then along `overflow`. A relay past its high mark still has room up to its
/// capacity, so before refusing, a second pass takes any relay that accepts viewers (not
/// draining, answering) and is under full load, in the same order.
pub fn place_viewer<'a>(
    view: &'a [RelayView],
    region: &str,
    overflow: &[OverflowStep],
    high_mark: f64,
) -> Placement<'a> {
    let ready = |r: &RelayView| r.ready && r.load < high_mark;
    let not_full = |r: &RelayView| r.accepting && r.load < 1.0;
    for room in [&ready as &dyn Fn(&RelayView) -> bool, &not_full] {
        let edges = view
            .iter()
            .filter(|r| r.tier == Tier::Edge && r.region == region && room(r));
        if let Some(edge) = least_loaded(edges) {
            return Placement::Edge(edge);
        }
        for step in overflow {
            let found = match step {
                OverflowStep::TierAbove => least_loaded(
                    tier_above(view, region)
                        .into_iter()
                        .flatten()
                        .filter(|r| room(r)),
                ),
                OverflowStep::Region(other) => least_loaded(
                    view.iter()
                        .filter(|r| r.tier == Tier::Edge && &r.region == other && room(r)),
                ),
            };
            if let Some(relay) = found {
                return Placement::Overflow(relay);
            }
        }
    }
    Placement::Refused
}

/// The region's reflectors, or the origin when the region has none in view.
fn tier_above<'a>(view: &'a [RelayView], region: &str) -> Option<Vec<&'a RelayView>> {
    let reflectors: Vec<_> = view
        .iter()
        .filter(|r| r.tier == Tier::Reflector && r.region == region)
        .collect();
    if !reflectors.is_empty() {
        return Some(reflectors);
    }
    let origins: Vec<_> = view.iter().filter(|r| r.tier == Tier::Origin).collect();
    (!origins.is_empty()).then_some(origins)
}

/// A parent for child relay `me` among `candidates` (the tier above it). The parent it pulls
/// from now (`current`) stays while Ready, even at `fanout` (it is one of those children).
/// Otherwise: Ready, with fewer than `fanout` children; the fewest children first, then the
/// least load; equal ones are ordered by a hash of (`me`, parent) so children starting at the
/// same moment, each seeing the same counts, spread instead of all taking the same parent.
/// `None`: every parent is full or gone — the caller falls back to the origin.
pub fn choose_parent<'a>(
    candidates: &'a [RelayView],
    fanout: usize,
    me: &str,
    current: Option<&str>,
) -> Option<&'a RelayView> {
    if let Some(kept) = candidates
        .iter()
        .find(|r| r.ready && Some(r.id.as_str()) == current)
    {
        return Some(kept);
    }
    candidates
        .iter()
        .filter(|r| r.ready && r.children < fanout)
        .min_by(|a, b| {
            a.children
                .cmp(&b.children)
                .then(a.load.total_cmp(&b.load))
                .then(spread(me, &a.id).cmp(&spread(me, &b.id)))
                .then(a.id.cmp(&b.id))
        })
}

/// A stable per-(child, parent) order (FNV-1a: the same on every relay and every run).
fn spread(me: &str, parent: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in me.bytes().chain([0]).chain(parent.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(addr: &str, region: &str, tier: Tier, load: f64) -> RelayView {
        RelayView {
            id: addr.into(),
            region: region.into(),
            tier,
            ready: true,
            accepting: true,
            load,
            has_stream: false,
            children: 0,
        }
    }

    fn region_of_three() -> Vec<RelayView> {
        vec![
            relay("o:8080", "us", Tier::Origin, 0.1),
            relay("r1:8080", "eu", Tier::Reflector, 0.2),
            relay("e1:8080", "eu", Tier::Edge, 0.5),
            relay("e2:8080", "eu", Tier::Edge, 0.3),
            relay("e3:8080", "eu", Tier::Edge, 0.4),
            relay("a1:8080", "ap", Tier::Edge, 0.0),
        ]
    }

    const ORDER: &[OverflowStep] = &[OverflowStep::TierAbove];

    #[test]
    fn the_least_loaded_edge_of_the_region_wins() {
        let view = region_of_three();
        assert_eq!(
            place_viewer(&view, "eu", ORDER, 0.9),
            Placement::Edge(&view[3])
        );
    }

    #[test]
    fn a_tie_goes_to_the_edge_already_pulling() {
        let mut view = region_of_three();
        view[2].load = 0.3;
        view[2].has_stream = true;
        assert_eq!(
            place_viewer(&view, "eu", ORDER, 0.9),
            Placement::Edge(&view[2])
        );
    }

    #[test]
    fn full_or_unready_edges_are_never_chosen() {
        let mut view = region_of_three();
        view[3].ready = false; // draining or full by its gate
        view[4].load = 0.9; // at the high mark
        assert_eq!(
            place_viewer(&view, "eu", ORDER, 0.9),
            Placement::Edge(&view[2])
        );
    }

    #[test]
    fn overflow_follows_the_configured_order() {
        let mut view = region_of_three();
        for e in &mut view[2..5] {
            e.load = 0.95;
        }
        assert_eq!(
            place_viewer(&view, "eu", ORDER, 0.9),
            Placement::Overflow(&view[1])
        );
        let other_first = [OverflowStep::Region("ap".into()), OverflowStep::TierAbove];
        assert_eq!(
            place_viewer(&view, "eu", &other_first, 0.9),
            Placement::Overflow(&view[5])
        );
        // A reflector past its mark passes the viewer on to the next step.
        view[1].load = 0.95;
        let both = [OverflowStep::TierAbove, OverflowStep::Region("ap".into())];
        assert_eq!(
            place_viewer(&view, "eu", &both, 0.9),
            Placement::Overflow(&view[5])
        );
    }

    #[test]
    fn a_region_without_reflectors_overflows_to_the_origin() {
        let mut view = region_of_three();
        view.remove(1);
        for e in &mut view[1..4] {
            e.ready = false;
        }
        assert_eq!(
            place_viewer(&view, "eu", ORDER, 0.9),
            Placement::Overflow(&view[0])
        );
    }

    #[test]
    fn nothing_free_is_a_refusal() {
        let mut view = region_of_three();
        for r in &mut view {
            r.load = 1.0;
        }
        let all = [OverflowStep::TierAbove, OverflowStep::Region("ap".into())];
        assert_eq!(place_viewer(&view, "eu", &all, 0.9), Placement::Refused);
        assert_eq!(place_viewer(&[], "eu", &all, 0.9), Placement::Refused);
        // Without an overflow order a full region refuses although others have room.
        view[5].load = 0.0;
        assert_eq!(place_viewer(&view, "eu", &[], 0.9), Placement::Refused);
        // Past the high mark is not full: the second pass finds room there.
        view[3].load = 0.95;
        assert_eq!(
            place_viewer(&view, "eu", &[], 0.9),
            Placement::Edge(&view[3])
        );
        view[3].load = 1.0;
        assert_eq!(place_viewer(&view, "eu", &[], 0.9), Placement::Refused);
    }

    #[test]
    fn parents_take_at_most_fanout_children() {
        let mut parents = vec![
            relay("r1:8080", "eu", Tier::Reflector, 0.1),
            relay("r2:8080", "eu", Tier::Reflector, 0.5),
        ];
        parents[0].children = 2;
        parents[1].children = 1;
        assert_eq!(choose_parent(&parents, 2, "e", None), Some(&parents[1]));
        parents[1].children = 2;
        assert_eq!(
            choose_parent(&parents, 2, "e", None),
            None,
            "both full: fall back to the origin"
        );
        assert_eq!(
            choose_parent(&parents, 2, "e", Some("r2:8080")),
            Some(&parents[1]),
            "a child keeps its parent at fanout"
        );
        parents[0].children = 1;
        parents[0].ready = false;
        assert_eq!(choose_parent(&parents, 2, "e", None), None);
        assert_eq!(
            choose_parent(&parents, 2, "e", Some("r1:8080")),
            None,
            "a parent that is not Ready is left"
        );
        parents[0].ready = true;
        assert_eq!(choose_parent(&parents, 2, "e", None), Some(&parents[0]));
    }

    #[test]
    fn children_starting_together_spread_over_equal_parents() {
        let parents: Vec<_> = (0..4)
            .map(|i| relay(&format!("r{i}"), "eu", Tier::Reflector, 0.0))
            .collect();
        let mut taken = std::collections::HashSet::new();
        for child in 0..16 {
            let me = format!("edge-{child}");
            taken.insert(choose_parent(&parents, 8, &me, None).map(|p| p.id.clone()));
        }
        assert!(
            taken.len() >= 3,
            "16 children all saw empty parents: {taken:?}"
        );
    }
}
