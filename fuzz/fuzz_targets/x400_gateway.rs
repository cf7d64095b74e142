//! The RFC 2156 gateway conversions on arbitrary input never panic: an arbitrary message (as
//! RFC 5322 text) into X.400, arbitrary bytes as a queued MTS-APDU into Internet mail or a DSN,
//! and arbitrary bytes as a DSN into an X.400 report. Whatever converts to X.400 converts back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_core::address::{Address, Mailbox};
use mswitch_core::envelope::{Envelope, Notify, Recipient, ReversePath};
use mswitch_core::id::{QueueId, Timestamp};
use mswitch_x400::gateway::address::{MixerConfig, MixerRuleConfig, MixerTables, RuleDirection};
use mswitch_x400::gateway::{convert, reports};
use mswitch_x400::mta::MtaIdentity;
use mswitch_x400::mts::MtsApdu;

fuzz_target!(|data: &[u8]| {
    let Ok(tables) = MixerTables::new(MixerConfig {
        gateway_domain: "x400.example.com".into(),
        gateway_or: "/C=GB/ADMD= /PRMD=Example/O=Internet/".into(),
        rules: vec![MixerRuleConfig {
            domain: "example.com".into(),
            or_prefix: "/C=GB/ADMD= /PRMD=Example/O=Mail/".into(),
            direction: RuleDirection::Both,
            subdomains: true,
        }],
    }) else {
        return;
    };
    let me = MtaIdentity::new("gw", "GB", " ", Some("Example"));
    let now = Timestamp::from_secs(1_800_000_000);
    let (Ok(alice), Ok(bob)) = (
        Mailbox::parse("alice@example.com"),
        Mailbox::parse("bob@elsewhere.org"),
    ) else {
        return;
    };
    let mut env = Envelope::new(ReversePath::Address(Address::Mailbox(alice.clone())), now);
    env.recipients.push(Recipient::new(Address::Mailbox(bob)));
    if let Ok(c) = convert::to_x400(&env, data, &[0], &tables, &me, now)
        && let Ok(MtsApdu::Message(m)) = MtsApdu::decode(&c.content)
    {
        let rcpts: Vec<_> = m
            .envelope
            .per_recipient_fields
            .iter()
            .map(|r| (0usize, &r.recipient_name.address, Notify::unspecified()))
            .collect();
        let _ = convert::to_internet(&c.content, &rcpts, &tables, now);
    }
    let _ = reports::dsn_to_report(&alice, data, &tables, &me, now);
    if let Ok(MtsApdu::Message(m)) = MtsApdu::decode(data) {
        let rcpts: Vec<_> = m
            .envelope
            .per_recipient_fields
            .iter()
            .map(|r| (0usize, &r.recipient_name.address, Notify::unspecified()))
            .collect();
        let _ = convert::to_internet(data, &rcpts, &tables, now);
    }
    let _ = reports::report_to_dsn(data, &tables, "gw.example.com", QueueId(1), now);
});
