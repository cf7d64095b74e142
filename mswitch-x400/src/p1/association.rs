//! One P1 association as a sans-IO engine.
//!
//! An association is a stack: [`Transport`] (RFC 1006 TPKT + COTP class 0) carries TSDUs for
//! the [`SessionConnection`] (X.225 v2, half-duplex, minor sync, activity management,
//! exceptions), whose user data carries presentation PPDUs with ACSE, RTSE and the MTA bind.
//! The engine hides all of that behind the operations an MTA needs:
//!
//! - initiator: [`Association::initiator`] → [`P1Event::Bound`] → [`Association::transfer`] per
//!   MTS-APDU → [`P1Event::TransferConfirmed`] → [`Association::release`] →
//!   [`P1Event::Released`];
//! - responder: [`Association::responder`] → [`P1Event::BindRequest`] →
//!   [`Association::accept_bind`] or [`Association::refuse_bind`] → [`P1Event::Received`] per
//!   MTS-APDU → (make it durable) → [`Association::confirm_received`] → … →
//!   [`P1Event::Released`].
//!
//! Each MTS-APDU travels in one session activity: activity start, RTSE transfer segments (RTTR
//! octet strings) in P-DATA, activity end. The responder's activity-end acknowledgement is the
//! commitment: it is sent only when the application calls
//! [`Association::confirm_received`], which the P1 channel does after the queue has synced the
//! message. A transfer cut off before that acknowledgement is the sender's to retry.

use std::collections::VecDeque;

use crate::osi::cotp::DisconnectReason;
use crate::osi::session::{SessionConfig, SessionConnection, SessionError, SessionEvent, Tokens};
use crate::osi::transport::{Transport, TransportConfig, TransportError, TransportEvent};

use super::codec::{self, BindError, Contexts, UpperError};
use crate::upper::presentation::ContextDefinition;

/// The session tokens that make the RTSE turn: a transfer needs the data, minor-sync and
/// major/activity tokens (X.228 §7: the turn is all available tokens).
const TURN_TOKENS: Tokens = Tokens::from_bits_truncate(
    Tokens::DATA.bits() | Tokens::MINOR_SYNC.bits() | Tokens::MAJOR_ACTIVITY.bits(),
);

/// Largest MTS-APDU accepted from a peer, by default (the channel normally passes the switch's
/// message size limit).
pub const DEFAULT_MAX_APDU: usize = 64 * 1024 * 1024;

/// Size of the RTSE transfer segments we send, by default.
pub const DEFAULT_SEGMENT_SIZE: usize = 32 * 1024;

/// Which end of the association this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We opened the association (the P1 outbound channel).
    Initiator,
    /// The peer opened it (the P1 listener).
    Responder,
}

/// RTSE dialogue mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DialogueMode {
    /// Only the initiator transfers.
    #[default]
    Monologue,
    /// Two-way alternate: the turn may pass to the responder.
    TwoWayAlternate,
}

/// What one MTA presents to the other in the MTA bind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindCredentials {
    /// `MTAName`; `None` sends the unauthenticated (NULL) bind.
    pub mta_name: Option<String>,
    /// The simple password, if any.
    pub password: Option<Vec<u8>>,
}

/// Settings of one association.
#[derive(Debug, Clone)]
pub struct AssociationConfig {
    /// Our transport selector (calling for an initiator).
    pub local_tsel: Vec<u8>,
    /// The peer's transport selector (called, for an initiator).
    pub remote_tsel: Vec<u8>,
    /// Session selectors (calling, called).
    pub local_ssel: Vec<u8>,
    /// The peer's session selector.
    pub remote_ssel: Vec<u8>,
    /// Presentation selectors.
    pub local_psel: Vec<u8>,
    /// The peer's presentation selector.
    pub remote_psel: Vec<u8>,
    /// Dialogue mode an initiator proposes.
    pub dialogue_mode: DialogueMode,
    /// RTSE segment size for what we send.
    pub segment_size: usize,
    /// Largest MTS-APDU accepted.
    pub max_apdu: usize,
}

