//! Distribution lists, expanded by a processing channel.
//!
//! A recipient routed to the list channel is a list address. The channel looks the list up
//! ([`ListSource`]: a table from the configuration, or a directory), checks that the sender may
//! post to it, and submits a new message through the submission pipeline: the same content, the
//! list's members as recipients, and the list's **owner** as the envelope sender, so that
//! bounces from members go to the owner and not to the original sender. The list recipient of
//! the original message is then reported `Expanded`.
//!
//! Loops: the new envelope carries the expansion history (`Envelope::expansions`) of the
//! original plus this list; a list already in the history is not expanded again (554 5.4.6).
//! Nested lists (a member that is itself a list) are expanded in turn, each with the history so
//! far.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use mswitch_core::address::{Address, Mailbox};
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    PipelineHandle, RecipientOutcome,
};
use mswitch_core::envelope::{ContentFamily, Envelope, Notify, Recipient, ReversePath};
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::status::Status;
use mswitch_core::submission::{ClientInfo, Service, SubmissionContext};

/// Who may post to a list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Posting {
    /// Anyone, including the null sender.
    #[default]
    Anyone,
    /// Only the list's members (by envelope sender).
    Members,
    /// Only these senders.
    Senders(Vec<Mailbox>),
}

/// A distribution list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// The list's address.
    pub address: Mailbox,
    /// Its owner: the envelope sender of the expanded message, who receives the bounces.
    pub owner: Mailbox,
    /// Its members (addresses; a member may be another list).
    pub members: Vec<Address>,
    /// Who may post.
    pub posting: Posting,
}

/// Where lists are found.
#[async_trait]
pub trait ListSource: Send + Sync {
    /// The list at `address`; `Ok(None)` when there is none; `Err` (a 4xx status) when the
    /// source cannot answer now.
    async fn list(&self, address: &Mailbox) -> Result<Option<List>, Status>;
}

/// Lists from the configuration, by address (compared case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct ListTable {
    lists: HashMap<String, List>,
}

impl ListTable {
    /// A table of `lists`.
    pub fn new(lists: impl IntoIterator<Item = List>) -> Self {
        ListTable {
            lists: lists.into_iter().map(|l| (key(&l.address), l)).collect(),
        }
    }

    /// The list addresses in the table.
    pub fn addresses(&self) -> impl Iterator<Item = &Mailbox> {
        self.lists.values().map(|l| &l.address)
    }
}

#[async_trait]
impl ListSource for ListTable {
    async fn list(&self, address: &Mailbox) -> Result<Option<List>, Status> {
        Ok(self.lists.get(&key(address)).cloned())
    }
}

fn key(m: &Mailbox) -> String {
    m.to_string().to_lowercase()
}

/// The list-expansion channel.
pub struct ListChannel {
    descriptor: ChannelDescriptor,
    source: Arc<dyn ListSource>,
    pipeline: PipelineHandle,
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

impl std::fmt::Debug for ListChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListChannel")
            .field("id", &self.descriptor.id)
            .finish_non_exhaustive()
    }
}

impl ListChannel {
    /// A channel named `id` expanding the lists of `source` and submitting the results through
    /// `pipeline`; `clock` gives the arrival time of the new messages.
    pub fn new(
        id: ChannelId,
        source: Arc<dyn ListSource>,
        pipeline: PipelineHandle,
        clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    ) -> Self {
        ListChannel {
            descriptor: ChannelDescriptor {
                id,
                kind: ChannelKind::Processing,
                accepts: vec![ContentFamily::Internet, ContentFamily::X400],
            },
            source,
            pipeline,
            clock,
        }
    }

    /// Expands one list recipient of `job`.
    async fn expand(&self, job: &DeliveryJob, index: usize) -> DeliveryResult {
        let envelope = &job.envelope;
        let Some(Address::Mailbox(address)) = envelope.recipients.get(index).map(|r| &r.address)
        else {
            return DeliveryResult::Failed(Status::new(550, (5, 1, 3), "not a list address"));
        };
        let list = match self.source.list(address).await {
            Ok(Some(list)) => list,
            Ok(None) => {
                return DeliveryResult::Failed(Status::new(
                    550,
                    (5, 1, 1),
                    format!("no list at {address}"),
                ));
            }
            Err(status) => return DeliveryResult::TryLater(status),
        };
        let this = key(&list.address);
        if envelope.expansions.iter().any(|e| e.to_lowercase() == this) {
            tracing::warn!(queue_id = %job.queue_id, list = %list.address,
                history = ?envelope.expansions, "list loop: not expanded again");
            return DeliveryResult::Failed(Status::new(
                554,
                (5, 4, 6),
                format!(
                    "list loop: {} was already expanded for this message",
                    list.address
                ),
            ));
        }
        if !may_post(&list, &envelope.originator) {
            return DeliveryResult::Failed(Status::new(
                550,
                (5, 7, 1),
                format!("the sender may not post to {}", list.address),
            ));
        }
        if list.members.is_empty() {
            return DeliveryResult::Expanded;
        }
        let now = (self.clock)();
        let mut expanded = Envelope::new(
            ReversePath::Address(Address::Mailbox(list.owner.clone())),
            now,
        );
        expanded.priority = envelope.priority;
        expanded.content_type = envelope.content_type.clone();
        expanded.size = envelope.size;
        expanded.require_tls = envelope.require_tls;
        expanded.expires = envelope.expires;
        expanded.trace = envelope.trace.clone();
        expanded.expansions = envelope.expansions.clone();
        expanded.expansions.push(list.address.to_string());
        expanded.recipients = list
            .members
            .iter()
            .map(|m| {
                let mut r = Recipient::new(m.clone());
                r.notify = Notify::unspecified();
                r
            })
            .collect();
        let ctx = SubmissionContext {
            channel: self.descriptor.id.clone(),
            service: Service::Internal,
            client: ClientInfo::default(),
            now,
        };
        let report = self
            .pipeline
            .current()
            .submit(ctx, expanded, job.content.as_bytes())
            .await;
        for (member, result) in &report.recipients {
            if let Err(refusal) = result {
                tracing::warn!(queue_id = %job.queue_id, list = %list.address,
                    member = %member, reply = %refusal.status.text,
                    "list member refused");
            }
        }
        match report.outcome {
            Ok(submitted) => {
                tracing::info!(queue_id = %job.queue_id, list = %list.address,
                    expanded_as = %submitted.id, members = submitted.envelope.recipients.len(),
                    owner = %list.owner, "list expanded");
                DeliveryResult::Expanded
            }
            Err(refusal) if refusal.is_temporary() => DeliveryResult::TryLater(refusal.status),
            Err(refusal) => DeliveryResult::Failed(refusal.status),
        }
    }
}

fn may_post(list: &List, sender: &ReversePath) -> bool {
    match &list.posting {
        Posting::Anyone => true,
        Posting::Members => sender.mailbox().is_some_and(|s| {
            list.members
                .iter()
                .any(|m| matches!(m, Address::Mailbox(mb) if key(mb) == key(s)))
        }),
        Posting::Senders(allowed) => sender
            .mailbox()
            .is_some_and(|s| allowed.iter().any(|a| key(a) == key(s))),
    }
}

#[async_trait]
impl Channel for ListChannel {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        let mut outcomes = Vec::with_capacity(job.recipients.len());
        for &index in &job.recipients {
            let result = self.expand(&job, index).await;
            outcomes.push(RecipientOutcome { index, result });
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests;
