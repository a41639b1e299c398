//! The locator's view of the relays around it: the last report each peer gave (at most a poll
//! old), plus the viewers this locator sent to each since then, so a burst of arrivals between
//! two polls spreads instead of piling onto the relay that looked emptiest. Pure: the poller
//! feeds reports in with the time they arrived.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::choose::{RelayView, choose_parent};
use crate::config::Tier;

/// What one peer says about itself (from its `/api/v1/streams`).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerReport {
    /// Unique per relay process, so a locator recognises itself among its peers.
    pub instance: String,
    /// Host viewers use to reach it: its advertised address, else the address it was polled at.
    pub host: String,
    /// The ports it listens on (`http_port`: where it was polled).
    pub http_port: u16,
    pub rtmp_port: u16,
    /// Ports viewers are sent to when they differ (a node's host ports), from its
    /// `--advertise-*-port`.
    pub advertised_http_port: Option<u16>,
    pub advertised_rtmp_port: Option<u16>,
    pub region: String,
    pub tier: Tier,
    pub ready: bool,
    /// Takes viewers at all (not draining).
    pub accepting: bool,
    pub load: f64,
    pub capacity: usize,
    /// `host:port` of each RTMP upstream it pulls from now: a parent counts its children
    /// from its peers' answers.
    pub pulls_from: Vec<String>,
    /// The address it answered the poll at (`None` for a relay's report of itself).
    pub polled: Option<SocketAddr>,
    /// `app/name` of every stream it holds.
    pub streams: Vec<String>,
}

impl PeerReport {
    /// `host:port` viewers reach its HTTP-FLV at.
    pub fn viewer_http_addr(&self) -> String {
        format!(
            "{}:{}",
            self.host,
            self.advertised_http_port.unwrap_or(self.http_port)
        )
    }

    /// `rtmp://host:port` RTMP viewers reach it at.
    pub fn viewer_rtmp_base(&self) -> String {
        format!(
            "rtmp://{}:{}",
            self.host,
            self.advertised_rtmp_port.unwrap_or(self.rtmp_port)
        )
    }

    /// `rtmp://host:port` a child relay pulls from: the address it was polled at (inside the
    /// cluster, where the advertised host and ports may lead elsewhere), else its host.
    pub fn pull_base(&self) -> String {
        match self.polled {
            Some(p) => format!("rtmp://{}", SocketAddr::new(p.ip(), self.rtmp_port)),
            None => format!("rtmp://{}:{}", self.host, self.rtmp_port),
        }
    }

    /// Whether a child pulling from `addr` (`host:port`) pulls from this relay: by its
    /// advertised host or by the address it was polled at.
    fn serves(&self, addr: &str) -> bool {
        addr == format!("{}:{}", self.host, self.rtmp_port)
            || self
                .polled
                .is_some_and(|p| addr == SocketAddr::new(p.ip(), self.rtmp_port).to_string())
    }
}

#[derive(Debug)]
struct Entry {
    report: PeerReport,
    fetched: Instant,
    placed_since: usize,
}

#[derive(Debug)]
pub struct PeerView {
    peers: HashMap<String, Entry>,
    max_age: Duration,
}

impl PeerView {
    /// Reports older than `max_age` count as not Ready (the peer stopped answering).
    pub fn new(max_age: Duration) -> Self {
        PeerView {
            peers: HashMap::new(),
            max_age,
        }
    }

    /// A fresh report replaces the old one and the placements made on top of it.
    pub fn update(&mut self, report: PeerReport, now: Instant) {
        self.peers.insert(
            report.instance.clone(),
            Entry {
                report,
                fetched: now,
                placed_since: 0,
            },
        );
    }

    /// Forgets the peers polled at none of `listed` (their names no longer resolve to them: a
    /// relay taken out of its headless Service), but `me`, at once rather than when their
    /// reports age out.
    pub fn keep_listed(&mut self, listed: &[std::net::SocketAddr], me: &str) {
        self.peers.retain(|instance, e| {
            instance == me || e.report.polled.is_none_or(|p| listed.contains(&p))
        });
    }

    /// Forgets peers whose last report is far older than `max_age` (gone for good).
    pub fn expire(&mut self, now: Instant) {
        let keep = self.max_age * 5;
        self.peers
            .retain(|_, e| now.saturating_duration_since(e.fetched) <= keep);
    }

    /// One more viewer sent to `instance` since its last report.
    pub fn record_placement(&mut self, instance: &str) {
        if let Some(e) = self.peers.get_mut(instance) {
            e.placed_since += 1;
        }
    }

