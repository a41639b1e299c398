//! Quality as a second signal through the operator: the load the edges report on
//! `/api/v1/streams` reaches the planner and sizes the region when it says an edge holds
//! fewer viewers than viewersPerEdge.

mod common;

use common::fixture;
use common::world::{STEP_S, World, with_reason};

/// Edge replicas after two minutes of `viewers` on a Stream with default settings (2,000
/// viewers per edge), whose edges report their load holding `capacity` of their
/// `--max-viewers` (`None`: they report none), and the ScaledUp notes.
fn edges_after(capacity: Option<f64>, enabled: bool, viewers: u64) -> (i32, Vec<String>) {
    let mut stream = fixture("minimal.yaml");
    stream.spec.scaling.quality.enabled = enabled;
    let mut w = World::new(stream);
    w.edge_capacity = capacity;
    let edge = w.edge();
    let mut notes = Vec::new();
    for i in 0..24 {
        let r = w.reconcile(f64::from(i) * STEP_S, viewers);
        notes.extend(
            with_reason(r.events(), "ScaledUp")
                .iter()
                .map(|n| n.note.clone()),
        );
    }
    (w.replicas(&edge), notes)
}

#[test]
fn edges_that_hold_half_get_the_edges_their_load_asks_for() {
    let (plain, _) = edges_after(None, true, 20_000);
    assert_eq!(plain, 12, "ceil(20,000 × 1.2 / 2,000)");
    let (matching, notes) = edges_after(Some(1.0), true, 20_000);
    assert_eq!(matching, plain, "loads as viewersPerEdge says: {notes:?}");
    let (half, notes) = edges_after(Some(0.5), true, 20_000);
    // Measured 1,000 viewers an edge: ceil(24,000 / 1,000).
    assert_eq!(half, 24, "{notes:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("edges hold 1,000 viewers by their load")),
        "{notes:?}"
    );
    let (off, _) = edges_after(Some(0.5), false, 20_000);
    assert_eq!(off, plain, "spec.scaling.quality.enabled: false");
}
