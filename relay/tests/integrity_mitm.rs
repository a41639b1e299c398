//! Signed frames end to end on loopback: an origin signs what ffmpeg publishes
//! (`--sign-key`); a man-in-the-middle proxy sits between it and a downstream relay and
//! rewrites bytes inside video payloads while keeping the RTMP chunk framing valid; the
//! downstream (`--verify-key`, upstreams: the proxy, then the origin directly) must detect it
//! within one group of frames, count it, fail over to the origin, and the viewers — the real
//! `surge-load replay --verify-key`, RTMP and HTTP-FLV, checking every frame — must see the
//! tampered group fail and then only verified frames: none failed, none unverified after the
//! failover. With the proxy passing bytes unchanged nothing is flagged.

mod common;
mod tree_common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::load_gen::{ReplayRun, integrity_per_second, surge_load_bin, verifying_replay};
use common::relay_process::RelayProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tree_common::publish_live;

/// Rewrites bytes of RTMP video messages in a server-to-client byte stream, chunk framing
/// untouched (the chunk headers are parsed to know where payloads are).
struct Tamperer {
    buf: Vec<u8>,
    /// Server handshake bytes still to pass (S0 + S1 + S2).
    handshake_left: usize,
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    enabled: Arc<AtomicBool>,
    tampered: Arc<AtomicU64>,
}

#[derive(Clone, Copy, Default)]
struct ChunkStream {
    length: usize,
    type_id: u8,
    /// Bytes of the current message already passed (0: none in progress).
    done: usize,
    extended: bool,
    /// Second byte of the current message (AVC packet type: 0 is a sequence header).
    packet_type: Option<u8>,
}

/// Offset inside a video message that gets flipped (past the FLV and AVC headers).
const FLIP_AT: usize = 16;

impl Tamperer {
    fn new(enabled: Arc<AtomicBool>, tampered: Arc<AtomicU64>) -> Self {
        Tamperer {
            buf: Vec::new(),
            handshake_left: 1 + 1536 + 1536,
            chunk_size: 128,
            streams: HashMap::new(),
            enabled,
            tampered,
        }
    }

    /// Takes bytes from the server; returns the bytes to forward (complete chunks only).
    fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        if self.handshake_left > 0 {
            let n = self.handshake_left.min(self.buf.len());
            out.extend(self.buf.drain(..n));
            self.handshake_left -= n;
        }
        while let Some(n) = self.one_chunk() {
            out.extend(self.buf.drain(..n));
        }
        out
    }

    /// Parses (and maybe rewrites) the chunk at the start of `buf`; its length when complete.
    fn one_chunk(&mut self) -> Option<usize> {
        let b = &self.buf;
        let b0 = *b.first()?;
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3f {
            0 => (64 + *b.get(1)? as u32, 2),
            1 => (64 + *b.get(1)? as u32 + 256 * *b.get(2)? as u32, 3),
            c => (c as u32, 1),
        };
        let mut cs = self.streams.get(&csid).copied().unwrap_or_default();
        let header_len = [11, 7, 3, 0][fmt as usize];
        let h = b.get(pos..pos + header_len)?;
        let mut ts_field = 0;
        if fmt <= 2 {
            ts_field = u32::from_be_bytes([0, h[0], h[1], h[2]]);
        }
        if fmt <= 1 {
            cs.length = u32::from_be_bytes([0, h[3], h[4], h[5]]) as usize;
            cs.type_id = h[6];
        }
        pos += header_len;
        if fmt <= 2 {
            cs.extended = ts_field == 0xff_ffff;
        }
        if cs.extended {
            b.get(pos..pos + 4)?;
            pos += 4;
        }
        if fmt <= 2 || cs.done == 0 {
            cs.done = 0;
            cs.packet_type = None;
        }
        let take = (cs.length - cs.done).min(self.chunk_size);
        b.get(pos..pos + take)?;
        let start = cs.done;
        if start <= 1 && start + take > 1 {
            cs.packet_type = Some(b[pos + 1 - start]);
        }
        if cs.type_id == 1 && fmt <= 1 && take >= 4 {
            let size = u32::from_be_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]]);
            self.chunk_size = (size & 0x7fff_ffff) as usize;
        }
        let flip = self.enabled.load(Ordering::SeqCst)
            && cs.type_id == 9
            && cs.length > 2 * FLIP_AT
            && cs.packet_type == Some(1)
            && (start..start + take).contains(&FLIP_AT);
        if flip {
            self.buf[pos + FLIP_AT - start] ^= 0x5a;
            self.tampered.fetch_add(1, Ordering::SeqCst);
        }
        cs.done += take;
        if cs.done >= cs.length {
            cs.done = 0;
        }
        self.streams.insert(csid, cs);
        Some(pos + take)
    }
}

