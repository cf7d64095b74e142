//! The outbound SMTP / LMTP channel (feature `tokio`): mswitch-core's [`Channel`] for delivery,
//! on top of the client driver ([`driver::deliver`]).
//!
//! One [`Channel::deliver`] call is one attempt for one message and some of its recipients:
//! 1. The next hop becomes a host name and port: `Host` as given (the channel's default port
//!    when it has none); `Peer` through [`SmtpChannelConfig::peers`]; `Domain` through the
//!    [`SmtpChannelConfig::resolver`] (its MX hosts in RFC 5321 §5.1 order, each address
//!    tried with the host's name for TLS; without a resolver, the domain's own address records
//!    through the system); `Local` is a configuration error (an SMTP channel never delivers
//!    locally). The next hop's own settings ([`SmtpChannelConfig::overrides`]: TLS,
//!    credentials, how long the connection stays open) apply over the channel's.
//! 2. What cannot go over SMTP is decided here, without a connection (below).
//! 3. The name is resolved (within [`SmtpChannelConfig::connect_timeout`]) and each address
//!    is tried in turn until a session runs; if none does, the job fails as a whole with
//!    [`ChannelError::Connection`] and the QMGR retries every recipient. A domain that takes
//!    no mail (null MX, no such domain) fails its recipients; a DNS failure defers them.
//! 4. The peer's answer for each recipient becomes its [`DeliveryResult`]: accepted is
//!    `Delivered` for LMTP (final delivery, RFC 2033) and `Relayed` for SMTP (or
//!    `RelayedWithoutDsn` when the peer does not offer DSN and DSN parameters were dropped,
//!    RFC 3461 §4.1); 4yz is `TryLater`, 5yz `Failed`.
//!
//! Every recipient of the job gets exactly one outcome (a duplicate index in the job is
//! attempted once; an index outside the envelope has no recipient and is left out, with an
//! error in the log). Each outcome is logged on one line: queue id, channel, peer address,
//! recipient, result, reply.
//!
//! # Decided without a connection
//! | situation | result | why |
//! |---|---|---|
//! | X.400 content | `Failed` 554 5.6.1 | the gateway must convert it first; SMTP carries RFC 5322 only (RFC 3463 X.6.1 "media not supported") |
//! | X.400 originator | `Failed` 550 5.1.7 | no SMTP reverse-path for it (X.1.7 "bad sender's mailbox address syntax") |
//! | X.400 recipient | `Failed` 554 5.1.3 for that recipient; the others go | X.1.3 "bad destination mailbox address syntax" |
//! | REQUIRETLS, and the channel's TLS policy is not `Required` with a TLS configuration | `Failed` 550 5.7.10 | below |
//!
//! # REQUIRETLS (RFC 8689)
//! A message with [`Envelope::require_tls`] may only travel over TLS with a verified
//! certificate to a peer that offers REQUIRETLS. This channel sends it only when its own policy
//! is [`TlsPolicy::Required`] with a [`SmtpChannelConfig::tls_config`]. By the rule of
//! [`crate::tls::Verification`], a configuration without verification is for opportunistic
//! TLS only, so a `Required` channel's configuration verifies. The session then refuses the
//! message itself (554 5.7.30) if the peer does not offer REQUIRETLS, and defers it (451 4.7.4
//! / 4.7.5) without STARTTLS or with a certificate that does not verify.
//!
//! A channel with a weaker policy does not upgrade itself for such a message: a
//! `rustls::ClientConfig` does not say whether it verifies, and an opportunistic channel
//! (to MX hosts) normally holds one that does not. Its REQUIRETLS recipients fail at once,
//! permanently, with 550 5.7.10 ("encryption needed"): the route is wrong for them, and no
//! retry on this channel can succeed.
//!
//! # Connections, and known gaps
//! - [`SmtpChannelConfig::connect_timeout`] bounds the name lookup and, separately, each
//!   TCP connect. Once connected, the next address is never tried: a connection that fails
//!   part way gives temporary failures for what the peer had not yet accepted
//!   ([`driver::deliver_on`]).
//! - A name that does not resolve is a [`ChannelError::Connection`] (retried), even when the
//!   domain does not exist: the system resolver does not tell NXDOMAIN from a failure of the
//!   DNS. The MX lookup to come should fail such recipients (RFC 5321 §5.1).
//! - The content is copied once per attempt into the `Arc<[u8]>` that
//!   [`OutgoingMessage::content`] takes; [`Content`](mswitch_core::store::Content) could be
//!   sent without a copy if the client took it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mswitch_core::address::{Address, Domain, Mailbox};
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    RecipientOutcome,
};
use mswitch_core::envelope::{BodyType, ContentFamily, ContentType, Envelope, NextHop};
use mswitch_core::id::ChannelId;
use mswitch_core::route::{HostResolver, ResolveError};
use mswitch_core::status::Status;

