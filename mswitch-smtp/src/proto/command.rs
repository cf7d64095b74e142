//! SMTP and LMTP commands: parsing a received command line (server side) and writing one
//! (client side).
//!
//! Covered: the commands of RFC 5321 §4.1.1 and their argument grammar (§4.1.2, §4.1.3), LHLO
//! (RFC 2033), STARTTLS (RFC 3207), AUTH (RFC 4954), BDAT (RFC 3030), and the MAIL / RCPT
//! parameters of SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), DSN
//! (RFC 3461, with the RFC 6533 `utf-8` ORCPT forms), AUTH= (RFC 4954 §5), MT-PRIORITY
//! (RFC 6710), REQUIRETLS (RFC 8689) and BY (RFC 2852).
//!
//! [`parse_command`] takes one line without its CRLF and returns a [`Command`] or a
//! [`CommandError`], whose [`CommandError::reply`] is the reply to send. It is a pure function:
//! no session state. What depends on the session (was EHLO given, was SMTPUTF8 or DSN
//! advertised, is a transaction open) is the state machine's business; it asks
//! [`Command::needs_smtputf8`] for the one thing the parser knows about SMTPUTF8.
//!
//! Liberal where widely deployed servers are, strict where it matters:
//! - verbs, `FROM:` / `TO:` and parameter keywords are case-insensitive; spaces between
//!   `FROM:` and `<`, repeated spaces between parameters and trailing spaces are accepted;
//! - a source route (`<@relay,@other:user@example>`) is accepted and dropped (RFC 5321 §4.1.2,
//!   Appendix C); `<Postmaster>` is accepted in any case (§4.1.1.3);
//! - HELO / EHLO / LHLO accept any host name made of letters, digits, `-`, `_` and dots, or an
//!   address literal (§4.1.4: a name that does not match the client is no reason to refuse);
//! - CR, LF, NUL and every other control character (HT included) anywhere in the line is an
//!   error: a bare CR or LF can only come from a client that would also end DATA wrongly;
//! - a path must be in angle brackets;
//! - non-ASCII is accepted only inside a path, a parameter value and the VRFY / EXPN argument,
//!   and must be UTF-8. Unknown, duplicated and malformed parameters are refused; xtext is
//!   decoded strictly (RFC 3461 §4: `+` and two *upper-case* hex digits).
//!
//! One leniency the state machine may want to close: the RFC 6533 `utf-8-addr-unitext` form
//! of ORCPT (raw UTF-8) is accepted whatever the session; RFC 6533 allows it only when
//! SMTPUTF8 was advertised. A server that cares checks `line.is_ascii()` itself.
//!
//! [`write_command`] writes the canonical form of a command with its CRLF; every command
//! [`parse_command`] returns is written so that it parses back to an equal command (the
//! `smtp_command` fuzz target checks this).

use mswitch_core::address::{Address, Domain, Mailbox, MailboxError};
use mswitch_core::envelope::{
    BodyType, DsnRet, MT_PRIORITY_MAX, MT_PRIORITY_MIN, Notify, OriginalRecipient, ReversePath,
};
use mswitch_core::status::Status;

/// Longest command line, in octets, including the command word and the CRLF
/// (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

/// Longest MAIL or RCPT line, in octets, including the CRLF. RFC 5321 §4.5.3.1.4 lets
/// extensions raise [`MAX_COMMAND_LINE`], and the parameters of DSN (ORCPT alone may be 500
/// characters, RFC 3461 §4.2) and AUTH= (RFC 4954 §5) do; 2048 covers a 256-octet path with
/// every parameter at its limit, and is the line limit Postfix applies.
pub const MAX_EXTENDED_COMMAND_LINE: usize = 2048;

/// Longest reverse-path or forward-path, in octets, including the angle brackets and any
/// source route (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH_LEN: usize = 256;

/// Most digits in a SIZE value (RFC 1870 §3: `size-value = 1*20DIGIT`).
pub const MAX_SIZE_DIGITS: usize = 20;

/// Most digits in a BDAT chunk size. RFC 3030 §2 sets no bound (`1*DIGIT`); 20 digits is what a
/// `u64` can hold.
pub const MAX_CHUNK_SIZE_DIGITS: usize = 20;

/// Longest ENVID value, in characters of its xtext form (RFC 3461 §4.4).
pub const MAX_ENVID_LEN: usize = 100;

/// Longest ORCPT value, in characters, address type included (RFC 3461 §4.2). Checked on the
/// value as received and on the form [`write_command`] would give it, so whatever is accepted
/// can be written again.
pub const MAX_ORCPT_LEN: usize = 500;

/// Most digits in a BY time (RFC 2852 §4: `by-time = ["-" / "+"] 1*9digit`).
pub const MAX_BY_TIME_DIGITS: usize = 9;

/// Longest SASL mechanism name (RFC 4422 §3.1: `sasl-mech = 1*20mech-char`).
pub const MAX_SASL_MECH_LEN: usize = 20;

/// Longest HELO / EHLO / LHLO argument, in octets: a domain (RFC 5321 §4.5.3.1.2).
pub const MAX_HELLO_ARG_LEN: usize = 255;

/// A command from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `HELO domain` (RFC 5321 §4.1.1.1).
    Helo {
        /// The client's name or address literal, as given.
        domain: String,
    },
    /// `EHLO domain` (RFC 5321 §4.1.1.1).
    Ehlo {
        /// The client's name or address literal, as given.
        domain: String,
    },
    /// `LHLO domain` (RFC 2033 §4.1).
    Lhlo {
        /// The client's name or address literal, as given.
        domain: String,
    },
    /// `MAIL FROM:<reverse-path> [parameters]` (RFC 5321 §4.1.1.2).
    Mail {
        /// The originator, or the null reverse-path `<>`. Always an Internet mailbox when
        /// parsed: X.400 addresses do not appear in SMTP paths.
        from: ReversePath,
        /// The ESMTP parameters.
        params: MailParams,
    },
    /// `RCPT TO:<forward-path> [parameters]` (RFC 5321 §4.1.1.3).
    Rcpt {
        /// The recipient.
        to: ForwardPath,
        /// The ESMTP parameters.
        params: RcptParams,
    },
    /// `DATA` (RFC 5321 §4.1.1.4).
    Data,
    /// `BDAT size [LAST]` (RFC 3030 §2).
    Bdat {
        /// Octets in the chunk that follows the command line.
        size: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// `RSET` (RFC 5321 §4.1.1.5).
    Rset,
    /// `NOOP [string]` (RFC 5321 §4.1.1.9); the argument is ignored, as the RFC asks.
    Noop,
    /// `QUIT` (RFC 5321 §4.1.1.10).
    Quit,
    /// `VRFY string` (RFC 5321 §4.1.1.6), the argument as given (it may end in ` SMTPUTF8`,
    /// RFC 6531 §3.7.4).
    Vrfy(String),
    /// `EXPN string` (RFC 5321 §4.1.1.7), the argument as given.
    Expn(String),
    /// `HELP [string]` (RFC 5321 §4.1.1.8).
    Help(Option<String>),
    /// `STARTTLS` (RFC 3207 §4).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954 §4).
    Auth {
        /// The SASL mechanism, upper case.
        mechanism: String,
        /// The initial response in base64 as sent (`=` for an empty one); checked for
        /// base64 syntax but not decoded.
        initial_response: Option<String>,
    },
}

/// The argument of RCPT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ForwardPath {
    /// `<Postmaster>` without a domain (RFC 5321 §4.1.1.3, §4.5.1): the postmaster of the
    /// receiving host.
    Postmaster,
    /// A mailbox.
    Mailbox(Mailbox),
}

impl ForwardPath {
    /// The mailbox, unless this is the bare `<Postmaster>`.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ForwardPath::Postmaster => None,
            ForwardPath::Mailbox(m) => Some(m),
        }
    }

    /// Whether the path can only be sent with SMTPUTF8.
    pub fn needs_smtputf8(&self) -> bool {
        self.mailbox().is_some_and(Mailbox::needs_smtputf8)
    }
}

/// The ESMTP parameters of MAIL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// `SIZE=n`: the client's estimate of the message size in octets (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152, RFC 3030).
    pub body: Option<BodyType>,
    /// `SMTPUTF8` (RFC 6531 §3.4).
    pub smtputf8: bool,
    /// `RET=` (RFC 3461 §4.3).
    pub ret: Option<DsnRet>,
    /// `ENVID=`, decoded from xtext (RFC 3461 §4.4).
    pub envid: Option<String>,
    /// `AUTH=` (RFC 4954 §5), decoded from xtext: `Some(None)` is `AUTH=<>`, `Some(Some(m))`
    /// a mailbox (checked to be one).
    pub auth: Option<Option<String>>,
    /// `MT-PRIORITY=` (RFC 6710 §3), within [`MT_PRIORITY_MIN`]..=[`MT_PRIORITY_MAX`].
    pub mt_priority: Option<i8>,
    /// `REQUIRETLS` (RFC 8689 §4).
    pub require_tls: bool,
    /// `BY=` (RFC 2852 §4).
    pub by: Option<DeliverBy>,
}

/// The value of `BY=` (RFC 2852 §4): deliver within a time, or else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliverBy {
    /// Seconds from the time the message was received, -999999999..=999999999. Positive
    /// when the mode is [`DeliverByMode::Return`].
    pub seconds: i64,
    /// What to do when the time passes.
    pub mode: DeliverByMode,
    /// `T`: trace delivery with delay notices.
    pub trace: bool,
}

/// The by-mode of `BY=` (RFC 2852 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliverByMode {
    /// `R`: return the message as undeliverable when the time passes.
    Return,
    /// `N`: send a delay notice when the time passes and keep trying.
    Notify,
}

/// The ESMTP parameters of RCPT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptParams {
    /// `NOTIFY=` (RFC 3461 §4.1).
    pub notify: Option<Notify>,
    /// `ORCPT=` (RFC 3461 §4.2), the address decoded from xtext, or from the RFC 6533 forms
    /// when the address type is `utf-8`.
    pub orcpt: Option<OriginalRecipient>,
}

/// What is wrong with a path, and so with the sender or recipient address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is missing or not of the form `<...>`.
    #[error("{reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The path is longer than [`MAX_PATH_LEN`] octets.
    #[error("path is {len} octets long, the limit is {MAX_PATH_LEN}")]
    TooLong {
        /// Its length, brackets included.
        len: usize,
    },
    /// The source route before the mailbox is not `@domain *(",@domain") ":"`.
    #[error("malformed source route")]
    SourceRoute,
    /// The mailbox is not valid.
    #[error("{0}")]
    Mailbox(#[from] MailboxError),
    /// The mailbox is valid as sent, but its canonical form (minimal quoting, normalized
    /// address literal) would not parse back to it, or would exceed [`MAX_PATH_LEN`]: it could
    /// be accepted but not relayed. (`"a"@[x:1@2]` is one, as long as
    /// `mswitch_core::address::Mailbox::parse` refuses `a@[x:1@2]`.)
    #[error("address has no canonical form")]
    NotCanonical,
}

