//! The stable binary encoding of an [`Envelope`], as the queue stores it.
//!
//! ```text
//! envelope = version:u8 *field end
//! field    = tag:u8 length:varint value:length-octets
//! end      = %x00 %x00            ; tag 0, length 0: nothing may follow
//! varint   = unsigned LEB128, at most 10 octets
//! string   = length:varint UTF-8-octets
//! ```
//! The end marker makes truncation at a field boundary detectable without outside framing.
//! Every field is length-prefixed, so no octet of an address or a text can be mistaken for
//! structure. Tags below 0x80 are *critical*: a decoder that does not know one refuses the
//! envelope. Tags from 0x80 up are *ignorable*: an older decoder skips them. New information
//! that changes how a message must be handled gets a critical tag; advisory information an
//! ignorable one. Addresses are stored in their text form (mailbox, or RFC 2156 std-or) and
//! re-parsed on decode, so the encoding does not depend on the in-memory layout.
//!
//! Version 1 is the format written by this code.

use super::{
    BodyType, ContentType, DsnRet, Envelope, NextHop, Notify, OriginalRecipient, Priority,
    Recipient, RecipientState, ReversePath, Route, TraceHop, X400ContentType,
};
use crate::address::{Address, AddressError};
use crate::id::{ChannelId, Timestamp};
use crate::status::Status;

/// The format version written by [`encode`].
pub const VERSION: u8 = 1;
/// Most recipients one envelope may carry when decoded (X.411 ub-recipients is 32767; SMTP
/// limits are far lower). Checked before allocating.
pub const MAX_RECIPIENTS: usize = 32_767;
/// Most trace hops kept (loop detection refuses messages long before this).
pub const MAX_TRACE_HOPS: usize = 1_024;
/// Most entries of the expansion history kept.
pub const MAX_EXPANSIONS: usize = 64;
/// Most arcs in an X.400 content-type OID.
pub const MAX_OID_ARCS: usize = 64;

const END: u8 = 0;
const ORIGINATOR: u8 = 1;
const RECIPIENT: u8 = 2;
const PRIORITY: u8 = 3;
const DSN_RET: u8 = 4;
const DSN_ENVID: u8 = 5;
const CONTENT_TYPE: u8 = 6;
const SIZE: u8 = 7;
const ARRIVAL: u8 = 8;
const DEFERRED_UNTIL: u8 = 9;
const EXPIRES: u8 = 10;
const REQUIRE_TLS: u8 = 11;
const AUTHENTICATED_AS: u8 = 12;
const TRACE: u8 = 13;

const R_ADDRESS: u8 = 1;
const R_ORCPT: u8 = 2;
const R_NOTIFY: u8 = 3;
const R_ROUTE: u8 = 4;
const R_STATE: u8 = 5;

const T_BY: u8 = 1;
const T_FROM: u8 = 2;
const T_WITH: u8 = 3;
const T_ID: u8 = 4;
const T_AT: u8 = 5;

const FIRST_IGNORABLE_TAG: u8 = 0x80;
/// A list the message was expanded from (ignorable: a decoder that does not know it loses
/// only the loop protection of the expansion history).
const EXPANSION: u8 = 0x80;

/// Why bytes could not be decoded as an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated envelope")]
    Truncated,
    /// The envelope was written by a format version this code does not read.
    #[error("unsupported envelope format version {0}")]
    UnsupportedVersion(u8),
    /// A critical field this code does not know.
    #[error("unknown critical field tag {tag:#04x} in {context}")]
    UnknownField {
        /// The tag.
        tag: u8,
        /// Where it was found.
        context: &'static str,
    },
    /// A varint longer than 10 octets or overflowing 64 bits.
    #[error("malformed varint")]
    BadVarint,
    /// A field that may appear once appeared again.
    #[error("duplicate field {0}")]
    DuplicateField(&'static str),
    /// A required field is absent.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A text field that is not UTF-8.
    #[error("field {0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A field whose value is out of range or malformed.
    #[error("invalid value in field {field}: {reason}")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// An address that does not parse.
    #[error("invalid address in field {field}: {error}")]
    InvalidAddress {
        /// The field.
        field: &'static str,
        /// The parse error.
        error: AddressError,
    },
    /// A field's value had octets left over after decoding.
    #[error("trailing octets in field {0}")]
    TrailingBytes(&'static str),
}

/// Encodes an envelope into a new buffer.
pub fn encode(env: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + 64 * env.recipients.len());
    encode_into(env, &mut out);
    out
}

