//! Readers for message content: the DATA stream after the server has said 354 (RFC 5321
//! §4.1.1.4, §4.5.2) and one BDAT chunk (RFC 3030 §2).
//!
//! Both readers are sans-IO decoders: the driver hands them whatever bytes arrived, in any
//! split, and they append the message content to a caller-owned `Vec<u8>`. Feeding one byte at
//! a time gives exactly the same content, outcome and byte counts as feeding everything at once.
//!
//! # DATA
//!
//! [`DataReader`] undoes dot-stuffing and finds the end of the mail data. The end is **only**
//! the sequence `<CRLF>.<CRLF>`, the first `<CRLF>` being the end of the last line of content
//! (or the end of the DATA command line itself: `.<CRLF>` as the very first line ends an empty
//! message). RFC 5321 §2.3.8 says no other sequence is a line terminator, and §4.1.1.4 that
//! `<LF>.<LF>` MUST NOT be taken for the end of data. Accepting any variant (`<LF>.<LF>`,
//! `<CR>.<CR>`, `<CRLF>.<LF>`, `<LF>.<CRLF>`, ...) lets a client hide a second transaction inside
//! a message that an upstream relay saw as one ("SMTP smuggling", CVE-2023-51764, -51765,
//! -51766). Here no bare CR, no bare LF and no other octet ever takes part in end-of-data
//! detection: the end is the first `<CRLF>.<CRLF>` in the raw stream, or `.<CRLF>` at its start.
//!
//! Problems found in the content do not stop the reader: it keeps reading, without storing more
//! than [`DataLimits::max_message_size`] octets, until the real end of data, so that the session
//! stays in step with the client, and then reports the problem as a [`DataOutcome`]. The first
//! problem found in the stream is the one reported, see [`DataOutcome`].
//!
//! # BDAT
//!
//! [`BdatReader`] takes exactly the announced number of octets, verbatim, see its documentation.

use std::fmt;

/// The longest text line, in octets, including the `<CRLF>` and not counting a leading dot
/// added for transparency (RFC 5321 §4.5.3.1.6). The default for
/// [`DataLimits::max_line_length`].
pub const MAX_TEXT_LINE: usize = 1000;

/// The default largest message accepted, in octets of content after dot-unstuffing: 50 MiB.
/// The session advertises the limit it applies in the SIZE extension (RFC 1870).
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 50 * 1024 * 1024;

/// The length counted for a line terminator when measuring a line against
/// [`DataLimits::max_line_length`]: a `<CRLF>` is two octets (a bare CR or LF is measured as if it
/// were one too).
const LINE_TERMINATOR_LEN: u64 = 2;

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const DOT: u8 = b'.';

/// What the DATA reader does with a bare CR (a CR not followed by LF) or a bare LF (an LF not
/// preceded by CR) in the content. In neither mode does a bare line ending ever count toward the
/// end of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BareLineEndings {
    /// Keep reading to the real end of data, then report [`DataOutcome::BareLineEnding`] with
    /// the offset of the first one (RFC 5321 §2.3.8). The default.
    #[default]
    Reject,
    /// Store a bare CR or a bare LF as `<CRLF>`, and accept the message. A line that follows a
    /// bare line ending still loses a leading dot (as Postfix does), but a `.` there never ends
    /// the data.
    Normalize,
}

/// The limits a [`DataReader`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// The largest message accepted, in octets of content after dot-unstuffing (and after
    /// normalization of bare line endings). No more than this is ever appended to the output.
    /// Default [`DEFAULT_MAX_MESSAGE_SIZE`] (50 MiB).
    pub max_message_size: u64,
    /// The longest line accepted, in octets including the `<CRLF>` and not counting a leading
    /// dot removed by unstuffing. Default [`MAX_TEXT_LINE`] (1000, RFC 5321 §4.5.3.1.6).
    pub max_line_length: usize,
    /// What to do with bare CR and LF. Default [`BareLineEndings::Reject`].
    pub bare_line_endings: BareLineEndings,
}

impl Default for DataLimits {
    fn default() -> Self {
        DataLimits {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_line_length: MAX_TEXT_LINE,
            bare_line_endings: BareLineEndings::Reject,
        }
    }
}

/// The SMTP reply for a message refused by a reader: sent as the reply to the end of data (or to
/// the BDAT command), after which the transaction is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DataReply {
    /// The basic reply code (RFC 5321 §4.2).
    pub code: u16,
    /// The enhanced status code, as (class, subject, detail) (RFC 3463, RFC 2034).
    pub enhanced: (u8, u16, u16),
    /// The text of the reply.
    pub text: &'static str,
}

impl DataReply {
    /// 552 5.3.4: the message is larger than the server accepts. Text from RFC 1870 §6.2 (with the
    /// spelling fixed); X.3.4 is "message too big for system" (RFC 3463).
    pub const TOO_LARGE: DataReply = DataReply {
        code: 552,
        enhanced: (5, 3, 4),
        text: "Message size exceeds fixed maximum message size",
    };

    /// 550 5.5.2: a bare CR or LF in the content (RFC 5321 §2.3.8). Postfix answers a bare LF
    /// with `550 5.5.2 ... Error: bare <LF> received` (`smtpd_forbid_bare_newline = reject`,
    /// `smtpd_forbid_bare_newline_reject_code = 550`).
    pub const BARE_LINE_ENDING: DataReply = DataReply {
        code: 550,
        enhanced: (5, 5, 2),
        text: "Bare CR or LF received in message content (RFC 5321 2.3.8)",
    };

    /// 500 5.5.2: a line longer than the limit (RFC 5321 §4.5.3.1.10: "500 Line too long.").
    pub const LINE_TOO_LONG: DataReply = DataReply {
        code: 500,
        enhanced: (5, 5, 2),
        text: "Line too long",
    };
}

impl fmt::Display for DataReply {
    /// The reply line without its `<CRLF>`, e.g. `552 5.3.4 Message size exceeds ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (class, subject, detail) = self.enhanced;
        write!(f, "{} {class}.{subject}.{detail} {}", self.code, self.text)
    }
}

