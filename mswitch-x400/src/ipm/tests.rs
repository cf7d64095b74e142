use mswitch_core::address::ORAddress;

use super::*;
use crate::ber::{External, ExternalEncoding, Oid, Reader, Tag, Writer, parse_one};
use crate::mts::{MtsApdu, ORName, UtcTime};

fn hex(parts: &[&str]) -> Vec<u8> {
    let s: String = parts.concat();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The joined RTSE transfer segments of frames 9 and 10 of
/// `vectors/synthetic-p1-port102.pcap` (the same bytes as in `mts/tests.rs`).
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

/// The P22 content of the capture's message.
fn capture_content() -> Vec<u8> {
    let (_, apdu) = MtsApdu::decode_external(&capture()).expect("capture decodes");
    match apdu {
        MtsApdu::Message(m) => m.content,
        other => panic!("not a message: {other:?}"),
    }
}

/// Re-encodes a BER tree with indefinite lengths on every constructed element.
fn indefinite(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Reader::new(bytes);
    while let Some(t) = r.next().expect("valid BER") {
        if t.tag.constructed {
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

fn name(text: &str) -> ORName {
    ORName::from(ORAddress::parse_std_or(text).expect("std-or"))
}

fn ipm_of(o: &InformationObject) -> &Ipm {
    match o {
        InformationObject::Ipm(m) => m,
        other => panic!("not an IPM: {other:?}"),
    }
}

fn ipn_of(o: &InformationObject) -> &Ipn {
    match o {
        InformationObject::Ipn(n) => n,
        other => panic!("not an IPN: {other:?}"),
    }
}

/// Encodes, decodes, re-encodes: the value and the bytes must come back.
fn round_trip(o: &InformationObject) -> Vec<u8> {
    let bytes = o.encode().expect("encodes");
    let back = InformationObject::decode(&bytes).expect("decodes");
    assert_eq!(&back, o);
    assert_eq!(back.encode().expect("re-encodes"), bytes);
    bytes
}

#[test]
fn capture_ipm_decodes_and_re_encodes_byte_for_byte() {
    let content = capture_content();
    let o = InformationObject::decode(&content).expect("decodes");
    let m = ipm_of(&o);
    let h = &m.heading;
    assert_eq!(h.this_ipm, IpmIdentifier::new(None, "ipm-0001"));
    assert_eq!(
        h.subject_text().as_deref(),
        Some("Hello from a synthetic P1 test")
    );
    assert_eq!(
        h.display_subject().as_deref(),
        Some("Hello from a synthetic P1 test")
    );
    // The synthetic heading carries only this-IPM and the subject.
    assert_eq!(h.originator, None);
    assert!(h.primary_recipients.is_empty() && h.copy_recipients.is_empty());
    assert_eq!(h.importance, Importance::Normal);
    assert!(!h.auto_forwarded);
    assert!(h.extensions.is_empty() && h.unknown.is_empty());
    assert_eq!(
        m.body,
        vec![BodyPart::Ia5Text {
            repertoire: None,
            text: "Hello, X.400 world.\r\n".into()
        }]
    );
    assert_eq!(o.encode().expect("encodes"), content);
}

#[test]
fn capture_ipm_with_a_heading_added_keeps_its_body() {
    let o = InformationObject::decode(&capture_content()).expect("decodes");
    let mut m = ipm_of(&o).clone();
    m.heading.originator = Some(ORDescriptor::formal(name(
        "/C=GB/ADMD= /PRMD=TESTPRMD/O=Example/OU=Eng/S=Smith/G=Jane/",
    )));
    m.heading
        .primary_recipients
        .push(RecipientSpecifier::new(ORDescriptor::formal(name(
            "/C=GB/ADMD= /PRMD=TESTPRMD/O=Example/S=Jones/G=Bob/",
        ))));
    let bytes = round_trip(&InformationObject::Ipm(m.clone()));
    let back = InformationObject::decode(&bytes).expect("decodes");
    let h = &ipm_of(&back).heading;
    assert_eq!(
        h.originator
            .as_ref()
            .and_then(|o| o.formal_name.as_ref())
            .and_then(|n| n.address.personal_name.as_ref())
            .map(|p| p.surname.as_str()),
        Some("Smith")
    );
    assert_eq!(ipm_of(&back).body, m.body);
}

fn general_text_part() -> BodyPart {
    BodyPart::from_general_text(&GeneralText::latin1("Grüße aus Köln").expect("latin-1"))
        .expect("general text")
}

fn full_heading() -> Heading {
    let jane = name("/C=GB/ADMD= /PRMD=TESTPRMD/O=Example/OU=Eng/S=Smith/G=Jane/");
    let bob = name("/C=GB/ADMD= /PRMD=TESTPRMD/O=Example/S=Jones/G=Bob/");
    let mut h = Heading::new(IpmIdentifier::new(Some(jane.clone()), "ipm-0002"));
    h.originator = Some(ORDescriptor {
        formal_name: Some(jane.clone()),
        free_form_name: TeletexString::from_latin1("Jane Smith (Café)"),
        telephone_number: Some("+44 20 7946 0000".into()),
    });
    h.authorizing_users = vec![ORDescriptor::formal(jane.clone())];
    let mut primary = RecipientSpecifier::new(ORDescriptor::formal(bob.clone()));
    primary.notification_requests.set_rn(true);
    primary.notification_requests.set_nrn(true);
    primary.notification_requests.set_ipm_return(true);
    primary.reply_requested = true;
    primary.recipient_extensions.push(IpmsExtension::new(
        oid::ID_REX_PRECEDENCE,
        Some(vec![0x02, 0x01, 0x05]),
    ));
    h.primary_recipients = vec![primary];
    h.copy_recipients = vec![RecipientSpecifier::new(ORDescriptor {
        formal_name: None,
        free_form_name: TeletexString::from_latin1("Someone without an address"),
        telephone_number: None,
    })];
    h.blind_copy_recipients = vec![RecipientSpecifier::new(ORDescriptor::formal(jane.clone()))];
    h.replied_to_ipm = Some(IpmIdentifier::new(Some(bob.clone()), "orig-77"));
    h.obsoleted_ipms = vec![
        IpmIdentifier::new(None, "old-1"),
        IpmIdentifier::new(None, ""),
    ];
    h.related_ipms = vec![IpmIdentifier::new(Some(bob.clone()), "rel-9")];
    h.set_subject("Überweisung 2026").expect("subject");
    h.expiry_time = Some(UtcTime::parse("261231235959Z").expect("time"));
    h.reply_time = Some(UtcTime::parse("2612011200+0100").expect("time"));
    h.reply_recipients = vec![ORDescriptor::formal(bob)];
    h.importance = Importance::High;
    h.sensitivity = Some(Sensitivity::CompanyConfidential);
    h.auto_forwarded = true;
    h.extensions
        .push(IpmsExtension::languages(&["de", "en-GB"]).expect("languages"));
    h.extensions
        .push(IpmsExtension::auto_submitted(AutoSubmitted::AutoGenerated));
    h.extensions
        .push(IpmsExtension::new(oid::ID_HEX_INCOMPLETE_COPY, None));
    h.extensions.push(IpmsExtension::new(
        &[1, 3, 6, 1, 4, 1, 99999, 7],
        Some(vec![0x30, 0x03, 0x01, 0x01, 0xff]),
    ));
    // A heading element from a later edition.
    h.unknown.push(vec![0xbf, 0x14, 0x03, 0x02, 0x01, 0x01]);
    h
}

fn full_ipm() -> Ipm {
    let forwarded = Ipm::new(
        Heading::new(IpmIdentifier::new(None, "fwd-1")),
        vec![BodyPart::ia5_text("forwarded text")],
    );
    let file_transfer = BodyPart::Extended {
        parameters: None,
        data: External {
            direct_reference: Some(Oid::new(oid::ID_ET_FILE_TRANSFER)),
            indirect_reference: None,
            data_value_descriptor: None,
            encoding: ExternalEncoding::SingleAsn1Type(vec![0x30, 0x03, 0x04, 0x01, 0x41]),
        },
    };
    Ipm::new(
        full_heading(),
        vec![
            BodyPart::Ia5Text {
                repertoire: Some(5),
                text: "Line one\r\nLine two\r\n".into(),
            },
            BodyPart::Ia5Text {
                repertoire: Some(2),
                text: "ITA2".into(),
            },
            BodyPart::Message {
                parameters: MessageParameters {
                    delivery_time: Some(UtcTime::parse("261129180000Z").expect("time")),
                    delivery_envelope: Some(vec![0xa1, 0x03, 0x02, 0x01, 0x16]),
                },
                ipm: Box::new(forwarded),
            },
            BodyPart::Message {
                parameters: MessageParameters::default(),
                ipm: Box::new(Ipm::new(
                    Heading::new(IpmIdentifier::new(None, "x")),
                    vec![],
                )),
            },
            BodyPart::Bilaterally(vec![0, 1, 2, 0xff]),
            general_text_part(),
            BodyPart::from_general_text(&GeneralText::utf8("日本語のテキスト")).expect("utf-8"),
            file_transfer,
            // g3-facsimile [3]: parameters SET {}, data SEQUENCE OF BIT STRING.
            BodyPart::Unknown {
                tag: Tag::context(3).constructed(),
                raw: vec![0xa3, 0x08, 0x31, 0x00, 0x30, 0x04, 0x03, 0x02, 0x00, 0xaa],
            },
            // teletex [5]: parameters SET {}, data SEQUENCE OF TeletexString.
            BodyPart::Unknown {
                tag: Tag::context(5).constructed(),
                raw: vec![0xa5, 0x07, 0x31, 0x00, 0x30, 0x03, 0x14, 0x01, 0x41],
            },
            // nationally-defined [7], encrypted [8].
            BodyPart::Unknown {
                tag: Tag::context(7).constructed(),
                raw: vec![0xa7, 0x03, 0x02, 0x01, 0x01],
            },
            BodyPart::Unknown {
                tag: Tag::context(8).constructed(),
                raw: vec![0xa8, 0x02, 0x31, 0x00],
            },
        ],
    )
}

#[test]
fn full_featured_ipm_round_trips() {
    let m = full_ipm();
    let bytes = round_trip(&InformationObject::Ipm(m.clone()));
    let back = InformationObject::decode(&bytes).expect("decodes");
    let h = &ipm_of(&back).heading;
    assert_eq!(h.subject_text().as_deref(), Some("Überweisung 2026"));
    assert_eq!(h.extended_subject().expect("readable"), None);
    assert_eq!(
        h.originator
            .as_ref()
            .and_then(ORDescriptor::free_form_text)
            .as_deref(),
        Some("Jane Smith (Café)")
    );
    let p = &h.primary_recipients[0];
    assert!(p.notification_requests.rn() && p.notification_requests.nrn());
    assert!(p.notification_requests.ipm_return());
    assert!(!p.notification_requests.an_supported() && !p.notification_requests.suppress_an());
    assert!(p.reply_requested);
    assert_eq!(
        h.languages().expect("readable"),
        Some(vec!["de".to_string(), "en-GB".to_string()])
    );
    assert_eq!(
        h.auto_submitted().expect("readable"),
        Some(AutoSubmitted::AutoGenerated)
    );
    assert_eq!(ipm_of(&back).body.len(), m.body.len());
    // The subject is EXPLICIT [8] around a TeletexString, Latin-1 octets.
    let subject = [&[0xa8, 0x12, 0x14, 0x10, 0xdc][..], b"berweisung 2026"].concat();
    assert!(bytes.windows(subject.len()).any(|w| w == subject));
    // replied-to-IPM [5] replaces the [APPLICATION 11] tag (implicit).
    let enc = |id: &IpmIdentifier| {
        let mut w = Writer::new();
        id.encode_implicit(&mut w, Tag::context(5)).expect("id");
        w.finish()
    };
    let replied = enc(h.replied_to_ipm.as_ref().expect("replied"));
    assert_eq!(replied[0], 0xa5);
    assert!(bytes.windows(replied.len()).any(|w| w == replied));
}

/// The IPM without the parts kept as received (which keep their indefinite lengths).
fn without_raw(mut m: Ipm) -> Ipm {
    let h = &mut m.heading;
    h.extensions.clear();
    h.unknown.clear();
    for r in h.primary_recipients.iter_mut() {
        r.recipient_extensions.clear();
    }
    m.body
        .retain(|p| !matches!(p, BodyPart::Unknown { .. } | BodyPart::Extended { .. }));
    for p in m.body.iter_mut() {
        if let BodyPart::Message { parameters, .. } = p {
            parameters.delivery_envelope = None;
        }
    }
    m
}

#[test]
fn indefinite_lengths_decode_to_the_same_value() {
    let content = capture_content();
    let indef = indefinite(&content);
    assert_ne!(indef, content);
    let a = InformationObject::decode(&indef).expect("indefinite decodes");
    assert_eq!(a, InformationObject::decode(&content).expect("decodes"));
    assert_eq!(a.encode().expect("encodes"), content);
    // The full IPM: equal but for what is kept raw, which stays as received.
    let definite = InformationObject::Ipm(full_ipm())
        .encode()
        .expect("encodes");
    let a = InformationObject::decode(&indefinite(&definite)).expect("indefinite decodes");
    let m = ipm_of(&a).clone();
    assert_eq!(
        m.heading.extensions.len(),
        full_ipm().heading.extensions.len()
    );
    assert_eq!(
        m.heading.languages().expect("readable"),
        full_ipm().heading.languages().expect("readable")
    );
    assert_eq!(m.body[5].general_text(), full_ipm().body[5].general_text());
    assert_eq!(without_raw(m), without_raw(full_ipm()));
    // What it re-encodes to decodes to itself.
    let again = a.encode().expect("encodes");
    assert_eq!(InformationObject::decode(&again).expect("decodes"), a);
}

#[test]
fn constructed_strings_are_joined() {
    // The capture's subject as a constructed TeletexString in two segments.
    let content = capture_content();
    let o = InformationObject::decode(&content).expect("decodes");
    let mut w = Writer::new();
    w.constructed(Tag::context(0), |w| {
        w.set(|w| {
            w.raw(&hex(&["6b0a130869706d2d30303031"]));
            w.explicit(Tag::context(8), |w| {
                w.constructed(Tag::TELETEX_STRING, |w| {
                    w.octets(Tag::TELETEX_STRING, b"Hello from a ");
                    w.octets(Tag::TELETEX_STRING, b"synthetic P1 test");
                })
            });
        });
        w.raw(&hex(&[
            "301ba0193100161548656c6c6f2c20582e34303020776f726c642e0d0a",
        ]));
    });
    let bytes = w.finish();
    let back = InformationObject::decode(&bytes).expect("decodes");
    assert_eq!(back, o);
    assert_eq!(back.encode().expect("encodes"), content);
}

#[test]
fn subject_must_be_explicit_and_a_primitive_tag_is_read_leniently() {
    let content = capture_content();
    // Implicit form: [8] primitive holding the octets. Accepted, re-encoded explicit.
    let implicit = {
        let mut w = Writer::new();
        w.constructed(Tag::context(0), |w| {
            w.set(|w| {
                w.raw(&hex(&["6b0a130869706d2d30303031"]));
                w.octets(Tag::context(8), b"Hello from a synthetic P1 test");
            });
            w.raw(&hex(&[
                "301ba0193100161548656c6c6f2c20582e34303020776f726c642e0d0a",
            ]));
        });
        w.finish()
    };
    let o = InformationObject::decode(&implicit).expect("lenient");
    assert_eq!(o, InformationObject::decode(&content).expect("decodes"));
    assert_eq!(o.encode().expect("encodes"), content);
    // An explicit [8] around another string type is refused.
    let printable = ipm_with(&hex(&["a809", "1307", "5375626a656374"]));
    assert!(matches!(
        InformationObject::decode(&printable),
        Err(MtsError::Ber(BerError::Unexpected { .. }))
    ));
    // Two elements inside the explicit tag.
    let two = ipm_with(&hex(&["a806", "140141", "140142"]));
    assert_eq!(
        InformationObject::decode(&two),
        Err(MtsError::Ber(BerError::Trailing))
    );
    // An empty explicit tag.
    assert!(InformationObject::decode(&ipm_with(&hex(&["a800"]))).is_err());
}

#[test]
fn subjects_beyond_latin1_use_the_extended_subject() {
    let mut h = Heading::new(IpmIdentifier::new(None, "s"));
    h.set_subject("Привет, мир").expect("set");
    assert_eq!(h.subject_text().as_deref(), Some("??????, ???"));
    let e = h.extended_subject().expect("readable").expect("present");
    assert_eq!((e.text.as_str(), e.language), ("Привет, мир", None));
    assert_eq!(h.display_subject().as_deref(), Some("Привет, мир"));
    // Outside the BMP: UniversalString.
    h.set_subject("Party 🎉").expect("set");
    let ext = h.extension(oid::ID_HEX_EXTENDED_SUBJECT).expect("ext");
    let v = parse_one(ext.value.as_deref().expect("value")).expect("ber");
    let inner = v
        .children()
        .expect("set")
        .next()
        .expect("ok")
        .expect("string");
    assert_eq!(inner.tag, Tag::universal(28));
    assert_eq!(h.display_subject().as_deref(), Some("Party 🎉"));
    let o = InformationObject::Ipm(Ipm::new(h.clone(), vec![]));
    let back = InformationObject::decode(&round_trip(&o)).expect("decodes");
    assert_eq!(
        ipm_of(&back).heading.display_subject().as_deref(),
        Some("Party 🎉")
    );
    // Back to Latin-1: the extension goes away.
    h.set_subject("plain").expect("set");
    assert_eq!(h.extension(oid::ID_HEX_EXTENDED_SUBJECT), None);
    assert_eq!(h.display_subject().as_deref(), Some("plain"));
    // With a language code.
    let ext = IpmsExtension::extended_subject("Grüezi", Some("de")).expect("ext");
    let mut h2 = Heading::new(IpmIdentifier::new(None, "t"));
    h2.extensions.push(ext);
    let e = h2.extended_subject().expect("readable").expect("present");
    assert_eq!(
        (e.text.as_str(), e.language.as_deref()),
        ("Grüezi", Some("de"))
    );
    // Too long.
    assert!(h.set_subject(&"x".repeat(UB_SUBJECT_FIELD + 1)).is_err());
    assert!(h.set_subject(&"x".repeat(UB_SUBJECT_FIELD)).is_ok());
    assert!(IpmsExtension::extended_subject("", None).is_err());
}

#[test]
fn general_text_helpers() {
    let g = general_text_part().general_text().expect("general text");
    assert_eq!(g.character_sets, vec![1, 6, 77, 100]);
    assert_eq!(g.to_text().as_deref(), Some("Grüße aus Köln"));
    assert_eq!(g.data.len(), "Grüße aus Köln".chars().count());
    let u = BodyPart::from_general_text(&GeneralText::utf8("日本語"))
        .expect("utf-8")
        .general_text()
        .expect("general text");
    assert_eq!(u.character_sets, vec![character_set::UTF_8]);
    assert_eq!(u.to_text().as_deref(), Some("日本語"));
    assert!(GeneralText::latin1("日本語").is_err());
    let other = GeneralText {
        character_sets: vec![1, 6, 144],
        data: vec![0xc0],
    };
    assert_eq!(other.to_text(), None);
    assert_eq!(BodyPart::ia5_text("x").general_text(), None);
    // The encoding: [15] { [0] { OID id-ep-general-text, [0] { SET { INTEGER... } } },
    // EXTERNAL { OID id-et-general-text, [0] { GeneralString } } }.
    let mut w = Writer::new();
    BodyPart::from_general_text(&GeneralText::latin1("A").expect("latin-1"))
        .expect("part")
        .encode(&mut w)
        .expect("encodes");
    assert_eq!(
        w.finish(),
        hex(&[
            "af25",
            "a016",
            "060456010b0b",
            "a00e",
            "310c02010102010602014d020164",
            "280b",
            "06045601040b",
            "a003",
            "1b0141",
        ])
    );
    assert!(
        BodyPart::from_general_text(&GeneralText {
            character_sets: vec![0],
            data: vec![]
        })
        .is_err()
    );
}

fn receipt() -> Ipn {
    let mut r = ReceiptFields::new(UtcTime::parse("261129181500Z").expect("time"));
    r.acknowledgment_mode = AcknowledgmentMode::Automatic;
    r.suppl_receipt_info = Some("read by the robot".into());
    r.rn_extensions
        .push(IpmsExtension::new(&[1, 3, 6, 1, 4, 1, 99999, 9], None));
    let mut n = Ipn::new(
        IpmIdentifier::new(Some(name("/C=GB/ADMD= /S=Smith/")), "ipm-0001"),
        IpnChoice::Receipt(r),
    );
    n.ipn_originator = Some(ORDescriptor::formal(name("/C=GB/ADMD= /S=Jones/")));
    n.ipm_intended_recipient = Some(ORDescriptor::formal(name("/C=GB/ADMD= /S=Other/")));
    n.conversion_eits = Some(vec![0x65, 0x04, 0x80, 0x02, 0x02, 0x04]);
    n.notification_extensions.push(IpmsExtension::new(
        &[1, 3, 6, 1, 4, 1, 99999, 10],
        Some(vec![0x05, 0x00]),
    ));
    n.unknown.push(vec![0x9f, 0x30, 0x00]);
    n
}

#[test]
fn notifications_round_trip() {
    let rn = InformationObject::Ipn(receipt());
    let bytes = round_trip(&rn);
    assert_eq!(bytes[0], 0xa1, "ipn [1]");
    let n = ipn_of(&rn);
    assert!(
        matches!(n.choice, IpnChoice::Receipt(ref r) if r.acknowledgment_mode == AcknowledgmentMode::Automatic)
    );
    // Receipt choice as [0] { [1] { ... } }: the CHOICE's tag is explicit.
    let choice_at = bytes
        .windows(4)
        .position(|w| w[0] == 0xa0 && w[2] == 0xa1)
        .expect("[0] { [1] ... }");
    assert!(choice_at > 0);

    let returned = {
        let mut w = Writer::new();
        full_ipm()
            .encode_implicit(&mut w, Tag::context(3))
            .expect("ipm");
        w.finish()
    };
    let nrn = NonReceiptFields {
        non_receipt_reason: 0,
        discard_reason: Some(0),
        auto_forward_comment: Some("Gone fishing".into()),
        returned_ipm: Some(returned),
        nrn_extensions: vec![IpmsExtension::new(&[1, 3, 6, 1, 4, 1, 99999, 11], None)],
        unknown: vec![vec![0x9f, 0x31, 0x00]],
    };
    let o = InformationObject::Ipn(Ipn::new(
        IpmIdentifier::new(None, "ipm-0002"),
        IpnChoice::NonReceipt(nrn),
    ));
    round_trip(&o);
    let IpnChoice::NonReceipt(f) = &ipn_of(&o).choice else {
        panic!("not a non-receipt");
    };
    assert_eq!(
        f.returned_ipm().expect("present").expect("decodes"),
        full_ipm()
    );

    let other = InformationObject::Ipn(Ipn::new(
        IpmIdentifier::new(None, "ipm-0003"),
        IpnChoice::Other(vec![IpmsExtension::new(
            oid::ID_ON_ABSENCE_ADVICE,
            Some(vec![0x30, 0x00]),
        )]),
    ));
    round_trip(&other);
    // Indefinite form decodes to the same value.
    let def = InformationObject::Ipn(Ipn::new(
        IpmIdentifier::new(None, "ipm-0004"),
        IpnChoice::Receipt(ReceiptFields::new(
            UtcTime::parse("261129181500Z").expect("t"),
        )),
    ));
    let bytes = def.encode().expect("encodes");
    assert_eq!(
        InformationObject::decode(&indefinite(&bytes)).expect("decodes"),
        def
    );
    // An IPN without its choice, or with two.
    assert_eq!(
        InformationObject::decode(&hex(&["a105", "6b03130178"])),
        Err(MtsError::Ber(BerError::Missing("IPN choice")))
    );
    let mut two = hex(&["a1", "00", "6b03130178"]);
    for _ in 0..2 {
        two.extend(hex(&["a011", "a10f", "800d", "3236313132393138313530305a"]));
    }
    two[1] = (two.len() - 2) as u8;
    assert_eq!(
        InformationObject::decode(&two),
        Err(MtsError::Ber(BerError::Duplicate("IPN choice")))
    );
}

/// An IPM `[0] { SET { this-IPM, <element> }, SEQUENCE {} }` around one heading element.
fn ipm_with(element: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.constructed(Tag::context(0), |w| {
        w.set(|w| {
            w.raw(&hex(&["6b03130178"]));
            w.raw(element);
        });
        w.sequence(|_| {});
    });
    w.finish()
}

fn too_large(bytes: &[u8]) -> bool {
    matches!(
        InformationObject::decode(bytes),
        Err(MtsError::Ber(BerError::TooLarge(_)))
    )
}

#[test]
fn upper_bounds_are_enforced() {
    let string = |tag: Tag, n: usize| {
        let mut w = Writer::new();
        w.octets(tag, &vec![b'a'; n]);
        w.finish()
    };
    let explicit = |tag: Tag, inner: Vec<u8>| {
        let mut w = Writer::new();
        w.constructed(tag, |w| w.raw(&inner));
        w.finish()
    };
    // Subject: 128 octets fine, 129 not.
    let ok = ipm_with(&explicit(
        Tag::context(8),
        string(Tag::TELETEX_STRING, UB_SUBJECT_FIELD),
    ));
    assert!(InformationObject::decode(&ok).is_ok());
    let long = ipm_with(&explicit(
        Tag::context(8),
        string(Tag::TELETEX_STRING, UB_SUBJECT_FIELD + 1),
    ));
    assert!(too_large(&long));
    let mut h = Heading::new(IpmIdentifier::new(None, "x"));
    h.subject = Some(TeletexString(vec![b'a'; UB_SUBJECT_FIELD + 1]));
    assert!(matches!(
        InformationObject::Ipm(Ipm::new(h, vec![])).encode(),
        Err(MtsError::Encode { .. })
    ));
    // Local IPM identifier.
    let id = |n| explicit(IpmIdentifier::TAG, string(Tag::PRINTABLE_STRING, n));
    assert!(InformationObject::decode(&ipm_with(&id(UB_LOCAL_IPM_IDENTIFIER))).is_err()); // two this-IPMs
    let mut w = Writer::new();
    w.constructed(Tag::context(0), |w| {
        w.set(|w| w.raw(&id(UB_LOCAL_IPM_IDENTIFIER + 1)));
        w.sequence(|_| {});
    });
    assert!(too_large(&w.finish()));
    let long_id = Heading::new(IpmIdentifier::new(
        None,
        "a".repeat(UB_LOCAL_IPM_IDENTIFIER + 1),
    ));
    assert!(
        InformationObject::Ipm(Ipm::new(long_id, vec![]))
            .encode()
            .is_err()
    );
    let bad_chars = Heading::new(IpmIdentifier::new(None, "ipm@home"));
    assert!(
        InformationObject::Ipm(Ipm::new(bad_chars, vec![]))
            .encode()
            .is_err()
    );
    // Free-form name and telephone number in the originator.
    let orig = |free: usize, tel: usize| {
        let mut w = Writer::new();
        w.constructed(Tag::context(0), |w| {
            w.octets(Tag::context(0), &vec![b'n'; free]);
            w.octets(Tag::context(1), &vec![b'1'; tel]);
        });
        ipm_with(&w.finish())
    };
    assert!(InformationObject::decode(&orig(UB_FREE_FORM_NAME, UB_TELEPHONE_NUMBER)).is_ok());
    assert!(too_large(&orig(UB_FREE_FORM_NAME + 1, 1)));
    assert!(too_large(&orig(1, UB_TELEPHONE_NUMBER + 1)));
    let d = ORDescriptor {
        telephone_number: Some("1".repeat(UB_TELEPHONE_NUMBER + 1)),
        ..ORDescriptor::default()
    };
    assert!(d.encode(&mut Writer::new()).is_err());
    // Heading extensions: MAX_IPMS_EXTENSIONS, then one more.
    let exts = |n: usize| {
        let mut w = Writer::new();
        w.constructed(Tag::context(15), |w| {
            for _ in 0..n {
                IpmsExtension::new(oid::ID_HEX_INCOMPLETE_COPY, None).encode(w);
            }
        });
        ipm_with(&w.finish())
    };
    assert!(InformationObject::decode(&exts(MAX_IPMS_EXTENSIONS)).is_ok());
    assert!(too_large(&exts(MAX_IPMS_EXTENSIONS + 1)));
    // Body parts: MAX_BODY_PARTS + 1 minimal unknown parts.
    let mut w = Writer::new();
    w.constructed(Tag::context(0), |w| {
        w.set(|w| w.raw(&hex(&["6b03130178"])));
        w.sequence(|w| {
            for _ in 0..=MAX_BODY_PARTS {
                w.raw(&[0x83, 0x00]);
            }
        });
    });
    assert!(too_large(&w.finish()));
    // Importance and sensitivity out of range.
    assert!(too_large(&ipm_with(&[0x8c, 0x01, 0x03])));
    assert!(InformationObject::decode(&ipm_with(&[0x8d, 0x01, 0x00])).is_err());
    assert!(too_large(&ipm_with(&[0x8d, 0x01, 0x04])));
    // Auto-forward comment in a non-receipt notification.
    let nrn = |n: usize| {
        let mut w = Writer::new();
        w.constructed(Tag::context(1), |w| {
            w.raw(&hex(&["6b03130178"]));
            w.constructed(Tag::context(0), |w| {
                w.constructed(Tag::context(0), |w| {
                    w.integer_tagged(Tag::context(0), 1);
                    w.octets(Tag::context(2), &vec![b'c'; n]);
                })
            });
        });
        w.finish()
    };
    assert!(InformationObject::decode(&nrn(UB_AUTO_FORWARD_COMMENT)).is_ok());
    assert!(too_large(&nrn(UB_AUTO_FORWARD_COMMENT + 1)));
    // Extended subject beyond its bound.
    let mut h = Heading::new(IpmIdentifier::new(None, "x"));
    let mut big = Writer::new();
    big.set(|w| {
        w.octets(
            Tag::universal(30),
            &vec![0; 2 * (UB_EXTENDED_SUBJECT_LENGTH + 1)],
        )
    });
    h.extensions.push(IpmsExtension::new(
        oid::ID_HEX_EXTENDED_SUBJECT,
        Some(big.finish()),
    ));
    assert!(matches!(
        h.extended_subject(),
        Err(MtsError::Ber(BerError::TooLarge(_)))
    ));
    assert!(
        IpmsExtension::extended_subject(&"x".repeat(UB_EXTENDED_SUBJECT_LENGTH + 1), None).is_err()
    );
}

#[test]
fn hostile_inputs_are_errors() {
    let full = InformationObject::Ipm(full_ipm())
        .encode()
        .expect("encodes");
    for bytes in [capture_content(), full.clone(), receipt_bytes()] {
        // Every truncation fails cleanly.
        for n in 0..bytes.len() {
            assert!(
                InformationObject::decode(&bytes[..n]).is_err(),
                "prefix {n}"
            );
        }
        // Every single-byte corruption either fails or decodes to something that encodes.
        for i in 0..bytes.len() {
            for x in [0x01u8, 0x20, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] ^= x;
                decodes_stably(&b);
            }
        }
        let mut t = bytes.clone();
        t.push(0);
        assert_eq!(
            InformationObject::decode(&t),
            Err(MtsError::Ber(BerError::Trailing))
        );
    }
    // Wrong CHOICE, empty input, a primitive [0].
    assert!(InformationObject::decode(&[]).is_err());
    assert!(InformationObject::decode(&[0xa2, 0x00]).is_err());
    assert!(InformationObject::decode(&[0x80, 0x00]).is_err());
    assert!(InformationObject::decode(&[0x30, 0x00]).is_err());
    // Missing heading, body, this-IPM; duplicates.
    assert_eq!(
        InformationObject::decode(&[0xa0, 0x00]),
        Err(MtsError::Ber(BerError::Missing("heading")))
    );
    assert_eq!(
        InformationObject::decode(&hex(&["a007", "31056b03130178"])),
        Err(MtsError::Ber(BerError::Missing("body")))
    );
    assert_eq!(
        InformationObject::decode(&[0xa0, 0x04, 0x31, 0x00, 0x30, 0x00]),
        Err(MtsError::Ber(BerError::Missing("this-IPM")))
    );
    assert_eq!(
        InformationObject::decode(&ipm_with(&[0x8e, 0x01, 0xff, 0x8e, 0x01, 0x00])),
        Err(MtsError::Ber(BerError::Duplicate("auto-forwarded")))
    );
    // Gigabyte lengths.
    assert!(matches!(
        InformationObject::decode(&[0xa0, 0x84, 0x40, 0x00, 0x00, 0x00, 0x31, 0x00]),
        Err(MtsError::Ber(BerError::Truncated(_)))
    ));
    // Deep nesting of forwarded messages, definite and indefinite.
    let mut deep = InformationObject::Ipm(Ipm::new(
        Heading::new(IpmIdentifier::new(None, "x")),
        vec![],
    ))
    .encode()
    .expect("encodes");
    deep = deep[2..].to_vec(); // the IPM's content: heading and body
    for _ in 0..100 {
        let mut w = Writer::new();
        w.sequence(|w| {
            w.raw(&hex(&["31056b03130178"]));
            w.sequence(|w| {
                w.constructed(Tag::context(9), |w| {
                    w.set(|_| {});
                    w.raw(&deep);
                })
            });
        });
        deep = w.finish();
    }
    let mut w = Writer::new();
    w.constructed(Tag::context(0), |w| {
        w.raw(parse_one(&deep).expect("ber").content)
    });
    let deep = w.finish();
    assert_eq!(
        InformationObject::decode(&deep),
        Err(MtsError::Ber(BerError::TooDeep))
    );
    assert!(InformationObject::decode(&indefinite(&deep)).is_err());
    let mut nest = Vec::new();
    for _ in 0..300 {
        nest.extend_from_slice(&[0xa0, 0x80]);
    }
    nest.extend(std::iter::repeat_n(0u8, 600));
    assert!(InformationObject::decode(&nest).is_err());
    // Body parts with the wrong inner types.
    let body = |part: &[u8]| {
        let mut w = Writer::new();
        w.constructed(Tag::context(0), |w| {
            w.raw(&hex(&["31056b03130178"]));
            w.sequence(|w| w.raw(part));
        });
        w.finish()
    };
    assert!(InformationObject::decode(&body(&hex(&["a005", "3100", "130141"]))).is_err());
    assert!(InformationObject::decode(&body(&hex(&["a008", "3103800103", "160141"]))).is_err());
    assert!(InformationObject::decode(&body(&hex(&["a003", "160141"]))).is_err());
    assert!(InformationObject::decode(&body(&hex(&["af05", "28030201", "05"]))).is_err());
    // An extended body part whose data has only an indirect reference.
    assert!(InformationObject::decode(&body(&hex(&["af07", "2805020105a000"]))).is_err());
    assert!(InformationObject::decode(&body(&hex(&["3000"]))).is_err());
    // A message body part without its IPM.
    assert!(InformationObject::decode(&body(&hex(&["a902", "3100"]))).is_err());
}

fn receipt_bytes() -> Vec<u8> {
    InformationObject::Ipn(receipt()).encode().expect("encodes")
}

#[test]
fn tshark_reads_the_full_ipm() {
    // tshark's P22 dissector as a second opinion on the encoding: the IPM is written as a
    // one-packet pcap of link type USER0 mapped to `p22`.
    let Ok(out) = std::process::Command::new("tshark")
        .arg("--version")
        .output()
    else {
        panic!("tshark is not installed: apt-get install tshark");
    };
    assert!(out.status.success());
    // The full IPM without the test values that are not valid for their types (a private
    // extension, a fake delivery envelope and file-transfer data, an empty encrypted part).
    let mut m = full_ipm();
    m.heading.unknown.clear();
    m.heading
        .extensions
        .retain(|e| e.kind.0.starts_with(oid::ID_IPMS));
    m.body.retain(|p| match p {
        BodyPart::Extended { .. } => p.general_text().is_some(),
        BodyPart::Unknown { tag, .. } => tag.number != 8,
        _ => true,
    });
    for p in m.body.iter_mut() {
        if let BodyPart::Message { parameters, .. } = p {
            parameters.delivery_envelope = None;
        }
    }
    let ipm = InformationObject::Ipm(m).encode().expect("encodes");
    let mut pcap = Vec::new();
    pcap.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    pcap.extend_from_slice(&2u16.to_le_bytes());
    pcap.extend_from_slice(&4u16.to_le_bytes());
    pcap.extend_from_slice(&[0; 8]);
    pcap.extend_from_slice(&65535u32.to_le_bytes());
    pcap.extend_from_slice(&147u32.to_le_bytes()); // DLT_USER0
    pcap.extend_from_slice(&[0; 8]);
    let len = u32::try_from(ipm.len()).expect("small");
    pcap.extend_from_slice(&len.to_le_bytes());
    pcap.extend_from_slice(&len.to_le_bytes());
    pcap.extend_from_slice(&ipm);
    let dir = std::env::temp_dir().join(format!("mswitch-ipm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("ipm.pcap");
    std::fs::write(&file, &pcap).expect("write pcap");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("tshark")
            .args([
                "-o",
                r#"uat:user_dlts:"User 0 (DLT=147)","p22","0","","0","""#,
                "-r",
            ])
            .arg(&file)
            .args(args)
            .output()
            .expect("tshark runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let problems = run(&["-Y", "_ws.malformed || _ws.expert.severity >= 6291456"]);
    let fields = run(&[
        "-T",
        "fields",
        "-e",
        "p22.subject",
        "-e",
        "p22.user_relative_identifier",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(problems.trim(), "", "tshark reports problems");
    assert!(fields.contains("berweisung 2026"), "fields: {fields:?}");
    assert!(fields.contains("ipm-0002"), "fields: {fields:?}");
}

/// Whatever decodes and encodes must decode again to the same value.
fn decodes_stably(bytes: &[u8]) {
    if let Ok(o) = InformationObject::decode(bytes)
        && let Ok(again) = o.encode()
    {
        assert_eq!(InformationObject::decode(&again), Ok(o));
    }
}

#[test]
fn default_values_sent_explicitly_decode_to_the_default() {
    // notification-requests [1] with eight zero bits, reply-requested FALSE, importance
    // normal, auto-forwarded FALSE, an empty extensions SET.
    let rcpt = hex(&["a20e", "310c", "a003", "800141", "81020000", "820100"]);
    let bytes = ipm_with(&[rcpt, hex(&["8c0101", "8e0100", "af00"])].concat());
    let o = InformationObject::decode(&bytes).expect("decodes");
    let h = &ipm_of(&o).heading;
    assert_eq!(
        h.primary_recipients[0].notification_requests,
        NotificationRequests::default()
    );
    assert!(!h.primary_recipients[0].reply_requested);
    assert_eq!(
        (h.importance, h.auto_forwarded),
        (Importance::Normal, false)
    );
    assert!(h.extensions.is_empty());
    let again = o.encode().expect("encodes");
    assert!(again.len() < bytes.len());
    decodes_stably(&bytes);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        decodes_stably(&bytes);
    }

    #[test]
    fn arbitrary_content_under_the_ipm_tags_never_panics(
        tag in proptest::sample::select(vec![0xa0u8, 0xa1]),
        inner in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
    ) {
        let mut bytes = vec![tag, 0x80];
        bytes.extend_from_slice(&inner);
        bytes.extend_from_slice(&[0, 0]);
        decodes_stably(&bytes);
    }

    #[test]
    fn corrupted_encodings_never_panic(
        edits in proptest::collection::vec((0usize..4096, proptest::num::u8::ANY), 1..8),
    ) {
        let mut bytes = InformationObject::Ipm(full_ipm()).encode().expect("encodes");
        for (at, v) in edits {
            let i = at % bytes.len();
            bytes[i] = v;
        }
        decodes_stably(&bytes);
    }
}
