//! Publish keys and origin-only ingest, with ffmpeg as the broadcaster against the real
//! `surge-relay`: with `--publish-keys-file` a publish without a key or with a wrong one is
//! refused with `NetStream.Publish.BadName` (ffmpeg prints the reason), logged without the
//! key and counted in `surge_relay_publish_refused_total{reason}`; the right key
//! (`rtmp://HOST/APP/NAME?key=SECRET`) is accepted and the stream is NAME. Rewriting the file
//! with old and new keys accepts both while the live broadcaster keeps publishing; the new key
//! alone then refuses the old one, still without cutting the live broadcaster. An edge refuses
//! every publish.

mod common;
mod tree_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::relay_process::RelayProcess;
use tree_common::{Proc, ffmpeg_publish, ffprobe_video};

const OLD_KEY: &str = "old-Kx81q";
const NEW_KEY: &str = "new-Pw33z";
const WRONG_KEY: &str = "wrong-Zq7v";

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("surge-publish-keys-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Replaces the file at once (through a rename, as a Secret volume or an editor does).
fn write_keys(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write keys");
    std::fs::rename(&tmp, path).expect("rename keys");
}

/// Runs an ffmpeg publisher to `url` that the relay is expected to refuse: it must exit with
/// an error within 20 s; returns what it printed.
fn ffmpeg_refused(url: &str) -> String {
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"])
        .args(["-t", "10", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-pix_fmt", "yuv420p", "-f", "flv", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg");
    let deadline = Instant::now() + Duration::from_secs(20);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("ffmpeg output");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "ffmpeg publishing to {url} was not refused:\n{stderr}"
    );
    stderr
}

async fn refused(relay: &RelayProcess, reason: &str) -> f64 {
    common::metric(
        relay.http,
        "surge_relay_publish_refused_total",
        &[("reason", reason)],
    )
    .await
    .unwrap_or(0.0)
}

async fn live_streams(relay: &RelayProcess) -> Vec<String> {
    common::stats(relay.http).await["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["source"] == "publisher")
        .filter_map(|s| s["name"].as_str().map(str::to_string))
        .collect()
}

async fn wait_live(relay: &RelayProcess, stream: &str) {
    let live = common::wait_until(Duration::from_secs(20), || async {
        live_streams(relay).await.iter().any(|s| s == stream)
    })
    .await;
    assert!(live, "{stream} never went live:\n{}", relay.log_text());
}

/// The broadcaster of `stream` is still running and its video still reaches a viewer.
async fn still_live(relay: &RelayProcess, broadcaster: &mut Proc, stream: &str) {
    assert!(
        matches!(broadcaster.0.try_wait(), Ok(None)),
        "the live broadcaster of {stream} stopped"
    );
    let url = relay.rtmp_url("live", stream);
    let probe =
        tokio::task::spawn_blocking(move || ffprobe_video(&url, 10, Duration::from_secs(20)))
            .await
            .expect("ffprobe task")
            .unwrap_or_else(|e| panic!("{e}\n{}", relay.log_text()));
    assert!(probe.video_packets >= 10, "{probe:?}");
}

fn refusal_lines(relay: &RelayProcess, reason: &str) -> Vec<String> {
    let reason = format!("reason=\"{reason}\"");
    let plain = reason.replace('"', "");
    relay
        .log
        .lock()
        .expect("log lock")
        .iter()
        .filter(|l| l.contains("publish refused") && (l.contains(&reason) || l.contains(&plain)))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_checked_and_rotated_without_cutting_the_live_broadcaster() {
    let _rt = common::real_time_lock().await;
    let dir = temp_dir("rotation");
    let keys = dir.join("keys");
    write_keys(&keys, &format!("# the broadcaster's key\n{OLD_KEY}\n"));
    let keys_arg = keys.to_str().expect("utf-8 path").to_string();
    let relay = RelayProcess::start(&["--publish-keys-file", &keys_arg]);

    // No key.
    let said = ffmpeg_refused(&relay.rtmp_url("live", "cam"));
    assert!(said.contains("a stream key is required"), "{said}");
    assert_eq!(refused(&relay, "missing_key").await, 1.0);
    // A wrong key.
    let said = ffmpeg_refused(&relay.rtmp_url("live", &format!("cam?key={WRONG_KEY}")));
    assert!(said.contains("wrong stream key"), "{said}");
    assert_eq!(refused(&relay, "wrong_key").await, 1.0);
    assert!(live_streams(&relay).await.is_empty());

    // The right key: the stream is the name without the query.
    let mut live = ffmpeg_publish(&relay.rtmp_url("live", &format!("cam?key={OLD_KEY}")));
    wait_live(&relay, "cam").await;

    // Rotation, step 1: old and new keys both accepted; the live broadcaster goes on.
    write_keys(&keys, &format!("{OLD_KEY}\n{NEW_KEY}\n"));
    let _second = ffmpeg_publish(&relay.rtmp_url("live", &format!("cam2?key={NEW_KEY}")));
    wait_live(&relay, "cam2").await;
    let _third = ffmpeg_publish(&relay.rtmp_url("live", &format!("cam3?key={OLD_KEY}")));
    wait_live(&relay, "cam3").await;
    still_live(&relay, &mut live, "cam").await;

    // Step 2: the new key only. The old key is refused for a new publish, while the
    // broadcaster that joined with it stays live.
    write_keys(&keys, &format!("{NEW_KEY}\n"));
    let said = ffmpeg_refused(&relay.rtmp_url("live", &format!("cam4?key={OLD_KEY}")));
    assert!(said.contains("wrong stream key"), "{said}");
    assert_eq!(refused(&relay, "wrong_key").await, 2.0);
    still_live(&relay, &mut live, "cam").await;
    let mut streams = live_streams(&relay).await;
    streams.sort();
    assert_eq!(streams, ["cam", "cam2", "cam3"]);

    // One warning per refusal, with the reason and without any key.
    assert_eq!(
        refusal_lines(&relay, "missing_key").len(),
        1,
        "{}",
        relay.log_text()
    );
    let wrong = refusal_lines(&relay, "wrong_key");
    assert_eq!(wrong.len(), 2, "{}", relay.log_text());
    assert!(wrong.iter().all(|l| l.contains("WARN")), "{wrong:?}");
    let log = relay.log_text();
    for key in [OLD_KEY, NEW_KEY, WRONG_KEY] {
        assert!(!log.contains(key), "the log shows a key:\n{log}");
    }
    assert!(log.contains("publish keys file changed"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_refuses_a_publish_and_says_to_publish_at_the_origin() {
    let origin = RelayProcess::start(&[]);
    let edge = RelayProcess::edge_pulling_from(&origin, &[]);
    let said = ffmpeg_refused(&edge.rtmp_url("live", "cam"));
    assert!(said.contains("publish only at the origin"), "{said}");
    assert_eq!(refused(&edge, "not_origin").await, 1.0);
    assert_eq!(
        refusal_lines(&edge, "not_origin").len(),
        1,
        "{}",
        edge.log_text()
    );
    assert!(live_streams(&edge).await.is_empty());
    // The origin (the default tier, no keys file) still takes the same publish.
    let _live = ffmpeg_publish(&origin.rtmp_url("live", "cam"));
    wait_live(&origin, "cam").await;
}
