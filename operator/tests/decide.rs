//! The reconcile's decision (`decide`, then `Planned::settle`) from fixtures, without an API
//! server: a Stream, its children as the operator would list them, what each relay answered,
//! and a clock (the world of `common/world.rs` plays the IO of reconcile.rs around it).

mod common;

use common::world::{STEP_S, World, clock, condition, with_reason};
use common::{fixture, target};
use kube::ResourceExt;
use kube::runtime::events::EventType;
use surge_operator::crd::Stream;
use surge_operator::decide::{Applied, Decision, Input, Note, decide};
use surge_operator::labels::TierKind;
use surge_planner::edges_for_viewers;

/// Edges the planner's own static rule asks for `viewers` (capacity with headroom).
fn edges_needed(stream: &Stream, viewers: u64) -> u32 {
    let tree = surge_operator::sizing::tree_settings(&stream.spec, &stream.spec.regions[0]);
    edges_for_viewers(viewers as f64, &tree, stream.spec.scaling.headroom)
}

#[test]
fn more_viewers_than_the_edges_hold_scale_up_with_one_event_per_change() {
    let stream = fixture("minimal.yaml");
    let per_edge = u64::from(stream.spec.tree.viewers_per_edge);
    let viewers = 5 * per_edge;
    let need = edges_needed(&stream, viewers);
    let mut w = World::new(stream);
    let edge = w.edge();

    let first = w.reconcile(0.0, viewers);
    let ups = with_reason(first.events(), "ScaledUp");
    assert_eq!(ups.len(), 1, "{:?}", first.events());
    let up = ups[0];
    assert_eq!(up.type_, EventType::Normal);
    let to = w.replicas(&edge);
    assert!(
        to >= need as i32,
        "{viewers} viewers need {need} edges, got {to}"
    );
    let prefix = format!("eu-west edge 1 -> {to}: ");
    assert!(up.note.starts_with(&prefix), "{}", up.note);
    assert!(up.note.len() > prefix.len(), "the note says why");

    // The desired objects: a Service and a Deployment per tier, owned by the Stream, the edge
    // Deployment with the planned replicas; they are what is kept.
    let planned = first.planned();
    let deployment = planned
        .objects
        .iter()
        .map(|(_, d)| d)
        .find(|d| d.name_any() == edge)
        .expect("the edge Deployment is desired");
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(to));
    let owner = &deployment.owner_references()[0];
    assert_eq!(owner.uid, w.target.owner.uid);
    let names: Vec<String> = planned.objects.iter().map(|(s, _)| s.name_any()).collect();
    // The reflector levels of the tree at maxEdges are there from the start (idle now).
    assert_eq!(
        names,
        [
            "talk-origin",
            "talk-eu-west-reflector-2",
            "talk-eu-west-reflector-1",
            "talk-eu-west-edge"
        ]
    );
    assert_eq!(
        planned.keep.iter().cloned().collect::<Vec<_>>(),
        [
            "talk-eu-west-edge",
            "talk-eu-west-peers",
            "talk-eu-west-reflector-1",
            "talk-eu-west-reflector-1-peers",
            "talk-eu-west-reflector-2",
            "talk-eu-west-reflector-2-peers",
            "talk-origin"
        ]
    );
    assert!(first.outcome.gauges);
    assert_eq!(first.outcome.requeue_after, w.cfg.scrape_interval);

    // The same viewers a scrape later: nothing changes, nothing is said.
    let second = w.reconcile(STEP_S, viewers);
    assert_eq!(w.replicas(&edge), to);
    assert!(
        second.events().is_empty(),
        "no change, no event: {:?}",
        second.events()
    );
    assert_eq!(second.status().edges, format!("{to}/{to}"));
}

