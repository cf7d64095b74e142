//! Routing, as the submission pipeline sees it: an address in, a decision out.

use async_trait::async_trait;

use crate::address::Address;
use crate::envelope::{ReversePath, Route};
use crate::status::Status;
use crate::submission::SubmissionContext;

/// What to do with one recipient address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Deliver through this route.
    Deliver(Route),
    /// Replace the address by these (an alias); each is routed in turn.
    Expand(Vec<Address>),
    /// Refuse the address permanently (unknown user, null MX, ...): a 5xx status.
    Reject(Status),
    /// Cannot decide now (directory or DNS unreachable): a 4xx status. Never a bounce.
    TryLater(Status),
}

/// What a router may look at besides the address.
#[derive(Debug, Clone, Copy)]
pub struct RouteContext<'a> {
    /// Who is submitting, over which service.
    pub submission: &'a SubmissionContext,
    /// The envelope originator.
    pub sender: &'a ReversePath,
}

/// Decides where a recipient goes. Implementations: routing tables, DNS MX, LDAP (LASER),
/// X.400 routing trees; `mswitch-route` provides them, [`crate::memory`] a small table for
/// tests.
#[async_trait]
pub trait Router: Send + Sync {
    /// Routes one address.
    async fn route(&self, address: &Address, ctx: RouteContext<'_>) -> RouteDecision;
}
