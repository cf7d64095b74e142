//! Embedding the submission pipeline: route and queue a message with the in-memory parts.
//!
//! `cargo run -p mswitch-examples --example submit`
//!
//! A real switch uses the durable queue and the routing crate instead of `MemoryQueue` and
//! `StaticRouter`; the pipeline calls are the same.

use std::sync::Arc;

use futures::executor::block_on;
use mswitch_core::channel::{ChannelDescriptor, ChannelKind};
use mswitch_core::envelope::{ContentFamily, NextHop};
use mswitch_core::memory::{MemoryQueue, StaticRouter};
use mswitch_core::policy::RelayPolicy;
use mswitch_core::store::QueueStore;
use mswitch_core::submission::{
    ChannelTable, ClientInfo, Service, SubmissionContext, SubmissionPipeline,
};
use mswitch_core::{Address, ChannelId, Envelope, Recipient, ReversePath, Route, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut channels = ChannelTable::new();
    for name in ["local", "smtp-out"] {
        channels.insert(ChannelDescriptor {
            id: ChannelId::new(name),
            kind: ChannelKind::Outbound,
            accepts: vec![ContentFamily::Internet],
        });
    }
    let router = StaticRouter::new()
        .local_domain("example.com", "local")
        .default_route(Route {
            channel: ChannelId::new("smtp-out"),
            next_hop: NextHop::Host {
                host: "127.0.0.1".into(),
                port: Some(10026),
            },
            local: false,
        });
    let policy = RelayPolicy {
        trusted_networks: vec!["127.0.0.0/8".parse()?],
        max_message_size: Some(10 << 20),
        ..RelayPolicy::default()
    };
    let queue = Arc::new(MemoryQueue::new());
    let pipeline =
        SubmissionPipeline::new(Arc::new(router), Arc::new(policy), queue.clone(), channels);

    let ctx = SubmissionContext {
        channel: ChannelId::new("example"),
        service: Service::Relay,
        client: ClientInfo {
            address: Some("192.0.2.10".parse()?),
            ..ClientInfo::default()
        },
        now: Timestamp::from_secs(1_700_000_000),
    };
    let mut envelope = Envelope::new(
        ReversePath::Address(Address::parse("alice@example.org")?),
        ctx.now,
    );
    for rcpt in ["bob@example.com", "carol@elsewhere.example"] {
        envelope
            .recipients
            .push(Recipient::new(Address::parse(rcpt)?));
    }
    let content = b"Subject: hello\r\n\r\nHello, Bob.\r\n";

    let report = block_on(pipeline.submit(ctx, envelope, content));
    for (address, result) in &report.recipients {
        match result {
            Ok(_) => println!("{address}: accepted"),
            Err(refusal) => println!("{address}: refused, {}", refusal.status),
        }
    }
    match &report.outcome {
        Ok(submitted) => {
            println!("queued as {}", submitted.id);
            let stored = block_on(queue.content(submitted.id))?;
            println!("{} octets stored", stored.len());
        }
        Err(refusal) => println!("not queued: {}", refusal.status),
    }
    Ok(())
}
