//! The SMTP⇄X.400 gateway (RFC 2156) between two mswitchd instances.
//!
//! Each instance serves an Internet domain (`a.test`, `b.test`, Maildir) and an X.400 domain
//! (PRMD-A, PRMD-B), with a gateway: `a.test` ⇄ `/PRMD=PRMD-A/O=Mail/`, `b.test` ⇄
//! `/PRMD=PRMD-B/O=Mail/` on both sides, std-or addresses at `x400.a.test` / `x400.b.test`,
//! and the `RFC-822` attribute under `/PRMD=PRMD-x/O=Internet/` for other Internet users.
//! Mail between `a.test` and `b.test` crosses as X.400 over P1; `O=Ex` are X.400 users with a
//! local X.400 store.

use std::path::Path;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use mswitch_testkit::tshark::Capture;
use mswitch_testkit::{free_port, wait_until};
use mswitch_x400::ipm::{BodyPart, InformationObject};
use mswitch_x400::mts::{MtsApdu, ReportType};

use crate::common::Daemon;
use crate::delivery::send;

fn config(me: char, smtp: u16, p1: u16, peer_smtp: u16, peer_p1: u16) -> String {
    let (mine, theirs) = if me == 'a' { ('A', 'B') } else { ('B', 'A') };
    let (ml, tl) = (mine.to_ascii_lowercase(), theirs.to_ascii_lowercase());
    // A relays for loopback (the test's SMTP client); B relays for nobody, so that A's mail
    // for a domain B does not serve is refused at RCPT (5xx).
    let trusted = if me == 'a' { "\"127.0.0.0/8\"" } else { "" };
    format!(
        r#"[server]
hostname = "mx.{ml}.test"

[queue]
path = "queue"
retry_first = "1s"
retry_max = "2s"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{smtp}"

[routing]
local_domains = ["{ml}.test", "smtp.{ml}.test"]
local_channel = "local"
trusted_networks = [{trusted}]

[[route]]
domain = "x400.{ml}.test"
channel = "gateway"

[[route]]
domain = "{tl}.test"
channel = "gateway"

[[route]]
domain = "smtp.{tl}.test"
channel = "smtp"
host = "127.0.0.1:{peer_smtp}"

[[route]]
domain = "nowhere.{tl}.test"
channel = "smtp"
host = "127.0.0.1:{peer_smtp}"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"

[[channel]]
name = "smtp"
type = "smtp"
tls = "none"

[[channel]]
name = "gateway"
type = "gateway"

[[channel]]
name = "p1"
type = "p1"

[[channel]]
name = "x400-local"
type = "x400-store"
path = "x400"

[gateway]
gateway_domain = "x400.{ml}.test"
gateway_or = "/C=GB/ADMD= /PRMD=PRMD-{mine}/O=Internet/"

[[gateway.rule]]
domain = "{ml}.test"
or = "/C=GB/ADMD= /PRMD=PRMD-{mine}/O=Mail/"
subdomains = false

[[gateway.rule]]
domain = "{tl}.test"
or = "/C=GB/ADMD= /PRMD=PRMD-{theirs}/O=Mail/"
subdomains = false

[x400]
mta_name = "mta-{ml}"
country = "GB"
admd = " "
prmd = "PRMD-{mine}"
listen = "127.0.0.1:{p1}"

[[x400.peer]]
name = "mta-{tl}"
address = "127.0.0.1:{peer_p1}"

[[x400.peer]]
name = "test-mta"
address = "127.0.0.1:9"

[[x400_tree]]
name = "local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/"
action = "refuse"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/O=Ex/"
action = "local"
channel = "x400-local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/O=Mail/"
action = "local"
channel = "gateway"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/O=Internet/"
action = "local"
channel = "gateway"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{theirs}/"
channel = "p1"
mta = "mta-{tl}"
"#
    )
}

struct Pair {
    a: Daemon,
    b: Daemon,
    a_smtp: u16,
    a_p1: u16,
    b_p1: u16,
}

fn pair() -> Pair {
    let (a_smtp, a_p1, b_smtp, b_p1) = (free_port(), free_port(), free_port(), free_port());
    let a = Daemon::start(&config('a', a_smtp, a_p1, b_smtp, b_p1), &[a_smtp, a_p1]);
    let b = Daemon::start(&config('b', b_smtp, b_p1, a_smtp, a_p1), &[b_smtp, b_p1]);
    Pair {
        a,
        b,
        a_smtp,
        a_p1,
        b_p1,
    }
}

