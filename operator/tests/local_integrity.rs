//! Signed frames in `surge-operator local`, with real relays: a Stream with default settings
//! gets a generated signing key (a file standing for the Secret; openssl reads it and derives
//! the public key the status publishes), the origin runs with `--sign-key` and the edge with
//! `--verify-key`, and ffmpeg plays at the edge what ffmpeg published at the ingest address,
//! with no verification failure; viewers given the status's public key (`surge-load replay
//! --verify-key`) verify every frame. Then a publisher signing with a key the Stream does not trust
//! (`surge-load publish --sign-key`: the origin passes its signatures on) makes the edge drop
//! its upstream, and the Stream turns `Degraded` (`IntegrityFailure`) naming the edge relay and
//! its upstream. Needs `cargo build -p surge-relay -p surge-load` first, ffmpeg and openssl.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::local_api::{Operator, built, condition, free_ports, http_get, wait_for};
use common::publisher::{KillOnDrop, ffmpeg_publish};

const OPERATOR: &str = env!("CARGO_BIN_EXE_surge-operator");

/// Second octet of this run's relays (127.196-198.x.x): apart from local_cli.rs's 180-194,
/// local_fleet.rs's 120-179, the e2e scripts' 40-119 and the command's default (200).
fn first_octet() -> u8 {
    u8::try_from(196 + (std::process::id() % 3)).expect("octet")
}

const SIGNED: &str = "apiVersion: surge.dev/v1alpha1
kind: Stream
metadata:
  name: signed
spec:
  bitrateKbps: 500
  origin:
    region: eu-west
  regions:
    - name: eu-west
      minEdges: 1
      maxEdges: 1
";

/// The relay of `tier`: (name, command line, admin address).
fn relay(stream: &Value, tier: &str) -> (String, String, String) {
    let r = stream["relays"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["tier"] == tier).cloned())
        .unwrap_or_else(|| panic!("a {tier} relay: {stream:#}"));
    let pid = r["pid"].as_u64().expect("pid");
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the relay runs");
    let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
    let http = r["http"].as_str().expect("http").to_string();
    // Local relays keep the cluster's ports on their own address: admin 9090.
    let admin = format!("{}:9090", http.rsplit_once(':').expect("host:port").0);
    (
        r["name"].as_str().expect("name").to_string(),
        cmdline,
        admin,
    )
}

fn flag_value(cmdline: &str, flag: &str) -> Option<String> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == flag)
        .map(|w| w[1].to_string())
}

