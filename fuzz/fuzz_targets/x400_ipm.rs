//! X.420 information objects (IPM heading and body parts, IPN): arbitrary bytes never panic;
//! whatever decodes and re-encodes decodes again to the same value; the helpers that read
//! heading extensions and general text never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_x400::ipm::{BodyPart, InformationObject};

fuzz_target!(|data: &[u8]| {
    if let Ok(o) = InformationObject::decode(data) {
        if let Ok(bytes) = o.encode() {
            assert_eq!(InformationObject::decode(&bytes).as_ref(), Ok(&o));
        }
        if let InformationObject::Ipm(m) = &o {
            let h = &m.heading;
            let _ = (h.display_subject(), h.languages(), h.auto_submitted());
            let _ = m.body.iter().map(BodyPart::general_text).count();
        }
    }
});
