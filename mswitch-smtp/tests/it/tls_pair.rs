//! STARTTLS end to end without sockets: the client session against the server session, the
//! bytes passing in plaintext until each side's `StartTls` event and then through two rustls
//! connections in memory ([`TlsStream`]), with certificates made at test time by rcgen and a
//! virtual clock that never moves.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use mswitch_core::address::{Address, Mailbox};
use mswitch_core::envelope::ReversePath;
use mswitch_core::status::Status;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use mswitch_smtp::client::{
    ClientConfig, ClientSession, CloseReason, Event as ClientEvent, Mode as ClientMode, Outcome,
    OutgoingMessage, RecipientResult, Stage, TlsPolicy,
};
use mswitch_smtp::proto::command::{ForwardPath, MailParams, RcptParams};
use mswitch_smtp::proto::reply::{Reply, ReplyParser};
use mswitch_smtp::sasl::{ClientExchange, ClientMechanism, PasswordFile, hash_password};
use mswitch_smtp::server::session::AuthConfig;
use mswitch_smtp::server::{Event as ServerEvent, Mode as ServerMode, ServerConfig, ServerSession};
use mswitch_smtp::tls::{
    CertifiedKeyPem, ClientCertAuth, TlsError, TlsStream, Verification, client_config,
    server_config,
};

const SERVER_NAME: &str = "mx.example.org";
const CLIENT_NAME: &str = "client.example.net";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";
/// A line that must be dot-stuffed on the wire and unstuffed by the server.
const BODY: &[u8] =
    b"Subject: over TLS\r\n\r\nConfidential: the eagle lands at noon.\r\n.leading dot\r\n";

// ---- certificates ----

/// A certificate authority made at test time.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: Vec<u8>,
}

/// A certificate and its key, PEM.
struct Leaf {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Leaf {
    fn pem(&self) -> CertifiedKeyPem<'_> {
        CertifiedKeyPem {
            cert_chain: &self.cert,
            key: &self.key,
        }
    }
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let pem = params
            .self_signed(&key)
            .expect("CA certificate")
            .pem()
            .into_bytes();
        Ca { params, key, pem }
    }

    fn leaf(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("names");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        Leaf {
            cert: cert.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
        }
    }

    fn server(&self, name: &str) -> Leaf {
        self.leaf(name, &[name], ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// The CA, the server's certificate for [`SERVER_NAME`] and a client certificate for [`USER`].
pub(crate) struct Pki {
    ca: Ca,
    server: Leaf,
    client: Leaf,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let ca = Ca::new("mswitch test CA");
        let server = ca.server(SERVER_NAME);
        let client = ca.client(USER);
        Pki { ca, server, client }
    }

    pub(crate) fn server_tls(&self) -> Arc<rustls::ServerConfig> {
        server_config(
            &self.server.cert,
            &self.server.key,
            ClientCertAuth::Optional(self.ca.pem.clone()),
        )
        .expect("server TLS config")
    }

    /// Writes the CA certificate, the server's certificate and its key as PEM files into
    /// `dir` (for peers such as Postfix); returns their paths in that order.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn write_server_files(&self, dir: &std::path::Path) -> [std::path::PathBuf; 3] {
        let files = [
            (dir.join("ca.pem"), &self.ca.pem),
            (dir.join("server.pem"), &self.server.cert),
            (dir.join("server.key"), &self.server.key),
        ];
        for (path, pem) in &files {
            std::fs::write(path, pem).expect("write a PEM file");
        }
        files.map(|(path, _)| path)
    }

    pub(crate) fn client_tls(&self, client_cert: bool) -> Arc<rustls::ClientConfig> {
        let cert = client_cert.then(|| self.client.pem());
        client_config(Verification::CaFile(self.ca.pem.clone()), cert).expect("client TLS config")
    }
}

// ---- sessions ----

