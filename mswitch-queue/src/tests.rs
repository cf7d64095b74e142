use std::collections::HashMap;
use std::io;
use std::path::Path;

use futures::executor::block_on;
use futures::future::join_all;
use mswitch_core::envelope::{Recipient, RecipientState, ReversePath};
use mswitch_core::store::{EnqueueError, QueueStore, RecipientUpdate};
use mswitch_core::{Address, Envelope, QueueId, Status, Timestamp};

use crate::fs::sim::SimBackend;
use crate::{DiskQueue, OpenError, QueueConfig};

const DIR: &str = "/q";

fn config() -> QueueConfig {
    let mut c = QueueConfig::new(DIR);
    c.reserve = 0;
    c
}

fn message(n: usize) -> (Envelope, Vec<u8>) {
    let mut env = Envelope::new(
        ReversePath::Address(Address::parse(&format!("s{n}@example.org")).expect("valid")),
        Timestamp(n as u64),
    );
    env.recipients = vec![
        Recipient::new(Address::parse(&format!("r{n}a@example.com")).expect("valid")),
        Recipient::new(Address::parse(&format!("r{n}b@example.com")).expect("valid")),
    ];
    let content = format!("Subject: {n}\r\n\r\n{}\r\n", "x".repeat(n * 37 % 500)).into_bytes();
    env.size = content.len() as u64;
    (env, content)
}

fn open(fs: &SimBackend, cfg: QueueConfig) -> DiskQueue<SimBackend> {
    DiskQueue::open_with(fs.clone(), cfg).expect("queue opens")
}

fn delivered() -> RecipientState {
    RecipientState::Delivered {
        at: Timestamp(99),
        status: Status::new(250, (2, 0, 0), "ok"),
    }
}

#[test]
fn messages_outcomes_and_removals_survive_reopen() {
    let fs = SimBackend::new();
    let q = open(&fs, config());
    let ids: Vec<QueueId> = (0..5)
        .map(|n| {
            let (env, content) = message(n);
            block_on(q.enqueue(&env, &content)).expect("enqueued")
        })
        .collect();
    block_on(q.record(
        ids[1],
        &[RecipientUpdate {
            index: 1,
            state: delivered(),
        }],
    ))
    .expect("recorded");
    block_on(q.remove(ids[2])).expect("removed");
    assert_eq!(
        block_on(q.content(ids[3])).expect("content").as_bytes(),
        message(3).1
    );
    drop(q);

    let q = open(&fs, config());
    let rec = block_on(q.recover()).expect("recovered");
    assert!(rec.quarantined.is_empty());
    let got: Vec<u64> = rec.messages.iter().map(|m| m.id.0).collect();
    assert_eq!(got, vec![ids[0].0, ids[1].0, ids[3].0, ids[4].0]);
    let m1 = &rec.messages[1].envelope;
    assert_eq!(m1.recipients[1].state, delivered());
    assert_eq!(m1.recipients[0].state, RecipientState::Pending);
    for m in &rec.messages {
        let n = m.envelope.arrival.0 as usize;
        let mut expected = message(n).0;
        if n == 1 {
            expected.recipients[1].state = delivered();
        }
        assert_eq!(m.envelope, expected);
        assert_eq!(
            block_on(q.content(m.id)).expect("content").as_bytes(),
            message(n).1
        );
    }
    // New identifiers continue after the recovered ones.
    let (env, content) = message(9);
    let id = block_on(q.enqueue(&env, &content)).expect("enqueued");
    assert!(id.0 > ids[4].0);
    // Emptied (every file reclaimed) and opened again: identifiers still do not repeat.
    for m in rec.messages.iter().map(|m| m.id).chain([id]) {
        block_on(q.remove(m)).expect("removed");
    }
    drop(q);
    let q = open(&fs, config());
    assert!(
        block_on(q.recover())
            .expect("recovered")
            .messages
            .is_empty()
    );
    let again = block_on(q.enqueue(&env, &content)).expect("enqueued");
    assert!(again.0 > id.0, "{again} after {id}");
    assert!(
        again.0 > 1_600_000_000_000_000,
        "taken from the clock: {again}"
    );
}

