use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Path::new("/data"))
}

#[test]
fn embedded_default_is_valid() {
    let c = Config::embedded(Path::new("/data")).expect("the embedded default must parse");
    assert_eq!(c.hostname, "localhost");
    assert_eq!(c.queue_path, Path::new("/data/queue"));
    let addrs: Vec<String> = c.listeners.iter().map(|l| l.address.to_string()).collect();
    assert_eq!(addrs, vec!["127.0.0.1:2525", "127.0.0.1:2587"]);
    assert_eq!(c.listeners[1].service, ListenerService::Submission);
    assert_eq!(
        c.channels[0].path.as_deref(),
        Some(Path::new("/data/maildir"))
    );
    assert_eq!(c.local_domains[0].to_ascii(), "localhost");
}

#[test]
fn unknown_key_names_its_line() {
    let text = EMBEDDED_DEFAULT.replace(
        "hostname = \"localhost\"",
        "hostname = \"localhost\"\nhostnme = \"x\"",
    );
    let err = parse(&text).expect_err("unknown key");
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert!(msg.contains("hostnme"), "{msg}");
    let line = text
        .lines()
        .position(|l| l.starts_with("hostnme"))
        .map(|i| i + 1)
        .expect("inserted line");
    assert!(msg.contains(&format!("line {line}")), "{msg}");
}

#[test]
fn bad_values_say_what_was_expected() {
    let cases = [
        (
            "\"127.0.0.0/8\"",
            "\"127.0.0.0/40\"",
            "routing.trusted_networks[0]",
        ),
        ("127.0.0.1:2525", "localhost:smtp", "listener[0].address"),
        (
            "local_channel = \"local\"",
            "local_channel = \"nowhere\"",
            "routing.local_channel",
        ),
        (
            "hostname = \"localhost\"",
            "hostname = \"bad host\"",
            "server.hostname",
        ),
        (
            "name = \"submission\"",
            "name = \"smtp\"",
            "listener[1].name",
        ),
    ];
    for (from, to, key) in cases {
        let text = EMBEDDED_DEFAULT.replacen(from, to, 1);
        assert_ne!(text, EMBEDDED_DEFAULT, "test case {from} did not apply");
        match parse(&text) {
            Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{to}: expected an invalid {key}, got {other:?}"),
        }
    }
    let err = parse(&EMBEDDED_DEFAULT.replace("service = \"relay\"", "service = \"relya\""))
        .expect_err("bad enum");
    assert!(err.to_string().contains("relya"), "{err}");
}

const RELAY: &str = r#"
[server]
hostname = "mx.example.org"
[queue]
path = "q"
retry_first = "5s"
retry_max = "10m"
max_lifetime = "2d"
delay_warning = "off"
[[listener]]
name = "in"
service = "relay"
address = "127.0.0.1:10025"
[routing]
trusted_networks = ["127.0.0.0/8"]
smarthost = "[127.0.0.1]:10026"
[[route]]
domain = ".example.com"
channel = "store"
[[channel]]
name = "out"
type = "smtp"
max_jobs = 5
[[channel]]
name = "store"
type = "lmtp"
host = "127.0.0.1:24"
"#;

#[test]
fn routes_channels_and_durations() {
    let c = parse(RELAY).expect("valid");
    assert_eq!(c.retry_first, Duration::from_secs(5));
    assert_eq!(c.retry_max, Duration::from_secs(600));
    assert_eq!(c.max_lifetime, Duration::from_secs(2 * 86400));
    assert_eq!(c.delay_warning, None);
    let d = c.table.default_route.as_ref().expect("a default route");
    assert_eq!(
        (d.channel.as_str(), d.smarthost.as_deref()),
        ("out", Some("[127.0.0.1]:10026"))
    );
    assert_eq!(c.table.routes[0].domain.as_deref(), Some(".example.com"));
    // No local channel: the host name is not made local.
    assert!(c.table.local_domains.is_empty());
    assert_eq!(c.channels[0].kind, ChannelType::Smtp);
    assert_eq!(c.channels[0].max_jobs, Some(5));
    assert_eq!(c.channels[1].host.as_ref().map(|h| h.port), Some(Some(24)));
    assert_eq!(c.max_hops, 100);
}

