//! One planning step: estimate, forecast, size, flash-crowd mode, scale-down rules, tree.

use std::collections::BTreeSet;

use crate::estimate::{Estimate, estimate, newest_rise};
use crate::format::{count, signed};
use crate::input::{PlanInput, RegionInput, RelayLoad, Tier};
use crate::output::{Plan, RegionPlan, ScaleChange};
use crate::quality::{Quality, assess};
use crate::schedule::{ScheduledDemand, scheduled_demand};
use crate::settings::{ScalingSettings, TreeSettings};
use crate::sizing::edges_for_viewers;
use crate::state::{EdgeSize, FlashState, PlannerState, Recommendation, RegionState};
use crate::{PlanError, tree};

/// Plans every region of one Stream. Pure and deterministic: the same input and state give
/// the same plan.
pub fn plan(input: &PlanInput, state: &PlannerState) -> Result<Plan, PlanError> {
    input.tree.validate()?;
    input.scaling.validate()?;
    if !input.now_s.is_finite() {
        return Err(PlanError::InvalidInput(
            "nowS must be a finite number".into(),
        ));
    }
    let mut names = BTreeSet::new();
    for r in &input.regions {
        if r.name.is_empty() {
            return Err(PlanError::InvalidInput("a region has an empty name".into()));
        }
        if !names.insert(r.name.as_str()) {
            return Err(PlanError::InvalidInput(format!(
                "region `{}` is listed twice",
                r.name
            )));
        }
        if r.bounds.is_some() {
            input
                .tree
                .for_region(r.bounds.as_ref())
                .validate()
                .map_err(|e| PlanError::InvalidInput(format!("region `{}`: {e}", r.name)))?;
        }
    }
    let ready_s = input
        .relay_ready_seconds
        .filter(|s| s.is_finite() && *s >= 0.0);

    let mut regions: Vec<&RegionInput> = input.regions.iter().collect();
    regions.sort_by(|a, b| a.name.cmp(&b.name));

    // Viewers per region now, for splitting a scheduled event's audience.
    let viewers_now: Vec<(&str, f64)> = regions
        .iter()
        .map(|r| {
            let level = estimate(&r.samples, input.scaling.estimation_window_seconds)
                .map_or(0.0, |e| e.level.max(0.0));
            (r.name.as_str(), level)
        })
        .collect();

    let mut next_state = PlannerState::default();
    let mut plans = Vec::with_capacity(regions.len());
    for region in &regions {
        let previous = state.regions.get(&region.name).cloned().unwrap_or_default();
        let (plan, region_state) = plan_region(input, ready_s, region, &viewers_now, previous);
        next_state.regions.insert(region.name.clone(), region_state);
        plans.push(plan);
    }

    let edges: Vec<u32> = plans.iter().map(|p| p.desired_edges).collect();
    let built = tree::build(&edges, input.tree.fanout);
    for ((plan, region), reflectors) in plans.iter_mut().zip(&regions).zip(built.reflectors) {
        plan.reflectors = reflectors;
        plan.remove
            .extend(reflector_removals(region, &plan.reflectors));
    }

    let depth = plans
        .iter()
        .map(|p| p.reflectors.len() as u32 + 1)
        .max()
        .unwrap_or(0);
    let flash: Vec<String> = plans
        .iter()
        .filter_map(|p| {
            p.flash_crowd_reason
                .as_ref()
                .map(|why| format!("{}: {why}", p.name))
        })
        .collect();
    let mut reason = plans
        .iter()
        .map(|p| format!("{}: {}", p.name, p.reason))
        .collect::<Vec<_>>()
        .join("; ");
    if reason.is_empty() {
        reason = "no regions to plan".into();
    }
    if built.origin_children > input.tree.fanout {
        reason.push_str(&format!(
            "; warning: {} regions exceed fanout {}, the origin feeds {} relays",
            plans.len(),
            input.tree.fanout,
            built.origin_children
        ));
    }
    Ok(Plan {
        regions: plans,
        origin_children: built.origin_children,
        depth,
        flash_crowd: !flash.is_empty(),
        flash_crowd_reason: (!flash.is_empty()).then(|| flash.join("; ")),
        reason,
        state: next_state,
    })
}

