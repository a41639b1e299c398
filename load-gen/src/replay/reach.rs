//! How a viewer reaches its relay (IO): straight to the target, or through the region's
//! locator — an HTTP-FLV play follows the locator's redirects (at most
//! [`MAX_REDIRECTS`](super::locator::MAX_REDIRECTS)), an RTMP viewer asks
//! `/api/v1/locate` first, as a real player would. Through a locator, a 503 anywhere on the
//! way is a refusal; with a relay as the target it stays an error, as it always was.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::connect::WanPath;
use super::http_flv::{ResponseHead, parse_head, request};
use super::locator::{
    HttpUrl, Redirects, locate_path, parse_locate_answer, play_path, retry_after,
};
use super::placement::Placement;
use super::target::{Access, Endpoint};
use surge_wire::http_chunked::ChunkedDecoder;

/// Largest locate answer read (they are a few hundred bytes).
const MAX_BODY: usize = 64 * 1024;

/// Why a viewer could not reach a relay.
#[derive(Debug)]
pub enum Fail {
    /// Nothing had room: try again after this long.
    Refused(Duration),
    Other(String),
}

impl From<String> for Fail {
    fn from(e: String) -> Self {
        Fail::Other(e)
    }
}

impl From<&str> for Fail {
    fn from(e: &str) -> Self {
        Fail::Other(e.to_owned())
    }
}

/// The RTMP play a viewer makes.
#[derive(Debug)]
pub struct RtmpReach {
    pub addr: String,
    pub app: String,
    pub stream: String,
    pub tc_url: String,
    /// Per-relay key: `rtmp://HOST:PORT`.
    pub relay: String,
    pub placement: Placement,
}

pub async fn rtmp(ep: &Endpoint, app: &str, stream: &str) -> Result<RtmpReach, Fail> {
    match ep.access {
        Access::Direct { .. } => {
            let addr = ep.rtmp_addr().unwrap_or_default();
            Ok(RtmpReach {
                tc_url: format!("rtmp://{addr}/{app}"),
                relay: format!("rtmp://{addr}"),
                addr,
                app: app.to_owned(),
                stream: stream.to_owned(),
                placement: Placement::Direct,
            })
        }
        Access::Locator { .. } => {
            let locator = ep.http_addr().unwrap_or_default();
            let path = locate_path(app, stream);
            let (head, body) = get(&locator, &path).await?;
            match head.status {
                200 => {
                    let place = parse_locate_answer(&body)
                        .map_err(|e| format!("locate on {locator}: {e}"))?;
                    Ok(RtmpReach {
                        addr: place.url.addr(),
                        tc_url: place.url.tc_url(),
                        relay: place.relay(),
                        app: place.url.app,
                        stream: place.url.stream,
                        placement: place.placement,
                    })
                }
                503 => Err(Fail::Refused(retry_after(head.header("retry-after")))),
                s => Err(Fail::Other(format!(
                    "locate on {locator}: HTTP {s}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
                ))),
            }
        }
    }
}

/// An HTTP-FLV play whose response head said 200.
pub struct FlvReach {
    pub socket: TcpStream,
    pub head: ResponseHead,
    /// Body bytes read with the head.
    pub leftover: Vec<u8>,
    /// Per-relay key: `http://HOST:PORT`.
    pub relay: String,
    pub placement: Placement,
}

/// `refusals`: a 503 is a refusal to count and retry (through a locator, or a pool of relays
/// a viewer picks from at random); otherwise it is an error.
/// `wan`: see [`super::connect`].
pub async fn flv(
    ep: &Endpoint,
    refusals: bool,
    app: &str,
    stream: &str,
    wan: Option<WanPath>,
) -> Result<FlvReach, Fail> {
    let port = ep
        .http_port()
        .ok_or_else(|| "no HTTP port for this region's target".to_string())?;
    let direct = !ep.is_locator();
    let start = HttpUrl {
        host: ep.host.clone(),
        port,
        path: play_path(app, stream),
    };
    let mut hops = Redirects::new(start);
    loop {
        let url = hops.current().clone();
        let (socket, head, leftover) = open("http-flv", &url.addr(), &url.path, wan).await?;
        let placement = if direct {
            Placement::Direct
        } else {
            hops.placement()
        };
        match head.status {
            200 => {
                return Ok(FlvReach {
                    socket,
                    head,
                    leftover,
                    relay: url.relay(),
                    placement,
                });
            }
            301 | 302 | 303 | 307 | 308 if !direct => {
                hops.follow(head.header("location"), head.header("x-surge-placement"))
                    .map_err(|e| format!("http-flv {}: {e}", url.path))?;
            }
            503 if refusals => return Err(Fail::Refused(retry_after(head.header("retry-after")))),
            s => return Err(Fail::Other(format!("http-flv {}: HTTP {s}", url.path))),
        }
    }
}

/// Connects, sends a GET and reads the response head; the socket stays open for the body.
/// `what` starts the error messages (`http-flv`, `locate`).
async fn open(
    what: &str,
    addr: &str,
    path: &str,
    wan: Option<WanPath>,
) -> Result<(TcpStream, ResponseHead, Vec<u8>), String> {
    let mut socket = super::connect::tcp(addr, wan)
        .await
        .map_err(|e| format!("{what} connect {addr}: {e}"))?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    socket
        .write_all(&request(addr, path))
        .await
        .map_err(|e| format!("{what} request: {e}"))?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .read(&mut buf)
            .await
            .map_err(|e| format!("{what} {path}: {e}"))?;
        if n == 0 {
            return Err("server closed the connection".into());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(head) = parse_head(&raw).map_err(|e| format!("{what} {path}: {e}"))? {
            let leftover = raw.split_off(head.len);
            return Ok((socket, head, leftover));
        }
    }
}

/// A GET answered with a short body (the locate API).
async fn get(addr: &str, path: &str) -> Result<(ResponseHead, Vec<u8>), String> {
    let (mut socket, head, mut raw) = open("locate", addr, path, None).await?;
    let length: Option<usize> = head.header("content-length").and_then(|v| v.parse().ok());
    let mut buf = [0u8; 4096];
    // `Connection: close`: the body ends at the length given, or when the server closes.
    while length.is_none_or(|l| raw.len() < l) && raw.len() <= MAX_BODY {
        let n = socket
            .read(&mut buf)
            .await
            .map_err(|e| format!("locate {path}: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    if raw.len() > MAX_BODY {
        return Err(format!(
            "locate {path}: answer larger than {MAX_BODY} bytes"
        ));
    }
    let body = if head.chunked {
        let mut body = Vec::new();
        ChunkedDecoder::new()
            .decode_to_vec(&raw, &mut body)
            .map_err(|e| format!("locate {path}: {e}"))?;
        body
    } else {
        raw.truncate(length.unwrap_or(raw.len()));
        raw
    };
    Ok((head, body))
}
