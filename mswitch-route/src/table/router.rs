//! The compiled table and its [`Router`] implementation.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use mswitch_core::address::{Address, AddressLiteral, Domain, DomainPart, Mailbox};
use mswitch_core::envelope::{NextHop, Route};
use mswitch_core::id::ChannelId;
use mswitch_core::route::{HostResolver, ResolveError, RouteContext, RouteDecision, Router};
use mswitch_core::status::Status;
use mswitch_core::submission::Service;

use super::config::{AuthEntry, ConfigError, SUBADDRESS_SEPARATORS, TableConfig};
use super::hosts::{HostsTable, host_key};
use super::settings::{NamedPeer, PeerSettings, SaslCredentials, SaslSecret, TlsPolicy};

/// How a rule picks the next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hop {
    /// The local channel delivers.
    Local,
    /// The recipient's domain, looked up in DNS at delivery time.
    Mx,
    /// A configured host.
    Host { host: String, port: Option<u16> },
    /// A named peer.
    Peer(String),
}

/// One routing rule (an address route, a domain route, a local domain, the default route).
#[derive(Debug, Clone)]
struct Rule {
    /// The entry it came from, for error messages and logs.
    entry: String,
    channel: ChannelId,
    hop: Hop,
    local: bool,
    /// Settings for MX hops of this rule (host and peer hops keep theirs in the router's
    /// maps, where every rule that reaches the same hop finds them).
    settings: Option<PeerSettings>,
}

impl Rule {
    /// The next hop for a recipient at `domain`; `None` for an MX hop to a domain part that
    /// names no host (a general address literal).
    fn next_hop(&self, domain: &DomainPart) -> Option<NextHop> {
        match &self.hop {
            Hop::Local => Some(NextHop::Local),
            Hop::Host { host, port } => Some(NextHop::Host {
                host: host.clone(),
                port: *port,
            }),
            Hop::Peer(p) => Some(NextHop::Peer(p.clone())),
            Hop::Mx => match domain {
                DomainPart::Domain(d) => Some(NextHop::Domain(d.to_ascii().to_owned())),
                DomainPart::Literal(AddressLiteral::Ipv4(a)) => Some(NextHop::Host {
                    host: a.to_string(),
                    port: None,
                }),
                DomainPart::Literal(AddressLiteral::Ipv6(a)) => Some(NextHop::Host {
                    host: a.to_string(),
                    port: None,
                }),
                DomainPart::Literal(_) => None,
            },
        }
    }
}

/// What the table says about one address.
#[derive(Debug, Clone)]
enum AddressRule {
    Alias(Vec<Address>),
    Alternate(Mailbox),
    Route(Rule),
}

/// `*.example.org` or `.example.org`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wildcard {
    /// `*.example.org`: subdomains only.
    Subdomains,
    /// `.example.org`: the domain and its subdomains.
    DomainAndSubdomains,
}

/// What a route entry is for.
enum Target<'a> {
    Address(&'a str),
    Domain(&'a str),
}

/// A parsed domain pattern, in lower-case A-labels.
enum Pattern {
    Exact(String),
    Wild(Wildcard, String),
}

/// A [`Router`] for static deployments: local domains, per-address and per-domain routes, a
/// default route, aliases, alternate addresses and sub-addressing, with an optional DNS check
/// of the recipient's domain at RCPT time. Built from a [`TableConfig`]; immutable (a reload
/// builds a new one). See the [module documentation](super) for the rules.
pub struct TableRouter {
    case_sensitive: bool,
    separator: Option<char>,
    /// Keyed by `local@domain` (local part lower-cased unless case-sensitive, domain in
    /// lower-case A-labels); the entry name with each rule.
    addresses: HashMap<String, (String, AddressRule)>,
    exact: HashMap<String, Rule>,
    wildcards: HashMap<String, (Wildcard, Rule)>,
    default: Option<Rule>,
    /// Settings for host next hops, by channel and hop (host normalized), with the entry
    /// that gave them.
    host_settings: HashMap<(ChannelId, NextHop), (String, PeerSettings)>,
    peers: BTreeMap<String, NamedPeer>,
    hosts: HostsTable,
    resolver: Option<Arc<dyn HostResolver>>,
    /// When set, the DNS check applies only to routes through these channels (those that
    /// deliver by MX); other channels (an archive, a gateway) take domain routes as names.
    dns_channels: Option<std::collections::HashSet<ChannelId>>,
}

impl fmt::Debug for TableRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableRouter")
            .field("case_sensitive", &self.case_sensitive)
            .field("separator", &self.separator)
            .field("addresses", &self.addresses)
            .field("exact", &self.exact)
            .field("wildcards", &self.wildcards)
            .field("default", &self.default)
            .field("host_settings", &self.host_settings)
            .field("peers", &self.peers)
            .field("hosts", &self.hosts)
            .field("dns_check", &self.resolver.is_some())
            .finish()
    }
}

