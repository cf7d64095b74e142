//! The gateway's (RFC 2156, MIXER) address rules read from an LDAP directory
//! (`[directory] gateway_base`), the same rules as `[[gateway.rule]]` in the file.
//!
//! # Layout
//! One entry per rule, anywhere below the base (a subtree search), holding the rule's keys
//! as `description` values, one `key=value` each, with the keys of `[[gateway.rule]]`. Stock
//! OpenLDAP schemas have no MIXER attribute types (RFC 2164's `associatedORAddress` and the
//! like); `applicationProcess` needs only `cn` and allows `description`:
//!
//! ```text
//! dn: cn=sales,ou=mixer,dc=example,dc=com
//! objectClass: applicationProcess
//! cn: sales
//! description: domain=sales.example.com
//! description: or=/C=GB/ADMD= /PRMD=Example/O=Sales/
//! description: direction=both              (optional: both, 822-to-x400, x400-to-822)
//! description: subdomains=true             (optional, default true)
//! ```
//!
//! A `description` without `=` is free text; an entry without any key (the container, a
//! comment) is not a rule. An entry with keys must be a whole rule: `domain` and `or` given,
//! no key twice, no unknown key, known values. Like the X.400 routing trees, one entry that
//! cannot be used fails the whole read (a rule left out would map addresses differently), so
//! the caller keeps the rules it has; the error names the DN. The domains and O/R prefixes
//! themselves are checked when the rules are merged with the file's
//! ([`Config::with_gateway_rules`](crate::config::Config::with_gateway_rules)).

use mswitch_route::laser::{Directory, DirectoryError, Entry, Scope};
use mswitch_x400::gateway::address::{MixerRuleConfig, RuleDirection};

/// The attribute that holds a rule's `key=value` settings.
pub const RULE_ATTRIBUTE: &str = "description";

/// LDAP result code `noSuchObject` (RFC 4511 §4.1.9).
const NO_SUCH_OBJECT: u32 = 32;

/// A rule read from the directory, with the DN of its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayDirectoryRule {
    /// The entry's DN (in logs and errors).
    pub dn: String,
    /// The rule.
    pub rule: MixerRuleConfig,
}

/// Why an entry is not a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleProblem {
    /// A key that rules do not have.
    #[error("unknown rule key {0:?} (expected domain, or, direction, subdomains)")]
    UnknownKey(String),
    /// A key given twice.
    #[error("rule key {0:?} given twice")]
    DuplicateKey(String),
    /// A required key missing.
    #[error("no {0}=... value")]
    Missing(&'static str),
    /// A value that does not fit its key.
    #[error("bad value {value:?} for {key}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
    },
}

/// Why the rules could not be read. The caller keeps the rules it has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayLoadError {
    /// The directory failed (unreachable, a search refused): try again later.
    #[error("gateway rules below {base}: {source}")]
    Directory {
        /// The base searched.
        base: String,
        /// The failure.
        source: DirectoryError,
    },
    /// The base entry does not exist (a configuration mistake, here or in the directory).
    #[error("gateway rules: no entry {base}")]
    MissingBase {
        /// The base.
        base: String,
    },
    /// An entry cannot be used (a configuration error in the directory).
    #[error("gateway rule entry {dn}: {problem}")]
    Entry {
        /// The entry.
        dn: String,
        /// What is wrong.
        problem: RuleProblem,
    },
}

/// Reads the rules below `base`, sorted by DN (so the result does not depend on the order
/// the server sends entries in). See the [module documentation](self).
pub async fn load(
    dir: &dyn Directory,
    base: &str,
) -> Result<Vec<GatewayDirectoryRule>, GatewayLoadError> {
    let entries = match dir
        .search(base, Scope::Subtree, "(objectClass=*)", &[RULE_ATTRIBUTE])
        .await
    {
        Ok(entries) if entries.is_empty() => {
            return Err(GatewayLoadError::MissingBase { base: base.into() });
        }
        Ok(entries) => entries,
        Err(DirectoryError::Refused { code, .. }) if code == NO_SUCH_OBJECT => {
            return Err(GatewayLoadError::MissingBase { base: base.into() });
        }
        Err(source) => {
            return Err(GatewayLoadError::Directory {
                base: base.into(),
                source,
            });
        }
    };
    rules(&entries)
}

