//! The envelope: everything the switch knows about a message apart from its content.
//!
//! An envelope is built by the submission pipeline, stored by the queue (see [`codec`] for its
//! stable binary form), held in memory by the QMGR, and updated as recipients are delivered.

pub mod codec;
mod priority;

use std::fmt;

pub use priority::{MT_PRIORITY_MAX, MT_PRIORITY_MIN, Priority, X400Priority};

use crate::address::{Address, Mailbox};
use crate::id::{ChannelId, Timestamp};
use crate::status::Status;

/// The originator as the envelope carries it: an address, or the null reverse-path `<>` used by
/// notifications, which must never be answered with another notification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`: the message is itself a notification.
    Null,
    /// The originator's address.
    Address(Address),
}

impl ReversePath {
    /// Whether this is the null reverse-path.
    pub fn is_null(&self) -> bool {
        matches!(self, ReversePath::Null)
    }

    /// The address, unless null.
    pub fn address(&self) -> Option<&Address> {
        match self {
            ReversePath::Null => None,
            ReversePath::Address(a) => Some(a),
        }
    }

    /// The mailbox, if the originator is an Internet address.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        self.address().and_then(Address::as_mailbox)
    }
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => f.write_str("<>"),
            ReversePath::Address(a) => write!(f, "<{a}>"),
        }
    }
}

/// RFC 3461 `NOTIFY`: which delivery status notifications a recipient asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Notify {
    bits: u8,
}

impl Notify {
    const SUCCESS: u8 = 1;
    const FAILURE: u8 = 2;
    const DELAY: u8 = 4;
    const NEVER: u8 = 8;
    const SPECIFIED: u8 = 16;

    /// NOTIFY was not given: RFC 3461 §4.1 says to behave as `FAILURE,DELAY`.
    pub const fn unspecified() -> Self {
        Notify { bits: 0 }
    }

    /// `NOTIFY=NEVER`.
    pub const fn never() -> Self {
        Notify {
            bits: Self::NEVER | Self::SPECIFIED,
        }
    }

    /// `NOTIFY=` with any of SUCCESS, FAILURE, DELAY.
    pub const fn on(success: bool, failure: bool, delay: bool) -> Self {
        let mut bits = Self::SPECIFIED;
        if success {
            bits |= Self::SUCCESS;
        }
        if failure {
            bits |= Self::FAILURE;
        }
        if delay {
            bits |= Self::DELAY;
        }
        Notify { bits }
    }

    /// Whether the client gave NOTIFY at all (it is relayed only if it did).
    pub fn is_specified(self) -> bool {
        self.bits & Self::SPECIFIED != 0
    }

    /// Whether NOTIFY=NEVER was given.
    pub fn is_never(self) -> bool {
        self.bits & Self::NEVER != 0
    }

    /// Whether a success (delivered, relayed to a non-DSN peer, expanded) notice is wanted.
    pub fn success(self) -> bool {
        self.bits & Self::SUCCESS != 0
    }

    /// Whether a failure notice is wanted (the default when unspecified).
    pub fn failure(self) -> bool {
        if self.is_specified() {
            self.bits & Self::FAILURE != 0
        } else {
            true
        }
    }

    /// Whether a delay notice is wanted (the default when unspecified).
    pub fn delay(self) -> bool {
        if self.is_specified() {
            self.bits & Self::DELAY != 0
        } else {
            true
        }
    }

    fn to_bits(self) -> u8 {
        self.bits
    }

    fn from_bits(bits: u8) -> Option<Self> {
        let known = Self::SUCCESS | Self::FAILURE | Self::DELAY | Self::NEVER | Self::SPECIFIED;
        let never_with_others =
            bits & Self::NEVER != 0 && bits & (Self::SUCCESS | Self::FAILURE | Self::DELAY) != 0;
        let flags_without_specified = bits & Self::SPECIFIED == 0 && bits != 0;
        if bits & !known != 0 || never_with_others || flags_without_specified {
            return None;
        }
        Some(Notify { bits })
    }
}

/// RFC 3461 `RET`: how much of the message a failure notice returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DsnRet {
    /// `RET=FULL`
    Full,
    /// `RET=HDRS`
    Headers,
}

/// RFC 3461 `ORCPT`: the recipient as the original sender gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginalRecipient {
    /// The address type (`rfc822`, `utf-8`, `x400`, ...).
    pub addr_type: String,
    /// The address, decoded from xtext (or utf-8-addr) form.
    pub address: String,
}

