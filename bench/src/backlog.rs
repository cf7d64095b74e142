//! A queue of deferred messages for the backlog scenario, written with the queue library itself
//! (through SMTP it would take many minutes): messages as mswitchd queues them, one recipient
//! each, already routed to a next hop that is down and not due again for a day.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::executor::block_on;
use mswitch_core::envelope::NextHop;
use mswitch_core::store::QueueStore;
use mswitch_core::{
    Address, ChannelId, Envelope, Recipient, RecipientState, ReversePath, Route, Status, Timestamp,
};
use mswitch_queue::{DiskQueue, QueueConfig};

use crate::Result;

/// Writes `count` deferred messages of about `size` octets into a new queue at `dir`, from
/// `writers` threads (so that group commit batches them as under real load).
pub(crate) fn prepare(dir: &Path, count: usize, size: usize, writers: usize) -> Result<()> {
    let mut config = QueueConfig::new(dir);
    config.reserve = 0;
    let queue = DiskQueue::open(config).map_err(|e| format!("queue {}: {e}", dir.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    let arrival = Timestamp(now.as_millis() as u64);
    let next = arrival.saturating_add(Duration::from_secs(86_400));
    let sender = Address::parse("sender@example.org").map_err(|e| format!("{e:?}"))?;
    let recipient = Address::parse("someone@down.example").map_err(|e| format!("{e:?}"))?;
    let mut envelope = Envelope::new(ReversePath::Address(sender), arrival);
    let mut r = Recipient::new(recipient);
    r.route = Some(Route {
        channel: ChannelId::new("relay"),
        // Port 9 (discard) on loopback: nothing listens there.
        next_hop: NextHop::Host {
            host: "127.0.0.1".into(),
            port: Some(9),
        },
        local: false,
    });
    r.state = RecipientState::Deferred {
        attempts: 1,
        next_attempt: next,
        last: Status::new(421, (4, 4, 1), "connection refused"),
    };
    envelope.recipients = vec![r];
    let mut content = b"From: <sender@example.org>\r\nTo: <someone@down.example>\r\n\
                        Subject: waiting\r\n\r\n"
        .to_vec();
    while content.len() < size {
        content.extend_from_slice(b"a line of a message that waits in the queue for days\r\n");
    }
    envelope.size = content.len() as u64;
    let next_index = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..writers {
            s.spawn(|| {
                while next_index.fetch_add(1, Ordering::Relaxed) < count {
                    if block_on(queue.enqueue(&envelope, &content)).is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    queue.close();
    match failures.into_inner() {
        0 => Ok(()),
        n => Err(format!("{n} enqueues failed while preparing the backlog")),
    }
}
