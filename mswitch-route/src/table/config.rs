//! The table's configuration: plain structs, built in code or read from TOML (serde), and
//! checked by [`TableRouter::new`](super::TableRouter::new).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use mswitch_core::address::{AddressError, MailboxError};
use serde::Deserialize;

use super::settings::TlsPolicy;

/// The sub-address separator used when none is configured.
pub const DEFAULT_SUBADDRESS_SEPARATOR: &str = "+";

/// The characters that may be the sub-address separator: the RFC 5322 `atext` specials (a
/// letter or digit would split ordinary names; `.`, `@` and quotes have other meanings).
pub const SUBADDRESS_SEPARATORS: &str = "!#$%&'*+-/=?^_`{|}~";

/// Everything the table router is built from. Every field has a default (an empty table that
/// refuses every address), so a TOML section names only what it uses; unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TableConfig {
    /// Domains this switch delivers itself, through [`TableConfig::local_channel()`] with next
    /// hop `Local`. Domain patterns, as for [`RouteEntry::domain`].
    pub local_domains: Vec<String>,
    /// The channel of local delivery (a Maildir or LMTP channel). Required when
    /// `local_domains` is not empty.
    pub local_channel: Option<String>,
    /// Per-address and per-domain routes (`[[route]]` in TOML; `routes` is accepted too).
    #[serde(rename = "route", alias = "routes")]
    pub routes: Vec<RouteEntry>,
    /// Where mail goes that nothing else matches. Without it, such mail is refused
    /// (550 5.1.2).
    pub default_route: Option<DefaultRouteEntry>,
    /// Aliases: address → the addresses it stands for (one or more, of either kind; members
    /// are routed again, so aliases nest).
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Alternate addresses: canonical mailbox → the other addresses that deliver to it.
    pub alternates: BTreeMap<String, Vec<String>>,
    /// The sub-address separator (`joe+tag`): one character, or empty to turn sub-addressing
    /// off. Default [`DEFAULT_SUBADDRESS_SEPARATOR`].
    pub subaddress_separator: String,
    /// Compare local parts exactly in the tables. Off by default: `Joe@` finds `joe@`'s
    /// alias or route (RFC 5321 §2.4 lets the receiving host decide; users expect this).
    pub case_sensitive_local_parts: bool,
    /// Named peers (`NextHop::Peer(name)`): where they are and their settings.
    pub peers: BTreeMap<String, PeerEntry>,
    /// Fixed addresses for named hosts, overriding DNS ([`super::HostsTable`]).
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            local_domains: Vec::new(),
            local_channel: None,
            routes: Vec::new(),
            default_route: None,
            aliases: BTreeMap::new(),
            alternates: BTreeMap::new(),
            subaddress_separator: DEFAULT_SUBADDRESS_SEPARATOR.to_owned(),
            case_sensitive_local_parts: false,
            peers: BTreeMap::new(),
            hosts: BTreeMap::new(),
        }
    }
}

impl TableConfig {
    /// An empty configuration (the same as `Default`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a local domain (pattern).
    pub fn local_domain(mut self, pattern: impl Into<String>) -> Self {
        self.local_domains.push(pattern.into());
        self
    }

    /// Sets the local delivery channel.
    pub fn local_channel(mut self, channel: impl Into<String>) -> Self {
        self.local_channel = Some(channel.into());
        self
    }

    /// Adds a route.
    pub fn route(mut self, route: RouteEntry) -> Self {
        self.routes.push(route);
        self
    }

    /// Sets the default route.
    pub fn default_route(mut self, route: DefaultRouteEntry) -> Self {
        self.default_route = Some(route);
        self
    }

    /// Adds an alias.
    pub fn alias<I, S>(mut self, address: impl Into<String>, members: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.aliases.insert(
            address.into(),
            members.into_iter().map(Into::into).collect(),
        );
        self
    }

    /// Adds alternate addresses of a canonical mailbox.
    pub fn alternates<I, S>(mut self, canonical: impl Into<String>, alternates: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.alternates.insert(
            canonical.into(),
            alternates.into_iter().map(Into::into).collect(),
        );
        self
    }

    /// Sets the sub-address separator (empty: off).
    pub fn subaddress_separator(mut self, separator: impl Into<String>) -> Self {
        self.subaddress_separator = separator.into();
        self
    }

    /// Compares local parts exactly (or not).
    pub fn case_sensitive_local_parts(mut self, on: bool) -> Self {
        self.case_sensitive_local_parts = on;
        self
    }

    /// Adds a named peer.
    pub fn peer(mut self, name: impl Into<String>, peer: PeerEntry) -> Self {
        self.peers.insert(name.into(), peer);
        self
    }

