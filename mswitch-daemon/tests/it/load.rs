//! mswitchd under load, in the smarthost topology of `examples/smarthost.toml` (the file itself,
//! with its ports moved to free ones): Postfix's `smtp-source` or a small SMTP client of this
//! file in front, Postfix's `smtp-sink` behind, keeping every message it gets in a file.
//!
//! - 2000 messages from `smtp-source` arrive exactly once and intact;
//! - SIGKILL under load loses nothing that was acknowledged (duplicates are counted, not
//!   failed);
//! - urgent mail (MT-PRIORITY) overtakes a backlog of normal mail waiting for a slow peer.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mswitch_testkit::postfix::{SmtpSink, smtp_source};
use mswitch_testkit::{files_under, free_port, wait_until};

use crate::common::Daemon;

/// The example configuration the benchmarks run.
const EXAMPLE: &str = include_str!("../../../examples/smarthost.toml");
/// Its listener and its smarthost.
const EXAMPLE_LISTENER: &str = "127.0.0.1:10025";
const EXAMPLE_SMARTHOST: &str = "127.0.0.1:10026";

/// `examples/smarthost.toml` listening on `listen` and relaying to `sink`, with the further
/// `edits` (each an exact text replaced once).
fn smarthost_config(listen: u16, sink: u16, edits: &[(&str, &str)]) -> String {
    let listener = format!("127.0.0.1:{listen}");
    let smarthost = format!("127.0.0.1:{sink}");
    let mut text = EXAMPLE.to_owned();
    for (from, to) in [
        (EXAMPLE_LISTENER, listener.as_str()),
        (EXAMPLE_SMARTHOST, smarthost.as_str()),
    ]
    .iter()
    .chain(edits)
    {
        // Ports and keys in comments do not count: only `key = value` lines.
        let lines: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with('#') && l.contains(from))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "examples/smarthost.toml should have {from:?} on exactly one setting line"
        );
        text = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i == lines[0] {
                    l.replace(from, to)
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    text
}

// ---- the daemon's log --------------------------------------------------------------------

/// The lines of events `name` (`received`, `delivery`, ...) of `target` (`inbound`, `switch`).
fn events<'a>(log: &'a str, target: &str, name: &str) -> Vec<&'a str> {
    let marker = format!(" mswitch_daemon::{target}: {name} ");
    log.lines().filter(|l| l.contains(&marker)).collect()
}

/// The value of `key=` in a text log line (quotes removed).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!(" {key}=");
    let start = line.find(&pattern)? + pattern.len();
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(' ').next(),
    }
}

// ---- smtp-sink's files ---------------------------------------------------------------------

/// One message as `smtp-sink` kept it.
#[derive(Debug, Clone)]
struct SinkMessage {
    /// `X-Mail-Args:`: the MAIL FROM path and parameters.
    mail_args: String,
    /// `X-Rcpt-Args:`, one per RCPT.
    rcpt_args: Vec<String>,
    /// The header fields of the message as relayed to the sink (after smtp-sink's own
    /// `Received:`), unfolded: (name, value).
    header: Vec<(String, String)>,
    /// The body lines (without line ends).
    body: Vec<String>,
}

impl SinkMessage {
    /// Parses a dump file; `None` while it is incomplete (smtp-sink writes as the data comes,
    /// ends with an empty line, and removes the file of an aborted transaction).
    fn parse(bytes: &[u8]) -> Option<SinkMessage> {
        let text = std::str::from_utf8(bytes).ok()?;
        let text = text.strip_suffix("\n\n")?;
        let mut lines = text.split('\n');
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                let (_, value) = fields.last_mut()?;
                value.push(' ');
                value.push_str(line.trim_start());
            } else {
                let (name, value) = line.split_once(':')?;
                fields.push((name.to_owned(), value.trim_start().to_owned()));
            }
        }
        let body: Vec<String> = lines.map(str::to_owned).collect();
        if body.is_empty() {
            // Cut right after the header section.
            return None;
        }
        let sink_received = fields
            .iter()
            .position(|(n, v)| n == "Received" && v.contains("(smtp-sink)"))?;
        let value = |name: &str| -> Vec<String> {
            fields[..sink_received]
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        Some(SinkMessage {
            mail_args: value("X-Mail-Args").into_iter().next()?,
            rcpt_args: value("X-Rcpt-Args"),
            header: fields[sink_received + 1..].to_vec(),
            body,
        })
    }

    /// The values of the header field `name` (case-insensitive).
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.header
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn body_hash(&self) -> u64 {
        hash_lines(&self.body)
    }
}

fn hash_lines<S: AsRef<str>>(lines: &[S]) -> u64 {
    let mut h = DefaultHasher::new();
    for l in lines {
        l.as_ref().hash(&mut h);
    }
    h.finish()
}

/// Every file in the sink: (path, parsed message or `None` while incomplete).
fn sink_files(sink: &SmtpSink) -> Vec<(std::path::PathBuf, Option<SinkMessage>)> {
    files_under(&sink.messages_dir())
        .into_iter()
        .map(|p| {
            let m = std::fs::read(&p).ok().and_then(|b| SinkMessage::parse(&b));
            (p, m)
        })
        .collect()
}

