//! Unit tests of LASER routing, with a fake directory: every rule of the decision, the modes,
//! the cache and the hosted domain set.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::executor::block_on;
use mswitch_core::address::{Address, Domain, Mailbox};
use mswitch_core::envelope::{NextHop, ReversePath, Route};
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::memory::StaticRouter;
use mswitch_core::route::{RouteContext, RouteDecision, Router};
use mswitch_core::status::Status;
use mswitch_core::submission::{ClientInfo, Service, SubmissionContext};

use super::*;

/// One search as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    base: String,
    scope: Scope,
    filter: String,
    attributes: Vec<String>,
}

/// A directory that answers from a table keyed by the exact filter (anything else: no
/// entries), records every search, and can be made to fail.
#[derive(Default)]
struct FakeDirectory {
    answers: Mutex<HashMap<String, Vec<Entry>>>,
    failure: Mutex<Option<DirectoryError>>,
    queries: Mutex<Vec<Query>>,
}

impl FakeDirectory {
    fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn answer(&self, filter: &str, entries: Vec<Entry>) {
        lock(&self.answers).insert(filter.to_owned(), entries);
    }

    fn fail(&self, error: Option<DirectoryError>) {
        *lock(&self.failure) = error;
    }

    fn queries(&self) -> Vec<Query> {
        lock(&self.queries).clone()
    }

    fn count(&self) -> usize {
        lock(&self.queries).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Directory for FakeDirectory {
    async fn search(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Vec<Entry>, DirectoryError> {
        lock(&self.queries).push(Query {
            base: base.to_owned(),
            scope,
            filter: filter.to_owned(),
            attributes: attributes.iter().map(|a| (*a).to_owned()).collect(),
        });
        if let Some(e) = lock(&self.failure).clone() {
            return Err(e);
        }
        Ok(lock(&self.answers).get(filter).cloned().unwrap_or_default())
    }
}

const BASE: &str = "ou=people,dc=example,dc=com";

fn filter_for(address: &str) -> String {
    format!("(|(mail={address})(mailLocalAddress={address}))")
}

fn domain(s: &str) -> Domain {
    Domain::parse(s).expect("valid domain")
}

fn addr(s: &str) -> Address {
    Address::Mailbox(Mailbox::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
}

fn route(router: &LaserRouter, to: &str) -> RouteDecision {
    route_address(router, &addr(to))
}

fn route_address(router: &LaserRouter, address: &Address) -> RouteDecision {
    let ctx = SubmissionContext {
        channel: ChannelId::new("smtp-in"),
        service: Service::Relay,
        client: ClientInfo::default(),
        now: Timestamp(0),
    };
    let sender = ReversePath::Null;
    block_on(router.route(
        address,
        RouteContext {
            submission: &ctx,
            sender: &sender,
        },
    ))
}

fn deliver(channel: &str, next_hop: NextHop) -> RouteDecision {
    RouteDecision::Deliver(Route {
        channel: ChannelId::new(channel),
        next_hop,
        local: true,
    })
}

fn host(h: &str) -> NextHop {
    NextHop::Host {
        host: h.to_owned(),
        port: None,
    }
}

fn status(code: u16, enhanced: (u8, u16, u16), text: &str) -> Status {
    Status::new(code, enhanced, text)
}

/// A fallback that sends everything to "relay" by MX, so a fallback decision is recognizable.
fn fallback() -> Arc<dyn Router> {
    Arc::new(StaticRouter::new().default_route(Route {
        channel: ChannelId::new("relay"),
        next_hop: NextHop::Domain("fallback".into()),
        local: false,
    }))
}

fn fallback_decision() -> RouteDecision {
    RouteDecision::Deliver(Route {
        channel: ChannelId::new("relay"),
        next_hop: NextHop::Domain("fallback".into()),
        local: false,
    })
}

/// Single-domain LASER for example.com over `dir`, with `routing`, the manual clock, the
/// default cache and the fallback.
fn single(
    dir: &Arc<FakeDirectory>,
    routing: EntryRouting,
    clock: &Arc<ManualClock>,
) -> LaserRouter {
    LaserRouter::new(LaserMode::SingleDomain {
        domains: vec![domain("example.com"), domain("example.org")],
        search: DirectorySearch::new(dir.clone(), BASE),
        routing,
    })
    .clock(clock.clone())
    .fallback(fallback())
}

fn person(uid: &str) -> Entry {
    Entry::new(format!("uid={uid},{BASE}"))
}

// ---- the decision for one entry ----

#[test]
fn mail_host_delivers_to_that_host_on_the_host_channel() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("alice@example.com"),
        vec![person("alice").with("mailHost", ["mailstore1.example.com"])],
    );
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    assert_eq!(
        route(&r, "alice@Example.COM"),
        deliver("smtp", host("mailstore1.example.com"))
    );
    assert_eq!(
        dir.queries(),
        [Query {
            base: BASE.into(),
            scope: Scope::Subtree,
            filter: filter_for("alice@example.com"),
            attributes: vec!["mailHost".into(), "mailRoutingAddress".into()],
        }]
    );
}

#[test]
fn routing_address_is_a_rewrite() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("a.example@example.com"),
        vec![person("alice").with("mailRoutingAddress", ["alice@mailstore1.example.com"])],
    );
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    assert_eq!(
        route(&r, "a.example@example.com"),
        RouteDecision::Expand(vec![addr("alice@mailstore1.example.com")])
    );
}

