//! FLV: the file header, tags (the unit of HTTP-FLV and of RTMP aggregate messages).

use bytes::Bytes;

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
