//! A cheap structural check of AMF0 bytes before they reach a recursive decoder.
//!
//! rml_amf0 decodes nested objects recursively and rejects unknown markers only after
//! allocating; a hostile peer could nest objects deeply enough to overflow the stack. This
//! walker is iterative, knows every marker rml_amf0 accepts, and bounds depth and item count.

/// Why a payload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Amf0GuardError {
    #[error("AMF0 value truncated at byte {0}")]
    Truncated(usize),
    #[error("AMF0 marker 0x{marker:02x} at byte {at} is not supported")]
    UnsupportedMarker { marker: u8, at: usize },
    #[error("AMF0 nesting deeper than {0}")]
    TooDeep(usize),
    #[error("AMF0 payload has more than {0} values")]
    TooManyValues(usize),
}

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;

enum Frame {
    /// Inside an object or ECMA array: properties until an empty key + end marker.
    Object,
    /// Inside a strict array with this many values left.
    Array(u32),
}

/// Checks that `data` is a sequence of AMF0 values that rml_amf0 can decode safely.
pub fn check(data: &[u8], max_depth: usize, max_values: usize) -> Result<(), Amf0GuardError> {
    let mut pos = 0usize;
    let mut stack: Vec<Frame> = Vec::new();
    let mut values = 0usize;
    let need = |pos: usize, n: usize| -> Result<(), Amf0GuardError> {
        if data.len() < pos + n {
            Err(Amf0GuardError::Truncated(pos))
        } else {
            Ok(())
        }
    };
    loop {
        // Decide what comes next given the innermost container.
        match stack.last_mut() {
            None => {
                if pos >= data.len() {
                    return Ok(());
                }
            }
            Some(Frame::Array(0)) => {
                stack.pop();
                continue;
            }
            Some(Frame::Array(n)) => *n -= 1,
            Some(Frame::Object) => {
                need(pos, 2)?;
                let key_len = u16::from_be_bytes([data[pos], data[pos + 1]]) as usize;
                pos += 2;
                if key_len == 0 {
                    need(pos, 1)?;
                    if data[pos] != OBJECT_END {
                        return Err(Amf0GuardError::UnsupportedMarker {
                            marker: data[pos],
                            at: pos,
                        });
                    }
                    pos += 1;
                    stack.pop();
                    continue;
                }
                need(pos, key_len)?;
                pos += key_len;
            }
        }
        // One value.
        values += 1;
        if values > max_values {
            return Err(Amf0GuardError::TooManyValues(max_values));
        }
        need(pos, 1)?;
        let marker = data[pos];
        let at = pos;
        pos += 1;
        match marker {
            NUMBER => {
                need(pos, 8)?;
                pos += 8;
            }
            BOOLEAN => {
                need(pos, 1)?;
                pos += 1;
            }
            STRING => {
                need(pos, 2)?;
                let len = u16::from_be_bytes([data[pos], data[pos + 1]]) as usize;
                pos += 2;
                need(pos, len)?;
                pos += len;
            }
            NULL | UNDEFINED => {}
            OBJECT_END if stack.is_empty() => return Ok(()),
            OBJECT | ECMA_ARRAY | STRICT_ARRAY => {
                if stack.len() >= max_depth {
                    return Err(Amf0GuardError::TooDeep(max_depth));
                }
                if marker == OBJECT {
                    stack.push(Frame::Object);
                } else {
                    need(pos, 4)?;
                    let count = u32::from_be_bytes([
                        data[pos],
                        data[pos + 1],
                        data[pos + 2],
                        data[pos + 3],
                    ]);
                    pos += 4;
                    stack.push(if marker == ECMA_ARRAY {
                        Frame::Object
                    } else {
                        Frame::Array(count)
                    });
                }
            }
            _ => return Err(Amf0GuardError::UnsupportedMarker { marker, at }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_amf0::Amf0Value;
    use std::collections::HashMap;

    fn encode(values: Vec<Amf0Value>) -> Vec<u8> {
        rml_amf0::serialize(&values).unwrap()
    }

    #[test]
    fn accepts_typical_commands() {
        let mut props = HashMap::new();
        props.insert(
            "code".to_string(),
            Amf0Value::Utf8String("NetStream.Play.Start".into()),
        );
        props.insert("level".to_string(), Amf0Value::Utf8String("status".into()));
        let bytes = encode(vec![
            Amf0Value::Utf8String("onStatus".into()),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::Object(props),
            Amf0Value::StrictArray(vec![Amf0Value::Boolean(true), Amf0Value::Undefined]),
        ]);
        assert_eq!(check(&bytes, 8, 1000), Ok(()));
    }

    #[test]
    fn accepts_ecma_array_metadata() {
        // "onMetaData" + ECMA array {width: 640} as ffmpeg writes it.
        let mut b = vec![0x02, 0, 10];
        b.extend_from_slice(b"onMetaData");
        b.extend_from_slice(&[0x08, 0, 0, 0, 1, 0, 5]);
        b.extend_from_slice(b"width");
        b.push(0x00);
        b.extend_from_slice(&640f64.to_be_bytes());
        b.extend_from_slice(&[0, 0, 9]);
        assert_eq!(check(&b, 8, 1000), Ok(()));
    }

    #[test]
    fn rejects_deep_nesting_truncation_and_unknown_markers() {
        let mut deep = vec![];
        for _ in 0..100 {
            deep.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        assert_eq!(check(&deep, 16, 10_000), Err(Amf0GuardError::TooDeep(16)));
        assert!(matches!(
            check(&[0x02, 0, 9, b'a'], 8, 10),
            Err(Amf0GuardError::Truncated(_))
        ));
        assert!(matches!(
            check(&[0x11, 0], 8, 10),
            Err(Amf0GuardError::UnsupportedMarker { marker: 0x11, .. })
        ));
        // A strict array claiming four billion values ends at the data's end.
        assert!(matches!(
            check(&[0x0a, 0xff, 0xff, 0xff, 0xff], 8, 10),
            Err(Amf0GuardError::Truncated(_))
        ));
        let many: Vec<u8> = std::iter::repeat_n(0x05, 50).collect();
        assert_eq!(check(&many, 8, 10), Err(Amf0GuardError::TooManyValues(10)));
    }
}
