//! `--metrics-label NAME=VALUE`: constant labels on every series of the relay's `/metrics`
//! (as `tier` and `region` are). Pure.

/// Label names the relay's own series use: a constant label of the same name would clash.
pub const RELAY_LABELS: &[&str] = &[
    "tier",
    "region",
    "app",
    "stream",
    "protocol",
    "reason",
    "outcome",
    "upstream",
    "component",
    "version",
    "le",
];

/// Parses one `NAME=VALUE` (clap names the flag in front of the message).
pub fn parse_metrics_label(s: &str) -> Result<(String, String), String> {
    let s = s.trim();
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!("expected NAME=VALUE, got {s:?}"));
    };
    check_name(name)?;
    if value.is_empty() {
        return Err(format!(
            "label {name:?} has an empty value (Prometheus drops empty labels)"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not `__`-prefixed) the relay does not
/// use itself.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{name:?} is not a Prometheus label name (a letter or _, then letters, digits and _)"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "{name:?}: names starting with __ are reserved by Prometheus"
        ));
    }
    if RELAY_LABELS.contains(&name) {
        return Err(format!(
            "{name:?} is a label the relay sets itself (reserved: {})",
            RELAY_LABELS.join(", ")
        ));
    }
    Ok(())
}

/// Each name at most once.
pub fn check_distinct(labels: &[(String, String)]) -> Result<(), String> {
    for (i, (name, _)) in labels.iter().enumerate() {
        if labels[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} is given more than once"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_value_pairs_are_parsed() {
        assert_eq!(
            parse_metrics_label("surge_stream=news"),
            Ok(("surge_stream".into(), "news".into()))
        );
        assert_eq!(
            parse_metrics_label(" _cluster=eu=1 "),
            Ok(("_cluster".into(), "eu=1".into())),
            "the value is everything after the first ="
        );
        assert_eq!(
            parse_metrics_label("team=Video \"Live\""),
            Ok(("team".into(), "Video \"Live\"".into())),
            "any value (the encoder escapes quotes)"
        );
    }

    #[test]
    fn bad_names_and_values_are_refused_with_the_reason() {
        for (input, says) in [
            ("novalue", "expected NAME=VALUE"),
            ("=x", "not a Prometheus label name"),
            ("1abc=x", "not a Prometheus label name"),
            ("my-label=x", "not a Prometheus label name"),
            ("née=x", "not a Prometheus label name"),
            ("__name__=x", "reserved by Prometheus"),
            ("tier=gold", "the relay sets itself"),
            ("le=1", "the relay sets itself"),
            ("version=2", "the relay sets itself"),
            ("cluster=", "empty value"),
        ] {
            let err = parse_metrics_label(input).expect_err(input);
            assert!(err.contains(says), "{input}: {err}");
        }
        for name in RELAY_LABELS {
            assert!(parse_metrics_label(&format!("{name}=x")).is_err(), "{name}");
        }
    }

    #[test]
    fn a_name_given_twice_is_refused() {
        let l = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert!(check_distinct(&[l("a", "1"), l("b", "1")]).is_ok());
        let err = check_distinct(&[l("a", "1"), l("b", "1"), l("a", "2")]).unwrap_err();
        assert!(err.contains("\"a\""), "{err}");
    }
}