#[test]
fn host_ports_parse() {
    let hp = |s: &str| HostPort::parse(s).map(|h| (h.host, h.port));
    assert_eq!(hp("mail.example"), Some(("mail.example".into(), None)));
    assert_eq!(
        hp("mail.example:2525"),
        Some(("mail.example".into(), Some(2525)))
    );
    assert_eq!(hp("[::1]:25"), Some(("::1".into(), Some(25))));
    assert_eq!(hp("[10.0.0.1]"), Some(("10.0.0.1".into(), None)));
    assert_eq!(hp("host:notaport"), None);
    assert_eq!(hp("[::1]x"), None);
    assert_eq!(hp(""), None);
    assert_eq!(hp("::1"), Some(("::1".into(), None)));
    assert_eq!(hp("a:b:c"), None);
}

#[test]
fn bad_routing_values_name_their_key() {
    let cases = [
        (
            "retry_first = \"5s\"",
            "retry_first = \"5 seconds\"",
            "queue.retry_first",
        ),
        (
            "domain = \".example.com\"",
            "domain = \"not a domain\"",
            "routing",
        ),
        (
            "channel = \"store\"",
            "channel = \"nowhere\"",
            "route[0].channel",
        ),
        (
            "host = \"127.0.0.1:24\"",
            "host = \"a:b:c\"",
            "channel[1].host",
        ),
        ("max_jobs = 5", "max_jobs = 0", "channel[0].max_jobs"),
        (
            "type = \"smtp\"",
            "type = \"smtp client\"",
            "channel[0].type",
        ),
    ];
    for (from, to, key) in cases {
        let text = RELAY.replacen(from, to, 1);
        assert_ne!(text, RELAY, "test case {from} did not apply");
        match parse(&text) {
            Err(ConfigError::Invalid {
                key: k, message, ..
            }) => {
                assert_eq!(k, key, "{message}")
            }
            other => panic!("{to}: expected an invalid {key}, got {other:?}"),
        }
    }
    // A smarthost with no smtp channel to reach it.
    let text = RELAY.replace("type = \"smtp\"", "type = \"maildir\"\npath = \"m\"");
    match parse(&text) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "routing.smarthost"),
        other => panic!("{other:?}"),
    }
    // An lmtp channel without its store.
    let text = RELAY.replace("host = \"127.0.0.1:24\"\n", "");
    match parse(&text) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "channel[1].host"),
        other => panic!("{other:?}"),
    }
    // A submission listener must have users.
    let text = EMBEDDED_DEFAULT.replace("password_file = \"passwd\"\n", "");
    match parse(&text) {
        Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "listener[1].password_file"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn custom_channel_types_keep_their_settings() {
    let text = RELAY.replace(
        "name = \"store\"\ntype = \"lmtp\"\nhost = \"127.0.0.1:24\"",
        "name = \"store\"\ntype = \"archive\"\nsettings = { directory = \"a\" }",
    );
    let c = parse(&text).expect("valid");
    assert_eq!(c.channels[1].kind, ChannelType::Custom("archive".into()));
    assert_eq!(
        c.channels[1]
            .settings
            .get("directory")
            .and_then(|v| v.as_str()),
        Some("a")
    );
}

#[test]
fn the_benchmark_topology_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/smarthost.toml"
    ))
    .expect("examples/smarthost.toml");
    let c = parse(&text).expect("examples/smarthost.toml is valid");
    assert_eq!(c.listeners[0].address.to_string(), "127.0.0.1:10025");
    let d = c.table.default_route.expect("a default route");
    assert_eq!(d.smarthost.as_deref(), Some("127.0.0.1:10026"));
}

