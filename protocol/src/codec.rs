//! The canonical byte layout of everything that is signed, hashed, derived or used as associated
//! data.
//!
//! The wire carries objects as CBOR (see [`crate::wire`]), but no signature is ever made over CBOR:
//! a serializer's choices must not decide what a signature covers. Instead every signed object
//! builds its *signed bytes* with this writer, field by field, starting with its domain label:
//!
//! | item            | layout                                   |
//! |-----------------|------------------------------------------|
//! | `u8`            | 1 byte                                   |
//! | `u16`/`u32`/`u64` | big-endian, 2/4/8 bytes                |
//! | fixed array     | the bytes, no length                     |
//! | variable bytes  | `u32` big-endian length, then the bytes  |
//! | string / label  | `u32` big-endian length, then UTF-8      |
//! | list            | `u32` big-endian count, then each item   |
//! | option          | `0x00`, or `0x01` then the item          |
//!
//! PROTOCOL.md gives each object's field order; the known-answer vectors pin the bytes.

use sha2::{Digest, Sha256};

/// Builds canonical bytes. Cheap to create; grows as needed.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts a layout with its domain label.
    pub fn with_label(label: &str) -> Self {
        let mut w = Self::default();
        w.str(label);
        w
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends fixed-size bytes without a length (the type fixes the length).
    pub fn fixed(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.len(v.len());
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a length-prefixed UTF-8 string.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// Appends a list count.
    pub fn count(&mut self, n: usize) -> &mut Self {
        self.len(n);
        self
    }

    /// Appends a boolean as one byte (0 or 1).
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// The bytes built so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Consumes the writer, returning the bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// SHA-256 of the bytes built so far.
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.buf).into()
    }

    fn len(&mut self, n: usize) {
        // Every length in the protocol is bounded far below 4 GiB by the wire limits; saturate
        // rather than wrap so an impossible length can never alias a small one.
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(&n.to_be_bytes());
    }
}

/// SHA-256 of `label` (length-prefixed) followed by `parts` (each length-prefixed).
pub fn labelled_hash(label: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut w = Writer::with_label(label);
    for p in parts {
        w.bytes(p);
    }
    w.sha256()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_length_prefixed_big_endian() {
        let mut w = Writer::with_label("ab");
        w.u8(1)
            .u16(2)
            .u32(3)
            .u64(4)
            .bytes(b"xyz")
            .fixed(&[9, 9])
            .bool(true);
        assert_eq!(
            w.as_bytes(),
            &[
                0, 0, 0, 2, b'a', b'b', 1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 3,
                b'x', b'y', b'z', 9, 9, 1
            ]
        );
    }

    #[test]
    fn labelled_hash_separates_boundaries() {
        // "ab" + "c" and "a" + "bc" must hash differently: lengths are part of the input.
        assert_ne!(
            labelled_hash("l", &[b"ab", b"c"]),
            labelled_hash("l", &[b"a", b"bc"])
        );
        assert_ne!(labelled_hash("l1", &[b"x"]), labelled_hash("l2", &[b"x"]));
    }
}
