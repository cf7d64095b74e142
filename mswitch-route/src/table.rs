//! Table routing for static deployments: local domains, per-address and per-domain routes, a
//! default route, aliases, alternate addresses and sub-addressing, with an optional DNS check
//! at RCPT time; and, beside the routing, the delivery settings of each peer (TLS, SASL
//! credentials, permanent connections) and a hosts table, for the delivering channels.
//!
//! [`TableRouter`] is built from a [`TableConfig`] (code or TOML) and implements
//! [`Router`](mswitch_core::route::Router). It never touches the network except through the
//! [`HostResolver`](mswitch_core::route::HostResolver) given to
//! [`TableRouter::with_resolver`].
//!
//! # How an address is routed
//! For a mailbox `local@domain`, the first of these that applies decides:
//!
//! 1. **Address tables**, looked up first with the full address, then (sub-addressing on and
//!    a separator present) with the base address: `joe+tag@example.com` finds the entries of
//!    `joe+tag@example.com`, else those of `joe@example.com`. One address has at most one
//!    entry, of one of three kinds:
//!    - an **alias**: [`RouteDecision::Expand`](mswitch_core::route::RouteDecision) with its
//!      members, as configured. The pipeline routes each member again, so aliases nest; it
//!      refuses a loop (550 5.4.6) and bounds depth and size
//!      ([`SubmissionLimits`](mswitch_core::submission::SubmissionLimits)). The sub-address
//!      tag of `team+x@` is not passed on to the members.
//!    - an **alternate** address of a canonical mailbox: `Expand([canonical])`, with the tag
//!      carried over (`joe+tag@` → `jsmith+tag@`, when that fits in a local part). Expand,
//!      not a direct `Deliver`, because the pipeline delivers to the address the router was
//!      given: only an expansion makes the delivered address the canonical one (the pipeline
//!      keeps the address the client gave as the ORCPT, so notifications still name it).
//!    - an **address route**: `Deliver` through its channel and next hop.
//! 2. **Domain rules** (local domains and domain routes alike), most specific first: the
//!    exact domain, then the wildcard with the longest suffix. `*.example.org` matches the
//!    subdomains of `example.org` only; `.example.org` matches `example.org` too (after an
//!    exact `example.org` entry, before any shorter wildcard). A local domain delivers
//!    through the local channel with next hop `Local`.
//! 3. **The default route**: its channel, to its smarthost or to the recipient's domain.
//! 4. Nothing: 550 5.1.2 "No route".
//!
//! A rule without a `host` or `peer` has the next hop `NextHop::Domain(domain)`, the
//! recipient's domain in lower-case A-labels, for MX lookup at delivery time (an IPv4 or IPv6
//! address literal becomes `NextHop::Host` with that address; a general literal, which names
//! no host, is refused 550 5.1.3). X.400 addresses are refused 550 5.1.3: X.400 routing is
//! not the table's.
//!
//! `Route::local` is `true` for local domains and, unless the entry says `local = false`,
//! for address and domain routes (a configured route makes this switch responsible for the
//! recipients, as a backup MX or gateway is); `false` for the default route. The relay
//! policy accepts `local` recipients, and aliases and alternates, from anyone.
//!
//! **Sub-addressing** routes `joe+tag@` as `joe@` but never rewrites the address it delivers:
//! `joe+tag@example.com` routed to the local channel reaches it as `joe+tag@example.com`, so
//! the Maildir channel can file it in folder `tag` (using
//! [`TableRouter::subaddress_separator`]). The separator is one of the RFC 5322 `atext`
//! specials ([`SUBADDRESS_SEPARATORS`]), `+` by default; an empty separator turns
//! sub-addressing off. A local part that starts with the separator has no base and is looked
//! up whole.
//!
//! **Case**: domains compare case-insensitively, IDNs by their A-labels (as
//! [`Domain`](mswitch_core::address::Domain) does). Local parts are compared
//! case-insensitively in the tables by default (Unicode lower case of the unquoted form, so
//! `"Joe"@` and `JOE@` find `joe@`); [`TableConfig::case_sensitive_local_parts()`] makes them
//! exact. Either way the delivered address keeps the case the client gave.
//!
//! # The DNS check at RCPT time
//! With [`TableRouter::with_resolver`], a recipient routed to `NextHop::Domain(d)` is checked
//! while the client is still connected: `mail_hosts(d)` failing permanently gives
//! `Reject` with the resolver's status (556 5.1.10 for a null MX, RFC 7505; 550 5.1.2 for a
//! domain that does not exist), failing temporarily gives `TryLater` with its status; so a
//! bad domain is refused in the dialogue instead of bounced later. Only routes to an MX are
//! checked (not local, host or peer next hops), and only for the services with a dialogue
//! (`Service::Relay`, `Service::Submission`): for internal submissions (notifications, list
//! output) and X.400, which have no one to answer 4xx to, the delivery-time lookup decides.
//! Alias members are checked as they are routed; a refused member is dropped by the pipeline.
//! Domains in the hosts table need no DNS and pass. Lookup time is the resolver's to bound.
//!
//! # Delivery settings
//! TLS policy, SMTP AUTH credentials and the permanent-connection flag are not routing
//! decisions, and [`Route`](mswitch_core::envelope::Route) has no room for them; the table
//! keeps them per (channel, next hop) as [`PeerSettings`], and the delivering channel asks
//! [`TableRouter::peer_settings`] with its own channel id and the job's next hop:
//! - settings on a route (or the default route) with a `host` belong to that (channel, host,
//!   port), whichever route leads there; two entries giving the same hop different settings
//!   are a [`ConfigError::ConflictingSettings`];
//! - settings on a route to the MX belong to that domain rule: `peer_settings(channel,
//!   Domain(d))` takes the most specific domain rule for `d` (then the default route) with
//!   that channel and an MX hop. An address route to the MX cannot carry settings (its
//!   domain's apply);
//! - named peers carry their settings in [`TableConfig::peers`] (a route to a peer cannot);
//!   [`TableRouter::named_peers`] also gives their host and port.
//!
//! The hosts table ([`HostsTable`]) gives fixed addresses to named hosts; [`HostsTable::over`]
//! wraps a DNS resolver so that channels honour it.
//!
//! ## How the daemon passes them on
//! The daemon builds one `Arc<TableRouter>` per configuration snapshot, hands a clone to the
//! submission pipeline as its `Arc<dyn Router>`, and for each SMTP/LMTP channel:
//! - fills `SmtpChannelConfig::peers` from [`TableRouter::named_peers`] (name → host, and
//!   port or the channel's default);
//! - gives the channel a settings lookup: a small trait in `mswitch-smtp` (for instance
//!   `fn peer(&self, hop: &NextHop) -> PeerOverrides`) that the daemon implements over
//!   `table.peer_settings(&channel_id, hop)`, mapping [`TlsPolicy`] to the client's
//!   `TlsPolicy` (`Required` with a verifying `rustls` configuration), [`SaslCredentials`] to
//!   `ClientAuth` (reading [`SaslSecret::File`] itself, at load time, so a missing file is a
//!   start-up error) and `permanent` to a long `connection_idle` for that peer;
//! - gives the channel `table.hosts().over(dns)` as its resolver, and the router
//!   `with_resolver(dns)` when the RCPT-time DNS check is wanted;
//! - adds its own host name to `local_domains` if it should be local (the table does not
//!   know it).
//!
//! # TOML
//! The daemon reads a [`TableConfig`] from a table of its file; every key is optional and
//! unknown keys are errors:
//! ```toml
//! local_domains = ["example.org", ".lists.example.org"]
//! local_channel = "local"
//! subaddress_separator = "+"          # "" turns sub-addressing off
//! case_sensitive_local_parts = false
//!
//! [[route]]
//! domain = "*.corp.example.org"       # or "corp.example", ".corp.example", or address = "..."
//! channel = "smtp"
//! host = "[gw.corp.example.org]:2525" # or peer = "hub"; neither: the domain's MX
//! tls = "required"                    # "none", "opportunistic", "required" (verified)
//! auth = { username = "switch", password_file = "/etc/mswitch/gw.secret" }
//! permanent = true
//! local = true                        # the default for routes
//!
//! [default_route]
//! channel = "smtp"
//! smarthost = "relay.example.net:587"
//!
//! [aliases]
//! "postmaster@example.org" = ["root@example.org"]
//! "team@example.org" = ["ann@example.org", "bob@example.net"]
//!
//! [alternates]
//! "jsmith@example.org" = ["joe@example.org", "j.smith@example.org"]
//!
//! [peers.hub]
//! host = "hub.example.net:25"
//! permanent = true
//!
//! [hosts]
//! "relay.example.net" = ["192.0.2.25", "2001:db8::25"]
//! ```
//!
//! # Validation
//! [`TableRouter::new`] refuses, naming the entry: bad domains, patterns, mailboxes, alias
//! members and hosts; a route with both or neither of `address`/`domain`, both `host` and
//! `peer`, or no channel; the same address or pattern given twice (including `*.d` beside
//! `.d`, and an address that is both an alias and an alternate); settings where they cannot
//! apply; credentials with both or neither of `password`/`password_file`, or with
//! `tls = "none"` and no `allow_plaintext`; an alternate equal to its canonical, or a
//! canonical that is itself an alternate; local domains without a local channel; a
//! separator that is not one `atext` special; a hosts name without addresses or given twice.
//! Alias loops are not refused here: the pipeline refuses them (5.4.6) when they are used.
//!
//! # Known gaps
//! - A local domain accepts every local part: unknown users are the local channel's to
//!   refuse (or a directory router's).
//! - The sub-address separator is one character (Postfix allows a set).
//! - Lookups are exact hash lookups; no regular expressions.

mod config;
mod hosts;
mod router;
mod settings;

#[cfg(test)]
mod tests;

pub use config::{
    AuthEntry, ConfigError, DEFAULT_SUBADDRESS_SEPARATOR, DefaultRouteEntry, PeerEntry, RouteEntry,
    SUBADDRESS_SEPARATORS, TableConfig,
};
pub use hosts::{HostsResolver, HostsTable};
pub use router::TableRouter;
pub use settings::{NamedPeer, PeerSettings, SaslCredentials, SaslSecret, TlsPolicy};
