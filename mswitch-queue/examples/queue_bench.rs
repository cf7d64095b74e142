//! Benchmark of the durable queue: enqueue throughput against two baselines measured in the
//! same run, and recovery time and index memory for a large queue. It prints figures side by
//! side and asserts nothing.
//!
//! ```text
//! cargo run --release -p mswitch-queue --example queue_bench -- \
//!     [--dir DIR] [--seconds N] [--quick] [--skip-recovery] [--keep]
//! ```
//!
//! Files go in a fresh directory under `--dir` (default `/work/queue-bench-tmp`), which must be
//! on a real disk: on tmpfs every fsync is free and the figures mean nothing. The fresh directory
//! is removed at the end.
//!
//! **Part 1, durable enqueue throughput.** 4096-octet messages, for 1, 8 and 64 concurrent
//! writers (OS threads), each method measured in turn for `--seconds` (default 5):
//!
//! - (a) the queue: a `DiskQueue` with a reserve of 0 and the default segment size; each writer
//!   loops on `block_on(queue.enqueue(..))`, which resolves after the fdatasync covering its
//!   record;
//! - (b) file per message, as classic MTAs spool: each writer writes the message to a temporary
//!   file, fsyncs it, renames it into the spool directory and fsyncs that directory;
//! - (c) the physical limit: one thread appends the same bytes to one file, one `write` and one
//!   `fdatasync` per batch of N messages for N writers; no records, no index, no hand-off.
//!
//! Two sync counts are shown beside the rates:
//!
//! - the queue's fdatasyncs per message, from `DiskQueue::stats()` (one per batch);
//! - the flush requests completed by the block device behind `--dir` during each run (field 16
//!   of `/sys/dev/block/<major>:<minor>/stat`), per message. It is an upper bound: other
//!   processes flush too, and the file system may send more than one flush per fdatasync. The
//!   bare loop, whose fdatasyncs are known, shows that ratio.
//!
//! Files are removed, and the removal synced, between measurements.
//!
//! **Part 2, recovery** (not with `--skip-recovery`). 1,000,000 messages (100,000 with
//! `--quick`) of 200 octets with one recipient are enqueued from 64 threads and the queue is
//! closed. Then `DiskQueue::open` + `recover()` is timed twice, each time in a fresh process
//! (this program run again with the hidden first argument `--recovery-child DIR`), so that the
//! heap starts empty as in a restarted daemon: first with the segments dropped from the page
//! cache (`posix_fadvise(DONTNEED)`; on a virtual machine the host may still cache them), then
//! with them in it. The child's CPU time and page faults are shown beside the elapsed time.
//!
//! A counting global allocator gives the live heap octets before the open, after it while the
//! `Recovered` value is held, and after that value is dropped (the recovered envelopes belong
//! to the caller, the QMGR): what then remains is the open queue's index. The allocator (module
//! `counting`, the only `unsafe` code here) counts requested sizes, including unused `Vec`
//! capacity, but not the system allocator's own per-block overhead.

use std::ffi::OsString;
use std::fmt::Display;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::executor::block_on;
use mswitch_core::store::QueueStore;
use mswitch_core::{Address, Envelope, Recipient, ReversePath, Timestamp};
use mswitch_queue::{DiskQueue, QueueConfig};

/// Counts live heap octets, for the memory figures of part 2.
#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// A global allocator that forwards to the system allocator and counts the octets live.
mod counting {
    // Implementing `GlobalAlloc` takes `unsafe`; it is allowed in this module only.
    #![allow(unsafe_code)]

    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static LIVE: AtomicUsize = AtomicUsize::new(0);

    /// [`System`], counting.
    pub(crate) struct Counting;

    impl Counting {
        /// Heap octets allocated and not yet freed, as requested (without the system
        /// allocator's overhead).
        pub(crate) fn allocated(&self) -> usize {
            LIVE.load(Ordering::SeqCst)
        }
    }

