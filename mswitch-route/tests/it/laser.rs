//! LASER routing against a real OpenLDAP slapd on loopback: the three modes, unknown and
//! ambiguous addresses, a directory that is down or hangs, filter-injection attempts, bind,
//! the connection pool, and a change made with ldapmodify picked up after the cache TTL.

use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mswitch_core::address::{Address, Domain, Mailbox};
use mswitch_core::envelope::{NextHop, ReversePath, Route};
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::memory::StaticRouter;
use mswitch_core::route::{RouteContext, RouteDecision, Router};
use mswitch_core::status::Status;
use mswitch_core::submission::{ClientInfo, Service, SubmissionContext};
use mswitch_route::laser::{
    CachePolicy, Department, Directory, DirectoryError, DirectorySearch, DomainSource,
    EntryRouting, FilterTemplate, HostedDomains, LaserMode, LaserRouter, LdapConfig, LdapDirectory,
    ManualClock, Scope, escape_value,
};
use mswitch_testkit::free_port;
use mswitch_testkit::slapd::Slapd;

const SUFFIX: &str = "dc=example,dc=com";

/// People of example.com, and entries whose addresses contain filter specials.
const PEOPLE: &str = "\
dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: alice
cn: Alice Example
sn: Example
mail: alice@example.com
mailLocalAddress: a.example@example.com
mailHost: mailstore1.example.com

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: bob
cn: Bob Example
sn: Example
mail: bob@example.com
mailRoutingAddress: bob@mailstore2.example.com
mailHost: mailstore2.example.com

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol Example
sn: Example
mail: carol@example.com

dn: uid=xavier,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: xavier
cn: Xavier Example
sn: Example
mail: xavier@example.com
employeeType: x400
mailHost: mta.x400.example.net

dn: uid=dup1,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dup1
cn: Dup One
sn: One
mail: dup@example.com

dn: uid=dup2,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: dup2
cn: Dup Two
sn: Two
mail: dup2@example.com
mailLocalAddress: dup@example.com

dn: cn=staff,ou=groups,dc=example,dc=com
objectClass: groupOfNames
objectClass: extensibleObject
cn: staff
mail: staff@example.com
member: uid=alice,ou=people,dc=example,dc=com

dn: uid=star,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: star
cn: Star
sn: Star
mail: a*@example.com
mailHost: star.example.com

dn: uid=paren,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: paren
cn: Paren
sn: Paren
mail: \"p(q)\"@example.com
mailHost: paren.example.com

dn: uid=backslash,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: backslash
cn: Backslash
sn: Backslash
mail: \"b\\\\s\"@example.com
mailHost: backslash.example.com

";

fn start_people() -> Slapd {
    Slapd::start(free_port(), &format!("{}{PEOPLE}", Slapd::BASE_LDIF))
}

fn ldap(slapd: &Slapd) -> Arc<LdapDirectory> {
    Arc::new(
        LdapDirectory::new(
            LdapConfig::new(slapd.url())
                .timeouts(Duration::from_secs(2), Duration::from_secs(2))
                .max_connections(2),
        )
        .expect("valid LDAP configuration"),
    )
}

fn domain(s: &str) -> Domain {
    Domain::parse(s).expect("valid domain")
}

fn addr(s: &str) -> Address {
    Address::Mailbox(Mailbox::parse(s).unwrap_or_else(|e| panic!("{s}: {e}")))
}

