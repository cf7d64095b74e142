//! X.400 P3 end to end: a user agent binds to instance A's P3 listener and submits; A
//! transfers over P1 to instance B, which delivers over P3 (forced access) to a message store
//! played by the test; the non-delivery report B makes for an unknown recipient travels back
//! to A, which delivers it to the user agent on its association. tshark checks the P3 bytes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mswitch_core::address::ORAddress;
use mswitch_testkit::tshark::Capture;
use mswitch_testkit::{free_port, wait_until};
use mswitch_x400::driver::{P3Client, P3DriverError, P3Outcome};
use mswitch_x400::mts::{
    BitString, ContentType, Credentials, MtsIdentifier, ORName, ReportType, UtcTime,
    non_delivery_diagnostic, non_delivery_reason,
};
use mswitch_x400::p3::types::{
    Controls, DeliveryControlArgument, MessageSubmissionArgument, MessageSubmissionEnvelope,
    PerRecipientMessageSubmissionFields, ProbeSubmissionArgument, RawValue, error_code, operations,
};
use mswitch_x400::p3::{
    MtsBindArgument, MtsBindError, MtsBindResult, ObjectName, P3Association, P3Config, P3Context,
    P3Event, P3Operation, P3Result,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::Daemon;

pub(crate) const A_ORIG: &str = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Orig/";
const A_OTHER: &str = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Other/";
const A_NOBODY: &str = "/C=GB/ADMD= /PRMD=PRMD-A/O=Nowhere/S=Nobody/";
const B_JONES: &str = "/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/S=Jones/";
const B_GHOST: &str = "/C=GB/ADMD= /PRMD=PRMD-B/O=Nowhere/S=Ghost/";
pub(crate) const UA_PASSWORD: &str = "ua-secret";
const MS_PASSWORD: &str = "ms-secret";

/// Instance `me` (`a` or `b`): P1 on `port`, the peer's P1 on `peer_port`, a P3 listener on
/// `p3_port` (A) or a message store at `ms_port` (B). `O=Ex` of its domain is delivered by
/// the `p3` channel; the rest of its domain is refused; the other domain goes over P1.
fn config(me: char, port: u16, peer_port: u16, p3_port: u16, ms_port: u16) -> String {
    let (mine, theirs) = if me == 'a' { ('A', 'B') } else { ('B', 'A') };
    let (me_l, them_l) = (mine.to_ascii_lowercase(), theirs.to_ascii_lowercase());
    let p3 = if me == 'a' {
        format!(
            r#"p3_listen = "127.0.0.1:{p3_port}"

[[x400.user]]
address = "{A_ORIG}"
password = "{UA_PASSWORD}"
"#
        )
    } else {
        format!(
            r#"
[[x400.store]]
address_prefix = "/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/"
address = "127.0.0.1:{ms_port}"
password = "{MS_PASSWORD}"
"#
        )
    };
    format!(
        r#"[server]
hostname = "{me_l}.x400.test"

[queue]
path = "queue"
retry_first = "1s"
retry_max = "2s"

[x400]
mta_name = "mta-{me_l}"
country = "GB"
admd = " "
prmd = "PRMD-{mine}"
password = "secret-{me_l}"
listen = "127.0.0.1:{port}"
idle_timeout = "30s"
{p3}
[[x400.peer]]
name = "mta-{them_l}"
address = "127.0.0.1:{peer_port}"
password = "secret-{them_l}"

[[channel]]
name = "p1"
type = "p1"

[[channel]]
name = "p3"
type = "p3"

[[x400_tree]]
name = "local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/"
action = "refuse"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{mine}/O=Ex/"
action = "local"
channel = "p3"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-{theirs}/"
channel = "p1"
mta = "mta-{them_l}"
"#
    )
}

fn or(text: &str) -> ORAddress {
    text.parse().expect("std-or address")
}

pub(crate) fn name(text: &str) -> ORName {
    ORName::from(or(text))
}

/// What the test message store received, in order.
type Received = Arc<Mutex<Vec<P3Operation>>>;

/// A message store on `port`: accepts forced-access binds from `mta-b` with its password,
/// records every delivery and answers it with an empty result.
fn message_store(port: u16) -> Received {
    let received: Received = Arc::default();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the store");
    listener.set_nonblocking(true).expect("non-blocking");
    let rec = received.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(store_session(stream, rec.clone()));
            }
        });
    });
    received
}

