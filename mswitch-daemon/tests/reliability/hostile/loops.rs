//! Loops and directory injection through running switches: two switches that relay to each
//! other until the hop count stops the message; lists that contain each other; an MX that
//! points back at the switch (real DNS, dnsmasq); LDAP filter metacharacters in addresses
//! looked up in a real slapd.

use std::time::Duration;

use mswitch_testkit::dnsmasq::{Dnsmasq, Record};
use mswitch_testkit::slapd::Slapd;
use mswitch_testkit::{free_port, wait_until};

use super::{Raw, WAIT, message};
use crate::common::Daemon;

/// A switch `name`.test, local domain `name`.local, whose default route is 127.0.0.1:`next`,
/// relaying for loopback.
fn relay_to(name: &str, port: u16, next: u16) -> String {
    format!(
        r#"[server]
hostname = "{name}.test"

[queue]
path = "queue"
retry_first = "1s"
retry_max = "2s"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = ["{name}.local"]
local_channel = "local"
trusted_networks = ["127.0.0.0/8"]
smarthost = "127.0.0.1:{next}"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"

[[channel]]
name = "out"
type = "smtp"
tls = "none"
"#
    )
}

fn send(port: u16, from: &str, to: &[&str], subject: &str) {
    let mut c = Raw::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect(&format!("MAIL FROM:<{from}>"), 250);
    for r in to {
        c.expect(&format!("RCPT TO:<{r}>"), 250);
    }
    c.expect("DATA", 354);
    c.send(format!("{}.\r\n", message(from, to[0], subject)).as_bytes());
    let end = c.reply();
    assert_eq!(end.code, 250, "{}", c.transcript);
    c.expect("QUIT", 221);
}

fn read(p: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).expect("read a message")).into_owned()
}

/// Switch A relays far.test to B, B relays it back to A: each hop adds a Received header,
/// and the switch that sees more than 100 (the default `max_hops`) refuses it with 554 5.4.6.
/// The sender gets one non-delivery notice; the loop ends.
#[test]
fn two_switches_relaying_to_each_other_stop_at_the_hop_limit() {
    let (a_port, b_port) = (free_port(), free_port());
    let a = Daemon::start(&relay_to("a", a_port, b_port), &[a_port]);
    let b = Daemon::start(&relay_to("b", b_port, a_port), &[b_port]);
    send(a_port, "sender@a.local", &["someone@far.test"], "ping pong");
    let notice = wait_until(Duration::from_secs(120), || {
        a.maildir_messages("sender", "a.local").into_iter().next()
    })
    .unwrap_or_else(|| panic!("no notice\n--- A ---\n{}\n--- B ---\n{}", a.log(), b.log()));
    let text = read(&notice);
    assert!(text.contains("Status: 5.4.6"), "{text}");
    // About a hundred hops, split between the two.
    std::thread::sleep(Duration::from_secs(2));
    let (la, lb) = (a.log(), b.log());
    let received = |log: &str| {
        log.lines()
            .filter(|l| l.contains(" received ") && l.contains("from=<sender@a.local>"))
            .count()
    };
    let hops = received(&la) + received(&lb);
    eprintln!("{hops} hops");
    assert!((95..=105).contains(&hops), "{hops} hops");
    let refused = format!("{la}{lb}")
        .lines()
        .filter(|l| l.contains("message refused: mail loop"))
        .count();
    assert_eq!(refused, 1, "one refusal ends it");
    // Nothing is still going round.
    let before = received(&a.log()) + received(&b.log());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(received(&a.log()) + received(&b.log()), before);
}

/// Lists that contain each other (and themselves): each member gets one copy, the loop is
/// refused with 554 5.4.6 and reported to the list owner.
#[test]
fn lists_that_contain_each_other_deliver_once_and_stop() {
    let port = free_port();
    let config = format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = ["local.test"]
local_channel = "local"

[[list]]
address = "red@local.test"
owner = "red-owner@local.test"
members = ["ann@local.test", "blue@local.test"]

[[list]]
address = "blue@local.test"
owner = "blue-owner@local.test"
members = ["ben@local.test", "red@local.test", "blue@local.test"]

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#
    );
    let daemon = Daemon::start(&config, &[port]);
    send(
        port,
        "poster@elsewhere.test",
        &["red@local.test"],
        "list loop",
    );
    assert!(
        daemon.wait_for_log(
            &["delivery", "to=<ben@local.test>", "status=\"delivered\""],
            1,
            WAIT
        ),
        "{}",
        daemon.log()
    );
    let notices = wait_until(WAIT, || {
        let n = daemon.maildir_messages("blue-owner", "local.test");
        (!n.is_empty()).then_some(n)
    })
    .expect("the owner of the list that found the loop is told");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(daemon.maildir_messages("ann", "local.test").len(), 1);
    assert_eq!(daemon.maildir_messages("ben", "local.test").len(), 1);
    let text = notices.iter().map(|p| read(p)).collect::<String>();
    assert!(text.contains("5.4.6"), "{text}");
    let log = daemon.log();
    let expanded = log
        .lines()
        .filter(|l| l.contains("status=\"expanded\""))
        .count();
    assert_eq!(expanded, 2, "red once, blue once:\n{log}");
}

