//! Local delivery into Maildir folders: `<root>/<domain>/<local part>/Maildir/`.
//!
//! Each delivery writes the message (with `Return-Path:` and `Delivered-To:` prepended) to
//! `tmp/`, fsyncs it, renames it into `new/` and fsyncs the directory, the method of the
//! Maildir specification: the recipient is reported delivered only once the message is
//! durable in the mailbox. File names are `<secs>.M<micros>P<pid>Q<n>.<host>`, unique on one
//! host.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mswitch_core::address::Address;
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    RecipientOutcome,
};
use mswitch_core::envelope::ContentFamily;
use mswitch_core::id::ChannelId;
use mswitch_core::status::Status;

/// The Maildir channel.
#[derive(Debug)]
pub struct MaildirChannel {
    descriptor: ChannelDescriptor,
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    hostname: String,
    seq: AtomicU64,
    /// Sub-addressing: `joe+tag` is delivered to joe's folder `tag`.
    separator: Option<char>,
}

impl MaildirChannel {
    /// A channel named `id` delivering under `root`.
    pub fn new(id: ChannelId, root: impl Into<PathBuf>, hostname: &str) -> Self {
        MaildirChannel {
            descriptor: ChannelDescriptor {
                id,
                kind: ChannelKind::Outbound,
                accepts: vec![ContentFamily::Internet],
            },
            inner: Arc::new(Inner {
                root: root.into(),
                // A '/' or ':' would break the file name (':' starts the info part).
                hostname: hostname.replace(['/', ':'], "_"),
                seq: AtomicU64::new(0),
                separator: None,
            }),
        }
    }

    /// Files mail for `user<separator>tag` into the folder `tag` of `user`'s Maildir (a
    /// Maildir++ folder, `Maildir/.tag/`), as sub-addressing asks. Without it, the whole local
    /// part names the mailbox.
    pub fn with_subaddress_separator(mut self, separator: Option<char>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.separator = separator;
        }
        self
    }

    /// The Maildir of `local@domain`.
    pub fn maildir(&self, local: &str, domain: &str) -> PathBuf {
        self.inner.maildir(local, domain)
    }
}

impl Inner {
    fn maildir(&self, local: &str, domain: &str) -> PathBuf {
        self.root
            .join(safe_component(&domain.to_ascii_lowercase()))
            .join(safe_component(local))
            .join("Maildir")
    }

    fn deliver_one(&self, dir: &Path, header: &[u8], content: &[u8]) -> io::Result<PathBuf> {
        let name = unique_name(&self.seq, &self.hostname);
        write_durably(dir, &name, header, content)
    }
}

/// A Maildir file name, `<secs>.M<micros>P<pid>Q<n>.<host>`: unique on one host.
pub(crate) fn unique_name(seq: &AtomicU64, hostname: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        seq.fetch_add(1, Ordering::Relaxed),
        hostname
    )
}

