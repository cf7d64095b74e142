//! Channels: the parts that bring messages in, take them out, or process them.
//!
//! A channel author implements [`Channel`]: a [`ChannelDescriptor`] saying what kind of channel
//! it is, and the one method that kind uses. An inbound channel's [`Channel::serve`] runs until
//! shutdown and hands every message to the [`SubmissionPipeline`]; an outbound or processing
//! channel's [`Channel::deliver`] is called by the QMGR with one message, some of its
//! recipients and a next hop, and reports an outcome per recipient. A processing channel (list
//! expansion, gateway conversion) delivers by submitting new messages through the pipeline it
//! was built with, then reports its recipients as expanded (or failed).

use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::envelope::{ContentFamily, Envelope, NextHop};
use crate::id::{ChannelId, QueueId, Timestamp};
use crate::status::Status;
use crate::store::Content;
use crate::submission::SubmissionPipeline;

/// The role a channel plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Brings messages in (SMTP server, X.400 P1 responder, P3 submission).
    Inbound,
    /// Takes messages out (SMTP client, LMTP, P1 initiator, local mailbox).
    Outbound,
    /// Transforms messages and submits the results again (list expansion, gateway).
    Processing,
}

/// What the switch needs to know about a channel to route to it and schedule it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDescriptor {
    /// The configured name.
    pub id: ChannelId,
    /// Its role.
    pub kind: ChannelKind,
    /// The content families it can take (an SMTP channel takes Internet mail, a P1 channel
    /// X.400 content, a gateway either).
    pub accepts: Vec<ContentFamily>,
}

impl ChannelDescriptor {
    /// Whether the channel takes content of this family.
    pub fn accepts(&self, family: ContentFamily) -> bool {
        self.accepts.contains(&family)
    }
}

/// One delivery attempt handed to an outbound or processing channel.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    /// The queued message.
    pub queue_id: QueueId,
    /// Its envelope as the QMGR holds it.
    pub envelope: Arc<Envelope>,
    /// Its content.
    pub content: Content,
    /// Which recipients to attempt, as indices into `envelope.recipients`; all share the
    /// channel and next hop.
    pub recipients: Vec<usize>,
    /// Where to take them.
    pub next_hop: NextHop,
    /// 1 for the first attempt of these recipients, then counting up.
    pub attempt: u32,
}

/// The result of an attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// Delivered to its final destination.
    Delivered(Status),
    /// Handed to a peer that takes over responsibility (and that took the DSN parameters, or
    /// none were given).
    Relayed(Status),
    /// Handed to a peer that takes over responsibility but does not support DSN, so the DSN
    /// parameters were not passed on: RFC 3461 §4.2 owes a "relayed" notice if the recipient
    /// asked for success notices.
    RelayedWithoutDsn(Status),
    /// Expanded or converted into new messages that were queued.
    Expanded,
    /// Not delivered; try again later.
    TryLater(Status),
    /// Not deliverable; a non-delivery notice is owed if requested.
    Failed(Status),
}

/// One recipient's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// Index into the envelope's recipients.
    pub index: usize,
    /// What happened.
    pub result: DeliveryResult,
}

/// Why a channel could not do what was asked at all. Per-recipient failures are
/// [`DeliveryResult`]s, not errors; a `ChannelError` from `deliver` means every recipient of the
/// job is retried later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The channel was asked for an operation its kind does not have (a configuration error).
    #[error("channel {channel} does not support {operation}")]
    NotSupported {
        /// The channel.
        channel: ChannelId,
        /// What was asked.
        operation: &'static str,
    },
    /// The peer could not be reached or dropped the connection.
    #[error("connection to {peer} failed: {reason}")]
    Connection {
        /// The peer.
        peer: String,
        /// What happened.
        reason: String,
    },
    /// The channel's configuration is unusable.
    #[error("channel configuration error: {0}")]
    Config(String),
    /// The switch is shutting down.
    #[error("shutting down")]
    Shutdown,
}