/// How the mail data ended.
///
/// When the content has several problems, the one reported is the first found in the stream,
/// that is the one whose detecting octet comes first: a bare LF is found at the LF, a bare CR
/// at the octet after it, a size overrun at the octet that takes the content past the limit
/// (a `<CRLF>` is stored, and counted, when its LF arrives), a long line at its terminator.
/// When one octet shows several problems, [`BareLineEnding`](Self::BareLineEnding) wins over
/// [`TooLarge`](Self::TooLarge), which wins over [`LineTooLong`](Self::LineTooLong). Every one of
/// them is the peer's doing; none loses anything already accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataOutcome {
    /// The message arrived whole and within the limits. The reply (250, or a refusal by policy
    /// or the queue) is the session's decision, not the reader's.
    Complete,
    /// The content is larger than [`DataLimits::max_message_size`] (or, for BDAT, the
    /// message is). Output was cut at the limit.
    TooLarge {
        /// The size of the content in octets after unstuffing (exact for DATA; the total
        /// including this chunk for BDAT): at least this much was offered.
        size_at_least: u64,
    },
    /// The content holds a bare CR or a bare LF, and [`BareLineEndings::Reject`] is in force.
    BareLineEnding {
        /// Offset of the first bare CR or LF among the octets received after the 354 reply,
        /// counting from 0, before unstuffing.
        offset: u64,
    },
    /// A line is longer than [`DataLimits::max_line_length`].
    LineTooLong {
        /// The number of the first such line, counting from 1.
        line: u64,
    },
}

impl DataOutcome {
    /// The reply for a refused message, or `None` for [`Complete`](Self::Complete): whether a
    /// whole message is taken is decided by the session (policy, queue), not here.
    pub fn reply(&self) -> Option<DataReply> {
        match self {
            DataOutcome::Complete => None,
            DataOutcome::TooLarge { .. } => Some(DataReply::TOO_LARGE),
            DataOutcome::BareLineEnding { .. } => Some(DataReply::BARE_LINE_ENDING),
            DataOutcome::LineTooLong { .. } => Some(DataReply::LINE_TOO_LONG),
        }
    }

    /// True for [`Complete`](Self::Complete).
    pub fn is_complete(&self) -> bool {
        matches!(self, DataOutcome::Complete)
    }
}

impl fmt::Display for DataOutcome {
    /// A short description for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataOutcome::Complete => f.write_str("complete"),
            DataOutcome::TooLarge { size_at_least } => {
                write!(f, "message too large ({size_at_least} octets)")
            }
            DataOutcome::BareLineEnding { offset } => {
                write!(f, "bare CR or LF at octet {offset}")
            }
            DataOutcome::LineTooLong { line } => write!(f, "line {line} too long"),
        }
    }
}

/// What [`DataReader::feed`] made of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataProgress {
    /// All of the input was consumed and the end of data has not been seen yet.
    NeedMore,
    /// The end of data was seen.
    Done {
        /// How many octets of this input belong to the message, the final `.<CRLF>` included.
        /// The rest, if any, is the client's next (pipelined) command and was not consumed.
        consumed: usize,
        /// How the message ended.
        outcome: DataOutcome,
    },
}

/// Where the DATA reader is within a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line. `eod` is true after a real `<CRLF>` (or at the start of data):
    /// only there can a `.` begin the end-of-data line.
    LineStart { eod: bool },
    /// A `.` was the first octet of the line; it has not been stored.
    Dot { eod: bool },
    /// `.` then CR at the start of a line; neither stored.
    DotCr { eod: bool },
    /// Inside a line.
    InLine,
    /// A CR inside a line, not yet stored: an LF makes it a `<CRLF>`, anything else a bare CR.
    Cr,
}

/// The first problem found, kept until the end of data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    TooLarge,
    BareLineEnding { offset: u64 },
    LineTooLong { line: u64 },
}

/// Decoder for the mail data that follows a 354 reply: undoes dot-stuffing, finds the end of
/// data, enforces [`DataLimits`]. See the [module documentation](self).
///
/// The driver calls [`feed`](Self::feed) with each piece of input until it returns
/// [`DataProgress::Done`], hands the octets after `consumed` back to the command parser, and
/// replies according to the [`DataOutcome`]. The output keeps `<CRLF>` line endings; a line
/// that started with `.` has lost that `.`, except a line holding a single `.` that does not
/// end the data (it follows a bare line ending), which keeps it.
#[derive(Debug, Clone)]
pub struct DataReader {
    limits: DataLimits,
    state: State,
    /// Raw octets consumed so far.
    seen: u64,
    /// Content octets produced so far (stored or not).
    size: u64,
    /// Lines ended so far.
    lines: u64,
    /// Content octets in the current line, terminator and removed dot not counted.
    line_len: u64,
    problem: Option<Problem>,
    done: Option<DataOutcome>,
}

impl DataReader {
    /// A reader for one message, to be fed the octets that follow the 354 reply.
    pub fn new(limits: DataLimits) -> Self {
        DataReader {
            limits,
            state: State::LineStart { eod: true },
            seen: 0,
            size: 0,
            lines: 0,
            line_len: 0,
            problem: None,
            done: None,
        }
    }

