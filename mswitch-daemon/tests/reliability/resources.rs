//! Resource exhaustion: connection floods and slow senders against mswitchd, with clients
//! from several loopback addresses (127.0.0.2, 127.0.0.3, ...: Linux routes all of
//! 127.0.0.0/8 to the loopback interface).
//!
//! - A flood from one address stops at `max_connections_per_client`, all of them together at
//!   `max_connections` (`421 4.7.0`); the slots come back when the flood ends; a client from
//!   another address is served meanwhile; memory stays bounded.
//! - Slow senders ("slowloris") are cut off by deadlines: an idle session, a command line
//!   trickled one octet at a time, content trickled a line at a time (the data time limit), a
//!   client that never reads our replies; each with `421 4.4.2` (or a closed connection) and a
//!   log line naming the client, while another client is served.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mswitch_testkit::postfix::SmtpSink;
use mswitch_testkit::{free_port, wait_until};
use socket2::{Domain, Socket, Type};

use crate::common::Daemon;
use crate::loadkit::{Client, smarthost_config, tagged_message};

/// A TCP connection to 127.0.0.1:`port` from the address `from` (any port).
fn connect_from(
    from: Ipv4Addr,
    port: u16,
    receive_buffer: Option<usize>,
) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())?;
    socket.connect_timeout(
        &SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).into(),
        Duration::from_secs(10),
    )?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    Ok(stream)
}

/// The first reply line the server sends on `stream` ("" if it closed without one).
fn first_line(stream: &TcpStream) -> String {
    let mut line = String::new();
    let _ = BufReader::new(stream).read_line(&mut line);
    line.trim_end().to_owned()
}

/// The resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// One message from 127.0.0.1: its reply code and how long the whole session took.
fn legit_message(port: u16, tag: &str) -> (u16, Duration) {
    let started = Instant::now();
    let code = Client::connect(port)
        .and_then(|mut c| {
            let (_, content, _) = tagged_message(tag);
            c.send("<legit@example.org>", "<rcpt@example.com>", &content)
        })
        .map(|r| r.code)
        .unwrap_or(0);
    (code, started.elapsed())
}

