//! Integration tests of mswitch-smtp: the sessions wired together without sockets, and (with
//! the `tokio` feature) the driver against real peers on loopback.

#[cfg(feature = "tokio")]
mod channel;
#[cfg(feature = "tokio")]
mod drivers;
#[cfg(feature = "tokio")]
mod peers;
#[cfg(feature = "tokio")]
mod swaks;
mod tls_pair;
