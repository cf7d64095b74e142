use super::*;
use crate::mts::{
    Criticality, ExtensionField, MessageTransferEnvelope, PerRecipientMessageTransferFields,
    ProbeTransferEnvelope,
};

const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);

fn me() -> MtaIdentity {
    MtaIdentity::new("mta-b", "GB", " ", Some("TESTPRMD"))
}

fn or(text: &str) -> ORAddress {
    text.parse().expect("std-or")
}

fn other_domain() -> MtaIdentity {
    MtaIdentity::new("mta-a", "GB", " ", Some("OTHER"))
}

fn message(recipients: &[&str]) -> Message {
    let a = other_domain();
    Message {
        envelope: MessageTransferEnvelope {
            message_identifier: MtsIdentifier::new(a.global_domain.clone(), "msg-1"),
            originator_name: ORName::from(or("/C=GB/ADMD= /PRMD=OTHER/O=Ex/S=Smith/")),
            original_eits: None,
            content_type: ContentType::BuiltIn(22),
            content_identifier: None,
            priority: None,
            per_message_indicators: None,
            deferred_delivery_time: None,
            per_domain_bilateral_information: None,
            trace_information: vec![our_trace(&a, NOW).expect("trace")],
            extensions: Vec::new(),
            per_recipient_fields: recipients
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    PerRecipientMessageTransferFields::new(ORName::from(or(r)), i as i64 + 1)
                })
                .collect(),
            unknown: Vec::new(),
        },
        content: b"opaque P22 content".to_vec(),
    }
}

const R1: &str = "/C=GB/ADMD= /PRMD=TESTPRMD/O=Ex/S=Jones/";
const R2: &str = "/C=GB/ADMD= /PRMD=TESTPRMD/O=Ex/S=Brown/";

#[test]
fn receive_adds_trace_and_projects_the_envelope() {
    let m = message(&[R1, R2]);
    let bytes = MtsApdu::Message(m.clone()).encode().expect("encode");
    let inc = receive(&bytes, &me(), NOW).expect("receive");
    assert_eq!(inc.kind, ApduKind::Message);
    assert!(inc.rejected.is_empty());
    assert_eq!(inc.envelope.recipients.len(), 2);
    assert_eq!(
        inc.envelope.originator,
        ReversePath::Address(Address::X400(Box::new(or(
            "/C=GB/ADMD= /PRMD=OTHER/O=Ex/S=Smith/"
        ))))
    );
    assert_eq!(
        inc.envelope.content_type,
        CoreContentType::X400(X400ContentType::BuiltIn(22))
    );
    let MtsApdu::Message(stored) = MtsApdu::decode(&inc.stored).expect("stored") else {
        panic!("not a message");
    };
    assert_eq!(stored.content, m.content);
    // Our domain's trace element and our internal trace were added.
    assert_eq!(stored.envelope.trace_information.len(), 2);
    assert_eq!(
        stored.envelope.trace_information[1].global_domain,
        me().global_domain
    );
    let internal = stored.envelope.internal_trace().expect("internal");
    assert_eq!(internal.len(), 1);
    assert_eq!(internal[0].mta_name, "mta-b");
    // Received again (a loop): every recipient is refused with loop-detected.
    let again = receive(&inc.stored, &me(), NOW).expect("receive");
    assert!(again.envelope.recipients.is_empty());
    assert_eq!(again.rejected.len(), 2);
    assert!(again.rejected.iter().all(|e| matches!(
        e.outcome,
        Outcome::NonDelivered {
            diagnostic: Some(diag::LOOP_DETECTED),
            ..
        }
    )));
}

#[test]
fn only_recipients_we_are_responsible_for_are_queued() {
    let mut m = message(&[R1, R2]);
    m.envelope.per_recipient_fields[1]
        .per_recipient_indicators
        .set_responsibility(false);
    let bytes = MtsApdu::Message(m).encode().expect("encode");
    let inc = receive(&bytes, &me(), NOW).expect("receive");
    assert_eq!(inc.envelope.recipients.len(), 1);
    assert_eq!(
        inc.envelope.recipients[0].address,
        Address::X400(Box::new(or(R1)))
    );
}