impl TableRouter {
    /// Checks `config` and builds the table. The first error found is returned; it names the
    /// entry at fault.
    pub fn new(config: &TableConfig) -> Result<Self, ConfigError> {
        let mut t = TableRouter {
            case_sensitive: config.case_sensitive_local_parts,
            separator: parse_separator(&config.subaddress_separator)?,
            addresses: HashMap::new(),
            exact: HashMap::new(),
            wildcards: HashMap::new(),
            default: None,
            host_settings: HashMap::new(),
            peers: BTreeMap::new(),
            hosts: HostsTable::default(),
            resolver: None,
            dns_channels: None,
        };
        t.add_local_domains(config)?;
        for (i, r) in config.routes.iter().enumerate() {
            t.add_route(i, r)?;
        }
        if let Some(d) = &config.default_route {
            let entry = "default_route".to_owned();
            let channel = channel(&entry, &d.channel)?;
            let hop = match &d.smarthost {
                Some(h) => host_hop(&entry, h)?,
                None => Hop::Mx,
            };
            let settings = settings(&entry, d.tls, d.auth.as_ref(), d.permanent)?;
            let rule = t.rule_with_settings(entry, channel, hop, false, settings)?;
            t.default = Some(rule);
        }
        for (name, p) in &config.peers {
            let entry = format!("peer {name:?}");
            if name.is_empty() {
                return Err(invalid(&entry, "a peer needs a name"));
            }
            let Hop::Host { host, port } = host_hop(&entry, &p.host)? else {
                return Err(ConfigError::Host {
                    entry,
                    value: p.host.clone(),
                });
            };
            let settings = settings(&entry, p.tls, p.auth.as_ref(), p.permanent)?;
            t.peers.insert(
                name.clone(),
                NamedPeer {
                    host,
                    port,
                    settings: settings.unwrap_or_default(),
                },
            );
        }
        t.add_aliases(config)?;
        t.add_alternates(config)?;
        let mut hosts = HashMap::new();
        let mut host_entries: HashMap<String, String> = HashMap::new();
        for (written, addresses) in &config.hosts {
            let entry = format!("hosts {written:?}");
            let name = written.strip_suffix('.').unwrap_or(written);
            if let Err(source) = Domain::parse(name) {
                return Err(ConfigError::Domain {
                    entry,
                    value: name.to_owned(),
                    source,
                });
            }
            if addresses.is_empty() {
                return Err(invalid(&entry, "no addresses"));
            }
            let key = host_key(name);
            if let Some(first) = host_entries.get(&key) {
                return Err(ConfigError::Duplicate {
                    entry,
                    key,
                    first: first.clone(),
                });
            }
            host_entries.insert(key.clone(), entry);
            hosts.insert(key, addresses.clone());
        }
        t.hosts = HostsTable::from_entries(hosts);
        Ok(t)
    }

