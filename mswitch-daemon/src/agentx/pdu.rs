//! AgentX PDUs (RFC 2741 §6): a view of one framed PDU ([`Packet`]) and its meaning
//! ([`Message`], with [`Message::parse`], [`Message::emit`] and [`Message::buffer_len`]).
//!
//! No I/O. Every PDU is a 20-octet header (§6.1) followed by `h.payload_length` octets. Integers
//! are in the byte order the header's `NETWORK_BYTE_ORDER` flag says: we send network byte
//! order and read either. Object identifiers use the `1.3.6.1.<prefix>` compression of §5.1;
//! octet strings are padded to a multiple of four octets (§5.3).
//!
//! Only what a read-only subagent sends or receives is modelled: Open, Close, Register, Get,
//! GetNext, GetBulk, TestSet, CommitSet, UndoSet, CleanupSet, Ping and Response. Other PDU
//! types parse as [`ParseError::UnsupportedType`], unknown ones as
//! [`ParseError::UnknownType`].

use std::fmt;
use std::str::FromStr;

/// The protocol version (`h.version`, §6.1).
pub const VERSION: u8 = 1;

/// Octets in the header (§6.1).
pub const HEADER_LEN: usize = 20;

/// The longest payload read; a longer one ends the session. AgentX sets no limit: this one is
/// far above any request a master sends (net-snmp's requests are a few hundred octets).
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;

/// The most sub-identifiers in an object identifier (§5.1: `n_subid` is 0 to 128).
pub const MAX_SUBIDS: usize = 128;

/// The prefix the `prefix` field stands for (§5.1): `1.3.6.1`.
pub const INTERNET: [u32; 4] = [1, 3, 6, 1];

/// `h.flags` bits (§6.1).
pub mod flags {
    /// Register: the subtree is one instance (`INSTANCE_REGISTRATION`).
    pub const INSTANCE_REGISTRATION: u8 = 0x01;
    /// IndexAllocate: a new index (`NEW_INDEX`).
    pub const NEW_INDEX: u8 = 0x02;
    /// IndexAllocate: any index (`ANY_INDEX`).
    pub const ANY_INDEX: u8 = 0x04;
    /// An `Octet String` context follows the header (`NON_DEFAULT_CONTEXT`).
    pub const NON_DEFAULT_CONTEXT: u8 = 0x08;
    /// Integers are big-endian (`NETWORK_BYTE_ORDER`).
    pub const NETWORK_BYTE_ORDER: u8 = 0x10;
}

/// `h.type` values (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PduType {
    /// `agentx-Open-PDU`.
    Open = 1,
    /// `agentx-Close-PDU`.
    Close = 2,
    /// `agentx-Register-PDU`.
    Register = 3,
    /// `agentx-Unregister-PDU`.
    Unregister = 4,
    /// `agentx-Get-PDU`.
    Get = 5,
    /// `agentx-GetNext-PDU`.
    GetNext = 6,
    /// `agentx-GetBulk-PDU`.
    GetBulk = 7,
    /// `agentx-TestSet-PDU`.
    TestSet = 8,
    /// `agentx-CommitSet-PDU`.
    CommitSet = 9,
    /// `agentx-UndoSet-PDU`.
    UndoSet = 10,
    /// `agentx-CleanupSet-PDU`.
    CleanupSet = 11,
    /// `agentx-Notify-PDU`.
    Notify = 12,
    /// `agentx-Ping-PDU`.
    Ping = 13,
    /// `agentx-IndexAllocate-PDU`.
    IndexAllocate = 14,
    /// `agentx-IndexDeallocate-PDU`.
    IndexDeallocate = 15,
    /// `agentx-AddAgentCaps-PDU`.
    AddAgentCaps = 16,
    /// `agentx-RemoveAgentCaps-PDU`.
    RemoveAgentCaps = 17,
    /// `agentx-Response-PDU`.
    Response = 18,
}

impl PduType {
    /// The type of an `h.type` value.
    pub fn from_u8(t: u8) -> Option<PduType> {
        use PduType::*;
        Some(match t {
            1 => Open,
            2 => Close,
            3 => Register,
            4 => Unregister,
            5 => Get,
            6 => GetNext,
            7 => GetBulk,
            8 => TestSet,
            9 => CommitSet,
            10 => UndoSet,
            11 => CleanupSet,
            12 => Notify,
            13 => Ping,
            14 => IndexAllocate,
            15 => IndexDeallocate,
            16 => AddAgentCaps,
            17 => RemoveAgentCaps,
            18 => Response,
            _ => return None,
        })
    }

