//! The proxy's control commands, one line each, parsed without IO:
//!
//! ```text
//! ping
//! show
//! set LINK [delay=D] [jitter=D] [rate=R|none]
//! stall LINK DURATION
//! partition LINK on|off
//! reset LINK
//! ```

use std::time::Duration;

use crate::topology::parse_duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ping,
    Show,
    Set { link: String, settings: Vec<String> },
    Stall { link: String, duration: Duration },
    Partition { link: String, on: bool },
    Reset { link: String },
}

pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let link = || {
        words
            .get(1)
            .map(|s| s.to_string())
            .ok_or_else(|| format!("`{}` needs a LINK name", words[0]))
    };
    match words.first().copied() {
        None => Err("empty command".into()),
        Some("ping") if words.len() == 1 => Ok(Command::Ping),
        Some("show") if words.len() == 1 => Ok(Command::Show),
        Some("set") => {
            let link = link()?;
            if words.len() < 3 {
                return Err("set needs at least one of delay=, jitter=, rate=".into());
            }
            Ok(Command::Set {
                link,
                settings: words[2..].iter().map(|s| s.to_string()).collect(),
            })
        }
        Some("stall") if words.len() == 3 => {
            let duration = parse_duration(words[2]).map_err(|e| format!("stall: {e}"))?;
            if duration.is_zero() {
                return Err("stall: the duration must be greater than zero".into());
            }
            Ok(Command::Stall {
                link: link()?,
                duration,
            })
        }
        Some("partition") if words.len() == 3 => {
            let on = match words[2] {
                "on" => true,
                "off" => false,
                other => return Err(format!("partition: `{other}` is not on or off")),
            };
            Ok(Command::Partition { link: link()?, on })
        }
        Some("reset") if words.len() == 2 => Ok(Command::Reset { link: link()? }),
        Some(other) => Err(format!(
            "cannot read `{other}` command (ping, show, set LINK k=v.., stall LINK D, partition LINK on|off, reset LINK)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse("ping"), Ok(Command::Ping));
        assert_eq!(
            parse("set a delay=80ms rate=none"),
            Ok(Command::Set {
                link: "a".into(),
                settings: vec!["delay=80ms".into(), "rate=none".into()]
            })
        );
        assert_eq!(
            parse("stall a 2s"),
            Ok(Command::Stall {
                link: "a".into(),
                duration: Duration::from_secs(2)
            })
        );
        assert_eq!(
            parse("partition a off"),
            Ok(Command::Partition {
                link: "a".into(),
                on: false
            })
        );
        assert_eq!(parse("reset a"), Ok(Command::Reset { link: "a".into() }));
        for bad in [
            "",
            "set a",
            "stall a",
            "stall a 0s",
            "stall a 2",
            "partition a maybe",
            "reset",
            "drop a",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
