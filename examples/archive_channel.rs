//! A custom channel written outside the mswitch crates, the way a channel author would: an
//! archive that keeps every message it is given as a file, registered in the daemon's
//! configuration by its type name (`type = "archive"`) and driven by the QMGR like the built-in
//! channels.
//!
//! Run it as a switch: `cargo run -p mswitch-examples --example archive_channel -- \
//! examples/archive.toml DATA_DIR`, then send mail for `anything@archive.example` to
//! 127.0.0.1:10027. Copy this file to start your own channel: implement [`Channel`] (a
//! descriptor and `deliver`), give a factory to [`Registry::register`], start a [`Switch`].

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, DeliveryJob, DeliveryResult,
    RecipientOutcome,
};
use mswitch_core::envelope::ContentFamily;
use mswitch_core::id::ChannelId;
use mswitch_core::status::Status;
use mswitch_daemon::config::Config;
use mswitch_daemon::switch::{Registry, Switch};

/// Keeps each message as `<directory>/<queue id>.eml`, written and fsynced before the
/// recipients are reported delivered.
struct ArchiveChannel {
    descriptor: ChannelDescriptor,
    directory: PathBuf,
}

#[async_trait]
impl Channel for ArchiveChannel {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn deliver(&self, job: DeliveryJob) -> Result<Vec<RecipientOutcome>, ChannelError> {
        let path = self.directory.join(format!("{}.eml", job.queue_id));
        let tmp = self.directory.join(format!(".{}.eml.tmp", job.queue_id));
        // Written aside, synced, then renamed into place (and the directory synced): a reader
        // never sees a partial file, and "archived" is only said of a durable one.
        let written = (|| {
            fs::create_dir_all(&self.directory)?;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(job.content.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.directory)?.sync_all()
        })();
        // One outcome per recipient of the job: all delivered, or all to be tried again.
        let result = match written {
            Ok(()) => DeliveryResult::Delivered(Status::new(250, (2, 0, 0), "archived")),
            Err(e) => DeliveryResult::TryLater(Status::new(
                451,
                (4, 3, 0),
                format!("archive write failed: {e}"),
            )),
        };
        Ok(job
            .recipients
            .iter()
            .map(|&index| RecipientOutcome {
                index,
                result: result.clone(),
            })
            .collect())
    }
}

/// The registry of channel types: the built-in ones plus "archive", whose `settings` table
/// takes `directory` (relative to the data directory).
fn registry() -> Registry {
    let mut r = Registry::new();
    r.register("archive", |channel, config: &Config| {
        let directory = channel
            .settings
            .get("directory")
            .and_then(|v| v.as_str())
            .ok_or("settings.directory is required (a path)")?;
        Ok(Arc::new(ArchiveChannel {
            descriptor: ChannelDescriptor {
                id: ChannelId::new(&channel.name),
                kind: ChannelKind::Outbound,
                accepts: vec![ContentFamily::Internet],
            },
            directory: config.data_dir.join(directory),
        }) as Arc<dyn Channel>)
    });
    r
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_ansi(false).init();
    let mut args = std::env::args().skip(1);
    let config = args
        .next()
        .unwrap_or_else(|| "examples/archive.toml".into());
    let data_dir = args.next().unwrap_or_else(|| "archive-data".into());
    let config = Config::load(config.as_ref(), data_dir.as_ref())?;
    let switch = Switch::start(config, registry()).await?;
    tokio::signal::ctrl_c().await?;
    switch.shutdown(std::time::Duration::from_secs(10)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use super::*;

    fn command(reader: &mut BufReader<TcpStream>, line: &str) -> String {
        if !line.is_empty() {
            reader
                .get_mut()
                .write_all(format!("{line}\r\n").as_bytes())
                .expect("write");
        }
        let mut reply = String::new();
        loop {
            let mut l = String::new();
            reader.read_line(&mut l).expect("read");
            reply.push_str(&l);
            if l.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// The example's own configuration, on a free port, archives a message sent to it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_archive_channel_is_driven_like_a_built_in_one() {
        let data = std::env::temp_dir().join(format!("mswitch-archive-{}", std::process::id()));
        let text = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/archive.toml"))
            .expect("examples/archive.toml")
            .replace("127.0.0.1:10027", "127.0.0.1:0");
        let config = Config::parse(&text, "archive.toml", &data).expect("valid configuration");
        let switch = Switch::start(config, registry()).await.expect("start");
        let addr = switch.addresses()[0];
        let id = tokio::task::spawn_blocking(move || {
            let stream = TcpStream::connect(addr).expect("connect");
            let mut r = BufReader::new(stream);
            assert!(command(&mut r, "").starts_with("220"));
            assert!(command(&mut r, "EHLO client.example").starts_with("250"));
            assert!(command(&mut r, "MAIL FROM:<someone@example.org>").starts_with("250"));
            assert!(command(&mut r, "RCPT TO:<records@archive.example>").starts_with("250"));
            assert!(command(&mut r, "DATA").starts_with("354"));
            let reply = command(&mut r, "Subject: keep me\r\n\r\nfor the record\r\n.");
            assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
            command(&mut r, "QUIT");
            reply.trim_end()["250 2.0.0 Ok: queued as ".len()..].to_owned()
        })
        .await
        .expect("client");
        let file = data.join("archive").join(format!("{id}.eml"));
        let mut found = None;
        for _ in 0..200 {
            if let Ok(text) = fs::read_to_string(&file) {
                found = Some(text);
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let text = found.expect("the archive file appears");
        assert!(text.starts_with("Received: from client.example"), "{text}");
        assert!(
            text.ends_with("Subject: keep me\r\n\r\nfor the record\r\n"),
            "{text}"
        );
        switch.shutdown(Duration::from_secs(5)).await;
        let _ = fs::remove_dir_all(&data);
    }
}
