//! mswitch-x400: X.400 ASN.1 types, the OSI stack over RFC 1006, P1 and P3 associations and
//! the SMTP-X.400 gateway mapping; channels behind a feature.
//!
//! Not implemented yet: this crate is a placeholder in the workspace until the X.400 work lands.
#![forbid(unsafe_code)]
