//! A small RTMP client for tests: handshake (rml_rtmp), commands serialized with rml_rtmp,
//! incoming chunks parsed with the relay's own bounded chunk reader, AMF0 through
//! `surge_wire::amf0`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::time::RtmpTimestamp;
use surge_wire::amf0::{self, Amf0Value};
use surge_wire::{ChunkLimits, ChunkReader, RawMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const CHUNK_SIZE: u32 = 4096;

pub struct RtmpClient {
    pub stream: TcpStream,
    reader: ChunkReader,
    pub ser: ChunkSerializer,
    app: String,
    addr: SocketAddr,
}

/// Decoded AMF0 command: (name, values after the name).
pub fn decode_command(payload: &[u8]) -> Option<(String, Vec<Amf0Value>)> {
    let values = amf0::decode(payload).ok()?;
    match values.first() {
        Some(Amf0Value::Utf8String(name)) => Some((name.clone(), values[1..].to_vec())),
        _ => None,
    }
}

/// `code` of an onStatus info object.
pub fn status_code(values: &[Amf0Value]) -> Option<String> {
    values.iter().find_map(|v| match v {
        Amf0Value::Object(o) => match o.get("code") {
            Some(Amf0Value::Utf8String(c)) => Some(c.clone()),
            _ => None,
        },
        _ => None,
    })
}

impl RtmpClient {
    /// TCP connect + handshake + `connect(app)`, waiting for its `_result`.
    pub async fn connect(addr: SocketAddr, app: &str) -> Result<RtmpClient, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        Self::connect_over(stream, addr, app).await
    }

    /// Like [`connect`](Self::connect) with a small receive buffer (a viewer that lags).
    pub async fn connect_small_buffer(
        addr: SocketAddr,
        app: &str,
        recv_buffer: u32,
    ) -> Result<RtmpClient, String> {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        socket
            .set_recv_buffer_size(recv_buffer)
            .map_err(|e| e.to_string())?;
        let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
        Self::connect_over(stream, addr, app).await
    }

    async fn connect_over(
        stream: TcpStream,
        addr: SocketAddr,
        app: &str,
    ) -> Result<RtmpClient, String> {
        let mut client = Self::handshake_over(stream, addr, app).await?;
        client.connect_app().await?;
        Ok(client)
    }

    /// TCP connect + handshake only (for raw, hostile bytes afterwards).
    pub async fn handshake(addr: SocketAddr) -> Result<RtmpClient, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        Self::handshake_over(stream, addr, "live").await
    }

    async fn handshake_over(
        mut stream: TcpStream,
        addr: SocketAddr,
        app: &str,
    ) -> Result<RtmpClient, String> {
        stream.set_nodelay(true).ok();
        let mut hs = Handshake::new(PeerType::Client);
        let p0p1 = hs
            .generate_outbound_p0_and_p1()
            .map_err(|e| format!("{e:?}"))?;
        stream.write_all(&p0p1).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 8192];
        let leftover = loop {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                .await
                .map_err(|_| "handshake timeout".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during handshake".into());
            }
            match hs.process_bytes(&buf[..n]).map_err(|e| format!("{e:?}"))? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    stream
                        .write_all(&response_bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    stream
                        .write_all(&response_bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                    break remaining_bytes;
                }
            }
        };
        let mut reader = ChunkReader::new(ChunkLimits::default());
        reader.push(&leftover);
        Ok(RtmpClient {
            stream,
            reader,
            ser: ChunkSerializer::new(),
            app: app.to_string(),
            addr,
        })
    }

    async fn connect_app(&mut self) -> Result<(), String> {
        let client = self;
        let addr = client.addr;
        let app = client.app.clone();
        let p = client
            .ser
            .set_max_chunk_size(CHUNK_SIZE, RtmpTimestamp::new(0))
            .map_err(|e| format!("{e:?}"))?;
        client.send_raw(&p.bytes).await?;
        let mut obj = HashMap::new();
        obj.insert("app".to_string(), Amf0Value::Utf8String(app.clone()));
        obj.insert(
            "tcUrl".to_string(),
            Amf0Value::Utf8String(format!("rtmp://{addr}/{app}")),
        );
        obj.insert(
            "flashVer".to_string(),
            Amf0Value::Utf8String("FMLE/3.0".into()),
        );
        client
            .command("connect", 1.0, Amf0Value::Object(obj), vec![], 0)
            .await?;
        client.wait_for_result(1.0).await?;
        Ok(())
    }

    /// Reads until the relay closes the connection; false if it stays open past `timeout`.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    pub async fn send_raw(&mut self, b: &[u8]) -> Result<(), String> {
        self.stream.write_all(b).await.map_err(|e| e.to_string())
    }

    pub async fn command(
        &mut self,
        name: &str,
        txn: f64,
        obj: Amf0Value,
        args: Vec<Amf0Value>,
        msid: u32,
    ) -> Result<(), String> {
        let msg = RtmpMessage::Amf0Command {
            command_name: name.to_string(),
            transaction_id: txn,
            command_object: obj,
            additional_arguments: args,
        };
        let payload = msg
            .into_message_payload(RtmpTimestamp::new(0), msid)
            .map_err(|e| format!("{e:?}"))?;
        let p = self
            .ser
            .serialize(&payload, false, false)
            .map_err(|e| format!("{e:?}"))?;
        self.send_raw(&p.bytes).await
    }

    /// Next complete message, or an error on timeout/close.
    pub async fn next_message(&mut self, timeout: Duration) -> Result<RawMessage, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(m) = self.reader.next_message().map_err(|e| e.to_string())? {
                return Ok(m);
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| "timeout".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed".into());
            }
            self.reader.push(&buf[..n]);
        }
    }

    pub async fn wait_for_result(&mut self, txn: f64) -> Result<Vec<Amf0Value>, String> {
        loop {
            let m = self.next_message(Duration::from_secs(5)).await?;
            if m.type_id != 20 {
                continue;
            }
            if let Some((name, values)) = decode_command(&m.payload) {
                let t = matches!(values.first(), Some(Amf0Value::Number(n)) if *n == txn);
                if t && name == "_result" {
                    return Ok(values);
                }
                if t && name == "_error" {
                    return Err(format!("_error {values:?}"));
                }
            }
        }
    }

    /// Waits for an onStatus and returns its code.
    pub async fn wait_for_status(&mut self) -> Result<String, String> {
        loop {
            let m = self.next_message(Duration::from_secs(10)).await?;
            if m.type_id != 20 {
                continue;
            }
            if let Some((name, values)) = decode_command(&m.payload)
                && name == "onStatus"
            {
                return status_code(&values).ok_or_else(|| "onStatus without code".to_string());
            }
        }
    }

    pub async fn create_stream(&mut self) -> Result<u32, String> {
        self.command("createStream", 2.0, Amf0Value::Null, vec![], 0)
            .await?;
        let v = self.wait_for_result(2.0).await?;
        match v.get(2) {
            Some(Amf0Value::Number(n)) => Ok(*n as u32),
            _ => Err(format!("createStream result {v:?}")),
        }
    }

    /// Connects and publishes; returns the client and the publish status code.
    pub async fn publish(
        addr: SocketAddr,
        app: &str,
        stream: &str,
    ) -> Result<(RtmpClient, String), String> {
        let mut c = RtmpClient::connect(addr, app).await?;
        let sid = c.create_stream().await?;
        c.command(
            "publish",
            3.0,
            Amf0Value::Null,
            vec![
                Amf0Value::Utf8String(stream.to_string()),
                Amf0Value::Utf8String("live".into()),
            ],
            sid,
        )
        .await?;
        let code = c.wait_for_status().await?;
        Ok((c, code))
    }

    /// Publishes and sends what an encoder sends before its first frame: `@setDataFrame
    /// onMetaData` (640x360), the video and the audio sequence header. Fails unless the relay
    /// answers `NetStream.Publish.Start`.
    pub async fn publish_with_headers(
        addr: SocketAddr,
        app: &str,
        stream: &str,
    ) -> Result<RtmpClient, String> {
        let (mut c, code) = Self::publish(addr, app, stream).await?;
        if code != "NetStream.Publish.Start" {
            return Err(format!("publish answered {code}"));
        }
        c.send_media(18, 0, set_data_frame(640.0, 360.0)).await?;
        c.send_media(9, 0, video_sequence_header()).await?;
        c.send_media(8, 0, audio_sequence_header()).await?;
        Ok(c)
    }

    /// Connects and plays; returns the client and the first onStatus code.
    pub async fn play(
        addr: SocketAddr,
        app: &str,
        stream: &str,
    ) -> Result<(RtmpClient, String), String> {
        let c = RtmpClient::connect(addr, app).await?;
        c.start_play(stream).await
    }

    /// Creates `extra` streams first, then plays on the next one (a stream id other than 1).
    pub async fn play_after_extra_streams(
        addr: SocketAddr,
        app: &str,
        stream: &str,
        extra: usize,
    ) -> Result<(RtmpClient, String, u32), String> {
        let mut c = RtmpClient::connect(addr, app).await?;
        for _ in 0..extra {
            c.create_stream().await?;
        }
        let (c, code) = c.start_play(stream).await?;
        Ok((c, code, extra as u32 + 1))
    }

    /// Sends createStream + play on an already connected client.
    pub async fn start_play(self, stream: &str) -> Result<(RtmpClient, String), String> {
        let mut c = self;
        let sid = c.create_stream().await?;
        c.command(
            "play",
            3.0,
            Amf0Value::Null,
            vec![Amf0Value::Utf8String(stream.to_string())],
            sid,
        )
        .await?;
        let code = c.wait_for_status().await?;
        Ok((c, code))
    }

    /// Sends one audio (8), video (9) or data (18) message on message stream 1.
    pub async fn send_media(&mut self, type_id: u8, ts: u32, data: Bytes) -> Result<(), String> {
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            type_id,
            message_stream_id: 1,
            data,
        };
        let p = self
            .ser
            .serialize(&payload, false, false)
            .map_err(|e| format!("{e:?}"))?;
        self.send_raw(&p.bytes).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn app(&self) -> &str {
        &self.app
    }
}

