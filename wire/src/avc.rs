//! H.264 in FLV/RTMP video payloads: the AVC sequence header (with a real SPS/PPS
//! written bit by bit), synthetic AVCC frames, and timing-SEI insertion into real frames.

pub use crate::media::CODEC_AVC;
use crate::media::is_video_keyframe;
use crate::sei::{TimingStamp, encode_timing_nal, escape_into};

/// AVCPacketType: sequence header.
pub const AVC_SEQUENCE_HEADER: u8 = 0;
/// AVCPacketType: NAL units.
pub const AVC_NALU: u8 = 1;

/// What the first bytes of an FLV/RTMP video payload say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoHeader {
    pub keyframe: bool,
    pub codec: u8,
    /// AVCPacketType (only meaningful for AVC).
    pub packet_type: u8,
}

impl VideoHeader {
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let first = *payload.first()?;
        let codec = first & 0x0f;
        let packet_type = if codec == CODEC_AVC {
            *payload.get(1)?
        } else {
            AVC_NALU
        };
        Some(Self {
            keyframe: is_video_keyframe(payload),
            codec,
            packet_type,
        })
    }

    pub fn is_avc_sequence_header(&self) -> bool {
        self.codec == CODEC_AVC && self.packet_type == AVC_SEQUENCE_HEADER
    }

    pub fn is_avc_frame(&self) -> bool {
        self.codec == CODEC_AVC && self.packet_type == AVC_NALU
    }
}

/// Writes bits MSB first, with Exp-Golomb codes (for SPS/PPS).
#[derive(Default)]
struct BitWriter {
    bytes: Vec<u8>,
    bit: u8,
}

impl BitWriter {
    fn bit(&mut self, b: bool) {
        if self.bit == 0 {
            self.bytes.push(0);
        }
        if b {
            *self.bytes.last_mut().expect("pushed above") |= 0x80 >> self.bit;
        }
        self.bit = (self.bit + 1) % 8;
    }
    fn bits(&mut self, value: u32, count: u8) {
        for i in (0..count).rev() {
            self.bit(value >> i & 1 == 1);
        }
    }
    fn ue(&mut self, value: u32) {
        let v = value + 1;
        let len = 32 - v.leading_zeros() as u8;
        self.bits(0, len - 1);
        self.bits(v, len);
    }
    fn se(&mut self, value: i32) {
        let mapped = if value > 0 {
            (value as u32) * 2 - 1
        } else {
            (-value as u32) * 2
        };
        self.ue(mapped);
    }
    /// rbsp_trailing_bits, then the escaped bytes.
    fn finish(mut self) -> Vec<u8> {
        self.bit(true);
        while self.bit != 0 {
            self.bit(false);
        }
        let mut out = Vec::with_capacity(self.bytes.len() + 4);
        escape_into(&self.bytes, &mut out);
        out
    }
}

/// A Baseline-profile SPS NAL unit for `width`×`height` (multiples of 16).
pub fn baseline_sps(width: u32, height: u32) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.bits(66, 8); // profile_idc: Baseline
    w.bits(0b1100_0000, 8); // constraint_set0/1 flags
    w.bits(30, 8); // level_idc 3.0
    w.ue(0); // seq_parameter_set_id
    w.ue(0); // log2_max_frame_num_minus4
    w.ue(2); // pic_order_cnt_type
    w.ue(1); // max_num_ref_frames
    w.bit(false); // gaps_in_frame_num_value_allowed_flag
    w.ue(width / 16 - 1);
    w.ue(height / 16 - 1);
    w.bit(true); // frame_mbs_only_flag
    w.bit(true); // direct_8x8_inference_flag
    w.bit(false); // frame_cropping_flag
    w.bit(false); // vui_parameters_present_flag
    let mut nal = vec![0x67]; // nal_ref_idc 3, type 7
    nal.extend(w.finish());
    nal
}

