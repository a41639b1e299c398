//! The calibrated shapes: a target audience curve per broadcast, its regions, and the
//! published figure it is calibrated to. The five shipped shapes are one curve each (the seed
//! only changes the arrival noise); the crowd families of [`super::crowds`] also draw their
//! curve's parameters from the seed.

/// Which trace to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    /// Facebook-Live flash crowd: +20k viewers within 3 minutes.
    Facebook,
    /// Twitch flash crowd: +100k viewers within 30 minutes.
    Twitch,
    /// Election day: 24 h, the evening peaks at 10× the normal daily peak (2M viewers).
    Election,
    /// Periscope viral broadcast: ~20k simultaneous viewers at the peak.
    Periscope,
    /// A small steady stream (~300 viewers), the control case.
    Steady,
    /// Push notification: a step of tens of thousands within about a minute, gone ~15 min
    /// later.
    Push,
    /// Breaking news: surge and fade, again every ~30 minutes.
    News,
    /// A viral broadcast that grows exponentially and ends: the audience leaves within minutes.
    Cliff,
    /// A scheduled match: a sharp start at kick-off and a dip at half-time.
    Match,
    /// A 24 h diurnal day with an evening spike (a scheduled show).
    Diurnal,
}

impl Shape {
    /// The shipped shapes, each with a committed trace (`load-gen/traces/NAME.csv`, seed 1).
    pub const ALL: [Shape; 5] = [
        Shape::Facebook,
        Shape::Twitch,
        Shape::Election,
        Shape::Periscope,
        Shape::Steady,
    ];

    /// The crowd families the planner was not tuned on: each seed draws another curve.
    pub const CROWDS: [Shape; 5] = [
        Shape::Push,
        Shape::News,
        Shape::Cliff,
        Shape::Match,
        Shape::Diurnal,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Facebook => "facebook",
            Shape::Twitch => "twitch",
            Shape::Election => "election",
            Shape::Periscope => "periscope",
            Shape::Steady => "steady",
            Shape::Push => "push",
            Shape::News => "news",
            Shape::Cliff => "cliff",
            Shape::Match => "match",
            Shape::Diurnal => "diurnal",
        }
    }
}

/// What the generated trace must show, checked after generation.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// At least `gain` viewers gained within `window_s` seconds.
    GainWithin { window_s: u64, gain: f64 },
    /// Peak at `ratio` × `reference` viewers (the normal daily peak).
    PeakRatio { reference: f64, ratio: f64 },
    /// Peak near `peak` viewers.
    Peak { peak: f64 },
    /// At least `fraction` of the peak audience lost within `window_s` seconds.
    LossWithin { window_s: u64, fraction: f64 },
    /// At least `count` separate gains of `gain` viewers within `window_s` seconds each (a
    /// gain counts again only after the audience has fallen by half a gain from its high).
    Repeats {
        window_s: u64,
        gain: f64,
        count: usize,
    },
}

/// A region's share of the audience and how much later the crowd reaches it.
#[derive(Debug, Clone, Copy)]
pub struct RegionSplit {
    pub name: &'static str,
    pub share: f64,
    pub delay_s: f64,
}

pub struct ShapeSpec {
    pub shape: Shape,
    pub broadcast_id: &'static str,
    pub duration_s: u64,
    /// Default seconds between rows.
    pub step_s: u64,
    pub regions: &'static [RegionSplit],
    /// The published figure it is calibrated to (goes into the header line).
    pub calibration: &'static str,
    /// This seed's draw of the curve's parameters, for the header (empty: one curve).
    pub params: String,
    /// What the generated trace must show; every check must pass.
    pub checks: Vec<Check>,
    /// Viewers leave as fast as the curve falls (on top of their sessions), so a cliff is a
    /// cliff; off for the shipped shapes, whose fades are session-paced.
    pub exits_follow_curve: bool,
    /// Total target audience at time `t` (seconds from the start).
    pub(super) target: Box<dyn Fn(f64) -> f64 + Send + Sync>,
}

impl ShapeSpec {
    pub fn target(&self, t_s: f64) -> f64 {
        (self.target)(t_s.max(0.0)).max(0.0)
    }
}

pub(super) fn logistic(t: f64, mid: f64, tau: f64) -> f64 {
    1.0 / (1.0 + (-(t - mid) / tau).exp())
}

/// 1 until `start`, then exponential decay with time constant `tau`.
pub(super) fn fade(t: f64, start: f64, tau: f64) -> f64 {
    if t < start {
        1.0
    } else {
        (-(t - start) / tau).exp()
    }
}

