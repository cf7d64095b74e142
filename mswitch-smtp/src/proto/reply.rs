//! SMTP replies (RFC 5321 §4.2): writing them (server side), parsing them (client side), and
//! reading the EHLO reply's extension list.
//!
//! A reply is one or more lines with the same three-digit code; every line but the last has a
//! `-` after the code, the last a space (or nothing):
//! ```text
//! Reply-line = *( Reply-code "-" [ textstring ] CRLF )
//!              Reply-code [ SP textstring ] CRLF
//! Reply-code = %x32-35 %x30-35 %x30-39
//! ```
//! With ENHANCEDSTATUSCODES (RFC 2034 §3) each line's text starts with the RFC 3463 status
//! code, `class.subject.detail`, and a space.
//!
//! [`ReplyParser`] is a sans-IO decoder: the driver hands it the bytes that arrived, in any
//! split, and gets back how many it consumed and, once the last line of a reply is in, the
//! [`Reply`]. With PIPELINING several replies may arrive in one read; the driver calls
//! [`ReplyParser::feed`] again with the bytes after `consumed` until it has consumed them all:
//! ```text
//! let mut pos = 0;
//! while pos < buf.len() {
//!     let (consumed, reply) = parser.feed(&buf[pos..])?;
//!     pos += consumed;
//!     match reply { Some(r) => handle(r), None => break }   // None: all consumed, need more
//! }
//! ```
//! The parser keeps the partial line itself, so the driver may drop consumed bytes at once.

use mswitch_core::status::{EnhancedCode, Severity, Status};

/// Longest reply line, in octets, including the code and the CRLF (RFC 5321 §4.5.3.1.5).
pub const MAX_REPLY_LINE: usize = 512;

/// Most lines in one reply. RFC 5321 sets no limit; an EHLO reply has a line per extension
/// (about 20 in practice), a HELP reply a few dozen.
pub const MAX_REPLY_LINES: usize = 128;

/// A complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The RFC 3463 enhanced status code, when the first line carries one whose class matches
    /// the code's first digit.
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line, without the code, the separator, the enhanced status code (where
    /// it is the reply's) or the CRLF. Never empty.
    pub lines: Vec<String>,
}

impl Reply {
    /// Whether the reply is positive: 2yz (completion) or 3yz (intermediate, e.g. 354).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// Whether the reply is 3yz: go on with the rest of the command (DATA, AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// Whether the reply is 4yz: the command failed, trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Whether the reply is 5yz: the command failed and must not be repeated as is.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The severity of a negative reply; `None` for a positive one.
    pub fn severity(&self) -> Option<Severity> {
        if self.is_transient() {
            Some(Severity::Transient)
        } else if self.is_permanent() {
            Some(Severity::Permanent)
        } else {
            None
        }
    }

    /// The text of all lines, joined by spaces.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// The reply as a [`Status`], to record against a recipient: the enhanced code if there is
    /// one, else `class.0.0` from the first digit (3yz counts as class 2).
    pub fn status(&self) -> Status {
        let enhanced = match self.enhanced {
            Some(e) => (e.class, e.subject, e.detail),
            None => match self.code / 100 {
                2 | 3 => (2, 0, 0),
                4 => (4, 0, 0),
                _ => (5, 0, 0),
            },
        };
        Status::new(self.code, enhanced, self.text())
    }

    /// Writes the reply with [`write_reply`].
    pub fn write(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        write_reply(out, self.code, self.enhanced, &lines);
    }
}

