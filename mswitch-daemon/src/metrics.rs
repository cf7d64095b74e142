//! Metrics for monitoring, in the Prometheus text exposition format (version 0.0.4), served
//! over HTTP when `[metrics] address` is configured.
//!
//! Two kinds of figures:
//! - **Counters kept as the switch works**, lock-free on the hot path (an [`AtomicU64`] add):
//!   messages received and connections open per listener ([`ListenerMetrics`], a handle each
//!   listener holds), delivery outcomes per channel and status, and the histogram of delivery
//!   latency ([`Metrics::record_attempt`], called by the scheduler after every job). A label
//!   seen for the first time takes a write lock once, to add its counters.
//! - **Gauges read at scrape time** ([`Gauges`]): the QMGR's messages and its depth per channel
//!   and priority ([`mswitch_core::qmgr::Qmgr::depth`]), the queue's counters
//!   ([`mswitch_queue::QueueStats`]). The switch registers where to read them with
//!   [`Metrics::set_gauges`].
//!
//! The endpoint ([`spawn_endpoint`]) is a minimal HTTP/1.1 responder: it reads the request head
//! (at most [`MAX_REQUEST_HEAD`] octets, within [`REQUEST_TIMEOUT`]), answers `GET /metrics`
//! (and `HEAD`) with `200` and the text, any other path with `404`, any other method with
//! `405`, and closes the connection. Parsing the request ([`parse_request`]) does no I/O.
//!
//! The metric names are listed in `docs/config.md` (`[metrics]`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use mswitch_core::channel::DeliveryResult;
use mswitch_core::envelope::Priority;
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::qmgr::{Dispatch, JobResult, Qmgr};
use mswitch_queue::{DiskQueue, QueueStats};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use crate::switch::StartError;

/// `[metrics]`: where the endpoint listens. Without the section there is no endpoint (the
/// counters are still kept, for [`crate::switch::Switch::metrics`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `IP:port` to serve `GET /metrics` on (`127.0.0.1:9187`).
    pub address: SocketAddr,
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Longest request head (request line and header fields) read before answering `400`.
pub const MAX_REQUEST_HEAD: usize = 8192;

/// How long a client has to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Scrapes answered at once; a connection past this is closed without an answer.
pub const MAX_SCRAPES: usize = 16;

/// Upper bounds of the `mswitch_delivery_seconds` buckets, in milliseconds (10 ms to 1 h).
pub const DELIVERY_BUCKETS_MS: [u64; 15] = [
    10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000,
    1_800_000, 3_600_000,
];

/// The outcome of one delivery attempt for one recipient, as the `status` label (the same
/// words as the `status` field of the "delivery" log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Delivered to its final destination.
    Delivered,
    /// Handed to a peer that takes over responsibility.
    Sent,
    /// To be tried again.
    Deferred,
    /// Failed: a non-delivery notice is owed if asked for.
    Bounced,
    /// Expanded into new messages (a distribution list).
    Expanded,
}

impl DeliveryStatus {
    /// Every status, in the order they are rendered.
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Delivered,
        DeliveryStatus::Sent,
        DeliveryStatus::Deferred,
        DeliveryStatus::Bounced,
        DeliveryStatus::Expanded,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Bounced => "bounced",
            DeliveryStatus::Expanded => "expanded",
        }
    }

    /// The status of a channel's result.
    pub fn of(result: &DeliveryResult) -> DeliveryStatus {
        match result {
            DeliveryResult::Delivered(_) => DeliveryStatus::Delivered,
            DeliveryResult::Relayed(_) | DeliveryResult::RelayedWithoutDsn(_) => {
                DeliveryStatus::Sent
            }
            DeliveryResult::Expanded => DeliveryStatus::Expanded,
            DeliveryResult::TryLater(_) => DeliveryStatus::Deferred,
            DeliveryResult::Failed(_) => DeliveryStatus::Bounced,
        }
    }

    /// Whether the recipient reached its destination (or a peer that took it over): these
    /// are the outcomes whose latency `mswitch_delivery_seconds` observes.
    pub fn is_success(self) -> bool {
        matches!(self, DeliveryStatus::Delivered | DeliveryStatus::Sent)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `priority` label of a priority.
pub fn priority_label(p: Priority) -> &'static str {
    match p {
        Priority::Deferred => "deferred",
        Priority::Routine => "routine",
        Priority::Normal => "normal",
        Priority::Immediate => "immediate",
        Priority::Flash => "flash",
        Priority::Override => "override",
    }
}

