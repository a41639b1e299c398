//! Command messages the relay builds itself (onStatus), serialized once with rml_rtmp; and
//! stream names.

use std::collections::HashMap;

use bytes::Bytes;
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;

use crate::hub::OUTGOING_CHUNK_SIZE;

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

/// Stream names may carry a query (`key?token=...`); the relay keys streams by the name only.
pub fn stream_name(key: &str) -> &str {
    key.split('?').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

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
