//! Faults of the disk under a running mswitchd, in the smarthost topology with `smtp-sink`
//! behind it:
//!
//! - fsync failing (libfiu's `fiu-ctrl` on the running daemon): the message whose data could
//!   not be made durable never gets its 250; the daemon answers 4xx from then on, says why in
//!   its log and in `mswitch_queue_poisoned`, and works again after a restart.
//! - Disk full (the queue on a small tmpfs, filled by another file): 452 4.3.1 at MAIL FROM,
//!   452 4.3.1 after the data of a message that does not fit, and mail is accepted again by
//!   itself once space returns.
//! - A corrupted queue file: the damaged record is quarantined and reported, every other
//!   message is delivered, the damaged one never (not even in part).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mswitch_testkit::postfix::SmtpSink;
use mswitch_testkit::{Package, TempDir, files_under, free_port, is_root, require, wait_until};

use crate::common::Daemon;
use crate::loadkit::{Client, Reply, sink_messages, smarthost_config, tagged_message};

/// libfiu's tools: `fiu-run` (runs a program with the POSIX failure points) and `fiu-ctrl`.
const FIU: Package = Package {
    name: "fiu-utils",
    provides: "/usr/bin/fiu-run",
};

/// The smarthost configuration with a metrics endpoint on `metrics` and `edits`.
fn config_with_metrics(listen: u16, sink: u16, metrics: u16, edits: &[(&str, &str)]) -> String {
    format!(
        "{}\n\n[metrics]\naddress = \"127.0.0.1:{metrics}\"\n",
        smarthost_config(listen, sink, edits)
    )
}

