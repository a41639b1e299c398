//! Viewers land where there is room (README, "Placement"): three edges of one region with
//! `--max-viewers 40` under one reflector (and an origin), each a locator over the others. 100 viewers that ask
//! one edge's `/api/v1/locate` spread evenly over the three, none refused, none sent to a full
//! edge; HTTP-FLV plays on a locator redirect to the chosen edge; once every edge is at its high
//! mark the next viewer overflows to the tier above (the region's reflector); and an edge started later
//! takes the following viewers first.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::flv_reader::FlvReader;
use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload};

const REGION: &str = "eu";
const MAX_VIEWERS: &str = "40";

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn edge(parent: &RelayProcess, http: SocketAddr, peers: &str) -> RelayProcess {
    let upstream = format!("rtmp://{}/live", parent.rtmp);
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
            "--max-viewers",
            MAX_VIEWERS,
            "--placement-peer",
            peers,
        ],
        &[],
    )
}

#[derive(Debug)]
struct Placed {
    url: String,
    overflow: bool,
}

async fn locate(locator: SocketAddr) -> Result<Placed, (u16, String)> {
    let (status, _, body) =
        common::http_get(locator, "/api/v1/locate?app=live&stream=crowd&protocol=flv").await;
    let text = String::from_utf8_lossy(&body).into_owned();
    if status != 200 {
        return Err((status, text));
    }
    let v: serde_json::Value = serde_json::from_str(&text).expect("locate JSON");
    Ok(Placed {
        url: v["url"].as_str().expect("url").to_string(),
        overflow: v["overflow"].as_bool().expect("overflow"),
    })
}

/// Opens an HTTP-FLV viewer at `http://HOST:PORT/PATH` and waits for its first frames.
async fn play(url: &str) -> FlvReader {
    let rest = url.strip_prefix("http://").expect("http url");
    let (hostport, path) = rest.split_at(rest.find('/').expect("path"));
    let addr: SocketAddr = hostport.parse().expect("host:port");
    let mut v = FlvReader::open(addr, path).await;
    assert!(
        v.read_until_tags(4, Duration::from_secs(5)).await,
        "viewer at {url} got {:?}",
        v.tags().1
    );
    v
}

/// Status and headers of a GET whose body may never end (a live FLV stream).
async fn response_head(addr: SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("response head in time")
            .expect("read");
        assert!(n > 0, "closed before the head");
        raw.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, head)
}

async fn overflow_count(locator: SocketAddr) -> f64 {
    common::metric(
        locator,
        "surge_relay_placements_total",
        &[("outcome", "overflow")],
    )
    .await
    .unwrap_or(0.0)
}

