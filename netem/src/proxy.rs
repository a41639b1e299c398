//! The transparent proxy in the router namespace. nftables redirects every TCP connection
//! that enters the router from a node to this listener; the proxy reads the connection's
//! original destination (SO_ORIGINAL_DST), dials it, and forwards bytes in both directions
//! along the route between the two nodes, each chunk released when the route's links
//! (`LinkState::pass`) say it arrives. Only TCP is emulated: ping and UDP cross with no delay.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::control::{self, Command};
use crate::link::{Jitter, LinkState};
use crate::topology::{Hop, Topology, apply_settings};

/// Bytes read ahead of the release schedule, per connection and direction.
const BUFFER_BYTES: usize = 4 << 20;
/// How far past the route's own delay a reader may schedule before it stops reading (the
/// router queue a rate cap builds); beyond it TCP's flow control pushes back on the sender.
const QUEUE_SLACK: Duration = Duration::from_millis(50);
const READ_BYTES: usize = 64 * 1024;
const MIN_READ_BYTES: usize = 1448;
const TIMER_LEAD: Duration = Duration::from_micros(1500);
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
const PARTITION_POLL: Duration = Duration::from_millis(20);

pub struct Shared {
    topo: Topology,
    routes: Vec<Vec<Option<Vec<Hop>>>>,
    links: Mutex<Vec<LinkState>>,
    /// Bumped on every `reset`, so connections re-check their links' reset counters.
    reset_generation: watch::Sender<u64>,
    pub(crate) connections: AtomicU64,
    pub(crate) open: AtomicU64,
}

impl Shared {
    pub fn new(topo: Topology) -> Arc<Self> {
        let routes = topo.routes();
        let links = topo
            .links
            .iter()
            .map(|l| LinkState::new(l.params))
            .collect();
        Arc::new(Self {
            topo,
            routes,
            links: Mutex::new(links),
            reset_generation: watch::channel(0).0,
            connections: AtomicU64::new(0),
            open: AtomicU64::new(0),
        })
    }

    fn links(&self) -> MutexGuard<'_, Vec<LinkState>> {
        // A panic while holding the lock cannot leave a link half-updated in a way that
        // matters more than stopping the emulation would.
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When a chunk read at `start` arrives at the end of `hops`, or None if a link on the
    /// way is partitioned.
    fn schedule(
        &self,
        hops: &[Hop],
        start: Instant,
        len: usize,
        rng: &mut Jitter,
    ) -> Option<Instant> {
        let mut links = self.links();
        let mut t = start;
        for hop in hops {
            t = links[hop.link].pass(hop.forward, t, len, rng.unit())?;
        }
        Some(t)
    }

    /// The route's current one-way delay plus jitter (what a reader may run ahead by).
    fn reach(&self, hops: &[Hop]) -> Duration {
        let links = self.links();
        hops.iter()
            .map(|h| links[h.link].params.delay + links[h.link].params.jitter)
            .sum()
    }

    /// How much one read may take: with a rate cap on the route, about 10 ms of sending at
    /// the slowest link (a chunk is released whole, so a big one would arrive in one lump).
    fn read_limit(&self, hops: &[Hop]) -> usize {
        let links = self.links();
        hops.iter()
            .filter_map(|h| links[h.link].params.rate)
            .map(|r| (r.bits_per_second / 8 / 100) as usize)
            .min()
            .map_or(READ_BYTES, |n| n.clamp(MIN_READ_BYTES, READ_BYTES))
    }

    fn reset_counters(&self, hops: &[Hop]) -> Vec<u64> {
        let links = self.links();
        hops.iter().map(|h| links[h.link].resets).collect()
    }

    /// Runs one control command; the reply is one line.
    pub fn control(&self, line: &str) -> String {
        match self.try_control(line) {
            Ok(reply) => format!("ok {reply}"),
            Err(e) => format!("error: {e}"),
        }
    }

    fn try_control(&self, line: &str) -> Result<String, String> {
        let command = control::parse(line)?;
        let index = |name: &str| {
            self.topo.link_index(name).ok_or_else(|| {
                let known: Vec<_> = self.topo.links.iter().map(|l| l.name.as_str()).collect();
                format!("unknown link `{name}` (links: {})", known.join(", "))
            })
        };
        match command {
            Command::Ping => Ok("pong".into()),
            Command::Show => Ok(self.show().to_string()),
            Command::Set { link, settings } => {
                let i = index(&link)?;
                let mut links = self.links();
                let mut params = links[i].params;
                apply_settings(&mut params, settings.iter().map(String::as_str), true)?;
                links[i].params = params;
                Ok(describe(&link, &links[i]))
            }
            Command::Stall { link, duration } => {
                let i = index(&link)?;
                self.links()[i].stalled_until = Some(Instant::now() + duration);
                Ok(format!("{link} stalled for {} ms", duration.as_millis()))
            }
            Command::Partition { link, on } => {
                let i = index(&link)?;
                self.links()[i].down = on;
                Ok(format!(
                    "{link} partition {}",
                    if on { "on" } else { "off" }
                ))
            }
            Command::Reset { link } => {
                let i = index(&link)?;
                self.links()[i].resets += 1;
                self.reset_generation.send_modify(|g| *g += 1);
                Ok(format!("{link} reset"))
            }
        }
    }

