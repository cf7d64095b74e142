use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::executor::block_on;

use super::*;
use crate::channel::ChannelDescriptor;
use crate::envelope::Notify;
use crate::memory::{MemoryQueue, StaticRouter};
use crate::policy::{RelayPolicy, Verdict};
use crate::store::{Content, EnqueueError, RecipientUpdate, Recovered, StoreError};

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, s: String) {
    log.lock().expect("log lock").push(s);
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().expect("log lock").clone()
}

fn addr(s: &str) -> Address {
    Address::parse(s).expect("valid test address")
}

fn ctx(service: Service, ip: &str) -> SubmissionContext {
    SubmissionContext {
        channel: ChannelId::new("smtp-in"),
        service,
        client: ClientInfo {
            address: Some(ip.parse().expect("ip")),
            helo: Some("client.example".into()),
            tls: false,
            authenticated: None,
        },
        now: Timestamp(1_000),
    }
}

fn envelope(from: &str, to: &[&str]) -> Envelope {
    let originator = if from.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Address(addr(from))
    };
    let mut env = Envelope::new(originator, Timestamp(1_000));
    env.recipients = to.iter().map(|t| Recipient::new(addr(t))).collect();
    env
}

fn channels() -> ChannelTable {
    let mut t = ChannelTable::new();
    for (name, kind, fams) in [
        (
            "local",
            ChannelKind::Outbound,
            vec![ContentFamily::Internet],
        ),
        (
            "smtp-out",
            ChannelKind::Outbound,
            vec![ContentFamily::Internet],
        ),
        ("p1-out", ChannelKind::Outbound, vec![ContentFamily::X400]),
        (
            "smtp-in",
            ChannelKind::Inbound,
            vec![ContentFamily::Internet],
        ),
        (
            "mixer",
            ChannelKind::Processing,
            vec![ContentFamily::Internet, ContentFamily::X400],
        ),
    ] {
        t.insert(ChannelDescriptor {
            id: ChannelId::new(name),
            kind,
            accepts: fams,
        });
    }
    t
}

fn router() -> StaticRouter {
    StaticRouter::new()
        .local_domain("example.com", "local")
        .address(
            addr("nobody@example.com"),
            RouteDecision::Reject(Status::new(550, (5, 1, 1), "User unknown")),
        )
        .address(
            addr("ldap@example.com"),
            RouteDecision::TryLater(Status::new(451, (4, 4, 3), "Directory unavailable")),
        )
        .default_route(Route {
            channel: ChannelId::new("smtp-out"),
            next_hop: NextHop::Host {
                host: "127.0.0.1".into(),
                port: Some(10026),
            },
            local: false,
        })
}

/// Wraps the real parts and logs each call, so the order of the steps can be checked.
struct Recording<T> {
    inner: T,
    log: Log,
}

#[async_trait]
impl<T: Router> Router for Recording<T> {
    async fn route(&self, address: &Address, ctx: RouteContext<'_>) -> RouteDecision {
        push(&self.log, format!("route {address}"));
        self.inner.route(address, ctx).await
    }
}

#[async_trait]
impl<T: Policy> Policy for Recording<T> {
    async fn check_sender(&self, ctx: &SubmissionContext, sender: &ReversePath) -> Verdict {
        push(&self.log, format!("sender {sender}"));
        self.inner.check_sender(ctx, sender).await
    }
    async fn check_recipient(
        &self,
        ctx: &SubmissionContext,
        sender: &ReversePath,
        r: &RecipientCheck<'_>,
    ) -> Verdict {
        push(&self.log, format!("policy {}", r.address));
        self.inner.check_recipient(ctx, sender, r).await
    }
    async fn check_message(&self, ctx: &SubmissionContext, env: &Envelope) -> Verdict {
        push(&self.log, "message".into());
        self.inner.check_message(ctx, env).await
    }
}

#[async_trait]
impl<T: QueueStore> QueueStore for Recording<T> {
    fn admission(&self, size: Option<u64>) -> Result<(), EnqueueError> {
        push(&self.log, "admission".into());
        self.inner.admission(size)
    }
    async fn enqueue(&self, env: &Envelope, content: &[u8]) -> Result<QueueId, EnqueueError> {
        push(&self.log, format!("enqueue {} rcpts", env.recipients.len()));
        self.inner.enqueue(env, content).await
    }
    async fn record(&self, id: QueueId, u: &[RecipientUpdate]) -> Result<(), StoreError> {
        self.inner.record(id, u).await
    }
    async fn remove(&self, id: QueueId) -> Result<(), StoreError> {
        self.inner.remove(id).await
    }
    async fn content(&self, id: QueueId) -> Result<Content, StoreError> {
        self.inner.content(id).await
    }
    async fn recover(&self) -> Result<Recovered, StoreError> {
        self.inner.recover().await
    }
}

