//! Small pure helpers for RTMP messages the puller handles itself (not through rml_rtmp):
//! protocol control messages it sends, user control events, metadata and aggregate messages.

use bytes::Bytes;

pub const MSG_ACK: u8 = 3;
pub const MSG_USER_CONTROL: u8 = 4;
pub const MSG_WINDOW_ACK_SIZE: u8 = 5;
pub const MSG_SET_PEER_BANDWIDTH: u8 = 6;
pub const MSG_AUDIO: u8 = 8;
pub const MSG_VIDEO: u8 = 9;
pub const MSG_AMF3_DATA: u8 = 15;
pub const MSG_AMF3_COMMAND: u8 = 17;
pub const MSG_AMF0_DATA: u8 = 18;
pub const MSG_AMF0_COMMAND: u8 = 20;
pub const MSG_AGGREGATE: u8 = 22;

/// Encodes a protocol control message as one self-contained chunk (type-0 header, chunk stream
/// 2, message stream 0). Used for acknowledgements and ping responses so they never depend on
/// the header-compression state of rml_rtmp's serializer (the body must fit one 128-byte chunk).
pub fn control_chunk(type_id: u8, body: &[u8]) -> Vec<u8> {
    debug_assert!(body.len() <= 128);
    let len = body.len() as u32;
    let mut v = Vec::with_capacity(12 + body.len());
    v.push(0x02); // fmt 0, csid 2
    v.extend_from_slice(&[0, 0, 0]); // timestamp
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// An Acknowledgement carrying the total bytes received (modulo 2^32).
pub fn acknowledgement(sequence_number: u32) -> Vec<u8> {
    control_chunk(MSG_ACK, &sequence_number.to_be_bytes())
}

/// A PingResponse (user control event 7) echoing the server's timestamp.
pub fn ping_response(timestamp: u32) -> Vec<u8> {
    let mut body = vec![0, 7];
    body.extend_from_slice(&timestamp.to_be_bytes());
    control_chunk(MSG_USER_CONTROL, &body)
}

/// A PingRequest (user control event 6); servers answer with a PingResponse.
pub fn ping_request(timestamp: u32) -> Vec<u8> {
    let mut body = vec![0, 6];
    body.extend_from_slice(&timestamp.to_be_bytes());
    control_chunk(MSG_USER_CONTROL, &body)
}

/// User control events the puller reacts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    PingRequest(u32),
    Other(u16),
}

