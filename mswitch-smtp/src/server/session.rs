//! One server-side SMTP, submission or LMTP session as a sans-IO state machine.
//!
//! # How a driver uses it
//! ```text
//! let mut s = ServerSession::new(config, now);        // the greeting is queued as output
//! loop {
//!     while let Some(bytes) = s.poll_output() { write bytes to the socket }
//!     while let Some(event) = s.poll_event() {
//!         match event {
//!             Event::Mail { .. } | Event::Rcpt { .. } | Event::Message { .. } =>
//!                 s.respond(decision),                  // policy lives outside the engine
//!             Event::StartTls => { write pending output; run the TLS handshake;
//!                                  s.tls_established(now) }
//!             Event::Close => { write pending output; close the connection }
//!             _ => {}
//!         }
//!     }
//!     read from the socket (until s.poll_timeout()), then s.handle_input(&bytes, now)
//!     or, when the deadline passes, s.handle_timeout(now)
//! }
//! ```
//! The session never decides policy: accepting a sender, a recipient or a message is an
//! [`Event`] the driver answers with [`ServerSession::respond`] (or
//! [`ServerSession::respond_lmtp`]). While an answer is pending, input is buffered, not
//! processed, so pipelined commands are answered in order.
//!
//! # Rules enforced here
//! - Command order (RFC 5321 §4.1.4): HELO/EHLO (LHLO for LMTP) before MAIL; MAIL before
//!   RCPT; an accepted RCPT before DATA or BDAT; EHLO or RSET ends a transaction.
//! - Synchronisation (RFC 2920): without PIPELINING, a client that sends a command before the
//!   reply to the previous one is cut off with 554 5.5.0; with it, nothing may follow DATA
//!   (before 354), STARTTLS, AUTH or a greeting command in the same group.
//! - STARTTLS (RFC 3207): input already received after STARTTLS is discarded, never executed,
//!   and everything learned before TLS (greeting, transaction) is forgotten: a new EHLO is
//!   needed.
//! - Limits: command line 512 octets, recipients per message, message size (SIZE and counted),
//!   errors per session, command and data timeouts (RFC 5321 §4.5.3).
//! - Deadlines, not idle timers, against slow senders ("slowloris"): a command line must be
//!   complete within the command timeout of the previous reply, however its bytes trickle in;
//!   content may pause at most the data timeout between blocks, and a whole message's content
//!   (DATA to the final dot, BDAT from the first chunk to the last) must arrive within the data
//!   time limit.

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mswitch_core::envelope::ReversePath;
use mswitch_core::status::Status;

use crate::proto::command::{
    Command, ForwardPath, MAX_EXTENDED_COMMAND_LINE, MailParams, RcptParams, parse_command,
};
use crate::proto::reply::write_reply;
use crate::sasl::{AuthFailure, Credentials, ScramStored, ServerExchange, ServerMechanism, Step};
use crate::server::auth_limit::{AuthLimiter, Throttled};
use crate::server::data::{
    BareLineEndings, BdatOutcome, BdatProgress, BdatReader, DataLimits, DataOutcome, DataProgress,
    DataReader,
};

/// At least this many recipients must be accepted per message (RFC 5321 §4.5.3.1.8).
pub const MIN_RECIPIENTS_LIMIT: usize = 100;
/// Default timeout waiting for a command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Default timeout between data blocks.
pub const DEFAULT_DATA_TIMEOUT: Duration = Duration::from_secs(300);
/// Default time allowed for one message's whole content: 50 MiB at about 30 kB/s.
pub const DEFAULT_DATA_TIME_LIMIT: Duration = Duration::from_secs(30 * 60);
/// Default number of errors after which the session is closed.
pub const DEFAULT_MAX_ERRORS: u32 = 10;
/// Default number of junk commands (NOOP, RSET, VRFY, EXPN, HELP) allowed between accepted
/// messages before each further one counts as an error (Postfix's `smtpd_junk_command_limit`
/// has the same default).
pub const DEFAULT_MAX_JUNK_COMMANDS: u32 = 100;
/// Default number of failed authentications after which the session is closed.
pub const DEFAULT_MAX_AUTH_FAILURES: u32 = 3;
/// Longest line of a SASL exchange, including CRLF (RFC 4954 §4: 12288 octets).
pub const MAX_AUTH_LINE: usize = 12_288 + 2;

/// SMTP AUTH (RFC 4954) as the server offers it.
#[derive(Clone)]
pub struct AuthConfig {
    /// Mechanisms offered, in the order advertised.
    pub mechanisms: Vec<ServerMechanism>,
    /// Where users are checked.
    pub credentials: Arc<dyn Credentials>,
    /// Offer password mechanisms (PLAIN, LOGIN) without TLS. Off by default: passwords must
    /// not cross the network in clear.
    pub allow_plaintext: bool,
    /// Failed attempts after which the connection is closed.
    pub max_failures: u32,
    /// Failures counted across sessions, per client address and per user name (shared by
    /// every session of the server); `None`: only `max_failures` applies.
    pub limiter: Option<Arc<AuthLimiter>>,
}

