//! How fast a viewer reads once it has joined: as fast as the relay sends (every normal
//! viewer), at a trickle (`--slow-rate 50kbit`), or not at all (`--slow-rate 0`). A
//! trickle is a token bucket over the viewer's reads, so the relay sees a socket that
//! drains slowly and fills up, as behind a collapsing mobile link.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

// tokio's clock, so the pacing tests can run on paused time.
use tokio::time::Instant;

/// `--slow-rate`: what a slow viewer reads per second after joining.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlowRate {
    /// Stops reading after its first keyframe.
    Stop,
    /// Reads at most this many bits per second.
    BitsPerSecond(f64),
}

impl fmt::Display for SlowRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlowRate::Stop => write!(f, "0 (stop reading)"),
            SlowRate::BitsPerSecond(b) => write!(f, "{} kbit/s", b / 1000.0),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RateError {
    #[error(
        "`{0}` is not a read rate: 0 (stop reading) or a number with bit, kbit or mbit (e.g. 50kbit)"
    )]
    Syntax(String),
    #[error("`{0}` is out of range: between 8bit (one byte a second) and 10000mbit, or 0")]
    Range(String),
}

/// Parses `0`, `Nbit`, `Nkbit`, `Nmbit` (N decimal; k and m are 1,000 and 1,000,000, as tc's).
pub fn parse_slow_rate(s: &str) -> Result<SlowRate, RateError> {
    let t = s.trim().to_ascii_lowercase();
    if t == "0" {
        return Ok(SlowRate::Stop);
    }
    let (number, scale) = [("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .into_iter()
        .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, scale)))
        .ok_or_else(|| RateError::Syntax(s.to_owned()))?;
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| RateError::Syntax(s.to_owned()))?;
    let bits = value * scale;
    if !bits.is_finite() || !(8.0..=1e10).contains(&bits) {
        return Err(RateError::Range(s.to_owned()));
    }
    Ok(SlowRate::BitsPerSecond(bits))
}

/// Set once, when the run ends; stopped viewers wait for it without polling (a timer per
/// stopped viewer would cost the load generator's thread, and so the normal viewers' lag).
#[derive(Debug, Default)]
pub struct Ending {
    set: Cell<bool>,
    notify: tokio::sync::Notify,
}

impl Ending {
    pub fn set(&self) {
        self.set.set(true);
        self.notify.notify_waiters();
    }

    pub fn get(&self) -> bool {
        self.set.get()
    }

    pub async fn wait(&self) {
        while !self.set.get() {
            self.notify.notified().await;
        }
    }
}

/// A viewer's reading pace.
#[derive(Debug, Clone)]
pub enum Pace {
    /// Reads everything at once (a normal viewer).
    Full,
    /// Joins, then reads as `rate` says. `ending` is set when the run ends: a stopped viewer
    /// then reads again, briefly, to see whether the relay still serves it.
    Slow { rate: SlowRate, ending: Rc<Ending> },
}

impl Pace {
    /// How a viewer's connection is shaped: as a slow WAN path for slow viewers (see
    /// [`super::connect`]), not at all for the others.
    pub fn wan_path(&self) -> Option<super::connect::WanPath> {
        match self {
            Pace::Full => None,
            Pace::Slow { .. } => Some(super::connect::SLOW_PATH),
        }
    }
}

/// What the next read may be.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Read at most this many bytes.
    Read(usize),
    /// A stopped viewer at the end of the run: read whatever comes within this long (what is
    /// left of [`FINAL_CHECK`]).
    FinalCheck(Duration),
}

impl Next {
    /// Most bytes the read may take.
    pub fn limit(&self) -> usize {
        match self {
            Next::Read(n) => *n,
            Next::FinalCheck(_) => MAX_READ,
        }
    }
}

/// Most bytes a read takes (the shared read buffer's size).
pub const MAX_READ: usize = 64 * 1024;
/// How long a stopped viewer reads at the end of the run before it counts as still served.
pub const FINAL_CHECK: Duration = Duration::from_secs(2);

/// One session's pacing state.
pub struct Pacer {
    pace: Pace,
    tokens: f64,
    refilled: Option<Instant>,
    /// A stopped viewer's final check ends then.
    check_until: Option<Instant>,
}

impl Pacer {
    pub fn new(pace: Pace) -> Self {
        Self {
            pace,
            tokens: 0.0,
            refilled: None,
            check_until: None,
        }
    }

