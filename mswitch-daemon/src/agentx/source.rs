//! Where the served numbers come from: the switch's counters ([`Metrics`]) and what the QMGR
//! holds now ([`QueueFigures`]), assembled into a [`Snapshot`] at each request.
//!
//! Groups: one per listener (in configuration order), then one per channel (in configuration
//! order), then any other channel the counters or the queue name (the `lists` channel, a
//! channel added by a reload), in the order first seen. An index once given stays with its
//! name until the switch restarts, as RFC 2789 asks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mswitch_core::id::Timestamp;
use mswitch_core::qmgr::Qmgr;

use super::mib::{
    self, Application, Group, HIERARCHY_RECEPTION, HIERARCHY_TRANSMISSION, MtaFigures, Snapshot,
};
use super::pdu::Oid;
use super::session::{Registration, SessionConfig};
use crate::config::{ChannelType, Config, ListenerService};
use crate::metrics::Metrics;

/// What the queue holds now, in total and by the channel of each pending recipient's route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFigures {
    /// Messages the QMGR holds.
    pub messages: u64,
    /// Their octets.
    pub octets: u64,
    /// Their recipients not yet final.
    pub recipients: u64,
    /// By channel.
    pub channels: BTreeMap<String, ChannelQueue>,
}

/// What the queue holds for one channel: the messages with at least one pending recipient
/// routed to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelQueue {
    /// Messages.
    pub messages: u64,
    /// Their octets.
    pub octets: u64,
    /// The pending recipients routed to the channel.
    pub recipients: u64,
    /// The arrival of the oldest of the messages.
    pub oldest: Option<Timestamp>,
}

impl QueueFigures {
    /// Reads the QMGR: one pass over its messages, a batch at a time under its lock.
    pub fn read(qmgr: &Mutex<Qmgr>) -> QueueFigures {
        let mut f = QueueFigures::default();
        crate::switch::each_queued(qmgr, |_, envelope, _| {
            f.messages += 1;
            f.octets = f.octets.saturating_add(envelope.size);
            f.recipients += envelope
                .recipients
                .iter()
                .filter(|r| !r.state.is_final())
                .count() as u64;
            let mut counted: Vec<&str> = Vec::new();
            for r in envelope.recipients.iter().filter(|r| !r.state.is_final()) {
                let Some(route) = &r.route else {
                    continue;
                };
                let name = route.channel.as_str();
                let c = f.channels.entry(name.to_owned()).or_default();
                c.recipients += 1;
                if !counted.contains(&name) {
                    counted.push(name);
                    c.messages += 1;
                    c.octets = c.octets.saturating_add(envelope.size);
                    c.oldest = Some(
                        c.oldest
                            .map_or(envelope.arrival, |o| o.min(envelope.arrival)),
                    );
                }
            }
        });
        f
    }
}

#[derive(Debug, Clone)]
struct ListenerInfo {
    name: String,
    description: String,
    port: u16,
}

#[derive(Debug, Clone)]
struct ChannelInfo {
    name: String,
    description: String,
    /// SMTP or LMTP: its jobs use connections (outbound associations).
    network: bool,
    port: Option<u16>,
}

