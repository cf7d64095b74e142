//! The receiving end of every scenario: Postfix's `smtp-sink` (counting what it receives), or
//! a small sink of our own where a scenario needs more than a count: the time each message
//! arrived (latency) or refusals injected on purpose (retries and bounces).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mswitch_testkit::wait_for_port;

use crate::Result;

/// `smtp-sink -c`: accepts everything, keeps nothing, and prints a running count of messages
/// (`mesg=N`) that a thread here reads.
pub(crate) struct SmtpSink {
    child: Child,
    received: Arc<AtomicU64>,
}

impl SmtpSink {
    pub(crate) fn start(port: u16) -> Result<SmtpSink> {
        let mut child = Command::new("/usr/sbin/smtp-sink")
            .args(["-c", "-u", "nobody"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("1024")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run smtp-sink: {e}"))?;
        let received = Arc::new(AtomicU64::new(0));
        let mut out = child.stdout.take().ok_or("smtp-sink has no stdout")?;
        let counter = received.clone();
        thread::spawn(move || {
            // "sess=1 quit=1 mesg=2\r" after each event; the last mesg= is the count.
            let mut buf = [0u8; 4096];
            let mut line = Vec::new();
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    if b == b'\r' || b == b'\n' {
                        if let Some(m) = mesg_count(&line) {
                            counter.store(m, Ordering::Release);
                        }
                        line.clear();
                    } else {
                        line.push(b);
                    }
                }
            }
        });
        wait_for_port(port, Duration::from_secs(10)).map_err(|e| format!("smtp-sink: {e}"))?;
        Ok(SmtpSink { child, received })
    }

    /// Messages received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }
}

fn mesg_count(line: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(line).ok()?;
    s.split_whitespace()
        .find_map(|w| w.strip_prefix("mesg="))
        .and_then(|n| n.parse().ok())
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Refusals the sink injects, counted over the RCPT commands for `faulty` addresses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Faults {
    /// Every `n`th such RCPT gets `451 4.3.0` (the MTA must retry).
    pub(crate) soft_every: u64,
    /// Every `n`th such RCPT gets `550 5.1.1` (the MTA must bounce).
    pub(crate) hard_every: u64,
}

/// What our own sink saw.
#[derive(Default)]
pub(crate) struct Seen {
    /// When each message arrived, by Message-ID (only for ids starting `lat-`).
    pub(crate) arrivals: HashMap<String, Instant>,
}

/// Our own SMTP sink: a thread per connection, 250 to everything except the injected faults.
pub(crate) struct RustSink {
    stop: Arc<AtomicBool>,
    port: u16,
    pub(crate) messages: Arc<AtomicU64>,
    pub(crate) to_faulty: Arc<AtomicU64>,
    pub(crate) soft: Arc<AtomicU64>,
    pub(crate) hard: Arc<AtomicU64>,
    pub(crate) seen: Arc<Mutex<Seen>>,
}

struct Shared {
    faulty: String,
    faults: Option<Faults>,
    rcpts: AtomicU64,
    messages: Arc<AtomicU64>,
    to_faulty: Arc<AtomicU64>,
    soft: Arc<AtomicU64>,
    hard: Arc<AtomicU64>,
    seen: Arc<Mutex<Seen>>,
}

impl RustSink {
    /// Listens on 127.0.0.1:`port`; RCPTs to `faulty` get the injected `faults`.
    pub(crate) fn start(port: u16, faulty: &str, faults: Option<Faults>) -> Result<RustSink> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .map_err(|e| format!("sink on port {port}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("sink: {e}"))?;
        let sink = RustSink {
            stop: Arc::new(AtomicBool::new(false)),
            port,
            messages: Arc::default(),
            to_faulty: Arc::default(),
            soft: Arc::default(),
            hard: Arc::default(),
            seen: Arc::default(),
        };
        let shared = Arc::new(Shared {
            faulty: faulty.to_ascii_lowercase(),
            faults,
            rcpts: AtomicU64::new(0),
            messages: sink.messages.clone(),
            to_faulty: sink.to_faulty.clone(),
            soft: sink.soft.clone(),
            hard: sink.hard.clone(),
            seen: sink.seen.clone(),
        });
        let stop = sink.stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let shared = shared.clone();
                        thread::spawn(move || {
                            let _ = serve(stream, &shared);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Ok(sink)
    }
}

impl Drop for RustSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::with_capacity(64 * 1024, stream);
    out.write_all(b"220 sink.test ESMTP\r\n")?;
    let mut line = Vec::new();
    let mut accepted = 0usize;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with(b"EHLO") {
            b"250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n"
        } else if upper.starts_with(b"HELO") || upper.starts_with(b"RSET") {
            accepted = 0;
            b"250 2.0.0 OK\r\n"
        } else if upper.starts_with(b"MAIL") {
            accepted = 0;
            b"250 2.1.0 OK\r\n"
        } else if upper.starts_with(b"RCPT") {
            rcpt(&line, shared, &mut accepted)
        } else if upper.starts_with(b"DATA") {
            if accepted == 0 {
                b"554 5.5.1 No valid recipients\r\n"
            } else {
                out.write_all(b"354 go ahead\r\n")?;
                let id = read_data(&mut input)?;
                let now = Instant::now();
                shared.messages.fetch_add(1, Ordering::AcqRel);
                if let Some(id) = id
                    && let Ok(mut seen) = shared.seen.lock()
                {
                    seen.arrivals.insert(id, now);
                }
                accepted = 0;
                b"250 2.0.0 queued\r\n"
            }
        } else if upper.starts_with(b"QUIT") {
            out.write_all(b"221 2.0.0 bye\r\n")?;
            return Ok(());
        } else if upper.starts_with(b"NOOP") {
            b"250 2.0.0 OK\r\n"
        } else {
            b"502 5.5.2 not implemented\r\n"
        };
        out.write_all(reply)?;
    }
}

fn rcpt(line: &[u8], shared: &Shared, accepted: &mut usize) -> &'static [u8] {
    let text = String::from_utf8_lossy(line).to_ascii_lowercase();
    if text.contains(&shared.faulty) {
        shared.to_faulty.fetch_add(1, Ordering::AcqRel);
        if let Some(f) = shared.faults {
            let n = shared.rcpts.fetch_add(1, Ordering::AcqRel) + 1;
            if f.hard_every > 0 && n.is_multiple_of(f.hard_every) {
                shared.hard.fetch_add(1, Ordering::AcqRel);
                return b"550 5.1.1 Injected: no such user\r\n";
            }
            if f.soft_every > 0 && n.is_multiple_of(f.soft_every) {
                shared.soft.fetch_add(1, Ordering::AcqRel);
                return b"451 4.3.0 Injected: try again later\r\n";
            }
        }
    }
    *accepted += 1;
    b"250 2.1.5 OK\r\n"
}

/// Reads the content up to the lone "." line; returns its Message-ID if it is one of the
/// latency probes (`<lat-...>`).
fn read_data(input: &mut BufReader<TcpStream>) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    let mut id = None;
    let mut in_header = true;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(id);
        }
        if in_header {
            if line == b"\r\n" || line == b"\n" {
                in_header = false;
            } else if line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
                let v = String::from_utf8_lossy(&line[11..]);
                let v = v.trim().trim_start_matches('<').trim_end_matches('>');
                if v.starts_with("lat-") {
                    id = Some(v.to_owned());
                }
            }
        }
    }
}
