//! Pure validation of a Stream spec. The CRD schema enforces the same rules at admission; this
//! catches what the schema cannot express (the Stream's own name) and objects stored before a
//! schema change, so the operator never builds a tree from a spec it cannot honour.

use std::collections::BTreeSet;
use std::fmt;

use crate::crd::{OVERFLOW_TIER_ABOVE, SecretKeyRef, StreamSpec};
use crate::sizing;

/// Longest Stream name: child object names (`<stream>-<region>-reflector-<n>`) must stay
/// within the 63 characters of a DNS label.
pub const MAX_STREAM_NAME: usize = 24;
/// Longest region name (matches the CRD schema).
pub const MAX_REGION_NAME: usize = 20;
/// Most warm edges per region (matches the CRD schema).
pub const MAX_WARM_EDGES: u32 = 100;
/// Longest latency budget, ms (matches the CRD schema and the relay's `--max-write-delay`).
pub const MAX_WRITE_DELAY_MS: u32 = 1000;

/// One problem, naming the field as a path from the Stream's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// DNS-1035 label: lower-case letters, digits and `-`, starting with a letter.
fn is_dns_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// All problems with a Stream named `name` and its `spec`; empty when it is valid.
pub fn validate(name: &str, spec: &StreamSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !is_dns_label(name, MAX_STREAM_NAME) {
        errors.push(err(
            "metadata.name",
            format!(
                "must be at most {MAX_STREAM_NAME} characters of a-z, 0-9 and '-', starting with a letter (relay object names derive from it)"
            ),
        ));
    }
    if spec.app.is_empty()
        || !spec
            .app
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        errors.push(err(
            "spec.app",
            "must be a non-empty RTMP app name (A-Z a-z 0-9 _ . -)",
        ));
    }
    if spec.bitrate_kbps == 0 {
        errors.push(err("spec.bitrateKbps", "must be positive"));
    }
    if let Some(region) = spec.origin_region()
        && !is_dns_label(region, MAX_REGION_NAME)
    {
        errors.push(err(
            "spec.origin.region",
            "must be a region name (a-z, 0-9, '-')",
        ));
    }
    // spec.upstream, and the origin and keys that go with it or not.
    errors.extend(crate::upstream::errors(spec));
    if spec.regions.is_empty() {
        errors.push(err("spec.regions", "must list at least one region"));
    }
    let mut seen = BTreeSet::new();
    for (i, region) in spec.regions.iter().enumerate() {
        let field = |f: &str| format!("spec.regions[{i}].{f}");
        if !is_dns_label(&region.name, MAX_REGION_NAME) {
            errors.push(err(
                field("name"),
                format!("must be at most {MAX_REGION_NAME} characters of a-z, 0-9 and '-', starting with a letter"),
            ));
        }
        if !seen.insert(region.name.as_str()) {
            errors.push(err(
                field("name"),
                format!(
                    "duplicate region `{}`: region names must be unique",
                    region.name
                ),
            ));
        }
        if region.min_edges < 1 {
            errors.push(err(field("minEdges"), "must be at least 1"));
        }
        if region.min_edges > region.max_edges {
            errors.push(err(
                field("minEdges"),
                format!(
                    "minEdges ({}) must be less than or equal to maxEdges ({})",
                    region.min_edges, region.max_edges
                ),
            ));
        }
        if let Some(selector) = &region.node_selector
            && selector.keys().any(|k| k.is_empty())
        {
            errors.push(err(field("nodeSelector"), "label keys must not be empty"));
        }
    }
    if spec.tree.fanout < 2 {
        errors.push(err("spec.tree.fanout", "must be at least 2"));
    }
    if spec.tree.viewers_per_edge < 1 {
        errors.push(err("spec.tree.viewersPerEdge", "must be positive"));
    }
    if spec.tree.edge_egress_mbps == Some(0) {
        errors.push(err("spec.tree.edgeEgressMbps", "must be greater than 0"));
    }
    let mut steps = BTreeSet::new();
    for (i, step) in spec.placement.overflow.iter().enumerate() {
        let field = format!("spec.placement.overflow[{i}]");
        if step != OVERFLOW_TIER_ABOVE && !spec.regions.iter().any(|r| &r.name == step) {
            errors.push(err(
                field.clone(),
                format!("`{step}` is neither tierAbove nor a region of spec.regions"),
            ));
        }
        if !steps.insert(step.as_str()) {
            errors.push(err(field, format!("duplicate overflow step `{step}`")));
        }
    }
    if let Some(secret) = spec
        .publish
        .as_ref()
        .and_then(|p| p.key_secret_ref.as_ref())
    {
        errors.extend(secret_ref_errors(secret));
    }
    if let Some(tls) = &spec.tls
        && !is_dns_subdomain(&tls.secret_ref.name)
    {
        errors.push(err(
            "spec.tls.secretRef.name",
            "must be a Secret name (a-z, 0-9, '-' and '.', at most 253 characters)",
        ));
    }
    if let Some(secret) = &spec.integrity.signing_key_secret_ref {
        if !is_dns_subdomain(&secret.name) {
            errors.push(err(
                "spec.integrity.signingKeySecretRef.name",
                "must be a Secret name (a-z, 0-9, '-' and '.', at most 253 characters)",
            ));
        }
        if !spec.integrity.enabled {
            errors.push(err(
                "spec.integrity.signingKeySecretRef",
                "needs enabled: true (remove it to turn signing off)",
            ));
        }
    }
    errors.extend(schedule_errors(spec));
    if spec.relay.max_write_delay_ms.unwrap_or(0) > MAX_WRITE_DELAY_MS {
        errors.push(err(
            "spec.relay.maxWriteDelayMs",
            format!("must be at most {MAX_WRITE_DELAY_MS} (ms a frame may wait)"),
        ));
    }
    if spec.scaling.warm_edges > MAX_WARM_EDGES {
        errors.push(err(
            "spec.scaling.warmEdges",
            format!("must be at most {MAX_WARM_EDGES} (edges kept per region beyond the forecast)"),
        ));
    }
    for (i, region) in spec.regions.iter().enumerate() {
        if spec.scaling.warm_edges > region.max_edges {
            errors.push(err(
                "spec.scaling.warmEdges",
                format!(
                    "{} warm edges do not fit in spec.regions[{i}].maxEdges ({})",
                    spec.scaling.warm_edges, region.max_edges
                ),
            ));
        }
    }
    // The planner checks its own settings; report its complaints under the spec's path.
    if let Err(e) = sizing::scaling_settings(&spec.scaling).validate() {
        errors.push(planner_error(e));
    }
    errors
}

