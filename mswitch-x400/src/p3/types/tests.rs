use super::*;
use crate::p3::testutil::*;

fn set_of(bytes: &[u8]) -> Tlv<'_> {
    parse_one(bytes).expect("one element")
}

/// Checks a value re-encodes to the same bytes, and that the indefinite-length form of those
/// bytes decodes to the same value once `strip` has removed the elements kept as received
/// (they keep their indefinite lengths, by design).
fn round_trip<T: PartialEq + std::fmt::Debug + Clone>(
    v: &T,
    enc: impl Fn(&T) -> Result<Vec<u8>, MtsError>,
    dec: impl Fn(&[u8]) -> Result<T, MtsError>,
    strip: impl Fn(&mut T),
) -> Vec<u8> {
    let bytes = enc(v).expect("encode");
    let back = dec(&bytes).expect("decode");
    assert_eq!(&back, v);
    assert_eq!(enc(&back).expect("re-encode"), bytes);
    let mut indef = dec(&indefinite(&bytes)).expect("indefinite");
    let mut expected = v.clone();
    strip(&mut indef);
    strip(&mut expected);
    assert_eq!(indef, expected);
    // Every strict prefix is an error, never a panic.
    for n in 0..bytes.len() {
        assert!(dec(&bytes[..n]).is_err(), "prefix {n} decoded");
    }
    bytes
}

#[test]
fn bind_argument_bytes_of_a_small_bind() {
    // MTSBindArgument SET { mTA [0] "mta", initiator-credentials [2] { IA5String "pw" } }.
    let a = MtsBindArgument::simple(ObjectName::Mta("mta".into()), "pw");
    let bytes = a.encode().expect("encode");
    assert_eq!(
        bytes,
        [
            0x31, 0x0b, 0x80, 0x03, b'm', b't', b'a', 0xa2, 0x04, 0x16, 0x02, b'p', b'w'
        ]
    );
    assert_eq!(MtsBindArgument::decode(&bytes).expect("decode"), a);
}

#[test]
fn bind_argument_and_result_round_trip() {
    let mut a = bind_argument();
    a.messages_waiting = bind_result().messages_waiting;
    a.security_context = Some(vec![0xa3, 0x02, 0x31, 0x00]);
    a.unknown = vec![UNKNOWN_ELEMENT.to_vec()];
    round_trip(&a, MtsBindArgument::encode, MtsBindArgument::decode, |a| {
        a.security_context = None;
        a.unknown.clear();
    });
    round_trip(
        &bind_result(),
        MtsBindResult::encode,
        MtsBindResult::decode,
        |_| {},
    );
    // A message store binds with [4], an MTA with [0].
    for n in [
        ObjectName::MessageStore(name("/C=GB/ADMD= /PRMD=PRMD-A/O=Store/")),
        ObjectName::Mta("mta-a".into()),
    ] {
        let mut a = bind_argument();
        a.initiator_name = n;
        a.initiator_credentials = Credentials::Simple(Password::OctetString(vec![0, 1, 2]));
        round_trip(&a, MtsBindArgument::encode, MtsBindArgument::decode, |_| {});
    }
}

#[test]
fn bind_refuses_protected_passwords_and_long_ones() {
    // initiator-credentials [2] { protected [1] SET {} }
    let bytes = [
        0x31, 0x09, 0x80, 0x01, b'm', 0xa2, 0x04, 0xa1, 0x02, 0x31, 0x00,
    ];
    assert!(MtsBindArgument::decode(&bytes).is_err());
    let long = MtsBindArgument::simple(ObjectName::Mta("m".into()), "x".repeat(63));
    assert!(long.encode().is_err());
}

