//! A small BER (X.690) layer: a bounded TLV reader that accepts what real OSI stacks send
//! (indefinite lengths, constructed strings, elements in any SET order), a writer that emits
//! definite lengths, and the primitive value codecs the upper layers and X.411 types need.
//!
//! rasn derives the closed X.411 types; this layer is for what rasn cannot do: keep unknown
//! elements byte for byte (envelope extensions must be relayed unchanged), EXTERNAL, and the
//! presentation, ACSE and RTSE PDUs whose user data is an open type.
//!
//! Every length is checked against the bytes actually present before anything is allocated,
//! and nesting is bounded by [`MAX_DEPTH`].

mod external;
mod writer;

pub use external::{External, ExternalEncoding};
pub use writer::Writer;

/// Deepest nesting of constructed elements accepted (X.411 PDUs nest about 12 deep).
pub const MAX_DEPTH: usize = 48;

/// Largest tag number accepted (tags above this are a peer error here).
pub const MAX_TAG_NUMBER: u32 = 1 << 24;

/// Largest INTEGER decoded into an `i64`, in content octets.
pub const MAX_INTEGER_OCTETS: usize = 8;

/// Most arcs in an OBJECT IDENTIFIER.
pub const MAX_OID_ARCS: usize = 32;

/// Why bytes are not valid BER. Every variant is the peer's fault (it sent them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BerError {
    /// The input ends inside an element.
    #[error("truncated element at offset {0}")]
    Truncated(usize),
    /// A length field uses more octets than we accept, or the reserved 0xFF form.
    #[error("unsupported length encoding at offset {0}")]
    BadLength(usize),
    /// Constructed elements nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// A tag number beyond [`MAX_TAG_NUMBER`].
    #[error("tag number too large at offset {0}")]
    TagTooLarge(usize),
    /// A primitive element with an indefinite length.
    #[error("indefinite length on a primitive element at offset {0}")]
    IndefinitePrimitive(usize),
    /// An element other than the one required at this point.
    #[error("expected {expected}, found {found}")]
    Unexpected {
        /// What the grammar requires.
        expected: &'static str,
        /// The tag that was found.
        found: Tag,
    },
    /// A required element is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The same element twice in a SET.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// A value's content octets are invalid for its type.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// A value exceeds a bound (X.411 upper bounds, or ours).
    #[error("{0} exceeds its upper bound")]
    TooLarge(&'static str),
    /// Bytes left over after the element that should have ended the input.
    #[error("trailing bytes after the element")]
    Trailing,
}

/// The class of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// UNIVERSAL.
    Universal,
    /// APPLICATION.
    Application,
    /// Context-specific, `[n]`.
    Context,
    /// PRIVATE.
    Private,
}

/// A BER identifier: class, constructed bit and number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The class.
    pub class: Class,
    /// Whether the encoding is constructed.
    pub constructed: bool,
    /// The tag number.
    pub number: u32,
}

impl Tag {
    /// A universal primitive tag.
    pub const fn universal(number: u32) -> Self {
        Tag {
            class: Class::Universal,
            constructed: false,
            number,
        }
    }
    /// A context-specific primitive tag `[n]`.
    pub const fn context(number: u32) -> Self {
        Tag {
            class: Class::Context,
            constructed: false,
            number,
        }
    }
    /// An APPLICATION primitive tag.
    pub const fn application(number: u32) -> Self {
        Tag {
            class: Class::Application,
            constructed: false,
            number,
        }
    }
    /// The same tag with the constructed bit set.
    pub const fn constructed(self) -> Self {
        Tag {
            constructed: true,
            ..self
        }
    }
    /// Whether `self` and `other` name the same tag, whatever the constructed bit (strings may
    /// come in either form).
    pub fn same(self, other: Tag) -> bool {
        self.class == other.class && self.number == other.number
    }

