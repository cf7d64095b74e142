//! In-memory implementations of the traits, for tests and examples. **Not durable**: nothing
//! here survives the process. Production code uses `mswitch-queue` and `mswitch-route`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::address::Address;
use crate::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    RecipientOutcome,
};
use crate::envelope::{ContentFamily, Envelope, NextHop, Route};
use crate::id::{ChannelId, QueueId};
use crate::route::{RouteContext, RouteDecision, Router};
use crate::status::Status;
use crate::store::{
    Content, EnqueueError, QueueStore, RecipientUpdate, Recovered, StoreError, StoredMessage,
};

#[derive(Default)]
struct QueueState {
    next_id: u64,
    messages: BTreeMap<QueueId, (Envelope, Content)>,
    admission_error: Option<EnqueueError>,
    enqueue_error: Option<EnqueueError>,
}

/// A [`QueueStore`] in memory, with switches to make it fail. Not durable.
#[derive(Default)]
pub struct MemoryQueue {
    state: Mutex<QueueState>,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes every `enqueue` fail with `error` (or succeed again with `None`).
    pub fn fail_enqueue(&self, error: Option<EnqueueError>) {
        self.lock().enqueue_error = error;
    }

    /// Makes every `admission` check fail with `error` (or succeed again with `None`).
    pub fn fail_admission(&self, error: Option<EnqueueError>) {
        self.lock().admission_error = error;
    }

    /// How many messages are queued.
    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of a queued message's envelope.
    pub fn envelope(&self, id: QueueId) -> Option<Envelope> {
        self.lock().messages.get(&id).map(|(e, _)| e.clone())
    }
}

#[async_trait]
impl QueueStore for MemoryQueue {
    fn admission(&self, _size_hint: Option<u64>) -> Result<(), EnqueueError> {
        match &self.lock().admission_error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    async fn enqueue(&self, envelope: &Envelope, content: &[u8]) -> Result<QueueId, EnqueueError> {
        let mut s = self.lock();
        if let Some(e) = &s.enqueue_error {
            return Err(e.clone());
        }
        s.next_id += 1;
        let id = QueueId(s.next_id);
        s.messages
            .insert(id, (envelope.clone(), Content::new(content.to_vec())));
        Ok(id)
    }

    async fn record(&self, id: QueueId, updates: &[RecipientUpdate]) -> Result<(), StoreError> {
        let mut s = self.lock();
        let (env, _) = s
            .messages
            .get_mut(&id)
            .ok_or(StoreError::UnknownMessage(id))?;
        if let Some(bad) = updates.iter().find(|u| u.index >= env.recipients.len()) {
            return Err(StoreError::UnknownRecipient {
                id,
                index: bad.index,
            });
        }
        for u in updates {
            env.recipients[u.index].state = u.state.clone();
        }
        Ok(())
    }

    async fn remove(&self, id: QueueId) -> Result<(), StoreError> {
        self.lock()
            .messages
            .remove(&id)
            .map(|_| ())
            .ok_or(StoreError::UnknownMessage(id))
    }

    async fn content(&self, id: QueueId) -> Result<Content, StoreError> {
        self.lock()
            .messages
            .get(&id)
            .map(|(_, c)| c.clone())
            .ok_or(StoreError::UnknownMessage(id))
    }

    async fn recover(&self) -> Result<Recovered, StoreError> {
        let s = self.lock();
        Ok(Recovered {
            messages: s
                .messages
                .iter()
                .map(|(id, (envelope, _))| StoredMessage {
                    id: *id,
                    envelope: envelope.clone(),
                })
                .collect(),
            quarantined: Vec::new(),
        })
    }
}

/// A [`Router`] from fixed tables: exact addresses first, then local domains, then a default
/// route for everything else (relay). Addresses in no table are refused with 550 5.1.2.
#[derive(Debug, Clone, Default)]
pub struct StaticRouter {
    addresses: HashMap<Address, RouteDecision>,
    local_domains: HashMap<String, ChannelId>,
    default_route: Option<Route>,
}

impl StaticRouter {
    /// An empty router (refuses everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Every address in `domain` (compared case-insensitively) is local, delivered by
    /// `channel`.
    pub fn local_domain(mut self, domain: &str, channel: &str) -> Self {
        self.local_domains
            .insert(domain.to_ascii_lowercase(), ChannelId::new(channel));
        self
    }

