//! Server side of the RTMP handshake (rml_rtmp does the digest work), bounded in time and size.

use std::time::Duration;

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// C0 + C1 + C2 is 3073 bytes; a client that sends this much without finishing is not RTMP.
const MAX_HANDSHAKE_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeFailure {
    #[error("handshake not completed within {0:?}")]
    Timeout(Duration),
    #[error("peer closed the connection during the handshake")]
    Closed,
    #[error("invalid handshake: {0}")]
    Invalid(String),
    #[error("io error during handshake: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the handshake; returns bytes the client sent after it (the first chunks).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Vec<u8>, HandshakeFailure> {
    tokio::time::timeout(timeout, run(stream))
        .await
        .map_err(|_| HandshakeFailure::Timeout(timeout))?
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<Vec<u8>, HandshakeFailure> {
    let mut hs = Handshake::new(PeerType::Server);
    let mut buf = vec![0u8; 4096];
    let mut seen = 0usize;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(HandshakeFailure::Closed);
        }
        seen += n;
        if seen > MAX_HANDSHAKE_BYTES {
            return Err(HandshakeFailure::Invalid("too many bytes".into()));
        }
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hs.process_bytes(&buf[..n])))
                .map_err(|_| HandshakeFailure::Invalid("handshake parser panicked".into()))?
                .map_err(|e| HandshakeFailure::Invalid(format!("{e:?}")))?;
        match result {
            HandshakeProcessResult::InProgress { response_bytes } => {
                stream.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                stream.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}
