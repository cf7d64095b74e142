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

/// The directory of [`directory_configuration_is_polled_and_applied_without_restart`]: a local
/// domain, an alias to a file domain, and people with mail in example.test.
const DIRECTORY: &str = "\
dn: ou=domains,dc=example,dc=com
objectClass: organizationalUnit
objectClass: domainRelatedObject
ou: domains
associatedDomain: dir.test

dn: ou=aliases,dc=example,dc=com
objectClass: organizationalUnit
ou: aliases

dn: cn=help@aliases.test,ou=aliases,dc=example,dc=com
objectClass: nisMailAlias
cn: help@aliases.test
rfc822MailMember: joe@example.test

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Example
mail: alice@example.test

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: Example
mail: bob@example.test

dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: Example
mail: carol@example.test

";

/// `[directory]` through mswitchd against a real slapd: a domain and an alias from the
/// directory work from the start; an alias and a list added with ldapmodify are accepted at
/// RCPT and delivered within seconds, without a restart (the list to its member DNs' mail and
/// its extra address, with its owner DN's mail as the envelope sender); a SIGHUP keeps them;
/// a directory that goes away leaves the configuration as it was.
#[test]
fn directory_configuration_is_polled_and_applied_without_restart() {
    let (port, ldap_port) = (free_port(), free_port());
    let ldif = format!("{}{DIRECTORY}", mswitch_testkit::slapd::Slapd::BASE_LDIF);
    let mut slapd = mswitch_testkit::slapd::Slapd::start(ldap_port, &ldif);
    let config = format!(
        r#"{}
[directory]
url = "ldap://127.0.0.1:{ldap_port}/"
base = "dc=example,dc=com"
poll = "1s"
"#,
        config(port)
    );
    let daemon = Daemon::start(&config, &[port]);
    assert!(
        daemon.log().contains("directory configuration read"),
        "read before listening: {}",
        daemon.log()
    );
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    // Not in the directory yet: aliases.test is no domain of this switch.
    for absent in ["sales@aliases.test", "crew@aliases.test"] {
        let (code, text) = c.command(&format!("RCPT TO:<{absent}>"));
        assert_eq!((code, text.get(4..9)), (550, Some("5.1.2")), "{text}");
    }
    c.expect("RCPT TO:<help@aliases.test>", 250);
    c.expect("RCPT TO:<anyone@dir.test>", 250);
    let (code, text) = c.data(&message(
        "poster@elsewhere.test",
        "help@aliases.test",
        "one",
    ));
    assert_eq!(code, 250, "{text}");
    assert!(daemon.wait_for_log(&["status=\"delivered\""], 2, Duration::from_secs(30)));
    assert_eq!(daemon.maildir_messages("joe", "example.test").len(), 1);
    assert_eq!(daemon.maildir_messages("anyone", "dir.test").len(), 1);
    assert!(daemon.maildir_messages("help", "aliases.test").is_empty());

    slapd.ldapmodify(
        "dn: cn=sales@aliases.test,ou=aliases,dc=example,dc=com
changetype: add
objectClass: nisMailAlias
cn: sales@aliases.test
rfc822MailMember: carol@example.test

dn: cn=crew,ou=groups,dc=example,dc=com
changetype: add
objectClass: groupOfNames
objectClass: extensibleObject
cn: crew
mail: crew@aliases.test
member: uid=alice,ou=people,dc=example,dc=com
member: uid=bob,ou=people,dc=example,dc=com
member: uid=gone,ou=people,dc=example,dc=com
rfc822MailMember: dave@example.test
owner: uid=carol,ou=people,dc=example,dc=com
description: posting=anyone
",
    );
    assert!(
        daemon.wait_for_log(
            &["directory configuration changed", "aliases=2", "lists=1"],
            1,
            Duration::from_secs(15)
        ),
        "the poll sees the change"
    );
    assert!(daemon.wait_for_log(&["configuration reloaded"], 1, Duration::from_secs(5)));
    // A session keeps the configuration it started with: a new one sees the change.
    c.command("QUIT");
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    c.expect("RCPT TO:<sales@aliases.test>", 250);
    c.expect("RCPT TO:<crew@aliases.test>", 250);
    let (code, text) = c.data(&message(
        "poster@elsewhere.test",
        "sales@aliases.test",
        "two",
    ));
    assert_eq!(code, 250, "{text}");
    // carol through the alias; alice, bob and dave through the list (uid=gone is skipped).
    assert!(
        daemon.wait_for_log(&["status=\"delivered\""], 6, Duration::from_secs(30)),
        "six deliveries in all"
    );
    let carol = daemon.maildir_messages("carol", "example.test");
    assert_eq!(carol.len(), 1);
    let text = read(&carol[0]);
    assert!(
        text.starts_with("Return-Path: <poster@elsewhere.test>\r\n"),
        "{text:.200}"
    );
    for member in ["alice", "bob", "dave"] {
        let files = daemon.maildir_messages(member, "example.test");
        assert_eq!(files.len(), 1, "{member}");
        let text = read(&files[0]);
        assert!(
            text.starts_with("Return-Path: <carol@example.test>\r\n"),
            "{member}: the owner is the sender: {text:.200}"
        );
        assert!(text.contains("Subject: two"), "{member}");
    }
    assert!(daemon.log().contains("list expanded"));

    // A reload of the file merges the last snapshot again.
    daemon.hangup();
    assert!(daemon.wait_for_log(&["configuration reloaded"], 2, Duration::from_secs(10)));
    c.command("QUIT");
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    c.expect("RCPT TO:<sales@aliases.test>", 250);
    c.expect("RCPT TO:<crew@aliases.test>", 250);
    c.command("QUIT");
    // The directory goes away: the configuration stays as it was.
    slapd.stop();
    assert!(daemon.wait_for_log(
        &["cannot read the directory configuration; the current one stays"],
        1,
        Duration::from_secs(15)
    ));
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    c.expect("RCPT TO:<sales@aliases.test>", 250);
    c.expect("RCPT TO:<anyone@dir.test>", 250);
    c.command("QUIT");
    let log = daemon.log();
    assert_eq!(log.matches("mswitchd starting").count(), 1, "no restart");
    assert_eq!(
        log.matches("directory configuration changed").count(),
        1,
        "unchanged snapshots are not applied again"
    );
}

