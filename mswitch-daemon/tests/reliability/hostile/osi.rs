//! Hostile RFC 1006 / X.224 input on the P1 port: each connection is dropped cleanly, memory
//! stays bounded, and the switch goes on taking X.400 mail. BER-level hostility (deep nesting,
//! huge lengths, truncated indefinite lengths) is proved in the library's unit tests
//! (`mswitch-x400/src/ber/tests.rs`, `hostile_lengths_are_errors_without_allocation`) and by the
//! `x400_*` fuzz targets, which feed the whole responder association.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use mswitch_testkit::{free_port, wait_until};

use crate::common::Daemon;

const ALICE: &str = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Alice/";

fn config(p1: u16) -> String {
    format!(
        r#"[server]
hostname = "a.x400.test"

[queue]
path = "queue"

[x400]
mta_name = "mta-a"
country = "GB"
admd = " "
prmd = "PRMD-A"
password = "secret-a"
listen = "127.0.0.1:{p1}"
idle_timeout = "3s"

[[x400.peer]]
name = "test-mta"
address = "127.0.0.1:9"
password = "secret-t"

[[channel]]
name = "x400-local"
type = "x400-store"
path = "x400"

[[x400_tree]]
name = "local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/"
action = "local"
channel = "x400-local"
"#
    )
}

/// Sends `bytes` and reports whether the switch closed the connection within `timeout`
/// (without sending anything but, at most, a disconnect).
fn closed_after(port: u16, bytes: &[u8], timeout: Duration) -> bool {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect to the P1 port");
    let _ = s.write_all(bytes);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn transfer_to_alice(port: u16, id: &str) {
    let apdu = super::p1_peer::message(
        id,
        "/C=GB/ADMD= /PRMD=PRMD-T/O=T/S=Test/",
        ALICE,
        b"still here",
    );
    super::p1_peer::transfer(port, &apdu);
}

#[test]
fn hostile_rfc1006_input_is_dropped_and_the_switch_goes_on() {
    let p1 = free_port();
    let daemon = Daemon::start(&config(p1), &[p1]);
    let pid = daemon.pid().expect("mswitchd runs");
    let before = rss_kib(pid);

    // A connection request TPDU (X.224 CR, class 0) that is otherwise valid.
    let cr = [
        0x03, 0x00, 0x00, 0x0b, 0x06, 0xe0, 0x00, 0x00, 0x00, 0x01, 0x00,
    ];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero-length TPKT", vec![0x03, 0x00, 0x00, 0x00]),
        ("TPKT shorter than its header", vec![0x03, 0x00, 0x00, 0x03]),
        (
            "TPKT version 4",
            vec![0x04, 0x00, 0x00, 0x0b, 0, 0, 0, 0, 0, 0, 0],
        ),
        ("empty TPDU", vec![0x03, 0x00, 0x00, 0x04]),
        ("TPDU length indicator past the packet", {
            let mut v = cr.to_vec();
            v[4] = 0xfe;
            v
        }),
        (
            "data before any connection",
            vec![0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80],
        ),
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("a second CR on a connected transport", [cr, cr].concat()),
    ];
    for (what, bytes) in &cases {
        assert!(
            closed_after(p1, bytes, Duration::from_secs(10)),
            "{what}: the connection stays open\n{}",
            daemon.log()
        );
    }
    // A TPKT that announces more than a TPDU may hold: refused at once.
    assert!(
        closed_after(
            p1,
            &[0x03, 0x00, 0xff, 0xff, 1, 2, 3, 4, 5, 6],
            Duration::from_secs(10)
        ),
        "an oversized TPKT holds its connection\n{}",
        daemon.log()
    );
    // A TPKT that announces 20 octets and sends ten, then nothing: dropped by the idle timeout
    // (3 s here), not held for ever.
    let mut stalled = cr[..10].to_vec();
    stalled[3] = 0x14;
    let t = Instant::now();
    assert!(
        closed_after(p1, &stalled, Duration::from_secs(15)),
        "a stalled TPKT holds its connection\n{}",
        daemon.log()
    );
    let stalled_for = t.elapsed();
    assert!(
        stalled_for >= Duration::from_secs(2),
        "closed before the idle timeout?"
    );
    // Many connections, each the largest TPKT of junk: memory does not follow them.
    let mut junk = vec![0x03, 0x00, 0xff, 0xff];
    junk.extend(std::iter::repeat_n(0x55, 65_531));
    for _ in 0..200 {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, p1)).expect("connect");
        let _ = s.write_all(&junk);
    }
    let settled = wait_until(Duration::from_secs(10), || {
        let now = rss_kib(pid);
        (now < before + 20 * 1024).then_some(now)
    });
    assert!(
        settled.is_some(),
        "RSS grew from {before} KiB to {} KiB after 200 junk connections",
        rss_kib(pid)
    );
    // Each refusal is a warning naming the peer and the problem.
    let log = daemon.log();
    let refusals = log
        .lines()
        .filter(|l| {
            l.contains(" WARN ") && l.contains("peer=127.0.0.1:") && l.contains("protocol error")
        })
        .count();
    assert!(
        refusals >= cases.len(),
        "expected a warning naming the peer for each hostile connection:\n{log}"
    );
    // And X.400 mail still flows.
    transfer_to_alice(p1, "after-hostile-1");
    let mailbox = mswitch_daemon::x400store::mailbox(
        &daemon.dir().join("x400"),
        &ALICE.parse().expect("std-or"),
    );
    let delivered = wait_until(Duration::from_secs(30), || {
        let f = mswitch_testkit::files_under(&mailbox.join("new"));
        (!f.is_empty()).then_some(f)
    });
    assert!(delivered.is_some(), "nothing delivered:\n{}", daemon.log());
    eprintln!(
        "hostile RFC 1006: {} cases dropped (a stalled one after {:.1} s), 200 junk connections: \
         RSS {before} -> {} KiB",
        cases.len() + 2,
        stalled_for.as_secs_f64(),
        rss_kib(pid)
    );
}
