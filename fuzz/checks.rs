#![allow(dead_code)] // each fuzz target uses one check
//! The checks each fuzz target runs on one input, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the corpus replay in the test suite
//! (`integrity/tests/fuzz_corpus.rs`). Each must never panic on any input; where a format can
//! be written back, what was read must survive the round trip; a tampered signed stream must
//! never pass as verified.

use std::sync::Arc;

use bytes::Bytes;
use surge_integrity::message::FrameKind;
use surge_integrity::signer::GroupSigner;
use surge_integrity::verifier::{Tally, Verifier};
use surge_integrity::{KeyRing, SigningKey};
use surge_wire::flv_stream::FlvStreamParser;
use surge_wire::http_chunked::ChunkedDecoder;
use surge_wire::{ChunkLimits, ChunkReader, PayloadPolicy, amf0};

/// `data` cut into pieces whose lengths come from the data itself, so a parser sees its input
/// split at every kind of boundary.
fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let Some((&seed, mut rest)) = data.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut step = seed as usize % 37 + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
        step = (step * 7 + 3) % 61 + 1;
    }
    out
}

/// The RTMP chunk reader (what every relay reads from every connection), with small limits
/// so the limit paths are reached too, under both payload policies.
pub fn chunk_reader(data: &[u8]) {
    let limits = ChunkLimits {
        max_chunk_size: 1 << 16,
        max_message_len: 1 << 16,
        max_chunk_streams: 8,
        max_pending_bytes: 1 << 17,
    };
    for policy in [PayloadPolicy::Whole, PayloadPolicy::MediaPrefix(64)] {
        let mut reader = ChunkReader::with_policy(limits, policy);
        'feed: for piece in pieces(data) {
            reader.push(piece);
            loop {
                match reader.next_message() {
                    Ok(Some(m)) => assert!(m.payload.len() <= m.length as usize),
                    Ok(None) => break,
                    // An error closes the connection: nothing more is read from it.
                    Err(_) => break 'feed,
                }
            }
        }
    }
}

/// AMF0 commands and data: whatever decodes encodes again, and that encoding decodes to the
/// same values.
pub fn amf0(data: &[u8]) {
    let Ok(values) = amf0::decode(data) else {
        return;
    };
    let Ok(encoded) = amf0::encode(values.clone()) else {
        return;
    };
    let again = amf0::decode(&encoded).expect("our own encoding decodes");
    let canon = |vs: &[amf0::Amf0Value]| vs.iter().map(canonical).collect::<Vec<_>>();
    assert_eq!(canon(&values), canon(&again), "AMF0 round trip");
}

