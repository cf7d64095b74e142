//! The LDAP back end of [`Directory`]: `ldap3` over tokio, with a small connection pool.
//!
//! Connections are opened on demand, bound (simple bind) when a bind DN is configured, and kept
//! for the next search. At most [`LdapConfig::max_connections`] exist at once; a search that
//! finds them all busy waits for one, up to the operation timeout. A connection that fails is
//! dropped, never put back; a pooled connection that turns out to be dead (the server was
//! restarted) is replaced and the search retried once on a new one. Every wait is bounded:
//! connecting by [`LdapConfig::connect_timeout`], binding, searching and waiting for a pooled
//! connection by [`LdapConfig::timeout`].
//!
//! Needs a tokio runtime: each connection is driven by a spawned task.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use ldap3::asn1::{StructureTag, TagClass};
use ldap3::tokio::sync::Semaphore;
use ldap3::tokio::time::timeout;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, ResultEntry};

use super::directory::{Directory, DirectoryError, Entry, Scope};

/// The default [`LdapConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default [`LdapConfig::timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default [`LdapConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4;

/// The credentials of a simple bind (RFC 4513 §5.1.3). The password is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SimpleBind {
    /// The DN to bind as.
    pub dn: String,
    /// Its password.
    pub password: String,
}

impl fmt::Debug for SimpleBind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleBind")
            .field("dn", &self.dn)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where the directory is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldap://host:port/`, `ldaps://host:port/` or `ldapi://<percent-encoded path>/`.
    pub url: String,
    /// Bind before searching; anonymous when `None`.
    pub bind: Option<SimpleBind>,
    /// Upgrade `ldap://` connections with StartTLS (RFC 4511 §4.14).
    pub starttls: bool,
    /// How long to wait for a connection (TCP and TLS) to be established.
    pub connect_timeout: Duration,
    /// How long to wait for a bind or a search reply (each reply of a search restarts it),
    /// and for a pooled connection to become free.
    pub timeout: Duration,
    /// The most connections open at once (at least 1).
    pub max_connections: usize,
}

impl LdapConfig {
    /// Anonymous, plain, with the default timeouts and pool size.
    pub fn new(url: impl Into<String>) -> Self {
        LdapConfig {
            url: url.into(),
            bind: None,
            starttls: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// Binds as `dn` with `password`.
    pub fn bind(mut self, dn: impl Into<String>, password: impl Into<String>) -> Self {
        self.bind = Some(SimpleBind {
            dn: dn.into(),
            password: password.into(),
        });
        self
    }

    /// Sets both timeouts.
    pub fn timeouts(mut self, connect: Duration, operation: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = operation;
        self
    }

    /// Sets the pool size.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }
}

/// A [`Directory`] over LDAP (`ldap3`), with a bounded pool of connections.
pub struct LdapDirectory {
    config: LdapConfig,
    idle: Mutex<Vec<Ldap>>,
    permits: Semaphore,
    opened: AtomicU64,
}

impl fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("config", &self.config)
            .field("idle", &self.idle_connections())
            .field("opened", &self.connections_opened())
            .finish()
    }
}

/// A failed attempt, and what it says about the connection it used.
struct Failure {
    error: DirectoryError,
    /// The server answered: the connection may be used again.
    connection_usable: bool,
    /// The connection was found dead (not slow): a pooled one is replaced and the search
    /// retried once.
    connection_lost: bool,
}

