//! AMF0, the one way into and out of it: values are rml_amf0's [`Amf0Value`] (the type
//! rml_rtmp's sessions speak), decoding is guarded and encoding checked.
//!
//! [`decode`] first walks the bytes with [`crate::amf0_guard`] (iterative, bounded depth and
//! value count, every marker known) and only then hands them to rml_amf0's recursive decoder,
//! so hostile input is an [`Amf0Error`], never a stack overflow. [`encode`] refuses what
//! rml_amf0 would write wrongly (object keys over 65535 bytes, or empty: an empty key is the
//! object-end marker, so the object would be cut there) or cannot write (long strings).

use std::collections::HashMap;
use std::io::Cursor;

pub use rml_amf0::Amf0Value;

use crate::amf0_guard::{self, Amf0GuardError};

/// Bounds on what [`decode_with`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amf0Limits {
    /// Objects, ECMA arrays and strict arrays nested deeper than this are refused.
    pub max_depth: usize,
    /// Payloads with more values than this (at any depth) are refused.
    pub max_values: usize,
}

impl Default for Amf0Limits {
    /// Far above any real command or `onMetaData`, far below a stack overflow.
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_values: 4096,
        }
    }
}

/// Why AMF0 could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum Amf0Error {
    /// The guard refused the bytes before decoding (too deep, too many values, truncated,
    /// unknown marker).
    #[error(transparent)]
    Refused(#[from] Amf0GuardError),
    /// rml_amf0 refused bytes the guard let through (invalid UTF-8, say).
    #[error(transparent)]
    Decode(#[from] rml_amf0::Amf0DeserializationError),
    #[error(transparent)]
    Encode(#[from] rml_amf0::Amf0SerializationError),
    /// rml_amf0 would truncate the key's length to 16 bits and write garbage.
    #[error("AMF0 object key of {0} bytes is longer than 65535")]
    KeyTooLong(usize),
    /// An empty key is how AMF0 ends an object: what followed it could not be read back.
    #[error("AMF0 object key is empty (the object-end marker)")]
    EmptyKey,
}

/// Decodes every value in `payload` within the default [`Amf0Limits`].
pub fn decode(payload: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    decode_with(payload, Amf0Limits::default())
}

/// Decodes every value in `payload`; the guard runs first, so what it refuses never reaches
/// rml_amf0.
pub fn decode_with(payload: &[u8], limits: Amf0Limits) -> Result<Vec<Amf0Value>, Amf0Error> {
    amf0_guard::check(payload, limits.max_depth, limits.max_values)?;
    Ok(rml_amf0::deserialize(&mut Cursor::new(payload))?)
}

/// Encodes `values` one after another (a command: name, transaction id, arguments).
pub fn encode(values: Vec<Amf0Value>) -> Result<Vec<u8>, Amf0Error> {
    let mut pending: Vec<&Amf0Value> = values.iter().collect();
    // Iterative: the values come from our own code, but a walk needs no stack either way.
    while let Some(v) = pending.pop() {
        match v {
            Amf0Value::Object(props) => {
                for (k, v) in props {
                    if k.len() > usize::from(u16::MAX) {
                        return Err(Amf0Error::KeyTooLong(k.len()));
                    }
                    if k.is_empty() {
                        return Err(Amf0Error::EmptyKey);
                    }
                    pending.push(v);
                }
            }
            Amf0Value::StrictArray(items) => pending.extend(items),
            _ => {}
        }
    }
    Ok(rml_amf0::serialize(&values)?)
}

/// An AMF0 string.
pub fn string(s: &str) -> Amf0Value {
    Amf0Value::Utf8String(s.to_owned())
}

/// An AMF0 object from `(key, value)` pairs (on the wire in no particular order).
pub fn object<'a>(props: impl IntoIterator<Item = (&'a str, Amf0Value)>) -> Amf0Value {
    Amf0Value::Object(
        props
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<HashMap<_, _>>(),
    )
}