/// What the crash test's workload did to a message whose outcome or removal was acknowledged.
/// Outcomes and removals are not synced on their own (`writer::LAZY_SYNC`): they are durable
/// once a later enqueue has been acknowledged (its sync covers them), and before that either
/// state may be found after a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    None,
    Recorded { covered: bool },
}

/// Live messages by their `n`: id and acknowledged change.
type Acked = HashMap<usize, (QueueId, Change)>;

/// The workload of the crash test: batches of concurrent enqueues, outcomes and removals,
/// with small segments so that rolling over and reclaiming happen too. Returns what was
/// acknowledged: live messages by their `n` (with their acknowledged outcome, if any), and the
/// `n`s whose removal was acknowledged (with whether a later sync covers it). A message whose
/// removal was attempted but not acknowledged is in neither: it may legitimately be found or
/// not.
fn workload(q: &DiskQueue<SimBackend>) -> (Acked, Vec<(usize, bool)>) {
    let mut acked: Acked = HashMap::new();
    let mut removed: Vec<(usize, bool)> = Vec::new();
    let mut n = 0;
    for round in 0..6 {
        let msgs: Vec<(usize, (Envelope, Vec<u8>))> = (n..n + 5).map(|i| (i, message(i))).collect();
        n += 5;
        let results = block_on(join_all(
            msgs.iter()
                .map(|(_, (env, content))| q.enqueue(env, content)),
        ));
        let mut synced = false;
        for ((i, _), r) in msgs.iter().zip(results) {
            if let Ok(id) = r {
                acked.insert(*i, (id, Change::None));
                synced = true;
            }
        }
        if synced {
            for (_, change) in acked.values_mut() {
                if let Change::Recorded { covered } = change {
                    *covered = true;
                }
            }
            for (_, covered) in &mut removed {
                *covered = true;
            }
        }
        // An outcome for the first message of this round, removal of the next three (enough
        // garbage that compaction runs).
        let first = round * 5;
        if let Some(&(id, _)) = acked.get(&first) {
            let ok = block_on(q.record(
                id,
                &[RecipientUpdate {
                    index: 0,
                    state: delivered(),
                }],
            ));
            if ok.is_ok() {
                acked.insert(first, (id, Change::Recorded { covered: false }));
            }
        }
        for gone in first + 1..first + 4 {
            if let Some((id, _)) = acked.remove(&gone)
                && block_on(q.remove(id)).is_ok()
            {
                removed.push((gone, false));
            }
        }
    }
    (acked, removed)
}

