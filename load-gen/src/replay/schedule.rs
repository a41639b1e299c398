//! What the trace asks for over time, per region: concurrent viewers and cumulative
//! arrivals (both scaled and linearly interpolated), and the joins/leaves of one tick.

use crate::trace::Sample;

#[derive(Debug, Clone)]
pub struct RegionSchedule {
    pub region: String,
    /// (trace seconds, scaled viewers, scaled cumulative arrivals)
    points: Vec<(f64, f64, f64)>,
}

impl RegionSchedule {
    /// `samples` sorted by time; `scale` multiplies viewers and arrivals.
    pub fn new(region: &str, samples: &[Sample], scale: f64) -> Self {
        let mut points = Vec::with_capacity(samples.len());
        let mut cumulative = 0.0;
        let mut previous: Option<&Sample> = None;
        for s in samples {
            if let Some(p) = previous {
                let arrivals = s
                    .arrivals
                    .map(|a| a as f64)
                    .unwrap_or_else(|| (s.viewers as f64 - p.viewers as f64).max(0.0));
                cumulative += arrivals * scale;
            }
            points.push((s.t_s as f64, s.viewers as f64 * scale, cumulative));
            previous = Some(s);
        }
        Self {
            region: region.to_owned(),
            points,
        }
    }

    pub fn start(&self) -> f64 {
        self.points.first().map(|p| p.0).unwrap_or(0.0)
    }

    pub fn end(&self) -> f64 {
        self.points.last().map(|p| p.0).unwrap_or(0.0)
    }

    fn interpolate(&self, t: f64, pick: impl Fn(&(f64, f64, f64)) -> f64) -> f64 {
        let Some(first) = self.points.first() else {
            return 0.0;
        };
        if t <= first.0 {
            return pick(first);
        }
        let i = self.points.partition_point(|p| p.0 <= t);
        if i >= self.points.len() {
            return pick(self.points.last().unwrap_or(first));
        }
        let (a, b) = (&self.points[i - 1], &self.points[i]);
        let f = (t - a.0) / (b.0 - a.0);
        pick(a) + (pick(b) - pick(a)) * f
    }

    /// Scaled concurrent viewers wanted at trace time `t`.
    pub fn target(&self, t: f64) -> u64 {
        self.interpolate(t, |p| p.1).round() as u64
    }

    /// Scaled arrivals since the start, at trace time `t`.
    pub fn arrivals_by(&self, t: f64) -> u64 {
        self.interpolate(t, |p| p.2).round() as u64
    }
}

/// Joins and leaves for one tick: every due arrival joins (churn), and enough viewers
/// leave that the count lands on `target`.
pub fn plan_tick(active: u64, arrivals_made: u64, target: u64, arrivals_due: u64) -> (u64, u64) {
    let mut joins = arrivals_due
        .saturating_sub(arrivals_made)
        .max(target.saturating_sub(active));
    let mut leaves = (active + joins).saturating_sub(target);
    if leaves > active {
        leaves = active;
        joins = target;
    }
    (joins, leaves)
}

/// The scale factor that caps the trace's peak total at `max_viewers`.
pub fn scale_for(peak_total: u64, max_viewers: Option<u64>) -> f64 {
    match max_viewers {
        Some(m) if peak_total > m => m as f64 / peak_total as f64,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: u64, v: u64, a: Option<u64>) -> Sample {
        Sample {
            t_s: t,
            viewers: v,
            arrivals: a,
            departures: None,
        }
    }

    #[test]
    fn interpolates_viewers_and_arrivals() {
        let sched = RegionSchedule::new(
            "eu",
            &[s(0, 10, None), s(10, 30, Some(40)), s(20, 0, Some(0))],
            0.5,
        );
        assert_eq!(sched.target(0.0), 5);
        assert_eq!(sched.target(5.0), 10);
        assert_eq!(sched.target(10.0), 15);
        assert_eq!(sched.target(15.0), 8);
        assert_eq!(sched.target(99.0), 0);
        assert_eq!(sched.arrivals_by(0.0), 0);
        assert_eq!(sched.arrivals_by(10.0), 20);
        assert_eq!(sched.arrivals_by(20.0), 20);
        assert_eq!((sched.start(), sched.end()), (0.0, 20.0));
        // Without arrivals columns, growth counts as arrivals.
        let plain = RegionSchedule::new(
            "us",
            &[s(0, 0, None), s(10, 100, None), s(20, 50, None)],
            1.0,
        );
        assert_eq!(plain.arrivals_by(20.0), 100);
    }

    #[test]
    fn ticks_follow_churn_and_land_on_target() {
        assert_eq!(plan_tick(0, 0, 10, 0), (10, 0));
        // 5 arrivals due while the count stays at 10: 5 join, 5 leave.
        assert_eq!(plan_tick(10, 10, 10, 15), (5, 5));
        // Shrinking with no arrivals.
        assert_eq!(plan_tick(10, 10, 4, 10), (0, 6));
        // More arrivals due than the target can hold.
        let (j, l) = plan_tick(2, 0, 3, 50);
        assert_eq!(2 - l + j, 3);
        assert_eq!(scale_for(1000, Some(100)), 0.1);
        assert_eq!(scale_for(50, Some(100)), 1.0);
    }
}
