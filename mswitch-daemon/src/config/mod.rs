//! The daemon's configuration: TOML, validated into a typed model before anything starts.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

mod directory;
mod x400;

pub use x400::{X400Config, X400Peer, X400Store, X400User};

use mswitch_core::address::{Address, Domain, DomainPart, Mailbox};
use mswitch_core::policy::IpNet;
use mswitch_route::directory::{DirectorySettings, DirectoryTables};
use mswitch_route::laser::{LdapConfig, LdapDirectory};
use mswitch_route::list::{List, Posting};
use mswitch_route::table::{DefaultRouteEntry, RouteEntry, TableConfig, TableRouter};
use serde::Deserialize;

/// The name of the channel that expands distribution lists (made when `[[list]]`s are
/// configured).
pub const LISTS_CHANNEL: &str = "lists";

/// The configuration compiled into the binary, used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../default.toml");

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not match the schema (unknown key, wrong type); the
    /// message names the line and column.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file, or "embedded default".
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// The file, or "embedded default".
        origin: String,
        /// The key, as a TOML path.
        key: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// The raw TOML schema. Unknown keys are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    queue: RawQueue,
    #[serde(default)]
    listener: Vec<RawListener>,
    #[serde(default)]
    routing: RawRouting,
    #[serde(default)]
    route: Vec<RouteEntry>,
    #[serde(default)]
    list: Vec<RawList>,
    #[serde(default)]
    channel: Vec<RawChannel>,
    #[serde(default)]
    dns: RawDns,
    laser: Option<LaserSettings>,
    directory: Option<RawDirectory>,
    #[serde(default)]
    senders: BTreeMap<String, Vec<String>>,
    /// metrics: `[metrics]`, the Prometheus endpoint (absent: off).
    metrics: Option<crate::metrics::MetricsConfig>,
    /// agentx: `[snmp]`, the AgentX subagent (absent: off).
    snmp: Option<crate::agentx::SnmpSection>,
    /// management-tcp: `[management]`, the TCP listener (absent: the socket only).
    management: Option<crate::management_tcp::ManagementConfig>,
    /// `[x400]`: this switch as an X.400 MTA (absent: no X.400).
    x400: Option<x400::RawX400>,
    /// `[[x400_tree]]`: the X.400 routing trees, tried in order.
    #[serde(default)]
    x400_tree: Vec<mswitch_route::x400::X400TreeConfig>,
    /// `[gateway]`: the RFC 2156 address mapping of the `gateway` channel.
    gateway: Option<mswitch_x400::gateway::address::MixerConfig>,
}

/// `[directory]` as written. See [`DirectoryConfig`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    url: String,
    bind_dn: Option<String>,
    bind_password: Option<String>,
    base: String,
    poll: Option<String>,
    domain_filter: Option<String>,
    alias_filter: Option<String>,
    list_filter: Option<String>,
    sender_filter: Option<String>,
    x400_routing_base: Option<String>,
    #[serde(default)]
    x400_trees: Vec<String>,
    x400_route_attribute: Option<String>,
    gateway_base: Option<String>,
}

/// Directory configuration (`[directory]`): local domains, aliases and distribution lists read
/// from an LDAP directory at start and then every `poll`, and merged into the configuration
/// from the file (the schema: [`mswitch_route::directory`]).
///
/// ```toml
/// [directory]
/// url = "ldap://ldap.example.org/"   # ldap://, ldaps:// or ldapi://
/// bind_dn = "cn=mswitch,ou=services,dc=example,dc=org"   # none: anonymous
/// bind_password = "secret"
/// base = "dc=example,dc=org"         # the base of the three searches (subtree)
/// poll = "60s"                       # the default; "off": at start and at each reload only
/// # The filters, with their defaults; "" leaves that kind out.
/// domain_filter = "(objectClass=domainRelatedObject)"
/// alias_filter = "(objectClass=nisMailAlias)"
/// list_filter = "(&(objectClass=groupOfNames)(mail=*))"
/// # Submission senders a user may use: its entry's mail and mailLocalAddress (off unless set).
/// sender_filter = "(uid={})"
/// # X.400 routing trees (needs [x400]): cn=<tree>,<x400_routing_base>, tried in this order,
/// # in front of the file's [[x400_tree]]s.
/// x400_routing_base = "ou=x400-routing,dc=example,dc=org"
/// x400_trees = ["local", "default"]
/// x400_route_attribute = "description"   # the default
/// # Gateway (RFC 2156) address rules (needs [gateway]): the entries below this base.
/// gateway_base = "ou=mixer,dc=example,dc=org"
/// ```
///
/// The merge ([`Config::with_directory`]): directory domains become local domains (so
/// `routing.local_channel` is required unless `domain_filter = ""`), directory aliases are
/// added to `[routing.aliases]`, directory lists to the `[[list]]`s (so no channel or
/// listener may be named `lists` unless `list_filter = ""`). The file wins: an address or
/// domain the file already gives is left to the file, and the directory's entry is logged and
/// ignored. A directory that cannot be read leaves the configuration as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// Where the directory is, and the credentials to bind with.
    pub ldap: LdapConfig,
    /// The base, filters and attribute names.
    pub settings: DirectorySettings,
    /// How often it is read again (`None`: only at start and at each reload).
    pub poll: Option<Duration>,
    /// Submission senders from the directory: the filter that finds a user's entry, `{}`
    /// standing for the user name (escaped); the entry's `mail` and `mailLocalAddress` values
    /// are the senders the user may use, besides those of `[senders]` and the default rule.
    pub sender_filter: Option<String>,
    /// X.400 routing trees read from the directory (`x400_routing_base`, `x400_trees`),
    /// merged with [`Config::with_x400_trees`]: in front of the file's `[[x400_tree]]`s.
    pub x400: Option<mswitch_route::x400::X400DirectorySettings>,
    /// Gateway address rules read from the directory (`gateway_base`), merged with
    /// [`Config::with_gateway_rules`]: after the file's `[[gateway.rule]]`s, which win.
    pub gateway_base: Option<String>,
}

impl DirectoryConfig {
    /// The default poll interval.
    pub const DEFAULT_POLL: Duration = Duration::from_secs(60);
}

/// LASER routing: full-address lookup in an LDAP directory (`[laser]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaserSettings {
    /// `single` (LASER for `domains`), `hosted` (for `domains`, or the directory's own list of
    /// domains when `domains_from_directory`), or `boundary` (per `[[laser.department]]`).
    pub mode: LaserModeName,
    /// The directory (single and hosted): `ldap://host:port/`.
    #[serde(default)]
    pub url: Option<String>,
    /// Bind DN (none: anonymous).
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// Bind password.
    #[serde(default)]
    pub bind_password: Option<String>,
    /// Search base (single and hosted).
    #[serde(default)]
    pub base: Option<String>,
    /// Filter template, `{}` standing for the address (escaped per RFC 4515).
    #[serde(default)]
    pub filter: Option<String>,
    /// The domains (single, hosted).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Hosted: read the domains from the directory (`associatedDomain` of
    /// `domainRelatedObject` entries under `base`).
    #[serde(default)]
    pub domains_from_directory: bool,
    /// The channel for entries with a `mailHost`.
    #[serde(default)]
    pub host_channel: Option<String>,
    /// The channel for entries without delivery information (local delivery).
    #[serde(default)]
    pub local_channel: Option<String>,
    /// How long an answer is kept (default 60s).
    #[serde(default)]
    pub cache_ttl: Option<String>,
    /// `reject` (550 5.1.4, default) or `defer` (451 4.1.4) an address with several entries.
    #[serde(default)]
    pub ambiguous: Option<String>,
    /// Boundary mode: one per departmental domain.
    #[serde(default)]
    pub department: Vec<DepartmentSettings>,
}

/// The LASER modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaserModeName {
    /// One (or a few) local domains.
    Single,
    /// Many hosted domains in one directory.
    Hosted,
    /// A boundary switch in front of departmental servers.
    Boundary,
}