/// `spec.scaling.schedule`: RFC 3339 starts, a positive audience, known regions, a positive
/// duration.
fn schedule_errors(spec: &StreamSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, event) in spec.scaling.schedule.iter().enumerate() {
        let field = |f: &str| format!("spec.scaling.schedule[{i}].{f}");
        if sizing::unix_seconds(&event.start).is_none() {
            errors.push(err(
                field("start"),
                format!(
                    "`{}` is not an RFC 3339 time (e.g. 2026-12-05T20:00:00Z)",
                    event.start
                ),
            ));
        }
        if event.expected_viewers < 1 {
            errors.push(err(field("expectedViewers"), "must be at least 1"));
        }
        for (j, name) in event.regions.iter().enumerate() {
            if !spec.regions.iter().any(|r| &r.name == name) {
                errors.push(err(
                    field(&format!("regions[{j}]")),
                    format!("`{name}` is not a region of spec.regions"),
                ));
            }
        }
        if event.duration_minutes == Some(0) {
            errors.push(err(field("durationMinutes"), "must be at least 1"));
        }
    }
    errors
}

/// A Secret name is a DNS subdomain: dot-separated labels of a-z, 0-9 and '-'.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

fn secret_ref_errors(secret: &SecretKeyRef) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let field = "spec.publish.keySecretRef";
    if !is_dns_subdomain(&secret.name) {
        errors.push(err(
            format!("{field}.name"),
            "must be a Secret name (a-z, 0-9, '-' and '.', at most 253 characters)",
        ));
    }
    if let Some(key) = &secret.key
        && (key.is_empty()
            || key.len() > 253
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)))
    {
        errors.push(err(
            format!("{field}.key"),
            "must be a Secret data key (A-Z a-z 0-9 - . _)",
        ));
    }
    errors
}

fn planner_error(e: surge_planner::PlanError) -> FieldError {
    match e {
        surge_planner::PlanError::InvalidSetting { field, why } => {
            err(format!("spec.{field}"), why)
        }
        surge_planner::PlanError::InvalidInput(why) => err("spec", why),
    }
}

/// One line listing every problem, for conditions and events.
pub fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(warm_edges: u32, max_edges: u32) -> StreamSpec {
        serde_json::from_value(serde_json::json!({
            "origin": {"region": "eu"},
            "regions": [{"name": "eu", "maxEdges": max_edges}],
            "scaling": {"warmEdges": warm_edges},
        }))
        .expect("a Stream spec")
    }

    #[test]
    fn warm_edges_are_named_when_they_do_not_fit() {
        assert!(validate("s", &spec(0, 10)).is_empty());
        assert!(validate("s", &spec(10, 10)).is_empty());
        let errors = validate("s", &spec(11, 10));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "spec.scaling.warmEdges");
        assert!(errors[0].message.contains("spec.regions[0].maxEdges"));
        let errors = validate("s", &spec(101, 1000));
        assert_eq!(errors[0].field, "spec.scaling.warmEdges");
        assert!(errors[0].message.contains("at most 100"));
    }

    #[test]
    fn warm_edges_reach_the_planner() {
        assert_eq!(sizing::scaling_settings(&spec(3, 10).scaling).warm_edges, 3);
        assert_eq!(spec(0, 10).scaling, crate::crd::ScalingSpec::default());
    }

    #[test]
    fn a_latency_budget_over_a_second_is_named() {
        let mut s = spec(0, 10);
        s.relay.max_write_delay_ms = Some(1000);
        assert!(validate("s", &s).is_empty());
        s.relay.max_write_delay_ms = Some(1001);
        let errors = validate("s", &s);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "spec.relay.maxWriteDelayMs");
    }
}