/// The counters of one listener. A listener holds it, and each connection a
/// [`ConnectionGuard`] from it.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    received: AtomicU64,
    connections: AtomicU64,
    /// agentx: octets and recipients of the messages received, connections admitted.
    received_octets: AtomicU64,
    received_recipients: AtomicU64,
    accepted: AtomicU64,
}

impl ListenerMetrics {
    /// Counts a message accepted (made durable) by this listener.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection open until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.accepted.fetch_add(1, Ordering::Relaxed); // agentx
        ConnectionGuard(self.clone())
    }

    /// agentx: counts the size and the recipients of a message accepted by this listener
    /// (besides [`ListenerMetrics::received`]).
    pub fn received_volume(&self, octets: u64, recipients: u64) {
        self.received_octets.fetch_add(octets, Ordering::Relaxed);
        self.received_recipients
            .fetch_add(recipients, Ordering::Relaxed);
    }

    /// agentx: octets of the messages received so far.
    pub fn octets_received(&self) -> u64 {
        self.received_octets.load(Ordering::Relaxed)
    }

    /// agentx: recipients of the messages received so far.
    pub fn recipients_received(&self) -> u64 {
        self.received_recipients.load(Ordering::Relaxed)
    }

    /// agentx: connections admitted so far (those refused by the connection limits are not).
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Messages received so far.
    pub fn messages_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn connections_active(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

/// One open connection of a listener: counted in `mswitch_connections_active` until dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<ListenerMetrics>);

impl ConnectionGuard {
    /// The listener's counters.
    pub fn listener(&self) -> &ListenerMetrics {
        &self.0
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let _ = self
            .0
            .connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// The delivery counters of one channel, by status.
#[derive(Debug, Default)]
struct ChannelMetrics {
    deliveries: [AtomicU64; 5],
    /// agentx: jobs that reached at least one recipient, and their messages' octets.
    transmitted: AtomicU64,
    transmitted_octets: AtomicU64,
    /// agentx: jobs that could not connect to their peer.
    unreachable: AtomicU64,
    /// agentx: jobs running now.
    busy: AtomicU64,
}

/// agentx: a channel's figures for the AgentX subagent ([`Metrics::channel_figures`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelFigures {
    /// Deliveries (jobs) that reached at least one recipient (`delivered` or `sent`).
    pub transmitted_messages: u64,
    /// Octets of the messages of those deliveries.
    pub transmitted_octets: u64,
    /// Recipients `delivered` or `sent`.
    pub transmitted_recipients: u64,
    /// Deliveries that could not connect to their peer.
    pub unreachable: u64,
    /// Deliveries running now.
    pub running: u64,
}

/// agentx: a listener's figures for the AgentX subagent ([`Metrics::listener_figures`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerFigures {
    /// Messages accepted.
    pub received_messages: u64,
    /// Their octets.
    pub received_octets: u64,
    /// Their recipients.
    pub received_recipients: u64,
    /// Connections open now.
    pub connections_active: u64,
    /// Connections admitted so far.
    pub connections_accepted: u64,
}

/// agentx: one delivery job running on a channel, counted until dropped ([`Metrics::job`]).
#[derive(Debug)]
pub struct JobGuard(Option<Arc<ChannelMetrics>>);

impl Drop for JobGuard {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            let _ = c
                .busy
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
}

/// A histogram with fixed bucket bounds, in milliseconds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [u64],
    /// Observations per bucket (not cumulative); the last one is above every bound.
    counts: Vec<AtomicU64>,
    sum_ms: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ms: AtomicU64::new(0),
        }
    }

    fn observe(&self, ms: u64) {
        let i = self.bounds.partition_point(|&b| b < ms);
        if let Some(c) = self.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Cumulative counts per bound, then the total (the `+Inf` bucket and `_count`), and the
    /// sum in milliseconds.
    fn snapshot(&self) -> (Vec<u64>, u64, u64) {
        let mut running = 0u64;
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        for c in &self.counts[..self.bounds.len()] {
            running = running.saturating_add(c.load(Ordering::Relaxed));
            cumulative.push(running);
        }
        let total =
            running.saturating_add(self.counts.last().map_or(0, |c| c.load(Ordering::Relaxed)));
        (cumulative, total, self.sum_ms.load(Ordering::Relaxed))
    }
}