    /// Whether this type carries the optional context (§6.1.1: the administrative PDUs Open,
    /// Close, Response and the Commit/Undo/Cleanup phases of a Set do not).
    fn has_context(self) -> bool {
        !matches!(
            self,
            PduType::Open
                | PduType::Close
                | PduType::Response
                | PduType::CommitSet
                | PduType::UndoSet
                | PduType::CleanupSet
        )
    }
}

/// The byte order of a PDU's integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ByteOrder {
    /// Big-endian: `NETWORK_BYTE_ORDER` set. What we send.
    #[default]
    Network,
    /// Little-endian: `NETWORK_BYTE_ORDER` clear.
    Little,
}

/// Why octets are not an AgentX PDU we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The peer sent a version other than 1.
    #[error("AgentX version {0} (only 1 is known)")]
    Version(u8),
    /// The peer's `h.payload_length` is above [`MAX_PAYLOAD_LEN`].
    #[error("payload of {0} octets (at most {MAX_PAYLOAD_LEN})")]
    PayloadTooLong(u32),
    /// The peer's `h.payload_length` is not a multiple of 4 (§6.1).
    #[error("payload length {0} is not a multiple of 4")]
    PayloadMisaligned(u32),
    /// The buffer does not hold the header and the payload it announces.
    #[error("PDU truncated")]
    Truncated,
    /// A field ends past the payload.
    #[error("{0} runs past the end of the payload")]
    Short(&'static str),
    /// The payload has octets left after the last field.
    #[error("{0} octets left after the last field")]
    Trailing(usize),
    /// An object identifier with more than [`MAX_SUBIDS`] sub-identifiers.
    #[error("object identifier of {0} sub-identifiers (at most {MAX_SUBIDS})")]
    OidTooLong(u8),
    /// A `v.type` that is not one of §5.4's.
    #[error("unknown value type {0}")]
    UnknownValueType(u16),
    /// An `IpAddress` whose octet string is not 4 octets long.
    #[error("IpAddress of {0} octets")]
    BadIpAddress(usize),
    /// An `h.type` that is not one of §6.1's.
    #[error("unknown PDU type {0}")]
    UnknownType(u8),
    /// A PDU type a subagent does not take (Notify, IndexAllocate, ...).
    #[error("unexpected {0:?} PDU")]
    UnsupportedType(PduType),
}

/// `res.error` values (§6.2.16): the SNMP errors a subagent uses and the AgentX ones.
pub mod res_error {
    /// `noAgentXError`.
    pub const NO_ERROR: u16 = 0;
    /// `genErr`.
    pub const GEN_ERR: u16 = 5;
    /// `commitFailed`.
    pub const COMMIT_FAILED: u16 = 14;
    /// `notWritable`.
    pub const NOT_WRITABLE: u16 = 17;
    /// `openFailed`.
    pub const OPEN_FAILED: u16 = 256;
    /// `notOpen`.
    pub const NOT_OPEN: u16 = 257;
    /// `unsupportedContext`.
    pub const UNSUPPORTED_CONTEXT: u16 = 262;
    /// `duplicateRegistration`.
    pub const DUPLICATE_REGISTRATION: u16 = 263;
    /// `unknownRegistration`.
    pub const UNKNOWN_REGISTRATION: u16 = 264;
    /// `parseError`.
    pub const PARSE_ERROR: u16 = 266;
    /// `requestDenied`.
    pub const REQUEST_DENIED: u16 = 267;
    /// `processingError`.
    pub const PROCESSING_ERROR: u16 = 268;

    /// The standard name of an error value, for logs.
    pub fn name(e: u16) -> &'static str {
        match e {
            NO_ERROR => "noAgentXError",
            GEN_ERR => "genErr",
            COMMIT_FAILED => "commitFailed",
            NOT_WRITABLE => "notWritable",
            OPEN_FAILED => "openFailed",
            NOT_OPEN => "notOpen",
            258 => "indexWrongType",
            259 => "indexAlreadyAllocated",
            260 => "indexNoneAvailable",
            261 => "indexNotAllocated",
            UNSUPPORTED_CONTEXT => "unsupportedContext",
            DUPLICATE_REGISTRATION => "duplicateRegistration",
            UNKNOWN_REGISTRATION => "unknownRegistration",
            265 => "unknownAgentCaps",
            PARSE_ERROR => "parseError",
            REQUEST_DENIED => "requestDenied",
            PROCESSING_ERROR => "processingError",
            _ => "other error",
        }
    }
}

