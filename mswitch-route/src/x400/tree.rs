//! The in-memory model: routing trees of nodes, each a pattern and an action; the ordered
//! list of trees; the lookup; the choice among alternate MTAs.

use std::cmp::Ordering;
use std::fmt;

use mswitch_core::address::ORAddress;
use mswitch_core::envelope::{NextHop, Route};
use mswitch_core::id::ChannelId;
use mswitch_core::route::RouteDecision;
use mswitch_core::status::Status;

use super::pattern::NodePattern;

/// One destination of a relay route: a next hop and its weight in a balanced set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Where the channel takes the message: `NextHop::Peer(mta)` or `NextHop::Host`.
    pub next_hop: NextHop,
    /// Its share of the recipients in a balanced set (at least 1; 1 in an ordered list).
    pub weight: u32,
}

impl Destination {
    /// A destination of weight 1.
    pub fn new(next_hop: NextHop) -> Self {
        Destination {
            next_hop,
            weight: 1,
        }
    }
}

/// A route to other MTAs: a channel and its destinations in tiers.
///
/// Tiers are tried in order; within a tier of several destinations the load is balanced by
/// weight, and the order within the tier depends on a key (see [`Relay::next_hops`]). An
/// ordered fall-back list is one destination per tier; a balanced set is one tier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Relay {
    /// The channel (a P1 channel, usually).
    pub channel: ChannelId,
    /// The destinations, tier by tier; no tier is empty, and there is at least one tier.
    pub tiers: Vec<Vec<Destination>>,
    /// Whether the switch is responsible for these recipients (`Route::local`): mail to them
    /// is accepted from anyone. Other recipients need a client that may relay.
    pub local: bool,
}

impl Relay {
    /// An ordered list: `first`, then each alternate in turn; the route is `local`.
    pub fn ordered(
        channel: impl Into<ChannelId>,
        first: NextHop,
        alternates: impl IntoIterator<Item = NextHop>,
    ) -> Self {
        let tiers = std::iter::once(first)
            .chain(alternates)
            .map(|hop| vec![Destination::new(hop)])
            .collect();
        Relay {
            channel: channel.into(),
            tiers,
            local: true,
        }
    }

    /// Every next hop, in the order to try them for `key`: tier by tier, each tier of
    /// several destinations in the order of weighted rendezvous hashing of `key` (the same
    /// key always gives the same order; over many keys, each destination comes first in
    /// proportion to its weight).
    pub fn next_hops(&self, key: u64) -> Vec<NextHop> {
        let mut hops = Vec::new();
        for tier in &self.tiers {
            if let [only] = tier.as_slice() {
                hops.push(only.next_hop.clone());
                continue;
            }
            let mut scored: Vec<(f64, usize)> = tier
                .iter()
                .enumerate()
                .map(|(i, d)| (rendezvous_score(key, &d.next_hop, d.weight), i))
                .collect();
            scored.sort_by(|a, b| {
                a.0.partial_cmp(&b.0)
                    .unwrap_or(Ordering::Equal)
                    .then(a.1.cmp(&b.1))
            });
            hops.extend(scored.into_iter().map(|(_, i)| tier[i].next_hop.clone()));
        }
        hops
    }
}

/// What a node does with the recipients it matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteAction {
    /// Relay to other MTAs.
    Relay(Relay),
    /// Deliver here, through this channel with `NextHop::Local` (a P3 or message-store
    /// channel, a gateway); the route is `local`.
    Local {
        /// The channel.
        channel: ChannelId,
    },
    /// Refuse the recipients: `550 5.1.1`. A node that says "these addresses do not exist"
    /// (an organization whose mailboxes are all known, say).
    Refuse,
}

impl RouteAction {
    /// The routes, first choice first, for balancing key `key` (empty for
    /// [`RouteAction::Refuse`]).
    pub fn routes(&self, key: u64) -> Vec<Route> {
        match self {
            RouteAction::Relay(relay) => relay
                .next_hops(key)
                .into_iter()
                .map(|next_hop| Route {
                    channel: relay.channel.clone(),
                    next_hop,
                    local: relay.local,
                })
                .collect(),
            RouteAction::Local { channel } => vec![Route {
                channel: channel.clone(),
                next_hop: NextHop::Local,
                local: true,
            }],
            RouteAction::Refuse => Vec::new(),
        }
    }
}

