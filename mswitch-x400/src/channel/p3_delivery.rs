//! The P3 delivery channel: delivers queued messages and reports to local MTS users over P3.
//!
//! For each recipient of a job (a local O/R address), in order:
//!
//! 1. a user agent bound to the P3 listener with that address ([`BoundUsers`]) gets a
//!    `message-delivery` or `report-delivery` on its association;
//! 2. otherwise the message store configured for the address ([`MessageStore`]) gets it: the
//!    channel opens an association to it in `mts-forced-access-88` (the MTA binds), invokes the
//!    deliveries of the job and releases;
//! 3. otherwise the recipient is tried later (the user agent may bind meanwhile).
//!
//! A recipient is delivered when the MTS user returns the operation's result. A probe is
//! never delivered: its recipients are reported delivered at once (the QMGR then sends the
//! delivery report that answers the probe).

use std::sync::Arc;

use async_trait::async_trait;
use mswitch_core::address::{Address, ORAddress};
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    RecipientOutcome,
};
use mswitch_core::envelope::ContentFamily;
use mswitch_core::id::{ChannelId, QueueId, Timestamp};
use mswitch_core::status::Status;
use tokio::sync::oneshot;

use super::p3::{BoundUsers, Delivery, MessageStore, NotSent, P3Settings};
use crate::driver::{P3Client, P3Outcome};
use crate::mta;
use crate::mts::MtsApdu;
use crate::p3::{MtsBindArgument, ObjectName, P3Context, P3Operation};

/// The P3 delivery channel.
#[derive(Debug)]
pub struct P3DeliveryChannel {
    descriptor: ChannelDescriptor,
    settings: Arc<P3Settings>,
    users: Arc<BoundUsers>,
    clock: fn() -> Timestamp,
}

/// What to do for one recipient.
enum Plan {
    /// Done already (a probe, a report with nothing the originator asked for, or a failure).
    Done(DeliveryResult),
    /// Deliver this operation.
    Deliver(P3Operation),
}

fn delivered(text: &str) -> DeliveryResult {
    DeliveryResult::Delivered(Status::new(250, (2, 0, 0), text))
}

impl P3DeliveryChannel {
    /// A channel named `id`; `users` is the registry of the P3 listener.
    pub fn new(
        id: ChannelId,
        settings: Arc<P3Settings>,
        users: Arc<BoundUsers>,
        clock: fn() -> Timestamp,
    ) -> Self {
        P3DeliveryChannel {
            descriptor: ChannelDescriptor {
                id,
                kind: ChannelKind::Outbound,
                accepts: vec![ContentFamily::X400],
            },
            settings,
            users,
            clock,
        }
    }

    /// The operation for `recipient`, from the queued MTS-APDU.
    fn plan(&self, apdu: &MtsApdu, recipient: &ORAddress, now: Timestamp) -> Plan {
        match apdu {
            MtsApdu::Probe(_) => Plan::Done(delivered("probe: the message would be delivered")),
            MtsApdu::Message(m) => match mta::delivery::message_delivery(m, recipient, now) {
                Ok(Some(arg)) => Plan::Deliver(P3Operation::MessageDelivery(Box::new(arg))),
                Ok(None) => Plan::Done(DeliveryResult::Failed(Status::new(
                    554,
                    (5, 6, 0),
                    "the queued message does not name this recipient",
                ))),
                Err(e) => Plan::Done(DeliveryResult::Failed(Status::new(
                    554,
                    (5, 6, 0),
                    format!("the queued message cannot be delivered over P3: {e}"),
                ))),
            },
            MtsApdu::Report(r) => match mta::delivery::report_delivery(r) {
                Some(arg) => Plan::Deliver(P3Operation::ReportDelivery(Box::new(arg))),
                None => Plan::Done(delivered(
                    "report: the originator asked to be told of none of its recipients",
                )),
            },
        }
    }

    /// Delivers on the association of a bound user agent (`key`: the queued message and the
    /// recipient); gives the operation back when none is bound. A delivery the user agent's
    /// delivery controls hold is tried later.
    async fn to_user_agent(
        &self,
        recipient: &ORAddress,
        key: (QueueId, usize),
        operation: P3Operation,
    ) -> Result<DeliveryResult, P3Operation> {
        let (done, answer) = oneshot::channel();
        match self
            .users
            .try_send(recipient, key, Delivery { operation, done })
        {
            Ok(()) => {}
            Err(NotSent::NotBound(d)) => return Err(d.operation),
            Err(NotSent::Held(hold)) => {
                tracing::info!(queue_id = %key.0, recipient = %recipient, reason = %hold,
                    "P3 delivery held by the user agent's delivery controls");
                return Ok(DeliveryResult::TryLater(Status::new(
                    451,
                    (4, 2, 1),
                    format!("held by the user agent's delivery controls: {hold}"),
                )));
            }
        }
        Ok(
            match tokio::time::timeout(self.settings.timeout, answer).await {
                Ok(Ok(Ok(()))) => {
                    self.users.delivered(recipient, key);
                    tracing::info!(recipient = %recipient, "P3 delivery to the user agent");
                    delivered("delivered to the user agent over P3")
                }
                Ok(Ok(Err(reason))) => {
                    tracing::info!(recipient = %recipient, reason = %reason,
                        "P3 delivery to the user agent failed");
                    DeliveryResult::TryLater(Status::new(
                        451,
                        (4, 2, 0),
                        format!("user agent: {reason}"),
                    ))
                }
                Ok(Err(_)) => DeliveryResult::TryLater(Status::new(
                    451,
                    (4, 2, 0),
                    "the user agent's association ended",
                )),
                Err(_) => DeliveryResult::TryLater(Status::new(
                    451,
                    (4, 4, 2),
                    "the user agent did not answer in time",
                )),
            },
        )
    }
}

