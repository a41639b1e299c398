//! Surge's wire formats, sans-IO (no sockets, no runtime): bytes in, messages out, and back.
//!
//! - [`chunk_reader`]: bounded RTMP chunk reader (interleaved chunk streams, extended
//!   timestamps, limits, a payload policy); [`chunk_writer`]: the matching writer.
//! - [`message`]: message type ids, protocol control and user control messages.
//! - [`ack`]: the acknowledgement window counter.
//! - [`amf0`]: AMF0 decoding and encoding (rml_amf0's values, decoding behind
//!   [`amf0_guard`], which bounds AMF0 before rml_amf0's recursive decoder sees it).
//! - [`metadata`]: `onMetaData` bodies of data messages.
//! - [`flv`]: FLV header and tags (files, HTTP-FLV, the runs of tags inside aggregate
//!   messages); [`flv_stream`]: an incremental tag parser keeping each tag's first bytes.
//! - [`media`]: keyframe / sequence header / Enhanced RTMP classification of payloads.
//! - [`avc`]: H.264 in FLV payloads (headers, synthetic frames); [`sei`]: the timing SEI
//!   that stamps frames with their send time.
//! - [`url`]: the scheme, host and port of `rtmp://` addresses.
//! - [`http_chunked`]: HTTP/1.1 chunked bodies (HTTP-FLV responses), decoded without copies.
//! - [`streams_api`]: the JSON of the relay's `GET /api/v1/streams` (relay writes, operator
//!   reads).

pub mod ack;
pub mod amf0;
pub mod amf0_guard;
pub mod avc;
pub mod chunk_reader;
pub mod chunk_writer;
pub mod flv;
pub mod flv_stream;
pub mod http_chunked;
pub mod media;
pub mod message;
pub mod metadata;
pub mod sei;
pub mod streams_api;
pub mod url;

pub use ack::AckCounter;
pub use chunk_reader::{ChunkError, ChunkLimits, ChunkReader, PayloadPolicy, RawMessage};
pub use chunk_writer::write_message;
