//! What the SMTP listeners refuse and how the daemon is operated: the relay rule, the hop
//! limit, connection limits, configuration reload without dropping sessions, JSON logs.

use std::io::Read;
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use mswitch_testkit::free_port;

use crate::common::Daemon;
use crate::delivery::{Client, message};

/// A switch for `switch.test` (Maildir) whose default route goes to a port nobody listens on;
/// `trusted` is the list of networks that may relay; `extra` goes into `[server]`.
fn config(port: u16, trusted: &str, local_domains: &str, extra: &str) -> String {
    let nowhere = free_port();
    format!(
        r#"[server]
hostname = "switch.test"
{extra}

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = [{local_domains}]
local_channel = "local"
trusted_networks = [{trusted}]
smarthost = "127.0.0.1:{nowhere}"

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

fn code(reply: &(u16, String)) -> (u16, String) {
    let enhanced = reply.1.get(4..9).unwrap_or_default().to_owned();
    (reply.0, enhanced)
}

#[test]
fn relaying_is_refused_to_strangers_and_loops_are_stopped() {
    let port = free_port();
    let daemon = Daemon::start(&config(port, "", "\"local.test\"", ""), &[port]);
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<someone@elsewhere.example>", 250);
    // Not trusted, not authenticated: mail for others is refused, local mail accepted.
    let refused = c.command("RCPT TO:<victim@far.example>");
    assert_eq!(code(&refused), (554, "5.7.1".into()), "{}", refused.1);
    c.expect("RCPT TO:<bob@local.test>", 250);
    c.expect("RCPT TO:<postmaster@switch.test>", 250);
    // 101 Received: fields: a loop.
    let mut looping = String::new();
    for i in 0..101 {
        looping.push_str(&format!(
            "Received: from hop{i}.example by hop{}.example; Mon, 1 Dec 2025 10:00:00 +0000\r\n",
            i + 1
        ));
    }
    looping.push_str(&message(
        "someone@elsewhere.example",
        "bob@local.test",
        "loop",
    ));
    let reply = c.data(&looping);
    assert_eq!(code(&reply), (554, "5.4.6".into()), "{}", reply.1);
    // 100 are fine.
    c.expect("MAIL FROM:<someone@elsewhere.example>", 250);
    c.expect("RCPT TO:<bob@local.test>", 250);
    let hundred = looping
        .split_once("\r\n")
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or_default();
    let reply = c.data(&hundred);
    assert_eq!(reply.0, 250, "{}", reply.1);
    c.command("QUIT");
    assert!(daemon.wait_for_log(
        &["delivery", "status=\"delivered\""],
        1,
        Duration::from_secs(30)
    ));
    let files = daemon.maildir_messages("bob", "local.test");
    assert_eq!(files.len(), 1, "only the message within the hop limit");
    assert!(daemon.log().contains("mail loop"), "the loop is logged");
}

/// Reads what the server sends on a new connection: its greeting, or its refusal.
fn greeting(port: u16) -> String {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).expect("read the greeting");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn connections_past_the_limits_get_421() {
    let port = free_port();
    let daemon = Daemon::start(
        &config(
            port,
            "\"127.0.0.0/8\"",
            "\"local.test\"",
            "max_connections_per_client = 2",
        ),
        &[port],
    );
    // The harness's readiness probes have gone away.
    assert!(
        mswitch_testkit::wait_until(Duration::from_secs(10), || {
            let g = greeting(port);
            g.starts_with("220").then_some(())
        })
        .is_some()
    );
    std::thread::sleep(Duration::from_millis(200));
    let first = Client::connect(port);
    let mut second = Client::connect(port);
    let third = greeting(port);
    assert!(
        third.starts_with("421 4.7.0 "),
        "third connection from one address: {third:?}"
    );
    assert!(
        third.contains("too many connections from 127.0.0.1"),
        "{third}"
    );
    // The first two still work; when one ends, a new one is let in.
    second.expect("NOOP", 250);
    drop(first);
    let again = mswitch_testkit::wait_until(Duration::from_secs(10), || {
        let g = greeting(port);
        g.starts_with("220").then_some(g)
    });
    assert!(again.is_some(), "a slot was given back");
    assert!(daemon.log().contains("connection refused: limit reached"));
}

#[test]
fn reload_changes_new_sessions_and_keeps_open_ones() {
    let port = free_port();
    // Nobody may relay: a domain is accepted only once it is local.
    let before = config(port, "", "\"a.test\"", "");
    let mut daemon = Daemon::start(&before, &[port]);
    let mut open = Client::connect(port);
    open.expect("EHLO client.test", 250);
    // b.test is not ours yet.
    let early = open.command("MAIL FROM:<x@client.test>");
    assert_eq!(early.0, 250);
    assert_eq!(
        code(&open.command("RCPT TO:<carol@b.test>")),
        (554, "5.7.1".into())
    );
    open.expect("RSET", 250);
    let after = before.replace("\"a.test\"", "\"a.test\", \"b.test\"");
    std::fs::write(daemon.dir().join("mswitch.toml"), &after).expect("rewrite the config");
    daemon.hangup();
    assert!(
        daemon.wait_for_log(&["configuration reloaded"], 1, Duration::from_secs(30)),
        "reloaded"
    );
    // The open session still works, with the configuration it started with.
    open.expect("MAIL FROM:<x@client.test>", 250);
    assert_eq!(
        code(&open.command("RCPT TO:<carol@b.test>")),
        (554, "5.7.1".into())
    );
    open.expect("RCPT TO:<bob@a.test>", 250);
    let (code, _) = open.data(&message("x@client.test", "bob@a.test", "old session"));
    assert_eq!(code, 250);
    // A new session sees b.test as local.
    let mut new = Client::connect(port);
    new.expect("EHLO client.test", 250);
    new.expect("MAIL FROM:<x@client.test>", 250);
    new.expect("RCPT TO:<carol@b.test>", 250);
    let (code, _) = new.data(&message("x@client.test", "carol@b.test", "new session"));
    assert_eq!(code, 250);
    assert!(daemon.wait_for_log(&["status=\"delivered\""], 2, Duration::from_secs(30)));
    assert_eq!(daemon.maildir_messages("carol", "b.test").len(), 1);
    assert_eq!(daemon.maildir_messages("bob", "a.test").len(), 1);
    // A broken file is reported and the running configuration stays.
    std::fs::write(daemon.dir().join("mswitch.toml"), "[server\n").expect("break the config");
    daemon.hangup();
    assert!(daemon.wait_for_log(&["reload failed"], 1, Duration::from_secs(30)));
    open.expect("NOOP", 250);
    assert!(daemon.terminate(), "clean exit after SIGTERM");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let port = free_port();
    let daemon = Daemon::start(
        &config(
            port,
            "\"127.0.0.0/8\"",
            "\"local.test\"",
            "log_format = \"json\"",
        ),
        &[port],
    );
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<x@client.test>", 250);
    c.expect("RCPT TO:<bob@local.test>", 250);
    assert_eq!(
        c.data(&message("x@client.test", "bob@local.test", "json"))
            .0,
        250
    );
    c.command("QUIT");
    assert!(daemon.wait_for_log(&["\"message\":\"removed\""], 1, Duration::from_secs(30)));
    let log = daemon.log();
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON object: {line}"
        );
    }
    let received = log
        .lines()
        .find(|l| l.contains("\"message\":\"received\""))
        .expect("a received line");
    assert!(received.contains("\"queue_id\":\""), "{received}");
    assert!(
        received.contains("\"from\":\"<x@client.test>\""),
        "{received}"
    );
}

