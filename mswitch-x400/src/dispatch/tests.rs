use super::*;
use crate::p1::{Association, AssociationConfig, BindCredentials, P1Event};
use crate::p3::testutil::{bind_argument, bind_result};
use crate::p3::{P3Association, P3Config, P3Event};

/// What an initiator sends before the dispatch decision: its CR, and (once it has our CC) its
/// session CONNECT.
trait Opening {
    fn transmit(&mut self) -> Option<Vec<u8>>;
    fn input(&mut self, bytes: &[u8]);
}

impl Opening for Association {
    fn transmit(&mut self) -> Option<Vec<u8>> {
        self.poll_transmit()
    }
    fn input(&mut self, bytes: &[u8]) {
        self.handle_input(bytes).expect("P1 initiator input");
    }
}

impl Opening for P3Association {
    fn transmit(&mut self) -> Option<Vec<u8>> {
        self.poll_transmit()
    }
    fn input(&mut self, bytes: &[u8]) {
        self.handle_input(bytes).expect("P3 initiator input");
    }
}

fn p1_initiator(tsel: &[u8]) -> Association {
    let config = AssociationConfig {
        remote_tsel: tsel.to_vec(),
        ..AssociationConfig::default()
    };
    let creds = BindCredentials {
        mta_name: Some("mta-a".into()),
        password: Some(b"secret-a".to_vec()),
    };
    Association::initiator(config, creds).expect("P1 initiator")
}

fn p3_initiator(context: P3Context, tsel: &[u8]) -> P3Association {
    let config = P3Config {
        remote_tsel: tsel.to_vec(),
        ..P3Config::default()
    };
    P3Association::initiator(config, bind_argument(), context).expect("P3 initiator")
}

/// The CC our transport answers `cr` with.
fn cc_for(cr: &[u8]) -> Vec<u8> {
    let mut t = Transport::responder(TransportConfig::default()).expect("transport");
    t.handle_input(cr).expect("CR");
    assert!(matches!(
        t.poll_event(),
        Some(TransportEvent::ConnectIndication { .. })
    ));
    t.accept().expect("accept");
    t.poll_transmit().expect("CC")
}

/// The initiator's CR and CONNECT TSDU in its TPKTs.
fn opening(initiator: &mut impl Opening) -> (Vec<u8>, Vec<u8>) {
    let cr = initiator.transmit().expect("CR");
    initiator.input(&cc_for(&cr));
    let cn = initiator.transmit().expect("CONNECT");
    (cr, cn)
}

fn shared() -> DispatchConfig {
    DispatchConfig::default()
}

/// Feeds the pieces of the CR, then those of the CONNECT, and returns the decision (asserting
/// that it comes only once the CONNECT is complete) and the dispatcher.
fn feed(config: &DispatchConfig, cr: &[&[u8]], cn: &[&[u8]]) -> (Responder, Dispatch) {
    let mut d = Dispatch::new(config.clone()).expect("dispatch");
    for piece in cr {
        assert_eq!(d.handle_input(piece), Ok(None));
    }
    let cc = d.poll_transmit().expect("CC after the CR");
    assert_eq!(cc, cc_for(&cr.concat()));
    let last = cn.len() - 1;
    for (i, piece) in cn.iter().enumerate() {
        let r = d.handle_input(piece).expect("no error");
        if i < last {
            assert_eq!(r, None, "decided before the CONNECT was complete");
        } else {
            let responder = r.expect("decided once the CONNECT is complete");
            assert_eq!(d.decision(), Some(responder));
            return (responder, d);
        }
    }
    unreachable!("at least one piece")
}

const P3_CONTEXTS: [P3Context; 4] = [
    P3Context::Access88,
    P3Context::ForcedAccess88,
    P3Context::Access94,
    P3Context::ForcedAccess94,
];

#[test]
fn the_application_context_of_the_connect_is_read() {
    let (_, cn) = opening(&mut p1_initiator(b""));
    // The CONNECT TSDU is the DT's user data after the TPKT and DT headers.
    let tsdu = &cn[7..];
    assert_eq!(application_context(tsdu), Some(oid(up::ID_AC_MTS_TRANSFER)));
    assert_eq!(responder_for(tsdu), Responder::P1);
    for context in P3_CONTEXTS {
        let (_, cn) = opening(&mut p3_initiator(context, b""));
        assert_eq!(application_context(&cn[7..]), Some(context.oid()));
        assert_eq!(responder_for(&cn[7..]), Responder::P3);
    }
    assert_eq!(application_context(b""), None);
    assert_eq!(application_context(&tsdu[..tsdu.len() - 1]), None);
    assert_eq!(responder_for(&[0x0D, 0x00]), Responder::P1);
}