    /// Gives a host fixed addresses.
    pub fn host(mut self, name: impl Into<String>, addresses: Vec<IpAddr>) -> Self {
        self.hosts.insert(name.into(), addresses);
        self
    }
}

/// One route: an address or a domain pattern, the channel, and the next hop.
///
/// Domain patterns: `example.org` (that domain), `*.example.org` (its subdomains only),
/// `.example.org` (the domain and its subdomains). The next hop is `host` (a configured host,
/// `NextHop::Host`), `peer` (a named peer, `NextHop::Peer`), or neither: the recipient's
/// domain, looked up in DNS at delivery time (`NextHop::Domain`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// The address this route is for (exactly one of `address`, `domain`).
    pub address: Option<String>,
    /// The domain pattern this route is for (exactly one of `address`, `domain`).
    pub domain: Option<String>,
    /// The channel that takes the mail.
    pub channel: String,
    /// The next hop: `host`, `host:port`, `[host]:port` or `[IPv6]:port`.
    pub host: Option<String>,
    /// The next hop: a named peer (from [`TableConfig::peers`] or the channel's own).
    pub peer: Option<String>,
    /// Whether this switch is responsible for these recipients, so it takes them from anyone
    /// (a backup MX, a gateway, a store behind it). Default `true`; `false` makes this a
    /// transport route only, for clients that may relay.
    pub local: Option<bool>,
    /// The TLS policy towards the next hop.
    pub tls: Option<TlsPolicy>,
    /// SMTP AUTH credentials for the next hop.
    pub auth: Option<AuthEntry>,
    /// Keep the connection to the next hop open.
    #[serde(default)]
    pub permanent: bool,
}

impl RouteEntry {
    /// A route for one address.
    pub fn for_address(address: impl Into<String>, channel: impl Into<String>) -> Self {
        RouteEntry {
            address: Some(address.into()),
            channel: channel.into(),
            ..RouteEntry::default()
        }
    }

    /// A route for a domain pattern.
    pub fn for_domain(pattern: impl Into<String>, channel: impl Into<String>) -> Self {
        RouteEntry {
            domain: Some(pattern.into()),
            channel: channel.into(),
            ..RouteEntry::default()
        }
    }

    /// Next hop: a configured host (`host`, `host:port`, `[host]:port`).
    pub fn via_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Next hop: a named peer.
    pub fn via_peer(mut self, peer: impl Into<String>) -> Self {
        self.peer = Some(peer.into());
        self
    }

    /// Marks the route as a transport route only (not a domain this switch answers for).
    pub fn not_local(mut self) -> Self {
        self.local = Some(false);
        self
    }

    /// Sets the TLS policy towards the next hop.
    pub fn tls(mut self, tls: TlsPolicy) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets SMTP AUTH credentials for the next hop.
    pub fn auth(mut self, auth: AuthEntry) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Keeps the connection to the next hop open.
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }
}

/// The default route: a channel and, optionally, a smarthost; without one, the recipient's
/// domain is looked up in DNS at delivery time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultRouteEntry {
    /// The channel.
    pub channel: String,
    /// The smarthost: `host`, `host:port`, `[host]:port` or `[IPv6]:port`.
    pub smarthost: Option<String>,
    /// The TLS policy towards the smarthost (or the MX hosts).
    pub tls: Option<TlsPolicy>,
    /// SMTP AUTH credentials for the smarthost.
    pub auth: Option<AuthEntry>,
    /// Keep the connection to the smarthost open.
    #[serde(default)]
    pub permanent: bool,
}

impl DefaultRouteEntry {
    /// Through `channel`, to each domain's MX.
    pub fn mx(channel: impl Into<String>) -> Self {
        DefaultRouteEntry {
            channel: channel.into(),
            ..DefaultRouteEntry::default()
        }
    }

    /// Through `channel`, to a smarthost.
    pub fn smarthost(channel: impl Into<String>, host: impl Into<String>) -> Self {
        DefaultRouteEntry {
            channel: channel.into(),
            smarthost: Some(host.into()),
            ..DefaultRouteEntry::default()
        }
    }

    /// Sets the TLS policy.
    pub fn tls(mut self, tls: TlsPolicy) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets SMTP AUTH credentials.
    pub fn auth(mut self, auth: AuthEntry) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Keeps the connection open.
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }
}

/// A named peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    /// Where it is: `host`, `host:port`, `[host]:port` or `[IPv6]:port`.
    pub host: String,
    /// The TLS policy towards it.
    pub tls: Option<TlsPolicy>,
    /// SMTP AUTH credentials for it.
    pub auth: Option<AuthEntry>,
    /// Keep the connection to it open.
    #[serde(default)]
    pub permanent: bool,
}

