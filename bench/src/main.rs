//! mswitch-bench: mswitchd against Postfix, side by side, in the same run, on loopback.
//!
//! Both MTAs run as the same relay (accept from loopback, fsync, relay everything to one
//! smarthost); Postfix's own `smtp-source` sends and `smtp-sink` receives. Each scenario runs
//! several rounds, alternating which MTA goes first; the table shows medians and the ratio
//! mswitch / Postfix. See docs/performance.md for the scenarios, the targets and the results.
//!
//! ```text
//! bench/run [--quick] [--rounds N] [--only NAME[,NAME...]]
//! ```
//! Needs root (Postfix's master runs as root), Postfix (`apt-get install postfix`), and many open
//! files for the idle-session scenario (`bench/run` raises the limit).

mod backlog;
mod client;
mod mta;
mod sink;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mswitch_testkit::{TempDir, free_port, is_root};

use crate::mta::{Kind, Mta, Setup};
use crate::sink::{Faults, RustSink, SmtpSink};

pub(crate) type Result<T> = std::result::Result<T, String>;

/// How much work each scenario does.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    relay: usize,
    relay_large: usize,
    accept: usize,
    latency: usize,
    idle: usize,
    backlog: usize,
    backlog_relay: usize,
    faults: usize,
}

const FULL: Sizes = Sizes {
    relay: 10_000,
    relay_large: 2_000,
    accept: 10_000,
    latency: 1_000,
    idle: 2_000,
    backlog: 1_000_000,
    backlog_relay: 10_000,
    faults: 5_000,
};

const QUICK: Sizes = Sizes {
    relay: 2_000,
    relay_large: 300,
    accept: 2_000,
    latency: 300,
    idle: 500,
    backlog: 50_000,
    backlog_relay: 2_000,
    faults: 1_000,
};

const SCENARIOS: &[&str] = &[
    "relay-4k",
    "relay-1k",
    "relay-100k",
    "accept",
    "latency",
    "idle",
    "faults",
    "backlog",
];

struct Options {
    mswitchd: PathBuf,
    rounds: usize,
    sizes: Sizes,
    only: Vec<String>,
}

fn main() {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mswitch-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = preflight(&options) {
        eprintln!("mswitch-bench: {e}");
        std::process::exit(2);
    }
    print_machine(&options);
    let mut report = Report::default();
    if let Err(e) = run(&options, &mut report) {
        report.print();
        eprintln!("mswitch-bench: {e}");
        std::process::exit(1);
    }
    report.print();
}

fn parse_args() -> Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut options = Options {
        mswitchd: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("mswitchd")))
            .unwrap_or_else(|| PathBuf::from("mswitchd")),
        rounds: 3,
        sizes: FULL,
        only: Vec::new(),
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => options.sizes = QUICK,
            "--rounds" => {
                options.rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--rounds needs a positive number")?;
            }
            "--only" => {
                let names = args.next().ok_or("--only needs scenario names")?;
                for n in names.split(',') {
                    if !SCENARIOS.contains(&n) {
                        return Err(format!("no scenario {n:?}; there are {SCENARIOS:?}"));
                    }
                    options.only.push(n.to_owned());
                }
            }
            "--mswitchd" => {
                options.mswitchd = args.next().ok_or("--mswitchd needs a path")?.into();
            }
            "-h" | "--help" => {
                println!(
                    "usage: mswitch-bench [--quick] [--rounds N] [--only NAME[,NAME...]] \
                     [--mswitchd PATH]\nscenarios: {}",
                    SCENARIOS.join(", ")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

/// Everything the run needs, checked before anything starts; nothing is installed.
fn preflight(options: &Options) -> Result<()> {
    let mut missing = Vec::new();
    for tool in [
        "/usr/sbin/postfix",
        "/usr/sbin/smtp-source",
        "/usr/sbin/smtp-sink",
    ] {
        if !std::path::Path::new(tool).exists() {
            missing.push(tool);
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing {}: install Postfix without a system configuration:\n  \
             echo 'postfix postfix/main_mailer_type select No configuration' | \
             debconf-set-selections\n  \
             DEBIAN_FRONTEND=noninteractive apt-get install -y postfix",
            missing.join(", ")
        ));
    }
    if !is_root() {
        return Err(
            "run as root: Postfix's master runs as root and smtp-sink drops to nobody".into(),
        );
    }
    if !options.mswitchd.exists() {
        return Err(format!(
            "no mswitchd at {}: build it with `cargo build --release -p mswitch-daemon` \
             (bench/run does), or give --mswitchd PATH",
            options.mswitchd.display()
        ));
    }
    let wanted = options.sizes.idle as u64 * 2 + 200;
    if options.wants("idle") && client::open_files_limit().unwrap_or(0) < wanted {
        return Err(format!(
            "the idle-session scenario needs at least {wanted} open files: `ulimit -n 65536` \
             first (bench/run does)"
        ));
    }
    Ok(())
}

impl Options {
    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == scenario)
    }
}

