//! What the chunk writer writes, the chunk reader reads back: any messages, any chunk size,
//! any split of the byte stream; and no byte stream makes the reader panic or exceed its limits.

use proptest::prelude::*;
use surge_wire::message::{MSG_AUDIO, MSG_VIDEO, set_chunk_size};
use surge_wire::{ChunkLimits, ChunkReader, PayloadPolicy, RawMessage, write_message};

#[derive(Debug, Clone)]
struct Msg {
    csid: u8,
    type_id: u8,
    msid: u32,
    timestamp: u32,
    payload: Vec<u8>,
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        3u8..64,
        prop_oneof![Just(MSG_AUDIO), Just(MSG_VIDEO), Just(18u8), Just(20u8)],
        0u32..4,
        // Both sides of the extended-timestamp mark.
        prop_oneof![0u32..100_000, 0x00ff_fff0u32..0x0100_0010, any::<u32>()],
        prop::collection::vec(any::<u8>(), 0..2000),
    )
        .prop_map(|(csid, type_id, msid, timestamp, payload)| Msg {
            csid,
            type_id,
            msid,
            timestamp,
            payload,
        })
}

fn write_all(chunk_size: u32, msgs: &[Msg]) -> Vec<u8> {
    let mut bytes = set_chunk_size(chunk_size);
    for m in msgs {
        write_message(
            &mut bytes,
            m.csid,
            m.type_id,
            m.msid,
            m.timestamp,
            &m.payload,
            chunk_size as usize,
        );
    }
    bytes
}

fn read_all(reader: &mut ChunkReader, bytes: &[u8], piece: usize) -> Vec<RawMessage> {
    let mut out = Vec::new();
    for p in bytes.chunks(piece) {
        reader.push(p);
        while let Some(m) = reader
            .next_message()
            .expect("what the writer wrote is valid")
        {
            out.push(m);
        }
    }
    out
}

proptest! {
    #[test]
    fn reads_what_the_writer_wrote(
        msgs in prop::collection::vec(msg(), 1..12),
        chunk_size in prop_oneof![Just(128u32), 1u32..300, Just(4096)],
        piece in 1usize..5000,
    ) {
        let bytes = write_all(chunk_size, &msgs);
        let mut reader = ChunkReader::new(ChunkLimits::default());
        let got = read_all(&mut reader, &bytes, piece);
        prop_assert_eq!(got.len(), msgs.len() + 1, "set chunk size + every message");
        prop_assert_eq!(reader.chunk_size(), chunk_size);
        for (m, g) in msgs.iter().zip(&got[1..]) {
            prop_assert_eq!(
                (g.chunk_stream_id, g.type_id, g.message_stream_id, g.timestamp),
                (u32::from(m.csid), m.type_id, m.msid, m.timestamp)
            );
            prop_assert_eq!(g.length as usize, m.payload.len());
            prop_assert_eq!(&g.payload[..], &m.payload[..]);
        }
    }

    #[test]
    fn media_prefix_keeps_the_first_bytes_of_media_only(
        msgs in prop::collection::vec(msg(), 1..12),
        prefix in 0usize..300,
        piece in 1usize..5000,
    ) {
        let bytes = write_all(128, &msgs);
        let mut reader =
            ChunkReader::with_policy(ChunkLimits::default(), PayloadPolicy::MediaPrefix(prefix));
        let got = read_all(&mut reader, &bytes, piece);
        prop_assert_eq!(got.len(), msgs.len() + 1);
        for (m, g) in msgs.iter().zip(&got[1..]) {
            let media = m.type_id == MSG_AUDIO || m.type_id == MSG_VIDEO;
            let kept = if media { m.payload.len().min(prefix) } else { m.payload.len() };
            prop_assert_eq!(g.length as usize, m.payload.len());
            prop_assert_eq!(&g.payload[..], &m.payload[..kept]);
        }
    }

    /// The chunk-level fuzz loop: valid streams with a few bytes flipped, inserted or cut, and
    /// plain noise, fed in random pieces. The reader never panics, and it never holds more
    /// partial payload than its limit.
    #[test]
    fn mutated_streams_never_panic_the_reader(
        msgs in prop::collection::vec(msg(), 1..8),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        noise in prop::collection::vec(any::<u8>(), 0..64),
        piece in 1usize..700,
    ) {
        let mut bytes = write_all(200, &msgs);
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] ^= byte | 1,
                1 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        bytes.extend(noise);
        let limits = ChunkLimits {
            max_chunk_size: 4096,
            max_message_len: 64 * 1024,
            max_chunk_streams: 8,
            max_pending_bytes: 128 * 1024,
        };
        let mut reader = ChunkReader::new(limits);
        'feed: for p in bytes.chunks(piece) {
            reader.push(p);
            loop {
                match reader.next_message() {
                    Ok(Some(m)) => prop_assert!(m.payload.len() <= 64 * 1024),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
}
