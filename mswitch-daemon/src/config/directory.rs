//! `[directory]`'s X.400 parts: the X.400 routing trees (`x400_routing_base`, `x400_trees`)
//! and the gateway's address rules (`gateway_base`) read from the directory, and their merge
//! into the file's configuration.
//!
//! Precedence. The directory's routing trees are tried **before** the file's
//! `[[x400_tree]]`s, in the order `x400_trees` names them; a tree name may not be in both.
//! The directory's gateway rules are added **after** the file's `[[gateway.rule]]`s, and the
//! file wins: a directory rule that maps a domain (to X.400) or an O/R prefix (to RFC 822)
//! that a file rule maps the same way is logged and ignored. Two directory entries that
//! collide are an error in the directory (the snapshot is refused, naming both).
//!
//! Every route read from the directory is checked as a `[[x400_tree.route]]` is: its
//! `channel` must be a channel, its `mta` (and, with `mta`, its `alternates` and `backups`) a
//! `[[x400.peer]]`. A snapshot that fails a check is refused with the tree, the entry's DN
//! and the problem; the caller keeps the one it has.

use mswitch_route::x400::{
    X400DirectorySettings, X400DirectoryTree, X400RouteConfig, X400TreeConfig,
};
use mswitch_x400::gateway::address::{MixerConfigError, MixerTables};

use super::{Channel, Config, ConfigError, RawDirectory, X400Peer};
use crate::gateway_directory::GatewayDirectoryRule;

/// The X.400 routing tree settings of `[directory]`, if any; errors are (key, message).
pub(super) fn x400_settings(
    d: &RawDirectory,
) -> Result<Option<X400DirectorySettings>, (String, String)> {
    let base = d.x400_routing_base.as_deref().map(str::trim).unwrap_or("");
    if d.x400_trees.is_empty() {
        if !base.is_empty() || d.x400_route_attribute.is_some() {
            return Err((
                "directory.x400_trees".into(),
                "name the routing trees to read, in the order they are tried, such as \
                 [\"local\", \"default\"]"
                    .into(),
            ));
        }
        return Ok(None);
    }
    if base.is_empty() {
        return Err((
            "directory.x400_routing_base".into(),
            "required with x400_trees: the DN the trees are below (tree NAME is \
             cn=NAME,<x400_routing_base>)"
                .into(),
        ));
    }
    let mut trees: Vec<String> = Vec::with_capacity(d.x400_trees.len());
    for name in &d.x400_trees {
        let name = name.trim();
        if name.is_empty() {
            return Err((
                "directory.x400_trees".into(),
                "a tree name must not be empty".into(),
            ));
        }
        if trees.iter().any(|t| t.eq_ignore_ascii_case(name)) {
            return Err((
                "directory.x400_trees".into(),
                format!("tree {name:?} is named twice"),
            ));
        }
        trees.push(name.to_owned());
    }
    let mut settings = X400DirectorySettings::new(base, trees);
    if let Some(attribute) = &d.x400_route_attribute {
        let attribute = attribute.trim();
        let descr = attribute.starts_with(|c: char| c.is_ascii_alphabetic())
            && attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !descr {
            return Err((
                "directory.x400_route_attribute".into(),
                format!("{attribute:?}: expected an attribute name, such as \"description\""),
            ));
        }
        settings.route_attribute = attribute.to_owned();
    }
    Ok(Some(settings))
}

/// The gateway rules' base of `[directory]`, if any; errors are (key, message).
pub(super) fn gateway_base(d: &RawDirectory) -> Result<Option<String>, (String, String)> {
    match d.gateway_base.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => Err((
            "directory.gateway_base".into(),
            "must not be empty (the DN below which the gateway's rules are)".into(),
        )),
        Some(base) => Ok(Some(base.to_owned())),
    }
}

