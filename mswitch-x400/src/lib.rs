//! mswitch-x400: X.400 ASN.1 types, the OSI stack over RFC 1006, P1 and P3 associations and
//! the SMTP-X.400 gateway mapping; channels behind a feature.
//!
//! Implemented so far: [`osi`], the transport layer (RFC 1006 TPKT and X.224 class 0). The rest
//! of the stack and the X.400 protocols are still to come.
#![forbid(unsafe_code)]

pub mod osi;
