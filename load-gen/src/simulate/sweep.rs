//! `surge-load simulate --shape NAME --seeds A..B`: a crowd family judged over many seeds, not
//! one curve. Each seed's trace is generated in memory exactly as `surge-load trace gen
//! --shape NAME --seed S` writes it, simulated like a `--trace` file, and the family is
//! summarised per policy: shortfall as a ratio to `reactive`'s and cost as a ratio to the
//! `oracle`'s, pooled (sums over the seeds) and as the median and range of the per-seed
//! ratios.

use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::SimulateArgs;
use super::report::{PolicyReport, count, ratio, times};
use crate::trace::generate::{generate, spec};

/// The most seeds one run takes (a typo like `1..100000` should not run for an hour).
pub const MAX_SEEDS: usize = 1_000;

/// Seeds on the command line: `A..B` (inclusive), `N`, or `A,B,C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRange(pub Vec<u64>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SeedRangeError {
    #[error("`{0}` is not a seed (a whole number)")]
    NotASeed(String),
    #[error("the range {0}..{1} is empty (write A..B with A <= B)")]
    Empty(u64, u64),
    #[error("{0} seeds is more than the {MAX_SEEDS} one run takes")]
    TooMany(u64),
}

impl FromStr for SeedRange {
    type Err = SeedRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let seed = |p: &str| {
            p.trim()
                .parse::<u64>()
                .map_err(|_| SeedRangeError::NotASeed(p.trim().to_owned()))
        };
        let seeds: Vec<u64> = match s.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (seed(a)?, seed(b.trim_start_matches('='))?);
                if a > b {
                    return Err(SeedRangeError::Empty(a, b));
                }
                if b - a >= MAX_SEEDS as u64 {
                    return Err(SeedRangeError::TooMany(b - a + 1));
                }
                (a..=b).collect()
            }
            None => s.split(',').map(seed).collect::<Result<_, _>>()?,
        };
        if seeds.len() > MAX_SEEDS {
            return Err(SeedRangeError::TooMany(seeds.len() as u64));
        }
        Ok(SeedRange(seeds))
    }
}

/// One seed of the family.
#[derive(Debug, Clone, Serialize)]
pub struct SeedRun {
    pub seed: u64,
    /// The header's draw of the curve's parameters and the calibration check.
    pub header: String,
    pub peak_viewers: f64,
    pub reactive_underprovisioned_viewer_seconds: f64,
    pub oracle_relay_seconds: f64,
    pub policies: Vec<PolicyReport>,
}

/// A ratio over the family: pooled over the seeds, and the per-seed spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Sum over the seeds / sum of the reference over the seeds.
    pub pooled: Option<f64>,
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Seeds with a ratio (the reference was not zero).
    pub seeds: usize,
}

impl Spread {
    fn of(pairs: &[(f64, f64)]) -> Self {
        let (sum, reference) = pairs
            .iter()
            .fold((0.0, 0.0), |(a, b), &(v, r)| (a + v, b + r));
        let mut per_seed: Vec<f64> = pairs.iter().filter_map(|&(v, r)| ratio(v, r)).collect();
        per_seed.sort_by(f64::total_cmp);
        let median = match per_seed.len() {
            0 => None,
            n if n % 2 == 1 => Some(per_seed[n / 2]),
            n => Some(((per_seed[n / 2 - 1] + per_seed[n / 2]) / 2.0 * 1000.0).round() / 1000.0),
        };
        Spread {
            pooled: ratio(sum, reference),
            median,
            min: per_seed.first().copied(),
            max: per_seed.last().copied(),
            seeds: per_seed.len(),
        }
    }
}

