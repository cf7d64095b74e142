//! X.225 session: the SPDU parser and a responder session machine fed arbitrary TSDUs never
//! panic; every TSDU the parser accepts re-emits and parses again to the same SPDUs.
//!
//! The input is split into TSDUs at each 0xFE 0xFE pair (so the fuzzer can build dialogues).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_x400::osi::session::{SessionConfig, SessionConnection, SessionEvent};
use mswitch_x400::osi::session::spdu::{emit_tsdu, parse_tsdu};

fuzz_target!(|data: &[u8]| {
    let mut s = SessionConnection::responder(SessionConfig::p1());
    let mut start = 0;
    let mut i = 0;
    let mut tsdus = Vec::new();
    while i + 1 < data.len() {
        if data[i] == 0xFE && data[i + 1] == 0xFE {
            tsdus.push(&data[start..i]);
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    tsdus.push(&data[start..]);
    for tsdu in tsdus {
        if let Ok(spdus) = parse_tsdu(tsdu)
            && let Ok(bytes) = emit_tsdu(&spdus)
        {
            assert_eq!(parse_tsdu(&bytes).ok().as_ref(), Some(&spdus));
        }
        if s.handle_tsdu(tsdu).is_err() {
            return;
        }
        while let Some(ev) = s.poll_event() {
            if let SessionEvent::ConnectIndication { .. } = ev {
                let _ = s.accept(Vec::new());
            }
        }
        while s.poll_tsdu().is_some() {}
    }
});
