//! The two MTAs under test, started the same way: a relay on 127.0.0.1 that accepts mail from
//! loopback and sends all of it to one smarthost (the sink), with fsync before every "250".

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mswitch_testkit::postfix::{Postfix, PostfixConfig};
use mswitch_testkit::{TempDir, probe_smtp};

use crate::Result;

/// Which MTA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Mswitch,
    Postfix,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Mswitch => "mswitch",
            Kind::Postfix => "Postfix",
        }
    }
}

/// How a scenario wants the relay.
#[derive(Clone, Debug, Default)]
pub(crate) struct Setup {
    /// The SMTP port it listens on.
    pub(crate) listen: u16,
    /// The smarthost's port.
    pub(crate) sink: u16,
    /// Accept and queue, deliver nothing.
    pub(crate) hold: bool,
    /// Room for this many sessions at once (beyond both MTAs' defaults).
    pub(crate) sessions: usize,
    /// Use this prepared queue directory (mswitch only).
    pub(crate) queue: Option<PathBuf>,
}

/// The examples' smarthost configuration, which the benchmark runs.
const SMARTHOST: &str = include_str!("../../examples/smarthost.toml");

/// A running relay.
pub(crate) enum Mta {
    Mswitch {
        child: Child,
        dir: TempDir,
        started: Instant,
    },
    Postfix(Box<Postfix>),
}

impl Mta {
    /// Starts `kind` with `setup`; returns once it greets on its port.
    pub(crate) fn start(kind: Kind, mswitchd: &Path, setup: &Setup) -> Result<Mta> {
        match kind {
            Kind::Mswitch => start_mswitch(mswitchd, setup),
            Kind::Postfix => Ok(Mta::Postfix(Box::new(start_postfix(setup)))),
        }
    }

