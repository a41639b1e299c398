//! H.264 Annex-B byte streams (start-code separated NAL units, as in MPEG-TS): the NAL units
//! of an access unit, whether it is a keyframe (IDR), and the timing SEI the publisher put in.

use surge_wire::sei::{NAL_SEI, TimingStamp, decode_timing_nal};

const NAL_IDR: u8 = 5;

/// The NAL units (header byte first, start codes removed) of an Annex-B buffer.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        loop {
            let start = find_start_code(rest)?;
            let body = &rest[start..];
            let end = find_start_code(body).map(|e| e - 3).unwrap_or(body.len());
            // A 4-byte start code leaves one zero at the end of the previous unit.
            let mut nal = &body[..end];
            while let [head @ .., 0] = nal {
                nal = head;
            }
            rest = &body[end..];
            if !nal.is_empty() {
                return Some(nal);
            }
        }
    })
}

/// The offset just past the next 00 00 01.
fn find_start_code(data: &[u8]) -> Option<usize> {
    data.windows(3).position(|w| w == [0, 0, 1]).map(|p| p + 3)
}

/// What a player learns from one access unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Picture {
    /// It has an IDR slice: a player can start here.
    pub keyframe: bool,
    /// It has a coded slice (not only parameter sets or SEI).
    pub has_slice: bool,
    pub stamp: Option<TimingStamp>,
}

pub fn inspect(data: &[u8]) -> Picture {
    let mut p = Picture::default();
    for nal in nal_units(data) {
        match nal[0] & 0x1f {
            NAL_IDR => {
                p.keyframe = true;
                p.has_slice = true;
            }
            1..=4 => p.has_slice = true,
            NAL_SEI if p.stamp.is_none() => p.stamp = decode_timing_nal(nal),
            _ => {}
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use surge_wire::sei::encode_timing_nal;

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, n) in nals.iter().enumerate() {
            // nginx-rtmp writes 4-byte start codes first, 3-byte ones after.
            out.extend_from_slice(if k == 0 {
                &[0, 0, 0, 1][..]
            } else {
                &[0, 0, 1]
            });
            out.extend_from_slice(n);
        }
        out
    }

    #[test]
    fn finds_the_timing_sei_and_the_keyframe() {
        let stamp = TimingStamp {
            publish_us: 1_700_000_000_123_456,
            sequence: 42,
        };
        let sei = encode_timing_nal(stamp);
        let au = annexb(&[
            &[9, 0xf0],
            &[0x67, 1, 2],
            &[0x68, 3],
            &sei,
            &[0x65, 0x88, 0, 0, 0],
        ]);
        let units: Vec<&[u8]> = nal_units(&au).collect();
        assert_eq!(units.len(), 5);
        assert_eq!(units[0], &[9, 0xf0]);
        assert_eq!(
            inspect(&au),
            Picture {
                keyframe: true,
                has_slice: true,
                stamp: Some(stamp)
            }
        );
        let p = inspect(&annexb(&[&[9, 0xf0], &sei, &[0x41, 0x9a]]));
        assert!(!p.keyframe && p.has_slice && p.stamp == Some(stamp));
    }

    #[test]
    fn junk_is_no_picture_and_never_panics() {
        assert_eq!(inspect(&[]), Picture::default());
        assert_eq!(inspect(&[0, 0, 1]), Picture::default());
        assert_eq!(inspect(&[1, 2, 3, 0, 0]), Picture::default());
        // A truncated SEI: no stamp, no panic.
        assert_eq!(inspect(&[0, 0, 1, 6, 5, 32, 0xb7]).stamp, None);
        let mut x: u32 = 1;
        for _ in 0..2000 {
            let buf: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    [0u8, 0, 1, 6, 5, 0xff, 0x65][(x % 7) as usize]
                })
                .collect();
            let _ = inspect(&buf);
        }
    }
}
