//! `livejack`: LiveJack's reactive controller (ACM MM 2017): one relay per 350 viewers,
//! on relays that serve 500, i.e. a 70% utilisation target, applied to the current count.
//! With our edges the rule becomes one edge per `0.7 × viewersPerEdge` viewers (set
//! `--livejack-viewers-per-relay 350` for the paper's literal number). It reacts to fresh
//! counts every 5 s; a scale-down waits until the count has wanted fewer relays for 60 s.

use super::super::engine::{Policy, View};

pub const SYNC_S: usize = 5;
pub const SCALE_DOWN_AFTER_S: usize = 60;

pub struct LiveJack {
    viewers_per_relay: f64,
    /// Per region, since when fewer relays were wanted.
    fewer_since: Vec<Option<usize>>,
}

impl LiveJack {
    pub fn new(regions: usize, viewers_per_relay: f64) -> Self {
        Self {
            viewers_per_relay: viewers_per_relay.max(1.0),
            fewer_since: vec![None; regions],
        }
    }
}

impl Policy for LiveJack {
    fn name(&self) -> &'static str {
        "livejack"
    }

    fn decide(&mut self, view: &View) -> Option<Vec<u32>> {
        if !view.step.is_multiple_of(SYNC_S) {
            return None;
        }
        let s = view.settings;
        let desired = view
            .fleets
            .iter()
            .enumerate()
            .map(|(r, fleet)| {
                let viewers = view.observed(r, 0).unwrap_or(0.0);
                let want = ((viewers / self.viewers_per_relay).ceil() as u32)
                    .clamp(s.min_edges, s.max_edges);
                if want >= fleet.requested {
                    self.fewer_since[r] = None;
                    return want;
                }
                let since = *self.fewer_since[r].get_or_insert(view.step);
                if view.step - since >= SCALE_DOWN_AFTER_S {
                    self.fewer_since[r] = None;
                    want
                } else {
                    fleet.requested
                }
            })
            .collect();
        Some(desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::demand::Demand;
    use crate::simulate::engine::{SimSettings, simulate};

    #[test]
    fn one_relay_per_350_viewers_and_a_minute_before_scaling_down() {
        let mut v = vec![3_500.0; 100];
        v.extend(vec![700.0; 200]);
        let demand = Demand {
            broadcast_id: "b".into(),
            regions: vec!["r".into()],
            start_s: 0,
            viewers: vec![v],
        };
        let settings = SimSettings {
            ready_s: 0,
            viewers_per_edge: 500,
            min_edges: 1,
            max_edges: 100,
            true_capacity_factor: 1.0,
        };
        let out = simulate(&mut LiveJack::new(1, 350.0), &demand, &settings);
        assert_eq!(out.capacity[10], 10.0 * 500.0, "3,500 / 350 = 10 relays");
        assert_eq!(
            out.capacity[150],
            10.0 * 500.0,
            "still 10 within the minute"
        );
        assert_eq!(out.capacity[299], 2.0 * 500.0, "700 / 350 = 2 relays");
    }
}
