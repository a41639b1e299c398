//! Fan-out tasks (`--fanout-tasks`): a caught-up viewer's socket is written by a shared group
//! task and handed back to the viewer's own connection when it has a reply to send, when its
//! socket is full and when it closes. Across those hand-overs a viewer still gets every frame
//! exactly once and in order, gets the replies to commands it sends mid-stream, does not hold
//! up the other viewers while it is not reading, and is no longer counted once it has left.
//!
//! (Over 450 lines: one scripted-viewer harness and the scenarios that share it.)

mod common;

use std::time::{Duration, Instant};

use common::numbered_frames::{frame_body, now_ms, parse_video};
use common::relay_process::RelayProcess;
use common::rtmp_client::{RtmpClient, audio_payload, decode_command, video_payload};
use surge_wire::amf0::Amf0Value;

const FRAMES: u32 = 150;
const FRAME_MS: u32 = 40;
/// Longest pause between two frames (or delay after the publisher sent one) a viewer that keeps
/// reading may see; frames come every 40 ms.
const MAX_GAP: Duration = Duration::from_millis(500);

/// Frame number of an audio frame (`None` for the sequence header).
fn parse_audio(p: &[u8]) -> Option<u32> {
    if p.len() < 6 || p[1] != 1 {
        return None;
    }
    Some(u32::from_be_bytes(p[2..6].try_into().ok()?))
}

/// Publishes `FRAMES` video frames of `size` bytes (a keyframe every `gop`), each followed by
/// an audio frame, 40 ms apart; with `stall` (frame N, pause), sends nothing for the pause
/// after frame N (an encoder hiccup; timestamps go on as before). Returns the publisher
/// (dropping it ends the stream).
async fn publish_frames(
    mut publisher: RtmpClient,
    gop: u32,
    size: usize,
    stall: Option<(u32, Duration)>,
) -> RtmpClient {
    let start = tokio::time::Instant::now();
    for i in 0..FRAMES {
        let ts = i * FRAME_MS;
        let mut due = start + Duration::from_millis(u64::from(ts));
        if let Some((after, pause)) = stall
            && i > after
        {
            due += pause;
        }
        tokio::time::sleep_until(due).await;
        publisher
            .send_media(9, ts, video_payload(i % gop == 0, &frame_body(i, size)))
            .await
            .expect("video");
        publisher
            .send_media(8, ts, audio_payload(&i.to_be_bytes()))
            .await
            .expect("audio");
    }
    // The last frame's 40 ms, as for every other frame.
    tokio::time::sleep(Duration::from_millis(u64::from(FRAME_MS))).await;
    publisher
}

/// What a viewer does besides reading.
enum Script {
    Watch,
    /// After video frame N, send a `createStream` with each of these transaction ids.
    CommandsAfter(Vec<(u32, Vec<f64>)>),
    /// After video frame N, stop reading for a while.
    PauseAfter(u32, Duration),
    /// After video frame N, close the connection.
    DisconnectAfter(u32),
}

struct Reply {
    txn: f64,
    /// The `_result`'s value: the new stream id.
    stream_id: Option<f64>,
    /// From sending the command to reading its reply.
    waited: Duration,
}

#[derive(Default)]
struct ViewerLog {
    /// (frame number, RTMP timestamp) of each video frame, in arrival order.
    video: Vec<(u32, u32)>,
    video_arrivals: Vec<Instant>,
    /// Longest time from the publisher sending a video frame to this viewer reading it.
    max_lag_ms: u64,
    /// Video frames read more than 250 ms after they were sent.
    late_frames: usize,
    /// Frame numbers of the audio frames, in arrival order.
    audio: Vec<u32>,
    replies: Vec<Reply>,
    /// Anything else the relay answered with (`_error`, ...).
    other_commands: Vec<String>,
    ended: bool,
    error: Option<String>,
}

