//! The hosts table: fixed addresses for named hosts, overriding DNS.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use mswitch_core::address::Domain;
use mswitch_core::route::{HostResolver, MailHost, ResolveError};

/// Fixed addresses for named hosts (smarthosts, stores, peers, MX hosts), used instead of DNS.
/// Names compare case-insensitively, IDNs by A-label, a trailing dot ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostsTable {
    entries: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl HostsTable {
    pub(super) fn from_entries(entries: HashMap<String, Vec<IpAddr>>) -> Self {
        HostsTable {
            entries: Arc::new(entries),
        }
    }

    /// The fixed addresses of `name`, if it is in the table.
    pub fn addresses(&self, name: &str) -> Option<&[IpAddr]> {
        self.entries.get(&host_key(name)).map(Vec::as_slice)
    }

    /// How many names the table holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every name (normalized: lower-case A-labels) and its addresses.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[IpAddr])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// A resolver that answers from this table first and asks `dns` for the rest: the one to
    /// give the delivering channels so that they honour the table.
    pub fn over(&self, dns: Arc<dyn HostResolver>) -> HostsResolver {
        HostsResolver {
            hosts: self.clone(),
            dns,
        }
    }
}

/// The normal form of a host name in the table: lower-case A-labels, no trailing dot.
pub(super) fn host_key(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    match Domain::parse(name) {
        Ok(d) => d.to_ascii().to_owned(),
        Err(_) => name.to_lowercase(),
    }
}

/// A [`HostResolver`] that applies a [`HostsTable`] over another resolver (DNS).
///
/// - `host_addresses(name)`: the table's addresses when `name` is in it, else DNS.
/// - `mail_hosts(domain)`: when `domain` itself is in the table, that one host with
///   preference 0 and no DNS query at all (a static deployment can route a domain to a fixed
///   address even where DNS is unreachable); else DNS, with the addresses of every MX host
///   that is in the table replaced by the table's.
#[derive(Clone)]
pub struct HostsResolver {
    hosts: HostsTable,
    dns: Arc<dyn HostResolver>,
}

impl std::fmt::Debug for HostsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostsResolver")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl HostResolver for HostsResolver {
    async fn mail_hosts(&self, domain: &str) -> Result<Vec<MailHost>, ResolveError> {
        if let Some(addresses) = self.hosts.addresses(domain) {
            return Ok(vec![MailHost {
                name: domain.to_owned(),
                preference: 0,
                addresses: addresses.to_vec(),
            }]);
        }
        let mut hosts = self.dns.mail_hosts(domain).await?;
        for h in &mut hosts {
            if let Some(addresses) = self.hosts.addresses(&h.name) {
                h.addresses = addresses.to_vec();
            }
        }
        Ok(hosts)
    }

    async fn host_addresses(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        match self.hosts.addresses(host) {
            Some(addresses) => Ok(addresses.to_vec()),
            None => self.dns.host_addresses(host).await,
        }
    }
}