async fn route(router: &LaserRouter, to: &str) -> RouteDecision {
    let ctx = SubmissionContext {
        channel: ChannelId::new("smtp-in"),
        service: Service::Relay,
        client: ClientInfo::default(),
        now: Timestamp(0),
    };
    let sender = ReversePath::Null;
    router
        .route(
            &addr(to),
            RouteContext {
                submission: &ctx,
                sender: &sender,
            },
        )
        .await
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

fn unknown(address: &str) -> RouteDecision {
    RouteDecision::Reject(Status::new(
        550,
        (5, 1, 1),
        format!("<{address}>: unknown user"),
    ))
}

fn fallback() -> Arc<dyn Router> {
    Arc::new(StaticRouter::new().default_route(Route {
        channel: ChannelId::new("relay"),
        next_hop: NextHop::Domain("via-fallback".into()),
        local: false,
    }))
}

fn fallback_decision() -> RouteDecision {
    RouteDecision::Deliver(Route {
        channel: ChannelId::new("relay"),
        next_hop: NextHop::Domain("via-fallback".into()),
        local: false,
    })
}

fn routing() -> EntryRouting {
    EntryRouting::new("smtp")
        .default_local("maildir")
        .channel_attribute(Some("employeeType"))
}

fn single(directory: Arc<dyn Directory>) -> LaserRouter {
    LaserRouter::new(LaserMode::SingleDomain {
        domains: vec![domain("example.com")],
        search: DirectorySearch::new(directory, SUFFIX),
        routing: routing(),
    })
    .fallback(fallback())
}

fn assert_451_4_4_3(d: &RouteDecision) {
    assert!(
        matches!(d, RouteDecision::TryLater(s)
            if s.code == 451 && s.enhanced.to_string() == "4.4.3"),
        "expected 451 4.4.3, got {d:?}"
    );
}

#[tokio::test]
async fn single_domain_every_rule() {
    let slapd = start_people();
    let r = single(ldap(&slapd));
    // mailHost → the host on the host channel (by mail and by mailLocalAddress).
    let alice = deliver("smtp", host("mailstore1.example.com"));
    assert_eq!(route(&r, "alice@example.com").await, alice);
    assert_eq!(route(&r, "a.example@example.com").await, alice);
    // The directory compares mail case-insensitively.
    assert_eq!(route(&r, "ALICE@Example.Com").await, alice);
    // mailRoutingAddress → a rewrite.
    assert_eq!(
        route(&r, "bob@example.com").await,
        RouteDecision::Expand(vec![addr("bob@mailstore2.example.com")])
    );
    // The channel attribute, with the mail host as next hop.
    assert_eq!(
        route(&r, "xavier@example.com").await,
        deliver("x400", host("mta.x400.example.net"))
    );
    // No delivery information → the default local channel (a person, a group).
    assert_eq!(
        route(&r, "carol@example.com").await,
        deliver("maildir", NextHop::Local)
    );
    assert_eq!(
        route(&r, "staff@example.com").await,
        deliver("maildir", NextHop::Local)
    );
    // Unknown.
    assert_eq!(
        route(&r, "nobody@example.com").await,
        unknown("nobody@example.com")
    );
    // Ambiguous: dup1's mail and dup2's mailLocalAddress.
    assert_eq!(
        route(&r, "dup@example.com").await,
        RouteDecision::Reject(Status::new(
            550,
            (5, 1, 4),
            "<dup@example.com>: ambiguous address, 2 directory entries match"
        ))
    );
    // Not LASER's.
    assert_eq!(route(&r, "alice@example.net").await, fallback_decision());
}

#[tokio::test]
async fn filter_injection_attempts_match_only_literally() {
    let slapd = start_people();
    let dir = ldap(&slapd);
    // The control: unescaped, `a*` matches alice and the literal a*@ entry. The escaped
    // lookups below would match these too if escaping failed.
    let raw = dir
        .search(SUFFIX, Scope::Subtree, "(mail=a*)", &["mail"])
        .await
        .expect("search");
    let mut dns: Vec<&str> = raw.iter().map(|e| e.dn()).collect();
    dns.sort();
    assert_eq!(
        dns,
        [
            "uid=alice,ou=people,dc=example,dc=com",
            "uid=star,ou=people,dc=example,dc=com"
        ]
    );

    let r = single(dir.clone()).cache(CachePolicy::DISABLED);
    // Literal matches of entries whose addresses contain the specials.
    assert_eq!(
        route(&r, "\"a*\"@example.com").await,
        deliver("smtp", host("star.example.com"))
    );
    assert_eq!(
        route(&r, "a*@example.com").await,
        deliver("smtp", host("star.example.com"))
    );
    assert_eq!(
        route(&r, "\"p(q)\"@example.com").await,
        deliver("smtp", host("paren.example.com"))
    );
    assert_eq!(
        route(&r, "\"b\\\\s\"@example.com").await,
        deliver("smtp", host("backslash.example.com"))
    );
    // Wildcards and filter fragments match nothing.
    for attempt in [
        "*@example.com",
        "\"*\"@example.com",
        "\"alice)(mail=*\"@example.com",
        "\"*)(|(mail=*\"@example.com",
        "\"alice@example.com)(|(mail=*\"@example.com",
        "\"\\\\2a\"@example.com",
        "\"al\\\\\"@example.com",
        "\"p(q\"@example.com",
    ] {
        let m = Mailbox::parse(attempt).unwrap_or_else(|e| panic!("{attempt}: {e}"));
        assert_eq!(
            route(&r, attempt).await,
            unknown(&m.to_string()),
            "{attempt}"
        );
    }
    // NUL cannot be in a mailbox. Escaped, it reaches the directory as \00; for a
    // directoryString attribute (uid) slapd then matches nothing. (For IA5String attributes
    // such as mail, slapd 2.5 ends the value at the NUL: `(mail=alice@example.com\00xyz)`
    // finds alice. That is why a value with NUL is never searched: FilterTemplate::build
    // refuses it.)
    let filter = format!("(uid={})", escape_value("alice\0zzz"));
    assert_eq!(filter, "(uid=alice\\00zzz)");
    let found = dir
        .search(SUFFIX, Scope::Subtree, &filter, &["uid"])
        .await
        .expect("search");
    assert!(found.is_empty(), "{found:?}");
    // A template with {local}: the local part escaped the same way.
    let by_uid = LaserRouter::new(LaserMode::SingleDomain {
        domains: vec![domain("example.com")],
        search: DirectorySearch::new(dir.clone(), SUFFIX)
            .filter(FilterTemplate::new("(uid={local})").expect("template")),
        routing: routing(),
    });
    assert_eq!(
        route(&by_uid, "alice@example.com").await,
        deliver("smtp", host("mailstore1.example.com"))
    );
    assert_eq!(
        route(&by_uid, "*@example.com").await,
        unknown("*@example.com")
    );
}

#[tokio::test]
async fn hosted_domains_from_the_directory_and_a_new_one_after_the_ttl() {
    let ldif = format!(
        "{}dn: ou=domains,dc=example,dc=com
objectClass: organizationalUnit
ou: domains

dn: dc=hosted1,ou=domains,dc=example,dc=com
objectClass: domain
objectClass: domainRelatedObject
dc: hosted1
associatedDomain: hosted1.example
associatedDomain: hosted2.example

dn: uid=u1,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: u1
cn: U One
sn: One
mail: u1@hosted1.example
mailLocalAddress: info@hosted2.example
mailHost: store-a.example.com

",
        Slapd::BASE_LDIF
    );
    let slapd = Slapd::start(free_port(), &ldif);
    let dir = ldap(&slapd);
    let clock = Arc::new(ManualClock::new());
    let r = LaserRouter::new(LaserMode::Hosted {
        domains: HostedDomains::Directory(
            DomainSource::new(dir.clone(), format!("ou=domains,{SUFFIX}"))
                .ttl(Duration::from_secs(120)),
        ),
        search: DirectorySearch::new(dir.clone(), format!("ou=people,{SUFFIX}")),
        routing: routing(),
    })
    .clock(clock.clone())
    .cache(CachePolicy::DISABLED)
    .fallback(fallback());
    assert_eq!(
        route(&r, "u1@hosted1.example").await,
        deliver("smtp", host("store-a.example.com"))
    );
    assert_eq!(
        route(&r, "info@hosted2.example").await,
        deliver("smtp", host("store-a.example.com"))
    );
    assert_eq!(
        route(&r, "u2@hosted1.example").await,
        unknown("u2@hosted1.example")
    );
    assert_eq!(route(&r, "u1@hosted3.example").await, fallback_decision());

    slapd.ldapmodify(
        "dn: dc=hosted3,ou=domains,dc=example,dc=com
changetype: add
objectClass: domain
objectClass: domainRelatedObject
dc: hosted3
associatedDomain: hosted3.example

dn: uid=u3,ou=people,dc=example,dc=com
changetype: add
objectClass: inetOrgPerson
uid: u3
cn: U Three
sn: Three
mail: u3@hosted3.example
",
    );
    clock.advance(Duration::from_secs(119));
    assert_eq!(route(&r, "u3@hosted3.example").await, fallback_decision());
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        route(&r, "u3@hosted3.example").await,
        deliver("maildir", NextHop::Local)
    );
}