use crate::client::Stage;
use crate::client::{
    ClientAuth, ClientConfig, Mode, Outcome, OutgoingMessage, RecipientResult, TlsPolicy,
};
use crate::driver::{self, ClientConnection, ClientDriverConfig};
use crate::proto::command::{ForwardPath, MailParams, RcptParams};

/// The SMTP port (RFC 5321 §4.5.4.2 names it; the IANA registry assigns 25).
pub const SMTP_PORT: u16 = 25;
/// The port this channel uses for LMTP by default: 24, "any private mail system" in the IANA
/// registry, as LMTP servers usually do (RFC 2033: LMTP must not be offered on port 25).
pub const LMTP_PORT: u16 = 24;
/// Time allowed to resolve a next hop, and to connect to each address, by default: 30 seconds,
/// as Postfix's `smtp_connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How an [`SmtpChannel`] delivers.
#[derive(Clone)]
pub struct SmtpChannelConfig {
    /// The channel's configured name.
    pub id: ChannelId,
    /// SMTP (relaying: accepted recipients are `Relayed`) or LMTP (final delivery: accepted
    /// recipients are `Delivered`).
    pub mode: Mode,
    /// Our name in EHLO / LHLO / HELO.
    pub helo_name: String,
    /// The port for a `Host` next hop without one and for a `Domain` next hop ([`SMTP_PORT`]
    /// or [`LMTP_PORT`]).
    pub default_port: u16,
    /// Whether to use STARTTLS. `Opportunistic` without a `tls_config` acts as `None`;
    /// `Required` without one is a configuration error at delivery.
    pub tls: TlsPolicy,
    /// The TLS client configuration for STARTTLS ([`crate::tls::client_config`]). With
    /// `TlsPolicy::Required` it must verify the peer (see the module documentation on
    /// REQUIRETLS).
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Authenticate to the peer (SMTP AUTH) with these credentials.
    pub auth: Option<ClientAuth>,
    /// Time allowed to resolve the next hop (see the module documentation: not yet for the
    /// TCP connect).
    pub connect_timeout: Duration,
    /// `NextHop::Peer(name)` → host name or IP literal, and port.
    pub peers: HashMap<String, (String, u16)>,
    /// How long a connection stays open after a delivery, waiting for the next message to the
    /// same peer (zero: close at once). A long time keeps a busy peer's connection open: the
    /// low-latency "permanent connection".
    pub connection_idle: Duration,
    /// Messages per connection before it is closed and another opened.
    pub max_messages_per_connection: usize,
    /// Where domains (MX, RFC 5321 §5.1) and host names are resolved; `None`: the system
    /// resolver, by address records only (no MX).
    pub resolver: Option<Arc<dyn HostResolver>>,
    /// Settings for particular next hops (from the routing table), over the channel's own.
    pub overrides: Option<Arc<dyn PeerOverrideLookup>>,
}

/// What a channel does differently for one next hop: TLS, credentials, keeping the connection
/// open. A field left `None` means the channel's own setting.
#[derive(Clone, Default)]
pub struct PeerOverrides {
    /// The TLS policy, and the TLS configuration that goes with it (one that verifies for
    /// [`TlsPolicy::Required`]).
    pub tls: Option<(TlsPolicy, Option<Arc<rustls::ClientConfig>>)>,
    /// SMTP AUTH credentials.
    pub auth: Option<ClientAuth>,
    /// How long the connection stays open after a delivery (a long time: a "permanent"
    /// connection).
    pub connection_idle: Option<Duration>,
}

impl std::fmt::Debug for PeerOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerOverrides")
            .field("tls", &self.tls.as_ref().map(|t| t.0))
            .field("auth", &self.auth.as_ref().map(|a| &a.authcid))
            .field("connection_idle", &self.connection_idle)
            .finish()
    }
}

/// Finds the overrides of a next hop.
pub trait PeerOverrideLookup: Send + Sync {
    /// The settings for `next_hop`, if it has any of its own.
    fn overrides(&self, next_hop: &NextHop) -> Option<PeerOverrides>;
}

