//! Killing (or freezing) the reflector mid-stream: the edge (upstreams: reflector, then origin)
//! fails over to the origin while its RTMP viewer stays connected and keeps receiving frames.
//! The gap the viewer sees is measured and bounded, and its timestamps stay monotonic; a
//! freeze is found as fast on a connection whose handshake was slow.

mod common;
mod tree_common;

use std::time::{Duration, Instant};

use common::relay_process::RelayProcess;
use common::rtmp_client::RtmpClient;
use tree_common::publish_live;

/// One message as the viewer saw it.
struct Seen {
    at: Instant,
    type_id: u8,
    timestamp: u32,
    keyframe: bool,
    /// AVC/AAC sequence header (re-sent after a failover, stamped at the current position).
    config: bool,
}

/// Reads until `until`, or (with `stop_at_keyframe`) until the first keyframe after it.
async fn read_for(
    viewer: &mut RtmpClient,
    until: Instant,
    stop_at_keyframe: bool,
    seen: &mut Vec<Seen>,
) -> Result<(), String> {
    loop {
        let m = viewer.next_message(Duration::from_secs(10)).await?;
        if m.type_id == 8 || m.type_id == 9 {
            let s = Seen {
                at: Instant::now(),
                type_id: m.type_id,
                timestamp: m.timestamp,
                keyframe: m.type_id == 9 && m.payload.first().is_some_and(|b| b >> 4 == 1),
                config: m.payload.get(1) == Some(&0),
            };
            let keyframe = s.keyframe && !s.config;
            seen.push(s);
            if Instant::now() >= until && (!stop_at_keyframe || keyframe) {
                return Ok(());
            }
        }
    }
}

/// How the reflector is taken out.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// SIGKILL: its sockets are reset at once.
    Killed,
    /// SIGSTOP: its sockets stay open and silent (a hung host or a partition); the edge notices
    /// when a ping after a short silence goes unanswered.
    Frozen,
    /// As `Frozen`, on a connection whose handshake took 2 s (the reflector was stopped while
    /// the edge connected: a link that stalled during the set-up). The hang timeout allows
    /// twice the round trip; the pings' round trips replace the handshake's within seconds,
    /// so the hang is found as fast as on any connection (4.9 s with the handshake's alone).
    FrozenAfterSlowHandshake,
}

fn signal(process: &RelayProcess, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &process.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {sig}");
}

/// An origin with a live publisher (stream `s`), a reflector pulling from it, and an edge
/// pulling from the reflector, then the origin.
struct Tree {
    origin: RelayProcess,
    reflector: RelayProcess,
    edge: RelayProcess,
    origin_url: String,
    reflector_url: String,
    publisher: tree_common::Proc,
}

async fn start_tree() -> Tree {
    let origin = RelayProcess::start(&["--tier", "origin", "--region", "eu"]);
    let origin_url = format!("rtmp://{}/live", origin.rtmp);
    let reflector = RelayProcess::start(&[
        "--tier",
        "reflector",
        "--region",
        "eu",
        "--upstream",
        &origin_url,
    ]);
    let reflector_url = format!("rtmp://{}/live", reflector.rtmp);
    let edge = RelayProcess::start(&[
        "--tier",
        "edge",
        "--region",
        "eu-west",
        "--upstream",
        &reflector_url,
        "--upstream",
        &origin_url,
    ]);
    let publisher = publish_live(&origin, "s").await;
    Tree {
        origin,
        reflector,
        edge,
        origin_url,
        reflector_url,
        publisher,
    }
}

