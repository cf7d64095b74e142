//! X.411 P3 (MTS access): the operation arguments and results (decode, encode, decode again),
//! and a whole P3 responder association (transport, session, presentation, ACSE, ROS, bind,
//! operations) fed arbitrary bytes in arbitrary pieces: nothing panics, what decodes
//! round-trips. The responder accepts every bind and answers every operation with an error,
//! so the fuzzer reaches the operation phase.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_x400::p3::types::{
    MessageDeliveryArgument, MessageSubmissionArgument, MessageSubmissionResult,
    ProbeSubmissionArgument, ReportDeliveryArgument,
};
use mswitch_x400::p3::{
    MtsBindArgument, MtsBindResult, ObjectName, P3Association, P3Config, P3Error, P3Event,
    error_code,
};

macro_rules! round_trip {
    ($t:ty, $data:expr) => {
        if let Ok(v) = <$t>::decode($data) {
            if let Ok(bytes) = v.encode() {
                assert_eq!(<$t>::decode(&bytes).as_ref(), Ok(&v), "{}", stringify!($t));
            }
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    match seed % 8 {
        0 => round_trip!(MtsBindArgument, rest),
        1 => round_trip!(MtsBindResult, rest),
        2 => round_trip!(MessageSubmissionArgument, rest),
        3 => round_trip!(MessageSubmissionResult, rest),
        4 => round_trip!(ProbeSubmissionArgument, rest),
        5 => round_trip!(MessageDeliveryArgument, rest),
        6 => round_trip!(ReportDeliveryArgument, rest),
        _ => association(seed, rest),
    }
});

fn association(seed: u8, mut rest: &[u8]) {
    let max_piece = usize::from(seed / 8 % 32) + 1;
    let config = P3Config {
        max_pdu: 1 << 20,
        ..P3Config::default()
    };
    let Ok(mut a) = P3Association::responder(config) else {
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
                P3Event::BindRequest { .. } => {
                    let name = ObjectName::Mta("fuzz-mta".into());
                    let _ = a.accept_bind(MtsBindResult::simple(name, "secret"));
                }
                P3Event::Invoked { invoke_id, .. } => {
                    let _ = a.reply_error(invoke_id, P3Error::new(error_code::SUBMISSION_CONTROL_VIOLATED));
                }
                _ => {}
            }
        }
        while a.poll_transmit().is_some() {}
        if failed {
            return;
        }
    }
}