/// The matching PPS NAL unit.
pub fn baseline_pps() -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(0); // pic_parameter_set_id
    w.ue(0); // seq_parameter_set_id
    w.bit(false); // entropy_coding_mode_flag (CAVLC)
    w.bit(false); // bottom_field_pic_order_in_frame_present_flag
    w.ue(0); // num_slice_groups_minus1
    w.ue(0); // num_ref_idx_l0_default_active_minus1
    w.ue(0); // num_ref_idx_l1_default_active_minus1
    w.bit(false); // weighted_pred_flag
    w.bits(0, 2); // weighted_bipred_idc
    w.se(0); // pic_init_qp_minus26
    w.se(0); // pic_init_qs_minus26
    w.se(0); // chroma_qp_index_offset
    w.bit(true); // deblocking_filter_control_present_flag
    w.bit(false); // constrained_intra_pred_flag
    w.bit(false); // redundant_pic_cnt_present_flag
    let mut nal = vec![0x68]; // nal_ref_idc 3, type 8
    nal.extend(w.finish());
    nal
}

/// The FLV/RTMP video payload of an AVC sequence header (AVCDecoderConfigurationRecord),
/// with 4-byte NAL lengths.
pub fn sequence_header_payload(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut out = vec![0x17, AVC_SEQUENCE_HEADER, 0, 0, 0];
    out.extend_from_slice(&[1, sps[1], sps[2], sps[3], 0xff, 0xe1]);
    out.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1);
    out.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    out.extend_from_slice(pps);
    out
}

/// The NAL length size (1, 2 or 4) an AVCDecoderConfigurationRecord announces;
/// `payload` is the whole FLV video payload of the sequence header.
pub fn nal_length_size(payload: &[u8]) -> Option<usize> {
    let record = payload.get(5..)?;
    if *record.first()? != 1 {
        return None;
    }
    let size = (*record.get(4)? & 0x03) as usize + 1;
    (size != 3).then_some(size)
}

/// A decodable slice NAL for the SPS/PPS above: an IDR I-slice of flat grey
/// Intra16x16-DC macroblocks with no residual (1 byte each), or a P-slice that skips
/// every macroblock. `frame_num` counts frames since the IDR.
pub fn slice_nal(keyframe: bool, frame_num: u32, macroblocks: u32) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.ue(0); // first_mb_in_slice
    w.ue(if keyframe { 7 } else { 5 }); // slice_type: I or P (all slices of the picture)
    w.ue(0); // pic_parameter_set_id
    w.bits(frame_num % 16, 4); // frame_num (log2_max_frame_num = 4)
    if keyframe {
        w.ue(0); // idr_pic_id
    } else {
        w.bit(false); // num_ref_idx_active_override_flag
        w.bit(false); // ref_pic_list_modification_flag_l0
    }
    if keyframe {
        w.bit(false); // no_output_of_prior_pics_flag
        w.bit(false); // long_term_reference_flag
    } else {
        w.bit(false); // adaptive_ref_pic_marking_mode_flag
    }
    w.se(0); // slice_qp_delta
    w.ue(1); // disable_deblocking_filter_idc
    if keyframe {
        for _ in 0..macroblocks {
            w.ue(3); // mb_type I_16x16_2_0_0: DC prediction, no coded residual
            w.ue(0); // intra_chroma_pred_mode: DC
            w.se(0); // mb_qp_delta
            w.bit(true); // coeff_token of the luma DC block: TotalCoeff 0 (nC 0..2)
        }
    } else {
        w.ue(macroblocks); // mb_skip_run: the whole picture
    }
    let mut nal = vec![if keyframe { 0x65 } else { 0x41 }];
    nal.extend(w.finish());
    nal
}

/// Fills `out` with the FLV/RTMP payload of one synthetic frame of about `size` bytes:
/// the timing SEI, a decodable slice (see [`slice_nal`]) and a filler-data NAL that
/// brings the frame to the size the bitrate asks for.
pub fn synthetic_frame_into(
    out: &mut Vec<u8>,
    keyframe: bool,
    frame_num: u32,
    macroblocks: u32,
    stamp: TimingStamp,
    size: usize,
) {
    out.clear();
    out.extend_from_slice(&[if keyframe { 0x17 } else { 0x27 }, AVC_NALU, 0, 0, 0]);
    for nal in [
        encode_timing_nal(stamp),
        slice_nal(keyframe, frame_num, macroblocks),
    ] {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(&nal);
    }
    // Filler data NAL (type 12): 0xff bytes then rbsp trailing bits; decoders drop it.
    let filler = size.saturating_sub(out.len() + 4 + 2);
    if filler > 0 {
        out.extend_from_slice(&(filler as u32 + 2).to_be_bytes());
        out.push(0x0c);
        out.resize(out.len() + filler, 0xff);
        out.push(0x80);
    }
}

