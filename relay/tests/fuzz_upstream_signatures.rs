//! Bounded fuzz loop over the pull path with `--verify-key`: an in-test upstream (a real RTMP
//! server on loopback) plays a signed stream to the relay's own puller, with one group's
//! signature made hostile: bytes mutated at random, truncated, signed by an untrusted key, an
//! untrusted signature under the trusted key id, an earlier signature replayed (in its place
//! or again later), a signature from an older signer session, two signatures swapped, one
//! dropped. Every case must be reported as an integrity failure with a fitting reason (the
//! upstream is dropped: never taken as valid), nothing may panic, and the unmodified stream
//! must pass with no failure (so the loop can tell the two apart).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use surge_integrity::{FrameKind, GroupSigner, KeyRing, SigningKey};
use surge_relay::media::MediaMessage;
use surge_relay::upstream::{
    MediaSink, PullerConfig, PullerOptions, UpstreamState, spawn_puller_with,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Random signature mutations (the structured cases come on top).
const RANDOM_CASES: usize = 150;
/// Groups in a case's stream; the hostile one is among the first four.
const GROUPS: usize = 8;

/// Made with `openssl genpkey -algorithm ed25519`: the trusted key and another.
const TRUSTED: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIFjfaxQn836f1im3Oe6zm0hPpqIbt6rX9bWLG59C0e7\n-----END PRIVATE KEY-----\n";
const OTHER: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIk8XE7BmxkewpD4T9xRg6LJ67DkZiBl5y9mJafS1BLp\n-----END PRIVATE KEY-----\n";

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

/// One message as the upstream sends it: RTMP type, timestamp, payload.
type Msg = (u8, u32, Vec<u8>);

/// A stream signed by `key` (session `session`, signer clock `clock`): metadata, sequence
/// headers, then [`GROUPS`] one-second groups of 10 video and 10 audio frames, a signature
/// before each keyframe after the first and one at the end. Returns the messages and the
/// index of each signature message.
fn signed_stream(key: &str, session: u64, clock: fn() -> u64) -> (Vec<Msg>, Vec<usize>) {
    let key = Arc::new(SigningKey::from_pem(key.as_bytes()).expect("key"));
    let mut signer = GroupSigner::with_session(key, session, clock);
    let mut plain: Vec<(u8, FrameKind, u32, Vec<u8>)> = vec![
        (
            18,
            FrameKind::Metadata,
            0,
            b"\x02\x00\x0aonMetaData\x03\x00\x05width\x00\x40\x74\x00\x00\x00\x00\x00\x00\x00\x00\x09"
                .to_vec(),
        ),
        (9, FrameKind::Video, 0, vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]),
        (8, FrameKind::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
    ];
    for i in 0..GROUPS as u32 * 10 {
        let first = if i % 10 == 0 { 0x17 } else { 0x27 };
        let mut v = vec![first, 1, 0, 0, 0];
        v.extend((0..40u32).map(|j| (i * 7 + j) as u8));
        plain.push((9, FrameKind::Video, i * 100, v));
        plain.push((
            8,
            FrameKind::Audio,
            i * 100 + 20,
            vec![0xaf, 1, i as u8, 3, 4],
        ));
    }
    let mut out = Vec::new();
    let mut sigs = Vec::new();
    for (type_id, kind, ts, payload) in plain {
        if let Some(sig) = signer.on_frame(kind, ts, &payload) {
            sigs.push(out.len());
            out.push((18, ts, sig));
        }
        out.push((type_id, ts, payload));
    }
    let end = out.last().map_or(0, |m| m.1);
    sigs.push(out.len());
    out.push((18, end, signer.flush().expect("last group")));
    (out, sigs)
}

/// The base64 text of a signature message starts here (name, long-string marker, length);
/// its first 12 characters encode the version byte and the 8-byte key id.
const TEXT_AT: usize = 18 + 1 + 4;

#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// Random bytes of the signature message changed.
    Mutated,
    Truncated,
    /// Signed by a key the relay does not trust.
    ForeignKey,
    /// An untrusted key's signature under the trusted key's id.
    ForgedKeyId,
    /// The previous group's signature in place of this group's.
    PreviousInstead,
    /// The previous group's signature sent again after this group's.
    PreviousAgain,
    /// The same group signed in an older signer session.
    OlderSession,
    /// This group's and the next group's signatures swapped.
    Swapped,
    /// This group's signature left out.
    Dropped,
}

/// Labels (`surge_relay_integrity_failures_total{reason}`) a case may be reported with.
fn expected(h: Hostile) -> &'static [&'static str] {
    match h {
        Hostile::Mutated => &[
            "malformed",
            "bad_signature",
            "unknown_key",
            "not_signed",
            "timing",
            "replayed",
        ],
        Hostile::Truncated => &["malformed"],
        Hostile::ForeignKey => &["unknown_key"],
        Hostile::ForgedKeyId => &["bad_signature"],
        Hostile::PreviousInstead | Hostile::Swapped | Hostile::Dropped => &["not_signed", "timing"],
        Hostile::PreviousAgain | Hostile::OlderSession => &["replayed"],
    }
}

