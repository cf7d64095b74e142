use mail_parser::MessageParser;
use mswitch_core::envelope::Notify;

use super::*;
use crate::gateway::address::{MixerConfig, MixerRuleConfig, RuleDirection};

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

const MESSAGE: &str = "From: Alice Example <Alice.Example@example.com>\r\n\
To: Bob Smith <Bob.Smith@example.com>\r\n\
Cc: carol@elsewhere.org\r\n\
Subject: =?utf-8?q?Caf=C3=A9_menu?=\r\n\
Message-ID: <m1.1234@example.com>\r\n\
In-Reply-To: <m0.1@example.com>\r\n\
References: <m0.0@example.com> <m0.1@example.com>\r\n\
Importance: high\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Caf\u{e9} at noon.\r\n\
--b1\r\n\
Content-Type: application/pdf\r\n\
Content-Disposition: attachment; filename=\"menu.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--b1--\r\n";

fn envelope() -> Envelope {
    let mut env = Envelope::new(
        ReversePath::Address(Address::Mailbox(
            Mailbox::parse("Alice.Example@example.com").expect("mailbox"),
        )),
        NOW,
    );
    for (to, notify) in [
        ("Bob.Smith@example.com", Notify::on(true, true, false)),
        ("carol@elsewhere.org", Notify::unspecified()),
    ] {
        let mut r = Recipient::new(Address::Mailbox(Mailbox::parse(to).expect("rcpt")));
        r.notify = notify;
        env.recipients.push(r);
    }
    env
}

/// The P1 message and the IPM in a converted message's content.
fn message_and_ipm(content: &[u8]) -> (Message, Ipm) {
    let MtsApdu::Message(m) = MtsApdu::decode(content).expect("apdu") else {
        panic!("not a message");
    };
    let InformationObject::Ipm(ipm) = InformationObject::decode(&m.content).expect("ipm") else {
        panic!("not an IPM");
    };
    (m, ipm)
}

/// Converts a P1 message from the gateway back to Internet mail for its first recipient.
fn to_internet_for_first(content: &[u8], t: &MixerTables) -> Converted {
    let (m, _) = message_and_ipm(content);
    let first = m.envelope.per_recipient_fields[0]
        .recipient_name
        .address
        .clone();
    to_internet(content, &[(0, &first, Notify::unspecified())], t, NOW).expect("to internet")
}

/// A message through the gateway into X.400 with its IPM body replaced by `body`: the P1
/// message, re-encoded.
fn x400_with_body(t: &MixerTables, body: Vec<BodyPart>) -> Vec<u8> {
    let c = to_x400(&envelope(), MESSAGE.as_bytes(), &[0], t, &me(), NOW).expect("to x400");
    let (mut m, mut ipm) = message_and_ipm(&c.content);
    ipm.body = body;
    m.content = InformationObject::Ipm(ipm).encode().expect("encode");
    MtsApdu::Message(m).encode().expect("encode")
}

