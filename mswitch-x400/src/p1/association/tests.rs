use super::*;

/// Moves bytes between the two ends until neither has anything to send; returns the events
/// each side produced.
fn pump(a: &mut Association, b: &mut Association) -> (Vec<P1Event>, Vec<P1Event>) {
    let mut ea = Vec::new();
    let mut eb = Vec::new();
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
        while let Some(e) = a.poll_event() {
            ea.push(e);
        }
        while let Some(e) = b.poll_event() {
            eb.push(e);
        }
        if !moved {
            return (ea, eb);
        }
    }
}

fn creds(name: &str, pw: &str) -> BindCredentials {
    BindCredentials {
        mta_name: Some(name.into()),
        password: Some(pw.as_bytes().to_vec()),
    }
}

fn bound_pair(config: AssociationConfig) -> (Association, Association) {
    let mut i =
        Association::initiator(config.clone(), creds("mta-a", "secret-a")).expect("initiator");
    let mut r = Association::responder(config).expect("responder");
    let (_, er) = pump(&mut i, &mut r);
    assert_eq!(
        er,
        vec![P1Event::BindRequest {
            credentials: creds("mta-a", "secret-a"),
            dialogue_mode: DialogueMode::Monologue,
        }]
    );
    r.accept_bind(creds("mta-b", "secret-b")).expect("accept");
    let (ei, _) = pump(&mut i, &mut r);
    assert_eq!(
        ei,
        vec![P1Event::Bound {
            credentials: creds("mta-b", "secret-b")
        }]
    );
    (i, r)
}

/// A stand-in MTS-APDU: any single BER element travels.
fn apdu(len: usize) -> Vec<u8> {
    let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut w = crate::ber::Writer::new();
    w.constructed(crate::ber::Tag::context(0), |w| {
        w.octets(crate::ber::Tag::OCTET_STRING, &body)
    });
    w.finish()
}

#[test]
fn bind_transfer_confirm_release() {
    let (mut i, mut r) = bound_pair(AssociationConfig::default());
    for len in [10, 5_000, 200_000] {
        let a = apdu(len);
        i.transfer(&a).expect("transfer");
        assert_eq!(i.state(), State::Sending);
        let (ei, er) = pump(&mut i, &mut r);
        assert!(
            ei.is_empty(),
            "no confirmation before the responder commits"
        );
        assert_eq!(er, vec![P1Event::Received { apdu: a }]);
        r.confirm_received().expect("confirm");
        let (ei, _) = pump(&mut i, &mut r);
        assert_eq!(ei, vec![P1Event::TransferConfirmed]);
        assert!(i.can_transfer());
    }
    i.release().expect("release");
    let (ei, er) = pump(&mut i, &mut r);
    assert_eq!(ei, vec![P1Event::Released]);
    assert_eq!(er, vec![P1Event::Released]);
    assert_eq!(i.state(), State::Closed);
}

#[test]
fn small_segments_are_joined() {
    let config = AssociationConfig {
        segment_size: 100,
        ..AssociationConfig::default()
    };
    let (mut i, mut r) = bound_pair(config);
    let a = apdu(10_000);
    i.transfer(&a).expect("transfer");
    let (_, er) = pump(&mut i, &mut r);
    assert_eq!(er, vec![P1Event::Received { apdu: a }]);
}

#[test]
fn refused_bind_reaches_the_initiator() {
    let config = AssociationConfig::default();
    let mut i = Association::initiator(config.clone(), creds("mta-a", "wrong")).expect("initiator");
    let mut r = Association::responder(config).expect("responder");
    let _ = pump(&mut i, &mut r);
    r.refuse_bind(BindError::AuthenticationError)
        .expect("refuse");
    let (ei, _) = pump(&mut i, &mut r);
    assert!(
        matches!(
            &ei[..],
            [P1Event::BindRefused {
                transient: false,
                ..
            }]
        ),
        "{ei:?}"
    );
    assert_eq!(i.state(), State::Closed);
}

#[test]
fn an_apdu_over_the_limit_aborts() {
    let config = AssociationConfig {
        max_apdu: 1000,
        ..AssociationConfig::default()
    };
    let (mut i, mut r) = bound_pair(config);
    i.transfer(&apdu(5000)).expect("transfer");
    let (ei, er) = pump(&mut i, &mut r);
    assert!(
        matches!(&er[..], [P1Event::Aborted { .. }]),
        "responder: {er:?}"
    );
    assert!(
        matches!(&ei[..], [P1Event::Aborted { .. }]),
        "initiator: {ei:?}"
    );
}

