//! Routing trees read from an LDAP directory, in the manner of RFC 1801: each tree is a
//! subtree whose entries are named by O/R address attributes, and the route of a node is in
//! its entry. [`load`] reads the trees into an [`X400Routing`] snapshot, over the
//! [`Directory`] trait of LASER routing (`LdapDirectory` in production, fakes in tests).
//!
//! # Layout
//! Below a base (say `ou=x400-routing,dc=example,dc=com`), one entry per tree, `cn=<name>`;
//! below it, one entry per node, each named by one std-or pair in a `cn`:
//!
//! ```text
//! cn=local,ou=x400-routing,dc=example,dc=com                    the tree "local" (and its "/" node)
//! cn=C=GB,cn=local,…                                            /C=GB/
//! cn=ADMD=$ ,cn=C=GB,cn=local,…                                 /C=GB/ADMD= /
//! cn=PRMD=Isode,cn=ADMD=$ ,cn=C=GB,cn=local,…                   /C=GB/ADMD= /PRMD=Isode/
//! cn=S=Smi*,cn=O=Example,cn=PRMD=Isode,cn=ADMD=$ ,cn=C=GB,…     …/O=Example/S=Smi*/
//! ```
//!
//! So the relative names from the tree down, read as std-or pairs, are the node's pattern
//! ([`NodePattern::from_pairs`]). Stock OpenLDAP schemas have no O/R address attribute types
//! (RFC 1801's `mHSCountryName` and the like), hence the pairs in `cn`; the entries are
//! `objectClass: applicationProcess`, which needs `cn` and allows `description`. Two
//! directory gotchas: LDAP drops trailing spaces when it compares names, so the blank ADMD is
//! written `ADMD=$ ` (a quoted space), which stays apart from `ADMD=` (absent); and a `,`,
//! `+` or `\` in a value is escaped in the DN by RFC 4514 (`cn=O=Acme\, Ltd`).
//!
//! A node's route is in its `description` values (the attribute is configurable), one
//! `key=value` each, with the keys of the TOML `[[x400_tree.route]]` (`match` aside: the DN
//! gives it): `channel=p1`, `mta=mta-b` or `host=x400.example:102`, `action=local` or
//! `action=refuse`, `alternates=mta-c, mta-d` (one value: LDAP values have no order),
//! `balance=true`, `weights=2, 1`, `backups=mta-z`, `local=false`. A description without
//! `=` is free text and ignored; an entry with no key is a node without a route (a step on
//! the way to deeper nodes).
//!
//! # Errors
//! Unlike directory configuration, where an unusable value is skipped, any entry that
//! cannot be used (a name that is not a std-or pair, an unknown key, a route the TOML would
//! refuse) fails the whole load: a route left out would send mail elsewhere (to the next
//! tree), so the caller keeps its previous snapshot and reports the DN. A tree that does not
//! exist is an error too.

use crate::laser::{Directory, DirectoryError, Entry, Scope};

use super::config::{X400ActionConfig, X400ConfigError, X400RouteConfig, build_labelled};
use super::pattern::{NodePattern, PatternError};
use super::tree::X400Routing;

/// LDAP result code `noSuchObject` (RFC 4511 §4.1.9).
const NO_SUCH_OBJECT: u32 = 32;

/// Where the routing trees are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X400DirectorySettings {
    /// The entry the trees are below.
    pub base: String,
    /// The names of the trees to use, in the order they are tried (RFC 1801 §9.1: each MTA
    /// has its own ordered list); tree `name` is the subtree `cn=<name>,<base>`.
    pub trees: Vec<String>,
    /// The attribute that holds the `key=value` route settings.
    pub route_attribute: String,
}

impl X400DirectorySettings {
    /// The default route attribute.
    pub const ROUTE_ATTRIBUTE: &'static str = "description";