#[test]
fn p1_goes_to_p1_and_binds_on_the_handed_over_transport() {
    let mut i = p1_initiator(b"");
    let mut d = Dispatch::new(shared()).expect("dispatch");
    let cr = i.poll_transmit().expect("CR");
    assert_eq!(d.handle_input(&cr), Ok(None));
    i.handle_input(&d.poll_transmit().expect("CC")).expect("CC");
    let cn = i.poll_transmit().expect("CONNECT");
    assert_eq!(d.handle_input(&cn), Ok(Some(Responder::P1)));
    assert_eq!(d.poll_transmit(), None);
    let mut r = Association::responder_on(AssociationConfig::default(), d.into_transport())
        .expect("responder");
    assert!(matches!(
        r.poll_event(),
        Some(P1Event::BindRequest { credentials, .. })
            if credentials.mta_name.as_deref() == Some("mta-a")
    ));
    r.accept_bind(BindCredentials::default()).expect("accept");
    i.handle_input(&r.poll_transmit().expect("AC")).expect("AC");
    assert!(matches!(i.poll_event(), Some(P1Event::Bound { .. })));
    // A transfer on it is received whole.
    let apdu = vec![0x04, 0x03, 1, 2, 3];
    i.transfer(&apdu).expect("transfer");
    r.handle_input(&i.poll_transmit().expect("activity"))
        .expect("activity");
    assert_eq!(r.poll_event(), Some(P1Event::Received { apdu }));
}

#[test]
fn every_p3_context_goes_to_p3_and_binds_on_the_handed_over_transport() {
    for context in P3_CONTEXTS {
        let mut i = p3_initiator(context, b"");
        let mut d = Dispatch::new(shared()).expect("dispatch");
        assert_eq!(d.handle_input(&i.poll_transmit().expect("CR")), Ok(None));
        i.handle_input(&d.poll_transmit().expect("CC")).expect("CC");
        let cn = i.poll_transmit().expect("CONNECT");
        assert_eq!(d.handle_input(&cn), Ok(Some(Responder::P3)), "{context:?}");
        let mut r =
            P3Association::responder_on(P3Config::default(), d.into_transport()).expect("r");
        assert_eq!(
            r.poll_event(),
            Some(P3Event::BindRequest {
                argument: bind_argument(),
                context
            })
        );
        r.accept_bind(bind_result()).expect("accept");
        i.handle_input(&r.poll_transmit().expect("AC")).expect("AC");
        assert_eq!(
            i.poll_event(),
            Some(P3Event::Bound {
                result: bind_result()
            })
        );
    }
}

#[test]
fn the_decision_is_the_same_however_the_input_is_split() {
    let mut openings = vec![(opening(&mut p1_initiator(b"")), Responder::P1)];
    for context in P3_CONTEXTS {
        openings.push((opening(&mut p3_initiator(context, b"")), Responder::P3));
    }
    for ((cr, cn), expected) in openings {
        // Byte by byte.
        let cr_bytes: Vec<&[u8]> = cr.iter().map(std::slice::from_ref).collect();
        let cn_bytes: Vec<&[u8]> = cn.iter().map(std::slice::from_ref).collect();
        assert_eq!(feed(&shared(), &cr_bytes, &cn_bytes).0, expected);
        // In two pieces, split at every octet of the CR, then of the CONNECT.
        for at in 1..cr.len() {
            let (x, y) = cr.split_at(at);
            let r = feed(&shared(), &[x, y], &[&cn]).0;
            assert_eq!(r, expected, "CR split at {at}");
        }
        for at in 1..cn.len() {
            let (x, y) = cn.split_at(at);
            let r = feed(&shared(), &[&cr], &[x, y]).0;
            assert_eq!(r, expected, "CONNECT split at {at}");
        }
    }
}