/// A node of a routing tree: the addresses it stands for and what to do with them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutingNode {
    /// The addresses.
    pub pattern: NodePattern,
    /// The action.
    pub action: RouteAction,
}

/// A routing tree (RFC 1801 §8): a name and its nodes. Within a tree, the most specific
/// node that matches an address decides ([`NodePattern::cmp_specificity`]: the deepest
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTree {
    name: String,
    /// Most specific first.
    nodes: Vec<RoutingNode>,
}

/// Why a set of trees or nodes cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// Two nodes of one tree have the same pattern.
    #[error("routing tree {tree:?}: two routes for {pattern}")]
    DuplicatePattern {
        /// The tree.
        tree: String,
        /// The pattern.
        pattern: String,
    },
    /// Two trees have the same name (names compare without regard to case).
    #[error("two routing trees named {tree:?}")]
    DuplicateTree {
        /// The name.
        tree: String,
    },
    /// A tree without a name.
    #[error("a routing tree needs a name")]
    EmptyName,
    /// A relay action without destinations, or with an empty tier, or a weight of 0.
    #[error("routing tree {tree:?}, {pattern}: a relay needs destinations of weight 1 or more")]
    BadRelay {
        /// The tree.
        tree: String,
        /// The pattern.
        pattern: String,
    },
}

impl RoutingTree {
    /// A tree; its nodes in any order. Two nodes with the same pattern (patterns that match
    /// the same values) are an error.
    pub fn new(name: impl Into<String>, mut nodes: Vec<RoutingNode>) -> Result<Self, TreeError> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(TreeError::EmptyName);
        }
        for node in &nodes {
            if let RouteAction::Relay(relay) = &node.action {
                let bad = relay.tiers.is_empty()
                    || relay
                        .tiers
                        .iter()
                        .any(|t| t.is_empty() || t.iter().any(|d| d.weight == 0));
                if bad {
                    return Err(TreeError::BadRelay {
                        tree: name,
                        pattern: node.pattern.to_string(),
                    });
                }
            }
        }
        nodes.sort_by(|a, b| a.pattern.cmp_specificity(&b.pattern));
        if let Some(pair) = nodes.windows(2).find(|w| w[0].pattern == w[1].pattern) {
            return Err(TreeError::DuplicatePattern {
                tree: name,
                pattern: pair[0].pattern.to_string(),
            });
        }
        Ok(RoutingTree { name, nodes })
    }

    /// The tree's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The nodes, most specific first.
    pub fn nodes(&self) -> &[RoutingNode] {
        &self.nodes
    }

    /// The node that decides for `address`: the most specific that matches.
    pub fn lookup(&self, address: &ORAddress) -> Option<&RoutingNode> {
        self.nodes.iter().find(|node| node.pattern.matches(address))
    }
}

/// X.400 routing: routing trees tried in order (RFC 1801 §9.1), say a tree of this MTA's
/// own, then a tree shared by the MTAs of a community, then a default tree. The first tree
/// with a node that matches decides; see the [module documentation](super).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct X400Routing {
    trees: Vec<RoutingTree>,
}

/// The answer of the routing trees for one address: which tree and node decided, and what
/// they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X400Route {
    /// The name of the tree that decided.
    pub tree: String,
    /// The pattern of the node that decided.
    pub pattern: NodePattern,
    /// What it says.
    pub action: RouteAction,
    /// The balancing key derived from the address ([`address_key`]), used by
    /// [`X400Route::route`] and [`X400Route::routes`].
    pub key: u64,
}

impl X400Route {
    /// The first choice, balanced by the address; `None` when the node refuses.
    pub fn route(&self) -> Option<Route> {
        self.routes().into_iter().next()
    }

    /// Every choice in the order to try them, balanced by the address.
    pub fn routes(&self) -> Vec<Route> {
        self.action.routes(self.key)
    }

    /// Every choice in the order to try them, balanced by `key` (a hash of the message
    /// identifier, say, from [`balance_key`]), for a channel that falls back to the next
    /// MTA when one is down.
    pub fn routes_keyed(&self, key: u64) -> Vec<Route> {
        self.action.routes(key)
    }

