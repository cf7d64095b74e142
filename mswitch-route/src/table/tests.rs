//! Tests of the table router: every rule through `TableRouter::route`, and the alias rules
//! through the real submission pipeline.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::executor::block_on;
use mswitch_core::address::{Address, Domain, MailboxError};
use mswitch_core::channel::{ChannelDescriptor, ChannelKind};
use mswitch_core::envelope::{ContentFamily, Envelope, NextHop, Recipient, ReversePath, Route};
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::memory::MemoryQueue;
use mswitch_core::policy::RelayPolicy;
use mswitch_core::route::{
    HostResolver, MailHost, ResolveError, RouteContext, RouteDecision, Router,
};
use mswitch_core::status::Status;
use mswitch_core::submission::{
    ChannelTable, ClientInfo, Service, SubmissionContext, SubmissionPipeline,
};

use super::*;

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn ctx(service: Service) -> SubmissionContext {
    SubmissionContext {
        channel: ChannelId::new("smtp-in"),
        service,
        client: ClientInfo::default(),
        now: Timestamp(0),
    }
}

fn build(config: &TableConfig) -> TableRouter {
    TableRouter::new(config).unwrap_or_else(|e| panic!("config should be valid: {e}"))
}

fn build_err(config: &TableConfig) -> ConfigError {
    match TableRouter::new(config) {
        Ok(t) => panic!("config should be refused: {t:?}"),
        Err(e) => e,
    }
}

fn route_as(router: &TableRouter, to: &str, service: Service) -> RouteDecision {
    let ctx = ctx(service);
    let sender = ReversePath::Null;
    block_on(router.route(
        &addr(to),
        RouteContext {
            submission: &ctx,
            sender: &sender,
        },
    ))
}

fn route(router: &TableRouter, to: &str) -> RouteDecision {
    route_as(router, to, Service::Relay)
}

/// The channel, next hop and `local` flag of a `Deliver`.
fn deliver(router: &TableRouter, to: &str) -> (String, NextHop, bool) {
    match route(router, to) {
        RouteDecision::Deliver(r) => (r.channel.as_str().to_owned(), r.next_hop, r.local),
        other => panic!("{to}: expected Deliver, got {other:?}"),
    }
}

const TEAM: [&str; 3] = [
    "ann@example.com",
    "bob@example.net",
    "/C=GB/ADMD= /PRMD=Switch/O=Org/S=Smith/",
];

/// The team alias's members as the router gives them.
fn team() -> Vec<String> {
    TEAM.iter().map(|m| addr(m).to_string()).collect()
}

/// The members of an `Expand`.
fn expand(router: &TableRouter, to: &str) -> Vec<String> {
    match route(router, to) {
        RouteDecision::Expand(members) => members.iter().map(ToString::to_string).collect(),
        other => panic!("{to}: expected Expand, got {other:?}"),
    }
}

/// The reply code and enhanced code of a `Reject`.
fn rejected(d: RouteDecision) -> (u16, String) {
    match d {
        RouteDecision::Reject(s) => (s.code, s.enhanced.to_string()),
        other => panic!("expected Reject, got {other:?}"),
    }
}

fn host(h: &str, port: Option<u16>) -> NextHop {
    NextHop::Host {
        host: h.into(),
        port,
    }
}

fn mx(d: &str) -> NextHop {
    NextHop::Domain(d.into())
}

/// A table with one of everything.
fn base() -> TableConfig {
    TableConfig::new()
        .local_domain("example.com")
        .local_channel("local")
        .route(RouteEntry::for_address("store@example.com", "lmtp").via_host("127.0.0.1:24"))
        .route(RouteEntry::for_domain("example.org", "smtp").via_host("MX.Example.org"))
        .route(RouteEntry::for_domain(".example.org", "wild"))
        .route(RouteEntry::for_domain(".corp.example", "smtp"))
        .route(RouteEntry::for_domain("*.eu.corp.example", "eu"))
        .route(RouteEntry::for_domain("*.example.net", "net").via_peer("hub"))
        .route(RouteEntry::for_domain("partner.example", "smtp").not_local())
        .default_route(DefaultRouteEntry::smarthost(
            "smtp",
            "relay.example.net:587",
        ))
        .alias("team@example.com", TEAM)
        .alias("team+special@example.com", ["carol@example.com"])
        .alternates(
            "jsmith@example.com",
            ["joe@example.com", "j.smith@example.com"],
        )
}

// ---- domains, wildcards, precedence, default route ----

#[test]
fn local_domain_delivers_through_the_local_channel() {
    let t = build(&base());
    assert_eq!(
        deliver(&t, "bob@example.com"),
        ("local".into(), NextHop::Local, true)
    );
    assert_eq!(
        deliver(&t, "Bob@EXAMPLE.com"),
        ("local".into(), NextHop::Local, true),
        "domains compare case-insensitively"
    );
    assert_eq!(
        deliver(&t, "bob@sub.example.com").0,
        "smtp",
        "an exact local domain does not cover its subdomains"
    );
}

#[test]
fn address_route_beats_its_domain() {
    let t = build(&base());
    assert_eq!(
        deliver(&t, "store@example.com"),
        ("lmtp".into(), host("127.0.0.1", Some(24)), true)
    );
    assert_eq!(
        deliver(&t, "Store@Example.COM"),
        ("lmtp".into(), host("127.0.0.1", Some(24)), true),
        "local parts compare case-insensitively by default"
    );
    assert_eq!(
        deliver(&t, "other@example.com"),
        ("local".into(), NextHop::Local, true)
    );
}

#[test]
fn exact_domain_beats_the_wildcard_that_covers_it() {
    let t = build(&base());
    assert_eq!(
        deliver(&t, "a@example.org"),
        ("smtp".into(), host("mx.example.org", None), true),
        "host names are normalized to lower case"
    );
    assert_eq!(
        deliver(&t, "a@sub.example.org"),
        ("wild".into(), mx("sub.example.org"), true)
    );
    assert_eq!(
        deliver(&t, "a@a.b.example.org"),
        ("wild".into(), mx("a.b.example.org"), true)
    );
}

#[test]
fn longest_wildcard_wins_and_dot_form_covers_the_domain_itself() {
    let t = build(&base());
    assert_eq!(
        deliver(&t, "a@x.eu.corp.example"),
        ("eu".into(), mx("x.eu.corp.example"), true)
    );
    assert_eq!(
        deliver(&t, "a@eu.corp.example"),
        ("smtp".into(), mx("eu.corp.example"), true),
        "`*.eu.corp.example` does not match eu.corp.example itself"
    );
    assert_eq!(
        deliver(&t, "a@corp.example"),
        ("smtp".into(), mx("corp.example"), true),
        "`.corp.example` matches corp.example itself"
    );
    assert_eq!(
        deliver(&t, "a@notcorp.example"),
        ("smtp".into(), host("relay.example.net", Some(587)), false),
        "a suffix that is not on a label boundary does not match"
    );
}

