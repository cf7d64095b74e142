//! The QMGR: the scheduler of the switch, as a pure state machine.
//!
//! It holds the state of every queued message in memory (rebuilt from the queue at start-up
//! with [`Qmgr::insert`]), groups each message's pending recipients by channel and next hop, and
//! decides what to attempt next ([`Qmgr::next_dispatch`]): higher priority first, within the
//! concurrency limits of each channel and each peer, with retries on an exponential schedule
//! with jitter. It never does I/O and never reads the clock: the driver (the daemon) passes the
//! time in, carries out each [`Dispatch`] on a channel, reports back with [`Qmgr::complete`], and
//! performs the [`Effect`]s it gets back (record states in the queue, send notifications, remove
//! finished messages), in the order given.
//!
//! Scheduling rules:
//! - **Priority.** Each (channel, next hop) pair is a *peer queue*. Among the peer queues of a
//!   channel that may start a job now, the one whose best waiting item has the highest
//!   [`Priority`] goes first (oldest first within a priority). Every
//!   [`QmgrConfig::fairness_interval`]-th dispatch of a channel, and of a peer queue, takes the
//!   oldest item instead, so lower priorities are slowed, never starved.
//! - **Limits.** At most [`ChannelLimits::max_jobs`] jobs per channel and
//!   [`ChannelLimits::max_per_peer`] per peer queue run at once.
//! - **Retries.** A recipient that fails temporarily is retried after
//!   [`RetrySchedule::delay`] (exponential, capped, with jitter), until the message's lifetime
//!   ends ([`QmgrConfig::max_lifetime`], or the envelope's own expiry): then it fails with
//!   5.4.7 and a non-delivery notice is owed.
//! - **Dead peers.** A job that could not reach its peer at all marks the peer queue dead for a
//!   back-off period: its other items wait instead of each trying (and timing out) in turn.
//! - **Notifications.** Failure, delay (once, after [`QmgrConfig::delay_warning`]) and
//!   success/relay notices are asked for with [`Effect::Notify`] according to each recipient's
//!   RFC 3461 NOTIFY ([`crate::dsn::wanted`]); never for a message from the null sender.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::channel::{DeliveryResult, RecipientOutcome, WithdrawError};
use crate::dsn::{DsnAction, wanted};
use crate::envelope::{Envelope, NextHop, PackedEnvelope, Priority, RecipientState, ReversePath};
use crate::id::{ChannelId, IdMap, QueueId, Timestamp};
use crate::status::Status;
use crate::store::RecipientUpdate;

#[cfg(test)]
mod tests;

/// Concurrency limits of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Jobs of this channel running at once.
    pub max_jobs: usize,
    /// Jobs to one next hop of this channel running at once (with self-tuning: the ceiling).
    pub max_per_peer: usize,
    /// Find each peer's concurrency by measurement (see [`Qmgr`]'s "Self-tuning").
    pub self_tuning: bool,
}

impl Default for ChannelLimits {
    fn default() -> Self {
        ChannelLimits {
            max_jobs: 20,
            max_per_peer: 10,
            self_tuning: false,
        }
    }
}

/// What self-tuning has decided for one peer, for management.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerTuning {
    /// The channel.
    pub channel: ChannelId,
    /// The next hop.
    pub next_hop: NextHop,
    /// Jobs allowed at once now.
    pub limit: usize,
    /// Pinned by an operator.
    pub pinned: bool,
    /// Messages per second over the last window, if measured.
    pub rate: Option<f64>,
    /// Why the limit is what it is.
    pub reason: &'static str,
}

/// The measurement state of a self-tuned peer.
#[derive(Debug, Clone)]
struct Tune {
    limit: usize,
    pinned: bool,
    window_start: Option<Timestamp>,
    done: u64,
    last_rate: Option<f64>,
    /// The last change was an increase, still to be judged.
    probing: bool,
    steady: u32,
    reason: &'static str,
}

impl Tune {
    fn new() -> Self {
        Tune {
            limit: 1,
            pinned: false,
            window_start: None,
            done: 0,
            last_rate: None,
            probing: false,
            steady: 0,
            reason: "starting",
        }
    }
}

/// When to try again after a temporary failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySchedule {
    /// The delay after the first failure.
    pub first: Duration,
    /// Each further failure multiplies the delay by this.
    pub factor: f64,
    /// The longest delay.
    pub max: Duration,
    /// Each delay is moved at random by up to this fraction either way (0.0 to 1.0), so that
    /// messages deferred together do not all come back at the same moment.
    pub jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            first: Duration::from_secs(60),
            factor: 2.0,
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl RetrySchedule {
    /// The delay before attempt `failures + 1`, after `failures` (≥ 1) temporary failures,
    /// before jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = i32::try_from(failures.saturating_sub(1).min(64)).unwrap_or(64);
        let secs = self.first.as_secs_f64() * self.factor.max(1.0).powi(exp);
        let capped = secs.min(self.max.as_secs_f64()).max(0.0);
        Duration::from_secs_f64(capped)
    }
}

/// The scheduler's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct QmgrConfig {
    /// Limits per channel; channels not listed get `default_limits`.
    pub channels: HashMap<ChannelId, ChannelLimits>,
    /// Limits of channels not listed.
    pub default_limits: ChannelLimits,
    /// Retry delays.
    pub retry: RetrySchedule,
    /// How long a message may stay queued before its undelivered recipients fail (5.4.7).
    pub max_lifetime: Duration,
    /// After how long in the queue a delay notice is sent (once), if the recipients asked for
    /// one; `None`: never.
    pub delay_warning: Option<Duration>,
    /// The most recipients in one job (one SMTP transaction).
    pub max_recipients_per_job: usize,
    /// Every this many dispatches of a channel (and of a peer queue), the oldest item goes
    /// instead of the highest priority one. 0 disables it.
    pub fairness_interval: u32,
    /// A job whose peer could not be reached makes the peer queue wait this long (doubling
    /// with each further failure, up to `retry.max`) before the next attempt.
    pub dead_peer_backoff: Duration,
    /// Seed of the jitter's generator (the core reads no entropy itself).
    pub seed: u64,
}

impl Default for QmgrConfig {
    fn default() -> Self {
        QmgrConfig {
            channels: HashMap::new(),
            default_limits: ChannelLimits::default(),
            retry: RetrySchedule::default(),
            max_lifetime: Duration::from_secs(5 * 24 * 3600),
            delay_warning: Some(Duration::from_secs(4 * 3600)),
            max_recipients_per_job: 50,
            fairness_interval: 8,
            dead_peer_backoff: Duration::from_secs(60),
            seed: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

/// Identifies a job handed out by [`Qmgr::next_dispatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// A job to run: some recipients of one message, to one channel and next hop.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// Give it back to [`Qmgr::complete`].
    pub job: JobId,
    /// The message.
    pub queue_id: QueueId,
    /// Its envelope as the QMGR holds it.
    pub envelope: Arc<Envelope>,
    /// The channel.
    pub channel: ChannelId,
    /// The next hop.
    pub next_hop: NextHop,
    /// Indices into `envelope.recipients`.
    pub recipients: Vec<usize>,
    /// 1 for a first attempt, counting up.
    pub attempt: u32,
}

/// How a job ended.
#[derive(Debug, Clone)]
pub enum JobResult {
    /// The channel ran: one outcome per recipient (a recipient left out is retried).
    Outcomes(Vec<RecipientOutcome>),
    /// The peer could not be reached (or the connection failed before any transaction): every
    /// recipient is retried, and the peer queue waits.
    Unreachable(Status),
    /// The channel failed for another reason: every recipient is retried.
    Failed(Status),
}

/// What kind of notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// Some recipients failed.
    Failure,
    /// Some recipients are still waiting after [`QmgrConfig::delay_warning`].
    Delay,
    /// Some recipients were delivered, relayed or expanded, and asked to be told.
    Success,
}

/// A recipient to be reported in a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRecipient {
    /// Index into the envelope's recipients.
    pub index: usize,
    /// The action the notice reports.
    pub action: DsnAction,
    /// The status to report.
    pub status: Status,
    /// The next hop it was attempted at, if any.
    pub remote: Option<NextHop>,
}

