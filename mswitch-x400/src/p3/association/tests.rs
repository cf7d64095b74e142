use super::*;
use crate::mts::MtsIdentifier;
use crate::p3::testutil::*;
use crate::p3::types::{ObjectName, RawValue, error_code};

/// Moves bytes between the two ends until neither has anything to send; returns the events
/// each side produced.
fn pump(a: &mut P3Association, b: &mut P3Association) -> (Vec<P3Event>, Vec<P3Event>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    loop {
        let mut moved = false;
        while let Some(bytes) = a.poll_transmit() {
            moved = true;
            let _ = b.handle_input(&bytes);
        }
        while let Some(bytes) = b.poll_transmit() {
            moved = true;
            let _ = a.handle_input(&bytes);
        }
        ea.extend(std::iter::from_fn(|| a.poll_event()));
        eb.extend(std::iter::from_fn(|| b.poll_event()));
        if !moved {
            return (ea, eb);
        }
    }
}

fn bound_pair_with(
    config: P3Config,
    bind: MtsBindArgument,
    context: P3Context,
) -> (P3Association, P3Association) {
    let mut i = P3Association::initiator(config.clone(), bind.clone(), context).expect("init");
    let mut r = P3Association::responder(config).expect("responder");
    let (_, er) = pump(&mut i, &mut r);
    assert_eq!(
        er,
        vec![P3Event::BindRequest {
            argument: bind,
            context
        }]
    );
    assert_eq!(r.context(), context);
    r.accept_bind(bind_result()).expect("accept");
    let (ei, _) = pump(&mut i, &mut r);
    assert_eq!(
        ei,
        vec![P3Event::Bound {
            result: bind_result()
        }]
    );
    assert_eq!(i.state(), P3State::Bound);
    assert_eq!(r.state(), P3State::Bound);
    (i, r)
}

/// A user agent bound to its MTA in `mts-access-88`: (UA, MTA).
fn ua_mta() -> (P3Association, P3Association) {
    bound_pair_with(P3Config::default(), bind_argument(), P3Context::Access88)
}

fn submit(ua: &mut P3Association) -> i64 {
    ua.invoke(P3Operation::MessageSubmission(Box::new(submission())))
        .expect("invoke")
}

#[test]
fn ua_binds_submits_and_gets_the_result() {
    let (mut ua, mut mta) = ua_mta();
    assert_eq!(ua.party(), Party::MtsUser);
    assert_eq!(mta.party(), Party::Mts);
    let id = submit(&mut ua);
    assert_eq!(ua.outstanding(), 1);
    let (_, em) = pump(&mut ua, &mut mta);
    assert_eq!(
        em,
        vec![P3Event::Invoked {
            invoke_id: id,
            operation: P3Operation::MessageSubmission(Box::new(submission())),
        }]
    );
    mta.reply_result(id, P3Result::MessageSubmission(submission_result()))
        .expect("reply");
    let (eu, _) = pump(&mut ua, &mut mta);
    assert_eq!(
        eu,
        vec![P3Event::Result {
            invoke_id: id,
            result: P3Result::MessageSubmission(submission_result()),
        }]
    );
    assert_eq!(ua.outstanding(), 0);
    assert_eq!(mta.pending_replies(), 0);
    // A second answer to the same invocation is refused locally.
    assert_eq!(
        mta.reply_result(id, P3Result::MessageSubmission(submission_result())),
        Err(P3AssociationError::UnknownInvocation(id))
    );
}

#[test]
fn duplex_delivery_while_a_submission_is_outstanding() {
    let (mut ua, mut mta) = ua_mta();
    let sub = submit(&mut ua);
    let probe_id = ua
        .invoke(P3Operation::ProbeSubmission(Box::new(probe())))
        .expect("probe");
    // Before anything reaches it, the MTA delivers a message to the UA.
    let del = mta
        .invoke(P3Operation::MessageDelivery(Box::new(delivery())))
        .expect("deliver");
    let (eu, em) = pump(&mut ua, &mut mta);
    assert_eq!(
        eu,
        vec![P3Event::Invoked {
            invoke_id: del,
            operation: P3Operation::MessageDelivery(Box::new(delivery())),
        }]
    );
    assert_eq!(em.len(), 2);
    assert!(
        matches!(&em[0], P3Event::Invoked { invoke_id, operation: P3Operation::MessageSubmission(_) } if *invoke_id == sub)
    );
    assert!(
        matches!(&em[1], P3Event::Invoked { invoke_id, operation: P3Operation::ProbeSubmission(_) } if *invoke_id == probe_id)
    );
    // Answers in any order, both directions at once.
    ua.reply_result(del, P3Result::MessageDelivery(RawValue::empty_set()))
        .expect("delivery result");
    mta.reply_result(probe_id, P3Result::ProbeSubmission(submission_result()))
        .expect("probe result");
    mta.reply_result(sub, P3Result::MessageSubmission(submission_result()))
        .expect("submission result");
    let (eu, em) = pump(&mut ua, &mut mta);
    assert_eq!(
        em,
        vec![P3Event::Result {
            invoke_id: del,
            result: P3Result::MessageDelivery(RawValue::empty_set()),
        }]
    );
    assert_eq!(
        eu,
        vec![
            P3Event::Result {
                invoke_id: probe_id,
                result: P3Result::ProbeSubmission(submission_result()),
            },
            P3Event::Result {
                invoke_id: sub,
                result: P3Result::MessageSubmission(submission_result()),
            },
        ]
    );
}