/// A policy that refuses one named sender and otherwise applies the relay policy.
struct RefuseSender {
    sender: &'static str,
    relay: RelayPolicy,
}

#[async_trait]
impl Policy for RefuseSender {
    async fn check_sender(&self, ctx: &SubmissionContext, sender: &ReversePath) -> Verdict {
        if sender.address().map(ToString::to_string).as_deref() == Some(self.sender) {
            return Verdict::Reject(Status::new(550, (5, 7, 1), "Sender refused"));
        }
        self.relay.check_sender(ctx, sender).await
    }
    async fn check_recipient(
        &self,
        ctx: &SubmissionContext,
        sender: &ReversePath,
        r: &RecipientCheck<'_>,
    ) -> Verdict {
        self.relay.check_recipient(ctx, sender, r).await
    }
    async fn check_message(&self, ctx: &SubmissionContext, env: &Envelope) -> Verdict {
        self.relay.check_message(ctx, env).await
    }
}

struct Harness {
    log: Log,
    store: Arc<Recording<MemoryQueue>>,
    pipeline: SubmissionPipeline,
}

fn harness_with(router: StaticRouter, channels: ChannelTable) -> Harness {
    let log: Log = Arc::default();
    let store = Arc::new(Recording {
        inner: MemoryQueue::new(),
        log: log.clone(),
    });
    let policy = Recording {
        inner: RefuseSender {
            sender: "spammer@bad.example",
            relay: RelayPolicy {
                trusted_networks: vec!["127.0.0.0/8".parse().expect("net")],
                max_message_size: Some(1_000),
                ..RelayPolicy::default()
            },
        },
        log: log.clone(),
    };
    let router = Recording {
        inner: router,
        log: log.clone(),
    };
    let pipeline =
        SubmissionPipeline::new(Arc::new(router), Arc::new(policy), store.clone(), channels);
    Harness {
        log,
        store,
        pipeline,
    }
}

fn harness() -> Harness {
    harness_with(router(), channels())
}

#[test]
fn steps_run_in_order() {
    let h = harness();
    let env = envelope("a@example.org", &["b@example.com", "c@remote.example"]);
    let report = block_on(
        h.pipeline
            .submit(ctx(Service::Relay, "127.0.0.1"), env, b"body"),
    );
    assert!(report.outcome.is_ok(), "{report:?}");
    assert_eq!(
        entries(&h.log),
        vec![
            "sender <a@example.org>",
            "admission",
            "route b@example.com",
            "policy b@example.com",
            "route c@remote.example",
            "policy c@remote.example",
            "message",
            "enqueue 2 rcpts",
        ]
    );
    let Ok(sub) = report.outcome else {
        unreachable!()
    };
    let queued = h.store.inner.envelope(sub.id).expect("queued");
    assert_eq!(queued.size, 4);
    assert_eq!(
        queued.recipients[0]
            .route
            .as_ref()
            .map(|r| r.channel.as_str()),
        Some("local")
    );
    assert_eq!(
        queued.recipients[1]
            .route
            .as_ref()
            .map(|r| r.channel.as_str()),
        Some("smtp-out")
    );
}

#[test]
fn rejected_sender_stops_the_pipeline() {
    let h = harness();
    let env = envelope("spammer@bad.example", &["b@example.com"]);
    let report = block_on(
        h.pipeline
            .submit(ctx(Service::Relay, "192.0.2.1"), env, b"x"),
    );
    let Err(refusal) = report.outcome else {
        panic!("sender should be refused: {report:?}")
    };
    assert_eq!(refusal.stage, Stage::Sender);
    assert_eq!(refusal.status.code, 550);
    assert!(report.recipients.is_empty());
    assert_eq!(entries(&h.log), vec!["sender <spammer@bad.example>"]);
    assert!(h.store.inner.is_empty());
}