fn plan_region(
    input: &PlanInput,
    ready_s: Option<f64>,
    region: &RegionInput,
    viewers_now: &[(&str, f64)],
    mut state: RegionState,
) -> (RegionPlan, RegionState) {
    let now = input.now_s;
    let scaling = &input.scaling;
    let configured = input.tree.for_region(region.bounds.as_ref());
    // Quality as a second signal: every sizing rule below uses the edge size the edges'
    // measured load says they have, when it is below viewersPerEdge.
    let quality = assess(
        region.edge_load.as_ref(),
        configured.viewers_per_edge,
        scaling.headroom,
        &scaling.quality,
    );
    let quality = Quality {
        viewers_per_edge: hold_edge_size(&mut state, &quality, now, scaling),
        ..quality
    };
    let region_tree = TreeSettings {
        viewers_per_edge: quality.viewers_per_edge,
        ..configured.clone()
    };
    let tree = &region_tree;
    let current = region.edges.relays;
    let base_horizon = match ready_s {
        Some(ready) => scaling
            .lead_time_seconds
            .max(scaling.metric_delay_seconds + ready),
        None => scaling.lead_time_seconds,
    };
    // Asked for one horizon before an event's start, the edges are Ready at the start.
    let scheduled = scheduled_demand(
        &scaling.schedule,
        &region.name,
        viewers_now,
        now,
        base_horizon,
        scaling.schedule_grace_seconds,
    );
    let scheduled_edges = scheduled
        .as_ref()
        .map_or(0, |d| edges_for_viewers(d.viewers, tree, 0.0));
    let scheduled_viewers = scheduled.as_ref().map_or(0.0, |d| d.viewers);

    let Some(est) = estimate(&region.samples, scaling.estimation_window_seconds) else {
        let desired = current
            .max(scheduled_edges)
            .clamp(tree.min_edges, tree.max_edges);
        let reason = match &scheduled {
            Some(d) if desired > current => format!(
                "scale up {current}→{desired} edges: no viewer samples yet{}",
                schedule_note(d)
            ),
            _ => format!("no viewer samples yet; keeping {desired} edges"),
        };
        let plan = RegionPlan {
            name: region.name.clone(),
            level_viewers: 0.0,
            growth_per_minute: 0.0,
            horizon_seconds: base_horizon,
            forecast_viewers: 0.0,
            sized_edges: desired,
            viewers_per_edge: tree.viewers_per_edge,
            edge_load: quality.mean_load,
            scheduled_viewers,
            desired_edges: desired,
            reflectors: Vec::new(),
            change: change(current, desired),
            flash_crowd: state.flash.is_some(),
            flash_crowd_reason: state
                .flash
                .as_ref()
                .map(|f| flash_reason(f, 0.0, 0.0, scaling)),
            remove: edge_removals(region, current.saturating_sub(desired)),
            removal_order: removal_order(&region.relays),
            reason,
        };
        return (plan, state);
    };
    state.first_seen_s.get_or_insert(now);

    let mut est = est;
    // At a crowd's onset the window's median slope lags by a few samples: a new high far
    // above both thresholds counts at once (see `onset_rise`).
    let onset = onset_rise(region, &est, scaling);
    est.slope_per_s = est.slope_per_s.max(onset);
    // At a step's top the newest half of the window has stopped growing while the whole
    // window still carries the step's slope: the newest half's slope is the growth (see
    // `step_top`).
    if let Some(recent) = step_top(&est, onset, scaling) {
        est.slope_per_s = recent;
    }
    let growth_pm = est.slope_per_s * 60.0;
    update_flash(&mut state, &est, growth_pm, scaling, now);
    let horizon = match state.flash {
        Some(_) => base_horizon * scaling.flash_crowd.lead_time_factor,
        None => base_horizon,
    };
    let forecast = est.at(now + horizon);
    // Never plan below what viewers need right now, whatever the trend says.
    let demand = forecast.max(est.latest).max(est.level);
    // The warm pool sits on top of the forecast, so it is spare capacity at every size.
    let sized = edges_for_viewers(demand, tree, scaling.headroom)
        .saturating_add(scaling.warm_edges)
        .min(tree.max_edges.max(tree.min_edges));

    let mut target = sized;
    let mut multiplicative = false;
    if let Some(flash) = state.flash.as_mut() {
        let step_every = ready_s.unwrap_or(scaling.lead_time_seconds);
        let due = flash.last_step_s.is_none_or(|t| now - t >= step_every);
        // Multiplicative steps only when the crowd is outrunning the fleet: today's viewers
        // (with headroom) already exceed what every edge asked for can serve. While the
        // linear forecast keeps ahead, a step would only overshoot.
        let outrun = est.latest.max(est.level) * (1.0 + scaling.headroom)
            > f64::from(current) * tree.viewers_per_edge as f64;
        if sized > current && due && outrun {
            let stepped = (current.max(1) as f64 * scaling.flash_crowd.scale_up_factor).ceil();
            let stepped = stepped.min(tree.max_edges as f64) as u32;
            if stepped > sized {
                target = stepped;
                multiplicative = true;
            }
            flash.last_step_s = Some(now);
        }
    }
    // An announced audience is a floor under the forecast, never a ceiling.
    let mut from_schedule = None;
    if let Some(d) = scheduled.as_ref().filter(|_| scheduled_edges > target) {
        target = scheduled_edges;
        multiplicative = false;
        from_schedule = Some(schedule_note(d));
    }
    // Scale-down hysteresis: going down, the edges must also serve the forecast plus
    // `scaleDownNoiseBand` times the samples' spread around the window's line, so the
    // forecast's noise around an edge boundary does not take away the edge it asked for and
    // then ask for it again. A clean count (no spread) scales down as before.
    let band = scaling.scale_down_noise_band * est.spread;
    let kept = edges_for_viewers(demand + band, tree, scaling.headroom)
        .saturating_add(scaling.warm_edges)
        .min(tree.max_edges.max(tree.min_edges))
        .max(target);
    record(&mut state.recommendations, now, target, scaling);
    record(&mut state.noise_keep, now, kept, scaling);
    let kept = state.noise_keep.first().map_or(kept, |r| r.edges);

    let mut why = format!(
        "forecast {} viewers in {:.0} s (level {}, growth {}/min)",
        count(forecast),
        horizon,
        count(est.level),
        signed(growth_pm)
    );
    if scaling.warm_edges > 0 {
        why.push_str(&format!(", {} warm edges", scaling.warm_edges));
    }
    if onset > 0.0 {
        why.push_str(&format!(", onset +{}/min", count(onset * 60.0)));
    }
    why.push_str(&quality_note(
        &quality,
        configured.viewers_per_edge,
        scaling,
    ));
    let (desired, reason) = if target >= current {
        if target > current {
            state.last_scale_up_s = Some(now);
            let how = if multiplicative {
                format!(
                    ", flash-crowd step ×{}",
                    scaling.flash_crowd.scale_up_factor
                )
            } else {
                String::new()
            };
            let how = format!("{how}{}", from_schedule.as_deref().unwrap_or(""));
            (
                target,
                format!("scale up {current}→{target} edges: {why}{how}"),
            )
        } else {
            let held = from_schedule.as_deref().unwrap_or("");
            (target, format!("hold {current} edges: {why}{held}"))
        }
    } else {
        let fleet = Fleet {
            current,
            idle: idle_edges(region),
            oversized: oversized(&est, growth_pm, current, tree, scaling),
            keep: quality.keep_edges,
            noise_band: (kept, band),
            flash: state.flash.is_some(),
        };
        scale_down(&mut state, &fleet, target, tree, scaling, now, &why)
    };
    let desired = desired.clamp(tree.min_edges, tree.max_edges);

    let plan = RegionPlan {
        name: region.name.clone(),
        level_viewers: est.level,
        growth_per_minute: growth_pm,
        horizon_seconds: horizon,
        forecast_viewers: forecast,
        sized_edges: sized,
        viewers_per_edge: tree.viewers_per_edge,
        edge_load: quality.mean_load,
        scheduled_viewers,
        desired_edges: desired,
        reflectors: Vec::new(),
        change: change(current, desired),
        flash_crowd: state.flash.is_some(),
        flash_crowd_reason: state
            .flash
            .as_ref()
            .map(|f| flash_reason(f, growth_pm, est.level, scaling)),
        remove: edge_removals(region, current.saturating_sub(desired)),
        removal_order: removal_order(&region.relays),
        reason,
    };
    (plan, state)
}