    /// Turns on the DNS check at submission: a recipient routed to its domain's MX
    /// (`NextHop::Domain`) is refused at RCPT time when `resolver` says the domain takes no
    /// mail ([`RouteDecision::Reject`] with the resolver's status: 556 5.1.10 null MX,
    /// 550 5.1.2 no such domain), and deferred when it cannot tell
    /// ([`RouteDecision::TryLater`]). Only for the services with a dialogue (relay and
    /// submission); see the [module documentation](super). The table's hosts are applied over
    /// `resolver` ([`HostsTable::over`]).
    pub fn with_resolver(mut self, resolver: Arc<dyn HostResolver>) -> Self {
        self.resolver = Some(Arc::new(self.hosts.over(resolver)));
        self
    }

    /// Limits the DNS check to routes through `channels` (the channels that deliver by MX).
    pub fn dns_check_channels(mut self, channels: impl IntoIterator<Item = ChannelId>) -> Self {
        self.dns_channels = Some(channels.into_iter().collect());
        self
    }

    /// The table's decision for `address`, without the DNS check: what [`Router::route`]
    /// decides when no resolver is set. Never blocks.
    pub fn decide(&self, address: &Address) -> RouteDecision {
        let Address::Mailbox(m) = address else {
            return RouteDecision::Reject(Status::new(
                550,
                (5, 1, 3),
                "X.400 addresses are not routed by the routing table",
            ));
        };
        if let Some(d) = self.address_decision(m) {
            return d;
        }
        let rule = m
            .domain()
            .and_then(|d| self.domain_rules(d.to_ascii()).into_iter().next())
            .or(self.default.as_ref());
        match rule {
            Some(r) => self.deliver(r, m),
            None => RouteDecision::Reject(Status::new(
                550,
                (5, 1, 2),
                format!("No route to {}", m.domain_part()),
            )),
        }
    }

    /// The delivery settings for `hop` on `channel`, if any are configured: for the
    /// delivering channel to ask before it connects.
    ///
    /// - `Host`: the settings given on a route (or the default route) with that host (the
    ///   name compared case-insensitively) and port, through that channel.
    /// - `Peer`: the named peer's settings, whatever the channel.
    /// - `Domain(d)`: the settings of the most specific domain-level rule for `d` (exact
    ///   domain, longest wildcard, default route) that goes through `channel` to the MX.
    /// - `Local`: none.
    pub fn peer_settings(&self, channel: &ChannelId, hop: &NextHop) -> Option<&PeerSettings> {
        match hop {
            NextHop::Local => None,
            NextHop::Peer(name) => self
                .peers
                .get(name)
                .map(|p| &p.settings)
                .filter(|s| !s.is_default()),
            NextHop::Host { host, port } => {
                let key = NextHop::Host {
                    host: normalize_host(host),
                    port: *port,
                };
                self.host_settings
                    .get(&(channel.clone(), key))
                    .map(|(_, s)| s)
            }
            NextHop::Domain(d) => {
                let d = host_key(d);
                self.domain_rules(&d)
                    .into_iter()
                    .chain(self.default.as_ref())
                    .find(|r| r.channel == *channel && r.hop == Hop::Mx)
                    .and_then(|r| r.settings.as_ref())
            }
        }
    }

    /// Every (channel, host next hop) with settings, e.g. to open the permanent connections
    /// at start-up. Named peers are in [`TableRouter::named_peers`].
    pub fn host_settings(&self) -> impl Iterator<Item = (&ChannelId, &NextHop, &PeerSettings)> {
        self.host_settings.iter().map(|((c, h), (_, s))| (c, h, s))
    }

    /// A named peer: where it is and its settings.
    pub fn named_peer(&self, name: &str) -> Option<&NamedPeer> {
        self.peers.get(name)
    }