/// Why a command line was refused. Every variant is the client's fault; the reply to send is
/// [`CommandError::reply`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The line, with its CRLF, is longer than the limit for its command
    /// ([`MAX_COMMAND_LINE`], or [`MAX_EXTENDED_COMMAND_LINE`] for MAIL and RCPT).
    #[error("line too long: {len} octets with CRLF, the limit is {limit}")]
    LineTooLong {
        /// Length of the line with its CRLF.
        len: usize,
        /// The limit that applied.
        limit: usize,
    },
    /// A CR or LF inside the line: only CRLF may end a line (RFC 5321 §2.3.8).
    #[error("bare CR or LF at offset {offset}")]
    BareLineEnding {
        /// Byte offset in the line.
        offset: usize,
    },
    /// A NUL octet in the line.
    #[error("NUL at offset {offset}")]
    Nul {
        /// Byte offset in the line.
        offset: usize,
    },
    /// Another control character (C0, DEL or C1; HT included) in the line.
    #[error("control character at offset {offset}")]
    ControlChar {
        /// Byte offset in the line.
        offset: usize,
    },
    /// The line is not valid UTF-8.
    #[error("invalid UTF-8 at offset {offset}")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// A non-ASCII character outside a path, a parameter value or a VRFY / EXPN argument.
    #[error("non-ASCII character at offset {offset}")]
    EightBit {
        /// Byte offset in the line.
        offset: usize,
    },
    /// The command word is not one this parser knows.
    #[error("command not recognized")]
    UnknownCommand,
    /// A command word that is recognized but not implemented (SEND, TURN, ETRN, ...).
    #[error("{verb} not implemented")]
    NotImplemented {
        /// The command word.
        verb: &'static str,
    },
    /// The arguments of a known command do not follow its syntax.
    #[error("syntax error in {verb} arguments: {reason}")]
    Syntax {
        /// The command word.
        verb: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The MAIL reverse-path is not valid.
    #[error("bad sender address syntax: {0}")]
    BadSender(PathError),
    /// The RCPT forward-path is not valid.
    #[error("bad recipient address syntax: {0}")]
    BadRecipient(PathError),
    /// A MAIL or RCPT parameter this parser does not know, or one that does not belong to
    /// that command.
    #[error("parameter {keyword} not recognized")]
    UnknownParameter {
        /// The keyword as sent (letters, digits and hyphens only).
        keyword: String,
    },
    /// A parameter given twice in one command.
    #[error("parameter {keyword} given twice")]
    DuplicateParameter {
        /// The keyword.
        keyword: &'static str,
    },
    /// A known parameter whose value is missing, not allowed, or not valid.
    #[error("invalid {keyword} parameter: {reason}")]
    InvalidParameter {
        /// The keyword.
        keyword: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The AUTH mechanism is not a SASL mechanism name (RFC 4422 §3.1).
    #[error("invalid SASL mechanism name")]
    InvalidMechanism,
    /// The AUTH initial response is not base64 (or `=`).
    #[error("initial response is not valid base64")]
    InvalidInitialResponse,
}

impl CommandError {
    /// The reply to send: code and enhanced status code, with the error as text.
    ///
    /// | error | reply | source |
    /// |---|---|---|
    /// | line too long | 500 5.5.2 | RFC 5321 §4.2.2, §4.3.2, §4.5.3.1.9; RFC 3463 X.5.2 |
    /// | CR, LF, NUL, control, bad UTF-8, misplaced 8-bit | 501 5.5.2 | RFC 5321 §4.1.2 (last paragraph: invalid character codes, 501); RFC 3463 X.5.2 |
    /// | unknown command | 500 5.5.2 | RFC 5321 §4.2.4; RFC 3463 X.5.2 ("the command is unrecognized") |
    /// | recognized, not implemented | 502 5.5.1 | RFC 5321 §4.2.4; RFC 3463 X.5.1 ("unsupported") |
    /// | argument syntax, bad or duplicate parameter | 501 5.5.4 | RFC 5321 §4.2.2, §4.1.4; RFC 3463 X.5.4 |
    /// | bad sender address | 501 5.1.7 | RFC 5321 §4.1.4; RFC 3463 X.1.7 |
    /// | bad recipient address | 501 5.1.3 | RFC 5321 §4.2.2; RFC 3463 X.1.3 |
    /// | unknown parameter | 555 5.5.4 | RFC 5321 §4.1.1.11; RFC 3463 X.5.4 ("unrecognized features") |
    /// | invalid SASL mechanism | 504 5.5.4 | RFC 4954 §4 |
    /// | initial response not base64 | 501 5.5.2 | RFC 4954 §4 |
    pub fn reply(&self) -> Status {
        Status::from(self)
    }
}

impl From<&CommandError> for Status {
    fn from(e: &CommandError) -> Self {
        use CommandError as E;
        let (code, enhanced) = match e {
            E::LineTooLong { .. } | E::UnknownCommand => (500, (5, 5, 2)),
            E::BareLineEnding { .. }
            | E::Nul { .. }
            | E::ControlChar { .. }
            | E::InvalidUtf8 { .. }
            | E::EightBit { .. }
            | E::InvalidInitialResponse => (501, (5, 5, 2)),
            E::NotImplemented { .. } => (502, (5, 5, 1)),
            E::Syntax { .. } | E::DuplicateParameter { .. } | E::InvalidParameter { .. } => {
                (501, (5, 5, 4))
            }
            E::BadSender(_) => (501, (5, 1, 7)),
            E::BadRecipient(_) => (501, (5, 1, 3)),
            E::UnknownParameter { .. } => (555, (5, 5, 4)),
            E::InvalidMechanism => (504, (5, 5, 4)),
        };
        Status::new(code, enhanced, e.to_string())
    }
}

impl From<CommandError> for Status {
    fn from(e: CommandError) -> Self {
        Status::from(&e)
    }
}

/// Why a string is not valid xtext (RFC 3461 §4) or RFC 6533 `utf-8-addr-xtext`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XtextError {
    /// A character that must be encoded (or, for xtext, any non-ASCII character).
    #[error("character {ch:?} at offset {offset} must be encoded")]
    InvalidChar {
        /// The character.
        ch: char,
        /// Byte offset in the input.
        offset: usize,
    },
    /// A `+` not followed by two upper-case hex digits, or a `\` not starting a valid
    /// `\x{HEXPOINT}`.
    #[error("malformed escape at offset {offset}")]
    BadEscape {
        /// Byte offset of the `+` or `\`.
        offset: usize,
    },
    /// The decoded octets are not UTF-8.
    #[error("decoded value is not UTF-8")]
    NotUtf8,
}

/// Decodes xtext (RFC 3461 §4): `xchar` (`!`..`~` except `+` and `=`) stands for itself and
/// `+XX`, with two upper-case hex digits, for one octet. The octets must form UTF-8.
pub fn xtext_decode(s: &str) -> Result<String, XtextError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                let hi = bytes.get(i + 1).copied().and_then(upper_hex_value);
                let lo = bytes.get(i + 2).copied().and_then(upper_hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                    _ => return Err(XtextError::BadEscape { offset: i }),
                }
                i += 3;
            }
            b'!'..=b'~' if b != b'=' => {
                out.push(b);
                i += 1;
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
                return Err(XtextError::InvalidChar { ch, offset: i });
            }
        }
    }
    String::from_utf8(out).map_err(|_| XtextError::NotUtf8)
}

/// Encodes a string as xtext (RFC 3461 §4): octets outside `!`..`~`, and `+` and `=`, become
/// `+XX`.
pub fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if is_xchar(b) {
            out.push(char::from(b));
        } else {
            push_hex_escape(&mut out, b);
        }
    }
    out
}

/// Decodes RFC 6533 §3 `utf-8-addr-xtext` or `utf-8-addr-unitext`: `QCHAR` (`!`..`~` except
/// `+`, `=` and `\`) and, in unitext, any non-ASCII character stand for themselves;
/// `\x{HEXPOINT}` (2 to 6 upper-case hex digits without leading zeros, at least two) stands for
/// a character that cannot: a control, space, `+`, `=`, `\`, or anything non-ASCII.
pub fn utf8_addr_decode(s: &str) -> Result<String, XtextError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let offset = s.len() - rest.len();
        if c == '\\' {
            let (ch, len) = parse_embedded_unicode(rest).ok_or(XtextError::BadEscape { offset })?;
            out.push(ch);
            rest = &rest[len..];
        } else if is_qchar(c) || !c.is_ascii() {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        } else {
            return Err(XtextError::InvalidChar { ch: c, offset });
        }
    }
    Ok(out)
}

/// Encodes an address in RFC 6533 §3 form: `utf-8-addr-unitext` when `unitext` (non-ASCII
/// characters left as they are; only for a session with SMTPUTF8), else the 7-bit
/// `utf-8-addr-xtext`.
pub fn utf8_addr_encode(s: &str, unitext: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_qchar(c) || (unitext && !c.is_ascii()) {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", u32::from(c)));
        }
    }
    out
}

/// Parses one command line, without its CRLF.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let len = line.len().saturating_add(2);
    if len > MAX_EXTENDED_COMMAND_LINE {
        return Err(CommandError::LineTooLong {
            len,
            limit: MAX_EXTENDED_COMMAND_LINE,
        });
    }
    let verb_bytes = line.split(|&b| b == b' ').next().unwrap_or_default();
    let extended =
        verb_bytes.eq_ignore_ascii_case(b"MAIL") || verb_bytes.eq_ignore_ascii_case(b"RCPT");
    if !extended && len > MAX_COMMAND_LINE {
        return Err(CommandError::LineTooLong {
            len,
            limit: MAX_COMMAND_LINE,
        });
    }
    check_octets(line)?;
    let text = std::str::from_utf8(line).map_err(|e| CommandError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })?;
    if let Some((offset, _)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(CommandError::ControlChar { offset });
    }
    let text = text.trim_end_matches(' ');
    let (verb, args) = match text.split_once(' ') {
        Some((verb, args)) => (verb, args.trim_start_matches(' ')),
        None => (text, ""),
    };
    let ascii_only = || match line.iter().position(|b| !b.is_ascii()) {
        Some(offset) => Err(CommandError::EightBit { offset }),
        None => Ok(()),
    };
    let verb = verb.to_ascii_uppercase();
    match verb.as_str() {
        "HELO" => hello_arg("HELO", args, ascii_only).map(|domain| Command::Helo { domain }),
        "EHLO" => hello_arg("EHLO", args, ascii_only).map(|domain| Command::Ehlo { domain }),
        "LHLO" => hello_arg("LHLO", args, ascii_only).map(|domain| Command::Lhlo { domain }),
        "MAIL" => parse_mail(args),
        "RCPT" => parse_rcpt(args),
        "DATA" => no_args("DATA", args).map(|()| Command::Data),
        "BDAT" => {
            ascii_only()?;
            parse_bdat(args)
        }
        "RSET" => no_args("RSET", args).map(|()| Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args("QUIT", args).map(|()| Command::Quit),
        "VRFY" => text_arg("VRFY", args).map(Command::Vrfy),
        "EXPN" => text_arg("EXPN", args).map(Command::Expn),
        "HELP" => {
            ascii_only()?;
            Ok(Command::Help((!args.is_empty()).then(|| args.to_owned())))
        }
        "STARTTLS" => no_args("STARTTLS", args).map(|()| Command::StartTls),
        "AUTH" => {
            ascii_only()?;
            parse_auth(args)
        }
        "SEND" => Err(CommandError::NotImplemented { verb: "SEND" }),
        "SOML" => Err(CommandError::NotImplemented { verb: "SOML" }),
        "SAML" => Err(CommandError::NotImplemented { verb: "SAML" }),
        "TURN" => Err(CommandError::NotImplemented { verb: "TURN" }),
        "ETRN" => Err(CommandError::NotImplemented { verb: "ETRN" }),
        "ATRN" => Err(CommandError::NotImplemented { verb: "ATRN" }),
        "BURL" => Err(CommandError::NotImplemented { verb: "BURL" }),
        _ => Err(CommandError::UnknownCommand),
    }
}

impl Command {
    /// The command word, upper case.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo { .. } => "HELO",
            Command::Ehlo { .. } => "EHLO",
            Command::Lhlo { .. } => "LHLO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }

