//! A viewer's socket, read through one buffer shared by all viewers of the thread.
//! A short read means the kernel queue is empty, so readiness is cleared right away:
//! one `recv` per wake-up instead of a second one that only returns `WouldBlock`.

use std::cell::RefCell;
use std::io::{self, Read, Write};

use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

pub struct ViewerSocket {
    fd: AsyncFd<std::net::TcpStream>,
    delayed_acks: bool,
}

/// Asks the kernel to delay ACKs (leave quick-ACK mode) on this socket. Linux drops back to
/// quick ACKs on its own, so this is repeated after every read.
fn delay_acks(stream: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let off: libc::c_int = 0;
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// What one read gave.
pub enum Read1<R> {
    Data(R),
    Eof,
}

impl ViewerSocket {
    pub fn new(stream: TcpStream, delayed_acks: bool) -> io::Result<Self> {
        let std = stream.into_std()?;
        std.set_nonblocking(true)?;
        // SAFETY: the std stream owns its descriptor and the AsyncFd owns the stream,
        // so the descriptor stays open and the same for the AsyncFd's whole life.
        let fd =
            unsafe { AsyncFd::register(std) }.map_err(|e| io::Error::other(format!("{e:?}")))?;
        Ok(Self { fd, delayed_acks })
    }

    /// Waits for data and hands what one `recv` of at most `max` bytes (and at most the
    /// shared buffer's 64 KiB) returned to `on_data`.
    pub async fn read_with<R>(
        &self,
        max: usize,
        mut on_data: impl FnMut(&[u8]) -> R,
    ) -> io::Result<Read1<R>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let outcome = READ_BUF.with(|cell| {
                let mut whole = cell.borrow_mut();
                let capacity = max.clamp(1, whole.len());
                let buf = &mut whole[..capacity];
                match self.fd.get_ref().read(buf) {
                    Ok(0) => Some(Ok(Read1::Eof)),
                    Ok(n) => {
                        if n < capacity {
                            guard.clear_ready();
                        }
                        if self.delayed_acks {
                            delay_acks(self.fd.get_ref());
                        }
                        Some(Ok(Read1::Data(on_data(&buf[..n]))))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        None
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
                    Err(e) => Some(Err(e)),
                }
            });
            if let Some(result) = outcome {
                return result;
            }
        }
    }

    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|inner| inner.get_ref().write(data)) {
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}
