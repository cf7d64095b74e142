//! Self-tuning against fixed concurrency: the switch relays to a sink whose capacity is
//! limited (at most `--slots` messages at once, each held `--service-ms`; excess connections
//! wait), once with each fixed per-peer concurrency and once with self-tuning, and prints the
//! throughput of each and the ratio of self-tuning to the best fixed setting. Then the sink
//! starts answering 4xx, and the tuned limit is shown backing off.
//!
//! `cargo run --release -p mswitch-daemon --example tuning_bench [-- --messages N --slots S --service-ms MS]`

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mswitch_daemon::config::Config;
use mswitch_daemon::switch::{Registry, Switch};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

struct Sink {
    received: AtomicU64,
    first: std::sync::Mutex<Option<Instant>>,
    last: std::sync::Mutex<Option<Instant>>,
    defer: AtomicBool,
    slots: Semaphore,
    service: Duration,
}

async fn session(sink: Arc<Sink>, stream: tokio::net::TcpStream) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut lines = TokioBufReader::new(r);
    w.write_all(b"220 sink ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") || cmd.starts_with("LHLO") {
            w.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
        } else if cmd.starts_with("RCPT") && sink.defer.load(Ordering::SeqCst) {
            w.write_all(b"451 4.3.2 busy, try later\r\n").await?;
        } else if cmd.starts_with("DATA") {
            w.write_all(b"354 go on\r\n").await?;
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
            }
            // The sink's capacity: a slot for the time the message takes.
            let permit = sink.slots.acquire().await;
            tokio::time::sleep(sink.service).await;
            drop(permit);
            let now = Instant::now();
            sink.first.lock().map(|mut f| *f.get_or_insert(now)).ok();
            if let Ok(mut l) = sink.last.lock() {
                *l = Some(now);
            }
            sink.received.fetch_add(1, Ordering::SeqCst);
            w.write_all(b"250 2.0.0 ok\r\n").await?;
        } else if cmd.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"250 ok\r\n").await?;
        }
    }
}

fn submit(addr: SocketAddr, count: usize, threads: usize) {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            // Exactly `count` in all.
            let per = count / threads + usize::from(t < count % threads);
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).expect("connect to the switch");
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut w = s;
                let mut reply = |w: &mut TcpStream, cmd: &str| {
                    if !cmd.is_empty() {
                        w.write_all(cmd.as_bytes()).expect("write");
                    }
                    loop {
                        let mut l = String::new();
                        r.read_line(&mut l).expect("read");
                        if l.as_bytes().get(3) != Some(&b'-') {
                            return l;
                        }
                    }
                };
                reply(&mut w, "");
                reply(&mut w, "EHLO bench\r\n");
                for n in 0..per {
                    reply(&mut w, "MAIL FROM:<bench@source.test>\r\n");
                    reply(&mut w, "RCPT TO:<rcpt@sink.test>\r\n");
                    reply(&mut w, "DATA\r\n");
                    let body = format!(
                        "Subject: {t}-{n}\r\n\r\n{}.\r\n",
                        format!("{}\r\n", "x".repeat(76)).repeat(13)
                    );
                    let r = reply(&mut w, &body);
                    assert!(r.starts_with("250"), "{r}");
                }
                reply(&mut w, "QUIT\r\n");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("submitter");
    }
}

fn config(sink: u16, tuned: bool, fixed: usize) -> String {
    format!(
        r#"[server]
hostname = "bench.test"
max_connections_per_client = 1000

[queue]
path = "queue"
retry_first = "1s"
retry_max = "2s"
delay_warning = "off"

[[listener]]
name = "in"
service = "relay"
address = "127.0.0.1:0"

[routing]
trusted_networks = ["127.0.0.0/8"]
smarthost = "127.0.0.1:{sink}"

[[channel]]
name = "out"
type = "smtp"
tls = "none"
max_jobs = 64
max_per_peer = {peer}
self_tuning = {tuned}
"#,
        peer = if tuned { 32 } else { fixed }
    )
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let messages = arg("--messages", 2000) as usize;
    let slots = arg("--slots", 8) as usize;
    let service = Duration::from_millis(arg("--service-ms", 20));
    let capacity = slots as f64 / service.as_secs_f64();
    println!(
        "sink: {slots} messages at once, {} ms each: capacity {capacity:.0} msg/s; {messages} messages per run",
        service.as_millis()
    );
    let mut results: Vec<(String, f64)> = Vec::new();
    let settings: Vec<(String, bool, usize)> = [2usize, 4, 8, 16, 32]
        .iter()
        .map(|&n| (format!("fixed {n}"), false, n))
        .chain([("self-tuning".to_owned(), true, 0)])
        .collect();
    let mut tuned_switch = None;
    let mut tuned_sink = None;
    for (name, tuned, fixed) in settings {
        let sink = Arc::new(Sink {
            received: AtomicU64::new(0),
            first: std::sync::Mutex::new(None),
            last: std::sync::Mutex::new(None),
            defer: AtomicBool::new(false),
            slots: Semaphore::new(slots),
            service,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sink_port = listener.local_addr()?.port();
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let _ = session(s, stream).await;
                });
            }
        });
        let dir = std::env::temp_dir().join(format!(
            "mswitch-tuning-{}-{fixed}-{tuned}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config::parse(&config(sink_port, tuned, fixed), "bench", &dir)?;
        let switch = Switch::start(config, Registry::new()).await?;
        let addr = switch.addresses()[0];
        tokio::task::spawn_blocking(move || submit(addr, messages, 16)).await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        while sink.received.load(Ordering::SeqCst) < messages as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n = sink.received.load(Ordering::SeqCst);
        let first = sink.first.lock().ok().and_then(|f| *f);
        let last = sink.last.lock().ok().and_then(|l| *l);
        let rate = match (first, last) {
            (Some(f), Some(l)) if n > 1 => (n - 1) as f64 / l.duration_since(f).as_secs_f64(),
            _ => 0.0,
        };
        println!("{name:<12} {rate:>8.1} msg/s  ({n} delivered)");
        results.push((name, rate));
        if tuned {
            let peers = switch.management().peers();
            println!("  tuned: {peers}");
            tuned_switch = Some((switch, dir));
            tuned_sink = Some(sink);
        } else {
            switch.shutdown(Duration::from_secs(5)).await;
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let best = results
        .iter()
        .filter(|(n, _)| n.starts_with("fixed"))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap_or_default();
    let tuned = results.last().map(|r| r.1).unwrap_or(0.0);
    println!(
        "best fixed: {} at {:.1} msg/s; self-tuning {:.1} msg/s; ratio {:.2}",
        best.0,
        best.1,
        tuned,
        if best.1 > 0.0 { tuned / best.1 } else { 0.0 }
    );
    // The sink pushes back: the tuned limit falls.
    if let (Some((switch, dir)), Some(sink)) = (tuned_switch, tuned_sink) {
        sink.defer.store(true, Ordering::SeqCst);
        let addr = switch.addresses()[0];
        tokio::task::spawn_blocking(move || submit(addr, 64, 8)).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        println!(
            "after the sink answered 4xx: {}",
            switch.management().peers()
        );
        switch.shutdown(Duration::from_secs(5)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
