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
