//! The BER layer and the upper-layer PDUs built on it (presentation, ACSE, RTSE, ROS,
//! EXTERNAL): arbitrary bytes never panic, and whatever decodes re-encodes to bytes that
//! decode to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_x400::ber::{self, External, Writer};
use mswitch_x400::upper::{acse, presentation, ros, rtse};

fn walk(t: &ber::Tlv<'_>, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    let _ = t.octets();
    let _ = t.integer();
    let _ = t.oid();
    if let Ok(mut r) = t.children() {
        while let Ok(Some(c)) = r.next() {
            walk(&c, budget);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = ber::Reader::new(data);
    let mut budget = 10_000;
    while let Ok(Some(t)) = r.next() {
        walk(&t, &mut budget);
        if let Ok(e) = External::decode(&t) {
            let mut w = Writer::new();
            e.encode(&mut w);
            let again = ber::parse_one(w.as_bytes()).expect("re-encoded EXTERNAL parses");
            assert_eq!(External::decode(&again).as_ref(), Ok(&e));
        }
    }
    if let Ok(p) = presentation::CpPpdu::decode(data) {
        assert_eq!(presentation::CpPpdu::decode(&p.encode()).as_ref(), Ok(&p));
    }
    if let Ok(p) = presentation::CpaPpdu::decode(data) {
        assert_eq!(presentation::CpaPpdu::decode(&p.encode()).as_ref(), Ok(&p));
    }
    if let Ok(p) = presentation::decode_user_data(data) {
        let bytes = presentation::encode_user_data(&p);
        assert_eq!(presentation::decode_user_data(&bytes).as_ref(), Ok(&p));
    }
    if let Ok(p) = acse::AcsePdu::decode(data) {
        assert_eq!(acse::AcsePdu::decode(&p.encode()).as_ref(), Ok(&p));
    }
    if let Ok(p) = rtse::decode_rtse(data) {
        assert_eq!(rtse::decode_rtse(&p.encode()).as_ref(), Ok(&p));
    }
    if let Ok(p) = ros::RosPdu::decode(data) {
        assert_eq!(ros::RosPdu::decode(&p.encode()).as_ref(), Ok(&p));
    }
});