#[test]
fn submission_round_trips_keeping_unknown_elements() {
    let s = submission();
    let bytes = round_trip(
        &s,
        MessageSubmissionArgument::encode,
        MessageSubmissionArgument::decode,
        |s| {
            s.envelope.original_eits = None;
            s.envelope.unknown.clear();
            s.envelope.per_recipient_fields[1].unknown.clear();
        },
    );
    // The unknown element is relayed unchanged.
    let back = MessageSubmissionArgument::decode(&bytes).expect("decode");
    assert_eq!(back.envelope.unknown, vec![UNKNOWN_ELEMENT.to_vec()]);
    assert_eq!(
        back.envelope.per_recipient_fields[1].unknown,
        vec![UNKNOWN_ELEMENT.to_vec()]
    );
    assert!(back.envelope.per_recipient_fields[1].report_requested());
    assert!(back.envelope.per_recipient_fields[0].non_delivery_report_requested());
    round_trip(
        &submission_result(),
        MessageSubmissionResult::encode,
        MessageSubmissionResult::decode,
        |_| {},
    );
    round_trip(
        &probe(),
        ProbeSubmissionArgument::encode,
        ProbeSubmissionArgument::decode,
        |_| {},
    );
}

#[test]
fn submission_envelope_in_any_order() {
    // The SET's elements reversed decode to the same envelope.
    let s = submission();
    let mut w = Writer::new();
    s.envelope.encode(&mut w).expect("encode");
    let env = w.finish();
    let tlv = set_of(&env);
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut r = tlv.children().expect("children");
    while let Some(t) = r.next().expect("next") {
        parts.push(t.raw.to_vec());
    }
    parts.reverse();
    let mut w = Writer::new();
    w.set(|w| parts.iter().for_each(|p| w.raw(p)));
    let reversed = w.finish();
    let back = MessageSubmissionEnvelope::decode(&set_of(&reversed)).expect("decode");
    assert_eq!(back.per_recipient_fields, s.envelope.per_recipient_fields);
    assert_eq!(back.originator_name, s.envelope.originator_name);
}

#[test]
fn submission_needs_recipients_and_refuses_duplicates() {
    let mut s = submission();
    s.envelope.per_recipient_fields.clear();
    assert!(s.encode().is_err());
    // Two originator names.
    let s = submission();
    let mut w = Writer::new();
    s.envelope.encode(&mut w).expect("encode");
    let env = w.finish();
    let tlv = set_of(&env);
    let first = tlv
        .children()
        .expect("c")
        .next()
        .expect("n")
        .expect("first");
    let mut w = Writer::new();
    w.set(|w| {
        w.raw(first.raw);
        w.raw(tlv.content);
    });
    let twice = w.finish();
    assert!(matches!(
        MessageSubmissionEnvelope::decode(&set_of(&twice)),
        Err(MtsError::Ber(BerError::Duplicate(_)))
    ));
}

#[test]
fn delivery_round_trips_with_implicit_eits_and_delivered_content_type() {
    let d = delivery();
    let bytes = round_trip(
        &d,
        MessageDeliveryArgument::encode,
        MessageDeliveryArgument::decode,
        |d| d.envelope.other_fields.unknown.clear(),
    );
    // DeliveredContentType built-in travels as [0] INTEGER 22.
    let needle = [0x80, 0x01, 0x16];
    assert!(bytes.windows(3).any(|w| w == needle));
    // original-encoded-information-types as [1] { [0] BIT STRING }.
    let needle = [0xa1, 0x04, 0x80, 0x02, 0x05, 0x20];
    assert!(bytes.windows(6).any(|w| w == needle));
    // A built-in content type sent as [APPLICATION 6] is read too.
    let mut d2 = d.clone();
    d2.envelope.other_fields.content_type = ContentType::BuiltIn(2);
    let b2 = d2.encode().expect("encode");
    let pos = b2
        .windows(3)
        .position(|w| w == [0x80, 0x01, 0x02])
        .expect("content type");
    let mut b3 = b2.clone();
    b3[pos] = 0x46;
    assert_eq!(MessageDeliveryArgument::decode(&b3).expect("decode"), d2);
}

#[test]
fn report_delivery_round_trips() {
    let r = report();
    round_trip(
        &r,
        ReportDeliveryArgument::encode,
        ReportDeliveryArgument::decode,
        |r| {
            r.original_eits = None;
            r.unknown.clear();
            r.per_recipient_fields[1].converted_eits = None;
        },
    );
    let mut bad = r.clone();
    bad.per_recipient_fields.clear();
    assert!(bad.encode().is_err());
}

