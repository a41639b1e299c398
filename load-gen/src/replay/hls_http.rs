//! The HLS viewer's HTTP/1.1 client: GETs over one keep-alive connection (as players reuse
//! theirs), bodies framed by Content-Length, a fresh connection when the server closed the
//! old one. Only what nginx's static file serving needs; chunked bodies are refused.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::http_flv::parse_head;

/// Bodies larger than this are refused (a 3 s segment at 20 Mbit/s is 7.5 MB).
const MAX_BODY: usize = 64 << 20;

pub struct HttpConn {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// One response.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// Bytes read off the socket (head and body).
    pub wire_bytes: usize,
}

impl HttpConn {
    pub fn new(addr: String) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::new(),
        }
    }

    /// GET `path`, within `timeout`. A reused connection the server has closed meanwhile
    /// is retried once on a new one.
    pub async fn get(&mut self, path: &str, timeout: Duration) -> Result<Response, String> {
        tokio::time::timeout(timeout, async {
            let reused = self.stream.is_some();
            match self.try_get(path).await {
                Err(_) if reused => {
                    self.stream = None;
                    self.try_get(path).await
                }
                other => other,
            }
        })
        .await
        .map_err(|_| format!("GET {path}: no response within {timeout:?}"))?
    }

    async fn try_get(&mut self, path: &str) -> Result<Response, String> {
        let result = self.exchange(path).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(&mut self, path: &str) -> Result<Response, String> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| format!("connect {}: {e}", self.addr))?;
            let _ = s.set_nodelay(true);
            self.stream = Some(s);
            self.buf.clear();
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err("no connection".into());
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: surge-load\r\nAccept: */*\r\n\r\n",
            self.addr
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let mut wire = 0usize;
        let head = loop {
            if let Some(head) = parse_head(&self.buf).map_err(|e| format!("GET {path}: {e}"))? {
                break head;
            }
            wire += read_more(stream, &mut self.buf, path).await?;
        };
        if head.chunked {
            return Err(format!("GET {path}: chunked responses are not supported"));
        }
        let len: usize = match head.header("content-length") {
            Some(v) => v
                .parse()
                .map_err(|_| format!("GET {path}: bad Content-Length `{v}`"))?,
            None if head.status == 204 || head.status == 304 => 0,
            None => return Err(format!("GET {path}: response without Content-Length")),
        };
        if len > MAX_BODY {
            return Err(format!("GET {path}: body of {len} bytes is too large"));
        }
        self.buf.drain(..head.len);
        while self.buf.len() < len {
            wire += read_more(stream, &mut self.buf, path).await?;
        }
        let body: Vec<u8> = self.buf.drain(..len).collect();
        let close = head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if close {
            self.stream = None;
            self.buf.clear();
        }
        Ok(Response {
            status: head.status,
            body,
            wire_bytes: wire,
        })
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, path: &str) -> Result<usize, String> {
    let mut chunk = [0u8; 64 * 1024];
    let n = stream
        .read(&mut chunk)
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    if n == 0 {
        return Err(format!("GET {path}: server closed the connection"));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}
