use mail_parser::MessageParser;
use mswitch_core::address::ORAddress;

use super::*;
use crate::gateway::address::{MixerConfig, MixerRuleConfig, RuleDirection};
use crate::gateway::convert::to_x400;

const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);

fn tables() -> MixerTables {
    MixerTables::new(MixerConfig {
        gateway_domain: "x400.example.com".into(),
        gateway_or: "/C=GB/ADMD= /PRMD=Example/O=Internet/".into(),
        rules: vec![MixerRuleConfig {
            domain: "example.com".into(),
            or_prefix: "/C=GB/ADMD= /PRMD=Example/O=Mail/".into(),
            direction: RuleDirection::Both,
            subdomains: false,
        }],
    })
    .expect("tables")
}

fn me() -> MtaIdentity {
    MtaIdentity::new("gw", "GB", " ", Some("Example"))
}

fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).expect("mailbox")
}

#[test]
fn an_x400_non_delivery_becomes_a_dsn_for_the_smtp_sender() {
    let t = tables();
    let mut env = Envelope::new(
        ReversePath::Address(Address::Mailbox(mailbox("alice@elsewhere.org"))),
        NOW,
    );
    env.recipients.push(Recipient::new(Address::Mailbox(mailbox(
        "Bob.Smith@example.com",
    ))));
    let msg = b"From: alice@elsewhere.org\r\nSubject: hi\r\n\r\nbody\r\n";
    let c = to_x400(&env, msg, &[0], &t, &me(), NOW).expect("to x400");
    let MtsApdu::Message(m) = MtsApdu::decode(&c.content).expect("apdu") else {
        panic!("not a message");
    };
    let bob: ORAddress = m.envelope.per_recipient_fields[0]
        .recipient_name
        .address
        .clone();
    let ndr = crate::mta::report(
        &c.content,
        &[ReportEntry::from_status(
            &Address::X400(Box::new(bob)),
            &Status::new(550, (5, 1, 1), "no such user"),
        )],
        &MtaIdentity::new("mta-b", "GB", " ", Some("B")),
        NOW,
    )
    .expect("report")
    .expect("due");
    let dsn = report_to_dsn(&ndr.apdu, &t, "gw.example.com", QueueId(5), NOW)
        .expect("convert")
        .expect("a DSN");
    assert_eq!(dsn.envelope.originator, ReversePath::Null);
    assert_eq!(
        dsn.envelope.recipients[0].address.to_string(),
        "alice@elsewhere.org"
    );
    let parsed = MessageParser::default().parse(&dsn.content).expect("parse");
    let status = parsed
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|ct| ct.subtype() == Some("delivery-status"))
        })
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
        .expect("delivery-status part");
    assert!(
        status.contains("Final-Recipient: rfc822; Bob.Smith@example.com"),
        "{status}"
    );
    assert!(status.contains("Status: 5.1.1"), "{status}");
    assert!(status.contains("Action: failed"), "{status}");
    assert!(
        status.contains(&m.envelope.message_identifier.to_string()),
        "the MTS identifier is the envelope id:\n{status}"
    );
}

#[test]
fn a_dsn_on_a_message_from_x400_becomes_an_x400_report() {
    let t = tables();
    // A message from an X.400 user, converted to the Internet, failed for one recipient.
    let originator: ORAddress = "/C=GB/ADMD= /PRMD=Other/O=Org/S=Jones/"
        .parse()
        .expect("std-or");
    let from = t.to_mailbox(&originator).expect("mailbox");
    let subject = me().new_identifier(NOW);
    let mut env = Envelope::new(ReversePath::Address(Address::Mailbox(from.clone())), NOW);
    env.dsn_envid = Some(subject.to_string());
    env.recipients.push(Recipient::new(Address::Mailbox(mailbox(
        "nobody@elsewhere.org",
    ))));
    let notice = dsn::build(&DsnRequest {
        reporting_mta: "mx.elsewhere.org",
        queue_id: QueueId(1),
        envelope: &env,
        content: b"Subject: hi\r\n\r\nbody\r\n",
        recipients: vec![DsnRecipient {
            index: 0,
            action: DsnAction::Failed,
            status: Status::new(550, (5, 1, 1), "no such user"),
            remote_mta: Some("mx.elsewhere.org".into()),
            diagnostic_from_peer: true,
            last_attempt: Some(NOW),
            will_retry_until: None,
        }],
        now: NOW,
        unique: 7,
    })
    .expect("a DSN");
    let r = dsn_to_report(&from, &notice.content, &t, &me(), NOW)
        .expect("convert")
        .expect("a report");
    assert_eq!(
        r.envelope.recipients[0].address,
        Address::X400(Box::new(originator.clone()))
    );
    let MtsApdu::Report(rep) = MtsApdu::decode(&r.content).expect("apdu") else {
        panic!("not a report");
    };
    assert_eq!(rep.content.subject_identifier, subject);
    assert_eq!(rep.envelope.report_destination_name.address, originator);
    let f = &rep.content.per_recipient_fields[0];
    assert_eq!(
        t.to_mailbox(&f.actual_recipient_name.address)
            .expect("back")
            .to_string(),
        "nobody@elsewhere.org"
    );
    assert_eq!(
        f.last_trace_information.report_type,
        ReportType::NonDelivery {
            reason_code: reason::UNABLE_TO_TRANSFER,
            diagnostic_code: Some(diag::UNRECOGNISED_OR_NAME),
        }
    );
}

#[test]
fn not_a_dsn_is_an_error() {
    let t = tables();
    assert!(matches!(
        dsn_to_report(
            &mailbox("a@example.com"),
            b"Subject: hi\r\n\r\nbody\r\n",
            &t,
            &me(),
            NOW
        ),
        Err(GatewayError::Content(_))
    ));
}
