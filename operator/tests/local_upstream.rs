//! Edges under a remote origin, with real processes: two `surge-relay` origins outside the
//! local cluster (on 127.0.0.1, each fed by `surge-load publish`, both signing with one key)
//! stand for another cluster's origin; `surge-operator local` runs a Stream naming both in
//! `spec.upstream` (and their public key in `spec.integrity.trustedKeys`): no origin relay
//! runs, the edge passes over its idle reflector level and pulls from the first URL, and
//! verifies. Viewers (`surge-load replay
//! --verify-key`) play at the Stream's playback endpoint while the first remote origin is
//! killed by pid: the edge fails over to the second, the viewers keep getting verified
//! frames, and the status's upstream in use changes, with `UpstreamFailover` True.
//! Needs `cargo build -p surge-relay -p surge-load` first.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::local_api::{Operator, built, condition, free_ports, http_get, wait_for};
use common::publisher::KillOnDrop;

const OPERATOR: &str = env!("CARGO_BIN_EXE_surge-operator");

/// Second octet of this run's relays (127.236-238.x.x): apart from local_integrity.rs's
/// 196-198, local_cli.rs's 180-194, local_fleet.rs's 120-179, the e2e scripts' 40-119 and
/// the command's default (200).
fn first_octet() -> u8 {
    u8::try_from(236 + (std::process::id() % 3)).expect("octet")
}

fn in_use(stream: &Value) -> Option<String> {
    stream["status"]["upstream"]["inUse"]
        .as_str()
        .map(str::to_string)
}

