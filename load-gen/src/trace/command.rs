//! `surge-load trace ...` (generation lands with the planner issue).

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(Debug, clap::Subcommand)]
pub enum TraceCommand {
    /// Check a trace file and print its broadcasts, regions and peak viewers.
    Check {
        /// The trace file (livetrace v1 CSV).
        file: PathBuf,
    },
}

pub fn run(cmd: TraceCommand) -> Result<()> {
    match cmd {
        TraceCommand::Check { file } => {
            let trace = super::read_trace(&file)
                .with_context(|| format!("invalid trace {}", file.display()))?;
            println!("#{}", trace.header);
            for id in trace.broadcast_ids() {
                let total = trace.series(&id, super::TOTAL_REGION);
                let peak = total.iter().map(|s| s.viewers).max().unwrap_or(0);
                let end = total.last().map(|s| s.t_s).unwrap_or(0);
                println!(
                    "{id}: regions {:?}, {} s, peak {peak} viewers",
                    trace.regions(&id),
                    end
                );
            }
            Ok(())
        }
    }
}
