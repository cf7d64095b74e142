//! X.225 (ISO 8327-1) connection-oriented session protocol, version 2, as a sans-IO engine.
//!
//! The session layer sits on a transport connection that delivers whole TSDUs (the caller
//! reassembles TPKT/COTP; this module knows nothing about them). [`spdu`] is the wire codec
//! (X.225 §8); [`machine`] is the session protocol machine for one connection.
//!
//! Functional units implemented: Kernel, Half-duplex, Duplex, Minor synchronize, Activity
//! management (with S-CONTROL-GIVE) and Exceptions — what P1 (Kernel + Half-duplex + Minor
//! synchronize + Activity management + Exceptions, requirements `0x0249`) and P3 (Kernel +
//! Duplex) use. Not implemented: Major synchronize, Resynchronize, Negotiated release, Expedited,
//! Typed data, Capability data, activity resume, segmenting, extended concatenation, transport
//! connection reuse and the CONNECT DATA OVERFLOW mechanism (connect user data above 10240
//! octets).
//!
//! # Driving a connection
//! 1. Build a [`SessionConnection`] with [`SessionConnection::initiator`] or
//!    [`SessionConnection::responder`] once the transport connection is up.
//! 2. Feed each received TSDU to [`SessionConnection::handle_tsdu`].
//! 3. Issue commands ([`SessionConnection::connect`], [`SessionConnection::send_data`], ...).
//! 4. After each of 2 and 3, drain [`SessionConnection::poll_tsdu`] (write each TSDU to the
//!    transport) and [`SessionConnection::poll_event`] (hand each event to the session user).
//! 5. When [`SessionConnection::state`] is [`SessionState::Closed`] and `poll_tsdu` is empty,
//!    disconnect the transport.
//!
//! The session layer has no timers of its own, so there is no `poll_timeout`.

pub mod machine;
pub mod spdu;

use std::fmt;
use std::ops::{BitAnd, BitOr, Not};

pub use machine::{SessionConfig, SessionConnection, SessionEvent, SessionState};
pub use spdu::{Spdu, parse_tsdu};

