//! Unit tests of X.400 routing: patterns, longest match, tree order, alternates and
//! balancing, the TOML configuration and the routers.

use std::collections::HashMap;
use std::sync::Arc;

use futures::executor::block_on;
use mswitch_core::address::{Address, Mailbox, ORAddress};
use mswitch_core::envelope::{NextHop, ReversePath, Route};
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::memory::StaticRouter;
use mswitch_core::route::{RouteContext, RouteDecision, Router};
use mswitch_core::submission::{ClientInfo, Service, SubmissionContext};
use proptest::prelude::*;

use super::*;

fn or(text: &str) -> ORAddress {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn pattern(text: &str) -> NodePattern {
    NodePattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn peer(name: &str) -> NextHop {
    NextHop::Peer(name.to_owned())
}

fn config(text: &str) -> X400RoutingConfig {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
}

fn routing(text: &str) -> X400Routing {
    config(text).build().unwrap_or_else(|e| panic!("{e}"))
}

fn build_error(text: &str) -> String {
    match config(text).build() {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// The first-choice next hop for `address`, or what refuses it.
fn hop(routing: &X400Routing, address: &str) -> Result<NextHop, String> {
    match routing.decide(&or(address)) {
        RouteDecision::Deliver(route) => Ok(route.next_hop),
        RouteDecision::Reject(status) => Err(format!("{} {}", status.code, status.enhanced)),
        other => Err(format!("{other:?}")),
    }
}

fn route_with(router: &dyn Router, address: &Address) -> RouteDecision {
    let ctx = SubmissionContext {
        channel: ChannelId::new("p1-in"),
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

/// Three trees: this MTA's own, one shared with other MTAs, a default.
const TREES: &str = r#"
[[x400_tree]]
name = "local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Isode/"
channel = "p1"
mta = "mta-isode"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Isode/O=Example/"
channel = "p1"
mta = "mta-example"
alternates = ["mta-example-2", "mta-isode"]

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Isode/O=Example/OU=Sales/"
action = "local"
channel = "ms"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Isode/O=Example/OU=Sales/S=Smith/G=John/"
channel = "p1"
mta = "mta-john"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Isode/O=Closed/"
action = "refuse"

[[x400_tree]]
name = "shared"

[[x400_tree.route]]
match = "/C=GB/"
channel = "p1"
mta = "mta-uk"

[[x400_tree.route]]
match = "/C=GB/ADMD=*/PRMD=Isode/O=Other/"
channel = "p1"
mta = "mta-other"

[[x400_tree.route]]
match = "/C=FR/ADMD=ATLAS/"
channel = "p1"
host = "x400.atlas.example:102"

[[x400_tree]]
name = "default"

[[x400_tree.route]]
match = "/"
channel = "p1"
mta = "mta-world"
"#;

#[test]
fn the_deepest_matching_node_of_a_tree_wins() {
    let r = routing(TREES);
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=Isode/S=Jones/"),
        Ok(peer("mta-isode"))
    );
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=Isode/O=Example/S=Jones/"),
        Ok(peer("mta-example"))
    );
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=Isode/O=Example/OU=Sales/S=Jones/"),
        Ok(NextHop::Local)
    );
    assert_eq!(
        hop(
            &r,
            "/C=GB/ADMD= /PRMD=Isode/O=Example/OU=Sales/S=Smith/G=John/"
        ),
        Ok(peer("mta-john"))
    );
    // The mailbox-level node needs both S and G.
    assert_eq!(
        hop(
            &r,
            "/C=GB/ADMD= /PRMD=Isode/O=Example/OU=Sales/S=Smith/G=Jane/"
        ),
        Ok(NextHop::Local)
    );
    // Case and spaces do not matter.
    assert_eq!(
        hop(
            &r,
            "/c=gb/admd= /prmd=ISODE/o=  example /ou=SALES/s=smith/g=JOHN/"
        ),
        Ok(peer("mta-john"))
    );
    let local = r
        .route_or(&or("/C=GB/ADMD= /PRMD=Isode/O=Example/OU=Sales/S=X/"))
        .and_then(|r| r.route());
    assert_eq!(
        local,
        Some(Route {
            channel: ChannelId::new("ms"),
            next_hop: NextHop::Local,
            local: true
        })
    );
}

#[test]
fn trees_are_tried_in_order() {
    let r = routing(TREES);
    let route = r
        .route_or(&or("/C=GB/ADMD=BT/PRMD=Isode/O=Other/"))
        .expect("routed");
    // The local tree has nothing for ADMD BT (its nodes say ADMD blank): the shared tree.
    assert_eq!(route.tree, "shared");
    assert_eq!(
        route.pattern.to_string(),
        "/C=GB/ADMD=*/PRMD=Isode/O=Other/"
    );
    // The local tree wins even when the shared tree has a deeper node.
    let route = r
        .route_or(&or("/C=GB/ADMD= /PRMD=Isode/O=Other/"))
        .expect("routed");
    assert_eq!(
        (route.tree.as_str(), route.route().map(|r| r.next_hop)),
        ("local", Some(peer("mta-isode")))
    );
    assert_eq!(hop(&r, "/C=GB/ADMD=BT/O=Somewhere/"), Ok(peer("mta-uk")));
    assert_eq!(
        hop(&r, "/C=FR/ADMD=Atlas/PRMD=X/"),
        Ok(NextHop::Host {
            host: "x400.atlas.example".into(),
            port: Some(102)
        })
    );
    assert_eq!(hop(&r, "/C=US/ADMD=Gold 400/"), Ok(peer("mta-world")));
    assert_eq!(
        r.route_or(&or("/C=US/ADMD= /")).map(|r| r.tree),
        Some("default".into())
    );
}

#[test]
fn refused_and_unroutable_addresses() {
    let r = routing(TREES);
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=Isode/O=Closed/S=Smith/"),
        Err("550 5.1.1".into())
    );
    let route = r
        .route_or(&or("/C=GB/ADMD= /PRMD=Isode/O=Closed/"))
        .expect("a refusing node is a match");
    assert_eq!(route.route(), None);
    assert_eq!(route.action, RouteAction::Refuse);

    let without_default = routing(
        &TREES[..TREES
            .find("[[x400_tree]]\nname = \"default\"")
            .expect("default tree")],
    );
    assert_eq!(without_default.route_or(&or("/C=US/ADMD= /")), None);
    assert_eq!(
        hop(&without_default, "/C=US/ADMD= /"),
        Err("550 5.1.2".into())
    );
    assert!(
        without_default
            .alternates(&or("/C=US/ADMD= /"), 7)
            .is_empty()
    );
    assert_eq!(
        hop(&X400Routing::default(), "/C=GB/ADMD= /"),
        Err("550 5.1.2".into())
    );
}

#[test]
fn globs_wildcards_and_absent_attributes() {
    let r = routing(
        r#"
[[x400_tree]]
name = "t"
[[x400_tree.route]]
match = "/C=GB/ADMD=*/"
channel = "p1"
mta = "any-admd"
[[x400_tree.route]]
match = "/C=GB/ADMD= /"
channel = "p1"
mta = "blank-admd"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=/"
channel = "p1"
mta = "no-prmd"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=*/O=Acme/"
channel = "p1"
mta = "acme-anywhere"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Acme/O=Acme/"
channel = "p1"
mta = "acme-exact"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Acme/O=Acme/S=Smi*/"
channel = "p1"
mta = "smi-star"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Acme/O=Acme/S=*son/"
channel = "p1"
mta = "star-son"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Acme/O=Acme/S=J?nes/"
channel = "p1"
mta = "j-one-nes"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Acme/O=Acme/S=Who$?/"
channel = "p1"
mta = "literal-question"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Acme/O=Acme/OU=/S=*/"
channel = "p1"
mta = "no-unit-person"
"#,
    );
    // The blank ADMD is a literal: ADMD=BT is not blank.
    assert_eq!(hop(&r, "/C=GB/ADMD= /PRMD=Y/"), Ok(peer("blank-admd")));
    assert_eq!(hop(&r, "/C=GB/ADMD=BT/"), Ok(peer("any-admd")));
    // `*` needs the attribute: no ADMD at all matches neither.
    assert_eq!(hop(&r, "/C=GB/"), Err("550 5.1.2".into()));
    // PRMD absent, explicitly.
    assert_eq!(hop(&r, "/C=GB/ADMD= /O=Foo/"), Ok(peer("no-prmd")));
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=X/O=Foo/"),
        Ok(peer("blank-admd"))
    );
    // Exact beats `*` at the same depth.
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=X/O=Acme/"),
        Ok(peer("acme-anywhere"))
    );
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=Acme/O=Acme/"),
        Ok(peer("acme-exact"))
    );
    // Globs on the surname.
    let acme = "/C=GB/ADMD= /PRMD=Acme/O=Acme/OU=Lab/";
    assert_eq!(hop(&r, &format!("{acme}S=Smith/")), Ok(peer("smi-star")));
    assert_eq!(hop(&r, &format!("{acme}S=smi/")), Ok(peer("smi-star")));
    assert_eq!(hop(&r, &format!("{acme}S=Johnson/")), Ok(peer("star-son")));
    assert_eq!(hop(&r, &format!("{acme}S=Jones/")), Ok(peer("j-one-nes")));
    assert_eq!(hop(&r, &format!("{acme}S=Janes/")), Ok(peer("j-one-nes")));
    assert_eq!(hop(&r, &format!("{acme}S=Joanes/")), Ok(peer("acme-exact")));
    assert_eq!(
        hop(&r, &format!("{acme}S=Who?/")),
        Ok(peer("literal-question"))
    );
    assert_eq!(hop(&r, &format!("{acme}S=Whom/")), Ok(peer("acme-exact")));
    // Two globs of the same length match "Smithson": the order is by text, the same every
    // time ("S=*son" sorts before "S=Smi*").
    assert_eq!(hop(&r, &format!("{acme}S=Smithson/")), Ok(peer("star-son")));
    // Without a unit, the OU-absent node (deeper than none, as deep as S) decides.
    let no_unit = "/C=GB/ADMD= /PRMD=Acme/O=Acme/S=Brown/";
    assert_eq!(hop(&r, no_unit), Ok(peer("no-unit-person")));
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=Acme/O=Acme/OU=X/S=Brown/"),
        Ok(peer("acme-exact"))
    );
}

