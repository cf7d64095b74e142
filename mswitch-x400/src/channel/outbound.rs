//! The P1 outbound channel: transfers queued MTS-APDUs to peer MTAs.
//!
//! A job's next hop is `NextHop::Peer(mta)`, a configured peer. The channel binds (or reuses an
//! idle association to the same peer), prepares the MTS-APDU for this transfer (our trace, the
//! responsibility flags of the job's recipients) and transfers it in one activity. The peer's
//! acknowledgement means it has taken responsibility: the recipients are `Relayed`. Anything
//! else leaves them with us to retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use mswitch_core::address::{Address, ORAddress};
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    RecipientOutcome,
};
use mswitch_core::envelope::{ContentFamily, NextHop};
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::status::Status;

use super::{P1Settings, PeerMta};

/// The RFC 1006 port, for a host next hop without one.
const DEFAULT_PORT: u16 = 102;
use crate::driver::{P1Client, P1DriverError};
use crate::mta;
use crate::p1::BindCredentials;

/// Idle associations kept per peer.
const MAX_IDLE_PER_PEER: usize = 8;

/// The P1 outbound channel.
#[derive(Debug)]
pub struct P1Channel {
    descriptor: ChannelDescriptor,
    settings: Arc<P1Settings>,
    idle: Mutex<HashMap<String, Vec<(P1Client, Instant)>>>,
    clock: fn() -> Timestamp,
}

impl P1Channel {
    /// A channel named `id`.
    pub fn new(id: ChannelId, settings: Arc<P1Settings>, clock: fn() -> Timestamp) -> Self {
        P1Channel {
            descriptor: ChannelDescriptor {
                id,
                kind: ChannelKind::Outbound,
                accepts: vec![ContentFamily::X400],
            },
            settings,
            idle: Mutex::new(HashMap::new()),
            clock,
        }
    }

    fn take_idle(&self, peer: &str) -> Option<P1Client> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(peer)?;
        while let Some((client, since)) = list.pop() {
            if since.elapsed() < self.settings.timeout && client.is_usable() {
                return Some(client);
            }
        }
        None
    }

    fn put_idle(&self, peer: &str, client: P1Client) {
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(peer.to_owned()).or_default();
            list.retain(|(_, since)| since.elapsed() < self.settings.timeout);
            if list.len() < MAX_IDLE_PER_PEER {
                list.push((client, Instant::now()));
            }
        }
    }

    /// The peer for a next hop: a configured peer MTA by name, or an address given directly
    /// (`host:port`, an unauthenticated bind with our password).
    async fn peer_for(&self, hop: &NextHop) -> Result<PeerMta, String> {
        match hop {
            NextHop::Peer(name) => self
                .settings
                .peers
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no peer MTA named {name:?} is configured")),
            NextHop::Host { host, port } => {
                let port = port.unwrap_or(DEFAULT_PORT);
                let address = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|e| format!("{host}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("{host}: no address"))?;
                Ok(PeerMta {
                    name: host.clone(),
                    address,
                    password: None,
                    our_password: None,
                    tsel: Vec::new(),
                })
            }
            other => Err(format!(
                "the P1 channel needs a peer MTA or a host as next hop, not {other}"
            )),
        }
    }

    /// Transfers to one peer, reusing an idle association if there is one (and one fresh one
    /// if that turns out dead). `Err` is the status for "try elsewhere or later".
    async fn transfer_to(
        &self,
        peer: &PeerMta,
        apdu: &[u8],
        job: &DeliveryJob,
    ) -> Result<Vec<RecipientOutcome>, Status> {
        let name = &peer.name;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (mut client, reused) = match self.take_idle(name) {
                Some(c) => (c, true),
                None => match self.connect(peer).await {
                    Ok(c) => (c, false),
                    Err(e) => {
                        tracing::info!(peer = %name, address = %peer.address, error = %e,
                            "P1 association failed");
                        return Err(if e.is_permanent() {
                            Status::new(
                                454,
                                (4, 7, 0),
                                format!("peer MTA {name} refused our bind: {e}"),
                            )
                        } else {
                            Status::new(451, (4, 4, 1), format!("peer MTA {name}: {e}"))
                        });
                    }
                },
            };
            match client.transfer(apdu).await {
                Ok(()) => {
                    tracing::debug!(peer = %name, queue_id = %job.queue_id, reused,
                        "P1 transfer acknowledged");
                    self.put_idle(name, client);
                    return Ok(outcomes(
                        job,
                        DeliveryResult::Relayed(Status::new(
                            250,
                            (2, 0, 0),
                            format!("transferred to {name}"),
                        )),
                    ));
                }
                Err(e) if reused && attempts == 1 => {
                    tracing::debug!(peer = %name, error = %e,
                        "idle association failed; opening a new one");
                }
                Err(e) => {
                    tracing::info!(peer = %name, queue_id = %job.queue_id, error = %e,
                        "P1 transfer failed");
                    return Err(Status::new(
                        451,
                        (4, 4, 2),
                        format!("transfer to {name} interrupted: {e}"),
                    ));
                }
            }
        }
    }

    async fn connect(&self, peer: &PeerMta) -> Result<P1Client, P1DriverError> {
        let credentials = BindCredentials {
            mta_name: Some(self.settings.identity.mta_name.clone()),
            password: peer
                .our_password
                .clone()
                .or_else(|| self.settings.password.clone()),
        };
        P1Client::connect(
            peer.address,
            self.settings.association(Some(peer)),
            credentials,
            self.settings.timeout,
        )
        .await
    }
}

