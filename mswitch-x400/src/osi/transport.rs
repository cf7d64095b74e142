//! One X.224 class 0 transport connection over RFC 1006, as a sans-IO engine: [`Transport`].
//!
//! The engine owns no socket. A driver feeds it what TCP delivered and writes out what it
//! produced:
//!
//! 1. [`Transport::initiator`] (which queues a CR) or [`Transport::responder`] (which waits
//!    for one), once the TCP connection is up;
//! 2. on each read, [`Transport::handle_input`] with the octets read (in any chunking), then
//!    [`Transport::poll_event`] until `None`;
//! 3. the application's commands as it decides: [`Transport::accept`] or
//!    [`Transport::refuse`] after a [`TransportEvent::ConnectIndication`],
//!    [`Transport::send`] once connected, [`Transport::disconnect`];
//! 4. after 2 or 3, [`Transport::poll_transmit`] (or [`Transport::drain_output`]) and write
//!    all of it to the socket;
//! 5. once [`Transport::is_closed`] and the output is written, close the socket; if the peer
//!    closes first, [`Transport::handle_eof`].
//!
//! Class 0 has no timers, so there is no `poll_timeout`. It has no expedited data and no
//! multiplexing: a CR that proposes another class is answered with class 0 where X.224 Table 3
//! allows it, and with a DR otherwise. It releases a connection by closing the network
//! connection (X.224 §6.7, the implicit variant of class 0): [`Transport::disconnect`] sends
//! nothing, the DR is only used to refuse a CR (§6.6), and a DR received is reported all the
//! same.
//!
//! Limits, checked before anything is buffered: a TPDU longer than the negotiated size (or,
//! before data transfer, than [`MAX_CONTROL_TPDU_LEN`]) ends the connection at its TPKT header;
//! a TSDU is reassembled up to [`TransportConfig::max_tsdu`] octets (default
//! [`DEFAULT_MAX_TSDU`]).
//!
//! A peer's protocol error closes the connection: [`Transport::handle_input`] returns the
//! error and queues an ER (X.224, treatment of protocol errors) where the TPKT framing was
//! intact, or a DR for a CR whose class cannot be met, so the driver writes the output out
//! before it closes the socket. A local limit closes it with nothing sent.

use std::collections::VecDeque;
use std::mem;

use crate::osi::cotp::{
    self, ConnectRepr, CotpError, DataRepr, DisconnectReason, DisconnectRepr, ErrorRepr,
    MAX_DISCONNECT_USER_DATA, MAX_LI, RejectCause, Repr, TpduCode, TpduSize,
};
use crate::osi::tpkt::{self, TpktError};

/// The TPDU size proposed by default: 2048 octets, the largest X.224 allows in class 0.
pub const DEFAULT_TPDU_SIZE: u32 = TpduSize::CLASS_0_MAX.octets();

/// The largest TPDU size the engine negotiates (8192 octets, the largest the TPDU size
/// parameter codes).
pub const MAX_TPDU_SIZE: u32 = TpduSize::MAX.octets();

/// The default limit on a reassembled TSDU: 16 MiB, above any P1 message segment a peer sends
/// in one session SPDU in practice.
pub const DEFAULT_MAX_TSDU: usize = 16 * 1024 * 1024;

/// The longest TPDU accepted before data transfer, or other than a DT: a header with the
/// largest LI and the most user data any class allows (a DR's 64 octets).
pub const MAX_CONTROL_TPDU_LEN: usize = 1 + MAX_LI as usize + MAX_DISCONNECT_USER_DATA;

/// How many octets of a rejected TPDU an ER carries back in its invalid TPDU parameter: the
/// LI and the code. More would be allowed by X.224 §13.12.4, but an ER then has an LI above 8,
/// which tshark's COTP dissector (and likely other strict peers) take as no ER at all.
pub const MAX_ER_ECHO_LEN: usize = 2;

/// The reference used by default as SRC-REF.
pub const DEFAULT_LOCAL_REFERENCE: u16 = 1;

/// What a transport connection is set up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// The calling TSEL an initiator sends (omitted if empty); unused by a responder.
    pub calling_tsel: Vec<u8>,
    /// The called TSEL an initiator sends (omitted if empty); unused by a responder.
    pub called_tsel: Vec<u8>,
    /// The largest TPDU this end handles, header included: a power of two from 128 to
    /// [`MAX_TPDU_SIZE`]. An initiator proposes it; a responder confirms the smaller of it and
    /// the proposal.
    pub tpdu_size: u32,
    /// The longest TSDU reassembled from the peer's DTs; more is an error.
    pub max_tsdu: usize,
    /// This end's reference (SRC-REF of the CR or CC), not 0.
    pub local_reference: u16,
}

impl Default for TransportConfig {
    fn default() -> TransportConfig {
        TransportConfig {
            calling_tsel: Vec::new(),
            called_tsel: Vec::new(),
            tpdu_size: DEFAULT_TPDU_SIZE,
            max_tsdu: DEFAULT_MAX_TSDU,
            local_reference: DEFAULT_LOCAL_REFERENCE,
        }
    }
}

/// Which end of the connection the engine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It sent the CR.
    Initiator,
    /// It received the CR.
    Responder,
}

/// What happened on the connection, for the transport user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportEvent {
    /// Responder: a CR arrived (T-CONNECT indication). Answer with [`Transport::accept`] or
    /// [`Transport::refuse`].
    ConnectIndication {
        /// The calling TSEL (empty if the CR had none).
        calling_tsel: Vec<u8>,
        /// The called TSEL (empty if the CR had none).
        called_tsel: Vec<u8>,
        /// The TPDU size [`Transport::accept`] will confirm.
        tpdu_size: u32,
    },
    /// Initiator: the CC arrived (T-CONNECT confirm); data may flow.
    Connected {
        /// The negotiated TPDU size.
        tpdu_size: u32,
    },
    /// A complete TSDU (T-DATA indication).
    Data(Vec<u8>),
    /// The peer sent a DR: it refused the CR, or released the connection. The connection is
    /// closed.
    Disconnected {
        /// The DR's reason.
        reason: DisconnectReason,
        /// Its additional information parameter (empty if none).
        additional_info: Vec<u8>,
    },
    /// The peer sent an ER: it rejected a TPDU of ours. The connection is closed.
    Error {
        /// The ER's reject cause.
        cause: RejectCause,
        /// The octets of our TPDU it sent back (empty if none).
        invalid_tpdu: Vec<u8>,
    },
}

