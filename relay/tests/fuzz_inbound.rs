//! Bounded fuzz loop over the inbound RTMP path (chunk reader, command session, hub), in process:
//! valid publisher and player byte streams, mutated with a fixed seed, fed in random pieces.
//! Nothing may panic; every error is an ordinary `InboundError` that closes one connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::time::RtmpTimestamp;
use surge_relay::hub::HubConfig;
use surge_relay::metrics::Metrics;
use surge_relay::placement::CapacityLimits;
use surge_relay::registry::{Registry, RegistrySettings};
use surge_relay::rtmp::inbound_driver::InboundDriver;
use surge_relay::rtmp::session::InboundError;
use surge_wire::ChunkLimits;
use surge_wire::amf0::Amf0Value;

const ITERATIONS: usize = 20_000;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn command(
    ser: &mut ChunkSerializer,
    name: &str,
    txn: f64,
    args: Vec<Amf0Value>,
    msid: u32,
) -> Vec<u8> {
    let mut obj = HashMap::new();
    obj.insert("app".to_string(), Amf0Value::Utf8String("live".into()));
    let msg = RtmpMessage::Amf0Command {
        command_name: name.into(),
        transaction_id: txn,
        command_object: if name == "connect" {
            Amf0Value::Object(obj)
        } else {
            Amf0Value::Null
        },
        additional_arguments: args,
    };
    let p = msg
        .into_message_payload(RtmpTimestamp::new(0), msid)
        .expect("payload");
    ser.serialize(&p, false, false).expect("serialize").bytes
}

fn media(ser: &mut ChunkSerializer, type_id: u8, ts: u32, data: Vec<u8>) -> Vec<u8> {
    let p = MessagePayload {
        timestamp: RtmpTimestamp::new(ts),
        type_id,
        message_stream_id: 1,
        data: Bytes::from(data),
    };
    ser.serialize(&p, false, false).expect("serialize").bytes
}

/// A valid post-handshake byte stream of a publisher (or a player).
fn valid_stream(publish: bool, stream: &str) -> Vec<u8> {
    let mut ser = ChunkSerializer::new();
    let mut out = ser
        .set_max_chunk_size(300, RtmpTimestamp::new(0))
        .expect("chunk size")
        .bytes;
    out.extend(command(&mut ser, "connect", 1.0, vec![], 0));
    out.extend(command(&mut ser, "createStream", 2.0, vec![], 0));
    let verb = if publish { "publish" } else { "play" };
    out.extend(command(
        &mut ser,
        verb,
        3.0,
        if publish {
            // A publish without its type ("live") is refused by the command session.
            vec![
                Amf0Value::Utf8String(stream.into()),
                Amf0Value::Utf8String("live".into()),
            ]
        } else {
            vec![Amf0Value::Utf8String(stream.into())]
        },
        1,
    ));
    if publish {
        let mut meta = b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData\x03".to_vec();
        meta.extend_from_slice(b"\x00\x05width\x00\x40\x74\x00\x00\x00\x00\x00\x00\x00\x00\x09");
        out.extend(media(&mut ser, 18, 0, meta));
        out.extend(media(&mut ser, 9, 0, vec![0x17, 0, 0, 0, 0, 1, 2, 3]));
        for i in 0..8u32 {
            let key = if i % 4 == 0 { 0x17 } else { 0x27 };
            let mut v = vec![key, 1, 0, 0, 0];
            v.extend(std::iter::repeat_n(i as u8, 700));
            out.extend(media(&mut ser, 9, i * 40, v));
            out.extend(media(&mut ser, 8, i * 40, vec![0xaf, 1, 9, 9, 9]));
        }
        out.extend(command(
            &mut ser,
            "deleteStream",
            4.0,
            vec![Amf0Value::Number(1.0)],
            0,
        ));
    }
    out
}

fn mutate(rng: &mut XorShift, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(6) {
        if b.is_empty() {
            break;
        }
        let i = rng.below(b.len());
        match rng.below(6) {
            0 => b[i] ^= 1 << rng.below(8),
            1 => b[i] = rng.next() as u8,
            2 => {
                let n = rng.below(64);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(i..i, junk);
            }
            3 => b.truncate(i),
            4 => {
                let end = (i + rng.below(200)).min(b.len());
                let seg = b[i..end].to_vec();
                b.splice(i..i, seg);
            }
            _ => {
                // Interesting header values: max lengths, extended timestamps, big csids.
                let v = [0xff, 0x00, 0x7f, 0x80, 0x3f, 0xc0][rng.below(6)];
                b[i] = v;
            }
        }
    }
    b
}

#[test]
fn mutated_streams_never_panic_the_inbound_path() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let registry = Registry::new(
        RegistrySettings {
            upstreams: vec![],
            upstream_linger: Duration::from_secs(1),
            capacity: CapacityLimits::viewers_only(100),
            hub: HubConfig::default(),
        },
        Arc::new(Metrics::new("origin", "fuzz")),
    );
    let limits = ChunkLimits {
        max_message_len: 1 << 20,
        ..ChunkLimits::default()
    };
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    // Mutated publishers publish `b` (each session ends before the next starts) so their media
    // reaches the hub; mutated players play `a`, which the keeper below holds live.
    let seeds = [valid_stream(true, "b"), valid_stream(false, "a")];
    let mut errors: HashMap<String, usize> = HashMap::new();
    let mut clean = 0usize;
    // A publisher that stays live so mutated players find a stream.
    let (mut keeper, _) = InboundDriver::new(registry.clone(), limits).expect("session");
    keeper
        .handle_bytes(&valid_stream(true, "a")[..valid_stream(true, "a").len() - 40])
        .expect("valid publisher accepted");
    assert!(
        registry
            .get("live", "a")
            .is_some_and(|entry| entry.hub.has_keyframe()),
        "the keeper publisher must be live (with a keyframe) so mutated players find a stream"
    );

    for i in 0..ITERATIONS {
        let seed = &seeds[i % seeds.len()];
        let bytes = if i % 10 == 0 {
            (0..rng.below(3000)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, seed.clone())
        };
        let (mut s, _) = InboundDriver::new(registry.clone(), limits).expect("session");
        let mut rest = &bytes[..];
        let mut outcome = Ok(());
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(900));
            if let Err(e) = s.handle_bytes(&rest[..n]) {
                outcome = Err(e);
                break;
            }
            rest = &rest[n..];
        }
        match outcome {
            Ok(()) => clean += 1,
            Err(e) => {
                assert!(
                    !matches!(e, InboundError::LibraryPanic),
                    "iteration {i}: the session library panicked (guarded, but worth knowing)"
                );
                let kind = format!("{e}");
                let kind = kind.split(':').next().unwrap_or("").to_string();
                *errors.entry(kind).or_default() += 1;
            }
        }
    }
    eprintln!("{ITERATIONS} fuzz cases: {clean} accepted, errors by kind: {errors:?}");
    assert!(
        clean > 0 && !errors.is_empty(),
        "the fuzz loop should exercise both outcomes"
    );
}