pub(super) const THREE_REGIONS: &[RegionSplit] = &[
    RegionSplit {
        name: "us-east",
        share: 0.5,
        delay_s: 0.0,
    },
    RegionSplit {
        name: "eu-west",
        share: 0.3,
        delay_s: 15.0,
    },
    RegionSplit {
        name: "ap-south",
        share: 0.2,
        delay_s: 30.0,
    },
];

/// Facebook: 400 viewers, then a logistic crowd of 26k (10–90% in ~3 min, so ≈21k within
/// 3 minutes), a 25-minute plateau, and a slow fade.
fn facebook(t: f64) -> f64 {
    400.0 + 26_000.0 * logistic(t, 720.0, 40.0) * fade(t, 2_100.0, 900.0)
}

/// Twitch: 3k viewers, then a logistic crowd of 130k (≈105k within 30 minutes), a plateau
/// and a fade.
fn twitch(t: f64) -> f64 {
    3_000.0 + 130_000.0 * logistic(t, 2_400.0, 400.0) * fade(t, 5_400.0, 1_200.0)
}

/// Periscope: a viral broadcast from ~30 viewers to ~20k within minutes, then a fade.
fn periscope(t: f64) -> f64 {
    30.0 + 20_000.0 * logistic(t, 900.0, 100.0) * fade(t, 1_800.0, 700.0)
}

fn steady(_t: f64) -> f64 {
    300.0
}

pub(super) const HOUR: f64 = 3_600.0;
/// Election trace starts at 06:00; the normal daily peak is 200k at 21:00.
pub(super) const ELECTION_START_HOUR: f64 = 6.0;
pub const NORMAL_DAILY_PEAK: f64 = 200_000.0;
pub const ELECTION_PEAK: f64 = 2_000_000.0;

pub(super) fn diurnal(t: f64) -> f64 {
    let hour = ELECTION_START_HOUR + t / HOUR;
    let phase = (1.0 + (2.0 * std::f64::consts::PI * (hour - 21.0) / 24.0).cos()) / 2.0;
    NORMAL_DAILY_PEAK * (0.1 + 0.9 * phase.powi(4))
}

/// The election-night audience with unit scale: a ramp into the evening and three bursts as
/// results are called (19:30, 21:00, 22:45), fading after 01:00.
fn election_unit(t: f64) -> f64 {
    let at = |hour: f64| (hour - ELECTION_START_HOUR) * HOUR;
    let ramp = logistic(t, at(20.0), 1_200.0) * fade(t, at(25.0), HOUR);
    let burst = |hour: f64, size: f64| {
        size * logistic(t, at(hour), 60.0) * fade(t, at(hour) + 300.0, 1_200.0)
    };
    ramp + burst(19.5, 0.15) + burst(21.0, 0.2) + burst(22.75, 0.35)
}

