//! RFC 5321 mailboxes (`Local-part "@" ( Domain / address-literal )`), with the RFC 6531
//! (SMTPUTF8) extensions.
//!
//! Grammar, RFC 5321 §4.1.2 and §4.1.3:
//! ```text
//! Mailbox        = Local-part "@" ( Domain / address-literal )
//! Local-part     = Dot-string / Quoted-string
//! Dot-string     = Atom *("."  Atom)
//! Quoted-string  = DQUOTE *QcontentSMTP DQUOTE
//! QcontentSMTP   = qtextSMTP / quoted-pairSMTP
//! quoted-pairSMTP= %d92 %d32-126
//! qtextSMTP      = %d32-33 / %d35-91 / %d93-126
//! Domain         = sub-domain *("." sub-domain)
//! sub-domain     = Let-dig [Ldh-str]
//! address-literal= "[" ( IPv4-address-literal / IPv6-address-literal /
//!                        General-address-literal ) "]"
//! ```
//! RFC 6531 §3.3 adds UTF8-non-ascii to `atext` and `qtextSMTP`, and U-labels to `sub-domain`.
//!
//! Case rules: the local part is preserved exactly and compared exactly (RFC 5321 §2.4: only
//! the receiving host may interpret it); the domain is compared case-insensitively, IDN domains
//! in their A-label form, so `Bücher.example` and `xn--bcher-kva.example` are the same domain.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::punycode;

/// Longest local part, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_LEN: usize = 64;
/// Longest domain, in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN_LEN: usize = 255;
/// Longest DNS label, in octets (RFC 1035 §2.3.4), checked on the A-label form.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest mailbox as it appears in a path, without the angle brackets (RFC 5321 §4.5.3.1.3
/// limits a path to 256 octets including them).
pub const MAX_MAILBOX_LEN: usize = 254;