/// See the module documentation.
pub struct Source {
    hostname: String,
    started: Instant,
    metrics: Arc<Metrics>,
    queue: Box<dyn Fn() -> QueueFigures + Send + Sync>,
    listeners: Vec<ListenerInfo>,
    channels: Vec<ChannelInfo>,
    /// Group names; the index of a group is its position plus one.
    groups: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("hostname", &self.hostname)
            .field("listeners", &self.listeners)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

/// IANA's port of SMTP (RFC 5321).
const SMTP_PORT: u16 = 25;
/// IANA's port of message submission (RFC 6409).
const SUBMISSION_PORT: u16 = 587;
/// IANA's port of LMTP (RFC 2033).
const LMTP_PORT: u16 = 24;

impl Source {
    /// The switch's listeners (bound to `addresses`, in configuration order) and channels, its
    /// counters, and where to read the queue; `started` is when the switch started.
    pub fn new(
        config: &Config,
        addresses: &[SocketAddr],
        metrics: Arc<Metrics>,
        queue: impl Fn() -> QueueFigures + Send + Sync + 'static,
        started: Instant,
    ) -> Source {
        let listeners: Vec<ListenerInfo> = config
            .listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let address = addresses.get(i).copied().unwrap_or(l.address);
                let (service, port) = match l.service {
                    ListenerService::Relay => ("relay", SMTP_PORT),
                    ListenerService::Submission => ("submission", SUBMISSION_PORT),
                };
                ListenerInfo {
                    name: l.name.clone(),
                    description: format!("SMTP {service} listener on {address}"),
                    port,
                }
            })
            .collect();
        let channels: Vec<ChannelInfo> = config
            .channels
            .iter()
            .map(|c| {
                let (description, network, port) = match &c.kind {
                    ChannelType::Maildir => ("Maildir delivery channel".to_owned(), false, None),
                    ChannelType::Smtp => ("SMTP channel".to_owned(), true, Some(SMTP_PORT)),
                    ChannelType::Lmtp => ("LMTP channel".to_owned(), true, Some(LMTP_PORT)),
                    // RFC 1006 listens on 102 by convention.
                    ChannelType::P1 => ("X.400 P1 channel".to_owned(), true, Some(102)),
                    ChannelType::Gateway => ("SMTP/X.400 gateway".to_owned(), false, None),
                    ChannelType::X400Store => {
                        ("X.400 store delivery channel".to_owned(), false, None)
                    }
                    ChannelType::P3 => ("X.400 P3 delivery channel".to_owned(), true, Some(102)),
                    ChannelType::Custom(t) => (format!("{t} channel"), false, None),
                };
                ChannelInfo {
                    name: c.name.clone(),
                    description,
                    network,
                    port,
                }
            })
            .collect();
        let groups = listeners
            .iter()
            .map(|l| l.name.clone())
            .chain(channels.iter().map(|c| c.name.clone()))
            .collect();
        Source {
            hostname: config.hostname.clone(),
            started,
            metrics,
            queue: Box::new(queue),
            listeners,
            channels,
            groups: Mutex::new(groups),
        }
    }

    /// The session: `o.id` is the MTA-MIB's module, and three row registrations under
    /// [`mib::APPL_INDEX`] (RFC 2741 §6.2.3 ranges: every column of one row, or of every group
    /// row), so that other applications' rows stay theirs.
    pub fn session_config(&self) -> SessionConfig {
        let row = |entry: &[u32], last: u32, index: &[u32]| {
            let subtree = Oid::from(entry).child(&[1]).child(index);
            Registration {
                // The column sub-identifier ranges from 1 to the last column.
                range: Some((u8::try_from(entry.len() + 1).unwrap_or(0), last)),
                subtree,
                priority: 127,
            }
        };
        SessionConfig {
            id: Oid::from(mib::MTA),
            description: format!(
                "mswitchd {} (MTA-MIB, NETWORK-SERVICES-MIB)",
                env!("CARGO_PKG_VERSION")
            ),
            timeout: 0,
            registrations: vec![
                row(&mib::APPL_ENTRY, mib::appl::LAST, &[mib::APPL_INDEX]),
                row(&mib::MTA_ENTRY, mib::mta::LAST, &[mib::APPL_INDEX]),
                row(&mib::MTA_GROUP_ENTRY, mib::group::LAST, &[mib::APPL_INDEX]),
            ],
        }
    }

    /// The index of group `name`, given on first sight.
    fn index(groups: &mut Vec<String>, name: &str) -> u32 {
        let i = match groups.iter().position(|g| g == name) {
            Some(i) => i,
            None => {
                groups.push(name.to_owned());
                groups.len() - 1
            }
        };
        u32::try_from(i + 1).unwrap_or(u32::MAX)
    }

    /// Everything, read now.
    pub fn snapshot(&self) -> Snapshot {
        let listeners: BTreeMap<String, _> = self.metrics.listener_figures().into_iter().collect();
        let channels: BTreeMap<String, _> = self.metrics.channel_figures().into_iter().collect();
        let queue = (self.queue)();
        let now = crate::inbound::now();
        let mut groups = match self.groups.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = Snapshot {
            application: Application {
                name: "mswitchd".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: format!("mswitch mail transfer agent on {}", self.hostname),
                running_for: self.started.elapsed(),
                ..Application::default()
            },
            mta: MtaFigures {
                stored_messages: queue.messages,
                stored_octets: queue.octets,
                stored_recipients: queue.recipients,
                ..MtaFigures::default()
            },
            groups: Vec::new(),
        };
        let (a, m) = (&mut out.application, &mut out.mta);
        for (name, l) in &listeners {
            a.inbound_associations += l.connections_active;
            a.accumulated_inbound_associations += l.connections_accepted;
            m.received_messages += l.received_messages;
            m.received_octets += l.received_octets;
            m.received_recipients += l.received_recipients;
            let info = self.listeners.iter().find(|i| &i.name == name);
            out.groups.push(Group {
                index: Source::index(&mut groups, name),
                name: name.clone(),
                description: info.map_or_else(|| "SMTP listener".into(), |i| i.description.clone()),
                hierarchy: HIERARCHY_RECEPTION,
                tcp_port: info.map(|i| i.port),
                received_messages: Some(l.received_messages),
                received_octets: Some(l.received_octets),
                received_recipients: Some(l.received_recipients),
                inbound_associations: Some(l.connections_active),
                accumulated_inbound_associations: Some(l.connections_accepted),
                ..Group::default()
            });
        }
        // Channels: the configured ones, then any other the counters or the queue know.
        let mut names: Vec<&str> = self.channels.iter().map(|c| c.name.as_str()).collect();
        for n in channels.keys().chain(queue.channels.keys()) {
            if !names.contains(&n.as_str()) && !listeners.contains_key(n) {
                names.push(n);
            }
        }
        for name in names {
            let f = channels.get(name).copied().unwrap_or_default();
            let q = queue.channels.get(name).copied().unwrap_or_default();
            let info = self.channels.iter().find(|c| c.name == name);
            let network = info.is_some_and(|c| c.network);
            m.transmitted_messages += f.transmitted_messages;
            m.transmitted_octets += f.transmitted_octets;
            m.transmitted_recipients += f.transmitted_recipients;
            if network {
                a.outbound_associations += f.running;
                a.failed_outbound_associations += f.unreachable;
            }
            let oldest = q.oldest.map_or(Duration::ZERO, |at| now.since(at));
            out.groups.push(Group {
                index: Source::index(&mut groups, name),
                name: name.to_owned(),
                description: info.map_or_else(|| "channel".into(), |c| c.description.clone()),
                hierarchy: HIERARCHY_TRANSMISSION,
                tcp_port: info.and_then(|c| c.port),
                stored_messages: Some(q.messages),
                stored_octets: Some(q.octets),
                stored_recipients: Some(q.recipients),
                oldest_message_stored: Some(oldest),
                transmitted_messages: Some(f.transmitted_messages),
                transmitted_octets: Some(f.transmitted_octets),
                transmitted_recipients: Some(f.transmitted_recipients),
                outbound_associations: network.then_some(f.running),
                failed_outbound_associations: network.then_some(f.unreachable),
                ..Group::default()
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mswitch_core::channel::{DeliveryResult, RecipientOutcome};
    use mswitch_core::envelope::{Envelope, NextHop, ReversePath};
    use mswitch_core::id::{ChannelId, QueueId};
    use mswitch_core::qmgr::{Dispatch, JobId, JobResult};
    use mswitch_core::status::Status;

    use super::*;

    const CONFIG: &str = r#"
[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:0"

[routing]
local_domains = ["local.test"]
local_channel = "local"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"

[[channel]]
name = "out"
type = "smtp"
"#;

    fn dispatch(channel: &str, size: u64, recipients: usize) -> Dispatch {
        let mut envelope = Envelope::new(ReversePath::Null, Timestamp::from_secs(1));
        envelope.size = size;
        Dispatch {
            job: JobId(1),
            queue_id: QueueId(1),
            envelope: Arc::new(envelope),
            channel: ChannelId::new(channel),
            next_hop: NextHop::Local,
            recipients: (0..recipients).collect(),
            attempt: 1,
        }
    }

    #[test]
    fn counters_and_queue_figures_fill_the_tables() {
        let config = Config::parse(CONFIG, "t", Path::new("/data")).expect("valid");
        let metrics = Arc::new(Metrics::new());
        let mx = metrics.listener("mx");
        let connection = mx.connection();
        mx.received();
        mx.received_volume(2000, 2);
        let ok = Status::new(250, (2, 0, 0), "ok");
        metrics.record_attempt(
            &dispatch("local", 2000, 2),
            &JobResult::Outcomes(vec![
                RecipientOutcome {
                    index: 0,
                    result: DeliveryResult::Delivered(ok.clone()),
                },
                RecipientOutcome {
                    index: 1,
                    result: DeliveryResult::TryLater(Status::new(451, (4, 0, 0), "later")),
                },
            ]),
            Timestamp::from_secs(2),
        );
        metrics.record_attempt(
            &dispatch("out", 10, 1),
            &JobResult::Unreachable(Status::new(451, (4, 4, 1), "refused")),
            Timestamp::from_secs(2),
        );
        let running = metrics.job(&ChannelId::new("out"));
        let mut by_channel = BTreeMap::new();
        by_channel.insert(
            "local".to_owned(),
            ChannelQueue {
                messages: 1,
                octets: 2000,
                recipients: 1,
                oldest: Some(Timestamp(crate::inbound::now().0.saturating_sub(5000))),
            },
        );
        let queue = QueueFigures {
            messages: 1,
            octets: 2000,
            recipients: 1,
            channels: by_channel,
        };
        let address: SocketAddr = "127.0.0.1:2525".parse().expect("address");
        let source = Source::new(
            &config,
            &[address],
            metrics.clone(),
            move || queue.clone(),
            Instant::now(),
        );
        let s = source.snapshot();
        assert_eq!(
            s.mta,
            MtaFigures {
                received_messages: 1,
                received_octets: 2000,
                received_recipients: 2,
                stored_messages: 1,
                stored_octets: 2000,
                stored_recipients: 1,
                transmitted_messages: 1,
                transmitted_octets: 2000,
                transmitted_recipients: 1,
            }
        );
        assert_eq!(s.application.inbound_associations, 1);
        assert_eq!(s.application.accumulated_inbound_associations, 1);
        assert_eq!(
            s.application.outbound_associations, 1,
            "the running job on out"
        );
        assert_eq!(s.application.failed_outbound_associations, 1);
        assert_eq!(
            s.application.description,
            "mswitch mail transfer agent on switch.test"
        );
        let names: Vec<(u32, &str)> = s
            .groups
            .iter()
            .map(|g| (g.index, g.name.as_str()))
            .collect();
        assert_eq!(names, [(1, "mx"), (2, "local"), (3, "out")]);
        let mx = &s.groups[0];
        assert_eq!(mx.description, "SMTP relay listener on 127.0.0.1:2525");
        assert_eq!(mx.tcp_port, Some(25));
        assert_eq!(mx.received_recipients, Some(2));
        assert_eq!(
            mx.stored_messages, None,
            "a listener stores nothing of its own"
        );
        let local = &s.groups[1];
        assert_eq!(local.transmitted_messages, Some(1));
        assert_eq!(local.stored_messages, Some(1));
        assert_eq!(
            local.outbound_associations, None,
            "Maildir has no associations"
        );
        let age = local.oldest_message_stored.expect("served");
        assert!(
            age >= Duration::from_secs(5) && age < Duration::from_secs(60),
            "{age:?}"
        );
        let out = &s.groups[2];
        assert_eq!(out.failed_outbound_associations, Some(1));
        assert_eq!(out.outbound_associations, Some(1));
        assert_eq!(out.oldest_message_stored, Some(Duration::ZERO));
        assert_eq!(out.tcp_port, Some(25));
        drop(running);
        drop(connection);
        // A channel first seen later gets the next index, and the others keep theirs.
        metrics.record_attempt(
            &dispatch("lists", 10, 1),
            &JobResult::Outcomes(vec![RecipientOutcome {
                index: 0,
                result: DeliveryResult::Expanded,
            }]),
            Timestamp::from_secs(2),
        );
        let s = source.snapshot();
        let names: Vec<(u32, &str)> = s
            .groups
            .iter()
            .map(|g| (g.index, g.name.as_str()))
            .collect();
        assert_eq!(names, [(1, "mx"), (2, "local"), (3, "out"), (4, "lists")]);
        assert_eq!(s.application.outbound_associations, 0);
        assert_eq!(s.application.inbound_associations, 0);
    }

    #[test]
    fn the_registrations_cover_one_row_of_each_table() {
        let config = Config::parse(CONFIG, "t", Path::new("/data")).expect("valid");
        let source = Source::new(
            &config,
            &[],
            Arc::new(Metrics::new()),
            QueueFigures::default,
            Instant::now(),
        );
        let regs: Vec<String> = source
            .session_config()
            .registrations
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            regs,
            [
                "1.3.6.1.2.1.27.1.1.[1-17].1",
                "1.3.6.1.2.1.28.1.1.[1-12].1",
                "1.3.6.1.2.1.28.2.1.[1-34].1",
            ]
        );
    }
}
