//! In-memory implementations of the traits, for tests and examples. **Not durable**: nothing
//! here survives the process. Production code uses `mswitch-queue` and `mswitch-route`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::address::Address;
use crate::envelope::{Envelope, NextHop, Route};
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