    /// Whether the command carries non-ASCII that may only be sent in an SMTPUTF8 transaction
    /// (RFC 6531 §3.2): a UTF-8 mailbox in the path, or a UTF-8 VRFY / EXPN argument. A server
    /// refuses such a command when the transaction did not ask for SMTPUTF8; a client must not
    /// send it to a server that did not advertise it.
    pub fn needs_smtputf8(&self) -> bool {
        match self {
            Command::Mail { from, .. } => from.mailbox().is_some_and(Mailbox::needs_smtputf8),
            Command::Rcpt { to, .. } => to.needs_smtputf8(),
            Command::Vrfy(s) | Command::Expn(s) => !s.is_ascii(),
            _ => false,
        }
    }
}

/// Writes a command in its canonical form, with CRLF: upper-case words, paths in angle
/// brackets without source routes, parameters in a fixed order with xtext-encoded values.
///
/// Control characters in the strings of the command (which [`parse_command`] never returns)
/// are written as `?`, so no command can smuggle a line break. A `ReversePath` holding an
/// X.400 address has no SMTP form: it is written as given and the peer will refuse it; convert
/// it (RFC 2156) first. A NOTIFY with no condition set is not written.
pub fn write_command(command: &Command, out: &mut Vec<u8>) {
    match command {
        Command::Helo { domain } => write_word_arg(out, "HELO", domain),
        Command::Ehlo { domain } => write_word_arg(out, "EHLO", domain),
        Command::Lhlo { domain } => write_word_arg(out, "LHLO", domain),
        Command::Mail { from, params } => {
            out.extend_from_slice(b"MAIL FROM:<");
            if let ReversePath::Address(a) = from {
                push_sanitized(out, &a.to_string());
            }
            out.push(b'>');
            write_mail_params(params, out);
        }
        Command::Rcpt { to, params } => {
            out.extend_from_slice(b"RCPT TO:<");
            match to {
                ForwardPath::Postmaster => out.extend_from_slice(b"Postmaster"),
                ForwardPath::Mailbox(m) => push_sanitized(out, &m.to_string()),
            }
            out.push(b'>');
            write_rcpt_params(params, to.needs_smtputf8(), out);
        }
        Command::Data => out.extend_from_slice(b"DATA"),
        Command::Bdat { size, last } => {
            out.extend_from_slice(format!("BDAT {size}").as_bytes());
            if *last {
                out.extend_from_slice(b" LAST");
            }
        }
        Command::Rset => out.extend_from_slice(b"RSET"),
        Command::Noop => out.extend_from_slice(b"NOOP"),
        Command::Quit => out.extend_from_slice(b"QUIT"),
        Command::Vrfy(s) => write_word_arg(out, "VRFY", s),
        Command::Expn(s) => write_word_arg(out, "EXPN", s),
        Command::Help(None) => out.extend_from_slice(b"HELP"),
        Command::Help(Some(s)) => write_word_arg(out, "HELP", s),
        Command::StartTls => out.extend_from_slice(b"STARTTLS"),
        Command::Auth {
            mechanism,
            initial_response,
        } => {
            write_word_arg(out, "AUTH", mechanism);
            if let Some(r) = initial_response {
                out.push(b' ');
                push_sanitized(out, r);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn write_word_arg(out: &mut Vec<u8>, verb: &str, arg: &str) {
    out.extend_from_slice(verb.as_bytes());
    out.push(b' ');
    push_sanitized(out, arg);
}

fn push_sanitized(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        let c = if c.is_control() { '?' } else { c };
        let mut buf = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

fn write_param(out: &mut Vec<u8>, keyword: &str, value: Option<&str>) {
    out.push(b' ');
    out.extend_from_slice(keyword.as_bytes());
    if let Some(v) = value {
        out.push(b'=');
        push_sanitized(out, v);
    }
}

fn write_mail_params(p: &MailParams, out: &mut Vec<u8>) {
    if let Some(size) = p.size {
        write_param(out, "SIZE", Some(&size.to_string()));
    }
    if let Some(body) = p.body {
        let v = match body {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        };
        write_param(out, "BODY", Some(v));
    }
    if p.smtputf8 {
        write_param(out, "SMTPUTF8", None);
    }
    if let Some(ret) = p.ret {
        let v = match ret {
            DsnRet::Full => "FULL",
            DsnRet::Headers => "HDRS",
        };
        write_param(out, "RET", Some(v));
    }
    if let Some(envid) = &p.envid {
        write_param(out, "ENVID", Some(&xtext_encode(envid)));
    }
    match &p.auth {
        None => {}
        Some(None) => write_param(out, "AUTH", Some("<>")),
        Some(Some(m)) => write_param(out, "AUTH", Some(&xtext_encode(m))),
    }
    if let Some(prio) = p.mt_priority {
        write_param(out, "MT-PRIORITY", Some(&prio.to_string()));
    }
    if p.require_tls {
        write_param(out, "REQUIRETLS", None);
    }
    if let Some(by) = p.by {
        let mode = match by.mode {
            DeliverByMode::Return => "R",
            DeliverByMode::Notify => "N",
        };
        let trace = if by.trace { "T" } else { "" };
        write_param(out, "BY", Some(&format!("{};{mode}{trace}", by.seconds)));
    }
}

fn write_rcpt_params(p: &RcptParams, unitext: bool, out: &mut Vec<u8>) {
    if let Some(n) = p.notify {
        if n.is_never() {
            write_param(out, "NOTIFY", Some("NEVER"));
        } else if n.is_specified() && (n.success() || n.failure() || n.delay()) {
            let flags = [
                (n.success(), "SUCCESS"),
                (n.failure(), "FAILURE"),
                (n.delay(), "DELAY"),
            ];
            let list: Vec<&str> = flags
                .iter()
                .filter_map(|&(on, name)| on.then_some(name))
                .collect();
            write_param(out, "NOTIFY", Some(&list.join(",")));
        }
    }
    if let Some(o) = &p.orcpt {
        write_param(out, "ORCPT", Some(&orcpt_text(o, unitext)));
    }
}

/// The ORCPT value as [`write_command`] writes it.
fn orcpt_text(o: &OriginalRecipient, unitext: bool) -> String {
    let addr_type: String = o
        .addr_type
        .chars()
        .map(|c| if is_addr_type_char(c) { c } else { '?' })
        .collect();
    let address = if o.addr_type.eq_ignore_ascii_case("utf-8") {
        utf8_addr_encode(&o.address, unitext)
    } else {
        xtext_encode(&o.address)
    };
    format!("{addr_type};{address}")
}

fn check_octets(line: &[u8]) -> Result<(), CommandError> {
    for (offset, &b) in line.iter().enumerate() {
        match b {
            b'\r' | b'\n' => return Err(CommandError::BareLineEnding { offset }),
            0 => return Err(CommandError::Nul { offset }),
            0x01..=0x1f | 0x7f => return Err(CommandError::ControlChar { offset }),
            _ => {}
        }
    }
    Ok(())
}

fn no_args(verb: &'static str, args: &str) -> Result<(), CommandError> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Syntax {
            verb,
            reason: "no argument allowed",
        })
    }
}

fn text_arg(verb: &'static str, args: &str) -> Result<String, CommandError> {
    if args.is_empty() {
        Err(CommandError::Syntax {
            verb,
            reason: "argument required",
        })
    } else {
        Ok(args.to_owned())
    }
}

/// The HELO / EHLO / LHLO argument: ASCII, and a host name (letters, digits, `-`, `_`,
/// dot-separated, an optional final dot) or an address literal.
fn hello_arg(
    verb: &'static str,
    arg: &str,
    ascii_only: impl FnOnce() -> Result<(), CommandError>,
) -> Result<String, CommandError> {
    ascii_only()?;
    check_hello_arg(verb, arg)?;
    Ok(arg.to_owned())
}

fn check_hello_arg(verb: &'static str, arg: &str) -> Result<(), CommandError> {
    let syntax = |reason| Err(CommandError::Syntax { verb, reason });
    if arg.is_empty() {
        return syntax("domain or address literal required");
    }
    if arg.contains(' ') {
        return syntax("one domain or address literal expected");
    }
    if arg.len() > MAX_HELLO_ARG_LEN {
        return syntax("domain too long");
    }
    if arg.starts_with('[') {
        let literal_ok = Mailbox::parse(&format!("x@{arg}")).is_ok_and(|m| m.domain().is_none());
        return if literal_ok {
            Ok(())
        } else {
            syntax("invalid address literal")
        };
    }
    let name = arg.strip_suffix('.').unwrap_or(arg);
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if labels_ok {
        Ok(())
    } else {
        syntax("invalid domain")
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Splits `<...>` off the start of `s`; returns the path with its brackets and the rest, which
/// is empty or starts with a space.
fn split_path(s: &str) -> Result<(&str, &str), PathError> {
    let malformed = |reason| PathError::Malformed { reason };
    if s.is_empty() {
        return Err(malformed("missing path"));
    }
    if !s.starts_with('<') {
        return Err(malformed("path must be in angle brackets"));
    }
    let bytes = s.as_bytes();
    let mut pos = 1;
    // A source route ends at the first ':' (no ':' can appear in a domain).
    if bytes.get(pos) == Some(&b'@') {
        match bytes[pos..].iter().position(|&b| b == b':' || b == b'>') {
            Some(i) if bytes[pos + i] == b':' => pos += i + 1,
            _ => return Err(PathError::SourceRoute),
        }
    }
    // A quoted local part may hold '>'.
    if bytes.get(pos) == Some(&b'"') {
        pos += 1;
        loop {
            match bytes.get(pos) {
                Some(b'\\') => pos += 2,
                Some(b'"') => {
                    pos += 1;
                    break;
                }
                Some(_) => pos += 1,
                None => return Err(malformed("unterminated quoted string")),
            }
        }
    }
    let end = match bytes
        .get(pos..)
        .and_then(|b| b.iter().position(|&b| b == b'>'))
    {
        Some(i) => pos + i,
        None => return Err(malformed("missing '>'")),
    };
    let (path, rest) = s.split_at(end + 1);
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong { len: path.len() });
    }
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(malformed("space expected after '>'"));
    }
    Ok((path, rest))
}

/// Drops an `@a,@b:` source route, checking its syntax.
fn strip_source_route(inner: &str) -> Result<&str, PathError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let (adl, mailbox) = inner.split_once(':').ok_or(PathError::SourceRoute)?;
    for at_domain in adl.split(',') {
        let domain = at_domain.strip_prefix('@').ok_or(PathError::SourceRoute)?;
        Domain::parse(domain).map_err(|_| PathError::SourceRoute)?;
    }
    Ok(mailbox)
}

/// Parses the mailbox of a path and checks that its canonical form, the one [`write_command`]
/// sends on, parses back to it and fits in a path: what is accepted can be relayed.
fn path_mailbox(s: &str) -> Result<Mailbox, PathError> {
    let m = Mailbox::parse(s)?;
    let canonical = m.to_string();
    if canonical.len() + 2 > MAX_PATH_LEN {
        return Err(PathError::TooLong {
            len: canonical.len() + 2,
        });
    }
    if canonical != s && Mailbox::parse(&canonical).as_ref() != Ok(&m) {
        return Err(PathError::NotCanonical);
    }
    Ok(m)
}

fn path_inner(path: &str) -> &str {
    path.get(1..path.len().saturating_sub(1))
        .unwrap_or_default()
}