/// The rules of `entries`, sorted by DN.
fn rules(entries: &[Entry]) -> Result<Vec<GatewayDirectoryRule>, GatewayLoadError> {
    let mut out = Vec::new();
    for entry in entries {
        let rule =
            rule(entry.values(RULE_ATTRIBUTE)).map_err(|problem| GatewayLoadError::Entry {
                dn: entry.dn().to_owned(),
                problem,
            })?;
        if let Some(rule) = rule {
            out.push(GatewayDirectoryRule {
                dn: entry.dn().to_owned(),
                rule,
            });
        }
    }
    out.sort_by(|a, b| a.dn.cmp(&b.dn));
    Ok(out)
}

/// The rule of an entry's `key=value` values; `None` when it has no key at all.
fn rule(values: &[String]) -> Result<Option<MixerRuleConfig>, RuleProblem> {
    let (mut domain, mut or, mut direction, mut subdomains) = (None, None, None, None);
    let mut any = false;
    for value in values {
        let Some((key, setting)) = value.split_once('=') else {
            continue;
        };
        any = true;
        let setting = setting.trim();
        let key = key.trim().to_ascii_lowercase();
        let (slot, name): (&mut Option<String>, &'static str) = match key.as_str() {
            "domain" => (&mut domain, "domain"),
            "or" => (&mut or, "or"),
            "direction" => (&mut direction, "direction"),
            "subdomains" => (&mut subdomains, "subdomains"),
            _ => return Err(RuleProblem::UnknownKey(key)),
        };
        if slot.is_some() {
            return Err(RuleProblem::DuplicateKey(name.into()));
        }
        // An O/R prefix keeps its spaces (`ADMD= ` is the blank ADMD); the rest is trimmed.
        let setting = if name == "or" {
            value.split_once('=').map_or("", |(_, v)| v).trim_start()
        } else {
            setting
        };
        *slot = Some(setting.to_owned());
    }
    if !any {
        return Ok(None);
    }
    let domain = domain.ok_or(RuleProblem::Missing("domain"))?;
    let or_prefix = or.ok_or(RuleProblem::Missing("or"))?;
    let direction = match direction.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("both") => RuleDirection::Both,
        Some("822-to-x400") => RuleDirection::Rfc822ToX400,
        Some("x400-to-822") => RuleDirection::X400ToRfc822,
        Some(_) => {
            return Err(RuleProblem::BadValue {
                key: "direction",
                value: direction.unwrap_or_default(),
            });
        }
    };
    let subdomains = match subdomains
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("true" | "yes" | "on") => true,
        Some("false" | "no" | "off") => false,
        Some(_) => {
            return Err(RuleProblem::BadValue {
                key: "subdomains",
                value: subdomains.unwrap_or_default(),
            });
        }
    };
    Ok(Some(MixerRuleConfig {
        domain,
        or_prefix,
        direction,
        subdomains,
    }))
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;

    fn values(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_rule_with_every_key() {
        let r = rule(&values(&[
            "the sales office",
            "domain=sales.example.com",
            "or=/C=GB/ADMD= /PRMD=Example/O=Sales/",
            "Direction = 822-to-x400",
            "subdomains=false",
        ]))
        .expect("a rule")
        .expect("keys");
        assert_eq!(
            r,
            MixerRuleConfig {
                domain: "sales.example.com".into(),
                or_prefix: "/C=GB/ADMD= /PRMD=Example/O=Sales/".into(),
                direction: RuleDirection::Rfc822ToX400,
                subdomains: false,
            }
        );
    }

    #[test]
    fn defaults_and_entries_without_keys() {
        let r = rule(&values(&["domain=a.test", "or=/C=GB/ADMD= /"]))
            .expect("a rule")
            .expect("keys");
        assert_eq!(
            (r.direction, r.subdomains, r.or_prefix.as_str()),
            (RuleDirection::Both, true, "/C=GB/ADMD= /")
        );
        assert_eq!(rule(&values(&["just a comment"])), Ok(None));
        assert_eq!(rule(&[]), Ok(None));
        let r = rule(&values(&[
            "domain=a.test",
            "or=/C=GB/ADMD= /",
            "direction=X400-TO-822",
        ]))
        .expect("a rule")
        .expect("keys");
        assert_eq!(r.direction, RuleDirection::X400ToRfc822);
    }

    #[test]
    fn unusable_entries() {
        let cases: [(&[&str], RuleProblem); 6] = [
            (&["domain=a.test"], RuleProblem::Missing("or")),
            (&["or=/C=GB/ADMD= /"], RuleProblem::Missing("domain")),
            (
                &["domain=a.test", "or=/C=GB/ADMD= /", "mta=x"],
                RuleProblem::UnknownKey("mta".into()),
            ),
            (
                &["domain=a.test", "DOMAIN=b.test", "or=/C=GB/ADMD= /"],
                RuleProblem::DuplicateKey("domain".into()),
            ),
            (
                &["domain=a.test", "or=/C=GB/ADMD= /", "direction=sideways"],
                RuleProblem::BadValue {
                    key: "direction",
                    value: "sideways".into(),
                },
            ),
            (
                &["domain=a.test", "or=/C=GB/ADMD= /", "subdomains=maybe"],
                RuleProblem::BadValue {
                    key: "subdomains",
                    value: "maybe".into(),
                },
            ),
        ];
        for (v, problem) in cases {
            assert_eq!(rule(&values(v)), Err(problem), "{v:?}");
        }
    }

    /// A directory that answers every search with `answer`.
    struct Fixed(Result<Vec<Entry>, DirectoryError>);

    #[async_trait]
    impl Directory for Fixed {
        async fn search(
            &self,
            _base: &str,
            _scope: Scope,
            _filter: &str,
            _attributes: &[&str],
        ) -> Result<Vec<Entry>, DirectoryError> {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn load_sorts_by_dn_skips_containers_and_names_bad_entries() {
        let dir = Fixed(Ok(vec![
            Entry::new("cn=z,ou=g").with(RULE_ATTRIBUTE, ["domain=z.test", "or=/C=GB/ADMD= /P=Z/"]),
            Entry::new("ou=g"),
            Entry::new("cn=a,ou=g").with(RULE_ATTRIBUTE, ["domain=a.test", "or=/C=GB/ADMD= /P=A/"]),
        ]));
        let rules = load(&dir, "ou=g").await.expect("rules");
        let dns: Vec<&str> = rules.iter().map(|r| r.dn.as_str()).collect();
        assert_eq!(dns, ["cn=a,ou=g", "cn=z,ou=g"]);

        let dir = Fixed(Ok(vec![
            Entry::new("cn=a,ou=g").with(RULE_ATTRIBUTE, ["domain=a.test", "or=/C=GB/ADMD= /P=A/"]),
            Entry::new("cn=bad,ou=g").with(RULE_ATTRIBUTE, ["domain=b.test"]),
        ]));
        let e = load(&dir, "ou=g").await.expect_err("a bad entry");
        assert_eq!(
            e.to_string(),
            "gateway rule entry cn=bad,ou=g: no or=... value"
        );

        let e = load(&Fixed(Ok(Vec::new())), "ou=g")
            .await
            .expect_err("nothing");
        assert_eq!(
            e,
            GatewayLoadError::MissingBase {
                base: "ou=g".into()
            }
        );
        let refused = DirectoryError::Refused {
            code: NO_SUCH_OBJECT,
            message: "no such object".into(),
        };
        let e = load(&Fixed(Err(refused)), "ou=g")
            .await
            .expect_err("no base");
        assert!(matches!(e, GatewayLoadError::MissingBase { .. }), "{e:?}");
        let down = DirectoryError::Unavailable("connection refused".into());
        let e = load(&Fixed(Err(down)), "ou=g").await.expect_err("down");
        assert!(matches!(e, GatewayLoadError::Directory { .. }), "{e:?}");
    }
}