/// Appends the encoding of an envelope to `out`.
pub fn encode_into(env: &Envelope, out: &mut Vec<u8>) {
    out.push(VERSION);
    let mut w = Writer(out);
    w.field(ORIGINATOR, |w| match &env.originator {
        ReversePath::Null => w.u8(0),
        ReversePath::Address(a) => {
            w.u8(1);
            w.str(&a.to_string());
        }
    });
    for r in &env.recipients {
        w.field(RECIPIENT, |w| encode_recipient(w, r));
    }
    if env.priority != Priority::Normal {
        w.field(PRIORITY, |w| w.u8(env.priority.level()));
    }
    if let Some(ret) = env.dsn_ret {
        w.field(DSN_RET, |w| {
            w.u8(match ret {
                DsnRet::Full => 1,
                DsnRet::Headers => 2,
            })
        });
    }
    if let Some(envid) = &env.dsn_envid {
        w.field(DSN_ENVID, |w| w.raw(envid.as_bytes()));
    }
    w.field(CONTENT_TYPE, |w| match &env.content_type {
        ContentType::Internet { body, smtputf8 } => {
            w.u8(0);
            w.u8(match body {
                BodyType::SevenBit => 0,
                BodyType::EightBitMime => 1,
                BodyType::BinaryMime => 2,
            });
            w.u8(u8::from(*smtputf8));
        }
        ContentType::X400(X400ContentType::BuiltIn(n)) => {
            w.u8(1);
            w.varint(u64::from(*n));
        }
        ContentType::X400(X400ContentType::Extended(arcs)) => {
            w.u8(2);
            w.varint(arcs.len() as u64);
            for a in arcs {
                w.varint(u64::from(*a));
            }
        }
    });
    w.field(SIZE, |w| w.varint(env.size));
    w.field(ARRIVAL, |w| w.varint(env.arrival.0));
    if let Some(t) = env.deferred_until {
        w.field(DEFERRED_UNTIL, |w| w.varint(t.0));
    }
    if let Some(t) = env.expires {
        w.field(EXPIRES, |w| w.varint(t.0));
    }
    if env.require_tls {
        w.field(REQUIRE_TLS, |_| {});
    }
    if let Some(a) = &env.authenticated_as {
        w.field(AUTHENTICATED_AS, |w| w.raw(a.as_bytes()));
    }
    for hop in &env.trace {
        w.field(TRACE, |w| {
            w.field(T_BY, |w| w.raw(hop.by.as_bytes()));
            if let Some(from) = &hop.from {
                w.field(T_FROM, |w| w.raw(from.as_bytes()));
            }
            w.field(T_WITH, |w| w.raw(hop.with.as_bytes()));
            if let Some(id) = &hop.id {
                w.field(T_ID, |w| w.raw(id.as_bytes()));
            }
            w.field(T_AT, |w| w.varint(hop.at.0));
        });
    }
    for list in &env.expansions {
        w.field(EXPANSION, |w| w.raw(list.as_bytes()));
    }
    w.field(END, |_| {});
}

