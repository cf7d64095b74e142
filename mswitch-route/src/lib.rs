//! mswitch-route: the routing of mswitch: `Router` and `HostResolver` implementations.
//!
//! - [`table`]: routing tables (local domains, per-domain and per-address routes, wildcards, a
//!   default route, a hosts table), aliases, alternate addresses and sub-addressing;
//! - [`dns`]: MX resolution by the rules of RFC 5321 §5.1 and RFC 7505, with a cache, over a
//!   small lookup trait (hickory-resolver behind the `dns` feature);
//! - [`list`]: distribution lists, expanded by a processing channel with the owner as sender;
//! - [`laser`]: LASER routing, full-address lookup in an LDAP directory, over a small directory
//!   trait (ldap3 behind the `ldap` feature), with RFC 4515 filter escaping;
//! - [`directory`]: directory configuration, local domains, aliases and distribution lists
//!   read from an LDAP directory (over the same trait) as a snapshot to merge and compare;
//! - [`x400`]: X.400 routing by ordered routing trees of O/R address patterns (RFC 1801),
//!   from TOML or from the directory, with alternate MTAs and load balancing.
//!
//! The decision logic never touches the network: every lookup goes through a trait, so it is
//! tested with fakes, and the real back ends are tested against real servers on loopback.
#![forbid(unsafe_code)]

pub mod directory;
pub mod dns;
pub mod laser;
pub mod list;
pub mod table;
pub mod x400;
