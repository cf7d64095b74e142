use std::collections::{HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::address::{Address, Mailbox};
use crate::envelope::{Notify, Recipient, ReversePath, Route};

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0.saturating_add(Duration::from_secs(secs))
}

fn hop(h: &str) -> NextHop {
    NextHop::Host {
        host: h.into(),
        port: None,
    }
}

fn envelope(from: Option<&str>, to: &[(&str, &str)], priority: Priority) -> Envelope {
    let originator = match from {
        Some(f) => ReversePath::Address(Address::Mailbox(Mailbox::parse(f).expect("sender"))),
        None => ReversePath::Null,
    };
    let mut e = Envelope::new(originator, T0);
    e.priority = priority;
    for (rcpt, peer) in to {
        let mut r = Recipient::new(Address::Mailbox(Mailbox::parse(rcpt).expect("rcpt")));
        r.route = Some(Route {
            channel: ChannelId::new("smtp"),
            next_hop: hop(peer),
            local: false,
        });
        e.recipients.push(r);
    }
    e
}

fn simple(priority: Priority) -> Envelope {
    envelope(Some("a@x.example"), &[("b@y.example", "mx.y")], priority)
}

fn config() -> QmgrConfig {
    QmgrConfig {
        retry: RetrySchedule {
            jitter: 0.0,
            ..RetrySchedule::default()
        },
        ..QmgrConfig::default()
    }
}

fn limits(max_jobs: usize, max_per_peer: usize) -> QmgrConfig {
    let mut c = config();
    c.default_limits = ChannelLimits {
        max_jobs,
        max_per_peer,
        self_tuning: false,
    };
    c
}

fn outcomes(d: &Dispatch, result: impl Fn(usize) -> DeliveryResult) -> JobResult {
    JobResult::Outcomes(
        d.recipients
            .iter()
            .map(|&index| RecipientOutcome {
                index,
                result: result(index),
            })
            .collect(),
    )
}

fn ok() -> DeliveryResult {
    DeliveryResult::Relayed(Status::new(250, (2, 0, 0), "ok"))
}

fn later() -> DeliveryResult {
    DeliveryResult::TryLater(Status::new(451, (4, 3, 0), "try later"))
}

fn failed() -> DeliveryResult {
    DeliveryResult::Failed(Status::new(550, (5, 1, 1), "no such user"))
}

fn removed(effects: &[Effect]) -> Vec<QueueId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Remove { queue_id } => Some(*queue_id),
            _ => None,
        })
        .collect()
}

/// A notice as (kind, [(recipient index, action, enhanced status)]).
type NoticeSummary = (NoticeKind, Vec<(usize, DsnAction, String)>);

fn notices(effects: &[Effect]) -> Vec<NoticeSummary> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify {
                kind, recipients, ..
            } => Some((
                *kind,
                recipients
                    .iter()
                    .map(|r| (r.index, r.action, r.status.enhanced.to_string()))
                    .collect(),
            )),
            _ => None,
        })
        .collect()
}

fn drain(q: &mut Qmgr, now: Timestamp) -> Vec<Dispatch> {
    std::iter::from_fn(|| q.next_dispatch(now)).collect()
}

#[test]
fn higher_priority_submitted_later_goes_first() {
    let mut q = Qmgr::new(limits(1, 1));
    for n in 0..5 {
        q.insert(QueueId(n), simple(Priority::Normal), T0);
    }
    q.insert(QueueId(100), simple(Priority::Flash), T0);
    q.insert(QueueId(101), simple(Priority::Routine), T0);
    let mut order = Vec::new();
    while let Some(d) = q.next_dispatch(T0) {
        order.push(d.queue_id.0);
        assert!(q.next_dispatch(T0).is_none(), "one job at a time");
        let fx = q.complete(d.job, outcomes(&d, |_| ok()), T0);
        assert_eq!(removed(&fx), [d.queue_id]);
    }
    // Fairness every 8th dispatch would take the oldest; with 7 messages it does not apply.
    assert_eq!(order, [100, 0, 1, 2, 3, 4, 101]);
}

#[test]
fn lower_priorities_are_slowed_not_starved() {
    let mut c = limits(1, 1);
    c.fairness_interval = 4;
    let mut q = Qmgr::new(c);
    q.insert(QueueId(0), simple(Priority::Deferred), T0);
    for n in 1..=20 {
        q.insert(QueueId(n), simple(Priority::Override), T0);
    }
    let mut position = None;
    for i in 0..21 {
        let d = q.next_dispatch(T0).expect("work left");
        if d.queue_id == QueueId(0) {
            position = Some(i);
        }
        q.complete(d.job, outcomes(&d, |_| ok()), T0);
    }
    assert_eq!(position, Some(3), "the 4th dispatch takes the oldest");
}

