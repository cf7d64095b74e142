//! The running switch: the durable queue, the QMGR driven by a tokio task, the channels, and
//! the SMTP listeners, assembled from a [`Config`].
//!
//! The scheduler loop: take what the QMGR says is due, run each job on its channel in its own
//! task, give the outcome back to the QMGR, and carry out the effects in order (record states,
//! queue notifications, remove finished messages). It sleeps until the next timer or until a
//! message arrives or a job ends.
//!
//! Directory configuration (`[directory]`): a [`DirectorySource`] reads snapshots of the
//! directory's domains, aliases and lists, X.400 routing trees and gateway address rules
//! ([`DirectorySnapshot`]), and a [`DirectoryWatch`] reads one every poll
//! interval on a task of its own, so a slow directory never holds up the caller. The caller
//! (mswitchd's main loop) compares each snapshot with the last one applied, merges a changed
//! one into the file's configuration ([`Config::with_directory`], [`Config::with_x400_trees`],
//! [`Config::with_gateway_rules`]) and applies the result with [`Switch::reload`]; a part of a
//! snapshot that cannot be read is logged and that part of the configuration stays.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mswitch_core::address::{Address, Domain};
use mswitch_core::channel::{
    Channel, ChannelError, ChannelKind, DeliveryJob, DeliveryResult, InboundContext,
    PipelineHandle, Shutdown,
};
use mswitch_core::dsn::{self, DsnRecipient, DsnRequest};
use mswitch_core::envelope::{
    BodyType, ContentType, Envelope, NextHop, Notify, Recipient, ReversePath,
};
use mswitch_core::id::{ChannelId, QueueId};
use mswitch_core::policy::RelayPolicy;
use mswitch_core::qmgr::{
    ChannelLimits, ConnectionGate, Dispatch, Effect, JobResult, Qmgr, QmgrConfig, RetrySchedule,
};
use mswitch_core::route::HostResolver;
use mswitch_core::status::Status;
use mswitch_core::store::QueueStore;
use mswitch_core::submission::{
    ChannelTable, ClientInfo, QueueListener, Service as SubmissionService, SubmissionContext,
    SubmissionLimits, SubmissionPipeline,
};
use mswitch_queue::{DiskQueue, QueueConfig};
use mswitch_route::directory::{DirectorySettings, DirectoryTables};
use mswitch_route::dns::{HickoryConfig, HickoryLookup, MxConfig, MxResolver, NameServers};
use mswitch_route::laser::{
    Ambiguity, CachePolicy, Department, Directory, DirectorySearch, DomainSource, EntryRouting,
    FilterTemplate, HostedDomains, LaserMode, LaserRouter, LdapConfig, LdapDirectory, SimpleBind,
};
use mswitch_route::list::{ListChannel, ListTable};
use mswitch_route::table::TableRouter;
use mswitch_smtp::client::{Mode as ClientMode, TlsPolicy};
use mswitch_smtp::driver::DriverConfig;
use mswitch_smtp::sasl::PasswordFile;
use mswitch_smtp::server::auth_limit::AuthLimiter;
use mswitch_smtp::server::session::AuthConfig;
use mswitch_smtp::server::{Mode as ServerMode, ServerConfig};
use mswitch_smtp::tls::{ClientCertAuth, Verification, client_config, server_config};
use tokio::sync::Notify as Wake;
use tokio::task::JoinHandle;

use crate::config::{
    ChannelType, Config, DirectoryConfig, LaserModeName, LaserSettings, ListenerService, TlsMode,
};
use crate::inbound::{SmtpListener, now};
use crate::maildir::MaildirChannel;

/// Builds a channel of a custom type from its configuration.
pub type ChannelFactory =
    Arc<dyn Fn(&crate::config::Channel, &Config) -> Result<Arc<dyn Channel>, String> + Send + Sync>;

/// The channel types a switch can build: the built-in ones (maildir, smtp, lmtp) and those an
/// embedding program registers.
#[derive(Clone, Default)]
pub struct Registry {
    custom: HashMap<String, ChannelFactory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("custom", &self.custom.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// The built-in channel types only.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a channel type: `[[channel]] type = "<name>"` in the configuration builds its
    /// channels with `factory`, which gets the channel's section (its `settings` table holds
    /// the type's own keys).
    pub fn register(
        &mut self,
        name: &str,
        factory: impl Fn(&crate::config::Channel, &Config) -> Result<Arc<dyn Channel>, String>
        + Send
        + Sync
        + 'static,
    ) {
        self.custom.insert(name.to_owned(), Arc::new(factory));
    }
}

/// Why the switch could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The queue could not be opened or recovered.
    #[error("queue {path}: {message}")]
    Queue {
        /// The queue directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A listener could not bind.
    #[error("listener {name} on {address}: {source}")]
    Bind {
        /// The listener.
        name: String,
        /// Its address.
        address: String,
        /// The error.
        source: std::io::Error,
    },
    /// A channel or listener setting could not be used (a file that does not load, an
    /// unknown channel type).
    #[error("{0}")]
    Setup(String),
}

/// A listener's password file, read again at every reload.
struct UserFile {
    listener: String,
    path: std::path::PathBuf,
    users: RwLock<Arc<PasswordFile>>,
}

impl UserFile {
    fn load(listener: &str, path: &std::path::Path) -> Result<PasswordFile, StartError> {
        match std::fs::read_to_string(path) {
            Ok(text) => PasswordFile::parse(&text).map_err(|e| {
                StartError::Setup(format!("listener {listener}: {}: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(listener, file = %path.display(),
                    "password file not found: no user can authenticate until it exists \
                     (mswitchd --hash-password USER prints a line for it)");
                PasswordFile::parse("").map_err(|e| StartError::Setup(e.to_string()))
            }
            Err(e) => Err(StartError::Setup(format!(
                "listener {listener}: {}: {e}",
                path.display()
            ))),
        }
    }

    fn reload(&self) {
        match UserFile::load(&self.listener, &self.path) {
            Ok(users) => {
                if let Ok(mut u) = self.users.write() {
                    *u = Arc::new(users);
                }
            }
            Err(e) => tracing::error!(error = %e, "password file not reloaded"),
        }
    }

    fn current(&self) -> Option<Arc<PasswordFile>> {
        self.users.read().ok().map(|u| u.clone())
    }
}

impl mswitch_smtp::sasl::Credentials for UserFile {
    fn scram_sha256(&self, authcid: &str) -> Option<mswitch_smtp::sasl::ScramStored> {
        self.current()?.scram_sha256(authcid)
    }

    fn verify_password(&self, authcid: &str, password: &str) -> bool {
        self.current()
            .is_some_and(|u| u.verify_password(authcid, password))
    }
}

/// Tells the QMGR about every queued message, and wakes the scheduler.
struct ToQmgr {
    shared: Arc<Shared>,
}

impl QueueListener for ToQmgr {
    fn queued(&self, id: QueueId, envelope: &Envelope) {
        let effects = match self.shared.qmgr.lock() {
            Ok(mut q) => q.insert(id, envelope.clone(), now()),
            Err(_) => return,
        };
        if !effects.is_empty() {
            let shared = self.shared.clone();
            tokio::spawn(async move { shared.perform(effects).await });
        }
        self.shared.wake.notify_one();
    }
}

/// What the scheduler, the jobs and the listeners share.
struct Shared {
    hostname: RwLock<String>,
    max_lifetime: RwLock<Duration>,
    /// `[x400]`: X.400 messages get X.400 reports.
    x400: RwLock<Option<crate::config::X400Config>>,
    /// The P1 associations in service, shared by the P1 listener and the P1 channels.
    p1_links: Arc<mswitch_x400::channel::Links>,
    /// The user agents bound to the P3 listener, shared with the P3 channels.
    p3_users: Arc<mswitch_x400::channel::BoundUsers>,
    store: Arc<DiskQueue>,
    qmgr: Mutex<Qmgr>,
    wake: Wake,
    channels: RwLock<HashMap<ChannelId, Arc<dyn Channel>>>,
    pipeline: PipelineHandle,
    running_jobs: AtomicUsize,
    jobs_done: Wake,
    stopping: std::sync::atomic::AtomicBool,
    /// metrics: counters and the Prometheus endpoint's source.
    metrics: Arc<crate::metrics::Metrics>,
    /// Listeners an operator has disabled (by name).
    disabled_inbound: Arc<RwLock<std::collections::HashSet<String>>>,
    /// The last attempts of each queued message, for `show`.
    history: Mutex<HashMap<QueueId, std::collections::VecDeque<AttemptEvent>>>,
    /// Delivery events, for `watch` clients.
    events: tokio::sync::broadcast::Sender<serde_json::Value>,
}

/// A running switch. Dropping it does not stop it: call [`Switch::shutdown`].
pub struct Switch {
    shared: Arc<Shared>,
    gate: Arc<Mutex<ConnectionGate>>,
    listeners: Vec<(String, JoinHandle<()>)>,
    scheduler: Option<JoinHandle<()>>,
    registry: Registry,
    config: Config,
    addresses: Vec<std::net::SocketAddr>,
    user_files: Vec<Arc<UserFile>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Switch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switch")
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

fn qmgr_config(config: &Config) -> QmgrConfig {
    let mut channels = HashMap::new();
    for c in &config.channels {
        let d = ChannelLimits::default();
        channels.insert(
            ChannelId::new(&c.name),
            ChannelLimits {
                max_jobs: c.max_jobs.unwrap_or(d.max_jobs.max(64)),
                // With self-tuning, the ceiling of what tuning may reach.
                max_per_peer: c.max_per_peer.unwrap_or(if c.self_tuning {
                    32
                } else {
                    d.max_per_peer
                }),
                self_tuning: c.self_tuning,
            },
        );
    }
    let mut seed = std::collections::hash_map::RandomState::new().build_hasher();
    seed.write_u64(now().0);
    QmgrConfig {
        channels,
        retry: RetrySchedule {
            first: config.retry_first,
            max: config.retry_max,
            factor: config.retry_factor,
            ..RetrySchedule::default()
        },
        max_lifetime: config.max_lifetime,
        delay_warning: config.delay_warning,
        dead_peer_backoff: config.retry_first.min(Duration::from_secs(60)),
        seed: seed.finish(),
        ..QmgrConfig::default()
    }
}

/// The resolver of mail hosts: the hosts table first, then DNS (MX per RFC 5321 §5.1).
/// `None` when no DNS configuration can be made (no resolv.conf and no `[dns]` servers): the
/// channels then resolve host names through the system and cannot follow MX records.
fn build_resolver(config: &Config) -> Option<Arc<dyn HostResolver>> {
    let mut hickory = HickoryConfig::default();
    hickory.name_servers = if config.dns_servers.is_empty() {
        NameServers::System
    } else {
        NameServers::Addresses(config.dns_servers.clone())
    };
    hickory.timeout = config.dns_timeout;
    let lookup = match HickoryLookup::new(&hickory) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e,
                "no DNS configuration: MX routing is off (configure [dns] nameservers)");
            return None;
        }
    };
    let mut mx_config = MxConfig::default();
    mx_config.local_names = vec![config.hostname.clone()];
    let mx = MxResolver::new(lookup, mx_config);
    let table = TableRouter::new(&config.table).ok()?;
    Some(Arc::new(table.hosts().over(Arc::new(mx))))
}

/// The routing table's per-hop settings (TLS, credentials, permanent connections) for one SMTP
/// or LMTP channel.
struct TableOverrides {
    channel: ChannelId,
    table: Arc<TableRouter>,
    verifying: Option<Arc<mswitch_smtp::tls::rustls::ClientConfig>>,
    opportunistic: Option<Arc<mswitch_smtp::tls::rustls::ClientConfig>>,
}

/// How long a "permanent" connection stays open while idle.
const PERMANENT_IDLE: Duration = Duration::from_secs(3600);

impl mswitch_smtp::channel::PeerOverrideLookup for TableOverrides {
    fn overrides(&self, next_hop: &NextHop) -> Option<mswitch_smtp::channel::PeerOverrides> {
        use mswitch_route::table::{SaslSecret, TlsPolicy as RouteTls};
        let settings = self.table.peer_settings(&self.channel, next_hop)?;
        let tls = settings.tls.map(|t| match t {
            RouteTls::None => (TlsPolicy::None, None),
            RouteTls::Opportunistic => (TlsPolicy::Opportunistic, self.opportunistic.clone()),
            RouteTls::Required => (TlsPolicy::Required, self.verifying.clone()),
        });
        let auth = settings.auth.as_ref().and_then(|a| {
            let password = match &a.secret {
                SaslSecret::Password(p) => p.clone(),
                SaslSecret::File(path) => match std::fs::read_to_string(path) {
                    Ok(text) => text.lines().next().unwrap_or_default().to_owned(),
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, hop = %next_hop,
                            "cannot read the password for this peer: no AUTH");
                        return None;
                    }
                },
            };
            Some(mswitch_smtp::client::ClientAuth {
                authcid: a.username.clone(),
                password,
                authzid: a.authzid.clone(),
                allow_plaintext: a.allow_plaintext,
            })
        });
        Some(mswitch_smtp::channel::PeerOverrides {
            tls,
            auth,
            connection_idle: settings.permanent.then_some(PERMANENT_IDLE),
        })
    }
}

