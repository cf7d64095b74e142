//! Interop with Postfix and Dovecot on loopback (the tests install them when missing, as root):
//! our client delivering to Postfix's smtpd with verified STARTTLS (and BDAT, which Postfix
//! offers), Postfix's smtp client relaying into our server with verified STARTTLS, and our LMTP
//! client delivering into Dovecot's LMTP server.

use std::sync::Arc;
use std::time::Duration;

use mswitch_core::address::{Address, Mailbox};
use mswitch_core::envelope::ReversePath;
use mswitch_smtp::client::{ClientConfig, Mode, Outcome, OutgoingMessage, Stage, TlsPolicy};
use mswitch_smtp::driver::{ClientDriverConfig, DriverConfig, deliver, listen};
use mswitch_smtp::proto::command::{ForwardPath, MailParams, RcptParams};
use mswitch_smtp::server::{Mode as ServerMode, ServerConfig};
use mswitch_testkit::dovecot::DovecotLmtp;
use mswitch_testkit::postfix::{Postfix, PostfixConfig};
use mswitch_testkit::{TempDir, free_port, wait_until};
use tokio::net::TcpListener;

use crate::swaks::Collect;
use crate::tls_pair::Pki;

fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).expect("test address")
}

/// A message whose body has lines that need dot-stuffing, long enough to take several reads and
/// (over BDAT) to be sent in more than one chunk.
fn body(tag: &str) -> Vec<u8> {
    let mut b = format!(
        "From: <alice@example.org>\r\nDate: Sun, 29 Nov 2026 21:00:00 +0000\r\n\
         Subject: {tag}\r\nMessage-ID: <{tag}@client.example>\r\n\r\n"
    )
    .into_bytes();
    for i in 0..3000 {
        b.extend_from_slice(
            format!(".line {i} of {tag}, dot first\r\nline {i} plain\r\n").as_bytes(),
        );
    }
    b.extend_from_slice(b".\r\n..\r\nend\r\n");
    b
}

fn message(from: &str, to: &[&str], content: &[u8]) -> OutgoingMessage {
    OutgoingMessage {
        from: ReversePath::Address(Address::Mailbox(mailbox(from))),
        mail_params: MailParams::default(),
        recipients: to
            .iter()
            .map(|r| (ForwardPath::Mailbox(mailbox(r)), RcptParams::default()))
            .collect(),
        content: Arc::from(content),
        eight_bit: false,
        smtputf8: false,
    }
}

fn ends_with(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && &haystack[haystack.len() - needle.len()..] == needle
}

/// Our server in relay (port 25) mode with STARTTLS, keeping what it receives.
async fn our_relay_server(pki: &Pki) -> (u16, Arc<Collect>) {
    let mut session = ServerConfig::new("mx.example.org", ServerMode::Smtp);
    session.starttls = true;
    let config = DriverConfig {
        session,
        tls: Some(pki.server_tls()),
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("local address").port();
    let handler = Arc::new(Collect::default());
    tokio::spawn(listen(listener, config, handler.clone()));
    (port, handler)
}

/// Our client → Postfix smtpd (STARTTLS, certificate verified by our client, BDAT) → Postfix's
/// smtp client → our server (STARTTLS, certificate verified by Postfix). Both messages arrive
/// byte for byte after the Received header Postfix adds, and both hops were encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_to_postfix_and_postfix_into_our_server_both_with_starttls() {
    let pki = Pki::new();
    let files = TempDir::new("mswitch-pem");
    let [ca, cert, key] = pki.write_server_files(files.path());
    let (our_port, handler) = our_relay_server(&pki).await;
    let postfix_port = free_port();
    let next_hop = format!("[127.0.0.1]:{our_port}");
    let postfix = tokio::task::spawn_blocking(move || {
        Postfix::start(
            PostfixConfig::new(&[postfix_port])
                .set("smtpd_tls_security_level", "may")
                .set("smtpd_tls_cert_file", cert.display().to_string())
                .set("smtpd_tls_key_file", key.display().to_string())
                .set("smtpd_tls_received_header", "yes")
                .set("relayhost", next_hop.clone())
                .set("smtp_tls_CAfile", ca.display().to_string())
                .set(
                    "smtp_tls_policy_maps",
                    format!("inline:{{ {{ {next_hop} = secure match=mx.example.org }} }}"),
                ),
        )
    })
    .await
    .expect("start Postfix");

    let mut session = ClientConfig::new("client.example", Mode::Smtp);
    session.tls = TlsPolicy::Required;
    let config = ClientDriverConfig {
        session,
        tls: Some(pki.client_tls(false)),
        server_name: "mx.example.org".into(),
    };
    let first = body("first");
    let second = body("second");
    let results = deliver(
        ([127, 0, 0, 1], postfix_port).into(),
        config,
        vec![
            message(
                "alice@example.org",
                &["bob@example.com", "carol@example.net"],
                &first,
            ),
            message("alice@example.org", &["dave@example.com"], &second),
        ],
    )
    .await
    .expect("connect to Postfix");
    assert_eq!(results.len(), 2);
    for (_, recipients) in &results {
        for r in recipients {
            assert_eq!(r.outcome, Outcome::Accepted, "{r:?}\n{}", postfix.log());
            assert!(r.from_peer);
        }
    }
    // Postfix took them over TLS from us, and offered CHUNKING, which our client used.
    assert!(
        postfix
            .wait_for_log(
                &["Anonymous TLS connection established from"],
                Duration::from_secs(5)
            )
            .is_some(),
        "{}",
        postfix.log()
    );

    let handler2 = handler.clone();
    let arrived = tokio::task::spawn_blocking(move || {
        wait_until(Duration::from_secs(60), || {
            (handler2.0.lock().expect("lock").len() >= 2).then_some(())
        })
    })
    .await
    .expect("wait");
    assert!(
        arrived.is_some(),
        "Postfix did not relay both messages:\n{}",
        postfix.log()
    );
    let verified = postfix.wait_for_log(
        &[
            "Verified TLS connection established to",
            &our_port.to_string(),
        ],
        Duration::from_secs(5),
    );
    assert!(verified.is_some(), "{}", postfix.log());

    let received = handler.0.lock().expect("lock");
    let mut seen = Vec::new();
    for m in received.iter() {
        assert!(m.tls, "Postfix relayed without TLS");
        let content = &m.content;
        let text = String::from_utf8_lossy(content);
        assert!(
            text.starts_with("Received: from client.example"),
            "{text:.300}"
        );
        assert!(
            text.contains("with ESMTPS"),
            "our client's hop was not TLS: {text:.400}"
        );
        let to: Vec<String> = m
            .recipients
            .iter()
            .map(|r| r.to.mailbox().map(|m| m.to_string()).unwrap_or_default())
            .collect();
        if ends_with(content, &first) {
            assert_eq!(to, ["bob@example.com", "carol@example.net"]);
            seen.push("first");
        } else if ends_with(content, &second) {
            assert_eq!(to, ["dave@example.com"]);
            seen.push("second");
        } else {
            panic!("a body was changed on the way: {text:.400}");
        }
    }
    seen.sort();
    assert_eq!(seen, ["first", "second"]);
}

