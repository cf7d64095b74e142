//! Policy and authorization: who may send what to whom.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use async_trait::async_trait;

use crate::address::Address;
use crate::envelope::{Envelope, ReversePath, Route};
use crate::status::Status;
use crate::submission::{Service, SubmissionContext};

/// A policy answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Accept,
    /// Refuse permanently (5xx).
    Reject(Status),
    /// Refuse for now (4xx): a limit reached, a lookup that failed.
    TryLater(Status),
}

/// A recipient as the policy sees it, after routing.
#[derive(Debug, Clone, Copy)]
pub struct RecipientCheck<'a> {
    /// The address the client gave.
    pub address: &'a Address,
    /// The routes it resolved to (several if it is an alias).
    pub routes: &'a [Route],
    /// Whether it is an alias of ours (expanded by our routing).
    pub alias: bool,
}

impl RecipientCheck<'_> {
    /// Whether this switch is responsible for the address: an alias of ours, or every route
    /// marked local. Mail to such an address is accepted from anyone.
    pub fn is_local(&self) -> bool {
        self.alias || (!self.routes.is_empty() && self.routes.iter().all(|r| r.local))
    }
}

/// Authorization and limits, consulted by the submission pipeline at each step. Every method
/// has a permissive default so an implementation overrides only what it checks.
#[async_trait]
pub trait Policy: Send + Sync {
    /// May this client use this originator? (On a submission service, an authenticated user
    /// may send only as the addresses assigned to it.)
    async fn check_sender(&self, _ctx: &SubmissionContext, _sender: &ReversePath) -> Verdict {
        Verdict::Accept
    }

    /// May this client send to this recipient? (The relay decision.)
    async fn check_recipient(
        &self,
        _ctx: &SubmissionContext,
        _sender: &ReversePath,
        _recipient: &RecipientCheck<'_>,
    ) -> Verdict {
        Verdict::Accept
    }

    /// May this message, now complete, be queued? (Size, content rules.)
    async fn check_message(&self, _ctx: &SubmissionContext, _envelope: &Envelope) -> Verdict {
        Verdict::Accept
    }
}

/// An IP network in CIDR form (`127.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or
/// /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpNetError {
    /// The address part is not an IP address.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The prefix length is not a number within the address size.
    #[error("prefix length {0:?} is not valid for this address family")]
    Prefix(String),
}

impl IpNet {
    /// Builds a network; `None` if the prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| IpNetError::Address(a.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| IpNetError::Prefix(p.to_owned()))?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The relay policy every MTA needs: mail for local recipients is accepted from anyone; other
/// recipients only from trusted networks, authenticated clients or the switch itself. The
/// submission service requires authentication, and an authenticated user may send only as the
/// addresses [`SenderOwnership`] gives it; messages above the size limit are refused.
#[derive(Debug, Clone, Default)]
pub struct RelayPolicy {
    /// Clients in these networks may relay.
    pub trusted_networks: Vec<IpNet>,
    /// Largest message accepted, in octets.
    pub max_message_size: Option<u64>,
    /// Which sender addresses each user may use on the submission service.
    pub senders: SenderOwnership,
}

/// Which envelope senders an authenticated user may use on the submission service (RFC 6409
/// §6.1 leaves it to the MSA; users must not pass for one another).
///
/// A user listed in `users` may use exactly the addresses given there, where `*@domain` stands
/// for every address in the domain. A user not listed may use only their own address: the
/// user name itself when it is an address, else `user@<any local domain>` — the local part
/// equal to the user name. The null sender is allowed (RFC 6409 §4.1 lets a client send one),
/// and `unrestricted` turns the check off.
#[derive(Debug, Clone, Default)]
pub struct SenderOwnership {
    /// User → the addresses (or `*@domain`) it may send as, lower case.
    pub users: std::collections::HashMap<String, Vec<String>>,
    /// Domains in which an unlisted user `u` owns `u@domain`, lower case.
    pub local_domains: Vec<String>,
    /// No check at all.
    pub unrestricted: bool,
}

impl SenderOwnership {
    /// Whether `user` may send as `sender`.
    pub fn allows(&self, user: &str, sender: &ReversePath) -> bool {
        if self.unrestricted {
            return true;
        }
        let Some(mailbox) = sender.mailbox() else {
            return true;
        };
        let address = mailbox.to_string().to_lowercase();
        let (local, domain) = address.rsplit_once('@').unwrap_or((address.as_str(), ""));
        let user = user.to_lowercase();
        match self.users.get(&user) {
            Some(owned) => owned
                .iter()
                .any(|o| o == &address || o.strip_prefix("*@").is_some_and(|d| d == domain)),
            None if user.contains('@') => user == address,
            None => local == user && self.local_domains.iter().any(|d| d == domain),
        }
    }
}

impl RelayPolicy {
    fn may_relay(&self, ctx: &SubmissionContext) -> bool {
        ctx.service == Service::Internal
            || ctx.client.authenticated.is_some()
            || ctx
                .client
                .address
                .is_some_and(|ip| self.trusted_networks.iter().any(|n| n.contains(ip)))
    }
}

#[async_trait]
impl Policy for RelayPolicy {
    async fn check_sender(&self, ctx: &SubmissionContext, sender: &ReversePath) -> Verdict {
        if ctx.service != Service::Submission {
            return Verdict::Accept;
        }
        let Some(user) = &ctx.client.authenticated else {
            return Verdict::Reject(Status::new(530, (5, 7, 0), "Authentication required"));
        };
        if self.senders.allows(user, sender) {
            Verdict::Accept
        } else {
            Verdict::Reject(Status::new(
                553,
                (5, 7, 1),
                format!("Sender address rejected: not owned by user {user}"),
            ))
        }
    }

