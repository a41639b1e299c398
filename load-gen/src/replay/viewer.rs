//! One viewer: reaches its relay (straight, or placed by the region's locator: see
//! [`super::reach`]), plays (RTMP or HTTP-FLV), measures what it gets, and reconnects after
//! a failure — after `Retry-After` when refused — until the replay makes it leave (its task
//! is aborted; so a refused viewer keeps asking at most for its scheduled lifetime). Reads go
//! through one buffer shared by all viewers of the thread; each viewer keeps only
//! parser state, so thousands fit in one process.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::connect;
use super::integrity::SessionCheck;
use super::pace::{Next, Pace, Pacer};
use super::placement::Placement;
use super::qoe::{Jitter, Player};
use super::reach::{self, Fail};
use super::socket::{Read1, ViewerSocket};
use super::stats::Stats;
use super::target::{Endpoint, Protocol};
use crate::flv::{PREFIX_CAP, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use crate::rtmp_client::{Control, RtmpConnection, status_code};
use surge_integrity::KeyRing;
use surge_wire::amf0;
use surge_wire::avc::{CODEC_AVC, VideoHeader, nal_length_size};
use surge_wire::flv_stream::{self, FlvStreamParser, MessagePrefix};
use surge_wire::http_chunked::ChunkedDecoder;
use surge_wire::message::{MSG_AMF0_COMMAND, MSG_AMF0_DATA, MSG_AUDIO, MSG_VIDEO};
use surge_wire::sei::{TimingStamp, find_timing_in_avcc};
use surge_wire::{ChunkLimits, PayloadPolicy};

/// How long a new viewer may wait for its first keyframe.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(15);
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// RTMP limits of a verifying viewer: whole media messages, as large as FLV tags may be.
const WHOLE_LIMITS: ChunkLimits = ChunkLimits {
    max_chunk_size: 1 << 24,
    max_message_len: flv_stream::MAX_TAG as u32,
    max_chunk_streams: 64,
    max_pending_bytes: 32 << 20,
};

/// What one viewer connects to.
#[derive(Debug, Clone)]
pub struct ViewerSpec {
    pub region: usize,
    pub protocol: Protocol,
    /// The region's target; with several (a pool), each session picks one at random.
    pub endpoints: Rc<[Endpoint]>,
    pub app: Rc<str>,
    pub stream: Rc<str>,
    /// Leave TCP quick-ACK mode after each read (fewer ACKs; see `--delayed-acks`).
    pub delayed_acks: bool,
    /// Which viewer of the run this is (the report lists integrity counts per viewer).
    pub viewer: u64,
    /// `--verify-key`: check every frame (whole payloads are read, not just prefixes).
    pub verify: Option<Rc<KeyRing>>,
    /// HLS: start this many segments from the playlist's end.
    pub hls_start_segments: usize,
    /// How fast it reads once joined (`--slow-viewers`; RTMP and HTTP-FLV).
    pub pace: Pace,
}

/// Why a session ended (other than being told to leave).
#[derive(Debug)]
pub enum SessionEnd {
    /// The server went away after playback began.
    Disconnected(String),
    /// Could not start, or broke the protocol.
    Error(String),
    /// Probe mode: the first keyframe arrived.
    Probed(Duration),
    /// Nothing had room (counted as refused when it happened): ask again after this long.
    Refused(Duration),
}

/// The measurements of one session; recorded into [`Stats`] when dropped, so a
/// viewer told to leave (task aborted) is accounted for too.
pub(super) struct Session {
    pub(super) stats: Rc<RefCell<Stats>>,
    region: usize,
    pub(super) t0: Instant,
    /// Unix time of the request: frames published before it came from a cache.
    pub(super) t0_unix_us: u64,
    /// The QoE players, one per modelled pre-buffer (see `Stats::qoe`).
    players: Vec<Player>,
    jitter: Jitter,
    pub(super) playing: bool,
    first_media: Option<f64>,
    nal_length_size: usize,
    last_sequence: Option<u64>,
    /// The relay this session was sent to, once known.
    relay: Option<String>,
    viewer: u64,
    protocol: &'static str,
    check: Option<SessionCheck>,
    /// The viewer's last picture, over its sessions: gaps and reconnect times.
    last_picture: Rc<Cell<Option<Instant>>>,
    /// A picture of this session has arrived.
    pictures: bool,
}

impl Session {
    fn new(
        stats: Rc<RefCell<Stats>>,
        spec: &ViewerSpec,
        last_picture: Rc<Cell<Option<Instant>>>,
    ) -> Self {
        let region = spec.region;
        let players = {
            let mut s = stats.borrow_mut();
            s.session_started(region);
            s.qoe.new_players()
        };
        let t0 = Instant::now();
        let t0_unix_us = stats.borrow().clock.unix_us(t0);
        Self {
            stats,
            region,
            t0,
            t0_unix_us,
            players,
            jitter: Jitter::default(),
            playing: false,
            first_media: None,
            nal_length_size: 4,
            last_sequence: None,
            relay: None,
            viewer: spec.viewer,
            protocol: match spec.protocol {
                Protocol::Rtmp => "rtmp",
                Protocol::Flv => "flv",
                Protocol::Hls => "hls",
            },
            check: spec.verify.as_deref().cloned().map(SessionCheck::new),
            last_picture,
            pictures: false,
        }
    }

    /// With `--verify-key`: one message (whole payload) for the session's verifier.
    fn check(&mut self, stats: &mut Stats, type_id: u8, timestamp: u32, payload: &[u8]) {
        if let (Some(check), Some(run)) = (self.check.as_mut(), stats.integrity.as_mut()) {
            check.on_message(run, type_id, timestamp, payload);
        }
    }

    /// The session was sent to `relay`.
    pub(super) fn placed(&mut self, relay: String, how: Placement) {
        self.stats.borrow_mut().placed(self.region, &relay, how);
        self.relay = Some(relay);
    }

    fn refused(&self) {
        self.stats.borrow_mut().refused(self.region);
    }

    fn ms_since_start(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64() * 1000.0
    }

    /// Handles one media message received at `now`.
    fn on_media(&mut self, stats: &mut Stats, m: &MessagePrefix<'_>, now: Instant) {
        if self.first_media.is_none() {
            self.first_media = Some(self.ms_since_start(now));
        }
        stats.qoe.media_bytes += m.len as u64;
        if m.type_id != TAG_VIDEO {
            return;
        }
        let Some(header) = VideoHeader::parse(m.prefix) else {
            return;
        };
        if header.is_avc_sequence_header() {
            if let Some(n) = nal_length_size(m.prefix) {
                self.nal_length_size = n;
            }
            return;
        }
        if !self.begin(stats, header.keyframe, now) {
            return;
        }
        if header.codec == CODEC_AVC && !header.is_avc_frame() {
            return; // end of sequence: not a picture
        }
        let stamp = if header.is_avc_frame() {
            m.prefix
                .get(5..)
                .and_then(|nals| find_timing_in_avcc(nals, self.nal_length_size))
        } else {
            None
        };
        self.on_picture(stats, m.timestamp_ms, stamp, now);
    }

    /// Playback begins at a keyframe: false while the session still waits for one.
    pub(super) fn begin(&mut self, stats: &mut Stats, keyframe: bool, now: Instant) -> bool {
        if self.first_media.is_none() {
            self.first_media = Some(self.ms_since_start(now));
        }
        if !self.playing {
            if !keyframe {
                return false; // a player cannot start before a keyframe
            }
            self.playing = true;
            let startup = self.ms_since_start(now);
            stats.began_playing(
                self.region,
                self.relay.as_deref(),
                self.first_media.unwrap_or(startup),
                startup,
            );
        }
        true
    }

    /// One picture (media timestamp `ts_ms`, the timing SEI if it had one) arrived at `now`:
    /// the player models, lag, gaps and sequence checks. RTMP, HTTP-FLV and HLS alike.
    pub(super) fn on_picture(
        &mut self,
        stats: &mut Stats,
        ts_ms: u32,
        stamp: Option<TimingStamp>,
        now: Instant,
    ) {
        if let Some(before) = self.last_picture.get() {
            let gap_ms = now.saturating_duration_since(before).as_secs_f64() * 1000.0;
            stats.frame_gap(gap_ms, !self.pictures);
        }
        self.last_picture.set(Some(now));
        self.pictures = true;
        let now_ms = self.ms_since_start(now);
        self.jitter.on_arrival(now_ms);
        // The broadcaster's clock on the session's: live frames only (as the delivery lag).
        let publish_ms = stamp
            .filter(|s| s.publish_us >= self.t0_unix_us)
            .map(|s| (s.publish_us - self.t0_unix_us) as f64 / 1000.0);
        let measuring = stats.measuring();
        for (player, model) in self.players.iter_mut().zip(stats.qoe.models.iter_mut()) {
            let arrival = player.on_frame(now_ms, ts_ms, publish_ms, &mut |p| {
                model.on_played(p, measuring)
            });
            model.on_arrival(arrival);
        }
        match stamp {
            // Published before this viewer asked: replayed from a GOP cache, not live lag.
            Some(s) if s.publish_us < self.t0_unix_us => stats.on_catchup_frame(),
            Some(s) => {
                let lag = stats.clock.unix_us(now).saturating_sub(s.publish_us);
                stats.on_frame(self.region, Some(lag));
            }
            None => stats.on_frame(self.region, None),
        }
        if let Some(s) = stamp {
            if let Some(last) = self.last_sequence {
                if s.sequence > last + 1 {
                    stats.frames_missing += s.sequence - last - 1;
                } else if s.sequence <= last {
                    stats.frames_out_of_order += 1;
                }
            }
            self.last_sequence = Some(s.sequence);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let end_ms = self.ms_since_start(Instant::now());
        let mut stats = self.stats.borrow_mut();
        stats
            .qoe
            .session_ended(&mut self.players, &self.jitter, end_ms);
        stats.session_ended(self.region, self.relay.as_deref(), self.playing);
        if let (Some(check), Some(run)) = (self.check.take(), stats.integrity.as_mut()) {
            run.session_ended(self.viewer, self.protocol, &check.finish());
        }
    }
}

/// Runs a viewer until its task is aborted: sessions, with a pause after each failure.
pub async fn run_viewer(spec: ViewerSpec, stats: Rc<RefCell<Stats>>) {
    let last_picture = Rc::new(Cell::new(None));
    loop {
        let pause = match run_session(&spec, &stats, false, &last_picture).await {
            SessionEnd::Disconnected(why) => {
                stats.borrow_mut().disconnect(why);
                RETRY_DELAY
            }
            SessionEnd::Error(why) => {
                stats.borrow_mut().error(why);
                RETRY_DELAY
            }
            SessionEnd::Refused(wait) => wait,
            SessionEnd::Probed(_) => RETRY_DELAY,
        };
        tokio::time::sleep(pause).await;
    }
}

/// One session; with `probe`, ends at the first keyframe.
/// `last_picture`: the viewer's last picture before this session (shared with it).
pub async fn run_session(
    spec: &ViewerSpec,
    stats: &Rc<RefCell<Stats>>,
    probe: bool,
    last_picture: &Rc<Cell<Option<Instant>>>,
) -> SessionEnd {
    let mut session = Session::new(stats.clone(), spec, last_picture.clone());
    let endpoint = pick(&spec.endpoints);
    // Through a locator or a pool a full relay's refusal is a placement outcome (counted,
    // retried); with one relay as the target it stays an error, as it always was.
    let refusals = endpoint.is_locator() || spec.endpoints.len() > 1;
    let result = match spec.protocol {
        Protocol::Rtmp => rtmp_session(spec, endpoint, refusals, &mut session, probe).await,
        Protocol::Flv => flv_session(spec, endpoint, refusals, &mut session, probe).await,
        Protocol::Hls => super::hls::session(spec, endpoint, &mut session, probe).await,
    };
    match result {
        Ok(()) => SessionEnd::Probed(session.t0.elapsed()),
        Err(Fail::Refused(wait)) => {
            session.refused();
            SessionEnd::Refused(wait)
        }
        Err(Fail::Other(e)) if session.playing && !probe => {
            if let Some(relay) = &session.relay {
                stats.borrow_mut().placement[session.region].disconnected(relay);
            }
            SessionEnd::Disconnected(e)
        }
        Err(Fail::Other(e)) => SessionEnd::Error(e),
    }
}

/// One of a pool's targets, uniformly at random per session (a Service's per-connection
/// choice); the only target otherwise.
fn pick(endpoints: &[Endpoint]) -> &Endpoint {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    if endpoints.len() <= 1 {
        return &endpoints[0];
    }
    // splitmix64 over a shared counter: cheap, and independent of any viewer's timing.
    let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    &endpoints[(z % endpoints.len() as u64) as usize]
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "server closed the connection".into(),
        _ => e.to_string(),
    }
}

async fn with_first_frame_timeout<T, E: From<String>>(
    session: &Session,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let left = FIRST_FRAME_TIMEOUT.saturating_sub(session.t0.elapsed());
    tokio::time::timeout(left, fut)
        .await
        .map_err(|_| E::from(format!("no video within {FIRST_FRAME_TIMEOUT:?}")))?
}

async fn rtmp_session(
    spec: &ViewerSpec,
    endpoint: &Endpoint,
    refusals: bool,
    session: &mut Session,
    probe: bool,
) -> Result<(), Fail> {
    let to =
        with_first_frame_timeout(session, reach::rtmp(endpoint, &spec.app, &spec.stream)).await?;
    session.placed(to.relay.clone(), to.placement);
    let setup = async {
        let socket = connect::tcp(&to.addr, spec.pace.wan_path())
            .await
            .map_err(|e| format!("rtmp connect: {e}"))?;
        socket.set_nodelay(true).map_err(|e| describe_io(&e))?;
        let mut conn = RtmpConnection::over(socket, &to.app, &to.tc_url)
            .await
            .map_err(|e| format!("rtmp connect: {e}"))?;
        if spec.verify.is_some() {
            // Before play, so no media message is in progress: hashes need every byte.
            conn.reader.set_policy(WHOLE_LIMITS, PayloadPolicy::Whole);
        }
        let id = conn
            .create_stream()
            .await
            .map_err(|e| format!("rtmp createStream: {e}"))?;
        conn.play(id, &to.stream)
            .await
            .map_err(|e| format!("rtmp play: {e}"))?;
        Ok::<_, String>(conn)
    };
    let conn = with_first_frame_timeout(session, setup).await?;
    let (socket, mut reader, mut control) = conn.into_parts();
    let socket = ViewerSocket::new(socket, spec.delayed_acks).map_err(|e| describe_io(&e))?;
    let mut replies: Vec<u8> = Vec::new();
    let mut failure: Option<String> = None;
    // A relay refuses a play for lack of room with NetStream.Play.Failed (then closes).
    let mut refused_for_room = false;
    let stats = session.stats.clone();
    let mut pacer = Pacer::new(spec.pace.clone());
    loop {
        let (playing, t0) = (session.playing, session.t0);
        let next = pacer.before_read(playing).await;
        let mut got = 0;
        let read = socket.read_with(next.limit(), |data| {
            got = data.len();
            let now = Instant::now();
            let mut st = stats.borrow_mut();
            st.on_bytes(data.len());
            control.on_bytes(data.len(), &mut replies);
            reader.push(data);
            while let Some(m) = reader.next_message().map_err(|e| format!("rtmp: {e}"))? {
                match m.type_id {
                    MSG_AUDIO | MSG_VIDEO => {
                        let media = MessagePrefix {
                            type_id: m.type_id,
                            timestamp_ms: m.timestamp,
                            len: m.length as usize,
                            prefix: &m.payload,
                        };
                        session.on_media(&mut st, &media, now);
                        session.check(&mut st, m.type_id, m.timestamp, &m.payload);
                    }
                    MSG_AMF0_DATA => session.check(&mut st, m.type_id, m.timestamp, &m.payload),
                    t if Control::handles(t) => control.on_message(t, &m.payload, &mut replies),
                    MSG_AMF0_COMMAND => {
                        if let Ok(cmd) = amf0::decode(&m.payload)
                            && let Some(code) = status_code(&cmd)
                            && (code.contains("NotFound") || code.contains("Failed"))
                        {
                            refused_for_room = refusals && code == "NetStream.Play.Failed";
                            failure = Some(format!("rtmp play refused: {code}"));
                        }
                    }
                    _ => {}
                }
            }
            Ok::<(), String>(())
        });
        let Some(read) = paced(playing, t0, next, read).await? else {
            return Ok(()); // a stopped viewer the relay still serves
        };
        match read.map_err(|e| describe_io(&e))? {
            Read1::Eof => return Err("server closed the connection".into()),
            Read1::Data(parsed) => parsed?,
        }
        pacer.consumed(got);
        if let Some(f) = failure.take() {
            if refused_for_room && !session.playing {
                // No Retry-After over RTMP: the locator's default wait.
                return Err(Fail::Refused(super::locator::retry_after(None)));
            }
            return Err(f.into());
        }
        if probe && session.playing {
            return Ok(());
        }
        if !replies.is_empty() {
            socket
                .write_all(&replies)
                .await
                .map_err(|e| describe_io(&e))?;
            replies.clear();
        }
    }
}

async fn flv_session(
    spec: &ViewerSpec,
    endpoint: &Endpoint,
    refusals: bool,
    session: &mut Session,
    probe: bool,
) -> Result<(), Fail> {
    let to = with_first_frame_timeout(
        session,
        reach::flv(
            endpoint,
            refusals,
            &spec.app,
            &spec.stream,
            spec.pace.wan_path(),
        ),
    )
    .await?;
    session.placed(to.relay, to.placement);
    let socket = ViewerSocket::new(to.socket, spec.delayed_acks).map_err(|e| describe_io(&e))?;
    let mut body = FlvBody {
        dechunker: to.head.chunked.then(ChunkedDecoder::new),
        // Verifying hashes every byte: whole tags then.
        parser: FlvStreamParser::new(if spec.verify.is_some() {
            flv_stream::MAX_TAG
        } else {
            PREFIX_CAP
        }),
    };
    let stats = session.stats.clone();
    if !to.leftover.is_empty() {
        let mut st = stats.borrow_mut();
        st.on_bytes(to.leftover.len());
        body.feed(session, &mut st, &to.leftover, Instant::now())?;
    }
    let mut pacer = Pacer::new(spec.pace.clone());
    loop {
        if probe && session.playing {
            return Ok(());
        }
        let (playing, t0) = (session.playing, session.t0);
        let next = pacer.before_read(playing).await;
        let mut got = 0;
        let read = socket.read_with(next.limit(), |data| -> Result<(), String> {
            got = data.len();
            let now = Instant::now();
            let mut st = stats.borrow_mut();
            st.on_bytes(data.len());
            body.feed(session, &mut st, data, now)
        });
        let Some(read) = paced(playing, t0, next, read).await? else {
            return Ok(()); // a stopped viewer the relay still serves
        };
        match read.map_err(|e| describe_io(&e))? {
            Read1::Eof => return Err("server closed the connection".into()),
            Read1::Data(parsed) => parsed?,
        }
        pacer.consumed(got);
    }
}

/// Awaits one read: within the first-frame timeout until the session plays, then without
/// one, except a stopped viewer's final check (`None`: it ended with the connection open).
async fn paced<R>(
    playing: bool,
    t0: Instant,
    next: Next,
    read: impl std::future::Future<Output = std::io::Result<R>>,
) -> Result<Option<std::io::Result<R>>, String> {
    if let Next::FinalCheck(left) = next {
        return Ok(tokio::time::timeout(left, read).await.ok());
    }
    if playing {
        return Ok(Some(read.await));
    }
    let left = FIRST_FRAME_TIMEOUT.saturating_sub(t0.elapsed());
    tokio::time::timeout(left, read)
        .await
        .map(Some)
        .map_err(|_| format!("no video within {FIRST_FRAME_TIMEOUT:?}"))
}

/// An HTTP-FLV response body: chunked framing (when the head said so) and FLV tags.
struct FlvBody {
    dechunker: Option<ChunkedDecoder>,
    parser: FlvStreamParser,
}

impl FlvBody {
    fn feed(
        &mut self,
        session: &mut Session,
        st: &mut Stats,
        mut data: &[u8],
        now: Instant,
    ) -> Result<(), String> {
        let mut on_msg = |m: MessagePrefix<'_>| {
            if m.type_id == TAG_AUDIO || m.type_id == TAG_VIDEO {
                session.on_media(st, &m, now);
            }
            if m.type_id == TAG_AUDIO || m.type_id == TAG_VIDEO || m.type_id == TAG_SCRIPT {
                // Whole tags when verifying (see the parser's cap).
                session.check(st, m.type_id, m.timestamp_ms, m.prefix);
            }
        };
        match self.dechunker.as_mut() {
            Some(d) => {
                // Body bytes are slices of the read buffer: no copy per message.
                while let Some(piece) = d
                    .next_data(&mut data)
                    .map_err(|e| format!("http-flv: {e}"))?
                {
                    self.parser
                        .feed(piece, &mut on_msg)
                        .map_err(|e| format!("http-flv: {e}"))?;
                }
                if d.is_done() {
                    return Err("server ended the response".into());
                }
                Ok(())
            }
            None => self
                .parser
                .feed(data, &mut on_msg)
                .map_err(|e| format!("http-flv: {e}")),
        }
    }
}
