//! The relay's listening sockets, with an accept queue deep enough for a burst of joins.
//!
//! Why: tokio's `TcpListener::bind` asks for a queue of 1,024 connections. When viewers
//! arrive faster than a busy relay accepts them (a crowd joining at once, 2,000 a second in
//! the capacity ramp), the kernel drops the SYNs that find the queue full and the client
//! retries a second later: the join then takes over a second for a wait of a few ms.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel may hold for the relay to accept (it caps this at
/// `net.core.somaxconn`, 4,096 by default since Linux 5.4).
pub const ACCEPT_QUEUE: u32 = 4096;

/// Binds `addr` (address reuse on, as `TcpListener::bind`) with an accept queue of
/// [`ACCEPT_QUEUE`]. Must run inside a tokio runtime.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_QUEUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The accept queue holds more than tokio's default of 1,024 connections: 1,100 clients
    /// connect while nothing accepts, and every connect completes (a full queue drops SYNs,
    /// and those clients would wait a second for their retry).
    #[tokio::test]
    async fn holds_more_waiting_connections_than_the_default_queue() {
        let listener = bind("127.0.0.1:0".parse().expect("address")).expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mut clients = Vec::new();
        for _ in 0..1_100 {
            let connect = tokio::net::TcpStream::connect(addr);
            let client = tokio::time::timeout(std::time::Duration::from_millis(900), connect)
                .await
                .expect("connected without a SYN retry")
                .expect("connect");
            clients.push(client);
        }
        let (_, peer) = listener.accept().await.expect("accept");
        assert!(clients.iter().any(|c| c.local_addr().ok() == Some(peer)));
    }
}
