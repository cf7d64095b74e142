//! The P3 listener (MTS access): user agents bind on their own RFC 1006 port, submit messages
//! and probes into the submission pipeline, and take deliveries while they are bound.
//!
//! A user agent binds in `mts-access-88` / `-94` with its O/R address as initiator name and a
//! simple password, checked against the configured [`P3User`]s. A submission is turned into the
//! MTS-APDU this MTA transfers ([`crate::mta::submission`]), taken in like a P1 transfer
//! ([`crate::mta::receive`]) and run through the pipeline (`Service::X400Submission`,
//! authenticated as the user agent's O/R address). X.411 §8.2.2: a recipient the MTA cannot
//! take is refused with `recipient-improperly-specified` and nothing is queued; the result
//! (the MTS identifier and submission time) is given only when the message is durable.
//!
//! While a user agent is bound it is registered in [`BoundUsers`], where the P3 delivery
//! channel ([`super::P3DeliveryChannel`]) finds it to invoke `message-delivery` and
//! `report-delivery` on its association.
//!
//! `cancel-deferred-delivery` (X.411 §8.2.1.3): the listener remembers the messages it queued
//! (`SubmissionLog`: message-submission identifier, queue id, originator) and asks the
//! switch to withdraw the one named ([`QueueControl::withdraw_deferred`]), which the QMGR
//! grants only while the message waits for its deferred delivery time. The log lives in
//! memory: after a restart of the switch, earlier identifiers are unknown
//! (`message-submission-identifier-invalid`) and those messages go out at their time.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mswitch_core::address::{Address, ORAddress};
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, InboundContext, PipelineHandle,
    QueueControl, WithdrawError,
};
use mswitch_core::envelope::ContentFamily;
use mswitch_core::id::{ChannelId, QueueId, Timestamp};
use mswitch_core::submission::{ClientInfo, Refusal, Service, Stage, SubmissionContext};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::Listening;
use super::p3_controls::{AssociationControls, Hold, Traits};

use crate::mta::{self, MtaIdentity};
use crate::mts::{Credentials, MtsApdu, MtsIdentifier, ORName, non_delivery_diagnostic as diag};
use crate::p3::types::{DeliveryControlResult, MessageSubmissionResult, error_code};
use crate::p3::{
    MtsBindArgument, MtsBindError, MtsBindResult, ObjectName, P3Association, P3Config, P3Context,
    P3Error, P3Event, P3Operation, P3Result, P3State,
};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Deliveries waiting for a bound user agent's association to take them.
const DELIVERY_BACKLOG: usize = 16;

/// Submissions remembered for `cancel-deferred-delivery` besides those still waiting for their
/// deferred delivery time (which are all kept): enough to answer a late cancel of a recent
/// message with `deferred-delivery-cancellation-rejected` rather than
/// `message-submission-identifier-invalid`.
pub(crate) const MAX_REMEMBERED_SUBMISSIONS: usize = 4096;

/// One message queued through the listener.
#[derive(Debug, Clone)]
struct Submitted {
    queue_id: QueueId,
    originator: ORAddress,
    deferred_until: Option<Timestamp>,
}

/// The messages the P3 listener queued, by message-submission identifier, for
/// `cancel-deferred-delivery`. Kept in memory: every message still waiting for its deferred
/// delivery time, and the [`MAX_REMEMBERED_SUBMISSIONS`] most recent others.
#[derive(Debug, Default)]
pub(crate) struct SubmissionLog {
    by_id: HashMap<MtsIdentifier, Submitted>,
    order: VecDeque<MtsIdentifier>,
}

impl SubmissionLog {
    /// Remembers a queued message, forgetting the oldest ones beyond the bound.
    fn record(&mut self, id: MtsIdentifier, entry: Submitted, now: Timestamp) {
        if self.by_id.insert(id.clone(), entry).is_none() {
            self.order.push_back(id);
        }
        // Each entry is looked at once at most: a deferred one goes to the back.
        let mut budget = self.order.len();
        while self.order.len() > MAX_REMEMBERED_SUBMISSIONS && budget > 0 {
            budget -= 1;
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            match self.by_id.get(&oldest) {
                Some(e) if e.deferred_until.is_some_and(|t| t > now) => {
                    self.order.push_back(oldest);
                }
                _ => {
                    self.by_id.remove(&oldest);
                }
            }
        }
    }

