//! The BER writer: definite lengths, minimal length octets (so the output is also what DER
//! would give for the same structure).

use super::{Class, Oid, Tag};

/// Appends BER elements to a buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Writer::default()
    }

    /// A writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }

    /// The bytes written.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Appends bytes that are already a complete encoding (an element kept from the wire).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn tag(&mut self, tag: Tag) {
        let class = match tag.class {
            Class::Universal => 0x00,
            Class::Application => 0x40,
            Class::Context => 0x80,
            Class::Private => 0xC0,
        };
        let c = if tag.constructed { 0x20 } else { 0 };
        if tag.number < 31 {
            self.buf.push(class | c | tag.number as u8);
        } else {
            self.buf.push(class | c | 0x1F);
            let mut tmp = [0u8; 5];
            let mut n = 0;
            let mut v = tag.number;
            loop {
                tmp[n] = (v & 0x7F) as u8;
                n += 1;
                v >>= 7;
                if v == 0 {
                    break;
                }
            }
            for i in (0..n).rev() {
                self.buf.push(tmp[i] | if i > 0 { 0x80 } else { 0 });
            }
        }
    }

    fn length_octets(len: usize) -> ([u8; 5], usize) {
        let mut out = [0u8; 5];
        if len < 0x80 {
            out[0] = len as u8;
            return (out, 1);
        }
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let n = 8 - skip;
        out[0] = 0x80 | n as u8;
        out[1..=n].copy_from_slice(&bytes[skip..]);
        (out, n + 1)
    }

    /// A primitive element with the given content.
    pub fn primitive(&mut self, tag: Tag, content: &[u8]) {
        self.tag(Tag {
            constructed: false,
            ..tag
        });
        let (l, n) = Self::length_octets(content.len());
        self.buf.extend_from_slice(&l[..n]);
        self.buf.extend_from_slice(content);
    }

    /// A constructed element whose content `f` writes.
    pub fn constructed(&mut self, tag: Tag, f: impl FnOnce(&mut Writer)) {
        self.tag(tag.constructed());
        let len_at = self.buf.len();
        self.buf.push(0);
        let start = self.buf.len();
        f(self);
        let len = self.buf.len() - start;
        let (l, n) = Self::length_octets(len);
        if n == 1 {
            self.buf[len_at] = l[0];
        } else {
            self.buf.splice(len_at..len_at + 1, l[..n].iter().copied());
        }
    }

    /// A constructed element whose content `f` writes, where writing may fail; on failure the
    /// writer is left as it was before the call.
    pub fn try_constructed<E>(
        &mut self,
        tag: Tag,
        f: impl FnOnce(&mut Writer) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.buf.len();
        let mut result = Ok(());
        self.constructed(tag, |w| result = f(w));
        if result.is_err() {
            self.buf.truncate(start);
        }
        result
    }

    /// SEQUENCE.
    pub fn sequence(&mut self, f: impl FnOnce(&mut Writer)) {
        self.constructed(Tag::SEQUENCE, f)
    }

    /// SET.
    pub fn set(&mut self, f: impl FnOnce(&mut Writer)) {
        self.constructed(Tag::SET, f)
    }

    /// An explicit tag around what `f` writes.
    pub fn explicit(&mut self, tag: Tag, f: impl FnOnce(&mut Writer)) {
        self.constructed(tag, f)
    }

    /// INTEGER with the given tag (use [`Tag::INTEGER`] untagged).
    pub fn integer_tagged(&mut self, tag: Tag, v: i64) {
        let bytes = v.to_be_bytes();
        let mut start = 0;
        while start < 7 {
            let b = bytes[start];
            let next = bytes[start + 1];
            if (b == 0 && next & 0x80 == 0) || (b == 0xFF && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        self.primitive(tag, &bytes[start..]);
    }

    /// INTEGER.
    pub fn integer(&mut self, v: i64) {
        self.integer_tagged(Tag::INTEGER, v)
    }

    /// BOOLEAN (TRUE as 0xFF).
    pub fn boolean_tagged(&mut self, tag: Tag, v: bool) {
        self.primitive(tag, &[if v { 0xFF } else { 0 }]);
    }

    /// NULL.
    pub fn null_tagged(&mut self, tag: Tag) {
        self.primitive(tag, &[]);
    }

    /// OBJECT IDENTIFIER.
    pub fn oid(&mut self, oid: &Oid) {
        self.primitive(Tag::OID, &oid.content());
    }

    /// OBJECT IDENTIFIER with another tag.
    pub fn oid_tagged(&mut self, tag: Tag, oid: &Oid) {
        self.primitive(tag, &oid.content());
    }

    /// OCTET STRING (or any string type given its tag), primitive form.
    pub fn octets(&mut self, tag: Tag, v: &[u8]) {
        self.primitive(tag, v);
    }

    /// A character string, one octet per character (`char`s above U+00FF become `?`).
    pub fn string(&mut self, tag: Tag, v: &str) {
        if v.is_ascii() {
            self.primitive(tag, v.as_bytes());
        } else {
            let bytes: Vec<u8> = v
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect();
            self.primitive(tag, &bytes);
        }
    }

    /// BIT STRING from bytes and the number of unused bits in the last byte.
    pub fn bit_string(&mut self, tag: Tag, bits: &[u8], unused: u8) {
        self.tag(Tag {
            constructed: false,
            ..tag
        });
        let (l, n) = Self::length_octets(bits.len() + 1);
        self.buf.extend_from_slice(&l[..n]);
        self.buf.push(unused);
        self.buf.extend_from_slice(bits);
    }
}
