//! Parents are chosen by room (README, "Placement"): edges given two reflectors with
//! `--parent-peer` and `--parent-fanout 2` pull from the reflector with the fewest children,
//! so four edges split two and two — no reflector feeds more than its fanout — and a fifth
//! edge, finding both full, falls back to `--upstream` (the origin). The edges count the
//! reflectors' children from what their siblings (`--sibling-peer`) say they pull from; no
//! edge is a locator.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload};

const REGION: &str = "eu";

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn reflector(origin: &RelayProcess) -> RelayProcess {
    let upstream = format!("rtmp://{}/live", origin.rtmp);
    RelayProcess::start(&[
        "--tier",
        "reflector",
        "--region",
        REGION,
        "--upstream",
        &upstream,
    ])
}

fn edge(origin: &RelayProcess, http: SocketAddr, parents: &str, siblings: &str) -> RelayProcess {
    let upstream = format!("rtmp://{}/live", origin.rtmp);
    let http = http.to_string();
    RelayProcess::spawn(
        &[
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            &http,
            "--tier",
            "edge",
            "--region",
            REGION,
            "--upstream",
            &upstream,
            "--prewarm",
            "live/crowd",
            "--parent-peer",
            parents,
            "--parent-fanout",
            "2",
            "--sibling-peer",
            siblings,
        ],
        &[],
    )
}

/// The RTMP address (`host:port`) an edge pulls `live/crowd` from, once it is pulling.
async fn pulling_from(http: SocketAddr) -> Option<String> {
    let stats = common::stats(http).await;
    let stream = stats["streams"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "crowd")?
        .clone();
    if stream["upstream"]["state"] != "connected" {
        return None;
    }
    let url = stream["upstream"]["url"].as_str()?;
    let rest = url.strip_prefix("rtmp://")?;
    Some(rest.split('/').next()?.to_string())
}

async fn wait_pulling(http: SocketAddr) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(from) = pulling_from(http).await {
            return from;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "edge {http} never started pulling"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_fill_parents_up_to_fanout_then_fall_back_to_the_origin() {
    let _rt = common::real_time_lock().await;
    let origin = RelayProcess::start(&["--region", "us"]);
    let mut publisher = RtmpClient::publish_with_headers(origin.rtmp, "live", "crowd")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_payload(true, &[1; 100]))
        .await
        .expect("keyframe");

    let reflectors = [reflector(&origin), reflector(&origin)];
    let parents = format!("{},{}", reflectors[0].http, reflectors[1].http);
    let addrs: Vec<SocketAddr> = (0..5).map(|_| free_addr()).collect();
    let siblings: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let siblings = siblings.join(",");

    // One edge after the other, each seen by the next before it starts (a poll a second).
    let mut edges = Vec::new();
    let mut parent_of = Vec::new();
    for addr in &addrs[..4] {
        let e = edge(&origin, *addr, &parents, &siblings);
        parent_of.push(wait_pulling(e.http).await);
        edges.push(e);
        tokio::time::sleep(Duration::from_millis(2_200)).await;
    }
    for (i, r) in reflectors.iter().enumerate() {
        let children = parent_of
            .iter()
            .filter(|p| **p == r.rtmp.to_string())
            .count();
        assert_eq!(
            children, 2,
            "reflector {i} feeds {children} edges (edges pull from {parent_of:?}; reflectors at {} and {})",
            reflectors[0].rtmp, reflectors[1].rtmp
        );
    }

    // Both reflectors hold their fanout: the fifth edge uses --upstream, the origin.
    let fifth = edge(&origin, addrs[4], &parents, &siblings);
    assert_eq!(
        wait_pulling(fifth.http).await,
        origin.rtmp.to_string(),
        "with every parent full the edge pulls from the origin"
    );
    assert!(
        fifth.log_contains("choosing a parent with room"),
        "{}",
        fifth.log_text()
    );
    let (status, _, _) = common::http_get(fifth.http, "/api/v1/locate?app=live&stream=crowd").await;
    assert_eq!(
        status, 404,
        "an edge with only parents and siblings is no locator"
    );
}