/// A domain whose best MX is this switch: refused at RCPT (554 5.4.6), and, with the RCPT-time
/// check off, refused at delivery and reported to the sender; the switch never connects to
/// itself.
#[test]
fn an_mx_pointing_back_at_the_switch_is_a_loop() {
    let dns = Dnsmasq::start(
        free_port(),
        &[
            Record::mx("loop.test", 10, "switch.test"),
            Record::mx("loop2.test", 5, "switch.test"),
            Record::mx("loop2.test", 20, "backup.loop2.test"),
            Record::host("switch.test", &["127.0.0.1"]),
            Record::host("backup.loop2.test", &["127.0.0.1"]),
        ],
    );
    for check in [true, false] {
        let port = free_port();
        let config = format!(
            r#"[server]
hostname = "switch.test"

[queue]
path = "queue"
retry_first = "1s"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = ["local.test"]
local_channel = "local"
trusted_networks = ["127.0.0.0/8"]

[dns]
nameservers = ["{}"]
check_at_rcpt = {check}

[[channel]]
name = "local"
type = "maildir"
path = "maildir"

[[channel]]
name = "out"
type = "smtp"
tls = "none"
"#,
            dns.addr()
        );
        let daemon = Daemon::start(&config, &[port]);
        let mut c = Raw::connect(port);
        c.expect("EHLO client.test", 250);
        c.expect("MAIL FROM:<sender@local.test>", 250);
        let r1 = c.cmd("RCPT TO:<x@loop.test>");
        let r2 = c.cmd("RCPT TO:<y@loop2.test>");
        if check {
            assert_eq!(r1.status(), "554 5.4.6", "{}", r1.text);
            assert_eq!(r2.status(), "554 5.4.6", "{}", r2.text);
            c.expect("QUIT", 221);
            continue;
        }
        assert_eq!((r1.code, r2.code), (250, 250));
        c.expect("DATA", 354);
        c.send(
            format!(
                "{}.\r\n",
                message("sender@local.test", "x@loop.test", "mx loop")
            )
            .as_bytes(),
        );
        assert_eq!(c.reply().code, 250, "{}", c.transcript);
        c.expect("QUIT", 221);
        // One notice per next hop (each reports its recipient), each with 5.4.6.
        let notices = wait_until(WAIT, || {
            let n = daemon.maildir_messages("sender", "local.test");
            (n.len() >= 2).then_some(n)
        })
        .unwrap_or_else(|| panic!("no notices:\n{}", daemon.log()));
        let text: String = notices.iter().map(|p| read(p)).collect();
        assert_eq!(text.matches("Status: 5.4.6").count(), 2, "{text}");
        assert!(
            text.contains("Final-Recipient: rfc822; x@loop.test"),
            "{text}"
        );
        assert!(
            text.contains("Final-Recipient: rfc822; y@loop2.test"),
            "{text}"
        );
        // The switch never connected to itself: the only message it received is the first.
        std::thread::sleep(Duration::from_secs(1));
        let log = daemon.log();
        assert_eq!(log.matches(" received ").count(), 1, "{log}");
    }
}

/// LDAP filter metacharacters in a LASER address are escaped (RFC 4515): none matches an
/// entry it does not name, none is ambiguous, none is delivered. Two entries exist, so a
/// wildcard that got through would be "ambiguous" (5.1.4) and a filter that got through
/// would find one of them (250).
#[test]
fn ldap_filter_metacharacters_match_nothing() {
    let (port, ldap_port) = (free_port(), free_port());
    let people = "dn: uid=dora,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\n\
        objectClass: inetLocalMailRecipient\nuid: dora\ncn: Dora\nsn: Example\n\
        mail: dora@corp.test\n\n\
        dn: uid=dan,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\n\
        objectClass: inetLocalMailRecipient\nuid: dan\ncn: Dan\nsn: Example\n\
        mail: dan@corp.test\n\n";
    let _slapd = Slapd::start(ldap_port, &format!("{}{people}", Slapd::BASE_LDIF));
    for filter in [None, Some("(&(objectClass=inetOrgPerson)(uid={local}))")] {
        let port = if filter.is_none() { port } else { free_port() };
        let config = format!(
            r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_channel = "local"

[laser]
mode = "single"
url = "ldap://127.0.0.1:{ldap_port}/"
base = "ou=people,dc=example,dc=com"
domains = ["corp.test"]
cache_ttl = "0"
{}

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#,
            filter
                .map(|f| format!("filter = \"{f}\""))
                .unwrap_or_default()
        );
        let _daemon = Daemon::start(&config, &[port]);
        let mut c = Raw::connect(port);
        c.expect("EHLO client.test", 250);
        c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
        // Control: both users exist.
        c.expect("RCPT TO:<dora@corp.test>", 250);
        c.expect("RCPT TO:<dan@corp.test>", 250);
        for hostile in [
            "\"*\"@corp.test",
            "\"d*\"@corp.test",
            "\"*)(uid=*\"@corp.test",
            "\"dora)(|(uid=*\"@corp.test",
            "\"*)(objectClass=*\"@corp.test",
            "\"dora)(mail=*\"@corp.test",
            "\"\\\\2a\"@corp.test",
            "\"dora\\\\\"@corp.test",
            "\"(uid=dora)\"@corp.test",
            "d*@corp.test",
            "*@corp.test",
        ] {
            let r = c.cmd(&format!("RCPT TO:<{hostile}>"));
            eprint!("{filter:?} {hostile} -> {}", r.text);
            assert_eq!(r.status(), "550 5.1.1", "{filter:?} {hostile}: {}", r.text);
        }
        c.expect("QUIT", 221);
    }
}

