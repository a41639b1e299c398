//! Topology files: nodes (one network namespace each, with an optional access-link rate) and
//! links between nodes (one-way delay, jitter, rate), parsed and checked without any IO, plus
//! the addresses and routes every part of the emulation derives from them.
//!
//! ```text
//! # comment
//! node NAME [rate=RATE]
//! link NAME A B [delay=DURATION] [jitter=DURATION] [rate=RATE]
//! ```

use std::net::Ipv4Addr;
use std::time::Duration;

/// At most this many nodes: node `i` owns 10.77.(i+1).0/24.
pub const MAX_NODES: usize = 250;
/// Names become parts of namespace names (`surgenet-ID-NAME`), so they stay short and plain.
pub const MAX_NAME_LEN: usize = 24;
/// The router namespace is called `wan`; no node may take that name.
pub const RESERVED_NAME: &str = "wan";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub bits_per_second: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkParams {
    /// One way: a round trip across the link takes twice this.
    pub delay: Duration,
    /// Each chunk's delay is drawn uniformly from delay ± jitter (never below zero).
    pub jitter: Duration,
    /// Shared by every connection crossing the link, per direction; None: unlimited.
    pub rate: Option<Rate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// Access-link cap, both directions (tc tbf on both ends of the node's veth).
    pub rate: Option<Rate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub a: usize,
    pub b: usize,
    pub params: LinkParams,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
}

/// One link on a route, crossed from `a` to `b` (`forward`) or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    pub link: usize,
    pub forward: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct TopologyError {
    pub line: usize,
    pub message: String,
}

/// Parses a rate as tc writes it: `2mbit`, `500kbit`, `1gbit`, `64000bit` (decimals allowed).
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: f64 = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => {
            return Err(format!(
                "`{text}` is not a rate (examples: 500kbit, 2mbit, 1gbit)"
            ));
        }
    };
    let valid_number = !number.is_empty()
        && number.chars().filter(|&c| c == '.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let value: f64 = if valid_number {
        number
            .parse()
            .map_err(|_| format!("`{text}` is not a rate"))?
    } else {
        return Err(format!(
            "`{text}` is not a rate (examples: 500kbit, 2mbit, 1gbit)"
        ));
    };
    let bits = value * scale;
    // tbf needs at least a few packets a second to work at all; 100 Gbit/s is more than a veth.
    if !(8_000.0..=100e9).contains(&bits) {
        return Err(format!("rate `{text}` is outside 8kbit..100gbit"));
    }
    Ok(Rate {
        bits_per_second: bits.round() as u64,
    })
}

/// Parses a duration with the shared flag syntax (`80ms`, `1.5s`, `2m`), except that a bare
/// number is refused: `delay=80` would be 80 seconds, never what a link means.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("`{t}` needs a unit (for example {t}ms)"));
    }
    let d = surge_flags::duration(text).map_err(|e| e.to_string())?;
    if d > Duration::from_secs(3600) {
        return Err(format!("`{text}` is longer than an hour"));
    }
    Ok(d)
}

pub fn valid_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        return Err(format!(
            "name `{name}` must be 1-{MAX_NAME_LEN} of a-z, 0-9 and inner '-'"
        ));
    }
    if name == RESERVED_NAME {
        return Err(format!(
            "name `{name}` is reserved for the router namespace"
        ));
    }
    Ok(())
}

/// Applies `key=value` settings to link parameters (the file's and the control command's
/// syntax). `rate=none` removes a cap when `allow_none` (at run time).
pub fn apply_settings<'a>(
    params: &mut LinkParams,
    settings: impl IntoIterator<Item = &'a str>,
    allow_none: bool,
) -> Result<(), String> {
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("`{setting}` is not key=value (delay=, jitter=, rate=)"))?;
        match key {
            "delay" => params.delay = parse_duration(value).map_err(|e| format!("delay: {e}"))?,
            "jitter" => {
                params.jitter = parse_duration(value).map_err(|e| format!("jitter: {e}"))?
            }
            "rate" if allow_none && value == "none" => params.rate = None,
            "rate" => params.rate = Some(parse_rate(value).map_err(|e| format!("rate: {e}"))?),
            other => {
                return Err(format!(
                    "unknown link setting `{other}` (delay, jitter, rate)"
                ));
            }
        }
    }
    if params.jitter > params.delay {
        return Err(format!(
            "jitter {:?} exceeds delay {:?} (a delay cannot go below zero)",
            params.jitter, params.delay
        ));
    }
    Ok(())
}