/// A copy of a real AVC NALU payload with our timing SEI inserted as the first NAL unit.
/// Returns `None` when the payload is not an AVC NALU packet.
pub fn insert_timing_sei(
    payload: &[u8],
    length_size: usize,
    stamp: TimingStamp,
) -> Option<Vec<u8>> {
    let header = VideoHeader::parse(payload)?;
    if !header.is_avc_frame() || payload.len() < 5 {
        return None;
    }
    let sei = encode_timing_nal(stamp);
    let mut out = Vec::with_capacity(payload.len() + sei.len() + 4);
    out.extend_from_slice(&payload[..5]);
    let len = sei.len() as u32;
    match length_size {
        1 => out.push(len as u8),
        2 => out.extend_from_slice(&(len as u16).to_be_bytes()),
        _ => out.extend_from_slice(&len.to_be_bytes()),
    }
    out.extend_from_slice(&sei);
    out.extend_from_slice(&payload[5..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sei::find_timing_in_avcc;

    #[test]
    fn exp_golomb_codes_match_the_standard() {
        let mut w = BitWriter::default();
        w.ue(0); // 1
        w.ue(1); // 010
        w.ue(2); // 011
        w.ue(3); // 00100
        assert_eq!(w.bytes, vec![0b1010_0110, 0b0100_0000]);
        let mut s = BitWriter::default();
        s.se(1); // 010
        s.se(-1); // 011
        assert_eq!(s.bytes, vec![0b0100_1100]);
    }

    #[test]
    fn sequence_header_announces_profile_and_four_byte_lengths() {
        let sps = baseline_sps(320, 240);
        let pps = baseline_pps();
        assert_eq!(sps[0] & 0x1f, 7);
        assert_eq!(pps[0] & 0x1f, 8);
        let seq = sequence_header_payload(&sps, &pps);
        let h = VideoHeader::parse(&seq).expect("header");
        assert!(h.keyframe && h.is_avc_sequence_header());
        assert_eq!(seq[6], 66, "profile");
        assert_eq!(nal_length_size(&seq), Some(4));
    }

    #[test]
    fn synthetic_frames_have_the_requested_size_and_stamp() {
        let stamp = TimingStamp {
            publish_us: 123,
            sequence: 4,
        };
        let mut buf = Vec::new();
        synthetic_frame_into(&mut buf, true, 0, 920, stamp, 20_000);
        assert_eq!(buf.len(), 20_000);
        let h = VideoHeader::parse(&buf).expect("header");
        assert!(h.keyframe && h.is_avc_frame());
        assert_eq!(find_timing_in_avcc(&buf[5..], 4), Some(stamp));
        synthetic_frame_into(&mut buf, false, 1, 920, stamp, 10);
        assert!(!VideoHeader::parse(&buf).expect("header").keyframe);
        assert_eq!(find_timing_in_avcc(&buf[5..], 4), Some(stamp));
    }

    #[test]
    fn inserts_the_stamp_before_real_nals() {
        let stamp = TimingStamp {
            publish_us: 99,
            sequence: 1,
        };
        let frame = [0x27, 1, 0, 0, 0x21, 0, 3, 0x41, 0xaa, 0xbb];
        let out = insert_timing_sei(&frame, 2, stamp).expect("AVC frame");
        assert_eq!(&out[..5], &frame[..5]);
        assert_eq!(find_timing_in_avcc(&out[5..], 2), Some(stamp));
        assert!(out.ends_with(&frame[5..]));
        assert_eq!(insert_timing_sei(&[0x17, 0, 0, 0, 0], 4, stamp), None);
    }
}
