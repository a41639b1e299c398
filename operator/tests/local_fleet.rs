//! The local fleet runs a planned tree as real `surge-relay` processes on loopback addresses:
//! an origin and two edges from the operator's own builders, an ffmpeg publisher, then a
//! scale-down by deletion cost, a killed relay replaced, and a shutdown that leaves nothing.
//! Needs `cargo build -p surge-relay` first (the binary is another crate's) and ffmpeg.

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::publisher::ffmpeg_publish;
use common::{fixture, repo_root, target, tree_with};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use surge_operator::build::{build_deployment, build_service};
use surge_operator::config::OperatorConfig;
use surge_operator::crd::Stream;
use surge_operator::local::process::readyz;
use surge_operator::local::{Fleet, FleetConfig, FleetError, FleetStatus};
use surge_operator::scrape::Scraper;

const ORIGIN: &str = "talk-origin";
const EDGES: &str = "talk-eu-west-edge";
const READY_DELAY: Duration = Duration::from_secs(1);
/// The edges' upstream: the origin's Service, through its stand-in.
const ORIGIN_URL: &str = "rtmp://talk-origin.media.svc.cluster.local:1935/live";

fn relay_bin() -> PathBuf {
    let bin = repo_root().join("target/debug/surge-relay");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p surge-relay` first",
        bin.display()
    );
    bin
}

/// A region octet of this test run's own (127.120-179.x.x): apart from `surge-operator
/// local`'s default (200), the kwok cluster's 127.10 and the e2e scripts' 127.40-119.
fn first_octet(offset: u32) -> u8 {
    u8::try_from(120 + (std::process::id() + offset) % 60).expect("octet")
}

fn config(octet: u8, log_dir: &str) -> FleetConfig {
    let log_dir = std::env::temp_dir().join(format!("{log_dir}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&log_dir);
    let mut cfg = FleetConfig::new(relay_bin(), log_dir, READY_DELAY, Duration::from_secs(5));
    cfg.first_region_octet = octet;
    cfg.poll_interval = Duration::from_millis(200);
    cfg.restart_backoff = Duration::from_millis(300);
    cfg
}

/// The Stream's tiers (origin, eu-west edges) as the operator builds them, `edges` edges.
fn objects(stream: &Stream, edges: i32) -> Vec<(Service, Deployment)> {
    let cfg = OperatorConfig {
        relay_shutdown_grace_seconds: 1,
        ..OperatorConfig::default()
    };
    // At most `fanout` edges: the origin feeds them all, so the tree has no reflector level
    // (these tests are about the fleet's processes, not the tree's shape).
    let mut stream = stream.clone();
    let fanout = stream.spec.tree.fanout;
    for region in &mut stream.spec.regions {
        region.max_edges = fanout;
    }
    let stream = &stream;
    let t = target(stream);
    let mut tree = tree_with(stream, 0);
    tree.tiers
        .iter_mut()
        .filter(|tier| tier.name == EDGES)
        .for_each(|tier| tier.replicas = edges);
    tree.tiers
        .iter()
        .map(|tier| {
            (
                build_service(&t, tier, &cfg),
                build_deployment(&t, &stream.spec, tier, &cfg),
            )
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the pid exists.
    unsafe { libc::kill(libc::pid_t::try_from(pid).expect("pid"), 0) == 0 }
}

async fn wait_for(what: &str, fleet: &Fleet, ok: impl Fn(&FleetStatus) -> bool) -> FleetStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = fleet.observe();
        // Never Ready before the ready delay.
        for r in status.relays().filter(|r| r.ready) {
            assert!(r.age >= READY_DELAY, "{} Ready at {:?}", r.name, r.age);
        }
        if ok(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn arg_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_runs_scales_down_by_cost_replaces_a_crash_and_stops() {
    let stream = fixture("minimal.yaml");
    let octet = first_octet(0);
    let fleet = Fleet::with_config(config(octet, "surge-local-fleet")).expect("fleet");
    let report = fleet
        .apply(&objects(&stream, 2), &[], &[])
        .await
        .expect("apply");
    assert_eq!(
        report.started,
        [
            "talk-origin-1",
            "talk-eu-west-edge-1",
            "talk-eu-west-edge-2"
        ],
        "{report:?}"
    );
    assert!(report.failures.is_empty(), "{report:?}");

    // Each relay on its address: region 0 (eu-west), origin tier 0, edges tier 1.
    let status = fleet.observe();
    let origin_ip = Ipv4Addr::new(127, octet, 0, 1);
    let addresses: Vec<(String, Ipv4Addr)> = status
        .relays()
        .map(|r| (r.name.clone(), r.address))
        .collect();
    assert_eq!(
        addresses,
        [
            ("talk-origin-1".to_string(), origin_ip),
            (
                "talk-eu-west-edge-1".to_string(),
                Ipv4Addr::new(127, octet, 1, 1)
            ),
            (
                "talk-eu-west-edge-2".to_string(),
                Ipv4Addr::new(127, octet, 1, 2)
            ),
        ]
    );
    let origin = &status.deployment(ORIGIN).expect("origin").relays[0];
    assert_eq!(origin.http.to_string(), format!("{origin_ip}:8080"));
    for edge in &status.deployment(EDGES).expect("edges").relays {
        assert_eq!(
            arg_after(&edge.args, "--upstream"),
            [ORIGIN_URL],
            "Service names stay: the fleet's hosts file resolves them"
        );
        assert_eq!(
            arg_after(&edge.args, "--rtmp-listen"),
            [format!("{}:1935", edge.address)]
        );
    }
    let pids: Vec<u32> = status.relays().map(|r| r.pid).collect();

    // The origin answers /readyz at once, but counts as Ready only after the ready delay.
    let scraper = Scraper::new(Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let early = fleet.observe();
    let origin = &early.deployment(ORIGIN).expect("origin").relays[0];
    assert!(!origin.ready || origin.age >= READY_DELAY, "{origin:?}");
    // On its admin port (the pod's --admin-listen); the playback port has no /readyz.
    let admin_port = OperatorConfig::default().relay_admin_port;
    let origin_admin = std::net::SocketAddr::from((origin.address, admin_port));
    assert!(readyz(origin_admin, Duration::from_secs(2)).await);
    assert!(!readyz(origin.http, Duration::from_secs(2)).await);

    // Edges prewarm the stream: Ready once the origin has it.
    let _ffmpeg = ffmpeg_publish(&format!("rtmp://{origin_ip}:1935/live/talk"), 60);
    let status = wait_for("every relay Ready", &fleet, |s| {
        s.deployments.iter().all(|d| d.ready == d.desired)
    })
    .await;
    let origin = &status.deployment(ORIGIN).expect("origin").relays[0];
    assert!(origin.ready_after.expect("ready") >= READY_DELAY);
    // The operator's scraper reads an edge where the fleet says it is, pulling from the origin.
    let edge = &status.deployment(EDGES).expect("edges").relays[0];
    let stats = scraper
        .scrape(&edge.address.to_string(), admin_port)
        .await
        .expect("edge scrape");
    let pulled = stats
        .streams
        .iter()
        .find(|s| s.name == "talk")
        .expect("talk");
    let upstream = pulled.upstream.as_ref().expect("upstream");
    assert_eq!(upstream.url.as_deref(), Some(ORIGIN_URL));

    // Edges 2 -> 1: edge-1 has the lowest deletion cost (a ReplicaSet would otherwise take
    // the newest, edge-2); it gets SIGTERM, drains and exits.
    let victim = status
        .relays()
        .find(|r| r.name == "talk-eu-west-edge-1")
        .cloned()
        .expect("edge-1");
    let costs = [
        ("talk-eu-west-edge-1".to_string(), "0".to_string()),
        ("talk-eu-west-edge-2".to_string(), "1".to_string()),
    ];
    let report = fleet
        .apply(&objects(&stream, 1), &[], &costs)
        .await
        .expect("apply");
    assert_eq!(report.stopping, ["talk-eu-west-edge-1"]);
    assert!(report.started.is_empty());
    let status = fleet.observe();
    let edges = status.deployment(EDGES).expect("edges");
    assert_eq!((edges.desired, edges.running, edges.ready), (1, 1, 1));
    // Draining (not Ready), or already gone: it has no viewers to wait for.
    assert!(
        status
            .relays()
            .all(|r| r.name != victim.name || (r.draining && !r.ready)),
        "{status:#?}"
    );
    wait_for("edge-1 gone", &fleet, |s| {
        s.relays().all(|r| r.name != victim.name)
    })
    .await;
    assert!(!alive(victim.pid));
    let log = std::fs::read_to_string(&victim.log).expect("edge-1 log");
    assert!(log.contains("draining"), "SIGTERM, not SIGKILL: {log}");

    // A crash (SIGKILL) is noticed, counted and replaced, on the lowest free address.
    let survivor = fleet
        .observe()
        .relays()
        .find(|r| r.name == "talk-eu-west-edge-2")
        .map(|r| r.pid)
        .expect("edge-2 runs");
    // SAFETY: kill(2) on a pid this test's fleet started and still holds.
    unsafe { libc::kill(libc::pid_t::try_from(survivor).expect("pid"), libc::SIGKILL) };
    let status = wait_for("the crashed edge replaced and Ready", &fleet, |s| {
        s.deployment(EDGES)
            .is_some_and(|d| d.restarts == 1 && d.ready == 1 && d.relays.len() == 1)
    })
    .await;
    let edges = status.deployment(EDGES).expect("edges");
    assert_eq!(edges.relays[0].name, "talk-eu-west-edge-3");
    assert_eq!(edges.relays[0].address, Ipv4Addr::new(127, octet, 1, 1));
    let failure = edges.last_failure.as_ref().expect("the crash is recorded");
    assert_eq!(failure.relay, "talk-eu-west-edge-2");
    assert!(failure.to_string().contains("signal: 9"), "{failure}");

    // The edge tier goes away and comes back: its new relay gets a new name (edge-3 may still
    // be draining under its own).
    let origin_only: Vec<_> = objects(&stream, 1)
        .into_iter()
        .filter(|(_, d)| d.metadata.name.as_deref() == Some(ORIGIN))
        .collect();
    let report = fleet.apply(&origin_only, &[], &[]).await.expect("apply");
    assert_eq!(report.stopping, ["talk-eu-west-edge-3"]);
    assert_eq!(report.removed, [EDGES]);
    let report = fleet
        .apply(&objects(&stream, 1), &[], &[])
        .await
        .expect("apply");
    assert_eq!(report.started, ["talk-eu-west-edge-4"]);
    assert!(report.removed.is_empty());

    // Shutdown stops every relay it started; nothing is left.
    let status = fleet.observe();
    let all: Vec<u32> = pids
        .into_iter()
        .chain(status.relays().map(|r| r.pid))
        .collect();
    let running: Vec<u32> = status
        .relays()
        .filter(|r| !r.draining)
        .map(|r| r.pid)
        .collect();
    assert_eq!(running.len(), 2, "origin and edge-4: {status:#?}");
    let stopped = fleet.shutdown().await;
    assert!(running.iter().all(|p| stopped.contains(p)), "{stopped:?}");
    for pid in all {
        assert!(!alive(pid), "pid {pid} still runs");
    }
    assert!(fleet.observe().relays().next().is_none());
    assert!(matches!(
        fleet.apply(&objects(&stream, 1), &[], &[]).await,
        Err(FleetError::ShutDown)
    ));
    let _ = std::fs::remove_dir_all(&fleet.config().log_dir);
}

#[tokio::test]
async fn a_relay_that_cannot_start_is_a_one_line_failure() {
    let stream = fixture("minimal.yaml");
    let octet = first_octet(30);
    // Someone else holds the origin's RTMP address.
    let _squatter =
        std::net::TcpListener::bind((Ipv4Addr::new(127, octet, 0, 1), 1935)).expect("bind");
    let fleet = Fleet::with_config(config(octet, "surge-local-fleet-fail")).expect("fleet");
    let mut origin_only = objects(&stream, 0);
    origin_only.retain(|(_, d)| d.metadata.name.as_deref() == Some(ORIGIN));
    let report = fleet.apply(&origin_only, &[], &[]).await.expect("apply");
    assert!(report.started.is_empty(), "{report:?}");
    let [failure] = report.failures.as_slice() else {
        panic!("one failure: {report:?}");
    };
    let line = failure.to_string();
    assert!(line.starts_with("relay talk-origin-1: exited"), "{line}");
    assert!(
        line.contains("binding RTMP listener") && line.contains("in use"),
        "the relay's own words: {line}"
    );
    assert!(!line.contains('\n'));
    // Counted like a container restart (it may have been retried since).
    let restarts = fleet.observe().deployment(ORIGIN).map(|d| d.restarts);
    assert!(restarts >= Some(1), "{restarts:?}");
    fleet.shutdown().await;
    let _ = std::fs::remove_dir_all(&fleet.config().log_dir);

    let missing = Fleet::new(
        PathBuf::from("/nonexistent/surge-relay"),
        std::env::temp_dir(),
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let Err(e) = missing else {
        panic!("a missing binary is an error");
    };
    assert!(
        e.to_string().contains("/nonexistent/surge-relay not found"),
        "{e}"
    );
}