async fn viewers(http: SocketAddr) -> u64 {
    common::stats(http).await["relay"]["viewers"]
        .as_u64()
        .expect("viewers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_spread_over_edges_with_room_then_overflow_then_reach_a_new_edge() {
    let _rt = common::real_time_lock().await;
    let origin = RelayProcess::start(&["--region", "us"]);
    let mut publisher = RtmpClient::publish_with_headers(origin.rtmp, "live", "crowd")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_payload(true, &[1; 100]))
        .await
        .expect("keyframe");

    let addrs: Vec<SocketAddr> = (0..4).map(|_| free_addr()).collect();
    let mut peers: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let reflector = RelayProcess::start(&[
        "--tier",
        "reflector",
        "--region",
        REGION,
        "--upstream",
        &format!("rtmp://{}/live", origin.rtmp),
    ]);
    peers.push(reflector.http.to_string());
    peers.push(origin.http.to_string());
    let peers = peers.join(",");
    let edges: Vec<RelayProcess> = addrs[..3]
        .iter()
        .map(|a| edge(&reflector, *a, &peers))
        .collect();
    let locator = edges[0].http;

    // The locator sees its peers within a poll or two; a redirect names another edge.
    let sees_all = common::wait_until(Duration::from_secs(10), || async {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..6 {
            if let Ok(p) = locate(locator).await {
                seen.insert(p.url);
            }
        }
        seen.len() == 3
    })
    .await;
    assert!(sees_all, "the locator never offered all three edges");
    // Those probes were placements without viewers; let a poll replace them with real counts.
    tokio::time::sleep(Duration::from_millis(2_200)).await;

    let mut players = Vec::new();
    for i in 0..100 {
        let p = locate(locator)
            .await
            .unwrap_or_else(|e| panic!("viewer {i} refused: {e:?}"));
        assert!(!p.overflow, "viewer {i} overflowed with room on the edges");
        players.push(play(&p.url).await);
    }
    let mut counts = Vec::new();
    for e in &edges {
        counts.push(viewers(e.http).await);
    }
    let mean = 100.0 / 3.0;
    for (i, c) in counts.iter().enumerate() {
        assert!(
            (*c as f64 - mean).abs() <= 0.15 * mean,
            "edge {i} holds {c} of 100 viewers (all: {counts:?}); want within 15% of {mean:.1}"
        );
    }
    for (i, c) in counts.iter().enumerate() {
        assert!(*c <= 40, "edge {i} went past its capacity: {counts:?}");
    }

    // A play on the locator itself is redirected to the chosen edge (or served here).
    let (status, head) = response_head(locator, "/live/crowd.flv").await;
    if status == 302 {
        assert!(head.contains("placed=1"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("x-surge-placement: edge"),
            "a redirect says how the viewer was placed: {head}"
        );
    } else {
        assert_eq!(status, 200, "{head}");
    }

    // Fill every edge to its high mark (0.9 of 40 = 36): the next viewer overflows upward.
    // (Overflow answers so far, if any, went to the probes above, which placed nobody.)
    let overflow_before = overflow_count(locator).await;
    loop {
        let p = locate(locator).await.expect("placed");
        if p.overflow {
            assert!(
                p.url.contains(&reflector.http.to_string()),
                "overflow went to {} instead of the region's reflector",
                p.url
            );
            players.push(play(&p.url).await);
            break;
        }
        players.push(play(&p.url).await);
        assert!(players.len() <= 120, "edges never reached their high mark");
    }
    for e in &edges {
        assert!(viewers(e.http).await <= 40);
    }
    assert!(
        viewers(reflector.http).await >= 1,
        "the overflow viewer plays on the reflector"
    );
    // ... and the reflector reports it as the region's viewer (the play URL said
    // `region=eu`), so the operator counts it in the region's demand.
    let crowd = &common::stats(reflector.http).await["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["name"] == "crowd")
        .cloned()
        .expect("the reflector carries the stream");
    assert_eq!(
        crowd["overflow_viewers"],
        serde_json::json!({ "eu": 1 }),
        "{crowd}"
    );
    for e in &edges {
        let stats = common::stats(e.http).await;
        assert!(
            !stats.to_string().contains("overflow_viewers"),
            "an edge's own viewers are not overflow: {stats}"
        );
    }
    assert_eq!(
        overflow_count(locator).await,
        overflow_before + 1.0,
        "the locator counts the overflow placement"
    );
    assert_eq!(
        common::metric(
            locator,
            "surge_relay_placements_total",
            &[("outcome", "refused")]
        )
        .await
        .unwrap_or(0.0),
        0.0,
        "nobody was refused while the tree had room"
    );

    // A fourth edge starts: once the locator sees it, new viewers go there first.
    let late = edge(&reflector, addrs[3], &peers);
    let late_addr = late.http.to_string();
    let mut reached = None;
    for _ in 0..50 {
        let p = locate(locator).await.expect("placed");
        let here = p.url.contains(&late_addr);
        players.push(play(&p.url).await);
        if here {
            reached = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = reached.expect("the new edge never got a viewer");
    assert!(
        !first.overflow,
        "a viewer placed on the new edge is not overflow"
    );
    assert!(viewers(late.http).await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_locate_queries_get_clear_errors() {
    let relay = RelayProcess::start(&["--placement-peer", "127.0.0.1:1"]);
    for (query, want) in [
        ("/api/v1/locate", 400),
        ("/api/v1/locate?app=live", 400),
        ("/api/v1/locate?app=live&stream=x&protocol=ftp", 400),
    ] {
        let (status, _, body) = common::http_get(relay.http, query).await;
        assert_eq!(status, want, "{query}: {}", String::from_utf8_lossy(&body));
    }
    // The relay is an origin (in its own view, after its first poll) without the stream.
    let not_found = common::wait_until(Duration::from_secs(5), || async {
        let (status, _, body) =
            common::http_get(relay.http, "/api/v1/locate?app=live&stream=x").await;
        status == 404 && String::from_utf8_lossy(&body).contains("live/x not found")
    })
    .await;
    assert!(not_found, "an unknown stream is not a 404");
    let plain = RelayProcess::start(&[]);
    let (status, _, body) = common::http_get(plain.http, "/api/v1/locate?app=live&stream=x").await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("--placement-peer"));
}
