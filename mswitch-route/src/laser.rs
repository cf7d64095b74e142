//! LASER routing: LDAP Address Search for Electronic mail Routing, a full-address lookup in a
//! directory.
//!
//! A recipient in a LASER domain is looked up in the directory with a filter built from a
//! [`FilterTemplate`] (by default `(|(mail={})(mailLocalAddress={}))`, every value escaped by
//! RFC 4515 rules), and the entries found decide the route:
//!
//! | entries found | decision |
//! |---|---|
//! | none | `Reject` 550 5.1.1 unknown user |
//! | more than one | `Reject` 550 5.1.4 ambiguous (RFC 3463 X.1.4), or `TryLater` 451 4.1.4 with [`Ambiguity::TryLater`] |
//! | one | by its attributes, below ([`EntryRouting`]) |
//! | (directory unreachable, timeout, error) | `TryLater` 451 4.4.3, never a 5xx, never cached |
//!
//! One entry, in this order of precedence ([`EntryRouting`] names the attributes):
//! 1. a channel attribute (none by default; `channel_attribute`): `Deliver` on that channel,
//!    to the entry's mail host if it has one, else `NextHop::Local`;
//! 2. `mailRoutingAddress`, when it names another address: `Expand` to it (a rewrite; the new
//!    address is routed again, and the pipeline's alias loop and depth limits stop cycles). A
//!    routing address equal to the address looked up is no rewrite and is skipped;
//! 3. `mailHost`: `Deliver` on the configured host channel to `NextHop::Host` (no port: the
//!    channel's default). A mail host that names this switch ([`EntryRouting::local_host`]) is
//!    treated as no mail host;
//! 4. no delivery information: `Deliver` on the default local channel with `NextHop::Local`
//!    if one is configured, else `TryLater` 451 4.3.5 (the system is not configured to deliver
//!    it: an administrator must fix the entry or the configuration, and no mail is lost
//!    meanwhile).
//!
//! Values that cannot be used (a mail host that is not a host name or IP address, a routing
//! address that is not a mailbox) are logged and ignored. Every route is marked `local`: the
//! switch is responsible for LASER domains.
//!
//! Three modes ([`LaserMode`]), each with a fallback [`Router`] for every other address:
//! - **single domain**: LASER for the local domain(s);
//! - **hosted**: LASER against one directory for all hosted domains, a fixed list or the
//!   domains found in the directory itself ([`DomainSource`], re-read after its TTL);
//! - **boundary**: a domain table gives, per departmental domain, the department's directory
//!   and its SMTP server; LASER only validates the address there (the entry's attributes are
//!   not used) and a valid address goes to the department's server.
//!
//! Results are cached ([`CachePolicy`]: 60 s positive, 30 s negative by default, never more
//! than [`MAX_CACHE_TTL`]) against an injectable [`Clock`]. Directory failures are not cached.

mod cache;
mod directory;
mod filter;
#[cfg(feature = "ldap")]
mod ldap;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mswitch_core::address::{Address, Domain, Mailbox};
use mswitch_core::envelope::{NextHop, Route};
use mswitch_core::id::ChannelId;
use mswitch_core::route::{RouteContext, RouteDecision, Router};
use mswitch_core::status::Status;

pub use cache::{CachePolicy, Clock, MAX_CACHE_TTL, ManualClock, SystemClock};
pub use directory::{Directory, DirectoryError, Entry, Scope};
pub use filter::{FilterTemplate, FilterTemplateError, escape_value};
#[cfg(feature = "ldap")]
pub use ldap::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT, LdapConfig, LdapDirectory,
    SimpleBind,
};

use cache::Cache;
use filter::lookup_key;

/// After a failed refresh of the hosted domains, how long the previous set is used before the
/// directory is asked again (at most the source's TTL).
pub const HOSTED_DOMAINS_RETRY: Duration = Duration::from_secs(30);

