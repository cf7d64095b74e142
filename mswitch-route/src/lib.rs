//! mswitch-route: table, DNS MX and LDAP (LASER) routing, aliases, alternate addresses,
//! sub-addressing, distribution lists and X.400 routing trees (`Router` implementations).
//!
//! Not implemented yet: this crate is a placeholder in the workspace until routing lands.
//! Until then, `mswitch_core::memory::StaticRouter` serves tests and examples.
#![forbid(unsafe_code)]
