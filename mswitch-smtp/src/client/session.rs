//! One client-side SMTP or LMTP session as a sans-IO state machine: it connects to nothing and
//! reads no clock. The driver owns the connection (and TLS) and feeds bytes, time and messages.
//!
//! # How a driver uses it
//! ```text
//! let mut c = ClientSession::new(config, now);           // waits for the 220 greeting
//! c.send(message, now)?;                                  // any time, even before the greeting
//! loop {
//!     while let Some(bytes) = c.poll_output() {
//!         write bytes to the socket (giving up at c.poll_timeout());
//!         c.handle_written(now);
//!     }
//!     while let Some(event) = c.poll_event() {
//!         match event {
//!             Event::StartTls => { run the TLS handshake on the connection, then
//!                                  c.tls_established(now) or c.tls_failed(why, now) }
//!             Event::Delivered { message, results } => record the outcome of each recipient
//!             Event::Ready => hand over the next message with c.send(..), or c.close(now)
//!             Event::Closed { reason } => write pending output, close the connection, stop
//!         }
//!     }
//!     read from the socket until c.poll_timeout(), then c.handle_input(&bytes, now);
//!     on end of stream c.handle_eof(now); when the deadline passes c.handle_timeout(now)
//! }
//! ```
//! Every message given to [`ClientSession::send`] gets exactly one [`Event::Delivered`], with
//! one [`RecipientResult`] per recipient in the order given, whatever happens to the session.
//!
//! # The session
//! 1. Wait for the greeting: 220 goes on; 421 ends the session at once; another 4yz / 5yz
//!    (typically 554, RFC 5321 §3.1) ends it after QUIT.
//! 2. EHLO (LHLO for LMTP); on 500 or 502 to EHLO, HELO (RFC 5321 §3.2; not for LMTP, whose
//!    servers must know LHLO, RFC 2033 §4.1). The EHLO reply is read with [`parse_ehlo`].
//! 3. STARTTLS (RFC 3207) when offered and [`TlsPolicy`] is not `None`: on 220 the session
//!    emits [`Event::StartTls`]; **every byte received after that 220 and before
//!    [`ClientSession::tls_established`] is discarded**, in the same read or a later one, so a
//!    reply injected in plaintext by a man in the middle can never be taken for the answer to
//!    a command sent under TLS (CVE-2021-38371 class). Then EHLO again; what the first EHLO
//!    reply announced is forgotten. A refused STARTTLS goes on in plaintext under
//!    `Opportunistic`.
//! 4. AUTH (RFC 4954) will go here, between the last EHLO and the first MAIL: the session
//!    already keeps the announced mechanisms ([`ClientSession::extensions`]); an
//!    `authenticate(..)` method will run the SASL exchange before the session turns `Ready`.
//!    Nothing of SASL is implemented yet.
//! 5. Transactions, one message at a time, in the order sent (below), then QUIT once
//!    [`ClientSession::close`] was called and the queue is empty; the session ends at the
//!    reply to QUIT, or at end of stream.
//!
//! # A transaction
//! - Checks made before MAIL (nothing is sent for a message that fails one): the size against
//!   the peer's SIZE (RFC 1870); 8-bit content needs 8BITMIME (RFC 6152, no conversion is
//!   done); `BODY=BINARYMIME` needs CHUNKING and BINARYMIME (RFC 3030 §3); an address or a
//!   message that needs SMTPUTF8 needs SMTPUTF8 (RFC 6531); `REQUIRETLS` needs TLS and the
//!   REQUIRETLS extension (RFC 8689).
//! - Parameters are sent only when the peer announced their extension: `SIZE=` (the size of the
//!   content with CRLF line endings, computed here; the caller's value is ignored), `BODY=`
//!   (`8BITMIME` for 8-bit content, or `BINARYMIME`; 7-bit content gets none), `SMTPUTF8`,
//!   `RET` / `ENVID` / `NOTIFY` / `ORCPT` (DSN), `MT-PRIORITY`, `AUTH=` (AUTH), `BY=`
//!   (DELIVERBY). DSN parameters dropped for want of DSN are reported per recipient
//!   ([`RecipientResult::relayed_without_dsn`]) so the queue can send "relayed" notices
//!   (RFC 3461 §4.1); the other dropped parameters are simply not relayed.
//! - With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go in one write and the replies are
//!   read in order; DATA is the last command of the group (§3.1). If every RCPT failed, DATA is
//!   refused and no content is sent (if a server says 354 anyway, a lone `.` ends the empty
//!   data and its reply is ignored). Without PIPELINING, one command at a time, and DATA only
//!   after a recipient was accepted.
//! - DATA content is written by the private `content` module: bare CR and bare LF become CRLF,
//!   lines starting with `.` are dot-stuffed, a final CRLF is added if missing, and the end is
//!   always `CRLF . CRLF`: nothing in the content can end the data early or smuggle a command.
//!   It is handed out in blocks of at most [`CONTENT_BLOCK_SIZE`] octets.
//! - With CHUNKING (RFC 3030), BDAT instead of DATA: after the RCPT replies (not pipelined with
//!   them, so nothing is sent when every recipient failed), chunks of at most
//!   [`BDAT_CHUNK_SIZE`] octets, each waiting for its reply, the last with `LAST`; the content
//!   is normalised the same way (no stuffing). A refused chunk ends the transaction
//!   (RFC 3030 §2: no more chunks).
//! - Outcomes: a refused RCPT gives that recipient the reply; a refused MAIL gives every
//!   recipient the MAIL reply; for SMTP the reply to DATA (if refused) or to the end of the
//!   data applies to every recipient accepted at RCPT; for LMTP there is one reply per accepted
//!   recipient after the data (RFC 2033 §4.2).
//! - Connection reuse: RSET is sent before the next MAIL only when the previous transaction did
//!   not end with the reply to the end of its data (a refused MAIL, every RCPT refused, DATA
//!   refused, a refused BDAT chunk): after a final reply the server has cleared its state
//!   (RFC 5321 §4.1.1.4), and an RSET would cost a round trip without PIPELINING. With
//!   PIPELINING it is sent in the same group as the next MAIL. An RSET that is not answered
//!   with 2yz ends the session.
//!
//! # Status codes generated here
//! A recipient's status comes from the peer's reply whenever there is one
//! ([`RecipientResult::from_peer`]); these are the ones made locally:
//!
//! | situation | status | source |
//! |---|---|---|
//! | message larger than the peer's SIZE | 552 5.3.4 | RFC 1870 (552 for a message over the fixed maximum); RFC 3463 X.3.4 "message too big for system" |
//! | 8-bit content, peer without 8BITMIME; BINARYMIME without CHUNKING + BINARYMIME | 554 5.6.3 | RFC 6152 §3 (convert or return as undeliverable); RFC 3463 X.6.3 "conversion required but not supported" |
//! | message needs SMTPUTF8, peer without it | 554 5.6.7 | RFC 6531 §3.2 (no downgrade here); RFC 6531 / RFC 5248 X.6.7 "non-ASCII addresses not permitted" |
//! | REQUIRETLS message, session without TLS or peer without REQUIRETLS | 554 5.7.30 | RFC 8689 §4.2.1, §5 "REQUIRETLS support required" |
//! | `TlsPolicy::Required`, STARTTLS not offered or refused (or only HELO) | 451 4.7.4 | RFC 3463 X.7.4 "security features not supported" (temporary: the peer may be fixed, another may offer it) |
//! | TLS handshake failed ([`ClientSession::tls_failed`]) | 451 4.7.5 | RFC 3463 X.7.5 "cryptographic failure" |
//! | no reply in time ([`Timeouts`]) | 451 4.4.2 | RFC 5321 §4.5.3.2; RFC 3463 X.4.2 "bad connection" |
//! | connection closed before the work was done | 451 4.4.2 | RFC 3463 X.4.2 |
//! | malformed reply, or a reply the protocol does not allow here | 451 4.5.0 | RFC 3463 X.5.0 "other or undefined protocol status"; the stream is out of step, so the session ends without QUIT |
//! | RSET not accepted | 451 4.5.0 | as above |
//!
//! A 421 reply at any point ends the session: every unfinished recipient, and every queued
//! message, gets that reply (a temporary failure, RFC 5321 §3.8). The same goes for a timeout,
//! end of stream or a malformed reply, with the local status above. A refused greeting, EHLO or
//! HELO (other than 421) gives every message the peer's reply, permanent or not: the queue
//! decides whether to try another host.
//!
//! # Timeouts
//! RFC 5321 §4.5.3.2 values by default ([`Timeouts`]); the clock for a reply starts when the
//! command was produced, and again at each [`ClientSession::handle_written`], so a driver that
//! reports its writes never has a slow write eat the time allowed for the reply. While DATA
//! content is being handed out the data block timeout applies, then the DATA termination
//! timeout. Commands RFC 5321 gives no timeout (EHLO, STARTTLS, RSET, QUIT) and the TLS
//! handshake get [`Timeouts::command`].
//!
//! [`parse_ehlo`]: crate::proto::reply::parse_ehlo

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mswitch_core::envelope::{BodyType, ReversePath};
use mswitch_core::status::Status;