    /// The trees `trees`, in this order, below `base`, routes in `description`.
    pub fn new<I, S>(base: impl Into<String>, trees: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        X400DirectorySettings {
            base: base.into(),
            trees: trees.into_iter().map(Into::into).collect(),
            route_attribute: Self::ROUTE_ATTRIBUTE.to_owned(),
        }
    }

    /// The DN of tree `name`.
    pub fn tree_dn(&self, name: &str) -> String {
        format!("cn={},{}", escape_dn_value(name), self.base)
    }
}

/// Why an entry cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryProblem {
    /// The DN does not parse (RFC 4514).
    #[error("bad DN: {0}")]
    BadDn(String),
    /// The entry is not below its tree (the server returned something odd).
    #[error("not below the tree entry")]
    OutsideTree,
    /// A relative name below the tree that is not a single `cn`.
    #[error("relative name {0:?} is not cn=<std-or pair>")]
    NotCn(String),
    /// The relative names do not form a pattern.
    #[error("bad O/R address pair: {0}")]
    Pattern(#[from] PatternError),
    /// A route key that is not known.
    #[error("unknown route key {0:?}")]
    UnknownKey(String),
    /// A route key given twice.
    #[error("route key {0:?} given twice")]
    DuplicateKey(String),
    /// A value that does not fit its key.
    #[error("bad value {value:?} for {key}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

/// Why the trees could not be read. The caller keeps its previous snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum X400LoadError {
    /// The directory failed (unreachable, a search refused): try again later.
    #[error("routing tree {tree:?}: {source}")]
    Directory {
        /// The tree being read.
        tree: String,
        /// The failure.
        source: DirectoryError,
    },
    /// A configured tree has no entry.
    #[error("routing tree {tree:?}: no entry {dn}")]
    MissingTree {
        /// The tree.
        tree: String,
        /// The DN looked for.
        dn: String,
    },
    /// An entry cannot be used (a configuration error in the directory).
    #[error("routing tree {tree:?}, entry {dn}: {problem}")]
    Entry {
        /// The tree.
        tree: String,
        /// The entry.
        dn: String,
        /// What is wrong.
        problem: EntryProblem,
    },
    /// The routes do not make a valid routing (a route the TOML would refuse too).
    #[error("{0}")]
    Config(#[from] X400ConfigError),
}

/// One routing tree as read from the directory: its name and its routes, each with the DN
/// of the entry it came from (for the caller's own checks and error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X400DirectoryTree {
    /// The tree's name, as configured.
    pub name: String,
    /// Its routes, sorted by DN, each `(dn, route)`; the route's `pattern` is the std-or
    /// text the DN gives.
    pub routes: Vec<(String, X400RouteConfig)>,
}

/// Builds the routing from trees read by [`load_trees`] (routes labelled by their DN in
/// errors).
pub fn build_trees(trees: &[X400DirectoryTree]) -> Result<X400Routing, X400ConfigError> {
    build_labelled(
        trees
            .iter()
            .map(|t| (t.name.clone(), t.routes.clone()))
            .collect::<Vec<_>>(),
    )
}

/// Reads the trees of `settings`, in order, into one snapshot. See the
/// [module documentation](self).
pub async fn load(
    dir: &dyn Directory,
    settings: &X400DirectorySettings,
) -> Result<X400Routing, X400LoadError> {
    Ok(build_trees(&load_trees(dir, settings).await?)?)
}

