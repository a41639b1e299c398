//! Signer and verifier together: clean streams pass, every kind of tampering fails within one
//! group, legitimate losses and shifts do not.

use std::sync::Arc;

use proptest::prelude::*;

use crate::keys::tests::{key_a, key_b};
use crate::message::FrameKind::{self, Audio, Metadata, Video};
use crate::{FailReason, GroupSigner, KeyRing, Tally, Verdict, Verifier};

/// One message of a stream as a relay forwards it.
#[derive(Clone, Debug)]
struct Msg {
    kind: FrameKind,
    ts: u32,
    payload: Vec<u8>,
}

fn frame(kind: FrameKind, ts: u32, payload: Vec<u8>) -> Msg {
    Msg { kind, ts, payload }
}

/// `groups` GOPs of a keyframe, `inter` inter frames and audio between them, preceded by
/// metadata and sequence headers; signatures inserted by a signer with `session`/clock.
fn signed_stream(signer: &mut GroupSigner, groups: u32, inter: u32, start_ts: u32) -> Vec<Msg> {
    let mut raw = vec![
        frame(
            Metadata,
            0,
            b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09".to_vec(),
        ),
        frame(Video, start_ts, vec![0x17, 0, 0, 0, 0, 1, 0x64]),
        frame(Audio, start_ts, vec![0xaf, 0, 0x12, 0x10]),
    ];
    let mut ts = start_ts;
    for g in 0..groups {
        raw.push(frame(
            Video,
            ts,
            vec![0x17, 1, 0, 0, 0, g as u8, 0xAA, 0xBB],
        ));
        for i in 0..inter {
            ts += 20;
            raw.push(frame(Audio, ts, vec![0xaf, 1, 0x21, 0x00])); // identical (silence)
            ts += 20;
            raw.push(frame(Video, ts, vec![0x27, 1, 0, 0, 0, g as u8, i as u8]));
        }
        ts += 40;
    }
    let mut out = Vec::new();
    for m in raw {
        if let Some(sig) = signer.on_frame(m.kind, m.ts, &m.payload) {
            out.push(frame(Metadata, m.ts, sig));
        }
        out.push(m);
    }
    if let Some(sig) = signer.flush() {
        out.push(frame(Metadata, ts, sig));
    }
    out
}

fn signer(session: u64) -> GroupSigner {
    GroupSigner::with_session(Arc::new(key_a()), session, || 1_000)
}

fn ring() -> KeyRing {
    KeyRing::new(vec![key_b().public_key(), key_a().public_key()])
}

fn run(v: &mut Verifier, msgs: &[Msg]) -> (Tally, Vec<FailReason>) {
    let mut t = Tally::default();
    let mut reasons = Vec::new();
    for m in msgs {
        if let Some(verdict) = v.on_message(m.kind, m.ts, &m.payload) {
            if let Verdict::Failed { reason, .. } = &verdict {
                reasons.push(reason.clone());
            }
            t.add(&verdict);
        }
    }
    (t, reasons)
}

fn is_sig(m: &Msg) -> bool {
    crate::is_signature(&m.payload)
}

#[test]
fn a_clean_stream_verifies_every_frame() {
    let msgs = signed_stream(&mut signer(1), 5, 10, 0);
    let media = msgs.iter().filter(|m| !is_sig(m)).count() as u64;
    let (t, reasons) = run(&mut Verifier::new(ring()), &msgs);
    assert_eq!(reasons, vec![]);
    assert_eq!((t.verified, t.failed, t.unverified), (media, 0, 0));
}

