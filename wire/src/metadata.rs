//! `onMetaData` data messages: the body the relay stores and forwards.

use bytes::Bytes;

/// AMF0 string `@setDataFrame` as it appears on the wire (marker, length, bytes).
pub const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";
/// AMF0 string `onMetaData` as it appears on the wire.
pub const ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";

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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn strips_set_data_frame() {
        let mut v = SET_DATA_FRAME.to_vec();
        v.extend_from_slice(ON_METADATA);
        v.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 9]);
        let body = metadata_body(&Bytes::from(v)).expect("metadata");
        assert!(body.starts_with(ON_METADATA));
        let direct = metadata_body(&body).expect("plain onMetaData");
        assert_eq!(direct, body);
        assert!(metadata_body(&Bytes::from_static(b"\x02\x00\x0aonCuePoint")).is_none());
    }
}