fn outcomes(job: &DeliveryJob, result: DeliveryResult) -> Vec<RecipientOutcome> {
    job.recipients
        .iter()
        .map(|&index| RecipientOutcome {
            index,
            result: result.clone(),
        })
        .collect()
}

#[async_trait]
impl Channel for P1Channel {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        // The job's next hop first, then the routing's alternates (fall-back, balanced sets).
        let mut hops = vec![job.next_hop.clone()];
        if let Some(alternates) = &self.settings.alternates
            && let Some(first) = job
                .recipients
                .first()
                .and_then(|&i| job.envelope.recipients.get(i))
                .and_then(|r| r.address.as_or_address())
        {
            for hop in alternates(first, job.queue_id.0) {
                if !hops.contains(&hop) {
                    hops.push(hop);
                }
            }
        }
        let mut peers = Vec::new();
        let mut unusable = Vec::new();
        for hop in &hops {
            match self.peer_for(hop).await {
                Ok(p) => peers.push(p),
                Err(why) => unusable.push(why),
            }
        }
        if peers.is_empty() {
            let why = unusable.join("; ");
            tracing::warn!(queue_id = %job.queue_id, hop = %job.next_hop, reason = %why,
                "no usable peer MTA for this job");
            return Ok(outcomes(
                &job,
                DeliveryResult::TryLater(Status::new(451, (4, 3, 5), why)),
            ));
        }
        let recipients: Vec<&ORAddress> = job
            .recipients
            .iter()
            .filter_map(|&i| job.envelope.recipients.get(i))
            .filter_map(|r| match &r.address {
                Address::X400(o) => Some(o.as_ref()),
                Address::Mailbox(_) => None,
            })
            .collect();
        let now = (self.clock)();
        let apdu = match mta::prepare_transfer(
            job.content.as_bytes(),
            &recipients,
            &self.settings.identity,
            now,
        ) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(queue_id = %job.queue_id, error = %e,
                    "queued MTS-APDU cannot be prepared for transfer");
                return Ok(outcomes(
                    &job,
                    DeliveryResult::Failed(Status::new(
                        554,
                        (5, 6, 0),
                        format!("the queued X.400 message is invalid: {e}"),
                    )),
                ));
            }
        };
        let mut last = None;
        for peer in &peers {
            match self.transfer_to(peer, &apdu, &job).await {
                Ok(outcome) => return Ok(outcome),
                Err(status) => {
                    if peers.len() > 1 {
                        tracing::info!(peer = %peer.name, queue_id = %job.queue_id,
                            reason = %status, "trying the next alternate MTA");
                    }
                    last = Some(status);
                }
            }
        }
        let status = last.unwrap_or_else(|| Status::new(451, (4, 4, 1), "no peer MTA"));
        Ok(outcomes(&job, DeliveryResult::TryLater(status)))
    }
}