#[test]
fn an_internet_message_becomes_an_ipm_and_comes_back() {
    let t = tables();
    let c = to_x400(&envelope(), MESSAGE.as_bytes(), &[0, 1], &t, &me(), NOW).expect("to x400");
    assert!(c.refused.is_empty());
    // The envelope: O/R originator and recipients by the rules, delivery report asked for Bob.
    let MtsApdu::Message(m) = MtsApdu::decode(&c.content).expect("apdu") else {
        panic!("not a message");
    };
    assert_eq!(
        m.envelope.originator_name.address.to_string(),
        "/C=GB/ADMD= /PRMD=Example/O=Mail/S=Example/G=Alice/"
    );
    assert_eq!(m.envelope.per_recipient_fields.len(), 2);
    assert!(
        m.envelope.per_recipient_fields[0]
            .per_recipient_indicators
            .originating_mta_report()
    );
    let carol = &m.envelope.per_recipient_fields[1].recipient_name.address;
    assert_eq!(carol.domain_defined[0].kind, "RFC-822");
    assert_eq!(c.envelope.recipients.len(), 2);
    // The IPM heading.
    let InformationObject::Ipm(ipm) = InformationObject::decode(&m.content).expect("ipm") else {
        panic!("not an IPM");
    };
    let h = &ipm.heading;
    assert_eq!(h.this_ipm.user_relative_identifier, "m1.1234(a)example.com");
    assert_eq!(h.display_subject().as_deref(), Some("Café menu"));
    assert_eq!(h.importance, Importance::High);
    assert_eq!(h.primary_recipients.len(), 1);
    assert_eq!(h.copy_recipients.len(), 1);
    assert_eq!(
        h.originator
            .as_ref()
            .and_then(|o| o.free_form_text())
            .as_deref(),
        Some("Alice Example")
    );
    assert_eq!(h.related_ipms.len(), 2);
    // The body: the text, and the PDF carried as a MIME entity.
    assert_eq!(ipm.body.len(), 2);
    assert!(
        matches!(&ipm.body[1], BodyPart::Bilaterally(raw) if raw.windows(15).any(|w| w == b"application/pdf"))
    );

    // And back: every mapped field survives.
    let bob = &m.envelope.per_recipient_fields[0].recipient_name.address;
    let back =
        to_internet(&c.content, &[(0, bob, Notify::unspecified())], &t, NOW).expect("to internet");
    assert_eq!(
        back.envelope
            .originator
            .mailbox()
            .map(|m| m.to_string())
            .as_deref(),
        Some("Alice.Example@example.com")
    );
    assert_eq!(
        back.envelope.recipients[0].address.to_string(),
        "Bob.Smith@example.com"
    );
    let parsed = MessageParser::default()
        .parse(&back.content)
        .expect("parse");
    assert_eq!(parsed.subject(), Some("Café menu"));
    assert_eq!(parsed.message_id(), Some("m1.1234@example.com"));
    assert_eq!(
        parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("Alice.Example@example.com")
    );
    assert_eq!(
        parsed.from().and_then(|a| a.first()).and_then(|a| a.name()),
        Some("Alice Example")
    );
    assert_eq!(
        parsed
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("Bob.Smith@example.com")
    );
    assert_eq!(
        parsed
            .cc()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("carol@elsewhere.org")
    );
    assert_eq!(parsed.in_reply_to().as_text(), Some("m0.1@example.com"));
    assert_eq!(parsed.header_raw("Importance").map(str::trim), Some("high"));
    assert!(
        parsed
            .body_text(0)
            .is_some_and(|b| b.contains("Café at noon."))
    );
    let pdf = parsed.attachments().next().expect("the attachment");
    assert_eq!(pdf.attachment_name(), Some("menu.pdf"));
    assert_eq!(pdf.contents(), b"%PDF-1.4\n");
    assert!(
        parsed
            .header_raw("X400-MTS-Identifier")
            .is_some_and(|v| v.contains(&m.envelope.message_identifier.local_identifier))
    );
}

#[test]
fn mts_identifiers_read_back_from_their_text() {
    let id = me().new_identifier(NOW);
    assert_eq!(parse_mts_identifier(&id.to_string()), Some(id));
    assert_eq!(parse_mts_identifier("/C=GB/A= /;"), None);
    assert_eq!(parse_mts_identifier("garbage"), None);
}

#[test]
fn non_ipm_content_is_refused() {
    let t = tables();
    let c = to_x400(&envelope(), MESSAGE.as_bytes(), &[0], &t, &me(), NOW).expect("to x400");
    let MtsApdu::Message(mut m) = MtsApdu::decode(&c.content).expect("apdu") else {
        panic!("not a message");
    };
    m.envelope.content_type = ContentType::BuiltIn(35);
    let bytes = MtsApdu::Message(m).encode().expect("encode");
    assert!(matches!(
        to_internet(&bytes, &[], &t, NOW),
        Err(GatewayError::Content(_))
    ));
    assert!(matches!(
        to_x400(&envelope(), b"", &[0], &t, &me(), NOW),
        Err(GatewayError::Unparsable)
    ));
}