/// Why a string is not a valid RFC 5321 mailbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailboxError {
    /// The input is empty.
    #[error("empty address")]
    Empty,
    /// The input is longer than [`MAX_MAILBOX_LEN`] octets.
    #[error("address is {len} octets long, the limit is {MAX_MAILBOX_LEN}")]
    TooLong {
        /// Length of the input in octets.
        len: usize,
    },
    /// There is no `@` separating local part and domain.
    #[error("missing '@' between local part and domain")]
    MissingAt,
    /// The local part is empty (`@example.com`, or `""@example.com`, which RFC 5321 does not
    /// allow for a mailbox: `Dot-string` needs an atom; an empty quoted string is accepted by the
    /// grammar but refused here because no mailbox is named by it).
    #[error("empty local part")]
    EmptyLocalPart,
    /// The local part is longer than [`MAX_LOCAL_PART_LEN`] octets.
    #[error("local part is {len} octets long, the limit is {MAX_LOCAL_PART_LEN}")]
    LocalPartTooLong {
        /// Length of the local part in octets.
        len: usize,
    },
    /// A character not allowed in an unquoted local part.
    #[error("character {ch:?} at offset {offset} is not allowed in an unquoted local part")]
    InvalidLocalChar {
        /// The offending character.
        ch: char,
        /// Byte offset in the input.
        offset: usize,
    },
    /// A dot at the start or end of the local part, or two dots in a row.
    #[error("misplaced '.' in local part at offset {offset}")]
    MisplacedDot {
        /// Byte offset in the input.
        offset: usize,
    },
    /// A quoted local part without its closing quote.
    #[error("quoted local part is not terminated")]
    UnterminatedQuote,
    /// A character not allowed inside a quoted local part (control characters, or a backslash
    /// escaping something other than a printable character).
    #[error("character {ch:?} at offset {offset} is not allowed in a quoted local part")]
    InvalidQuotedChar {
        /// The offending character.
        ch: char,
        /// Byte offset in the input.
        offset: usize,
    },
    /// The domain is empty.
    #[error("empty domain")]
    EmptyDomain,
    /// The domain is longer than [`MAX_DOMAIN_LEN`] octets.
    #[error("domain is {len} octets long, the limit is {MAX_DOMAIN_LEN}")]
    DomainTooLong {
        /// Length of the domain (A-label form) in octets.
        len: usize,
    },
    /// A domain label is empty (leading, trailing or doubled dot).
    #[error("empty label in domain")]
    EmptyLabel,
    /// A domain label is longer than [`MAX_LABEL_LEN`] octets in its A-label form.
    #[error("domain label {label:?} is longer than {MAX_LABEL_LEN} octets")]
    LabelTooLong {
        /// The label as written.
        label: String,
    },
    /// A domain label starts or ends with a hyphen.
    #[error("domain label {label:?} starts or ends with '-'")]
    LabelHyphen {
        /// The label as written.
        label: String,
    },
    /// A character not allowed in a domain name.
    #[error("character {ch:?} is not allowed in a domain name")]
    InvalidDomainChar {
        /// The offending character.
        ch: char,
    },
    /// An `xn--` label that is not valid Punycode, or a U-label that cannot be encoded.
    #[error("label {label:?} is not a valid internationalized label")]
    InvalidIdnLabel {
        /// The label as written.
        label: String,
    },
    /// A bracketed address literal that is not valid.
    #[error("invalid address literal: {reason}")]
    InvalidAddressLiteral {
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The local part of a mailbox, held in its semantic (unquoted) form.
///
/// `"joe"` and `joe` are the same local part; the wire form quotes only when needed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalPart(String);

impl LocalPart {
    /// The semantic value: quotes removed, quoted-pairs resolved.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the local part must be written as a quoted string.
    pub fn needs_quoting(&self) -> bool {
        !is_dot_string(&self.0)
    }

    /// Splits the local part at the first `separator` (sub-addressing, `joe+tag`): returns the
    /// base and the detail. Returns `None` when there is no separator or the base would be empty.
    pub fn split_detail(&self, separator: char) -> Option<(&str, &str)> {
        let (base, detail) = self.0.split_once(separator)?;
        (!base.is_empty()).then_some((base, detail))
    }
}

impl fmt::Display for LocalPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.needs_quoting() {
            f.write_str("\"")?;
            for c in self.0.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// A domain name, as written (preserved for display), compared by its lower-case A-label form.
#[derive(Debug, Clone)]
pub struct Domain {
    written: String,
    /// The lower-case A-label form, when it differs from `written` (most domains are written
    /// in lower-case ASCII: one string serves both).
    ascii: Option<String>,
}

impl Domain {
    /// Parses and validates a domain name (LDH labels, or U-labels when non-ASCII).
    pub fn parse(s: &str) -> Result<Self, MailboxError> {
        if s.is_empty() {
            return Err(MailboxError::EmptyDomain);
        }
        let mut ascii = String::with_capacity(s.len());
        for (i, label) in s.split('.').enumerate() {
            if i > 0 {
                ascii.push('.');
            }
            ascii.push_str(&label_to_ascii(label)?);
        }
        if ascii.len() > MAX_DOMAIN_LEN {
            return Err(MailboxError::DomainTooLong { len: ascii.len() });
        }
        Ok(Domain {
            written: s.to_owned(),
            ascii: (ascii != s).then_some(ascii),
        })
    }

    /// The domain as it was written.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The lower-case A-label form, used for comparison and for DNS.
    pub fn to_ascii(&self) -> &str {
        self.ascii.as_deref().unwrap_or(&self.written)
    }

    /// The domain with every A-label decoded to Unicode, lower case.
    pub fn to_unicode(&self) -> String {
        self.to_ascii()
            .split('.')
            .map(|l| match l.strip_prefix("xn--") {
                // Validated at parse time, so decoding cannot fail; fall back to the A-label.
                Some(enc) => punycode::decode(enc).unwrap_or_else(|_| l.to_owned()),
                None => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(".")
    }

    /// Whether the domain as written is pure ASCII.
    pub fn is_ascii(&self) -> bool {
        self.written.is_ascii()
    }

    /// Whether this domain equals `other` or is a sub-domain of it (`a.b.example` is within
    /// `example`), compared case-insensitively on A-labels.
    pub fn is_within(&self, other: &Domain) -> bool {
        let (mine, theirs) = (self.to_ascii(), other.to_ascii());
        mine == theirs
            || (mine.len() > theirs.len()
                && mine.ends_with(theirs)
                && mine.as_bytes()[mine.len() - theirs.len() - 1] == b'.')
    }
}

impl PartialEq for Domain {
    fn eq(&self, other: &Self) -> bool {
        self.to_ascii() == other.to_ascii()
    }
}
impl Eq for Domain {}
impl Hash for Domain {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.to_ascii().hash(state);
    }
}
impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}
impl FromStr for Domain {
    type Err = MailboxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::parse(s)
    }
}

/// An address literal (RFC 5321 §4.1.3): `[192.0.2.1]`, `[IPv6:2001:db8::1]` or a
/// standardized tag with its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressLiteral {
    /// `[a.b.c.d]`
    Ipv4(Ipv4Addr),
    /// `[IPv6:...]`
    Ipv6(Ipv6Addr),
    /// `[tag:content]` for another standardized tag.
    General {
        /// The Standardized-tag (an Ldh-str).
        tag: String,
        /// The content after the colon (dcontent: printable US-ASCII except `[`, `\`, `]`).
        content: String,
    },
}