fn department_ldif(people: &[(&str, &str)]) -> String {
    let mut ldif = Slapd::BASE_LDIF.to_owned();
    for (uid, mail) in people {
        ldif.push_str(&format!(
            "dn: uid={uid},ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
uid: {uid}
cn: {uid}
sn: {uid}
mail: {mail}
mailHost: internal-{uid}.example.com

"
        ));
    }
    ldif
}

#[tokio::test]
async fn boundary_one_directory_per_department() {
    let sales = Slapd::start(
        free_port(),
        &department_ldif(&[
            ("sam", "sam@sales.example.com"),
            ("sue", "sue@sales.example.com"),
        ]),
    );
    let eng = Slapd::start(
        free_port(),
        &department_ldif(&[("erin", "erin@eng.example.com")]),
    );
    let dept = |d: &str, slapd: &Slapd, server: &str| {
        Department::new(
            domain(d),
            DirectorySearch::new(ldap(slapd), SUFFIX),
            "smtp-dept",
            NextHop::Host {
                host: server.to_owned(),
                port: Some(2525),
            },
        )
    };
    let r = LaserRouter::new(LaserMode::Boundary {
        departments: vec![
            dept("sales.example.com", &sales, "mx.sales.example.com"),
            dept("eng.example.com", &eng, "mx.eng.example.com"),
        ],
    })
    .fallback(fallback());
    let to_sales = RouteDecision::Deliver(Route {
        channel: ChannelId::new("smtp-dept"),
        next_hop: NextHop::Host {
            host: "mx.sales.example.com".into(),
            port: Some(2525),
        },
        local: true,
    });
    assert_eq!(route(&r, "sam@sales.example.com").await, to_sales);
    assert_eq!(route(&r, "sue@sales.example.com").await, to_sales);
    assert!(matches!(
        route(&r, "erin@eng.example.com").await,
        RouteDecision::Deliver(Route { next_hop: NextHop::Host { ref host, .. }, .. })
            if host == "mx.eng.example.com"
    ));
    // Each address is validated in its own department's directory.
    assert_eq!(
        route(&r, "erin@sales.example.com").await,
        unknown("erin@sales.example.com")
    );
    assert_eq!(
        route(&r, "sam@eng.example.com").await,
        unknown("sam@eng.example.com")
    );
    assert_eq!(route(&r, "sam@example.com").await, fallback_decision());
    // One department down: only its addresses wait.
    drop(eng);
    assert_451_4_4_3(&route(&r, "erin2@eng.example.com").await);
    assert_eq!(route(&r, "sam@sales.example.com").await, to_sales);
}