    /// Waits until the viewer may read again; `playing`: it has joined (slow viewers read
    /// at full speed until then).
    pub async fn before_read(&mut self, playing: bool) -> Next {
        let (rate, ending) = match &self.pace {
            Pace::Slow { rate, ending } if playing => (*rate, ending.clone()),
            _ => return Next::Read(MAX_READ),
        };
        match rate {
            SlowRate::Stop => {
                let deadline = match self.check_until {
                    Some(d) => d,
                    None => {
                        ending.wait().await;
                        *self.check_until.insert(Instant::now() + FINAL_CHECK)
                    }
                };
                Next::FinalCheck(deadline.saturating_duration_since(Instant::now()))
            }
            SlowRate::BitsPerSecond(bits) => {
                let bytes_per_s = bits / 8.0;
                // Reads of about a tenth of a second's worth: a steady trickle, not bursts.
                let chunk = (bytes_per_s / 10.0).clamp(1.0, MAX_READ as f64);
                loop {
                    let now = Instant::now();
                    let since = self.refilled.map_or(Duration::ZERO, |t| now - t);
                    self.refilled = Some(now);
                    self.tokens =
                        (self.tokens + since.as_secs_f64() * bytes_per_s).min(2.0 * chunk);
                    if self.tokens >= chunk {
                        return Next::Read(self.tokens as usize);
                    }
                    let wait = (chunk - self.tokens) / bytes_per_s;
                    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                }
            }
        }
    }

    /// The last read took `n` bytes.
    pub fn consumed(&mut self, n: usize) {
        if matches!(
            self.pace,
            Pace::Slow {
                rate: SlowRate::BitsPerSecond(_),
                ..
            }
        ) {
            self.tokens = (self.tokens - n as f64).max(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_bad_ones_say_what_is_wanted() {
        assert_eq!(parse_slow_rate("0"), Ok(SlowRate::Stop));
        assert_eq!(
            parse_slow_rate("50kbit"),
            Ok(SlowRate::BitsPerSecond(50_000.0))
        );
        assert_eq!(
            parse_slow_rate("1.5Mbit"),
            Ok(SlowRate::BitsPerSecond(1_500_000.0))
        );
        assert_eq!(
            parse_slow_rate("800bit"),
            Ok(SlowRate::BitsPerSecond(800.0))
        );
        for bad in ["", "50", "50kbps", "fast", "kbit", "-5kbit", "NaNkbit"] {
            let err = parse_slow_rate(bad).expect_err(bad).to_string();
            assert!(
                err.contains("e.g. 50kbit") || err.contains("out of range"),
                "{err}"
            );
            assert!(!err.contains('\n'), "one line: {err}");
        }
        assert!(matches!(parse_slow_rate("4bit"), Err(RateError::Range(_))));
        assert!(matches!(parse_slow_rate("0kbit"), Err(RateError::Range(_))));
        assert!(matches!(
            parse_slow_rate("20000mbit"),
            Err(RateError::Range(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_reads_its_rate_and_a_normal_viewer_is_never_held() {
        let ending = Rc::new(Ending::default());
        let mut full = Pacer::new(Pace::Full);
        assert_eq!(full.before_read(true).await, Next::Read(MAX_READ));
        let mut slow = Pacer::new(Pace::Slow {
            rate: SlowRate::BitsPerSecond(80_000.0), // 10,000 bytes a second
            ending: ending.clone(),
        });
        // Not joined yet: full speed.
        assert_eq!(slow.before_read(false).await, Next::Read(MAX_READ));
        let started = tokio::time::Instant::now();
        let mut read = 0;
        while started.elapsed() < Duration::from_secs(10) {
            let Next::Read(n) = slow.before_read(true).await else {
                panic!("a trickle never checks")
            };
            slow.consumed(n);
            read += n;
        }
        // 10 s at 10,000 B/s, give or take one read.
        assert!((99_000..=102_000).contains(&read), "{read}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_viewer_reads_nothing_until_the_run_ends() {
        let ending = Rc::new(Ending::default());
        let mut stop = Pacer::new(Pace::Slow {
            rate: SlowRate::Stop,
            ending: ending.clone(),
        });
        let waiting = stop.before_read(true);
        tokio::pin!(waiting);
        assert!(
            tokio::time::timeout(Duration::from_secs(60), &mut waiting)
                .await
                .is_err(),
            "reads nothing while the run goes on"
        );
        ending.set();
        assert_eq!(waiting.await, Next::FinalCheck(FINAL_CHECK));
    }
}
