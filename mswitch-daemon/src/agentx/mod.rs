//! SNMP monitoring through an AgentX subagent (RFC 2741): the switch registers with a master
//! agent (net-snmp's `snmpd` with `master agentx`) and serves, under `applIndex` 1,
//!
//! - its row of the applTable of the NETWORK-SERVICES-MIB (RFC 2788, `mib-2.27`),
//! - its row of the mtaTable of the MTA-MIB (RFC 2789, `mib-2.28`): messages, volumes and
//!   recipients received, stored and transmitted,
//! - one mtaGroupTable row per listener (reception) and per channel (storage and
//!   transmission).
//!
//! The layers, each in its own module:
//! - [`pdu`]: the PDU codec, no I/O;
//! - [`session`]: the session state machine (open, register, answer), no I/O;
//! - [`mib`]: the objects, built from a [`mib::Snapshot`] of plain numbers, no I/O;
//! - [`source`]: where the numbers come from (the daemon's [`crate::metrics::Metrics`] and
//!   the QMGR);
//! - [`driver`]: the tokio task that connects (TCP or a Unix socket), drives a session, and
//!   reconnects with backoff when the master goes away.
//!
//! The objects served and those left out are listed in `docs/config.md` (`[snmp]`).

pub mod driver;
pub mod mib;
pub mod pdu;
pub mod session;
pub mod source;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use tokio::task::JoinHandle;

pub use source::{QueueFigures, Source};

/// Where net-snmp's master agent listens when `agentXSocket` is not set.
pub const DEFAULT_MASTER: &str = "/var/agentx/master";

/// `[snmp]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnmpSection {
    /// The master agent's AgentX socket: `IP:port`, `tcp:IP:port`, `unix:PATH` or a path
    /// (relative ones under the data directory).
    #[serde(default)]
    pub agentx: Option<String>,
}

/// `[snmp]`, validated: where the master agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnmpConfig {
    /// The master agent's AgentX socket.
    pub agentx: Endpoint,
}

/// Where an AgentX master listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP (RFC 2741 §8.1; the IANA port is 705).
    Tcp(std::net::SocketAddr),
    /// A Unix stream socket (§8.2).
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl SnmpSection {
    /// Validates the section; relative socket paths are taken under `data_dir`. Errors are
    /// (key, message).
    pub fn resolve(&self, data_dir: &Path) -> Result<SnmpConfig, (String, String)> {
        let key = || "snmp.agentx".to_owned();
        let text = self.agentx.as_deref().unwrap_or(DEFAULT_MASTER).trim();
        let tcp = |a: &str| {
            a.parse().map(Endpoint::Tcp).map_err(|_| {
                (
                    key(),
                    format!("{text:?}: expected IP:port, tcp:IP:port, unix:PATH or a path"),
                )
            })
        };
        let agentx = if let Some(a) = text.strip_prefix("tcp:") {
            tcp(a)?
        } else if let Some(p) = text.strip_prefix("unix:") {
            if p.is_empty() {
                return Err((key(), "unix: needs a socket path".into()));
            }
            Endpoint::Unix(data_dir.join(p))
        } else if text.contains('/') {
            Endpoint::Unix(data_dir.join(text))
        } else {
            tcp(text)?
        };
        Ok(SnmpConfig { agentx })
    }
}

/// Starts the subagent: registers with the master at `config.agentx` and answers from
/// `source` until `stop` turns true (then closes the session with `reasonShutdown`).
pub fn spawn(
    config: &SnmpConfig,
    source: Source,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    let session = source.session_config();
    let source = Arc::new(source);
    let endpoint = config.agentx.clone();
    tracing::info!(master = %endpoint, "agentx: subagent starting (MTA-MIB, NETWORK-SERVICES-MIB)");
    tokio::spawn(driver::run(
        endpoint,
        session,
        Arc::new(move || source.snapshot()),
        stop,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(agentx: Option<&str>) -> Result<Endpoint, (String, String)> {
        SnmpSection {
            agentx: agentx.map(str::to_owned),
        }
        .resolve(Path::new("/data"))
        .map(|c| c.agentx)
    }

    #[test]
    fn the_master_socket_forms() {
        let tcp = Endpoint::Tcp("127.0.0.1:705".parse().expect("address"));
        assert_eq!(resolve(Some("127.0.0.1:705")), Ok(tcp.clone()));
        assert_eq!(resolve(Some("tcp:127.0.0.1:705")), Ok(tcp));
        assert_eq!(
            resolve(Some("unix:/run/agentx.sock")),
            Ok(Endpoint::Unix("/run/agentx.sock".into()))
        );
        assert_eq!(
            resolve(Some("run/agentx")),
            Ok(Endpoint::Unix("/data/run/agentx".into()))
        );
        assert_eq!(
            resolve(None),
            Ok(Endpoint::Unix("/var/agentx/master".into()))
        );
        for bad in ["localhost:705", "tcp:nowhere", "unix:", "705"] {
            let e = resolve(Some(bad)).expect_err(bad);
            assert_eq!(e.0, "snmp.agentx");
        }
        assert_eq!(
            Endpoint::Unix("/a".into()).to_string(),
            "unix:/a".to_owned()
        );
    }

    #[test]
    fn the_snmp_section_is_optional_and_checked() {
        let base = "[server]\nhostname = \"switch.test\"\n[queue]\npath = \"queue\"\n";
        let dir = Path::new("/tmp");
        let none = crate::config::Config::parse(base, "t", dir).expect("valid");
        assert_eq!(none.snmp, None);
        let with = crate::config::Config::parse(
            &format!("{base}[snmp]\nagentx = \"127.0.0.1:7050\"\n"),
            "t",
            dir,
        )
        .expect("valid");
        assert_eq!(
            with.snmp.map(|s| s.agentx),
            Some(Endpoint::Tcp("127.0.0.1:7050".parse().expect("address")))
        );
        let default =
            crate::config::Config::parse(&format!("{base}[snmp]\n"), "t", dir).expect("valid");
        assert_eq!(
            default.snmp.map(|s| s.agentx),
            Some(Endpoint::Unix(DEFAULT_MASTER.into()))
        );
        for bad in ["agentx = \"nowhere\"", "agentx = 705", "port = 1"] {
            let r = crate::config::Config::parse(&format!("{base}[snmp]\n{bad}\n"), "t", dir);
            assert!(r.is_err(), "{bad:?} accepted");
        }
    }
}
