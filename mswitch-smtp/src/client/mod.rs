//! The client side of an SMTP (RFC 5321) or LMTP (RFC 2033) session: the engine that relays
//! messages to a peer.
//!
//! - [`session`]: [`ClientSession`], the sans-IO state machine: greeting, EHLO / LHLO (HELO
//!   fallback), STARTTLS, transactions with or without PIPELINING, DATA or BDAT, per-recipient
//!   outcomes, connection reuse, QUIT, timeouts;
//! - `content` (private): the content as it goes on the wire: dot-stuffing, line endings,
//!   BDAT chunks.
//!
//! See [`session`] for how a driver uses the engine and for the status codes it generates.

mod content;
pub mod session;

pub use session::{
    ClientAuth, ClientConfig, ClientSession, CloseReason, Event, Mode, Outcome, OutgoingMessage,
    RecipientResult, Stage, Timeouts, TlsPolicy, UsageError,
};
