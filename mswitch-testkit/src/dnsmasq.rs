//! A throwaway DNS server on loopback for MX routing tests: dnsmasq with a zone given by the
//! test, and nothing else.
//!
//! dnsmasq runs in the foreground on 127.0.0.1:`port` (UDP and TCP) with no upstream
//! (`--no-resolv --no-hosts`), so it answers only from the records given. Every other name
//! gets NXDOMAIN (`--local=/#/`), not REFUSED. dnsmasq 2.90 serves an RFC 7505 null MX
//! (`--mx-host=name,.,0`, RDATA `00 00 00`).
//!
//! Failing names are made by forwarding their domain elsewhere:
//! - [`Record::ServFail`]: to a small responder thread of this crate on loopback that answers
//!   every query with SERVFAIL, which dnsmasq passes on (it replies SERVFAIL at once);
//! - [`Record::Timeout`]: to a loopback UDP socket this instance holds and never reads, so the
//!   query is never answered (the client times out).
//!
//! Recipe verified in `shared/interop/recipes.md` §4.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{DIG, DNSMASQ, TempDir, is_root, require};

/// The TTL of every record when the test does not choose one.
pub const DEFAULT_TTL: u32 = 60;

/// One record (or rule) of the test zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An MX record of `domain` (`--mx-host`); a `host` of `"."` makes the null MX of
    /// RFC 7505 (use preference 0).
    Mx {
        /// The owner name.
        domain: String,
        /// The preference.
        preference: u16,
        /// The exchange.
        host: String,
    },
    /// A and AAAA records of `name` (`--host-record`).
    Host {
        /// The owner name.
        name: String,
        /// Its addresses, IPv4 and IPv6.
        addresses: Vec<IpAddr>,
    },
    /// `alias` is a CNAME for `target` (`--cname`); `target` must be a name of this zone.
    Cname {
        /// The owner name.
        alias: String,
        /// The canonical name.
        target: String,
    },
    /// Every query for `domain` and the names under it gets SERVFAIL.
    ServFail(String),
    /// Every query for `domain` and the names under it goes unanswered.
    Timeout(String),
}

impl Record {
    /// An MX record.
    pub fn mx(domain: &str, preference: u16, host: &str) -> Record {
        Record::Mx {
            domain: domain.into(),
            preference,
            host: host.into(),
        }
    }

    /// The RFC 7505 null MX of `domain`.
    pub fn null_mx(domain: &str) -> Record {
        Record::mx(domain, 0, ".")
    }

    /// A and AAAA records; panics on an address that does not parse (a test's typo).
    pub fn host(name: &str, addresses: &[&str]) -> Record {
        Record::Host {
            name: name.into(),
            addresses: addresses
                .iter()
                .map(|a| {
                    a.parse()
                        .unwrap_or_else(|e| panic!("address {a:?} of {name}: {e}"))
                })
                .collect(),
        }
    }

    /// A CNAME.
    pub fn cname(alias: &str, target: &str) -> Record {
        Record::Cname {
            alias: alias.into(),
            target: target.into(),
        }
    }

    /// SERVFAIL for `domain` and below.
    pub fn servfail(domain: &str) -> Record {
        Record::ServFail(domain.into())
    }

    /// No answer for `domain` and below.
    pub fn timeout(domain: &str) -> Record {
        Record::Timeout(domain.into())
    }
}