/// The onset rise (viewers per second) when the newest sample is a new high at least
/// `onsetFactor` times both flash-crowd thresholds above the window's earlier samples; else 0.
fn onset_rise(region: &RegionInput, est: &Estimate, scaling: &ScalingSettings) -> f64 {
    let fc = &scaling.flash_crowd;
    if !fc.enabled || fc.onset_factor <= 0.0 {
        return 0.0;
    }
    let rise = newest_rise(&region.samples, scaling.estimation_window_seconds);
    let per_min = rise * 60.0;
    let hot = per_min >= fc.onset_factor * fc.min_growth_per_minute
        && per_min >= fc.onset_factor * fc.relative_growth_per_minute * est.level;
    if hot { rise } else { 0.0 }
}

/// The newest half's slope when the whole window's growth is flash-crowd growth (above both
/// thresholds) but the newest half's is not, and the newest sample is no onset: the crowd
/// stopped growing within the last half window. `None` otherwise.
fn step_top(est: &Estimate, onset: f64, scaling: &ScalingSettings) -> Option<f64> {
    let fc = &scaling.flash_crowd;
    if !fc.enabled || onset > 0.0 {
        return None;
    }
    let recent = est.newest_half_slope_per_s?;
    let hot = |per_s: f64| {
        let per_min = per_s * 60.0;
        per_min >= fc.min_growth_per_minute && per_min >= fc.relative_growth_per_minute * est.level
    };
    (hot(est.slope_per_s) && !hot(recent)).then_some(recent)
}

