//! Unit tests of the chunk reader: headers of every format, interleaving, extended
//! timestamps, control messages and hostile headers.

use super::*;

fn type0(csid: u8, ts: u32, len: u32, type_id: u8, msid: u32) -> Vec<u8> {
    let mut v = vec![csid & 0x3f];
    let tsf = ts.min(EXTENDED_TIMESTAMP_MARK);
    v.extend_from_slice(&tsf.to_be_bytes()[1..]);
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&msid.to_le_bytes());
    if ts >= EXTENDED_TIMESTAMP_MARK {
        v.extend_from_slice(&ts.to_be_bytes());
    }
    v
}

fn reader() -> ChunkReader {
    ChunkReader::new(ChunkLimits::default())
}

fn drain(r: &mut ChunkReader) -> Vec<RawMessage> {
    let mut out = Vec::new();
    while let Some(m) = r.next_message().expect("valid input") {
        out.push(m);
    }
    out
}

#[test]
fn single_chunk_message() {
    let mut r = reader();
    let mut b = type0(4, 1000, 3, 9, 1);
    b.extend_from_slice(&[1, 2, 3]);
    r.push(&b);
    let m = drain(&mut r);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].timestamp, 1000);
    assert_eq!(m[0].type_id, 9);
    assert_eq!(m[0].message_stream_id, 1);
    assert_eq!(&m[0].payload[..], &[1, 2, 3]);
}

#[test]
fn byte_at_a_time_and_interleaved_streams() {
    // Video of 200 bytes in two chunks (128 + 72), with a whole audio message between.
    let mut b = type0(4, 40, 200, 9, 1);
    b.extend(std::iter::repeat_n(7u8, 128));
    b.extend(type0(5, 40, 4, 8, 1));
    b.extend_from_slice(&[0xaf, 1, 9, 9]);
    b.push(0xc4);
    b.extend(std::iter::repeat_n(7u8, 72));
    let mut r = reader();
    let mut got = Vec::new();
    for byte in b {
        r.push(&[byte]);
        got.extend(drain(&mut r));
    }
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].type_id, 8);
    assert_eq!(got[1].type_id, 9);
    assert_eq!(got[1].payload.len(), 200);
    assert!(got[1].payload.iter().all(|&x| x == 7));
}

#[test]
fn deltas_and_type3_new_message() {
    let mut b = type0(4, 100, 1, 9, 1);
    b.push(0);
    // Type 2: delta 33.
    b.extend_from_slice(&[0x84, 0, 0, 33, 0]);
    // Type 3 new message: delta repeats.
    b.extend_from_slice(&[0xc4, 0]);
    let mut r = reader();
    r.push(&b);
    let ts: Vec<u32> = drain(&mut r).iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![100, 133, 166]);
}

#[test]
fn extended_timestamp_with_and_without_repeat_on_type3() {
    let ts = 0x0100_0000;
    for repeat in [true, false] {
        let mut b = type0(4, ts, 200, 9, 1);
        b.extend(std::iter::repeat_n(1u8, 128));
        b.push(0xc4);
        if repeat {
            b.extend_from_slice(&(ts).to_be_bytes());
        }
        b.extend(std::iter::repeat_n(2u8, 72));
        let mut r = reader();
        r.push(&b);
        let m = drain(&mut r);
        assert_eq!(m.len(), 1, "repeat={repeat}");
        assert_eq!(m[0].timestamp, ts);
        assert_eq!(m[0].payload.len(), 200);
        assert_eq!(m[0].payload[199], 2);
    }
}

#[test]
fn set_chunk_size_applies_and_limits() {
    let mut b = type0(2, 0, 4, MSG_SET_CHUNK_SIZE, 0);
    b.extend_from_slice(&4096u32.to_be_bytes());
    b.extend(type0(4, 0, 300, 9, 1));
    b.extend(std::iter::repeat_n(3u8, 300));
    let mut r = reader();
    r.push(&b);
    let m = drain(&mut r);
    assert_eq!(m.len(), 2);
    assert_eq!(r.chunk_size(), 4096);

    let mut b = type0(2, 0, 4, MSG_SET_CHUNK_SIZE, 0);
    b.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let mut r = reader();
    r.push(&b);
    assert!(matches!(
        r.next_message(),
        Err(ChunkError::BadChunkSize(..))
    ));
}

#[test]
fn hostile_headers_are_errors() {
    let mut r = reader();
    r.push(&type0(4, 0, 0x00ff_fff0, 9, 1));
    assert!(matches!(
        r.next_message(),
        Err(ChunkError::MessageTooLong(..))
    ));

    let mut r = reader();
    r.push(&[0xc7, 1, 2, 3]);
    assert_eq!(r.next_message(), Err(ChunkError::MissingPreviousHeader(7)));

    let mut r = ChunkReader::new(ChunkLimits {
        max_chunk_streams: 2,
        ..ChunkLimits::default()
    });
    for csid in 3..6u8 {
        let mut b = type0(csid, 0, 1, 9, 1);
        b.push(0);
        r.push(&b);
    }
    let res: Result<Vec<_>, _> = std::iter::from_fn(|| r.next_message().transpose()).collect();
    assert_eq!(res, Err(ChunkError::TooManyChunkStreams(2)));
}

#[test]
fn abort_drops_partial_message() {
    let mut b = type0(4, 0, 200, 9, 1);
    b.extend(std::iter::repeat_n(1u8, 128));
    b.extend(type0(2, 0, 4, MSG_ABORT, 0));
    b.extend_from_slice(&4u32.to_be_bytes());
    b.extend(type0(4, 5, 1, 9, 1));
    b.push(9);
    let mut r = reader();
    r.push(&b);
    let m = drain(&mut r);
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].payload.len(), 1);
    assert_eq!(r.pending_bytes, 0);
}

#[test]
fn two_and_three_byte_chunk_stream_ids() {
    let mut b = vec![0x00, 10]; // csid 74
    b.extend_from_slice(&type0(0, 0, 1, 8, 1)[1..]);
    b.push(1);
    b.extend_from_slice(&[0x01, 1, 1]); // csid 64 + 1 + 256
    b.extend_from_slice(&type0(0, 0, 1, 8, 1)[1..]);
    b.push(2);
    let mut r = reader();
    r.push(&b);
    let m = drain(&mut r);
    assert_eq!(m[0].chunk_stream_id, 74);
    assert_eq!(m[1].chunk_stream_id, 321);
}
