//! A local stand-in for a tier's Service, as kube-proxy makes a ClusterIP: one loopback address
//! ([`super::addresses`]: `127.<region>.<tier>.0`) listening on the Service's ports, each
//! connection forwarded to a random Ready relay behind the Service. The fleet sets the relays
//! ([`ServiceProxy::set_backends`]) whenever they change, and takes a relay out before it gets
//! SIGTERM, so new connections never reach a draining relay; connections already forwarded
//! stay with their relay. With no Ready relay, connections go to the running ones (see
//! [`backends`]); with none running, the connection is closed, as a Service without
//! endpoints refuses.
//!
//! The pure parts: [`backends`], [`target_port`], [`pick`].

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::rewrite::{Endpoint, selected};

/// Relays tried for one connection before it is given up.
const ATTEMPTS: usize = 3;
/// Time allowed to connect to one relay (loopback: at once, unless it is gone).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The relays `service` sends new connections to: Ready and not draining, by address; with
/// none Ready, every running one not being stopped. (kube-proxy would refuse instead, but an
/// edge that is not Ready because it is full still answers as its region's locator and sends
/// the viewer on to where there is room, which a refused connection cannot.)
pub fn backends(service: &Service, endpoints: &[Endpoint<'_>]) -> Vec<Ipv4Addr> {
    let relays = selected(service, endpoints);
    let ready: Vec<Ipv4Addr> = relays
        .iter()
        .filter(|e| e.serving())
        .map(|e| e.address)
        .collect();
    if !ready.is_empty() {
        return ready;
    }
    relays
        .iter()
        .filter(|e| !e.terminating)
        .map(|e| e.address)
        .collect()
}

/// The relay port a Service port forwards to: its `targetPort` (a number, or the container
/// port of that name), else the Service port itself.
pub fn target_port(port: &ServicePort, container: &Container) -> u16 {
    let own = u16::try_from(port.port).unwrap_or(0);
    match &port.target_port {
        Some(IntOrString::Int(n)) => u16::try_from(*n).unwrap_or(own),
        Some(IntOrString::String(name)) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(own),
        None => own,
    }
}

/// `(listen port, relay port)` of each of `service`'s ports.
pub fn port_map(service: &Service, container: &Container) -> Vec<(u16, u16)> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| Some((u16::try_from(p.port).ok()?, target_port(p, container))))
        .collect()
}

/// The relay for a connection: one of `backends` not yet `tried`, chosen by `random`.
pub fn pick(backends: &[Ipv4Addr], tried: &[Ipv4Addr], random: u64) -> Option<Ipv4Addr> {
    let left: Vec<Ipv4Addr> = backends
        .iter()
        .copied()
        .filter(|b| !tried.contains(b))
        .collect();
    if left.is_empty() {
        return None;
    }
    let i = usize::try_from(random % left.len() as u64).unwrap_or(0);
    Some(left[i])
}

fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// A Service's stand-in: its listeners and the relays behind it. Dropping it closes the
/// listeners (connections already forwarded go on).
pub struct ServiceProxy {
    pub address: Ipv4Addr,
    /// `(listen port, relay port)`.
    pub ports: Vec<(u16, u16)>,
    backends: Arc<RwLock<Vec<Ipv4Addr>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl ServiceProxy {
    /// Listens on `address` at each port of `ports`; call inside a Tokio runtime.
    pub fn bind(address: Ipv4Addr, ports: &[(u16, u16)]) -> std::io::Result<ServiceProxy> {
        let backends = Arc::new(RwLock::new(Vec::new()));
        let mut tasks = Vec::new();
        for &(listen, target) in ports {
            let std_listener = std::net::TcpListener::bind((address, listen))?;
            std_listener.set_nonblocking(true)?;
            let listener = TcpListener::from_std(std_listener)?;
            let backends = Arc::clone(&backends);
            tasks.push(tokio::spawn(accept(listener, backends, target)));
        }
        Ok(ServiceProxy {
            address,
            ports: ports.to_vec(),
            backends,
            tasks,
        })
    }

    /// New connections go to these relays from now on.
    pub fn set_backends(&self, relays: Vec<Ipv4Addr>) {
        *self.backends.write().unwrap_or_else(|e| e.into_inner()) = relays;
    }

    pub fn backends(&self) -> Vec<Ipv4Addr> {
        self.backends
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ServiceProxy {
    /// Closes the listeners, and returns once they are closed.
    pub async fn close(mut self) {
        for t in std::mem::take(&mut self.tasks) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for ServiceProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept(listener: TcpListener, backends: Arc<RwLock<Vec<Ipv4Addr>>>, target: u16) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors or the like: do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let backends = Arc::clone(&backends);
        tokio::spawn(async move {
            if let Some(mut relay) = connect(&backends, target).await {
                let mut client = client;
                let _ = client.set_nodelay(true);
                let _ = relay.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut relay).await;
            }
        });
    }
}

/// A connection to one of the relays now behind the Service, trying a few.
async fn connect(backends: &RwLock<Vec<Ipv4Addr>>, target: u16) -> Option<TcpStream> {
    let mut tried = Vec::new();
    for _ in 0..ATTEMPTS {
        let now = backends.read().unwrap_or_else(|e| e.into_inner()).clone();
        let relay = pick(&now, &tried, random())?;
        tried.push(relay);
        let addr = SocketAddr::from((relay, target));
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            return Some(stream);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, ServiceSpec};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn container() -> Container {
        let port = |name: &str, n| ContainerPort {
            name: Some(name.to_string()),
            container_port: n,
            ..ContainerPort::default()
        };
        Container {
            ports: Some(vec![port("rtmp", 1935), port("http", 8080)]),
            ..Container::default()
        }
    }

    #[test]
    fn ports_forward_to_the_target_port() {
        let sp = |port, target| ServicePort {
            port,
            target_port: target,
            ..ServicePort::default()
        };
        let service = Service {
            spec: Some(ServiceSpec {
                ports: Some(vec![
                    sp(1935, Some(IntOrString::String("rtmp".into()))),
                    sp(80, Some(IntOrString::String("http".into()))),
                    sp(9000, Some(IntOrString::Int(9001))),
                    sp(7000, None),
                    sp(7001, Some(IntOrString::String("nope".into()))),
                ]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        assert_eq!(
            port_map(&service, &container()),
            [
                (1935, 1935),
                (80, 8080),
                (9000, 9001),
                (7000, 7000),
                (7001, 7001)
            ]
        );
    }

    #[test]
    fn backends_are_the_ready_relays_else_the_running_ones() {
        use std::collections::BTreeMap;
        let labels = BTreeMap::from([("tier".to_string(), "edge".to_string())]);
        let service = Service {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                namespace: Some("media".to_string()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(labels.clone()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        let e = |last, ready, terminating| Endpoint {
            namespace: "media",
            labels: &labels,
            address: Ipv4Addr::new(127, 200, 1, last),
            ready,
            terminating,
        };
        let ip = |last| Ipv4Addr::new(127, 200, 1, last);
        let all = [e(3, true, false), e(1, false, false), e(2, false, true)];
        assert_eq!(backends(&service, &all), [ip(3)]);
        // None Ready (full edges): the running ones, never one being stopped.
        assert_eq!(backends(&service, &all[1..]), [ip(1)]);
        assert!(backends(&service, &all[2..]).is_empty());
    }

    #[test]
    fn a_pick_is_a_backend_not_yet_tried() {
        let b = [
            Ipv4Addr::new(127, 200, 1, 1),
            Ipv4Addr::new(127, 200, 1, 2),
            Ipv4Addr::new(127, 200, 1, 3),
        ];
        assert_eq!(pick(&b, &[], 0), Some(b[0]));
        assert_eq!(pick(&b, &[], 4), Some(b[1]));
        assert_eq!(pick(&b, &[b[0]], 0), Some(b[1]));
        assert_eq!(pick(&b, &b, 7), None);
        assert_eq!(pick(&[], &[], 7), None);
        // Spread: every backend gets picked over many draws.
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(pick(&b, &[], random()));
        }
        assert_eq!(seen.len(), 3);
    }

    /// A server at `addr` that answers each connection with `reply` and closes.
    async fn answer(addr: SocketAddr, reply: &'static [u8]) -> JoinHandle<()> {
        let listener = TcpListener::bind(addr).await.unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(reply).await;
            }
        })
    }

    async fn fetch(addr: SocketAddr) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    }

    #[tokio::test]
    async fn connections_follow_the_backends() {
        // 127.99.x: apart from the fleet tests' blocks.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let a = Ipv4Addr::new(127, 99, 1, 1);
        let b = Ipv4Addr::new(127, 99, 1, 2);
        let _sa = answer((a, port).into(), b"a").await;
        let _sb = answer((b, port).into(), b"b").await;
        let stand_in = Ipv4Addr::new(127, 99, 1, 0);
        let proxy = ServiceProxy::bind(stand_in, &[(port, port)]).unwrap();
        let front = SocketAddr::from((stand_in, port));
        // No relay: closed at once.
        assert!(fetch(front).await.is_empty());
        proxy.set_backends(vec![a]);
        assert_eq!(fetch(front).await, b"a");
        proxy.set_backends(vec![a, b]);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40 {
            seen.insert(fetch(front).await);
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        proxy.set_backends(vec![b]);
        for _ in 0..5 {
            assert_eq!(fetch(front).await, b"b");
        }
        // A backend that is gone is skipped for one that answers.
        let gone = Ipv4Addr::new(127, 99, 1, 3);
        proxy.set_backends(vec![gone, b]);
        for _ in 0..5 {
            assert_eq!(fetch(front).await, b"b");
        }
        assert_eq!(proxy.backends(), [gone, b]);
        drop(proxy);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(front).await.is_err(), "listener closed");
    }
}