#[test]
fn rejected_recipient_is_reported_for_that_recipient_only() {
    let h = harness();
    let env = envelope(
        "a@example.org",
        &["b@example.com", "nobody@example.com", "c@example.com"],
    );
    let report = block_on(
        h.pipeline
            .submit(ctx(Service::Relay, "192.0.2.1"), env, b"x"),
    );
    let results: Vec<_> = report
        .recipients
        .iter()
        .map(|(a, r)| {
            (
                a.to_string(),
                r.as_ref().map_err(|e| e.status.code).map(|_| ()),
            )
        })
        .collect();
    assert_eq!(
        results,
        vec![
            ("b@example.com".into(), Ok(())),
            ("nobody@example.com".into(), Err(550)),
            ("c@example.com".into(), Ok(())),
        ]
    );
    let sub = report.outcome.expect("queued with the two good recipients");
    let rcpts: Vec<String> = sub
        .envelope
        .recipients
        .iter()
        .map(|r| r.address.to_string())
        .collect();
    assert_eq!(rcpts, vec!["b@example.com", "c@example.com"]);
}

#[test]
fn failed_enqueue_is_a_temporary_failure() {
    let h = harness();
    h.store.inner.fail_enqueue(Some(EnqueueError::Poisoned {
        reason: "fsync failed".into(),
    }));
    let env = envelope("a@example.org", &["b@example.com"]);
    let report = block_on(
        h.pipeline
            .submit(ctx(Service::Relay, "192.0.2.1"), env, b"x"),
    );
    let Err(refusal) = report.outcome else {
        panic!("enqueue should fail: {report:?}")
    };
    assert_eq!(refusal.stage, Stage::Queue);
    assert!(refusal.is_temporary());
    assert_eq!(refusal.status.code, 451);
    assert_eq!(refusal.status.enhanced.to_string(), "4.3.0");
    assert!(h.store.inner.is_empty());
}

#[test]
fn low_space_refuses_before_data() {
    let h = harness();
    h.store
        .inner
        .fail_admission(Some(EnqueueError::InsufficientSpace {
            available: 10,
            reserve: 100,
        }));
    let env = envelope("a@example.org", &[]);
    let err = block_on(
        h.pipeline
            .begin(ctx(Service::Relay, "192.0.2.1"), env, Some(5)),
    )
    .expect_err("no space");
    assert_eq!((err.stage, err.status.code), (Stage::Sender, 452));
    assert_eq!(err.status.enhanced.to_string(), "4.3.1");
}

#[test]
fn relay_rules() {
    let h = harness();
    let stranger = ctx(Service::Relay, "192.0.2.1");
    let env = envelope("a@example.org", &[]);
    let mut tx = block_on(h.pipeline.begin(stranger.clone(), env, None)).expect("sender ok");
    // Local recipients are accepted from anyone.
    assert!(block_on(tx.add_recipient(Recipient::new(addr("b@example.com")))).is_ok());
    // Relaying is refused to strangers.
    let err = block_on(tx.add_recipient(Recipient::new(addr("x@remote.example"))))
        .expect_err("open relay");
    assert_eq!(err.status.code, 554);
    assert_eq!(err.status.enhanced.to_string(), "5.7.1");
    // ... even with the classic tricks: the quoted local part with @ is one remote address.
    let err =
        block_on(tx.add_recipient(Recipient::new(addr("\"x@remote.example\"@relay.example"))))
            .expect_err("quoted @ relays to relay.example");
    assert_eq!(err.status.code, 554);

    // Trusted networks and authenticated clients may relay.
    let env = envelope("a@example.org", &[]);
    let mut tx = block_on(
        h.pipeline
            .begin(ctx(Service::Relay, "127.0.0.1"), env, None),
    )
    .expect("sender ok");
    assert!(block_on(tx.add_recipient(Recipient::new(addr("x@remote.example")))).is_ok());
    let mut authed = stranger;
    authed.client.authenticated = Some("alice".into());
    let env = envelope("a@example.org", &[]);
    let mut tx = block_on(h.pipeline.begin(authed, env, None)).expect("sender ok");
    assert!(block_on(tx.add_recipient(Recipient::new(addr("x@remote.example")))).is_ok());
}

#[test]
fn submission_service_requires_authentication() {
    let h = harness();
    let env = envelope("a@example.org", &["x@remote.example"]);
    let err = block_on(
        h.pipeline
            .begin(ctx(Service::Submission, "127.0.0.1"), env, None),
    )
    .expect_err("unauthenticated submission");
    assert_eq!((err.stage, err.status.code), (Stage::Sender, 530));
}

