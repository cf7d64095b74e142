//! Local delivery of X.400 messages and reports into a file store: one folder per recipient
//! O/R address (its RFC 2156 std-or text), Maildir layout (`tmp/`, `new/`, `cur/`), one file
//! per delivery holding the MTS-APDU as it was transferred (BER). A message store or a P3
//! access point reads them from there.
//!
//! A probe is answered, never stored: its recipients are reported delivered (the delivery
//! report tells the originator the message would be delivered).
//!
//! Durability is the Maildir method: write to `tmp/`, fsync, rename into `new/`, fsync the
//! directory; the recipient is reported delivered only after that.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use mswitch_core::address::{Address, ORAddress};
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    RecipientOutcome,
};
use mswitch_core::envelope::ContentFamily;
use mswitch_core::id::ChannelId;
use mswitch_core::status::Status;

use crate::maildir::{safe_component, unique_name, write_durably};

/// The X.400 store channel.
#[derive(Debug)]
pub struct X400StoreChannel {
    descriptor: ChannelDescriptor,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    hostname: String,
    seq: AtomicU64,
}

impl X400StoreChannel {
    /// A channel named `id` delivering under `root`.
    pub fn new(id: ChannelId, root: impl Into<PathBuf>, hostname: &str) -> Self {
        X400StoreChannel {
            descriptor: ChannelDescriptor {
                id,
                kind: ChannelKind::Outbound,
                accepts: vec![ContentFamily::X400],
            },
            inner: Arc::new(Inner {
                root: root.into(),
                hostname: hostname.replace(['/', ':'], "_"),
                seq: AtomicU64::new(0),
            }),
        }
    }

    /// The folder of a recipient.
    pub fn mailbox(&self, address: &ORAddress) -> PathBuf {
        mailbox(&self.inner.root, address)
    }
}

/// The folder of `address` under `root`: its std-or text with `/` written as `;`.
pub fn mailbox(root: &Path, address: &ORAddress) -> PathBuf {
    let text = address.to_string();
    let name = text.trim_matches('/').replace('/', ";");
    root.join(safe_component(&name))
}

#[async_trait]
impl Channel for X400StoreChannel {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.deliver(&job))
            .await
            .map_err(|e| ChannelError::Connection {
                peer: "x400-store".into(),
                reason: format!("delivery task failed: {e}"),
            })
    }
}

impl Inner {
    fn deliver(&self, job: &DeliveryJob) -> Vec<RecipientOutcome> {
        let content = job.content.as_bytes();
        if mswitch_x400::mta::kind_of(content) == Some(mswitch_x400::mta::ApduKind::Probe) {
            // A probe asks whether the message would be delivered; it is never delivered
            // itself. The recipient's mailbox exists, so: yes (the delivery report says so).
            return job
                .recipients
                .iter()
                .map(|&index| RecipientOutcome {
                    index,
                    result: DeliveryResult::Delivered(Status::new(
                        250,
                        (2, 0, 0),
                        "probe: the message would be delivered",
                    )),
                })
                .collect();
        }
        job.recipients
            .iter()
            .map(|&index| {
                let result = match job.envelope.recipients.get(index).map(|r| &r.address) {
                    Some(Address::X400(or)) => {
                        let dir = mailbox(&self.root, or);
                        let name = format!("{}.p1", unique_name(&self.seq, &self.hostname));
                        match write_durably(&dir, &name, &[], content) {
                            Ok(path) => {
                                tracing::debug!(path = %path.display(), "X.400 store delivery");
                                DeliveryResult::Delivered(Status::new(
                                    250,
                                    (2, 0, 0),
                                    "delivered to the X.400 store",
                                ))
                            }
                            Err(e) => {
                                tracing::warn!(folder = %dir.display(), error = %e,
                                    "X.400 store write failed");
                                DeliveryResult::TryLater(Status::new(
                                    451,
                                    (4, 3, 0),
                                    format!("cannot write to the X.400 store: {e}"),
                                ))
                            }
                        }
                    }
                    _ => DeliveryResult::Failed(Status::new(
                        550,
                        (5, 1, 3),
                        "not an X.400 O/R address",
                    )),
                };
                RecipientOutcome { index, result }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use mswitch_core::envelope::{Envelope, NextHop, Recipient, ReversePath};
    use mswitch_core::id::{QueueId, Timestamp};
    use mswitch_core::store::Content;
    use mswitch_testkit::TempDir;

    use super::*;

    fn job(content: Vec<u8>, to: &[&str]) -> DeliveryJob {
        let mut env = Envelope::new(ReversePath::Null, Timestamp(0));
        for t in to {
            env.recipients
                .push(Recipient::new(Address::parse(t).expect("address")));
        }
        DeliveryJob {
            queue_id: QueueId(9),
            envelope: Arc::new(env),
            content: Content::from(content),
            recipients: (0..to.len()).collect(),
            next_hop: NextHop::Local,
            attempt: 1,
        }
    }

    #[test]
    fn delivers_one_file_per_recipient_folder_and_never_a_probe() {
        let dir = TempDir::new("mswitch-x400store-test");
        let channel = X400StoreChannel::new(ChannelId::new("x400"), dir.path(), "mta/1");
        let jones = "/C=GB/ADMD= /PRMD=P/O=Ex/S=Jones/";
        // A message (outer tag [0]) is written; a mailbox recipient is refused.
        let out = channel
            .inner
            .deliver(&job(vec![0xA0, 0x00], &[jones, "bob@example.org"]));
        assert!(matches!(out[0].result, DeliveryResult::Delivered(_)));
        assert!(matches!(out[1].result, DeliveryResult::Failed(_)));
        let folder = channel.mailbox(&jones.parse().expect("or"));
        assert!(
            folder.ends_with("C=GB;ADMD= ;PRMD=P;O=Ex;S=Jones"),
            "{folder:?}"
        );
        let files: Vec<_> = std::fs::read_dir(folder.join("new"))
            .expect("new/")
            .flatten()
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::read(files[0].path()).expect("read"), [0xA0, 0x00]);
        // A probe (outer tag [2]) is answered delivered and not written.
        let out = channel.inner.deliver(&job(vec![0xA2, 0x00], &[jones]));
        assert!(matches!(out[0].result, DeliveryResult::Delivered(_)));
        assert_eq!(
            std::fs::read_dir(folder.join("new")).expect("new/").count(),
            1
        );
    }
}