impl Topology {
    pub fn parse(text: &str) -> Result<Topology, TopologyError> {
        let mut topo = Topology::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let err = |message: String| TopologyError { line, message };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let words: Vec<&str> = content.split_whitespace().collect();
            match words[0] {
                "node" => {
                    let name = *words
                        .get(1)
                        .ok_or_else(|| err("node needs a NAME".into()))?;
                    valid_name(name).map_err(err)?;
                    topo.check_unused(name).map_err(err)?;
                    let mut rate = None;
                    for setting in &words[2..] {
                        match setting.split_once('=') {
                            Some(("rate", v)) => {
                                rate = Some(parse_rate(v).map_err(|e| err(format!("rate: {e}")))?)
                            }
                            _ => {
                                return Err(err(format!(
                                    "unknown node setting `{setting}` (only rate=)"
                                )));
                            }
                        }
                    }
                    if topo.nodes.len() == MAX_NODES {
                        return Err(err(format!("more than {MAX_NODES} nodes")));
                    }
                    topo.nodes.push(Node {
                        name: name.to_owned(),
                        rate,
                    });
                }
                "link" => {
                    if words.len() < 4 {
                        return Err(err("link needs NAME A B [delay=] [jitter=] [rate=]".into()));
                    }
                    let name = words[1];
                    valid_name(name).map_err(err)?;
                    topo.check_unused(name).map_err(err)?;
                    let a = topo.node_index(words[2]).ok_or_else(|| {
                        err(format!(
                            "link {name}: unknown node `{}` (declare nodes first)",
                            words[2]
                        ))
                    })?;
                    let b = topo.node_index(words[3]).ok_or_else(|| {
                        err(format!(
                            "link {name}: unknown node `{}` (declare nodes first)",
                            words[3]
                        ))
                    })?;
                    if a == b {
                        return Err(err(format!("link {name} joins `{}` to itself", words[2])));
                    }
                    if let Some(other) = topo
                        .links
                        .iter()
                        .find(|l| (l.a, l.b) == (a, b) || (l.a, l.b) == (b, a))
                    {
                        return Err(err(format!(
                            "link {name} joins the same nodes as link {}",
                            other.name
                        )));
                    }
                    let mut params = LinkParams::default();
                    apply_settings(&mut params, words[4..].iter().copied(), false)
                        .map_err(|e| err(format!("link {name}: {e}")))?;
                    topo.links.push(Link {
                        name: name.to_owned(),
                        a,
                        b,
                        params,
                    });
                }
                other => {
                    return Err(err(format!("unknown statement `{other}` (node or link)")));
                }
            }
        }
        if topo.nodes.is_empty() {
            return Err(TopologyError {
                line: text.lines().count(),
                message: "no nodes".into(),
            });
        }
        Ok(topo)
    }

    fn check_unused(&self, name: &str) -> Result<(), String> {
        if self.nodes.iter().any(|n| n.name == name) || self.links.iter().any(|l| l.name == name) {
            return Err(format!(
                "name `{name}` is used twice (nodes and links share names)"
            ));
        }
        Ok(())
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    pub fn link_index(&self, name: &str) -> Option<usize> {
        self.links.iter().position(|l| l.name == name)
    }

    /// The node that owns `addr` (its own address), if any.
    pub fn node_at(&self, addr: Ipv4Addr) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| node_address(i) == addr)
    }

    /// Routes between every pair of nodes: fewest links first, then the least configured
    /// delay. Fixed at start (changing a delay at run time does not reroute), as on a WAN
    /// whose routing does not follow latency. `routes[s][d]` is None without a path.
    pub fn routes(&self) -> Vec<Vec<Option<Vec<Hop>>>> {
        let n = self.nodes.len();
        let mut routes = vec![vec![None; n]; n];
        for (source, row) in routes.iter_mut().enumerate() {
            // Dijkstra on (hops, delay); n is at most 250.
            let mut best: Vec<Option<(usize, Duration, Vec<Hop>)>> = vec![None; n];
            let mut done = vec![false; n];
            best[source] = Some((0, Duration::ZERO, Vec::new()));
            loop {
                let next = (0..n)
                    .filter(|&i| !done[i])
                    .filter_map(|i| best[i].as_ref().map(|(h, d, _)| ((*h, *d), i)))
                    .min();
                let Some((_, u)) = next else { break };
                done[u] = true;
                let Some((hops, delay, path)) = best[u].clone() else {
                    break;
                };
                for (index, link) in self.links.iter().enumerate() {
                    let (v, forward) = if link.a == u {
                        (link.b, true)
                    } else if link.b == u {
                        (link.a, false)
                    } else {
                        continue;
                    };
                    let cost = (hops + 1, delay + link.params.delay);
                    let better = match &best[v] {
                        None => true,
                        Some((h, d, _)) => cost < (*h, *d),
                    };
                    if !done[v] && better {
                        let mut p = path.clone();
                        p.push(Hop {
                            link: index,
                            forward,
                        });
                        best[v] = Some((cost.0, cost.1, p));
                    }
                }
            }
            for (dest, slot) in row.iter_mut().enumerate() {
                if dest != source {
                    *slot = best[dest].take().map(|(_, _, p)| p);
                }
            }
        }
        routes
    }
}