#[test]
fn fewer_viewers_scale_down_after_the_stabilisation_window_in_bounded_steps() {
    let stream = fixture("minimal.yaml");
    let per_edge = u64::from(stream.spec.tree.viewers_per_edge);
    let window = f64::from(stream.spec.scaling.scale_down_stabilization_seconds);
    let fraction = stream.spec.scaling.max_scale_down_fraction;
    let mut w = World::new(stream);
    let edge = w.edge();
    let mut t = 0.0;
    let mut last_up = None;
    while t < 120.0 {
        let r = w.reconcile(t, 5 * per_edge);
        if !with_reason(r.events(), "ScaledUp").is_empty() {
            last_up = Some(t);
        }
        t += STEP_S;
    }
    let before = w.replicas(&edge);
    let last_up = last_up.unwrap_or_else(|| panic!("never scaled up ({before} edges)"));

    // Part of the crowd leaves (the fleet is not oversized: an audience collapse goes down in
    // one step, see below).
    let mut down = None;
    while t < last_up + window + 600.0 {
        let r = w.reconcile(t, 4 * per_edge);
        assert!(
            with_reason(r.events(), "ScaledUp").is_empty(),
            "t={t}: {:?}",
            r.events()
        );
        if let Some(e) = with_reason(r.events(), "ScaledDown").first() {
            down = Some((t, (*e).clone(), w.replicas(&edge)));
            break;
        }
        t += STEP_S;
    }
    let (at, event, to) = down.unwrap_or_else(|| panic!("never scaled down from {before}"));
    // The Stream's promise: no scale-down within scaleDownStabilizationSeconds of the last
    // scale-up (and of the first plan, here the same reconcile).
    assert!(
        at - last_up >= window,
        "scaled down {}s after the last scale-up, within the {window}s stabilisation window",
        at - last_up
    );
    assert!(to < before, "{before} -> {to}");
    let step_max = (f64::from(before) * fraction).max(1.0).ceil();
    assert!(
        f64::from(before - to) <= step_max,
        "{before} -> {to} removes more than maxScaleDownFraction {fraction} in one step"
    );
    assert_eq!(event.type_, EventType::Normal);
    let prefix = format!("eu-west edge {before} -> {to}: ");
    assert!(event.note.starts_with(&prefix), "{}", event.note);
}

#[test]
fn an_audience_collapse_releases_the_oversized_fleet_in_one_step() {
    let stream = fixture("minimal.yaml");
    let per_edge = u64::from(stream.spec.tree.viewers_per_edge);
    let mut w = World::new(stream);
    let edge = w.edge();
    let mut t = 0.0;
    while t < 120.0 {
        w.reconcile(t, 5 * per_edge);
        t += STEP_S;
    }
    let before = w.replicas(&edge);
    assert!(before >= 4, "the crowd needs several edges ({before})");
    // Almost everyone leaves: the fleet is oversized, it goes down to what is left at once.
    let mut down = None;
    while t < 1200.0 {
        let r = w.reconcile(t, per_edge / 10);
        assert!(
            with_reason(r.events(), "ScaledUp").is_empty(),
            "t={t}: {:?}",
            r.events()
        );
        if !with_reason(r.events(), "ScaledDown").is_empty() {
            down = Some(w.replicas(&edge));
            break;
        }
        t += STEP_S;
    }
    let to = down.unwrap_or_else(|| panic!("never scaled down from {before}"));
    assert!(
        to <= 2,
        "{before} -> {to}: a tenth of an edge's viewers needs at most two edges"
    );
}

