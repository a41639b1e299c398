//! From a forecast to an edge count.

use crate::settings::TreeSettings;

/// Edges for `viewers` with `headroom`: `ceil(viewers × (1 + headroom) / viewersPerEdge)`
/// within `[minEdges, maxEdges]`. Monotone in `viewers`.
pub fn edges_for_viewers(viewers: f64, tree: &TreeSettings, headroom: f64) -> u32 {
    let per_edge = tree.viewers_per_edge.max(1) as f64;
    let wanted = (viewers.max(0.0) * (1.0 + headroom.max(0.0)) / per_edge).ceil();
    let max = tree.max_edges.max(tree.min_edges);
    if wanted.is_nan() || wanted >= max as f64 {
        max
    } else {
        (wanted as u32).clamp(tree.min_edges, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_rule_within_bounds() {
        let tree = TreeSettings::default();
        assert_eq!(edges_for_viewers(0.0, &tree, 0.2), 1);
        assert_eq!(edges_for_viewers(2000.0, &tree, 0.0), 1);
        assert_eq!(edges_for_viewers(2001.0, &tree, 0.0), 2);
        assert_eq!(edges_for_viewers(10_000.0, &tree, 0.2), 6);
        assert_eq!(edges_for_viewers(1e12, &tree, 0.2), 100);
        assert_eq!(edges_for_viewers(f64::INFINITY, &tree, 0.2), 100);
    }
}
