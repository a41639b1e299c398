use std::path::Path;

use super::model::{Trace, TraceRow};

const COLUMNS: [&str; 6] = [
    "broadcast_id",
    "t_s",
    "region",
    "viewers",
    "arrivals",
    "departures",
];

/// Why a trace could not be read; parse errors carry the 1-based line number.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read trace {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("trace has no rows")]
    Empty,
}

fn malformed(line: usize, reason: impl Into<String>) -> TraceError {
    TraceError::Malformed {
        line,
        reason: reason.into(),
    }
}

/// Reads a `livetrace v1` file.
pub fn read_trace(path: &Path) -> Result<Trace, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_trace(&text)
}

/// Parses `livetrace v1` text: a `# livetrace v1; ...` header, a column line, then rows.
/// Blank lines and further `#` comment lines are ignored.
pub fn parse_trace(text: &str) -> Result<Trace, TraceError> {
    let mut header = None;
    let mut columns_seen = false;
    let mut rows = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if header.is_none() {
                if !comment.trim_start().starts_with("livetrace v1") {
                    return Err(malformed(
                        line_no,
                        "the first line must be a `# livetrace v1; ...` header",
                    ));
                }
                header = Some(comment.to_owned());
            }
            continue;
        }
        if header.is_none() {
            return Err(malformed(
                line_no,
                "missing `# livetrace v1; ...` header before the data",
            ));
        }
        if !columns_seen {
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if cols.len() < 4 || cols[..4] != COLUMNS[..4] || cols[4..] != COLUMNS[4..cols.len()] {
                return Err(malformed(
                    line_no,
                    format!(
                        "expected the column line `{}` (arrivals and departures optional), found `{line}`",
                        COLUMNS.join(",")
                    ),
                ));
            }
            columns_seen = true;
            continue;
        }
        rows.push(parse_row(line_no, line)?);
    }
    if rows.is_empty() {
        return Err(TraceError::Empty);
    }
    Ok(Trace {
        header: header.unwrap_or_default(),
        rows,
    })
}

fn parse_row(line_no: usize, line: &str) -> Result<TraceRow, TraceError> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < 4 || fields.len() > 6 {
        return Err(malformed(
            line_no,
            format!("expected 4 to 6 fields, found {}", fields.len()),
        ));
    }
    let number = |i: usize| -> Result<u64, TraceError> {
        fields[i].parse::<u64>().map_err(|_| {
            malformed(
                line_no,
                format!(
                    "{} must be a non-negative integer, found `{}`",
                    COLUMNS[i], fields[i]
                ),
            )
        })
    };
    let optional = |i: usize| -> Result<Option<u64>, TraceError> {
        match fields.get(i) {
            None | Some(&"") => Ok(None),
            Some(_) => number(i).map(Some),
        }
    };
    if fields[0].is_empty() {
        return Err(malformed(line_no, "broadcast_id is empty"));
    }
    if fields[2].is_empty() {
        return Err(malformed(line_no, "region is empty"));
    }
    Ok(TraceRow {
        broadcast_id: fields[0].to_owned(),
        t_s: number(1)?,
        region: fields[2].to_owned(),
        viewers: number(3)?,
        arrivals: optional(4)?,
        departures: optional(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::TOTAL_REGION;

    const SMALL: &str = "# livetrace v1; small test\n\
broadcast_id,t_s,region,viewers,arrivals,departures\n\
b1,0,us-east,10,10,0\n\
b1,0,eu-west,5,5,0\n\
b1,60,us-east,30,25,5\n\
b1,60,eu-west,7,,\n";

    #[test]
    fn parses_rows_regions_and_totals() {
        let trace = parse_trace(SMALL).expect("valid trace");
        assert_eq!(trace.rows.len(), 4);
        assert_eq!(trace.broadcast_ids(), vec!["b1".to_string()]);
        assert_eq!(trace.regions("b1"), vec!["eu-west", "us-east"]);
        let total = trace.series("b1", TOTAL_REGION);
        assert_eq!(total.len(), 2);
        assert_eq!(total[0].viewers, 15);
        assert_eq!(total[1].viewers, 37);
        assert_eq!(total[1].arrivals, None, "eu-west had no arrivals at 60");
    }

    #[test]
    fn round_trips_through_csv() {
        let trace = parse_trace(SMALL).expect("valid trace");
        assert_eq!(parse_trace(&trace.to_csv()).expect("reparse"), trace);
    }

    #[test]
    fn rejects_malformed_with_line_numbers() {
        let cases = [
            ("b1,0,us,1\n", 1, "header"),
            (
                "# livetrace v1\nbroadcast_id,t_s,region,viewers\nb1,x,us,1\n",
                3,
                "t_s must be",
            ),
            (
                "# livetrace v1\nbroadcast_id,t_s,region,viewers\nb1,0,us\n",
                3,
                "expected 4 to 6 fields",
            ),
            (
                "# livetrace v1\nid,t,region,viewers\n",
                2,
                "expected the column line",
            ),
            (
                "# livetrace v1\nbroadcast_id,t_s,region,viewers\nb1,0,us,-4\n",
                3,
                "viewers must be",
            ),
        ];
        for (text, line, needle) in cases {
            match parse_trace(text) {
                Err(TraceError::Malformed { line: l, reason }) => {
                    assert_eq!(l, line, "line for {text:?}");
                    assert!(reason.contains(needle), "{reason} should mention {needle}");
                }
                other => panic!("expected a malformed error for {text:?}, got {other:?}"),
            }
        }
        assert!(matches!(
            parse_trace("# livetrace v1\nbroadcast_id,t_s,region,viewers\n"),
            Err(TraceError::Empty)
        ));
    }
}