#[test]
fn a_connect_split_over_small_tpdus_is_reassembled_first() {
    // A P3 initiator that proposes the smallest TPDU size sends its CONNECT in several DTs.
    let mut i = p3_initiator(P3Context::Access94, b"");
    let cr = i.poll_transmit().expect("CR");
    let mut t = Transport::responder(TransportConfig {
        tpdu_size: 128,
        ..TransportConfig::default()
    })
    .expect("transport");
    t.handle_input(&cr).expect("CR");
    t.poll_event();
    t.accept().expect("accept");
    i.handle_input(&t.poll_transmit().expect("CC")).expect("CC");
    let cn = i.poll_transmit().expect("CONNECT");
    assert!(cn.len() > 128, "the CONNECT spans several TPDUs");
    // The dispatcher confirms 2048 but the initiator keeps to the 128 it was given.
    let pieces: Vec<&[u8]> = cn.chunks(100).collect();
    let (responder, d) = feed(&shared(), &[&cr], &pieces);
    assert_eq!(responder, Responder::P3);
    let mut r = P3Association::responder_on(P3Config::default(), d.into_transport()).expect("r");
    assert!(matches!(
        r.poll_event(),
        Some(P3Event::BindRequest {
            context: P3Context::Access94,
            ..
        })
    ));
}

#[test]
fn distinct_selectors_decide_at_the_cr() {
    let config = DispatchConfig {
        p1_tsel: b"P1".to_vec(),
        p3_tsel: b"P3".to_vec(),
    };
    for (tsel, expected) in [(&b"P1"[..], Responder::P1), (b"P3", Responder::P3)] {
        // Even a P3 initiator calling the P1 selector goes to P1 (which then refuses it).
        for cr in [
            p1_initiator(tsel).poll_transmit().expect("CR"),
            p3_initiator(P3Context::Access88, tsel)
                .poll_transmit()
                .expect("CR"),
        ] {
            let mut d = Dispatch::new(config.clone()).expect("dispatch");
            assert_eq!(d.handle_input(&cr), Ok(Some(expected)));
            assert_eq!(d.poll_transmit(), Some(cc_for(&cr)));
        }
    }
    // One selector shared, the other responder on any: both serve it, the context decides.
    let config = DispatchConfig {
        p1_tsel: b"P1".to_vec(),
        p3_tsel: Vec::new(),
    };
    let (cr, cn) = opening(&mut p3_initiator(P3Context::Access88, b"P1"));
    assert_eq!(feed(&config, &[&cr], &[&cn]).0, Responder::P3);
    let (cr, cn) = opening(&mut p1_initiator(b"P1"));
    assert_eq!(feed(&config, &[&cr], &[&cn]).0, Responder::P1);
    // Another selector: only P3 (any) serves it.
    let cr = p1_initiator(b"XX").poll_transmit().expect("CR");
    let mut d = Dispatch::new(config).expect("dispatch");
    assert_eq!(d.handle_input(&cr), Ok(Some(Responder::P3)));
}

#[test]
fn a_selector_neither_serves_is_refused_with_a_dr() {
    let config = DispatchConfig {
        p1_tsel: b"P1".to_vec(),
        p3_tsel: b"P3".to_vec(),
    };
    let cr = p1_initiator(b"XX").poll_transmit().expect("CR");
    let mut d = Dispatch::new(config).expect("dispatch");
    assert_eq!(
        d.handle_input(&cr),
        Err(DispatchError::ForeignSelector(b"XX".to_vec()))
    );
    let dr = d.poll_transmit().expect("DR");
    // TPKT, then the DR TPDU (code 0x80) with reason 2 after DST-REF and SRC-REF.
    assert_eq!(&dr[..2], &[0x03, 0x00]);
    assert_eq!(dr[5], 0x80);
    assert_eq!(dr[10], DisconnectReason::SESSION_ENTITY_NOT_ATTACHED.0);
}

#[test]
fn an_unknown_application_context_goes_to_p1_which_refuses_it() {
    let (cr, mut cn) = opening(&mut p3_initiator(P3Context::Access88, b""));
    // mts-access-88 is 2.6.0.1.0: OBJECT IDENTIFIER 06 04 56 00 01 00. Make it 2.6.0.1.63.
    let at = cn
        .windows(6)
        .position(|w| w == [0x06, 0x04, 0x56, 0x00, 0x01, 0x00])
        .expect("the context name");
    cn[at + 5] = 0x3F;
    let (responder, d) = feed(&shared(), &[&cr], &[&cn]);
    assert_eq!(responder, Responder::P1);
    let mut r = Association::responder_on(AssociationConfig::default(), d.into_transport())
        .expect("responder");
    let event = r.poll_event();
    assert!(matches!(&event, Some(P1Event::Aborted { .. })), "{event:?}");
    assert_eq!(r.state(), crate::p1::State::Closed);
    assert!(r.poll_transmit().is_some(), "the abort is sent");
}

