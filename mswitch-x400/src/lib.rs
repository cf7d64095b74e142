//! mswitch-x400: X.400 for mswitch — the BER codec layer, X.411 ASN.1 types, X.420 IPMS
//! information objects (IPM, IPN), the OSI stack over RFC 1006 (TPKT, COTP class 0, session,
//! presentation, ACSE, RTSE, ROS), P1 and P3 (MTS access) associations, X.400 message transfer,
//! and the RFC 2156 (MIXER) gateway mappings.
//!
//! Every protocol engine here is sans-IO: bytes and events in, bytes and events out.
#![forbid(unsafe_code)]

pub mod ber;
pub mod dispatch;
pub mod gateway;
pub mod ipm;
pub mod mta;
pub mod mts;
pub mod osi;
pub mod p1;
pub mod p3;
pub mod upper;

#[cfg(feature = "tokio")]
pub mod channel;
#[cfg(feature = "tokio")]
pub mod driver;