/// `r.reason` of a Close (§6.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason(pub u8);

impl CloseReason {
    /// `reasonOther`.
    pub const OTHER: CloseReason = CloseReason(1);
    /// `reasonParseError`.
    pub const PARSE_ERROR: CloseReason = CloseReason(2);
    /// `reasonProtocolError`.
    pub const PROTOCOL_ERROR: CloseReason = CloseReason(3);
    /// `reasonTimeouts`.
    pub const TIMEOUTS: CloseReason = CloseReason(4);
    /// `reasonShutdown`.
    pub const SHUTDOWN: CloseReason = CloseReason(5);
    /// `reasonByManager`.
    pub const BY_MANAGER: CloseReason = CloseReason(6);
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            1 => "reasonOther",
            2 => "reasonParseError",
            3 => "reasonProtocolError",
            4 => "reasonTimeouts",
            5 => "reasonShutdown",
            6 => "reasonByManager",
            _ => "unknown reason",
        })
    }
}

/// An object identifier. Ordered lexicographically by sub-identifier, as SNMP orders them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid(Vec<u32>);

impl Oid {
    /// The null OID (no sub-identifiers).
    pub const fn null() -> Oid {
        Oid(Vec::new())
    }

    /// Its sub-identifiers.
    pub fn subids(&self) -> &[u32] {
        &self.0
    }

    /// Whether it is the null OID.
    pub fn is_null(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `prefix` is a prefix of it (or it itself).
    pub fn starts_with(&self, prefix: &Oid) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// It with `more` appended.
    pub fn child(&self, more: &[u32]) -> Oid {
        let mut v = self.0.clone();
        v.extend_from_slice(more);
        Oid(v)
    }

    /// `(n_subid, prefix)` and the sub-identifiers written after the 4-octet OID header.
    fn compressed(&self) -> (u8, &[u32]) {
        match self.0.split_first_chunk::<5>() {
            Some((head, rest)) if head[..4] == INTERNET && (1..=255).contains(&head[4]) => {
                (head[4] as u8, rest)
            }
            _ => (0, &self.0),
        }
    }

    fn encoded_len(&self) -> usize {
        4 + 4 * self.compressed().1.len()
    }

    fn emit(&self, include: bool, out: &mut Vec<u8>, order: ByteOrder) {
        let (prefix, rest) = self.compressed();
        // `rest` is at most MAX_SUBIDS long for every OID we make; an OID built longer is cut
        // rather than written with a wrong n_subid.
        let n = rest.len().min(MAX_SUBIDS);
        out.extend_from_slice(&[n as u8, prefix, u8::from(include), 0]);
        for &s in &rest[..n] {
            put_u32(out, s, order);
        }
    }
}

impl From<&[u32]> for Oid {
    fn from(s: &[u32]) -> Oid {
        Oid(s.to_vec())
    }
}

impl<const N: usize> From<[u32; N]> for Oid {
    fn from(s: [u32; N]) -> Oid {
        Oid(s.to_vec())
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// Why a dotted OID does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a dotted object identifier")]
pub struct BadOid(pub String);

impl FromStr for Oid {
    type Err = BadOid;

    fn from_str(s: &str) -> Result<Oid, BadOid> {
        let t = s.strip_prefix('.').unwrap_or(s);
        if t.is_empty() {
            return Ok(Oid::null());
        }
        let v: Result<Vec<u32>, _> = t.split('.').map(str::parse).collect();
        match v {
            Ok(v) if v.len() <= MAX_SUBIDS => Ok(Oid(v)),
            _ => Err(BadOid(s.to_owned())),
        }
    }
}

/// A value (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `Integer` (2).
    Integer(i32),
    /// `Octet String` (4).
    OctetString(Vec<u8>),
    /// `Null` (5).
    Null,
    /// `Object Identifier` (6).
    ObjectIdentifier(Oid),
    /// `IpAddress` (64).
    IpAddress([u8; 4]),
    /// `Counter32` (65).
    Counter32(u32),
    /// `Gauge32` (66).
    Gauge32(u32),
    /// `TimeTicks` (67), hundredths of a second.
    TimeTicks(u32),
    /// `Opaque` (68).
    Opaque(Vec<u8>),
    /// `Counter64` (70).
    Counter64(u64),
    /// `noSuchObject` (128).
    NoSuchObject,
    /// `noSuchInstance` (129).
    NoSuchInstance,
    /// `endOfMibView` (130).
    EndOfMibView,
}

impl Value {
    /// `v.type`.
    pub fn type_code(&self) -> u16 {
        match self {
            Value::Integer(_) => 2,
            Value::OctetString(_) => 4,
            Value::Null => 5,
            Value::ObjectIdentifier(_) => 6,
            Value::IpAddress(_) => 64,
            Value::Counter32(_) => 65,
            Value::Gauge32(_) => 66,
            Value::TimeTicks(_) => 67,
            Value::Opaque(_) => 68,
            Value::Counter64(_) => 70,
            Value::NoSuchObject => 128,
            Value::NoSuchInstance => 129,
            Value::EndOfMibView => 130,
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Value::Integer(_) | Value::Counter32(_) | Value::Gauge32(_) | Value::TimeTicks(_) => 4,
            Value::Counter64(_) => 8,
            Value::OctetString(b) | Value::Opaque(b) => octet_string_len(b),
            Value::IpAddress(_) => 8,
            Value::ObjectIdentifier(o) => o.encoded_len(),
            Value::Null | Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => 0,
        }
    }

