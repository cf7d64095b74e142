//! The session against a scripted master, on a virtual clock.

use std::time::{Duration, Instant};

use super::*;
use crate::agentx::mib::{Application, Group, MtaFigures, Snapshot};
use crate::agentx::pdu::{ByteOrder, CloseReason, Message, Packet, PduType};

fn oid(s: &str) -> Oid {
    s.parse().expect("a dotted OID")
}

fn config() -> SessionConfig {
    SessionConfig {
        id: oid("1.3.6.1.2.1.28"),
        description: "test".into(),
        timeout: 0,
        registrations: vec![
            Registration {
                subtree: oid("1.3.6.1.2.1.28.1.1.1.1"),
                range: Some((10, 12)),
                priority: 127,
            },
            Registration {
                subtree: oid("1.3.6.1.2.1.27"),
                range: None,
                priority: 127,
            },
        ],
    }
}

/// Every PDU in `bytes`.
fn pdus(bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = frame_len(rest).expect("framed").expect("a whole PDU");
        out.push(
            Message::parse(&Packet::new_checked(&rest[..n]).expect("checked")).expect("parsed"),
        );
        rest = &rest[n..];
    }
    out
}

fn sent(s: &mut Session) -> Vec<Message> {
    s.poll_transmit().map(|b| pdus(&b)).unwrap_or_default()
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn response(session_id: u32, packet_id: u32, error: u16, uptime: u32) -> Vec<u8> {
    Message::new(
        session_id,
        0,
        packet_id,
        Pdu::Response(Response {
            sys_uptime: uptime,
            error,
            index: 0,
            varbinds: Vec::new(),
        }),
    )
    .to_bytes()
}

fn view() -> MibView {
    MibView::new(
        &Snapshot {
            application: Application {
                name: "mswitchd".into(),
                ..Application::default()
            },
            mta: MtaFigures {
                received_messages: 3,
                ..MtaFigures::default()
            },
            groups: vec![Group {
                index: 1,
                name: "mx".into(),
                received_messages: Some(3),
                ..Group::default()
            }],
        },
        Some(100),
    )
}

/// Opens and registers, the second registration refused; returns the session (ID 42) at `t0`.
fn ready(t0: Instant) -> Session {
    let mut s = Session::new(config(), t0);
    let open = sent(&mut s);
    assert_eq!(open.len(), 1);
    assert!(
        matches!(&open[0].pdu, Pdu::Open(o) if o.description == b"test" && o.id == oid("1.3.6.1.2.1.28")),
        "{open:?}"
    );
    assert_eq!(s.state(), State::Opening);
    s.handle_input(&response(42, open[0].packet_id, 0, 1000), t0);
    let reg = sent(&mut s);
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].session_id, 42);
    assert!(
        matches!(&reg[0].pdu, Pdu::Register(r) if r.range == Some((10, 12)) && r.priority == 127),
        "{reg:?}"
    );
    s.handle_input(&response(42, reg[0].packet_id, 0, 1000), t0);
    let reg2 = sent(&mut s);
    assert!(matches!(&reg2[0].pdu, Pdu::Register(r) if r.subtree == oid("1.3.6.1.2.1.27")));
    s.handle_input(
        &response(
            42,
            reg2[0].packet_id,
            res_error::DUPLICATE_REGISTRATION,
            1000,
        ),
        t0,
    );
    assert_eq!(s.state(), State::Ready);
    let ev = events(&mut s);
    assert_eq!(ev[0], Event::Opened { session_id: 42 });
    assert!(matches!(&ev[1], Event::Registered(r) if r.range == Some((10, 12))));
    assert!(matches!(
        &ev[2],
        Event::RegistrationRefused { error: 263, .. }
    ));
    assert_eq!(ev[3], Event::Ready { registered: 1 });
    assert_eq!(s.poll_timeout(), None, "nothing awaited once ready");
    s
}

fn request(session_id: u32, packet_id: u32, pdu: Pdu) -> Vec<u8> {
    Message::new(session_id, 7, packet_id, pdu).to_bytes()
}

fn answer_of(m: &Message) -> &Response {
    match &m.pdu {
        Pdu::Response(r) => r,
        other => panic!("not a response: {other:?}"),
    }
}