impl SmtpChannelConfig {
    /// A channel named `id` speaking `mode` on its usual port ([`SMTP_PORT`] or
    /// [`LMTP_PORT`]), opportunistic TLS (in effect none until `tls_config` is set), no AUTH,
    /// [`DEFAULT_CONNECT_TIMEOUT`] and no named peers.
    pub fn new(id: ChannelId, mode: Mode, helo_name: impl Into<String>) -> Self {
        let default_port = match mode {
            Mode::Smtp => SMTP_PORT,
            Mode::Lmtp => LMTP_PORT,
        };
        SmtpChannelConfig {
            id,
            mode,
            helo_name: helo_name.into(),
            default_port,
            tls: TlsPolicy::Opportunistic,
            tls_config: None,
            auth: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            peers: HashMap::new(),
            connection_idle: DEFAULT_CONNECTION_IDLE,
            max_messages_per_connection: DEFAULT_MAX_MESSAGES_PER_CONNECTION,
            resolver: None,
            overrides: None,
        }
    }
}

impl std::fmt::Debug for SmtpChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpChannelConfig")
            .field("id", &self.id)
            .field("mode", &self.mode)
            .field("helo_name", &self.helo_name)
            .field("default_port", &self.default_port)
            .field("tls", &self.tls)
            .field("tls_config", &self.tls_config.is_some())
            .field("auth", &self.auth.as_ref().map(|a| &a.authcid))
            .field("connect_timeout", &self.connect_timeout)
            .field("peers", &self.peers)
            .field("connection_idle", &self.connection_idle)
            .field(
                "max_messages_per_connection",
                &self.max_messages_per_connection,
            )
            .field("resolver", &self.resolver.is_some())
            .field("overrides", &self.overrides.is_some())
            .finish()
    }
}

/// How long a connection is kept open after a delivery for the next message to the same peer.
pub const DEFAULT_CONNECTION_IDLE: Duration = Duration::from_secs(5);

/// How many messages one connection carries before it is closed and a new one opened.
pub const DEFAULT_MAX_MESSAGES_PER_CONNECTION: usize = 100;

type PoolKey = (SocketAddr, String);

/// A connection kept for reuse.
struct Pooled {
    connection: ClientConnection,
    idle_since: std::time::Instant,
    used: usize,
}

/// Connections kept open between deliveries, per peer address and server name.
#[derive(Default)]
struct Pool {
    idle: std::sync::Mutex<HashMap<PoolKey, Vec<Pooled>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .idle
            .lock()
            .map(|m| m.values().map(Vec::len).sum::<usize>())
            .unwrap_or(0);
        f.debug_struct("Pool").field("idle", &n).finish()
    }
}

impl Pool {
    /// A usable idle connection to `key`, if one is kept; stale ones are closed.
    fn take(&self, key: &PoolKey, idle_limit: Duration) -> Option<Pooled> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().ok()?;
            let list = idle.get_mut(key)?;
            let mut found = None;
            while let Some(mut p) = list.pop() {
                if p.idle_since.elapsed() < idle_limit && p.connection.is_usable() {
                    found = Some(p);
                    break;
                }
                stale.push(p);
            }
            found
        };
        for p in stale {
            tokio::spawn(p.connection.quit());
        }
        found
    }

    /// Keeps `p` for the next delivery to `key`, closing it after `idle_limit` if unused.
    fn give_back(self: &Arc<Self>, key: PoolKey, mut p: Pooled, idle_limit: Duration, max: usize) {
        if idle_limit.is_zero() || p.used >= max || !p.connection.is_open() {
            tokio::spawn(p.connection.quit());
            return;
        }
        p.idle_since = std::time::Instant::now();
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(key).or_default().push(p);
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(idle_limit).await;
            if let Some(pool) = pool.upgrade() {
                pool.close_expired(idle_limit);
            }
        });
    }

    fn close_expired(&self, idle_limit: Duration) {
        let mut expired = Vec::new();
        if let Ok(mut idle) = self.idle.lock() {
            for list in idle.values_mut() {
                let (old, keep): (Vec<Pooled>, Vec<Pooled>) = std::mem::take(list)
                    .into_iter()
                    .partition(|p| p.idle_since.elapsed() >= idle_limit);
                *list = keep;
                expired.extend(old);
            }
            idle.retain(|_, l| !l.is_empty());
        }
        for p in expired {
            tokio::spawn(p.connection.quit());
        }
    }
}

/// The outbound SMTP or LMTP channel. A connection is kept open for
/// [`SmtpChannelConfig::connection_idle`] after each delivery and reused for the next message
/// to the same peer, up to [`SmtpChannelConfig::max_messages_per_connection`] messages.
#[derive(Debug)]
pub struct SmtpChannel {
    config: SmtpChannelConfig,
    descriptor: ChannelDescriptor,
    pool: Arc<Pool>,
}

