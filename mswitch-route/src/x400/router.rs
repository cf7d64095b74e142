//! The [`Router`]s: [`X400Routing`] on its own, and [`X400Router`], a replaceable snapshot
//! of it with a fallback router for Internet addresses.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use mswitch_core::address::Address;
use mswitch_core::route::{RouteContext, RouteDecision, Router};
use mswitch_core::status::Status;

use super::tree::X400Routing;

/// X.400 addresses by the trees ([`X400Routing::decide`]); an Internet mailbox is refused
/// `550 5.1.3` (as the table refuses X.400 addresses): use [`X400Router`] to send mailboxes
/// elsewhere.
#[async_trait]
impl Router for X400Routing {
    async fn route(&self, address: &Address, _ctx: RouteContext<'_>) -> RouteDecision {
        match address {
            Address::X400(or) => self.decide(or),
            Address::Mailbox(mailbox) => RouteDecision::Reject(Status::new(
                550,
                (5, 1, 3),
                format!("<{mailbox}>: not an X.400 address"),
            )),
        }
    }
}

/// A [`Router`] for X.400 addresses over a snapshot of [`X400Routing`] that can be replaced
/// while routing goes on (after a configuration reload, or a new read of the directory), and
/// a fallback router for every Internet mailbox, the way `LaserRouter` hands the addresses
/// that are not its own to the table.
///
/// Composition: `X400Router::new(routing).fallback(Arc::new(laser_or_table))` routes X.400
/// recipients by the trees and everything else by the fallback. Without a fallback, a
/// mailbox gets `550 5.1.2` (no route).
pub struct X400Router {
    snapshot: RwLock<Arc<X400Routing>>,
    fallback: Option<Arc<dyn Router>>,
}

impl fmt::Debug for X400Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X400Router")
            .field("trees", &self.snapshot().trees().len())
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

impl X400Router {
    /// A router over `routing`, with no fallback.
    pub fn new(routing: X400Routing) -> Self {
        X400Router {
            snapshot: RwLock::new(Arc::new(routing)),
            fallback: None,
        }
    }

    /// Routes Internet mailboxes with `router`.
    pub fn fallback(mut self, router: Arc<dyn Router>) -> Self {
        self.fallback = Some(router);
        self
    }

    /// The routing in force (a route decided with it stays consistent even if it is
    /// replaced meanwhile).
    pub fn snapshot(&self) -> Arc<X400Routing> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the routing; returns whether it changed.
    pub fn replace(&self, routing: X400Routing) -> bool {
        let mut current = self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if **current == routing {
            return false;
        }
        *current = Arc::new(routing);
        true
    }
}

#[async_trait]
impl Router for X400Router {
    async fn route(&self, address: &Address, ctx: RouteContext<'_>) -> RouteDecision {
        match address {
            Address::X400(or) => self.snapshot().decide(or),
            Address::Mailbox(_) => match &self.fallback {
                Some(router) => router.route(address, ctx).await,
                None => RouteDecision::Reject(Status::new(
                    550,
                    (5, 1, 2),
                    format!("No route to {address}"),
                )),
            },
        }
    }
}