/// What a scrape reads from the QMGR and the queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Messages the QMGR holds.
    pub queued_messages: usize,
    /// Recipients not yet final, by channel and priority ([`Qmgr::depth`]).
    pub depth: Vec<(ChannelId, Priority, usize)>,
    /// The queue's counters.
    pub queue: Option<QueueStats>,
    /// Why the queue refuses writes after an I/O failure (until a restart), if it does.
    pub queue_poisoned: Option<String>,
}

impl Gauges {
    /// Reads the gauges of a QMGR and its queue.
    pub fn read(qmgr: &Mutex<Qmgr>, queue: &DiskQueue) -> Gauges {
        let (queued_messages, depth) = qmgr
            .lock()
            .map(|q| (q.stats().messages, q.depth()))
            .unwrap_or_default();
        Gauges {
            queued_messages,
            depth,
            queue: Some(queue.stats()),
            queue_poisoned: queue.poisoned(),
        }
    }
}

type GaugeSource = Box<dyn Fn() -> Gauges + Send + Sync>;

/// The switch's metrics. See the module documentation.
pub struct Metrics {
    listeners: RwLock<BTreeMap<String, Arc<ListenerMetrics>>>,
    channels: RwLock<BTreeMap<String, Arc<ChannelMetrics>>>,
    delivery_seconds: Histogram,
    gauges: RwLock<Option<GaugeSource>>,
    endpoint: OnceLock<SocketAddr>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("endpoint", &self.endpoint.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// No counts yet, no gauges.
    pub fn new() -> Self {
        Metrics {
            listeners: RwLock::new(BTreeMap::new()),
            channels: RwLock::new(BTreeMap::new()),
            delivery_seconds: Histogram::new(&DELIVERY_BUCKETS_MS),
            gauges: RwLock::new(None),
            endpoint: OnceLock::new(),
        }
    }

    /// The counters of the listener `name`, made on first use (the same ones for the same
    /// name, so they survive a reload).
    pub fn listener(&self, name: &str) -> Arc<ListenerMetrics> {
        if let Some(l) = self
            .listeners
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
            return l;
        }
        match self.listeners.write() {
            Ok(mut m) => m.entry(name.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    fn channel(&self, name: &str) -> Option<Arc<ChannelMetrics>> {
        if let Some(c) = self.channels.read().ok().and_then(|m| m.get(name).cloned()) {
            return Some(c);
        }
        self.channels
            .write()
            .ok()
            .map(|mut m| m.entry(name.to_owned()).or_default().clone())
    }

    /// Counts one recipient's outcome on `channel`.
    pub fn delivery(&self, channel: &ChannelId, status: DeliveryStatus) {
        if let Some(c) = self.channel(channel.as_str()) {
            c.deliveries[status.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Observes the time from a message's arrival to one recipient's delivery.
    pub fn delivery_latency(&self, latency: Duration) {
        self.delivery_seconds
            .observe(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
    }

    /// Counts the outcomes of a finished job, as the "delivery" log lines report them: one per
    /// recipient the channel gave an outcome for, or every recipient of the job `deferred` when
    /// the channel failed as a whole; the latency of each successful one from the message's
    /// arrival to `now`.
    pub fn record_attempt(&self, d: &Dispatch, result: &JobResult, now: Timestamp) {
        let Some(channel) = self.channel(d.channel.as_str()) else {
            return;
        };
        let count = |s: DeliveryStatus, n: u64| {
            channel.deliveries[s.index()].fetch_add(n, Ordering::Relaxed);
        };
        match result {
            JobResult::Outcomes(list) => {
                let mut reached = false;
                for o in list {
                    let status = DeliveryStatus::of(&o.result);
                    count(status, 1);
                    if status.is_success() {
                        reached = true;
                        self.delivery_latency(now.since(d.envelope.arrival));
                    }
                }
                // agentx: one transmission of the message.
                if reached {
                    channel.transmitted.fetch_add(1, Ordering::Relaxed);
                    channel
                        .transmitted_octets
                        .fetch_add(d.envelope.size, Ordering::Relaxed);
                }
            }
            JobResult::Unreachable(_) | JobResult::Failed(_) => {
                if matches!(result, JobResult::Unreachable(_)) {
                    channel.unreachable.fetch_add(1, Ordering::Relaxed); // agentx
                }
                count(
                    DeliveryStatus::Deferred,
                    u64::try_from(d.recipients.len()).unwrap_or(u64::MAX),
                );
            }
        }
    }

    /// agentx: counts a job running on `channel` until the guard is dropped.
    pub fn job(&self, channel: &ChannelId) -> JobGuard {
        let c = self.channel(channel.as_str());
        if let Some(c) = &c {
            c.busy.fetch_add(1, Ordering::Relaxed);
        }
        JobGuard(c)
    }

    /// agentx: every listener's figures, by name.
    pub fn listener_figures(&self) -> Vec<(String, ListenerFigures)> {
        self.listeners
            .read()
            .map(|m| {
                m.iter()
                    .map(|(name, l)| {
                        let figures = ListenerFigures {
                            received_messages: l.messages_received(),
                            received_octets: l.octets_received(),
                            received_recipients: l.recipients_received(),
                            connections_active: l.connections_active(),
                            connections_accepted: l.connections_accepted(),
                        };
                        (name.clone(), figures)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// agentx: every channel's figures, by name (a channel appears once it had a job).
    pub fn channel_figures(&self) -> Vec<(String, ChannelFigures)> {
        self.channels
            .read()
            .map(|m| {
                m.iter()
                    .map(|(name, c)| {
                        let n = |s: DeliveryStatus| c.deliveries[s.index()].load(Ordering::Relaxed);
                        let figures = ChannelFigures {
                            transmitted_messages: c.transmitted.load(Ordering::Relaxed),
                            transmitted_octets: c.transmitted_octets.load(Ordering::Relaxed),
                            transmitted_recipients: n(DeliveryStatus::Delivered)
                                .saturating_add(n(DeliveryStatus::Sent)),
                            unreachable: c.unreachable.load(Ordering::Relaxed),
                            running: c.busy.load(Ordering::Relaxed),
                        };
                        (name.clone(), figures)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Where the gauges are read at each scrape (replacing any earlier source).
    pub fn set_gauges(&self, source: impl Fn() -> Gauges + Send + Sync + 'static) {
        if let Ok(mut g) = self.gauges.write() {
            *g = Some(Box::new(source));
        }
    }

    /// The address the endpoint listens on, once it does.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.endpoint.get().copied()
    }

    /// Messages received by the listener `name` so far.
    pub fn messages_received(&self, name: &str) -> u64 {
        self.listeners
            .read()
            .ok()
            .and_then(|m| m.get(name).map(|l| l.messages_received()))
            .unwrap_or(0)
    }

    /// Recipients of `channel` that had the outcome `status` so far.
    pub fn deliveries(&self, channel: &str, status: DeliveryStatus) -> u64 {
        self.channels
            .read()
            .ok()
            .and_then(|m| {
                m.get(channel)
                    .map(|c| c.deliveries[status.index()].load(Ordering::Relaxed))
            })
            .unwrap_or(0)
    }

    /// Latencies observed so far.
    pub fn deliveries_timed(&self) -> u64 {
        self.delivery_seconds.snapshot().1
    }

    /// Everything, in the text format, with the gauges read now.
    pub fn render(&self) -> String {
        let gauges = self
            .gauges
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|source| source()))
            .unwrap_or_default();
        self.render_with(&gauges)
    }

    /// Everything, in the text format, with the gauges given.
    pub fn render_with(&self, gauges: &Gauges) -> String {
        let mut t = Text::default();
        let listeners: Vec<(String, Arc<ListenerMetrics>)> = self
            .listeners
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        t.family(
            "mswitch_messages_received_total",
            "counter",
            "Messages accepted (made durable in the queue) per listener.",
        );
        for (name, l) in &listeners {
            t.sample(
                "mswitch_messages_received_total",
                &[("listener", name)],
                l.messages_received(),
            );
        }
        t.family(
            "mswitch_connections_active",
            "gauge",
            "Inbound SMTP connections open now per listener.",
        );
        for (name, l) in &listeners {
            t.sample(
                "mswitch_connections_active",
                &[("listener", name)],
                l.connections_active(),
            );
        }
        t.family(
            "mswitch_deliveries_total",
            "counter",
            "Delivery attempt outcomes per recipient, by channel and status.",
        );
        let channels: Vec<(String, Arc<ChannelMetrics>)> = self
            .channels
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (name, c) in &channels {
            for s in DeliveryStatus::ALL {
                t.sample(
                    "mswitch_deliveries_total",
                    &[("channel", name), ("status", s.as_str())],
                    c.deliveries[s.index()].load(Ordering::Relaxed),
                );
            }
        }
        t.family(
            "mswitch_delivery_seconds",
            "histogram",
            "Time from a message's arrival to a recipient's delivery (delivered or sent).",
        );
        let (cumulative, total, sum_ms) = self.delivery_seconds.snapshot();
        for (&bound, &n) in self.delivery_seconds.bounds.iter().zip(&cumulative) {
            let le = seconds(bound);
            t.sample("mswitch_delivery_seconds_bucket", &[("le", &le)], n);
        }
        t.sample("mswitch_delivery_seconds_bucket", &[("le", "+Inf")], total);
        t.sample("mswitch_delivery_seconds_sum", &[], seconds(sum_ms));
        t.sample("mswitch_delivery_seconds_count", &[], total);

        t.family(
            "mswitch_messages_queued",
            "gauge",
            "Messages in the queue manager (not yet delivered to every recipient).",
        );
        t.sample("mswitch_messages_queued", &[], gauges.queued_messages);
        t.family(
            "mswitch_queue_recipients",
            "gauge",
            "Recipients not yet final, by the channel of their route and message priority.",
        );
        for (channel, priority, n) in &gauges.depth {
            t.sample(
                "mswitch_queue_recipients",
                &[
                    ("channel", channel.as_str()),
                    ("priority", priority_label(*priority)),
                ],
                n,
            );
        }
        if let Some(q) = &gauges.queue {
            let families: [(&str, &str, &str, u64); 6] = [
                (
                    "mswitch_queue_writes_total",
                    "counter",
                    "Batches of records written to the queue log.",
                    q.writes,
                ),
                (
                    "mswitch_queue_syncs_total",
                    "counter",
                    "fdatasyncs of the queue log (one per batch written).",
                    q.syncs,
                ),
                (
                    "mswitch_queue_compactions_total",
                    "counter",
                    "Queue segments compacted.",
                    q.compactions,
                ),
                (
                    "mswitch_queue_disk_bytes",
                    "gauge",
                    "Octets in queue segment files.",
                    q.disk_bytes,
                ),
                (
                    "mswitch_queue_live_bytes",
                    "gauge",
                    "Octets of live queue records.",
                    q.live_bytes,
                ),
                (
                    "mswitch_queue_segments",
                    "gauge",
                    "Queue segment files.",
                    u64::try_from(q.segments).unwrap_or(u64::MAX),
                ),
            ];
            for (name, kind, help, value) in families {
                t.family(name, kind, help);
                t.sample(name, &[], value);
            }
            let name = "mswitch_queue_poisoned";
            t.family(
                name,
                "gauge",
                "1 while the queue refuses writes after a write or fsync failure (until a \
                 restart), else 0.",
            );
            t.sample(name, &[], u64::from(gauges.queue_poisoned.is_some()));
        }
        t.0
    }
}

/// Milliseconds as seconds, in the shortest decimal form (`0.01`, `3600`).
fn seconds(ms: u64) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:03}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// A text-format writer.
#[derive(Default)]
struct Text(String);

impl Text {
    /// `# HELP` and `# TYPE` of a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample line.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// A label value escaped: `\` as `\\`, `"` as `\"`, a line feed as `\n`.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text escaped: `\` as `\\`, a line feed as `\n`.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

// ---- the HTTP endpoint ----

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `GET /metrics` (`head`: `HEAD`, the same answer without the body).
    Metrics {
        /// A `HEAD` request.
        head: bool,
    },
    /// Another path: `404`.
    NotFound,
    /// Another method: `405`.
    MethodNotAllowed,
    /// Not an HTTP/1.x request line, or a head too long: `400`.
    BadRequest,
}

/// Parses a request head from the octets read so far: `None` while the head is incomplete
/// (no empty line yet, and fewer than [`MAX_REQUEST_HEAD`] octets). Only the request line is
/// looked at (RFC 9112 §3); the header fields are ignored.
pub fn parse_request(buf: &[u8]) -> Option<Request> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n"));
    if end.is_none() {
        return (buf.len() >= MAX_REQUEST_HEAD).then_some(Request::BadRequest);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(line) = std::str::from_utf8(line) else {
        return Some(Request::BadRequest);
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Some(Request::BadRequest);
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") || method.is_empty() || target.is_empty() {
        return Some(Request::BadRequest);
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Some(Request::MethodNotAllowed),
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Some(if path == "/metrics" {
        Request::Metrics { head }
    } else {
        Request::NotFound
    })
}

/// The response to `request`, `body` giving the metrics text.
pub fn response(request: Request, body: impl FnOnce() -> String) -> Vec<u8> {
    let (status, content_type, text, head) = match request {
        Request::Metrics { head } => ("200 OK", CONTENT_TYPE, body(), head),
        Request::NotFound => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "Not found: the metrics are at /metrics\n".to_owned(),
            false,
        ),
        Request::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain; charset=utf-8",
            "Only GET and HEAD\n".to_owned(),
            false,
        ),
        Request::BadRequest => (
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "Bad request\n".to_owned(),
            false,
        ),
    };
    let allow = if request == Request::MethodNotAllowed {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {allow}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        text.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(text.as_bytes());
    }
    out
}

/// Binds `address` and serves `metrics` on it until `stop` turns true.
pub async fn spawn_endpoint(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<JoinHandle<()>, StartError> {
    let bind_error = |source| StartError::Bind {
        name: "metrics".into(),
        address: address.to_string(),
        source,
    };
    let socket = tokio::net::TcpListener::bind(address)
        .await
        .map_err(bind_error)?;
    let local = socket.local_addr().map_err(bind_error)?;
    let _ = metrics.endpoint.set(local);
    tracing::info!(address = %local, "metrics endpoint listening (GET /metrics)");
    Ok(tokio::spawn(async move {
        tokio::select! {
            () = serve(socket, metrics) => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    }))
}

/// Accepts scrapes on `socket` forever.
async fn serve(socket: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES));
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(client = %peer, "metrics endpoint: too many scrapes at once");
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &metrics).await {
                tracing::debug!(client = %peer, error = %e, "metrics endpoint: scrape failed");
            }
            drop(permit);
        });
    }
}

/// Reads one request, writes the response, closes.
async fn answer(mut stream: tokio::net::TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let request = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(r) = parse_request(&buf) {
                return Ok(r);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "closed before the end of the request head",
                ));
            }
            let room = MAX_REQUEST_HEAD.saturating_sub(buf.len()).min(n);
            buf.extend_from_slice(&chunk[..room]);
        }
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request in time"))??;
    stream
        .write_all(&response(request, || metrics.render()))
        .await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mswitch_core::envelope::{Envelope, ReversePath};
    use mswitch_core::id::QueueId;
    use mswitch_core::qmgr::JobId;
    use mswitch_core::status::Status;

    use super::*;

    fn dispatch(channel: &str, arrival: Timestamp, recipients: usize) -> Dispatch {
        Dispatch {
            job: JobId(1),
            queue_id: QueueId(1),
            envelope: Arc::new(Envelope::new(ReversePath::Null, arrival)),
            channel: ChannelId::new(channel),
            next_hop: mswitch_core::envelope::NextHop::Local,
            recipients: (0..recipients).collect(),
            attempt: 1,
        }
    }

    fn outcome(index: usize, result: DeliveryResult) -> mswitch_core::channel::RecipientOutcome {
        mswitch_core::channel::RecipientOutcome { index, result }
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_help("a\\b\n\"q\""), "a\\\\b\\n\"q\"");
        let m = Metrics::new();
        m.listener("we\"ird\\\nname").received();
        let text = m.render_with(&Gauges::default());
        assert!(
            text.contains("mswitch_messages_received_total{listener=\"we\\\"ird\\\\\\nname\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn seconds_are_written_in_their_shortest_form() {
        assert_eq!(seconds(10), "0.01");
        assert_eq!(seconds(250), "0.25");
        assert_eq!(seconds(1_000), "1");
        assert_eq!(seconds(3_600_000), "3600");
        assert_eq!(seconds(1_234_567), "1234.567");
    }

    #[test]
    fn outcomes_are_counted_per_channel_and_status_and_successes_timed() {
        let m = Metrics::new();
        let t0 = Timestamp::from_secs(1_000);
        let ok = Status::new(250, (2, 0, 0), "ok");
        let d = dispatch("local", t0, 4);
        let result = JobResult::Outcomes(vec![
            outcome(0, DeliveryResult::Delivered(ok.clone())),
            outcome(1, DeliveryResult::Relayed(ok.clone())),
            outcome(
                2,
                DeliveryResult::TryLater(Status::new(451, (4, 0, 0), "later")),
            ),
            outcome(3, DeliveryResult::Failed(Status::new(550, (5, 1, 1), "no"))),
        ]);
        m.record_attempt(&d, &result, Timestamp(t0.0 + 70));
        let d = dispatch("out", t0, 3);
        m.record_attempt(
            &d,
            &JobResult::Unreachable(Status::new(451, (4, 4, 1), "refused")),
            t0,
        );
        use DeliveryStatus::*;
        assert_eq!(
            [Delivered, Sent, Deferred, Bounced, Expanded].map(|s| m.deliveries("local", s)),
            [1, 1, 1, 1, 0]
        );
        assert_eq!(m.deliveries("out", Deferred), 3);
        assert_eq!(m.deliveries_timed(), 2);
        let text = m.render_with(&Gauges::default());
        for line in [
            "mswitch_deliveries_total{channel=\"local\",status=\"delivered\"} 1",
            "mswitch_deliveries_total{channel=\"out\",status=\"deferred\"} 3",
            "mswitch_deliveries_total{channel=\"out\",status=\"sent\"} 0",
            // 70 ms: above 0.05, within 0.1.
            "mswitch_delivery_seconds_bucket{le=\"0.05\"} 0",
            "mswitch_delivery_seconds_bucket{le=\"0.1\"} 2",
            "mswitch_delivery_seconds_bucket{le=\"3600\"} 2",
            "mswitch_delivery_seconds_bucket{le=\"+Inf\"} 2",
            "mswitch_delivery_seconds_sum 0.14",
            "mswitch_delivery_seconds_count 2",
            "# TYPE mswitch_delivery_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn the_histogram_puts_a_value_on_a_bound_in_that_bucket_and_overflow_in_inf() {
        let h = Histogram::new(&DELIVERY_BUCKETS_MS);
        h.observe(10);
        h.observe(11);
        h.observe(4_000_000);
        let (cumulative, total, sum) = h.snapshot();
        assert_eq!(cumulative[0], 1, "le=0.01 includes 10 ms");
        assert_eq!(cumulative[1], 2);
        assert_eq!(cumulative.last(), Some(&2));
        assert_eq!(total, 3);
        assert_eq!(sum, 4_000_021);
    }

    #[test]
    fn gauges_and_connections_are_rendered() {
        let m = Metrics::new();
        let l = m.listener("mx");
        let a = l.connection();
        let b = l.connection();
        drop(a);
        let gauges = Gauges {
            queued_messages: 3,
            depth: vec![
                (ChannelId::new("out"), Priority::Normal, 4),
                (ChannelId::new("out"), Priority::Flash, 1),
            ],
            queue: Some(QueueStats {
                messages: 3,
                live_bytes: 100,
                disk_bytes: 4096,
                segments: 1,
                compactions: 0,
                syncs: 7,
                writes: 7,
            }),
            queue_poisoned: Some("fdatasync failed".into()),
        };
        let text = m.render_with(&gauges);
        for line in [
            "mswitch_connections_active{listener=\"mx\"} 1",
            "mswitch_messages_received_total{listener=\"mx\"} 0",
            "mswitch_messages_queued 3",
            "mswitch_queue_recipients{channel=\"out\",priority=\"normal\"} 4",
            "mswitch_queue_recipients{channel=\"out\",priority=\"flash\"} 1",
            "mswitch_queue_syncs_total 7",
            "mswitch_queue_writes_total 7",
            "mswitch_queue_disk_bytes 4096",
            "mswitch_queue_poisoned 1",
            "# TYPE mswitch_queue_syncs_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        drop(b);
        assert_eq!(l.connections_active(), 0);
        // Every family has its HELP and TYPE once, before its samples.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                assert!(typed.insert(name.to_owned()), "{name} typed twice");
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        name.strip_suffix(s)
                            .filter(|f| *f == "mswitch_delivery_seconds")
                    })
                    .unwrap_or(name);
                assert!(typed.contains(family), "{name} before its TYPE");
            }
        }
    }

    #[test]
    fn request_lines_are_routed() {
        assert_eq!(parse_request(b"GET /metrics HTTP/1.1\r\nHost: x"), None);
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
            Some(Request::Metrics { head: false })
        );
        assert_eq!(
            parse_request(b"HEAD /metrics?x=1 HTTP/1.0\n\n"),
            Some(Request::Metrics { head: true })
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\r\n"),
            Some(Request::NotFound)
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Some(Request::MethodNotAllowed)
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET /metrics HTTP/2\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"\xff /metrics HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(parse_request(bad), Some(Request::BadRequest), "{bad:?}");
        }
        let long = vec![b'a'; MAX_REQUEST_HEAD];
        assert_eq!(parse_request(&long), Some(Request::BadRequest));
    }

    #[test]
    fn responses_carry_the_format_version_and_close() {
        let ok = String::from_utf8(response(Request::Metrics { head: false }, || {
            "x 1\n".into()
        }))
        .expect("text");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(ok.contains("\r\nContent-Length: 4\r\n"));
        assert!(ok.contains("\r\nConnection: close\r\n"));
        assert!(ok.ends_with("\r\n\r\nx 1\n"));
        let head = response(Request::Metrics { head: true }, || "x 1\n".into());
        assert!(head.ends_with(
            b"Content-Length: 4\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        ));
        let nf = String::from_utf8(response(Request::NotFound, String::new)).expect("text");
        assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"), "{nf}");
        let na = String::from_utf8(response(Request::MethodNotAllowed, String::new)).expect("text");
        assert!(na.contains("\r\nAllow: GET, HEAD\r\n"), "{na}");
    }

    #[tokio::test]
    async fn the_endpoint_answers_scrapes_and_stops() {
        let m = Arc::new(Metrics::new());
        m.listener("mx").received();
        m.set_gauges(|| Gauges {
            queued_messages: 2,
            ..Gauges::default()
        });
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = spawn_endpoint("127.0.0.1:0".parse().expect("address"), m.clone(), rx)
            .await
            .expect("bind");
        let address = m.endpoint().expect("bound");
        let fetch = |request: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(address)
                .await
                .expect("connect");
            s.write_all(request.as_bytes()).await.expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read to the close");
            out
        };
        let got = fetch("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains("\nmswitch_messages_received_total{listener=\"mx\"} 1\n"));
        assert!(got.contains("\nmswitch_messages_queued 2\n"));
        let got = fetch("GET /other HTTP/1.1\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 404 "), "{got}");
        tx.send(true).expect("stop");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stopped in time")
            .expect("no panic");
    }

    #[test]
    fn the_metrics_section_is_optional_and_checked() {
        let base = "[server]\nhostname = \"switch.test\"\n[queue]\npath = \"queue\"\n";
        let dir = Path::new("/tmp");
        let none = crate::config::Config::parse(base, "t", dir).expect("valid");
        assert_eq!(none.metrics, None);
        let with = crate::config::Config::parse(
            &format!("{base}[metrics]\naddress = \"127.0.0.1:9187\"\n"),
            "t",
            dir,
        )
        .expect("valid");
        assert_eq!(
            with.metrics.map(|m| m.address),
            Some("127.0.0.1:9187".parse().expect("address"))
        );
        for bad in [
            "address = \"localhost\"",
            "address = \"127.0.0.1:9187\"\nport = 1",
            "",
        ] {
            let r = crate::config::Config::parse(&format!("{base}[metrics]\n{bad}\n"), "t", dir);
            assert!(r.is_err(), "{bad:?} accepted");
        }
    }
}