/// The body of an Internet message, as declared by `BODY=` (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BodyType {
    /// 7-bit US-ASCII lines (the default).
    #[default]
    SevenBit,
    /// `BODY=8BITMIME`
    EightBitMime,
    /// `BODY=BINARYMIME` (needs CHUNKING to travel).
    BinaryMime,
}

/// What kind of content the message carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// An RFC 5322 / MIME message.
    Internet {
        /// The declared body type.
        body: BodyType,
        /// Whether the message needs SMTPUTF8 (RFC 6531) to travel.
        smtputf8: bool,
    },
    /// An X.400 content, opaque to the MTA.
    X400(X400ContentType),
}

impl ContentType {
    /// Which world the content belongs to.
    pub fn family(&self) -> ContentFamily {
        match self {
            ContentType::Internet { .. } => ContentFamily::Internet,
            ContentType::X400(_) => ContentFamily::X400,
        }
    }
}

impl Default for ContentType {
    fn default() -> Self {
        ContentType::Internet {
            body: BodyType::SevenBit,
            smtputf8: false,
        }
    }
}

/// X.411 `ContentType`: a built-in integer (2 = P2 IPM 1984, 22 = P22 IPM 1988, ...) or an
/// object identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum X400ContentType {
    /// `built-in` content type.
    BuiltIn(u16),
    /// `extended` content type, the OID's arcs.
    Extended(Vec<u32>),
}

/// The two worlds whose content the switch carries; converting between them is the gateway's
/// job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentFamily {
    /// RFC 5322 / MIME.
    Internet,
    /// X.400 contents.
    X400,
}

/// Where a channel should take a message next.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NextHop {
    /// The channel delivers itself (local mailbox, list expansion, gateway conversion).
    Local,
    /// Look up the domain's MX (or address) records at delivery time.
    Domain(String),
    /// A configured host (smarthost, static route), with an optional port.
    Host {
        /// Host name or IP literal.
        host: String,
        /// Port; the channel's default when absent.
        port: Option<u16>,
    },
    /// A named peer from the configuration (an X.400 MTA, an LMTP store).
    Peer(String),
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Local => f.write_str("local"),
            NextHop::Domain(d) => write!(f, "mx:{d}"),
            NextHop::Host { host, port: None } => write!(f, "[{host}]"),
            NextHop::Host {
                host,
                port: Some(p),
            } => write!(f, "[{host}]:{p}"),
            NextHop::Peer(p) => write!(f, "peer:{p}"),
        }
    }
}

/// A routing decision for one recipient: which channel, which next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// The channel that takes the message.
    pub channel: ChannelId,
    /// Where the channel takes it.
    pub next_hop: NextHop,
    /// Whether this switch is responsible for the recipient's domain (local delivery or a
    /// domain it serves as a relay for). Mail to such recipients is accepted from anyone; other
    /// recipients need a client that may relay.
    pub local: bool,
}

/// Where a recipient stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum RecipientState {
    /// Not yet attempted.
    #[default]
    Pending,
    /// Attempted and failed temporarily; will be retried.
    Deferred {
        /// Attempts made so far.
        attempts: u32,
        /// When the next attempt is due.
        next_attempt: Timestamp,
        /// The last failure.
        last: Status,
    },
    /// Delivered to its final destination.
    Delivered {
        /// When.
        at: Timestamp,
        /// The reply that accepted it.
        status: Status,
    },
    /// Relayed to a peer that takes over responsibility (and, for DSN, one that did not
    /// support DSN when `relayed` notices are owed).
    Relayed {
        /// When.
        at: Timestamp,
        /// The reply that accepted it.
        status: Status,
    },
    /// Expanded into other recipients (a list), which are carried by another message.
    Expanded {
        /// When.
        at: Timestamp,
    },
    /// Failed permanently (or expired); a non-delivery notice is owed if requested.
    Failed {
        /// When.
        at: Timestamp,
        /// Why.
        status: Status,
    },
}

impl RecipientState {
    /// Whether nothing more will be done for this recipient.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            RecipientState::Delivered { .. }
                | RecipientState::Relayed { .. }
                | RecipientState::Expanded { .. }
                | RecipientState::Failed { .. }
        )
    }
}

