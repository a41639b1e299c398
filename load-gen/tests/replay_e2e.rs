//! End-to-end: `surge-load publish` into a real surge-relay, then `surge-load replay` of a
//! tiny trace against it, checked against the trace file and the README's delivery
//! promises; the same replay against nginx-rtmp (Debian's libnginx-mod-rtmp, installed by
//! scripts/install-deps), so the load generator is not only checked against our own relay;
//! plus the clear errors for malformed traces and unreachable targets.
//! (scripts/e2e/30-load-replay.sh runs the replay against surge-relay with half RTMP and
//! half HTTP-FLV viewers.)

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::promises::{StartUp, assert_delivery_promises, assert_follows_trace};
use common::relay::{start_relay, wait_for_publisher, wait_until};
use common::trace::TraceExpectation;
use common::{
    Guard, data, free_port, one_at_a_time, publish, publisher_backoffs, replay, temp_dir,
    wait_for_port,
};

const NGINX_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
/// The publisher's default frame rate (`surge-load publish --fps`).
const PUBLISH_FPS: f64 = 30.0;
/// The publisher's default keyframe interval (`surge-load publish --gop-seconds`).
const PUBLISH_GOP: Duration = Duration::from_secs(2);

/// nginx with the RTMP module, one worker, on a free loopback port.
fn start_nginx(dir: &Path) -> (Guard, u16) {
    start_nginx_on(dir, free_port())
}