/// Edges that serve nobody: not Ready yet, or Ready with no viewers. An edge that is not
/// Ready but has viewers is full (its readiness turns it away from new viewers), not idle.
fn idle_edges(region: &RegionInput) -> u32 {
    let idle = region
        .relays
        .iter()
        .filter(|r| r.tier == Tier::Edge && r.viewers == 0)
        .count();
    u32::try_from(idle).unwrap_or(u32::MAX)
}

/// The audience (with headroom) fills at most `collapseUtilization` of the edges and is not
/// growing: the crowd left (departures dominated) or a flash-crowd forecast overshot. Also in
/// flash-crowd mode: the mode lasts `exitAfterSeconds` after the growth stopped, and an
/// overshoot of the onset's forecast is what it leaves behind.
fn oversized(
    est: &Estimate,
    growth_pm: f64,
    current: u32,
    tree: &TreeSettings,
    scaling: &ScalingSettings,
) -> bool {
    let used = est.level.max(est.latest) * (1.0 + scaling.headroom);
    let serves = f64::from(current) * tree.viewers_per_edge as f64;
    scaling.collapse_utilization > 0.0
        && growth_pm < scaling.flash_crowd.min_growth_per_minute
        && used <= scaling.collapse_utilization * serves
}

/// What scale-down needs to know about a region's edges.
struct Fleet {
    current: u32,
    /// Edges serving nobody (see [`idle_edges`]).
    idle: u32,
    /// See [`oversized`].
    oversized: bool,
    /// Fewer edges would run hot on average ([`Quality::keep_edges`]).
    keep: u32,
    /// The edges for the forecast plus the counts' noise band, and that band in viewers: a
    /// bounded step of loaded edges goes no lower.
    noise_band: (u32, f64),
    /// In flash-crowd mode.
    flash: bool,
}

