//! Fan-out: 200 RTMP viewers receive identical message sequences; a viewer that stops reading
//! does not delay the others and is disconnected; a slow reader skips to keyframes (dropped).

mod common;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use common::numbered_frames::{frame_body, now_ms, parse_video};
use common::relay_process::RelayProcess;
use common::rtmp_client::{
    RtmpClient, audio_payload, set_data_frame, video_payload, video_sequence_header,
};

const VIEWERS: usize = 200;
const FRAMES: u32 = 250; // 10 s at 25 fps
const GOP: u32 = 25;
const FRAME_BYTES: usize = 4000;

struct ViewerReport {
    digest: u64,
    video_seqs: Vec<u32>,
    /// Frames this viewer skipped: (last frame before, first frame after, that one's keyframe
    /// flag).
    gaps: Vec<(u32, u32, bool)>,
    max_lag_ms: u64,
    ended: bool,
}

async fn read_viewer(
    mut c: RtmpClient,
    delay_per_read: Option<Duration>,
    deadline: tokio::time::Instant,
) -> ViewerReport {
    let mut h = DefaultHasher::new();
    let mut seqs = Vec::new();
    let mut max_lag = 0;
    let mut gaps = Vec::new();
    let mut ended = false;
    loop {
        if let Some(d) = delay_per_read {
            tokio::time::sleep(d).await;
        }
        if tokio::time::Instant::now() > deadline {
            break;
        }
        let m = match c.next_message(Duration::from_secs(20)).await {
            Ok(m) => m,
            Err(_) => break,
        };
        match m.type_id {
            8 | 9 => {
                (m.type_id, m.timestamp, &m.payload[..]).hash(&mut h);
                if let Some((seq, sent)) = parse_video(&m.payload).filter(|_| m.type_id == 9) {
                    if let Some(&last) = seqs.last()
                        && seq != last + 1
                    {
                        gaps.push((last, seq, m.payload[0] >> 4 == 1));
                    }
                    seqs.push(seq);
                    max_lag = max_lag.max(now_ms().saturating_sub(sent));
                }
            }
            20 if String::from_utf8_lossy(&m.payload).contains("UnpublishNotify") => {
                ended = true;
                break;
            }
            _ => {}
        }
    }
    ViewerReport {
        digest: h.finish(),
        video_seqs: seqs,
        gaps,
        max_lag_ms: max_lag,
        ended,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_viewers_identical_bytes_and_slow_viewers_isolated() {
    let relay = RelayProcess::start(&[
        "--slow-viewer-timeout",
        "3s",
        "--viewer-backlog-bytes",
        "50000",
        "--viewer-send-buffer-bytes",
        "65536",
    ]);
    let (mut publisher, code) = RtmpClient::publish(relay.rtmp, "live", "fan")
        .await
        .expect("publish");
    assert_eq!(code, "NetStream.Publish.Start");
    publisher
        .send_media(18, 0, set_data_frame(640.0, 360.0))
        .await
        .expect("metadata");
    publisher
        .send_media(9, 0, video_sequence_header())
        .await
        .expect("seq header");

    // Everyone joins before the first frame, so everyone should see the same messages.
    let addr = relay.rtmp;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut viewers = Vec::new();
    for chunk in (0..VIEWERS).collect::<Vec<_>>().chunks(50) {
        let mut batch = Vec::new();
        for _ in chunk {
            batch.push(tokio::spawn(RtmpClient::play(addr, "live", "fan")));
        }
        for j in batch {
            let (c, code) = j.await.expect("join").expect("play");
            assert!(code.starts_with("NetStream.Play."), "{code}");
            viewers.push(tokio::spawn(read_viewer(c, None, deadline)));
        }
    }
    // One viewer that never reads (tiny receive buffer), one that reads slowly.
    let stalled = RtmpClient::connect_small_buffer(addr, "live", 4096)
        .await
        .expect("connect stalled");
    let (stalled, _) = stalled.start_play("fan").await.expect("play stalled");
    let slow = RtmpClient::connect_small_buffer(addr, "live", 4096)
        .await
        .expect("connect slow");
    let (slow, _) = slow.start_play("fan").await.expect("play slow");
    // Reads about a third of the stream rate, and stops 2 s after the publisher does.
    let slow_deadline =
        tokio::time::Instant::now() + Duration::from_millis(u64::from(FRAMES) * 40 + 2000);
    let slow_task = tokio::spawn(read_viewer(
        slow,
        Some(Duration::from_millis(60)),
        slow_deadline,
    ));

    let stats = common::stats(relay.http).await;
    assert_eq!(stats["relay"]["viewers"], VIEWERS + 2);

    let start = tokio::time::Instant::now();
    for i in 0..FRAMES {
        let ts = i * 40;
        publisher
            .send_media(
                9,
                ts,
                video_payload(i % GOP == 0, &frame_body(i, FRAME_BYTES)),
            )
            .await
            .expect("video");
        publisher
            .send_media(8, ts, audio_payload(&[i as u8; 64]))
            .await
            .expect("audio");
        tokio::time::sleep_until(start + Duration::from_millis(u64::from(ts) + 40)).await;
    }
    let mid = common::stats(relay.http).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", relay.child.id()))
        .expect("relay memory: /proc/PID/status readable");
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/PID/status:\n{status}"));
    drop(publisher);

    let mut reports = Vec::new();
    for v in viewers {
        reports.push(v.await.expect("viewer task"));
    }
    let first = &reports[0];
    let expected: Vec<u32> = (0..FRAMES).collect();
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(
            r.video_seqs, expected,
            "viewer {i} missed or reordered frames"
        );
        assert_eq!(r.digest, first.digest, "viewer {i} got different bytes");
        assert!(r.ended, "viewer {i} got no UnpublishNotify");
    }
    eprintln!(
        "relay RSS with {} viewers: {} MiB",
        VIEWERS + 2,
        rss_kib / 1024
    );
    assert!(
        rss_kib < 96 * 1024,
        "relay memory not bounded: {rss_kib} KiB"
    );
    let worst = reports.iter().map(|r| r.max_lag_ms).max().unwrap_or(0);
    eprintln!("worst lag over {VIEWERS} viewers: {worst} ms");
    assert!(
        worst < 1500,
        "a stalled viewer must not delay the others (worst lag {worst} ms, stall timeout 3 s)"
    );

    // The stalled viewer was disconnected by the relay, with a log line saying why.
    assert!(
        relay.log_contains("slow viewer"),
        "no slow-viewer disconnect:\n{}",
        relay.log_text()
    );
    assert_eq!(
        mid["relay"]["viewers"],
        VIEWERS + 1,
        "stalled viewer still counted after the timeout"
    );
    drop(stalled);

    // The slow reader stayed connected and skipped ahead: it got frames, in order, with gaps
    // (dropped frames), each gap resuming at a keyframe.
    let slow = slow_task.await.expect("slow task");
    let dropped = mid["streams"][0]["dropped_frames"].as_u64().unwrap_or(0);
    eprintln!(
        "slow reader got {} of {FRAMES} frames, gaps {:?}; relay dropped {dropped}",
        slow.video_seqs.len(),
        slow.gaps
    );
    assert!(
        slow.video_seqs.len() >= GOP as usize,
        "the slow reader got {} frames",
        slow.video_seqs.len()
    );
    assert!(
        slow.video_seqs.windows(2).all(|w| w[0] < w[1]),
        "slow reader got frames out of order: {:?}",
        slow.video_seqs
    );
    assert!(
        !slow.gaps.is_empty(),
        "the slow reader skipped nothing: {:?}",
        slow.video_seqs
    );
    for &(before, after, keyframe) in &slow.gaps {
        assert!(
            keyframe && after % GOP == 0,
            "after frame {before} the slow reader resumed at {after}, not at a keyframe"
        );
    }
    assert!(dropped > 0, "the relay counted no dropped frames: {mid}");
}