/// Where and how to search the directory for an address.
#[derive(Debug, Clone)]
pub struct DirectorySearch {
    directory: Arc<dyn Directory>,
    base: String,
    scope: Scope,
    filter: FilterTemplate,
}

impl DirectorySearch {
    /// A subtree search under `base` with the default filter template.
    pub fn new(directory: Arc<dyn Directory>, base: impl Into<String>) -> Self {
        DirectorySearch {
            directory,
            base: base.into(),
            scope: Scope::Subtree,
            filter: FilterTemplate::default(),
        }
    }

    /// Searches with this scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Searches with this filter template.
    pub fn filter(mut self, filter: FilterTemplate) -> Self {
        self.filter = filter;
        self
    }

    async fn run(
        &self,
        mailbox: &Mailbox,
        attributes: &[&str],
    ) -> Result<Vec<Entry>, DirectoryError> {
        let Some(filter) = self.filter.build(mailbox) else {
            return Ok(Vec::new());
        };
        let result = self
            .directory
            .search(&self.base, self.scope, &filter, attributes)
            .await;
        match &result {
            Ok(entries) => tracing::debug!(
                address = %mailbox,
                base = %self.base,
                filter = %filter,
                entries = entries.len(),
                "LASER lookup"
            ),
            Err(e) => tracing::warn!(
                address = %mailbox,
                base = %self.base,
                filter = %filter,
                error = %e,
                "LASER lookup failed"
            ),
        }
        result
    }
}

/// How one directory entry is turned into a route: the attribute names and the channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRouting {
    mail_host_attribute: Option<String>,
    routing_address_attribute: Option<String>,
    channel_attribute: Option<String>,
    host_channel: ChannelId,
    default_local: Option<ChannelId>,
    local_hosts: Vec<String>,
}

impl EntryRouting {
    /// The default mail host attribute (`inetLocalMailRecipient`, from
    /// draft-lachman-laser-ldap-mail-routing).
    pub const MAIL_HOST: &'static str = "mailHost";
    /// The default routing address attribute (`inetLocalMailRecipient`).
    pub const MAIL_ROUTING_ADDRESS: &'static str = "mailRoutingAddress";

    /// `mailHost` routes on `host_channel`, `mailRoutingAddress` rewrites, no channel
    /// attribute, no default local channel.
    pub fn new(host_channel: impl Into<ChannelId>) -> Self {
        EntryRouting {
            mail_host_attribute: Some(Self::MAIL_HOST.to_owned()),
            routing_address_attribute: Some(Self::MAIL_ROUTING_ADDRESS.to_owned()),
            channel_attribute: None,
            host_channel: host_channel.into(),
            default_local: None,
            local_hosts: Vec::new(),
        }
    }

    /// The mail host attribute (`None`: not used).
    pub fn mail_host_attribute(mut self, name: Option<&str>) -> Self {
        self.mail_host_attribute = name.map(str::to_owned);
        self
    }

    /// The routing address attribute (`None`: not used).
    pub fn routing_address_attribute(mut self, name: Option<&str>) -> Self {
        self.routing_address_attribute = name.map(str::to_owned);
        self
    }

    /// The attribute naming the channel to deliver on (`None`, the default: not used).
    pub fn channel_attribute(mut self, name: Option<&str>) -> Self {
        self.channel_attribute = name.map(str::to_owned);
        self
    }

    /// Entries without delivery information are delivered on `channel` (`NextHop::Local`).
    pub fn default_local(mut self, channel: impl Into<ChannelId>) -> Self {
        self.default_local = Some(channel.into());
        self
    }

    /// A name of this switch: a mail host equal to it (case-insensitive) means local delivery.
    pub fn local_host(mut self, name: &str) -> Self {
        self.local_hosts.push(normalize_host(name));
        self
    }