/// The complete messages in the sink.
fn sink_messages(sink: &SmtpSink) -> Vec<SinkMessage> {
    sink_files(sink)
        .into_iter()
        .filter_map(|(_, m)| m)
        .collect()
}

// ---- a plain SMTP client ------------------------------------------------------------------

/// A reply: code and text of its last line.
#[derive(Debug, Clone)]
struct Reply {
    code: u16,
    text: String,
}

/// A sequential SMTP client (no pipelining), enough to send and to see every reply.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects, reads the greeting and says EHLO.
    fn connect(port: u16) -> io::Result<Client> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        expect(c.reply()?, 220)?;
        let r = c.command("EHLO load.test")?;
        expect(r, 250)?;
        Ok(c)
    }

    fn reply(&mut self) -> io::Result<Reply> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let line = line.trim_end();
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| io::Error::other(format!("not a reply: {line:?}")))?;
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply {
                    code,
                    text: line.to_owned(),
                });
            }
        }
    }

    fn command(&mut self, line: &str) -> io::Result<Reply> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One transaction: the reply to the end of data, or the first refusal before it. An
    /// `Err` after the data was sent leaves the outcome unknown.
    fn send(&mut self, mail: &str, rcpt: &str, content: &[String]) -> io::Result<Reply> {
        let r = self.command(&format!("MAIL FROM:{mail}"))?;
        if r.code != 250 {
            return Ok(r);
        }
        let r = self.command(&format!("RCPT TO:{rcpt}"))?;
        if r.code != 250 {
            return Ok(r);
        }
        let r = self.command("DATA")?;
        if r.code != 354 {
            return Ok(r);
        }
        let mut data = String::new();
        for line in content {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.writer.write_all(data.as_bytes())?;
        self.reply()
    }
}

fn expect(r: Reply, code: u16) -> io::Result<Reply> {
    if r.code == code {
        Ok(r)
    } else {
        Err(io::Error::other(format!(
            "expected {code}, got {:?}",
            r.text
        )))
    }
}

/// A message of its own for `tag`: (Message-ID, header and body lines, body lines). The body
/// differs in length and text from message to message.
fn tagged_message(tag: &str) -> (String, Vec<String>, Vec<String>) {
    let message_id = format!("<{tag}@load.test>");
    let mut h = DefaultHasher::new();
    tag.hash(&mut h);
    let seed = h.finish();
    let body: Vec<String> = (0..5 + seed % 60)
        .map(|i| {
            let fill = char::from(b'a' + u8::try_from((seed >> (i % 60)) % 26).unwrap_or(0));
            let len = usize::try_from((seed >> (i % 50)) % 70).unwrap_or(0);
            format!("{tag} {i:03} {}", fill.to_string().repeat(len))
        })
        .collect();
    let mut content = vec![
        "From: <load@example.org>".to_owned(),
        "To: <rcpt@example.com>".to_owned(),
        format!("Subject: {tag}"),
        format!("Message-ID: {message_id}"),
        String::new(),
    ];
    content.extend(body.iter().cloned());
    (message_id, content, body)
}

fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(Instant::now())
}

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

// ---- (b) ------------------------------------------------------------------------------------

/// What the load clients know about the messages they sent.
#[derive(Debug, Default)]
struct Ledger {
    /// Message-ID → body hash, of every message whose data was sent (acknowledged or not).
    sent: HashMap<String, u64>,
    /// Message-IDs that got 250 after the data.
    acknowledged: HashSet<String>,
    /// Transactions refused with a reply (e.g. 421 while starting).
    refused: usize,
    /// Transactions cut off after the data was sent: the outcome is unknown.
    unknown: usize,
}

/// Sends messages to `port` one after the other until `stop`, reconnecting after every error.
fn load_client(port: u16, round: usize, thread: usize, stop: &AtomicBool, ledger: &Mutex<Ledger>) {
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut client) = Client::connect(port) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        while !stop.load(Ordering::SeqCst) {
            let tag = format!("r{round}t{thread}n{n}p{}", std::process::id());
            n += 1;
            let (id, content, body) = tagged_message(&tag);
            let result = client.send("<load@example.org>", "<rcpt@example.com>", &content);
            let mut l = ledger.lock().unwrap_or_else(|e| e.into_inner());
            l.sent.insert(id.clone(), hash_lines(&body));
            match result {
                Ok(r) if r.code == 250 => {
                    l.acknowledged.insert(id);
                }
                Ok(_) => {
                    l.refused += 1;
                    break;
                }
                Err(_) => {
                    l.unknown += 1;
                    break;
                }
            }
        }
    }
}

