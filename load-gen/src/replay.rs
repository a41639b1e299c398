//! `surge-load replay` (under construction).

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {}

pub fn run(_args: ReplayArgs) -> Result<()> {
    anyhow::bail!("surge-load replay is not built yet")
}
