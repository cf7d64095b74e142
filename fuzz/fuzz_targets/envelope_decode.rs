//! Envelope decoder: never panics; whatever decodes re-encodes to something that decodes equal.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_core::envelope::codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = codec::decode(data) {
        let again = codec::decode(&codec::encode(&env)).expect("re-encoding must decode");
        assert_eq!(again, env);
    }
});
