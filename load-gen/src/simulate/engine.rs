//! The discrete-time simulation: 1 s steps per region; relays asked for become Ready
//! `ready_s` later; removals take effect at once (pending relays are cancelled first).

use std::collections::VecDeque;

use super::demand::Demand;

/// What every policy is simulated with.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSettings {
    /// Seconds from asking for a relay to its being Ready.
    pub ready_s: u64,
    /// Viewers one edge is configured for (the Stream's viewersPerEdge).
    pub viewers_per_edge: u64,
    pub min_edges: u32,
    pub max_edges: u32,
    /// What an edge really holds, as a fraction of `viewers_per_edge` (1: as configured;
    /// 0.5: relays hold half of what the Stream says, as with a heavier bitrate).
    pub true_capacity_factor: f64,
}

impl SimSettings {
    /// Viewers one Ready edge really serves: `viewers_per_edge × true_capacity_factor`.
    pub fn true_viewers_per_edge(&self) -> f64 {
        self.viewers_per_edge as f64 * self.true_capacity_factor
    }

    /// Edges that exactly cover `viewers` at the true edge size, within bounds.
    pub fn edges_for(&self, viewers: f64) -> u32 {
        let n = (viewers.max(0.0) / self.true_viewers_per_edge()).ceil();
        (n.min(self.max_edges as f64) as u32).clamp(self.min_edges, self.max_edges)
    }
}

/// One region's edges.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Edges asked for (Ready or not): what is paid for.
    pub requested: u32,
    /// Edges that serve viewers.
    pub ready: u32,
    /// Steps at which pending edges become Ready, oldest first.
    pending: VecDeque<usize>,
}

impl Fleet {
    fn ready_now(edges: u32) -> Self {
        Self {
            requested: edges,
            ready: edges,
            pending: VecDeque::new(),
        }
    }

    fn promote(&mut self, step: usize) {
        while self.pending.front().is_some_and(|&at| at <= step) {
            self.pending.pop_front();
            self.ready += 1;
        }
    }

    fn resize(&mut self, desired: u32, ready_at: usize) {
        if desired > self.requested {
            for _ in self.requested..desired {
                self.pending.push_back(ready_at);
            }
        } else {
            let mut remove = self.requested - desired;
            while remove > 0 && self.pending.pop_back().is_some() {
                remove -= 1;
            }
            self.ready -= remove;
        }
        self.requested = desired;
    }
}

/// What a policy sees at a step.
pub struct View<'a> {
    /// Step index (seconds since the trace start).
    pub step: usize,
    pub demand: &'a Demand,
    pub fleets: &'a [Fleet],
    pub settings: &'a SimSettings,
}

impl View<'_> {
    /// Viewers of `region` as measured `age_s` seconds ago (`None` before the trace
    /// starts). Reactive and forecasting policies only look through this.
    pub fn observed(&self, region: usize, age_s: usize) -> Option<f64> {
        self.step
            .checked_sub(age_s)
            .map(|i| self.demand.viewers[region][i])
    }
}

/// A scaling policy under test.
pub trait Policy {
    fn name(&self) -> &'static str;
    /// Called every second; returns the edges each region should have, or `None` to keep
    /// things as they are.
    fn decide(&mut self, view: &View) -> Option<Vec<u32>>;
}

/// What happened to one policy.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: &'static str,
    /// Demand above Ready capacity, summed over regions and seconds.
    pub underprovisioned_viewer_seconds: f64,
    /// Largest gap between demand and Ready capacity at one second (summed over regions).
    pub peak_shortfall: f64,
    /// Edges asked for (Ready or pending), summed over regions and seconds: the cost.
    pub relay_seconds: f64,
    /// Changes of a region's edge count.
    pub scale_events: u64,
    /// Total Ready capacity at each second.
    pub capacity: Vec<f64>,
    /// Total shortfall at each second.
    pub shortfall: Vec<f64>,
    /// Largest number of edges asked for at once (all regions).
    pub peak_edges: u32,
}