#[test]
fn channel_and_peer_limits_hold() {
    let mut q = Qmgr::new(limits(3, 2));
    for n in 0..10 {
        let peer = if n % 2 == 0 { "mx.a" } else { "mx.b" };
        q.insert(
            QueueId(n),
            envelope(
                Some("s@x.example"),
                &[("r@y.example", peer)],
                Priority::Normal,
            ),
            T0,
        );
    }
    let first = drain(&mut q, T0);
    assert_eq!(first.len(), 3, "channel limit");
    let per_peer = |ds: &[Dispatch], h: &str| ds.iter().filter(|d| d.next_hop == hop(h)).count();
    assert!(per_peer(&first, "mx.a") <= 2 && per_peer(&first, "mx.b") <= 2);
    assert_eq!(q.stats().in_flight, 3);
    let d = &first[0];
    q.complete(d.job, outcomes(d, |_| ok()), T0);
    let more = drain(&mut q, T0);
    assert_eq!(more.len(), 1);
    // Never more than two jobs to one peer at once.
    let mut running: Vec<Dispatch> = first[1..].to_vec();
    running.extend(more);
    assert!(per_peer(&running, "mx.a") <= 2 && per_peer(&running, "mx.b") <= 2);
}

#[test]
fn temporary_failure_is_retried_on_schedule_and_recorded() {
    let mut q = Qmgr::new(config());
    q.insert(QueueId(1), simple(Priority::Normal), T0);
    let d = q.next_dispatch(T0).expect("dispatch");
    assert_eq!(d.attempt, 1);
    let fx = q.complete(d.job, outcomes(&d, |_| later()), T0);
    match &fx[..] {
        [Effect::Record { queue_id, updates }] => {
            assert_eq!(*queue_id, QueueId(1));
            assert_eq!(
                updates[0].state,
                RecipientState::Deferred {
                    attempts: 1,
                    next_attempt: at(60),
                    last: Status::new(451, (4, 3, 0), "try later"),
                }
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(q.next_dispatch(at(59)).is_none());
    assert_eq!(q.next_wakeup(), Some(at(60)));
    q.tick(at(59));
    assert!(q.next_dispatch(at(59)).is_none());
    q.tick(at(60));
    let d = q.next_dispatch(at(60)).expect("retry");
    assert_eq!(d.attempt, 2);
    let fx = q.complete(d.job, outcomes(&d, |_| later()), at(60));
    let Effect::Record { updates, .. } = &fx[0] else {
        panic!("{fx:?}")
    };
    // The second delay doubles.
    assert!(matches!(
        updates[0].state,
        RecipientState::Deferred { attempts: 2, next_attempt, .. } if next_attempt == at(180)
    ));
}

#[test]
fn retry_delays_grow_and_are_capped_and_jittered() {
    let s = RetrySchedule::default();
    assert_eq!(s.delay(1), Duration::from_secs(60));
    assert_eq!(s.delay(2), Duration::from_secs(120));
    assert_eq!(s.delay(6), Duration::from_secs(1920));
    assert_eq!(s.delay(7), Duration::from_secs(3600));
    assert_eq!(s.delay(1000), Duration::from_secs(3600));
    // With jitter, times spread within ±20 %.
    let mut q = Qmgr::new(QmgrConfig {
        default_limits: ChannelLimits {
            max_jobs: 100,
            max_per_peer: 100,
            self_tuning: false,
        },
        ..QmgrConfig::default()
    });
    let mut times = HashSet::new();
    for n in 0..50 {
        q.insert(QueueId(n), simple(Priority::Normal), T0);
    }
    for d in drain(&mut q, T0) {
        let fx = q.complete(d.job, outcomes(&d, |_| later()), T0);
        let Effect::Record { updates, .. } = &fx[0] else {
            panic!()
        };
        let RecipientState::Deferred { next_attempt, .. } = updates[0].state else {
            panic!()
        };
        assert!(
            next_attempt >= at(48) && next_attempt <= at(72),
            "{next_attempt:?}"
        );
        times.insert(next_attempt);
    }
    assert!(times.len() > 40, "jitter spreads retries: {}", times.len());
}

#[test]
fn permanent_failure_notifies_the_sender_and_removes() {
    let mut q = Qmgr::new(config());
    let e = envelope(
        Some("a@x.example"),
        &[("b@y.example", "mx.y"), ("c@y.example", "mx.y")],
        Priority::Normal,
    );
    q.insert(QueueId(1), e, T0);
    let d = q.next_dispatch(T0).expect("dispatch");
    assert_eq!(d.recipients, [0, 1]);
    let fx = q.complete(
        d.job,
        outcomes(&d, |i| if i == 0 { failed() } else { ok() }),
        T0,
    );
    assert_eq!(
        notices(&fx),
        [(
            NoticeKind::Failure,
            vec![(0, DsnAction::Failed, "5.1.1".into())]
        )]
    );
    assert_eq!(removed(&fx), [QueueId(1)]);
    // Record, then Notify, then Remove: the order the driver must keep.
    assert!(matches!(fx[0], Effect::Record { .. }));
    assert!(matches!(fx.last(), Some(Effect::Remove { .. })));
    assert_eq!(q.stats().messages, 0);
}

#[test]
fn null_sender_failure_is_never_bounced() {
    let mut q = Qmgr::new(config());
    q.insert(
        QueueId(1),
        envelope(None, &[("b@y.example", "mx.y")], Priority::Normal),
        T0,
    );
    let d = q.next_dispatch(T0).expect("dispatch");
    let fx = q.complete(d.job, outcomes(&d, |_| failed()), T0);
    assert!(notices(&fx).is_empty());
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::NoticeSuppressed {
            kind: NoticeKind::Failure,
            recipients: 1,
            ..
        }
    )));
    assert_eq!(removed(&fx), [QueueId(1)]);
}

