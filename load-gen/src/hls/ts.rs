//! MPEG-TS (ISO/IEC 13818-1) as far as an HLS segment's H.264 video goes: packets, the PAT
//! and PMT (single-packet sections, as HLS packagers write them), and the video stream's PES
//! packets reassembled into access units with their PTS. Audio and other streams are skipped.

pub const PACKET: usize = 188;
const SYNC: u8 = 0x47;
const PID_PAT: u16 = 0;
/// stream_type of H.264 video in a PMT.
const STREAM_TYPE_H264: u8 = 0x1b;
/// One access unit larger than this is refused (a 1080p keyframe is well under 2 MB).
pub const MAX_PES: usize = 16 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TsError {
    #[error("segment is empty")]
    Empty,
    #[error("segment length {0} is not a multiple of 188-byte TS packets")]
    Length(usize),
    #[error("TS packet at byte {0} does not start with the sync byte 0x47")]
    LostSync(usize),
    #[error("malformed {what} in the TS packet at byte {at}")]
    Malformed { what: &'static str, at: usize },
    #[error("a video PES packet is larger than {MAX_PES} bytes")]
    PesTooLarge,
    #[error("no PAT/PMT announcing H.264 video in the segment")]
    NoVideo,
}

/// One H.264 access unit (Annex-B byte stream) with its presentation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// 90 kHz PTS (33 bits); None if the PES had none.
    pub pts: Option<u64>,
    pub data: Vec<u8>,
}

/// All video access units of one segment, in order. HLS segments are self-contained (each
/// starts with PAT and PMT), so no state carries over between segments.
pub fn demux_segment(bytes: &[u8]) -> Result<Vec<AccessUnit>, TsError> {
    if bytes.is_empty() {
        return Err(TsError::Empty);
    }
    if !bytes.len().is_multiple_of(PACKET) {
        return Err(TsError::Length(bytes.len()));
    }
    let mut pmt_pid: Option<u16> = None;
    let mut video_pid: Option<u16> = None;
    let mut pes: Option<Vec<u8>> = None;
    let mut out = Vec::new();
    for (k, packet) in bytes.chunks_exact(PACKET).enumerate() {
        let at = k * PACKET;
        if packet[0] != SYNC {
            return Err(TsError::LostSync(at));
        }
        let pusi = packet[1] & 0x40 != 0;
        let pid = u16::from_be_bytes([packet[1] & 0x1f, packet[2]]);
        let afc = (packet[3] >> 4) & 0x3;
        let payload_start = match afc {
            0b01 => 4,
            0b11 => 5 + packet[4] as usize,
            // Adaptation field only, or reserved: no payload.
            _ => continue,
        };
        let Some(payload) = packet.get(payload_start..) else {
            return Err(TsError::Malformed {
                what: "adaptation field length",
                at,
            });
        };
        if pid == PID_PAT && pusi {
            pmt_pid = Some(parse_pat(payload).ok_or(TsError::Malformed { what: "PAT", at })?);
        } else if Some(pid) == pmt_pid && pusi {
            video_pid = parse_pmt(payload).ok_or(TsError::Malformed { what: "PMT", at })?;
        } else if Some(pid) == video_pid {
            if pusi {
                if let Some(done) = pes.take() {
                    out.push(parse_pes(&done).ok_or(TsError::Malformed { what: "PES", at })?);
                }
                pes = Some(Vec::with_capacity(64 * 1024));
            }
            // Continuation bytes before the first start of a PES belong to a unit that began
            // in the previous segment: nothing to do with them.
            if let Some(buf) = pes.as_mut() {
                if buf.len() + payload.len() > MAX_PES {
                    return Err(TsError::PesTooLarge);
                }
                buf.extend_from_slice(payload);
            }
        }
    }
    if let Some(done) = pes.take() {
        out.push(parse_pes(&done).ok_or(TsError::Malformed {
            what: "PES",
            at: bytes.len() - PACKET,
        })?);
    }
    if video_pid.is_none() {
        return Err(TsError::NoVideo);
    }
    Ok(out)
}

