//! The local fleet's Services follow its relays, as DNS and kube-proxy do in a cluster: a
//! hostPort Stream (every edge a locator over its region's headless peers Service) run as
//! real relays, published to through the ingest stand-in.
//! - an edge started after the first one is seen by the first one's locator (the peers name
//!   resolves from the hosts file, rewritten as relays come);
//! - the playback stand-in forwards connections to both Ready edges, and after a scale-down
//!   every new connection still succeeds, on the edge that stays.
//!
//! Needs `cargo build -p surge-relay` first (the binary is another crate's) and ffmpeg.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::local_api::http_get_status;
use common::publisher::ffmpeg_publish;
use common::{repo_root, target, tree_with};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use surge_operator::build::{build_deployment, build_peers_service, build_service};
use surge_operator::config::OperatorConfig;
use surge_operator::crd::Stream;
use surge_operator::labels::TierKind;
use surge_operator::local::{Fleet, FleetConfig, FleetStatus};

const READY_DELAY: Duration = Duration::from_millis(500);

const STREAM: &str = "apiVersion: surge.dev/v1alpha1
kind: Stream
metadata:
  name: cast
  namespace: media
  uid: 5e1f0c2a-1111-2222-3333-444455556666
spec:
  origin:
    region: eu
  regions:
    - name: eu
  placement:
    exposure: hostPort
";