fn print_machine(options: &Options) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let postfix = std::process::Command::new("/usr/sbin/postconf")
        .args(["-d", "mail_version"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("mswitch-bench: mswitchd against Postfix, same machine, same run");
    println!(
        "machine: {cpu}, {cores} cores, {memory} memory, Linux {}",
        kernel.trim()
    );
    println!(
        "temporary directory (queues): {}; Postfix: {postfix}",
        std::env::temp_dir().display()
    );
    println!(
        "mswitchd: {}; {} round(s) per scenario, alternating which MTA goes first; medians\n",
        options.mswitchd.display(),
        options.rounds
    );
}

/// One line of the final table.
struct Row {
    scenario: String,
    unit: &'static str,
    mswitch: f64,
    postfix: Option<f64>,
    /// The ratio mswitch / Postfix makes sense only where more is better.
    ratio: bool,
    target: String,
    met: Option<bool>,
    notes: String,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
}

impl Report {
    fn add(&mut self, row: Row) {
        println!(
            "  => {}: mswitch {} {}{}{}{}",
            row.scenario,
            fmt(row.mswitch),
            row.unit,
            row.postfix
                .map(|p| format!(", Postfix {} {}", fmt(p), row.unit))
                .unwrap_or_default(),
            match (row.ratio, row.postfix) {
                (true, Some(p)) if p > 0.0 => format!(", ratio {:.1}×", row.mswitch / p),
                _ => String::new(),
            },
            if row.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", row.notes)
            }
        );
        self.rows.push(row);
    }

    fn print(&self) {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{:<34} {:>12} {:>12} {:>8}  {:<18} met",
            "scenario", "mswitch", "Postfix", "ratio", "target"
        );
        for r in &self.rows {
            let ratio = match (r.ratio, r.postfix) {
                (true, Some(p)) if p > 0.0 => format!("{:.1}×", r.mswitch / p),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "{:<34} {:>12} {:>12} {:>8}  {:<18} {}",
                format!("{} ({})", r.scenario, r.unit),
                fmt(r.mswitch),
                r.postfix.map(fmt).unwrap_or_else(|| "-".into()),
                ratio,
                r.target,
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "",
                }
            );
        }
        print!("{out}");
    }
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The two MTAs in the order of round `round`.
fn order(round: usize) -> [Kind; 2] {
    if round.is_multiple_of(2) {
        [Kind::Mswitch, Kind::Postfix]
    } else {
        [Kind::Postfix, Kind::Mswitch]
    }
}

/// Runs `measure` for both MTAs, `rounds` times alternating; the medians (mswitch, Postfix).
fn side_by_side(
    options: &Options,
    name: &str,
    mut measure: impl FnMut(Kind) -> Result<f64>,
) -> Result<(f64, f64)> {
    let (mut m, mut p) = (Vec::new(), Vec::new());
    for round in 0..options.rounds {
        for kind in order(round) {
            let v = measure(kind).map_err(|e| format!("{name}, {}: {e}", kind.name()))?;
            println!("  {name} round {}: {} {}", round + 1, kind.name(), fmt(v));
            match kind {
                Kind::Mswitch => m.push(v),
                Kind::Postfix => p.push(v),
            }
        }
    }
    Ok((median(m), median(p)))
}

