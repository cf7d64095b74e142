//! The reliability and security suites (issue: crash, fault and hostile-input suites): mswitchd
//! as a process, against real peers on loopback, under crashes, injected faults and hostile
//! clients. `docs/reliability.md` lists every test, what it proves and its last result.
//!
//! The fast tests run with the workspace's tests (and so in CI); the slow or root-only ones are
//! `#[ignore]`d and run by `mswitch-daemon/tests/reliability/run`, the one command for all of
//! them.

// The daemon harness of the integration tests; not every helper is used here (the file allows
// dead code itself).
#[path = "../it/common.rs"]
mod common;
// Load clients, smtp-sink's files and the reconciliation, shared with the load tests.
#[path = "../it/loadkit.rs"]
mod loadkit;

mod durability;
mod faults;
mod resources;