#[test]
fn mailbox_level_routes_by_cn_and_domain_defined_attributes() {
    let r = routing(
        r#"
[[x400_tree]]
name = "t"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=P/O=O/"
channel = "p1"
mta = "org"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=P/O=O/CN=Help Desk/"
action = "local"
channel = "ms"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=P/O=O/DD.RFC-822=*(a)gateway.example/"
channel = "smtp-gw"
mta = "gw"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=P/O=O/UA-ID=12 34/"
channel = "p1"
mta = "numeric"
"#,
    );
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=P/O=O/CN=help  desk/"),
        Ok(NextHop::Local)
    );
    assert_eq!(
        hop(
            &r,
            "/C=GB/ADMD= /PRMD=P/O=O/DD.rfc-822=joe(a)gateway.example/"
        ),
        Ok(peer("gw"))
    );
    assert_eq!(
        hop(
            &r,
            "/C=GB/ADMD= /PRMD=P/O=O/DD.RFC-822=joe(a)elsewhere.example/"
        ),
        Ok(peer("org"))
    );
    assert_eq!(
        hop(&r, "/C=GB/ADMD= /PRMD=P/O=O/UA-ID=1234/"),
        Ok(peer("numeric"))
    );
}

#[test]
fn patterns_parse_print_and_refuse_nonsense() {
    let p = pattern("C=GB; ADMD= ; PRMD=Isode; OU=A; OU=B; S=Smi*; DDA:rfc-822=x$/y");
    assert_eq!(
        p.to_string(),
        "/C=GB/ADMD= /PRMD=Isode/OU1=A/OU2=B/S=Smi*/DD.RFC-822=x$/y/"
    );
    assert_eq!(NodePattern::parse(&p.to_string()), Ok(p.clone()));
    assert_eq!(p.depth(), OrAttribute::DomainDefined("X".into()).depth());
    assert_eq!(pattern("/").depth(), 0);
    assert_eq!(pattern(""), NodePattern::any());
    assert_eq!(pattern("/O=x/C=GB/"), pattern("/C=GB/O=X/"));
    assert_eq!(pattern("/ADMD=$ /").to_string(), "/ADMD= /");
    assert_eq!(pattern("/ADMD=   /"), pattern("/ADMD= /"));
    assert_ne!(pattern("/ADMD= /"), pattern("/ADMD=/"));
    assert_eq!(
        pattern("/S=a$?b/").constraints()[0].1.kind(),
        PatternKind::Exact
    );
    assert_eq!(
        pattern("/S=a*b/").constraints()[0].1.kind(),
        PatternKind::Glob
    );
    assert_eq!(pattern("/S=*/").constraints()[0].1.kind(), PatternKind::Any);
    assert_eq!(
        pattern("/S=/").constraints()[0].1.kind(),
        PatternKind::Absent
    );
    assert_eq!(pattern("/OU3=x/OU=y/").to_string(), "/OU3=x/OU4=y/");

    let errors = [
        ("/C=GB/X=1/", "unknown O/R address keyword \"X\""),
        ("/C=GB/C=FR/", "C is given twice"),
        (
            "/C=GB/nonsense/",
            "\"nonsense\" is not a KEYWORD=value pair",
        ),
        (
            "/OU=a/OU=b/OU=c/OU=d/OU=e/",
            "more than 4 organizational units",
        ),
        ("/S=a@b/", "S: '@' is not allowed"),
        ("/UA-ID=12a/", "UA-ID: 'a' is not allowed"),
        ("/C=GB/S=abc$", "S: a `$` at the end quotes nothing"),
        ("/DD.=x/", "unknown O/R address keyword \"DD.\""),
    ];
    for (text, message) in errors {
        match NodePattern::parse(text) {
            Ok(p) => panic!("{text} parsed as {p}"),
            Err(e) => assert_eq!(e.to_string(), message, "{text}"),
        }
    }
    assert!(matches!(
        NodePattern::parse(&"/S=x".repeat(2000)),
        Err(PatternError::TooLong { .. })
    ));
}