/// Checks a route's next hops against the channels and the peer MTAs: its `channel` must be
/// a channel; with `mta`, the `mta`, `alternates` and `backups` must be `[[x400.peer]]`s.
/// Errors are (key, message), the key relative to the route.
pub(super) fn check_x400_next_hops(
    route: &X400RouteConfig,
    channels: &[Channel],
    peers: &[X400Peer],
) -> Result<(), (String, String)> {
    if let Some(channel) = &route.channel
        && !channels.iter().any(|c| &c.name == channel)
    {
        return Err(("channel".into(), format!("no channel is named {channel:?}")));
    }
    let Some(mta) = &route.mta else {
        return Ok(());
    };
    let lists = [
        ("mta", std::slice::from_ref(mta)),
        ("alternates", route.alternates.as_slice()),
        ("backups", route.backups.as_slice()),
    ];
    for (key, names) in lists {
        if let Some(name) = names
            .iter()
            .find(|name| !peers.iter().any(|p| &p.name == *name))
        {
            return Err((key.into(), format!("no [[x400.peer]] is named {name:?}")));
        }
    }
    Ok(())
}

impl Config {
    /// This configuration with routing trees read from the directory in front of the file's
    /// `[[x400_tree]]`s. Each route is checked as the file's are (channel, peer MTAs); an
    /// error ([`ConfigError::Invalid`] with key `directory.x400_trees`) names the tree and
    /// the entry's DN.
    pub fn with_x400_trees(&self, trees: &[X400DirectoryTree]) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: self.origin.clone(),
            key: "directory.x400_trees".into(),
            message,
        };
        let mut c = self.clone();
        let Some(x) = c.x400.as_mut() else {
            return Err(invalid(
                "X.400 routing trees need the [x400] section".into(),
            ));
        };
        for tree in trees {
            if x.routing
                .trees
                .iter()
                .any(|t| t.name.eq_ignore_ascii_case(&tree.name))
            {
                return Err(invalid(format!(
                    "routing tree {:?} is both in the directory and an [[x400_tree]] of the \
                     configuration file",
                    tree.name
                )));
            }
            for (dn, route) in &tree.routes {
                check_x400_next_hops(route, &self.channels, &x.peers).map_err(
                    |(key, message)| {
                        invalid(format!(
                            "routing tree {:?}, entry {dn}: {key}: {message}",
                            tree.name
                        ))
                    },
                )?;
            }
        }
        let mut merged: Vec<X400TreeConfig> = trees
            .iter()
            .map(|t| X400TreeConfig {
                name: t.name.clone(),
                routes: t.routes.iter().map(|(_, r)| r.clone()).collect(),
            })
            .collect();
        merged.append(&mut x.routing.trees);
        x.routing.trees = merged;
        x.routing.build().map_err(|e| invalid(e.to_string()))?;
        Ok(c)
    }

    /// This configuration with gateway address rules read from the directory added after
    /// the file's `[[gateway.rule]]`s. The file wins: a directory rule that maps the same
    /// domain or O/R prefix the same way as a file rule is logged and left out. Any other
    /// problem ([`ConfigError::Invalid`] with key `directory.gateway_base`) names the entry.
    pub fn with_gateway_rules(
        &self,
        rules: &[GatewayDirectoryRule],
    ) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: self.origin.clone(),
            key: "directory.gateway_base".into(),
            message,
        };
        let Some(file) = &self.gateway_config else {
            return Err(invalid(
                "gateway address rules need the [gateway] section".into(),
            ));
        };
        let from_file = file.rules.len();
        let mut kept: Vec<&GatewayDirectoryRule> = rules.iter().collect();
        let tables = loop {
            let mut config = file.clone();
            config.rules.extend(kept.iter().map(|r| r.rule.clone()));
            let e = match MixerTables::new(config) {
                Ok(tables) => break tables,
                Err(e) => e,
            };
            // Rule numbers count from 1: the file's rules, then the directory's kept so far.
            let entry = |n: usize| n.checked_sub(from_file + 1).and_then(|i| kept.get(i));
            let (rule, first) = match &e {
                MixerConfigError::DuplicateDomain { rule, first, .. }
                | MixerConfigError::DuplicatePrefix { rule, first, .. } => (*rule, Some(*first)),
                MixerConfigError::RuleDomain { rule, .. }
                | MixerConfigError::RuleOr { rule, .. }
                | MixerConfigError::RuleOrAttribute { rule, .. } => (*rule, None),
                _ => return Err(invalid(e.to_string())),
            };
            let Some(this) = entry(rule) else {
                return Err(invalid(e.to_string()));
            };
            match first {
                Some(first) if first <= from_file => {
                    tracing::warn!(entry = %this.dn, rule = first,
                        "directory gateway rule ignored: a [[gateway.rule]] of the configuration \
                         file maps this domain or O/R prefix");
                    let dn = this.dn.clone();
                    kept.retain(|r| r.dn != dn);
                }
                Some(first) => {
                    let other = entry(first).map_or("?", |r| r.dn.as_str());
                    return Err(invalid(format!(
                        "gateway rule entries {other} and {}: {}",
                        this.dn,
                        match &e {
                            MixerConfigError::DuplicateDomain { domain, .. } => {
                                format!("both map the domain {domain} to X.400")
                            }
                            MixerConfigError::DuplicatePrefix { prefix, .. } => {
                                format!("both map the O/R prefix {prefix} to RFC 822")
                            }
                            other => other.to_string(),
                        }
                    )));
                }
                None => {
                    return Err(invalid(format!("gateway rule entry {}: {e}", this.dn)));
                }
            }
        };
        let mut c = self.clone();
        c.gateway = Some(std::sync::Arc::new(tables));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mswitch_core::address::Mailbox;
    use mswitch_route::x400::X400ActionConfig;
    use mswitch_x400::gateway::address::{MixerRuleConfig, RuleDirection};

    use super::*;

    const BASE: &str = r#"
