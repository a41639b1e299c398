//! Measures links: `serve` answers probes; `probe` measures the connect time, round trips
//! of one byte, and a download's throughput, and prints them as JSON.
//!
//! Protocol: the client's first byte picks the mode. `e`: every later byte is echoed.
//! `d` + a big-endian u64 N: the server sends N bytes and closes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub async fn serve(listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("--listen {listen}"))?;
    eprintln!("serving probes on {listen}");
    loop {
        let (mut s, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let mut mode = [0u8; 1];
            if s.read_exact(&mut mode).await.is_err() {
                return;
            }
            match mode[0] {
                b'e' => {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
                b'd' => {
                    let mut n = [0u8; 8];
                    if s.read_exact(&mut n).await.is_err() {
                        return;
                    }
                    let mut left = u64::from_be_bytes(n);
                    let chunk = vec![0x5a; 64 * 1024];
                    while left > 0 {
                        let take = left.min(chunk.len() as u64) as usize;
                        if s.write_all(&chunk[..take]).await.is_err() {
                            return;
                        }
                        left -= take as u64;
                    }
                    let _ = s.shutdown().await;
                }
                _ => {}
            }
        });
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Connect, then `count` one-byte round trips `interval` apart; prints JSON.
pub async fn rtt(
    target: SocketAddr,
    count: usize,
    interval: Duration,
) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(target)
        .await
        .with_context(|| format!("connect {target}"))?;
    let connect = t0.elapsed();
    s.set_nodelay(true)?;
    s.write_all(b"e").await?;
    let mut samples = Vec::with_capacity(count);
    let mut byte = [0u8; 1];
    let mut first = None;
    for i in 0..=count {
        let t = Instant::now();
        s.write_all(b"x").await?;
        s.read_exact(&mut byte).await.context("echo")?;
        if i == 0 {
            // Includes the emulated handshake's round trip: reported on its own.
            first = Some(t0.elapsed());
        } else {
            samples.push(t.elapsed());
            tokio::time::sleep(interval).await;
        }
    }
    samples.sort();
    let pick = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    if samples.is_empty() {
        bail!("--count must be at least 1");
    }
    Ok(serde_json::json!({
        "target": target.to_string(),
        "connect_ms": ms(connect),
        "first_reply_ms": first.map(ms),
        "rtt_ms": {
            "min": pick(0.0), "p50": pick(0.5), "max": pick(1.0),
            "mean": ms(samples.iter().sum::<Duration>() / samples.len() as u32),
        },
        "samples": samples.len(),
    }))
}

/// Download `bytes` and time it: from the request to the last byte, and from the first byte
/// to the last (the rate, without the round trip).
pub async fn download(target: SocketAddr, bytes: u64) -> Result<serde_json::Value> {
    let mut s = TcpStream::connect(target)
        .await
        .with_context(|| format!("connect {target}"))?;
    s.set_nodelay(true)?;
    let mut request = vec![b'd'];
    request.extend_from_slice(&bytes.to_be_bytes());
    let t0 = Instant::now();
    s.write_all(&request).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    let mut first = None;
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if first.is_none() {
            first = Some(Instant::now());
        }
        got += n as u64;
    }
    let total = t0.elapsed();
    if got != bytes {
        bail!("got {got} of {bytes} bytes");
    }
    let first = first.context("no data")?;
    let transfer = first.elapsed();
    Ok(serde_json::json!({
        "target": target.to_string(),
        "bytes": got,
        "seconds": total.as_secs_f64(),
        "first_byte_ms": ms(first - t0),
        "mbit_per_s": got as f64 * 8.0 / transfer.as_secs_f64() / 1e6,
    }))
}