    /// The attributes to ask the directory for.
    fn attributes(&self) -> Vec<&str> {
        [
            &self.mail_host_attribute,
            &self.routing_address_attribute,
            &self.channel_attribute,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect()
    }

    /// The route of the one entry found for the address whose lookup key is `key`.
    fn route(&self, entry: &Entry, mailbox: &Mailbox, key: &str) -> RouteDecision {
        let host = self
            .mail_host_attribute
            .as_deref()
            .and_then(|a| entry.first(a))
            .filter(|h| {
                let ok = is_host(h);
                if !ok {
                    tracing::warn!(dn = entry.dn(), value = h, "ignoring an unusable mail host");
                }
                ok
            })
            .filter(|h| !self.local_hosts.contains(&normalize_host(h)));
        let route = |channel: ChannelId, next_hop| {
            RouteDecision::Deliver(Route {
                channel,
                next_hop,
                local: true,
            })
        };
        let host_hop = |h: &str| NextHop::Host {
            host: h.trim_end_matches('.').to_owned(),
            port: None,
        };
        if let Some(channel) = self
            .channel_attribute
            .as_deref()
            .and_then(|a| entry.first(a))
        {
            return route(
                ChannelId::new(channel),
                host.map_or(NextHop::Local, host_hop),
            );
        }
        if let Some(value) = self
            .routing_address_attribute
            .as_deref()
            .and_then(|a| entry.first(a))
        {
            match Mailbox::parse(value) {
                Ok(target) if lookup_key(&target) != key => {
                    return RouteDecision::Expand(vec![Address::Mailbox(target)]);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    dn = entry.dn(),
                    value,
                    error = %e,
                    "ignoring an unusable routing address"
                ),
            }
        }
        if let Some(h) = host {
            return route(self.host_channel.clone(), host_hop(h));
        }
        if let Some(channel) = &self.default_local {
            return route(channel.clone(), NextHop::Local);
        }
        tracing::warn!(
            dn = entry.dn(),
            address = %mailbox,
            "directory entry has no delivery information and no default local channel is set"
        );
        RouteDecision::TryLater(Status::new(
            451,
            (4, 3, 5),
            format!("<{mailbox}>: no delivery information for this recipient"),
        ))
    }
}

fn normalize_host(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A host name or an IP address (what `NextHop::Host` takes).
fn is_host(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    h.parse::<IpAddr>().is_ok() || Domain::parse(h).is_ok()
}

/// Where the set of hosted domains comes from, when it comes from the directory: the values
/// of one attribute of the entries that match a fixed filter.
#[derive(Debug, Clone)]
pub struct DomainSource {
    directory: Arc<dyn Directory>,
    base: String,
    scope: Scope,
    filter: String,
    attribute: String,
    ttl: Duration,
}

impl DomainSource {
    /// The default filter: entries of the `domainRelatedObject` class (RFC 4524 §3.4).
    pub const DEFAULT_FILTER: &'static str = "(objectClass=domainRelatedObject)";
    /// The default attribute: `associatedDomain` (RFC 4524 §2.1).
    pub const DEFAULT_ATTRIBUTE: &'static str = "associatedDomain";
    /// The default time the set is kept before it is read again.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

    /// The values of `associatedDomain` of the `domainRelatedObject` entries below `base`,
    /// re-read every 300 s.
    pub fn new(directory: Arc<dyn Directory>, base: impl Into<String>) -> Self {
        DomainSource {
            directory,
            base: base.into(),
            scope: Scope::Subtree,
            filter: Self::DEFAULT_FILTER.to_owned(),
            attribute: Self::DEFAULT_ATTRIBUTE.to_owned(),
            ttl: Self::DEFAULT_TTL,
        }
    }

    /// Uses this filter (a complete filter: it has no placeholder).
    pub fn filter(mut self, filter: &str) -> Self {
        self.filter = filter.to_owned();
        self
    }

    /// Takes the domains from this attribute.
    pub fn attribute(mut self, attribute: &str) -> Self {
        self.attribute = attribute.to_owned();
        self
    }

    /// Searches with this scope.
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Keeps the set this long (capped at [`MAX_CACHE_TTL`]).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    async fn load(&self) -> Result<HashSet<String>, DirectoryError> {
        let entries = self
            .directory
            .search(
                &self.base,
                self.scope,
                &self.filter,
                &[self.attribute.as_str()],
            )
            .await?;
        let mut domains = HashSet::new();
        for entry in &entries {
            for value in entry.values(&self.attribute) {
                match Domain::parse(value.trim().trim_end_matches('.')) {
                    Ok(d) => {
                        domains.insert(d.to_ascii().to_owned());
                    }
                    Err(e) => tracing::warn!(
                        dn = entry.dn(),
                        value = value.as_str(),
                        error = %e,
                        "ignoring an unusable hosted domain"
                    ),
                }
            }
        }
        tracing::debug!(base = %self.base, domains = domains.len(), "hosted domains read");
        Ok(domains)
    }
}

/// The hosted domains: a fixed list or the directory's.
#[derive(Debug, Clone)]
pub enum HostedDomains {
    /// These domains.
    Fixed(Vec<Domain>),
    /// The domains the directory lists, re-read after a TTL.
    Directory(DomainSource),
}

/// A departmental domain of a boundary MTA: the department's directory and its SMTP server.
#[derive(Debug, Clone)]
pub struct Department {
    /// The department's domain (exactly; sub-domains are not included).
    pub domain: Domain,
    /// How to validate an address in the department's directory.
    pub search: DirectorySearch,
    /// The channel that takes valid mail to the department.
    pub channel: ChannelId,
    /// The department's SMTP server (usually a `NextHop::Host`).
    pub server: NextHop,
}

impl Department {
    /// A department.
    pub fn new(
        domain: Domain,
        search: DirectorySearch,
        channel: impl Into<ChannelId>,
        server: NextHop,
    ) -> Self {
        Department {
            domain,
            search,
            channel: channel.into(),
            server,
        }
    }
}

/// Which addresses LASER routes, and how.
#[derive(Debug, Clone)]
pub enum LaserMode {
    /// LASER for these (local) domains; the fallback router for everything else.
    SingleDomain {
        /// The domains (exactly; sub-domains are not included).
        domains: Vec<Domain>,
        /// The search.
        search: DirectorySearch,
        /// How an entry becomes a route.
        routing: EntryRouting,
    },
    /// LASER against one directory for all hosted domains; the fallback router for everything
    /// else (which the relay policy restricts to authorized clients).
    Hosted {
        /// The hosted domains.
        domains: HostedDomains,
        /// The search.
        search: DirectorySearch,
        /// How an entry becomes a route.
        routing: EntryRouting,
    },
    /// Per departmental domain, validation in the department's directory and delivery to its
    /// server; the fallback router for everything else.
    Boundary {
        /// The departments (the first one with the domain wins).
        departments: Vec<Department>,
    },
}

/// What to do when more than one entry matches an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ambiguity {
    /// `550 5.1.4` (RFC 3463 X.1.4, "destination mailbox address ambiguous"): the default,
    /// since the directory will not fix itself.
    #[default]
    Reject,
    /// `451 4.1.4`: keep the mail while an administrator fixes the directory.
    TryLater,
}

/// The cached set of hosted domains.
#[derive(Debug)]
struct HostedSet {
    domains: HashSet<String>,
    refresh_at: Instant,
}

/// Which LASER zone an address belongs to.
enum Zone<'a> {
    /// Routed by the entry's attributes.
    Entries {
        search: &'a DirectorySearch,
        routing: &'a EntryRouting,
    },
    /// Validated only; delivered to the department's server.
    Department {
        index: usize,
        department: &'a Department,
    },
}

