//! Name resolution for upstreams and peers, with an optional hosts file (`--hosts-file`) that
//! is read again on every lookup, so names there follow whoever rewrites the file (e.g.
//! `surge-operator local`, which has no DNS for its Services' names).
//!
//! File format, one name per line: `NAME [ADDRESS ...]`, whitespace-separated, `#` starts a
//! comment. Unlike `/etc/hosts` the name comes first, so a name can be listed with no address
//! (a headless Service with no Ready pod: it resolves to nothing rather than falling back to
//! DNS). A name listed on several lines has all their addresses. Names not in the file, and
//! every name when the file is missing or unreadable, go to the system resolver.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

/// The hosts file's names and their addresses (names lower-case, without a trailing dot).
pub fn parse_hosts(text: &str) -> HashMap<String, Vec<IpAddr>> {
    let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else {
            continue;
        };
        let addresses = names.entry(normalise(name)).or_default();
        // An unparsable address is skipped, not the whole line.
        addresses.extend(words.filter_map(|w| w.parse::<IpAddr>().ok()));
    }
    names
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `(host, port)` of `host:port` or `[v6]:port`.
pub fn split_host_port(host_port: &str) -> Option<(&str, u16)> {
    let (host, port) = host_port.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

/// Where a lookup's answer came from.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The hosts file lists the name: these addresses (maybe none).
    Listed(Vec<SocketAddr>),
    /// Not listed (or no usable file): ask the system resolver.
    NotListed,
}

/// What `host:port` resolves to per the hosts file text `hosts`.
pub fn answer_from(hosts: &HashMap<String, Vec<IpAddr>>, host: &str, port: u16) -> Answer {
    match hosts.get(&normalise(host)) {
        Some(ips) => Answer::Listed(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
        None => Answer::NotListed,
    }
}

/// Resolves `host:port` names: the hosts file first (if any), then the system resolver.
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    hosts_file: Option<Arc<PathBuf>>,
}

impl Resolver {
    pub fn new(hosts_file: Option<PathBuf>) -> Resolver {
        Resolver {
            hosts_file: hosts_file.map(Arc::new),
        }
    }

    /// Every address `host_port` resolves to now.
    pub async fn lookup(&self, host_port: &str) -> io::Result<Vec<SocketAddr>> {
        if let (Some(path), Some((host, port))) = (&self.hosts_file, split_host_port(host_port)) {
            // An address needs no file (and must not be shadowed by one).
            if host.parse::<IpAddr>().is_err() {
                match tokio::fs::read_to_string(path.as_ref()).await {
                    Ok(text) => {
                        if let Answer::Listed(addrs) = answer_from(&parse_hosts(&text), host, port)
                        {
                            return Ok(addrs);
                        }
                    }
                    Err(e) => tracing::debug!(
                        file = %path.display(), error = %e,
                        "hosts file not readable; using the system resolver"
                    ),
                }
            }
        }
        Ok(tokio::net::lookup_host(host_port).await?.collect())
    }

    /// Connects to `host_port`, trying its addresses from a random one on (as a Service's
    /// DNS round robin spreads clients), all within `timeout`.
    pub async fn connect(&self, host_port: &str, timeout: Duration) -> io::Result<TcpStream> {
        let attempt = async {
            let mut addrs = self.lookup(host_port).await?;
            if addrs.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host_port}: the hosts file lists no address for it"),
                ));
            }
            let start = random_index(addrs.len());
            addrs.rotate_left(start);
            let mut last = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(s) => return Ok(s),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| io::Error::other("no address")))
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }
}

/// A random index below `len` (> 0), from the std hasher's random keys.
fn random_index(len: usize) -> usize {
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (n % len.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_first_with_any_number_of_addresses() {
        let hosts = parse_hosts(
            "# written by surge-operator local\n\
             s-peers.media.svc.cluster.local 127.200.1.1 127.200.1.2\n\
             s-origin.media.svc.cluster.local. 127.200.0.0   # a stand-in\n\
             \n\
             empty.media.svc.cluster.local\n\
             S-PEERS.media.svc.cluster.local 127.200.1.3 not-an-address ::1\n",
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            hosts["s-peers.media.svc.cluster.local"],
            [
                ip("127.200.1.1"),
                ip("127.200.1.2"),
                ip("127.200.1.3"),
                ip("::1")
            ]
        );
        assert_eq!(
            hosts["s-origin.media.svc.cluster.local"],
            [ip("127.200.0.0")]
        );
        assert!(hosts["empty.media.svc.cluster.local"].is_empty());
        assert_eq!(hosts.len(), 3);
    }

    #[test]
    fn listed_names_answer_from_the_file_others_do_not() {
        let hosts = parse_hosts("a.svc 127.0.0.5\nnone.svc\n");
        assert_eq!(
            answer_from(&hosts, "A.svc.", 8080),
            Answer::Listed(vec!["127.0.0.5:8080".parse().unwrap()])
        );
        assert_eq!(answer_from(&hosts, "none.svc", 1), Answer::Listed(vec![]));
        assert_eq!(answer_from(&hosts, "b.svc", 1), Answer::NotListed);
    }

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("a.b:80"), Some(("a.b", 80)));
        assert_eq!(split_host_port("[::1]:1935"), Some(("::1", 1935)));
        assert_eq!(split_host_port("a.b"), None);
        assert_eq!(split_host_port(":80"), None);
        assert_eq!(split_host_port("a:port"), None);
        for len in 1..5 {
            assert!(random_index(len) < len);
        }
    }

    #[tokio::test]
    async fn the_file_is_read_on_every_lookup_and_a_missing_one_falls_back() {
        let dir = std::env::temp_dir().join(format!("surge-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        let resolver = Resolver::new(Some(path.clone()));
        // Missing file: the system resolver (localhost resolves without DNS).
        let addrs = resolver.lookup("localhost:80").await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        std::fs::write(&path, "localhost 127.0.0.9\n").unwrap();
        assert_eq!(
            resolver.lookup("localhost:80").await.unwrap(),
            ["127.0.0.9:80".parse::<SocketAddr>().unwrap()]
        );
        std::fs::write(&path, "localhost 127.0.0.7 127.0.0.8\n").unwrap();
        assert_eq!(resolver.lookup("localhost:80").await.unwrap().len(), 2);
        // Addresses are never looked up in the file.
        assert_eq!(
            resolver.lookup("127.0.0.1:81").await.unwrap(),
            ["127.0.0.1:81".parse::<SocketAddr>().unwrap()]
        );
        std::fs::write(&path, "localhost\n").unwrap();
        assert!(resolver.lookup("localhost:80").await.unwrap().is_empty());
        let err = resolver
            .connect("localhost:80", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
