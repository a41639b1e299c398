//! The relay's `/metrics` on its admin port after a real publish and real plays (README,
//! "HTTP endpoints"): ffmpeg publishes to an origin; RTMP and HTTP-FLV viewers play from it
//! and from an edge pulling from it. Checked: the ingest bitrate in bit/s next to the
//! deprecated kbit/s gauge, `surge_build_info`, the join-time histogram (one sample per play,
//! each within what the client itself waited), the frame-delay histogram, the edge's upstream
//! connect histogram, and the `--metrics-label`s on every series.

mod common;
mod tree_common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::flv_reader::FlvReader;
use common::relay_process::RelayProcess;
use common::rtmp_client::RtmpClient;
use tree_common::ffmpeg_publish;

/// The longest any single wait in this test may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// `name=ADDR` from the relay's "listening" line.
fn listener(relay: &RelayProcess, name: &str) -> SocketAddr {
    let line = relay
        .log
        .lock()
        .expect("log lock")
        .iter()
        .find(|l| l.contains("listening"))
        .cloned()
        .expect("a listening line");
    let field = format!("{name}=");
    let rest = &line[line.find(&field).expect("field in the listening line") + field.len()..];
    rest[..rest.find(' ').unwrap_or(rest.len())]
        .parse()
        .expect("an address")
}

/// A relay with its admin endpoints on a port of their own; returns it and that port.
fn relay(extra: &[&str]) -> (RelayProcess, SocketAddr) {
    let mut args = vec![
        "--admin-listen",
        "127.0.0.1:0",
        "--metrics-label",
        "surge_namespace=media",
        "--metrics-label",
        "surge_stream=news",
    ];
    args.extend_from_slice(extra);
    let relay = RelayProcess::start(&args);
    // The start saw the line; the log may get it a moment later.
    let seen = (0..100).any(|_| {
        relay.log_contains("listening") || {
            std::thread::sleep(Duration::from_millis(20));
            false
        }
    });
    assert!(seen, "no listening line:\n{}", relay.log_text());
    let admin = listener(&relay, "admin_addr");
    (relay, admin)
}

