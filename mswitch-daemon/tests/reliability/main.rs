//! The reliability and security suites (issue: crash, fault and hostile-input suites): mswitchd
//! as a process, against real peers on loopback, under crashes, injected faults and hostile
//! clients. `docs/reliability.md` lists every test, what it proves and its last result.
//!
//! The fast tests run with the workspace's tests (and so in CI); the slow or root-only ones are
//! `#[ignore]`d and run by `mswitch-daemon/tests/reliability/run`, the one command for all of
//! them.

// The daemon harness of the integration tests (it allows its own unused helpers).
#[path = "../it/common.rs"]
mod common;
// Load clients, smtp-sink's files and the reconciliation, shared with the load tests (it allows
// its own unused helpers).
#[path = "../it/loadkit.rs"]
mod loadkit;

// Durability: SIGKILL under load, power cut (and the same under eatmydata).
mod durability;
// Faults: fsync failing (libfiu), disk full, a corrupted queue file.
mod faults;
// Hostile input: smuggling, STARTTLS and AUTH, the open relay matrix, injection, loops.
mod hostile;
// Resource exhaustion: connection floods, slow senders.
mod resources;