impl AuthConfig {
    /// PLAIN, LOGIN and SCRAM-SHA-256 (and EXTERNAL, offered when the client presented a TLS
    /// certificate), checked against `credentials`.
    pub fn new(credentials: Arc<dyn Credentials>) -> Self {
        AuthConfig {
            mechanisms: vec![
                ServerMechanism::ScramSha256,
                ServerMechanism::Plain,
                ServerMechanism::Login,
                ServerMechanism::External,
            ],
            credentials,
            allow_plaintext: false,
            max_failures: DEFAULT_MAX_AUTH_FAILURES,
            limiter: None,
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("mechanisms", &self.mechanisms)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("max_failures", &self.max_failures)
            .field("limiter", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

/// Which protocol the session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// MTA-to-MTA SMTP (RFC 5321).
    Smtp,
    /// Message submission (RFC 6409): authentication before MAIL.
    Submission,
    /// LMTP (RFC 2033): LHLO, and one reply per recipient after the data.
    Lmtp,
}

/// What the server offers and enforces.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Name in the greeting and the EHLO reply.
    pub hostname: String,
    /// The protocol.
    pub mode: Mode,
    /// Largest message accepted (advertised with SIZE).
    pub max_message_size: u64,
    /// Most recipients per message; more get 452 4.5.3 (at least [`MIN_RECIPIENTS_LIMIT`]).
    pub max_recipients: usize,
    /// Offer PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// Offer CHUNKING and BINARYMIME (RFC 3030).
    pub chunking: bool,
    /// Offer SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// Offer DSN (RFC 3461).
    pub dsn: bool,
    /// Offer MT-PRIORITY (RFC 6710) with this profile name (e.g. "STANAG4406").
    pub mt_priority: Option<String>,
    /// Offer STARTTLS (the driver has a certificate).
    pub starttls: bool,
    /// Offer AUTH; `None`: no authentication.
    pub auth: Option<AuthConfig>,
    /// Bare CR or LF in message content: reject (default) or normalise.
    pub bare_line_endings: BareLineEndings,
    /// Errors tolerated before the session is closed with 421.
    pub max_errors: u32,
    /// Junk commands (NOOP, RSET, VRFY, EXPN, HELP) answered between accepted messages
    /// before each further one counts as an error, so that a client cannot hold a session
    /// open with them for ever (its command timeout restarts with every reply).
    pub max_junk_commands: u32,
    /// Time allowed for the next command line, from our previous reply (partial input does
    /// not extend it).
    pub command_timeout: Duration,
    /// Time allowed between data blocks.
    pub data_timeout: Duration,
    /// Time allowed for one message's whole content, from DATA (or the first BDAT) to the end
    /// of the data; `None`: no limit.
    pub data_time_limit: Option<Duration>,
}

impl ServerConfig {
    /// Defaults for `mode`: 50 MiB messages, 1000 recipients, every extension this engine
    /// implements, no STARTTLS (the driver enables it when it has a certificate).
    pub fn new(hostname: impl Into<String>, mode: Mode) -> Self {
        ServerConfig {
            hostname: hostname.into(),
            mode,
            max_message_size: 50 << 20,
            max_recipients: 1000,
            pipelining: true,
            chunking: true,
            smtputf8: true,
            dsn: true,
            mt_priority: Some("STANAG4406".into()),
            starttls: false,
            auth: None,
            bare_line_endings: BareLineEndings::Reject,
            max_errors: DEFAULT_MAX_ERRORS,
            max_junk_commands: DEFAULT_MAX_JUNK_COMMANDS,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            data_timeout: DEFAULT_DATA_TIMEOUT,
            data_time_limit: Some(DEFAULT_DATA_TIME_LIMIT),
        }
    }
}

/// A recipient accepted for the current transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedRecipient {
    /// The forward-path.
    pub to: ForwardPath,
    /// Its parameters.
    pub params: RcptParams,
}

/// What the session needs from, or tells, the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The client greeted (HELO, EHLO or LHLO). Informational.
    Hello {
        /// The name it gave.
        name: String,
        /// EHLO/LHLO rather than HELO.
        extended: bool,
    },
    /// Decide on this sender: answer with [`ServerSession::respond`] (2xx accepts).
    Mail {
        /// The reverse-path.
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
    },
    /// Decide on this recipient: answer with [`ServerSession::respond`] (2xx accepts).
    Rcpt {
        /// The forward-path.
        to: ForwardPath,
        /// Its parameters.
        params: RcptParams,
    },
    /// A complete message: queue it durably, then answer with [`ServerSession::respond`] (for
    /// LMTP, [`ServerSession::respond_lmtp`] with one status per recipient).
    Message {
        /// The sender.
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
        /// The accepted recipients, in order.
        recipients: Vec<AcceptedRecipient>,
        /// The content, dot-unstuffed.
        content: Vec<u8>,
    },
    /// The client authenticated (SMTP AUTH).
    Authenticated {
        /// The mechanism used.
        mechanism: ServerMechanism,
        /// The identity checked.
        authcid: String,
        /// The identity it acts as, if it asked for one other than `authcid`.
        authzid: Option<String>,
    },
    /// An AUTH exchange failed on the credentials (535 5.7.8), or was refused with 454 4.7.0
    /// without checking them because of earlier failures ([`AuthLimiter`]). Informational:
    /// for the driver's log.
    AuthFailed {
        /// The mechanism.
        mechanism: ServerMechanism,
        /// The user name the client gave, if it got that far (never a password).
        authcid: Option<String>,
        /// Set when the attempt was refused by the limiter, and which limit it was.
        throttled: Option<Throttled>,
    },
    /// The client asked for TLS and was told to go ahead: write the pending output, run the
    /// TLS handshake, then call [`ServerSession::tls_established`].
    StartTls,
    /// A deadline passed: the 421 is queued and [`Event::Close`] follows. Informational (for
    /// the log: which client was too slow, and where).
    TimedOut(Timeout),
    /// The error limit was reached ([`ServerConfig::max_errors`]): the 421 is queued and
    /// [`Event::Close`] follows. Informational (for the log), with how many of the errors were
    /// junk commands past [`ServerConfig::max_junk_commands`].
    TooManyErrors {
        /// Errors counted.
        errors: u32,
        /// How many of them were junk commands.
        junk: u32,
    },
    /// The session is over: write the pending output and close the connection.
    Close,
}

