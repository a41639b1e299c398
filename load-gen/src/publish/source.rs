//! What the publisher sends: synthetic H.264 frames sized to a bitrate, or a real FLV
//! file looped; either way every video frame gets a timing SEI stamped when it is sent.

use crate::flv::{FlvTag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use surge_wire::avc::{
    CODEC_AVC, VideoHeader, baseline_pps, baseline_sps, insert_timing_sei, nal_length_size,
    sequence_header_payload, synthetic_frame_into,
};
use surge_wire::media::is_audio_sequence_header;
use surge_wire::sei::TimingStamp;

/// How much bigger a keyframe is than an inter frame in the synthetic stream.
const KEYFRAME_WEIGHT: usize = 8;

pub struct Synthetic {
    fps: u32,
    gop_frames: u64,
    key_bytes: usize,
    inter_bytes: usize,
    width: u32,
    height: u32,
    bitrate_kbps: u32,
    frame: u64,
    /// Frame index at which the current session started (gets a keyframe).
    session_start: u64,
    last_key: u64,
}

impl Synthetic {
    pub fn new(bitrate_kbps: u32, fps: u32, gop_seconds: f64, width: u32, height: u32) -> Self {
        let fps = fps.max(1);
        let gop_frames = ((fps as f64 * gop_seconds).round() as u64).max(1);
        let bytes_per_gop = bitrate_kbps as f64 * 1000.0 / 8.0 * gop_frames as f64 / fps as f64;
        let units = (gop_frames as usize - 1) + KEYFRAME_WEIGHT;
        let unit = bytes_per_gop / units as f64;
        Self {
            fps,
            gop_frames,
            key_bytes: (unit * KEYFRAME_WEIGHT as f64) as usize,
            inter_bytes: unit as usize,
            width,
            height,
            bitrate_kbps,
            frame: 0,
            session_start: 0,
            last_key: 0,
        }
    }

    /// Media time of frame `i`, ms.
    fn ts(&self, i: u64) -> u32 {
        (i * 1000 / self.fps as u64) as u32
    }

    pub fn sizes(&self) -> (usize, usize) {
        (self.key_bytes, self.inter_bytes)
    }
}

pub struct Looped {
    headers: Vec<FlvTag>,
    body: Vec<FlvTag>,
    length_size: usize,
    /// Media duration of one pass, ms.
    loop_ms: u32,
    index: usize,
    offset_ms: u32,
}

impl Looped {
    /// Splits a file into sequence headers (sent at each session start) and the looped body.
    pub fn new(tags: Vec<FlvTag>) -> Result<Self, String> {
        let mut headers = Vec::new();
        let mut body = Vec::new();
        let mut length_size = None;
        for tag in tags {
            let is_header = match tag.tag_type {
                TAG_VIDEO => {
                    let h = VideoHeader::parse(&tag.data);
                    // An AVC end-of-sequence tag would make players flush at every loop.
                    if h.is_some_and(|h| h.codec == CODEC_AVC && h.packet_type == 2) {
                        continue;
                    }
                    if h.is_some_and(|h| h.is_avc_sequence_header()) {
                        length_size = nal_length_size(&tag.data);
                        true
                    } else {
                        false
                    }
                }
                // AAC sequence header.
                TAG_AUDIO => is_audio_sequence_header(&tag.data),
                TAG_SCRIPT => true,
                _ => false,
            };
            if is_header {
                if !headers.iter().any(|h: &FlvTag| h.tag_type == tag.tag_type) {
                    headers.push(tag);
                }
            } else {
                body.push(tag);
            }
        }
        let length_size = length_size.ok_or("the FLV file has no AVC (H.264) sequence header")?;
        let first_key = body
            .iter()
            .position(|t| {
                t.tag_type == TAG_VIDEO && VideoHeader::parse(&t.data).is_some_and(|h| h.keyframe)
            })
            .ok_or("the FLV file has no H.264 keyframe")?;
        body.drain(..first_key);
        let first = body.first().map(|t| t.timestamp_ms).unwrap_or(0);
        for t in &mut body {
            t.timestamp_ms = t.timestamp_ms.saturating_sub(first);
        }
        let last = body.last().map(|t| t.timestamp_ms).unwrap_or(0);
        let video_ts: Vec<u32> = body
            .iter()
            .filter(|t| t.tag_type == TAG_VIDEO)
            .map(|t| t.timestamp_ms)
            .collect();
        let frame_ms = if video_ts.len() > 1 {
            (video_ts[video_ts.len() - 1] - video_ts[0]) / (video_ts.len() as u32 - 1)
        } else {
            33
        };
        Ok(Self {
            headers,
            body,
            length_size,
            loop_ms: last + frame_ms.max(1),
            index: 0,
            offset_ms: 0,
        })
    }
}

pub enum Source {
    Synthetic(Synthetic),
    Looped(Looped),
}

impl Source {
    /// Metadata fields for `onMetaData`.
    pub fn describe(&self) -> String {
        match self {
            Source::Synthetic(s) => format!(
                "synthetic H.264 {}x{} {} fps, {} kbps, GOP {} frames (keyframe {} B, inter {} B)",
                s.width, s.height, s.fps, s.bitrate_kbps, s.gop_frames, s.key_bytes, s.inter_bytes
            ),
            Source::Looped(l) => format!(
                "looped FLV: {} tags, {} ms per pass",
                l.body.len(),
                l.loop_ms
            ),
        }
    }

    /// Sequence headers (and metadata) to send at the start of every session, as
    /// (type, payload). The metadata is sent separately by the caller for synthetic streams.
    pub fn headers(&self) -> Vec<(u8, Vec<u8>)> {
        match self {
            Source::Synthetic(s) => {
                let sps = baseline_sps(s.width, s.height);
                vec![(TAG_VIDEO, sequence_header_payload(&sps, &baseline_pps()))]
            }
            Source::Looped(l) => l
                .headers
                .iter()
                .filter(|t| t.tag_type != TAG_SCRIPT)
                .map(|t| (t.tag_type, t.data.clone()))
                .collect(),
        }
    }

    pub fn width_height_fps_kbps(&self) -> (u32, u32, u32, u32) {
        match self {
            Source::Synthetic(s) => (s.width, s.height, s.fps, s.bitrate_kbps),
            Source::Looped(_) => (0, 0, 0, 0),
        }
    }

    /// Starts a session whose first message is due at media time `at_ms` (wall time
    /// since the publisher started): the next message is a keyframe.
    pub fn restart(&mut self, at_ms: u32) {
        match self {
            Source::Synthetic(s) => {
                let mut i = s.frame;
                while s.ts(i) < at_ms {
                    i += 1;
                }
                s.frame = i;
                s.session_start = i;
            }
            Source::Looped(l) => {
                l.index = 0;
                l.offset_ms = at_ms;
            }
        }
    }

    /// Media time (ms) at which the next message is due.
    pub fn next_due_ms(&self) -> u32 {
        match self {
            Source::Synthetic(s) => s.ts(s.frame),
            Source::Looped(l) => l.offset_ms + l.body[l.index].timestamp_ms,
        }
    }

    /// Produces the next message into `out`, stamping video with `now_us` and
    /// `sequence`; returns (type id, timestamp) and whether it was a video frame.
    pub fn emit(&mut self, now_us: u64, sequence: u64, out: &mut Vec<u8>) -> (u8, u32, bool) {
        let stamp = TimingStamp {
            publish_us: now_us,
            sequence,
        };
        match self {
            Source::Synthetic(s) => {
                let i = s.frame;
                let key = i % s.gop_frames == 0 || i == s.session_start;
                let size = if key { s.key_bytes } else { s.inter_bytes };
                if key {
                    s.last_key = i;
                }
                let frame_num = (i - s.last_key) as u32;
                let mbs = (s.width / 16) * (s.height / 16);
                synthetic_frame_into(out, key, frame_num, mbs, stamp, size);
                s.frame += 1;
                (TAG_VIDEO, s.ts(i), true)
            }
            Source::Looped(l) => {
                let tag = &l.body[l.index];
                let ts = l.offset_ms + tag.timestamp_ms;
                out.clear();
                let video = tag.tag_type == TAG_VIDEO;
                match (video, insert_timing_sei(&tag.data, l.length_size, stamp)) {
                    (true, Some(stamped)) => out.extend_from_slice(&stamped),
                    _ => out.extend_from_slice(&tag.data),
                }
                let kind = tag.tag_type;
                l.index += 1;
                if l.index == l.body.len() {
                    l.index = 0;
                    l.offset_ms += l.loop_ms;
                }
                (kind, ts, video)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use surge_wire::sei::find_timing_in_avcc;

    #[test]
    fn synthetic_bitrate_and_gop_match_the_request() {
        let mut src = Source::Synthetic(Synthetic::new(600, 30, 2.0, 320, 240));
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut keys = Vec::new();
        for seq in 0..120 {
            let (kind, ts, video) = src.emit(1, seq, &mut out);
            assert!(video && kind == TAG_VIDEO);
            bytes += out.len();
            if VideoHeader::parse(&out).expect("header").keyframe {
                keys.push(ts);
            }
            assert_eq!(
                find_timing_in_avcc(&out[5..], 4).map(|s| s.sequence),
                Some(seq)
            );
        }
        // Four seconds at 600 kbps, within 1%.
        let expected = 600_000 / 8 * 4;
        assert!(
            (bytes as f64 - expected as f64).abs() / (expected as f64) < 0.01,
            "{bytes}"
        );
        assert_eq!(keys, vec![0, 2000]);
        // A restart mid-GOP begins with a keyframe at the current media time.
        src.restart(5010);
        assert_eq!(src.next_due_ms(), 5033);
        src.emit(1, 0, &mut out);
        assert!(VideoHeader::parse(&out).expect("header").keyframe);
    }

    #[test]
    fn looped_file_stamps_video_and_wraps_timestamps() {
        let sps = baseline_sps(64, 64);
        let tags = vec![
            FlvTag {
                tag_type: TAG_SCRIPT,
                timestamp_ms: 0,
                data: vec![2, 0, 0],
            },
            FlvTag {
                tag_type: TAG_VIDEO,
                timestamp_ms: 0,
                data: sequence_header_payload(&sps, &baseline_pps()),
            },
            FlvTag {
                tag_type: TAG_VIDEO,
                timestamp_ms: 10,
                data: vec![0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65],
            },
            FlvTag {
                tag_type: TAG_AUDIO,
                timestamp_ms: 20,
                data: vec![0xaf, 1, 9],
            },
            FlvTag {
                tag_type: TAG_VIDEO,
                timestamp_ms: 50,
                data: vec![0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41],
            },
        ];
        let mut src = Source::Looped(Looped::new(tags).expect("usable file"));
        assert_eq!(src.headers().len(), 1);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for seq in 0..6 {
            let (kind, ts, video) = src.emit(7, seq, &mut out);
            if video {
                assert!(find_timing_in_avcc(&out[5..], 4).is_some());
            }
            seen.push((kind, ts));
        }
        // One pass is 40 ms of media plus one 40 ms frame interval.
        assert_eq!(
            seen,
            vec![(9, 0), (8, 10), (9, 40), (9, 80), (8, 90), (9, 120)]
        );
    }
}