/// A signal that resolves when the switch shuts down; cloneable, any executor can await it.
#[derive(Clone)]
pub struct Shutdown(Shared<BoxFuture<'static, ()>>);

impl Shutdown {
    /// Wraps a future that completes at shutdown.
    pub fn new(signal: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        Shutdown(signal.boxed().shared())
    }

    /// Resolves at shutdown.
    pub async fn wait(&self) {
        self.0.clone().await
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Shutdown")
    }
}

/// The submission pipeline of the configuration in force. The switch replaces it when its
/// configuration is reloaded; an inbound channel takes [`PipelineHandle::current`] for each new
/// session, so sessions already open finish with the pipeline they started with.
#[derive(Clone, Debug)]
pub struct PipelineHandle(Arc<RwLock<Arc<SubmissionPipeline>>>);

impl PipelineHandle {
    /// A handle on `pipeline`.
    pub fn new(pipeline: Arc<SubmissionPipeline>) -> Self {
        PipelineHandle(Arc::new(RwLock::new(pipeline)))
    }

    /// The pipeline in force now.
    pub fn current(&self) -> Arc<SubmissionPipeline> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `pipeline` in force for every later [`PipelineHandle::current`].
    pub fn replace(&self, pipeline: Arc<SubmissionPipeline>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = pipeline;
    }
}

/// Why the queue kept a message an inbound channel asked to withdraw
/// ([`QueueControl::withdraw_deferred`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WithdrawError {
    /// The queue holds no such message: it was never queued, or it has been delivered,
    /// transferred or removed since (the caller's mistake, or too late).
    #[error("the queue holds no such message")]
    NotQueued,
    /// The message was submitted by someone else (the caller's mistake: it names a message
    /// that is not its own).
    #[error("the message was submitted by someone else")]
    NotOwner,
    /// The message was not submitted with a deferred delivery time.
    #[error("the message's delivery is not deferred")]
    NotDeferred,
    /// Its deferred delivery time has come, or delivery has begun: it is released.
    #[error("the message has been released for delivery")]
    Released,
    /// The switch withdrew it from the scheduler but could not remove it from the queue (a
    /// local resource problem, logged by the switch): it is not delivered now, but it may be
    /// found again when the switch restarts.
    #[error("the queue could not remove the message: {0}")]
    Queue(String),
}

/// What an inbound channel may ask of the queue about messages it put there, besides submitting
/// them. The switch answers under the QMGR's lock, so a decision and the scheduler's own moves
/// (releasing a deferred message, starting a delivery) never interleave.
#[async_trait]
pub trait QueueControl: Send + Sync + fmt::Debug {
    /// Removes the message `id` without any notice, if it is still held for its deferred
    /// delivery time (X.400 cancel-deferred-delivery, RFC 4865 has no equivalent): its
    /// `deferred_until` is after `now`, no delivery of it is ready or running, and it was
    /// submitted by `owner` (its envelope's `authenticated_as`). Resolves `Ok` once the
    /// message is gone from the queue.
    async fn withdraw_deferred(
        &self,
        id: QueueId,
        owner: &str,
        now: Timestamp,
    ) -> Result<(), WithdrawError>;

    /// Makes the waiting recipients of message `id` due now: a hold the channel imposed (an
    /// X.400 user agent's delivery controls) has been lifted. Returns whether the queue
    /// holds the message.
    async fn retry(&self, id: QueueId, now: Timestamp) -> bool;
}

/// A [`QueueControl`] that holds no message: every request gets [`WithdrawError::NotQueued`]
/// (for channels run outside a switch, in tests and examples).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoQueueControl;

#[async_trait]
impl QueueControl for NoQueueControl {
    async fn withdraw_deferred(
        &self,
        _id: QueueId,
        _owner: &str,
        _now: Timestamp,
    ) -> Result<(), WithdrawError> {
        Err(WithdrawError::NotQueued)
    }

    async fn retry(&self, _id: QueueId, _now: Timestamp) -> bool {
        false
    }
}

/// What an inbound channel gets when it is started.
#[derive(Clone, Debug)]
pub struct InboundContext {
    /// Every message goes through the pipeline this holds.
    pub pipeline: PipelineHandle,
    /// Resolves when the channel must stop accepting.
    pub shutdown: Shutdown,
    /// Requests about messages already queued (withdrawing a deferred one).
    pub queue: Arc<dyn QueueControl>,
}

/// A channel. Implement `descriptor` and the method of your channel's kind.
#[async_trait]
pub trait Channel: Send + Sync {
    /// What this channel is.
    fn descriptor(&self) -> &ChannelDescriptor;

    /// Inbound channels: accept messages until `ctx.shutdown` resolves, submitting each through
    /// `ctx.pipeline`.
    async fn serve(&self, _ctx: InboundContext) -> Result<(), ChannelError> {
        Err(ChannelError::NotSupported {
            channel: self.descriptor().id.clone(),
            operation: "serve",
        })
    }

    /// Outbound and processing channels: attempt one job; return an outcome for each of
    /// `job.recipients` (a recipient left out is retried later).
    async fn deliver(&self, _job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        Err(ChannelError::NotSupported {
            channel: self.descriptor().id.clone(),
            operation: "deliver",
        })
    }
}
