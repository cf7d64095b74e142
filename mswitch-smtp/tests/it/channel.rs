//! The outbound channel ([`SmtpChannel`]) delivering to the server driver on loopback: results
//! per recipient at the right indices, DSN and other parameters on the wire, LMTP, next-hop
//! resolution, and what the channel decides without connecting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mswitch_core::address::Address;
use mswitch_core::channel::{Channel, ChannelError, DeliveryJob, DeliveryResult, RecipientOutcome};
use mswitch_core::envelope::{
    BodyType, ContentType, DsnRet, Envelope, NextHop, Notify, OriginalRecipient, Priority,
    Recipient, ReversePath,
};
use mswitch_core::id::{ChannelId, QueueId, Timestamp};
use mswitch_core::status::Status;
use mswitch_core::store::Content;
use mswitch_smtp::channel::{SmtpChannel, SmtpChannelConfig};
use mswitch_smtp::client::{ClientAuth, Mode, TlsPolicy};
use mswitch_smtp::driver::{DriverConfig, Handler, Message, listen};
use mswitch_smtp::proto::command::{ForwardPath, MailParams, RcptParams};
use mswitch_smtp::sasl::{PasswordFile, hash_password};
use mswitch_smtp::server::session::AuthConfig;
use mswitch_smtp::server::{Mode as ServerMode, ServerConfig};
use tokio::net::TcpListener;

use crate::tls_pair::Pki;

const CONTENT: &[u8] =
    b"From: <alice@example.org>\r\nSubject: channel\r\n\r\n.a dot first\r\nend\r\n";

/// Recipients whose local part is `refused` are refused at RCPT (550), `later` deferred at RCPT
/// (451), `full` deferred after the data (452, LMTP only); everything else is accepted.
#[derive(Default)]
struct Scripted {
    rcpts: Mutex<Vec<(String, RcptParams)>>,
    messages: Mutex<Vec<Message>>,
}

fn local_part(to: &ForwardPath) -> String {
    to.mailbox()
        .map(|m| m.local_part().as_str().to_owned())
        .unwrap_or_default()
}

fn refused() -> Status {
    Status::new(550, (5, 1, 1), "No such user here")
}

fn later() -> Status {
    Status::new(451, (4, 3, 0), "Try again later")
}

fn full() -> Status {
    Status::new(452, (4, 2, 2), "Mailbox full")
}

fn queued() -> Status {
    Status::new(250, (2, 0, 0), "Queued as 1")
}

impl Handler for Scripted {
    async fn mail(&self, _: &ReversePath, _: &MailParams) -> Status {
        Status::new(250, (2, 1, 0), "Sender OK")
    }

    async fn rcpt(&self, to: &ForwardPath, params: &RcptParams) -> Status {
        let mailbox = to.mailbox().map(ToString::to_string).unwrap_or_default();
        self.rcpts
            .lock()
            .expect("lock")
            .push((mailbox, params.clone()));
        match local_part(to).as_str() {
            "refused" => refused(),
            "later" => later(),
            _ => Status::new(250, (2, 1, 5), "Recipient OK"),
        }
    }

    async fn message(&self, message: Message) -> Vec<Status> {
        let statuses = message
            .recipients
            .iter()
            .map(|r| match local_part(&r.to).as_str() {
                "full" => full(),
                _ => queued(),
            })
            .collect();
        self.messages.lock().expect("lock").push(message);
        statuses
    }
}

impl Scripted {
    fn rcpt_order(&self) -> Vec<String> {
        let rcpts = self.rcpts.lock().expect("lock");
        rcpts.iter().map(|(to, _)| to.clone()).collect()
    }

    fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("lock").clone()
    }
}

/// The server driver on a loopback port, without TLS.
async fn server(mode: ServerMode, auth: Option<AuthConfig>) -> (u16, Arc<Scripted>) {
    let mut session = ServerConfig::new("mx.example.org", mode);
    session.auth = auth;
    let config = DriverConfig { session, tls: None };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("local address").port();
    let handler = Arc::new(Scripted::default());
    tokio::spawn(listen(listener, config, handler.clone()));
    (port, handler)
}

