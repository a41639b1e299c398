//! The locator's IO: every second it asks each placement peer for its `/api/v1/streams` and
//! keeps the answers in the [`PeerView`]; viewers are placed on that view. No peer is special:
//! every relay given `--placement-peer` answers as a locator from its own view, so losing any
//! one relay loses no placement (see docs/PLACEMENT.md).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use surge_wire::streams_api::{self, RelayStats};
use tokio_util::sync::CancellationToken;

use super::locate::{LocatorPolicy, Outcome, Request, locate};
use super::view::{PeerReport, PeerView};
use crate::config::Tier;

/// How often peers are asked; a view is at most this plus one answer old.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A peer that has not answered for this long counts as not Ready.
pub const MAX_REPORT_AGE: Duration = Duration::from_millis(2_500);
/// Time allowed for one peer's answer.
const POLL_TIMEOUT: Duration = Duration::from_millis(800);
/// Largest stats answer read from a peer.
const MAX_BODY: usize = 1 << 20;

/// A region's locator as one relay runs it: its policy and its view of the peers.
pub struct Locator {
    pub policy: LocatorPolicy,
    view: Mutex<PeerView>,
    /// Most children a parent feeds (`--parent-fanout`).
    parent_fanout: usize,
    /// Where the `--parent-peer` names resolved on the last poll.
    parents: Mutex<Vec<SocketAddr>>,
    /// A whole round of polls has been answered (or timed out) since start.
    polled_once: std::sync::atomic::AtomicBool,
}

impl Locator {
    pub fn new(policy: LocatorPolicy) -> Self {
        Self::with_parent_fanout(policy, 8)
    }

    pub fn with_parent_fanout(policy: LocatorPolicy, parent_fanout: usize) -> Self {
        Locator {
            policy,
            view: Mutex::new(PeerView::new(MAX_REPORT_AGE)),
            parent_fanout,
            parents: Mutex::new(Vec::new()),
            polled_once: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn locate(&self, req: &Request) -> Outcome {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        locate(&mut view, &self.policy, req, Instant::now())
    }

    /// `rtmp://host:port` of the parent this relay should pull from now, if one of its
    /// `--parent-peer`s is Ready with room (see [`PeerView::parent_for`]).
    pub fn parent(&self) -> Option<String> {
        let parents = self
            .parents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        view.parent_for(
            &self.policy.me,
            &parents,
            self.parent_fanout,
            Instant::now(),
        )
    }

    fn update(&self, report: PeerReport) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        view.update(report, now);
        view.expire(now);
    }
}

/// Why a peer's answer was not used.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unreadable stats: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stats lack {0} (a relay without placement support)")]
    Missing(&'static str),
}

/// Turns a peer's stats into what the locator needs; `polled` is where it answered.
pub fn peer_report(stats: &RelayStats, polled: SocketAddr) -> Result<PeerReport, PollError> {
    let r = &stats.relay;
    let tier = match r.tier.as_str() {
        "origin" => Tier::Origin,
        "reflector" => Tier::Reflector,
        "edge" => Tier::Edge,
        _ => return Err(PollError::Missing("a known tier")),
    };
    Ok(PeerReport {
        instance: r.instance.clone().ok_or(PollError::Missing("instance"))?,
        host: r
            .advertise_host
            .clone()
            .unwrap_or_else(|| polled.ip().to_string()),
        // With an admin port the poll did not reach the playback port: the relay names it.
        http_port: r.http_port.unwrap_or(polled.port()),
        rtmp_port: r.rtmp_port.ok_or(PollError::Missing("rtmp_port"))?,
        advertised_http_port: r.advertise_http_port,
        advertised_rtmp_port: r.advertise_rtmp_port,
        region: r.region.clone(),
        tier,
        ready: r.ready.ok_or(PollError::Missing("ready"))?,
        accepting: r.accepting.ok_or(PollError::Missing("accepting"))?,
        load: r.load.ok_or(PollError::Missing("load"))?,
        capacity: r.capacity.ok_or(PollError::Missing("capacity"))? as usize,
        pulls_from: stats
            .streams
            .iter()
            .filter_map(|s| s.upstream.as_ref()?.url.as_deref())
            .filter_map(|u| crate::upstream::UpstreamUrl::parse(u).ok())
            .map(|u| u.socket_addr())
            .collect(),
        polled: Some(polled),
        streams: stats
            .streams
            .iter()
            .map(|s| format!("{}/{}", s.app, s.name))
            .collect(),
    })
}

impl crate::upstream::ParentChooser for Locator {
    fn choose(&self) -> crate::upstream::ParentChoice {
        use crate::upstream::ParentChoice;
        if !self.polled_once.load(std::sync::atomic::Ordering::Acquire) {
            return ParentChoice::NotYetKnown;
        }
        match self.parent() {
            Some(url) => ParentChoice::Parent(url),
            None => ParentChoice::NoneFree,
        }
    }
}

/// Polls `peers`, `parent_peers` and `sibling_peers` (names resolved by `resolver` on every
/// round) until `shutdown`; `own` reports this relay (fresh on every round).
pub fn spawn_poller(
    locator: Arc<Locator>,
    resolver: crate::resolve::Resolver,
    peers: Vec<String>,
    parent_peers: Vec<String>,
    sibling_peers: Vec<String>,
    own: impl Fn() -> Option<PeerReport> + Send + Sync + 'static,
    shutdown: CancellationToken,
) {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(POLL_TIMEOUT));
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            if let Some(me) = own() {
                locator.update(me);
            }
            let parents = resolve_all(&resolver, &parent_peers).await;
            let mut addrs = resolve_all(&resolver, &peers).await;
            addrs.extend(parents.iter().copied());
            addrs.extend(resolve_all(&resolver, &sibling_peers).await);
            addrs.sort();
            addrs.dedup();
            locator
                .view
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .keep_listed(&addrs, &locator.policy.me);
            *locator.parents.lock().unwrap_or_else(|e| e.into_inner()) = parents;
            let polls = addrs.into_iter().map(|addr| {
                let client = client.clone();
                async move { (addr, poll(&client, addr).await) }
            });
            let answers = futures::future::join_all(polls).await;
            for (addr, result) in answers {
                match result {
                    Ok(report) if report.instance != locator.policy.me => locator.update(report),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(peer = %addr, error = %e, "placement peer not polled")
                    }
                }
            }
            // Own report first, then the peers': own pulls are in view before anyone asks.
            if let Some(me) = own() {
                locator.update(me);
            }
            locator
                .polled_once
                .store(true, std::sync::atomic::Ordering::Release);
        }
    });
}

