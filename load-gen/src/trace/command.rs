//! `surge-load trace ...`: generate calibrated traces, check trace files.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::generate::{self, Shape};

#[derive(Debug, clap::Subcommand)]
pub enum TraceCommand {
    /// Check a trace file and print its broadcasts, regions and peak viewers.
    Check {
        /// The trace file (livetrace v1 CSV).
        file: PathBuf,
    },
    /// Generate a calibrated synthetic trace (livetrace v1 CSV).
    ///
    /// Viewers arrive as a Poisson process following the shape's audience curve and leave
    /// after exponential sessions with a 10-minute mean, simulated per region at 1 s. The
    /// header line cites the published figure the shape is calibrated to and what the
    /// generated trace actually shows.
    Gen {
        /// Which trace: facebook (+20k in 3 min), twitch (+100k in 30 min), election (24 h,
        /// 10x the daily peak, 2M), periscope (viral, 20k peak), steady (~300 viewers); the
        /// crowd families, whose curve the seed also draws: push (a step of tens of thousands
        /// within a minute, gone 15 min later), news (surge and fade every ~30 min), cliff
        /// (exponential growth, gone within minutes of the end), match (kick-off, half-time
        /// dip), diurnal (24 h with an evening show).
        #[arg(long, value_enum)]
        shape: Shape,
        /// Where to write the trace.
        #[arg(long)]
        out: PathBuf,
        /// Random seed; the same seed gives the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds between rows (default per shape: 5 s, 10 s for twitch, 15 s for election
        /// and diurnal).
        #[arg(long)]
        step: Option<u64>,
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
        TraceCommand::Gen {
            shape,
            out,
            seed,
            step,
        } => {
            if step == Some(0) {
                anyhow::bail!("--step must be at least 1 second");
            }
            let (trace, check) = generate::generate(shape, seed, step);
            let text = trace.to_csv();
            std::fs::write(&out, &text)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "wrote {} ({} rows, {} KB): {}",
                out.display(),
                trace.rows.len(),
                text.len() / 1024,
                check.summary
            );
            if !check.passed {
                anyhow::bail!(
                    "the generated {} trace misses its calibration target: {}",
                    shape.name(),
                    check.summary
                );
            }
            Ok(())
        }
    }
}
