//! The directory as LASER routing sees it: one search operation, entries with string values,
//! and an error that always means "try later".

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;

use mswitch_core::status::Status;

/// How far below the base a search looks (RFC 4511 §4.5.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// The base entry only.
    Base,
    /// The immediate children of the base.
    OneLevel,
    /// The base and everything below it.
    #[default]
    Subtree,
}

/// A directory entry: its DN and the values of the attributes asked for.
///
/// Attribute names are compared case-insensitively (RFC 4512 §2.5), so `mailhost` finds the
/// values of `mailHost`. Only values that are valid UTF-8 are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    dn: String,
    /// Keyed by the lower-case attribute name.
    attributes: BTreeMap<String, Vec<String>>,
}

impl Entry {
    /// An entry with no attributes.
    pub fn new(dn: impl Into<String>) -> Self {
        Entry {
            dn: dn.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// The entry with `values` added to `attribute`.
    pub fn with<I, V>(mut self, attribute: &str, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.add(attribute, values);
        self
    }

    /// Adds `values` to `attribute`.
    pub fn add<I, V>(&mut self, attribute: &str, values: I)
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.attributes
            .entry(attribute.to_ascii_lowercase())
            .or_default()
            .extend(values.into_iter().map(Into::into));
    }

    /// The distinguished name.
    pub fn dn(&self) -> &str {
        &self.dn
    }

    /// The values of `attribute` (empty when the entry has none).
    pub fn values(&self, attribute: &str) -> &[String] {
        self.attributes
            .get(&attribute.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The first value of `attribute` that is not blank, trimmed. LDAP values have no order,
    /// so this is meant for single-valued attributes.
    pub fn first(&self, attribute: &str) -> Option<&str> {
        self.values(attribute)
            .iter()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
    }
}

/// Why a directory search failed. Every variant means the answer is unknown, never that the
/// address does not exist: routing turns each into `451 4.4.3` (try later), never a 5xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The directory could not be reached or did not answer in time (connection refused or
    /// lost, timeout, every pooled connection busy): a network or peer problem.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The directory answered the search (or the bind) with an error result: a problem of the
    /// directory or of our configuration (wrong base, bad credentials, an access control).
    #[error("directory refused the operation: result code {code}: {message}")]
    Refused {
        /// The LDAP result code (RFC 4511 §4.1.9).
        code: u32,
        /// The diagnostic message and the operation.
        message: String,
    },
    /// The directory sent something that could not be understood (the peer misbehaved).
    #[error("malformed directory response: {0}")]
    Protocol(String),
    /// The directory back end is misconfigured (an unusable URL, a filter it rejects).
    #[error("directory configuration error: {0}")]
    Config(String),
}

impl From<&DirectoryError> for Status {
    /// `451 4.4.3` (RFC 3463 X.4.3, "directory server failure") for every failure: a lookup
    /// that fails must never bounce mail.
    fn from(e: &DirectoryError) -> Status {
        Status::new(
            451,
            (4, 4, 3),
            format!("Directory lookup failed, try again later: {e}"),
        )
    }
}

/// A directory that can be searched: the one operation LASER routing needs. Implemented over
/// LDAP by `LdapDirectory` (feature `ldap`), and by fakes in tests.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The entries under `base` (within `scope`) that match the RFC 4515 `filter`, with the
    /// values of `attributes` (none at all when `attributes` is empty). An empty result is
    /// `Ok(vec![])`; an error means the answer is unknown.
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Vec<Entry>, DirectoryError>;
}

impl fmt::Debug for dyn Directory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<directory>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names_ignore_case() {
        let e = Entry::new("uid=a,dc=example,dc=com")
            .with("mailHost", ["  ", " mx.example.com "])
            .with("MAILHOST", ["second.example.com"]);
        assert_eq!(
            e.values("MailHost"),
            ["  ", " mx.example.com ", "second.example.com"]
        );
        assert_eq!(e.first("mailhost"), Some("mx.example.com"));
        assert_eq!(e.values("mail"), &[] as &[String]);
        assert_eq!(e.first("mail"), None);
        assert_eq!(e.dn(), "uid=a,dc=example,dc=com");
    }

    #[test]
    fn every_error_is_451_4_4_3() {
        for e in [
            DirectoryError::Unavailable("connection refused".into()),
            DirectoryError::Refused {
                code: 32,
                message: "no such object".into(),
            },
            DirectoryError::Protocol("bad entry".into()),
            DirectoryError::Config("bad url".into()),
        ] {
            let s = Status::from(&e);
            assert_eq!((s.code, s.enhanced.to_string()), (451, "4.4.3".to_owned()));
            assert!(s.text.contains(&e.to_string()), "{s}");
        }
    }
}