    fn show(&self) -> serde_json::Value {
        let links = self.links();
        let now = Instant::now();
        let list: Vec<_> = self
            .topo
            .links
            .iter()
            .zip(links.iter())
            .map(|(spec, state)| {
                serde_json::json!({
                    "name": spec.name,
                    "a": self.topo.nodes[spec.a].name,
                    "b": self.topo.nodes[spec.b].name,
                    "delay_ms": state.params.delay.as_secs_f64() * 1e3,
                    "jitter_ms": state.params.jitter.as_secs_f64() * 1e3,
                    "rate_bits": state.params.rate.map(|r| r.bits_per_second),
                    "stalled_ms_left": state.stalled_until
                        .map(|u| u.saturating_duration_since(now).as_millis()).unwrap_or(0),
                    "partitioned": state.down,
                    "resets": state.resets,
                })
            })
            .collect();
        serde_json::json!({
            "links": list,
            "connections": self.connections.load(Ordering::Relaxed),
            "open": self.open.load(Ordering::Relaxed),
        })
    }
}

fn describe(name: &str, l: &LinkState) -> String {
    format!(
        "{name} delay={}ms jitter={}ms rate={}",
        l.params.delay.as_millis(),
        l.params.jitter.as_millis(),
        l.params
            .rate
            .map_or("none".into(), |r| format!("{}bit", r.bits_per_second))
    )
}