impl AddressLiteral {
    fn parse(inner: &str) -> Result<Self, MailboxError> {
        let bad = |reason| MailboxError::InvalidAddressLiteral { reason };
        if let Some((tag, rest)) = inner.split_once(':') {
            if tag.eq_ignore_ascii_case("IPv6") {
                return rest
                    .parse::<Ipv6Addr>()
                    .map(AddressLiteral::Ipv6)
                    .map_err(|_| bad("not an IPv6 address"));
            }
            let tag_ok = !tag.is_empty()
                && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !tag.ends_with('-');
            if !tag_ok {
                return Err(bad("invalid standardized tag"));
            }
            let content_ok = !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| (33..=126).contains(&b) && !matches!(b, b'[' | b'\\' | b']'));
            if !content_ok {
                return Err(bad("invalid characters in literal content"));
            }
            return Ok(AddressLiteral::General {
                tag: tag.to_owned(),
                content: rest.to_owned(),
            });
        }
        // Snum must be 1*3DIGIT; std's parser refuses leading zeros ("01"), which RFC 5321
        // allows, so parse by hand.
        let parts: Vec<&str> = inner.split('.').collect();
        if parts.len() != 4 {
            return Err(bad("not an IPv4 address"));
        }
        let mut octets = [0u8; 4];
        for (o, p) in octets.iter_mut().zip(&parts) {
            if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("not an IPv4 address"));
            }
            *o = p.parse().map_err(|_| bad("IPv4 octet above 255"))?;
        }
        Ok(AddressLiteral::Ipv4(Ipv4Addr::from(octets)))
    }
}

impl fmt::Display for AddressLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressLiteral::Ipv4(a) => write!(f, "[{a}]"),
            AddressLiteral::Ipv6(a) => write!(f, "[IPv6:{a}]"),
            AddressLiteral::General { tag, content } => write!(f, "[{tag}:{content}]"),
        }
    }
}

/// The part of a mailbox after the `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainPart {
    /// A domain name.
    Domain(Domain),
    /// An address literal.
    Literal(AddressLiteral),
}

impl fmt::Display for DomainPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPart::Domain(d) => d.fmt(f),
            DomainPart::Literal(l) => l.fmt(f),
        }
    }
}

/// An RFC 5321 mailbox: `local-part@domain`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    local: LocalPart,
    domain: DomainPart,
}

