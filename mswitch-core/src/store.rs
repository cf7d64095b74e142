//! The durable queue, as the rest of the switch sees it.
//!
//! The one rule every implementation must keep: [`QueueStore::enqueue`] resolves `Ok` only once
//! the envelope and content are durable (on disk, fsync returned). An inbound channel answers
//! success to its peer only after that, so nothing acknowledged is ever lost.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::envelope::{Envelope, PackedEnvelope, RecipientState};
use crate::id::QueueId;
use crate::status::Status;

/// A message's content, shared without copying (it may be a memory map of a queue file).
#[derive(Clone)]
pub struct Content(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl Content {
    /// Wraps anything that derefs to bytes: a `Vec<u8>`, a memory map, a slice of a segment.
    pub fn new(bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> Self {
        Content(Arc::new(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        (*self.0).as_ref()
    }

    /// Length in octets.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Content({} octets)", self.len())
    }
}

impl From<Vec<u8>> for Content {
    fn from(v: Vec<u8>) -> Self {
        Content::new(v)
    }
}

/// Why a message could not be queued. Every variant is the switch's problem, not the sender's,
/// except [`EnqueueError::TooLarge`]; the sender should retry the others later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnqueueError {
    /// A write or fsync failed earlier; the queue refuses writes until it is repaired or
    /// restarted, because data it acknowledged after such a failure might not be on disk.
    #[error("queue is poisoned after an I/O failure: {reason}")]
    Poisoned {
        /// The failure that poisoned it.
        reason: String,
    },
    /// Free space is below the configured reserve.
    #[error("insufficient queue space: {available} octets free, {reserve} reserved")]
    InsufficientSpace {
        /// Octets free on the queue's file system.
        available: u64,
        /// The configured reserve.
        reserve: u64,
    },
    /// The message is larger than the queue accepts.
    #[error("message of {size} octets exceeds the queue limit of {limit}")]
    TooLarge {
        /// The message size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The write failed (and the queue is now poisoned).
    #[error("queue write failed: {0}")]
    Io(String),
    /// The queue has been closed (shutdown in progress).
    #[error("queue is closed")]
    Closed,
}

impl From<&EnqueueError> for Status {
    fn from(e: &EnqueueError) -> Status {
        match e {
            EnqueueError::InsufficientSpace { .. } => {
                Status::new(452, (4, 3, 1), "Insufficient system storage")
            }
            EnqueueError::TooLarge { limit, .. } => Status::new(
                552,
                (5, 3, 4),
                format!("Message size exceeds fixed maximum message size ({limit})"),
            ),
            EnqueueError::Poisoned { .. } | EnqueueError::Io(_) => Status::new(
                451,
                (4, 3, 0),
                "Queue temporarily unavailable, try again later",
            ),
            EnqueueError::Closed => {
                Status::new(421, (4, 3, 2), "System shutting down, try again later")
            }
        }
    }
}

/// Why a queue operation on an existing message failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No message with this identifier is queued.
    #[error("no queued message {0}")]
    UnknownMessage(QueueId),
    /// A recipient index outside the message's recipient list.
    #[error("message {id} has no recipient {index}")]
    UnknownRecipient {
        /// The message.
        id: QueueId,
        /// The bad index.
        index: usize,
    },
    /// The queue refuses writes after an I/O failure.
    #[error("queue is poisoned: {0}")]
    Poisoned(String),
    /// Reading or writing failed.
    #[error("queue I/O error: {0}")]
    Io(String),
    /// Stored data failed its checksum or did not decode; it has been quarantined.
    #[error("corrupt queue data: {0}")]
    Corrupt(String),
}

/// One recipient's new state, by its index in the envelope's recipient list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientUpdate {
    /// Index into `Envelope::recipients`.
    pub index: usize,
    /// The new state.
    pub state: RecipientState,
}

/// A message found in the queue at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its identifier.
    pub id: QueueId,
    /// Its envelope with every recorded outcome applied.
    pub envelope: Envelope,
}

/// A message found in the queue at recovery, its envelope packed (see
/// [`PackedEnvelope`]): what a queue of many messages hands to the QMGR at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedMessage {
    /// Its identifier.
    pub id: QueueId,
    /// Its envelope with every recorded outcome applied.
    pub envelope: PackedEnvelope,
}

/// What recovery found, envelopes packed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredPacked {
    /// Every message still queued, with its current state.
    pub messages: Vec<PackedMessage>,
    /// Damaged data that was quarantined and reported.
    pub quarantined: Vec<Quarantined>,
}

impl RecoveredPacked {
    /// The envelopes decoded (an envelope that does not decode, which the queue has already
    /// checked against, is left out).
    pub fn unpack(self) -> Recovered {
        Recovered {
            messages: self
                .messages
                .into_iter()
                .filter_map(|m| {
                    Some(StoredMessage {
                        id: m.id,
                        envelope: m.envelope.unpack().ok()?,
                    })
                })
                .collect(),
            quarantined: self.quarantined,
        }
    }
}

/// Data that recovery set aside instead of delivering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where it was (file and offset, or another location an operator can find).
    pub location: String,
    /// Why it was set aside.
    pub reason: String,
}

/// What recovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Every message still queued, with its current state.
    pub messages: Vec<StoredMessage>,
    /// Damaged data that was quarantined and reported.
    pub quarantined: Vec<Quarantined>,
}

/// The durable message queue.
///
/// The QMGR calls [`recover`](QueueStore::recover) once at start-up and keeps the state in
/// memory from then on; it never reads the queue back during normal operation.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Checks whether a message of about `size_hint` octets could be queued now, without
    /// writing. SMTP calls it at MAIL FROM (to answer 452 before DATA when space is short).
    fn admission(&self, size_hint: Option<u64>) -> Result<(), EnqueueError>;

    /// Writes a message. Resolves `Ok` only after the envelope and content are durable.
    async fn enqueue(&self, envelope: &Envelope, content: &[u8]) -> Result<QueueId, EnqueueError>;

    /// Records new states for some recipients of a queued message.
    ///
    /// It need not be durable when it resolves, only soon after and before any later
    /// `enqueue` resolves: losing it in a crash replays the earlier state (recipients tried
    /// again, duplicates), never loses a message.
    async fn record(&self, id: QueueId, updates: &[RecipientUpdate]) -> Result<(), StoreError>;

    /// Removes a message (every recipient done, or deleted by an operator). Durable as
    /// [`QueueStore::record`] is: soon, and before any later `enqueue` resolves.
    async fn remove(&self, id: QueueId) -> Result<(), StoreError>;

    /// The content of a queued message, for delivery.
    async fn content(&self, id: QueueId) -> Result<Content, StoreError>;

    /// Reads everything queued (at start-up), quarantining what is damaged.
    async fn recover(&self) -> Result<Recovered, StoreError>;
}