    fn emit(&self, out: &mut Vec<u8>, order: ByteOrder) {
        match self {
            Value::Integer(i) => put_u32(out, *i as u32, order),
            Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => {
                put_u32(out, *v, order)
            }
            Value::Counter64(v) => match order {
                ByteOrder::Network => out.extend_from_slice(&v.to_be_bytes()),
                ByteOrder::Little => out.extend_from_slice(&v.to_le_bytes()),
            },
            Value::OctetString(b) | Value::Opaque(b) => put_octet_string(out, b, order),
            Value::IpAddress(a) => put_octet_string(out, a, order),
            Value::ObjectIdentifier(o) => o.emit(false, out, order),
            Value::Null | Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {}
        }
    }
}

/// A variable binding (§5.4): a name and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarBind {
    /// `v.name`.
    pub name: Oid,
    /// `v.type` and `v.data`.
    pub value: Value,
}

impl VarBind {
    /// A binding.
    pub fn new(name: Oid, value: Value) -> VarBind {
        VarBind { name, value }
    }

    fn encoded_len(&self) -> usize {
        4 + self.name.encoded_len() + self.value.encoded_len()
    }

    fn emit(&self, out: &mut Vec<u8>, order: ByteOrder) {
        put_u16(out, self.value.type_code(), order);
        put_u16(out, 0, order);
        self.name.emit(false, out, order);
        self.value.emit(out, order);
    }
}

/// A search range (§5.2): from `start` (itself included when `include`) up to `end`
/// (excluded; the null OID: no upper bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRange {
    /// The starting OID.
    pub start: Oid,
    /// Whether `start` itself may be returned (GetNext, GetBulk).
    pub include: bool,
    /// The ending OID, or the null OID.
    pub end: Oid,
}

impl SearchRange {
    fn encoded_len(&self) -> usize {
        self.start.encoded_len() + self.end.encoded_len()
    }
}

/// `agentx-Open-PDU` (§6.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// `o.timeout`: seconds the master waits for our answers (0: its default).
    pub timeout: u8,
    /// `o.id`: identifies the subagent (may be null).
    pub id: Oid,
    /// `o.descr`: a description of the subagent.
    pub description: Vec<u8>,
}

/// `agentx-Register-PDU` (§6.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// `INSTANCE_REGISTRATION`: the subtree is one object instance.
    pub instance: bool,
    /// `r.timeout` (0: the session's).
    pub timeout: u8,
    /// `r.priority`: lower is preferred; 127 is the default.
    pub priority: u8,
    /// `r.subtree`.
    pub subtree: Oid,
    /// `r.range_subid` and `r.upper_bound`: the sub-identifier (1-based) of `subtree` that
    /// ranges from its value up to the bound, registering several subtrees at once.
    pub range: Option<(u8, u32)>,
}

/// `agentx-Response-PDU` (§6.2.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `res.sysUpTime`: the master's sysUpTime (meaningful from the master only).
    pub sys_uptime: u32,
    /// `res.error` (see [`res_error`]).
    pub error: u16,
    /// `res.index`: the 1-based varbind the error is about (0: none).
    pub index: u16,
    /// The variable bindings.
    pub varbinds: Vec<VarBind>,
}

