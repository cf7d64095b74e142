use mswitch_core::address::ORAddress;
use mswitch_core::envelope::{X400ContentType, X400Priority};

use super::*;
use crate::ber::{Oid, Tag, Writer, parse_one};

fn hex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The joined RTSE transfer segments of frames 9 and 10 of
/// `vectors/synthetic-p1-port102.pcap`: `EXTERNAL { indirect-reference 5, single-ASN1-type
/// [0] MTS-APDU }` holding a message.
fn capture() -> Vec<u8> {
    hex(&[
        "2882012b020105a0820124a08201203181cc64216315610413024742620313012013085445535450524d4416086d7367",
        "2d30303031603830366104130247426203130120a20a13085445535450524d4483074578616d706c65a50d8005536d69",
        "746881044a616e65a6051303456e67460116692d302b6315610413024742620313012013085445535450524d44311280",
        "0d3236313132393138303030305a820100a23b31396030302e6104130247426203130120a20a13085445535450524d44",
        "83074578616d706c65a50c80054a6f6e65738103426f62800101810200a0044fa04d312e6b0a130869706d2d30303031",
        "a820141e48656c6c6f2066726f6d20612073796e7468657469632050312074657374301ba0193100161548656c6c6f2c",
        "20582e34303020776f726c642e0d0a",
    ])
}

/// The MTS-APDU inside the capture's EXTERNAL.
fn capture_apdu() -> Vec<u8> {
    let c = capture();
    // 28 82 01 2b | 02 01 05 | a0 82 01 24 | <MTS-APDU>
    c[11..].to_vec()
}

/// Re-encodes a BER tree with indefinite lengths on every constructed element, as some OSI
/// stacks send it (elements already indefinite stay so).
fn indefinite(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = crate::ber::Reader::new(bytes);
    while let Some(t) = r.next().expect("valid BER") {
        if t.tag.constructed {
            // Identifier octets: one, or more for tag numbers above 30.
            let mut id_len = 1;
            if t.raw[0] & 0x1f == 0x1f {
                while t.raw[id_len] & 0x80 != 0 {
                    id_len += 1;
                }
                id_len += 1;
            }
            out.extend_from_slice(&t.raw[..id_len]);
            out.push(0x80);
            out.extend_from_slice(&indefinite(t.content));
            out.extend_from_slice(&[0, 0]);
        } else {
            out.extend_from_slice(t.raw);
        }
    }
    out
}

fn gdi() -> GlobalDomainIdentifier {
    GlobalDomainIdentifier::new("GB", " ", Some("TESTPRMD".into()))
}

fn addr(text: &str) -> ORAddress {
    ORAddress::parse_std_or(text).expect("std-or")
}