fn range(start: &str, include: bool, end: &str) -> SearchRange {
    SearchRange {
        start: oid(start),
        include,
        end: if end.is_empty() {
            Oid::null()
        } else {
            oid(end)
        },
    }
}

#[test]
fn it_opens_registers_and_knows_the_masters_clock() {
    let t0 = Instant::now();
    let s = ready(t0);
    assert_eq!(s.session_id(), 42);
    assert_eq!(s.master_uptime(t0 + Duration::from_secs(2)), Some(1200));
    let r = Registration {
        subtree: oid("1.3.6.1.2.1.28.1.1.1.1"),
        range: Some((10, 12)),
        priority: 127,
    };
    assert_eq!(r.to_string(), "1.3.6.1.2.1.28.1.1.[1-12].1");
}

#[test]
fn get_getnext_and_getbulk_are_answered_from_the_view() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let mut input = request(
        42,
        10,
        Pdu::Get(vec![
            range("1.3.6.1.2.1.28.1.1.1.1", false, ""),
            range("1.3.6.1.2.1.28.1.1.1.2", false, ""),
            range("1.3.6.1.2.1.29", false, ""),
        ]),
    );
    input.extend(request(
        42,
        11,
        Pdu::GetNext(vec![
            range("1.3.6.1.2.1.28", false, "1.3.6.1.2.1.28.2"),
            range("1.3.6.1.2.1.28.1.1.9.1", false, "1.3.6.1.2.1.28.2"),
        ]),
    ));
    input.extend(request(
        42,
        12,
        Pdu::GetBulk {
            non_repeaters: 1,
            max_repetitions: 5,
            ranges: vec![
                range("1.3.6.1.2.1.27", false, ""),
                range("1.3.6.1.2.1.28.1", false, "1.3.6.1.2.1.28.2"),
            ],
        },
    ));
    // Fed one octet at a time: framing waits for whole PDUs.
    for b in &input {
        s.handle_input(std::slice::from_ref(b), t0);
    }
    assert!(s.has_requests());
    assert_eq!(s.poll_transmit(), None, "nothing before the answer");
    s.answer(&view());
    assert!(!s.has_requests());
    let out = sent(&mut s);
    assert_eq!(out.len(), 3);
    assert_eq!(
        (out[0].session_id, out[0].transaction_id, out[0].packet_id),
        (42, 7, 10)
    );
    let get = answer_of(&out[0]);
    assert_eq!(get.error, 0);
    assert_eq!(
        get.varbinds,
        vec![
            VarBind::new(oid("1.3.6.1.2.1.28.1.1.1.1"), Value::Counter32(3)),
            VarBind::new(oid("1.3.6.1.2.1.28.1.1.1.2"), Value::NoSuchInstance),
            VarBind::new(oid("1.3.6.1.2.1.29"), Value::NoSuchObject),
        ]
    );
    let next = answer_of(&out[1]);
    assert_eq!(
        next.varbinds,
        vec![
            VarBind::new(oid("1.3.6.1.2.1.28.1.1.1.1"), Value::Counter32(3)),
            VarBind::new(oid("1.3.6.1.2.1.28.1.1.9.1"), Value::EndOfMibView),
        ]
    );
    let bulk = answer_of(&out[2]);
    let names: Vec<String> = bulk
        .varbinds
        .iter()
        .map(|v| format!("{} {:?}", v.name, v.value.type_code()))
        .collect();
    assert_eq!(
        names,
        [
            // The non-repeater: the first instance after mib-2.27.
            "1.3.6.1.2.1.27.1.1.2.1 4",
            // Five repetitions of the repeater through the mtaTable row.
            "1.3.6.1.2.1.28.1.1.1.1 65",
            "1.3.6.1.2.1.28.1.1.2.1 66",
            "1.3.6.1.2.1.28.1.1.3.1 65",
            "1.3.6.1.2.1.28.1.1.4.1 65",
            "1.3.6.1.2.1.28.1.1.5.1 66",
        ]
    );
}