    /// BOOLEAN.
    pub const BOOLEAN: Tag = Tag::universal(1);
    /// INTEGER.
    pub const INTEGER: Tag = Tag::universal(2);
    /// BIT STRING.
    pub const BIT_STRING: Tag = Tag::universal(3);
    /// OCTET STRING.
    pub const OCTET_STRING: Tag = Tag::universal(4);
    /// NULL.
    pub const NULL: Tag = Tag::universal(5);
    /// OBJECT IDENTIFIER.
    pub const OID: Tag = Tag::universal(6);
    /// EXTERNAL (always constructed).
    pub const EXTERNAL: Tag = Tag::universal(8).constructed();
    /// ENUMERATED.
    pub const ENUMERATED: Tag = Tag::universal(10);
    /// SEQUENCE / SEQUENCE OF (always constructed).
    pub const SEQUENCE: Tag = Tag::universal(16).constructed();
    /// SET / SET OF (always constructed).
    pub const SET: Tag = Tag::universal(17).constructed();
    /// NumericString.
    pub const NUMERIC_STRING: Tag = Tag::universal(18);
    /// PrintableString.
    pub const PRINTABLE_STRING: Tag = Tag::universal(19);
    /// TeletexString (T61String).
    pub const TELETEX_STRING: Tag = Tag::universal(20);
    /// IA5String.
    pub const IA5_STRING: Tag = Tag::universal(22);
    /// UTCTime.
    pub const UTC_TIME: Tag = Tag::universal(23);
    /// GeneralizedTime.
    pub const GENERALIZED_TIME: Tag = Tag::universal(24);
    /// GraphicString.
    pub const GRAPHIC_STRING: Tag = Tag::universal(25);
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = match self.class {
            Class::Universal => "UNIVERSAL ",
            Class::Application => "APPLICATION ",
            Class::Context => "",
            Class::Private => "PRIVATE ",
        };
        write!(f, "[{class}{}]", self.number)
    }
}

/// One element: its tag, its content octets (for an indefinite length, without the
/// end-of-contents octets) and its whole encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The identifier.
    pub tag: Tag,
    /// The content octets.
    pub content: &'a [u8],
    /// The whole element as received (identifier, length, content, end-of-contents).
    pub raw: &'a [u8],
    /// Nesting depth of this element (0 at the top).
    depth: usize,
    /// Offset of the content in the outermost input, for error messages.
    offset: usize,
}