/// Why the engine could not go on or carry out a command.
///
/// Feeding input, the errors are the peer's (protocol errors, incompatible choices) or a local
/// limit the peer exceeded; all of them close the connection. Commands fail on the caller's
/// misuse, and leave the connection as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Peer protocol error: the TCP stream is not RFC 1006 packets.
    #[error("peer protocol error: {0}")]
    Tpkt(#[from] TpktError),
    /// Peer protocol error: a malformed TPDU.
    #[error("peer protocol error: {0}")]
    Cotp(#[from] CotpError),
    /// Peer protocol error: a TPDU out of place (a DT before the connection is up, a second
    /// CR).
    #[error("peer protocol error: {code} TPDU while {state}")]
    UnexpectedTpdu {
        /// The TPDU.
        code: TpduCode,
        /// What the engine was doing.
        state: &'static str,
    },
    /// Peer protocol error: a TPDU longer than the negotiated TPDU size (or, before data
    /// transfer, than [`MAX_CONTROL_TPDU_LEN`]). Caught at the TPKT header, before buffering.
    #[error("peer protocol error: TPDU of {len} octets (at most {max})")]
    TpduTooLarge {
        /// The TPDU's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Peer protocol error: user data on a class 0 CR or CC (X.224 §13.3.5).
    #[error("peer protocol error: user data on a class 0 {0} TPDU")]
    ConnectUserData(TpduCode),
    /// Peer protocol error: a CC with a TPDU size above the one proposed (X.224 §13.4.4).
    #[error("peer protocol error: CC raised the TPDU size from {proposed} to {confirmed}")]
    TpduSizeRaised {
        /// What the CR proposed.
        proposed: u32,
        /// What the CC confirmed.
        confirmed: u32,
    },
    /// Peer incompatible: its CR proposes a class without allowing class 0 as a response (X.224
    /// Table 3); a DR with reason 130 (negotiation failed) was queued.
    #[error("peer incompatible: CR for class {preferred} does not allow class 0")]
    ClassNegotiation {
        /// The preferred class of the CR.
        preferred: u8,
    },
    /// Peer incompatible: its CC selects a class other than 0, which we did not propose.
    #[error("peer incompatible: CC selects class {0}")]
    ClassSelected(u8),
    /// Local limit: the peer's TSDU grew past [`TransportConfig::max_tsdu`].
    #[error("TSDU longer than the limit of {max} octets")]
    TsduTooLarge {
        /// The limit.
        max: usize,
    },
    /// The peer closed the TCP connection in the middle of a TPKT or a TSDU: what it sent last
    /// is lost.
    #[error("connection closed in the middle of a {0}")]
    Truncated(&'static str),
    /// Caller error: the command is not valid now (`send` before the connection is up,
    /// `accept` without a connect indication).
    #[error("{command} is not valid while {state}")]
    InvalidState {
        /// The command.
        command: &'static str,
        /// What the engine was doing.
        state: &'static str,
    },
    /// Caller error: a TSDU has at least one octet (X.214, T-DATA).
    #[error("empty TSDU")]
    EmptyTsdu,
    /// Configuration error: the named field is out of range.
    #[error("invalid transport configuration: {0}")]
    Config(&'static str),
}

impl TransportError {
    /// Whether the peer is at fault (a protocol error or an incompatible choice), rather than a
    /// local limit, the caller or the configuration.
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            TransportError::Tpkt(_)
                | TransportError::Cotp(_)
                | TransportError::UnexpectedTpdu { .. }
                | TransportError::TpduTooLarge { .. }
                | TransportError::ConnectUserData(_)
                | TransportError::TpduSizeRaised { .. }
                | TransportError::ClassNegotiation { .. }
                | TransportError::ClassSelected(_)
        )
    }

    /// The ER cause to send back for this error, if it answers a TPDU.
    fn reject_cause(&self) -> Option<RejectCause> {
        match self {
            TransportError::Cotp(e) => Some(e.reject_cause()),
            TransportError::UnexpectedTpdu { .. } => Some(RejectCause::INVALID_TPDU_TYPE),
            TransportError::TpduSizeRaised { .. } | TransportError::ClassSelected(_) => {
                Some(RejectCause::INVALID_PARAMETER_VALUE)
            }
            TransportError::TpduTooLarge { .. } | TransportError::ConnectUserData(_) => {
                Some(RejectCause::NOT_SPECIFIED)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Responder, before the CR.
    AwaitingCr,
    /// Responder, after the ConnectIndication.
    CrReceived {
        tpdu_size: u32,
        /// The CR had a preferred maximum TPDU size: the CC answers in kind.
        preferred: bool,
    },
    /// Initiator, after the CR.
    AwaitingCc,
    /// Data transfer.
    Open {
        tpdu_size: u32,
    },
    Closed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::AwaitingCr => "awaiting a CR",
            State::CrReceived { .. } => "awaiting the user's answer to a CR",
            State::AwaitingCc => "awaiting a CC",
            State::Open { .. } => "transferring data",
            State::Closed => "closed",
        }
    }
}

/// One class 0 transport connection: see the [module documentation](self) for the order a
/// driver calls the methods in.
#[derive(Debug)]
pub struct Transport {
    role: Role,
    config: TransportConfig,
    state: State,
    /// The peer's reference (0 until its CR or CC).
    peer_ref: u16,
    /// A TPKT received in part.
    rx: Vec<u8>,
    /// A TSDU received in part.
    tsdu: Vec<u8>,
    /// TPKTs to send.
    tx: Vec<u8>,
    events: VecDeque<TransportEvent>,
}

impl Transport {
    /// The initiator's end: queues a CR proposing class 0, `config.tpdu_size` and the TSELs.
    pub fn initiator(config: TransportConfig) -> Result<Transport, TransportError> {
        let mut t = Transport::new(Role::Initiator, config, State::AwaitingCc)?;
        let tpdu_size =
            TpduSize::from_octets(t.config.tpdu_size).ok_or(TransportError::Config("tpdu_size"))?;
        let cr = Repr::ConnectionRequest(ConnectRepr {
            dst_ref: 0,
            src_ref: t.config.local_reference,
            tpdu_size: Some(tpdu_size),
            calling_tsel: non_empty(&t.config.calling_tsel),
            called_tsel: non_empty(&t.config.called_tsel),
            ..ConnectRepr::default()
        });
        let mut tx = Vec::new();
        emit(&cr, &mut tx).map_err(|_| TransportError::Config("calling_tsel, called_tsel"))?;
        t.tx = tx;
        Ok(t)
    }

    /// The responder's end: waits for a CR.
    pub fn responder(config: TransportConfig) -> Result<Transport, TransportError> {
        Transport::new(Role::Responder, config, State::AwaitingCr)
    }

    fn new(role: Role, config: TransportConfig, state: State) -> Result<Transport, TransportError> {
        if TpduSize::from_octets(config.tpdu_size).is_none() {
            return Err(TransportError::Config("tpdu_size"));
        }
        if config.max_tsdu == 0 {
            return Err(TransportError::Config("max_tsdu"));
        }
        if config.local_reference == 0 {
            return Err(TransportError::Config("local_reference"));
        }
        Ok(Transport {
            role,
            config,
            state,
            peer_ref: 0,
            rx: Vec::new(),
            tsdu: Vec::new(),
            tx: Vec::new(),
            events: VecDeque::new(),
        })
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The negotiated TPDU size, once the connection is up.
    pub fn tpdu_size(&self) -> Option<u32> {
        match self.state {
            State::Open { tpdu_size } => Some(tpdu_size),
            _ => None,
        }
    }

    /// Whether data may be sent.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Whether the connection is over (refused, released, or failed): once the output is
    /// written, the driver closes the socket.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Feeds octets read from the TCP connection, in any chunking.
    ///
    /// Complete TPDUs are acted on at once: events are queued for [`Transport::poll_event`],
    /// answers for [`Transport::poll_transmit`]. An error is the end of the connection (see
    /// [`TransportError`]); what was queued before it stays queued. Input after the connection
    /// is closed is ignored.
    pub fn handle_input(&mut self, mut input: &[u8]) -> Result<(), TransportError> {
        while self.state != State::Closed {
            if self.rx.is_empty() {
                // Whole packets straight from the input; only a partial one is copied.
                let len = match tpkt::frame_len(input) {
                    Ok(len) => len,
                    Err(e) => return Err(self.fail(e.into(), None)),
                };
                if let Some(len) = len {
                    if let Err(e) = self.check_frame_len(len) {
                        return Err(self.fail(e, None));
                    }
                    if let Some((frame, rest)) = input.split_at_checked(len) {
                        self.handle_frame(frame)?;
                        input = rest;
                        continue;
                    }
                }
                self.rx.extend_from_slice(input);
                return Ok(());
            }
            let need = if self.rx.len() < tpkt::HEADER_LEN {
                tpkt::HEADER_LEN
            } else {
                let len = tpkt::frame_len(&self.rx)
                    .map_err(TransportError::from)
                    .and_then(|len| {
                        // At least HEADER_LEN octets are buffered: frame_len has a length.
                        let len = len.unwrap_or(tpkt::MIN_LEN);
                        self.check_frame_len(len).map(|()| len)
                    });
                match len {
                    Ok(len) => len,
                    Err(e) => return Err(self.fail(e, None)),
                }
            };
            if self.rx.len() >= tpkt::HEADER_LEN && self.rx.len() == need {
                let frame = mem::take(&mut self.rx);
                let result = self.handle_frame(&frame);
                self.rx = frame;
                self.rx.clear();
                result?;
                continue;
            }
            if input.is_empty() {
                break;
            }
            let (take, rest) = input.split_at((need - self.rx.len()).min(input.len()));
            self.rx.extend_from_slice(take);
            input = rest;
        }
        Ok(())
    }

    /// Tells the engine the peer closed the TCP connection. For class 0 that is the normal
    /// release; it is an error if a TPKT or a TSDU was left incomplete. The connection is
    /// closed either way.
    pub fn handle_eof(&mut self) -> Result<(), TransportError> {
        let was = self.state;
        self.state = State::Closed;
        let partial = if !self.rx.is_empty() {
            Some("TPKT")
        } else if !self.tsdu.is_empty() {
            Some("TSDU")
        } else {
            None
        };
        self.rx = Vec::new();
        self.tsdu = Vec::new();
        match partial {
            Some(what) if was != State::Closed => Err(TransportError::Truncated(what)),
            _ => Ok(()),
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<TransportEvent> {
        self.events.pop_front()
    }

    /// The next event, left in place for [`Transport::poll_event`]: a listener that looks at
    /// the first TSDU before it chooses the engine to hand the connection to.
    pub fn peek_event(&self) -> Option<&TransportEvent> {
        self.events.front()
    }

    /// Changes the limit on a reassembled TSDU (see [`TransportConfig::max_tsdu`]): the engine
    /// a listener hands the connection to sets its own.
    pub fn set_max_tsdu(&mut self, max_tsdu: usize) -> Result<(), TransportError> {
        if max_tsdu == 0 {
            return Err(TransportError::Config("max_tsdu"));
        }
        self.config.max_tsdu = max_tsdu;
        Ok(())
    }

    /// All the octets waiting to be written to the socket, if any (whole TPKTs).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.tx.is_empty()).then(|| mem::take(&mut self.tx))
    }

    /// Appends all the octets waiting to be written to the socket to `out`.
    pub fn drain_output(&mut self, out: &mut Vec<u8>) {
        if out.is_empty() {
            mem::swap(out, &mut self.tx);
        } else {
            out.append(&mut self.tx);
        }
    }

    /// Responder: accepts the connection the last [`TransportEvent::ConnectIndication`]
    /// announced, with class 0 and that TPDU size (T-CONNECT response).
    pub fn accept(&mut self) -> Result<(), TransportError> {
        let State::CrReceived {
            tpdu_size,
            preferred,
        } = self.state
        else {
            return Err(self.invalid("accept"));
        };
        let cc = Repr::ConnectionConfirm(ConnectRepr {
            dst_ref: self.peer_ref,
            src_ref: self.config.local_reference,
            tpdu_size: if preferred {
                None
            } else {
                TpduSize::from_octets(tpdu_size)
            },
            preferred_max_tpdu_size: preferred.then_some(tpdu_size / 128),
            ..ConnectRepr::default()
        });
        // A CC without TSELs always fits.
        let _ = emit(&cc, &mut self.tx);
        self.state = State::Open { tpdu_size };
        Ok(())
    }

    /// Responder: refuses the connection the last [`TransportEvent::ConnectIndication`]
    /// announced, with a DR (T-DISCONNECT request); the connection is then closed.
    pub fn refuse(&mut self, reason: DisconnectReason) -> Result<(), TransportError> {
        if !matches!(self.state, State::CrReceived { .. }) {
            return Err(self.invalid("refuse"));
        }
        self.queue_dr(reason);
        self.state = State::Closed;
        Ok(())
    }

    /// Sends a TSDU (T-DATA request): DTs of at most the negotiated TPDU size, the last with
    /// EOT.
    pub fn send(&mut self, tsdu: &[u8]) -> Result<(), TransportError> {
        let State::Open { tpdu_size } = self.state else {
            return Err(self.invalid("send"));
        };
        if tsdu.is_empty() {
            return Err(TransportError::EmptyTsdu);
        }
        // tpdu_size is at least 128, so each DT carries at least 125 octets.
        let per_dt = tpdu_size as usize - cotp::DATA_HEADER_LEN;
        let dts = tsdu.len().div_ceil(per_dt);
        self.tx
            .reserve(tsdu.len() + dts * (tpkt::HEADER_LEN + cotp::DATA_HEADER_LEN));
        let mut chunks = tsdu.chunks(per_dt).peekable();
        while let Some(chunk) = chunks.next() {
            let dt = Repr::Data(DataRepr {
                eot: chunks.peek().is_none(),
                nr: 0,
                user_data: chunk,
            });
            // A DT of at most MAX_TPDU_SIZE octets always fits a TPKT.
            let _ = emit(&dt, &mut self.tx);
        }
        Ok(())
    }

    /// Ends the connection (T-DISCONNECT request). Class 0 releases by closing the network
    /// connection, so nothing is sent once the connection is up or while awaiting the CC: the
    /// driver closes the socket. A responder that has not answered a CR refuses it with a DR
    /// (reason 128, normal). A partial TSDU received is dropped.
    pub fn disconnect(&mut self) {
        if matches!(self.state, State::CrReceived { .. }) {
            self.queue_dr(DisconnectReason::NORMAL);
        }
        self.state = State::Closed;
        self.rx = Vec::new();
        self.tsdu = Vec::new();
    }

    fn invalid(&self, command: &'static str) -> TransportError {
        TransportError::InvalidState {
            command,
            state: self.state.name(),
        }
    }

    fn queue_dr(&mut self, reason: DisconnectReason) {
        let dr = Repr::DisconnectRequest(DisconnectRepr {
            dst_ref: self.peer_ref,
            src_ref: 0,
            reason,
            additional_info: None,
            user_data: &[],
        });
        // A DR without parameters always fits.
        let _ = emit(&dr, &mut self.tx);
    }

    /// Checks a TPKT length against what the state allows, before its body is buffered.
    fn check_frame_len(&self, len: usize) -> Result<(), TransportError> {
        let max = match self.state {
            State::Open { tpdu_size } => (tpdu_size as usize).max(MAX_CONTROL_TPDU_LEN),
            _ => MAX_CONTROL_TPDU_LEN,
        };
        let tpdu_len = len - tpkt::HEADER_LEN;
        if tpdu_len > max {
            return Err(TransportError::TpduTooLarge { len: tpdu_len, max });
        }
        Ok(())
    }

    /// Ends the connection on `error`: queues the ER or DR it calls for and returns it.
    fn fail(&mut self, error: TransportError, tpdu: Option<&[u8]>) -> TransportError {
        if let TransportError::ClassNegotiation { .. } = error {
            self.queue_dr(DisconnectReason::NEGOTIATION_FAILED);
        } else if let Some(cause) = error.reject_cause() {
            let echo = tpdu.map(|t| {
                let header = t.first().map_or(0, |&li| usize::from(li) + 1);
                &t[..t.len().min(header).min(MAX_ER_ECHO_LEN)]
            });
            let er = Repr::Error(ErrorRepr {
                dst_ref: self.peer_ref,
                cause,
                invalid_tpdu: echo.filter(|e| !e.is_empty()),
            });
            // MAX_ER_ECHO_LEN keeps the ER within any TPDU size.
            let _ = emit(&er, &mut self.tx);
        }
        self.state = State::Closed;
        self.rx = Vec::new();
        self.tsdu = Vec::new();
        error
    }

    /// Acts on one complete TPKT.
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        let tpdu = &frame[tpkt::HEADER_LEN..];
        match self.handle_tpdu(tpdu) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e, Some(tpdu))),
        }
    }

    fn handle_tpdu(&mut self, tpdu: &[u8]) -> Result<(), TransportError> {
        let packet = cotp::Packet::new_checked(tpdu)?;
        let repr = Repr::parse(&packet)?;
        match (self.state, repr) {
            (State::AwaitingCr, Repr::ConnectionRequest(cr)) => self.on_connection_request(&cr),
            (State::AwaitingCc, Repr::ConnectionConfirm(cc)) => self.on_connection_confirm(&cc),
            (State::Open { tpdu_size }, Repr::Data(dt)) => {
                if tpdu.len() > tpdu_size as usize {
                    return Err(TransportError::TpduTooLarge {
                        len: tpdu.len(),
                        max: tpdu_size as usize,
                    });
                }
                self.on_data(&dt)
            }
            (
                State::AwaitingCc | State::CrReceived { .. } | State::Open { .. },
                Repr::DisconnectRequest(dr),
            ) => {
                self.state = State::Closed;
                self.tsdu = Vec::new();
                self.events.push_back(TransportEvent::Disconnected {
                    reason: dr.reason,
                    additional_info: dr.additional_info.unwrap_or_default().to_vec(),
                });
                Ok(())
            }
            (_, Repr::Error(er)) => {
                self.state = State::Closed;
                self.tsdu = Vec::new();
                self.events.push_back(TransportEvent::Error {
                    cause: er.cause,
                    invalid_tpdu: er.invalid_tpdu.unwrap_or_default().to_vec(),
                });
                Ok(())
            }
            (state, repr) => Err(TransportError::UnexpectedTpdu {
                code: repr.code(),
                state: state.name(),
            }),
        }
    }

    fn on_connection_request(&mut self, cr: &ConnectRepr<'_>) -> Result<(), TransportError> {
        self.peer_ref = cr.src_ref;
        let alternatives = cr.alternative_classes.unwrap_or_default();
        let offered = |class: u8| alternatives.iter().any(|&octet| octet >> 4 == class);
        // X.224 §6.5.4 h), Table 3: when class 0 is a valid response.
        let class_0_valid = match cr.class {
            0 | 1 => true,
            2 => offered(0),
            3 | 4 => offered(0) || offered(1),
            _ => false,
        };
        if !class_0_valid {
            return Err(TransportError::ClassNegotiation {
                preferred: cr.class,
            });
        }
        // Class 0 CRs carry no user data; in other classes it would be lost with class 0.
        if cr.class == 0 && !cr.user_data.is_empty() {
            return Err(TransportError::ConnectUserData(TpduCode::ConnectionRequest));
        }
        let proposed = match (cr.preferred_max_tpdu_size, cr.tpdu_size) {
            (Some(units), _) => units.saturating_mul(128),
            (None, Some(size)) => size.octets(),
            (None, None) => TpduSize::MIN.octets(),
        };
        let tpdu_size = proposed.min(self.config.tpdu_size);
        self.state = State::CrReceived {
            tpdu_size,
            preferred: cr.preferred_max_tpdu_size.is_some(),
        };
        self.events.push_back(TransportEvent::ConnectIndication {
            calling_tsel: cr.calling_tsel.unwrap_or_default().to_vec(),
            called_tsel: cr.called_tsel.unwrap_or_default().to_vec(),
            tpdu_size,
        });
        Ok(())
    }

    fn on_connection_confirm(&mut self, cc: &ConnectRepr<'_>) -> Result<(), TransportError> {
        self.peer_ref = cc.src_ref;
        if cc.class != 0 {
            return Err(TransportError::ClassSelected(cc.class));
        }
        if !cc.user_data.is_empty() {
            return Err(TransportError::ConnectUserData(TpduCode::ConnectionConfirm));
        }
        let proposed = self.config.tpdu_size;
        let confirmed = match (cc.preferred_max_tpdu_size, cc.tpdu_size) {
            (Some(units), _) => units.saturating_mul(128),
            (None, Some(size)) => size.octets(),
            (None, None) => TpduSize::MIN.octets(),
        };
        if confirmed > proposed {
            return Err(TransportError::TpduSizeRaised {
                proposed,
                confirmed,
            });
        }
        self.state = State::Open {
            tpdu_size: confirmed,
        };
        self.events.push_back(TransportEvent::Connected {
            tpdu_size: confirmed,
        });
        Ok(())
    }

    fn on_data(&mut self, dt: &DataRepr<'_>) -> Result<(), TransportError> {
        let max = self.config.max_tsdu;
        let len = self.tsdu.len() + dt.user_data.len();
        if len > max {
            return Err(TransportError::TsduTooLarge { max });
        }
        if len > self.tsdu.capacity() {
            // Grow by doubling, but never past the limit.
            let target = (self.tsdu.capacity() * 2).clamp(len, max);
            self.tsdu.reserve_exact(target - self.tsdu.len());
        }
        self.tsdu.extend_from_slice(dt.user_data);
        if dt.eot {
            self.events
                .push_back(TransportEvent::Data(mem::take(&mut self.tsdu)));
        }
        Ok(())
    }
}

fn non_empty(v: &[u8]) -> Option<&[u8]> {
    (!v.is_empty()).then_some(v)
}

/// Appends `repr` framed in a TPKT to `out`, or nothing if it cannot be framed.
fn emit(repr: &Repr<'_>, out: &mut Vec<u8>) -> Result<(), TransportError> {
    let header = tpkt::Repr::new(repr.buffer_len())?;
    let start = out.len();
    header.emit(out);
    if let Err(e) = repr.emit(out) {
        out.truncate(start);
        return Err(e.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CR_FROM_CAPTURE: [u8; 22] = [
        0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0B, 0xC1,
        0x02, 0x00, 0x01, 0xC2, 0x02, 0x00, 0x02,
    ];
    const CC_FROM_CAPTURE: [u8; 14] = [
        0x03, 0x00, 0x00, 0x0E, 0x09, 0xD0, 0x00, 0x01, 0x00, 0x02, 0x00, 0xC0, 0x01, 0x0B,
    ];

    fn initiator() -> Transport {
        Transport::initiator(TransportConfig {
            calling_tsel: vec![0, 1],
            called_tsel: vec![0, 2],
            ..TransportConfig::default()
        })
        .expect("valid config")
    }

    fn responder() -> Transport {
        Transport::responder(TransportConfig {
            local_reference: 2,
            ..TransportConfig::default()
        })
        .expect("valid config")
    }

    fn events(t: &mut Transport) -> Vec<TransportEvent> {
        std::iter::from_fn(|| t.poll_event()).collect()
    }

    fn output(t: &mut Transport) -> Vec<u8> {
        t.poll_transmit().unwrap_or_default()
    }

    /// An initiator and a responder, connected through memory.
    fn connected() -> (Transport, Transport) {
        let mut i = initiator();
        let mut r = responder();
        r.handle_input(&output(&mut i)).expect("CR");
        assert!(matches!(
            events(&mut r)[..],
            [TransportEvent::ConnectIndication { .. }]
        ));
        r.accept().expect("accept");
        i.handle_input(&output(&mut r)).expect("CC");
        assert_eq!(
            events(&mut i),
            [TransportEvent::Connected { tpdu_size: 2048 }]
        );
        (i, r)
    }

    /// The CR and CC of `x400/vectors/synthetic-p1-port102.pcap` (frames 4 and 5), byte for
    /// byte: RFC 1006 §6 framing of X.224 §13.3 and §13.4 TPDUs.
    #[test]
    fn handshake_matches_the_capture() {
        let mut i = initiator();
        assert_eq!(output(&mut i), CR_FROM_CAPTURE);
        let mut r = responder();
        r.handle_input(&CR_FROM_CAPTURE).expect("CR");
        assert_eq!(
            events(&mut r),
            [TransportEvent::ConnectIndication {
                calling_tsel: vec![0, 1],
                called_tsel: vec![0, 2],
                tpdu_size: 2048,
            }]
        );
        assert_eq!(r.poll_transmit(), None);
        r.accept().expect("accept");
        assert_eq!(output(&mut r), CC_FROM_CAPTURE);
        assert!(r.is_open());
        i.handle_input(&CC_FROM_CAPTURE).expect("CC");
        assert_eq!(
            events(&mut i),
            [TransportEvent::Connected { tpdu_size: 2048 }]
        );
        assert_eq!(i.tpdu_size(), Some(2048));
    }

    /// Frame 7 of the capture: the first DT (EOT set, `02 F0 80`) carrying the session CN SPDU.
    #[test]
    fn data_from_the_capture() {
        let mut r = responder();
        r.handle_input(&CR_FROM_CAPTURE).expect("CR");
        r.accept().expect("accept");
        let dt = [
            0x03, 0x00, 0x00, 0x10, 0x02, 0xF0, 0x80, 0x01, 0x00, 0x2D, 0x05, 0x29, 0x03, 0x02,
            0x01, 0x01,
        ];
        events(&mut r);
        r.handle_input(&dt).expect("DT");
        assert_eq!(events(&mut r), [TransportEvent::Data(dt[7..].to_vec())]);
    }

    /// X.224 §6.3 (segmenting): a 100 kB TSDU goes as DTs of at most 2048 octets, header
    /// included, the last with EOT; the peer reassembles it, fed one octet at a time and in
    /// odd chunks.
    #[test]
    fn segments_and_reassembles_a_large_tsdu() {
        let (mut i, mut r) = connected();
        let tsdu: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
        i.send(&tsdu).expect("send");
        let wire = output(&mut i);
        // Walk the DTs: 49 of 2045 octets of data, then the rest with EOT.
        let mut at = 0;
        let mut dts = 0;
        while at < wire.len() {
            let packet = tpkt::parse(&wire[at..]).expect("valid").expect("whole");
            let tpdu = packet.payload();
            assert!(tpdu.len() <= 2048);
            assert_eq!(&tpdu[..2], &[0x02, 0xF0]);
            at += packet.total_len();
            dts += 1;
            assert_eq!(tpdu[2] == 0x80, at == wire.len(), "EOT on the last DT only");
        }
        assert_eq!(dts, 100_000usize.div_ceil(2045));

        for byte in &wire {
            r.handle_input(std::slice::from_ref(byte)).expect("DT");
        }
        assert_eq!(events(&mut r), [TransportEvent::Data(tsdu.clone())]);

        for chunk in wire.chunks(1000) {
            r.handle_input(chunk).expect("DT");
        }
        assert_eq!(events(&mut r), [TransportEvent::Data(tsdu.clone())]);

        // And the other way, two TSDUs in one read.
        r.send(b"first").expect("send");
        r.send(&tsdu).expect("send");
        i.handle_input(&output(&mut r)).expect("DT");
        assert_eq!(
            events(&mut i),
            [
                TransportEvent::Data(b"first".to_vec()),
                TransportEvent::Data(tsdu)
            ]
        );
    }

    /// The whole exchange, fed one octet at a time.
    #[test]
    fn one_octet_at_a_time() {
        let mut i = initiator();
        let mut r = responder();
        for byte in output(&mut i) {
            r.handle_input(&[byte]).expect("CR");
        }
        r.accept().expect("accept");
        r.send(b"hello").expect("send");
        for byte in output(&mut r) {
            i.handle_input(&[byte]).expect("CC and DT");
        }
        assert_eq!(
            events(&mut i),
            [
                TransportEvent::Connected { tpdu_size: 2048 },
                TransportEvent::Data(b"hello".to_vec())
            ]
        );
    }

    /// X.224 §14.6 e): the responder confirms the smaller TPDU size; no parameter means 128.
    #[test]
    fn negotiates_the_tpdu_size() {
        let mut i = Transport::initiator(TransportConfig {
            tpdu_size: 8192,
            ..TransportConfig::default()
        })
        .expect("valid");
        let mut r = Transport::responder(TransportConfig {
            tpdu_size: 1024,
            ..TransportConfig::default()
        })
        .expect("valid");
        r.handle_input(&output(&mut i)).expect("CR");
        r.accept().expect("accept");
        i.handle_input(&output(&mut r)).expect("CC");
        assert_eq!(i.tpdu_size(), Some(1024));
        assert_eq!(r.tpdu_size(), Some(1024));
        i.send(&[7; 3000]).expect("send");
        let wire = output(&mut i);
        assert_eq!(wire.len(), 3000 + 3 * 7);

        // A CR without a TPDU size parameter: 128 octets.
        let mut r = responder();
        r.handle_input(&[3, 0, 0, 11, 6, 0xE0, 0, 0, 0, 5, 0])
            .expect("CR");
        assert!(matches!(
            events(&mut r)[..],
            [TransportEvent::ConnectIndication { tpdu_size: 128, .. }]
        ));
        r.accept().expect("accept");
        assert_eq!(
            output(&mut r),
            [3, 0, 0, 14, 9, 0xD0, 0, 5, 0, 2, 0, 0xC0, 1, 7]
        );

        // A CR with a preferred maximum TPDU size of 12 × 128: answered in kind.
        let mut r = responder();
        r.handle_input(&[3, 0, 0, 14, 9, 0xE0, 0, 0, 0, 5, 0, 0xF0, 1, 12])
            .expect("CR");
        r.accept().expect("accept");
        assert_eq!(
            output(&mut r),
            [3, 0, 0, 14, 9, 0xD0, 0, 5, 0, 2, 0, 0xF0, 1, 12]
        );
        assert_eq!(r.tpdu_size(), Some(1536));
    }

    /// X.224 Table 3: class 2 with class 0 as an alternative gets class 0; class 2 alone, or
    /// class 4 without 0 or 1 as alternatives, is refused with DR reason 128+2.
    #[test]
    fn negotiates_the_class() {
        let mut r = responder();
        // Class 2, alternative class 0 (C7 01 00), expedited data asked for (C6 01 01).
        r.handle_input(&[
            3, 0, 0, 17, 12, 0xE0, 0, 0, 0, 5, 0x20, 0xC7, 1, 0x00, 0xC6, 1, 1,
        ])
        .expect("CR");
        r.accept().expect("accept");
        let cc = output(&mut r);
        assert_eq!(cc[10], 0x00, "class 0, no options");
        assert_eq!(cc, [3, 0, 0, 14, 9, 0xD0, 0, 5, 0, 2, 0, 0xC0, 1, 7]);

        // Class 1 alone also allows class 0.
        let mut r = responder();
        r.handle_input(&[3, 0, 0, 11, 6, 0xE0, 0, 0, 0, 5, 0x10])
            .expect("CR");
        assert!(matches!(
            events(&mut r)[..],
            [TransportEvent::ConnectIndication { .. }]
        ));

        for cr in [
            &[3, 0, 0, 11, 6, 0xE0, 0, 0, 0, 5, 0x20][..],
            &[3, 0, 0, 14, 9, 0xE0, 0, 0, 0, 5, 0x40, 0xC7, 1, 0x20],
        ] {
            let mut r = responder();
            let err = r.handle_input(cr).expect_err("no class 0");
            assert!(matches!(err, TransportError::ClassNegotiation { .. }));
            assert!(err.is_peer_fault());
            assert!(r.is_closed());
            assert_eq!(output(&mut r), [3, 0, 0, 11, 6, 0x80, 0, 5, 0, 0, 0x82]);
        }
    }

    #[test]
    fn refusal_and_disconnection() {
        let mut i = initiator();
        let mut r = responder();
        r.handle_input(&output(&mut i)).expect("CR");
        r.refuse(DisconnectReason::ADDRESS_UNKNOWN).expect("refuse");
        assert!(r.is_closed());
        let dr = output(&mut r);
        assert_eq!(dr, [3, 0, 0, 11, 6, 0x80, 0, 1, 0, 0, 3]);
        i.handle_input(&dr).expect("DR");
        assert_eq!(
            events(&mut i),
            [TransportEvent::Disconnected {
                reason: DisconnectReason::ADDRESS_UNKNOWN,
                additional_info: Vec::new()
            }]
        );
        assert!(i.is_closed());
        assert_eq!(
            i.send(b"x"),
            Err(TransportError::InvalidState {
                command: "send",
                state: "closed"
            })
        );

        // Class 0 releases by closing TCP: disconnect sends nothing.
        let (mut i, mut r) = connected();
        i.disconnect();
        assert!(i.is_closed());
        assert_eq!(i.poll_transmit(), None);
        assert_eq!(r.handle_eof(), Ok(()));
        assert!(r.is_closed());
    }

    #[test]
    fn commands_out_of_place() {
        let mut i = initiator();
        assert!(matches!(
            i.send(b"early"),
            Err(TransportError::InvalidState { .. })
        ));
        assert!(matches!(
            i.accept(),
            Err(TransportError::InvalidState { .. })
        ));
        let (mut i, _) = connected();
        assert_eq!(i.send(b""), Err(TransportError::EmptyTsdu));
        assert!(i.is_open());
        assert!(matches!(
            Transport::responder(TransportConfig {
                tpdu_size: 1000,
                ..TransportConfig::default()
            }),
            Err(TransportError::Config("tpdu_size"))
        ));
        assert!(matches!(
            Transport::initiator(TransportConfig {
                calling_tsel: vec![0; 200],
                called_tsel: vec![0; 200],
                ..TransportConfig::default()
            }),
            Err(TransportError::Config(_))
        ));
    }

    #[test]
    fn hostile_tpkt_headers() {
        // Length 0.
        let mut r = responder();
        assert_eq!(
            r.handle_input(&[3, 0, 0, 0]),
            Err(TransportError::Tpkt(TpktError::Length(0)))
        );
        assert!(r.is_closed());
        assert_eq!(r.poll_transmit(), None, "no ER once the framing is lost");
        // Length 65535 with a tiny body: refused at the header, nothing buffered.
        let mut r = responder();
        assert_eq!(
            r.handle_input(&[3, 0, 0xFF, 0xFF, 2, 0xF0, 0x80]),
            Err(TransportError::TpduTooLarge {
                len: 65_531,
                max: MAX_CONTROL_TPDU_LEN
            })
        );
        // The same, the header split across reads.
        let (_, mut r) = connected();
        r.handle_input(&[3, 0]).expect("partial header");
        assert_eq!(
            r.handle_input(&[0xFF, 0xFF, 2]),
            Err(TransportError::TpduTooLarge {
                len: 65_531,
                max: 2048
            })
        );
        // Not RFC 1006 at all.
        let mut r = responder();
        assert_eq!(
            r.handle_input(b"EHLO example.org\r\n"),
            Err(TransportError::Tpkt(TpktError::Version(b'E')))
        );
        // Input after the end is ignored.
        assert_eq!(r.handle_input(&CR_FROM_CAPTURE), Ok(()));
        assert_eq!(r.poll_event(), None);
    }

    #[test]
    fn data_before_the_connection() {
        let mut r = responder();
        let err = r
            .handle_input(&[3, 0, 0, 8, 2, 0xF0, 0x80, b'x'])
            .expect_err("DT without CR");
        assert_eq!(
            err,
            TransportError::UnexpectedTpdu {
                code: TpduCode::Data,
                state: "awaiting a CR"
            }
        );
        // ER, cause 2 (invalid TPDU type), echoing the DT's LI and code.
        assert_eq!(
            output(&mut r),
            [3, 0, 0, 13, 8, 0x70, 0, 0, 2, 0xC1, 2, 2, 0xF0]
        );
        // A DT on the initiator before the CC.
        let mut i = initiator();
        output(&mut i);
        assert!(matches!(
            i.handle_input(&[3, 0, 0, 8, 2, 0xF0, 0x80, b'x']),
            Err(TransportError::UnexpectedTpdu { .. })
        ));
    }

    #[test]
    fn malformed_tpdus() {
        // LI pointing past the end of the TPDU.
        let mut r = responder();
        assert_eq!(
            r.handle_input(&[3, 0, 0, 11, 0x20, 0xE0, 0, 0, 0, 1, 0]),
            Err(TransportError::Cotp(CotpError::LengthIndicator {
                li: 0x20,
                len: 7
            }))
        );
        assert!(r.is_closed());
        assert_eq!(output(&mut r)[5], 0x70, "an ER went out");

        // A class 0 CR with user data.
        let mut r = responder();
        assert_eq!(
            r.handle_input(&[3, 0, 0, 12, 6, 0xE0, 0, 0, 0, 1, 0, b'u']),
            Err(TransportError::ConnectUserData(TpduCode::ConnectionRequest))
        );

        // A DT larger than the negotiated size (but within the control limit).
        let (_, mut r) = connected();
        let mut config = TransportConfig {
            tpdu_size: 128,
            ..TransportConfig::default()
        };
        let mut small = Transport::responder(config.clone()).expect("valid");
        small.handle_input(&CR_FROM_CAPTURE).expect("CR");
        small.accept().expect("accept");
        let mut dt = vec![3, 0, 0, 0, 2, 0xF0, 0x80];
        dt.extend_from_slice(&[0; 200]);
        let len = dt.len() as u16;
        dt[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            small.handle_input(&dt),
            Err(TransportError::TpduTooLarge { len: 203, max: 128 })
        );

        // A CC that raises the TPDU size.
        config.tpdu_size = 1024;
        let mut i = Transport::initiator(config).expect("valid");
        output(&mut i);
        assert_eq!(
            i.handle_input(&CC_FROM_CAPTURE),
            Err(TransportError::TpduSizeRaised {
                proposed: 1024,
                confirmed: 2048
            })
        );
        // A second CR once open.
        assert!(matches!(
            r.handle_input(&CR_FROM_CAPTURE),
            Err(TransportError::UnexpectedTpdu { .. })
        ));
    }

    /// A TSDU that grows past the limit across many DTs fails at the DT that crosses it.
    #[test]
    fn tsdu_limit() {
        let mut i = initiator();
        let mut r = Transport::responder(TransportConfig {
            max_tsdu: 10_000,
            ..TransportConfig::default()
        })
        .expect("valid");
        r.handle_input(&output(&mut i)).expect("CR");
        r.accept().expect("accept");
        i.handle_input(&output(&mut r)).expect("CC");
        let mut dt = vec![3, 0, 0x08, 0x00, 2, 0xF0, 0x00];
        dt.resize(2048, 0x55);
        let mut fed = 0;
        let err = loop {
            match r.handle_input(&dt) {
                Ok(()) => fed += 1,
                Err(e) => break e,
            }
            assert!(fed < 100, "the limit never hit");
        };
        assert_eq!(err, TransportError::TsduTooLarge { max: 10_000 });
        assert!(!err.is_peer_fault());
        assert_eq!(fed, 10_000 / 2041);
        assert!(r.is_closed());
        assert!(
            !events(&mut r)
                .iter()
                .any(|e| matches!(e, TransportEvent::Data(_)))
        );
    }

    #[test]
    fn peer_error_tpdu() {
        let (mut i, _) = connected();
        i.handle_input(&[3, 0, 0, 9, 4, 0x70, 0, 1, 3]).expect("ER");
        assert_eq!(
            events(&mut i),
            [TransportEvent::Error {
                cause: RejectCause::INVALID_PARAMETER_VALUE,
                invalid_tpdu: Vec::new()
            }]
        );
        assert!(i.is_closed());
    }

    #[test]
    fn eof_in_the_middle() {
        let (mut i, mut r) = connected();
        i.send(&[1; 5000]).expect("send");
        let wire = output(&mut i);
        r.handle_input(&wire[..2100]).expect("partial");
        assert_eq!(r.handle_eof(), Err(TransportError::Truncated("TPKT")));
        let (mut i, mut r) = connected();
        i.send(&[1; 5000]).expect("send");
        let wire = output(&mut i);
        r.handle_input(&wire[..2052]).expect("one DT");
        assert_eq!(r.handle_eof(), Err(TransportError::Truncated("TSDU")));
    }

    /// The default limit, crossed by a peer sending 8192-octet DTs without EOT.
    #[test]
    fn default_tsdu_limit() {
        let mut r = Transport::responder(TransportConfig {
            tpdu_size: 8192,
            ..TransportConfig::default()
        })
        .expect("valid");
        r.handle_input(&[3, 0, 0, 14, 9, 0xE0, 0, 0, 0, 5, 0, 0xC0, 1, 13])
            .expect("CR");
        r.accept().expect("accept");
        let mut dt = vec![3, 0, 0x20, 0x04, 2, 0xF0, 0x00];
        dt.resize(8196, 0xAA);
        let per_dt = 8196 - 7;
        for _ in 0..DEFAULT_MAX_TSDU / per_dt {
            r.handle_input(&dt).expect("within the limit");
        }
        assert_eq!(
            r.handle_input(&dt),
            Err(TransportError::TsduTooLarge {
                max: DEFAULT_MAX_TSDU
            })
        );
    }

    proptest::proptest! {
        /// However TCP cuts the stream, the same TSDUs come out.
        #[test]
        fn any_chunking_gives_the_same_tsdus(
            sizes in proptest::collection::vec(1usize..5000, 1..6),
            cuts in proptest::collection::vec(1usize..3000, 1..40),
        ) {
            let (mut i, mut r) = connected();
            let tsdus: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(n, &len)| vec![n as u8; len])
                .collect();
            for tsdu in &tsdus {
                i.send(tsdu).expect("send");
            }
            let wire = output(&mut i);
            let mut rest = &wire[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at((*cut).min(rest.len()));
                r.handle_input(now).expect("valid stream");
                rest = later;
            }
            let got: Vec<TransportEvent> = events(&mut r);
            let want: Vec<TransportEvent> = tsdus.into_iter().map(TransportEvent::Data).collect();
            proptest::prop_assert_eq!(got, want);
        }

        /// Arbitrary octets never panic, for either end in any state reached by a handshake.
        #[test]
        fn arbitrary_input_never_panics(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            framed in proptest::bool::ANY,
        ) {
            let mut input = Vec::new();
            if framed {
                let len = (bytes.len() + 4).clamp(7, 65_535) as u16;
                input.extend_from_slice(&[3, 0]);
                input.extend_from_slice(&len.to_be_bytes());
            }
            input.extend_from_slice(&bytes);
            let (mut i, mut r) = connected();
            let _ = i.handle_input(&input);
            let _ = r.handle_input(&input);
            let mut fresh = responder();
            let _ = fresh.handle_input(&input);
            let mut waiting = initiator();
            let _ = waiting.handle_input(&input);
            for t in [&mut i, &mut r, &mut fresh, &mut waiting] {
                while t.poll_event().is_some() {}
                let _ = t.poll_transmit();
                let _ = t.handle_eof();
            }
        }
    }
}