#[test]
fn routing_address_wins_over_mail_host() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("alice@example.com"),
        vec![
            person("alice")
                .with("mailHost", ["mailstore1.example.com"])
                .with("mailRoutingAddress", ["alice@mailstore1.example.com"]),
        ],
    );
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    assert_eq!(
        route(&r, "alice@example.com"),
        RouteDecision::Expand(vec![addr("alice@mailstore1.example.com")])
    );
}

#[test]
fn routing_address_equal_to_the_address_is_no_rewrite() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("alice@example.com"),
        vec![
            person("alice")
                .with("mailHost", ["mailstore1.example.com"])
                // Same address, domain in another case: not a rewrite (it would loop).
                .with("mailRoutingAddress", ["alice@EXAMPLE.com"]),
        ],
    );
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    assert_eq!(
        route(&r, "alice@example.com"),
        deliver("smtp", host("mailstore1.example.com"))
    );
}

#[test]
fn channel_attribute_wins_and_keeps_the_mail_host() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("x400@example.com"),
        vec![
            person("x")
                .with("employeeType", ["x400-p1"])
                .with("mailHost", ["mta.example.net"])
                .with("mailRoutingAddress", ["other@example.net"]),
        ],
    );
    dir.answer(
        &filter_for("lmtp@example.com"),
        vec![person("l").with("employeeType", ["lmtp"])],
    );
    let routing = EntryRouting::new("smtp").channel_attribute(Some("employeeType"));
    let r = single(&dir, routing, &Arc::new(ManualClock::new()));
    assert_eq!(
        route(&r, "x400@example.com"),
        deliver("x400-p1", host("mta.example.net"))
    );
    assert_eq!(
        route(&r, "lmtp@example.com"),
        deliver("lmtp", NextHop::Local)
    );
    assert_eq!(
        dir.queries()[0].attributes,
        ["mailHost", "mailRoutingAddress", "employeeType"]
    );
}

#[test]
fn entry_without_delivery_information_goes_to_the_default_local_channel() {
    let dir = FakeDirectory::new();
    dir.answer(&filter_for("carol@example.com"), vec![person("carol")]);
    let clock = Arc::new(ManualClock::new());
    let r = single(
        &dir,
        EntryRouting::new("smtp").default_local("maildir"),
        &clock,
    );
    assert_eq!(
        route(&r, "carol@example.com"),
        deliver("maildir", NextHop::Local)
    );
}

#[test]
fn entry_without_delivery_information_and_no_default_is_451_4_3_5() {
    let dir = FakeDirectory::new();
    dir.answer(&filter_for("carol@example.com"), vec![person("carol")]);
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    assert_eq!(
        route(&r, "carol@example.com"),
        RouteDecision::TryLater(status(
            451,
            (4, 3, 5),
            "<carol@example.com>: no delivery information for this recipient"
        ))
    );
}

#[test]
fn mail_host_naming_this_switch_is_local_delivery() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("dave@example.com"),
        vec![person("dave").with("mailHost", ["MX.Example.com."])],
    );
    let routing = EntryRouting::new("smtp")
        .default_local("maildir")
        .local_host("mx.example.com");
    let r = single(&dir, routing, &Arc::new(ManualClock::new()));
    assert_eq!(
        route(&r, "dave@example.com"),
        deliver("maildir", NextHop::Local)
    );
}