#[test]
fn a_critical_unknown_extension_is_refused_and_a_non_critical_one_relayed() {
    let mut c = Criticality::default();
    c.set_for_transfer(true);
    let mut m = message(&[R1]);
    m.envelope.extensions.push(ExtensionField {
        kind: ExtensionType::Standard(250),
        criticality: Some(c),
        value: Some(vec![0x05, 0x00]),
    });
    let bytes = MtsApdu::Message(m.clone()).encode().expect("encode");
    let inc = receive(&bytes, &me(), NOW).expect("receive");
    assert!(inc.envelope.recipients.is_empty());
    assert!(matches!(
        inc.rejected[0].outcome,
        Outcome::NonDelivered {
            reason: reason::UNABLE_TO_TRANSFER,
            diagnostic: Some(diag::UNSUPPORTED_CRITICAL_FUNCTION),
            ..
        }
    ));
    // Non-critical: relayed byte for byte.
    m.envelope.extensions[0].criticality = None;
    let bytes = MtsApdu::Message(m).encode().expect("encode");
    let inc = receive(&bytes, &me(), NOW).expect("receive");
    assert_eq!(inc.envelope.recipients.len(), 1);
    let ext_bytes = {
        let mut w = crate::ber::Writer::new();
        ExtensionField {
            kind: ExtensionType::Standard(250),
            criticality: None,
            value: Some(vec![0x05, 0x00]),
        }
        .encode(&mut w);
        w.finish()
    };
    assert!(
        inc.stored
            .windows(ext_bytes.len())
            .any(|w| w == ext_bytes.as_slice())
    );
}

#[test]
fn prepare_transfer_sets_responsibility_for_the_transfer_only() {
    let bytes = MtsApdu::Message(message(&[R1, R2]))
        .encode()
        .expect("encode");
    let out = prepare_transfer(&bytes, &[&or(R2)], &me(), NOW).expect("prepare");
    let MtsApdu::Message(m) = MtsApdu::decode(&out).expect("decode") else {
        panic!("not a message");
    };
    let flags: Vec<bool> = m
        .envelope
        .per_recipient_fields
        .iter()
        .map(|r| r.per_recipient_indicators.responsibility())
        .collect();
    assert_eq!(flags, vec![false, true]);
}

#[test]
fn a_non_delivery_report_names_the_subject_and_the_recipient() {
    let bytes = MtsApdu::Message(message(&[R1, R2]))
        .encode()
        .expect("encode");
    let status = Status::new(550, (5, 1, 1), "no such user");
    let entry = ReportEntry::from_status(&Address::X400(Box::new(or(R2))), &status);
    let built = report(&bytes, &[entry], &me(), NOW)
        .expect("report")
        .expect("due");
    assert_eq!(built.envelope.originator, ReversePath::Null);
    assert_eq!(
        built.envelope.recipients[0].address,
        Address::X400(Box::new(or("/C=GB/ADMD= /PRMD=OTHER/O=Ex/S=Smith/")))
    );
    let MtsApdu::Report(r) = MtsApdu::decode(&built.apdu).expect("decode") else {
        panic!("not a report");
    };
    assert_eq!(r.content.subject_identifier.local_identifier, "msg-1");
    assert_eq!(r.content.per_recipient_fields.len(), 1);
    let f = &r.content.per_recipient_fields[0];
    assert_eq!(f.actual_recipient_name.address, or(R2));
    assert_eq!(f.originally_specified_recipient_number, 2);
    assert_eq!(
        f.last_trace_information.report_type,
        ReportType::NonDelivery {
            reason_code: reason::UNABLE_TO_TRANSFER,
            diagnostic_code: Some(diag::UNRECOGNISED_OR_NAME),
        }
    );
    // No report on a report.
    assert!(
        report(&built.apdu, &[ReportEntry::delivered(&or(R2))], &me(), NOW)
            .expect("ok")
            .is_none()
    );
    // A report arriving is routed to its destination, with a null originator.
    let inc = receive(&built.apdu, &other_domain(), NOW).expect("receive");
    assert_eq!(inc.kind, ApduKind::Report);
    assert_eq!(inc.envelope.originator, ReversePath::Null);
    assert_eq!(inc.envelope.recipients.len(), 1);
}

