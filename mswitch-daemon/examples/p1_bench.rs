//! P1 against SMTP between two switches: instance A relays to instance B, which delivers
//! locally (Maildir for SMTP, the X.400 store for P1). The same number of messages with the
//! same content size goes through each path, from the same number of client connections;
//! the runs alternate, and the figures and the ratio P1 / SMTP are printed for each round.
//!
//! Each rate is messages delivered at B per second, from the first submission to A to the
//! last delivery at B: both hops, both queues (fsync) and the local delivery are inside it.
//!
//! `cargo run --release -p mswitch-daemon --example p1_bench [-- --messages N --size BYTES
//! --clients C --rounds R]`

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mswitch_core::address::ORAddress;
use mswitch_daemon::config::Config;
use mswitch_daemon::switch::{Registry, Switch};
use mswitch_testkit::free_port;
use mswitch_x400::driver::P1Client;
use mswitch_x400::mts::{
    ContentType, Message, MessageTransferEnvelope, MtsApdu, MtsIdentifier, ORName,
    PerRecipientMessageTransferFields,
};
use mswitch_x400::p1::{AssociationConfig, BindCredentials};

const RCPT: &str = "/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/S=Bench/";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(me: char, smtp: u16, p1: u16, peer_smtp: u16, peer_p1: u16) -> String {
    let (mine, theirs) = if me == 'a' { ('A', 'B') } else { ('B', 'A') };
    let (ml, tl) = (mine.to_ascii_lowercase(), theirs.to_ascii_lowercase());
    let smtp_routing = if me == 'a' {
        format!("smarthost = \"127.0.0.1:{peer_smtp}\"\ndefault_channel = \"smtp\"\n")
    } else {
        "local_domains = [\"sink.test\"]\nlocal_channel = \"local\"\n".to_owned()
    };
    format!(
        r#"[server]
hostname = "{ml}.bench.test"

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{smtp}"

[routing]
trusted_networks = ["127.0.0.0/8"]
{smtp_routing}
[[channel]]
name = "smtp"
type = "smtp"
tls = "none"
connection_idle = "30s"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"

[x400]
mta_name = "mta-{ml}"
country = "GB"
admd = " "
prmd = "PRMD-{mine}"
listen = "127.0.0.1:{p1}"

[[x400.peer]]
name = "mta-{tl}"
address = "127.0.0.1:{peer_p1}"

[[x400.peer]]
name = "bench"
address = "127.0.0.1:9"

[[channel]]
name = "p1"
type = "p1"

[[channel]]
name = "x400-local"
type = "x400-store"
path = "x400"

[[x400_tree]]
name = "local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/"
action = "local"
channel = "x400-local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{theirs}/"
channel = "p1"
mta = "mta-{tl}"
"#
    )
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn submit_smtp(addr: SocketAddr, count: usize, clients: usize, size: usize) {
    let handles: Vec<_> = (0..clients)
        .map(|t| {
            let per = count / clients + usize::from(t < count % clients);
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).expect("connect to A");
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut w = s;
                let mut reply = |w: &mut TcpStream, cmd: &[u8]| {
                    if !cmd.is_empty() {
                        w.write_all(cmd).expect("write");
                    }
                    loop {
                        let mut l = String::new();
                        r.read_line(&mut l).expect("read");
                        if l.as_bytes().get(3) != Some(&b'-') {
                            return l;
                        }
                    }
                };
                reply(&mut w, b"");
                reply(&mut w, b"EHLO bench\r\n");
                let line = format!("{}\r\n", "x".repeat(78));
                let body = line.repeat(size / line.len() + 1);
                for n in 0..per {
                    reply(&mut w, b"MAIL FROM:<bench@source.test>\r\n");
                    reply(&mut w, b"RCPT TO:<bench@sink.test>\r\n");
                    reply(&mut w, b"DATA\r\n");
                    let msg = format!("Subject: {t}-{n}\r\n\r\n{body}.\r\n");
                    let r = reply(&mut w, msg.as_bytes());
                    assert!(r.starts_with("250"), "{r}");
                }
                reply(&mut w, b"QUIT\r\n");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("submitter");
    }
}

fn apdu(id: String, size: usize) -> Vec<u8> {
    let gdi = mswitch_x400::mts::GlobalDomainIdentifier::new("GB", " ", Some("PRMD-T".into()));
    let originator: ORAddress = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Source/"
        .parse()
        .expect("std-or");
    let rcpt: ORAddress = RCPT.parse().expect("std-or");
    MtsApdu::Message(Message {
        envelope: MessageTransferEnvelope {
            message_identifier: MtsIdentifier::new(gdi.clone(), id),
            originator_name: ORName::from(originator),
            original_eits: None,
            content_type: ContentType::BuiltIn(22),
            content_identifier: None,
            priority: None,
            per_message_indicators: None,
            deferred_delivery_time: None,
            per_domain_bilateral_information: None,
            trace_information: vec![mswitch_x400::mts::TraceInformationElement {
                global_domain: gdi.clone(),
                domain_supplied: mswitch_x400::mts::DomainSuppliedInformation {
                    arrival_time: mswitch_x400::mts::UtcTime::from_unix_seconds(1_800_000_000)
                        .expect("time"),
                    routing_action: mswitch_x400::mts::RoutingAction::Relayed,
                    attempted_domain: None,
                    deferred_time: None,
                    converted_eits: None,
                    other_actions: None,
                },
            }],
            extensions: Vec::new(),
            per_recipient_fields: vec![PerRecipientMessageTransferFields::new(
                ORName::from(rcpt),
                1,
            )],
            unknown: Vec::new(),
        },
        content: vec![b'x'; size],
    })
    .encode()
    .expect("encode")
}

async fn submit_p1(addr: SocketAddr, count: usize, clients: usize, size: usize, round: usize) {
    let tasks: Vec<_> = (0..clients)
        .map(|t| {
            let per = count / clients + usize::from(t < count % clients);
            tokio::spawn(async move {
                let mut c = P1Client::connect(
                    addr,
                    AssociationConfig::default(),
                    BindCredentials {
                        mta_name: Some("bench".into()),
                        password: None,
                    },
                    Duration::from_secs(30),
                )
                .await
                .expect("bind to A");
                for n in 0..per {
                    c.transfer(&apdu(format!("b{round}-{t}-{n}"), size))
                        .await
                        .expect("transfer");
                }
                let _ = c.release().await;
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("submitter");
    }
}

async fn wait_for(dir: &Path, n: usize) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if count(dir) >= n {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let messages = arg("--messages", 1000) as usize;
    let size = arg("--size", 10_000) as usize;
    let clients = arg("--clients", 4) as usize;
    let rounds = arg("--rounds", 3) as usize;
    let (a_smtp, a_p1, b_smtp, b_p1) = (free_port(), free_port(), free_port(), free_port());
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let root: PathBuf = std::env::temp_dir().join(format!("mswitch-p1-bench-{stamp}"));
    let (da, db) = (root.join("a"), root.join("b"));
    let a = Switch::start(
        Config::parse(&config('a', a_smtp, a_p1, b_smtp, b_p1), "bench A", &da)?,
        Registry::new(),
    )
    .await?;
    let b = Switch::start(
        Config::parse(&config('b', b_smtp, b_p1, a_smtp, a_p1), "bench B", &db)?,
        Registry::new(),
    )
    .await?;
    let maildir = db.join("maildir/sink.test/bench/Maildir/new");
    let store = mswitch_daemon::x400store::mailbox(&db.join("x400"), &RCPT.parse()?).join("new");
    println!(
        "{messages} messages of {size} bytes per run, {clients} client connections into A, \
         A relays to B, B delivers locally; {rounds} rounds, SMTP and P1 alternating"
    );
    let (mut smtp_total, mut p1_total) = (0.0, 0.0);
    for round in 0..rounds {
        let before = count(&maildir);
        let start = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], a_smtp));
        tokio::task::spawn_blocking(move || submit_smtp(addr, messages, clients, size)).await?;
        let end = wait_for(&maildir, before + messages)
            .await
            .ok_or("SMTP messages did not all arrive")?;
        let smtp = messages as f64 / end.duration_since(start).as_secs_f64();

        let before = count(&store);
        let start = Instant::now();
        submit_p1(
            SocketAddr::from(([127, 0, 0, 1], a_p1)),
            messages,
            clients,
            size,
            round,
        )
        .await;
        let end = wait_for(&store, before + messages)
            .await
            .ok_or("P1 messages did not all arrive")?;
        let p1 = messages as f64 / end.duration_since(start).as_secs_f64();
        println!(
            "round {}: SMTP {smtp:>7.1} msg/s   P1 {p1:>7.1} msg/s   P1/SMTP {:.2}",
            round + 1,
            p1 / smtp
        );
        smtp_total += smtp;
        p1_total += p1;
    }
    let (smtp, p1) = (smtp_total / rounds as f64, p1_total / rounds as f64);
    println!(
        "mean:    SMTP {smtp:>7.1} msg/s   P1 {p1:>7.1} msg/s   P1/SMTP {:.2}",
        p1 / smtp
    );
    a.shutdown(Duration::from_secs(5)).await;
    b.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