#[test]
fn unusable_values_are_ignored() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("eve@example.com"),
        vec![
            person("eve")
                .with("mailHost", ["not a host!"])
                .with("mailRoutingAddress", ["no-at-sign"]),
        ],
    );
    dir.answer(
        &filter_for("ip@example.com"),
        vec![person("ip").with("mailHost", ["  ", "192.0.2.7"])],
    );
    let r = single(
        &dir,
        EntryRouting::new("smtp").default_local("maildir"),
        &Arc::new(ManualClock::new()),
    );
    assert_eq!(
        route(&r, "eve@example.com"),
        deliver("maildir", NextHop::Local)
    );
    // Blank values are skipped; an IP address is a host.
    assert_eq!(
        route(&r, "ip@example.com"),
        deliver("smtp", host("192.0.2.7"))
    );
}

#[test]
fn attributes_can_be_renamed_or_switched_off() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("frank@example.com"),
        vec![
            person("frank")
                .with("mailHost", ["ignored.example.com"])
                .with("mailRoutingAddress", ["ignored@example.net"])
                .with("description", ["store9.example.com"]),
        ],
    );
    let routing = EntryRouting::new("smtp")
        .mail_host_attribute(Some("description"))
        .routing_address_attribute(None);
    let r = single(&dir, routing, &Arc::new(ManualClock::new()));
    assert_eq!(
        route(&r, "frank@example.com"),
        deliver("smtp", host("store9.example.com"))
    );
    assert_eq!(dir.queries()[0].attributes, ["description"]);
}

// ---- none, many, failures ----

#[test]
fn unknown_user_is_550_5_1_1() {
    let dir = FakeDirectory::new();
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    assert_eq!(
        route(&r, "nobody@example.com"),
        RouteDecision::Reject(status(550, (5, 1, 1), "<nobody@example.com>: unknown user"))
    );
}

#[test]
fn ambiguous_is_550_5_1_4_by_default_or_451_4_1_4() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("dup@example.com"),
        vec![person("dup1").with("mailHost", ["a"]), person("dup2")],
    );
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    let text = "<dup@example.com>: ambiguous address, 2 directory entries match";
    assert_eq!(
        route(&r, "dup@example.com"),
        RouteDecision::Reject(status(550, (5, 1, 4), text))
    );
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    )
    .on_ambiguous(Ambiguity::TryLater);
    assert_eq!(
        route(&r, "dup@example.com"),
        RouteDecision::TryLater(status(451, (4, 1, 4), text))
    );
}

#[test]
fn directory_failures_are_451_4_4_3_and_not_cached() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("alice@example.com"),
        vec![person("alice").with("mailHost", ["mailstore1.example.com"])],
    );
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    for e in [
        DirectoryError::Unavailable("connect: connection refused".into()),
        DirectoryError::Refused {
            code: 51,
            message: "search: busy".into(),
        },
        DirectoryError::Protocol("bad entry".into()),
        DirectoryError::Config("bad filter".into()),
    ] {
        dir.fail(Some(e.clone()));
        let d = route(&r, "alice@example.com");
        let RouteDecision::TryLater(s) = &d else {
            panic!("{e}: {d:?}");
        };
        assert_eq!(
            (s.code, s.enhanced.to_string()),
            (451, "4.4.3".into()),
            "{e}"
        );
        assert_eq!(s, &Status::from(&e));
    }
    assert_eq!(r.cached(), 0);
    dir.fail(None);
    assert_eq!(
        route(&r, "alice@example.com"),
        deliver("smtp", host("mailstore1.example.com"))
    );
    assert_eq!(dir.count(), 5, "every failure went to the directory again");
}

// ---- what is not LASER's ----

#[test]
fn other_domains_literals_and_x400_go_to_the_fallback_untouched() {
    let dir = FakeDirectory::new();
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    assert_eq!(route(&r, "someone@example.net"), fallback_decision());
    assert_eq!(route(&r, "someone@sub.example.com"), fallback_decision());
    assert_eq!(route(&r, "someone@[192.0.2.1]"), fallback_decision());
    let x400 = Address::parse("/C=GB/ADMD= /PRMD=Example/O=Example/S=Smith/").expect("x400");
    assert!(x400.as_or_address().is_some());
    assert_eq!(route_address(&r, &x400), fallback_decision());
    assert_eq!(dir.count(), 0);
}

