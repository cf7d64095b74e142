//! mswitch-core: the domain model, the traits and the submission pipeline of mswitch.
//!
//! This crate does no I/O, never reads the clock and names no async runtime. It defines:
//! - [`address`]: RFC 5321 mailboxes and X.400 O/R addresses;
//! - [`envelope`]: the envelope, recipients and their states, priority, DSN parameters, trace,
//!   and the envelope's stable binary encoding;
//! - the traits the rest of the switch implements: [`store::QueueStore`] (the durable queue),
//!   [`route::Router`], [`channel::Channel`], [`policy::Policy`];
//! - [`submission`]: the pipeline every inbound channel submits through;
//! - [`dsn`]: RFC 3464 delivery status notifications (bounces, delay and success reports);
//! - [`qmgr`]: the scheduler, as a pure state machine;
//! - [`memory`]: in-memory implementations for tests and examples (not durable).
#![forbid(unsafe_code)]

pub mod address;
pub mod channel;
pub mod dsn;
pub mod envelope;
pub mod id;
pub mod memory;
pub mod policy;
pub mod qmgr;
pub mod route;
pub mod status;
pub mod store;
pub mod submission;

pub use address::{Address, Mailbox, ORAddress};
pub use envelope::{Envelope, Priority, Recipient, RecipientState, ReversePath, Route};
pub use id::{ChannelId, QueueId, Timestamp};
pub use status::Status;
