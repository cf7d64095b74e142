//! The client driver delivering to the server driver over real TCP on loopback: STARTTLS with
//! certificate verification, SCRAM-SHA-256 authentication, several messages on one connection.

use std::sync::Arc;

use mswitch_core::address::{Address, Mailbox};
use mswitch_core::envelope::ReversePath;
use mswitch_smtp::client::{ClientAuth, ClientConfig, Mode, Outcome, OutgoingMessage, TlsPolicy};
use mswitch_smtp::driver::{ClientDriverConfig, deliver};
use mswitch_smtp::proto::command::{ForwardPath, MailParams, RcptParams};

use crate::swaks::start_with;
use crate::tls_pair::Pki;

fn message(n: usize) -> OutgoingMessage {
    let mailbox = |s: &str| Mailbox::parse(s).expect("test address");
    OutgoingMessage {
        from: ReversePath::Address(Address::Mailbox(mailbox("alice@example.org"))),
        mail_params: MailParams::default(),
        recipients: vec![(
            ForwardPath::Mailbox(mailbox("bob@example.com")),
            RcptParams::default(),
        )],
        content: Arc::from(format!("Subject: {n}\r\n\r\n.leading dot {n}\r\n").as_bytes()),
        eight_bit: false,
        smtputf8: false,
    }
}

fn client(pki: &Pki, password: &str) -> ClientDriverConfig {
    let mut session = ClientConfig::new("client.example", Mode::Smtp);
    session.tls = TlsPolicy::Required;
    session.auth = Some(ClientAuth {
        authcid: "alice".into(),
        password: password.into(),
        authzid: None,
        allow_plaintext: false,
    });
    ClientDriverConfig {
        session,
        tls: Some(pki.client_tls(false)),
        server_name: "mx.example.org".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_driver_delivers_to_server_driver_over_tls_with_scram() {
    let pki = Pki::new();
    let (port, handler) = start_with(&pki).await;
    let peer = ([127, 0, 0, 1], port).into();
    let results = deliver(peer, client(&pki, "secret"), (0..3).map(message).collect())
        .await
        .expect("connected");
    assert_eq!(results.len(), 3);
    for (_, r) in &results {
        assert_eq!(r[0].outcome, Outcome::Accepted, "{r:?}");
    }
    let received = handler.0.lock().expect("lock");
    assert_eq!(received.len(), 3);
    for (n, m) in received.iter().enumerate() {
        assert!(m.tls);
        assert_eq!(m.authenticated.as_deref(), Some("alice"));
        let expected = format!("Subject: {n}\r\n\r\n.leading dot {n}\r\n");
        assert_eq!(m.content, expected.as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_or_wrong_ca_defers_every_message() {
    let pki = Pki::new();
    let (port, handler) = start_with(&pki).await;
    let peer = ([127, 0, 0, 1], port).into();
    let results = deliver(peer, client(&pki, "guess"), vec![message(0)])
        .await
        .expect("connected");
    assert_eq!(results[0].1[0].outcome, Outcome::TemporaryFailure);
    assert_eq!(results[0].1[0].status.enhanced.to_string(), "4.7.8");
    // A client that trusts another CA: the handshake fails, the message waits.
    let other = Pki::new();
    let results = deliver(peer, client(&other, "secret"), vec![message(1)])
        .await
        .expect("connected");
    assert_eq!(results[0].1[0].outcome, Outcome::TemporaryFailure);
    assert_eq!(results[0].1[0].status.enhanced.to_string(), "4.7.5");
    assert!(handler.0.lock().expect("lock").is_empty());
}