/// A TCP proxy to `target` that runs the server's bytes through a [`Tamperer`].
struct Proxy {
    addr: std::net::SocketAddr,
    enabled: Arc<AtomicBool>,
    tampered: Arc<AtomicU64>,
    first_tamper: Arc<Mutex<Option<Instant>>>,
}

impl Proxy {
    async fn start(target: std::net::SocketAddr, tamper: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let enabled = Arc::new(AtomicBool::new(tamper));
        let tampered = Arc::new(AtomicU64::new(0));
        let first_tamper = Arc::new(Mutex::new(None));
        let (en, count, first) = (enabled.clone(), tampered.clone(), first_tamper.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let tamperer = Tamperer::new(en.clone(), count.clone());
                tokio::spawn(pipe(client, server, tamperer, first.clone()));
            }
        });
        Proxy {
            addr,
            enabled,
            tampered,
            first_tamper,
        }
    }

    fn url(&self) -> String {
        format!("rtmp://{}/live", self.addr)
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    mut tamperer: Tamperer,
    first: Arc<Mutex<Option<Instant>>>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let before = tamperer.tampered.load(Ordering::SeqCst);
            let out = tamperer.feed(&buf[..n]);
            if tamperer.tampered.load(Ordering::SeqCst) > before {
                first.lock().expect("lock").get_or_insert_with(Instant::now);
            }
            if cw.write_all(&out).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    tokio::join!(up, down);
}

/// An Ed25519 key pair made by openssl, as an operator would: (private PEM, public PEM).
fn openssl_keys(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("key dir");
    let private = dir.join("sign.pem");
    let public = dir.join("verify.pem");
    let ok = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&private)
        .status()
        .expect("openssl genpkey")
        .success();
    assert!(ok, "openssl genpkey");
    let ok = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .expect("openssl pkey")
        .success();
    assert!(ok, "openssl pkey -pubout");
    (private, public)
}

async fn failures(relay: &RelayProcess, upstream: &str) -> f64 {
    common::metric(
        relay.http,
        "surge_relay_integrity_failures_total",
        &[("stream", "s"), ("upstream", upstream)],
    )
    .await
    .unwrap_or(0.0)
}

