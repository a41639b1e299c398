//! surge-load: the publisher, the trace-replaying viewers, the simulator and the trace tools.

pub mod burst;
pub mod flv;
pub mod hls;
pub mod publish;
pub mod replay;
pub mod rtmp_client;
pub mod simulate;
pub mod tls_client;
pub mod trace;

/// Logs to stderr; `RUST_LOG` overrides the default `info` level. Colours only on a
/// terminal, so logs redirected to files stay plain text.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