#[test]
fn notify_never_and_success_rules() {
    let mut q = Qmgr::new(config());
    let mut e = envelope(
        Some("a@x.example"),
        &[
            ("never@y.example", "mx.y"),
            ("success@y.example", "mx.y"),
            ("relay@y.example", "mx.y"),
            ("plain@y.example", "mx.y"),
        ],
        Priority::Normal,
    );
    e.recipients[0].notify = Notify::never();
    e.recipients[1].notify = Notify::on(true, false, false);
    e.recipients[2].notify = Notify::on(true, true, false);
    q.insert(QueueId(1), e, T0);
    let d = q.next_dispatch(T0).expect("dispatch");
    let fx = q.complete(
        d.job,
        outcomes(&d, |i| match i {
            0 => failed(),
            1 => DeliveryResult::Delivered(Status::new(250, (2, 0, 0), "saved")),
            2 => DeliveryResult::RelayedWithoutDsn(Status::new(250, (2, 0, 0), "ok")),
            _ => ok(),
        }),
        T0,
    );
    assert_eq!(
        notices(&fx),
        [(
            NoticeKind::Success,
            vec![
                (1, DsnAction::Delivered, "2.0.0".into()),
                (2, DsnAction::Relayed, "2.0.0".into()),
            ]
        )]
    );
}

#[test]
fn lifetime_ends_in_failure_with_5_4_7() {
    let mut c = config();
    c.max_lifetime = Duration::from_secs(600);
    c.delay_warning = None;
    let mut q = Qmgr::new(c);
    q.insert(QueueId(1), simple(Priority::Normal), T0);
    let mut now = T0;
    let mut last = Vec::new();
    for _ in 0..20 {
        q.tick(now);
        if let Some(d) = q.next_dispatch(now) {
            last = q.complete(d.job, outcomes(&d, |_| later()), now);
        }
        if q.stats().messages == 0 {
            break;
        }
        now = q.next_wakeup().expect("a timer");
        if now >= at(600) {
            last = q.tick(now);
        }
    }
    assert_eq!(q.stats().messages, 0, "expired");
    assert_eq!(
        notices(&last),
        [(
            NoticeKind::Failure,
            vec![(0, DsnAction::Failed, "5.4.7".into())]
        )]
    );
    assert_eq!(removed(&last), [QueueId(1)]);
    // Retries never go past the end of the lifetime.
    assert!(now <= at(600));
}

#[test]
fn a_delay_notice_is_sent_once() {
    let mut c = config();
    c.delay_warning = Some(Duration::from_secs(300));
    let mut q = Qmgr::new(c);
    q.insert(QueueId(1), simple(Priority::Normal), T0);
    let mut delay_notices = 0;
    let mut now = T0;
    while now < at(2000) {
        let fx = q.tick(now);
        delay_notices += notices(&fx)
            .iter()
            .filter(|(k, r)| *k == NoticeKind::Delay && r[0].1 == DsnAction::Delayed)
            .count();
        if let Some(d) = q.next_dispatch(now) {
            q.complete(d.job, outcomes(&d, |_| later()), now);
        }
        now = q.next_wakeup().expect("timer");
    }
    assert_eq!(delay_notices, 1);
}

#[test]
fn an_unreachable_peer_waits_while_others_go() {
    let mut c = limits(10, 1);
    c.dead_peer_backoff = Duration::from_secs(30);
    let mut q = Qmgr::new(c);
    for n in 0..3 {
        q.insert(
            QueueId(n),
            envelope(
                Some("s@x.example"),
                &[("r@dead.example", "mx.dead")],
                Priority::Normal,
            ),
            T0,
        );
    }
    q.insert(
        QueueId(9),
        envelope(
            Some("s@x.example"),
            &[("r@up.example", "mx.up")],
            Priority::Normal,
        ),
        T0,
    );
    let ds = drain(&mut q, T0);
    assert_eq!(ds.len(), 2, "one per peer");
    let dead = ds
        .iter()
        .find(|d| d.next_hop == hop("mx.dead"))
        .expect("dead peer job");
    q.complete(
        dead.job,
        JobResult::Unreachable(Status::new(451, (4, 4, 1), "connection refused")),
        T0,
    );
    assert!(
        q.next_dispatch(at(1)).is_none(),
        "the dead peer's other messages wait"
    );
    q.tick(at(30));
    let d = q.next_dispatch(at(30)).expect("back-off over");
    assert_eq!(d.next_hop, hop("mx.dead"));
    // An operator's "retry now" wakes a dead peer at once.
    q.complete(
        d.job,
        JobResult::Unreachable(Status::new(451, (4, 4, 1), "refused")),
        at(30),
    );
    assert!(q.next_dispatch(at(31)).is_none());
    let woken = q.retry_now(Some((&ChannelId::new("smtp"), &hop("mx.dead"))), at(31));
    assert_eq!(woken, 2, "both deferred items are due now");
    assert!(q.next_dispatch(at(31)).is_some());
}

