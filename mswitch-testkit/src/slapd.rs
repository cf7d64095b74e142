//! A throwaway OpenLDAP `slapd` on loopback, for directory (LASER) routing tests.
//!
//! One `mdb` database with the suffix [`Slapd::SUFFIX`], the schemas `core`, `cosine`,
//! `inetorgperson` and `misc` (so `inetOrgPerson`, `inetLocalMailRecipient` with `mailHost`,
//! `mailRoutingAddress` and `mailLocalAddress`, and `domainRelatedObject` with
//! `associatedDomain` are there), the root DN [`Slapd::ROOT_DN`] with password
//! [`Slapd::ROOT_PASSWORD`], and read access for everyone. The initial content is loaded
//! offline with `slapadd` before the server starts; [`Slapd::ldapmodify`] changes it online.
//! [`Slapd::stop`] and [`Slapd::restart`] simulate a directory that goes away and comes back on
//! the same port with the same data.
//!
//! Debian builds `back_mdb` as a module, hence `modulepath /usr/lib/ldap` and
//! `moduleload back_mdb`. `groupOfNames` does not allow `mail`: add
//! `objectClass: extensibleObject` to such entries.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{LDAP_UTILS, SLAPD, TempDir, require};

/// A running (or stopped) slapd. Stopped with SIGTERM on drop.
#[derive(Debug)]
pub struct Slapd {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Slapd {
    /// The database's suffix.
    pub const SUFFIX: &'static str = "dc=example,dc=com";
    /// The root DN, which may write anything.
    pub const ROOT_DN: &'static str = "cn=admin,dc=example,dc=com";
    /// The root DN's password.
    pub const ROOT_PASSWORD: &'static str = "secret";
    /// The suffix entry and the `ou=people` and `ou=groups` containers, to put in front of a
    /// test's own entries.
    pub const BASE_LDIF: &'static str = "\
dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

";

    /// Installs slapd and the LDAP tools if needed, loads `ldif` (complete entries, the suffix
    /// entry included: see [`Slapd::BASE_LDIF`]) with `slapadd`, and starts slapd on
    /// `ldap://127.0.0.1:<port>/`. Returns once the server answers a root DSE search.
    pub fn start(port: u16, ldif: &str) -> Slapd {
        require(&[SLAPD, LDAP_UTILS]);
        let dir = TempDir::new("mswitch-slapd");
        let root = dir.path();
        fs::create_dir_all(root.join("db")).expect("create slapd's database directory");
        let conf = format!(
            "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/misc.schema
pidfile {r}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 104857600
suffix \"{suffix}\"
rootdn \"{rootdn}\"
rootpw {rootpw}
directory {r}/db
index objectClass,mail,mailLocalAddress,associatedDomain eq
access to * by * read
",
            r = root.display(),
            suffix = Self::SUFFIX,
            rootdn = Self::ROOT_DN,
            rootpw = Self::ROOT_PASSWORD,
        );
        fs::write(root.join("slapd.conf"), conf).expect("write slapd.conf");
        check(
            Command::new("slaptest")
                .args(["-Q", "-u", "-f"])
                .arg(root.join("slapd.conf"))
                .output(),
            "slaptest",
        );
        if !ldif.trim().is_empty() {
            fs::write(root.join("data.ldif"), ldif).expect("write the initial LDIF");
            check(
                Command::new("slapadd")
                    .arg("-q")
                    .arg("-f")
                    .arg(root.join("slapd.conf"))
                    .arg("-l")
                    .arg(root.join("data.ldif"))
                    .output(),
                "slapadd",
            );
        }
        let mut server = Slapd {
            child: None,
            port,
            dir,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let root = self.dir.path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("slapd.log"))
            .expect("open slapd.log");
        // `-d 256` (stats): stays in the foreground and logs connections and operations.
        let child = Command::new("/usr/sbin/slapd")
            .arg("-d")
            .arg("256")
            .arg("-f")
            .arg(root.join("slapd.conf"))
            .arg("-h")
            .arg(self.url())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run slapd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!("slapd exited at start ({status})\n{}", self.log());
            }
            let probe = Command::new("ldapsearch")
                .args(["-x", "-H", &self.url(), "-b", "", "-s", "base", "-l", "2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if probe.is_ok_and(|s| s.success()) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "slapd does not answer on {} after 20 s\n{}",
                    self.url(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `ldap://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Applies `ldif` (change records: `changetype: add`, `modify`, `delete`, ...) online, as
    /// the root DN, with `ldapmodify`. Panics with the tool's output if it fails.
    pub fn ldapmodify(&self, ldif: &str) {
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.url(), "-D", Self::ROOT_DN, "-w"])
            .arg(Self::ROOT_PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ldapmodify");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(ldif.as_bytes())
                .expect("write to ldapmodify");
        }
        check(child.wait_with_output(), "ldapmodify");
    }

    /// The entries matching `filter` under the suffix, in LDIF (`ldapsearch -LLL`).
    pub fn ldapsearch(&self, filter: &str, attributes: &[&str]) -> String {
        let out = check(
            Command::new("ldapsearch")
                .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H", &self.url()])
                .args(["-b", Self::SUFFIX, filter])
                .args(attributes)
                .output(),
            "ldapsearch",
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether slapd is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops slapd (SIGTERM, then waits for it): the directory is down until
    /// [`Slapd::restart`]. The data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Starts slapd again on the same port with the same data (stopping it first if it runs).
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// slapd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// The instance's directory (configuration, database, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- slapd log ({}) ----\n{}", self.url(), self.log());
        }
    }
}

/// Panics with the tool's output unless it ran and exited 0.
fn check(output: std::io::Result<Output>, what: &str) -> Output {
    let out = output.unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
