//! RFC 2156 std-or parser: never panics; whatever parses prints and re-parses to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_core::address::ORAddress;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(a) = s.parse::<ORAddress>()
    {
        let printed = a.to_string();
        let again: ORAddress = printed.parse().expect("a printed std-or must parse");
        assert_eq!(again, a);
    }
});
