//! Enhanced-RTMP (FourCC) video passes through untouched: sequence start and coded frames reach
//! live and late viewers byte for byte, and the GOP cache starts at an ex-header keyframe.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::relay_process::RelayProcess;
use common::rtmp_client::RtmpClient;

/// IsExHeader | frame type << 4 | packet type, then the FourCC, then `body`.
fn ex_video(frame_type: u8, packet_type: u8, fourcc: &[u8; 4], body: &[u8]) -> Bytes {
    let mut v = vec![0x80 | (frame_type << 4) | packet_type];
    v.extend_from_slice(fourcc);
    v.extend_from_slice(body);
    Bytes::from(v)
}

async fn videos(c: &mut RtmpClient, n: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = c
            .next_message(Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("after {} videos: {e}", out.len()));
        if m.type_id == 9 {
            out.push(m.payload);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourcc_hevc_and_av1_payloads_pass_through() {
    let relay = RelayProcess::start(&[]);
    for fourcc in [b"hvc1", b"av01"] {
        let name = String::from_utf8_lossy(fourcc).to_string();
        let (mut publisher, code) = RtmpClient::publish(relay.rtmp, "live", &name)
            .await
            .expect("publish");
        assert_eq!(code, "NetStream.Publish.Start");
        let (mut live, _) = RtmpClient::play(relay.rtmp, "live", &name)
            .await
            .expect("play");
        let seq_start = ex_video(1, 0, fourcc, &[1, 2, 3, 4, 5]);
        let mut sent = vec![seq_start.clone()];
        publisher
            .send_media(9, 0, seq_start.clone())
            .await
            .expect("seq");
        for i in 0..6u32 {
            // Keyframe every 3 frames; packet type 1 = coded frames.
            let f = ex_video(if i % 3 == 0 { 1 } else { 2 }, 1, fourcc, &[i as u8; 900]);
            publisher
                .send_media(9, i * 40, f.clone())
                .await
                .expect("frame");
            sent.push(f);
            // Real time, as an encoder sends it (a burst could legitimately skip a GOP).
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        assert_eq!(
            videos(&mut live, sent.len()).await,
            sent,
            "{name}: live viewer"
        );

        // Late joiner: sequence start, then the GOP from the newest keyframe (frame 3).
        let (mut late, _) = RtmpClient::play(relay.rtmp, "live", &name)
            .await
            .expect("late");
        let got = videos(&mut late, 4).await;
        assert_eq!(got[0], seq_start, "{name}: sequence start first");
        assert_eq!(
            &got[1..],
            &sent[4..7],
            "{name}: GOP cache from the ex-header keyframe"
        );
    }
}
