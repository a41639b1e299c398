//! Any body, cut into chunks of any sizes and written with any of the framing HTTP allows,
//! then fed to the decoder in pieces of any sizes, decodes back to itself; and no byte
//! string makes the decoder panic.

use proptest::prelude::*;
use surge_wire::http_chunked::ChunkedDecoder;

/// How one chunk-size line is written.
#[derive(Debug, Clone)]
struct SizeStyle {
    upper: bool,
    leading_zeros: usize,
    extension: Option<String>,
}

fn size_style() -> impl Strategy<Value = SizeStyle> {
    (
        any::<bool>(),
        0usize..4,
        proptest::option::of("[a-z]{1,8}(=[a-z0-9]{1,8})?"),
    )
        .prop_map(|(upper, leading_zeros, extension)| SizeStyle {
            upper,
            leading_zeros,
            extension,
        })
}

fn size_line(size: usize, style: &SizeStyle) -> Vec<u8> {
    let digits = if style.upper {
        format!("{size:X}")
    } else {
        format!("{size:x}")
    };
    let mut line = "0".repeat(style.leading_zeros) + &digits;
    if let Some(ext) = &style.extension {
        line.push(';');
        line.push_str(ext);
    }
    line.push_str("\r\n");
    line.into_bytes()
}

/// `body` cut at `cuts`, framed as a chunked body with `trailers`.
fn encode(body: &[u8], cuts: &[usize], styles: &[SizeStyle], trailers: &[String]) -> Vec<u8> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    points.push(0);
    points.push(body.len());
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    for (i, w) in points.windows(2).enumerate() {
        let chunk = &body[w[0]..w[1]];
        out.extend(size_line(chunk.len(), &styles[i % styles.len()]));
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend(size_line(0, &styles[0]));
    for t in trailers {
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn split_points(len: usize, pieces: &[usize]) -> Vec<usize> {
    let mut points: Vec<usize> = pieces.iter().map(|p| p % (len + 1)).collect();
    points.push(0);
    points.push(len);
    points.sort_unstable();
    points.dedup();
    points
}

proptest! {
    #[test]
    fn decodes_what_was_encoded_fed_in_any_pieces(
        body in prop::collection::vec(any::<u8>(), 0..4000),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        styles in prop::collection::vec(size_style(), 1..4),
        trailers in prop::collection::vec("[A-Za-z-]{1,10}: [ -~]{0,20}", 0..3),
        pieces in prop::collection::vec(any::<usize>(), 0..30),
    ) {
        let encoded = encode(&body, &cuts, &styles, &trailers);
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let points = split_points(encoded.len(), &pieces);
        for w in points.windows(2) {
            // Done only once the final CRLF arrived.
            prop_assert!(!d.is_done());
            d.decode_to_vec(&encoded[w[0]..w[1]], &mut out).expect("valid framing");
        }
        prop_assert!(d.is_done());
        prop_assert_eq!(out, body);
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panicking(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        pieces in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut d = ChunkedDecoder::with_max_line(64);
        let mut out = Vec::new();
        let points = split_points(bytes.len(), &pieces);
        for w in points.windows(2) {
            if d.decode_to_vec(&bytes[w[0]..w[1]], &mut out).is_err() {
                break;
            }
        }
        prop_assert!(out.len() <= bytes.len());
    }

    #[test]
    fn mutated_bodies_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..500),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let styles = [SizeStyle { upper: false, leading_zeros: 0, extension: None }];
        let mut encoded = encode(&body, &cuts, &styles, &[]);
        for (at, byte) in flips {
            let i = at.index(encoded.len());
            encoded[i] = byte;
        }
        let mut out = Vec::new();
        let _ = ChunkedDecoder::new().decode_to_vec(&encoded, &mut out);
        prop_assert!(out.len() <= encoded.len());
    }
}
