//! What signed frames cost per frame, signing and verifying: one Ed25519 signature per group
//! of frames (a hash list, as shipped) against one per frame (the same signer flushed after
//! every frame), on synthetic streams shaped like the benchmark publisher's (30 fps, a
//! keyframe every 2 s, keyframes 8× the size of other frames) at a few bitrates. Also the
//! signature messages' share of the stream's bytes.
//!
//! `cargo run --release -p surge-integrity --example cost` (about 20 s; numbers depend on the
//! machine and what else runs on it).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use surge_integrity::{FrameKind, GroupSigner, KeyRing, SigningKey, Verifier};

/// Made with `openssl genpkey -algorithm ed25519` (a benchmark key, not a secret).
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIFjfaxQn836f1im3Oe6zm0hPpqIbt6rX9bWLG59C0e7\n-----END PRIVATE KEY-----\n";
const FPS: u32 = 30;
const GOP_FRAMES: u32 = 60;
/// Frames per run: 30 s of stream.
const FRAMES: u32 = 900;
/// Each measurement repeats the run for at least this long.
const MIN_TIME: Duration = Duration::from_millis(1500);

/// 30 s of video at `kbps`: (timestamp, payload), keyframes 8× the others.
fn stream(kbps: u32) -> Vec<(u32, Vec<u8>)> {
    let per_gop = kbps as usize * 1000 / 8 * GOP_FRAMES as usize / FPS as usize;
    let small = per_gop / (8 + GOP_FRAMES as usize - 1);
    (0..FRAMES)
        .map(|i| {
            let key = i % GOP_FRAMES == 0;
            let len = if key { 8 * small } else { small };
            let mut p = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
            p.extend((0..len).map(|j| (i as usize * 31 + j) as u8));
            (i * 1000 / FPS, p)
        })
        .collect()
}

/// Signs `frames`: one signature per group, or (`per_frame`) one per frame. Returns the
/// stream as sent: frames and signature messages (kind `Metadata`) in order.
fn sign(
    key: &Arc<SigningKey>,
    frames: &[(u32, Vec<u8>)],
    per_frame: bool,
) -> Vec<(FrameKind, u32, Vec<u8>)> {
    let mut s = GroupSigner::with_session(key.clone(), 1, || 1);
    let mut out = Vec::with_capacity(frames.len() * 2);
    for (ts, p) in frames {
        if let Some(sig) = s.on_frame(FrameKind::Video, *ts, p) {
            out.push((FrameKind::Metadata, *ts, sig));
        }
        out.push((FrameKind::Video, *ts, p.clone()));
        if per_frame && let Some(sig) = s.flush() {
            out.push((FrameKind::Metadata, *ts, sig));
        }
    }
    if let Some(sig) = s.flush() {
        out.push((FrameKind::Metadata, frames.len() as u32, sig));
    }
    out
}

/// What a signer does per frame, without building the output stream: the signature bytes.
fn sign_only(key: &Arc<SigningKey>, frames: &[(u32, Vec<u8>)], per_frame: bool) -> usize {
    let mut s = GroupSigner::with_session(key.clone(), 1, || 1);
    let mut bytes = 0;
    for (ts, p) in frames {
        bytes += s.on_frame(FrameKind::Video, *ts, p).map_or(0, |m| m.len());
        if per_frame {
            bytes += s.flush().map_or(0, |m| m.len());
        }
    }
    bytes + s.flush().map_or(0, |m| m.len())
}

/// Nanoseconds per frame of `run` (which handles `FRAMES` frames), over repeated runs.
fn per_frame_ns(mut run: impl FnMut()) -> f64 {
    run(); // warm-up
    let start = Instant::now();
    let mut runs = 0u32;
    while start.elapsed() < MIN_TIME {
        run();
        runs += 1;
    }
    start.elapsed().as_nanos() as f64 / (runs as f64 * FRAMES as f64)
}

fn main() {
    let key = Arc::new(SigningKey::from_pem(KEY.as_bytes()).expect("key"));
    let ring = KeyRing::new(vec![key.public_key()]);
    println!(
        "| stream | mean frame bytes | signing per group ns/frame | signing per frame ns/frame | verifying per group ns/frame | verifying per frame ns/frame | signature bytes per group / per frame (% of stream) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for kbps in [600u32, 2500, 6000] {
        let frames = stream(kbps);
        let media_bytes: usize = frames.iter().map(|(_, p)| p.len()).sum();
        let mut cells = Vec::new();
        let mut sig_share = Vec::new();
        for per_frame in [false, true] {
            cells.push(per_frame_ns(|| {
                black_box(sign_only(&key, black_box(&frames), per_frame));
            }));
        }
        for per_frame in [false, true] {
            let signed = sign(&key, &frames, per_frame);
            let sig_bytes: usize = signed
                .iter()
                .filter(|(k, _, _)| *k == FrameKind::Metadata)
                .map(|(_, _, p)| p.len())
                .sum();
            sig_share.push((sig_bytes, 100.0 * sig_bytes as f64 / media_bytes as f64));
            let mut failed = false;
            cells.push(per_frame_ns(|| {
                let mut v = Verifier::new(ring.clone());
                for (kind, ts, p) in &signed {
                    if let Some(surge_integrity::Verdict::Failed { .. }) =
                        v.on_message(*kind, *ts, p)
                    {
                        failed = true;
                    }
                }
                black_box(v.pending());
            }));
            assert!(!failed, "the benchmark stream must verify");
        }
        println!(
            "| {kbps} kbps, 30 fps, 2 s GOP | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} / {} ({:.2} % / {:.2} %) |",
            media_bytes / frames.len(),
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            sig_share[0].0,
            sig_share[1].0,
            sig_share[0].1,
            sig_share[1].1,
        );
    }
    // The parts: one SHA-256 leaf of a 600 kbps frame, one Ed25519 signature, one check.
    let frames = stream(600);
    let leaf = per_frame_ns(|| {
        for (_, p) in &frames {
            black_box(surge_integrity::message::leaf(
                FrameKind::Video,
                black_box(p),
            ));
        }
    });
    let sig = key.sign(b"a message of about the size of one frame entry");
    let public = key.public_key();
    let ed_sign = per_frame_ns(|| {
        for _ in 0..FRAMES {
            black_box(key.sign(black_box(b"a message of about the size of one frame entry")));
        }
    });
    let ed_verify = per_frame_ns(|| {
        for _ in 0..FRAMES {
            black_box(public.verify(b"a message of about the size of one frame entry", &sig));
        }
    });
    println!();
    println!(
        "parts: SHA-256 leaf of a 600 kbps frame {leaf:.0} ns, Ed25519 sign {ed_sign:.0} ns, Ed25519 verify {ed_verify:.0} ns"
    );
}
