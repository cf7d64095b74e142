//! Every notification built here is parsed back with `mail-parser` (an independent MIME
//! parser); the `message/delivery-status` body is split into its field blocks here.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::*;
use crate::envelope::{BodyType, Notify, OriginalRecipient, ReversePath};

const HOST: &str = "mx.switch.test";
const QUEUE_ID: QueueId = QueueId(0xAB);
const UNIQUE: u64 = 0xdead_beef;
/// 2024-02-29 12:34:56 UTC.
const ARRIVAL: u64 = 1_709_210_096;
/// 2026-11-29 21:00:00 UTC.
const NOW: u64 = 1_795_986_000;

const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: bob@example.com\r\n\
Subject: Quarterly figures\r\n\
Message-ID: <q1@example.org>\r\n\
\r\n\
Hello Bob,\r\n\
the figures are attached.\r\n";

const MESSAGE_HEADERS: &[u8] = b"From: Alice <alice@example.org>\r\n\
To: bob@example.com\r\n\
Subject: Quarterly figures\r\n\
Message-ID: <q1@example.org>\r\n";

fn address(s: &str) -> Address {
    Address::parse(s).expect("valid test address")
}

fn envelope(originator: &str, recipients: &[&str]) -> Envelope {
    let originator = if originator.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Address(address(originator))
    };
    let mut env = Envelope::new(originator, Timestamp::from_secs(ARRIVAL));
    env.recipients = recipients
        .iter()
        .map(|r| Recipient::new(address(r)))
        .collect();
    env
}

fn failed(index: usize) -> DsnRecipient {
    DsnRecipient {
        index,
        action: DsnAction::Failed,
        status: Status::new(550, (5, 1, 1), "No such user"),
        remote_mta: Some("mx.example.com".to_owned()),
        diagnostic_from_peer: true,
        last_attempt: Some(Timestamp::from_secs(NOW - 60)),
        will_retry_until: None,
    }
}

fn delayed(index: usize) -> DsnRecipient {
    DsnRecipient {
        index,
        action: DsnAction::Delayed,
        status: Status::new(451, (4, 4, 1), "Connection timed out"),
        remote_mta: None,
        diagnostic_from_peer: false,
        last_attempt: Some(Timestamp::from_secs(NOW - 300)),
        will_retry_until: Some(Timestamp::from_secs(NOW + 4 * 86_400)),
    }
}

fn succeeded(index: usize, action: DsnAction) -> DsnRecipient {
    DsnRecipient {
        index,
        action,
        status: Status::new(250, (2, 0, 0), "Ok: queued as 4F2A"),
        remote_mta: Some("mx.example.com".to_owned()),
        diagnostic_from_peer: false,
        last_attempt: Some(Timestamp::from_secs(NOW - 5)),
        will_retry_until: Some(Timestamp::from_secs(NOW + 86_400)),
    }
}

fn request<'a>(
    envelope: &'a Envelope,
    content: &'a [u8],
    recipients: Vec<DsnRecipient>,
) -> DsnRequest<'a> {
    DsnRequest {
        reporting_mta: HOST,
        queue_id: QUEUE_ID,
        envelope,
        content,
        recipients,
        now: Timestamp::from_secs(NOW),
        unique: UNIQUE,
    }
}

fn build_ok(req: &DsnRequest<'_>) -> Notification {
    let n = build(req).expect("a notification");
    check_lines(&n.content);
    n
}

/// Every line ends in CRLF (no bare CR or LF) and is at most 998 octets long.
fn check_lines(content: &[u8]) {
    assert!(content.ends_with(b"\r\n"), "content ends with CRLF");
    for (i, &b) in content.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(content.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
        if b == b'\n' {
            assert!(i > 0 && content[i - 1] == b'\r', "bare LF at {i}");
        }
    }
    for line in content.split(|&b| b == b'\n') {
        assert!(
            line.len() <= MAX_LINE_OCTETS + 1,
            "line of {} octets",
            line.len()
        );
    }
}

fn parse(n: &Notification) -> Message<'_> {
    MessageParser::default()
        .parse(&n.content[..])
        .expect("mail-parser parses the notification")
}

/// The header field blocks of a header section or a `message/delivery-status` body: blocks
/// separated by empty lines, fields unfolded (CRLF before WSP removed), `(name, value)` with
/// the value trimmed.
fn blocks(text: &str) -> Vec<Vec<(String, String)>> {
    text.trim_end_matches("\r\n")
        .split("\r\n\r\n")
        .map(|block| {
            let unfolded = block.replace("\r\n ", " ").replace("\r\n\t", "\t");
            unfolded
                .split("\r\n")
                .map(|line| {
                    let (name, value) = line.split_once(':').expect("a field line");
                    (name.to_owned(), value.trim().to_owned())
                })
                .collect()
        })
        .collect()
}

fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// The top-level header fields, as written.
fn top_fields(n: &Notification) -> Vec<(String, String)> {
    let text = std::str::from_utf8(&n.content).expect("UTF-8 notification");
    let (head, _) = text.split_once("\r\n\r\n").expect("a header section");
    blocks(head).remove(0)
}

/// The parts of the multipart/report: (content type, part).
fn report_parts<'m>(message: &'m Message<'m>) -> Vec<(String, &'m MessagePart<'m>)> {
    let root = &message.parts[0];
    let ct = root.content_type().expect("top-level Content-Type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let ids = root.sub_parts().expect("a multipart");
    ids.iter()
        .map(|&id| {
            let part = &message.parts[id as usize];
            let ct = part.content_type().expect("part Content-Type");
            let name = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
            (name, part)
        })
        .collect()
}

fn part_text<'p>(part: &'p MessagePart<'_>) -> &'p str {
    match &part.body {
        PartType::Text(t) => t,
        other => panic!("expected a text part, got {other:?}"),
    }
}

fn part_bytes<'p>(part: &'p MessagePart<'_>) -> &'p [u8] {
    match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => b,
        other => panic!("expected a binary part, got {other:?}"),
    }
}

/// The body of a part as it is in the raw notification (for nested messages).
fn raw_body<'m>(message: &'m Message<'m>, part: &MessagePart<'_>) -> &'m [u8] {
    &message.raw_message[part.offset_body as usize..part.offset_end as usize]
}

fn status_blocks(part: &MessagePart<'_>) -> Vec<Vec<(String, String)>> {
    blocks(std::str::from_utf8(part_bytes(part)).expect("UTF-8 report"))
}

fn per_message(envid: Option<&str>) -> Vec<(String, String)> {
    let mut f = Vec::new();
    if let Some(e) = envid {
        f.push(("Original-Envelope-Id", e));
    }
    f.push(("Reporting-MTA", "dns; mx.switch.test"));
    f.push(("Arrival-Date", "Thu, 29 Feb 2024 12:34:56 +0000"));
    fields(&f)
}

// ------------------------------------------------------------------------------------------
// Dates