/// Errors of the session layer: malformed SPDUs, SPDUs the peer may not send now, commands the
/// local user may not issue now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer sent an SPDU, a parameter or a length indicator that ends before its declared
    /// length.
    #[error("truncated {what}")]
    Truncated {
        /// The element that was cut short.
        what: &'static str,
    },
    /// The peer sent an SPDU code this implementation does not know.
    #[error("unknown SPDU code {si:#04x}")]
    UnknownSpdu {
        /// The SPDU identifier.
        si: u8,
    },
    /// The peer sent an SPDU that belongs to a functional unit or mechanism this implementation
    /// does not support (activity resume, capability data, typed data, ...).
    #[error("unsupported SPDU code {si:#04x}")]
    UnsupportedSpdu {
        /// The SPDU identifier.
        si: u8,
    },
    /// The TSDU breaks the basic concatenation rules of X.225 §6.3.7.
    #[error("invalid SPDU concatenation: {0}")]
    Concatenation(&'static str),
    /// An SPDU carries more parameters than [`spdu::MAX_PARAMETERS`].
    #[error("more than {max} parameters in one SPDU")]
    TooManyParameters {
        /// The limit.
        max: usize,
    },
    /// A parameter has a length or a value this implementation cannot accept.
    #[error("bad parameter {code} in {spdu}: {reason}")]
    BadParameter {
        /// The SPDU that carried it.
        spdu: &'static str,
        /// The PI or PGI code.
        code: u8,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A mandatory parameter is absent.
    #[error("{spdu} without mandatory parameter {code}")]
    MissingParameter {
        /// The SPDU.
        spdu: &'static str,
        /// The missing PI code.
        code: u8,
    },
    /// The peer segments SSDUs (enclosure item other than "beginning and end"); segmenting is
    /// never negotiated by this implementation.
    #[error("segmented SPDU received; segmenting is not supported")]
    Segmented,
    /// User data is longer than the limit that applies to it (configuration or X.225).
    #[error("user data of {len} octets exceeds the limit of {max}")]
    UserDataTooLong {
        /// The length offered.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A length does not fit the two-octet length indicator of X.225 §8.2.5.
    #[error("length {len} does not fit a length indicator")]
    LengthOverflow {
        /// The length.
        len: usize,
    },
    /// The peer sent an SPDU that is not valid in the current state.
    #[error("{spdu} SPDU not valid in state {state:?}")]
    UnexpectedSpdu {
        /// The SPDU received.
        spdu: &'static str,
        /// Our state when it arrived.
        state: SessionState,
    },
    /// The peer sent an SPDU that needs a token the peer does not hold (or gave a token it did
    /// not hold).
    #[error("{spdu} SPDU sent without the {tokens} token(s)")]
    PeerTokenViolation {
        /// The SPDU received.
        spdu: &'static str,
        /// The tokens concerned.
        tokens: Tokens,
    },
    /// The peer violated the negotiation rules (accepted functional units it was not offered,
    /// no version in common, ...).
    #[error("peer negotiation error: {0}")]
    Negotiation(&'static str),
    /// The peer cannot work with this implementation or this configuration (no dialogue mode
    /// in common, ...); a REFUSE was queued where the connection was being set up.
    #[error("peer incompatible: {0}")]
    Incompatible(&'static str),
    /// The peer proposed only protocol versions this implementation does not support
    /// (version 2 is required); a REFUSE was queued.
    #[error("session protocol version 2 not proposed by the peer")]
    VersionNotSupported,
    /// The command is not valid in the current state.
    #[error("{command} not allowed in state {state:?}")]
    InvalidState {
        /// The command.
        command: &'static str,
        /// The current state.
        state: SessionState,
    },
    /// The command needs tokens the local user does not hold.
    #[error("{command} needs the {missing} token(s)")]
    TokensNotOwned {
        /// The command.
        command: &'static str,
        /// The tokens missing.
        missing: Tokens,
    },
    /// The command belongs to a functional unit that was not negotiated.
    #[error("{command} needs functional unit(s) {missing} that were not negotiated")]
    FunctionalUnitNotSelected {
        /// The command.
        command: &'static str,
        /// The functional units missing.
        missing: FunctionalUnits,
    },
    /// The command is not valid inside (or outside) an activity, or while an activity
    /// operation waits for its acknowledgement.
    #[error("{command} not allowed now: {reason}")]
    ActivityRule {
        /// The command.
        command: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A command argument is invalid (selector or activity identifier too long, ...).
    #[error("invalid argument to {command}: {reason}")]
    InvalidArgument {
        /// The command.
        command: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The configuration asks for something impossible (no dialogue mode, ...).
    #[error("invalid session configuration: {0}")]
    Config(&'static str),
    /// The session connection is closed; nothing more can be sent or received.
    #[error("session connection closed")]
    Closed,
}

/// Whose fault a [`SessionError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The peer sent something malformed or out of sequence.
    Peer,
    /// The peer is well-behaved but cannot work with us (versions, functional units).
    PeerIncompatible,
    /// The local user issued a command it may not issue now.
    Local,
    /// A size limit (this implementation's or X.225's) was exceeded, by received data or by a
    /// command's argument.
    Limit,
    /// The local configuration is wrong.
    Configuration,
}

impl SessionError {
    /// Who caused this error.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Truncated { .. }
            | Self::UnknownSpdu { .. }
            | Self::Concatenation(_)
            | Self::TooManyParameters { .. }
            | Self::BadParameter { .. }
            | Self::MissingParameter { .. }
            | Self::UnexpectedSpdu { .. }
            | Self::PeerTokenViolation { .. }
            | Self::Negotiation(_) => Fault::Peer,
            Self::UnsupportedSpdu { .. }
            | Self::Segmented
            | Self::VersionNotSupported
            | Self::Incompatible(_) => Fault::PeerIncompatible,
            Self::Config(_) => Fault::Configuration,
            Self::UserDataTooLong { .. } | Self::LengthOverflow { .. } => Fault::Limit,
            Self::InvalidState { .. }
            | Self::TokensNotOwned { .. }
            | Self::FunctionalUnitNotSelected { .. }
            | Self::ActivityRule { .. }
            | Self::InvalidArgument { .. }
            | Self::Closed => Fault::Local,
        }
    }
}

/// Session functional units, encoded as the Session User Requirements parameter (PI 20,
/// X.225 §8.3.1.16). The Kernel unit is implicit and has no bit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FunctionalUnits(u16);

impl FunctionalUnits {
    /// No functional unit beyond the Kernel.
    pub const KERNEL: Self = Self(0);
    /// Half-duplex (bit 1).
    pub const HALF_DUPLEX: Self = Self(0x0001);
    /// Duplex (bit 2).
    pub const DUPLEX: Self = Self(0x0002);
    /// Expedited data (bit 3).
    pub const EXPEDITED: Self = Self(0x0004);
    /// Minor synchronize (bit 4).
    pub const MINOR_SYNC: Self = Self(0x0008);
    /// Major synchronize (bit 5).
    pub const MAJOR_SYNC: Self = Self(0x0010);
    /// Resynchronize (bit 6).
    pub const RESYNC: Self = Self(0x0020);
    /// Activity management (bit 7).
    pub const ACTIVITY_MANAGEMENT: Self = Self(0x0040);
    /// Negotiated release (bit 8).
    pub const NEGOTIATED_RELEASE: Self = Self(0x0080);
    /// Capability data exchange (bit 9).
    pub const CAPABILITY_DATA: Self = Self(0x0100);
    /// Exceptions (bit 10).
    pub const EXCEPTIONS: Self = Self(0x0200);
    /// Typed data (bit 11).
    pub const TYPED_DATA: Self = Self(0x0400);
    /// Symmetric synchronize (bit 12, version 2 addendum).
    pub const SYMMETRIC_SYNC: Self = Self(0x0800);
    /// Data separation (bit 13, version 2 addendum).
    pub const DATA_SEPARATION: Self = Self(0x1000);

    /// The units P1 uses in normal mode: Half-duplex, Minor synchronize, Activity management,
    /// Exceptions (`0x0249`).
    pub const P1: Self = Self(0x0249);
    /// The units P3 uses: Duplex (`0x0002`).
    pub const P3: Self = Self(0x0002);
    /// The value X.225 assumes when the Session User Requirements parameter is absent:
    /// Half-duplex, Minor synchronize, Activity management, Capability data, Exceptions.
    pub const ABSENT_DEFAULT: Self = Self(0x0349);
    /// The units this implementation can negotiate.
    pub const SUPPORTED: Self = Self(0x0001 | 0x0002 | 0x0008 | 0x0040 | 0x0200);

    /// From the raw PI 20 value, keeping unknown bits.
    pub const fn from_bits(bits: u16) -> Self {
        Self(bits)
    }

    /// The raw PI 20 value.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Whether every unit of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a unit.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no unit beyond the Kernel is present.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The tokens that exist on a connection with these units (X.225 §5.6).
    pub const fn available_tokens(self) -> Tokens {
        let mut t = 0;
        if self.0 & Self::HALF_DUPLEX.0 != 0 {
            t |= Tokens::DATA.0;
        }
        if self.0 & (Self::MINOR_SYNC.0 | Self::SYMMETRIC_SYNC.0) != 0 {
            t |= Tokens::MINOR_SYNC.0;
        }
        if self.0 & (Self::MAJOR_SYNC.0 | Self::ACTIVITY_MANAGEMENT.0) != 0 {
            t |= Tokens::MAJOR_ACTIVITY.0;
        }
        if self.0 & Self::NEGOTIATED_RELEASE.0 != 0 {
            t |= Tokens::RELEASE.0;
        }
        Tokens(t)
    }
}

impl BitOr for FunctionalUnits {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitAnd for FunctionalUnits {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl Not for FunctionalUnits {
    type Output = Self;
    fn not(self) -> Self {
        Self(!self.0)
    }
}

impl fmt::Debug for FunctionalUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FunctionalUnits({:#06x} {})", self.0, self)
    }
}

impl fmt::Display for FunctionalUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u16, &str); 13] = [
            (0x0001, "half-duplex"),
            (0x0002, "duplex"),
            (0x0004, "expedited"),
            (0x0008, "minor-sync"),
            (0x0010, "major-sync"),
            (0x0020, "resync"),
            (0x0040, "activity-management"),
            (0x0080, "negotiated-release"),
            (0x0100, "capability-data"),
            (0x0200, "exceptions"),
            (0x0400, "typed-data"),
            (0x0800, "symmetric-sync"),
            (0x1000, "data-separation"),
        ];
        f.write_str("kernel")?;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                f.write_str("+")?;
                f.write_str(name)?;
            }
        }
        Ok(())
    }
}

/// A set of session tokens, encoded as the Token Item parameter (PI 16, X.225 §8.3.16).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tokens(u8);

impl Tokens {
    /// No token.
    pub const NONE: Self = Self(0);
    /// The data token (Half-duplex).
    pub const DATA: Self = Self(0x01);
    /// The synchronize-minor token.
    pub const MINOR_SYNC: Self = Self(0x04);
    /// The major/activity token.
    pub const MAJOR_ACTIVITY: Self = Self(0x10);
    /// The release token (Negotiated release).
    pub const RELEASE: Self = Self(0x40);
    /// All four tokens.
    pub const ALL: Self = Self(0x55);

    /// From a Token Item value; reserved bits are dropped.
    pub const fn from_bits_truncate(bits: u8) -> Self {
        Self(bits & Self::ALL.0)
    }

    /// The Token Item value.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every token of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a token.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The tokens of `self` not in `other`.
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl BitOr for Tokens {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitAnd for Tokens {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({self})")
    }
}

impl fmt::Display for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(u8, &str); 4] = [
            (0x01, "data"),
            (0x04, "minor-sync"),
            (0x10, "major-activity"),
            (0x40, "release"),
        ];
        if self.0 == 0 {
            return f.write_str("none");
        }
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("+")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}
