//! The DNS queries the MX rules need, as a small trait.

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

/// One MX record (RFC 1035 §3.3.9).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mx {
    /// Lower numbers are preferred.
    pub preference: u16,
    /// The mail exchanger: a host name in lower-case ASCII without the trailing dot, or `"."`
    /// for the root (a null MX, RFC 7505).
    pub exchange: String,
}

impl Mx {
    /// Builds a record; `exchange` is normalized (lower case, no trailing dot, `""` and `"."`
    /// become `"."`).
    pub fn new(preference: u16, exchange: &str) -> Mx {
        Mx {
            preference,
            exchange: normalize_name(exchange),
        }
    }

    /// Whether the exchange is the root: the null MX of RFC 7505.
    pub fn is_root(&self) -> bool {
        self.exchange == "."
    }
}

/// A positive answer: the records of the asked type (CNAMEs already followed) and how long
/// they may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    /// The records, in the order the server gave them.
    pub records: Vec<T>,
    /// The smallest TTL of the records and of the CNAMEs that led to them.
    pub ttl: Duration,
}

impl<T> Answer<T> {
    /// Builds an answer.
    pub fn new(records: Vec<T>, ttl: Duration) -> Answer<T> {
        Answer { records, ttl }
    }
}

/// Why a query gave no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The name does not exist (RCODE NXDOMAIN): the remote domain's state, a permanent fact
    /// for as long as `negative_ttl` (or the cache's default) says.
    #[error("no such domain (NXDOMAIN)")]
    NoSuchDomain {
        /// The negative TTL from the SOA of the answer (RFC 2308 §5), when there was one.
        negative_ttl: Option<Duration>,
    },
    /// The name exists but has no record of the asked type (NOERROR with no data).
    #[error("no records of this type (NODATA)")]
    NoRecords {
        /// The negative TTL from the SOA of the answer (RFC 2308 §5), when there was one.
        negative_ttl: Option<Duration>,
    },
    /// No usable answer now: SERVFAIL, REFUSED, a timeout, a network error, a malformed
    /// answer. Whose fault is unknown (the remote zone, the resolver, our network); it may
    /// work later and is never cached.
    #[error("temporary DNS failure: {0}")]
    Temporary(String),
}

/// The three queries of MX routing. Implemented over hickory-resolver by
/// [`HickoryLookup`](super::HickoryLookup), and by fakes in tests.
///
/// Names are given in lower-case ASCII (A-labels), without the trailing dot, and are absolute:
/// an implementation must not apply a search list. An implementation follows CNAMEs, and returns
/// `Ok` only with at least one record of the asked type (an answer with none is
/// [`LookupError::NoRecords`]).
pub trait DnsLookup: Send + Sync {
    /// The MX records of `name`.
    fn mx(&self, name: &str) -> impl Future<Output = Result<Answer<Mx>, LookupError>> + Send;

    /// The A records of `name`.
    fn ipv4(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Answer<Ipv4Addr>, LookupError>> + Send;

    /// The AAAA records of `name`.
    fn ipv6(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Answer<Ipv6Addr>, LookupError>> + Send;
}

impl<L: DnsLookup> DnsLookup for Arc<L> {
    fn mx(&self, name: &str) -> impl Future<Output = Result<Answer<Mx>, LookupError>> + Send {
        (**self).mx(name)
    }

    fn ipv4(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Answer<Ipv4Addr>, LookupError>> + Send {
        (**self).ipv4(name)
    }

    fn ipv6(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Answer<Ipv6Addr>, LookupError>> + Send {
        (**self).ipv6(name)
    }
}

/// A host name in the form the cache and the comparisons use: lower case, no trailing dot; the
/// root (`""` or `"."`) is `"."`.
pub(crate) fn normalize_name(name: &str) -> String {
    let name = name.trim();
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        ".".to_owned()
    } else {
        name.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized() {
        assert_eq!(normalize_name("MX1.Example.COM."), "mx1.example.com");
        assert_eq!(normalize_name("mx1.example.com"), "mx1.example.com");
        assert_eq!(normalize_name("."), ".");
        assert_eq!(normalize_name(""), ".");
        assert!(Mx::new(0, ".").is_root());
        assert!(Mx::new(0, "").is_root());
        assert!(!Mx::new(0, "a.example").is_root());
        assert_eq!(Mx::new(5, "A.Example.").exchange, "a.example");
    }
}