impl Default for AssociationConfig {
    fn default() -> Self {
        AssociationConfig {
            local_tsel: Vec::new(),
            remote_tsel: Vec::new(),
            local_ssel: Vec::new(),
            remote_ssel: Vec::new(),
            local_psel: Vec::new(),
            remote_psel: Vec::new(),
            dialogue_mode: DialogueMode::Monologue,
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_apdu: DEFAULT_MAX_APDU,
        }
    }
}

/// Where the association stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Transport and session connection in progress (initiator), or waiting for the peer's
    /// connect (responder).
    Connecting,
    /// Responder: the bind request is with the application.
    AwaitingBindDecision,
    /// Bound and idle: a transfer may start (if we hold the turn).
    Ready,
    /// Sending an MTS-APDU; waiting for the activity-end acknowledgement.
    Sending,
    /// Receiving an MTS-APDU.
    Receiving,
    /// Responder: a complete MTS-APDU is with the application, not yet acknowledged.
    AwaitingConfirm,
    /// Release requested, waiting for the answer.
    Releasing,
    /// Released, refused or aborted.
    Closed,
}

/// What the association tells the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum P1Event {
    /// Responder: the peer asks to bind; answer with [`Association::accept_bind`] or
    /// [`Association::refuse_bind`].
    BindRequest {
        /// What the initiator presented.
        credentials: BindCredentials,
        /// The dialogue mode it proposed.
        dialogue_mode: DialogueMode,
    },
    /// Initiator: the responder accepted the bind.
    Bound {
        /// What the responder presented.
        credentials: BindCredentials,
    },
    /// Initiator: the responder refused the association or the bind.
    BindRefused {
        /// Why, as far as the peer said.
        reason: String,
        /// Whether trying again later may work (busy, transient rejection).
        transient: bool,
    },
    /// A complete MTS-APDU arrived; make it durable, then [`Association::confirm_received`].
    Received {
        /// The MTS-APDU's encoding.
        apdu: Vec<u8>,
    },
    /// Our transfer was acknowledged: the peer has taken responsibility.
    TransferConfirmed,
    /// We now hold the turn (two-way-alternate): transfers may start.
    TurnReceived,
    /// We gave the turn to the peer, which asked for it.
    TurnGiven,
    /// The peer interrupted or discarded the activity it was sending; nothing was received.
    TransferDiscarded,
    /// The association was released in order.
    Released,
    /// The association ended abruptly (abort, disconnect, protocol error).
    Aborted {
        /// What happened.
        reason: String,
    },
}

/// Why an operation on an association failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssociationError {
    /// The transport layer failed (the peer sent bad TPKT/COTP, or a limit was hit).
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The session layer failed (the peer broke X.225).
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// An upper-layer PDU was invalid or not what P1 allows.
    #[error("{0}")]
    Upper(#[from] UpperError),
    /// The operation is not valid in the current state (a local programming error).
    #[error("operation not valid in state {0:?}")]
    State(State),
    /// An MTS-APDU larger than the limit.
    #[error("MTS-APDU larger than {0} bytes")]
    TooLarge(usize),
}

/// One P1 association.
#[derive(Debug)]
pub struct Association {
    role: Role,
    state: State,
    config: AssociationConfig,
    transport: Transport,
    session: SessionConnection,
    contexts: Contexts,
    /// Responder: the presentation contexts the initiator proposed.
    definitions: Vec<ContextDefinition>,
    bind: Option<BindCredentials>,
    events: VecDeque<P1Event>,
    received: Vec<u8>,
    activity_counter: u64,
    /// The dialogue mode in force (the initiator's proposal, which a responder accepts).
    dialogue_mode: DialogueMode,
    /// Whether we hold the turn (the session tokens a transfer needs).
    turn: bool,
    /// The peer asked for the turn; it is given as soon as we are idle.
    peer_wants_turn: bool,
    /// We asked for the turn and have not got it yet.
    turn_requested: bool,
    /// Release asked for while the peer held the turn: done once it comes back.
    release_pending: bool,
}

