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
    ContentType, Credentials, ORName, ReportType, non_delivery_diagnostic, non_delivery_reason,
};
use mswitch_x400::p3::types::{
    MessageSubmissionArgument, MessageSubmissionEnvelope, PerRecipientMessageSubmissionFields,
    ProbeSubmissionArgument, RawValue, error_code,
};
use mswitch_x400::p3::{
    MtsBindArgument, MtsBindError, MtsBindResult, ObjectName, P3Association, P3Config, P3Context,
    P3Event, P3Operation, P3Result,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::Daemon;

const A_ORIG: &str = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/S=Orig/";
const A_NOBODY: &str = "/C=GB/ADMD= /PRMD=PRMD-A/O=Nowhere/S=Nobody/";
const B_JONES: &str = "/C=GB/ADMD= /PRMD=PRMD-B/O=Ex/S=Jones/";
const B_GHOST: &str = "/C=GB/ADMD= /PRMD=PRMD-B/O=Nowhere/S=Ghost/";
const UA_PASSWORD: &str = "ua-secret";
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

fn name(text: &str) -> ORName {
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
    P3Client::connect(
        SocketAddr::from(([127, 0, 0, 1], port)),
        P3Config::default(),
        MtsBindArgument::simple(ObjectName::UserAgent(name(A_ORIG)), password),
        P3Context::Access88,
        Duration::from_secs(30),
    )
    .await
}

fn submission(from: &str, to: &[&str], content: &[u8]) -> MessageSubmissionArgument {
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
