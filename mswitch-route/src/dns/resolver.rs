//! The MX rules of RFC 5321 §5.1 and RFC 7505 over a [`DnsLookup`].

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::{join, join_all};
use mswitch_core::address::Domain;
use mswitch_core::route::{HostResolver, MailHost, ResolveError};
use mswitch_core::status::Status;
use tracing::{debug, warn};

use super::cache::{Cache, CacheConfig, Cacheable, Clock, SystemClock};
use super::lookup::{Answer, DnsLookup, LookupError, Mx, normalize_name};

/// The default of [`MxConfig::max_mail_hosts`].
pub const DEFAULT_MAX_MAIL_HOSTS: usize = 10;

/// In which order a host's IPv4 and IPv6 addresses are tried, and which are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AddressOrder {
    /// One family after the other, IPv6 first: `v6, v4, v6, v4, …`, then the rest of the
    /// longer list (RFC 8305 §4). A broken IPv6 path costs one attempt, not all of them.
    #[default]
    Interleave,
    /// Every IPv6 address, then every IPv4 address.
    Ipv6First,
    /// Every IPv4 address, then every IPv6 address.
    Ipv4First,
    /// IPv4 only: AAAA is never asked for.
    Ipv4Only,
    /// IPv6 only: A is never asked for.
    Ipv6Only,
}

impl AddressOrder {
    fn wants_ipv4(self) -> bool {
        self != AddressOrder::Ipv6Only
    }

    fn wants_ipv6(self) -> bool {
        self != AddressOrder::Ipv4Only
    }

    /// Both lists merged in this order, without duplicates.
    fn merge(self, v4: Vec<IpAddr>, v6: Vec<IpAddr>) -> Vec<IpAddr> {
        let merged: Vec<IpAddr> = match self {
            AddressOrder::Interleave => {
                let mut out = Vec::with_capacity(v4.len() + v6.len());
                let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
                loop {
                    match (a.next(), b.next()) {
                        (None, None) => break,
                        (x, y) => out.extend(x.into_iter().chain(y)),
                    }
                }
                out
            }
            AddressOrder::Ipv6First => v6.into_iter().chain(v4).collect(),
            AddressOrder::Ipv4First => v4.into_iter().chain(v6).collect(),
            AddressOrder::Ipv4Only => v4,
            AddressOrder::Ipv6Only => v6,
        };
        let mut seen = HashSet::new();
        merged.into_iter().filter(|a| seen.insert(*a)).collect()
    }
}

/// How the MX rules are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MxConfig {
    /// The names this host is known by in mail transactions (RFC 5321 §5.1): an MX record
    /// naming one of them, and every record of the same or a higher preference number, is
    /// dropped. Compared case-insensitively, IDNs by A-label, a trailing dot ignored.
    pub local_names: Vec<String>,
    /// The addresses this host is known by: an MX host with one of them counts as this host.
    /// Loopback addresses are not implied (tests and some deployments have MX hosts on them).
    pub local_addresses: Vec<IpAddr>,
    /// The order of each host's addresses, and which families are asked for.
    pub address_order: AddressOrder,
    /// Accept an MX exchange written as an IP address (RFC 1035 §3.3.9 requires a name) and
    /// use it as the host's address. Off by default, as in Exim; the host is then skipped.
    pub allow_mx_to_ip: bool,
    /// At most this many MX hosts are looked up and returned, best first (at least one is).
    pub max_mail_hosts: usize,
    /// The seed of the random order among equal preferences. `None` takes one from the
    /// process's hash randomness; a fixed seed gives the same sequence of orders every run.
    pub seed: Option<u64>,
    /// The bounds of the answer cache.
    pub cache: CacheConfig,
}

impl Default for MxConfig {
    fn default() -> Self {
        MxConfig {
            local_names: Vec::new(),
            local_addresses: Vec::new(),
            address_order: AddressOrder::default(),
            allow_mx_to_ip: false,
            max_mail_hosts: DEFAULT_MAX_MAIL_HOSTS,
            seed: None,
            cache: CacheConfig::default(),
        }
    }
}

/// SplitMix64: a small, fast generator, good enough to spread load over equal MX hosts.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the modulo bias is negligible for MX list sizes).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn entropy() -> u64 {
    let mut h = RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    h.write_u64(nanos);
    h.finish()
}

/// The statuses this resolver reports.
mod status {
    use super::Status;

    pub(super) fn no_such_domain(domain: &str) -> Status {
        Status::new(
            550,
            (5, 1, 2),
            format!("domain {domain} does not exist (NXDOMAIN)"),
        )
    }