impl ViewerLog {
    /// Longest time between two video frames arriving.
    fn max_gap(&self) -> Duration {
        self.video_arrivals
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default()
    }
}

/// Reads until the stream ends (UnpublishNotify), following `script`.
async fn watch(mut c: RtmpClient, script: Script) -> ViewerLog {
    let mut log = ViewerLog::default();
    let mut asked: Vec<(f64, Instant)> = Vec::new();
    loop {
        let m = match c.next_message(Duration::from_secs(10)).await {
            Ok(m) => m,
            Err(e) => {
                log.error = Some(e);
                break;
            }
        };
        match m.type_id {
            9 => {
                let Some((seq, sent)) = parse_video(&m.payload) else {
                    continue;
                };
                log.video.push((seq, m.timestamp));
                log.video_arrivals.push(Instant::now());
                let lag = now_ms().saturating_sub(sent);
                log.max_lag_ms = log.max_lag_ms.max(lag);
                if lag > 250 {
                    log.late_frames += 1;
                }
                match &script {
                    Script::CommandsAfter(plan) => {
                        for (_, txns) in plan.iter().filter(|(at, _)| *at == seq) {
                            for &txn in txns {
                                c.command("createStream", txn, Amf0Value::Null, vec![], 0)
                                    .await
                                    .expect("send createStream");
                                asked.push((txn, Instant::now()));
                            }
                        }
                    }
                    Script::PauseAfter(at, pause) if *at == seq => tokio::time::sleep(*pause).await,
                    Script::DisconnectAfter(at) if *at == seq => return log,
                    _ => {}
                }
            }
            8 => log.audio.extend(parse_audio(&m.payload)),
            20 => match decode_command(&m.payload) {
                Some((name, values)) if name == "_result" => {
                    let txn = match values.first() {
                        Some(Amf0Value::Number(n)) => *n,
                        _ => f64::NAN,
                    };
                    let waited = asked
                        .iter()
                        .find(|(t, _)| *t == txn)
                        .map(|(_, at)| at.elapsed())
                        .unwrap_or(Duration::MAX);
                    let stream_id = match values.get(2) {
                        Some(Amf0Value::Number(n)) => Some(*n),
                        _ => None,
                    };
                    log.replies.push(Reply {
                        txn,
                        stream_id,
                        waited,
                    });
                }
                Some((name, _)) if name == "onStatus" => {
                    if String::from_utf8_lossy(&m.payload).contains("UnpublishNotify") {
                        log.ended = true;
                        break;
                    }
                }
                Some((name, values)) => log.other_commands.push(format!("{name} {values:?}")),
                None => log.other_commands.push("undecodable command".into()),
            },
            _ => {}
        }
    }
    log
}

/// Where `got` first differs from 0..FRAMES: missing, repeated and out-of-order frames.
fn sequence_problems(got: &[u32]) -> Option<String> {
    let want: Vec<u32> = (0..FRAMES).collect();
    if got == want {
        return None;
    }
    let mut seen = vec![0u32; FRAMES as usize];
    for &s in got {
        if let Some(n) = seen.get_mut(s as usize) {
            *n += 1;
        }
    }
    let missing: Vec<u32> = (0..FRAMES).filter(|&s| seen[s as usize] == 0).collect();
    let repeated: Vec<u32> = (0..FRAMES).filter(|&s| seen[s as usize] > 1).collect();
    let first_diff = got.iter().zip(&want).position(|(a, b)| a != b);
    Some(format!(
        "{} frames read; missing {missing:?}; repeated {repeated:?}; first out of place at index \
         {first_diff:?}",
        got.len()
    ))
}