fn encode_recipient(w: &mut Writer<'_>, r: &Recipient) {
    w.field(R_ADDRESS, |w| w.raw(r.address.to_string().as_bytes()));
    if let Some(o) = &r.original {
        w.field(R_ORCPT, |w| {
            w.str(&o.addr_type);
            w.str(&o.address);
        });
    }
    if r.notify != Notify::unspecified() {
        w.field(R_NOTIFY, |w| w.u8(r.notify.to_bits()));
    }
    if let Some(route) = &r.route {
        w.field(R_ROUTE, |w| {
            w.str(route.channel.as_str());
            w.u8(u8::from(route.local));
            match &route.next_hop {
                NextHop::Local => w.u8(0),
                NextHop::Domain(d) => {
                    w.u8(1);
                    w.str(d);
                }
                NextHop::Host { host, port } => {
                    w.u8(2);
                    w.str(host);
                    w.varint(port.map_or(0, |p| u64::from(p) + 1));
                }
                NextHop::Peer(p) => {
                    w.u8(3);
                    w.str(p);
                }
            }
        });
    }
    if r.state != RecipientState::Pending {
        w.field(R_STATE, |w| write_state(w, &r.state));
    }
}

fn write_state(w: &mut Writer<'_>, state: &RecipientState) {
    match state {
        RecipientState::Pending => w.u8(0),
        RecipientState::Deferred {
            attempts,
            next_attempt,
            last,
        } => {
            w.u8(1);
            w.varint(u64::from(*attempts));
            w.varint(next_attempt.0);
            w.status(last);
        }
        RecipientState::Delivered { at, status } => {
            w.u8(2);
            w.varint(at.0);
            w.status(status);
        }
        RecipientState::Relayed { at, status } => {
            w.u8(3);
            w.varint(at.0);
            w.status(status);
        }
        RecipientState::Expanded { at } => {
            w.u8(4);
            w.varint(at.0);
        }
        RecipientState::Failed { at, status } => {
            w.u8(5);
            w.varint(at.0);
            w.status(status);
        }
    }
}

/// Encodes one recipient state on its own (the queue's outcome records carry these).
pub fn encode_recipient_state(state: &RecipientState, out: &mut Vec<u8>) {
    write_state(&mut Writer(out), state);
}

/// Decodes a recipient state written by [`encode_recipient_state`]; the whole input must be
/// consumed.
pub fn decode_recipient_state(bytes: &[u8]) -> Result<RecipientState, DecodeError> {
    let mut r = Reader::new(bytes);
    let state = decode_state(&mut r)?;
    r.finish("recipient.state")?;
    Ok(state)
}

