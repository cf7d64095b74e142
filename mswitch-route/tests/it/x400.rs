//! X.400 routing trees read from a real OpenLDAP slapd on loopback: the RFC 1801 layout with
//! stock schemas (`applicationProcess` entries named `cn=<std-or pair>`), the blank ADMD and
//! an escaped comma in DNs, tree order, a change made with ldapmodify seen by the next load
//! and swapped into the router, a bad entry and a missing tree refused, a directory that is
//! down.

use std::time::Duration;

use mswitch_core::address::ORAddress;
use mswitch_core::envelope::NextHop;
use mswitch_core::route::RouteDecision;
use mswitch_route::laser::{LdapConfig, LdapDirectory};
use mswitch_route::x400::{
    EntryProblem, RouteAction, X400DirectorySettings, X400LoadError, X400Router, X400Routing, load,
};
use mswitch_testkit::free_port;
use mswitch_testkit::slapd::Slapd;

const BASE: &str = "ou=x400-routing,dc=example,dc=com";

/// Two trees: "local" (nodes down to a person, a balanced set, a refusal) and "default".
const TREES: &str = "\
dn: ou=x400-routing,dc=example,dc=com
objectClass: organizationalUnit
ou: x400-routing

dn: cn=local,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: local
description: This MTA's own routing tree

dn: cn=C=GB,cn=local,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: C=GB

dn: cn=ADMD=$\\ ,cn=C=GB,cn=local,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: ADMD=$ 

dn: cn=PRMD=Isode,cn=ADMD=$\\ ,cn=C=GB,cn=local,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: PRMD=Isode
description: channel=p1
description: mta=mta-b
description: alternates=mta-c

dn: cn=O=Example\\, Ltd,cn=PRMD=Isode,cn=ADMD=$\\ ,cn=C=GB,cn=local,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: O=Example, Ltd
description: channel=p1
description: mta=mta-x1
description: alternates=mta-x2, mta-x3
description: balance=true
description: weights=2, 1, 1

dn: cn=S=Smi*,cn=O=Example\\, Ltd,cn=PRMD=Isode,cn=ADMD=$\\ ,cn=C=GB,cn=local,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: S=Smi*
description: action=local
description: channel=ms

dn: cn=O=Closed,cn=PRMD=Isode,cn=ADMD=$\\ ,cn=C=GB,cn=local,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: O=Closed
description: action=refuse

dn: cn=ADMD=,cn=C=GB,cn=local,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: ADMD=
description: channel=p1
description: host=no-admd.example:102

dn: cn=default,ou=x400-routing,dc=example,dc=com
objectClass: applicationProcess
cn: default
description: channel=p1
description: mta=gateway

";

fn start() -> Slapd {
    Slapd::start(free_port(), &format!("{}{TREES}", Slapd::BASE_LDIF))
}

fn ldap(url: String) -> LdapDirectory {
    LdapDirectory::new(
        LdapConfig::new(url).timeouts(Duration::from_secs(2), Duration::from_secs(2)),
    )
    .expect("valid LDAP configuration")
}

