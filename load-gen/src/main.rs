use anyhow::Result;
use clap::{Parser, Subcommand};
use surge_load::{burst, publish, replay, simulate, trace};

/// Surge load generator: publish a stream, replay flash-crowd traces with real
/// viewers, simulate scaling policies at internet scale, and make traces.
#[derive(Parser)]
#[command(name = "surge-load", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish a live stream over RTMP with an embedded publish clock in every video frame.
    Publish(publish::PublishArgs),
    /// Open and close real viewer connections following a trace, and report what viewers got.
    Replay(replay::ReplayArgs),
    /// Play a trace against scaling policies (surge, hpa, livejack, oracle) at 1 s steps.
    Simulate(simulate::SimulateArgs),
    /// A burst of HTTP(S)-FLV viewers or RTMP(S) publishers joining at once, and how long
    /// each step took (TCP, TLS handshake, first video or publish accepted).
    Burst(burst::BurstArgs),
    /// Generate or check workload traces.
    #[command(subcommand)]
    Trace(trace::TraceCommand),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Publish(args) => publish::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Burst(args) => burst::run(args),
        Command::Trace(cmd) => trace::run(cmd),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::{CommandFactory, Parser};
    use surge_load::publish::RunFor;

    use super::{Cli, Command};

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("surge-load").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    fn publish(extra: &[&str]) -> surge_load::publish::PublishArgs {
        let mut args = vec!["publish", "--url", "rtmp://127.0.0.1:1935/live/cam"];
        args.extend_from_slice(extra);
        match parse(&args) {
            Command::Publish(a) => a,
            _ => panic!("not publish"),
        }
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn publish_runs_60_seconds_by_default_and_forever_on_request() {
        assert_eq!(
            publish(&[]).duration,
            RunFor::Limit(Duration::from_secs(60))
        );
        assert_eq!(
            publish(&["--duration", "forever"]).duration,
            RunFor::Forever
        );
        assert_eq!(
            publish(&["--duration", "90s"]).duration,
            RunFor::Limit(Duration::from_secs(90))
        );
        let zero = Cli::try_parse_from([
            "surge-load",
            "publish",
            "--url",
            "rtmp://127.0.0.1:1935/live/cam",
            "--duration",
            "0",
        ]);
        assert!(
            zero.is_err(),
            "--duration 0 is refused, not read as forever"
        );
        let huge = Cli::try_parse_from([
            "surge-load",
            "publish",
            "--url",
            "rtmp://127.0.0.1:1935/live/cam",
            "--duration",
            "99999999999999999999999h",
        ])
        .map(|_| ())
        .expect_err("an overflowing duration is an error, not a panic");
        assert!(huge.to_string().contains("--duration"), "{huge}");
    }

    /// The required arguments of `replay`.
    const REPLAY_ARGS: [&str; 7] = [
        "replay",
        "--trace",
        "t.csv",
        "--target",
        "*=127.0.0.1:1935",
        "--stream",
        "live/cam",
    ];

    #[test]
    fn replay_runs_at_10x_by_default() {
        let base = REPLAY_ARGS;
        match parse(&base) {
            Command::Replay(a) => assert_eq!(a.speed, 10.0),
            _ => panic!("not replay"),
        }
        let real_time: Vec<&str> = base.iter().copied().chain(["--speed", "1"]).collect();
        match parse(&real_time) {
            Command::Replay(a) => assert_eq!(a.speed, 1.0),
            _ => panic!("not replay"),
        }
    }

    #[test]
    fn player_buffer_and_prebuffer_seconds_are_one_flag() {
        let base = REPLAY_ARGS;
        let replay = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            match parse(&args) {
                Command::Replay(a) => (a.prebuffer_seconds, a.buffer_sweep),
                _ => panic!("not replay"),
            }
        };
        let sweep = vec![0.5, 1.0, 2.0, 6.0, 9.0];
        assert_eq!(replay(&[]), (2.0, sweep.clone()));
        assert_eq!(replay(&["--player-buffer", "1.5"]), (1.5, sweep.clone()));
        assert_eq!(replay(&["--prebuffer-seconds", "1.5"]), (1.5, sweep));
        assert_eq!(
            replay(&["--buffer-sweep", "0.25,4"]),
            (2.0, vec![0.25, 4.0])
        );
        let help = Cli::command()
            .find_subcommand_mut("replay")
            .expect("replay")
            .render_long_help()
            .to_string();
        assert!(help.contains("[alias: --prebuffer-seconds]"), "{help}");
    }

    #[test]
    fn help_names_the_defaults_and_the_unbounded_spelling() {
        let mut cli = Cli::command();
        let publish = cli
            .find_subcommand_mut("publish")
            .expect("publish")
            .render_long_help()
            .to_string();
        assert!(publish.contains("[default: 60s]"), "{publish}");
        assert!(publish.contains("`forever`"), "{publish}");
        let replay = cli
            .find_subcommand_mut("replay")
            .expect("replay")
            .render_long_help()
            .to_string();
        assert!(replay.contains("[default: 10]"), "{replay}");
        assert!(replay.contains("--speed 1"), "{replay}");
    }
}