#[test]
fn dates_are_formatted_exactly() {
    let cases: &[(u64, &str)] = &[
        (0, "Thu, 01 Jan 1970 00:00:00 +0000"),
        (ARRIVAL, "Thu, 29 Feb 2024 12:34:56 +0000"),
        (NOW, "Sun, 29 Nov 2026 21:00:00 +0000"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
        (946_684_799, "Fri, 31 Dec 1999 23:59:59 +0000"),
        (2_147_483_648, "Tue, 19 Jan 2038 03:14:08 +0000"),
        // 2100 is not a leap year: 28 February is followed by 1 March.
        (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 +0000"),
        (4_107_542_400, "Mon, 01 Mar 2100 00:00:00 +0000"),
    ];
    for &(secs, expected) in cases {
        assert_eq!(
            format_rfc5322_date(Timestamp::from_secs(secs)),
            expected,
            "{secs}"
        );
        let parsed = mail_parser::DateTime::parse_rfc822(expected).expect("parses");
        assert_eq!(parsed.to_timestamp(), secs as i64, "{expected} round-trips");
    }
    // Milliseconds are dropped, not rounded.
    assert_eq!(
        format_rfc5322_date(Timestamp(1_999)),
        "Thu, 01 Jan 1970 00:00:01 +0000"
    );
}

#[test]
fn dates_round_trip_through_mail_parser() {
    // Every 6 days, 23 hours, 59 minutes and 13 seconds from 1970 to 2200: all weekdays, all
    // months, leap years and the century rule.
    let step = 6 * 86_400 + 23 * 3600 + 59 * 60 + 13;
    let mut secs = 0u64;
    while secs < 7_258_118_400 {
        let text = format_rfc5322_date(Timestamp::from_secs(secs));
        let parsed = mail_parser::DateTime::parse_rfc822(&text).expect("parses");
        assert_eq!(parsed.to_timestamp(), secs as i64, "{text}");
        // The weekday is the one of that date: 1970-01-01 was a Thursday.
        let weekday =
            ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(secs / 86_400 % 7) as usize];
        assert!(text.starts_with(weekday), "{text} should be a {weekday}");
        secs += step;
    }
}

// ------------------------------------------------------------------------------------------
// NOTIFY

#[test]
fn wanted_follows_rfc_3461_notify() {
    use DsnAction::*;
    let all = [Failed, Delayed, Delivered, Relayed, Expanded];
    let cases: &[(Notify, &[DsnAction])] = &[
        (Notify::unspecified(), &[Failed, Delayed]),
        (Notify::never(), &[]),
        (
            Notify::on(true, false, false),
            &[Delivered, Relayed, Expanded],
        ),
        (Notify::on(false, true, false), &[Failed]),
        (Notify::on(false, false, true), &[Delayed]),
        (Notify::on(false, true, true), &[Failed, Delayed]),
        (Notify::on(true, true, true), &all),
    ];
    for (notify, expected) in cases {
        let mut rcpt = Recipient::new(address("bob@example.com"));
        rcpt.notify = *notify;
        for action in all {
            assert_eq!(
                wanted(&rcpt, action),
                expected.contains(&action),
                "{notify:?} {action:?}"
            );
        }
    }
}

// ------------------------------------------------------------------------------------------
// When there is no notification

#[test]
fn no_notification_without_a_mailbox_to_send_it_to_or_anything_to_report() {
    let null = envelope("", &["bob@example.com"]);
    assert_eq!(build(&request(&null, MESSAGE, vec![failed(0)])), None);

    let x400 = envelope("/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/", &["bob@example.com"]);
    assert_eq!(build(&request(&x400, MESSAGE, vec![failed(0)])), None);

    let env = envelope("alice@example.org", &["bob@example.com"]);
    assert_eq!(build(&request(&env, MESSAGE, vec![])), None);
    // An index that names no recipient is skipped; nothing is left.
    assert_eq!(build(&request(&env, MESSAGE, vec![failed(1)])), None);
    assert!(build(&request(&env, MESSAGE, vec![failed(1), failed(0)])).is_some());
}

// ------------------------------------------------------------------------------------------
// Failure notices

#[test]
fn failure_notice_has_the_three_parts_and_every_field() {
    let mut env = envelope(
        "alice@example.org",
        &["bob@example.com", "carol@example.net", "dave@example.net"],
    );
    env.dsn_envid = Some("QQ314159".to_owned());
    env.recipients[1].original = Some(OriginalRecipient {
        addr_type: "rfc822".to_owned(),
        address: "Carol@Example.NET".to_owned(),
    });
    let mut carol = failed(1);
    carol.status = Status::new(550, (5, 2, 2), "Mailbox full");
    carol.remote_mta = None;
    carol.diagnostic_from_peer = false;
    carol.last_attempt = None;
    let n = build_ok(&request(&env, MESSAGE, vec![failed(0), carol]));

    assert_eq!(n.to, Mailbox::parse("alice@example.org").expect("mailbox"));
    assert!(!n.eight_bit);
    assert!(!n.smtputf8);

    let top = top_fields(&n);
    let boundary = "=_00000000deadbeef.00000000000000AB";
    assert_eq!(
        top,
        fields(&[
            (
                "From",
                "Mail Delivery System <MAILER-DAEMON@mx.switch.test>"
            ),
            ("To", "alice@example.org"),
            ("Subject", "Undelivered Mail Returned to Sender"),
            ("Date", "Sun, 29 Nov 2026 21:00:00 +0000"),
            (
                "Message-ID",
                "<00000000deadbeef.00000000000000AB@mx.switch.test>"
            ),
            ("Auto-Submitted", "auto-replied"),
            ("MIME-Version", "1.0"),
            (
                "Content-Type",
                &format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\"")
            ),
            ("Content-Transfer-Encoding", "7bit"),
        ])
    );

    let message = parse(&n);
    assert_eq!(
        message.subject(),
        Some("Undelivered Mail Returned to Sender")
    );
    assert_eq!(
        message.message_id(),
        Some("00000000deadbeef.00000000000000AB@mx.switch.test")
    );
    assert_eq!(message.date().map(|d| d.to_timestamp()), Some(NOW as i64));
    let parts = report_parts(&message);
    let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["text/plain", "message/delivery-status", "message/rfc822"]
    );

    let text = part_text(parts[0].1);
    assert!(text.starts_with("This is the mail delivery system at mx.switch.test.\r\n"));
    assert!(text.contains("\r\n<bob@example.com>: delivery failed\r\n    550 5.1.1 No such user (reported by mx.example.com)\r\n"), "{text}");
    assert!(
        text.contains("\r\n<carol@example.net>: delivery failed\r\n    550 5.2.2 Mailbox full\r\n"),
        "{text}"
    );
    assert!(text.contains("Your message is attached."), "{text}");

    assert_eq!(
        status_blocks(parts[1].1),
        vec![
            per_message(Some("QQ314159")),
            fields(&[
                ("Final-Recipient", "rfc822; bob@example.com"),
                ("Action", "failed"),
                ("Status", "5.1.1"),
                ("Remote-MTA", "dns; mx.example.com"),
                ("Diagnostic-Code", "smtp; 550 5.1.1 No such user"),
                ("Last-Attempt-Date", "Sun, 29 Nov 2026 20:59:00 +0000"),
            ]),
            fields(&[
                ("Original-Recipient", "rfc822; Carol@Example.NET"),
                ("Final-Recipient", "rfc822; carol@example.net"),
                ("Action", "failed"),
                ("Status", "5.2.2"),
            ]),
        ]
    );

    // The whole message comes back, octet for octet.
    let returned = parts[2].1;
    assert_eq!(raw_body(&message, returned), MESSAGE);
    let nested = returned.message().expect("a nested message");
    assert_eq!(nested.subject(), Some("Quarterly figures"));
    assert_eq!(nested.message_id(), Some("q1@example.org"));
}

