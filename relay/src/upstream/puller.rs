//! The failover loop: which upstream to try next, how long to wait, what to tell the sink.
//!
//! (Over 450 lines with its unit tests, which drive the loop against scripted upstreams; the
//! loop itself is ~260 lines.)

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use std::ops::ControlFlow;

use surge_integrity::{Verdict, Verifier};

use super::absent_retry::{AbsenceClock, AttemptOutcome};
use super::backoff::jitter_sample;
use super::connection::{self, ConnectionEnd, ConnectionError};
use super::quarantine::Quarantine;
use super::rebase::{DEFAULT_RESET_THRESHOLD_MS, TimestampRebaser};
use super::session::{PullEvent, SessionError};
use super::url::UpstreamUrl;
use super::{
    MediaSink, PARENT_VIEW_WAIT, ParentChoice, ParentChooser, PullerConfig, PullerOptions,
    UpstreamState,
};
use crate::media::{MediaKind, MediaMessage};

/// Reports state changes to the sink, skipping repeats.
struct StateReporter {
    sink: Arc<dyn MediaSink>,
    last: Option<UpstreamState>,
}

impl StateReporter {
    fn report(&mut self, state: UpstreamState) {
        if self.last.as_ref() != Some(&state) {
            self.last = Some(state.clone());
            self.sink.on_upstream_state(state);
        }
    }
}

/// Where the next attempt goes and how long to wait before it (pure; unit-tested).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailoverPlan {
    /// Upstream count.
    pub n: usize,
    /// Index of the next upstream to try.
    pub next: usize,
    /// Consecutive attempts that did not produce a healthy connection.
    pub failures: u32,
    /// A connection has been healthy at least once (initial round is over).
    pub ever_connected: bool,
}

impl FailoverPlan {
    pub fn new(n: usize) -> Self {
        FailoverPlan {
            n,
            next: 0,
            failures: 0,
            ever_connected: false,
        }
    }

    /// Records how the attempt on `self.next` ended and picks the next upstream.
    /// `healthy`: it played long enough to count as working. `publisher_ended`: it ended
    /// because the stream ended at the source, so the most preferred upstream is tried again.
    pub fn record(&mut self, healthy: bool, publisher_ended: bool) {
        if healthy {
            self.failures = 0;
            self.ever_connected = true;
        } else {
            self.failures = self.failures.saturating_add(1);
        }
        self.next = if publisher_ended {
            0
        } else {
            (self.next + 1) % self.n.max(1)
        };
    }

    /// The upstream answered but does not have the stream (yet): try the next one without
    /// counting a failure, so the backoff does not grow while the stream is about to return.
    pub fn record_absent(&mut self) {
        self.next = (self.next + 1) % self.n.max(1);
    }

    /// A probe found a more preferred upstream working: go there at once.
    pub fn switch_to(&mut self, index: usize) {
        self.next = index.min(self.n.saturating_sub(1));
        self.failures = 0;
        self.ever_connected = true;
    }

    /// Every upstream failed in a row at least once.
    pub fn all_failed(&self) -> bool {
        self.failures as usize >= self.n
    }
}

/// The parent to pull from in place of `first` (see [`ParentChooser`]); waits up to
/// [`PARENT_VIEW_WAIT`] for a relay that has not heard from its peers yet.
async fn choose_parent(
    parent: &dyn ParentChooser,
    first: &UpstreamUrl,
    app: &str,
    cancel: &CancellationToken,
) -> Option<UpstreamUrl> {
    let give_up = tokio::time::Instant::now() + PARENT_VIEW_WAIT;
    loop {
        match parent.choose() {
            ParentChoice::Parent(base) => {
                return UpstreamUrl::parse(&format!("{base}/{}", first.app_or(app))).ok();
            }
            ParentChoice::NoneFree => {
                debug!("no parent has room; pulling from --upstream as given");
                return None;
            }
            ParentChoice::NotYetKnown if tokio::time::Instant::now() >= give_up => return None,
            ParentChoice::NotYetKnown => {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                    _ = cancel.cancelled() => return None,
                }
            }
        }
    }
}

