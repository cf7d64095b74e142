//! STARTTLS injection and AUTH through a running switch: commands sent in clear after
//! STARTTLS are never executed; no password mechanism before TLS on submission; the 503, 501,
//! 504, 535 edge cases; password guessing throttled per client address and per user name
//! across sessions and listeners, with one reply whether the user exists or not.

use std::net::Ipv4Addr;
use std::time::Duration;

use mswitch_testkit::{TempDir, free_port};

use super::{Raw, password_line, write_certificate};
use crate::common::Daemon;

/// AUTH PLAIN initial response for `user` / `password`.
fn plain(user: &str, password: &str) -> String {
    mswitch_smtp::sasl::encode(format!("\0{user}\0{password}").as_bytes())
}

fn b64(s: &str) -> String {
    mswitch_smtp::sasl::encode(s.as_bytes())
}

/// A relay and a submission listener, both with STARTTLS and the same users (alice, bob;
/// password "secret"), passwords only under TLS; `extra` goes into `[server]`.
fn start(extra: &str) -> (Daemon, u16, u16) {
    let (relay, submission) = (free_port(), free_port());
    let dir = TempDir::new("mswitchd-auth");
    write_certificate(dir.path());
    let users = format!(
        "{}{}",
        password_line("alice", "secret"),
        password_line("bob", "secret")
    );
    std::fs::write(dir.path().join("passwd"), users).expect("password file");
    let config = format!(
        r#"[server]
hostname = "switch.test"
{extra}

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{relay}"
tls_cert = "server.pem"
tls_key = "server.key"
password_file = "passwd"

[[listener]]
name = "submission"
service = "submission"
address = "127.0.0.1:{submission}"
tls_cert = "server.pem"
tls_key = "server.key"
password_file = "passwd"

[routing]
local_domains = ["local.test"]
local_channel = "local"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#
    );
    let daemon = Daemon::start_in(dir, &config, &[relay, submission]);
    (daemon, relay, submission)
}

/// A session from `source` that has done STARTTLS and EHLO again.
fn tls_session(source: Ipv4Addr, port: u16) -> Raw {
    let mut c = Raw::connect_from(source, port);
    c.expect("EHLO client.test", 250);
    c.expect("STARTTLS", 220);
    c.start_tls();
    c.expect("EHLO client.test", 250);
    c
}

#[test]
fn commands_injected_after_starttls_are_never_executed() {
    let (daemon, relay, submission) = start("");
    // Relay service: a MAIL sent in clear behind STARTTLS, in the same packet.
    let mut c = Raw::connect(relay);
    c.expect("EHLO attacker.example", 250);
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\nRCPT TO:<bob@local.test>\r\n");
    assert_eq!(c.reply().status(), "220 2.0.0", "{}", c.transcript);
    c.start_tls();
    // Nothing answers the injected commands...
    assert!(
        c.try_reply(Duration::from_millis(700)).is_none(),
        "{}",
        c.transcript
    );
    // ...and they left no state: the session starts over, with no transaction.
    c.expect("EHLO attacker.example", 250);
    let r = c.cmd("RCPT TO:<bob@local.test>");
    assert_eq!(r.status(), "503 5.5.1", "{}", c.transcript);
    // Control: the same commands, sent under TLS, do work.
    c.expect("MAIL FROM:<real@client.test>", 250);
    c.expect("RCPT TO:<bob@local.test>", 250);
    c.expect("QUIT", 221);

    // Submission: a valid AUTH injected behind STARTTLS does not authenticate.
    let mut c = Raw::connect(submission);
    c.expect("EHLO attacker.example", 250);
    c.send(format!("STARTTLS\r\nAUTH PLAIN {}\r\n", plain("alice", "secret")).as_bytes());
    assert_eq!(c.reply().code, 220, "{}", c.transcript);
    c.start_tls();
    assert!(
        c.try_reply(Duration::from_millis(700)).is_none(),
        "{}",
        c.transcript
    );
    c.expect("EHLO attacker.example", 250);
    let r = c.cmd("MAIL FROM:<alice@local.test>");
    assert_eq!(r.status(), "530 5.7.0", "{}", c.transcript);
    c.expect(&format!("AUTH PLAIN {}", plain("alice", "secret")), 235);
    c.expect("MAIL FROM:<alice@local.test>", 250);
    assert!(!daemon.log().contains("injected"), "{}", daemon.log());
}