#[test]
fn trace_crosses_the_gateway_and_a_loop_is_stopped() {
    let t = tables();
    let c = to_x400(&envelope(), MESSAGE.as_bytes(), &[0], &t, &me(), NOW).expect("to x400");
    let MtsApdu::Message(m) = MtsApdu::decode(&c.content).expect("apdu") else {
        panic!("not a message");
    };
    let back = to_internet_for_first(&c.content, &t);
    // Back into X.400: the trace it had comes back from X400-Received, and ours is added.
    let again = to_x400(&back.envelope, &back.content, &[0], &t, &me(), NOW).expect("again");
    let MtsApdu::Message(m2) = MtsApdu::decode(&again.content).expect("apdu") else {
        panic!("not a message");
    };
    assert_eq!(m2.envelope.trace_information.len(), 2);
    assert_eq!(
        m2.envelope.trace_information[0],
        m.envelope.trace_information[0]
    );
    // Round and round: stopped as a loop.
    let mut content = again.content;
    let mut env = again.envelope;
    let mut stopped = false;
    for _ in 0..(2 * MAX_GATEWAY_TRACE) {
        let MtsApdu::Message(m) = MtsApdu::decode(&content).expect("apdu") else {
            panic!("not a message");
        };
        let or = m.envelope.per_recipient_fields[0]
            .recipient_name
            .address
            .clone();
        let i = match to_internet(&content, &[(0, &or, Notify::unspecified())], &t, NOW) {
            Ok(i) => i,
            Err(GatewayError::Loop) => {
                stopped = true;
                break;
            }
            Err(e) => panic!("{e}"),
        };
        match to_x400(&i.envelope, &i.content, &[0], &t, &me(), NOW) {
            Ok(x) => {
                content = x.content;
                env = x.envelope;
            }
            Err(GatewayError::Loop) => {
                stopped = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let _ = env;
    assert!(stopped, "a loop between the worlds is stopped");
}

#[test]
fn received_fields_become_internal_trace_and_come_back() {
    let mut config = MixerConfig {
        gateway_domain: "x400.example.com".into(),
        gateway_or: "/C=GB/ADMD= /PRMD=Example/O=Internet/".into(),
        rules: Vec::new(),
    };
    for (domain, or_prefix) in [
        ("example.com", "/C=GB/ADMD= /PRMD=Example/O=Mail/"),
        ("other.net", "/C=FR/ADMD=ATLAS/PRMD=Other/"),
    ] {
        config.rules.push(MixerRuleConfig {
            domain: domain.into(),
            or_prefix: or_prefix.into(),
            direction: RuleDirection::Both,
            subdomains: true,
        });
    }
    let t = MixerTables::new(config).expect("tables");
    let message = format!(
        "Received: from relay.example.com by gw with ESMTP; Mon, 30 Nov 2026 01:00:09 +0000\r\n\
         Received: from mx.other.net by relay.example.com with ESMTP id r1;\r\n\
         \tMon, 30 Nov 2026 01:00:05 +0000\r\n\
         Received: from [192.0.2.1] by [192.0.2.2]; Mon, 30 Nov 2026 01:00:03 +0000\r\n\
         Received: from client.other.net by mx.other.net with ESMTP; Mon, 30 Nov 2026 01:00:00 +0000\r\n\
         {MESSAGE}"
    );
    let c = to_x400(&envelope(), message.as_bytes(), &[0], &t, &me(), NOW).expect("to x400");
    let MtsApdu::Message(m) = MtsApdu::decode(&c.content).expect("apdu") else {
        panic!("not a message");
    };
    // The hop through gw (this MTA's name) and the one by an address literal are left out.
    let internal = m.envelope.internal_trace().expect("internal trace");
    let hops: Vec<(&str, &str, String)> = internal
        .iter()
        .map(|e| {
            (
                e.mta_name.as_str(),
                e.global_domain.country.as_str(),
                e.mta_supplied.arrival_time.to_string(),
            )
        })
        .collect();
    assert_eq!(
        hops,
        [
            ("mx.other.net", "FR", "261130010000Z".to_owned()),
            ("relay.example.com", "GB", "261130010005Z".to_owned()),
        ]
    );
    // A trace element for each domain entered (France, then Britain), then the gateway's.
    let domains: Vec<&str> = m
        .envelope
        .trace_information
        .iter()
        .map(|e| e.global_domain.country.as_str())
        .collect();
    assert_eq!(domains, ["FR", "GB", "GB"]);
    assert_eq!(
        m.envelope.trace_information[0]
            .domain_supplied
            .arrival_time
            .to_string(),
        "261130010000Z"
    );

    // Out of X.400: the gateway's Received: on top, then one per internal trace element.
    let back = to_internet_for_first(&c.content, &t);
    let parsed = MessageParser::default()
        .parse(&back.content)
        .expect("parsed");
    let received: Vec<(String, i64)> = parsed
        .header_values("Received")
        .map(|v| match v {
            HeaderValue::Received(r) => (
                match &r.by {
                    Some(mail_parser::Host::Name(n)) => n.to_string(),
                    other => panic!("by {other:?}"),
                },
                r.date.as_ref().expect("date").to_timestamp(),
            ),
            other => panic!("unparsed Received: {other:?}"),
        })
        .collect();
    assert_eq!(
        received,
        [
            ("x400.example.com".to_owned(), 1_800_000_000),
            ("relay.example.com".to_owned(), 1_796_000_405),
            ("mx.other.net".to_owned(), 1_796_000_400),
        ]
    );
    assert_eq!(parsed.subject(), Some("Café menu"));

    // And back into X.400 again: the same hops, and the gateway's as a hop of its own.
    let again = to_x400(&back.envelope, &back.content, &[0], &t, &me(), NOW).expect("again");
    let MtsApdu::Message(m2) = MtsApdu::decode(&again.content).expect("apdu") else {
        panic!("not a message");
    };
    let names: Vec<String> = m2
        .envelope
        .internal_trace()
        .expect("internal trace")
        .into_iter()
        .map(|e| e.mta_name)
        .collect();
    assert_eq!(
        names,
        ["mx.other.net", "relay.example.com", "x400.example.com"]
    );
}

#[test]
fn other_x400_body_parts_travel_as_application_x400_bp_and_come_back() {
    use crate::ber::{External, ExternalEncoding, Oid, Tag};
    let t = tables();
    let fax = BodyPart::Unknown {
        tag: Tag::context(3).constructed(),
        raw: vec![0xa3, 0x08, 0x31, 0x00, 0x30, 0x04, 0x03, 0x02, 0x00, 0xaa],
    };
    let file = BodyPart::Extended {
        parameters: None,
        data: External {
            direct_reference: Some(Oid::new(crate::ipm::oid::ID_ET_FILE_TRANSFER)),
            indirect_reference: None,
            data_value_descriptor: None,
            encoding: ExternalEncoding::SingleAsn1Type(vec![0x30, 0x03, 0x04, 0x01, 0x41]),
        },
    };
    let stored = x400_with_body(
        &t,
        vec![
            BodyPart::ia5_text("See the fax."),
            fax.clone(),
            file.clone(),
        ],
    );
    let out = to_internet_for_first(&stored, &t);
    let parsed = MessageParser::default()
        .parse(&out.content)
        .expect("parsed");
    let types: Vec<(String, Option<String>)> = parsed
        .attachments()
        .map(|a| {
            let ct = a.content_type().expect("content type");
            (
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()),
                ct.attribute("bp-type").map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            ("application/x400-bp".to_owned(), Some("3".to_owned())),
            (
                "application/x400-bp".to_owned(),
                Some("2.6.1.4.12".to_owned())
            ),
        ]
    );
    // Back into X.400: the same body parts, byte for byte.
    let back = to_x400(&out.envelope, &out.content, &[0], &t, &me(), NOW).expect("to x400");
    let (_, ipm2) = message_and_ipm(&back.content);
    assert_eq!(ipm2.body.len(), 3, "{:?}", ipm2.body);
    assert_eq!(ipm2.body[1], fax);
    assert_eq!(ipm2.body[2], file);

    // A part that claims another type than it holds is carried as a MIME entity instead.
    let forged = String::from_utf8(out.content.clone())
        .expect("ascii")
        .replace("bp-type=3", "bp-type=5")
        .replace("bp-type=\"3\"", "bp-type=\"5\"");
    assert_ne!(forged.as_bytes(), &out.content[..]);
    let again = to_x400(&out.envelope, forged.as_bytes(), &[0], &t, &me(), NOW).expect("x400");
    let (_, ipm3) = message_and_ipm(&again.content);
    assert!(
        matches!(ipm3.body[1], BodyPart::Bilaterally(_)),
        "{:?}",
        ipm3.body[1]
    );
    assert_eq!(ipm3.body[2], file);
}

#[test]
fn expiry_reply_by_reply_to_obsoletes_and_autoforwarded_cross_both_ways() {
    let t = tables();
    let message = format!(
        "Expires: Tue, 1 Dec 2026 12:00:00 +0000\r\n\
         Reply-By: Mon, 30 Nov 2026 18:30:00 +0100\r\n\
         Reply-To: Desk <desk@example.com>, other@elsewhere.org\r\n\
         Obsoletes: <old.1@example.com> <old.2@example.com>\r\n\
         Autoforwarded: TRUE\r\n\
         {MESSAGE}"
    );
    let c = to_x400(&envelope(), message.as_bytes(), &[0], &t, &me(), NOW).expect("to x400");
    let (_, ipm) = message_and_ipm(&c.content);
    let h = &ipm.heading;
    assert_eq!(
        h.expiry_time.as_ref().map(ToString::to_string).as_deref(),
        Some("261201120000Z")
    );
    assert_eq!(
        h.reply_time.as_ref().map(ToString::to_string).as_deref(),
        Some("261130173000Z")
    );
    assert_eq!(h.reply_recipients.len(), 2);
    assert_eq!(
        h.reply_recipients[0].free_form_text().as_deref(),
        Some("Desk")
    );
    assert_eq!(h.obsoleted_ipms.len(), 2);
    assert!(h.auto_forwarded);

    let back = to_internet_for_first(&c.content, &t);
    let p = MessageParser::default()
        .parse(&back.content)
        .expect("parsed");
    let date = |name: &str| {
        mail_parser::DateTime::parse_rfc822(p.header_raw(name).expect(name).trim())
            .expect("date")
            .to_timestamp()
    };
    assert_eq!(date("Expires"), 1_796_126_400);
    assert_eq!(date("Reply-By"), 1_796_059_800);
    let reply_to: Vec<Option<&str>> = p
        .reply_to()
        .expect("Reply-To")
        .iter()
        .map(|a| a.address())
        .collect();
    assert_eq!(
        reply_to,
        [Some("desk@example.com"), Some("other@elsewhere.org")]
    );
    assert_eq!(
        p.header_raw("Obsoletes").map(str::trim),
        Some("<old.1@example.com> <old.2@example.com>")
    );
    assert_eq!(p.header_raw("Autoforwarded").map(str::trim), Some("TRUE"));
}

#[test]
fn general_text_in_other_iso_8859_parts_becomes_unicode_text() {
    let t = tables();
    // "Žluťoučký kůň" in ISO 8859-2, and "Αθήνα" in ISO 8859-7 (ISO-IR 101 and 126).
    let latin2 = GeneralText {
        character_sets: vec![1, 6, 77, 101],
        data: vec![
            0xae, b'l', b'u', 0xbb, b'o', b'u', 0xe8, b'k', 0xfd, b' ', b'k', 0xf9, 0xf2,
        ],
    };
    let greek = GeneralText {
        character_sets: vec![1, 6, 126],
        data: vec![0xc1, 0xe8, 0xde, 0xed, 0xe1],
    };
    // Two right-hand parts at once: not a single charset, carried as a body part.
    let mixed = GeneralText {
        character_sets: vec![1, 6, 101, 126],
        data: vec![0xae],
    };
    let body = [latin2, greek, mixed]
        .iter()
        .map(|g| BodyPart::from_general_text(g).expect("body part"))
        .collect();
    let out = to_internet_for_first(&x400_with_body(&t, body), &t);
    let p = MessageParser::default()
        .parse(&out.content)
        .expect("parsed");
    assert_eq!(p.body_text(0).as_deref(), Some("Žluťoučký kůň"));
    assert_eq!(p.body_text(1).as_deref(), Some("Αθήνα"));
    let other = p.attachments().next().expect("the mixed part");
    assert_eq!(
        other.content_type().and_then(|c| c.subtype()),
        Some("x400-bp")
    );
}

#[test]
fn sender_is_the_originator_and_from_the_authorizing_users() {
    let t = tables();
    let message = MESSAGE.replace(
        "From: Alice Example <Alice.Example@example.com>\r\n",
        "From: Boss <boss@example.com>, Deputy <deputy@elsewhere.org>\r\n\
         Sender: Alice Example <Alice.Example@example.com>\r\n",
    );
    let c = to_x400(&envelope(), message.as_bytes(), &[0], &t, &me(), NOW).expect("to x400");
    let (_, ipm) = message_and_ipm(&c.content);
    let h = &ipm.heading;
    assert_eq!(
        h.originator
            .as_ref()
            .and_then(|o| o.free_form_text())
            .as_deref(),
        Some("Alice Example")
    );
    let authorizing: Vec<Option<String>> = h
        .authorizing_users
        .iter()
        .map(|d| d.free_form_text())
        .collect();
    assert_eq!(
        authorizing,
        [Some("Boss".to_owned()), Some("Deputy".to_owned())]
    );

    let back = to_internet_for_first(&c.content, &t);
    let p = MessageParser::default()
        .parse(&back.content)
        .expect("parsed");
    let from: Vec<Option<&str>> = p
        .from()
        .expect("From")
        .iter()
        .map(|a| a.address())
        .collect();
    assert_eq!(
        from,
        [Some("boss@example.com"), Some("deputy@elsewhere.org")]
    );
    assert_eq!(
        p.sender().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("Alice.Example@example.com")
    );

    // Without Sender:, From: is the originator and there are no authorizing users.
    let plain = to_x400(&envelope(), MESSAGE.as_bytes(), &[0], &t, &me(), NOW).expect("x400");
    let (_, ipm) = message_and_ipm(&plain.content);
    assert!(ipm.heading.authorizing_users.is_empty());
    let back = to_internet_for_first(&plain.content, &t);
    let p = MessageParser::default()
        .parse(&back.content)
        .expect("parsed");
    assert!(p.sender().is_none());
}