fn message_of(apdu: &MtsApdu) -> &Message {
    match apdu {
        MtsApdu::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn capture_decodes_with_the_expected_fields() {
    let (ctx, apdu) = MtsApdu::decode_external(&capture()).expect("decodes");
    assert_eq!(ctx, Some(5));
    let m = message_of(&apdu);
    let e = &m.envelope;
    assert_eq!(
        e.message_identifier.to_string(),
        "/C=GB/A= /P=TESTPRMD/;msg-0001"
    );
    assert_eq!(e.message_identifier.global_domain, gdi());
    assert_eq!(
        e.originator_name.address,
        addr("/C=GB/ADMD= /PRMD=TESTPRMD/O=Example/OU=Eng/S=Smith/G=Jane/")
    );
    assert_eq!(e.originator_name.directory_name, None);
    assert_eq!(e.content_type, ContentType::BuiltIn(22));
    assert_eq!(
        X400ContentType::from(e.content_type.clone()),
        X400ContentType::BuiltIn(22)
    );
    assert_eq!(e.priority, None);
    assert_eq!(e.priority_or_default(), Priority::Normal);
    assert_eq!(e.trace_information.len(), 1);
    let t = &e.trace_information[0];
    assert_eq!(t.global_domain, gdi());
    assert_eq!(t.domain_supplied.arrival_time.as_str(), "261129180000Z");
    assert_eq!(t.domain_supplied.routing_action, RoutingAction::Relayed);
    assert_eq!(e.per_recipient_fields.len(), 1);
    let r = &e.per_recipient_fields[0];
    assert_eq!(
        r.recipient_name.address,
        addr("/C=GB/ADMD= /PRMD=TESTPRMD/O=Example/S=Jones/G=Bob/")
    );
    assert_eq!(r.originally_specified_recipient_number, 1);
    assert!(r.per_recipient_indicators.responsibility());
    assert!(!r.per_recipient_indicators.originating_mta_report());
    assert!(
        r.per_recipient_indicators
            .originating_mta_non_delivery_report()
    );
    assert!(e.extensions.is_empty() && e.unknown.is_empty());
    assert_eq!(m.content.len(), 0x4f);
    assert_eq!(m.content[0], 0xa0, "IPM [0]");
}

#[test]
fn capture_re_encodes_byte_for_byte() {
    let (_, apdu) = MtsApdu::decode_external(&capture()).expect("decodes");
    assert_eq!(apdu.encode_external(5).expect("encodes"), capture());
    assert_eq!(apdu.encode().expect("encodes"), capture_apdu());
    assert_eq!(MtsApdu::decode(&capture_apdu()).expect("decodes"), apdu);
}

#[test]
fn indefinite_lengths_decode_to_the_same_value() {
    let definite = capture_apdu();
    let indef = indefinite(&definite);
    assert_ne!(indef, definite);
    assert!(indef.len() > definite.len());
    let a = MtsApdu::decode(&indef).expect("indefinite decodes");
    assert_eq!(a, MtsApdu::decode(&definite).expect("definite decodes"));
    assert_eq!(a.encode().expect("encodes"), definite);
    // The whole EXTERNAL, indefinite too.
    let (ctx, b) = MtsApdu::decode_external(&indefinite(&capture())).expect("decodes");
    assert_eq!((ctx, b), (Some(5), a));
}

#[test]
fn constructed_content_octet_string_is_joined() {
    let (_, apdu) = MtsApdu::decode_external(&capture()).expect("decodes");
    let m = message_of(&apdu);
    let mut w = Writer::new();
    w.constructed(Tag::context(0), |w| {
        m.envelope.encode(w).expect("envelope");
        w.constructed(Tag::OCTET_STRING, |w| {
            let (a, b) = m.content.split_at(10);
            w.octets(Tag::OCTET_STRING, a);
            w.octets(Tag::OCTET_STRING, b);
        });
    });
    let bytes = w.finish();
    assert_eq!(MtsApdu::decode(&bytes).expect("decodes"), apdu);
    assert_eq!(MtsApdu::decode(&indefinite(&bytes)).expect("decodes"), apdu);
}

fn sample_envelope() -> MessageTransferEnvelope {
    let (_, apdu) = MtsApdu::decode_external(&capture()).expect("decodes");
    message_of(&apdu).envelope.clone()
}

fn private_ext(critical: bool) -> ExtensionField {
    let mut c = Criticality::default();
    c.set_for_transfer(critical);
    ExtensionField {
        kind: ExtensionType::Private(Oid::new(&[1, 3, 6, 1, 4, 1, 99999, 1])),
        criticality: Some(c),
        value: Some(vec![0x30, 0x03, 0x02, 0x01, 0x07]),
    }
}

#[test]
fn unknown_elements_and_extensions_are_relayed_unchanged() {
    let mut e = sample_envelope();
    // A standard extension we do not interpret, with a value and no criticality.
    e.extensions.push(ExtensionField::standard(
        99,
        vec![0xa5, 0x04, 0x16, 0x02, b'h', b'i'],
    ));
    e.extensions.push(private_ext(false));
    e.extensions.push(ExtensionField {
        kind: ExtensionType::Standard(standard_extension::DL_EXPANSION_PROHIBITED),
        criticality: None,
        value: None,
    });
    e.per_recipient_fields[0]
        .extensions
        .push(private_ext(false));
    e.per_recipient_fields[0]
        .unknown
        .push(vec![0x9f, 0x40, 0x01, 0x2a]);
    e.unknown.push(vec![0xc5, 0x02, 0xab, 0xcd]);
    e.unknown.push(vec![0x7f, 0x30, 0x03, 0x04, 0x01, 0xff]);
    let mut w = Writer::new();
    e.encode(&mut w).expect("encodes");
    let bytes = w.finish();
    // The unknown elements appear byte for byte in the encoding.
    for u in &e.unknown {
        assert!(bytes.windows(u.len()).any(|win| win == u.as_slice()));
    }
    let d = MessageTransferEnvelope::decode(&parse_one(&bytes).expect("ber")).expect("decodes");
    assert_eq!(d, e);
    let mut w = Writer::new();
    d.encode(&mut w).expect("re-encodes");
    assert_eq!(w.finish(), bytes);
    // Handmade: the capture's envelope with an unknown element appended by hand.
    let env = parse_one(&capture_apdu())
        .expect("ber")
        .children()
        .expect("c")
        .next_required("env")
        .expect("env")
        .raw
        .to_vec();
    let mut content = env[3..].to_vec(); // 31 81 cc
    content.extend_from_slice(&[0xdf, 0x81, 0x00, 0x02, 0x01, 0x02]);
    let mut w = Writer::new();
    w.set(|w| w.raw(&content));
    let handmade = w.finish();
    let d = MessageTransferEnvelope::decode(&parse_one(&handmade).expect("ber")).expect("decodes");
    assert_eq!(d.unknown, vec![vec![0xdf, 0x81, 0x00, 0x02, 0x01, 0x02]]);
    let mut w = Writer::new();
    d.encode(&mut w).expect("re-encodes");
    assert_eq!(w.finish(), handmade);
}

#[test]
fn critical_unsupported_extensions_are_found() {
    let mut e = sample_envelope();
    assert_eq!(e.critical_unsupported(&[]), None);
    e.extensions.push(private_ext(false));
    assert_eq!(e.critical_unsupported(&[]), None, "not critical");
    e.per_recipient_fields[0].extensions.push(private_ext(true));
    let found = e.critical_unsupported(&[]).expect("critical");
    assert!(found.critical_for_transfer());
    let supported = [found.kind.clone()];
    assert_eq!(e.critical_unsupported(&supported), None);
    // Criticality survives the wire: `[1] 03 02 06 40`-style BIT STRING.
    let mut w = Writer::new();
    private_ext(true).encode(&mut w);
    let bytes = w.finish();
    assert!(bytes.windows(4).any(|x| x == [0x81, 0x02, 0x06, 0x40]));
    let d = ExtensionField::decode(&parse_one(&bytes).expect("ber")).expect("decodes");
    assert!(d.critical_for_transfer());
    assert!(!d.criticality.as_ref().expect("c").for_delivery());
}

fn round_trip_apdu(apdu: &MtsApdu) -> Vec<u8> {
    let bytes = apdu.encode().expect("encodes");
    let d = MtsApdu::decode(&bytes).expect("decodes");
    assert_eq!(&d, apdu);
    assert_eq!(d.encode().expect("re-encodes"), bytes);
    // Sent with indefinite lengths: the elements kept whole (extension values, encoded
    // information types, ...) stay as received, the rest is re-encoded definite.
    let indef = indefinite(&bytes);
    let i = MtsApdu::decode(&indef).expect("indefinite decodes");
    assert_eq!(indefinite(&i.encode().expect("re-encodes")), indef);
    bytes
}

fn trace_element(rerouted: bool) -> TraceInformationElement {
    let mut other = OtherActions::default();
    other.set_redirected(true);
    TraceInformationElement {
        global_domain: gdi(),
        domain_supplied: DomainSuppliedInformation {
            arrival_time: UtcTime::parse("2611291800+0100").expect("time"),
            routing_action: if rerouted {
                RoutingAction::Rerouted
            } else {
                RoutingAction::Relayed
            },
            attempted_domain: rerouted.then(|| GlobalDomainIdentifier::new("234", "0", None)),
            deferred_time: Some(UtcTime::parse("261130000000Z").expect("time")),
            converted_eits: Some(vec![0x65, 0x04, 0x80, 0x02, 0x05, 0x20]),
            other_actions: Some(other),
        },
    }
}

fn internal_element(n: u8) -> InternalTraceInformationElement {
    InternalTraceInformationElement {
        global_domain: gdi(),
        mta_name: format!("mta-{n}.example"),
        mta_supplied: MtaSuppliedInformation {
            arrival_time: UtcTime::from_unix_seconds(1_800_000_000 + i64::from(n)).expect("t"),
            routing_action: RoutingAction::Relayed,
            attempted: match n % 3 {
                0 => None,
                1 => Some(AttemptedMta::Mta("down.example".into())),
                _ => Some(AttemptedMta::Domain(gdi())),
            },
            deferred_time: None,
            converted_eits: None,
            other_actions: None,
        },
    }
}

#[test]
fn message_with_every_field_round_trips() {
    let mut e = sample_envelope();
    e.original_eits = Some(vec![0x65, 0x04, 0x80, 0x02, 0x05, 0x20]);
    e.content_type = ContentType::Extended(Oid::new(&[2, 6, 1, 10, 0]));
    e.content_identifier = Some("ipm-0001".into());
    e.priority = Some(Priority::Urgent);
    let mut pmi = PerMessageIndicators::default();
    pmi.set_alternate_recipient_allowed(true);
    pmi.set_content_return_request(true);
    e.per_message_indicators = Some(pmi);
    e.deferred_delivery_time = Some(UtcTime::parse("2611291800Z").expect("t"));
    e.per_domain_bilateral_information = Some(vec![0xa1, 0x02, 0x30, 0x00]);
    e.append_trace(trace_element(true)).expect("trace");
    e.append_internal_trace(internal_element(1))
        .expect("internal");
    e.append_internal_trace(internal_element(2))
        .expect("internal");
    e.append_internal_trace(internal_element(3))
        .expect("internal");
    let mut ldt = Writer::new();
    UtcTime::parse("261201000000Z")
        .expect("t")
        .encode(&mut ldt, Tag::UTC_TIME);
    e.extensions.push(ExtensionField::standard(
        standard_extension::LATEST_DELIVERY_TIME,
        ldt.finish(),
    ));
    let mut r2 = PerRecipientMessageTransferFields::new(
        ORName::from(addr("/C=GB/ADMD= /PRMD=TESTPRMD/CN=Ops Desk/")),
        2,
    );
    r2.explicit_conversion = Some(0);
    r2.per_recipient_indicators.set_originator_report(true);
    e.per_recipient_fields.push(r2);
    let apdu = MtsApdu::Message(Message {
        envelope: e.clone(),
        content: b"body".to_vec(),
    });
    round_trip_apdu(&apdu);
    assert_eq!(
        e.latest_delivery_time()
            .expect("ldt")
            .map(|t| t.as_str().to_owned()),
        Some("261201000000Z".to_owned())
    );
    let it = e.internal_trace().expect("internal trace");
    assert_eq!(
        it,
        vec![
            internal_element(1),
            internal_element(2),
            internal_element(3)
        ]
    );
    e.set_internal_trace(&[]).expect("cleared");
    assert!(e.internal_trace().expect("it").is_empty());
    assert_eq!(Priority::from(X400Priority::Urgent), Priority::Urgent);
    assert_eq!(
        X400Priority::from(Priority::NonUrgent),
        X400Priority::NonUrgent
    );
    assert_eq!(
        ContentType::from(X400ContentType::Extended(vec![2, 6, 1, 10, 0])),
        ContentType::Extended(Oid::new(&[2, 6, 1, 10, 0]))
    );
}

#[test]
fn probe_round_trips() {
    let e = sample_envelope();
    let probe = ProbeTransferEnvelope {
        probe_identifier: MtsIdentifier::new(gdi(), "probe-1"),
        originator_name: e.originator_name.clone(),
        original_eits: None,
        content_type: ContentType::IPM_1988,
        content_identifier: None,
        content_length: Some(123_456),
        per_message_indicators: None,
        per_domain_bilateral_information: None,
        trace_information: e.trace_information.clone(),
        extensions: vec![private_ext(true)],
        per_recipient_fields: e.per_recipient_fields.clone(),
        unknown: vec![vec![0xc1, 0x00]],
    };
    let bytes = round_trip_apdu(&MtsApdu::Probe(Probe {
        envelope: probe.clone(),
    }));
    assert_eq!(bytes[0], 0xa2, "probe [2]");
    assert!(probe.critical_unsupported(&[]).is_some());
}

#[test]
fn reports_round_trip() {
    let e = sample_envelope();
    let nd = PerRecipientReportTransferFields {
        actual_recipient_name: e.per_recipient_fields[0].recipient_name.clone(),
        originally_specified_recipient_number: 1,
        per_recipient_indicators: e.per_recipient_fields[0].per_recipient_indicators.clone(),
        last_trace_information: LastTraceInformation {
            arrival_time: UtcTime::parse("261129180000Z").expect("t"),
            converted_eits: None,
            report_type: ReportType::NonDelivery {
                reason_code: non_delivery_reason::UNABLE_TO_TRANSFER,
                diagnostic_code: Some(non_delivery_diagnostic::UNRECOGNISED_OR_NAME),
            },
        },
        originally_intended_recipient_name: Some(e.originator_name.clone()),
        supplementary_information: Some("no such user".into()),
        extensions: vec![private_ext(false)],
        unknown: Vec::new(),
    };
    let mut dr = nd.clone();
    dr.originally_specified_recipient_number = 2;
    dr.originally_intended_recipient_name = None;
    dr.supplementary_information = None;
    dr.last_trace_information.converted_eits = Some(vec![0x65, 0x04, 0x80, 0x02, 0x05, 0x20]);
    dr.last_trace_information.report_type = ReportType::Delivery {
        message_delivery_time: UtcTime::parse("261129180500Z").expect("t"),
        type_of_mts_user: Some(type_of_mts_user::PRIVATE),
    };
    let report = Report {
        envelope: ReportTransferEnvelope {
            report_identifier: MtsIdentifier::new(gdi(), "rpt-1"),
            report_destination_name: e.originator_name.clone(),
            trace_information: e.trace_information.clone(),
            extensions: vec![ExtensionField::standard(
                standard_extension::INTERNAL_TRACE_INFORMATION,
                super::trace::encode_internal_trace(&[internal_element(0)]).expect("it"),
            )],
            unknown: Vec::new(),
        },
        content: ReportTransferContent {
            subject_identifier: e.message_identifier.clone(),
            subject_intermediate_trace: e.trace_information.clone(),
            original_eits: None,
            content_type: Some(ContentType::IPM_1988),
            content_identifier: Some("ipm-0001".into()),
            returned_content: Some(b"returned".to_vec()),
            additional_information: Some(vec![0xa2, 0x02, 0x05, 0x00]),
            extensions: Vec::new(),
            per_recipient_fields: vec![nd, dr],
            unknown: vec![vec![0x9f, 0x50, 0x00]],
        },
    };
    let bytes = round_trip_apdu(&MtsApdu::Report(report));
    assert_eq!(bytes[0], 0xa1, "report [1]");
}

#[test]
fn or_names_map_teletex_and_keep_unknown_extension_attributes() {
    // ORName { BISA { C=GB, A=" " }, ExtensionAttributes { teletex-common-name (2)
    // "Ren\xe9", pds-name (7) "PDS" } }
    let bytes = hex(&[
        "60",
        "29",
        "300b",
        "6104130247426203130120",
        "311a",
        "300b",
        "800102",
        "a106",
        "1404",
        "52656ee9",
        "300b",
        "800107",
        "a106",
        "1304",
        "50445321",
    ]);
    let tlv = parse_one(&bytes).expect("ber");
    let n = ORName::decode(&tlv).expect("decodes");
    assert_eq!(n.address.common_name.as_deref(), Some("René"));
    assert!(n.teletex.common_name);
    assert_eq!(n.extra_extension_attributes.len(), 1);
    let mut w = Writer::new();
    n.encode(&mut w).expect("encodes");
    assert_eq!(w.finish(), bytes);

    // Every built-in attribute, DDAs, a printable CN next to a teletex one (kept raw), a
    // teletex organization and a directory name.
    let mut a = addr(
        "/C=234/ADMD=0/PRMD=P1/X121=12345/T-ID=term/UA-ID=42/S=Smith/G=Jane/I=JQ/GQ=Jr/OU=A/OU=B/CN=Jane/DD.RFC-822=jane(a)example.com/DD.X=y/",
    );
    a.organization = Some("Soci\u{e9}t\u{e9}".into());
    let n = ORName {
        address: a,
        directory_name: Some(vec![0xa0, 0x02, 0x30, 0x00]),
        teletex: TeletexFields {
            organization: true,
            ..TeletexFields::default()
        },
        extra_extension_attributes: vec![hex(&["300b", "800102", "a106", "1404", "4a616e65"])],
    };
    let mut w = Writer::new();
    n.encode(&mut w).expect("encodes");
    let bytes = w.finish();
    let d = ORName::decode(&parse_one(&bytes).expect("ber")).expect("decodes");
    assert_eq!(d, n);
    let mut w = Writer::new();
    d.encode(&mut w).expect("re-encodes");
    assert_eq!(w.finish(), bytes);
    // Numeric country and ADMD went out as NumericString.
    assert!(
        bytes
            .windows(5)
            .any(|x| x == [0x61, 0x05, 0x12, 0x03, b'2'])
    );
}

#[test]
fn bind_vectors_from_the_capture() {
    // Frame 6: MTABindArgument inside bind-invoke [16]; frame 7: MTABindResult.
    let arg = hex(&["a11b800d6d74612d612e6578616d706c65a10a16087365637265742d61"]);
    let res = hex(&["a11b800d6d74612d622e6578616d706c65a10a16087365637265742d62"]);
    let a = MtaBindArgument::decode(&arg).expect("argument");
    assert_eq!(
        a,
        MtaBindArgument::Authenticated {
            initiator_name: "mta-a.example".into(),
            initiator_credentials: Credentials::simple("secret-a"),
            security_context: None,
        }
    );
    assert_eq!(a.encode().expect("encodes"), arg);
    let r = MtaBindResult::decode(&res).expect("result");
    assert_eq!(
        r,
        MtaBindResult::Authenticated {
            responder_name: "mta-b.example".into(),
            responder_credentials: Credentials::simple("secret-b"),
        }
    );
    assert_eq!(r.encode().expect("encodes"), res);
    // Indefinite lengths from rasn too.
    assert_eq!(
        MtaBindArgument::decode(&indefinite(&arg)).expect("indef"),
        a
    );

    assert_eq!(
        MtaBindArgument::decode(&[0x05, 0x00]),
        Ok(MtaBindArgument::Null)
    );
    assert_eq!(MtaBindArgument::Null.encode(), Ok(vec![0x05, 0x00]));
    assert_eq!(MtaBindResult::Null.encode(), Ok(vec![0x05, 0x00]));
    let octets = MtaBindArgument::Authenticated {
        initiator_name: "x".into(),
        initiator_credentials: Credentials::Simple(Password::OctetString(vec![0, 0xff])),
        security_context: Some(vec![vec![0x31, 0x00]]),
    };
    let b = octets.encode().expect("encodes");
    assert_eq!(MtaBindArgument::decode(&b), Ok(octets));
    let strong = MtaBindResult::Authenticated {
        responder_name: "y".into(),
        responder_credentials: Credentials::Strong(StrongCredentials(vec![0xa0, 0x00])),
    };
    let b = strong.encode().expect("encodes");
    assert_eq!(MtaBindResult::decode(&b), Ok(strong));
    for e in [
        MtaBindError::Busy,
        MtaBindError::AuthenticationError,
        MtaBindError::UnacceptableDialogueMode,
        MtaBindError::UnacceptableSecurityContext,
        MtaBindError::InadequateAssociationConfidentiality,
        MtaBindError::Other(9),
    ] {
        let b = e.encode().expect("encodes");
        assert_eq!(MtaBindError::decode(&b), Ok(e));
    }
    assert_eq!(
        MtaBindError::AuthenticationError.encode(),
        Ok(vec![2, 1, 2])
    );
    assert!(matches!(
        MtaBindError::decode(&[2, 2, 1, 1]),
        Err(MtsError::Ber(BerError::TooLarge(_)))
    ));
    // Too long a password or MTA name.
    let long = MtaBindArgument::Authenticated {
        initiator_name: "x".repeat(UB_MTA_NAME_LENGTH + 1),
        initiator_credentials: Credentials::simple("p"),
        security_context: None,
    };
    assert!(matches!(long.encode(), Err(MtsError::Encode { .. })));
    // Garbage.
    assert!(matches!(
        MtaBindArgument::decode(&[0xa1, 0x00]),
        Err(MtsError::Decode { .. })
    ));
}

#[test]
fn utc_time_parses_and_converts() {
    let t = UtcTime::parse("261129180000Z").expect("valid");
    assert_eq!(t.unix_seconds(), 1_795_975_200);
    assert_eq!(UtcTime::from_unix_seconds(1_795_975_200).expect("t"), t);
    let o = UtcTime::parse("2611291900+0100").expect("valid");
    assert_eq!(o.unix_seconds(), t.unix_seconds());
    let ts = t.to_timestamp().expect("after 1970");
    assert_eq!(UtcTime::from_timestamp(ts), Some(t));
    assert_eq!(
        UtcTime::parse("500101000000Z")
            .expect("1950")
            .unix_seconds(),
        -631_152_000
    );
    assert_eq!(
        UtcTime::parse("000229000000Z")
            .expect("2000 leap")
            .unix_seconds(),
        951_782_400
    );
    for bad in [
        "",
        "2611291800",
        "261129180000",
        "261329180000Z",
        "260230000000Z",
        "2611291860Z",
        "2611291800+2400",
        "2611291800Z ",
        "26112918000000Z",
        "2611291800+01",
    ] {
        assert!(UtcTime::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(UtcTime::from_unix_seconds(4_102_444_800), None, "2100");
}

#[test]
fn upper_bounds_are_enforced() {
    let env = |f: &dyn Fn(&mut MessageTransferEnvelope)| {
        let mut e = sample_envelope();
        f(&mut e);
        e
    };
    // 512 trace elements are fine, 513 are refused on encoding and on decoding.
    let mut e = env(&|_| {});
    for _ in 1..UB_TRANSFERS {
        e.append_trace(trace_element(false)).expect("within bound");
    }
    assert!(e.append_trace(trace_element(false)).is_err());
    let mut w = Writer::new();
    e.encode(&mut w).expect("512 encode");
    let ok = w.finish();
    assert!(MessageTransferEnvelope::decode(&parse_one(&ok).expect("ber")).is_ok());
    e.trace_information.push(trace_element(false));
    assert!(matches!(
        e.encode(&mut Writer::new()),
        Err(MtsError::Encode { .. })
    ));
    // Hand-build 513 elements on the wire.
    let mut one = Writer::new();
    trace_element(false).encode(&mut one).expect("trace");
    let one = one.finish();
    let mut w = Writer::new();
    w.constructed(Tag::application(9), |w| {
        for _ in 0..=UB_TRANSFERS {
            w.raw(&one);
        }
    });
    let trace = w.finish();
    assert_eq!(
        super::trace::decode_trace(&parse_one(&trace).expect("ber")),
        Err(MtsError::Ber(BerError::TooLarge("trace-information")))
    );
    // Strings beyond their bounds, on the wire.
    let long_local = hex(&[
        "641b",
        "6315610413024742620313012013085445535450524d44",
        "1621",
    ])
    .into_iter()
    .chain(std::iter::repeat_n(b'x', 33))
    .collect::<Vec<u8>>();
    let mut fixed = long_local.clone();
    fixed[1] = (fixed.len() - 2) as u8;
    assert!(matches!(
        MtsIdentifier::decode(&parse_one(&fixed).expect("ber")),
        Err(MtsError::Ber(BerError::TooLarge("local-identifier")))
    ));
    // Five organizational units.
    let mut n = ORName::from(addr("/C=GB/ADMD= /OU=A/"));
    n.address.organizational_units = vec!["A".into(); 5];
    assert!(matches!(
        n.encode(&mut Writer::new()),
        Err(MtsError::Encode { .. })
    ));
    let ous = hex(&[
        "601e",
        "301c",
        "6104130247426203130120",
        "a60f",
        "130141",
        "130142",
        "130143",
        "130144",
        "130145",
    ]);
    assert_eq!(
        ORName::decode(&parse_one(&ous).expect("ber")),
        Err(MtsError::Ber(BerError::TooLarge(
            "organizational-unit-names"
        )))
    );
    // Recipient numbers and content identifiers.
    let e = env(&|e| e.content_identifier = Some("x".repeat(UB_CONTENT_ID_LENGTH + 1)));
    assert!(matches!(
        e.encode(&mut Writer::new()),
        Err(MtsError::Encode { .. })
    ));
    let mut prf = sample_envelope().per_recipient_fields[0].clone();
    prf.originally_specified_recipient_number = UB_RECIPIENTS as i64 + 1;
    let mut w = Writer::new();
    prf.encode(&mut w).expect("encodes");
    assert!(matches!(
        PerRecipientMessageTransferFields::decode(&parse_one(&w.finish()).expect("ber")),
        Err(MtsError::Ber(BerError::TooLarge(_)))
    ));
    // Too many recipients (32768 minimal SETs: the count is checked as they are read).
    let rcpt = {
        let mut w = Writer::new();
        sample_envelope().per_recipient_fields[0]
            .encode(&mut w)
            .expect("r");
        w.finish()
    };
    let mut w = Writer::new();
    w.constructed(Tag::context(2), |w| {
        for _ in 0..=UB_RECIPIENTS {
            w.raw(&rcpt);
        }
    });
    let recips = w.finish();
    let mut w = Writer::new();
    let env_bytes = {
        let mut w2 = Writer::new();
        sample_envelope().encode(&mut w2).expect("env");
        w2.finish()
    };
    let env_tlv = parse_one(&env_bytes).expect("ber");
    w.set(|w| {
        let mut r = env_tlv.children().expect("c");
        while let Some(t) = r.next().expect("t") {
            if t.tag != Tag::context(2).constructed() {
                w.raw(t.raw);
            }
        }
        w.raw(&recips);
    });
    let big = w.finish();
    assert_eq!(
        MessageTransferEnvelope::decode(&parse_one(&big).expect("ber")),
        Err(MtsError::Ber(BerError::TooLarge("per-recipient-fields")))
    );
    // A bit string over ub-bit-options.
    let bits = [0x81, 0x04, 0x00, 0xff, 0xff, 0xff];
    assert!(PerRecipientIndicators::decode(&parse_one(&bits).expect("ber")).is_err());
    // Error mapping to a non-delivery.
    assert_eq!(
        MtsError::Ber(BerError::TooLarge("x")).non_delivery(),
        (
            non_delivery_reason::UNABLE_TO_TRANSFER,
            non_delivery_diagnostic::SIZE_CONSTRAINT_VIOLATION
        )
    );
}

#[test]
fn hostile_inputs_are_errors() {
    let apdu = capture_apdu();
    // Every truncation fails cleanly.
    for n in 0..apdu.len() {
        assert!(MtsApdu::decode(&apdu[..n]).is_err(), "prefix {n}");
    }
    let ext = capture();
    for n in 0..ext.len() {
        assert!(MtsApdu::decode_external(&ext[..n]).is_err(), "prefix {n}");
    }
    // Every single-byte corruption either fails or decodes to something that re-encodes.
    for i in 0..apdu.len() {
        for x in [0x00u8, 0x80, 0xff] {
            let mut b = apdu.clone();
            b[i] ^= x;
            if let Ok(a) = MtsApdu::decode(&b) {
                let _ = a.encode();
            }
        }
    }
    // Gigabyte lengths.
    assert!(matches!(
        MtsApdu::decode(&[0xa0, 0x84, 0x40, 0x00, 0x00, 0x00, 0x31, 0x00]),
        Err(MtsError::Ber(BerError::Truncated(_)))
    ));
    let mut inner = vec![
        0xa0, 0x0a, 0x31, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x64, 0x00, 0x00, 0x00,
    ];
    assert!(MtsApdu::decode(&inner).is_err());
    inner.truncate(6);
    assert!(MtsApdu::decode(&inner).is_err());
    // Deep nesting, definite and indefinite.
    let mut deep = vec![0x04, 0x00];
    for _ in 0..200 {
        let mut w = Writer::new();
        w.constructed(Tag::context(0), |w| w.raw(&deep));
        deep = w.finish();
    }
    assert!(MtsApdu::decode(&deep).is_err());
    let mut deep = Vec::new();
    for _ in 0..200 {
        deep.extend_from_slice(&[0xa0, 0x80]);
    }
    deep.extend(std::iter::repeat_n(0u8, 400));
    assert!(MtsApdu::decode(&deep).is_err());
    // Wrong CHOICE, missing elements, duplicates.
    assert!(MtsApdu::decode(&[0xa3, 0x00]).is_err());
    assert!(MtsApdu::decode(&[0xa0, 0x02, 0x31, 0x00]).is_err());
    assert_eq!(
        MessageTransferEnvelope::decode(&parse_one(&[0x31, 0x00]).expect("ber")),
        Err(MtsError::Ber(BerError::Missing("message-identifier")))
    );
    let dup = hex(&["3106", "460116", "460116"]);
    assert_eq!(
        MessageTransferEnvelope::decode(&parse_one(&dup).expect("ber")),
        Err(MtsError::Ber(BerError::Duplicate("content-type")))
    );
    // A MTS-APDU with trailing bytes.
    let mut t = apdu.clone();
    t.push(0);
    assert!(MtsApdu::decode(&t).is_err());
}

#[test]
fn bit_strings_grow_and_report_bits() {
    let mut b = BitString::new();
    assert!(b.is_empty() && !b.bit(3));
    b.set_bit(9, true);
    assert_eq!((b.bytes.clone(), b.unused, b.len()), (vec![0, 0x40], 6, 10));
    b.set_bit(12, false);
    assert_eq!(b.len(), 10);
    b.set_bit(9, false);
    assert!(!b.bit(9));
    let ind = PerRecipientIndicators::default();
    assert_eq!(ind.0.len(), 8);
}
