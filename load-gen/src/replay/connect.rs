//! A viewer's TCP connection, optionally shaped like a slow Internet path.
//!
//! On loopback the MSS is about 64 KiB, and a receiver opens its window only once it has
//! freed about one MSS: a viewer trickling 50 kbit/s would look to the relay like one that
//! reads nothing for ten seconds at a time. And the receive buffer grows with the kernel's
//! autotuning (up to `tcp_rmem`'s maximum, tens of MiB on some machines): a viewer reading
//! slower than the stream would hide seconds of it in its own kernel before the relay saw it
//! fall behind, where on a real slow link the excess waits in a bottleneck queue of bounded
//! size. A slow viewer asks for a [`WanPath`] so both behave as on a WAN.

use std::io;

use tokio::net::{TcpSocket, TcpStream, lookup_host};

/// What a slow viewer's connection is clamped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WanPath {
    /// The segment size asked for in the SYN.
    pub mss: u32,
    /// `SO_RCVBUF`, set before connecting (which turns autotuning off).
    pub recv_buffer: u32,
}

/// An Ethernet path's MSS (1,500-byte MTU, TCP timestamps on) and a receive buffer about a
/// bottleneck queue's size (64 KiB; the kernel doubles it for its bookkeeping).
pub const SLOW_PATH: WanPath = WanPath {
    mss: 1448,
    recv_buffer: 64 << 10,
};

/// Connects to `addr` (HOST:PORT); with `path`, shapes the socket as it says.
pub async fn tcp(addr: &str, path: Option<WanPath>) -> io::Result<TcpStream> {
    let Some(path) = path else {
        return TcpStream::connect(addr).await;
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address"));
    for to in lookup_host(addr).await? {
        let socket = if to.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        set_mss(&socket, path.mss)?;
        socket.set_recv_buffer_size(path.recv_buffer)?;
        match socket.connect(to).await {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn set_mss(socket: &TcpSocket, mss: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let value = mss as libc::c_int;
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