/// Scale of the election component so that the total peaks at [`ELECTION_PEAK`].
fn election_scale() -> f64 {
    static SCALE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *SCALE.get_or_init(|| {
        let mut scale = ELECTION_PEAK;
        for _ in 0..4 {
            let (t_peak, _) = (0..=8_640)
                .map(|i| i as f64 * 10.0)
                .map(|t| (t, diurnal(t) + scale * election_unit(t)))
                .fold((0.0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
            scale = (ELECTION_PEAK - diurnal(t_peak)) / election_unit(t_peak);
        }
        scale
    })
}

fn election(t: f64) -> f64 {
    diurnal(t) + election_scale() * election_unit(t)
}

/// The shape's spec for `seed` (the seed matters only to the crowd families' curves).
pub fn spec(shape: Shape, seed: u64) -> ShapeSpec {
    let fixed = |spec: FixedSpec| ShapeSpec {
        shape: spec.shape,
        broadcast_id: spec.broadcast_id,
        duration_s: spec.duration_s,
        step_s: spec.step_s,
        regions: spec.regions,
        calibration: spec.calibration,
        params: String::new(),
        checks: vec![spec.check],
        exits_follow_curve: false,
        target: Box::new(spec.target),
    };
    match shape {
        Shape::Push => super::crowds::push(seed),
        Shape::News => super::crowds::news(seed),
        Shape::Cliff => super::crowds::cliff(seed),
        Shape::Match => super::crowds::football_match(seed),
        Shape::Diurnal => super::crowds::diurnal_day(seed),
        _ => fixed(fixed_spec(shape)),
    }
}

/// A shipped shape: one curve.
struct FixedSpec {
    shape: Shape,
    broadcast_id: &'static str,
    duration_s: u64,
    step_s: u64,
    regions: &'static [RegionSplit],
    calibration: &'static str,
    check: Check,
    target: fn(f64) -> f64,
}

fn fixed_spec(shape: Shape) -> FixedSpec {
    match shape {
        Shape::Facebook => FixedSpec {
            shape,
            broadcast_id: "facebook-flash",
            duration_s: 3_600,
            step_s: 5,
            regions: THREE_REGIONS,
            calibration: "Facebook Live flash crowd: +20k viewers within 3 minutes \
                (LiveJack, ACM MM 2017: flash channels peak above 20k with >=10k growth in \
                20 min; 39.6% of them gain 20k within 3 minutes)",
            check: Check::GainWithin {
                window_s: 180,
                gain: 20_000.0,
            },
            target: facebook,
        },
        Shape::Twitch => FixedSpec {
            shape,
            broadcast_id: "twitch-flash",
            duration_s: 7_200,
            step_s: 10,
            regions: &[
                RegionSplit {
                    name: "us-east",
                    share: 0.45,
                    delay_s: 0.0,
                },
                RegionSplit {
                    name: "eu-west",
                    share: 0.35,
                    delay_s: 60.0,
                },
                RegionSplit {
                    name: "ap-south",
                    share: 0.2,
                    delay_s: 120.0,
                },
            ],
            calibration: "Twitch flash crowd: +100k viewers within 30 minutes (LiveJack, \
                ACM MM 2017: over 40% of Twitch flash channels gain 100k within 30 min)",
            check: Check::GainWithin {
                window_s: 1_800,
                gain: 100_000.0,
            },
            target: twitch,
        },
        Shape::Election => FixedSpec {
            shape,
            broadcast_id: "election-day",
            duration_s: 86_400,
            step_s: 15,
            regions: &[
                RegionSplit {
                    name: "us-east",
                    share: 0.45,
                    delay_s: 0.0,
                },
                RegionSplit {
                    name: "us-west",
                    share: 0.3,
                    delay_s: 0.0,
                },
                RegionSplit {
                    name: "eu-west",
                    share: 0.25,
                    delay_s: 0.0,
                },
            ],
            calibration: "Election day: 10x the normal daily peak (LiveJack, ACM MM 2017); \
                24 h from 06:00, normal diurnal peak 200k at 21:00, election night peak 2M \
                (Edgio NBA Finals scale: 2.04M concurrent)",
            check: Check::PeakRatio {
                reference: NORMAL_DAILY_PEAK,
                ratio: 10.0,
            },
            target: election,
        },
        Shape::Periscope => FixedSpec {
            shape,
            broadcast_id: "periscope-viral",
            duration_s: 2_700,
            step_s: 5,
            regions: &[
                RegionSplit {
                    name: "us-west",
                    share: 0.4,
                    delay_s: 0.0,
                },
                RegionSplit {
                    name: "eu-west",
                    share: 0.35,
                    delay_s: 45.0,
                },
                RegionSplit {
                    name: "ap-south",
                    share: 0.25,
                    delay_s: 90.0,
                },
            ],
            calibration: "Periscope viral broadcast: ~20k simultaneous viewers at the peak \
                (Periscope measurement, IMC 2016: only the first ~100 viewers get RTMP, the \
                rest HLS)",
            check: Check::Peak { peak: 20_000.0 },
            target: periscope,
        },
        Shape::Steady => FixedSpec {
            shape,
            broadcast_id: "steady-small",
            duration_s: 1_800,
            step_s: 5,
            regions: &[
                RegionSplit {
                    name: "eu-west",
                    share: 2.0 / 3.0,
                    delay_s: 0.0,
                },
                RegionSplit {
                    name: "us-east",
                    share: 1.0 / 3.0,
                    delay_s: 0.0,
                },
            ],
            calibration: "small steady stream: ~300 concurrent viewers, no crowd (control \
                case)",
            check: Check::Peak { peak: 300.0 },
            target: steady,
        },
        Shape::Push | Shape::News | Shape::Cliff | Shape::Match | Shape::Diurnal => {
            unreachable!("`spec` builds the crowd families")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_peaks_at_ten_times_the_daily_peak() {
        let peak = (0..=8_640)
            .map(|i| election(i as f64 * 10.0))
            .fold(0.0, f64::max);
        assert!((peak / ELECTION_PEAK - 1.0).abs() < 0.01, "{peak}");
        let normal = (0..=8_640)
            .map(|i| diurnal(i as f64 * 10.0))
            .fold(0.0, f64::max);
        assert!((normal / NORMAL_DAILY_PEAK - 1.0).abs() < 0.01, "{normal}");
    }
}
