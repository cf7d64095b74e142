//! mswitch-smtp: SMTP (RFC 5321), submission (RFC 6409) and LMTP (RFC 2033) as sans-IO state
//! machines: bytes and time in; bytes, events and deadlines out. No sockets here.
//!
//! - [`proto`]: the wire formats: commands and their parameters, replies, xtext;
//! - [`server`]: the server side of a session, and the DATA/BDAT readers.
//!
//! Still to come: STARTTLS and SASL, the client engine, LMTP client, the tokio drivers.

pub mod proto;
pub mod server;