    /// Every named peer, by name: what the daemon puts in each SMTP channel's `peers` map.
    pub fn named_peers(&self) -> impl Iterator<Item = (&str, &NamedPeer)> {
        self.peers.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// The hosts table.
    pub fn hosts(&self) -> &HostsTable {
        &self.hosts
    }

    /// The sub-address separator, if sub-addressing is on: the local channel splits the
    /// delivered address with the same one to find the folder.
    pub fn subaddress_separator(&self) -> Option<char> {
        self.separator
    }

    /// Whether local parts are compared exactly.
    pub fn case_sensitive_local_parts(&self) -> bool {
        self.case_sensitive
    }

    fn add_local_domains(&mut self, config: &TableConfig) -> Result<(), ConfigError> {
        if config.local_domains.is_empty() {
            return Ok(());
        }
        let Some(local) = &config.local_channel else {
            return Err(ConfigError::NoLocalChannel);
        };
        let channel = channel("local_channel", local)?;
        for (i, d) in config.local_domains.iter().enumerate() {
            let entry = format!("local_domains[{i}] ({d:?})");
            let rule = Rule {
                entry: entry.clone(),
                channel: channel.clone(),
                hop: Hop::Local,
                local: true,
                settings: None,
            };
            self.insert_domain(&entry, d, rule)?;
        }
        Ok(())
    }

    fn add_route(&mut self, i: usize, r: &super::config::RouteEntry) -> Result<(), ConfigError> {
        let (entry, target) = match (&r.address, &r.domain) {
            (Some(a), None) => (format!("route[{i}] (address {a:?})"), Target::Address(a)),
            (None, Some(d)) => (format!("route[{i}] (domain {d:?})"), Target::Domain(d)),
            _ => {
                return Err(invalid(
                    &format!("route[{i}]"),
                    "give exactly one of `address` and `domain`",
                ));
            }
        };
        let channel = channel(&entry, &r.channel)?;
        let hop = match (&r.host, &r.peer) {
            (Some(_), Some(_)) => {
                return Err(invalid(&entry, "give a `host` or a `peer`, not both"));
            }
            (Some(h), None) => host_hop(&entry, h)?,
            (None, Some(p)) if p.is_empty() => return Err(invalid(&entry, "empty peer name")),
            (None, Some(p)) => Hop::Peer(p.clone()),
            (None, None) => Hop::Mx,
        };
        let settings = settings(&entry, r.tls, r.auth.as_ref(), r.permanent)?;
        if settings.is_some() && hop == Hop::Mx && matches!(target, Target::Address(_)) {
            return Err(invalid(
                &entry,
                "an address route to the domain's MX takes the settings of its domain's \
                 route; give a `host` to set them here",
            ));
        }
        let rule = self.rule_with_settings(
            entry.clone(),
            channel,
            hop,
            r.local.unwrap_or(true),
            settings,
        )?;
        match target {
            Target::Address(address) => {
                let m = mailbox(&entry, address)?;
                let key = self.key_of(&m);
                self.insert_address(&entry, key, AddressRule::Route(rule))
            }
            Target::Domain(pattern) => self.insert_domain(&entry, pattern, rule),
        }
    }

    /// A rule; settings for a host hop are registered by (channel, hop), those of a peer hop
    /// are refused (they belong to the peer), those of an MX hop stay with the rule.
    fn rule_with_settings(
        &mut self,
        entry: String,
        channel: ChannelId,
        hop: Hop,
        local: bool,
        settings: Option<PeerSettings>,
    ) -> Result<Rule, ConfigError> {
        let mut rule = Rule {
            entry,
            channel,
            hop,
            local,
            settings: None,
        };
        let Some(settings) = settings else {
            return Ok(rule);
        };
        match &rule.hop {
            Hop::Local | Hop::Mx => rule.settings = Some(settings),
            Hop::Peer(name) => {
                return Err(invalid(
                    &rule.entry,
                    &format!(
                        "settings for the named peer {name:?} go on the peer (peers.{name}), \
                         not on a route"
                    ),
                ));
            }
            Hop::Host { host, port } => {
                let key = (
                    rule.channel.clone(),
                    NextHop::Host {
                        host: host.clone(),
                        port: *port,
                    },
                );
                match self.host_settings.get(&key) {
                    Some((first, existing)) if *existing != settings => {
                        return Err(ConfigError::ConflictingSettings {
                            channel: rule.channel.to_string(),
                            hop: key.1.to_string(),
                            first: first.clone(),
                            second: rule.entry.clone(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        self.host_settings
                            .insert(key, (rule.entry.clone(), settings));
                    }
                }
            }
        }
        Ok(rule)
    }

    fn add_aliases(&mut self, config: &TableConfig) -> Result<(), ConfigError> {
        for (alias, members) in &config.aliases {
            let entry = format!("alias {alias:?}");
            let m = mailbox(&entry, alias)?;
            if members.is_empty() {
                return Err(invalid(&entry, "an alias needs at least one member"));
            }
            let members = members
                .iter()
                .map(|s| {
                    Address::parse(s).map_err(|source| ConfigError::Address {
                        entry: entry.clone(),
                        value: s.clone(),
                        source,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let key = self.key_of(&m);
            self.insert_address(&entry, key, AddressRule::Alias(members))?;
        }
        Ok(())
    }

    fn add_alternates(&mut self, config: &TableConfig) -> Result<(), ConfigError> {
        for (canonical, alternates) in &config.alternates {
            let entry = format!("alternates of {canonical:?}");
            let c = mailbox(&entry, canonical)?;
            let canonical_key = self.key_of(&c);
            for alt in alternates {
                let entry = format!("alternate {alt:?} of {canonical:?}");
                let key = self.key_of(&mailbox(&entry, alt)?);
                if key == canonical_key {
                    return Err(invalid(&entry, "an address cannot be its own alternate"));
                }
                self.insert_address(&entry, key, AddressRule::Alternate(c.clone()))?;
            }
        }
        // A canonical mailbox that is itself an alternate would make a chain: refused, so
        // that one lookup always reaches the mailbox.
        for canonical in config.alternates.keys() {
            let entry = format!("alternates of {canonical:?}");
            let key = self.key_of(&mailbox(&entry, canonical)?);
            if let Some((first, AddressRule::Alternate(_))) = self.addresses.get(&key) {
                return Err(invalid(
                    &entry,
                    &format!("the canonical address is itself an alternate ({first})"),
                ));
            }
        }
        Ok(())
    }

    fn insert_address(
        &mut self,
        entry: &str,
        key: String,
        rule: AddressRule,
    ) -> Result<(), ConfigError> {
        if let Some((first, _)) = self.addresses.get(&key) {
            return Err(ConfigError::Duplicate {
                entry: entry.to_owned(),
                key,
                first: first.clone(),
            });
        }
        self.addresses.insert(key, (entry.to_owned(), rule));
        Ok(())
    }

    fn insert_domain(&mut self, entry: &str, pattern: &str, rule: Rule) -> Result<(), ConfigError> {
        let duplicate = |key: String, first: &Rule| ConfigError::Duplicate {
            entry: entry.to_owned(),
            key,
            first: first.entry.clone(),
        };
        match parse_pattern(entry, pattern)? {
            Pattern::Exact(d) => {
                if let Some(first) = self.exact.get(&d) {
                    return Err(duplicate(d, first));
                }
                self.exact.insert(d, rule);
            }
            Pattern::Wild(kind, d) => {
                if let Some((_, first)) = self.wildcards.get(&d) {
                    // `*.d` and `.d` both match every subdomain of d: ambiguous.
                    return Err(duplicate(format!("*.{d} / .{d}"), first));
                }
                self.wildcards.insert(d, (kind, rule));
            }
        }
        Ok(())
    }

    /// The lookup key of a mailbox: its local part (lower-cased unless case-sensitive) and
    /// its domain part in normal form.
    fn key_of(&self, m: &Mailbox) -> String {
        self.key(m.local_part().as_str(), m.domain_part())
    }

    fn key(&self, local: &str, domain: &DomainPart) -> String {
        let domain = match domain {
            DomainPart::Domain(d) => d.to_ascii().to_owned(),
            DomainPart::Literal(l) => l.to_string(),
        };
        if self.case_sensitive {
            format!("{local}@{domain}")
        } else {
            format!("{}@{domain}", local.to_lowercase())
        }
    }

    /// The address tables: the full address first, then its base without the sub-address.
    fn address_decision(&self, m: &Mailbox) -> Option<RouteDecision> {
        if let Some((_, rule)) = self.addresses.get(&self.key_of(m)) {
            return Some(self.apply(rule, m, None));
        }
        let (base, detail) = self
            .separator
            .and_then(|c| m.local_part().split_detail(c))?;
        let (_, rule) = self.addresses.get(&self.key(base, m.domain_part()))?;
        Some(self.apply(rule, m, Some(detail)))
    }

    fn apply(&self, rule: &AddressRule, m: &Mailbox, detail: Option<&str>) -> RouteDecision {
        match rule {
            AddressRule::Alias(members) => RouteDecision::Expand(members.clone()),
            AddressRule::Alternate(canonical) => {
                let target = match (self.separator, detail) {
                    (Some(sep), Some(detail)) if !detail.is_empty() => canonical
                        .with_local_part(&format!(
                            "{}{sep}{detail}",
                            canonical.local_part().as_str()
                        ))
                        .unwrap_or_else(|_| canonical.clone()),
                    _ => canonical.clone(),
                };
                RouteDecision::Expand(vec![Address::Mailbox(target)])
            }
            AddressRule::Route(r) => self.deliver(r, m),
        }
    }

    fn deliver(&self, rule: &Rule, m: &Mailbox) -> RouteDecision {
        match rule.next_hop(m.domain_part()) {
            Some(next_hop) => RouteDecision::Deliver(Route {
                channel: rule.channel.clone(),
                next_hop,
                local: rule.local,
            }),
            None => RouteDecision::Reject(Status::new(
                550,
                (5, 1, 3),
                format!("No host to deliver to at {}", m.domain_part()),
            )),
        }
    }

    /// The domain-level rules matching `domain` (lower-case A-labels), most specific first:
    /// the exact domain, then wildcards from the longest suffix to the shortest. The default
    /// route is not included.
    fn domain_rules(&self, domain: &str) -> Vec<&Rule> {
        let mut out = Vec::new();
        if let Some(r) = self.exact.get(domain) {
            out.push(r);
        }
        let mut suffix = domain;
        loop {
            if let Some((kind, r)) = self.wildcards.get(suffix)
                && (suffix != domain || *kind == Wildcard::DomainAndSubdomains)
            {
                out.push(r);
            }
            match suffix.split_once('.') {
                Some((_, rest)) => suffix = rest,
                None => break,
            }
        }
        out
    }

    /// The DNS check at RCPT time.
    async fn check_domain(
        &self,
        route: Route,
        address: &Address,
        ctx: RouteContext<'_>,
    ) -> RouteDecision {
        let (Some(resolver), NextHop::Domain(domain)) = (&self.resolver, &route.next_hop) else {
            return RouteDecision::Deliver(route);
        };
        if !matches!(ctx.submission.service, Service::Relay | Service::Submission)
            || self
                .dns_channels
                .as_ref()
                .is_some_and(|c| !c.contains(&route.channel))
        {
            return RouteDecision::Deliver(route);
        }
        match resolver.mail_hosts(domain).await {
            Ok(_) => RouteDecision::Deliver(route),
            Err(ResolveError::Permanent(status)) => {
                tracing::debug!(
                    recipient = %address, domain, %status, "recipient domain takes no mail"
                );
                RouteDecision::Reject(status)
            }
            Err(ResolveError::Temporary(status)) => {
                tracing::debug!(
                    recipient = %address, domain, %status, "recipient domain not resolved"
                );
                RouteDecision::TryLater(status)
            }
        }
    }
}

#[async_trait]
impl Router for TableRouter {
    async fn route(&self, address: &Address, ctx: RouteContext<'_>) -> RouteDecision {
        match self.decide(address) {
            RouteDecision::Deliver(route) => self.check_domain(route, address, ctx).await,
            other => other,
        }
    }
}

fn invalid(entry: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    }
}

fn channel(entry: &str, name: &str) -> Result<ChannelId, ConfigError> {
    if name.trim().is_empty() {
        return Err(invalid(entry, "no channel"));
    }
    Ok(ChannelId::new(name))
}

fn mailbox(entry: &str, s: &str) -> Result<Mailbox, ConfigError> {
    Mailbox::parse(s).map_err(|source| ConfigError::Mailbox {
        entry: entry.to_owned(),
        value: s.to_owned(),
        source,
    })
}

fn parse_separator(s: &str) -> Result<Option<char>, ConfigError> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (None, _) => Ok(None),
        (Some(c), None) if SUBADDRESS_SEPARATORS.contains(c) => Ok(Some(c)),
        _ => Err(ConfigError::Separator {
            value: s.to_owned(),
        }),
    }
}

fn parse_pattern(entry: &str, s: &str) -> Result<Pattern, ConfigError> {
    let (kind, name) = if let Some(rest) = s.strip_prefix("*.") {
        (Some(Wildcard::Subdomains), rest)
    } else if let Some(rest) = s.strip_prefix('.') {
        (Some(Wildcard::DomainAndSubdomains), rest)
    } else {
        (None, s)
    };
    if name.contains('*') {
        return Err(ConfigError::Pattern {
            entry: entry.to_owned(),
            value: s.to_owned(),
        });
    }
    let d = Domain::parse(name).map_err(|source| ConfigError::Domain {
        entry: entry.to_owned(),
        value: s.to_owned(),
        source,
    })?;
    let d = d.to_ascii().to_owned();
    Ok(match kind {
        Some(k) => Pattern::Wild(k, d),
        None => Pattern::Exact(d),
    })
}

/// `host`, `host:port`, `[host]:port`, `[IPv6]:port` or a bare IPv6 address, with the host a
/// valid domain name or IP address (normalized: lower-case A-labels, canonical IP form).
fn host_hop(entry: &str, s: &str) -> Result<Hop, ConfigError> {
    let bad = || ConfigError::Host {
        entry: entry.to_owned(),
        value: s.to_owned(),
    };
    let t = s.trim();
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        (host, port)
    } else {
        match t.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p.parse::<u16>().map_err(|_| bad())?)),
            // Several colons: only a bare IPv6 address, without a port.
            Some(_) if t.parse::<std::net::Ipv6Addr>().is_err() => return Err(bad()),
            _ => (t, None),
        }
    };
    let valid = host.parse::<IpAddr>().is_ok() || Domain::parse(host).is_ok();
    if !valid || port == Some(0) {
        return Err(bad());
    }
    Ok(Hop::Host {
        host: normalize_host(host),
        port,
    })
}

/// The normal form of a host in a next hop: an IP address in its canonical text form, a name
/// in lower-case A-labels.
fn normalize_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host_key(host),
    }
}