/// An association to a message store, opened for one job.
struct StoreSession {
    address: std::net::SocketAddr,
    client: Result<P3Client, String>,
}

impl StoreSession {
    async fn open(settings: &P3Settings, store: &MessageStore) -> StoreSession {
        let password = if store.password.is_empty() {
            settings.password.clone()
        } else {
            store.password.clone()
        };
        let bind = MtsBindArgument::simple(
            ObjectName::Mta(settings.identity.mta_name.clone()),
            password,
        );
        let client = P3Client::connect(
            store.address,
            settings.association(),
            bind,
            P3Context::ForcedAccess88,
            settings.timeout,
        )
        .await
        .map_err(|e| e.to_string());
        if let Err(e) = &client {
            tracing::info!(store = %store.address, error = %e, "P3 association to the message store failed");
        }
        StoreSession {
            address: store.address,
            client,
        }
    }

    async fn deliver(&mut self, operation: P3Operation) -> DeliveryResult {
        let client = match &mut self.client {
            Ok(c) => c,
            Err(e) => {
                return DeliveryResult::TryLater(Status::new(
                    451,
                    (4, 4, 1),
                    format!("message store {}: {e}", self.address),
                ));
            }
        };
        match client.invoke(operation).await {
            Ok(P3Outcome::Result(_)) => delivered("delivered to the message store over P3"),
            Ok(P3Outcome::Error(e)) => DeliveryResult::TryLater(Status::new(
                451,
                (4, 2, 0),
                format!("message store {}: error {}", self.address, e.code),
            )),
            Ok(P3Outcome::Rejected(p)) => DeliveryResult::Failed(Status::new(
                554,
                (5, 6, 0),
                format!(
                    "message store {} rejected the delivery: {p:?}",
                    self.address
                ),
            )),
            Err(e) => {
                let status = Status::new(
                    451,
                    (4, 4, 2),
                    format!("message store {}: {e}", self.address),
                );
                self.client = Err(e.to_string());
                DeliveryResult::TryLater(status)
            }
        }
    }

    async fn close(self) {
        if let Ok(c) = self.client {
            let _ = c.release().await;
        }
    }
}

#[async_trait]
impl Channel for P3DeliveryChannel {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        let now = (self.clock)();
        let apdu = match MtsApdu::decode(job.content.as_bytes()) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(queue_id = %job.queue_id, error = %e,
                    "queued MTS-APDU cannot be decoded for P3 delivery");
                let status = Status::new(554, (5, 6, 0), format!("invalid queued X.400 data: {e}"));
                return Ok(job
                    .recipients
                    .iter()
                    .map(|&index| RecipientOutcome {
                        index,
                        result: DeliveryResult::Failed(status.clone()),
                    })
                    .collect());
            }
        };
        let mut out = Vec::with_capacity(job.recipients.len());
        // One association per message store, opened on first use and released at the end.
        let mut stores: Vec<(usize, StoreSession)> = Vec::new();
        for &index in &job.recipients {
            let recipient = match job.envelope.recipients.get(index).map(|r| &r.address) {
                Some(Address::X400(or)) => or.as_ref().clone(),
                _ => {
                    out.push(RecipientOutcome {
                        index,
                        result: DeliveryResult::Failed(Status::new(
                            550,
                            (5, 1, 3),
                            "not an X.400 O/R address",
                        )),
                    });
                    continue;
                }
            };
            let operation = match self.plan(&apdu, &recipient, now) {
                Plan::Done(result) => {
                    out.push(RecipientOutcome { index, result });
                    continue;
                }
                Plan::Deliver(op) => op,
            };
            let operation = match self
                .to_user_agent(&recipient, (job.queue_id, index), operation)
                .await
            {
                Ok(result) => {
                    out.push(RecipientOutcome { index, result });
                    continue;
                }
                Err(op) => op,
            };
            let Some((store_index, store)) = self
                .settings
                .stores
                .iter()
                .enumerate()
                .find(|(_, s)| s.holds(&recipient))
            else {
                tracing::debug!(queue_id = %job.queue_id, recipient = %recipient,
                    "no user agent bound and no message store: later");
                out.push(RecipientOutcome {
                    index,
                    result: DeliveryResult::TryLater(Status::new(
                        451,
                        (4, 2, 1),
                        "the user agent is not bound and has no message store",
                    )),
                });
                continue;
            };
            if !stores.iter().any(|(i, _)| *i == store_index) {
                stores.push((store_index, StoreSession::open(&self.settings, store).await));
            }
            let result = match stores.iter_mut().find(|(i, _)| *i == store_index) {
                Some((_, session)) => session.deliver(operation).await,
                None => DeliveryResult::TryLater(Status::new(451, (4, 3, 0), "no session")),
            };
            if matches!(result, DeliveryResult::Delivered(_)) {
                tracing::info!(queue_id = %job.queue_id, recipient = %recipient,
                    "P3 delivery to the message store");
            }
            out.push(RecipientOutcome { index, result });
        }
        for (_, session) in stores {
            session.close().await;
        }
        Ok(out)
    }
}
