//! What the load and durability tests share: the smarthost topology of
//! `examples/smarthost.toml` with its ports moved, the daemon's log fields, smtp-sink's files, a
//! plain SMTP client, load clients that keep a ledger of what was acknowledged, and the
//! reconciliation of that ledger with what reached the sink. Used by the `it` binary
//! (`load.rs`) and the `reliability` binary.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mswitch_testkit::files_under;
use mswitch_testkit::postfix::SmtpSink;

/// The example configuration the benchmarks run.
pub(crate) const EXAMPLE: &str = include_str!("../../../examples/smarthost.toml");
/// Its listener and its smarthost.
pub(crate) const EXAMPLE_LISTENER: &str = "127.0.0.1:10025";
pub(crate) const EXAMPLE_SMARTHOST: &str = "127.0.0.1:10026";

/// `examples/smarthost.toml` listening on `listen` and relaying to `sink`, with the further
/// `edits` (each an exact text replaced once).
pub(crate) fn smarthost_config(listen: u16, sink: u16, edits: &[(&str, &str)]) -> String {
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
pub(crate) fn events<'a>(log: &'a str, target: &str, name: &str) -> Vec<&'a str> {
    let marker = format!(" mswitch_daemon::{target}: {name} ");
    log.lines().filter(|l| l.contains(&marker)).collect()
}

/// The value of `key=` in a text log line (quotes removed).
pub(crate) fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
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
pub(crate) struct SinkMessage {
    /// `X-Mail-Args:`: the MAIL FROM path and parameters.
    pub(crate) mail_args: String,
    /// `X-Rcpt-Args:`, one per RCPT.
    pub(crate) rcpt_args: Vec<String>,
    /// The header fields of the message as relayed to the sink (after smtp-sink's own
    /// `Received:`), unfolded: (name, value).
    pub(crate) header: Vec<(String, String)>,
    /// The body lines (without line ends).
    pub(crate) body: Vec<String>,
}

