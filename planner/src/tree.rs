//! Reflector tiers: no relay feeds more than `fanout` children, with minimal depth.
//!
//! Each region's edges are fed by that region's reflectors (level 1 feeds edges, level 2
//! feeds level 1, ...), and the origin feeds every region's top tier. A level of `n` relays
//! needs `ceil(n / fanout)` relays above it. We find the smallest number of reflector levels
//! `D` such that the origin's children (the sum of every region's top tier, each region
//! using at most `D` levels) fit in `fanout`, then give back levels to regions that do not
//! need them, so no relay is added that the depth bound does not require.

/// The tree for a set of regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Per region (same order as the input), reflector counts from level 1 upward.
    pub reflectors: Vec<Vec<u32>>,
    /// Relays fed by the origin.
    pub origin_children: u32,
}

/// Counts per level above `edges`, up to `levels` levels (stops early at a single relay).
fn chain(edges: u32, fanout: u32, levels: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut below = edges;
    while out.len() < levels && below > 1 {
        below = below.div_ceil(fanout);
        out.push(below);
    }
    out
}

fn top(edges: u32, levels: &[u32]) -> u32 {
    levels.last().copied().unwrap_or(edges)
}

/// Builds the reflector tiers for the given edges per region.
pub fn build(edges: &[u32], fanout: u32) -> Tree {
    let fanout = fanout.max(2);
    // Levels each region needs to come down to a single relay.
    let full: Vec<Vec<u32>> = edges
        .iter()
        .map(|&e| chain(e, fanout, usize::MAX))
        .collect();
    let max_levels = full.iter().map(Vec::len).max().unwrap_or(0);
    let origin_for = |d: usize| -> u32 {
        edges
            .iter()
            .zip(&full)
            .map(|(&e, levels)| top(e, &levels[..d.min(levels.len())]))
            .sum()
    };
    // Smallest depth that fits; with more regions than `fanout`, the deepest tree (the
    // origin then has one child per region, the best possible).
    let depth = (0..=max_levels)
        .find(|&d| origin_for(d) <= fanout)
        .unwrap_or(max_levels);
    let mut chosen: Vec<usize> = full.iter().map(|l| l.len().min(depth)).collect();
    let mut children: u32 = origin_for(depth);
    // Give back levels that the origin's fan-out does not need, cheapest increase first.
    loop {
        let mut best: Option<(u32, usize)> = None;
        for (r, &k) in chosen.iter().enumerate() {
            if k == 0 {
                continue;
            }
            let now = top(edges[r], &full[r][..k]);
            let after = top(edges[r], &full[r][..k - 1]);
            let increase = after - now;
            if children + increase <= fanout && best.is_none_or(|(b, _)| increase < b) {
                best = Some((increase, r));
            }
        }
        match best {
            Some((increase, r)) => {
                chosen[r] -= 1;
                children += increase;
            }
            None => break,
        }
    }
    Tree {
        reflectors: full
            .iter()
            .zip(&chosen)
            .map(|(levels, &k)| levels[..k].to_vec())
            .collect(),
        origin_children: children,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_feeds_edges_directly_when_they_fit() {
        let t = build(&[8], 8);
        assert_eq!(t.reflectors, vec![Vec::<u32>::new()]);
        assert_eq!(t.origin_children, 8);
    }

    #[test]
    fn one_level_then_two() {
        assert_eq!(build(&[9], 8).reflectors, vec![vec![2]]);
        assert_eq!(build(&[64], 8).reflectors, vec![vec![8]]);
        assert_eq!(build(&[65], 8).reflectors, vec![vec![9, 2]]);
        assert_eq!(build(&[100], 8).reflectors, vec![vec![13, 2]]);
    }

    #[test]
    fn regions_share_the_origin_fanout() {
        // 3 + 3 + 3 edges do not fit under one origin with fanout 8: the cheapest region
        // to deepen gets a reflector.
        let t = build(&[3, 3, 3], 8);
        assert_eq!(t.origin_children, 7);
        assert_eq!(t.reflectors.iter().filter(|r| !r.is_empty()).count(), 1);
        let t = build(&[2, 2, 2], 8);
        assert_eq!(t.origin_children, 6);
        assert!(t.reflectors.iter().all(Vec::is_empty));
    }

    #[test]
    fn more_regions_than_fanout_gives_one_child_per_region() {
        let t = build(&[5, 5, 5], 2);
        assert_eq!(t.origin_children, 3);
        assert!(t.reflectors.iter().all(|r| r.last() == Some(&1)));
    }
}