#[test]
fn without_a_fallback_other_domains_are_550_5_1_2() {
    let dir = FakeDirectory::new();
    let r = LaserRouter::new(LaserMode::SingleDomain {
        domains: vec![domain("example.com")],
        search: DirectorySearch::new(dir.clone(), BASE),
        routing: EntryRouting::new("smtp"),
    });
    assert_eq!(
        route(&r, "x@example.net"),
        RouteDecision::Reject(status(550, (5, 1, 2), "No route to x@example.net"))
    );
}

// ---- filter injection ----

#[test]
fn filter_specials_in_the_local_part_are_escaped() {
    let dir = FakeDirectory::new();
    // If the star were not escaped, the fake would not know the filter either, but a real
    // directory would match alice: assert the exact filter sent.
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    );
    for (to, value) in [
        ("\"a*\"@example.com", "a\\2a@example.com"),
        ("*@example.com", "\\2a@example.com"),
        (
            "\"a)(mail=*\"@example.com",
            "\"a\\29\\28mail=\\2a\"@example.com",
        ),
        ("\"a\\\\\"@example.com", "\"a\\5c\\5c\"@example.com"),
        ("\"(\"@example.com", "\"\\28\"@example.com"),
    ] {
        assert_eq!(
            route(&r, to),
            RouteDecision::Reject(status(
                550,
                (5, 1, 1),
                &format!("<{}>: unknown user", Mailbox::parse(to).expect("valid"))
            )),
            "{to}"
        );
        let q = dir.queries();
        assert_eq!(
            q.last().map(|q| q.filter.as_str()),
            Some(filter_for(value).as_str())
        );
    }
}

// ---- the cache ----

#[test]
fn positive_answers_are_cached_for_the_positive_ttl() {
    let dir = FakeDirectory::new();
    let f = filter_for("alice@example.com");
    dir.answer(
        &f,
        vec![person("alice").with("mailHost", ["one.example.com"])],
    );
    let clock = Arc::new(ManualClock::new());
    let r = single(&dir, EntryRouting::new("smtp"), &clock).cache(CachePolicy {
        positive_ttl: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(5),
        max_entries: 100,
    });
    assert_eq!(
        route(&r, "alice@example.com"),
        deliver("smtp", host("one.example.com"))
    );
    dir.answer(
        &f,
        vec![person("alice").with("mailHost", ["two.example.com"])],
    );
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        route(&r, "alice@example.com"),
        deliver("smtp", host("one.example.com"))
    );
    assert_eq!(dir.count(), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        route(&r, "alice@example.com"),
        deliver("smtp", host("two.example.com"))
    );
    assert_eq!(dir.count(), 2);
}

#[test]
fn negative_answers_are_cached_for_the_negative_ttl() {
    let dir = FakeDirectory::new();
    let clock = Arc::new(ManualClock::new());
    let r = single(&dir, EntryRouting::new("smtp"), &clock).cache(CachePolicy {
        positive_ttl: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(5),
        max_entries: 100,
    });
    let unknown = RouteDecision::Reject(status(550, (5, 1, 1), "<new@example.com>: unknown user"));
    assert_eq!(route(&r, "new@example.com"), unknown);
    dir.answer(
        &filter_for("new@example.com"),
        vec![person("new").with("mailHost", ["one.example.com"])],
    );
    clock.advance(Duration::from_millis(4_999));
    assert_eq!(route(&r, "new@example.com"), unknown);
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        route(&r, "new@example.com"),
        deliver("smtp", host("one.example.com"))
    );
    assert_eq!(dir.count(), 2);
}

#[test]
fn cache_keys_are_exact_addresses_and_can_be_cleared() {
    let dir = FakeDirectory::new();
    let clock = Arc::new(ManualClock::new());
    let r = single(&dir, EntryRouting::new("smtp"), &clock);
    route(&r, "Bob@example.com");
    route(&r, "Bob@EXAMPLE.COM"); // same key: the domain is compared in lower case
    route(&r, "bob@example.com"); // another key: local parts are not case-folded
    route(&r, "bob@example.org"); // another domain
    assert_eq!(dir.count(), 3);
    assert_eq!(r.cached(), 3);
    r.clear_cache();
    assert_eq!(r.cached(), 0);
    route(&r, "Bob@example.com");
    assert_eq!(dir.count(), 4);
}