/// One policy over the family.
#[derive(Debug, Clone, Serialize)]
pub struct FamilyPolicy {
    pub name: String,
    pub shortfall_vs_reactive: Spread,
    pub cost_vs_oracle: Spread,
    pub underprovisioned_viewer_seconds_total: f64,
    pub peak_shortfall_max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FamilyReport {
    pub shape: String,
    pub calibration: String,
    pub seeds: Vec<u64>,
    pub ready_seconds: u64,
    pub viewers_per_edge: u64,
    /// What an edge really holds, as a fraction of `viewers_per_edge`.
    pub true_capacity_factor: f64,
    pub runs: Vec<SeedRun>,
    pub policies: Vec<FamilyPolicy>,
}

/// Generates and simulates every seed of `--shape` (`--seeds`, default 1).
pub fn simulate_family(args: &SimulateArgs) -> Result<FamilyReport> {
    let shape = args.shape.context("simulate_family needs --shape")?;
    let seeds = args.seeds.clone().map_or_else(|| vec![1], |s| s.0);
    let mut runs = Vec::with_capacity(seeds.len());
    let mut viewers_per_edge = 0;
    for &seed in &seeds {
        let (trace, check) = generate(shape, seed, None);
        if !check.passed {
            bail!(
                "the generated {} trace of seed {seed} misses its calibration target: {}",
                shape.name(),
                check.summary
            );
        }
        let label = format!("{} seed {seed}", shape.name());
        let (report, _, _) = super::simulate_loaded(&trace, &label, args)
            .with_context(|| format!("simulating {label}"))?;
        viewers_per_edge = report.viewers_per_edge;
        runs.push(SeedRun {
            seed,
            header: report.header,
            peak_viewers: report.peak_viewers,
            reactive_underprovisioned_viewer_seconds: report
                .reactive_underprovisioned_viewer_seconds,
            oracle_relay_seconds: report.oracle_relay_seconds,
            policies: report.policies,
        });
    }
    let names: Vec<String> = runs
        .first()
        .map(|r| r.policies.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    let policies = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let of = |run: &SeedRun| run.policies[i].clone();
            let short: Vec<(f64, f64)> = runs
                .iter()
                .map(|r| {
                    (
                        of(r).underprovisioned_viewer_seconds,
                        r.reactive_underprovisioned_viewer_seconds,
                    )
                })
                .collect();
            let cost: Vec<(f64, f64)> = runs
                .iter()
                .map(|r| (of(r).relay_seconds, r.oracle_relay_seconds))
                .collect();
            FamilyPolicy {
                name: name.clone(),
                shortfall_vs_reactive: Spread::of(&short),
                cost_vs_oracle: Spread::of(&cost),
                underprovisioned_viewer_seconds_total: short.iter().map(|p| p.0).sum(),
                peak_shortfall_max: runs
                    .iter()
                    .map(|r| of(r).peak_shortfall)
                    .fold(0.0, f64::max),
            }
        })
        .collect();
    Ok(FamilyReport {
        shape: shape.name().to_owned(),
        calibration: spec(shape, seeds.first().copied().unwrap_or(1))
            .calibration
            .to_owned(),
        seeds,
        ready_seconds: args.ready_seconds,
        viewers_per_edge,
        true_capacity_factor: args.true_capacity_factor,
        runs,
        policies,
    })
}

fn spread(s: &Spread) -> String {
    match (s.min, s.max) {
        (Some(lo), Some(hi)) => format!(
            "{} {} [{:.3}-{:.3}]",
            times(s.pooled),
            times(s.median),
            lo,
            hi
        ),
        _ => format!("{} - -", times(s.pooled)),
    }
}