#[test]
fn ordered_alternates_fall_back_in_order() {
    let r = routing(TREES);
    let address = or("/C=GB/ADMD= /PRMD=Isode/O=Example/S=Jones/");
    let hops: Vec<NextHop> = r
        .alternates(&address, 42)
        .into_iter()
        .map(|route| route.next_hop)
        .collect();
    assert_eq!(
        hops,
        [
            peer("mta-example"),
            peer("mta-example-2"),
            peer("mta-isode")
        ]
    );
    // The key does not matter for an ordered list.
    for key in [0, 1, u64::MAX] {
        assert_eq!(r.alternates(&address, key)[0].next_hop, peer("mta-example"));
    }
    let route = r.route_or(&address).expect("routed");
    assert_eq!(route.routes().len(), 3);
    assert!(
        route
            .routes()
            .iter()
            .all(|r| r.channel == ChannelId::new("p1") && r.local)
    );
}

const BALANCED: &str = r#"
[[x400_tree]]
name = "t"
[[x400_tree.route]]
match = "/C=GB/"
channel = "p1"
mta = "a"
alternates = ["b", "c"]
balance = true
weights = [2, 1, 1]
backups = ["z"]
local = false
"#;

#[test]
fn balancing_is_deterministic_and_follows_the_weights() {
    let r = routing(BALANCED);
    let address = or("/C=GB/ADMD= /S=X/");
    let mut firsts: HashMap<NextHop, usize> = HashMap::new();
    for key in 0..8000u64 {
        let routes = r.alternates(&address, key);
        assert_eq!(routes, r.alternates(&address, key), "key {key}");
        let hops: Vec<NextHop> = routes.iter().map(|r| r.next_hop.clone()).collect();
        assert_eq!(hops.len(), 4);
        assert_eq!(hops[3], peer("z"), "backups come after the whole set");
        let mut set = hops[..3].to_vec();
        set.sort();
        assert_eq!(set, [peer("a"), peer("b"), peer("c")]);
        assert!(routes.iter().all(|r| !r.local));
        *firsts.entry(hops[0].clone()).or_default() += 1;
    }
    // Weights 2:1:1: a first about half the time, b and c a quarter each.
    let share = |h: &str| firsts.get(&peer(h)).copied().unwrap_or(0) as f64 / 8000.0;
    assert!((share("a") - 0.5).abs() < 0.03, "{firsts:?}");
    assert!((share("b") - 0.25).abs() < 0.03, "{firsts:?}");
    assert!((share("c") - 0.25).abs() < 0.03, "{firsts:?}");

    // Known values, so that a change of hashing is seen (the choice must be stable across
    // releases: a message keeps its MTA).
    assert_eq!(balance_key(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(balance_key(b"a"), 0xaf63_dc4c_8601_ec8c);
    let first = |key| r.alternates(&address, key)[0].next_hop.clone();
    let pinned: Vec<NextHop> = (0..6).map(first).collect();
    assert_eq!(pinned, (0..6).map(first).collect::<Vec<_>>());

    // The route decision balances by the address: the same address, the same MTA.
    let decided = hop(&r, "/C=GB/ADMD= /S=X/");
    assert_eq!(decided, hop(&r, "/C=GB/ADMD= /S=X/"));
    assert_eq!(
        decided.ok(),
        r.route_or(&address)
            .and_then(|r| r.route())
            .map(|r| r.next_hop)
    );
    assert_eq!(address_key(&address), address_key(&or("/c=gb/admd= /s=x/")));
}

#[test]
fn removing_an_mta_from_a_balanced_set_moves_only_its_share() {
    let with_c = routing(BALANCED);
    let without_c = routing(
        &BALANCED
            .replace(r#"["b", "c"]"#, r#"["b"]"#)
            .replace("[2, 1, 1]", "[2, 1]"),
    );
    let address = or("/C=GB/ADMD= /S=X/");
    for key in 0..2000u64 {
        let before = with_c.alternates(&address, key)[0].next_hop.clone();
        let after = without_c.alternates(&address, key)[0].next_hop.clone();
        if before != peer("c") {
            assert_eq!(before, after, "key {key}");
        }
    }
}

#[test]
fn toml_errors_name_the_tree_and_the_route() {
    let cases = [
        (
            r#"
[[x400_tree]]
name = "local"
[[x400_tree.route]]
match = "/C=GB/"
channel = "p1"
mta = "a"
[[x400_tree.route]]
match = "/C=GB/Q=x/Z=1/"
channel = "p1"
mta = "a"
"#,
            r#"x400_tree "local", route 2 ("/C=GB/Q=x/Z=1/"): bad match: unknown O/R address keyword "Z""#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\nmta = \"a\"\n",
            r#"x400_tree "t", route 1 ("/C=GB/"): no channel"#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\nchannel = \"p1\"\n",
            r#"x400_tree "t", route 1 ("/C=GB/"): needs mta, host or action"#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\nchannel = \"p1\"\nmta = \"a\"\nhost = \"h\"\n",
            r#"x400_tree "t", route 1 ("/C=GB/"): a relay needs one of mta and host"#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\naction = \"local\"\nchannel = \"ms\"\nmta = \"a\"\n",
            r#"x400_tree "t", route 1 ("/C=GB/"): mta is not allowed with action local"#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\naction = \"refuse\"\nchannel = \"ms\"\n",
            r#"x400_tree "t", route 1 ("/C=GB/"): channel is not allowed with action refuse"#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\nchannel = \"p1\"\nmta = \"a\"\nweights = [1]\n",
            r#"x400_tree "t", route 1 ("/C=GB/"): weights needs balance = true"#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\nchannel = \"p1\"\nmta = \"a\"\nalternates = [\"b\"]\nbalance = true\nweights = [1]\n",
            r#"x400_tree "t", route 1 ("/C=GB/"): weights: 2 weights of at least 1 needed (mta and alternates), [1] given"#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\nchannel = \"p1\"\nmta = \"a\"\nalternates = [\"b\", \"a\"]\n",
            r#"x400_tree "t", route 1 ("/C=GB/"): destination "peer:a" given twice"#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\nchannel = \"p1\"\nhost = \"x400.example:99999\"\n",
            r#"x400_tree "t", route 1 ("/C=GB/"): bad destination "x400.example:99999""#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/C=GB/\"\nchannel = \"p1\"\nmta = \"a\"\n[[x400_tree.route]]\nmatch = \"/c=gb\"\nchannel = \"p1\"\nmta = \"b\"\n",
            r#"routing tree "t": two routes for /C=GB/"#,
        ),
        (
            "[[x400_tree]]\nname = \"t\"\n[[x400_tree]]\nname = \"T\"\n",
            r#"two routing trees named "T""#,
        ),
        (
            "[[x400_tree]]\nname = \" \"\n",
            "a routing tree needs a name",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(build_error(text), message, "{text}");
    }
    // Unknown keys are refused by serde.
    let typo = toml::from_str::<X400RoutingConfig>(
        "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/\"\nchanel = \"p1\"\n",
    );
    assert!(typo.is_err());
    let bad_action = toml::from_str::<X400RoutingConfig>(
        "[[x400_tree]]\nname = \"t\"\n[[x400_tree.route]]\nmatch = \"/\"\naction = \"bounce\"\n",
    );
    assert!(bad_action.is_err());
    assert_eq!(
        X400RoutingConfig::default().build(),
        Ok(X400Routing::default())
    );
}

#[test]
fn hosts_parse_with_and_without_ports() {
    let host_of = |text: &str| {
        let route = X400RouteConfig {
            pattern: "/".into(),
            channel: Some("p1".into()),
            host: Some(text.into()),
            ..X400RouteConfig::default()
        };
        route.node().map(|n| n.action.routes(0)[0].next_hop.clone())
    };
    assert_eq!(
        host_of("mta.example"),
        Ok(NextHop::Host {
            host: "mta.example".into(),
            port: None
        })
    );
    assert_eq!(
        host_of("[2001:db8::1]:102"),
        Ok(NextHop::Host {
            host: "2001:db8::1".into(),
            port: Some(102)
        })
    );
    for bad in ["", "a b", "a:b:c", "[::1", "[::1]x", "h:0", "h:"] {
        assert!(host_of(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_router_routes_x400_and_hands_mailboxes_to_its_fallback() {
    let x400 = Address::X400(Box::new(or("/C=GB/ADMD= /PRMD=Isode/O=Example/S=Jones/")));
    let mailbox = Address::Mailbox(Mailbox::parse("joe@example.org").expect("valid"));
    let routing = routing(TREES);

    let decision = route_with(&routing, &x400);
    assert!(matches!(
        decision,
        RouteDecision::Deliver(Route { ref next_hop, .. }) if *next_hop == peer("mta-example")
    ));
    assert!(matches!(
        route_with(&routing, &mailbox),
        RouteDecision::Reject(ref s) if s.code == 550 && s.enhanced.to_string() == "5.1.3"
    ));

    let router = X400Router::new(routing.clone());
    assert!(matches!(
        route_with(&router, &mailbox),
        RouteDecision::Reject(ref s) if s.enhanced.to_string() == "5.1.2"
    ));
    let smtp = Route {
        channel: ChannelId::new("smtp"),
        next_hop: NextHop::Domain("example.org".into()),
        local: false,
    };
    let table = StaticRouter::new().default_route(smtp.clone());
    let router = X400Router::new(routing.clone()).fallback(Arc::new(table));
    assert_eq!(route_with(&router, &mailbox), RouteDecision::Deliver(smtp));
    assert_eq!(route_with(&router, &x400), decision);

    // A new snapshot is used from the next recipient on.
    assert!(!router.replace(routing.clone()));
    assert!(router.replace(X400Routing::default()));
    assert!(matches!(
        route_with(&router, &x400),
        RouteDecision::Reject(ref s) if s.enhanced.to_string() == "5.1.2"
    ));
    assert_eq!(router.snapshot().trees().len(), 0);
}

/// The example of docs/routing.md ("X.400 routing", "TOML"), and its table of recipients.
const DOCUMENTED: &str = r#"
[[x400_tree]]
name = "local"                     # tried first

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Isode/"
channel = "p1"
mta = "mta-b"                      # NextHop::Peer("mta-b")
alternates = ["mta-c"]             # then mta-c

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Isode/O=Example/"
channel = "p1"
mta = "mta-x1"
alternates = ["mta-x2", "mta-x3"]
balance = true                     # one balanced set ...
weights = [2, 1, 1]                # ... mta-x1 gets half the recipients
backups = ["mta-b"]                # when all three fail

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Isode/O=Example/OU=Sales/S=Smi*/"
action = "local"                   # delivered here: NextHop::Local, local = true
channel = "ms"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=Isode/O=Closed/"
action = "refuse"                  # 550 5.1.1

[[x400_tree.route]]
match = "/C=GB/PRMD=Isode/ADMD=/"  # no ADMD at all
channel = "p1"
host = "x400.example.net:102"      # NextHop::Host

[[x400_tree]]
name = "default"                   # tried when "local" has no match

[[x400_tree.route]]
match = "/"
channel = "p1"
mta = "gateway"
local = false                      # only trusted or authenticated clients may send here
"#;

#[test]
fn the_documented_example_routes_as_documented() {
    let r = routing(DOCUMENTED);
    let isode = "/C=GB/ADMD= /PRMD=Isode/";
    let hops = |address: &str| -> Vec<NextHop> {
        r.alternates(&or(address), 0)
            .into_iter()
            .map(|route| route.next_hop)
            .collect()
    };
    assert_eq!(
        hops(&format!("{isode}O=Other/S=Jones/")),
        [peer("mta-b"), peer("mta-c")]
    );
    let mut example = hops(&format!("{isode}O=Example/S=Jones/"));
    assert_eq!(example.pop(), Some(peer("mta-b")));
    example.sort();
    assert_eq!(example, [peer("mta-x1"), peer("mta-x2"), peer("mta-x3")]);
    assert_eq!(
        hop(&r, &format!("{isode}O=Example/OU=Sales/S=Smith/")),
        Ok(NextHop::Local)
    );
    assert_eq!(
        r.route_or(&or(&format!("{isode}O=Example/OU=Sales/S=Jones/")))
            .map(|route| route.pattern.to_string()),
        Some(format!("{isode}O=Example/"))
    );
    assert_eq!(
        hop(&r, &format!("{isode}O=Closed/S=Smith/")),
        Err("550 5.1.1".into())
    );
    assert_eq!(
        hop(&r, "/C=GB/PRMD=Isode/O=X/"),
        Ok(NextHop::Host {
            host: "x400.example.net".into(),
            port: Some(102)
        })
    );
    let bt = r
        .route_or(&or("/C=GB/ADMD=BT/PRMD=Isode/"))
        .expect("routed");
    assert_eq!(bt.tree, "default");
    let route = bt.route().expect("a relay");
    assert_eq!((route.next_hop, route.local), (peer("gateway"), false));
}

/// A strategy for addresses over a small alphabet, so that patterns hit often.
fn small_address() -> impl Strategy<Value = ORAddress> {
    let value = prop::sample::select(vec!["a", "b", "ab", "ba", "A B"]);
    (
        prop::option::of(prop::sample::select(vec!["GB", "FR"])),
        prop::option::of(prop::sample::select(vec![" ", "x"])),
        prop::option::of(value.clone()),
        prop::option::of(value.clone()),
        prop::collection::vec(value.clone(), 0..=2),
        prop::option::of(value),
    )
        .prop_filter_map("an address needs an attribute", |(c, a, p, o, ous, s)| {
            let mut text = String::new();
            for (k, v) in [("C", c), ("ADMD", a), ("PRMD", p), ("O", o)] {
                if let Some(v) = v {
                    text.push_str(&format!("/{k}={v}"));
                }
            }
            for ou in ous {
                text.push_str(&format!("/OU={ou}"));
            }
            if let Some(s) = s {
                text.push_str(&format!("/S={s}"));
            }
            text.push('/');
            ORAddress::parse_std_or(&text).ok()
        })
}

/// A strategy for patterns over the same alphabet.
fn small_pattern() -> impl Strategy<Value = NodePattern> {
    let value = prop::sample::select(vec!["", "*", "a", "b", "a*", "*a", "?", "a b", " "]);
    let keys = prop::sample::subsequence(vec!["C", "ADMD", "PRMD", "O", "OU1", "OU2", "S"], 0..=4);
    (keys, prop::collection::vec(value, 4)).prop_map(|(keys, values)| {
        let pairs: Vec<String> = keys
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        NodePattern::from_pairs(pairs.iter().map(String::as_str)).expect("valid pattern")
    })
}

proptest! {
    /// The chosen node matches, and no matching node is more specific; every node more
    /// specific than the chosen one does not match.
    #[test]
    fn lookup_is_the_most_specific_match(
        patterns in prop::collection::vec(small_pattern(), 1..8),
        address in small_address(),
    ) {
        let mut unique: Vec<NodePattern> = Vec::new();
        for p in patterns {
            if !unique.contains(&p) {
                unique.push(p);
            }
        }
        let nodes: Vec<RoutingNode> = unique
            .iter()
            .enumerate()
            .map(|(i, p)| RoutingNode {
                pattern: p.clone(),
                action: RouteAction::Relay(Relay::ordered("p1", peer(&i.to_string()), [])),
            })
            .collect();
        let tree = RoutingTree::new("t", nodes).expect("unique patterns");
        let found = tree.lookup(&address);
        let matching: Vec<&NodePattern> = unique.iter().filter(|p| p.matches(&address)).collect();
        match found {
            None => prop_assert!(matching.is_empty()),
            Some(node) => {
                prop_assert!(node.pattern.matches(&address));
                for other in matching {
                    prop_assert!(other.depth() <= node.pattern.depth());
                    prop_assert!(node.pattern.cmp_specificity(other) != std::cmp::Ordering::Greater);
                }
            }
        }
    }

    /// Printing a pattern and parsing it back gives the same pattern, which matches the same
    /// addresses.
    #[test]
    fn patterns_round_trip_through_text(p in small_pattern(), address in small_address()) {
        let again = NodePattern::parse(&p.to_string()).expect("printed patterns parse");
        prop_assert_eq!(&again, &p);
        prop_assert_eq!(again.matches(&address), p.matches(&address));
    }

    /// An exact pattern made from an address matches it (X.400 matching is reflexive).
    #[test]
    fn an_address_matches_its_own_pattern(address in small_address()) {
        let p = NodePattern::parse(&address.to_string()).expect("an address is a pattern");
        prop_assert!(p.matches(&address));
    }
}