#[test]
fn a_flash_crowd_is_announced_once_and_its_end_once() {
    let stream = fixture("minimal.yaml");
    let mut w = World::new(stream);
    let mut t = 0.0;
    let mut viewers = 100;
    // 1,000 viewers more every scrape (12,000 a minute), for a minute.
    let mut flash = Vec::new();
    while t <= 60.0 {
        let r = w.reconcile(t, viewers);
        flash.extend(with_reason(r.events(), "FlashCrowd").into_iter().cloned());
        assert!(with_reason(r.events(), "FlashCrowdOver").is_empty());
        t += STEP_S;
        viewers += 1000;
    }
    assert_eq!(flash.len(), 1, "one FlashCrowd event: {flash:?}");
    assert_eq!(flash[0].type_, EventType::Warning);
    assert!(flash[0].note.contains("eu-west"), "{}", flash[0].note);
    assert!(w.memory.flash_crowd);
    let status = w.stream.status.clone().expect("status");
    let (s, reason, message) = condition(&status, "FlashCrowd");
    assert_eq!(
        (s.as_str(), reason.as_str()),
        ("True", "GrowthAboveThreshold")
    );
    // The condition says what the event said, with today's figures.
    assert!(message.starts_with("eu-west: growth +"), "{message}");

    // The crowd stops growing: the mode ends, said once.
    let held = viewers;
    let mut over = Vec::new();
    let until = t + 900.0;
    while t < until {
        let r = w.reconcile(t, held);
        assert!(with_reason(r.events(), "FlashCrowd").is_empty());
        over.extend(
            with_reason(r.events(), "FlashCrowdOver")
                .into_iter()
                .cloned(),
        );
        t += STEP_S;
    }
    assert_eq!(over.len(), 1, "one FlashCrowdOver event: {over:?}");
    assert_eq!(over[0].type_, EventType::Normal);
    assert_eq!(over[0].note, "viewer growth is back below the thresholds");
    assert!(!w.memory.flash_crowd);
    let status = w.stream.status.clone().expect("status");
    let (s, reason, _) = condition(&status, "FlashCrowd");
    assert_eq!((s.as_str(), reason.as_str()), ("False", "NormalGrowth"));
}

#[test]
fn unreachable_relays_degrade_with_one_event_until_they_answer_again() {
    let stream = fixture("minimal.yaml");
    let mut w = World::new(stream);
    let pod = format!("{}-0", w.edge());
    let why = "10.0.0.0:8080: request failed: Connection refused (os error 111)";
    w.reconcile(0.0, 10);
    w.unreachable.insert(pod.clone(), why.to_string());

    let r = w.reconcile(STEP_S, 10);
    let degraded = with_reason(r.events(), "Degraded");
    assert_eq!(degraded.len(), 1, "{:?}", r.events());
    assert_eq!(degraded[0].type_, EventType::Warning);
    assert_eq!(
        degraded[0].note,
        format!("1 relay(s) unreachable {pod}: {why}")
    );
    let (s, reason, message) = condition(r.status(), "Degraded");
    assert_eq!((s.as_str(), reason.as_str()), ("True", "RelaysUnreachable"));
    assert!(message.contains(&pod), "{message}");
    // The relays themselves are Ready: the tree serves.
    assert_eq!(condition(r.status(), "Ready").1, "TreeReady");

    let again = w.reconcile(2.0 * STEP_S, 10);
    assert!(with_reason(again.events(), "Degraded").is_empty());
    assert_eq!(condition(again.status(), "Degraded").0, "True");

    w.unreachable.clear();
    let back = w.reconcile(3.0 * STEP_S, 10);
    assert!(back.events().is_empty(), "{:?}", back.events());
    let (s, reason, _) = condition(back.status(), "Degraded");
    assert_eq!((s.as_str(), reason.as_str()), ("False", "AsExpected"));
    assert_eq!(w.memory.degraded_reason, None);

    // A new outage is a new event.
    w.unreachable.insert(pod, why.to_string());
    let later = w.reconcile(4.0 * STEP_S, 10);
    assert_eq!(with_reason(later.events(), "Degraded").len(), 1);
}