impl Association {
    /// An initiator: connects, then binds with `credentials`.
    pub fn initiator(
        config: AssociationConfig,
        credentials: BindCredentials,
    ) -> Result<Self, AssociationError> {
        let transport = Transport::initiator(TransportConfig {
            calling_tsel: config.local_tsel.clone(),
            called_tsel: config.remote_tsel.clone(),
            ..TransportConfig::default()
        })?;
        let session = SessionConnection::initiator(SessionConfig {
            calling_ssel: config.local_ssel.clone(),
            called_ssel: config.remote_ssel.clone(),
            ..SessionConfig::p1()
        });
        Ok(Self::new(
            Role::Initiator,
            config,
            transport,
            session,
            Some(credentials),
        ))
    }

    /// A responder for a connection the listener accepted.
    pub fn responder(config: AssociationConfig) -> Result<Self, AssociationError> {
        let transport = Transport::responder(TransportConfig {
            calling_tsel: config.remote_tsel.clone(),
            called_tsel: config.local_tsel.clone(),
            ..TransportConfig::default()
        })?;
        let session = SessionConnection::responder(SessionConfig {
            calling_ssel: config.remote_ssel.clone(),
            called_ssel: config.local_ssel.clone(),
            ..SessionConfig::p1()
        });
        Ok(Self::new(Role::Responder, config, transport, session, None))
    }

    /// A responder for a connection a listener has already taken up to the transport
    /// connection: `transport` is an open responder (it confirmed the peer's CR after checking
    /// the called selector), with the first TSDU (the session CONNECT) and whatever followed
    /// still queued. That input is acted on now: a peer protocol error in it leaves the
    /// association closed with [`P1Event::Aborted`] queued and the abort ready to send, as
    /// [`Association::handle_input`] would. Errs only if `transport` is not an open responder.
    pub fn responder_on(
        config: AssociationConfig,
        mut transport: Transport,
    ) -> Result<Self, AssociationError> {
        if transport.role() != crate::osi::transport::Role::Responder || !transport.is_open() {
            return Err(AssociationError::State(State::Connecting));
        }
        transport.set_max_tsdu(TransportConfig::default().max_tsdu)?;
        let session = SessionConnection::responder(SessionConfig {
            calling_ssel: config.remote_ssel.clone(),
            called_ssel: config.local_ssel.clone(),
            ..SessionConfig::p1()
        });
        let mut assoc = Self::new(Role::Responder, config, transport, session, None);
        if let Err(e) = assoc.on_transport_events() {
            assoc.fail(format!("{e}"));
        }
        Ok(assoc)
    }

    fn new(
        role: Role,
        config: AssociationConfig,
        transport: Transport,
        session: SessionConnection,
        bind: Option<BindCredentials>,
    ) -> Self {
        Association {
            role,
            state: State::Connecting,
            config,
            transport,
            session,
            contexts: Contexts::P1_PROPOSED,
            definitions: Vec::new(),
            bind,
            events: VecDeque::new(),
            received: Vec::new(),
            activity_counter: 0,
            dialogue_mode: DialogueMode::Monologue,
            turn: false,
            peer_wants_turn: false,
            turn_requested: false,
            release_pending: false,
        }
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the association stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether a transfer may start now.
    pub fn can_transfer(&self) -> bool {
        self.state == State::Ready && self.turn
    }

    /// Whether we hold the turn. The initiator starts with it; in two-way-alternate mode it
    /// passes to whoever asks for it (see [`Association::request_turn`]).
    pub fn has_turn(&self) -> bool {
        self.turn
    }

    /// The dialogue mode in force.
    pub fn dialogue_mode(&self) -> DialogueMode {
        self.dialogue_mode
    }

    /// Asks the peer for the turn (RT-TURN-PLEASE: S-TOKEN-PLEASE carrying RTTP), to transfer
    /// on this association in two-way-alternate mode; [`P1Event::TurnReceived`] follows when the
    /// peer gives it. A no-op if we hold it or have asked already.
    pub fn request_turn(&mut self) -> Result<(), AssociationError> {
        if self.turn || self.turn_requested {
            return Ok(());
        }
        if self.dialogue_mode != DialogueMode::TwoWayAlternate
            || !matches!(
                self.state,
                State::Ready | State::Receiving | State::AwaitingConfirm
            )
        {
            return Err(AssociationError::State(self.state));
        }
        let rttp = codec::turn_please(&self.contexts, 0);
        self.session.please_tokens(TURN_TOKENS, rttp)?;
        self.flush_session()?;
        self.turn_requested = true;
        Ok(())
    }

    /// Gives the turn to a peer that asked for it, if we are idle.
    fn give_turn_if_asked(&mut self) -> Result<(), AssociationError> {
        if self.peer_wants_turn && self.turn && self.state == State::Ready && !self.release_pending
        {
            self.session.control_give()?;
            self.flush_session()?;
            self.turn = false;
            self.peer_wants_turn = false;
            self.events.push_back(P1Event::TurnGiven);
        }
        Ok(())
    }

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), AssociationError> {
        if self.state == State::Closed {
            return Ok(());
        }
        let r = self.handle_input_inner(bytes);
        if let Err(e) = &r {
            self.fail(format!("{e}"));
        }
        r
    }