/// `GET /metrics`: the value of the sample `name` (without labels).
fn metric(port: u16, name: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// One message tagged `tag` to the daemon on `port`, in a new session: the reply to the end of
/// data (or the refusal before it).
fn send_one(port: u16, tag: &str) -> Reply {
    let mut c = Client::connect(port).expect("connect to mswitchd");
    let (_, content, _) = tagged_message(tag);
    let r = c
        .send("<faults@example.org>", "<rcpt@example.com>", &content)
        .expect("an SMTP reply");
    let _ = c.command("QUIT");
    r
}

fn is_4xx(r: &Reply) -> bool {
    (400..500).contains(&r.code)
}

/// Whether a message with Message-ID `<tag@load.test>` reached `sink`.
fn arrived(sink: &SmtpSink, tag: &str) -> bool {
    let id = format!("<{tag}@load.test>");
    sink_messages(sink)
        .iter()
        .any(|m| m.header_values("Message-ID").concat() == id)
}

fn wait_arrived(sink: &SmtpSink, tags: &[String]) -> Vec<String> {
    wait_until(Duration::from_secs(30), || {
        tags.iter().all(|t| arrived(sink, t)).then_some(())
    });
    tags.iter().filter(|t| !arrived(sink, t)).cloned().collect()
}

// ---- fsync failure ----------------------------------------------------------------------------

fn fiu_ctrl(prefix: &Path, pid: u32, command: &str) {
    let out = Command::new("fiu-ctrl")
        .arg("-f")
        .arg(prefix)
        .args(["-c", command, &pid.to_string()])
        .output()
        .expect("run fiu-ctrl");
    assert!(
        out.status.success(),
        "fiu-ctrl -c {command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "needs libfiu (fiu-utils), installed as root; run by tests/reliability/run"]
fn fsync_failure_is_never_acknowledged_and_poisons_until_restart() {
    if !Path::new(FIU.provides).exists() && !is_root() {
        println!("SKIPPED fsync_failure: fiu-utils is missing (apt-get install fiu-utils as root)");
        return;
    }
    require(&[FIU, mswitch_testkit::POSTFIX]);
    let started = Instant::now();
    let (listen, sink_port, metrics) = (free_port(), free_port(), free_port());
    let sink = SmtpSink::start(sink_port, &[]);
    let control = TempDir::new("mswitch-fiu");
    let prefix = control.path().join("ctl");
    let prefix_arg = prefix.to_string_lossy().into_owned();
    let mut daemon = Daemon::start_wrapped(
        TempDir::new("mswitchd-fiu"),
        &config_with_metrics(listen, sink_port, metrics, &[]),
        &[listen],
        &["fiu-run", "-x", "-f", &prefix_arg],
    );
    let pid = daemon.pid().expect("running");
    // fiu-run's library makes its control FIFOs as the process starts.
    let fifo = PathBuf::from(format!("{prefix_arg}-{pid}.in"));
    assert!(
        wait_until(Duration::from_secs(10), || fifo.exists().then_some(())).is_some(),
        "fiu-run made no control FIFO {}",
        fifo.display()
    );

    let before: Vec<String> = (0..5).map(|i| format!("fsync-before-{i}")).collect();
    for t in &before {
        let r = send_one(listen, t);
        assert_eq!(r.code, 250, "{t}: {r:?}");
    }
    assert_eq!(metric(metrics, "mswitch_queue_poisoned"), Some(0.0));
    assert!(
        wait_arrived(&sink, &before).is_empty(),
        "delivered before the fault"
    );

    // The disk starts failing every fdatasync and fsync with EIO.
    for point in ["posix/io/sync/fdatasync", "posix/io/sync/fsync"] {
        fiu_ctrl(&prefix, pid, &format!("enable name={point},failinfo=5"));
    }
    let during = send_one(listen, "fsync-during");
    assert!(
        is_4xx(&during),
        "a message whose fdatasync failed must not get 250: {during:?}"
    );
    assert!(
        daemon.wait_for_log(&["queue poisoned"], 1, Duration::from_secs(5)),
        "the log should say the queue is poisoned:\n{}",
        daemon.log()
    );
    // The fault goes away; the queue still refuses: what was written is not known durable.
    for point in ["posix/io/sync/fdatasync", "posix/io/sync/fsync"] {
        fiu_ctrl(&prefix, pid, &format!("disable name={point}"));
    }
    let mut c = Client::connect(listen).expect("connect");
    let mail = c
        .command("MAIL FROM:<faults@example.org>")
        .expect("a reply");
    assert_eq!(
        (mail.code, mail.text.contains("4.3.0")),
        (451, true),
        "MAIL FROM while poisoned: {mail:?}"
    );
    drop(c);
    let after_fault = send_one(listen, "fsync-after-fault");
    assert!(is_4xx(&after_fault), "still poisoned: {after_fault:?}");
    assert_eq!(
        metric(metrics, "mswitch_queue_poisoned"),
        Some(1.0),
        "the metrics should show the poisoned queue"
    );
    let log = daemon.log();
    let poisoned_line = log
        .lines()
        .find(|l| l.contains("queue poisoned"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        poisoned_line.contains("fdatasync") || poisoned_line.contains("sync failed"),
        "the log line should name the failed sync: {poisoned_line}"
    );

    // A restart (without the fault) brings it back.
    let stopped_cleanly = daemon.terminate();
    daemon.set_wrapper(&[]);
    daemon.restart();
    assert_eq!(metric(metrics, "mswitch_queue_poisoned"), Some(0.0));
    let restarted = send_one(listen, "fsync-after-restart");
    assert_eq!(restarted.code, 250, "after the restart: {restarted:?}");
    let missing = wait_arrived(&sink, &["fsync-after-restart".to_owned()]);
    assert!(missing.is_empty(), "the message after the restart arrives");
    // What was refused may still arrive (it was written, just not known durable): a duplicate
    // for a client that retries, never a loss.
    std::thread::sleep(Duration::from_secs(2));
    let refused_arrived = ["fsync-during", "fsync-after-fault"]
        .iter()
        .filter(|t| arrived(&sink, t))
        .count();
    println!(
        "fsync failure in {:.1} s: 5 acknowledged before and delivered; the message during the \
         fault got {} {:?}; MAIL FROM while poisoned got 451 4.3.0; after the fault cleared: {} \
         ; stopped cleanly on SIGTERM while poisoned: {stopped_cleanly}; after the restart 250 \
         and delivered; refused messages that arrived anyway: {refused_arrived} of 2; log: {}",
        started.elapsed().as_secs_f64(),
        during.code,
        during.text,
        after_fault.code,
        poisoned_line.trim()
    );
    assert!(!daemon.log().contains("panicked"), "{}", daemon.log());
}

// ---- disk full ------------------------------------------------------------------------------

/// A tmpfs of `megabytes`, mounted; unmounted on drop.
struct Tmpfs {
    mount_point: PathBuf,
    _dir: TempDir,
}

impl Tmpfs {
    fn new(megabytes: u64) -> Tmpfs {
        let dir = TempDir::new("mswitch-tmpfs");
        let mount_point = dir.path().join("mnt");
        std::fs::create_dir_all(&mount_point).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&mount_point)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed");
        Tmpfs {
            mount_point,
            _dir: dir,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount_point).status();
    }
}

/// Fills the file system of `dir` with the file `filler` until a write fails (a real ENOSPC),
/// then gives back `leave` octets.
fn fill(filler: &Path, leave: u64) {
    let mut f = std::fs::File::create(filler).expect("create the filler");
    let chunk = vec![0x55u8; 64 << 10];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC: {e}");
                break;
            }
        }
    }
    f.set_len(written.saturating_sub(leave))
        .expect("shrink the filler");
    f.sync_all().expect("sync the filler");
}