/// The PDUs we read or write (§6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    /// Opens a session.
    Open(Open),
    /// Ends the session (`r.reason`).
    Close(CloseReason),
    /// Registers a subtree.
    Register(Register),
    /// Get: the `end` of each range is null.
    Get(Vec<SearchRange>),
    /// GetNext.
    GetNext(Vec<SearchRange>),
    /// GetBulk.
    GetBulk {
        /// `g.non_repeaters`.
        non_repeaters: u16,
        /// `g.max_repetitions`.
        max_repetitions: u16,
        /// The ranges.
        ranges: Vec<SearchRange>,
    },
    /// TestSet.
    TestSet(Vec<VarBind>),
    /// CommitSet.
    CommitSet,
    /// UndoSet.
    UndoSet,
    /// CleanupSet.
    CleanupSet,
    /// Ping.
    Ping,
    /// Response.
    Response(Response),
}

impl Pdu {
    /// Its `h.type`.
    pub fn pdu_type(&self) -> PduType {
        match self {
            Pdu::Open(_) => PduType::Open,
            Pdu::Close(_) => PduType::Close,
            Pdu::Register(_) => PduType::Register,
            Pdu::Get(_) => PduType::Get,
            Pdu::GetNext(_) => PduType::GetNext,
            Pdu::GetBulk { .. } => PduType::GetBulk,
            Pdu::TestSet(_) => PduType::TestSet,
            Pdu::CommitSet => PduType::CommitSet,
            Pdu::UndoSet => PduType::UndoSet,
            Pdu::CleanupSet => PduType::CleanupSet,
            Pdu::Ping => PduType::Ping,
            Pdu::Response(_) => PduType::Response,
        }
    }
}

/// A view of one complete PDU: the header and exactly the payload it announces.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that `buffer` holds a version-1 header and exactly the payload it announces,
    /// a multiple of 4 octets and at most [`MAX_PAYLOAD_LEN`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, ParseError> {
        let b = buffer.as_ref();
        let Some(len) = frame_len(b)? else {
            return Err(ParseError::Truncated);
        };
        if len != b.len() {
            return Err(ParseError::Trailing(b.len().saturating_sub(len)));
        }
        Ok(Packet { buffer })
    }

    fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN]
    }

    /// `h.type`, as sent.
    pub fn pdu_type(&self) -> u8 {
        self.header()[1]
    }

    /// `h.flags`.
    pub fn flags(&self) -> u8 {
        self.header()[2]
    }

    /// The byte order of its integers.
    pub fn byte_order(&self) -> ByteOrder {
        order_of(self.flags())
    }

    fn word(&self, at: usize) -> u32 {
        let mut w = [0u8; 4];
        w.copy_from_slice(&self.header()[at..at + 4]);
        match self.byte_order() {
            ByteOrder::Network => u32::from_be_bytes(w),
            ByteOrder::Little => u32::from_le_bytes(w),
        }
    }

    /// `h.sessionID`.
    pub fn session_id(&self) -> u32 {
        self.word(4)
    }

    /// `h.transactionID`.
    pub fn transaction_id(&self) -> u32 {
        self.word(8)
    }

    /// `h.packetID`.
    pub fn packet_id(&self) -> u32 {
        self.word(12)
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

fn order_of(flags: u8) -> ByteOrder {
    if flags & flags::NETWORK_BYTE_ORDER != 0 {
        ByteOrder::Network
    } else {
        ByteOrder::Little
    }
}

/// How many octets the PDU at the start of `buf` spans, once its header is in: `Ok(None)`
/// until 20 octets are there. An error means the stream cannot be framed any further (the
/// session must end): a version other than 1, or a payload length that is too long or not a
/// multiple of 4.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if h[0] != VERSION {
        return Err(ParseError::Version(h[0]));
    }
    let mut w = [0u8; 4];
    w.copy_from_slice(&h[16..20]);
    let len = match order_of(h[2]) {
        ByteOrder::Network => u32::from_be_bytes(w),
        ByteOrder::Little => u32::from_le_bytes(w),
    };
    if len as usize > MAX_PAYLOAD_LEN {
        return Err(ParseError::PayloadTooLong(len));
    }
    if len % 4 != 0 {
        return Err(ParseError::PayloadMisaligned(len));
    }
    let total = HEADER_LEN + len as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// One PDU with its header fields: what [`Packet`] octets mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `h.sessionID`.
    pub session_id: u32,
    /// `h.transactionID`.
    pub transaction_id: u32,
    /// `h.packetID`.
    pub packet_id: u32,
    /// The byte order of the integers.
    pub byte_order: ByteOrder,
    /// The context, when not the default one (`NON_DEFAULT_CONTEXT`); only for types that
    /// carry one.
    pub context: Option<Vec<u8>>,
    /// The PDU.
    pub pdu: Pdu,
}