#[test]
fn errors_carry_their_parameters() {
    let names = [name("/C=GB/ADMD= /PRMD=PRMD-B/S=Jones/")];
    let e = P3Error::recipient_improperly_specified(&names).expect("error");
    assert_eq!(e.code, error_code::RECIPIENT_IMPROPERLY_SPECIFIED);
    assert_eq!(
        e.improperly_specified_recipients()
            .expect("some")
            .expect("ok"),
        names.to_vec()
    );
    let s = P3Error::security_error(security_problem::UNAUTHORISED_ORIGINATOR_NAME);
    assert_eq!(s.parameter, Some(vec![0x02, 0x01, 29]));
    assert_eq!(
        P3Error::new(error_code::ORIGINATOR_INVALID).parameter,
        Some(vec![5, 0])
    );
    assert!(P3Error::recipient_improperly_specified(&[]).is_err());
}

#[test]
fn hostile_inputs_never_panic() {
    let samples = [
        bind_argument().encode().expect("e"),
        bind_result().encode().expect("e"),
        submission().encode().expect("e"),
        submission_result().encode().expect("e"),
        probe().encode().expect("e"),
        delivery().encode().expect("e"),
        report().encode().expect("e"),
        delivery_controls().encode().expect("e"),
        waiting().encode().expect("e"),
    ];
    let mut rng = Lcg(7);
    for s in &samples {
        for i in 0..s.len() {
            for _ in 0..4 {
                let mut m = s.clone();
                m[i] = rng.next_u8();
                let _ = MtsBindArgument::decode(&m);
                let _ = MtsBindResult::decode(&m);
                let _ = MessageSubmissionArgument::decode(&m);
                let _ = MessageSubmissionResult::decode(&m);
                let _ = ProbeSubmissionArgument::decode(&m);
                let _ = MessageDeliveryArgument::decode(&m);
                let _ = ReportDeliveryArgument::decode(&m);
                let _ = Controls::decode(&m);
                let _ = DeliveryControlArgument::decode(&m);
                let _ = Waiting::decode(&m);
                let _ = DeliveryControlResult::decode(&m);
            }
        }
    }
    // A gigabyte length and deep nesting.
    let huge = [0x30, 0x84, 0x40, 0x00, 0x00, 0x00, 0x31, 0x00];
    assert!(MessageSubmissionArgument::decode(&huge).is_err());
    let mut deep = Vec::new();
    for _ in 0..200 {
        deep.extend_from_slice(&[0x31, 0x80]);
    }
    assert!(MessageDeliveryArgument::decode(&deep).is_err());
    assert!(ReportDeliveryArgument::decode(&deep).is_err());
}

/// Delivery controls with every control (X.411 §8.3.1.3.1).
fn delivery_controls() -> DeliveryControlArgument {
    let mut ops = BitString::zeros(2);
    ops.set_bit(operations::MESSAGE_SUBMISSION_OR_MESSAGE_DELIVERY, true);
    DeliveryControlArgument {
        controls: Controls {
            restrict: true,
            permissible_operations: Some(ops),
            permissible_maximum_content_length: Some(1000),
            permissible_lowest_priority: Some(Priority::Urgent),
            permissible_content_types: Some(vec![ContentType::IPM_1988]),
            // EncodedInformationTypesConstraints SEQUENCE { acceptable-eits [1] { [0] ia5 } }
            permissible_encoded_information_types: Some(vec![
                0x30, 0x06, 0xA1, 0x04, 0x80, 0x02, 0x05, 0x20,
            ]),
            // SecurityContext [5] SET OF SecurityLabel { SET { } }
            permissible_security_context: Some(vec![0xA5, 0x02, 0x31, 0x00]),
            unknown: vec![UNKNOWN_ELEMENT.to_vec()],
        },
        extensions: vec![private_ext()],
    }
}

fn waiting() -> DeliveryControlResult {
    let mut ops = BitString::zeros(2);
    ops.set_bit(operations::MESSAGE_SUBMISSION_OR_MESSAGE_DELIVERY, true);
    let mut why = BitString::zeros(3);
    why.set_bit(waiting_messages::LONG_CONTENT, true);
    why.set_bit(waiting_messages::LOW_PRIORITY, true);
    DeliveryControlResult {
        waiting: Waiting {
            waiting_operations: ops,
            waiting_messages: why,
            waiting_content_types: vec![ContentType::IPM_1988, ContentType::BuiltIn(35)],
            waiting_encoded_information_types: Some(eits()),
            unknown: Vec::new(),
        },
        extensions: vec![private_ext()],
    }
}