/// Every published video and audio frame exactly once, in order, then the end of the stream.
fn assert_complete(log: &ViewerLog, who: &str) {
    assert!(log.error.is_none(), "{who}: {:?}", log.error);
    assert!(
        log.other_commands.is_empty(),
        "{who}: unexpected replies {:?}",
        log.other_commands
    );
    let video: Vec<u32> = log.video.iter().map(|v| v.0).collect();
    if let Some(p) = sequence_problems(&video) {
        panic!("{who}: video frames not all there exactly once in order: {p}");
    }
    for &(seq, ts) in &log.video {
        assert_eq!(
            ts,
            seq * FRAME_MS,
            "{who}: frame {seq} has the wrong timestamp"
        );
    }
    assert!(
        log.video.windows(2).all(|w| w[0].1 < w[1].1),
        "{who}: video timestamps not increasing"
    );
    if let Some(p) = sequence_problems(&log.audio) {
        panic!("{who}: audio frames not all there exactly once in order: {p}");
    }
    assert!(log.ended, "{who}: no UnpublishNotify at the end");
}

async fn play(relay: &RelayProcess, stream: &str) -> RtmpClient {
    let (c, code) = RtmpClient::play(relay.rtmp, "live", stream)
        .await
        .expect("play");
    assert!(code.starts_with("NetStream.Play."), "{code}");
    c
}

