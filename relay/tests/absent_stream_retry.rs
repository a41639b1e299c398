//! An upstream that is up but does not have the stream yet (a replaced origin before the
//! publisher is back): the edge keeps asking on a short interval, so its viewer gets frames
//! soon after the publisher starts, however long the stream was absent before; and it asks a
//! bounded number of times, not in a hot loop.
//!
//! With the old schedule (every "not found" a failure: 250 ms doubling to 10 s) the edge's
//! attempts came 3.75 s and 7.75 s after its first one, then 15.75 s (each 0-20 % sooner by
//! jitter): a publisher starting 8 s after the first attempt got to the viewer 4.6 s later at
//! the least.

mod common;

use std::time::{Duration, Instant};

use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload, video_sequence_header};
use tokio_util::sync::CancellationToken;

/// Publishes 25 fps with a keyframe every 10 frames until cancelled.
fn spawn_publisher(mut c: RtmpClient, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let _ = c.send_media(9, 0, video_sequence_header()).await;
        let mut i = 0u32;
        while !stop.is_cancelled() {
            let frame = video_payload(i.is_multiple_of(10), &[i as u8; 500]);
            if c.send_media(9, i * 40, frame).await.is_err() {
                return;
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    })
}

fn refused_plays(origin: &RelayProcess) -> usize {
    origin
        .log
        .lock()
        .expect("log lock")
        .iter()
        .filter(|l| l.contains("play rejected"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_gets_frames_soon_after_a_late_publish_without_a_hot_loop() {
    let _serial = common::real_time_lock().await;
    let origin = RelayProcess::start(&["--tier", "origin"]);
    let edge = RelayProcess::edge_pulling_from(&origin, &[]);

    // The viewer's play starts the edge's pull; the origin has no such stream yet.
    let (mut viewer, code) = RtmpClient::play(edge.rtmp, "live", "s")
        .await
        .expect("play on the edge");
    assert!(
        !code.contains("NotFound") && !code.contains("Failed"),
        "{code}"
    );
    let pull_started = Instant::now();

    let absent_for = Duration::from_secs(8);
    tokio::time::sleep(absent_for).await;
    let refused = refused_plays(&origin);
    // 250-500 ms apart: 17-33 attempts in 8 s (fewer on a loaded machine), not hundreds.
    assert!(
        (8..=40).contains(&refused),
        "{refused} plays refused by the origin in {absent_for:?}:\n{}",
        edge.log_text()
    );

    let (publisher, code) = RtmpClient::publish(origin.rtmp, "live", "s")
        .await
        .expect("publish");
    assert_eq!(code, "NetStream.Publish.Start");
    let published = Instant::now();
    let stop = CancellationToken::new();
    let publishing = spawn_publisher(publisher, stop.clone());

    let first_frame = async {
        loop {
            let m = viewer.next_message(Duration::from_secs(10)).await?;
            if m.type_id == 9 && m.payload.get(1) == Some(&1) {
                return Ok::<_, String>(());
            }
        }
    };
    let got = tokio::time::timeout(Duration::from_secs(10), first_frame).await;
    let waited = published.elapsed();
    stop.cancel();
    let _ = publishing.await;
    assert!(
        matches!(got, Ok(Ok(()))),
        "no frame on the edge within 10 s of the publish ({got:?}); {:?} after the pull started:\n{}",
        pull_started.elapsed(),
        edge.log_text()
    );
    eprintln!(
        "{refused} plays refused in {absent_for:?}; first frame {waited:?} after the publish"
    );
    // The next attempt is at most 500 ms away; the rest is a connection and a keyframe.
    assert!(
        waited < Duration::from_millis(2500),
        "the edge's viewer waited {waited:?} after the publish:\n{}",
        edge.log_text()
    );
    assert!(
        edge.log_contains("does not have the stream yet"),
        "{}",
        edge.log_text()
    );
}
