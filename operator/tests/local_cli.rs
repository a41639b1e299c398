//! `surge-operator local` end to end: the built binary runs a two-region Stream as relay
//! processes at speed 10, ffmpeg publishes to the ingest address the status names, 30
//! HTTP-FLV viewers on eu-west's edge are a flash crowd that makes the planner scale that
//! region's edges up, and once they leave it scales them down within the sped-up windows;
//! SIGINT stops every relay. Invalid input (a bad spec, a
//! missing relay binary, a taken API address) is one line and a non-zero exit, with nothing
//! started. Needs `cargo build -p surge-relay` first (the relay is another crate's) and ffmpeg.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

mod common;
use common::local_api::http_get_status;
use common::publisher::ffmpeg_publish;
use common::repo_root;

const OPERATOR: &str = env!("CARGO_BIN_EXE_surge-operator");

fn relay_bin() -> PathBuf {
    let bin = repo_root().join("target/debug/surge-relay");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p surge-relay` first",
        bin.display()
    );
    bin
}

/// Second octets of this run's own (127.180-194.x.x, two per Stream): apart from the
/// command's default (200), local_fleet.rs's 120-179 and the e2e scripts' 40-119.
fn first_octet(offset: u32) -> u8 {
    u8::try_from(180 + ((std::process::id() / 2 + offset) % 7) * 2).expect("octet")
}

/// A scratch directory of this test run.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("surge-local-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Two regions, small edges (20 viewers each) and short windows, so a few seconds of wall
/// time at speed 10 show a scale-up and a scale-down; 30 viewers at once are a flash crowd.
const TALK: &str = "apiVersion: surge.dev/v1alpha1
kind: Stream
metadata:
  name: talk
spec:
  bitrateKbps: 500
  origin:
    region: eu-west
  regions:
    - name: eu-west
      minEdges: 1
      maxEdges: 4
    - name: us-east
      minEdges: 1
      maxEdges: 2
  tree:
    fanout: 4
    viewersPerEdge: 20
  scaling:
    leadTimeSeconds: 10
    scaleDownStabilizationSeconds: 20
    scaleDownStepSeconds: 5
    maxScaleDownFraction: 1
    estimationWindowSeconds: 20
    flashCrowd:
      minGrowthPerMinute: 6
      exitAfterSeconds: 20
";

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("address")
}

/// The operator, SIGKILLed (with its relays left to the check below) if the test fails.
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn start(args: &[String], log: &Path) -> Operator {
        let out = std::fs::File::create(log).expect("log");
        let child = Command::new(OPERATOR)
            .arg("local")
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("surge-operator starts");
        Operator {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the child this test started and has not reaped.
        unsafe { libc::kill(pid, signal) };
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "surge-operator still runs after {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGINT first, so its relays are stopped too.
            self.signal(libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The one Stream of `/api/v1/streams`.
fn talk(api: SocketAddr) -> Option<Value> {
    let (code, body) = http_get_status(api, "/api/v1/streams")?;
    assert_eq!(code, 200, "{body}");
    let all: Value = serde_json::from_str(&body).expect("JSON");
    all.as_array()?.first().cloned()
}

/// `(desired, ready)` of a region's edge tier in a status.
fn edges(stream: &Value, region: &str) -> (u64, u64) {
    let regions = stream["status"]["regions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    regions
        .iter()
        .filter(|r| r["name"] == region)
        .flat_map(|r| r["tiers"].as_array().cloned().unwrap_or_default())
        .find(|t| t["tier"] == "edge")
        .map(|t| {
            (
                t["desired"].as_u64().unwrap_or(0),
                t["ready"].as_u64().unwrap_or(0),
            )
        })
        .unwrap_or((0, 0))
}

/// The status (`True`, `False`) of one of the Stream's conditions.
fn condition(stream: &Value, type_: &str) -> String {
    let conditions = stream["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    conditions
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["status"].as_str().map(String::from))
        .unwrap_or_default()
}

/// `surge-operator local` arguments for `yaml` at speed 10 with a 1 s ready delay.
fn local_args(yaml: &Path, api: SocketAddr, log_dir: &Path, octet: u8) -> Vec<String> {
    [
        "-f",
        &yaml.display().to_string(),
        "--speed",
        "10",
        "--ready-delay",
        "1s",
        "--api-listen",
        &api.to_string(),
        "--relay-bin",
        &relay_bin().display().to_string(),
        "--log-dir",
        &log_dir.display().to_string(),
        "--first-octet",
        &octet.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The Stream once its status names the ingest and its origin is Ready.
fn wait_for_ingest(api: SocketAddr, op: &Operator, pids: &mut Vec<u32>) -> Value {
    wait_for(
        "the ingest endpoint",
        api,
        op,
        pids,
        Duration::from_secs(15),
        |s| s["status"]["endpoints"]["ingest"].is_string() && s["status"]["origin"]["ready"] == 1,
    )
}

/// Polls the API until `ok`, collecting every relay pid seen.
fn wait_for(
    what: &str,
    api: SocketAddr,
    op: &Operator,
    pids: &mut Vec<u32>,
    within: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(stream) = talk(api) {
            for r in stream["relays"].as_array().cloned().unwrap_or_default() {
                let pid = u32::try_from(r["pid"].as_u64().expect("pid")).expect("pid");
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
            if ok(&stream) {
                return stream;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {stream:#}\n{}",
                op.log()
            );
        } else {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: no API answer\n{}",
                op.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether `pid` runs: it exists and is not a zombie (a relay adopted from a killed operator
/// is no child of the one that stops it, so its exit status waits for init to collect).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x") | None)
}

/// Processes whose command line names an address of 127.<octet>.x.x (this run's relays), by
/// pid, read from /proc.
fn relays_on(octets: &[u8]) -> Vec<(u32, String)> {
    processes(|cmdline| {
        cmdline.contains("surge-relay")
            && octets
                .iter()
                .any(|o| cmdline.contains(&format!("127.{o}.")))
    })
}

/// The Service stand-ins' processes serving a table under `log_dir`.
fn stand_ins_of(log_dir: &Path) -> Vec<(u32, String)> {
    let dir = log_dir.display().to_string();
    processes(|cmdline| cmdline.contains(" stand-ins ") && cmdline.contains(&dir))
}

/// Every process whose command line (arguments joined by spaces) passes `wanted`.
fn processes(wanted: impl Fn(&str) -> bool) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if wanted(&cmdline) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// An HTTP-FLV viewer that reads (and drops) the stream until aborted.
fn viewer(url: &str) -> JoinHandle<()> {
    counting_viewer(url, Arc::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_on_one_region_scales_its_edges_up_then_down_and_sigint_stops_every_relay() {
    let started = Instant::now();
    let dir = scratch("run");
    let yaml = dir.join("talk.yaml");
    std::fs::write(&yaml, TALK).expect("write");
    let octet = first_octet(0);
    let api = free_port();
    let args = local_args(&yaml, api, &dir.join("relays"), octet);
    let mut op = Operator::start(&args, &dir.join("operator.log"));
    let mut pids = Vec::new();

    // The tree comes up; the status names where to publish (the ingest Service's stand-in).
    let stream = wait_for_ingest(api, &op, &mut pids);
    let ingest = stream["status"]["endpoints"]["ingest"]
        .as_str()
        .expect("ingest")
        .to_string();
    assert_eq!(ingest, format!("rtmp://127.{octet}.0.0:1935/live/talk"));
    let playback = stream["status"]["endpoints"]["playback"]
        .as_array()
        .expect("playback")
        .clone();
    let eu = playback
        .iter()
        .find(|p| p["region"] == "eu-west")
        .expect("eu-west");
    let flv = eu["httpFlv"].as_str().expect("httpFlv").to_string();
    assert_eq!(flv, format!("http://127.{octet}.1.0:8080/live/talk.flv"));
    let us = playback
        .iter()
        .find(|p| p["region"] == "us-east")
        .expect("us-east");
    assert_eq!(
        us["httpFlv"].as_str(),
        Some(format!("http://127.{}.1.0:8080/live/talk.flv", octet + 1).as_str())
    );
    let (code, body) = http_get_status(api, "/healthz").expect("healthz");
    assert_eq!((code, body.trim()), (200, "ok"));

    // Published: every edge prewarms and becomes Ready.
    let _ffmpeg = ffmpeg_publish(&ingest, 120);
    wait_for(
        "one Ready edge per region",
        api,
        &op,
        &mut pids,
        Duration::from_secs(20),
        |s| edges(s, "eu-west") == (1, 1) && edges(s, "us-east") == (1, 1),
    );

    // 30 viewers on eu-west's edge (sized for 20): eu-west scales up, us-east does not.
    let viewers: Vec<JoinHandle<()>> = (0..30).map(|_| viewer(&flv)).collect();
    let up = wait_for(
        "eu-west edges scaled up and Ready",
        api,
        &op,
        &mut pids,
        Duration::from_secs(25),
        |s| {
            let (desired, ready) = edges(s, "eu-west");
            desired >= 2 && ready >= 2 && s["status"]["viewers"]["regions"]["eu-west"] == 30
        },
    );
    assert_eq!(edges(&up, "us-east"), (1, 1), "{up:#}");
    let eu_relays = up["relays"]
        .as_array()
        .expect("relays")
        .iter()
        .filter(|r| r["deployment"] == "talk-eu-west-edge" && r["ready"] == true)
        .count();
    assert!(eu_relays >= 2, "{up:#}");
    let log = op.log();
    assert!(log.contains("talk: ScaledUp eu-west edge 1 -> "), "{log}");
    let (code, metrics) = http_get_status(api, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains(
            r#"surge_operator_viewers{namespace="default",stream="talk",region="eu-west"} 30"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("surge_operator_relays_desired{"),
        "{metrics}"
    );
    // Prometheus finds every relay through HTTP service discovery, and each one serves
    // /metrics at the address it names.
    let (code, body) = http_get_status(api, "/api/v1/scrape-targets").expect("scrape targets");
    assert_eq!(code, 200, "{body}");
    let groups: Value = serde_json::from_str(&body).expect("scrape targets JSON");
    let relays = up["relays"].as_array().expect("relays");
    let groups = groups.as_array().expect("target groups");
    assert!(groups.len() >= relays.len(), "{body}");
    for relay in relays {
        let group = groups
            .iter()
            .find(|g| g["labels"]["pod"] == relay["name"])
            .unwrap_or_else(|| panic!("{} not a target: {body}", relay["name"]));
        assert_eq!(group["labels"]["namespace"], "default", "{body}");
        let target: SocketAddr = group["targets"][0]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("target address");
        let (code, text) = http_get_status(target, "/metrics").expect("relay metrics");
        assert_eq!(code, 200);
        assert!(text.contains("surge_relay_viewers"), "{text}");
    }

    // The crowd leaves: after the stabilisation window eu-west is back to one. The windows
    // are trace time: 20 s of it is 2 s at speed 10, so this takes well under the 20 s of
    // wall time a loop without the speed-up would need.
    for v in &viewers {
        v.abort();
    }
    wait_for(
        "eu-west edges back to one",
        api,
        &op,
        &mut pids,
        Duration::from_secs(15),
        |s| {
            edges(s, "eu-west") == (1, 1)
                && s["status"]["viewers"]["total"] == 0
                && condition(s, "FlashCrowd") == "False"
        },
    );
    let log = op.log();
    assert!(log.contains("talk: ScaledDown eu-west edge "), "{log}");
    // 30 viewers at once: a flash crowd began (the log is the record; the condition may
    // already be over by the time the edges are Ready), and it ended.
    assert!(log.contains("talk: FlashCrowd "), "{log}");
    assert!(log.contains("talk: FlashCrowdOver "), "{log}");
    assert!(log.contains("relay talk-eu-west-edge-2 ready on"), "{log}");

    // SIGINT: every relay it started is stopped, and the operator exits cleanly.
    op.signal(libc::SIGINT);
    let status = op.wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", op.log());
    let log = op.log();
    assert!(log.contains("SIGINT: stopping every relay"), "{log}");
    assert!(log.contains("talk: stopped "), "{log}");
    assert!(
        pids.len() >= 4,
        "origin, two edges, a second eu-west edge: {pids:?}"
    );
    for pid in &pids {
        assert!(!alive(*pid), "relay pid {pid} still runs\n{log}");
    }
    assert_eq!(relays_on(&[octet, octet + 1]), [], "{log}");
    assert_eq!(stand_ins_of(&dir.join("relays")), [], "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "{:?}",
        started.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An HTTP-FLV viewer that counts the bytes it reads into `bytes` until aborted or closed.
fn counting_viewer(url: &str, bytes: Arc<AtomicU64>) -> JoinHandle<()> {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let (host, path) = (host.to_string(), format!("/{path}"));
    tokio::spawn(async move {
        let Ok(mut s) = tokio::net::TcpStream::connect(&host).await else {
            return;
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        if s.write_all(request.as_bytes()).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                return;
            }
            bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    })
}

/// Each counter's growth over `window`.
async fn growth(counters: &[Arc<AtomicU64>], window: Duration) -> Vec<u64> {
    let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    tokio::time::sleep(window).await;
    counters
        .iter()
        .zip(before)
        .map(|(c, b)| c.load(Ordering::Relaxed) - b)
        .collect()
}

/// Relay name -> pid, from a Stream of the API.
fn relay_pids(stream: &Value) -> BTreeMap<String, u64> {
    stream["relays"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["pid"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// On a failed run, kills what a SIGKILLed operator of this test left behind: its relays
/// and its stand-ins, found by this run's own log dir on their command lines (every relay
/// reads its hosts file there). No other operator would stop them.
struct Leftovers(PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let dir = self.0.display().to_string();
        let ours = |cmdline: &str| {
            cmdline.contains(&dir)
                && (cmdline.contains("surge-relay") || cmdline.contains(" stand-ins "))
        };
        for (pid, _) in processes(ours) {
            if let Ok(pid) = libc::pid_t::try_from(pid) {
                // SAFETY: kill(2) on a process just found by its command line as this run's.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_mid_stream_costs_no_viewer_a_frame_and_its_restart_adopts_the_fleet() {
    let dir = scratch("restart");
    let yaml = dir.join("talk.yaml");
    // A few viewers are no flash crowd here: the fleet stays as it is, so a restart that
    // churned it would show.
    let steady = TALK
        .replace("minGrowthPerMinute: 6", "minGrowthPerMinute: 600")
        .replace("viewersPerEdge: 20", "viewersPerEdge: 400");
    std::fs::write(&yaml, steady).expect("write");
    let octet = first_octet(5);
    let api = free_port();
    let log_dir = dir.join("relays");
    let _leftovers = Leftovers(log_dir.clone());
    let args = local_args(&yaml, api, &log_dir, octet);
    let mut op = Operator::start(&args, &dir.join("operator-1.log"));
    let mut pids = Vec::new();
    let stream = wait_for_ingest(api, &op, &mut pids);
    let ingest = stream["status"]["endpoints"]["ingest"]
        .as_str()
        .expect("ingest")
        .to_string();
    // Published through the ingest Service's stand-in; viewers through eu-west's playback
    // stand-in: both paths cross the stand-ins' process.
    let mut ffmpeg = ffmpeg_publish(&ingest, 120);
    let before = wait_for(
        "one Ready edge per region",
        api,
        &op,
        &mut pids,
        Duration::from_secs(20),
        |s| edges(s, "eu-west") == (1, 1) && edges(s, "us-east") == (1, 1),
    );
    let flv = format!("http://127.{octet}.1.0:8080/live/talk.flv");
    let counters: Vec<Arc<AtomicU64>> = (0..4).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let viewers: Vec<JoinHandle<()>> = counters
        .iter()
        .map(|c| counting_viewer(&flv, c.clone()))
        .collect();
    let watched = wait_for(
        "4 viewers on eu-west",
        api,
        &op,
        &mut pids,
        Duration::from_secs(15),
        |s| s["status"]["viewers"]["regions"]["eu-west"] == 4,
    );
    let fleet = relay_pids(&watched);
    assert_eq!(fleet, relay_pids(&before), "no relay came or went yet");
    // Past the estimation window (20 s of trace): still the same fleet.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let steady = talk(api).expect("status");
    assert_eq!(relay_pids(&steady), fleet, "{steady:#}");
    let stand_ins = stand_ins_of(&log_dir);
    assert_eq!(stand_ins.len(), 1, "one stand-ins process: {stand_ins:?}");

    // SIGKILL: nothing of the operator runs its shutdown.
    op.signal(libc::SIGKILL);
    op.wait(Duration::from_secs(5));
    let gap = growth(&counters, Duration::from_secs(3)).await;
    assert!(
        gap.iter().all(|g| *g > 20_000),
        "every viewer keeps getting the stream (500 kbit/s) with the operator gone: {gap:?}\n{}",
        op.log()
    );
    assert!(
        ffmpeg.0.try_wait().expect("ffmpeg").is_none(),
        "the publisher was not cut"
    );
    for (name, pid) in &fleet {
        assert!(
            alive(u32::try_from(*pid).expect("pid")),
            "{name} (pid {pid}) outlives the operator"
        );
    }
    assert_eq!(
        stand_ins_of(&log_dir),
        stand_ins,
        "the stand-ins outlive the operator"
    );

    // Started again with the same command: it adopts the relays and the stand-ins.
    let mut op = Operator::start(&args, &dir.join("operator-2.log"));
    let adopted = wait_for(
        "the restarted operator's status",
        api,
        &op,
        &mut pids,
        Duration::from_secs(15),
        |s| {
            edges(s, "eu-west") == (1, 1)
                && edges(s, "us-east") == (1, 1)
                && s["status"]["viewers"]["regions"]["eu-west"] == 4
        },
    );
    assert_eq!(
        relay_pids(&adopted),
        fleet,
        "the same relays, same pids\n{}",
        op.log()
    );
    // 3 s at speed 10 is 30 s of trace time: longer than the scale-down window.
    let during = growth(&counters, Duration::from_secs(3)).await;
    assert!(during.iter().all(|g| *g > 20_000), "{during:?}");
    let after = talk(api).expect("status");
    assert_eq!(
        relay_pids(&after),
        fleet,
        "no churn after the restart\n{}",
        op.log()
    );
    assert_eq!(
        after["status"]["viewers"]["regions"]["eu-west"], 4,
        "{after:#}"
    );
    assert_eq!(
        stand_ins_of(&log_dir),
        stand_ins,
        "the same stand-ins' process"
    );
    assert!(
        ffmpeg.0.try_wait().expect("ffmpeg").is_none(),
        "the publisher was not cut"
    );
    let log = op.log();
    assert_eq!(
        log.matches("adopted a relay of a previous run").count(),
        fleet.len(),
        "{log}"
    );
    assert!(
        log.contains("adopted the Service stand-ins' process of a previous run"),
        "{log}"
    );
    assert!(!log.contains("relay started"), "no relay started: {log}");

    // The stand-ins' process dies: the operator starts it again, and new viewers get in.
    let (old_pid, _) = stand_ins[0];
    // SAFETY: kill(2) on the stand-ins' process this test's operator started.
    unsafe { libc::kill(libc::pid_t::try_from(old_pid).expect("pid"), libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = stand_ins_of(&log_dir);
        // Started, and listening (it binds its table's addresses just after it starts).
        let listening = std::net::TcpStream::connect(format!("127.{octet}.1.0:8080")).is_ok();
        if now.len() == 1 && now[0].0 != old_pid && listening {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new stand-ins' process: {now:?}\n{}",
            op.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = Arc::new(AtomicU64::new(0));
    let late_viewer = counting_viewer(&flv, late.clone());
    let got = growth(std::slice::from_ref(&late), Duration::from_secs(3)).await;
    assert!(
        got[0] > 20_000,
        "a viewer through the new stand-ins: {got:?}\n{}",
        op.log()
    );
    late_viewer.abort();
    assert!(
        op.log()
            .contains("the Service stand-ins' process is gone; starting it again")
    );

    // A second operator on the same log dir (another API address) must not take the fleet.
    let mut second = args.clone();
    let at = second
        .iter()
        .position(|a| a == "--api-listen")
        .expect("flag")
        + 1;
    second[at] = free_port().to_string();
    let (status, stderr) = run_to_end(&second);
    assert!(!status.success(), "{stderr}");
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&format!(
            "another surge-operator (pid {}) runs the fleet",
            op.child.id()
        )),
        "{stderr}"
    );
    assert_eq!(
        relay_pids(&talk(api).expect("status")),
        fleet,
        "the fleet untouched"
    );

    // SIGINT now stops everything, the adopted relays and the stand-ins included.
    op.signal(libc::SIGINT);
    let status = op.wait(Duration::from_secs(15));
    assert!(status.success(), "{status}\n{}", op.log());
    for v in &viewers {
        v.abort();
    }
    drop(ffmpeg);
    for (name, pid) in &fleet {
        assert!(
            !alive(u32::try_from(*pid).expect("pid")),
            "{name} (pid {pid}) still runs"
        );
    }
    assert_eq!(relays_on(&[octet, octet + 1]), [], "{}", op.log());
    assert_eq!(stand_ins_of(&log_dir), [], "{}", op.log());
    assert!(
        !log_dir.join("state/default.talk/relays").exists()
            || std::fs::read_dir(log_dir.join("state/default.talk/relays"))
                .expect("records")
                .next()
                .is_none(),
        "a clean stop leaves no record"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `surge-operator local ARGS` to its end (it must end by itself), returns its exit
/// status and stderr.
fn run_to_end(args: &[String]) -> (ExitStatus, String) {
    let mut child = Command::new(OPERATOR)
        .arg("local")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("surge-operator starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("surge-operator local {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    (out.status, String::from_utf8_lossy(&out.stderr).to_string())
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect()
}

#[test]
fn bad_input_is_one_line_each_a_failure_and_starts_nothing() {
    let dir = scratch("bad");
    let octet = first_octet(3);
    let common = |yaml: &Path, api: SocketAddr, bin: &Path| -> Vec<String> {
        [
            "-f",
            &yaml.display().to_string(),
            "--api-listen",
            &api.to_string(),
            "--relay-bin",
            &bin.display().to_string(),
            "--log-dir",
            &dir.join("relays").display().to_string(),
            "--first-octet",
            &octet.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let good = dir.join("talk.yaml");
    std::fs::write(&good, TALK).expect("write");

    // An invalid spec: the validator's field messages, one line each.
    let bad = dir.join("bad.yaml");
    let text = TALK
        .replace(
            "      minEdges: 1\n      maxEdges: 4\n",
            "      minEdges: 5\n      maxEdges: 4\n",
        )
        .replace("fanout: 4", "fanout: 1");
    std::fs::write(&bad, text).expect("write");
    let (status, stderr) = run_to_end(&common(&bad, free_port(), &relay_bin()));
    assert!(!status.success(), "{stderr}");
    let source = bad.display().to_string();
    assert_eq!(
        error_lines(&stderr),
        [
            format!(
                "error: {source}: Stream talk: spec.regions[0].minEdges: minEdges (5) must be less than or equal to maxEdges (4)"
            ),
            format!("error: {source}: Stream talk: spec.tree.fanout: must be at least 2"),
        ],
        "{stderr}"
    );

    // A missing relay binary.
    let missing = dir.join("no-such-relay");
    let (status, stderr) = run_to_end(&common(&good, free_port(), &missing));
    assert!(!status.success(), "{stderr}");
    assert_eq!(
        error_lines(&stderr),
        [format!(
            "error: relay binary {} not found (build it: cargo build -p surge-relay)",
            missing.display()
        )],
        "{stderr}"
    );

    // A taken API address.
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = squatter.local_addr().expect("address");
    let (status, stderr) = run_to_end(&common(&good, taken, &relay_bin()));
    assert!(!status.success(), "{stderr}");
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("error: cannot listen on {taken} (--api-listen): ")),
        "{stderr}"
    );
    assert!(lines[0].contains("in use"), "{stderr}");

    // None of them started a relay.
    assert_eq!(relays_on(&[octet, octet + 1]), []);
    assert!(!dir.join("relays").exists(), "no relay log directory");

    // A relay that dies at start (someone holds the origin's RTMP address): its own words,
    // and the relays started with it are stopped.
    let origin = std::net::Ipv4Addr::new(127, octet, 0, 1);
    let _squatter = TcpListener::bind((origin, 1935)).expect("bind the origin's address");
    let (status, stderr) = run_to_end(&common(&good, free_port(), &relay_bin()));
    assert!(!status.success(), "{stderr}");
    let lines = error_lines(&stderr);
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: relay talk-origin-1: exited"),
        "{stderr}"
    );
    assert!(lines[0].contains("in use"), "{stderr}");
    assert_eq!(relays_on(&[octet, octet + 1]), [], "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
