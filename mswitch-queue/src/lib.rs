//! mswitch-queue: the durable on-disk message queue, an implementation of
//! [`mswitch_core::store::QueueStore`].
//!
//! - One append-only log of segment files (`record` describes the format). Every arriving
//!   message is one checksummed record holding its envelope and content.
//! - **Group commit**: a writer thread takes every request waiting when it becomes free, writes
//!   them with one write and makes them durable with one `fdatasync`, then completes them all.
//!   `enqueue` resolves only after that sync has returned.
//! - **Faults**: a failed sync poisons the queue for writes (every waiter and every later
//!   enqueue fails; never retried and then acknowledged). A failed write (ENOSPC) is rolled back
//!   by truncating the segment to where the batch began; if that works the queue stays usable,
//!   otherwise it is poisoned. Free space below the reserve refuses enqueues early.
//! - **Recovery** at open: rebuilds the index from the records, accepts a torn tail in the last
//!   segment, quarantines damaged records elsewhere (copied to `quarantine/` and reported).
//! - Segments are deleted oldest first once nothing in them is live; **compaction** moves the
//!   live messages of old segments forward when the log holds much more than the live data.
//!
//! See `docs/queue.md` for the format, the guarantees and what is assumed of the OS.

pub mod fs;
mod index;
mod queue;
pub mod record;
mod recovery;
mod writer;

pub use queue::{DiskQueue, OpenError, QueueConfig, QueueStats};

#[cfg(test)]
mod tests;