/// A relay standing for a remote cluster's origin: it takes the publisher and signs.
fn remote_origin(dir: &Path, name: &str, key: &Path) -> (KillOnDrop, String) {
    let ports = free_ports(3);
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("log");
    let child = Command::new(built("surge-relay"))
        .args(["--tier", "origin", "--region", name])
        .args(["--rtmp-listen", &format!("127.0.0.1:{}", ports[0])])
        .args(["--http-listen", &format!("127.0.0.1:{}", ports[1])])
        .args(["--admin-listen", &format!("127.0.0.1:{}", ports[2])])
        .arg("--sign-key")
        .arg(key)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("surge-relay starts");
    let admin = format!("127.0.0.1:{}", ports[2]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(&admin, "/healthz").is_none() {
        assert!(Instant::now() < deadline, "{name} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (
        KillOnDrop(child),
        format!("rtmp://127.0.0.1:{}/live", ports[0]),
    )
}

fn publish(dir: &Path, name: &str, url: &str) -> KillOnDrop {
    let log = std::fs::File::create(dir.join(format!("publish-{name}.log"))).expect("log");
    KillOnDrop(
        Command::new(built("surge-load"))
            .args(["publish", "--url", url, "--duration", "120s"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("surge-load publish starts"),
    )
}

#[test]
fn edges_pull_from_the_remote_origins_in_order_and_fail_over_when_the_first_dies() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("surge-local-upstream-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");

    // The remote origins: one signing key, as one origin cluster's.
    let key = dir.join("remote.key");
    std::fs::write(
        &key,
        surge_integrity::SigningKey::generate_pem().expect("a key"),
    )
    .expect("key");
    let public = surge_integrity::VerifyKey::from_pem(&std::fs::read(&key).expect("key"))
        .expect("its public half")
        .to_pem();
    let public_file = dir.join("remote.pub.pem");
    std::fs::write(&public_file, &public).expect("write the public key");
    let (mut first, first_url) = remote_origin(&dir, "remote-a", &key);
    let (_second, second_url) = remote_origin(&dir, "remote-b", &key);
    let _pub_a = publish(&dir, "a", &format!("{first_url}/remote"));
    let _pub_b = publish(&dir, "b", &format!("{second_url}/remote"));

    let yaml = dir.join("remote.yaml");
    std::fs::write(
        &yaml,
        format!(
            "apiVersion: surge.dev/v1alpha1
kind: Stream
metadata:
  name: remote
spec:
  bitrateKbps: 500
  upstream: [{first_url}, {second_url}]
  integrity:
    trustedKeys: [{}]
  tree:
    fanout: 2
  regions:
    - name: eu-west
      minEdges: 1
      maxEdges: 3
",
            serde_json::to_string(&public).expect("JSON string")
        ),
    )
    .expect("write");
    let api = format!("127.0.0.1:{}", free_ports(1)[0]);
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
        .arg(dir.join("relays"))
        .args(["--first-octet", &first_octet().to_string()])
        .env("RUST_LOG", "info")
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("surge-operator starts");
    let op = Operator { child, log };

    // Ready on the first remote origin; no origin relay here, nothing to publish to.
    let stream = wait_for(
        "Ready, pulling from the first upstream",
        &api,
        &op,
        Duration::from_secs(30),
        |s| condition(s, "Ready").0 == "True" && in_use(s).is_some(),
    );
    let relays = stream["relays"].as_array().expect("relays");
    assert!(
        relays.iter().all(|r| r["tier"] == "edge"),
        "only edges run: {relays:#?}"
    );
    let pid = relays[0]["pid"].as_u64().expect("pid");
    let cmdline = String::from_utf8_lossy(
        &std::fs::read(format!("/proc/{pid}/cmdline")).expect("the edge runs"),
    )
    .replace('\0', " ");
    // A reflector level is laid out for maxEdges (idle at one edge): the edge names it
    // first and passes over it to the external upstreams, in order.
    let reflector = "rtmp://remote-eu-west-reflector-1.default.svc.cluster.local:1935/live";
    assert!(
        cmdline.contains(&format!(
            "--upstream {reflector} --upstream {first_url} --upstream {second_url} "
        )),
        "the external upstreams in order, after the idle reflector level: {cmdline}"
    );
    assert!(cmdline.contains("--verify-key "), "{cmdline}");
    assert!(!cmdline.contains("--sign-key"), "{cmdline}");
    let status = &stream["status"];
    assert_eq!(in_use(&stream).as_deref(), Some(first_url.as_str()));
    assert_eq!(status["upstream"]["urls"][0]["relays"], 1);
    assert_eq!(status["endpoints"]["ingest"], "");
    assert!(status["origin"].is_null(), "{status:#}");
    assert_eq!(status["integrity"]["signer"], "upstream");
    assert_eq!(status["integrity"]["publicKey"], public.as_str());
    assert_eq!(condition(&stream, "UpstreamFailover").1, "Preferred");
    eprintln!(
        "Ready on the first upstream after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Two viewers for 16 s, verifying what they get; the first remote origin dies at 5 s.
    let flv = status["endpoints"]["playback"][0]["httpFlv"]
        .as_str()
        .expect("httpFlv");
    let host = flv
        .strip_prefix("http://")
        .and_then(|r| r.split_once(':'))
        .map(|(h, _)| h.to_string())
        .expect("the playback host");
    let trace = dir.join("viewers.csv");
    std::fs::write(
        &trace,
        "# livetrace v1\nbroadcast_id,t_s,region,viewers\nb,0,r,2\nb,16,r,2\n",
    )
    .expect("trace");
    let report = dir.join("viewers.json");
    let replay_log = std::fs::File::create(dir.join("replay.log")).expect("log");
    let mut replay = Command::new(built("surge-load"))
        .args(["replay", "--target", &format!("r={host}:1935:8080")])
        .args(["--protocol", "mix", "--stream", "live/remote"])
        .args(["--speed", "1"])
        .arg("--trace")
        .arg(&trace)
        .arg("--verify-key")
        .arg(&public_file)
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(replay_log)
        .spawn()
        .expect("surge-load replay starts");
    let replay_started = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let _ = first.0.kill();
    let _ = first.0.wait();
    let killed_at = replay_started.elapsed().as_secs_f64();

    let after = wait_for(
        "the second upstream in use",
        &api,
        &op,
        Duration::from_secs(20),
        |s| in_use(s).as_deref() == Some(second_url.as_str()),
    );
    let (on, reason, message) = condition(&after, "UpstreamFailover");
    assert_eq!((on.as_str(), reason.as_str()), ("True", "FailedOver"));
    assert!(message.contains("spec.upstream[1]"), "{message}");
    assert_eq!(after["status"]["upstream"]["urls"][0]["relays"], 0);
    assert_eq!(after["status"]["upstream"]["urls"][1]["relays"], 1);
    eprintln!(
        "failed over {:.1} s after the kill",
        replay_started.elapsed().as_secs_f64() - killed_at
    );

    let done = replay.wait().expect("replay ends");
    assert!(done.success(), "replay failed: see {}", dir.display());
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    // Frames kept coming after the kill, to both viewers, all of them verified.
    let timeline = report["timeline"].as_array().expect("timeline");
    let frames_after: u64 = timeline
        .iter()
        .filter(|p| p["t_s"].as_f64().unwrap_or(0.0) > killed_at + 2.0)
        .map(|p| p["frames"].as_u64().unwrap_or(0))
        .sum();
    let last = timeline.last().expect("a timeline point");
    let integrity = &report["integrity"];
    let n = |k: &str| integrity[k].as_u64().unwrap_or(u64::MAX);
    eprintln!(
        "viewers: {} frames after the kill (+2 s), {} disconnects, {} errors, verified {} failed {} unverified {} (by reason {})",
        frames_after,
        report["details"]["disconnects"],
        report["errors"],
        n("verified"),
        n("failed"),
        n("unverified"),
        integrity["failures_by_reason"]
    );
    assert!(frames_after >= 100, "{frames_after} frames: {timeline:#?}");
    assert_eq!(last["viewers"], 2, "both viewers play at the end: {last:#}");
    assert_eq!(report["details"]["disconnects"], 0, "{report:#}");
    // The group the first origin was sending when it died never gets its signature: a
    // viewer that checks can fail that one group (the edge, which saw the break, does
    // not), and nothing after it.
    assert_eq!(n("unverified"), 0, "{integrity:#}");
    let groups_failed: u64 = integrity["failures_by_reason"]
        .as_object()
        .map(|m| {
            m.values()
                .map(|r| r["failures"].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    assert!(
        groups_failed <= 2,
        "one group per viewer at most: {integrity:#}"
    );
    let settled_after = |k: &str| -> u64 {
        timeline
            .iter()
            .filter(|p| p["t_s"].as_f64().unwrap_or(0.0) > killed_at + 5.0)
            .map(|p| p["integrity"][k].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(settled_after("failed"), 0, "{timeline:#?}");
    assert!(settled_after("verified") >= 100, "{timeline:#?}");
    let edge_failures = &after["status"]["conditions"];
    assert_ne!(
        condition(&after, "Degraded").1,
        "IntegrityFailure",
        "{edge_failures:#}"
    );
    assert!(op.log().contains("UpstreamFailover"), "{}", op.log());
    eprintln!(
        "local upstream test took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
