//! Real peers on loopback for mswitch's tests.
//!
//! The tests of the switch meet the programs a user would meet: Postfix (its `smtpd`, its `smtp`
//! client, `smtp-sink`, `smtp-source`), Dovecot's LMTP server, and net-snmp's `snmpd` as an
//! AgentX master. This crate starts throwaway, loopback-only instances of them in temporary
//! directories and stops them when dropped. It installs the Debian packages itself when they
//! are missing and the test runs as root ([`require`]); otherwise it fails saying what to
//! install.
//!
//! Nothing here is a mock: every instance is the real daemon with a configuration written for
//! the test.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod dnsmasq;
pub mod dovecot;
pub mod postfix;
pub mod slapd;
pub mod snmpd;
pub mod tshark;

/// A Debian package a test needs, and a program that shows it is installed.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// The package name, for `apt-get install`.
    pub name: &'static str,
    /// A file the package installs (an absolute path).
    pub provides: &'static str,
}

/// Postfix: `postfix`, `smtpd`, `smtp`, `smtp-sink`, `smtp-source`.
pub const POSTFIX: Package = Package {
    name: "postfix",
    provides: "/usr/sbin/postfix",
};
/// Dovecot's core (the master process).
pub const DOVECOT_CORE: Package = Package {
    name: "dovecot-core",
    provides: "/usr/sbin/dovecot",
};
/// Dovecot's LMTP server.
pub const DOVECOT_LMTPD: Package = Package {
    name: "dovecot-lmtpd",
    provides: "/usr/lib/dovecot/lmtp",
};

/// dnsmasq (without its system service): a DNS server for test zones.
pub const DNSMASQ: Package = Package {
    name: "dnsmasq-base",
    provides: "/usr/sbin/dnsmasq",
};
/// `dig`, to check a DNS server answers.
pub const DIG: Package = Package {
    name: "bind9-dnsutils",
    provides: "/usr/bin/dig",
};
/// OpenLDAP's server.
pub const SLAPD: Package = Package {
    name: "slapd",
    provides: "/usr/sbin/slapd",
};
/// OpenLDAP's tools (`ldapadd`, `ldapmodify`, `ldapsearch`).
pub const LDAP_UTILS: Package = Package {
    name: "ldap-utils",
    provides: "/usr/bin/ldapmodify",
};

/// net-snmp's agent (`snmpd`), an AgentX master agent.
pub const SNMPD: Package = Package {
    name: "snmpd",
    provides: "/usr/sbin/snmpd",
};
/// net-snmp's tools (`snmpget`, `snmpwalk`, `snmpbulkwalk`).
pub const SNMP: Package = Package {
    name: "snmp",
    provides: "/usr/bin/snmpwalk",
};

/// Wireshark's command-line tools (`tshark`, `dumpcap`): the X.400 wire check.
pub const TSHARK: Package = Package {
    name: "tshark",
    provides: "/usr/bin/tshark",
};

static INSTALL: Mutex<()> = Mutex::new(());

/// Makes sure `packages` are installed: installs the missing ones with `apt-get` when running as
/// root, and panics with the command to run otherwise.
///
/// Postfix is installed with debconf's "No configuration", so that it neither starts nor writes
/// a system-wide configuration; the tests run their own instances.
pub fn require(packages: &[Package]) {
    let _serial = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let missing: Vec<&str> = packages
        .iter()
        .filter(|p| !Path::new(p.provides).exists())
        .map(|p| p.name)
        .collect();
    if missing.is_empty() {
        return;
    }
    let how = format!("apt-get install -y {}", missing.join(" "));
    if !is_root() {
        panic!("this test needs {missing:?}, which are not installed: run `{how}` as root");
    }
    if missing.contains(&"slapd") {
        // Without a preseeded configuration, the package sets up a system directory; the tests
        // run their own throwaway instances.
        run_shell("echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections");
    }
    if missing.contains(&"tshark") {
        // Capturing as root needs no setuid dumpcap; the question would stop the install.
        run_shell(
            "echo 'wireshark-common wireshark-common/install-setuid boolean false' \
             | debconf-set-selections",
        );
    }
    if missing.contains(&"postfix") {
        run_shell(
            "echo 'postfix postfix/main_mailer_type select No configuration' \
             | debconf-set-selections",
        );
    }
    run_shell("apt-get update -qq");
    run_shell(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 {}",
        missing.join(" ")
    ));
    for p in packages {
        assert!(
            Path::new(p.provides).exists(),
            "`{how}` ran but {} is still missing",
            p.provides
        );
    }
}

fn run_shell(command: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{command}`: {e}"));
    assert!(status.success(), "`{command}` failed: {status}");
}

/// Whether the process runs as root (uid 0).
pub fn is_root() -> bool {
    // /proc/self/status has "Uid:\t<real>\t<effective>...".
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A port on 127.0.0.1 that was free a moment ago for both TCP and UDP, and that this process
/// has not handed out before.
///
/// The port is found by binding port 0 and closing the socket again, so another process could
/// take it in between; on a test machine that window does not matter in practice. The kernel,
/// though, readily gives the same port to two binds in a row once the first socket is closed,
/// so two calls here (a switch's port and its peer's) could name the same port: every port handed
/// out is remembered and never given twice.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind a loopback port");
        // Free for UDP too: dnsmasq and snmpd listen on UDP at ports found here.
        let udp_free = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok();
        if udp_free && !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("nothing listens on 127.0.0.1:{port} after {timeout:?}: {e}"),
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// Reads the greeting of the SMTP or LMTP server on 127.0.0.1:`port` and says QUIT: proves the
/// server answers, not only that the port is open.
pub fn probe_smtp(port: u16) -> io::Result<String> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf)?;
    s.write_all(b"QUIT\r\n")?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A directory under the system temporary directory, removed (with its content) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a new, empty directory whose name starts with `prefix`. Mode 0755, so that
    /// daemons running as other users (Postfix's `postfix`, Dovecot's mail uid) can reach into it.
    pub fn new(prefix: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}.{}.{}.{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create a temporary directory");
        set_mode(&path, 0o755);
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory after the test (for a look at the logs); returns its path.
    pub fn keep(self) -> PathBuf {
        let path = self.path.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MSWITCH_KEEP_PEERS").is_some() {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Sets the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Gives `path` to `user` (by name), recursively: `chown -R`.
pub fn chown(path: &Path, user: &str) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(user)
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run chown: {e}"));
    assert!(
        status.success(),
        "chown {user} {}: {status}",
        path.display()
    );
}

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` still exists (and is not a zombie we could reap).
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the ")" that ends the command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}