    /// The routing decision for `address`: `Deliver` with the first choice, or `Reject`
    /// `550 5.1.1` when the node refuses.
    pub fn decision(&self, address: &ORAddress) -> RouteDecision {
        match self.route() {
            Some(route) => RouteDecision::Deliver(route),
            None => RouteDecision::Reject(refused(address)),
        }
    }
}

/// `550 5.1.1`: a node refuses the address.
pub(crate) fn refused(address: &ORAddress) -> Status {
    Status::new(
        550,
        (5, 1, 1),
        format!("{address}: unknown X.400 recipient"),
    )
}

/// `550 5.1.2`: no tree has a node for the address (RFC 3463 X.1.2, bad destination system
/// address: no management domain or MTA is known for it).
pub(crate) fn unroutable(address: &ORAddress) -> Status {
    Status::new(550, (5, 1, 2), format!("No X.400 route to {address}"))
}

impl X400Routing {
    /// Routing by these trees, in this order. Tree names must be unique (without regard to
    /// case).
    pub fn new(trees: Vec<RoutingTree>) -> Result<Self, TreeError> {
        for (i, tree) in trees.iter().enumerate() {
            if trees[..i]
                .iter()
                .any(|t| t.name.eq_ignore_ascii_case(&tree.name))
            {
                return Err(TreeError::DuplicateTree {
                    tree: tree.name.clone(),
                });
            }
        }
        Ok(X400Routing { trees })
    }

    /// The trees, in the order they are tried.
    pub fn trees(&self) -> &[RoutingTree] {
        &self.trees
    }

    /// Routes an O/R address: the node of the first tree that has one that matches; `None`
    /// when no tree has (the address is unroutable, `550 5.1.2`). Pure: no I/O.
    pub fn route_or(&self, address: &ORAddress) -> Option<X400Route> {
        self.trees.iter().find_map(|tree| {
            tree.lookup(address).map(|node| X400Route {
                tree: tree.name.clone(),
                pattern: node.pattern.clone(),
                action: node.action.clone(),
                key: address_key(address),
            })
        })
    }

    /// Every route for `address` in the order to try them, balanced by `key`: what an
    /// outbound P1 channel falls back along when the first MTA is down. Empty when the
    /// address is refused or unroutable.
    pub fn alternates(&self, address: &ORAddress, key: u64) -> Vec<Route> {
        self.route_or(address)
            .map(|r| r.routes_keyed(key))
            .unwrap_or_default()
    }

    /// The routing decision for `address`: the first choice of [`X400Routing::route_or`]
    /// (balanced by the address), `550 5.1.1` from a refusing node, `550 5.1.2` when no tree
    /// routes it.
    pub fn decide(&self, address: &ORAddress) -> RouteDecision {
        match self.route_or(address) {
            Some(route) => {
                tracing::debug!(
                    address = %address,
                    tree = %route.tree,
                    node = %route.pattern,
                    "X.400 route"
                );
                route.decision(address)
            }
            None => RouteDecision::Reject(unroutable(address)),
        }
    }
}

impl fmt::Display for RoutingTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} routes)", self.name, self.nodes.len())
    }
}

/// A balancing key for `bytes` (a message identifier, say): FNV-1a, 64 bits, the same on
/// every platform and in every release, so the choice of MTA for a message is stable.
pub fn balance_key(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The balancing key of an address: [`balance_key`] of its std-or text in lower case, so
/// that addresses that match as X.400 names (case aside) balance alike.
pub fn address_key(address: &ORAddress) -> u64 {
    balance_key(address.to_string().to_ascii_lowercase().as_bytes())
}

/// SplitMix64's finalizer: spreads the bits of `x`.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Weighted rendezvous hashing: `-ln(u) / weight` with `u` uniform in (0, 1] drawn from the
/// key and the destination; the smallest score comes first, which happens with probability
/// `weight / total`.
fn rendezvous_score(key: u64, hop: &NextHop, weight: u32) -> f64 {
    let h = mix(key ^ mix(balance_key(hop.to_string().as_bytes())));
    // 53 random bits, mapped to (0, 1].
    let u = ((h >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    -u.ln() / f64::from(weight.max(1))
}