#[test]
fn disabled_cache_asks_every_time() {
    let dir = FakeDirectory::new();
    let r = single(
        &dir,
        EntryRouting::new("smtp"),
        &Arc::new(ManualClock::new()),
    )
    .cache(CachePolicy::DISABLED);
    route(&r, "a@example.com");
    route(&r, "a@example.com");
    assert_eq!(dir.count(), 2);
}

// ---- hosted ----

#[test]
fn hosted_with_a_fixed_list() {
    let dir = FakeDirectory::new();
    dir.answer(
        &filter_for("h@hosted1.example"),
        vec![person("h").with("mailHost", ["store.example.com"])],
    );
    let r = LaserRouter::new(LaserMode::Hosted {
        domains: HostedDomains::Fixed(vec![domain("hosted1.example"), domain("hosted2.example")]),
        search: DirectorySearch::new(dir.clone(), "o=hosting"),
        routing: EntryRouting::new("smtp"),
    })
    .fallback(fallback());
    assert_eq!(
        route(&r, "h@hosted1.example"),
        deliver("smtp", host("store.example.com"))
    );
    assert!(
        matches!(route(&r, "x@hosted2.example"), RouteDecision::Reject(s) if s.enhanced.to_string() == "5.1.1")
    );
    assert_eq!(route(&r, "x@elsewhere.example"), fallback_decision());
    assert_eq!(dir.count(), 2);
}

const DOMAINS: &str = "(objectClass=domainRelatedObject)";

fn hosted_from_directory(dir: &Arc<FakeDirectory>, clock: &Arc<ManualClock>) -> LaserRouter {
    LaserRouter::new(LaserMode::Hosted {
        domains: HostedDomains::Directory(
            DomainSource::new(dir.clone(), "ou=domains,o=hosting").ttl(Duration::from_secs(300)),
        ),
        search: DirectorySearch::new(dir.clone(), "o=hosting"),
        routing: EntryRouting::new("smtp").default_local("maildir"),
    })
    .clock(clock.clone())
    .fallback(fallback())
}

fn domain_entry(dc: &str, names: &[&str]) -> Entry {
    Entry::new(format!("dc={dc},ou=domains,o=hosting"))
        .with("associatedDomain", names.iter().copied())
}

#[test]
fn hosted_domains_come_from_the_directory_and_are_reread_after_their_ttl() {
    let dir = FakeDirectory::new();
    dir.answer(
        DOMAINS,
        vec![
            domain_entry("a", &["Hosted1.Example", "hosted2.example."]),
            domain_entry("b", &["bad domain!"]),
        ],
    );
    dir.answer(&filter_for("u@hosted3.example"), vec![person("u")]);
    dir.answer(&filter_for("u@hosted1.example"), vec![person("u")]);
    let clock = Arc::new(ManualClock::new());
    let r = hosted_from_directory(&dir, &clock);
    assert_eq!(
        route(&r, "u@hosted1.example"),
        deliver("maildir", NextHop::Local)
    );
    assert!(matches!(route(&r, "v@hosted2.example"), RouteDecision::Reject(s) if s.code == 550));
    assert_eq!(route(&r, "u@hosted3.example"), fallback_decision());
    let q = dir.queries();
    assert_eq!(
        q[0],
        Query {
            base: "ou=domains,o=hosting".into(),
            scope: Scope::Subtree,
            filter: DOMAINS.into(),
            attributes: vec!["associatedDomain".into()],
        }
    );
    assert_eq!(q.iter().filter(|q| q.filter == DOMAINS).count(), 1, "{q:?}");
    // A new hosted domain is seen once the set's TTL has passed.
    dir.answer(
        DOMAINS,
        vec![domain_entry("a", &["hosted1.example", "hosted3.example"])],
    );
    clock.advance(Duration::from_secs(299));
    assert_eq!(route(&r, "u@hosted3.example"), fallback_decision());
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        route(&r, "u@hosted3.example"),
        deliver("maildir", NextHop::Local)
    );
    assert_eq!(
        dir.queries().iter().filter(|q| q.filter == DOMAINS).count(),
        2
    );
}