/// A loopback port nobody listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    listener.local_addr().expect("local address").port()
}

fn config(mode: Mode) -> SmtpChannelConfig {
    let mut c = SmtpChannelConfig::new(ChannelId::from("smtp-out"), mode, "mswitch.example");
    c.tls = TlsPolicy::None;
    c.connect_timeout = Duration::from_secs(10);
    c
}

fn loopback(port: u16) -> NextHop {
    NextHop::Host {
        host: "127.0.0.1".into(),
        port: Some(port),
    }
}

fn envelope(recipients: &[&str]) -> Envelope {
    let from = Address::parse("alice@example.org").expect("originator");
    let mut e = Envelope::new(
        ReversePath::Address(from),
        Timestamp::from_secs(1_700_000_000),
    );
    e.recipients = recipients
        .iter()
        .map(|r| Recipient::new(Address::parse(r).expect("recipient")))
        .collect();
    e.size = CONTENT.len() as u64;
    e
}

fn job(envelope: Envelope, next_hop: NextHop) -> DeliveryJob {
    let recipients = (0..envelope.recipients.len()).collect();
    DeliveryJob {
        queue_id: QueueId(0x42),
        envelope: Arc::new(envelope),
        content: Content::from(CONTENT.to_vec()),
        recipients,
        next_hop,
        attempt: 1,
    }
}

fn outcome(index: usize, result: DeliveryResult) -> RecipientOutcome {
    RecipientOutcome { index, result }
}