fn wait_files(
    what: &str,
    log: &Daemon,
    f: impl Fn() -> Vec<std::path::PathBuf>,
    n: usize,
) -> Vec<std::path::PathBuf> {
    match wait_until(Duration::from_secs(30), || {
        let files = f();
        (files.len() >= n).then_some(files)
    }) {
        Some(files) => files,
        None => panic!("{what}: nothing arrived; log:\n{}", log.log()),
    }
}

fn x400_store(d: &Daemon, address: &str) -> Vec<std::path::PathBuf> {
    let dir = mswitch_daemon::x400store::mailbox(
        &d.dir().join("x400"),
        &address.parse().expect("std-or"),
    );
    let mut files: Vec<_> = std::fs::read_dir(dir.join("new"))
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read a delivered message")
}

const JONES: &str = "/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/S=Jones/";

#[test]
fn smtp_to_x400_arrives_as_an_ipm_that_tshark_decodes() {
    let p = pair();
    let mut capture = Capture::start(&[p.a_p1, p.b_p1]);
    let message = "From: Carol Example <carol@a.test>\r\n\
To: Jones <\"/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/S=Jones/\"@x400.a.test>\r\n\
Subject: Quarterly figures\r\n\
Message-ID: <q1.2026@a.test>\r\n\
\r\n\
The figures are attached in spirit.\r\n";
    send(
        p.a_smtp,
        "carol@a.test",
        &["\"/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/S=Jones/\"@x400.a.test"],
        message,
    );
    let files = wait_files("Jones's X.400 store", &p.a, || x400_store(&p.b, JONES), 1);
    let MtsApdu::Message(m) = MtsApdu::decode(&read(&files[0])).expect("apdu") else {
        panic!("not a message");
    };
    assert_eq!(
        m.envelope.originator_name.address.to_string(),
        "/C=GB/ADMD= /PRMD=PRMD-A/O=Mail/S=carol/"
    );
    let InformationObject::Ipm(ipm) = InformationObject::decode(&m.content).expect("ipm") else {
        panic!("not an IPM");
    };
    assert_eq!(
        ipm.heading.display_subject().as_deref(),
        Some("Quarterly figures")
    );
    assert!(
        matches!(&ipm.body[0], BodyPart::Ia5Text { text, .. } if text.contains("attached in spirit"))
    );
    drop(p);
    let problems = capture.problems();
    assert!(
        problems.trim().is_empty(),
        "tshark found problems:\n{problems}"
    );
    let decoded = capture.tshark(&["-Y", "p22", "-V"]);
    for line in [
        "originator-name (/C=GB/A= /P=PRMD-A/O=Mail/S=carol/)",
        "recipient-name (/C=GB/A= /P=PRMD-B/O=Ex/S=Jones/)",
        "built-in: interpersonal-messaging-1988 (22)",
        "subject: Quarterly figures",
        "ia5-text",
        "The figures are attached in spirit.",
        "user-relative-identifier: q1.2026(a)a.test",
    ] {
        assert!(
            decoded.contains(line),
            "tshark did not decode {line:?}:\n{decoded}"
        );
    }
}