#[test]
fn eight_bit_message_is_returned_intact() {
    let content = "From: alice@example.org\r\nSubject: plain\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n".as_bytes();
    let mut env = envelope("alice@example.org", &["bob@example.com"]);
    env.content_type = ContentType::Internet {
        body: BodyType::EightBitMime,
        smtputf8: false,
    };
    env.dsn_ret = Some(DsnRet::Full);
    let n = build_ok(&request(&env, content, vec![failed(0)]));
    assert!(n.eight_bit);
    assert!(!n.smtputf8);
    assert!(top_fields(&n).contains(&("Content-Transfer-Encoding".into(), "8bit".into())));

    let message = parse(&n);
    let parts = report_parts(&message);
    assert_eq!(parts[2].0, "message/rfc822");
    assert_eq!(parts[2].1.content_transfer_encoding(), Some("8bit"));
    assert_eq!(raw_body(&message, parts[2].1), content);
    let nested = parts[2].1.message().expect("a nested message");
    assert_eq!(nested.body_text(0).as_deref(), Some("Grüße aus Köln\r\n"));
}

#[test]
fn ret_hdrs_returns_the_header_section_only() {
    let mut env = envelope("alice@example.org", &["bob@example.com"]);
    env.dsn_ret = Some(DsnRet::Headers);
    let n = build_ok(&request(&env, MESSAGE, vec![failed(0)]));
    assert!(!contains(&n.content, b"the figures are attached"));

    let message = parse(&n);
    let parts = report_parts(&message);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2].0, "text/rfc822-headers");
    assert_eq!(part_text(parts[2].1).as_bytes(), MESSAGE_HEADERS);
    assert_eq!(
        parts[2].1.content_description(),
        Some("Undelivered Message Headers")
    );
    assert!(part_text(parts[0].1).contains("The header of your message is attached."));
}

#[test]
fn a_message_unfit_for_an_8bit_body_is_returned_as_its_headers() {
    // BINARYMIME content: a NUL and a bare LF in the body.
    let content = b"Subject: binary\r\nMIME-Version: 1.0\r\n\r\n\x00\x01\x02\nraw\r\n";
    let mut env = envelope("alice@example.org", &["bob@example.com"]);
    env.content_type = ContentType::Internet {
        body: BodyType::BinaryMime,
        smtputf8: false,
    };
    let n = build_ok(&request(&env, content, vec![failed(0)]));
    let message = parse(&n);
    let parts = report_parts(&message);
    assert_eq!(parts[2].0, "text/rfc822-headers");
    assert_eq!(
        part_text(parts[2].1),
        "Subject: binary\r\nMIME-Version: 1.0\r\n"
    );

    // A line over 998 octets.
    let long = format!("Subject: long\r\n\r\n{}\r\n", "x".repeat(1200));
    let n = build_ok(&request(&env, long.as_bytes(), vec![failed(0)]));
    let message = parse(&n);
    assert_eq!(part_text(report_parts(&message)[2].1), "Subject: long\r\n");
}