#[test]
fn star_wildcard_is_subdomains_only() {
    let t = build(&base());
    assert_eq!(
        deliver(&t, "a@a.b.example.net"),
        ("net".into(), NextHop::Peer("hub".into()), true)
    );
    assert_eq!(
        deliver(&t, "a@example.net"),
        ("smtp".into(), host("relay.example.net", Some(587)), false)
    );
}

#[test]
fn route_may_be_transport_only() {
    let t = build(&base());
    assert_eq!(
        deliver(&t, "a@partner.example"),
        ("smtp".into(), mx("partner.example"), false)
    );
}

#[test]
fn default_route_to_smarthost_or_mx() {
    let t = build(&base());
    assert_eq!(
        deliver(&t, "someone@elsewhere.example"),
        ("smtp".into(), host("relay.example.net", Some(587)), false)
    );
    let t = build(&TableConfig::new().default_route(DefaultRouteEntry::mx("out")));
    assert_eq!(
        deliver(&t, "someone@Elsewhere.Example"),
        ("out".into(), mx("elsewhere.example"), false),
        "the MX next hop is the recipient's domain in lower case"
    );
    assert_eq!(
        deliver(&t, "jörg@Bücher.example").1,
        mx("xn--bcher-kva.example"),
        "IDNs are looked up by A-label"
    );
}

#[test]
fn without_default_route_unknown_domains_are_refused() {
    let mut c = base();
    c.default_route = None;
    let t = build(&c);
    assert_eq!(
        rejected(route(&t, "someone@elsewhere.example")),
        (550, "5.1.2".into())
    );
    assert_eq!(rejected(route(&t, "a@[192.0.2.1]")), (550, "5.1.2".into()));
}

#[test]
fn address_literals_go_by_the_default_route() {
    let t = build(&TableConfig::new().default_route(DefaultRouteEntry::mx("out")));
    assert_eq!(
        deliver(&t, "a@[192.0.2.1]"),
        ("out".into(), host("192.0.2.1", None), false)
    );
    assert_eq!(
        deliver(&t, "a@[IPv6:2001:DB8::1]"),
        ("out".into(), host("2001:db8::1", None), false)
    );
    assert_eq!(
        rejected(route(&t, "a@[x-tag:content]")),
        (550, "5.1.3".into())
    );
    let t = build(&base());
    assert_eq!(
        deliver(&t, "a@[192.0.2.1]"),
        ("smtp".into(), host("relay.example.net", Some(587)), false)
    );
}

#[test]
fn x400_addresses_are_refused() {
    let t = build(&base());
    assert_eq!(
        rejected(route(&t, "/C=GB/ADMD= /PRMD=Switch/O=Org/S=Smith/")),
        (550, "5.1.3".into())
    );
}

#[test]
fn empty_table_refuses_everything() {
    let t = build(&TableConfig::default());
    assert_eq!(rejected(route(&t, "a@example.com")), (550, "5.1.2".into()));
}

// ---- aliases, alternates, sub-addressing, case ----

#[test]
fn alias_expands_to_every_member() {
    let t = build(&base());
    assert_eq!(expand(&t, "team@example.com"), team());
    assert_eq!(
        expand(&t, "TEAM@Example.Com"),
        expand(&t, "team@example.com")
    );
}

#[test]
fn case_sensitive_local_parts_when_configured() {
    let t = build(&base().case_sensitive_local_parts(true));
    assert!(t.case_sensitive_local_parts());
    assert_eq!(
        expand(&t, "team@example.com"),
        expand(&t, "team@EXAMPLE.COM")
    );
    assert_eq!(
        deliver(&t, "Team@example.com"),
        ("local".into(), NextHop::Local, true),
        "Team is not team: the domain rule applies"
    );
    assert_eq!(
        deliver(&t, "Store@example.com"),
        ("local".into(), NextHop::Local, true)
    );
}

#[test]
fn quoted_local_part_is_looked_up_unquoted() {
    let t = build(&base());
    assert_eq!(expand(&t, "\"team\"@example.com").len(), 3);
}

#[test]
fn alternate_expands_to_the_canonical_mailbox() {
    let t = build(&base());
    assert_eq!(expand(&t, "joe@example.com"), vec!["jsmith@example.com"]);
    assert_eq!(
        expand(&t, "J.Smith@example.com"),
        vec!["jsmith@example.com"]
    );
    assert_eq!(
        expand(&t, "Joe+news@example.com"),
        vec!["jsmith+news@example.com"],
        "the tag is carried over to the canonical mailbox"
    );
    assert_eq!(
        expand(&t, "joe+@example.com"),
        vec!["jsmith@example.com"],
        "an empty tag is dropped"
    );
    assert_eq!(
        deliver(&t, "jsmith@example.com"),
        ("local".into(), NextHop::Local, true)
    );
}

#[test]
fn sub_address_routes_by_the_base_address() {
    let t = build(&base());
    assert_eq!(t.subaddress_separator(), Some('+'));
    assert_eq!(
        deliver(&t, "store+inbox@example.com"),
        ("lmtp".into(), host("127.0.0.1", Some(24)), true)
    );
    assert_eq!(
        expand(&t, "team+x@example.com"),
        team(),
        "alias members do not get the tag"
    );
    assert_eq!(
        expand(&t, "team+special@example.com"),
        vec!["carol@example.com"],
        "an entry for the full address wins over the base"
    );
    assert_eq!(
        deliver(&t, "+store@example.com"),
        ("local".into(), NextHop::Local, true),
        "no base before the separator: looked up whole"
    );
}

#[test]
fn sub_address_separator_is_configurable() {
    let t = build(&base().subaddress_separator("-"));
    assert_eq!(t.subaddress_separator(), Some('-'));
    assert_eq!(
        deliver(&t, "store-inbox@example.com").0,
        "lmtp",
        "split at '-'"
    );
    assert_eq!(
        deliver(&t, "store+inbox@example.com").0,
        "local",
        "'+' is an ordinary character now"
    );
    assert_eq!(
        expand(&t, "joe-news@example.com"),
        vec!["jsmith-news@example.com"]
    );
}

#[test]
fn sub_addressing_can_be_turned_off() {
    let t = build(&base().subaddress_separator(""));
    assert_eq!(t.subaddress_separator(), None);
    assert_eq!(deliver(&t, "store+inbox@example.com").0, "local");
    assert_eq!(
        deliver(&t, "joe+news@example.com"),
        ("local".into(), NextHop::Local, true)
    );
    assert_eq!(
        expand(&t, "team+special@example.com"),
        vec!["carol@example.com"]
    );
}