#[test]
fn a_changed_byte_fails_the_group_it_is_in() {
    let mut msgs = signed_stream(&mut signer(1), 5, 10, 0);
    // Byte 6 of the third group's keyframe.
    let target = msgs
        .iter()
        .position(|m| m.kind == Video && m.payload.get(5) == Some(&2) && m.payload[0] == 0x17)
        .expect("keyframe of group 2");
    msgs[target].payload[6] ^= 0x01;
    let mut v = Verifier::new(ring());
    let mut verdicts = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        if let Some(x) = v.on_message(m.kind, m.ts, &m.payload) {
            verdicts.push((i, x));
        }
    }
    let (at, failed) = verdicts
        .iter()
        .find(|(_, v)| matches!(v, Verdict::Failed { .. }))
        .expect("a failure");
    assert!(matches!(
        failed,
        Verdict::Failed {
            reason: FailReason::NotSigned { kind: Video, .. },
            ..
        }
    ));
    let next_sig = msgs[target..].iter().position(is_sig).expect("sig") + target;
    assert_eq!(*at, next_sig, "detected at the group's own signature");
    assert_eq!(
        verdicts
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Failed { .. }))
            .count(),
        1,
        "the following groups verify again"
    );
}

#[test]
fn losses_a_relay_may_cause_still_verify() {
    let msgs = signed_stream(&mut signer(1), 6, 10, 0);
    // Joined mid-group: starts at the 8th message.
    let (t, r) = run(&mut Verifier::new(ring()), &msgs[8..]);
    assert!(r.is_empty(), "{r:?}");
    assert!(t.verified > 0);
    // A slow viewer skipped from the middle of group 1 to the keyframe of group 3.
    let mid = msgs
        .iter()
        .position(|m| m.payload.get(5) == Some(&1) && m.payload[0] == 0x27)
        .unwrap()
        + 4;
    let resume = msgs
        .iter()
        .position(|m| m.payload.get(5) == Some(&3) && m.payload[0] == 0x17)
        .unwrap();
    let mut skipped = msgs[..mid].to_vec();
    // The cache repeats the configuration before the keyframe it resumes at.
    skipped.extend(msgs[1..3].iter().cloned());
    skipped.extend(msgs[resume..].iter().cloned());
    let (t, r) = run(&mut Verifier::for_viewer(ring()), &skipped);
    assert!(r.is_empty(), "{r:?}");
    assert!(t.unverified > 0 && t.verified > 0, "{t:?}");
    // A relay (strict) fails it: an attacker could drop a signature and replace its frames.
    let (_, r) = run(&mut Verifier::new(ring()), &skipped);
    assert_eq!(r.len(), 1, "{r:?}");
}

#[test]
fn a_shifted_timeline_verifies_but_one_moved_frame_does_not() {
    let msgs = signed_stream(&mut signer(1), 3, 10, 500);
    let shifted: Vec<Msg> = msgs
        .iter()
        .map(|m| Msg {
            ts: m.ts.wrapping_add(123_456),
            ..m.clone()
        })
        .collect();
    let (_, r) = run(&mut Verifier::new(ring()), &shifted);
    assert!(r.is_empty(), "{r:?}");
    let mut moved = msgs.clone();
    let i = moved
        .iter()
        .position(|m| m.kind == Video && m.payload[0] == 0x27)
        .unwrap();
    moved[i].ts += 1;
    let (_, r) = run(&mut Verifier::new(ring()), &moved);
    assert!(
        matches!(r.as_slice(), [FailReason::Timing { kind: Video, .. }]),
        "{r:?}"
    );
}

#[test]
fn reordered_frames_fail() {
    let mut msgs = signed_stream(&mut signer(1), 3, 10, 0);
    let i = msgs
        .iter()
        .position(|m| m.kind == Video && m.payload[0] == 0x27)
        .unwrap();
    msgs.swap(i, i + 2);
    let (_, r) = run(&mut Verifier::new(ring()), &msgs);
    assert_eq!(r.len(), 1, "{r:?}");
}

#[test]
fn an_injected_frame_fails() {
    let mut msgs = signed_stream(&mut signer(1), 3, 10, 0);
    msgs.insert(9, frame(Video, msgs[8].ts, vec![0x27, 1, 9, 9, 9]));
    let (_, r) = run(&mut Verifier::new(ring()), &msgs);
    assert!(
        matches!(r.as_slice(), [FailReason::NotSigned { .. }]),
        "{r:?}"
    );
}

