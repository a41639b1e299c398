use std::collections::BTreeSet;

/// The region name that stands for the sum over all regions.
pub const TOTAL_REGION: &str = "*";

/// One line of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    pub broadcast_id: String,
    /// Seconds since the start of the trace.
    pub t_s: u64,
    pub region: String,
    /// Concurrent viewers at `t_s`.
    pub viewers: u64,
    /// Viewers who joined in the interval ending at `t_s`, when the trace says.
    pub arrivals: Option<u64>,
    /// Viewers who left in the interval ending at `t_s`, when the trace says.
    pub departures: Option<u64>,
}

/// One point of a viewer series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t_s: u64,
    pub viewers: u64,
    pub arrivals: Option<u64>,
    pub departures: Option<u64>,
}

/// A whole trace: the header line (which cites what it is calibrated to) and its rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trace {
    /// The `# livetrace v1; ...` line, without the leading `#`.
    pub header: String,
    pub rows: Vec<TraceRow>,
}

impl Trace {
    /// Broadcast ids in order of first appearance.
    pub fn broadcast_ids(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut ids = Vec::new();
        for row in &self.rows {
            if seen.insert(row.broadcast_id.as_str()) {
                ids.push(row.broadcast_id.clone());
            }
        }
        ids
    }

    /// The regions of one broadcast, sorted, without the total `*`.
    pub fn regions(&self, broadcast_id: &str) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .rows
            .iter()
            .filter(|r| r.broadcast_id == broadcast_id && r.region != TOTAL_REGION)
            .map(|r| r.region.as_str())
            .collect();
        set.into_iter().map(str::to_owned).collect()
    }

    /// The time series of one (broadcast, region), sorted by time. For region `*`
    /// with no explicit total rows, the per-region rows are summed per time.
    pub fn series(&self, broadcast_id: &str, region: &str) -> Vec<Sample> {
        let mut out: Vec<Sample> = self
            .rows
            .iter()
            .filter(|r| r.broadcast_id == broadcast_id && r.region == region)
            .map(|r| Sample {
                t_s: r.t_s,
                viewers: r.viewers,
                arrivals: r.arrivals,
                departures: r.departures,
            })
            .collect();
        if out.is_empty() && region == TOTAL_REGION {
            out = self.summed_series(broadcast_id);
        }
        out.sort_by_key(|s| s.t_s);
        out
    }

    fn summed_series(&self, broadcast_id: &str) -> Vec<Sample> {
        let mut by_time: std::collections::BTreeMap<u64, Sample> = Default::default();
        for r in self
            .rows
            .iter()
            .filter(|r| r.broadcast_id == broadcast_id && r.region != TOTAL_REGION)
        {
            let s = by_time.entry(r.t_s).or_insert(Sample {
                t_s: r.t_s,
                viewers: 0,
                arrivals: Some(0),
                departures: Some(0),
            });
            s.viewers += r.viewers;
            s.arrivals = s.arrivals.zip(r.arrivals).map(|(a, b)| a + b);
            s.departures = s.departures.zip(r.departures).map(|(a, b)| a + b);
        }
        by_time.into_values().collect()
    }

    /// Writes the trace back in the `livetrace v1` format.
    pub fn to_csv(&self) -> String {
        let mut out = String::with_capacity(self.rows.len() * 32 + self.header.len() + 64);
        out.push('#');
        out.push_str(&self.header);
        out.push('\n');
        out.push_str("broadcast_id,t_s,region,viewers,arrivals,departures\n");
        for r in &self.rows {
            let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                r.broadcast_id,
                r.t_s,
                r.region,
                r.viewers,
                opt(r.arrivals),
                opt(r.departures)
            ));
        }
        out
    }
}