#[test]
fn header_section_is_normalized_and_without_body() {
    assert_eq!(
        header_section(b"A: 1\r\nB: 2\r\n\r\nbody\r\n"),
        b"A: 1\r\nB: 2\r\n"
    );
    assert_eq!(header_section(b"A: 1\nB: 2\n\nbody\n"), b"A: 1\nB: 2\n");
    assert_eq!(header_section(b"A: 1\r\nB: 2"), b"A: 1\r\nB: 2");
    assert_eq!(header_section(b"\r\nbody"), b"");
    assert_eq!(
        normalize_lines(b"A: 1\nB:\x00 2\rC: 3"),
        b"A: 1\r\nB: 2\r\nC: 3\r\n"
    );
    let long = normalize_lines(&[b'y'; 1000]);
    assert_eq!(long.len(), 998 + 3 + 2 + 2);
    assert!(long.starts_with(&[b'y'; 998]));
    assert!(long.ends_with(b"\r\n yy\r\n"));
    assert!(is_8bitmime_safe(MESSAGE));
    assert!(!is_8bitmime_safe(b"a\rb\r\n"));
    assert!(!is_8bitmime_safe(b"a\nb\r\n"));
    assert!(!is_8bitmime_safe(b"a\x00b\r\n"));
    assert!(is_8bitmime_safe(&[b'z'; 998]));
    assert!(!is_8bitmime_safe(&[b'z'; 999]));
}

// ------------------------------------------------------------------------------------------
// Delay and success notices

#[test]
fn delay_notice_returns_headers_and_says_until_when() {
    let mut env = envelope(
        "alice@example.org",
        &["bob@example.com", "carol@example.net"],
    );
    env.dsn_ret = Some(DsnRet::Full);
    let n = build_ok(&request(
        &env,
        MESSAGE,
        vec![delayed(0), succeeded(1, DsnAction::Delivered)],
    ));
    let message = parse(&n);
    assert_eq!(
        message.subject(),
        Some("Delayed Mail (still being retried)")
    );
    let parts = report_parts(&message);
    assert_eq!(parts.len(), 3);
    // Headers only: RET=FULL applies to failures (RFC 3461 §4.3).
    assert_eq!(parts[2].0, "text/rfc822-headers");
    assert_eq!(parts[2].1.content_description(), Some("Message Headers"));
    assert_eq!(part_text(parts[2].1).as_bytes(), MESSAGE_HEADERS);

    let text = part_text(parts[0].1);
    assert!(
        text.contains("    Delivery will be retried until Thu, 03 Dec 2026 21:00:00 +0000.\r\n"),
        "{text}"
    );
    assert_eq!(
        status_blocks(parts[1].1),
        vec![
            per_message(None),
            fields(&[
                ("Final-Recipient", "rfc822; bob@example.com"),
                ("Action", "delayed"),
                ("Status", "4.4.1"),
                ("Last-Attempt-Date", "Sun, 29 Nov 2026 20:55:00 +0000"),
                ("Will-Retry-Until", "Thu, 03 Dec 2026 21:00:00 +0000"),
            ]),
            // No Will-Retry-Until outside a delayed report (RFC 3464 §2.3.9), no Diagnostic-Code
            // for a status that did not come from the peer.
            fields(&[
                ("Final-Recipient", "rfc822; carol@example.net"),
                ("Action", "delivered"),
                ("Status", "2.0.0"),
                ("Remote-MTA", "dns; mx.example.com"),
                ("Last-Attempt-Date", "Sun, 29 Nov 2026 20:59:55 +0000"),
            ]),
        ]
    );
}

#[test]
fn success_notice_has_two_parts() {
    let env = envelope(
        "alice@example.org",
        &["bob@example.com", "carol@example.net", "list@example.net"],
    );
    let n = build_ok(&request(
        &env,
        MESSAGE,
        vec![
            succeeded(0, DsnAction::Delivered),
            succeeded(1, DsnAction::Relayed),
            succeeded(2, DsnAction::Expanded),
        ],
    ));
    assert!(!contains(&n.content, b"Quarterly figures"));
    let message = parse(&n);
    assert_eq!(message.subject(), Some("Successful Mail Delivery Report"));
    let parts = report_parts(&message);
    let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["text/plain", "message/delivery-status"]);
    let blocks = status_blocks(parts[1].1);
    let actions: Vec<&str> = blocks[1..]
        .iter()
        .map(|b| {
            b.iter()
                .find(|(n, _)| n == "Action")
                .map(|(_, v)| v.as_str())
                .expect("an Action field")
        })
        .collect();
    assert_eq!(actions, ["delivered", "relayed", "expanded"]);
    let text = part_text(parts[0].1);
    assert!(
        text.contains("<carol@example.net>: relayed to a system that does not report delivery\r\n"),
        "{text}"
    );
}