/// Node `i`'s address inside its namespace (on its veth to the router).
pub fn node_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, (i + 1) as u8, 2)
}

/// The router's address on node `i`'s veth (the node's default gateway).
pub fn router_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, (i + 1) as u8, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAN3: &str = include_str!("../../scripts/netem/presets/wan3.topo");

    fn err(text: &str) -> String {
        Topology::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn wan3_preset_parses() {
        let t = Topology::parse(WAN3).unwrap();
        assert_eq!(t.nodes.len(), 6);
        let l = &t.links[t.link_index("us-east-eu-west").unwrap()];
        assert_eq!(l.params.delay, Duration::from_millis(80));
        let v = &t.nodes[t.node_index("viewer-2m").unwrap()];
        assert_eq!(
            v.rate,
            Some(Rate {
                bits_per_second: 2_000_000
            })
        );
    }

    #[test]
    fn routes_take_fewest_links() {
        let t = Topology::parse(WAN3).unwrap();
        let r = t.routes();
        let (us, ap, v2) = (0, 2, 3);
        let path = r[v2][ap].as_ref().unwrap();
        let names: Vec<_> = path.iter().map(|h| t.links[h.link].name.as_str()).collect();
        assert_eq!(
            names,
            ["eu-west-viewer-2m", "us-east-eu-west", "us-east-ap-south"]
        );
        assert!(!path[0].forward && !path[1].forward && path[2].forward);
        assert_eq!(r[us][ap].as_ref().unwrap().len(), 1);
        assert!(r[us][us].is_none());
    }

    #[test]
    fn unreachable_nodes_have_no_route() {
        let t = Topology::parse("node a\nnode b\nnode c\nlink ab a b\n").unwrap();
        assert!(t.routes()[0][2].is_none());
        assert!(t.routes()[0][1].is_some());
    }

    #[test]
    fn bad_input_names_the_line_and_field() {
        assert_eq!(
            err("node a\nnode b\nlink x a b delay=80"),
            "line 3: link x: delay: `80` needs a unit (for example 80ms)"
        );
        assert!(
            err("node a\nnode b\nlink x a b delay=8O0ms").starts_with("line 3: link x: delay:")
        );
        assert!(err("node a\nnode b\nlink x a b delay=-5ms").starts_with("line 3: link x: delay:"));
        assert!(err("node a\nnode b\nlink x a b delay=5ms jitter=9ms").contains("exceeds delay"));
        assert!(
            err("node a\nnode b\nlink x a b rate=2mbps").contains("rate: `2mbps` is not a rate")
        );
        assert!(err("node a\nnode b\nlink x a b loss=1%").contains("unknown link setting `loss`"));
        assert!(err("node a\nlink x a c").contains("unknown node `c`"));
        assert!(err("node a\nnode a").contains("used twice"));
        assert!(err("node wan").contains("reserved"));
        assert!(err("node Big").contains("must be"));
        assert!(err("nodes a").contains("unknown statement"));
        assert!(err("# nothing\n").contains("no nodes"));
        assert!(err("node a rate=1kbit").contains("outside"));
    }

    #[test]
    fn rates_and_settings() {
        assert_eq!(parse_rate("2mbit").unwrap().bits_per_second, 2_000_000);
        assert_eq!(parse_rate("1.5mbit").unwrap().bits_per_second, 1_500_000);
        assert_eq!(parse_rate("64000bit").unwrap().bits_per_second, 64_000);
        for bad in ["", "mbit", "2", "2 mbit", "1.2.3mbit", "-2mbit", "2Mbit"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        let mut p = LinkParams {
            rate: Some(Rate {
                bits_per_second: 8000,
            }),
            ..Default::default()
        };
        apply_settings(&mut p, ["delay=80ms", "jitter=10ms", "rate=none"], true).unwrap();
        assert_eq!(p.delay, Duration::from_millis(80));
        assert_eq!(p.jitter, Duration::from_millis(10));
        assert_eq!(p.rate, None);
        assert!(apply_settings(&mut p, ["rate=none"], false).is_err());
        assert!(apply_settings(&mut p, ["delay"], true).is_err());
    }

    #[test]
    fn addresses() {
        let t = Topology::parse(WAN3).unwrap();
        assert_eq!(node_address(0), Ipv4Addr::new(10, 77, 1, 2));
        assert_eq!(router_address(5), Ipv4Addr::new(10, 77, 6, 1));
        assert_eq!(t.node_at(Ipv4Addr::new(10, 77, 3, 2)), Some(2));
        assert_eq!(t.node_at(Ipv4Addr::new(10, 77, 3, 1)), None);
    }
}