/// A department of a boundary switch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentSettings {
    /// Its domain.
    pub domain: String,
    /// Its directory.
    pub url: String,
    /// Search base there.
    pub base: String,
    /// The channel to its server.
    pub channel: String,
    /// Its SMTP server, `host:port`.
    pub server: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDns {
    #[serde(default)]
    nameservers: Vec<String>,
    #[serde(default = "yes")]
    check_at_rcpt: bool,
    timeout: Option<String>,
}

impl Default for RawDns {
    fn default() -> Self {
        RawDns {
            nameservers: Vec::new(),
            check_at_rcpt: true,
            timeout: None,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    hostname: String,
    #[serde(default = "default_max_hops")]
    max_hops: usize,
    #[serde(default = "default_max_message_size")]
    max_message_size: u64,
    #[serde(default = "default_max_recipients")]
    max_recipients: usize,
    #[serde(default = "default_max_connections")]
    max_connections: usize,
    #[serde(default = "default_max_connections_per_client")]
    max_connections_per_client: usize,
    command_timeout: Option<String>,
    data_timeout: Option<String>,
    data_time_limit: Option<String>,
    #[serde(default = "default_junk_command_limit")]
    junk_command_limit: u32,
    #[serde(default)]
    log_format: LogFormat,
    #[serde(default = "yes")]
    restrict_senders: bool,
    #[serde(default = "default_auth_failures_per_client")]
    auth_failures_per_client: u32,
    #[serde(default = "default_auth_failures_per_user")]
    auth_failures_per_user: u32,
    auth_failure_window: Option<String>,
}

fn default_auth_failures_per_client() -> u32 {
    mswitch_smtp::server::auth_limit::DEFAULT_PER_CLIENT
}
fn default_auth_failures_per_user() -> u32 {
    mswitch_smtp::server::auth_limit::DEFAULT_PER_USER
}

fn default_max_hops() -> usize {
    100
}
fn default_max_message_size() -> u64 {
    50 << 20
}
fn default_max_recipients() -> usize {
    1000
}
fn default_max_connections() -> usize {
    1000
}
fn default_max_connections_per_client() -> usize {
    100
}

fn default_junk_command_limit() -> u32 {
    mswitch_smtp::server::session::DEFAULT_MAX_JUNK_COMMANDS
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    path: PathBuf,
    #[serde(default)]
    reserve_bytes: u64,
    max_lifetime: Option<String>,
    delay_warning: Option<String>,
    retry_first: Option<String>,
    retry_max: Option<String>,
    retry_factor: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: String,
    service: ListenerService,
    address: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    allow_plaintext_auth: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    #[serde(default)]
    local_domains: Vec<String>,
    local_channel: Option<String>,
    #[serde(default)]
    trusted_networks: Vec<String>,
    smarthost: Option<String>,
    default_channel: Option<String>,
    #[serde(default)]
    aliases: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    alternates: BTreeMap<String, Vec<String>>,
    subaddress_separator: Option<String>,
    #[serde(default)]
    case_sensitive_local_parts: bool,
    #[serde(default)]
    hosts: BTreeMap<String, Vec<std::net::IpAddr>>,
    #[serde(default)]
    peers: BTreeMap<String, mswitch_route::table::PeerEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    address: String,
    owner: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    posting: RawPosting,
}

#[derive(Debug, Deserialize, Default)]
#[serde(untagged)]
enum RawPosting {
    #[default]
    #[serde(skip)]
    Unset,
    Kind(String),
    Senders(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    host: Option<String>,
    helo: Option<String>,
    tls: Option<TlsMode>,
    ca_file: Option<PathBuf>,
    max_jobs: Option<usize>,
    max_per_peer: Option<usize>,
    connect_timeout: Option<String>,
    connection_idle: Option<String>,
    max_messages_per_connection: Option<usize>,
    self_tuning: Option<bool>,
    #[serde(default)]
    settings: toml::Table,
}

/// How the daemon writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// TLS use of an outbound channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, certificate not required to verify.
    #[default]
    Opportunistic,
    /// STARTTLS required, certificate verified (system roots, or `ca_file`).
    Required,
}

/// What an inbound listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerService {
    /// MTA-to-MTA SMTP.
    Relay,
    /// Message submission (AUTH required).
    Submission,
}

/// The kinds of channel the daemon knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelType {
    /// Local delivery into Maildir folders.
    Maildir,
    /// SMTP client (outbound relay).
    Smtp,
    /// LMTP client (delivery to a message store).
    Lmtp,
    /// X.400 P1 transfer to peer MTAs (`[x400]` needed).
    P1,
    /// Local delivery of X.400 messages and reports into a file store.
    X400Store,
    /// The SMTP⇄X.400 gateway (RFC 2156), a processing channel (`[gateway]` and `[x400]`).
    Gateway,
    /// X.400 P3 delivery to bound user agents and message stores (`[x400]` needed).
    P3,
    /// A channel type registered by the embedding program (see
    /// [`crate::switch::ChannelFactory`]), with its name.
    Custom(String),
}

/// A validated configuration, with every path resolved against the data directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub origin: String,
    /// The switch's host name.
    pub hostname: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The queue directory.
    pub queue_path: PathBuf,
    /// Free-space reserve of the queue.
    pub queue_reserve_bytes: u64,
    /// Longest a message stays queued before it fails.
    pub max_lifetime: Duration,
    /// When a delay notice is sent (None: never).
    pub delay_warning: Option<Duration>,
    /// First retry delay.
    pub retry_first: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Growth of the retry delay.
    pub retry_factor: f64,
    /// Most Received: headers a message may carry before it is refused as a loop.
    pub max_hops: usize,
    /// Largest message accepted.
    pub max_message_size: u64,
    /// Most recipients per message.
    pub max_recipients: usize,
    /// Inbound connections at once, in total.
    pub max_connections: usize,
    /// Inbound connections at once from one address.
    pub max_connections_per_client: usize,
    /// Time a client has for each command line (and to read our replies).
    pub command_timeout: Duration,
    /// Longest pause allowed in a message's content.
    pub data_timeout: Duration,
    /// Time allowed for one message's whole content (None: no limit).
    pub data_time_limit: Option<Duration>,
    /// NOOP, RSET, VRFY, EXPN and HELP commands answered between accepted messages before
    /// each further one counts as an error.
    pub junk_command_limit: u32,
    /// Failed AUTH attempts counted across sessions, per client address and per user name,
    /// shared by every listener (0: that count off).
    pub auth_limits: mswitch_smtp::server::auth_limit::AuthLimits,
    /// Log format.
    pub log_format: LogFormat,
    /// Inbound listeners.
    pub listeners: Vec<Listener>,
    /// Domains delivered locally.
    pub local_domains: Vec<Domain>,
    /// The channel that takes local mail.
    pub local_channel: Option<String>,
    /// Clients that may relay.
    pub trusted_networks: Vec<IpNet>,
    /// The routing table: local domains, routes, default route, aliases, alternate addresses,
    /// sub-addressing, hosts and named peers (validated).
    pub table: TableConfig,
    /// Distribution lists, expanded by the `lists` channel.
    pub lists: Vec<List>,
    /// DNS servers for MX routing (empty: the system's).
    pub dns_servers: Vec<SocketAddr>,
    /// Refuse recipients in domains that take no mail (null MX, no such domain) at RCPT.
    pub dns_check_at_rcpt: bool,
    /// How long to wait for one DNS answer.
    pub dns_timeout: Duration,
    /// LASER routing, if configured.
    pub laser: Option<LaserSettings>,
    /// Directory configuration, if configured (the configuration here is the file's; the
    /// daemon merges each snapshot of the directory into it with [`Config::with_directory`]).
    pub directory: Option<DirectoryConfig>,
    /// Who may send as what on the submission service.
    pub senders: mswitch_core::policy::SenderOwnership,
    /// Channels.
    pub channels: Vec<Channel>,
    /// metrics: the Prometheus endpoint (`[metrics]`), if configured.
    pub metrics: Option<crate::metrics::MetricsConfig>,
    /// agentx: the AgentX subagent (`[snmp]`), if configured.
    pub snmp: Option<crate::agentx::SnmpConfig>,
    /// management-tcp: the TCP management listener (`[management]`), paths resolved.
    pub management: Option<crate::management_tcp::ManagementConfig>,
    /// `[x400]`, if configured.
    pub x400: Option<X400Config>,
    /// `[gateway]`: the SMTP⇄X.400 gateway's address mapping, validated.
    pub gateway: Option<std::sync::Arc<mswitch_x400::gateway::address::MixerTables>>,
    /// `[gateway]` as written (the file's rules), which directory rules are merged into.
    pub gateway_config: Option<mswitch_x400::gateway::address::MixerConfig>,
}

