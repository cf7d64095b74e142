//! mswitch-daemon: assembles the mswitch crates into `mswitchd` (and, later, `mswitchctl`).
//! It holds configuration loading, the assembly of the switch ([`switch::Switch`]) and the
//! channels that need the file system (Maildir); protocol and scheduling logic live in the
//! library crates.

pub mod agentx; // agentx
pub mod config;
pub mod gateway_directory;
pub mod inbound;
pub mod logging;
pub mod maildir;
pub mod management;
pub mod management_tcp;
pub mod metrics;
pub mod switch;
pub mod x400;
pub mod x400store;
