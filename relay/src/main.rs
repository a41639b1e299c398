//! `surge-relay`: parse flags, set up logging, run until SIGTERM, drain.

use clap::Parser;
use surge_relay::config::{Config, LogFormat};
use surge_relay::server::{Relay, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match cfg.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init(),
    }
    let relay = Relay::start(&cfg).await?;
    shutdown_signal().await;
    relay.shutdown().await;
    Ok(())
}
