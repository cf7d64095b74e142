//! SMTP reply parser: fed arbitrary bytes in arbitrary pieces it never panics, never claims
//! more bytes than it was given, and every reply it returns is well formed.
//!
//! The first byte chooses how the rest is cut: piece lengths cycle through 1..=(first % 32 + 1).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_smtp::proto::reply::{MAX_REPLY_LINES, ReplyParser};

fuzz_target!(|data: &[u8]| {
    let Some((&seed, mut rest)) = data.split_first() else {
        return;
    };
    let max_piece = usize::from(seed % 32) + 1;
    let mut parser = ReplyParser::new();
    let mut step = 0;
    while !rest.is_empty() {
        let len = (step % max_piece + 1).min(rest.len());
        step += 1;
        let (piece, tail) = rest.split_at(len);
        rest = tail;
        let mut pos = 0;
        while pos < piece.len() {
            match parser.feed(&piece[pos..]) {
                Ok((consumed, reply)) => {
                    assert!(consumed <= piece.len() - pos, "consumed more than given");
                    pos += consumed;
                    match reply {
                        Some(r) => {
                            assert!((200..600).contains(&r.code), "{r:?}");
                            assert!(!r.lines.is_empty() && r.lines.len() <= MAX_REPLY_LINES);
                            if let Some(e) = r.enhanced {
                                assert_eq!(u16::from(e.class), r.code / 100);
                            }
                        }
                        None => assert_eq!(pos, piece.len(), "None before all was consumed"),
                    }
                }
                Err(e) => {
                    // The parser stays failed.
                    assert_eq!(parser.feed(b"250 ok\r\n"), Err(e));
                    return;
                }
            }
        }
    }
});