#[test]
fn replayed_and_reordered_signatures_fail() {
    let msgs = signed_stream(&mut signer(1), 4, 5, 0);
    let sigs: Vec<Msg> = msgs.iter().filter(|m| is_sig(m)).cloned().collect();
    assert!(sigs.len() >= 3);
    let mut v = Verifier::new(ring());
    run(&mut v, &msgs);
    // The first signature again, after the later ones.
    let x = v.on_message(Metadata, 0, &sigs[0].payload).unwrap();
    assert!(
        matches!(
            x,
            Verdict::Failed {
                reason: FailReason::Replayed { .. },
                ..
            }
        ),
        "{x:?}"
    );
    // The last one again is a harmless duplicate.
    let x = v
        .on_message(Metadata, 0, &sigs[sigs.len() - 1].payload)
        .unwrap();
    assert_eq!(
        x,
        Verdict::Verified {
            frames: 0,
            unverified: 0
        }
    );
    // An older session replayed after a newer one.
    let mut old = GroupSigner::with_session(Arc::new(key_a()), 9, || 10);
    let mut new = GroupSigner::with_session(Arc::new(key_a()), 8, || 20);
    let mut v = Verifier::new(ring());
    let (_, r) = run(&mut v, &signed_stream(&mut new, 2, 3, 0));
    assert!(r.is_empty());
    let (_, r) = run(&mut v, &signed_stream(&mut old, 2, 3, 0));
    assert!(
        r.iter().all(|x| matches!(x, FailReason::Replayed { .. })) && !r.is_empty(),
        "{r:?}"
    );
}

#[test]
fn untrusted_keys_and_forged_signatures_fail() {
    let msgs = signed_stream(&mut signer(1), 2, 3, 0);
    let (_, r) = run(
        &mut Verifier::new(KeyRing::new(vec![key_b().public_key()])),
        &msgs,
    );
    assert!(
        matches!(r.first(), Some(FailReason::UnknownKey(_))),
        "{r:?}"
    );
    // Re-signed by another key that claims key a's id: the signature does not verify.
    let mut forged = msgs.clone();
    for m in forged
        .iter_mut()
        .filter(|m| crate::is_signature(&m.payload))
    {
        let mut decoded = crate::message::decode(&m.payload).unwrap();
        decoded.signature = key_b().sign(&decoded.signed_bytes);
        let mut body = decoded.signed_bytes[crate::message::DOMAIN.len()..].to_vec();
        body.extend_from_slice(&decoded.signature);
        m.payload = crate::message::wrap(&body);
    }
    let (_, r) = run(&mut Verifier::new(ring()), &forged);
    assert!(
        !r.is_empty() && r.iter().all(|x| *x == FailReason::BadSignature),
        "{r:?}"
    );
}

#[test]
fn stripped_signatures_fail_within_the_bound() {
    let msgs: Vec<Msg> = signed_stream(&mut signer(1), 20, 30, 0)
        .into_iter()
        .filter(|m| !is_sig(m))
        .collect();
    let mut v = Verifier::new(ring());
    let first_fail = msgs
        .iter()
        .position(|m| {
            matches!(
                v.on_message(m.kind, m.ts, &m.payload),
                Some(Verdict::Failed { .. })
            )
        })
        .expect("fails");
    assert!(
        msgs[first_fail].ts <= 3 * crate::MAX_GROUP_MS + 40,
        "{}",
        msgs[first_fail].ts
    );
    assert_eq!(
        v.discontinuity().map(|_| ()),
        if v.pending() > 0 { Some(()) } else { None }
    );
}

