//! Small pure builders and parsers for RTMP messages the relay handles itself.

use std::collections::HashMap;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;

use crate::hub::OUTGOING_CHUNK_SIZE;

/// AMF0 string `@setDataFrame` as it appears on the wire (marker, length, bytes).
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";
const ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";

/// The `onMetaData` body of a data message, without any `@setDataFrame` prefix.
/// Other data messages (cue points, ...) yield `None`.
pub fn metadata_body(payload: &Bytes) -> Option<Bytes> {
    let body = if payload.starts_with(SET_DATA_FRAME) {
        payload.slice(SET_DATA_FRAME.len()..)
    } else {
        payload.clone()
    };
    body.starts_with(ON_METADATA).then_some(body)
}

/// A type-0 serialized packet, safe to put between packets of another serializer.
fn serialize_standalone(msg: RtmpMessage, stream_id: u32) -> Option<Bytes> {
    let mut ser = ChunkSerializer::new();
    ser.set_max_chunk_size(OUTGOING_CHUNK_SIZE, RtmpTimestamp::new(0))
        .ok()?;
    let payload = msg
        .into_message_payload(RtmpTimestamp::new(0), stream_id)
        .ok()?;
    ser.serialize(&payload, true, false)
        .ok()
        .map(|p| Bytes::from(p.bytes))
}

/// `onStatus(NetStream.Play.UnpublishNotify)` for a viewer on `stream_id`.
pub fn unpublish_notify(stream_id: u32, stream: &str) -> Option<Bytes> {
    on_status(
        stream_id,
        "status",
        "NetStream.Play.UnpublishNotify",
        &format!("{stream} is now unpublished."),
    )
}

/// `onStatus({level, code, description})` on `stream_id`.
pub fn on_status(stream_id: u32, level: &str, code: &str, description: &str) -> Option<Bytes> {
    let mut info = HashMap::new();
    info.insert("level".to_string(), Amf0Value::Utf8String(level.into()));
    info.insert("code".to_string(), Amf0Value::Utf8String(code.into()));
    info.insert(
        "description".to_string(),
        Amf0Value::Utf8String(description.into()),
    );
    serialize_standalone(
        RtmpMessage::Amf0Command {
            command_name: "onStatus".into(),
            transaction_id: 0.0,
            command_object: Amf0Value::Null,
            additional_arguments: vec![Amf0Value::Object(info)],
        },
        stream_id,
    )
}

/// Acknowledgement of `sequence_number` bytes received.
pub fn acknowledgement(sequence_number: u32) -> Option<Bytes> {
    serialize_standalone(RtmpMessage::Acknowledgement { sequence_number }, 0)
}

/// Stream names may carry a query (`key?token=...`); the relay keys streams by the name only.
pub fn stream_name(key: &str) -> &str {
    key.split('?').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn unpublish_notify_is_type0_on_stream() {
        let p = unpublish_notify(1, "cam").expect("packet");
        assert_eq!(p[0] >> 6, 0);
        assert_eq!(p[7], 20); // AMF0 command
        assert_eq!(&p[8..12], &1u32.to_le_bytes());
        let s = String::from_utf8_lossy(&p);
        assert!(s.contains("NetStream.Play.UnpublishNotify"));
    }

    #[test]
    fn names_drop_query() {
        assert_eq!(stream_name("cam?token=1"), "cam");
        assert_eq!(stream_name("cam"), "cam");
    }
}
