//! The P1 outbound channel: transfers queued MTS-APDUs to peer MTAs.
//!
//! A job's next hop is `NextHop::Peer(mta)`, a configured peer (or a host given directly). The
//! channel prepares the MTS-APDU for this transfer (the responsibility flags of the job's
//! recipients) and hands it to an idle link to that peer — an association we opened, or one the
//! peer opened in two-way-alternate mode — or opens a new association for it. The peer's
//! acknowledgement means it has taken responsibility: the recipients are `Relayed`. Anything
//! else leaves them with us to retry, at the routing's alternates first.

use std::sync::Arc;

use tokio::sync::oneshot;

use async_trait::async_trait;
use mswitch_core::address::{Address, ORAddress};
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    RecipientOutcome,
};
use mswitch_core::envelope::{ContentFamily, NextHop};
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::status::Status;

use super::link::{self, Job, LinkStart, Links};
use super::{P1Settings, PeerMta};

/// The RFC 1006 port, for a host next hop without one.
const DEFAULT_PORT: u16 = 102;
use crate::driver::P1Handler;
use crate::mta;
use crate::p1::{Association, BindCredentials};

/// The P1 outbound channel.
pub struct P1Channel {
    descriptor: ChannelDescriptor,
    settings: Arc<P1Settings>,
    links: Arc<Links>,
    handler: Arc<dyn P1Handler>,
    clock: fn() -> Timestamp,
}

impl std::fmt::Debug for P1Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P1Channel")
            .field("id", &self.descriptor.id)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl P1Channel {
    /// A channel named `id`. `links` is shared with the P1 listener; `handler` takes what peers
    /// send back on the associations this channel opens (see [`super::transfer_handler`]).
    pub fn new(
        id: ChannelId,
        settings: Arc<P1Settings>,
        links: Arc<Links>,
        handler: Arc<dyn P1Handler>,
        clock: fn() -> Timestamp,
    ) -> Self {
        P1Channel {
            descriptor: ChannelDescriptor {
                id,
                kind: ChannelKind::Outbound,
                accepts: vec![ContentFamily::X400],
            },
            settings,
            links,
            handler,
            clock,
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
                    dialogue_mode: crate::p1::DialogueMode::Monologue,
                })
            }
            other => Err(format!(
                "the P1 channel needs a peer MTA or a host as next hop, not {other}"
            )),
        }
    }

    /// Transfers to one peer on an idle link, or on a new association. `Err` is the status
    /// for "try elsewhere or later".
    async fn transfer_to(
        &self,
        peer: &PeerMta,
        apdu: &[u8],
        job: &DeliveryJob,
    ) -> Result<Vec<RecipientOutcome>, Status> {
        let name = &peer.name;
        let (done, result) = oneshot::channel();
        let transfer = Job {
            apdu: apdu.to_vec(),
            done,
        };
        let reused = match self.links.try_send(name, transfer) {
            Ok(()) => true,
            Err(transfer) => {
                self.open(peer, transfer).await.map_err(|e| {
                    tracing::info!(peer = %name, address = %peer.address, error = %e,
                        "P1 association failed");
                    Status::new(451, (4, 4, 1), format!("peer MTA {name}: {e}"))
                })?;
                false
            }
        };
        match result.await {
            Ok(Ok(())) => {
                tracing::debug!(peer = %name, queue_id = %job.queue_id, reused,
                    "P1 transfer acknowledged");
                Ok(outcomes(
                    job,
                    DeliveryResult::Relayed(Status::new(
                        250,
                        (2, 0, 0),
                        format!("transferred to {name}"),
                    )),
                ))
            }
            Ok(Err(reason)) => {
                tracing::info!(peer = %name, queue_id = %job.queue_id, reason = %reason,
                    "P1 transfer failed");
                Err(Status::new(
                    451,
                    (4, 4, 2),
                    format!("transfer to {name} failed: {reason}"),
                ))
            }
            Err(_) => Err(Status::new(
                451,
                (4, 4, 2),
                format!("transfer to {name} interrupted"),
            )),
        }
    }

    /// Opens an association to `peer` for `first`, on a task of its own.
    async fn open(&self, peer: &PeerMta, first: Job) -> Result<(), String> {
        let stream = match tokio::time::timeout(
            self.settings.timeout,
            tokio::net::TcpStream::connect(peer.address),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("connect {}: {e}", peer.address)),
            Err(_) => return Err(format!("connect {}: timed out", peer.address)),
        };
        let _ = stream.set_nodelay(true);
        let credentials = BindCredentials {
            mta_name: Some(self.settings.identity.mta_name.clone()),
            password: peer
                .our_password
                .clone()
                .or_else(|| self.settings.password.clone()),
        };
        let assoc = Association::initiator(self.settings.association(Some(peer)), credentials)
            .map_err(|e| e.to_string())?;
        let start = LinkStart {
            peer: peer.address,
            peer_name: Some(peer.name.clone()),
            first: Some(first),
            timeout: self.settings.timeout,
            idle: self.settings.timeout,
        };
        tokio::spawn(link::run(
            stream,
            assoc,
            self.handler.clone(),
            self.links.clone(),
            start,
        ));
        Ok(())
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