/// A host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Name or IP address.
    pub host: String,
    /// Port (the channel's default when absent).
    pub port: Option<u16>,
}

impl HostPort {
    /// Parses `host`, `host:port`, `[v6]:port` or `[host]:port`.
    pub fn parse(s: &str) -> Option<HostPort> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            return Some(HostPort {
                host: host.to_owned(),
                port,
            });
        }
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => Some(HostPort {
                host: h.to_owned(),
                port: Some(p.parse().ok()?),
            }),
            // Several colons: only a bare IPv6 address, without a port.
            Some(_) if s.parse::<std::net::Ipv6Addr>().is_err() => None,
            _ => Some(HostPort {
                host: s.to_owned(),
                port: None,
            }),
        }
    }
}

/// A listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Its name.
    pub name: String,
    /// What it serves.
    pub service: ListenerService,
    /// Where it listens.
    pub address: SocketAddr,
    /// Certificate chain and key (PEM) for STARTTLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Users for SMTP AUTH (a password file, see `mswitch_smtp::sasl::PasswordFile`).
    pub password_file: Option<PathBuf>,
    /// Offer password mechanisms before TLS.
    pub allow_plaintext_auth: bool,
}

/// A channel.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: ChannelType,
    /// Its directory, for Maildir.
    pub path: Option<PathBuf>,
    /// Its fixed peer (LMTP store), if any.
    pub host: Option<HostPort>,
    /// Name given in EHLO/LHLO (default: the server's host name).
    pub helo: Option<String>,
    /// TLS use (SMTP and LMTP).
    pub tls: TlsMode,
    /// CA file to verify peers against (default: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Jobs at once.
    pub max_jobs: Option<usize>,
    /// Jobs at once per next hop.
    pub max_per_peer: Option<usize>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// How long a connection is kept open for the next message to the same peer.
    pub connection_idle: Duration,
    /// Messages per connection.
    pub max_messages_per_connection: usize,
    /// Find each peer's concurrency by measurement (smtp and lmtp; `max_per_peer` is then
    /// the ceiling).
    pub self_tuning: bool,
    /// Settings of a custom channel type, as written.
    pub settings: toml::Table,
}