/// Decodes an envelope. Every length is checked against the remaining input before anything is
/// allocated, so hostile input costs at most its own size.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let mut originator = None;
    let mut env = Envelope::new(ReversePath::Null, Timestamp(0));
    // Size the repeated fields exactly (a queue may hold a million envelopes): count them
    // first. Errors are left for the main pass to report.
    let (mut recipients, mut hops) = (0usize, 0usize);
    let mut scan = Reader::new(r.buf);
    while let Ok((tag, _)) = scan.field() {
        match tag {
            RECIPIENT => recipients += 1,
            TRACE => hops += 1,
            END => break,
            _ => {}
        }
    }
    env.recipients.reserve_exact(recipients.min(MAX_RECIPIENTS));
    env.trace.reserve_exact(hops.min(MAX_TRACE_HOPS));
    let mut seen = 0u32;
    let mut once = |tag: u8, name: &'static str| {
        let bit = 1u32 << tag;
        if seen & bit != 0 {
            return Err(DecodeError::DuplicateField(name));
        }
        seen |= bit;
        Ok(())
    };
    let mut arrival = None;
    let mut size = None;
    loop {
        if r.is_empty() {
            return Err(DecodeError::Truncated);
        }
        let (tag, mut v) = r.field()?;
        match tag {
            END => {
                v.finish("end")?;
                r.finish("envelope")?;
                break;
            }
            ORIGINATOR => {
                once(tag, "originator")?;
                originator = Some(match v.u8()? {
                    0 => ReversePath::Null,
                    1 => ReversePath::Address(address(v.str("originator")?, "originator")?),
                    _ => return Err(invalid("originator", "unknown kind")),
                });
            }
            RECIPIENT => {
                if env.recipients.len() >= MAX_RECIPIENTS {
                    return Err(invalid("recipient", "too many recipients"));
                }
                env.recipients.push(decode_recipient(&mut v)?);
            }
            PRIORITY => {
                once(tag, "priority")?;
                env.priority =
                    Priority::from_level(v.u8()?).ok_or(invalid("priority", "level above 5"))?;
            }
            DSN_RET => {
                once(tag, "dsn_ret")?;
                env.dsn_ret = Some(match v.u8()? {
                    1 => DsnRet::Full,
                    2 => DsnRet::Headers,
                    _ => return Err(invalid("dsn_ret", "unknown value")),
                });
            }
            DSN_ENVID => {
                once(tag, "dsn_envid")?;
                env.dsn_envid = Some(v.rest_str("dsn_envid")?.to_owned());
            }
            CONTENT_TYPE => {
                once(tag, "content_type")?;
                env.content_type = decode_content_type(&mut v)?;
            }
            SIZE => {
                once(tag, "size")?;
                size = Some(v.varint()?);
            }
            ARRIVAL => {
                once(tag, "arrival")?;
                arrival = Some(Timestamp(v.varint()?));
            }
            DEFERRED_UNTIL => {
                once(tag, "deferred_until")?;
                env.deferred_until = Some(Timestamp(v.varint()?));
            }
            EXPIRES => {
                once(tag, "expires")?;
                env.expires = Some(Timestamp(v.varint()?));
            }
            REQUIRE_TLS => {
                once(tag, "require_tls")?;
                env.require_tls = true;
            }
            AUTHENTICATED_AS => {
                once(tag, "authenticated_as")?;
                env.authenticated_as = Some(v.rest_str("authenticated_as")?.to_owned());
            }
            TRACE => {
                if env.trace.len() >= MAX_TRACE_HOPS {
                    return Err(invalid("trace", "too many hops"));
                }
                env.trace.push(decode_trace(&mut v)?);
            }
            EXPANSION => {
                if env.expansions.len() >= MAX_EXPANSIONS {
                    return Err(invalid("expansions", "too many entries"));
                }
                env.expansions.push(v.rest_str("expansions")?.to_owned());
            }
            t if t >= FIRST_IGNORABLE_TAG => continue,
            t => {
                return Err(DecodeError::UnknownField {
                    tag: t,
                    context: "envelope",
                });
            }
        }
        v.finish(field_name(tag))?;
    }
    env.originator = originator.ok_or(DecodeError::MissingField("originator"))?;
    env.arrival = arrival.ok_or(DecodeError::MissingField("arrival"))?;
    env.size = size.ok_or(DecodeError::MissingField("size"))?;
    Ok(env)
}

fn field_name(tag: u8) -> &'static str {
    match tag {
        ORIGINATOR => "originator",
        RECIPIENT => "recipient",
        PRIORITY => "priority",
        DSN_RET => "dsn_ret",
        DSN_ENVID => "dsn_envid",
        CONTENT_TYPE => "content_type",
        SIZE => "size",
        ARRIVAL => "arrival",
        DEFERRED_UNTIL => "deferred_until",
        EXPIRES => "expires",
        REQUIRE_TLS => "require_tls",
        AUTHENTICATED_AS => "authenticated_as",
        TRACE => "trace",
        EXPANSION => "expansions",
        _ => "unknown",
    }
}

fn invalid(field: &'static str, reason: &'static str) -> DecodeError {
    DecodeError::InvalidValue { field, reason }
}

fn address(s: &str, field: &'static str) -> Result<Address, DecodeError> {
    Address::parse(s).map_err(|error| DecodeError::InvalidAddress { field, error })
}