// ---- through the submission pipeline ----

fn pipeline(router: TableRouter) -> (SubmissionPipeline, Arc<MemoryQueue>) {
    let mut channels = ChannelTable::new();
    for name in ["local", "lmtp", "smtp", "wild", "eu", "net"] {
        channels.insert(ChannelDescriptor {
            id: ChannelId::new(name),
            kind: ChannelKind::Outbound,
            accepts: vec![ContentFamily::Internet],
        });
    }
    let store = Arc::new(MemoryQueue::new());
    let p = SubmissionPipeline::new(
        Arc::new(router),
        Arc::new(RelayPolicy::default()),
        store.clone(),
        channels,
    );
    (p, store)
}

/// What one recipient became in the envelope: address, route, ORCPT.
type Added = Vec<(String, Route, Option<String>)>;

/// Adds one recipient and commits; the recipients as queued, or the refusal's status.
fn submit(p: &SubmissionPipeline, store: &MemoryQueue, to: &str) -> Result<Added, Status> {
    let env = Envelope::new(
        ReversePath::Address(addr("sender@example.net")),
        Timestamp(0),
    );
    let mut tx = block_on(p.begin(ctx(Service::Relay), env, None)).expect("sender accepted");
    if let Err(refusal) = block_on(tx.add_recipient(Recipient::new(addr(to)))) {
        assert!(
            tx.envelope().recipients.is_empty(),
            "a refusal adds nothing"
        );
        return Err(refusal.status);
    }
    let before = store.len();
    let submitted = block_on(tx.commit(b"Subject: t\r\n\r\nbody\r\n")).expect("queued");
    assert_eq!(store.len(), before + 1);
    Ok(submitted
        .envelope
        .recipients
        .iter()
        .map(|r| {
            (
                r.address.to_string(),
                r.route.clone().expect("routed"),
                r.original.as_ref().map(|o| o.address.clone()),
            )
        })
        .collect())
}

fn local_route() -> Route {
    Route {
        channel: ChannelId::new("local"),
        next_hop: NextHop::Local,
        local: true,
    }
}

#[test]
fn nested_aliases_expand_through_the_pipeline() {
    let config = base()
        .alias("all@example.com", ["staff@example.com", "joe@example.com"])
        .alias("staff@example.com", ["d@example.com", "e@example.com"]);
    let (p, store) = pipeline(build(&config));
    let got = submit(&p, &store, "All@example.com").expect("accepted");
    let orcpt = Some("All@example.com".to_owned());
    assert_eq!(
        got,
        vec![
            ("d@example.com".into(), local_route(), orcpt.clone()),
            ("e@example.com".into(), local_route(), orcpt.clone()),
            ("jsmith@example.com".into(), local_route(), orcpt),
        ]
    );
}

#[test]
fn alias_loop_is_refused_with_5_4_6_through_the_pipeline() {
    let config = base()
        .alias("a@example.com", ["b@example.com"])
        .alias("b@example.com", ["c@example.com", "A@example.com"])
        .alias("self@example.com", ["self+x@example.com"]);
    let (p, store) = pipeline(build(&config));
    let status = submit(&p, &store, "a@example.com").expect_err("loop");
    assert_eq!(
        (status.code, status.enhanced.to_string()),
        (550, "5.4.6".into())
    );
    assert_eq!(store.len(), 0);
    // `self+x` routes by its base `self`, whose members are `self+x` again: the pipeline
    // sees the same address on its own path.
    let status = submit(&p, &store, "self@example.com").expect_err("loop via sub-address");
    assert_eq!(
        (status.code, status.enhanced.to_string()),
        (550, "5.4.6".into())
    );
}

#[test]
fn alternate_is_delivered_as_the_canonical_mailbox() {
    let (p, store) = pipeline(build(&base()));
    let got = submit(&p, &store, "Joe+news@example.com").expect("accepted");
    assert_eq!(
        got,
        vec![(
            "jsmith+news@example.com".into(),
            local_route(),
            Some("Joe+news@example.com".into())
        )]
    );
}

#[test]
fn sub_address_is_kept_in_the_delivered_address() {
    let (p, store) = pipeline(build(&base()));
    assert_eq!(
        submit(&p, &store, "Ann+Lists@example.com").expect("accepted"),
        vec![("Ann+Lists@example.com".into(), local_route(), None)]
    );
    assert_eq!(
        submit(&p, &store, "store+inbox@example.com").expect("accepted"),
        vec![(
            "store+inbox@example.com".into(),
            Route {
                channel: ChannelId::new("lmtp"),
                next_hop: host("127.0.0.1", Some(24)),
                local: true,
            },
            None
        )]
    );
}

// ---- the DNS check at RCPT time ----

/// A resolver with scripted answers that records every question.
#[derive(Default)]
struct FakeDns {
    mail_hosts: HashMap<String, Result<Vec<MailHost>, ResolveError>>,
    host_addresses: HashMap<String, Vec<IpAddr>>,
    calls: Mutex<Vec<String>>,
}

impl FakeDns {
    fn answer(mut self, domain: &str, answer: Result<Vec<MailHost>, ResolveError>) -> Self {
        self.mail_hosts.insert(domain.into(), answer);
        self
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls lock").clone()
    }
}

#[async_trait]
impl HostResolver for FakeDns {
    async fn mail_hosts(&self, domain: &str) -> Result<Vec<MailHost>, ResolveError> {
        self.calls
            .lock()
            .expect("calls lock")
            .push(format!("mx {domain}"));
        self.mail_hosts.get(domain).cloned().unwrap_or_else(|| {
            Err(ResolveError::Temporary(Status::new(
                451,
                (4, 4, 3),
                "not scripted",
            )))
        })
    }

    async fn host_addresses(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        self.calls
            .lock()
            .expect("calls lock")
            .push(format!("a {host}"));
        self.host_addresses
            .get(host)
            .cloned()
            .ok_or_else(|| ResolveError::Permanent(Status::new(550, (5, 1, 2), "no such host")))
    }
}

fn null_mx() -> Status {
    Status::new(556, (5, 1, 10), "Recipient address has null MX")
}

fn no_domain() -> Status {
    Status::new(550, (5, 1, 2), "Domain does not exist")
}

fn servfail() -> Status {
    Status::new(451, (4, 4, 3), "DNS lookup failed, try later")
}