    /// The queue id of the message `id` if `originator` submitted it.
    fn find(&self, id: &MtsIdentifier, originator: &ORAddress) -> Option<QueueId> {
        self.by_id
            .get(id)
            .filter(|e| e.originator.matches(originator))
            .map(|e| e.queue_id)
    }

    /// Notes that a message was withdrawn: it is remembered (a second cancel is rejected, not
    /// an unknown identifier) but no longer kept beyond the bound.
    fn withdrawn(&mut self, id: &MtsIdentifier) {
        if let Some(e) = self.by_id.get_mut(id) {
            e.deferred_until = None;
        }
    }
}

/// A user agent allowed to bind to the P3 listener.
#[derive(Clone, PartialEq, Eq)]
pub struct P3User {
    /// Its O/R address: the initiator name it binds with and the only originator it may
    /// submit as.
    pub address: ORAddress,
    /// The simple password it must present.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for P3User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P3User")
            .field("address", &self.address.to_string())
            .finish_non_exhaustive()
    }
}

/// A message store this MTA delivers to (MTS forced access: the MTA binds to it).
#[derive(Clone, PartialEq, Eq)]
pub struct MessageStore {
    /// The O/R addresses it holds: every address with these attributes (and possibly more).
    pub address_prefix: ORAddress,
    /// Its P3 listener.
    pub address: SocketAddr,
    /// The simple password we present when we bind to it.
    pub password: String,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("address_prefix", &self.address_prefix.to_string())
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl MessageStore {
    /// Whether `address` belongs to this store: every attribute of the prefix is present in it
    /// with the same value (organizational units and domain-defined attributes from the
    /// first).
    pub fn holds(&self, address: &ORAddress) -> bool {
        within(&self.address_prefix, address)
    }
}

/// Whether `address` has every attribute of `prefix`, with the same value.
fn within(prefix: &ORAddress, address: &ORAddress) -> bool {
    let mut a = address.clone();
    if prefix.country.is_none() {
        a.country = None;
    }
    if prefix.admd.is_none() {
        a.admd = None;
    }
    if prefix.prmd.is_none() {
        a.prmd = None;
    }
    if prefix.organization.is_none() {
        a.organization = None;
    }
    if prefix.organizational_units.len() > a.organizational_units.len() {
        return false;
    }
    a.organizational_units
        .truncate(prefix.organizational_units.len());
    if prefix.personal_name.is_none() {
        a.personal_name = None;
    }
    if prefix.common_name.is_none() {
        a.common_name = None;
    }
    if prefix.numeric_user_id.is_none() {
        a.numeric_user_id = None;
    }
    if prefix.terminal_id.is_none() {
        a.terminal_id = None;
    }
    if prefix.network_address.is_none() {
        a.network_address = None;
    }
    if prefix.domain_defined.len() > a.domain_defined.len() {
        return false;
    }
    a.domain_defined.truncate(prefix.domain_defined.len());
    prefix.matches(&a)
}

/// What the P3 listener and the P3 delivery channel share.
#[derive(Clone)]
pub struct P3Settings {
    /// This MTA.
    pub identity: MtaIdentity,
    /// What we present in bind results and in our binds to message stores that have none of
    /// their own (empty: nothing).
    pub password: String,
    /// The user agents that may bind.
    pub users: Vec<P3User>,
    /// The message stores delivered to when their user is not bound.
    pub stores: Vec<MessageStore>,
    /// Our transport selector for P3: a responder refuses connections for another one
    /// (empty: any). On a listener shared with P1 it also chooses the responder.
    pub tsel: Vec<u8>,
    /// Largest operation argument accepted or sent.
    pub max_pdu: usize,
    /// How long to wait for a peer at each step (bind, an operation's answer), and how long an
    /// idle user-agent association is kept.
    pub timeout: Duration,
}

impl std::fmt::Debug for P3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P3Settings")
            .field("identity", &self.identity)
            .field("users", &self.users)
            .field("tsel", &self.tsel)
            .field("stores", &self.stores)
            .field("max_pdu", &self.max_pdu)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl P3Settings {
    pub(crate) fn association(&self) -> P3Config {
        P3Config {
            local_tsel: self.tsel.clone(),
            max_pdu: self.max_pdu,
            ..P3Config::default()
        }
    }

    /// The message store holding `address`, if any (the first configured).
    pub fn store_for(&self, address: &ORAddress) -> Option<&MessageStore> {
        self.stores.iter().find(|s| s.holds(address))
    }
}

/// A delivery for a bound user agent: the operation to invoke, and where to say how it went.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) operation: P3Operation,
    pub(crate) done: oneshot::Sender<Result<(), String>>,
}

