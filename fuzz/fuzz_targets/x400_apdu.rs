//! X.411 MTS-APDUs (message, probe, report envelopes, O/R names, extensions, trace) and the MTA
//! bind: arbitrary bytes never panic; whatever decodes re-encodes to bytes that decode to the
//! same value; and the MTA rules (receive, prepare_transfer, report) never panic on it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_core::id::Timestamp;
use mswitch_x400::mta::{self, MtaIdentity, ReportEntry};
use mswitch_x400::mts::{MtaBindArgument, MtaBindResult, MtsApdu};

fuzz_target!(|data: &[u8]| {
    if let Ok(apdu) = MtsApdu::decode(data) {
        if let Ok(bytes) = apdu.encode() {
            assert_eq!(MtsApdu::decode(&bytes).as_ref(), Ok(&apdu));
        }
        let me = MtaIdentity::new("fuzz-mta", "GB", " ", Some("FUZZ"));
        let now = Timestamp::from_secs(1_800_000_000);
        if let Ok(incoming) = mta::receive(data, &me, now) {
            let rcpts: Vec<_> = incoming
                .envelope
                .recipients
                .iter()
                .filter_map(|r| r.address.as_or_address())
                .collect();
            let _ = mta::prepare_transfer(&incoming.stored, &rcpts, &me, now);
            let entries: Vec<_> = rcpts.iter().map(|r| ReportEntry::delivered(r)).collect();
            let _ = mta::report(&incoming.stored, &entries, &me, now);
        }
    }
    if let Ok((_, apdu)) = MtsApdu::decode_external(data) {
        let _ = apdu.encode();
    }
    if let Ok(b) = MtaBindArgument::decode(data)
        && let Ok(bytes) = b.encode()
    {
        assert_eq!(MtaBindArgument::decode(&bytes).as_ref(), Ok(&b));
    }
    if let Ok(b) = MtaBindResult::decode(data)
        && let Ok(bytes) = b.encode()
    {
        assert_eq!(MtaBindResult::decode(&bytes).as_ref(), Ok(&b));
    }
});
