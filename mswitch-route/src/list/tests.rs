use std::sync::Arc;

use futures::executor::block_on;
use mswitch_core::channel::{ChannelDescriptor, ChannelKind, DeliveryJob, DeliveryResult};
use mswitch_core::envelope::{ContentFamily, Envelope, NextHop, Recipient, ReversePath, Route};
use mswitch_core::id::{ChannelId, QueueId, Timestamp};
use mswitch_core::memory::{MemoryQueue, StaticRouter};
use mswitch_core::policy::RelayPolicy;
use mswitch_core::route::RouteDecision;
use mswitch_core::store::Content;
use mswitch_core::submission::{ChannelTable, SubmissionPipeline};

use super::*;

fn mb(s: &str) -> Mailbox {
    Mailbox::parse(s).expect("address")
}

fn addr(s: &str) -> Address {
    Address::Mailbox(mb(s))
}

struct Setup {
    queue: Arc<MemoryQueue>,
    channel: ListChannel,
}

/// Lists `staff@lists.test` (posting: members; members alice, bob and the nested list
/// `all@lists.test`) and `all@lists.test` (anyone; members carol and, looping back,
/// `staff@lists.test`). Local mail (example.test) goes to `local`, lists to `lists`.
fn setup() -> Setup {
    let staff = List {
        address: mb("staff@lists.test"),
        owner: mb("owner-staff@lists.test"),
        members: vec![
            addr("alice@example.test"),
            addr("bob@example.test"),
            addr("all@lists.test"),
        ],
        posting: Posting::Members,
    };
    let all = List {
        address: mb("all@lists.test"),
        owner: mb("owner-all@lists.test"),
        members: vec![addr("carol@example.test"), addr("staff@lists.test")],
        posting: Posting::Anyone,
    };
    let lists_route = |_: ()| {
        RouteDecision::Deliver(Route {
            channel: ChannelId::new("lists"),
            next_hop: NextHop::Local,
            local: true,
        })
    };
    let router = StaticRouter::new()
        .local_domain("example.test", "local")
        .address(addr("staff@lists.test"), lists_route(()))
        .address(addr("all@lists.test"), lists_route(()));
    let mut table = ChannelTable::new();
    for (name, kind) in [
        ("local", ChannelKind::Outbound),
        ("lists", ChannelKind::Processing),
    ] {
        table.insert(ChannelDescriptor {
            id: ChannelId::new(name),
            kind,
            accepts: vec![ContentFamily::Internet],
        });
    }
    let queue = Arc::new(MemoryQueue::new());
    let pipeline = SubmissionPipeline::new(
        Arc::new(router),
        Arc::new(RelayPolicy::default()),
        queue.clone(),
        table,
    );
    let channel = ListChannel::new(
        ChannelId::new("lists"),
        Arc::new(ListTable::new([staff, all])),
        PipelineHandle::new(Arc::new(pipeline)),
        Arc::new(|| Timestamp(5_000)),
    );
    Setup { queue, channel }
}

fn job(from: Option<&str>, to: &str, expansions: &[&str]) -> DeliveryJob {
    let originator = from.map_or(ReversePath::Null, |f| ReversePath::Address(addr(f)));
    let mut env = Envelope::new(originator, Timestamp(1_000));
    env.recipients.push(Recipient::new(addr(to)));
    env.expansions = expansions.iter().map(|s| (*s).to_owned()).collect();
    env.size = 20;
    DeliveryJob {
        queue_id: QueueId(1),
        envelope: Arc::new(env),
        content: Content::from(b"Subject: hi\r\n\r\nhello\r\n".to_vec()),
        recipients: vec![0],
        next_hop: NextHop::Local,
        attempt: 1,
    }
}

fn result(s: &Setup, j: DeliveryJob) -> DeliveryResult {
    let out = block_on(s.channel.deliver(j)).expect("deliver");
    assert_eq!(out.len(), 1);
    out[0].result.clone()
}

fn only_queued(s: &Setup) -> Envelope {
    assert_eq!(s.queue.len(), 1, "one new message");
    let id = QueueId(1);
    s.queue.envelope(id).expect("the expanded message")
}