#[test]
fn router_try_later_is_temporary() {
    let h = harness();
    let env = envelope("a@example.org", &[]);
    let mut tx = block_on(
        h.pipeline
            .begin(ctx(Service::Relay, "192.0.2.1"), env, None),
    )
    .expect("sender ok");
    let err = block_on(tx.add_recipient(Recipient::new(addr("ldap@example.com"))))
        .expect_err("directory down");
    assert!(err.is_temporary());
    assert_eq!(err.status.code, 451);
}

#[test]
fn aliases_expand_and_loops_are_refused() {
    let router = router()
        .address(
            addr("team@example.com"),
            RouteDecision::Expand(vec![
                addr("b@example.com"),
                addr("nobody@example.com"),
                addr("sub@example.com"),
            ]),
        )
        .address(
            addr("sub@example.com"),
            RouteDecision::Expand(vec![addr("c@example.com"), addr("b@example.com")]),
        )
        .address(
            addr("loop1@example.com"),
            RouteDecision::Expand(vec![addr("loop2@example.com")]),
        )
        .address(
            addr("loop2@example.com"),
            RouteDecision::Expand(vec![addr("b@example.com"), addr("loop1@example.com")]),
        );
    let h = harness_with(router, channels());
    let env = envelope("a@example.org", &[]);
    let mut tx = block_on(
        h.pipeline
            .begin(ctx(Service::Relay, "192.0.2.1"), env, None),
    )
    .expect("sender ok");
    let mut team = Recipient::new(addr("team@example.com"));
    team.notify = Notify::on(true, true, false);
    let acc = block_on(tx.add_recipient(team)).expect("alias accepted");
    // b (once, though reached twice), c; nobody dropped.
    assert_eq!(acc.recipients, 2);
    assert_eq!(acc.dropped.len(), 1);
    let got: Vec<String> = tx
        .envelope()
        .recipients
        .iter()
        .map(|r| r.address.to_string())
        .collect();
    assert_eq!(got, vec!["b@example.com", "c@example.com"]);
    for r in &tx.envelope().recipients {
        assert_eq!(r.notify, Notify::on(true, true, false));
        assert_eq!(
            r.original.as_ref().map(|o| o.address.as_str()),
            Some("team@example.com")
        );
    }
    let err = block_on(tx.add_recipient(Recipient::new(addr("loop1@example.com"))))
        .expect_err("alias loop");
    assert_eq!(err.status.enhanced.to_string(), "5.4.6");
    assert_eq!(
        tx.envelope().recipients.len(),
        2,
        "a refused alias adds nothing"
    );
}

#[test]
fn processing_routes_through_the_converter() {
    let x400 = addr("/C=GB/ADMD= /PRMD=Switch/O=Org/S=Smith/");
    let router = router().address(
        x400.clone(),
        RouteDecision::Deliver(Route {
            channel: ChannelId::new("p1-out"),
            next_hop: NextHop::Peer("mta-b".into()),
            local: false,
        }),
    );
    let mut table = channels();
    table.set_converter(
        ContentFamily::Internet,
        ContentFamily::X400,
        ChannelId::new("mixer"),
    );
    let h = harness_with(router.clone(), table);
    let env = envelope("a@example.org", &[]);
    let mut tx = block_on(
        h.pipeline
            .begin(ctx(Service::Relay, "127.0.0.1"), env, None),
    )
    .expect("sender ok");
    block_on(tx.add_recipient(Recipient::new(x400.clone()))).expect("converted");
    let route = tx.envelope().recipients[0].route.clone().expect("routed");
    assert_eq!(route.channel.as_str(), "mixer");
    assert_eq!(route.next_hop, NextHop::Local);

    // Without a converter the recipient is refused with 5.6.3.
    let h = harness_with(router, channels());
    let env = envelope("a@example.org", &[]);
    let mut tx = block_on(
        h.pipeline
            .begin(ctx(Service::Relay, "127.0.0.1"), env, None),
    )
    .expect("sender ok");
    let err = block_on(tx.add_recipient(Recipient::new(x400))).expect_err("no gateway");
    assert_eq!(err.status.enhanced.to_string(), "5.6.3");
}

