//! The real back end: hickory-resolver (Tokio) over UDP and TCP.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use super::lookup::{Answer, DnsLookup, LookupError, Mx};

/// The default of [`HickoryConfig::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default of [`HickoryConfig::attempts`].
pub const DEFAULT_ATTEMPTS: usize = 2;

/// Which name servers to ask.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NameServers {
    /// The system's (`/etc/resolv.conf`); its search list is never applied, as every query is
    /// for an absolute name.
    #[default]
    System,
    /// These, each over UDP and (for truncated answers) TCP, tried in turn.
    Addresses(Vec<SocketAddr>),
}

/// How [`HickoryLookup`] asks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HickoryConfig {
    /// The name servers.
    pub name_servers: NameServers,
    /// How long to wait for one answer (it overrides `options timeout:` of resolv.conf).
    pub timeout: Duration,
    /// How many times a query is sent before it fails (it overrides `options attempts:`).
    pub attempts: usize,
}

impl Default for HickoryConfig {
    fn default() -> Self {
        HickoryConfig {
            name_servers: NameServers::System,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

impl HickoryConfig {
    /// Asks the given servers, with the default timeout and attempts.
    pub fn with_name_servers(servers: impl IntoIterator<Item = SocketAddr>) -> HickoryConfig {
        HickoryConfig {
            name_servers: NameServers::Addresses(servers.into_iter().collect()),
            ..HickoryConfig::default()
        }
    }
}

/// Why a [`HickoryLookup`] could not be built. Each is a local configuration problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The system's resolver configuration could not be read or has no name server.
    #[error("cannot use the system's DNS configuration: {0}")]
    SystemConfig(String),
    /// [`NameServers::Addresses`] is empty.
    #[error("no name server is configured")]
    NoNameServers,
    /// hickory-resolver refused the configuration.
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
}

/// [`DnsLookup`] over hickory-resolver. Lookups must run inside a Tokio runtime.
///
/// hickory's own cache is turned off: the [`MxResolver`](super::MxResolver)'s cache, with its
/// injectable clock, is the only one. CNAMEs are followed by hickory; the TTL of an answer is
/// the smallest of the chain's.
#[derive(Debug, Clone)]
pub struct HickoryLookup {
    resolver: TokioResolver,
}

impl HickoryLookup {
    /// Builds the resolver. With [`NameServers::System`], reads `/etc/resolv.conf` now.
    pub fn new(config: &HickoryConfig) -> Result<HickoryLookup, SetupError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match &config.name_servers {
            NameServers::System => TokioResolver::builder(provider)
                .map_err(|e| SetupError::SystemConfig(e.to_string()))?,
            NameServers::Addresses(servers) => {
                if servers.is_empty() {
                    return Err(SetupError::NoNameServers);
                }
                let name_servers = servers
                    .iter()
                    .map(|s| {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = s.port();
                        let mut tcp = ConnectionConfig::tcp();
                        tcp.port = s.port();
                        NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(name_servers),
                    provider,
                )
            }
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = config.timeout;
        options.attempts = config.attempts.max(1);
        // Our cache decides (moka with capacity 0 stores nothing).
        options.cache_size = 0;
        // DNS only: /etc/hosts is no source of mail routes.
        options.use_hosts_file = ResolveHosts::Never;
        // Keep the CNAMEs in the answer, for their TTLs.
        options.preserve_intermediates = true;
        let resolver = builder
            .build()
            .map_err(|e| SetupError::Build(e.to_string()))?;
        Ok(HickoryLookup { resolver })
    }

    async fn query(&self, name: &str, kind: RecordType) -> Result<Lookup, LookupError> {
        let Ok(mut fqdn) = Name::from_utf8(name) else {
            // A name that cannot be written in DNS cannot exist there.
            return Err(LookupError::NoSuchDomain { negative_ttl: None });
        };
        fqdn.set_fqdn(true);
        self.resolver
            .lookup(fqdn, kind)
            .await
            .map_err(|e| lookup_error(&e))
    }
}

/// The smallest TTL of the records (those of the CNAMEs included).
fn min_ttl(records: &[Record]) -> Duration {
    Duration::from_secs(records.iter().map(|r| r.ttl).min().unwrap_or(0).into())
}

/// hickory's error, in the three kinds the MX rules tell apart.
pub(crate) fn lookup_error(e: &NetError) -> LookupError {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
            let negative_ttl = no_records
                .negative_ttl
                .map(|s| Duration::from_secs(s.into()));
            match no_records.response_code {
                ResponseCode::NXDomain => LookupError::NoSuchDomain { negative_ttl },
                ResponseCode::NoError => LookupError::NoRecords { negative_ttl },
                code => LookupError::Temporary(format!("no records, response code {code}")),
            }
        }
        other => LookupError::Temporary(other.to_string()),
    }
}

impl DnsLookup for HickoryLookup {
    async fn mx(&self, name: &str) -> Result<Answer<Mx>, LookupError> {
        let lookup = self.query(name, RecordType::MX).await?;
        let records = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some(Mx::new(mx.preference, &mx.exchange.to_ascii())),
                _ => None,
            })
            .collect();
        Ok(Answer::new(records, min_ttl(lookup.answers())))
    }

    async fn ipv4(&self, name: &str) -> Result<Answer<Ipv4Addr>, LookupError> {
        let lookup = self.query(name, RecordType::A).await?;
        let records = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect();
        Ok(Answer::new(records, min_ttl(lookup.answers())))
    }

    async fn ipv6(&self, name: &str) -> Result<Answer<Ipv6Addr>, LookupError> {
        let lookup = self.query(name, RecordType::AAAA).await?;
        let records = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect();
        Ok(Answer::new(records, min_ttl(lookup.answers())))
    }
}

#[cfg(test)]
mod tests {
    use hickory_resolver::net::NoRecords;
    use hickory_resolver::proto::op::Query;

    use super::*;

    fn no_records(code: ResponseCode, negative_ttl: Option<u32>) -> NetError {
        let query = Query::query(
            Name::from_ascii("x.example.").expect("name"),
            RecordType::MX,
        );
        let mut nr = NoRecords::new(query, code);
        nr.negative_ttl = negative_ttl;
        NetError::from(nr)
    }

    #[test]
    fn nxdomain_and_nodata_are_told_apart_with_their_negative_ttl() {
        assert_eq!(
            lookup_error(&no_records(ResponseCode::NXDomain, Some(900))),
            LookupError::NoSuchDomain {
                negative_ttl: Some(Duration::from_secs(900))
            }
        );
        assert_eq!(
            lookup_error(&no_records(ResponseCode::NXDomain, None)),
            LookupError::NoSuchDomain { negative_ttl: None }
        );
        assert_eq!(
            lookup_error(&no_records(ResponseCode::NoError, Some(60))),
            LookupError::NoRecords {
                negative_ttl: Some(Duration::from_secs(60))
            }
        );
    }

    #[test]
    fn everything_else_is_temporary() {
        for e in [
            NetError::Timeout,
            NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)),
            NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)),
            NetError::NoConnections,
            NetError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            assert!(
                matches!(lookup_error(&e), LookupError::Temporary(_)),
                "{e:?}"
            );
        }
        assert_eq!(
            lookup_error(&NetError::Timeout),
            LookupError::Temporary("request timed out".into())
        );
    }

    #[test]
    fn an_empty_server_list_is_refused() {
        assert_eq!(
            HickoryLookup::new(&HickoryConfig::with_name_servers([])).err(),
            Some(SetupError::NoNameServers)
        );
    }
}
