//! The sending side where Postfix's `smtp-source` cannot do what a scenario needs: a steady
//! trickle whose every "250" is timed, and sessions that connect, say EHLO and then sit idle.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Result;

/// Runs `smtp-source` (`sessions` at once, `count` messages of `size` octets) against
/// 127.0.0.1:`port`; returns how long it ran.
pub(crate) fn smtp_source(port: u16, sessions: usize, count: usize, size: usize) -> Result<f64> {
    let t = Instant::now();
    let out = Command::new("/usr/sbin/smtp-source")
        .args(["-s", &sessions.to_string()])
        .args(["-m", &count.to_string()])
        .args(["-l", &size.to_string()])
        .args(["-f", "sender@example.org", "-t", "rcpt@example.com"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .map_err(|e| format!("cannot run smtp-source: {e}"))?;
    let elapsed = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "smtp-source failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(elapsed)
}

/// A plain SMTP client session.
pub(crate) struct Session {
    out: TcpStream,
    input: BufReader<TcpStream>,
}

impl Session {
    /// Connects, reads the greeting and says EHLO.
    pub(crate) fn open(port: u16) -> Result<Session> {
        let s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .map_err(|e| format!("connect to port {port}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        let out = s.try_clone().map_err(|e| e.to_string())?;
        let mut session = Session {
            out,
            input: BufReader::new(s),
        };
        session.expect(None, 220)?;
        session.expect(Some("EHLO bench.test"), 250)?;
        Ok(session)
    }

    /// Sends `command` (if any) and reads the reply; fails unless its code is `code`.
    fn expect(&mut self, command: Option<&str>, code: u16) -> Result<()> {
        if let Some(c) = command {
            self.out
                .write_all(format!("{c}\r\n").as_bytes())
                .map_err(|e| format!("send {c}: {e}"))?;
        }
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .input
                .read_line(&mut line)
                .map_err(|e| format!("reply to {command:?}: {e}"))?;
            if n == 0 {
                return Err(format!("connection closed; reply to {command:?}: {text}"));
            }
            text.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        if text.get(..3) != Some(code.to_string().as_str()) {
            return Err(format!("{command:?} -> {}", text.trim_end()));
        }
        Ok(())
    }

    /// Sends one message whose Message-ID is `<id>`, with `size` octets of body; returns when
    /// the final "250" has been read.
    pub(crate) fn send(&mut self, id: &str, size: usize) -> Result<()> {
        self.expect(Some("MAIL FROM:<sender@example.org>"), 250)?;
        self.expect(Some("RCPT TO:<rcpt@example.com>"), 250)?;
        self.expect(Some("DATA"), 354)?;
        let mut content = format!(
            "From: <sender@example.org>\r\nTo: <rcpt@example.com>\r\nSubject: latency\r\n\
             Message-ID: <{id}>\r\n\r\n"
        );
        let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n";
        while content.len() + line.len() <= size {
            content.push_str(line);
        }
        content.push_str(".\r\n");
        self.out
            .write_all(content.as_bytes())
            .map_err(|e| format!("send content: {e}"))?;
        self.expect(None, 250)
    }
}

/// Sends `count` messages at `rate` per second over one session; returns the instant each was
/// acknowledged, by Message-ID.
pub(crate) fn steady(
    port: u16,
    count: usize,
    rate: f64,
    size: usize,
) -> Result<Vec<(String, Instant)>> {
    let mut session = Session::open(port)?;
    let start = Instant::now();
    let mut acks = Vec::with_capacity(count);
    for i in 0..count {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let id = format!("lat-{i}@bench.test");
        session.send(&id, size)?;
        acks.push((id, Instant::now()));
    }
    let _ = session.expect(Some("QUIT"), 221);
    Ok(acks)
}

/// The most files this process may open (`RLIMIT_NOFILE`, soft), from /proc.
pub(crate) fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}