/// Borrowing accessors (rml_amf0's own `get_*` consume the value).
pub trait Amf0ValueExt {
    fn as_number(&self) -> Option<f64>;
    fn as_str(&self) -> Option<&str>;
    /// A property of an object (ECMA arrays decode as objects too).
    fn property(&self, key: &str) -> Option<&Amf0Value>;
}

impl Amf0ValueExt for Amf0Value {
    fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::Utf8String(s) => Some(s),
            _ => None,
        }
    }

    fn property(&self, key: &str) -> Option<&Amf0Value> {
        match self {
            Amf0Value::Object(props) => props.get(key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_command_values() {
        let values = vec![
            string("connect"),
            Amf0Value::Number(1.0),
            object([
                ("app", string("live")),
                ("fpad", Amf0Value::Boolean(false)),
                ("nested", object([("x", Amf0Value::Null)])),
            ]),
            Amf0Value::Null,
            Amf0Value::Undefined,
            Amf0Value::StrictArray(vec![Amf0Value::Number(2.5)]),
        ];
        let bytes = encode(values.clone()).expect("encodable");
        assert_eq!(decode(&bytes).expect("valid"), values);
        assert_eq!(
            values[2].property("app").and_then(Amf0ValueExt::as_str),
            Some("live")
        );
        assert_eq!(values[1].as_number(), Some(1.0));
        assert_eq!(values[1].as_str(), None);
        assert_eq!(values[0].property("app"), None);
    }

    #[test]
    fn rejects_truncated_unknown_and_deep_input() {
        let bytes = encode(vec![string("onStatus")]).expect("encodable");
        assert!(matches!(
            decode(&bytes[..4]),
            Err(Amf0Error::Refused(Amf0GuardError::Truncated(_)))
        ));
        // 0x11 is AMF3's switch marker; 0x0b (date) and 0x0c (long string) are unknown too.
        for marker in [0x11, 0x0b, 0x0c] {
            assert!(matches!(
                decode(&[marker, 0]),
                Err(Amf0Error::Refused(Amf0GuardError::UnsupportedMarker { .. }))
            ));
        }
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            deep.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        assert!(matches!(
            decode(&deep),
            Err(Amf0Error::Refused(Amf0GuardError::TooDeep(16)))
        ));
        let limits = Amf0Limits {
            max_depth: 2,
            max_values: 100,
        };
        let nested = encode(vec![object([("a", object([("b", object([]))]))])]).expect("ok");
        assert!(matches!(
            decode_with(&nested, limits),
            Err(Amf0Error::Refused(Amf0GuardError::TooDeep(2)))
        ));
        // Well-formed for the guard, not UTF-8 for rml_amf0.
        assert!(matches!(
            decode(&[0x02, 0, 1, 0xff]),
            Err(Amf0Error::Decode(_))
        ));
    }

    #[test]
    fn ecma_arrays_decode_as_objects() {
        let ecma = [
            8, 0, 0, 0, 1, 0, 1, b'a', 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0, 9,
        ];
        assert_eq!(
            decode(&ecma).expect("valid"),
            vec![object([("a", Amf0Value::Number(1.0))])]
        );
    }

    #[test]
    fn refuses_to_encode_what_amf0_cannot_hold() {
        let long = "k".repeat(70_000);
        assert!(matches!(
            encode(vec![object([(
                "ok",
                object([(long.as_str(), Amf0Value::Null)])
            )])]),
            Err(Amf0Error::KeyTooLong(70_000))
        ));
        assert!(matches!(
            encode(vec![Amf0Value::StrictArray(vec![string(&long)])]),
            Err(Amf0Error::Encode(_))
        ));
        // Written, the empty key would end the object early and the rest would not decode.
        assert!(matches!(
            encode(vec![object([("", string("x"))])]),
            Err(Amf0Error::EmptyKey)
        ));
    }
}