impl SinkMessage {
    /// Parses a dump file; `None` while it is incomplete (smtp-sink writes as the data comes,
    /// ends with an empty line, and removes the file of an aborted transaction).
    pub(crate) fn parse(bytes: &[u8]) -> Option<SinkMessage> {
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
    pub(crate) fn header_values(&self, name: &str) -> Vec<&str> {
        self.header
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn body_hash(&self) -> u64 {
        hash_lines(&self.body)
    }
}

pub(crate) fn hash_lines<S: AsRef<str>>(lines: &[S]) -> u64 {
    let mut h = DefaultHasher::new();
    for l in lines {
        l.as_ref().hash(&mut h);
    }
    h.finish()
}

/// Every file in the sink: (path, parsed message or `None` while incomplete).
pub(crate) fn sink_files(sink: &SmtpSink) -> Vec<(std::path::PathBuf, Option<SinkMessage>)> {
    files_under(&sink.messages_dir())
        .into_iter()
        .map(|p| {
            let m = std::fs::read(&p).ok().and_then(|b| SinkMessage::parse(&b));
            (p, m)
        })
        .collect()
}

/// The complete messages in the sink.
pub(crate) fn sink_messages(sink: &SmtpSink) -> Vec<SinkMessage> {
    sink_files(sink)
        .into_iter()
        .filter_map(|(_, m)| m)
        .collect()
}

// ---- a plain SMTP client ------------------------------------------------------------------

/// A reply: code and text of its last line.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) text: String,
}

/// A sequential SMTP client (no pipelining), enough to send and to see every reply.
pub(crate) struct Client {
    pub(crate) reader: BufReader<TcpStream>,
    pub(crate) writer: TcpStream,
}

impl Client {
    /// Connects, reads the greeting and says EHLO.
    pub(crate) fn connect(port: u16) -> io::Result<Client> {
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

    pub(crate) fn reply(&mut self) -> io::Result<Reply> {
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

    pub(crate) fn command(&mut self, line: &str) -> io::Result<Reply> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One transaction: the reply to the end of data, or the first refusal before it. An
    /// `Err` after the data was sent leaves the outcome unknown.
    pub(crate) fn send(&mut self, mail: &str, rcpt: &str, content: &[String]) -> io::Result<Reply> {
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

pub(crate) fn expect(r: Reply, code: u16) -> io::Result<Reply> {
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
pub(crate) fn tagged_message(tag: &str) -> (String, Vec<String>, Vec<String>) {
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

pub(crate) fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(Instant::now())
}

// ---- load clients and the reconciliation ------------------------------------------------

/// What the load clients know about the messages they sent.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Message-ID → body hash, of every message whose data was sent (acknowledged or not).
    pub(crate) sent: HashMap<String, u64>,
    /// Message-IDs that got 250 after the data.
    pub(crate) acknowledged: HashSet<String>,
    /// When each 250 was read (after the server had made the message durable).
    pub(crate) acknowledged_at: HashMap<String, Instant>,
    /// Transactions refused with a reply (e.g. 421 while starting).
    pub(crate) refused: usize,
    /// Transactions cut off after the data was sent: the outcome is unknown.
    pub(crate) unknown: usize,
}

/// Sends messages to `port` one after the other until `stop`, reconnecting after every error.
pub(crate) fn load_client(
    port: u16,
    round: usize,
    thread: usize,
    stop: &AtomicBool,
    ledger: &Mutex<Ledger>,
) {
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
                    l.acknowledged_at.insert(id.clone(), Instant::now());
                    l.acknowledged.insert(id);
                }
                Ok(_) => {
                    l.refused += 1;
                    drop(l);
                    // A refusal (421 while starting, 451 while the queue is unusable): do not
                    // spin.
                    std::thread::sleep(Duration::from_millis(20));
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
pub(crate) fn reconcile(
    sink: &SmtpSink,
    ledger: &Ledger,
) -> (HashMap<String, usize>, Vec<String>, usize) {
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

/// The sink's account of a ledger, once nothing more arrives.
#[derive(Debug)]
pub(crate) struct Account {
    /// Messages that got 250.
    pub(crate) acknowledged: usize,
    /// Acknowledged messages that never arrived intact.
    pub(crate) missing: Vec<String>,
    /// Distinct messages that arrived intact.
    pub(crate) distinct: usize,
    /// Extra copies of messages that arrived more than once.
    pub(crate) duplicates: usize,
    /// Messages that arrived though their sender never saw the 250 (cut off, or refused after
    /// the data: allowed, RFC 5321 §6.1 prefers a duplicate to a loss).
    pub(crate) unacknowledged_delivered: usize,
    /// Messages that arrived with another body than the one sent.
    pub(crate) corrupt: Vec<String>,
    /// Messages nobody sent.
    pub(crate) strangers: usize,
    /// Sink files never completed.
    pub(crate) incomplete: usize,
}

/// Waits until every acknowledged message of `ledger` is in `sink` (at most `timeout`), then
/// until no file has arrived for 2 s (at most 20 s more), and accounts for what is there.
pub(crate) fn settle_and_account(sink: &SmtpSink, ledger: &Ledger, timeout: Duration) -> Account {
    settle_and_account_except(sink, ledger, timeout, |_| false)
}

/// The same, not waiting for the acknowledged messages for which `maybe_lost` holds (they
/// are still accounted for).
pub(crate) fn settle_and_account_except(
    sink: &SmtpSink,
    ledger: &Ledger,
    timeout: Duration,
    maybe_lost: impl Fn(&str) -> bool,
) -> Account {
    mswitch_testkit::wait_until(timeout, || {
        let (copies, _, _) = reconcile(sink, ledger);
        ledger
            .acknowledged
            .iter()
            .all(|id| maybe_lost(id) || copies.contains_key(id))
            .then_some(())
    });
    let mut count = files_under(&sink.messages_dir()).len();
    mswitch_testkit::wait_until(Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_secs(2));
        let now = files_under(&sink.messages_dir()).len();
        std::mem::replace(&mut count, now).eq(&now).then_some(())
    });
    let (copies, corrupt, strangers) = reconcile(sink, ledger);
    Account {
        acknowledged: ledger.acknowledged.len(),
        missing: ledger
            .acknowledged
            .iter()
            .filter(|id| !copies.contains_key(*id))
            .cloned()
            .collect(),
        distinct: copies.len(),
        duplicates: copies.values().map(|n| n - 1).sum(),
        unacknowledged_delivered: copies
            .keys()
            .filter(|id| !ledger.acknowledged.contains(*id))
            .count(),
        corrupt,
        strangers,
        incomplete: sink_files(sink).iter().filter(|(_, m)| m.is_none()).count(),
    }
}