impl Zone<'_> {
    /// The cache's zone number.
    fn index(&self) -> usize {
        match self {
            Zone::Entries { .. } => 0,
            Zone::Department { index, .. } => *index,
        }
    }
}

/// A [`Router`] that routes by directory lookup (LASER), and hands every other address to a
/// fallback router. See the [module documentation](self) for the rules.
pub struct LaserRouter {
    mode: LaserMode,
    fallback: Option<Arc<dyn Router>>,
    ambiguity: Ambiguity,
    cache: Cache,
    clock: Arc<dyn Clock>,
    hosted: Mutex<Option<HostedSet>>,
}

impl fmt::Debug for LaserRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LaserRouter")
            .field("mode", &self.mode)
            .field("fallback", &self.fallback.is_some())
            .field("ambiguity", &self.ambiguity)
            .field("cache", &self.cache)
            .finish()
    }
}

impl LaserRouter {
    /// A router for `mode`, with no fallback (other addresses get `550 5.1.2`), ambiguous
    /// addresses refused, the default cache and the system clock.
    pub fn new(mode: LaserMode) -> Self {
        LaserRouter {
            mode,
            fallback: None,
            ambiguity: Ambiguity::default(),
            cache: Cache::new(CachePolicy::default()),
            clock: Arc::new(SystemClock),
            hosted: Mutex::new(None),
        }
    }

