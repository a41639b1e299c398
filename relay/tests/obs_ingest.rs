//! OBS-style ingest: the exact command sequence OBS (librtmp) sends to publish and to stop
//! (connect with OBS's fields, releaseStream, FCPublish, createStream pipelined without waiting,
//! publish, `@setDataFrame onMetaData` with an ECMA array, AVC/AAC sequence headers, media, then
//! FCUnpublish and deleteStream). RTMP and HTTP-FLV players get everything, then the end of
//! stream, while the OBS connection is still open.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use common::flv_reader::FlvReader;
use common::relay_process::RelayProcess;
use common::rtmp_client::{
    CHUNK_SIZE, RtmpClient, decode_command, status_code, video_payload, video_sequence_header,
};
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::time::RtmpTimestamp;
use surge_wire::amf0::Amf0Value;

const KEY: &str = "obs-key";

fn amf_string(out: &mut Vec<u8>, s: &str) {
    out.push(0x02);
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

enum Meta {
    Num(f64),
    Bool(bool),
    Str(&'static str),
}

/// `@setDataFrame onMetaData` with an ECMA array (AMF0 marker 0x08) holding what OBS's
/// flv-mux writes, byte for byte as OBS encodes it.
fn obs_set_data_frame() -> Vec<u8> {
    let fields: Vec<(&str, Meta)> = vec![
        ("duration", Meta::Num(0.0)),
        ("fileSize", Meta::Num(0.0)),
        ("width", Meta::Num(1280.0)),
        ("height", Meta::Num(720.0)),
        ("videocodecid", Meta::Num(7.0)),
        ("videodatarate", Meta::Num(2500.0)),
        ("framerate", Meta::Num(30.0)),
        ("audiocodecid", Meta::Num(10.0)),
        ("audiodatarate", Meta::Num(160.0)),
        ("audiosamplerate", Meta::Num(48000.0)),
        ("audiosamplesize", Meta::Num(16.0)),
        ("audiochannels", Meta::Num(2.0)),
        ("stereo", Meta::Bool(true)),
        (
            "encoder",
            Meta::Str("obs-output module (libobs version 30.0.0)"),
        ),
    ];
    let mut out = Vec::new();
    amf_string(&mut out, "@setDataFrame");
    amf_string(&mut out, "onMetaData");
    out.push(0x08);
    out.extend_from_slice(&(fields.len() as u32).to_be_bytes());
    for (k, v) in fields {
        out.extend_from_slice(&(k.len() as u16).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        match v {
            Meta::Num(n) => {
                out.push(0x00);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Meta::Bool(b) => out.extend_from_slice(&[0x01, u8::from(b)]),
            Meta::Str(s) => amf_string(&mut out, s),
        }
    }
    out.extend_from_slice(&[0, 0, 0x09]);
    out
}

/// AAC sequence header (AudioSpecificConfig: AAC-LC, 48 kHz, stereo).
fn aac_sequence_header() -> Bytes {
    Bytes::from_static(&[0xaf, 0x00, 0x11, 0x90])
}

fn aac_frame(fill: u8) -> Bytes {
    let mut v = vec![0xaf, 0x01];
    v.extend_from_slice(&[fill; 300]);
    Bytes::from(v)
}

async fn send_on(c: &mut RtmpClient, sid: u32, type_id: u8, ts: u32, data: Bytes) {
    let payload = MessagePayload {
        timestamp: RtmpTimestamp::new(ts),
        type_id,
        message_stream_id: sid,
        data,
    };
    let p = c.ser.serialize(&payload, false, false).expect("serialize");
    c.send_raw(&p.bytes)
        .await
        .expect("OBS connection still open");
}

/// Handshake, then OBS's publish sequence; returns the connection and its stream id.
async fn obs_publish(relay: &RelayProcess) -> (RtmpClient, u32) {
    let mut c = RtmpClient::handshake(relay.rtmp).await.expect("handshake");
    let p = c
        .ser
        .set_max_chunk_size(CHUNK_SIZE, RtmpTimestamp::new(0))
        .expect("chunk size");
    c.send_raw(&p.bytes).await.expect("send chunk size");
    let tc_url = format!("rtmp://{}/live", relay.rtmp);
    let mut obj = HashMap::new();
    for (k, v) in [
        ("app", "live"),
        ("type", "nonprivate"),
        ("flashVer", "FMLE/3.0 (compatible; FMSc/1.0)"),
        ("swfUrl", tc_url.as_str()),
        ("tcUrl", tc_url.as_str()),
    ] {
        obj.insert(k.to_string(), Amf0Value::Utf8String(v.to_string()));
    }
    c.command("connect", 1.0, Amf0Value::Object(obj), vec![], 0)
        .await
        .expect("send connect");
    c.wait_for_result(1.0).await.expect("connect accepted");
    // OBS sends these three back to back and waits only for createStream's answer.
    let key = Amf0Value::Utf8String(KEY.into());
    c.command("releaseStream", 2.0, Amf0Value::Null, vec![key.clone()], 0)
        .await
        .expect("send releaseStream");
    c.command("FCPublish", 3.0, Amf0Value::Null, vec![key.clone()], 0)
        .await
        .expect("send FCPublish");
    c.command("createStream", 4.0, Amf0Value::Null, vec![], 0)
        .await
        .expect("send createStream");
    let result = c.wait_for_result(4.0).await.unwrap_or_else(|e| {
        panic!(
            "no createStream result after releaseStream/FCPublish: {e}\n{}",
            relay.log_text()
        )
    });
    let sid = match result.get(2) {
        Some(Amf0Value::Number(n)) => *n as u32,
        other => panic!("createStream result without a stream id: {other:?}"),
    };
    c.command(
        "publish",
        5.0,
        Amf0Value::Null,
        vec![key, Amf0Value::Utf8String("live".into())],
        sid,
    )
    .await
    .expect("send publish");
    let code = c.wait_for_status().await.expect("publish onStatus");
    assert_eq!(code, "NetStream.Publish.Start", "{}", relay.log_text());
    (c, sid)
}

/// What an RTMP player saw, in order.
#[derive(Default)]
struct Seen {
    metadata: Option<Vec<u8>>,
    video_seq: bool,
    audio_seq: bool,
    /// Media (non-config) before both sequence headers arrived.
    media_before_config: bool,
    video_frames: Vec<u32>,
    audio_frames: usize,
    unpublished: bool,
}

impl Seen {
    fn observe(&mut self, type_id: u8, timestamp: u32, payload: &[u8]) {
        let config = payload.get(1) == Some(&0);
        match type_id {
            18 => self.metadata = Some(payload.to_vec()),
            9 if config => self.video_seq = true,
            8 if config => self.audio_seq = true,
            8 | 9 => {
                if !(self.video_seq && self.audio_seq && self.metadata.is_some()) {
                    self.media_before_config = true;
                }
                if type_id == 9 {
                    self.video_frames.push(timestamp);
                } else {
                    self.audio_frames += 1;
                }
            }
            _ => {}
        }
    }
}

/// Reads until the video frame stamped `video_ts` or an UnpublishNotify.
async fn read_rtmp_until(
    player: &mut RtmpClient,
    seen: &mut Seen,
    video_ts: u32,
) -> Result<(), String> {
    loop {
        let m = player.next_message(Duration::from_secs(5)).await?;
        if m.type_id == 20 {
            if let Some((name, values)) = decode_command(&m.payload)
                && name == "onStatus"
                && status_code(&values).as_deref() == Some("NetStream.Play.UnpublishNotify")
            {
                seen.unpublished = true;
                return Ok(());
            }
            continue;
        }
        seen.observe(m.type_id, m.timestamp, &m.payload);
        if m.type_id == 9 && seen.video_frames.last() == Some(&video_ts) {
            return Ok(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_publish_sequence_reaches_rtmp_and_flv_players_and_ends_on_delete_stream() {
    let relay = RelayProcess::start(&[]);
    let (mut obs, sid) = obs_publish(&relay).await;

    let meta = obs_set_data_frame();
    send_on(&mut obs, sid, 18, 0, Bytes::from(meta.clone())).await;
    send_on(&mut obs, sid, 9, 0, video_sequence_header()).await;
    send_on(&mut obs, sid, 8, 0, aac_sequence_header()).await;
    // A first GOP: keyframe, then inter frames, with audio.
    for i in 0..5u32 {
        send_on(
            &mut obs,
            sid,
            9,
            i * 33,
            video_payload(i == 0, &[i as u8; 2000]),
        )
        .await;
        send_on(&mut obs, sid, 8, i * 33, aac_frame(i as u8)).await;
    }
    let listed = common::wait_until(Duration::from_secs(5), || async {
        let s = common::stats(relay.http).await;
        s["streams"][0]["name"] == KEY && s["streams"][0]["source"] == "publisher"
    })
    .await;
    assert!(listed, "OBS stream not listed:\n{}", relay.log_text());

    let (mut player, code) = RtmpClient::play(relay.rtmp, "live", KEY)
        .await
        .expect("RTMP play");
    assert!(code.starts_with("NetStream.Play."), "{code}");
    let mut flv = FlvReader::open(relay.http, &format!("/live/{KEY}.flv")).await;
    assert!(flv.head.starts_with("HTTP/1.1 200"), "{}", flv.head);

    // Live frames after both players joined.
    for i in 5..15u32 {
        send_on(
            &mut obs,
            sid,
            9,
            i * 33,
            video_payload(false, &[i as u8; 2000]),
        )
        .await;
        send_on(&mut obs, sid, 8, i * 33, aac_frame(i as u8)).await;
    }
    let mut seen = Seen::default();
    read_rtmp_until(&mut player, &mut seen, 14 * 33)
        .await
        .unwrap_or_else(|e| panic!("RTMP player: {e}\n{}", relay.log_text()));
    // The metadata body the player gets is OBS's onMetaData without the @setDataFrame prefix.
    let want_meta = &meta[16..];
    assert_eq!(
        seen.metadata.as_deref(),
        Some(want_meta),
        "RTMP player metadata"
    );
    assert!(
        seen.video_seq && seen.audio_seq,
        "RTMP player lacks a sequence header"
    );
    assert!(
        !seen.media_before_config,
        "media before metadata/sequence headers"
    );
    let want_video: Vec<u32> = (0..15).map(|i| i * 33).collect();
    assert_eq!(seen.video_frames, want_video, "RTMP player video frames");
    assert!(
        seen.audio_frames >= 10,
        "{} audio frames",
        seen.audio_frames
    );

    flv.read_for(Duration::from_millis(500)).await;
    let tags = flv.tag_list();
    assert_eq!(
        tags.first().map(|t| t.type_id),
        Some(18),
        "FLV starts with metadata"
    );
    assert_eq!(tags[0].data, want_meta, "FLV metadata tag");
    let first_media = tags
        .iter()
        .position(|t| t.type_id != 18 && t.data.get(1) != Some(&0))
        .expect("FLV media tags");
    let config = &tags[..first_media];
    assert!(
        config.iter().any(|t| t.type_id == 9) && config.iter().any(|t| t.type_id == 8),
        "FLV sequence headers before media: {:?}",
        tags.iter().map(|t| t.type_id).collect::<Vec<_>>()
    );
    let flv_video: Vec<u32> = tags[first_media..]
        .iter()
        .filter(|t| t.type_id == 9)
        .map(|t| t.timestamp)
        .collect();
    assert_eq!(flv_video, want_video, "FLV video tags");

    // OBS stops: FCUnpublish, then deleteStream; the socket stays open a moment longer.
    let key = Amf0Value::Utf8String(KEY.into());
    obs.command("FCUnpublish", 6.0, Amf0Value::Null, vec![key], 0)
        .await
        .expect("send FCUnpublish");
    obs.command(
        "deleteStream",
        7.0,
        Amf0Value::Null,
        vec![Amf0Value::Number(f64::from(sid))],
        0,
    )
    .await
    .expect("send deleteStream");

    let mut after = Seen::default();
    read_rtmp_until(&mut player, &mut after, u32::MAX)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no UnpublishNotify after deleteStream ({e}):\n{}",
                relay.log_text()
            )
        });
    assert!(after.unpublished);
    assert!(
        flv.read_for(Duration::from_secs(5)).await,
        "HTTP-FLV response did not end after deleteStream"
    );
    let gone = common::wait_until(Duration::from_secs(3), || async {
        common::stats(relay.http).await["streams"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    })
    .await;
    assert!(gone, "stream still listed after deleteStream");

    // Closing the socket is left to OBS: deleteStream is not an error.
    assert!(
        !obs.closed_within(Duration::from_millis(200)).await,
        "relay closed the OBS connection on deleteStream"
    );
    drop(obs);
    assert!(
        !relay.log_contains("closing on bad input"),
        "{}",
        relay.log_text()
    );
}