async fn upstream_url(relay: &RelayProcess) -> String {
    let stats = common::stats(relay.http).await;
    stats["streams"][0]["upstream"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

struct Setup {
    origin: RelayProcess,
    downstream: RelayProcess,
    proxy: Proxy,
    public: PathBuf,
    _publisher: tree_common::Proc,
    dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn setup(name: &str, tamper: bool) -> Setup {
    let dir = std::env::temp_dir().join(format!("surge-integrity-{name}-{}", std::process::id()));
    let (private, public) = openssl_keys(&dir);
    let origin = RelayProcess::start(&[
        "--tier",
        "origin",
        "--sign-key",
        private.to_str().expect("path"),
    ]);
    let proxy = Proxy::start(origin.rtmp, tamper).await;
    let origin_url = format!("rtmp://{}/live", origin.rtmp);
    let downstream = RelayProcess::start(&[
        "--tier",
        "edge",
        "--upstream",
        &proxy.url(),
        "--upstream",
        &origin_url,
        "--verify-key",
        public.to_str().expect("path"),
    ]);
    let publisher = publish_live(&origin, "s").await;
    Setup {
        origin,
        downstream,
        proxy,
        public,
        _publisher: publisher,
        dir,
    }
}

/// Viewers of the downstream for `seconds`: `surge-load replay --verify-key`, run beside the
/// test's own checks.
fn viewers(s: &Setup, seconds: u32) -> tokio::task::JoinHandle<ReplayRun> {
    let (dir, relay, key) = (
        s.dir.clone(),
        (s.downstream.rtmp, s.downstream.http),
        s.public.clone(),
    );
    tokio::task::spawn_blocking(move || verifying_replay(&dir, relay, "s", &key, 2, seconds))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampering_hop_is_detected_within_a_group_and_failed_over() {
    let _serial = common::real_time_lock().await;
    // Built before anything starts: a build must not eat into the scenario's time.
    tokio::task::spawn_blocking(surge_load_bin)
        .await
        .expect("build surge-load");
    let s = setup("mitm", true).await;
    let origin_url = format!("rtmp://{}/live", s.origin.rtmp);
    let replay = viewers(&s, 20);

    // Detection: the counter moves and the downstream pulls from the origin directly.
    let proxy_url = s.proxy.url();
    assert!(
        common::wait_until(Duration::from_secs(15), || async {
            failures(&s.downstream, &proxy_url).await >= 1.0
                && upstream_url(&s.downstream).await == origin_url
        })
        .await,
        "no detection and failover; downstream log:\n{}",
        s.downstream.log_text()
    );
    let detected = Instant::now();
    let first = s
        .proxy
        .first_tamper
        .lock()
        .expect("lock")
        .expect("the proxy tampered");
    // ffmpeg here sends a keyframe every second: a group is 1 s. Detection comes with the
    // group's signature (up to one group after the tampered frame) plus polling slack.
    let delay = detected - first;
    eprintln!("integrity-metric detection_ms={}", delay.as_millis());
    assert!(
        delay < Duration::from_millis(2_500),
        "detected {delay:?} after the first tampered frame"
    );
    assert!(
        s.downstream
            .log_contains("signed frames failed verification"),
        "the failure is logged"
    );

    let run = replay.await.expect("surge-load replay");
    let i = &run.report["integrity"];
    let seconds = integrity_per_second(&run.report);
    eprintln!("integrity-metric viewers={i}");
    eprintln!("integrity-metric per_second={seconds:?}");
    // The viewers' own check caught the tampered frames (forwarded as they arrived)...
    assert!(
        i["failed"].as_u64().unwrap_or(0) > 0,
        "the viewers caught the tampered frames: {i:#}"
    );
    assert!(
        i["failures_by_reason"].get("not_signed").is_some()
            || i["failures_by_reason"].get("timing").is_some(),
        "{i:#}"
    );
    // ...in the first seconds only (the tampered group, then the failover)...
    let last_failed = seconds
        .iter()
        .rposition(|&(_, failed, _)| failed > 0)
        .expect("a second with failed frames");
    let first_failed = seconds
        .iter()
        .position(|&(_, failed, _)| failed > 0)
        .expect("a second with failed frames");
    assert!(
        last_failed - first_failed <= 2,
        "failures spread over seconds {first_failed}..={last_failed}: {seconds:?}"
    );
    // ...and after the failover, every frame verified: none failed, none unverified.
    let after = &seconds[last_failed + 1..];
    let (verified, failed, unverified) = after
        .iter()
        .fold((0, 0, 0), |t, s| (t.0 + s.0, t.1 + s.1, t.2 + s.2));
    eprintln!(
        "integrity-metric after_failover seconds={} verified={verified} failed={failed} unverified={unverified}",
        after.len()
    );
    assert!(after.len() >= 12, "{seconds:?}");
    assert_eq!(
        (failed, unverified),
        (0, 0),
        "after the failover: {seconds:?}"
    );
    // Two viewers, 25 fps video and ~43 fps audio, 12 s at least.
    assert!(
        verified > 1_000,
        "frames verified after the failover: {seconds:?}"
    );
    assert!(
        run.stdout.contains("signed frames: verified"),
        "summary: {}",
        run.stdout
    );

    assert_eq!(
        upstream_url(&s.downstream).await,
        origin_url,
        "not back to the tampering hop"
    );
    assert_eq!(
        failures(&s.downstream, &proxy_url).await,
        1.0,
        "counted once"
    );
    let tampered = s.proxy.tampered.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        s.proxy.tampered.load(Ordering::SeqCst),
        tampered,
        "nothing pulled through the proxy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_hop_raises_no_alarm() {
    let _serial = common::real_time_lock().await;
    // Built before anything starts: a build must not eat into the scenario's time.
    tokio::task::spawn_blocking(surge_load_bin)
        .await
        .expect("build surge-load");
    let s = setup("honest", false).await;
    let run = viewers(&s, 20).await.expect("surge-load replay");
    let proxy_url = s.proxy.url();
    assert_eq!(
        failures(&s.downstream, &proxy_url).await,
        0.0,
        "{}",
        s.downstream.log_text()
    );
    assert_eq!(upstream_url(&s.downstream).await, proxy_url);
    assert!(!s.proxy.enabled.load(Ordering::SeqCst));
    let i = &run.report["integrity"];
    eprintln!("integrity-metric honest_viewers={i}");
    assert_eq!(
        (i["failed"].as_u64(), i["unverified"].as_u64()),
        (Some(0), Some(0)),
        "{i:#}"
    );
    // Two viewers, 20 s at 25 fps video + ~43 fps audio.
    assert!(i["verified"].as_u64().unwrap_or(0) > 1_500, "{i:#}");
    assert_eq!(i["viewers"], 2, "{i:#}");
}

#[test]
fn the_tamperer_keeps_chunk_framing_and_flips_only_video_bodies() {
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    let mut ser = ChunkSerializer::new();
    let mut wire = vec![0u8; 3073];
    wire.extend(
        ser.set_max_chunk_size(300, RtmpTimestamp::new(0))
            .unwrap()
            .bytes,
    );
    let video: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let mut video = video;
    let mut seq_header = vec![0x17u8, 0];
    seq_header.resize(40, 3);
    video[0] = 0x27;
    video[1] = 1;
    for (type_id, data) in [
        (9u8, video.clone()),
        (8, vec![0xaf, 1, 2, 3]),
        (9, seq_header.clone()),
    ] {
        let p = MessagePayload {
            timestamp: RtmpTimestamp::new(40),
            type_id,
            message_stream_id: 1,
            data: data.into(),
        };
        wire.extend(ser.serialize(&p, false, false).unwrap().bytes);
    }
    let tampered = Arc::new(AtomicU64::new(0));
    let mut t = Tamperer::new(Arc::new(AtomicBool::new(true)), tampered.clone());
    let mut out = Vec::new();
    for piece in wire.chunks(7) {
        out.extend(t.feed(piece));
    }
    assert_eq!(out.len(), wire.len());
    assert_eq!(tampered.load(Ordering::SeqCst), 1);
    let mut reader = surge_wire::ChunkReader::new(surge_wire::ChunkLimits::default());
    reader.push(&out[3073..]);
    let mut msgs = Vec::new();
    while let Some(m) = reader.next_message().expect("valid chunks") {
        if m.type_id == 8 || m.type_id == 9 {
            msgs.push(m);
        }
    }
    let bodies: Vec<&[u8]> = msgs.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(bodies.len(), 3, "three media messages");
    assert_eq!(bodies[0].len(), video.len());
    let changed: Vec<usize> = (0..video.len())
        .filter(|&i| bodies[0][i] != video[i])
        .collect();
    assert_eq!(changed, vec![FLIP_AT], "one byte of the video body");
    assert_eq!(bodies[1], &[0xaf, 1, 2, 3]);
    assert_eq!(bodies[2], &seq_header[..], "sequence headers untouched");
}
