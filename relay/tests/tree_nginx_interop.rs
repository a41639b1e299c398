//! Interop with nginx-rtmp, both ways, plus the puller library against real nginx servers:
//! - the puller fails over from an nginx edge to the nginx origin, keeps timestamps monotonic,
//!   re-delivers sequence headers, moves back to the edge once it is up again, reports end of
//!   stream when the publisher stops, and stops promptly on cancel;
//! - a surge edge pulls from an nginx origin; an nginx edge pulls from a surge origin; ffprobe
//!   reads both edges.

mod common;
mod tree_common;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::relay_process::RelayProcess;
use surge_relay::media::{MediaKind, MediaMessage};
use surge_relay::upstream::{
    MediaSink, PullerConfig, PullerOptions, UpstreamState, spawn_puller_with,
};
use tokio_util::sync::CancellationToken;
use tree_common::{Nginx, ffmpeg_publish, ffprobe_video};

/// Target for failing over to an nginx origin: nginx keeps no GOP cache, so the puller waits
/// for the next keyframe (at most one GOP of `ffmpeg_publish`, 1 s; README: ~1 s), plus the
/// prompt reconnect with room for a loaded machine. A backoff of seconds goes past it.
const NGINX_FAILOVER_GAP_TARGET: Duration = Duration::from_millis(1500);

#[derive(Default)]
struct Recorder {
    media: Mutex<Vec<(Instant, MediaMessage)>>,
    states: Mutex<Vec<UpstreamState>>,
    ends: AtomicUsize,
}

impl MediaSink for Recorder {
    fn on_media(&self, msg: MediaMessage) {
        self.media.lock().unwrap().push((Instant::now(), msg));
    }
    fn on_upstream_state(&self, state: UpstreamState) {
        self.states.lock().unwrap().push(state);
    }
    fn on_end_of_stream(&self) {
        self.ends.fetch_add(1, Ordering::SeqCst);
    }
}

impl Recorder {
    fn frames_since(&self, t: Instant) -> usize {
        self.media
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, m)| *at >= t && m.kind == MediaKind::Video && !m.is_sequence_header())
            .count()
    }
    fn connected_to(&self, url: &str) -> bool {
        matches!(self.states.lock().unwrap().last(), Some(UpstreamState::Connected { url: u }) if u == url)
    }
}

async fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puller_fails_over_follows_publisher_restart_and_returns_to_preferred_on_nginx() {
    // The failover gap is wall-clock time: one test of this binary at a time.
    let _serial = common::real_time_lock().await;
    let origin = Nginx::start("");
    let mut edge = Nginx::start(&format!("pull {};", origin.app_url()));
    let mut publisher = ffmpeg_publish(&origin.stream_url("s"));

    let rec = Arc::new(Recorder::default());
    let cancel = CancellationToken::new();
    let cfg = PullerConfig {
        upstreams: vec![edge.app_url(), origin.app_url()],
        app: "live".into(),
        stream: "s".into(),
    };
    let opts = PullerOptions {
        return_to_preferred_after: Some(Duration::from_secs(1)),
        preferred_probe_interval: Duration::from_secs(1),
        ..PullerOptions::default()
    };
    let handle = spawn_puller_with(cfg, opts, rec.clone(), cancel.clone());

    let start = Instant::now();
    assert!(
        wait_for(Duration::from_secs(20), || rec.frames_since(start) >= 50).await,
        "no frames through the nginx edge; states {:?}",
        rec.states.lock().unwrap()
    );
    assert!(
        rec.connected_to(&edge.app_url()),
        "first choice is the edge"
    );

    // The preferred upstream dies mid-stream.
    edge.proc.kill();
    let killed = Instant::now();
    assert!(
        wait_for(Duration::from_secs(15), || rec.frames_since(killed) >= 50).await,
        "no frames after failover; states {:?}",
        rec.states.lock().unwrap()
    );
    assert!(
        rec.connected_to(&origin.app_url()),
        "failed over to the origin"
    );
    {
        let states = rec.states.lock().unwrap();
        assert!(
            states
                .iter()
                .any(|s| matches!(s, UpstreamState::Reconnecting { .. })),
            "loss reported: {states:?}"
        );
    }

    {
        let media = rec.media.lock().unwrap();
        // Gap seen downstream: last frame before the kill to first frame after it.
        let before = media
            .iter()
            .filter(|(at, m)| *at < killed && m.kind == MediaKind::Video)
            .map(|(at, _)| *at)
            .next_back()
            .expect("frames before the kill");
        let after = media
            .iter()
            .find(|(at, m)| *at >= killed && m.kind == MediaKind::Video && !m.is_sequence_header())
            .map(|(at, _)| *at)
            .expect("frames after the kill");
        let gap = after - before;
        eprintln!("tree-metric nginx_failover_gap_ms={}", gap.as_millis());
        assert!(
            gap < NGINX_FAILOVER_GAP_TARGET,
            "failover gap {gap:?}, target {NGINX_FAILOVER_GAP_TARGET:?}"
        );

        for kind in [MediaKind::Video, MediaKind::Audio] {
            let ts: Vec<u32> = media
                .iter()
                .filter(|(_, m)| m.kind == kind)
                .map(|(_, m)| m.timestamp)
                .collect();
            assert!(
                ts.windows(2).all(|w| w[0] <= w[1]),
                "{kind:?} timestamps went backwards: {ts:?}"
            );
        }
        let video_headers = media
            .iter()
            .filter(|(_, m)| m.kind == MediaKind::Video && m.is_sequence_header())
            .count();
        assert!(video_headers >= 2, "sequence header re-sent after failover");
        let metadata = media
            .iter()
            .find(|(_, m)| m.kind == MediaKind::Data)
            .expect("metadata delivered");
        assert!(metadata.1.payload.starts_with(b"\x02\x00\x0aonMetaData"));
    }

    // The publisher stops: end of stream from the origin, not a failover.
    publisher.kill();
    assert!(
        wait_for(Duration::from_secs(10), || rec.ends.load(Ordering::SeqCst)
            >= 1)
        .await,
        "end of stream reported; states {:?}",
        rec.states.lock().unwrap()
    );

    // A publisher comes back (its clock restarts at 0): frames flow again on the same pull.
    let _publisher2 = ffmpeg_publish(&origin.stream_url("s"));
    let again = Instant::now();
    assert!(
        wait_for(Duration::from_secs(15), || rec.frames_since(again) >= 25).await,
        "no frames from the returning publisher; states {:?}",
        rec.states.lock().unwrap()
    );

    // The edge comes back on its old port: the puller returns to its first choice.
    let edge_port = edge.port;
    drop(edge);
    let _edge_again = Nginx::start_on(&format!("pull {};", origin.app_url()), edge_port);
    let back = Instant::now();
    let edge_url = format!("rtmp://127.0.0.1:{edge_port}/live");
    assert!(
        wait_for(Duration::from_secs(20), || rec.connected_to(&edge_url)
            && rec.frames_since(back) >= 25)
        .await,
        "did not return to the preferred upstream; states {:?}",
        rec.states.lock().unwrap()
    );
    {
        let media = rec.media.lock().unwrap();
        for kind in [MediaKind::Video, MediaKind::Audio] {
            let ts: Vec<u32> = media
                .iter()
                .filter(|(_, m)| m.kind == kind)
                .map(|(_, m)| m.timestamp)
                .collect();
            assert!(
                ts.windows(2).all(|w| w[0] <= w[1]),
                "{kind:?} timestamps across publisher restart and return: {ts:?}"
            );
        }
    }

    // Cancellation is prompt.
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(2), handle)
        .await
        .expect("puller stops within 2 s of cancel")
        .expect("puller task did not panic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_edge_pulls_from_nginx_origin() {
    let _serial = common::real_time_lock().await;
    let origin = Nginx::start("");
    let _publisher = ffmpeg_publish(&origin.stream_url("s"));
    // The stream is live at the origin before the edge is asked for it.
    let direct = origin.stream_url("s");
    tokio::task::spawn_blocking(move || ffprobe_video(&direct, 5, Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("stream live at the nginx origin");
    let edge = RelayProcess::start(&[
        "--tier",
        "edge",
        "--region",
        "interop",
        "--upstream",
        &origin.app_url(),
    ]);
    // The RTMP viewer's request starts the pull (nginx starts mid-GOP: audio before the first
    // keyframe); then an HTTP-FLV viewer on the warm edge.
    for url in [edge.rtmp_url("live", "s"), edge.flv_url("live", "s")] {
        let u = url.clone();
        let p = tokio::task::spawn_blocking(move || ffprobe_video(&u, 50, Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\nedge log:\n{}", edge.log_text()));
        assert_eq!(
            (p.codec.as_str(), p.width, p.height),
            ("h264", 320, 240),
            "{url}"
        );
        assert_eq!(p.video_packets, 50, "{url}");
    }
    let stats = common::stats(edge.http).await;
    assert_eq!(stats["relay"]["tier"], "edge");
    assert_eq!(stats["relay"]["region"], "interop");
    let stream = &stats["streams"][0];
    assert_eq!(stream["source"], "upstream");
    assert_eq!(stream["upstream"]["url"], origin.app_url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_edge_pulls_from_surge_origin() {
    let _serial = common::real_time_lock().await;
    let origin = RelayProcess::start(&["--tier", "origin", "--region", "interop"]);
    let _publisher = ffmpeg_publish(&origin.rtmp_url("live", "s"));
    // nginx's pull gives up on its player when the origin answers StreamNotFound, so the
    // stream must be live at the origin before the first play reaches nginx.
    let origin_http = origin.http;
    let live = common::wait_until(Duration::from_secs(20), || async move {
        let s = common::stats(origin_http).await;
        s["streams"].as_array().is_some_and(|a| {
            a.iter()
                .any(|st| st["name"] == "s" && st["gop_cache_ms"].as_u64().unwrap_or(0) > 0)
        })
    })
    .await;
    assert!(
        live,
        "the publisher never went live:\n{}",
        origin.log_text()
    );
    let edge = Nginx::start(&format!("pull rtmp://{}/live;", origin.rtmp));
    let url = edge.stream_url("s");
    let probe =
        tokio::task::spawn_blocking(move || ffprobe_video(&url, 50, Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}\norigin log:\n{}", origin.log_text()));
    assert_eq!(
        (probe.codec.as_str(), probe.width, probe.height),
        ("h264", 320, 240)
    );
    assert_eq!(probe.video_packets, 50);
}