/// Writes `header` and `content` as `dir/new/name` the Maildir way: into `tmp/`, fsync,
/// rename into `new/`, fsync the directory. Creates `tmp`, `new` and `cur` as needed.
pub(crate) fn write_durably(
    dir: &Path,
    name: &str,
    header: &[u8],
    content: &[u8],
) -> io::Result<PathBuf> {
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let tmp = dir.join("tmp").join(name);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(header)?;
        f.write_all(content)?;
        f.sync_all()?;
        let new = dir.join("new").join(name);
        fs::rename(&tmp, &new)?;
        File::open(dir.join("new"))?.sync_all()?;
        Ok(new)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The Maildir++ folder directory for a sub-address tag: `.tag`, with the characters that
/// would make a path or a folder hierarchy (`/`, `.`, NUL) replaced.
fn folder_name(tag: &str) -> String {
    let cleaned: String = tag
        .chars()
        .map(|c| {
            if matches!(c, '/' | '.' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect();
    format!(".{cleaned}")
}

/// A path component that cannot climb out of its directory.
pub(crate) fn safe_component(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

#[async_trait]
impl Channel for MaildirChannel {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        let inner = self.inner.clone();
        // File system work (fsync) off the async threads.
        tokio::task::spawn_blocking(move || inner.deliver(&job))
            .await
            .map_err(|e| ChannelError::Connection {
                peer: "maildir".into(),
                reason: format!("delivery task failed: {e}"),
            })
    }
}

impl Inner {
    fn deliver(&self, job: &DeliveryJob) -> Vec<RecipientOutcome> {
        let sender = match job.envelope.originator.mailbox() {
            Some(m) => format!("<{m}>"),
            None => "<>".to_owned(),
        };
        let content = job.content.as_bytes();
        let mut outcomes = Vec::with_capacity(job.recipients.len());
        for &index in &job.recipients {
            let result = match job.envelope.recipients.get(index).map(|r| &r.address) {
                Some(Address::Mailbox(m)) => {
                    let domain = m.domain_part().to_string();
                    let (local, folder) = match self
                        .separator
                        .and_then(|sep| m.local_part().split_detail(sep))
                    {
                        Some((base, tag)) if !tag.is_empty() => {
                            (base.to_owned(), Some(folder_name(tag)))
                        }
                        Some((base, _)) => (base.to_owned(), None),
                        None => (m.local_part().as_str().to_owned(), None),
                    };
                    let mut dir = self.maildir(&local, &domain);
                    if let Some(f) = folder {
                        dir = dir.join(f);
                    }
                    let header =
                        format!("Return-Path: {sender}\r\nDelivered-To: {m}\r\n").into_bytes();
                    match self.deliver_one(&dir, &header, content) {
                        Ok(path) => {
                            tracing::debug!(path = %path.display(), "maildir delivery");
                            DeliveryResult::Delivered(Status::new(
                                250,
                                (2, 0, 0),
                                "delivered to maildir",
                            ))
                        }
                        Err(e) => {
                            tracing::warn!(maildir = %dir.display(), error = %e, "maildir write failed");
                            DeliveryResult::TryLater(Status::new(
                                451,
                                (4, 3, 0),
                                format!("cannot write to the mailbox: {e}"),
                            ))
                        }
                    }
                }
                _ => DeliveryResult::Failed(Status::new(550, (5, 1, 3), "not an Internet mailbox")),
            };
            outcomes.push(RecipientOutcome { index, result });
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use mswitch_core::address::Mailbox;
    use mswitch_core::envelope::{Envelope, NextHop, Recipient, ReversePath};
    use mswitch_core::id::{QueueId, Timestamp};
    use mswitch_core::store::Content;
    use mswitch_testkit::TempDir;

    use super::*;

    #[test]
    fn delivers_into_new_with_return_path_and_delivered_to() {
        let dir = TempDir::new("mswitch-maildir-test");
        let channel = MaildirChannel::new(ChannelId::new("local"), dir.path(), "mx/1:x");
        let mut env = Envelope::new(
            ReversePath::Address(Address::Mailbox(Mailbox::parse("a@x.example").expect("a"))),
            Timestamp(0),
        );
        for to in [
            "bob@Example.ORG",
            "\"../../etc\"@example.org",
            "carol@example.org",
        ] {
            env.recipients.push(Recipient::new(Address::Mailbox(
                Mailbox::parse(to).expect("rcpt"),
            )));
        }
        let job = DeliveryJob {
            queue_id: QueueId(7),
            envelope: Arc::new(env),
            content: Content::from(b"Subject: hi\r\n\r\nbody\r\n".to_vec()),
            recipients: vec![0, 1],
            next_hop: NextHop::Local,
            attempt: 1,
        };
        let outcomes = channel.inner.deliver(&job);
        assert_eq!(outcomes.len(), 2);
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o.result, DeliveryResult::Delivered(_)))
        );
        let bob = channel.maildir("bob", "example.org");
        let files: Vec<_> = fs::read_dir(bob.join("new"))
            .expect("new/")
            .flatten()
            .collect();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().to_string_lossy().into_owned();
        assert!(name.ends_with(".mx_1_x"), "{name}");
        let text = fs::read_to_string(files[0].path()).expect("read");
        assert_eq!(
            text,
            "Return-Path: <a@x.example>\r\nDelivered-To: bob@Example.ORG\r\nSubject: hi\r\n\r\nbody\r\n"
        );
        assert_eq!(fs::read_dir(bob.join("tmp")).expect("tmp/").count(), 0);
        // A local part cannot climb out of the Maildir root.
        assert!(
            dir.path()
                .join("example.org/.._.._etc/Maildir/new")
                .is_dir()
        );
        assert!(!dir.path().join("etc").exists());
        // Recipient 2 was not in the job.
        assert!(!channel.maildir("carol", "example.org").exists());
    }

    #[test]
    fn sub_addresses_go_to_their_folder() {
        let dir = TempDir::new("mswitch-maildir-test");
        let channel = MaildirChannel::new(ChannelId::new("local"), dir.path(), "mx")
            .with_subaddress_separator(Some('+'));
        let mut env = Envelope::new(ReversePath::Null, Timestamp(0));
        for to in [
            "joe+lists@example.org",
            "joe@example.org",
            "joe+@example.org",
            "joe+a.b/c@example.org",
        ] {
            env.recipients.push(Recipient::new(Address::Mailbox(
                Mailbox::parse(to).expect("rcpt"),
            )));
        }
        let job = DeliveryJob {
            queue_id: QueueId(8),
            envelope: Arc::new(env),
            content: Content::from(b"Subject: tagged\r\n\r\nx\r\n".to_vec()),
            recipients: vec![0, 1, 2, 3],
            next_hop: NextHop::Local,
            attempt: 1,
        };
        let outcomes = channel.inner.deliver(&job);
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o.result, DeliveryResult::Delivered(_)))
        );
        let joe = channel.maildir("joe", "example.org");
        let count =
            |d: std::path::PathBuf| fs::read_dir(d.join("new")).map(|r| r.count()).unwrap_or(0);
        assert_eq!(count(joe.join(".lists")), 1);
        assert_eq!(count(joe.clone()), 2, "no tag, or an empty one: the inbox");
        assert_eq!(count(joe.join(".a_b_c")), 1);
    }
}