    // SAFETY: every method passes its arguments unchanged to `System` and returns what it
    // returned, so `System`'s implementation of the contract holds; the counting only reads
    // `layout.size()` and the new size, and touches no allocated memory.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: the caller meets `GlobalAlloc::alloc`'s requirements (non-zero size),
            // which are `System::alloc`'s.
            let ptr = unsafe { System.alloc(layout) };
            if !ptr.is_null() {
                LIVE.fetch_add(layout.size(), Ordering::Relaxed);
            }
            ptr
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as for `alloc`.
            let ptr = unsafe { System.alloc_zeroed(layout) };
            if !ptr.is_null() {
                LIVE.fetch_add(layout.size(), Ordering::Relaxed);
            }
            ptr
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller guarantees `ptr` came from this allocator, that is from
            // `System`, with this `layout`.
            unsafe { System.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller guarantees `ptr` came from `System` with `layout`, and that
            // `new_size` is non-zero and does not overflow when rounded to `layout.align()`.
            let new = unsafe { System.realloc(ptr, layout, new_size) };
            if !new.is_null() {
                // Add first, so the counter never dips below zero.
                LIVE.fetch_add(new_size, Ordering::Relaxed);
                LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            }
            new
        }
    }
}

const USAGE: &str =
    "usage: queue_bench [--dir DIR] [--seconds N] [--quick] [--skip-recovery] [--keep]";
const DEFAULT_BASE_DIR: &str = "/work/queue-bench-tmp";
const WRITER_COUNTS: [usize; 3] = [1, 8, 64];
const MESSAGE_SIZE: usize = 4096;
const RECOVERY_MESSAGES: u64 = 1_000_000;
const RECOVERY_MESSAGES_QUICK: u64 = 100_000;
const RECOVERY_CONTENT_SIZE: usize = 200;
const RECOVERY_WRITERS: usize = 64;
/// Hidden first argument: run one recovery (part 2) in this fresh process and print figures.
const RECOVERY_CHILD: &str = "--recovery-child";

type Result<T> = std::result::Result<T, String>;

/// Adds what was being done to an error.
trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| format!("{}: {e}", what()))
    }
}

struct Options {
    base_dir: PathBuf,
    duration: Duration,
    recovery_messages: u64,
    skip_recovery: bool,
    keep: bool,
}

