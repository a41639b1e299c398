//! `surge-load simulate` (under construction).

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}

pub fn run(_args: SimulateArgs) -> Result<()> {
    anyhow::bail!("surge-load simulate is not built yet")
}
