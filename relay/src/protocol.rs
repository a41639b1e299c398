//! The protocols a viewer may play with. Below the hub (which keeps one serialized form per
//! protocol) and the metrics (which count viewers and bytes per protocol), so neither depends
//! on the other for it.

/// Which serialized form a viewer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Rtmp,
    Flv,
}

impl Protocol {
    /// The `protocol` label value in metrics and the key in `/api/v1/streams`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
        }
    }
}