/// The responder behind [`Record::ServFail`]: a thread answering SERVFAIL to every query.
#[derive(Debug)]
struct ServFailResponder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ServFailResponder {
    fn start() -> io::Result<ServFailResponder> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                // RFC 1035 §4.1.1: a 12-byte header; keep the ID and question, set QR and
                // RCODE 2 (SERVFAIL).
                if n < 12 {
                    continue;
                }
                let mut reply = buf[..n].to_vec();
                reply[2] |= 0x80;
                reply[3] = (reply[3] & 0xF0) | 2;
                let _ = socket.send_to(&reply, from);
            }
        });
        Ok(ServFailResponder {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ServFailResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running dnsmasq serving a test zone on 127.0.0.1. Stopped on drop.
#[derive(Debug)]
pub struct Dnsmasq {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    _servfail: Option<ServFailResponder>,
    _silent: Option<UdpSocket>,
}

impl Dnsmasq {
    /// Installs dnsmasq (and dig) if needed and serves `zone` on 127.0.0.1:`port`, every
    /// record with a TTL of [`DEFAULT_TTL`] seconds.
    pub fn start(port: u16, zone: &[Record]) -> Dnsmasq {
        Dnsmasq::start_with_ttl(port, DEFAULT_TTL, zone)
    }

    /// The same, with every record's TTL `ttl` seconds.
    pub fn start_with_ttl(port: u16, ttl: u32, zone: &[Record]) -> Dnsmasq {
        require(&[DNSMASQ, DIG]);
        let dir = TempDir::new("mswitch-dnsmasq");
        let mut servfail = None;
        let mut silent = None;
        let mut args: Vec<String> = vec![
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--bind-interfaces".into(),
            "--listen-address=127.0.0.1".into(),
            format!("--port={port}"),
            "--pid-file=".into(),
            format!(
                "--log-facility={}",
                dir.path().join("dnsmasq.log").display()
            ),
            "--log-queries".into(),
            format!("--local-ttl={ttl}"),
            // Names not in the zone: NXDOMAIN, not REFUSED.
            "--local=/#/".into(),
        ];
        if is_root() {
            // Stay root so that the log in our directory stays writable.
            args.push("--user=root".into());
        }
        for r in zone {
            match r {
                Record::Mx {
                    domain,
                    preference,
                    host,
                } => args.push(format!("--mx-host={domain},{host},{preference}")),
                Record::Host { name, addresses } => {
                    let list: Vec<String> = addresses.iter().map(IpAddr::to_string).collect();
                    args.push(format!("--host-record={name},{}", list.join(",")));
                }
                Record::Cname { alias, target } => args.push(format!("--cname={alias},{target}")),
                Record::ServFail(domain) => {
                    if servfail.is_none() {
                        servfail = Some(
                            ServFailResponder::start()
                                .unwrap_or_else(|e| panic!("SERVFAIL responder: {e}")),
                        );
                    }
                    let a = servfail.as_ref().map(|s| s.addr).expect("just started");
                    args.push(format!("--server=/{domain}/{}#{}", a.ip(), a.port()));
                }
                Record::Timeout(domain) => {
                    if silent.is_none() {
                        silent = Some(
                            UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                                .unwrap_or_else(|e| panic!("silent upstream socket: {e}")),
                        );
                    }
                    let a = silent
                        .as_ref()
                        .and_then(|s| s.local_addr().ok())
                        .expect("bound socket has an address");
                    args.push(format!("--server=/{domain}/{}#{}", a.ip(), a.port()));
                }
            }
        }
        fs::write(dir.path().join("args"), args.join("\n")).expect("write dnsmasq's arguments");
        let child = Command::new(DNSMASQ.provides)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                fs::File::create(dir.path().join("stderr"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("run dnsmasq");
        let mut server = Dnsmasq {
            child: Some(child),
            port,
            dir,
            _servfail: servfail,
            _silent: silent,
        };
        if let Err(e) = server.wait_ready(Duration::from_secs(10)) {
            panic!("dnsmasq on 127.0.0.1:{port}: {e}\n{}", server.log());
        }
        server
    }

    /// Polls with dig until dnsmasq answers (any answer, NXDOMAIN included).
    fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                return Err(io::Error::other(format!("dnsmasq exited: {status}")));
            }
            let answered = Command::new(DIG.provides)
                .args([
                    "+time=1",
                    "+tries=1",
                    "-p",
                    &self.port.to_string(),
                    "@127.0.0.1",
                    "mswitch-ready.invalid",
                    "A",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success();
            if answered {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no DNS answer after {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's address, 127.0.0.1:port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// dnsmasq's log (every query and how it was answered) so far.
    pub fn log(&self) -> String {
        let log = fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default();
        let err = fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        format!("{err}{log}")
    }

    /// How many queries dnsmasq has received so far (the readiness probes included).
    pub fn queries(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains(": query["))
            .count()
    }

    /// Stops dnsmasq now (tests of what happens when the server is gone). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether dnsmasq is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- dnsmasq log ----\n{}", self.log());
        }
    }
}
