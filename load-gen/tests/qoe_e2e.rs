//! End-to-end QoE: a real surge-relay, `surge-load publish` and `surge-load replay` with
//! the player buffer model. On loopback: join time after the first keyframe, playback
//! latency above delivery latency by about the pre-buffer, no stalls. With the publisher
//! stopped (SIGSTOP) for longer than the pre-buffer: every viewer stalls, for about the
//! pause.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::relay::{start_relay, wait_for_publisher};
use common::{one_at_a_time, publish, replay, temp_dir};

/// A steady audience of `viewers` for `seconds` (one region), in the livetrace format.
fn steady_trace(dir: &Path, viewers: u32, seconds: u32) -> String {
    let path = dir.join("steady.csv");
    let mut csv = String::from(
        "# livetrace v1; steady audience\nbroadcast_id,t_s,region,viewers,arrivals,departures\n",
    );
    // Viewers between rows are interpolated: the same count at both ends holds it steady.
    for (t, v, a) in [(0, viewers, viewers), (seconds, viewers, 0)] {
        let d = 0;
        csv.push_str(&format!("s,{t},eu,{v},{a},{d}\ns,{t},*,{v},{a},{d}\n"));
    }
    std::fs::write(&path, csv).expect("trace");
    path.to_str().expect("utf-8 path").to_owned()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn run_replay(dir: &Path, trace: &str, rtmp: u16, extra: &[&str]) -> Value {
    let report = dir.join("report.json");
    let html = dir.join("report.html");
    let mut args = vec![
        "--trace",
        trace,
        "--target",
        "",
        "--stream",
        "live/e2e",
        "--speed",
        "1",
        "--report",
        report.to_str().expect("utf-8 path"),
        "--html",
        html.to_str().expect("utf-8 path"),
    ];
    let target = format!("*=127.0.0.1:{rtmp}");
    args[3] = &target;
    args.extend_from_slice(extra);
    let started = Instant::now();
    let out = replay(&args);
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(40), "bounded run");
    let page = std::fs::read_to_string(&html).expect("html");
    assert!(
        page.contains("QoE (player buffer model")
            && page.contains("Playback latency p50 vs pre-buffer")
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    print_stall_figures(&r);
    r
}

/// The report's stall figures, for `-- --nocapture`: the top-level and `details` keys
/// next to the QoE model's.
fn print_stall_figures(r: &Value) {
    let d = &r["details"];
    let q = &r["qoe"];
    println!(
        "stall figures: stall_ratio {} details.stalls {} | qoe.stall_ratio {} qoe.stalls {} qoe.stalled_s {}",
        r["stall_ratio"], d["stalls"], q["stall_ratio"], q["stalls"], q["stalled_s"]
    );
    for p in d["stall_by_prebuffer"].as_array().into_iter().flatten() {
        println!(
            "  details.stall_by_prebuffer P {} s: stall_ratio {} stalls {}",
            p["prebuffer_s"], p["stall_ratio"], p["stalls"]
        );
    }
    for p in q["by_player_buffer"].as_array().into_iter().flatten() {
        println!(
            "  qoe.by_player_buffer P {} s: stall_ratio {} stalls {}",
            p["player_buffer_s"], p["stall_ratio"], p["stalls"]
        );
    }
}

#[test]
fn qoe_on_loopback_joins_after_the_first_keyframe_plays_behind_delivery_and_never_stalls() {
    let _serial = one_at_a_time();
    let dir = temp_dir("qoe-loopback");
    let (rtmp, http) = (common::free_port(), common::free_port());
    let _relay = start_relay(&dir, rtmp, http);
    let _publisher = publish(&dir, rtmp, &[]);
    wait_for_publisher(http, "e2e", Duration::from_secs(10));
    let trace = steady_trace(&dir, 8, 10);
    let r = run_replay(
        &dir,
        &trace,
        rtmp,
        &["--player-buffer", "1", "--buffer-sweep", "0.5,3"],
    );
    let q = &r["qoe"];
    assert_eq!(num(&q["player_buffer_s"]), 1.0, "{q:#}");
    // The existing fields stay.
    for k in ["startup_ms", "lag_ms", "stall_ratio", "viewers_peak"] {
        assert!(!r[k].is_null(), "{k} missing");
    }
    // Join (first played frame) comes no earlier than the first keyframe.
    let (join50, start50) = (num(&q["join_time_ms"]["p50"]), num(&r["startup_ms"]["p50"]));
    assert!(join50 >= start50, "join {join50} < startup {start50}");
    assert!(num(&q["join_time_ms"]["max"]) < 5000.0, "{q:#}");
    // Playback latency = delivery + time in the buffer (about P, more with a GOP
    // backlog played in order): at least delivery + most of P.
    let (play50, deliver50) = (
        num(&q["playback_latency_ms"]["p50"]),
        num(&q["delivery_latency_ms"]["p50"]),
    );
    assert_eq!(deliver50, num(&r["lag_ms"]["p50"]));
    assert!(
        play50 >= deliver50 + 800.0,
        "playback {play50} vs delivery {deliver50}"
    );
    assert!(
        play50 <= deliver50 + 4000.0,
        "playback {play50} vs delivery {deliver50}"
    );
    assert!(num(&q["buffering_delay_ms"]["p50"]) >= 800.0, "{q:#}");
    assert_eq!(
        (num(&q["stalls"]), num(&q["stall_ratio"])),
        (0.0, 0.0),
        "{q:#}"
    );
    assert_eq!(num(&q["frames_discarded"]), 0.0);
    // 30 fps over loopback: each session's inter-arrival spread is under a frame interval.
    let jitter = num(&q["frame_jitter_ms"]["p50"]);
    assert!(jitter > 0.0 && jitter < 33.0, "jitter {jitter}");
    assert!(num(&q["frame_jitter_ms"]["sessions"]) >= 8.0);
    // The publisher sends about 600 kbit/s (video) plus audio to each viewer.
    let per_viewer = num(&q["goodput_kbps_per_viewer"]);
    assert!(
        (300.0..3000.0).contains(&per_viewer),
        "goodput {per_viewer} kbit/s"
    );
    // The sweep: every size, the main one included, in order; latency grows with P.
    let sweep = q["by_player_buffer"].as_array().expect("sweep");
    let sizes: Vec<f64> = sweep.iter().map(|s| num(&s["player_buffer_s"])).collect();
    assert_eq!(sizes, vec![0.5, 1.0, 3.0]);
    let lat: Vec<f64> = sweep
        .iter()
        .map(|s| num(&s["playback_latency_ms_p50"]))
        .collect();
    assert!(lat[0] < lat[1] && lat[1] < lat[2], "latency per P {lat:?}");
    assert!(lat[2] - lat[0] >= 2000.0, "latency per P {lat:?}");
    assert!(sweep.iter().all(|s| num(&s["stalls"]) == 0.0), "{sweep:#?}");
}

#[test]
fn a_publisher_stopped_longer_than_the_prebuffer_stalls_every_viewer_for_about_the_pause() {
    let _serial = one_at_a_time();
    let dir = temp_dir("qoe-pause");
    let (rtmp, http) = (common::free_port(), common::free_port());
    let _relay = start_relay(&dir, rtmp, http);
    let publisher = publish(&dir, rtmp, &[]);
    wait_for_publisher(http, "e2e", Duration::from_secs(10));
    let trace = steady_trace(&dir, 6, 14);
    let pid = publisher.0.id().to_string();
    let pause = Duration::from_secs(4);
    // Viewers join in the first second; the publisher stops at 6 s for 4 s.
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(6));
        let kill = |sig: &str| {
            let ok = Command::new("kill")
                .args([sig, &pid])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} {pid}");
        };
        kill("-STOP");
        std::thread::sleep(pause);
        kill("-CONT");
    });
    let r = run_replay(
        &dir,
        &trace,
        rtmp,
        &["--player-buffer", "0.5", "--buffer-sweep", "9"],
    );
    stopper.join().expect("stopper");
    let q = &r["qoe"];
    let viewers = num(&r["viewers_peak"]);
    assert_eq!(viewers, 6.0, "{r:#}");
    let stalls = num(&q["stalls"]);
    assert!(
        stalls >= viewers,
        "{stalls} stalls for {viewers} viewers: {q:#}"
    );
    // Each viewer's buffer held P (more with a GOP backlog: up to a 2 s GOP) when frames
    // stopped; it stalled for the rest of the pause and the refill of P.
    let stalled_per_viewer = num(&q["stalled_s"]) / viewers;
    let p = pause.as_secs_f64();
    assert!(
        stalled_per_viewer > p - 2.6 && stalled_per_viewer < p + 1.0,
        "stalled {stalled_per_viewer} s per viewer for a {p} s pause: {q:#}"
    );
    // Stall ratio: that stall over the viewers' ~13 s sessions.
    let ratio = num(&q["stall_ratio"]);
    assert!(
        (ratio - stalled_per_viewer / 13.0).abs() < 0.05,
        "stall ratio {ratio} for {stalled_per_viewer} s of 13: {q:#}"
    );
    // Delivery did not stop being measured; the 9 s pre-buffer never started playing
    // within the run for most, and never stalled once playing.
    let nine = &q["by_player_buffer"][1];
    assert_eq!(num(&nine["player_buffer_s"]), 9.0);
    assert_eq!(num(&nine["stalls"]), 0.0, "{nine:#}");
}
