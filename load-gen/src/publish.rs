//! `surge-load publish` (under construction).

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct PublishArgs {}

pub fn run(_args: PublishArgs) -> Result<()> {
    anyhow::bail!("surge-load publish is not built yet")
}