/// Reconciles the sink with the ledger: (Message-ID → copies intact, files with a wrong body,
/// files of messages nobody sent).
fn reconcile(sink: &SmtpSink, ledger: &Ledger) -> (HashMap<String, usize>, Vec<String>, usize) {
    let mut copies: HashMap<String, usize> = HashMap::new();
    let mut corrupt = Vec::new();
    let mut strangers = 0;
    for m in sink_messages(sink) {
        let id = m.header_values("Message-ID").concat();
        match ledger.sent.get(&id) {
            Some(&h) if h == m.body_hash() => *copies.entry(id).or_default() += 1,
            Some(_) => corrupt.push(id),
            None => strangers += 1,
        }
    }
    (copies, corrupt, strangers)
}

#[test]
fn kill9_during_load_loses_nothing_acknowledged() {
    const ROUNDS: usize = 5;
    const CLIENTS: usize = 4;
    let started = Instant::now();
    let (listen, sink_port) = (free_port(), free_port());
    let mut daemon = Daemon::start(&smarthost_config(listen, sink_port, &[]), &[listen]);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // Round 1 fills the queue (the sink is not up yet); the later rounds kill while messages
    // are both arriving and leaving, the backlog of round 1 among them.
    let mut sink = None;
    for round in 1..=ROUNDS {
        let before = ledger
            .lock()
            .map(|l| l.acknowledged.len())
            .unwrap_or_default();
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|t| {
                let (stop, ledger) = (stop.clone(), ledger.clone());
                std::thread::spawn(move || load_client(listen, round, t, &stop, &ledger))
            })
            .collect();
        let kill_after = Duration::from_millis(700 + random_u64() % 800);
        std::thread::sleep(kill_after);
        daemon.kill9();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().expect("a load client panicked");
        }
        let acked = ledger
            .lock()
            .map(|l| l.acknowledged.len())
            .unwrap_or_default()
            - before;
        println!("round {round}: SIGKILL after {kill_after:?}, {acked} messages acknowledged");
        assert!(
            acked >= 10,
            "round {round}: only {acked} messages were acknowledged before the kill"
        );
        if sink.is_none() {
            sink = Some(SmtpSink::start(sink_port, &[]));
        }
        daemon.restart();
    }
    let sink = sink.expect("started after round 1");
    let ledger = ledger.lock().unwrap_or_else(|e| e.into_inner());

    // Every acknowledged message arrives, intact.
    let all_in = wait_until(Duration::from_secs(30), || {
        let (copies, _, _) = reconcile(&sink, &ledger);
        ledger
            .acknowledged
            .iter()
            .all(|id| copies.contains_key(id))
            .then_some(())
    });
    // Then let whatever else is queued (unknown outcomes, redeliveries) arrive too.
    let mut count = files_under(&sink.messages_dir()).len();
    wait_until(Duration::from_secs(10), || {
        std::thread::sleep(Duration::from_millis(1500));
        let now = files_under(&sink.messages_dir()).len();
        std::mem::replace(&mut count, now).eq(&now).then_some(())
    });
    let (copies, corrupt, strangers) = reconcile(&sink, &ledger);
    let missing: Vec<&String> = ledger
        .acknowledged
        .iter()
        .filter(|id| !copies.contains_key(*id))
        .collect();
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    let unacknowledged_delivered = copies
        .keys()
        .filter(|id| !ledger.acknowledged.contains(*id))
        .count();
    let incomplete = sink_files(&sink)
        .iter()
        .filter(|(_, m)| m.is_none())
        .count();
    let log = daemon.log();
    let recovered: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("queue recovered"))
        .filter_map(|l| field(l, "messages"))
        .collect();
    println!(
        "{ROUNDS} rounds of SIGKILL under load with {CLIENTS} clients in {:.1} s: {} messages \
         sent, {} acknowledged, {} refused, {} cut off (outcome unknown); at the sink: {} \
         distinct, {duplicates} duplicates, {unacknowledged_delivered} delivered without an \
         acknowledgement, {} incomplete files; queue at each start: {recovered:?}",
        started.elapsed().as_secs_f64(),
        ledger.sent.len(),
        ledger.acknowledged.len(),
        ledger.refused,
        ledger.unknown,
        copies.len(),
        incomplete
    );
    assert!(
        missing.is_empty() && all_in.is_some(),
        "{} acknowledged messages never arrived, e.g. {:?}",
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>()
    );
    assert!(
        corrupt.is_empty(),
        "{} messages arrived with a body other than the one sent: {:?}",
        corrupt.len(),
        corrupt.iter().take(10).collect::<Vec<_>>()
    );
    assert_eq!(strangers, 0, "messages nobody sent arrived at the sink");
    assert_eq!(incomplete, 0, "sink files left incomplete");
    // Nothing is left behind in the queue.
    assert!(
        daemon.terminate(),
        "mswitchd should stop cleanly on SIGTERM"
    );
    daemon.restart();
    let log = daemon.log();
    let last = log.lines().rev().find(|l| l.contains("queue recovered"));
    assert_eq!(
        last.and_then(|l| field(l, "messages")),
        Some("0"),
        "the queue should be empty once everything arrived: {last:?}"
    );
    assert!(
        daemon.terminate(),
        "mswitchd should stop cleanly on SIGTERM"
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
