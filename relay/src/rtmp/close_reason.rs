//! Why an RTMP connection ended: the text of its one "connection closed" log line, its log
//! level, and the `reason` label of `surge_relay_connections_closed_total` it counts under.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The ordinary end: the client closed, the stream ended, the relay shut down, the other
    /// half of the connection finished. Logged at info, not counted.
    Ended(String),
    /// The client closed or reset its end while the relay wrote to it: the client left, the
    /// relay did not close it. Logged at info, not counted.
    PeerGone(String),
    /// A viewer whose socket took nothing for `--slow-viewer-timeout`. Counted `slow_viewer`.
    SlowViewer(String),
    /// Bad input, a timeout, an IO error. Counted `error`.
    Error(String),
}

impl CloseReason {
    /// The `reason` label this close counts under, or `None` for closes the relay did not
    /// cause.
    pub fn metric_label(&self) -> Option<&'static str> {
        match self {
            CloseReason::Ended(_) | CloseReason::PeerGone(_) => None,
            CloseReason::SlowViewer(_) => Some("slow_viewer"),
            CloseReason::Error(_) => Some("error"),
        }
    }

    /// Whether the close is worth a warning (the relay closed the connection on a failure).
    pub fn is_failure(&self) -> bool {
        self.metric_label().is_some()
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Ended(why) | CloseReason::Error(why) => f.write_str(why),
            CloseReason::PeerGone(why) => write!(f, "peer went away ({why})"),
            CloseReason::SlowViewer(why) => write!(f, "slow viewer (not reading): {why}"),
        }
    }
}

/// Failures described in words are errors.
impl From<String> for CloseReason {
    fn from(why: String) -> Self {
        CloseReason::Error(why)
    }
}

impl From<&str> for CloseReason {
    fn from(why: &str) -> Self {
        CloseReason::Error(why.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_levels_and_texts() {
        let slow = CloseReason::SlowViewer("socket accepted nothing for 1s".into());
        assert_eq!(slow.metric_label(), Some("slow_viewer"));
        assert!(slow.is_failure());
        assert_eq!(
            slow.to_string(),
            "slow viewer (not reading): socket accepted nothing for 1s"
        );
        let gone = CloseReason::PeerGone("Broken pipe".into());
        assert_eq!(gone.metric_label(), None);
        assert!(!gone.is_failure());
        assert_eq!(gone.to_string(), "peer went away (Broken pipe)");
        assert_eq!(
            CloseReason::Ended("peer closed".into()).metric_label(),
            None
        );
        let bad = CloseReason::from("closing on bad input: x".to_string());
        assert_eq!(bad.metric_label(), Some("error"));
        assert_eq!(bad.to_string(), "closing on bad input: x");
    }
}