#[test]
fn crash_at_every_sync_point_loses_nothing_acknowledged() {
    let small = QueueConfig {
        segment_size: 2048,
        ..config()
    };
    // A dry run counts the sync points.
    let dry = SimBackend::new();
    let q = open(&dry, small.clone());
    let _ = workload(&q);
    assert!(
        q.stats().compactions > 0,
        "the workload should make the queue compact: {:?}",
        q.stats()
    );
    drop(q);
    let total = dry.syncs();
    assert!(
        total > 20,
        "the workload should sync many times, got {total}"
    );

    for crash_at in 1..=total + 1 {
        let fs = SimBackend::new();
        fs.crash_at_sync(crash_at);
        let (acked, removed) = match DiskQueue::open_with(fs.clone(), small.clone()) {
            Ok(q) => workload(&q),
            Err(_) => (HashMap::new(), Vec::new()),
        };
        for torn in [0, 5, 100_000] {
            let image = fs.recover_image(torn);
            let q = DiskQueue::open_with(image, small.clone())
                .unwrap_or_else(|e| panic!("crash at {crash_at}, torn {torn}: reopen: {e}"));
            let rec = block_on(q.recover()).expect("recovered");
            assert!(
                rec.quarantined.is_empty(),
                "crash at {crash_at}, torn {torn}: nothing should be damaged: {:?}",
                rec.quarantined
            );
            let by_n: HashMap<usize, _> = rec
                .messages
                .iter()
                .map(|m| (m.envelope.arrival.0 as usize, m))
                .collect();
            // Every acknowledged message is there, intact, with its acknowledged outcome once
            // a sync covers it.
            for (n, (id, change)) in &acked {
                let m = by_n.get(n).unwrap_or_else(|| {
                    panic!("crash at {crash_at}, torn {torn}: lost message {n}")
                });
                assert_eq!(m.id, *id);
                let content = block_on(q.content(m.id)).expect("content");
                assert_eq!(content.as_bytes(), message(*n).1, "message {n} content");
                let state = &m.envelope.recipients[0].state;
                match change {
                    Change::Recorded { covered: true } => assert_eq!(
                        *state,
                        delivered(),
                        "crash at {crash_at}, torn {torn}: outcome of {n} lost after a sync"
                    ),
                    Change::Recorded { covered: false } => assert!(
                        *state == delivered() || *state == message(*n).0.recipients[0].state,
                        "crash at {crash_at}, torn {torn}: {n} in neither state: {state:?}"
                    ),
                    Change::None => {}
                }
            }
            // Nothing appears in part: whatever is there is a whole message as submitted.
            for m in &rec.messages {
                let n = m.envelope.arrival.0 as usize;
                let (mut env, content) = message(n);
                env.recipients[0].state = m.envelope.recipients[0].state.clone();
                assert_eq!(m.envelope, env, "crash at {crash_at}: envelope of {n}");
                assert_eq!(
                    block_on(q.content(m.id)).expect("content").as_bytes(),
                    content
                );
            }
            // An acknowledged removal that a sync covers stays removed.
            for (n, covered) in &removed {
                assert!(
                    !covered || !by_n.contains_key(n),
                    "crash at {crash_at}: removed {n} came back"
                );
            }
        }
    }
}

#[test]
fn a_flipped_byte_is_quarantined_and_the_rest_survives() {
    let fs = SimBackend::new();
    let q = open(&fs, config());
    let mut offsets = Vec::new();
    let seg = Path::new(DIR).join(format!("{:016x}.seg", 1));
    for n in 0..10 {
        offsets.push(fs.file_len(&seg).expect("segment exists"));
        let (env, content) = message(n);
        block_on(q.enqueue(&env, &content)).expect("enqueued");
    }
    drop(q);
    // Damage the middle of message 5's record.
    let mid = (offsets[5] + offsets[6]) / 2;
    assert!(fs.corrupt(&seg, mid, 0x40));
    let q = open(&fs, config());
    let rec = block_on(q.recover()).expect("recovered");
    let got: Vec<usize> = rec
        .messages
        .iter()
        .map(|m| m.envelope.arrival.0 as usize)
        .collect();
    assert_eq!(got, vec![0, 1, 2, 3, 4, 6, 7, 8, 9]);
    assert_eq!(rec.quarantined.len(), 1);
    assert!(
        rec.quarantined[0]
            .location
            .contains(&format!("offset {}", offsets[5])),
        "{:?}",
        rec.quarantined
    );
    let kept = Path::new(DIR)
        .join("quarantine")
        .join(format!("{:016x}-{:010}.bin", 1, offsets[5]));
    assert_eq!(fs.file_len(&kept), Some(offsets[6] - offsets[5]));
}

#[test]
fn a_truncated_tail_is_accepted_silently() {
    let fs = SimBackend::new();
    let q = open(&fs, config());
    for n in 0..3 {
        let (env, content) = message(n);
        block_on(q.enqueue(&env, &content)).expect("enqueued");
    }
    drop(q);
    let seg = Path::new(DIR).join(format!("{:016x}.seg", 1));
    let len = fs.file_len(&seg).expect("segment");
    crate::fs::Backend::truncate(&fs, &seg, (len - 7) as u64).expect("truncate");
    let q = open(&fs, config());
    let rec = block_on(q.recover()).expect("recovered");
    assert_eq!(rec.messages.len(), 2);
    assert!(rec.quarantined.is_empty());
    // The queue goes on writing after the repaired tail.
    let (env, content) = message(7);
    let id = block_on(q.enqueue(&env, &content)).expect("enqueued");
    drop(q);
    let q = open(&fs, config());
    let rec = block_on(q.recover()).expect("recovered");
    assert_eq!(rec.messages.len(), 3);
    assert_eq!(
        block_on(q.content(id)).expect("content").as_bytes(),
        content
    );
}

