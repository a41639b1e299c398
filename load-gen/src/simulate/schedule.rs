//! The schedule surge is given in a simulation: `--schedule FILE` (a YAML or JSON list of
//! `spec.scaling.schedule` events) or, with `--trace-schedule`, the `schedule=[...]` field of
//! the trace's header (generated `match` traces carry their kick-off, audience and length).
//! A trace's second t is the Unix time t (1970-01-01T00:00:00Z + t), so an event at trace
//! second 1,200 starts at `1970-01-01T00:20:00Z`.

use anyhow::{Context, Result, bail};
use surge_operator::crd::ScheduledEventSpec;

/// Reads a schedule file: a YAML (or JSON, which is YAML) list of events.
pub fn read_file(path: &std::path::Path) -> Result<Vec<ScheduledEventSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("{} is not a list of scheduled events", path.display()))
}

/// Parses a YAML or JSON list of events.
pub fn parse(text: &str) -> Result<Vec<ScheduledEventSpec>> {
    Ok(serde_saphyr::from_str(text)?)
}

/// The `schedule=[...]` field of a trace header (compact JSON), `None` when absent.
pub fn from_header(header: &str) -> Result<Option<Vec<ScheduledEventSpec>>> {
    let Some(at) = header.find("schedule=[") else {
        return Ok(None);
    };
    let json = &header[at + "schedule=".len()..];
    let mut values =
        serde_json::Deserializer::from_str(json).into_iter::<Vec<ScheduledEventSpec>>();
    match values.next() {
        Some(Ok(events)) => Ok(Some(events)),
        Some(Err(e)) => bail!("the trace header's schedule= field is not a list of events: {e}"),
        None => Ok(None),
    }
}

/// The header field for `events`: `schedule=` and compact JSON (no spaces or `;`).
pub fn header_field(events: &[ScheduledEventSpec]) -> String {
    format!(
        "schedule={}",
        serde_json::to_string(events).unwrap_or_else(|_| "[]".into())
    )
}

/// RFC 3339 time of trace second `t_s`.
pub fn trace_time(t_s: u64) -> String {
    let (days, rest) = (t_s / 86_400, t_s % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    // Days after 1970-01-01 as a civil date (Howard Hinnant's days_from_civil inverse).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use surge_operator::sizing::unix_seconds;

    #[test]
    fn trace_seconds_are_unix_seconds() {
        for t in [0u64, 59, 1_200, 86_399, 86_400, 31_536_000, 1_700_000_000] {
            assert_eq!(
                unix_seconds(&trace_time(t)),
                Some(t as f64),
                "{}",
                trace_time(t)
            );
        }
        assert_eq!(trace_time(1_200), "1970-01-01T00:20:00Z");
    }

    #[test]
    fn files_and_header_fields_round_trip() {
        let yaml = "- {start: \"1970-01-01T00:20:00Z\", expectedViewers: 100000, durationMinutes: 110}\n- start: 1970-01-02T00:00:00Z\n  expectedViewers: 5\n  regions: [eu]\n";
        let events = parse(yaml).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].regions, ["eu"]);
        assert_eq!(
            parse("[{\"start\": \"1970-01-01T00:20:00Z\", \"expectedViewers\": 3}]")
                .unwrap()
                .len(),
            1
        );
        let header = format!(
            " livetrace v1; shape=match; this seed: peak 1; {}; check: ok",
            header_field(&events)
        );
        assert!(!header_field(&events).contains(' '));
        assert_eq!(from_header(&header).unwrap(), Some(events));
        assert_eq!(from_header(" livetrace v1; shape=push").unwrap(), None);
        assert!(from_header("schedule=[{\"start\": 1}]").is_err());
    }
}