    /// Messages in the queue now.
    pub(crate) fn queued(&self) -> Result<usize> {
        match self {
            Mta::Mswitch { dir, .. } => {
                let answer = management(dir.path(), r#"{"version":1,"op":"summary"}"#)
                    .map_err(|e| format!("{e}; mswitchd's log ends:\n{}", self.log_tail()))?;
                json_number(&answer, "messages")
                    .map(|n| n as usize)
                    .ok_or_else(|| format!("mswitchd's summary has no message count: {answer}"))
            }
            Mta::Postfix(p) => Ok(p.queued()),
        }
    }

    /// The processes that make up the MTA: mswitchd, or Postfix's master and its children.
    pub(crate) fn pids(&self) -> Vec<u32> {
        match self {
            Mta::Mswitch { child, .. } => vec![child.id()],
            Mta::Postfix(p) => {
                let master = fs::read_to_string(p.dir().join("queue/pid/master.pid"))
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                let Some(master) = master else {
                    return Vec::new();
                };
                let mut pids = vec![master];
                pids.extend(children_of(master));
                pids
            }
        }
    }

    /// When the mswitchd process was spawned.
    pub(crate) fn spawned(&self) -> Option<Instant> {
        match self {
            Mta::Mswitch { started, .. } => Some(*started),
            Mta::Postfix(_) => None,
        }
    }

    /// The log so far (for an error message).
    pub(crate) fn log_tail(&self) -> String {
        let log = match self {
            Mta::Mswitch { dir, .. } => {
                fs::read_to_string(dir.path().join("mswitchd.log")).unwrap_or_default()
            }
            Mta::Postfix(p) => p.log(),
        };
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        if let Mta::Mswitch { child, .. } = self {
            // SIGTERM, then wait a little; a benchmark's queue is thrown away anyway.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_mswitch(mswitchd: &Path, setup: &Setup) -> Result<Mta> {
    let dir = TempDir::new("mswitch-bench");
    let mut config = SMARTHOST
        .replace("127.0.0.1:10025", &format!("127.0.0.1:{}", setup.listen))
        .replace("127.0.0.1:10026", &format!("127.0.0.1:{}", setup.sink));
    if setup.sessions > 0 {
        let limits = format!(
            "max_connections_per_client = {n}\nmax_connections = {n}",
            n = setup.sessions + 100
        );
        config = config.replace("max_connections_per_client = 500", &limits);
    }
    let path = dir.path().join("mswitch.toml");
    fs::write(&path, config).map_err(|e| format!("write {}: {e}", path.display()))?;
    if let Some(queue) = &setup.queue {
        fs::rename(queue, dir.path().join("queue"))
            .map_err(|e| format!("move the prepared queue {}: {e}", queue.display()))?;
    }
    let log = fs::File::create(dir.path().join("mswitchd.log"))
        .map_err(|e| format!("create the log: {e}"))?;
    let started = Instant::now();
    let child = Command::new(mswitchd)
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", mswitchd.display()))?;
    let mut mta = Mta::Mswitch {
        child,
        dir,
        started,
    };
    wait_for_greeting(&mut mta, setup.listen, Duration::from_secs(120))?;
    if setup.hold {
        let Mta::Mswitch { dir, .. } = &mta else {
            unreachable!("built above")
        };
        management(
            dir.path(),
            r#"{"version":1,"op":"channel","name":"relay","outbound":false}"#,
        )?;
    }
    Ok(mta)
}

/// Polls until the MTA on `port` greets; fails if mswitchd exits first.
pub(crate) fn wait_for_greeting(mta: &mut Mta, port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(greeting) = probe_smtp(port)
            && greeting.starts_with("220")
        {
            return Ok(());
        }
        if let Mta::Mswitch { child, .. } = mta
            && let Ok(Some(status)) = child.try_wait()
        {
            return Err(format!("mswitchd exited ({status}):\n{}", mta.log_tail()));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no greeting on port {port} after {timeout:?}:\n{}",
                mta.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn start_postfix(setup: &Setup) -> Postfix {
    let mut config = PostfixConfig::new(&[setup.listen])
        .set("relayhost", format!("[127.0.0.1]:{}", setup.sink))
        // As mswitch's smarthost configuration: 50 deliveries to the one next hop, retry after
        // 1 s and never wait more than 10 s, no delay notices.
        .set("default_destination_concurrency_limit", "50")
        .set("smtp_destination_concurrency_limit", "50")
        .set("minimal_backoff_time", "1s")
        .set("maximal_backoff_time", "10s")
        .set("queue_run_delay", "1s")
        .set("delay_warning_time", "0");
    if setup.hold {
        config = config.set("defer_transports", "smtp");
    }
    if setup.sessions > 0 {
        // One smtpd process per session.
        config = config.set("default_process_limit", (setup.sessions + 100).to_string());
    }
    Postfix::start(config)
}

/// One request on mswitchd's management socket; the answer line.
fn management(data_dir: &Path, request: &str) -> Result<String> {
    let socket = data_dir.join("mswitch.sock");
    let mut s = UnixStream::connect(&socket)
        .map_err(|e| format!("management socket {}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{request}\n").as_bytes())
        .map_err(|e| format!("management request: {e}"))?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|e| format!("management answer: {e}"))?;
    if !line.contains(r#""ok":true"#) {
        return Err(format!("management {request}: {line}"));
    }
    Ok(line)
}

/// The first `"key":N` in a JSON text.
fn json_number(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Every process whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Resident memory of `pids` together, in bytes: proportional set size (shared pages divided
/// among the processes that share them), so a forking MTA is not counted twice.
pub(crate) fn memory(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum::<u64>()
        * 1024
}

#[cfg(test)]
mod tests {
    use super::json_number;

    #[test]
    fn the_message_count_is_read_from_a_summary() {
        let answer = r#"{"ok":true,"result":{"messages":12,"recipients":3,"held":0}}"#;
        assert_eq!(json_number(answer, "messages"), Some(12));
        assert_eq!(json_number(answer, "recipients"), Some(3));
        assert_eq!(json_number(answer, "absent"), None);
    }
}
