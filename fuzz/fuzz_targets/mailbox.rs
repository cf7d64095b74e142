//! RFC 5321 mailbox parser: never panics; whatever parses prints and re-parses to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_core::address::Mailbox;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(m) = Mailbox::parse(s)
    {
        let printed = m.to_string();
        let again = Mailbox::parse(&printed).expect("a printed mailbox must parse");
        assert_eq!(again, m);
    }
});
