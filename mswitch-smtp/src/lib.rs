//! mswitch-smtp: SMTP (RFC 5321), submission (RFC 6409) and LMTP (RFC 2033) as sans-IO state
//! machines: bytes and time in; bytes, events and deadlines out. No sockets here.
//!
//! - [`proto`]: the wire formats: commands and their parameters, replies, xtext;
//! - [`server`]: the server side of a session, and the DATA/BDAT readers;
//! - [`client`]: the client side of an SMTP or LMTP session (relaying messages to a peer);
//! - [`sasl`]: SASL for AUTH (RFC 4954): PLAIN, LOGIN, SCRAM-SHA-256 and EXTERNAL, server and
//!   client side, and the SCRAM password file;
//! - [`tls`]: TLS for STARTTLS with rustls (ring): configurations from PEM (SNI, optional
//!   client certificates, opportunistic verification), and a sans-IO record adapter between
//!   the sessions and the network, with the client certificate's identity for SASL EXTERNAL.
//!
//! With the `tokio` feature:
//! - [`driver`]: the tokio drivers that run the server and client sessions over TCP;
//! - [`channel`]: the outbound SMTP / LMTP channel, mswitch-core's `Channel` for delivery.

#[cfg(feature = "tokio")]
pub mod channel;
pub mod client;
#[cfg(feature = "tokio")]
pub mod driver;
pub mod proto;
pub mod sasl;
pub mod server;
pub mod tls;