pub async fn run(shared: Arc<Shared>, listen: SocketAddr, control_addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("--listen {listen}"))?;
    let control_listener = TcpListener::bind(control_addr)
        .await
        .with_context(|| format!("--control {control_addr}"))?;
    tracing::info!(%listen, control = %control_addr, "netem proxy ready");
    tokio::spawn(serve_control(shared.clone(), control_listener));
    loop {
        let (client, peer) = accept_retrying(&listener).await;
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.connections.fetch_add(1, Ordering::Relaxed);
            shared.open.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = connection(shared.clone(), client, peer).await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            shared.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

pub(crate) async fn serve_control(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = shared.control(&line);
                tracing::info!(command = %line, %reply, "control");
                if write
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
}

/// The destination the client dialled before nftables redirected it here.
fn original_destination(stream: &TcpStream) -> std::io::Result<SocketAddrV4> {
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: the fd is open for the stream's lifetime; addr and len describe a writable
    // sockaddr_in of the size given.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ))
}

/// Closes with RST, as a reset link or a refused dial does: SO_LINGER 0 then drop.
fn abort(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open (we hold the stream); the option value is a valid linger.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

async fn connection(shared: Arc<Shared>, client: TcpStream, peer: SocketAddr) -> Result<()> {
    let accepted = Instant::now();
    let target = original_destination(&client).context("SO_ORIGINAL_DST")?;
    let SocketAddr::V4(peer4) = peer else {
        abort(&client);
        anyhow::bail!("IPv6 client");
    };
    let (Some(src), Some(dst)) = (
        shared.topo.node_at(*peer4.ip()),
        shared.topo.node_at(*target.ip()),
    ) else {
        abort(&client);
        anyhow::bail!("{peer} -> {target}: not between two nodes");
    };
    let Some(route) = shared.routes[src][dst].clone() else {
        abort(&client);
        anyhow::bail!("{peer} -> {target}: no route");
    };
    tracing::debug!(%peer, %target, from = %shared.topo.nodes[src].name, to = %shared.topo.nodes[dst].name, "routed");
    carry(
        shared,
        client,
        peer4,
        SocketAddr::V4(target),
        route,
        accepted,
    )
    .await
}

/// Dials `target` and carries the connection's bytes both ways along `route` (the client's
/// side first), as the route's links say; returns when both directions have ended.
pub(crate) async fn carry(
    shared: Arc<Shared>,
    client: TcpStream,
    peer4: SocketAddrV4,
    target: SocketAddr,
    route: Vec<Hop>,
    accepted: Instant,
) -> Result<()> {
    let peer = SocketAddr::V4(peer4);
    let back: Vec<Hop> = route
        .iter()
        .rev()
        .map(|h| Hop {
            link: h.link,
            forward: !h.forward,
        })
        .collect();
    let one_way: Duration = {
        let links = shared.links();
        route.iter().map(|h| links[h.link].params.delay).sum()
    };
    // The client's connect() returned at once (the router answered it); a real handshake
    // costs a round trip first, so its first bytes leave one round trip later and the
    // server's first bytes (a banner) reach it no earlier than on a real path.
    let up_floor = accepted + 2 * one_way;
    let down_floor = accepted + 3 * one_way;
    let resets = shared.reset_counters(&route);

    let server = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        other => {
            // The refusal travels back as a real one would, a round trip after the SYN.
            tokio::time::sleep_until((accepted + 2 * one_way).into()).await;
            abort(&client);
            let why = match other {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".into(),
            };
            anyhow::bail!("{peer} -> {target}: dial failed: {why}");
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tracing::debug!(%peer, %target, "connected");

    let (end_tx, end_rx) = watch::channel(End::Open);
    let end_tx = Arc::new(end_tx);
    let fins = Arc::new(AtomicU64::new(0));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut tasks = JoinSet::new();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(peer4.port());
    for (read, write, hops, floor, seed) in [
        (client_read, server_write, route.clone(), up_floor, seed),
        (
            server_read,
            client_write,
            back,
            down_floor,
            seed.rotate_left(17),
        ),
    ] {
        let (tx, rx) = mpsc::channel(1024);
        let ends = Ends {
            tx: end_tx.clone(),
            rx: end_rx.clone(),
        };
        tasks.spawn(reader(
            shared.clone(),
            hops,
            read,
            tx,
            floor,
            Jitter::new(seed),
            ends.clone(),
        ));
        tasks.spawn(writer(write, rx, ends, fins.clone()));
    }
    let mut generation = shared.reset_generation.subscribe();
    loop {
        tokio::select! {
            changed = generation.changed() => {
                if changed.is_err() {
                    continue;
                }
                if shared.reset_counters(&route) != resets {
                    end_tx.send_replace(End::Reset);
                }
            }
            done = tasks.join_next() => {
                if done.is_none() {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// How a connection ends: both FINs delivered (close normally) or a reset (RST both ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    Closed,
    Reset,
}

#[derive(Clone)]
struct Ends {
    tx: Arc<watch::Sender<End>>,
    rx: watch::Receiver<End>,
}

impl Ends {
    async fn wait(&mut self) -> End {
        match self.rx.wait_for(|e| *e != End::Open).await {
            Ok(e) => *e,
            Err(_) => End::Closed,
        }
    }

    fn reset(&self) {
        self.tx.send_replace(End::Reset);
    }
}

/// Lets go of one half of a socket the way the connection ended.
fn finish(stream: &TcpStream, end: End) {
    if end == End::Reset {
        abort(stream);
    }
}

/// Lets go of a write half: on a reset without the FIN its drop would send first.
fn finish_write(to: OwnedWriteHalf, end: End) {
    if end == End::Reset {
        abort(to.as_ref());
        to.forget();
    }
}

enum Item {
    Data(Vec<u8>, tokio::sync::OwnedSemaphorePermit),
    /// The sender closed its side: pass the FIN on.
    Fin,
    /// The sender's side failed (reset): reset both ends.
    Reset,
}

async fn reader(
    shared: Arc<Shared>,
    hops: Vec<Hop>,
    mut from: OwnedReadHalf,
    tx: mpsc::Sender<(Instant, Item)>,
    floor: Instant,
    mut rng: Jitter,
    mut ends: Ends,
) {
    let budget = Arc::new(Semaphore::new(BUFFER_BYTES));
    let mut buf = vec![0u8; READ_BYTES];
    let mut last = floor;
    loop {
        // Read no further ahead than the route's delay plus a short queue: a rate cap or a
        // stall then fills the sender's TCP window instead of an unbounded buffer here.
        let ahead = last.saturating_duration_since(Instant::now());
        let allowed = shared.reach(&hops) + QUEUE_SLACK;
        if ahead > allowed {
            tokio::select! {
                _ = tokio::time::sleep(ahead - allowed) => {}
                end = ends.wait() => return finish(from.as_ref(), end),
            }
        }
        let limit = shared.read_limit(&hops);
        let read = tokio::select! {
            r = from.read(&mut buf[..limit]) => r,
            end = ends.wait() => return finish(from.as_ref(), end),
        };
        let len = match read {
            Ok(n) => n,
            Err(_) => 0,
        };
        let permit = if len > 0 {
            tokio::select! {
                p = budget.clone().acquire_many_owned(len as u32) => match p {
                    Ok(p) => Some(p),
                    Err(_) => return,
                },
                end = ends.wait() => return finish(from.as_ref(), end),
            }
        } else {
            None
        };
        // A partitioned link holds everything until the partition ends.
        let at = loop {
            let start = Instant::now().max(floor);
            if let Some(at) = shared.schedule(&hops, start, len.max(1), &mut rng) {
                break at;
            }
            tokio::select! {
                _ = tokio::time::sleep(PARTITION_POLL) => {}
                end = ends.wait() => return finish(from.as_ref(), end),
            }
        };
        // TCP delivers in order: a chunk never overtakes the one before it.
        last = last.max(at);
        let item = match (read, permit) {
            (Ok(_), Some(p)) => Item::Data(buf[..len].to_vec(), p),
            (Ok(_), None) => Item::Fin,
            (Err(_), _) => Item::Reset,
        };
        let more = matches!(item, Item::Data(..));
        if tx.send((last, item)).await.is_err() {
            ends.reset();
            return finish(from.as_ref(), End::Reset);
        }
        if !more {
            // The read half keeps the socket open for the other direction until the end.
            let end = ends.wait().await;
            return finish(from.as_ref(), end);
        }
    }
}

async fn writer(
    mut to: OwnedWriteHalf,
    mut rx: mpsc::Receiver<(Instant, Item)>,
    mut ends: Ends,
    fins: Arc<AtomicU64>,
) {
    loop {
        let next = tokio::select! {
            n = rx.recv() => n,
            end = ends.wait() => return finish_write(to, end),
        };
        let Some((at, item)) = next else {
            return;
        };
        // Tokio's timer fires on the first millisecond tick at or after its deadline: aiming
        // half a tick early centres the error on the chunk's due time instead of adding
        // ~1 ms to every pass, and a chunk already due goes out without a timer at all.
        if at
            .checked_duration_since(Instant::now())
            .is_some_and(|wait| wait > TIMER_LEAD)
        {
            tokio::select! {
                _ = tokio::time::sleep_until((at - TIMER_LEAD).into()) => {}
                end = ends.wait() => return finish_write(to, end),
            }
        }
        match item {
            Item::Data(bytes, _permit) => {
                let ok = tokio::select! {
                    r = to.write_all(&bytes) => r.is_ok(),
                    end = ends.wait() => return finish_write(to, end),
                };
                if !ok {
                    ends.reset();
                    return finish_write(to, End::Reset);
                }
            }
            Item::Fin => {
                let _ = to.shutdown().await;
                // Both directions half-closed: the connection is over.
                if fins.fetch_add(1, Ordering::AcqRel) == 1 {
                    ends.tx.send_replace(End::Closed);
                }
                let end = ends.wait().await;
                return finish_write(to, end);
            }
            Item::Reset => {
                ends.reset();
                return finish_write(to, End::Reset);
            }
        }
    }
}

/// The next connection on `listener`; a failed accept (EMFILE and the like) is logged and
/// retried after a pause rather than spun on.
pub(crate) async fn accept_retrying(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Arc<Shared> {
        let topo = Topology::parse("node a\nnode b\nnode c\nlink ab a b delay=80ms\nlink bc b c\n")
            .expect("topology");
        Shared::new(topo)
    }

    #[test]
    fn control_changes_links_and_says_what_is_wrong() {
        let s = shared();
        assert_eq!(s.control("ping"), "ok pong");
        assert_eq!(
            s.control("set ab delay=20ms jitter=5ms rate=1mbit"),
            "ok ab delay=20ms jitter=5ms rate=1000000bit"
        );
        assert_eq!(
            s.control("set ab jitter=30ms"),
            "error: jitter 30ms exceeds delay 20ms (a delay cannot go below zero)"
        );
        assert!(
            s.control("stall nowhere 2s")
                .starts_with("error: unknown link `nowhere` (links: ab, bc)")
        );
        assert_eq!(s.control("stall bc 2s"), "ok bc stalled for 2000 ms");
        assert_eq!(s.control("partition ab on"), "ok ab partition on");
        assert_eq!(s.control("reset bc"), "ok bc reset");
        let show: serde_json::Value =
            serde_json::from_str(s.control("show").trim_start_matches("ok ")).expect("json");
        assert_eq!(show["links"][0]["partitioned"], true);
        assert_eq!(show["links"][0]["rate_bits"], 1_000_000);
        assert_eq!(show["links"][1]["resets"], 1);
        assert!(show["links"][1]["stalled_ms_left"].as_u64().unwrap_or(0) > 1000);
    }

    #[test]
    fn schedule_follows_the_route() {
        let s = shared();
        let route = s.routes[0][2].clone().expect("a route from a to c");
        let t0 = Instant::now();
        let mut rng = Jitter::new(3);
        assert_eq!(
            s.schedule(&route, t0, 100, &mut rng),
            Some(t0 + Duration::from_millis(80))
        );
        assert_eq!(s.reach(&route), Duration::from_millis(80));
        s.control("partition bc on");
        assert_eq!(s.schedule(&route, t0, 100, &mut rng), None);
        // A rate cap on the route shrinks reads to ~10 ms of sending.
        s.control("set bc rate=8mbit");
        assert_eq!(s.read_limit(&route), 10_000);
    }
}