impl<'a> Tlv<'a> {
    /// A reader over the elements inside a constructed element.
    pub fn children(&self) -> Result<Reader<'a>, BerError> {
        if !self.tag.constructed {
            return Err(BerError::Unexpected {
                expected: "a constructed element",
                found: self.tag,
            });
        }
        if self.depth + 1 > MAX_DEPTH {
            return Err(BerError::TooDeep);
        }
        Ok(Reader {
            input: self.content,
            pos: 0,
            depth: self.depth + 1,
            base: self.offset,
        })
    }

    /// Checks the tag (ignoring the constructed bit) and returns self.
    pub fn expect(self, tag: Tag, what: &'static str) -> Result<Self, BerError> {
        if self.tag.same(tag) {
            Ok(self)
        } else {
            Err(BerError::Unexpected {
                expected: what,
                found: self.tag,
            })
        }
    }

    /// The single element inside an explicitly tagged element.
    pub fn explicit_inner(&self) -> Result<Tlv<'a>, BerError> {
        let mut r = self.children()?;
        let inner = r.next_required("the explicitly tagged value")?;
        r.finish()?;
        Ok(inner)
    }

    /// The content of a string type, joining the segments of a constructed encoding.
    pub fn octets(&self) -> Result<std::borrow::Cow<'a, [u8]>, BerError> {
        if !self.tag.constructed {
            return Ok(std::borrow::Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        self.collect_segments(&mut out)?;
        Ok(std::borrow::Cow::Owned(out))
    }

    fn collect_segments(&self, out: &mut Vec<u8>) -> Result<(), BerError> {
        let mut r = self.children()?;
        while let Some(seg) = r.next()? {
            if seg.tag.constructed {
                seg.collect_segments(out)?;
            } else {
                out.extend_from_slice(seg.content);
            }
        }
        Ok(())
    }

    /// INTEGER (or ENUMERATED) content as an `i64`.
    pub fn integer(&self) -> Result<i64, BerError> {
        decode_integer(self.content)
    }

    /// BOOLEAN content (any non-zero octet is TRUE, as BER allows).
    pub fn boolean(&self) -> Result<bool, BerError> {
        match self.content {
            [b] => Ok(*b != 0),
            _ => Err(BerError::Invalid("BOOLEAN")),
        }
    }

    /// OBJECT IDENTIFIER content.
    pub fn oid(&self) -> Result<Oid, BerError> {
        Oid::from_content(self.content)
    }

    /// A string of a 7-bit character type (PrintableString, IA5String, NumericString, …) as
    /// text; TeletexString octets above 0x7F are kept as Latin-1, which is how T.61 text is
    /// usually sent in practice.
    pub fn string(&self, what: &'static str, max_len: usize) -> Result<String, BerError> {
        let bytes = self.octets()?;
        if bytes.len() > max_len {
            return Err(BerError::TooLarge(what));
        }
        Ok(bytes.iter().map(|&b| b as char).collect())
    }

    /// BIT STRING content: the bits as bytes (first octet is the unused-bits count, stripped).
    pub fn bit_string(&self) -> Result<(Vec<u8>, u8), BerError> {
        let bytes = self.octets()?;
        match bytes.split_first() {
            Some((&unused, rest)) if unused < 8 && (!rest.is_empty() || unused == 0) => {
                Ok((rest.to_vec(), unused))
            }
            _ => Err(BerError::Invalid("BIT STRING")),
        }
    }

    /// Offset of this element's content in the outermost input.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

/// Decodes INTEGER content octets into an `i64`.
pub fn decode_integer(content: &[u8]) -> Result<i64, BerError> {
    if content.is_empty() || content.len() > MAX_INTEGER_OCTETS {
        return Err(BerError::Invalid("INTEGER"));
    }
    let mut v: i64 = if content[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in content {
        v = (v << 8) | i64::from(b);
    }
    Ok(v)
}

/// An OBJECT IDENTIFIER, as its arcs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Oid(pub Vec<u32>);

impl Oid {
    /// From arcs.
    pub fn new(arcs: &[u32]) -> Self {
        Oid(arcs.to_vec())
    }

    /// Decodes content octets (X.690 §8.19).
    pub fn from_content(content: &[u8]) -> Result<Self, BerError> {
        if content.is_empty() {
            return Err(BerError::Invalid("OBJECT IDENTIFIER"));
        }
        let mut arcs = Vec::new();
        let mut value: u64 = 0;
        let mut in_arc = false;
        for &b in content {
            if !in_arc && b == 0x80 {
                return Err(BerError::Invalid("OBJECT IDENTIFIER"));
            }
            value = (value << 7) | u64::from(b & 0x7F);
            if value > u64::from(u32::MAX) + 80 {
                return Err(BerError::Invalid("OBJECT IDENTIFIER"));
            }
            in_arc = b & 0x80 != 0;
            if !in_arc {
                if arcs.is_empty() {
                    let (first, second) = match value {
                        0..=39 => (0, value),
                        40..=79 => (1, value - 40),
                        _ => (2, value - 80),
                    };
                    arcs.push(first);
                    arcs.push(u32::try_from(second).map_err(|_| BerError::Invalid("OID"))?);
                } else {
                    arcs.push(u32::try_from(value).map_err(|_| BerError::Invalid("OID"))?);
                }
                if arcs.len() > MAX_OID_ARCS {
                    return Err(BerError::TooLarge("OBJECT IDENTIFIER"));
                }
                value = 0;
            }
        }
        if in_arc {
            return Err(BerError::Invalid("OBJECT IDENTIFIER"));
        }
        Ok(Oid(arcs))
    }

    /// The content octets.
    pub fn content(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut arcs = self.0.iter().copied();
        let first = arcs.next().unwrap_or(0);
        let second = arcs.next().unwrap_or(0);
        push_base128(&mut out, u64::from(first) * 40 + u64::from(second));
        for a in arcs {
            push_base128(&mut out, u64::from(a));
        }
        out
    }
}

fn push_base128(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 10];
    let mut n = 0;
    loop {
        tmp[n] = (v & 0x7F) as u8;
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        out.push(tmp[i] | if i > 0 { 0x80 } else { 0 });
    }
}

impl std::fmt::Display for Oid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// Reads consecutive elements from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over top-level elements.
    pub fn new(input: &'a [u8]) -> Self {
        Reader {
            input,
            pos: 0,
            depth: 0,
            base: 0,
        }
    }

    /// Whether every element has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.input.len()
    }

    /// The next element, or `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Tlv<'a>>, BerError> {
        if self.is_empty() {
            return Ok(None);
        }
        let (tlv, used) = parse_element(&self.input[self.pos..], self.depth, self.base + self.pos)?;
        self.pos += used;
        Ok(Some(tlv))
    }

    /// The next element, which must be present.
    pub fn next_required(&mut self, what: &'static str) -> Result<Tlv<'a>, BerError> {
        self.next()?.ok_or(BerError::Missing(what))
    }

    /// The next element if its tag is `tag` (ignoring the constructed bit); otherwise leaves
    /// the reader where it was.
    pub fn next_if(&mut self, tag: Tag) -> Result<Option<Tlv<'a>>, BerError> {
        let save = self.pos;
        match self.next()? {
            Some(t) if t.tag.same(tag) => Ok(Some(t)),
            _ => {
                self.pos = save;
                Ok(None)
            }
        }
    }

    /// Fails if elements remain.
    pub fn finish(&self) -> Result<(), BerError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(BerError::Trailing)
        }
    }
}

