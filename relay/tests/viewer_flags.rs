//! Flags that change what viewers get (README, "Flags"): `--gop-cache-max-bytes` bounds the
//! frames a stream holds (a new viewer gets no more than fits), and `--viewer-tcp-nodelay false`
//! still delivers every frame, in order and promptly; junk for it is refused.

mod common;

use std::process::Command;
use std::time::Duration;

use common::flv_reader::FlvReader;
use common::numbered_frames::{frame_body, now_ms, parse_video};
use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload};

/// Video payload bytes per frame in the GOP cache test; the relay holds each frame twice (RTMP
/// chunks and FLV tag), a little over 20 kB per frame.
const FRAME_BYTES: usize = 10_000;
/// Room for 7 such frames: 6 fit, 10 do not.
const CACHE_LIMIT: &str = "150000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gop_cache_max_bytes_bounds_what_a_new_viewer_gets() {
    let relay = RelayProcess::start(&["--gop-cache-max-bytes", CACHE_LIMIT]);
    let mut publisher = RtmpClient::publish_with_headers(relay.rtmp, "live", "c")
        .await
        .expect("publish");
    let gop_cache_ms =
        || async { common::stats(relay.http).await["streams"][0]["gop_cache_ms"].clone() };

    // A keyframe and 5 frames (about 120 kB held): within the limit, a new viewer gets them all.
    for i in 0..6u32 {
        publisher
            .send_media(9, i * 40, video_payload(i == 0, &[i as u8; FRAME_BYTES]))
            .await
            .expect("video");
    }
    let held = common::wait_until(Duration::from_secs(5), || async {
        gop_cache_ms().await == 200
    })
    .await;
    assert!(held, "GOP of 6 frames not held: {}", gop_cache_ms().await);
    let mut first = FlvReader::open(relay.http, "/live/c.flv").await;
    // Metadata, two sequence headers, then the 6 frames.
    assert!(
        first.read_until_tags(9, Duration::from_secs(5)).await,
        "the viewer got {:?}",
        first.tags().1
    );
    let video: Vec<u32> = first
        .tag_list()
        .iter()
        .filter(|t| t.type_id == 9 && t.data.get(1) == Some(&1))
        .map(|t| t.timestamp)
        .collect();
    assert_eq!(video, [0, 40, 80, 120, 160, 200]);

    // 4 more frames (about 200 kB in all): the oldest frames, keyframe included, are let go,
    // so a new viewer has no GOP to start from and waits for the next keyframe.
    for i in 6..10u32 {
        publisher
            .send_media(9, i * 40, video_payload(false, &[i as u8; FRAME_BYTES]))
            .await
            .expect("video");
    }
    let evicted = common::wait_until(Duration::from_secs(5), || async {
        gop_cache_ms().await == 0
    })
    .await;
    assert!(
        evicted,
        "{CACHE_LIMIT} bytes hold a GOP of 10 frames of {FRAME_BYTES} bytes: gop_cache_ms {}",
        gop_cache_ms().await
    );
    let mut second = FlvReader::open(relay.http, "/live/c.flv").await;
    assert!(
        second.read_until_tags(3, Duration::from_secs(5)).await,
        "headers for a new viewer: {:?}",
        second.tags().1
    );
    publisher
        .send_media(9, 400, video_payload(true, &[10; 100]))
        .await
        .expect("keyframe");
    assert!(
        second.read_until_tags(4, Duration::from_secs(5)).await,
        "the new keyframe reaches the new viewer"
    );
    let media: Vec<(u8, u32)> = second
        .tag_list()
        .iter()
        .filter(|t| t.type_id != 18 && t.data.get(1) != Some(&0))
        .map(|t| (t.type_id, t.timestamp))
        .collect();
    assert_eq!(
        media[0],
        (9, 400),
        "the new viewer's first frame is the new keyframe, not an evicted one: {media:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_tcp_nodelay_false_delivers_every_frame() {
    for junk in [
        &["--viewer-tcp-nodelay", "maybe"][..],
        &["--viewer-tcp-nodelay"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_surge-relay"))
            .args(junk)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{junk:?} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--viewer-tcp-nodelay"),
            "{junk:?}: {stderr}"
        );
    }

    let relay = RelayProcess::start(&["--viewer-tcp-nodelay", "false"]);
    let mut publisher = RtmpClient::publish_with_headers(relay.rtmp, "live", "n")
        .await
        .expect("publish");
    let (mut viewer, code) = RtmpClient::play(relay.rtmp, "live", "n")
        .await
        .expect("play");
    assert!(code.starts_with("NetStream.Play."), "{code}");
    // 2 s of 25 fps, keyframe every 25 frames.
    const FRAMES: u32 = 50;
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        let mut max_lag = 0;
        while seqs.len() < FRAMES as usize {
            let m = viewer
                .next_message(Duration::from_secs(5))
                .await
                .map_err(|e| format!("after {} frames: {e}", seqs.len()))?;
            if let Some((seq, sent)) = parse_video(&m.payload).filter(|_| m.type_id == 9) {
                seqs.push(seq);
                max_lag = max_lag.max(now_ms().saturating_sub(sent));
            }
        }
        Ok::<_, String>((seqs, max_lag))
    });
    let start = tokio::time::Instant::now();
    for i in 0..FRAMES {
        publisher
            .send_media(9, i * 40, video_payload(i % 25 == 0, &frame_body(i, 2000)))
            .await
            .expect("video");
        tokio::time::sleep_until(start + Duration::from_millis(u64::from(i + 1) * 40)).await;
    }
    let (seqs, max_lag) = reader.await.expect("reader").expect("every frame");
    assert_eq!(seqs, (0..FRAMES).collect::<Vec<_>>());
    eprintln!("--viewer-tcp-nodelay false: worst lag {max_lag} ms");
    // Nagle holds a frame for at most a round trip (plus a delayed ACK); 500 ms is room for a
    // loaded machine, not a figure of the product.
    assert!(max_lag < 500, "worst lag {max_lag} ms");
}