/// Every address the peer names resolve to now (a headless Service: each Ready pod).
async fn resolve_all(resolver: &crate::resolve::Resolver, peers: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for peer in peers {
        match resolver.lookup(peer).await {
            Ok(addrs) => out.extend(addrs),
            Err(e) => tracing::debug!(peer = %peer, error = %e, "placement peer does not resolve"),
        }
    }
    out.sort();
    out.dedup();
    out
}

async fn poll(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
) -> Result<PeerReport, PollError> {
    let uri: hyper::Uri = format!("http://{addr}{}", streams_api::PATH)
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| PollError::Request(e.to_string()))?;
    let fetch = async {
        let resp = client
            .get(uri)
            .await
            .map_err(|e| PollError::Request(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(PollError::Status(resp.status().as_u16()));
        }
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| PollError::Request(e.to_string()))?
            .to_bytes();
        let stats: RelayStats = serde_json::from_slice(&body)?;
        peer_report(&stats, addr)
    };
    tokio::time::timeout(POLL_TIMEOUT, fetch)
        .await
        .map_err(|_| PollError::Timeout(POLL_TIMEOUT))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use surge_wire::streams_api::RelayInfo;

    fn answer(http_port: Option<u16>) -> RelayStats {
        RelayStats {
            relay: RelayInfo {
                tier: "edge".into(),
                instance: Some("e1".into()),
                rtmp_port: Some(1935),
                http_port,
                ready: Some(true),
                accepting: Some(true),
                load: Some(0.1),
                capacity: Some(100),
                ..RelayInfo::default()
            },
            streams: Vec::new(),
        }
    }

    #[test]
    fn viewers_go_to_the_playback_port_the_peer_names_not_the_admin_port_polled() {
        let polled: SocketAddr = "10.0.0.7:9090".parse().unwrap();
        let report = peer_report(&answer(Some(8080)), polled).unwrap();
        assert_eq!((report.http_port, report.polled), (8080, Some(polled)));
        assert_eq!(report.viewer_http_addr(), "10.0.0.7:8080");
        // A relay that does not say serves playback where it was polled.
        let report = peer_report(&answer(None), polled).unwrap();
        assert_eq!(report.http_port, 9090);
    }
}
