//! DNS MX routing: where mail for a domain goes, by the rules of RFC 5321 §5.1 and RFC 7505.
//!
//! Three layers, so that the rules are tested without a network:
//! - [`DnsLookup`]: the three queries the rules need (MX, A, AAAA), with their TTLs and the
//!   three ways a query can fail ([`LookupError`]); a small trait that a test fakes;
//! - [`MxResolver`]: the rules, over any [`DnsLookup`], with a TTL cache ([`CacheConfig`]) read
//!   through an injectable [`Clock`]; it implements the core's
//!   [`HostResolver`](mswitch_core::route::HostResolver);
//! - [`HickoryLookup`] (feature `dns`): the real back end, hickory-resolver over UDP and TCP to
//!   given name servers or to the system's (`/etc/resolv.conf`). It needs a Tokio runtime.
//!
//! # The rules, and the status each failure reports
//!
//! | case | result |
//! |---|---|
//! | MX records | hosts sorted by preference, equal preferences in random order (a fresh order per call, from a seedable generator) |
//! | no MX records (NOERROR, no data) | the domain itself is the one host, preference 0 (the implicit MX); only then are its A/AAAA records used |
//! | a single MX whose exchange is the root `.` (null MX, RFC 7505) | permanent `556 5.1.10` |
//! | an MX of `.` among other MX records | that record is ignored |
//! | the domain does not exist (NXDOMAIN) | permanent `550 5.1.2` |
//! | one of our own names or addresses in the list | that record and every record of the same or a higher preference number are dropped (RFC 5321 §5.1); if nothing is left, permanent `554 5.4.6` (a routing loop: the message "MUST be returned as undeliverable") |
//! | an MX host whose address lookup fails temporarily | skipped; if no host is left and any lookup failed temporarily, temporary `451 4.4.3` |
//! | MX hosts, none of which has an address (all NXDOMAIN or no data), including the hosts left before this host's own record | permanent `554 5.4.4` |
//! | no MX, and no A/AAAA either | permanent `554 5.4.4` |
//! | the MX or the implicit-MX lookup fails temporarily (SERVFAIL, REFUSED, timeout) | temporary `451 4.4.3`; never a bounce, never a fallback to A/AAAA |
//! | an MX exchange that is an IP address (not allowed by RFC 1035 §3.3.9) | skipped, unless [`MxConfig::allow_mx_to_ip`] |
//! | an MX exchange that is a CNAME (RFC 2181 §10.3 forbids it) | tolerated: the back end follows the alias; the host keeps the MX's name |
//! | an address literal `[192.0.2.1]`, `[IPv6:2001:db8::1]` | that address, no DNS |
//!
//! [`HostResolver::host_addresses`](mswitch_core::route::HostResolver::host_addresses) names a
//! host from the configuration (a smarthost, a static route), not a recipient's domain: a name
//! that does not exist there is the operator's mistake, so it is temporary (`451 4.4.4`) and the
//! mail waits for the fix instead of bouncing (as Postfix does for its relay host).
//! A temporary failure is `451 4.4.3` there too.
//!
//! # Addresses
//!
//! A host's IPv4 and IPv6 addresses are both asked for (in parallel) and ordered by
//! [`AddressOrder`]; the default interleaves the families, IPv6 first (RFC 8305 §4), so that a
//! broken IPv6 path costs one connection attempt, not all of them. When one family fails
//! temporarily and the other answers, the addresses found are used.
//!
//! # Cache
//!
//! Answers (MX, A, AAAA; positive and negative) are cached for their TTL, capped by
//! [`CacheConfig::max_ttl`] and [`CacheConfig::max_negative_ttl`]; a negative answer without an
//! SOA is kept for [`CacheConfig::negative_ttl`]. Temporary failures are never cached. The cache
//! holds at most [`CacheConfig::max_entries`]; when full, expired entries go first, then the
//! ones closest to expiry. The hickory back end's own cache is turned off, so that only this
//! one (with its injectable clock) decides.

mod cache;
#[cfg(feature = "dns")]
mod hickory;
mod lookup;
mod resolver;

pub use cache::{
    CacheConfig, Clock, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_NEGATIVE_TTL, DEFAULT_MAX_TTL,
    DEFAULT_NEGATIVE_TTL, ManualClock, SystemClock,
};
#[cfg(feature = "dns")]
pub use hickory::{
    DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, HickoryConfig, HickoryLookup, NameServers, SetupError,
};
pub use lookup::{Answer, DnsLookup, LookupError, Mx};
pub use resolver::{AddressOrder, DEFAULT_MAX_MAIL_HOSTS, MxConfig, MxResolver};