fn decode_content_type(v: &mut Reader<'_>) -> Result<ContentType, DecodeError> {
    Ok(match v.u8()? {
        0 => {
            let body = match v.u8()? {
                0 => BodyType::SevenBit,
                1 => BodyType::EightBitMime,
                2 => BodyType::BinaryMime,
                _ => return Err(invalid("content_type", "unknown body type")),
            };
            let smtputf8 = v.bool("content_type")?;
            ContentType::Internet { body, smtputf8 }
        }
        1 => {
            let n = u16::try_from(v.varint()?)
                .map_err(|_| invalid("content_type", "built-in type out of range"))?;
            ContentType::X400(X400ContentType::BuiltIn(n))
        }
        2 => {
            let n = usize::try_from(v.varint()?).unwrap_or(usize::MAX);
            if n > MAX_OID_ARCS {
                return Err(invalid("content_type", "too many OID arcs"));
            }
            let mut arcs = Vec::with_capacity(n);
            for _ in 0..n {
                arcs.push(
                    u32::try_from(v.varint()?)
                        .map_err(|_| invalid("content_type", "OID arc out of range"))?,
                );
            }
            ContentType::X400(X400ContentType::Extended(arcs))
        }
        _ => return Err(invalid("content_type", "unknown kind")),
    })
}

fn decode_recipient(v: &mut Reader<'_>) -> Result<Recipient, DecodeError> {
    let mut addr = None;
    let mut rcpt_original = None;
    let mut notify = Notify::unspecified();
    let mut route = None;
    let mut state = RecipientState::Pending;
    while !v.is_empty() {
        let (tag, mut f) = v.field()?;
        match tag {
            R_ADDRESS => addr = Some(address(f.rest_str("recipient.address")?, "recipient")?),
            R_ORCPT => {
                rcpt_original = Some(OriginalRecipient {
                    addr_type: f.str("recipient.orcpt")?.to_owned(),
                    address: f.str("recipient.orcpt")?.to_owned(),
                })
            }
            R_NOTIFY => {
                notify = Notify::from_bits(f.u8()?)
                    .ok_or(invalid("recipient.notify", "invalid flags"))?
            }
            R_ROUTE => {
                let channel = ChannelId::new(f.str("recipient.route")?);
                let local = f.bool("recipient.route")?;
                let next_hop = match f.u8()? {
                    0 => NextHop::Local,
                    1 => NextHop::Domain(f.str("recipient.route")?.to_owned()),
                    2 => {
                        let host = f.str("recipient.route")?.to_owned();
                        let port = match f.varint()? {
                            0 => None,
                            p => Some(
                                u16::try_from(p - 1)
                                    .map_err(|_| invalid("recipient.route", "port out of range"))?,
                            ),
                        };
                        NextHop::Host { host, port }
                    }
                    3 => NextHop::Peer(f.str("recipient.route")?.to_owned()),
                    _ => return Err(invalid("recipient.route", "unknown next-hop kind")),
                };
                route = Some(Route {
                    channel,
                    next_hop,
                    local,
                });
            }
            R_STATE => state = decode_state(&mut f)?,
            t if t >= FIRST_IGNORABLE_TAG => continue,
            t => {
                return Err(DecodeError::UnknownField {
                    tag: t,
                    context: "recipient",
                });
            }
        }
        f.finish("recipient")?;
    }
    Ok(Recipient {
        address: addr.ok_or(DecodeError::MissingField("recipient.address"))?,
        original: rcpt_original,
        notify,
        route,
        state,
    })
}