fn parse_mail(args: &str) -> Result<Command, CommandError> {
    let rest = strip_prefix_ci(args, "FROM:").ok_or(CommandError::Syntax {
        verb: "MAIL",
        reason: "expected FROM:<reverse-path>",
    })?;
    let (path, params) =
        split_path(rest.trim_start_matches(' ')).map_err(CommandError::BadSender)?;
    let inner = path_inner(path);
    let from = if inner.is_empty() {
        ReversePath::Null
    } else {
        let mailbox = strip_source_route(inner).map_err(CommandError::BadSender)?;
        let m = path_mailbox(mailbox).map_err(CommandError::BadSender)?;
        ReversePath::Address(Address::Mailbox(m))
    };
    let params = parse_mail_params(params)?;
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(args: &str) -> Result<Command, CommandError> {
    let rest = strip_prefix_ci(args, "TO:").ok_or(CommandError::Syntax {
        verb: "RCPT",
        reason: "expected TO:<forward-path>",
    })?;
    let (path, params) =
        split_path(rest.trim_start_matches(' ')).map_err(CommandError::BadRecipient)?;
    let inner = path_inner(path);
    if inner.is_empty() {
        return Err(CommandError::BadRecipient(PathError::Malformed {
            reason: "null forward-path",
        }));
    }
    let to = if inner.eq_ignore_ascii_case("postmaster") {
        ForwardPath::Postmaster
    } else {
        let mailbox = strip_source_route(inner).map_err(CommandError::BadRecipient)?;
        let m = path_mailbox(mailbox).map_err(CommandError::BadRecipient)?;
        ForwardPath::Mailbox(m)
    };
    let params = parse_rcpt_params(params, to.needs_smtputf8())?;
    Ok(Command::Rcpt { to, params })
}

/// The parameters of MAIL, in the order of the bits of the duplicate check.
const MAIL_KEYWORDS: [&str; 9] = [
    "SIZE",
    "BODY",
    "SMTPUTF8",
    "RET",
    "ENVID",
    "AUTH",
    "MT-PRIORITY",
    "REQUIRETLS",
    "BY",
];

/// The parameters of RCPT.
const RCPT_KEYWORDS: [&str; 2] = ["NOTIFY", "ORCPT"];

/// Splits the parameters after a path into (keyword, value) pairs, checking the esmtp-param
/// syntax (RFC 5321 §4.1.2, extended by RFC 6531 §3.3 with UTF-8 in values), the keyword
/// against `known`, and that none repeats.
fn esmtp_params<'a>(
    verb: &'static str,
    s: &'a str,
    known: &[&'static str],
) -> Result<Vec<(&'static str, Option<&'a str>)>, CommandError> {
    let mut seen = 0u32;
    let mut out = Vec::new();
    for token in s.split(' ').filter(|t| !t.is_empty()) {
        let (keyword, value) = match token.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (token, None),
        };
        let keyword_ok = super::is_esmtp_keyword(keyword);
        if !keyword_ok {
            return Err(CommandError::Syntax {
                verb,
                reason: "malformed parameter keyword",
            });
        }
        if value.is_some_and(|v| v.is_empty() || v.contains('=')) {
            return Err(CommandError::Syntax {
                verb,
                reason: "malformed parameter value",
            });
        }
        let Some(index) = known.iter().position(|k| k.eq_ignore_ascii_case(keyword)) else {
            return Err(CommandError::UnknownParameter {
                keyword: keyword.to_owned(),
            });
        };
        let name = known[index];
        if seen & (1 << index) != 0 {
            return Err(CommandError::DuplicateParameter { keyword: name });
        }
        seen |= 1 << index;
        out.push((name, value));
    }
    Ok(out)
}

fn required<'a>(keyword: &'static str, value: Option<&'a str>) -> Result<&'a str, CommandError> {
    value.ok_or(CommandError::InvalidParameter {
        keyword,
        reason: "a value is required",
    })
}

fn forbidden(keyword: &'static str, value: Option<&str>) -> Result<(), CommandError> {
    match value {
        None => Ok(()),
        Some(_) => Err(CommandError::InvalidParameter {
            keyword,
            reason: "takes no value",
        }),
    }
}

fn invalid(keyword: &'static str, reason: &'static str) -> CommandError {
    CommandError::InvalidParameter { keyword, reason }
}

/// A decimal number of 1 to `max_digits` digits that fits a `u64`.
fn parse_digits(s: &str, max_digits: usize) -> Option<u64> {
    let all_digits =
        !s.is_empty() && s.len() <= max_digits && s.bytes().all(|b| b.is_ascii_digit());
    if all_digits { s.parse().ok() } else { None }
}

/// Decodes an xtext value and refuses control characters in the result, which would otherwise
/// reach DSN header fields (RFC 3464 Original-Envelope-Id, Original-Recipient).
fn decoded_value(keyword: &'static str, value: &str) -> Result<String, CommandError> {
    let decoded = xtext_decode(value).map_err(|_| invalid(keyword, "invalid xtext"))?;
    if decoded.chars().any(char::is_control) {
        return Err(invalid(keyword, "control character in decoded value"));
    }
    Ok(decoded)
}

fn parse_mail_params(s: &str) -> Result<MailParams, CommandError> {
    let mut p = MailParams::default();
    for (keyword, value) in esmtp_params("MAIL", s, &MAIL_KEYWORDS)? {
        match keyword {
            "SIZE" => {
                let v = required(keyword, value)?;
                let size = parse_digits(v, MAX_SIZE_DIGITS)
                    .ok_or(invalid(keyword, "not a number below 2^64"))?;
                p.size = Some(size);
            }
            "BODY" => {
                let v = required(keyword, value)?;
                let body = if v.eq_ignore_ascii_case("7BIT") {
                    BodyType::SevenBit
                } else if v.eq_ignore_ascii_case("8BITMIME") {
                    BodyType::EightBitMime
                } else if v.eq_ignore_ascii_case("BINARYMIME") {
                    BodyType::BinaryMime
                } else {
                    return Err(invalid(keyword, "not 7BIT, 8BITMIME or BINARYMIME"));
                };
                p.body = Some(body);
            }
            "SMTPUTF8" => {
                forbidden(keyword, value)?;
                p.smtputf8 = true;
            }
            "RET" => {
                let v = required(keyword, value)?;
                let ret = if v.eq_ignore_ascii_case("FULL") {
                    DsnRet::Full
                } else if v.eq_ignore_ascii_case("HDRS") {
                    DsnRet::Headers
                } else {
                    return Err(invalid(keyword, "not FULL or HDRS"));
                };
                p.ret = Some(ret);
            }
            "ENVID" => {
                let v = required(keyword, value)?;
                if v.len() > MAX_ENVID_LEN {
                    return Err(invalid(keyword, "longer than 100 characters"));
                }
                p.envid = Some(decoded_value(keyword, v)?);
            }
            "AUTH" => {
                let v = required(keyword, value)?;
                let decoded = decoded_value(keyword, v)?;
                p.auth = Some(if decoded == "<>" {
                    None
                } else {
                    Mailbox::parse(&decoded).map_err(|_| invalid(keyword, "not a mailbox"))?;
                    Some(decoded)
                });
            }
            "MT-PRIORITY" => {
                let v = required(keyword, value)?;
                p.mt_priority = Some(parse_mt_priority(v)?);
            }
            "REQUIRETLS" => {
                forbidden(keyword, value)?;
                p.require_tls = true;
            }
            _ => {
                let v = required(keyword, value)?;
                p.by = Some(parse_by(v)?);
            }
        }
    }
    Ok(p)
}

/// `priority-value`: an optional sign and one digit (RFC 6710 §3), within the range.
fn parse_mt_priority(v: &str) -> Result<i8, CommandError> {
    let (negative, digits) = match v.as_bytes().first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    let range = invalid("MT-PRIORITY", "not an integer from -9 to 9");
    let [d] = digits.as_bytes() else {
        return Err(range);
    };
    if !d.is_ascii_digit() {
        return Err(range);
    }
    let magnitude = (d - b'0') as i8;
    let value = if negative { -magnitude } else { magnitude };
    if (MT_PRIORITY_MIN..=MT_PRIORITY_MAX).contains(&value) {
        Ok(value)
    } else {
        Err(range)
    }
}

/// `by-value = by-time ";" by-mode [by-trace]` (RFC 2852 §4), letters in either case.
fn parse_by(v: &str) -> Result<DeliverBy, CommandError> {
    let (time, modes) = v
        .split_once(';')
        .ok_or(invalid("BY", "expected time;mode"))?;
    let (negative, digits) = match time.as_bytes().first() {
        Some(b'-') => (true, &time[1..]),
        Some(b'+') => (false, &time[1..]),
        _ => (false, time),
    };
    let magnitude = parse_digits(digits, MAX_BY_TIME_DIGITS)
        .ok_or(invalid("BY", "time is not 1 to 9 digits"))?;
    // At most 9 digits: fits an i64 with room.
    let magnitude = i64::try_from(magnitude).map_err(|_| invalid("BY", "time out of range"))?;
    let seconds = if negative { -magnitude } else { magnitude };
    let mut chars = modes.chars();
    let mode = match chars.next() {
        Some('R' | 'r') => DeliverByMode::Return,
        Some('N' | 'n') => DeliverByMode::Notify,
        _ => return Err(invalid("BY", "mode is not R or N")),
    };
    let trace = match chars.next() {
        None => false,
        Some('T' | 't') => true,
        Some(_) => return Err(invalid("BY", "trace flag is not T")),
    };
    if chars.next().is_some() {
        return Err(invalid("BY", "text after the trace flag"));
    }
    if mode == DeliverByMode::Return && seconds <= 0 {
        return Err(invalid("BY", "mode R needs a positive time"));
    }
    Ok(DeliverBy {
        seconds,
        mode,
        trace,
    })
}

fn parse_rcpt_params(s: &str, unitext: bool) -> Result<RcptParams, CommandError> {
    let mut p = RcptParams::default();
    for (keyword, value) in esmtp_params("RCPT", s, &RCPT_KEYWORDS)? {
        let v = required(keyword, value)?;
        if keyword == "NOTIFY" {
            p.notify = Some(parse_notify(v)?);
        } else {
            p.orcpt = Some(parse_orcpt(v, unitext)?);
        }
    }
    Ok(p)
}

/// `"NEVER" / 1#("SUCCESS" / "FAILURE" / "DELAY")` (RFC 3461 §4.1), each condition once.
fn parse_notify(v: &str) -> Result<Notify, CommandError> {
    if v.eq_ignore_ascii_case("NEVER") {
        return Ok(Notify::never());
    }
    let (mut success, mut failure, mut delay) = (false, false, false);
    for item in v.split(',') {
        let flag = if item.eq_ignore_ascii_case("SUCCESS") {
            &mut success
        } else if item.eq_ignore_ascii_case("FAILURE") {
            &mut failure
        } else if item.eq_ignore_ascii_case("DELAY") {
            &mut delay
        } else if item.eq_ignore_ascii_case("NEVER") {
            return Err(invalid("NOTIFY", "NEVER cannot be combined"));
        } else {
            return Err(invalid("NOTIFY", "not SUCCESS, FAILURE, DELAY or NEVER"));
        };
        if *flag {
            return Err(invalid("NOTIFY", "condition repeated"));
        }
        *flag = true;
    }
    Ok(Notify::on(success, failure, delay))
}