/// Which deadline a client missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Timeout {
    /// No complete command line within [`ServerConfig::command_timeout`].
    Command,
    /// No content for [`ServerConfig::data_timeout`].
    Data,
    /// The message's content took longer than [`ServerConfig::data_time_limit`].
    DataTimeLimit,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timeout::Command => "command timeout",
            Timeout::Data => "data timeout",
            Timeout::DataTimeLimit => "data time limit",
        })
    }
}

/// Misuse of the session API by the driver (a bug in the driver, not the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// `respond` was called while no decision was pending, or the wrong kind was.
    #[error("no decision of this kind is pending")]
    NothingPending,
    /// `respond_lmtp` got a different number of statuses than there are recipients.
    #[error("expected {expected} statuses, got {got}")]
    WrongCount {
        /// Recipients.
        expected: usize,
        /// Statuses given.
        got: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Greeted {
    No,
    Helo,
    Ehlo,
}

#[derive(Debug)]
enum Pending {
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt(AcceptedRecipient),
    Message,
    Tls,
}

#[derive(Debug)]
enum Input {
    /// Reading command lines.
    Commands,
    /// Reading DATA content.
    Data(Box<DataReader>),
    /// Reading a BDAT chunk; `refused` chunks are only swallowed (already answered).
    Bdat {
        reader: BdatReader,
        last: bool,
        refused: bool,
    },
    /// Skipping the rest of an over-long command line.
    DiscardLine,
    /// In a SASL exchange: the next line is the client's response.
    Auth(Box<ServerExchange>, Arc<Mutex<Attempt>>),
}

/// What the credentials saw of the current AUTH exchange (see [`Limited`]).
#[derive(Debug, Default)]
struct Attempt {
    /// The user name the mechanism asked about.
    authcid: Option<String>,
    /// The limiter refused that user: the exchange fails, and the reply is 454.
    throttled: bool,
}

/// The server's credentials as one exchange sees them when a limiter is in force: a user name
/// with too many failures is answered as unknown (so the mechanism runs to its ordinary
/// failure, and nothing tells whether the user exists), and the session replies 454.
struct Limited {
    inner: Arc<dyn Credentials>,
    limiter: Arc<AuthLimiter>,
    now: Instant,
    attempt: Arc<Mutex<Attempt>>,
}

impl Limited {
    /// Records `authcid`; false if the limiter refuses it.
    fn admit(&self, authcid: &str) -> bool {
        let blocked = self.limiter.check_user(authcid, self.now).is_err();
        if let Ok(mut a) = self.attempt.lock() {
            a.authcid = Some(authcid.to_owned());
            a.throttled |= blocked;
        }
        !blocked
    }
}

impl Credentials for Limited {
    fn scram_sha256(&self, authcid: &str) -> Option<ScramStored> {
        if self.admit(authcid) {
            self.inner.scram_sha256(authcid)
        } else {
            None
        }
    }

    fn verify_password(&self, authcid: &str, password: &str) -> bool {
        self.admit(authcid) && self.inner.verify_password(authcid, password)
    }

    fn may_act_as(&self, authcid: &str, authzid: &str) -> bool {
        self.inner.may_act_as(authcid, authzid)
    }
}

#[derive(Debug, Default)]
struct Transaction {
    from: Option<(ReversePath, MailParams)>,
    recipients: Vec<AcceptedRecipient>,
    /// RCPT commands refused (RFC 2920 §3.1: DATA with none accepted gets 554).
    refused: usize,
    content: Vec<u8>,
    /// BDAT was used (DATA may not follow).
    chunked: bool,
    /// The last MAIL was refused: the RCPT and DATA pipelined after it get 503 without
    /// counting as errors (RFC 2920 §3.1 expects them).
    mail_refused: bool,
    /// A BDAT chunk overflowed the size limit: the rest are swallowed, then refused.
    too_large: bool,
    /// When the content must be complete (the data time limit), once DATA or BDAT began.
    content_deadline: Option<Instant>,
}

/// The server side of one session.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    input: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<Event>,
    mode: Input,
    pending: Option<Pending>,
    greeted: Greeted,
    transaction: Transaction,
    tls: bool,
    tls_client_identity: Option<String>,
    authenticated: Option<String>,
    auth_failures: u32,
    /// The client's address, for the AUTH limiter.
    client: Option<IpAddr>,
    /// The time of the input being processed.
    now: Instant,
    entropy: Option<[u8; 32]>,
    nonces: u64,
    errors: u32,
    /// Junk commands since the session began or the last accepted message.
    junk: u32,
    closed: bool,
    deadline: Instant,
}

fn status(code: u16, enhanced: (u8, u16, u16), text: &str) -> Status {
    Status::new(code, enhanced, text)
}

impl ServerSession {
    /// A new session; the 220 greeting is queued.
    pub fn new(config: ServerConfig, now: Instant) -> Self {
        let mut s = ServerSession {
            deadline: now + config.command_timeout,
            config,
            input: Vec::new(),
            output: Vec::new(),
            events: VecDeque::new(),
            mode: Input::Commands,
            pending: None,
            greeted: Greeted::No,
            transaction: Transaction::default(),
            tls: false,
            tls_client_identity: None,
            authenticated: None,
            auth_failures: 0,
            client: None,
            now,
            entropy: None,
            nonces: 0,
            errors: 0,
            junk: 0,
            closed: false,
        };
        let proto = match s.config.mode {
            Mode::Lmtp => "LMTP",
            _ => "ESMTP",
        };
        let greeting = format!("{} {proto} mswitch", s.config.hostname);
        write_reply(&mut s.output, 220, None, &[&greeting]);
        s
    }

