//! Interleaved chunk streams and extended timestamps work; every hostile input closes only its
//! own connection (with a log line) while a publisher and a player keep going.

mod common;

use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{
    CHUNK_SIZE, RtmpClient, audio_payload, video_payload, video_sequence_header,
};
use tokio::io::AsyncWriteExt;

/// Chunks of one message: a type-0 header then type-3 continuations (extended timestamp
/// repeated on each, as the spec says).
fn chunks(csid: u8, ts: u32, type_id: u8, msid: u32, payload: &[u8]) -> Vec<Vec<u8>> {
    let ext = ts >= 0x00ff_ffff;
    let mut out = Vec::new();
    for (i, part) in payload.chunks(CHUNK_SIZE as usize).enumerate() {
        let mut c = Vec::new();
        if i == 0 {
            c.push(csid);
            c.extend_from_slice(&ts.min(0x00ff_ffff).to_be_bytes()[1..]);
            c.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
            c.push(type_id);
            c.extend_from_slice(&msid.to_le_bytes());
        } else {
            c.push(0xc0 | csid);
        }
        if ext {
            c.extend_from_slice(&ts.to_be_bytes());
        }
        c.extend_from_slice(part);
        out.push(c);
    }
    out
}

async fn expect_video(player: &mut RtmpClient, want: &[u8], ts: u32) {
    loop {
        let m = player
            .next_message(Duration::from_secs(5))
            .await
            .expect("player still receiving");
        if m.type_id == 9 && m.payload.len() == want.len() {
            assert_eq!(&m.payload[..], want, "video payload intact");
            assert_eq!(m.timestamp, ts, "video timestamp");
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaving_publisher_and_hostile_inputs() {
    let relay = RelayProcess::start(&["--handshake-timeout", "1s"]);
    let (mut publisher, code) = RtmpClient::publish(relay.rtmp, "live", "x")
        .await
        .expect("publish");
    assert_eq!(code, "NetStream.Publish.Start");
    publisher
        .send_media(9, 0, video_sequence_header())
        .await
        .expect("seq");
    let (mut player, _) = RtmpClient::play(relay.rtmp, "live", "x")
        .await
        .expect("play");

    // A 10 000-byte keyframe in three chunks with a whole audio message between each chunk.
    let mut ts = 40;
    let send_interleaved = async |publisher: &mut RtmpClient, ts: u32, fill: u8| {
        let video = video_payload(true, &vec![fill; 10_000]);
        let audio = audio_payload(&[fill; 10]);
        let vchunks = chunks(6, ts, 9, 1, &video);
        let mut wire = Vec::new();
        for (i, c) in vchunks.iter().enumerate() {
            wire.extend_from_slice(c);
            if i + 1 < vchunks.len() {
                wire.extend(chunks(7, ts, 8, 1, &audio).concat());
            }
        }
        publisher.send_raw(&wire).await.expect("send interleaved");
        video
    };
    let video = send_interleaved(&mut publisher, ts, 1).await;
    expect_video(&mut player, &video, ts).await;

    // Extended timestamps (beyond 24 bits), repeated on continuation chunks.
    ts = 0x0100_0000;
    let video = send_interleaved(&mut publisher, ts, 2).await;
    expect_video(&mut player, &video, ts).await;

    // Now the hostile inputs, each on its own connection.
    let mut next_fill = 3u8;
    let mut check_still_serving = async |publisher: &mut RtmpClient, player: &mut RtmpClient| {
        ts += 40;
        let v = video_payload(true, &vec![next_fill; 5000]);
        next_fill = next_fill.wrapping_add(1);
        publisher
            .send_media(9, ts, v.clone())
            .await
            .expect("publisher still connected");
        expect_video(player, &v, ts).await;
    };

    // 1. Garbage instead of a handshake.
    let mut s = tokio::net::TcpStream::connect(relay.rtmp)
        .await
        .expect("tcp");
    s.write_all(&[0x42; 4096]).await.expect("send garbage");
    let mut c = RtmpClient::handshake(relay.rtmp)
        .await
        .expect("fresh handshake works");
    drop(c.stream.shutdown().await);
    check_still_serving(&mut publisher, &mut player).await;

    // 2. Truncated handshake: C0 and half of C1, then silence.
    let mut s2 = tokio::net::TcpStream::connect(relay.rtmp)
        .await
        .expect("tcp");
    s2.write_all(&[3u8; 700]).await.expect("send partial");
    check_still_serving(&mut publisher, &mut player).await;

    // 3. Absurd chunk size.
    let mut c = RtmpClient::handshake(relay.rtmp).await.expect("handshake");
    let mut m = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0];
    m.extend_from_slice(&0x7fff_fff0u32.to_be_bytes());
    c.send_raw(&m).await.expect("send");
    assert!(
        c.closed_within(Duration::from_secs(5)).await,
        "absurd chunk size closes"
    );
    check_still_serving(&mut publisher, &mut player).await;

    // 4. Absurd message length.
    let mut c = RtmpClient::handshake(relay.rtmp).await.expect("handshake");
    c.send_raw(&[0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0, 1, 2, 3])
        .await
        .expect("send");
    assert!(
        c.closed_within(Duration::from_secs(5)).await,
        "absurd length closes"
    );
    check_still_serving(&mut publisher, &mut player).await;

    // 5. An AMF type the session library cannot decode (AMF0 marker 0x0d, "unsupported",
    //    then an unknown marker 0x42) inside a connect command.
    let mut c = RtmpClient::handshake(relay.rtmp).await.expect("handshake");
    let mut body = vec![0x02, 0, 7];
    body.extend_from_slice(b"connect");
    body.extend_from_slice(&[0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x42, 0x0d]);
    let mut m = vec![0x03, 0, 0, 0];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(&[20, 0, 0, 0, 0]);
    m.extend_from_slice(&body);
    c.send_raw(&m).await.expect("send");
    assert!(
        c.closed_within(Duration::from_secs(5)).await,
        "bad AMF closes"
    );
    check_still_serving(&mut publisher, &mut player).await;

    // 6. Too many chunk streams.
    let mut c = RtmpClient::handshake(relay.rtmp).await.expect("handshake");
    let mut m = Vec::new();
    for csid in 3..63u8 {
        m.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 10, 9, 1, 0, 0, 0]);
        m.extend_from_slice(&[0x27; 10]);
    }
    for b in 0..=255u8 {
        m.extend_from_slice(&[0x00, b, 0, 0, 0, 0, 0, 10, 9, 1, 0, 0, 0]);
        m.extend_from_slice(&[0x27; 10]);
    }
    c.send_raw(&m).await.expect("send");
    assert!(
        c.closed_within(Duration::from_secs(5)).await,
        "chunk stream flood closes"
    );
    check_still_serving(&mut publisher, &mut player).await;

    // The truncated handshake was closed by the handshake timeout.
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tokio::io::AsyncReadExt::read(&mut s2, &mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(closed, "truncated handshake left open");

    // One log line per closed connection says why.
    for needle in [
        "invalid handshake",
        "handshake not completed within",
        "peer set chunk size",
        "exceeds limit",
        "more than 64 chunk streams",
    ] {
        let logged = common::wait_until(Duration::from_secs(3), || async {
            relay.log_contains(needle)
        })
        .await;
        assert!(logged, "no log line with {needle:?}:\n{}", relay.log_text());
    }
    assert!(
        relay.log_contains("closing on bad input: command"),
        "bad AMF not logged:\n{}",
        relay.log_text()
    );
}
