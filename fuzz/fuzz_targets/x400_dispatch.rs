//! The RFC 1006 listener's dispatch between P1 and P3: fed arbitrary bytes in arbitrary pieces
//! it never panics, never takes more than its input limit before deciding, keeps its decision
//! once made, and the transport it hands over goes on taking input without panicking.
//!
//! The first byte chooses the transport selectors each responder serves (bits 0-1) and how the
//! rest is cut (piece lengths cycle through 1..=(first >> 2) + 1).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_x400::dispatch::{Dispatch, DispatchConfig, MAX_DISPATCH_INPUT, responder_for};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let tsel = |on: bool, t: &[u8]| if on { t.to_vec() } else { Vec::new() };
    let config = DispatchConfig {
        p1_tsel: tsel(seed & 1 != 0, b"P1"),
        p3_tsel: tsel(seed & 2 != 0, b"P3"),
    };
    let max_piece = usize::from(seed >> 2) + 1;
    let Ok(mut d) = Dispatch::new(config) else {
        return;
    };
    // The whole input read as one CONNECT TSDU, too.
    let _ = responder_for(rest);
    let mut taken = 0usize;
    let mut step = 0;
    let mut decided = None;
    while !rest.is_empty() {
        let len = (step % max_piece + 1).min(rest.len());
        step += 1;
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        taken += len;
        match d.handle_input(piece) {
            Ok(Some(r)) => {
                assert!(decided.is_none_or(|was| was == r), "the decision changed");
                decided = Some(r);
                break;
            }
            Ok(None) => assert!(taken <= MAX_DISPATCH_INPUT, "past the input limit"),
            Err(_) => {
                while d.poll_transmit().is_some() {}
                return;
            }
        }
        while d.poll_transmit().is_some() {}
    }
    if decided.is_none() {
        let _ = d.handle_eof();
        while d.poll_transmit().is_some() {}
        return;
    }
    let mut t = d.into_transport();
    while t.poll_transmit().is_some() {}
    if t.handle_input(rest).is_ok() {
        while t.poll_event().is_some() {}
    }
    while t.poll_transmit().is_some() {}
});
