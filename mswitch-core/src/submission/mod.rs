//! The submission pipeline (the Message Submission Library): the one path by which every
//! inbound channel puts a message into the queue, so every check is applied the same way
//! whatever the protocol.
//!
//! The steps, in order:
//! 1. **sender validation** ([`SubmissionPipeline::begin`]): the originator may travel with this
//!    content (SMTPUTF8), the [`Policy`] accepts it for this client, and the queue has room
//!    ([`QueueStore::admission`]: SMTP answers 452 before DATA when it has not);
//! 2. **recipient validation and routing** ([`Transaction::add_recipient`]): the [`Router`]
//!    decides each recipient, aliases are expanded (with loop and depth limits);
//! 3. **policy and authorization**: the [`Policy`] accepts the recipient for this client (the
//!    relay decision);
//! 4. **processing**: a recipient whose channel cannot take this content is routed through the
//!    converter (gateway) channel configured for it, or refused;
//! 5. **queueing** ([`Transaction::commit`]): the [`Policy`] accepts the whole message and the
//!    [`QueueStore`] makes it durable. Only then does the caller acknowledge.
//!
//! A protocol with a dialogue (SMTP) calls the steps as its commands arrive; one that submits
//! all at once (X.400 P1) calls [`SubmissionPipeline::submit`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::address::{Address, Mailbox};
use crate::channel::{ChannelDescriptor, ChannelKind};
use crate::envelope::{ContentFamily, ContentType, Envelope, NextHop, OriginalRecipient};
use crate::envelope::{Recipient, RecipientState, ReversePath, Route};
use crate::id::{ChannelId, QueueId, Timestamp};
use crate::policy::{Policy, RecipientCheck, Verdict};
use crate::route::{RouteContext, RouteDecision, Router};
use crate::status::{Severity, Status};
use crate::store::QueueStore;

#[cfg(test)]
mod tests;

/// The kind of service a message arrives through; policy differs between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Service {
    /// MTA-to-MTA SMTP (port 25 style).
    Relay,
    /// Message submission (port 587 style, RFC 6409): authentication required.
    Submission,
    /// X.400 P1 transfer from a peer MTA.
    X400Transfer,
    /// X.400 P3 submission from a user agent.
    X400Submission,
    /// Generated inside the switch (notifications, list and gateway output).
    Internal,
}

/// What is known of the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The peer's IP address.
    pub address: Option<IpAddr>,
    /// The name the client gave (HELO/EHLO, or the calling MTA name).
    pub helo: Option<String>,
    /// Whether the session is protected by TLS.
    pub tls: bool,
    /// The identity the client authenticated as, if any.
    pub authenticated: Option<String>,
}

/// Who is submitting, how, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionContext {
    /// The inbound channel.
    pub channel: ChannelId,
    /// The service.
    pub service: Service,
    /// The client.
    pub client: ClientInfo,
    /// The current time, from the caller (the core does not read the clock).
    pub now: Timestamp,
}

/// The pipeline step at which a submission was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Sender validation (step 1).
    Sender,
    /// Recipient validation, routing, recipient policy or processing (steps 2 to 4).
    Recipient,
    /// The complete message (step 5, policy).
    Message,
    /// Writing to the queue (step 5, store).
    Queue,
}

/// A refusal: the step and the status to give the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Where the pipeline stopped.
    pub stage: Stage,
    /// What to tell the client.
    pub status: Status,
}

impl Refusal {
    fn new(stage: Stage, status: Status) -> Self {
        Refusal { stage, status }
    }

    /// Whether the client should try again later.
    pub fn is_temporary(&self) -> bool {
        self.status.severity() == Severity::Transient
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} refused: {}", self.stage, self.status)
    }
}

impl std::error::Error for Refusal {}

/// Limits the pipeline enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionLimits {
    /// Most recipients one message may have (RFC 5321 §4.5.3.1.8 asks for at least 100).
    pub max_recipients: usize,
    /// Deepest alias nesting followed.
    pub max_expansion_depth: usize,
    /// Most addresses one recipient may expand into.
    pub max_expansion_size: usize,
}

