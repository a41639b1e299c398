//! Real clients: ffmpeg publishes libx264 + AAC to one relay; ffprobe reads it back over RTMP
//! and HTTP-FLV; a late joiner gets a keyframe at once; viewers get the end of stream.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::relay_process::{KillOnDrop, RelayProcess};
use common::rtmp_client::{RtmpClient, decode_command, status_code};

const GOP_FRAMES: u32 = 50; // 2 s at 25 fps

fn start_ffmpeg(url: &str, seconds: u32) -> KillOnDrop {
    let child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args(["-g", &GOP_FRAMES.to_string(), "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "64k"])
        .args(["-t", &seconds.to_string(), "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ffmpeg is installed (scripts/install-deps)");
    KillOnDrop(child)
}

/// ffprobe over `seconds` of stream time: (video packets, width, height).
async fn ffprobe(url: String, seconds: u32) -> (usize, u64, u64) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0"])
            .args(["-read_intervals", &format!("%+{seconds}")])
            .args(["-show_entries", "packet=pts_time:stream=width,height"])
            .args(["-of", "json", &url])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffprobe finished in time")
    .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let packets = v["packets"].as_array().map_or(0, |a| a.len());
    let width = v["streams"][0]["width"].as_u64().unwrap_or(0);
    let height = v["streams"][0]["height"].as_u64().unwrap_or(0);
    (packets, width, height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publish_ffprobe_rtmp_and_http_flv_late_joiner_and_end() {
    let relay = RelayProcess::start(&[]);
    let _ffmpeg = start_ffmpeg(&relay.rtmp_url("live", "test"), 14);

    // Wait until the stream is live with a keyframe in the cache.
    let live = common::wait_until(Duration::from_secs(15), || async {
        let s = common::stats(relay.http).await;
        s["streams"][0]["gop_cache_ms"].as_u64().is_some()
            && s["streams"][0]["ingest_kbps"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert!(live, "publisher never went live:\n{}", relay.log_text());

    // A player that stays until the end of the stream.
    let (mut stayer, code) = RtmpClient::play(relay.rtmp, "live", "test")
        .await
        .expect("play");
    assert!(
        code == "NetStream.Play.Reset" || code == "NetStream.Play.Start",
        "play status {code}"
    );

    // ffprobe over RTMP and over HTTP-FLV, concurrently, 3 s of stream time each.
    let (rtmp, flv) = tokio::join!(
        ffprobe(relay.rtmp_url("live", "test"), 3),
        ffprobe(relay.flv_url("live", "test"), 3)
    );
    for (proto, (packets, w, h)) in [("rtmp", rtmp), ("http-flv", flv)] {
        eprintln!("{proto}: {packets} video packets, {w}x{h}");
        assert_eq!((w, h), (320, 240), "{proto} resolution");
        // 3 s at 25 fps = 75 packets (the interval is in stream time, so the GOP burst counts).
        assert!(
            (60..=90).contains(&packets),
            "{proto}: {packets} video packets for 3 s at 25 fps"
        );
    }

    // Players see exactly one video and one audio stream (no stray data streams from the
    // session's play replies).
    let types = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("ffprobe")
            .args(["-v", "error", "-read_intervals", "%+1"])
            .args(["-show_entries", "stream=codec_type", "-of", "csv=p=0"])
            .arg(relay.rtmp_url("live", "test"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffprobe in time")
    .expect("ffprobe runs");
    let mut types: Vec<String> = String::from_utf8_lossy(&types.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    types.sort();
    assert_eq!(types, vec!["audio", "video"], "streams seen over RTMP");

    // Late joiner, at some point inside a GOP: first video frame is a keyframe, and fast.
    let asked = Instant::now();
    let (mut late, _) = RtmpClient::play(relay.rtmp, "live", "test")
        .await
        .expect("late play");
    let first_video = loop {
        let m = late
            .next_message(Duration::from_secs(5))
            .await
            .expect("media");
        if m.type_id == 9 && m.payload.get(1) == Some(&1) {
            break m;
        }
    };
    let waited = asked.elapsed();
    eprintln!("late joiner: first keyframe after {waited:?}");
    assert_eq!(
        first_video.payload[0] >> 4,
        1,
        "first video frame is a keyframe"
    );
    assert!(
        waited < Duration::from_millis(700),
        "late joiner waited {waited:?} for its first frame (GOP is 2 s)"
    );

    // End of stream: ffmpeg stops after 14 s; the staying viewer gets UnpublishNotify.
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut got_end = false;
    while Instant::now() < deadline {
        match stayer.next_message(Duration::from_secs(5)).await {
            Ok(m) if m.type_id == 20 => {
                if let Some((name, values)) = decode_command(&m.payload)
                    && name == "onStatus"
                    && status_code(&values).as_deref() == Some("NetStream.Play.UnpublishNotify")
                {
                    got_end = true;
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("viewer lost before end of stream: {e}"),
        }
    }
    assert!(got_end, "no UnpublishNotify:\n{}", relay.log_text());
}