fn parse_args() -> Result<Options> {
    let mut base_dir = PathBuf::from(DEFAULT_BASE_DIR);
    let mut seconds = None;
    let mut quick = false;
    let mut skip_recovery = false;
    let mut keep = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_string_lossy().as_ref() {
            "--dir" => base_dir = args.next().ok_or("--dir needs a directory")?.into(),
            "--seconds" => {
                let value = args.next().ok_or("--seconds needs a number")?;
                let value = value.to_string_lossy();
                let s: f64 = value.parse().context(|| format!("--seconds {value}"))?;
                if !(s.is_finite() && s > 0.0) {
                    return Err(format!("--seconds {value}: must be more than 0"));
                }
                seconds = Some(s);
            }
            "--quick" => quick = true,
            "--skip-recovery" => skip_recovery = true,
            "--keep" => keep = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    let default_seconds = if quick { 1.0 } else { 5.0 };
    Ok(Options {
        base_dir,
        duration: Duration::from_secs_f64(seconds.unwrap_or(default_seconds)),
        recovery_messages: if quick {
            RECOVERY_MESSAGES_QUICK
        } else {
            RECOVERY_MESSAGES
        },
        skip_recovery,
        keep,
    })
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if let [_, mode, dir] = args.as_slice()
        && mode == RECOVERY_CHILD
    {
        if let Err(e) = recovery_child(Path::new(dir)) {
            eprintln!("queue_bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("queue_bench: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let run_dir = options
        .base_dir
        .join(format!("run-{stamp}-{}", std::process::id()));
    let result = fs::create_dir_all(&run_dir)
        .context(|| format!("cannot create {}", run_dir.display()))
        .and_then(|()| run(&options, &run_dir));
    let cleanup = if options.keep {
        println!("kept {}", run_dir.display());
        Ok(())
    } else {
        fs::remove_dir_all(&run_dir)
    };
    if let Err(e) = result {
        eprintln!("queue_bench: {e}");
        std::process::exit(1);
    }
    if let Err(e) = cleanup {
        eprintln!("queue_bench: cannot remove {}: {e}", run_dir.display());
    }
    println!();
    println!(
        "These are single-run figures on a shared machine (other work may be running); \
         compare the columns of one run with each other, not with other runs."
    );
}

fn run(options: &Options, run_dir: &Path) -> Result<()> {
    let disk = Disk::behind(run_dir)?;
    print_header(options, run_dir, &disk);
    part1(run_dir, options.duration, &disk)?;
    if !options.skip_recovery {
        part2(run_dir, options.recovery_messages)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Machine facts

/// The file system and block device behind the benchmark directory.
struct Disk {
    fs_type: Option<String>,
    mount_point: Option<PathBuf>,
    /// `/sys/dev/block/<major>:<minor>`, if the file system sits on a block device.
    sys: Option<PathBuf>,
}

impl Disk {
    fn behind(dir: &Path) -> Result<Disk> {
        let dir = fs::canonicalize(dir).context(|| format!("cannot resolve {}", dir.display()))?;
        let dev = fs::metadata(&dir)
            .context(|| format!("cannot stat {}", dir.display()))?
            .dev();
        let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0fff);
        let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x00ff);
        let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
        let (mount_point, fs_type) = mount_of(&dir).unzip();
        Ok(Disk {
            fs_type,
            mount_point,
            sys: sys.exists().then_some(sys),
        })
    }

    fn device_name(&self) -> Option<String> {
        let uevent = fs::read_to_string(self.sys.as_ref()?.join("uevent")).ok()?;
        uevent
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .map(str::to_owned)
    }

    /// The device's write cache mode (`write back` means flushes reach the device).
    fn write_cache(&self) -> Option<String> {
        let sys = self.sys.as_ref()?;
        // A partition has no queue of its own; its disk's is one level up.
        [
            sys.join("queue/write_cache"),
            sys.join("../queue/write_cache"),
        ]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
    }

    /// Flush requests the device has completed (field 16 of its `stat`), where the kernel
    /// reports them.
    fn flushes(&self) -> Option<u64> {
        let stat = fs::read_to_string(self.sys.as_ref()?.join("stat")).ok()?;
        stat.split_whitespace().nth(15)?.parse().ok()
    }
}

/// The mount point and file-system type that `dir` (canonical) lives on, from `/proc/mounts`.
fn mount_of(dir: &Path) -> Option<(PathBuf, String)> {
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    let mut best: Option<(PathBuf, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(_source), Some(target), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let target = PathBuf::from(unescape_mount_path(target));
        let longer = best
            .as_ref()
            .is_none_or(|(b, _)| target.as_os_str().len() >= b.as_os_str().len());
        // Of equally long matches the later mount is the one on top.
        if dir.starts_with(&target) && longer {
            best = Some((target, fs_type.to_owned()));
        }
    }
    best
}

/// `/proc/mounts` writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mem_total() -> Option<String> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)))
}

fn print_header(options: &Options, run_dir: &Path, disk: &Disk) {
    let na = || "n/a".to_owned();
    println!("mswitch-queue benchmark");
    println!(
        "  cpus: {}   memory: {}   kernel: {}",
        thread::available_parallelism().map_or_else(|_| na(), |n| n.to_string()),
        mem_total().unwrap_or_else(na),
        fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| na(), |s| s.trim().into()),
    );
    println!(
        "  directory: {} ({} mounted on {}, device {}, write cache: {})",
        run_dir.display(),
        disk.fs_type.clone().unwrap_or_else(na),
        disk.mount_point
            .as_ref()
            .map_or_else(na, |p| p.display().to_string()),
        disk.device_name().unwrap_or_else(na),
        disk.write_cache().unwrap_or_else(na),
    );
    if matches!(disk.fs_type.as_deref(), Some("tmpfs" | "ramfs")) {
        println!("  WARNING: this directory is in memory; fsync costs nothing here");
    }
    println!(
        "  {:.1} s per measurement; recovery: {}",
        options.duration.as_secs_f64(),
        if options.skip_recovery {
            "skipped".to_owned()
        } else {
            format!("{} messages", group(options.recovery_messages as f64))
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Part 1

/// One throughput measurement.
struct Throughput {
    messages: u64,
    elapsed: Duration,
    /// fdatasync calls, where known.
    fdatasyncs: Option<u64>,
    /// Device flush requests completed during the run, where the kernel reports them.
    device_flushes: Option<u64>,
}

impl Throughput {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    fn per_message(&self, count: Option<u64>) -> Option<f64> {
        count
            .filter(|_| self.messages > 0)
            .map(|c| c as f64 / self.messages as f64)
    }
}

struct Row {
    writers: usize,
    queue: Throughput,
    file: Throughput,
    bare: Throughput,
}

fn part1(run_dir: &Path, duration: Duration, disk: &Disk) -> Result<()> {
    println!();
    println!(
        "Part 1: durable enqueue, {MESSAGE_SIZE}-octet messages, {:.1} s per measurement",
        duration.as_secs_f64()
    );
    let mut rows = Vec::new();
    for writers in WRITER_COUNTS {
        let dir = run_dir.join(format!("queue-{writers}"));
        let queue = measure_queue(&dir, writers, duration, disk)?;
        remove_synced(&dir)?;
        let dir = run_dir.join(format!("spool-{writers}"));
        let file = measure_file_per_message(&dir, writers, duration, disk)?;
        remove_synced(&dir)?;
        let dir = run_dir.join(format!("bare-{writers}"));
        let bare = measure_bare_loop(&dir, writers, duration, disk)?;
        remove_synced(&dir)?;
        println!(
            "  {writers:>2} writer{}: queue {} msg/s, file per message {} msg/s, bare loop {} msg/s",
            if writers == 1 { "" } else { "s" },
            group(queue.rate()),
            group(file.rate()),
            group(bare.rate())
        );
        rows.push(Row {
            writers,
            queue,
            file,
            bare,
        });
    }
    print_part1(&rows);
    Ok(())
}

fn print_part1(rows: &[Row]) {
    let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
    println!();
    println!("  messages per second:");
    println!(
        "  {:>7}  {:>10}  {:>12}  {:>10}  {:>10}  {:>10}  {:>10}",
        "writers", "(a) queue", "(b) file/msg", "(c) bare", "queue/file", "bare/file", "queue/bare"
    );
    for r in rows {
        println!(
            "  {:>7}  {:>10}  {:>12}  {:>10}  {:>9.1}x  {:>9.1}x  {:>9.0}%",
            r.writers,
            group(r.queue.rate()),
            group(r.file.rate()),
            group(r.bare.rate()),
            r.queue.rate() / r.file.rate(),
            r.bare.rate() / r.file.rate(),
            100.0 * r.queue.rate() / r.bare.rate(),
        );
    }
    println!(
        "  (bare/file is the ceiling of queue/file in this run: with one message outstanding per \
         writer, no queue can put more than N messages in one fdatasync)"
    );
    println!();
    println!("  syncs:");
    println!(
        "  {:>7}  {:>16}  {:>32}  {:>14}",
        "writers", "queue fdatasync", "device flushes/msg (upper bound)", "bare loop dev."
    );
    println!(
        "  {:>7}  {:>16}  {:>10}  {:>10}  {:>10}  {:>14}",
        "", "per msg", "queue", "file/msg", "bare", "flushes/fsync"
    );
    for r in rows {
        let bare_flushes_per_sync = match (r.bare.device_flushes, r.bare.fdatasyncs) {
            (Some(f), Some(s)) if s > 0 => Some(f as f64 / s as f64),
            _ => None,
        };
        println!(
            "  {:>7}  {:>16}  {:>10}  {:>10}  {:>10}  {:>14}",
            r.writers,
            fmt(r.queue.per_message(r.queue.fdatasyncs)),
            fmt(r.queue.per_message(r.queue.device_flushes)),
            fmt(r.file.per_message(r.file.device_flushes)),
            fmt(r.bare.per_message(r.bare.device_flushes)),
            fmt(bare_flushes_per_sync),
        );
    }
    println!(
        "  (queue fdatasyncs from DiskQueue::stats(), one per batch; device flushes include \
         other processes')"
    );
    let ratio = |writers: usize, f: fn(&Row) -> f64| {
        rows.iter()
            .find(|r| r.writers == writers)
            .map_or_else(|| "n/a".to_owned(), |r| format!("{:.1}", f(r)))
    };
    println!();
    println!("  targets (shown, not checked):");
    println!(
        "    queue / file per message >= 20 at 64 writers: {}x;  >= 5 at 8 writers: {}x",
        ratio(64, |r| r.queue.rate() / r.file.rate()),
        ratio(8, |r| r.queue.rate() / r.file.rate()),
    );
    println!(
        "    queue >= 50% of the bare loop at 64 writers: {}%",
        ratio(64, |r| 100.0 * r.queue.rate() / r.bare.rate()),
    );
}

/// A message like one an MTA queues: an envelope with one recipient and `size` octets of
/// content.
fn message(size: usize) -> (Envelope, Vec<u8>) {
    let sender = Address::parse("sender@example.org").expect("constant address parses");
    let recipient = Address::parse("recipient@example.com").expect("constant address parses");
    let mut envelope = Envelope::new(ReversePath::Address(sender), Timestamp(1_700_000_000));
    envelope.recipients = vec![Recipient::new(recipient)];
    let mut content = b"Subject: queue benchmark\r\n\r\n".to_vec();
    let mut x: u32 = 0x2545_f491;
    while content.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        content.push(if content.len() % 78 == 77 {
            b'\n'
        } else {
            b'a' + (x % 26) as u8
        });
    }
    content.truncate(size);
    envelope.size = content.len() as u64;
    (envelope, content)
}

/// (a) The queue, `writers` threads enqueuing.
fn measure_queue(
    dir: &Path,
    writers: usize,
    duration: Duration,
    disk: &Disk,
) -> Result<Throughput> {
    let mut config = QueueConfig::new(dir);
    config.reserve = 0;
    let queue =
        DiskQueue::open(config).context(|| format!("cannot open a queue in {}", dir.display()))?;
    let (envelope, content) = message(MESSAGE_SIZE);
    block_on(queue.enqueue(&envelope, &content)).context(|| "enqueue failed".to_owned())?;
    let syncs_before = queue.stats().syncs;
    let flushes_before = disk.flushes();
    let (messages, elapsed) = run_writers(writers, duration, |_| {
        let (queue, envelope, content) = (&queue, &envelope, &content);
        move || {
            block_on(queue.enqueue(envelope, content))
                .map(drop)
                .context(|| "enqueue failed".to_owned())
        }
    })?;
    let flushes_after = disk.flushes();
    let syncs_after = queue.stats().syncs;
    queue.close();
    Ok(Throughput {
        messages,
        elapsed,
        fdatasyncs: Some(syncs_after - syncs_before),
        device_flushes: flushes_before.zip(flushes_after).map(|(b, a)| a - b),
    })
}

/// (b) One file per message: write a temporary file, fsync, rename into the spool, fsync the
/// spool directory.
fn measure_file_per_message(
    dir: &Path,
    writers: usize,
    duration: Duration,
    disk: &Disk,
) -> Result<Throughput> {
    let tmp = dir.join("tmp");
    let spool = dir.join("spool");
    for d in [&tmp, &spool] {
        fs::create_dir_all(d).context(|| format!("cannot create {}", d.display()))?;
    }
    sync_dir(dir)?;
    let (_, content) = message(MESSAGE_SIZE);
    let flushes_before = disk.flushes();
    let (messages, elapsed) = run_writers(writers, duration, |writer| {
        let (tmp, spool, content) = (&tmp, &spool, &content);
        let mut n = 0u64;
        move || {
            n += 1;
            let name = format!("{writer}-{n}");
            let (from, to) = (tmp.join(&name), spool.join(&name));
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&from)
                .context(|| format!("cannot create {}", from.display()))?;
            file.write_all(content)
                .context(|| format!("cannot write {}", from.display()))?;
            file.sync_all()
                .context(|| format!("cannot fsync {}", from.display()))?;
            drop(file);
            fs::rename(&from, &to).context(|| format!("cannot rename {}", from.display()))?;
            sync_dir(spool)
        }
    })?;
    let flushes_after = disk.flushes();
    Ok(Throughput {
        messages,
        elapsed,
        fdatasyncs: None,
        device_flushes: flushes_before.zip(flushes_after).map(|(b, a)| a - b),
    })
}

/// (c) One thread appending `writers` messages per write and per fdatasync.
fn measure_bare_loop(
    dir: &Path,
    writers: usize,
    duration: Duration,
    disk: &Disk,
) -> Result<Throughput> {
    fs::create_dir_all(dir).context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("log");
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .context(|| format!("cannot create {}", path.display()))?;
    sync_dir(dir)?;
    let (_, content) = message(MESSAGE_SIZE);
    let batch = content.repeat(writers);
    let flushes_before = disk.flushes();
    let start = Instant::now();
    let mut syncs = 0u64;
    while start.elapsed() < duration {
        file.write_all(&batch)
            .context(|| format!("cannot write {}", path.display()))?;
        file.sync_data()
            .context(|| format!("cannot fdatasync {}", path.display()))?;
        syncs += 1;
    }
    let elapsed = start.elapsed();
    let flushes_after = disk.flushes();
    Ok(Throughput {
        messages: syncs * writers as u64,
        elapsed,
        fdatasyncs: Some(syncs),
        device_flushes: flushes_before.zip(flushes_after).map(|(b, a)| a - b),
    })
}

/// Runs `writers` threads, each calling its operation (made by `make_op` from the thread's
/// number) until `duration` has passed. Returns the operations completed and the time from the
/// common start until every thread has finished its last one.
fn run_writers<F>(
    writers: usize,
    duration: Duration,
    make_op: impl Fn(usize) -> F,
) -> Result<(u64, Duration)>
where
    F: FnMut() -> Result<()> + Send,
{
    let stop = AtomicBool::new(false);
    let start_line = Barrier::new(writers + 1);
    thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|i| {
                let mut op = make_op(i);
                let (stop, start_line) = (&stop, &start_line);
                s.spawn(move || {
                    start_line.wait();
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if let Err(e) = op() {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let left = duration.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(20)));
        }
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for h in handles {
            total += h
                .join()
                .map_err(|_| "a writer thread panicked".to_owned())??;
        }
        Ok((total, start.elapsed()))
    })
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("cannot fsync directory {}", dir.display()))
}

/// Removes `dir` and syncs its parent, so the next measurement does not pay for the removal.
fn remove_synced(dir: &Path) -> Result<()> {
    fs::remove_dir_all(dir).context(|| format!("cannot remove {}", dir.display()))?;
    dir.parent().map_or(Ok(()), sync_dir)
}

// ---------------------------------------------------------------------------------------------
// Part 2

fn part2(run_dir: &Path, total: u64) -> Result<()> {
    println!();
    println!(
        "Part 2: recovery of {} queued messages ({RECOVERY_CONTENT_SIZE}-octet content, one \
         recipient)",
        group(total as f64)
    );
    let dir = run_dir.join("recovery");
    let elapsed = fill_queue(&recovery_config(&dir), total)?;
    println!(
        "  enqueued from {RECOVERY_WRITERS} threads in {:.1} s ({} msg/s)",
        elapsed.as_secs_f64(),
        group(total as f64 / elapsed.as_secs_f64())
    );
    let (segments, octets) = segment_files(&dir)?;
    println!(
        "  on disk: {:.1} MiB in {} segment file{} ({:.0} octets/msg)",
        octets as f64 / f64::from(1 << 20),
        segments.len(),
        if segments.len() == 1 { "" } else { "s" },
        octets as f64 / total as f64
    );

    // As after a reboot: the segments are dropped from the page cache first.
    for path in &segments {
        let file = File::open(path).context(|| format!("cannot open {}", path.display()))?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
            .context(|| format!("cannot drop {} from the page cache", path.display()))?;
    }
    let cold = recover_in_child(&dir)?;
    // The first child read them back into the page cache.
    let warm = recover_in_child(&dir)?;
    for r in [&cold, &warm] {
        if r.found != total || r.live != total || r.quarantined != 0 {
            println!(
                "  NOTE: recovered {} messages, index holds {}, quarantined {}; expected {total}, \
                 {total}, 0",
                r.found, r.live, r.quarantined
            );
        }
    }
    let per_msg = |octets: u64| octets as f64 / total as f64;
    println!("  open + recover, each in a fresh process:");
    println!(
        "    segments not in the page cache: {}   (target <= 3 s)",
        cold.times()
    );
    println!("    segments in the page cache:     {}", warm.times());
    println!(
        "  recovered envelopes held by caller: {:.0} bytes/msg",
        per_msg(cold.held)
    );
    println!(
        "  queue index: {:.0} bytes/msg   (target <= 300)",
        per_msg(cold.index)
    );
    println!("  (heap octets as requested from the allocator, without its per-block overhead)");
    remove_synced(&dir)
}

fn recovery_config(dir: &Path) -> QueueConfig {
    let mut config = QueueConfig::new(dir);
    config.reserve = 0;
    config
}

/// What one recovery took, as reported by [`recovery_child`].
struct RecoveryFigures {
    seconds: f64,
    user_seconds: f64,
    system_seconds: f64,
    page_faults: u64,
    /// Heap octets of the `Recovered` value.
    held: u64,
    /// Heap octets the open queue keeps after `Recovered` is dropped.
    index: u64,
    found: u64,
    live: u64,
    quarantined: u64,
}

impl RecoveryFigures {
    fn times(&self) -> String {
        format!(
            "{:.2} s (cpu: user {:.2} s, system {:.2} s; {} page faults)",
            self.seconds,
            self.user_seconds,
            self.system_seconds,
            group(self.page_faults as f64)
        )
    }
}

/// Runs this program again as `--recovery-child DIR`, so that the recovery starts with an
/// empty heap as in a restarted daemon, and reads the figures it prints.
fn recover_in_child(dir: &Path) -> Result<RecoveryFigures> {
    let exe = std::env::current_exe().context(|| "cannot find this program".to_owned())?;
    let output = std::process::Command::new(&exe)
        .arg(RECOVERY_CHILD)
        .arg(dir)
        .output()
        .context(|| format!("cannot run {}", exe.display()))?;
    if !output.status.success() {
        return Err(format!(
            "recovery child failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> Result<f64> {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("recovery child printed no {name}: {stdout}"))
    };
    let count = |name: &str| field(name).map(|v| v as u64);
    Ok(RecoveryFigures {
        seconds: field("seconds")?,
        user_seconds: field("user")?,
        system_seconds: field("system")?,
        page_faults: count("faults")?,
        held: count("held")?,
        index: count("index")?,
        found: count("found")?,
        live: count("live")?,
        quarantined: count("quarantined")?,
    })
}

/// The child side of [`recover_in_child`]: opens and recovers the queue in `dir`, then prints
/// one line of `name=value` figures.
fn recovery_child(dir: &Path) -> Result<()> {
    let usage_before = ProcessUsage::now()?;
    let before_open = ALLOCATOR.allocated();
    let start = Instant::now();
    let queue = DiskQueue::open(recovery_config(dir))
        .context(|| format!("cannot open the queue in {}", dir.display()))?;
    let recovered = block_on(queue.recover()).context(|| "recover failed".to_owned())?;
    let seconds = start.elapsed().as_secs_f64();
    let usage_after = ProcessUsage::now()?;
    let with_recovered = ALLOCATOR.allocated();
    let (found, quarantined) = (recovered.messages.len(), recovered.quarantined.len());
    drop(recovered);
    let after_drop = ALLOCATOR.allocated();
    println!(
        "seconds={seconds} user={} system={} faults={} held={} index={} found={found} live={} \
         quarantined={quarantined}",
        usage_after.user_seconds - usage_before.user_seconds,
        usage_after.system_seconds - usage_before.system_seconds,
        usage_after.page_faults - usage_before.page_faults,
        with_recovered.saturating_sub(after_drop),
        after_drop.saturating_sub(before_open),
        queue.len(),
    );
    Ok(())
}

/// CPU time and page faults of this process so far, from `/proc/self/stat`.
struct ProcessUsage {
    user_seconds: f64,
    system_seconds: f64,
    page_faults: u64,
}

impl ProcessUsage {
    fn now() -> Result<ProcessUsage> {
        /// `/proc` counts CPU time in USER_HZ ticks, which is 100 on Linux.
        const TICKS_PER_SECOND: f64 = 100.0;
        let stat = fs::read_to_string("/proc/self/stat")
            .context(|| "cannot read /proc/self/stat".into())?;
        // Fields after the command name, which is in parentheses and may hold spaces; the first
        // of them is field 3 (state) of proc_pid_stat(5).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let number = |n: usize| -> Result<u64> {
            fields
                .get(n - 3)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("/proc/self/stat has no field {n}"))
        };
        Ok(ProcessUsage {
            page_faults: number(10)? + number(12)?,
            user_seconds: number(14)? as f64 / TICKS_PER_SECOND,
            system_seconds: number(15)? as f64 / TICKS_PER_SECOND,
        })
    }
}

/// Enqueues `total` small messages from [`RECOVERY_WRITERS`] threads and closes the queue.
fn fill_queue(config: &QueueConfig, total: u64) -> Result<Duration> {
    let queue = DiskQueue::open(config.clone())
        .context(|| format!("cannot open a queue in {}", config.dir.display()))?;
    let (envelope, content) = message(RECOVERY_CONTENT_SIZE);
    let next = AtomicU64::new(0);
    let start = Instant::now();
    thread::scope(|s| {
        let handles: Vec<_> = (0..RECOVERY_WRITERS)
            .map(|_| {
                let (queue, envelope, content, next) = (&queue, &envelope, &content, &next);
                s.spawn(move || -> Result<()> {
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        block_on(queue.enqueue(envelope, content))
                            .context(|| "enqueue failed".to_owned())?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| "a writer thread panicked".to_owned())?
        })
    })?;
    let elapsed = start.elapsed();
    queue.close();
    Ok(elapsed)
}

/// The segment files in `dir` and their total size.
fn segment_files(dir: &Path) -> Result<(Vec<PathBuf>, u64)> {
    let mut segments = Vec::new();
    let mut octets = 0;
    for entry in fs::read_dir(dir).context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "seg") {
            octets += entry
                .metadata()
                .context(|| format!("cannot stat {}", path.display()))?
                .len();
            segments.push(path);
        }
    }
    segments.sort();
    Ok((segments, octets))
}

/// `1234567.8` as `1,234,568`.
fn group(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