    pub fn report(&self, instance: &str) -> Option<&PeerReport> {
        self.peers.get(instance).map(|e| &e.report)
    }

    /// Whether any fresh origin is in view, and whether one holds `stream` (`app/name`).
    pub fn origin_has(&self, stream: &str, now: Instant) -> Option<bool> {
        let origins: Vec<_> = self
            .peers
            .values()
            .filter(|e| e.report.tier == Tier::Origin && self.fresh(e, now))
            .collect();
        if origins.is_empty() {
            return None;
        }
        Some(
            origins
                .iter()
                .any(|e| e.report.streams.iter().any(|s| s == stream)),
        )
    }

    /// The view the choice runs on, for a viewer of `stream` (`app/name`); look a chosen
    /// relay's address up with [`PeerView::report`].
    pub fn relays(&self, stream: &str, now: Instant) -> Vec<RelayView> {
        let mut v: Vec<RelayView> = self
            .peers
            .values()
            .map(|e| {
                let r = &e.report;
                let pending = if r.capacity > 0 {
                    e.placed_since as f64 / r.capacity as f64
                } else {
                    1.0
                };
                RelayView {
                    id: r.instance.clone(),
                    region: r.region.clone(),
                    tier: r.tier,
                    ready: r.ready && self.fresh(e, now),
                    accepting: r.accepting && self.fresh(e, now),
                    load: r.load + pending,
                    has_stream: r.streams.iter().any(|s| s == stream),
                    children: self.children_of(e, now),
                }
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Relays in fresh view pulling from `parent` (each counted once, whatever it pulls).
    fn children_of(&self, parent: &Entry, now: Instant) -> usize {
        self.peers
            .values()
            .filter(|e| e.report.instance != parent.report.instance && self.fresh(e, now))
            .filter(|e| e.report.pulls_from.iter().any(|a| parent.report.serves(a)))
            .count()
    }

    /// Chooses a parent for relay `me` among the peers polled at `candidates` (the tier above
    /// it): the one it already pulls from while that stays Ready, else the Ready one with the
    /// fewest children under `fanout` (see [`choose_parent`]). Answers `rtmp://host:port`.
    pub fn parent_for(
        &self,
        me: &str,
        candidates: &[SocketAddr],
        fanout: usize,
        now: Instant,
    ) -> Option<String> {
        let mine = self.peers.get(me).map(|e| &e.report.pulls_from);
        let in_scope: Vec<&Entry> = self
            .peers
            .values()
            .filter(|e| e.report.polled.is_some_and(|p| candidates.contains(&p)))
            .collect();
        let current = in_scope
            .iter()
            .find(|e| mine.is_some_and(|m| m.iter().any(|a| e.report.serves(a))))
            .map(|e| e.report.instance.clone());
        let views: Vec<RelayView> = in_scope
            .iter()
            .map(|e| RelayView {
                id: e.report.instance.clone(),
                region: e.report.region.clone(),
                tier: e.report.tier,
                ready: e.report.ready && self.fresh(e, now),
                accepting: e.report.accepting && self.fresh(e, now),
                load: e.report.load,
                has_stream: false,
                children: self.children_of(e, now),
            })
            .collect();
        let chosen = choose_parent(&views, fanout, me, current.as_deref())?;
        self.report(&chosen.id).map(PeerReport::pull_base)
    }

    fn fresh(&self, e: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(e.fetched) <= self.max_age
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(instance: &str, tier: Tier, load: f64, capacity: usize) -> PeerReport {
        PeerReport {
            instance: instance.into(),
            host: "127.0.0.1".into(),
            http_port: 8080,
            rtmp_port: 1935,
            advertised_http_port: None,
            advertised_rtmp_port: None,
            region: "eu".into(),
            tier,
            ready: true,
            accepting: true,
            load,
            capacity,
            pulls_from: vec![],
            polled: None,
            streams: vec!["live/a".into()],
        }
    }

    fn relay_at(instance: &str, tier: Tier, port: u16, pulls_from: &[&str]) -> PeerReport {
        PeerReport {
            http_port: port,
            rtmp_port: port + 1,
            pulls_from: pulls_from.iter().map(|a| a.to_string()).collect(),
            polled: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            ..report(instance, tier, 0.1, 40)
        }
    }

    #[test]
    fn children_are_counted_from_what_peers_pull_and_parents_fill_up_to_fanout() {
        let now = Instant::now();
        let mut view = PeerView::new(Duration::from_secs(2));
        let parents = [
            SocketAddr::from(([127, 0, 0, 1], 9000)),
            SocketAddr::from(([127, 0, 0, 1], 9010)),
        ];
        view.update(relay_at("r1", Tier::Reflector, 9000, &[]), now);
        view.update(relay_at("r2", Tier::Reflector, 9010, &[]), now);
        view.update(relay_at("e1", Tier::Edge, 9100, &["127.0.0.1:9001"]), now);
        view.update(relay_at("e2", Tier::Edge, 9110, &["127.0.0.1:9001"]), now);
        let children: Vec<_> = view
            .relays("live/a", now)
            .into_iter()
            .map(|r| (r.id, r.children))
            .collect();
        assert!(children.contains(&("r1".into(), 2)), "{children:?}");
        assert!(children.contains(&("r2".into(), 0)), "{children:?}");
        // A new edge goes to the parent with room.
        view.update(relay_at("e3", Tier::Edge, 9120, &[]), now);
        assert_eq!(
            view.parent_for("e3", &parents, 2, now).as_deref(),
            Some("rtmp://127.0.0.1:9011")
        );
        // An edge keeps the parent it has, even at fanout.
        assert_eq!(
            view.parent_for("e1", &parents, 2, now).as_deref(),
            Some("rtmp://127.0.0.1:9001")
        );
        // Every parent full: no choice (the caller falls back to --upstream, the origin last).
        view.update(relay_at("e3", Tier::Edge, 9120, &["127.0.0.1:9011"]), now);
        view.update(relay_at("e4", Tier::Edge, 9130, &["127.0.0.1:9011"]), now);
        view.update(relay_at("e5", Tier::Edge, 9140, &[]), now);
        assert_eq!(view.parent_for("e5", &parents, 2, now), None);
        // Only the candidates given count: a reflector outside them is never chosen.
        assert_eq!(
            view.parent_for("e5", &parents[..1], 3, now).as_deref(),
            Some("rtmp://127.0.0.1:9001")
        );
        assert_eq!(view.parent_for("e5", &[], 3, now), None);
    }

    #[test]
    fn peers_no_longer_listed_leave_the_view_at_once() {
        let now = Instant::now();
        let mut view = PeerView::new(Duration::from_secs(2));
        view.update(relay_at("me", Tier::Edge, 9000, &[]), now);
        view.update(relay_at("e1", Tier::Edge, 9010, &[]), now);
        view.update(relay_at("e2", Tier::Edge, 9020, &[]), now);
        view.update(report("static", Tier::Edge, 0.1, 40), now);
        view.keep_listed(&[SocketAddr::from(([127, 0, 0, 1], 9020))], "me");
        let mut left: Vec<String> = view
            .relays("live/a", now)
            .into_iter()
            .map(|r| r.id)
            .collect();
        left.sort();
        assert_eq!(left, ["e2", "me", "static"]);
    }

    #[test]
    fn placements_since_the_last_report_count_as_load() {
        let now = Instant::now();
        let mut view = PeerView::new(Duration::from_secs(2));
        view.update(report("e1", Tier::Edge, 0.25, 40), now);
        for _ in 0..10 {
            view.record_placement("e1");
        }
        let relays = view.relays("live/a", now);
        assert!((relays[0].load - 0.5).abs() < 1e-9);
        assert!(relays[0].has_stream);
        assert!(!view.relays("live/b", now)[0].has_stream);
        // The next report already includes those viewers.
        view.update(report("e1", Tier::Edge, 0.5, 40), now);
        assert!((view.relays("live/a", now)[0].load - 0.5).abs() < 1e-9);
    }

    #[test]
    fn a_stale_report_is_not_ready_and_an_old_one_is_forgotten() {
        let t0 = Instant::now();
        let mut view = PeerView::new(Duration::from_secs(2));
        view.update(report("e1", Tier::Edge, 0.1, 40), t0);
        assert!(view.relays("live/a", t0 + Duration::from_secs(2))[0].ready);
        assert!(!view.relays("live/a", t0 + Duration::from_secs(3))[0].ready);
        view.expire(t0 + Duration::from_secs(9));
        assert_eq!(view.relays("live/a", t0).len(), 1);
        view.expire(t0 + Duration::from_secs(11));
        assert!(view.relays("live/a", t0).is_empty());
    }

    #[test]
    fn the_origin_says_whether_a_stream_exists() {
        let now = Instant::now();
        let mut view = PeerView::new(Duration::from_secs(2));
        view.update(report("e1", Tier::Edge, 0.1, 40), now);
        assert_eq!(view.origin_has("live/a", now), None, "no origin in view");
        view.update(report("o", Tier::Origin, 0.0, 100), now);
        assert_eq!(view.origin_has("live/a", now), Some(true));
        assert_eq!(view.origin_has("live/zzz", now), Some(false));
    }
}