    /// Consumes octets of `input` and appends the message content to `out`.
    ///
    /// Returns [`DataProgress::NeedMore`] when all of `input` was consumed without reaching the
    /// end of data, [`DataProgress::Done`] when the end was reached. Once done, further calls
    /// consume nothing and return `Done` again with `consumed: 0` and the same outcome.
    ///
    /// Never appends more than [`DataLimits::max_message_size`] octets in total to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> DataProgress {
        if let Some(outcome) = self.done {
            return DataProgress::Done {
                consumed: 0,
                outcome,
            };
        }
        let mut i = 0;
        while i < input.len() {
            if self.state == State::InLine {
                // Fast path: a run of ordinary content octets.
                let rest = &input[i..];
                let run = rest
                    .iter()
                    .position(|&b| b == CR || b == LF)
                    .unwrap_or(rest.len());
                if run > 0 {
                    self.content(&rest[..run], out);
                    self.line_len = self.line_len.saturating_add(run as u64);
                    i += run;
                    continue;
                }
            }
            let at = self.seen.saturating_add(i as u64);
            let b = input[i];
            i += 1;
            if self.step(b, at, out) {
                self.seen = self.seen.saturating_add(i as u64);
                let outcome = self.outcome();
                self.done = Some(outcome);
                return DataProgress::Done {
                    consumed: i,
                    outcome,
                };
            }
        }
        self.seen = self.seen.saturating_add(input.len() as u64);
        DataProgress::NeedMore
    }

    /// Raw octets consumed so far, the final `.<CRLF>` included once done (for logs).
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    /// Lines of content ended so far (any line terminator, bare ones included; the final `.`
    /// line is not counted).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Octets of content produced so far, after unstuffing and normalization, whether stored or
    /// (past the size limit) not.
    pub fn message_size(&self) -> u64 {
        self.size
    }

    /// The outcome, once the end of data has been seen.
    pub fn outcome_if_done(&self) -> Option<DataOutcome> {
        self.done
    }

    /// The limits this reader applies.
    pub fn limits(&self) -> &DataLimits {
        &self.limits
    }

    /// Takes one octet at stream offset `at`; true when it ended the data.
    fn step(&mut self, b: u8, at: u64, out: &mut Vec<u8>) -> bool {
        match self.state {
            State::LineStart { eod } => match b {
                DOT => self.state = State::Dot { eod },
                _ => self.in_line(b, at, out),
            },
            State::Dot { eod } => match b {
                CR => self.state = State::DotCr { eod },
                LF => {
                    // A lone "." ended by a bare LF: not the end; the dot stays.
                    self.lone_dot(out);
                    self.bare_line_ending(b"\n", at, out);
                }
                // Unstuffing: the first "." of the line is dropped, `b` is content.
                _ => self.in_line(b, at, out),
            },
            State::DotCr { eod } => match b {
                LF if eod => return true,
                LF => {
                    // ".<CRLF>" after a bare line ending: content, and the next line may end
                    // the data since this one ended with a real <CRLF>.
                    self.lone_dot(out);
                    self.crlf(out);
                }
                _ => {
                    self.lone_dot(out);
                    self.bare_line_ending(b"\r", at.saturating_sub(1), out);
                    self.in_line_or_dot(b, at, out);
                }
            },
            State::InLine => self.in_line(b, at, out),
            State::Cr => match b {
                LF => self.crlf(out),
                _ => {
                    self.bare_line_ending(b"\r", at.saturating_sub(1), out);
                    self.in_line_or_dot(b, at, out);
                }
            },
        }
        false
    }

    /// Takes octet `b` at the start of a line that follows a bare CR: it may be a `.` (which
    /// can never end the data there) or anything else.
    fn in_line_or_dot(&mut self, b: u8, at: u64, out: &mut Vec<u8>) {
        debug_assert_eq!(self.state, State::LineStart { eod: false });
        match b {
            DOT => self.state = State::Dot { eod: false },
            _ => self.in_line(b, at, out),
        }
    }

    /// Takes octet `b` inside a line (or as the first octet of a line that is not a `.`).
    fn in_line(&mut self, b: u8, at: u64, out: &mut Vec<u8>) {
        match b {
            CR => self.state = State::Cr,
            LF => self.bare_line_ending(b"\n", at, out),
            _ => {
                self.state = State::InLine;
                self.content(&[b], out);
                self.line_len = self.line_len.saturating_add(1);
            }
        }
    }

    /// Stores the `.` of a line that holds only a `.` and does not end the data.
    fn lone_dot(&mut self, out: &mut Vec<u8>) {
        self.content(&[DOT], out);
        self.line_len = self.line_len.saturating_add(1);
    }

    /// A real `<CRLF>` ended the line.
    fn crlf(&mut self, out: &mut Vec<u8>) {
        self.content(b"\r\n", out);
        self.end_line();
        self.state = State::LineStart { eod: true };
    }

    /// A bare CR or LF (`raw`) at offset `at` ended the line.
    fn bare_line_ending(&mut self, raw: &[u8], at: u64, out: &mut Vec<u8>) {
        match self.limits.bare_line_endings {
            BareLineEndings::Reject => {
                self.note(Problem::BareLineEnding { offset: at });
                self.content(raw, out);
            }
            BareLineEndings::Normalize => self.content(b"\r\n", out),
        }
        self.end_line();
        self.state = State::LineStart { eod: false };
    }

    fn end_line(&mut self) {
        self.lines = self.lines.saturating_add(1);
        let max = u64::try_from(self.limits.max_line_length).unwrap_or(u64::MAX);
        if self.line_len.saturating_add(LINE_TERMINATOR_LEN) > max {
            self.note(Problem::LineTooLong { line: self.lines });
        }
        self.line_len = 0;
    }

    /// Counts content octets and stores those that fit within the size limit.
    fn content(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let max = self.limits.max_message_size;
        let before = self.size;
        self.size = before.saturating_add(bytes.len() as u64);
        if before < max {
            let room = usize::try_from(max - before).unwrap_or(usize::MAX);
            out.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        if self.size > max {
            self.note(Problem::TooLarge);
        }
    }

    /// Keeps the first problem found.
    fn note(&mut self, problem: Problem) {
        if self.problem.is_none() {
            self.problem = Some(problem);
        }
    }

    fn outcome(&self) -> DataOutcome {
        match self.problem {
            None => DataOutcome::Complete,
            Some(Problem::TooLarge) => DataOutcome::TooLarge {
                size_at_least: self.size,
            },
            Some(Problem::BareLineEnding { offset }) => DataOutcome::BareLineEnding { offset },
            Some(Problem::LineTooLong { line }) => DataOutcome::LineTooLong { line },
        }
    }
}