#[test]
fn a_bulk_stops_at_the_end_of_the_view() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    s.handle_input(
        &request(
            42,
            13,
            Pdu::GetBulk {
                non_repeaters: 0,
                max_repetitions: 50,
                ranges: vec![range("1.3.6.1.2.1.28.2.1.25.1.1", false, "")],
            },
        ),
        t0,
    );
    s.answer(&view());
    let out = sent(&mut s);
    let bulk = answer_of(&out[0]);
    assert_eq!(
        bulk.varbinds
            .iter()
            .map(|v| (v.name.to_string(), v.value.clone()))
            .collect::<Vec<_>>(),
        [
            (
                "1.3.6.1.2.1.28.2.1.28.1.1".to_owned(),
                Value::OctetString(Vec::new())
            ),
            ("1.3.6.1.2.1.28.2.1.31.1.1".to_owned(), Value::Integer(0)),
            ("1.3.6.1.2.1.28.2.1.31.1.1".to_owned(), Value::EndOfMibView),
        ]
    );
}

#[test]
fn requests_between_registrations_are_answered() {
    let t0 = Instant::now();
    let mut s = Session::new(config(), t0);
    let open = sent(&mut s);
    let get = request(
        42,
        70,
        Pdu::Get(vec![range("1.3.6.1.2.1.28.1.1.1.1", false, "")]),
    );
    // Before the Open's answer there is no session.
    s.handle_input(&get, t0);
    assert_eq!(answer_of(&sent(&mut s)[0]).error, res_error::NOT_OPEN);
    s.handle_input(&response(42, open[0].packet_id, 0, 0), t0);
    let reg = sent(&mut s);
    s.handle_input(&response(42, reg[0].packet_id, 0, 0), t0);
    assert_eq!(s.state(), State::Registering(1));
    let _second = sent(&mut s);
    s.handle_input(&get, t0);
    assert!(s.has_requests());
    s.answer(&view());
    let out = sent(&mut s);
    assert_eq!(
        answer_of(&out[0]).varbinds,
        [VarBind::new(
            oid("1.3.6.1.2.1.28.1.1.1.1"),
            Value::Counter32(3)
        )]
    );
}

#[test]
fn sets_are_refused_and_pings_answered() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    s.handle_input(
        &request(
            42,
            20,
            Pdu::TestSet(vec![VarBind::new(
                oid("1.3.6.1.2.1.27.1.1.2.1"),
                Value::OctetString(b"x".to_vec()),
            )]),
        ),
        t0,
    );
    s.handle_input(&request(42, 21, Pdu::CleanupSet), t0);
    s.handle_input(&request(42, 22, Pdu::Ping), t0);
    let out = sent(&mut s);
    assert_eq!(out.len(), 2, "CleanupSet has no answer: {out:?}");
    let test = answer_of(&out[0]);
    assert_eq!((test.error, test.index), (res_error::NOT_WRITABLE, 1));
    assert_eq!(out[1].packet_id, 22);
    assert_eq!(answer_of(&out[1]).error, 0);
}

#[test]
fn requests_on_another_session_or_context_are_refused() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    s.handle_input(
        &request(43, 30, Pdu::Get(vec![range("1.3.6.1.2.1.28", false, "")])),
        t0,
    );
    let mut m = Message::new(
        42,
        0,
        31,
        Pdu::Get(vec![range("1.3.6.1.2.1.28", false, "")]),
    );
    m.context = Some(b"other".to_vec());
    m.byte_order = ByteOrder::Little;
    s.handle_input(&m.to_bytes(), t0);
    assert!(!s.has_requests());
    let out = sent(&mut s);
    assert_eq!(answer_of(&out[0]).error, res_error::NOT_OPEN);
    assert_eq!(answer_of(&out[1]).error, res_error::UNSUPPORTED_CONTEXT);
    assert_eq!(
        out[1].packet_id, 31,
        "read in little-endian, answered in ours"
    );
    assert_eq!(s.state(), State::Ready);
}