#[test]
fn report_delivery_and_cancel() {
    let (mut ua, mut mta) = ua_mta();
    let id = mta
        .invoke(P3Operation::ReportDelivery(Box::new(report())))
        .expect("report");
    let (eu, _) = pump(&mut ua, &mut mta);
    assert_eq!(
        eu,
        vec![P3Event::Invoked {
            invoke_id: id,
            operation: P3Operation::ReportDelivery(Box::new(report())),
        }]
    );
    ua.reply_result(id, P3Result::ReportDelivery(RawValue::null()))
        .expect("reply");
    let cancel = ua
        .invoke(P3Operation::CancelDeferredDelivery(MtsIdentifier::new(
            gdi(),
            "sub-0001",
        )))
        .expect("cancel");
    let (_, em) = pump(&mut ua, &mut mta);
    assert_eq!(em.len(), 2);
    assert_eq!(
        em[0],
        P3Event::Result {
            invoke_id: id,
            result: P3Result::ReportDelivery(RawValue::null()),
        }
    );
    mta.reply_result(cancel, P3Result::CancelDeferredDelivery)
        .expect("reply");
    let (eu, _) = pump(&mut ua, &mut mta);
    assert_eq!(
        eu,
        vec![P3Event::Result {
            invoke_id: cancel,
            result: P3Result::CancelDeferredDelivery,
        }]
    );
}

#[test]
fn an_error_reply_reaches_the_invoker() {
    let (mut ua, mut mta) = ua_mta();
    let id = submit(&mut ua);
    pump(&mut ua, &mut mta);
    let names = [name("/C=GB/ADMD= /PRMD=PRMD-B/S=Jones/")];
    let err = P3Error::recipient_improperly_specified(&names).expect("error");
    mta.reply_error(id, err.clone()).expect("reply");
    let (eu, _) = pump(&mut ua, &mut mta);
    assert_eq!(
        eu,
        vec![P3Event::Error {
            invoke_id: id,
            code: error_code::RECIPIENT_IMPROPERLY_SPECIFIED,
            parameter: err.parameter,
        }]
    );
    assert_eq!(ua.outstanding(), 0);
}

#[test]
fn unknown_operations_and_mistyped_arguments_are_rejected() {
    let (mut ua, mut mta) = ua_mta();
    let unknown = ua
        .invoke(P3Operation::Unknown {
            opcode: 99,
            argument: None,
        })
        .expect("invoke");
    // Operation 3 (message submission) with a NULL for an argument.
    let mistyped = ua
        .invoke(P3Operation::Unknown {
            opcode: 3,
            argument: Some(vec![0x05, 0x00]),
        })
        .expect("invoke");
    let (eu, em) = pump(&mut ua, &mut mta);
    assert_eq!(em, vec![], "the MTA's application never sees them");
    assert_eq!(
        eu,
        vec![
            P3Event::Rejected {
                invoke_id: Some(unknown),
                problem: RejectProblem::Invoke(1),
                by_peer: true,
            },
            P3Event::Rejected {
                invoke_id: Some(mistyped),
                problem: RejectProblem::Invoke(2),
                by_peer: true,
            },
        ]
    );
    assert_eq!(ua.outstanding(), 0);
    // The association goes on.
    let id = submit(&mut ua);
    let (_, em) = pump(&mut ua, &mut mta);
    assert_eq!(em.len(), 1);
    mta.reply_error(id, P3Error::new(error_code::ORIGINATOR_INVALID))
        .expect("reply");
    pump(&mut ua, &mut mta);
}

