//! Addresses: RFC 5321 mailboxes, X.400 O/R addresses, and the [`Address`] that holds either.

mod mailbox;
mod or_address;
pub mod punycode;

use std::fmt;
use std::str::FromStr;

pub use mailbox::*;
pub use or_address::*;
pub use punycode::PunycodeError;

/// Why a string is not an address of either kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// The input looked like an RFC 5321 mailbox and is not a valid one.
    #[error("invalid mailbox: {0}")]
    Mailbox(#[from] MailboxError),
    /// The input looked like an X.400 std-or address (it starts with `/`) and is not valid.
    #[error("invalid X.400 address: {0}")]
    OrAddress(#[from] StdOrError),
}

/// An address the switch can carry: an Internet mailbox or an X.400 O/R address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An RFC 5321 mailbox.
    Mailbox(Mailbox),
    /// An X.400 O/R address (boxed: it is large and the rarer case).
    X400(Box<ORAddress>),
}

impl Address {
    /// Parses either form: a string that starts with `/` is an RFC 2156 std-or address,
    /// anything else a mailbox.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        if s.starts_with('/') {
            Ok(Address::X400(Box::new(s.parse::<ORAddress>()?)))
        } else {
            Ok(Address::Mailbox(Mailbox::parse(s)?))
        }
    }

    /// The mailbox, if this is an Internet address.
    pub fn as_mailbox(&self) -> Option<&Mailbox> {
        match self {
            Address::Mailbox(m) => Some(m),
            Address::X400(_) => None,
        }
    }

    /// The O/R address, if this is an X.400 address.
    pub fn as_or_address(&self) -> Option<&ORAddress> {
        match self {
            Address::X400(o) => Some(o),
            Address::Mailbox(_) => None,
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Mailbox(m) => m.fmt(f),
            Address::X400(o) => o.fmt(f),
        }
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl From<Mailbox> for Address {
    fn from(m: Mailbox) -> Self {
        Address::Mailbox(m)
    }
}

impl From<ORAddress> for Address {
    fn from(o: ORAddress) -> Self {
        Address::X400(Box::new(o))
    }
}