/// On the submission service an authenticated user sends only as its own addresses, or those
/// `[senders]` gives it: 553 5.7.1 otherwise.
#[test]
fn submission_senders_are_owned_by_the_user() {
    let port = free_port();
    let dir = mswitch_testkit::TempDir::new("mswitchd-senders");
    let passwd = format!(
        "{}{}",
        crate::delivery::password_line("alice", "secret"),
        crate::delivery::password_line("boss", "secret")
    );
    std::fs::write(dir.path().join("passwd"), passwd).expect("password file");
    let config = format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "submission"
service = "submission"
address = "127.0.0.1:{port}"
password_file = "passwd"
allow_plaintext_auth = true

[routing]
local_domains = ["example.test"]
local_channel = "local"

[senders]
boss = ["ceo@example.test", "*@board.example.test"]

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#
    );
    let _daemon = Daemon::start_in(dir, &config, &[port]);
    // AUTH PLAIN "\0user\0secret".
    let login = |user: &str| {
        let mut c = Client::connect(port);
        c.expect("EHLO client.test", 250);
        let token = match user {
            "alice" => "AGFsaWNlAHNlY3JldA==",
            _ => "AGJvc3MAc2VjcmV0",
        };
        c.expect(&format!("AUTH PLAIN {token}"), 235);
        c
    };
    let mut alice = login("alice");
    alice.expect("MAIL FROM:<alice@example.test>", 250);
    alice.expect("RSET", 250);
    let refused = alice.command("MAIL FROM:<boss@example.test>");
    assert_eq!(code(&refused), (553, "5.7.1".into()), "{}", refused.1);
    assert!(
        refused.1.contains("not owned by user alice"),
        "{}",
        refused.1
    );
    let mut boss = login("boss");
    boss.expect("MAIL FROM:<chair@board.example.test>", 250);
    boss.expect("RSET", 250);
    boss.expect("MAIL FROM:<ceo@example.test>", 250);
    boss.expect("RSET", 250);
    let refused = boss.command("MAIL FROM:<boss@example.test>");
    assert_eq!(code(&refused), (553, "5.7.1".into()), "{}", refused.1);
}

