//! swaks, a real SMTP client, against the tokio driver on loopback: STARTTLS and AUTH.
//!
//! Needs `swaks` with its TLS modules: `apt-get install swaks libnet-ssleay-perl
//! libio-socket-ssl-perl` (`.ci/run` installs them).

use std::sync::{Arc, Mutex};

use mswitch_core::envelope::ReversePath;
use mswitch_core::status::Status;
use mswitch_smtp::driver::{DriverConfig, Handler, Message, listen};
use mswitch_smtp::proto::command::{ForwardPath, MailParams, RcptParams};
use mswitch_smtp::sasl::{PasswordFile, hash_password};
use mswitch_smtp::server::session::AuthConfig;
use mswitch_smtp::server::{Mode, ServerConfig};
use tokio::net::TcpListener;
use tokio::process::Command;

use crate::tls_pair::Pki;

/// Accepts everything and keeps the messages.
#[derive(Default)]
pub(crate) struct Collect(pub(crate) Mutex<Vec<Message>>);

impl Handler for Collect {
    async fn mail(&self, _: &ReversePath, _: &MailParams) -> Status {
        Status::new(250, (2, 1, 0), "Sender OK")
    }

    async fn rcpt(&self, _: &ForwardPath, _: &RcptParams) -> Status {
        Status::new(250, (2, 1, 5), "Recipient OK")
    }

    async fn message(&self, message: Message) -> Vec<Status> {
        self.0.lock().expect("lock").push(message);
        vec![Status::new(250, (2, 0, 0), "Queued")]
    }
}

fn swaks_installed() -> bool {
    std::process::Command::new("swaks")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Starts the driver on a loopback port: submission service, STARTTLS, AUTH for alice.
async fn start() -> (u16, Arc<Collect>) {
    start_with(&Pki::new()).await
}

/// The same, with the certificates of `pki`.
pub(crate) async fn start_with(pki: &Pki) -> (u16, Arc<Collect>) {
    let verifier = hash_password("secret", b"0123456789abcdef", 4096).expect("hash");
    let users = PasswordFile::parse(&format!("alice:{verifier}\n")).expect("password file");
    let mut session = ServerConfig::new("mx.example.org", Mode::Submission);
    session.starttls = true;
    session.auth = Some(AuthConfig::new(Arc::new(users)));
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

async fn swaks(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--from", "alice@example.org", "--to", "bob@example.com"])
        .args(["--helo", "client.example", "--timeout", "20"])
        .args(args)
        .output()
        .await
        .expect("run swaks");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_submits_with_starttls_and_auth() {
    assert!(
        swaks_installed(),
        "swaks is not installed: apt-get install swaks libnet-ssleay-perl libio-socket-ssl-perl"
    );
    let (port, handler) = start().await;
    for mechanism in ["PLAIN", "LOGIN"] {
        let body = format!("hello from swaks with {mechanism}");
        let (ok, transcript) = swaks(
            port,
            &[
                "--tls",
                "--auth",
                mechanism,
                "--auth-user",
                "alice",
                "--auth-password",
                "secret",
                "--header",
                "Subject: interop",
                "--body",
                &body,
            ],
        )
        .await;
        assert!(ok, "swaks failed with {mechanism}:\n{transcript}");
        if std::env::var_os("MSWITCH_SHOW_TRANSCRIPT").is_some() {
            eprintln!("{transcript}");
        }
        assert!(transcript.contains("235 2.7.0"), "{transcript}");
        let messages = handler.0.lock().expect("lock");
        let m = messages.last().expect("a message arrived");
        assert_eq!(m.authenticated.as_deref(), Some("alice"));
        assert!(m.tls, "delivered under TLS");
        let content = String::from_utf8_lossy(&m.content);
        assert!(content.contains(&body), "{content}");
        assert!(content.contains("Subject: interop"), "{content}");
    }
    assert_eq!(handler.0.lock().expect("lock").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_cannot_submit_without_tls_and_auth() {
    assert!(
        swaks_installed(),
        "swaks is not installed: apt-get install swaks libnet-ssleay-perl libio-socket-ssl-perl"
    );
    let (port, handler) = start().await;
    // A password over plaintext: PLAIN is not even offered before TLS.
    let (ok, transcript) = swaks(
        port,
        &[
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "secret",
        ],
    )
    .await;
    assert!(!ok, "AUTH PLAIN in clear must fail:\n{transcript}");
    // No authentication at all on the submission service: 530 at MAIL.
    let (ok, transcript) = swaks(port, &["--tls"]).await;
    assert!(!ok, "unauthenticated submission must fail:\n{transcript}");
    assert!(transcript.contains("530 5.7.0"), "{transcript}");
    assert!(handler.0.lock().expect("lock").is_empty());
}