#[test]
fn status_codes_are_well_formed() {
    let env = envelope(
        "alice@example.org",
        &["bob@example.com", "carol@example.net"],
    );
    let mut bogus_class = failed(0);
    bogus_class.status = Status::new(250, (2, 0, 0), "Ok");
    let mut bogus_number = delayed(1);
    bogus_number.status.enhanced = EnhancedCode::new(4, 1000, 1);
    let n = build_ok(&request(&env, MESSAGE, vec![bogus_class, bogus_number]));
    let message = parse(&n);
    let blocks = status_blocks(report_parts(&message)[1].1);
    let status = |b: &Vec<(String, String)>| {
        b.iter()
            .find(|(n, _)| n == "Status")
            .map(|(_, v)| v.clone())
            .expect("a Status field")
    };
    assert_eq!(status(&blocks[1]), "5.0.0");
    assert_eq!(status(&blocks[2]), "4.0.0");
}

// ------------------------------------------------------------------------------------------
// Boundary

#[test]
fn boundary_never_occurs_in_the_returned_message() {
    let first = boundary_candidate(UNIQUE, QUEUE_ID, 0);
    let second = boundary_candidate(UNIQUE, QUEUE_ID, 1);
    let third = boundary_candidate(UNIQUE, QUEUE_ID, 2);
    assert_eq!(first, "=_00000000deadbeef.00000000000000AB");
    assert!(second.starts_with(&format!("{first}.")) && second.len() == 52);
    assert_ne!(second, third);
    assert!(third.len() <= 70);

    // A message that quotes the first two candidates as delimiter lines.
    let content = format!(
        "Subject: tricky\r\n\r\n--{first}\r\nContent-Type: text/plain\r\n\r\nfake\r\n--{second}--\r\n"
    );
    let env = envelope("alice@example.org", &["bob@example.com"]);
    let n = build_ok(&request(&env, content.as_bytes(), vec![failed(0)]));
    let message = parse(&n);
    let ct = message.parts[0].content_type().expect("Content-Type");
    assert_eq!(ct.attribute("boundary"), Some(third.as_str()));
    let parts = report_parts(&message);
    assert_eq!(parts.len(), 3);
    assert_eq!(raw_body(&message, parts[2].1), content.as_bytes());
}

// ------------------------------------------------------------------------------------------
// Hostile text

#[test]
fn peer_text_cannot_create_header_lines() {
    let mut env = envelope("alice@example.org", &["bob@example.com"]);
    env.dsn_envid = Some("id\r\nX-Injected: 4".to_owned());
    env.recipients[0].original = Some(OriginalRecipient {
        addr_type: "rfc822\r\nX-Injected: 5;".to_owned(),
        address: "bob@example.com\r\nX-Injected: 3".to_owned(),
    });
    let mut bob = failed(0);
    // Built directly: Status::new would already have cleaned the text.
    bob.status = Status {
        code: 550,
        enhanced: EnhancedCode::new(5, 7, 1),
        text: "bad\r\nX-Injected: 1\r\n\r\n--=_x\nX-Injected: 1b\rX-Injected: 1c\u{0}\u{85}\u{2028}é\t!"
            .to_owned(),
    };
    bob.remote_mta = Some("evil.example\r\nX-Injected: 2".to_owned());
    let n = build_ok(&request(&env, MESSAGE, vec![bob]));

    for line in n.content.split(|&b| b == b'\n') {
        assert!(
            !line.starts_with(b"X-Injected"),
            "injected line {:?}",
            String::from_utf8_lossy(line)
        );
    }
    let message = parse(&n);
    assert!(message.header("X-Injected").is_none());
    let parts = report_parts(&message);
    assert_eq!(parts.len(), 3);
    assert_eq!(
        status_blocks(parts[1].1),
        vec![
            per_message(Some("id+0D+0AX-Injected:+204")),
            fields(&[
                (
                    "Original-Recipient",
                    "rfc822X-Injected5; bob@example.com  X-Injected: 3"
                ),
                ("Final-Recipient", "rfc822; bob@example.com"),
                ("Action", "failed"),
                ("Status", "5.7.1"),
                ("Remote-MTA", "dns; evil.example  X-Injected: 2"),
                (
                    "Diagnostic-Code",
                    "smtp; 550 5.7.1 bad  X-Injected: 1    --=_x X-Injected: 1b X-Injected: 1c   ? !"
                ),
                ("Last-Attempt-Date", "Sun, 29 Nov 2026 20:59:00 +0000"),
            ]),
        ]
    );
    // The explanation keeps UTF-8 (it is labelled utf-8), but not the line breaks.
    let text = part_text(parts[0].1);
    assert!(
        text.contains("550 5.7.1 bad X-Injected: 1 --=_x X-Injected: 1b X-Injected: 1c é !"),
        "{text}"
    );
    assert_eq!(
        parts[0]
            .1
            .content_type()
            .and_then(|c| c.attribute("charset")),
        Some("utf-8")
    );
}