/// A value as text with object keys sorted (objects are hash maps: no order) and numbers by
/// their bits (NaN equals itself).
fn canonical(v: &amf0::Amf0Value) -> String {
    use amf0::Amf0Value as V;
    match v {
        V::Number(n) => format!("n{:x}", n.to_bits()),
        V::Boolean(b) => format!("b{b}"),
        V::Utf8String(s) => format!("s{s:?}"),
        V::Object(props) => {
            let mut kv: Vec<String> = props
                .iter()
                .map(|(k, v)| format!("{k:?}:{}", canonical(v)))
                .collect();
            kv.sort();
            format!("o{{{}}}", kv.join(","))
        }
        V::StrictArray(items) => {
            format!(
                "a[{}]",
                items.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        V::Null => "null".into(),
        V::Undefined => "undefined".into(),
    }
}

/// FLV: the streaming tag parser (HTTP-FLV viewers) fed in pieces agrees with the whole-file
/// parser on the tags it finds; aggregate messages and AVC headers parse or refuse.
pub fn flv(data: &[u8]) {
    let mut streamed = Vec::new();
    let mut parser = FlvStreamParser::new(surge_wire::flv_stream::MAX_TAG);
    for piece in pieces(data) {
        let mut on = |m: surge_wire::flv_stream::MessagePrefix<'_>| {
            streamed.push((m.type_id, m.timestamp_ms, m.prefix.to_vec()));
        };
        if parser.feed(piece, &mut on).is_err() {
            break;
        }
    }
    let body = data.get(1..).unwrap_or_default();
    if let Ok(tags) = surge_wire::flv::parse_flv(body) {
        for (tag, seen) in tags.iter().zip(&streamed) {
            assert_eq!(tag.tag_type, seen.0, "tag type");
            assert_eq!(&tag.data[..], &seen.2[..], "tag body");
        }
    }
    let bytes = Bytes::copy_from_slice(data);
    let _ = surge_wire::flv::split_aggregate(0, &bytes);
    if let Some(h) = surge_wire::avc::VideoHeader::parse(data) {
        let _ = h.is_avc_frame();
        if let Some(n) = surge_wire::avc::nal_length_size(data) {
            let _ = surge_wire::sei::find_timing_in_avcc(data, n);
        }
    }
    let _ = surge_wire::sei::find_timing_in_avcc(data, 4);
    let _ = surge_wire::metadata::metadata_body(&bytes);
}

/// HTTP chunked bodies (HTTP-FLV from another server, the locator's answers): the body runs
/// returned are slices of the input, fed in pieces.
pub fn http_chunked(data: &[u8]) {
    let mut decoder = ChunkedDecoder::new();
    let mut body = 0usize;
    for piece in pieces(data) {
        let mut input = piece;
        loop {
            match decoder.next_data(&mut input) {
                Ok(Some(run)) => body += run.len(),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert!(body <= data.len());
}

/// Signature messages as a relay or a viewer meets them: the body decoder on any bytes, and a
/// verifier holding frames that gets the bytes as a signature message. Nothing but the test
/// key's signatures can pass, so nothing here may verify.
pub fn signature_message(data: &[u8]) {
    let _ = surge_integrity::message::decode(data);
    let key = SigningKey::from_pem(TEST_KEY.as_bytes()).expect("test key");
    let mut verifier = Verifier::new(KeyRing::new(vec![key.public_key()]));
    let _ = verifier.on_frame(FrameKind::Video, 0, &[0x17, 1, 0, 0, 0, 0xaa]);
    let _ = verifier.on_frame(FrameKind::Audio, 20, &[0xaf, 1, 0x55]);
    let mut payload = surge_integrity::message::NAME_AMF0.to_vec();
    payload.extend_from_slice(data);
    let verdict = verifier.on_message(FrameKind::Metadata, 40, &payload);
    assert!(
        !matches!(verdict, Some(surge_integrity::Verdict::Verified { frames, .. }) if frames > 0),
        "forged signature message verified: {verdict:?}"
    );
    let verdict = verifier.on_signature(data);
    assert!(
        !matches!(verdict, surge_integrity::Verdict::Verified { frames, .. } if frames > 0),
        "raw bytes verified as a signature: {verdict:?}"
    );
}

/// A fixed test key (made with `openssl genpkey -algorithm ed25519`; it signs nothing real).
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIP5hKmxPx8wqMooqxlk4GzfrPx6OsX3vhwUYAE2fSUIw
-----END PRIVATE KEY-----
";

fn fixed_clock() -> u64 {
    1_700_000_000_000
}

/// One message of a signed stream as a relay receives it.
#[derive(Clone)]
struct Message {
    kind: FrameKind,
    timestamp: u32,
    payload: Vec<u8>,
    /// A frame (not a signature message).
    frame: bool,
}

/// Signed frames: a stream made from the input and signed with the test key, then changed as
/// the rest of the input says (bytes flipped, messages dropped, repeated or swapped, random
/// signature messages), and fed to a verifier trusting the key. Unchanged, every frame
/// verifies; with a frame's bytes changed, the change is always flagged.
pub fn signatures(data: &[u8]) {
    let key = Arc::new(SigningKey::from_pem(TEST_KEY.as_bytes()).expect("test key"));
    let ring = KeyRing::new(vec![key.public_key()]);
    let (head, ops) = data.split_at(data.len().min(64));
    // The stream: a config frame, then frames whose kinds, sizes and timestamps follow `head`.
    let mut signer = GroupSigner::with_session(key, 7, fixed_clock);
    let mut stream = Vec::new();
    let mut push = |stream: &mut Vec<Message>, kind, timestamp, payload: Vec<u8>| {
        if let Some(sig) = signer.on_frame(kind, timestamp, &payload) {
            stream.push(Message {
                kind: FrameKind::Metadata,
                timestamp,
                payload: sig,
                frame: false,
            });
        }
        stream.push(Message {
            kind,
            timestamp,
            payload,
            frame: true,
        });
    };
    push(
        &mut stream,
        FrameKind::Video,
        0,
        vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f],
    );
    let mut ts = 0u32;
    for (i, &b) in head.iter().enumerate() {
        ts = ts.wrapping_add(u32::from(b % 50));
        let keyframe = b % 11 == 0;
        let kind = if b % 5 == 0 {
            FrameKind::Audio
        } else {
            FrameKind::Video
        };
        let first = if kind == FrameKind::Audio {
            0xaf
        } else if keyframe {
            0x17
        } else {
            0x27
        };
        let mut payload = vec![first, 1, 0, 0, 0];
        payload.extend(std::iter::repeat_n(b, usize::from(b) % 40 + i % 3));
        push(&mut stream, kind, ts, payload);
    }
    if let Some(sig) = signer.flush() {
        stream.push(Message {
            kind: FrameKind::Metadata,
            timestamp: ts,
            payload: sig,
            frame: false,
        });
    }
    let frames = stream.iter().filter(|m| m.frame).count() as u64;

    // The stream as signed: a frame whose bytes differ from every signed frame's is tampered
    // (two flips of the same bit undo each other).
    let signed_frames: std::collections::HashSet<Vec<u8>> = stream
        .iter()
        .filter(|m| m.frame)
        .map(|m| m.payload.clone())
        .collect();
    let mut changed = false;
    let mut ops = ops.chunks_exact(3);
    for op in ops.by_ref() {
        if stream.is_empty() {
            break;
        }
        let i = usize::from(op[1]) % stream.len();
        match op[0] % 6 {
            0 => {
                let m = &mut stream[i];
                if !m.payload.is_empty() {
                    let at = usize::from(op[2]) % m.payload.len();
                    m.payload[at] ^= 1 << (op[2] % 8);
                    changed = true;
                }
            }
            1 => {
                stream.remove(i);
                changed = true;
            }
            2 => {
                let m = stream[i].clone();
                stream.insert(i, m);
                changed = true;
            }
            3 => {
                let j = usize::from(op[2]) % stream.len();
                stream.swap(i, j);
                changed |= i != j;
            }
            4 => {
                // A signature message of arbitrary bytes (its name right, its body not).
                let mut payload = surge_integrity::message::NAME_AMF0.to_vec();
                payload.extend_from_slice(op);
                stream.insert(
                    i,
                    Message {
                        kind: FrameKind::Metadata,
                        timestamp: 0,
                        payload,
                        frame: false,
                    },
                );
                changed = true;
            }
            _ => {}
        }
    }

    let mut verifier = Verifier::new(ring);
    let mut tally = Tally::default();
    for m in &stream {
        if let Some(v) = verifier.on_message(m.kind, m.timestamp, &m.payload) {
            tally.add(&v);
        }
    }
    if let Some(v) = verifier.discontinuity() {
        tally.add(&v);
    }
    if !changed {
        assert_eq!(
            (tally.verified, tally.failed),
            (frames, 0),
            "an untouched stream verifies"
        );
    }
    let tampered_frame = stream
        .iter()
        .any(|m| m.frame && !signed_frames.contains(&m.payload));
    // Repeated frames can make up the count of verified ones, so the property is that the
    // change is flagged (failed or unverified frames), never silently accepted.
    if tampered_frame {
        assert!(
            tally.failed + tally.unverified > 0,
            "a changed frame passed unflagged: {tally:?}"
        );
    }
}
