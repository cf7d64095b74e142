//! Routing end to end through mswitchd: a distribution list, an alias loop, sub-addressing.

use std::time::Duration;

use mswitch_testkit::{files_under, free_port};

use crate::common::Daemon;
use crate::delivery::{Client, message};

fn config(port: u16) -> String {
    format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = ["example.test"]
local_channel = "local"

[routing.aliases]
"ping@example.test" = ["pong@example.test"]
"pong@example.test" = ["ping@example.test"]
"team@example.test" = ["joe@example.test", "carol@example.test"]

[[list]]
address = "staff@lists.example.test"
owner = "owner-staff@example.test"
members = ["alice@example.test", "bob@example.test", "team@example.test"]
posting = "anyone"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#
    )
}

fn send(port: u16, to: &[&str], subject: &str) -> (u16, String) {
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    for r in to {
        c.expect(&format!("RCPT TO:<{r}>"), 250);
    }
    let reply = c.data(&message("poster@elsewhere.test", to[0], subject));
    c.command("QUIT");
    reply
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn a_list_delivers_to_every_member_with_its_owner_as_sender() {
    let port = free_port();
    let daemon = Daemon::start(&config(port), &[port]);
    let (code, text) = send(port, &["staff@lists.example.test"], "to the list");
    assert_eq!(code, 250, "{text}");
    // alice, bob, and through the alias team@: joe and carol.
    assert!(
        daemon.wait_for_log(&["status=\"delivered\""], 4, Duration::from_secs(30)),
        "four deliveries"
    );
    for member in ["alice", "bob", "joe", "carol"] {
        let files = daemon.maildir_messages(member, "example.test");
        assert_eq!(files.len(), 1, "{member}");
        let text = read(&files[0]);
        assert!(
            text.starts_with("Return-Path: <owner-staff@example.test>\r\n"),
            "{member}: {text:.200}"
        );
        assert!(text.contains("Subject: to the list"), "{member}");
    }
    // The poster's message was expanded, not delivered anywhere itself.
    let log = daemon.log();
    assert!(log.contains("list expanded"), "{log}");
    assert!(log.contains("status=\"expanded\""), "{log}");
    assert!(files_under(&daemon.dir().join("maildir/lists.example.test")).is_empty());
}

#[test]
fn an_alias_loop_is_refused_at_rcpt() {
    let port = free_port();
    let _daemon = Daemon::start(&config(port), &[port]);
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    let (code, text) = c.command("RCPT TO:<ping@example.test>");
    assert_eq!(code, 550, "{text}");
    assert_eq!(text.get(4..9), Some("5.4.6"), "{text}");
    // The session goes on.
    c.expect("RCPT TO:<team@example.test>", 250);
}

#[test]
fn a_sub_address_lands_in_its_folder() {
    let port = free_port();
    let daemon = Daemon::start(&config(port), &[port]);
    let (code, text) = send(port, &["joe+news@example.test"], "tagged");
    assert_eq!(code, 250, "{text}");
    assert!(daemon.wait_for_log(&["status=\"delivered\""], 1, Duration::from_secs(30)));
    let folder = daemon
        .dir()
        .join("maildir/example.test/joe/Maildir/.news/new");
    let files = files_under(&folder);
    assert_eq!(files.len(), 1, "{}", folder.display());
    let text = read(&files[0]);
    assert!(
        text.contains("Delivered-To: joe+news@example.test"),
        "{text:.300}"
    );
    assert!(
        daemon.maildir_messages("joe", "example.test").is_empty(),
        "not the inbox"
    );
}

const PEOPLE: &str = "\
dn: uid=dora,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dora
cn: Dora Example
sn: Example
mail: dora@corp.test

";

/// LASER (single-domain mode) through mswitchd against a real slapd: a user in the directory
/// is delivered locally, an unknown one is refused at RCPT, and a directory that is down makes
/// the switch answer 451 4.4.3, never 5xx.
#[test]
fn laser_validates_recipients_in_the_directory() {
    let (port, ldap_port) = (free_port(), free_port());
    let ldif = format!("{}{PEOPLE}", mswitch_testkit::slapd::Slapd::BASE_LDIF);
    let mut slapd = mswitch_testkit::slapd::Slapd::start(ldap_port, &ldif);
    let config = format!(
        r#"{}
[laser]
mode = "single"
url = "ldap://127.0.0.1:{ldap_port}/"
base = "ou=people,dc=example,dc=com"
domains = ["corp.test"]
local_channel = "local"
cache_ttl = "0"
"#,
        config(port)
    );
    let daemon = Daemon::start(&config, &[port]);
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    let (code, text) = c.command("RCPT TO:<nobody@corp.test>");
    assert_eq!((code, text.get(4..9)), (550, Some("5.1.1")), "{text}");
    let (code, text) = c.command("RCPT TO:<\"dora*\"@corp.test>");
    assert_eq!(
        (code, text.get(4..9)),
        (550, Some("5.1.1")),
        "no wildcard: {text}"
    );
    c.expect("RCPT TO:<dora@corp.test>", 250);
    let (code, text) = c.data(&message("poster@elsewhere.test", "dora@corp.test", "laser"));
    assert_eq!(code, 250, "{text}");
    assert!(daemon.wait_for_log(&["status=\"delivered\""], 1, Duration::from_secs(30)));
    assert_eq!(daemon.maildir_messages("dora", "corp.test").len(), 1);
    // The directory goes away: the switch defers, it does not refuse.
    slapd.stop();
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    let (code, text) = c.command("RCPT TO:<dora@corp.test>");
    assert_eq!((code, text.get(4..9)), (451, Some("4.4.3")), "{text}");
    c.command("QUIT");
}

/// A route's own credentials: mswitchd A relays `peer.test` to mswitchd B's submission
/// service, which requires AUTH, with the user and password the route gives.
#[test]
fn a_route_authenticates_to_its_peer() {
    let (a_port, b_port) = (free_port(), free_port());
    let b_dir = mswitch_testkit::TempDir::new("mswitchd-peer");
    std::fs::write(
        b_dir.path().join("passwd"),
        crate::delivery::password_line("relay", "s3cret"),
    )
    .expect("password file");
    let b_config = format!(
        r#"[server]
hostname = "b.test"
restrict_senders = false

[queue]
path = "queue"

[[listener]]
name = "submission"
service = "submission"
address = "127.0.0.1:{b_port}"
password_file = "passwd"
allow_plaintext_auth = true

[routing]
local_domains = ["peer.test"]
local_channel = "local"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#
    );
    let b = Daemon::start_in(b_dir, &b_config, &[b_port]);
    let a_config = format!(
        r#"[server]
hostname = "a.test"

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{a_port}"

[[route]]
domain = "peer.test"
channel = "out"
host = "127.0.0.1:{b_port}"
tls = "none"
auth = {{ username = "relay", password = "s3cret", allow_plaintext = true }}

[[channel]]
name = "out"
type = "smtp"
tls = "none"
"#
    );
    let a = Daemon::start(&a_config, &[a_port]);
    let (code, text) = send(a_port, &["dan@peer.test"], "with credentials");
    assert_eq!(code, 250, "{text}");
    assert!(
        a.wait_for_log(&["status=\"sent\""], 1, Duration::from_secs(30)),
        "A relayed it"
    );
    assert!(b.wait_for_log(&["status=\"delivered\""], 1, Duration::from_secs(30)));
    let files = b.maildir_messages("dan", "peer.test");
    assert_eq!(files.len(), 1);
    let text = read(&files[0]);
    assert!(
        text.contains("with ESMTPA"),
        "B saw an authenticated client: {text:.400}"
    );
    assert!(b.log().contains("user=\"relay\""), "{}", b.log());
}