use crate::client::content::{self, ContentEncoder, Encoding};
use crate::proto::command::{Command, ForwardPath, MailParams, RcptParams, write_command};
use crate::proto::reply::{Extensions, Reply, ReplyParser, parse_ehlo};
use crate::sasl::{ClientExchange, ClientMechanism};

/// Time allowed for the 220 greeting (RFC 5321 §4.5.3.2.1: 5 minutes).
pub const DEFAULT_GREETING_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Time allowed for the reply to MAIL (RFC 5321 §4.5.3.2.2: 5 minutes).
pub const DEFAULT_MAIL_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Time allowed for the reply to each RCPT (RFC 5321 §4.5.3.2.3: 5 minutes).
pub const DEFAULT_RCPT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Time allowed for the 354 reply to DATA (RFC 5321 §4.5.3.2.4: 2 minutes).
pub const DEFAULT_DATA_INITIATION_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// Time allowed for each block of content to be written, and for the reply to a BDAT chunk
/// other than the last (RFC 5321 §4.5.3.2.5: 3 minutes).
pub const DEFAULT_DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(3 * 60);
/// Time allowed for the reply to the end of the data, `.` or `BDAT .. LAST` (RFC 5321
/// §4.5.3.2.6: 10 minutes).
pub const DEFAULT_DATA_TERMINATION_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Time allowed for the reply to a command RFC 5321 gives no timeout (EHLO, HELO, LHLO,
/// STARTTLS, RSET, QUIT), and for the TLS handshake: 5 minutes, as for MAIL.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Most octets of DATA content handed out by one [`ClientSession::poll_output`] call (a
/// stuffed dot and the end of data may add up to 6 more).
pub const CONTENT_BLOCK_SIZE: usize = 64 * 1024;
/// Most octets in one BDAT chunk.
pub const BDAT_CHUNK_SIZE: usize = 1024 * 1024;

/// A status made here rather than received: reply code and enhanced status code.
#[derive(Debug, Clone, Copy)]
struct LocalStatus(u16, (u8, u16, u16));

impl LocalStatus {
    fn with(self, text: impl Into<String>) -> Status {
        Status::new(self.0, self.1, text)
    }
}

/// Larger than the peer's SIZE (RFC 1870; RFC 3463 X.3.4).
const TOO_BIG: LocalStatus = LocalStatus(552, (5, 3, 4));
/// 8-bit or binary content the peer cannot take (RFC 6152 §3; RFC 3463 X.6.3).
const CONVERSION_REQUIRED: LocalStatus = LocalStatus(554, (5, 6, 3));
/// SMTPUTF8 needed, not offered (RFC 6531 §3.2; X.6.7).
const SMTPUTF8_REQUIRED: LocalStatus = LocalStatus(554, (5, 6, 7));
/// REQUIRETLS needed, not available (RFC 8689 §5).
const REQUIRETLS_REQUIRED: LocalStatus = LocalStatus(554, (5, 7, 30));
/// TLS required by policy, not available (RFC 3463 X.7.4).
const TLS_UNAVAILABLE: LocalStatus = LocalStatus(451, (4, 7, 4));
/// The TLS handshake failed (RFC 3463 X.7.5).
const TLS_FAILED: LocalStatus = LocalStatus(451, (4, 7, 5));
/// Timeout, or the connection went away (RFC 3463 X.4.2).
const BAD_CONNECTION: LocalStatus = LocalStatus(451, (4, 4, 2));
/// The peer broke the protocol (RFC 3463 X.5.0).
const PROTOCOL_ERROR: LocalStatus = LocalStatus(451, (4, 5, 0));
/// Authentication to the peer failed or was impossible (RFC 3463 X.7.8 / X.7.0). Temporary:
/// credentials are the operator's to fix, the messages wait (as Postfix defers them).
const AUTH_FAILED: LocalStatus = LocalStatus(451, (4, 7, 8));

/// Which protocol the session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// SMTP (RFC 5321): EHLO, with HELO as fallback.
    #[default]
    Smtp,
    /// LMTP (RFC 2033): LHLO, and one reply per recipient after the data.
    Lmtp,
}

/// Whether to use STARTTLS (RFC 3207).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// Never, even when offered.
    None,
    /// When offered; go on in plaintext when not offered or refused. The default.
    #[default]
    Opportunistic,
    /// TLS or nothing: every message fails temporarily (451 4.7.4) when the peer does not
    /// offer STARTTLS or refuses it.
    Required,
}

