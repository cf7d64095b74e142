//! The OSI stack under P1 and P3, one module per layer, each a wire format plus (where the
//! layer has state) a sans-IO engine:
//!
//! - [`tpkt`]: RFC 1006 packets, the framing of TPDUs on a TCP stream;
//! - [`cotp`]: X.224 (ISO 8073) TPDUs as class 0 uses them;
//! - [`transport`]: the class 0 transport connection over RFC 1006, for an initiator or a
//!   responder;
//! - [`session`]: X.225 session protocol version 2 (SPDUs and the session machine).
//!
//! The presentation, ACSE, RTSE and ROS PDUs are in [`crate::upper`].
pub mod cotp;
pub mod session;
pub mod tpkt;
pub mod transport;