impl Mailbox {
    /// Parses a mailbox (no angle brackets, no source route). UTF-8 is accepted in the local
    /// part and domain as RFC 6531 allows; [`Mailbox::needs_smtputf8`] tells whether it may only
    /// travel with SMTPUTF8.
    pub fn parse(s: &str) -> Result<Self, MailboxError> {
        if s.is_empty() {
            return Err(MailboxError::Empty);
        }
        if s.len() > MAX_MAILBOX_LEN {
            return Err(MailboxError::TooLong { len: s.len() });
        }
        let (local, rest) = if s.starts_with('"') {
            parse_quoted(s)?
        } else {
            // A dot-string cannot contain '@', so the first one ends it (an address literal
            // after it may contain '@': `[tag:a@b]`).
            let at = s.find('@').ok_or(MailboxError::MissingAt)?;
            (parse_dot_string(&s[..at])?, &s[at..])
        };
        let domain_str = rest.strip_prefix('@').ok_or(MailboxError::MissingAt)?;
        if local.0.len() > MAX_LOCAL_PART_LEN {
            return Err(MailboxError::LocalPartTooLong { len: local.0.len() });
        }
        let domain = if let Some(lit) = domain_str.strip_prefix('[') {
            let inner = lit
                .strip_suffix(']')
                .ok_or(MailboxError::InvalidAddressLiteral {
                    reason: "missing ']'",
                })?;
            DomainPart::Literal(AddressLiteral::parse(inner)?)
        } else {
            DomainPart::Domain(Domain::parse(domain_str)?)
        };
        Ok(Mailbox { local, domain })
    }

    /// Builds a mailbox from parts already validated.
    pub fn new(local: LocalPart, domain: DomainPart) -> Self {
        Mailbox { local, domain }
    }

    /// The local part.
    pub fn local_part(&self) -> &LocalPart {
        &self.local
    }

    /// The domain part.
    pub fn domain_part(&self) -> &DomainPart {
        &self.domain
    }

    /// The domain name, when the mailbox is not at an address literal.
    pub fn domain(&self) -> Option<&Domain> {
        match &self.domain {
            DomainPart::Domain(d) => Some(d),
            DomainPart::Literal(_) => None,
        }
    }

    /// Whether this mailbox can only be transmitted with SMTPUTF8 (RFC 6531): a non-ASCII
    /// local part. A non-ASCII domain alone could be sent as A-labels, but RFC 6531 §3.2 still
    /// expects SMTPUTF8 for any UTF-8 in the envelope as written, so both count.
    pub fn needs_smtputf8(&self) -> bool {
        !self.local.0.is_ascii() || self.domain().is_some_and(|d| !d.is_ascii())
    }

    /// The same mailbox with the local part replaced, e.g. without its sub-address detail.
    pub fn with_local_part(&self, local: &str) -> Result<Self, MailboxError> {
        if local.is_empty() {
            return Err(MailboxError::EmptyLocalPart);
        }
        if local.len() > MAX_LOCAL_PART_LEN {
            return Err(MailboxError::LocalPartTooLong { len: local.len() });
        }
        check_quoted_content(local, 0)?;
        Ok(Mailbox {
            local: LocalPart(local.to_owned()),
            domain: self.domain.clone(),
        })
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl FromStr for Mailbox {
    type Err = MailboxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mailbox::parse(s)
    }
}

/// RFC 5322 atext, extended by RFC 6531 with every non-ASCII character.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

fn parse_dot_string(s: &str) -> Result<LocalPart, MailboxError> {
    if s.is_empty() {
        return Err(MailboxError::EmptyLocalPart);
    }
    let mut prev_dot = true; // a leading dot is misplaced
    for (offset, c) in s.char_indices() {
        if c == '.' {
            if prev_dot {
                return Err(MailboxError::MisplacedDot { offset });
            }
            prev_dot = true;
        } else if is_atext(c) {
            prev_dot = false;
        } else {
            return Err(MailboxError::InvalidLocalChar { ch: c, offset });
        }
    }
    if prev_dot {
        return Err(MailboxError::MisplacedDot {
            offset: s.len() - 1,
        });
    }
    Ok(LocalPart(s.to_owned()))
}

/// qtextSMTP plus SP (the quoted-pair targets are %d32-126, and raw qtext covers 32-33, 35-91,
/// 93-126), extended by RFC 6531 with non-ASCII.
fn is_qtext(c: char) -> bool {
    matches!(c, ' '..='~') && c != '"' && c != '\\' || !c.is_ascii()
}

fn check_quoted_content(s: &str, base: usize) -> Result<(), MailboxError> {
    match s
        .char_indices()
        .find(|&(_, c)| !(is_qtext(c) || c == '"' || c == '\\'))
    {
        Some((offset, ch)) => Err(MailboxError::InvalidQuotedChar {
            ch,
            offset: base + offset,
        }),
        None => Ok(()),
    }
}

/// Parses `"..."` at the start of `s`; returns the local part and the rest (from the `@`).
fn parse_quoted(s: &str) -> Result<(LocalPart, &str), MailboxError> {
    let mut value = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => {
                if value.is_empty() {
                    return Err(MailboxError::EmptyLocalPart);
                }
                return Ok((LocalPart(value), &s[offset + 1..]));
            }
            '\\' => match chars.next() {
                Some((_, e)) if matches!(e, ' '..='~') => value.push(e),
                Some((offset, ch)) => return Err(MailboxError::InvalidQuotedChar { ch, offset }),
                None => return Err(MailboxError::UnterminatedQuote),
            },
            c if is_qtext(c) => value.push(c),
            ch => return Err(MailboxError::InvalidQuotedChar { ch, offset }),
        }
    }
    Err(MailboxError::UnterminatedQuote)
}

