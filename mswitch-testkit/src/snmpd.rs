//! A throwaway net-snmp `snmpd` on loopback as an AgentX master agent, for the tests of the
//! switch's AgentX subagent, and `snmpwalk` to read what it serves.
//!
//! snmpd runs in the foreground (`-f`) on its own configuration only (`-C -c FILE`): SNMP on
//! `udp:127.0.0.1:<snmp_port>` with the read-only community `public` for 127.0.0.1, and the
//! AgentX master socket on `tcp:127.0.0.1:<agentx_port>`. `SNMP_PERSISTENT_DIR` points into the
//! instance's directory for snmpd and the clients alike (otherwise both write under
//! `/var/lib/snmp`), and `MIBS=` is empty: Debian ships no IETF MIBs, so object identifiers are
//! numeric (`snmpwalk -On`).
//!
//! Debian's snmpd has net-snmp's sendmail MTA-MIB module (`mibII/mta_sendmail`) built in. It
//! serves mtaTable and mtaGroupTable objects of its own under `applIndex` 1, and net-snmp asks
//! it too, after a subagent's rows, within the subagent's own registrations (it falls back to
//! the lower-priority registration of a region once the subagent answers `endOfMibView`), so
//! the instance runs with the module left out (`-I -mta_sendmail`). `dontLogTCPWrappersConnects`
//! keeps a line per SNMP request out of the log.
//!
//! Recipe verified in `shared/interop/recipes.md` §3.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{SNMP, SNMPD, TempDir, require};

/// The community the instance grants read access to.
pub const COMMUNITY: &str = "public";

/// A running (or stopped) snmpd. Stopped with SIGTERM on drop.
#[derive(Debug)]
pub struct Snmpd {
    child: Option<Child>,
    agentx_port: u16,
    snmp_port: u16,
    dir: TempDir,
}

impl Snmpd {
    /// Installs snmpd and the SNMP tools if needed and starts snmpd with its AgentX master
    /// socket on `tcp:127.0.0.1:<agentx_port>` and SNMP on `udp:127.0.0.1:<snmp_port>`.
    /// Returns once it answers an SNMP get of `sysUpTime.0`.
    pub fn start(agentx_port: u16, snmp_port: u16) -> Snmpd {
        require(&[SNMPD, SNMP]);
        let dir = TempDir::new("mswitch-snmpd");
        fs::create_dir_all(dir.path().join("persist")).expect("create snmpd's persistent dir");
        let conf = format!(
            "agentaddress udp:127.0.0.1:{snmp_port}
master agentx
agentXSocket tcp:127.0.0.1:{agentx_port}
rocommunity {COMMUNITY} 127.0.0.1
dontLogTCPWrappersConnects yes
sysDescr mswitch test snmpd
sysContact test@example.com
sysLocation test
"
        );
        fs::write(dir.path().join("snmpd.conf"), conf).expect("write snmpd.conf");
        let mut s = Snmpd {
            child: None,
            agentx_port,
            snmp_port,
            dir,
        };
        s.run();
        s
    }

    fn run(&mut self) {
        let root = self.dir.path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("snmpd.log"))
            .expect("open snmpd.log");
        let child = self
            .command("/usr/sbin/snmpd")
            .args(["-f", "-Lo", "-C", "-c"])
            .arg(root.join("snmpd.conf"))
            .arg("-p")
            .arg(root.join("snmpd.pid"))
            .args(["-I", "-mta_sendmail"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("run snmpd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                panic!("snmpd exited at start ({status})\n{}", self.log());
            }
            let probe = self
                .command("snmpget")
                .args(["-v2c", "-c", COMMUNITY, "-t", "0.1", "-r", "0"])
                .arg(self.target())
                .arg("1.3.6.1.2.1.1.3.0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if probe.is_ok_and(|s| s.success()) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "snmpd does not answer on udp:127.0.0.1:{} after 20 s\n{}",
                    self.snmp_port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// A net-snmp program with this instance's environment.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("MIBS", "")
            .env("SNMP_PERSISTENT_DIR", self.dir.path().join("persist"));
        c
    }

    fn target(&self) -> String {
        format!("udp:127.0.0.1:{}", self.snmp_port)
    }

    /// The AgentX master socket: `127.0.0.1:<agentx_port>`.
    pub fn agentx_address(&self) -> String {
        format!("127.0.0.1:{}", self.agentx_port)
    }

    /// The SNMP port.
    pub fn snmp_port(&self) -> u16 {
        self.snmp_port
    }

    fn tool(&self, program: &str, oid: &str) -> String {
        let out = self
            .command(program)
            .args(["-v2c", "-c", COMMUNITY, "-On", "-t", "2", "-r", "1"])
            .arg(self.target())
            .arg(oid)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {oid} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `snmpwalk -v2c -c public -On` of `oid`: its output, one `OID = TYPE: value` line per
    /// object. Panics with the tool's output if it fails.
    pub fn walk(&self, oid: &str) -> String {
        self.tool("snmpwalk", oid)
    }

    /// `snmpbulkwalk` (GetBulk requests) of `oid`, in the same form.
    pub fn bulkwalk(&self, oid: &str) -> String {
        self.tool("snmpbulkwalk", oid)
    }

    /// `snmpget` of one `oid`, in the same form.
    pub fn get(&self, oid: &str) -> String {
        self.tool("snmpget", oid)
    }

    /// Whether snmpd is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops snmpd (SIGTERM, then waits for it): subagents lose their session.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Starts snmpd again on the same ports (stopping it first if it runs).
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// snmpd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("snmpd.log")).unwrap_or_default()
    }

    /// The instance's directory (configuration, log, persistent state).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Snmpd {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- snmpd log (udp:{} agentx:{}) ----\n{}",
                self.snmp_port,
                self.agentx_port,
                self.log()
            );
        }
    }
}