fn build_channels(
    config: &Config,
    registry: &Registry,
    pipeline: &PipelineHandle,
    resolver: Option<&Arc<dyn HostResolver>>,
    p1_links: &Arc<mswitch_x400::channel::Links>,
    p3_users: &Arc<mswitch_x400::channel::BoundUsers>,
) -> Result<HashMap<ChannelId, Arc<dyn Channel>>, StartError> {
    let mut out: HashMap<ChannelId, Arc<dyn Channel>> = HashMap::new();
    if !config.lists.is_empty() {
        let id = ChannelId::new(crate::config::LISTS_CHANNEL);
        out.insert(
            id.clone(),
            Arc::new(ListChannel::new(
                id,
                Arc::new(ListTable::new(config.lists.iter().cloned())),
                pipeline.clone(),
                Arc::new(now),
            )),
        );
    }
    let separator = config.table.subaddress_separator.chars().next();
    let table = Arc::new(
        TableRouter::new(&config.table).map_err(|e| StartError::Setup(format!("routing: {e}")))?,
    );
    for c in &config.channels {
        let id = ChannelId::new(&c.name);
        let channel: Arc<dyn Channel> = match &c.kind {
            ChannelType::Maildir => Arc::new(
                MaildirChannel::new(
                    id.clone(),
                    c.path
                        .clone()
                        .unwrap_or_else(|| config.data_dir.join("maildir")),
                    &config.hostname,
                )
                .with_subaddress_separator(separator),
            ),
            ChannelType::Smtp | ChannelType::Lmtp => {
                let mode = if c.kind == ChannelType::Lmtp {
                    ClientMode::Lmtp
                } else {
                    ClientMode::Smtp
                };
                let helo = c.helo.clone().unwrap_or_else(|| config.hostname.clone());
                let mut sc = mswitch_smtp::channel::SmtpChannelConfig::new(id.clone(), mode, helo);
                sc.connect_timeout = c.connect_timeout;
                sc.connection_idle = c.connection_idle;
                sc.resolver = resolver.cloned();
                sc.max_messages_per_connection = c.max_messages_per_connection;
                let verification = match &c.ca_file {
                    Some(path) => Verification::CaFile(std::fs::read(path).map_err(|e| {
                        StartError::Setup(format!(
                            "channel {}: ca_file {}: {e}",
                            c.name,
                            path.display()
                        ))
                    })?),
                    None => Verification::SystemRoots,
                };
                (sc.tls, sc.tls_config) = match c.tls {
                    TlsMode::None => (TlsPolicy::None, None),
                    TlsMode::Opportunistic => (
                        TlsPolicy::Opportunistic,
                        client_config(Verification::NoVerification, None).ok(),
                    ),
                    TlsMode::Required => (
                        TlsPolicy::Required,
                        Some(client_config(verification, None).map_err(|e| {
                            StartError::Setup(format!("channel {}: TLS: {e}", c.name))
                        })?),
                    ),
                };
                if let Some(h) = &c.host {
                    let port = h.port.unwrap_or(sc.default_port);
                    sc.peers.insert(c.name.clone(), (h.host.clone(), port));
                }
                // Named peers of the routing table (a route `peer = "hub"`).
                for (name, peer) in table.named_peers() {
                    sc.peers.entry(name.to_owned()).or_insert_with(|| {
                        (peer.host.clone(), peer.port.unwrap_or(sc.default_port))
                    });
                }
                let verifying = match &c.ca_file {
                    Some(path) => std::fs::read(path)
                        .ok()
                        .and_then(|pem| client_config(Verification::CaFile(pem), None).ok()),
                    None => client_config(Verification::SystemRoots, None).ok(),
                };
                sc.overrides = Some(Arc::new(TableOverrides {
                    channel: id.clone(),
                    table: table.clone(),
                    verifying,
                    opportunistic: client_config(Verification::NoVerification, None).ok(),
                }));
                Arc::new(mswitch_smtp::channel::SmtpChannel::new(sc))
            }
            ChannelType::P1 => match crate::x400::p1_settings(config) {
                Some(settings) => Arc::new(mswitch_x400::channel::P1Channel::new(
                    id.clone(),
                    settings.clone(),
                    p1_links.clone(),
                    mswitch_x400::channel::transfer_handler(
                        ChannelId::new(crate::x400::P1_INBOUND),
                        settings,
                        pipeline.clone(),
                        now,
                    ),
                    now,
                )),
                None => {
                    return Err(StartError::Setup(format!(
                        "channel {}: a p1 channel needs the [x400] section",
                        c.name
                    )));
                }
            },
            ChannelType::Gateway => match (&config.gateway, &config.x400) {
                (Some(tables), Some(x)) => {
                    Arc::new(mswitch_x400::gateway::channel::GatewayChannel::new(
                        id.clone(),
                        tables.clone(),
                        crate::x400::identity(x),
                        config.hostname.clone(),
                        pipeline.clone(),
                        now,
                    ))
                }
                _ => {
                    return Err(StartError::Setup(format!(
                        "channel {}: a gateway channel needs [gateway] and [x400]",
                        c.name
                    )));
                }
            },
            // P3 delivery to bound user agents and message stores.
            ChannelType::P3 => match crate::x400::p3_settings(config) {
                Some(settings) => Arc::new(mswitch_x400::channel::P3DeliveryChannel::new(
                    id.clone(),
                    settings,
                    p3_users.clone(),
                    now,
                )),
                None => {
                    return Err(StartError::Setup(format!(
                        "channel {}: a p3 channel needs the [x400] section",
                        c.name
                    )));
                }
            },
            ChannelType::X400Store => Arc::new(crate::x400store::X400StoreChannel::new(
                id.clone(),
                c.path
                    .clone()
                    .unwrap_or_else(|| config.data_dir.join("x400-store")),
                &config.hostname,
            )),
            ChannelType::Custom(kind) => {
                let factory = registry.custom.get(kind).ok_or_else(|| {
                    StartError::Setup(format!(
                        "channel {}: no channel type {kind:?} is registered (built in: maildir, \
                         smtp, lmtp)",
                        c.name
                    ))
                })?;
                factory(c, config)
                    .map_err(|e| StartError::Setup(format!("channel {}: {e}", c.name)))?
            }
        };
        out.insert(id, channel);
    }
    Ok(out)
}

/// Runs an inbound channel's `serve` until the switch stops.
fn start_inbound(
    channel: Arc<dyn Channel>,
    shared: &Arc<Shared>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut stop = stop.clone();
    let ctx = InboundContext {
        pipeline: shared.pipeline.clone(),
        shutdown: Shutdown::new(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }),
        queue: Arc::new(SwitchQueue(Arc::downgrade(shared))),
    };
    tokio::spawn(async move {
        let id = channel.descriptor().id.clone();
        if let Err(e) = channel.serve(ctx).await {
            tracing::error!(channel = %id, error = %e, "inbound channel stopped");
        }
    })
}

/// The switch's answer to inbound channels' requests about queued messages: decided by the
/// QMGR under its lock, then carried out on the queue.
struct SwitchQueue(std::sync::Weak<Shared>);

impl std::fmt::Debug for SwitchQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SwitchQueue")
    }
}

#[async_trait::async_trait]
impl mswitch_core::channel::QueueControl for SwitchQueue {
    async fn withdraw_deferred(
        &self,
        id: QueueId,
        owner: &str,
        now: mswitch_core::id::Timestamp,
    ) -> Result<(), mswitch_core::channel::WithdrawError> {
        use mswitch_core::channel::WithdrawError;
        let shared = self.0.upgrade().ok_or(WithdrawError::NotQueued)?;
        let effects = shared
            .qmgr
            .lock()
            .map_err(|_| WithdrawError::Queue("the scheduler is unavailable".into()))?
            .withdraw_deferred(id, owner, now)?;
        for e in effects {
            if let Effect::Remove { queue_id } = e {
                if let Ok(mut h) = shared.history.lock() {
                    h.remove(&queue_id);
                }
                if let Err(err) = shared.store.remove(queue_id).await {
                    tracing::error!(queue_id = %queue_id, error = %err,
                        "cannot remove a withdrawn deferred message");
                    return Err(WithdrawError::Queue(err.to_string()));
                }
                tracing::info!(queue_id = %queue_id, owner,
                    "deferred message withdrawn by its originator");
            }
        }
        Ok(())
    }

    async fn retry(&self, id: QueueId, now: mswitch_core::id::Timestamp) -> bool {
        let Some(shared) = self.0.upgrade() else {
            return false;
        };
        let known = shared
            .qmgr
            .lock()
            .map(|mut q| q.retry_message(id, now))
            .unwrap_or(false);
        shared.wake.notify_one();
        known
    }
}

/// Rewrites routes for channels with a fixed peer (LMTP stores): their next hop is the
/// channel's own peer.
struct FixedPeers {
    inner: Arc<dyn mswitch_core::route::Router>,
    fixed: HashMap<ChannelId, String>,
}

#[async_trait::async_trait]
impl mswitch_core::route::Router for FixedPeers {
    async fn route(
        &self,
        address: &Address,
        ctx: mswitch_core::route::RouteContext<'_>,
    ) -> mswitch_core::route::RouteDecision {
        use mswitch_core::route::RouteDecision;
        match self.inner.route(address, ctx).await {
            RouteDecision::Deliver(mut r) => {
                if let Some(peer) = self.fixed.get(&r.channel) {
                    r.next_hop = NextHop::Peer(peer.clone());
                }
                RouteDecision::Deliver(r)
            }
            other => other,
        }
    }
}