#[test]
fn junk_is_a_transport_error() {
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x03, 0x00, 0x00, 0x00],
        &[
            0x03, 0x00, 0x00, 0x0B, 0x06, 0xF0, 0x00, 0x00, 0x00, 0x00, 0x00,
        ],
    ] {
        let mut d = Dispatch::new(shared()).expect("dispatch");
        let r = d.handle_input(junk);
        assert!(
            matches!(&r, Err(DispatchError::Transport(e)) if e.is_peer_fault()),
            "{junk:02x?}: {r:?}"
        );
    }
    // Data before the CR.
    let mut d = Dispatch::new(shared()).expect("dispatch");
    let r = d.handle_input(&[0x03, 0x00, 0x00, 0x08, 0x02, 0xF0, 0x80, 0x01]);
    assert!(matches!(r, Err(DispatchError::Transport(_))), "{r:?}");
    assert!(d.poll_transmit().is_some(), "an ER is sent back");
}

#[test]
fn too_much_before_the_connect_is_refused() {
    let (cr, _) = opening(&mut p1_initiator(b""));
    let mut d = Dispatch::new(shared()).expect("dispatch");
    assert_eq!(d.handle_input(&cr), Ok(None));
    assert!(d.poll_transmit().is_some());
    // DTs of 2048 octets without EOT: a TSDU that never ends.
    let mut dt = vec![0x03, 0x00, 0x08, 0x00, 0x02, 0xF0, 0x00];
    dt.resize(2048, 0x41);
    let mut taken = cr.len();
    let end = loop {
        taken += dt.len();
        match d.handle_input(&dt) {
            Ok(None) => assert!(taken <= MAX_DISPATCH_INPUT),
            other => break other,
        }
    };
    assert_eq!(end, Err(DispatchError::TooLong));
    assert!(taken > MAX_DISPATCH_INPUT && taken <= MAX_DISPATCH_INPUT + dt.len());
    // One huge read is refused as a whole, before it is parsed.
    let mut d = Dispatch::new(shared()).expect("dispatch");
    let big = vec![0u8; MAX_DISPATCH_INPUT + 1];
    assert_eq!(d.handle_input(&big), Err(DispatchError::TooLong));
}

#[test]
fn an_end_before_the_connect_is_reported() {
    let (cr, cn) = opening(&mut p1_initiator(b""));
    let mut d = Dispatch::new(shared()).expect("dispatch");
    assert_eq!(d.handle_eof(), DispatchError::Silent);
    let mut d = Dispatch::new(shared()).expect("dispatch");
    assert_eq!(d.handle_input(&cr), Ok(None));
    assert!(matches!(d.handle_eof(), DispatchError::Ended(_)));
    let mut d = Dispatch::new(shared()).expect("dispatch");
    assert_eq!(d.handle_input(&cr), Ok(None));
    assert_eq!(d.handle_input(&cn[..cn.len() / 2]), Ok(None));
    assert!(matches!(
        d.handle_eof(),
        DispatchError::Transport(TransportError::Truncated(_))
    ));
    // A DR instead of the CONNECT.
    let mut d = Dispatch::new(shared()).expect("dispatch");
    assert_eq!(d.handle_input(&cr), Ok(None));
    let dr = [
        0x03, 0x00, 0x00, 0x0B, 0x06, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00,
    ];
    let r = d.handle_input(&dr);
    assert!(matches!(r, Err(DispatchError::Ended(_))), "{r:?}");
}

#[test]
fn an_engine_takes_only_an_open_responder_transport() {
    let t = Transport::responder(TransportConfig::default()).expect("transport");
    assert!(Association::responder_on(AssociationConfig::default(), t).is_err());
    let t = Transport::responder(TransportConfig::default()).expect("transport");
    assert!(P3Association::responder_on(P3Config::default(), t).is_err());
    let t = Transport::initiator(TransportConfig::default()).expect("transport");
    assert!(P3Association::responder_on(P3Config::default(), t).is_err());
}
