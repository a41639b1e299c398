//! Scheduled events (`spec.scaling.schedule`): capacity for an announced audience, Ready at
//! the event's start, held while the event lasts, never below the forecast.
//!
//! A forecast only sees the past, so a crowd that arrives within a minute of a kick-off is
//! short for the detection delay plus the relay-ready time whatever the forecast does. When
//! the start and the size are known in advance, the planner asks for the edges one horizon
//! (`metricDelaySeconds` + measured ready time, at least `leadTimeSeconds`) before `start`,
//! so they are Ready by then, and keeps them until the event ends: `start + duration` when a
//! duration is given, else `start + scheduleGraceSeconds` (the crowd should have shown up by
//! then; if it has, the forecast already covers it). After that the forecast alone sizes the
//! region again, through the usual scale-down rules.

use serde::{Deserialize, Serialize};

/// One announced event, on the planner's clock (the operator converts the Stream's RFC 3339
/// `start` to it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledEvent {
    /// When the audience arrives, seconds on the clock of `PlanInput::now_s`.
    pub start_s: f64,
    /// The audience expected over the listed regions together.
    pub expected_viewers: u64,
    /// Regions the audience is in; empty = every region of the input. The audience is split
    /// by each listed region's share of the viewers there now (see [`region_share`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// How long the event lasts; capacity is held until `start + duration`. `None`: held
    /// until `start + scheduleGraceSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
}

impl ScheduledEvent {
    /// Whether `region` takes part (an empty list means every region).
    pub fn covers(&self, region: &str) -> bool {
        self.regions.is_empty() || self.regions.iter().any(|r| r == region)
    }

    /// When the held capacity is released.
    pub fn end_s(&self, grace_s: f64) -> f64 {
        self.start_s + self.duration_seconds.unwrap_or(grace_s)
    }
}

/// `region`'s share of an event over `regions` (name, viewers there now): its viewers over
/// the sum of the event's regions' viewers; an equal split when none has viewers yet.
/// Regions of the event that are not planned here take no share.
pub fn region_share(event: &ScheduledEvent, region: &str, regions: &[(&str, f64)]) -> f64 {
    let mine: Vec<&(&str, f64)> = regions.iter().filter(|(n, _)| event.covers(n)).collect();
    if !mine.iter().any(|(n, _)| *n == region) {
        return 0.0;
    }
    let total: f64 = mine.iter().map(|(_, v)| v.max(0.0)).sum();
    if total > 0.0 {
        regions
            .iter()
            .find(|(n, _)| *n == region)
            .map_or(0.0, |(_, v)| v.max(0.0) / total)
    } else {
        1.0 / mine.len() as f64
    }
}

/// What the schedule asks of one region now.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledDemand {
    /// Viewers to have capacity for (no headroom: the figure is announced, not forecast).
    pub viewers: f64,
    /// The event that asks for the most, by start time, and until when it holds.
    pub start_s: f64,
    pub until_s: f64,
}

/// The largest audience any event asks `region` to be ready for at `now`: an event counts
/// from `start − lead_s` (so what is asked for then is Ready at `start`) until its end.
/// Events overlapping in time do not add up (one Stream is one broadcast): the largest wins.
pub fn scheduled_demand(
    schedule: &[ScheduledEvent],
    region: &str,
    regions: &[(&str, f64)],
    now: f64,
    lead_s: f64,
    grace_s: f64,
) -> Option<ScheduledDemand> {
    schedule
        .iter()
        .filter(|e| e.covers(region) && now >= e.start_s - lead_s && now < e.end_s(grace_s))
        .map(|e| ScheduledDemand {
            viewers: e.expected_viewers as f64 * region_share(e, region, regions),
            start_s: e.start_s,
            until_s: e.end_s(grace_s),
        })
        .filter(|d| d.viewers > 0.0)
        .max_by(|a, b| a.viewers.total_cmp(&b.viewers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(start_s: f64, viewers: u64, regions: &[&str], minutes: Option<f64>) -> ScheduledEvent {
        ScheduledEvent {
            start_s,
            expected_viewers: viewers,
            regions: regions.iter().map(|r| r.to_string()).collect(),
            duration_seconds: minutes.map(|m| m * 60.0),
        }
    }

    #[test]
    fn split_by_current_viewers_else_equally() {
        let all = event(0.0, 100_000, &[], None);
        let now = [("eu", 3_000.0), ("us", 1_000.0)];
        assert_eq!(region_share(&all, "eu", &now), 0.75);
        assert_eq!(region_share(&all, "us", &now), 0.25);
        let idle = [("eu", 0.0), ("us", 0.0)];
        assert_eq!(region_share(&all, "us", &idle), 0.5);
        // Listed regions only: the unlisted one takes no share and does not dilute.
        let eu_only = event(0.0, 100_000, &["eu"], None);
        assert_eq!(region_share(&eu_only, "eu", &now), 1.0);
        assert_eq!(region_share(&eu_only, "us", &now), 0.0);
        // A listed region that is not planned here takes nothing from the others.
        let ghost = event(0.0, 100_000, &["eu", "ap"], None);
        assert_eq!(region_share(&ghost, "eu", &now), 1.0);
    }

    #[test]
    fn an_event_counts_from_one_lead_before_start_until_its_end() {
        let s = [event(1_000.0, 10_000, &[], Some(30.0))];
        let r = [("eu", 0.0)];
        let at = |now| scheduled_demand(&s, "eu", &r, now, 90.0, 900.0);
        assert_eq!(at(909.0), None, "before start - lead");
        assert_eq!(at(910.0).unwrap().viewers, 10_000.0);
        assert_eq!(at(2_799.0).unwrap().until_s, 2_800.0);
        assert_eq!(at(2_800.0), None, "ended");
        // No duration: held for the grace.
        let g = [event(1_000.0, 10_000, &[], None)];
        assert!(scheduled_demand(&g, "eu", &r, 1_899.0, 90.0, 900.0).is_some());
        assert!(scheduled_demand(&g, "eu", &r, 1_900.0, 90.0, 900.0).is_none());
    }

    #[test]
    fn overlapping_events_take_the_largest() {
        let s = [
            event(0.0, 10_000, &[], Some(60.0)),
            event(100.0, 30_000, &[], Some(10.0)),
            event(0.0, 99_000, &["us"], Some(60.0)),
        ];
        let r = [("eu", 0.0), ("us", 0.0)];
        let d = scheduled_demand(&s, "eu", &r, 200.0, 60.0, 900.0).unwrap();
        assert_eq!(d.viewers, 15_000.0);
        assert_eq!(d.start_s, 100.0);
    }
}