fn build_pipeline(
    config: &Config,
    store: Arc<DiskQueue>,
    channels: &HashMap<ChannelId, Arc<dyn Channel>>,
    listener: Arc<dyn QueueListener>,
    resolver: Option<&Arc<dyn HostResolver>>,
) -> Result<SubmissionPipeline, StartError> {
    let mut channel_table = ChannelTable::new();
    for ch in channels.values() {
        channel_table.insert(ch.descriptor().clone());
    }
    let fixed = config
        .channels
        .iter()
        .filter(|c| c.host.is_some())
        .map(|c| (ChannelId::new(&c.name), c.name.clone()))
        .collect();
    let mut table =
        TableRouter::new(&config.table).map_err(|e| StartError::Setup(format!("routing: {e}")))?;
    if config.dns_check_at_rcpt
        && let Some(r) = resolver
    {
        // Only the SMTP channels deliver by MX; other channels take domain routes as names.
        let smtp = config
            .channels
            .iter()
            .filter(|c| c.kind == ChannelType::Smtp)
            .map(|c| ChannelId::new(&c.name));
        table = table.with_resolver(r.clone()).dns_check_channels(smtp);
    }
    let inner: Arc<dyn mswitch_core::route::Router> = match &config.laser {
        Some(l) => Arc::new(build_laser(config, l)?.fallback(Arc::new(table))),
        None => Arc::new(table),
    };
    let inner: Arc<dyn mswitch_core::route::Router> = match &config.x400 {
        Some(x) => Arc::new(
            mswitch_route::x400::X400Router::new(
                x.routing
                    .build()
                    .map_err(|e| StartError::Setup(format!("X.400 routing: {e}")))?,
            )
            .fallback(inner),
        ),
        None => inner,
    };
    let router = FixedPeers { inner, fixed };
    let relay = RelayPolicy {
        trusted_networks: config.trusted_networks.clone(),
        max_message_size: Some(config.max_message_size),
        senders: config.senders.clone(),
    };
    let policy: Arc<dyn mswitch_core::policy::Policy> = match config
        .directory
        .as_ref()
        .and_then(|d| d.sender_filter.as_ref().map(|f| (d, f)))
    {
        Some((d, filter)) => Arc::new(DirectorySenders {
            inner: relay,
            directory: Arc::new(
                LdapDirectory::new(d.ldap.clone())
                    .map_err(|e| StartError::Setup(format!("directory: {e}")))?,
            ),
            base: d.settings.base.clone(),
            filter: filter.clone(),
        }),
        None => Arc::new(relay),
    };
    Ok(
        SubmissionPipeline::new(Arc::new(router), policy, store, channel_table)
            .with_limits(SubmissionLimits {
                max_recipients: config.max_recipients,
                ..SubmissionLimits::default()
            })
            .with_listener(listener),
    )
}

/// The relay policy, with submission senders also looked up in the directory.
struct DirectorySenders {
    inner: RelayPolicy,
    directory: Arc<dyn Directory>,
    base: String,
    filter: String,
}

#[async_trait::async_trait]
impl mswitch_core::policy::Policy for DirectorySenders {
    async fn check_sender(
        &self,
        ctx: &SubmissionContext,
        sender: &ReversePath,
    ) -> mswitch_core::policy::Verdict {
        use mswitch_core::policy::Verdict;
        let verdict = self.inner.check_sender(ctx, sender).await;
        let (Verdict::Reject(refusal), Some(user), Some(mailbox)) =
            (&verdict, &ctx.client.authenticated, sender.mailbox())
        else {
            return verdict;
        };
        if refusal.code == 530 {
            return verdict;
        }
        let filter = self
            .filter
            .replace("{}", &mswitch_route::laser::escape_value(user));
        let wanted = mailbox.to_string().to_lowercase();
        match self
            .directory
            .search(
                &self.base,
                mswitch_route::laser::Scope::Subtree,
                &filter,
                &["mail", "mailLocalAddress"],
            )
            .await
        {
            Ok(entries) => {
                let owned = entries.iter().any(|e| {
                    ["mail", "mailLocalAddress"]
                        .iter()
                        .flat_map(|a| e.values(a))
                        .any(|v| v.trim().to_lowercase() == wanted)
                });
                if owned { Verdict::Accept } else { verdict }
            }
            Err(e) => {
                tracing::warn!(user = %user, error = %e, "cannot check the sender in the directory");
                Verdict::TryLater(Status::new(
                    451,
                    (4, 4, 3),
                    "cannot check the sender address now, try again later",
                ))
            }
        }
    }

    async fn check_recipient(
        &self,
        ctx: &SubmissionContext,
        sender: &ReversePath,
        recipient: &mswitch_core::policy::RecipientCheck<'_>,
    ) -> mswitch_core::policy::Verdict {
        self.inner.check_recipient(ctx, sender, recipient).await
    }

    async fn check_message(
        &self,
        ctx: &SubmissionContext,
        envelope: &Envelope,
    ) -> mswitch_core::policy::Verdict {
        self.inner.check_message(ctx, envelope).await
    }
}

/// The LASER router of `[laser]` (its fallback, the table, is added by the caller).
fn build_laser(config: &Config, l: &LaserSettings) -> Result<LaserRouter, StartError> {
    let setup = |what: &str, e: String| StartError::Setup(format!("laser: {what}: {e}"));
    let directory = |url: &str| -> Result<Arc<dyn Directory>, StartError> {
        let mut c = LdapConfig::new(url);
        if let Some(dn) = &l.bind_dn {
            c.bind = Some(SimpleBind {
                dn: dn.clone(),
                password: l.bind_password.clone().unwrap_or_default(),
            });
        }
        Ok(Arc::new(
            LdapDirectory::new(c).map_err(|e| setup(url, e.to_string()))?,
        ))
    };
    let search = |dir: Arc<dyn Directory>, base: &str| -> Result<DirectorySearch, StartError> {
        let mut s = DirectorySearch::new(dir, base);
        if let Some(f) = &l.filter {
            s = s.filter(FilterTemplate::new(f).map_err(|e| setup("filter", e.to_string()))?);
        }
        Ok(s)
    };
    let domains = || -> Result<Vec<Domain>, StartError> {
        l.domains
            .iter()
            .map(|d| Domain::parse(d).map_err(|e| setup("domains", e.to_string())))
            .collect()
    };
    let host_channel = l
        .host_channel
        .clone()
        .or_else(|| {
            config
                .channels
                .iter()
                .find(|c| c.kind == ChannelType::Smtp)
                .map(|c| c.name.clone())
        })
        .unwrap_or_else(|| "smtp".into());
    let mut routing = EntryRouting::new(ChannelId::new(host_channel)).local_host(&config.hostname);
    if let Some(c) = l
        .local_channel
        .as_ref()
        .or(config.table.local_channel.as_ref())
    {
        routing = routing.default_local(ChannelId::new(c));
    }
    let mode = match l.mode {
        LaserModeName::Single | LaserModeName::Hosted => {
            let url = l.url.as_deref().unwrap_or_default();
            let base = l.base.as_deref().unwrap_or_default();
            let dir = directory(url)?;
            let search = search(dir.clone(), base)?;
            if l.mode == LaserModeName::Single {
                LaserMode::SingleDomain {
                    domains: domains()?,
                    search,
                    routing,
                }
            } else {
                let domains = if l.domains_from_directory {
                    HostedDomains::Directory(DomainSource::new(dir, base))
                } else {
                    HostedDomains::Fixed(domains()?)
                };
                LaserMode::Hosted {
                    domains,
                    search,
                    routing,
                }
            }
        }
        LaserModeName::Boundary => {
            let mut departments = Vec::new();
            for d in &l.department {
                let hp = crate::config::HostPort::parse(&d.server)
                    .ok_or_else(|| setup("department server", d.server.clone()))?;
                departments.push(Department::new(
                    Domain::parse(&d.domain).map_err(|e| setup("department", e.to_string()))?,
                    search(directory(&d.url)?, &d.base)?,
                    ChannelId::new(&d.channel),
                    NextHop::Host {
                        host: hp.host,
                        port: hp.port,
                    },
                ));
            }
            LaserMode::Boundary { departments }
        }
    };
    let ttl = crate::config::duration(l.cache_ttl.as_deref(), Duration::from_secs(60), "")
        .ok()
        .flatten()
        .unwrap_or(Duration::ZERO);
    let policy = CachePolicy {
        positive_ttl: ttl,
        negative_ttl: ttl.min(Duration::from_secs(30)),
        ..CachePolicy::default()
    };
    let ambiguity = if l.ambiguous.as_deref() == Some("defer") {
        Ambiguity::TryLater
    } else {
        Ambiguity::Reject
    };
    Ok(LaserRouter::new(mode).cache(policy).on_ambiguous(ambiguity))
}

fn server_config_for(
    config: &Config,
    l: &crate::config::Listener,
    user_files: &mut Vec<Arc<UserFile>>,
    auth_limiter: &Arc<AuthLimiter>,
) -> Result<DriverConfig, StartError> {
    let mode = match l.service {
        ListenerService::Relay => ServerMode::Smtp,
        ListenerService::Submission => ServerMode::Submission,
    };
    let mut session = ServerConfig::new(config.hostname.clone(), mode);
    session.max_message_size = config.max_message_size;
    session.max_recipients = config.max_recipients;
    session.command_timeout = config.command_timeout;
    session.data_timeout = config.data_timeout;
    session.data_time_limit = config.data_time_limit;
    session.max_junk_commands = config.junk_command_limit;
    let tls = match &l.tls {
        Some((cert, key)) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| {
                    StartError::Setup(format!("listener {}: {}: {e}", l.name, p.display()))
                })
            };
            let (cert, key) = (read(cert)?, read(key)?);
            let cfg = server_config(&cert, &key, ClientCertAuth::None).map_err(|e| {
                StartError::Setup(format!("listener {}: TLS certificate or key: {e}", l.name))
            })?;
            session.starttls = true;
            Some(cfg)
        }
        None => None,
    };
    if let Some(path) = &l.password_file {
        let users = Arc::new(UserFile {
            listener: l.name.clone(),
            path: path.clone(),
            users: RwLock::new(Arc::new(UserFile::load(&l.name, path)?)),
        });
        user_files.push(users.clone());
        let mut auth = AuthConfig::new(users);
        auth.allow_plaintext = l.allow_plaintext_auth;
        auth.limiter = Some(auth_limiter.clone());
        session.auth = Some(auth);
    }
    Ok(DriverConfig { session, tls })
}