fn or(text: &str) -> ORAddress {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn first_hop(routing: &X400Routing, address: &str) -> Option<NextHop> {
    routing
        .route_or(&or(address))
        .and_then(|r| r.route())
        .map(|r| r.next_hop)
}

fn peer(name: &str) -> NextHop {
    NextHop::Peer(name.to_owned())
}

#[tokio::test]
async fn trees_from_the_directory_route_like_the_table() {
    let slapd = start();
    let dir = ldap(slapd.url());
    let settings = X400DirectorySettings::new(BASE, ["local", "default"]);
    let routing = load(&dir, &settings).await.expect("loads");

    let names: Vec<&str> = routing.trees().iter().map(|t| t.name()).collect();
    assert_eq!(names, ["local", "default"]);
    assert_eq!(routing.trees()[0].nodes().len(), 5);

    // PRMD node, with its ordered alternate.
    let isode = or("/C=GB/ADMD= /PRMD=Isode/O=Other/S=Jones/");
    let hops: Vec<NextHop> = routing
        .alternates(&isode, 1)
        .into_iter()
        .map(|r| r.next_hop)
        .collect();
    assert_eq!(hops, [peer("mta-b"), peer("mta-c")]);

    // The organization (its name holds a comma): a balanced set of three.
    let example = or("/C=GB/ADMD= /PRMD=Isode/O=Example, Ltd/S=Jones/");
    let route = routing.route_or(&example).expect("routed");
    assert_eq!(route.tree, "local");
    assert_eq!(
        route.pattern.to_string(),
        "/C=GB/ADMD= /PRMD=Isode/O=Example, Ltd/"
    );
    let RouteAction::Relay(relay) = &route.action else {
        panic!("not a relay: {:?}", route.action);
    };
    assert_eq!(relay.tiers.len(), 1);
    let weights: Vec<u32> = relay.tiers[0].iter().map(|d| d.weight).collect();
    assert_eq!(weights, [2, 1, 1]);
    assert_eq!(routing.alternates(&example, 9).len(), 3);
    assert_eq!(
        routing.alternates(&example, 9),
        routing.alternates(&example, 9)
    );

    // A glob at the mailbox level: local delivery.
    assert_eq!(
        first_hop(&routing, "/C=GB/ADMD= /PRMD=Isode/O=Example, Ltd/S=Smith/"),
        Some(NextHop::Local)
    );
    // A refusing node.
    assert!(matches!(
        routing.decide(&or("/C=GB/ADMD= /PRMD=Isode/O=Closed/S=X/")),
        RouteDecision::Reject(ref s) if s.enhanced.to_string() == "5.1.1"
    ));
    // No ADMD at all: the `ADMD=` (absent) node, apart from the blank one.
    assert_eq!(
        first_hop(&routing, "/C=GB/PRMD=Isode/"),
        Some(NextHop::Host {
            host: "no-admd.example".into(),
            port: Some(102)
        })
    );
    // A blank-ADMD address with nothing deeper in the local tree: the default tree (the
    // C=GB and ADMD=$ entries are steps without routes).
    assert_eq!(
        first_hop(&routing, "/C=GB/ADMD= /PRMD=Other/"),
        Some(peer("gateway"))
    );
    assert_eq!(first_hop(&routing, "/C=US/ADMD=X/"), Some(peer("gateway")));

    // Only the local tree: no default.
    let local_only = load(&dir, &X400DirectorySettings::new(BASE, ["local"]))
        .await
        .expect("loads");
    assert!(matches!(
        local_only.decide(&or("/C=US/ADMD=X/")),
        RouteDecision::Reject(ref s) if s.enhanced.to_string() == "5.1.2"
    ));
}

#[tokio::test]
async fn a_change_in_the_directory_is_seen_by_the_next_load() {
    let slapd = start();
    let dir = ldap(slapd.url());
    let settings = X400DirectorySettings::new(BASE, ["local", "default"]);
    let router = X400Router::new(load(&dir, &settings).await.expect("loads"));
    let jones = "/C=GB/ADMD= /PRMD=Isode/O=Other/S=Jones/";
    assert_eq!(first_hop(&router.snapshot(), jones), Some(peer("mta-b")));

    // The same directory gives the same snapshot: nothing to replace.
    assert!(!router.replace(load(&dir, &settings).await.expect("loads")));

    slapd.ldapmodify(
        "\
dn: cn=PRMD=Isode,cn=ADMD=$\\ ,cn=C=GB,cn=local,ou=x400-routing,dc=example,dc=com
changetype: modify
replace: description
description: channel=p1
description: mta=mta-new

dn: cn=O=Other,cn=PRMD=Isode,cn=ADMD=$\\ ,cn=C=GB,cn=local,ou=x400-routing,dc=example,dc=com
changetype: add
objectClass: applicationProcess
cn: O=Other
description: channel=p1
description: mta=mta-other
",
    );
    assert!(router.replace(load(&dir, &settings).await.expect("loads")));
    assert_eq!(
        first_hop(&router.snapshot(), jones),
        Some(peer("mta-other"))
    );
    assert_eq!(
        first_hop(&router.snapshot(), "/C=GB/ADMD= /PRMD=Isode/"),
        Some(peer("mta-new"))
    );

    // A bad entry refuses the whole load, naming the entry; the router keeps its snapshot.
    slapd.ldapmodify(
        "\
dn: cn=Z=1,cn=default,ou=x400-routing,dc=example,dc=com
changetype: add
objectClass: applicationProcess
cn: Z=1
description: channel=p1
description: mta=x
",
    );
    match load(&dir, &settings).await {
        Err(X400LoadError::Entry {
            tree,
            dn,
            problem: EntryProblem::Pattern(_),
        }) => {
            assert_eq!(tree, "default");
            assert!(dn.to_ascii_lowercase().starts_with("cn=z"), "{dn}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first_hop(&router.snapshot(), jones),
        Some(peer("mta-other"))
    );

    // A tree that does not exist.
    assert!(matches!(
        load(&dir, &X400DirectorySettings::new(BASE, ["local", "nowhere"])).await,
        Err(X400LoadError::MissingTree { ref tree, .. }) if tree == "nowhere"
    ));
}

#[tokio::test]
async fn a_directory_that_is_down_is_an_error_not_an_empty_routing() {
    let mut slapd = start();
    let dir = ldap(slapd.url());
    let settings = X400DirectorySettings::new(BASE, ["local"]);
    assert!(load(&dir, &settings).await.is_ok());
    slapd.stop();
    assert!(matches!(
        load(&dir, &settings).await,
        Err(X400LoadError::Directory { ref tree, .. }) if tree == "local"
    ));
}