async fn failover(outage: Outage, max_gap: Duration) {
    // The gap is wall-clock time: the two outages are not measured side by side.
    let _serial = common::real_time_lock().await;
    let Tree {
        origin: _origin,
        mut reflector,
        edge,
        origin_url,
        reflector_url,
        publisher: _publisher,
    } = start_tree().await;

    let slow_handshake = matches!(outage, Outage::FrozenAfterSlowHandshake);
    if slow_handshake {
        signal(&reflector, "-STOP");
    }
    let (mut viewer, code) = RtmpClient::play(edge.rtmp, "live", "s")
        .await
        .expect("play on the edge");
    assert!(
        matches!(
            code.as_str(),
            "NetStream.Play.Reset" | "NetStream.Play.Start"
        ),
        "play refused: {code}"
    );
    if slow_handshake {
        // The edge's connection to the reflector waits in its listen backlog meanwhile.
        tokio::time::sleep(Duration::from_secs(2)).await;
        signal(&reflector, "-CONT");
    }
    let mut seen = Vec::new();
    // The outage comes right after a keyframe: without the origin's GOP cache the viewer
    // would wait a whole GOP for the next one. After a slow handshake, long enough for three
    // round-trip pings (one a second).
    let settle = Duration::from_secs(if slow_handshake { 5 } else { 3 });
    read_for(&mut viewer, Instant::now() + settle, true, &mut seen)
        .await
        .expect("frames through the reflector");
    let edge_stats = common::stats(edge.http).await;
    assert_eq!(
        edge_stats["streams"][0]["upstream"]["url"],
        reflector_url.as_str()
    );

    match outage {
        Outage::Killed => reflector.child.kill().expect("kill reflector"),
        Outage::Frozen | Outage::FrozenAfterSlowHandshake => signal(&reflector, "-STOP"),
    }
    let lost = Instant::now();
    read_for(
        &mut viewer,
        lost + max_gap + Duration::from_secs(3),
        false,
        &mut seen,
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "viewer lost after the reflector went away: {e}\n{}",
            edge.log_text()
        )
    });

    let before: Vec<&Seen> = seen.iter().filter(|s| s.at < lost).collect();
    let after: Vec<&Seen> = seen.iter().filter(|s| s.at >= lost).collect();
    let video_after = after.iter().filter(|s| s.type_id == 9).count();
    assert!(before.iter().any(|s| s.keyframe), "video before the outage");
    assert!(
        video_after >= 50,
        "{video_after} video frames after the outage"
    );

    // The gap the viewer saw: longest silence between consecutive video frames after the outage.
    let video: Vec<&Seen> = seen.iter().filter(|s| s.type_id == 9).collect();
    let gap = video
        .windows(2)
        .filter(|w| w[1].at >= lost)
        .map(|w| w[1].at - w[0].at)
        .max()
        .expect("frames around the outage");
    eprintln!(
        "tree-metric reflector_{outage:?}_failover_gap_ms={}",
        gap.as_millis()
    );
    assert!(
        gap < max_gap,
        "{outage:?} failover gap {gap:?}, target {max_gap:?}\n{}",
        edge.log_text()
    );

    // Same publisher timeline on both upstreams: the frames the origin replays from its GOP
    // cache that the viewer already had are dropped, not shown twice (25 fps source).
    let span = after.last().expect("frames after").at - lost;
    let limit = span.as_secs_f64() * 25.0 + 8.0;
    assert!(
        (video_after as f64) <= limit,
        "{video_after} video frames in {span:?}: replayed frames reached the viewer"
    );
    let video_ts: Vec<u32> = video
        .iter()
        .filter(|s| !s.config)
        .map(|s| s.timestamp)
        .collect();
    assert!(
        video_ts.windows(2).all(|w| w[0] < w[1]),
        "a video timestamp repeated: {video_ts:?}"
    );
    match outage {
        // The origin's GOP cache holds the frames lost with the reflector's connection: the
        // viewer misses none (25 fps: 40 ms apart), so its picture never breaks.
        Outage::Killed => {
            let jump = video_ts.windows(2).map(|w| w[1] - w[0]).max();
            assert!(
                jump.is_some_and(|j| j <= FRAME_MS * 3 / 2),
                "video frames missing across the failover (largest step {jump:?} ms): {video_ts:?}"
            );
        }
        // The frames of the frozen time come from the origin's GOP cache when it still holds
        // them (the hang is detected within a GOP): the viewer goes on with the next frame.
        // When a keyframe came in between, the cache starts there: the viewer resumes at a
        // keyframe. Either way the picture decodes.
        Outage::Frozen | Outage::FrozenAfterSlowHandshake => {
            let after_gap = video
                .windows(2)
                .position(|w| w[1].at - w[0].at == gap)
                .map_or(video.len(), |i| i + 1);
            let last_before = video[..after_gap].iter().rev().find(|s| !s.config);
            let resumed = video[after_gap..].iter().find(|s| !s.config);
            let continuous = match (last_before, resumed) {
                (Some(b), Some(r)) => r.timestamp.wrapping_sub(b.timestamp) <= FRAME_MS * 3 / 2,
                _ => false,
            };
            assert!(
                continuous || resumed.is_some_and(|s| s.keyframe),
                "the viewer resumed on a non-keyframe with frames missing after the gap: {video_ts:?}"
            );
        }
    }

    for type_id in [8u8, 9] {
        let ts: Vec<u32> = seen
            .iter()
            .filter(|s| s.type_id == type_id)
            .map(|s| s.timestamp)
            .collect();
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "type {type_id} timestamps went backwards: {ts:?}"
        );
    }

    let edge_stats = common::stats(edge.http).await;
    let upstream = &edge_stats["streams"][0]["upstream"];
    assert_eq!(upstream["state"], "connected");
    assert_eq!(upstream["url"], origin_url.as_str());
    assert_eq!(
        edge_stats["relay"]["viewers"], 1,
        "the viewer is still there"
    );
}