#[test]
fn refused_objects_are_apply_failed_until_applied() {
    let stream = fixture("minimal.yaml");
    let mut w = World::new(stream);
    w.reconcile(0.0, 10);
    let refused = "Service talk-eu-west-edge: services \"talk-eu-west-edge\" is forbidden: \
                   exceeded quota: q, requested: count/services=1 (403 Forbidden)";
    w.refusals = vec![refused.to_string()];

    let r = w.reconcile(STEP_S, 10);
    let degraded = with_reason(r.events(), "Degraded");
    assert_eq!(degraded.len(), 1, "{:?}", r.events());
    assert_eq!(degraded[0].type_, EventType::Warning);
    assert!(
        degraded[0].note.starts_with(refused),
        "{}",
        degraded[0].note
    );
    let (s, reason, message) = condition(r.status(), "Ready");
    assert_eq!((s.as_str(), reason.as_str()), ("False", "ApplyFailed"));
    assert!(message.contains(refused), "{message}");
    let (s, reason, message) = condition(r.status(), "Degraded");
    assert_eq!((s.as_str(), reason.as_str()), ("True", "ApplyFailed"));
    assert_eq!(message, refused);
    assert_eq!(w.memory.degraded_reason.as_deref(), Some(refused));

    // Still refused: still ApplyFailed, no second event.
    let again = w.reconcile(2.0 * STEP_S, 10);
    assert!(with_reason(again.events(), "Degraded").is_empty());
    assert_eq!(condition(again.status(), "Ready").1, "ApplyFailed");

    // Applied at last.
    w.refusals.clear();
    let ok = w.reconcile(3.0 * STEP_S, 10);
    let (s, reason, _) = condition(ok.status(), "Ready");
    assert_eq!((s.as_str(), reason.as_str()), ("True", "TreeReady"));
    assert_eq!(condition(ok.status(), "Degraded").0, "False");
}

#[test]
fn a_removed_tier_is_announced() {
    let stream = fixture("minimal.yaml");
    let w = World::new(stream);
    let observed = w.observed(0);
    let input = Input {
        stream: &w.stream,
        target: &w.target,
        observed: &observed,
        clock: clock(0.0),
        cfg: &w.cfg,
    };
    let Decision::Apply(planned) = decide(&input, &w.memory) else {
        panic!("a valid Stream is planned");
    };
    let applied = Applied {
        refused: Vec::new(),
        removed_deployments: vec!["talk-us-east-edge".into()],
    };
    let outcome = planned.settle(&input, &applied);
    assert_eq!(
        outcome.events,
        [Note {
            type_: EventType::Normal,
            reason: "TierRemoved",
            note: "deleted Deployment talk-us-east-edge".into(),
        }]
    );
}

#[test]
fn an_invalid_spec_builds_nothing_and_says_so_once() {
    let mut w = World::new(fixture("invalid.yaml"));
    w.deployments.clear();
    let r = w.reconcile(0.0, 0);
    assert!(r.planned.is_none(), "nothing is built from an invalid spec");
    let invalid = with_reason(r.events(), "InvalidSpec");
    assert_eq!(invalid.len(), 1, "{:?}", r.events());
    assert_eq!(invalid[0].type_, EventType::Warning);
    for field in [
        "metadata.name",
        "spec.tree.fanout",
        "spec.regions[0].minEdges",
    ] {
        assert!(invalid[0].note.contains(field), "{}", invalid[0].note);
    }
    let (s, reason, message) = condition(r.status(), "Ready");
    assert_eq!((s.as_str(), reason.as_str()), ("False", "InvalidSpec"));
    assert_eq!(message, invalid[0].note);
    assert_eq!(condition(r.status(), "Degraded").1, "InvalidSpec");
    assert!(!r.outcome.gauges, "no relays or viewers to show");
    assert_eq!(r.outcome.requeue_after, w.cfg.scrape_interval * 6);

    let again = w.reconcile(STEP_S, 0);
    assert!(again.events().is_empty(), "{:?}", again.events());
    assert_eq!(condition(again.status(), "Ready").1, "InvalidSpec");

    // Fixed: planned again, and the memory no longer holds the problem.
    w.stream = fixture("minimal.yaml");
    w.target = target(&w.stream);
    let fixed = w.reconcile(2.0 * STEP_S, 0);
    assert!(!fixed.planned().objects.is_empty());
    assert_eq!(w.memory.invalid, None);
    // Its tiers are created now: Ready once they are (the world makes them Ready at once).
    assert_eq!(condition(fixed.status(), "Ready").1, "TiersNotReady");
    let next = w.reconcile(3.0 * STEP_S, 0);
    assert_eq!(condition(next.status(), "Ready").1, "TreeReady");
}