impl Config {
    /// Loads a configuration file.
    pub fn load(path: &Path, data_dir: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string(), data_dir)
    }

    /// The embedded default.
    pub fn embedded(data_dir: &Path) -> Result<Config, ConfigError> {
        Config::parse(EMBEDDED_DEFAULT, "embedded default", data_dir)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, data_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |key: String, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            message,
        };
        if raw.server.hostname.is_empty() {
            return Err(invalid(
                "server.hostname".into(),
                "must not be empty".into(),
            ));
        }
        Domain::parse(&raw.server.hostname).map_err(|e| {
            invalid(
                "server.hostname".into(),
                format!("{e}; expected a fully-qualified host name"),
            )
        })?;
        let mut names = HashSet::new();
        let mut listeners = Vec::new();
        for (i, l) in raw.listener.iter().enumerate() {
            if !names.insert(l.name.clone()) {
                return Err(invalid(
                    format!("listener[{i}].name"),
                    format!("duplicate name {:?}", l.name),
                ));
            }
            let address = l.address.parse().map_err(|_| {
                invalid(
                    format!("listener[{i}].address"),
                    format!("{:?} is not an IP:port address", l.address),
                )
            })?;
            let tls = match (&l.tls_cert, &l.tls_key) {
                (Some(c), Some(k)) => Some((data_dir.join(c), data_dir.join(k))),
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        format!("listener[{i}]"),
                        "tls_cert and tls_key go together".into(),
                    ));
                }
            };
            if l.service == ListenerService::Submission && l.password_file.is_none() {
                return Err(invalid(
                    format!("listener[{i}].password_file"),
                    "a submission listener requires AUTH, so it needs a password_file".into(),
                ));
            }
            listeners.push(Listener {
                name: l.name.clone(),
                service: l.service,
                address,
                tls,
                password_file: l.password_file.as_ref().map(|p| data_dir.join(p)),
                allow_plaintext_auth: l.allow_plaintext_auth,
            });
        }
        let mut channels = Vec::new();
        for (i, c) in raw.channel.iter().enumerate() {
            if !names.insert(c.name.clone()) {
                return Err(invalid(
                    format!("channel[{i}].name"),
                    format!("duplicate name {:?}", c.name),
                ));
            }
            let kind = match c.kind.as_str() {
                "maildir" => ChannelType::Maildir,
                "smtp" => ChannelType::Smtp,
                "lmtp" => ChannelType::Lmtp,
                "p1" => ChannelType::P1,
                "x400-store" => ChannelType::X400Store,
                "gateway" => ChannelType::Gateway,
                "p3" => ChannelType::P3,
                other
                    if !other.is_empty()
                        && other
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') =>
                {
                    ChannelType::Custom(other.to_owned())
                }
                other => {
                    return Err(invalid(
                        format!("channel[{i}].type"),
                        format!(
                            "{other:?}: expected maildir, smtp, lmtp or the name of a \
                             registered channel type"
                        ),
                    ));
                }
            };
            let tunable = matches!(kind, ChannelType::Smtp | ChannelType::Lmtp);
            let path = match (&kind, &c.path) {
                (ChannelType::Maildir | ChannelType::X400Store, None) => {
                    return Err(invalid(
                        format!("channel[{i}].path"),
                        format!("a {} channel needs a path", c.kind),
                    ));
                }
                (_, p) => p.as_ref().map(|p| data_dir.join(p)),
            };
            let host = match &c.host {
                Some(h) => Some(HostPort::parse(h).ok_or_else(|| {
                    invalid(
                        format!("channel[{i}].host"),
                        format!("{h:?}: expected host, host:port or [address]:port"),
                    )
                })?),
                None => None,
            };
            if kind == ChannelType::Lmtp && host.is_none() {
                return Err(invalid(
                    format!("channel[{i}].host"),
                    "an lmtp channel needs the host:port of its message store".into(),
                ));
            }
            let connect_timeout = duration(
                c.connect_timeout.as_deref(),
                Duration::from_secs(30),
                &format!("channel[{i}].connect_timeout"),
            )
            .map_err(|(k, m)| invalid(k, m))?
            .unwrap_or(Duration::from_secs(30));
            let connection_idle = duration(
                c.connection_idle.as_deref(),
                Duration::from_secs(5),
                &format!("channel[{i}].connection_idle"),
            )
            .map_err(|(k, m)| invalid(k, m))?
            .unwrap_or(Duration::ZERO);
            for (key, value) in [
                ("max_jobs", c.max_jobs),
                ("max_per_peer", c.max_per_peer),
                ("max_messages_per_connection", c.max_messages_per_connection),
            ] {
                if value == Some(0) {
                    return Err(invalid(
                        format!("channel[{i}].{key}"),
                        "must be at least 1".into(),
                    ));
                }
            }
            channels.push(Channel {
                name: c.name.clone(),
                kind,
                path,
                host,
                helo: c.helo.clone(),
                tls: c.tls.unwrap_or_default(),
                ca_file: c.ca_file.as_ref().map(|p| data_dir.join(p)),
                max_jobs: c.max_jobs,
                max_per_peer: c.max_per_peer,
                connect_timeout,
                connection_idle,
                max_messages_per_connection: c.max_messages_per_connection.unwrap_or(100),
                self_tuning: c.self_tuning.unwrap_or(tunable),
                settings: c.settings.clone(),
            });
        }
        let local_domains = raw
            .routing
            .local_domains
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Domain::parse(d)
                    .map_err(|e| invalid(format!("routing.local_domains[{i}]"), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trusted_networks = raw
            .routing
            .trusted_networks
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.parse::<IpNet>().map_err(|e| {
                    invalid(
                        format!("routing.trusted_networks[{i}]"),
                        format!("{e}; expected CIDR such as 127.0.0.0/8"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(lc) = &raw.routing.local_channel
            && !channels.iter().any(|c| &c.name == lc)
        {
            return Err(invalid(
                "routing.local_channel".into(),
                format!("no channel is named {lc:?}"),
            ));
        }
        if !local_domains.is_empty() && raw.routing.local_channel.is_none() {
            return Err(invalid(
                "routing.local_channel".into(),
                "local_domains are set, so a local_channel is needed to deliver them".into(),
            ));
        }
        let channel_named = |key: String, name: &str| {
            if channels.iter().any(|c| c.name == name) {
                Ok(())
            } else {
                Err(invalid(key, format!("no channel is named {name:?}")))
            }
        };
        let mut table = TableConfig::new();
        table.local_domains = raw.routing.local_domains.clone();
        // Mail for the switch's own name (postmaster@, the MAILER-DAEMON of notices) is local
        // when something delivers local mail.
        let host = raw.server.hostname.to_ascii_lowercase();
        if raw.routing.local_channel.is_some()
            && !table
                .local_domains
                .iter()
                .any(|d| d.to_ascii_lowercase() == host)
        {
            table.local_domains.push(raw.server.hostname.clone());
        }
        table.local_channel = raw.routing.local_channel.clone();
        table.aliases = raw.routing.aliases.clone();
        table.alternates = raw.routing.alternates.clone();
        if let Some(sep) = &raw.routing.subaddress_separator {
            table.subaddress_separator = sep.clone();
        }
        table.case_sensitive_local_parts = raw.routing.case_sensitive_local_parts;
        table.hosts = raw.routing.hosts.clone();
        table.peers = raw.routing.peers.clone();
        for (i, r) in raw.route.iter().enumerate() {
            channel_named(format!("route[{i}].channel"), &r.channel)?;
            let mut r = r.clone();
            // A channel with its own peer (an LMTP store) takes every route to it there: the
            // route names that peer, so no MX lookup is made for the domain.
            if let Some(c) = channels.iter().find(|c| c.name == r.channel)
                && c.host.is_some()
                && r.host.is_none()
                && r.peer.is_none()
            {
                r.peer = Some(c.name.clone());
            }
            table.routes.push(r);
        }
        for c in &channels {
            if let Some(h) = &c.host
                && table
                    .routes
                    .iter()
                    .any(|r| r.peer.as_deref() == Some(c.name.as_str()))
            {
                let host = match h.port {
                    Some(p) => format!("[{}]:{p}", h.host),
                    None => h.host.clone(),
                };
                table
                    .peers
                    .entry(c.name.clone())
                    .or_insert_with(|| mswitch_route::table::PeerEntry::at(host));
            }
        }
        let smarthost = match &raw.routing.smarthost {
            Some(h) => Some(HostPort::parse(h).ok_or_else(|| {
                invalid(
                    "routing.smarthost".into(),
                    format!("{h:?}: expected host, host:port or [address]:port"),
                )
            })?),
            None => None,
        };
        let default_channel = match &raw.routing.default_channel {
            Some(c) => {
                channel_named("routing.default_channel".into(), c)?;
                Some(c.clone())
            }
            None => channels
                .iter()
                .find(|c| c.kind == ChannelType::Smtp)
                .map(|c| c.name.clone()),
        };
        table.default_route = match (default_channel, smarthost) {
            (Some(c), Some(_)) => Some(DefaultRouteEntry::smarthost(
                c,
                raw.routing.smarthost.clone().unwrap_or_default(),
            )),
            (Some(c), None) => Some(DefaultRouteEntry::mx(c)),
            (None, Some(_)) => {
                return Err(invalid(
                    "routing.smarthost".into(),
                    "a smarthost needs an smtp channel to reach it (add a [[channel]] of type \
                     smtp, or set routing.default_channel)"
                        .into(),
                ));
            }
            (None, None) => None,
        };
        let mut lists = Vec::new();
        for (i, l) in raw.list.iter().enumerate() {
            let mailbox = |key: &str, s: &str| {
                Mailbox::parse(s)
                    .map_err(|e| invalid(format!("list[{i}].{key}"), format!("{s:?}: {e}")))
            };
            let address = mailbox("address", &l.address)?;
            let owner = mailbox("owner", &l.owner)?;
            let members = l
                .members
                .iter()
                .map(|m| mailbox("members", m).map(Address::Mailbox))
                .collect::<Result<Vec<_>, _>>()?;
            let posting = match &l.posting {
                RawPosting::Unset => Posting::Anyone,
                RawPosting::Kind(k) if k == "anyone" => Posting::Anyone,
                RawPosting::Kind(k) if k == "members" => Posting::Members,
                RawPosting::Kind(k) => {
                    return Err(invalid(
                        format!("list[{i}].posting"),
                        format!("{k:?}: expected \"anyone\", \"members\" or a list of senders"),
                    ));
                }
                RawPosting::Senders(v) => Posting::Senders(
                    v.iter()
                        .map(|s| mailbox("posting", s))
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            table
                .routes
                .push(RouteEntry::for_address(address.to_string(), LISTS_CHANNEL));
            lists.push(List {
                address,
                owner,
                members,
                posting,
            });
        }
        if !lists.is_empty() && names.contains(LISTS_CHANNEL) {
            return Err(invalid(
                "list".into(),
                format!("the channel name {LISTS_CHANNEL:?} is taken by the list channel"),
            ));
        }
        let directory = match &raw.directory {
            Some(d) => {
                let directory = directory_config(d).map_err(|(k, m)| invalid(k, m))?;
                if directory.settings.domain_filter.is_some() && raw.routing.local_channel.is_none()
                {
                    return Err(invalid(
                        "directory.domain_filter".into(),
                        "local domains are read from the directory, so routing.local_channel is \
                         needed to deliver them (or set domain_filter = \"\" to read none)"
                            .into(),
                    ));
                }
                if directory.x400.is_some() && raw.x400.is_none() {
                    return Err(invalid(
                        "directory.x400_trees".into(),
                        "X.400 routing trees need the [x400] section".into(),
                    ));
                }
                if directory.gateway_base.is_some() && raw.gateway.is_none() {
                    return Err(invalid(
                        "directory.gateway_base".into(),
                        "gateway address rules need the [gateway] section (gateway_domain and \
                         gateway_or)"
                            .into(),
                    ));
                }
                if directory.settings.list_filter.is_some() && names.contains(LISTS_CHANNEL) {
                    return Err(invalid(
                        "directory.list_filter".into(),
                        format!(
                            "lists are read from the directory, and the channel name \
                             {LISTS_CHANNEL:?} is taken by the list channel (or set \
                             list_filter = \"\" to read none)"
                        ),
                    ));
                }
                Some(directory)
            }
            None => None,
        };
        if let Some(l) = &raw.laser {
            for (key, c) in [
                ("host_channel", &l.host_channel),
                ("local_channel", &l.local_channel),
            ] {
                if let Some(c) = c {
                    channel_named(format!("laser.{key}"), c)?;
                }
            }
            for (i, d) in l.department.iter().enumerate() {
                channel_named(format!("laser.department[{i}].channel"), &d.channel)?;
            }
            match l.mode {
                LaserModeName::Single | LaserModeName::Hosted => {
                    for key in ["url", "base"] {
                        let v = if key == "url" { &l.url } else { &l.base };
                        if v.is_none() {
                            return Err(invalid(
                                format!("laser.{key}"),
                                "required in single and hosted modes".into(),
                            ));
                        }
                    }
                    if l.domains_from_directory && l.mode == LaserModeName::Single {
                        return Err(invalid(
                            "laser.domains_from_directory".into(),
                            "only in hosted mode: single mode routes the domains it names".into(),
                        ));
                    }
                    if l.domains.is_empty() && !l.domains_from_directory {
                        return Err(invalid(
                            "laser.domains".into(),
                            "name the domains (or set domains_from_directory in hosted mode)"
                                .into(),
                        ));
                    }
                }
                LaserModeName::Boundary => {
                    if l.department.is_empty() {
                        return Err(invalid(
                            "laser.department".into(),
                            "boundary mode needs at least one [[laser.department]]".into(),
                        ));
                    }
                }
            }
            if let Some(f) = &l.filter
                && let Err(e) = mswitch_route::laser::FilterTemplate::new(f)
            {
                return Err(invalid("laser.filter".into(), e.to_string()));
            }
            if let Some(a) = &l.ambiguous
                && a != "reject"
                && a != "defer"
            {
                return Err(invalid(
                    "laser.ambiguous".into(),
                    format!("{a:?}: expected \"reject\" or \"defer\""),
                ));
            }
            duration(
                l.cache_ttl.as_deref(),
                Duration::from_secs(60),
                "laser.cache_ttl",
            )
            .map_err(|(k, m)| invalid(k, m))?;
        }
        let mut senders = mswitch_core::policy::SenderOwnership {
            unrestricted: !raw.server.restrict_senders,
            local_domains: table
                .local_domains
                .iter()
                .filter(|d| !d.starts_with('.') && !d.starts_with('*'))
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            ..Default::default()
        };
        for (user, addresses) in &raw.senders {
            let mut owned = Vec::new();
            for a in addresses {
                let ok = match a.strip_prefix("*@") {
                    Some(d) => Domain::parse(d).is_ok(),
                    None => Mailbox::parse(a).is_ok(),
                };
                if !ok {
                    return Err(invalid(
                        format!("senders.{user}"),
                        format!("{a:?}: expected an address or *@domain"),
                    ));
                }
                owned.push(a.to_lowercase());
            }
            senders.users.insert(user.to_lowercase(), owned);
        }
        // A route to a named peer needs that peer ([routing.peers], or a channel's own host).
        for (i, r) in table.routes.iter().enumerate() {
            if let Some(p) = &r.peer
                && !table.peers.contains_key(p)
            {
                return Err(invalid(
                    format!("route[{i}].peer"),
                    format!("no peer is named {p:?} (define it in [routing.peers])"),
                ));
            }
        }
        // The table checks itself: domains, patterns, duplicates, aliases, separators.
        if let Err(e) = TableRouter::new(&table) {
            return Err(invalid("routing".into(), e.to_string()));
        }
        let dns_servers = raw
            .dns
            .nameservers
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.parse::<SocketAddr>()
                    .or_else(|_| {
                        n.parse::<std::net::IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 53))
                    })
                    .map_err(|_| {
                        invalid(
                            format!("dns.nameservers[{i}]"),
                            format!("{n:?}: expected an IP address, or IP:port"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dns_timeout = duration(
            raw.dns.timeout.as_deref(),
            Duration::from_secs(5),
            "dns.timeout",
        )
        .map_err(|(k, m)| invalid(k, m))?
        .unwrap_or(Duration::from_secs(5));
        let q = &raw.queue;
        let dur = |v: &Option<String>, default: Duration, key: &str| {
            duration(v.as_deref(), default, &format!("queue.{key}")).map_err(|(k, m)| invalid(k, m))
        };
        let window = mswitch_smtp::server::auth_limit::DEFAULT_WINDOW;
        let auth_limits = match duration(
            raw.server.auth_failure_window.as_deref(),
            window,
            "server.auth_failure_window",
        )
        .map_err(|(k, m)| invalid(k, m))?
        {
            Some(window) => mswitch_smtp::server::auth_limit::AuthLimits {
                per_client: raw.server.auth_failures_per_client,
                per_user: raw.server.auth_failures_per_user,
                window,
            },
            // "off": no failure counts across sessions.
            None => mswitch_smtp::server::auth_limit::AuthLimits {
                per_client: 0,
                per_user: 0,
                window,
            },
        };
        let max_lifetime = dur(
            &q.max_lifetime,
            Duration::from_secs(5 * 86400),
            "max_lifetime",
        )?
        .unwrap_or(Duration::from_secs(5 * 86400));
        let delay_warning = dur(
            &q.delay_warning,
            Duration::from_secs(4 * 3600),
            "delay_warning",
        )?;
        let retry_first = dur(&q.retry_first, Duration::from_secs(60), "retry_first")?
            .unwrap_or(Duration::from_secs(60));
        let retry_max = dur(&q.retry_max, Duration::from_secs(3600), "retry_max")?
            .unwrap_or(Duration::from_secs(3600));
        let retry_factor = q.retry_factor.unwrap_or(2.0);
        if !(1.0..=10.0).contains(&retry_factor) {
            return Err(invalid(
                "queue.retry_factor".into(),
                format!("{retry_factor}: expected a number from 1 to 10"),
            ));
        }
        let sdur = |v: &Option<String>, default: Duration, key: &str| {
            duration(v.as_deref(), default, &format!("server.{key}"))
                .map_err(|(k, m)| invalid(k, m))
        };
        let required = |d: Option<Duration>, key: &str| {
            d.filter(|d| !d.is_zero()).ok_or_else(|| {
                invalid(
                    format!("server.{key}"),
                    "cannot be off: a client that stops sending would hold its connection \
                     for ever"
                        .into(),
                )
            })
        };
        let command_timeout = required(
            sdur(
                &raw.server.command_timeout,
                mswitch_smtp::server::session::DEFAULT_COMMAND_TIMEOUT,
                "command_timeout",
            )?,
            "command_timeout",
        )?;
        let data_timeout = required(
            sdur(
                &raw.server.data_timeout,
                mswitch_smtp::server::session::DEFAULT_DATA_TIMEOUT,
                "data_timeout",
            )?,
            "data_timeout",
        )?;
        let data_time_limit = sdur(
            &raw.server.data_time_limit,
            mswitch_smtp::server::session::DEFAULT_DATA_TIME_LIMIT,
            "data_time_limit",
        )?;
        if raw.server.max_recipients < 100 {
            return Err(invalid(
                "server.max_recipients".into(),
                "RFC 5321 §4.5.3.1.8 asks for at least 100".into(),
            ));
        }
        // management-tcp: `[management]`, its paths resolved against the data directory.
        let management = match &raw.management {
            Some(m) => Some(m.resolve(data_dir).map_err(|(k, m)| invalid(k, m))?),
            None => None,
        };
        // agentx: `[snmp]`, a relative socket path under the data directory.
        let snmp = match &raw.snmp {
            Some(s) => Some(s.resolve(data_dir).map_err(|(k, m)| invalid(k, m))?),
            None => None,
        };
        let x400 = match &raw.x400 {
            Some(x) => Some(x.validate(&raw.x400_tree).map_err(|(k, m)| invalid(k, m))?),
            None if raw.x400_tree.is_empty() => None,
            None => {
                return Err(invalid(
                    "x400_tree".into(),
                    "X.400 routing trees need the [x400] section".into(),
                ));
            }
        };
        let gateway = match &raw.gateway {
            Some(g) => Some(std::sync::Arc::new(
                mswitch_x400::gateway::address::MixerTables::new(g.clone())
                    .map_err(|e| invalid("gateway".into(), e.to_string()))?,
            )),
            None => None,
        };
        if let Some(c) = channels
            .iter()
            .find(|c| c.kind == ChannelType::Gateway && (gateway.is_none() || x400.is_none()))
        {
            return Err(invalid(
                format!("channel {:?}", c.name),
                "a gateway channel needs the [gateway] and [x400] sections".into(),
            ));
        }
        if let Some(c) = channels
            .iter()
            .find(|c| matches!(c.kind, ChannelType::P1 | ChannelType::P3) && x400.is_none())
        {
            return Err(invalid(
                format!("channel {:?}", c.name),
                "a p1 or p3 channel needs the [x400] section (this MTA's name and peers)".into(),
            ));
        }
        if let Some(x) = &x400 {
            for (t, tree) in x.routing.trees.iter().enumerate() {
                for (r, route) in tree.routes.iter().enumerate() {
                    directory::check_x400_next_hops(route, &channels, &x.peers).map_err(
                        |(key, message)| {
                            invalid(format!("x400_tree[{t}].route[{r}].{key}"), message)
                        },
                    )?;
                }
            }
        }
        Ok(Config {
            origin: origin.to_owned(),
            hostname: raw.server.hostname,
            data_dir: data_dir.to_owned(),
            queue_path: data_dir.join(&raw.queue.path),
            queue_reserve_bytes: raw.queue.reserve_bytes,
            max_lifetime,
            delay_warning,
            retry_first,
            retry_max,
            retry_factor,
            max_hops: raw.server.max_hops,
            max_message_size: raw.server.max_message_size,
            max_recipients: raw.server.max_recipients,
            max_connections: raw.server.max_connections,
            max_connections_per_client: raw.server.max_connections_per_client,
            command_timeout,
            junk_command_limit: raw.server.junk_command_limit,
            data_timeout,
            data_time_limit,
            auth_limits,
            log_format: raw.server.log_format,
            listeners,
            local_domains,
            local_channel: raw.routing.local_channel,
            trusted_networks,
            table,
            lists,
            dns_servers,
            dns_check_at_rcpt: raw.dns.check_at_rcpt,
            dns_timeout,
            laser: raw.laser.clone(),
            directory,
            x400,
            gateway,
            gateway_config: raw.gateway.clone(),
            senders,
            channels,
            metrics: raw.metrics, // metrics
            snmp,                 // agentx
            management,           // management-tcp
        })
    }
}

/// Validates `[directory]`; errors are (key, message).
fn directory_config(d: &RawDirectory) -> Result<DirectoryConfig, (String, String)> {
    let mut ldap = LdapConfig::new(d.url.trim());
    match (&d.bind_dn, &d.bind_password) {
        (Some(dn), password) => {
            ldap = ldap.bind(dn.clone(), password.clone().unwrap_or_default());
        }
        (None, Some(_)) => {
            return Err((
                "directory.bind_password".into(),
                "a bind_password needs a bind_dn".into(),
            ));
        }
        (None, None) => {}
    }
    if let Err(e) = LdapDirectory::new(ldap.clone()) {
        return Err(("directory.url".into(), e.to_string()));
    }
    if d.base.trim().is_empty() {
        return Err((
            "directory.base".into(),
            "must not be empty (the DN below which domains, aliases and lists are searched)".into(),
        ));
    }
    let mut settings = DirectorySettings::new(d.base.trim());
    for (key, written, setting) in [
        (
            "domain_filter",
            &d.domain_filter,
            &mut settings.domain_filter,
        ),
        ("alias_filter", &d.alias_filter, &mut settings.alias_filter),
        ("list_filter", &d.list_filter, &mut settings.list_filter),
    ] {
        let Some(f) = written else { continue };
        let f = f.trim();
        if f.is_empty() {
            *setting = None;
            continue;
        }
        if !is_filter(f) {
            return Err((
                format!("directory.{key}"),
                format!(
                    "{f:?}: expected an LDAP filter in parentheses, such as \
                     \"(objectClass=nisMailAlias)\" (or \"\" to read none)"
                ),
            ));
        }
        *setting = Some(f.to_owned());
    }
    let poll = duration(
        d.poll.as_deref(),
        DirectoryConfig::DEFAULT_POLL,
        "directory.poll",
    )?;
    let sender_filter = match d.sender_filter.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(f) if is_filter(f) && f.contains("{}") => Some(f.to_owned()),
        Some(f) => {
            return Err((
                "directory.sender_filter".into(),
                format!(
                    "{f:?}: expected an LDAP filter with {{}} for the user, such as \"(uid={{}})\""
                ),
            ));
        }
    };
    let x400 = directory::x400_settings(d)?;
    let gateway_base = directory::gateway_base(d)?;
    Ok(DirectoryConfig {
        ldap,
        settings,
        poll,
        sender_filter,
        x400,
        gateway_base,
    })
}

/// Whether `f` looks like an RFC 4515 filter: in parentheses, balanced (escaped characters are
/// `\xx`, so a parenthesis in a value is always escaped). The server checks the rest.
fn is_filter(f: &str) -> bool {
    let mut depth = 0usize;
    for (i, c) in f.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = match depth.checked_sub(1) {
                    Some(d) => d,
                    None => return false,
                };
                if depth == 0 && i + 1 != f.len() {
                    return false;
                }
            }
            _ if depth == 0 => return false,
            _ => {}
        }
    }
    depth == 0 && f.len() > 2
}

/// The key under which the routing table finds a mailbox (see `TableRouter`): the local part,
/// lower-cased unless local parts are case-sensitive, and the domain in lower-case A-labels.
fn address_key(address: &str, case_sensitive: bool) -> Option<String> {
    let m = Mailbox::parse(address).ok()?;
    let local = m.local_part().as_str();
    let local = if case_sensitive {
        local.to_owned()
    } else {
        local.to_lowercase()
    };
    let domain = match m.domain_part() {
        DomainPart::Domain(d) => d.to_ascii().to_owned(),
        DomainPart::Literal(l) => l.to_string(),
    };
    Some(format!("{local}@{domain}"))
}

/// The domain a domain rule of the file routes itself (not only its subdomains): `d` for `d`
/// and `.d`, none for `*.d`.
fn domain_key(pattern: &str) -> Option<String> {
    if pattern.starts_with('*') {
        return None;
    }
    let name = pattern.strip_prefix('.').unwrap_or(pattern);
    Domain::parse(name.trim_end_matches('.'))
        .ok()
        .map(|d| d.to_ascii().to_owned())
}

impl Config {
    /// This configuration with a directory snapshot merged in: its local domains added to the
    /// local domains, its aliases to the aliases, its lists to the lists (with their routes to
    /// the `lists` channel). The file wins: a domain the file routes itself (a local domain, a
    /// `d` or `.d` route) and an address the file gives (an alias, an alternate or its
    /// canonical address, a list, an address route) are left to the file, and the directory's
    /// entry is logged and ignored. The result is checked as a file is
    /// ([`ConfigError::Invalid`] with key `directory` if the table refuses it).
    pub fn with_directory(&self, tables: &DirectoryTables) -> Result<Config, ConfigError> {
        let mut c = self.clone();
        let case_sensitive = c.table.case_sensitive_local_parts;
        let mut addresses: HashSet<String> = c
            .table
            .aliases
            .keys()
            .chain(c.table.alternates.keys())
            .chain(c.table.alternates.values().flatten())
            .chain(c.table.routes.iter().filter_map(|r| r.address.as_ref()))
            .filter_map(|a| address_key(a, case_sensitive))
            .collect();
        let mut domains: HashSet<String> = c
            .table
            .local_domains
            .iter()
            .chain(c.table.routes.iter().filter_map(|r| r.domain.as_ref()))
            .filter_map(|d| domain_key(d))
            .collect();
        for name in &tables.local_domains {
            let Ok(domain) = Domain::parse(name) else {
                tracing::warn!(domain = %name, "directory local domain ignored: not a domain");
                continue;
            };
            let key = domain.to_ascii().to_owned();
            if !domains.insert(key.clone()) {
                tracing::debug!(domain = %name,
                    "directory local domain already routed by the configuration file");
                continue;
            }
            c.table.local_domains.push(key.clone());
            if !c.senders.local_domains.contains(&key) {
                c.senders.local_domains.push(key);
            }
            c.local_domains.push(domain);
        }
        for (alias, members) in &tables.aliases {
            let Some(key) = address_key(alias, case_sensitive) else {
                tracing::warn!(alias = %alias, "directory alias ignored: not an address");
                continue;
            };
            if !addresses.insert(key) {
                tracing::warn!(alias = %alias,
                    "directory alias ignored: the configuration file gives this address");
                continue;
            }
            c.table.aliases.insert(alias.clone(), members.clone());
        }
        for list in &tables.lists {
            let address = list.address.to_string();
            let Some(key) = address_key(&address, case_sensitive) else {
                continue;
            };
            if !addresses.insert(key) {
                tracing::warn!(list = %address,
                    "directory list ignored: the configuration file gives this address");
                continue;
            }
            c.table
                .routes
                .push(RouteEntry::for_address(address, LISTS_CHANNEL));
            c.lists.push(list.clone());
        }
        if let Err(e) = TableRouter::new(&c.table) {
            return Err(ConfigError::Invalid {
                origin: c.origin.clone(),
                key: "directory".into(),
                message: format!("the directory's entries do not fit the routing table: {e}"),
            });
        }
        Ok(c)
    }
}

/// Parses a duration such as `90s`, `10m`, `4h`, `5d`, or `0`/`off` (None). `default` is
/// returned when `value` is absent.
pub(crate) fn duration(
    value: Option<&str>,
    default: Duration,
    key: &str,
) -> Result<Option<Duration>, (String, String)> {
    let Some(v) = value else {
        return Ok(Some(default));
    };
    let v = v.trim();
    if v == "0" || v == "off" {
        return Ok(None);
    }
    let bad = || {
        (
            key.to_owned(),
            format!("{v:?}: expected a duration such as 90s, 10m, 4h or 5d (or off)"),
        )
    };
    let split = v.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => return Ok(Some(Duration::from_millis(n))),
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86400),
        _ => return Err(bad()),
    };
    Ok(Some(Duration::from_secs(secs)))
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration: {}", self.origin)?;
        writeln!(f, "hostname:      {}", self.hostname)?;
        writeln!(f, "data dir:      {}", self.data_dir.display())?;
        writeln!(
            f,
            "queue:         {} (reserve {} octets)",
            self.queue_path.display(),
            self.queue_reserve_bytes
        )?;
        for l in &self.listeners {
            writeln!(
                f,
                "listener:      {} {:?} on {}",
                l.name, l.service, l.address
            )?;
        }
        let domains: Vec<String> = self.local_domains.iter().map(|d| d.to_string()).collect();
        writeln!(
            f,
            "local domains: {} -> channel {}",
            domains.join(", "),
            self.local_channel.as_deref().unwrap_or("(none)")
        )?;
        let nets: Vec<String> = self
            .trusted_networks
            .iter()
            .map(|n| n.to_string())
            .collect();
        writeln!(f, "may relay:     {}", nets.join(", "))?;
        for r in &self.table.routes {
            let what = r.address.as_deref().or(r.domain.as_deref()).unwrap_or("?");
            let via = r.host.as_deref().or(r.peer.as_deref()).unwrap_or("mx");
            writeln!(f, "route:         {what} -> {} via {via}", r.channel)?;
        }
        if let Some(d) = &self.table.default_route {
            let via = d.smarthost.as_deref().unwrap_or("mx");
            writeln!(f, "default route: {} via {via}", d.channel)?;
        }
        for (alias, members) in &self.table.aliases {
            writeln!(f, "alias:         {alias} -> {}", members.join(", "))?;
        }
        for l in &self.lists {
            writeln!(
                f,
                "list:          {} ({} members, owner {})",
                l.address,
                l.members.len(),
                l.owner
            )?;
        }
        if let Some(d) = &self.directory {
            let poll = d.poll.map_or("off".to_owned(), |p| format!("every {p:?}"));
            writeln!(
                f,
                "directory:     {} base {} (poll {poll})",
                d.ldap.url, d.settings.base
            )?;
            if let Some(x) = &d.x400 {
                writeln!(
                    f,
                    "directory:     X.400 routing trees {} below {} (before the file's trees)",
                    x.trees.join(", "),
                    x.base
                )?;
            }
            if let Some(base) = &d.gateway_base {
                writeln!(
                    f,
                    "directory:     gateway address rules below {base} (after the file's rules)"
                )?;
            }
        }
        for c in &self.channels {
            let path = c.path.as_ref().map(|p| p.display().to_string());
            writeln!(
                f,
                "channel:       {} {:?} {}",
                c.name,
                c.kind,
                path.unwrap_or_default()
            )?;
        }
        if let Some(m) = &self.metrics {
            writeln!(f, "metrics:       http://{}/metrics", m.address)?; // metrics
        }
        if let Some(s) = &self.snmp {
            writeln!(f, "snmp:          AgentX subagent of {}", s.agentx)?; // agentx
        }
        if let Some(m) = &self.management {
            writeln!(f, "management:    {} (TLS)", m.listen)?; // management-tcp
        }
        if let Some(x) = &self.x400 {
            let prmd = x.prmd.as_deref().unwrap_or("");
            writeln!(
                f,
                "x400:          MTA {} in /C={}/ADMD={}/PRMD={prmd}/, P1 listener {}",
                x.mta_name,
                x.country,
                x.admd,
                x.listen
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "(none)".into())
            )?;
            // P3 (MTS access).
            if let Some(a) = x.p3_listen {
                let shared = if x.listen == Some(a) {
                    " (shared with P1)"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "x400 p3:       listener {a}{shared}, {} user(s)",
                    x.users.len()
                )?;
            }
            for s in &x.stores {
                writeln!(f, "x400 store:    {} at {}", s.address_prefix, s.address)?;
            }
            for p in &x.peers {
                writeln!(
                    f,
                    "x400 peer:     {} at {}{}",
                    p.name,
                    p.address,
                    if p.two_way_alternate { " (twa)" } else { "" }
                )?;
            }
            for t in &x.routing.trees {
                for r in &t.routes {
                    writeln!(
                        f,
                        "x400 route:    [{}] {} -> {}",
                        t.name,
                        r.pattern,
                        r.channel.as_deref().unwrap_or("(refused)")
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// `[directory]` and the merge of a snapshot (the other configuration tests are in `tests.rs`).
#[cfg(test)]
mod directory_tests {
    use std::path::Path;
    use std::time::Duration;

    use mswitch_core::address::{Address, Mailbox};
    use mswitch_route::directory::DirectoryTables;
    use mswitch_route::list::{List, Posting};

    use super::*;

    const BASE: &str = r#"
[server]
hostname = "switch.test"

[queue]
path = "queue"

[routing]
local_domains = ["example.test"]
local_channel = "local"
alternates = { "joe@example.test" = ["j@example.test"] }

[routing.aliases]
"team@example.test" = ["joe@example.test"]

[[route]]
domain = ".corp.test"
channel = "local"

[[route]]
domain = "*.sub.test"
channel = "local"

[[list]]
address = "staff@example.test"
owner = "boss@example.test"
members = ["joe@example.test"]

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", Path::new("/data"))
    }

    fn with(section: &str) -> Result<Config, ConfigError> {
        parse(&format!("{BASE}\n[directory]\n{section}"))
    }

    fn invalid_key(r: Result<Config, ConfigError>) -> String {
        match r {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    fn mb(s: &str) -> Mailbox {
        Mailbox::parse(s).expect("address")
    }

    #[test]
    fn a_directory_section_with_its_defaults() {
        let c = with("url = \"ldap://127.0.0.1:3899/\"\nbase = \"dc=example,dc=com\"\n")
            .expect("valid");
        let d = c.directory.expect("configured");
        assert_eq!(d.ldap.url, "ldap://127.0.0.1:3899/");
        assert_eq!(d.ldap.bind, None);
        assert_eq!(d.poll, Some(Duration::from_secs(60)));
        assert_eq!(d.settings, DirectorySettings::new("dc=example,dc=com"));
        assert!(parse(BASE).expect("valid").directory.is_none());
    }

    #[test]
    fn every_directory_key() {
        let c = with(
            r#"url = "ldaps://ldap.example.test/"
bind_dn = "cn=mswitch,dc=example,dc=com"
bind_password = "secret"
base = "ou=mail,dc=example,dc=com"
poll = "1s"
domain_filter = ""
alias_filter = "(&(objectClass=nisMailAlias)(cn=*@example.test))"
list_filter = "(objectClass=mailGroup)"
"#,
        )
        .expect("valid");
        let d = c.directory.expect("configured");
        let bind = d.ldap.bind.expect("bind");
        assert_eq!(
            (bind.dn.as_str(), bind.password.as_str()),
            ("cn=mswitch,dc=example,dc=com", "secret")
        );
        assert_eq!(d.poll, Some(Duration::from_secs(1)));
        assert_eq!(d.settings.base, "ou=mail,dc=example,dc=com");
        assert_eq!(d.settings.domain_filter, None);
        assert_eq!(
            d.settings.alias_filter.as_deref(),
            Some("(&(objectClass=nisMailAlias)(cn=*@example.test))")
        );
        assert_eq!(
            d.settings.list_filter.as_deref(),
            Some("(objectClass=mailGroup)")
        );
        let off = with("url = \"ldap://h/\"\nbase = \"dc=x\"\npoll = \"off\"\n").expect("valid");
        assert_eq!(off.directory.expect("configured").poll, None);
    }

    #[test]
    fn bad_directory_settings_are_refused() {
        let cases = [
            ("url = \"http://h/\"\nbase = \"dc=x\"\n", "directory.url"),
            ("url = \"ldap://h/\"\nbase = \" \"\n", "directory.base"),
            (
                "url = \"ldap://h/\"\nbase = \"dc=x\"\nbind_password = \"p\"\n",
                "directory.bind_password",
            ),
            (
                "url = \"ldap://h/\"\nbase = \"dc=x\"\npoll = \"soon\"\n",
                "directory.poll",
            ),
            (
                "url = \"ldap://h/\"\nbase = \"dc=x\"\nalias_filter = \"objectClass=x\"\n",
                "directory.alias_filter",
            ),
            (
                "url = \"ldap://h/\"\nbase = \"dc=x\"\nlist_filter = \"(a=b)(c=d)\"\n",
                "directory.list_filter",
            ),
            (
                "url = \"ldap://h/\"\nbase = \"dc=x\"\ndomain_filter = \"(a=b\"\n",
                "directory.domain_filter",
            ),
        ];
        for (section, key) in cases {
            assert_eq!(invalid_key(with(section)), key, "{section}");
        }
        let syntax = |r: Result<Config, ConfigError>| match r {
            Err(ConfigError::Syntax { message, .. }) => message,
            other => panic!("expected a syntax error, got {other:?}"),
        };
        let unknown = syntax(with(
            "url = \"ldap://h/\"\nbase = \"dc=x\"\nfilter = \"(a=b)\"\n",
        ));
        assert!(unknown.contains("unknown field `filter`"), "{unknown}");
        let missing = syntax(with("url = \"ldap://h/\"\n"));
        assert!(missing.contains("missing field `base`"), "{missing}");
    }

    #[test]
    fn directory_domains_need_a_local_channel_and_lists_the_lists_name() {
        let no_local = r#"
[server]
hostname = "switch.test"

[queue]
path = "queue"

[directory]
url = "ldap://h/"
base = "dc=x"
"#;
        assert_eq!(invalid_key(parse(no_local)), "directory.domain_filter");
        let ok = no_local.replace("base = \"dc=x\"", "base = \"dc=x\"\ndomain_filter = \"\"");
        assert!(parse(&ok).is_ok());
        let taken =
            format!("{ok}\n[[channel]]\nname = \"lists\"\ntype = \"maildir\"\npath = \"m\"\n");
        assert_eq!(invalid_key(parse(&taken)), "directory.list_filter");
        let ok = taken.replace(
            "domain_filter = \"\"",
            "domain_filter = \"\"\nlist_filter = \"\"",
        );
        assert!(parse(&ok).is_ok());
    }

    fn tables() -> DirectoryTables {
        DirectoryTables {
            local_domains: vec![
                "corp.test".into(),
                "dir.test".into(),
                "example.test".into(),
                "x.sub.test".into(),
            ],
            aliases: [
                ("help@dir.test", vec!["joe@example.test"]),
                ("Team@Example.test", vec!["eve@example.test"]),
                ("J@example.test", vec!["eve@example.test"]),
                ("boss@example.test", vec!["eve@example.test"]),
            ]
            .into_iter()
            .map(|(a, m)| (a.to_owned(), m.into_iter().map(str::to_owned).collect()))
            .collect(),
            lists: vec![
                List {
                    address: mb("crew@dir.test"),
                    owner: mb("owner-crew@dir.test"),
                    members: vec![Address::Mailbox(mb("ann@example.test"))],
                    posting: Posting::Members,
                },
                List {
                    address: mb("STAFF@example.test"),
                    owner: mb("other@example.test"),
                    members: vec![Address::Mailbox(mb("ann@example.test"))],
                    posting: Posting::Anyone,
                },
            ],
        }
    }

    #[test]
    fn a_snapshot_is_merged_and_the_file_wins() {
        let file = with("url = \"ldap://h/\"\nbase = \"dc=x\"\n").expect("valid");
        let merged = file.with_directory(&tables()).expect("merges");
        // corp.test is routed by the file's ".corp.test", example.test is local already;
        // x.sub.test is only matched by the file's wildcard "*.sub.test": an exact domain is
        // a rule of its own (and wins), so the directory's is added.
        let added: Vec<&str> = merged.table.local_domains[file.table.local_domains.len()..]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(added, ["dir.test", "x.sub.test"]);
        let names: Vec<String> = merged
            .local_domains
            .iter()
            .map(|d| d.to_ascii().to_owned())
            .collect();
        assert_eq!(names, ["example.test", "dir.test", "x.sub.test"]);
        assert!(
            merged
                .senders
                .local_domains
                .contains(&"dir.test".to_owned())
        );
        // team@ is the file's alias, j@ the file's alternate: both left to the file. boss@ (a
        // list owner in the file, nothing more) and help@ are added.
        let aliases: Vec<(&str, &[String])> = merged
            .table
            .aliases
            .iter()
            .map(|(a, m)| (a.as_str(), m.as_slice()))
            .collect();
        assert_eq!(
            aliases,
            [
                ("boss@example.test", &["eve@example.test".to_owned()][..]),
                ("help@dir.test", &["joe@example.test".to_owned()][..]),
                ("team@example.test", &["joe@example.test".to_owned()][..]),
            ]
        );
        // STAFF@ is the file's list: the file's stays, the directory's crew@ is added with its
        // route to the list channel.
        let lists: Vec<(String, String)> = merged
            .lists
            .iter()
            .map(|l| (l.address.to_string(), l.owner.to_string()))
            .collect();
        assert_eq!(
            lists,
            [
                ("staff@example.test".into(), "boss@example.test".into()),
                ("crew@dir.test".into(), "owner-crew@dir.test".into()),
            ]
        );
        let route = merged.table.routes.last().expect("a route");
        assert_eq!(
            (route.address.as_deref(), route.channel.as_str()),
            (Some("crew@dir.test"), LISTS_CHANNEL)
        );
        assert_eq!(merged.table.routes.len(), file.table.routes.len() + 1);
        // The file's configuration itself is unchanged, and an empty snapshot changes nothing.
        assert_eq!(file.table.aliases.len(), 1);
        let same = file
            .with_directory(&DirectoryTables::default())
            .expect("merges");
        assert_eq!(same.table, file.table);
        assert_eq!(same.lists, file.lists);
    }

    #[test]
    fn a_snapshot_the_table_refuses_is_an_error() {
        // An alias with no member cannot come from `load`, but the table is the last check.
        let file = with("url = \"ldap://h/\"\nbase = \"dc=x\"\n").expect("valid");
        let mut t = DirectoryTables::default();
        t.aliases.insert("empty@dir.test".into(), Vec::new());
        let r = file.with_directory(&t);
        assert_eq!(invalid_key(r), "directory");
    }
}

#[cfg(test)]
mod tests;