#[test]
fn delivery_control_bytes() {
    // restrict FALSE alone: remove every control.
    let remove = DeliveryControlArgument {
        controls: Controls::remove(),
        extensions: Vec::new(),
    };
    assert_eq!(
        remove.encode().expect("encode"),
        [0x31, 0x03, 0x80, 0x01, 0x00]
    );
    // restrict DEFAULT TRUE, permissible-operations {} (nothing may be delivered), lowest
    // priority urgent, maximum content length 1000.
    let bytes = [
        0x31, 0x0C, 0x81, 0x01, 0x00, 0x82, 0x02, 0x03, 0xE8, 0x47, 0x01, 0x02, 0x80, 0x01, 0xFF,
    ];
    let mut bytes = bytes.to_vec();
    bytes[1] = (bytes.len() - 2) as u8;
    let a = DeliveryControlArgument::decode(&bytes).expect("decode");
    let c = &a.controls;
    assert!(c.restrict);
    assert!(!c.permits_operation(operations::MESSAGE_SUBMISSION_OR_MESSAGE_DELIVERY));
    assert!(!c.permits_operation(operations::PROBE_SUBMISSION_OR_REPORT_DELIVERY));
    assert_eq!(c.permissible_maximum_content_length, Some(1000));
    assert_eq!(c.permissible_lowest_priority, Some(Priority::Urgent));
    assert!(Controls::default().permits_operation(operations::PROBE_SUBMISSION_OR_REPORT_DELIVERY));
    // The empty Waiting is an empty SET.
    assert_eq!(Waiting::default().encode().expect("encode"), [0x31, 0x00]);
    assert!(Waiting::default().is_empty());
    assert!(!waiting().waiting.is_empty());
}

#[test]
fn controls_and_waiting_round_trip() {
    let bytes = round_trip(
        &delivery_controls(),
        DeliveryControlArgument::encode,
        DeliveryControlArgument::decode,
        |a| {
            a.controls.unknown.clear();
            a.controls.permissible_encoded_information_types = None;
            a.controls.permissible_security_context = None;
        },
    );
    let back = DeliveryControlArgument::decode(&bytes).expect("decode");
    assert_eq!(back.controls.unknown, vec![UNKNOWN_ELEMENT.to_vec()]);
    round_trip(
        &waiting(),
        DeliveryControlResult::encode,
        DeliveryControlResult::decode,
        |r| r.waiting.waiting_encoded_information_types = None,
    );
    // Submission controls and their result: no extensions, `[6]` kept whole.
    let sub = Controls {
        permissible_content_types: None,
        permissible_encoded_information_types: None,
        ..delivery_controls().controls
    };
    round_trip(&sub, Controls::encode, Controls::decode, |c| {
        c.unknown.clear();
        c.permissible_security_context = None;
    });
    round_trip(&waiting().waiting, Waiting::encode, Waiting::decode, |w| {
        w.waiting_encoded_information_types = None;
    });
    // The 1988 DeliveryControls88 sends EncodedInformationTypes `[APPLICATION 5]`.
    let mut w = Writer::new();
    w.constructed(Tag::SET, |w| w.raw(&eits()));
    let c88 = DeliveryControlArgument::decode(&w.finish()).expect("1988 form");
    assert_eq!(
        c88.controls.permissible_encoded_information_types,
        Some(eits())
    );
}

#[test]
fn controls_refuse_duplicates_and_other_types() {
    // restrict twice.
    assert!(Controls::decode(&[0x31, 0x06, 0x80, 0x01, 0x00, 0x80, 0x01, 0x00]).is_err());
    // A content length beyond ub-content-length.
    assert!(Controls::decode(&[0x31, 0x07, 0x82, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00]).is_err());
    // A SEQUENCE where the SET belongs.
    assert!(Waiting::decode(&[0x30, 0x00]).is_err());
    // A priority out of range.
    assert!(Controls::decode(&[0x31, 0x03, 0x47, 0x01, 0x07]).is_err());
}