/// ffmpeg playing `url` for 60 video frames (decoded, dropped) within 30 s: whether it got
/// them. One second of probing: the default waits for five seconds of a live stream.
fn plays(url: &str) -> bool {
    Command::new("timeout")
        .args(["30", "ffmpeg", "-hide_banner", "-nostdin", "-v", "error"])
        .args(["-analyzeduration", "1000000", "-i", url])
        .args(["-frames:v", "60", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_default_stream_is_signed_at_the_origin_verified_at_the_edge_and_a_foreign_key_degrades_it() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("surge-local-integrity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let yaml = dir.join("signed.yaml");
    std::fs::write(&yaml, SIGNED).expect("write");
    let api = format!("127.0.0.1:{}", free_ports(1)[0]);
    let relays_dir = dir.join("relays");
    let log = dir.join("operator.log");
    let out = std::fs::File::create(&log).expect("log");
    let child = Command::new(OPERATOR)
        .arg("local")
        .arg("-f")
        .arg(&yaml)
        .args(["--speed", "10", "--ready-delay", "1s", "--api-listen", &api])
        .arg("--relay-bin")
        .arg(built("surge-relay"))
        .arg("--log-dir")
        .arg(&relays_dir)
        .args(["--first-octet", &first_octet().to_string()])
        .env("RUST_LOG", "info")
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("surge-operator starts");
    let op = Operator { child, log };

    // The status publishes the generated key's public half and id.
    let stream = wait_for(
        "the origin and its key",
        &api,
        &op,
        Duration::from_secs(20),
        |s| {
            s["status"]["integrity"]["publicKey"].is_string()
                && s["status"]["origin"]["ready"] == 1
                && s["relays"].as_array().is_some_and(|r| r.len() == 2)
        },
    );
    let integrity = &stream["status"]["integrity"];
    let public = integrity["publicKey"].as_str().expect("publicKey");
    assert!(
        public.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{public}"
    );
    let key_id = integrity["keyId"].as_str().expect("keyId");
    assert_eq!(key_id.len(), 16, "8 bytes in hex: {key_id}");
    let key = relays_dir.join("keys/default-signed/signing.key");
    let openssl = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .output()
        .expect("openssl runs");
    assert!(
        openssl.status.success(),
        "openssl reads the generated key: {openssl:?}"
    );
    assert_eq!(String::from_utf8_lossy(&openssl.stdout), public);

    // The origin signs with the key file, the edge verifies with the public key's.
    let (_, origin_cmd, _) = relay(&stream, "origin");
    assert_eq!(
        flag_value(&origin_cmd, "--sign-key"),
        Some(key.display().to_string())
    );
    let (edge, edge_cmd, edge_admin) = relay(&stream, "edge");
    let verify = flag_value(&edge_cmd, "--verify-key").expect("the edge verifies");
    assert_eq!(
        std::fs::read_to_string(&verify).expect("the trusted key file"),
        public
    );
    assert!(flag_value(&edge_cmd, "--sign-key").is_none());

    // Published at the ingest address, played at the edge, nothing fails verification.
    let ingest = stream["status"]["endpoints"]["ingest"]
        .as_str()
        .expect("ingest")
        .to_string();
    let flv = stream["status"]["endpoints"]["playback"][0]["httpFlv"]
        .as_str()
        .expect("httpFlv")
        .to_string();
    let publisher = ffmpeg_publish(&ingest, 60);
    // The edge is Ready once it pulled the stream (prewarmed), through its verifier.
    let ready = wait_for("a Ready tree", &api, &op, Duration::from_secs(20), |s| {
        condition(s, "Ready").0 == "True"
    });
    eprintln!(
        "tree and key checked after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    while !plays(&flv) {
        assert!(Instant::now() < deadline, "no play at {flv}\n{}", op.log());
    }
    let metrics = http_get(&edge_admin, "/metrics").expect("edge metrics");
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("surge_relay_integrity_failures_total{")),
        "the edge counted failures: {metrics}"
    );
    assert_eq!(condition(&ready, "Degraded").1, "AsExpected");
    eprintln!(
        "played at the edge after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Viewers handed the status's public key verify every frame they get at the edge.
    let public_file = dir.join("signed.pub.pem");
    std::fs::write(&public_file, public).expect("write the public key");
    let trace = dir.join("viewers.csv");
    std::fs::write(
        &trace,
        "# livetrace v1\nbroadcast_id,t_s,region,viewers\nb,0,r,2\nb,4,r,2\n",
    )
    .expect("trace");
    let edge_host = flv
        .strip_prefix("http://")
        .and_then(|r| r.split_once(':'))
        .map(|(host, _)| host.to_string())
        .expect("the edge's host");
    let report = dir.join("viewers.json");
    let out = Command::new(built("surge-load"))
        .args(["replay", "--target", &format!("r={edge_host}:1935:8080")])
        .args([
            "--protocol",
            "mix",
            "--stream",
            "live/signed",
            "--speed",
            "1",
        ])
        .arg("--trace")
        .arg(&trace)
        .arg("--verify-key")
        .arg(&public_file)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("surge-load replay runs");
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    let integrity = &report["integrity"];
    let n = |k: &str| integrity[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!((n("failed"), n("unverified")), (0, 0), "{integrity:#}");
    assert!((100..u64::MAX).contains(&n("verified")), "{integrity:#}");
    eprintln!(
        "viewers verified {} frames after {:.1} s",
        n("verified"),
        started.elapsed().as_secs_f64()
    );
    drop(publisher);

    // A publisher signing with a key the Stream does not trust: the edge refuses it.
    let foreign = dir.join("foreign.pem");
    let pem = surge_integrity::SigningKey::generate_pem().expect("a key");
    std::fs::write(&foreign, pem).expect("write the foreign key");
    let publish_log = std::fs::File::create(dir.join("publish.log")).expect("log");
    let foreign_publisher = KillOnDrop(
        Command::new(built("surge-load"))
            .args([
                "publish",
                "--url",
                &ingest,
                "--duration",
                "60s",
                "--sign-key",
            ])
            .arg(&foreign)
            .stdout(Stdio::null())
            .stderr(publish_log)
            .spawn()
            .expect("surge-load publish starts"),
    );
    let degraded = wait_for(
        "Degraded: IntegrityFailure",
        &api,
        &op,
        Duration::from_secs(40),
        |s| {
            // The edge pulls (and so verifies) without viewers: it prewarms the stream.
            condition(s, "Degraded").1 == "IntegrityFailure"
        },
    );
    let (status, _, message) = condition(&degraded, "Degraded");
    assert_eq!(status, "True");
    assert!(
        message.contains(&edge),
        "names the edge relay {edge}: {message}"
    );
    assert!(message.contains("unknown_key"), "{message}");
    assert!(
        message.contains(":1935/live"),
        "names the upstream: {message}"
    );
    drop(foreign_publisher);
    eprintln!(
        "local integrity test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