    pub(super) fn invalid_domain(domain: &str) -> Status {
        Status::new(550, (5, 1, 2), format!("invalid domain name {domain:?}"))
    }

    pub(super) fn null_mx(domain: &str) -> Status {
        Status::new(
            556,
            (5, 1, 10),
            format!("domain {domain} does not accept mail (null MX, RFC 7505)"),
        )
    }

    pub(super) fn routing_loop(domain: &str) -> Status {
        Status::new(
            554,
            (5, 4, 6),
            format!("mail for {domain} loops back to myself (this host is its best MX)"),
        )
    }

    pub(super) fn no_address(text: String) -> Status {
        Status::new(554, (5, 4, 4), text)
    }

    pub(super) fn temporary(text: String) -> Status {
        Status::new(451, (4, 4, 3), text)
    }

    pub(super) fn configured_host_missing(text: String) -> Status {
        Status::new(451, (4, 4, 4), text)
    }
}

/// A [`HostResolver`] by DNS: MX records, the implicit MX, null MX, loops to this host, a TTL
/// cache. See the [module documentation](super) for the rules and the statuses.
pub struct MxResolver<L> {
    lookup: L,
    config: MxConfig,
    local_names: HashSet<String>,
    cache: Cache,
    clock: Arc<dyn Clock>,
    rng: Mutex<SplitMix64>,
}

impl<L> fmt::Debug for MxResolver<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MxResolver")
            .field("config", &self.config)
            .field("cached_answers", &self.cache.len())
            .finish_non_exhaustive()
    }
}

/// The name form used for DNS and comparisons: lower-case A-labels, no trailing dot.
fn dns_name(name: &str) -> String {
    let name = name.trim();
    let name = name.strip_suffix('.').unwrap_or(name);
    match Domain::parse(name) {
        Ok(d) => d.to_ascii().to_owned(),
        // Not LDH (an underscore, say): DNS may still know it.
        Err(_) => normalize_name(name),
    }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3): `Some(Some(ip))`; bracketed but
/// not an address: `Some(None)`; not bracketed: `None`.
fn address_literal(s: &str) -> Option<Option<IpAddr>> {
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    let inner = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => &inner[5..],
        _ => inner,
    };
    Some(inner.parse().ok())
}

/// Why one MX host has no addresses.
enum HostFailure {
    Lookup(LookupError),
    /// The exchange is an IP address and [`MxConfig::allow_mx_to_ip`] is off.
    IpExchange,
}

impl<L: DnsLookup> MxResolver<L> {
    /// A resolver over `lookup`, reading the system clock.
    pub fn new(lookup: L, config: MxConfig) -> MxResolver<L> {
        let local_names = config.local_names.iter().map(|n| dns_name(n)).collect();
        let seed = config.seed.unwrap_or_else(entropy);
        MxResolver {
            lookup,
            cache: Cache::new(config.cache.clone()),
            config,
            local_names,
            clock: Arc::new(SystemClock),
            rng: Mutex::new(SplitMix64(seed)),
        }
    }