fn metrics_value(port: u16, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

fn config(listen: u16, sink: u16, metrics: u16, server: &str) -> String {
    format!(
        "{}\n\n[metrics]\naddress = \"127.0.0.1:{metrics}\"\n",
        smarthost_config(
            listen,
            sink,
            &[("max_connections_per_client = 500", server)]
        )
    )
}

#[test]
fn connection_flood_hits_the_limits_and_others_are_served() {
    const PER_CLIENT: usize = 10;
    const TOTAL: usize = 40;
    let (listen, sink_port, metrics) = (free_port(), free_port(), free_port());
    let _sink = SmtpSink::start(sink_port, &[]);
    let daemon = Daemon::start(
        &config(
            listen,
            sink_port,
            metrics,
            &format!("max_connections_per_client = {PER_CLIENT}\nmax_connections = {TOTAL}"),
        ),
        &[listen],
    );
    let pid = daemon.pid().expect("running");
    let rss_start = rss_kib(pid);

    // (1) One address: PER_CLIENT sessions, then 421 4.7.0.
    let flooder = Ipv4Addr::new(127, 0, 0, 2);
    let mut held: Vec<TcpStream> = (0..PER_CLIENT)
        .map(|i| {
            let s = connect_from(flooder, listen, None).expect("connect");
            let greeting = first_line(&s);
            assert!(greeting.starts_with("220 "), "session {i}: {greeting:?}");
            s
        })
        .collect();
    let over = first_line(&connect_from(flooder, listen, None).expect("connect"));
    assert!(
        over.starts_with("421 4.7.0"),
        "one past the per-client limit: {over:?}"
    );
    // Meanwhile another client is served.
    let (code, took) = legit_message(listen, "flood-legit-1");
    assert_eq!(code, 250, "a client from another address during the flood");

    // (2) Several addresses up to the global limit, then 421 4.7.0 for anyone new.
    for a in 3..3 + (TOTAL - PER_CLIENT) / PER_CLIENT {
        for _ in 0..PER_CLIENT {
            let s = connect_from(Ipv4Addr::new(127, 0, 0, a as u8), listen, None).expect("connect");
            assert!(first_line(&s).starts_with("220 "));
            held.push(s);
        }
    }
    let global = first_line(&connect_from(Ipv4Addr::new(127, 0, 0, 50), listen, None).expect("c"));
    assert!(
        global.starts_with("421 4.7.0"),
        "one past the global limit: {global:?}"
    );
    // (3) The flood ends: every slot comes back.
    drop(held);
    let active = wait_until(Duration::from_secs(10), || {
        (metrics_value(metrics, "mswitch_connections_active") == Some(0.0)).then_some(())
    });
    assert!(
        active.is_some(),
        "the flood's connections should all be released"
    );
    let (code, _) = legit_message(listen, "flood-legit-2");
    assert_eq!(code, 250, "served once the flood ended");

    // (4) A burst: 4 threads open and drop connections as fast as they can from 127.0.0.60
    //     for 3 s (refused past its limit), while a client from 127.0.0.1 sends mail.
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let burst: Vec<_> = (0..4)
        .map(|_| {
            let (stop, opened, refused) = (stop.clone(), opened.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut keep = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let Ok(s) = connect_from(Ipv4Addr::new(127, 0, 0, 60), listen, None) else {
                        continue;
                    };
                    opened.fetch_add(1, Ordering::Relaxed);
                    let line = first_line(&s);
                    if line.starts_with("421") {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    // Hold some, drop the others at once.
                    keep.push(s);
                    if keep.len() > 3 {
                        keep.remove(0);
                    }
                }
            })
        })
        .collect();
    let burst_started = Instant::now();
    let mut latencies = Vec::new();
    let mut sent = 0;
    while burst_started.elapsed() < Duration::from_secs(3) {
        let (code, took) = legit_message(listen, &format!("burst-legit-{sent}"));
        assert_eq!(code, 250, "a legitimate client during the burst");
        latencies.push(took);
        sent += 1;
    }
    stop.store(true, Ordering::SeqCst);
    for t in burst {
        t.join().expect("burst thread");
    }
    let rss_end = rss_kib(pid);
    let released = wait_until(Duration::from_secs(10), || {
        (metrics_value(metrics, "mswitch_connections_active") == Some(0.0)).then_some(())
    });
    assert!(
        released.is_some(),
        "the burst's connections should all be released"
    );
    let worst = latencies.iter().max().copied().unwrap_or_default();
    let log = daemon.log();
    let limit_lines = log
        .lines()
        .filter(|l| l.contains("connection refused: limit reached"))
        .count();
    println!(
        "flood: per-client limit {PER_CLIENT} and global limit {TOTAL} held (421 4.7.0); a \
         legitimate session during the flood took {took:?}; burst of {} connections in 3 s from \
         one address ({} refused), {sent} legitimate messages meanwhile, slowest session \
         {worst:?}; RSS {rss_start} KiB -> {rss_end} KiB; {limit_lines} refusals logged",
        opened.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    assert!(
        limit_lines >= 2,
        "refusals are logged with the client:\n{log}"
    );
    assert!(
        worst < Duration::from_secs(5),
        "legitimate sessions should not stall during the burst: {worst:?}"
    );
    assert!(
        rss_end < rss_start + 64 * 1024,
        "memory should stay bounded: {rss_start} KiB -> {rss_end} KiB"
    );
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn slow_senders_are_cut_off_by_deadlines() {
    let (listen, sink_port, metrics) = (free_port(), free_port(), free_port());
    let _sink = SmtpSink::start(sink_port, &[]);
    let daemon = Daemon::start(
        &config(
            listen,
            sink_port,
            metrics,
            "max_connections_per_client = 20\ncommand_timeout = \"2s\"\ndata_timeout = \"2s\"\n\
             data_time_limit = \"5s\"",
        ),
        &[listen],
    );
    let pid = daemon.pid().expect("running");
    let rss_start = rss_kib(pid);

    // Runs `slow` on a connection from `from`; returns what the server said last, and when the
    // server closed the connection (since the connect).
    fn slow_client(
        from: Ipv4Addr,
        port: u16,
        steps: Vec<(Duration, Vec<u8>)>,
    ) -> std::thread::JoinHandle<(String, Option<Duration>)> {
        std::thread::spawn(move || {
            let stream = connect_from(from, port, None).expect("connect");
            let started = Instant::now();
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut writer = stream;
            let mut last = String::new();
            let closed = Arc::new(AtomicBool::new(false));
            // A reader thread keeps the last reply and notices the close.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => {
                            let _ = tx.send(None);
                            return;
                        }
                        Ok(_) => {
                            let _ = tx.send(Some(line.trim_end().to_owned()));
                        }
                    }
                }
            });
            for (pause, bytes) in steps {
                std::thread::sleep(pause);
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Some(l) => last = l,
                        None => closed.store(true, Ordering::SeqCst),
                    }
                }
                if closed.load(Ordering::SeqCst) || writer.write_all(&bytes).is_err() {
                    return (last, Some(started.elapsed()));
                }
            }
            // Out of steps: wait for the close.
            loop {
                match rx.recv_timeout(Duration::from_secs(15)) {
                    Ok(Some(l)) => last = l,
                    Ok(None) => return (last, Some(started.elapsed())),
                    Err(_) => return (last, None),
                }
            }
        })
    }

    let step = |ms: u64, b: &[u8]| (Duration::from_millis(ms), b.to_vec());
    // (a) Says nothing after the greeting.
    let idle = slow_client(Ipv4Addr::new(127, 0, 0, 2), listen, vec![]);
    // (b) "EHLO slowloris.test" one octet every 300 ms, then more, never a whole line in time.
    let trickle: Vec<_> = b"EHLO slowloris.test and more and more and more"
        .iter()
        .map(|b| step(300, &[*b]))
        .collect();
    let trickler = slow_client(Ipv4Addr::new(127, 0, 0, 3), listen, trickle);
    // (c) A transaction whose content comes a line every 500 ms, for ever.
    let mut data = vec![step(300, b"EHLO slowdata.test\r\n")];
    data.push(step(200, b"MAIL FROM:<s@example.org>\r\n"));
    data.push(step(200, b"RCPT TO:<r@example.com>\r\n"));
    data.push(step(200, b"DATA\r\n"));
    data.extend((0..40).map(|i| step(500, format!("X-Slow-{i}: y\r\n").as_bytes())));
    let data_trickler = slow_client(Ipv4Addr::new(127, 0, 0, 4), listen, data);
    // (d) A herd: 20 idle sessions from one address (its limit), all let go by the deadline.
    let herd: Vec<_> = (0..20)
        .map(|_| slow_client(Ipv4Addr::new(127, 0, 0, 5), listen, vec![]))
        .collect();

    // Others are served meanwhile.
    std::thread::sleep(Duration::from_millis(500));
    let (code, took) = legit_message(listen, "slowloris-legit");
    assert_eq!(code, 250, "a normal client while the slow ones hang on");

    let (idle_last, idle_closed) = idle.join().expect("idle");
    let (trickle_last, trickle_closed) = trickler.join().expect("trickler");
    let (data_last, data_closed) = data_trickler.join().expect("data trickler");
    let herd: Vec<_> = herd.into_iter().map(|h| h.join().expect("herd")).collect();

    assert!(
        idle_last.starts_with("421 4.4.2")
            && idle_closed.is_some_and(|t| t < Duration::from_secs(4)),
        "an idle session is closed at the command timeout: {idle_last:?} after {idle_closed:?}"
    );
    assert!(
        trickle_last.starts_with("421 4.4.2")
            && trickle_closed.is_some_and(|t| t < Duration::from_secs(4)),
        "a command line trickled octet by octet gets no more than the command timeout: \
         {trickle_last:?} after {trickle_closed:?}"
    );
    assert!(
        data_last.starts_with("421 4.4.2 Message transfer took too long")
            && data_closed.is_some_and(|t| t < Duration::from_secs(8)),
        "content trickled line by line is cut at the data time limit: {data_last:?} after \
         {data_closed:?}"
    );
    let herd_closed = herd
        .iter()
        .filter(|(l, t)| l.starts_with("421 4.4.2") && t.is_some())
        .count();
    assert_eq!(
        herd_closed,
        herd.len(),
        "every idle session of the herd is let go: {herd:?}"
    );

    // (e) A client that pipelines commands and never reads the replies: once the socket
    //     buffers are full the server cannot write, and gives up after the command timeout.
    let reader_started = Instant::now();
    let non_reader = connect_from(Ipv4Addr::new(127, 0, 0, 6), listen, Some(4096)).expect("c");
    non_reader
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut w = &non_reader;
    // RCPTs: commands that are neither errors nor junk commands (NOOPs would end the session
    // at the junk-command limit before the replies fill the socket; past 1,000 recipients the
    // answer is 452, still not an error).
    let batch = "RCPT TO:<rcpt@example.com>\r\n".repeat(10_000);
    // Greeting and EHLO as usual (a command after EHLO in the same group is a
    // synchronisation error), then one MAIL and RCPTs without end, never reading.
    let mut r = BufReader::new(&non_reader);
    let mut line = String::new();
    let _ = r.read_line(&mut line);
    let _ = w.write_all(b"EHLO nonreader.test\r\n");
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line.starts_with("250 ") {
            break;
        }
    }
    let _ = w.write_all(b"MAIL FROM:<nonreader@example.org>\r\n");
    while reader_started.elapsed() < Duration::from_secs(6) {
        match w.write_all(batch.as_bytes()) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break, // reset: the server gave up
        }
    }
    let gave_up = daemon.wait_for_log(
        &["did not read our replies", "127.0.0.6"],
        1,
        Duration::from_secs(10),
    );
    drop(non_reader);

    // (f) A client that keeps its session with NOOPs, reading every reply: each NOOP restarts
    //     the command timeout, so only the junk-command limit (100, then 10 errors) ends it.
    let nooper = connect_from(Ipv4Addr::new(127, 0, 0, 7), listen, None).expect("connect");
    let mut nr = BufReader::new(&nooper);
    let mut nw = &nooper;
    let mut reply = String::new();
    let _ = nr.read_line(&mut reply);
    let _ = nw.write_all(b"EHLO nooper.test\r\n");
    loop {
        reply.clear();
        if nr.read_line(&mut reply).unwrap_or(0) == 0 || reply.starts_with("250 ") {
            break;
        }
    }
    // Every NOOP is answered 250; the 110th (100 allowed, then 10 errors) is followed by the
    // 421 in the same write.
    let mut answered = 0;
    let mut last_reply = String::new();
    'session: for _ in 0..200 {
        if nw.write_all(b"NOOP\r\n").is_err() {
            break;
        }
        loop {
            reply.clear();
            if nr.read_line(&mut reply).unwrap_or(0) == 0 {
                break 'session;
            }
            last_reply = reply.trim_end().to_owned();
            if !reply.starts_with("250 ") {
                break 'session;
            }
            answered += 1;
            if nr.buffer().is_empty() {
                break;
            }
        }
    }
    drop(nooper);
    assert_eq!(
        (answered, last_reply.as_str()),
        (110, "421 4.7.0 Too many errors, closing connection"),
        "the NOOP client is let go at the junk-command limit"
    );
    assert!(
        daemon.wait_for_log(
            &["too many errors", "127.0.0.7", "junk_commands=10"],
            1,
            Duration::from_secs(5)
        ),
        "the log names the NOOP client:\n{}",
        daemon.log()
    );

    let log = daemon.log();
    let too_slow: Vec<&str> = log.lines().filter(|l| l.contains("too slow")).collect();
    let released = wait_until(Duration::from_secs(10), || {
        (metrics_value(metrics, "mswitch_connections_active") == Some(0.0)).then_some(())
    });
    let rss_end = rss_kib(pid);
    println!(
        "slowloris: idle closed after {idle_closed:?} ({idle_last}); octet trickler after \
         {trickle_closed:?} ({trickle_last}); content trickler after {data_closed:?} \
         ({data_last}); herd of {} closed; a legitimate message meanwhile in {took:?}; \
         non-reader given up: {gave_up}; RSS {rss_start} KiB -> {rss_end} KiB; log: {:?}",
        herd.len(),
        too_slow.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        gave_up,
        "a client that never reads is cut off, and the log says so:\n{log}"
    );
    assert!(
        too_slow
            .iter()
            .any(|l| l.contains("127.0.0.4") && l.contains("data time limit")),
        "the log names the client that was too slow, and where:\n{log}"
    );
    assert!(
        too_slow
            .iter()
            .any(|l| l.contains("127.0.0.3") && l.contains("command timeout")),
        "{log}"
    );
    assert!(
        !log.contains("X-Slow")
            && !log
                .lines()
                .any(|l| l.contains(": received ") && l.contains("127.0.0.4")),
        "nothing of the slow message was queued:\n{log}"
    );
    assert!(
        released.is_some(),
        "every slow session's slot is given back"
    );
    assert!(
        rss_end < rss_start + 64 * 1024,
        "memory bounded: {rss_start} KiB -> {rss_end} KiB"
    );
}