/// The edge size to plan with: a smaller measured size counts at once, a larger one only once
/// the smaller sizes measured within the stabilisation window have aged out of it, as a
/// scale-down waits (a larger edge size is one). So a bitrate that wavers around a value does
/// not move edges up and down with it.
fn hold_edge_size(
    state: &mut RegionState,
    q: &Quality,
    now: f64,
    scaling: &ScalingSettings,
) -> u64 {
    let sizes = &mut state.edge_sizes;
    if !scaling.quality.enabled {
        sizes.clear();
        return q.viewers_per_edge;
    }
    let oldest = now - scaling.scale_down_stabilization_seconds;
    sizes.retain(|s| s.t_s >= oldest);
    if q.measured_viewers_per_edge.is_some() {
        while sizes
            .last()
            .is_some_and(|s| s.viewers_per_edge >= q.viewers_per_edge)
        {
            sizes.pop();
        }
        sizes.push(EdgeSize {
            t_s: now,
            viewers_per_edge: q.viewers_per_edge,
        });
    }
    sizes
        .first()
        .map_or(q.viewers_per_edge, |s| s.viewers_per_edge)
        .min(q.viewers_per_edge)
}

/// The quality rule's part of the reason, when it has something to say.
fn quality_note(q: &Quality, configured: u64, scaling: &ScalingSettings) -> String {
    let Some(mean) = q.mean_load else {
        return String::new();
    };
    let mut note = String::new();
    if q.resized(configured) {
        note.push_str(&format!(
            ", edges hold {} viewers by their load (viewersPerEdge {})",
            count(q.viewers_per_edge as f64),
            count(configured as f64)
        ));
    }
    if q.hot {
        note.push_str(&format!(
            ", edges run hot ({:.0}% mean load, threshold {:.0}%)",
            mean * 100.0,
            scaling
                .quality
                .hot_load
                .max(scaling.quality.load_at_viewers_per_edge)
                * 100.0
        ));
    } else if !note.is_empty() {
        note.push_str(&format!(" at {:.0}% mean load", mean * 100.0));
    }
    note
}

fn schedule_note(d: &ScheduledDemand) -> String {
    format!(
        ", scheduled event at t={:.0}s: ready for {} viewers until t={:.0}s",
        d.start_s,
        count(d.viewers),
        d.until_s
    )
}

fn change(current: u32, desired: u32) -> ScaleChange {
    match desired.cmp(&current) {
        std::cmp::Ordering::Greater => ScaleChange::Up,
        std::cmp::Ordering::Less => ScaleChange::Down,
        std::cmp::Ordering::Equal => ScaleChange::Hold,
    }
}

/// Enters flash-crowd mode on growth above both thresholds; leaves it after growth stayed
/// below them for `exitAfterSeconds`.
fn update_flash(
    state: &mut RegionState,
    est: &Estimate,
    growth_pm: f64,
    scaling: &ScalingSettings,
    now: f64,
) {
    let fc = &scaling.flash_crowd;
    let hot = fc.enabled
        && growth_pm >= fc.min_growth_per_minute
        && growth_pm >= fc.relative_growth_per_minute * est.level;
    state.flash = match state.flash.take() {
        None if hot => Some(FlashState {
            since_s: now,
            calm_since_s: None,
            last_step_s: None,
            peak_growth_per_minute: growth_pm,
        }),
        None => None,
        Some(_) if !fc.enabled => None,
        Some(mut f) if hot => {
            f.calm_since_s = None;
            f.peak_growth_per_minute = f.peak_growth_per_minute.max(growth_pm);
            Some(f)
        }
        Some(mut f) => {
            let calm_since = *f.calm_since_s.get_or_insert(now);
            (now - calm_since < fc.exit_after_seconds).then_some(f)
        }
    };
}

