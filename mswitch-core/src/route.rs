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

/// One host that mail for a domain may be handed to, with its addresses (RFC 5321 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailHost {
    /// The host's name: what its TLS certificate must name, and what goes in logs.
    pub name: String,
    /// The MX preference (0 for a host taken as the implicit MX).
    pub preference: u16,
    /// Its addresses, in the order to try.
    pub addresses: Vec<std::net::IpAddr>,
}

/// Why a domain or host could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Try again later (DNS timeout, SERVFAIL): the message waits, it never bounces for this.
    #[error("temporary resolution failure: {0}")]
    Temporary(Status),
    /// The domain does not take mail (null MX, RFC 7505: 5.1.10) or does not exist (5.1.2).
    #[error("permanent resolution failure: {0}")]
    Permanent(Status),
}

impl ResolveError {
    /// The status to report.
    pub fn status(&self) -> &Status {
        match self {
            ResolveError::Temporary(s) | ResolveError::Permanent(s) => s,
        }
    }
}

/// Finds where mail for a domain goes: the MX hosts in the order of RFC 5321 §5.1, or the host
/// itself. Implemented by `mswitch-route` over DNS; channels use it at delivery time, routers
/// at submission time (to refuse a domain that takes no mail while the client is connected).
#[async_trait]
pub trait HostResolver: Send + Sync {
    /// The hosts to try for mail to `domain`, best first (an empty list is never returned:
    /// that is an error).
    async fn mail_hosts(&self, domain: &str) -> Result<Vec<MailHost>, ResolveError>;

    /// The addresses of a named host (a smarthost, a static route), in the order to try.
    async fn host_addresses(&self, host: &str) -> Result<Vec<std::net::IpAddr>, ResolveError>;
}