#[test]
fn parallel_failures_of_one_peer_count_once() {
    let mut c = limits(10, 3);
    c.dead_peer_backoff = Duration::from_secs(30);
    let mut q = Qmgr::new(c);
    for n in 0..4 {
        q.insert(QueueId(n), simple(Priority::Normal), T0);
    }
    let running = drain(&mut q, T0);
    assert_eq!(running.len(), 3);
    for d in &running {
        q.complete(
            d.job,
            JobResult::Unreachable(Status::new(451, (4, 4, 1), "refused")),
            T0,
        );
    }
    assert!(q.next_dispatch(at(29)).is_none());
    q.tick(at(30));
    let d = q
        .next_dispatch(at(30))
        .expect("the peer is back after one back-off");
    assert_eq!(d.queue_id, QueueId(3));
}

#[test]
fn hold_and_release() {
    let mut q = Qmgr::new(config());
    q.insert(QueueId(1), simple(Priority::Normal), T0);
    q.insert(QueueId(2), simple(Priority::Normal), T0);
    assert!(q.hold(QueueId(1)));
    assert_eq!(q.stats().held, 1);
    let ds = drain(&mut q, T0);
    assert_eq!(
        ds.iter().map(|d| d.queue_id).collect::<Vec<_>>(),
        [QueueId(2)]
    );
    assert!(q.release(QueueId(1), at(5)));
    let d = q.next_dispatch(at(5)).expect("released");
    assert_eq!(d.queue_id, QueueId(1));
    assert!(!q.hold(QueueId(77)));
}

#[test]
fn recovered_states_are_respected() {
    let mut q = Qmgr::new(config());
    let mut e = envelope(
        Some("a@x.example"),
        &[("done@y.example", "mx.y"), ("later@y.example", "mx.y")],
        Priority::Normal,
    );
    e.recipients[0].state = RecipientState::Delivered {
        at: T0,
        status: Status::new(250, (2, 0, 0), "ok"),
    };
    e.recipients[1].state = RecipientState::Deferred {
        attempts: 3,
        next_attempt: at(500),
        last: Status::new(451, (4, 3, 0), "busy"),
    };
    q.insert(QueueId(1), e, at(100));
    assert!(q.next_dispatch(at(100)).is_none());
    q.tick(at(500));
    let d = q.next_dispatch(at(500)).expect("due");
    assert_eq!(d.recipients, [1]);
    assert_eq!(d.attempt, 4);
    // A message with nothing left is removed at once.
    let mut done = simple(Priority::Normal);
    done.recipients[0].state = RecipientState::Failed {
        at: T0,
        status: Status::new(550, (5, 1, 1), "x"),
    };
    assert_eq!(removed(&q.insert(QueueId(2), done, T0)), [QueueId(2)]);
}

#[test]
fn a_recipient_without_outcome_is_retried() {
    let mut q = Qmgr::new(config());
    q.insert(
        QueueId(1),
        envelope(
            Some("a@x.example"),
            &[("b@y.example", "mx.y"), ("c@y.example", "mx.y")],
            Priority::Normal,
        ),
        T0,
    );
    let d = q.next_dispatch(T0).expect("dispatch");
    let fx = q.complete(
        d.job,
        JobResult::Outcomes(vec![RecipientOutcome {
            index: 0,
            result: ok(),
        }]),
        T0,
    );
    assert!(removed(&fx).is_empty());
    q.tick(at(60));
    assert_eq!(q.next_dispatch(at(60)).expect("retry").recipients, [1]);
}

#[test]
fn many_recipients_are_split_into_jobs() {
    let mut q = Qmgr::new(config());
    let names: Vec<String> = (0..120).map(|i| format!("r{i}@y.example")).collect();
    let to: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "mx.y")).collect();
    q.insert(
        QueueId(1),
        envelope(Some("a@x.example"), &to, Priority::Normal),
        T0,
    );
    let ds = drain(&mut q, T0);
    let sizes: Vec<usize> = ds.iter().map(|d| d.recipients.len()).collect();
    assert_eq!(sizes, [50, 50, 20]);
    let mut removes = 0;
    for d in &ds {
        removes += removed(&q.complete(d.job, outcomes(d, |_| ok()), T0)).len();
    }
    assert_eq!(removes, 1, "removed once, after the last job");
}

#[test]
fn connection_gate_limits_total_and_per_client() {
    let mut g = ConnectionGate::new(3, 2);
    let a: IpAddr = [127, 0, 0, 1].into();
    let b: IpAddr = [127, 0, 0, 2].into();
    assert!(g.admit(a).is_ok());
    assert!(g.admit(a).is_ok());
    let refused = g.admit(a).expect_err("per-client limit");
    assert_eq!(
        (refused.code, refused.enhanced.to_string()),
        (421, "4.7.0".into())
    );
    assert!(g.admit(b).is_ok());
    assert!(g.admit(b).is_err(), "total limit");
    g.leave(a);
    assert!(g.admit(b).is_ok());
    assert_eq!((g.total(), g.from_client(a), g.from_client(b)), (3, 1, 2));
}