    /// A fixed decision for one address (an alias, a refusal, a special route).
    pub fn address(mut self, address: Address, decision: RouteDecision) -> Self {
        self.addresses.insert(address, decision);
        self
    }

    /// Where everything not local goes.
    pub fn default_route(mut self, route: Route) -> Self {
        self.default_route = Some(route);
        self
    }
}

#[async_trait]
impl Router for StaticRouter {
    async fn route(&self, address: &Address, _ctx: RouteContext<'_>) -> RouteDecision {
        if let Some(d) = self.addresses.get(address) {
            return d.clone();
        }
        let domain = address
            .as_mailbox()
            .and_then(|m| m.domain())
            .map(|d| d.to_ascii());
        if let Some(channel) = domain.and_then(|d| self.local_domains.get(d)) {
            return RouteDecision::Deliver(Route {
                channel: channel.clone(),
                next_hop: NextHop::Local,
                local: true,
            });
        }
        match &self.default_route {
            Some(r) => RouteDecision::Deliver(r.clone()),
            None => RouteDecision::Reject(Status::new(
                550,
                (5, 1, 2),
                format!("No route to {address}"),
            )),
        }
    }
}

/// An outbound [`Channel`] that records every job and answers each recipient with a scripted
/// result (by default `250 2.0.0`), for testing the code that drives channels.
pub struct RecordingChannel {
    descriptor: ChannelDescriptor,
    state: Mutex<RecordingState>,
}

#[derive(Default)]
struct RecordingState {
    jobs: Vec<DeliveryJob>,
    by_address: HashMap<Address, DeliveryResult>,
    fail_all: Option<ChannelError>,
}

impl RecordingChannel {
    /// An outbound channel for Internet mail with this name.
    pub fn new(name: &str) -> Self {
        RecordingChannel {
            descriptor: ChannelDescriptor {
                id: ChannelId::new(name),
                kind: ChannelKind::Outbound,
                accepts: vec![ContentFamily::Internet],
            },
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, RecordingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers this recipient with `result` from now on.
    pub fn script(&self, address: Address, result: DeliveryResult) {
        self.lock().by_address.insert(address, result);
    }

    /// Makes every job fail as a whole with `error` (or succeed again with `None`).
    pub fn fail_all(&self, error: Option<ChannelError>) {
        self.lock().fail_all = error;
    }

    /// The jobs received so far.
    pub fn jobs(&self) -> Vec<DeliveryJob> {
        self.lock().jobs.clone()
    }
}

#[async_trait]
impl Channel for RecordingChannel {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        let mut s = self.lock();
        s.jobs.push(job.clone());
        if let Some(e) = &s.fail_all {
            return Err(e.clone());
        }
        Ok(job
            .recipients
            .iter()
            .map(|&index| {
                let scripted = job
                    .envelope
                    .recipients
                    .get(index)
                    .and_then(|r| s.by_address.get(&r.address).cloned());
                RecipientOutcome {
                    index,
                    result: scripted.unwrap_or_else(|| {
                        DeliveryResult::Delivered(Status::new(250, (2, 0, 0), "OK"))
                    }),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::executor::block_on;

    use super::*;
    use crate::envelope::{Recipient, ReversePath};
    use crate::id::Timestamp;
    use crate::store::Content;

    #[test]
    fn recording_channel_scripts_outcomes_per_recipient() {
        let ch = RecordingChannel::new("test");
        let a = Address::parse("a@example.com").expect("valid");
        let b = Address::parse("b@example.com").expect("valid");
        ch.script(
            b.clone(),
            DeliveryResult::TryLater(Status::new(451, (4, 2, 0), "busy")),
        );
        let mut env = Envelope::new(ReversePath::Null, Timestamp(0));
        env.recipients = vec![Recipient::new(a), Recipient::new(b)];
        let job = DeliveryJob {
            queue_id: QueueId(7),
            envelope: Arc::new(env),
            content: Content::from(b"x".to_vec()),
            recipients: vec![0, 1],
            next_hop: NextHop::Local,
            attempt: 1,
        };
        let out = block_on(ch.deliver(job.clone())).expect("delivered");
        assert!(matches!(out[0].result, DeliveryResult::Delivered(_)));
        assert!(matches!(out[1].result, DeliveryResult::TryLater(ref s) if s.code == 451));
        ch.fail_all(Some(ChannelError::Shutdown));
        assert!(matches!(
            block_on(ch.deliver(job)),
            Err(ChannelError::Shutdown)
        ));
        assert_eq!(ch.jobs().len(), 2);
    }
}
