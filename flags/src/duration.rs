//! Durations: `500ms`, `30s`, `2m`, `1h`, combinations such as `1h30m` or `1m 30s`, decimals
//! (`1.5s`), or a bare number of seconds (`90`, `0.25`). Negative, NaN, infinite, overflowing
//! and unknown-unit values are errors, never panics.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration (examples: 500ms, 30s, 2m, 1h30m, or bare seconds)")]
    Empty,
    #[error("`{0}` is not a duration (examples: 500ms, 30s, 2m, 1h30m, or bare seconds)")]
    Invalid(String),
    #[error("`{value}` has unknown unit `{unit}` (use ms, s, m or h)")]
    UnknownUnit { value: String, unit: String },
    #[error("`{0}` is too long (at most about 584 billion years)")]
    TooLong(String),
    #[error("`{0}` must be greater than zero here")]
    Zero(String),
}

/// Parses a duration; zero is allowed (for flags where 0 means "at once" or "never wait").
pub fn duration(s: &str) -> Result<Duration, DurationError> {
    let text = s.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if is_number(text) {
        return amount(text, 1_000, text); // bare seconds
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let after = after.trim_start();
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        if !is_number(number) || unit.is_empty() {
            return Err(DurationError::Invalid(text.to_owned()));
        }
        let millis_per_unit = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            other => {
                return Err(DurationError::UnknownUnit {
                    value: text.to_owned(),
                    unit: other.to_owned(),
                });
            }
        };
        let part = amount(number, millis_per_unit, text)?;
        total = total
            .checked_add(part)
            .ok_or_else(|| DurationError::TooLong(text.to_owned()))?;
        rest = after.trim_start();
    }
    Ok(total)
}

/// Parses a duration that must be greater than zero (timeouts, intervals).
pub fn positive_duration(s: &str) -> Result<Duration, DurationError> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err(DurationError::Zero(s.trim().to_owned()));
    }
    Ok(d)
}

/// Digits with at most one dot: `-1`, `inf`, `NaN` and `1e3` are not numbers here.
fn is_number(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().filter(|&c| c == '.').count() <= 1
        && text.chars().any(|c| c.is_ascii_digit())
}

/// `number` units of `millis_per_unit` milliseconds; `text` is the whole value, for errors.
/// Whole numbers are exact; decimals go through f64.
fn amount(number: &str, millis_per_unit: u64, text: &str) -> Result<Duration, DurationError> {
    let too_long = || DurationError::TooLong(text.to_owned());
    if let Ok(whole) = number.parse::<u64>() {
        let millis = whole.checked_mul(millis_per_unit).ok_or_else(too_long)?;
        return Ok(Duration::from_millis(millis));
    }
    if number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(too_long()); // digits only, yet not a u64
    }
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::Invalid(text.to_owned()))?;
    Duration::try_from_secs_f64(value * millis_per_unit as f64 / 1_000.0).map_err(|_| too_long())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units_and_bare_seconds() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration(" 30 s "), Ok(Duration::from_secs(30)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("1m 30s"), Ok(Duration::from_secs(90)));
    }

    #[test]
    fn zero_only_where_allowed() {
        assert_eq!(duration("0"), Ok(Duration::ZERO));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        assert_eq!(
            positive_duration("0ms"),
            Err(DurationError::Zero("0ms".into()))
        );
        assert_eq!(positive_duration("5s"), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        for bad in [
            "", " ", "abc", "5y", "5d", "-1", "-1s", "NaN", "nan", "inf", "infs", "1e3", "s",
            "1..2s", ".", "5 5", "ms",
        ] {
            assert!(duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            duration("5y"),
            Err(DurationError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn overflow_is_an_error() {
        for huge in [
            "99999999999999999999999h",
            "99999999999999999999999",
            "18446744073709551616s",
            "3000000000000000h 3000000000000000h",
        ] {
            assert_eq!(
                duration(huge),
                Err(DurationError::TooLong(huge.into())),
                "{huge}"
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = duration(&s);
        }

        #[test]
        fn millis_round_trip(ms in 0u64..10_000_000_000) {
            prop_assert_eq!(duration(&format!("{ms}ms")), Ok(Duration::from_millis(ms)));
        }
    }
}