impl SmtpChannel {
    /// A channel with this configuration: outbound, for Internet content.
    pub fn new(config: SmtpChannelConfig) -> Self {
        let descriptor = ChannelDescriptor {
            id: config.id.clone(),
            kind: ChannelKind::Outbound,
            accepts: vec![ContentFamily::Internet],
        };
        SmtpChannel {
            config,
            descriptor,
            pool: Arc::new(Pool::default()),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &SmtpChannelConfig {
        &self.config
    }

    /// The host and port a next hop stands for, and the name the peer's certificate must
    /// carry.
    fn target(&self, next_hop: &NextHop) -> Result<Target, ChannelError> {
        match next_hop {
            NextHop::Local => Err(ChannelError::Config(format!(
                "channel {} delivers over {}, not locally: next hop `local` routed to it",
                self.config.id,
                self.protocol()
            ))),
            NextHop::Host { host, port } => {
                Ok(Target::new(host, port.unwrap_or(self.config.default_port)))
            }
            NextHop::Domain(domain) => Ok(Target::new(domain, self.config.default_port)),
            NextHop::Peer(name) => match self.config.peers.get(name) {
                Some((host, port)) => Ok(Target::new(host, *port)),
                None => Err(ChannelError::Config(format!(
                    "channel {} has no peer named {name:?}",
                    self.config.id
                ))),
            },
        }
    }

    fn protocol(&self) -> &'static str {
        match self.config.mode {
            Mode::Smtp => "SMTP",
            Mode::Lmtp => "LMTP",
        }
    }

    /// The channel's settings for `next_hop`, with that hop's overrides applied.
    fn settings(&self, next_hop: &NextHop) -> Settings {
        let mut s = Settings {
            tls: self.config.tls,
            tls_config: self.config.tls_config.clone(),
            auth: self.config.auth.clone(),
            idle: self.config.connection_idle,
        };
        if let Some(o) = self
            .config
            .overrides
            .as_ref()
            .and_then(|l| l.overrides(next_hop))
        {
            if let Some((tls, config)) = o.tls {
                s.tls = tls;
                s.tls_config = config;
            }
            if o.auth.is_some() {
                s.auth = o.auth;
            }
            if let Some(idle) = o.connection_idle {
                s.idle = idle;
            }
        }
        s
    }

    /// The driver configuration for this attempt.
    fn driver_config(
        &self,
        target: &Target,
        settings: &Settings,
    ) -> Result<ClientDriverConfig, ChannelError> {
        let tls = match (settings.tls, &settings.tls_config) {
            (TlsPolicy::Required, None) => {
                return Err(ChannelError::Config(format!(
                    "channel {} requires TLS but has no TLS configuration",
                    self.config.id
                )));
            }
            // STARTTLS would fail at every peer that offers it: go on in plaintext.
            (TlsPolicy::Opportunistic, None) => TlsPolicy::None,
            (policy, _) => policy,
        };
        let mut session = ClientConfig::new(self.config.helo_name.clone(), self.config.mode);
        session.tls = tls;
        session.auth = settings.auth.clone();
        Ok(ClientDriverConfig {
            session,
            tls: settings.tls_config.clone(),
            server_name: target.server_name.clone(),
        })
    }

    /// What is decided here, and the message for the rest.
    fn plan(&self, job: &DeliveryJob, recipients: &[usize], settings: &Settings) -> Plan {
        let envelope = &job.envelope;
        let mut plan = Plan::default();
        let refusal = match &envelope.content_type {
            ContentType::X400(_) => Some(Status::new(
                554,
                (5, 6, 1),
                format!(
                    "X.400 content cannot be sent over {}; it needs conversion by the gateway",
                    self.protocol()
                ),
            )),
            ContentType::Internet { .. }
                if envelope
                    .originator
                    .address()
                    .is_some_and(|a| a.as_mailbox().is_none()) =>
            {
                Some(Status::new(
                    550,
                    (5, 1, 7),
                    format!(
                        "originator {} is an X.400 address, which has no {} form",
                        envelope.originator,
                        self.protocol()
                    ),
                ))
            }
            ContentType::Internet { .. } if envelope.require_tls && !settings.can_require_tls() => {
                Some(Status::new(
                    550,
                    (5, 7, 10),
                    format!(
                        "REQUIRETLS: the message needs verified TLS, which channel {} does not \
                         require",
                        self.config.id
                    ),
                ))
            }
            ContentType::Internet { .. } => None,
        };
        if let Some(status) = refusal {
            plan.decided = recipients
                .iter()
                .map(|&index| RecipientOutcome {
                    index,
                    result: DeliveryResult::Failed(status.clone()),
                })
                .collect();
            return plan;
        }
        let mut rcpts = Vec::new();
        for &index in recipients {
            let recipient = &envelope.recipients[index];
            match &recipient.address {
                Address::Mailbox(m) => {
                    let params = RcptParams {
                        notify: recipient.notify.is_specified().then_some(recipient.notify),
                        orcpt: recipient.original.clone(),
                    };
                    rcpts.push((ForwardPath::Mailbox(m.clone()), params));
                    plan.sent.push(index);
                }
                Address::X400(_) => plan.decided.push(RecipientOutcome {
                    index,
                    result: DeliveryResult::Failed(Status::new(
                        554,
                        (5, 1, 3),
                        format!(
                            "{} is an X.400 address, which has no {} form",
                            recipient.address,
                            self.protocol()
                        ),
                    )),
                }),
            }
        }
        if !rcpts.is_empty() {
            plan.message = Some(outgoing(envelope, rcpts, job.content.as_bytes()));
        }
        plan
    }

    /// Runs the session with each of the target's addresses in turn until one connects.
    async fn attempt(
        &self,
        job: &DeliveryJob,
        target: &Target,
        addresses: Vec<(String, SocketAddr)>,
        config: ClientDriverConfig,
        message: OutgoingMessage,
        idle: Duration,
    ) -> Result<(SocketAddr, Vec<RecipientResult>), ChannelError> {
        let mut failures = Vec::new();
        let max = self.config.max_messages_per_connection.max(1);
        for (server_name, address) in addresses {
            let mut config = config.clone();
            // The name the peer's certificate must carry: the MX host's, for a domain.
            config.server_name = server_name;
            let key: PoolKey = (address, config.server_name.clone());
            if let Some(mut pooled) = self.pool.take(&key, idle) {
                let results = first_results(pooled.connection.send(vec![message.clone()]).await);
                pooled.used += 1;
                // A connection that failed before the peer said anything about the message
                // was stale: the message goes on a new connection instead.
                if !results
                    .iter()
                    .all(|r| !r.from_peer && r.stage == Stage::Session)
                {
                    self.pool.give_back(key, pooled, idle, max);
                    return Ok((address, results));
                }
                tokio::spawn(pooled.connection.quit());
            }
            let connected = tokio::time::timeout(
                self.config.connect_timeout,
                tokio::net::TcpStream::connect(address),
            )
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", self.config.connect_timeout),
                ))
            });
            match connected {
                Ok(stream) => {
                    // Connected: whatever happens now, the session reports every recipient,
                    // and the next address is not tried (the peer may have taken the message).
                    let mut connection = ClientConnection::new(stream, config.clone());
                    let results = first_results(connection.send(vec![message.clone()]).await);
                    let pooled = Pooled {
                        connection,
                        idle_since: std::time::Instant::now(),
                        used: 1,
                    };
                    self.pool.give_back(key, pooled, idle, max);
                    return Ok((address, results));
                }
                Err(e) => {
                    tracing::info!(
                        queue_id = %job.queue_id,
                        channel = %self.config.id,
                        peer = %address,
                        error = %e,
                        "connection failed"
                    );
                    failures.push(format!("{address}: {e}"));
                }
            }
        }
        Err(ChannelError::Connection {
            peer: target.to_string(),
            reason: failures.join("; "),
        })
    }

    /// The target's addresses: an IP literal as is, a name through the system resolver.
    async fn resolve(
        &self,
        target: &Target,
        next_hop: &NextHop,
    ) -> Result<Vec<(String, SocketAddr)>, Unresolved> {
        if let Some(ip) = target.ip {
            return Ok(vec![(
                target.server_name.clone(),
                SocketAddr::new(ip, target.port),
            )]);
        }
        if let Some(resolver) = &self.config.resolver {
            let looked_up = async {
                match next_hop {
                    NextHop::Domain(_) => resolver.mail_hosts(&target.host).await.map(|hosts| {
                        hosts
                            .into_iter()
                            .flat_map(|h| {
                                let name = Target::new(&h.name, target.port).server_name;
                                h.addresses
                                    .into_iter()
                                    .map(move |ip| (name.clone(), SocketAddr::new(ip, target.port)))
                            })
                            .collect::<Vec<_>>()
                    }),
                    _ => resolver.host_addresses(&target.host).await.map(|ips| {
                        ips.into_iter()
                            .map(|ip| {
                                (target.server_name.clone(), SocketAddr::new(ip, target.port))
                            })
                            .collect()
                    }),
                }
            };
            return match tokio::time::timeout(self.config.connect_timeout, looked_up).await {
                Ok(Ok(found)) if !found.is_empty() => Ok(found),
                Ok(Ok(_)) => Err(Unresolved::Temporary(Status::new(
                    451,
                    (4, 4, 4),
                    format!("no address found for {}", target.host),
                ))),
                Ok(Err(ResolveError::Permanent(status))) => Err(Unresolved::Permanent(status)),
                Ok(Err(ResolveError::Temporary(status))) => Err(Unresolved::Temporary(status)),
                Err(_) => Err(Unresolved::Temporary(Status::new(
                    451,
                    (4, 4, 3),
                    format!(
                        "no answer for {} within {:?}",
                        target.host, self.config.connect_timeout
                    ),
                ))),
            };
        }
        let failed = |reason: String| {
            Unresolved::Channel(ChannelError::Connection {
                peer: target.to_string(),
                reason,
            })
        };
        let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
        let found = match tokio::time::timeout(self.config.connect_timeout, lookup).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => return Err(failed(format!("cannot resolve {}: {e}", target.host))),
            Err(_) => {
                return Err(failed(format!(
                    "no address for {} within {:?}",
                    target.host, self.config.connect_timeout
                )));
            }
        };
        let mut seen = HashSet::new();
        let addresses: Vec<(String, SocketAddr)> = found
            .filter(|a| seen.insert(*a))
            .map(|a| (target.server_name.clone(), a))
            .collect();
        if addresses.is_empty() {
            return Err(failed(format!("{} has no address records", target.host)));
        }
        Ok(addresses)
    }

    /// Gives every recipient in `sent` the same result.
    fn decide_all(
        &self,
        job: &DeliveryJob,
        sent: &[usize],
        mut outcomes: Vec<RecipientOutcome>,
        result: DeliveryResult,
    ) -> Vec<RecipientOutcome> {
        for &index in sent {
            let outcome = RecipientOutcome {
                index,
                result: result.clone(),
            };
            self.log(job, "-", &outcome);
            outcomes.push(outcome);
        }
        outcomes.sort_by_key(|o| o.index);
        outcomes
    }

    /// The result of an accepted recipient.
    fn accepted(&self, result: &RecipientResult) -> DeliveryResult {
        let status = result.status.clone();
        match self.config.mode {
            Mode::Lmtp => DeliveryResult::Delivered(status),
            Mode::Smtp if result.relayed_without_dsn => DeliveryResult::RelayedWithoutDsn(status),
            Mode::Smtp => DeliveryResult::Relayed(status),
        }
    }

    fn log(&self, job: &DeliveryJob, peer: &str, outcome: &RecipientOutcome) {
        let recipient = &job.envelope.recipients[outcome.index].address;
        let (result, reply) = match &outcome.result {
            DeliveryResult::Delivered(s) => ("delivered", Some(s)),
            DeliveryResult::Relayed(s) => ("relayed", Some(s)),
            DeliveryResult::RelayedWithoutDsn(s) => ("relayed-without-dsn", Some(s)),
            DeliveryResult::Expanded => ("expanded", None),
            DeliveryResult::TryLater(s) => ("deferred", Some(s)),
            DeliveryResult::Failed(s) => ("failed", Some(s)),
        };
        let reply = reply.map(ToString::to_string).unwrap_or_default();
        tracing::debug!(
            queue_id = %job.queue_id,
            channel = %self.config.id,
            peer,
            %recipient,
            result,
            reply = %reply,
            protocol = self.protocol(),
            "delivery attempt"
        );
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        let target = self.target(&job.next_hop)?;
        let settings = self.settings(&job.next_hop);
        let config = self.driver_config(&target, &settings)?;
        let recipients = job_recipients(&job, &self.config.id);
        let plan = self.plan(&job, &recipients, &settings);
        for outcome in &plan.decided {
            self.log(&job, "-", outcome);
        }
        let mut outcomes = plan.decided;
        let Some(message) = plan.message else {
            return Ok(outcomes);
        };
        let addresses = match self.resolve(&target, &job.next_hop).await {
            Ok(addresses) => addresses,
            Err(Unresolved::Channel(e)) => return Err(e),
            // The destination's DNS decided for every recipient: a domain that takes no mail
            // fails them, a lookup that failed for now defers them.
            Err(Unresolved::Permanent(s)) => {
                return Ok(self.decide_all(&job, &plan.sent, outcomes, DeliveryResult::Failed(s)));
            }
            Err(Unresolved::Temporary(s)) => {
                return Ok(self.decide_all(
                    &job,
                    &plan.sent,
                    outcomes,
                    DeliveryResult::TryLater(s),
                ));
            }
        };
        let (peer, results) = self
            .attempt(&job, &target, addresses, config, message, settings.idle)
            .await?;
        let peer = peer.to_string();
        let mut results = results.into_iter();
        for index in plan.sent {
            let result = match results.next() {
                Some(r) => match r.outcome {
                    Outcome::Accepted => self.accepted(&r),
                    Outcome::TemporaryFailure => DeliveryResult::TryLater(r.status),
                    Outcome::PermanentFailure => DeliveryResult::Failed(r.status),
                },
                // The session promises one result per recipient; should it break that promise,
                // the recipient is retried.
                None => DeliveryResult::TryLater(Status::new(
                    451,
                    (4, 3, 0),
                    "the SMTP client session gave no result for this recipient",
                )),
            };
            let outcome = RecipientOutcome { index, result };
            self.log(&job, &peer, &outcome);
            outcomes.push(outcome);
        }
        outcomes.sort_by_key(|o| o.index);
        Ok(outcomes)
    }
}