#[test]
fn deletion_costs_put_the_least_loaded_relays_first() {
    let stream = fixture("minimal.yaml");
    let mut w = World::new(stream);
    let edge = w.edge();
    w.deployments
        .insert(edge.clone(), ("eu-west".into(), TierKind::Edge, 4));
    let mut observed = w.observed(0);
    let loads = [("0", 50), ("1", 5), ("2", 20)];
    for (i, viewers) in loads {
        observed.scrapes.insert(format!("{edge}-{i}"), Ok(viewers));
    }
    // Pod 3 is not Ready (no IP, not scraped): it goes first. Pod 2 already has its cost.
    let not_ready = format!("{edge}-3");
    for p in observed.pods.iter_mut() {
        if p.name == not_ready {
            p.ready = false;
            p.ip = None;
        }
        if p.name == format!("{edge}-2") {
            p.deletion_cost = Some("2".into());
        }
    }
    observed.scrapes.remove(&not_ready);
    let input = Input {
        stream: &w.stream,
        target: &w.target,
        observed: &observed,
        clock: clock(0.0),
        cfg: &w.cfg,
    };
    let Decision::Apply(planned) = decide(&input, &w.memory) else {
        panic!("a valid Stream is planned");
    };
    assert_eq!(
        planned.deletion_costs,
        [
            (not_ready, "0".to_string()),
            (format!("{edge}-1"), "1".to_string()),
            (format!("{edge}-0"), "3".to_string()),
        ],
        "cheapest first: not Ready, then 5, 20 (unchanged, left out) and 50 viewers"
    );
}

#[test]
fn the_memory_keeps_history_and_planner_state_but_not_removed_regions() {
    let mut w = World::new(fixture("minimal.yaml"));
    w.memory.history.record("gone-region", 0.0, 500, 1000.0);
    let r = w.reconcile(0.0, 10);
    let memory = &r.planned().memory;
    assert!(memory.history.samples("gone-region").is_empty());
    assert_eq!(memory.history.samples("eu-west").len(), 1);
    assert_eq!(memory.planner, r.planned().plan.state);
    // What settle hands back is what the next reconcile starts from.
    assert_eq!(w.memory.history, memory.history);
}

#[test]
fn a_crashed_edge_whose_viewers_reconnect_elsewhere_is_no_flash_crowd() {
    let stream = fixture("minimal.yaml");
    let per_edge = u64::from(stream.spec.tree.viewers_per_edge);
    let viewers = 4 * per_edge;
    let mut w = World::new(stream);
    let edge = w.edge();
    // A steady audience, long enough for the planner to settle on its edges.
    let mut t = 0.0;
    for _ in 0..80 {
        w.reconcile(t, viewers);
        t += STEP_S;
    }
    let edges = w.replicas(&edge);
    assert!(edges >= 4, "{edges} edges for {viewers} viewers");
    // One edge dies: its viewers are not counted for three reconciles (15 s: the crash, the
    // retry, the locator), then they are back, on the other edges.
    let pod = format!("{edge}-0");
    w.unreachable.insert(pod, "connection refused".into());
    let mut events: Vec<String> = Vec::new();
    for _ in 0..3 {
        let lost = w.reconcile(t, viewers);
        events.extend(lost.events().iter().map(|e| e.reason.to_string()));
        t += STEP_S;
    }
    w.unreachable.clear();
    for _ in 0..6 {
        let r = w.reconcile(t, viewers);
        t += STEP_S;
        events.extend(r.events().iter().map(|e| e.reason.to_string()));
    }
    assert!(
        !events
            .iter()
            .any(|e| e == "FlashCrowd" || e == "ScaledUp" || e == "ScaledDown"),
        "a crash read as a change of audience: {events:?}"
    );
    assert_eq!(w.replicas(&edge), edges);
}
