//! A throwaway Postfix instance on loopback, and Postfix's test tools `smtp-sink` and
//! `smtp-source`.
//!
//! The instance lives in its own directory (configuration, queue, data, log), listens only on
//! 127.0.0.1, never chroots, and logs to a file through `postlogd` so a failing test can show
//! what Postfix said. It needs root (Postfix's master runs as root and drops to `postfix`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{POSTFIX, TempDir, alive, require, wait_for_port, wait_until};

/// The master.cf of every instance: the services a relay and a virtual-mailbox host need, none
/// chrooted. `{LISTENERS}` is replaced by one `smtpd` line per port.
const MASTER_CF: &str = "\
{LISTENERS}
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// A running Postfix instance. Stopped (and its directory removed) on drop.
#[derive(Debug)]
pub struct Postfix {
    dir: TempDir,
    config: PathBuf,
    ports: Vec<u16>,
}

/// What an instance is started with.
#[derive(Debug, Clone, Default)]
pub struct PostfixConfig {
    /// One `smtpd` listener on 127.0.0.1 for each port.
    pub smtpd_ports: Vec<u16>,
    /// main.cf settings, after (and so overriding) the instance's defaults.
    pub settings: Vec<(String, String)>,
}

impl PostfixConfig {
    /// A configuration with `smtpd` listening on `ports`.
    pub fn new(ports: &[u16]) -> Self {
        PostfixConfig {
            smtpd_ports: ports.to_vec(),
            settings: Vec::new(),
        }
    }

    /// Adds a main.cf setting.
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.settings.push((name.to_owned(), value.into()));
        self
    }
}

impl Postfix {
    /// Installs Postfix if needed, writes the instance's configuration and starts it; returns
    /// once every `smtpd` port answers with a greeting.
    ///
    /// The defaults: `myhostname = postfix.test`, no local domains, relaying for 127.0.0.0/8,
    /// IPv4 on 127.0.0.1 only, no DNS (next hops are given as `[127.0.0.1]:port`), `maillog_file`
    /// in the instance's directory.
    pub fn start(config: PostfixConfig) -> Postfix {
        require(&[POSTFIX]);
        let dir = TempDir::new("mswitch-postfix");
        let root = dir.path().to_path_buf();
        let conf = root.join("etc");
        for d in ["etc", "queue", "data"] {
            fs::create_dir_all(root.join(d)).expect("create instance directories");
        }
        crate::chown(&root.join("data"), "postfix");
        let listeners: String = config
            .smtpd_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p} inet n - n - - smtpd\n"))
            .collect();
        fs::write(
            conf.join("master.cf"),
            MASTER_CF.replace("{LISTENERS}", &listeners),
        )
        .expect("write master.cf");
        let r = root.display();
        let mut main = format!(
            "compatibility_level = 3.6
queue_directory = {r}/queue
data_directory = {r}/data
maillog_file = {r}/maillog
maillog_file_prefixes = {r}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
biff = no
smtp_tls_loglevel = 1
smtpd_tls_loglevel = 1
"
        );
        for (k, v) in &config.settings {
            main.push_str(&format!("{k} = {v}\n"));
        }
        fs::write(conf.join("main.cf"), main).expect("write main.cf");
        let instance = Postfix {
            dir,
            config: conf,
            ports: config.smtpd_ports.clone(),
        };
        let out = instance.postfix(&["start"]);
        if !out.status.success() {
            // Before its log service runs, postfix reports to syslog, or to stderr when that is
            // a terminal: ask again under script(1) to see why.
            let why = Command::new("script")
                .arg("-qc")
                .arg(format!(
                    "/usr/sbin/postfix -c {} check",
                    instance.config.display()
                ))
                .arg("/dev/null")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!(
                "postfix start failed: {}{}\n{why}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                instance.log()
            );
        }
        for &p in &instance.ports {
            if let Err(e) = wait_for_port(p, Duration::from_secs(20)) {
                panic!("Postfix smtpd: {e}\n{}", instance.log());
            }
        }
        instance
    }

    fn postfix(&self, args: &[&str]) -> std::process::Output {
        Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run postfix")
    }

    /// The instance's directory (`etc/`, `queue/`, `data/`, `maillog`, and whatever the test put
    /// there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `smtpd` ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Postfix's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Waits until the log has a line containing every one of `needles`; returns that line.
    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        wait_until(timeout, || {
            self.log()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_owned)
        })
    }

    /// The number of messages in the instance's queue (incoming, active, deferred, hold).
    pub fn queued(&self) -> usize {
        ["incoming", "active", "deferred", "hold", "maildrop"]
            .iter()
            .map(|q| crate::files_under(&self.dir.path().join("queue").join(q)).len())
            .sum()
    }

    fn master_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        // "abort" stops at once; the queue is throwaway.
        let _ = self.postfix(&["abort"]);
        if let Some(pid) = pid {
            wait_until(Duration::from_secs(10), || (!alive(pid)).then_some(()));
        }
        if std::thread::panicking() {
            eprintln!("---- Postfix log ----\n{}", self.log());
        }
    }
}

/// Postfix's `smtp-sink`: a fast SMTP server that accepts (or refuses) everything and can keep
/// each message in a file. Killed on drop.
#[derive(Debug)]
pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl SmtpSink {
    /// Starts `smtp-sink` on 127.0.0.1:`port` with the extra `args` (see smtp-sink(1)), keeping
    /// every message in its own file under [`SmtpSink::messages_dir`] (`-d`).
    pub fn start(port: u16, args: &[&str]) -> SmtpSink {
        require(&[POSTFIX]);
        let dir = TempDir::new("mswitch-sink");
        let mail = dir.path().join("mail");
        fs::create_dir_all(&mail).expect("create the sink's directory");
        crate::chown(&mail, "nobody");
        let child = Command::new("/usr/sbin/smtp-sink")
            .args(["-u", "nobody", "-d"])
            .arg(format!("{}/%H%M%S.", mail.display()))
            .args(args)
            .arg(format!("127.0.0.1:{port}"))
            .arg("1024")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run smtp-sink");
        if let Err(e) = wait_for_port(port, Duration::from_secs(10)) {
            panic!("smtp-sink: {e}");
        }
        SmtpSink { child, port, dir }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the messages are kept, one file each: the envelope (`X-Client-Addr:`, `MAIL FROM`
    /// and `RCPT TO` lines) followed by the content.
    pub fn messages_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// The messages received so far, as read from their files.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        crate::files_under(&self.messages_dir())
            .iter()
            .filter_map(|p| fs::read(p).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs Postfix's `smtp-source` against 127.0.0.1:`port` with `args` (see smtp-source(1)) and
/// waits for it; panics with its output if it fails.
pub fn smtp_source(port: u16, args: &[&str]) -> String {
    require(&[POSTFIX]);
    let out = Command::new("/usr/sbin/smtp-source")
        .args(args)
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run smtp-source");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "smtp-source failed: {text}");
    text
}