fn fake_dns() -> Arc<FakeDns> {
    Arc::new(
        FakeDns::default()
            .answer("nullmx.example", Err(ResolveError::Permanent(null_mx())))
            .answer(
                "nxdomain.example",
                Err(ResolveError::Permanent(no_domain())),
            )
            .answer("servfail.example", Err(ResolveError::Temporary(servfail())))
            .answer(
                "ok.example",
                Ok(vec![MailHost {
                    name: "mx.ok.example".into(),
                    preference: 10,
                    addresses: vec![ip("192.0.2.10")],
                }]),
            ),
    )
}

fn dns_table() -> TableConfig {
    base()
        .default_route(DefaultRouteEntry::mx("smtp"))
        .host("static.example", vec![ip("192.0.2.99")])
}

#[test]
fn dns_check_refuses_or_defers_bad_domains() {
    let dns = fake_dns();
    let t = build(&dns_table()).with_resolver(dns.clone());
    assert_eq!(
        route(&t, "a@nullmx.example"),
        RouteDecision::Reject(null_mx())
    );
    assert_eq!(
        route(&t, "a@nxdomain.example"),
        RouteDecision::Reject(no_domain())
    );
    assert_eq!(
        route(&t, "a@servfail.example"),
        RouteDecision::TryLater(servfail())
    );
    assert_eq!(
        route(&t, "a@OK.example"),
        RouteDecision::Deliver(Route {
            channel: ChannelId::new("smtp"),
            next_hop: mx("ok.example"),
            local: false,
        })
    );
    assert_eq!(
        route_as(&t, "a@nullmx.example", Service::Submission),
        RouteDecision::Reject(null_mx())
    );
    assert_eq!(
        dns.calls(),
        vec![
            "mx nullmx.example",
            "mx nxdomain.example",
            "mx servfail.example",
            "mx ok.example",
            "mx nullmx.example",
        ]
    );
}

#[test]
fn dns_check_applies_to_mx_routes_only() {
    let dns = fake_dns();
    let t = build(&dns_table()).with_resolver(dns.clone());
    assert_eq!(deliver(&t, "a@example.com").1, NextHop::Local);
    assert_eq!(deliver(&t, "a@example.org").1, host("mx.example.org", None));
    assert_eq!(
        deliver(&t, "a@a.b.example.net").1,
        NextHop::Peer("hub".into())
    );
    assert_eq!(expand(&t, "team@example.com").len(), 3);
    assert!(dns.calls().is_empty(), "asked {:?}", dns.calls());
    // A domain route to the MX is checked like the default route.
    assert_eq!(
        route(&t, "a@sub.example.org"),
        RouteDecision::TryLater(Status::new(451, (4, 4, 3), "not scripted"))
    );
    assert_eq!(dns.calls(), vec!["mx sub.example.org"]);
}

#[test]
fn dns_check_skips_services_without_a_dialogue() {
    let dns = fake_dns();
    let t = build(&dns_table()).with_resolver(dns.clone());
    for service in [
        Service::Internal,
        Service::X400Transfer,
        Service::X400Submission,
    ] {
        assert_eq!(
            route_as(&t, "a@nullmx.example", service),
            RouteDecision::Deliver(Route {
                channel: ChannelId::new("smtp"),
                next_hop: mx("nullmx.example"),
                local: false,
            }),
            "{service:?}"
        );
    }
    assert!(dns.calls().is_empty());
}

#[test]
fn dns_check_can_be_limited_to_mx_channels() {
    let dns = fake_dns();
    let t = build(&dns_table())
        .with_resolver(dns.clone())
        .dns_check_channels([ChannelId::new("other")]);
    // The route's channel ("smtp") is not one that resolves MX: no lookup, delivered as is.
    assert_eq!(deliver(&t, "a@nullmx.example").1, mx("nullmx.example"));
    assert!(dns.calls().is_empty());
    let t = build(&dns_table())
        .with_resolver(dns.clone())
        .dns_check_channels([ChannelId::new("smtp")]);
    assert_eq!(
        route(&t, "a@nullmx.example"),
        RouteDecision::Reject(null_mx())
    );
}

#[test]
fn dns_check_is_off_without_a_resolver() {
    let t = build(&dns_table());
    assert_eq!(deliver(&t, "a@nullmx.example").1, mx("nullmx.example"));
}

#[test]
fn dns_check_honours_the_hosts_table() {
    let dns = fake_dns();
    let t = build(&dns_table()).with_resolver(dns.clone());
    assert_eq!(deliver(&t, "a@Static.Example").1, mx("static.example"));
    assert!(dns.calls().is_empty(), "asked {:?}", dns.calls());
}

#[test]
fn dns_refusal_reaches_the_client_through_the_pipeline() {
    let dns = fake_dns();
    let (p, store) = pipeline(build(&dns_table()).with_resolver(dns));
    assert_eq!(submit(&p, &store, "a@nullmx.example"), Err(null_mx()));
    assert_eq!(submit(&p, &store, "a@servfail.example"), Err(servfail()));
    // An alias member in a bad domain is dropped; the others are delivered.
    let config = dns_table().alias("mixed@example.com", ["a@nullmx.example", "b@example.com"]);
    let (p, store) = pipeline(build(&config).with_resolver(fake_dns()));
    let got = submit(&p, &store, "mixed@example.com").expect("accepted");
    assert_eq!(
        got.iter().map(|(a, _, _)| a.as_str()).collect::<Vec<_>>(),
        vec!["b@example.com"]
    );
}

// ---- delivery settings ----

fn secret_auth() -> AuthEntry {
    AuthEntry::password("switch", "s3cret")
}

fn secret_credentials() -> SaslCredentials {
    SaslCredentials {
        username: "switch".into(),
        secret: SaslSecret::Password("s3cret".into()),
        authzid: None,
        allow_plaintext: false,
    }
}

fn settings_table() -> TableConfig {
    TableConfig::new()
        .route(
            RouteEntry::for_domain("example.org", "smtp")
                .via_host("mx.example.org")
                .tls(TlsPolicy::Required)
                .auth(secret_auth()),
        )
        .route(RouteEntry::for_domain("second.example", "smtp").via_host("MX.example.org"))
        .route(
            RouteEntry::for_domain(".corp.example", "smtp")
                .tls(TlsPolicy::Required)
                .permanent(),
        )
        .route(RouteEntry::for_domain("*.eu.corp.example", "eu"))
        .route(RouteEntry::for_domain("x400.example", "p1").via_peer("hub"))
        .route(RouteEntry::for_domain("bare.example", "p1").via_peer("bare"))
        .default_route(DefaultRouteEntry::mx("smtp").tls(TlsPolicy::Opportunistic))
        .peer(
            "hub",
            PeerEntry::at("Hub.example.net:102")
                .permanent()
                .tls(TlsPolicy::None),
        )
        .peer("bare", PeerEntry::at("[2001:db8::7]"))
}

