//! Just enough AMF0 for an RTMP client's commands: encode the values it sends, decode what
//! servers answer (bounded depth; unknown markers are errors). The relay's command sessions
//! decode with rml_amf0 behind [`crate::amf0_guard`].

#[derive(Debug, Clone, PartialEq)]
pub enum Amf {
    Number(f64),
    Bool(bool),
    String(String),
    Object(Vec<(String, Amf)>),
    Null,
    Undefined,
    Array(Vec<Amf>),
}

impl Amf {
    pub fn str(s: &str) -> Self {
        Amf::String(s.to_owned())
    }

    pub fn obj(props: &[(&str, Amf)]) -> Self {
        Amf::Object(
            props
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf::String(s) => Some(s),
            _ => None,
        }
    }

    /// A property of an object (or ECMA array).
    pub fn get(&self, key: &str) -> Option<&Amf> {
        match self {
            Amf::Object(props) => props.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

pub fn encode(values: &[Amf]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    for v in values {
        encode_value(v, &mut out);
    }
    out
}

fn encode_key(k: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(k.len() as u16).to_be_bytes());
    out.extend_from_slice(k.as_bytes());
}

fn encode_value(v: &Amf, out: &mut Vec<u8>) {
    match v {
        Amf::Number(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf::Bool(b) => out.extend_from_slice(&[1, *b as u8]),
        Amf::String(s) => {
            if s.len() > u16::MAX as usize {
                out.push(0x0c);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            } else {
                out.push(2);
                out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            }
            out.extend_from_slice(s.as_bytes());
        }
        Amf::Object(props) => {
            out.push(3);
            for (k, v) in props {
                encode_key(k, out);
                encode_value(v, out);
            }
            out.extend_from_slice(&[0, 0, 9]);
        }
        Amf::Null => out.push(5),
        Amf::Undefined => out.push(6),
        Amf::Array(items) => {
            out.push(0x0a);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for i in items {
                encode_value(i, out);
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmfError {
    #[error("truncated AMF0 value")]
    Truncated,
    #[error("unsupported AMF0 type marker {0:#04x}")]
    Unsupported(u8),
    #[error("AMF0 nesting too deep")]
    TooDeep,
}

/// Decodes every value in `data`.
pub fn decode_all(mut data: &[u8]) -> Result<Vec<Amf>, AmfError> {
    let mut out = Vec::new();
    while !data.is_empty() {
        out.push(decode_value(&mut data, 0)?);
    }
    Ok(out)
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], AmfError> {
    if data.len() < n {
        return Err(AmfError::Truncated);
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Ok(head)
}

fn decode_string(data: &mut &[u8], long: bool) -> Result<String, AmfError> {
    let len = if long {
        u32::from_be_bytes(take(data, 4)?.try_into().map_err(|_| AmfError::Truncated)?) as usize
    } else {
        u16::from_be_bytes(take(data, 2)?.try_into().map_err(|_| AmfError::Truncated)?) as usize
    };
    Ok(String::from_utf8_lossy(take(data, len)?).into_owned())
}

fn decode_props(data: &mut &[u8], depth: usize) -> Result<Vec<(String, Amf)>, AmfError> {
    let mut props = Vec::new();
    loop {
        let key = decode_string(data, false)?;
        if key.is_empty() && data.first() == Some(&9) {
            *data = &data[1..];
            return Ok(props);
        }
        let value = decode_value(data, depth + 1)?;
        props.push((key, value));
    }
}

fn decode_value(data: &mut &[u8], depth: usize) -> Result<Amf, AmfError> {
    if depth > 16 {
        return Err(AmfError::TooDeep);
    }
    let marker = take(data, 1)?[0];
    Ok(match marker {
        0 => Amf::Number(f64::from_be_bytes(
            take(data, 8)?.try_into().map_err(|_| AmfError::Truncated)?,
        )),
        1 => Amf::Bool(take(data, 1)?[0] != 0),
        2 => Amf::String(decode_string(data, false)?),
        0x0c => Amf::String(decode_string(data, true)?),
        3 => Amf::Object(decode_props(data, depth)?),
        5 => Amf::Null,
        6 => Amf::Undefined,
        8 => {
            take(data, 4)?; // ECMA array count: a hint only
            Amf::Object(decode_props(data, depth)?)
        }
        0x0a => {
            let n = u32::from_be_bytes(take(data, 4)?.try_into().map_err(|_| AmfError::Truncated)?);
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(decode_value(data, depth + 1)?);
            }
            Amf::Array(items)
        }
        0x0b => {
            take(data, 10)?; // date: f64 ms + i16 timezone
            Amf::Undefined
        }
        other => return Err(AmfError::Unsupported(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_command_values() {
        let values = vec![
            Amf::str("connect"),
            Amf::Number(1.0),
            Amf::obj(&[
                ("app", Amf::str("live")),
                ("fpad", Amf::Bool(false)),
                ("nested", Amf::obj(&[("x", Amf::Null)])),
            ]),
            Amf::Null,
            Amf::Array(vec![Amf::Number(2.5)]),
        ];
        let bytes = encode(&values);
        assert_eq!(decode_all(&bytes).expect("valid"), values);
        assert_eq!(values[2].get("app").and_then(Amf::as_str), Some("live"));
    }

    #[test]
    fn rejects_truncated_and_unknown() {
        let bytes = encode(&[Amf::str("onStatus")]);
        assert_eq!(decode_all(&bytes[..4]), Err(AmfError::Truncated));
        assert_eq!(decode_all(&[0x11]), Err(AmfError::Unsupported(0x11)));
        // ECMA array decodes as an object.
        let ecma = [
            8, 0, 0, 0, 1, 0, 1, b'a', 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0, 9,
        ];
        assert_eq!(
            decode_all(&ecma).expect("valid"),
            vec![Amf::Object(vec![("a".into(), Amf::Number(1.0))])]
        );
    }
}