impl Switch {
    /// Opens the queue, recovers it into the QMGR, builds the channels, binds the listeners
    /// and starts scheduling.
    pub async fn start(config: Config, registry: Registry) -> Result<Switch, StartError> {
        let qerr = |message: String| StartError::Queue {
            path: config.queue_path.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&config.queue_path).map_err(|e| qerr(e.to_string()))?;
        let mut qc = QueueConfig::new(&config.queue_path);
        qc.reserve = config.queue_reserve_bytes;
        qc.max_message_size = config.max_message_size.saturating_add(64 << 10);
        let store = Arc::new(DiskQueue::open(qc).map_err(|e| qerr(e.to_string()))?);
        let pipeline = PipelineHandle::new(Arc::new(SubmissionPipeline::new(
            Arc::new(mswitch_core::memory::StaticRouter::default()),
            Arc::new(RelayPolicy::default()),
            store.clone(),
            ChannelTable::new(),
        )));
        let resolver = build_resolver(&config);
        let p1_links = mswitch_x400::channel::Links::new();
        let p3_users = mswitch_x400::channel::BoundUsers::new();
        let channels = build_channels(
            &config,
            &registry,
            &pipeline,
            resolver.as_ref(),
            &p1_links,
            &p3_users,
        )?;
        let shared = Arc::new(Shared {
            hostname: RwLock::new(config.hostname.clone()),
            max_lifetime: RwLock::new(config.max_lifetime),
            x400: RwLock::new(config.x400.clone()),
            p1_links: p1_links.clone(),
            p3_users: p3_users.clone(),
            store: store.clone(),
            qmgr: Mutex::new(Qmgr::new(qmgr_config(&config))),
            wake: Wake::new(),
            channels: RwLock::new(channels),
            pipeline,
            running_jobs: AtomicUsize::new(0),
            jobs_done: Wake::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            disabled_inbound: Arc::default(),
            history: Mutex::new(HashMap::new()),
            events: tokio::sync::broadcast::channel(1024).0,
            metrics: Arc::new(crate::metrics::Metrics::new()), // metrics
        });
        let listener: Arc<dyn QueueListener> = Arc::new(ToQmgr {
            shared: shared.clone(),
        });
        {
            let channels = shared.channels.read().map_err(|_| qerr("lock".into()))?;
            let pipeline = build_pipeline(
                &config,
                store.clone(),
                &channels,
                listener,
                resolver.as_ref(),
            )?;
            shared.pipeline.replace(Arc::new(pipeline));
        }
        // Inbound channels of registered types are served like the listeners.
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        // Recovery: every queued message back into the QMGR.
        // Packed: a big queue is never held decoded all at once (the QMGR keeps waiting
        // messages packed).
        let recovered = store.recover_packed().map_err(|e| qerr(e.to_string()))?;
        for q in &recovered.quarantined {
            tracing::error!(location = %q.location, reason = %q.reason,
                "queue recovery quarantined damaged data");
        }
        let count = recovered.messages.len();
        let mut effects = Vec::new();
        if let Ok(mut q) = shared.qmgr.lock() {
            let t = now();
            effects = q.recover(
                recovered.messages.into_iter().map(|m| (m.id, m.envelope)),
                t,
            );
        }
        shared.perform(effects).await;
        tracing::info!(queue = %config.queue_path.display(), messages = count, "queue recovered");

        let gate = Arc::new(Mutex::new(ConnectionGate::new(
            config.max_connections,
            config.max_connections_per_client,
        )));
        let mut listeners = Vec::new();
        let mut addresses = Vec::new();
        let mut user_files = Vec::new();
        // One record of failed AUTH attempts for every listener: a guesser cannot move to
        // another port to start again.
        let auth_limiter = Arc::new(AuthLimiter::new(config.auth_limits));
        for l in &config.listeners {
            let driver = server_config_for(&config, l, &mut user_files, &auth_limiter)?;
            let socket = tokio::net::TcpListener::bind(l.address)
                .await
                .map_err(|source| StartError::Bind {
                    name: l.name.clone(),
                    address: l.address.to_string(),
                    source,
                })?;
            let local = socket.local_addr().map_err(|source| StartError::Bind {
                name: l.name.clone(),
                address: l.address.to_string(),
                source,
            })?;
            addresses.push(local);
            let tls = driver.tls.is_some();
            let auth = driver.session.auth.is_some();
            let channel = SmtpListener::new(
                ChannelId::new(&l.name),
                socket,
                driver,
                match l.service {
                    ListenerService::Relay => SubmissionService::Relay,
                    ListenerService::Submission => SubmissionService::Submission,
                },
                config.hostname.clone(),
                config.max_hops,
                gate.clone(),
            )
            .map_err(|source| StartError::Bind {
                name: l.name.clone(),
                address: l.address.to_string(),
                source,
            })?;
            tracing::info!(listener = %l.name, address = %local, service = ?l.service, tls,
                auth, "listening");
            let channel = channel.with_metrics(shared.metrics.listener(&l.name)); // metrics
            let channel = channel.with_disabled(shared.disabled_inbound.clone());
            let task = start_inbound(Arc::new(channel), &shared, &stop);
            listeners.push((l.name.clone(), task));
        }
        if let Some(x) = &config.x400
            && let Some(address) = x.listen
            && let Some(settings) = crate::x400::p1_settings(&config)
        {
            let bind_err = |source| StartError::Bind {
                name: "p1".into(),
                address: address.to_string(),
                source,
            };
            let socket = tokio::net::TcpListener::bind(address)
                .await
                .map_err(bind_err)?;
            let mut channel = mswitch_x400::channel::P1Listener::new(
                ChannelId::new(crate::x400::P1_INBOUND),
                socket,
                settings,
                shared.p1_links.clone(),
                now,
            )
            .map_err(bind_err)?;
            // `p3_listen` at the same address: P3 on this listener too.
            let p3_settings = crate::x400::p3_settings(&config);
            if x.p3_listen == Some(address)
                && let Some(p3) = p3_settings
            {
                channel = channel.with_p3(
                    ChannelId::new(crate::x400::P3_INBOUND),
                    p3,
                    shared.p3_users.clone(),
                );
                tracing::info!(listener = "p1-in", address = %channel.address(),
                    mta = %x.mta_name, users = x.users.len(), "listening for P1 and P3");
            } else {
                tracing::info!(listener = "p1-in", address = %channel.address(),
                    mta = %x.mta_name, "listening for P1");
            }
            addresses.push(channel.address());
            listeners.push((
                "p1-in".into(),
                start_inbound(Arc::new(channel), &shared, &stop),
            ));
        }
        // The P3 listener (MTS access for user agents), unless it shares the P1 listener.
        if let Some(x) = &config.x400
            && let Some(address) = x.p3_listen
            && x.listen != Some(address)
            && let Some(settings) = crate::x400::p3_settings(&config)
        {
            let bind_err = |source| StartError::Bind {
                name: crate::x400::P3_INBOUND.into(),
                address: address.to_string(),
                source,
            };
            let socket = tokio::net::TcpListener::bind(address)
                .await
                .map_err(bind_err)?;
            let channel = mswitch_x400::channel::P3Listener::new(
                ChannelId::new(crate::x400::P3_INBOUND),
                socket,
                settings,
                shared.p3_users.clone(),
                now,
            )
            .map_err(bind_err)?;
            tracing::info!(listener = crate::x400::P3_INBOUND, address = %channel.address(),
                users = x.users.len(), "listening for P3");
            addresses.push(channel.address());
            listeners.push((
                crate::x400::P3_INBOUND.into(),
                start_inbound(Arc::new(channel), &shared, &stop),
            ));
        }
        let inbound: Vec<Arc<dyn Channel>> = shared
            .channels
            .read()
            .map(|c| {
                c.values()
                    .filter(|ch| ch.descriptor().kind == ChannelKind::Inbound)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for channel in inbound {
            let name = channel.descriptor().id.to_string();
            listeners.push((name, start_inbound(channel, &shared, &stop)));
        }
        // metrics: gauges read from the QMGR and the queue at each scrape; the endpoint.
        let weak = Arc::downgrade(&shared);
        shared.metrics.set_gauges(move || {
            weak.upgrade()
                .map(|s| crate::metrics::Gauges::read(&s.qmgr, &s.store))
                .unwrap_or_default()
        });
        if let Some(m) = &config.metrics {
            let task =
                crate::metrics::spawn_endpoint(m.address, shared.metrics.clone(), stop.clone());
            listeners.push(("metrics".into(), task.await?));
        }
        // agentx: the AgentX subagent (`[snmp]`), answering from the counters and the QMGR.
        if let Some(s) = &config.snmp {
            let weak = Arc::downgrade(&shared);
            let queue = move || {
                weak.upgrade()
                    .map(|s| crate::agentx::QueueFigures::read(&s.qmgr))
                    .unwrap_or_default()
            };
            let source = crate::agentx::Source::new(
                &config,
                &addresses,
                shared.metrics.clone(),
                queue,
                std::time::Instant::now(),
            );
            listeners.push(("snmp".into(), crate::agentx::spawn(s, source, stop.clone())));
        }
        let scheduler = tokio::spawn(shared.clone().schedule());
        Ok(Switch {
            shared,
            gate,
            listeners,
            scheduler: Some(scheduler),
            registry,
            config,
            addresses,
            user_files,
            stop: stop_tx,
        })
    }

    /// The addresses the listeners are bound to, in configuration order (useful with port 0).
    pub fn addresses(&self) -> &[std::net::SocketAddr] {
        &self.addresses
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<DiskQueue> {
        &self.shared.store
    }

    /// metrics: the switch's counters (also served by `[metrics]`).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.shared.metrics
    }

    /// Messages the QMGR holds.
    pub fn queued(&self) -> usize {
        self.shared
            .qmgr
            .lock()
            .map(|q| q.stats().messages)
            .unwrap_or(0)
    }

    /// Makes every deferred recipient due now.
    pub fn retry_now(&self) {
        if let Ok(mut q) = self.shared.qmgr.lock() {
            q.retry_now(None, now());
        }
        self.shared.wake.notify_one();
    }

    /// Applies a new configuration without dropping connections: routing, policy, channels and
    /// scheduling limits change for new transactions and jobs; sessions already open keep the
    /// configuration they started with. Listener addresses, the queue and the host name need a
    /// restart (a change to them is logged and ignored).
    pub fn reload(&mut self, config: Config) -> Result<(), StartError> {
        let resolver = build_resolver(&config);
        let channels = build_channels(
            &config,
            &self.registry,
            &self.shared.pipeline,
            resolver.as_ref(),
            &self.shared.p1_links,
            &self.shared.p3_users,
        )?;
        let listener: Arc<dyn QueueListener> = Arc::new(ToQmgr {
            shared: self.shared.clone(),
        });
        let pipeline = build_pipeline(
            &config,
            self.shared.store.clone(),
            &channels,
            listener,
            resolver.as_ref(),
        )?;
        let same_listeners = config.listeners.len() == self.config.listeners.len()
            && config
                .listeners
                .iter()
                .zip(&self.config.listeners)
                .all(|(a, b)| a.address == b.address && a.service == b.service);
        if !same_listeners || config.queue_path != self.config.queue_path {
            tracing::warn!("listener or queue changes in the new configuration need a restart");
        }
        if let Ok(mut c) = self.shared.channels.write() {
            *c = channels;
        }
        self.shared.pipeline.replace(Arc::new(pipeline));
        if let Ok(mut q) = self.shared.qmgr.lock() {
            q.reconfigure(qmgr_config(&config));
        }
        if let Ok(mut g) = self.gate.lock() {
            g.set_limits(config.max_connections, config.max_connections_per_client);
        }
        if let Ok(mut m) = self.shared.max_lifetime.write() {
            *m = config.max_lifetime;
        }
        if let Ok(mut x) = self.shared.x400.write() {
            *x = config.x400.clone();
        }
        for users in &self.user_files {
            users.reload();
        }
        tracing::info!(configuration = %config.origin, "configuration reloaded");
        self.config = config;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Stops accepting connections, stops starting jobs, waits up to `grace` for running jobs
    /// to finish (their outcomes are recorded), then closes the queue. Sessions in progress
    /// end with the process. Recipients of jobs that did not finish stay queued and are tried
    /// again after a restart.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        for (name, task) in self.listeners.drain(..) {
            let _ = task.await;
            tracing::info!(listener = %name, "stopped listening");
        }
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        if let Some(s) = self.scheduler.take() {
            let _ = s.await;
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.shared.running_jobs.load(Ordering::SeqCst) > 0 {
            let waited = tokio::time::timeout_at(deadline, self.shared.jobs_done.notified()).await;
            if waited.is_err() {
                tracing::warn!(
                    jobs = self.shared.running_jobs.load(Ordering::SeqCst),
                    "jobs still running at shutdown; their recipients stay queued"
                );
                break;
            }
        }
        self.shared.store.close();
        tracing::info!("stopped");
    }
}

/// One read of the directory of `[directory]`. Each part is `None` when it is not configured
/// or could not be read (the failure is logged): the caller keeps what it has for that part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectorySnapshot {
    /// Local domains, aliases and lists.
    pub tables: Option<DirectoryTables>,
    /// The X.400 routing trees (`x400_trees`), in order.
    pub x400_trees: Option<Vec<mswitch_route::x400::X400DirectoryTree>>,
    /// The gateway's address rules (`gateway_base`).
    pub gateway_rules: Option<Vec<crate::gateway_directory::GatewayDirectoryRule>>,
}

impl DirectorySnapshot {
    /// Whether no part could be read.
    pub fn is_empty(&self) -> bool {
        self.tables.is_none() && self.x400_trees.is_none() && self.gateway_rules.is_none()
    }
}

/// The directory of `[directory]`, read into snapshots ([`DirectorySnapshot`]) over one pool
/// of LDAP connections.
pub struct DirectorySource {
    directory: Arc<dyn Directory>,
    settings: DirectorySettings,
    x400: Option<mswitch_route::x400::X400DirectorySettings>,
    gateway_base: Option<String>,
}

impl std::fmt::Debug for DirectorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorySource")
            .field("settings", &self.settings)
            .field("x400", &self.x400)
            .field("gateway_base", &self.gateway_base)
            .finish_non_exhaustive()
    }
}