impl LdapDirectory {
    /// A directory client for `config`. Nothing is connected until the first search.
    pub fn new(config: LdapConfig) -> Result<Self, DirectoryError> {
        let scheme_ok = ["ldap://", "ldaps://", "ldapi://"]
            .iter()
            .any(|s| config.url.len() > s.len() && config.url[..s.len()].eq_ignore_ascii_case(s));
        if !scheme_ok {
            return Err(DirectoryError::Config(format!(
                "{:?} is not an ldap://, ldaps:// or ldapi:// URL",
                config.url
            )));
        }
        if config.max_connections == 0 {
            return Err(DirectoryError::Config(
                "max_connections must be at least 1".into(),
            ));
        }
        Ok(LdapDirectory {
            permits: Semaphore::new(config.max_connections),
            config,
            idle: Mutex::new(Vec::new()),
            opened: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LdapConfig {
        &self.config
    }

    /// How many connections are open and waiting in the pool.
    pub fn idle_connections(&self) -> usize {
        self.lock_idle().len()
    }

    /// How many connections have been opened (successfully) since creation: shows the pool
    /// reuses them.
    pub fn connections_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn lock_idle(&self) -> MutexGuard<'_, Vec<Ldap>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pooled connection that still looks alive, if any.
    fn take_idle(&self) -> Option<Ldap> {
        let mut idle = self.lock_idle();
        while let Some(mut ldap) = idle.pop() {
            if !ldap.is_closed() {
                return Some(ldap);
            }
        }
        None
    }

    fn put_back(&self, mut ldap: Ldap) {
        if !ldap.is_closed() {
            self.lock_idle().push(ldap);
        }
    }

    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let url = &self.config.url;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.config.connect_timeout)
            .set_starttls(self.config.starttls);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .map_err(|e| classify(e, "connect").error)?;
        let driven_url = url.clone();
        ldap3::tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(url = %driven_url, error = %e, "LDAP connection closed");
            }
        });
        if let Some(bind) = &self.config.bind {
            let result = ldap
                .with_timeout(self.config.timeout)
                .simple_bind(&bind.dn, &bind.password)
                .await
                .and_then(|r| r.success());
            if let Err(e) = result {
                let _ = ldap.unbind().await;
                return Err(classify(e, "bind").error);
            }
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(url = %url, "LDAP connection opened");
        Ok(ldap)
    }

    async fn search_on(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Vec<Entry>, Failure> {
        let scope = match scope {
            Scope::Base => ldap3::Scope::Base,
            Scope::OneLevel => ldap3::Scope::OneLevel,
            Scope::Subtree => ldap3::Scope::Subtree,
        };
        // RFC 4511 §4.5.1.8: "1.1" asks for no attributes; an empty list would ask for all.
        let attributes: Vec<&str> = if attributes.is_empty() {
            vec!["1.1"]
        } else {
            attributes.to_vec()
        };
        let result = ldap
            .with_timeout(self.config.timeout)
            .search(base, scope, filter, attributes)
            .await
            .and_then(|r| r.success())
            .map_err(|e| classify(e, "search"))?;
        result
            .0
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(decode_entry)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| Failure {
                error,
                connection_usable: false,
                connection_lost: false,
            })
    }
}

#[async_trait]
impl Directory for LdapDirectory {
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Vec<Entry>, DirectoryError> {
        let _permit = match timeout(self.config.timeout, self.permits.acquire()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(DirectoryError::Unavailable("pool closed".into())),
            Err(_) => {
                return Err(DirectoryError::Unavailable(format!(
                    "all {} connections to {} stayed busy for {:?}",
                    self.config.max_connections, self.config.url, self.config.timeout
                )));
            }
        };
        if let Some(mut ldap) = self.take_idle() {
            match self
                .search_on(&mut ldap, base, scope, filter, attributes)
                .await
            {
                Ok(entries) => {
                    self.put_back(ldap);
                    return Ok(entries);
                }
                Err(f) if f.connection_usable => {
                    self.put_back(ldap);
                    return Err(f.error);
                }
                // The connection died while pooled (server restarted, idle timeout): retry
                // once on a new one. A timeout is not retried: the server is slow, not gone.
                Err(f) if f.connection_lost => {
                    tracing::debug!(
                        url = %self.config.url,
                        error = %f.error,
                        "pooled LDAP connection lost, reconnecting"
                    );
                }
                Err(f) => return Err(f.error),
            }
        }
        let mut ldap = self.connect().await?;
        match self
            .search_on(&mut ldap, base, scope, filter, attributes)
            .await
        {
            Ok(entries) => {
                self.put_back(ldap);
                Ok(entries)
            }
            Err(f) => {
                if f.connection_usable {
                    self.put_back(ldap);
                }
                Err(f.error)
            }
        }
    }
}

/// Maps an `ldap3` error to a [`DirectoryError`], and says whether the connection survives it.
fn classify(e: LdapError, operation: &str) -> Failure {
    let failure = |error, connection_usable, connection_lost| Failure {
        error,
        connection_usable,
        connection_lost,
    };
    match e {
        LdapError::LdapResult { result } => failure(
            DirectoryError::Refused {
                code: result.rc,
                message: if result.text.is_empty() {
                    operation.to_owned()
                } else {
                    format!("{operation}: {}", result.text)
                },
            },
            true,
            false,
        ),
        LdapError::Timeout { .. } => failure(
            DirectoryError::Unavailable(format!("{operation} timed out")),
            false,
            false,
        ),
        LdapError::FilterParsing => failure(
            DirectoryError::Config(format!("{operation}: the filter does not parse")),
            true,
            false,
        ),
        LdapError::UrlParsing { .. } | LdapError::UnknownScheme(_) => failure(
            DirectoryError::Config(format!("{operation}: {e}")),
            false,
            false,
        ),
        LdapError::Io { .. }
        | LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::EndOfStream => failure(
            DirectoryError::Unavailable(format!("{operation}: {e}")),
            false,
            true,
        ),
        other => failure(
            DirectoryError::Unavailable(format!("{operation}: {other}")),
            false,
            false,
        ),
    }
}

