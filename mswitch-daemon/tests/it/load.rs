//! mswitchd under load, in the smarthost topology of `examples/smarthost.toml` (the file itself,
//! with its ports moved to free ones): Postfix's `smtp-source` or a small SMTP client
//! (`loadkit.rs`) in front, Postfix's `smtp-sink` behind, keeping every message it gets in a
//! file.
//!
//! - 2000 messages from `smtp-source` arrive exactly once and intact;
//! - urgent mail (MT-PRIORITY) overtakes a backlog of normal mail waiting for a slow peer.
//!
//! SIGKILL under load is in the reliability suite (`tests/reliability/durability.rs`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use mswitch_testkit::postfix::{SmtpSink, smtp_source};
use mswitch_testkit::{files_under, free_port, wait_until};

use crate::common::Daemon;
use crate::loadkit::{
    Client, events, field, sink_files, sink_messages, smarthost_config, tagged_message,
};

// ---- (a) ------------------------------------------------------------------------------------

#[test]
fn smtp_source_2000_messages_arrive_exactly_once() {
    const COUNT: usize = 2000;
    const LENGTH: usize = 4096;
    let source_args = |count: usize, sessions: usize| -> Vec<String> {
        [
            "-c",
            "-s",
            &sessions.to_string(),
            "-m",
            &count.to_string(),
            "-l",
            &LENGTH.to_string(),
            "-f",
            "sender@example.org",
            "-t",
            "rcpt@example.com",
            "-M",
            "source.test",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };

    // What smtp-source sends, as smtp-sink keeps it when nothing is in between.
    let reference = {
        let port = free_port();
        let direct = SmtpSink::start(port, &[]);
        let args = source_args(1, 1);
        smtp_source(port, &args.iter().map(String::as_str).collect::<Vec<_>>());
        wait_until(Duration::from_secs(10), || {
            sink_messages(&direct).into_iter().next()
        })
        .expect("smtp-source's message straight into smtp-sink")
    };
    let payload: usize = reference.body.iter().map(|l| l.len() + 2).sum::<usize>() - 2;
    assert_eq!(
        payload, LENGTH,
        "smtp-source -l {LENGTH} should send {LENGTH} octets of body: {reference:?}"
    );
    let reference_names: Vec<&str> = reference.header.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(reference_names, ["From", "To", "Date", "Message-Id"]);

    let (listen, sink_port) = (free_port(), free_port());
    let sink = SmtpSink::start(sink_port, &[]);
    let mut daemon = Daemon::start(&smarthost_config(listen, sink_port, &[]), &[listen]);

    let started = Instant::now();
    let args = source_args(COUNT, 20);
    let out = smtp_source(listen, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let submitted = started.elapsed();
    // -c: a counter after each DATA, "\r"-separated.
    let last = out
        .split(['\r', '\n'])
        .filter_map(|c| c.trim().parse::<usize>().ok())
        .max();
    assert_eq!(
        last,
        Some(COUNT),
        "smtp-source should count {COUNT} messages: {out}"
    );

    let arrived = wait_until(Duration::from_secs(120), || {
        let n = files_under(&sink.messages_dir()).len();
        (n >= COUNT).then_some(n)
    });
    let relayed = started.elapsed();
    let Some(_) = arrived else {
        panic!(
            "only {} of {COUNT} messages reached smtp-sink within 120 s",
            files_under(&sink.messages_dir()).len()
        );
    };
    // Every file complete (the last ones may still be being written), and no more coming.
    let complete = wait_until(Duration::from_secs(10), || {
        let files = sink_files(&sink);
        files.iter().all(|(_, m)| m.is_some()).then_some(files)
    });
    let files = complete.unwrap_or_else(|| sink_files(&sink));
    let incomplete: Vec<_> = files.iter().filter(|(_, m)| m.is_none()).collect();
    assert!(
        incomplete.is_empty(),
        "{} sink files never became complete: {:?}",
        incomplete.len(),
        incomplete
            .iter()
            .take(5)
            .map(|(p, _)| p)
            .collect::<Vec<_>>()
    );
    std::thread::sleep(Duration::from_secs(1));
    let total = files_under(&sink.messages_dir()).len();
    assert_eq!(
        total, COUNT,
        "smtp-sink got {total} messages, {COUNT} were sent"
    );

    // Every message intact: envelope, our Received:, smtp-source's header and body.
    let mut message_ids = HashSet::new();
    for (path, m) in &files {
        let m = m.as_ref().expect("checked complete above");
        let bad = |what: &str| -> ! {
            panic!(
                "{}: {what}\n{}",
                path.display(),
                String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default())
            )
        };
        if m.mail_args.split(' ').next() != Some("<sender@example.org>") {
            bad("wrong MAIL FROM");
        }
        if m.rcpt_args != ["<rcpt@example.com>"] {
            bad("wrong RCPT TO");
        }
        let names: Vec<&str> = m.header.iter().map(|(n, _)| n.as_str()).collect();
        if names.first() != Some(&"Received") || names[1..] != reference_names[..] {
            bad("header fields are not our Received: and then smtp-source's");
        }
        let received = &m.header[0].1;
        let ours = "from source.test ([127.0.0.1]) by relay.mswitch.test (mswitch) with ESMTP \
                    for <rcpt@example.com>;";
        if !received.starts_with(ours) {
            bad("our Received: header is not as expected");
        }
        for name in ["From", "To"] {
            if m.header_values(name) != reference.header_values(name) {
                bad(&format!("{name}: differs from what smtp-source sends"));
            }
        }
        if m.body != reference.body {
            bad("the body differs from what smtp-source sends");
        }
        message_ids.insert(m.header_values("Message-Id").concat());
    }

    // The daemon's account: each message received once, relayed once.
    let log = daemon.log();
    let received: Vec<&str> = events(&log, "inbound", "received")
        .into_iter()
        .filter_map(|l| field(l, "queue_id"))
        .collect();
    let deliveries = events(&log, "switch", "delivery");
    let sent: Vec<&str> = deliveries
        .iter()
        .filter(|l| field(l, "status") == Some("sent"))
        .filter_map(|l| field(l, "queue_id"))
        .collect();
    let received_ids: HashSet<&str> = received.iter().copied().collect();
    let sent_ids: HashSet<&str> = sent.iter().copied().collect();
    let others: Vec<&&str> = deliveries
        .iter()
        .filter(|l| field(l, "status") != Some("sent"))
        .collect();
    assert_eq!(received.len(), COUNT, "'received' log lines");
    assert_eq!(received_ids.len(), COUNT, "distinct queue ids received");
    assert_eq!(sent.len(), COUNT, "'delivery status=\"sent\"' log lines");
    assert_eq!(
        sent_ids, received_ids,
        "the queue ids sent are those received"
    );
    assert!(
        others.is_empty(),
        "{} deliveries were not sent the first time: {:?}",
        others.len(),
        others.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        daemon.wait_for_log(
            &["mswitch_daemon::switch: removed "],
            COUNT,
            Duration::from_secs(30)
        ),
        "every message should be removed from the queue once relayed"
    );
    assert!(
        daemon.terminate(),
        "mswitchd should stop cleanly on SIGTERM"
    );
    println!(
        "smtp-source -s 20 -m {COUNT} -l {LENGTH}: submitted in {:.2} s ({:.0} msg/s), all \
         relayed after {:.2} s ({:.0} msg/s); {} distinct Message-Id values from smtp-source",
        submitted.as_secs_f64(),
        COUNT as f64 / submitted.as_secs_f64(),
        relayed.as_secs_f64(),
        COUNT as f64 / relayed.as_secs_f64(),
        message_ids.len()
    );
}

// ---- (c) ------------------------------------------------------------------------------------

#[test]
fn urgent_overtakes_normal_with_a_slow_sink() {
    const NORMAL: usize = 30;
    const URGENT: usize = 3;
    let (listen, sink_port) = (free_port(), free_port());
    // One delivery at a time, each held for a second by the sink before it answers DATA.
    let slow = SmtpSink::start(sink_port, &["-w", "1"]);
    let config = smarthost_config(
        listen,
        sink_port,
        &[
            ("max_jobs = 50", "max_jobs = 1"),
            ("max_per_peer = 50", "max_per_peer = 1"),
        ],
    );
    let mut daemon = Daemon::start(&config, &[listen]);

    let mut client = Client::connect(listen).expect("connect to mswitchd");
    let submit = |client: &mut Client, rcpt: &str, params: &str| {
        let (_, content, _) = tagged_message(rcpt);
        let r = client
            .send(
                &format!("<load@example.org>{params}"),
                &format!("<{rcpt}@example.com>"),
                &content,
            )
            .expect("send to mswitchd");
        assert_eq!(r.code, 250, "{rcpt}: {r:?}");
    };
    let started = Instant::now();
    for i in 0..NORMAL {
        submit(&mut client, &format!("normal-{i}"), "");
    }
    for i in 0..URGENT {
        submit(&mut client, &format!("urgent-{i}"), " MT-PRIORITY=6");
    }
    let submitted = started.elapsed();
    let _ = client.command("QUIT");

    let log = daemon.log();
    let priorities: Vec<&str> = events(&log, "inbound", "received")
        .into_iter()
        .filter_map(|l| field(l, "priority"))
        .collect();
    assert_eq!(
        priorities.iter().filter(|p| **p == "Override").count(),
        URGENT,
        "MT-PRIORITY=6 should be taken as Override: {priorities:?}"
    );

    // The order in which the sink took them, from the daemon's log.
    let sent_order = |log: &str| -> Vec<String> {
        events(log, "switch", "delivery")
            .into_iter()
            .filter(|l| field(l, "status") == Some("sent"))
            .filter_map(|l| field(l, "to"))
            .map(|to| to.trim_matches(['<', '>']).to_owned())
            .collect()
    };
    let urgent_done = wait_until(Duration::from_secs(30), || {
        let order = sent_order(&daemon.log());
        (order.iter().filter(|t| t.starts_with("urgent-")).count() == URGENT).then_some(order)
    });
    let order = urgent_done.unwrap_or_else(|| {
        panic!(
            "the urgent messages were not all relayed within 30 s: {:?}",
            sent_order(&daemon.log())
        )
    });
    let urgent_after = started.elapsed();
    let normal_before = order.iter().filter(|t| t.starts_with("normal-")).count();
    println!(
        "{NORMAL} normal then {URGENT} urgent submitted in {:.2} s; the urgent ones relayed \
         after {:.2} s, behind {normal_before} normal: {order:?}",
        submitted.as_secs_f64(),
        urgent_after.as_secs_f64()
    );
    assert!(
        NORMAL - normal_before >= 20,
        "the urgent messages should overtake at least 20 of the {NORMAL} normal ones queued \
         before them, but {normal_before} normal went first: {order:?}"
    );

    // Swap the slow sink for a fast one: the rest goes, each message exactly once.
    let mut arrived = sink_messages(&slow);
    drop(slow);
    let fast = SmtpSink::start(sink_port, &[]);
    let everything = wait_until(Duration::from_secs(30), || {
        (sent_order(&daemon.log()).len() >= NORMAL + URGENT).then_some(())
    });
    assert!(
        everything.is_some(),
        "not everything was relayed: {:?}",
        sent_order(&daemon.log())
    );
    wait_until(Duration::from_secs(10), || {
        let files = sink_files(&fast);
        (files.iter().all(|(_, m)| m.is_some()) && files.len() + arrived.len() >= NORMAL + URGENT)
            .then_some(())
    });
    arrived.extend(sink_messages(&fast));
    let mut per_rcpt: HashMap<String, usize> = HashMap::new();
    for m in &arrived {
        for r in &m.rcpt_args {
            *per_rcpt.entry(r.clone()).or_default() += 1;
        }
    }
    let expected: HashMap<String, usize> = (0..NORMAL)
        .map(|i| format!("<normal-{i}@example.com>"))
        .chain((0..URGENT).map(|i| format!("<urgent-{i}@example.com>")))
        .map(|r| (r, 1))
        .collect();
    assert_eq!(
        per_rcpt, expected,
        "each message should reach the sinks once"
    );
    assert!(
        daemon.terminate(),
        "mswitchd should stop cleanly on SIGTERM"
    );
}