impl Message {
    /// A message in network byte order, in the default context.
    pub fn new(session_id: u32, transaction_id: u32, packet_id: u32, pdu: Pdu) -> Message {
        Message {
            session_id,
            transaction_id,
            packet_id,
            byte_order: ByteOrder::Network,
            context: None,
            pdu,
        }
    }

    /// Reads the PDU a packet holds.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Message, ParseError> {
        let raw = packet.pdu_type();
        let t = PduType::from_u8(raw).ok_or(ParseError::UnknownType(raw))?;
        let order = packet.byte_order();
        let mut r = Reader {
            buf: packet.payload(),
            pos: 0,
            order,
        };
        let context = if t.has_context() && packet.flags() & flags::NON_DEFAULT_CONTEXT != 0 {
            Some(r.octet_string("context")?)
        } else {
            None
        };
        let pdu = match t {
            PduType::Open => {
                let timeout = r.u8("o.timeout")?;
                r.skip(3, "reserved")?;
                let (id, _) = r.oid("o.id")?;
                let description = r.octet_string("o.descr")?;
                Pdu::Open(Open {
                    timeout,
                    id,
                    description,
                })
            }
            PduType::Close => {
                let reason = r.u8("r.reason")?;
                r.skip(3, "reserved")?;
                Pdu::Close(CloseReason(reason))
            }
            PduType::Register => {
                let timeout = r.u8("r.timeout")?;
                let priority = r.u8("r.priority")?;
                let range_subid = r.u8("r.range_subid")?;
                r.skip(1, "reserved")?;
                let (subtree, _) = r.oid("r.subtree")?;
                let range = if range_subid != 0 {
                    Some((range_subid, r.u32("r.upper_bound")?))
                } else {
                    None
                };
                Pdu::Register(Register {
                    instance: packet.flags() & flags::INSTANCE_REGISTRATION != 0,
                    timeout,
                    priority,
                    subtree,
                    range,
                })
            }
            PduType::Get => Pdu::Get(r.search_ranges()?),
            PduType::GetNext => Pdu::GetNext(r.search_ranges()?),
            PduType::GetBulk => {
                let non_repeaters = r.u16("g.non_repeaters")?;
                let max_repetitions = r.u16("g.max_repetitions")?;
                Pdu::GetBulk {
                    non_repeaters,
                    max_repetitions,
                    ranges: r.search_ranges()?,
                }
            }
            PduType::TestSet => Pdu::TestSet(r.varbinds()?),
            PduType::CommitSet => Pdu::CommitSet,
            PduType::UndoSet => Pdu::UndoSet,
            PduType::CleanupSet => Pdu::CleanupSet,
            PduType::Ping => Pdu::Ping,
            PduType::Response => {
                let sys_uptime = r.u32("res.sysUpTime")?;
                let error = r.u16("res.error")?;
                let index = r.u16("res.index")?;
                Pdu::Response(Response {
                    sys_uptime,
                    error,
                    index,
                    varbinds: r.varbinds()?,
                })
            }
            other => return Err(ParseError::UnsupportedType(other)),
        };
        if r.pos != r.buf.len() {
            return Err(ParseError::Trailing(r.buf.len() - r.pos));
        }
        Ok(Message {
            session_id: packet.session_id(),
            transaction_id: packet.transaction_id(),
            packet_id: packet.packet_id(),
            byte_order: order,
            context,
            pdu,
        })
    }

    fn context(&self) -> Option<&[u8]> {
        self.context
            .as_deref()
            .filter(|_| self.pdu.pdu_type().has_context())
    }

    /// Octets the PDU takes, header included.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    fn payload_len(&self) -> usize {
        let context = self.context().map_or(0, octet_string_len);
        let ranges = |rs: &[SearchRange]| rs.iter().map(SearchRange::encoded_len).sum::<usize>();
        let varbinds = |vs: &[VarBind]| vs.iter().map(VarBind::encoded_len).sum::<usize>();
        context
            + match &self.pdu {
                Pdu::Open(o) => 4 + o.id.encoded_len() + octet_string_len(&o.description),
                Pdu::Close(_) => 4,
                Pdu::Register(r) => {
                    4 + r.subtree.encoded_len() + if r.range.is_some() { 4 } else { 0 }
                }
                Pdu::Get(rs) | Pdu::GetNext(rs) => ranges(rs),
                Pdu::GetBulk { ranges: rs, .. } => 4 + ranges(rs),
                Pdu::TestSet(vs) => varbinds(vs),
                Pdu::CommitSet | Pdu::UndoSet | Pdu::CleanupSet | Pdu::Ping => 0,
                Pdu::Response(r) => 8 + varbinds(&r.varbinds),
            }
    }

    /// Appends the PDU's octets to `out` ([`Message::buffer_len`] of them).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let order = self.byte_order;
        let mut flags = match order {
            ByteOrder::Network => flags::NETWORK_BYTE_ORDER,
            ByteOrder::Little => 0,
        };
        let context = self.context();
        if context.is_some() {
            flags |= flags::NON_DEFAULT_CONTEXT;
        }
        if let Pdu::Register(r) = &self.pdu
            && r.instance
        {
            flags |= flags::INSTANCE_REGISTRATION;
        }
        out.reserve(self.buffer_len());
        out.extend_from_slice(&[VERSION, self.pdu.pdu_type() as u8, flags, 0]);
        put_u32(out, self.session_id, order);
        put_u32(out, self.transaction_id, order);
        put_u32(out, self.packet_id, order);
        // payload_len is bounded by what we build (a few kilo-octets); saturate rather than
        // wrap if a caller ever builds more.
        put_u32(
            out,
            u32::try_from(self.payload_len()).unwrap_or(u32::MAX),
            order,
        );
        if let Some(c) = context {
            put_octet_string(out, c, order);
        }
        match &self.pdu {
            Pdu::Open(o) => {
                out.extend_from_slice(&[o.timeout, 0, 0, 0]);
                o.id.emit(false, out, order);
                put_octet_string(out, &o.description, order);
            }
            Pdu::Close(reason) => out.extend_from_slice(&[reason.0, 0, 0, 0]),
            Pdu::Register(r) => {
                let range_subid = r.range.map_or(0, |(s, _)| s);
                out.extend_from_slice(&[r.timeout, r.priority, range_subid, 0]);
                r.subtree.emit(false, out, order);
                if let Some((_, upper)) = r.range {
                    put_u32(out, upper, order);
                }
            }
            Pdu::Get(rs) | Pdu::GetNext(rs) => emit_ranges(rs, out, order),
            Pdu::GetBulk {
                non_repeaters,
                max_repetitions,
                ranges,
            } => {
                put_u16(out, *non_repeaters, order);
                put_u16(out, *max_repetitions, order);
                emit_ranges(ranges, out, order);
            }
            Pdu::TestSet(vs) => vs.iter().for_each(|v| v.emit(out, order)),
            Pdu::CommitSet | Pdu::UndoSet | Pdu::CleanupSet | Pdu::Ping => {}
            Pdu::Response(r) => {
                put_u32(out, r.sys_uptime, order);
                put_u16(out, r.error, order);
                put_u16(out, r.index, order);
                r.varbinds.iter().for_each(|v| v.emit(out, order));
            }
        }
    }

    /// The PDU's octets.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out
    }
}