#[test]
fn a_probe_asks_for_a_report_either_way() {
    let m = message(&[R1]);
    let probe = Probe {
        envelope: ProbeTransferEnvelope {
            probe_identifier: m.envelope.message_identifier.clone(),
            originator_name: m.envelope.originator_name.clone(),
            original_eits: None,
            content_type: ContentType::BuiltIn(22),
            content_identifier: None,
            content_length: Some(1000),
            per_message_indicators: None,
            per_domain_bilateral_information: None,
            trace_information: m.envelope.trace_information.clone(),
            extensions: Vec::new(),
            per_recipient_fields: m.envelope.per_recipient_fields.clone(),
            unknown: Vec::new(),
        },
    };
    let bytes = MtsApdu::Probe(probe).encode().expect("encode");
    assert_eq!(kind_of(&bytes), Some(ApduKind::Probe));
    let inc = receive(&bytes, &me(), NOW).expect("receive");
    assert_eq!(inc.kind, ApduKind::Probe);
    assert!(inc.envelope.recipients[0].notify.success());
    let built = report(&inc.stored, &[ReportEntry::delivered(&or(R1))], &me(), NOW)
        .expect("report")
        .expect("due");
    let MtsApdu::Report(r) = MtsApdu::decode(&built.apdu).expect("decode") else {
        panic!("not a report");
    };
    assert!(matches!(
        r.content.per_recipient_fields[0]
            .last_trace_information
            .report_type,
        ReportType::Delivery { .. }
    ));
}

#[test]
fn identifiers_are_unique() {
    let a = me().new_identifier(NOW);
    let b = me().new_identifier(NOW);
    assert_ne!(a, b);
    assert!(a.local_identifier.len() <= crate::mts::UB_LOCAL_ID_LENGTH);
}

fn utc_element(t: Timestamp) -> Vec<u8> {
    let mut w = crate::ber::Writer::new();
    w.string(
        crate::ber::Tag::UTC_TIME,
        UtcTime::from_timestamp(t).expect("time").as_str(),
    );
    w.finish()
}

#[test]
fn deferred_and_latest_delivery_times_reach_the_queue_envelope() {
    let later = Timestamp::from_secs(1_800_003_600);
    let mut m = message(&[R1]);
    m.envelope.deferred_delivery_time = Some(UtcTime::from_timestamp(later).expect("time"));
    m.envelope.extensions.push(ExtensionField::standard(
        ext::LATEST_DELIVERY_TIME,
        utc_element(Timestamp::from_secs(1_800_007_200)),
    ));
    let bytes = MtsApdu::Message(m.clone()).encode().expect("encode");
    let inc = receive(&bytes, &me(), NOW).expect("receive");
    assert_eq!(inc.envelope.deferred_until, Some(later));
    assert_eq!(
        inc.envelope.expires,
        Some(Timestamp::from_secs(1_800_007_200))
    );
    // Past its latest delivery time: refused with maximum-time-expired.
    let mut late = message(&[R1]);
    late.envelope.extensions.push(ExtensionField::standard(
        ext::LATEST_DELIVERY_TIME,
        utc_element(Timestamp::from_secs(1_799_990_000)),
    ));
    let bytes = MtsApdu::Message(late).encode().expect("encode");
    let inc = receive(&bytes, &me(), NOW).expect("receive");
    assert!(inc.envelope.recipients.is_empty());
    assert!(matches!(
        inc.rejected[0].outcome,
        Outcome::NonDelivered {
            diagnostic: Some(diag::MAXIMUM_TIME_EXPIRED),
            ..
        }
    ));
}

mod p3 {
    use super::*;
    use crate::mts::PerMessageIndicators;
    use crate::p3::types::{
        MessageSubmissionArgument, MessageSubmissionEnvelope, PerRecipientMessageSubmissionFields,
    };

    const ORIG: &str = "/C=GB/ADMD= /PRMD=TESTPRMD/O=Ex/S=Orig/";
    const JONES: &str = "/C=GB/ADMD= /PRMD=OTHER/O=Ex/S=Jones/";
    const GHOST: &str = "/C=GB/ADMD= /PRMD=OTHER/O=Ex/S=Ghost/";

    fn submission() -> MessageSubmissionArgument {
        let mut delivery_report = PerRecipientMessageSubmissionFields::new(ORName::from(or(GHOST)));
        delivery_report.originator_report_request.set_bit(3, true);
        let mut disclose = PerMessageIndicators::default();
        disclose.set_disclosure_of_other_recipients(true);
        MessageSubmissionArgument {
            envelope: MessageSubmissionEnvelope {
                originator_name: ORName::from(or(ORIG)),
                original_eits: None,
                content_type: ContentType::BuiltIn(22),
                content_identifier: Some("cid".into()),
                priority: None,
                per_message_indicators: Some(disclose),
                deferred_delivery_time: None,
                extensions: Vec::new(),
                per_recipient_fields: vec![
                    PerRecipientMessageSubmissionFields::new(ORName::from(or(JONES))),
                    delivery_report,
                ],
                unknown: Vec::new(),
            },
            content: b"ipm".to_vec(),
        }
    }

