//! The P1 channels (tokio): the listener that takes transfers from peer MTAs into the
//! submission pipeline, and the outbound channel the QMGR drives to transfer to them.
//!
//! Both speak through [`crate::driver`] and apply the MTA rules of [`crate::mta`]: trace,
//! loop detection, responsibility, X.400 reports.

mod inbound;
mod outbound;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

pub use inbound::P1Listener;
pub use outbound::P1Channel;

use crate::mta::MtaIdentity;
use crate::p1::AssociationConfig;

/// A peer MTA, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMta {
    /// Its `MTAName`.
    pub name: String,
    /// Its P1 listener.
    pub address: SocketAddr,
    /// The password it must present when it binds to us (`None`: none required).
    pub password: Option<Vec<u8>>,
    /// The password we present to it.
    pub our_password: Option<Vec<u8>>,
    /// Its transport selector.
    pub tsel: Vec<u8>,
}

/// What both P1 channels share: who we are and who our peers are.
#[derive(Debug, Clone)]
pub struct P1Settings {
    /// This MTA.
    pub identity: MtaIdentity,
    /// Our password, presented to peers that have no `our_password`.
    pub password: Option<Vec<u8>>,
    /// Our transport selector.
    pub tsel: Vec<u8>,
    /// Peers by `MTAName`.
    pub peers: HashMap<String, PeerMta>,
    /// Whether a peer must bind with a configured name and password. Without it, unknown
    /// peers may bind unauthenticated (their transfers are then not trusted to relay).
    pub require_authentication: bool,
    /// Largest MTS-APDU accepted.
    pub max_apdu: usize,
    /// How long to wait for a peer at each step, and how long an idle association is kept.
    pub timeout: Duration,
}

impl P1Settings {
    /// The association settings for talking to `peer` (or for a responder, `None`).
    pub(crate) fn association(&self, peer: Option<&PeerMta>) -> AssociationConfig {
        AssociationConfig {
            local_tsel: self.tsel.clone(),
            remote_tsel: peer.map(|p| p.tsel.clone()).unwrap_or_default(),
            max_apdu: self.max_apdu,
            ..AssociationConfig::default()
        }
    }
}
