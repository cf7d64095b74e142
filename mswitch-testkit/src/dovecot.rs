//! A throwaway Dovecot LMTP server on loopback, delivering into Maildir folders.
//!
//! Dovecot refuses to deliver as uid 0, so mail is written as `nobody` (65534); it needs a
//! passdb even for LMTP. Users are `user@domain` entries of a passwd-file, or everyone (a static
//! userdb) when no users are given. Mail for `user@domain` lands in
//! `<dir>/mail/<domain>/<user>/Maildir`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{DOVECOT_CORE, DOVECOT_LMTPD, TempDir, probe_smtp, require, wait_for_port};

/// A running Dovecot with only the LMTP service. Stopped on drop.
#[derive(Debug)]
pub struct DovecotLmtp {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl DovecotLmtp {
    /// Installs Dovecot if needed and starts it on 127.0.0.1:`port`. With `users` (addresses
    /// such as `alice@example.com`) only those exist, and others get `550 5.1.1`; with none,
    /// every address is accepted.
    pub fn start(port: u16, users: &[&str]) -> DovecotLmtp {
        require(&[DOVECOT_CORE, DOVECOT_LMTPD]);
        let dir = TempDir::new("mswitch-dovecot");
        let root = dir.path().to_path_buf();
        for d in ["run", "state", "mail"] {
            fs::create_dir_all(root.join(d)).expect("create Dovecot's directories");
        }
        crate::chown(&root.join("mail"), "65534:65534");
        let r = root.display();
        let auth = if users.is_empty() {
            format!(
                "passdb {{\n  driver = static\n  args = nopassword=y\n}}\n\
                 userdb {{\n  driver = static\n  args = home={r}/mail/%d/%n allow_all_users=yes\n}}\n"
            )
        } else {
            let lines: String = users
                .iter()
                .map(|u| {
                    let (local, domain) = u.split_once('@').unwrap_or((u, ""));
                    format!("{u}:::::{r}/mail/{domain}/{local}::\n")
                })
                .collect();
            fs::write(root.join("users"), lines).expect("write Dovecot's users");
            format!(
                "passdb {{\n  driver = passwd-file\n  args = {r}/users\n}}\n\
                 userdb {{\n  driver = passwd-file\n  args = {r}/users\n}}\n"
            )
        };
        let conf = format!(
            "instance_name = mswitch-lmtp-{port}
base_dir = {r}/run
state_dir = {r}/state
protocols = lmtp
listen = 127.0.0.1
ssl = no
log_path = {r}/dovecot.log
mail_location = maildir:~/Maildir
mail_uid = 65534
mail_gid = 65534
{auth}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"
        );
        fs::write(root.join("dovecot.conf"), conf).expect("write dovecot.conf");
        let child = Command::new("/usr/sbin/dovecot")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run dovecot");
        let server = DovecotLmtp { child, port, dir };
        if let Err(e) = wait_for_port(port, Duration::from_secs(20)).and_then(|()| {
            probe_smtp(port).map(|greeting| {
                assert!(
                    greeting.starts_with("220"),
                    "Dovecot greeted with {greeting:?}"
                )
            })
        }) {
            panic!("Dovecot LMTP: {e}\n{}", server.log());
        }
        server
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// The Maildir of `user@domain`.
    pub fn maildir(&self, address: &str) -> PathBuf {
        let (local, domain) = address.split_once('@').unwrap_or((address, ""));
        self.dir
            .path()
            .join("mail")
            .join(domain)
            .join(local.to_ascii_lowercase())
            .join("Maildir")
    }

    /// The messages delivered to `user@domain` so far (new and cur).
    pub fn messages(&self, address: &str) -> Vec<Vec<u8>> {
        let md = self.maildir(address);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            out.extend(
                crate::files_under(&md.join(sub))
                    .iter()
                    .filter_map(|p| fs::read(p).ok()),
            );
        }
        out
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for DovecotLmtp {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its children (1-3 s). Killing it would orphan
        // them.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- Dovecot log ----\n{}", self.log());
        }
    }
}
