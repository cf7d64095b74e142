//! DATA and BDAT readers: never panic; any split of the input gives the same result as the
//! whole; the output never exceeds the size limit; the data ends exactly after the first
//! <CRLF>.<CRLF> (or a leading .<CRLF>), never elsewhere; a BDAT chunk consumes exactly its size.
//!
//! Input layout: byte 0 seeds the split into pieces, byte 1 picks the mode and the limits,
//! bytes 2 and 3 are the size and line limits, the rest is the stream after the 354 reply.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mswitch_smtp::server::data::{
    BareLineEndings, BdatProgress, BdatReader, DataLimits, DataOutcome, DataProgress, DataReader,
};

/// A small deterministic generator for piece lengths.
struct Splits(u32);

impl Splits {
    fn next_len(&mut self) -> usize {
        // xorshift32
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        // Mostly short pieces, sometimes empty ones, sometimes long ones.
        match x % 8 {
            0 => 0,
            1 => (x >> 8) as usize % 512,
            _ => 1 + (x >> 8) as usize % 7,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    out: Vec<u8>,
    done: Option<(usize, DataOutcome)>,
    bytes_seen: u64,
    lines: u64,
}

fn run(limits: DataLimits, input: &[u8], seed: Option<u8>) -> Run {
    let mut reader = DataReader::new(limits);
    let mut out = Vec::new();
    let mut splits = seed.map(|s| Splits(0x9E37_79B9 ^ u32::from(s)));
    let mut offset = 0;
    let mut done = None;
    loop {
        let len = match &mut splits {
            Some(s) => s.next_len().min(input.len() - offset),
            None => input.len() - offset,
        };
        let piece = &input[offset..offset + len];
        match reader.feed(piece, &mut out) {
            DataProgress::NeedMore => {}
            DataProgress::Done { consumed, outcome } => {
                assert!(consumed <= piece.len());
                done = Some((offset + consumed, outcome));
                break;
            }
        }
        assert!(out.len() as u64 <= limits.max_message_size);
        offset += len;
        if offset == input.len() {
            break;
        }
    }
    Run {
        out,
        done,
        bytes_seen: reader.bytes_seen(),
        lines: reader.lines(),
    }
}

fn reference_end(input: &[u8]) -> Option<usize> {
    if input.starts_with(b".\r\n") {
        return Some(3);
    }
    input
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|p| p + 5)
}

fn has_bare_line_ending(s: &[u8]) -> bool {
    s.iter().enumerate().any(|(i, &b)| {
        (b == b'\r' && s.get(i + 1) != Some(&b'\n'))
            || (b == b'\n' && (i == 0 || s[i - 1] != b'\r'))
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (seed, flags, size_byte, line_byte) = (data[0], data[1], data[2], data[3]);
    let input = &data[4..];
    let limits = DataLimits {
        max_message_size: if flags & 2 != 0 {
            DataLimits::default().max_message_size
        } else {
            u64::from(size_byte) * 4
        },
        max_line_length: if flags & 4 != 0 {
            DataLimits::default().max_line_length
        } else {
            usize::from(line_byte)
        },
        bare_line_endings: if flags & 1 != 0 {
            BareLineEndings::Normalize
        } else {
            BareLineEndings::Reject
        },
    };

    let whole = run(limits, input, None);
    let pieces = run(limits, input, Some(seed));
    assert_eq!(pieces, whole, "split result differs from whole");
    assert!(whole.out.len() as u64 <= limits.max_message_size);
    assert!(
        (whole.out.len() as u64) <= limits.max_message_size + limits.max_line_length as u64,
        "output past the size limit plus one line"
    );

    let end = whole.done.map(|d| d.0);
    assert_eq!(end, reference_end(input), "end of data in the wrong place");
    if let Some((consumed, outcome)) = whole.done {
        assert!(consumed <= input.len());
        assert_eq!(whole.bytes_seen, consumed as u64);
        let message = &input[..consumed];
        match (limits.bare_line_endings, outcome) {
            (BareLineEndings::Reject, DataOutcome::Complete) => {
                assert!(!has_bare_line_ending(message));
                // Nothing cut and nothing normalized: unstuffing only removes octets.
                assert!(whole.out.len() <= message.len());
            }
            (BareLineEndings::Normalize, DataOutcome::Complete) => {
                assert!(!has_bare_line_ending(&whole.out));
            }
            (BareLineEndings::Normalize, DataOutcome::BareLineEnding { .. }) => {
                panic!("bare line ending reported under Normalize")
            }
            (_, DataOutcome::BareLineEnding { offset }) => {
                let at = usize::try_from(offset).expect("offset within the input");
                assert!(at < consumed);
                assert!(matches!(message[at], b'\r' | b'\n'));
            }
            _ => {}
        }
        assert!(whole.lines <= consumed as u64);
    } else {
        assert_eq!(whole.bytes_seen, input.len() as u64);
    }

    // BDAT: a chunk of `line_byte` octets, the message already holding `size_byte` octets.
    let chunk = u64::from(line_byte);
    let mut bdat = BdatReader::new(chunk, u64::from(size_byte), limits.max_message_size);
    let mut out = Vec::new();
    let mut splits = Splits(0x85EB_CA6B ^ u32::from(seed));
    let mut offset = 0;
    loop {
        let len = splits.next_len().min(input.len() - offset);
        match bdat.feed(&input[offset..offset + len], &mut out) {
            BdatProgress::NeedMore => {
                offset += len;
                if offset == input.len() {
                    assert!(
                        (input.len() as u64) < chunk,
                        "BDAT chunk not done at its size"
                    );
                    break;
                }
            }
            BdatProgress::Done { consumed, .. } => {
                assert!(consumed <= len);
                assert_eq!(
                    (offset + consumed) as u64,
                    chunk,
                    "BDAT consumed the wrong size"
                );
                break;
            }
        }
    }
    assert_eq!(&out[..], &input[..out.len()], "BDAT content not verbatim");
    assert!(out.len() as u64 <= limits.max_message_size.saturating_sub(u64::from(size_byte)));
});
