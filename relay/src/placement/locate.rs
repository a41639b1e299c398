//! The locator's answer for one new viewer: which relay, at which URL, and whether it was an
//! overflow placement — or that nothing has room, or that the stream does not exist. Pure: runs
//! on the [`PeerView`] and the placement rules of [`super::choose`].

use std::time::Instant;

use super::choose::{OverflowStep, Placement, place_viewer};
use super::overflow_viewers::tag_url;
use super::view::PeerView;

/// How the viewer will play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayProtocol {
    Rtmp,
    Flv,
}

impl PlayProtocol {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rtmp" => Some(PlayProtocol::Rtmp),
            "flv" | "http-flv" => Some(PlayProtocol::Flv),
            _ => None,
        }
    }
}

/// Marks a URL the locator handed out, so the relay it names serves the viewer itself instead
/// of placing it again (no redirect loops between locators whose views differ a little).
pub const PLACED_PARAM: &str = "placed=1";

#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// Where the viewer plays.
    pub url: String,
    /// Instance id of the chosen relay.
    pub relay: String,
    pub region: String,
    /// The chosen relay's load as the locator saw it (before this viewer).
    pub load: f64,
    /// Placed outside the viewer's region's edges because they were all full.
    pub overflow: bool,
    /// The locator itself is the chosen relay.
    pub is_self: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Placed(Located),
    /// Nothing in view has room.
    Refused,
    /// The origin is in view and does not hold the stream.
    NotFound,
}

/// What the locator needs to know about itself and its policy.
#[derive(Debug, Clone)]
pub struct LocatorPolicy {
    pub me: String,
    pub region: String,
    pub overflow: Vec<OverflowStep>,
    pub high_mark: f64,
}

pub struct Request<'a> {
    pub app: &'a str,
    pub stream: &'a str,
    pub protocol: PlayProtocol,
    /// The viewer's region; the locator's own when not given.
    pub region: Option<&'a str>,
}

