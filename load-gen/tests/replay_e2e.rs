//! End-to-end: `surge-load publish` into a real nginx-rtmp (Debian's libnginx-mod-rtmp,
//! installed by scripts/install-deps), then `surge-load replay` of a tiny trace against
//! it; plus the clear errors for malformed traces and unreachable targets.
//! (scripts/e2e/30-load-replay.sh runs the same replay against surge-relay.)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{Guard, free_port, replay, wait_for_port};

const BIN: &str = env!("CARGO_BIN_EXE_surge-load");
const NGINX_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("surge-load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).expect("temp dir");
    dir
}

/// nginx with the RTMP module, one worker, on a free loopback port.
fn start_nginx(dir: &Path) -> (Guard, u16) {
    start_nginx_on(dir, free_port())
}

fn start_nginx_on(dir: &Path, port: u16) -> (Guard, u16) {
    assert!(
        Path::new(NGINX_MODULE).exists() && Path::new("/usr/sbin/nginx").exists(),
        "nginx + libnginx-mod-rtmp are needed (scripts/install-deps installs them)"
    );
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

fn publish(port: u16, extra: &[&str]) -> Guard {
    let child = Command::new(BIN)
        .args([
            "publish",
            "--url",
            &format!("rtmp://127.0.0.1:{port}/live/e2e"),
            "--duration",
            "50s",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start publisher");
    Guard(child)
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn replay_follows_the_trace_against_nginx_rtmp() {
    let dir = temp_dir("replay");
    let (_nginx, port) = start_nginx(&dir);
    let _publisher = publish(port, &[]);
    let report_path = dir.join("report.json");
    let html_path = dir.join("report.html");
    let started = Instant::now();
    let out = replay(&[
        "--trace",
        &data("tiny.csv"),
        "--target",
        &format!("*=127.0.0.1:{port}"),
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
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report"))
            .expect("JSON");

    // The trace peaks at 30 viewers (20 eu + 10 us); every arrival is a session.
    assert_eq!(report["errors"], 0, "{report:#}");
    let peak = report["viewers_peak"].as_u64().expect("peak");
    assert!((27..=30).contains(&peak), "peak {peak}");
    assert_eq!(
        report["viewer_sessions"], 39,
        "10+12+4 eu and 5+6+2 us arrivals"
    );

    // Viewer counts follow the trace: connections (playing + connecting) within
    // max(2, 10%) of the scaled trace in at least 90% of the one-second samples.
    let timeline = report["timeline"].as_array().expect("timeline");
    assert!(timeline.len() >= 9, "{} samples", timeline.len());
    let close = timeline
        .iter()
        .filter(|p| {
            let target = p["target"].as_f64().unwrap_or(0.0);
            let have =
                p["viewers"].as_f64().unwrap_or(0.0) + p["connecting"].as_f64().unwrap_or(0.0);
            (have - target).abs() <= (target * 0.1).max(2.0)
        })
        .count();
    assert!(
        close * 10 >= timeline.len() * 9,
        "{close}/{} samples within tolerance",
        timeline.len()
    );
    // At the plateau (trace 10-15 s) everyone is playing at some point.
    assert!(
        timeline
            .iter()
            .any(|p| p["viewers"] == 30 && p["target"] == 30),
        "never reached 30 playing viewers"
    );

    // Lag is measured on real frames and finite; startup is measured.
    let lag = &report["lag_ms"];
    let (p50, p99, max) = (
        lag["p50"].as_f64(),
        lag["p99"].as_f64(),
        lag["max"].as_f64(),
    );
    let (p50, p99, max) = (p50.expect("p50"), p99.expect("p99"), max.expect("max"));
    assert!(
        p50 > 0.0 && p50 <= p99 && p99 <= max && max < 2000.0,
        "{lag}"
    );
    assert!(report["details"]["frames"].as_u64().unwrap_or(0) > 1000);
    assert_eq!(report["details"]["frames_without_timing_sei"], 0);
    assert!(report["startup_ms"]["p50"].as_f64().is_some());
    let html = std::fs::read_to_string(&html_path).expect("html");
    assert!(html.contains("<svg") && html.contains("Stall ratio vs player pre-buffer"));
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
        &data("tiny.csv"),
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
        &data("tiny.csv"),
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
    let _publisher = publish(port, &["--input", flv.to_str().expect("utf-8 path")]);
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
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report"))
            .expect("JSON");
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
    let dir = temp_dir("reconnect");
    let port = free_port();
    // The publisher starts first, against a port where nothing listens yet.
    let _publisher = publish(port, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let (_nginx, port) = start_nginx_on(&dir, port);
    let report = three_viewer_replay(&dir, port);
    assert_eq!(report["errors"], 0);
    assert!(report["details"]["frames"].as_u64().unwrap_or(0) >= 3 * 30);
}