/// The test publisher's GOP: `ffmpeg_publish` sends a keyframe every 25 frames at 25 fps.
const GOP: Duration = Duration::from_secs(1);
/// Timestamp step between its video frames.
const FRAME_MS: u32 = 40;

/// Target for a killed reflector: the README measures ~50 ms (reconnect at once, the origin's
/// GOP cache fills the gap). Promised here: well under one GOP, with room for a loaded 2-core
/// machine. Losing the GOP-cache hand-over (the viewer waits for the next keyframe, up to one
/// GOP) or backing off before the first retry (250 ms doubling) goes past it.
const KILLED_GAP_TARGET: Duration = Duration::from_millis(500);

/// A hung upstream is declared dead this long after its last frame: 400 ms of silence, then a
/// ping unanswered for 500 ms (plus twice the round trip, ~0 on loopback)
/// (`PullerOptions::hang_probe_after`, `hang_probe_answer`).
const UPSTREAM_HANG_DETECTION: Duration = Duration::from_millis(900);

/// Target for a frozen reflector: the hang detection, then the same prompt failover as above
/// (the chaos target: a hung upstream detected and failed over in about a second, not the 5 s
/// idle timeout of before).
const FROZEN_GAP_TARGET: Duration = UPSTREAM_HANG_DETECTION.saturating_add(KILLED_GAP_TARGET);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_fails_over_to_origin_when_reflector_dies() {
    const { assert!(KILLED_GAP_TARGET.as_millis() * 2 <= GOP.as_millis()) };
    failover(Outage::Killed, KILLED_GAP_TARGET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_fails_over_to_origin_when_reflector_freezes() {
    failover(Outage::Frozen, FROZEN_GAP_TARGET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_after_a_slow_handshake_is_found_as_fast() {
    failover(Outage::FrozenAfterSlowHandshake, FROZEN_GAP_TARGET).await;
}

/// A publisher that pauses (its frames stop, its relays do not) is not a hung upstream: the
/// reflector answers the edge's pings, so the edge stays on it; frames resume through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_publisher_is_not_a_hung_upstream() {
    let _serial = common::real_time_lock().await;
    let Tree {
        origin: _origin,
        reflector: _reflector,
        edge,
        reflector_url,
        publisher,
        ..
    } = start_tree().await;
    let (mut viewer, _) = RtmpClient::play(edge.rtmp, "live", "s")
        .await
        .expect("play on the edge");
    let mut seen = Vec::new();
    read_for(
        &mut viewer,
        Instant::now() + Duration::from_secs(2),
        false,
        &mut seen,
    )
    .await
    .expect("frames through the reflector");

    // Three times the hang detection without a frame.
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &publisher.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("-STOP");
    tokio::time::sleep(3 * UPSTREAM_HANG_DETECTION).await;
    signal("-CONT");
    let resumed = Instant::now();
    read_for(
        &mut viewer,
        resumed + Duration::from_secs(2),
        false,
        &mut seen,
    )
    .await
    .expect("frames again after the pause");
    assert!(
        seen.iter().any(|s| s.at >= resumed && s.type_id == 9),
        "video after the publisher resumed"
    );
    let edge_stats = common::stats(edge.http).await;
    let upstream = &edge_stats["streams"][0]["upstream"];
    assert_eq!(
        upstream["url"],
        reflector_url.as_str(),
        "{}",
        edge.log_text()
    );
    assert!(
        !edge.log_text().contains("upstream lost"),
        "the edge dropped a live upstream:\n{}",
        edge.log_text()
    );
}
