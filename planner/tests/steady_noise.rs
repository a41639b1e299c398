//! A steady audience counted with noise keeps a constant edge count: the forecast's own
//! noise must not move edges up and down (the scale-down hysteresis, docs/PLANNER.md).

mod common;

use common::input;
use proptest::prelude::*;
use surge_planner::{PlannerState, RegionInput, RelayLoad, Tier, TierCount, ViewerSample};

/// The shipped `scaleDownNoiseBand`.
fn default_band() -> f64 {
    surge_planner::ScalingSettings::default().scale_down_noise_band
}

/// Deterministic noise in [-1, 1) (SplitMix64), so every seed is reproducible.
fn noise(seed: u64, i: u64) -> f64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// A fleet that follows the plan every 5 s for `hours`, starting with the edges the audience
/// needs: edges asked for are Ready 30 s later, removals take effect at once (pending ones
/// first), the samples (one every 5 s, 5 s old, as the operator scrapes) count `audience`
/// viewers ± `noise_fraction` (uniform), the viewers spread over the Ready edges. Returns the
/// edge count asked for at every reconcile, with the time. `band` is `scaleDownNoiseBand`.
fn closed_loop(
    audience: f64,
    noise_fraction: f64,
    seed: u64,
    hours: f64,
    band: f64,
) -> Vec<(u64, u32)> {
    let sample = |t: u64| audience * (1.0 + noise_fraction * noise(seed, t / 5));
    let end = (hours * 3_600.0) as u64;
    let mut state = PlannerState::default();
    let start = ((audience * 1.2 / 2_000.0).ceil() as u32).max(1);
    let mut requested = start;
    let mut ready = start;
    let mut pending: Vec<(u64, u32)> = Vec::new();
    let mut history = Vec::new();
    for now in (120..=end).step_by(5) {
        ready += pending
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, n)| n)
            .sum::<u32>();
        pending.retain(|(at, _)| *at > now);
        let samples: Vec<ViewerSample> = (now.saturating_sub(120)..=now - 5)
            .step_by(5)
            .map(|t| ViewerSample {
                t_s: t as f64,
                viewers: sample(t).round() as u64,
            })
            .collect();
        let viewers = samples.last().map_or(0, |s| s.viewers);
        let per_edge = viewers / u64::from(ready.max(1));
        let relays = (0..requested)
            .map(|i| RelayLoad {
                name: format!("eu-e{i}"),
                tier: Tier::Edge,
                viewers: if i < ready { per_edge } else { 0 },
                ready: i < ready,
            })
            .collect();
        let r = RegionInput {
            name: "eu".into(),
            samples,
            edges: TierCount {
                relays: requested,
                ready,
            },
            relays,
            ..RegionInput::default()
        };
        let mut i = input(now as f64, vec![r]);
        i.scaling.scale_down_noise_band = band;
        let out = surge_planner::plan(&i, &state).unwrap();
        state = out.state;
        let desired = out.regions[0].desired_edges;
        if desired > requested {
            pending.push((now + 30, desired - requested));
        } else {
            let mut remove = requested - desired;
            while remove > 0 {
                match pending.last_mut() {
                    Some((_, n)) if *n > 0 => {
                        *n -= 1;
                        remove -= 1;
                    }
                    Some(_) => {
                        pending.pop();
                    }
                    None => {
                        ready -= remove;
                        remove = 0;
                    }
                }
            }
        }
        requested = desired;
        history.push((now, desired));
    }
    history
}

/// The changes of the edge count, as (time, edges after).
fn changes(history: &[(u64, u32)]) -> Vec<(u64, u32)> {
    history
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| w[1])
        .collect()
}

/// A reversal: the count went down after going up, or up after going down.
fn reversals(history: &[(u64, u32)]) -> usize {
    let steps: Vec<i64> = history
        .windows(2)
        .filter(|w| w[0].1 != w[1].1)
        .map(|w| i64::from(w[1].1) - i64::from(w[0].1))
        .collect();
    steps
        .windows(2)
        .filter(|s| s[0].signum() != s[1].signum())
        .count()
}

#[test]
fn a_steady_noisy_audience_keeps_its_edge_count() {
    // The case found in the field: ~19.3k viewers counted ±1%. The forecast's 12 edges
    // (23,160 with headroom) sit near 12 edges' 24,000; the slope fitted to the noise,
    // extrapolated a 65 s horizon, crosses to 13 now and then.
    for seed in 1..=6 {
        let history = closed_loop(19_300.0, 0.01, seed, 4.0, default_band());
        let after = changes(&history);
        assert_eq!(
            reversals(&history),
            0,
            "seed {seed}: edges moved up and down: {after:?}"
        );
        assert!(after.len() <= 1, "seed {seed}: {after:?}");
        // Without the band: 12 ↔ 13 every 5–10 minutes, as found in the field.
        let without = closed_loop(19_300.0, 0.01, seed, 4.0, 0.0);
        assert!(
            reversals(&without) >= 10,
            "seed {seed}: {:?}",
            changes(&without)
        );
    }
}

#[test]
fn noise_levels_and_audiences_near_an_edge_boundary_do_not_flap() {
    for (audience, noise) in [
        (19_300.0, 0.005),
        (19_300.0, 0.0075),
        (19_800.0, 0.01),
        (9_700.0, 0.01),
        (39_000.0, 0.01),
        (60_000.0, 0.01),
    ] {
        for seed in 11..=13 {
            let history = closed_loop(audience, noise, seed, 3.0, default_band());
            assert_eq!(
                reversals(&history),
                0,
                "{audience} ±{noise}, seed {seed}: {:?}",
                changes(&history)
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn steady_noisy_audiences_never_reverse(
        audience in 3_000.0f64..60_000.0,
        noise in 0.0f64..0.01,
        seed in 0u64..1_000,
    ) {
        let history = closed_loop(audience, noise, seed, 2.0, default_band());
        prop_assert_eq!(reversals(&history), 0, "{:?}", changes(&history));
    }
}
