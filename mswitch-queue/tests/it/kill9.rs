//! A real process enqueuing concurrently is SIGKILLed at random moments; every message it
//! acknowledged must be recovered byte for byte.
//!
//! The parent test re-runs this test binary as the child (`kill9_child`, ignored in normal
//! runs): the child opens the queue, enqueues from several threads, and prints `n id` on stdout
//! after each acknowledgement. The parent kills it with SIGKILL after a random delay, reopens
//! the queue and checks every acknowledged message.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::executor::block_on;
use mswitch_core::envelope::{Recipient, ReversePath};
use mswitch_core::store::QueueStore;
use mswitch_core::{Address, Envelope, Timestamp};
use mswitch_queue::{DiskQueue, QueueConfig};

const ROUNDS: u64 = 50;
const WRITERS: usize = 8;
const CHILD_DIR: &str = "MSWITCH_KILL9_DIR";
const CHILD_ROUND: &str = "MSWITCH_KILL9_ROUND";

/// The message numbered `n`: its content is derived from `n`, so the parent can regenerate it.
fn message(n: u64) -> (Envelope, Vec<u8>) {
    let mut env = Envelope::new(
        ReversePath::Address(Address::parse("sender@example.org").expect("valid")),
        Timestamp(n),
    );
    env.recipients = vec![Recipient::new(
        Address::parse(&format!("r{n}@example.com")).expect("valid"),
    )];
    let mut content = format!("Message-ID: <{n}@kill9.test>\r\n\r\n").into_bytes();
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = 200 + (x % 3000) as usize;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        content.push(b'a' + (x % 26) as u8);
    }
    content.extend_from_slice(b"\r\n");
    env.size = content.len() as u64;
    (env, content)
}

fn config(dir: &std::path::Path) -> QueueConfig {
    let mut c = QueueConfig::new(dir);
    c.reserve = 0;
    c.segment_size = 1 << 20; // roll segments during the test
    c
}

#[test]
#[ignore = "child process of kill9_rounds; run by it"]
fn kill9_child() {
    let (Ok(dir), Ok(round)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_ROUND)) else {
        return;
    };
    let round: u64 = round.parse().expect("round number");
    let queue = Arc::new(DiskQueue::open(config(dir.as_ref())).expect("child opens the queue"));
    let next = Arc::new(AtomicU64::new(round * 1_000_000));
    let threads: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (queue, next) = (queue.clone(), next.clone());
            std::thread::spawn(move || {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let (env, content) = message(n);
                    let id = block_on(queue.enqueue(&env, &content)).expect("enqueue");
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "ACK {n} {}", id.0);
                    let _ = out.flush();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn kill9_rounds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut total_acked = 0usize;
    for round in 1..=ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "kill9::kill9_child",
                "--ignored",
                "--nocapture",
                "-q",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let reader = std::thread::spawn(move || {
            let mut acked = HashMap::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut parts = line.split_whitespace();
                if parts.next() != Some("ACK") {
                    continue;
                }
                if let (Some(Ok(n)), Some(Ok(id))) = (
                    parts.next().map(str::parse::<u64>),
                    parts.next().map(str::parse::<u64>),
                ) {
                    acked.insert(n, id);
                }
            }
            acked
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(30 + seed % 300));
        child.kill().expect("SIGKILL the child"); // Child::kill sends SIGKILL on Unix
        let _ = child.wait();
        let acked = reader.join().expect("reader");
        total_acked += acked.len();

        let queue = DiskQueue::open(config(dir.path())).expect("reopen after SIGKILL");
        let recovered = block_on(queue.recover()).expect("recover");
        assert!(
            recovered.quarantined.is_empty(),
            "round {round}: a kill must not damage anything: {:?}",
            recovered.quarantined
        );
        let by_n: HashMap<u64, _> = recovered
            .messages
            .iter()
            .map(|m| (m.envelope.arrival.0, m))
            .collect();
        for (n, id) in &acked {
            let m = by_n
                .get(n)
                .unwrap_or_else(|| panic!("round {round}: acknowledged message {n} lost"));
            assert_eq!(m.id.0, *id, "round {round}: message {n} id");
            let (env, content) = message(*n);
            assert_eq!(m.envelope, env, "round {round}: message {n} envelope");
            let got = block_on(queue.content(m.id)).expect("content");
            assert_eq!(
                crc32c::crc32c(got.as_bytes()),
                crc32c::crc32c(&content),
                "round {round}: message {n} checksum"
            );
            assert_eq!(
                got.as_bytes(),
                &content[..],
                "round {round}: message {n} bytes"
            );
        }
        // Whatever was recovered is whole, acknowledged or not.
        for m in &recovered.messages {
            let (env, content) = message(m.envelope.arrival.0);
            assert_eq!(m.envelope, env);
            assert_eq!(
                block_on(queue.content(m.id)).expect("content").as_bytes(),
                &content[..]
            );
        }
    }
    assert!(
        total_acked > ROUNDS as usize,
        "the child should acknowledge messages before being killed (got {total_acked})"
    );
    eprintln!("kill9: {ROUNDS} rounds, {total_acked} acknowledged messages, none lost");
}