fn decode_state(f: &mut Reader<'_>) -> Result<RecipientState, DecodeError> {
    Ok(match f.u8()? {
        0 => RecipientState::Pending,
        1 => RecipientState::Deferred {
            attempts: u32::try_from(f.varint()?)
                .map_err(|_| invalid("recipient.state", "attempts out of range"))?,
            next_attempt: Timestamp(f.varint()?),
            last: f.status()?,
        },
        2 => RecipientState::Delivered {
            at: Timestamp(f.varint()?),
            status: f.status()?,
        },
        3 => RecipientState::Relayed {
            at: Timestamp(f.varint()?),
            status: f.status()?,
        },
        4 => RecipientState::Expanded {
            at: Timestamp(f.varint()?),
        },
        5 => RecipientState::Failed {
            at: Timestamp(f.varint()?),
            status: f.status()?,
        },
        _ => return Err(invalid("recipient.state", "unknown state")),
    })
}

fn decode_trace(v: &mut Reader<'_>) -> Result<TraceHop, DecodeError> {
    let (mut by, mut from, mut with, mut id, mut at) = (None, None, None, None, None);
    while !v.is_empty() {
        let (tag, mut f) = v.field()?;
        match tag {
            T_BY => by = Some(f.rest_str("trace.by")?.to_owned()),
            T_FROM => from = Some(f.rest_str("trace.from")?.to_owned()),
            T_WITH => with = Some(f.rest_str("trace.with")?.to_owned()),
            T_ID => id = Some(f.rest_str("trace.id")?.to_owned()),
            T_AT => at = Some(Timestamp(f.varint()?)),
            t if t >= FIRST_IGNORABLE_TAG => continue,
            t => {
                return Err(DecodeError::UnknownField {
                    tag: t,
                    context: "trace",
                });
            }
        }
        f.finish("trace")?;
    }
    Ok(TraceHop {
        by: by.ok_or(DecodeError::MissingField("trace.by"))?,
        from,
        with: with.ok_or(DecodeError::MissingField("trace.with"))?,
        id,
        at: at.ok_or(DecodeError::MissingField("trace.at"))?,
    })
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.varint(s.len() as u64);
        self.raw(s.as_bytes());
    }

    fn status(&mut self, s: &Status) {
        self.varint(u64::from(s.code));
        self.u8(s.enhanced.class);
        self.varint(u64::from(s.enhanced.subject));
        self.varint(u64::from(s.enhanced.detail));
        self.str(&s.text);
    }

    /// Writes `tag`, then the value produced by `f` prefixed by its length.
    fn field(&mut self, tag: u8, f: impl FnOnce(&mut Writer<'_>)) {
        self.0.push(tag);
        let mut value = Vec::new();
        f(&mut Writer(&mut value));
        self.varint(value.len() as u64);
        self.0.extend_from_slice(&value);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.buf.split_first().ok_or(DecodeError::Truncated)?;
        self.buf = rest;
        Ok(b)
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(invalid(field, "boolean not 0 or 1")),
        }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if i == 9 && part > 1 {
                return Err(DecodeError::BadVarint);
            }
            v |= part << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(n).map_err(|_| DecodeError::Truncated)?;
        if n > self.buf.len() {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let n = self.varint()?;
        let b = self.take(n)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8(field))
    }

    fn rest_str(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let b = std::mem::take(&mut self.buf);
        std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8(field))
    }

    fn status(&mut self) -> Result<Status, DecodeError> {
        let code = u16::try_from(self.varint()?)
            .ok()
            .filter(|c| (200..600).contains(c))
            .ok_or(invalid("status", "reply code out of range"))?;
        let class = self.u8()?;
        let subject =
            u16::try_from(self.varint()?).map_err(|_| invalid("status", "subject out of range"))?;
        let detail =
            u16::try_from(self.varint()?).map_err(|_| invalid("status", "detail out of range"))?;
        let text = self.str("status.text")?;
        Ok(Status::new(code, (class, subject, detail), text))
    }

    fn field(&mut self) -> Result<(u8, Reader<'a>), DecodeError> {
        let tag = self.u8()?;
        let len = self.varint()?;
        Ok((tag, Reader::new(self.take(len)?)))
    }

    fn finish(&self, field: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(field))
        }
    }
}

#[cfg(test)]
mod tests;