#[test]
fn settings_for_a_host_next_hop() {
    let t = build(&settings_table());
    let smtp = ChannelId::new("smtp");
    let expected = PeerSettings {
        tls: Some(TlsPolicy::Required),
        auth: Some(secret_credentials()),
        permanent: false,
    };
    assert_eq!(
        t.peer_settings(&smtp, &host("mx.example.org", None)),
        Some(&expected)
    );
    assert_eq!(
        t.peer_settings(&smtp, &host("MX.EXAMPLE.ORG", None)),
        Some(&expected),
        "host names compare case-insensitively"
    );
    assert_eq!(
        t.peer_settings(&smtp, &host("mx.example.org", Some(25))),
        None
    );
    assert_eq!(
        t.peer_settings(&ChannelId::new("other"), &host("mx.example.org", None)),
        None
    );
    assert_eq!(
        t.host_settings().collect::<Vec<_>>(),
        vec![(&smtp, &host("mx.example.org", None), &expected)]
    );
}

#[test]
fn settings_for_an_mx_next_hop_follow_the_domain_rules() {
    let t = build(&settings_table());
    let smtp = ChannelId::new("smtp");
    let corp = PeerSettings {
        tls: Some(TlsPolicy::Required),
        auth: None,
        permanent: true,
    };
    let default = PeerSettings {
        tls: Some(TlsPolicy::Opportunistic),
        auth: None,
        permanent: false,
    };
    assert_eq!(t.peer_settings(&smtp, &mx("corp.example")), Some(&corp));
    assert_eq!(t.peer_settings(&smtp, &mx("A.Corp.Example")), Some(&corp));
    assert_eq!(
        t.peer_settings(&ChannelId::new("eu"), &mx("x.eu.corp.example")),
        None,
        "the eu route has no settings"
    );
    assert_eq!(
        t.peer_settings(&smtp, &mx("x.eu.corp.example")),
        Some(&corp),
        "through smtp, the most specific smtp rule is .corp.example"
    );
    assert_eq!(
        t.peer_settings(&smtp, &mx("elsewhere.example")),
        Some(&default)
    );
    assert_eq!(
        t.peer_settings(&ChannelId::new("p1"), &mx("elsewhere.example")),
        None
    );
    assert_eq!(t.peer_settings(&smtp, &NextHop::Local), None);
}

#[test]
fn settings_and_address_of_named_peers() {
    let t = build(&settings_table());
    let hub = NamedPeer {
        host: "hub.example.net".into(),
        port: Some(102),
        settings: PeerSettings {
            tls: Some(TlsPolicy::None),
            auth: None,
            permanent: true,
        },
    };
    assert_eq!(t.named_peer("hub"), Some(&hub));
    assert_eq!(
        t.peer_settings(&ChannelId::new("p1"), &NextHop::Peer("hub".into())),
        Some(&hub.settings)
    );
    assert_eq!(
        t.peer_settings(&ChannelId::new("any"), &NextHop::Peer("hub".into())),
        Some(&hub.settings),
        "a named peer's settings hold whatever the channel"
    );
    assert_eq!(
        t.peer_settings(&ChannelId::new("p1"), &NextHop::Peer("bare".into())),
        None
    );
    assert_eq!(
        t.named_peers()
            .map(|(n, p)| (n, p.host.as_str(), p.port))
            .collect::<Vec<_>>(),
        vec![
            ("bare", "2001:db8::7", None),
            ("hub", "hub.example.net", Some(102))
        ]
    );
}

#[test]
fn same_settings_twice_are_fine_different_ones_conflict() {
    let same = settings_table().route(
        RouteEntry::for_domain("third.example", "smtp")
            .via_host("mx.example.org")
            .tls(TlsPolicy::Required)
            .auth(secret_auth()),
    );
    assert!(TableRouter::new(&same).is_ok());
    let other_channel = settings_table().route(
        RouteEntry::for_domain("third.example", "lmtp")
            .via_host("mx.example.org")
            .tls(TlsPolicy::None),
    );
    assert!(TableRouter::new(&other_channel).is_ok());
    let conflict = settings_table().route(
        RouteEntry::for_domain("third.example", "smtp")
            .via_host("mx.example.org")
            .tls(TlsPolicy::Opportunistic),
    );
    assert_eq!(
        build_err(&conflict),
        ConfigError::ConflictingSettings {
            channel: "smtp".into(),
            hop: "[mx.example.org]".into(),
            first: "route[0] (domain \"example.org\")".into(),
            second: "route[6] (domain \"third.example\")".into(),
        }
    );
}

#[test]
fn password_file_and_redacted_debug() {
    let t = build(
        &TableConfig::new().default_route(
            DefaultRouteEntry::smarthost("smtp", "relay.example.net")
                .auth(AuthEntry::password_file("u", "/etc/mswitch/relay.secret")),
        ),
    );
    let s = t
        .peer_settings(&ChannelId::new("smtp"), &host("relay.example.net", None))
        .expect("settings");
    let auth = s.auth.as_ref().expect("auth");
    assert_eq!(
        auth.secret,
        SaslSecret::File(PathBuf::from("/etc/mswitch/relay.secret"))
    );
    let shown = format!("{:?} {:?}", secret_credentials(), secret_auth());
    assert!(!shown.contains("s3cret"), "{shown}");
    assert_eq!(shown.matches("<redacted>").count(), 2, "{shown}");
}

// ---- the hosts table ----

#[test]
fn hosts_table_overrides_dns() {
    let dns = Arc::new(FakeDns::default().answer(
        "example.org",
        Ok(vec![
            MailHost {
                name: "MX1.example.org.".into(),
                preference: 10,
                addresses: vec![ip("198.51.100.1")],
            },
            MailHost {
                name: "mx2.example.org".into(),
                preference: 20,
                addresses: vec![ip("198.51.100.2")],
            },
        ]),
    ));
    let t = build(
        &TableConfig::new()
            .host("mx1.example.org", vec![ip("192.0.2.1")])
            .host(
                "Relay.Example.net.",
                vec![ip("192.0.2.25"), ip("2001:db8::25")],
            ),
    );
    assert_eq!(t.hosts().len(), 2);
    assert_eq!(
        t.hosts().addresses("relay.example.NET."),
        Some(&[ip("192.0.2.25"), ip("2001:db8::25")][..])
    );
    assert_eq!(t.hosts().addresses("other.example"), None);
    let r = t.hosts().over(dns.clone());
    assert_eq!(
        block_on(r.host_addresses("relay.example.net")),
        Ok(vec![ip("192.0.2.25"), ip("2001:db8::25")])
    );
    assert_eq!(
        block_on(r.mail_hosts("relay.example.net")),
        Ok(vec![MailHost {
            name: "relay.example.net".into(),
            preference: 0,
            addresses: vec![ip("192.0.2.25"), ip("2001:db8::25")],
        }])
    );
    let hosts = block_on(r.mail_hosts("example.org")).expect("resolved");
    assert_eq!(
        hosts
            .iter()
            .map(|h| (h.preference, h.addresses.clone()))
            .collect::<Vec<_>>(),
        vec![(10, vec![ip("192.0.2.1")]), (20, vec![ip("198.51.100.2")])]
    );
    assert!(block_on(r.host_addresses("unknown.example")).is_err());
    assert_eq!(dns.calls(), vec!["mx example.org", "a unknown.example"]);
}