/// Parses exactly one element that spans the whole input.
pub fn parse_one(input: &[u8]) -> Result<Tlv<'_>, BerError> {
    let (tlv, used) = parse_element(input, 0, 0)?;
    if used != input.len() {
        return Err(BerError::Trailing);
    }
    Ok(tlv)
}

/// Returns the length of the first complete element in `input`, `Ok(None)` if more bytes are
/// needed.
pub fn element_len(input: &[u8]) -> Result<Option<usize>, BerError> {
    match parse_element(input, 0, 0) {
        Ok((_, used)) => Ok(Some(used)),
        Err(BerError::Truncated(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn parse_header(input: &[u8], offset: usize) -> Result<(Tag, Option<usize>, usize), BerError> {
    let first = *input.first().ok_or(BerError::Truncated(offset))?;
    let class = match first >> 6 {
        0 => Class::Universal,
        1 => Class::Application,
        2 => Class::Context,
        _ => Class::Private,
    };
    let constructed = first & 0x20 != 0;
    let mut pos = 1;
    let mut number = u32::from(first & 0x1F);
    if number == 0x1F {
        number = 0;
        loop {
            let b = *input.get(pos).ok_or(BerError::Truncated(offset))?;
            pos += 1;
            number = (number << 7) | u32::from(b & 0x7F);
            if number > MAX_TAG_NUMBER {
                return Err(BerError::TagTooLarge(offset));
            }
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let lb = *input.get(pos).ok_or(BerError::Truncated(offset))?;
    pos += 1;
    let len = if lb < 0x80 {
        Some(usize::from(lb))
    } else if lb == 0x80 {
        None
    } else {
        let n = usize::from(lb & 0x7F);
        if n > 4 {
            return Err(BerError::BadLength(offset));
        }
        let mut l: usize = 0;
        for _ in 0..n {
            let b = *input.get(pos).ok_or(BerError::Truncated(offset))?;
            pos += 1;
            l = (l << 8) | usize::from(b);
        }
        Some(l)
    };
    Ok((
        Tag {
            class,
            constructed,
            number,
        },
        len,
        pos,
    ))
}

fn parse_element(input: &[u8], depth: usize, offset: usize) -> Result<(Tlv<'_>, usize), BerError> {
    if depth > MAX_DEPTH {
        return Err(BerError::TooDeep);
    }
    let (tag, len, hdr) = parse_header(input, offset)?;
    match len {
        Some(len) => {
            let end = hdr.checked_add(len).ok_or(BerError::BadLength(offset))?;
            if end > input.len() {
                return Err(BerError::Truncated(offset));
            }
            Ok((
                Tlv {
                    tag,
                    content: &input[hdr..end],
                    raw: &input[..end],
                    depth,
                    offset: offset + hdr,
                },
                end,
            ))
        }
        None => {
            if !tag.constructed {
                return Err(BerError::IndefinitePrimitive(offset));
            }
            // Walk the children to find the end-of-contents octets.
            let mut pos = hdr;
            loop {
                let rest = &input[pos..];
                if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                    let content = &input[hdr..pos];
                    return Ok((
                        Tlv {
                            tag,
                            content,
                            raw: &input[..pos + 2],
                            depth,
                            offset: offset + hdr,
                        },
                        pos + 2,
                    ));
                }
                if rest.is_empty() {
                    return Err(BerError::Truncated(offset));
                }
                let (_, used) = parse_element(rest, depth + 1, offset + pos)?;
                pos += used;
            }
        }
    }
}

#[cfg(test)]
mod tests;