#[test]
fn parties_invoke_only_their_operations() {
    let (mut ua, mut mta) = ua_mta();
    assert_eq!(
        ua.invoke(P3Operation::MessageDelivery(Box::new(delivery()))),
        Err(P3AssociationError::NotPermitted(
            OperationKind::MessageDelivery
        ))
    );
    assert_eq!(
        mta.invoke(P3Operation::MessageSubmission(Box::new(submission()))),
        Err(P3AssociationError::NotPermitted(
            OperationKind::MessageSubmission
        ))
    );
    // A result of another operation is refused locally.
    let id = submit(&mut ua);
    pump(&mut ua, &mut mta);
    assert_eq!(
        mta.reply_result(id, P3Result::CancelDeferredDelivery),
        Err(P3AssociationError::NotPermitted(
            OperationKind::CancelDeferredDelivery
        ))
    );
}

#[test]
fn outstanding_operations_are_limited() {
    let config = P3Config {
        max_outstanding: 2,
        ..P3Config::default()
    };
    let (mut ua, mut mta) = bound_pair_with(config, bind_argument(), P3Context::Access88);
    submit(&mut ua);
    submit(&mut ua);
    assert_eq!(
        ua.invoke(P3Operation::MessageSubmission(Box::new(submission()))),
        Err(P3AssociationError::TooManyOutstanding(2))
    );
    let (_, em) = pump(&mut ua, &mut mta);
    assert_eq!(em.len(), 2);
}

#[test]
fn arguments_beyond_the_limit_are_refused() {
    let config = P3Config {
        max_pdu: 1024,
        ..P3Config::default()
    };
    let (mut ua, _mta) = bound_pair_with(config, bind_argument(), P3Context::Access88);
    let mut big = submission();
    big.content = vec![0x55; 2048];
    assert_eq!(
        ua.invoke(P3Operation::MessageSubmission(Box::new(big))),
        Err(P3AssociationError::TooLarge(1024))
    );
}

#[test]
fn mta_forced_access_to_a_message_store_88_and_94() {
    for context in [P3Context::ForcedAccess88, P3Context::ForcedAccess94] {
        let bind = MtsBindArgument::simple(ObjectName::Mta("mta-a".into()), "to-ms");
        let (mut mta, mut ms) = bound_pair_with(P3Config::default(), bind, context);
        assert_eq!(mta.party(), Party::Mts);
        assert_eq!(ms.party(), Party::MtsUser);
        let id = mta
            .invoke(P3Operation::MessageDelivery(Box::new(delivery())))
            .expect("deliver");
        let (_, es) = pump(&mut mta, &mut ms);
        assert_eq!(es.len(), 1);
        ms.reply_result(id, P3Result::MessageDelivery(RawValue::empty_set()))
            .expect("reply");
        let (em, _) = pump(&mut mta, &mut ms);
        assert!(matches!(&em[..], [P3Event::Result { invoke_id, .. }] if *invoke_id == id));
        // The message store may submit on the same association.
        let sub = submit(&mut ms);
        let (em, _) = pump(&mut mta, &mut ms);
        assert!(matches!(&em[..], [P3Event::Invoked { invoke_id, .. }] if *invoke_id == sub));
    }
}

#[test]
fn access_94_works_like_88() {
    let (mut ua, mut mta) =
        bound_pair_with(P3Config::default(), bind_argument(), P3Context::Access94);
    let id = submit(&mut ua);
    pump(&mut ua, &mut mta);
    mta.reply_result(id, P3Result::MessageSubmission(submission_result()))
        .expect("reply");
    let (eu, _) = pump(&mut ua, &mut mta);
    assert_eq!(eu.len(), 1);
}

#[test]
fn refused_bind() {
    let mut ua =
        P3Association::initiator(P3Config::default(), bind_argument(), P3Context::Access88)
            .expect("init");
    let mut mta = P3Association::responder(P3Config::default()).expect("resp");
    pump(&mut ua, &mut mta);
    assert_eq!(mta.state(), P3State::AwaitingBindDecision);
    mta.refuse_bind(MtsBindError::AuthenticationError)
        .expect("refuse");
    let (eu, _) = pump(&mut ua, &mut mta);
    assert_eq!(eu.len(), 1);
    assert!(matches!(
        &eu[0],
        P3Event::BindRefused {
            error: Some(MtsBindError::AuthenticationError),
            transient: false,
            ..
        }
    ));
    assert_eq!(ua.state(), P3State::Closed);
    // Busy is transient.
    let mut ua =
        P3Association::initiator(P3Config::default(), bind_argument(), P3Context::Access88)
            .expect("init");
    let mut mta = P3Association::responder(P3Config::default()).expect("resp");
    pump(&mut ua, &mut mta);
    mta.refuse_bind(MtsBindError::Busy).expect("refuse");
    let (eu, _) = pump(&mut ua, &mut mta);
    assert!(matches!(
        &eu[..],
        [P3Event::BindRefused {
            transient: true,
            ..
        }]
    ));
}

