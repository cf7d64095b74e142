//! The X.400 channels (tokio): the P1 listener that takes transfers from peer MTAs into the
//! submission pipeline, and the outbound channel the QMGR drives to transfer to them; the P3
//! listener where user agents bind to submit and take deliveries, and the P3 delivery channel
//! that delivers to them (or to their message store).
//!
//! They speak through [`crate::driver`] and apply the MTA rules of [`crate::mta`]: trace,
//! loop detection, responsibility, X.400 reports.

mod dispatch;
mod inbound;
mod link;
mod outbound;
mod p3;
mod p3_controls;
mod p3_delivery;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mswitch_core::address::ORAddress;
use mswitch_core::envelope::NextHop;

pub use inbound::{P1Listener, transfer_handler};
pub use link::Links;
pub use outbound::P1Channel;
pub use p3::{BoundUsers, MessageStore, P3Listener, P3Settings, P3User};
pub use p3_delivery::P3DeliveryChannel;

use crate::mta::MtaIdentity;
use crate::p1::{AssociationConfig, DialogueMode};

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
    /// The dialogue mode we propose when we open an association to it: two-way-alternate
    /// lets it send to us on the same association.
    pub dialogue_mode: DialogueMode,
}

/// The next hops to fall back along for a recipient, in order (the first is the routing's
/// first choice); the `u64` is a key for load balancing (the queue id).
pub type Alternates = Arc<dyn Fn(&ORAddress, u64) -> Vec<NextHop> + Send + Sync>;

/// What both P1 channels share: who we are and who our peers are.
#[derive(Clone)]
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
    /// Alternate next hops (routing-tree alternates), tried in order when the job's next hop
    /// cannot be reached. `None`: the job's next hop only.
    pub alternates: Option<Alternates>,
}

impl std::fmt::Debug for P1Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P1Settings")
            .field("identity", &self.identity)
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .field("require_authentication", &self.require_authentication)
            .field("max_apdu", &self.max_apdu)
            .field("timeout", &self.timeout)
            .field("alternates", &self.alternates.is_some())
            .finish_non_exhaustive()
    }
}

impl P1Settings {
    /// The association settings for talking to `peer` (or for a responder, `None`).
    pub(crate) fn association(&self, peer: Option<&PeerMta>) -> AssociationConfig {
        AssociationConfig {
            local_tsel: self.tsel.clone(),
            remote_tsel: peer.map(|p| p.tsel.clone()).unwrap_or_default(),
            dialogue_mode: peer.map(|p| p.dialogue_mode).unwrap_or_default(),
            max_apdu: self.max_apdu,
            ..AssociationConfig::default()
        }
    }
}

/// A bound listening socket, served once: what the P1 and P3 listeners share.
#[derive(Debug)]
pub(crate) struct Listening {
    socket: std::sync::Mutex<Option<tokio::net::TcpListener>>,
    address: SocketAddr,
}

impl Listening {
    pub(crate) fn new(socket: tokio::net::TcpListener) -> std::io::Result<Self> {
        Ok(Listening {
            address: socket.local_addr()?,
            socket: std::sync::Mutex::new(Some(socket)),
        })
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// Accepts connections until `shutdown`, handing each (with no Nagle delay) to `each`.
    pub(crate) async fn accept_each(
        &self,
        id: &mswitch_core::id::ChannelId,
        shutdown: &mswitch_core::channel::Shutdown,
        mut each: impl FnMut(tokio::net::TcpStream, SocketAddr),
    ) -> Result<(), mswitch_core::channel::ChannelError> {
        let socket = self
            .socket
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| {
                mswitch_core::channel::ChannelError::Config(format!(
                    "listener {id} is already serving"
                ))
            })?;
        let accept = async {
            loop {
                match socket.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        each(stream, peer);
                    }
                    Err(e) => {
                        tracing::warn!(listener = %self.address, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        };
        tokio::select! {
            () = accept => Ok(()),
            () = shutdown.wait() => Ok(()),
        }
    }
}
