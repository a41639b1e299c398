//! An RTMP client connection: handshake, connect, createStream, then play or publish.
//! Protocol control (acknowledgements, pings, chunk size) is handled by [`Control`].
//!
//! (Over 450 lines with its unit tests; the session itself is ~420 lines.)

use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use surge_wire::amf0::{self, Amf0Value, Amf0ValueExt, object, string};
use surge_wire::message::{
    MSG_AMF0_COMMAND, MSG_AMF0_DATA, MSG_AMF3_COMMAND, MSG_AUDIO, MSG_SET_PEER_BANDWIDTH,
    MSG_USER_CONTROL, MSG_VIDEO, MSG_WINDOW_ACK_SIZE, UserControl, parse_user_control,
    ping_response, read_u32, set_buffer_length, set_chunk_size, window_ack_size,
};
use surge_wire::{AckCounter, ChunkError, ChunkLimits, ChunkReader, PayloadPolicy, write_message};

use crate::flv::PREFIX_CAP;

/// Our outgoing chunk size (announced right after the handshake).
pub const OUT_CHUNK_SIZE: usize = 4096;
const CSID_COMMAND: u8 = 3;
const CSID_AUDIO: u8 = 4;
const CSID_DATA: u8 = 5;
const CSID_VIDEO: u8 = 6;
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("server did not answer within {0:?} ({1})")]
    Timeout(Duration, &'static str),
    #[error("server closed the connection ({0})")]
    Closed(&'static str),
    #[error("bad chunk stream from server: {0}")]
    Chunk(#[from] ChunkError),
    #[error("bad AMF0 from server: {0}")]
    Amf(#[from] amf0::Amf0Error),
    #[error("server refused: {0}")]
    Refused(String),
}

/// Window acknowledgements and ping replies.
#[derive(Debug, Default)]
pub struct Control {
    acks: AckCounter,
}

impl Control {
    /// Counts received bytes; appends an Acknowledgement to `out` when a window is full.
    pub fn on_bytes(&mut self, n: usize, out: &mut Vec<u8>) {
        self.acks.on_bytes_into(n, out);
    }

    /// Handles protocol control messages (types 4, 5, 6); appends replies to `out`.
    pub fn on_message(&mut self, type_id: u8, payload: &[u8], out: &mut Vec<u8>) {
        match type_id {
            MSG_WINDOW_ACK_SIZE => self.acks.on_window_ack_size(payload),
            // Set Peer Bandwidth: answer with our Window Acknowledgement Size.
            MSG_SET_PEER_BANDWIDTH => {
                if let Some(window) = read_u32(payload) {
                    out.extend_from_slice(&window_ack_size(window));
                }
            }
            MSG_USER_CONTROL => {
                if let Some(UserControl::PingRequest(t)) = parse_user_control(payload) {
                    out.extend_from_slice(&ping_response(t));
                }
            }
            _ => {}
        }
    }

    /// True for the message types [`on_message`](Self::on_message) handles.
    pub fn handles(type_id: u8) -> bool {
        matches!(
            type_id,
            MSG_USER_CONTROL | MSG_WINDOW_ACK_SIZE | MSG_SET_PEER_BANDWIDTH
        )
    }
}

/// A chunk reader for a client: whole commands (up to 1 MB), only the first [`PREFIX_CAP`]
/// bytes of each audio and video message.
pub fn client_chunk_reader() -> ChunkReader {
    let limits = ChunkLimits {
        max_chunk_size: 1 << 24,
        max_message_len: 1 << 20,
        ..ChunkLimits::default()
    };
    ChunkReader::with_policy(limits, PayloadPolicy::MediaPrefix(PREFIX_CAP))
}

/// An established RTMP connection over a TCP socket (the default) or any byte stream (TLS).
pub struct RtmpConnection<S = TcpStream> {
    pub socket: S,
    pub reader: ChunkReader,
    pub control: Control,
    next_transaction: f64,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// Commands received and not yet consumed: (name, transaction, arguments).
    inbox: Vec<Vec<Amf0Value>>,
}

/// Performs the (simple, version-0) handshake.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut S) -> Result<(), RtmpError> {
    let mut c0c1 = vec![0u8; 1537];
    c0c1[0] = 3;
    // C1: time 0, zero field 0 (simple handshake), then pseudo-random bytes.
    let mut x: u32 = 0x9e37_79b9;
    for b in &mut c0c1[9..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    socket.write_all(&c0c1).await?;
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    read_exact_or_closed(socket, &mut s0s1s2, "during the handshake").await?;
    if s0s1s2[0] != 3 {
        return Err(RtmpError::Refused(format!(
            "not an RTMP server (handshake version byte {:#04x})",
            s0s1s2[0]
        )));
    }
    // C2 echoes S1.
    socket.write_all(&s0s1s2[1..1537]).await?;
    Ok(())
}

async fn read_exact_or_closed<S: AsyncRead + Unpin>(
    socket: &mut S,
    buf: &mut [u8],
    what: &'static str,
) -> Result<(), RtmpError> {
    match socket.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(RtmpError::Closed(what)),
        Err(e) => Err(e.into()),
    }
}

impl RtmpConnection {
    /// TCP connect, handshake, Set Chunk Size and `connect(app)`; waits for `_result`.
    pub async fn connect(addr: &str, app: &str, tc_url: &str) -> Result<Self, RtmpError> {
        let socket = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| RtmpError::Timeout(STEP_TIMEOUT, "TCP connect"))??;
        socket.set_nodelay(true)?;
        Self::over(socket, app, tc_url).await
    }

    /// The socket and parser state, for a viewer that reads media itself.
    pub fn into_parts(self) -> (TcpStream, ChunkReader, Control) {
        (self.socket, self.reader, self.control)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RtmpConnection<S> {
    /// Handshake, Set Chunk Size and `connect(app)` on an open byte stream (plain or TLS).
    pub async fn over(mut socket: S, app: &str, tc_url: &str) -> Result<Self, RtmpError> {
        tokio::time::timeout(STEP_TIMEOUT, handshake(&mut socket))
            .await
            .map_err(|_| RtmpError::Timeout(STEP_TIMEOUT, "handshake"))??;
        Self::after_handshake(socket, app, tc_url).await
    }

    /// The `connect` command on an already handshaken socket.
    pub async fn after_handshake(socket: S, app: &str, tc_url: &str) -> Result<Self, RtmpError> {
        let mut conn = Self {
            socket,
            reader: client_chunk_reader(),
            control: Control::default(),
            next_transaction: 1.0,
            out: Vec::with_capacity(4096),
            buf: vec![0; 16 * 1024],
            inbox: Vec::new(),
        };
        conn.out
            .extend_from_slice(&set_chunk_size(OUT_CHUNK_SIZE as u32));
        let txn = conn.send_command(
            "connect",
            0,
            vec![object([
                ("app", string(app)),
                ("flashVer", string("LNX 9,0,124,2")),
                ("tcUrl", string(tc_url)),
                ("fpad", Amf0Value::Boolean(false)),
                ("capabilities", Amf0Value::Number(15.0)),
                ("audioCodecs", Amf0Value::Number(3575.0)),
                ("videoCodecs", Amf0Value::Number(252.0)),
                ("videoFunction", Amf0Value::Number(1.0)),
                ("objectEncoding", Amf0Value::Number(0.0)),
            ])],
        )?;
        conn.flush().await?;
        conn.await_result(txn, "connect").await?;
        Ok(conn)
    }

    /// `createStream`; returns the message stream id.
    pub async fn create_stream(&mut self) -> Result<u32, RtmpError> {
        let txn = self.send_command("createStream", 0, vec![Amf0Value::Null])?;
        self.flush().await?;
        let result = self.await_result(txn, "createStream").await?;
        let id = result
            .get(3)
            .and_then(Amf0Value::as_number)
            .ok_or_else(|| RtmpError::Refused("createStream returned no stream id".into()))?;
        Ok(id as u32)
    }

    /// Sends `play(name)` with a Set Buffer Length; media follows on the socket.
    pub async fn play(&mut self, stream_id: u32, name: &str) -> Result<(), RtmpError> {
        self.out
            .extend_from_slice(&set_buffer_length(stream_id, 1000));
        self.send_command_on(
            "play",
            stream_id,
            vec![Amf0Value::Null, string(name), Amf0Value::Number(-1000.0)],
            8,
        )?;
        self.flush().await
    }

    /// `publish(name, "live")`; waits for `NetStream.Publish.Start`.
    pub async fn publish(&mut self, stream_id: u32, name: &str) -> Result<(), RtmpError> {
        self.send_command("releaseStream", 0, vec![Amf0Value::Null, string(name)])?;
        self.send_command("FCPublish", 0, vec![Amf0Value::Null, string(name)])?;
        self.send_command_on(
            "publish",
            stream_id,
            vec![Amf0Value::Null, string(name), string("live")],
            CSID_COMMAND,
        )?;
        self.flush().await?;
        let status = self.await_status("publish").await?;
        if status.contains("Publish.Start") {
            Ok(())
        } else {
            Err(RtmpError::Refused(format!("publish answered {status}")))
        }
    }

    /// Queues `@setDataFrame onMetaData`.
    pub fn queue_metadata<'a>(
        &mut self,
        stream_id: u32,
        props: impl IntoIterator<Item = (&'a str, Amf0Value)>,
    ) -> Result<(), RtmpError> {
        let payload = amf0::encode(vec![
            string("@setDataFrame"),
            string("onMetaData"),
            object(props),
        ])?;
        write_message(
            &mut self.out,
            CSID_DATA,
            MSG_AMF0_DATA,
            stream_id,
            0,
            &payload,
            OUT_CHUNK_SIZE,
        );
        Ok(())
    }

    /// Queues one audio (8), video (9) or data (18) message.
    pub fn queue_media(&mut self, stream_id: u32, type_id: u8, timestamp: u32, payload: &[u8]) {
        let csid = match type_id {
            MSG_AUDIO => CSID_AUDIO,
            MSG_VIDEO => CSID_VIDEO,
            _ => CSID_DATA,
        };
        write_message(
            &mut self.out,
            csid,
            type_id,
            stream_id,
            timestamp,
            payload,
            OUT_CHUNK_SIZE,
        );
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), RtmpError> {
        if !self.out.is_empty() {
            self.socket.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads and answers whatever the server sent without blocking (acks, pings, errors).
    /// Returns an error if the server closed the connection or sent a failure status.
    pub fn poll_incoming(&mut self) -> Result<(), RtmpError> {
        loop {
            // A read that is not ready at once is dropped: reads are cancellation-safe, and
            // this works for TLS streams too (which have no `try_read`).
            match self.socket.read(&mut self.buf).now_or_never() {
                None => break,
                Some(Ok(0)) => return Err(RtmpError::Closed("while publishing")),
                Some(Ok(n)) => self.ingest(n)?,
                Some(Err(e)) => return Err(e.into()),
            }
        }
        for cmd in self.inbox.drain(..) {
            if let Some(code) = status_code(&cmd)
                && (code.contains("Failed")
                    || code.contains("BadName")
                    || code.contains("Unpublish"))
            {
                return Err(RtmpError::Refused(code.to_owned()));
            }
        }
        Ok(())
    }

    /// Queues a command; returns its transaction id.
    fn send_command(
        &mut self,
        name: &str,
        stream_id: u32,
        args: Vec<Amf0Value>,
    ) -> Result<f64, RtmpError> {
        self.send_command_on(name, stream_id, args, CSID_COMMAND)
    }

    fn send_command_on(
        &mut self,
        name: &str,
        stream_id: u32,
        args: Vec<Amf0Value>,
        csid: u8,
    ) -> Result<f64, RtmpError> {
        let txn = self.next_transaction;
        self.next_transaction += 1.0;
        let mut values = vec![string(name), Amf0Value::Number(txn)];
        values.extend(args);
        let payload = amf0::encode(values)?;
        write_message(
            &mut self.out,
            csid,
            MSG_AMF0_COMMAND,
            stream_id,
            0,
            &payload,
            OUT_CHUNK_SIZE,
        );
        Ok(txn)
    }

    /// Parses `n` fresh bytes from `self.buf`: control handled, commands to the inbox.
    fn ingest(&mut self, n: usize) -> Result<(), RtmpError> {
        let mut replies = Vec::new();
        self.control.on_bytes(n, &mut replies);
        let mut commands = Vec::new();
        self.reader.push(&self.buf[..n]);
        while let Some(m) = self.reader.next_message()? {
            match m.type_id {
                t if Control::handles(t) => self.control.on_message(t, &m.payload, &mut replies),
                MSG_AMF3_COMMAND | MSG_AMF0_COMMAND => commands.push((m.type_id, m.payload)),
                _ => {}
            }
        }
        self.out.extend_from_slice(&replies);
        for (type_id, payload) in commands {
            // AMF3 command messages (type 17) start with a format byte.
            let body = if type_id == MSG_AMF3_COMMAND {
                payload.get(1..).unwrap_or(&[])
            } else {
                &payload[..]
            };
            self.inbox.push(amf0::decode(body)?);
        }
        Ok(())
    }

    async fn read_some(&mut self, what: &'static str) -> Result<(), RtmpError> {
        let n = tokio::time::timeout(STEP_TIMEOUT, self.socket.read(&mut self.buf))
            .await
            .map_err(|_| RtmpError::Timeout(STEP_TIMEOUT, what))??;
        if n == 0 {
            return Err(RtmpError::Closed(what));
        }
        self.ingest(n)?;
        self.flush().await
    }

    /// Waits for `_result` (or `_error`) of transaction `txn`; returns the whole command.
    async fn await_result(
        &mut self,
        txn: f64,
        what: &'static str,
    ) -> Result<Vec<Amf0Value>, RtmpError> {
        loop {
            if let Some(i) = self
                .inbox
                .iter()
                .position(|c| c.get(1).and_then(Amf0Value::as_number) == Some(txn))
            {
                let cmd = self.inbox.remove(i);
                return match cmd.first().and_then(Amf0Value::as_str) {
                    Some("_result") => Ok(cmd),
                    _ => Err(RtmpError::Refused(format!("{what}: {}", describe(&cmd)))),
                };
            }
            self.read_some(what).await?;
        }
    }

    /// Waits for the next `onStatus`; returns its code.
    async fn await_status(&mut self, what: &'static str) -> Result<String, RtmpError> {
        loop {
            if let Some(i) = self.inbox.iter().position(|c| status_code(c).is_some()) {
                let cmd = self.inbox.remove(i);
                return Ok(status_code(&cmd).unwrap_or_default().to_owned());
            }
            self.read_some(what).await?;
        }
    }
}

/// The `code` of an `onStatus` command.
pub fn status_code(cmd: &[Amf0Value]) -> Option<&str> {
    if cmd.first().and_then(Amf0Value::as_str) != Some("onStatus") {
        return None;
    }
    cmd.iter()
        .skip(2)
        .find_map(|v| v.property("code").and_then(Amf0Value::as_str))
}

fn describe(cmd: &[Amf0Value]) -> String {
    let info = cmd.iter().skip(2).find_map(|v| {
        let code = v.property("code").and_then(Amf0Value::as_str)?;
        let desc = v
            .property("description")
            .and_then(Amf0Value::as_str)
            .unwrap_or("");
        Some(format!("{code} {desc}"))
    });
    info.unwrap_or_else(|| format!("{cmd:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledges_each_window_and_answers_pings() {
        let mut control = Control::default();
        let mut out = Vec::new();
        control.on_message(5, &1000u32.to_be_bytes(), &mut out);
        assert!(out.is_empty());
        control.on_bytes(999, &mut out);
        assert!(out.is_empty());
        control.on_bytes(1, &mut out);
        // One Acknowledgement (type 3) carrying 1000.
        assert_eq!(out[7], 3);
        assert_eq!(&out[12..16], &1000u32.to_be_bytes());
        out.clear();
        control.on_message(4, &[0, 6, 0, 0, 0, 42], &mut out);
        assert_eq!(out[7], 4);
        assert_eq!(&out[12..], &[0, 7, 0, 0, 0, 42]);
    }

    #[test]
    fn client_reader_keeps_media_prefixes_and_refuses_huge_commands() {
        let video: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut bytes = Vec::new();
        write_message(&mut bytes, 6, MSG_VIDEO, 1, 40, &video, 128);
        write_message(&mut bytes, 3, MSG_AMF0_COMMAND, 0, 0, &[7; 300], 128);
        let mut reader = client_chunk_reader();
        reader.push(&bytes);
        let v = reader.next_message().expect("valid").expect("video");
        assert_eq!((v.length, &v.payload[..]), (1000, &video[..PREFIX_CAP]));
        let c = reader.next_message().expect("valid").expect("command");
        assert_eq!(c.payload.len(), 300, "commands are kept whole");
        // A 16 MB command is refused before it is buffered.
        let mut reader = client_chunk_reader();
        reader.push(&[3u8, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0]);
        assert!(matches!(
            reader.next_message(),
            Err(ChunkError::MessageTooLong(..))
        ));
    }

    #[test]
    fn reads_status_codes() {
        let cmd = vec![
            string("onStatus"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            object([("code", string("NetStream.Play.Start"))]),
        ];
        assert_eq!(status_code(&cmd), Some("NetStream.Play.Start"));
        assert_eq!(status_code(&cmd[1..]), None);
    }
}