/// `addr-type ";" xtext` (RFC 3461 §4.2), or `"utf-8;" utf-8-addr-xtext / utf-8-addr-unitext`
/// (RFC 6533 §3).
fn parse_orcpt(v: &str, unitext: bool) -> Result<OriginalRecipient, CommandError> {
    const KEY: &str = "ORCPT";
    if v.chars().count() > MAX_ORCPT_LEN {
        return Err(invalid(KEY, "longer than 500 characters"));
    }
    let (addr_type, raw) = v
        .split_once(';')
        .ok_or(invalid(KEY, "missing ';' after the address type"))?;
    if addr_type.is_empty() || !addr_type.chars().all(is_addr_type_char) {
        return Err(invalid(KEY, "invalid address type"));
    }
    if raw.is_empty() {
        return Err(invalid(KEY, "empty address"));
    }
    let address = if addr_type.eq_ignore_ascii_case("utf-8") {
        let a = utf8_addr_decode(raw).map_err(|_| invalid(KEY, "invalid utf-8-addr-xtext"))?;
        if a.chars().any(char::is_control) {
            return Err(invalid(KEY, "control character in decoded value"));
        }
        a
    } else {
        decoded_value(KEY, raw)?
    };
    let o = OriginalRecipient {
        addr_type: addr_type.to_owned(),
        address,
    };
    if orcpt_text(&o, unitext).chars().count() > MAX_ORCPT_LEN {
        return Err(invalid(KEY, "longer than 500 characters once encoded"));
    }
    Ok(o)
}