/// Decodes a SearchResultEntry (RFC 4511 §4.5.2) without panicking on a malformed one:
/// `[APPLICATION 4] SEQUENCE { objectName LDAPDN, attributes SEQUENCE OF SEQUENCE { type,
/// vals SET OF value } }`. Values that are not UTF-8 are left out.
fn decode_entry(entry: ResultEntry) -> Result<Entry, DirectoryError> {
    let malformed = |what: &str| DirectoryError::Protocol(format!("search result entry: {what}"));
    let mut parts = entry
        .0
        .match_class(TagClass::Application)
        .and_then(|t| t.match_id(4))
        .and_then(StructureTag::expect_constructed)
        .ok_or_else(|| malformed("not an entry"))?
        .into_iter();
    let dn = parts
        .next()
        .and_then(StructureTag::expect_primitive)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| malformed("bad DN"))?;
    let mut out = Entry::new(dn);
    let attributes = parts
        .next()
        .and_then(StructureTag::expect_constructed)
        .ok_or_else(|| malformed("no attribute list"))?;
    for attribute in attributes {
        let mut attribute = attribute
            .expect_constructed()
            .ok_or_else(|| malformed("bad attribute"))?
            .into_iter();
        let name = attribute
            .next()
            .and_then(StructureTag::expect_primitive)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| malformed("bad attribute type"))?;
        let values = attribute
            .next()
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| malformed("bad attribute values"))?;
        let values: Vec<String> = values
            .into_iter()
            .filter_map(StructureTag::expect_primitive)
            .filter_map(|b| String::from_utf8(b).ok())
            .collect();
        out.add(&name, values);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use ldap3::asn1::PL;

    use super::*;

    fn prim(bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id: 4,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn cons(id: u64, class: TagClass, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::C(inner),
        }
    }

    #[test]
    fn decodes_an_entry_and_skips_binary_values() {
        let tag = cons(
            4,
            TagClass::Application,
            vec![
                prim(b"uid=alice,dc=example,dc=com"),
                cons(
                    16,
                    TagClass::Universal,
                    vec![cons(
                        16,
                        TagClass::Universal,
                        vec![
                            prim(b"mailHost"),
                            cons(
                                17,
                                TagClass::Universal,
                                vec![prim(b"mx1"), prim(&[0xff, 0xfe])],
                            ),
                        ],
                    )],
                ),
            ],
        );
        let e = decode_entry(ResultEntry::new(tag)).expect("decodes");
        assert_eq!(e.dn(), "uid=alice,dc=example,dc=com");
        assert_eq!(e.values("mailhost"), ["mx1"]);
    }

    #[test]
    fn malformed_entries_are_errors_not_panics() {
        let cases = [
            prim(b"x"),
            cons(4, TagClass::Universal, vec![]),
            cons(4, TagClass::Application, vec![]),
            cons(4, TagClass::Application, vec![prim(&[0xff])]),
            cons(4, TagClass::Application, vec![prim(b"dn")]),
            cons(
                4,
                TagClass::Application,
                vec![prim(b"dn"), prim(b"not a list")],
            ),
            cons(
                4,
                TagClass::Application,
                vec![prim(b"dn"), cons(16, TagClass::Universal, vec![prim(b"x")])],
            ),
            cons(
                4,
                TagClass::Application,
                vec![
                    prim(b"dn"),
                    cons(
                        16,
                        TagClass::Universal,
                        vec![cons(16, TagClass::Universal, vec![prim(b"mail")])],
                    ),
                ],
            ),
        ];
        for tag in cases {
            let r = decode_entry(ResultEntry::new(tag.clone()));
            assert!(
                matches!(r, Err(DirectoryError::Protocol(_))),
                "{tag:?} gave {r:?}"
            );
        }
    }

    #[test]
    fn config_is_checked() {
        assert!(matches!(
            LdapDirectory::new(LdapConfig::new("http://example.com/")),
            Err(DirectoryError::Config(_))
        ));
        assert!(matches!(
            LdapDirectory::new(LdapConfig::new("ldap://127.0.0.1/").max_connections(0)),
            Err(DirectoryError::Config(_))
        ));
        let d = LdapDirectory::new(LdapConfig::new("LDAP://127.0.0.1:389/")).expect("valid");
        assert_eq!(d.idle_connections(), 0);
        assert_eq!(d.connections_opened(), 0);
        let shown = format!("{:?}", LdapConfig::new("ldap://x/").bind("cn=a", "hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