/// Our LMTP client into Dovecot: one reply per recipient after the data, a refused recipient
/// refused alone, and the message in each Maildir, dot-unstuffed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_lmtp_client_delivers_into_dovecot() {
    let port = free_port();
    let dovecot = tokio::task::spawn_blocking(move || {
        DovecotLmtp::start(port, &["alice@example.com", "bob@example.com"])
    })
    .await
    .expect("start Dovecot");
    let mut session = ClientConfig::new("mswitch.example", Mode::Lmtp);
    session.tls = TlsPolicy::None;
    let config = ClientDriverConfig {
        session,
        tls: None,
        server_name: "localhost".into(),
    };
    let first = body("lmtp-first");
    let second = body("lmtp-second");
    let results = deliver(
        ([127, 0, 0, 1], port).into(),
        config,
        vec![
            message(
                "sender@example.org",
                &[
                    "alice@example.com",
                    "nobody-here@example.com",
                    "BOB@example.com",
                ],
                &first,
            ),
            message("sender@example.org", &["alice@example.com"], &second),
        ],
    )
    .await
    .expect("connect to Dovecot");
    let outcomes: Vec<(Outcome, u16, String, Stage)> = results
        .iter()
        .flat_map(|(_, r)| r.iter())
        .map(|r| {
            (
                r.outcome,
                r.status.code,
                r.status.enhanced.to_string(),
                r.stage,
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (Outcome::Accepted, 250, "2.0.0".into(), Stage::Content),
            (Outcome::PermanentFailure, 550, "5.1.1".into(), Stage::Rcpt),
            (Outcome::Accepted, 250, "2.0.0".into(), Stage::Content),
            (Outcome::Accepted, 250, "2.0.0".into(), Stage::Content),
        ],
        "{results:?}\n{}",
        dovecot.log()
    );
    let alice = dovecot.messages("alice@example.com");
    let bob = dovecot.messages("bob@example.com");
    assert_eq!(alice.len(), 2, "{}", dovecot.log());
    assert_eq!(bob.len(), 1, "{}", dovecot.log());
    // Dovecot prepends Return-Path and Received, and stores lines with LF endings; the message
    // itself is unchanged.
    let stored = |m: &[u8]| {
        String::from_utf8_lossy(m)
            .replace("\r\n", "\n")
            .into_bytes()
    };
    let (first, second) = (stored(&first), stored(&second));
    assert!(
        alice
            .iter()
            .all(|m| ends_with(m, &first) || ends_with(m, &second))
    );
    assert!(ends_with(&bob[0], &first));
    let text = String::from_utf8_lossy(&bob[0]);
    assert!(
        text.starts_with("Return-Path: <sender@example.org>"),
        "{text:.300}"
    );
}
