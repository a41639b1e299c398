//! `oracle`: knows the future. It asks for each edge exactly `ready_s` before the demand
//! needs it, with no headroom, and releases it as soon as it is not needed: the lower bound
//! on cost for a fleet whose relays take `ready_s` to become Ready.

use std::collections::VecDeque;

use super::super::demand::Demand;
use super::super::engine::{Policy, SimSettings, View};

pub struct Oracle {
    /// `plan[region][step]`: edges to have asked for at `step`.
    plan: Vec<Vec<u32>>,
}

impl Oracle {
    pub fn new(demand: &Demand, settings: &SimSettings) -> Self {
        let ready = settings.ready_s as usize;
        let plan = demand
            .viewers
            .iter()
            .map(|viewers| {
                let need: Vec<u32> = viewers.iter().map(|&v| settings.edges_for(v)).collect();
                window_max(&need, ready)
            })
            .collect();
        Self { plan }
    }
}

/// `out[i] = max(need[i ..= i + ahead])` (clipped at the end).
fn window_max(need: &[u32], ahead: usize) -> Vec<u32> {
    let mut out = vec![0; need.len()];
    let mut deque: VecDeque<usize> = VecDeque::new();
    for i in (0..need.len()).rev() {
        while deque.back().is_some_and(|&j| need[j] <= need[i]) {
            deque.pop_back();
        }
        deque.push_back(i);
        while deque.front().is_some_and(|&j| j > i + ahead) {
            deque.pop_front();
        }
        out[i] = need[deque[0]];
    }
    out
}

impl Policy for Oracle {
    fn name(&self) -> &'static str {
        "oracle"
    }

    fn decide(&mut self, view: &View) -> Option<Vec<u32>> {
        Some(self.plan.iter().map(|p| p[view.step]).collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn window_max_looks_ahead() {
        assert_eq!(
            super::window_max(&[1, 1, 5, 1, 1, 2], 2),
            vec![5, 5, 5, 2, 2, 2]
        );
        assert_eq!(super::window_max(&[3, 1], 0), vec![3, 1]);
    }
}
