//! `surge-netem forward`: the proxy's links without namespaces or nftables. Each forward
//! listens on an address of this machine and carries every connection it accepts to one
//! target across one named link (delay, jitter, rate, stall, partition and reset as in the
//! transparent proxy, the same control commands). `scripts/demo --parent-links` puts one on
//! each region's path to the origin, on loopback (`surge-operator local --parent-links`
//! points the region's relays at it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio::net::TcpListener;

use crate::proxy::{Shared, accept_retrying, carry, serve_control};
use crate::topology::{Hop, Link, LinkParams, Node, Topology, apply_settings, valid_name};

/// One `--link NAME,LISTEN,TARGET[,key=value...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    pub link: String,
    pub listen: SocketAddr,
    pub target: SocketAddr,
    pub params: LinkParams,
}

/// Parses `NAME,LISTEN,TARGET[,delay=D][,jitter=D][,rate=R]`.
pub fn parse(text: &str) -> Result<Forward, String> {
    let mut parts = text.split(',');
    let (Some(link), Some(listen), Some(target)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "`{text}` is not NAME,LISTEN,TARGET[,delay=D][,jitter=D][,rate=R]"
        ));
    };
    valid_name(link)?;
    let address = |what: &str, a: &str| {
        a.parse::<SocketAddr>()
            .map_err(|_| format!("{what} `{a}` is not IP:PORT"))
    };
    let mut params = LinkParams::default();
    apply_settings(&mut params, parts, false)?;
    Ok(Forward {
        link: link.to_string(),
        listen: address("LISTEN", listen)?,
        target: address("TARGET", target)?,
        params,
    })
}

/// The links as a topology (for the control commands and `show`): per forward, its listen
/// address and its target as the link's two ends.
pub fn topology(forwards: &[Forward]) -> Result<Topology, String> {
    let mut topo = Topology {
        nodes: Vec::new(),
        links: Vec::new(),
    };
    for f in forwards {
        if topo.link_index(&f.link).is_some() {
            return Err(format!("link `{}` is given twice", f.link));
        }
        let a = topo.nodes.len();
        for end in [f.listen, f.target] {
            topo.nodes.push(Node {
                name: end.to_string(),
                rate: None,
            });
        }
        topo.links.push(Link {
            name: f.link.clone(),
            a,
            b: a + 1,
            params: f.params,
        });
    }
    Ok(topo)
}

/// Listens on every forward's address and serves the control port until the process ends.
pub async fn run(forwards: Vec<Forward>, control: SocketAddr) -> Result<()> {
    let topo = topology(&forwards).map_err(anyhow::Error::msg)?;
    let shared = Shared::new(topo);
    let control_listener = TcpListener::bind(control)
        .await
        .with_context(|| format!("--control {control}"))?;
    let mut listeners = Vec::new();
    for (index, f) in forwards.iter().enumerate() {
        let listener = TcpListener::bind(f.listen)
            .await
            .with_context(|| format!("--link {}: listen {}", f.link, f.listen))?;
        listeners.push((index, f.target, listener));
    }
    tracing::info!(%control, links = forwards.len(), "netem forward ready");
    tokio::spawn(serve_control(shared.clone(), control_listener));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, target, listener) in listeners {
        tasks.spawn(accept(shared.clone(), listener, index, target));
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn accept(shared: Arc<Shared>, listener: TcpListener, link: usize, target: SocketAddr) {
    loop {
        let (client, peer) = accept_retrying(&listener).await;
        let SocketAddr::V4(peer4) = peer else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.connections.fetch_add(1, Ordering::Relaxed);
            shared.open.fetch_add(1, Ordering::Relaxed);
            let route = vec![Hop {
                link,
                forward: true,
            }];
            if let Err(e) =
                carry(shared.clone(), client, peer4, target, route, Instant::now()).await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            shared.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn forwards_parse_and_say_what_is_wrong() {
        let f = parse("eu-west,127.0.0.2:1935,127.0.0.3:1935,delay=80ms").unwrap();
        assert_eq!(f.link, "eu-west");
        assert_eq!(f.listen, "127.0.0.2:1935".parse().unwrap());
        assert_eq!(f.target, "127.0.0.3:1935".parse().unwrap());
        assert_eq!(f.params.delay, Duration::from_millis(80));
        for (bad, says) in [
            ("eu-west,127.0.0.2:1935", "NAME,LISTEN,TARGET"),
            ("Eu,127.0.0.2:1935,127.0.0.3:1935", "Eu"),
            ("eu,127.0.0.2,127.0.0.3:1935", "LISTEN"),
            ("eu,127.0.0.2:1935,here", "TARGET"),
            ("eu,127.0.0.2:1935,127.0.0.3:1935,delay=80", "delay"),
            ("eu,127.0.0.2:1935,127.0.0.3:1935,rate=none", "rate"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn each_forward_is_a_link_between_its_two_addresses() {
        let fs = [
            parse("eu-west,127.0.0.2:1935,127.0.0.9:1935").unwrap(),
            parse("ap-south,127.0.0.4:1935,127.0.0.9:1935,rate=1mbit").unwrap(),
        ];
        let t = topology(&fs).unwrap();
        assert_eq!(t.link_index("ap-south"), Some(1));
        assert_eq!(t.nodes[t.links[1].a].name, "127.0.0.4:1935");
        assert_eq!(t.nodes[t.links[1].b].name, "127.0.0.9:1935");
        assert!(t.links[1].params.rate.is_some());
        let twice = topology(&[fs[0].clone(), fs[0].clone()]).unwrap_err();
        assert!(twice.contains("twice"), "{twice}");
    }
}