#[test]
fn a_route_to_an_unknown_peer_is_refused() {
    let text = RELAY.replace(
        "domain = \".example.com\"\nchannel = \"store\"",
        "domain = \".example.com\"\nchannel = \"out\"\npeer = \"hub\"",
    );
    assert_ne!(text, RELAY);
    match parse(&text) {
        Err(ConfigError::Invalid { key, message, .. }) => {
            assert_eq!(key, "route[0].peer", "{message}")
        }
        other => panic!("{other:?}"),
    }
    // With the peer defined, the route is fine.
    let text = text.replacen(
        "[[route]]",
        "[routing.peers.hub]\nhost = \"127.0.0.1:2526\"\n\n[[route]]",
        1,
    );
    let c = parse(&text).expect("valid with the peer");
    assert_eq!(c.table.routes[0].peer.as_deref(), Some("hub"));
}

const X400: &str = r#"
[x400]
mta_name = "mta-a"
country = "GB"
admd = " "
prmd = "PRMD-A"
listen = "127.0.0.1:10102"
tsel = "0x0001"

[[x400.peer]]
name = "mta-b"
address = "127.0.0.1:10103"
password = "secret-b"
dialogue_mode = "twa"

[[channel]]
name = "p1"
type = "p1"

[[channel]]
name = "x400-local"
type = "x400-store"
path = "x400"

