//! Surge's wire formats, sans-IO (no sockets, no runtime): bytes in, messages out, and back.
//!
//! - [`chunk_reader`]: bounded RTMP chunk reader (interleaved chunk streams, extended
//!   timestamps, limits, a payload policy); [`chunk_writer`]: the matching writer.
//! - [`message`]: message type ids, protocol control and user control messages.
//! - [`ack`]: the acknowledgement window counter.
//! - [`amf0`]: AMF0 values for a client's commands; [`amf0_guard`]: bounds AMF0 before a
//!   recursive decoder (rml_amf0, used by the relay's command sessions) sees it.
//! - [`metadata`]: `onMetaData` bodies of data messages.
//! - [`flv`]: FLV tags, including the runs of tags inside aggregate messages.

pub mod ack;
pub mod amf0;
pub mod amf0_guard;
pub mod chunk_reader;
pub mod chunk_writer;
pub mod flv;
pub mod message;
pub mod metadata;

pub use ack::AckCounter;
pub use chunk_reader::{ChunkError, ChunkLimits, ChunkReader, PayloadPolicy, RawMessage};
pub use chunk_writer::write_message;