proptest! {
    /// Whatever the outcomes, every message ends removed exactly once, every recipient ends
    /// final, no recipient runs twice at once, and the limits hold at every step.
    #[test]
    fn simulation_converges(
        seed in any::<u64>(),
        plan in proptest::collection::vec((0u8..4, 1usize..4, 0u8..3), 1..30),
        results in proptest::collection::vec(0u8..5, 200),
    ) {
        let mut c = limits(4, 2);
        c.seed = seed;
        c.max_lifetime = Duration::from_secs(3600);
        let mut q = Qmgr::new(c);
        let peers = ["mx.a", "mx.b", "mx.c"];
        let mut expected = HashSet::new();
        for (n, &(prio, rcpts, peer)) in plan.iter().enumerate() {
            let names: Vec<String> = (0..rcpts).map(|i| format!("r{i}@y.example")).collect();
            let to: Vec<(&str, &str)> =
                names.iter().map(|s| (s.as_str(), peers[usize::from(peer)])).collect();
            let p = Priority::ALL[usize::from(prio)];
            q.insert(QueueId(n as u64), envelope(Some("s@x.example"), &to, p), T0);
            expected.insert(QueueId(n as u64));
        }
        let mut removed_ids = Vec::new();
        let mut now = T0;
        let mut r = results.iter().cycle();
        let mut running: HashMap<(QueueId, usize), ()> = HashMap::new();
        for _ in 0..10_000 {
            for e in q.tick(now) {
                if let Effect::Remove { queue_id } = e { removed_ids.push(queue_id) }
            }
            let ds = drain(&mut q, now);
            prop_assert!(q.stats().in_flight <= 4);
            for d in &ds {
                for &i in &d.recipients {
                    prop_assert!(running.insert((d.queue_id, i), ()).is_none());
                }
            }
            for d in ds {
                for &i in &d.recipients { running.remove(&(d.queue_id, i)); }
                let res = match r.next().copied().unwrap_or(0) {
                    0 | 1 => outcomes(&d, |_| ok()),
                    2 => outcomes(&d, |_| later()),
                    3 => outcomes(&d, |_| failed()),
                    _ => JobResult::Unreachable(Status::new(451, (4, 4, 1), "refused")),
                };
                for e in q.complete(d.job, res, now) {
                    if let Effect::Remove { queue_id } = e { removed_ids.push(queue_id) }
                }
            }
            match q.next_wakeup() {
                Some(t) => now = now.max(t),
                None => break,
            }
        }
        prop_assert_eq!(q.stats().messages, 0);
        let unique: HashSet<QueueId> = removed_ids.iter().copied().collect();
        prop_assert_eq!(unique.len(), removed_ids.len(), "removed once each");
        prop_assert_eq!(unique, expected);
    }
}

#[test]
fn an_operator_can_fail_a_message_with_a_notice_or_retry_it_now() {
    let mut q = Qmgr::new(config());
    q.insert(QueueId(1), simple(Priority::Normal), T0);
    let d = q.next_dispatch(T0).expect("dispatch");
    // Busy: not while a job runs.
    assert!(
        q.fail_message(QueueId(1), Status::new(550, (5, 0, 0), "deleted"), T0)
            .is_none()
    );
    q.complete(d.job, outcomes(&d, |_| later()), T0);
    // Deferred for 60 s; "retry now" makes it due at once.
    assert!(q.next_dispatch(at(1)).is_none());
    assert!(q.retry_message(QueueId(1), at(1)));
    let d = q.next_dispatch(at(1)).expect("due now");
    q.complete(d.job, outcomes(&d, |_| later()), at(1));
    let fx = q
        .fail_message(
            QueueId(1),
            Status::new(550, (5, 0, 0), "deleted by the postmaster"),
            at(2),
        )
        .expect("failed");
    assert_eq!(
        notices(&fx),
        [(
            NoticeKind::Failure,
            vec![(0, DsnAction::Failed, "5.0.0".into())]
        )]
    );
    assert_eq!(removed(&fx), [QueueId(1)]);
    assert_eq!(q.stats().messages, 0);
    assert!(!q.retry_message(QueueId(1), at(3)));
}