mod x400 {
    //! An X.400 routing loop between two MTAs of different domains: each routes PRMD-LOOP to
    //! the other over P1. The message goes A → B → A, where A finds itself in the trace
    //! (X.411 §14.3.1.1) and refuses it with `loop-detected`; the originator (in A's domain)
    //! gets the non-delivery report.

    use std::path::PathBuf;
    use std::time::Duration;

    use mswitch_core::address::ORAddress;
    use mswitch_testkit::{free_port, wait_until};
    use mswitch_x400::mts::{MtsApdu, ReportType, non_delivery_diagnostic, non_delivery_reason};

    use crate::common::Daemon;

    const ORIG: &str = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Orig/";
    const LOST: &str = "/C=GB/ADMD= /PRMD=PRMD-LOOP/O=Nowhere/S=Lost/";

    fn config(me: char, port: u16, peer_port: u16) -> String {
        let (mine, theirs) = if me == 'a' { ('A', 'B') } else { ('B', 'A') };
        let (me_l, them_l) = (mine.to_ascii_lowercase(), theirs.to_ascii_lowercase());
        format!(
            r#"[server]
hostname = "{me_l}.x400.test"

[queue]
path = "queue"
retry_first = "1s"
retry_max = "2s"

[x400]
mta_name = "mta-{me_l}"
country = "GB"
admd = " "
prmd = "PRMD-{mine}"
password = "secret-{me_l}"
listen = "127.0.0.1:{port}"
idle_timeout = "30s"

[[x400.peer]]
name = "mta-{them_l}"
address = "127.0.0.1:{peer_port}"
password = "secret-{them_l}"

[[x400.peer]]
name = "test-mta"
address = "127.0.0.1:9"
password = "secret-t"

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
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/O=Ex/"
action = "local"
channel = "x400-local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-LOOP/"
channel = "p1"
mta = "mta-{them_l}"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{theirs}/"
channel = "p1"
mta = "mta-{them_l}"
"#
        )
    }

    fn or(text: &str) -> ORAddress {
        text.parse().expect("std-or address")
    }

    fn message(id: &str) -> Vec<u8> {
        super::super::p1_peer::message(id, ORIG, LOST, b"round and round")
    }

    fn transfer(port: u16, apdu: &[u8]) {
        super::super::p1_peer::transfer(port, apdu)
    }

    fn delivered(daemon: &Daemon, address: &str) -> Vec<PathBuf> {
        let dir = mswitch_daemon::x400store::mailbox(&daemon.dir().join("x400"), &or(address));
        mswitch_testkit::files_under(&dir.join("new"))
    }

    #[test]
    fn an_x400_routing_loop_is_stopped_by_the_trace() {
        let (pa, pb) = (free_port(), free_port());
        let a = Daemon::start(&config('a', pa, pb), &[pa]);
        let b = Daemon::start(&config('b', pb, pa), &[pb]);
        transfer(pa, &message("loop-1"));
        let reports = wait_until(Duration::from_secs(60), || {
            let r = delivered(&a, ORIG);
            (!r.is_empty()).then_some(r)
        })
        .unwrap_or_else(|| panic!("no report\n--- A ---\n{}\n--- B ---\n{}", a.log(), b.log()));
        let apdu = MtsApdu::decode(&std::fs::read(&reports[0]).expect("read")).expect("decode");
        let MtsApdu::Report(ndr) = apdu else {
            panic!("not a report: {apdu:?}");
        };
        assert_eq!(ndr.content.subject_identifier.local_identifier, "loop-1");
        let f = &ndr.content.per_recipient_fields[0];
        assert_eq!(f.actual_recipient_name.address, or(LOST));
        assert_eq!(
            f.last_trace_information.report_type,
            ReportType::NonDelivery {
                reason_code: non_delivery_reason::UNABLE_TO_TRANSFER,
                diagnostic_code: Some(non_delivery_diagnostic::LOOP_DETECTED),
            }
        );
        // It went round once: A relayed it once, B once.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(delivered(&a, ORIG).len(), 1, "one report");
        let relayed = |log: &str| {
            log.lines()
                .filter(|l| l.contains(" delivery ") && l.contains("channel=p1"))
                .count()
        };
        let (la, lb) = (a.log(), b.log());
        eprintln!("P1 delivery lines: A {}, B {}", relayed(&la), relayed(&lb));
        assert!(
            relayed(&la) <= 2 && relayed(&lb) <= 2,
            "--- A ---\n{la}\n--- B ---\n{lb}"
        );
    }
}