#[test]
fn a_discontinuity_leaves_pending_frames_unverified() {
    let msgs = signed_stream(&mut signer(1), 2, 3, 0);
    let mut v = Verifier::new(ring());
    for m in msgs.iter().take(4) {
        assert!(v.on_message(m.kind, m.ts, &m.payload).is_none());
    }
    assert_eq!(v.discontinuity(), Some(Verdict::Unverified { frames: 4 }));
    assert_eq!(v.discontinuity(), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any change to a signature message (bytes flipped, cut or added) never panics and never
    /// verifies the frames it covers.
    #[test]
    fn mangled_signature_messages_never_pass(
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let msgs = signed_stream(&mut signer(1), 1, 4, 0);
        let sig_at = msgs.iter().position(is_sig).unwrap();
        let mut sig = msgs[sig_at].payload.clone();
        for (pos, x) in flips {
            let i = pos % sig.len();
            sig[i] ^= x;
        }
        if let Some(c) = cut {
            sig.truncate(c % sig.len());
        }
        let mut v = Verifier::new(ring());
        for m in &msgs[..sig_at] {
            v.on_message(m.kind, m.ts, &m.payload);
        }
        let verdict = v.on_signature(&sig);
        // Base64 without padding can decode a changed final character to the same bytes.
        let same = crate::message::decode(&sig).ok() == crate::message::decode(&msgs[sig_at].payload).ok();
        prop_assert!(same || matches!(verdict, Verdict::Failed { .. }), "{verdict:?}");
    }

    /// Arbitrary bytes after the signature name never panic.
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut p = crate::message::NAME_AMF0.to_vec();
        p.extend_from_slice(&body);
        let mut v = Verifier::new(ring());
        let failed = matches!(v.on_signature(&p), Verdict::Failed { .. });
        prop_assert!(failed);
    }
}

/// Cost per frame (release build): `cargo test -p surge-integrity --release --lib -- --ignored --nocapture cost`.
#[test]
#[ignore]
fn cost_per_frame() {
    use std::time::Instant;
    let key = Arc::new(key_a());
    let public = key.public_key();
    for &size in &[200usize, 4_000, 40_000] {
        let payload = vec![0x27u8; size];
        let n = 20_000;
        let t = Instant::now();
        for i in 0..n {
            std::hint::black_box(crate::message::leaf(Video, &payload[..size - (i % 2)]));
        }
        let hash_ns = t.elapsed().as_nanos() as f64 / n as f64;
        println!("leaf (SHA-256) of a {size}-byte frame: {hash_ns:.0} ns");
    }
    let n = 2_000;
    let t = Instant::now();
    let mut sigs = Vec::new();
    for i in 0..n {
        sigs.push(key.sign(format!("frame {i}").as_bytes()));
    }
    let sign_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    for (i, s) in sigs.iter().enumerate() {
        assert!(public.verify(format!("frame {i}").as_bytes(), s));
    }
    let verify_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("Ed25519 sign: {sign_us:.1} us, verify: {verify_us:.1} us (per signature)");
    // Per group: a 2 s GOP at 30 fps video + 43 fps AAC = ~146 frames of ~4 kB on average.
    let mut signer = GroupSigner::with_session(key.clone(), 1, || 1);
    let frames = signed_stream(&mut signer, 200, 72, 0);
    let media = frames.iter().filter(|m| !is_sig(m)).count();
    let mut s2 = GroupSigner::with_session(key, 1, || 1);
    let big: Vec<Msg> = frames
        .iter()
        .filter(|m| !is_sig(m))
        .map(|m| Msg {
            payload: {
                let mut p = m.payload.clone();
                p.resize(4_000, 7);
                p
            },
            ..m.clone()
        })
        .collect();
    let t = Instant::now();
    let mut out = Vec::new();
    for m in &big {
        if let Some(s) = s2.on_frame(m.kind, m.ts, &m.payload) {
            out.push(frame(Metadata, m.ts, s));
        }
        out.push(m.clone());
    }
    let sign_frame_us = t.elapsed().as_secs_f64() * 1e6 / media as f64;
    let sig_bytes: usize = out
        .iter()
        .filter(|m| is_sig(m))
        .map(|m| m.payload.len())
        .sum();
    let groups = out.iter().filter(|m| is_sig(m)).count();
    let mut v = Verifier::new(ring());
    let t = Instant::now();
    let (tally, r) = run(&mut v, &out);
    let verify_frame_us = t.elapsed().as_secs_f64() * 1e6 / media as f64;
    assert!(r.is_empty());
    println!(
        "per group of {} frames (4 kB each): sign {sign_frame_us:.2} us/frame, verify {verify_frame_us:.2} us/frame, signature message {} bytes/group; {} frames verified",
        media / groups,
        sig_bytes / groups,
        tally.verified
    );
}