impl DirectorySource {
    /// The directory `config` names, over LDAP. Nothing is connected until the first read.
    pub fn new(config: &DirectoryConfig) -> Result<DirectorySource, StartError> {
        let ldap = LdapDirectory::new(config.ldap.clone())
            .map_err(|e| StartError::Setup(format!("directory: {e}")))?;
        let mut source = DirectorySource::with_directory(Arc::new(ldap), config.settings.clone());
        source.x400 = config.x400.clone();
        source.gateway_base = config.gateway_base.clone();
        Ok(source)
    }

    /// A source over any [`Directory`] (a fake, in tests), reading domains, aliases and lists.
    pub fn with_directory(directory: Arc<dyn Directory>, settings: DirectorySettings) -> Self {
        DirectorySource {
            directory,
            settings,
            x400: None,
            gateway_base: None,
        }
    }

    /// Reads one snapshot (see [`mswitch_route::directory::load`],
    /// [`mswitch_route::x400::load_trees`], [`crate::gateway_directory::load`]); each part that
    /// cannot be read is logged as a warning naming the problem (for an entry, its DN) and
    /// left `None`.
    pub async fn load(&self) -> DirectorySnapshot {
        let dir = self.directory.as_ref();
        let tables = match mswitch_route::directory::load(dir, &self.settings).await {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e,
                    "cannot read the directory configuration; the current one stays");
                None
            }
        };
        let x400_trees = match &self.x400 {
            Some(x) => match mswitch_route::x400::load_trees(dir, x).await {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e,
                        "cannot read the X.400 routing trees from the directory; the current \
                         ones stay");
                    None
                }
            },
            None => None,
        };
        let gateway_rules = match &self.gateway_base {
            Some(base) => match crate::gateway_directory::load(dir, base).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e,
                        "cannot read the gateway address rules from the directory; the current \
                         ones stay");
                    None
                }
            },
            None => None,
        };
        DirectorySnapshot {
            tables,
            x400_trees,
            gateway_rules,
        }
    }
}

/// Reads a [`DirectorySource`] on a task of its own: once after a first delay, then every
/// poll interval, and hands over every snapshot of which some part could be read (changed or
/// not: the receiver compares). A read that fails entirely is logged, and nothing is handed
/// over. The task ends when the watch is dropped.
#[derive(Debug)]
pub struct DirectoryWatch {
    snapshots: tokio::sync::mpsc::Receiver<DirectorySnapshot>,
    task: JoinHandle<()>,
}

impl DirectoryWatch {
    /// Reads `source` after `first`, then every `every` (`None`: that one time only).
    pub fn spawn(
        source: Arc<DirectorySource>,
        first: Duration,
        every: Option<Duration>,
    ) -> DirectoryWatch {
        let (tx, snapshots) = tokio::sync::mpsc::channel(1);
        let task = tokio::spawn(async move {
            let mut delay = first;
            loop {
                tokio::time::sleep(delay).await;
                let snapshot = source.load().await;
                if !snapshot.is_empty() && tx.send(snapshot).await.is_err() {
                    return;
                }
                match every {
                    Some(d) => delay = d,
                    None => return,
                }
            }
        });
        DirectoryWatch { snapshots, task }
    }

    /// The next snapshot read; `None` once the task has ended (after its one read, without a
    /// poll interval).
    pub async fn next(&mut self) -> Option<DirectorySnapshot> {
        self.snapshots.recv().await
    }
}

impl Drop for DirectoryWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many attempts of a message `show` keeps.
const HISTORY: usize = 20;

/// One recipient's outcome of one attempt, as `show` and `watch` report it. Kept compact (the
/// recipient by index, the reply as its status): a message deferred for days keeps its last
/// [`HISTORY`] of these, and a JSON object each would cost about ten times more.
#[derive(Debug, Clone)]
struct AttemptEvent {
    at: u64,
    attempt: u32,
    channel: ChannelId,
    next_hop: NextHop,
    recipient: usize,
    status: &'static str,
    reply: Option<Status>,
}

impl AttemptEvent {
    /// The event as `show` and `watch` give it.
    fn to_json(&self, queue_id: QueueId, envelope: &Envelope) -> serde_json::Value {
        let recipient = match envelope.recipients.get(self.recipient).map(|r| &r.address) {
            Some(Address::Mailbox(m)) => m.to_string(),
            Some(Address::X400(o)) => o.to_string(),
            None => String::new(),
        };
        serde_json::json!({
            "event": "delivery",
            "queue_id": queue_id.to_string(),
            "at": self.at,
            "attempt": self.attempt,
            "channel": self.channel.to_string(),
            "next_hop": self.next_hop.to_string(),
            "recipient": recipient,
            "status": self.status,
            "reply": self.reply.as_ref().map(|s| format!("{} {} {}", s.code, s.enhanced, s.text)),
        })
    }
}

impl Shared {
    /// Keeps the attempt for `show` and tells `watch` clients.
    fn remember_attempt(&self, d: &Dispatch, result: &JobResult) {
        let t = now();
        let one = |i: usize, status: &'static str, s: Option<&Status>| AttemptEvent {
            at: t.0,
            attempt: d.attempt,
            channel: d.channel.clone(),
            next_hop: d.next_hop.clone(),
            recipient: i,
            status,
            reply: s.cloned(),
        };
        let events: Vec<AttemptEvent> = match result {
            JobResult::Outcomes(list) => list
                .iter()
                .map(|o| match &o.result {
                    DeliveryResult::Delivered(s) => one(o.index, "delivered", Some(s)),
                    DeliveryResult::Relayed(s) | DeliveryResult::RelayedWithoutDsn(s) => {
                        one(o.index, "sent", Some(s))
                    }
                    DeliveryResult::Expanded => one(o.index, "expanded", None),
                    DeliveryResult::TryLater(s) => one(o.index, "deferred", Some(s)),
                    DeliveryResult::Failed(s) => one(o.index, "bounced", Some(s)),
                })
                .collect(),
            JobResult::Unreachable(s) | JobResult::Failed(s) => d
                .recipients
                .iter()
                .map(|&i| one(i, "deferred", Some(s)))
                .collect(),
        };
        // No watcher: no JSON.
        if self.events.receiver_count() > 0 {
            for e in &events {
                let _ = self.events.send(e.to_json(d.queue_id, &d.envelope));
            }
        }
        if let Ok(mut h) = self.history.lock() {
            let list = h.entry(d.queue_id).or_default();
            for e in events {
                list.push_back(e);
                while list.len() > HISTORY {
                    list.pop_front();
                }
            }
        }
    }

    async fn schedule(self: Arc<Self>) {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let t = now();
            let (effects, dispatches, wake_at) = match self.qmgr.lock() {
                Ok(mut q) => {
                    let fx = q.tick(t);
                    let ds: Vec<Dispatch> = std::iter::from_fn(|| q.next_dispatch(t)).collect();
                    (fx, ds, q.next_wakeup())
                }
                Err(_) => return,
            };
            if !effects.is_empty() {
                let me = self.clone();
                tokio::spawn(async move { me.perform(effects).await });
            }
            for d in dispatches {
                self.running_jobs.fetch_add(1, Ordering::SeqCst);
                let me = self.clone();
                tokio::spawn(async move {
                    me.run(d).await;
                    me.running_jobs.fetch_sub(1, Ordering::SeqCst);
                    me.jobs_done.notify_waiters();
                    me.wake.notify_one();
                });
            }
            let sleep = match wake_at {
                Some(at) => Duration::from_millis(at.0.saturating_sub(now().0)),
                None => Duration::from_secs(3600),
            };
            let _ = tokio::time::timeout(sleep, self.wake.notified()).await;
        }
    }

    async fn run(&self, d: Dispatch) {
        let _running = self.metrics.job(&d.channel); // agentx: outbound associations in use
        let channel = self
            .channels
            .read()
            .ok()
            .and_then(|c| c.get(&d.channel).cloned());
        let result = match channel {
            None => JobResult::Failed(Status::new(
                451,
                (4, 3, 5),
                format!("channel {} is not configured", d.channel),
            )),
            Some(channel) => match self.store.content(d.queue_id).await {
                Err(e) => JobResult::Failed(Status::new(
                    451,
                    (4, 3, 0),
                    format!("cannot read the queued message: {e}"),
                )),
                Ok(content) => {
                    let job = DeliveryJob {
                        queue_id: d.queue_id,
                        envelope: d.envelope.clone(),
                        content,
                        recipients: d.recipients.clone(),
                        next_hop: d.next_hop.clone(),
                        attempt: d.attempt,
                    };
                    match channel.deliver(job).await {
                        Ok(outcomes) => JobResult::Outcomes(outcomes),
                        Err(ChannelError::Connection { peer, reason }) => {
                            JobResult::Unreachable(Status::new(
                                451,
                                (4, 4, 1),
                                format!("connection to {peer} failed: {reason}"),
                            ))
                        }
                        Err(e) => JobResult::Failed(Status::new(451, (4, 3, 0), e.to_string())),
                    }
                }
            },
        };
        log_attempt(&d, &result);
        self.metrics.record_attempt(&d, &result, now()); // metrics
        self.remember_attempt(&d, &result);
        let effects = match self.qmgr.lock() {
            Ok(mut q) => q.complete(d.job, result, now()),
            Err(_) => return,
        };
        self.perform(effects).await;
    }

    /// Carries out effects in order.
    async fn perform(&self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Record { queue_id, updates } => {
                    if let Err(err) = self.store.record(queue_id, &updates).await {
                        tracing::error!(queue_id = %queue_id, error = %err,
                            "cannot record delivery states");
                    }
                }
                Effect::Notify {
                    queue_id,
                    envelope,
                    kind,
                    recipients,
                } => self.notify(queue_id, &envelope, kind, recipients).await,
                Effect::NoticeSuppressed {
                    queue_id,
                    kind,
                    recipients,
                } => {
                    tracing::info!(queue_id = %queue_id, kind = ?kind, recipients,
                        "no notice sent: the message came from the null sender");
                }
                Effect::Remove { queue_id } => {
                    if let Ok(mut h) = self.history.lock() {
                        h.remove(&queue_id);
                    }
                    match self.store.remove(queue_id).await {
                        Ok(()) => tracing::info!(queue_id = %queue_id, "removed"),
                        Err(err) => {
                            tracing::error!(queue_id = %queue_id, error = %err, "cannot remove")
                        }
                    }
                }
            }
        }
    }

    async fn notify(
        &self,
        queue_id: QueueId,
        envelope: &Envelope,
        kind: mswitch_core::qmgr::NoticeKind,
        recipients: Vec<mswitch_core::qmgr::NoticeRecipient>,
    ) {
        let content = match self.store.content(queue_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(queue_id = %queue_id, error = %e,
                    "cannot read the message to return with a notice");
                mswitch_core::store::Content::from(Vec::new())
            }
        };
        let t = now();
        if envelope.content_type.family() == mswitch_core::envelope::ContentFamily::X400 {
            self.x400_report(queue_id, envelope, content.as_bytes(), &recipients, t)
                .await;
            return;
        }
        let hostname = self.hostname.read().map(|h| h.clone()).unwrap_or_default();
        let lifetime = self.max_lifetime.read().map(|d| *d).unwrap_or_default();
        let retry_until = envelope
            .expires
            .unwrap_or_else(|| envelope.arrival.saturating_add(lifetime));
        let mut unique = std::collections::hash_map::RandomState::new().build_hasher();
        unique.write_u64(queue_id.0 ^ t.0);
        let req = DsnRequest {
            reporting_mta: &hostname,
            queue_id,
            envelope,
            content: content.as_bytes(),
            recipients: recipients
                .iter()
                .map(|r| {
                    let remote = match &r.remote {
                        Some(NextHop::Host { host, .. }) => Some(host.clone()),
                        Some(NextHop::Domain(d)) => Some(d.clone()),
                        Some(NextHop::Peer(p)) => Some(p.clone()),
                        Some(NextHop::Local) | None => None,
                    };
                    DsnRecipient {
                        index: r.index,
                        action: r.action,
                        status: r.status.clone(),
                        diagnostic_from_peer: remote.is_some(),
                        remote_mta: remote,
                        last_attempt: Some(t),
                        will_retry_until: (r.action == dsn::DsnAction::Delayed)
                            .then_some(retry_until),
                    }
                })
                .collect(),
            now: t,
            unique: unique.finish(),
        };
        let Some(notice) = dsn::build(&req) else {
            tracing::info!(queue_id = %queue_id, kind = ?kind, "no notice can be sent");
            return;
        };
        let mut env = Envelope::new(ReversePath::Null, t);
        env.content_type = ContentType::Internet {
            body: if notice.eight_bit {
                BodyType::EightBitMime
            } else {
                BodyType::SevenBit
            },
            smtputf8: notice.smtputf8,
        };
        let mut rcpt = Recipient::new(Address::Mailbox(notice.to.clone()));
        rcpt.notify = Notify::never();
        env.recipients.push(rcpt);
        let pipeline = self.pipeline.current();
        let ctx = SubmissionContext {
            channel: ChannelId::new("notices"),
            service: SubmissionService::Internal,
            client: ClientInfo::default(),
            now: t,
        };
        let report = pipeline.submit(ctx, env, &notice.content).await;
        match report.outcome {
            Ok(s) => tracing::info!(queue_id = %queue_id, notice = %s.id, kind = ?kind,
                to = %notice.to, "notice queued"),
            Err(r) => tracing::error!(queue_id = %queue_id, kind = ?kind, to = %notice.to,
                reply = %r.status.text, "notice could not be queued"),
        }
    }
}

