//! The configuration of X.400 routing: plain structs, built in code or read from TOML
//! (`[[x400_tree]]` with `[[x400_tree.route]]`), checked by
//! [`X400RoutingConfig::build`].

use mswitch_core::envelope::NextHop;
use mswitch_core::id::ChannelId;
use serde::Deserialize;

use super::pattern::{NodePattern, PatternError};
use super::tree::{
    Destination, Relay, RouteAction, RoutingNode, RoutingTree, TreeError, X400Routing,
};

/// The routing trees, in the order they are tried (`[[x400_tree]]` in TOML).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct X400RoutingConfig {
    /// The trees, in order.
    #[serde(rename = "x400_tree", alias = "trees")]
    pub trees: Vec<X400TreeConfig>,
}

/// One routing tree.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X400TreeConfig {
    /// The tree's name (unique, without regard to case), used in logs and errors.
    pub name: String,
    /// Its routes, in any order: the most specific match wins (`[[x400_tree.route]]`).
    #[serde(rename = "route", alias = "routes", default)]
    pub routes: Vec<X400RouteConfig>,
}

/// What a route does, when it is not a relay given by `mta` or `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum X400ActionConfig {
    /// Relay to `mta` or `host` (the default when either is given).
    Relay,
    /// Deliver here through `channel` (next hop `local`).
    Local,
    /// Refuse: `550 5.1.1`.
    Refuse,
}

/// One route of a tree (`[[x400_tree.route]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X400RouteConfig {
    /// The addresses: a std-or prefix with optional patterns (see
    /// [`NodePattern::parse`]), `"/"` for every address.
    #[serde(rename = "match")]
    pub pattern: String,
    /// `relay` (the default with `mta` or `host`), `local` or `refuse`.
    #[serde(default)]
    pub action: Option<X400ActionConfig>,
    /// The channel (required for `relay` and `local`).
    #[serde(default)]
    pub channel: Option<String>,
    /// The first-choice MTA, a named peer (`NextHop::Peer`).
    #[serde(default)]
    pub mta: Option<String>,
    /// The first-choice host, `name`, `name:port`, `[v6]` or `[v6]:port`
    /// (`NextHop::Host`); instead of `mta`.
    #[serde(default)]
    pub host: Option<String>,
    /// The alternates, of the same kind as the first choice (MTA names with `mta`, hosts
    /// with `host`): an ordered fall-back list, or with `balance` members of the balanced
    /// set.
    #[serde(default)]
    pub alternates: Vec<String>,
    /// Balance the load over the first choice and the alternates instead of trying them in
    /// order.
    #[serde(default)]
    pub balance: bool,
    /// With `balance`: one weight per member (the first choice, then the alternates); each
    /// at least 1. Default: all 1.
    #[serde(default)]
    pub weights: Vec<u32>,
    /// With `balance`: destinations tried in order once every member of the balanced set
    /// has failed.
    #[serde(default)]
    pub backups: Vec<String>,
    /// Whether the switch is responsible for these recipients (accepted from anyone).
    /// Default `true`, as for `[[route]]`; only for `relay`.
    #[serde(default)]
    pub local: Option<bool>,
}

/// Why a route is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteProblem {
    /// The `match` is not a pattern.
    #[error("bad match: {0}")]
    Pattern(#[from] PatternError),
    /// A relay or local route without a channel.
    #[error("no channel")]
    NoChannel,
    /// A relay with neither `mta` nor `host`, or both.
    #[error("a relay needs one of mta and host")]
    NoDestination,
    /// A route without `mta`, `host` or `action`.
    #[error("needs mta, host or action")]
    NoAction,
    /// A key that this kind of route does not take.
    #[error("{key} is not allowed with action {action}")]
    NotAllowed {
        /// The key.
        key: &'static str,
        /// The action.
        action: &'static str,
    },
    /// A key that only a balanced route takes.
    #[error("{key} needs balance = true")]
    NeedsBalance {
        /// The key.
        key: &'static str,
    },
    /// Not one weight per member of the balanced set, or a weight of 0.
    #[error(
        "weights: {expected} weights of at least 1 needed (mta and alternates), {given:?} given"
    )]
    Weights {
        /// How many members the set has.
        expected: usize,
        /// The weights given.
        given: Vec<u32>,
    },
    /// An empty MTA name or a host that cannot be parsed.
    #[error("bad destination {0:?}")]
    BadDestination(String),
    /// The same destination twice.
    #[error("destination {0:?} given twice")]
    DuplicateDestination(String),
}

/// Why a configuration is unusable: the error names the tree and the route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum X400ConfigError {
    /// A route is unusable.
    #[error("x400_tree {tree:?}, {route}: {problem}")]
    Route {
        /// The tree.
        tree: String,
        /// The route: `route N (match)` in a file, the DN in a directory.
        route: String,
        /// What is wrong.
        problem: RouteProblem,
    },
    /// The trees do not fit together (duplicate names or patterns).
    #[error("{0}")]
    Tree(#[from] TreeError),
}

impl X400RoutingConfig {
    /// Checks the configuration and builds the routing.
    pub fn build(&self) -> Result<X400Routing, X400ConfigError> {
        build_labelled(self.trees.iter().map(|tree| {
            let routes = tree
                .routes
                .iter()
                .enumerate()
                .map(|(i, route)| {
                    (
                        format!("route {} ({:?})", i + 1, route.pattern),
                        route.clone(),
                    )
                })
                .collect();
            (tree.name.clone(), routes)
        }))
    }
}

