//! One audio, video or metadata message as it travels from a source (publisher or upstream)
//! into a stream hub. Payloads are FLV tag bodies (the same bytes RTMP carries).

use bytes::Bytes;

/// What a [`MediaMessage`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
    /// `onMetaData` AMF0 body, WITHOUT the `@setDataFrame` prefix.
    Data,
}

/// A complete media message with an absolute, monotonic timestamp in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaMessage {
    pub kind: MediaKind,
    pub timestamp: u32,
    pub payload: Bytes,
}

impl MediaMessage {
    pub fn new(kind: MediaKind, timestamp: u32, payload: Bytes) -> Self {
        MediaMessage {
            kind,
            timestamp,
            payload,
        }
    }

    /// True for a video message whose frame type is "keyframe" (legacy and Enhanced RTMP).
    pub fn is_video_keyframe(&self) -> bool {
        self.kind == MediaKind::Video && surge_wire::media::is_video_keyframe(&self.payload)
    }

    /// True for decoder configuration: AVC/HEVC sequence header (AVCPacketType 0), AAC
    /// sequence header (AACPacketType 0), or Enhanced RTMP `PacketTypeSequenceStart`.
    pub fn is_sequence_header(&self) -> bool {
        match self.kind {
            MediaKind::Video => surge_wire::media::is_video_sequence_header(&self.payload),
            MediaKind::Audio => surge_wire::media::is_audio_sequence_header(&self.payload),
            MediaKind::Data => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(bytes: &'static [u8]) -> MediaMessage {
        MediaMessage::new(MediaKind::Video, 0, Bytes::from_static(bytes))
    }

    #[test]
    fn avc_keyframe_and_sequence_header() {
        assert!(video(&[0x17, 0x00]).is_video_keyframe());
        assert!(video(&[0x17, 0x00]).is_sequence_header());
        assert!(video(&[0x17, 0x01]).is_video_keyframe());
        assert!(!video(&[0x17, 0x01]).is_sequence_header());
        assert!(!video(&[0x27, 0x01]).is_video_keyframe());
        assert!(!video(&[]).is_video_keyframe());
        assert!(!video(&[]).is_sequence_header());
    }

    #[test]
    fn enhanced_rtmp_fourcc() {
        // IsExHeader | keyframe<<4 | SequenceStart, then "hvc1".
        let seq = video(&[0x90, b'h', b'v', b'c', b'1']);
        assert!(seq.is_video_keyframe());
        assert!(seq.is_sequence_header());
        // Coded frames (packet type 1) are not sequence headers.
        let frame = video(&[0x91, b'a', b'v', b'0', b'1']);
        assert!(frame.is_video_keyframe());
        assert!(!frame.is_sequence_header());
        // Inter frame, ex header.
        assert!(!video(&[0xa1, b'a', b'v', b'0', b'1']).is_video_keyframe());
    }

    #[test]
    fn aac_sequence_header() {
        let a = MediaMessage::new(MediaKind::Audio, 0, Bytes::from_static(&[0xaf, 0x00, 0x12]));
        assert!(a.is_sequence_header());
        assert!(!a.is_video_keyframe());
        let raw = MediaMessage::new(MediaKind::Audio, 0, Bytes::from_static(&[0xaf, 0x01]));
        assert!(!raw.is_sequence_header());
        let mp3 = MediaMessage::new(MediaKind::Audio, 0, Bytes::from_static(&[0x2f, 0x00]));
        assert!(!mp3.is_sequence_header());
    }
}