fn flash_reason(f: &FlashState, growth_pm: f64, level: f64, scaling: &ScalingSettings) -> String {
    let fc = &scaling.flash_crowd;
    let mut s = format!(
        "growth {}/min on {} viewers (thresholds: {}/min and {:.0}% of viewers per minute), \
         peak {}/min, since t={:.0}s",
        signed(growth_pm),
        count(level),
        count(fc.min_growth_per_minute),
        fc.relative_growth_per_minute * 100.0,
        signed(f.peak_growth_per_minute),
        f.since_s
    );
    if let Some(calm) = f.calm_since_s {
        s.push_str(&format!(
            "; below thresholds since t={calm:.0}s, ends after {:.0} s",
            fc.exit_after_seconds
        ));
    }
    s
}

/// Keeps the window's recommendations as a decreasing sequence (the front is the maximum).
fn record(recs: &mut Vec<Recommendation>, now: f64, edges: u32, scaling: &ScalingSettings) {
    while recs.last().is_some_and(|r| r.edges <= edges) {
        recs.pop();
    }
    recs.push(Recommendation { t_s: now, edges });
    let oldest = now - scaling.scale_down_smoothing_seconds;
    recs.retain(|r| r.t_s >= oldest);
}

fn scale_down(
    state: &mut RegionState,
    fleet: &Fleet,
    target: u32,
    tree: &TreeSettings,
    scaling: &ScalingSettings,
    now: f64,
    why: &str,
) -> (u32, String) {
    let current = fleet.current;
    let window = scaling.scale_down_stabilization_seconds;
    let smoothing = scaling.scale_down_smoothing_seconds;
    if current > tree.max_edges {
        state.last_scale_down_s = Some(now);
        return (
            tree.max_edges,
            format!("scale down {current}→{} edges: maxEdges", tree.max_edges),
        );
    }
    let recommended = state
        .recommendations
        .first()
        .map_or(target, |r| r.edges)
        .max(target)
        .max(tree.min_edges);
    // Never fewer edges than carry the measured load below the hot threshold.
    let stabilized = recommended.max(fleet.keep.min(current));
    let excess = current.saturating_sub(stabilized);
    let observed = state.first_seen_s.map_or(0.0, |t| now - t);
    // Idle edges the smoothed forecast does not need go at once: they protect no viewer.
    // Only the smoothing window (and a first window of observation) holds them.
    // With an oversized fleet, or in flash-crowd mode when the plan is at most
    // `collapseUtilization` of the window's highest (an onset forecast that overshot), idle
    // edges — mostly pending ones — go down to the current plan, not to the window's highest:
    // a pending edge costs as much as a Ready one, and no noise around a steady audience
    // halves a plan.
    let overshot =
        fleet.flash && f64::from(target) <= scaling.collapse_utilization * f64::from(recommended);
    let idle_rec = if fleet.oversized || overshot {
        target.max(tree.min_edges).max(fleet.keep.min(current))
    } else {
        stabilized
    };
    let idle_excess = current.saturating_sub(idle_rec);
    let idle = if observed >= smoothing {
        fleet.idle.min(idle_excess)
    } else {
        0
    };
    // Loaded edges: the stabilisation rules, unless the fleet is oversized.
    let (loaded, held) = if observed < window {
        (
            0,
            format!("planning for {observed:.0} s, scale-down waits {window:.0} s"),
        )
    } else if let Some(down) = state
        .last_scale_down_s
        .filter(|t| now - t < scaling.scale_down_step_seconds)
    {
        (
            0,
            format!(
                "scaled down {:.0} s ago, one step per {:.0} s",
                now - down,
                scaling.scale_down_step_seconds
            ),
        )
    } else if fleet.oversized {
        // Down to the current plan, not the window's highest: no counting noise empties half
        // a fleet, and the window's highest is the forecast that overshot or the audience
        // that left.
        (current.saturating_sub(idle_rec), String::new())
    } else if let Some(up) = state.last_scale_up_s.filter(|t| now - t < window) {
        (
            0,
            format!(
                "scaled up {:.0} s ago, scale-down waits {window:.0} s",
                now - up
            ),
        )
    } else if fleet.noise_band.0 >= current {
        (
            0,
            format!(
                "{} edges serve the forecast plus the counts' noise band ({} viewers)",
                fleet.noise_band.0,
                count(fleet.noise_band.1)
            ),
        )
    } else {
        let step = ((current as f64 * scaling.max_scale_down_fraction).floor() as u32).max(1);
        let above_band = current - fleet.noise_band.0.max(stabilized);
        (excess.min(step).min(above_band), String::new())
    };
    let remove = idle.max(loaded);
    if remove == 0 {
        let held = if excess == 0 && stabilized > recommended {
            format!("fewer than {stabilized} edges would run hot")
        } else if excess == 0 {
            format!("highest recommendation in the last {smoothing:.0} s is {stabilized}")
        } else {
            held
        };
        return (
            current,
            format!("hold {current} edges (wants {target}): {held}; {why}"),
        );
    }
    // The step clock only runs for loaded edges, so releasing idle ones never delays them.
    if loaded > idle {
        state.last_scale_down_s = Some(now);
    }
    let desired = current - remove;
    let how = if loaded > idle && fleet.oversized {
        format!(
            "oversized: the audience fills at most {:.0}% and is not growing",
            scaling.collapse_utilization * 100.0
        )
    } else if loaded > idle {
        format!(
            "at most {:.0}% per step",
            scaling.max_scale_down_fraction * 100.0
        )
    } else {
        format!("{remove} idle")
    };
    let load = if stabilized > recommended {
        format!(", {stabilized} keep the load below the hot threshold")
    } else {
        String::new()
    };
    (
        desired,
        format!(
            "scale down {current}→{desired} edges (wants {target}, highest in {smoothing:.0} \
             s: {recommended}{load}, {how}): {why}"
        ),
    )
}

