//! The OSI upper-layer stack used by X.400 over TCP/IP (RFC 1006), one sans-IO module per layer.

pub mod session;
