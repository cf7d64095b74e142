//! mswitch-daemon: assembles the mswitch crates into `mswitchd` (and, later, `mswitchctl`).
//! It holds configuration loading and process concerns only; protocol and scheduling logic
//! live in the library crates.

pub mod config;