    async fn check_recipient(
        &self,
        ctx: &SubmissionContext,
        _sender: &ReversePath,
        recipient: &RecipientCheck<'_>,
    ) -> Verdict {
        if recipient.is_local() || self.may_relay(ctx) {
            Verdict::Accept
        } else {
            Verdict::Reject(Status::new(554, (5, 7, 1), "Relay access denied"))
        }
    }

    async fn check_message(&self, _ctx: &SubmissionContext, envelope: &Envelope) -> Verdict {
        match self.max_message_size {
            Some(max) if envelope.size > max => Verdict::Reject(Status::new(
                552,
                (5, 3, 4),
                format!("Message size exceeds fixed maximum message size ({max})"),
            )),
            _ => Verdict::Accept,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_networks() {
        let net: IpNet = "127.0.0.0/8".parse().expect("valid");
        assert!(net.contains("127.1.2.3".parse().expect("ip")));
        assert!(!net.contains("128.0.0.1".parse().expect("ip")));
        assert!(net.contains("::ffff:127.0.0.1".parse().expect("ip")));
        let any: IpNet = "0.0.0.0/0".parse().expect("valid");
        assert!(any.contains("192.0.2.1".parse().expect("ip")));
        let v6: IpNet = "2001:db8::/32".parse().expect("valid");
        assert!(v6.contains("2001:db8:1::1".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::1".parse().expect("ip")));
        let host: IpNet = "::1".parse().expect("valid");
        assert_eq!(host.to_string(), "::1/128");
        assert!(matches!(
            "10.0.0.0/33".parse::<IpNet>(),
            Err(IpNetError::Prefix(_))
        ));
        assert!(matches!(
            "nonsense/8".parse::<IpNet>(),
            Err(IpNetError::Address(_))
        ));
        assert!(matches!(
            "10.0.0.0/x".parse::<IpNet>(),
            Err(IpNetError::Prefix(_))
        ));
    }

    #[test]
    fn sender_ownership_on_submission() {
        use crate::address::{Address, Mailbox};
        let path = |s: &str| ReversePath::Address(Address::Mailbox(Mailbox::parse(s).expect("a")));
        let mut owners = SenderOwnership {
            local_domains: vec!["example.test".into()],
            ..SenderOwnership::default()
        };
        owners.users.insert(
            "boss".into(),
            vec!["ceo@example.test".into(), "*@board.example.test".into()],
        );
        // Unlisted users: their own local part in a local domain, or their own address.
        assert!(owners.allows("alice", &path("alice@example.test")));
        assert!(owners.allows("Alice", &path("ALICE@Example.test")));
        assert!(!owners.allows("alice", &path("bob@example.test")));
        assert!(!owners.allows("alice", &path("alice@elsewhere.test")));
        assert!(owners.allows("carol@x.test", &path("carol@x.test")));
        assert!(!owners.allows("carol@x.test", &path("carol@example.test")));
        // Listed users: exactly their list (not their own name any more).
        assert!(owners.allows("boss", &path("ceo@example.test")));
        assert!(owners.allows("boss", &path("anyone@board.example.test")));
        assert!(!owners.allows("boss", &path("boss@example.test")));
        assert!(!owners.allows("boss", &path("x@sub.board.example.test")));
        // The null sender; the check turned off.
        assert!(owners.allows("alice", &ReversePath::Null));
        owners.unrestricted = true;
        assert!(owners.allows("alice", &path("bob@example.test")));
    }

    #[test]
    fn submission_refuses_a_sender_the_user_does_not_own() {
        use crate::address::{Address, Mailbox};
        use crate::id::{ChannelId, Timestamp};
        use crate::submission::ClientInfo;
        let policy = RelayPolicy {
            senders: SenderOwnership {
                local_domains: vec!["example.test".into()],
                ..SenderOwnership::default()
            },
            ..RelayPolicy::default()
        };
        let ctx = |user: Option<&str>| SubmissionContext {
            channel: ChannelId::new("submission"),
            service: Service::Submission,
            client: ClientInfo {
                authenticated: user.map(str::to_owned),
                ..ClientInfo::default()
            },
            now: Timestamp(0),
        };
        let bob = ReversePath::Address(Address::Mailbox(
            Mailbox::parse("bob@example.test").expect("a"),
        ));
        let verdict = |v: Verdict| match v {
            Verdict::Accept => (250, String::new()),
            Verdict::Reject(s) | Verdict::TryLater(s) => (s.code, s.enhanced.to_string()),
        };
        let check = |user| {
            verdict(futures::executor::block_on(
                policy.check_sender(&ctx(user), &bob),
            ))
        };
        assert_eq!(check(Some("alice")), (553, "5.7.1".into()));
        assert_eq!(check(Some("bob")), (250, String::new()));
        assert_eq!(check(None), (530, "5.7.0".into()));
    }
}