#[test]
fn depth_counts_pending_recipients_by_channel_and_priority() {
    let mut q = Qmgr::new(limits(1, 1));
    assert!(q.depth().is_empty());
    q.insert(
        QueueId(1),
        envelope(
            Some("a@x.example"),
            &[("b@y.example", "mx.y"), ("c@z.example", "mx.z")],
            Priority::Normal,
        ),
        T0,
    );
    q.insert(QueueId(2), simple(Priority::Flash), T0);
    let mut local = envelope(
        Some("a@x.example"),
        &[("d@l.example", "-")],
        Priority::Normal,
    );
    if let Some(route) = local.recipients[0].route.as_mut() {
        route.channel = ChannelId::new("local");
        route.next_hop = NextHop::Local;
    }
    q.insert(QueueId(3), local, T0);
    let smtp = ChannelId::new("smtp");
    let want = |v: &[(&str, Priority, usize)]| -> Vec<(ChannelId, Priority, usize)> {
        v.iter()
            .map(|&(c, p, n)| (ChannelId::new(c), p, n))
            .collect()
    };
    assert_eq!(
        q.depth(),
        want(&[
            ("local", Priority::Normal, 1),
            ("smtp", Priority::Normal, 2),
            ("smtp", Priority::Flash, 1),
        ])
    );
    // In flight still counts; a final outcome no longer does, a deferred one still does.
    let d = q.next_dispatch(T0).expect("dispatch");
    assert_eq!(d.channel, smtp);
    assert_eq!(d.queue_id, QueueId(2), "flash first");
    assert!(q.depth().contains(&(smtp.clone(), Priority::Flash, 1)));
    q.complete(d.job, outcomes(&d, |_| ok()), T0);
    assert!(!q.depth().iter().any(|e| e.1 == Priority::Flash));
    let d = q.next_dispatch(T0).expect("dispatch");
    q.complete(d.job, outcomes(&d, |_| later()), T0);
    let total: usize = q.depth().iter().map(|e| e.2).sum();
    assert_eq!(total, 3, "the deferred recipient is still queued");
}

#[test]
fn an_operator_controls_a_channel() {
    let smtp = ChannelId::new("smtp");
    let mut q = Qmgr::new(config());
    q.insert(QueueId(1), simple(Priority::Normal), T0);
    q.insert(QueueId(2), simple(Priority::Flash), T0);
    // Disabled: nothing starts; enabled again: both go.
    q.set_channel_enabled(&smtp, false);
    assert!(q.next_dispatch(T0).is_none());
    assert_eq!(q.channel_controls(&smtp), (false, None, None));
    q.set_channel_enabled(&smtp, true);
    // A priority limit: only the urgent one.
    q.set_channel_min_priority(&smtp, Some(Priority::Immediate));
    let d = q.next_dispatch(T0).expect("urgent goes");
    assert_eq!(d.queue_id, QueueId(2));
    assert!(q.next_dispatch(T0).is_none(), "normal waits");
    q.complete(d.job, outcomes(&d, |_| ok()), T0);
    q.set_channel_min_priority(&smtp, None);
    // A delay: nothing until it ends.
    q.set_channel_delay(&smtp, Some(at(30)));
    assert!(q.next_dispatch(at(10)).is_none());
    assert_eq!(q.next_wakeup(), Some(at(30)));
    q.tick(at(30));
    assert_eq!(
        q.next_dispatch(at(30)).expect("after the delay").queue_id,
        QueueId(1)
    );
}

#[test]
fn an_operator_times_out_a_channel_and_settles_a_recipient() {
    let mut q = Qmgr::new(config());
    q.insert(QueueId(1), simple(Priority::Normal), T0);
    let mut e = envelope(
        Some("a@x.example"),
        &[("b@y.example", "mx.y"), ("c@y.example", "mx.y")],
        Priority::Normal,
    );
    e.recipients[1].route = Some(Route {
        channel: ChannelId::new("other"),
        next_hop: hop("mx.z"),
        local: false,
    });
    q.insert(QueueId(2), e, T0);
    let fx = q.fail_channel(
        &ChannelId::new("smtp"),
        Status::new(554, (5, 4, 7), "timed out by the postmaster"),
        T0,
    );
    // Message 1 is done (failed, noticed, removed); message 2 keeps its "other" recipient.
    assert_eq!(removed(&fx), [QueueId(1)]);
    assert_eq!(notices(&fx).len(), 2);
    assert_eq!(q.stats().messages, 1);
    // Redirected: the last recipient is settled as expanded; the message is finished.
    let fx = q
        .settle_recipient(QueueId(2), 1, DeliveryResult::Expanded, T0)
        .expect("settled");
    assert_eq!(removed(&fx), [QueueId(2)]);
    assert!(
        q.settle_recipient(QueueId(2), 1, DeliveryResult::Expanded, T0)
            .is_none()
    );
}