/// The section after the pointer field, up to (not including) its CRC, if it has the
/// expected table id and fits in this packet.
fn section(payload: &[u8], table_id: u8) -> Option<&[u8]> {
    let pointer = *payload.first()? as usize;
    let s = payload.get(1 + pointer..)?;
    if *s.first()? != table_id {
        return None;
    }
    let len = (u16::from_be_bytes([*s.get(1)? & 0x0f, *s.get(2)?])) as usize;
    // section_length counts from after itself and includes the 4-byte CRC.
    let body_end = (3 + len).checked_sub(4)?;
    s.get(3..body_end)
}

/// The PMT PID of the first program.
fn parse_pat(payload: &[u8]) -> Option<u16> {
    let body = section(payload, 0x00)?;
    // transport_stream_id(2) version(1) section_number(1) last_section_number(1).
    body.get(5..)?
        .chunks_exact(4)
        .find(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
        .map(|e| u16::from_be_bytes([e[2] & 0x1f, e[3]]))
}

/// The PID of the first H.264 stream, `Some(None)` when the program has none.
fn parse_pmt(payload: &[u8]) -> Option<Option<u16>> {
    let body = section(payload, 0x02)?;
    // program_number(2) version(1) section(1) last(1) PCR_PID(2) program_info_length(2).
    let info_len = u16::from_be_bytes([*body.get(7)? & 0x0f, *body.get(8)?]) as usize;
    let mut es = body.get(9 + info_len..)?;
    while es.len() >= 5 {
        let stream_type = es[0];
        let pid = u16::from_be_bytes([es[1] & 0x1f, es[2]]);
        let es_info = u16::from_be_bytes([es[3] & 0x0f, es[4]]) as usize;
        if stream_type == STREAM_TYPE_H264 {
            return Some(Some(pid));
        }
        es = es.get(5 + es_info..)?;
    }
    Some(None)
}

/// A whole PES packet: its PTS and payload.
fn parse_pes(pes: &[u8]) -> Option<AccessUnit> {
    if pes.get(..3)? != [0, 0, 1] {
        return None;
    }
    let flags = *pes.get(7)?;
    let header_len = *pes.get(8)? as usize;
    let data = pes.get(9 + header_len..)?;
    let pts = if flags & 0x80 != 0 {
        let p = pes.get(9..14)?;
        Some(
            (((p[0] >> 1) & 0x07) as u64) << 30
                | (p[1] as u64) << 22
                | ((p[2] >> 1) as u64) << 15
                | (p[3] as u64) << 7
                | (p[4] >> 1) as u64,
        )
    } else {
        None
    };
    Some(AccessUnit {
        pts,
        data: data.to_vec(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const VIDEO_PID: u16 = 0x100;
    const PMT_PID: u16 = 0x1000;

    /// One TS packet: header, optional adaptation padding, payload (padded with stuffing).
    fn packet(pid: u16, pusi: bool, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() <= PACKET - 4);
        let mut p = vec![SYNC, (pusi as u8) << 6 | (pid >> 8) as u8, pid as u8];
        let room = PACKET - 4 - payload.len();
        if room == 0 {
            p.push(0x10);
        } else {
            // Adaptation field of `room` bytes (its length byte + stuffing).
            p.push(0x30);
            p.push((room - 1) as u8);
            if room > 1 {
                p.push(0); // flags
                p.extend(std::iter::repeat_n(0xff, room - 2));
            }
        }
        p.extend_from_slice(payload);
        assert_eq!(p.len(), PACKET);
        p
    }

    fn psi(table_id: u8, body: &[u8]) -> Vec<u8> {
        let len = body.len() + 4; // + CRC (not checked)
        let mut s = vec![0, table_id, 0xb0 | (len >> 8) as u8, len as u8];
        s.extend_from_slice(body);
        s.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        s
    }

    fn pat() -> Vec<u8> {
        packet(
            PID_PAT,
            true,
            &psi(
                0,
                &[
                    0,
                    1,
                    0xc1,
                    0,
                    0,
                    0,
                    1,
                    0xe0 | (PMT_PID >> 8) as u8,
                    PMT_PID as u8,
                ],
            ),
        )
    }

    fn pmt(streams: &[(u8, u16)]) -> Vec<u8> {
        let mut body = vec![0, 1, 0xc1, 0, 0, 0xe1, 0x00, 0xf0, 0];
        for &(t, pid) in streams {
            body.extend_from_slice(&[t, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0]);
        }
        packet(PMT_PID, true, &psi(2, &body))
    }

    fn pes(pts: u64, data: &[u8]) -> Vec<u8> {
        let mut p = vec![0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5];
        p.push(0x21 | ((pts >> 29) & 0x0e) as u8);
        p.push((pts >> 22) as u8);
        p.push(0x01 | ((pts >> 14) & 0xfe) as u8);
        p.push((pts >> 7) as u8);
        p.push(0x01 | ((pts << 1) & 0xfe) as u8);
        p.extend_from_slice(data);
        p
    }

    /// A segment (PAT, PMT with audio then video, the access units split over packets,
    /// an audio packet in between) as nginx-rtmp lays one out.
    pub fn segment(units: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut out = pat();
        out.extend(pmt(&[(0x0f, 0x101), (STREAM_TYPE_H264, VIDEO_PID)]));
        for (pts, data) in units {
            let whole = pes(*pts, data);
            for (k, piece) in whole.chunks(PACKET - 4).enumerate() {
                out.extend(packet(VIDEO_PID, k == 0, piece));
                out.extend(packet(0x101, k == 0, &[0, 0, 1, 0xc0, 0, 0]));
            }
        }
        out
    }

    #[test]
    fn reassembles_access_units_with_their_pts() {
        let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let pts_big = (1u64 << 33) - 1;
        let seg = segment(&[(900_000, vec![0, 0, 0, 1, 9, 0xf0]), (pts_big, big.clone())]);
        let units = demux_segment(&seg).expect("valid");
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].pts, Some(900_000));
        assert_eq!(units[0].data, vec![0, 0, 0, 1, 9, 0xf0]);
        assert_eq!(units[1].pts, Some(pts_big));
        assert_eq!(units[1].data, big);
    }

    #[test]
    fn malformed_segments_are_clear_errors() {
        let good = segment(&[(0, vec![0, 0, 1, 0x65])]);
        assert_eq!(demux_segment(&[]), Err(TsError::Empty));
        assert_eq!(demux_segment(&good[..200]), Err(TsError::Length(200)));
        let mut unsynced = good.clone();
        unsynced[PACKET] = 0x48;
        assert_eq!(demux_segment(&unsynced), Err(TsError::LostSync(PACKET)));
        // Only audio in the PMT.
        let mut audio_only = pat();
        audio_only.extend(pmt(&[(0x0f, 0x101)]));
        assert_eq!(demux_segment(&audio_only), Err(TsError::NoVideo));
        // No PAT at all (an HTML error page padded to 188 bytes would lose sync instead).
        assert_eq!(
            demux_segment(&packet(VIDEO_PID, true, &[0, 0, 1])),
            Err(TsError::NoVideo)
        );
        // A PES without its start code.
        let mut bad_pes = pat();
        bad_pes.extend(pmt(&[(STREAM_TYPE_H264, VIDEO_PID)]));
        bad_pes.extend(packet(VIDEO_PID, true, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
        assert!(matches!(
            demux_segment(&bad_pes),
            Err(TsError::Malformed { what: "PES", .. })
        ));
        // An adaptation field longer than the packet.
        let mut long_af = good.clone();
        long_af[PACKET * 2 + 3] = 0x30;
        long_af[PACKET * 2 + 4] = 200;
        assert!(matches!(
            demux_segment(&long_af),
            Err(TsError::Malformed { .. })
        ));
    }

    #[test]
    fn never_panics_on_corrupted_segments() {
        let good = segment(&[
            (
                0,
                vec![0, 0, 0, 1, 6, 5, 1, 2, 0x80, 0, 0, 1, 0x65, 1, 2, 3],
            ),
            (3000, vec![7; 500]),
        ]);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            let mut seg = good.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x % seg.len() as u64) as usize;
                // Keep the sync bytes sometimes, so the corruption reaches the parsers.
                if !at.is_multiple_of(PACKET) || x & 1 == 0 {
                    seg[at] = (x >> 32) as u8;
                }
            }
            let _ = demux_segment(&seg);
            let cut = (x >> 20) as usize % (seg.len() / PACKET) * PACKET;
            let _ = demux_segment(&seg[..cut]);
        }
    }
}
