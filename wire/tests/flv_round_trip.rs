//! What the FLV writer writes, the whole-file parser, the incremental parser (at any split)
//! and the aggregate splitter read back.

use bytes::Bytes;
use proptest::prelude::*;
use surge_wire::flv::{
    FILE_HEADER, FlvTag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO, parse_flv, split_aggregate, write_flv,
};
use surge_wire::flv_stream::FlvStreamParser;

fn tags() -> impl Strategy<Value = Vec<FlvTag>> {
    let tag = (
        prop_oneof![Just(TAG_AUDIO), Just(TAG_VIDEO), Just(TAG_SCRIPT)],
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(tag_type, timestamp_ms, data)| FlvTag {
            tag_type,
            timestamp_ms,
            data,
        });
    // At least one video tag: a file without video is refused.
    (prop::collection::vec(tag, 0..10), any::<u32>()).prop_map(|(mut tags, ts)| {
        tags.push(FlvTag {
            tag_type: TAG_VIDEO,
            timestamp_ms: ts,
            data: vec![0x17, 1],
        });
        tags
    })
}

proptest! {
    #[test]
    fn files_round_trip(tags in tags(), piece in 1usize..2000, cap in 0usize..300) {
        let bytes = write_flv(&tags);
        prop_assert_eq!(parse_flv(&bytes).expect("valid"), tags.clone());

        let mut parser = FlvStreamParser::new(cap);
        let mut seen = Vec::new();
        for p in bytes.chunks(piece) {
            parser
                .feed(p, &mut |m| seen.push((m.type_id, m.timestamp_ms, m.len, m.prefix.to_vec())))
                .expect("valid");
        }
        let want: Vec<_> = tags
            .iter()
            .map(|t| {
                let kept = t.data.len().min(cap);
                (t.tag_type, t.timestamp_ms, t.data.len(), t.data[..kept].to_vec())
            })
            .collect();
        prop_assert_eq!(seen, want);
    }

    #[test]
    fn aggregates_split_into_their_tags(tags in tags(), at in any::<u32>()) {
        let body = Bytes::from(write_flv(&tags)[FILE_HEADER.len()..].to_vec());
        let subs = split_aggregate(at, &body).expect("valid");
        prop_assert_eq!(subs.len(), tags.len());
        let base = tags[0].timestamp_ms;
        for (s, t) in subs.iter().zip(&tags) {
            prop_assert_eq!(s.type_id, t.tag_type);
            prop_assert_eq!(s.timestamp, at.wrapping_add(t.timestamp_ms.wrapping_sub(base)));
            prop_assert_eq!(&s.payload[..], &t.data[..]);
        }
    }
}
