//! STARTTLS injection and AUTH through a running switch: commands sent in clear after
//! STARTTLS are never executed, and replies a peer sends in clear after its 220 are never
//! believed; no password mechanism before TLS on submission; the 503, 501,
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

/// A downstream server that answers STARTTLS with its 220 and, in the same packet and still in
/// clear, forged replies (CVE-2011-0411 class, client side), then speaks honest SMTP under TLS
/// and records every command it gets there. Returns the recorded commands and content.
fn hostile_server(
    port: u16,
    dir: &std::path::Path,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::{Read, Write};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let cert = std::fs::read(dir.join("server.pem")).expect("certificate");
    let key = std::fs::read(dir.join("server.key")).expect("key");
    let cfg =
        mswitch_smtp::tls::server_config(&cert, &key, mswitch_smtp::tls::ClientCertAuth::None)
            .expect("TLS server config");
    let socket = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind");
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in socket.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
            let mut buf = [0u8; 16 * 1024];
            let mut input: Vec<u8> = Vec::new();
            // In clear: greeting, EHLO, STARTTLS.
            let _ = s.write_all(b"220 hostile.test ESMTP\r\n");
            let mut line = |s: &mut std::net::TcpStream, input: &mut Vec<u8>| -> Option<String> {
                loop {
                    if let Some(end) = input.windows(2).position(|w| w == b"\r\n") {
                        let l: Vec<u8> = input.drain(..end + 2).take(end).collect();
                        return Some(String::from_utf8_lossy(&l).into_owned());
                    }
                    let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
                    input.extend_from_slice(&buf[..n]);
                }
            };
            let Some(_ehlo) = line(&mut s, &mut input) else {
                continue;
            };
            let _ = s.write_all(b"250-hostile.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
            let Some(starttls) = line(&mut s, &mut input) else {
                continue;
            };
            if !starttls.eq_ignore_ascii_case("STARTTLS") {
                continue;
            }
            let _ = s.write_all(
                b"220 2.0.0 Ready to start TLS\r\n554 5.7.1 injected refusal\r\n\
                  250-hostile.test\r\n250 injected\r\n",
            );
            let Ok(mut tls) = mswitch_smtp::tls::TlsStream::server(cfg.clone()) else {
                continue;
            };
            let mut plain: Vec<u8> = Vec::new();
            let mut read_tls = |s: &mut std::net::TcpStream,
                                tls: &mut mswitch_smtp::tls::TlsStream,
                                plain: &mut Vec<u8>|
             -> bool {
                let Some(n) = s.read(&mut buf).ok().filter(|&n| n > 0) else {
                    return false;
                };
                let Ok(p) = tls.decrypt(&buf[..n]) else {
                    return false;
                };
                let _ = s.write_all(&tls.take_ciphertext());
                plain.extend_from_slice(&p);
                true
            };
            let send =
                |s: &mut std::net::TcpStream, tls: &mut mswitch_smtp::tls::TlsStream, b: &[u8]| {
                    if tls.encrypt(b).is_ok() {
                        let _ = s.write_all(&tls.take_ciphertext());
                    }
                };
            let mut in_data = false;
            'session: loop {
                if in_data {
                    if let Some(end) = plain.windows(5).position(|w| w == b"\r\n.\r\n") {
                        let content: Vec<u8> = plain.drain(..end + 5).collect();
                        if let Ok(mut r) = record.lock() {
                            r.push(format!("CONTENT {}", String::from_utf8_lossy(&content)));
                        }
                        in_data = false;
                        send(&mut s, &mut tls, b"250 2.0.0 queued\r\n");
                        continue;
                    }
                } else if let Some(end) = plain.windows(2).position(|w| w == b"\r\n") {
                    let l: Vec<u8> = plain.drain(..end + 2).take(end).collect();
                    let l = String::from_utf8_lossy(&l).into_owned();
                    if let Ok(mut r) = record.lock() {
                        r.push(l.clone());
                    }
                    let verb = l.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-hostile.test\r\n250 PIPELINING\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            send(&mut s, &mut tls, b"221 2.0.0 bye\r\n");
                            break 'session;
                        }
                        _ => b"250 2.0.0 ok\r\n",
                    };
                    send(&mut s, &mut tls, reply);
                    continue;
                }
                if !read_tls(&mut s, &mut tls, &mut plain) {
                    break;
                }
            }
        }
    });
    seen
}

#[test]
fn replies_injected_after_a_peers_starttls_are_never_believed() {
    let (port, hostile) = (free_port(), free_port());
    let dir = TempDir::new("mswitchd-hostile-peer");
    write_certificate(dir.path());
    let seen = hostile_server(hostile, dir.path());
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

[[route]]
domain = "remote.test"
channel = "out"
host = "127.0.0.1:{hostile}"

[[channel]]
name = "out"
type = "smtp"
tls = "opportunistic"
connection_idle = "off"
"#
    );
    let daemon = Daemon::start(&config, &[port]);
    let mut c = Raw::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<rcpt@remote.test>", 250);
    c.expect("DATA", 354);
    c.send(b"Subject: through a hostile peer\r\n\r\nbody\r\n.\r\n");
    assert_eq!(c.reply().code, 250, "{}", c.transcript);
    c.expect("QUIT", 221);
    // Had the switch believed the forged 554 (or 250) sent in clear, the transaction under TLS
    // would be out of step: refused, or DATA sent before its 354.
    assert!(
        daemon.wait_for_log(
            &["delivery", "to=<rcpt@remote.test>", "status=\"sent\""],
            1,
            super::WAIT
        ),
        "{}",
        daemon.log()
    );
    let seen = seen.lock().expect("recording").clone();
    let verbs: Vec<String> = seen
        .iter()
        .map(|l| {
            l.split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase()
        })
        .collect();
    assert_eq!(
        verbs,
        ["EHLO", "MAIL", "RCPT", "DATA", "CONTENT", "QUIT"],
        "{seen:?}"
    );
    assert!(seen[4].contains("through a hostile peer"), "{seen:?}");
    assert!(!daemon.log().contains("injected"), "{}", daemon.log());
}
