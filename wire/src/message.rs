//! RTMP message type ids, and the protocol control and user control messages Surge builds
//! and parses itself (not through rml_rtmp).

use crate::chunk_writer::write_message;

pub const MSG_SET_CHUNK_SIZE: u8 = 1;
pub const MSG_ABORT: u8 = 2;
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

/// Chunk stream of protocol control messages.
pub const CSID_CONTROL: u8 = 2;

/// User control event types.
const EVENT_STREAM_BEGIN: u16 = 0;
const EVENT_STREAM_EOF: u16 = 1;
const EVENT_STREAM_DRY: u16 = 2;
const EVENT_SET_BUFFER_LENGTH: u16 = 3;
const EVENT_PING_REQUEST: u16 = 6;
const EVENT_PING_RESPONSE: u16 = 7;

/// Encodes a protocol control message as one self-contained chunk (type-0 header, chunk stream
/// 2, message stream 0, timestamp 0). Self-contained so it never depends on the
/// header-compression state of another serializer; the body fits one 128-byte chunk.
pub fn control_chunk(type_id: u8, body: &[u8]) -> Vec<u8> {
    debug_assert!(body.len() <= 128);
    let mut v = Vec::with_capacity(12 + body.len());
    write_message(&mut v, CSID_CONTROL, type_id, 0, 0, body, 128);
    v
}

/// Set Chunk Size: the sender's chunks carry up to `size` bytes from now on.
pub fn set_chunk_size(size: u32) -> Vec<u8> {
    control_chunk(MSG_SET_CHUNK_SIZE, &size.to_be_bytes())
}

/// Window Acknowledgement Size: acknowledge every `size` bytes received.
pub fn window_ack_size(size: u32) -> Vec<u8> {
    control_chunk(MSG_WINDOW_ACK_SIZE, &size.to_be_bytes())
}

fn user_control(event: u16, args: &[u32]) -> Vec<u8> {
    let mut body = event.to_be_bytes().to_vec();
    for a in args {
        body.extend_from_slice(&a.to_be_bytes());
    }
    control_chunk(MSG_USER_CONTROL, &body)
}

/// Set Buffer Length (user control event 3): the client buffers `ms` of `stream_id`.
pub fn set_buffer_length(stream_id: u32, ms: u32) -> Vec<u8> {
    user_control(EVENT_SET_BUFFER_LENGTH, &[stream_id, ms])
}

/// An Acknowledgement carrying the total bytes received (modulo 2^32).
pub fn acknowledgement(sequence_number: u32) -> Vec<u8> {
    control_chunk(MSG_ACK, &sequence_number.to_be_bytes())
}

/// A PingResponse (user control event 7) echoing the server's timestamp.
pub fn ping_response(timestamp: u32) -> Vec<u8> {
    user_control(EVENT_PING_RESPONSE, &[timestamp])
}

/// A PingRequest (user control event 6); servers answer with a PingResponse.
pub fn ping_request(timestamp: u32) -> Vec<u8> {
    user_control(EVENT_PING_REQUEST, &[timestamp])
}

/// User control events a client reacts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    PingRequest(u32),
    /// The answer to a PingRequest, echoing its timestamp.
    PingResponse(u32),
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
        EVENT_STREAM_BEGIN => UserControl::StreamBegin(arg()?),
        EVENT_STREAM_EOF => UserControl::StreamEof(arg()?),
        EVENT_STREAM_DRY => UserControl::StreamDry(arg()?),
        EVENT_PING_REQUEST => UserControl::PingRequest(arg()?),
        EVENT_PING_RESPONSE => UserControl::PingResponse(arg()?),
        e => UserControl::Other(e),
    })
}

/// A 4-byte big-endian value (window sizes, chunk sizes).
pub fn read_u32(payload: &[u8]) -> Option<u32> {
    let b = payload.get(..4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
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
        assert_eq!(
            parse_user_control(&[0, 7, 0, 0, 1, 1]),
            Some(UserControl::PingResponse(257))
        );
        assert_eq!(parse_user_control(&[0, 31]), Some(UserControl::Other(31)));
        assert_eq!(parse_user_control(&[0, 6, 0]), None);
        assert_eq!(parse_user_control(&[]), None);
    }
}