fn recipients(e: &Envelope) -> Vec<String> {
    e.recipients
        .iter()
        .map(|r| match &r.address {
            Address::Mailbox(m) => m.to_string(),
            Address::X400(_) => String::new(),
        })
        .collect()
}

#[test]
fn a_member_posts_and_the_owner_becomes_the_sender() {
    let s = setup();
    let r = result(&s, job(Some("Alice@Example.test"), "staff@lists.test", &[]));
    assert_eq!(r, DeliveryResult::Expanded);
    let e = only_queued(&s);
    assert_eq!(
        e.originator.mailbox().map(ToString::to_string),
        Some("owner-staff@lists.test".into())
    );
    assert_eq!(
        recipients(&e),
        ["alice@example.test", "bob@example.test", "all@lists.test"]
    );
    assert_eq!(e.expansions, ["staff@lists.test"]);
    assert_eq!(e.arrival, Timestamp(5_000));
    // Routed by the pipeline: members to local delivery, the nested list to the list channel.
    let channels: Vec<&str> = e
        .recipients
        .iter()
        .map(|r| r.route.as_ref().map_or("", |x| x.channel.as_str()))
        .collect();
    assert_eq!(channels, ["local", "local", "lists"]);
}

#[test]
fn strangers_may_not_post_to_a_members_only_list() {
    let s = setup();
    let r = result(&s, job(Some("mallory@evil.test"), "staff@lists.test", &[]));
    match r {
        DeliveryResult::Failed(st) => {
            assert_eq!((st.code, st.enhanced.to_string()), (550, "5.7.1".into()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.queue.len(), 0);
    // Nor may the null sender.
    assert!(matches!(
        result(&s, job(None, "staff@lists.test", &[])),
        DeliveryResult::Failed(_)
    ));
    // An open list takes anyone.
    assert_eq!(
        result(&s, job(Some("mallory@evil.test"), "all@lists.test", &[])),
        DeliveryResult::Expanded
    );
}

#[test]
fn a_list_already_expanded_is_not_expanded_again() {
    let s = setup();
    // all@ reached again through staff@ -> all@ -> staff@.
    let r = result(
        &s,
        job(
            Some("owner-all@lists.test"),
            "staff@lists.test",
            &["staff@lists.test", "all@lists.test"],
        ),
    );
    match r {
        DeliveryResult::Failed(st) => {
            assert_eq!((st.code, st.enhanced.to_string()), (554, "5.4.6".into()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.queue.len(), 0);
    // The nested expansion carries the history on.
    let r = result(
        &s,
        job(
            Some("owner-staff@lists.test"),
            "all@lists.test",
            &["staff@lists.test"],
        ),
    );
    assert_eq!(r, DeliveryResult::Expanded);
    let e = only_queued(&s);
    assert_eq!(e.expansions, ["staff@lists.test", "all@lists.test"]);
}

#[test]
fn unknown_lists_and_unavailable_sources() {
    let s = setup();
    match result(&s, job(Some("a@example.test"), "nobody@lists.test", &[])) {
        DeliveryResult::Failed(st) => assert_eq!(st.enhanced.to_string(), "5.1.1"),
        other => panic!("{other:?}"),
    }
    struct Down;
    #[async_trait]
    impl ListSource for Down {
        async fn list(&self, _: &Mailbox) -> Result<Option<List>, Status> {
            Err(Status::new(451, (4, 4, 3), "directory unavailable"))
        }
    }
    let channel = ListChannel::new(
        ChannelId::new("lists"),
        Arc::new(Down),
        PipelineHandle::new(Arc::new(SubmissionPipeline::new(
            Arc::new(StaticRouter::new()),
            Arc::new(RelayPolicy::default()),
            Arc::new(MemoryQueue::new()),
            ChannelTable::new(),
        ))),
        Arc::new(|| Timestamp(0)),
    );
    let out = block_on(channel.deliver(job(Some("a@example.test"), "x@lists.test", &[])))
        .expect("deliver");
    assert!(matches!(&out[0].result, DeliveryResult::TryLater(st) if st.code == 451));
}
