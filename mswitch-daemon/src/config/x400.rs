//! `[x400]`: this switch as an X.400 MTA (its name and domain, the P1 listener, the peer MTAs
//! it exchanges P1 with, and the X.400 routing trees).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use mswitch_core::address::ORAddress;
use mswitch_route::x400::{X400RoutingConfig, X400TreeConfig};

/// `[x400]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawX400 {
    mta_name: String,
    country: String,
    admd: String,
    prmd: Option<String>,
    password: Option<String>,
    listen: Option<String>,
    tsel: Option<String>,
    idle_timeout: Option<String>,
    #[serde(default = "super::yes")]
    require_authentication: bool,
    #[serde(default)]
    peer: Vec<RawPeer>,
    // P3 (MTS access).
    p3_listen: Option<String>,
    p3_tsel: Option<String>,
    #[serde(default)]
    user: Vec<RawUser>,
    #[serde(default)]
    store: Vec<RawStore>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    address: String,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    address_prefix: String,
    address: String,
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    name: String,
    address: String,
    password: Option<String>,
    our_password: Option<String>,
    tsel: Option<String>,
    #[serde(default)]
    dialogue_mode: DialogueModeName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DialogueModeName {
    #[default]
    Monologue,
    Twa,
}

/// The validated `[x400]` section.
#[derive(Debug, Clone)]
pub struct X400Config {
    /// Our `MTAName`, given in binds and internal trace.
    pub mta_name: String,
    /// Our global domain: country.
    pub country: String,
    /// Our global domain: ADMD (a single space for "any").
    pub admd: String,
    /// Our global domain: PRMD, if any.
    pub prmd: Option<String>,
    /// What we present in binds (the peer's `our_password` wins).
    pub password: Option<String>,
    /// The P1 listener's address (RFC 1006; 102 by convention), if any.
    pub listen: Option<SocketAddr>,
    /// Our transport selector.
    pub tsel: Vec<u8>,
    /// How long an idle association is kept.
    pub idle_timeout: Duration,
    /// Whether a peer must bind with a configured name and password.
    pub require_authentication: bool,
    /// The peer MTAs.
    pub peers: Vec<X400Peer>,
    /// The X.400 routing trees.
    pub routing: X400RoutingConfig,
    /// The P3 listener's address (user agents bind there), if any. The same address as
    /// `listen`: P3 is served on the P1 listener (one port, dispatched by transport selector
    /// and application context).
    pub p3_listen: Option<SocketAddr>,
    /// Our transport selector for P3 (empty: any).
    pub p3_tsel: Vec<u8>,
    /// The user agents that may bind to the P3 listener.
    pub users: Vec<X400User>,
    /// The message stores the P3 channels deliver to.
    pub stores: Vec<X400Store>,
}

/// A user agent allowed to bind over P3 (`[[x400.user]]`).
#[derive(Debug, Clone)]
pub struct X400User {
    /// Its O/R address (std-or text form).
    pub address: ORAddress,
    /// The simple password it binds with.
    pub password: String,
}

/// A message store delivered to over P3 (`[[x400.store]]`).
#[derive(Debug, Clone)]
pub struct X400Store {
    /// The O/R addresses it holds: those with every attribute of this one.
    pub address_prefix: ORAddress,
    /// Its P3 listener.
    pub address: SocketAddr,
    /// The password we bind with (default: `x400.password`).
    pub password: Option<String>,
}

/// A peer MTA.
#[derive(Debug, Clone)]
pub struct X400Peer {
    /// Its `MTAName` (what it gives in its bind, and the routing trees' `mta`).
    pub name: String,
    /// Where its P1 listener is.
    pub address: SocketAddr,
    /// The password it must present when it binds to us.
    pub password: Option<String>,
    /// The password we present to it.
    pub our_password: Option<String>,
    /// Its transport selector.
    pub tsel: Vec<u8>,
    /// `dialogue_mode = "twa"`: our associations to it are two-way-alternate, so it may send
    /// to us on them (and we to it on those it opens the same way).
    pub two_way_alternate: bool,
}

/// A selector written as text (`"P1"`) or as hex with a `0x` prefix (`"0x0001"`).
fn selector(text: Option<&str>, key: &str) -> Result<Vec<u8>, (String, String)> {
    let Some(t) = text else {
        return Ok(Vec::new());
    };
    if let Some(hex) = t.strip_prefix("0x") {
        if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err((
                key.into(),
                format!("{t:?} is not an even number of hex digits"),
            ));
        }
        return Ok((0..hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect());
    }
    if t.len() > 32 {
        return Err((key.into(), "longer than 32 bytes".into()));
    }
    Ok(t.as_bytes().to_vec())
}

