//! Checks a command message before rml_rtmp decodes it: bounded AMF0 structure (no deep
//! recursion, known markers only) and the `name, transaction id, object` shape the library
//! indexes without checking (fewer than three values panic it).

use std::io::Cursor;

use rml_rtmp::rml_amf0::{self, Amf0Value};

use surge_wire::amf0_guard;

const MAX_DEPTH: usize = 16;
const MAX_VALUES: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandGuardError {
    #[error("undecodable AMF0: {0}")]
    Structure(String),
    #[error("command needs a name, a transaction id and an object; got {0} value(s)")]
    Shape(usize),
}

pub fn check_command(data: &[u8]) -> Result<(), CommandGuardError> {
    amf0_guard::check(data, MAX_DEPTH, MAX_VALUES)
        .map_err(|e| CommandGuardError::Structure(e.to_string()))?;
    let values = rml_amf0::deserialize(&mut Cursor::new(data))
        .map_err(|e| CommandGuardError::Structure(format!("{e:?}")))?;
    match values.as_slice() {
        [Amf0Value::Utf8String(_), Amf0Value::Number(_), _, ..] => Ok(()),
        _ => Err(CommandGuardError::Shape(values.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_commands_and_refuses_short_or_odd_ones() {
        let ok = rml_amf0::serialize(&vec![
            Amf0Value::Utf8String("connect".into()),
            Amf0Value::Number(1.0),
            Amf0Value::Null,
        ])
        .expect("serialize");
        assert_eq!(check_command(&ok), Ok(()));
        let short =
            rml_amf0::serialize(&vec![Amf0Value::Utf8String("connect".into())]).expect("serialize");
        assert_eq!(check_command(&short), Err(CommandGuardError::Shape(1)));
        assert!(matches!(
            check_command(&[0x02, 0, 1, b'x', 0x0d]),
            Err(CommandGuardError::Structure(_))
        ));
        let deep: Vec<u8> = std::iter::repeat_n(0x03u8, 10_000)
            .flat_map(|m| [m, 0, 1, b'a'])
            .collect();
        assert!(check_command(&deep).is_err());
    }
}