/// Reads the trees of `settings`, in order, as routes with their DNs, checked as [`load`]
/// checks them (so a tree list that this returns builds). For a caller that merges the trees
/// into a configuration of its own and checks the routes' channels and MTAs against it.
pub async fn load_trees(
    dir: &dyn Directory,
    settings: &X400DirectorySettings,
) -> Result<Vec<X400DirectoryTree>, X400LoadError> {
    let mut trees = Vec::with_capacity(settings.trees.len());
    for name in &settings.trees {
        let dn = settings.tree_dn(name);
        let entries = match dir
            .search(
                &dn,
                Scope::Subtree,
                "(objectClass=*)",
                &[&settings.route_attribute],
            )
            .await
        {
            Ok(entries) => entries,
            Err(DirectoryError::Refused { code, .. }) if code == NO_SUCH_OBJECT => {
                return Err(X400LoadError::MissingTree {
                    tree: name.clone(),
                    dn,
                });
            }
            Err(source) => {
                return Err(X400LoadError::Directory {
                    tree: name.clone(),
                    source,
                });
            }
        };
        if entries.is_empty() {
            return Err(X400LoadError::MissingTree {
                tree: name.clone(),
                dn,
            });
        }
        let routes =
            tree_routes(&dn, &entries, &settings.route_attribute).map_err(|(dn, problem)| {
                X400LoadError::Entry {
                    tree: name.clone(),
                    dn,
                    problem,
                }
            })?;
        trees.push(X400DirectoryTree {
            name: name.clone(),
            routes,
        });
    }
    build_trees(&trees)?;
    Ok(trees)
}

/// The routes of one tree's entries, each labelled with its DN, sorted by DN (so the
/// snapshot does not depend on the order the server sends entries in).
fn tree_routes(
    tree_dn: &str,
    entries: &[Entry],
    attribute: &str,
) -> Result<Vec<(String, X400RouteConfig)>, (String, EntryProblem)> {
    let tree = parse_dn(tree_dn).map_err(|p| (tree_dn.to_owned(), p))?;
    let mut routes = Vec::new();
    for entry in entries {
        let fail = |problem| (entry.dn().to_owned(), problem);
        let Some(mut route) = route_settings(entry.values(attribute)).map_err(fail)? else {
            continue;
        };
        let rdns = parse_dn(entry.dn()).map_err(fail)?;
        let below = rdns
            .len()
            .checked_sub(tree.len())
            .filter(|n| {
                rdns[*n..].iter().zip(&tree).all(|(a, b)| {
                    a.0.eq_ignore_ascii_case(&b.0) && a.1.trim().eq_ignore_ascii_case(b.1.trim())
                })
            })
            .ok_or_else(|| fail(EntryProblem::OutsideTree))?;
        let mut pairs = Vec::with_capacity(below);
        for (kind, value) in rdns[..below].iter().rev() {
            if !(kind.eq_ignore_ascii_case("cn") || kind == "2.5.4.3") {
                return Err(fail(EntryProblem::NotCn(format!("{kind}={value}"))));
            }
            pairs.push(value.as_str());
        }
        let pattern = NodePattern::from_pairs(pairs).map_err(|e| fail(e.into()))?;
        route.pattern = pattern.to_string();
        routes.push((entry.dn().to_owned(), route));
    }
    routes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(routes)
}