    fn handle_input_inner(&mut self, bytes: &[u8]) -> Result<(), AssociationError> {
        self.transport.handle_input(bytes)?;
        self.on_transport_events()
    }

    fn on_transport_events(&mut self) -> Result<(), AssociationError> {
        while let Some(ev) = self.transport.poll_event() {
            match ev {
                TransportEvent::ConnectIndication { called_tsel, .. } => {
                    // The listener serves the P1 responder at our transport selector; a
                    // connection for another selector is refused (X.224 reason 2, no session
                    // entity attached to that TSAP).
                    if !self.config.local_tsel.is_empty() && called_tsel != self.config.local_tsel {
                        self.transport
                            .refuse(DisconnectReason::SESSION_ENTITY_NOT_ATTACHED)?;
                        self.state = State::Closed;
                        self.events.push_back(P1Event::Aborted {
                            reason: format!(
                                "connection for transport selector {called_tsel:02x?}, not ours"
                            ),
                        });
                        return Ok(());
                    }
                    self.transport.accept()?;
                }
                TransportEvent::Connected { .. } => self.send_connect()?,
                TransportEvent::Data(tsdu) => {
                    self.session.handle_tsdu(&tsdu)?;
                    self.pump_session()?;
                }
                TransportEvent::Disconnected { .. } => {
                    self.closed_by_peer("transport disconnected by the peer");
                }
                other => {
                    self.closed_by_peer(&format!("transport: {other:?}"));
                }
            }
        }
        self.flush_session()?;
        Ok(())
    }

    /// Tells the engine the TCP connection ended (EOF or error).
    pub fn connection_lost(&mut self) {
        self.closed_by_peer("connection closed");
    }

    fn closed_by_peer(&mut self, reason: &str) {
        match self.state {
            State::Closed => {}
            State::Releasing => {
                self.state = State::Closed;
                self.events.push_back(P1Event::Released);
            }
            _ => {
                self.state = State::Closed;
                self.events.push_back(P1Event::Aborted {
                    reason: reason.to_owned(),
                });
            }
        }
    }

    fn fail(&mut self, reason: String) {
        if self.state != State::Closed {
            // Best effort: tell the peer, then stop.
            let _ = self.session.abort(Vec::new());
            let _ = self.flush_session();
            self.state = State::Closed;
            self.events.push_back(P1Event::Aborted { reason });
        }
    }

    fn send_connect(&mut self) -> Result<(), AssociationError> {
        let creds = self.bind.clone().unwrap_or_default();
        let cp = codec::connect_request(&self.config, &creds)?;
        self.session.connect(cp)?;
        self.flush_session()
    }

    fn flush_session(&mut self) -> Result<(), AssociationError> {
        while let Some(tsdu) = self.session.poll_tsdu() {
            self.transport.send(&tsdu)?;
        }
        Ok(())
    }

    fn pump_session(&mut self) -> Result<(), AssociationError> {
        while let Some(ev) = self.session.poll_event() {
            self.on_session_event(ev)?;
        }
        Ok(())
    }