#[test]
fn no_password_mechanism_before_tls_on_submission() {
    let (_daemon, _relay, submission) = start("");
    let mut c = Raw::connect(submission);
    let ehlo = c.expect("EHLO client.test", 250);
    let auth_line = ehlo
        .text
        .lines()
        .find(|l| l[4..].starts_with("AUTH"))
        .unwrap_or("");
    assert!(
        !auth_line.contains("PLAIN") && !auth_line.contains("LOGIN"),
        "offered in clear: {}",
        ehlo.text
    );
    assert!(ehlo.text.contains("STARTTLS"), "{}", ehlo.text);
    let r = c.cmd(&format!("AUTH PLAIN {}", plain("alice", "secret")));
    assert_eq!(r.status(), "538 5.7.11", "{}", r.text);
    let r = c.cmd("AUTH LOGIN");
    assert_eq!(r.status(), "538 5.7.11", "{}", r.text);
    let r = c.cmd("MAIL FROM:<alice@local.test>");
    assert_eq!(r.status(), "530 5.7.0", "{}", r.text);
    // Under TLS the same credentials work.
    c.expect("STARTTLS", 220);
    c.start_tls();
    let ehlo = c.expect("EHLO client.test", 250);
    assert!(ehlo.text.contains("PLAIN LOGIN"), "{}", ehlo.text);
    c.expect(&format!("AUTH PLAIN {}", plain("alice", "secret")), 235);
    c.expect("MAIL FROM:<alice@local.test>", 250);
}

#[test]
fn auth_edge_cases_get_their_codes_and_unknown_users_look_like_wrong_passwords() {
    let (daemon, _relay, submission) = start("");
    let mut c = Raw::connect(submission);
    c.expect("EHLO client.test", 250);
    c.expect("STARTTLS", 220);
    c.start_tls();
    // STARTTLS forgot the greeting.
    assert_eq!(c.cmd("AUTH PLAIN").status(), "503 5.5.1");
    c.expect("EHLO client.test", 250);
    assert_eq!(c.cmd("AUTH CRAM-MD5").status(), "504 5.5.4");
    // Cancelled, and not base64.
    assert_eq!(c.cmd("AUTH PLAIN").code, 334);
    assert_eq!(c.cmd("*").status(), "501 5.0.0");
    assert_eq!(c.cmd("AUTH PLAIN !!!not-base64!!!").status(), "501 5.5.2");
    // A wrong password and an unknown user: the same reply, word for word.
    let wrong = c.cmd(&format!("AUTH PLAIN {}", plain("alice", "guess")));
    assert_eq!(wrong.status(), "535 5.7.8", "{}", wrong.text);
    assert_eq!(c.cmd("AUTH LOGIN").code, 334);
    assert_eq!(c.cmd(&b64("nosuchuser")).code, 334);
    let unknown = c.cmd(&b64("guess"));
    assert_eq!(unknown.text, wrong.text);
    // The third failure in one session ends it.
    let third = c.cmd(&format!("AUTH PLAIN {}", plain("nosuchuser", "x")));
    assert_eq!(third.text, wrong.text);
    let bye = c.reply();
    assert_eq!(bye.status(), "421 4.7.0", "{}", bye.text);
    assert!(c.is_closed_within(Duration::from_secs(10)));
    // Authenticated: a second AUTH, and AUTH inside a transaction, are out of order.
    let mut c = tls_session(Ipv4Addr::new(127, 0, 0, 1), submission);
    c.expect(&format!("AUTH PLAIN {}", plain("bob", "secret")), 235);
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {}", plain("bob", "secret")))
            .status(),
        "503 5.5.1"
    );
    let mut c = tls_session(Ipv4Addr::new(127, 0, 0, 1), submission);
    c.expect("EHLO client.test", 250);
    // The log names the client and the user, and says the same of both kinds of failure.
    std::thread::sleep(Duration::from_millis(300));
    let log = daemon.log();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("authentication failed"))
        .collect();
    assert_eq!(failed.len(), 3, "{log}");
    assert!(failed[0].contains("client=127.0.0.1:") && failed[0].contains("user=\"alice\""));
    assert!(failed[1].contains("user=\"nosuchuser\"") && failed[1].contains("mechanism=LOGIN"));
    let shape = |l: &str| {
        l.split_whitespace()
            .skip(2)
            .map(|f| f.split('=').next().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(failed[0]), shape(failed[2]), "{log}");
    assert!(!log.contains("guess") && !log.contains("secret"), "{log}");
    assert!(!log.to_lowercase().contains("unknown user"), "{log}");
}