#[tokio::test]
async fn directory_down_is_451_4_4_3_and_the_pool_reconnects_after_a_restart() {
    let mut slapd = start_people();
    let dir = ldap(&slapd);
    let r = single(dir.clone()).cache(CachePolicy::DISABLED);
    let alice = deliver("smtp", host("mailstore1.example.com"));
    for _ in 0..5 {
        assert_eq!(route(&r, "alice@example.com").await, alice);
    }
    assert_eq!(dir.connections_opened(), 1, "one connection, reused");
    assert_eq!(dir.idle_connections(), 1);

    slapd.stop();
    let started = Instant::now();
    for to in ["alice@example.com", "nobody@example.com"] {
        assert_451_4_4_3(&route(&r, to).await);
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    slapd.restart();
    assert_eq!(route(&r, "alice@example.com").await, alice);
    assert_eq!(
        route(&r, "nobody@example.com").await,
        unknown("nobody@example.com")
    );
    assert_eq!(
        dir.connections_opened(),
        2,
        "one new connection after the restart"
    );
}

#[tokio::test]
async fn pooled_connection_killed_under_it_is_replaced_transparently() {
    let mut slapd = start_people();
    let dir = ldap(&slapd);
    let r = single(dir.clone()).cache(CachePolicy::DISABLED);
    let alice = deliver("smtp", host("mailstore1.example.com"));
    assert_eq!(route(&r, "alice@example.com").await, alice);
    // The directory restarts between two lookups: the pooled connection is dead, and the
    // lookup succeeds on a new one without an error reaching the caller.
    slapd.restart();
    assert_eq!(route(&r, "alice@example.com").await, alice);
    assert_eq!(dir.connections_opened(), 2);
}

#[tokio::test]
async fn a_directory_that_never_answers_times_out_as_451_4_4_3() {
    // Accepts connections (the kernel completes the handshake) and never answers.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    let dir = Arc::new(
        LdapDirectory::new(
            LdapConfig::new(format!("ldap://127.0.0.1:{port}/"))
                .timeouts(Duration::from_millis(500), Duration::from_millis(500)),
        )
        .expect("valid configuration"),
    );
    let r = single(dir.clone());
    let started = Instant::now();
    let d = route(&r, "alice@example.com").await;
    let took = started.elapsed();
    assert_451_4_4_3(&d);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let RouteDecision::TryLater(s) = d else {
        unreachable!()
    };
    assert!(s.text.contains("timed out"), "{s}");
    assert_eq!(r.cached(), 0, "failures are not cached");
    drop(listener);
}