#[test]
fn fsync_failure_poisons_the_queue() {
    let fs = SimBackend::new();
    let q = open(&fs, config());
    let (env, content) = message(1);
    let durable = block_on(q.enqueue(&env, &content)).expect("enqueued");
    fs.fail_sync(Some(io::ErrorKind::Other));
    let qr = &q;
    let waiting = block_on(join_all((2..6).map(|n| {
        let (env, content) = message(n);
        async move { qr.enqueue(&env, &content).await }
    })));
    assert!(
        waiting
            .iter()
            .all(|r| matches!(r, Err(EnqueueError::Poisoned { .. }))),
        "{waiting:?}"
    );
    // Even after the disk "recovers", the queue stays poisoned until reopened.
    fs.fail_sync(None);
    let later = block_on(q.enqueue(&env, &content));
    assert!(matches!(later, Err(EnqueueError::Poisoned { .. })));
    assert!(matches!(
        q.admission(None),
        Err(EnqueueError::Poisoned { .. })
    ));
    assert!(q.poisoned().is_some());
    drop(q);
    let q = open(&fs.recover_image(0), config());
    let rec = block_on(q.recover()).expect("recovered");
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(rec.messages[0].id, durable);
}

#[test]
fn enospc_is_a_clean_error_and_the_queue_recovers() {
    let fs = SimBackend::new();
    let q = open(&fs, config());
    let (env, content) = message(1);
    block_on(q.enqueue(&env, &content)).expect("enqueued");
    fs.fail_append(Some(io::ErrorKind::StorageFull));
    let err = block_on(q.enqueue(&env, &content)).expect_err("disk full");
    assert!(matches!(err, EnqueueError::Io(_)), "{err:?}");
    assert!(
        q.poisoned().is_none(),
        "a rolled-back write does not poison"
    );
    fs.fail_append(None);
    let (env2, content2) = message(2);
    block_on(q.enqueue(&env2, &content2)).expect("space is back");
    drop(q);
    let q = open(&fs.recover_image(0), config());
    let rec = block_on(q.recover()).expect("recovered");
    assert_eq!(rec.messages.len(), 2);
    assert!(rec.quarantined.is_empty());
}

#[test]
fn low_space_refuses_early() {
    let fs = SimBackend::new();
    let mut cfg = config();
    cfg.reserve = 1000;
    let q = open(&fs, cfg);
    fs.set_available(1500);
    assert!(q.admission(Some(100)).is_ok());
    assert!(matches!(
        q.admission(Some(600)),
        Err(EnqueueError::InsufficientSpace {
            available: 1500,
            reserve: 1000
        })
    ));
    fs.set_available(10);
    let (env, content) = message(1);
    assert!(matches!(
        block_on(q.enqueue(&env, &content)),
        Err(EnqueueError::InsufficientSpace { .. })
    ));
}

#[test]
fn the_directory_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = DiskQueue::open(QueueConfig::new(dir.path())).expect("opens");
    assert!(matches!(
        DiskQueue::open(QueueConfig::new(dir.path())),
        Err(OpenError::Locked { .. })
    ));
    drop(q);
    assert!(DiskQueue::open(QueueConfig::new(dir.path())).is_ok());
}

#[test]
fn real_files_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = QueueConfig::new(dir.path());
    cfg.reserve = 0;
    let q = DiskQueue::open(cfg.clone()).expect("opens");
    let ids: Vec<QueueId> = block_on(join_all((0..50).map(|n| {
        let (env, content) = message(n);
        let q = &q;
        async move { q.enqueue(&env, &content).await.expect("enqueued") }
    })));
    drop(q);
    let q = DiskQueue::open(cfg).expect("reopens");
    let rec = block_on(q.recover()).expect("recovered");
    assert_eq!(rec.messages.len(), 50);
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            block_on(q.content(*id)).expect("content").as_bytes(),
            message(n).1
        );
    }
}