    /// The same resolver reading `clock` (the cache's notion of now).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> MxResolver<L> {
        self.clock = clock;
        self
    }

    /// The lookup back end.
    pub fn lookup(&self) -> &L {
        &self.lookup
    }

    /// The configuration.
    pub fn config(&self) -> &MxConfig {
        &self.config
    }

    /// How many answers the cache holds.
    pub fn cached_answers(&self) -> usize {
        self.cache.len()
    }

    /// Empties the cache.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// The hosts to try for mail to `domain`, best first; what
    /// [`HostResolver::mail_hosts`] returns.
    pub async fn mail_hosts(&self, domain: &str) -> Result<Vec<MailHost>, ResolveError> {
        let written = domain.trim();
        if let Some(literal) = address_literal(written) {
            let Some(ip) = literal else {
                return Err(ResolveError::Permanent(status::invalid_domain(written)));
            };
            if self.config.local_addresses.contains(&ip) {
                return Err(ResolveError::Permanent(status::routing_loop(written)));
            }
            return Ok(vec![MailHost {
                name: written.to_owned(),
                preference: 0,
                addresses: vec![ip],
            }]);
        }
        let domain = dns_name(written);
        if domain == "." || domain.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ResolveError::Permanent(status::invalid_domain(written)));
        }

        let (mut hosts, implicit) = match self.cached(&domain, || self.lookup.mx(&domain)).await {
            Ok(answer) => {
                let hosts: Vec<Mx> = answer
                    .records
                    .into_iter()
                    .filter(|m| !m.is_root())
                    .collect();
                if hosts.is_empty() {
                    return Err(ResolveError::Permanent(status::null_mx(&domain)));
                }
                (hosts, false)
            }
            Err(LookupError::NoRecords { .. }) => (vec![Mx::new(0, &domain)], true),
            Err(LookupError::NoSuchDomain { .. }) => {
                return Err(ResolveError::Permanent(status::no_such_domain(&domain)));
            }
            Err(LookupError::Temporary(e)) => {
                return Err(ResolveError::Temporary(status::temporary(format!(
                    "MX lookup for {domain} failed: {e}"
                ))));
            }
        };
        self.order(&mut hosts);

        // RFC 5321 §5.1: our own name drops its record and every record of the same or a
        // higher preference number.
        if let Some(p) = hosts
            .iter()
            .find(|m| self.local_names.contains(&m.exchange))
            .map(|m| m.preference)
        {
            hosts.retain(|m| m.preference < p);
        }
        if hosts.is_empty() {
            warn!(domain = %domain, "mail loops back to myself: this host is the best MX");
            return Err(ResolveError::Permanent(status::routing_loop(&domain)));
        }
        hosts.truncate(self.config.max_mail_hosts.max(1));

        let found = join_all(hosts.iter().map(|m| self.mx_host_addresses(&m.exchange))).await;

        // The same rule for our addresses, now that the hosts' addresses are known.
        let ours = hosts.iter().zip(&found).find(|(_, f)| {
            f.as_ref()
                .is_ok_and(|a| a.iter().any(|ip| self.config.local_addresses.contains(ip)))
        });
        let limit = ours.map(|(m, _)| m.preference);

        let mut out = Vec::new();
        let mut temporary = Vec::new();
        let mut missing = Vec::new();
        let mut considered = 0;
        for (m, f) in hosts.into_iter().zip(found) {
            if limit.is_some_and(|p| m.preference >= p) {
                break;
            }
            considered += 1;
            match f {
                Ok(addresses) => out.push(MailHost {
                    name: m.exchange,
                    preference: m.preference,
                    addresses,
                }),
                Err(HostFailure::Lookup(LookupError::Temporary(e))) => {
                    debug!(domain = %domain, host = %m.exchange, error = %e, "MX host skipped");
                    temporary.push(format!("{}: {e}", m.exchange));
                }
                Err(HostFailure::Lookup(e)) => {
                    debug!(domain = %domain, host = %m.exchange, error = %e, "MX host skipped");
                    missing.push((m.exchange, e));
                }
                Err(HostFailure::IpExchange) => {
                    warn!(domain = %domain, host = %m.exchange,
                          "MX exchange is an IP address (RFC 1035 requires a name): skipped");
                    missing.push((m.exchange, LookupError::NoRecords { negative_ttl: None }));
                }
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        if !temporary.is_empty() {
            return Err(ResolveError::Temporary(status::temporary(format!(
                "no mail host for {domain} could be resolved: {}",
                temporary.join("; ")
            ))));
        }
        if considered == 0 {
            warn!(domain = %domain, "mail loops back to myself: this host is the best usable MX");
            return Err(ResolveError::Permanent(status::routing_loop(&domain)));
        }
        if implicit {
            if let Some((_, LookupError::NoSuchDomain { .. })) = missing.first() {
                return Err(ResolveError::Permanent(status::no_such_domain(&domain)));
            }
            return Err(ResolveError::Permanent(status::no_address(format!(
                "domain {domain} has no MX and no address records"
            ))));
        }
        let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
        Err(ResolveError::Permanent(status::no_address(format!(
            "no MX host of {domain} has an address ({})",
            names.join(", ")
        ))))
    }

    /// The addresses of a named host (a smarthost, a static route), in the order to try; what
    /// [`HostResolver::host_addresses`] returns.
    pub async fn host_addresses(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        let written = host.trim();
        if let Ok(ip) = written.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        if let Some(literal) = address_literal(written) {
            return literal.map(|ip| vec![ip]).ok_or_else(|| {
                ResolveError::Temporary(status::configured_host_missing(format!(
                    "invalid host address literal {written:?}"
                )))
            });
        }
        let name = dns_name(written);
        match self.addresses(&name).await {
            Ok(addresses) => Ok(addresses),
            Err(LookupError::Temporary(e)) => Err(ResolveError::Temporary(status::temporary(
                format!("address lookup for {name} failed: {e}"),
            ))),
            Err(LookupError::NoSuchDomain { .. }) => {
                Err(ResolveError::Temporary(status::configured_host_missing(
                    format!("host {name} does not exist (NXDOMAIN): check the configuration"),
                )))
            }
            Err(LookupError::NoRecords { .. }) => {
                Err(ResolveError::Temporary(status::configured_host_missing(
                    format!("host {name} has no address records: check the configuration"),
                )))
            }
        }
    }

    /// Sorts by preference, drops repeated exchanges (keeping the best preference), and puts
    /// each run of equal preferences in a random order.
    fn order(&self, hosts: &mut Vec<Mx>) {
        hosts.sort_by_key(|m| m.preference);
        let mut seen = HashSet::new();
        hosts.retain(|m| seen.insert(m.exchange.clone()));
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut start = 0;
        while start < hosts.len() {
            let pref = hosts[start].preference;
            let end = start
                + hosts[start..]
                    .iter()
                    .take_while(|m| m.preference == pref)
                    .count();
            let run = &mut hosts[start..end];
            for i in (1..run.len()).rev() {
                run.swap(i, rng.below(i + 1));
            }
            start = end;
        }
    }

    /// The addresses of one MX exchange.
    async fn mx_host_addresses(&self, exchange: &str) -> Result<Vec<IpAddr>, HostFailure> {
        if let Ok(ip) = exchange.parse::<IpAddr>() {
            return if self.config.allow_mx_to_ip {
                Ok(vec![ip])
            } else {
                Err(HostFailure::IpExchange)
            };
        }
        self.addresses(exchange).await.map_err(HostFailure::Lookup)
    }

    /// A and AAAA (as [`MxConfig::address_order`] asks), in parallel, merged.
    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        let order = self.config.address_order;
        let v4 = async {
            if order.wants_ipv4() {
                Some(self.cached(name, || self.lookup.ipv4(name)).await)
            } else {
                None
            }
        };
        let v6 = async {
            if order.wants_ipv6() {
                Some(self.cached(name, || self.lookup.ipv6(name)).await)
            } else {
                None
            }
        };
        let (v4, v6) = join(v4, v6).await;
        let mut errors = Vec::new();
        let v4: Vec<IpAddr> = match v4 {
            Some(Ok(a)) => a.records.into_iter().map(IpAddr::V4).collect(),
            Some(Err(e)) => {
                errors.push(e);
                Vec::new()
            }
            None => Vec::new(),
        };
        let v6: Vec<IpAddr> = match v6 {
            Some(Ok(a)) => a.records.into_iter().map(IpAddr::V6).collect(),
            Some(Err(e)) => {
                errors.push(e);
                Vec::new()
            }
            None => Vec::new(),
        };
        let addresses = order.merge(v4, v6);
        if !addresses.is_empty() {
            for e in errors
                .iter()
                .filter(|e| matches!(e, LookupError::Temporary(_)))
            {
                debug!(host = %name, error = %e, "one address family failed; using the other");
            }
            return Ok(addresses);
        }
        if let Some(e) = errors
            .iter()
            .find(|e| matches!(e, LookupError::Temporary(_)))
        {
            return Err(e.clone());
        }
        if let Some(e) = errors
            .iter()
            .find(|e| matches!(e, LookupError::NoSuchDomain { .. }))
        {
            return Err(e.clone());
        }
        Err(LookupError::NoRecords { negative_ttl: None })
    }

    /// One query through the cache. An answer without records counts as no data.
    async fn cached<T, F, Q>(&self, name: &str, query: Q) -> Result<Answer<T>, LookupError>
    where
        T: Cacheable,
        F: Future<Output = Result<Answer<T>, LookupError>>,
        Q: FnOnce() -> F,
    {
        if let Some(hit) = self.cache.get::<T>(name, self.clock.now()) {
            return hit;
        }
        let result = match query().await {
            Ok(answer) if answer.records.is_empty() => Err(LookupError::NoRecords {
                negative_ttl: Some(answer.ttl),
            }),
            other => other,
        };
        self.cache.put(name, &result, self.clock.now());
        result
    }
}

#[async_trait]
impl<L: DnsLookup> HostResolver for MxResolver<L> {
    async fn mail_hosts(&self, domain: &str) -> Result<Vec<MailHost>, ResolveError> {
        MxResolver::mail_hosts(self, domain).await
    }

    async fn host_addresses(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        MxResolver::host_addresses(self, host).await
    }
}

#[cfg(test)]
mod tests;