[server]
hostname = "switch.test"

[queue]
path = "queue"

[x400]
mta_name = "mta-a"
country = "GB"
admd = " "
prmd = "A"

[[x400.peer]]
name = "mta-b"
address = "127.0.0.1:1102"

[[x400.peer]]
name = "mta-c"
address = "127.0.0.1:1103"

[[channel]]
name = "p1"
type = "p1"

[[channel]]
name = "gw"
type = "gateway"

[gateway]
gateway_domain = "x400.example.com"
gateway_or = "/C=GB/ADMD= /PRMD=A/O=Internet/"

[[gateway.rule]]
domain = "example.com"
or = "/C=GB/ADMD= /PRMD=A/"

[[x400_tree]]
name = "file"

[[x400_tree.route]]
match = "/"
channel = "p1"
mta = "mta-b"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", Path::new("/data"))
    }

    fn with_directory(section: &str) -> Result<Config, ConfigError> {
        parse(&format!(
            "{BASE}\n[directory]\nurl = \"ldap://127.0.0.1:3899/\"\nbase = \"dc=x\"\n\
             domain_filter = \"\"\n{section}"
        ))
    }

    fn invalid(r: Result<Config, ConfigError>) -> (String, String) {
        match r {
            Err(ConfigError::Invalid { key, message, .. }) => (key, message),
            other => panic!("expected an invalid value, got {other:?}"),
        }
    }

    fn relay(pattern: &str, mta: &str) -> X400RouteConfig {
        X400RouteConfig {
            pattern: pattern.into(),
            channel: Some("p1".into()),
            mta: Some(mta.into()),
            ..X400RouteConfig::default()
        }
    }

    fn tree(name: &str, routes: Vec<(&str, X400RouteConfig)>) -> X400DirectoryTree {
        X400DirectoryTree {
            name: name.into(),
            routes: routes
                .into_iter()
                .map(|(dn, r)| (dn.to_owned(), r))
                .collect(),
        }
    }

    #[test]
    fn x400_tree_settings() {
        let c = with_directory(
            "x400_routing_base = \"ou=r,dc=x\"\nx400_trees = [\"local\", \"default\"]\n",
        )
        .expect("valid");
        let x = c.directory.expect("directory").x400.expect("trees");
        assert_eq!(
            x,
            X400DirectorySettings::new("ou=r,dc=x", ["local", "default"])
        );
        let c = with_directory(
            "x400_routing_base = \"ou=r,dc=x\"\nx400_trees = [\"t\"]\nx400_route_attribute = \"info\"\n",
        )
        .expect("valid");
        assert_eq!(
            c.directory
                .expect("directory")
                .x400
                .expect("trees")
                .route_attribute,
            "info"
        );
        for (section, key) in [
            ("x400_trees = [\"t\"]\n", "directory.x400_routing_base"),
            ("x400_routing_base = \"ou=r\"\n", "directory.x400_trees"),
            (
                "x400_routing_base = \"ou=r\"\nx400_trees = [\"t\", \"T\"]\n",
                "directory.x400_trees",
            ),
            (
                "x400_routing_base = \"ou=r\"\nx400_trees = [\" \"]\n",
                "directory.x400_trees",
            ),
            (
                "x400_routing_base = \"ou=r\"\nx400_trees = [\"t\"]\nx400_route_attribute = \"a b\"\n",
                "directory.x400_route_attribute",
            ),
            ("gateway_base = \" \"\n", "directory.gateway_base"),
        ] {
            assert_eq!(invalid(with_directory(section)).0, key, "{section}");
        }
        // Without [x400] or [gateway] there is nothing to merge them into.
        let no_x400 = "[server]\nhostname = \"s.test\"\n[queue]\npath = \"q\"\n[directory]\n\
             url = \"ldap://h/\"\nbase = \"dc=x\"\ndomain_filter = \"\"\n\
             x400_routing_base = \"ou=r\"\nx400_trees = [\"t\"]\n";
        assert_eq!(invalid(parse(no_x400)).0, "directory.x400_trees");
        let no_gateway = "[server]\nhostname = \"s.test\"\n[queue]\npath = \"q\"\n[directory]\n\
             url = \"ldap://h/\"\nbase = \"dc=x\"\ndomain_filter = \"\"\ngateway_base = \"ou=g\"\n";
        assert_eq!(invalid(parse(no_gateway)).0, "directory.gateway_base");
    }

    #[test]
    fn directory_trees_go_in_front_of_the_file_trees() {
        let c = with_directory("").expect("valid");
        let merged = c
            .with_x400_trees(&[tree(
                "dir",
                vec![("cn=PRMD=B,cn=dir", relay("/C=GB/ADMD= /PRMD=B/", "mta-c"))],
            )])
            .expect("merges");
        let names: Vec<&str> = merged
            .x400
            .as_ref()
            .expect("x400")
            .routing
            .trees
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["dir", "file"]);
        let routing = merged.x400.expect("x400").routing.build().expect("builds");
        let hop = |o: &str| {
            routing
                .route_or(&o.parse().expect("or"))
                .and_then(|r| r.route())
                .map(|r| r.next_hop)
        };
        assert_eq!(
            hop("/C=GB/ADMD= /PRMD=B/S=X/"),
            Some(mswitch_core::envelope::NextHop::Peer("mta-c".into()))
        );
        assert_eq!(
            hop("/C=GB/ADMD= /PRMD=Z/S=X/"),
            Some(mswitch_core::envelope::NextHop::Peer("mta-b".into()))
        );
        // The file's own configuration is untouched.
        assert_eq!(c.x400.expect("x400").routing.trees.len(), 1);
    }

    #[test]
    fn bad_next_hops_from_the_directory_are_refused_with_the_dn() {
        let c = with_directory("").expect("valid");
        let cases = [
            (
                relay("/C=GB/", "mta-nobody"),
                "mta: no [[x400.peer]] is named \"mta-nobody\"",
            ),
            (
                X400RouteConfig {
                    alternates: vec!["mta-c".into(), "mta-x".into()],
                    ..relay("/C=GB/", "mta-b")
                },
                "alternates: no [[x400.peer]] is named \"mta-x\"",
            ),
            (
                X400RouteConfig {
                    channel: Some("nowhere".into()),
                    ..relay("/C=GB/", "mta-b")
                },
                "channel: no channel is named \"nowhere\"",
            ),
            (
                X400RouteConfig {
                    pattern: "/C=GB/".into(),
                    action: Some(X400ActionConfig::Local),
                    channel: Some("nowhere".into()),
                    ..X400RouteConfig::default()
                },
                "channel: no channel is named \"nowhere\"",
            ),
        ];
        for (route, problem) in cases {
            let (key, message) =
                invalid(c.with_x400_trees(&[tree("dir", vec![("cn=C=GB,cn=dir,dc=x", route)])]));
            assert_eq!(key, "directory.x400_trees");
            assert_eq!(
                message,
                format!("routing tree \"dir\", entry cn=C=GB,cn=dir,dc=x: {problem}")
            );
        }
        // A name both in the directory and in the file.
        let (_, message) = invalid(c.with_x400_trees(&[tree("FILE", vec![])]));
        assert!(message.contains("both in the directory"), "{message}");
    }

    #[test]
    fn the_file_checks_alternates_and_backups_too() {
        let text = BASE.replace(
            "mta = \"mta-b\"\n",
            "mta = \"mta-b\"\nalternates = [\"mta-q\"]\n",
        );
        assert_eq!(
            invalid(parse(&text)),
            (
                "x400_tree[0].route[0].alternates".into(),
                "no [[x400.peer]] is named \"mta-q\"".into()
            )
        );
    }

    fn rule(dn: &str, domain: &str, or: &str, direction: RuleDirection) -> GatewayDirectoryRule {
        GatewayDirectoryRule {
            dn: dn.into(),
            rule: MixerRuleConfig {
                domain: domain.into(),
                or_prefix: or.into(),
                direction,
                subdomains: true,
            },
        }
    }

    fn mb(s: &str) -> Mailbox {
        Mailbox::parse(s).expect("mailbox")
    }

    #[test]
    fn directory_gateway_rules_are_added_and_the_file_wins() {
        let c = with_directory("gateway_base = \"ou=g,dc=x\"\n").expect("valid");
        let merged = c
            .with_gateway_rules(&[
                rule(
                    "cn=sales",
                    "sales.test",
                    "/C=GB/ADMD= /PRMD=S/",
                    RuleDirection::Both,
                ),
                // The file maps example.com to X.400 already: left out.
                rule(
                    "cn=clash",
                    "EXAMPLE.com",
                    "/C=GB/ADMD= /PRMD=Other/",
                    RuleDirection::Both,
                ),
            ])
            .expect("merges");
        let tables = merged.gateway.expect("tables");
        assert_eq!(
            tables
                .to_or(&mb("Jane.Smith@sales.test"))
                .expect("maps")
                .to_string(),
            "/C=GB/ADMD= /PRMD=S/S=Smith/G=Jane/"
        );
        assert_eq!(
            tables
                .to_or(&mb("joe@example.com"))
                .expect("maps")
                .to_string(),
            "/C=GB/ADMD= /PRMD=A/S=joe/"
        );
        // Nor is the clashing rule's other direction used.
        let other: mswitch_core::address::ORAddress =
            "/C=GB/ADMD= /PRMD=Other/S=joe/".parse().expect("or");
        assert_ne!(
            tables
                .to_mailbox(&other)
                .expect("maps")
                .domain()
                .map(|d| d.to_string()),
            Some("example.com".into())
        );
        // The file's tables are untouched.
        let file = c.gateway.expect("tables");
        assert!(
            file.to_or(&mb("Jane.Smith@sales.test"))
                .expect("maps")
                .to_string()
                .contains("RFC-822"),
        );
    }

    #[test]
    fn bad_directory_gateway_rules_name_the_entry() {
        let c = with_directory("gateway_base = \"ou=g,dc=x\"\n").expect("valid");
        let (key, message) = invalid(c.with_gateway_rules(&[rule(
            "cn=bad,ou=g",
            "not a domain",
            "/C=GB/ADMD= /PRMD=S/",
            RuleDirection::Both,
        )]));
        assert_eq!(key, "directory.gateway_base");
        assert!(
            message.starts_with("gateway rule entry cn=bad,ou=g: "),
            "{message}"
        );
        let (_, message) = invalid(c.with_gateway_rules(&[rule(
            "cn=bad,ou=g",
            "s.test",
            "/C=GB/ADMD= /PRMD=S/S=Smith/",
            RuleDirection::Both,
        )]));
        assert!(
            message.starts_with("gateway rule entry cn=bad,ou=g: "),
            "{message}"
        );
        let (_, message) = invalid(c.with_gateway_rules(&[
            rule(
                "cn=one",
                "s.test",
                "/C=GB/ADMD= /PRMD=S/",
                RuleDirection::Rfc822ToX400,
            ),
            rule(
                "cn=two",
                "S.test",
                "/C=GB/ADMD= /PRMD=T/",
                RuleDirection::Both,
            ),
        ]));
        assert_eq!(
            message,
            "gateway rule entries cn=one and cn=two: both map the domain S.test to X.400"
        );
        // The other direction only: no clash.
        c.with_gateway_rules(&[
            rule(
                "cn=one",
                "s.test",
                "/C=GB/ADMD= /PRMD=S/",
                RuleDirection::Rfc822ToX400,
            ),
            rule(
                "cn=two",
                "s.test",
                "/C=GB/ADMD= /PRMD=T/",
                RuleDirection::X400ToRfc822,
            ),
        ])
        .expect("one rule each way");
    }
}