// ---- validation ----

fn invalid(e: ConfigError) -> (String, String) {
    match e {
        ConfigError::Invalid { entry, reason } => (entry, reason),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// Asserts an `Invalid` error for `entry` whose reason says `says`.
fn assert_invalid(config: &TableConfig, entry: &str, says: &str) {
    let (e, reason) = invalid(build_err(config));
    assert_eq!(e, entry);
    assert!(
        reason.contains(says),
        "{entry}: {reason:?} should say {says:?}"
    );
}

#[test]
fn validation_of_domains_patterns_and_hosts() {
    assert_eq!(
        build_err(&TableConfig::new().local_domain("example.com")),
        ConfigError::NoLocalChannel
    );
    assert_eq!(
        build_err(&TableConfig::new().route(RouteEntry::for_domain("exa_mple.org", "smtp"))),
        ConfigError::Domain {
            entry: "route[0] (domain \"exa_mple.org\")".into(),
            value: "exa_mple.org".into(),
            source: MailboxError::InvalidDomainChar { ch: '_' },
        }
    );
    assert_eq!(
        build_err(
            &TableConfig::new()
                .local_channel("local")
                .local_domain("example.com")
                .local_domain("ex*ample.org")
        ),
        ConfigError::Pattern {
            entry: "local_domains[1] (\"ex*ample.org\")".into(),
            value: "ex*ample.org".into(),
        }
    );
    assert_eq!(
        build_err(&TableConfig::new().route(RouteEntry::for_domain("*", "smtp"))),
        ConfigError::Pattern {
            entry: "route[0] (domain \"*\")".into(),
            value: "*".into(),
        }
    );
    for bad in [
        "relay:99999",
        "relay:",
        "[relay",
        "a:b:c",
        "re lay",
        "relay:0",
    ] {
        assert_eq!(
            build_err(&TableConfig::new().default_route(DefaultRouteEntry::smarthost("smtp", bad))),
            ConfigError::Host {
                entry: "default_route".into(),
                value: bad.into(),
            },
            "{bad}"
        );
    }
    assert_eq!(
        build_err(&TableConfig::new().peer("hub", PeerEntry::at(""))),
        ConfigError::Host {
            entry: "peer \"hub\"".into(),
            value: String::new(),
        }
    );
    assert_eq!(
        build_err(&TableConfig::new().host("bad_name", vec![ip("192.0.2.1")])),
        ConfigError::Domain {
            entry: "hosts \"bad_name\"".into(),
            value: "bad_name".into(),
            source: MailboxError::InvalidDomainChar { ch: '_' },
        }
    );
    assert_eq!(
        build_err(
            &TableConfig::new()
                .host("Relay.example.", vec![ip("192.0.2.1")])
                .host("relay.example", vec![ip("192.0.2.2")])
        ),
        ConfigError::Duplicate {
            entry: "hosts \"relay.example\"".into(),
            key: "relay.example".into(),
            first: "hosts \"Relay.example.\"".into(),
        }
    );
    assert_invalid(
        &TableConfig::new().host("relay.example", vec![]),
        "hosts \"relay.example\"",
        "no addresses",
    );
    for good in [
        "relay",
        "relay:25",
        "[relay]:25",
        "[2001:db8::1]:25",
        "2001:db8::1",
        "192.0.2.1:25",
    ] {
        assert!(
            TableRouter::new(
                &TableConfig::new().default_route(DefaultRouteEntry::smarthost("smtp", good))
            )
            .is_ok(),
            "{good}"
        );
    }
}

#[test]
fn validation_of_route_entries() {
    let both = RouteEntry {
        address: Some("a@example.com".into()),
        domain: Some("example.com".into()),
        channel: "smtp".into(),
        ..RouteEntry::default()
    };
    assert_invalid(
        &TableConfig::new().route(both),
        "route[0]",
        "exactly one of",
    );
    let neither = RouteEntry {
        channel: "smtp".into(),
        ..RouteEntry::default()
    };
    assert_invalid(
        &TableConfig::new().route(neither),
        "route[0]",
        "exactly one of",
    );
    assert_invalid(
        &TableConfig::new().route(RouteEntry::for_domain("example.org", " ")),
        "route[0] (domain \"example.org\")",
        "no channel",
    );
    assert_invalid(
        &TableConfig::new().route(
            RouteEntry::for_domain("example.org", "smtp")
                .via_host("h")
                .via_peer("p"),
        ),
        "route[0] (domain \"example.org\")",
        "not both",
    );
    assert_invalid(
        &TableConfig::new().route(
            RouteEntry::for_domain("example.org", "p1")
                .via_peer("hub")
                .permanent(),
        ),
        "route[0] (domain \"example.org\")",
        "go on the peer",
    );
    assert_invalid(
        &TableConfig::new()
            .route(RouteEntry::for_address("a@example.org", "smtp").tls(TlsPolicy::Required)),
        "route[0] (address \"a@example.org\")",
        "settings of its domain's route",
    );
    assert_eq!(
        build_err(&TableConfig::new().route(RouteEntry::for_address("a b@example.com", "smtp"))),
        ConfigError::Mailbox {
            entry: "route[0] (address \"a b@example.com\")".into(),
            value: "a b@example.com".into(),
            source: MailboxError::InvalidLocalChar { ch: ' ', offset: 1 },
        }
    );
}

#[test]
fn validation_of_credentials() {
    let both = AuthEntry {
        username: "u".into(),
        password: Some("p".into()),
        password_file: Some("/f".into()),
        ..AuthEntry::default()
    };
    assert_invalid(
        &TableConfig::new().default_route(DefaultRouteEntry::smarthost("smtp", "r").auth(both)),
        "default_route",
        "exactly one of `password` and `password_file`",
    );
    let neither = AuthEntry {
        username: "u".into(),
        ..AuthEntry::default()
    };
    assert_invalid(
        &TableConfig::new().peer("hub", PeerEntry::at("hub").auth(neither)),
        "peer \"hub\"",
        "exactly one of `password` and `password_file`",
    );
    assert_invalid(
        &TableConfig::new().peer(
            "hub",
            PeerEntry::at("hub").auth(AuthEntry::password("", "p")),
        ),
        "peer \"hub\"",
        "no username",
    );
    assert_invalid(
        &TableConfig::new().peer(
            "hub",
            PeerEntry::at("hub")
                .tls(TlsPolicy::None)
                .auth(secret_auth()),
        ),
        "peer \"hub\"",
        "allow_plaintext",
    );
    let mut plaintext = secret_auth();
    plaintext.allow_plaintext = true;
    assert!(
        TableRouter::new(&TableConfig::new().peer(
            "hub",
            PeerEntry::at("hub").tls(TlsPolicy::None).auth(plaintext)
        ))
        .is_ok()
    );
}

#[test]
fn validation_of_duplicates() {
    let twice = TableConfig::new()
        .route(RouteEntry::for_domain("example.org", "a"))
        .route(RouteEntry::for_domain("EXAMPLE.org", "b"));
    assert_eq!(
        build_err(&twice),
        ConfigError::Duplicate {
            entry: "route[1] (domain \"EXAMPLE.org\")".into(),
            key: "example.org".into(),
            first: "route[0] (domain \"example.org\")".into(),
        }
    );
    let local_and_route = TableConfig::new()
        .local_domain("example.com")
        .local_channel("local")
        .route(RouteEntry::for_domain("example.com", "smtp"));
    assert_eq!(
        build_err(&local_and_route),
        ConfigError::Duplicate {
            entry: "route[0] (domain \"example.com\")".into(),
            key: "example.com".into(),
            first: "local_domains[0] (\"example.com\")".into(),
        }
    );
    let two_wildcards = TableConfig::new()
        .route(RouteEntry::for_domain("*.example.org", "a"))
        .route(RouteEntry::for_domain(".example.org", "b"));
    assert_eq!(
        build_err(&two_wildcards),
        ConfigError::Duplicate {
            entry: "route[1] (domain \".example.org\")".into(),
            key: "*.example.org / .example.org".into(),
            first: "route[0] (domain \"*.example.org\")".into(),
        }
    );
    let exact_and_wildcard = TableConfig::new()
        .route(RouteEntry::for_domain("example.org", "a"))
        .route(RouteEntry::for_domain(".example.org", "b"));
    assert!(TableRouter::new(&exact_and_wildcard).is_ok());
    let alias_and_alternate = TableConfig::new()
        .alias("team@example.com", ["a@example.com"])
        .alternates("x@example.com", ["Team@Example.com"]);
    assert_eq!(
        build_err(&alias_and_alternate),
        ConfigError::Duplicate {
            entry: "alternate \"Team@Example.com\" of \"x@example.com\"".into(),
            key: "team@example.com".into(),
            first: "alias \"team@example.com\"".into(),
        }
    );
    let route_and_alias = TableConfig::new()
        .route(RouteEntry::for_address("team@example.com", "smtp"))
        .alias("team@example.com", ["a@example.com"]);
    assert_eq!(
        build_err(&route_and_alias),
        ConfigError::Duplicate {
            entry: "alias \"team@example.com\"".into(),
            key: "team@example.com".into(),
            first: "route[0] (address \"team@example.com\")".into(),
        }
    );
    // Case-sensitive: `Team@` and `team@` are two addresses.
    let case = TableConfig::new()
        .case_sensitive_local_parts(true)
        .alias("team@example.com", ["a@example.com"])
        .alias("Team@example.com", ["b@example.com"]);
    assert!(TableRouter::new(&case).is_ok());
}

#[test]
fn validation_of_aliases_and_alternates() {
    assert_invalid(
        &TableConfig::new().alias("team@example.com", Vec::<String>::new()),
        "alias \"team@example.com\"",
        "at least one member",
    );
    assert_eq!(
        build_err(&TableConfig::new().alias("team@example.com", ["a@example.com", "b@"])),
        ConfigError::Address {
            entry: "alias \"team@example.com\"".into(),
            value: "b@".into(),
            source: MailboxError::EmptyDomain.into(),
        }
    );
    assert_invalid(
        &TableConfig::new().alternates("jsmith@example.com", ["JSmith@example.com"]),
        "alternate \"JSmith@example.com\" of \"jsmith@example.com\"",
        "its own alternate",
    );
    assert_invalid(
        &TableConfig::new()
            .alternates("a@example.com", ["b@example.com"])
            .alternates("b@example.com", ["c@example.com"]),
        "alternates of \"b@example.com\"",
        "itself an alternate",
    );
}

#[test]
fn validation_of_the_separator() {
    for bad in ["++", "a", ".", "@", " ", "\"", "é"] {
        assert_eq!(
            build_err(&TableConfig::new().subaddress_separator(bad)),
            ConfigError::Separator { value: bad.into() },
            "{bad:?}"
        );
    }
    for good in ["+", "-", "_", "=", ""] {
        assert!(
            TableRouter::new(&TableConfig::new().subaddress_separator(good)).is_ok(),
            "{good:?}"
        );
    }
}

#[test]
fn errors_name_the_entry() {
    assert_eq!(
        build_err(&TableConfig::new().route(RouteEntry::for_domain("example.org", ""))).to_string(),
        "route[0] (domain \"example.org\"): no channel"
    );
    assert_eq!(
        build_err(&TableConfig::new().default_route(DefaultRouteEntry::smarthost("smtp", "a:b:c")))
            .to_string(),
        "default_route: \"a:b:c\" is not a host, host:port, [host]:port or [IPv6]:port"
    );
}

#[test]
fn default_config_values() {
    let c = TableConfig::default();
    assert_eq!(c.subaddress_separator, DEFAULT_SUBADDRESS_SEPARATOR);
    assert!(!c.case_sensitive_local_parts);
    let t = build(&c);
    assert_eq!(t.subaddress_separator(), Some('+'));
    assert!(!t.case_sensitive_local_parts());
    // `Domain` is the core's: the table uses its comparison, A-labels in lower case.
    assert_eq!(
        Domain::parse("Bücher.Example").map(|d| d.to_ascii().to_owned()),
        Ok("xn--bcher-kva.example".to_owned())
    );
}

// ---- the serde shape (what the daemon reads from TOML) ----

/// A minimal self-describing serde format, enough to feed `TableConfig` the data model TOML
/// produces (strings, booleans, arrays, tables) without a TOML dependency in this crate.
mod data {
    use serde::de::value::{Error, MapDeserializer, SeqDeserializer};
    use serde::de::{self, IntoDeserializer, Visitor};

    /// A TOML-like value: string, boolean, array, table.
    #[derive(Debug, Clone)]
    pub(super) enum V {
        S(&'static str),
        B(bool),
        L(Vec<V>),
        M(Vec<(&'static str, V)>),
    }

    impl<'de> IntoDeserializer<'de, Error> for V {
        type Deserializer = V;
        fn into_deserializer(self) -> V {
            self
        }
    }

    impl<'de> de::Deserializer<'de> for V {
        type Error = Error;

        fn deserialize_any<W: Visitor<'de>>(self, v: W) -> Result<W::Value, Error> {
            match self {
                V::S(s) => v.visit_str(s),
                V::B(b) => v.visit_bool(b),
                V::L(l) => v.visit_seq(SeqDeserializer::new(l.into_iter())),
                V::M(m) => v.visit_map(MapDeserializer::new(m.into_iter())),
            }
        }

        fn deserialize_option<W: Visitor<'de>>(self, v: W) -> Result<W::Value, Error> {
            v.visit_some(self)
        }

        fn deserialize_enum<W: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            v: W,
        ) -> Result<W::Value, Error> {
            match self {
                V::S(s) => v.visit_enum(s.into_deserializer()),
                other => other.deserialize_any(v),
            }
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf unit unit_struct newtype_struct seq tuple tuple_struct map struct
            identifier ignored_any
        }
    }

    /// Deserializes a `T` from `v`.
    pub(super) fn from<T: de::DeserializeOwned>(v: V) -> Result<T, Error> {
        T::deserialize(v)
    }
}

/// The TOML example of the module documentation, as the data TOML gives serde.
fn documented_example() -> data::V {
    use data::V::{L, M, S};
    M(vec![
        (
            "local_domains",
            L(vec![S("example.org"), S(".lists.example.org")]),
        ),
        ("local_channel", S("local")),
        ("subaddress_separator", S("+")),
        ("case_sensitive_local_parts", data::V::B(false)),
        (
            "route",
            L(vec![M(vec![
                ("domain", S("*.corp.example.org")),
                ("channel", S("smtp")),
                ("host", S("[gw.corp.example.org]:2525")),
                ("tls", S("required")),
                (
                    "auth",
                    M(vec![
                        ("username", S("switch")),
                        ("password_file", S("/etc/mswitch/gw.secret")),
                    ]),
                ),
                ("permanent", data::V::B(true)),
                ("local", data::V::B(true)),
            ])]),
        ),
        (
            "default_route",
            M(vec![
                ("channel", S("smtp")),
                ("smarthost", S("relay.example.net:587")),
            ]),
        ),
        (
            "aliases",
            M(vec![
                ("postmaster@example.org", L(vec![S("root@example.org")])),
                (
                    "team@example.org",
                    L(vec![S("ann@example.org"), S("bob@example.net")]),
                ),
            ]),
        ),
        (
            "alternates",
            M(vec![(
                "jsmith@example.org",
                L(vec![S("joe@example.org"), S("j.smith@example.org")]),
            )]),
        ),
        (
            "peers",
            M(vec![(
                "hub",
                M(vec![
                    ("host", S("hub.example.net:25")),
                    ("permanent", data::V::B(true)),
                ]),
            )]),
        ),
        (
            "hosts",
            M(vec![(
                "relay.example.net",
                L(vec![S("192.0.2.25"), S("2001:db8::25")]),
            )]),
        ),
    ])
}

#[test]
fn documented_example_deserializes_to_the_same_config_as_the_builder() {
    let parsed: TableConfig = data::from(documented_example()).expect("deserializes");
    let mut route = RouteEntry::for_domain("*.corp.example.org", "smtp")
        .via_host("[gw.corp.example.org]:2525")
        .tls(TlsPolicy::Required)
        .auth(AuthEntry::password_file("switch", "/etc/mswitch/gw.secret"))
        .permanent();
    route.local = Some(true);
    let built = TableConfig::new()
        .local_domain("example.org")
        .local_domain(".lists.example.org")
        .local_channel("local")
        .route(route)
        .default_route(DefaultRouteEntry::smarthost(
            "smtp",
            "relay.example.net:587",
        ))
        .alias("postmaster@example.org", ["root@example.org"])
        .alias("team@example.org", ["ann@example.org", "bob@example.net"])
        .alternates(
            "jsmith@example.org",
            ["joe@example.org", "j.smith@example.org"],
        )
        .peer("hub", PeerEntry::at("hub.example.net:25").permanent())
        .host(
            "relay.example.net",
            vec![ip("192.0.2.25"), ip("2001:db8::25")],
        );
    assert_eq!(parsed, built);
    let t = build(&parsed);
    assert_eq!(
        deliver(&t, "a@x.corp.example.org"),
        ("smtp".into(), host("gw.corp.example.org", Some(2525)), true)
    );
    assert_eq!(deliver(&t, "a@lists.example.org").1, NextHop::Local);
}

#[test]
fn serde_defaults_aliases_and_unknown_keys() {
    use data::V::{B, L, M, S};
    let empty: TableConfig = data::from(M(vec![])).expect("an empty table is valid");
    assert_eq!(empty, TableConfig::default());
    let routes: TableConfig = data::from(M(vec![(
        "routes",
        L(vec![M(vec![
            ("address", S("a@example.org")),
            ("channel", S("lmtp")),
        ])]),
    )]))
    .expect("`routes` is accepted for `route`");
    assert_eq!(
        routes.routes,
        vec![RouteEntry::for_address("a@example.org", "lmtp")]
    );
    let unknown = data::from::<TableConfig>(M(vec![("local_domain", L(vec![]))]));
    assert!(
        unknown
            .as_ref()
            .is_err_and(|e| e.to_string().contains("unknown field `local_domain`")),
        "{unknown:?}"
    );
    let unknown_in_route = data::from::<TableConfig>(M(vec![(
        "route",
        L(vec![M(vec![
            ("domain", S("example.org")),
            ("channel", S("smtp")),
            ("smarthost", S("relay")),
        ])]),
    )]));
    assert!(
        unknown_in_route
            .as_ref()
            .is_err_and(|e| e.to_string().contains("unknown field `smarthost`")),
        "{unknown_in_route:?}"
    );
    let bad_tls = data::from::<TableConfig>(M(vec![(
        "default_route",
        M(vec![("channel", S("smtp")), ("tls", S("always"))]),
    )]));
    assert!(
        bad_tls
            .as_ref()
            .is_err_and(|e| e.to_string().contains("unknown variant `always`")),
        "{bad_tls:?}"
    );
    let no_channel = data::from::<TableConfig>(M(vec![(
        "default_route",
        M(vec![("smarthost", S("relay")), ("permanent", B(true))]),
    )]));
    assert!(
        no_channel
            .as_ref()
            .is_err_and(|e| e.to_string().contains("missing field `channel`")),
        "{no_channel:?}"
    );
}
