//! The OSI stack under P1 and P3, one module per layer, each a wire format plus (where the
//! layer has state) a sans-IO engine:
//!
//! - [`tpkt`]: RFC 1006 packets, the framing of TPDUs on a TCP stream;
//! - [`cotp`]: X.224 (ISO 8073) TPDUs as class 0 uses them;
//! - [`transport`]: the class 0 transport connection over RFC 1006, for an initiator or a
//!   responder.
pub mod cotp;
pub mod tpkt;
pub mod transport;
