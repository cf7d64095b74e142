//! AgentX PDU parser (RFC 2741, mswitchd's SNMP subagent): arbitrary bytes are framed and
//! parsed without panicking, and every PDU that parses encodes to bytes that parse back to the
//! same PDU.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_daemon::agentx::pdu::{Message, Packet, frame_len};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some(len)) = frame_len(rest) {
        let (frame, tail) = rest.split_at(len);
        rest = tail;
        let Ok(packet) = Packet::new_checked(frame) else {
            continue;
        };
        let Ok(message) = Message::parse(&packet) else {
            continue;
        };
        let bytes = message.to_bytes();
        let again = Packet::new_checked(&bytes[..]).expect("our own encoding frames");
        let mut back = Message::parse(&again).expect("our own encoding parses");
        // The encoder may write another byte order; the meaning must be the same.
        back.byte_order = message.byte_order;
        assert_eq!(back, message);
    }
});