#[test]
fn finished_segments_are_deleted() {
    let fs = SimBackend::new();
    let cfg = QueueConfig {
        segment_size: 4096,
        ..config()
    };
    let q = open(&fs, cfg);
    for n in 0..400 {
        let (env, content) = message(n);
        let id = block_on(q.enqueue(&env, &content)).expect("enqueued");
        block_on(q.remove(id)).expect("removed");
    }
    assert!(q.is_empty());
    // 400 messages of up to ~600 octets went through; only the last segment or two remain.
    assert!(
        fs.total_size() < 3 * 4096,
        "{} octets left",
        fs.total_size()
    );
}

#[test]
fn compaction_keeps_disk_use_near_live_data() {
    // 100,000 messages; 99% are completed soon after they arrive, 1% stay deferred, spread
    // over the whole run, with a deferral outcome recorded for each.
    let fs = SimBackend::new();
    let cfg = QueueConfig {
        segment_size: 64 * 1024,
        ..config()
    };
    let q = open(&fs, cfg.clone());
    let deferred_state = RecipientState::Deferred {
        attempts: 1,
        next_attempt: Timestamp(5_000),
        last: Status::new(451, (4, 4, 1), "no answer"),
    };
    let mut deferred = Vec::new();
    for chunk in 0..200 {
        let ns: Vec<usize> = (chunk * 500..(chunk + 1) * 500).collect();
        let ids = block_on(join_all(ns.iter().map(|&n| {
            let (env, content) = message(n % 1000);
            let q = &q;
            async move { q.enqueue(&env, &content).await.expect("enqueued") }
        })));
        let (keep, done): (Vec<_>, Vec<_>) = ns
            .into_iter()
            .zip(ids)
            .partition(|(n, _): &(usize, QueueId)| *n % 100 == 0);
        let qr = &q;
        block_on(join_all(done.iter().map(|(_, id)| async move {
            qr.remove(*id).await.expect("removed")
        })));
        block_on(join_all(keep.iter().map(|(_, id)| {
            let update = [RecipientUpdate {
                index: 0,
                state: deferred_state.clone(),
            }];
            async move { qr.record(*id, &update).await.expect("recorded") }
        })));
        deferred.extend(keep);
    }
    let stats = q.stats();
    assert_eq!(stats.messages, 1000);
    assert!(stats.compactions > 0, "{stats:?}");
    // Live data measured independently of the queue's own accounting: each live message's
    // record as it would be written now (envelope with its state, and content).
    let live: u64 = deferred
        .iter()
        .map(|(n, _)| {
            let (mut env, content) = message(*n % 1000);
            env.recipients[0].state = deferred_state.clone();
            let env_len = mswitch_core::envelope::codec::encode(&env).len();
            (crate::record::FRAME_LEN + 13 + env_len + content.len()) as u64
        })
        .sum();
    let disk = fs.total_size();
    eprintln!(
        "compaction: {disk} octets on disk for {live} octets live ({:.2}x), {stats:?}",
        disk as f64 / live as f64
    );
    assert!(
        disk <= 2 * live,
        "disk {disk} octets for {live} octets of live data ({stats:?})"
    );
    drop(q);
    // Everything deferred survives, with its state.
    let q = open(&fs, cfg);
    let rec = block_on(q.recover()).expect("recovered");
    assert_eq!(rec.messages.len(), 1000);
    for m in &rec.messages {
        assert_eq!(m.envelope.recipients[0].state, deferred_state);
        let n = m.envelope.arrival.0 as usize;
        assert_eq!(
            block_on(q.content(m.id)).expect("content").as_bytes(),
            message(n).1
        );
    }
}