impl Default for SubmissionLimits {
    fn default() -> Self {
        SubmissionLimits {
            max_recipients: 1000,
            max_expansion_depth: 16,
            max_expansion_size: 1000,
        }
    }
}

/// The channels the pipeline may route to, and the converters between content families.
#[derive(Debug, Clone, Default)]
pub struct ChannelTable {
    channels: HashMap<ChannelId, ChannelDescriptor>,
    converters: HashMap<(ContentFamily, ContentFamily), ChannelId>,
}

impl ChannelTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a channel.
    pub fn insert(&mut self, descriptor: ChannelDescriptor) {
        self.channels.insert(descriptor.id.clone(), descriptor);
    }

    /// Declares `channel` as the converter of content from `from` to `to` (a MIXER gateway).
    pub fn set_converter(&mut self, from: ContentFamily, to: ContentFamily, channel: ChannelId) {
        self.converters.insert((from, to), channel);
    }

    /// A channel's descriptor.
    pub fn get(&self, id: &ChannelId) -> Option<&ChannelDescriptor> {
        self.channels.get(id)
    }

    /// Every channel.
    pub fn iter(&self) -> impl Iterator<Item = &ChannelDescriptor> {
        self.channels.values()
    }
}

/// Told about every message once it is durable (the QMGR registers one).
pub trait QueueListener: Send + Sync {
    /// A message was queued.
    fn queued(&self, id: QueueId, envelope: &Envelope);
}

/// The pipeline. Cheap to share (`Arc`); one per configuration snapshot.
pub struct SubmissionPipeline {
    router: Arc<dyn Router>,
    policy: Arc<dyn Policy>,
    store: Arc<dyn QueueStore>,
    channels: ChannelTable,
    limits: SubmissionLimits,
    listener: Option<Arc<dyn QueueListener>>,
}

impl fmt::Debug for SubmissionPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmissionPipeline")
            .field("channels", &self.channels)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// What became of one recipient that was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// How many envelope recipients it became (1 unless it is an alias).
    pub recipients: usize,
    /// Alias members that were refused and left out.
    pub dropped: Vec<(Address, Status)>,
}

/// A message that was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// Its queue identifier.
    pub id: QueueId,
    /// The envelope as queued.
    pub envelope: Arc<Envelope>,
}

/// The result of [`SubmissionPipeline::submit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionReport {
    /// Each recipient as given, and what became of it.
    pub recipients: Vec<(Address, Result<Accepted, Refusal>)>,
    /// The message as queued, or why it was not.
    pub outcome: Result<Submitted, Refusal>,
}

impl SubmissionPipeline {
    /// Builds a pipeline with default limits.
    pub fn new(
        router: Arc<dyn Router>,
        policy: Arc<dyn Policy>,
        store: Arc<dyn QueueStore>,
        channels: ChannelTable,
    ) -> Self {
        SubmissionPipeline {
            router,
            policy,
            store,
            channels,
            limits: SubmissionLimits::default(),
            listener: None,
        }
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: SubmissionLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Registers the listener told about every queued message.
    pub fn with_listener(mut self, listener: Arc<dyn QueueListener>) -> Self {
        self.listener = Some(listener);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &SubmissionLimits {
        &self.limits
    }

    /// The channel table.
    pub fn channels(&self) -> &ChannelTable {
        &self.channels
    }

    /// Step 1: validates the sender and opens a transaction. `envelope` carries the originator
    /// and message parameters; its recipients, if any, are ignored (add them with
    /// [`Transaction::add_recipient`]). `size_hint` is the declared size (SMTP `SIZE=`).
    pub async fn begin(
        &self,
        ctx: SubmissionContext,
        envelope: Envelope,
        size_hint: Option<u64>,
    ) -> Result<Transaction<'_>, Refusal> {
        let (ctx, envelope) = self.check_sender(ctx, envelope, size_hint).await?;
        Ok(Transaction {
            pipeline: PipelineRef::Borrowed(self),
            ctx,
            envelope,
            given: 0,
        })
    }

    /// [`SubmissionPipeline::begin`] for a transaction that holds the pipeline by `Arc`, so it
    /// can be kept in a connection's state between protocol commands.
    pub async fn begin_shared(
        self: &Arc<Self>,
        ctx: SubmissionContext,
        envelope: Envelope,
        size_hint: Option<u64>,
    ) -> Result<Transaction<'static>, Refusal> {
        let (ctx, envelope) = self.check_sender(ctx, envelope, size_hint).await?;
        Ok(Transaction {
            pipeline: PipelineRef::Shared(self.clone()),
            ctx,
            envelope,
            given: 0,
        })
    }