#[test]
fn long_diagnostics_are_folded() {
    let env = envelope(
        "alice@example.org",
        &["bob@example.com", "carol@example.net"],
    );
    let words: Vec<String> = (0..400).map(|i| format!("word{i}")).collect();
    let long_text = words.join(" ");
    let mut bob = failed(0);
    bob.status = Status::new(550, (5, 0, 0), long_text.clone());
    let giant = "z".repeat(2500);
    let mut carol = failed(1);
    carol.status = Status::new(554, (5, 0, 0), format!("before {giant} after"));
    let n = build_ok(&request(&env, MESSAGE, vec![bob, carol]));

    let message = parse(&n);
    let part = report_parts(&message)[1].1;
    let raw = std::str::from_utf8(part_bytes(part)).expect("ASCII report");
    // Folded at spaces to 78 octets where a space allows it.
    let diagnostic_lines: Vec<&str> = raw
        .split("\r\n")
        .skip_while(|l| !l.starts_with("Diagnostic-Code"))
        .take_while(|l| !l.starts_with("Last-Attempt-Date"))
        .collect();
    assert!(diagnostic_lines.len() > 30);
    assert!(
        diagnostic_lines
            .iter()
            .all(|l| l.len() <= PREFERRED_LINE_OCTETS)
    );
    let blocks = status_blocks(part);
    let diagnostic = |b: &Vec<(String, String)>| {
        b.iter()
            .find(|(n, _)| n == "Diagnostic-Code")
            .map(|(_, v)| v.clone())
            .expect("a Diagnostic-Code field")
    };
    // Unfolding gives the text back exactly.
    assert_eq!(
        diagnostic(&blocks[1]),
        format!("smtp; 550 5.0.0 {long_text}")
    );
    // A word longer than a line is broken (each break adds a space when unfolded).
    let carol = diagnostic(&blocks[2]);
    assert_eq!(
        carol.replace(' ', ""),
        format!("smtp;5545.0.0before{giant}after")
    );
    assert!(carol.starts_with("smtp; 554 5.0.0 before zzz"));
    assert!(carol.ends_with("zzz after"));
}

// ------------------------------------------------------------------------------------------
// Internationalized addresses (RFC 6533)

/// Found by the reliability suite (`hostile::injection`): an originator whose address holds a
/// character `clean` replaces (U+2028) got an ASCII To: field, so the notice was built without
/// SMTPUTF8 and the pipeline refused its non-ASCII envelope recipient: the notice was lost.
#[test]
fn an_originator_with_a_line_separator_still_needs_smtputf8() {
    let env = envelope("a\u{2028}b@example.org", &["rcpt@example.net"]);
    let n = build_ok(&request(&env, MESSAGE, vec![failed(0)]));
    assert!(n.smtputf8);
    assert_eq!(n.to.to_string(), "a\u{2028}b@example.org");
    // The header field itself keeps no line separator.
    assert!(!String::from_utf8_lossy(&n.content).contains('\u{2028}'));
}

#[test]
fn utf8_originator_needs_smtputf8_and_a_global_report() {
    let mut env = envelope("jörg@bücher.example", &["用户@example.net"]);
    env.recipients[0].original = Some(OriginalRecipient {
        addr_type: "utf-8".to_owned(),
        address: "用户@example.net".to_owned(),
    });
    let n = build_ok(&request(&env, MESSAGE, vec![failed(0)]));
    assert!(n.smtputf8);
    assert!(n.eight_bit);
    assert!(top_fields(&n).contains(&("To".into(), "jörg@bücher.example".into())));

    let message = parse(&n);
    let parts = report_parts(&message);
    assert_eq!(parts[1].0, "message/global-delivery-status");
    assert_eq!(parts[1].1.content_transfer_encoding(), Some("8bit"));
    let blocks = status_blocks(parts[1].1);
    assert_eq!(
        blocks[1][..2],
        fields(&[
            ("Original-Recipient", "utf-8; 用户@example.net"),
            ("Final-Recipient", "utf-8; 用户@example.net"),
        ])[..]
    );
    assert!(part_text(parts[0].1).contains("<用户@example.net>: delivery failed"));
}