fn run(options: &Options, report: &mut Report) -> Result<()> {
    let s = options.sizes;
    let mut empty_queue_rate = None;
    for (name, size, count) in [
        ("relay-4k", 4096, s.relay),
        ("relay-1k", 1024, s.relay),
        ("relay-100k", 100 * 1024, s.relay_large),
    ] {
        if !options.wants(name) {
            continue;
        }
        println!("{name}: relay end to end, {count} messages of {size} octets, 20 sessions");
        let (m, p) = side_by_side(options, name, |kind| relay(options, kind, size, count))?;
        if name == "relay-4k" {
            empty_queue_rate = Some(m);
        }
        let target = name == "relay-4k";
        report.add(Row {
            scenario: name.into(),
            unit: "msg/s",
            mswitch: m,
            postfix: Some(p),
            ratio: true,
            target: if target {
                "≥ 5× Postfix".into()
            } else {
                String::new()
            },
            met: target.then_some(m >= 5.0 * p),
            notes: String::new(),
        });
    }
    if options.wants("accept") {
        println!(
            "accept: accept only (delivery held), {} messages of 4096 octets, 20 sessions",
            s.accept
        );
        let (m, p) = side_by_side(options, "accept", |kind| accept(options, kind, s.accept))?;
        report.add(Row {
            scenario: "accept".into(),
            unit: "msg/s",
            mswitch: m,
            postfix: Some(p),
            ratio: true,
            target: "≥ 5× Postfix".into(),
            met: Some(m >= 5.0 * p),
            notes: String::new(),
        });
    }
    if options.wants("latency") {
        println!(
            "latency: {} messages of 4096 octets at 100/s, final 250 to the sink's receipt",
            s.latency
        );
        let (mut m50, mut m99, mut p50, mut p99) = (vec![], vec![], vec![], vec![]);
        for round in 0..options.rounds {
            for kind in order(round) {
                let (a, b) = latency(options, kind, s.latency)
                    .map_err(|e| format!("latency, {}: {e}", kind.name()))?;
                println!(
                    "  latency round {}: {} p50 {} ms, p99 {} ms",
                    round + 1,
                    kind.name(),
                    fmt(a),
                    fmt(b)
                );
                let (x, y) = match kind {
                    Kind::Mswitch => (&mut m50, &mut m99),
                    Kind::Postfix => (&mut p50, &mut p99),
                };
                x.push(a);
                y.push(b);
            }
        }
        let (m50, m99, p50, p99) = (median(m50), median(m99), median(p50), median(p99));
        report.add(Row {
            scenario: "latency p50".into(),
            unit: "ms",
            mswitch: m50,
            postfix: Some(p50),
            ratio: false,
            target: "≤ 5 ms".into(),
            met: Some(m50 <= 5.0),
            notes: String::new(),
        });
        report.add(Row {
            scenario: "latency p99".into(),
            unit: "ms",
            mswitch: m99,
            postfix: Some(p99),
            ratio: false,
            target: "≤ 50 ms".into(),
            met: Some(m99 <= 50.0),
            notes: String::new(),
        });
    }
    if options.wants("idle") {
        println!("idle: {} SMTP sessions held open after EHLO", s.idle);
        let m = idle(options, Kind::Mswitch, s.idle)?;
        let p = idle(options, Kind::Postfix, s.idle)?;
        report.add(Row {
            scenario: "idle sessions, memory each".into(),
            unit: "KiB",
            mswitch: m / 1024.0,
            postfix: Some(p / 1024.0),
            ratio: false,
            target: "≤ 64 KiB".into(),
            met: Some(m <= 64.0 * 1024.0),
            notes: String::new(),
        });
    }
    if options.wants("faults") {
        println!(
            "faults: {} messages of 4096 octets, the sink answers 451 to every 10th and 550 to \
             every 50th recipient",
            s.faults
        );
        let (m, p) = side_by_side(options, "faults", |kind| faults(options, kind, s.faults))?;
        report.add(Row {
            scenario: "faults (retries, bounces)".into(),
            unit: "msg/s",
            mswitch: m,
            postfix: Some(p),
            ratio: true,
            target: String::new(),
            met: None,
            notes: String::new(),
        });
    }
    if options.wants("backlog") {
        backlog(options, report, empty_queue_rate)?;
    }
    Ok(())
}

