//! What an `onStatus` code from the upstream means for the puller.

/// The puller's reading of an `onStatus` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayStatus {
    /// Playback started (first time, or again after the publisher came back).
    Started,
    /// The publisher of the stream went away; the connection itself is fine.
    PublisherEnded,
    /// A publisher (re)appeared on the stream.
    PublisherStarted,
    /// The upstream does not have the stream.
    NotFound,
    /// The upstream refused or failed the request: try another upstream.
    Failed,
    /// Informational (Reset, Data.Start, ...): nothing to do.
    Informational,
}

pub fn classify(code: &str) -> PlayStatus {
    match code {
        "NetStream.Play.Start" => PlayStatus::Started,
        "NetStream.Play.UnpublishNotify" | "NetStream.Play.Stop" | "NetStream.Play.Complete" => {
            PlayStatus::PublisherEnded
        }
        "NetStream.Play.PublishNotify" => PlayStatus::PublisherStarted,
        "NetStream.Play.StreamNotFound" => PlayStatus::NotFound,
        c if c.ends_with(".Failed")
            || c.ends_with(".Rejected")
            || c.ends_with(".BadName")
            || c.ends_with(".InsufficientBW")
            || c.ends_with(".Closed") =>
        {
            PlayStatus::Failed
        }
        _ => PlayStatus::Informational,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes() {
        assert_eq!(classify("NetStream.Play.Start"), PlayStatus::Started);
        assert_eq!(
            classify("NetStream.Play.UnpublishNotify"),
            PlayStatus::PublisherEnded
        );
        assert_eq!(classify("NetStream.Play.Stop"), PlayStatus::PublisherEnded);
        assert_eq!(
            classify("NetStream.Play.Complete"),
            PlayStatus::PublisherEnded
        );
        assert_eq!(
            classify("NetStream.Play.PublishNotify"),
            PlayStatus::PublisherStarted
        );
        assert_eq!(
            classify("NetStream.Play.StreamNotFound"),
            PlayStatus::NotFound
        );
        assert_eq!(classify("NetStream.Play.Failed"), PlayStatus::Failed);
        assert_eq!(
            classify("NetConnection.Connect.Rejected"),
            PlayStatus::Failed
        );
        assert_eq!(classify("NetConnection.Connect.Closed"), PlayStatus::Failed);
        assert_eq!(classify("NetStream.Play.Reset"), PlayStatus::Informational);
        assert_eq!(classify("NetStream.Data.Start"), PlayStatus::Informational);
    }
}