/// Something the driver must do, in the order given.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Make these recipient states durable.
    Record {
        /// The message.
        queue_id: QueueId,
        /// The new states.
        updates: Vec<RecipientUpdate>,
    },
    /// Send a delivery status notification to the originator (build it with
    /// [`crate::dsn::build`] and submit it), before any `Remove` of the message that follows.
    Notify {
        /// The message the notice is about.
        queue_id: QueueId,
        /// Its envelope (states applied).
        envelope: Arc<Envelope>,
        /// What kind.
        kind: NoticeKind,
        /// The recipients it reports.
        recipients: Vec<NoticeRecipient>,
    },
    /// A notice was owed but is not sent: the message came from the null sender. The driver
    /// logs it; nothing else.
    NoticeSuppressed {
        /// The message.
        queue_id: QueueId,
        /// What kind of notice it would have been.
        kind: NoticeKind,
        /// How many recipients it concerned.
        recipients: usize,
    },
    /// Every recipient is done: remove the message from the queue.
    Remove {
        /// The message.
        queue_id: QueueId,
    },
}

/// Counters for management.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QmgrStats {
    /// Messages held in memory.
    pub messages: usize,
    /// Recipient groups waiting for their time.
    pub waiting: usize,
    /// Recipient groups ready to go.
    pub ready: usize,
    /// Jobs running.
    pub in_flight: usize,
    /// Groups on hold.
    pub held: usize,
}

/// A summary of one queued message, for management.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// The message.
    pub queue_id: QueueId,
    /// Its priority.
    pub priority: Priority,
    /// When it arrived.
    pub arrival: Timestamp,
    /// Recipients not yet final.
    pub pending: usize,
    /// On hold.
    pub held: bool,
}