    /// Routes addresses outside the LASER domains with `router`.
    pub fn fallback(mut self, router: Arc<dyn Router>) -> Self {
        self.fallback = Some(router);
        self
    }

    /// What to do with ambiguous addresses.
    pub fn on_ambiguous(mut self, ambiguity: Ambiguity) -> Self {
        self.ambiguity = ambiguity;
        self
    }

    /// Caches by `policy`.
    pub fn cache(mut self, policy: CachePolicy) -> Self {
        self.cache = Cache::new(policy);
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The mode.
    pub fn mode(&self) -> &LaserMode {
        &self.mode
    }

    /// Forgets every cached answer and the hosted domains (after a directory change that must
    /// be seen at once).
    pub fn clear_cache(&self) {
        self.cache.clear();
        *self.hosted.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// How many addresses are cached.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    async fn fallback_route(&self, address: &Address, ctx: RouteContext<'_>) -> RouteDecision {
        match &self.fallback {
            Some(router) => router.route(address, ctx).await,
            None => RouteDecision::Reject(Status::new(
                550,
                (5, 1, 2),
                format!("No route to {address}"),
            )),
        }
    }

    /// The LASER zone of `domain`, `None` if LASER does not route it.
    async fn zone(&self, domain: &Domain, now: Instant) -> Result<Option<Zone<'_>>, Status> {
        match &self.mode {
            LaserMode::SingleDomain {
                domains,
                search,
                routing,
            }
            | LaserMode::Hosted {
                domains: HostedDomains::Fixed(domains),
                search,
                routing,
            } => Ok(domains
                .iter()
                .any(|d| d == domain)
                .then_some(Zone::Entries { search, routing })),
            LaserMode::Hosted {
                domains: HostedDomains::Directory(source),
                search,
                routing,
            } => Ok(self
                .is_hosted(source, domain, now)
                .await?
                .then_some(Zone::Entries { search, routing })),
            LaserMode::Boundary { departments } => Ok(departments
                .iter()
                .position(|d| d.domain == *domain)
                .map(|index| Zone::Department {
                    index,
                    department: &departments[index],
                })),
        }
    }

