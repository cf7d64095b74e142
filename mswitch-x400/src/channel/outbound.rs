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

use super::P1Settings;
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

    async fn connect(&self, peer: &super::PeerMta) -> Result<P1Client, P1DriverError> {
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
        let NextHop::Peer(name) = &job.next_hop else {
            return Ok(outcomes(
                &job,
                DeliveryResult::Failed(Status::new(
                    554,
                    (5, 3, 5),
                    format!(
                        "the P1 channel needs a peer MTA as next hop, not {}",
                        job.next_hop
                    ),
                )),
            ));
        };
        let Some(peer) = self.settings.peers.get(name) else {
            return Ok(outcomes(
                &job,
                DeliveryResult::TryLater(Status::new(
                    451,
                    (4, 3, 5),
                    format!("no peer MTA named {name:?} is configured"),
                )),
            ));
        };
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
        // An idle association first; if it turns out dead, one fresh one.
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
                        let status = if e.is_permanent() {
                            Status::new(
                                554,
                                (5, 7, 0),
                                format!("peer MTA {name} refused our bind: {e}"),
                            )
                        } else {
                            Status::new(451, (4, 4, 1), format!("peer MTA {name}: {e}"))
                        };
                        // A refused bind is a configuration problem on one side: retry, so
                        // that it can be mended without losing the message.
                        return Ok(outcomes(&job, DeliveryResult::TryLater(status)));
                    }
                },
            };
            match client.transfer(&apdu).await {
                Ok(()) => {
                    tracing::debug!(peer = %name, queue_id = %job.queue_id, reused,
                        "P1 transfer acknowledged");
                    self.put_idle(name, client);
                    return Ok(outcomes(
                        &job,
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
                    return Ok(outcomes(
                        &job,
                        DeliveryResult::TryLater(Status::new(
                            451,
                            (4, 4, 2),
                            format!("transfer to {name} interrupted: {e}"),
                        )),
                    ));
                }
            }
        }
    }
}