#[derive(Debug)]
struct BoundUser {
    id: u64,
    address: ORAddress,
    tx: mpsc::Sender<Delivery>,
    controls: AssociationControls,
}

/// Why [`BoundUsers::try_send`] did not hand a delivery over.
#[derive(Debug)]
pub(crate) enum NotSent {
    /// No association of the user agent is bound, or none can take it now.
    NotBound(Delivery),
    /// Every association of the user agent holds it under its delivery controls.
    Held(Hold),
}

/// The user agents bound to the P3 listener (access context), by O/R address.
#[derive(Debug, Default)]
pub struct BoundUsers {
    list: Mutex<Vec<BoundUser>>,
    next: AtomicU64,
}

impl BoundUsers {
    /// An empty registry.
    pub fn new() -> Arc<BoundUsers> {
        Arc::new(BoundUsers::default())
    }

    /// Whether a user agent with `address` is bound.
    pub fn is_bound(&self, address: &ORAddress) -> bool {
        self.list
            .lock()
            .map(|l| l.iter().any(|u| u.address.matches(address)))
            .unwrap_or(false)
    }

    fn register(&self, address: &ORAddress) -> (u64, mpsc::Receiver<Delivery>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(DELIVERY_BACKLOG);
        if let Ok(mut l) = self.list.lock() {
            l.push(BoundUser {
                id,
                address: address.clone(),
                tx,
                controls: AssociationControls::default(),
            });
        }
        (id, rx)
    }

    fn unregister(&self, id: u64) {
        if let Ok(mut l) = self.list.lock() {
            l.retain(|u| u.id != id);
        }
    }

    /// Puts delivery controls in force on the association `id`; returns what they hold of
    /// the deliveries held there so far, and the messages of those they now permit.
    fn set_controls(
        &self,
        id: u64,
        controls: crate::p3::types::Controls,
    ) -> (crate::p3::types::Waiting, Vec<QueueId>) {
        match self.list.lock() {
            Ok(mut l) => match l.iter_mut().find(|u| u.id == id) {
                Some(u) => u.controls.set(controls),
                None => Default::default(),
            },
            Err(_) => Default::default(),
        }
    }

    /// Notes that the delivery `key` (queued message, recipient) was made to `address`.
    pub(crate) fn delivered(&self, address: &ORAddress, key: (QueueId, usize)) {
        if let Ok(mut l) = self.list.lock() {
            for u in l.iter_mut().filter(|u| u.address.matches(address)) {
                u.controls.delivered(key);
            }
        }
    }

    /// Hands `delivery` (`key`: queued message and recipient) to an association of the user
    /// agent `address` whose delivery controls permit it (the most recently bound first).
    pub(crate) fn try_send(
        &self,
        address: &ORAddress,
        key: (QueueId, usize),
        delivery: Delivery,
    ) -> Result<(), NotSent> {
        let traits = Traits::of(&delivery.operation);
        let mut hold = None;
        let senders: Vec<mpsc::Sender<Delivery>> = match self.list.lock() {
            Ok(mut l) => l
                .iter_mut()
                .rev()
                .filter(|u| u.address.matches(address))
                .filter_map(
                    |u| match traits.as_ref().and_then(|t| u.controls.check(key, t)) {
                        Some(h) => {
                            hold = Some(h);
                            None
                        }
                        None => Some(u.tx.clone()),
                    },
                )
                .collect(),
            Err(_) => return Err(NotSent::NotBound(delivery)),
        };
        if senders.is_empty()
            && let Some(h) = hold
        {
            return Err(NotSent::Held(h));
        }
        let mut delivery = delivery;
        for tx in senders {
            match tx.try_send(delivery) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d)) => {
                    delivery = d;
                }
            }
        }
        Err(NotSent::NotBound(delivery))
    }
}

/// The P3 listener channel.
#[derive(Debug)]
pub struct P3Listener {
    descriptor: ChannelDescriptor,
    listening: Listening,
    service: P3Service,
}

/// What serves user-agent associations, on the P3 listener or on the P1 listener it shares.
#[derive(Debug, Clone)]
pub(crate) struct P3Service {
    /// The inbound channel submissions are made in (`p3-in`).
    pub(crate) channel: ChannelId,
    pub(crate) settings: Arc<P3Settings>,
    pub(crate) users: Arc<BoundUsers>,
    /// What was submitted, for cancel-deferred-delivery: shared by every association.
    pub(crate) submissions: Arc<Mutex<SubmissionLog>>,
    pub(crate) clock: fn() -> Timestamp,
}