    async fn check_sender(
        &self,
        ctx: SubmissionContext,
        mut envelope: Envelope,
        size_hint: Option<u64>,
    ) -> Result<(SubmissionContext, Envelope), Refusal> {
        envelope.recipients.clear();
        if let Some(m) = envelope.originator.mailbox() {
            check_utf8_allowed(m, &envelope.content_type, Stage::Sender)?;
        }
        verdict(
            self.policy.check_sender(&ctx, &envelope.originator).await,
            Stage::Sender,
        )?;
        self.store
            .admission(size_hint)
            .map_err(|e| Refusal::new(Stage::Sender, Status::from(&e)))?;
        Ok((ctx, envelope))
    }

    /// Runs every step for a message whose envelope is complete (X.400 transfer, internal
    /// submissions). The message is queued if at least one recipient is accepted.
    pub async fn submit(
        &self,
        ctx: SubmissionContext,
        envelope: Envelope,
        content: &[u8],
    ) -> SubmissionReport {
        let recipients = envelope.recipients.clone();
        let size = Some(content.len() as u64);
        let mut tx = match self.begin(ctx, envelope, size).await {
            Ok(tx) => tx,
            Err(refusal) => {
                return SubmissionReport {
                    recipients: Vec::new(),
                    outcome: Err(refusal),
                };
            }
        };
        let mut results = Vec::with_capacity(recipients.len());
        for r in recipients {
            let address = r.address.clone();
            results.push((address, tx.add_recipient(r).await));
        }
        let outcome = if results.iter().any(|(_, r)| r.is_ok()) {
            tx.commit(content).await
        } else {
            // Report the first refusal as the reason for the whole message.
            let first = results.iter().find_map(|(_, r)| r.as_ref().err().cloned());
            Err(first.unwrap_or_else(|| {
                Refusal::new(
                    Stage::Recipient,
                    Status::new(554, (5, 5, 1), "No valid recipients"),
                )
            }))
        };
        SubmissionReport {
            recipients: results,
            outcome,
        }
    }