/// Content of about `octets`, tagged.
fn big_message(tag: &str, octets: usize) -> Vec<String> {
    let mut content = vec![
        "From: <faults@example.org>".to_owned(),
        format!("Subject: {tag}"),
        format!("Message-ID: <{tag}@load.test>"),
        String::new(),
    ];
    content.extend((0..octets / 78).map(|i| format!("{i:08} {}", "x".repeat(68))));
    content
}

#[test]
#[ignore = "needs root (mounts a tmpfs); run by tests/reliability/run"]
fn disk_full_refuses_with_452_and_recovers_by_itself() {
    if !is_root() {
        println!("SKIPPED disk_full: it needs root to mount a tmpfs");
        return;
    }
    require(&[mswitch_testkit::POSTFIX]);
    const RESERVE: u64 = 1 << 20;
    let tmpfs = Tmpfs::new(16);
    let queue = tmpfs.mount_point.join("queue");
    let queue_line = format!("path = \"{}\"", queue.display());
    let (listen, sink_port, metrics) = (free_port(), free_port(), free_port());
    let sink = SmtpSink::start(sink_port, &[]);
    let mut daemon = Daemon::start(
        &config_with_metrics(
            listen,
            sink_port,
            metrics,
            &[
                ("path = \"queue\"", &queue_line),
                (
                    "reserve_bytes = 104857600",
                    &format!("reserve_bytes = {RESERVE}"),
                ),
            ],
        ),
        &[listen],
    );
    let r = send_one(listen, "full-before");
    assert_eq!(r.code, 250, "with space: {r:?}");
    assert!(wait_arrived(&sink, &["full-before".to_owned()]).is_empty());
    // Let the delivery's outcome and removal be synced before the disk fills.
    std::thread::sleep(Duration::from_millis(500));
    let filler = tmpfs.mount_point.join("filler");

    // (1) Full, really: every octet taken (the filler hit ENOSPC). 452 at MAIL FROM.
    fill(&filler, 0);
    let mut c = Client::connect(listen).expect("connect");
    let full = c.command("MAIL FROM:<faults@example.org>").expect("reply");
    assert_eq!(full.code, 452, "MAIL FROM on a full disk: {full:?}");
    assert!(full.text.contains("4.3.1"), "{full:?}");
    drop(c);

    // (2) Free space below the reserve: 452 4.3.1 at MAIL FROM, before any data is sent.
    fill(&filler, RESERVE / 2);
    let mut c = Client::connect(listen).expect("connect");
    let low = c.command("MAIL FROM:<faults@example.org>").expect("reply");
    assert_eq!(low.code, 452, "MAIL FROM below the reserve: {low:?}");
    drop(c);

    // (3) Room for the reserve but not for this message: MAIL FROM passes (no SIZE given), the
    //     message is refused after its data, with a 4xx.
    fill(&filler, RESERVE + (256 << 10));
    let mut c = Client::connect(listen).expect("connect");
    let content = big_message("full-too-big", 600 << 10);
    let during = c
        .send("<faults@example.org>", "<rcpt@example.com>", &content)
        .expect("a reply");
    assert_eq!(
        during.code, 452,
        "after DATA of a message that does not fit: {during:?}"
    );
    assert!(during.text.contains("4.3.1"), "{during:?}");
    // The same with SIZE declared: refused at MAIL FROM.
    let sized = c
        .command("MAIL FROM:<faults@example.org> SIZE=614400")
        .expect("reply");
    assert_eq!(sized.code, 452, "MAIL FROM SIZE=614400: {sized:?}");
    drop(c);
    let log = daemon.log();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Insufficient system storage"))
        .collect();
    assert!(
        refusals.len() >= 3,
        "each refusal should be logged with its reason:\n{log}"
    );
    let shortage = log
        .lines()
        .find(|l| l.contains("below its free-space reserve"))
        .unwrap_or_else(|| panic!("the shortage should be logged with the figures:\n{log}"))
        .to_owned();

    // (4) Space comes back: accepted again without any restart or command.
    std::fs::remove_file(&filler).expect("remove the filler");
    let back = wait_until(Duration::from_secs(5), || {
        let r = send_one(listen, "full-after");
        (r.code == 250).then_some(r)
    });
    assert!(
        back.is_some(),
        "mail should be accepted again once space returns"
    );
    assert!(wait_arrived(&sink, &["full-after".to_owned()]).is_empty());
    assert!(
        !arrived(&sink, "full-too-big"),
        "the refused message was not delivered"
    );
    assert_eq!(metric(metrics, "mswitch_queue_poisoned"), Some(0.0));
    let log = daemon.log();
    assert!(
        log.contains("queue file system has space again"),
        "the end of the shortage should be logged:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    println!(
        "disk full: MAIL FROM on a full disk {} {:?}; below the reserve {} {:?}; after the data \
         of a message that does not fit {} {:?}; SIZE too large {}; accepted again once space \
         returned; logged: {} / {:?}",
        full.code,
        full.text,
        low.code,
        low.text,
        during.code,
        during.text,
        sized.code,
        shortage.trim(),
        refusals.first()
    );
    assert!(daemon.terminate(), "stops cleanly");
}