fn to_list(message: &Message) -> Vec<String> {
    message
        .recipients
        .iter()
        .map(|r| r.to.mailbox().map(ToString::to_string).unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_failed_and_deferred_at_their_indices() {
    let (port, server) = server(ServerMode::Smtp, None).await;
    let channel = SmtpChannel::new(config(Mode::Smtp));
    let mut job = job(
        envelope(&[
            "bob@example.com",
            "refused@example.com",
            "later@example.com",
        ]),
        loopback(port),
    );
    // Not in envelope order: the results must still land on the right indices.
    job.recipients = vec![2, 0, 1];
    let outcomes = channel.deliver(job).await.expect("delivered");
    assert_eq!(
        outcomes,
        [
            outcome(0, DeliveryResult::Relayed(queued())),
            outcome(1, DeliveryResult::Failed(refused())),
            outcome(2, DeliveryResult::TryLater(later())),
        ]
    );
    assert_eq!(
        server.rcpt_order(),
        [
            "later@example.com",
            "bob@example.com",
            "refused@example.com"
        ]
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(to_list(m), ["bob@example.com"]);
    assert_eq!(m.content, CONTENT);
    assert_eq!(m.from.to_string(), "<alice@example.org>");
    // Nothing was asked for: no DSN parameters, no priority, no body type.
    assert_eq!(m.recipients[0].params, RcptParams::default());
    assert_eq!(
        m.params,
        MailParams {
            size: Some(CONTENT.len() as u64),
            ..MailParams::default()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_priority_and_body_parameters_reach_the_server() {
    let (port, server) = server(ServerMode::Smtp, None).await;
    let channel = SmtpChannel::new(config(Mode::Smtp));
    let mut e = envelope(&["bob@example.com", "carol@example.com"]);
    e.dsn_ret = Some(DsnRet::Headers);
    e.dsn_envid = Some("QQ314159+x".into());
    e.priority = Priority::Flash;
    e.content_type = ContentType::Internet {
        body: BodyType::EightBitMime,
        smtputf8: false,
    };
    e.recipients[0].notify = Notify::on(true, true, false);
    e.recipients[0].original = Some(OriginalRecipient {
        addr_type: "rfc822".into(),
        address: "Bob@Example.COM".into(),
    });
    e.recipients[1].notify = Notify::never();
    let outcomes = channel
        .deliver(job(e, loopback(port)))
        .await
        .expect("delivered");
    assert_eq!(
        outcomes,
        [
            outcome(0, DeliveryResult::Relayed(queued())),
            outcome(1, DeliveryResult::Relayed(queued())),
        ]
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(
        m.params,
        MailParams {
            size: Some(CONTENT.len() as u64),
            body: Some(BodyType::EightBitMime),
            ret: Some(DsnRet::Headers),
            envid: Some("QQ314159+x".into()),
            mt_priority: Some(4),
            ..MailParams::default()
        }
    );
    assert_eq!(
        m.recipients[0].params,
        RcptParams {
            notify: Some(Notify::on(true, true, false)),
            orcpt: Some(OriginalRecipient {
                addr_type: "rfc822".into(),
                address: "Bob@Example.COM".into(),
            }),
        }
    );
    assert_eq!(
        m.recipients[1].params,
        RcptParams {
            notify: Some(Notify::never()),
            orcpt: None,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_dsn_gets_the_message_without_dsn_parameters() {
    let mut session = ServerConfig::new("mx.example.org", ServerMode::Smtp);
    session.dsn = false;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("local address").port();
    let server = Arc::new(Scripted::default());
    let config_ = DriverConfig { session, tls: None };
    tokio::spawn(listen(listener, config_, server.clone()));
    let channel = SmtpChannel::new(config(Mode::Smtp));
    let mut e = envelope(&["bob@example.com", "carol@example.com"]);
    e.recipients[0].notify = Notify::on(true, false, false);
    let outcomes = channel
        .deliver(job(e, loopback(port)))
        .await
        .expect("delivered");
    // Only bob asked for notices (RFC 3461 §4.1: a "relayed" notice is owed to him).
    assert_eq!(
        outcomes,
        [
            outcome(0, DeliveryResult::RelayedWithoutDsn(queued())),
            outcome(1, DeliveryResult::Relayed(queued())),
        ]
    );
    assert_eq!(
        server.messages()[0].recipients[0].params,
        RcptParams::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_port_is_a_connection_error() {
    let port = closed_port().await;
    let channel = SmtpChannel::new(config(Mode::Smtp));
    let err = channel
        .deliver(job(envelope(&["bob@example.com"]), loopback(port)))
        .await
        .expect_err("nobody listens");
    let ChannelError::Connection { peer, reason } = err else {
        panic!("not a connection error: {err:?}");
    };
    assert_eq!(peer, format!("127.0.0.1:{port}"));
    assert!(
        reason.starts_with(&format!("127.0.0.1:{port}: ")) && reason.contains("refused"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmtp_delivers_with_one_result_per_recipient_after_the_data() {
    let (port, server) = server(ServerMode::Lmtp, None).await;
    let channel = SmtpChannel::new(config(Mode::Lmtp));
    let outcomes = channel
        .deliver(job(
            envelope(&[
                "alice@example.com",
                "full@example.com",
                "refused@example.com",
            ]),
            loopback(port),
        ))
        .await
        .expect("delivered");
    assert_eq!(
        outcomes,
        [
            outcome(0, DeliveryResult::Delivered(queued())),
            outcome(1, DeliveryResult::TryLater(full())),
            outcome(2, DeliveryResult::Failed(refused())),
        ]
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        to_list(&messages[0]),
        ["alice@example.com", "full@example.com"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_peer_resolves_through_the_map_and_a_domain_through_its_addresses() {
    let (port, server) = server(ServerMode::Lmtp, None).await;
    let mut c = config(Mode::Lmtp);
    // Through the system resolver (`localhost` may also have ::1, where nobody listens: the
    // next address is then tried).
    c.peers
        .insert("mailstore".into(), ("localhost".into(), port));
    let channel = SmtpChannel::new(c);
    let outcomes = channel
        .deliver(job(
            envelope(&["alice@example.com"]),
            NextHop::Peer("mailstore".into()),
        ))
        .await
        .expect("delivered");
    assert_eq!(outcomes, [outcome(0, DeliveryResult::Delivered(queued()))]);

    // No MX lookup yet: a domain's own address records, on the default port.
    let mut c = config(Mode::Lmtp);
    c.default_port = port;
    let channel = SmtpChannel::new(c);
    let outcomes = channel
        .deliver(job(
            envelope(&["bob@example.com"]),
            NextHop::Domain("localhost".into()),
        ))
        .await
        .expect("delivered");
    assert_eq!(outcomes, [outcome(0, DeliveryResult::Delivered(queued()))]);
    assert_eq!(server.messages().len(), 2);

    // Configuration errors: an unknown peer, and a local next hop.
    let err = channel
        .deliver(job(
            envelope(&["bob@example.com"]),
            NextHop::Peer("nowhere".into()),
        ))
        .await
        .expect_err("unknown peer");
    assert_eq!(
        err,
        ChannelError::Config("channel smtp-out has no peer named \"nowhere\"".into())
    );
    let err = channel
        .deliver(job(envelope(&["bob@example.com"]), NextHop::Local))
        .await
        .expect_err("local next hop");
    assert!(matches!(err, ChannelError::Config(_)), "{err:?}");
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x400_recipient_fails_while_the_others_go() {
    let (port, server) = server(ServerMode::Smtp, None).await;
    let channel = SmtpChannel::new(config(Mode::Smtp));
    let x400 = "/C=GB/ADMD= /PRMD=Switch/O=Acme/S=Smith/";
    let e = envelope(&["bob@example.com", x400, "carol@example.com"]);
    let shown = e.recipients[1].address.to_string();
    let outcomes = channel
        .deliver(job(e, loopback(port)))
        .await
        .expect("delivered");
    assert_eq!(
        outcomes,
        [
            outcome(0, DeliveryResult::Relayed(queued())),
            outcome(
                1,
                DeliveryResult::Failed(Status::new(
                    554,
                    (5, 1, 3),
                    format!("{shown} is an X.400 address, which has no SMTP form"),
                ))
            ),
            outcome(2, DeliveryResult::Relayed(queued())),
        ]
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        to_list(&messages[0]),
        ["bob@example.com", "carol@example.com"]
    );
}

/// Decided without connecting: the next hop is a closed port, so any connection attempt would
/// end in `ChannelError::Connection`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiretls_and_x400_originators_fail_without_a_connection() {
    let port = closed_port().await;
    let mut c = config(Mode::Smtp);
    c.tls = TlsPolicy::Opportunistic;
    c.tls_config = Some(Pki::new().client_tls(false));
    let channel = SmtpChannel::new(c);
    let mut e = envelope(&["bob@example.com", "carol@example.com"]);
    e.require_tls = true;
    let outcomes = channel
        .deliver(job(e, loopback(port)))
        .await
        .expect("decided locally");
    let needs_tls = Status::new(
        550,
        (5, 7, 10),
        "REQUIRETLS: the message needs verified TLS, which channel smtp-out does not require",
    );
    assert_eq!(
        outcomes,
        [
            outcome(0, DeliveryResult::Failed(needs_tls.clone())),
            outcome(1, DeliveryResult::Failed(needs_tls)),
        ]
    );

    let mut e = envelope(&["bob@example.com"]);
    e.originator = ReversePath::Address(
        Address::parse("/C=GB/ADMD= /PRMD=Switch/O=Acme/S=Jones/").expect("O/R address"),
    );
    let outcomes = channel
        .deliver(job(e, loopback(port)))
        .await
        .expect("decided locally");
    let [
        RecipientOutcome {
            index: 0,
            result: DeliveryResult::Failed(status),
        },
    ] = outcomes.as_slice()
    else {
        panic!("{outcomes:?}");
    };
    assert_eq!(
        (status.code, status.enhanced.to_string()),
        (550, "5.1.7".into())
    );
}

/// A REQUIRETLS message on a channel that requires TLS goes to the peer, and waits when the peer
/// offers no STARTTLS: never sent in clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiretls_on_a_tls_channel_waits_for_a_peer_with_tls() {
    let (port, server) = server(ServerMode::Smtp, None).await;
    let mut c = config(Mode::Smtp);
    c.tls = TlsPolicy::Required;
    c.tls_config = Some(Pki::new().client_tls(false));
    let channel = SmtpChannel::new(c);
    let mut e = envelope(&["bob@example.com"]);
    e.require_tls = true;
    let outcomes = channel
        .deliver(job(e, loopback(port)))
        .await
        .expect("connected");
    let [
        RecipientOutcome {
            index: 0,
            result: DeliveryResult::TryLater(status),
        },
    ] = outcomes.as_slice()
    else {
        panic!("{outcomes:?}");
    };
    assert_eq!(
        (status.code, status.enhanced.to_string()),
        (451, "4.7.4".into())
    );
    assert!(server.messages().is_empty());
    assert!(server.rcpt_order().is_empty());

    // TLS required but no configuration: the channel is misconfigured.
    let mut c = config(Mode::Smtp);
    c.tls = TlsPolicy::Required;
    let err = SmtpChannel::new(c)
        .deliver(job(envelope(&["bob@example.com"]), loopback(port)))
        .await
        .expect_err("misconfigured");
    assert!(matches!(err, ChannelError::Config(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_submitter_identity_travels_as_auth_when_we_authenticate() {
    let verifier = hash_password("secret", b"0123456789abcdef", 4096).expect("hash");
    let users = PasswordFile::parse(&format!("relay:{verifier}\n")).expect("password file");
    let mut auth = AuthConfig::new(Arc::new(users));
    auth.allow_plaintext = true;
    let (port, server) = server(ServerMode::Smtp, Some(auth)).await;
    let mut c = config(Mode::Smtp);
    c.auth = Some(ClientAuth {
        authcid: "relay".into(),
        password: "secret".into(),
        authzid: None,
        allow_plaintext: true,
    });
    let channel = SmtpChannel::new(c);
    let mut e = envelope(&["bob@example.com"]);
    e.authenticated_as = Some("alice@example.org".into());
    let mut bare = envelope(&["bob@example.com"]);
    bare.authenticated_as = Some("alice".into());
    for e in [e, bare] {
        let outcomes = channel
            .deliver(job(e, loopback(port)))
            .await
            .expect("delivered");
        assert_eq!(outcomes, [outcome(0, DeliveryResult::Relayed(queued()))]);
    }
    let messages = server.messages();
    let auth: Vec<_> = messages
        .iter()
        .map(|m| (m.authenticated.clone(), m.params.auth.clone()))
        .collect();
    assert_eq!(
        auth,
        [
            (Some("relay".into()), Some(Some("alice@example.org".into()))),
            // Not a mailbox: `AUTH=<>`.
            (Some("relay".into()), Some(None)),
        ]
    );
}

#[test]
fn descriptor_and_defaults() {
    let c = SmtpChannelConfig::new(ChannelId::from("lmtp"), Mode::Lmtp, "mswitch.example");
    assert_eq!(c.default_port, 24);
    assert_eq!(
        SmtpChannelConfig::new(ChannelId::from("smtp"), Mode::Smtp, "x").default_port,
        25
    );
    let channel = SmtpChannel::new(c);
    let d = channel.descriptor();
    assert_eq!(d.id, ChannelId::from("lmtp"));
    assert_eq!(d.kind, mswitch_core::channel::ChannelKind::Outbound);
    assert_eq!(d.accepts, [mswitch_core::envelope::ContentFamily::Internet]);
    assert_eq!(channel.config().peers, HashMap::new());
}

/// The scripted server behind a service that counts connections.
struct Counting {
    handler: Arc<Scripted>,
    connections: std::sync::atomic::AtomicUsize,
}

struct CountingConn(Arc<Scripted>);

impl mswitch_smtp::driver::Service for Counting {
    type Conn = CountingConn;

    async fn connect(
        &self,
        _: std::net::SocketAddr,
        _: std::net::SocketAddr,
    ) -> Result<CountingConn, Status> {
        self.connections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(CountingConn(self.handler.clone()))
    }
}

impl mswitch_smtp::driver::Connection for CountingConn {
    async fn mail(&mut self, from: &ReversePath, params: &MailParams) -> Status {
        self.0.mail(from, params).await
    }

    async fn rcpt(&mut self, to: &ForwardPath, params: &RcptParams) -> Status {
        self.0.rcpt(to, params).await
    }

    async fn message(&mut self, message: Message) -> Vec<Status> {
        self.0.message(message).await
    }
}

async fn counting_server(command_timeout: Duration) -> (u16, Arc<Counting>) {
    let mut session = ServerConfig::new("mx.example.org", ServerMode::Smtp);
    session.command_timeout = command_timeout;
    let config = DriverConfig { session, tls: None };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("local address").port();
    let service = Arc::new(Counting {
        handler: Arc::new(Scripted::default()),
        connections: std::sync::atomic::AtomicUsize::new(0),
    });
    tokio::spawn(mswitch_smtp::driver::listen_service(
        listener,
        config,
        service.clone(),
    ));
    (port, service)
}

fn relayed(outcomes: &[RecipientOutcome]) -> bool {
    outcomes
        .iter()
        .all(|o| matches!(o.result, DeliveryResult::Relayed(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_carries_consecutive_messages() {
    let (port, server) = counting_server(Duration::from_secs(60)).await;
    let channel = SmtpChannel::new(config(Mode::Smtp));
    for _ in 0..3 {
        let out = channel
            .deliver(job(envelope(&["bob@example.com"]), loopback(port)))
            .await
            .expect("delivered");
        assert!(relayed(&out), "{out:?}");
    }
    assert_eq!(server.handler.messages().len(), 3);
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reuse_each_message_has_its_connection() {
    let (port, server) = counting_server(Duration::from_secs(60)).await;
    let mut c = config(Mode::Smtp);
    c.connection_idle = Duration::ZERO;
    let channel = SmtpChannel::new(c);
    for _ in 0..3 {
        let out = channel
            .deliver(job(envelope(&["bob@example.com"]), loopback(port)))
            .await
            .expect("delivered");
        assert!(relayed(&out), "{out:?}");
    }
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

/// A kept connection the server has timed out (421 and close) is not used: the next message
/// goes on a new connection and is delivered, not deferred.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_is_replaced() {
    let (port, server) = counting_server(Duration::from_millis(200)).await;
    let channel = SmtpChannel::new(config(Mode::Smtp));
    let first = channel
        .deliver(job(envelope(&["bob@example.com"]), loopback(port)))
        .await
        .expect("delivered");
    assert!(relayed(&first), "{first:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let second = channel
        .deliver(job(envelope(&["bob@example.com"]), loopback(port)))
        .await
        .expect("delivered");
    assert!(relayed(&second), "{second:?}");
    assert_eq!(server.handler.messages().len(), 2);
    assert_eq!(
        server.connections.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

/// Answers every domain with fixed mail hosts, or an error.
#[derive(Debug)]
struct FakeResolver(Result<Vec<mswitch_core::route::MailHost>, mswitch_core::route::ResolveError>);

#[async_trait::async_trait]
impl mswitch_core::route::HostResolver for FakeResolver {
    async fn mail_hosts(
        &self,
        _: &str,
    ) -> Result<Vec<mswitch_core::route::MailHost>, mswitch_core::route::ResolveError> {
        self.0.clone()
    }

    async fn host_addresses(
        &self,
        _: &str,
    ) -> Result<Vec<std::net::IpAddr>, mswitch_core::route::ResolveError> {
        Ok(vec![[127, 0, 0, 1].into()])
    }
}

fn via_resolver(port: u16, answer: FakeResolver) -> SmtpChannel {
    let mut c = config(Mode::Smtp);
    c.default_port = port;
    c.resolver = Some(Arc::new(answer));
    SmtpChannel::new(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_goes_to_its_mail_hosts_in_order() {
    let (port, handler) = server(ServerMode::Smtp, None).await;
    let hosts = vec![
        mswitch_core::route::MailHost {
            name: "primary.mx.test".into(),
            preference: 10,
            // Nothing listens on 127.0.0.2: the next host is tried.
            addresses: vec![[127, 0, 0, 2].into()],
        },
        mswitch_core::route::MailHost {
            name: "backup.mx.test".into(),
            preference: 20,
            addresses: vec![[127, 0, 0, 1].into()],
        },
    ];
    let channel = via_resolver(port, FakeResolver(Ok(hosts)));
    let out = channel
        .deliver(job(
            envelope(&["bob@example.com"]),
            NextHop::Domain("example.com".into()),
        ))
        .await
        .expect("delivered");
    assert!(
        matches!(out[0].result, DeliveryResult::Relayed(_)),
        "{out:?}"
    );
    assert_eq!(handler.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_decide_every_recipient() {
    let null_mx = Status::new(556, (5, 1, 10), "example.com does not accept mail");
    let channel = via_resolver(
        25,
        FakeResolver(Err(mswitch_core::route::ResolveError::Permanent(
            null_mx.clone(),
        ))),
    );
    let out = channel
        .deliver(job(
            envelope(&["a@example.com", "b@example.com"]),
            NextHop::Domain("example.com".into()),
        ))
        .await
        .expect("decided");
    assert_eq!(
        out,
        vec![
            outcome(0, DeliveryResult::Failed(null_mx.clone())),
            outcome(1, DeliveryResult::Failed(null_mx))
        ]
    );
    let servfail = Status::new(451, (4, 4, 3), "DNS lookup failed");
    let channel = via_resolver(
        25,
        FakeResolver(Err(mswitch_core::route::ResolveError::Temporary(
            servfail.clone(),
        ))),
    );
    let out = channel
        .deliver(job(
            envelope(&["a@example.com"]),
            NextHop::Domain("example.com".into()),
        ))
        .await
        .expect("decided");
    assert_eq!(out, vec![outcome(0, DeliveryResult::TryLater(servfail))]);
}

/// Credentials for one next hop only.
struct AuthFor(NextHop);

impl mswitch_smtp::channel::PeerOverrideLookup for AuthFor {
    fn overrides(&self, hop: &NextHop) -> Option<mswitch_smtp::channel::PeerOverrides> {
        (hop == &self.0).then(|| mswitch_smtp::channel::PeerOverrides {
            auth: Some(ClientAuth {
                authcid: "alice".into(),
                password: "secret".into(),
                authzid: None,
                allow_plaintext: true,
            }),
            ..Default::default()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_hop_can_have_its_own_credentials() {
    let verifier = hash_password("secret", b"0123456789abcdef", 4096).expect("hash");
    let users = PasswordFile::parse(&format!("alice:{verifier}\n")).expect("users");
    let mut auth = AuthConfig::new(Arc::new(users));
    auth.allow_plaintext = true;
    let (port, handler) = server(ServerMode::Submission, Some(auth)).await;
    let mut c = config(Mode::Smtp);
    c.overrides = Some(Arc::new(AuthFor(loopback(port))));
    let channel = SmtpChannel::new(c);
    // The hop with credentials: authenticated, accepted.
    let out = channel
        .deliver(job(envelope(&["bob@example.com"]), loopback(port)))
        .await
        .expect("delivered");
    assert!(
        matches!(out[0].result, DeliveryResult::Relayed(_)),
        "{out:?}"
    );
    let m = handler.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].authenticated.as_deref(), Some("alice"));
    // The same server by another name has no credentials: the submission service refuses.
    let other = NextHop::Host {
        host: "localhost".into(),
        port: Some(port),
    };
    let out = channel
        .deliver(job(envelope(&["bob@example.com"]), other))
        .await
        .expect("attempted");
    match &out[0].result {
        DeliveryResult::Failed(s) => assert_eq!(s.code, 530, "{s:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(handler.messages().len(), 1);
}
