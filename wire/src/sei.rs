//! The timing SEI: an H.264 `user_data_unregistered` SEI message (payload type 5)
//! with our own UUID, carrying the publisher's wall-clock time and a frame counter.
//! Relays forward it untouched inside the video message; decoders ignore unknown UUIDs.

/// Our UUID (random, fixed): marks the SEI as Surge's timing stamp.
pub const TIMING_UUID: [u8; 16] = [
    0xb7, 0x3e, 0x5c, 0x1a, 0x94, 0xd2, 0x4f, 0x0e, 0x8a, 0x61, 0x2c, 0x7d, 0xe3, 0x59, 0x0b, 0x46,
];

/// NAL unit type of SEI.
pub const NAL_SEI: u8 = 6;
const SEI_USER_DATA_UNREGISTERED: u8 = 5;
/// UUID + publish time (u64 µs since the Unix epoch) + frame sequence (u64).
const PAYLOAD_LEN: usize = 16 + 8 + 8;

/// What a timing SEI says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimingStamp {
    /// Publish wall-clock time, microseconds since the Unix epoch.
    pub publish_us: u64,
    /// The publisher's frame counter (detects frames a relay dropped).
    pub sequence: u64,
}

/// The SEI NAL unit (header byte included, no length prefix), emulation-prevented.
pub fn encode_timing_nal(stamp: TimingStamp) -> Vec<u8> {
    let mut rbsp = Vec::with_capacity(PAYLOAD_LEN + 4);
    rbsp.push(SEI_USER_DATA_UNREGISTERED);
    rbsp.push(PAYLOAD_LEN as u8);
    rbsp.extend_from_slice(&TIMING_UUID);
    rbsp.extend_from_slice(&stamp.publish_us.to_be_bytes());
    rbsp.extend_from_slice(&stamp.sequence.to_be_bytes());
    rbsp.push(0x80); // rbsp_trailing_bits
    let mut nal = Vec::with_capacity(rbsp.len() + 8);
    nal.push(NAL_SEI); // forbidden_zero 0, nal_ref_idc 0, type 6
    escape_into(&rbsp, &mut nal);
    nal
}

/// Adds emulation-prevention bytes: 0x000000..0x000003 become 0x0000 03 xx.
pub fn escape_into(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Removes emulation-prevention bytes into `out`; returns the unescaped length.
fn unescape_into(nal_payload: &[u8], out: &mut [u8]) -> usize {
    let mut len = 0;
    let mut zeros = 0;
    for &b in nal_payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        if len == out.len() {
            break;
        }
        out[len] = b;
        len += 1;
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    len
}

/// Reads the timing stamp from one SEI NAL unit (header byte included), if it has ours.
pub fn decode_timing_nal(nal: &[u8]) -> Option<TimingStamp> {
    if nal.first().map(|h| h & 0x1f) != Some(NAL_SEI) {
        return None;
    }
    // On-stack scratch (no allocation per frame): our message is 34 bytes with its header.
    let mut scratch = [0u8; 96];
    let len = unescape_into(&nal[1..nal.len().min(1 + 128)], &mut scratch);
    let buf = &scratch[..len];
    let mut at = 0;
    while at + 2 <= buf.len() && buf[at] != 0x80 {
        let mut payload_type = 0usize;
        while *buf.get(at)? == 0xff {
            payload_type += 255;
            at += 1;
        }
        payload_type += *buf.get(at)? as usize;
        at += 1;
        let mut size = 0usize;
        while *buf.get(at)? == 0xff {
            size += 255;
            at += 1;
        }
        size += *buf.get(at)? as usize;
        at += 1;
        let body = buf.get(at..at + size)?;
        if payload_type == SEI_USER_DATA_UNREGISTERED as usize
            && size == PAYLOAD_LEN
            && body[..16] == TIMING_UUID
        {
            let publish_us = u64::from_be_bytes(body[16..24].try_into().ok()?);
            let sequence = u64::from_be_bytes(body[24..32].try_into().ok()?);
            return Some(TimingStamp {
                publish_us,
                sequence,
            });
        }
        at += size;
    }
    None
}

/// Finds our timing stamp among the first NAL units of an AVCC buffer
/// (`length_size`-byte big-endian length before each NAL). Truncated input is fine:
/// viewers keep only the first bytes of each frame.
pub fn find_timing_in_avcc(avcc: &[u8], length_size: usize) -> Option<TimingStamp> {
    let mut at = 0;
    // Look at no more than a few NALs: ours comes first; AUD/SPS/PPS may precede it in other streams.
    for _ in 0..4 {
        let len_bytes = avcc.get(at..at + length_size)?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        at += length_size;
        let end = (at + len).min(avcc.len());
        let nal = avcc.get(at..end)?;
        if let Some(&h) = nal.first()
            && h & 0x1f == NAL_SEI
            && let Some(stamp) = decode_timing_nal(nal)
        {
            return Some(stamp);
        }
        if at + len > avcc.len() {
            return None;
        }
        at += len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_including_emulation_prevention() {
        for stamp in [
            TimingStamp {
                publish_us: 1_763_000_000_123_456,
                sequence: 7,
            },
            // Many zero bytes force emulation-prevention bytes in the NAL.
            TimingStamp {
                publish_us: 0x0000_0000_0000_0001,
                sequence: 0,
            },
            TimingStamp {
                publish_us: u64::MAX,
                sequence: 0x0000_0300_0000_0002,
            },
        ] {
            let nal = encode_timing_nal(stamp);
            // No start-code emulation survives in the escaped NAL.
            assert!(
                !nal.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2),
                "escaped NAL contains a start-code prefix: {nal:02x?}"
            );
            assert_eq!(decode_timing_nal(&nal), Some(stamp));
        }
    }

    #[test]
    fn finds_the_stamp_after_other_nals_and_ignores_foreign_sei() {
        let stamp = TimingStamp {
            publish_us: 42,
            sequence: 9,
        };
        let ours = encode_timing_nal(stamp);
        // A foreign SEI (other UUID) and an AUD come first.
        let mut foreign = ours.clone();
        foreign[4] ^= 0xff;
        let aud = vec![0x09, 0xf0];
        let mut avcc = Vec::new();
        for nal in [&aud, &foreign, &ours, &vec![0x65, 1, 2, 3]] {
            avcc.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            avcc.extend_from_slice(nal);
        }
        assert_eq!(find_timing_in_avcc(&avcc, 4), Some(stamp));
        // Truncated after the stamp: still found. Truncated inside it: not found, no panic.
        let cut = 4 + aud.len() + 4 + foreign.len() + 4 + ours.len();
        assert_eq!(find_timing_in_avcc(&avcc[..cut], 4), Some(stamp));
        assert_eq!(find_timing_in_avcc(&avcc[..cut - 10], 4), None);
        assert_eq!(decode_timing_nal(&foreign), None);
        assert_eq!(find_timing_in_avcc(&[0, 0], 4), None);
        assert_eq!(find_timing_in_avcc(&[0xff, 0xff, 0xff, 0xff, 6], 4), None);
    }
}