impl PeerEntry {
    /// A peer at `host` (`host`, `host:port`, ...).
    pub fn at(host: impl Into<String>) -> Self {
        PeerEntry {
            host: host.into(),
            ..PeerEntry::default()
        }
    }

    /// Sets the TLS policy.
    pub fn tls(mut self, tls: TlsPolicy) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets SMTP AUTH credentials.
    pub fn auth(mut self, auth: AuthEntry) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Keeps the connection open.
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }
}

/// SMTP AUTH credentials as configured: a user name and exactly one of `password`,
/// `password_file`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthEntry {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Option<String>,
    /// A file whose first line is the password (read by the daemon).
    pub password_file: Option<PathBuf>,
    /// The identity to act as, if not `username`.
    pub authzid: Option<String>,
    /// Authenticate without TLS too.
    #[serde(default)]
    pub allow_plaintext: bool,
}

impl AuthEntry {
    /// A user name and password.
    pub fn password(username: impl Into<String>, password: impl Into<String>) -> Self {
        AuthEntry {
            username: username.into(),
            password: Some(password.into()),
            ..AuthEntry::default()
        }
    }

    /// A user name and a password file.
    pub fn password_file(username: impl Into<String>, file: impl Into<PathBuf>) -> Self {
        AuthEntry {
            username: username.into(),
            password_file: Some(file.into()),
            ..AuthEntry::default()
        }
    }
}

impl fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthEntry")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .field("authzid", &self.authzid)
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

/// Why a [`TableConfig`] cannot be used. Every variant names the entry at fault, in the form
/// `route[2] (domain ".example.org")`, `alias "team@example.org"`, `default_route`,
/// `peer "hub"`, `hosts "relay.example"`: a configuration error, the operator's to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A domain or domain pattern that is not a valid domain name.
    #[error("{entry}: {value:?} is not a valid domain: {source}")]
    Domain {
        /// The entry.
        entry: String,
        /// The value as written.
        value: String,
        /// Why.
        source: MailboxError,
    },
    /// A domain pattern with a wildcard anywhere but as a leading `*.`.
    #[error("{entry}: {value:?} is not a domain pattern (`d`, `*.d` or `.d`)")]
    Pattern {
        /// The entry.
        entry: String,
        /// The value as written.
        value: String,
    },
    /// An address that is not a valid mailbox (table keys, canonical and alternate
    /// addresses are Internet mailboxes).
    #[error("{entry}: {value:?} is not a valid mailbox: {source}")]
    Mailbox {
        /// The entry.
        entry: String,
        /// The value as written.
        value: String,
        /// Why.
        source: MailboxError,
    },
    /// An alias member that is neither a mailbox nor an X.400 address.
    #[error("{entry}: {value:?} is not a valid address: {source}")]
    Address {
        /// The entry.
        entry: String,
        /// The value as written.
        value: String,
        /// Why.
        source: AddressError,
    },
    /// A host that is not `host`, `host:port`, `[host]:port` or `[IPv6]:port`, or whose name
    /// is not a valid host name.
    #[error("{entry}: {value:?} is not a host, host:port, [host]:port or [IPv6]:port")]
    Host {
        /// The entry.
        entry: String,
        /// The value as written.
        value: String,
    },
    /// An entry that is incomplete or contradicts itself (no channel, both a host and a
    /// peer, credentials that could never be sent, ...).
    #[error("{entry}: {reason}")]
    Invalid {
        /// The entry.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// The same address or domain pattern given twice (as two routes, or as an alias and an
    /// alternate, ...): which would win is not obvious, so neither does.
    #[error("{entry}: {key} is already given by {first}")]
    Duplicate {
        /// The later entry.
        entry: String,
        /// The address or pattern, normalized.
        key: String,
        /// The entry that gave it first.
        first: String,
    },
    /// Two entries give different delivery settings to the same channel and next hop.
    #[error("{first} and {second} give different settings for {hop} via channel {channel}")]
    ConflictingSettings {
        /// The channel.
        channel: String,
        /// The next hop.
        hop: String,
        /// The first entry.
        first: String,
        /// The second entry.
        second: String,
    },
    /// `local_domains` without a `local_channel`.
    #[error("local_domains: local domains are given but no local_channel delivers them")]
    NoLocalChannel,
    /// A sub-address separator that is not one character usable in a local part.
    #[error(
        "subaddress_separator: {value:?} is not one of {SUBADDRESS_SEPARATORS:?} (or empty: none)"
    )]
    Separator {
        /// The value as written.
        value: String,
    },
}
