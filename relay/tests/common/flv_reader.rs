//! An HTTP-FLV response read incrementally: head first, then chunked FLV bytes as they come.

use std::time::Duration;

use surge_wire::http_chunked::ChunkedDecoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One FLV tag: type (8 audio, 9 video, 18 data), timestamp, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub type_id: u8,
    pub timestamp: u32,
    pub data: Vec<u8>,
}

pub struct FlvReader {
    pub s: TcpStream,
    pub head: String,
    /// `None` for a response that is not chunked.
    dechunker: Option<ChunkedDecoder>,
    /// The de-chunked body so far.
    body: Vec<u8>,
}

impl FlvReader {
    pub async fn open(addr: std::net::SocketAddr, path: &str) -> FlvReader {
        Self::open_with(addr, path, "HTTP/1.1").await
    }

    /// As `open`, the request sent as `version` (`HTTP/1.0`: the body is not chunked).
    pub async fn open_with(addr: std::net::SocketAddr, path: &str, version: &str) -> FlvReader {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(format!("GET {path} {version}\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .expect("request");
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .expect("response head in time")
                .expect("read");
            assert!(n > 0, "closed before headers");
            raw.extend_from_slice(&buf[..n]);
            if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..p]).to_string();
                let chunked = head
                    .to_ascii_lowercase()
                    .contains("transfer-encoding: chunked");
                let mut reader = FlvReader {
                    s,
                    head,
                    dechunker: chunked.then(ChunkedDecoder::new),
                    body: Vec::new(),
                };
                reader.take(&raw[p + 4..]);
                return reader;
            }
        }
    }

    /// Reads for `d`, or until the response ends (last chunk or EOF); true if it ended.
    pub async fn read_for(&mut self, d: Duration) -> bool {
        let mut buf = [0u8; 65536];
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.s.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => {
                    self.take(&buf[..n]);
                    if self.dechunker.as_ref().is_some_and(ChunkedDecoder::is_done) {
                        return true;
                    }
                }
            }
        }
    }

    /// Adds response bytes to the body (de-chunked when the response is chunked).
    fn take(&mut self, bytes: &[u8]) {
        match &mut self.dechunker {
            // A decoder that met malformed framing keeps failing: nothing after it is body.
            Some(d) => _ = d.decode_to_vec(bytes, &mut self.body),
            None => self.body.extend_from_slice(bytes),
        }
    }

    /// Reads until at least `count` complete tags arrived (true), or the response ended or
    /// `timeout` passed first (false).
    pub async fn read_until_tags(&mut self, count: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.tag_list().len() < count {
            let now = tokio::time::Instant::now();
            if now >= deadline
                || self
                    .read_for((deadline - now).min(Duration::from_millis(50)))
                    .await
            {
                return self.tag_list().len() >= count;
            }
        }
        true
    }

    /// Whether a chunked body ended with its last chunk (not only with the connection).
    pub fn ended_with_last_chunk(&self) -> bool {
        self.dechunker.as_ref().is_some_and(ChunkedDecoder::is_done)
    }

    /// The de-chunked body (FLV header and tags) received so far.
    pub fn body(&self) -> Vec<u8> {
        self.body.clone()
    }

    /// Complete tags (with their PreviousTagSize) of the body after the FLV header.
    pub fn tag_list(&self) -> Vec<Tag> {
        let body = &self.body;
        let mut tags = Vec::new();
        let mut p = surge_wire::flv::FILE_HEADER.len();
        while let Some((tag, end)) = body.get(p..).and_then(surge_wire::flv::parse_tag) {
            if p + end + 4 > body.len() {
                break;
            }
            tags.push(Tag {
                type_id: tag.tag_type,
                timestamp: tag.timestamp,
                data: tag.data.to_vec(),
            });
            p += end + 4;
        }
        tags
    }

    /// (de-chunked body, tag types in order).
    pub fn tags(&self) -> (Vec<u8>, Vec<u8>) {
        let types = self.tag_list().iter().map(|t| t.type_id).collect();
        (self.body(), types)
    }
}
