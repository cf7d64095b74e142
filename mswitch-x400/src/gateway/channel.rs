//! The gateway as a processing channel: messages routed to it are converted and submitted
//! again, on the other side, through the submission pipeline.
//!
//! - Internet content: a message becomes a P1 message for its recipients (mapped to O/R
//!   addresses); a DSN (null sender) becomes an X.400 report.
//! - X.400 content: a message becomes an Internet message; a report becomes a DSN; a probe is
//!   answered "would be delivered" (its report comes from the QMGR's notice path).
//!
//! The converted message is durable in the queue before the original recipients are marked
//! done: `Relayed` (the other side reports from now on), or `Failed` with the reason when a
//! recipient cannot be converted or the pipeline refuses it.

use std::sync::Arc;

use async_trait::async_trait;
use mswitch_core::address::Address;
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    PipelineHandle, RecipientOutcome,
};
use mswitch_core::envelope::{ContentFamily, ReversePath};
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::status::Status;
use mswitch_core::submission::{ClientInfo, Service, SubmissionContext};

use super::address::MixerTables;
use super::convert::{self, Converted, GatewayError};
use super::reports;
use crate::mta::{self, ApduKind, MtaIdentity};

/// The MIXER gateway channel.
pub struct GatewayChannel {
    descriptor: ChannelDescriptor,
    tables: Arc<MixerTables>,
    identity: MtaIdentity,
    hostname: String,
    pipeline: PipelineHandle,
    clock: fn() -> Timestamp,
}

impl std::fmt::Debug for GatewayChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayChannel")
            .field("id", &self.descriptor.id)
            .field("gateway_domain", &self.tables.gateway_domain().to_string())
            .finish_non_exhaustive()
    }
}

impl GatewayChannel {
    /// A gateway named `id`: `tables` map addresses, `identity` is the MTA it speaks for in
    /// X.400, `hostname` the reporting MTA of the DSNs it writes.
    pub fn new(
        id: ChannelId,
        tables: Arc<MixerTables>,
        identity: MtaIdentity,
        hostname: String,
        pipeline: PipelineHandle,
        clock: fn() -> Timestamp,
    ) -> Self {
        GatewayChannel {
            descriptor: ChannelDescriptor {
                id,
                kind: ChannelKind::Processing,
                accepts: vec![ContentFamily::Internet, ContentFamily::X400],
            },
            tables,
            identity,
            hostname,
            pipeline,
            clock,
        }
    }

    fn convert(
        &self,
        job: &DeliveryJob,
        now: Timestamp,
    ) -> Result<Option<Converted>, GatewayError> {
        let content = job.content.as_bytes();
        match job.envelope.content_type.family() {
            ContentFamily::Internet => {
                if job.envelope.originator.is_null() {
                    // A DSN about a message that came from X.400, to its originator.
                    let to = job
                        .recipients
                        .first()
                        .and_then(|&i| job.envelope.recipients.get(i))
                        .and_then(|r| r.address.as_mailbox())
                        .ok_or_else(|| GatewayError::Content("no recipient".into()))?;
                    reports::dsn_to_report(to, content, &self.tables, &self.identity, now)
                } else {
                    convert::to_x400(
                        &job.envelope,
                        content,
                        &job.recipients,
                        &self.tables,
                        &self.identity,
                        now,
                    )
                    .map(Some)
                }
            }
            ContentFamily::X400 => match mta::kind_of(content) {
                Some(ApduKind::Message) => {
                    let rcpts: Vec<_> = job
                        .recipients
                        .iter()
                        .filter_map(|&i| {
                            let r = job.envelope.recipients.get(i)?;
                            Some((i, r.address.as_or_address()?, r.notify))
                        })
                        .collect();
                    convert::to_internet(content, &rcpts, &self.tables, now).map(Some)
                }
                Some(ApduKind::Report) => {
                    reports::report_to_dsn(content, &self.tables, &self.hostname, job.queue_id, now)
                }
                Some(ApduKind::Probe) | None => Ok(None),
            },
        }
    }
}

fn all(job: &DeliveryJob, result: DeliveryResult) -> Vec<RecipientOutcome> {
    job.recipients
        .iter()
        .map(|&index| RecipientOutcome {
            index,
            result: result.clone(),
        })
        .collect()
}

fn refusal(e: &GatewayError) -> Status {
    match e {
        GatewayError::Loop => Status::new(554, (5, 4, 6), e.to_string()),
        GatewayError::Address { .. } => Status::new(550, (5, 1, 3), e.to_string()),
        GatewayError::Content(_) | GatewayError::Unparsable => {
            Status::new(554, (5, 6, 3), format!("conversion not performed: {e}"))
        }
        _ => Status::new(554, (5, 6, 0), e.to_string()),
    }
}

#[async_trait]
impl Channel for GatewayChannel {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        let now = (self.clock)();
        let converted = match self.convert(&job, now) {
            Ok(Some(c)) => c,
            Ok(None) => {
                // A probe (would be delivered), or a report with nobody to tell.
                return Ok(all(
                    &job,
                    DeliveryResult::Delivered(Status::new(250, (2, 0, 0), "gateway")),
                ));
            }
            Err(e) => {
                tracing::warn!(queue_id = %job.queue_id, error = %e, "gateway conversion failed");
                return Ok(all(&job, DeliveryResult::Failed(refusal(&e))));
            }
        };
        let is_notice =
            converted.envelope.originator == ReversePath::Null || job.envelope.originator.is_null();
        let ctx = SubmissionContext {
            channel: self.descriptor.id.clone(),
            service: Service::Internal,
            client: ClientInfo {
                authenticated: Some(self.descriptor.id.to_string()),
                ..ClientInfo::default()
            },
            now,
        };
        let report = self
            .pipeline
            .current()
            .submit(ctx, converted.envelope.clone(), &converted.content)
            .await;
        let mut outcomes = Vec::new();
        for (i, e) in &converted.refused {
            outcomes.push(RecipientOutcome {
                index: *i,
                result: DeliveryResult::Failed(refusal(e)),
            });
        }
        match &report.outcome {
            Err(r) if r.is_temporary() => {
                return Ok(all(&job, DeliveryResult::TryLater(r.status.clone())));
            }
            Ok(s) => tracing::info!(queue_id = %job.queue_id, converted = %s.id,
                family = ?converted.envelope.content_type.family(), "gateway: converted"),
            Err(r) => tracing::info!(queue_id = %job.queue_id, reply = %r.status,
                "gateway: the converted message was refused"),
        }
        if is_notice || converted.origin.is_empty() {
            // A report or DSN: done once queued (or refused for good).
            let result = match &report.outcome {
                Ok(_) => DeliveryResult::Delivered(Status::new(250, (2, 0, 0), "converted")),
                Err(r) => DeliveryResult::Failed(r.status.clone()),
            };
            outcomes.extend(all(&job, result));
            return Ok(outcomes);
        }
        for (n, (_, result)) in report.recipients.iter().enumerate() {
            let Some(&index) = converted.origin.get(n) else {
                continue;
            };
            let r = match result {
                Ok(_) => DeliveryResult::Relayed(Status::new(
                    250,
                    (2, 0, 0),
                    match &converted.envelope.recipients[n].address {
                        Address::X400(_) => "converted to X.400",
                        Address::Mailbox(_) => "converted to Internet mail",
                    },
                )),
                Err(refused) if refused.is_temporary() => {
                    DeliveryResult::TryLater(refused.status.clone())
                }
                Err(refused) => DeliveryResult::Failed(refused.status.clone()),
            };
            outcomes.push(RecipientOutcome { index, result: r });
        }
        Ok(outcomes)
    }
}
