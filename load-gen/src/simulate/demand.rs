//! Viewer demand per region at 1 s resolution, linearly interpolated between trace rows.

use anyhow::{Result, bail};

use crate::trace::Trace;

/// Demand of one broadcast: per region, viewers at each second from `start_s`.
#[derive(Debug, Clone)]
pub struct Demand {
    pub broadcast_id: String,
    pub regions: Vec<String>,
    pub start_s: u64,
    /// `viewers[region][i]` is the demand at `start_s + i`.
    pub viewers: Vec<Vec<f64>>,
}

impl Demand {
    /// Builds the 1 s demand of `broadcast` (the trace's first broadcast when `None`).
    pub fn from_trace(trace: &Trace, broadcast: Option<&str>) -> Result<Self> {
        let ids = trace.broadcast_ids();
        let id = match broadcast {
            Some(id) if ids.iter().any(|b| b == id) => id.to_owned(),
            Some(id) => bail!(
                "broadcast `{id}` is not in the trace (it has: {})",
                ids.join(", ")
            ),
            None => match ids.first() {
                Some(id) => id.clone(),
                None => bail!("the trace has no broadcasts"),
            },
        };
        let mut regions = trace.regions(&id);
        if regions.is_empty() {
            // Only total rows: simulate the total as one region.
            regions.push(crate::trace::TOTAL_REGION.to_owned());
        }
        let series: Vec<Vec<(u64, f64)>> = regions
            .iter()
            .map(|r| {
                trace
                    .series(&id, r)
                    .iter()
                    .map(|s| (s.t_s, s.viewers as f64))
                    .collect()
            })
            .collect();
        let start_s = series.iter().filter_map(|s| s.first()).map(|p| p.0).min();
        let end_s = series.iter().filter_map(|s| s.last()).map(|p| p.0).max();
        let (Some(start_s), Some(end_s)) = (start_s, end_s) else {
            bail!("broadcast `{id}` has no rows");
        };
        let len = (end_s - start_s + 1) as usize;
        let viewers = series
            .iter()
            .map(|s| interpolate(s, start_s, len))
            .collect();
        Ok(Self {
            broadcast_id: id,
            regions,
            start_s,
            viewers,
        })
    }

    /// Seconds simulated.
    pub fn len(&self) -> usize {
        self.viewers.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total demand at step `i`.
    pub fn total(&self, i: usize) -> f64 {
        self.viewers.iter().map(|v| v[i]).sum()
    }
}

/// Linear interpolation at each second; holds the first and last values outside the rows.
fn interpolate(points: &[(u64, f64)], start_s: u64, len: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(len);
    let mut next = 0;
    for i in 0..len {
        let t = start_s + i as u64;
        while next < points.len() && points[next].0 < t {
            next += 1;
        }
        let v = match (next.checked_sub(1).map(|p| points[p]), points.get(next)) {
            (_, Some(&(tn, vn))) if tn == t => vn,
            (Some((tp, vp)), Some(&(tn, vn))) => {
                vp + (vn - vp) * (t - tp) as f64 / (tn - tp) as f64
            }
            (Some((_, vp)), None) => vp,
            (None, Some(&(_, vn))) => vn,
            (None, None) => 0.0,
        };
        out.push(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::parse_trace;

    #[test]
    fn interpolates_per_second_and_picks_the_broadcast() {
        let trace = parse_trace(
            "# livetrace v1; t\nbroadcast_id,t_s,region,viewers\n\
             a,0,eu,0\na,10,eu,100\na,0,us,5\na,10,us,5\nb,0,eu,1\n",
        )
        .unwrap();
        let d = Demand::from_trace(&trace, None).unwrap();
        assert_eq!(d.broadcast_id, "a");
        assert_eq!(d.regions, vec!["eu", "us"]);
        assert_eq!(d.len(), 11);
        assert_eq!(d.viewers[0][5], 50.0);
        assert_eq!(d.total(10), 105.0);
        assert!(Demand::from_trace(&trace, Some("zzz")).is_err());
        assert_eq!(Demand::from_trace(&trace, Some("b")).unwrap().len(), 1);
    }
}