impl Shared {
    /// An X.400 report (delivery or non-delivery) for an X.400 message, routed to the
    /// originator like any X.400 message. X.400 has no delay notices: those are skipped.
    async fn x400_report(
        &self,
        queue_id: QueueId,
        envelope: &Envelope,
        content: &[u8],
        recipients: &[mswitch_core::qmgr::NoticeRecipient],
        t: mswitch_core::id::Timestamp,
    ) {
        let Some(x) = self.x400.read().ok().and_then(|x| x.clone()) else {
            tracing::warn!(queue_id = %queue_id,
                "no X.400 report sent: [x400] is not configured");
            return;
        };
        let req = crate::x400::ReportRequest {
            envelope,
            content,
            recipients: recipients
                .iter()
                .filter(|r| matches!(r.action, dsn::DsnAction::Failed | dsn::DsnAction::Delivered))
                .map(|r| {
                    (
                        r.index,
                        r.action == dsn::DsnAction::Delivered,
                        r.status.clone(),
                    )
                })
                .collect(),
        };
        if req.recipients.is_empty() {
            return;
        }
        match crate::x400::report(&x, &req, t) {
            Ok(Some((env, apdu))) => {
                let ctx = SubmissionContext {
                    channel: ChannelId::new("notices"),
                    service: SubmissionService::Internal,
                    client: ClientInfo::default(),
                    now: t,
                };
                let report = self.pipeline.current().submit(ctx, env, &apdu).await;
                match report.outcome {
                    Ok(s) => tracing::info!(queue_id = %queue_id, report = %s.id,
                        "X.400 report queued"),
                    Err(r) => tracing::error!(queue_id = %queue_id, reply = %r.status.text,
                        "X.400 report could not be queued"),
                }
            }
            Ok(None) => tracing::info!(queue_id = %queue_id, "no X.400 report is due"),
            Err(e) => tracing::error!(queue_id = %queue_id, error = %e,
                "cannot build the X.400 report"),
        }
    }
}

fn log_attempt(d: &Dispatch, result: &JobResult) {
    let delay = now().since(d.envelope.arrival).as_secs_f64();
    let rcpt = |i: usize| match d.envelope.recipients.get(i).map(|r| &r.address) {
        Some(Address::Mailbox(m)) => format!("<{m}>"),
        Some(Address::X400(o)) => format!("<{o}>"),
        None => "?".into(),
    };
    let line = |i: usize, status: &str, s: &Status| {
        tracing::info!(
            queue_id = %d.queue_id,
            to = %rcpt(i),
            channel = %d.channel,
            relay = %d.next_hop,
            attempt = d.attempt,
            delay = format_args!("{delay:.2}"),
            status,
            code = s.code,
            dsn = %s.enhanced,
            reply = %s.text,
            "delivery"
        );
    };
    match result {
        JobResult::Outcomes(list) => {
            for o in list {
                match &o.result {
                    DeliveryResult::Delivered(s) => line(o.index, "delivered", s),
                    DeliveryResult::Relayed(s) | DeliveryResult::RelayedWithoutDsn(s) => {
                        line(o.index, "sent", s)
                    }
                    DeliveryResult::Expanded => line(
                        o.index,
                        "expanded",
                        &Status::new(250, (2, 0, 0), "expanded"),
                    ),
                    DeliveryResult::TryLater(s) => line(o.index, "deferred", s),
                    DeliveryResult::Failed(s) => line(o.index, "bounced", s),
                }
            }
        }
        JobResult::Unreachable(s) | JobResult::Failed(s) => {
            for &i in &d.recipients {
                line(i, "deferred", s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use async_trait::async_trait;
    use mswitch_route::laser::{DirectoryError, Entry, Scope};

    use super::*;

    /// A walk over the queue for management sees every message once, with its hold flag,
    /// across several batches of the lock.
    #[test]
    fn each_queued_walks_every_message_in_batches() {
        use mswitch_core::id::Timestamp;
        let qmgr = Mutex::new(Qmgr::new(QmgrConfig::default()));
        let n = 2 * WALK_BATCH as u64 + 17;
        {
            let mut q = qmgr.lock().expect("qmgr");
            for i in 0..n {
                let mut env = Envelope::new(ReversePath::Null, Timestamp(1_000 + i));
                let mut r = Recipient::new(Address::Mailbox(
                    mswitch_core::address::Mailbox::parse("a@example.org").expect("mailbox"),
                ));
                r.route = Some(mswitch_core::envelope::Route {
                    channel: ChannelId::new("smtp"),
                    next_hop: NextHop::Host {
                        host: "mx.example.org".into(),
                        port: None,
                    },
                    local: false,
                });
                env.recipients.push(r);
                q.insert(QueueId(i), env, Timestamp(1_000));
            }
            for i in [0, WALK_BATCH as u64, n - 1] {
                assert!(q.hold(QueueId(i)));
            }
        }
        let mut seen = std::collections::HashMap::new();
        each_queued(&qmgr, |id, env, held| {
            assert_eq!(env.arrival, Timestamp(1_000 + id.0));
            assert!(seen.insert(id.0, held).is_none(), "{id} seen twice");
        });
        assert_eq!(seen.len() as u64, n);
        let held: std::collections::BTreeSet<u64> =
            seen.iter().filter(|(_, h)| **h).map(|(i, _)| *i).collect();
        assert_eq!(held, [0, WALK_BATCH as u64, n - 1].into_iter().collect());
    }

    /// A directory whose domain entries say how many times it was searched for them, and
    /// that fails its second read.
    #[derive(Default)]
    struct Counting {
        reads: AtomicUsize,
    }

    #[async_trait]
    impl Directory for Counting {
        async fn search(
            &self,
            _base: &str,
            _scope: Scope,
            filter: &str,
            _attributes: &[&str],
        ) -> Result<Vec<Entry>, DirectoryError> {
            if filter != DirectorySettings::DOMAIN_FILTER {
                return Ok(Vec::new());
            }
            let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 2 {
                return Err(DirectoryError::Unavailable("connection refused".into()));
            }
            Ok(vec![
                Entry::new("ou=d,dc=x").with("associatedDomain", [format!("d{n}.test")]),
            ])
        }
    }

    fn source(dir: Arc<Counting>) -> Arc<DirectorySource> {
        Arc::new(DirectorySource::with_directory(
            dir,
            DirectorySettings::new("dc=x"),
        ))
    }

    async fn next(watch: &mut DirectoryWatch) -> Option<DirectorySnapshot> {
        tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("a snapshot in time")
    }

    #[tokio::test]
    async fn a_watch_reads_every_interval_and_skips_failed_reads() {
        let dir = Arc::new(Counting::default());
        let mut watch = DirectoryWatch::spawn(
            source(dir.clone()),
            Duration::ZERO,
            Some(Duration::from_millis(20)),
        );
        let domains = |t: Option<DirectorySnapshot>| {
            t.expect("a snapshot")
                .tables
                .expect("domains read")
                .local_domains
        };
        assert_eq!(domains(next(&mut watch).await), ["d1.test"]);
        // The second read failed: nothing was handed over for it.
        assert_eq!(domains(next(&mut watch).await), ["d3.test"]);
        assert_eq!(domains(next(&mut watch).await), ["d4.test"]);
        drop(watch);
        let after = dir.reads.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            dir.reads.load(Ordering::SeqCst) <= after + 1,
            "a dropped watch stops reading"
        );
    }

    #[tokio::test]
    async fn without_an_interval_a_watch_reads_once() {
        let dir = Arc::new(Counting::default());
        let mut watch = DirectoryWatch::spawn(source(dir.clone()), Duration::ZERO, None);
        let first = next(&mut watch).await.expect("a snapshot");
        assert_eq!(first.tables.expect("read").local_domains, ["d1.test"]);
        assert_eq!(next(&mut watch).await, None, "the task has ended");
        assert_eq!(dir.reads.load(Ordering::SeqCst), 1);
    }
}

/// What an operator sees and does: the management operations, answered from the QMGR's
/// in-memory state (never by reading the queue files). Cheap to clone.
#[derive(Clone)]
pub struct Management {
    shared: Arc<Shared>,
    listeners: Arc<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Management")
    }
}

/// One recipient of a queued message, for management.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecipientView {
    /// The address.
    pub address: String,
    /// `pending`, `deferred`, `delivered`, `relayed`, `expanded` or `failed`.
    pub state: &'static str,
    /// The channel it is routed to.
    pub channel: Option<String>,
    /// Its next hop.
    pub next_hop: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due (ms since the epoch).
    pub next_attempt: Option<u64>,
    /// The last reply or error.
    pub last: Option<String>,
}

/// A queued message, for management.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageView {
    /// Its queue id.
    pub id: String,
    /// The envelope sender (`<>` for the null sender).
    pub from: String,
    /// Its priority.
    pub priority: String,
    /// Arrival (ms since the epoch).
    pub arrival: u64,
    /// Seconds in the queue.
    pub age: u64,
    /// Size in octets.
    pub size: u64,
    /// On hold.
    pub held: bool,
    /// Its recipients.
    pub recipients: Vec<RecipientView>,
    /// Its last attempts (with `show`), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<serde_json::Value>,
}