/// Waits until the sink has `count` messages and the MTA's queue is empty; polls every 10 ms.
fn drained(mta: &Mta, received: impl Fn() -> u64, count: u64, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if received() >= count && mta.queued()? == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "after {timeout:?} the sink has {} of {count} messages and {} are queued:\n{}",
                received(),
                mta.queued()?,
                mta.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Scenarios 1 and 2: messages per second from the first connection until the sink has them
/// all and the queue is empty.
fn relay(options: &Options, kind: Kind, size: usize, count: usize) -> Result<f64> {
    let setup = Setup {
        listen: free_port(),
        sink: free_port(),
        ..Setup::default()
    };
    let sink = SmtpSink::start(setup.sink)?;
    let mta = Mta::start(kind, &options.mswitchd, &setup)?;
    relay_through(&mta, &setup, &sink, size, count)
}

fn relay_through(
    mta: &Mta,
    setup: &Setup,
    sink: &SmtpSink,
    size: usize,
    count: usize,
) -> Result<f64> {
    let before = sink.received();
    let t = Instant::now();
    client::smtp_source(setup.listen, 20, count, size)?;
    drained(
        mta,
        || sink.received() - before,
        count as u64,
        Duration::from_secs(900),
    )?;
    Ok(count as f64 / t.elapsed().as_secs_f64())
}

/// Scenario 3: messages per second acknowledged, nothing delivered.
fn accept(options: &Options, kind: Kind, count: usize) -> Result<f64> {
    let setup = Setup {
        listen: free_port(),
        sink: free_port(),
        hold: true,
        ..Setup::default()
    };
    let mta = Mta::start(kind, &options.mswitchd, &setup)?;
    let elapsed = client::smtp_source(setup.listen, 20, count, 4096)?;
    // mswitchd's count is exact; Postfix's is a walk of its queue directories while its queue
    // manager moves files between them, good only for "empty or not".
    if kind == Kind::Mswitch {
        let queued = mta.queued()?;
        if queued != count {
            return Err(format!("{count} messages sent, {queued} queued"));
        }
    }
    Ok(count as f64 / elapsed)
}

/// Scenario 4: (p50, p99) in milliseconds.
fn latency(options: &Options, kind: Kind, count: usize) -> Result<(f64, f64)> {
    let setup = Setup {
        listen: free_port(),
        sink: free_port(),
        ..Setup::default()
    };
    let sink = RustSink::start(setup.sink, "rcpt@example.com", None)?;
    let mta = Mta::start(kind, &options.mswitchd, &setup)?;
    let acks = client::steady(setup.listen, count, 100.0, 4096)?;
    drained(
        &mta,
        || sink.messages.load(std::sync::atomic::Ordering::Acquire),
        count as u64,
        Duration::from_secs(120),
    )?;
    let seen = sink.seen.lock().map_err(|_| "sink lock poisoned")?;
    let mut ms = Vec::with_capacity(acks.len());
    for (id, acked) in &acks {
        let arrived = seen
            .arrivals
            .get(id)
            .ok_or_else(|| format!("{id} never reached the sink"))?;
        // Delivery can finish before the client has read its "250": count that as 0.
        ms.push(arrived.saturating_duration_since(*acked).as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    Ok((at(0.50), at(0.99)))
}

/// Scenario 5: memory per idle session, in bytes.
fn idle(options: &Options, kind: Kind, sessions: usize) -> Result<f64> {
    let setup = Setup {
        listen: free_port(),
        sink: free_port(),
        sessions,
        ..Setup::default()
    };
    let mta = Mta::start(kind, &options.mswitchd, &setup)?;
    std::thread::sleep(Duration::from_millis(500));
    let before = mta::memory(&mta.pids());
    let mut open = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        open.push(client::Session::open(setup.listen)?);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let pids = mta.pids();
    let after = mta::memory(&pids);
    let each = after.saturating_sub(before) as f64 / sessions as f64;
    println!(
        "  idle: {}: {} processes, {:.1} MiB before, {:.1} MiB with {sessions} sessions: {:.1} KiB each",
        kind.name(),
        pids.len(),
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        each / 1024.0
    );
    drop(open);
    Ok(each)
}

/// The retry-and-bounce scenario: messages per second until everything is delivered or bounced
/// (and the bounces delivered).
fn faults(options: &Options, kind: Kind, count: usize) -> Result<f64> {
    let setup = Setup {
        listen: free_port(),
        sink: free_port(),
        ..Setup::default()
    };
    let injected = Faults {
        soft_every: 10,
        hard_every: 50,
    };
    let sink = RustSink::start(setup.sink, "rcpt@example.com", Some(injected))?;
    let mta = Mta::start(kind, &options.mswitchd, &setup)?;
    let t = Instant::now();
    client::smtp_source(setup.listen, 20, count, 4096)?;
    use std::sync::atomic::Ordering::Acquire;
    // Every message arrives, or is refused for good and its bounce arrives instead.
    drained(
        &mta,
        || sink.messages.load(Acquire),
        count as u64,
        Duration::from_secs(900),
    )?;
    let rate = count as f64 / t.elapsed().as_secs_f64();
    let (messages, soft, hard) = (
        sink.messages.load(Acquire),
        sink.soft.load(Acquire),
        sink.hard.load(Acquire),
    );
    println!(
        "  faults: {}: {messages} messages at the sink ({} for the recipient, {hard} bounces), \
         {soft} refused with 451 and retried",
        kind.name(),
        messages - hard,
    );
    if messages != count as u64 {
        return Err(format!(
            "the sink has {messages} messages, expected {count} (deliveries and bounces)"
        ));
    }
    Ok(rate)
}

/// Scenario 6: a big queue of deferred messages: memory, start-up time, and the relay rate of
/// new mail beside it (mswitch only: the ratio is to its own empty-queue rate).
fn backlog(options: &Options, report: &mut Report, empty_rate: Option<f64>) -> Result<()> {
    let s = options.sizes;
    println!(
        "backlog: {} deferred messages in the queue; then {} new messages of 4096 octets relayed",
        s.backlog, s.backlog_relay
    );
    let work = TempDir::new("mswitch-bench-backlog");
    let queue = work.path().join("queue");
    let t = Instant::now();
    backlog::prepare(&queue, s.backlog, 512, 64)?;
    println!(
        "  backlog: {} messages queued with the queue library in {:.1} s",
        s.backlog,
        t.elapsed().as_secs_f64()
    );
    let empty_rate = match empty_rate {
        Some(r) => r,
        None => {
            println!("  backlog: measuring the empty-queue relay rate first");
            relay(options, Kind::Mswitch, 4096, s.backlog_relay)?
        }
    };
    let setup = Setup {
        listen: free_port(),
        sink: free_port(),
        queue: Some(queue),
        ..Setup::default()
    };
    let sink = SmtpSink::start(setup.sink)?;
    let mut mta = Mta::start(Kind::Mswitch, &options.mswitchd, &setup)?;
    let ready = mta
        .spawned()
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or(0.0);
    mta::wait_for_greeting(&mut mta, setup.listen, Duration::from_secs(1))?;
    let queued = mta.queued()?;
    if queued != s.backlog {
        return Err(format!(
            "{} deferred messages written, {queued} recovered",
            s.backlog
        ));
    }
    let resident = mta::memory(&mta.pids()) as f64;
    let rate = relay_through_backlog(&mta, &setup, &sink, s.backlog_relay, s.backlog)?;
    report.add(Row {
        scenario: format!("backlog {}: memory", s.backlog),
        unit: "MiB",
        mswitch: resident / 1048576.0,
        postfix: None,
        ratio: false,
        target: "≤ 1024 MiB".into(),
        met: Some(resident <= 1024.0 * 1048576.0),
        notes: format!("{:.0} bytes per message", resident / s.backlog as f64),
    });
    report.add(Row {
        scenario: format!("backlog {}: start to accepting", s.backlog),
        unit: "s",
        mswitch: ready,
        postfix: None,
        ratio: false,
        target: "≤ 5 s".into(),
        met: Some(ready <= 5.0),
        notes: String::new(),
    });
    report.add(Row {
        scenario: format!("backlog {}: relay", s.backlog),
        unit: "msg/s",
        mswitch: rate,
        postfix: None,
        ratio: false,
        target: "≥ 80% empty queue".into(),
        met: Some(rate >= 0.8 * empty_rate),
        notes: format!(
            "{:.0}% of {} msg/s with the queue empty",
            100.0 * rate / empty_rate,
            fmt(empty_rate)
        ),
    });
    Ok(())
}

/// As [`relay_through`], but "drained" means only the backlog is left.
fn relay_through_backlog(
    mta: &Mta,
    setup: &Setup,
    sink: &SmtpSink,
    count: usize,
    backlog: usize,
) -> Result<f64> {
    let t = Instant::now();
    client::smtp_source(setup.listen, 20, count, 4096)?;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        if sink.received() >= count as u64 && mta.queued()? <= backlog {
            return Ok(count as f64 / t.elapsed().as_secs_f64());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the sink has {} of {count} new messages after 900 s",
                sink.received()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
