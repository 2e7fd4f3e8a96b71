//! A small, strict CBOR (RFC 8949) decoder for the subset WebAuthn uses.
//!
//! Accepted: major types 0 (unsigned), 1 (negative), 2 (byte string), 3 (text string),
//! 4 (array), 5 (map) with definite lengths, and the simple values false, true and null.
//! Refused: indefinite lengths, tags, floats and other simple values, nesting deeper than
//! [`MAX_DEPTH`], duplicate map keys, invalid UTF-8 in text strings, and any declared length
//! larger than the input that is left (checked before anything is allocated).
//!
//! Values borrow from the input: decoding never copies a byte or text string.

use crate::Error;

/// Deepest nesting of arrays and maps accepted (the top-level value is depth 1).
pub const MAX_DEPTH: usize = 16;

/// One decoded CBOR data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// An integer, major type 0 or 1 (range -2^64 ..= 2^64-1).
    Int(i128),
    /// A byte string.
    Bytes(&'a [u8]),
    /// A UTF-8 text string.
    Text(&'a str),
    /// An array of items.
    Array(Vec<Value<'a>>),
    /// A map, in the order the pairs were encoded (keys are unique).
    Map(Vec<(Value<'a>, Value<'a>)>),
    /// `false` or `true`.
    Bool(bool),
    /// `null`.
    Null,
}

impl<'a> Value<'a> {
    /// The entries when this is a map.
    pub fn as_map(&self) -> Option<&[(Value<'a>, Value<'a>)]> {
        match self {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The integer when this is an integer that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => i64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// The bytes when this is a byte string.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The text when this is a text string.
    pub fn as_text(&self) -> Option<&'a str> {
        match self {
            Value::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The items when this is an array.
    pub fn as_array(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Looks a key up in a map (None when this is not a map or the key is absent).
    pub fn get(&self, key: &Value<'_>) -> Option<&Value<'a>> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Looks an integer key up in a map (COSE keys use integer labels).
    pub fn get_int(&self, key: i64) -> Option<&Value<'a>> {
        self.get(&Value::Int(i128::from(key)))
    }

    /// Looks a text key up in a map.
    pub fn get_text(&self, key: &str) -> Option<&Value<'a>> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v)
    }
}

/// Decodes one data item at the start of `input`; returns it and the number of bytes it took.
/// Bytes after the item are left for the caller (authenticator data puts extensions after
/// the credential key).
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), Error> {
    let mut reader = Reader { input, pos: 0 };
    let value = reader.item(1)?;
    Ok((value, reader.pos))
}

/// Decodes `input` as exactly one data item: trailing bytes are refused.
pub fn decode_exact(input: &[u8]) -> Result<Value<'_>, Error> {
    let (value, used) = decode_prefix(input)?;
    if used != input.len() {
        return Err(Error::Malformed("CBOR data has trailing bytes"));
    }
    Ok(value)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.input.len().saturating_sub(self.pos)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self
            .input
            .get(self.pos)
            .ok_or(Error::Malformed("CBOR data ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], Error> {
        let len = usize::try_from(len).map_err(|_| Error::Malformed("CBOR length too large"))?;
        if len > self.remaining() {
            return Err(Error::Malformed("CBOR length exceeds the data"));
        }
        let start = self.pos;
        self.pos += len;
        self.input
            .get(start..self.pos)
            .ok_or(Error::Malformed("CBOR data ends early"))
    }

    /// Reads the argument that follows an initial byte's additional information.
    fn argument(&mut self, info: u8) -> Result<u64, Error> {
        let width = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Err(Error::Malformed("CBOR indefinite lengths are not accepted")),
            _ => return Err(Error::Malformed("CBOR reserved additional information")),
        };
        let bytes = self.take(width)?;
        Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn item(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::Malformed("CBOR nesting is too deep"));
        }
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        match major {
            0 => Ok(Value::Int(i128::from(self.argument(info)?))),
            1 => Ok(Value::Int(-1 - i128::from(self.argument(info)?))),
            2 => {
                let len = self.argument(info)?;
                Ok(Value::Bytes(self.take(len)?))
            }
            3 => {
                let len = self.argument(info)?;
                let raw = self.take(len)?;
                let text = std::str::from_utf8(raw)
                    .map_err(|_| Error::Malformed("CBOR text string is not UTF-8"))?;
                Ok(Value::Text(text))
            }
            4 => {
                let count = self.argument(info)?;
                // Every item takes at least one byte: a larger count cannot be honest.
                if count > self.remaining() as u64 {
                    return Err(Error::Malformed("CBOR array length exceeds the data"));
                }
                let mut items = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
                for _ in 0..count {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(items))
            }
            5 => {
                let count = self.argument(info)?;
                // Every pair takes at least two bytes.
                if count.saturating_mul(2) > self.remaining() as u64 {
                    return Err(Error::Malformed("CBOR map length exceeds the data"));
                }
                let mut entries: Vec<(Value<'a>, Value<'a>)> =
                    Vec::with_capacity(usize::try_from(count).unwrap_or(0));
                for _ in 0..count {
                    let key = self.item(depth + 1)?;
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(Error::Malformed("CBOR map has a duplicate key"));
                    }
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
            6 => Err(Error::Malformed("CBOR tags are not accepted")),
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                _ => Err(Error::Malformed(
                    "CBOR floats and simple values are not accepted",
                )),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn decodes_scalars() {
        assert_eq!(decode_exact(&[0x00]).ok(), Some(Value::Int(0)));
        assert_eq!(decode_exact(&[0x17]).ok(), Some(Value::Int(23)));
        assert_eq!(decode_exact(&[0x18, 0x18]).ok(), Some(Value::Int(24)));
        assert_eq!(
            decode_exact(&[0x19, 0x01, 0x00]).ok(),
            Some(Value::Int(256))
        );
        assert_eq!(decode_exact(&[0x20]).ok(), Some(Value::Int(-1)));
        assert_eq!(decode_exact(&[0x26]).ok(), Some(Value::Int(-7)));
        assert_eq!(
            decode_exact(&[0x39, 0x01, 0x00]).ok(),
            Some(Value::Int(-257))
        );
        assert_eq!(
            decode_exact(&[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).ok(),
            Some(Value::Int(-1 - i128::from(u64::MAX)))
        );
        assert_eq!(decode_exact(&[0xf4]).ok(), Some(Value::Bool(false)));
        assert_eq!(decode_exact(&[0xf5]).ok(), Some(Value::Bool(true)));
        assert_eq!(decode_exact(&[0xf6]).ok(), Some(Value::Null));
        assert_eq!(
            decode_exact(&[0x43, 1, 2, 3]).ok(),
            Some(Value::Bytes(&[1, 2, 3]))
        );
        assert_eq!(decode_exact(b"\x63fmt").ok(), Some(Value::Text("fmt")));
    }

    #[test]
    fn decodes_nested_map_and_reports_consumed() {
        // {"a": [1, -2], 3: h'ff'} followed by two stray bytes.
        let data = [
            0xa2, 0x61, b'a', 0x82, 0x01, 0x21, 0x03, 0x41, 0xff, 0xaa, 0xbb,
        ];
        let (value, used) = decode_prefix(&data).unwrap();
        assert_eq!(used, 9);
        assert_eq!(
            value.get_text("a").and_then(Value::as_array),
            Some(&[Value::Int(1), Value::Int(-2)][..])
        );
        assert_eq!(
            value.get_int(3).and_then(Value::as_bytes),
            Some(&[0xff][..])
        );
        assert!(matches!(decode_exact(&data), Err(Error::Malformed(_))));
    }

    #[test]
    fn refuses_truncated_and_garbage() {
        for bad in [
            &[][..],
            &[0x18],
            &[0x19, 0x01],
            &[0x43, 1, 2],
            &[0x82, 0x01],
            &[0xa1, 0x01],
            &[0x63, 0xff, 0xfe, 0xfd],
            &[0x1c],
            &[0xf7],
            &[0xf9, 0x3c, 0x00],
            &[0xc2, 0x41, 0x01],
            &[0x5f, 0x41, 0x01, 0xff],
            &[0x9f, 0xff],
            &[0xa2, 0x01, 0x01, 0x01, 0x02],
        ] {
            assert!(
                matches!(decode_exact(bad), Err(Error::Malformed(_))),
                "accepted {bad:02x?}"
            );
        }
    }

    #[test]
    fn refuses_nesting_bomb() {
        let mut ok = vec![0x81; MAX_DEPTH - 1];
        ok.push(0x00);
        assert!(decode_exact(&ok).is_ok());
        let mut bomb = vec![0x81; MAX_DEPTH];
        bomb.push(0x00);
        assert!(matches!(decode_exact(&bomb), Err(Error::Malformed(_))));
        let deep = vec![0x81; 100_000];
        assert!(matches!(decode_exact(&deep), Err(Error::Malformed(_))));
    }

    #[test]
    fn refuses_huge_declared_lengths_before_allocating() {
        let huge_bytes = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(matches!(
            decode_exact(&huge_bytes),
            Err(Error::Malformed(_))
        ));
        let huge_array = [0x9b, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(matches!(
            decode_exact(&huge_array),
            Err(Error::Malformed(_))
        ));
        let huge_map = [0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];
        assert!(matches!(decode_exact(&huge_map), Err(Error::Malformed(_))));
        // A map of two pairs needs at least four bytes.
        assert!(matches!(
            decode_exact(&[0xa2, 0x01, 0x02]),
            Err(Error::Malformed(_))
        ));
    }
}