fn start_nginx_on(dir: &Path, port: u16) -> (Guard, u16) {
    assert!(
        Path::new(NGINX_MODULE).exists() && Path::new("/usr/sbin/nginx").exists(),
        "nginx + libnginx-mod-rtmp are needed (scripts/install-deps installs them)"
    );
    std::fs::create_dir_all(dir.join("logs")).expect("nginx logs dir");
    // `master_process off`: one process, so killing it (the Guard) leaves no worker behind.
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "load_module {NGINX_MODULE};\nworker_processes 1;\nmaster_process off;\npid {pid};\nevents {{ worker_connections 1024; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; application live {{ live on; }} }} }}\n",
            pid = dir.join("nginx.pid").display()
        ),
    )
    .expect("nginx.conf");
    let child = Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .args(["-g", "daemon off; error_log stderr;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let guard = Guard(child);
    wait_for_port(port);
    (guard, port)
}

/// Replays tiny.csv at twice real time against `target` (`--protocol rtmp`), with the
/// HTML report; returns the JSON report.
fn replay_tiny(dir: &Path, target: &str) -> Value {
    let report_path = dir.join("report.json");
    let html_path = dir.join("report.html");
    let started = Instant::now();
    let out = replay(&[
        "--trace",
        data("tiny.csv").to_str().expect("utf-8 path"),
        "--target",
        target,
        "--stream",
        "live/e2e",
        "--speed",
        "2",
        "--report",
        report_path.to_str().expect("utf-8 path"),
        "--html",
        html_path.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay failed: {stderr}");
    assert!(started.elapsed() < Duration::from_secs(50), "bounded run");
    let html = std::fs::read_to_string(&html_path).expect("html");
    assert!(html.contains("<svg") && html.contains("Stall ratio vs pre-buffer (QoE model)"));
    serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report")).expect("JSON")
}

#[test]
fn replay_follows_the_trace_and_keeps_the_delivery_promises_against_surge_relay() {
    let _serial = one_at_a_time();
    let dir = temp_dir("replay-relay");
    let (rtmp, http) = (free_port(), free_port());
    let _relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp, &[]);
    wait_for_publisher(http, "e2e", Duration::from_secs(10));
    let report = replay_tiny(&dir, &format!("*=127.0.0.1:{rtmp}"));
    let expected = TraceExpectation::read(&data("tiny.csv"), None);
    assert_follows_trace(&report, &expected, StartUp::FromGopCache);
    assert_delivery_promises(&report, &expected, PUBLISH_FPS);
}

#[test]
fn replay_follows_the_trace_against_nginx_rtmp() {
    let _serial = one_at_a_time();
    let dir = temp_dir("replay-nginx");
    let (_nginx, port) = start_nginx(&dir);
    let _publisher = publish(&dir, port, &[]);
    let report = replay_tiny(&dir, &format!("*=127.0.0.1:{port}"));
    // The viewers the trace asks for, playing, every frame in sequence and timestamped.
    // nginx-rtmp has no GOP cache: a viewer plays from the publisher's next keyframe (one
    // GOP, 2 s, later at worst), and the relay's start-up and lag promises are not asked
    // of it.
    let expected = TraceExpectation::read(&data("tiny.csv"), None);
    assert_follows_trace(&report, &expected, StartUp::AtNextKeyframe(PUBLISH_GOP));
    let d = &report["details"];
    assert_eq!(d["frames_missing"], 0, "{report:#}");
    assert_eq!(d["frames_without_timing_sei"], 0, "{report:#}");
    assert!(d["frames"].as_u64().unwrap_or(0) > 1000, "{report:#}");
    assert!(report["lag_ms"]["p99"].as_f64().is_some_and(|l| l > 0.0));
    assert!(report["startup_ms"]["p99"].as_f64().is_some());
}

#[test]
fn malformed_trace_is_rejected_with_its_line_number() {
    let dir = temp_dir("malformed");
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "# livetrace v1; bad\nbroadcast_id,t_s,region,viewers\nb,0,eu,10\nb,ten,eu,20\n",
    )
    .expect("write trace");
    let out = replay(&[
        "--trace",
        bad.to_str().expect("utf-8 path"),
        "--target",
        "*=127.0.0.1:1",
        "--stream",
        "live/x",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("invalid trace"), "{stderr}");
    assert!(
        stderr.contains("line 4") && stderr.contains("t_s must be"),
        "{stderr}"
    );
}

#[test]
fn unreachable_target_fails_fast_with_a_clear_error() {
    let port = free_port(); // nothing listens there
    let started = Instant::now();
    let out = replay(&[
        "--trace",
        data("tiny.csv").to_str().expect("utf-8 path"),
        "--target",
        &format!("*=127.0.0.1:{port}"),
        "--stream",
        "live/x",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(stderr.contains("not usable"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
    // A region without a target is named.
    let out = replay(&[
        "--trace",
        data("tiny.csv").to_str().expect("utf-8 path"),
        "--target",
        "eu=127.0.0.1:1",
        "--target",
        "ap=127.0.0.1:2",
        "--stream",
        "live/x",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no --target for region `us`"), "{stderr}");
}

#[test]
fn looped_ffmpeg_file_is_republished_decodable_with_timing() {
    let _serial = one_at_a_time();
    let dir = temp_dir("input");
    let flv = dir.join("clip.flv");
    let made = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
        ])
        .arg(&flv)
        .status()
        .expect("ffmpeg (scripts/install-deps installs it)");
    assert!(made.success());
    let (_nginx, port) = start_nginx(&dir);
    let _publisher = publish(&dir, port, &["--input", flv.to_str().expect("utf-8 path")]);
    // ffmpeg decodes what we republish, across the loop point (3 s file, 5 s read).
    let decoded = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-i",
            &format!("rtmp://127.0.0.1:{port}/live/e2e"),
            "-t",
            "5",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    // And our viewers find the timing SEI in every frame.
    let report = three_viewer_replay(&dir, port);
    assert_eq!(report["errors"], 0);
    assert!(report["details"]["frames"].as_u64().unwrap_or(0) >= 3 * 25);
    assert_eq!(
        report["details"]["frames_without_timing_sei"], 0,
        "{report:#}"
    );
    assert!(report["lag_ms"]["p99"].as_f64().is_some_and(|l| l < 1000.0));
}

fn three_viewer_replay(dir: &Path, port: u16) -> Value {
    let trace = dir.join("three.csv");
    std::fs::write(
        &trace,
        "# livetrace v1; three viewers\nbroadcast_id,t_s,region,viewers\nb,0,eu,3\nb,4,eu,3\n",
    )
    .expect("trace");
    let report_path = dir.join("r.json");
    let out = replay(&[
        "--trace",
        trace.to_str().expect("utf-8 path"),
        "--target",
        &format!("eu=127.0.0.1:{port}"),
        "--stream",
        "live/e2e",
        "--speed",
        "1",
        "--report",
        report_path.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report")).expect("JSON")
}

#[test]
fn publisher_keeps_retrying_until_the_server_comes_up() {
    let _serial = one_at_a_time();
    let dir = temp_dir("reconnect");
    let port = free_port();
    // The publisher starts first, against a port where nothing listens yet, and is seen
    // to fail and back off twice before the server comes up.
    let _publisher = publish(&dir, port, &[]);
    wait_until(
        "two publish attempts refused",
        Duration::from_secs(10),
        || publisher_backoffs(&dir).len() >= 2,
    );
    let (_nginx, port) = start_nginx_on(&dir, port);
    let report = three_viewer_replay(&dir, port);
    assert_eq!(report["errors"], 0);
    assert!(report["details"]["frames"].as_u64().unwrap_or(0) >= 3 * 30);
}
