//! A viewer's TCP connection, optionally with the MSS of a real Internet path. On loopback
//! the MSS is about 64 KiB, and a receiver opens its window only once it has freed about one
//! MSS: a viewer trickling 50 kbit/s would look to the relay like one that reads nothing for
//! ten seconds at a time. A slow viewer asks for [`PATH_MSS`] so its window opens as on a WAN.

use std::io;

use tokio::net::{TcpSocket, TcpStream, lookup_host};

/// An Ethernet path's MSS (1,500-byte MTU, TCP timestamps on).
pub const PATH_MSS: u32 = 1448;

/// Connects to `addr` (HOST:PORT); with `mss`, clamps the segment size asked for in the SYN.
pub async fn tcp(addr: &str, mss: Option<u32>) -> io::Result<TcpStream> {
    let Some(mss) = mss else {
        return TcpStream::connect(addr).await;
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address"));
    for to in lookup_host(addr).await? {
        let socket = if to.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        set_mss(&socket, mss)?;
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