/// The settings an entry gives, `None` when it gives none.
fn settings(
    entry: &str,
    tls: Option<TlsPolicy>,
    auth: Option<&AuthEntry>,
    permanent: bool,
) -> Result<Option<PeerSettings>, ConfigError> {
    let auth = match auth {
        None => None,
        Some(a) => {
            if a.username.is_empty() {
                return Err(invalid(entry, "auth: no username"));
            }
            let secret = match (&a.password, &a.password_file) {
                (Some(p), None) => SaslSecret::Password(p.clone()),
                (None, Some(f)) => SaslSecret::File(f.clone()),
                _ => {
                    return Err(invalid(
                        entry,
                        "auth: give exactly one of `password` and `password_file`",
                    ));
                }
            };
            if tls == Some(TlsPolicy::None) && !a.allow_plaintext {
                return Err(invalid(
                    entry,
                    "auth with tls = \"none\" would never be sent: set allow_plaintext or use TLS",
                ));
            }
            Some(SaslCredentials {
                username: a.username.clone(),
                secret,
                authzid: a.authzid.clone(),
                allow_plaintext: a.allow_plaintext,
            })
        }
    };
    let s = PeerSettings {
        tls,
        auth,
        permanent,
    };
    Ok((!s.is_default()).then_some(s))
}
