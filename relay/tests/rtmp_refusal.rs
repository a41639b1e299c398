//! A relay with no room refuses an RTMP viewer with `NetStream.Play.Failed` whose description
//! says why, closes that one connection (one log line) and counts it in
//! `surge_relay_viewers_refused_total{protocol,reason}`; the viewer it has keeps playing.
//! Real processes: `surge-relay --max-viewers 1`, an ffmpeg publisher and an ffmpeg player.

mod common;
mod tree_common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, decode_command};
use surge_wire::amf0::Amf0Value;
use tree_common::publish_live;

/// `(code, description)` of the first onStatus after a play of `stream`.
async fn play_status(client: &mut RtmpClient, stream: &str) -> (String, String) {
    let sid = client.create_stream().await.expect("createStream");
    client
        .command(
            "play",
            3.0,
            Amf0Value::Null,
            vec![Amf0Value::Utf8String(stream.to_string())],
            sid,
        )
        .await
        .expect("send play");
    loop {
        let m = client
            .next_message(Duration::from_secs(10))
            .await
            .expect("onStatus before the relay closes");
        let Some((name, values)) = (m.type_id == 20)
            .then(|| decode_command(&m.payload))
            .flatten()
        else {
            continue;
        };
        if name != "onStatus" {
            continue;
        }
        let field = |key: &str| {
            values.iter().find_map(|v| match v {
                Amf0Value::Object(o) => match o.get(key) {
                    Some(Amf0Value::Utf8String(s)) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            })
        };
        return (
            field("code").unwrap_or_default(),
            field("description").unwrap_or_default(),
        );
    }
}

/// Reads until a media (audio or video) message arrives.
async fn gets_media(client: &mut RtmpClient, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        match client.next_message(Duration::from_secs(2)).await {
            Ok(m) if m.type_id == 8 || m.type_id == 9 => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

async fn refused(relay: &RelayProcess, protocol: &str) -> f64 {
    common::metric(
        relay.http,
        "surge_relay_viewers_refused_total",
        &[("protocol", protocol), ("reason", "full")],
    )
    .await
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_relay_refuses_an_rtmp_viewer_with_the_reason_and_closes_only_that_connection() {
    let relay = RelayProcess::start(&["--max-viewers", "1"]);
    let _publisher = publish_live(&relay, "s").await;

    let mut first = RtmpClient::connect(relay.rtmp, "live")
        .await
        .expect("connect");
    let (code, _) = play_status(&mut first, "s").await;
    assert!(
        code == "NetStream.Play.Reset" || code == "NetStream.Play.Start",
        "{code}"
    );
    assert!(gets_media(&mut first, Duration::from_secs(10)).await);
    assert_eq!(refused(&relay, "rtmp").await, 0.0);

    // The second viewer: told why, then the relay closes its connection.
    let mut second = RtmpClient::connect(relay.rtmp, "live")
        .await
        .expect("connect");
    let peer = second.stream.local_addr().expect("local addr");
    let (code, description) = play_status(&mut second, "s").await;
    assert_eq!(code, "NetStream.Play.Failed");
    assert_eq!(description, "relay full: 1 of 1 viewers");
    assert!(
        second.closed_within(Duration::from_secs(5)).await,
        "the relay keeps a refused viewer's connection open"
    );
    assert!(
        common::wait_until(Duration::from_secs(5), || async {
            !relay.close_lines(peer).is_empty()
        })
        .await
    );
    let lines = relay.close_lines(peer);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("INFO")
            && lines[0].contains("play of live/s refused: relay full: 1 of 1 viewers"),
        "{lines:?}"
    );
    assert_eq!(refused(&relay, "rtmp").await, 1.0);

    // A real player: ffmpeg fails at once and prints the relay's reason.
    let url = relay.rtmp_url("live", "s");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-rw_timeout", "10000000"])
            .args(["-i", &url, "-t", "1", "-f", "null", "-"])
            .stdin(Stdio::null())
            .output()
            .expect("ffmpeg is installed (scripts/install-deps)")
    })
    .await
    .expect("ffmpeg ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Server error: relay full: 1 of 1 viewers"),
        "{stderr}"
    );
    assert_eq!(refused(&relay, "rtmp").await, 2.0);

    // HTTP-FLV refusals count under their own protocol.
    let (status, head, _) = common::http_get(relay.http, "/live/s.flv").await;
    assert_eq!(status, 503, "{head}");
    assert_eq!(refused(&relay, "flv").await, 1.0);

    // The viewer the relay has keeps playing.
    assert!(gets_media(&mut first, Duration::from_secs(5)).await);
    assert_eq!(relay.viewers().await, 1);
}