/// The settings of one attempt: the channel's, with the next hop's overrides.
struct Settings {
    tls: TlsPolicy,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    auth: Option<ClientAuth>,
    idle: Duration,
}

impl Settings {
    /// Whether a REQUIRETLS message may go (see the module documentation).
    fn can_require_tls(&self) -> bool {
        self.tls == TlsPolicy::Required && self.tls_config.is_some()
    }
}

/// Why a next hop has no address to try.
enum Unresolved {
    /// The destination takes no mail (null MX, no such domain).
    Permanent(Status),
    /// DNS failed for now.
    Temporary(Status),
    /// The system resolver failed (no resolver configured): a connection failure.
    Channel(ChannelError),
}

/// The results of the one message sent.
fn first_results(deliveries: Vec<driver::Delivery>) -> Vec<RecipientResult> {
    deliveries
        .into_iter()
        .next()
        .map(|(_, results)| results)
        .unwrap_or_default()
}

/// The job's recipients that exist, each once, in the job's order.
fn job_recipients(job: &DeliveryJob, channel: &ChannelId) -> Vec<usize> {
    let count = job.envelope.recipients.len();
    let mut seen = HashSet::new();
    job.recipients
        .iter()
        .copied()
        .filter(|&index| {
            if index >= count {
                tracing::error!(
                    queue_id = %job.queue_id,
                    %channel,
                    index,
                    recipients = count,
                    "delivery job names a recipient the envelope does not have"
                );
                return false;
            }
            seen.insert(index)
        })
        .collect()
}