#[test]
fn routing_to_an_unknown_or_inbound_channel_is_a_temporary_error() {
    let router = StaticRouter::new()
        .local_domain("example.com", "nonexistent")
        .local_domain("example.net", "smtp-in");
    let h = harness_with(router, channels());
    let env = envelope("a@example.org", &[]);
    let mut tx = block_on(
        h.pipeline
            .begin(ctx(Service::Relay, "127.0.0.1"), env, None),
    )
    .expect("sender ok");
    for a in ["b@example.com", "b@example.net"] {
        let err = block_on(tx.add_recipient(Recipient::new(addr(a)))).expect_err("bad channel");
        assert_eq!(err.status.code, 451, "{a}");
        assert_eq!(err.status.enhanced.to_string(), "4.3.5");
    }
}

#[test]
fn limits_and_smtputf8() {
    let h = harness_with(router(), channels());
    let pipeline = SubmissionPipeline::new(
        Arc::new(router()),
        Arc::new(RelayPolicy::default()),
        h.store.clone(),
        channels(),
    )
    .with_limits(SubmissionLimits {
        max_recipients: 2,
        ..SubmissionLimits::default()
    });
    let env = envelope("a@example.org", &[]);
    let mut tx = block_on(pipeline.begin(ctx(Service::Relay, "192.0.2.1"), env, None)).expect("ok");
    for a in ["b@example.com", "c@example.com"] {
        assert!(block_on(tx.add_recipient(Recipient::new(addr(a)))).is_ok());
    }
    let err = block_on(tx.add_recipient(Recipient::new(addr("d@example.com"))))
        .expect_err("over the limit");
    assert_eq!(
        (err.status.code, err.status.enhanced.to_string().as_str()),
        (452, "4.5.3")
    );

    // A UTF-8 address needs an SMTPUTF8 transaction.
    let err = block_on(tx.add_recipient(Recipient::new(addr("jörg@example.com"))));
    assert!(matches!(err, Err(ref e) if e.status.code == 452 || e.status.code == 553));
    let env = envelope("jörg@example.org", &[]);
    let err = block_on(pipeline.begin(ctx(Service::Relay, "192.0.2.1"), env, None))
        .expect_err("UTF-8 sender without SMTPUTF8");
    assert_eq!(
        (err.status.code, err.status.enhanced.to_string().as_str()),
        (553, "5.6.7")
    );
    let mut env = envelope("jörg@example.org", &[]);
    env.content_type = ContentType::Internet {
        body: crate::envelope::BodyType::EightBitMime,
        smtputf8: true,
    };
    assert!(block_on(pipeline.begin(ctx(Service::Relay, "192.0.2.1"), env, None)).is_ok());
}

#[test]
fn message_policy_and_no_recipients() {
    let h = harness();
    let env = envelope("a@example.org", &["b@example.com"]);
    let big = vec![b'x'; 2_000];
    let report = block_on(
        h.pipeline
            .submit(ctx(Service::Relay, "192.0.2.1"), env, &big),
    );
    let Err(refusal) = report.outcome else {
        panic!("too big: {report:?}")
    };
    assert_eq!((refusal.stage, refusal.status.code), (Stage::Message, 552));

    let env = envelope("a@example.org", &[]);
    let tx = block_on(
        h.pipeline
            .begin(ctx(Service::Relay, "192.0.2.1"), env, None),
    )
    .expect("sender ok");
    let err = block_on(tx.commit(b"x")).expect_err("no recipients");
    assert_eq!(err.status.code, 554);
    assert!(h.store.inner.is_empty());
}

#[test]
fn listener_hears_of_durable_messages_only() {
    struct Heard(Mutex<Vec<QueueId>>);
    impl QueueListener for Heard {
        fn queued(&self, id: QueueId, _: &Envelope) {
            self.0.lock().expect("lock").push(id);
        }
    }
    let heard = Arc::new(Heard(Mutex::new(Vec::new())));
    let store = Arc::new(MemoryQueue::new());
    let pipeline = SubmissionPipeline::new(
        Arc::new(router()),
        Arc::new(RelayPolicy::default()),
        store.clone(),
        channels(),
    )
    .with_listener(heard.clone());
    let c = ctx(Service::Relay, "192.0.2.1");
    let ok = block_on(pipeline.submit(c.clone(), envelope("", &["b@example.com"]), b"x"));
    let id = ok.outcome.expect("queued").id;
    store.fail_enqueue(Some(EnqueueError::Io("disk on fire".into())));
    let failed = block_on(pipeline.submit(c, envelope("", &["b@example.com"]), b"x"));
    assert!(failed.outcome.is_err());
    assert_eq!(*heard.0.lock().expect("lock"), vec![id]);
}