/// Submission senders assigned by the directory: the user's entry lists the addresses it may
/// use (`mail`, `mailLocalAddress`).
#[test]
fn submission_senders_from_the_directory() {
    let (port, ldap_port) = (free_port(), free_port());
    let ldif = format!(
        "{}dn: uid=dora,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\n\
         objectClass: inetLocalMailRecipient\nuid: dora\ncn: Dora\nsn: Example\n\
         mail: dora@corp.test\nmailLocalAddress: d.example@corp.test\n\n",
        mswitch_testkit::slapd::Slapd::BASE_LDIF
    );
    let _slapd = mswitch_testkit::slapd::Slapd::start(ldap_port, &ldif);
    let dir = mswitch_testkit::TempDir::new("mswitchd-dirsenders");
    std::fs::write(
        dir.path().join("passwd"),
        crate::delivery::password_line("dora", "secret"),
    )
    .expect("password file");
    let config = format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "submission"
service = "submission"
address = "127.0.0.1:{port}"
password_file = "passwd"
allow_plaintext_auth = true

[routing]
local_domains = ["corp.test"]
local_channel = "local"

[directory]
url = "ldap://127.0.0.1:{ldap_port}/"
base = "dc=example,dc=com"
domain_filter = ""
alias_filter = ""
list_filter = ""
sender_filter = "(uid={{}})"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#
    );
    let _daemon = Daemon::start_in(dir, &config, &[port]);
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    // "\0dora\0secret"
    c.expect("AUTH PLAIN AGRvcmEAc2VjcmV0", 235);
    c.expect("MAIL FROM:<d.example@corp.test>", 250);
    c.expect("RSET", 250);
    c.expect("MAIL FROM:<dora@corp.test>", 250);
    c.expect("RSET", 250);
    let refused = c.command("MAIL FROM:<ceo@corp.test>");
    assert_eq!(code(&refused), (553, "5.7.1".into()), "{}", refused.1);
}