    /// Whether the session is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Records that the client is authenticated as `identity` by other means than SMTP AUTH
    /// (for example a trusted local connection).
    pub fn set_authenticated(&mut self, identity: impl Into<String>) {
        self.authenticated = Some(identity.into());
    }

    /// The identity the client authenticated as, if any.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// The client's address, for the AUTH limiter (without it only user names are limited).
    pub fn set_client_address(&mut self, address: IpAddr) {
        self.client = Some(address);
    }

    /// Random bytes from the driver (the OS generator), from which the session derives the
    /// unpredictable nonces SCRAM needs. Without them SCRAM-SHA-256 answers 454.
    pub fn set_entropy(&mut self, seed: [u8; 32]) {
        self.entropy = Some(seed);
    }

    /// The identity of the client's TLS certificate, once verified by the driver (offers
    /// SASL EXTERNAL).
    pub fn set_tls_client_identity(&mut self, identity: impl Into<String>) {
        self.tls_client_identity = Some(identity.into());
    }

    /// A fresh SCRAM server nonce: HMAC-SHA-256 of a counter under the session's entropy.
    fn nonce(&mut self) -> Option<String> {
        let seed = self.entropy?;
        self.nonces += 1;
        Some(crate::sasl::derive_nonce(&seed, self.nonces))
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes to send, if any.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        (!self.output.is_empty()).then(|| std::mem::take(&mut self.output))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`ServerSession::handle_timeout`] must be called if no input arrives. None while
    /// the session waits for the driver's decision; a TLS handshake has a deadline (the
    /// client's time for its next command).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed && !self.awaits_decision()).then_some(self.deadline)
    }

    /// Whether a MAIL, RCPT or message decision of the driver is pending (the client waits
    /// for us, not we for it).
    fn awaits_decision(&self) -> bool {
        matches!(
            self.pending,
            Some(Pending::Mail { .. } | Pending::Rcpt(_) | Pending::Message)
        )
    }

    /// Feeds bytes received from the client.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if self.closed {
            return;
        }
        self.input.extend_from_slice(bytes);
        // Content extends its deadline with every block; a command line does not: its deadline
        // runs from our previous reply.
        if self.in_content() {
            self.arm(now);
        }
        self.process(now);
    }

    /// The deadline from [`ServerSession::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed || self.awaits_decision() || now < self.deadline {
            return;
        }
        let limit = self.transaction.content_deadline.is_some_and(|d| now >= d)
            && (self.in_content() || self.transaction.chunked);
        let (kind, text) = if limit {
            (
                Timeout::DataTimeLimit,
                "Message transfer took too long, closing connection",
            )
        } else if self.in_content() {
            (
                Timeout::Data,
                "Timeout waiting for data, closing connection",
            )
        } else {
            (Timeout::Command, "Timeout, closing connection")
        };
        self.reply(status(421, (4, 4, 2), text));
        self.events.push_back(Event::TimedOut(kind));
        self.close();
    }

    /// Whether message content is being read.
    fn in_content(&self) -> bool {
        matches!(self.mode, Input::Data(_) | Input::Bdat { .. })
    }

    /// Sets the deadline for what is awaited now: content within the data timeout, a command
    /// within the command timeout, neither past the data time limit of a message under way.
    fn arm(&mut self, now: Instant) {
        let (wait, limited) = if self.in_content() {
            (self.config.data_timeout, true)
        } else {
            (self.config.command_timeout, self.transaction.chunked)
        };
        self.deadline = now + wait;
        if limited && let Some(limit) = self.transaction.content_deadline {
            self.deadline = self.deadline.min(limit);
        }
    }

    /// Answers the pending MAIL, RCPT or message decision. For a message, `decision` is what
    /// the client is told: 250 only once the message is durable.
    pub fn respond(&mut self, decision: Status, now: Instant) -> Result<(), UsageError> {
        match self.pending.take() {
            Some(Pending::Mail { from, params }) => {
                self.transaction = if decision.is_success() {
                    Transaction {
                        from: Some((from, params)),
                        ..Transaction::default()
                    }
                } else {
                    Transaction {
                        mail_refused: true,
                        ..Transaction::default()
                    }
                };
                self.reply(decision);
            }
            Some(Pending::Rcpt(rcpt)) => {
                if decision.is_success() {
                    self.transaction.recipients.push(rcpt);
                } else {
                    self.transaction.refused += 1;
                }
                self.reply(decision);
            }
            Some(Pending::Message) if self.config.mode != Mode::Lmtp => {
                if decision.is_success() {
                    self.junk = 0;
                }
                self.reply(decision);
                self.transaction = Transaction::default();
            }
            other => {
                self.pending = other;
                return Err(UsageError::NothingPending);
            }
        }
        // The client's time for its next command runs from this reply.
        self.arm(now);
        self.process(now);
        Ok(())
    }

    /// LMTP: answers the pending message with one status per accepted recipient, in order
    /// (RFC 2033 §4.2).
    pub fn respond_lmtp(&mut self, decisions: &[Status], now: Instant) -> Result<(), UsageError> {
        if !matches!(self.pending, Some(Pending::Message)) || self.config.mode != Mode::Lmtp {
            return Err(UsageError::NothingPending);
        }
        let expected = self.transaction.recipients.len();
        if decisions.len() != expected {
            return Err(UsageError::WrongCount {
                expected,
                got: decisions.len(),
            });
        }
        self.pending = None;
        if decisions.iter().any(Status::is_success) {
            self.junk = 0;
        }
        for d in decisions {
            self.reply(d.clone());
        }
        self.transaction = Transaction::default();
        self.arm(now);
        self.process(now);
        Ok(())
    }

    /// The TLS handshake the driver ran after [`Event::StartTls`] succeeded: the session
    /// starts over (a new EHLO is required, RFC 3207 §4.2).
    pub fn tls_established(&mut self, now: Instant) {
        if !matches!(self.pending, Some(Pending::Tls)) {
            return;
        }
        self.pending = None;
        self.tls = true;
        self.greeted = Greeted::No;
        self.authenticated = None;
        self.transaction = Transaction::default();
        self.input.clear();
        self.arm(now);
    }

    fn reply(&mut self, s: Status) {
        let enhanced = Some(s.enhanced);
        write_reply(&mut self.output, s.code, enhanced, &[&s.text]);
    }

    fn close(&mut self) {
        self.closed = true;
        self.input.clear();
        self.events.push_back(Event::Close);
    }

    /// Counts an error; past the limit the session ends.
    fn error(&mut self, s: Status) {
        self.reply(s);
        self.count_error();
    }

    /// Answers a junk command; past [`ServerConfig::max_junk_commands`] it counts as an
    /// error.
    fn junk(&mut self, s: Status) {
        self.reply(s);
        self.junk = self.junk.saturating_add(1);
        if self.junk > self.config.max_junk_commands {
            self.count_error();
        }
    }

    fn count_error(&mut self) {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.reply(status(
                421,
                (4, 7, 0),
                "Too many errors, closing connection",
            ));
            self.events.push_back(Event::TooManyErrors {
                errors: self.errors,
                junk: self.junk.saturating_sub(self.config.max_junk_commands),
            });
            self.close();
        }
    }

    /// Works through buffered input until it is used up, a decision is pending, or the
    /// session ends.
    fn process(&mut self, now: Instant) {
        self.now = now;
        while !self.closed && self.pending.is_none() {
            match &mut self.mode {
                Input::Commands => {
                    // MAIL and RCPT may be longer than 512 octets with extension parameters; the
                    // parser applies the limit of each command.
                    let Some(end) = self.input.windows(2).position(|w| w == b"\r\n") else {
                        if self.input.len() > MAX_EXTENDED_COMMAND_LINE {
                            self.input.clear();
                            self.mode = Input::DiscardLine;
                            self.error(status(500, (5, 5, 2), "Line too long"));
                        }
                        return;
                    };
                    let line: Vec<u8> = self.input.drain(..end + 2).take(end).collect();
                    // A whole line came: the next one has its own time.
                    self.arm(now);
                    if end + 2 > MAX_EXTENDED_COMMAND_LINE {
                        self.error(status(500, (5, 5, 2), "Line too long"));
                        continue;
                    }
                    self.command(&line, now);
                }
                Input::Auth(..) => {
                    let Some(end) = self.input.windows(2).position(|w| w == b"\r\n") else {
                        if self.input.len() > MAX_AUTH_LINE {
                            self.input.clear();
                            self.mode = Input::DiscardLine;
                            self.auth_failed(
                                None,
                                AuthFailure::ResponseTooLong { len: MAX_AUTH_LINE },
                            );
                        }
                        return;
                    };
                    let line: Vec<u8> = self.input.drain(..end + 2).take(end).collect();
                    self.arm(now);
                    let Input::Auth(mut exchange, attempt) =
                        std::mem::replace(&mut self.mode, Input::Commands)
                    else {
                        return;
                    };
                    let step = match std::str::from_utf8(&line) {
                        Ok(text) => exchange.step(text),
                        Err(_) => Step::Failure(AuthFailure::InvalidBase64),
                    };
                    self.auth_step(exchange, attempt, step);
                }
                Input::DiscardLine => match self.input.windows(2).position(|w| w == b"\r\n") {
                    Some(end) => {
                        self.input.drain(..end + 2);
                        self.mode = Input::Commands;
                        self.arm(now);
                    }
                    None => {
                        // Keep a trailing CR in case its LF comes next.
                        let keep = usize::from(self.input.last() == Some(&b'\r'));
                        let cut = self.input.len() - keep;
                        self.input.drain(..cut);
                        return;
                    }
                },
                Input::Data(reader) => {
                    let mut content = std::mem::take(&mut self.transaction.content);
                    let progress = reader.feed(&self.input, &mut content);
                    self.transaction.content = content;
                    match progress {
                        DataProgress::NeedMore => {
                            self.input.clear();
                            return;
                        }
                        DataProgress::Done { consumed, outcome } => {
                            self.input.drain(..consumed);
                            self.mode = Input::Commands;
                            self.arm(now);
                            self.end_of_message(outcome);
                        }
                    }
                }
                Input::Bdat {
                    reader,
                    last,
                    refused,
                } => {
                    let (last, refused) = (*last, *refused);
                    let mut content = std::mem::take(&mut self.transaction.content);
                    let progress = reader.feed(&self.input, &mut content);
                    self.transaction.content = content;
                    match progress {
                        BdatProgress::NeedMore => {
                            self.input.clear();
                            return;
                        }
                        BdatProgress::Done { consumed, outcome } => {
                            let too_large = matches!(outcome, BdatOutcome::TooLarge { .. });
                            self.input.drain(..consumed);
                            self.mode = Input::Commands;
                            self.arm(now);
                            if !self.pipelining() && !self.sync_point(false) {
                                return;
                            }
                            if !refused {
                                self.transaction.too_large |= too_large;
                                self.end_of_chunk(last);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A synchronisation point: the client had to wait for our reply before sending more.
    fn sync_point(&mut self, pipelined_allowed: bool) -> bool {
        if self.input.is_empty() || pipelined_allowed {
            return true;
        }
        self.reply(status(
            554,
            (5, 5, 0),
            "SMTP synchronization error: command sent before the reply",
        ));
        self.close();
        false
    }

    fn pipelining(&self) -> bool {
        self.config.pipelining && self.greeted == Greeted::Ehlo
    }

    fn command(&mut self, line: &[u8], now: Instant) {
        let command = match parse_command(line) {
            Ok(c) => c,
            // Includes a bare CR or LF inside the line (a smuggling attempt or a broken client).
            Err(e) => return self.error(e.reply()),
        };
        // Without PIPELINING every command is a synchronisation point, except BDAT, whose chunk
        // follows the command at once (RFC 3030 §2): it is checked once the chunk is read.
        let bdat = matches!(command, Command::Bdat { .. });
        if !bdat && !self.pipelining() && !self.sync_point(false) {
            return;
        }
        let lmtp = self.config.mode == Mode::Lmtp;
        match command {
            Command::Helo { domain } | Command::Ehlo { domain } if lmtp => {
                let _ = domain;
                self.error(status(500, (5, 5, 1), "This is an LMTP server: use LHLO"));
            }
            Command::Lhlo { .. } if !lmtp => {
                self.error(status(500, (5, 5, 1), "Command unrecognized: LHLO"));
            }
            Command::Helo { domain } => {
                self.transaction = Transaction::default();
                self.greeted = Greeted::Helo;
                self.events.push_back(Event::Hello {
                    name: domain.clone(),
                    extended: false,
                });
                let text = format!("{} greets {domain}", self.config.hostname);
                write_reply(&mut self.output, 250, None, &[&text]);
            }
            Command::Ehlo { domain } | Command::Lhlo { domain } => {
                if !self.sync_point(false) {
                    return;
                }
                self.transaction = Transaction::default();
                self.greeted = Greeted::Ehlo;
                self.events.push_back(Event::Hello {
                    name: domain.clone(),
                    extended: true,
                });
                self.ehlo_reply(&domain);
            }
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(now),
            Command::Bdat { size, last } => self.bdat(size, last, now),
            Command::Rset => {
                self.transaction = Transaction::default();
                self.junk(status(250, (2, 0, 0), "OK"));
            }
            Command::Noop => self.junk(status(250, (2, 0, 0), "OK")),
            Command::Quit => {
                let text = format!("{} closing connection", self.config.hostname);
                self.reply(status(221, (2, 0, 0), &text));
                self.close();
            }
            Command::Vrfy(_) => self.junk(status(
                252,
                (2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Expn(_) => self.junk(status(502, (5, 5, 1), "EXPN not available")),
            Command::Help(_) => self.junk(status(
                214,
                (2, 0, 0),
                "See RFC 5321; mswitch supports the commands listed in the EHLO reply",
            )),
            Command::StartTls => {
                if !self.config.starttls || self.tls {
                    self.error(status(
                        if self.tls { 503 } else { 502 },
                        (5, 5, 1),
                        if self.tls {
                            "TLS already active"
                        } else {
                            "STARTTLS not available"
                        },
                    ));
                    return;
                }
                if self.greeted != Greeted::Ehlo {
                    self.error(status(503, (5, 5, 1), "Send EHLO first"));
                    return;
                }
                self.reply(status(220, (2, 0, 0), "Ready to start TLS"));
                // Anything the client sent after STARTTLS was sent in plaintext before the
                // handshake: never execute it (CVE-2011-0411 class).
                self.input.clear();
                self.pending = Some(Pending::Tls);
                self.events.push_back(Event::StartTls);
            }
            Command::Auth {
                mechanism,
                initial_response,
            } => self.auth(&mechanism, initial_response.as_deref()),
            #[allow(unreachable_patterns)]
            _ => self.error(status(502, (5, 5, 1), "Command not implemented")),
        }
    }

    fn ehlo_reply(&mut self, domain: &str) {
        let c = &self.config;
        let mut lines = vec![format!("{} greets {domain}", c.hostname)];
        if c.pipelining {
            lines.push("PIPELINING".into());
        }
        lines.push(format!("SIZE {}", c.max_message_size));
        lines.push("8BITMIME".into());
        lines.push("ENHANCEDSTATUSCODES".into());
        if c.smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        if c.dsn {
            lines.push("DSN".into());
        }
        if c.chunking {
            lines.push("CHUNKING".into());
            lines.push("BINARYMIME".into());
        }
        if let Some(profile) = &c.mt_priority {
            lines.push(format!("MT-PRIORITY {profile}"));
        }
        if c.starttls && !self.tls {
            lines.push("STARTTLS".into());
        }
        let mechanisms = self.usable_mechanisms();
        if !mechanisms.is_empty() && self.authenticated.is_none() {
            let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
            lines.push(format!("AUTH {}", names.join(" ")));
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        write_reply(&mut self.output, 250, None, &refs);
    }

    /// The mechanisms that may be used now: password mechanisms only under TLS (unless
    /// configured otherwise), EXTERNAL only with a TLS client identity.
    fn usable_mechanisms(&self) -> Vec<ServerMechanism> {
        let Some(auth) = &self.config.auth else {
            return Vec::new();
        };
        auth.mechanisms
            .iter()
            .copied()
            .filter(|m| match m {
                ServerMechanism::External => self.tls_client_identity.is_some(),
                m if m.needs_tls() => self.tls || auth.allow_plaintext,
                _ => true,
            })
            .collect()
    }

    fn auth(&mut self, mechanism: &str, initial_response: Option<&str>) {
        let Some(auth) = self.config.auth.clone() else {
            return self.error(status(502, (5, 5, 1), "AUTH not available"));
        };
        if self.greeted != Greeted::Ehlo {
            return self.error(status(503, (5, 5, 1), "Send EHLO first"));
        }
        if self.authenticated.is_some() {
            return self.error(status(503, (5, 5, 1), "Already authenticated"));
        }
        if self.transaction.from.is_some() {
            return self.error(status(
                503,
                (5, 5, 1),
                "AUTH not permitted during a mail transaction",
            ));
        }
        let Some(mech) =
            ServerMechanism::from_name(mechanism).filter(|m| auth.mechanisms.contains(m))
        else {
            return self.error(status(504, (5, 5, 4), "Unrecognized authentication type"));
        };
        if !self.usable_mechanisms().contains(&mech) {
            return self.error(if mech == ServerMechanism::External {
                status(535, (5, 7, 8), "No TLS client certificate for EXTERNAL")
            } else {
                // RFC 4954 §6.
                status(
                    538,
                    (5, 7, 11),
                    "Encryption required for requested authentication mechanism",
                )
            });
        }
        if let (Some(limiter), Some(client)) = (&auth.limiter, self.client)
            && let Err(throttled) = limiter.check_client(client, self.now)
        {
            self.events.push_back(Event::AuthFailed {
                mechanism: mech,
                authcid: None,
                throttled: Some(throttled),
            });
            return self.error(throttled.reply());
        }
        let nonce = if mech == ServerMechanism::ScramSha256 {
            match self.nonce() {
                Some(n) => n,
                None => {
                    return self.reply(status(454, (4, 7, 0), "Temporary authentication failure"));
                }
            }
        } else {
            String::new()
        };
        let attempt = Arc::new(Mutex::new(Attempt::default()));
        let credentials: Arc<dyn Credentials> = match &auth.limiter {
            Some(limiter) => Arc::new(Limited {
                inner: auth.credentials.clone(),
                limiter: limiter.clone(),
                now: self.now,
                attempt: attempt.clone(),
            }),
            None => auth.credentials.clone(),
        };
        let (exchange, step) = ServerExchange::start(
            mech,
            initial_response,
            credentials,
            &nonce,
            self.tls_client_identity.as_deref(),
        );
        self.auth_step(Box::new(exchange), attempt, step);
    }

    fn limiter(&self) -> Option<Arc<AuthLimiter>> {
        self.config.auth.as_ref().and_then(|a| a.limiter.clone())
    }

    fn auth_step(
        &mut self,
        exchange: Box<ServerExchange>,
        attempt: Arc<Mutex<Attempt>>,
        step: Step,
    ) {
        match step {
            Step::Challenge(c) => {
                write_reply(&mut self.output, 334, None, &[&c]);
                self.mode = Input::Auth(exchange, attempt);
            }
            Step::Success {
                authcid, authzid, ..
            } => {
                if let Some(limiter) = self.limiter() {
                    limiter.succeeded(&authcid);
                }
                self.authenticated = Some(authzid.clone().unwrap_or_else(|| authcid.clone()));
                self.events.push_back(Event::Authenticated {
                    mechanism: exchange.mechanism(),
                    authcid,
                    authzid,
                });
                self.reply(status(235, (2, 7, 0), "Authentication successful"));
            }
            Step::Failure(f) => self.auth_failed(Some((exchange.mechanism(), attempt)), f),
        }
    }

    /// A failed exchange; failed credentials count toward the session's limit and the
    /// limiter's (password guessing). A user the limiter refused gets 454 instead of 535.
    fn auth_failed(
        &mut self,
        exchange: Option<(ServerMechanism, Arc<Mutex<Attempt>>)>,
        failure: AuthFailure,
    ) {
        let reply = failure.reply();
        let credential_failure = reply.code == 535;
        let (mechanism, authcid, throttled) = match &exchange {
            Some((m, attempt)) => match attempt.lock() {
                Ok(a) => (Some(*m), a.authcid.clone(), a.throttled),
                Err(_) => (Some(*m), None, false),
            },
            None => (None, None, false),
        };
        if credential_failure && throttled {
            if let Some(mechanism) = mechanism {
                self.events.push_back(Event::AuthFailed {
                    mechanism,
                    authcid,
                    throttled: Some(Throttled::User),
                });
            }
            return self.error(Throttled::User.reply());
        }
        self.error(reply);
        if !credential_failure {
            return;
        }
        if let Some(limiter) = self.limiter() {
            limiter.failed(self.client, authcid.as_deref(), self.now);
        }
        if let Some(mechanism) = mechanism {
            self.events.push_back(Event::AuthFailed {
                mechanism,
                authcid,
                throttled: None,
            });
        }
        if !self.closed {
            self.auth_failures += 1;
            let limit = self
                .config
                .auth
                .as_ref()
                .map_or(1, |a| a.max_failures.max(1));
            if self.auth_failures >= limit {
                self.reply(status(
                    421,
                    (4, 7, 0),
                    "Too many failed authentication attempts, closing connection",
                ));
                self.close();
            }
        }
    }

    fn mail(&mut self, from: ReversePath, params: MailParams) {
        if self.greeted == Greeted::No {
            return self.error(status(503, (5, 5, 1), "Send HELO/EHLO first"));
        }
        if self.transaction.from.is_some() {
            return self.error(status(503, (5, 5, 1), "Nested MAIL command"));
        }
        if self.config.mode == Mode::Submission && self.authenticated.is_none() {
            return self.error(status(530, (5, 7, 0), "Authentication required"));
        }
        if let Some(size) = params.size
            && size > self.config.max_message_size
        {
            return self.reply(status(
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ));
        }
        if params.smtputf8 && !self.config.smtputf8 {
            return self.error(status(555, (5, 5, 4), "SMTPUTF8 not supported"));
        }
        let needs_utf8 = from.mailbox().is_some_and(|m| m.needs_smtputf8());
        if needs_utf8 && !params.smtputf8 {
            return self.reply(status(
                553,
                (5, 6, 7),
                "Non-ASCII address requires SMTPUTF8 (RFC 6531)",
            ));
        }
        if params.mt_priority.is_some() && self.config.mt_priority.is_none() {
            return self.error(status(555, (5, 5, 4), "MT-PRIORITY not supported"));
        }
        if (params.ret.is_some() || params.envid.is_some()) && !self.config.dsn {
            return self.error(status(555, (5, 5, 4), "DSN not supported"));
        }
        self.events.push_back(Event::Mail {
            from: from.clone(),
            params: params.clone(),
        });
        self.pending = Some(Pending::Mail { from, params });
    }

    fn rcpt(&mut self, to: ForwardPath, params: RcptParams) {
        let Some((_, mail)) = &self.transaction.from else {
            let refusal = status(503, (5, 5, 1), "Need MAIL before RCPT");
            return if self.transaction.mail_refused {
                self.reply(refusal)
            } else {
                self.error(refusal)
            };
        };
        if let ForwardPath::Mailbox(m) = &to
            && m.needs_smtputf8()
            && !mail.smtputf8
        {
            return self.reply(status(
                553,
                (5, 6, 7),
                "Non-ASCII address requires SMTPUTF8 (RFC 6531)",
            ));
        }
        if (params.notify.is_some() || params.orcpt.is_some()) && !self.config.dsn {
            return self.error(status(555, (5, 5, 4), "DSN not supported"));
        }
        if self.transaction.recipients.len() >= self.config.max_recipients.max(1) {
            return self.reply(status(452, (4, 5, 3), "Too many recipients"));
        }
        let rcpt = AcceptedRecipient { to, params };
        self.events.push_back(Event::Rcpt {
            to: rcpt.to.clone(),
            params: rcpt.params.clone(),
        });
        self.pending = Some(Pending::Rcpt(rcpt));
    }

    fn data(&mut self, now: Instant) {
        if let Some(refusal) = self.refuse_content_command(false) {
            return if self.transaction.mail_refused {
                self.reply(refusal)
            } else {
                self.error(refusal)
            };
        }
        if !self.sync_point(false) {
            return;
        }
        self.reply(status(354, (2, 0, 0), "End data with <CR><LF>.<CR><LF>"));
        self.transaction.content.clear();
        self.mode = Input::Data(Box::new(DataReader::new(DataLimits {
            max_message_size: self.config.max_message_size,
            bare_line_endings: self.config.bare_line_endings,
            ..DataLimits::default()
        })));
        self.transaction.content_deadline = self.config.data_time_limit.map(|l| now + l);
        self.arm(now);
    }

    fn bdat(&mut self, size: u64, last: bool, now: Instant) {
        if !self.config.chunking {
            return self.error(status(502, (5, 5, 1), "CHUNKING not available"));
        }
        if let Some(refusal) = self.refuse_content_command(true) {
            // The chunk's octets follow the command regardless: swallow them so the session
            // stays in step, then refuse.
            self.mode = Input::Bdat {
                reader: BdatReader::new(size, 0, 0),
                last,
                refused: true,
            };
            self.error(refusal);
            return;
        }
        self.transaction.chunked = true;
        let already = self.transaction.content.len() as u64;
        self.mode = Input::Bdat {
            reader: BdatReader::new(size, already, self.config.max_message_size),
            last,
            refused: false,
        };
        if self.transaction.content_deadline.is_none() {
            self.transaction.content_deadline = self.config.data_time_limit.map(|l| now + l);
        }
        self.arm(now);
    }

    /// Why DATA or BDAT cannot start now, if it cannot.
    fn refuse_content_command(&self, bdat: bool) -> Option<Status> {
        let t = &self.transaction;
        if t.from.is_none() {
            return Some(status(503, (5, 5, 1), "Need MAIL command"));
        }
        if t.recipients.is_empty() {
            return Some(if t.refused > 0 {
                status(554, (5, 5, 1), "No valid recipients")
            } else {
                status(503, (5, 5, 1), "Need RCPT command")
            });
        }
        if !bdat && t.chunked {
            return Some(status(503, (5, 5, 1), "DATA may not follow BDAT"));
        }
        None
    }

    fn end_of_chunk(&mut self, last: bool) {
        if !last {
            let text = format!("{} octets received", self.transaction.content.len());
            return self.reply(status(250, (2, 0, 0), &text));
        }
        if std::mem::take(&mut self.transaction.too_large) {
            return self.refuse_content(status(
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ));
        }
        self.deliver();
    }

    fn end_of_message(&mut self, outcome: DataOutcome) {
        if let Some(r) = outcome.reply() {
            return self.refuse_content(Status::new(r.code, r.enhanced, r.text));
        }
        self.deliver();
    }

    /// Refuses the content of the transaction: one reply, or for LMTP one per accepted
    /// recipient (RFC 2033 §4.2).
    fn refuse_content(&mut self, refusal: Status) {
        let replies = match self.config.mode {
            Mode::Lmtp => self.transaction.recipients.len().max(1),
            _ => 1,
        };
        for _ in 0..replies {
            self.reply(refusal.clone());
        }
        self.transaction = Transaction::default();
    }

    fn deliver(&mut self) {
        let Some((from, params)) = self.transaction.from.clone() else {
            return;
        };
        self.events.push_back(Event::Message {
            from,
            params,
            recipients: self.transaction.recipients.clone(),
            content: std::mem::take(&mut self.transaction.content),
        });
        self.pending = Some(Pending::Message);
    }
}

#[cfg(test)]
mod tests;