/// A directory that is down when mswitchd starts: the switch starts on its file alone and
/// applies the directory's configuration once it can be read.
#[test]
fn a_directory_down_at_start_is_applied_when_it_comes_up() {
    let (port, ldap_port) = (free_port(), free_port());
    let config = format!(
        r#"{}
[directory]
url = "ldap://127.0.0.1:{ldap_port}/"
base = "dc=example,dc=com"
poll = "1s"
"#,
        config(port)
    );
    let daemon = Daemon::start(&config, &[port]);
    assert!(
        daemon
            .log()
            .contains("cannot read the directory configuration; starting without it"),
        "{}",
        daemon.log()
    );
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    let (code, text) = c.command("RCPT TO:<help@aliases.test>");
    assert_eq!((code, text.get(4..9)), (550, Some("5.1.2")), "{text}");
    c.command("QUIT");
    let ldif = format!("{}{DIRECTORY}", mswitch_testkit::slapd::Slapd::BASE_LDIF);
    let _slapd = mswitch_testkit::slapd::Slapd::start(ldap_port, &ldif);
    assert!(
        daemon.wait_for_log(
            &[
                "directory configuration changed",
                "domains=1",
                "aliases=1",
                "lists=0"
            ],
            1,
            Duration::from_secs(15)
        ),
        "applied once readable"
    );
    assert!(daemon.wait_for_log(&["configuration reloaded"], 1, Duration::from_secs(5)));
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<poster@elsewhere.test>", 250);
    c.expect("RCPT TO:<help@aliases.test>", 250);
    c.expect("RCPT TO:<someone@dir.test>", 250);
    c.command("QUIT");
}