/// Chooses a relay for one viewer and records the placement in the view.
pub fn locate(view: &mut PeerView, policy: &LocatorPolicy, req: &Request, now: Instant) -> Outcome {
    let key = format!("{}/{}", req.app, req.stream);
    if view.origin_has(&key, now) == Some(false) {
        return Outcome::NotFound;
    }
    let region = req.region.unwrap_or(&policy.region);
    let relays = view.relays(&key, now);
    let (chosen, overflow) = match place_viewer(&relays, region, &policy.overflow, policy.high_mark)
    {
        Placement::Edge(r) => (r, false),
        Placement::Overflow(r) => (r, true),
        Placement::Refused => return Outcome::Refused,
    };
    let Some(report) = view.report(&chosen.id) else {
        return Outcome::Refused;
    };
    let url = match req.protocol {
        PlayProtocol::Flv => format!(
            "http://{}/{}/{}.flv?{PLACED_PARAM}",
            report.viewer_http_addr(),
            req.app,
            req.stream
        ),
        PlayProtocol::Rtmp => format!("{}/{}/{}", report.viewer_rtmp_base(), req.app, req.stream),
    };
    // The relay it reaches reports it as this region's viewer, so the region's demand
    // still includes it (see `overflow_viewers`).
    let url = if overflow { tag_url(&url, region) } else { url };
    let located = Located {
        url,
        relay: chosen.id.clone(),
        region: chosen.region.clone(),
        load: chosen.load,
        overflow,
        is_self: chosen.id == policy.me,
    };
    view.record_placement(&located.relay);
    Outcome::Placed(located)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Tier;
    use crate::placement::PeerReport;

    fn report(instance: &str, port: u16, tier: Tier, load: f64) -> PeerReport {
        PeerReport {
            instance: instance.into(),
            host: "127.0.0.1".into(),
            http_port: port,
            rtmp_port: port + 1,
            advertised_http_port: None,
            advertised_rtmp_port: None,
            region: "eu".into(),
            tier,
            ready: true,
            accepting: true,
            load,
            capacity: 40,
            pulls_from: vec![],
            polled: None,
            streams: vec!["live/a".into()],
        }
    }

    fn policy(me: &str) -> LocatorPolicy {
        LocatorPolicy {
            me: me.into(),
            region: "eu".into(),
            overflow: vec![OverflowStep::TierAbove],
            high_mark: 0.9,
        }
    }

    fn request(protocol: PlayProtocol) -> Request<'static> {
        Request {
            app: "live",
            stream: "a",
            protocol,
            region: None,
        }
    }

    #[test]
    fn a_burst_spreads_over_the_edges_between_two_polls() {
        let now = Instant::now();
        let mut view = PeerView::new(Duration::from_secs(2));
        view.update(report("e1", 8001, Tier::Edge, 0.0), now);
        view.update(report("e2", 8011, Tier::Edge, 0.0), now);
        view.update(report("e3", 8021, Tier::Edge, 0.0), now);
        let mut per_edge = std::collections::HashMap::<String, usize>::new();
        for _ in 0..99 {
            match locate(&mut view, &policy("e1"), &request(PlayProtocol::Flv), now) {
                Outcome::Placed(l) => *per_edge.entry(l.relay).or_default() += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(per_edge.values().copied().collect::<Vec<_>>(), [33, 33, 33]);
        // 3 × 33 of 40 each: the high mark (0.9 of 40 = 36) is not reached yet; 9 more fit
        // under it, then 12 more up to full capacity (no relay above to overflow to).
        for _ in 0..21 {
            assert!(matches!(
                locate(&mut view, &policy("e1"), &request(PlayProtocol::Flv), now),
                Outcome::Placed(Located {
                    overflow: false,
                    ..
                })
            ));
        }
        assert_eq!(
            locate(&mut view, &policy("e1"), &request(PlayProtocol::Flv), now),
            Outcome::Refused,
            "every edge at capacity and nothing to overflow to"
        );
    }

    #[test]
    fn urls_name_the_chosen_relay_and_mark_the_placement() {
        let now = Instant::now();
        let mut view = PeerView::new(Duration::from_secs(2));
        view.update(report("e2", 8011, Tier::Edge, 0.0), now);
        let Outcome::Placed(flv) =
            locate(&mut view, &policy("e1"), &request(PlayProtocol::Flv), now)
        else {
            panic!("not placed")
        };
        assert_eq!(flv.url, "http://127.0.0.1:8011/live/a.flv?placed=1");
        assert!(!flv.is_self && !flv.overflow);
        let Outcome::Placed(rtmp) =
            locate(&mut view, &policy("e2"), &request(PlayProtocol::Rtmp), now)
        else {
            panic!("not placed")
        };
        assert_eq!(rtmp.url, "rtmp://127.0.0.1:8012/live/a");
        assert!(rtmp.is_self);
    }

    #[test]
    fn viewers_are_sent_to_advertised_host_ports_children_to_the_polled_address() {
        let now = Instant::now();
        let mut view = PeerView::new(Duration::from_secs(2));
        view.update(report("e1", 8001, Tier::Edge, 0.95), now);
        // A reflector exposed on its node's host ports 1936/8081 for overflow.
        view.update(
            PeerReport {
                host: "node-a.example".into(),
                advertised_http_port: Some(8081),
                advertised_rtmp_port: Some(1936),
                polled: Some(std::net::SocketAddr::from(([10, 0, 0, 7], 8101))),
                ..report("r1", 8101, Tier::Reflector, 0.1)
            },
            now,
        );
        let Outcome::Placed(flv) =
            locate(&mut view, &policy("e1"), &request(PlayProtocol::Flv), now)
        else {
            panic!("not placed")
        };
        assert_eq!(
            (flv.url.as_str(), flv.overflow),
            (
                "http://node-a.example:8081/live/a.flv?placed=1&region=eu",
                true
            )
        );
        let Outcome::Placed(rtmp) =
            locate(&mut view, &policy("e1"), &request(PlayProtocol::Rtmp), now)
        else {
            panic!("not placed")
        };
        assert_eq!(rtmp.url, "rtmp://node-a.example:1936/live/a?region=eu");
        let r1 = view.report("r1").expect("in view");
        assert_eq!(r1.pull_base(), "rtmp://10.0.0.7:8102");
    }

    #[test]
    fn full_edges_overflow_to_the_reflector_and_an_unknown_stream_is_not_found() {
        let now = Instant::now();
        let mut view = PeerView::new(Duration::from_secs(2));
        view.update(report("e1", 8001, Tier::Edge, 0.95), now);
        view.update(report("r1", 8101, Tier::Reflector, 0.1), now);
        view.update(report("o", 8201, Tier::Origin, 0.0), now);
        let Outcome::Placed(l) = locate(&mut view, &policy("e1"), &request(PlayProtocol::Flv), now)
        else {
            panic!("not placed")
        };
        assert_eq!((l.relay.as_str(), l.overflow), ("r1", true));
        assert_eq!(
            l.url, "http://127.0.0.1:8101/live/a.flv?placed=1&region=eu",
            "an overflow placement names the viewer's region"
        );
        let unknown = Request {
            stream: "nope",
            ..request(PlayProtocol::Flv)
        };
        assert_eq!(
            locate(&mut view, &policy("e1"), &unknown, now),
            Outcome::NotFound
        );
    }
}