/// How a BDAT chunk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BdatOutcome {
    /// The chunk arrived whole and the message is within the size limit so far.
    Complete,
    /// The message, with this chunk, is larger than the size limit. Output was cut at the
    /// limit; the chunk was still consumed whole.
    TooLarge {
        /// The size of the message with this chunk, in octets.
        size_at_least: u64,
    },
}

impl BdatOutcome {
    /// The reply for a refused chunk, or `None` for [`Complete`](Self::Complete) (the 250 for a
    /// chunk, or the final reply after `LAST`, is the session's decision).
    pub fn reply(&self) -> Option<DataReply> {
        match self {
            BdatOutcome::Complete => None,
            BdatOutcome::TooLarge { .. } => Some(DataReply::TOO_LARGE),
        }
    }
}

/// What [`BdatReader::feed`] made of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BdatProgress {
    /// All of the input was consumed and the chunk is not complete yet.
    NeedMore,
    /// The chunk is complete.
    Done {
        /// How many octets of this input belong to the chunk. The rest, if any, is the client's
        /// next command and was not consumed.
        consumed: usize,
        /// Whether the message is still within the size limit.
        outcome: BdatOutcome,
    },
}

/// Reader for the octets of one BDAT chunk (RFC 3030 §2): exactly `chunk_size` octets, taken
/// verbatim.
///
/// No dot-unstuffing and no end-of-data detection: the chunk size alone delimits the data, so
/// the content is binary-safe. Bare CR and LF are left alone: under BINARYMIME (RFC 3030 §3)
/// they are the content's business, and under CHUNKING without BINARYMIME this reader still does
/// not transform them (checking 7bit/8bitMIME content is not the transport's job here).
///
/// A chunk that takes the message past the size limit is still consumed whole, so that the
/// session stays in step with the client (RFC 3030 §2 has the server read the announced octets
/// even when it refuses them); only the octets within the limit are stored.
#[derive(Debug, Clone)]
pub struct BdatReader {
    remaining: u64,
    /// Size of the message before this chunk.
    already: u64,
    /// Octets of this chunk consumed so far.
    taken: u64,
    chunk_size: u64,
    max_message_size: u64,
    done: Option<BdatOutcome>,
}

impl BdatReader {
    /// A reader for a chunk of `chunk_size` octets, the message holding `already` octets from
    /// earlier chunks, the message limit being `max_message_size` octets.
    pub fn new(chunk_size: u64, already: u64, max_message_size: u64) -> Self {
        BdatReader {
            remaining: chunk_size,
            already,
            taken: 0,
            chunk_size,
            max_message_size,
            done: None,
        }
    }