#[tokio::test]
async fn bind_with_credentials_and_a_wrong_password() {
    let slapd = start_people();
    let good = Arc::new(
        LdapDirectory::new(LdapConfig::new(slapd.url()).bind(Slapd::ROOT_DN, Slapd::ROOT_PASSWORD))
            .expect("valid"),
    );
    assert_eq!(
        route(&single(good), "alice@example.com").await,
        deliver("smtp", host("mailstore1.example.com"))
    );
    let bad = Arc::new(
        LdapDirectory::new(LdapConfig::new(slapd.url()).bind(Slapd::ROOT_DN, "wrong"))
            .expect("valid"),
    );
    let e = bad
        .search(SUFFIX, Scope::Subtree, "(mail=alice@example.com)", &[])
        .await
        .expect_err("bind must fail");
    assert!(
        matches!(&e, DirectoryError::Refused { code: 49, .. }),
        "invalidCredentials expected, got {e:?}"
    );
    assert_451_4_4_3(&route(&single(bad), "alice@example.com").await);
}

#[tokio::test]
async fn the_pool_is_bounded_under_concurrent_lookups() {
    let slapd = start_people();
    let dir = ldap(&slapd); // at most 2 connections
    let r = Arc::new(single(dir.clone()).cache(CachePolicy::DISABLED));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let to = if i % 2 == 0 {
                "alice@example.com"
            } else {
                "nobody@example.com"
            };
            (i, route(&r, to).await)
        }));
    }
    for t in tasks {
        let (i, d) = t.await.expect("task");
        if i % 2 == 0 {
            assert_eq!(d, deliver("smtp", host("mailstore1.example.com")));
        } else {
            assert_eq!(d, unknown("nobody@example.com"));
        }
    }
    assert!(
        dir.connections_opened() <= 2,
        "{}",
        dir.connections_opened()
    );
    assert!(dir.idle_connections() <= 2);
}

#[tokio::test]
async fn ldapmodify_changes_are_seen_after_the_cache_ttl() {
    let slapd = start_people();
    let clock = Arc::new(ManualClock::new());
    let r = single(ldap(&slapd))
        .clock(clock.clone())
        .cache(CachePolicy {
            positive_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            max_entries: 1000,
        });
    assert_eq!(
        route(&r, "alice@example.com").await,
        deliver("smtp", host("mailstore1.example.com"))
    );
    assert_eq!(
        route(&r, "newbie@example.com").await,
        unknown("newbie@example.com")
    );
    slapd.ldapmodify(
        "dn: uid=alice,ou=people,dc=example,dc=com
changetype: modify
replace: mailHost
mailHost: mailstore9.example.com

dn: uid=newbie,ou=people,dc=example,dc=com
changetype: add
objectClass: inetOrgPerson
uid: newbie
cn: Newbie
sn: Newbie
mail: newbie@example.com
",
    );
    assert!(
        slapd
            .ldapsearch("(uid=alice)", &["mailHost"])
            .contains("mailstore9")
    );
    // Within the TTLs, the cached answers stand.
    clock.advance(Duration::from_secs(9));
    assert_eq!(
        route(&r, "alice@example.com").await,
        deliver("smtp", host("mailstore1.example.com"))
    );
    assert_eq!(
        route(&r, "newbie@example.com").await,
        unknown("newbie@example.com")
    );
    // The negative TTL passes first, then the positive one.
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        route(&r, "newbie@example.com").await,
        deliver("maildir", NextHop::Local)
    );
    assert_eq!(
        route(&r, "alice@example.com").await,
        deliver("smtp", host("mailstore1.example.com"))
    );
    clock.advance(Duration::from_secs(50));
    assert_eq!(
        route(&r, "alice@example.com").await,
        deliver("smtp", host("mailstore9.example.com"))
    );
}

#[tokio::test]
async fn ldapmodify_change_seen_with_the_system_clock() {
    let slapd = start_people();
    let r = single(ldap(&slapd)).cache(CachePolicy {
        positive_ttl: Duration::from_millis(500),
        negative_ttl: Duration::from_millis(500),
        max_entries: 1000,
    });
    assert_eq!(
        route(&r, "alice@example.com").await,
        deliver("smtp", host("mailstore1.example.com"))
    );
    slapd.ldapmodify(
        "dn: uid=alice,ou=people,dc=example,dc=com
changetype: modify
delete: mailHost
",
    );
    assert_eq!(
        route(&r, "alice@example.com").await,
        deliver("smtp", host("mailstore1.example.com")),
        "still cached"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        route(&r, "alice@example.com").await,
        deliver("maildir", NextHop::Local)
    );
}