[[x400_tree]]
name = "local"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-A/"
action = "local"
channel = "x400-local"
[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-B/"
channel = "p1"
mta = "mta-b"
"#;

#[test]
fn x400_section_and_trees_parse() {
    let c = parse(&format!("{EMBEDDED_DEFAULT}{X400}")).expect("valid");
    let x = c.x400.expect("[x400]");
    assert_eq!(x.mta_name, "mta-a");
    assert_eq!(x.tsel, vec![0, 1]);
    assert_eq!(x.listen, Some("127.0.0.1:10102".parse().expect("addr")));
    assert_eq!(x.peers[0].password.as_deref(), Some("secret-b"));
    assert!(x.peers[0].two_way_alternate);
    assert_eq!(x.routing.trees.len(), 1);
    assert!(c.channels.iter().any(|c| c.kind == ChannelType::P1));
    assert_eq!(
        c.channels
            .iter()
            .find(|c| c.kind == ChannelType::X400Store)
            .and_then(|c| c.path.as_deref()),
        Some(Path::new("/data/x400"))
    );
}

#[test]
fn x400_mistakes_are_named() {
    let bad = |from: &str, to: &str, key: &str| {
        let text = format!("{EMBEDDED_DEFAULT}{}", X400.replace(from, to));
        let err = parse(&text).expect_err(to);
        assert!(err.to_string().contains(key), "{key}: {err}");
    };
    bad(
        "country = \"GB\"",
        "country = \"Great Britain\"",
        "x400.country",
    );
    bad(
        "mta = \"mta-b\"",
        "mta = \"mta-c\"",
        "x400_tree[0].route[1].mta",
    );
    bad(
        "channel = \"p1\"\nmta",
        "channel = \"p2\"\nmta",
        "x400_tree[0].route[1].channel",
    );
    bad("tsel = \"0x0001\"", "tsel = \"0x001\"", "x400.tsel");
    bad(
        "match = \"/C=GB/ADMD= /PRMD=PRMD-B/\"",
        "match = \"/C=GB/Z=1/\"",
        "x400_tree",
    );
    // A p1 channel without [x400].
    let text = format!("{EMBEDDED_DEFAULT}\n[[channel]]\nname = \"p1\"\ntype = \"p1\"\n");
    let err = parse(&text).expect_err("p1 without [x400]");
    assert!(err.to_string().contains("[x400]"), "{err}");
}

#[test]
fn p3_users_and_stores_parse_and_reach_the_p3_settings() {
    let p3 = X400.replace(
        "tsel = \"0x0001\"",
        "tsel = \"0x0001\"\np3_listen = \"127.0.0.1:10104\"\npassword = \"ours\"",
    ) + r#"
[[x400.user]]
address = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Smith/"
password = "ua-secret"

[[x400.store]]
address_prefix = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/"
address = "127.0.0.1:10105"
"#;
    let c = parse(&format!("{EMBEDDED_DEFAULT}{p3}")).expect("valid");
    let x = c.x400.as_ref().expect("[x400]");
    assert_eq!(x.p3_listen, Some("127.0.0.1:10104".parse().expect("addr")));
    assert_eq!(x.users.len(), 1);
    assert_eq!(x.users[0].password, "ua-secret");
    let s = crate::x400::p3_settings(&c).expect("P3 settings");
    assert_eq!(s.users[0].password, b"ua-secret");
    // The store binds with [x400] password when it has none of its own.
    assert_eq!(s.stores[0].password, "ours");
    assert_eq!(
        s.stores[0].address,
        "127.0.0.1:10105".parse().expect("addr")
    );
    // A bad user address is named.
    let bad = p3.replace(
        "address = \"/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Smith/\"",
        "address = \"Smith\"",
    );
    let err = parse(&format!("{EMBEDDED_DEFAULT}{bad}")).expect_err("bad address");
    assert!(err.to_string().contains("x400.user"), "{err}");
}

#[test]
fn p3_may_share_the_p1_listener_and_has_its_own_selector() {
    // The same address as `listen`: kept as given (the switch serves both on one listener).
    let shared = X400.replace(
        "tsel = \"0x0001\"",
        "tsel = \"0x0001\"\np3_listen = \"127.0.0.1:10102\"\np3_tsel = \"P3\"",
    );
    let c = parse(&format!("{EMBEDDED_DEFAULT}{shared}")).expect("valid");
    let x = c.x400.as_ref().expect("[x400]");
    assert_eq!(x.p3_listen, x.listen);
    assert_eq!(x.p3_tsel, b"P3");
    let s = crate::x400::p3_settings(&c).expect("P3 settings");
    assert_eq!(s.tsel, b"P3");
    // Another address on the same port with a wildcard would fail at bind time: said now.
    let overlap = X400.replace(
        "tsel = \"0x0001\"",
        "tsel = \"0x0001\"\np3_listen = \"0.0.0.0:10102\"",
    );
    let err = parse(&format!("{EMBEDDED_DEFAULT}{overlap}")).expect_err("overlap");
    assert!(err.to_string().contains("x400.p3_listen"), "{err}");
    // A bad P3 selector is named.
    let bad = X400.replace("tsel = \"0x0001\"", "tsel = \"0x0001\"\np3_tsel = \"0x1\"");
    let err = parse(&format!("{EMBEDDED_DEFAULT}{bad}")).expect_err("bad selector");
    assert!(err.to_string().contains("x400.p3_tsel"), "{err}");
}

#[test]
fn session_timeouts_are_read_and_cannot_be_off() {
    let c = parse(EMBEDDED_DEFAULT).expect("default");
    assert_eq!(c.command_timeout, Duration::from_secs(300));
    assert_eq!(c.data_timeout, Duration::from_secs(300));
    assert_eq!(c.data_time_limit, Some(Duration::from_secs(1800)));
    assert_eq!(c.junk_command_limit, 100);
    let text = EMBEDDED_DEFAULT.replace(
        "hostname = \"localhost\"",
        "hostname = \"localhost\"\ncommand_timeout = \"2m\"\ndata_timeout = \"90s\"\n\
         data_time_limit = \"off\"\njunk_command_limit = 20",
    );
    let c = parse(&text).expect("timeouts");
    assert_eq!(c.junk_command_limit, 20);
    assert_eq!(c.command_timeout, Duration::from_secs(120));
    assert_eq!(c.data_timeout, Duration::from_secs(90));
    assert_eq!(c.data_time_limit, None);
    for key in ["command_timeout", "data_timeout"] {
        let text = EMBEDDED_DEFAULT.replace(
            "hostname = \"localhost\"",
            &format!("hostname = \"localhost\"\n{key} = \"off\""),
        );
        let err = parse(&text).expect_err("off");
        assert!(err.to_string().contains(&format!("server.{key}")), "{err}");
    }
}