    fn on_session_event(&mut self, ev: SessionEvent) -> Result<(), AssociationError> {
        match ev {
            SessionEvent::ConnectIndication { user_data, .. } => {
                if self.role != Role::Responder || self.state != State::Connecting {
                    return Err(UpperError::Protocol("unexpected S-CONNECT".into()).into());
                }
                let req = codec::parse_connect_request(&user_data)?;
                self.contexts = req.contexts;
                self.definitions = req.definitions;
                self.state = State::AwaitingBindDecision;
                self.dialogue_mode = req.dialogue_mode;
                self.events.push_back(P1Event::BindRequest {
                    credentials: req.credentials,
                    dialogue_mode: req.dialogue_mode,
                });
            }
            SessionEvent::Accepted { user_data, .. } => {
                if self.role != Role::Initiator || self.state != State::Connecting {
                    return Err(UpperError::Protocol("unexpected S-CONNECT confirm".into()).into());
                }
                match codec::parse_connect_accept(&user_data)? {
                    Ok(credentials) => {
                        self.state = State::Ready;
                        self.turn = true;
                        self.dialogue_mode = self.config.dialogue_mode;
                        self.events.push_back(P1Event::Bound { credentials });
                    }
                    Err((reason, transient)) => {
                        self.state = State::Closed;
                        self.events
                            .push_back(P1Event::BindRefused { reason, transient });
                    }
                }
            }
            SessionEvent::Refused { reason, user_data } => {
                let (text, transient) = codec::parse_connect_refuse(reason, &user_data);
                self.state = State::Closed;
                self.events.push_back(P1Event::BindRefused {
                    reason: text,
                    transient,
                });
            }
            SessionEvent::ActivityStart { .. } => {
                if self.state != State::Ready {
                    return Err(UpperError::Protocol("activity start while busy".into()).into());
                }
                self.received.clear();
                self.state = State::Receiving;
            }
            SessionEvent::Data(user_data) => {
                if self.state != State::Receiving {
                    return Err(UpperError::Protocol("data outside an activity".into()).into());
                }
                let limit = self.config.max_apdu;
                codec::append_segments(&user_data, &self.contexts, &mut self.received, limit)?;
            }
            SessionEvent::ActivityEnd { .. } => {
                if self.state != State::Receiving {
                    return Err(
                        UpperError::Protocol("activity end outside an activity".into()).into(),
                    );
                }
                let apdu = codec::unwrap_transfer(&self.received, &self.contexts)?;
                self.received = Vec::new();
                self.state = State::AwaitingConfirm;
                self.events.push_back(P1Event::Received { apdu });
            }
            SessionEvent::ActivityEndAck { .. } => {
                if self.state != State::Sending {
                    return Err(UpperError::Protocol("unexpected activity-end ack".into()).into());
                }
                self.state = State::Ready;
                self.events.push_back(P1Event::TransferConfirmed);
                self.give_turn_if_asked()?;
            }
            SessionEvent::ActivityInterrupted { .. } | SessionEvent::ActivityDiscarded { .. } => {
                self.received = Vec::new();
                self.state = State::Ready;
                self.events.push_back(P1Event::TransferDiscarded);
            }
            SessionEvent::FinishIndication { user_data } => {
                codec::check_release_request(&user_data)?;
                let rlre = codec::release_response(&self.contexts);
                self.session.disconnect(rlre)?;
                self.flush_session()?;
                self.transport.disconnect();
                self.state = State::Closed;
                self.events.push_back(P1Event::Released);
            }
            SessionEvent::Disconnected { .. } => {
                self.transport.disconnect();
                self.state = State::Closed;
                self.events.push_back(P1Event::Released);
            }
            SessionEvent::TokensPleased { .. }
                if self.dialogue_mode == DialogueMode::TwoWayAlternate && self.turn =>
            {
                self.peer_wants_turn = true;
                self.give_turn_if_asked()?;
            }
            SessionEvent::ControlGiven | SessionEvent::TokensGiven(_)
                if self.session.owned_tokens().contains(TURN_TOKENS) && !self.turn =>
            {
                self.turn = true;
                self.turn_requested = false;
                self.events.push_back(P1Event::TurnReceived);
                if self.release_pending && self.state == State::Ready {
                    self.release_pending = false;
                    self.start_release()?;
                }
            }
            SessionEvent::Aborted { user_data, .. } => {
                self.state = State::Closed;
                self.events.push_back(P1Event::Aborted {
                    reason: codec::describe_abort(&user_data),
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Responder: accepts the bind, presenting `credentials`.
    pub fn accept_bind(&mut self, credentials: BindCredentials) -> Result<(), AssociationError> {
        if self.state != State::AwaitingBindDecision {
            return Err(AssociationError::State(self.state));
        }
        let cpa = codec::connect_accept(
            &self.config,
            &self.contexts,
            &self.definitions,
            &credentials,
        )?;
        self.session.accept(cpa)?;
        self.flush_session()?;
        self.state = State::Ready;
        Ok(())
    }

    /// Responder: refuses the bind with an MTA-bind error (authentication-error, busy, …).
    pub fn refuse_bind(&mut self, error: BindError) -> Result<(), AssociationError> {
        if self.state != State::AwaitingBindDecision {
            return Err(AssociationError::State(self.state));
        }
        let cpr = codec::connect_refuse(&self.config, &self.contexts, &self.definitions, error)?;
        self.session
            .refuse(crate::osi::session::machine::REFUSE_WITH_USER_DATA, cpr)?;
        self.flush_session()?;
        self.state = State::Closed;
        Ok(())
    }

    /// Sends one MTS-APDU (its BER encoding) in one activity.
    pub fn transfer(&mut self, apdu: &[u8]) -> Result<(), AssociationError> {
        if !self.can_transfer() {
            return Err(AssociationError::State(self.state));
        }
        self.activity_counter += 1;
        let id = codec::activity_id(self.activity_counter);
        self.session.activity_start(id, Vec::new())?;
        for segment in codec::transfer_segments(apdu, &self.contexts, self.config.segment_size) {
            self.session.send_data(segment)?;
        }
        self.session.activity_end(Vec::new())?;
        self.flush_session()?;
        self.state = State::Sending;
        Ok(())
    }

    /// Responder: the received MTS-APDU is durable; acknowledge the activity.
    pub fn confirm_received(&mut self) -> Result<(), AssociationError> {
        if self.state != State::AwaitingConfirm {
            return Err(AssociationError::State(self.state));
        }
        self.session.activity_end_ack(Vec::new())?;
        self.flush_session()?;
        self.state = State::Ready;
        self.give_turn_if_asked()?;
        Ok(())
    }

    /// Initiator: releases the association in order (ACSE release over S-RELEASE).
    pub fn release(&mut self) -> Result<(), AssociationError> {
        if self.state != State::Ready || self.role != Role::Initiator {
            return Err(AssociationError::State(self.state));
        }
        if !self.turn {
            // RT-CLOSE needs the turn: ask for it, release when it comes.
            self.release_pending = true;
            return self.request_turn();
        }
        self.start_release()
    }

    fn start_release(&mut self) -> Result<(), AssociationError> {
        let rlrq = codec::release_request(&self.contexts);
        self.session.finish(rlrq)?;
        self.flush_session()?;
        self.state = State::Releasing;
        Ok(())
    }

    /// Aborts the association (A-ABORT over S-U-ABORT); used when we cannot go on, for
    /// instance when the queue cannot take a message: the peer keeps responsibility.
    pub fn abort(&mut self) {
        if self.state != State::Closed {
            let aru = codec::abort_request(&self.contexts);
            let _ = self.session.abort(aru);
            let _ = self.flush_session();
            self.transport.disconnect();
            self.state = State::Closed;
        }
    }

    /// The next event for the MTA.
    pub fn poll_event(&mut self) -> Option<P1Event> {
        self.events.pop_front()
    }

    /// Bytes to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transport.poll_transmit()
    }
}

#[cfg(test)]
mod tests;