    #[test]
    fn a_submission_becomes_a_transfer_from_our_domain() {
        let (m, id, time) = submission::to_transfer(&submission(), &me(), NOW).expect("transfer");
        assert_eq!(id, m.envelope.message_identifier);
        assert_eq!(id.global_domain, me().global_domain);
        assert_eq!(m.envelope.trace_information.len(), 1);
        assert_eq!(
            m.envelope.trace_information[0].global_domain,
            me().global_domain
        );
        assert_eq!(
            m.envelope.trace_information[0].domain_supplied.arrival_time,
            time
        );
        assert_eq!(m.envelope.content_identifier.as_deref(), Some("cid"));
        let r = &m.envelope.per_recipient_fields;
        assert_eq!(r[0].originally_specified_recipient_number, 1);
        assert_eq!(r[1].originally_specified_recipient_number, 2);
        assert!(
            r.iter()
                .all(|r| r.per_recipient_indicators.responsibility())
        );
        assert!(!r[0].per_recipient_indicators.originator_report());
        assert!(
            r[0].per_recipient_indicators
                .originator_non_delivery_report()
        );
        assert!(r[1].per_recipient_indicators.originator_report());
        // Taken in like a transfer: our trace is not added twice; both recipients are ours.
        let bytes = MtsApdu::Message(m).encode().expect("encode");
        let incoming = receive(&bytes, &me(), NOW).expect("receive");
        assert_eq!(incoming.envelope.recipients.len(), 2);
        let MtsApdu::Message(stored) = MtsApdu::decode(&incoming.stored).expect("decode") else {
            panic!("not a message");
        };
        assert_eq!(stored.envelope.trace_information.len(), 1);
    }

    #[test]
    fn a_queued_message_and_its_report_become_p3_deliveries() {
        let (m, id, time) = submission::to_transfer(&submission(), &me(), NOW).expect("transfer");
        let later = Timestamp::from_secs(1_800_000_060);
        let d = delivery::message_delivery(&m, &or(JONES), later)
            .expect("delivery")
            .expect("names Jones");
        assert_eq!(d.envelope.message_delivery_identifier, id);
        assert_eq!(d.envelope.other_fields.message_submission_time, time);
        assert_eq!(
            d.envelope.other_fields.this_recipient_name.address,
            or(JONES)
        );
        // Disclosure was asked for: the other recipient is named.
        let others: Vec<_> = d
            .envelope
            .other_fields
            .other_recipient_names
            .iter()
            .map(|n| n.address.clone())
            .collect();
        assert_eq!(others, [or(GHOST)]);
        assert_eq!(d.content, b"ipm");
        assert!(
            delivery::message_delivery(&m, &or(ORIG), later)
                .expect("ok")
                .is_none()
        );
        // Delivered to both: only Ghost's originator asked for a delivery report.
        let stored = MtsApdu::Message(m).encode().expect("encode");
        let entries = [
            ReportEntry::delivered(&or(JONES)),
            ReportEntry::delivered(&or(GHOST)),
        ];
        let built = report(&stored, &entries, &me(), later)
            .expect("report")
            .expect("due");
        let MtsApdu::Report(r) = MtsApdu::decode(&built.apdu).expect("decode") else {
            panic!("not a report");
        };
        let arg = delivery::report_delivery(&r).expect("something to deliver");
        assert_eq!(arg.subject_submission_identifier, id);
        assert_eq!(arg.per_recipient_fields.len(), 1);
        assert_eq!(
            arg.per_recipient_fields[0].actual_recipient_name.address,
            or(GHOST)
        );
        // A delivery report on Jones alone: nothing the originator asked for.
        let built = report(&stored, &entries[..1], &me(), later)
            .expect("report")
            .expect("due");
        let MtsApdu::Report(r) = MtsApdu::decode(&built.apdu).expect("decode") else {
            panic!("not a report");
        };
        assert!(delivery::report_delivery(&r).is_none());
    }
}