#[test]
fn utf8_recipient_alone_needs_only_8bitmime() {
    let env = envelope("alice@example.org", &["josé@example.org"]);
    let mut jose = failed(0);
    jose.status = Status::new(550, (5, 1, 1), "Usuario desconocido: josé");
    let n = build_ok(&request(&env, MESSAGE, vec![jose]));
    assert!(!n.smtputf8);
    assert!(n.eight_bit);
    let message = parse(&n);
    let parts = report_parts(&message);
    assert_eq!(parts[1].0, "message/global-delivery-status");
    let blocks = status_blocks(parts[1].1);
    assert_eq!(
        blocks[1][0],
        ("Final-Recipient".into(), "utf-8; josé@example.org".into())
    );
    assert_eq!(
        blocks[1][4],
        (
            "Diagnostic-Code".into(),
            "smtp; 550 5.1.1 Usuario desconocido: josé".into()
        )
    );
}

#[test]
fn ascii_report_encodes_utf8_type_addresses_as_xtext() {
    let mut env = envelope("alice@example.org", &["bob@example.com"]);
    env.recipients[0].original = Some(OriginalRecipient {
        addr_type: "UTF-8".to_owned(),
        address: "bob+tag=x@example.com".to_owned(),
    });
    let mut bob = failed(0);
    bob.status = Status::new(550, (5, 1, 1), "Unbekannter Empfänger");
    let n = build_ok(&request(&env, MESSAGE, vec![bob]));
    assert!(!n.smtputf8);
    let message = parse(&n);
    let parts = report_parts(&message);
    assert_eq!(parts[1].0, "message/delivery-status");
    let blocks = status_blocks(parts[1].1);
    assert_eq!(
        blocks[1][0],
        (
            "Original-Recipient".into(),
            "UTF-8; bob\\x{2B}tag\\x{3D}x@example.com".into()
        )
    );
    // The 7-bit report has no 8-bit text; the explanation keeps it.
    assert_eq!(
        blocks[1][5],
        (
            "Diagnostic-Code".into(),
            "smtp; 550 5.1.1 Unbekannter Empf?nger".into()
        )
    );
    assert!(part_text(parts[0].1).contains("Unbekannter Empfänger"));
    assert_eq!(utf8_address("a b\\ü@x", false), "a\\x{20}b\\x{5C}\\x{FC}@x");
    assert_eq!(utf8_address("a\u{1}ü@x", true), "a\\x{01}ü@x");
    assert_eq!(utf8_address("a+ü@x", true), "a+ü@x");
}

#[test]
fn utf8_headers_are_returned_as_message_global() {
    let content = "From: jörg@bücher.example\r\nSubject: Grüße\r\n\r\nHallo\r\n".as_bytes();
    let mut env = envelope("alice@example.org", &["bob@example.com"]);
    env.content_type = ContentType::Internet {
        body: BodyType::EightBitMime,
        smtputf8: true,
    };
    let n = build_ok(&request(&env, content, vec![failed(0)]));
    let message = parse(&n);
    let parts = report_parts(&message);
    assert_eq!(parts[2].0, "message/global");
    assert_eq!(raw_body(&message, parts[2].1), content);
    let nested = parts[2]
        .1
        .message()
        .expect("message/global is a nested message");
    assert_eq!(nested.subject(), Some("Grüße"));

    let n = build_ok(&request(&env, content, vec![delayed(0)]));
    let message = parse(&n);
    let parts = report_parts(&message);
    assert_eq!(parts[2].0, "message/global-headers");
    assert_eq!(
        part_bytes(parts[2].1),
        "From: jörg@bücher.example\r\nSubject: Grüße\r\n".as_bytes()
    );
}

#[test]
fn x400_recipient_is_reported_with_its_address_type() {
    let env = envelope("alice@example.org", &["/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/"]);
    let n = build_ok(&request(&env, MESSAGE, vec![failed(0)]));
    let message = parse(&n);
    let parts = report_parts(&message);
    let blocks = status_blocks(parts[1].1);
    assert_eq!(
        blocks[1][0],
        (
            "Final-Recipient".into(),
            "x400; /C=GB/ADMD= /PRMD=X/O=Y/S=Smith/".into()
        )
    );
    assert!(
        part_text(parts[0].1).contains("\r\n/C=GB/ADMD= /PRMD=X/O=Y/S=Smith/: delivery failed\r\n")
    );
}