fn mutate(rng: &mut XorShift, mut b: Vec<u8>) -> Vec<u8> {
    let before = b.clone();
    while b == before {
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len());
            match rng.below(5) {
                0 => b[i] ^= 1 << rng.below(8),
                1 => b[i] = rng.next() as u8,
                // Another base64 character inside the text (decodes to other bytes).
                2 if b.len() > TEXT_AT => {
                    const B64: &[u8] =
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                    let j = TEXT_AT + rng.below(b.len() - TEXT_AT);
                    b[j] = B64[rng.below(64)];
                }
                3 => {
                    let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                    b.splice(i..i, junk);
                }
                _ => {
                    let j = rng.below(b.len());
                    b.swap(i, j);
                }
            }
        }
    }
    b
}

fn older_clock() -> u64 {
    1_000
}

fn newer_clock() -> u64 {
    2_000
}

/// The stream with group `k`'s signature (`k` >= 1: the verifier has accepted one before)
/// made hostile.
fn hostile_stream(h: Hostile, k: usize, rng: &mut XorShift) -> Vec<Msg> {
    let (mut msgs, sigs) = signed_stream(TRUSTED, 7, newer_clock);
    let at = sigs[k];
    match h {
        Hostile::Mutated => msgs[at].2 = mutate(rng, msgs[at].2.clone()),
        Hostile::Truncated => {
            let len = msgs[at].2.len();
            msgs[at].2.truncate(TEXT_AT + rng.below(len - TEXT_AT));
        }
        Hostile::ForeignKey => msgs[at].2 = signed_stream(OTHER, 7, newer_clock).0[at].2.clone(),
        Hostile::ForgedKeyId => {
            let mut forged = signed_stream(OTHER, 7, newer_clock).0[at].2.clone();
            forged[TEXT_AT..TEXT_AT + 12].copy_from_slice(&msgs[at].2[TEXT_AT..TEXT_AT + 12]);
            msgs[at].2 = forged;
        }
        Hostile::PreviousInstead => msgs[at].2 = msgs[sigs[k - 1]].2.clone(),
        Hostile::PreviousAgain => {
            let again = msgs[sigs[k - 1]].clone();
            msgs.insert(at + 1, (18, msgs[at].1, again.2));
        }
        Hostile::OlderSession => {
            msgs[at].2 = signed_stream(TRUSTED, 9, older_clock).0[at].2.clone();
        }
        Hostile::Swapped => {
            let (a, b) = (msgs[at].2.clone(), msgs[sigs[k + 1]].2.clone());
            msgs[at].2 = b;
            msgs[sigs[k + 1]].2 = a;
        }
        Hostile::Dropped => {
            msgs.remove(at);
        }
    }
    msgs
}

/// What the puller delivered and reported.
#[derive(Default)]
struct Recorder {
    media: AtomicUsize,
    failures: Mutex<Vec<(String, String)>>,
}

impl MediaSink for Recorder {
    fn on_media(&self, _msg: MediaMessage) {
        self.media.fetch_add(1, Ordering::SeqCst);
    }
    fn on_upstream_state(&self, _state: UpstreamState) {}
    fn on_end_of_stream(&self) {}
    fn on_integrity_failure(&self, _upstream: &str, reason: &str, detail: &str) {
        self.failures
            .lock()
            .expect("lock")
            .push((reason.to_owned(), detail.to_owned()));
    }
}

fn respond(results: Vec<ServerSessionResult>, out: &mut Vec<u8>) {
    for r in results {
        if let ServerSessionResult::OutboundResponse(p) = r {
            out.extend(p.bytes);
        }
    }
}

