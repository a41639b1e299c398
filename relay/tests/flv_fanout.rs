//! HTTP-FLV viewers on the plain HTTP port are written by the stream's shared fan-out tasks,
//! as RTMP viewers are: many viewers in one group get identical bytes (the FLV header,
//! metadata, sequence headers and the GOP cache at join, then every frame once, in order, then
//! the last chunk when the stream ends); a viewer that stops reading is closed as a slow
//! viewer and holds up nobody; an HTTP/1.0 viewer gets the same tags unchunked.

mod common;

use std::time::Duration;

use common::flv_reader::FlvReader;
use common::numbered_frames::{frame_body, now_ms, parse_video};
use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, audio_payload, video_payload};
use tokio::io::AsyncWriteExt;

const READERS: usize = 30;
/// Frames published before the viewers join (the GOP cache they get at once).
const CACHED: u32 = 10;
const FRAMES: u32 = 150;
const GOP: u32 = 25;
const FRAME_BYTES: usize = 3000;

struct Watched {
    head: String,
    body: Vec<u8>,
    /// Frame numbers of the video tags, in order.
    video: Vec<u32>,
    /// Tag types of the first five tags.
    first_types: Vec<u8>,
    max_lag_ms: u64,
    last_chunk: bool,
}

/// Reads until the response ends, noting each live frame's lag as it arrives.
async fn watch(mut r: FlvReader) -> Watched {
    let mut seen = 0;
    let mut max_lag_ms = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let ended = r.read_for(Duration::from_millis(10)).await;
        let tags = r.tag_list();
        for t in &tags[seen..] {
            if let Some((seq, sent)) = parse_video(&t.data).filter(|_| t.type_id == 9)
                && seq >= CACHED
            {
                max_lag_ms = max_lag_ms.max(now_ms().saturating_sub(sent));
            }
        }
        seen = tags.len();
        if ended || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    let tags = r.tag_list();
    Watched {
        head: r.head.to_ascii_lowercase(),
        body: r.body(),
        video: tags
            .iter()
            .filter(|t| t.type_id == 9)
            .filter_map(|t| parse_video(&t.data).map(|(seq, _)| seq))
            .collect(),
        first_types: tags.iter().take(5).map(|t| t.type_id).collect(),
        max_lag_ms,
        last_chunk: r.ended_with_last_chunk(),
    }
}

async fn publish_frame(p: &mut RtmpClient, i: u32) {
    let ts = i * 40;
    p.send_media(
        9,
        ts,
        video_payload(i.is_multiple_of(GOP), &frame_body(i, FRAME_BYTES)),
    )
    .await
    .expect("video");
    p.send_media(8, ts, audio_payload(&i.to_be_bytes()))
        .await
        .expect("audio");
}

async fn identical_bytes_and_a_stalled_viewer_isolated(fanout_tasks: &str) {
    let relay = RelayProcess::start(&[
        "--fanout-tasks",
        fanout_tasks,
        "--slow-viewer-timeout",
        "2s",
        "--viewer-send-buffer-bytes",
        "65536",
    ]);
    let mut publisher = RtmpClient::publish_with_headers(relay.rtmp, "live", "g")
        .await
        .expect("publish");
    for i in 0..CACHED {
        publish_frame(&mut publisher, i).await;
    }
    // Everyone joins within one GOP, so everyone's first batch is the same.
    let mut readers = Vec::new();
    for _ in 0..READERS {
        readers.push(tokio::spawn(watch(
            FlvReader::open(relay.http, "/live/g.flv").await,
        )));
    }
    let old_http = tokio::spawn(watch(
        FlvReader::open_with(relay.http, "/live/g.flv", "HTTP/1.0").await,
    ));
    // Sends its request and never reads (a small receive buffer fills at once).
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut stalled = socket.connect(relay.http).await.expect("connect");
    stalled
        .write_all(b"GET /live/g.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let r = &relay;
    let all_in = common::wait_until(Duration::from_secs(5), || async {
        common::stats(r.http).await["relay"]["viewers"] == READERS + 2
    })
    .await;
    assert!(all_in, "viewers not all counted:\n{}", relay.log_text());

    let start = tokio::time::Instant::now();
    for i in CACHED..FRAMES {
        publish_frame(&mut publisher, i).await;
        tokio::time::sleep_until(start + Duration::from_millis(u64::from(i - CACHED + 1) * 40))
            .await;
    }
    let mid = common::stats(relay.http).await;
    drop(publisher);

    let mut watched = Vec::new();
    for r in readers {
        watched.push(r.await.expect("reader task"));
    }
    let first = &watched[0];
    assert!(first.head.starts_with("http/1.1 200 ok"), "{}", first.head);
    for h in [
        "content-type: video/x-flv",
        "cache-control: no-cache",
        "access-control-allow-origin: *",
        "transfer-encoding: chunked",
        // Only the relay's own writer says so (the HTTP server's route keeps connections open).
        "connection: close",
    ] {
        assert!(first.head.contains(h), "no {h} in\n{}", first.head);
    }
    // The join burst: FLV header, metadata, video and audio sequence headers, then the GOP
    // from its keyframe.
    assert!(first.body.starts_with(&surge_wire::flv::FILE_HEADER));
    assert_eq!(first.first_types, vec![18, 9, 8, 9, 8], "first tags");
    assert_eq!(
        first.video,
        (0..FRAMES).collect::<Vec<_>>(),
        "frames in order, once"
    );
    for (i, w) in watched.iter().enumerate() {
        assert_eq!(
            w.body, first.body,
            "--fanout-tasks {fanout_tasks}: viewer {i} got other bytes"
        );
        assert!(
            w.last_chunk,
            "viewer {i}: the response did not end with its last chunk"
        );
    }
    let worst = watched.iter().map(|w| w.max_lag_ms).max().unwrap_or(0);
    eprintln!(
        "--fanout-tasks {fanout_tasks}: worst lag over {READERS} HTTP-FLV viewers: {worst} ms"
    );
    assert!(
        worst < 1000,
        "a stalled viewer must not delay the others (worst lag {worst} ms, slow-viewer timeout 2 s)"
    );

    let old = old_http.await.expect("HTTP/1.0 reader");
    assert!(old.head.starts_with("http/1.0 200 ok"), "{}", old.head);
    assert!(!old.head.contains("transfer-encoding"), "{}", old.head);
    assert_eq!(old.body, first.body, "HTTP/1.0: the same tags, unchunked");

    assert_eq!(
        mid["relay"]["viewers"],
        READERS + 1,
        "the stalled viewer still counted after the slow-viewer timeout"
    );
    assert!(
        relay.log_contains("http connection closed reason=slow viewer"),
        "no slow-viewer close:\n{}",
        relay.log_text()
    );
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flv_viewers_in_one_fanout_task_get_identical_bytes_and_a_stalled_one_is_closed() {
    let _serial = common::real_time_lock().await;
    identical_bytes_and_a_stalled_viewer_isolated("1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flv_viewers_on_their_own_tasks_get_the_same() {
    let _serial = common::real_time_lock().await;
    identical_bytes_and_a_stalled_viewer_isolated("0").await;
}
