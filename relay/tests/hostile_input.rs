//! Interleaved chunk streams and extended timestamps work; every hostile input (including a
//! client that never reads its replies) closes only its own connection, with exactly one log
//! line saying why, while a publisher and a player keep going.

mod common;

use std::time::Duration;

use common::relay_process::RelayProcess;
use common::rtmp_client::{
    CHUNK_SIZE, RtmpClient, audio_payload, video_payload, video_sequence_header,
};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::time::RtmpTimestamp;
use surge_wire::amf0::Amf0Value;
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

/// `count` createStream commands, serialized back to back.
fn create_streams(c: &mut RtmpClient, first_txn: f64, count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let msg = RtmpMessage::Amf0Command {
            command_name: "createStream".into(),
            transaction_id: first_txn + i as f64,
            command_object: Amf0Value::Null,
            additional_arguments: vec![],
        };
        let payload = msg
            .into_message_payload(RtmpTimestamp::new(0), 0)
            .expect("payload");
        out.extend(
            c.ser
                .serialize(&payload, false, false)
                .expect("chunk")
                .bytes,
        );
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
    let mut hostile = vec![("garbage", s.local_addr().expect("addr"))];
    let mut c = RtmpClient::handshake(relay.rtmp)
        .await
        .expect("fresh handshake works");
    hostile.push(("handshake then close", c.stream.local_addr().expect("addr")));
    drop(c.stream.shutdown().await);
    check_still_serving(&mut publisher, &mut player).await;

    // 2. Truncated handshake: C0 and half of C1, then silence.
    let mut s2 = tokio::net::TcpStream::connect(relay.rtmp)
        .await
        .expect("tcp");
    s2.write_all(&[3u8; 700]).await.expect("send partial");
    hostile.push(("truncated handshake", s2.local_addr().expect("addr")));
    check_still_serving(&mut publisher, &mut player).await;

    // 3. Absurd chunk size.
    let mut c = RtmpClient::handshake(relay.rtmp).await.expect("handshake");
    hostile.push(("absurd chunk size", c.stream.local_addr().expect("addr")));
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
    hostile.push((
        "absurd message length",
        c.stream.local_addr().expect("addr"),
    ));
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
    hostile.push(("undecodable AMF", c.stream.local_addr().expect("addr")));
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
    hostile.push(("chunk stream flood", c.stream.local_addr().expect("addr")));
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

    // 7. A client that keeps sending commands and never reads the replies (tiny receive
    //    buffer): once its replies back up, the relay closes it.
    let mut deaf = RtmpClient::connect_small_buffer(relay.rtmp, "live", 4096)
        .await
        .expect("connect");
    let deaf_addr = deaf.stream.local_addr().expect("addr");
    hostile.push(("never reads its control replies", deaf_addr));
    let started = tokio::time::Instant::now();
    let mut sent = 0usize;
    let deaf_closed = loop {
        if !relay.close_lines(deaf_addr).is_empty() {
            break true;
        }
        // The relay gives a client --slow-viewer-timeout (10 s by default) to take its replies.
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        // 100 at a time, as the reading client below sends them: a burst the relay takes from
        // a client that reads; here only the replies piling up can get it closed.
        let batch = create_streams(&mut deaf, 10.0 + sent as f64, 100);
        match tokio::time::timeout(Duration::from_secs(1), deaf.stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += 100,
            Ok(Err(_)) => break true,
            // The relay stopped reading: only the log can tell whether it closed.
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert!(
        deaf_closed,
        "a client that never reads stayed connected after {sent} commands in {:?}:\n{}",
        started.elapsed(),
        relay.log_text()
    );
    eprintln!(
        "client that never reads: closed after {sent} createStream commands, {:?}",
        started.elapsed()
    );
    drop(deaf);
    check_still_serving(&mut publisher, &mut player).await;

    // The same commands from a client that reads its replies (100 in flight at a time) are
    // served: the relay tells a client that does not read from one that does.
    let mut reader = RtmpClient::connect(relay.rtmp, "live")
        .await
        .expect("connect");
    let reader_addr = reader.stream.local_addr().expect("addr");
    let rounds = (sent / 100).clamp(1, 40);
    for round in 0..rounds {
        let batch = create_streams(&mut reader, 10.0 + (round * 100) as f64, 100);
        reader.send_raw(&batch).await.expect("reading client sends");
        let mut results = 0;
        while results < 100 {
            let m = reader.next_message(Duration::from_secs(5)).await;
            let m = m.unwrap_or_else(|e| {
                panic!(
                    "reading client lost in round {round}: {e}\n{:?}",
                    relay.close_lines(reader_addr)
                )
            });
            if m.type_id == 20 {
                results += 1;
            }
        }
    }
    assert!(
        relay.close_lines(reader_addr).is_empty(),
        "a client reading its replies was closed: {:?}",
        relay.close_lines(reader_addr)
    );

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

    // Exactly one "connection closed" line per hostile connection, with a reason; none for the
    // publisher and the player, which are still being served.
    for &(what, peer) in &hostile {
        let logged = common::wait_until(Duration::from_secs(3), || async {
            !relay.close_lines(peer).is_empty()
        })
        .await;
        assert!(
            logged,
            "{what} ({peer}): no close line:\n{}",
            relay.log_text()
        );
    }
    // Each has its line; none gets a second one over a while.
    let once = common::holds_for(Duration::from_secs(1), || async {
        hostile
            .iter()
            .all(|&(_, peer)| relay.close_lines(peer).len() == 1)
    })
    .await;
    for &(what, peer) in &hostile {
        let lines = relay.close_lines(peer);
        assert_eq!(
            lines.len(),
            1,
            "{what} ({peer}): one close line expected:\n{}",
            lines.join("\n")
        );
        assert!(
            lines[0].contains("reason="),
            "{what}: no reason: {}",
            lines[0]
        );
        eprintln!("{what}: {}", lines[0]);
    }
    assert!(once, "a connection got a second close line");
    let deaf_line = &relay.close_lines(deaf_addr)[0];
    assert!(
        deaf_line.contains("not reading"),
        "the close reason should say the client does not read: {deaf_line}"
    );
    for (what, c) in [("publisher", &publisher), ("player", &player)] {
        let peer = c.stream.local_addr().expect("addr");
        assert!(
            relay.close_lines(peer).is_empty(),
            "{what} was closed: {:?}",
            relay.close_lines(peer)
        );
    }
    check_still_serving(&mut publisher, &mut player).await;
}