/// How long to wait for each reply (RFC 5321 §4.5.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For the greeting. Default [`DEFAULT_GREETING_TIMEOUT`].
    pub greeting: Duration,
    /// For the reply to MAIL. Default [`DEFAULT_MAIL_TIMEOUT`].
    pub mail: Duration,
    /// For the reply to each RCPT. Default [`DEFAULT_RCPT_TIMEOUT`].
    pub rcpt: Duration,
    /// For the 354 reply to DATA. Default [`DEFAULT_DATA_INITIATION_TIMEOUT`].
    pub data_initiation: Duration,
    /// For each block of content, and the reply to a BDAT chunk that is not the last.
    /// Default [`DEFAULT_DATA_BLOCK_TIMEOUT`].
    pub data_block: Duration,
    /// For the reply to the end of the data. Default [`DEFAULT_DATA_TERMINATION_TIMEOUT`].
    pub data_termination: Duration,
    /// For EHLO, HELO, LHLO, STARTTLS, RSET, QUIT and the TLS handshake. Default
    /// [`DEFAULT_COMMAND_TIMEOUT`].
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            greeting: DEFAULT_GREETING_TIMEOUT,
            mail: DEFAULT_MAIL_TIMEOUT,
            rcpt: DEFAULT_RCPT_TIMEOUT,
            data_initiation: DEFAULT_DATA_INITIATION_TIMEOUT,
            data_block: DEFAULT_DATA_BLOCK_TIMEOUT,
            data_termination: DEFAULT_DATA_TERMINATION_TIMEOUT,
            command: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

/// How the session behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Our name, given in EHLO / LHLO / HELO (a domain or an address literal).
    pub hostname: String,
    /// SMTP or LMTP.
    pub mode: Mode,
    /// Whether to use STARTTLS.
    pub tls: TlsPolicy,
    /// How long to wait for each reply.
    pub timeouts: Timeouts,
    /// Authenticate to the peer (SMTP AUTH, RFC 4954) with these credentials.
    pub auth: Option<ClientAuth>,
}

/// Credentials for SMTP AUTH to a peer (a smarthost, a submission server).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// The user name.
    pub authcid: String,
    /// The password.
    pub password: String,
    /// The identity to act as, if not `authcid`.
    pub authzid: Option<String>,
    /// Authenticate without TLS too. Off by default: credentials are never sent in clear.
    pub allow_plaintext: bool,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("authcid", &self.authcid)
            .field("authzid", &self.authzid)
            .field("allow_plaintext", &self.allow_plaintext)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// `mode` with opportunistic TLS and the RFC 5321 timeouts.
    pub fn new(hostname: impl Into<String>, mode: Mode) -> Self {
        ClientConfig {
            hostname: hostname.into(),
            mode,
            tls: TlsPolicy::default(),
            timeouts: Timeouts::default(),
            auth: None,
        }
    }
}

/// A message to relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The reverse-path for MAIL.
    pub from: ReversePath,
    /// MAIL parameters. `size` is ignored (computed from the content); the others are sent
    /// when the peer announced their extension (see the [module documentation](self)).
    /// `body: Some(BinaryMime)` sends the content verbatim with BDAT.
    pub mail_params: MailParams,
    /// The recipients and their RCPT parameters, in order.
    pub recipients: Vec<(ForwardPath, RcptParams)>,
    /// The RFC 5322 message, with CRLF line endings (bare CR and LF are sent as CRLF).
    pub content: Arc<[u8]>,
    /// The content is 8-bit (needs 8BITMIME). The content is also checked: any octet over
    /// 127 makes it 8-bit whatever this says.
    pub eight_bit: bool,
    /// The message needs SMTPUTF8 (UTF-8 header fields). Non-ASCII addresses in the envelope
    /// need it too, whatever this says.
    pub smtputf8: bool,
}

/// What became of a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The peer took responsibility for the message (2yz).
    Accepted,
    /// Not delivered; trying again later may succeed (4yz, and anything but 2yz and 5yz).
    TemporaryFailure,
    /// Not delivered; do not try again as is (5yz).
    PermanentFailure,
}

impl Outcome {
    /// The outcome a status stands for, from its reply code.
    pub fn of(status: &Status) -> Self {
        match status.code {
            200..=299 => Outcome::Accepted,
            500..=599 => Outcome::PermanentFailure,
            _ => Outcome::TemporaryFailure,
        }
    }
}

/// Where in the session a recipient's status was decided (for a notification's "in reply to
/// ... command").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Before the transaction: the greeting, EHLO / HELO / LHLO, STARTTLS, TLS, RSET, or a
    /// check made here before MAIL.
    Session,
    /// The reply to MAIL.
    Mail,
    /// The reply to this recipient's RCPT.
    Rcpt,
    /// The reply to the DATA command.
    Data,
    /// The reply to the end of the data (or to a BDAT chunk), or while sending the content.
    Content,
}

/// The result for one recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientResult {
    /// The recipient, as given to [`ClientSession::send`].
    pub recipient: ForwardPath,
    /// Accepted, temporary or permanent failure (from `status`).
    pub outcome: Outcome,
    /// The peer's reply, or a status made here (see `from_peer`).
    pub status: Status,
    /// Where the status was decided.
    pub stage: Stage,
    /// `status` is the peer's reply (false: made here, see the module documentation).
    pub from_peer: bool,
    /// The peer does not offer DSN, so the DSN parameters of this recipient or of its message
    /// (NOTIFY, ORCPT, RET, ENVID) were not sent: if the recipient was accepted, the message
    /// was relayed to a system that will not send notifications (RFC 3461 §4.1: a "relayed"
    /// notice is owed when NOTIFY asked for SUCCESS).
    pub relayed_without_dsn: bool,
}

/// Why the session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// We asked ([`ClientSession::close`]): QUIT was answered or the peer closed.
    Quit,
    /// The peer sent 421 (service not available, closing the channel).
    ServiceClosing(Status),
    /// The peer refused the greeting, EHLO / LHLO or HELO (other than with 421).
    Refused(Status),
    /// TLS was required and the peer does not offer it or refused STARTTLS.
    TlsUnavailable(Status),
    /// The TLS handshake failed.
    TlsFailed(Status),
    /// No reply in time.
    Timeout(Status),
    /// The connection was closed before the work was done.
    ConnectionLost(Status),
    /// The peer sent a malformed reply, or one the protocol does not allow at that point.
    ProtocolError(Status),
}

impl CloseReason {
    /// The status given to unfinished recipients, if the session ended on a failure.
    pub fn status(&self) -> Option<&Status> {
        match self {
            CloseReason::Quit => None,
            CloseReason::ServiceClosing(s)
            | CloseReason::Refused(s)
            | CloseReason::TlsUnavailable(s)
            | CloseReason::TlsFailed(s)
            | CloseReason::Timeout(s)
            | CloseReason::ConnectionLost(s)
            | CloseReason::ProtocolError(s) => Some(s),
        }
    }
}

/// What the session tells the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer said go ahead to STARTTLS: write any pending output, run the TLS handshake,
    /// then call [`ClientSession::tls_established`] (or [`ClientSession::tls_failed`]).
    StartTls,
    /// The session is idle: every message sent so far has its [`Event::Delivered`], and it
    /// can take another with [`ClientSession::send`] (or be closed).
    Ready,
    /// A message is done with.
    Delivered {
        /// The index [`ClientSession::send`] returned for it.
        message: usize,
        /// One result per recipient, in the order given.
        results: Vec<RecipientResult>,
    },
    /// The session is over: write any pending output and close the connection.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// Misuse of the session API by the driver (a bug in the driver, not the peer's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// [`ClientSession::send`] after [`ClientSession::close`] or the end of the session: the
    /// message was not taken, and stays the caller's.
    #[error("the session is closed or closing")]
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the greeting.
    Greeting,
    /// EHLO / LHLO / HELO sent.
    Hello,
    /// STARTTLS sent.
    StartTls,
    /// STARTTLS answered with 220: the driver runs the handshake; input is discarded.
    Handshake,
    /// In a SASL exchange (AUTH sent).
    Auth,
    /// Greeted: transactions run, or the session is idle.
    Open,
    /// QUIT sent, or about to be.
    Quitting,
    /// Over.
    Closed,
}