/// The message as the client session takes it.
fn outgoing(
    envelope: &Envelope,
    recipients: Vec<(ForwardPath, RcptParams)>,
    content: &[u8],
) -> OutgoingMessage {
    let (body, smtputf8) = match envelope.content_type {
        ContentType::Internet { body, smtputf8 } => (body, smtputf8),
        // Refused before (X.400 content never gets here).
        ContentType::X400(_) => (BodyType::SevenBit, false),
    };
    let mt_priority = envelope.priority.mt_priority();
    let mail_params = MailParams {
        size: Some(envelope.size),
        body: Some(body),
        smtputf8,
        ret: envelope.dsn_ret,
        envid: envelope.dsn_envid.clone(),
        auth: envelope.authenticated_as.as_ref().map(|id| {
            // RFC 4954 §5: AUTH= is a mailbox; an identity that is not one (a bare user name)
            // travels as `<>`, "authenticated, identity not disclosed".
            Mailbox::parse(id).ok().map(|_| id.clone())
        }),
        // RFC 6710 §3: no MT-PRIORITY means 0, the level of a normal message.
        mt_priority: (mt_priority != 0).then_some(mt_priority),
        require_tls: envelope.require_tls,
        by: None,
    };
    OutgoingMessage {
        from: envelope.originator.clone(),
        mail_params,
        recipients,
        content: Arc::from(content),
        eight_bit: body != BodyType::SevenBit,
        smtputf8,
    }
}

