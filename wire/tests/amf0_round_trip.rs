//! What `amf0::encode` writes, `amf0::decode` reads back; and no byte string makes the
//! guarded decoder panic: deep nesting and unknown markers are errors.

use proptest::prelude::*;
use surge_wire::amf0::{self, Amf0Error, Amf0Value};
use surge_wire::amf0_guard::Amf0GuardError;

fn value() -> impl Strategy<Value = Amf0Value> {
    let leaf = prop_oneof![
        // NaN is not equal to itself; every other number round-trips bit for bit.
        any::<f64>()
            .prop_filter("NaN", |n| !n.is_nan())
            .prop_map(Amf0Value::Number),
        any::<bool>().prop_map(Amf0Value::Boolean),
        ".{0,40}".prop_map(Amf0Value::Utf8String),
        Just(Amf0Value::Null),
        Just(Amf0Value::Undefined),
    ];
    // Depth 6 stays under the default limit of 16.
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            // An empty key is the end-of-object marker, so keys are never empty.
            prop::collection::hash_map(".{1,12}", inner.clone(), 0..6).prop_map(Amf0Value::Object),
            prop::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
        ]
    })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(values in prop::collection::vec(value(), 0..8)) {
        let bytes = amf0::encode(values.clone()).expect("encodable");
        prop_assert_eq!(amf0::decode(&bytes).expect("decodable"), values);
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = amf0::decode(&bytes);
    }

    #[test]
    fn any_truncation_of_valid_input_is_handled(values in prop::collection::vec(value(), 1..4), cut in any::<prop::sample::Index>()) {
        let bytes = amf0::encode(values).expect("encodable");
        let _ = amf0::decode(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn deep_nesting_is_refused(depth in 17usize..5000, strict in any::<bool>()) {
        let mut bytes = Vec::new();
        for _ in 0..depth {
            if strict {
                bytes.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
            } else {
                bytes.extend_from_slice(&[0x03, 0, 1, b'a']);
            }
        }
        bytes.push(0x05);
        prop_assert!(matches!(
            amf0::decode(&bytes),
            Err(Amf0Error::Refused(Amf0GuardError::TooDeep(16)))
        ));
    }

    #[test]
    fn unknown_markers_are_refused(
        prefix in prop::collection::vec(value(), 0..3),
        marker in prop_oneof![4u8..=4, 7u8..=7, 0x0bu8..=0xff],
    ) {
        let mut bytes = amf0::encode(prefix).expect("encodable");
        bytes.extend_from_slice(&[marker, 0, 0, 0, 0, 0, 0, 0, 0]);
        let refused = matches!(
            amf0::decode(&bytes),
            Err(Amf0Error::Refused(Amf0GuardError::UnsupportedMarker { .. }))
        );
        prop_assert!(refused);
    }
}