/// Every sample of a scrape: `name{labels}` → value.
async fn scrape(admin: SocketAddr) -> BTreeMap<String, f64> {
    let (status, _, body) = common::http_get(admin, "/metrics").await;
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The value of the one sample named `name` whose labels include each of `labels`.
fn value(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(series, _)| {
            series
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('{'))
                .is_some_and(|rest| {
                    labels
                        .iter()
                        .all(|l| rest.split([',', '}']).any(|have| have == *l))
                })
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{name}{labels:?}: {} samples in {:#?}",
        found.len(),
        samples.keys().collect::<Vec<_>>()
    );
    found[0]
}

/// Plays over RTMP until the first video keyframe; returns the client and how long that took
/// from before the TCP connect.
async fn rtmp_play_until_keyframe(addr: SocketAddr) -> (RtmpClient, Duration) {
    let asked = Instant::now();
    let (mut client, code) = RtmpClient::play(addr, "live", "news").await.expect("play");
    assert!(code.starts_with("NetStream.Play."), "{code}");
    loop {
        let m = client.next_message(TIMEOUT).await.expect("media");
        if m.type_id == 9 && m.payload.first() == Some(&0x17) && m.payload.get(1) == Some(&1) {
            return (client, asked.elapsed());
        }
    }
}

/// Plays over HTTP-FLV until the first video keyframe tag; returns the reader and the wait.
async fn flv_play_until_keyframe(addr: SocketAddr) -> (FlvReader, Duration) {
    let asked = Instant::now();
    let mut flv = FlvReader::open(addr, "/live/news.flv").await;
    assert!(flv.head.starts_with("HTTP/1.1 200"), "{}", flv.head);
    let deadline = Instant::now() + TIMEOUT;
    while !flv
        .tag_list()
        .iter()
        .any(|t| t.type_id == 9 && t.data.first() == Some(&0x17) && t.data.get(1) == Some(&1))
    {
        assert!(Instant::now() < deadline, "no keyframe over HTTP-FLV");
        flv.read_for(Duration::from_millis(20)).await;
    }
    (flv, asked.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_real_publish_and_plays() {
    let (origin, origin_admin) = relay(&["--region", "eu-west"]);
    let _ffmpeg = ffmpeg_publish(&origin.rtmp_url("live", "news"));
    let live = common::wait_until(TIMEOUT, || async {
        common::stats(origin_admin).await["streams"][0]["ingest_kbps"]
            .as_u64()
            .unwrap_or(0)
            > 0
    })
    .await;
    assert!(live, "publisher never went live:\n{}", origin.log_text());

    // One RTMP and one HTTP-FLV viewer at the origin; an edge pulls from it (a third play
    // there, over RTMP) for one RTMP viewer of its own.
    let (mut rtmp_viewer, rtmp_wait) = rtmp_play_until_keyframe(origin.rtmp).await;
    let (mut flv_viewer, flv_wait) = flv_play_until_keyframe(origin.http).await;
    let upstream = format!("rtmp://{}/live", origin.rtmp);
    let (edge, edge_admin) = relay(&["--tier", "edge", "--upstream", &upstream]);
    let edge_asked = Instant::now();
    let (mut edge_viewer, edge_wait) = rtmp_play_until_keyframe(edge.rtmp).await;
    assert!(edge_asked.elapsed() < TIMEOUT);

    // Keep reading past the next keyframe (one a second): frame delays are sampled there.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        tokio::join!(
            async {
                let _ = rtmp_viewer.next_message(Duration::from_millis(50)).await;
            },
            async {
                let _ = edge_viewer.next_message(Duration::from_millis(50)).await;
            },
            flv_viewer.read_for(Duration::from_millis(50)),
        );
    }

    let m = scrape(origin_admin).await;
    let stream = ["app=\"live\"", "stream=\"news\""];
    let bps = value(&m, "surge_relay_ingest_bits_per_second", &stream);
    let kbps = value(&m, "surge_relay_ingest_kbps", &stream);
    eprintln!("ingest: {bps} bit/s, {kbps} kbit/s");
    assert!(kbps > 0.0);
    assert!(
        bps >= kbps * 1000.0 && bps < (kbps + 1.0) * 1000.0,
        "{bps} bit/s is not 1000 x {kbps} kbit/s"
    );

    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        value(&m, "surge_build_info", &["component=\"relay\"", &version]),
        1.0
    );

    // Join time: one sample per play, each within what its client waited (that includes the
    // TCP connect and, over RTMP, the handshake and commands).
    let rtmp = ["protocol=\"rtmp\""];
    let flv = ["protocol=\"flv\""];
    let count = |m: &BTreeMap<String, f64>, name: &str, l: &[&str]| {
        value(m, &format!("surge_relay_{name}_seconds_count"), l)
    };
    let sum = |m: &BTreeMap<String, f64>, name: &str, l: &[&str]| {
        value(m, &format!("surge_relay_{name}_seconds_sum"), l)
    };
    assert_eq!(
        count(&m, "play_start", &rtmp),
        2.0,
        "the viewer and the edge"
    );
    assert_eq!(count(&m, "play_start", &flv), 1.0);
    let flv_sum = sum(&m, "play_start", &flv);
    eprintln!("play_start flv: {flv_sum} s (client waited {flv_wait:?})");
    assert!(
        flv_sum > 0.0 && flv_sum <= flv_wait.as_secs_f64(),
        "{flv_sum}"
    );
    // The edge's play began when it connected: at most the edge viewer's whole wait.
    let rtmp_sum = sum(&m, "play_start", &rtmp);
    let rtmp_bound = rtmp_wait + edge_wait;
    eprintln!("play_start rtmp: {rtmp_sum} s (clients waited {rtmp_bound:?})");
    assert!(rtmp_sum > 0.0 && rtmp_sum <= rtmp_bound.as_secs_f64());
    assert!(
        value(
            &m,
            "surge_relay_play_start_seconds_bucket",
            &["le=\"+Inf\"", rtmp[0]]
        ) == 2.0,
        "the +Inf bucket holds every sample"
    );

    // Frame delay: sampled at the keyframes after each viewer's first, on loopback well under
    // a second each.
    let delays = count(&m, "frame_delay", &rtmp);
    let delay_sum = sum(&m, "frame_delay", &rtmp);
    eprintln!("frame_delay rtmp: {delays} samples, {delay_sum} s");
    assert!(delays > 0.0);
    assert!(delay_sum >= 0.0 && delay_sum / delays < 1.0, "{delay_sum}");
    assert!(count(&m, "frame_delay", &flv) > 0.0);

    // Every series carries the constant labels, tier and region.
    for series in m.keys() {
        for label in [
            "surge_namespace=\"media\"",
            "surge_stream=\"news\"",
            "tier=\"origin\"",
            "region=\"eu-west\"",
        ] {
            assert!(series.contains(label), "{series} lacks {label}");
        }
    }

    // The edge: one connect to its upstream, timed to its first frame; its own viewer's join.
    let e = scrape(edge_admin).await;
    let connects = value(&e, "surge_relay_upstream_connect_seconds_count", &[]);
    let connect_time = value(&e, "surge_relay_upstream_connect_seconds_sum", &[]);
    eprintln!("edge upstream_connect: {connects} x, {connect_time} s");
    assert_eq!(connects, 1.0);
    assert!(connect_time > 0.0 && connect_time <= edge_wait.as_secs_f64());
    assert_eq!(count(&e, "play_start", &rtmp), 1.0);
    assert!(count(&e, "frame_delay", &rtmp) > 0.0);
    assert!(e.keys().all(|s| s.contains("tier=\"edge\"")));
}