/// What [`SmtpChannel::plan`] decided.
#[derive(Default)]
struct Plan {
    /// Outcomes decided without a connection.
    decided: Vec<RecipientOutcome>,
    /// The recipients in the message, in RCPT order, by envelope index.
    sent: Vec<usize>,
    /// The message, if any recipient is to be sent.
    message: Option<OutgoingMessage>,
}

/// Where to connect.
#[derive(Debug, Clone)]
struct Target {
    /// The name as configured or routed (for logs and errors).
    host: String,
    port: u16,
    /// The host when it is an IP literal.
    ip: Option<IpAddr>,
    /// The name the certificate must carry: the A-label form of a domain, or the IP literal.
    server_name: String,
}

impl Target {
    fn new(host: &str, port: u16) -> Self {
        // Brackets are allowed around a name or address (`[mx.example.org]`, `[192.0.2.1]`,
        // `[IPv6:2001:db8::1]` as in RFC 5321 §4.1.3): a `Host` next hop is never looked up
        // as a mail domain anyway.
        let inner = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let literal = inner
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("IPv6:"))
            .map_or(inner, |_| &inner[5..]);
        let ip = literal.parse::<IpAddr>().ok();
        let host = match ip {
            Some(ip) => ip.to_string(),
            None => Domain::parse(inner)
                .map(|d| d.to_ascii().to_owned())
                .unwrap_or_else(|_| inner.to_owned()),
        };
        Target {
            server_name: host.clone(),
            host,
            port,
            ip,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            Some(IpAddr::V6(_)) => write!(f, "[{}]:{}", self.host, self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use mswitch_core::envelope::{Recipient, ReversePath};
    use mswitch_core::id::{QueueId, Timestamp};
    use mswitch_core::store::Content;

    use super::*;

    #[test]
    fn targets_from_literals_and_names() {
        let t = Target::new("192.0.2.1", 25);
        assert_eq!(t.ip, Some(IpAddr::from([192, 0, 2, 1])));
        assert_eq!(t.to_string(), "192.0.2.1:25");
        let t = Target::new("[IPv6:2001:db8::1]", 24);
        assert_eq!(t.ip, Some("2001:db8::1".parse().expect("literal")));
        assert_eq!(t.to_string(), "[2001:db8::1]:24");
        let t = Target::new("[192.0.2.7]", 2525);
        assert_eq!(t.ip, Some(IpAddr::from([192, 0, 2, 7])));
        let t = Target::new("Bücher.example", 25);
        assert_eq!(t.ip, None);
        assert_eq!(t.host, "xn--bcher-kva.example");
        assert_eq!(t.server_name, "xn--bcher-kva.example");
        assert_eq!(t.to_string(), "xn--bcher-kva.example:25");
        let t = Target::new("[MX.Example.org]", 25);
        assert_eq!((t.ip, t.host.as_str()), (None, "mx.example.org"));
    }

    /// Accepts every sender and recipient, and every message.
    struct AcceptAll;

    impl driver::Handler for AcceptAll {
        async fn mail(&self, _: &ReversePath, _: &MailParams) -> Status {
            Status::new(250, (2, 1, 0), "OK")
        }

        async fn rcpt(&self, _: &ForwardPath, _: &RcptParams) -> Status {
            Status::new(250, (2, 1, 5), "OK")
        }

        async fn message(&self, _: driver::Message) -> Vec<Status> {
            vec![Status::new(250, (2, 0, 0), "Queued")]
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_address_is_tried_in_turn() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("address");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let open = listener.local_addr().expect("address");
        let session = crate::server::ServerConfig::new("mx.example.org", crate::server::Mode::Smtp);
        let server = driver::DriverConfig { session, tls: None };
        tokio::spawn(driver::listen(listener, server, Arc::new(AcceptAll)));

        let mut config = SmtpChannelConfig::new(ChannelId::from("smtp"), Mode::Smtp, "me.example");
        config.tls = TlsPolicy::None;
        let channel = SmtpChannel::new(config);
        let from = Address::parse("a@example.org").expect("address");
        let mut envelope = Envelope::new(ReversePath::Address(from), Timestamp(0));
        envelope.recipients = vec![Recipient::new(
            Address::parse("b@example.com").expect("address"),
        )];
        let job = DeliveryJob {
            queue_id: QueueId(1),
            envelope: Arc::new(envelope),
            content: Content::from(b"Subject: x\r\n\r\nx\r\n".to_vec()),
            recipients: vec![0],
            next_hop: NextHop::Host {
                host: "mx.example.org".into(),
                port: None,
            },
            attempt: 1,
        };
        let target = channel.target(&job.next_hop).expect("target");
        let settings = channel.settings(&job.next_hop);
        let plan = channel.plan(&job, &[0], &settings);
        let message = plan.message.expect("a message");
        let driver_config = channel.driver_config(&target, &settings).expect("config");

        let (peer, results) = channel
            .attempt(
                &job,
                &target,
                vec![("a.test".into(), closed), ("b.test".into(), open)],
                driver_config.clone(),
                message.clone(),
                settings.idle,
            )
            .await
            .expect("the second address answers");
        assert_eq!(peer, open);
        assert_eq!(results.len(), 1);
        assert_eq!(results[0].outcome, Outcome::Accepted);

        let err = channel
            .attempt(
                &job,
                &target,
                vec![("a.test".into(), closed), ("a.test".into(), closed)],
                driver_config,
                message,
                settings.idle,
            )
            .await
            .expect_err("nobody answers");
        let ChannelError::Connection { peer, reason } = err else {
            panic!("{err:?}");
        };
        assert_eq!(peer, "mx.example.org:25");
        assert_eq!(
            reason.matches(&format!("{closed}: ")).count(),
            2,
            "{reason}"
        );
    }
}
