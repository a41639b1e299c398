//! Stream manifests for `surge-operator local`: YAML files of `Stream` objects (the CRD's
//! type), refused with the operator's own field-level validation. Pure but for [`load`].

use std::collections::BTreeSet;
use std::path::PathBuf;

use kube::{Resource, ResourceExt};
use serde::Deserialize;

use crate::crd::Stream;
use crate::validate::validate;

const API_VERSION: &str = "surge.dev/v1alpha1";

/// What a document says it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    api_version: Option<String>,
    kind: Option<String>,
}

/// The Streams of one YAML text (one or more `---` documents), or one line per problem, each
/// starting with `source`. A Stream without namespace is in `default`; without uid it gets
/// one derived from its name (its children's owner reference needs one).
pub fn parse(source: &str, text: &str) -> Result<Vec<Stream>, Vec<String>> {
    let one_line = |e: &dyn std::fmt::Display| {
        let words: Vec<String> = e.to_string().split_whitespace().map(String::from).collect();
        format!("{source}: {}", words.join(" "))
    };
    let heads: Vec<Head> = serde_saphyr::from_multiple(text).map_err(|e| vec![one_line(&e)])?;
    if heads.is_empty() {
        return Err(vec![format!("{source}: no Stream in it")]);
    }
    let mut problems = Vec::new();
    for (i, head) in heads.iter().enumerate() {
        let (api, kind) = (head.api_version.as_deref(), head.kind.as_deref());
        if api != Some(API_VERSION) || kind != Some("Stream") {
            problems.push(format!(
                "{source}: document {}: apiVersion {} kind {} is not a {API_VERSION} Stream",
                i + 1,
                api.unwrap_or("(none)"),
                kind.unwrap_or("(none)"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut streams: Vec<Stream> =
        serde_saphyr::from_multiple(text).map_err(|e| vec![one_line(&e)])?;
    for stream in &mut streams {
        let name = stream.name_any();
        let meta = stream.meta_mut();
        meta.namespace.get_or_insert_with(|| "default".to_string());
        meta.uid.get_or_insert_with(|| format!("local-{name}"));
        problems.extend(
            validate(&name, &stream.spec)
                .iter()
                .map(|e| format!("{source}: Stream {name}: {e}")),
        );
    }
    if problems.is_empty() {
        Ok(streams)
    } else {
        Err(problems)
    }
}

/// No two Streams with the same namespace and name (their relays would share names).
pub fn check_unique(streams: &[Stream]) -> Result<(), Vec<String>> {
    let mut seen = BTreeSet::new();
    let problems: Vec<String> = streams
        .iter()
        .filter(|s| !seen.insert((s.namespace(), s.name_any())))
        .map(|s| {
            format!(
                "Stream {}/{} is given twice",
                s.namespace().unwrap_or_default(),
                s.name_any()
            )
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Each Stream's first region octet: every Stream gets its own block of region octets
/// (origin region and viewer regions, counted once), one after the other from `first`
/// (by default [`DEFAULT_FIRST_REGION_OCTET`]), so no two Streams' relays share an address.
pub fn first_region_octets(streams: &[Stream], first: u8) -> Result<Vec<u8>, String> {
    let start = first;
    let mut next = u32::from(first);
    let mut octets = Vec::new();
    for s in streams {
        let regions: BTreeSet<&str> = s
            .spec
            .origin_region()
            .into_iter()
            .chain(s.spec.regions.iter().map(|r| r.name.as_str()))
            .collect();
        let first = u8::try_from(next).ok().filter(|o| *o < 255);
        let regions = u32::try_from(regions.len()).unwrap_or(u32::MAX);
        let Some(first) = first.filter(|_| next.saturating_add(regions) <= 255) else {
            return Err(format!(
                "Stream {}: the Streams' regions do not fit in 127.{start}-254.x.x (one second octet per Stream and region)",
                s.name_any()
            ));
        };
        octets.push(first);
        next += regions;
    }
    Ok(octets)
}

/// Reads, parses and validates every file, then checks the Streams against each other: all
/// Streams, or every problem found (one line each).
pub fn load(paths: &[PathBuf]) -> Result<Vec<Stream>, Vec<String>> {
    let mut streams = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let source = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => match parse(&source, &text) {
                Ok(s) => streams.extend(s),
                Err(p) => problems.extend(p),
            },
            Err(e) => problems.push(format!("{source}: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    check_unique(&streams)?;
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::addresses::DEFAULT_FIRST_REGION_OCTET;

    const TALK: &str = "apiVersion: surge.dev/v1alpha1
kind: Stream
metadata:
  name: talk
spec:
  origin:
    region: eu-west
  regions:
    - name: eu-west
    - name: us-east
";

    #[test]
    fn a_valid_stream_gets_a_namespace_and_a_uid() {
        let streams = parse("talk.yaml", TALK).expect("valid");
        let [talk] = streams.as_slice() else {
            panic!("one Stream: {streams:?}");
        };
        assert_eq!(talk.name_any(), "talk");
        assert_eq!(talk.namespace().as_deref(), Some("default"));
        assert_eq!(talk.uid().as_deref(), Some("local-talk"));
        assert!(crate::decide::target(talk).is_some());
    }

    #[test]
    fn every_invalid_field_is_one_line_naming_file_stream_and_field() {
        let text = TALK.replace("name: talk", "name: Talk").replace(
            "    - name: us-east\n",
            "    - name: us-east\n      minEdges: 0\n",
        );
        let problems = parse("talk.yaml", &text).expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("talk.yaml: Stream Talk: metadata.name: must be at most"),
            "{problems:?}"
        );
        assert_eq!(
            problems[1],
            "talk.yaml: Stream Talk: spec.regions[1].minEdges: must be at least 1"
        );
        assert!(problems.iter().all(|p| !p.contains('\n')));
    }

    #[test]
    fn broken_yaml_and_other_kinds_are_refused_in_one_line() {
        let problems = parse("x.yaml", "spec: [unclosed\n  : :").expect_err("broken");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("x.yaml: ") && !problems[0].contains('\n'));
        let other = TALK.replace("kind: Stream", "kind: Deployment");
        let problems = parse("x.yaml", &other).expect_err("not a Stream");
        assert_eq!(
            problems,
            [
                "x.yaml: document 1: apiVersion surge.dev/v1alpha1 kind Deployment is not a surge.dev/v1alpha1 Stream"
            ]
        );
        let problems = parse("x.yaml", "").expect_err("empty");
        assert_eq!(problems, ["x.yaml: no Stream in it"]);
        let missing = TALK.replace("  origin:\n    region: eu-west\n", "");
        let problems = parse("x.yaml", &missing).expect_err("no origin");
        assert!(problems[0].contains("origin"), "{problems:?}");
    }

    #[test]
    fn several_documents_and_streams_get_their_own_address_blocks() {
        let two = format!("{TALK}---\n{}", TALK.replace("name: talk", "name: game"));
        let streams = parse("two.yaml", &two).expect("valid");
        assert_eq!(streams.len(), 2);
        // talk: eu-west, us-east -> 200, 201; game starts at 202.
        assert_eq!(
            first_region_octets(&streams, DEFAULT_FIRST_REGION_OCTET),
            Ok(vec![200, 202])
        );
        assert_eq!(first_region_octets(&streams, 120), Ok(vec![120, 122]));
        check_unique(&streams).expect("unique");
        let twice = [streams[0].clone(), streams[0].clone()];
        assert_eq!(
            check_unique(&twice),
            Err(vec!["Stream default/talk is given twice".to_string()])
        );
        let many: Vec<Stream> = (0..30).map(|_| streams[0].clone()).collect();
        let err = first_region_octets(&many, DEFAULT_FIRST_REGION_OCTET)
            .expect_err("60 regions do not fit");
        assert!(err.contains("do not fit"), "{err}");
    }
}