    /// Steps 2 and 4 for one address: routes it, expanding aliases; returns the addresses with
    /// their final routes, and the alias members that were refused.
    async fn resolve(
        &self,
        ctx: &SubmissionContext,
        sender: &ReversePath,
        address: &Address,
        content: &ContentType,
    ) -> Result<Resolution, Refusal> {
        let rctx = RouteContext {
            submission: ctx,
            sender,
        };
        let mut out = Resolution::default();
        // Depth-first with an explicit stack; `path` holds the aliases being expanded above the
        // current entry, so a loop is an address that reappears on its own path.
        let mut stack: Vec<(Address, Vec<Address>)> = vec![(address.clone(), Vec::new())];
        let mut seen: HashSet<Address> = HashSet::new();
        while let Some((addr, path)) = stack.pop() {
            if path.contains(&addr) {
                return Err(Refusal::new(
                    Stage::Recipient,
                    Status::new(550, (5, 4, 6), format!("Alias loop detected at {addr}")),
                ));
            }
            if !seen.insert(addr.clone()) {
                continue; // reached twice through different aliases: deliver once
            }
            match self.router.route(&addr, rctx).await {
                RouteDecision::Deliver(route) => {
                    if out.routed.len() >= self.limits.max_expansion_size {
                        return Err(Refusal::new(
                            Stage::Recipient,
                            Status::new(550, (5, 5, 3), "Alias expands to too many recipients"),
                        ));
                    }
                    let route = self.processing(route, content)?;
                    out.routed.push((addr, route));
                }
                RouteDecision::Expand(members) => {
                    out.alias = true;
                    if path.len() >= self.limits.max_expansion_depth {
                        return Err(Refusal::new(
                            Stage::Recipient,
                            Status::new(550, (5, 4, 6), "Alias nesting too deep"),
                        ));
                    }
                    let mut child_path = path.clone();
                    child_path.push(addr.clone());
                    for m in members.into_iter().rev() {
                        stack.push((m, child_path.clone()));
                    }
                }
                RouteDecision::Reject(status) => {
                    if path.is_empty() {
                        return Err(Refusal::new(Stage::Recipient, status));
                    }
                    out.dropped.push((addr, status));
                }
                RouteDecision::TryLater(status) => {
                    return Err(Refusal::new(Stage::Recipient, status));
                }
            }
        }
        if out.routed.is_empty() {
            let status = out
                .dropped
                .first()
                .map(|(_, s)| s.clone())
                .unwrap_or_else(|| Status::new(550, (5, 1, 1), "Alias has no deliverable members"));
            return Err(Refusal::new(Stage::Recipient, status));
        }
        Ok(out)
    }

    /// Step 4: keeps the route if its channel takes this content, else routes through the
    /// configured converter.
    fn processing(&self, route: Route, content: &ContentType) -> Result<Route, Refusal> {
        let Some(channel) = self.channels.get(&route.channel) else {
            return Err(Refusal::new(
                Stage::Recipient,
                Status::new(
                    451,
                    (4, 3, 5),
                    format!("Routing error: channel {} is not configured", route.channel),
                ),
            ));
        };
        if channel.kind == ChannelKind::Inbound {
            return Err(Refusal::new(
                Stage::Recipient,
                Status::new(
                    451,
                    (4, 3, 5),
                    format!("Routing error: channel {} is inbound only", route.channel),
                ),
            ));
        }
        let family = content.family();
        if channel.accepts(family) {
            return Ok(route);
        }
        let converter = channel
            .accepts
            .iter()
            .find_map(|&to| self.channels.converters.get(&(family, to)));
        match converter {
            Some(conv) => Ok(Route {
                channel: conv.clone(),
                next_hop: NextHop::Local,
                local: route.local,
            }),
            None => Err(Refusal::new(
                Stage::Recipient,
                Status::new(
                    550,
                    (5, 6, 3),
                    "Conversion required but not supported for this recipient",
                ),
            )),
        }
    }
}

#[derive(Default)]
struct Resolution {
    routed: Vec<(Address, Route)>,
    dropped: Vec<(Address, Status)>,
    alias: bool,
}

/// How a transaction holds its pipeline: borrowed, or shared so that the transaction can live
/// in a connection's state ([`SubmissionPipeline::begin_shared`]).
enum PipelineRef<'p> {
    Borrowed(&'p SubmissionPipeline),
    Shared(Arc<SubmissionPipeline>),
}

impl PipelineRef<'_> {
    fn get(&self) -> &SubmissionPipeline {
        match self {
            PipelineRef::Borrowed(p) => p,
            PipelineRef::Shared(p) => p,
        }
    }
}

/// An open submission: sender accepted, recipients being added.
pub struct Transaction<'p> {
    pipeline: PipelineRef<'p>,
    ctx: SubmissionContext,
    envelope: Envelope,
    given: usize,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("ctx", &self.ctx)
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