async fn store_session(mut s: tokio::net::TcpStream, received: Received) {
    let Ok(mut a) = P3Association::responder(P3Config::default()) else {
        return;
    };
    let mut buf = vec![0; 64 * 1024];
    loop {
        while let Some(ev) = a.poll_event() {
            match ev {
                P3Event::BindRequest { argument, context } => {
                    let ok = context == P3Context::ForcedAccess88
                        && argument.initiator_name == ObjectName::Mta("mta-b".into())
                        && argument.initiator_credentials
                            == Credentials::simple(MS_PASSWORD.to_owned());
                    let _ = if ok {
                        a.accept_bind(MtsBindResult::simple(
                            ObjectName::MessageStore(name(B_JONES)),
                            "",
                        ))
                    } else {
                        a.refuse_bind(MtsBindError::AuthenticationError)
                    };
                }
                P3Event::Invoked {
                    invoke_id,
                    operation,
                } => {
                    let result = match &operation {
                        P3Operation::MessageDelivery(_) => {
                            P3Result::MessageDelivery(RawValue::empty_set())
                        }
                        _ => P3Result::ReportDelivery(RawValue::null()),
                    };
                    received.lock().expect("lock").push(operation);
                    let _ = a.reply_result(invoke_id, result);
                }
                P3Event::Released | P3Event::Aborted { .. } => {
                    while let Some(b) = a.poll_transmit() {
                        let _ = s.write_all(&b).await;
                    }
                    return;
                }
                _ => {}
            }
        }
        while let Some(b) = a.poll_transmit() {
            if s.write_all(&b).await.is_err() {
                return;
            }
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if a.handle_input(&buf[..n]).is_err() {
                    while let Some(b) = a.poll_transmit() {
                        let _ = s.write_all(&b).await;
                    }
                    return;
                }
            }
        }
    }
}

async fn bind_ua(port: u16, password: &str) -> Result<P3Client, P3DriverError> {
    bind_as(port, A_ORIG, password).await
}

pub(crate) async fn bind_as(
    port: u16,
    who: &str,
    password: &str,
) -> Result<P3Client, P3DriverError> {
    P3Client::connect(
        SocketAddr::from(([127, 0, 0, 1], port)),
        P3Config::default(),
        MtsBindArgument::simple(ObjectName::UserAgent(name(who)), password),
        P3Context::Access88,
        Duration::from_secs(30),
    )
    .await
}

pub(crate) fn submission(from: &str, to: &[&str], content: &[u8]) -> MessageSubmissionArgument {
    MessageSubmissionArgument {
        envelope: MessageSubmissionEnvelope {
            originator_name: name(from),
            original_eits: None,
            content_type: ContentType::BuiltIn(22),
            content_identifier: Some("p3-test".into()),
            priority: None,
            per_message_indicators: None,
            deferred_delivery_time: None,
            extensions: Vec::new(),
            per_recipient_fields: to
                .iter()
                .map(|r| PerRecipientMessageSubmissionFields::new(name(r)))
                .collect(),
            unknown: Vec::new(),
        },
        content: content.to_vec(),
    }
}