impl P3Service {
    /// Runs one user-agent association until it ends.
    pub(crate) async fn run<S: AsyncRead + AsyncWrite + Unpin + Send>(
        &self,
        stream: S,
        peer: SocketAddr,
        assoc: P3Association,
        pipeline: PipelineHandle,
        queue: Arc<dyn QueueControl>,
    ) {
        let session = Session {
            stream,
            assoc,
            peer,
            channel: self.channel.clone(),
            settings: self.settings.clone(),
            users: self.users.clone(),
            pipeline,
            queue,
            submissions: self.submissions.clone(),
            clock: self.clock,
            bound: None,
            rx: None,
            pending: std::collections::HashMap::new(),
        };
        session.run().await;
    }
}

impl P3Listener {
    /// A listener named `id` on a bound socket; `users` is the registry it shares with the P3
    /// delivery channels; `clock` gives the current time.
    pub fn new(
        id: ChannelId,
        socket: tokio::net::TcpListener,
        settings: Arc<P3Settings>,
        users: Arc<BoundUsers>,
        clock: fn() -> Timestamp,
    ) -> std::io::Result<Self> {
        Ok(P3Listener {
            descriptor: ChannelDescriptor {
                id: id.clone(),
                kind: ChannelKind::Inbound,
                accepts: vec![ContentFamily::X400],
            },
            listening: Listening::new(socket)?,
            service: P3Service {
                channel: id,
                settings,
                users,
                submissions: Arc::default(),
                clock,
            },
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.listening.address()
    }
}

#[async_trait]
impl Channel for P3Listener {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn serve(&self, ctx: InboundContext) -> Result<(), ChannelError> {
        self.listening
            .accept_each(&self.descriptor.id, &ctx.shutdown, |stream, peer| {
                let assoc = match P3Association::responder(self.service.settings.association()) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!(peer = %peer, error = %e, "cannot set up a P3 responder");
                        return;
                    }
                };
                tracing::debug!(peer = %peer, "P3 connection");
                let service = self.service.clone();
                let pipeline = ctx.pipeline.clone();
                let queue = ctx.queue.clone();
                tokio::spawn(
                    async move { service.run(stream, peer, assoc, pipeline, queue).await },
                );
            })
            .await
    }
}

