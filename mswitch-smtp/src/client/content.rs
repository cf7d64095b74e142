//! The message content as the client puts it on the wire: dot-stuffed DATA, or BDAT chunks.
//!
//! The content handed to the client is an RFC 5322 message that should use CRLF line endings.
//! What it may contain is not trusted:
//! - a bare CR (not followed by LF) and a bare LF (not preceded by CR) are each written as CRLF,
//!   so no octet of the content can take part in an end-of-data sequence other than the one
//!   this module writes, and a receiver that reads bare line endings as line ends sees the same
//!   lines as one that does not (SMTP smuggling, CVE-2023-51764 class; RFC 5321 §2.3.8);
//! - a line starting with `.` gets another `.` in front (RFC 5321 §4.5.2);
//! - a message that does not end with a line ending gets one, and the end of data is always
//!   exactly `CRLF . CRLF` (RFC 5321 §4.1.1.4).
//!
//! The same normalisation applies to BDAT chunks (without dot-stuffing or terminator), so a
//! message reaches the server with the same octets whichever command carries it. Content
//! declared `BODY=BINARYMIME` is the exception: it travels verbatim in BDAT chunks
//! (RFC 3030 §3).
//!
//! [`ContentEncoder`] produces the stream incrementally from a shared buffer, so a large
//! message is never copied whole.

use std::sync::Arc;

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const DOT: u8 = b'.';
const CRLF: &[u8] = b"\r\n";
/// The end of mail data after the last line of content (RFC 5321 §4.1.1.4).
const END_OF_DATA: &[u8] = b".\r\n";

/// How the content is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// DATA: line endings normalised, dot-stuffed, ended by `CRLF . CRLF`.
    Data,
    /// BDAT without BINARYMIME: line endings normalised, a final CRLF added if missing.
    Chunked,
    /// BDAT with BINARYMIME: verbatim.
    Binary,
}

/// Streams the content in the chosen [`Encoding`], a block at a time.
#[derive(Debug, Clone)]
pub(crate) struct ContentEncoder {
    content: Arc<[u8]>,
    encoding: Encoding,
    /// Next octet of `content` to encode.
    pos: usize,
    /// The last octets written ended a line (true at the start: the DATA command's CRLF).
    line_start: bool,
    /// Everything, trailer included, has been written.
    finished: bool,
}

impl ContentEncoder {
    pub(crate) fn new(content: Arc<[u8]>, encoding: Encoding) -> Self {
        ContentEncoder {
            content,
            encoding,
            pos: 0,
            line_start: true,
            finished: false,
        }
    }

    /// Appends the next part of the stream to `out`: at least one octet unless finished, and
    /// no more than `max` octets of content (plus at most a stuffed dot and, at the end, the
    /// trailer, which may add up to 5 octets more). Returns whether the stream is finished.
    pub(crate) fn write_block(&mut self, max: usize, out: &mut Vec<u8>) -> bool {
        if self.finished {
            return true;
        }
        let content = Arc::clone(&self.content);
        let content: &[u8] = &content;
        let start = out.len();
        if self.encoding == Encoding::Binary {
            let end = self.pos.saturating_add(max.max(1)).min(content.len());
            out.extend_from_slice(&content[self.pos..end]);
            self.pos = end;
            self.finished = self.pos == content.len();
            return self.finished;
        }
        while self.pos < content.len() && out.len() - start < max.max(1) {
            let rest = &content[self.pos..];
            if self.line_start && self.encoding == Encoding::Data && rest.first() == Some(&DOT) {
                out.push(DOT);
            }
            let run = rest
                .iter()
                .position(|&b| b == CR || b == LF)
                .unwrap_or(rest.len());
            if run > 0 {
                let budget = max.max(1).saturating_sub(out.len() - start).max(1);
                let take = run.min(budget);
                out.extend_from_slice(&rest[..take]);
                self.pos += take;
                self.line_start = false;
                continue;
            }
            // A line ending: CRLF, or a bare CR or LF, each written as CRLF.
            let len = if rest.starts_with(CRLF) { 2 } else { 1 };
            out.extend_from_slice(CRLF);
            self.pos += len;
            self.line_start = true;
        }
        if self.pos == content.len() {
            if !self.line_start {
                out.extend_from_slice(CRLF);
                self.line_start = true;
            }
            if self.encoding == Encoding::Data {
                out.extend_from_slice(END_OF_DATA);
            }
            self.finished = true;
        }
        self.finished
    }
}

/// The message size as SIZE counts it (RFC 1870: octets of the content with CRLF line endings,
/// before dot-stuffing): the length of the [`Encoding::Chunked`] form, or of the content itself
/// for [`Encoding::Binary`].
pub(crate) fn message_size(content: &[u8], binary: bool) -> u64 {
    if binary {
        return content.len() as u64;
    }
    let mut size: u64 = 0;
    let mut i = 0;
    let mut line_start = true;
    while let Some(&b) = content.get(i) {
        match b {
            CR if content.get(i + 1) == Some(&LF) => {
                size += 2;
                i += 2;
                line_start = true;
            }
            CR | LF => {
                size += 2;
                i += 1;
                line_start = true;
            }
            _ => {
                size += 1;
                i += 1;
                line_start = false;
            }
        }
    }
    if !line_start {
        size += 2;
    }
    size
}