#[test]
fn mapped_content_outlives_its_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = QueueConfig {
        segment_size: 4096,
        reserve: 0,
        ..QueueConfig::new(dir.path())
    };
    let q = DiskQueue::open(cfg).expect("opens");
    let (env, content) = message(3);
    let id = block_on(q.enqueue(&env, &content)).expect("enqueued");
    let held = block_on(q.content(id)).expect("content");
    block_on(q.remove(id)).expect("removed");
    // Enough traffic to roll past the first segment and delete it.
    for n in 0..40 {
        let (env, c) = message(n);
        let id = block_on(q.enqueue(&env, &c)).expect("enqueued");
        block_on(q.remove(id)).expect("removed");
    }
    assert!(
        !dir.path().join(format!("{:016x}.seg", 1)).exists(),
        "the first segment should have been deleted"
    );
    assert_eq!(held.as_bytes(), &content[..]);
}

#[test]
fn records_with_good_checksums_but_bad_contents_are_quarantined() {
    use crate::fs::{Backend, LogFile};
    use crate::record::{self, TYPE_MESSAGE, TYPE_OUTCOME};

    let fs = SimBackend::new();
    let q = open(&fs, config());
    let (env, content) = message(1);
    let good = block_on(q.enqueue(&env, &content)).expect("enqueued");
    drop(q);
    // Forge two records with valid checksums: a message whose envelope does not decode, and
    // an outcome for a recipient the good message does not have.
    let mut forged = Vec::new();
    let junk = b"not an envelope";
    record::frame(
        &mut forged,
        TYPE_MESSAGE,
        &[
            &77u64.to_le_bytes(),
            &(junk.len() as u32).to_le_bytes(),
            junk,
            b"body",
        ],
    );
    let mut state = Vec::new();
    mswitch_core::envelope::codec::encode_recipient_state(&delivered(), &mut state);
    record::frame(
        &mut forged,
        TYPE_OUTCOME,
        &[
            &good.0.to_le_bytes(),
            &9u32.to_le_bytes(),
            &(state.len() as u32).to_le_bytes(),
            &state,
        ],
    );
    let seg = Path::new(DIR).join(format!("{:016x}.seg", 1));
    let mut f = fs.open_append(&seg).expect("segment");
    f.append(&forged).expect("append");
    f.sync_data().expect("sync");

    let q = open(&fs, config());
    let rec = block_on(q.recover()).expect("recovered");
    let reasons: Vec<&str> = rec.quarantined.iter().map(|q| q.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "envelope does not decode",
            "outcome record does not apply to its message"
        ]
    );
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(rec.messages[0].id, good);
    assert_eq!(
        rec.messages[0].envelope, env,
        "the bad outcome changed nothing"
    );
    // The forged message is not in the index either.
    assert!(matches!(
        block_on(q.content(QueueId(77))),
        Err(mswitch_core::store::StoreError::UnknownMessage(_))
    ));
}

#[test]
fn outcomes_and_removals_share_the_next_sync_or_get_one_soon() {
    let fs = SimBackend::new();
    let q = open(&fs, config());
    let (env, content) = message(1);
    let id = block_on(q.enqueue(&env, &content)).expect("enqueue");
    let after_enqueue = fs.syncs();
    block_on(q.record(
        id,
        &[RecipientUpdate {
            index: 0,
            state: delivered(),
        }],
    ))
    .expect("record");
    block_on(q.remove(id)).expect("remove");
    assert_eq!(
        fs.syncs(),
        after_enqueue,
        "an outcome and a removal should not cost a sync of their own"
    );
    // With nothing else to write, they are synced within LAZY_SYNC.
    let deadline = std::time::Instant::now() + crate::writer::LAZY_SYNC * 20;
    while fs.syncs() == after_enqueue && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(fs.syncs(), after_enqueue + 1, "one sync should follow soon");
    // A crash now keeps the removal.
    drop(q);
    let image = fs.recover_image(0);
    let q = DiskQueue::open_with(image, config()).expect("reopen");
    assert!(block_on(q.recover()).expect("recover").messages.is_empty());
}