#[test]
fn a_malformed_request_gets_parse_error_and_the_session_goes_on() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    // A Get whose start OID claims 9 sub-identifiers but holds 2.
    let mut bad = request(42, 40, Pdu::Get(vec![range("1.3.6.1.2.1.28", false, "")]));
    bad[20] = 9;
    s.handle_input(&bad, t0);
    // An unsupported type (Notify, 12) with an empty payload.
    let mut notify = request(42, 41, Pdu::Ping);
    notify[1] = 12;
    s.handle_input(&notify, t0);
    let out = sent(&mut s);
    assert_eq!(out.len(), 2);
    assert_eq!(
        (out[0].packet_id, answer_of(&out[0]).error),
        (40, res_error::PARSE_ERROR)
    );
    assert_eq!(
        (out[1].packet_id, answer_of(&out[1]).error),
        (41, res_error::PARSE_ERROR)
    );
    assert!(matches!(
        events(&mut s)[..],
        [
            Event::Malformed(ParseError::Short(_)),
            Event::Malformed(ParseError::UnsupportedType(PduType::Notify))
        ]
    ));
    assert_eq!(s.state(), State::Ready);
    // Still serving.
    s.handle_input(
        &request(
            42,
            42,
            Pdu::Get(vec![range("1.3.6.1.2.1.28.1.1.1.1", false, "")]),
        ),
        t0,
    );
    assert!(s.has_requests());
}

#[test]
fn a_stream_that_cannot_be_framed_ends_the_session_with_a_close() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    let mut v2 = request(42, 50, Pdu::Ping);
    v2[0] = 2;
    s.handle_input(&v2, t0);
    assert!(s.is_closed());
    let out = sent(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].pdu, Pdu::Close(CloseReason::PARSE_ERROR));
    assert_eq!(out[0].session_id, 42);
    assert_eq!(
        events(&mut s),
        [
            Event::Malformed(ParseError::Version(2)),
            Event::Closed(CloseReason::PARSE_ERROR)
        ]
    );
    // Nothing more is read.
    s.handle_input(&request(42, 51, Pdu::Ping), t0);
    assert_eq!(s.poll_transmit(), None);
}

#[test]
fn the_master_closing_ends_the_session() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    s.handle_input(
        &Message::new(42, 0, 60, Pdu::Close(CloseReason::SHUTDOWN)).to_bytes(),
        t0,
    );
    assert!(s.is_closed());
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(
        events(&mut s),
        [Event::ClosedByMaster(CloseReason::SHUTDOWN)]
    );
}

#[test]
fn closing_sends_a_close() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    s.close(CloseReason::SHUTDOWN);
    let out = sent(&mut s);
    assert_eq!(out[0].pdu, Pdu::Close(CloseReason::SHUTDOWN));
    assert!(s.is_closed());
    s.close(CloseReason::SHUTDOWN);
    assert_eq!(s.poll_transmit(), None, "once");
}

#[test]
fn a_refused_open_or_a_silent_master_ends_the_session() {
    let t0 = Instant::now();
    let mut s = Session::new(config(), t0);
    let open = sent(&mut s);
    s.handle_input(
        &response(0, open[0].packet_id, res_error::OPEN_FAILED, 0),
        t0,
    );
    assert!(s.is_closed());
    assert_eq!(
        events(&mut s),
        [Event::OpenRefused {
            error: res_error::OPEN_FAILED
        }]
    );

    let mut s = Session::new(config(), t0);
    let _ = sent(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + RESPONSE_TIMEOUT));
    s.handle_timeout(t0 + RESPONSE_TIMEOUT - Duration::from_millis(1));
    assert!(!s.is_closed());
    s.handle_timeout(t0 + RESPONSE_TIMEOUT);
    assert!(s.is_closed());
    // No session was opened, so there is nothing to Close.
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(
        events(&mut s),
        [Event::TimedOut, Event::Closed(CloseReason::TIMEOUTS)]
    );
}

#[test]
fn a_response_to_something_else_is_ignored_and_a_garbled_one_ends_the_wait() {
    let t0 = Instant::now();
    let mut s = Session::new(config(), t0);
    let open = sent(&mut s);
    s.handle_input(&response(42, open[0].packet_id + 100, 0, 0), t0);
    assert_eq!(s.state(), State::Opening);
    // A Response whose varbind has an unknown type: it cannot be answered, and the Open's
    // outcome is unknown, so the session ends.
    let mut garbled = Message::new(
        42,
        0,
        open[0].packet_id,
        Pdu::Response(Response {
            sys_uptime: 0,
            error: 0,
            index: 0,
            varbinds: vec![VarBind::new(oid("1.3"), Value::Null)],
        }),
    )
    .to_bytes();
    garbled[29] = 0x99;
    s.handle_input(&garbled, t0);
    assert!(s.is_closed());
}