/// Whether the content has octets outside US-ASCII (and so needs 8BITMIME, RFC 6152).
pub(crate) fn has_eight_bit(content: &[u8]) -> bool {
    !content.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    use crate::server::data::{BareLineEndings, DataLimits, DataProgress, DataReader};

    fn encode(content: &[u8], encoding: Encoding, block: usize) -> Vec<u8> {
        let mut e = ContentEncoder::new(Arc::from(content), encoding);
        let mut out = Vec::new();
        let mut rounds = 0;
        while !e.write_block(block, &mut out) {
            rounds += 1;
            assert!(rounds <= content.len() + 2, "no progress");
        }
        let before = out.len();
        assert!(e.write_block(block, &mut out), "stays finished");
        assert_eq!(out.len(), before, "nothing more once finished");
        out
    }

    /// What the server stores from a DATA stream (the command's CRLF counts as the line
    /// before the first one), and how many octets it consumed.
    fn unstuff(stream: &[u8]) -> (Vec<u8>, usize) {
        let mut r = DataReader::new(DataLimits {
            max_line_length: usize::MAX,
            bare_line_endings: BareLineEndings::Reject,
            ..DataLimits::default()
        });
        let mut out = Vec::new();
        match r.feed(stream, &mut out) {
            DataProgress::Done { consumed, outcome } => {
                assert!(outcome.reply().is_none(), "{outcome:?}");
                (out, consumed)
            }
            DataProgress::NeedMore => panic!("no end of data in {stream:?}"),
        }
    }

    #[test]
    fn dot_stuffing_and_end_of_data() {
        // RFC 5321 §4.5.2: a line starting with a period gets one more.
        let out = encode(b".a\r\n..b\r\n.\r\nc\r\n", Encoding::Data, 1000);
        assert_eq!(out, b"..a\r\n...b\r\n..\r\nc\r\n.\r\n");
        // A message not ending with CRLF gets one before the terminator.
        assert_eq!(encode(b"abc", Encoding::Data, 1000), b"abc\r\n.\r\n");
        // An empty message is just the terminator (the DATA line's CRLF is the first CRLF).
        assert_eq!(encode(b"", Encoding::Data, 1000), b".\r\n");
        assert_eq!(encode(b".", Encoding::Data, 1000), b"..\r\n.\r\n");
    }

    #[test]
    fn bare_line_endings_become_crlf() {
        let out = encode(b"a\nb\rc\r\r\nd\n.\ne\r.\r", Encoding::Data, 1000);
        assert_eq!(out, b"a\r\nb\r\nc\r\n\r\nd\r\n..\r\ne\r\n..\r\n.\r\n");
        let out = encode(b"a\nb\rc", Encoding::Chunked, 1000);
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
        // Binary content is left alone.
        let out = encode(b"a\nb\rc\0.", Encoding::Binary, 1000);
        assert_eq!(out, b"a\nb\rc\0.");
    }

    #[test]
    fn smuggling_attempts_stay_inside_the_message() {
        let evil = b"x\n.\nMAIL FROM:<a@b.example>\r\n.\r\nRCPT TO:<c@d.example>\r\n\
                     DATA\r\n\r.\r\n\n.\r\nend";
        let out = encode(evil, Encoding::Data, 7);
        let (content, consumed) = unstuff(&out);
        assert_eq!(consumed, out.len(), "the only end of data is the last");
        assert_eq!(
            content,
            b"x\r\n.\r\nMAIL FROM:<a@b.example>\r\n.\r\nRCPT TO:<c@d.example>\r\n\
              DATA\r\n\r\n.\r\n\r\n.\r\nend\r\n"
        );
    }

    #[test]
    fn size_counts_the_normalised_form() {
        for c in [&b""[..], b"a", b"a\r\n", b"a\nb\r", b"\r\r\n\n", b".x\r\n"] {
            let chunked = encode(c, Encoding::Chunked, 1000);
            assert_eq!(message_size(c, false), chunked.len() as u64, "{c:?}");
        }
        assert_eq!(message_size(b"a\nb", true), 3);
        assert!(has_eight_bit("é".as_bytes()));
        assert!(!has_eight_bit(b"plain\r\n"));
    }

    proptest! {
        #[test]
        fn any_content_round_trips_through_the_server_reader(
            content in proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'.'), any::<u8>()], 0..300),
            block in 1usize..40,
        ) {
            let out = encode(&content, Encoding::Data, block);
            prop_assert_eq!(&out, &encode(&content, Encoding::Data, usize::MAX));
            let (got, consumed) = unstuff(&out);
            prop_assert_eq!(consumed, out.len());
            let chunked = encode(&content, Encoding::Chunked, block);
            prop_assert_eq!(&got, &chunked);
            prop_assert_eq!(message_size(&content, false), chunked.len() as u64);
            // No bare CR or LF anywhere in what is written.
            for (i, &b) in out.iter().enumerate() {
                if b == CR {
                    prop_assert_eq!(out.get(i + 1), Some(&LF));
                }
                if b == LF {
                    prop_assert!(i > 0 && out[i - 1] == CR);
                }
            }
            let binary = encode(&content, Encoding::Binary, block);
            prop_assert_eq!(binary, content);
        }
    }
}
