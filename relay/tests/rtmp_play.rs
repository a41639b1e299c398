//! RTMP playback details: a player on a message stream other than 1 gets the shared frames with
//! its own stream id (only the 12-byte type-0 header is per viewer), and its end of stream; an
//! unknown stream on a relay without `--upstream` answers `NetStream.Play.StreamNotFound`.

mod common;

use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, video_payload, video_sequence_header};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_on_a_later_created_stream_gets_its_stream_id() {
    let relay = RelayProcess::start(&[]);
    let (mut publisher, _) = RtmpClient::publish(relay.rtmp, "live", "m")
        .await
        .expect("publish");
    publisher
        .send_media(9, 0, video_sequence_header())
        .await
        .expect("seq");
    let (mut player, code, sid) = RtmpClient::play_after_extra_streams(relay.rtmp, "live", "m", 2)
        .await
        .expect("play");
    assert_eq!(sid, 3);
    assert!(code.starts_with("NetStream.Play."), "{code}");
    // 6000-byte frames span two 4096-byte chunks: continuation chunks must still parse.
    let mut sent = Vec::new();
    for i in 0..5u32 {
        let f = video_payload(i == 0, &[i as u8; 6000]);
        publisher
            .send_media(9, i * 40, f.clone())
            .await
            .expect("video");
        sent.push(f);
    }
    let mut got = Vec::new();
    while got.len() < 6 {
        let m = player
            .next_message(Duration::from_secs(5))
            .await
            .expect("media");
        if m.type_id == 9 {
            assert_eq!(m.message_stream_id, 3, "media on the player's stream id");
            got.push(m.payload);
        }
    }
    assert_eq!(got[0], video_sequence_header());
    assert_eq!(&got[1..], &sent[..]);
    drop(publisher);
    loop {
        let m = player
            .next_message(Duration::from_secs(5))
            .await
            .expect("end of stream");
        if m.type_id == 20 && String::from_utf8_lossy(&m.payload).contains("UnpublishNotify") {
            assert_eq!(m.message_stream_id, 3);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_stream_without_upstream_is_not_found() {
    let relay = RelayProcess::start(&[]);
    // Another stream is live, so the relay has streams, just not this one.
    let (_publisher, _) = RtmpClient::publish(relay.rtmp, "live", "m")
        .await
        .expect("publish");
    let (_, code) = RtmpClient::play(relay.rtmp, "live", "nope")
        .await
        .expect("play answered");
    assert_eq!(code, "NetStream.Play.StreamNotFound");
    let (_, code) = RtmpClient::play(relay.rtmp, "other", "m")
        .await
        .expect("play answered");
    assert_eq!(
        code, "NetStream.Play.StreamNotFound",
        "same name, other app"
    );
    assert_eq!(common::stats(relay.http).await["relay"]["viewers"], 0);
}
