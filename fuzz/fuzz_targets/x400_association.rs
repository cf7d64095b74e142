//! A whole P1 responder association (transport, session, presentation, ACSE, RTSE, bind,
//! transfer reassembly) fed arbitrary bytes in arbitrary pieces never panics. The responder
//! accepts every bind and confirms every transfer, so the fuzzer can reach the data phase.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_x400::p1::{Association, AssociationConfig, BindCredentials, P1Event};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let max_piece = usize::from(seed % 128) + 1;
    let config = AssociationConfig {
        max_apdu: 1 << 20,
        ..AssociationConfig::default()
    };
    let Ok(mut a) = Association::responder(config) else {
        return;
    };
    let mut step = 0;
    while !rest.is_empty() {
        let len = (step % max_piece + 1).min(rest.len());
        step += 1;
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        let failed = a.handle_input(piece).is_err();
        while let Some(ev) = a.poll_event() {
            match ev {
                P1Event::BindRequest { .. } => {
                    let _ = a.accept_bind(BindCredentials::default());
                }
                P1Event::Received { apdu } => {
                    assert!(apdu.len() <= 1 << 20);
                    let _ = a.confirm_received();
                }
                _ => {}
            }
        }
        while a.poll_transmit().is_some() {}
        if failed {
            return;
        }
    }
});