/// A reply the session waits for, in the order the commands were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    /// The reply to AUTH or to a SASL response.
    Auth,
    Rset,
    Mail,
    Rcpt(usize),
    Data,
    /// The reply to the end of the DATA content (SMTP).
    DataEnd,
    /// The reply to a BDAT chunk; for `last`, the final reply (SMTP).
    Bdat {
        last: bool,
    },
    /// LMTP: the reply, after the data, for the recipient at this index.
    LmtpRcpt(usize),
    Quit,
}

impl Expect {
    fn stage(self) -> Stage {
        match self {
            Expect::Mail => Stage::Mail,
            Expect::Rcpt(_) => Stage::Rcpt,
            Expect::Data => Stage::Data,
            Expect::DataEnd | Expect::Bdat { .. } | Expect::LmtpRcpt(_) => Stage::Content,
            _ => Stage::Session,
        }
    }
}

/// A message waiting for its turn, with what was learned of it in `send`.
#[derive(Debug)]
struct Queued {
    index: usize,
    msg: OutgoingMessage,
    /// Size of the content as SIZE counts it.
    size: u64,
    eight_bit: bool,
    binary: bool,
    smtputf8: bool,
}

/// The message being relayed.
#[derive(Debug)]
struct Transaction {
    index: usize,
    msg: OutgoingMessage,
    /// The MAIL parameters to send.
    mail: MailParams,
    encoding: Encoding,
    results: Vec<Option<RecipientResult>>,
    /// Per recipient: DSN parameters were dropped.
    dsn_dropped: Vec<bool>,
    /// Indexes of the recipients accepted at RCPT, in order.
    accepted: Vec<usize>,
    mail_sent: bool,
    mail_failed: bool,
    /// RCPT commands sent so far.
    rcpts_sent: usize,
    rcpt_replies: usize,
    data_sent: bool,
    /// 354 came with nothing to send: only the end of data went out; its reply is ignored.
    discard_data_reply: bool,
    /// The BDAT chunks still to send.
    chunks: Option<ContentEncoder>,
    /// The transaction ended with the reply to the end of its data: no RSET needed.
    clean: bool,
}

impl Transaction {
    fn result(&self, i: usize, status: Status, stage: Stage, from_peer: bool) -> RecipientResult {
        RecipientResult {
            recipient: self.msg.recipients[i].0.clone(),
            outcome: Outcome::of(&status),
            status,
            stage,
            from_peer,
            relayed_without_dsn: self.dsn_dropped.get(i).copied().unwrap_or(false),
        }
    }

    /// Gives `status` to every recipient without a result.
    fn fail_unfinished(&mut self, status: &Status, stage: Stage, from_peer: bool) {
        for i in 0..self.results.len() {
            if self.results[i].is_none() {
                self.results[i] = Some(self.result(i, status.clone(), stage, from_peer));
            }
        }
    }

    /// Gives `status` to every recipient accepted at RCPT that has no result yet.
    fn settle_accepted(&mut self, status: &Status, stage: Stage) {
        for k in 0..self.accepted.len() {
            let i = self.accepted[k];
            if self.results[i].is_none() {
                self.results[i] = Some(self.result(i, status.clone(), stage, true));
            }
        }
    }

    fn is_settled(&self) -> bool {
        self.results.iter().all(Option::is_some)
    }
}

/// The same status for every recipient of a message that was never started.
fn uniform_results(
    msg: &OutgoingMessage,
    status: &Status,
    stage: Stage,
    from_peer: bool,
) -> Vec<RecipientResult> {
    msg.recipients
        .iter()
        .map(|(to, _)| RecipientResult {
            recipient: to.clone(),
            outcome: Outcome::of(status),
            status: status.clone(),
            stage,
            from_peer,
            relayed_without_dsn: false,
        })
        .collect()
}

/// The client side of one session. See the [module documentation](self).
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    phase: Phase,
    parser: ReplyParser,
    /// Commands (and BDAT chunks) to send.
    output: Vec<u8>,
    /// DATA content being handed out, after 354.
    content: Option<ContentEncoder>,
    events: VecDeque<Event>,
    /// Replies outstanding, oldest first.
    expect: VecDeque<Expect>,
    queue: VecDeque<Queued>,
    tx: Option<Transaction>,
    extensions: Extensions,
    tls: bool,
    /// The last transaction left the server's state open: RSET before the next MAIL.
    needs_rset: bool,
    /// `close` was called: QUIT once the queue is empty.
    closing: bool,
    /// Why the session is ending, while QUIT is outstanding.
    failure: Option<CloseReason>,
    ready_announced: bool,
    next_index: usize,
    /// The latest time the driver gave.
    now: Instant,
    /// When the wait for the next reply (or the current write) began.
    timer_start: Instant,
    /// Octets received after STARTTLS's 220 and thrown away.
    discarded: u64,
    /// The SASL exchange in progress.
    sasl: Option<ClientExchange>,
    authenticated: bool,
    entropy: Option<[u8; 32]>,
    nonces: u64,
}

