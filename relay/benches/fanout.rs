//! Fan-out cost per viewer per frame: the relay's serialize-once hub (one ChunkSerializer per
//! stream, refcounted clones per viewer) versus per-session serialization (rml_rtmp
//! `ServerSession::send_video_data` for every viewer). Plain harness; prints a Markdown table.
//!
//! Run: `cargo bench -p surge-relay --bench fanout` (optional args: VIEWERS FRAMES).

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig};
use rml_rtmp::time::RtmpTimestamp;
use surge_relay::hub::{Batch, Hub, HubConfig};
use surge_relay::media::{MediaKind, MediaMessage};
use surge_relay::protocol::Protocol;

fn frame(i: u32, size: usize) -> Bytes {
    let mut v = vec![if i.is_multiple_of(60) { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.resize(size, (i % 251) as u8);
    Bytes::from(v)
}

/// ns per viewer per frame, serialize-once: publish once, every viewer takes its batch.
fn serialize_once(viewers: usize, frames: u32, size: usize) -> (f64, usize) {
    let hub = Hub::new("live", "bench", HubConfig::default(), None);
    let mut subs: Vec<_> = (0..viewers)
        .map(|_| hub.subscribe(Protocol::Rtmp))
        .collect();
    let mut sink = 0usize;
    let start = Instant::now();
    for i in 0..frames {
        hub.publish(MediaMessage::new(MediaKind::Video, i * 33, frame(i, size)));
        for s in subs.iter_mut() {
            if let Some(Batch::Data(bufs)) = s.try_next() {
                // What a viewer's writer gets: refcounted clones of the shared chunks.
                sink += bufs.iter().map(|b| b.len()).sum::<usize>();
                black_box(&bufs);
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (viewers as f64 * f64::from(frames));
    (ns, black_box(sink))
}

/// ns per viewer per frame, per-session: every viewer's session serializes the frame.
fn per_session(viewers: usize, frames: u32, size: usize) -> (f64, usize) {
    let mut sessions: Vec<ServerSession> = (0..viewers)
        .filter_map(|_| {
            ServerSession::new(ServerSessionConfig::new())
                .ok()
                .map(|(s, _)| s)
        })
        .collect();
    let mut sink = 0usize;
    let start = Instant::now();
    for i in 0..frames {
        let data = frame(i, size);
        for s in sessions.iter_mut() {
            if let Ok(p) = s.send_video_data(1, data.clone(), RtmpTimestamp::new(i * 33), false) {
                sink += p.bytes.len();
                black_box(&p);
            }
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / (viewers as f64 * f64::from(frames));
    (ns, black_box(sink))
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let viewers = args.first().copied().unwrap_or(1000);
    let frames = args.get(1).copied().unwrap_or(300) as u32;
    println!("fan-out cost per viewer per frame, {viewers} viewers x {frames} frames\n");
    println!("| frame size | serialize-once (ns) | per-session rml_rtmp (ns) | ratio |");
    println!("|---:|---:|---:|---:|");
    for size in [2_500usize, 25_000, 100_000] {
        // Warm-up, then measure.
        let _ = serialize_once(viewers / 10 + 1, 20, size);
        let _ = per_session(viewers / 10 + 1, 20, size);
        let (once, a) = serialize_once(viewers, frames, size);
        let (each, b) = per_session(viewers, frames, size);
        assert!(a > 0 && b > 0);
        println!(
            "| {size} B | {once:.0} | {each:.0} | {:.1}x |",
            each / once.max(1e-9)
        );
    }
}
