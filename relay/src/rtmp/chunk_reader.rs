//! The chunk reader lives in `surge_wire`; this path stays only until every module imports it
//! from there.
pub use surge_wire::chunk_reader::{ChunkError, ChunkLimits, ChunkReader, RawMessage};