/// A simulated peer that serves at most 8 deliveries at once, 40 ms each (more wait in its
/// queue): self-tuning, starting from 1, finds about 8 and keeps the throughput near the
/// peer's capacity (200 per second); when the peer starts deferring, it backs off to 1.
#[test]
fn self_tuning_finds_the_capacity_and_backs_off() {
    let mut c = limits(64, 32);
    c.default_limits.self_tuning = true;
    c.retry.first = Duration::from_secs(3600);
    let mut q = Qmgr::new(c);
    for n in 0..8000 {
        q.insert(QueueId(n), simple(Priority::Normal), T0);
    }
    const SLOTS: usize = 8;
    const SERVICE_MS: u64 = 40;
    // Jobs in the peer: (finish time, job); those waiting for a slot.
    let mut serving: Vec<(u64, Dispatch)> = Vec::new();
    let mut waiting: std::collections::VecDeque<Dispatch> = std::collections::VecDeque::new();
    let mut done_at: Vec<u64> = Vec::new();
    let mut deferring = false;
    let mut ms = 0u64;
    let limit = |q: &Qmgr| q.tuning().first().map_or(0, |t| t.limit);
    while ms < 30_000 {
        let now = T0.saturating_add(Duration::from_millis(ms));
        // Finish what is due; start what waits.
        let (due, rest): (Vec<_>, Vec<_>) = serving.into_iter().partition(|(t, _)| *t <= ms);
        serving = rest;
        for (_, d) in due {
            let r = if deferring { later() } else { ok() };
            q.complete(d.job, outcomes(&d, |_| r.clone()), now);
            done_at.push(ms);
        }
        while serving.len() < SLOTS {
            let Some(d) = waiting.pop_front() else { break };
            serving.push((ms + SERVICE_MS, d));
        }
        while let Some(d) = q.next_dispatch(now) {
            waiting.push_back(d);
        }
        if ms == 20_000 {
            let l = limit(&q);
            assert!((7..=16).contains(&l), "limit {l} at 20 s");
            let recent = done_at.iter().filter(|&&t| t >= 15_000).count() as f64 / 5.0;
            assert!(recent >= 0.9 * 200.0, "{recent} per second, capacity 200");
            deferring = true;
        }
        ms += 5;
    }
    assert_eq!(limit(&q), 1, "backed off: {:?}", q.tuning());
    assert!(q.tuning()[0].reason.starts_with("backed off"));
    // An operator pins it.
    assert!(q.pin_peer(&ChannelId::new("smtp"), &hop("mx.y"), Some(5)));
    assert_eq!((limit(&q), q.tuning()[0].pinned), (5, true));
}

#[test]
fn a_waiting_message_is_held_packed_and_comes_back_whole() {
    let mut q = Qmgr::new(config());
    let e = envelope(
        Some("a@x.example"),
        &[("b@y.example", "mx.y"), ("c@z.example", "mx.z")],
        Priority::Normal,
    );
    q.insert(QueueId(1), e.clone(), T0);
    // Ready: kept decoded.
    assert!(matches!(
        q.messages[&QueueId(1)].envelope,
        HeldEnvelope::Full(_)
    ));
    let jobs = drain(&mut q, T0);
    assert_eq!(jobs.len(), 2);
    for d in &jobs {
        q.complete(d.job, outcomes(d, |_| later()), T0);
    }
    // Every recipient waits for its retry: packed, and still the same envelope.
    assert!(matches!(
        q.messages[&QueueId(1)].envelope,
        HeldEnvelope::Packed(_)
    ));
    let held = q.envelope(QueueId(1)).expect("queued");
    assert_eq!(held.recipients.len(), 2);
    assert!(
        held.recipients
            .iter()
            .all(|r| matches!(r.state, RecipientState::Deferred { attempts: 1, .. }))
    );
    let mut expected = e.clone();
    for (r, h) in expected.recipients.iter_mut().zip(&held.recipients) {
        r.state = h.state.clone();
    }
    assert_eq!(*held, expected);
    // Due again: decoded for the job, which gets the whole envelope.
    q.tick(at(3600));
    let again = drain(&mut q, at(3600));
    assert_eq!(again.len(), 2);
    assert_eq!(*again[0].envelope, expected);
    assert!(matches!(
        q.messages[&QueueId(1)].envelope,
        HeldEnvelope::Full(_)
    ));
    for d in &again {
        let effects = q.complete(d.job, outcomes(d, |_| ok()), at(3600));
        let _ = removed(&effects);
    }
    assert!(q.envelope(QueueId(1)).is_none());
}

#[test]
fn a_packed_envelope_from_recovery_is_scheduled_as_the_decoded_one() {
    let mut e = simple(Priority::Normal);
    e.recipients[0].state = RecipientState::Deferred {
        attempts: 2,
        next_attempt: at(600),
        last: Status::new(421, (4, 4, 1), "down"),
    };
    let mut q = Qmgr::new(config());
    let packed = PackedEnvelope::pack(&e).expect("packs");
    q.insert_packed(QueueId(7), packed, T0);
    assert!(matches!(
        q.messages[&QueueId(7)].envelope,
        HeldEnvelope::Packed(_)
    ));
    assert!(drain(&mut q, at(599)).is_empty());
    q.tick(at(600));
    let jobs = drain(&mut q, at(600));
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].attempt, 3);
    assert_eq!(*jobs[0].envelope, e);
}