fn relay_bin() -> PathBuf {
    let bin = repo_root().join("target/debug/surge-relay");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p surge-relay` first",
        bin.display()
    );
    bin
}

/// A region octet of this test's own (127.60-69.x.x: apart from local_fleet's 120-179,
/// local_cli's 180-194, the default 200 and the kwok cluster's 127.10).
fn octet() -> u8 {
    u8::try_from(60 + std::process::id() % 10).expect("octet")
}

/// The Stream's tiers with `edges` edges, and its headless peers Services.
fn objects(stream: &Stream, edges: i32) -> (Vec<(Service, Deployment)>, Vec<Service>) {
    let cfg = OperatorConfig {
        relay_shutdown_grace_seconds: 1,
        ..OperatorConfig::default()
    };
    let t = target(stream);
    let mut tree = tree_with(stream, 0);
    for tier in tree.tiers.iter_mut().filter(|t| t.kind == TierKind::Edge) {
        tier.replicas = edges;
    }
    let tiers = tree
        .tiers
        .iter()
        .map(|tier| {
            (
                build_service(&t, tier, &cfg),
                build_deployment(&t, &stream.spec, tier, &cfg),
            )
        })
        .collect();
    let peers = tree
        .peers_services
        .iter()
        .map(|p| build_peers_service(&t, p, &cfg))
        .collect();
    (tiers, peers)
}

async fn wait_for(what: &str, fleet: &Fleet, ok: impl Fn(&FleetStatus) -> bool) -> FleetStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = fleet.observe();
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

/// FLV viewers of `cast` an edge reports on its admin port (the relays' `--admin-listen`,
/// which no Service stand-in forwards).
fn flv_viewers(edge: Ipv4Addr) -> Option<u64> {
    let admin = SocketAddr::from((edge, OperatorConfig::default().relay_admin_port));
    let (code, body) = http_get_status(admin, "/api/v1/streams")?;
    // The body may be chunked: find the JSON object.
    let start = body.find('{')?;
    let end = body.rfind('}')?;
    let v: serde_json::Value = serde_json::from_str(&body[start..=end]).ok()?;
    let streams = v["streams"].as_array()?;
    (code == 200).then(|| {
        streams
            .iter()
            .filter(|s| s["name"] == "cast")
            .filter_map(|s| s["viewers"]["flv"].as_u64())
            .sum()
    })
}

/// Plays `cast` through `front` (the connection kept in `held`) and names the edge whose
/// admin port counts the new viewer.
fn played_on(front: SocketAddr, edges: &[Ipv4Addr], held: &mut Vec<TcpStream>) -> Option<String> {
    let before: Vec<u64> = edges.iter().map(|e| flv_viewers(*e).unwrap_or(0)).collect();
    let mut s = TcpStream::connect(front).ok()?;
    // Served where it lands: no locator redirect.
    write!(
        s,
        "GET /live/cast.flv?placed=1 HTTP/1.1\r\nHost: {front}\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    if &head[9..12] != b"200" {
        return None;
    }
    held.push(s);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        for (edge, before) in edges.iter().zip(&before) {
            if flv_viewers(*edge).is_some_and(|n| n > *before) {
                return Some(edge.to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Where the locator at `http` places the next viewer.
fn located(http: SocketAddr) -> Option<String> {
    let (code, body) = http_get_status(http, "/api/v1/locate?app=live&stream=cast&protocol=flv")?;
    let start = body.find('{')?;
    let end = body.rfind('}')?;
    let v: serde_json::Value = serde_json::from_str(&body[start..=end]).ok()?;
    (code == 200).then(|| v["url"].as_str().map(str::to_string))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_follow_the_fleet_names_and_stand_ins() {
    let stream: Stream = serde_saphyr::from_str(STREAM).expect("stream");
    let o = octet();
    let log_dir = std::env::temp_dir().join(format!("surge-local-services-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&log_dir);
    let mut cfg = FleetConfig::new(relay_bin(), log_dir, READY_DELAY, Duration::from_secs(5));
    cfg.first_region_octet = o;
    cfg.poll_interval = Duration::from_millis(200);
    let fleet = Fleet::with_config(cfg).expect("fleet");

    let (tiers, peers) = objects(&stream, 1);
    let report = fleet.apply(&tiers, &peers, &[]).await.expect("apply");
    assert!(report.failures.is_empty(), "{report:?}");
    let status = fleet.observe();
    // Stand-ins: the ingest (origin Service) and the playback (edge Service), on .0; the
    // reflector levels laid out for maxEdges have theirs, with no relay behind them yet.
    let ingest = Ipv4Addr::new(127, o, 0, 0);
    let playback = Ipv4Addr::new(127, o, 1, 0);
    let fronts: Vec<Ipv4Addr> = status.services.iter().map(|s| s.address).collect();
    assert!(fronts.contains(&ingest) && fronts.contains(&playback));
    let idle: Vec<&str> = status
        .services
        .iter()
        .filter(|s| s.address != ingest && s.address != playback)
        .inspect(|s| assert!(s.backends.is_empty(), "{s:?}"))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        idle,
        ["cast-eu-reflector-1", "cast-eu-reflector-2"],
        "{:?}",
        status.services
    );
    let edge_tier = status
        .deployments
        .iter()
        .find(|d| d.tier == TierKind::Edge)
        .expect("edge tier");
    assert_eq!(edge_tier.service_address, Some(playback));
    // Service names reach the relays unchanged, with the hosts file to resolve them.
    let first = &edge_tier.relays[0];
    let peer_flags: Vec<&String> = first
        .args
        .windows(2)
        .filter(|w| w[0] == "--placement-peer")
        .map(|w| &w[1])
        .collect();
    assert!(
        !peer_flags.is_empty() && peer_flags.iter().all(|p| p.contains(".svc.")),
        "{:?}",
        first.args
    );
    let hosts = fleet.config().hosts_file.clone();
    assert!(first.args.contains(&hosts.display().to_string()));

    // The publisher goes through the ingest stand-in, once a Ready origin is behind it.
    wait_for("origin Ready", &fleet, |s| {
        s.services
            .iter()
            .any(|f| f.address == ingest && !f.backends.is_empty())
    })
    .await;
    let _ffmpeg = ffmpeg_publish(&format!("rtmp://{ingest}:1935/live/cast"), 60);
    wait_for("origin and edge Ready", &fleet, |s| {
        s.deployments.iter().all(|d| d.ready == d.desired)
    })
    .await;
    let first_http = SocketAddr::from((Ipv4Addr::new(127, o, 1, 1), 8080));
    let own = format!("127.{o}.1.1:8080");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !located(first_http).is_some_and(|u| u.contains(&own)) {
        assert!(
            Instant::now() < deadline,
            "the lone edge does not place on itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A second edge, started after the first: the first one's locator sees it.
    let (tiers, peers) = objects(&stream, 2);
    fleet.apply(&tiers, &peers, &[]).await.expect("apply");
    wait_for("two edges Ready", &fleet, |s| {
        s.deployments.iter().all(|d| d.ready == d.desired)
    })
    .await;
    let text = std::fs::read_to_string(&hosts).expect("hosts file");
    assert!(
        text.lines()
            .any(|l| l.contains("peers") && l.contains(&format!("127.{o}.1.2"))),
        "{text}"
    );
    let second = format!("127.{o}.1.2:8080");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // Each placement counts on the chosen edge, so the locator soon picks the other.
        if located(first_http).is_some_and(|u| u.contains(&second)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first edge's locator never placed on the later edge"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The playback stand-in spreads connections over both Ready edges.
    let front = SocketAddr::from((playback, 8080));
    let edges = [Ipv4Addr::new(127, o, 1, 1), Ipv4Addr::new(127, o, 1, 2)];
    let mut held = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        seen.extend(played_on(front, &edges, &mut held));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    // The stand-in forwards the playback port only: the admin paths are not behind it.
    assert_eq!(
        http_get_status(front, "/api/v1/streams").map(|(code, _)| code),
        Some(404)
    );
    drop(held);

    // Scale down: the first edge (lowest deletion cost) leaves the stand-in before its
    // SIGTERM, so every new connection goes to the second one. A viewer keeps it draining
    // (and answering) for its shutdown grace meanwhile.
    let first_viewer = {
        let mut s = TcpStream::connect(first_http).expect("viewer on the first edge");
        write!(
            s,
            "GET /live/cast.flv HTTP/1.1\r\nHost: {first_http}\r\n\r\n"
        )
        .expect("play");
        let mut head = [0u8; 12];
        s.read_exact(&mut head)
            .expect("the first edge answers the play");
        s
    };
    let costs = [
        ("cast-eu-edge-1".to_string(), "0".to_string()),
        ("cast-eu-edge-2".to_string(), "1".to_string()),
    ];
    let (tiers, peers) = objects(&stream, 1);
    let report = fleet.apply(&tiers, &peers, &costs).await.expect("apply");
    assert_eq!(report.stopping, ["cast-eu-edge-1"], "{report:?}");
    let backends = |status: &FleetStatus| {
        status
            .services
            .iter()
            .find(|s| s.address == playback)
            .map(|s| s.backends.clone())
    };
    assert_eq!(
        backends(&fleet.observe()),
        Some(vec![Ipv4Addr::new(127, o, 1, 2)]),
        "a stopping edge left the stand-in"
    );
    let survivor = format!("127.{o}.1.2");
    let mut held = Vec::new();
    for _ in 0..6 {
        let by = played_on(front, &edges, &mut held);
        assert_eq!(
            by.as_deref(),
            Some(survivor.as_str()),
            "a failed connection"
        );
    }
    drop(held);
    drop(first_viewer);

    fleet.shutdown().await;
    assert!(
        TcpStream::connect_timeout(&front, Duration::from_millis(500)).is_err(),
        "the stand-in closes with the fleet"
    );
    let _ = std::fs::remove_dir_all(&fleet.config().log_dir);
}
