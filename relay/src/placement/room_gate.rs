//! Readiness that follows room, with hysteresis: a relay reports itself full (readiness 503)
//! once its load reaches the high mark and ready again only below the low mark, so a relay near
//! its limit does not flap in and out of its Service with every viewer that comes and goes.
//! Pure.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RoomGateError {
    #[error("--ready-max-load must be in (0, 1], got {0}")]
    HighMark(f64),
    #[error(
        "--ready-resume-load must be in [0, --ready-max-load), got {low} with a high mark of {high}"
    )]
    LowMark { low: f64, high: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoomGate {
    high: f64,
    low: f64,
    full: bool,
}

impl RoomGate {
    pub fn new(high: f64, low: f64) -> Result<Self, RoomGateError> {
        if !(high > 0.0 && high <= 1.0) {
            return Err(RoomGateError::HighMark(high));
        }
        if !(low >= 0.0 && low < high) {
            return Err(RoomGateError::LowMark { low, high });
        }
        Ok(RoomGate {
            high,
            low,
            full: false,
        })
    }

    /// Takes the current load; returns whether the relay counts as full.
    pub fn observe(&mut self, load: f64) -> bool {
        if self.full {
            // NaN stays full: an unknown load is no room.
            self.full = load >= self.low || load.is_nan();
        } else {
            self.full = load >= self.high || load.is_nan();
        }
        self.full
    }

    pub fn is_full(&self) -> bool {
        self.full
    }

    pub fn high_mark(&self) -> f64 {
        self.high
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_at_the_high_mark_and_ready_again_only_below_the_low_mark() {
        let mut g = RoomGate::new(0.9, 0.8).unwrap();
        assert!(!g.observe(0.5));
        assert!(!g.observe(0.89));
        assert!(g.observe(0.9));
        // Between the marks: stays as it was.
        assert!(g.observe(0.85));
        assert!(g.observe(0.8));
        assert!(!g.observe(0.79));
        assert!(!g.observe(0.85));
        assert!(g.observe(1.2));
    }

    #[test]
    fn marks_out_of_range_are_errors() {
        assert_eq!(RoomGate::new(0.0, 0.0), Err(RoomGateError::HighMark(0.0)));
        assert_eq!(RoomGate::new(1.5, 0.5), Err(RoomGateError::HighMark(1.5)));
        assert!(matches!(
            RoomGate::new(0.9, 0.9),
            Err(RoomGateError::LowMark { .. })
        ));
        assert!(matches!(
            RoomGate::new(0.9, -0.1),
            Err(RoomGateError::LowMark { .. })
        ));
        assert!(RoomGate::new(f64::NAN, 0.1).is_err());
        assert!(RoomGate::new(1.0, 0.0).is_ok());
    }
}