// ---- internal state ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ItemId(u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PeerIdx(usize);

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Timer {
    Item(ItemId),
    Peer(PeerIdx),
    /// Boxed: the other timers are one integer, and there are millions of them.
    ChannelResume(Box<ChannelId>),
    Lifetime(QueueId),
    DelayWarning(QueueId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemState {
    Waiting(Timestamp),
    Ready,
    InFlight(JobId),
    Held,
}

/// Some recipients of one message with the same channel and next hop.
#[derive(Debug)]
struct Item {
    queue_id: QueueId,
    peer: PeerIdx,
    recipients: Vec<usize>,
    /// Ordering key within a priority: smaller is older.
    seq: u64,
    priority: Priority,
    state: ItemState,
}

type PrioKey = (Reverse<Priority>, u64, ItemId);

#[derive(Debug)]
struct Peer {
    channel: ChannelId,
    hop: NextHop,
    /// Ready items by priority (best first), and by age.
    by_priority: BTreeSet<PrioKey>,
    by_age: BTreeSet<(u64, ItemId)>,
    active: usize,
    dispatches: u64,
    failures: u32,
    dead_until: Option<Timestamp>,
    /// This peer's entries in its channel's `heads` and `oldest`, if it has them.
    head: Option<(Reverse<Priority>, u64)>,
    oldest: Option<u64>,
    /// Self-tuning, when its channel has it.
    tune: Option<Tune>,
}

#[derive(Debug, Default)]
struct ChannelState {
    active: usize,
    dispatches: u64,
    /// An operator stopped outbound delivery on this channel.
    disabled: bool,
    /// Nothing starts before this time (an operator's delay).
    paused_until: Option<Timestamp>,
    /// Only messages of at least this priority start.
    min_priority: Option<Priority>,
    /// Peers that may start a job now, by their best item and by their oldest item.
    heads: BTreeSet<(Reverse<Priority>, u64, PeerIdx)>,
    oldest: BTreeSet<(u64, PeerIdx)>,
}

/// A message's envelope as the QMGR holds it: decoded while the message is being worked on,
/// and packed ([`PackedEnvelope`]) while it only waits (for a retry time, on hold), which is
/// nearly every message of a big queue.
#[derive(Debug)]
enum HeldEnvelope {
    Full(Arc<Envelope>),
    Packed(PackedEnvelope),
}

impl HeldEnvelope {
    /// The envelope (decoded anew when packed).
    fn get(&self) -> Arc<Envelope> {
        match self {
            HeldEnvelope::Full(e) => e.clone(),
            HeldEnvelope::Packed(p) => Arc::new(unpack(p)),
        }
    }
}

/// Decodes a packed envelope. It was encoded by this process or checked by the queue, so it
/// decodes; should it not, the envelope is lost and a placeholder without recipients stands in
/// (nothing is delivered for it, nothing wrong is sent).
fn unpack(p: &PackedEnvelope) -> Envelope {
    p.unpack()
        .unwrap_or_else(|_| Envelope::new(ReversePath::Null, Timestamp(0)))
}

#[derive(Debug)]
struct Message {
    envelope: HeldEnvelope,
    items: Vec<ItemId>,
    held: bool,
    delay_warned: bool,
    expires: Timestamp,
    /// The lifetime ended while jobs were running.
    expired: bool,
}

impl Message {
    /// The envelope, decoded in place if it was packed.
    fn full(&mut self) -> &mut Arc<Envelope> {
        if let HeldEnvelope::Packed(p) = &self.envelope {
            self.envelope = HeldEnvelope::Full(Arc::new(unpack(p)));
        }
        match &mut self.envelope {
            HeldEnvelope::Full(e) => e,
            HeldEnvelope::Packed(_) => unreachable!("decoded above"),
        }
    }
}

#[derive(Debug)]
struct Job {
    item: ItemId,
    attempt: u32,
}

/// The scheduler. See the module documentation.
#[derive(Debug)]
pub struct Qmgr {
    config: QmgrConfig,
    messages: IdMap<QueueId, Message>,
    items: IdMap<ItemId, Item>,
    peers: Vec<Peer>,
    peer_index: HashMap<(ChannelId, NextHop), PeerIdx>,
    channels: HashMap<ChannelId, ChannelState>,
    jobs: IdMap<JobId, Job>,
    timers: BTreeSet<(Timestamp, Timer)>,
    /// While [`Qmgr::recover`] inserts many messages: their timers, set in one go at the end
    /// (a tree built from sorted entries is full, one built by inserting them is half empty).
    batch: Option<Vec<(Timestamp, Timer)>>,
    next_item: u64,
    next_job: u64,
    next_seq: u64,
    rng: u64,
    held_items: usize,
}

impl Qmgr {
    /// An empty scheduler.
    pub fn new(config: QmgrConfig) -> Self {
        let rng = config.seed | 1;
        Qmgr {
            config,
            messages: IdMap::default(),
            items: IdMap::default(),
            peers: Vec::new(),
            peer_index: HashMap::new(),
            channels: HashMap::new(),
            jobs: IdMap::default(),
            timers: BTreeSet::new(),
            batch: None,
            next_item: 0,
            next_job: 0,
            next_seq: 0,
            rng,
            held_items: 0,
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &QmgrConfig {
        &self.config
    }

    /// Replaces the settings (a configuration reload). Limits apply to the next dispatch;
    /// waiting items keep their times.
    pub fn reconfigure(&mut self, config: QmgrConfig) {
        self.config = config;
        let peers: Vec<PeerIdx> = (0..self.peers.len()).map(PeerIdx).collect();
        for p in peers {
            self.refresh_peer(p);
        }
    }

    /// Takes a queued message (new, or found at recovery). Recipients already final are
    /// ignored; the others are grouped by route. A message with nothing left to do gives
    /// `Remove`.
    pub fn insert(&mut self, queue_id: QueueId, envelope: Envelope, now: Timestamp) -> Vec<Effect> {
        self.insert_with(queue_id, envelope, None, now)
    }

    /// Takes the messages found in the queue at start-up ([`Qmgr::insert_packed`] for each),
    /// with the memory and time that many messages at once allow to save.
    pub fn recover(
        &mut self,
        messages: impl ExactSizeIterator<Item = (QueueId, PackedEnvelope)>,
        now: Timestamp,
    ) -> Vec<Effect> {
        self.messages.reserve(messages.len());
        self.items.reserve(messages.len());
        let outer = self.batch.replace(Vec::with_capacity(2 * messages.len()));
        let mut effects = Vec::new();
        for (queue_id, envelope) in messages {
            effects.extend(self.insert_packed(queue_id, envelope, now));
        }
        let mut batch = std::mem::replace(&mut self.batch, outer).unwrap_or_default();
        // Timers of messages already finished (nothing left to do at insertion) go.
        batch.retain(|(at, timer)| match timer {
            Timer::Item(id) => self
                .items
                .get(id)
                .is_some_and(|i| i.state == ItemState::Waiting(*at)),
            Timer::Lifetime(q) | Timer::DelayWarning(q) => self.messages.contains_key(q),
            Timer::Peer(_) | Timer::ChannelResume(_) => true,
        });
        batch.extend(std::mem::take(&mut self.timers));
        self.timers = batch.into_iter().collect();
        effects
    }

    /// As [`Qmgr::insert`], for an envelope found packed at recovery: a message that only
    /// waits keeps these bytes, and is never held decoded.
    pub fn insert_packed(
        &mut self,
        queue_id: QueueId,
        envelope: PackedEnvelope,
        now: Timestamp,
    ) -> Vec<Effect> {
        let decoded = unpack(&envelope);
        self.insert_with(queue_id, decoded, Some(envelope), now)
    }

    fn insert_with(
        &mut self,
        queue_id: QueueId,
        envelope: Envelope,
        packed: Option<PackedEnvelope>,
        now: Timestamp,
    ) -> Vec<Effect> {
        if self.messages.contains_key(&queue_id) {
            return Vec::new();
        }
        let lifetime_end = envelope.arrival.saturating_add(self.config.max_lifetime);
        let expires = envelope
            .expires
            .map_or(lifetime_end, |e| e.min(lifetime_end));
        let not_before = envelope.deferred_until.unwrap_or(Timestamp(0));
        let priority = envelope.priority;
        // Group pending recipients by (channel, next hop), keeping the earliest due time.
        let mut groups: Vec<((ChannelId, NextHop), Vec<usize>, Timestamp)> = Vec::new();
        let mut unroutable = Vec::new();
        for (i, r) in envelope.recipients.iter().enumerate() {
            if r.state.is_final() {
                continue;
            }
            let Some(route) = &r.route else {
                unroutable.push(i);
                continue;
            };
            let due = match &r.state {
                RecipientState::Deferred { next_attempt, .. } => *next_attempt,
                _ => now,
            }
            .max(not_before);
            let key = (route.channel.clone(), route.next_hop.clone());
            match groups
                .iter_mut()
                .find(|(k, v, _)| *k == key && v.len() < self.config.max_recipients_per_job.max(1))
            {
                Some((_, v, d)) => {
                    v.push(i);
                    *d = (*d).min(due);
                }
                None => groups.push((key, vec![i], due)),
            }
        }
        let arrival = envelope.arrival;
        self.messages.insert(
            queue_id,
            Message {
                envelope: HeldEnvelope::Full(Arc::new(envelope)),
                items: Vec::new(),
                held: false,
                delay_warned: false,
                expires,
                expired: false,
            },
        );
        let mut effects = Vec::new();
        let unroutable_count = unroutable.len();
        if !unroutable.is_empty() {
            // Only a damaged or hand-made envelope gets here: the pipeline routes every
            // recipient it accepts.
            let status = Status::new(554, (5, 4, 0), "recipient has no route");
            let outcomes = unroutable
                .into_iter()
                .map(|index| (index, DeliveryResult::Failed(status.clone()), None))
                .collect();
            self.apply(queue_id, outcomes, 0, now, &mut effects);
        }
        for ((channel, hop), recipients, due) in groups {
            let peer = self.peer(channel, hop);
            let seq = self.seq();
            let id = ItemId(self.next_item);
            self.next_item += 1;
            self.items.insert(
                id,
                Item {
                    queue_id,
                    peer,
                    recipients,
                    seq,
                    priority,
                    state: ItemState::Held,
                },
            );
            if let Some(m) = self.messages.get_mut(&queue_id) {
                m.items.push(id);
            }
            self.schedule(id, due, now);
        }
        if self.messages.contains_key(&queue_id) {
            self.add_timer(expires, Timer::Lifetime(queue_id));
            if let Some(warn) = self.config.delay_warning {
                let at = arrival.saturating_add(warn);
                if at < expires {
                    self.add_timer(at, Timer::DelayWarning(queue_id));
                }
            }
        }
        self.finish_if_done(queue_id, &mut effects);
        // Bytes from the queue stand only for the envelope as it was given (`apply` above may
        // have changed it).
        let packed = packed.filter(|_| unroutable_count == 0);
        self.pack_if_idle_with(queue_id, packed);
        effects
    }

    /// Packs the envelope of a message none of whose recipients is ready or in flight (see
    /// [`HeldEnvelope`]).
    fn pack_if_idle(&mut self, queue_id: QueueId) {
        self.pack_if_idle_with(queue_id, None);
    }

    /// As [`Qmgr::pack_if_idle`], with the packed form at hand if `packed`.
    fn pack_if_idle_with(&mut self, queue_id: QueueId, packed: Option<PackedEnvelope>) {
        let Some(m) = self.messages.get(&queue_id) else {
            return;
        };
        let HeldEnvelope::Full(env) = &m.envelope else {
            return;
        };
        let busy = m.items.iter().any(|id| {
            self.items
                .get(id)
                .is_some_and(|i| matches!(i.state, ItemState::Ready | ItemState::InFlight(_)))
        });
        if busy {
            return;
        }
        if let Some(packed) = packed.or_else(|| PackedEnvelope::pack(env))
            && let Some(m) = self.messages.get_mut(&queue_id)
        {
            m.envelope = HeldEnvelope::Packed(packed);
        }
    }

    /// The next job to run now, if any channel and peer may start one.
    pub fn next_dispatch(&mut self, now: Timestamp) -> Option<Dispatch> {
        // The best candidate of each channel with room.
        let mut best: Option<((Reverse<Priority>, u64), PeerIdx, bool)> = None;
        for (id, ch) in &self.channels {
            let limits = self.limits(id);
            if ch.active >= limits.max_jobs
                || ch.disabled
                || ch.paused_until.is_some_and(|t| t > now)
            {
                continue;
            }
            if let (Some(min), Some(&(Reverse(best_prio), _, _))) =
                (ch.min_priority, ch.heads.first())
                && best_prio < min
            {
                continue;
            }
            // With a priority limit the best items go, never the oldest.
            let fair = ch.min_priority.is_none()
                && self.config.fairness_interval > 0
                && ch.dispatches % u64::from(self.config.fairness_interval)
                    == u64::from(self.config.fairness_interval) - 1;
            let candidate = if fair {
                ch.oldest.first().map(|&(seq, p)| {
                    let head = self.peers[p.0].by_priority.first().map(|k| k.0);
                    ((head.unwrap_or(Reverse(Priority::Deferred)), seq), p, true)
                })
            } else {
                ch.heads
                    .first()
                    .map(|&(prio, seq, p)| ((prio, seq), p, false))
            };
            if let Some(c) = candidate
                && best.as_ref().is_none_or(|b| c.0 < b.0)
            {
                best = Some(c);
            }
        }
        let (_, peer_idx, _) = best?;
        let limited = self
            .channels
            .get(&self.peers[peer_idx.0].channel)
            .is_some_and(|c| c.min_priority.is_some());
        let peer = &mut self.peers[peer_idx.0];
        let fair_peer = !limited
            && self.config.fairness_interval > 0
            && peer.dispatches % u64::from(self.config.fairness_interval)
                == u64::from(self.config.fairness_interval) - 1;
        let item_id = if fair_peer {
            peer.by_age.first().map(|&(_, id)| id)
        } else {
            peer.by_priority.first().map(|&(_, _, id)| id)
        }?;
        self.unready(item_id);
        let job = JobId(self.next_job);
        self.next_job += 1;
        let peer = &mut self.peers[peer_idx.0];
        peer.active += 1;
        peer.dispatches += 1;
        let channel = peer.channel.clone();
        let next_hop = peer.hop.clone();
        let ch = self.channels.entry(channel.clone()).or_default();
        ch.active += 1;
        ch.dispatches += 1;
        let item = self.items.get_mut(&item_id)?;
        item.state = ItemState::InFlight(job);
        let queue_id = item.queue_id;
        let recipients = item.recipients.clone();
        let envelope = self.messages.get_mut(&queue_id)?.full().clone();
        let attempt = 1 + recipients
            .iter()
            .filter_map(|&i| match envelope.recipients.get(i).map(|r| &r.state) {
                Some(RecipientState::Deferred { attempts, .. }) => Some(*attempts),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        self.jobs.insert(
            job,
            Job {
                item: item_id,
                attempt,
            },
        );
        self.refresh_peer(peer_idx);
        Some(Dispatch {
            job,
            queue_id,
            envelope,
            channel,
            next_hop,
            recipients,
            attempt,
        })
    }

    /// A job ended. Applies the outcomes and gives the effects to carry out.
    pub fn complete(&mut self, job: JobId, result: JobResult, now: Timestamp) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(Job {
            item: item_id,
            attempt,
        }) = self.jobs.remove(&job)
        else {
            return effects;
        };
        let Some(item) = self.items.remove(&item_id) else {
            return effects;
        };
        let peer_idx = item.peer;
        {
            let peer = &mut self.peers[peer_idx.0];
            peer.active = peer.active.saturating_sub(1);
            if let Some(ch) = self.channels.get_mut(&peer.channel) {
                ch.active = ch.active.saturating_sub(1);
            }
        }
        let queue_id = item.queue_id;
        if let Some(m) = self.messages.get_mut(&queue_id) {
            m.items.retain(|&i| i != item_id);
        }
        let hop = Some(self.peers[peer_idx.0].hop.clone());
        let outcomes: Vec<(usize, DeliveryResult, Option<NextHop>)> = match result {
            JobResult::Outcomes(list) => {
                let mut by_index: HashMap<usize, DeliveryResult> = list
                    .into_iter()
                    .map(|RecipientOutcome { index, result }| (index, result))
                    .collect();
                let any_success = by_index.values().any(|r| {
                    matches!(
                        r,
                        DeliveryResult::Delivered(_)
                            | DeliveryResult::Relayed(_)
                            | DeliveryResult::RelayedWithoutDsn(_)
                            | DeliveryResult::Expanded
                    )
                });
                if any_success {
                    let peer = &mut self.peers[peer_idx.0];
                    peer.failures = 0;
                    peer.dead_until = None;
                }
                item.recipients
                    .iter()
                    .map(|&i| {
                        let r = by_index.remove(&i).unwrap_or_else(|| {
                            DeliveryResult::TryLater(Status::new(
                                451,
                                (4, 3, 0),
                                "the channel gave no outcome for this recipient",
                            ))
                        });
                        (i, r, hop.clone())
                    })
                    .collect()
            }
            JobResult::Unreachable(status) => {
                self.peer_failed(peer_idx, now);
                item.recipients
                    .iter()
                    .map(|&i| (i, DeliveryResult::TryLater(status.clone()), hop.clone()))
                    .collect()
            }
            JobResult::Failed(status) => item
                .recipients
                .iter()
                .map(|&i| (i, DeliveryResult::TryLater(status.clone()), hop.clone()))
                .collect(),
        };
        {
            let ok = outcomes.iter().any(|(_, r, _)| {
                matches!(
                    r,
                    DeliveryResult::Delivered(_)
                        | DeliveryResult::Relayed(_)
                        | DeliveryResult::RelayedWithoutDsn(_)
                        | DeliveryResult::Expanded
                        | DeliveryResult::Failed(_)
                )
            });
            // Every recipient deferred: the peer pushed back (4xx, timeout, no connection).
            let congested = !ok
                && outcomes
                    .iter()
                    .all(|(_, r, _)| matches!(r, DeliveryResult::TryLater(_)));
            self.tune(peer_idx, ok, congested, now);
        }
        let deferred = self.apply(queue_id, outcomes, attempt, now, &mut effects);
        // Recipients to retry go back as one item, due at their next attempt.
        if !deferred.is_empty() && self.messages.contains_key(&queue_id) {
            let due = deferred.iter().map(|&(_, t)| t).min().unwrap_or(now);
            let id = ItemId(self.next_item);
            self.next_item += 1;
            self.items.insert(
                id,
                Item {
                    queue_id,
                    peer: peer_idx,
                    recipients: deferred.into_iter().map(|(i, _)| i).collect(),
                    seq: item.seq,
                    priority: item.priority,
                    state: ItemState::Held,
                },
            );
            let held = self.messages.get(&queue_id).is_some_and(|m| m.held);
            if let Some(m) = self.messages.get_mut(&queue_id) {
                m.items.push(id);
            }
            if held {
                self.held_items += 1;
            } else {
                self.schedule(id, due, now);
            }
        }
        self.refresh_peer(peer_idx);
        self.finish_if_done(queue_id, &mut effects);
        self.pack_if_idle(queue_id);
        effects
    }

    /// Handles everything due by `now`: items whose retry time came, peers whose back-off
    /// ended, lifetimes that ended, delay notices.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Effect> {
        let mut effects = Vec::new();
        while let Some((at, timer)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer.clone()));
            match timer {
                Timer::Item(id) => {
                    if self
                        .items
                        .get(&id)
                        .is_some_and(|item| item.state == ItemState::Waiting(at))
                    {
                        self.make_ready(id);
                    }
                }
                Timer::Peer(p) => {
                    if self.peers[p.0].dead_until.is_some_and(|t| t <= now) {
                        self.peers[p.0].dead_until = None;
                        self.refresh_peer(p);
                    }
                }
                Timer::Lifetime(q) => {
                    self.expire(q, now, &mut effects);
                    self.pack_if_idle(q);
                }
                Timer::DelayWarning(q) => {
                    self.delay_warning(q, now, &mut effects);
                    self.pack_if_idle(q);
                }
                Timer::ChannelResume(c) => {
                    if let Some(ch) = self.channels.get_mut(&*c)
                        && ch.paused_until.is_some_and(|t| t <= now)
                    {
                        ch.paused_until = None;
                    }
                }
            }
        }
        effects
    }

    /// When [`Qmgr::tick`] next has something to do.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.timers.first().map(|&(t, _)| t)
    }

    /// Puts a message on hold: nothing more is started for it until [`Qmgr::release`]. Jobs
    /// already running finish. Returns whether the message is known.
    pub fn hold(&mut self, queue_id: QueueId) -> bool {
        let Some(m) = self.messages.get_mut(&queue_id) else {
            return false;
        };
        m.held = true;
        let items = m.items.clone();
        for id in items {
            let state = self.items.get(&id).map(|i| i.state);
            match state {
                Some(ItemState::Ready) => {
                    self.unready(id);
                }
                Some(ItemState::Waiting(at)) => {
                    self.timers.remove(&(at, Timer::Item(id)));
                }
                _ => continue,
            }
            if let Some(item) = self.items.get_mut(&id) {
                item.state = ItemState::Held;
                self.held_items += 1;
            }
        }
        self.pack_if_idle(queue_id);
        true
    }

    /// Releases a held message: its recipients are ready at once.
    pub fn release(&mut self, queue_id: QueueId, now: Timestamp) -> bool {
        let Some(m) = self.messages.get_mut(&queue_id) else {
            return false;
        };
        m.held = false;
        let items = m.items.clone();
        for id in items {
            if self
                .items
                .get(&id)
                .is_some_and(|i| i.state == ItemState::Held)
            {
                self.held_items = self.held_items.saturating_sub(1);
                self.schedule(id, now, now);
            }
        }
        true
    }

    /// Makes every waiting recipient due now — of one channel and next hop, or of all — and
    /// forgets dead-peer back-offs. Returns how many groups were made ready.
    pub fn retry_now(&mut self, target: Option<(&ChannelId, &NextHop)>, now: Timestamp) -> usize {
        let peers: Vec<PeerIdx> = match target {
            Some((c, h)) => self
                .peer_index
                .get(&(c.clone(), h.clone()))
                .copied()
                .into_iter()
                .collect(),
            None => (0..self.peers.len()).map(PeerIdx).collect(),
        };
        for &p in &peers {
            self.peers[p.0].dead_until = None;
            self.peers[p.0].failures = 0;
        }
        let waiting: Vec<(Timestamp, ItemId)> = self
            .items
            .iter()
            .filter(|(_, i)| peers.contains(&i.peer))
            .filter_map(|(&id, i)| match i.state {
                ItemState::Waiting(at) => Some((at, id)),
                _ => None,
            })
            .collect();
        for &(at, id) in &waiting {
            self.timers.remove(&(at, Timer::Item(id)));
            self.make_ready(id);
        }
        for p in peers {
            self.refresh_peer(p);
        }
        let _ = now;
        waiting.len()
    }

    /// Forgets a message (deleted by an operator). Running jobs finish; their results are
    /// ignored. The driver removes it from the queue.
    pub fn forget(&mut self, queue_id: QueueId) -> bool {
        let Some(m) = self.messages.remove(&queue_id) else {
            return false;
        };
        for id in m.items {
            let state = self.items.get(&id).map(|i| i.state);
            match state {
                Some(ItemState::Ready) => {
                    self.unready(id);
                    self.items.remove(&id);
                }
                Some(ItemState::Waiting(at)) => {
                    self.timers.remove(&(at, Timer::Item(id)));
                    self.items.remove(&id);
                }
                Some(ItemState::Held) => {
                    self.held_items = self.held_items.saturating_sub(1);
                    self.items.remove(&id);
                }
                // Left for `complete`, which finds no message and drops it.
                Some(ItemState::InFlight(_)) | None => {}
            }
        }
        true
    }

    /// Withdraws a message still held for its deferred delivery time (X.400
    /// cancel-deferred-delivery): when it was submitted by `owner` (its envelope's
    /// `authenticated_as`), its `deferred_until` is after `now` and none of its recipients is
    /// ready or in flight, it is forgotten and `Remove` returned (no notice: the originator
    /// asked for it). Called under the same lock as [`Qmgr::tick`] and
    /// [`Qmgr::next_dispatch`], the decision never races with the release of the message.
    pub fn withdraw_deferred(
        &mut self,
        queue_id: QueueId,
        owner: &str,
        now: Timestamp,
    ) -> Result<Vec<Effect>, WithdrawError> {
        let m = self
            .messages
            .get(&queue_id)
            .ok_or(WithdrawError::NotQueued)?;
        let envelope = m.envelope.get();
        if envelope.authenticated_as.as_deref() != Some(owner) {
            return Err(WithdrawError::NotOwner);
        }
        match envelope.deferred_until {
            None => return Err(WithdrawError::NotDeferred),
            Some(t) if t <= now => return Err(WithdrawError::Released),
            Some(_) => {}
        }
        let started = m.items.iter().any(|id| {
            self.items
                .get(id)
                .is_some_and(|i| matches!(i.state, ItemState::Ready | ItemState::InFlight(_)))
        });
        if started || m.expired {
            return Err(WithdrawError::Released);
        }
        self.forget(queue_id);
        Ok(vec![Effect::Remove { queue_id }])
    }

    /// Counters.
    pub fn stats(&self) -> QmgrStats {
        let mut s = QmgrStats {
            messages: self.messages.len(),
            in_flight: self.jobs.len(),
            held: self.held_items,
            ..QmgrStats::default()
        };
        for i in self.items.values() {
            match i.state {
                ItemState::Waiting(_) => s.waiting += 1,
                ItemState::Ready => s.ready += 1,
                _ => {}
            }
        }
        s
    }

    /// A summary of every message, oldest first.
    pub fn messages(&self) -> Vec<MessageSummary> {
        let mut v: Vec<MessageSummary> = self
            .messages
            .iter()
            .map(|(&queue_id, m)| {
                let envelope = m.envelope.get();
                MessageSummary {
                    queue_id,
                    priority: envelope.priority,
                    arrival: envelope.arrival,
                    pending: envelope
                        .recipients
                        .iter()
                        .filter(|r| !r.state.is_final())
                        .count(),
                    held: m.held,
                }
            })
            .collect();
        v.sort_by_key(|s| (s.arrival, s.queue_id));
        v
    }

    /// The queue depth for monitoring: recipients not yet final, counted by the channel of
    /// their route and their message's priority, whatever their state (waiting for a retry,
    /// ready, being delivered, on hold). One entry per (channel, priority) that has any, sorted
    /// by channel, then priority (lowest first). Recipients without a route, and those of a
    /// message already forgotten, are not counted.
    pub fn depth(&self) -> Vec<(ChannelId, Priority, usize)> {
        let mut counts: HashMap<(ChannelId, Priority), usize> = HashMap::new();
        for item in self.items.values() {
            if !self.messages.contains_key(&item.queue_id) {
                continue;
            }
            let channel = self.peers[item.peer.0].channel.clone();
            *counts.entry((channel, item.priority)).or_default() += item.recipients.len();
        }
        let mut v: Vec<(ChannelId, Priority, usize)> = counts
            .into_iter()
            .map(|((channel, priority), n)| (channel, priority, n))
            .collect();
        v.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        v
    }

    /// Calls `f` with every queued message, its envelope (decoded one at a time when packed)
    /// and whether it is on hold, in no particular order: for counting over a big queue
    /// without holding all its envelopes decoded at once.
    pub fn for_each_envelope(&self, mut f: impl FnMut(QueueId, &Envelope, bool)) {
        for (&queue_id, m) in &self.messages {
            match &m.envelope {
                HeldEnvelope::Full(e) => f(queue_id, e, m.held),
                HeldEnvelope::Packed(p) => f(queue_id, &unpack(p), m.held),
            }
        }
    }

    /// The identifiers of every queued message, in no particular order: with
    /// [`Qmgr::with_envelope`], for walking a big queue a part at a time, letting go of the
    /// QMGR between parts.
    pub fn queue_ids(&self) -> Vec<QueueId> {
        self.messages.keys().copied().collect()
    }

    /// Calls `f` with a queued message's envelope (decoded for the call when packed) and
    /// whether it is on hold; `false` when the message is no longer queued.
    pub fn with_envelope(&self, queue_id: QueueId, f: impl FnOnce(&Envelope, bool)) -> bool {
        let Some(m) = self.messages.get(&queue_id) else {
            return false;
        };
        match &m.envelope {
            HeldEnvelope::Full(e) => f(e, m.held),
            HeldEnvelope::Packed(p) => f(&unpack(p), m.held),
        }
        true
    }

    /// The envelope of a queued message, as the QMGR holds it.
    pub fn envelope(&self, queue_id: QueueId) -> Option<Arc<Envelope>> {
        self.messages.get(&queue_id).map(|m| m.envelope.get())
    }

    /// Stops (`false`) or resumes (`true`) outbound delivery on a channel: jobs running go on,
    /// no new one starts while it is disabled.
    pub fn set_channel_enabled(&mut self, channel: &ChannelId, enabled: bool) {
        self.channels.entry(channel.clone()).or_default().disabled = !enabled;
    }

    /// Starts nothing on a channel before `until` (`None`: no delay).
    pub fn set_channel_delay(&mut self, channel: &ChannelId, until: Option<Timestamp>) {
        let ch = self.channels.entry(channel.clone()).or_default();
        ch.paused_until = until;
        if let Some(t) = until {
            self.timers
                .insert((t, Timer::ChannelResume(Box::new(channel.clone()))));
        }
    }

    /// Starts only messages of at least `min` priority on a channel (`None`: all).
    pub fn set_channel_min_priority(&mut self, channel: &ChannelId, min: Option<Priority>) {
        self.channels
            .entry(channel.clone())
            .or_default()
            .min_priority = min;
    }

    /// The operator settings of a channel: (enabled, delayed until, minimum priority).
    pub fn channel_controls(
        &self,
        channel: &ChannelId,
    ) -> (bool, Option<Timestamp>, Option<Priority>) {
        self.channels.get(channel).map_or((true, None, None), |c| {
            (!c.disabled, c.paused_until, c.min_priority)
        })
    }

    /// Fails every waiting recipient routed through `channel` (an operator's "time out all its
    /// messages"): as if their lifetime had ended, with `status`. Recipients in flight finish
    /// their attempt. Returns the effects to carry out.
    pub fn fail_channel(
        &mut self,
        channel: &ChannelId,
        status: Status,
        now: Timestamp,
    ) -> Vec<Effect> {
        let items: Vec<ItemId> = self
            .items
            .iter()
            .filter(|(_, i)| {
                !matches!(i.state, ItemState::InFlight(_))
                    && &self.peers[i.peer.0].channel == channel
            })
            .map(|(&id, _)| id)
            .collect();
        let mut by_message: HashMap<QueueId, Vec<(usize, DeliveryResult, Option<NextHop>)>> =
            HashMap::new();
        for id in items {
            let Some((item, hop)) = self.detach(id) else {
                continue;
            };
            let list = by_message.entry(item.queue_id).or_default();
            for i in item.recipients {
                list.push((i, DeliveryResult::Failed(status.clone()), Some(hop.clone())));
            }
        }
        let mut effects = Vec::new();
        let mut ids: Vec<QueueId> = by_message.keys().copied().collect();
        ids.sort();
        for q in ids {
            let outcomes = by_message.remove(&q).unwrap_or_default();
            self.apply(q, outcomes, 0, now, &mut effects);
            self.finish_if_done(q, &mut effects);
        }
        effects
    }

    /// Settles one recipient of a message by an operator's decision (a redirect makes it
    /// `Expanded`): refused (`None`) while a job of the message runs, or for an unknown message
    /// or recipient, or one already final.
    pub fn settle_recipient(
        &mut self,
        queue_id: QueueId,
        index: usize,
        result: DeliveryResult,
        now: Timestamp,
    ) -> Option<Vec<Effect>> {
        if self.in_flight(queue_id) {
            return None;
        }
        let m = self.messages.get_mut(&queue_id)?;
        if m.full().recipients.get(index)?.state.is_final() {
            return None;
        }
        let item_id = m.items.iter().copied().find(|id| {
            self.items
                .get(id)
                .is_some_and(|i| i.recipients.contains(&index))
        })?;
        let item = self.items.get_mut(&item_id)?;
        item.recipients.retain(|&i| i != index);
        let hop = Some(self.peers[item.peer.0].hop.clone());
        if item.recipients.is_empty() {
            self.detach(item_id);
        }
        let mut effects = Vec::new();
        self.apply(queue_id, vec![(index, result, hop)], 0, now, &mut effects);
        self.finish_if_done(queue_id, &mut effects);
        Some(effects)
    }

    /// Every (channel, next hop) the QMGR has queued for, with its jobs running and whether it
    /// is resting after failures.
    pub fn peers(&self) -> Vec<(ChannelId, NextHop, usize, bool)> {
        self.peers
            .iter()
            .map(|p| {
                (
                    p.channel.clone(),
                    p.hop.clone(),
                    p.active,
                    p.dead_until.is_some(),
                )
            })
            .collect()
    }

    /// Whether a message is on hold.
    pub fn is_held(&self, queue_id: QueueId) -> Option<bool> {
        self.messages.get(&queue_id).map(|m| m.held)
    }

    /// Whether a job of this message is running now.
    pub fn in_flight(&self, queue_id: QueueId) -> bool {
        self.messages.get(&queue_id).is_some_and(|m| {
            m.items.iter().any(|i| {
                self.items
                    .get(i)
                    .is_some_and(|it| matches!(it.state, ItemState::InFlight(_)))
            })
        })
    }

    /// Makes every waiting recipient of one message due now. Returns whether it is known.
    pub fn retry_message(&mut self, queue_id: QueueId, now: Timestamp) -> bool {
        let Some(m) = self.messages.get(&queue_id) else {
            return false;
        };
        let waiting: Vec<(Timestamp, ItemId)> = m
            .items
            .iter()
            .filter_map(|id| match self.items.get(id).map(|i| i.state) {
                Some(ItemState::Waiting(at)) => Some((at, *id)),
                _ => None,
            })
            .collect();
        for (at, id) in waiting {
            self.timers.remove(&(at, Timer::Item(id)));
            self.make_ready(id);
        }
        let _ = now;
        true
    }

    /// Fails every recipient of a message that is not yet final (an operator's "delete with a
    /// non-delivery report"): the recipients become `Failed` with `status`, a failure notice is
    /// asked for where NOTIFY wants one, and the message is removed. Refused (`None`) while a
    /// job of the message is running, or for an unknown message.
    pub fn fail_message(
        &mut self,
        queue_id: QueueId,
        status: Status,
        now: Timestamp,
    ) -> Option<Vec<Effect>> {
        if self.in_flight(queue_id) {
            return None;
        }
        let m = self.messages.get(&queue_id)?;
        let items = m.items.clone();
        let mut outcomes = Vec::new();
        for id in items {
            let Some((item, hop)) = self.detach(id) else {
                continue;
            };
            for i in item.recipients {
                outcomes.push((i, DeliveryResult::Failed(status.clone()), Some(hop.clone())));
            }
        }
        let mut effects = Vec::new();
        self.apply(queue_id, outcomes, 0, now, &mut effects);
        self.finish_if_done(queue_id, &mut effects);
        Some(effects)
    }

    /// Takes an item that is not in flight out of the scheduler: off its ready set, timer or
    /// hold count, out of the item table and its message's list; the peer is refreshed.
    /// Returns the item and its next hop (`None` for an unknown item or one in flight).
    fn detach(&mut self, id: ItemId) -> Option<(Item, NextHop)> {
        let state = self.items.get(&id)?.state;
        match state {
            ItemState::Ready => self.unready(id),
            ItemState::Waiting(at) => {
                self.timers.remove(&(at, Timer::Item(id)));
            }
            ItemState::Held => self.held_items = self.held_items.saturating_sub(1),
            ItemState::InFlight(_) => return None,
        }
        let item = self.items.remove(&id)?;
        if let Some(m) = self.messages.get_mut(&item.queue_id) {
            m.items.retain(|&i| i != id);
        }
        self.refresh_peer(item.peer);
        let hop = self.peers[item.peer.0].hop.clone();
        Some((item, hop))
    }

    // ---- internals ----

    fn limits(&self, channel: &ChannelId) -> ChannelLimits {
        self.config
            .channels
            .get(channel)
            .copied()
            .unwrap_or(self.config.default_limits)
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn peer(&mut self, channel: ChannelId, hop: NextHop) -> PeerIdx {
        let key = (channel, hop);
        if let Some(&p) = self.peer_index.get(&key) {
            return p;
        }
        let p = PeerIdx(self.peers.len());
        self.channels.entry(key.0.clone()).or_default();
        let tune = self.limits(&key.0).self_tuning.then(Tune::new);
        self.peers.push(Peer {
            channel: key.0.clone(),
            hop: key.1.clone(),
            by_priority: BTreeSet::new(),
            by_age: BTreeSet::new(),
            active: 0,
            dispatches: 0,
            failures: 0,
            dead_until: None,
            head: None,
            oldest: None,
            tune,
        });
        self.peer_index.insert(key, p);
        p
    }

    /// Puts an item (in state Held, i.e. nowhere) on its timer or in its ready set.
    fn add_timer(&mut self, at: Timestamp, timer: Timer) {
        match &mut self.batch {
            Some(batch) => batch.push((at, timer)),
            None => {
                self.timers.insert((at, timer));
            }
        }
    }

    fn schedule(&mut self, id: ItemId, due: Timestamp, now: Timestamp) {
        if due <= now {
            self.make_ready(id);
        } else if let Some(item) = self.items.get_mut(&id) {
            item.state = ItemState::Waiting(due);
            self.add_timer(due, Timer::Item(id));
        }
    }

    fn make_ready(&mut self, id: ItemId) {
        let Some(item) = self.items.get_mut(&id) else {
            return;
        };
        item.state = ItemState::Ready;
        let p = item.peer;
        let peer = &mut self.peers[p.0];
        peer.by_priority
            .insert((Reverse(item.priority), item.seq, id));
        peer.by_age.insert((item.seq, id));
        self.refresh_peer(p);
    }

    /// Takes a ready item out of its peer's sets (its state is left to the caller).
    fn unready(&mut self, id: ItemId) {
        let Some(item) = self.items.get(&id) else {
            return;
        };
        let p = item.peer;
        let peer = &mut self.peers[p.0];
        peer.by_priority
            .remove(&(Reverse(item.priority), item.seq, id));
        peer.by_age.remove(&(item.seq, id));
        self.refresh_peer(p);
    }

    /// Recomputes whether a peer may start a job, and its place in its channel's sets.
    fn refresh_peer(&mut self, p: PeerIdx) {
        let limits = self.limits(&self.peers[p.0].channel);
        let peer = &mut self.peers[p.0];
        let ch = self.channels.entry(peer.channel.clone()).or_default();
        if let Some((prio, seq)) = peer.head.take() {
            ch.heads.remove(&(prio, seq, p));
        }
        if let Some(seq) = peer.oldest.take() {
            ch.oldest.remove(&(seq, p));
        }
        let limit = match (&peer.tune, limits.self_tuning) {
            (Some(t), true) => t.limit.min(limits.max_per_peer),
            _ => limits.max_per_peer,
        };
        let eligible = peer.active < limit && peer.dead_until.is_none();
        if eligible {
            if let Some(&(prio, seq, _)) = peer.by_priority.first() {
                ch.heads.insert((prio, seq, p));
                peer.head = Some((prio, seq));
            }
            if let Some(&(seq, _)) = peer.by_age.first() {
                ch.oldest.insert((seq, p));
                peer.oldest = Some(seq);
            }
        }
    }

    /// Self-tuning: after each job, measure the peer's throughput over a window and move its
    /// concurrency limit: up while throughput grows, back when it does not, halved when the
    /// peer pushes back.
    fn tune(&mut self, p: PeerIdx, ok: bool, congested: bool, now: Timestamp) {
        let ceiling = self.limits(&self.peers[p.0].channel).max_per_peer.max(1);
        let Some(t) = self.peers[p.0].tune.as_mut() else {
            return;
        };
        if t.pinned {
            return;
        }
        if congested {
            let halved = (t.limit / 2).max(1);
            if halved < t.limit || t.reason != "backed off: the peer deferred or refused" {
                t.limit = halved;
                t.reason = "backed off: the peer deferred or refused";
            }
            t.window_start = Some(now);
            t.done = 0;
            t.last_rate = None;
            t.probing = false;
            return;
        }
        let start = *t.window_start.get_or_insert(now);
        if ok {
            t.done += 1;
        }
        let elapsed = now.since(start).as_secs_f64();
        let full = t.done >= 4 * t.limit as u64 && elapsed >= 0.1;
        if !(full || (elapsed >= 5.0 && t.done > 0)) {
            return;
        }
        let rate = t.done as f64 / elapsed.max(0.001);
        match t.last_rate {
            None => {
                t.limit = (t.limit + 1).min(ceiling);
                t.probing = true;
                t.reason = "probing: first measurement";
            }
            Some(prev) if rate > prev * 1.5 => {
                // Throughput grows with concurrency: double it (a slow start, as TCP's).
                t.limit = (t.limit * 2).min(ceiling);
                t.probing = true;
                t.steady = 0;
                t.reason = "throughput grew with concurrency: doubled";
            }
            Some(prev) if rate > prev * 1.05 => {
                t.limit = (t.limit + 1).min(ceiling);
                t.probing = true;
                t.steady = 0;
                t.reason = "throughput grew: one more connection";
            }
            Some(_) if t.probing => {
                // The last step up bought nothing: take it back.
                t.limit = t.limit.saturating_sub(1).max(1);
                t.probing = false;
                t.reason = "no gain from the last step up: back one";
            }
            Some(prev) if rate < prev * 0.8 => {
                t.limit = t.limit.saturating_sub(1).max(1);
                t.reason = "throughput fell: one connection less";
            }
            Some(_) => {
                t.steady += 1;
                t.reason = "steady";
                // Now and then, look for more.
                if t.steady % 8 == 0 && t.limit < ceiling {
                    t.limit += 1;
                    t.probing = true;
                    t.reason = "probing for more";
                }
            }
        }
        t.last_rate = Some(rate);
        t.window_start = Some(now);
        t.done = 0;
        self.refresh_peer(p);
    }

    /// Self-tuning's state of every tuned peer.
    pub fn tuning(&self) -> Vec<PeerTuning> {
        self.peers
            .iter()
            .filter_map(|p| {
                let t = p.tune.as_ref()?;
                Some(PeerTuning {
                    channel: p.channel.clone(),
                    next_hop: p.hop.clone(),
                    limit: t.limit,
                    pinned: t.pinned,
                    rate: t.last_rate,
                    reason: if t.pinned {
                        "pinned by an operator"
                    } else {
                        t.reason
                    },
                })
            })
            .collect()
    }

    /// Pins a tuned peer's concurrency (`Some`), or lets self-tuning decide again (`None`).
    /// Returns whether the peer is known and tuned.
    pub fn pin_peer(&mut self, channel: &ChannelId, hop: &NextHop, limit: Option<usize>) -> bool {
        let Some(&p) = self.peer_index.get(&(channel.clone(), hop.clone())) else {
            return false;
        };
        let Some(t) = self.peers[p.0].tune.as_mut() else {
            return false;
        };
        match limit {
            Some(l) => {
                t.limit = l.max(1);
                t.pinned = true;
            }
            None => {
                t.pinned = false;
                t.last_rate = None;
                t.window_start = None;
                t.done = 0;
            }
        }
        self.refresh_peer(p);
        true
    }

    fn peer_failed(&mut self, p: PeerIdx, now: Timestamp) {
        // Jobs that ran in parallel and failed together are one failure of the peer: while it
        // is already marked dead, further failures neither count nor extend the back-off.
        if self.peers[p.0].dead_until.is_some_and(|t| t > now) {
            return;
        }
        let backoff = {
            let peer = &mut self.peers[p.0];
            peer.failures = peer.failures.saturating_add(1);
            let exp = peer.failures.saturating_sub(1).min(16);
            let d = self
                .config
                .dead_peer_backoff
                .saturating_mul(1u32 << exp)
                .min(self.config.retry.max.max(self.config.dead_peer_backoff));
            self.jitter(d)
        };
        let until = now.saturating_add(backoff);
        self.peers[p.0].dead_until = Some(until);
        self.timers.insert((until, Timer::Peer(p)));
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        let j = self.config.retry.jitter.clamp(0.0, 1.0);
        if j == 0.0 {
            return d;
        }
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64;
        let factor = 1.0 + j * (2.0 * r - 1.0);
        Duration::from_secs_f64((d.as_secs_f64() * factor).max(0.0))
    }

    /// Applies outcomes to a message's envelope; returns the recipients to retry with their
    /// next attempt times. Pushes Record and Notify effects.
    fn apply(
        &mut self,
        queue_id: QueueId,
        outcomes: Vec<(usize, DeliveryResult, Option<NextHop>)>,
        attempt: u32,
        now: Timestamp,
        effects: &mut Vec<Effect>,
    ) -> Vec<(usize, Timestamp)> {
        let mut retry = Vec::new();
        let Some(m) = self.messages.get_mut(&queue_id) else {
            return retry;
        };
        let envelope = m.full().clone();
        let expires = m.expires;
        let expired = m.expired || now >= expires;
        let mut updates = Vec::new();
        let mut notices: Vec<(NoticeKind, NoticeRecipient)> = Vec::new();
        let mut delays = Vec::new();
        for (index, result, remote) in outcomes {
            let Some(r) = envelope.recipients.get(index) else {
                continue;
            };
            let state = match result {
                DeliveryResult::Delivered(status) => {
                    if wanted(r, DsnAction::Delivered) {
                        notices.push((
                            NoticeKind::Success,
                            NoticeRecipient {
                                index,
                                action: DsnAction::Delivered,
                                status: status.clone(),
                                remote: remote.clone(),
                            },
                        ));
                    }
                    RecipientState::Delivered { at: now, status }
                }
                DeliveryResult::Relayed(status) => RecipientState::Relayed { at: now, status },
                DeliveryResult::RelayedWithoutDsn(status) => {
                    if wanted(r, DsnAction::Relayed) {
                        notices.push((
                            NoticeKind::Success,
                            NoticeRecipient {
                                index,
                                action: DsnAction::Relayed,
                                status: status.clone(),
                                remote: remote.clone(),
                            },
                        ));
                    }
                    RecipientState::Relayed { at: now, status }
                }
                DeliveryResult::Expanded => {
                    if wanted(r, DsnAction::Expanded) {
                        notices.push((
                            NoticeKind::Success,
                            NoticeRecipient {
                                index,
                                action: DsnAction::Expanded,
                                status: Status::new(250, (2, 0, 0), "expanded"),
                                remote: None,
                            },
                        ));
                    }
                    RecipientState::Expanded { at: now }
                }
                DeliveryResult::Failed(status) => {
                    if wanted(r, DsnAction::Failed) {
                        notices.push((
                            NoticeKind::Failure,
                            NoticeRecipient {
                                index,
                                action: DsnAction::Failed,
                                status: status.clone(),
                                remote: remote.clone(),
                            },
                        ));
                    }
                    RecipientState::Failed { at: now, status }
                }
                DeliveryResult::TryLater(last) => {
                    let attempts = match &r.state {
                        RecipientState::Deferred { attempts, .. } => *attempts,
                        _ => 0,
                    }
                    .max(attempt.saturating_sub(1))
                    .saturating_add(1);
                    if expired {
                        let status = Status::new(
                            554,
                            (5, 4, 7),
                            format!(
                                "delivery time expired; last error: {} {} {}",
                                last.code, last.enhanced, last.text
                            ),
                        );
                        if wanted(r, DsnAction::Failed) {
                            notices.push((
                                NoticeKind::Failure,
                                NoticeRecipient {
                                    index,
                                    action: DsnAction::Failed,
                                    status: status.clone(),
                                    remote: remote.clone(),
                                },
                            ));
                        }
                        RecipientState::Failed { at: now, status }
                    } else {
                        delays.push((index, attempts));
                        RecipientState::Deferred {
                            attempts,
                            next_attempt: now,
                            last,
                        }
                    }
                }
            };
            updates.push(RecipientUpdate { index, state });
        }
        // Retry times (jitter needs &mut self, so after the loop over the envelope).
        for u in &mut updates {
            if let RecipientState::Deferred {
                attempts,
                next_attempt,
                ..
            } = &mut u.state
            {
                let d = self.config.retry.delay(*attempts);
                let at = now.saturating_add(self.jitter(d)).min(expires);
                *next_attempt = at;
                retry.push((u.index, at));
            }
        }
        let _ = delays;
        let Some(m) = self.messages.get_mut(&queue_id) else {
            return retry;
        };
        drop(envelope);
        let env = Arc::make_mut(m.full());
        for u in &updates {
            if let Some(r) = env.recipients.get_mut(u.index) {
                r.state = u.state.clone();
            }
        }
        if !updates.is_empty() {
            effects.push(Effect::Record { queue_id, updates });
        }
        for kind in [NoticeKind::Failure, NoticeKind::Success] {
            let recipients: Vec<NoticeRecipient> = notices
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, r)| r.clone())
                .collect();
            if recipients.is_empty() {
                continue;
            }
            if m.full().originator.is_null() {
                effects.push(Effect::NoticeSuppressed {
                    queue_id,
                    kind,
                    recipients: recipients.len(),
                });
            } else {
                effects.push(Effect::Notify {
                    queue_id,
                    envelope: m.full().clone(),
                    kind,
                    recipients,
                });
            }
        }
        retry
    }

    fn finish_if_done(&mut self, queue_id: QueueId, effects: &mut Vec<Effect>) {
        let Some(m) = self.messages.get(&queue_id) else {
            return;
        };
        if !m.items.is_empty() {
            return;
        }
        let envelope = m.envelope.get();
        if !envelope.is_done() {
            return;
        }
        let expires = m.expires;
        let warn = self
            .config
            .delay_warning
            .map(|w| envelope.arrival.saturating_add(w));
        self.messages.remove(&queue_id);
        self.timers.remove(&(expires, Timer::Lifetime(queue_id)));
        if let Some(w) = warn {
            self.timers.remove(&(w, Timer::DelayWarning(queue_id)));
        }
        effects.push(Effect::Remove { queue_id });
    }

    /// The lifetime of a message ended: every recipient not in flight fails now; those in
    /// flight fail when their job ends, unless delivered.
    fn expire(&mut self, queue_id: QueueId, now: Timestamp, effects: &mut Vec<Effect>) {
        let Some(m) = self.messages.get_mut(&queue_id) else {
            return;
        };
        m.expired = true;
        let items = m.items.clone();
        let mut outcomes = Vec::new();
        for id in items {
            // Recipients in flight fail when their job ends.
            let Some((item, hop)) = self.detach(id) else {
                continue;
            };
            let hop = Some(hop);
            let env = self.messages.get_mut(&queue_id).map(|m| m.full().clone());
            for i in item.recipients {
                let last = env
                    .as_ref()
                    .and_then(|e| e.recipients.get(i))
                    .and_then(|r| match &r.state {
                        RecipientState::Deferred { last, .. } => Some(last.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| Status::new(451, (4, 4, 7), "not attempted in time"));
                outcomes.push((i, DeliveryResult::TryLater(last), hop.clone()));
            }
        }
        self.apply(queue_id, outcomes, 0, now, effects);
        self.finish_if_done(queue_id, effects);
    }

    fn delay_warning(&mut self, queue_id: QueueId, now: Timestamp, effects: &mut Vec<Effect>) {
        let Some(m) = self.messages.get_mut(&queue_id) else {
            return;
        };
        if m.delay_warned {
            return;
        }
        m.delay_warned = true;
        let envelope = m.full().clone();
        let mut recipients = Vec::new();
        for (index, r) in envelope.recipients.iter().enumerate() {
            if let RecipientState::Deferred { last, .. } = &r.state
                && wanted(r, DsnAction::Delayed)
            {
                recipients.push(NoticeRecipient {
                    index,
                    action: DsnAction::Delayed,
                    status: last.clone(),
                    remote: r.route.as_ref().map(|route| route.next_hop.clone()),
                });
            }
        }
        let _ = now;
        if recipients.is_empty() {
            return;
        }
        if envelope.originator.is_null() {
            effects.push(Effect::NoticeSuppressed {
                queue_id,
                kind: NoticeKind::Delay,
                recipients: recipients.len(),
            });
        } else {
            effects.push(Effect::Notify {
                queue_id,
                envelope,
                kind: NoticeKind::Delay,
                recipients,
            });
        }
    }
}

/// Limits on inbound connections, shared by the inbound channels: a total and a number per
/// client address. Past either, the channel answers `421 4.7.0` and closes.
#[derive(Debug, Default)]
pub struct ConnectionGate {
    max_total: usize,
    max_per_client: usize,
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl ConnectionGate {
    /// A gate with these limits (0: no limit).
    pub fn new(max_total: usize, max_per_client: usize) -> Self {
        ConnectionGate {
            max_total,
            max_per_client,
            ..ConnectionGate::default()
        }
    }

    /// Changes the limits (connections already in are kept).
    pub fn set_limits(&mut self, max_total: usize, max_per_client: usize) {
        self.max_total = max_total;
        self.max_per_client = max_per_client;
    }

    /// Lets a connection from `client` in, or says why not (call [`ConnectionGate::leave`] when
    /// an admitted connection ends).
    pub fn admit(&mut self, client: IpAddr) -> Result<(), Status> {
        if self.max_total > 0 && self.total >= self.max_total {
            return Err(Status::new(
                421,
                (4, 7, 0),
                "too many connections, try again later",
            ));
        }
        let n = self.per_client.get(&client).copied().unwrap_or(0);
        if self.max_per_client > 0 && n >= self.max_per_client {
            return Err(Status::new(
                421,
                (4, 7, 0),
                format!("too many connections from {client}, try again later"),
            ));
        }
        self.total += 1;
        self.per_client.insert(client, n + 1);
        Ok(())
    }

    /// An admitted connection ended.
    pub fn leave(&mut self, client: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_client.get_mut(&client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(&client);
            }
        }
    }

    /// Connections in, in total.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Connections in from `client`.
    pub fn from_client(&self, client: IpAddr) -> usize {
        self.per_client.get(&client).copied().unwrap_or(0)
    }
}
