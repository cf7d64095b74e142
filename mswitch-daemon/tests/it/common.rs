//! A running `mswitchd` for tests: a temporary data directory, a configuration written by the
//! test, the process started and stopped (SIGTERM or SIGKILL), its log at hand.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mswitch_testkit::{TempDir, files_under, wait_for_port, wait_until};

/// A daemon process. Killed on drop if still running.
pub(crate) struct Daemon {
    child: Option<Child>,
    dir: TempDir,
    /// The ports its listeners were given, in configuration order.
    pub(crate) ports: Vec<u16>,
    /// A program (and its arguments) that runs mswitchd, e.g. `eatmydata` or `fiu-run -x`;
    /// empty: mswitchd itself.
    wrapper: Vec<String>,
}

impl Daemon {
    /// Writes `config` (TOML) as `mswitch.toml` in a new data directory and starts mswitchd on
    /// it; returns when every port in `ports` accepts connections.
    pub(crate) fn start(config: &str, ports: &[u16]) -> Daemon {
        let dir = TempDir::new("mswitchd-test");
        Daemon::start_in(dir, config, ports)
    }

    /// The same, in an existing directory (to restart on the same queue).
    pub(crate) fn start_in(dir: TempDir, config: &str, ports: &[u16]) -> Daemon {
        Daemon::start_wrapped(dir, config, ports, &[])
    }

    /// The same, with mswitchd run by `wrapper` (`["eatmydata"]`, `["fiu-run", "-x", ...]`),
    /// now and at each restart.
    pub(crate) fn start_wrapped(
        dir: TempDir,
        config: &str,
        ports: &[u16],
        wrapper: &[&str],
    ) -> Daemon {
        fs::write(dir.path().join("mswitch.toml"), config).expect("write the configuration");
        let mut d = Daemon {
            child: None,
            dir,
            ports: ports.to_vec(),
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    /// Runs mswitchd by `wrapper` from the next restart on (empty: by itself).
    pub(crate) fn set_wrapper(&mut self, wrapper: &[&str]) {
        self.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
    }

    /// The process id of the running daemon (a wrapper execs it, so it is mswitchd's own).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mswitchd.log"))
            .expect("open the log");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_mswitchd"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_mswitchd")),
        };
        let child = command
            .arg("--config")
            .arg(self.dir.path().join("mswitch.toml"))
            .arg("--data-dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mswitchd");
        self.child = Some(child);
        for p in self.ports.clone() {
            let up = wait_until(Duration::from_secs(30), || {
                if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                    panic!(
                        "mswitchd exited ({status}) before listening:\n{}",
                        self.log()
                    );
                }
                wait_for_port(p, Duration::from_millis(100)).ok()
            });
            if up.is_none() {
                panic!("mswitchd did not listen on {p}:\n{}", self.log());
            }
        }
    }

    /// Starts the daemon again on the same directory and configuration.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }

    /// SIGKILL, and wait for the process to be gone.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit; returns whether it exited with success.
    pub(crate) fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill").arg(c.id().to_string()).status();
        match c.wait() {
            Ok(s) => s.success(),
            Err(_) => false,
        }
    }

    /// Sends SIGHUP (reload).
    pub(crate) fn hangup(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-HUP", &c.id().to_string()])
                .status();
        }
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log so far.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mswitchd.log")).unwrap_or_default()
    }

    /// Waits until `count` log lines contain every one of `needles`.
    pub(crate) fn wait_for_log(&self, needles: &[&str], count: usize, timeout: Duration) -> bool {
        wait_until(timeout, || {
            let n = self
                .log()
                .lines()
                .filter(|l| needles.iter().all(|x| l.contains(x)))
                .count();
            (n >= count).then_some(())
        })
        .is_some()
    }

    /// Files delivered into the Maildir of `local@domain` by a maildir channel whose path is
    /// `maildir` under the data directory.
    pub(crate) fn maildir_messages(&self, local: &str, domain: &str) -> Vec<PathBuf> {
        files_under(
            &self
                .dir
                .path()
                .join("maildir")
                .join(domain)
                .join(local)
                .join("Maildir")
                .join("new"),
        )
    }

    /// Gives the directory back (after stopping the process), to start another daemon on it.
    pub(crate) fn into_dir(mut self) -> TempDir {
        self.kill9();
        std::mem::replace(&mut self.dir, TempDir::new("mswitchd-empty"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- mswitchd log ----\n{}", self.log());
        }
        self.kill9();
    }
}

impl Daemon {
    /// Starts mswitchd with no `--config`, so on its embedded default, with `--data-dir` a new
    /// temporary directory; returns when every port in `ports` accepts connections, and panics
    /// with the log if the process exits first (a port already taken, say). The default's
    /// listeners are fixed ports: check they are free before calling this. [`Daemon::restart`]
    /// would start it with a `--config`: this variant is for one run.
    pub(crate) fn start_embedded(ports: &[u16]) -> Daemon {
        let dir = TempDir::new("mswitchd-embedded");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("mswitchd.log"))
            .expect("open the log");
        let child = Command::new(env!("CARGO_BIN_EXE_mswitchd"))
            .arg("--data-dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mswitchd");
        let mut d = Daemon {
            child: Some(child),
            dir,
            ports: ports.to_vec(),
            wrapper: Vec::new(),
        };
        for &p in ports {
            let up = wait_until(Duration::from_secs(30), || {
                if let Some(Ok(Some(status))) = d.child.as_mut().map(|c| c.try_wait()) {
                    return Some(Err(format!("mswitchd exited with {status}")));
                }
                std::net::TcpStream::connect(("127.0.0.1", p))
                    .ok()
                    .map(|_| Ok(()))
            });
            match up {
                Some(Ok(())) => {}
                Some(Err(why)) => panic!("{why} before listening on {p}:\n{}", d.log()),
                None => panic!("mswitchd did not listen on {p} in 30 s:\n{}", d.log()),
            }
        }
        d
    }
}

/// A password-file line for `user`, made by `mswitchd --hash-password`.
pub(crate) fn password_line(user: &str, password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mswitchd"))
        .args(["--hash-password", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mswitchd --hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("wait for mswitchd");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && line.starts_with(&format!("{user}:")),
        "mswitchd --hash-password {user}: {}{line}",
        String::from_utf8_lossy(&out.stderr)
    );
    line
}