/// The family table: one line per seed, then one per policy.
pub fn table(report: &FamilyReport) -> String {
    let seeds = match (report.seeds.first(), report.seeds.last()) {
        (Some(a), Some(b)) if report.seeds.len() == (b - a + 1) as usize => format!("{a}..{b}"),
        _ => report
            .seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    };
    let mut out = format!(
        "shape {}, seeds {seeds} ({} traces); ready time {} s, {} viewers per edge\n\
         calibrated to: {}\n",
        report.shape,
        report.seeds.len(),
        report.ready_seconds,
        count(report.viewers_per_edge as f64),
        report.calibration
    );
    if report.true_capacity_factor != 1.0 {
        out.push_str(&format!(
            "edges really hold {} viewers ({}x the configured edge size)\n",
            count(report.viewers_per_edge as f64 * report.true_capacity_factor),
            report.true_capacity_factor
        ));
    }
    out.push_str("per seed: under-prov. viewer-s vs reactive / relay-s vs oracle\n");
    out.push_str(&format!(
        "{:>6} {:>11} {:>16}",
        "seed", "peak", "reactive short"
    ));
    for p in &report.policies {
        out.push_str(&format!(" {:>17}", p.name));
    }
    out.push('\n');
    for run in &report.runs {
        out.push_str(&format!(
            "{:>6} {:>11} {:>16}",
            run.seed,
            count(run.peak_viewers),
            count(run.reactive_underprovisioned_viewer_seconds)
        ));
        for p in &run.policies {
            out.push_str(&format!(
                " {:>17}",
                format!(
                    "{} / {:.3}x",
                    times(p.shortfall_vs_reactive),
                    p.cost_vs_oracle
                )
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "family: ratio pooled over the seeds (sum / sum), median [min-max] of the per-seed \
         ratios\n",
    );
    out.push_str(&format!(
        "{:<9} {:>34} {:>34} {:>22} {:>15}\n",
        "policy",
        "short vs reactive: pooled median",
        "cost vs oracle: pooled median",
        "under-prov. viewer-s",
        "peak shortfall"
    ));
    for p in &report.policies {
        out.push_str(&format!(
            "{:<9} {:>34} {:>34} {:>22} {:>15}\n",
            p.name,
            spread(&p.shortfall_vs_reactive),
            spread(&p.cost_vs_oracle),
            count(p.underprovisioned_viewer_seconds_total),
            count(p.peak_shortfall_max)
        ));
    }
    out
}

pub fn run(args: &SimulateArgs) -> Result<()> {
    let started = Instant::now();
    let report = simulate_family(args)?;
    print!("{}", table(&report));
    eprintln!(
        "generated and simulated {} seeds in {:.2} s",
        report.seeds.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_as_ranges_single_numbers_and_lists() {
        assert_eq!("1..4".parse(), Ok(SeedRange(vec![1, 2, 3, 4])));
        assert_eq!("3..=3".parse(), Ok(SeedRange(vec![3])));
        assert_eq!("7".parse(), Ok(SeedRange(vec![7])));
        assert_eq!("5, 9,2".parse(), Ok(SeedRange(vec![5, 9, 2])));
        assert_eq!(
            "4..2".parse::<SeedRange>(),
            Err(SeedRangeError::Empty(4, 2))
        );
        assert!(matches!(
            "x..2".parse::<SeedRange>(),
            Err(SeedRangeError::NotASeed(_))
        ));
        assert_eq!(
            "1..5000".parse::<SeedRange>(),
            Err(SeedRangeError::TooMany(5000))
        );
    }

    #[test]
    fn spreads_pool_sums_and_skip_seeds_without_a_reference() {
        let s = Spread::of(&[(1.0, 4.0), (3.0, 4.0), (5.0, 0.0), (2.0, 2.0)]);
        // Pooled: (1 + 3 + 5 + 2) / (4 + 4 + 0 + 2).
        assert_eq!(s.pooled, Some(1.1));
        assert_eq!(s.seeds, 3);
        assert_eq!(
            (s.min, s.median, s.max),
            (Some(0.25), Some(0.75), Some(1.0))
        );
        let even = Spread::of(&[(1.0, 4.0), (3.0, 4.0)]);
        assert_eq!(even.median, Some(0.5));
        let none = Spread::of(&[(0.0, 0.0)]);
        assert_eq!((none.pooled, none.median), (None, None));
    }
}