/// Which messages to list.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageFilter {
    /// Only those with a pending recipient routed through this channel.
    pub channel: Option<String>,
    /// Only those with a pending recipient going to this next hop (as shown).
    pub peer: Option<String>,
    /// Only those with a recipient in this domain.
    pub domain: Option<String>,
    /// Only those whose sender contains this text (case-insensitive).
    pub sender: Option<String>,
    /// Only those with a recipient containing this text (case-insensitive).
    pub recipient: Option<String>,
    /// Only those at least this many seconds old.
    pub min_age: Option<u64>,
    /// Only those of this priority (`normal`, `urgent`...: as shown).
    pub priority: Option<String>,
    /// Only held (true) or not held (false) messages.
    pub held: Option<bool>,
    /// Only messages with a deferred recipient.
    pub deferred: Option<bool>,
}

/// A change to a channel's operator controls (every field optional).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelChange {
    /// Enable (true) or disable (false) outbound delivery.
    pub outbound: Option<bool>,
    /// Enable or disable a listener (new connections get 421 while disabled).
    pub inbound: Option<bool>,
    /// Start nothing for this many seconds (0 clears the delay).
    pub delay: Option<u64>,
    /// Start only messages of at least this priority (`none` clears it).
    pub min_priority: Option<String>,
    /// Fail every waiting message of the channel now (5.4.7, with notices).
    pub time_out: bool,
}

fn parse_priority(p: &str) -> Option<mswitch_core::envelope::Priority> {
    mswitch_core::envelope::Priority::ALL
        .into_iter()
        .find(|x| format!("{x:?}").eq_ignore_ascii_case(p))
}

/// Why a management operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagementError {
    /// No such channel, listener or peer.
    #[error("no channel {0}")]
    NoChannel(String),
    /// Not a priority name.
    #[error(
        "{0:?} is not a priority (deferred, routine, normal, immediate, flash, override, none)"
    )]
    BadPriority(String),
    /// Not an address.
    #[error("not an address: {0}")]
    BadAddress(String),
    /// The operation failed.
    #[error("{0}")]
    Failed(String),
    /// No such message.
    #[error("no message {0} in the queue")]
    NotFound(String),
    /// The id is not a queue id.
    #[error("{0:?} is not a queue id (16 hexadecimal digits)")]
    BadId(String),
    /// A delivery of the message is running; try again in a moment.
    #[error("message {0} is being delivered now; try again")]
    Busy(String),
}

fn parse_id(id: &str) -> Result<QueueId, ManagementError> {
    u64::from_str_radix(id.trim(), 16)
        .map(QueueId)
        .map_err(|_| ManagementError::BadId(id.to_owned()))
}

fn view(id: QueueId, env: &Envelope, held: bool, t: mswitch_core::id::Timestamp) -> MessageView {
    use mswitch_core::envelope::RecipientState as S;
    MessageView {
        id: id.to_string(),
        from: match env.originator.mailbox() {
            Some(m) => format!("<{m}>"),
            None => "<>".into(),
        },
        priority: format!("{:?}", env.priority).to_lowercase(),
        arrival: env.arrival.0,
        age: t.since(env.arrival).as_secs(),
        size: env.size,
        held,
        recipients: env
            .recipients
            .iter()
            .map(|r| {
                let (state, attempts, next, last) = match &r.state {
                    S::Pending => ("pending", 0, None, None),
                    S::Deferred {
                        attempts,
                        next_attempt,
                        last,
                    } => (
                        "deferred",
                        *attempts,
                        Some(next_attempt.0),
                        Some(format!("{} {} {}", last.code, last.enhanced, last.text)),
                    ),
                    S::Delivered { status, .. } => {
                        ("delivered", 0, None, Some(status.text.clone()))
                    }
                    S::Relayed { status, .. } => ("relayed", 0, None, Some(status.text.clone())),
                    S::Expanded { .. } => ("expanded", 0, None, None),
                    S::Failed { status, .. } => (
                        "failed",
                        0,
                        None,
                        Some(format!(
                            "{} {} {}",
                            status.code, status.enhanced, status.text
                        )),
                    ),
                };
                RecipientView {
                    address: match &r.address {
                        Address::Mailbox(m) => m.to_string(),
                        Address::X400(o) => o.to_string(),
                    },
                    state,
                    channel: r.route.as_ref().map(|x| x.channel.to_string()),
                    next_hop: r.route.as_ref().map(|x| x.next_hop.to_string()),
                    attempts,
                    next_attempt: next,
                    last,
                }
            })
            .collect(),
        attempts: Vec::new(),
    }
}

fn matches(v: &MessageView, f: &MessageFilter) -> bool {
    let pending = |r: &&RecipientView| matches!(r.state, "pending" | "deferred");
    let lower = |s: &str| s.to_lowercase();
    f.channel.as_ref().is_none_or(|c| {
        v.recipients
            .iter()
            .filter(pending)
            .any(|r| r.channel.as_deref() == Some(c.as_str()))
    }) && f.peer.as_ref().is_none_or(|p| {
        v.recipients
            .iter()
            .filter(pending)
            .any(|r| r.next_hop.as_deref() == Some(p.as_str()))
    }) && f.domain.as_ref().is_none_or(|d| {
        let d = lower(d);
        v.recipients
            .iter()
            .any(|r| lower(&r.address).ends_with(&format!("@{d}")))
    }) && f
        .sender
        .as_ref()
        .is_none_or(|s| lower(&v.from).contains(&lower(s)))
        && f.recipient.as_ref().is_none_or(|s| {
            v.recipients
                .iter()
                .any(|r| lower(&r.address).contains(&lower(s)))
        })
        && f.min_age.is_none_or(|a| v.age >= a)
        && f.priority.as_ref().is_none_or(|p| lower(p) == v.priority)
        && f.held.is_none_or(|h| h == v.held)
        && f.deferred
            .is_none_or(|d| d == v.recipients.iter().any(|r| r.state == "deferred"))
}

/// Counts for the queue summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct QueueSummary {
    /// Messages queued.
    pub messages: usize,
    /// Recipients not yet final.
    pub recipients: usize,
    /// Messages on hold.
    pub held: usize,
    /// Jobs running.
    pub in_flight: usize,
    /// Pending recipients by channel.
    pub by_channel: std::collections::BTreeMap<String, usize>,
    /// Pending recipients by next hop.
    pub by_peer: std::collections::BTreeMap<String, usize>,
    /// Messages by priority.
    pub by_priority: std::collections::BTreeMap<String, usize>,
    /// Pending recipients by state (`pending`, `deferred`).
    pub by_state: std::collections::BTreeMap<String, usize>,
    /// Messages by age: `<1m`, `<1h`, `<1d`, `>=1d`.
    pub by_age: std::collections::BTreeMap<String, usize>,
}

impl Switch {
    /// The management operations of this switch.
    pub fn management(&self) -> Management {
        Management {
            shared: self.shared.clone(),
            listeners: Arc::new(
                self.config
                    .listeners
                    .iter()
                    .map(|l| l.name.clone())
                    .collect(),
            ),
        }
    }
}

/// Messages looked at per hold of the QMGR's lock when a management request walks the whole
/// queue: the scheduler waits at most one batch (a few milliseconds), not the whole walk
/// (about two seconds at a million messages).
const WALK_BATCH: usize = 1024;

/// Calls `f` with every queued message, its envelope and whether it is on hold, a batch of
/// [`WALK_BATCH`] at a time under the QMGR's lock. Not a snapshot: a message that leaves
/// during the walk may be skipped, one that arrives is not seen.
pub(crate) fn each_queued(qmgr: &Mutex<Qmgr>, mut f: impl FnMut(QueueId, &Envelope, bool)) {
    let ids = match qmgr.lock() {
        Ok(q) => q.queue_ids(),
        Err(_) => return,
    };
    for batch in ids.chunks(WALK_BATCH) {
        let Ok(q) = qmgr.lock() else {
            return;
        };
        for &id in batch {
            q.with_envelope(id, |env, held| f(id, env, held));
        }
    }
}

impl Management {
    /// Counts by channel, peer, priority, state and age.
    pub fn summary(&self) -> QueueSummary {
        let mut s = QueueSummary::default();
        let t = now();
        if let Ok(q) = self.shared.qmgr.lock() {
            s.in_flight = q.stats().in_flight;
        }
        // One message at a time: the views of a big queue all at once would take more memory
        // than the queue itself, and leave it behind fragmented.
        let mut hop = String::new();
        each_queued(&self.shared.qmgr, |_, env, held| {
            s.count(env, held, t, &mut hop)
        });
        s
    }
}

impl QueueSummary {
    /// Adds one message, counted as its [`MessageView`] shows it, without building the view
    /// (its strings, for each of a million messages, were most of the time a summary took).
    fn count(
        &mut self,
        env: &mswitch_core::Envelope,
        held: bool,
        t: mswitch_core::id::Timestamp,
        hop: &mut String,
    ) {
        use mswitch_core::envelope::RecipientState as S;
        use std::fmt::Write as _;
        fn add(map: &mut std::collections::BTreeMap<String, usize>, key: &str) {
            match map.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    map.insert(key.to_owned(), 1);
                }
            }
        }
        self.messages += 1;
        if held {
            self.held += 1;
        }
        hop.clear();
        let _ = write!(hop, "{:?}", env.priority);
        hop.make_ascii_lowercase();
        add(&mut self.by_priority, hop);
        let age = match t.since(env.arrival).as_secs() {
            a if a < 60 => "<1m",
            a if a < 3600 => "<1h",
            a if a < 86400 => "<1d",
            _ => ">=1d",
        };
        add(&mut self.by_age, age);
        for r in &env.recipients {
            let state = match r.state {
                S::Pending => "pending",
                S::Deferred { .. } => "deferred",
                _ => continue,
            };
            self.recipients += 1;
            add(&mut self.by_state, state);
            if let Some(route) = &r.route {
                add(&mut self.by_channel, route.channel.as_str());
                hop.clear();
                let _ = write!(hop, "{}", route.next_hop);
                add(&mut self.by_peer, hop);
            }
        }
    }
}