impl ClientSession {
    /// A session on a new connection; it waits for the greeting.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        ClientSession {
            config,
            phase: Phase::Greeting,
            parser: ReplyParser::new(),
            output: Vec::new(),
            content: None,
            events: VecDeque::new(),
            expect: VecDeque::from([Expect::Greeting]),
            queue: VecDeque::new(),
            tx: None,
            extensions: Extensions::default(),
            tls: false,
            needs_rset: false,
            closing: false,
            failure: None,
            ready_announced: false,
            next_index: 0,
            now,
            timer_start: now,
            discarded: 0,
            sasl: None,
            authenticated: false,
            entropy: None,
            nonces: 0,
        }
    }

    /// Random bytes from the driver (the OS generator) for the SCRAM client nonce. Without
    /// them SCRAM-SHA-256 is not used (PLAIN or LOGIN may be, under TLS).
    pub fn set_entropy(&mut self, seed: [u8; 32]) {
        self.entropy = Some(seed);
    }

    /// Whether the session authenticated to the peer.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The extensions the peer announced in its last EHLO / LHLO reply (none after HELO, or
    /// before the reply).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Whether TLS is active ([`ClientSession::tls_established`] was called).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the session is over ([`Event::Closed`] was emitted).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Octets received after the 220 reply to STARTTLS and before the handshake, which were
    /// discarded (anything but 0 means the peer, or someone on the path, sent what it should
    /// not have: worth a log line).
    pub fn discarded_after_starttls(&self) -> u64 {
        self.discarded
    }

    /// Queues a message; returns its index, which its [`Event::Delivered`] carries. Messages go
    /// in the order sent, each once the session is ready for it.
    pub fn send(&mut self, msg: OutgoingMessage, now: Instant) -> Result<usize, UsageError> {
        if self.closing || matches!(self.phase, Phase::Quitting | Phase::Closed) {
            return Err(UsageError::Closed);
        }
        self.now = now;
        let index = self.next_index;
        self.next_index += 1;
        let body = msg.mail_params.body;
        let binary = body == Some(BodyType::BinaryMime);
        let eight_bit = msg.eight_bit
            || body == Some(BodyType::EightBitMime)
            || content::has_eight_bit(&msg.content);
        let smtputf8 = msg.smtputf8
            || msg.mail_params.smtputf8
            || msg.from.mailbox().is_some_and(|m| m.needs_smtputf8())
            || msg.recipients.iter().any(|(to, _)| to.needs_smtputf8());
        let size = content::message_size(&msg.content, binary);
        self.queue.push_back(Queued {
            index,
            msg,
            size,
            eight_bit,
            binary,
            smtputf8,
        });
        if self.phase == Phase::Open && self.tx.is_none() {
            self.advance();
        }
        Ok(index)
    }

    /// Ends the session once every queued message is done: QUIT, then [`Event::Closed`] at its
    /// reply (or at end of stream). Later [`ClientSession::send`] calls are refused.
    pub fn close(&mut self, now: Instant) {
        if self.closing || matches!(self.phase, Phase::Quitting | Phase::Closed) {
            return;
        }
        self.now = now;
        self.closing = true;
        if self.phase == Phase::Open && self.tx.is_none() {
            self.advance();
        }
    }

    /// Bytes to send, if any: commands first, then DATA content in blocks.
    pub fn poll_output(&mut self) -> Option<Vec<u8>> {
        if !self.output.is_empty() {
            return Some(std::mem::take(&mut self.output));
        }
        let encoder = self.content.as_mut()?;
        let mut block = Vec::with_capacity(CONTENT_BLOCK_SIZE + 8);
        if encoder.write_block(CONTENT_BLOCK_SIZE, &mut block) {
            self.content = None;
            self.expect_final();
        }
        Some(block)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`ClientSession::handle_timeout`] must be called if nothing arrives: the deadline
    /// of the reply waited for, of the content being written, or of the TLS handshake. `None`
    /// when idle or closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = &self.config.timeouts;
        let wait = match self.phase {
            Phase::Closed => return None,
            Phase::Handshake => t.command,
            _ if self.content.is_some() => t.data_block,
            _ => match self.expect.front()? {
                Expect::Greeting => t.greeting,
                Expect::Mail => t.mail,
                Expect::Rcpt(_) => t.rcpt,
                Expect::Data => t.data_initiation,
                Expect::Bdat { last: false } => t.data_block,
                Expect::DataEnd | Expect::Bdat { last: true } | Expect::LmtpRcpt(_) => {
                    t.data_termination
                }
                Expect::Ehlo
                | Expect::Helo
                | Expect::StartTls
                | Expect::Auth
                | Expect::Rset
                | Expect::Quit => t.command,
            },
        };
        Some(self.timer_start + wait)
    }

    /// The driver finished writing what [`ClientSession::poll_output`] gave, at `now`: the time
    /// allowed for the next block, or for the reply, starts again.
    pub fn handle_written(&mut self, now: Instant) {
        if self.phase != Phase::Closed {
            self.now = now;
            self.timer_start = now;
        }
    }

    /// Feeds bytes received from the peer.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.now = now;
        let mut pos = 0;
        while pos < bytes.len() {
            match self.phase {
                Phase::Closed => return,
                Phase::Handshake => {
                    // Sent in plaintext after the 220 to STARTTLS: never a reply
                    // (CVE-2021-38371 class).
                    self.discarded += (bytes.len() - pos) as u64;
                    return;
                }
                _ => {}
            }
            match self.parser.feed(&bytes[pos..]) {
                Err(_) if self.phase == Phase::Quitting => {
                    // Whatever answers QUIT ends the session; keep the reason it was ending.
                    self.finish_close();
                    return;
                }
                Err(e) => {
                    let status = PROTOCOL_ERROR.with(format!("malformed reply from the peer: {e}"));
                    self.protocol_error(status);
                    return;
                }
                Ok((consumed, reply)) => {
                    pos += consumed;
                    match reply {
                        Some(reply) => self.on_reply(reply),
                        None => return,
                    }
                }
            }
        }
    }

    /// The peer closed the connection (end of stream).
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        match self.phase {
            Phase::Closed => {}
            Phase::Quitting => self.finish_close(),
            _ => {
                let stage = self.current_stage();
                let status = BAD_CONNECTION.with(format!(
                    "connection closed by the peer while waiting for {}",
                    self.waiting_for()
                ));
                self.fail_session(status.clone(), stage, false);
                self.end(CloseReason::ConnectionLost(status));
            }
        }
    }

    /// The deadline from [`ClientSession::poll_timeout`] passed (calls before it are ignored).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        self.now = now;
        if self.phase == Phase::Quitting {
            self.finish_close();
            return;
        }
        let stage = self.current_stage();
        let status = BAD_CONNECTION.with(format!("timeout waiting for {}", self.waiting_for()));
        self.fail_session(status.clone(), stage, false);
        self.end(CloseReason::Timeout(status));
    }

    /// The TLS handshake after [`Event::StartTls`] succeeded: the session greets the peer
    /// again (RFC 3207 §4.2) and forgets what it announced before. Ignored at any other time.
    pub fn tls_established(&mut self, now: Instant) {
        if self.phase != Phase::Handshake {
            return;
        }
        self.now = now;
        self.tls = true;
        self.parser = ReplyParser::new();
        self.extensions = Extensions::default();
        self.send_hello();
    }

    /// The TLS handshake after [`Event::StartTls`] failed (`why` goes into the status text):
    /// the connection cannot be used any more, so the session ends and every message fails
    /// temporarily (451 4.7.5). Ignored at any other time.
    pub fn tls_failed(&mut self, why: &str, now: Instant) {
        if self.phase != Phase::Handshake {
            return;
        }
        self.now = now;
        let status = TLS_FAILED.with(format!("TLS handshake failed: {why}"));
        self.fail_session(status.clone(), Stage::Session, false);
        self.end(CloseReason::TlsFailed(status));
    }

    // ---- replies ----

    fn on_reply(&mut self, reply: Reply) {
        self.timer_start = self.now;
        if self.phase == Phase::Quitting {
            // The reply to QUIT, whatever it is.
            self.finish_close();
            return;
        }
        let status = reply.status();
        if reply.code == 421 {
            // RFC 5321 §3.8: the server is closing the channel; no QUIT.
            let stage = self.current_stage();
            self.fail_session(status.clone(), stage, true);
            self.end(CloseReason::ServiceClosing(status));
            return;
        }
        let Some(expect) = self.expect.pop_front() else {
            let status = PROTOCOL_ERROR.with(format!(
                "reply with no command outstanding: {}",
                reply.status()
            ));
            return self.protocol_error(status);
        };
        let negative = reply.is_transient() || reply.is_permanent();
        match expect {
            Expect::Greeting => match reply.code {
                220 => self.send_hello(),
                _ if negative => self.refused(status),
                _ => self.unexpected(expect, &reply),
            },
            Expect::Ehlo => match reply.code {
                200..=299 => {
                    self.extensions = parse_ehlo(&reply);
                    self.after_hello();
                }
                500 | 502 if self.config.mode == Mode::Smtp => {
                    let domain = self.config.hostname.clone();
                    self.write(&Command::Helo { domain }, Expect::Helo);
                }
                _ if negative => self.refused(status),
                _ => self.unexpected(expect, &reply),
            },
            Expect::Helo => match reply.code {
                200..=299 => {
                    self.extensions = Extensions::default();
                    self.after_hello();
                }
                _ if negative => self.refused(status),
                _ => self.unexpected(expect, &reply),
            },
            Expect::StartTls => match reply.code {
                220 => {
                    self.phase = Phase::Handshake;
                    self.events.push_back(Event::StartTls);
                }
                _ if negative && self.config.tls == TlsPolicy::Required => {
                    self.tls_unavailable(format!("STARTTLS refused: {status}"));
                }
                _ if negative => self.open(),
                _ => self.unexpected(expect, &reply),
            },
            Expect::Quit => self.finish_close(),
            Expect::Auth => self.auth_reply(&reply),
            Expect::Rset => match reply.code {
                200..=299 => {
                    let started = self.tx.as_ref().is_some_and(|tx| tx.mail_sent);
                    if !started {
                        self.send_envelope();
                    }
                }
                _ => {
                    let status = PROTOCOL_ERROR.with(format!("RSET refused: {status}"));
                    self.protocol_error(status);
                }
            },
            Expect::Mail
            | Expect::Rcpt(_)
            | Expect::Data
            | Expect::DataEnd
            | Expect::Bdat { .. }
            | Expect::LmtpRcpt(_) => self.transaction_reply(expect, &reply),
        }
    }

    fn transaction_reply(&mut self, expect: Expect, reply: &Reply) {
        let Some(mut tx) = self.tx.take() else {
            let status = PROTOCOL_ERROR.with("reply with no transaction open");
            return self.protocol_error(status);
        };
        let status = reply.status();
        let ok = (200..300).contains(&reply.code);
        let negative = reply.is_transient() || reply.is_permanent();
        let pipelining = self.extensions.pipelining();
        match expect {
            Expect::Mail if ok => {
                if !pipelining {
                    self.send_rcpt(&mut tx);
                }
            }
            Expect::Mail if negative => {
                tx.mail_failed = true;
                for i in 0..tx.results.len() {
                    tx.results[i] = Some(tx.result(i, status.clone(), Stage::Mail, true));
                }
            }
            Expect::Rcpt(i) if ok || negative => {
                tx.rcpt_replies += 1;
                if !tx.mail_failed {
                    if ok {
                        tx.accepted.push(i);
                    } else {
                        tx.results[i] = Some(tx.result(i, status, Stage::Rcpt, true));
                    }
                }
                if tx.rcpt_replies == tx.results.len() {
                    self.after_rcpts(&mut tx);
                } else if !pipelining {
                    self.send_rcpt(&mut tx);
                }
            }
            Expect::Data if reply.code == 354 => {
                if tx.mail_failed || tx.accepted.is_empty() {
                    // RFC 2920 §3.1: end the (empty) data; the reply means nothing.
                    tx.discard_data_reply = true;
                    self.output.extend_from_slice(b".\r\n");
                    self.expect.push_back(Expect::DataEnd);
                } else {
                    self.content = Some(ContentEncoder::new(
                        Arc::clone(&tx.msg.content),
                        Encoding::Data,
                    ));
                }
            }
            Expect::Data if negative => {
                if !tx.mail_failed {
                    tx.settle_accepted(&status, Stage::Data);
                }
            }
            Expect::DataEnd | Expect::Bdat { last: true } if ok || negative => {
                if !tx.discard_data_reply {
                    tx.settle_accepted(&status, Stage::Content);
                }
                tx.clean = true;
            }
            Expect::Bdat { last: false } if ok => self.send_chunk(&mut tx),
            Expect::Bdat { last: false } if negative => {
                // RFC 3030 §2: the transaction failed; no more chunks.
                tx.chunks = None;
                tx.settle_accepted(&status, Stage::Content);
            }
            Expect::LmtpRcpt(i) if ok || negative => {
                tx.results[i] = Some(tx.result(i, status, Stage::Content, true));
                if !self.expect.iter().any(|e| matches!(e, Expect::LmtpRcpt(_))) {
                    tx.clean = true;
                }
            }
            _ => {
                self.tx = Some(tx);
                return self.unexpected(expect, reply);
            }
        }
        self.tx = Some(tx);
        self.check_finished();
    }

    // ---- greeting, EHLO, STARTTLS ----

    fn send_hello(&mut self) {
        let domain = self.config.hostname.clone();
        let command = match self.config.mode {
            Mode::Lmtp => Command::Lhlo { domain },
            Mode::Smtp => Command::Ehlo { domain },
        };
        self.phase = Phase::Hello;
        self.write(&command, Expect::Ehlo);
    }

    fn after_hello(&mut self) {
        let policy = self.config.tls;
        if !self.tls && policy != TlsPolicy::None && self.extensions.starttls() {
            self.phase = Phase::StartTls;
            self.write(&Command::StartTls, Expect::StartTls);
        } else if !self.tls && policy == TlsPolicy::Required {
            self.tls_unavailable("the peer does not offer STARTTLS".into());
        } else if self.config.auth.is_some() && !self.authenticated {
            self.start_auth();
        } else {
            self.open();
        }
    }

    /// Starts SMTP AUTH with the best mechanism both sides have (SCRAM first).
    fn start_auth(&mut self) {
        let Some(auth) = self.config.auth.clone() else {
            return self.open();
        };
        if !self.tls && !auth.allow_plaintext {
            return self.auth_failed("credentials are not sent without TLS".into());
        }
        let offered = self.extensions.auth_mechanisms();
        let usable: Vec<&str> = offered
            .iter()
            .map(String::as_str)
            .filter(|m| self.entropy.is_some() || !m.eq_ignore_ascii_case("SCRAM-SHA-256"))
            .collect();
        let Some(mechanism) = ClientMechanism::choose(usable.iter().copied()) else {
            return self.auth_failed(format!(
                "no authentication mechanism in common (the peer offers: {})",
                if offered.is_empty() {
                    "none".to_owned()
                } else {
                    offered.join(" ")
                }
            ));
        };
        let nonce = self.nonce().unwrap_or_default();
        match ClientExchange::start(
            mechanism,
            &auth.authcid,
            &auth.password,
            auth.authzid.as_deref(),
            &nonce,
        ) {
            Ok((exchange, initial)) => {
                self.sasl = Some(exchange);
                self.phase = Phase::Auth;
                let command = Command::Auth {
                    mechanism: mechanism.name().to_owned(),
                    initial_response: initial,
                };
                self.write(&command, Expect::Auth);
            }
            Err(e) => self.auth_failed(format!("cannot start {}: {e}", mechanism.name())),
        }
    }

    fn auth_reply(&mut self, reply: &Reply) {
        let Some(mut exchange) = self.sasl.take() else {
            return self.protocol_error(PROTOCOL_ERROR.with("AUTH reply with no exchange"));
        };
        match reply.code {
            334 => {
                let challenge = reply.lines.first().map_or("", String::as_str);
                match exchange.step(challenge) {
                    Ok(response) => {
                        self.sasl = Some(exchange);
                        self.output.extend_from_slice(response.as_bytes());
                        self.output.extend_from_slice(b"\r\n");
                        self.expect.push_back(Expect::Auth);
                        self.timer_start = self.now;
                    }
                    Err(e) => self.auth_failed(format!("authentication exchange failed: {e}")),
                }
            }
            235 => match exchange.finish() {
                Ok(()) => {
                    self.authenticated = true;
                    self.open();
                }
                Err(e) => self.auth_failed(format!(
                    "the peer accepted us but did not prove it knows the password: {e}"
                )),
            },
            _ => self.auth_failed(format!("authentication refused: {}", reply.status())),
        }
    }

    fn auth_failed(&mut self, why: String) {
        let status = AUTH_FAILED.with(why);
        self.fail_session(status.clone(), Stage::Session, false);
        self.quit(CloseReason::Refused(status));
    }

    /// A fresh SCRAM client nonce: HMAC-SHA-256 of a counter under the driver's entropy.
    fn nonce(&mut self) -> Option<String> {
        let seed = self.entropy?;
        self.nonces += 1;
        Some(crate::sasl::derive_nonce(&seed, self.nonces))
    }

    fn open(&mut self) {
        self.phase = Phase::Open;
        self.advance();
    }

    fn tls_unavailable(&mut self, why: String) {
        let status = TLS_UNAVAILABLE.with(format!("TLS is required, not available: {why}"));
        self.fail_session(status.clone(), Stage::Session, false);
        self.quit(CloseReason::TlsUnavailable(status));
    }

    fn refused(&mut self, status: Status) {
        self.fail_session(status.clone(), Stage::Session, true);
        // RFC 5321 §3.1: after a 554 greeting the server waits for QUIT.
        self.quit(CloseReason::Refused(status));
    }

    // ---- transactions ----

    /// Starts the next message, or sends QUIT, or tells the driver the session is idle.
    fn advance(&mut self) {
        while self.phase == Phase::Open && self.tx.is_none() {
            let Some(q) = self.queue.pop_front() else {
                if self.closing {
                    self.quit(CloseReason::Quit);
                } else if !self.ready_announced {
                    self.ready_announced = true;
                    self.events.push_back(Event::Ready);
                }
                return;
            };
            self.ready_announced = false;
            self.start(q);
        }
    }

    /// Why the message cannot go to this peer, if it cannot.
    fn refuse_locally(&self, q: &Queued) -> Option<Status> {
        let ext = &self.extensions;
        if q.binary && !(ext.chunking() && ext.binary_mime()) {
            return Some(CONVERSION_REQUIRED.with(
                "binary content needs CHUNKING and BINARYMIME, which the peer does not offer",
            ));
        }
        if !q.binary && q.eight_bit && !ext.eight_bit_mime() {
            return Some(CONVERSION_REQUIRED.with(
                "8-bit content needs 8BITMIME, which the peer does not offer; \
                 conversion to 7 bits is not supported",
            ));
        }
        if q.smtputf8 && !ext.smtputf8() {
            return Some(
                SMTPUTF8_REQUIRED.with("the message needs SMTPUTF8, which the peer does not offer"),
            );
        }
        if q.msg.mail_params.require_tls && !(self.tls && ext.requiretls()) {
            return Some(REQUIRETLS_REQUIRED.with(
                "REQUIRETLS support required: the session has no TLS or the peer does not \
                 offer REQUIRETLS",
            ));
        }
        if let Some(limit) = ext.size_limit()
            && q.size > limit
        {
            return Some(TOO_BIG.with(format!(
                "message size {} exceeds the fixed maximum message size {limit} of the peer",
                q.size
            )));
        }
        None
    }

    fn start(&mut self, q: Queued) {
        if q.msg.recipients.is_empty() {
            self.events.push_back(Event::Delivered {
                message: q.index,
                results: Vec::new(),
            });
            return;
        }
        if let Some(status) = self.refuse_locally(&q) {
            let results = uniform_results(&q.msg, &status, Stage::Session, false);
            self.events.push_back(Event::Delivered {
                message: q.index,
                results,
            });
            return;
        }
        let ext = &self.extensions;
        let dsn = ext.dsn();
        let given = &q.msg.mail_params;
        let mail_dsn = given.ret.is_some() || given.envid.is_some();
        let dsn_dropped = q
            .msg
            .recipients
            .iter()
            .map(|(_, p)| !dsn && (mail_dsn || p.notify.is_some() || p.orcpt.is_some()))
            .collect();
        let encoding = if q.binary {
            Encoding::Binary
        } else if ext.chunking() {
            Encoding::Chunked
        } else {
            Encoding::Data
        };
        let body = if q.binary {
            Some(BodyType::BinaryMime)
        } else if q.eight_bit {
            Some(BodyType::EightBitMime)
        } else {
            None
        };
        // Only what the peer announced; anything else (including parameters added to
        // MailParams later) is left out.
        #[allow(
            clippy::needless_update,
            reason = "fields added to MailParams later must stay unset here"
        )]
        let mail = MailParams {
            size: ext.contains("SIZE").then_some(q.size),
            body,
            smtputf8: q.smtputf8,
            ret: given.ret.filter(|_| dsn),
            envid: given.envid.clone().filter(|_| dsn),
            auth: given.auth.clone().filter(|_| ext.contains("AUTH")),
            mt_priority: given.mt_priority.filter(|_| ext.mt_priority().is_some()),
            require_tls: given.require_tls,
            by: given.by.filter(|_| ext.deliver_by().is_some()),
            ..MailParams::default()
        };
        let n = q.msg.recipients.len();
        self.tx = Some(Transaction {
            index: q.index,
            msg: q.msg,
            mail,
            encoding,
            results: vec![None; n],
            dsn_dropped,
            accepted: Vec::new(),
            mail_sent: false,
            mail_failed: false,
            rcpts_sent: 0,
            rcpt_replies: 0,
            data_sent: false,
            discard_data_reply: false,
            chunks: None,
            clean: false,
        });
        if std::mem::take(&mut self.needs_rset) {
            self.write(&Command::Rset, Expect::Rset);
            if !self.extensions.pipelining() {
                // MAIL goes at the RSET reply.
                return;
            }
        }
        self.send_envelope();
    }

    /// MAIL; with PIPELINING also every RCPT, and DATA when DATA carries the content.
    fn send_envelope(&mut self) {
        let Some(mut tx) = self.tx.take() else {
            return;
        };
        let mail = Command::Mail {
            from: tx.msg.from.clone(),
            params: tx.mail.clone(),
        };
        self.write(&mail, Expect::Mail);
        tx.mail_sent = true;
        if self.extensions.pipelining() {
            while tx.rcpts_sent < tx.results.len() {
                self.send_rcpt(&mut tx);
            }
            if tx.encoding == Encoding::Data {
                // RFC 2920 §3.1: DATA ends the group.
                self.write(&Command::Data, Expect::Data);
                tx.data_sent = true;
            }
        }
        self.tx = Some(tx);
    }

    fn send_rcpt(&mut self, tx: &mut Transaction) {
        let i = tx.rcpts_sent;
        let Some((to, params)) = tx.msg.recipients.get(i) else {
            return;
        };
        let params = if self.extensions.dsn() {
            params.clone()
        } else {
            RcptParams::default()
        };
        let rcpt = Command::Rcpt {
            to: to.clone(),
            params,
        };
        self.write(&rcpt, Expect::Rcpt(i));
        tx.rcpts_sent += 1;
    }

    /// Every RCPT has its reply: on to the content, unless nobody takes it.
    fn after_rcpts(&mut self, tx: &mut Transaction) {
        if tx.mail_failed || tx.accepted.is_empty() {
            return;
        }
        match tx.encoding {
            Encoding::Data => {
                if !tx.data_sent {
                    self.write(&Command::Data, Expect::Data);
                    tx.data_sent = true;
                }
            }
            Encoding::Chunked | Encoding::Binary => {
                tx.chunks = Some(ContentEncoder::new(
                    Arc::clone(&tx.msg.content),
                    tx.encoding,
                ));
                self.send_chunk(tx);
            }
        }
    }

    /// The next BDAT chunk, command and octets.
    fn send_chunk(&mut self, tx: &mut Transaction) {
        let Some(encoder) = tx.chunks.as_mut() else {
            return;
        };
        let mut chunk = Vec::new();
        let last = encoder.write_block(BDAT_CHUNK_SIZE, &mut chunk);
        let size = chunk.len() as u64;
        write_command(&Command::Bdat { size, last }, &mut self.output);
        self.output.extend_from_slice(&chunk);
        self.timer_start = self.now;
        if !last {
            self.expect.push_back(Expect::Bdat { last: false });
            return;
        }
        tx.chunks = None;
        match self.config.mode {
            Mode::Lmtp => {
                for &i in &tx.accepted {
                    self.expect.push_back(Expect::LmtpRcpt(i));
                }
            }
            Mode::Smtp => self.expect.push_back(Expect::Bdat { last: true }),
        }
    }

    /// The DATA content has been handed out: wait for the final reply (one per accepted
    /// recipient for LMTP).
    fn expect_final(&mut self) {
        let Some(tx) = &self.tx else {
            return;
        };
        match self.config.mode {
            Mode::Lmtp => {
                for &i in &tx.accepted {
                    self.expect.push_back(Expect::LmtpRcpt(i));
                }
            }
            Mode::Smtp => self.expect.push_back(Expect::DataEnd),
        }
    }

    /// Ends the transaction once every recipient has a result and no reply is outstanding.
    fn check_finished(&mut self) {
        let done = self.tx.as_ref().is_some_and(|tx| {
            tx.is_settled()
                && tx.chunks.is_none()
                && self.expect.is_empty()
                && self.content.is_none()
        });
        if !done {
            return;
        }
        let Some(tx) = self.tx.take() else {
            return;
        };
        self.needs_rset = tx.mail_sent && !tx.clean;
        self.events.push_back(Event::Delivered {
            message: tx.index,
            results: tx.results.into_iter().flatten().collect(),
        });
        self.advance();
    }

    // ---- the end ----

    /// Fails everything unfinished with `status`: the recipients of the current message that
    /// have no result yet, and every queued message. Nothing more will be sent but QUIT.
    fn fail_session(&mut self, status: Status, stage: Stage, from_peer: bool) {
        self.output.clear();
        self.content = None;
        self.expect.clear();
        self.closing = true;
        if let Some(mut tx) = self.tx.take() {
            tx.fail_unfinished(&status, stage, from_peer);
            self.events.push_back(Event::Delivered {
                message: tx.index,
                results: tx.results.into_iter().flatten().collect(),
            });
        }
        for q in std::mem::take(&mut self.queue) {
            let results = uniform_results(&q.msg, &status, Stage::Session, from_peer);
            self.events.push_back(Event::Delivered {
                message: q.index,
                results,
            });
        }
    }

    /// Sends QUIT; the session ends at its reply with `reason`.
    fn quit(&mut self, reason: CloseReason) {
        self.closing = true;
        self.phase = Phase::Quitting;
        self.failure = match reason {
            CloseReason::Quit => None,
            other => Some(other),
        };
        self.write(&Command::Quit, Expect::Quit);
    }

    /// The QUIT exchange is over (reply, end of stream or timeout).
    fn finish_close(&mut self) {
        let reason = self.failure.take().unwrap_or(CloseReason::Quit);
        self.end(reason);
    }

    /// Ends the session now, without QUIT.
    fn end(&mut self, reason: CloseReason) {
        self.phase = Phase::Closed;
        self.closing = true;
        self.content = None;
        self.expect.clear();
        self.events.push_back(Event::Closed { reason });
    }

    fn protocol_error(&mut self, status: Status) {
        let stage = self.current_stage();
        self.protocol_error_at(status, stage);
    }

    fn protocol_error_at(&mut self, status: Status, stage: Stage) {
        self.fail_session(status.clone(), stage, false);
        self.end(CloseReason::ProtocolError(status));
    }

    fn unexpected(&mut self, expect: Expect, reply: &Reply) {
        let status = PROTOCOL_ERROR.with(format!(
            "unexpected reply to {}: {}",
            self.describe(expect),
            reply.status()
        ));
        self.protocol_error_at(status, expect.stage());
    }

    // ---- helpers ----

    fn write(&mut self, command: &Command, expect: Expect) {
        write_command(command, &mut self.output);
        self.expect.push_back(expect);
        self.timer_start = self.now;
    }

    fn current_stage(&self) -> Stage {
        if self.content.is_some() {
            return Stage::Content;
        }
        match self.phase {
            Phase::Open => self.expect.front().map_or(Stage::Session, |e| e.stage()),
            _ => Stage::Session,
        }
    }

    /// What the session is waiting for, for a status text.
    fn waiting_for(&self) -> String {
        if self.phase == Phase::Handshake {
            return "the TLS handshake".into();
        }
        if self.content.is_some() {
            return "the content to be written".into();
        }
        match self.expect.front() {
            Some(&e) => self.describe(e).into(),
            None => "the next command (idle)".into(),
        }
    }

    fn describe(&self, expect: Expect) -> &'static str {
        match expect {
            Expect::Greeting => "the greeting",
            Expect::Ehlo if self.config.mode == Mode::Lmtp => "the reply to LHLO",
            Expect::Ehlo => "the reply to EHLO",
            Expect::Helo => "the reply to HELO",
            Expect::StartTls => "the reply to STARTTLS",
            Expect::Auth => "the reply to AUTH",
            Expect::Rset => "the reply to RSET",
            Expect::Mail => "the reply to MAIL",
            Expect::Rcpt(_) => "the reply to RCPT",
            Expect::Data => "the reply to DATA",
            Expect::DataEnd | Expect::LmtpRcpt(_) => "the reply to the end of the data",
            Expect::Bdat { .. } => "the reply to BDAT",
            Expect::Quit => "the reply to QUIT",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Session => "session",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::Content => "end of data",
        })
    }
}

#[cfg(test)]
mod tests;