fn server_session(now: Instant, chunking: bool) -> ServerSession {
    let verifier = hash_password(PASSWORD, b"0123456789abcdef", 4096).expect("hash");
    let users = PasswordFile::parse(&format!("{USER}:{verifier}\n")).expect("password file");
    let mut config = ServerConfig::new(SERVER_NAME, ServerMode::Smtp);
    config.starttls = true;
    config.chunking = chunking;
    config.auth = Some(AuthConfig::new(Arc::new(users)));
    let mut server = ServerSession::new(config, now);
    server.set_entropy([7; 32]);
    server
}

fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).expect("test address")
}

fn message(recipients: &[&str]) -> OutgoingMessage {
    OutgoingMessage {
        from: ReversePath::Address(Address::Mailbox(mailbox("sender@example.net"))),
        mail_params: MailParams::default(),
        recipients: recipients
            .iter()
            .map(|r| (ForwardPath::Mailbox(mailbox(r)), RcptParams::default()))
            .collect(),
        content: Arc::from(BODY),
        eight_bit: false,
        smtputf8: false,
    }
}

/// A forward-path as `<mailbox>`.
fn path(to: &ForwardPath) -> String {
    match to.mailbox() {
        Some(m) => format!("<{m}>"),
        None => "<Postmaster>".into(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ---- the client session against the server session ----

/// The two sessions, their TLS connections once started, and the wire between them.
struct Pair {
    now: Instant,
    client: ClientSession,
    server: ServerSession,
    client_config: Arc<rustls::ClientConfig>,
    server_config: Arc<rustls::ServerConfig>,
    /// The name the client connects to (SNI, and the name its certificate must carry).
    connect_to: String,
    client_tls: Option<TlsStream>,
    server_tls: Option<TlsStream>,
    /// In flight.
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    /// Everything that crossed the wire each way: what an eavesdropper sees.
    wire_to_server: Vec<u8>,
    wire_to_client: Vec<u8>,
    /// The server's plaintext replies, with whether TLS was on when they were made.
    server_said: Vec<(bool, String)>,
    /// The server's events, in order.
    server_events: Vec<ServerEvent>,
    /// Messages still to hand to the client.
    outbox: VecDeque<OutgoingMessage>,
    /// Results per message, in order.
    delivered: Vec<Vec<RecipientResult>>,
    closed: Option<CloseReason>,
    /// TLS errors: (on the client side, error).
    tls_errors: Vec<(bool, TlsError)>,
    /// Connection ended on that side (after a TLS failure, or the session's close).
    server_gone: bool,
    client_gone: bool,
    /// A man in the middle appends these, in plaintext, right after the server's 220 to
    /// STARTTLS (the same segment).
    inject_after_220: Vec<u8>,
    /// The client pipelines these right after STARTTLS (the same write).
    pipelined_after_starttls: Vec<u8>,
}

impl Pair {
    fn new(pki: &Pki, client_config: Arc<rustls::ClientConfig>, chunking: bool) -> Self {
        let now = Instant::now();
        let mut config = ClientConfig::new(CLIENT_NAME, ClientMode::Smtp);
        config.tls = TlsPolicy::Required;
        Pair {
            now,
            client: ClientSession::new(config, now),
            server: server_session(now, chunking),
            client_config,
            server_config: pki.server_tls(),
            connect_to: SERVER_NAME.into(),
            client_tls: None,
            server_tls: None,
            to_server: Vec::new(),
            to_client: Vec::new(),
            wire_to_server: Vec::new(),
            wire_to_client: Vec::new(),
            server_said: Vec::new(),
            server_events: Vec::new(),
            outbox: VecDeque::new(),
            delivered: Vec::new(),
            closed: None,
            tls_errors: Vec::new(),
            server_gone: false,
            client_gone: false,
            inject_after_220: Vec::new(),
            pipelined_after_starttls: Vec::new(),
        }
    }

    fn send_to_client(&mut self, bytes: &[u8]) {
        self.to_client.extend_from_slice(bytes);
        self.wire_to_client.extend_from_slice(bytes);
    }

    fn send_to_server(&mut self, bytes: &[u8]) {
        self.to_server.extend_from_slice(bytes);
        self.wire_to_server.extend_from_slice(bytes);
    }

    /// Runs both sides until nothing moves.
    fn run(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the sessions never settled");
    }

    /// One round: each side's output and events, then the wire both ways. Whether anything
    /// happened.
    fn step(&mut self) -> bool {
        let mut moved = self.server_side();
        moved |= self.client_side();
        if !self.to_server.is_empty() {
            let bytes = std::mem::take(&mut self.to_server);
            self.deliver_to_server(&bytes);
            moved = true;
        }
        if !self.to_client.is_empty() {
            let bytes = std::mem::take(&mut self.to_client);
            self.deliver_to_client(&bytes);
            moved = true;
        }
        moved
    }

    fn server_side(&mut self) -> bool {
        let mut moved = false;
        if self.server_gone {
            return false;
        }
        while let Some(out) = self.server.poll_output() {
            moved = true;
            self.server_said.push((
                self.server.is_tls(),
                String::from_utf8_lossy(&out).into_owned(),
            ));
            match &mut self.server_tls {
                Some(tls) => {
                    tls.encrypt(&out).expect("server encrypt");
                    let records = tls.take_ciphertext();
                    self.send_to_client(&records);
                }
                None => self.send_to_client(&out),
            }
        }
        while let Some(event) = self.server.poll_event() {
            moved = true;
            let decision = match &event {
                ServerEvent::Mail { .. } => Some(Status::new(250, (2, 1, 0), "Sender OK")),
                ServerEvent::Rcpt { .. } => Some(Status::new(250, (2, 1, 5), "Recipient OK")),
                ServerEvent::Message { .. } => Some(Status::new(250, (2, 0, 0), "Queued")),
                ServerEvent::StartTls => {
                    // The 220 went out in plaintext above; from now on, records only.
                    let tls = TlsStream::server(self.server_config.clone()).expect("server TLS");
                    self.server_tls = Some(tls);
                    let injected = std::mem::take(&mut self.inject_after_220);
                    self.send_to_client(&injected);
                    None
                }
                ServerEvent::Close => {
                    self.server_gone = true;
                    None
                }
                _ => None,
            };
            self.server_events.push(event);
            if let Some(decision) = decision {
                self.server
                    .respond(decision, self.now)
                    .expect("decision pending");
            }
        }
        if let Some(tls) = &mut self.server_tls {
            let records = tls.take_ciphertext();
            if !records.is_empty() {
                moved = true;
                self.send_to_client(&records);
            }
        }
        moved
    }

    fn client_side(&mut self) -> bool {
        let mut moved = false;
        if self.client_gone {
            return false;
        }
        while let Some(out) = self.client.poll_output() {
            moved = true;
            match &mut self.client_tls {
                Some(tls) => {
                    tls.encrypt(&out).expect("client encrypt");
                    let records = tls.take_ciphertext();
                    self.send_to_server(&records);
                }
                None => {
                    self.send_to_server(&out);
                    if out == b"STARTTLS\r\n" {
                        let pipelined = std::mem::take(&mut self.pipelined_after_starttls);
                        self.send_to_server(&pipelined);
                    }
                }
            }
            self.client.handle_written(self.now);
        }
        while let Some(event) = self.client.poll_event() {
            moved = true;
            match event {
                ClientEvent::StartTls => {
                    let tls = TlsStream::client(self.client_config.clone(), &self.connect_to)
                        .expect("client TLS");
                    self.client_tls = Some(tls);
                }
                ClientEvent::Ready => match self.outbox.pop_front() {
                    Some(msg) => {
                        self.client.send(msg, self.now).expect("send");
                    }
                    None => self.client.close(self.now),
                },
                ClientEvent::Delivered { results, .. } => self.delivered.push(results),
                ClientEvent::Closed { reason } => {
                    self.closed = Some(reason);
                }
                _ => {}
            }
        }
        if let Some(tls) = &mut self.client_tls {
            let records = tls.take_ciphertext();
            if !records.is_empty() {
                moved = true;
                self.send_to_server(&records);
            }
        }
        if self.closed.is_some() {
            // The session ended and its last bytes (and any TLS alert) are on the wire.
            self.client_gone = true;
        }
        moved
    }

    fn deliver_to_server(&mut self, bytes: &[u8]) {
        if self.server_gone {
            return;
        }
        let Some(tls) = &mut self.server_tls else {
            self.server.handle_input(bytes, self.now);
            return;
        };
        let was_handshaking = tls.is_handshaking();
        match tls.decrypt(bytes) {
            Ok(plaintext) => {
                if was_handshaking && !tls.is_handshaking() {
                    if let Some(name) = tls
                        .peer_identity()
                        .and_then(|p| p.name().map(str::to_owned))
                    {
                        self.server.set_tls_client_identity(name);
                    }
                    self.server.tls_established(self.now);
                }
                if !plaintext.is_empty() {
                    self.server.handle_input(&plaintext, self.now);
                }
            }
            Err(e) => {
                // Send the alert, then close.
                let alert = tls.take_ciphertext();
                self.send_to_client(&alert);
                self.tls_errors.push((false, e));
                self.server_gone = true;
            }
        }
    }

    fn deliver_to_client(&mut self, bytes: &[u8]) {
        if self.client_gone {
            return;
        }
        let Some(tls) = &mut self.client_tls else {
            self.client.handle_input(bytes, self.now);
            return;
        };
        let was_handshaking = tls.is_handshaking();
        match tls.decrypt(bytes) {
            Ok(plaintext) => {
                if was_handshaking && !tls.is_handshaking() {
                    self.client.tls_established(self.now);
                }
                if !plaintext.is_empty() {
                    self.client.handle_input(&plaintext, self.now);
                }
            }
            Err(e) => {
                let alert = tls.take_ciphertext();
                self.send_to_server(&alert);
                self.client.tls_failed(&e.to_string(), self.now);
                self.tls_errors.push((true, e));
            }
        }
    }

    /// The messages the server received: (recipients, content).
    fn received(&self) -> Vec<(Vec<String>, Vec<u8>)> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Message {
                    recipients,
                    content,
                    ..
                } => Some((
                    recipients.iter().map(|r| path(&r.to)).collect(),
                    content.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    /// The EHLO replies of the server: (under TLS, text).
    fn ehlo_replies(&self) -> Vec<(bool, String)> {
        self.server_said
            .iter()
            .filter(|(_, text)| text.starts_with("250-mx.example.org greets"))
            .cloned()
            .collect()
    }
}

fn transaction_over_tls(chunking: bool) {
    let pki = Pki::new();
    let mut pair = Pair::new(&pki, pki.client_tls(false), chunking);
    pair.outbox
        .push_back(message(&["bob@example.org", "carol@example.org"]));
    pair.run();

    assert!(pair.tls_errors.is_empty(), "{:?}", pair.tls_errors);
    assert!(pair.client.is_tls(), "client reports TLS");
    assert!(pair.server.is_tls(), "server reports TLS");
    assert_eq!(pair.closed, Some(CloseReason::Quit));

    // The message arrived intact, once.
    let received = pair.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, ["<bob@example.org>", "<carol@example.org>"]);
    assert_eq!(received[0].1, BODY);
    assert_eq!(pair.delivered.len(), 1);
    for r in &pair.delivered[0] {
        assert_eq!(r.outcome, Outcome::Accepted, "{r:?}");
        assert!(r.from_peer);
    }

    // Password mechanisms only after TLS; STARTTLS only before.
    let ehlo = pair.ehlo_replies();
    assert_eq!(ehlo.len(), 2, "{ehlo:?}");
    let (before_tls, before) = &ehlo[0];
    let (after_tls, after) = &ehlo[1];
    assert!(!before_tls && *after_tls);
    assert!(before.contains("250-STARTTLS"), "{before}");
    assert!(before.contains("AUTH SCRAM-SHA-256\r\n"), "{before}");
    assert!(!before.contains("PLAIN"), "{before}");
    assert!(!after.contains("STARTTLS"), "{after}");
    assert!(
        after.contains("AUTH SCRAM-SHA-256 PLAIN LOGIN\r\n"),
        "{after}"
    );
    // No client certificate: no EXTERNAL.
    assert!(!after.contains("EXTERNAL"), "{after}");
    let mechanisms = pair.client.extensions().auth_mechanisms();
    assert_eq!(mechanisms, ["SCRAM-SHA-256", "PLAIN", "LOGIN"]);

    // What an eavesdropper saw: the plaintext part up to STARTTLS, then nothing readable.
    assert!(contains(&pair.wire_to_server, b"STARTTLS\r\n"));
    for secret in [
        &b"MAIL FROM"[..],
        b"bob@example.org",
        b"the eagle lands",
        b"QUIT",
    ] {
        assert!(
            !contains(&pair.wire_to_server, secret),
            "{secret:?} in clear"
        );
    }
    assert!(!contains(&pair.wire_to_client, b"Queued"));
    assert_eq!(pair.client.discarded_after_starttls(), 0);

    // BDAT when the server offers CHUNKING, DATA otherwise (both seen by the server only).
    let said: String = pair.server_said.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(said.contains("354 "), !chunking, "{said}");
}

#[test]
fn transaction_with_data_over_tls() {
    transaction_over_tls(false);
}

#[test]
fn transaction_with_bdat_over_tls() {
    transaction_over_tls(true);
}

#[test]
fn unknown_ca_fails_the_handshake_and_every_recipient_temporarily() {
    let pki = Pki::new();
    let other = Ca::new("some other CA");
    let config = client_config(Verification::CaFile(other.pem.clone()), None).expect("config");
    let mut pair = Pair::new(&pki, config, true);
    // Queued before the session is ready: it must still get its results.
    let msg = message(&["bob@example.org", "carol@example.org"]);
    pair.client.send(msg, pair.now).expect("send");
    pair.run();
    tls_failed_for_everyone(&pair);
    let (client_side, e) = &pair.tls_errors[0];
    assert!(*client_side);
    assert!(matches!(e, TlsError::Certificate(_)), "{e:?}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // The client's alert reached the server, which gave up too.
    assert!(
        pair.tls_errors
            .iter()
            .any(|(client, e)| !client && matches!(e, TlsError::AlertReceived(_))),
        "{:?}",
        pair.tls_errors
    );
    assert!(pair.received().is_empty());
}

#[test]
fn certificate_for_another_name_fails_verification() {
    let pki = Pki::new();
    let mut pair = Pair::new(&pki, pki.client_tls(false), true);
    // The right CA, the wrong host: the server's certificate is for mx.example.org.
    pair.connect_to = "mail.example.com".into();
    let msg = message(&["bob@example.org"]);
    pair.client.send(msg, pair.now).expect("send");
    pair.run();
    tls_failed_for_everyone(&pair);
    let (client_side, e) = &pair.tls_errors[0];
    assert!(*client_side);
    assert!(matches!(e, TlsError::Certificate(_)), "{e:?}");
    assert!(e.to_string().contains("not valid for name"), "{e}");
}

fn tls_failed_for_everyone(pair: &Pair) {
    assert!(!pair.client.is_tls());
    assert!(
        matches!(&pair.closed, Some(CloseReason::TlsFailed(s)) if s.code == 451),
        "{:?}",
        pair.closed
    );
    assert_eq!(pair.delivered.len(), 1);
    assert!(!pair.delivered[0].is_empty());
    for r in &pair.delivered[0] {
        assert_eq!(r.outcome, Outcome::TemporaryFailure, "{r:?}");
        assert_eq!(
            (r.status.code, r.status.enhanced.to_string()),
            (451, "4.7.5".into())
        );
        assert!(
            r.status.text.contains("TLS handshake failed"),
            "{}",
            r.status
        );
        assert_eq!(r.stage, Stage::Session);
        assert!(!r.from_peer);
    }
}

#[test]
fn plaintext_injected_after_the_220_never_reaches_the_client_session() {
    let pki = Pki::new();
    let mut pair = Pair::new(&pki, pki.client_tls(false), true);
    // A man in the middle answers the commands the client will send under TLS.
    let injected = b"250-mx.example.org greets you\r\n250 AUTH PLAIN\r\n554 5.7.1 Go away\r\n";
    pair.inject_after_220 = injected.to_vec();
    pair.outbox.push_back(message(&["bob@example.org"]));
    pair.run();

    assert!(pair.tls_errors.is_empty(), "{:?}", pair.tls_errors);
    assert_eq!(
        pair.client.discarded_after_starttls(),
        injected.len() as u64
    );
    // The client took its replies from the server under TLS only: the real EHLO reply, and the
    // message went through.
    assert!(pair.client.is_tls());
    let mechanisms = pair.client.extensions().auth_mechanisms();
    assert_eq!(mechanisms, ["SCRAM-SHA-256", "PLAIN", "LOGIN"]);
    assert_eq!(pair.received().len(), 1);
    assert_eq!(pair.delivered[0][0].outcome, Outcome::Accepted);
    assert_eq!(pair.closed, Some(CloseReason::Quit));
}

#[test]
fn commands_pipelined_after_starttls_never_reach_the_server() {
    let pki = Pki::new();
    let mut pair = Pair::new(&pki, pki.client_tls(false), true);
    pair.pipelined_after_starttls =
        b"MAIL FROM:<mallory@evil.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n".to_vec();
    pair.outbox.push_back(message(&["bob@example.org"]));
    pair.run();

    assert!(pair.tls_errors.is_empty(), "{:?}", pair.tls_errors);
    // They went out with STARTTLS, in the same write.
    assert!(contains(
        &pair.wire_to_server,
        b"STARTTLS\r\nMAIL FROM:<mallory@evil.example>\r\n"
    ));
    let mails: Vec<String> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Mail { from, .. } => Some(from.to_string()),
            ServerEvent::Rcpt { to, .. } => Some(path(to)),
            _ => None,
        })
        .collect();
    assert_eq!(mails, ["<sender@example.net>", "<bob@example.org>"]);
    let received = pair.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, ["<bob@example.org>"]);
    // The server answered nothing to them: no reply but the 220 between STARTTLS and TLS.
    let said: String = pair.server_said.iter().map(|(_, s)| s.as_str()).collect();
    assert!(!said.contains("503"), "{said}");
    assert!(!said.contains("mallory"), "{said}");
    assert!(
        pair.delivered[0]
            .iter()
            .all(|r| r.outcome == Outcome::Accepted)
    );
}

// ---- AUTH over TLS, driving the server session with the SASL client exchange ----

/// A raw client: lines in, replies out, over a TLS pair once STARTTLS is done.
struct AuthPair {
    now: Instant,
    server: ServerSession,
    server_config: Arc<rustls::ServerConfig>,
    client_config: Arc<rustls::ClientConfig>,
    client_tls: Option<TlsStream>,
    server_tls: Option<TlsStream>,
    parser: ReplyParser,
    replies: VecDeque<Reply>,
    authenticated: Vec<ServerEvent>,
}

impl AuthPair {
    /// Greeting, EHLO, STARTTLS, handshake, EHLO: returns the EHLO reply under TLS.
    fn new(pki: &Pki, client_cert: bool) -> (Self, Reply) {
        let now = Instant::now();
        let mut pair = AuthPair {
            now,
            server: server_session(now, true),
            server_config: pki.server_tls(),
            client_config: pki.client_tls(client_cert),
            client_tls: None,
            server_tls: None,
            parser: ReplyParser::new(),
            replies: VecDeque::new(),
            authenticated: Vec::new(),
        };
        pair.pump();
        assert_eq!(pair.reply().code, 220);
        let ehlo = pair.command(&format!("EHLO {CLIENT_NAME}"));
        assert_eq!(ehlo.code, 250);
        assert!(
            !ehlo.lines.iter().any(|l| l.contains("PLAIN")),
            "{:?}",
            ehlo.lines
        );
        let go = pair.command("STARTTLS");
        assert_eq!(go.code, 220);
        assert!(pair.server_tls.is_some(), "server started TLS");
        // The client starts TLS at the 220.
        let tls = TlsStream::client(pair.client_config.clone(), SERVER_NAME).expect("client TLS");
        pair.client_tls = Some(tls);
        pair.pump();
        let client_tls = pair.client_tls.as_ref().expect("client TLS");
        assert!(!client_tls.is_handshaking(), "handshake done");
        assert!(pair.server.is_tls());
        let ehlo = pair.command(&format!("EHLO {CLIENT_NAME}"));
        assert_eq!(ehlo.code, 250);
        (pair, ehlo)
    }

    /// Sends one line, returns the reply.
    fn command(&mut self, line: &str) -> Reply {
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        match &mut self.client_tls {
            Some(tls) => {
                tls.encrypt(&bytes).expect("encrypt");
                let records = tls.take_ciphertext();
                self.deliver_to_server(&records);
            }
            None => self.server.handle_input(&bytes, self.now),
        }
        self.pump();
        self.reply()
    }

    fn reply(&mut self) -> Reply {
        self.replies.pop_front().expect("a reply")
    }

    fn deliver_to_server(&mut self, records: &[u8]) {
        let Some(tls) = &mut self.server_tls else {
            panic!("records before TLS");
        };
        let was_handshaking = tls.is_handshaking();
        let plaintext = tls.decrypt(records).expect("server decrypt");
        if was_handshaking && !tls.is_handshaking() {
            if let Some(name) = tls
                .peer_identity()
                .and_then(|p| p.name().map(str::to_owned))
            {
                self.server.set_tls_client_identity(name);
            }
            self.server.tls_established(self.now);
        }
        if !plaintext.is_empty() {
            self.server.handle_input(&plaintext, self.now);
        }
    }

    fn deliver_to_client(&mut self, bytes: &[u8]) {
        let plaintext = match &mut self.client_tls {
            Some(tls) => tls.decrypt(bytes).expect("client decrypt"),
            None => bytes.to_vec(),
        };
        let mut rest = &plaintext[..];
        while !rest.is_empty() {
            let (used, reply) = self.parser.feed(rest).expect("reply");
            rest = &rest[used..];
            self.replies.extend(reply);
        }
    }

    /// Moves bytes until both sides are quiet.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(out) = self.server.poll_output() {
                moved = true;
                match &mut self.server_tls {
                    Some(tls) => {
                        tls.encrypt(&out).expect("encrypt");
                        let records = tls.take_ciphertext();
                        self.deliver_to_client(&records);
                    }
                    None => self.deliver_to_client(&out),
                }
            }
            while let Some(event) = self.server.poll_event() {
                moved = true;
                match event {
                    ServerEvent::StartTls => {
                        let tls = TlsStream::server(self.server_config.clone()).expect("TLS");
                        self.server_tls = Some(tls);
                    }
                    e @ ServerEvent::Authenticated { .. } => self.authenticated.push(e),
                    ServerEvent::Mail { .. } => {
                        let ok = Status::new(250, (2, 1, 0), "Sender OK");
                        self.server.respond(ok, self.now).expect("pending");
                    }
                    _ => {}
                }
            }
            if let Some(tls) = &mut self.client_tls {
                let records = tls.take_ciphertext();
                if !records.is_empty() {
                    moved = true;
                    self.deliver_to_server(&records);
                }
            }
            if let Some(tls) = &mut self.server_tls {
                let records = tls.take_ciphertext();
                if !records.is_empty() {
                    moved = true;
                    self.deliver_to_client(&records);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    /// Runs a SASL exchange: AUTH with the initial response, then 334 challenges answered by
    /// the exchange. Returns the final reply and the exchange.
    fn authenticate(&mut self, mechanism: ClientMechanism) -> (Reply, ClientExchange) {
        let nonce = "fyko+d2lbbFgONRv9qkxdawL";
        let (mut exchange, initial) =
            ClientExchange::start(mechanism, USER, PASSWORD, None, nonce).expect("start");
        let mut reply = match initial {
            Some(ir) => self.command(&format!("AUTH {} {ir}", mechanism.name())),
            None => self.command(&format!("AUTH {}", mechanism.name())),
        };
        while reply.code == 334 {
            let line = exchange.step(&reply.text()).expect("challenge");
            reply = self.command(&line);
        }
        (reply, exchange)
    }
}

#[test]
fn auth_over_tls_with_each_password_mechanism() {
    let pki = Pki::new();
    for mechanism in [
        ClientMechanism::Plain,
        ClientMechanism::Login,
        ClientMechanism::ScramSha256,
    ] {
        let (mut pair, ehlo) = AuthPair::new(&pki, false);
        let auth = ehlo
            .lines
            .iter()
            .find(|l| l.starts_with("AUTH "))
            .expect("AUTH offered");
        assert_eq!(auth, "AUTH SCRAM-SHA-256 PLAIN LOGIN");
        let (reply, exchange) = pair.authenticate(mechanism);
        assert_eq!(reply.code, 235, "{mechanism}: {reply:?}");
        assert_eq!(reply.status().enhanced.to_string(), "2.7.0");
        // For SCRAM the server proved it knows the key.
        exchange.finish().expect("server verified");
        assert_eq!(pair.server.authenticated(), Some(USER), "{mechanism}");
        assert_eq!(pair.authenticated.len(), 1);
        // And the session goes on under TLS.
        let mail = pair.command("MAIL FROM:<alice@example.org>");
        assert_eq!(mail.code, 250, "{mail:?}");
    }
}

#[test]
fn wrong_password_over_tls_is_refused() {
    let pki = Pki::new();
    let (mut pair, _) = AuthPair::new(&pki, false);
    let (_, ir) =
        ClientExchange::start(ClientMechanism::Plain, USER, "wrong", None, "").expect("start");
    let reply = pair.command(&format!("AUTH PLAIN {}", ir.expect("initial response")));
    assert_eq!(reply.code, 535, "{reply:?}");
    assert_eq!(pair.server.authenticated(), None);
}

#[test]
fn auth_external_with_the_client_certificate() {
    let pki = Pki::new();
    let (mut pair, ehlo) = AuthPair::new(&pki, true);
    let server_tls = pair.server_tls.as_ref().expect("server TLS");
    let identity = server_tls.peer_identity().expect("client certificate");
    assert_eq!(identity.name(), Some(USER));
    assert_eq!(identity.fingerprint_sha256.len(), 64);
    let auth = ehlo
        .lines
        .iter()
        .find(|l| l.starts_with("AUTH "))
        .expect("AUTH offered");
    assert_eq!(auth, "AUTH SCRAM-SHA-256 PLAIN LOGIN EXTERNAL");
    let reply = pair.command("AUTH EXTERNAL =");
    assert_eq!(reply.code, 235, "{reply:?}");
    assert_eq!(pair.server.authenticated(), Some(USER));
    assert!(
        matches!(
            &pair.authenticated[..],
            [ServerEvent::Authenticated { authcid, authzid: None, .. }] if authcid == USER
        ),
        "{:?}",
        pair.authenticated
    );
}

#[test]
fn auth_external_without_a_client_certificate_is_refused() {
    let pki = Pki::new();
    let (mut pair, ehlo) = AuthPair::new(&pki, false);
    assert!(
        pair.server_tls
            .as_ref()
            .expect("TLS")
            .peer_identity()
            .is_none()
    );
    assert!(!ehlo.lines.iter().any(|l| l.contains("EXTERNAL")));
    let reply = pair.command("AUTH EXTERNAL =");
    assert_eq!(reply.code, 535, "{reply:?}");
    assert_eq!(pair.server.authenticated(), None);
}