/// Least loaded first: fewest viewers, not-Ready before Ready at equal viewers (a relay that
/// is not Ready yet serves nobody; one that is not Ready because it is full serves many),
/// then by name so the order is deterministic.
fn least_loaded_first<'a>(relays: impl Iterator<Item = &'a RelayLoad>) -> Vec<&'a RelayLoad> {
    let mut list: Vec<&RelayLoad> = relays.collect();
    list.sort_by(|a, b| {
        a.viewers
            .cmp(&b.viewers)
            .then(a.ready.cmp(&b.ready))
            .then(a.name.cmp(&b.name))
    });
    list
}

fn removal_order(relays: &[RelayLoad]) -> Vec<String> {
    least_loaded_first(relays.iter())
        .into_iter()
        .map(|r| r.name.clone())
        .collect()
}

fn edge_removals(region: &RegionInput, how_many: u32) -> Vec<String> {
    least_loaded_first(region.relays.iter().filter(|r| r.tier == Tier::Edge))
        .into_iter()
        .take(how_many as usize)
        .map(|r| r.name.clone())
        .collect()
}

/// Reflectors to delete so that `region` ends up with `planned` reflectors per level
/// (index 0 = level 1), least loaded first. [`plan`] already lists these in
/// `RegionPlan::remove`; a caller that rebuilds the tree itself (e.g. with
/// [`crate::build_tree`] over regions planned one by one) calls this with its own tree.
pub fn reflector_removals(region: &RegionInput, planned: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    for (index, existing) in region.reflectors.iter().enumerate() {
        let level = index as u32 + 1;
        let keep = planned.get(index).copied().unwrap_or(0);
        let extra = existing.relays.saturating_sub(keep);
        out.extend(
            least_loaded_first(
                region
                    .relays
                    .iter()
                    .filter(|r| r.tier == Tier::Reflector(level)),
            )
            .into_iter()
            .take(extra as usize)
            .map(|r| r.name.clone()),
        );
    }
    out
}