fn label_to_ascii(label: &str) -> Result<String, MailboxError> {
    if label.is_empty() {
        return Err(MailboxError::EmptyLabel);
    }
    let ascii = if label.is_ascii() {
        if let Some(ch) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(MailboxError::InvalidDomainChar { ch });
        }
        let lower = label.to_ascii_lowercase();
        if let Some(enc) = lower.strip_prefix("xn--") {
            let decoded = punycode::decode(enc).map_err(|_| MailboxError::InvalidIdnLabel {
                label: label.to_owned(),
            })?;
            if decoded.is_ascii() || decoded.is_empty() {
                return Err(MailboxError::InvalidIdnLabel {
                    label: label.to_owned(),
                });
            }
        }
        lower
    } else {
        if let Some(ch) = label
            .chars()
            .find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || *c == '-') || c.is_control())
        {
            return Err(MailboxError::InvalidDomainChar { ch });
        }
        let lower = label.to_lowercase();
        let enc = punycode::encode(&lower).map_err(|_| MailboxError::InvalidIdnLabel {
            label: label.to_owned(),
        })?;
        format!("xn--{enc}")
    };
    if ascii.starts_with('-') || ascii.ends_with('-') {
        return Err(MailboxError::LabelHyphen {
            label: label.to_owned(),
        });
    }
    if ascii.len() > MAX_LABEL_LEN {
        return Err(MailboxError::LabelTooLong {
            label: label.to_owned(),
        });
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Mailbox {
        match Mailbox::parse(s) {
            Ok(m) => m,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    #[test]
    fn valid_dot_strings() {
        for s in [
            "postmaster@example.com",
            "Joe.Smith@Example.COM",
            "a@b",
            "user+tag@example.org",
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "x@sub-domain.example-1.com",
            "x@123.example",
        ] {
            let m = ok(s);
            assert_eq!(m.to_string(), s, "display of {s}");
        }
    }

    #[test]
    fn quoted_local_parts() {
        let m = ok(r#""John Doe"@example.com"#);
        assert_eq!(m.local_part().as_str(), "John Doe");
        assert_eq!(m.to_string(), r#""John Doe"@example.com"#);

        // quoted-pairSMTP resolves; re-quoting escapes only what must be escaped.
        let m = ok(r#""a\"b\\c"@example.com"#);
        assert_eq!(m.local_part().as_str(), r#"a"b\c"#);
        assert_eq!(m.to_string(), r#""a\"b\\c"@example.com"#);

        // An @ inside quotes belongs to the local part (the classic relay trick).
        let m = ok(r#""user@other.example"@example.com"#);
        assert_eq!(m.local_part().as_str(), "user@other.example");
        assert_eq!(m.domain().map(Domain::to_ascii), Some("example.com"));

        // Unnecessary quotes are semantically the same local part.
        assert_eq!(ok(r#""joe"@example.com"#), ok("joe@example.com"));
        assert_eq!(ok(r#""joe"@example.com"#).to_string(), "joe@example.com");

        // A dot-string that is not valid unquoted stays quoted.
        assert_eq!(ok(r#""a..b"@x.example"#).to_string(), r#""a..b"@x.example"#);
    }

    #[test]
    fn address_literals() {
        let m = ok("root@[192.0.2.1]");
        assert_eq!(
            m.domain_part(),
            &DomainPart::Literal(AddressLiteral::Ipv4(Ipv4Addr::new(192, 0, 2, 1)))
        );
        assert_eq!(m.to_string(), "root@[192.0.2.1]");
        let m = ok("root@[IPv6:2001:db8::1]");
        assert!(matches!(
            m.domain_part(),
            DomainPart::Literal(AddressLiteral::Ipv6(_))
        ));
        assert_eq!(m.to_string(), "root@[IPv6:2001:db8::1]");
        // '@' inside a general address literal (found by fuzzing the SMTP command parser).
        assert_eq!(ok("a@[x:1@2]").to_string(), "a@[x:1@2]");
        assert_eq!(ok("\"a\"@[x:1@2]").to_string(), "a@[x:1@2]");
        let m = ok("root@[x-tag:some-content]");
        assert!(matches!(
            m.domain_part(),
            DomainPart::Literal(AddressLiteral::General { .. })
        ));
        assert!(m.domain().is_none());
        // Snum allows leading zeros.
        assert_eq!(ok("a@[010.0.0.1]").to_string(), "a@[10.0.0.1]");
    }

    #[test]
    fn invalid_mailboxes() {
        use MailboxError as E;
        type Check = fn(&E) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, E::Empty)),
            ("joe", |e| matches!(e, E::MissingAt)),
            ("@example.com", |e| matches!(e, E::EmptyLocalPart)),
            ("joe@", |e| matches!(e, E::EmptyDomain)),
            (".joe@example.com", |e| {
                matches!(e, E::MisplacedDot { offset: 0 })
            }),
            ("joe.@example.com", |e| matches!(e, E::MisplacedDot { .. })),
            ("jo..e@example.com", |e| {
                matches!(e, E::MisplacedDot { offset: 3 })
            }),
            ("jo e@example.com", |e| {
                matches!(e, E::InvalidLocalChar { ch: ' ', offset: 2 })
            }),
            ("jo(e@example.com", |e| {
                matches!(e, E::InvalidLocalChar { ch: '(', .. })
            }),
            ("jo\ne@example.com", |e| {
                matches!(e, E::InvalidLocalChar { ch: '\n', .. })
            }),
            ("a@b@example.com", |e| {
                matches!(e, E::InvalidDomainChar { ch: '@' })
            }),
            (r#""joe@example.com"#, |e| matches!(e, E::UnterminatedQuote)),
            (r#""jo\"@example.com"#, |e| {
                matches!(e, E::UnterminatedQuote)
            }),
            ("\"a\rb\"@example.com", |e| {
                matches!(e, E::InvalidQuotedChar { ch: '\r', .. })
            }),
            ("\"a\\\0b\"@example.com", |e| {
                matches!(e, E::InvalidQuotedChar { ch: '\0', .. })
            }),
            (r#""joe"x@example.com"#, |e| matches!(e, E::MissingAt)),
            (r#"""@example.com"#, |e| matches!(e, E::EmptyLocalPart)),
            ("joe@example..com", |e| matches!(e, E::EmptyLabel)),
            ("joe@.example.com", |e| matches!(e, E::EmptyLabel)),
            ("joe@example.com.", |e| matches!(e, E::EmptyLabel)),
            ("joe@-example.com", |e| matches!(e, E::LabelHyphen { .. })),
            ("joe@example-.com", |e| matches!(e, E::LabelHyphen { .. })),
            ("joe@exa_mple.com", |e| {
                matches!(e, E::InvalidDomainChar { ch: '_' })
            }),
            ("joe@exa mple.com", |e| {
                matches!(e, E::InvalidDomainChar { ch: ' ' })
            }),
            ("joe@xn--zz.example", |e| {
                matches!(e, E::InvalidIdnLabel { .. })
            }),
            ("joe@[192.0.2.256]", |e| {
                matches!(e, E::InvalidAddressLiteral { .. })
            }),
            ("joe@[192.0.2]", |e| {
                matches!(e, E::InvalidAddressLiteral { .. })
            }),
            ("joe@[IPv6:1::2::3]", |e| {
                matches!(e, E::InvalidAddressLiteral { .. })
            }),
            ("joe@[192.0.2.1", |e| {
                matches!(e, E::InvalidAddressLiteral { .. })
            }),
            ("joe@[tag:a]b]", |e| {
                matches!(e, E::InvalidAddressLiteral { .. })
            }),
            ("joe@[:x]", |e| matches!(e, E::InvalidAddressLiteral { .. })),
        ];
        for (input, check) in cases {
            match Mailbox::parse(input) {
                Ok(m) => panic!("{input:?} parsed as {m}"),
                Err(e) => assert!(check(&e), "{input:?} gave {e:?}"),
            }
        }
    }

    #[test]
    fn limits() {
        let local = "a".repeat(64);
        assert!(Mailbox::parse(&format!("{local}@example.com")).is_ok());
        let local = "a".repeat(65);
        assert!(matches!(
            Mailbox::parse(&format!("{local}@example.com")),
            Err(MailboxError::LocalPartTooLong { len: 65 })
        ));
        let label = "b".repeat(64);
        assert!(matches!(
            Mailbox::parse(&format!("a@{label}.example")),
            Err(MailboxError::LabelTooLong { .. })
        ));
        let long = format!("a@{}", vec!["c".repeat(60); 5].join("."));
        assert!(matches!(
            Mailbox::parse(&long),
            Err(MailboxError::TooLong { .. })
        ));
        let dom = vec!["d".repeat(63); 4].join(".");
        assert!(
            Domain::parse(&dom).is_ok(),
            "255 octets is the limit, inclusive"
        );
        let dom = format!("{}.x", vec!["d".repeat(63); 4].join("."));
        assert!(matches!(
            Domain::parse(&dom),
            Err(MailboxError::DomainTooLong { len: 257 })
        ));
    }

    #[test]
    fn case_rules() {
        let a = ok("Joe@Example.COM");
        let b = ok("Joe@example.com");
        let c = ok("joe@example.com");
        assert_eq!(a, b, "domains compare case-insensitively");
        assert_ne!(b, c, "local parts are case-sensitive");
        assert_eq!(
            a.to_string(),
            "Joe@Example.COM",
            "the written form is preserved"
        );
    }

    #[test]
    fn utf8_and_idn() {
        let m = ok("用户@例子.广告");
        assert!(m.needs_smtputf8());
        assert_eq!(m.local_part().as_str(), "用户");
        let d = m.domain().map(Domain::to_ascii);
        assert_eq!(d, Some("xn--fsqu00a.xn--4rr70v"));

        let u = ok("jörg@Bücher.example");
        let a = ok("jörg@xn--bcher-kva.example");
        assert_eq!(u, a, "U-label and A-label forms are the same domain");
        assert_eq!(
            a.domain().map(Domain::to_unicode).as_deref(),
            Some("bücher.example")
        );
        assert!(!ok("joe@example.com").needs_smtputf8());
        assert!(ok(r#""Jörg Müller"@example.com"#).needs_smtputf8());
    }

    #[test]
    fn sub_address_split() {
        let m = ok("joe+tag+more@example.com");
        assert_eq!(m.local_part().split_detail('+'), Some(("joe", "tag+more")));
        assert_eq!(ok("joe@example.com").local_part().split_detail('+'), None);
        assert_eq!(ok("+x@example.com").local_part().split_detail('+'), None);
        let base = m.with_local_part("joe").map(|b| b.to_string());
        assert_eq!(base.as_deref(), Ok("joe@example.com"));
    }

    #[test]
    fn domain_within() {
        let parse = |s| Domain::parse(s).expect("valid domain");
        assert!(parse("a.b.Example.com").is_within(&parse("example.COM")));
        assert!(parse("example.com").is_within(&parse("example.com")));
        assert!(!parse("badexample.com").is_within(&parse("example.com")));
        assert!(!parse("com").is_within(&parse("example.com")));
    }
}
