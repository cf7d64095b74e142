//! RFC 1006 TPKT + X.224 class 0: a responder transport engine fed arbitrary bytes in arbitrary
//! pieces never panics, and after an error it stays quiet.
//!
//! The first byte chooses how the rest is cut: piece lengths cycle through 1..=(first % 64 + 1).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_x400::osi::transport::{Transport, TransportConfig, TransportEvent};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let max_piece = usize::from(seed % 64) + 1;
    let Ok(mut t) = Transport::responder(TransportConfig {
        max_tsdu: 1 << 20,
        ..TransportConfig::default()
    }) else {
        return;
    };
    let mut step = 0;
    while !rest.is_empty() {
        let len = (step % max_piece + 1).min(rest.len());
        step += 1;
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        if t.handle_input(piece).is_err() {
            while t.poll_transmit().is_some() {}
            return;
        }
        while let Some(ev) = t.poll_event() {
            match ev {
                TransportEvent::ConnectIndication { .. } => {
                    let _ = t.accept();
                }
                TransportEvent::Data(tsdu) => assert!(tsdu.len() <= 1 << 20),
                _ => {}
            }
        }
        while t.poll_transmit().is_some() {}
    }
});
