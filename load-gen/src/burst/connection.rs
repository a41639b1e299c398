//! One connection of a burst: dial (TCP, then TLS for https/rtmps), then play until the
//! first video tag or publish until `NetStream.Publish.Start`; the time of each step.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::target::BurstTarget;
use crate::flv::{PREFIX_CAP, TAG_VIDEO};
use crate::replay::http_flv::{parse_head, request};
use crate::rtmp_client::RtmpConnection;
use crate::tls_client::{Transport, dial};
use surge_wire::flv_stream::FlvStreamParser;
use surge_wire::http_chunked::ChunkedDecoder;
use surge_wire::url::socket_addr;

/// Each step (connect, handshake, first frame) gives up after this long.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection that got as far as playing or publishing.
#[derive(Debug, Clone, Copy)]
pub struct Joined {
    pub tcp: Duration,
    /// Zero without TLS.
    pub tls: Duration,
    /// From the start of the connection to the first video tag (viewers) or to
    /// `NetStream.Publish.Start` (publishers).
    pub join: Duration,
}

/// An open connection kept until the burst's hold ends.
pub enum Held {
    Viewer(Box<Transport>),
    Publisher(Box<RtmpConnection<Transport>>),
}

/// Runs connection `target` up to its join.
pub async fn join(
    target: &BurstTarget,
    tls: Option<&TlsConnector>,
) -> Result<(Joined, Held), String> {
    let t0 = Instant::now();
    match target {
        BurstTarget::Viewer {
            host, port, path, ..
        } => {
            let (mut socket, times) = dial(&socket_addr(host, *port), host, tls, STEP_TIMEOUT)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            tokio::time::timeout(STEP_TIMEOUT, first_video(&mut socket, host, path))
                .await
                .map_err(|_| format!("no video within {STEP_TIMEOUT:?}"))??;
            let joined = Joined {
                tcp: times.tcp,
                tls: times.tls,
                join: t0.elapsed(),
            };
            Ok((joined, Held::Viewer(Box::new(socket))))
        }
        BurstTarget::Publisher(url) => {
            let (socket, times) = dial(&url.addr(), &url.host, tls, STEP_TIMEOUT)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut conn = RtmpConnection::over(socket, &url.app, &url.tc_url())
                .await
                .map_err(|e| format!("rtmp connect: {e}"))?;
            let id = conn
                .create_stream()
                .await
                .map_err(|e| format!("rtmp createStream: {e}"))?;
            conn.publish(id, &url.stream)
                .await
                .map_err(|e| format!("rtmp publish: {e}"))?;
            let joined = Joined {
                tcp: times.tcp,
                tls: times.tls,
                join: t0.elapsed(),
            };
            Ok((joined, Held::Publisher(Box::new(conn))))
        }
    }
}

/// Sends the GET and reads the response until its first video tag.
async fn first_video(socket: &mut Transport, host: &str, path: &str) -> Result<(), String> {
    let io = |e: std::io::Error| format!("http-flv: {e}");
    socket.write_all(&request(host, path)).await.map_err(io)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut head_bytes = Vec::new();
    let (head, body_start) = loop {
        let n = socket.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err("server closed the connection before answering".into());
        }
        head_bytes.extend_from_slice(&buf[..n]);
        if let Some(head) = parse_head(&head_bytes).map_err(|e| e.to_string())? {
            let len = head.len;
            break (head, head_bytes.split_off(len));
        }
    };
    if head.status != 200 {
        return Err(format!("HTTP {}", head.status));
    }
    let mut dechunker = head.chunked.then(ChunkedDecoder::new);
    let mut parser = FlvStreamParser::new(PREFIX_CAP);
    // Whether the bytes fed so far held a video tag.
    let mut feed = |mut data: &[u8]| -> Result<bool, String> {
        let mut seen_video = false;
        let mut on_tag = |m: surge_wire::flv_stream::MessagePrefix<'_>| {
            seen_video |= m.type_id == TAG_VIDEO;
        };
        match dechunker.as_mut() {
            Some(d) => {
                while let Some(piece) = d.next_data(&mut data).map_err(|e| e.to_string())? {
                    parser.feed(piece, &mut on_tag).map_err(|e| e.to_string())?;
                }
            }
            None => parser.feed(data, &mut on_tag).map_err(|e| e.to_string())?,
        }
        Ok(seen_video)
    };
    if feed(&body_start)? {
        return Ok(());
    }
    loop {
        let n = socket.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            return Err("server ended the response before a video frame".into());
        }
        if feed(&buf[..n])? {
            return Ok(());
        }
    }
}
