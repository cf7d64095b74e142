//! The daemon's routing table: local domains, static routes, and a default route (a smarthost
//! or the domain's own address). DNS MX and directory routing come from `mswitch-route`.

use async_trait::async_trait;
use mswitch_core::address::{Address, Domain};
use mswitch_core::envelope::{NextHop, Route};
use mswitch_core::id::ChannelId;
use mswitch_core::route::{RouteContext, RouteDecision, Router};
use mswitch_core::status::Status;

use crate::config::{Config, HostPort};

/// Routes by table. Built from a [`Config`]; a new one replaces it at reload.
#[derive(Debug, Clone)]
pub struct TableRouter {
    hostname: Domain,
    local_domains: Vec<Domain>,
    local_channel: Option<ChannelId>,
    routes: Vec<(String, ChannelId, Option<HostPort>)>,
    default: Option<(ChannelId, Option<HostPort>)>,
}

impl TableRouter {
    /// The routing table of `config`.
    pub fn new(config: &Config) -> Self {
        TableRouter {
            hostname: Domain::parse(&config.hostname)
                .unwrap_or_else(|_| Domain::parse("localhost").expect("a valid domain")),
            local_domains: config.local_domains.clone(),
            local_channel: config.local_channel.as_deref().map(ChannelId::new),
            routes: config
                .routes
                .iter()
                .map(|r| (r.domain.clone(), ChannelId::new(&r.channel), r.host.clone()))
                .collect(),
            default: config
                .default_route
                .as_ref()
                .map(|(c, h)| (ChannelId::new(c), h.clone())),
        }
    }

    fn hop(domain: &str, host: &Option<HostPort>) -> NextHop {
        match host {
            Some(h) => NextHop::Host {
                host: h.host.clone(),
                port: h.port,
            },
            None => NextHop::Domain(domain.to_owned()),
        }
    }
}

#[async_trait]
impl Router for TableRouter {
    async fn route(&self, address: &Address, _ctx: RouteContext<'_>) -> RouteDecision {
        let Address::Mailbox(mailbox) = address else {
            return RouteDecision::Reject(Status::new(
                550,
                (5, 1, 3),
                "X.400 addresses are not routed by this switch",
            ));
        };
        let Some(domain) = mailbox.domain() else {
            // An address literal: only our own addresses would be local; relay it by the
            // default route if there is one.
            return match &self.default {
                Some((c, h)) => RouteDecision::Deliver(Route {
                    channel: c.clone(),
                    next_hop: Self::hop(&mailbox.domain_part().to_string(), h),
                    local: false,
                }),
                None => RouteDecision::Reject(Status::new(
                    550,
                    (5, 1, 2),
                    "address literals are not routed here",
                )),
            };
        };
        let name = domain.to_ascii().to_ascii_lowercase();
        if (self.local_domains.iter().any(|d| d == domain) || *domain == self.hostname)
            && let Some(c) = &self.local_channel
        {
            return RouteDecision::Deliver(Route {
                channel: c.clone(),
                next_hop: NextHop::Local,
                local: true,
            });
        }
        for (pattern, channel, host) in &self.routes {
            let matches = if pattern == "*" {
                true
            } else if let Some(suffix) = pattern.strip_prefix('.') {
                name.ends_with(pattern.as_str()) || name == suffix
            } else {
                name == *pattern
            };
            if matches {
                return RouteDecision::Deliver(Route {
                    channel: channel.clone(),
                    next_hop: Self::hop(&name, host),
                    // A configured route makes this switch responsible for the domain (it
                    // accepts it from anyone), as a backup MX or a gateway would.
                    local: pattern != "*",
                });
            }
        }
        match &self.default {
            Some((c, h)) => RouteDecision::Deliver(Route {
                channel: c.clone(),
                next_hop: Self::hop(&name, h),
                local: false,
            }),
            None => {
                RouteDecision::Reject(Status::new(550, (5, 1, 2), format!("no route to {name}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use futures::executor::block_on;
    use mswitch_core::address::Mailbox;
    use mswitch_core::envelope::ReversePath;
    use mswitch_core::id::Timestamp;
    use mswitch_core::submission::{ClientInfo, Service, SubmissionContext};

    use super::*;

    const CONFIG: &str = r#"
[server]
hostname = "mx.example.org"
[queue]
path = "q"
[routing]
local_domains = ["example.org"]
local_channel = "local"
smarthost = "relay.example.net:2525"
[[route]]
domain = "store.example"
channel = "lmtp"
host = "127.0.0.1:24"
[[route]]
domain = ".corp.example"
channel = "out"
[[channel]]
name = "local"
type = "maildir"
path = "m"
[[channel]]
name = "out"
type = "smtp"
[[channel]]
name = "lmtp"
type = "lmtp"
host = "127.0.0.1:24"
"#;

    fn route(router: &TableRouter, to: &str) -> RouteDecision {
        let ctx = SubmissionContext {
            channel: ChannelId::new("in"),
            service: Service::Relay,
            client: ClientInfo::default(),
            now: Timestamp(0),
        };
        let sender = ReversePath::Null;
        let address = Address::Mailbox(Mailbox::parse(to).expect("address"));
        block_on(router.route(
            &address,
            RouteContext {
                submission: &ctx,
                sender: &sender,
            },
        ))
    }

    fn deliver(d: RouteDecision) -> (String, NextHop, bool) {
        match d {
            RouteDecision::Deliver(r) => (r.channel.as_str().to_owned(), r.next_hop, r.local),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn local_static_and_default_routes() {
        let config = Config::parse(CONFIG, "t", Path::new("/d")).expect("config");
        let r = TableRouter::new(&config);
        assert_eq!(
            deliver(route(&r, "bob@Example.ORG")),
            ("local".into(), NextHop::Local, true)
        );
        assert_eq!(
            deliver(route(&r, "postmaster@mx.example.org")),
            ("local".into(), NextHop::Local, true)
        );
        assert_eq!(
            deliver(route(&r, "a@store.example")),
            (
                "lmtp".into(),
                NextHop::Host {
                    host: "127.0.0.1".into(),
                    port: Some(24)
                },
                true
            )
        );
        assert_eq!(
            deliver(route(&r, "a@eu.corp.example")),
            (
                "out".into(),
                NextHop::Domain("eu.corp.example".into()),
                true
            )
        );
        assert_eq!(
            deliver(route(&r, "a@corp.example")).0,
            "out",
            "the dotted form covers the domain itself"
        );
        assert!(!deliver(route(&r, "a@notcorp.example")).2);
        assert_eq!(
            deliver(route(&r, "someone@elsewhere.example")),
            (
                "out".into(),
                NextHop::Host {
                    host: "relay.example.net".into(),
                    port: Some(2525)
                },
                false
            )
        );
    }

    #[test]
    fn without_a_default_route_other_domains_are_refused() {
        let text = CONFIG
            .replace("smarthost = \"relay.example.net:2525\"\n", "")
            .replace("[[channel]]\nname = \"out\"\ntype = \"smtp\"\n", "")
            .replace("channel = \"out\"", "channel = \"lmtp\"");
        let config = Config::parse(&text, "t", Path::new("/d")).expect("config");
        let r = TableRouter::new(&config);
        match route(&r, "someone@elsewhere.example") {
            RouteDecision::Reject(s) => {
                assert_eq!((s.code, s.enhanced.to_string()), (550, "5.1.2".into()))
            }
            other => panic!("{other:?}"),
        }
    }
}