impl Management {
    /// Messages matching `filter`, oldest first, from `offset`, at most `limit`; and how many
    /// match in all.
    pub fn list(
        &self,
        filter: &MessageFilter,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<MessageView>) {
        // The matching messages are kept as (arrival, id) only, and views built again for the
        // page: a million views at once would take more memory than the queue itself.
        let t = now();
        let mut matching: Vec<(mswitch_core::id::Timestamp, QueueId)> = Vec::new();
        each_queued(&self.shared.qmgr, |id, env, held| {
            if matches(&view(id, env, held, t), filter) {
                matching.push((env.arrival, id));
            }
        });
        matching.sort_unstable();
        let total = matching.len();
        let page: Vec<QueueId> = matching
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(_, id)| id)
            .collect();
        let mut views = Vec::with_capacity(page.len());
        if let Ok(q) = self.shared.qmgr.lock() {
            for id in page {
                q.with_envelope(id, |env, held| views.push(view(id, env, held, t)));
            }
        }
        (total, views)
    }

    /// One message.
    pub fn show(&self, id: &str) -> Result<MessageView, ManagementError> {
        let qid = parse_id(id)?;
        let q = self
            .shared
            .qmgr
            .lock()
            .map_err(|_| ManagementError::NotFound(id.into()))?;
        let env = q
            .envelope(qid)
            .ok_or_else(|| ManagementError::NotFound(id.into()))?;
        let mut v = view(qid, &env, q.is_held(qid).unwrap_or(false), now());
        drop(q);
        v.attempts = self
            .shared
            .history
            .lock()
            .ok()
            .and_then(|h| {
                h.get(&qid)
                    .map(|l| l.iter().map(|e| e.to_json(qid, &env)).collect())
            })
            .unwrap_or_default();
        Ok(v)
    }

    /// Delivery events as they happen (each attempt's outcome per recipient).
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<serde_json::Value> {
        self.shared.events.subscribe()
    }

    /// Puts a message on hold.
    pub fn hold(&self, id: &str) -> Result<(), ManagementError> {
        let qid = parse_id(id)?;
        let held = self
            .shared
            .qmgr
            .lock()
            .map(|mut q| q.hold(qid))
            .unwrap_or(false);
        if held {
            tracing::info!(queue_id = %qid, "held by an operator");
            Ok(())
        } else {
            Err(ManagementError::NotFound(id.into()))
        }
    }

    /// Releases a held message.
    pub fn release(&self, id: &str) -> Result<(), ManagementError> {
        let qid = parse_id(id)?;
        let ok = self
            .shared
            .qmgr
            .lock()
            .map(|mut q| q.release(qid, now()))
            .unwrap_or(false);
        self.shared.wake.notify_one();
        if ok {
            tracing::info!(queue_id = %qid, "released by an operator");
            Ok(())
        } else {
            Err(ManagementError::NotFound(id.into()))
        }
    }

    /// Retries one message now, or every deferred message (`id` None).
    pub fn retry(&self, id: Option<&str>) -> Result<usize, ManagementError> {
        let t = now();
        let n = match id {
            Some(id) => {
                let qid = parse_id(id)?;
                let ok = self
                    .shared
                    .qmgr
                    .lock()
                    .map(|mut q| q.retry_message(qid, t))
                    .unwrap_or(false);
                if !ok {
                    return Err(ManagementError::NotFound(id.into()));
                }
                1
            }
            None => self
                .shared
                .qmgr
                .lock()
                .map(|mut q| q.retry_now(None, t))
                .unwrap_or(0),
        };
        self.shared.wake.notify_one();
        Ok(n)
    }

    /// Changes a channel's operator controls; returns its settings afterwards. `name` is an
    /// outbound channel (delivery controls) or a listener (`inbound`).
    pub async fn channel(
        &self,
        name: &str,
        change: &ChannelChange,
    ) -> Result<serde_json::Value, ManagementError> {
        let id = ChannelId::new(name);
        let is_channel = self
            .shared
            .channels
            .read()
            .is_ok_and(|c| c.contains_key(&id));
        let is_listener = self.listeners.contains(name);
        if !is_channel && !is_listener {
            return Err(ManagementError::NoChannel(name.into()));
        }
        if let Some(enabled) = change.inbound {
            if !is_listener {
                return Err(ManagementError::NoChannel(format!(
                    "{name} (no such listener)"
                )));
            }
            if let Ok(mut d) = self.shared.disabled_inbound.write() {
                if enabled {
                    d.remove(name);
                } else {
                    d.insert(name.to_owned());
                }
            }
            tracing::info!(listener = %name, enabled, "inbound changed by an operator");
        }
        let t = now();
        let mut effects = Vec::new();
        if let Ok(mut q) = self.shared.qmgr.lock() {
            if let Some(enabled) = change.outbound {
                q.set_channel_enabled(&id, enabled);
                tracing::info!(channel = %name, enabled, "outbound changed by an operator");
            }
            if let Some(secs) = change.delay {
                let until = (secs > 0).then(|| t.saturating_add(Duration::from_secs(secs)));
                q.set_channel_delay(&id, until);
            }
            if let Some(p) = &change.min_priority {
                let min = if p == "none" {
                    None
                } else {
                    Some(parse_priority(p).ok_or_else(|| ManagementError::BadPriority(p.clone()))?)
                };
                q.set_channel_min_priority(&id, min);
            }
            if change.time_out {
                effects = q.fail_channel(
                    &id,
                    Status::new(554, (5, 4, 7), "timed out by the postmaster"),
                    t,
                );
                tracing::info!(channel = %name, "all its messages timed out by an operator");
            }
        }
        self.shared.perform(effects).await;
        self.shared.wake.notify_one();
        let (enabled, until, min) = self
            .shared
            .qmgr
            .lock()
            .map(|q| q.channel_controls(&id))
            .unwrap_or((true, None, None));
        let inbound = !self
            .shared
            .disabled_inbound
            .read()
            .is_ok_and(|d| d.contains(name));
        Ok(serde_json::json!({
            "channel": name,
            "outbound_enabled": enabled,
            "inbound_enabled": inbound,
            "delayed_until": until.map(|u| u.0),
            "min_priority": min.map(|p| format!("{p:?}").to_lowercase()),
        }))
    }

    /// Retries every deferred message for one channel and next hop (as `summary` shows it:
    /// `[host]:port`, `mx:domain`, ...), forgetting its dead-peer back-off.
    pub fn retry_peer(&self, channel: &str, peer: &str) -> Result<usize, ManagementError> {
        let id = ChannelId::new(channel);
        let t = now();
        let n = {
            let Ok(mut q) = self.shared.qmgr.lock() else {
                return Ok(0);
            };
            let hop = q
                .peers()
                .into_iter()
                .find(|(c, h, _, _)| c == &id && h.to_string() == peer)
                .map(|(_, h, _, _)| h)
                .ok_or_else(|| ManagementError::NoChannel(format!("{channel} to {peer}")))?;
            q.retry_now(Some((&id, &hop)), t)
        };
        self.shared.wake.notify_one();
        Ok(n)
    }

    /// Redirects one recipient of a message to another address: a copy of the message is
    /// queued for `to` (routed like any new recipient), and the recipient is settled as
    /// expanded (redirected).
    pub async fn redirect(
        &self,
        id: &str,
        recipient: &str,
        to: &str,
    ) -> Result<String, ManagementError> {
        let qid = parse_id(id)?;
        let to_mailbox = mswitch_core::address::Mailbox::parse(to)
            .map_err(|e| ManagementError::BadAddress(format!("{to}: {e}")))?;
        let (envelope, index) = {
            let q = self
                .shared
                .qmgr
                .lock()
                .map_err(|_| ManagementError::NotFound(id.into()))?;
            let env = q
                .envelope(qid)
                .ok_or_else(|| ManagementError::NotFound(id.into()))?;
            if q.in_flight(qid) {
                return Err(ManagementError::Busy(id.into()));
            }
            let wanted = recipient.to_lowercase();
            let index = env
                .recipients
                .iter()
                .position(|r| {
                    !r.state.is_final()
                        && matches!(&r.address, Address::Mailbox(m) if m.to_string().to_lowercase() == wanted)
                })
                .ok_or_else(|| {
                    ManagementError::NotFound(format!("{id}: no pending recipient {recipient}"))
                })?;
            (env, index)
        };
        let content = self
            .shared
            .store
            .content(qid)
            .await
            .map_err(|e| ManagementError::Failed(e.to_string()))?;
        let t = now();
        let mut copy = Envelope::new(envelope.originator.clone(), t);
        copy.priority = envelope.priority;
        copy.content_type = envelope.content_type.clone();
        copy.dsn_ret = envelope.dsn_ret;
        copy.dsn_envid = envelope.dsn_envid.clone();
        copy.trace = envelope.trace.clone();
        copy.expansions = envelope.expansions.clone();
        let mut r = Recipient::new(Address::Mailbox(to_mailbox));
        r.notify = envelope.recipients[index].notify;
        r.original = envelope.recipients[index].original.clone();
        copy.recipients.push(r);
        let ctx = SubmissionContext {
            channel: ChannelId::new("management"),
            service: SubmissionService::Internal,
            client: ClientInfo::default(),
            now: t,
        };
        let report = self
            .shared
            .pipeline
            .current()
            .submit(ctx, copy, content.as_bytes())
            .await;
        let submitted = report
            .outcome
            .map_err(|r| ManagementError::Failed(format!("{to}: {}", r.status)))?;
        let effects = self
            .shared
            .qmgr
            .lock()
            .ok()
            .and_then(|mut q| q.settle_recipient(qid, index, DeliveryResult::Expanded, now()))
            .unwrap_or_default();
        self.shared.perform(effects).await;
        tracing::info!(queue_id = %qid, recipient, to, new_queue_id = %submitted.id,
            "recipient redirected by an operator");
        Ok(submitted.id.to_string())
    }

    /// Every peer the QMGR knows: jobs running, resting after failures, and self-tuning's
    /// current limit and why.
    pub fn peers(&self) -> serde_json::Value {
        let Ok(q) = self.shared.qmgr.lock() else {
            return serde_json::json!([]);
        };
        let tuning = q.tuning();
        let list: Vec<serde_json::Value> = q
            .peers()
            .into_iter()
            .map(|(c, h, active, resting)| {
                let t = tuning.iter().find(|t| t.channel == c && t.next_hop == h);
                serde_json::json!({
                    "channel": c.to_string(),
                    "peer": h.to_string(),
                    "active": active,
                    "resting": resting,
                    "limit": t.map(|t| t.limit),
                    "pinned": t.map(|t| t.pinned),
                    "rate": t.and_then(|t| t.rate),
                    "reason": t.map(|t| t.reason),
                })
            })
            .collect();
        serde_json::Value::Array(list)
    }

    /// Pins a self-tuned peer's concurrency, or (`None`) lets tuning decide again.
    pub fn pin(
        &self,
        channel: &str,
        peer: &str,
        limit: Option<usize>,
    ) -> Result<(), ManagementError> {
        let id = ChannelId::new(channel);
        let Ok(mut q) = self.shared.qmgr.lock() else {
            return Err(ManagementError::NoChannel(channel.into()));
        };
        let hop = q
            .peers()
            .into_iter()
            .find(|(c, h, _, _)| c == &id && h.to_string() == peer)
            .map(|(_, h, _, _)| h)
            .ok_or_else(|| ManagementError::NoChannel(format!("{channel} to {peer}")))?;
        if q.pin_peer(&id, &hop, limit) {
            drop(q);
            self.shared.wake.notify_one();
            tracing::info!(channel, peer, ?limit, "concurrency pinned by an operator");
            Ok(())
        } else {
            Err(ManagementError::NoChannel(format!(
                "{channel} to {peer} (not self-tuned)"
            )))
        }
    }

    /// Deletes a message: silently, or failing its pending recipients so that the sender gets
    /// a non-delivery report (`notify`).
    pub async fn delete(&self, id: &str, notify: bool) -> Result<(), ManagementError> {
        let qid = parse_id(id)?;
        let effects = {
            let mut q = self
                .shared
                .qmgr
                .lock()
                .map_err(|_| ManagementError::NotFound(id.into()))?;
            if q.envelope(qid).is_none() {
                return Err(ManagementError::NotFound(id.into()));
            }
            if q.in_flight(qid) {
                return Err(ManagementError::Busy(id.into()));
            }
            if notify {
                q.fail_message(
                    qid,
                    Status::new(550, (5, 0, 0), "deleted from the queue by the postmaster"),
                    now(),
                )
                .ok_or_else(|| ManagementError::Busy(id.into()))?
            } else {
                q.forget(qid);
                vec![Effect::Remove { queue_id: qid }]
            }
        };
        tracing::info!(queue_id = %qid, notify, "deleted by an operator");
        self.shared.perform(effects).await;
        Ok(())
    }
}