impl RawX400 {
    /// Validates the section; `trees` are the top-level `[[x400_tree]]` tables.
    pub(crate) fn validate(
        &self,
        trees: &[X400TreeConfig],
    ) -> Result<X400Config, (String, String)> {
        if self.mta_name.is_empty() || self.mta_name.len() > 32 {
            return Err((
                "x400.mta_name".into(),
                "must be 1 to 32 characters (ub-mta-name-length)".into(),
            ));
        }
        let c = self.country.as_str();
        let country_ok = (c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
            || (c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()));
        if !country_ok {
            return Err((
                "x400.country".into(),
                format!("{c:?}: expected an ISO 3166 alpha-2 code or an X.121 DCC"),
            ));
        }
        if self.admd.is_empty() || self.admd.len() > 16 {
            return Err((
                "x400.admd".into(),
                "must be 1 to 16 characters (a single space for any ADMD)".into(),
            ));
        }
        let listen = match &self.listen {
            Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
                (
                    "x400.listen".to_string(),
                    format!("{a:?} is not an IP:port address"),
                )
            })?),
            None => None,
        };
        let idle_timeout = super::duration(
            self.idle_timeout.as_deref(),
            Duration::from_secs(300),
            "x400.idle_timeout",
        )?
        .unwrap_or(Duration::from_secs(300));
        let mut peers = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, p) in self.peer.iter().enumerate() {
            if !names.insert(p.name.clone()) {
                return Err((
                    format!("x400.peer[{i}].name"),
                    format!("duplicate {:?}", p.name),
                ));
            }
            let address = p.address.parse().map_err(|_| {
                (
                    format!("x400.peer[{i}].address"),
                    format!("{:?} is not an IP:port address", p.address),
                )
            })?;
            peers.push(X400Peer {
                name: p.name.clone(),
                address,
                password: p.password.clone(),
                our_password: p.our_password.clone(),
                tsel: selector(p.tsel.as_deref(), &format!("x400.peer[{i}].tsel"))?,
                two_way_alternate: p.dialogue_mode == DialogueModeName::Twa,
            });
        }
        let routing = X400RoutingConfig {
            trees: trees.to_vec(),
        };
        // Patterns, actions and alternates are checked now, not at the first message.
        routing
            .build()
            .map_err(|e| ("x400_tree".to_string(), e.to_string()))?;
        let (p3_listen, users, stores) = self.p3()?;
        if let (Some(p1), Some(p3)) = (listen, p3_listen)
            && p1 != p3
            && p1.port() == p3.port()
            && (p1.ip().is_unspecified() || p3.ip().is_unspecified())
        {
            return Err((
                "x400.p3_listen".into(),
                format!(
                    "{p3} overlaps x400.listen {p1}: give the same address to serve P3 on the \
                     P1 listener, or another port"
                ),
            ));
        }
        Ok(X400Config {
            mta_name: self.mta_name.clone(),
            country: self.country.clone(),
            admd: self.admd.clone(),
            prmd: self.prmd.clone(),
            password: self.password.clone(),
            listen,
            tsel: selector(self.tsel.as_deref(), "x400.tsel")?,
            idle_timeout,
            require_authentication: self.require_authentication,
            peers,
            routing,
            p3_listen,
            p3_tsel: selector(self.p3_tsel.as_deref(), "x400.p3_tsel")?,
            users,
            stores,
        })
    }

    /// Validates the P3 keys: `p3_listen`, `[[x400.user]]`, `[[x400.store]]`.
    #[allow(clippy::type_complexity)]
    fn p3(&self) -> Result<(Option<SocketAddr>, Vec<X400User>, Vec<X400Store>), (String, String)> {
        let p3_listen = match &self.p3_listen {
            Some(a) => Some(a.parse().map_err(|_| {
                (
                    "x400.p3_listen".to_string(),
                    format!("{a:?} is not an IP:port address"),
                )
            })?),
            None => None,
        };
        let or = |text: &str, key: String| -> Result<ORAddress, (String, String)> {
            let a: ORAddress = text
                .parse()
                .map_err(|e| (key.clone(), format!("{text:?}: {e}")))?;
            if a.is_empty() {
                return Err((key, format!("{text:?} has no attribute")));
            }
            Ok(a)
        };
        let mut users: Vec<X400User> = Vec::new();
        for (i, u) in self.user.iter().enumerate() {
            let address = or(&u.address, format!("x400.user[{i}].address"))?;
            if users.iter().any(|o| o.address.matches(&address)) {
                return Err((
                    format!("x400.user[{i}].address"),
                    format!("duplicate {:?}", u.address),
                ));
            }
            if u.password.is_empty() {
                return Err((
                    format!("x400.user[{i}].password"),
                    "must not be empty".into(),
                ));
            }
            users.push(X400User {
                address,
                password: u.password.clone(),
            });
        }
        let mut stores = Vec::new();
        for (i, s) in self.store.iter().enumerate() {
            stores.push(X400Store {
                address_prefix: or(&s.address_prefix, format!("x400.store[{i}].address_prefix"))?,
                address: s.address.parse().map_err(|_| {
                    (
                        format!("x400.store[{i}].address"),
                        format!("{:?} is not an IP:port address", s.address),
                    )
                })?,
                password: s.password.clone(),
            });
        }
        Ok((p3_listen, users, stores))
    }
}
