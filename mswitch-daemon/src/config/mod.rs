//! The daemon's configuration: TOML, validated into a typed model before anything starts.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mswitch_core::address::Domain;
use mswitch_core::policy::IpNet;
use serde::Deserialize;

/// The configuration compiled into the binary, used when no `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../default.toml");

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not match the schema (unknown key, wrong type); the
    /// message names the line and column.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file, or "embedded default".
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// The file, or "embedded default".
        origin: String,
        /// The key, as a TOML path.
        key: String,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// The raw TOML schema. Unknown keys are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    queue: RawQueue,
    #[serde(default)]
    listener: Vec<RawListener>,
    routing: RawRouting,
    #[serde(default)]
    channel: Vec<RawChannel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    hostname: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    path: PathBuf,
    #[serde(default)]
    reserve_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: String,
    service: ListenerService,
    address: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouting {
    #[serde(default)]
    local_domains: Vec<String>,
    local_channel: Option<String>,
    #[serde(default)]
    trusted_networks: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: String,
    #[serde(rename = "type")]
    kind: ChannelType,
    path: Option<PathBuf>,
}

/// What an inbound listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerService {
    /// MTA-to-MTA SMTP.
    Relay,
    /// Message submission (AUTH required).
    Submission,
}

/// The kinds of channel the daemon knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    /// Local delivery into Maildir folders.
    Maildir,
}

/// A validated configuration, with every path resolved against the data directory.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub origin: String,
    /// The switch's host name.
    pub hostname: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The queue directory.
    pub queue_path: PathBuf,
    /// Free-space reserve of the queue.
    pub queue_reserve_bytes: u64,
    /// Inbound listeners.
    pub listeners: Vec<Listener>,
    /// Domains delivered locally.
    pub local_domains: Vec<Domain>,
    /// The channel that takes local mail.
    pub local_channel: Option<String>,
    /// Clients that may relay.
    pub trusted_networks: Vec<IpNet>,
    /// Channels.
    pub channels: Vec<Channel>,
}

/// A listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Its name.
    pub name: String,
    /// What it serves.
    pub service: ListenerService,
    /// Where it listens.
    pub address: SocketAddr,
}

/// A channel.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: ChannelType,
    /// Its directory, for Maildir.
    pub path: Option<PathBuf>,
}

impl Config {
    /// Loads a configuration file.
    pub fn load(path: &Path, data_dir: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string(), data_dir)
    }

    /// The embedded default.
    pub fn embedded(data_dir: &Path) -> Result<Config, ConfigError> {
        Config::parse(EMBEDDED_DEFAULT, "embedded default", data_dir)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, data_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |key: String, message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key,
            message,
        };
        if raw.server.hostname.is_empty() {
            return Err(invalid(
                "server.hostname".into(),
                "must not be empty".into(),
            ));
        }
        Domain::parse(&raw.server.hostname).map_err(|e| {
            invalid(
                "server.hostname".into(),
                format!("{e}; expected a fully-qualified host name"),
            )
        })?;
        let mut names = HashSet::new();
        let mut listeners = Vec::new();
        for (i, l) in raw.listener.iter().enumerate() {
            if !names.insert(l.name.clone()) {
                return Err(invalid(
                    format!("listener[{i}].name"),
                    format!("duplicate name {:?}", l.name),
                ));
            }
            let address = l.address.parse().map_err(|_| {
                invalid(
                    format!("listener[{i}].address"),
                    format!("{:?} is not an IP:port address", l.address),
                )
            })?;
            listeners.push(Listener {
                name: l.name.clone(),
                service: l.service,
                address,
            });
        }
        let mut channels = Vec::new();
        for (i, c) in raw.channel.iter().enumerate() {
            if !names.insert(c.name.clone()) {
                return Err(invalid(
                    format!("channel[{i}].name"),
                    format!("duplicate name {:?}", c.name),
                ));
            }
            let path = match (c.kind, &c.path) {
                (ChannelType::Maildir, None) => {
                    return Err(invalid(
                        format!("channel[{i}].path"),
                        "a maildir channel needs a path".into(),
                    ));
                }
                (_, p) => p.as_ref().map(|p| data_dir.join(p)),
            };
            channels.push(Channel {
                name: c.name.clone(),
                kind: c.kind,
                path,
            });
        }
        let local_domains = raw
            .routing
            .local_domains
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Domain::parse(d)
                    .map_err(|e| invalid(format!("routing.local_domains[{i}]"), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trusted_networks = raw
            .routing
            .trusted_networks
            .iter()
            .enumerate()
            .map(|(i, n)| {
                n.parse::<IpNet>().map_err(|e| {
                    invalid(
                        format!("routing.trusted_networks[{i}]"),
                        format!("{e}; expected CIDR such as 127.0.0.0/8"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(lc) = &raw.routing.local_channel
            && !channels.iter().any(|c| &c.name == lc)
        {
            return Err(invalid(
                "routing.local_channel".into(),
                format!("no channel is named {lc:?}"),
            ));
        }
        if !local_domains.is_empty() && raw.routing.local_channel.is_none() {
            return Err(invalid(
                "routing.local_channel".into(),
                "local_domains are set, so a local_channel is needed to deliver them".into(),
            ));
        }
        Ok(Config {
            origin: origin.to_owned(),
            hostname: raw.server.hostname,
            data_dir: data_dir.to_owned(),
            queue_path: data_dir.join(raw.queue.path),
            queue_reserve_bytes: raw.queue.reserve_bytes,
            listeners,
            local_domains,
            local_channel: raw.routing.local_channel,
            trusted_networks,
            channels,
        })
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "configuration: {}", self.origin)?;
        writeln!(f, "hostname:      {}", self.hostname)?;
        writeln!(f, "data dir:      {}", self.data_dir.display())?;
        writeln!(
            f,
            "queue:         {} (reserve {} octets)",
            self.queue_path.display(),
            self.queue_reserve_bytes
        )?;
        for l in &self.listeners {
            writeln!(
                f,
                "listener:      {} {:?} on {}",
                l.name, l.service, l.address
            )?;
        }
        let domains: Vec<String> = self.local_domains.iter().map(|d| d.to_string()).collect();
        writeln!(
            f,
            "local domains: {} -> channel {}",
            domains.join(", "),
            self.local_channel.as_deref().unwrap_or("(none)")
        )?;
        let nets: Vec<String> = self
            .trusted_networks
            .iter()
            .map(|n| n.to_string())
            .collect();
        writeln!(f, "may relay:     {}", nets.join(", "))?;
        for c in &self.channels {
            let path = c.path.as_ref().map(|p| p.display().to_string());
            writeln!(
                f,
                "channel:       {} {:?} {}",
                c.name,
                c.kind,
                path.unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