pub fn parse_user_control(payload: &[u8]) -> Option<UserControl> {
    if payload.len() < 2 {
        return None;
    }
    let event = u16::from_be_bytes([payload[0], payload[1]]);
    let arg = || -> Option<u32> {
        let b = payload.get(2..6)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    Some(match event {
        0 => UserControl::StreamBegin(arg()?),
        1 => UserControl::StreamEof(arg()?),
        2 => UserControl::StreamDry(arg()?),
        6 => UserControl::PingRequest(arg()?),
        e => UserControl::Other(e),
    })
}

/// A 4-byte big-endian value (window sizes, chunk sizes).
pub fn read_u32(payload: &[u8]) -> Option<u32> {
    let b = payload.get(..4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn amf0_string_at(payload: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    if *payload.get(pos)? != 0x02 {
        return None;
    }
    let len = u16::from_be_bytes([*payload.get(pos + 1)?, *payload.get(pos + 2)?]) as usize;
    let s = payload.get(pos + 3..pos + 3 + len)?;
    Some((s, pos + 3 + len))
}

/// For an AMF0 data message, returns the `onMetaData` body (starting at the "onMetaData"
/// string, without any leading "@setDataFrame"); `None` for other data messages.
pub fn metadata_body(payload: &Bytes) -> Option<Bytes> {
    let (first, next) = amf0_string_at(payload, 0)?;
    let start = if first == b"@setDataFrame" {
        let (second, _) = amf0_string_at(payload, next)?;
        if second != b"onMetaData" {
            return None;
        }
        next
    } else if first == b"onMetaData" {
        0
    } else {
        return None;
    };
    Some(payload.slice(start..))
}

/// One sub-message of an aggregate message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubMessage {
    pub type_id: u8,
    pub timestamp: u32,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed aggregate message at byte {0}")]
pub struct AggregateError(pub usize);

/// Splits an aggregate message (a run of FLV tags) into messages. Sub-message timestamps are
/// rebased so the first one equals the aggregate's own timestamp.
pub fn split_aggregate(timestamp: u32, payload: &Bytes) -> Result<Vec<SubMessage>, AggregateError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    while pos < payload.len() {
        let h = payload.get(pos..pos + 11).ok_or(AggregateError(pos))?;
        let type_id = h[0] & 0x1f;
        let size = ((h[1] as usize) << 16) | ((h[2] as usize) << 8) | h[3] as usize;
        let ts = ((h[7] as u32) << 24) | ((h[4] as u32) << 16) | ((h[5] as u32) << 8) | h[6] as u32;
        let body_start = pos + 11;
        let body_end = body_start.checked_add(size).ok_or(AggregateError(pos))?;
        if body_end + 4 > payload.len() {
            return Err(AggregateError(pos));
        }
        let base = *first_ts.get_or_insert(ts);
        out.push(SubMessage {
            type_id,
            timestamp: timestamp.wrapping_add(ts.wrapping_sub(base)),
            payload: payload.slice(body_start..body_end),
        });
        pos = body_end + 4; // skip PreviousTagSize
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_chunks_are_self_contained() {
        assert_eq!(
            acknowledgement(0x0102_0304),
            vec![2, 0, 0, 0, 0, 0, 4, 3, 0, 0, 0, 0, 1, 2, 3, 4]
        );
        assert_eq!(
            ping_request(9),
            vec![2, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 6, 0, 0, 0, 9]
        );
        assert_eq!(
            ping_response(9),
            vec![2, 0, 0, 0, 0, 0, 6, 4, 0, 0, 0, 0, 0, 7, 0, 0, 0, 9]
        );
    }

    #[test]
    fn parses_user_control() {
        assert_eq!(
            parse_user_control(&[0, 1, 0, 0, 0, 1]),
            Some(UserControl::StreamEof(1))
        );
        assert_eq!(
            parse_user_control(&[0, 0, 0, 0, 0, 1]),
            Some(UserControl::StreamBegin(1))
        );
        assert_eq!(
            parse_user_control(&[0, 6, 0, 0, 1, 0]),
            Some(UserControl::PingRequest(256))
        );
        assert_eq!(parse_user_control(&[0, 31]), Some(UserControl::Other(31)));
        assert_eq!(parse_user_control(&[0, 6, 0]), None);
        assert_eq!(parse_user_control(&[]), None);
    }

    fn amf_str(s: &str) -> Vec<u8> {
        let mut v = vec![0x02];
        v.extend_from_slice(&(s.len() as u16).to_be_bytes());
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn metadata_with_and_without_set_data_frame() {
        let mut body = amf_str("onMetaData");
        body.extend_from_slice(&[0x03, 0, 0, 9]);
        let plain = Bytes::from(body.clone());
        assert_eq!(metadata_body(&plain), Some(plain.clone()));

        let mut wrapped = amf_str("@setDataFrame");
        wrapped.extend_from_slice(&body);
        assert_eq!(metadata_body(&Bytes::from(wrapped)), Some(plain));

        assert_eq!(
            metadata_body(&Bytes::from(amf_str("|RtmpSampleAccess"))),
            None
        );
        assert_eq!(metadata_body(&Bytes::from_static(&[0x02, 0xff])), None);
        assert_eq!(metadata_body(&Bytes::new()), None);
    }

    fn flv_tag(type_id: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![type_id];
        v.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        v.extend_from_slice(&ts.to_be_bytes()[1..]);
        v.push((ts >> 24) as u8);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(body);
        v.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        v
    }

    #[test]
    fn splits_aggregates() {
        let mut p = flv_tag(9, 5000, b"vid");
        p.extend(flv_tag(8, 5020, b"au"));
        let subs = split_aggregate(100, &Bytes::from(p.clone())).unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(
            (subs[0].type_id, subs[0].timestamp, &subs[0].payload[..]),
            (9, 100, &b"vid"[..])
        );
        assert_eq!(
            (subs[1].type_id, subs[1].timestamp, &subs[1].payload[..]),
            (8, 120, &b"au"[..])
        );
        p.truncate(p.len() - 3);
        assert!(split_aggregate(0, &Bytes::from(p)).is_err());
        assert_eq!(split_aggregate(0, &Bytes::new()), Ok(vec![]));
    }
}