impl Transaction<'_> {
    /// The envelope so far.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The context.
    pub fn context(&self) -> &SubmissionContext {
        &self.ctx
    }

    /// Steps 2 to 4 for one recipient. On success the recipient (or, for an alias, its members)
    /// is added to the envelope; on refusal nothing is added and the transaction goes on.
    pub async fn add_recipient(&mut self, recipient: Recipient) -> Result<Accepted, Refusal> {
        let p = self.pipeline.get();
        if self.given >= p.limits.max_recipients {
            return Err(Refusal::new(
                Stage::Recipient,
                Status::new(452, (4, 5, 3), "Too many recipients"),
            ));
        }
        if let Some(m) = recipient.address.as_mailbox() {
            check_utf8_allowed(m, &self.envelope.content_type, Stage::Recipient)?;
        }
        let given = &recipient.address;
        let resolution = p
            .resolve(
                &self.ctx,
                &self.envelope.originator,
                given,
                &self.envelope.content_type,
            )
            .await?;
        let routes: Vec<Route> = resolution.routed.iter().map(|(_, r)| r.clone()).collect();
        let check = RecipientCheck {
            address: given,
            routes: &routes,
            alias: resolution.alias,
        };
        verdict(
            p.policy
                .check_recipient(&self.ctx, &self.envelope.originator, &check)
                .await,
            Stage::Recipient,
        )?;
        let original = recipient.original.clone().or_else(|| {
            resolution.alias.then(|| OriginalRecipient {
                addr_type: match given {
                    Address::Mailbox(m) if m.needs_smtputf8() => "utf-8".into(),
                    Address::Mailbox(_) => "rfc822".into(),
                    Address::X400(_) => "x400".into(),
                },
                address: given.to_string(),
            })
        });
        let count = resolution.routed.len();
        for (address, route) in resolution.routed {
            self.envelope.recipients.push(Recipient {
                address,
                original: original.clone(),
                notify: recipient.notify,
                route: Some(route),
                state: RecipientState::Pending,
            });
        }
        self.given += 1;
        Ok(Accepted {
            recipients: count,
            dropped: resolution.dropped,
        })
    }

    /// Step 5: checks the complete message and queues it. Resolves `Ok` only when the message
    /// is durable; only then may the caller acknowledge it.
    pub async fn commit(mut self, content: &[u8]) -> Result<Submitted, Refusal> {
        let p = self.pipeline.get();
        if self.envelope.recipients.is_empty() {
            return Err(Refusal::new(
                Stage::Message,
                Status::new(554, (5, 5, 1), "No valid recipients"),
            ));
        }
        self.envelope.size = content.len() as u64;
        verdict(
            p.policy.check_message(&self.ctx, &self.envelope).await,
            Stage::Message,
        )?;
        let id = p
            .store
            .enqueue(&self.envelope, content)
            .await
            .map_err(|e| Refusal::new(Stage::Queue, Status::from(&e)))?;
        if let Some(listener) = &p.listener {
            listener.queued(id, &self.envelope);
        }
        Ok(Submitted {
            id,
            envelope: Arc::new(self.envelope),
        })
    }
}

fn verdict(v: Verdict, stage: Stage) -> Result<(), Refusal> {
    match v {
        Verdict::Accept => Ok(()),
        Verdict::Reject(status) | Verdict::TryLater(status) => Err(Refusal::new(stage, status)),
    }
}

/// RFC 6531 §3.4: a non-ASCII address may only travel in an SMTPUTF8 transaction.
fn check_utf8_allowed(m: &Mailbox, content: &ContentType, stage: Stage) -> Result<(), Refusal> {
    let smtputf8 = matches!(content, ContentType::Internet { smtputf8: true, .. })
        || matches!(content, ContentType::X400(_));
    if m.needs_smtputf8() && !smtputf8 {
        return Err(Refusal::new(
            stage,
            Status::new(
                553,
                (5, 6, 7),
                "Non-ASCII address requires SMTPUTF8 (RFC 6531)",
            ),
        ));
    }
    Ok(())
}