#[test]
fn recovery_in_one_go_schedules_as_inserting_one_by_one() {
    let mut waiting = simple(Priority::Normal);
    waiting.recipients[0].state = RecipientState::Deferred {
        attempts: 1,
        next_attempt: at(900),
        last: Status::new(421, (4, 4, 1), "down"),
    };
    let mut done = simple(Priority::Normal);
    done.recipients[0].state = RecipientState::Relayed {
        at: T0,
        status: Status::new(250, (2, 0, 0), "ok"),
    };
    let due = simple(Priority::Normal);
    let pack = |e: &Envelope| PackedEnvelope::pack(e).expect("packs");
    let mut q = Qmgr::new(config());
    let effects = q.recover(
        [
            (QueueId(1), pack(&waiting)),
            (QueueId(2), pack(&done)),
            (QueueId(3), pack(&due)),
        ]
        .into_iter(),
        T0,
    );
    assert_eq!(removed(&effects), vec![QueueId(2)]);
    assert_eq!(q.stats().messages, 2);
    // The due one goes now, the waiting one at its time; no timer is left of the finished one.
    let now = drain(&mut q, T0);
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].queue_id, QueueId(3));
    assert_eq!(q.next_wakeup(), Some(at(900)));
    q.tick(at(900));
    let later = drain(&mut q, at(900));
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].queue_id, QueueId(1));
    // Lifetimes: a message's lifetime timer is still there.
    let lifetime = q.config().max_lifetime;
    assert!(
        q.timers
            .contains(&(T0.saturating_add(lifetime), Timer::Lifetime(QueueId(1))))
    );
    assert!(
        !q.timers
            .iter()
            .any(|(_, t)| *t == Timer::Lifetime(QueueId(2)))
    );
}

fn deferred(owner: &str, until: Timestamp) -> Envelope {
    let mut e = simple(Priority::Normal);
    e.authenticated_as = Some(owner.into());
    e.deferred_until = Some(until);
    e
}

#[test]
fn a_deferred_message_is_withdrawn_by_its_owner_before_its_time() {
    let mut q = Qmgr::new(config());
    q.insert(QueueId(1), deferred("ua", at(600)), T0);
    assert!(q.next_dispatch(T0).is_none(), "held until its time");
    let effects = q
        .withdraw_deferred(QueueId(1), "ua", at(10))
        .expect("withdrawn");
    assert!(matches!(
        effects.as_slice(),
        [Effect::Remove {
            queue_id: QueueId(1)
        }]
    ));
    assert!(q.envelope(QueueId(1)).is_none());
    // Its time comes: nothing is released, nothing dispatched.
    assert!(q.tick(at(601)).is_empty());
    assert!(q.next_dispatch(at(601)).is_none());
    assert_eq!(q.stats().messages, 0);
    // A second request finds nothing.
    assert_eq!(
        q.withdraw_deferred(QueueId(1), "ua", at(11))
            .expect_err("refused"),
        WithdrawError::NotQueued
    );
}

#[test]
fn a_withdrawal_is_refused_for_another_owner_an_undeferred_or_a_released_message() {
    let mut q = Qmgr::new(config());
    q.insert(QueueId(1), deferred("ua", at(600)), T0);
    assert_eq!(
        q.withdraw_deferred(QueueId(1), "other", at(10))
            .expect_err("refused"),
        WithdrawError::NotOwner
    );
    let mut plain = simple(Priority::Normal);
    plain.authenticated_as = Some("ua".into());
    q.insert(QueueId(2), plain, T0);
    assert_eq!(
        q.withdraw_deferred(QueueId(2), "ua", T0)
            .expect_err("refused"),
        WithdrawError::NotDeferred
    );
    assert_eq!(
        q.withdraw_deferred(QueueId(9), "ua", T0)
            .expect_err("refused"),
        WithdrawError::NotQueued
    );
    // The time has come, even before the scheduler's tick moved it.
    assert_eq!(
        q.withdraw_deferred(QueueId(1), "ua", at(600))
            .expect_err("refused"),
        WithdrawError::Released
    );
    // Refusals leave the message in place: it goes out at its time.
    assert!(q.envelope(QueueId(1)).is_some());
    q.tick(at(600));
    let ids: Vec<QueueId> = std::iter::from_fn(|| q.next_dispatch(at(600)))
        .map(|d| d.queue_id)
        .collect();
    assert!(ids.contains(&QueueId(1)), "{ids:?}");
}

#[test]
fn a_deferred_message_made_ready_or_running_is_no_longer_withdrawn() {
    let mut q = Qmgr::new(config());
    q.insert(QueueId(1), deferred("ua", at(600)), T0);
    q.insert(QueueId(2), deferred("ua", at(600)), T0);
    // An operator retries both early; one of them starts.
    assert!(q.retry_message(QueueId(1), T0));
    assert!(q.retry_message(QueueId(2), T0));
    let d = q.next_dispatch(T0).expect("dispatch");
    let (running, ready) = if d.queue_id == QueueId(1) {
        (QueueId(1), QueueId(2))
    } else {
        (QueueId(2), QueueId(1))
    };
    assert_eq!(
        q.withdraw_deferred(running, "ua", T0).expect_err("refused"),
        WithdrawError::Released
    );
    assert_eq!(
        q.withdraw_deferred(ready, "ua", T0).expect_err("refused"),
        WithdrawError::Released
    );
    assert!(q.in_flight(running));
}

#[test]
fn a_deferred_message_on_hold_is_withdrawn() {
    let mut q = Qmgr::new(config());
    q.insert(QueueId(1), deferred("ua", at(600)), T0);
    assert!(q.hold(QueueId(1)));
    assert!(q.withdraw_deferred(QueueId(1), "ua", at(1)).is_ok());
    assert_eq!(q.stats().held, 0);
    assert_eq!(q.stats().messages, 0);
}