/// One user-agent association.
struct Session<S> {
    stream: S,
    assoc: P3Association,
    peer: SocketAddr,
    channel: ChannelId,
    settings: Arc<P3Settings>,
    users: Arc<BoundUsers>,
    pipeline: PipelineHandle,
    queue: Arc<dyn QueueControl>,
    submissions: Arc<Mutex<SubmissionLog>>,
    clock: fn() -> Timestamp,
    /// The user agent's O/R address and its registration, once bound.
    bound: Option<(ORAddress, u64)>,
    rx: Option<mpsc::Receiver<Delivery>>,
    /// Our delivery invocations waiting for the user agent's answer.
    pending: std::collections::HashMap<i64, oneshot::Sender<Result<(), String>>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    async fn run(mut self) {
        let end = self.serve().await;
        let ua = self.bound.as_ref().map(|(a, _)| a.to_string());
        match &end {
            Ok(()) => tracing::debug!(peer = %self.peer, ua = ?ua, "P3 association ended"),
            Err(e) => tracing::info!(peer = %self.peer, ua = ?ua, reason = %e,
                "P3 association ended"),
        }
        if let Some((_, id)) = self.bound.take() {
            self.users.unregister(id);
        }
        let reason = end.err().unwrap_or_else(|| "the association ended".into());
        for (_, done) in self.pending.drain() {
            let _ = done.send(Err(reason.clone()));
        }
        // Deliveries handed over but not yet invoked go back to their channel.
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            while let Ok(d) = rx.try_recv() {
                let _ = d.done.send(Err(reason.clone()));
            }
        }
        let _ = self.stream.shutdown().await;
    }

    async fn flush(&mut self) -> Result<(), String> {
        while let Some(bytes) = self.assoc.poll_transmit() {
            self.stream
                .write_all(&bytes)
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        self.stream.flush().await.map_err(|e| format!("write: {e}"))
    }

    async fn serve(&mut self) -> Result<(), String> {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            if !self.events().await? {
                return Ok(());
            }
            let accept_deliveries = self.rx.is_some()
                && self.assoc.state() == P3State::Bound
                && self.pending.len() < self.settings.association().max_outstanding;
            tokio::select! {
                read = tokio::time::timeout(self.settings.timeout,
                    self.stream.read(&mut buf)) => match read {
                    Ok(Ok(0)) => self.assoc.connection_lost(),
                    Ok(Ok(n)) => {
                        if let Err(e) = self.assoc.handle_input(&buf[..n]) {
                            let _ = self.flush().await;
                            return Err(e.to_string());
                        }
                    }
                    Ok(Err(e)) => {
                        self.assoc.connection_lost();
                        return Err(format!("read: {e}"));
                    }
                    Err(_) => {
                        self.assoc.abort();
                        let _ = self.flush().await;
                        return Err("idle for too long".into());
                    }
                },
                delivery = recv(&mut self.rx), if accept_deliveries => match delivery {
                    Some(d) => match self.assoc.invoke(d.operation) {
                        Ok(id) => {
                            self.pending.insert(id, d.done);
                        }
                        Err(e) => {
                            let _ = d.done.send(Err(e.to_string()));
                        }
                    },
                    None => self.rx = None,
                },
            }
        }
    }

    /// Acts on the association's events; `Ok(false)` when it has ended.
    async fn events(&mut self) -> Result<bool, String> {
        while let Some(ev) = self.assoc.poll_event() {
            match ev {
                P3Event::BindRequest { argument, context } => {
                    if let Err(e) = self.bind(&argument, context) {
                        tracing::warn!(peer = %self.peer, name = ?argument.initiator_name,
                            context = ?context, "P3 bind refused");
                        self.assoc.refuse_bind(e).map_err(|e| e.to_string())?;
                        self.flush().await?;
                        return Ok(false);
                    }
                }
                P3Event::Invoked {
                    invoke_id,
                    operation,
                } => {
                    let answer = self.invoked(operation).await;
                    let sent = match answer {
                        Ok(result) => self.assoc.reply_result(invoke_id, result),
                        Err(error) => self.assoc.reply_error(invoke_id, error),
                    };
                    sent.map_err(|e| e.to_string())?;
                }
                P3Event::Result { invoke_id, .. } => {
                    if let Some(done) = self.pending.remove(&invoke_id) {
                        let _ = done.send(Ok(()));
                    }
                }
                P3Event::Error {
                    invoke_id, code, ..
                } => {
                    if let Some(done) = self.pending.remove(&invoke_id) {
                        let _ = done.send(Err(format!("the user agent answered error {code}")));
                    }
                }
                P3Event::Rejected {
                    invoke_id: Some(id),
                    problem,
                    by_peer,
                } => {
                    if let Some(done) = self.pending.remove(&id) {
                        let by = if by_peer { "the user agent" } else { "we" };
                        let _ = done.send(Err(format!("{by} rejected it: {problem:?}")));
                    }
                }
                P3Event::Released => return Ok(false),
                P3Event::Aborted { reason } => return Err(reason),
                _ => {}
            }
        }
        self.flush().await?;
        Ok(self.assoc.state() != P3State::Closed)
    }

    /// Checks a bind: a configured user agent with its password, in an access context.
    fn bind(&mut self, argument: &MtsBindArgument, context: P3Context) -> Result<(), MtsBindError> {
        if matches!(
            context,
            P3Context::ForcedAccess88 | P3Context::ForcedAccess94
        ) {
            // We are the MTA: nobody delivers to us over P3.
            return Err(MtsBindError::AuthenticationError);
        }
        let ObjectName::UserAgent(name) = &argument.initiator_name else {
            return Err(MtsBindError::AuthenticationError);
        };
        let Credentials::Simple(password) = &argument.initiator_credentials else {
            return Err(MtsBindError::AuthenticationError);
        };
        let user = self
            .settings
            .users
            .iter()
            .find(|u| u.address.matches(&name.address))
            .ok_or(MtsBindError::AuthenticationError)?;
        if user.password != password.bytes() {
            return Err(MtsBindError::AuthenticationError);
        }
        let result = MtsBindResult::simple(
            ObjectName::Mta(self.settings.identity.mta_name.clone()),
            self.settings.password.clone(),
        );
        self.assoc
            .accept_bind(result)
            .map_err(|_| MtsBindError::Busy)?;
        let address = user.address.clone();
        let (id, rx) = self.users.register(&address);
        tracing::info!(peer = %self.peer, ua = %address, "P3 user agent bound");
        self.bound = Some((address, id));
        self.rx = Some(rx);
        Ok(())
    }

    /// Answers an operation the user agent invoked.
    async fn invoked(&mut self, operation: P3Operation) -> Result<P3Result, P3Error> {
        let Some((ua, _)) = self.bound.clone() else {
            return Err(P3Error::security_error(
                crate::p3::types::security_problem::AUTHENTICATION_PROBLEM,
            ));
        };
        match operation {
            P3Operation::MessageSubmission(arg) => {
                if !arg.envelope.originator_name.address.matches(&ua) {
                    tracing::warn!(peer = %self.peer, ua = %ua,
                        originator = %arg.envelope.originator_name.address,
                        "P3 submission refused: not the bound user agent's address");
                    return Err(P3Error::new(error_code::ORIGINATOR_INVALID));
                }
                let now = (self.clock)();
                let (message, id, time) =
                    mta::submission::to_transfer(&arg, &self.settings.identity, now)
                        .map_err(|_| P3Error::new(error_code::INCONSISTENT_REQUEST))?;
                let names: Vec<ORName> = message
                    .envelope
                    .per_recipient_fields
                    .iter()
                    .map(|r| r.recipient_name.clone())
                    .collect();
                let deferred_until = message
                    .envelope
                    .deferred_delivery_time
                    .as_ref()
                    .and_then(crate::mts::UtcTime::to_timestamp);
                let queue_id = self
                    .submit(&ua, MtsApdu::Message(message), &names, now)
                    .await?;
                if let Ok(mut log) = self.submissions.lock() {
                    let entry = Submitted {
                        queue_id,
                        originator: ua.clone(),
                        deferred_until,
                    };
                    log.record(id.clone(), entry, now);
                }
                let mut result = MessageSubmissionResult::new(id, time);
                result.content_identifier = arg.envelope.content_identifier.clone();
                Ok(P3Result::MessageSubmission(result))
            }
            P3Operation::ProbeSubmission(arg) => {
                if !arg.originator_name.address.matches(&ua) {
                    return Err(P3Error::new(error_code::ORIGINATOR_INVALID));
                }
                let now = (self.clock)();
                let (probe, id, time) =
                    mta::submission::probe_to_transfer(&arg, &self.settings.identity, now)
                        .map_err(|_| P3Error::new(error_code::INCONSISTENT_REQUEST))?;
                let names: Vec<ORName> = probe
                    .envelope
                    .per_recipient_fields
                    .iter()
                    .map(|r| r.recipient_name.clone())
                    .collect();
                self.submit(&ua, MtsApdu::Probe(probe), &names, now).await?;
                let mut result = MessageSubmissionResult::new(id, time);
                result.content_identifier = arg.content_identifier.clone();
                Ok(P3Result::ProbeSubmission(result))
            }
            P3Operation::CancelDeferredDelivery(id) => self.cancel(&ua, &id).await,
            P3Operation::Register(_) => Err(P3Error::new(error_code::REGISTER_REJECTED)),
            P3Operation::DeliveryControl(arg) => {
                let Some((_, id)) = self.bound else {
                    return Err(P3Error::new(error_code::CONTROL_VIOLATES_REGISTRATION));
                };
                let (waiting, released) = self.users.set_controls(id, arg.controls);
                tracing::info!(peer = %self.peer, ua = %ua, released = released.len(),
                    waiting = !waiting.is_empty(), "P3 delivery controls changed");
                let now = (self.clock)();
                for q in released {
                    self.queue.retry(q, now).await;
                }
                Ok(P3Result::DeliveryControl(DeliveryControlResult {
                    waiting,
                    extensions: Vec::new(),
                }))
            }
            P3Operation::ChangeCredentials(_) => {
                Err(P3Error::new(error_code::NEW_CREDENTIALS_UNACCEPTABLE))
            }
            _ => Err(P3Error::new(error_code::INCONSISTENT_REQUEST)),
        }
    }

    /// X.411 §8.2.1.3 cancel-deferred-delivery: withdraws the message `id` if this user agent
    /// submitted it here and it still waits for its deferred delivery time.
    async fn cancel(&self, ua: &ORAddress, id: &MtsIdentifier) -> Result<P3Result, P3Error> {
        let found = self
            .submissions
            .lock()
            .ok()
            .and_then(|log| log.find(id, ua));
        let Some(queue_id) = found else {
            tracing::info!(peer = %self.peer, ua = %ua, message = %id,
                "P3 cancel-deferred-delivery refused: not a message this user agent submitted");
            return Err(P3Error::new(
                error_code::MESSAGE_SUBMISSION_IDENTIFIER_INVALID,
            ));
        };
        let now = (self.clock)();
        match self
            .queue
            .withdraw_deferred(queue_id, &ua.to_string(), now)
            .await
        {
            Ok(()) => {
                if let Ok(mut log) = self.submissions.lock() {
                    log.withdrawn(id);
                }
                tracing::info!(peer = %self.peer, ua = %ua, message = %id, queue_id = %queue_id,
                    "P3 deferred delivery cancelled");
                Ok(P3Result::CancelDeferredDelivery)
            }
            Err(WithdrawError::NotOwner) => Err(P3Error::new(
                error_code::MESSAGE_SUBMISSION_IDENTIFIER_INVALID,
            )),
            Err(e) => {
                tracing::info!(peer = %self.peer, ua = %ua, message = %id, queue_id = %queue_id,
                    reason = %e, "P3 cancel-deferred-delivery rejected");
                Err(P3Error::new(
                    error_code::DEFERRED_DELIVERY_CANCELLATION_REJECTED,
                ))
            }
        }
    }

    /// Takes a submitted MTS-APDU in (MTA rules, pipeline); its queue id once it is durable.
    async fn submit(
        &self,
        ua: &ORAddress,
        apdu: MtsApdu,
        names: &[ORName],
        now: Timestamp,
    ) -> Result<QueueId, P3Error> {
        let bytes = apdu
            .encode()
            .map_err(|_| P3Error::new(error_code::INCONSISTENT_REQUEST))?;
        let incoming = mta::receive(&bytes, &self.settings.identity, now)
            .map_err(|_| P3Error::new(error_code::INCONSISTENT_REQUEST))?;
        if let Some(r) = incoming.rejected.first() {
            // Refused outright: an unsupported critical extension, or a latest delivery time
            // already past.
            let code = match r.outcome {
                mta::Outcome::NonDelivered {
                    diagnostic: Some(diag::UNSUPPORTED_CRITICAL_FUNCTION),
                    ..
                } => error_code::UNSUPPORTED_CRITICAL_FUNCTION,
                _ => error_code::INCONSISTENT_REQUEST,
            };
            return Err(P3Error::new(code));
        }
        let ctx = SubmissionContext {
            channel: self.channel.clone(),
            service: Service::X400Submission,
            client: ClientInfo {
                address: Some(self.peer.ip()),
                helo: None,
                tls: false,
                authenticated: Some(ua.to_string()),
            },
            now,
        };
        let id = incoming.describe();
        let pipeline = self.pipeline.current();
        let mut envelope = incoming.envelope.clone();
        // Who may withdraw it (cancel-deferred-delivery).
        envelope.authenticated_as = Some(ua.to_string());
        let mut tx = pipeline
            .begin(ctx, envelope, Some(bytes.len() as u64))
            .await
            .map_err(|r| self.refused(&id, &r))?;
        let mut improper = Vec::new();
        for r in &incoming.envelope.recipients {
            if let Err(refusal) = tx.add_recipient(r.clone()).await {
                if refusal.is_temporary() {
                    return Err(self.refused(&id, &refusal));
                }
                tracing::info!(peer = %self.peer, ua = %ua, message = %id, recipient = %r.address,
                    reply = %refusal.status, "P3 recipient refused");
                if let Address::X400(or) = &r.address
                    && let Some(n) = names.iter().find(|n| n.address == **or)
                {
                    improper.push(n.clone());
                }
            }
        }
        if !improper.is_empty() {
            // X.411 §8.2.2.1.1.3: the submission is refused; nothing is queued.
            return Err(P3Error::recipient_improperly_specified(&improper)
                .unwrap_or_else(|_| P3Error::new(error_code::INCONSISTENT_REQUEST)));
        }
        let submitted = tx
            .commit(&incoming.stored)
            .await
            .map_err(|r| self.refused(&id, &r))?;
        tracing::info!(peer = %self.peer, ua = %ua, message = %id, queue_id = %submitted.id,
            recipients = submitted.envelope.recipients.len(), "P3 submission accepted");
        Ok(submitted.id)
    }

    /// The P3 error for a refusal of the whole submission.
    fn refused(&self, id: &str, r: &Refusal) -> P3Error {
        tracing::info!(peer = %self.peer, message = %id, reply = %r.status,
            "P3 submission refused");
        if r.stage == Stage::Sender && !r.is_temporary() {
            P3Error::new(error_code::ORIGINATOR_INVALID)
        } else {
            // The MTA does not take submissions now (queue full, policy): the closest X.411
            // error is a violation of the submission controls it imposes.
            P3Error::new(error_code::SUBMISSION_CONTROL_VIOLATED)
        }
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<Delivery>>) -> Option<Delivery> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn or(s: &str) -> ORAddress {
        s.parse().expect("std-or")
    }

    fn ident(n: usize) -> MtsIdentifier {
        MtsIdentifier::new(
            crate::mts::GlobalDomainIdentifier::new("GB", " ", None),
            format!("m{n}"),
        )
    }

    fn entry(n: u64, who: &str, until: Option<u64>) -> Submitted {
        Submitted {
            queue_id: QueueId(n),
            originator: or(who),
            deferred_until: until.map(Timestamp),
        }
    }

    #[test]
    fn the_submission_log_finds_a_message_only_for_its_originator() {
        let mut log = SubmissionLog::default();
        let ua = "/C=GB/ADMD= /PRMD=P/O=Ex/S=Smith/";
        log.record(ident(1), entry(7, ua, Some(100)), Timestamp(1));
        assert_eq!(log.find(&ident(1), &or(ua)), Some(QueueId(7)));
        assert_eq!(
            log.find(&ident(1), &or("/C=GB/ADMD= /PRMD=P/O=Ex/S=Jones/")),
            None
        );
        assert_eq!(log.find(&ident(2), &or(ua)), None);
        log.withdrawn(&ident(1));
        assert_eq!(log.find(&ident(1), &or(ua)), Some(QueueId(7)));
        assert_eq!(log.by_id[&ident(1)].deferred_until, None);
    }

    #[test]
    fn the_submission_log_is_bounded_but_keeps_messages_still_deferred() {
        let mut log = SubmissionLog::default();
        let ua = "/C=GB/ADMD= /PRMD=P/O=Ex/S=Smith/";
        // The oldest is deferred until 1000; the others are not deferred.
        log.record(ident(0), entry(0, ua, Some(1000)), Timestamp(1));
        for n in 1..=MAX_REMEMBERED_SUBMISSIONS + 10 {
            log.record(ident(n), entry(n as u64, ua, None), Timestamp(2));
        }
        assert_eq!(log.by_id.len(), MAX_REMEMBERED_SUBMISSIONS);
        assert_eq!(log.order.len(), MAX_REMEMBERED_SUBMISSIONS);
        assert_eq!(log.find(&ident(0), &or(ua)), Some(QueueId(0)));
        assert_eq!(log.find(&ident(1), &or(ua)), None, "the oldest others go");
        let last = MAX_REMEMBERED_SUBMISSIONS + 10;
        assert_eq!(log.find(&ident(last), &or(ua)), Some(QueueId(last as u64)));
        // Once its time has passed, the deferred one goes in its turn.
        for n in last + 1..=last + MAX_REMEMBERED_SUBMISSIONS {
            log.record(ident(n), entry(n as u64, ua, None), Timestamp(2000));
        }
        assert_eq!(log.by_id.len(), MAX_REMEMBERED_SUBMISSIONS);
        assert_eq!(log.find(&ident(0), &or(ua)), None);
    }

    #[test]
    fn a_store_holds_the_addresses_under_its_prefix() {
        let store = MessageStore {
            address_prefix: or("/C=GB/ADMD= /PRMD=P/O=Ex/"),
            address: "127.0.0.1:1".parse().expect("addr"),
            password: String::new(),
        };
        assert!(store.holds(&or("/C=GB/ADMD= /PRMD=P/O=Ex/S=Jones/")));
        assert!(store.holds(&or("/C=GB/ADMD= /PRMD=P/O=ex/OU=Sales/S=Jones/")));
        assert!(!store.holds(&or("/C=GB/ADMD= /PRMD=P/O=Other/S=Jones/")));
        assert!(!store.holds(&or("/C=GB/ADMD= /PRMD=Q/O=Ex/S=Jones/")));
        assert!(!store.holds(&or("/C=GB/ADMD= /PRMD=P/S=Jones/")));
    }
}