fn emit_ranges(ranges: &[SearchRange], out: &mut Vec<u8>, order: ByteOrder) {
    for r in ranges {
        r.start.emit(r.include, out, order);
        r.end.emit(false, out, order);
    }
}

fn octet_string_len(b: &[u8]) -> usize {
    4 + b.len().div_ceil(4) * 4
}

fn put_u16(out: &mut Vec<u8>, v: u16, order: ByteOrder) {
    match order {
        ByteOrder::Network => out.extend_from_slice(&v.to_be_bytes()),
        ByteOrder::Little => out.extend_from_slice(&v.to_le_bytes()),
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32, order: ByteOrder) {
    match order {
        ByteOrder::Network => out.extend_from_slice(&v.to_be_bytes()),
        ByteOrder::Little => out.extend_from_slice(&v.to_le_bytes()),
    }
}

fn put_octet_string(out: &mut Vec<u8>, b: &[u8], order: ByteOrder) {
    put_u32(out, u32::try_from(b.len()).unwrap_or(u32::MAX), order);
    out.extend_from_slice(b);
    out.resize(out.len() + (4 - b.len() % 4) % 4, 0);
}

/// Reads fields from a payload; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    order: ByteOrder,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ParseError> {
        let end = self.pos.checked_add(n).ok_or(ParseError::Short(what))?;
        let s = self.buf.get(self.pos..end).ok_or(ParseError::Short(what))?;
        self.pos = end;
        Ok(s)
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), ParseError> {
        self.take(n, what).map(|_| ())
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ParseError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ParseError> {
        let mut w = [0u8; 2];
        w.copy_from_slice(self.take(2, what)?);
        Ok(match self.order {
            ByteOrder::Network => u16::from_be_bytes(w),
            ByteOrder::Little => u16::from_le_bytes(w),
        })
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ParseError> {
        let mut w = [0u8; 4];
        w.copy_from_slice(self.take(4, what)?);
        Ok(match self.order {
            ByteOrder::Network => u32::from_be_bytes(w),
            ByteOrder::Little => u32::from_le_bytes(w),
        })
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, ParseError> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8, what)?);
        Ok(match self.order {
            ByteOrder::Network => u64::from_be_bytes(w),
            ByteOrder::Little => u64::from_le_bytes(w),
        })
    }

    /// An OID and its `include` field.
    fn oid(&mut self, what: &'static str) -> Result<(Oid, bool), ParseError> {
        let h = self.take(4, what)?;
        let (n, prefix, include) = (h[0], h[1], h[2] != 0);
        if n as usize > MAX_SUBIDS {
            return Err(ParseError::OidTooLong(n));
        }
        // Checked before allocating: the sub-identifiers must be in the payload.
        if self.buf.len() - self.pos < 4 * n as usize {
            return Err(ParseError::Short(what));
        }
        let mut v = Vec::with_capacity(n as usize + 5);
        if prefix != 0 {
            v.extend_from_slice(&INTERNET);
            v.push(u32::from(prefix));
        }
        for _ in 0..n {
            v.push(self.u32(what)?);
        }
        Ok((Oid(v), include))
    }

    fn octet_string(&mut self, what: &'static str) -> Result<Vec<u8>, ParseError> {
        let len = self.u32(what)? as usize;
        let data = self.take(len, what)?.to_vec();
        self.skip((4 - len % 4) % 4, what)?;
        Ok(data)
    }

    fn search_ranges(&mut self) -> Result<Vec<SearchRange>, ParseError> {
        let mut v = Vec::new();
        while self.pos < self.buf.len() {
            let (start, include) = self.oid("SearchRange start")?;
            let (end, _) = self.oid("SearchRange end")?;
            v.push(SearchRange {
                start,
                include,
                end,
            });
        }
        Ok(v)
    }

    fn varbinds(&mut self) -> Result<Vec<VarBind>, ParseError> {
        let mut v = Vec::new();
        while self.pos < self.buf.len() {
            let code = self.u16("v.type")?;
            self.skip(2, "reserved")?;
            let (name, _) = self.oid("v.name")?;
            let value = match code {
                2 => Value::Integer(self.u32("Integer")? as i32),
                4 => Value::OctetString(self.octet_string("Octet String")?),
                5 => Value::Null,
                6 => Value::ObjectIdentifier(self.oid("Object Identifier")?.0),
                64 => {
                    let b = self.octet_string("IpAddress")?;
                    Value::IpAddress(
                        <[u8; 4]>::try_from(b.as_slice())
                            .map_err(|_| ParseError::BadIpAddress(b.len()))?,
                    )
                }
                65 => Value::Counter32(self.u32("Counter32")?),
                66 => Value::Gauge32(self.u32("Gauge32")?),
                67 => Value::TimeTicks(self.u32("TimeTicks")?),
                68 => Value::Opaque(self.octet_string("Opaque")?),
                70 => Value::Counter64(self.u64("Counter64")?),
                128 => Value::NoSuchObject,
                129 => Value::NoSuchInstance,
                130 => Value::EndOfMibView,
                other => return Err(ParseError::UnknownValueType(other)),
            };
            v.push(VarBind { name, value });
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