#[test]
fn a_transfer_cut_off_is_not_confirmed() {
    let (mut i, mut r) = bound_pair(AssociationConfig::default());
    i.transfer(&apdu(50_000)).expect("transfer");
    // Only part of the bytes reach the responder, then the connection drops.
    let all = i.poll_transmit().expect("bytes");
    let _ = r.handle_input(&all[..all.len() / 2]);
    i.connection_lost();
    r.connection_lost();
    let ei: Vec<_> = std::iter::from_fn(|| i.poll_event()).collect();
    let er: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(matches!(&ei[..], [P1Event::Aborted { .. }]), "{ei:?}");
    assert!(
        !er.iter().any(|e| matches!(e, P1Event::Received { .. })),
        "the responder must not see a partial transfer"
    );
}

#[test]
fn garbage_from_the_peer_aborts_cleanly() {
    let mut r = Association::responder(AssociationConfig::default()).expect("responder");
    assert!(r.handle_input(&[0x03, 0x00, 0x00, 0x00]).is_err());
    assert_eq!(r.state(), State::Closed);
    let ev: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(matches!(&ev[..], [P1Event::Aborted { .. }]), "{ev:?}");
}

#[test]
fn a_connection_for_another_transport_selector_is_refused() {
    let theirs = AssociationConfig {
        remote_tsel: b"P3".to_vec(),
        ..AssociationConfig::default()
    };
    let ours = AssociationConfig {
        local_tsel: b"P1".to_vec(),
        ..AssociationConfig::default()
    };
    let mut i = Association::initiator(theirs, creds("mta-a", "x")).expect("initiator");
    let mut r = Association::responder(ours.clone()).expect("responder");
    let (ei, er) = pump(&mut i, &mut r);
    assert!(matches!(&er[..], [P1Event::Aborted { .. }]), "{er:?}");
    assert!(matches!(&ei[..], [P1Event::Aborted { .. }]), "{ei:?}");
    // With the right selector the bind goes ahead.
    let right = AssociationConfig {
        remote_tsel: b"P1".to_vec(),
        ..AssociationConfig::default()
    };
    let mut i = Association::initiator(right, creds("mta-a", "x")).expect("initiator");
    let mut r = Association::responder(ours).expect("responder");
    let (_, er) = pump(&mut i, &mut r);
    assert!(matches!(&er[..], [P1Event::BindRequest { .. }]), "{er:?}");
}

#[test]
fn two_way_alternate_passes_the_turn_both_ways() {
    let config = AssociationConfig {
        dialogue_mode: DialogueMode::TwoWayAlternate,
        ..AssociationConfig::default()
    };
    let mut i = Association::initiator(config.clone(), creds("mta-a", "a")).expect("initiator");
    let mut r = Association::responder(config).expect("responder");
    let (_, er) = pump(&mut i, &mut r);
    assert!(matches!(
        &er[..],
        [P1Event::BindRequest {
            dialogue_mode: DialogueMode::TwoWayAlternate,
            ..
        }]
    ));
    r.accept_bind(creds("mta-b", "b")).expect("accept");
    let _ = pump(&mut i, &mut r);
    assert!(i.has_turn() && !r.has_turn());
    assert!(
        r.transfer(&apdu(10)).is_err(),
        "no transfer without the turn"
    );

    // The responder asks for the turn while the initiator is sending: it is given after the
    // transfer is acknowledged.
    let first = apdu(3000);
    i.transfer(&first).expect("transfer");
    r.request_turn().expect("turn please");
    let (ei, er) = pump(&mut i, &mut r);
    assert!(ei.is_empty(), "{ei:?}");
    assert_eq!(er, vec![P1Event::Received { apdu: first }]);
    r.confirm_received().expect("confirm");
    let (ei, er) = pump(&mut i, &mut r);
    assert_eq!(ei, vec![P1Event::TransferConfirmed, P1Event::TurnGiven]);
    assert_eq!(er, vec![P1Event::TurnReceived]);

    // Now the responder transfers to the initiator on the same association.
    let back = apdu(5000);
    r.transfer(&back).expect("transfer back");
    let (ei, _) = pump(&mut i, &mut r);
    assert_eq!(ei, vec![P1Event::Received { apdu: back }]);
    i.confirm_received().expect("confirm");
    let (_, er) = pump(&mut i, &mut r);
    assert_eq!(er, vec![P1Event::TransferConfirmed]);

    // Release needs the turn back: asked for and given, then released.
    i.release().expect("release");
    let (ei, er) = pump(&mut i, &mut r);
    assert_eq!(ei, vec![P1Event::TurnReceived, P1Event::Released]);
    assert_eq!(er, vec![P1Event::TurnGiven, P1Event::Released]);
}

#[test]
fn in_monologue_the_turn_stays_with_the_initiator() {
    let (mut i, mut r) = bound_pair(AssociationConfig::default());
    assert!(r.request_turn().is_err());
    assert!(i.has_turn());
    let _ = pump(&mut i, &mut r);
}