/// Builds the routing from trees of routes, each route with the label errors name it by.
pub(crate) fn build_labelled(
    trees: impl IntoIterator<Item = (String, Vec<(String, X400RouteConfig)>)>,
) -> Result<X400Routing, X400ConfigError> {
    let mut built = Vec::new();
    for (name, routes) in trees {
        let mut nodes = Vec::with_capacity(routes.len());
        for (label, route) in routes {
            let node = route.node().map_err(|problem| X400ConfigError::Route {
                tree: name.clone(),
                route: label,
                problem,
            })?;
            nodes.push(node);
        }
        built.push(RoutingTree::new(name, nodes)?);
    }
    Ok(X400Routing::new(built)?)
}

impl X400RouteConfig {
    /// A relay of `pattern` to `mta` through `channel`.
    pub fn relay(
        pattern: impl Into<String>,
        channel: impl Into<String>,
        mta: impl Into<String>,
    ) -> Self {
        X400RouteConfig {
            pattern: pattern.into(),
            channel: Some(channel.into()),
            mta: Some(mta.into()),
            ..X400RouteConfig::default()
        }
    }

    /// Checks the route and builds its node.
    pub fn node(&self) -> Result<RoutingNode, RouteProblem> {
        let pattern = NodePattern::parse(&self.pattern)?;
        let action = match self.action {
            Some(X400ActionConfig::Relay) => self.relay_action()?,
            None if self.mta.is_some() || self.host.is_some() => self.relay_action()?,
            None => return Err(RouteProblem::NoAction),
            Some(X400ActionConfig::Local) => {
                self.forbid_relay_keys("local")?;
                RouteAction::Local {
                    channel: ChannelId::new(self.channel()?),
                }
            }
            Some(X400ActionConfig::Refuse) => {
                self.forbid_relay_keys("refuse")?;
                if self.channel.is_some() {
                    return Err(RouteProblem::NotAllowed {
                        key: "channel",
                        action: "refuse",
                    });
                }
                RouteAction::Refuse
            }
        };
        Ok(RoutingNode { pattern, action })
    }

    fn channel(&self) -> Result<&str, RouteProblem> {
        self.channel
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(RouteProblem::NoChannel)
    }

    fn forbid_relay_keys(&self, action: &'static str) -> Result<(), RouteProblem> {
        let given = [
            ("mta", self.mta.is_some()),
            ("host", self.host.is_some()),
            ("alternates", !self.alternates.is_empty()),
            ("balance", self.balance),
            ("weights", !self.weights.is_empty()),
            ("backups", !self.backups.is_empty()),
            ("local", self.local.is_some()),
        ];
        match given.iter().find(|(_, present)| *present) {
            Some((key, _)) => Err(RouteProblem::NotAllowed { key, action }),
            None => Ok(()),
        }
    }

    fn relay_action(&self) -> Result<RouteAction, RouteProblem> {
        let channel = ChannelId::new(self.channel()?);
        let hop: fn(&str) -> Result<NextHop, RouteProblem> = match (&self.mta, &self.host) {
            (Some(_), None) => peer,
            (None, Some(_)) => host,
            _ => return Err(RouteProblem::NoDestination),
        };
        let first = self
            .mta
            .as_deref()
            .or(self.host.as_deref())
            .unwrap_or_default();
        let members: Vec<NextHop> = std::iter::once(first)
            .chain(self.alternates.iter().map(String::as_str))
            .map(hop)
            .collect::<Result<_, _>>()?;
        let backups: Vec<NextHop> = self
            .backups
            .iter()
            .map(|b| hop(b))
            .collect::<Result<_, _>>()?;
        let mut seen: Vec<&NextHop> = Vec::new();
        for h in members.iter().chain(&backups) {
            if seen.contains(&h) {
                return Err(RouteProblem::DuplicateDestination(h.to_string()));
            }
            seen.push(h);
        }
        let tiers = if self.balance {
            let weights = if self.weights.is_empty() {
                vec![1; members.len()]
            } else {
                self.weights.clone()
            };
            if weights.len() != members.len() || weights.contains(&0) {
                return Err(RouteProblem::Weights {
                    expected: members.len(),
                    given: self.weights.clone(),
                });
            }
            let set = members
                .into_iter()
                .zip(weights)
                .map(|(next_hop, weight)| Destination { next_hop, weight })
                .collect();
            std::iter::once(set)
                .chain(backups.into_iter().map(|h| vec![Destination::new(h)]))
                .collect()
        } else {
            if !self.weights.is_empty() {
                return Err(RouteProblem::NeedsBalance { key: "weights" });
            }
            if !self.backups.is_empty() {
                return Err(RouteProblem::NeedsBalance { key: "backups" });
            }
            members
                .into_iter()
                .map(|h| vec![Destination::new(h)])
                .collect()
        };
        Ok(RouteAction::Relay(Relay {
            channel,
            tiers,
            local: self.local.unwrap_or(true),
        }))
    }
}

/// An MTA name: `NextHop::Peer`.
fn peer(name: &str) -> Result<NextHop, RouteProblem> {
    let name = name.trim();
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RouteProblem::BadDestination(name.to_owned()));
    }
    Ok(NextHop::Peer(name.to_owned()))
}

/// A host: `name`, `name:port`, `[literal]`, `[literal]:port`.
fn host(text: &str) -> Result<NextHop, RouteProblem> {
    let bad = || RouteProblem::BadDestination(text.to_owned());
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(bad)?),
        };
        (literal, port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?),
        None => None,
    };
    let bracketed = text.starts_with('[');
    let valid = !host.is_empty()
        && host.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') || (bracketed && c == ':')
        });
    if !valid {
        return Err(bad());
    }
    Ok(NextHop::Host {
        host: host.to_owned(),
        port,
    })
}