#[test]
fn release_by_either_side() {
    let (mut ua, mut mta) = ua_mta();
    ua.release().expect("release");
    assert_eq!(ua.state(), P3State::Releasing);
    let (eu, em) = pump(&mut ua, &mut mta);
    assert_eq!(eu, vec![P3Event::Released]);
    assert_eq!(em, vec![P3Event::Released]);
    let (mut ua, mut mta) = ua_mta();
    mta.release().expect("release");
    let (eu, em) = pump(&mut ua, &mut mta);
    assert_eq!(eu, vec![P3Event::Released]);
    assert_eq!(em, vec![P3Event::Released]);
    assert_eq!(
        ua.invoke(P3Operation::Register(RawValue::empty_set())),
        Err(P3AssociationError::State(P3State::Closed))
    );
}

#[test]
fn abort() {
    let (mut ua, mut mta) = ua_mta();
    submit(&mut ua);
    ua.abort();
    assert_eq!(ua.state(), P3State::Closed);
    let (_, em) = pump(&mut ua, &mut mta);
    // The submission left before the abort.
    assert_eq!(em.len(), 2);
    assert!(matches!(&em[0], P3Event::Invoked { .. }));
    assert!(matches!(&em[1], P3Event::Aborted { reason } if reason.contains("ACSE source 0")));
    assert_eq!(mta.state(), P3State::Closed);
}

#[test]
fn a_responder_refuses_another_application_context() {
    // A P1 initiator (id-ac-mts-transfer) reaching a P3 responder.
    let mut p1 = crate::p1::Association::initiator(
        crate::p1::AssociationConfig::default(),
        crate::p1::BindCredentials::default(),
    )
    .expect("p1");
    let mut mta = P3Association::responder(P3Config::default()).expect("resp");
    loop {
        let mut moved = false;
        while let Some(b) = p1.poll_transmit() {
            moved = true;
            let _ = mta.handle_input(&b);
        }
        while let Some(b) = mta.poll_transmit() {
            moved = true;
            let _ = p1.handle_input(&b);
        }
        if !moved {
            break;
        }
    }
    assert_eq!(mta.state(), P3State::Closed);
    assert!(matches!(mta.poll_event(), Some(P3Event::Aborted { .. })));
}

/// What a user agent sends in a bind, one submission and a release.
fn traffic() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut ua =
        P3Association::initiator(P3Config::default(), bind_argument(), P3Context::Access88)
            .expect("init");
    let mut mta = P3Association::responder(P3Config::default()).expect("resp");
    let step = |ua: &mut P3Association, mta: &mut P3Association, out: &mut Vec<Vec<u8>>| loop {
        let mut moved = false;
        while let Some(b) = ua.poll_transmit() {
            moved = true;
            out.push(b.clone());
            let _ = mta.handle_input(&b);
        }
        while let Some(b) = mta.poll_transmit() {
            moved = true;
            let _ = ua.handle_input(&b);
        }
        while mta.poll_event().is_some() {}
        while ua.poll_event().is_some() {}
        if !moved {
            break;
        }
    };
    step(&mut ua, &mut mta, &mut out);
    mta.accept_bind(bind_result()).expect("accept");
    step(&mut ua, &mut mta, &mut out);
    submit(&mut ua);
    step(&mut ua, &mut mta, &mut out);
    ua.release().expect("release");
    step(&mut ua, &mut mta, &mut out);
    out
}

#[test]
fn hostile_inputs_never_panic() {
    let frames = traffic();
    assert!(frames.len() >= 4, "{} frames", frames.len());
    let mut rng = Lcg(42);
    // Each frame of the UA's side mutated at every position, replayed to a fresh MTA.
    for (k, frame) in frames.iter().enumerate() {
        for i in 0..frame.len() {
            let mut m = frame.clone();
            m[i] = rng.next_u8();
            let mut mta = P3Association::responder(P3Config::default()).expect("resp");
            for (j, f) in frames.iter().enumerate().take(k + 1) {
                let _ = mta.handle_input(if j == k { &m } else { f });
                while mta.poll_event().is_some() {}
                if j == 0 && mta.state() == P3State::AwaitingBindDecision {
                    let _ = mta.accept_bind(bind_result());
                }
                while mta.poll_transmit().is_some() {}
            }
        }
    }
    // Random bytes, in random chunks, to both roles.
    for seed in 0..50u64 {
        let mut rng = Lcg(seed);
        let bytes: Vec<u8> = (0..512).map(|_| rng.next_u8()).collect();
        let mut r = P3Association::responder(P3Config::default()).expect("resp");
        let mut i =
            P3Association::initiator(P3Config::default(), bind_argument(), P3Context::Access88)
                .expect("init");
        for c in bytes.chunks(1 + (seed as usize % 7)) {
            let _ = r.handle_input(c);
            let _ = i.handle_input(c);
        }
    }
}
