//! Order-preserving byte encodings used to build transport keys.
//!
//! The transport orders keys bytewise, so every logical component of a key is encoded so
//! that comparing encodings bytewise gives the logical order, and so that no encoding is a
//! prefix of another of the same type (the decoder always knows where a component ends).

use alloc::string::String;
use alloc::vec::Vec;

/// Appends `bytes` so that bytewise order of encodings equals bytewise order of inputs.
///
/// `0x00` is escaped as `0x00 0xFF`; the end is marked by `0x00 0x01`, which sorts below any
/// continuation, so a string sorts before its extensions.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// Appends a `u64` as 8 big-endian bytes (numeric order equals bytewise order).
pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Why an encoded key could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

/// A cursor over encoded bytes.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads one raw byte.
    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self
            .rest
            .split_first()
            .ok_or(DecodeError("unexpected end"))?;
        self.rest = rest;
        Ok(first)
    }

    /// Reads a value written by [`put_bytes`].
    pub fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let mut out = Vec::new();
        loop {
            match self.byte()? {
                0x00 => match self.byte()? {
                    0xFF => out.push(0),
                    0x01 => return Ok(out),
                    _ => return Err(DecodeError("bad escape in byte string")),
                },
                b => out.push(b),
            }
        }
    }

    /// Reads a value written by [`put_bytes`] from a UTF-8 string.
    pub fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?).map_err(|_| DecodeError("string is not UTF-8"))
    }

    /// Reads a value written by [`put_u64`].
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<8>()
            .ok_or(DecodeError("unexpected end in integer"))?;
        self.rest = rest;
        Ok(u64::from_be_bytes(*head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes(&mut out, bytes);
        out
    }

    proptest! {
        #[test]
        fn byte_strings_keep_their_order(a in proptest::collection::vec(any::<u8>(), 0..16),
                                         b in proptest::collection::vec(any::<u8>(), 0..16)) {
            prop_assert_eq!(a.cmp(&b), enc(&a).cmp(&enc(&b)));
        }

        #[test]
        fn byte_strings_round_trip(a in proptest::collection::vec(any::<u8>(), 0..32)) {
            let encoded = enc(&a);
            let mut reader = Reader::new(&encoded);
            prop_assert_eq!(reader.bytes().unwrap(), a);
            prop_assert!(reader.is_empty());
        }

        #[test]
        fn integers_keep_their_order(a: u64, b: u64) {
            let (mut x, mut y) = (Vec::new(), Vec::new());
            put_u64(&mut x, a);
            put_u64(&mut y, b);
            prop_assert_eq!(a.cmp(&b), x.cmp(&y));
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(Reader::new(&[b'a', 0x00]).bytes().is_err());
        assert!(Reader::new(b"a").bytes().is_err());
        assert!(Reader::new(&[0x00, 0x07]).bytes().is_err());
        assert!(Reader::new(&[1, 2, 3]).u64().is_err());
    }
}
