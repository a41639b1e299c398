//! What the first bytes of an FLV/RTMP audio or video payload say: keyframe, decoder
//! configuration (sequence header), legacy or Enhanced RTMP.

/// FLV video tag: frame type 1 in the high nibble of the first byte means keyframe.
/// Enhanced RTMP sets bit 7 (IsExHeader) and keeps the frame type in bits 4-6.
const FRAME_TYPE_KEY: u8 = 1;
const EX_HEADER_BIT: u8 = 0x80;
/// FLV video codec id of AVC (H.264).
pub const CODEC_AVC: u8 = 7;
/// Codec id some encoders use for HEVC in legacy (non-enhanced) FLV.
const HEVC_LEGACY_CODEC_ID: u8 = 12;
/// FLV sound format of AAC.
pub const SOUND_FORMAT_AAC: u8 = 10;
const EX_PACKET_TYPE_SEQUENCE_START: u8 = 0;

/// True when the video payload's frame type is "keyframe" (legacy and Enhanced RTMP).
pub fn is_video_keyframe(payload: &[u8]) -> bool {
    match payload.first() {
        Some(&b) => ((b >> 4) & 0x07) == FRAME_TYPE_KEY,
        None => false,
    }
}

/// True for video decoder configuration: AVC/HEVC sequence header (AVCPacketType 0) or
/// Enhanced RTMP `PacketTypeSequenceStart`.
pub fn is_video_sequence_header(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    if b0 & EX_HEADER_BIT != 0 {
        (b0 & 0x0f) == EX_PACKET_TYPE_SEQUENCE_START
    } else {
        let codec = b0 & 0x0f;
        (codec == CODEC_AVC || codec == HEVC_LEGACY_CODEC_ID) && payload.get(1) == Some(&0)
    }
}

/// True for an AAC sequence header (AACPacketType 0).
pub fn is_audio_sequence_header(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    (b0 >> 4) == SOUND_FORMAT_AAC && payload.get(1) == Some(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_keyframe_and_sequence_header() {
        assert!(is_video_keyframe(&[0x17, 0x00]));
        assert!(is_video_sequence_header(&[0x17, 0x00]));
        assert!(is_video_keyframe(&[0x17, 0x01]));
        assert!(!is_video_sequence_header(&[0x17, 0x01]));
        assert!(!is_video_keyframe(&[0x27, 0x01]));
        assert!(!is_video_keyframe(&[]));
        assert!(!is_video_sequence_header(&[]));
    }

    #[test]
    fn enhanced_rtmp_fourcc() {
        // IsExHeader | keyframe<<4 | SequenceStart, then "hvc1".
        let seq = [0x90, b'h', b'v', b'c', b'1'];
        assert!(is_video_keyframe(&seq));
        assert!(is_video_sequence_header(&seq));
        // Coded frames (packet type 1) are not sequence headers.
        let frame = [0x91, b'a', b'v', b'0', b'1'];
        assert!(is_video_keyframe(&frame));
        assert!(!is_video_sequence_header(&frame));
        // Inter frame, ex header.
        assert!(!is_video_keyframe(&[0xa1, b'a', b'v', b'0', b'1']));
    }

    #[test]
    fn aac_sequence_header() {
        assert!(is_audio_sequence_header(&[0xaf, 0x00, 0x12]));
        assert!(!is_audio_sequence_header(&[0xaf, 0x01]));
        assert!(!is_audio_sequence_header(&[0x2f, 0x00]), "mp3");
        assert!(!is_audio_sequence_header(&[0xaf]));
    }
}
