//! mswitch-x400: X.400 ASN.1 types, the OSI stack over RFC 1006, P1 and P3 associations and
//! the SMTP-X.400 gateway mapping; channels behind a feature.
//!
//! Implemented so far: the X.225 session layer ([`osi::session`]).
#![forbid(unsafe_code)]

pub mod osi;