pub(super) async fn run(
    cfg: PullerConfig,
    opts: PullerOptions,
    sink: Arc<dyn MediaSink>,
    cancel: CancellationToken,
) {
    let span = info_span!("puller", stream = %format!("{}/{}", cfg.app, cfg.stream));
    run_inner(cfg, opts, sink, cancel).instrument(span).await
}

async fn run_inner(
    cfg: PullerConfig,
    opts: PullerOptions,
    sink: Arc<dyn MediaSink>,
    cancel: CancellationToken,
) {
    let mut states = StateReporter {
        sink: sink.clone(),
        last: None,
    };
    states.report(UpstreamState::Connecting);
    let mut urls = Vec::new();
    for raw in &cfg.upstreams {
        match UpstreamUrl::parse(raw) {
            Ok(u) => urls.push(u),
            Err(e) => warn!(error = %e, "skipping invalid upstream"),
        }
    }
    if urls.is_empty() {
        warn!("no valid upstream configured; cannot pull");
        states.report(UpstreamState::Failed);
        return;
    }

    // The hang probe pays only with somewhere else to go: with one upstream, reconnecting to
    // it gains nothing and drops the frames a stalled link still holds.
    let opts = if urls.len() > 1 || opts.parent.is_some() {
        opts
    } else {
        PullerOptions {
            hang_probe_after: std::time::Duration::ZERO,
            ..opts
        }
    };
    let mut plan = FailoverPlan::new(urls.len());
    let mut quarantine = Quarantine::new(urls.len(), opts.integrity_quarantine);
    // One verifier across connections: replayed signatures stay refused after a failover.
    let mut verifier = opts.verify.clone().map(Verifier::new);
    let mut rebaser = TimestampRebaser::new(opts.rebase_gap_ms, DEFAULT_RESET_THRESHOLD_MS);
    let mut quiet = false;
    // End of stream is reported once per ended stream, not again by every reconnect after it.
    let mut end_reported = false;
    // Since when the stream has had no upstream feeding it while live (the pull's start, or
    // the loss of a connection): the next frame reports how long that took.
    let mut unfed_since = Some(tokio::time::Instant::now());
    let mut absence = AbsenceClock::default();
    loop {
        // The first upstream names the tier above: with a parent chooser, the parent with
        // room stands in for it.
        let chosen = match (&opts.parent, plan.next) {
            (Some(parent), 0) => choose_parent(parent.as_ref(), &urls[0], &cfg.app, &cancel).await,
            _ => None,
        };
        let index = plan.next;
        let url = chosen.as_ref().unwrap_or(&urls[index]);
        let url_text = url.to_string();
        rebaser.new_timeline();
        settle_unverified(&mut verifier, &url_text);
        debug!(upstream = %url_text, "connecting");
        let pull = connection::run(url, &cfg.app, &cfg.stream, &opts, &cancel, |ev| {
            match ev {
                PullEvent::Playing => {
                    info!(upstream = %url_text, "pulling");
                    states.report(UpstreamState::Connected {
                        url: url_text.clone(),
                    });
                }
                PullEvent::Media {
                    kind,
                    timestamp,
                    payload,
                } => {
                    let msg = MediaMessage::new(kind, timestamp, payload);
                    let is_config = kind == MediaKind::Data || msg.is_sequence_header();
                    if !is_config {
                        end_reported = false;
                        if let Some(since) = unfed_since.take() {
                            sink.on_upstream_first_frame(since.elapsed());
                        }
                    }
                    let checked = msg.payload.clone();
                    // `None`: a frame the new upstream replays that viewers already have.
                    if let Some(ts) = rebaser.map(kind, timestamp, is_config) {
                        sink.on_media(MediaMessage {
                            timestamp: ts,
                            ..msg
                        });
                    }
                    // Checked after it went on: verification never delays a frame.
                    if let Some(v) = verifier.as_mut()
                        && let Some(Verdict::Failed { reason, frames }) =
                            v.on_message(crate::integrity::frame_kind(kind), timestamp, &checked)
                    {
                        let detail = format!("{reason} ({frames} frames)");
                        sink.on_integrity_failure(&url_text, reason.label(), &detail);
                        return ControlFlow::Break(detail);
                    }
                }
                PullEvent::PublisherEnded => {
                    settle_unverified(&mut verifier, &url_text);
                    if !end_reported {
                        info!(upstream = %url_text, "publisher ended");
                        end_reported = true;
                        sink.on_end_of_stream();
                    }
                }
                PullEvent::PublisherStarted => {
                    info!(upstream = %url_text, "publisher is back");
                    // A new publisher brings a new clock; re-anchor on its first frame.
                    rebaser.restart_timeline();
                    states.report(UpstreamState::Connected {
                        url: url_text.clone(),
                    });
                }
            }
            ControlFlow::Continue(())
        });
        let preferred = quarantine.allowed_before(plan.next, tokio::time::Instant::now());
        let probe = probe_preferred(&urls, &preferred, &cfg, &opts, &cancel);
        let end = tokio::select! {
            end = pull => end,
            better = probe => {
                // The current connection is dropped (socket closed) here; the rebaser and the
                // sequence headers the new upstream sends keep viewers' playback continuous.
                info!(from = %url_text, to = %urls[better], "moving back to a preferred upstream");
                plan.switch_to(better);
                unfed_since = Some(tokio::time::Instant::now());
                continue;
            }
        };

        let (error, played_for, publisher_ended) = match end {
            ConnectionEnd::Cancelled => {
                debug!("cancelled");
                return;
            }
            ConnectionEnd::Ended {
                error,
                played_for,
                publisher_ended,
            } => (error, played_for, publisher_ended),
        };
        let healthy = played_for >= opts.healthy_after;
        let tampered = matches!(error, ConnectionError::Integrity(_));
        let outcome = match &error {
            _ if !played_for.is_zero() => AttemptOutcome::Played,
            ConnectionError::Session(SessionError::StreamNotFound(_)) => {
                AttemptOutcome::StreamAbsent
            }
            _ => AttemptOutcome::Unreachable,
        };
        // Within the absence's first seconds a "not found" is no failure and is retried soon.
        let now = tokio::time::Instant::now();
        let newly_absent = outcome == AttemptOutcome::StreamAbsent && !absence.answered(index);
        absence.record(index, outcome, now);
        let absent_fast = outcome == AttemptOutcome::StreamAbsent
            && absence.fast_window_open(&opts.absent_retry, now);
        if absent_fast {
            plan.record_absent();
        } else {
            plan.record(healthy, publisher_ended);
        }
        if tampered {
            quarantine.mark(index, tokio::time::Instant::now());
        }
        plan.next = quarantine.next_allowed(plan.next, tokio::time::Instant::now());
        // After the publisher ended, retry quietly: a publisher may come back.
        quiet = publisher_ended || (quiet && !healthy);
        // Failed attempts keep the first loss's time. After the publisher ended the next frame
        // waits for a publisher, not for a connection: not timed.
        unfed_since = match (quiet, unfed_since) {
            (true, _) => None,
            (false, Some(since)) => Some(since),
            (false, None) => Some(tokio::time::Instant::now()),
        };
        let last_error = if quiet {
            format!("publisher ended; {url_text}: {error}")
        } else {
            format!("{url_text}: {error}")
        };
        if quiet {
            debug!(error = %last_error, "upstream closed after end of stream; retrying");
        } else if absent_fast {
            // Several a second while it lasts: logged once per upstream, not per attempt.
            if newly_absent {
                info!(error = %last_error, "upstream does not have the stream yet; retrying soon");
            } else {
                debug!(error = %last_error, "upstream still without the stream");
            }
        } else {
            warn!(error = %last_error, played_ms = played_for.as_millis() as u64, "upstream lost");
        }
        if plan.all_failed() && !quiet {
            states.report(UpstreamState::Failed);
        } else if plan.ever_connected || quiet {
            states.report(UpstreamState::Reconnecting { last_error });
        }

        // After tampering the next upstream is tried at once: it is not a connection problem.
        let delay = if tampered {
            std::time::Duration::ZERO
        } else if let Some(delay) =
            absence.fast_delay(&opts.absent_retry, index, plan.next, now, jitter_sample())
        {
            delay
        } else {
            opts.backoff.delay(plan.failures, jitter_sample())
        };
        if !delay.is_zero() {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// A new connection or an ended publisher: frames still waiting for their signature cannot
/// be checked any more (logged, not a failure).
fn settle_unverified(verifier: &mut Option<Verifier>, upstream: &str) {
    if let Some(Verdict::Unverified { frames }) = verifier.as_mut().and_then(|v| v.discontinuity())
    {
        debug!(
            upstream,
            frames, "frames left unverified at a break in the stream"
        );
    }
}

/// Resolves with the index (into `urls`) of the first upstream of `preferred` that plays up
/// to a video keyframe, probing after `return_to_preferred_after` and then every
/// `preferred_probe_interval`. Never resolves when `preferred` is empty or the feature is off.
async fn probe_preferred(
    urls: &[UpstreamUrl],
    preferred: &[usize],
    cfg: &PullerConfig,
    opts: &PullerOptions,
    cancel: &CancellationToken,
) -> usize {
    let Some(after) = opts
        .return_to_preferred_after
        .filter(|_| !preferred.is_empty())
    else {
        return std::future::pending().await;
    };
    tokio::time::sleep(after).await;
    loop {
        for &i in preferred {
            let url = &urls[i];
            let done = cancel.child_token();
            let mut keyframe = false;
            let attempt = connection::run(url, &cfg.app, &cfg.stream, opts, &done, |ev| {
                if let PullEvent::Media { kind, payload, .. } = ev {
                    let msg = MediaMessage::new(kind, 0, payload);
                    if msg.is_video_keyframe() && !msg.is_sequence_header() {
                        keyframe = true;
                        done.cancel();
                    }
                }
                ControlFlow::Continue(())
            });
            let limit = opts.setup_timeout + opts.idle_timeout;
            let _ = tokio::time::timeout(limit, attempt).await;
            if keyframe {
                return i;
            }
            debug!(upstream = %url, "preferred upstream not ready yet");
        }
        tokio::time::sleep(opts.preferred_probe_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_round_walks_the_list_in_order() {
        let mut p = FailoverPlan::new(3);
        assert_eq!(p.next, 0);
        p.record(false, false);
        assert_eq!((p.next, p.failures, p.all_failed()), (1, 1, false));
        p.record(false, false);
        p.record(false, false);
        assert_eq!((p.next, p.failures, p.all_failed()), (0, 3, true));
    }

    #[test]
    fn losing_a_healthy_upstream_moves_on_at_once() {
        let mut p = FailoverPlan::new(2);
        p.record(true, false);
        assert_eq!((p.next, p.failures), (1, 0));
        assert!(p.ever_connected);
    }

    #[test]
    fn publisher_end_returns_to_the_preferred_upstream() {
        let mut p = FailoverPlan::new(3);
        p.record(false, false);
        assert_eq!(p.next, 1);
        p.record(true, true);
        assert_eq!(p.next, 0);
    }

    #[test]
    fn single_upstream_keeps_retrying_it() {
        let mut p = FailoverPlan::new(1);
        p.record(false, false);
        assert_eq!((p.next, p.all_failed()), (0, true));
    }

    use std::sync::Mutex;
    use std::time::Duration;

    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::upstream::BackoffPolicy;

    #[derive(Default)]
    struct Recorder {
        states: Mutex<Vec<UpstreamState>>,
    }

    impl MediaSink for Recorder {
        fn on_media(&self, _msg: MediaMessage) {}
        fn on_upstream_state(&self, state: UpstreamState) {
            self.states.lock().unwrap().push(state);
        }
        fn on_end_of_stream(&self) {}
    }

    fn fast() -> PullerOptions {
        PullerOptions {
            backoff: BackoffPolicy {
                initial: Duration::from_millis(10),
                factor: 2.0,
                max: Duration::from_millis(40),
                jitter: 0.0,
            },
            setup_timeout: Duration::from_millis(500),
            ..PullerOptions::default()
        }
    }

    fn config(upstreams: Vec<String>) -> PullerConfig {
        PullerConfig {
            upstreams,
            app: "live".into(),
            stream: "s".into(),
        }
    }

    /// A server that completes the RTMP handshake, then sends `after` and keeps the socket open.
    async fn server_sending(after: &'static [u8]) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut hs = Handshake::new(PeerType::Server);
                    let mut buf = vec![0u8; 8192];
                    loop {
                        let Ok(n) = sock.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        match hs.process_bytes(&buf[..n]) {
                            Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                                let _ = sock.write_all(&response_bytes).await;
                            }
                            Ok(HandshakeProcessResult::Completed { response_bytes, .. }) => {
                                let _ = sock.write_all(&response_bytes).await;
                                break;
                            }
                            Err(_) => return,
                        }
                    }
                    let _ = sock.write_all(after).await;
                    let _ = sock.read(&mut buf).await;
                });
            }
        });
        format!("rtmp://{addr}/live")
    }

    async fn wait_for_failed(rec: &Recorder) -> bool {
        for _ in 0..200 {
            if rec.states.lock().unwrap().contains(&UpstreamState::Failed) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn invalid_urls_fail_at_once() {
        let rec = Arc::new(Recorder::default());
        let handle = crate::upstream::spawn_puller_with(
            config(vec!["http://x/live".into(), "rtmp://h:0/live".into()]),
            fast(),
            rec.clone(),
            CancellationToken::new(),
        );
        tokio::time::timeout(Duration::from_secs(1), handle)
            .await
            .expect("ends by itself")
            .unwrap();
        assert_eq!(
            *rec.states.lock().unwrap(),
            vec![UpstreamState::Connecting, UpstreamState::Failed]
        );
    }

    #[tokio::test]
    async fn refused_and_garbage_upstreams_fail_without_panic_and_cancel_is_prompt() {
        // One port that refuses, one server that answers the handshake with garbage chunks.
        let refused = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            format!("rtmp://{}/live", l.local_addr().unwrap())
        };
        let garbage = server_sending(&[0xc3; 256]).await;
        let rec = Arc::new(Recorder::default());
        let cancel = CancellationToken::new();
        let handle = crate::upstream::spawn_puller_with(
            config(vec![refused, garbage]),
            fast(),
            rec.clone(),
            cancel.clone(),
        );
        assert!(
            wait_for_failed(&rec).await,
            "{:?}",
            rec.states.lock().unwrap()
        );
        // Never connected: no Reconnecting noise, one Connecting then one Failed.
        assert_eq!(
            *rec.states.lock().unwrap(),
            vec![UpstreamState::Connecting, UpstreamState::Failed]
        );
        cancel.cancel();
        tokio::time::timeout(Duration::from_millis(500), handle)
            .await
            .expect("stops within 500 ms of cancel")
            .expect("no panic");
    }

    #[tokio::test]
    async fn silent_upstream_hits_the_setup_timeout() {
        let silent = server_sending(b"").await;
        let rec = Arc::new(Recorder::default());
        let cancel = CancellationToken::new();
        let handle = crate::upstream::spawn_puller_with(
            config(vec![silent]),
            fast(),
            rec.clone(),
            cancel.clone(),
        );
        assert!(
            wait_for_failed(&rec).await,
            "{:?}",
            rec.states.lock().unwrap()
        );
        cancel.cancel();
        tokio::time::timeout(Duration::from_millis(500), handle)
            .await
            .expect("stops within 500 ms of cancel")
            .expect("no panic");
    }

    /// An upstream that accepts play, says the publisher ended, then stays silent. Returns its URL,
    /// a connection counter and every byte received after the end-of-stream status.
    async fn ended_then_silent_server() -> (
        String,
        Arc<std::sync::atomic::AtomicUsize>,
        Arc<Mutex<Vec<u8>>>,
    ) {
        use rml_rtmp::sessions::{
            ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
        };
        use std::collections::HashMap;
        use surge_wire::amf0::{self, Amf0Value};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let after_end = Arc::new(Mutex::new(Vec::new()));
        let (conns, after) = (connections.clone(), after_end.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                conns.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let after = after.clone();
                tokio::spawn(async move {
                    let mut hs = Handshake::new(PeerType::Server);
                    let mut buf = vec![0u8; 8192];
                    let mut rest = loop {
                        let Ok(n) = sock.read(&mut buf).await else {
                            return;
                        };
                        match hs.process_bytes(&buf[..n]) {
                            Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                                let _ = sock.write_all(&response_bytes).await;
                            }
                            Ok(HandshakeProcessResult::Completed {
                                response_bytes,
                                remaining_bytes,
                            }) => {
                                let _ = sock.write_all(&response_bytes).await;
                                break remaining_bytes;
                            }
                            _ => return,
                        }
                    };
                    let (mut server, init) =
                        ServerSession::new(ServerSessionConfig::new()).unwrap();
                    for r in init {
                        if let ServerSessionResult::OutboundResponse(p) = r {
                            let _ = sock.write_all(&p.bytes).await;
                        }
                    }
                    let mut ended = false;
                    loop {
                        if !ended {
                            let mut out = Vec::new();
                            for r in server.handle_input(&rest).unwrap_or_default() {
                                match r {
                                    ServerSessionResult::OutboundResponse(p) => out.extend(p.bytes),
                                    ServerSessionResult::RaisedEvent(
                                        ServerSessionEvent::ConnectionRequested {
                                            request_id, ..
                                        },
                                    ) => {
                                        for r in server.accept_request(request_id).unwrap() {
                                            if let ServerSessionResult::OutboundResponse(p) = r {
                                                out.extend(p.bytes);
                                            }
                                        }
                                    }
                                    ServerSessionResult::RaisedEvent(
                                        ServerSessionEvent::PlayStreamRequested {
                                            request_id, ..
                                        },
                                    ) => {
                                        for r in server.accept_request(request_id).unwrap() {
                                            if let ServerSessionResult::OutboundResponse(p) = r {
                                                out.extend(p.bytes);
                                            }
                                        }
                                        // onStatus UnpublishNotify on a chunk stream of its own.
                                        let mut info = HashMap::new();
                                        info.insert(
                                            "code".to_string(),
                                            Amf0Value::Utf8String(
                                                "NetStream.Play.UnpublishNotify".into(),
                                            ),
                                        );
                                        let body = amf0::encode(vec![
                                            Amf0Value::Utf8String("onStatus".into()),
                                            Amf0Value::Number(0.0),
                                            Amf0Value::Null,
                                            Amf0Value::Object(info),
                                        ])
                                        .unwrap();
                                        surge_wire::write_message(
                                            &mut out,
                                            9,
                                            surge_wire::message::MSG_AMF0_COMMAND,
                                            1,
                                            0,
                                            &body,
                                            body.len(),
                                        );
                                        ended = true;
                                    }
                                    _ => {}
                                }
                            }
                            let _ = sock.write_all(&out).await;
                        } else {
                            after.lock().unwrap().extend_from_slice(&rest);
                        }
                        let Ok(n) = sock.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        rest = buf[..n].to_vec();
                    }
                });
            }
        });
        (format!("rtmp://{addr}/live"), connections, after_end)
    }

    #[tokio::test]
    async fn after_end_of_stream_a_silent_upstream_is_pinged_then_retried_quietly() {
        let (url, connections, after_end) = ended_then_silent_server().await;
        struct Ends(std::sync::atomic::AtomicUsize, Mutex<Vec<UpstreamState>>);
        impl MediaSink for Ends {
            fn on_media(&self, _msg: MediaMessage) {}
            fn on_upstream_state(&self, state: UpstreamState) {
                self.1.lock().unwrap().push(state);
            }
            fn on_end_of_stream(&self) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let sink = Arc::new(Ends(Default::default(), Default::default()));
        let cancel = CancellationToken::new();
        let opts = PullerOptions {
            quiet_ping_interval: Duration::from_millis(200),
            ..fast()
        };
        let handle = crate::upstream::spawn_puller_with(
            config(vec![url]),
            opts,
            sink.clone(),
            cancel.clone(),
        );
        for _ in 0..200 {
            if connections.load(std::sync::atomic::Ordering::SeqCst) >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
        tokio::time::timeout(Duration::from_millis(500), handle)
            .await
            .expect("prompt cancel")
            .unwrap();
        assert!(
            connections.load(std::sync::atomic::Ordering::SeqCst) >= 3,
            "quiet retries after the silent connection was dropped"
        );
        let after = after_end.lock().unwrap();
        assert!(
            after
                .windows(10)
                .any(|w| w == [0, 0, 6, 4, 0, 0, 0, 0, 0, 6].as_slice()),
            "a PingRequest reached the upstream: {after:?}; states {:?}",
            sink.1.lock().unwrap()
        );
        // Reported once, not once per reconnect.
        assert_eq!(sink.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        let states = sink.1.lock().unwrap();
        assert!(
            states.iter().any(|s| matches!(s, UpstreamState::Reconnecting { last_error } if last_error.starts_with("publisher ended"))),
            "{states:?}"
        );
    }
}
