//! The driver's answers from a real registry, with bytes alone: a play refused for lack of
//! room says why and finishes the connection; an unknown stream does not.

use std::collections::HashMap;
use std::io::Cursor;
use std::time::Duration;

use rml_rtmp::rml_amf0::{self, Amf0Value};
use surge_wire::message::MSG_AMF0_COMMAND;
use surge_wire::{ChunkLimits, ChunkReader, write_message};

use super::*;
use crate::hub::HubConfig;
use crate::metrics::Metrics;
use crate::placement::CapacityLimits;
use crate::registry::RegistrySettings;

fn registry(max_viewers: usize) -> Arc<Registry> {
    Registry::new(
        RegistrySettings {
            upstreams: vec![],
            upstream_linger: Duration::from_secs(1),
            capacity: CapacityLimits::viewers_only(max_viewers),
            hub: HubConfig::default(),
        },
        Arc::new(Metrics::new("edge", "test")),
    )
}

fn command(name: &str, txn: f64, args: Vec<Amf0Value>, msid: u32) -> Vec<u8> {
    let object = if name == "connect" {
        let mut o = HashMap::new();
        o.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
        Amf0Value::Object(o)
    } else {
        Amf0Value::Null
    };
    let mut values = vec![
        Amf0Value::Utf8String(name.into()),
        Amf0Value::Number(txn),
        object,
    ];
    values.extend(args);
    let body = rml_amf0::serialize(&values).expect("amf0");
    let mut out = Vec::new();
    write_message(&mut out, 3, MSG_AMF0_COMMAND, msid, 0, &body, 128);
    out
}

/// connect, createStream and play of `stream`, then one more play in the same read.
fn play_then_more(stream: &str) -> Vec<u8> {
    let mut out = command("connect", 1.0, vec![], 0);
    out.extend(command("createStream", 2.0, vec![], 0));
    let name = || vec![Amf0Value::Utf8String(stream.into())];
    out.extend(command("play", 3.0, name(), 1));
    out.extend(command("play", 4.0, name(), 1));
    out
}

/// `(code, description)` of every error onStatus among the driver's replies (after the
/// bytes it sent first).
fn errors(initial: &[Bytes], out: &[Outbound]) -> Vec<(String, String)> {
    let mut reader = ChunkReader::new(ChunkLimits::default());
    for b in initial {
        reader.push(b);
    }
    for o in out {
        if let Outbound::Control(b) = o {
            reader.push(b);
        }
    }
    let mut found = Vec::new();
    while let Some(m) = reader.next_message().expect("valid replies") {
        if m.type_id != MSG_AMF0_COMMAND {
            continue;
        }
        let values = rml_amf0::deserialize(&mut Cursor::new(&m.payload[..])).expect("amf0");
        if let Some(Amf0Value::Object(info)) = values.get(3) {
            let text = |k: &str| match info.get(k) {
                Some(Amf0Value::Utf8String(s)) => s.clone(),
                _ => String::new(),
            };
            if text("level") == "error" {
                found.push((text("code"), text("description")));
            }
        }
    }
    found
}

#[tokio::test]
async fn a_play_refused_for_room_says_why_and_finishes_the_connection() {
    let r = registry(1);
    let _publisher = r.start_publish("live", "x").expect("publish");
    let _viewer = r
        .subscribe("live", "x", Protocol::Flv)
        .expect("first viewer");
    let (mut driver, initial) =
        InboundDriver::new(r.clone(), ChunkLimits::default()).expect("driver");
    let out = driver.handle_bytes(&play_then_more("x")).expect("handled");
    // One refusal: the second play, sent in the same read, is never looked at.
    assert_eq!(
        errors(&initial, &out),
        [(
            "NetStream.Play.Failed".to_string(),
            "relay full: 1 of 1 viewers".to_string()
        )]
    );
    assert!(!out.iter().any(|o| matches!(o, Outbound::Play(..))));
    assert_eq!(
        driver.finished(),
        Some("play of live/x refused: relay full: 1 of 1 viewers")
    );
}

#[tokio::test]
async fn an_unknown_stream_is_not_found_and_the_connection_goes_on() {
    let (mut driver, initial) =
        InboundDriver::new(registry(10), ChunkLimits::default()).expect("driver");
    let out = driver
        .handle_bytes(&play_then_more("nope"))
        .expect("handled");
    let errors = errors(&initial, &out);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|(code, _)| code == "NetStream.Play.StreamNotFound")
    );
    assert_eq!(driver.finished(), None);
}

/// connect, createStream and publish of `stream_key`.
fn publish(stream_key: &str) -> Vec<u8> {
    let mut out = command("connect", 1.0, vec![], 0);
    out.extend(command("createStream", 2.0, vec![], 0));
    out.extend(command(
        "publish",
        3.0,
        vec![
            Amf0Value::Utf8String(stream_key.into()),
            Amf0Value::Utf8String("live".into()),
        ],
        1,
    ));
    out
}

#[tokio::test]
async fn a_publish_with_a_wrong_key_is_refused_counted_and_finishes_the_connection() {
    let dir = std::env::temp_dir().join(format!("surge-driver-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("keys");
    std::fs::write(&path, "right\n").expect("write");
    let file = crate::publish_auth::KeysFile::open(&path).expect("keys");
    let auth = Arc::new(PublishAuth::new(None, Some(file)));
    let r = registry(10);

    let (driver, initial) = InboundDriver::new(r.clone(), ChunkLimits::default()).expect("driver");
    let mut driver = driver.with_publish_auth(auth.clone(), None);
    let out = driver
        .handle_bytes(&publish("cam?key=wrong"))
        .expect("handled");
    assert_eq!(
        errors(&initial, &out),
        [(
            "NetStream.Publish.BadName".to_string(),
            "publish refused: wrong stream key".to_string()
        )]
    );
    assert_eq!(
        driver.finished(),
        Some("publish of live/cam refused (wrong_key)")
    );
    assert!(
        r.metrics()
            .encode()
            .contains("surge_relay_publish_refused_total{")
    );
    assert!(r.entries().is_empty(), "no stream was claimed");

    let (driver, initial) = InboundDriver::new(r.clone(), ChunkLimits::default()).expect("driver");
    let mut driver = driver.with_publish_auth(auth, None);
    let out = driver
        .handle_bytes(&publish("cam?key=right"))
        .expect("handled");
    assert!(errors(&initial, &out).is_empty());
    assert_eq!(driver.finished(), None);
    assert!(matches!(driver.role(), Role::Publishing { stream, .. } if stream == "cam"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_edge_refuses_every_publish_and_says_to_publish_at_the_origin() {
    let auth = Arc::new(PublishAuth::new(Some("edge"), None));
    let (driver, initial) =
        InboundDriver::new(registry(10), ChunkLimits::default()).expect("driver");
    let mut driver = driver.with_publish_auth(auth, None);
    let out = driver.handle_bytes(&publish("cam")).expect("handled");
    let errors = errors(&initial, &out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "NetStream.Publish.BadName");
    assert!(
        errors[0].1.contains("publish only at the origin"),
        "{errors:?}"
    );
    assert_eq!(
        driver.finished(),
        Some("publish of live/cam refused (not_origin)")
    );
}