#[test]
fn p3_submission_delivery_to_a_message_store_and_reports_back_to_the_user_agent() {
    let (pa, pb, p3a, ms) = (free_port(), free_port(), free_port(), free_port());
    let store = message_store(ms);
    let a = Daemon::start(&config('a', pa, pb, p3a, ms), &[pa, p3a]);
    let b = Daemon::start(&config('b', pb, pa, p3a, ms), &[pb]);
    let mut capture = Capture::start(&[p3a, ms]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    // A wrong password is refused at bind time.
    let refused = rt.block_on(bind_ua(p3a, "wrong"));
    assert!(
        matches!(
            refused,
            Err(P3DriverError::BindRefused {
                transient: false,
                ..
            })
        ),
        "{:?}",
        refused.err()
    );

    let mut ua = rt
        .block_on(bind_ua(p3a, UA_PASSWORD))
        .expect("the user agent binds");
    assert_eq!(
        ua.bind_result().responder_name,
        ObjectName::Mta("mta-a".into())
    );

    // Only the bound user agent's address may originate.
    let outcome = rt
        .block_on(ua.submit(submission(B_JONES, &[B_JONES], b"forged")))
        .expect("an answer");
    assert!(
        matches!(&outcome, P3Outcome::Error(e) if e.code == error_code::ORIGINATOR_INVALID),
        "{outcome:?}"
    );
    // A recipient A itself refuses: the submission is refused, naming it.
    let outcome = rt
        .block_on(ua.submit(submission(A_ORIG, &[B_JONES, A_NOBODY], b"not sent")))
        .expect("an answer");
    let P3Outcome::Error(e) = &outcome else {
        panic!("expected recipient-improperly-specified: {outcome:?}");
    };
    assert_eq!(e.code, error_code::RECIPIENT_IMPROPERLY_SPECIFIED);
    let named = e
        .improperly_specified_recipients()
        .expect("the recipients")
        .expect("decodable");
    assert_eq!(named.len(), 1);
    assert_eq!(named[0].address, or(A_NOBODY));

    // The message: Jones (delivered by B to its message store) and Ghost (refused by B).
    let body = b"an IPM submitted over P3".repeat(30);
    let outcome = rt
        .block_on(ua.submit(submission(A_ORIG, &[B_JONES, B_GHOST], &body)))
        .expect("an answer");
    let P3Outcome::Result(P3Result::MessageSubmission(result)) = outcome else {
        panic!("expected a submission result: {outcome:?}");
    };
    let id = result.message_submission_identifier;
    assert_eq!(id.global_domain.prmd.as_deref(), Some("PRMD-A"));
    assert_eq!(result.content_identifier.as_deref(), Some("p3-test"));

    // The message store gets the message for Jones through A → P1 → B → P3.
    let delivered = wait_until(Duration::from_secs(30), || {
        store.lock().expect("lock").first().cloned()
    });
    let Some(P3Operation::MessageDelivery(d)) = delivered else {
        panic!(
            "the message store got {delivered:?}; A:\n{}\nB:\n{}",
            a.log(),
            b.log()
        );
    };
    assert_eq!(d.content, body);
    assert_eq!(d.envelope.message_delivery_identifier, id);
    let f = &d.envelope.other_fields;
    assert_eq!(f.originator_name.address, or(A_ORIG));
    assert_eq!(f.this_recipient_name.address, or(B_JONES));
    assert_eq!(f.content_type, ContentType::BuiltIn(22));
    assert_eq!(f.content_identifier.as_deref(), Some("p3-test"));
    assert!(f.other_recipient_names.is_empty(), "no disclosure asked");
    assert_eq!(f.message_submission_time, result.message_submission_time);

    // The non-delivery report for Ghost comes back to the user agent, still bound.
    let (invoke_id, op) = rt
        .block_on(ua.next_invocation())
        .unwrap_or_else(|e| panic!("no report delivery ({e}); A:\n{}\nB:\n{}", a.log(), b.log()));
    let P3Operation::ReportDelivery(r) = op else {
        panic!("expected a report delivery: {op:?}");
    };
    rt.block_on(ua.reply_result(invoke_id, P3Result::ReportDelivery(RawValue::null())))
        .expect("answer the report delivery");
    assert_eq!(r.subject_submission_identifier, id);
    assert_eq!(r.per_recipient_fields.len(), 1);
    let f = &r.per_recipient_fields[0];
    assert_eq!(f.actual_recipient_name.address, or(B_GHOST));
    assert_eq!(
        f.report_type,
        ReportType::NonDelivery {
            reason_code: non_delivery_reason::UNABLE_TO_TRANSFER,
            diagnostic_code: Some(non_delivery_diagnostic::UNRECOGNISED_OR_NAME),
        }
    );

    // A probe for Jones is answered with a delivery report, and never delivered.
    let probe = ProbeSubmissionArgument {
        originator_name: name(A_ORIG),
        original_eits: None,
        content_type: ContentType::BuiltIn(22),
        content_identifier: None,
        content_length: Some(2000),
        per_message_indicators: None,
        extensions: Vec::new(),
        per_recipient_fields: vec![PerRecipientMessageSubmissionFields::new(name(B_JONES))],
        unknown: Vec::new(),
    };
    let outcome = rt
        .block_on(ua.invoke(P3Operation::ProbeSubmission(Box::new(probe))))
        .expect("an answer");
    let P3Outcome::Result(P3Result::ProbeSubmission(probe_result)) = outcome else {
        panic!("expected a probe submission result: {outcome:?}");
    };
    let (invoke_id, op) = rt.block_on(ua.next_invocation()).unwrap_or_else(|e| {
        panic!(
            "no report on the probe ({e}); A:\n{}\nB:\n{}",
            a.log(),
            b.log()
        )
    });
    let P3Operation::ReportDelivery(r) = op else {
        panic!("expected a report delivery: {op:?}");
    };
    rt.block_on(ua.reply_result(invoke_id, P3Result::ReportDelivery(RawValue::null())))
        .expect("answer the report delivery");
    assert_eq!(
        r.subject_submission_identifier,
        probe_result.message_submission_identifier
    );
    assert!(matches!(
        r.per_recipient_fields[0].report_type,
        ReportType::Delivery { .. }
    ));
    assert_eq!(
        store.lock().expect("lock").len(),
        1,
        "a probe is never delivered"
    );
    rt.block_on(ua.release()).expect("release");

    drop(a);
    drop(b);
    if let Ok(dir) = std::env::var("MSWITCH_KEEP_CAPTURE") {
        let _ = std::fs::copy(capture.stop(), std::path::Path::new(&dir).join("p3.pcap"));
    }
    // tshark decodes every P3 frame without a warning. tshark hands the submission port
    // (id-as-msse, 2.6.0.2.1) to its X.413 (P7) dissector, which registers the same object
    // identifier: it reads those PDUs as the message store's variants of the arguments and has
    // no decoder for the P3 errors, so frames it gives to P7 are not judged here. Only frames
    // that carry RFC 1006 data are: TCP's own notes (a retransmission and its D-SACK when the
    // receiver's delayed ACK outlasts the loopback RTO) say nothing of the bytes.
    let problems = capture.tshark(&[
        "-Y",
        "(_ws.malformed || _ws.expert.severity >= 6291456) && tpkt && !p7 \
         && !tcp.analysis.flags",
    ]);
    assert!(
        problems.trim().is_empty(),
        "tshark found problems:\n{problems}"
    );
    let summary = capture.tshark(&["-Y", "p3 || p7 || acse"]);
    for line in [
        "mts_bind_argument simple",
        "mts_bind_error",
        "mts_bind_result mta-a simple",
        "mts_bind_argument mta-b simple",
        "message_delivery_result",
        "report_delivery_argument non-delivery",
        "report_delivery_argument delivery",
        "report_delivery_result",
        "ms_message_submission_result",
        "Release-Request",
    ] {
        assert!(
            summary.contains(line),
            "tshark did not show {line:?}:\n{summary}"
        );
    }
    // The message delivery to the store, as tshark's P3 dissector reads it.
    let delivery = capture.tshark(&["-Y", "p1.this_recipient_name_element", "-V"]);
    for line in [
        "originator-name (/C=GB/A= /P=PRMD-A/O=Ex/S=Orig/)",
        "this-recipient-name (/C=GB/A= /P=PRMD-B/O=Ex/S=Jones/)",
        "built-in: interpersonal-messaging-1988 (22)",
    ] {
        assert!(
            delivery.contains(line),
            "tshark did not decode {line:?} in the message delivery:\n{delivery}"
        );
    }
}

/// A submission from A_ORIG to itself, deferred until `secs` from now when given.
fn to_myself(content: &[u8], deferred_secs: Option<u64>) -> MessageSubmissionArgument {
    let mut s = submission(A_ORIG, &[A_ORIG], content);
    s.envelope.deferred_delivery_time = deferred_secs.map(|secs| {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + secs;
        UtcTime::from_unix_seconds(i64::try_from(at).expect("time")).expect("UTCTime")
    });
    s
}

fn submitted(outcome: P3Outcome) -> MtsIdentifier {
    let P3Outcome::Result(P3Result::MessageSubmission(r)) = outcome else {
        panic!("expected a submission result: {outcome:?}");
    };
    r.message_submission_identifier
}

fn error_of(outcome: &P3Outcome) -> Option<i64> {
    match outcome {
        P3Outcome::Error(e) => Some(e.code),
        _ => None,
    }
}

fn cancel(id: &MtsIdentifier) -> P3Operation {
    P3Operation::CancelDeferredDelivery(id.clone())
}

fn delivery_control(controls: Controls) -> P3Operation {
    P3Operation::DeliveryControl(Box::new(DeliveryControlArgument {
        controls,
        extensions: Vec::new(),
    }))
}

/// The next message delivered to `ua`, answered; its content.
fn next_content(rt: &tokio::runtime::Runtime, ua: &mut P3Client, a: &Daemon) -> Vec<u8> {
    let (invoke_id, op) = rt
        .block_on(ua.next_invocation())
        .unwrap_or_else(|e| panic!("no delivery ({e}); A:\n{}", a.log()));
    let P3Operation::MessageDelivery(d) = op else {
        panic!("expected a message delivery: {op:?}");
    };
    rt.block_on(ua.reply_result(invoke_id, P3Result::MessageDelivery(RawValue::empty_set())))
        .expect("answer the delivery");
    d.content
}

/// Lines of A's log that record a delivery made to the user agent.
fn deliveries_logged(a: &Daemon) -> usize {
    a.log()
        .lines()
        .filter(|l| l.contains("P3 delivery to the user agent") && !l.contains("failed"))
        .count()
}

#[test]
fn p3_cancel_deferred_delivery_and_delivery_controls() {
    let (pa, pb, p3a, ms) = (free_port(), free_port(), free_port(), free_port());
    let conf = config('a', pa, pb, p3a, ms).replacen(
        "[[x400.user]]",
        &format!(
            "[[x400.user]]\naddress = \"{A_OTHER}\"\npassword = \"{UA_PASSWORD}\"\n\n[[x400.user]]"
        ),
        1,
    );
    let a = Daemon::start(&conf, &[pa, p3a]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut ua = rt
        .block_on(bind_ua(p3a, UA_PASSWORD))
        .expect("the user agent binds");
    let mut other = rt
        .block_on(bind_as(p3a, A_OTHER, UA_PASSWORD))
        .expect("the other user agent binds");

    // A message deferred for a few seconds, cancelled while it is held.
    let id = submitted(
        rt.block_on(ua.submit(to_myself(b"cancelled", Some(8))))
            .expect("an answer"),
    );
    // Not the other user agent's message, nor an identifier A issued.
    let outcome = rt.block_on(other.invoke(cancel(&id))).expect("an answer");
    assert_eq!(
        error_of(&outcome),
        Some(error_code::MESSAGE_SUBMISSION_IDENTIFIER_INVALID),
        "{outcome:?}"
    );
    let mut unknown = id.clone();
    unknown.local_identifier = "no-such-message".into();
    let outcome = rt.block_on(ua.invoke(cancel(&unknown))).expect("an answer");
    assert_eq!(
        error_of(&outcome),
        Some(error_code::MESSAGE_SUBMISSION_IDENTIFIER_INVALID),
        "{outcome:?}"
    );
    let outcome = rt.block_on(ua.invoke(cancel(&id))).expect("an answer");
    assert!(
        matches!(outcome, P3Outcome::Result(P3Result::CancelDeferredDelivery)),
        "{outcome:?}; A:\n{}",
        a.log()
    );
    // Cancelled already: a second cancel is rejected.
    let outcome = rt.block_on(ua.invoke(cancel(&id))).expect("an answer");
    assert_eq!(
        error_of(&outcome),
        Some(error_code::DEFERRED_DELIVERY_CANCELLATION_REJECTED),
        "{outcome:?}"
    );
    assert!(
        a.log()
            .contains("deferred message withdrawn by its originator")
    );

    // A message that was not deferred cannot be cancelled; it is delivered.
    let plain = submitted(
        rt.block_on(ua.submit(to_myself(b"plain", None)))
            .expect("an answer"),
    );
    let outcome = rt.block_on(ua.invoke(cancel(&plain))).expect("an answer");
    assert_eq!(
        error_of(&outcome),
        Some(error_code::DEFERRED_DELIVERY_CANCELLATION_REJECTED),
        "{outcome:?}"
    );
    assert_eq!(next_content(&rt, &mut ua, &a), b"plain");
    // A deferred message left alone goes out at its time, after the cancelled one's: the
    // cancelled one never comes.
    rt.block_on(ua.submit(to_myself(b"kept", Some(9))))
        .expect("an answer");
    assert_eq!(next_content(&rt, &mut ua, &a), b"kept");
    // (A logs a delivery once it has the user agent's answer.)
    wait_until(Duration::from_secs(10), || {
        (deliveries_logged(&a) >= 2).then_some(())
    });
    assert_eq!(deliveries_logged(&a), 2, "A:\n{}", a.log());

    // Delivery controls: no operation permitted holds every delivery.
    let nothing = Controls {
        permissible_operations: Some(BitString::new()),
        ..Controls::default()
    };
    let outcome = rt
        .block_on(ua.invoke(delivery_control(nothing.clone())))
        .expect("an answer");
    let P3Outcome::Result(P3Result::DeliveryControl(r)) = outcome else {
        panic!("expected a delivery-control result: {outcome:?}");
    };
    assert!(r.waiting.is_empty(), "nothing held yet: {r:?}");
    rt.block_on(ua.submit(to_myself(b"held", None)))
        .expect("an answer");
    // Held at the first attempt and at the retries that follow (retry_first 1s).
    wait_until(Duration::from_secs(30), || {
        let held = a
            .log()
            .matches("P3 delivery held by the user agent's delivery controls")
            .count();
        (held >= 2).then_some(())
    })
    .unwrap_or_else(|| panic!("the delivery was not held twice; A:\n{}", a.log()));
    assert_eq!(deliveries_logged(&a), 2, "nothing delivered while held");
    // The same controls again: the held message is waiting.
    let outcome = rt
        .block_on(ua.invoke(delivery_control(nothing)))
        .expect("an answer");
    let P3Outcome::Result(P3Result::DeliveryControl(r)) = outcome else {
        panic!("expected a delivery-control result: {outcome:?}");
    };
    assert!(
        r.waiting
            .waiting_operations
            .bit(operations::MESSAGE_SUBMISSION_OR_MESSAGE_DELIVERY),
        "{r:?}"
    );
    // Lifted: nothing waits, and the held message comes.
    let outcome = rt
        .block_on(ua.invoke(delivery_control(Controls::remove())))
        .expect("an answer");
    let P3Outcome::Result(P3Result::DeliveryControl(r)) = outcome else {
        panic!("expected a delivery-control result: {outcome:?}");
    };
    assert!(r.waiting.is_empty(), "{r:?}");
    assert_eq!(next_content(&rt, &mut ua, &a), b"held");
    rt.block_on(ua.release()).expect("release");
    rt.block_on(other.release()).expect("release");
}