#[test]
fn smtp_to_x400_and_back_keeps_the_mapped_fields() {
    let p = pair();
    let message = "From: Carol Example <carol@a.test>\r\n\
To: Bob Brown <bob@b.test>\r\n\
Cc: Dave <dave@b.test>\r\n\
Subject: =?utf-8?q?R=C3=A9union?=\r\n\
Message-ID: <rt.1@a.test>\r\n\
In-Reply-To: <rt.0@b.test>\r\n\
References: <rs.9@b.test> <rt.0@b.test>\r\n\
Importance: high\r\n\
Sensitivity: Company-Confidential\r\n\
Expires: Tue, 1 Dec 2026 12:00:00 +0000\r\n\
Reply-To: Desk <desk@a.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"zz\"\r\n\
\r\n\
--zz\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
R\u{e9}union at ten.\r\n\
--zz\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"agenda.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--zz--\r\n";
    send(p.a_smtp, "carol@a.test", &["bob@b.test"], message);
    let files = wait_files(
        "bob's Maildir at B",
        &p.a,
        || p.b.maildir_messages("bob", "b.test"),
        1,
    );
    let raw = read(&files[0]);
    let m = MessageParser::default()
        .parse(&raw)
        .expect("a MIME message");
    assert_eq!(
        m.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("carol@a.test")
    );
    assert_eq!(
        m.from().and_then(|a| a.first()).and_then(|a| a.name()),
        Some("Carol Example")
    );
    assert_eq!(
        m.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("bob@b.test")
    );
    assert_eq!(
        m.cc().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("dave@b.test")
    );
    assert_eq!(m.subject(), Some("Réunion"));
    assert_eq!(m.message_id(), Some("rt.1@a.test"));
    assert_eq!(m.in_reply_to().as_text(), Some("rt.0@b.test"));
    assert_eq!(
        m.references()
            .as_text_list()
            .map(|l| l.iter().map(|r| r.as_ref()).collect::<Vec<&str>>()),
        Some(vec!["rs.9@b.test", "rt.0@b.test"])
    );
    assert_eq!(m.header_raw("Importance").map(str::trim), Some("high"));
    assert_eq!(
        m.header_raw("Sensitivity").map(str::trim),
        Some("Company-Confidential")
    );
    assert!(
        m.body_text(0)
            .is_some_and(|b| b.contains("Réunion at ten."))
    );
    let pdf = m.attachments().next().expect("the attachment");
    assert_eq!(pdf.attachment_name(), Some("agenda.pdf"));
    assert_eq!(pdf.contents(), b"%PDF-1.4\n");
    assert_eq!(
        m.header_raw("Expires")
            .and_then(|v| mail_parser::DateTime::parse_rfc822(v.trim()))
            .map(|d| d.to_timestamp()),
        Some(1_796_126_400)
    );
    assert_eq!(
        m.reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("desk@a.test")
    );
    assert!(m.header_raw("X400-MTS-Identifier").is_some());
    assert!(m.header_raw("X400-Received").is_some());
    // Trace both ways: A's SMTP hop (its Received:) crossed X.400 as internal trace and came
    // back as a Received: below the one B's gateway wrote.
    let hops: Vec<String> = m
        .header_values("Received")
        .filter_map(|v| match v {
            mail_parser::HeaderValue::Received(r) => match &r.by {
                Some(mail_parser::Host::Name(n)) => Some(n.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(hops, ["x400.b.test", "mta-b", "mx.a.test"], "{hops:?}");
}

#[test]
fn an_undeliverable_x400_recipient_reached_from_smtp_gives_a_dsn() {
    let p = pair();
    let ghost = "\"/C=GB/ADMD= /PRMD=PRMD-B/O=Nowhere/S=Ghost/\"@x400.a.test";
    let message = format!(
        "From: <carol@a.test>\r\nTo: <{ghost}>\r\nSubject: lost\r\nMessage-ID: <lost.1@a.test>\r\n\r\nhello\r\n"
    );
    send(p.a_smtp, "carol@a.test", &[ghost], &message);
    let files = wait_files(
        "carol's DSN",
        &p.a,
        || p.a.maildir_messages("carol", "a.test"),
        1,
    );
    let raw = String::from_utf8_lossy(&read(&files[0])).into_owned();
    assert!(raw.contains("multipart/report"), "{raw}");
    assert!(raw.contains("Action: failed"), "{raw}");
    assert!(raw.contains("Status: 5.1.1"), "{raw}");
    assert!(raw.contains("PRMD=PRMD-B/O=Nowhere/S=Ghost/"), "{raw}");
}

#[test]
fn an_undeliverable_smtp_recipient_reached_from_x400_gives_an_x400_ndr() {
    let p = pair();
    // An X.400 user at A writes, through the gateway, to an Internet domain that B refuses
    // at RCPT: the SMTP failure comes back as a DSN, which the gateway turns into an NDR.
    let orig = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Orig/";
    let to = "/C=GB/ADMD= /PRMD=PRMD-A/O=Internet/DD.RFC-822=nobody(a)nowhere.b.test/";
    crate::x400::transfer(
        p.a_p1,
        "",
        &[crate::x400::ipm_message(
            "gw-ndr-1",
            orig,
            &[to],
            "lost",
            "hello",
        )],
    )
    .expect("transfer into A");
    let files = wait_files("Orig's NDR", &p.a, || x400_store(&p.a, orig), 1);
    let MtsApdu::Report(r) = MtsApdu::decode(&read(&files[0])).expect("apdu") else {
        panic!("not a report");
    };
    assert_eq!(r.content.subject_identifier.local_identifier, "gw-ndr-1");
    // The path: converted to Internet mail, refused by B at RCPT, the DSN converted back.
    let log = p.a.log();
    assert!(
        log.contains("to=<nobody@nowhere.b.test> channel=smtp")
            && log.contains("status=\"bounced\" code=5"),
        "B's refusal not in A's log:\n{log}"
    );
    assert_eq!(
        log.matches("gateway: converted").count(),
        2,
        "the message and the DSN:\n{log}"
    );
    assert!(matches!(
        r.content.per_recipient_fields[0]
            .last_trace_information
            .report_type,
        ReportType::NonDelivery { .. }
    ));
}

#[test]
fn an_x400_message_arrives_by_smtp_as_mime() {
    let p = pair();
    // An X.400 user writes to an Internet user of smtp.b.test: A's gateway converts, A's SMTP
    // channel delivers to B's SMTP listener, B files it in a Maildir.
    let from = "/C=GB/ADMD= /PRMD=PRMD-T/O=Org/S=Sender/";
    let to = "/C=GB/ADMD= /PRMD=PRMD-A/O=Internet/DD.RFC-822=alice(a)smtp.b.test/";
    crate::x400::transfer(
        p.a_p1,
        "",
        &[crate::x400::ipm_message(
            "gw-in-1",
            from,
            &[to],
            "Greetings",
            "Hello from X.400",
        )],
    )
    .expect("transfer into A");
    let files = wait_files(
        "alice's Maildir at B",
        &p.a,
        || p.b.maildir_messages("alice", "smtp.b.test"),
        1,
    );
    assert!(
        p.a.log().contains("to=<alice@smtp.b.test> channel=smtp"),
        "not sent by SMTP:\n{}",
        p.a.log()
    );
    let m = MessageParser::default()
        .parse(&read(&files[0]))
        .expect("a MIME message")
        .into_owned();
    assert_eq!(m.subject(), Some("Greetings"));
    assert_eq!(
        m.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("alice@smtp.b.test")
    );
    assert!(
        m.from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .is_some_and(|f| f.contains("S=Sender") && f.ends_with("@x400.a.test")),
        "{:?}",
        m.from()
    );
    assert_eq!(m.message_id(), Some("ipm-gw-in-1@x400.a.test"));
    assert!(
        m.body_text(0)
            .is_some_and(|b| b.contains("Hello from X.400"))
    );
}

/// A's gateway rule for `ex.b.test` lives only in the directory.
const MIXER: &str = "\
dn: ou=mixer,dc=example,dc=com
objectClass: organizationalUnit
ou: mixer

dn: cn=ex-b,ou=mixer,dc=example,dc=com
objectClass: applicationProcess
cn: ex-b
description: PRMD-B's X.400 users, for A's Internet users
description: domain=ex.b.test
description: or=/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/
description: direction=822-to-x400

";

/// Gateway address rules from the directory (`[directory] gateway_base`) in mswitchd: an
/// Internet message to `Jones@ex.b.test`, a domain only a rule in slapd maps, reaches B's
/// X.400 user over P1; the rule changed with ldapmodify is applied at the next poll (the next
/// message goes to the new O/R address); a directory rule that clashes with a file rule is
/// left out with a warning naming its entry, and a bad one is refused with its DN while the
/// rules in force stay.
#[test]
fn gateway_rules_from_the_directory_are_polled_and_applied() {
    let (a_smtp, a_p1, b_smtp, b_p1, ldap_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let ldif = format!("{}{MIXER}", mswitch_testkit::slapd::Slapd::BASE_LDIF);
    let slapd = mswitch_testkit::slapd::Slapd::start(ldap_port, &ldif);
    let a_config = format!(
        r#"{}
[[route]]
domain = "ex.b.test"
channel = "gateway"

[directory]
url = "ldap://127.0.0.1:{ldap_port}/"
base = "dc=example,dc=com"
poll = "1s"
domain_filter = ""
alias_filter = ""
list_filter = ""
gateway_base = "ou=mixer,dc=example,dc=com"
"#,
        config('a', a_smtp, a_p1, b_smtp, b_p1)
    );
    let a = Daemon::start(&a_config, &[a_smtp, a_p1]);
    let b = Daemon::start(&config('b', b_smtp, b_p1, a_smtp, a_p1), &[b_smtp, b_p1]);
    assert!(
        a.log()
            .contains("gateway address rules read from the directory rules=1"),
        "{}",
        a.log()
    );
    let message = |subject: &str| {
        format!(
            "From: Carol <carol@a.test>\r\nTo: Jones <Jones@ex.b.test>\r\n\
             Subject: {subject}\r\n\r\nBy a rule from the directory.\r\n"
        )
    };
    send(
        a_smtp,
        "carol@a.test",
        &["Jones@ex.b.test"],
        &message("one"),
    );
    let files = wait_files("Jones's X.400 store", &a, || x400_store(&b, JONES), 1);
    let MtsApdu::Message(m) = MtsApdu::decode(&read(&files[0])).expect("apdu") else {
        panic!("not a message");
    };
    assert_eq!(
        m.envelope.per_recipient_fields[0]
            .recipient_name
            .address
            .to_string(),
        JONES
    );
    assert_eq!(
        m.envelope.originator_name.address.to_string(),
        "/C=GB/ADMD= /PRMD=PRMD-A/O=Mail/S=carol/"
    );

    // The rule moves the domain to an OU; a second entry clashes with A's file rule for
    // a.test (the file wins).
    slapd.ldapmodify(
        "dn: cn=ex-b,ou=mixer,dc=example,dc=com
changetype: modify
replace: description
description: domain=ex.b.test
description: or=/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/OU=Lab/
description: direction=822-to-x400

dn: cn=clash,ou=mixer,dc=example,dc=com
changetype: add
objectClass: applicationProcess
cn: clash
description: domain=a.test
description: or=/C=GB/ADMD= /PRMD=PRMD-Z/
",
    );
    assert!(
        a.wait_for_log(
            &["gateway address rules in the directory changed", "rules=2"],
            1,
            Duration::from_secs(15)
        ),
        "{}",
        a.log()
    );
    assert!(a.wait_for_log(&["configuration reloaded"], 1, Duration::from_secs(5)));
    assert!(
        a.log().contains("directory gateway rule ignored")
            && a.log().contains("cn=clash,ou=mixer,dc=example,dc=com"),
        "{}",
        a.log()
    );
    send(
        a_smtp,
        "carol@a.test",
        &["Jones@ex.b.test"],
        &message("two"),
    );
    let lab = "/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/OU=Lab/S=Jones/";
    let files = wait_files("Jones's store in OU=Lab", &a, || x400_store(&b, lab), 1);
    let MtsApdu::Message(m) = MtsApdu::decode(&read(&files[0])).expect("apdu") else {
        panic!("not a message");
    };
    // carol@a.test is still mapped by the file's rule, not the clashing entry's.
    assert_eq!(
        m.envelope.originator_name.address.to_string(),
        "/C=GB/ADMD= /PRMD=PRMD-A/O=Mail/S=carol/"
    );
    assert_eq!(x400_store(&b, JONES).len(), 1);

    // A bad prefix: refused with the entry's DN; the rules in force stay.
    slapd.ldapmodify(
        "dn: cn=ex-b,ou=mixer,dc=example,dc=com
changetype: modify
replace: description
description: domain=ex.b.test
description: or=/C=GB/ADMD= /PRMD=PRMD-B/S=Smith/
",
    );
    assert!(
        a.wait_for_log(
            &[
                "gateway address rules from the directory not applied",
                "gateway rule entry cn=ex-b,ou=mixer,dc=example,dc=com",
            ],
            1,
            Duration::from_secs(15)
        ),
        "{}",
        a.log()
    );
    send(
        a_smtp,
        "carol@a.test",
        &["Jones@ex.b.test"],
        &message("three"),
    );
    wait_files("Jones's store in OU=Lab", &a, || x400_store(&b, lab), 2);
    assert_eq!(
        a.log()
            .matches("gateway address rules from the directory not applied")
            .count(),
        1,
        "reported once"
    );
}
