//! `surge-load replay --target REGION=http://LOCATOR` against real relays on loopback: an
//! origin fed by `surge-load publish`, two edges of region `eu` pulling from it with
//! `--max-viewers 10`, each a locator over the other and the origin. 30 viewers replayed
//! through one edge's locator, once over HTTP-FLV (302 redirects) and once over RTMP
//! (`/api/v1/locate` first): the report shows viewers on both edges, spread evenly, the
//! viewers past the edges' high mark placed by overflow on the origin, and none refused
//! while the origin had room.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::relay::{relay_bin, wait_for_publisher, wait_until};
use common::{Guard, free_port, one_at_a_time, publish, replay, temp_dir, wait_for_port};

const EDGE_MAX_VIEWERS: u64 = 10;
const VIEWERS: u64 = 30;

/// A surge-relay on the given loopback ports with `extra` flags, logging to `dir/NAME.log`.
fn spawn_relay(dir: &Path, name: &str, rtmp: u16, http: u16, extra: &[&str]) -> Guard {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("relay log");
    let child = Command::new(relay_bin())
        .args([
            "--rtmp-listen",
            &format!("127.0.0.1:{rtmp}"),
            "--http-listen",
            &format!("127.0.0.1:{http}"),
            "--shutdown-grace",
            "1s",
        ])
        .args(extra)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start surge-relay");
    let guard = Guard(child);
    wait_for_port(rtmp);
    wait_for_port(http);
    guard
}

/// `GET path` on 127.0.0.1:port: status and body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Ramp to 30 viewers in 4 s, hold them 10 s.
fn write_trace(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("crowd.csv");
    let mut text = String::from(
        "# livetrace v1; 30 viewers of one region arrive within 4 s and stay\nbroadcast_id,t_s,region,viewers,arrivals,departures\n",
    );
    for (t, viewers, arrivals) in [(0, 0, 0), (4, VIEWERS, VIEWERS), (14, VIEWERS, 0)] {
        for region in ["eu", "*"] {
            text.push_str(&format!("crowd,{t},{region},{viewers},{arrivals},0\n"));
        }
    }
    std::fs::write(&path, text).expect("trace");
    path
}