    /// Consumes octets of `input` up to the end of the chunk, appending those within the size
    /// limit to `out`.
    ///
    /// A 0-octet chunk is done at the first call, whatever the input. Once done, further calls
    /// consume nothing and return `Done` again with `consumed: 0`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> BdatProgress {
        if let Some(outcome) = self.done {
            return BdatProgress::Done {
                consumed: 0,
                outcome,
            };
        }
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        let chunk = &input[..take];
        let before = self.already.saturating_add(self.taken);
        if before < self.max_message_size {
            let room = usize::try_from(self.max_message_size - before).unwrap_or(usize::MAX);
            out.extend_from_slice(&chunk[..take.min(room)]);
        }
        self.taken = self.taken.saturating_add(take as u64);
        self.remaining -= take as u64;
        if self.remaining > 0 {
            return BdatProgress::NeedMore;
        }
        let total = self.message_size();
        let outcome = if total > self.max_message_size {
            BdatOutcome::TooLarge {
                size_at_least: total,
            }
        } else {
            BdatOutcome::Complete
        };
        self.done = Some(outcome);
        BdatProgress::Done {
            consumed: take,
            outcome,
        }
    }

    /// Octets of the chunk still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The announced size of the chunk.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// The size of the message so far: earlier chunks plus what was consumed of this one. Pass
    /// it as `already` to the reader of the next chunk.
    pub fn message_size(&self) -> u64 {
        self.already.saturating_add(self.taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn reject() -> DataLimits {
        DataLimits::default()
    }

    fn normalize() -> DataLimits {
        DataLimits {
            bare_line_endings: BareLineEndings::Normalize,
            ..DataLimits::default()
        }
    }

    /// Everything the reader reports for one feeding.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Run {
        out: Vec<u8>,
        /// Octets consumed from the concatenated input, and the outcome; `None` if not done.
        done: Option<(usize, DataOutcome)>,
        bytes_seen: u64,
        lines: u64,
        size: u64,
    }

    /// Feeds `pieces` in order, stopping at `Done` (as a driver does).
    fn run_pieces(limits: DataLimits, pieces: &[&[u8]]) -> Run {
        let mut r = DataReader::new(limits);
        let mut out = Vec::new();
        let mut offset = 0;
        let mut done = None;
        for piece in pieces {
            match r.feed(piece, &mut out) {
                DataProgress::NeedMore => offset += piece.len(),
                DataProgress::Done { consumed, outcome } => {
                    assert!(consumed <= piece.len());
                    done = Some((offset + consumed, outcome));
                    break;
                }
            }
        }
        Run {
            out,
            done,
            bytes_seen: r.bytes_seen(),
            lines: r.lines(),
            size: r.message_size(),
        }
    }

    fn run(limits: DataLimits, input: &[u8]) -> Run {
        run_pieces(limits, &[input])
    }

    fn run_bytewise(limits: DataLimits, input: &[u8]) -> Run {
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        run_pieces(limits, &pieces)
    }

    /// Where a correct reader stops: just after the first `<CRLF>.<CRLF>`, or after `.<CRLF>`
    /// at the very start.
    fn reference_end(input: &[u8]) -> Option<usize> {
        if input.starts_with(b".\r\n") {
            return Some(3);
        }
        input
            .windows(5)
            .position(|w| w == b"\r\n.\r\n")
            .map(|p| p + 5)
    }

    /// Whole, byte by byte, and every split in two give the same result.
    fn assert_split_invariant(limits: DataLimits, input: &[u8]) -> Run {
        let whole = run(limits, input);
        assert_eq!(run_bytewise(limits, input), whole, "bytewise: {input:?}");
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run_pieces(limits, &[a, b]), whole, "cut {cut}: {input:?}");
        }
        whole
    }

    #[test]
    fn simple_message() {
        let r = run(reject(), b"Subject: hi\r\n\r\nbody\r\n.\r\n");
        assert_eq!(r.out, b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(r.done, Some((24, DataOutcome::Complete)));
        assert_eq!(r.lines, 3);
        assert_eq!(r.bytes_seen, 24);
        assert_eq!(r.size, 21);
    }

    #[test]
    fn dot_unstuffing() {
        let r = run(reject(), b"..x\r\n..\r\n...\r\n.y\r\na.b\r\n.\r\n");
        assert_eq!(r.out, b".x\r\n.\r\n..\r\ny\r\na.b\r\n");
        assert_eq!(r.done.map(|d| d.1), Some(DataOutcome::Complete));
    }

    #[test]
    fn dot_alone_ends_only_after_crlf() {
        // ". " and ".x" lines, and a dot in mid-line, do not end the data.
        let input = b"a\r\n. \r\nb.\r\n.\r\nafter";
        let r = run(reject(), input);
        assert_eq!(r.out, b"a\r\n \r\nb.\r\n");
        assert_eq!(r.done, Some((input.len() - 5, DataOutcome::Complete)));
    }

    #[test]
    fn empty_message() {
        let r = run(reject(), b".\r\n");
        assert!(r.out.is_empty());
        assert_eq!(r.done, Some((3, DataOutcome::Complete)));
        assert_eq!(r.lines, 0);

        // One empty line.
        let r = run(reject(), b"\r\n.\r\n");
        assert_eq!(r.out, b"\r\n");
        assert_eq!(r.done, Some((5, DataOutcome::Complete)));
        assert_eq!(r.lines, 1);
    }

    #[test]
    fn nothing_fed_needs_more() {
        let mut r = DataReader::new(reject());
        let mut out = Vec::new();
        assert_eq!(r.feed(b"", &mut out), DataProgress::NeedMore);
        assert_eq!(r.feed(b"abc\r\n.", &mut out), DataProgress::NeedMore);
        assert_eq!(r.feed(b"\r", &mut out), DataProgress::NeedMore);
        assert_eq!(r.outcome_if_done(), None);
        assert_eq!(
            r.feed(b"\nNOOP\r\n", &mut out),
            DataProgress::Done {
                consumed: 1,
                outcome: DataOutcome::Complete
            }
        );
        assert_eq!(out, b"abc\r\n");
    }

    #[test]
    fn pipelined_bytes_not_consumed() {
        let input = b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n";
        let r = assert_split_invariant(reject(), input);
        assert_eq!(r.done, Some((input.len() - 6, DataOutcome::Complete)));
        assert_eq!(r.bytes_seen, (input.len() - 6) as u64);
        assert_eq!(r.out, b"Subject: x\r\n\r\nhello\r\n");
    }

    #[test]
    fn feed_after_done_consumes_nothing() {
        let mut r = DataReader::new(reject());
        let mut out = Vec::new();
        let first = r.feed(b"a\n\r\n.\r\nMAIL", &mut out);
        let outcome = DataOutcome::BareLineEnding { offset: 1 };
        assert_eq!(
            first,
            DataProgress::Done {
                consumed: 7,
                outcome
            }
        );
        assert_eq!(
            r.feed(b"MAIL FROM:<>\r\n", &mut out),
            DataProgress::Done {
                consumed: 0,
                outcome
            }
        );
        assert_eq!(r.bytes_seen(), 7);
        assert_eq!(r.outcome_if_done(), Some(outcome));
    }

    #[test]
    fn splits_everywhere() {
        let messages: &[&[u8]] = &[
            b".\r\n",
            b".\r\nQUIT\r\n",
            b"\r\n.\r\n",
            b"a\r\n.\r\n",
            b"..\r\n.\r\nRSET\r\n",
            b"Subject: t\r\n\r\n..leading\r\n.x\r\nend\r\n.\r\nQUIT\r\n",
            b"x\r\r\n.\r\n",
            b"x\n.\nMAIL FROM:<a@b>\r\n.\r\nQUIT\r\n",
            b"x\r.\r\n.\r\n",
            b"x\r\n.\n.\r\n.\r\nQUIT\r\n",
            b"\r\r\r\n\n\n.\r\n",
            b"a\r\n\0.\r\n.\0\r\n.\r\n",
        ];
        for &limits in &[reject(), normalize()] {
            for m in messages {
                let r = assert_split_invariant(limits, m);
                assert_eq!(r.done.map(|d| d.0), reference_end(m), "{m:?}");
            }
        }
        // Also with limits that trip in the middle.
        let tight = DataLimits {
            max_message_size: 7,
            max_line_length: 4,
            ..reject()
        };
        for m in messages {
            let r = assert_split_invariant(tight, m);
            assert_eq!(r.done.map(|d| d.0), reference_end(m), "{m:?}");
            assert!(r.out.len() <= 7);
        }
    }

    /// Each variant is something some server once took for the end of data. None is.
    const SMUGGLING: &[&[u8]] = &[
        b"\n.\n",
        b"\r.\r",
        b"\r\n.\n",
        b"\n.\r\n",
        b"\r.\r\n",
        b"\n\r.\r\n",
        b"\r\n.\r\r\n",
        b"\r\n.\r.\r\n",
        b"\r\n\0.\r\n",
        b"\r\n.\0\r\n",
        b"\r\n\0.\0\r\n",
        b"\r\n\0\r\n.\0\r\n",
    ];

    fn has_bare_line_ending(s: &[u8]) -> bool {
        s.iter().enumerate().any(|(i, &b)| {
            (b == CR && s.get(i + 1) != Some(&LF)) || (b == LF && (i == 0 || s[i - 1] != CR))
        })
    }

    #[test]
    fn smuggling_variants_alone_do_not_end_data() {
        for &limits in &[reject(), normalize()] {
            for v in SMUGGLING {
                let mut input = b"Subject: hi\r\n\r\nbody".to_vec();
                input.extend_from_slice(v);
                // Not done at the variant itself...
                let partial = assert_split_invariant(limits, &input);
                assert_eq!(partial.done, None, "{v:?}");
                // ...only at the real end.
                input.extend_from_slice(b"tail\r\n.\r\n");
                let r = assert_split_invariant(limits, &input);
                let outcome = r.done.map(|d| d.1);
                assert_eq!(r.done.map(|d| d.0), Some(input.len()), "{v:?}");
                if limits.bare_line_endings == BareLineEndings::Reject && has_bare_line_ending(v) {
                    assert!(
                        matches!(outcome, Some(DataOutcome::BareLineEnding { offset }) if offset >= 19),
                        "{v:?}: {outcome:?}"
                    );
                } else {
                    assert_eq!(outcome, Some(DataOutcome::Complete), "{v:?}");
                }
                assert!(r.out.ends_with(b"tail\r\n"));
            }
        }
    }

    #[test]
    fn smuggled_transaction_stays_in_the_message() {
        let smuggled = b"MAIL FROM:<ceo@victim.example>\r\nRCPT TO:<target@victim.example>\r\n\
DATA\r\nFrom: <ceo@victim.example>\r\nSubject: pay now\r\n\r\nsmuggled\r\n.\r\n";
        for &limits in &[reject(), normalize()] {
            for v in SMUGGLING {
                let mut input = b"From: <attacker@evil.example>\r\n\r\nhello".to_vec();
                input.extend_from_slice(v);
                input.extend_from_slice(smuggled);
                let end = input.len();
                input.extend_from_slice(b"QUIT\r\n");
                let r = assert_split_invariant(limits, &input);
                // One message, ending at the only real <CRLF>.<CRLF>, before QUIT.
                assert_eq!(r.done.map(|d| d.0), Some(end), "{v:?}");
                assert_eq!(reference_end(&input), Some(end));
                let out = &r.out;
                assert!(
                    out.windows(10).any(|w| w == b"MAIL FROM:"),
                    "{v:?}: the smuggled commands are content"
                );
                assert!(out.ends_with(b"smuggled\r\n"));
                let outcome = r.done.map(|d| d.1);
                if limits.bare_line_endings == BareLineEndings::Reject && has_bare_line_ending(v) {
                    assert!(
                        matches!(outcome, Some(DataOutcome::BareLineEnding { .. })),
                        "{v:?}: {outcome:?}"
                    );
                } else {
                    assert_eq!(outcome, Some(DataOutcome::Complete), "{v:?}");
                }
                if limits.bare_line_endings == BareLineEndings::Normalize {
                    assert!(!has_bare_line_ending(out), "{v:?}: {out:?}");
                }
            }
        }
    }

    #[test]
    fn nul_around_the_dot_is_content() {
        let input = b"a\r\n\0.\r\n.\0\r\n\0\r\n.\r\n";
        let r = assert_split_invariant(reject(), input);
        assert_eq!(r.done, Some((input.len(), DataOutcome::Complete)));
        // "\0." is not stuffed; ".\0" loses its dot.
        assert_eq!(r.out, b"a\r\n\0.\r\n\0\r\n\0\r\n");
    }

    #[test]
    fn bare_line_ending_offsets() {
        let r = run(reject(), b"ab\ncd\r\n.\r\n");
        assert_eq!(
            r.done,
            Some((10, DataOutcome::BareLineEnding { offset: 2 }))
        );
        let r = run(reject(), b"ab\rcd\r\n.\r\n");
        assert_eq!(
            r.done,
            Some((10, DataOutcome::BareLineEnding { offset: 2 }))
        );
        // A CR just before the CRLF.
        let r = run(reject(), b"ab\r\r\n.\r\n");
        assert_eq!(r.done, Some((8, DataOutcome::BareLineEnding { offset: 2 })));
        // The first of several; a bare LF at the very start.
        let r = run(reject(), b"\nx\r\r\n.\r\n");
        assert_eq!(r.done, Some((8, DataOutcome::BareLineEnding { offset: 0 })));
        // Bare CR after a lone dot at the start.
        let r = run(reject(), b".\rx\r\n.\r\n");
        assert_eq!(r.done, Some((8, DataOutcome::BareLineEnding { offset: 1 })));
        // Offsets are raw: the removed dot counts.
        let r = run(reject(), b"..\n\r\n.\r\n");
        assert_eq!(r.done, Some((8, DataOutcome::BareLineEnding { offset: 2 })));
    }

    #[test]
    fn reject_mode_keeps_content_as_is() {
        let r = run(reject(), b"a\nb\rc\r\n.\r\n");
        assert_eq!(r.out, b"a\nb\rc\r\n");
        assert_eq!(r.lines, 3);
    }

    #[test]
    fn normalize_mode_output() {
        let r = assert_split_invariant(normalize(), b"a\nb\rc\r\n\n\r\r\n.\r\n");
        assert_eq!(r.out, b"a\r\nb\r\nc\r\n\r\n\r\n\r\n");
        assert_eq!(r.done.map(|d| d.1), Some(DataOutcome::Complete));
        assert_eq!(r.lines, 6);

        // A dot line after a bare line ending: unstuffed, never an end; a lone dot stays.
        let input = b"a\n..b\n.\n.\r\n.\r\n";
        let r = assert_split_invariant(normalize(), input);
        assert_eq!(r.out, b"a\r\n.b\r\n.\r\n.\r\n");
        assert_eq!(r.done, Some((input.len(), DataOutcome::Complete)));

        // "\r.\r\n": the bare CR becomes <CRLF>, but the dot line after it does not end the data.
        let input = b"a\r.\r\nb\r\n.\r\n";
        let r = assert_split_invariant(normalize(), input);
        assert_eq!(r.out, b"a\r\n.\r\nb\r\n");
        assert_eq!(r.done, Some((input.len(), DataOutcome::Complete)));
    }

    #[test]
    fn size_limit_bounds_output() {
        let limits = DataLimits {
            max_message_size: 10,
            ..reject()
        };
        // Exactly at the limit is fine.
        let r = run(limits, b"12345678\r\n.\r\n");
        assert_eq!(r.done, Some((13, DataOutcome::Complete)));
        assert_eq!(r.out.len(), 10);
        // One more octet is not; the output stops at the limit, the reading goes on.
        let input = b"123456789\r\nmore\r\n.\r\nQUIT\r\n";
        let r = assert_split_invariant(limits, input);
        assert_eq!(
            r.done,
            Some((input.len() - 6, DataOutcome::TooLarge { size_at_least: 17 }))
        );
        assert_eq!(r.out, b"123456789\r");
    }

    #[test]
    fn size_limit_memory_bounded_on_a_large_stream() {
        let max = 4096u64;
        let limits = DataLimits {
            max_message_size: max,
            ..reject()
        };
        let mut r = DataReader::new(limits);
        let mut out = Vec::new();
        let line = [b'x'; 998];
        let mut total = 0u64;
        for _ in 0..10_000 {
            assert_eq!(r.feed(&line, &mut out), DataProgress::NeedMore);
            assert_eq!(r.feed(b"\r\n", &mut out), DataProgress::NeedMore);
            total += 1000;
            assert!(out.len() as u64 <= max);
        }
        let done = r.feed(b".\r\n", &mut out);
        assert_eq!(
            done,
            DataProgress::Done {
                consumed: 3,
                outcome: DataOutcome::TooLarge {
                    size_at_least: total
                }
            }
        );
        assert_eq!(out.len() as u64, max);
        assert_eq!(r.bytes_seen(), total + 3);
        assert_eq!(r.lines(), 10_000);
    }

    #[test]
    fn line_length_limit() {
        // 998 octets + CRLF = 1000: the longest line allowed.
        let mut ok = vec![b'x'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(
            run(reject(), &ok).done.map(|d| d.1),
            Some(DataOutcome::Complete)
        );

        // The dot added for transparency does not count.
        let mut stuffed = vec![b'.'; 999];
        stuffed.extend_from_slice(b"\r\n.\r\n");
        let r = run(reject(), &stuffed);
        assert_eq!(r.done.map(|d| d.1), Some(DataOutcome::Complete));
        assert_eq!(r.out.len(), 1000);

        // 999 + CRLF, on line 2.
        let mut long = b"short\r\n".to_vec();
        long.extend_from_slice(&[b'y'; 999]);
        long.extend_from_slice(b"\r\nshort\r\n.\r\nQUIT\r\n");
        let r = run(reject(), &long);
        assert_eq!(
            r.done,
            Some((long.len() - 6, DataOutcome::LineTooLong { line: 2 }))
        );
        assert_eq!(r.lines, 3);

        let tiny = DataLimits {
            max_line_length: 5,
            ..reject()
        };
        let r = assert_split_invariant(tiny, b"abc\r\nabcd\r\n.\r\n");
        assert_eq!(
            r.done.map(|d| d.1),
            Some(DataOutcome::LineTooLong { line: 2 })
        );
    }

    #[test]
    fn first_problem_wins() {
        let limits = DataLimits {
            max_message_size: 20,
            max_line_length: 6,
            bare_line_endings: BareLineEndings::Reject,
        };
        // Bare LF first, then a long line, then too large.
        let r = run(limits, b"a\nbbbbbbbbbb\r\ncccccccccccc\r\n.\r\n");
        assert_eq!(
            r.done.map(|d| d.1),
            Some(DataOutcome::BareLineEnding { offset: 1 })
        );
        // Long line first.
        let r = run(limits, b"bbbbbbbbbb\r\na\ncccccccccccc\r\n.\r\n");
        assert_eq!(
            r.done.map(|d| d.1),
            Some(DataOutcome::LineTooLong { line: 1 })
        );
        // Too large in the middle of a long line: found before the line ends.
        let r = run(limits, b"bbbbbbbbbbbbbbbbbbbbbbbbbb\r\n.\r\n");
        assert_eq!(
            r.done.map(|d| d.1),
            Some(DataOutcome::TooLarge { size_at_least: 28 })
        );
        // On one octet, a bare LF wins over the size and the line length.
        let limits = DataLimits {
            max_message_size: 3,
            max_line_length: 4,
            bare_line_endings: BareLineEndings::Reject,
        };
        let r = run(limits, b"abc\n\r\n.\r\n");
        assert_eq!(
            r.done.map(|d| d.1),
            Some(DataOutcome::BareLineEnding { offset: 3 })
        );
        // On one octet (the LF of a CRLF), the size wins over the line length.
        let r = run(limits, b"abc\r\n.\r\n");
        assert_eq!(
            r.done.map(|d| d.1),
            Some(DataOutcome::TooLarge { size_at_least: 5 })
        );
    }

    #[test]
    fn replies() {
        assert_eq!(DataOutcome::Complete.reply(), None);
        assert!(DataOutcome::Complete.is_complete());
        let too_large = DataOutcome::TooLarge { size_at_least: 1 }.reply();
        assert_eq!(too_large, Some(DataReply::TOO_LARGE));
        assert_eq!(
            DataReply::TOO_LARGE.to_string(),
            "552 5.3.4 Message size exceeds fixed maximum message size"
        );
        let bare = DataOutcome::BareLineEnding { offset: 0 }.reply();
        assert!(matches!(
            bare,
            Some(DataReply {
                code: 550,
                enhanced: (5, 5, 2),
                ..
            })
        ));
        let long = DataOutcome::LineTooLong { line: 1 }.reply();
        assert_eq!(
            long.map(|r| r.to_string()),
            Some("500 5.5.2 Line too long".to_string())
        );
        assert_eq!(BdatOutcome::Complete.reply(), None);
        assert_eq!(
            BdatOutcome::TooLarge { size_at_least: 2 }.reply(),
            Some(DataReply::TOO_LARGE)
        );
        assert_eq!(
            DataOutcome::BareLineEnding { offset: 7 }.to_string(),
            "bare CR or LF at octet 7"
        );
    }

    #[test]
    fn defaults() {
        let l = DataLimits::default();
        assert_eq!(l.max_message_size, 50 * 1024 * 1024);
        assert_eq!(l.max_line_length, 1000);
        assert_eq!(l.bare_line_endings, BareLineEndings::Reject);
    }

    fn bdat_pieces(
        chunk: u64,
        already: u64,
        max: u64,
        pieces: &[&[u8]],
    ) -> (Vec<u8>, Option<(usize, BdatOutcome)>) {
        let mut r = BdatReader::new(chunk, already, max);
        let mut out = Vec::new();
        let mut offset = 0;
        for piece in pieces {
            match r.feed(piece, &mut out) {
                BdatProgress::NeedMore => offset += piece.len(),
                BdatProgress::Done { consumed, outcome } => {
                    return (out, Some((offset + consumed, outcome)));
                }
            }
        }
        (out, None)
    }

    #[test]
    fn bdat_exact_chunk_with_trailing_bytes() {
        let input = b"ab\r\n.\r\n\nzBDAT 3 LAST\r\n";
        let whole = bdat_pieces(9, 0, 100, &[input]);
        assert_eq!(whole.0, b"ab\r\n.\r\n\nz");
        assert_eq!(whole.1, Some((9, BdatOutcome::Complete)));
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(bdat_pieces(9, 0, 100, &bytewise), whole);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(bdat_pieces(9, 0, 100, &[a, b]), whole, "cut {cut}");
        }
        // Not enough yet.
        assert_eq!(bdat_pieces(9, 0, 100, &[&input[..8]]).1, None);
    }

    #[test]
    fn bdat_zero_octet_chunk() {
        let mut r = BdatReader::new(0, 5, 100);
        let mut out = Vec::new();
        assert_eq!(
            r.feed(b"", &mut out),
            BdatProgress::Done {
                consumed: 0,
                outcome: BdatOutcome::Complete
            }
        );
        assert_eq!(r.message_size(), 5);
        let mut r = BdatReader::new(0, 0, 100);
        assert_eq!(
            r.feed(b"QUIT\r\n", &mut out),
            BdatProgress::Done {
                consumed: 0,
                outcome: BdatOutcome::Complete
            }
        );
        assert!(out.is_empty());
    }

    #[test]
    fn bdat_too_large_swallows_the_chunk() {
        let mut r = BdatReader::new(5, 8, 10);
        let mut out = Vec::new();
        assert_eq!(r.feed(b"ab", &mut out), BdatProgress::NeedMore);
        assert_eq!(r.remaining(), 3);
        assert_eq!(
            r.feed(b"cdeRSET\r\n", &mut out),
            BdatProgress::Done {
                consumed: 3,
                outcome: BdatOutcome::TooLarge { size_at_least: 13 }
            }
        );
        assert_eq!(out, b"ab");
        assert_eq!(r.message_size(), 13);
        assert_eq!(r.chunk_size(), 5);
        assert_eq!(
            r.feed(b"more", &mut out),
            BdatProgress::Done {
                consumed: 0,
                outcome: BdatOutcome::TooLarge { size_at_least: 13 }
            }
        );
        // Already over the limit: nothing stored.
        let (out, done) = bdat_pieces(3, 20, 10, &[b"xyz"]);
        assert!(out.is_empty());
        assert_eq!(done, Some((3, BdatOutcome::TooLarge { size_at_least: 23 })));
    }

    /// A correct dot-stuffing encoder (RFC 5321 §4.5.2): lines in, DATA stream out.
    fn encode(lines: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for line in lines {
            if line.first() == Some(&DOT) {
                wire.push(DOT);
            }
            wire.extend_from_slice(line);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        wire
    }

    fn cut_at(input: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for p in points {
            pieces.push(input[from..p].to_vec());
            from = p;
        }
        pieces.push(input[from..].to_vec());
        pieces
    }

    fn line_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            // Lines rich in dots, including empty and lone-dot lines.
            proptest::collection::vec(prop_oneof![Just(DOT), Just(b'a'), Just(0u8)], 0..6),
            // Any octets but CR and LF.
            proptest::collection::vec(
                any::<u8>().prop_filter("no CR/LF", |b| *b != CR && *b != LF),
                0..200
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn stuffed_content_round_trips(
            lines in proptest::collection::vec(line_strategy(), 0..30),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
            normalize_mode in any::<bool>(),
        ) {
            let mut content = Vec::new();
            for line in &lines {
                content.extend_from_slice(line);
                content.extend_from_slice(b"\r\n");
            }
            let mut wire = encode(&lines);
            let end = wire.len();
            wire.extend_from_slice(b"QUIT\r\n");
            let limits = if normalize_mode { normalize() } else { reject() };
            let pieces = cut_at(&wire, &cuts);
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            let r = run_pieces(limits, &refs);
            prop_assert_eq!(&r.out, &content);
            prop_assert_eq!(r.done, Some((end, DataOutcome::Complete)));
            prop_assert_eq!(r.lines, lines.len() as u64);
            prop_assert_eq!(r.size, content.len() as u64);
        }

        #[test]
        fn end_is_only_crlf_dot_crlf(
            input in proptest::collection::vec(
                prop_oneof![Just(CR), Just(LF), Just(DOT), Just(b'a'), Just(0u8)], 0..40),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            normalize_mode in any::<bool>(),
            max_size in 0u64..40,
            max_line in 0usize..8,
        ) {
            let limits = DataLimits {
                max_message_size: max_size,
                max_line_length: max_line,
                bare_line_endings: if normalize_mode {
                    BareLineEndings::Normalize
                } else {
                    BareLineEndings::Reject
                },
            };
            let whole = run(limits, &input);
            prop_assert_eq!(whole.done.map(|d| d.0), reference_end(&input));
            prop_assert!(whole.out.len() as u64 <= max_size);
            let pieces = cut_at(&input, &cuts);
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(run_pieces(limits, &refs), whole.clone());
            prop_assert_eq!(run_bytewise(limits, &input), whole);
        }
    }
}