/// Writes a reply: one line per element of `lines` (one line if `lines` is empty), every line
/// but the last with `code-`, the last with `code ` (RFC 5321 §4.2.1), each starting with the
/// enhanced status code when given (RFC 2034 §3).
///
/// Control characters in the text (CR, LF, HT, NUL, ...) are written as spaces, so no text can
/// end a line early or inject another reply; a line that would exceed [`MAX_REPLY_LINE`] is cut
/// at a character boundary. `code` must be a reply code (RFC 5321 §4.2: first digit 2 to 5,
/// second 0 to 5); an enhanced code's class should match its first digit.
pub fn write_reply(out: &mut Vec<u8>, code: u16, enhanced: Option<EnhancedCode>, lines: &[&str]) {
    debug_assert!(
        (200..600).contains(&code) && (code / 10) % 10 <= 5,
        "reply code {code}"
    );
    let code = format!("{:03}", code % 1000);
    let enhanced = enhanced.map(|e| e.to_string());
    let lines = if lines.is_empty() { &[""][..] } else { lines };
    for (i, text) in lines.iter().enumerate() {
        let start = out.len();
        out.extend_from_slice(code.as_bytes());
        out.push(if i + 1 == lines.len() { b' ' } else { b'-' });
        if let Some(e) = &enhanced {
            out.extend_from_slice(e.as_bytes());
            if !text.is_empty() {
                out.push(b' ');
            }
        }
        let budget = MAX_REPLY_LINE.saturating_sub(2 + (out.len() - start));
        let mut used = 0;
        for c in text.chars() {
            let c = if c.is_control() { ' ' } else { c };
            if used + c.len_utf8() > budget {
                break;
            }
            used += c.len_utf8();
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// What is wrong with a reply. Every variant means the server broke the protocol; the stream
/// is out of step and the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line, with its CRLF, is longer than [`MAX_REPLY_LINE`].
    #[error("reply line longer than {MAX_REPLY_LINE} octets")]
    LineTooLong,
    /// A LF without a CR before it, or a CR not followed by LF.
    #[error("bare CR or LF in a reply")]
    BareLineEnding,
    /// The line does not start with a reply code: three digits, the first 2 to 5, the second
    /// 0 to 5 (RFC 5321 §4.2).
    #[error("line does not start with a valid reply code")]
    BadCode,
    /// The code is followed by something other than a space, a hyphen or the line end.
    #[error("octet {byte:#04x} after the reply code, expected space or hyphen")]
    BadSeparator {
        /// The octet found.
        byte: u8,
    },
    /// A line of a multi-line reply has a different code than the first (RFC 5321 §4.2.1).
    #[error("reply code {found} in a reply that began with {expected}")]
    MismatchedCode {
        /// The code of the first line.
        expected: u16,
        /// The code of this line.
        found: u16,
    },
    /// A reply with more than [`MAX_REPLY_LINES`] lines.
    #[error("reply longer than {MAX_REPLY_LINES} lines")]
    TooManyLines,
    /// A control character other than HT in the text (RFC 5321 §4.2: `textstring`).
    #[error("control character {byte:#04x} in reply text")]
    ControlChar {
        /// The octet found.
        byte: u8,
    },
}

/// Reassembles replies from the bytes the server sends.
#[derive(Debug, Default)]
pub struct ReplyParser {
    /// The line being received, without its LF (with its CR once that has arrived).
    line: Vec<u8>,
    /// The code of the reply in progress, from its first line.
    code: Option<u16>,
    /// The texts of the reply's lines received so far.
    lines: Vec<String>,
    /// The error that stopped the parser; returned again by every later call.
    failed: Option<ReplyError>,
}

impl ReplyParser {
    /// A parser waiting for the first line of a reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes from the server. Returns how many were consumed and, when they complete a
    /// reply, that reply; bytes after its last line are left unconsumed. `Ok((input.len(),
    /// None))` means everything was taken and more is needed.
    ///
    /// After an error the parser stays failed and returns the same error.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Reply>), ReplyError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.feed_inner(input) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Whether part of a reply has been received (a partial line or the first lines of a
    /// multi-line reply): the server has not finished.
    pub fn is_mid_reply(&self) -> bool {
        !self.line.is_empty() || self.code.is_some()
    }

    fn feed_inner(&mut self, input: &[u8]) -> Result<(usize, Option<Reply>), ReplyError> {
        let mut consumed = 0;
        while consumed < input.len() {
            let rest = &input[consumed..];
            let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
                self.append(rest)?;
                return Ok((input.len(), None));
            };
            self.append(&rest[..lf])?;
            consumed += lf + 1;
            let line = std::mem::take(&mut self.line);
            let content = line.strip_suffix(b"\r").ok_or(ReplyError::BareLineEnding)?;
            if let Some(reply) = self.complete_line(content)? {
                return Ok((consumed, Some(reply)));
            }
        }
        Ok((consumed, None))
    }

    /// Appends bytes without LF to the current line, checking that the line, once its LF
    /// arrives, stays within [`MAX_REPLY_LINE`].
    fn append(&mut self, bytes: &[u8]) -> Result<(), ReplyError> {
        if self.line.len() + bytes.len() + 1 > MAX_REPLY_LINE {
            return Err(ReplyError::LineTooLong);
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// Takes one line without its CRLF; returns the reply if it was the last line.
    fn complete_line(&mut self, content: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let code = match content {
            [a @ b'2'..=b'5', b @ b'0'..=b'5', c @ b'0'..=b'9', ..] => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(ReplyError::BadCode),
        };
        let last = match content.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(&byte) => return Err(ReplyError::BadSeparator { byte }),
        };
        let text = content.get(4..).unwrap_or_default();
        if let Some(&byte) = text
            .iter()
            .find(|&&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            return Err(if byte == b'\r' {
                ReplyError::BareLineEnding
            } else {
                ReplyError::ControlChar { byte }
            });
        }
        if let Some(expected) = self.code
            && expected != code
        {
            return Err(ReplyError::MismatchedCode {
                expected,
                found: code,
            });
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        self.code = Some(code);
        self.lines.push(String::from_utf8_lossy(text).into_owned());
        if !last {
            return Ok(None);
        }
        self.code = None;
        let mut lines = std::mem::take(&mut self.lines);
        let enhanced = lines
            .first()
            .and_then(|first| split_enhanced(first, code))
            .map(|(e, _)| e);
        if let Some(e) = enhanced {
            for line in &mut lines {
                if let Some((mine, rest)) = split_enhanced(line, code)
                    && mine == e
                {
                    *line = rest.to_owned();
                }
            }
        }
        Ok(Some(Reply {
            code,
            enhanced,
            lines,
        }))
    }
}

/// Splits `class.subject.detail` and the space after it off the start of a reply text
/// (RFC 3463 §2: class 2, 4 or 5, matching the reply code; subject and detail of one to three
/// digits without leading zeros).
fn split_enhanced(text: &str, code: u16) -> Option<(EnhancedCode, &str)> {
    let (token, rest) = match text.split_once(' ') {
        Some((token, rest)) => (token, rest),
        None => (text, ""),
    };
    let mut parts = token.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let class: u8 = match class {
        "2" | "4" | "5" => class.parse().ok()?,
        _ => return None,
    };
    if u16::from(class) != code / 100 {
        return None;
    }
    let number = |s: &str| -> Option<u16> {
        let ok = (1..=3).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        if ok { s.parse().ok() } else { None }
    };
    Some((
        EnhancedCode::new(class, number(subject)?, number(detail)?),
        rest,
    ))
}

/// One extension from an EHLO reply: its keyword and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The EHLO keyword, upper case.
    pub keyword: String,
    /// The parameters as sent.
    pub params: Vec<String>,
}

/// The service extensions a server announced in its EHLO (or LHLO) reply
/// (RFC 5321 §4.1.1.1). Keywords are compared without regard to case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extensions {
    /// The first word of the first line: the server's name.
    pub domain: String,
    /// The extensions in the order announced.
    pub extensions: Vec<Extension>,
}

/// Reads the extensions from an EHLO or LHLO reply. A reply other than 250 announces nothing.
///
/// Lines whose first word is not an `ehlo-keyword` are skipped, except the old
/// `AUTH=mechanism ...` form some servers still send for old clients, which counts as AUTH.
pub fn parse_ehlo(reply: &Reply) -> Extensions {
    if reply.code != 250 {
        return Extensions::default();
    }
    let mut lines = reply.lines.iter();
    let domain = lines
        .next()
        .and_then(|l| l.split(' ').find(|w| !w.is_empty()))
        .unwrap_or_default()
        .to_owned();
    let mut extensions = Vec::new();
    for line in lines {
        let mut words = line.split(' ').filter(|w| !w.is_empty());
        let Some(first) = words.next() else {
            continue;
        };
        let mut params: Vec<String> = Vec::new();
        let keyword = match first.split_once('=') {
            Some((k, v)) if k.eq_ignore_ascii_case("AUTH") => {
                if !v.is_empty() {
                    params.push(v.to_owned());
                }
                "AUTH"
            }
            Some(_) => continue,
            None => first,
        };
        let keyword_ok = super::is_esmtp_keyword(keyword);
        if !keyword_ok {
            continue;
        }
        params.extend(words.map(str::to_owned));
        extensions.push(Extension {
            keyword: keyword.to_ascii_uppercase(),
            params,
        });
    }
    Extensions { domain, extensions }
}

impl Extensions {
    /// The first extension announced with this keyword.
    pub fn get(&self, keyword: &str) -> Option<&Extension> {
        self.extensions
            .iter()
            .find(|e| e.keyword.eq_ignore_ascii_case(keyword))
    }

    /// Whether the extension was announced.
    pub fn contains(&self, keyword: &str) -> bool {
        self.get(keyword).is_some()
    }

    /// The parameters of the extension, if announced.
    pub fn params(&self, keyword: &str) -> Option<&[String]> {
        self.get(keyword).map(|e| e.params.as_slice())
    }

    /// SIZE (RFC 1870 §4): the fixed maximum message size, if SIZE was announced with one
    /// (a missing or zero value means no fixed maximum).
    pub fn size_limit(&self) -> Option<u64> {
        let n: u64 = self.params("SIZE")?.first()?.parse().ok()?;
        (n > 0).then_some(n)
    }

    /// The SASL mechanisms of every AUTH line (RFC 4954 §3), upper case, each once.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let auth = self
            .extensions
            .iter()
            .filter(|e| e.keyword == "AUTH")
            .flat_map(|e| e.params.iter());
        for mechanism in auth {
            let m = mechanism.to_ascii_uppercase();
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }

    /// PIPELINING (RFC 2920).
    pub fn pipelining(&self) -> bool {
        self.contains("PIPELINING")
    }

    /// 8BITMIME (RFC 6152).
    pub fn eight_bit_mime(&self) -> bool {
        self.contains("8BITMIME")
    }

    /// SMTPUTF8 (RFC 6531).
    pub fn smtputf8(&self) -> bool {
        self.contains("SMTPUTF8")
    }

    /// CHUNKING (RFC 3030).
    pub fn chunking(&self) -> bool {
        self.contains("CHUNKING")
    }

    /// BINARYMIME (RFC 3030).
    pub fn binary_mime(&self) -> bool {
        self.contains("BINARYMIME")
    }

    /// DSN (RFC 3461).
    pub fn dsn(&self) -> bool {
        self.contains("DSN")
    }

    /// STARTTLS (RFC 3207).
    pub fn starttls(&self) -> bool {
        self.contains("STARTTLS")
    }

    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub fn enhanced_status_codes(&self) -> bool {
        self.contains("ENHANCEDSTATUSCODES")
    }

    /// REQUIRETLS (RFC 8689).
    pub fn requiretls(&self) -> bool {
        self.contains("REQUIRETLS")
    }

    /// MT-PRIORITY (RFC 6710 §3): `Some(profile)` when announced, the profile name (such as
    /// `MIXER` or `STANAG4406`) if one was given.
    pub fn mt_priority(&self) -> Option<Option<&str>> {
        self.params("MT-PRIORITY")
            .map(|p| p.first().map(String::as_str))
    }

    /// DELIVERBY (RFC 2852 §3): `Some(min-by-time)` when announced, the minimum number of
    /// seconds the server accepts in BY= if it gave one.
    pub fn deliver_by(&self) -> Option<Option<i64>> {
        self.params("DELIVERBY")
            .map(|p| p.first().and_then(|s| s.parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds everything at once; expects exactly one reply and all bytes consumed.
    fn one(input: &[u8]) -> Result<Reply, ReplyError> {
        let mut p = ReplyParser::new();
        match p.feed(input)? {
            (n, Some(r)) if n == input.len() => Ok(r),
            other => panic!("{input:?}: {other:?}"),
        }
    }

    fn reply(input: &str) -> Reply {
        match one(input.as_bytes()) {
            Ok(r) => r,
            Err(e) => panic!("{input:?}: {e}"),
        }
    }

    fn bad(input: &[u8]) -> ReplyError {
        let mut p = ReplyParser::new();
        match p.feed(input) {
            Ok(r) => panic!("{input:?} gave {r:?}"),
            Err(e) => e,
        }
    }

    fn written(code: u16, enhanced: Option<EnhancedCode>, lines: &[&str]) -> String {
        let mut out = Vec::new();
        write_reply(&mut out, code, enhanced, lines);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn single_line() {
        let r = reply("250 OK\r\n");
        assert_eq!(r.code, 250);
        assert_eq!(r.enhanced, None);
        assert_eq!(r.lines, ["OK"]);
        assert!(r.is_positive() && !r.is_intermediate());
        assert_eq!(r.severity(), None);
        // RFC 5321 §4.2: clients must accept the bare code, with or without the space.
        assert_eq!(reply("250\r\n").lines, [""]);
        assert_eq!(reply("250 \r\n").lines, [""]);
        let r = reply("354 End data with <CR><LF>.<CR><LF>\r\n");
        assert!(r.is_positive() && r.is_intermediate());
        let r = reply("451 4.3.0 Try again\r\n");
        assert!(r.is_transient());
        assert_eq!(r.severity(), Some(Severity::Transient));
        let r = reply("554 5.7.1 Rejected\r\n");
        assert!(r.is_permanent());
        assert_eq!(r.severity(), Some(Severity::Permanent));
        assert_eq!(r.status(), Status::new(554, (5, 7, 1), "Rejected"));
        assert_eq!(
            reply("421 Bye\r\n").status(),
            Status::new(421, (4, 0, 0), "Bye")
        );
    }

    #[test]
    fn multi_line() {
        let r = reply(
            "250-First line\r\n250-Second line\r\n250-234 Text beginning with numbers\r\n250 The last line\r\n",
        );
        assert_eq!(r.code, 250);
        assert_eq!(
            r.lines,
            [
                "First line",
                "Second line",
                "234 Text beginning with numbers",
                "The last line"
            ]
        );
        assert_eq!(
            r.text(),
            "First line Second line 234 Text beginning with numbers The last line"
        );
        assert_eq!(reply("220-\r\n220\r\n").lines, ["", ""]);
    }

    #[test]
    fn pipelined_replies_leave_the_rest_unconsumed() {
        let input = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go\r\n";
        let mut p = ReplyParser::new();
        let mut pos = 0;
        let mut codes = Vec::new();
        while pos < input.len() {
            match p.feed(&input[pos..]) {
                Ok((n, Some(r))) => {
                    pos += n;
                    codes.push(r.code);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(codes, [250, 250, 354]);
        assert!(!p.is_mid_reply());
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let input = b"250-mail.example.com\r\n250-SIZE 1000\r\n250 2.0.0 OK\r\n";
        let expected = match one(input) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        for cut in 0..=input.len() {
            let mut p = ReplyParser::new();
            let (a, b) = input.split_at(cut);
            let first = p.feed(a);
            let got = match first {
                Ok((n, Some(r))) => {
                    assert_eq!(n, a.len(), "cut {cut}");
                    r
                }
                Ok((n, None)) => {
                    assert_eq!(n, a.len(), "cut {cut}");
                    assert_eq!(p.is_mid_reply(), cut > 0, "cut {cut}");
                    match p.feed(b) {
                        Ok((n, Some(r))) if n == b.len() => r,
                        other => panic!("cut {cut}: {other:?}"),
                    }
                }
                Err(e) => panic!("cut {cut}: {e}"),
            };
            assert_eq!(got, expected, "cut {cut}");
        }
        // And one byte at a time.
        let mut p = ReplyParser::new();
        let mut got = None;
        for (i, b) in input.iter().enumerate() {
            match p.feed(std::slice::from_ref(b)) {
                Ok((1, r)) => {
                    assert_eq!(r.is_some(), i + 1 == input.len());
                    got = got.or(r);
                }
                other => panic!("byte {i}: {other:?}"),
            }
        }
        assert_eq!(got, Some(expected));
    }

    #[test]
    fn mismatched_codes_and_bad_separators() {
        assert_eq!(
            bad(b"250-a\r\n251 b\r\n"),
            ReplyError::MismatchedCode {
                expected: 250,
                found: 251
            }
        );
        assert_eq!(bad(b"250_a\r\n"), ReplyError::BadSeparator { byte: b'_' });
        assert_eq!(bad(b"2500 a\r\n"), ReplyError::BadSeparator { byte: b'0' });
        for line in [
            &b"25 a\r\n"[..],
            b"\r\n",
            b"abc d\r\n",
            b"150 x\r\n",
            b"650 x\r\n",
            b"260 x\r\n",
            b"2x0 ok\r\n",
        ] {
            assert_eq!(bad(line), ReplyError::BadCode, "{line:?}");
        }
        assert_eq!(bad(b"250 ok\n"), ReplyError::BareLineEnding);
        assert_eq!(bad(b"250 o\rk\r\n"), ReplyError::BareLineEnding);
        assert_eq!(bad(b"250 o\0k\r\n"), ReplyError::ControlChar { byte: 0 });
        assert!(one(b"250 tab\there\r\n").is_ok());
        // The error sticks.
        let mut p = ReplyParser::new();
        assert!(p.feed(b"999 x\r\n").is_err());
        assert_eq!(p.feed(b"250 ok\r\n"), Err(ReplyError::BadCode));
    }

    #[test]
    fn long_lines() {
        // 512 octets with CRLF: the limit, inclusive.
        let text = "x".repeat(MAX_REPLY_LINE - 6);
        let r = reply(&format!("250 {text}\r\n"));
        assert_eq!(r.lines[0].len(), MAX_REPLY_LINE - 6);
        let text = "x".repeat(MAX_REPLY_LINE - 5);
        assert_eq!(
            bad(format!("250 {text}\r\n").as_bytes()),
            ReplyError::LineTooLong
        );
        // Detected before the line ends, in pieces.
        let mut p = ReplyParser::new();
        assert!(p.feed(b"250 ").is_ok());
        assert_eq!(
            p.feed(&[b'x'; MAX_REPLY_LINE]),
            Err(ReplyError::LineTooLong)
        );
    }

    #[test]
    fn too_many_lines() {
        let mut input = "250-x\r\n".repeat(MAX_REPLY_LINES - 1);
        input.push_str("250 end\r\n");
        assert_eq!(reply(&input).lines.len(), MAX_REPLY_LINES);
        let mut input = "250-x\r\n".repeat(MAX_REPLY_LINES);
        input.push_str("250 end\r\n");
        assert_eq!(bad(input.as_bytes()), ReplyError::TooManyLines);
    }

    #[test]
    fn enhanced_codes() {
        let r = reply("250 2.1.5 Recipient OK\r\n");
        assert_eq!(r.enhanced, Some(EnhancedCode::new(2, 1, 5)));
        assert_eq!(r.lines, ["Recipient OK"]);
        let r =
            reply("550-5.7.1 Refused\r\n550-5.7.1 see https://example.com\r\n550 5.7.1 end\r\n");
        assert_eq!(r.enhanced, Some(EnhancedCode::new(5, 7, 1)));
        assert_eq!(r.lines, ["Refused", "see https://example.com", "end"]);
        // Bare code at the end of the text.
        assert_eq!(
            reply("250 2.0.0\r\n").enhanced,
            Some(EnhancedCode::new(2, 0, 0))
        );
        assert_eq!(reply("250 2.0.0\r\n").lines, [""]);
        assert_eq!(
            reply("452 4.5.3 Too many\r\n").enhanced,
            Some(EnhancedCode::new(4, 5, 3))
        );
        assert_eq!(
            reply("250 2.1.23 x\r\n").enhanced,
            Some(EnhancedCode::new(2, 1, 23))
        );
        // Absent, or not one: class mismatch, leading zeros, too many digits, no space after.
        for (input, text) in [
            ("250 OK\r\n", "OK"),
            ("250 5.1.1 x\r\n", "5.1.1 x"),
            ("550 2.0.0 x\r\n", "2.0.0 x"),
            ("354 3.0.0 x\r\n", "3.0.0 x"),
            ("250 2.01.0 x\r\n", "2.01.0 x"),
            ("250 2.0.1000 x\r\n", "2.0.1000 x"),
            ("250 2.0.0.0 x\r\n", "2.0.0.0 x"),
            ("250 2.0.0x\r\n", "2.0.0x"),
            ("250 2.0 x\r\n", "2.0 x"),
        ] {
            let r = reply(input);
            assert_eq!(r.enhanced, None, "{input:?}");
            assert_eq!(r.lines, [text], "{input:?}");
        }
        // Only the reply's own code is stripped from later lines.
        let r = reply("250-2.0.0 a\r\n250 2.1.0 b\r\n");
        assert_eq!(r.enhanced, Some(EnhancedCode::new(2, 0, 0)));
        assert_eq!(r.lines, ["a", "2.1.0 b"]);
    }

    #[test]
    fn write_single_and_multi_line() {
        assert_eq!(written(250, None, &["OK"]), "250 OK\r\n");
        assert_eq!(written(250, None, &[]), "250 \r\n");
        assert_eq!(
            written(250, Some(EnhancedCode::new(2, 0, 0)), &[]),
            "250 2.0.0\r\n"
        );
        assert_eq!(
            written(
                550,
                Some(EnhancedCode::new(5, 7, 1)),
                &["Refused", "see policy"]
            ),
            "550-5.7.1 Refused\r\n550 5.7.1 see policy\r\n"
        );
        assert_eq!(
            written(250, None, &["mail.example.com", "PIPELINING", "SIZE 1000"]),
            "250-mail.example.com\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
        );
        let r = Reply {
            code: 221,
            enhanced: Some(EnhancedCode::new(2, 0, 0)),
            lines: vec!["Bye".into()],
        };
        let mut out = Vec::new();
        r.write(&mut out);
        assert_eq!(out, b"221 2.0.0 Bye\r\n");
        assert_eq!(one(&out), Ok(r));
    }

    #[test]
    fn write_reply_sanitises_text() {
        let w = written(
            250,
            None,
            &["OK\r\n250 injected", "tab\there\0nul\u{85}nel"],
        );
        assert_eq!(w, "250-OK  250 injected\r\n250 tab here nul nel\r\n");
        assert_eq!(w.matches("\r\n").count(), 2);
        let r = reply(&w);
        assert_eq!(r.lines, ["OK  250 injected", "tab here nul nel"]);
        // Too long: cut at a character boundary, the line stays within the limit.
        let long = "é".repeat(400);
        let w = written(550, Some(EnhancedCode::new(5, 0, 0)), &[&long]);
        assert!(w.len() <= MAX_REPLY_LINE, "{}", w.len());
        assert!(reply(&w).lines[0].chars().all(|c| c == 'é'));
    }

    #[test]
    fn ehlo_from_postfix() {
        let input = "250-mail.example.com\r\n\
                     250-PIPELINING\r\n\
                     250-SIZE 10240000\r\n\
                     250-VRFY\r\n\
                     250-ETRN\r\n\
                     250-STARTTLS\r\n\
                     250-AUTH PLAIN LOGIN\r\n\
                     250-AUTH=PLAIN LOGIN\r\n\
                     250-ENHANCEDSTATUSCODES\r\n\
                     250-8BITMIME\r\n\
                     250-DSN\r\n\
                     250-SMTPUTF8\r\n\
                     250-REQUIRETLS\r\n\
                     250 CHUNKING\r\n";
        let r = reply(input);
        let e = parse_ehlo(&r);
        assert_eq!(e.domain, "mail.example.com");
        assert!(e.pipelining() && e.starttls() && e.enhanced_status_codes());
        assert!(e.eight_bit_mime() && e.dsn() && e.smtputf8() && e.chunking() && e.requiretls());
        assert!(!e.binary_mime());
        assert_eq!(e.mt_priority(), None);
        assert_eq!(e.deliver_by(), None);
        assert_eq!(e.size_limit(), Some(10_240_000));
        assert_eq!(e.auth_mechanisms(), ["PLAIN", "LOGIN"]);
        assert!(e.contains("vrfy") && e.contains("Etrn"));
        assert_eq!(
            e.params("size").map(<[String]>::to_vec),
            Some(vec!["10240000".to_owned()])
        );
        assert!(!e.contains("XCLIENT"));
    }

    #[test]
    fn ehlo_other_extensions() {
        let r = reply(
            "250-mx.example Hello [192.0.2.1]\r\n250-SIZE\r\n250-MT-PRIORITY MIXER\r\n\
             250-DELIVERBY 240\r\n250-binarymime\r\n250-auth cram-md5 plain\r\n250-bad_keyword\r\n\
             250-X=Y\r\n250 DSN\r\n",
        );
        let e = parse_ehlo(&r);
        assert_eq!(e.domain, "mx.example");
        assert!(e.contains("SIZE"));
        assert_eq!(e.size_limit(), None);
        assert_eq!(e.mt_priority(), Some(Some("MIXER")));
        assert_eq!(e.deliver_by(), Some(Some(240)));
        assert!(e.binary_mime());
        assert_eq!(e.auth_mechanisms(), ["CRAM-MD5", "PLAIN"]);
        assert!(!e.contains("bad_keyword") && !e.contains("X"));
        assert_eq!(e.extensions.len(), 6);
        let r = reply("250-x\r\n250-MT-PRIORITY\r\n250 DELIVERBY\r\n");
        let e = parse_ehlo(&r);
        assert_eq!(e.mt_priority(), Some(None));
        assert_eq!(e.deliver_by(), Some(None));
        // A refusal announces nothing.
        assert_eq!(
            parse_ehlo(&reply("502 5.5.1 no EHLO\r\n")),
            Extensions::default()
        );
    }

    proptest! {
        #[test]
        fn written_replies_parse_back(
            (first, second, third) in (2u16..=5, 0u16..=5, 0u16..=9),
            with_enhanced in any::<bool>(),
            subject in 0u16..1000,
            detail in 0u16..1000,
            lines in proptest::collection::vec("[ -~é]{0,40}", 0..5),
        ) {
            let code = first * 100 + second * 10 + third;
            let class = match code / 100 { 2 => 2, 4 => 4, 5 => 5, _ => 2 };
            let enhanced = (with_enhanced && code / 100 != 3).then(|| EnhancedCode::new(class, subject, detail));
            // A text that starts like an enhanced code is read as one when none was written.
            prop_assume!(enhanced.is_some() || lines.first().is_none_or(|l| split_enhanced(l, code).is_none()));
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let mut out = Vec::new();
            write_reply(&mut out, code, enhanced, &refs);
            let r = one(&out);
            prop_assert!(r.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(&out), r);
            let r = r.unwrap_or_else(|_| Reply { code: 0, enhanced: None, lines: vec![] });
            prop_assert_eq!(r.code, code);
            prop_assert_eq!(r.enhanced, enhanced);
            let expected: Vec<String> = if lines.is_empty() { vec![String::new()] } else { lines.clone() };
            prop_assert_eq!(r.lines, expected);
        }

        #[test]
        fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..2000), cut in 0usize..2000) {
            let mut p = ReplyParser::new();
            let cut = cut.min(input.len());
            for piece in [&input[..cut], &input[cut..]] {
                let mut pos = 0;
                while pos < piece.len() {
                    match p.feed(&piece[pos..]) {
                        Ok((n, r)) => {
                            prop_assert!(n <= piece.len() - pos);
                            pos += n;
                            if let Some(r) = r {
                                prop_assert!((200..600).contains(&r.code));
                                prop_assert!(!r.lines.is_empty() && r.lines.len() <= MAX_REPLY_LINES);
                            } else {
                                prop_assert_eq!(pos, piece.len());
                            }
                        }
                        Err(_) => return Ok(()),
                    }
                }
            }
        }
    }
}