/// `addr-type` is an RFC 822 atom; `=` cannot appear in an esmtp-value.
fn is_addr_type_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/?^_`{|}~".contains(c)
}

fn parse_bdat(args: &str) -> Result<Command, CommandError> {
    let syntax = |reason| CommandError::Syntax {
        verb: "BDAT",
        reason,
    };
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let size = words
        .next()
        .ok_or(syntax("chunk size required"))
        .and_then(|w| {
            parse_digits(w, MAX_CHUNK_SIZE_DIGITS).ok_or(syntax("chunk size is not a number"))
        })?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(syntax("expected LAST")),
    };
    if words.next().is_some() {
        return Err(syntax("text after LAST"));
    }
    Ok(Command::Bdat { size, last })
}

fn parse_auth(args: &str) -> Result<Command, CommandError> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let mechanism = words.next().ok_or(CommandError::Syntax {
        verb: "AUTH",
        reason: "mechanism required",
    })?;
    let mech_ok = mechanism.len() <= MAX_SASL_MECH_LEN
        && mechanism
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !mech_ok {
        return Err(CommandError::InvalidMechanism);
    }
    let initial_response = match words.next() {
        None => None,
        Some(r) if is_base64(r) || r == "=" => Some(r.to_owned()),
        Some(_) => return Err(CommandError::InvalidInitialResponse),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax {
            verb: "AUTH",
            reason: "text after the initial response",
        });
    }
    Ok(Command::Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial_response,
    })
}

/// Strict base64 (RFC 4954 §4: nothing outside the alphabet, padding only at the end).
fn is_base64(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    let pad = s.len() - body.len();
    !s.is_empty()
        && s.len().is_multiple_of(4)
        && pad <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn is_xchar(b: u8) -> bool {
    matches!(b, b'!'..=b'~') && b != b'+' && b != b'='
}

/// RFC 6533 `QCHAR`: `!`..`~` except `+`, `=` and `\`.
fn is_qchar(c: char) -> bool {
    matches!(c, '!'..='~') && c != '+' && c != '=' && c != '\\'
}

fn upper_hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_hex_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('+');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// Parses `\x{HEXPOINT}` at the start of `s`: returns the character and the length consumed.
/// The character must be one that needs the escape, written in its shortest form of at least
/// two digits.
fn parse_embedded_unicode(s: &str) -> Option<(char, usize)> {
    let digits_and_rest = s.strip_prefix("\\x{")?;
    let close = digits_and_rest.find('}')?;
    let digits = &digits_and_rest[..close];
    if !(2..=6).contains(&digits.len()) || !digits.bytes().all(|b| upper_hex_value(b).is_some()) {
        return None;
    }
    let value = u32::from_str_radix(digits, 16).ok()?;
    let shortest = if value <= 0xff {
        digits.len() == 2
    } else {
        !digits.starts_with('0')
    };
    let ch = char::from_u32(value)?;
    let needs_escape = !is_qchar(ch) && value != 0;
    (shortest && needs_escape).then_some((ch, 3 + close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mswitch_core::address::DomainPart;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Command, CommandError> {
        parse_command(s.as_bytes())
    }

    fn ok(s: &str) -> Command {
        match parse(s) {
            Ok(c) => c,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> CommandError {
        match parse(s) {
            Ok(c) => panic!("{s:?} parsed as {c:?}"),
            Err(e) => e,
        }
    }

    fn written(c: &Command) -> String {
        let mut out = Vec::new();
        write_command(c, &mut out);
        match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => panic!("written command is not UTF-8: {e}"),
        }
    }

    fn mailbox(s: &str) -> Mailbox {
        match Mailbox::parse(s) {
            Ok(m) => m,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn mail(s: &str) -> (ReversePath, MailParams) {
        match ok(s) {
            Command::Mail { from, params } => (from, params),
            c => panic!("{s:?} parsed as {c:?}"),
        }
    }

    fn rcpt(s: &str) -> (ForwardPath, RcptParams) {
        match ok(s) {
            Command::Rcpt { to, params } => (to, params),
            c => panic!("{s:?} parsed as {c:?}"),
        }
    }

    fn from_mailbox(s: &str) -> ReversePath {
        ReversePath::Address(Address::Mailbox(mailbox(s)))
    }

    /// Parses, writes, parses again; the two must be equal.
    fn round_trip(c: &Command) {
        let w = written(c);
        let line = match w.strip_suffix("\r\n") {
            Some(l) => l,
            None => panic!("{w:?} does not end with CRLF"),
        };
        assert_eq!(parse(line).as_ref(), Ok(c), "written as {w:?}");
    }

    #[test]
    fn every_verb() {
        let domain = |s: &str| s.to_owned();
        let cases: Vec<(&str, Command)> = vec![
            (
                "HELO client.example",
                Command::Helo {
                    domain: domain("client.example"),
                },
            ),
            (
                "EHLO client.example",
                Command::Ehlo {
                    domain: domain("client.example"),
                },
            ),
            (
                "LHLO client.example",
                Command::Lhlo {
                    domain: domain("client.example"),
                },
            ),
            (
                "MAIL FROM:<a@example.com>",
                Command::Mail {
                    from: from_mailbox("a@example.com"),
                    params: MailParams::default(),
                },
            ),
            (
                "RCPT TO:<b@example.com>",
                Command::Rcpt {
                    to: ForwardPath::Mailbox(mailbox("b@example.com")),
                    params: RcptParams::default(),
                },
            ),
            ("DATA", Command::Data),
            (
                "BDAT 1000",
                Command::Bdat {
                    size: 1000,
                    last: false,
                },
            ),
            (
                "BDAT 0 LAST",
                Command::Bdat {
                    size: 0,
                    last: true,
                },
            ),
            ("RSET", Command::Rset),
            ("NOOP", Command::Noop),
            ("NOOP anything at all", Command::Noop),
            ("QUIT", Command::Quit),
            ("VRFY Smith", Command::Vrfy("Smith".into())),
            ("VRFY John  Smith", Command::Vrfy("John  Smith".into())),
            ("EXPN list-name", Command::Expn("list-name".into())),
            ("HELP", Command::Help(None)),
            ("HELP MAIL", Command::Help(Some("MAIL".into()))),
            ("STARTTLS", Command::StartTls),
            (
                "AUTH PLAIN",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial_response: None,
                },
            ),
            (
                "AUTH PLAIN dGVzdAB0ZXN0ADEyMzQ=",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial_response: Some("dGVzdAB0ZXN0ADEyMzQ=".into()),
                },
            ),
            (
                "AUTH EXTERNAL =",
                Command::Auth {
                    mechanism: "EXTERNAL".into(),
                    initial_response: Some("=".into()),
                },
            ),
            (
                "auth cram-md5",
                Command::Auth {
                    mechanism: "CRAM-MD5".into(),
                    initial_response: None,
                },
            ),
        ];
        for (line, expected) in cases {
            let c = ok(line);
            assert_eq!(c, expected, "{line:?}");
            assert_eq!(
                line.split(' ')
                    .next()
                    .map(str::to_ascii_uppercase)
                    .as_deref(),
                Some(c.verb())
            );
            round_trip(&c);
        }
    }

    #[test]
    fn verbs_and_keywords_are_case_insensitive_and_spacing_liberal() {
        assert_eq!(ok("quit"), Command::Quit);
        assert_eq!(ok("QUIT   "), Command::Quit);
        assert_eq!(ok("Data"), Command::Data);
        let (from, params) = mail("mail from: <a@example.com>  size=10   body=8bitmime ");
        assert_eq!(from, from_mailbox("a@example.com"));
        assert_eq!(params.size, Some(10));
        assert_eq!(params.body, Some(BodyType::EightBitMime));
        let (to, _) = rcpt("rcpt to:  <b@example.com>");
        assert_eq!(to, ForwardPath::Mailbox(mailbox("b@example.com")));
        assert_eq!(
            ok("bdat 5 last"),
            Command::Bdat {
                size: 5,
                last: true
            }
        );
    }

    #[test]
    fn written_forms_are_canonical() {
        let c = ok("mail from: <a@example.com>  body=8bitmime size=10 smtputf8");
        assert_eq!(
            written(&c),
            "MAIL FROM:<a@example.com> SIZE=10 BODY=8BITMIME SMTPUTF8\r\n"
        );
        let c = ok("RCPT TO:<@relay.example,@other.example:b@example.com> notify=delay,success");
        assert_eq!(
            written(&c),
            "RCPT TO:<b@example.com> NOTIFY=SUCCESS,DELAY\r\n"
        );
        assert_eq!(
            written(&ok("rcpt to:<POSTMASTER>")),
            "RCPT TO:<Postmaster>\r\n"
        );
        assert_eq!(written(&ok("MAIL FROM:<>")), "MAIL FROM:<>\r\n");
        assert_eq!(written(&ok("bdat 7 last")), "BDAT 7 LAST\r\n");
    }

    #[test]
    fn hello_arguments() {
        for arg in [
            "example.com",
            "EXAMPLE.COM.",
            "localhost",
            "DESKTOP-AB_12",
            "[192.0.2.1]",
            "[IPv6:2001:db8::1]",
            "mail-1.sub.example",
        ] {
            assert_eq!(
                ok(&format!("EHLO {arg}")),
                Command::Ehlo { domain: arg.into() }
            );
        }
        for line in [
            "EHLO",
            "EHLO ",
            "HELO a b",
            "EHLO !!!",
            "EHLO a..b",
            "EHLO .a",
            "EHLO [192.0.2.300]",
            "EHLO [not a literal",
            "EHLO a/b",
        ] {
            let e = err(line);
            assert!(matches!(e, CommandError::Syntax { .. }), "{line:?}: {e:?}");
            assert_eq!(e.reply().code, 501, "{line:?}");
        }
        let long = format!("EHLO {}", "a".repeat(256));
        assert!(matches!(err(&long), CommandError::Syntax { .. }));
        assert!(matches!(
            err("EHLO bücher.example"),
            CommandError::EightBit { offset: 6 }
        ));
    }

    #[test]
    fn commands_without_arguments_refuse_them() {
        for line in ["DATA x", "RSET now", "QUIT please", "STARTTLS x"] {
            assert!(matches!(err(line), CommandError::Syntax { .. }), "{line:?}");
        }
        for line in [
            "VRFY",
            "EXPN ",
            "BDAT",
            "BDAT x",
            "BDAT 5 FIRST",
            "BDAT 5 LAST x",
            "AUTH",
        ] {
            assert!(matches!(err(line), CommandError::Syntax { .. }), "{line:?}");
        }
        let too_big = format!("BDAT 1{}", "0".repeat(20));
        assert!(matches!(err(&too_big), CommandError::Syntax { .. }));
        assert_eq!(
            ok("BDAT 18446744073709551615"),
            Command::Bdat {
                size: u64::MAX,
                last: false
            }
        );
        assert!(matches!(
            err("BDAT 18446744073709551616"),
            CommandError::Syntax { .. }
        ));
    }

    #[test]
    fn unknown_and_unimplemented_commands() {
        assert_eq!(err("FOO"), CommandError::UnknownCommand);
        assert_eq!(err("XCLIENT ADDR=1.2.3.4"), CommandError::UnknownCommand);
        assert_eq!(err(""), CommandError::UnknownCommand);
        assert_eq!(err(" QUIT"), CommandError::UnknownCommand);
        assert_eq!(err("MAILFROM:<a@b>"), CommandError::UnknownCommand);
        assert_eq!(err("QÜIT"), CommandError::UnknownCommand);
        assert_eq!(
            err("ETRN example.com"),
            CommandError::NotImplemented { verb: "ETRN" }
        );
        assert_eq!(err("turn"), CommandError::NotImplemented { verb: "TURN" });
    }

    #[test]
    fn auth_syntax() {
        assert_eq!(err("AUTH PL@IN"), CommandError::InvalidMechanism);
        assert_eq!(
            err("AUTH ABCDEFGHIJKLMNOPQRSTU"),
            CommandError::InvalidMechanism
        );
        assert_eq!(ok("AUTH ABCDEFGHIJKLMNOPQRST").verb(), "AUTH");
        for bad in [
            "AUTH PLAIN abc",
            "AUTH PLAIN =AAA",
            "AUTH PLAIN AA=A",
            "AUTH PLAIN A===",
            "AUTH PLAIN ab!d",
        ] {
            assert_eq!(err(bad), CommandError::InvalidInitialResponse, "{bad:?}");
        }
        assert!(matches!(
            err("AUTH PLAIN AAAA BBBB"),
            CommandError::Syntax { .. }
        ));
        assert!(matches!(err("AUTH PLÄIN"), CommandError::EightBit { .. }));
    }

    #[test]
    fn paths() {
        // Source routes are accepted and dropped (RFC 5321 §4.1.1.3, Appendix C).
        let (from, _) = mail("MAIL FROM:<@hosta.int,@jkl.org:userc@d.bar.org>");
        assert_eq!(from, from_mailbox("userc@d.bar.org"));
        let (to, _) = rcpt("RCPT TO:<@hosta.int:userc@d.bar.org>");
        assert_eq!(to, ForwardPath::Mailbox(mailbox("userc@d.bar.org")));
        // Quoted local parts, with '>' and spaces inside the quotes.
        let (to, _) = rcpt(r#"RCPT TO:<"john > doe"@example.com> NOTIFY=NEVER"#);
        let m = to.mailbox().map(|m| m.local_part().as_str().to_owned());
        assert_eq!(m.as_deref(), Some("john > doe"));
        let (from, _) = mail(r#"MAIL FROM:<"a\"b"@example.com>"#);
        assert_eq!(
            from.mailbox().map(|m| m.local_part().as_str()),
            Some(r#"a"b"#)
        );
        // Address literals.
        let (to, _) = rcpt("RCPT TO:<root@[192.0.2.1]>");
        assert!(matches!(
            to.mailbox().map(Mailbox::domain_part),
            Some(DomainPart::Literal(_))
        ));
        let (to, _) = rcpt("RCPT TO:<root@[IPv6:2001:db8::1]>");
        assert!(to.mailbox().is_some_and(|m| m.domain().is_none()));
        // Null reverse-path, also with parameters.
        assert_eq!(mail("MAIL FROM:<>").0, ReversePath::Null);
        assert_eq!(mail("MAIL FROM:<> SIZE=5").1.size, Some(5));
        // Postmaster without a domain, any case; with a domain it is an ordinary mailbox.
        assert_eq!(rcpt("RCPT TO:<Postmaster>").0, ForwardPath::Postmaster);
        assert_eq!(rcpt("RCPT TO:<postMASTER>").0, ForwardPath::Postmaster);
        assert_eq!(
            rcpt("RCPT TO:<Postmaster@example.com>").0,
            ForwardPath::Mailbox(mailbox("Postmaster@example.com"))
        );
    }

    #[test]
    fn utf8_paths_need_smtputf8() {
        let c = ok("MAIL FROM:<用户@例子.广告> SMTPUTF8");
        assert!(c.needs_smtputf8());
        round_trip(&c);
        let c = ok("RCPT TO:<jörg@example.com>");
        assert!(c.needs_smtputf8());
        let c = ok("RCPT TO:<joe@bücher.example>");
        assert!(c.needs_smtputf8());
        assert!(!ok("RCPT TO:<joe@xn--bcher-kva.example>").needs_smtputf8());
        assert!(!ok("MAIL FROM:<>").needs_smtputf8());
        assert!(!ok("RCPT TO:<Postmaster>").needs_smtputf8());
        assert!(ok("VRFY jörg").needs_smtputf8());
        assert!(!ok("VRFY joe").needs_smtputf8());
        assert!(!ok("EHLO example.com").needs_smtputf8());
        // 8-bit octets outside a path or a parameter are refused.
        assert!(matches!(
            err("MAIL FRÖM:<a@b.c>"),
            CommandError::Syntax { .. }
        ));
        assert!(matches!(
            err("HELP MÄIL"),
            CommandError::EightBit { offset: 6 }
        ));
        assert_eq!(
            parse_command(b"MAIL FROM:<\xff@example.com>"),
            Err(CommandError::InvalidUtf8 { offset: 11 })
        );
    }

    #[test]
    fn bad_paths() {
        use CommandError as E;
        type Check = fn(&CommandError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("MAIL FROM:", |e| {
                matches!(e, E::BadSender(PathError::Malformed { .. }))
            }),
            ("MAIL FROM:a@example.com", |e| {
                matches!(e, E::BadSender(PathError::Malformed { .. }))
            }),
            ("MAIL FROM:<a@example.com", |e| {
                matches!(e, E::BadSender(PathError::Malformed { .. }))
            }),
            ("MAIL FROM:<a@example.com>SIZE=1", |e| {
                matches!(e, E::BadSender(PathError::Malformed { .. }))
            }),
            ("MAIL FROM:<\"a@example.com>", |e| {
                matches!(e, E::BadSender(PathError::Malformed { .. }))
            }),
            ("MAIL FROM:<a b@example.com>", |e| {
                matches!(e, E::BadSender(PathError::Mailbox(_)))
            }),
            ("MAIL FROM:<@relay:>", |e| {
                matches!(e, E::BadSender(PathError::Mailbox(_)))
            }),
            ("MAIL FROM:<@:a@example.com>", |e| {
                matches!(e, E::BadSender(PathError::SourceRoute))
            }),
            ("MAIL FROM:<@a,b:a@example.com>", |e| {
                matches!(e, E::BadSender(PathError::SourceRoute))
            }),
            ("MAIL FROM:<@relay>", |e| {
                matches!(e, E::BadSender(PathError::SourceRoute))
            }),
            ("MAIL TO:<a@example.com>", |e| {
                matches!(e, E::Syntax { verb: "MAIL", .. })
            }),
            ("MAIL", |e| matches!(e, E::Syntax { verb: "MAIL", .. })),
            ("RCPT TO:<>", |e| {
                matches!(e, E::BadRecipient(PathError::Malformed { .. }))
            }),
            ("RCPT TO:<joe>", |e| {
                matches!(e, E::BadRecipient(PathError::Mailbox(_)))
            }),
            ("RCPT TO:<@x.example:Postmaster>", |e| {
                matches!(e, E::BadRecipient(PathError::Mailbox(_)))
            }),
            ("RCPT FROM:<a@example.com>", |e| {
                matches!(e, E::Syntax { verb: "RCPT", .. })
            }),
        ];
        for (line, check) in cases {
            let e = err(line);
            assert!(check(&e), "{line:?} gave {e:?}");
        }
        let long = format!(
            "RCPT TO:<{}@{}>",
            "a".repeat(64),
            vec!["b".repeat(60); 4].join(".")
        );
        assert!(matches!(
            err(&long),
            E::BadRecipient(PathError::TooLong { len: 310 })
        ));
    }

    #[test]
    fn mail_parameters() {
        let (_, p) = mail(
            "MAIL FROM:<a@example.com> SIZE=12345 BODY=BINARYMIME SMTPUTF8 RET=HDRS \
             ENVID=QQ314159+2B1 AUTH=e+3Dmc2@example.com MT-PRIORITY=-3 REQUIRETLS BY=120;RT",
        );
        assert_eq!(
            p,
            MailParams {
                size: Some(12345),
                body: Some(BodyType::BinaryMime),
                smtputf8: true,
                ret: Some(DsnRet::Headers),
                envid: Some("QQ314159+1".into()),
                auth: Some(Some("e=mc2@example.com".into())),
                mt_priority: Some(-3),
                require_tls: true,
                by: Some(DeliverBy {
                    seconds: 120,
                    mode: DeliverByMode::Return,
                    trace: true
                }),
            }
        );
        assert_eq!(mail("MAIL FROM:<> AUTH=<>").1.auth, Some(None));
        assert_eq!(
            mail("MAIL FROM:<> BODY=7bit").1.body,
            Some(BodyType::SevenBit)
        );
        assert_eq!(mail("MAIL FROM:<> RET=full").1.ret, Some(DsnRet::Full));
        assert_eq!(mail("MAIL FROM:<> MT-PRIORITY=+9").1.mt_priority, Some(9));
        assert_eq!(mail("MAIL FROM:<> MT-PRIORITY=-9").1.mt_priority, Some(-9));
        assert_eq!(mail("MAIL FROM:<> MT-PRIORITY=0").1.mt_priority, Some(0));
        assert_eq!(
            mail("MAIL FROM:<> SIZE=18446744073709551615").1.size,
            Some(u64::MAX)
        );
        assert_eq!(
            mail("MAIL FROM:<> BY=-60;n").1.by,
            Some(DeliverBy {
                seconds: -60,
                mode: DeliverByMode::Notify,
                trace: false
            })
        );
        assert_eq!(
            mail("MAIL FROM:<> BY=+999999999;R").1.by.map(|b| b.seconds),
            Some(999_999_999)
        );
        let c = ok("MAIL FROM:<a@example.com> ENVID=a+2Bb+3Dc+20d AUTH=<>");
        assert_eq!(
            written(&c),
            "MAIL FROM:<a@example.com> ENVID=a+2Bb+3Dc+20d AUTH=<>\r\n"
        );
    }

    #[test]
    fn invalid_mail_parameters() {
        use CommandError as E;
        let invalid = |line: &str, kw: &str| {
            let e = err(line);
            assert!(
                matches!(&e, E::InvalidParameter { keyword, .. } if *keyword == kw),
                "{line:?} gave {e:?}"
            );
            assert_eq!(
                (e.reply().code, e.reply().enhanced),
                (501, mswitch_core::status::EnhancedCode::new(5, 5, 4))
            );
        };
        let m = |p: &str| format!("MAIL FROM:<a@example.com> {p}");
        invalid(&m("SIZE"), "SIZE");
        invalid(&m("SIZE=abc"), "SIZE");
        invalid(&m("SIZE=-1"), "SIZE");
        invalid(&m("SIZE=+1"), "SIZE");
        invalid(&m("SIZE=18446744073709551616"), "SIZE");
        invalid(&m("SIZE=000000000000000000001"), "SIZE");
        invalid(&m("BODY=8BIT"), "BODY");
        invalid(&m("BODY"), "BODY");
        invalid(&m("SMTPUTF8=yes"), "SMTPUTF8");
        invalid(&m("REQUIRETLS=1"), "REQUIRETLS");
        invalid(&m("RET=ALL"), "RET");
        invalid(&m("ENVID=a+2b"), "ENVID");
        invalid(&m("ENVID=a+2"), "ENVID");
        invalid(&m("ENVID=a+"), "ENVID");
        invalid(&m("ENVID=a+0D+0AX-Injected:1"), "ENVID");
        invalid(&m("ENVID=+FF"), "ENVID");
        invalid(&m("ENVID=é"), "ENVID");
        invalid(&m(&format!("ENVID={}", "x".repeat(101))), "ENVID");
        invalid(&m("AUTH=joe"), "AUTH");
        invalid(&m("AUTH"), "AUTH");
        invalid(&m("MT-PRIORITY=10"), "MT-PRIORITY");
        invalid(&m("MT-PRIORITY=-10"), "MT-PRIORITY");
        invalid(&m("MT-PRIORITY=x"), "MT-PRIORITY");
        invalid(&m("MT-PRIORITY=-"), "MT-PRIORITY");
        invalid(&m("BY=120"), "BY");
        invalid(&m("BY=120;X"), "BY");
        invalid(&m("BY=120;RX"), "BY");
        invalid(&m("BY=120;RTT"), "BY");
        invalid(&m("BY=0;R"), "BY");
        invalid(&m("BY=-5;R"), "BY");
        invalid(&m("BY=1234567890;N"), "BY");
        invalid(&m("BY=;N"), "BY");
        assert!(
            mail(&m(&format!("ENVID={}", "x".repeat(100))))
                .1
                .envid
                .is_some()
        );

        // Malformed esmtp-param syntax.
        for p in ["SIZE=", "ENVID=a=b", "-X=1", "SI_ZE=1", "=5"] {
            let e = err(&m(p));
            assert!(
                matches!(e, E::Syntax { verb: "MAIL", .. }),
                "{p:?} gave {e:?}"
            );
        }
        // Unknown parameters, including RCPT parameters on MAIL: 555 5.5.4.
        for p in ["FOO=bar", "X-UNKNOWN", "NOTIFY=NEVER", "ORCPT=rfc822;a@b"] {
            let e = err(&m(p));
            assert!(matches!(e, E::UnknownParameter { .. }), "{p:?} gave {e:?}");
            assert_eq!(e.reply().code, 555);
        }
        // Duplicates.
        for p in [
            "SIZE=1 SIZE=2",
            "SMTPUTF8 smtputf8",
            "BODY=7BIT body=8BITMIME",
            "REQUIRETLS REQUIRETLS",
        ] {
            let e = err(&m(p));
            assert!(
                matches!(e, E::DuplicateParameter { .. }),
                "{p:?} gave {e:?}"
            );
            assert_eq!(e.reply().code, 501);
        }
    }

    #[test]
    fn rcpt_parameters() {
        let (_, p) =
            rcpt("RCPT TO:<b@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.com");
        assert_eq!(p.notify, Some(Notify::on(true, true, false)));
        assert_eq!(
            p.orcpt,
            Some(OriginalRecipient {
                addr_type: "rfc822".into(),
                address: "b+x@example.com".into()
            })
        );
        let (_, p) = rcpt("RCPT TO:<b@example.com> notify=never");
        assert_eq!(p.notify, Some(Notify::never()));
        let (_, p) = rcpt("RCPT TO:<b@example.com> NOTIFY=delay");
        assert_eq!(p.notify, Some(Notify::on(false, false, true)));

        // RFC 6533: utf-8 ORCPT in the 7-bit and in the unitext form decode alike.
        let x = rcpt(r"RCPT TO:<b@example.com> ORCPT=utf-8;j\x{F6}rg@example.com").1;
        let u = rcpt("RCPT TO:<b@example.com> ORCPT=UTF-8;jörg@example.com").1;
        let address = |p: &RcptParams| p.orcpt.as_ref().map(|o| o.address.clone());
        assert_eq!(address(&x).as_deref(), Some("jörg@example.com"));
        assert_eq!(address(&u), address(&x));
        let c = ok("RCPT TO:<b@example.com> ORCPT=utf-8;j\u{f6}rg\\x{20}x@example.com");
        assert_eq!(
            written(&c),
            "RCPT TO:<b@example.com> ORCPT=utf-8;j\\x{F6}rg\\x{20}x@example.com\r\n"
        );
        let c = ok("RCPT TO:<jörg@example.com> ORCPT=utf-8;j\\x{F6}rg@example.com");
        assert_eq!(
            written(&c),
            "RCPT TO:<jörg@example.com> ORCPT=utf-8;jörg@example.com\r\n"
        );
        round_trip(&c);
    }

    #[test]
    fn invalid_rcpt_parameters() {
        use CommandError as E;
        let r = |p: &str| format!("RCPT TO:<b@example.com> {p}");
        let invalid = |p: &str, kw: &str| {
            let e = err(&r(p));
            assert!(
                matches!(&e, E::InvalidParameter { keyword, .. } if *keyword == kw),
                "{p:?} gave {e:?}"
            );
        };
        invalid("NOTIFY=NEVER,SUCCESS", "NOTIFY");
        invalid("NOTIFY=SUCCESS,NEVER", "NOTIFY");
        invalid("NOTIFY=SUCCESS,SUCCESS", "NOTIFY");
        invalid("NOTIFY=SUCCESS,,DELAY", "NOTIFY");
        invalid("NOTIFY=ALWAYS", "NOTIFY");
        invalid("NOTIFY", "NOTIFY");
        invalid("ORCPT=rfc822", "ORCPT");
        invalid("ORCPT=rfc822b@example.com", "ORCPT");
        invalid("ORCPT=rfc822;", "ORCPT");
        invalid("ORCPT=;b@example.com", "ORCPT");
        invalid("ORCPT=rf<c;b@example.com", "ORCPT");
        invalid("ORCPT=rfc822;b+zz@example.com", "ORCPT");
        invalid("ORCPT=rfc822;jörg@example.com", "ORCPT");
        invalid("ORCPT=rfc822;a+0Ab", "ORCPT");
        invalid(r"ORCPT=utf-8;a\x{0}b", "ORCPT");
        invalid(r"ORCPT=utf-8;a\x{41}b", "ORCPT");
        invalid(r"ORCPT=utf-8;a\x{f6}b", "ORCPT");
        invalid(r"ORCPT=utf-8;a\x{00F6}b", "ORCPT");
        invalid(r"ORCPT=utf-8;a\x{D800}b", "ORCPT");
        invalid(r"ORCPT=utf-8;a\x{110000}b", "ORCPT");
        invalid(r"ORCPT=utf-8;a\x{0A}b", "ORCPT");
        invalid(r"ORCPT=utf-8;a\b", "ORCPT");
        invalid("ORCPT=utf-8;a+b", "ORCPT");
        invalid(&format!("ORCPT=rfc822;{}", "x".repeat(494)), "ORCPT");
        assert!(
            rcpt(&r(&format!("ORCPT=rfc822;{}", "x".repeat(493))))
                .1
                .orcpt
                .is_some()
        );
        // The 7-bit form of a unitext address written for an ASCII path must fit too.
        invalid(&format!("ORCPT=utf-8;{}", "é".repeat(100)), "ORCPT");

        for p in ["SIZE=5", "FOO"] {
            assert!(matches!(err(&r(p)), E::UnknownParameter { .. }), "{p:?}");
        }
        let e = err(&r("NOTIFY=NEVER NOTIFY=NEVER"));
        assert_eq!(e, E::DuplicateParameter { keyword: "NOTIFY" });
    }

    #[test]
    fn bare_line_endings_nul_and_controls() {
        use CommandError as E;
        assert_eq!(
            parse_command(b"MAIL FROM:<a@b.example>\rX"),
            Err(E::BareLineEnding { offset: 23 })
        );
        assert_eq!(
            parse_command(b"DATA\n"),
            Err(E::BareLineEnding { offset: 4 })
        );
        assert_eq!(
            parse_command(b"RCPT TO:<a\n@b.example>"),
            Err(E::BareLineEnding { offset: 10 })
        );
        assert_eq!(
            parse_command(b"QUIT\r"),
            Err(E::BareLineEnding { offset: 4 })
        );
        assert_eq!(parse_command(b"NOOP \0"), Err(E::Nul { offset: 5 }));
        assert_eq!(
            parse_command(b"HELO\tx.example"),
            Err(E::ControlChar { offset: 4 })
        );
        assert_eq!(
            parse_command(b"VRFY a\x7f"),
            Err(E::ControlChar { offset: 6 })
        );
        assert_eq!(
            parse_command("VRFY a\u{85}".as_bytes()),
            Err(E::ControlChar { offset: 6 })
        );
        for e in [
            E::BareLineEnding { offset: 0 },
            E::Nul { offset: 0 },
            E::ControlChar { offset: 0 },
        ] {
            let s = e.reply();
            assert_eq!((s.code, s.enhanced.to_string()), (501, "5.5.2".into()));
        }
    }

    #[test]
    fn line_limits() {
        // 510 octets + CRLF = 512: the limit, inclusive.
        let at_limit = format!("NOOP {}", "x".repeat(MAX_COMMAND_LINE - 2 - 5));
        assert_eq!(parse(&at_limit), Ok(Command::Noop));
        let over = format!("NOOP {}", "x".repeat(MAX_COMMAND_LINE - 1 - 5));
        assert_eq!(
            parse(&over),
            Err(CommandError::LineTooLong {
                len: 513,
                limit: MAX_COMMAND_LINE
            })
        );
        let unknown = "X".repeat(600);
        assert!(matches!(
            parse(&unknown),
            Err(CommandError::LineTooLong { .. })
        ));
        // MAIL and RCPT may be longer, up to MAX_EXTENDED_COMMAND_LINE.
        let envid = "x".repeat(100);
        let orcpt = "y".repeat(490);
        let long_rcpt = format!("RCPT TO:<b@example.com> NOTIFY=SUCCESS ORCPT=rfc822;{orcpt}");
        assert!(long_rcpt.len() > MAX_COMMAND_LINE);
        assert!(rcpt(&long_rcpt).1.orcpt.is_some());
        assert!(
            mail(&format!("MAIL FROM:<a@example.com> ENVID={envid}"))
                .1
                .envid
                .is_some()
        );
        let over = format!("MAIL FROM:<> {}", " ".repeat(MAX_EXTENDED_COMMAND_LINE));
        let e = err(&over);
        assert!(
            matches!(
                e,
                CommandError::LineTooLong {
                    limit: MAX_EXTENDED_COMMAND_LINE,
                    ..
                }
            ),
            "{e:?}"
        );
        let s = e.reply();
        assert_eq!((s.code, s.enhanced.to_string()), (500, "5.5.2".into()));
    }

    #[test]
    fn error_replies() {
        use CommandError as E;
        let cases: Vec<(E, u16, &str)> = vec![
            (
                E::LineTooLong {
                    len: 600,
                    limit: 512,
                },
                500,
                "5.5.2",
            ),
            (E::BareLineEnding { offset: 1 }, 501, "5.5.2"),
            (E::Nul { offset: 1 }, 501, "5.5.2"),
            (E::ControlChar { offset: 1 }, 501, "5.5.2"),
            (E::InvalidUtf8 { offset: 1 }, 501, "5.5.2"),
            (E::EightBit { offset: 1 }, 501, "5.5.2"),
            (E::UnknownCommand, 500, "5.5.2"),
            (E::NotImplemented { verb: "TURN" }, 502, "5.5.1"),
            (
                E::Syntax {
                    verb: "MAIL",
                    reason: "x",
                },
                501,
                "5.5.4",
            ),
            (E::BadSender(PathError::SourceRoute), 501, "5.1.7"),
            (E::BadRecipient(PathError::SourceRoute), 501, "5.1.3"),
            (
                E::UnknownParameter {
                    keyword: "FOO".into(),
                },
                555,
                "5.5.4",
            ),
            (E::DuplicateParameter { keyword: "SIZE" }, 501, "5.5.4"),
            (
                E::InvalidParameter {
                    keyword: "SIZE",
                    reason: "x",
                },
                501,
                "5.5.4",
            ),
            (E::InvalidMechanism, 504, "5.5.4"),
            (E::InvalidInitialResponse, 501, "5.5.2"),
        ];
        for (e, code, enhanced) in cases {
            let s = e.reply();
            assert_eq!(
                (s.code, s.enhanced.to_string().as_str()),
                (code, enhanced),
                "{e:?}"
            );
            assert!(!s.text.is_empty());
            assert_eq!(Status::from(e.clone()), s);
        }
        let s = err("MAIL FROM:<a b@example.com>").reply();
        assert_eq!((s.code, s.enhanced.to_string()), (501, "5.1.7".into()));
        let s = err("RCPT TO:<a b@example.com>").reply();
        assert_eq!((s.code, s.enhanced.to_string()), (501, "5.1.3".into()));
        let s = err("MAIL FROM:<> FOO=1").reply();
        assert_eq!((s.code, s.enhanced.to_string()), (555, "5.5.4".into()));
        let s = err("FOO").reply();
        assert_eq!((s.code, s.enhanced.to_string()), (500, "5.5.2".into()));
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_decode(""), Ok(String::new()));
        assert_eq!(xtext_decode("abc+2B+3D+20"), Ok("abc+= ".into()));
        assert_eq!(xtext_decode("+41"), Ok("A".into()));
        assert_eq!(xtext_decode("+C3+A9"), Ok("é".into()));
        assert_eq!(
            xtext_decode("+c3+a9"),
            Err(XtextError::BadEscape { offset: 0 })
        );
        assert_eq!(
            xtext_decode("a+4"),
            Err(XtextError::BadEscape { offset: 1 })
        );
        assert_eq!(
            xtext_decode("a=b"),
            Err(XtextError::InvalidChar { ch: '=', offset: 1 })
        );
        assert_eq!(
            xtext_decode("a b"),
            Err(XtextError::InvalidChar { ch: ' ', offset: 1 })
        );
        assert_eq!(
            xtext_decode("é"),
            Err(XtextError::InvalidChar {
                ch: 'é', offset: 0
            })
        );
        assert_eq!(xtext_decode("+FF"), Err(XtextError::NotUtf8));
        assert_eq!(xtext_encode("a+b=c d\u{7f}é"), "a+2Bb+3Dc+20d+7F+C3+A9");
        assert_eq!(
            utf8_addr_encode("a+b=c\\ dé", false),
            "a\\x{2B}b\\x{3D}c\\x{5C}\\x{20}d\\x{E9}"
        );
        assert_eq!(utf8_addr_encode("dé用😀", true), "dé用😀");
        assert_eq!(utf8_addr_encode("用😀", false), "\\x{7528}\\x{1F600}");
        assert_eq!(utf8_addr_decode("\\x{7528}\\x{1F600}"), Ok("用😀".into()));
        assert_eq!(utf8_addr_decode("a\\x{5C}b"), Ok("a\\b".into()));
        assert_eq!(
            utf8_addr_decode("a\\x{5C"),
            Err(XtextError::BadEscape { offset: 1 })
        );
    }

    prop_compose! {
        fn arb_mailbox()(s in prop_oneof![
            "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\\.[a-z0-9]{1,5}){0,2}@[a-z]{1,8}(\\.[a-z]{1,8}){0,2}",
            "\"[ a-zA-Z0-9@<>:,.\\\\\"]{1,10}\"@[a-z]{1,8}\\.example",
            "[a-zé用]{1,6}@[a-zü]{1,6}\\.example",
            "[a-z]{1,6}@\\[192\\.0\\.2\\.[0-9]{1,2}\\]",
            "[a-z]{1,6}@\\[IPv6:2001:db8::[0-9a-f]{1,4}\\]",
        ]) -> String { s }
    }

    fn arb_valid_mailbox() -> impl Strategy<Value = Mailbox> {
        arb_mailbox().prop_filter_map("a valid mailbox", |s| Mailbox::parse(&s).ok())
    }

    fn arb_mail_params() -> impl Strategy<Value = MailParams> {
        (
            proptest::option::of(any::<u64>()),
            proptest::option::of(prop_oneof![
                Just(BodyType::SevenBit),
                Just(BodyType::EightBitMime),
                Just(BodyType::BinaryMime)
            ]),
            any::<bool>(),
            proptest::option::of(prop_oneof![Just(DsnRet::Full), Just(DsnRet::Headers)]),
            proptest::option::of("[ -~]{1,30}"),
            proptest::option::of(proptest::option::of(
                arb_valid_mailbox().prop_map(|m| m.to_string()),
            )),
            proptest::option::of(MT_PRIORITY_MIN..=MT_PRIORITY_MAX),
            any::<bool>(),
            proptest::option::of(
                (-999_999_999i64..=999_999_999, any::<bool>(), any::<bool>()).prop_map(
                    |(seconds, r, trace)| {
                        let mode = if r && seconds > 0 {
                            DeliverByMode::Return
                        } else {
                            DeliverByMode::Notify
                        };
                        DeliverBy {
                            seconds,
                            mode,
                            trace,
                        }
                    },
                ),
            ),
        )
            .prop_map(
                |(size, body, smtputf8, ret, envid, auth, mt_priority, require_tls, by)| {
                    MailParams {
                        size,
                        body,
                        smtputf8,
                        ret,
                        envid,
                        auth,
                        mt_priority,
                        require_tls,
                        by,
                    }
                },
            )
    }

    fn arb_rcpt_params() -> impl Strategy<Value = RcptParams> {
        let notify = prop_oneof![
            Just(Notify::never()),
            (any::<bool>(), any::<bool>(), any::<bool>())
                .prop_filter("one condition at least", |(s, f, d)| *s || *f || *d)
                .prop_map(|(s, f, d)| Notify::on(s, f, d)),
        ];
        let orcpt = (
            prop_oneof![Just("rfc822"), Just("utf-8"), Just("UTF-8"), Just("x400")],
            "[ -~é用😀]{1,20}",
        )
            .prop_map(|(t, a)| OriginalRecipient {
                addr_type: t.to_owned(),
                address: a,
            });
        (proptest::option::of(notify), proptest::option::of(orcpt))
            .prop_map(|(notify, orcpt)| RcptParams { notify, orcpt })
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        let host = "[a-z0-9]{1,10}(\\.[a-z0-9-]{0,5}[a-z0-9]){0,3}";
        prop_oneof![
            host.prop_map(|domain| Command::Helo { domain }),
            host.prop_map(|domain| Command::Ehlo { domain }),
            host.prop_map(|domain| Command::Lhlo { domain }),
            (proptest::option::of(arb_valid_mailbox()), arb_mail_params()).prop_map(
                |(m, params)| Command::Mail {
                    from: m.map_or(ReversePath::Null, |m| ReversePath::Address(
                        Address::Mailbox(m)
                    )),
                    params
                }
            ),
            (proptest::option::of(arb_valid_mailbox()), arb_rcpt_params()).prop_map(
                |(m, params)| Command::Rcpt {
                    to: m.map_or(ForwardPath::Postmaster, ForwardPath::Mailbox),
                    params
                }
            ),
            Just(Command::Data),
            (any::<u64>(), any::<bool>()).prop_map(|(size, last)| Command::Bdat { size, last }),
            Just(Command::Rset),
            Just(Command::Noop),
            Just(Command::Quit),
            "[a-zA-Z0-9é]([a-zA-Z0-9 é]{0,20}[a-zA-Z0-9])?".prop_map(Command::Vrfy),
            "[a-zA-Z0-9é]([a-zA-Z0-9 é]{0,20}[a-zA-Z0-9])?".prop_map(Command::Expn),
            proptest::option::of("[A-Z]{1,10}").prop_map(Command::Help),
            Just(Command::StartTls),
            (
                "[A-Z0-9_-]{1,20}",
                proptest::option::of(prop_oneof![
                    Just("=".to_owned()),
                    "([A-Za-z0-9+/]{4}){1,10}",
                    "([A-Za-z0-9+/]{4}){0,5}[A-Za-z0-9+/]{2}==",
                    "([A-Za-z0-9+/]{4}){0,5}[A-Za-z0-9+/]{3}=",
                ])
            )
                .prop_map(|(mechanism, initial_response)| Command::Auth {
                    mechanism,
                    initial_response
                }),
        ]
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(c in arb_command()) {
            let w = written(&c);
            let line = w.strip_suffix("\r\n");
            prop_assert!(line.is_some(), "{:?} has no CRLF", w);
            let again = parse(line.unwrap_or_default());
            prop_assert_eq!(again.as_ref(), Ok(&c), "written as {:?}", w);
        }

        #[test]
        fn parse_never_panics_and_parsed_commands_round_trip(line in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(c) = parse_command(&line) {
                round_trip(&c);
            }
        }

        #[test]
        fn xtext_round_trips(s in "\\PC{0,40}") {
            prop_assert_eq!(xtext_decode(&xtext_encode(&s)), Ok(s.clone()));
            let no_nul: String = s.chars().filter(|&c| c != '\0').collect();
            prop_assert_eq!(utf8_addr_decode(&utf8_addr_encode(&no_nul, false)), Ok(no_nul.clone()));
            prop_assert_eq!(utf8_addr_decode(&utf8_addr_encode(&no_nul, true)), Ok(no_nul.clone()));
            prop_assert!(utf8_addr_encode(&no_nul, false).is_ascii());
        }
    }

    /// Fuzz finding (smtp_command, crash-156594052ab1957db85531c24a0367eab213c833): a quoted
    /// local part before an address literal holding '@' parsed, but its canonical form did not.
    #[test]
    fn regression_mailbox_without_canonical_form() {
        let crash =
            b"MAIL FROM:<@hoSta.int,@jkl.grg0:\"jo\xf0\xbe\xb5\x8doe\"@[IPv5:20@1:db8::1]> ";
        let simple = br#"RCPT TO:<"a"@[x:1@2]>"#;
        for input in [&crash[..], &simple[..]] {
            match parse_command(input) {
                Ok(c) => round_trip(&c),
                Err(e) => assert!(
                    matches!(
                        e,
                        CommandError::BadSender(PathError::NotCanonical)
                            | CommandError::BadRecipient(PathError::NotCanonical)
                    ),
                    "{e:?}"
                ),
            }
        }
        // An IPv6 literal whose canonical form is longer than the one sent still round-trips.
        let c = ok("RCPT TO:<a@[IPv6:::ffff:1:1]>");
        assert_eq!(written(&c), "RCPT TO:<a@[IPv6:::ffff:0.1.0.1]>\r\n");
        round_trip(&c);
    }

    #[test]
    fn write_command_cannot_inject_lines() {
        let c = Command::Vrfy("a\r\nRCPT TO:<x@y>".into());
        assert_eq!(written(&c), "VRFY a??RCPT TO:<x@y>\r\n");
        let c = Command::Rcpt {
            to: ForwardPath::Postmaster,
            params: RcptParams {
                notify: None,
                orcpt: Some(OriginalRecipient {
                    addr_type: "rfc\r\n822 x".into(),
                    address: "a\r\nb".into(),
                }),
            },
        };
        assert_eq!(
            written(&c),
            "RCPT TO:<Postmaster> ORCPT=rfc??822?x;a+0D+0Ab\r\n"
        );
        let c = Command::Auth {
            mechanism: "PLAIN\n".into(),
            initial_response: Some("x\ry".into()),
        };
        assert_eq!(written(&c), "AUTH PLAIN? x?y\r\n");
    }
}