/// An RTMP server that accepts play and sends `msgs` on every connection, then stays open.
async fn upstream(msgs: Arc<Vec<Msg>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let msgs = msgs.clone();
            tokio::spawn(async move {
                let mut hs = Handshake::new(PeerType::Server);
                let mut buf = vec![0u8; 8192];
                let mut input = loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    match hs.process_bytes(&buf[..n]) {
                        Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                            let _ = sock.write_all(&response_bytes).await;
                        }
                        Ok(HandshakeProcessResult::Completed {
                            response_bytes,
                            remaining_bytes,
                        }) => {
                            let _ = sock.write_all(&response_bytes).await;
                            break remaining_bytes;
                        }
                        _ => return,
                    }
                };
                let config = ServerSessionConfig::new();
                let chunk_size = config.chunk_size as usize;
                let Ok((mut server, init)) = ServerSession::new(config) else {
                    return;
                };
                let mut out = Vec::new();
                respond(init, &mut out);
                loop {
                    for r in server.handle_input(&input).unwrap_or_default() {
                        match r {
                            ServerSessionResult::OutboundResponse(p) => out.extend(p.bytes),
                            ServerSessionResult::RaisedEvent(
                                ServerSessionEvent::ConnectionRequested { request_id, .. },
                            ) => respond(
                                server.accept_request(request_id).unwrap_or_default(),
                                &mut out,
                            ),
                            ServerSessionResult::RaisedEvent(
                                ServerSessionEvent::PlayStreamRequested {
                                    request_id,
                                    stream_id,
                                    ..
                                },
                            ) => {
                                respond(
                                    server.accept_request(request_id).unwrap_or_default(),
                                    &mut out,
                                );
                                for (type_id, ts, payload) in msgs.iter() {
                                    let csid = match type_id {
                                        8 => 4,
                                        9 => 6,
                                        _ => 5,
                                    };
                                    surge_wire::write_message(
                                        &mut out, csid, *type_id, stream_id, *ts, payload,
                                        chunk_size,
                                    );
                                }
                            }
                            _ => {}
                        }
                    }
                    if sock.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => input = buf[..n].to_vec(),
                    }
                }
            });
        }
    });
    format!("rtmp://{addr}/live")
}

/// Pulls `msgs` from an in-test upstream with the trusted key until a failure is reported or
/// (no failure) every message was delivered. Returns the failures and the media count.
async fn pull(msgs: Vec<Msg>, case: &str) -> (Vec<(String, String)>, usize) {
    let wanted = msgs.len();
    let url = upstream(Arc::new(msgs)).await;
    let key = SigningKey::from_pem(TRUSTED.as_bytes()).expect("key");
    let opts = PullerOptions {
        verify: Some(KeyRing::new(vec![key.public_key()])),
        return_to_preferred_after: None,
        ..PullerOptions::default()
    };
    let sink = Arc::new(Recorder::default());
    let cancel = CancellationToken::new();
    let task = spawn_puller_with(
        PullerConfig {
            upstreams: vec![url],
            app: "live".into(),
            stream: "s".into(),
        },
        opts,
        sink.clone(),
        cancel.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let failed = !sink.failures.lock().expect("lock").is_empty();
        // Signature messages are delivered too: every message of the stream.
        let all = sink.media.load(Ordering::SeqCst) >= wanted;
        if failed || all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // A little longer, so a failure right after the last message is not missed.
    tokio::time::sleep(Duration::from_millis(20)).await;
    cancel.cancel();
    let joined = task.await;
    assert!(
        joined.is_ok(),
        "{case}: the puller panicked: {:?}",
        joined.err()
    );
    let failures = sink.failures.lock().expect("lock").clone();
    (failures, sink.media.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_signatures_from_an_upstream_are_failures_never_valid() {
    let started = Instant::now();
    // The unmodified stream passes: the loop can tell hostile from honest.
    let (honest, _) = signed_stream(TRUSTED, 7, newer_clock);
    let n = honest.len();
    let (failures, delivered) = pull(honest, "honest").await;
    assert!(failures.is_empty(), "honest stream failed: {failures:?}");
    assert_eq!(delivered, n, "every message of the honest stream delivered");

    let mut rng = XorShift(0x5eed_0017_0003_0002);
    let mut cases: Vec<(Hostile, usize)> = Vec::new();
    for h in [
        Hostile::Truncated,
        Hostile::ForeignKey,
        Hostile::ForgedKeyId,
        Hostile::PreviousInstead,
        Hostile::PreviousAgain,
        Hostile::OlderSession,
        Hostile::Swapped,
        Hostile::Dropped,
    ] {
        for k in 1..=3 {
            cases.push((h, k));
        }
    }
    for _ in 0..RANDOM_CASES {
        cases.push((Hostile::Mutated, 1 + rng.below(3)));
    }
    let mut by_reason: std::collections::BTreeMap<String, usize> = Default::default();
    for (i, (h, k)) in cases.iter().enumerate() {
        let msgs = hostile_stream(*h, *k, &mut rng);
        let case = format!("case {i} ({h:?}, group {k})");
        let (failures, _) = pull(msgs, &case).await;
        let Some((reason, detail)) = failures.first() else {
            panic!("{case}: taken as valid (no integrity failure reported)");
        };
        assert!(
            expected(*h).contains(&reason.as_str()),
            "{case}: reported as {reason} ({detail}), expected one of {:?}",
            expected(*h)
        );
        *by_reason.entry(reason.clone()).or_default() += 1;
    }
    eprintln!(
        "{} hostile upstream cases in {:?}, failures by reason: {by_reason:?}",
        cases.len(),
        started.elapsed()
    );
}