// ---- a corrupted queue file -------------------------------------------------------------------

#[test]
fn corrupt_queue_record_is_quarantined_and_the_rest_delivered() {
    const COUNT: usize = 10;
    const DAMAGED: usize = 4;
    let (listen, sink_port) = (free_port(), free_port());
    // No sink yet: the messages stay queued.
    let mut daemon = Daemon::start(&smarthost_config(listen, sink_port, &[]), &[listen]);
    let tags: Vec<String> = (0..COUNT).map(|i| format!("corrupt-{i}")).collect();
    for t in &tags {
        let r = send_one(listen, t);
        assert_eq!(r.code, 250, "{t}: {r:?}");
    }
    assert!(daemon.terminate(), "stops cleanly");

    // Flip one octet in the middle of message DAMAGED's body, on disk.
    let queue = daemon.dir().join("queue");
    let needle = format!("{} 003", tags[DAMAGED]);
    let mut flipped = None;
    for seg in files_under(&queue)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
    {
        let mut bytes = std::fs::read(&seg).expect("read the segment");
        if let Some(at) = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
        {
            bytes[at + needle.len() - 1] ^= 0x20;
            std::fs::write(&seg, &bytes).expect("write the segment back");
            flipped = Some((seg, at));
            break;
        }
    }
    let (segment, offset) = flipped.expect("the damaged message's body is in a segment");

    let sink = SmtpSink::start(sink_port, &[]);
    daemon.restart();
    let others: Vec<String> = tags
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != DAMAGED)
        .map(|(_, t)| t.clone())
        .collect();
    let missing = wait_arrived(&sink, &others);
    let log = daemon.log();
    assert!(missing.is_empty(), "not delivered: {missing:?}\n{log}");
    let report = log
        .lines()
        .find(|l| l.contains("quarantined damaged data"))
        .unwrap_or_else(|| panic!("the damage should be reported:\n{log}"))
        .to_owned();
    let quarantined = files_under(&queue.join("quarantine"));
    assert_eq!(
        quarantined.len(),
        1,
        "one record quarantined: {quarantined:?}"
    );
    let kept = std::fs::read(&quarantined[0]).expect("read the quarantined record");
    assert!(
        kept.windows(tags[DAMAGED].len())
            .any(|w| w == tags[DAMAGED].as_bytes()),
        "the quarantined bytes are the damaged message's"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !arrived(&sink, &tags[DAMAGED]),
        "the damaged message must not be delivered, not even in part"
    );
    assert_eq!(
        sink_messages(&sink).len(),
        COUNT - 1,
        "each other message once"
    );
    assert!(!log.contains("panicked"), "{log}");
    println!(
        "corrupt record: octet flipped in {} at {offset}; {} of {} other messages delivered; \
         quarantined as {}; reported: {}",
        segment.display(),
        COUNT - 1 - missing.len(),
        COUNT - 1,
        quarantined[0].display(),
        report.trim()
    );
    assert!(daemon.terminate(), "stops cleanly");
}
