//! mswitch-queue: the durable on-disk message queue (`QueueStore` implementation): segment
//! files, group commit, recovery, compaction.
//!
//! Not implemented yet: this crate is a placeholder in the workspace until the queue lands.
//! Until then, `mswitch_core::memory::MemoryQueue` (not durable) serves tests and examples.
#![forbid(unsafe_code)]