#[test]
fn password_guessing_is_throttled_per_client_and_per_user() {
    let (daemon, relay, submission) = start(
        "auth_failures_per_client = 4\nauth_failures_per_user = 3\nauth_failure_window = \"12s\"",
    );
    let ip = |n: u8| Ipv4Addr::new(127, 0, 0, n);
    let try_login = |from: Ipv4Addr, port: u16, user: &str, password: &str| {
        let mut c = tls_session(from, port);
        c.cmd(&format!("AUTH PLAIN {}", plain(user, password)))
    };
    // Per user: three guesses for bob (who exists) and for ghost (who does not), each from
    // its own address, one per session.
    for user in ["bob", "ghost"] {
        let from = if user == "bob" { ip(2) } else { ip(4) };
        for _ in 0..3 {
            assert_eq!(
                try_login(from, submission, user, "guess").status(),
                "535 5.7.8"
            );
        }
    }
    // Now the right password, from a clean address, is refused; ghost gets the same reply.
    let bob = try_login(ip(3), submission, "bob", "secret");
    assert_eq!(bob.status(), "454 4.7.0", "{}", bob.text);
    let ghost = try_login(ip(3), submission, "ghost", "secret");
    assert_eq!(ghost.text, bob.text);
    // Other users are not affected, from that address.
    assert_eq!(try_login(ip(3), submission, "alice", "secret").code, 235);

    // Per client: four guesses from 127.0.0.6, each for another name.
    for i in 0..4 {
        let r = try_login(ip(6), submission, &format!("user{i}"), "guess");
        assert_eq!(r.status(), "535 5.7.8", "{}", r.text);
    }
    let last_failure = std::time::Instant::now();
    // Then even alice's right password from there is refused, on both listeners...
    assert_eq!(
        try_login(ip(6), submission, "alice", "secret").status(),
        "454 4.7.0"
    );
    assert_eq!(
        try_login(ip(6), relay, "alice", "secret").status(),
        "454 4.7.0"
    );
    // ...but not from another address.
    assert_eq!(try_login(ip(7), submission, "alice", "secret").code, 235);

    // The log names client and user, and which limit.
    let log = daemon.log();
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("authentication refused: too many failures"))
        .collect();
    assert!(
        refused.iter().any(|l| l.contains("client=127.0.0.3:")
            && l.contains("user=\"bob\"")
            && l.contains("limit=\"user\"")),
        "{log}"
    );
    assert!(
        refused
            .iter()
            .any(|l| l.contains("client=127.0.0.6:") && l.contains("limit=\"client\"")),
        "{log}"
    );
    assert_eq!(refused.len(), 4, "{log}");

    // Once the window (12 s, long enough for a loaded machine to get here) has passed, bob
    // and 127.0.0.6 may log in again.
    let window_end = last_failure + Duration::from_secs(13);
    std::thread::sleep(window_end.saturating_duration_since(std::time::Instant::now()));
    assert_eq!(try_login(ip(3), submission, "bob", "secret").code, 235);
    assert_eq!(try_login(ip(6), submission, "alice", "secret").code, 235);
}