/// A viewer sends `createStream`s while playing (after frame 50, then three at once after frame
/// 100): with fan-out tasks on, each one takes its socket back from the group task for the
/// reply and hands it over again.
async fn command_mid_stream(fanout_tasks: &str) {
    let relay = RelayProcess::start(&["--fanout-tasks", fanout_tasks]);
    let publisher = RtmpClient::publish_with_headers(relay.rtmp, "live", "cmd")
        .await
        .expect("publish");
    let asking = play(&relay, "cmd").await;
    let other = play(&relay, "cmd").await;
    assert_eq!(relay.viewers().await, 2);
    let plan = vec![(50, vec![10.0]), (100, vec![11.0, 12.0, 13.0])];
    let asking = tokio::spawn(watch(asking, Script::CommandsAfter(plan)));
    let other = tokio::spawn(watch(other, Script::Watch));

    let publisher = publish_frames(publisher, 25, 2000, None).await;
    drop(publisher);
    let asking = asking.await.expect("viewer task");
    let other = other.await.expect("viewer task");

    assert_complete(&asking, "viewer that sent commands");
    assert_complete(&other, "other viewer");
    // One reply per command, in order; each a new stream after the play stream (1).
    let replies: Vec<(f64, Option<f64>)> = asking
        .replies
        .iter()
        .map(|r| (r.txn, r.stream_id))
        .collect();
    assert_eq!(
        replies,
        vec![
            (10.0, Some(2.0)),
            (11.0, Some(3.0)),
            (12.0, Some(4.0)),
            (13.0, Some(5.0))
        ],
        "--fanout-tasks {fanout_tasks}: replies to the createStreams sent while playing"
    );
    for r in &asking.replies {
        assert!(
            r.waited < Duration::from_secs(1),
            "--fanout-tasks {fanout_tasks}: reply to {} took {:?}",
            r.txn,
            r.waited
        );
    }
    for (who, log) in [("asking", &asking), ("other", &other)] {
        assert!(
            log.max_gap() < MAX_GAP,
            "--fanout-tasks {fanout_tasks}: {who} viewer waited {:?} for a frame",
            log.max_gap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_mid_stream_gets_its_reply_and_every_frame_once_without_fanout_tasks() {
    // Lags and gaps are wall-clock time: one test of this binary at a time.
    let _serial = common::real_time_lock().await;
    command_mid_stream("0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_mid_stream_gets_its_reply_and_every_frame_once_with_one_fanout_task() {
    let _serial = common::real_time_lock().await;
    command_mid_stream("1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_mid_stream_gets_its_reply_and_every_frame_once_with_four_fanout_tasks() {
    let _serial = common::real_time_lock().await;
    command_mid_stream("4").await;
}

/// A viewer with a small receive buffer stops reading for 1.5 s: its socket fills, the group
/// task hands it back (usually mid-frame, with the rest of the frame still to write), its own
/// task writes the backlog once it reads again, and it rejoins. Nothing is skipped or repeated, and the viewers
/// that kept reading never waited for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_viewer_gets_every_frame_once_and_others_do_not_wait() {
    let _serial = common::real_time_lock().await;
    let relay = RelayProcess::start(&[
        "--fanout-tasks",
        "2",
        "--slow-viewer-timeout",
        "5s",
        // Far more than it falls behind in 1.5 s (about 300 KB): it catches up, it does not skip.
        "--viewer-backlog-bytes",
        "16000000",
        // Small, so a viewer that stops reading fills its socket within a few frames.
        "--viewer-send-buffer-bytes",
        "32768",
    ]);
    let publisher = RtmpClient::publish_with_headers(relay.rtmp, "live", "pause")
        .await
        .expect("publish");
    let mut others = Vec::new();
    for _ in 0..2 {
        let c = play(&relay, "pause").await;
        others.push(tokio::spawn(watch(c, Script::Watch)));
    }
    let paused = RtmpClient::connect_small_buffer(relay.rtmp, "live", 4096)
        .await
        .expect("connect");
    let (paused, code) = paused.start_play("pause").await.expect("play");
    assert!(code.starts_with("NetStream.Play."), "{code}");
    let pause = Script::PauseAfter(40, Duration::from_millis(1500));
    let paused = tokio::spawn(watch(paused, pause));
    assert_eq!(relay.viewers().await, 3);

    // A keyframe every 2 s: the relay holds the previous GOP too, so a viewer 1.5 s behind is
    // still within what it holds (with a keyframe every second it could fall out of it).
    let publisher = publish_frames(publisher, 50, 8000, None).await;
    let stats = common::stats(relay.http).await;
    drop(publisher);
    let paused = paused.await.expect("viewer task");
    let mut other_logs = Vec::new();
    for o in others {
        other_logs.push(o.await.expect("viewer task"));
    }

    assert_complete(&paused, "paused viewer");
    eprintln!(
        "paused viewer: worst lag {} ms, {} frames read late",
        paused.max_lag_ms, paused.late_frames
    );
    // About 30 frames (240 KB) sent while it did not read reached it late: more than the
    // socket buffers between the relay and it hold, so the relay held the rest back.
    assert!(
        paused.max_lag_ms >= 1000 && paused.late_frames >= 25,
        "the paused viewer never fell behind: worst lag {} ms, {} late frames",
        paused.max_lag_ms,
        paused.late_frames
    );
    assert_eq!(
        stats["streams"][0]["dropped_frames"], 0,
        "a frame was skipped: {stats}"
    );
    assert!(
        !relay.log_contains("slow viewer"),
        "the paused viewer was disconnected:\n{}",
        relay.log_text()
    );
    for (i, o) in other_logs.iter().enumerate() {
        let who = format!("reading viewer {i}");
        assert_complete(o, &who);
        eprintln!(
            "{who}: longest gap {:?}, worst lag {} ms",
            o.max_gap(),
            o.max_lag_ms
        );
        assert!(o.max_gap() < MAX_GAP, "{who} waited {:?}", o.max_gap());
        assert!(
            o.max_lag_ms < MAX_GAP.as_millis() as u64,
            "{who} got a frame {} ms after it was sent",
            o.max_lag_ms
        );
    }
}

/// Viewers that close their connection mid-stream while a group task writes to them stop
/// being counted within a few seconds; the viewers that stay get the whole stream, none of it
/// late. The second one leaves while the publisher stalls: nothing is written to its socket
/// then, so only its connection taking the socket back from the group can end it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_that_disconnect_are_uncounted_and_others_unaffected() {
    let _serial = common::real_time_lock().await;
    const STALL_AFTER: u32 = 80;
    const STALL: Duration = Duration::from_secs(2);
    let relay = RelayProcess::start(&["--fanout-tasks", "2"]);
    let publisher = RtmpClient::publish_with_headers(relay.rtmp, "live", "bye")
        .await
        .expect("publish");
    let mut staying = Vec::new();
    for _ in 0..3 {
        let c = play(&relay, "bye").await;
        staying.push(tokio::spawn(watch(c, Script::Watch)));
    }
    // They sit in different groups (joins are round robin).
    let mut leaving = Vec::new();
    for at in [40, STALL_AFTER] {
        let c = play(&relay, "bye").await;
        leaving.push((at, tokio::spawn(watch(c, Script::DisconnectAfter(at)))));
    }
    assert_eq!(relay.viewers().await, 5);

    let stall = Some((STALL_AFTER, STALL));
    let publishing = tokio::spawn(publish_frames(publisher, 25, 2000, stall));
    let mut expected = 5;
    for (at, viewer) in leaving {
        let log = viewer.await.expect("viewer task");
        let got: Vec<u32> = log.video.iter().map(|v| v.0).collect();
        assert_eq!(got, (0..=at).collect::<Vec<_>>(), "leaving viewer's frames");
        expected -= 1;
        let left = Instant::now();
        let r = &relay;
        // Within the stall for the second one (it started when frame 80 was sent).
        let uncounted = common::wait_until(STALL * 3 / 4, move || async move {
            r.viewers().await == expected
        })
        .await;
        assert!(
            uncounted,
            "viewer that left after frame {at} still counted after {:?}: {}\n{}",
            left.elapsed(),
            common::stats(relay.http).await,
            relay.log_text()
        );
        eprintln!(
            "viewer that left after frame {at} uncounted after {:?}",
            left.elapsed()
        );
    }
    let publisher = publishing.await.expect("publisher task");
    drop(publisher);
    for (i, v) in staying.into_iter().enumerate() {
        let log = v.await.expect("viewer task");
        let who = format!("staying viewer {i}");
        assert_complete(&log, &who);
        // Lag, not gaps between frames: the publisher's stall is a gap for everyone.
        assert!(
            log.max_lag_ms < MAX_GAP.as_millis() as u64,
            "{who} got a frame {} ms after it was sent",
            log.max_lag_ms
        );
    }
}

/// With a latency budget (`--max-write-delay 150ms`) the fan-out task holds each new frame for
/// the ones after it: a viewer still gets every frame once and in order, but several per
/// write (about 150 / 40 video frames), none much later than the budget, and a command sent
/// mid-stream is answered without waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_delay_sends_frames_together_and_none_much_later_than_the_budget() {
    let _serial = common::real_time_lock().await;
    let relay = RelayProcess::start(&["--fanout-tasks", "1", "--max-write-delay", "150ms"]);
    let publisher = RtmpClient::publish_with_headers(relay.rtmp, "live", "batched")
        .await
        .expect("publish");
    let viewer = play(&relay, "batched").await;
    let viewer = tokio::spawn(watch(viewer, Script::CommandsAfter(vec![(50, vec![10.0])])));
    let publisher = publish_frames(publisher, 25, 2000, None).await;
    drop(publisher);
    let log = viewer.await.expect("viewer task");

    assert_complete(&log, "viewer behind a write delay");
    // Frames read within 10 ms of each other came in one write.
    let writes = 1 + log
        .video_arrivals
        .windows(2)
        .filter(|w| w[1] - w[0] > Duration::from_millis(10))
        .count();
    assert!(
        writes <= FRAMES as usize / 2,
        "{writes} separate arrivals for {FRAMES} video frames: frames were not sent together"
    );
    assert!(
        log.max_lag_ms < 150 + 500,
        "a frame came {} ms after it was sent (budget 150 ms)",
        log.max_lag_ms
    );
    assert_eq!(log.replies.len(), 1, "the createStream's reply");
    assert!(
        log.replies[0].waited < Duration::from_secs(1),
        "reply took {:?}",
        log.replies[0].waited
    );
}