#[test]
fn hosted_domains_unreadable_is_451_4_4_3_or_the_previous_set() {
    let dir = FakeDirectory::new();
    dir.answer(DOMAINS, vec![domain_entry("a", &["hosted1.example"])]);
    dir.answer(&filter_for("u@hosted1.example"), vec![person("u")]);
    let clock = Arc::new(ManualClock::new());
    let r = hosted_from_directory(&dir, &clock).cache(CachePolicy::DISABLED);
    // Never read: nothing can be decided.
    dir.fail(Some(DirectoryError::Unavailable(
        "connection refused".into(),
    )));
    let d = route(&r, "u@hosted1.example");
    assert!(
        matches!(&d, RouteDecision::TryLater(s) if s.code == 451 && s.enhanced.to_string() == "4.4.3"),
        "{d:?}"
    );
    let d = route(&r, "u@other.example");
    assert!(
        matches!(&d, RouteDecision::TryLater(s) if s.code == 451),
        "{d:?}"
    );
    // Read once, then the directory fails: the previous set is kept.
    dir.fail(None);
    assert_eq!(
        route(&r, "u@hosted1.example"),
        deliver("maildir", NextHop::Local)
    );
    clock.advance(Duration::from_secs(300));
    dir.fail(Some(DirectoryError::Unavailable(
        "connection refused".into(),
    )));
    let before = dir.count();
    assert_eq!(route(&r, "u@other.example"), fallback_decision());
    assert_eq!(dir.count(), before + 1, "one attempt to re-read the set");
    // ... and not asked again for HOSTED_DOMAINS_RETRY.
    clock.advance(HOSTED_DOMAINS_RETRY - Duration::from_millis(1));
    assert_eq!(route(&r, "u@other.example"), fallback_decision());
    assert_eq!(dir.count(), before + 1);
    clock.advance(Duration::from_millis(1));
    assert_eq!(route(&r, "u@other.example"), fallback_decision());
    assert_eq!(dir.count(), before + 2);
}

// ---- boundary ----

#[test]
fn boundary_validates_in_the_departments_directory_and_delivers_to_its_server() {
    let sales = FakeDirectory::new();
    let eng = FakeDirectory::new();
    sales.answer(
        &filter_for("sam@sales.example.com"),
        vec![person("sam").with("mailHost", ["internal.sales.example.com"])],
    );
    eng.answer(&filter_for("erin@eng.example.com"), vec![person("erin")]);
    let dept = |d: &str, dir: &Arc<FakeDirectory>, server: &str| {
        Department::new(
            domain(d),
            DirectorySearch::new(dir.clone(), BASE),
            "smtp-dept",
            host(server),
        )
    };
    let r = LaserRouter::new(LaserMode::Boundary {
        departments: vec![
            dept("sales.example.com", &sales, "mail.sales.example.com"),
            dept("eng.example.com", &eng, "mail.eng.example.com"),
        ],
    })
    .fallback(fallback());
    // The entry's mailHost is not used: the boundary hands mail to the department's server.
    assert_eq!(
        route(&r, "sam@sales.example.com"),
        deliver("smtp-dept", host("mail.sales.example.com"))
    );
    assert_eq!(
        route(&r, "erin@eng.example.com"),
        deliver("smtp-dept", host("mail.eng.example.com"))
    );
    // sam is not in engineering's directory.
    assert_eq!(
        route(&r, "sam@eng.example.com"),
        RouteDecision::Reject(status(
            550,
            (5, 1, 1),
            "<sam@eng.example.com>: unknown user"
        ))
    );
    assert_eq!(route(&r, "sam@example.com"), fallback_decision());
    assert_eq!(sales.count(), 1);
    assert_eq!(eng.count(), 2);
    // Validation asks for no attributes.
    assert!(sales.queries()[0].attributes.is_empty());
    // Each department has its own cache zone: the same key in two departments.
    sales.answer(&filter_for("x@sales.example.com"), vec![person("x")]);
    assert!(matches!(
        route(&r, "x@sales.example.com"),
        RouteDecision::Deliver(_)
    ));
    assert!(matches!(
        route(&r, "x@eng.example.com"),
        RouteDecision::Reject(_)
    ));
}