/// Plays `demand` against `policy`. Every policy starts with exactly enough Ready edges for
/// the first second's demand.
pub fn simulate(policy: &mut dyn Policy, demand: &Demand, settings: &SimSettings) -> Outcome {
    let len = demand.len();
    let vpe = settings.true_viewers_per_edge();
    let mut fleets: Vec<Fleet> = demand
        .viewers
        .iter()
        .map(|v| Fleet::ready_now(settings.edges_for(v.first().copied().unwrap_or(0.0))))
        .collect();
    let mut out = Outcome {
        name: policy.name(),
        underprovisioned_viewer_seconds: 0.0,
        peak_shortfall: 0.0,
        relay_seconds: 0.0,
        scale_events: 0,
        capacity: Vec::with_capacity(len),
        shortfall: Vec::with_capacity(len),
        peak_edges: 0,
    };
    for step in 0..len {
        for fleet in &mut fleets {
            fleet.promote(step);
        }
        let view = View {
            step,
            demand,
            fleets: &fleets,
            settings,
        };
        if let Some(desired) = policy.decide(&view) {
            for (fleet, want) in fleets.iter_mut().zip(desired) {
                let want = want.clamp(settings.min_edges, settings.max_edges);
                if want != fleet.requested {
                    out.scale_events += 1;
                    fleet.resize(want, step + settings.ready_s as usize);
                }
            }
            // A zero ready time means Ready within the same second.
            for fleet in &mut fleets {
                fleet.promote(step);
            }
        }
        let mut capacity = 0.0;
        let mut shortfall = 0.0;
        let mut requested = 0;
        for (fleet, viewers) in fleets.iter().zip(&demand.viewers) {
            let cap = fleet.ready as f64 * vpe;
            capacity += cap;
            shortfall += (viewers[step] - cap).max(0.0);
            requested += fleet.requested;
        }
        out.underprovisioned_viewer_seconds += shortfall;
        out.peak_shortfall = out.peak_shortfall.max(shortfall);
        out.relay_seconds += requested as f64;
        out.peak_edges = out.peak_edges.max(requested);
        out.capacity.push(capacity);
        out.shortfall.push(shortfall);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<(usize, u32)>);
    impl Policy for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn decide(&mut self, view: &View) -> Option<Vec<u32>> {
            self.0
                .iter()
                .find(|(at, _)| *at == view.step)
                .map(|(_, n)| vec![*n])
        }
    }

    fn demand(v: Vec<f64>) -> Demand {
        Demand {
            broadcast_id: "b".into(),
            regions: vec!["r".into()],
            start_s: 0,
            viewers: vec![v],
        }
    }

    #[test]
    fn relays_become_ready_after_the_ready_time_and_cost_from_the_ask() {
        let settings = SimSettings {
            ready_s: 3,
            viewers_per_edge: 10,
            min_edges: 1,
            max_edges: 10,
            true_capacity_factor: 1.0,
        };
        // Demand jumps to 30 at step 2; the policy asks for 3 edges at step 1.
        let d = demand(vec![5.0, 5.0, 30.0, 30.0, 30.0, 30.0]);
        let out = simulate(&mut Fixed(vec![(1, 3)]), &d, &settings);
        // Ready at step 4: steps 2 and 3 are short by 20 viewers each.
        assert_eq!(out.underprovisioned_viewer_seconds, 40.0);
        assert_eq!(out.peak_shortfall, 20.0);
        assert_eq!(out.relay_seconds, 1.0 + 3.0 * 5.0);
        assert_eq!(out.scale_events, 1);
        assert_eq!(out.capacity[4], 30.0);
    }

    #[test]
    fn a_true_capacity_factor_shrinks_what_ready_edges_serve() {
        let settings = SimSettings {
            ready_s: 0,
            viewers_per_edge: 10,
            min_edges: 1,
            max_edges: 10,
            true_capacity_factor: 0.5,
        };
        // Edges of 5 viewers: the first second starts with 6 of them for 30 viewers; a
        // policy that asks for 3 (viewersPerEdge's count) leaves 15 short.
        let d = demand(vec![30.0, 30.0]);
        assert_eq!(settings.edges_for(30.0), 6);
        let out = simulate(&mut Fixed(vec![(1, 3)]), &d, &settings);
        assert_eq!(out.capacity, vec![30.0, 15.0]);
        assert_eq!(out.underprovisioned_viewer_seconds, 15.0);
    }

    #[test]
    fn scale_down_cancels_pending_relays_first() {
        let settings = SimSettings {
            ready_s: 10,
            viewers_per_edge: 10,
            min_edges: 1,
            max_edges: 10,
            true_capacity_factor: 1.0,
        };
        let d = demand(vec![5.0; 4]);
        let out = simulate(&mut Fixed(vec![(0, 5), (1, 2)]), &d, &settings);
        assert_eq!(out.capacity, vec![10.0; 4], "the ready edge stays");
        assert_eq!(out.scale_events, 2);
    }
}
