//! X.400 routing in the manner of RFC 1801: ordered routing trees of O/R address patterns.
//!
//! # Model
//! A [`RoutingTree`] is a named set of nodes ([`RoutingNode`]); a node is a [`NodePattern`]
//! (constraints on attributes of the O/R address hierarchy, from the top down: `C`, `ADMD`,
//! `PRMD`, `O`, `OU1`…`OU4`, then the recipient's `S`, `G`, `I`, `GQ`, `CN`, `UA-ID`,
//! `T-ID`, `X121` and `DD.type`) and a [`RouteAction`]: relay to other MTAs through a
//! channel ([`Relay`]: `NextHop::Peer(mta)` or `NextHop::Host`, with alternates), deliver
//! here (`NextHop::Local` on a channel), or refuse.
//!
//! [`X400Routing`] tries its trees in order (RFC 1801 §9.1: a tree of this MTA's own, a tree
//! shared by a community of MTAs, a default tree). In a tree, the most specific node that
//! matches decides (§8.5, longest match): the one whose deepest constrained attribute is the
//! deepest; at equal depth, attribute by attribute from the top, a constrained one before an
//! unconstrained one, an exact value (or "absent") before a glob, a longer glob before a
//! shorter one, a glob before `*`; last, by the pattern's text, so the choice never depends
//! on the order routes were written or read. A tree with no matching node passes to the
//! next; when none matches the address is unroutable, `550 5.1.2`. A refusing node gives
//! `550 5.1.1`.
//!
//! An attribute a pattern does not name is not constrained: `/C=GB/ADMD= /O=Example/`
//! matches with or without a PRMD. Name it empty to require its absence (`PRMD=`), `*` to
//! require its presence. Because depth decides first, a deep pattern of wildcards
//! (`/C=GB/ADMD=*/PRMD=*/O=*/`) beats a shallower exact one (`/C=GB/ADMD= /PRMD=Isode/`)
//! for every address that has an `O`: keep wildcards for the places where they are meant.
//! Values are compared as X.400 compares names (case ignored, spaces normalized), and the
//! blank ADMD (`ADMD= `, "any ADMD" in X.400 usage) is a literal value that matches only
//! blank ADMDs; see [`ValuePattern`].
//!
//! # Alternates and balancing
//! A relay's destinations are in tiers ([`Relay::tiers`]): an ordered fall-back list is a
//! tier per destination, a balanced set one tier with weights (RFC 1801's MTA choice with
//! equal preference), which may be followed by ordered backups. The route decision carries
//! the first choice, balanced by a key derived from the address ([`address_key`]);
//! [`X400Routing::alternates`] and [`X400Route::routes_keyed`] give the whole ordered list
//! for a caller's key (a hash of the message identifier, [`balance_key`]), for the outbound
//! P1 channel to fall back along when an MTA is down. The order is weighted rendezvous
//! hashing: deterministic for a key, proportional to the weights over many keys, and
//! removing one MTA does not reshuffle the others.
//!
//! # Sources
//! - TOML: [`X400RoutingConfig`] (`[[x400_tree]]`, `[[x400_tree.route]]`), checked by
//!   [`X400RoutingConfig::build`] with errors that name the tree and the route;
//! - an LDAP directory: [`load`] reads trees stored in the RFC 1801 manner (a subtree per
//!   tree, entries named by O/R address attributes; the layout is in [`directory`]) into the
//!   same model, a snapshot that an [`X400Router`] swaps in with [`X400Router::replace`].
//!
//! # Composition
//! [`X400Routing`] is a `Router` on its own (a mailbox gets `550 5.1.3`);
//! [`X400Router`] holds a replaceable snapshot and sends Internet mailboxes to a fallback
//! router (LASER, the table), as `LaserRouter` does with the addresses that are not its own:
//! `X400Router::new(routing).fallback(Arc::new(table))`.
//!
//! ```
//! use mswitch_core::address::ORAddress;
//! use mswitch_core::envelope::NextHop;
//! use mswitch_route::x400::{X400RouteConfig, X400RoutingConfig, X400TreeConfig};
//!
//! let config = X400RoutingConfig {
//!     trees: vec![X400TreeConfig {
//!         name: "local".into(),
//!         routes: vec![X400RouteConfig::relay("/C=GB/ADMD= /PRMD=Isode/", "p1", "mta-b")],
//!     }],
//! };
//! let routing = config.build().expect("valid");
//! let to: ORAddress = "/C=GB/ADMD= /PRMD=Isode/O=Example/S=Smith/".parse().expect("valid");
//! let route = routing.route_or(&to).and_then(|r| r.route()).expect("routed");
//! assert_eq!(route.next_hop, NextHop::Peer("mta-b".into()));
//! ```

mod config;
pub mod directory;
mod pattern;
mod router;
#[cfg(test)]
mod tests;
mod tree;

pub use config::{
    RouteProblem, X400ActionConfig, X400ConfigError, X400RouteConfig, X400RoutingConfig,
    X400TreeConfig,
};
pub use directory::{
    EntryProblem, X400DirectorySettings, X400DirectoryTree, X400LoadError, build_trees,
    escape_dn_value, load, load_trees,
};
pub use pattern::{NodePattern, OrAttribute, PatternError, PatternKind, ValuePattern};
pub use router::X400Router;
pub use tree::{
    Destination, Relay, RouteAction, RoutingNode, RoutingTree, TreeError, X400Route, X400Routing,
    address_key, balance_key,
};