/// The route settings of an entry's `key=value` values; `None` when it has none.
fn route_settings(values: &[String]) -> Result<Option<X400RouteConfig>, EntryProblem> {
    let mut route = X400RouteConfig::default();
    let mut seen: Vec<String> = Vec::new();
    for value in values {
        let Some((key, setting)) = value.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let setting = setting.trim();
        if seen.contains(&key) {
            return Err(EntryProblem::DuplicateKey(key));
        }
        let bad = || EntryProblem::BadValue {
            key: key.clone(),
            value: setting.to_owned(),
        };
        let list = || {
            setting
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        };
        match key.as_str() {
            "channel" => route.channel = Some(setting.to_owned()),
            "mta" => route.mta = Some(setting.to_owned()),
            "host" => route.host = Some(setting.to_owned()),
            "action" => {
                route.action = Some(match setting.to_ascii_lowercase().as_str() {
                    "relay" => X400ActionConfig::Relay,
                    "local" => X400ActionConfig::Local,
                    "refuse" => X400ActionConfig::Refuse,
                    _ => return Err(bad()),
                });
            }
            "alternates" => route.alternates = list(),
            "backups" => route.backups = list(),
            "weights" => {
                route.weights = list()
                    .iter()
                    .map(|w| w.parse::<u32>().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
            }
            "balance" => route.balance = parse_bool(setting).ok_or_else(bad)?,
            "local" => route.local = Some(parse_bool(setting).ok_or_else(bad)?),
            _ => return Err(EntryProblem::UnknownKey(key)),
        }
        seen.push(key);
    }
    Ok((!seen.is_empty()).then_some(route))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Escapes an attribute value for an RFC 4514 DN string.
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\20"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Parses an RFC 4514 DN into its relative names, first (the entry's own) to last: each a
/// single `(type, value)`, the value unescaped (`\c` and `\hh`). Multi-valued relative
/// names (`+`) and BER values (`#…`) are refused.
fn parse_dn(dn: &str) -> Result<Vec<(String, String)>, EntryProblem> {
    let bad = |why: &str| EntryProblem::BadDn(format!("{dn:?}: {why}"));
    let mut rdns = Vec::new();
    let mut rest = dn.trim();
    if rest.is_empty() {
        return Ok(rdns);
    }
    loop {
        let equals = rest.find('=').ok_or_else(|| bad("no ="))?;
        let kind = rest[..equals].trim();
        if kind.is_empty() {
            return Err(bad("empty attribute type"));
        }
        let mut bytes: Vec<u8> = Vec::new();
        let mut chars = rest[equals + 1..].char_indices();
        let mut end = None;
        if rest[equals + 1..].starts_with('#') {
            return Err(bad("BER-encoded values are not supported"));
        }
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, first) = chars.next().ok_or_else(|| bad("dangling \\"))?;
                    if first.is_ascii_hexdigit() {
                        let (_, second) = chars
                            .next()
                            .filter(|(_, c)| c.is_ascii_hexdigit())
                            .ok_or_else(|| bad("bad \\hh escape"))?;
                        let hex = format!("{first}{second}");
                        let byte = u8::from_str_radix(&hex, 16).map_err(|_| bad("bad \\hh"))?;
                        bytes.push(byte);
                    } else {
                        let mut buf = [0; 4];
                        bytes.extend_from_slice(first.encode_utf8(&mut buf).as_bytes());
                    }
                }
                ',' | ';' => {
                    end = Some(equals + 1 + i);
                    break;
                }
                '+' => return Err(bad("multi-valued relative names are not supported")),
                c => {
                    let mut buf = [0; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        let value = String::from_utf8(bytes).map_err(|_| bad("value is not UTF-8"))?;
        rdns.push((kind.to_owned(), value));
        match end {
            Some(at) => rest = &rest[at + 1..],
            None => return Ok(rdns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_parse_with_escapes() {
        assert_eq!(
            parse_dn("cn=ADMD\\3D$\\20,cn=C\\3DGB,cn=local,ou=x400-routing,dc=example,dc=com")
                .expect("parses"),
            vec![
                ("cn".to_owned(), "ADMD=$ ".to_owned()),
                ("cn".to_owned(), "C=GB".to_owned()),
                ("cn".to_owned(), "local".to_owned()),
                ("ou".to_owned(), "x400-routing".to_owned()),
                ("dc".to_owned(), "example".to_owned()),
                ("dc".to_owned(), "com".to_owned()),
            ]
        );
        assert_eq!(
            parse_dn("cn=O=Acme\\, Ltd,cn=t").expect("parses")[0].1,
            "O=Acme, Ltd"
        );
        assert_eq!(parse_dn("cn=O=Caf\\C3\\A9").expect("parses")[0].1, "O=Café");
        for bad in ["cn", "cn=a+sn=b", "cn=#04", "cn=a\\", "cn=a\\4", "=x"] {
            assert!(
                matches!(parse_dn(bad), Err(EntryProblem::BadDn(_))),
                "{bad}"
            );
        }
        assert_eq!(escape_dn_value(" a,b=c "), "\\20a\\,b\\=c\\20");
        let round = format!("cn={}", escape_dn_value("#x+y;z\\"));
        assert_eq!(parse_dn(&round).expect("parses")[0].1, "#x+y;z\\");
    }

    #[test]
    fn route_settings_are_key_value_descriptions() {
        let values: Vec<String> = [
            "Routes of Example Ltd",
            "channel=p1",
            "mta = mta-b",
            "alternates=mta-c, mta-d",
            "balance=yes",
            "weights=2,1,1",
            "local=false",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let route = route_settings(&values).expect("valid").expect("a route");
        assert_eq!(route.channel.as_deref(), Some("p1"));
        assert_eq!(route.mta.as_deref(), Some("mta-b"));
        assert_eq!(route.alternates, ["mta-c", "mta-d"]);
        assert!(route.balance);
        assert_eq!(route.weights, [2, 1, 1]);
        assert_eq!(route.local, Some(false));
        assert_eq!(route_settings(&["free text".into()]), Ok(None));
        assert_eq!(
            route_settings(&["chanel=p1".into()]),
            Err(EntryProblem::UnknownKey("chanel".into()))
        );
        assert_eq!(
            route_settings(&["mta=a".into(), "MTA=b".into()]),
            Err(EntryProblem::DuplicateKey("mta".into()))
        );
        assert!(matches!(
            route_settings(&["balance=maybe".into()]),
            Err(EntryProblem::BadValue { .. })
        ));
        assert!(matches!(
            route_settings(&["action=bounce".into()]),
            Err(EntryProblem::BadValue { .. })
        ));
        let refuse = route_settings(&["action=refuse".into()])
            .expect("valid")
            .expect("a route");
        assert_eq!(refuse.action, Some(X400ActionConfig::Refuse));
    }

    #[test]
    fn entries_below_a_tree_become_routes() {
        let tree = "cn=local,ou=x400-routing,dc=example,dc=com";
        let entries = vec![
            Entry::new(tree).with("description", ["mta=gateway", "channel=p1"]),
            Entry::new("cn=C\\3DGB,cn=local,ou=x400-routing,dc=example,dc=com"),
            Entry::new(
                "cn=PRMD=Isode,cn=ADMD\\3D$\\20,cn=C=GB,CN=Local,ou=x400-routing,dc=example,dc=com",
            )
            .with("description", ["channel=p1", "mta=mta-b"]),
        ];
        let routes = tree_routes(tree, &entries, "description").expect("valid");
        let mut patterns: Vec<&str> = routes.iter().map(|(_, r)| r.pattern.as_str()).collect();
        patterns.sort();
        assert_eq!(patterns, ["/", "/C=GB/ADMD= /PRMD=Isode/"]);

        let outside = vec![
            Entry::new("cn=C=GB,cn=other,ou=x400-routing,dc=example,dc=com")
                .with("description", ["mta=x", "channel=p1"]),
        ];
        assert!(matches!(
            tree_routes(tree, &outside, "description"),
            Err((_, EntryProblem::OutsideTree))
        ));
        let not_cn = vec![
            Entry::new("ou=C=GB,cn=local,ou=x400-routing,dc=example,dc=com")
                .with("description", ["mta=x", "channel=p1"]),
        ];
        assert!(matches!(
            tree_routes(tree, &not_cn, "description"),
            Err((_, EntryProblem::NotCn(_)))
        ));
        let bad_pair = vec![
            Entry::new("cn=Z=GB,cn=local,ou=x400-routing,dc=example,dc=com")
                .with("description", ["mta=x", "channel=p1"]),
        ];
        assert!(matches!(
            tree_routes(tree, &bad_pair, "description"),
            Err((_, EntryProblem::Pattern(_)))
        ));
    }
}