fn run(dir: &Path, trace: &Path, locator: u16, protocol: &str) -> (Value, String, String) {
    let report = dir.join(format!("{protocol}.json"));
    let html = dir.join(format!("{protocol}.html"));
    let out = replay(&[
        "--trace",
        trace.to_str().expect("utf-8 path"),
        "--target",
        &format!("eu=http://127.0.0.1:{locator}"),
        "--stream",
        "live/e2e",
        "--speed",
        "1",
        "--protocol",
        protocol,
        "--report",
        report.to_str().expect("utf-8 path"),
        "--html",
        html.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{protocol} replay failed: {stderr}");
    let json = serde_json::from_str(&std::fs::read_to_string(&report).expect("report"))
        .expect("JSON report");
    let page = std::fs::read_to_string(&html).expect("html");
    (
        json,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        page,
    )
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// What every run must show: both edges took viewers, evenly and within capacity; the rest
/// overflowed to the origin; nobody was refused.
fn assert_spread(report: &Value, stdout: &str, html: &str, relays: [String; 3], scheme: &str) {
    let [e1, e2, origin] = relays;
    let eu = &report["details"]["by_region"]["eu"];
    let summary = format!("{eu:#}");
    assert_eq!(count(&eu["refused"]), 0, "the origin had room: {summary}");
    assert_eq!(count(&report["details"]["refused"]), 0);
    let peak = &eu["relays_at_peak"];
    assert!(
        count(&peak["viewers"]) >= VIEWERS - 3,
        "the crowd was playing at its peak: {summary}"
    );
    for edge in [&e1, &e2] {
        let n = count(&peak["relays"][edge.as_str()]);
        assert!(
            (5..=EDGE_MAX_VIEWERS).contains(&n),
            "edge {edge} held {n} viewers at the peak (want 5..={EDGE_MAX_VIEWERS}): {summary}"
        );
    }
    let ratio = peak["max_over_mean"].as_f64().expect("max/mean");
    assert!(
        (1.0..=1.8).contains(&ratio),
        "viewers spread unevenly, max/mean {ratio}: {summary}"
    );
    // Every overflow placement went to the origin, and only those did.
    let overflow = count(&eu["overflow"]);
    assert!(
        overflow >= 5,
        "the edges were full, yet overflow {overflow}: {summary}"
    );
    assert_eq!(
        count(&eu["relays"][origin.as_str()]["sessions"]),
        overflow,
        "{summary}"
    );
    for key in eu["relays"].as_object().expect("relays").keys() {
        assert!(key.starts_with(scheme), "{key} is not a {scheme} address");
    }
    // Per second too.
    let last = report["timeline"]
        .as_array()
        .and_then(|t| t.last())
        .expect("a timeline");
    assert_eq!(count(&last["refused"]), 0);
    assert_eq!(count(&last["overflow"]), overflow);
    assert!(
        count(&last["placement"]["eu"]["relays"][e1.as_str()]) > 0,
        "{last}"
    );
    assert!(
        stdout.contains("region eu: refused 0 | overflow"),
        "{stdout}"
    );
    assert!(html.contains("Where viewers landed") && html.contains("Viewers per relay"));
}

#[test]
fn replay_through_a_locator_spreads_viewers_over_the_edges_then_overflows() {
    let _serial = one_at_a_time();
    let dir = temp_dir("locator-replay");
    let (origin_rtmp, origin_http) = (free_port(), free_port());
    let _origin = spawn_relay(
        &dir,
        "origin",
        origin_rtmp,
        origin_http,
        &["--region", "us"],
    );
    let _publisher = publish(&dir, origin_rtmp, &[]);
    wait_for_publisher(origin_http, "e2e", Duration::from_secs(10));

    let edges: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let peers = format!(
        "127.0.0.1:{},127.0.0.1:{},127.0.0.1:{origin_http}",
        edges[0].1, edges[1].1
    );
    let upstream = format!("rtmp://127.0.0.1:{origin_rtmp}/live");
    let max = EDGE_MAX_VIEWERS.to_string();
    let _edges: Vec<Guard> = edges
        .iter()
        .enumerate()
        .map(|(i, &(rtmp, http))| {
            spawn_relay(
                &dir,
                &format!("edge{i}"),
                rtmp,
                http,
                &[
                    "--tier",
                    "edge",
                    "--region",
                    "eu",
                    "--upstream",
                    &upstream,
                    "--max-viewers",
                    &max,
                    "--placement-peer",
                    &peers,
                ],
            )
        })
        .collect();
    let locator = edges[0].1;
    // The locator has polled its peers when it can place a viewer.
    wait_until(
        "the locator places viewers",
        Duration::from_secs(10),
        || {
            http_get(locator, "/api/v1/locate?app=live&stream=e2e&protocol=flv")
                .is_some_and(|(status, _)| status == 200)
        },
    );
    // That probe counted as load until the next poll.
    std::thread::sleep(Duration::from_millis(2_200));
    let trace = write_trace(&dir);

    let (report, stdout, html) = run(&dir, &trace, locator, "flv");
    let http = |port: u16| format!("http://127.0.0.1:{port}");
    assert_spread(
        &report,
        &stdout,
        &html,
        [http(edges[0].1), http(edges[1].1), http(origin_http)],
        "http://",
    );

    // The FLV viewers are gone once the locator polls again.
    std::thread::sleep(Duration::from_millis(2_500));
    let (report, stdout, html) = run(&dir, &trace, locator, "rtmp");
    let rtmp = |port: u16| format!("rtmp://127.0.0.1:{port}");
    assert_spread(
        &report,
        &stdout,
        &html,
        [rtmp(edges[0].0), rtmp(edges[1].0), rtmp(origin_rtmp)],
        "rtmp://",
    );
}

/// Several `--target`s for one region are a pool picked from at random per session, as a
/// Service does: with 30 viewers for two edges of 10 (no locator), both edges fill, the
/// viewers past their capacity are refused (503, counted, retried on a new pick), and none is
/// an error.
#[test]
fn a_pool_of_targets_spreads_viewers_at_random_and_counts_refusals() {
    let _serial = one_at_a_time();
    let dir = temp_dir("pool-replay");
    let (origin_rtmp, origin_http) = (free_port(), free_port());
    let _origin = spawn_relay(
        &dir,
        "origin",
        origin_rtmp,
        origin_http,
        &["--region", "us"],
    );
    let _publisher = publish(&dir, origin_rtmp, &[]);
    wait_for_publisher(origin_http, "e2e", Duration::from_secs(10));
    let upstream = format!("rtmp://127.0.0.1:{origin_rtmp}/live");
    let max = EDGE_MAX_VIEWERS.to_string();
    let edges: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let _edges: Vec<Guard> = edges
        .iter()
        .enumerate()
        .map(|(i, &(rtmp, http))| {
            let args = ["--tier", "edge", "--region", "eu", "--upstream", &upstream];
            let args = [&args[..], &["--max-viewers", &max]].concat();
            spawn_relay(&dir, &format!("edge{i}"), rtmp, http, &args)
        })
        .collect();
    let trace = write_trace(&dir);
    let report_path = dir.join("pool.json");
    let targets: Vec<String> = edges
        .iter()
        .map(|(rtmp, http)| format!("eu=127.0.0.1:{rtmp}:{http}"))
        .collect();
    let out = replay(&[
        "--trace",
        trace.to_str().expect("utf-8 path"),
        "--target",
        &targets[0],
        "--target",
        &targets[1],
        "--stream",
        "live/e2e",
        "--speed",
        "1",
        "--protocol",
        "flv",
        "--report",
        report_path.to_str().expect("utf-8 path"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pool replay failed: {stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report"))
            .expect("JSON report");
    let eu = &report["details"]["by_region"]["eu"];
    let summary = format!("{eu:#}");
    assert!(
        count(&eu["refused"]) >= 10,
        "30 viewers for 20 places: the rest are refused and counted: {summary}"
    );
    assert_eq!(count(&eu["overflow"]), 0, "{summary}");
    let peak = &eu["relays_at_peak"];
    for (_, http) in &edges {
        let n = count(&peak["relays"][format!("http://127.0.0.1:{http}").as_str()]);
        assert!(
            (8..=EDGE_MAX_VIEWERS).contains(&n),
            "edge :{http} held {n} at the peak: {summary}"
        );
    }
    assert_eq!(
        count(&report["errors"]),
        0,
        "refusals are not errors: {report:#}"
    );
}