    /// Whether `domain` is hosted, by the cached set, read again from the directory when it
    /// has expired. A failed read keeps the previous set (for [`HOSTED_DOMAINS_RETRY`]); with
    /// no previous set it is `451 4.4.3`.
    async fn is_hosted(
        &self,
        source: &DomainSource,
        domain: &Domain,
        now: Instant,
    ) -> Result<bool, Status> {
        let name = domain.to_ascii();
        {
            let hosted = self.hosted.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(set) = hosted.as_ref().filter(|s| s.refresh_at > now) {
                return Ok(set.domains.contains(name));
            }
        }
        let ttl = source.ttl.min(MAX_CACHE_TTL);
        let loaded = source.load().await;
        let mut hosted = self.hosted.lock().unwrap_or_else(PoisonError::into_inner);
        match (loaded, hosted.as_mut()) {
            (Ok(domains), _) => {
                let hit = domains.contains(name);
                *hosted = Some(HostedSet {
                    domains,
                    refresh_at: now + ttl,
                });
                Ok(hit)
            }
            (Err(e), Some(stale)) => {
                tracing::warn!(error = %e, "cannot re-read the hosted domains, keeping the previous set");
                stale.refresh_at = now + ttl.min(HOSTED_DOMAINS_RETRY);
                Ok(stale.domains.contains(name))
            }
            (Err(e), None) => {
                tracing::warn!(error = %e, "cannot read the hosted domains");
                Err(Status::from(&e))
            }
        }
    }

    /// The decision for the entries found for `mailbox` in `zone`.
    fn decide(
        &self,
        zone: &Zone<'_>,
        mailbox: &Mailbox,
        key: &str,
        entries: &[Entry],
    ) -> RouteDecision {
        match entries {
            [] => RouteDecision::Reject(Status::new(
                550,
                (5, 1, 1),
                format!("<{mailbox}>: unknown user"),
            )),
            [entry] => match zone {
                Zone::Entries { routing, .. } => routing.route(entry, mailbox, key),
                Zone::Department { department, .. } => RouteDecision::Deliver(Route {
                    channel: department.channel.clone(),
                    next_hop: department.server.clone(),
                    local: true,
                }),
            },
            many => {
                let dns: Vec<&str> = many.iter().map(Entry::dn).collect();
                tracing::warn!(address = %mailbox, entries = ?dns, "ambiguous address");
                let text = format!(
                    "<{mailbox}>: ambiguous address, {} directory entries match",
                    many.len()
                );
                match self.ambiguity {
                    Ambiguity::Reject => RouteDecision::Reject(Status::new(550, (5, 1, 4), text)),
                    Ambiguity::TryLater => {
                        RouteDecision::TryLater(Status::new(451, (4, 1, 4), text))
                    }
                }
            }
        }
    }
}

#[async_trait]
impl Router for LaserRouter {
    async fn route(&self, address: &Address, ctx: RouteContext<'_>) -> RouteDecision {
        let Some((mailbox, domain)) = address
            .as_mailbox()
            .and_then(|m| m.domain().map(|d| (m, d)))
        else {
            return self.fallback_route(address, ctx).await;
        };
        let now = self.clock.now();
        let zone = match self.zone(domain, now).await {
            Ok(Some(zone)) => zone,
            Ok(None) => return self.fallback_route(address, ctx).await,
            Err(status) => return RouteDecision::TryLater(status),
        };
        let key = lookup_key(mailbox);
        if let Some(decision) = self.cache.get(zone.index(), &key, now) {
            return decision;
        }
        let found = match &zone {
            Zone::Entries { search, routing } => search.run(mailbox, &routing.attributes()).await,
            Zone::Department { department, .. } => department.search.run(mailbox, &[]).await,
        };
        let decision = match found {
            Ok(entries) => self.decide(&zone, mailbox, &key, &entries),
            Err(e) => return RouteDecision::TryLater(Status::from(&e)),
        };
        let policy = self.cache.policy();
        let ttl = match decision {
            RouteDecision::Deliver(_) | RouteDecision::Expand(_) => policy.positive_ttl,
            RouteDecision::Reject(_) | RouteDecision::TryLater(_) => policy.negative_ttl,
        };
        self.cache
            .put(zone.index(), &key, decision.clone(), ttl, now);
        decision
    }
}