/// FLV-style video payload: keyframe/inter flag, AVC NALU packet, then `body`.
pub fn video_payload(keyframe: bool, body: &[u8]) -> Bytes {
    let mut v = vec![if keyframe { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.extend_from_slice(body);
    Bytes::from(v)
}

pub fn video_sequence_header() -> Bytes {
    Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff])
}

/// AAC sequence header (AudioSpecificConfig: AAC-LC, 44.1 kHz, stereo).
pub fn audio_sequence_header() -> Bytes {
    Bytes::from_static(&[0xaf, 0, 0x12, 0x10])
}

pub fn audio_payload(body: &[u8]) -> Bytes {
    let mut v = vec![0xaf, 1];
    v.extend_from_slice(body);
    Bytes::from(v)
}

/// `@setDataFrame onMetaData {width, height}` as ffmpeg sends it.
pub fn set_data_frame(width: f64, height: f64) -> Bytes {
    let mut props = HashMap::new();
    props.insert("width".to_string(), Amf0Value::Number(width));
    props.insert("height".to_string(), Amf0Value::Number(height));
    let values = vec![
        Amf0Value::Utf8String("@setDataFrame".into()),
        Amf0Value::Utf8String("onMetaData".into()),
        Amf0Value::Object(props),
    ];
    Bytes::from(amf0::encode(values).expect("amf0"))
}
