//! The server side of an SMTP, submission or LMTP session.

pub mod auth_limit;
pub mod data;
pub mod session;

pub use session::{
    AcceptedRecipient, Event, Mode, ServerConfig, ServerSession, Timeout, UsageError,
};