/// One recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recipient {
    /// The address delivered to.
    pub address: Address,
    /// The recipient as originally given (RFC 3461 ORCPT), for notifications.
    pub original: Option<OriginalRecipient>,
    /// Which notifications were asked for.
    pub notify: Notify,
    /// The route chosen at submission; `None` until the pipeline has routed it.
    pub route: Option<Route>,
    /// Delivery state.
    pub state: RecipientState,
}

impl Recipient {
    /// A pending, unrouted recipient with default DSN settings.
    pub fn new(address: Address) -> Self {
        Recipient {
            address,
            original: None,
            notify: Notify::unspecified(),
            route: None,
            state: RecipientState::Pending,
        }
    }
}

/// One hop of trace: who handled the message, from whom, how, when (the content of a
/// `Received:` header or an X.400 trace element).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceHop {
    /// The host or MTA that received the message.
    pub by: String,
    /// The peer it came from (its name and address as seen), if known.
    pub from: Option<String>,
    /// The protocol (`ESMTPS`, `LMTP`, `P1`, ...).
    pub with: String,
    /// The identifier the receiving host gave the message.
    pub id: Option<String>,
    /// When it arrived there.
    pub at: Timestamp,
}

/// The envelope of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The originator (reverse-path).
    pub originator: ReversePath,
    /// The recipients, each with its own state.
    pub recipients: Vec<Recipient>,
    /// Priority.
    pub priority: Priority,
    /// RFC 3461 `RET`.
    pub dsn_ret: Option<DsnRet>,
    /// RFC 3461 `ENVID`, decoded from xtext.
    pub dsn_envid: Option<String>,
    /// What the content is.
    pub content_type: ContentType,
    /// Content size in octets.
    pub size: u64,
    /// When the message was accepted.
    pub arrival: Timestamp,
    /// Not to be delivered before this time (RFC 4865 FUTURERELEASE, X.400 deferred delivery).
    pub deferred_until: Option<Timestamp>,
    /// Not to be delivered after this time; the message fails then (queue lifetime, RFC 2852
    /// DELIVERBY, X.400 latest delivery time).
    pub expires: Option<Timestamp>,
    /// RFC 8689 REQUIRETLS: every onward hop must use verified TLS.
    pub require_tls: bool,
    /// The identity the submitter authenticated as, if any (RFC 4954 `AUTH=`).
    pub authenticated_as: Option<String>,
    /// Hops so far, oldest first.
    pub trace: Vec<TraceHop>,
    /// The distribution lists this message was expanded from, oldest first (the expansion
    /// history: a list already in it is not expanded again, which stops loops across lists).
    pub expansions: Vec<String>,
}

impl Envelope {
    /// An envelope with no recipients and default parameters.
    pub fn new(originator: ReversePath, arrival: Timestamp) -> Self {
        Envelope {
            originator,
            recipients: Vec::new(),
            priority: Priority::Normal,
            dsn_ret: None,
            dsn_envid: None,
            content_type: ContentType::default(),
            size: 0,
            arrival,
            deferred_until: None,
            expires: None,
            require_tls: false,
            authenticated_as: None,
            trace: Vec::new(),
            expansions: Vec::new(),
        }
    }

    /// Whether every recipient has reached a final state.
    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| r.state.is_final())
    }
}

/// An envelope kept in its queue encoding ([`codec`]): one allocation of about a hundred octets
/// instead of one per string and recipient (a decoded envelope with one recipient takes about
/// eight hundred). The QMGR holds waiting messages this way, and queue recovery hands them out
/// this way, so that a queue of a million messages never has all of them decoded at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedEnvelope(Box<[u8]>);

impl PackedEnvelope {
    /// Packs an envelope; `None` if it is beyond what [`codec::decode`] accepts back (more
    /// recipients, trace hops or expansions than its limits), which a queued one never is.
    pub fn pack(envelope: &Envelope) -> Option<Self> {
        if envelope.recipients.len() > codec::MAX_RECIPIENTS
            || envelope.trace.len() > codec::MAX_TRACE_HOPS
            || envelope.expansions.len() > codec::MAX_EXPANSIONS
        {
            return None;
        }
        Some(PackedEnvelope(codec::encode(envelope).into_boxed_slice()))
    }

    /// Keeps encoded bytes as they are, after checking that they decode.
    pub fn from_encoded(bytes: &[u8]) -> Result<Self, codec::DecodeError> {
        codec::decode(bytes)?;
        Ok(PackedEnvelope(bytes.into()))
    }

    /// The envelope, decoded.
    pub fn unpack(&self) -> Result<Envelope, codec::DecodeError> {
        codec::decode(&self.0)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}
