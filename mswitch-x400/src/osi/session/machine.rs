//! The session protocol machine (X.225 §7 and Annex A, simplified to the functional units
//! P1 and P3 need) for one session connection, initiator or responder.
//!
//! Commands check the local user's right to act (state, tokens, activity rules) and queue the
//! TSDUs to send; [`SessionConnection::handle_tsdu`] checks the peer's SPDUs the same way and
//! queues events. A peer protocol error closes the connection: an ABORT (provider abort,
//! protocol error, transport released) is queued once the connection exists, and the error is
//! returned. See the [module documentation](super) for the order in which a driver calls
//! the methods.
//!
//! Choices this implementation makes where X.225 leaves them open:
//! - Token positions: the initiator proposes [`SessionConfig::initiator_tokens`] on its side
//!   and the rest on the responder's side; a CONNECT that leaves a token to the called
//!   SS-user's choice gets it on the initiator's side.
//! - Dialogue mode: when both Half-duplex and Duplex remain after intersecting the proposal
//!   with the responder's configuration, Half-duplex is kept.
//! - With Activity management selected, data is only sent inside an activity (X.215 §11.3);
//!   received data outside an activity is accepted.
//! - Serial numbers received in ACTIVITY END and MINOR SYNC POINT are taken as they come
//!   (V(M) follows the peer); acknowledgements report the serial the peer sent.
//! - The transport connection is never reused: every ABORT, REFUSE and FINISH releases it.

use std::collections::VecDeque;

use super::spdu::{
    self, ConnectAccept, DEFAULT_MAX_USER_DATA, MAX_ACTIVITY_ID_LEN, MAX_CONNECT_USER_DATA,
    MAX_SELECTOR_LEN, MAX_SERIAL, Spdu, TD_PROTOCOL_ERROR, TD_RELEASE, TD_USER_ABORT, VERSION_2,
};
use super::{FunctionalUnits, SessionError, Tokens};

/// Refuse reason: rejection by the SPM, protocol versions not supported (128 + 4).
pub const REFUSE_VERSION_NOT_SUPPORTED: u8 = 0x84;
/// Refuse reason: rejection by the SPM, reason not specified (128 + 5).
pub const REFUSE_SPM_NOT_SPECIFIED: u8 = 0x85;
/// Refuse reason: rejection by the called SS-user with user data (2); only this reason may
/// carry user data.
pub const REFUSE_WITH_USER_DATA: u8 = 2;

/// Configuration of one session connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our session selector as initiator (Calling, PI 51); ignored by a responder.
    pub calling_ssel: Vec<u8>,
    /// The session selector of the called SSAP: the one the initiator asks for, and the one a
    /// responder answers with (Responding, PI 52; when empty the responder echoes the CONNECT's
    /// Called Session Selector).
    pub called_ssel: Vec<u8>,
    /// Functional units proposed (initiator) or accepted (responder); units this
    /// implementation does not support ([`FunctionalUnits::SUPPORTED`]) are left out.
    pub requirements: FunctionalUnits,
    /// Initiator only: the available tokens the initiator keeps at connection time; the others
    /// start on the responder's side. P1 keeps them all.
    pub initiator_tokens: Tokens,
    /// Largest SS-user data accepted in one received SPDU.
    pub max_user_data: usize,
}

impl Default for SessionConfig {
    /// The P1 configuration ([`SessionConfig::p1`]).
    fn default() -> Self {
        Self::p1()
    }
}

impl SessionConfig {
    /// P1 in normal mode: Half-duplex, Minor synchronize, Activity management, Exceptions
    /// (`0x0249`); the initiator holds all tokens.
    pub fn p1() -> Self {
        Self {
            calling_ssel: Vec::new(),
            called_ssel: Vec::new(),
            requirements: FunctionalUnits::P1,
            initiator_tokens: Tokens::ALL,
            max_user_data: DEFAULT_MAX_USER_DATA,
        }
    }

    /// P3: Kernel and Duplex; there are no tokens.
    pub fn p3() -> Self {
        Self {
            requirements: FunctionalUnits::P3,
            ..Self::p1()
        }
    }
}

/// The state of a session connection (a summary of the X.225 Annex A states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionState {
    /// No CONNECT sent (initiator) or received (responder) yet (STA01).
    Idle,
    /// CONNECT sent, waiting for ACCEPT or REFUSE (STA02A).
    AwaitAccept,
    /// CONNECT received, waiting for the local user to accept or refuse (STA08).
    AwaitConnectResponse,
    /// Connection established (STA713 and its activity sub-states).
    DataTransfer,
    /// FINISH sent, waiting for DISCONNECT (STA03).
    AwaitDisconnect,
    /// FINISH received, waiting for the local user to disconnect (STA09).
    AwaitFinishResponse,
    /// Released, refused or aborted; the transport connection may be closed once the output
    /// queue is drained.
    Closed,
}

/// What the session layer tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// S-CONNECT indication (responder): answer with `accept` or `refuse`.
    ConnectIndication {
        /// The peer's Calling Session Selector (empty when absent).
        calling_ssel: Vec<u8>,
        /// The Called Session Selector the peer asked for (empty when absent).
        called_ssel: Vec<u8>,
        /// The functional units that `accept` will select (proposal ∩ configuration).
        requirements: FunctionalUnits,
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-CONNECT confirm, accepted (initiator).
    Accepted {
        /// The functional units selected.
        requirements: FunctionalUnits,
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-CONNECT confirm, refused (initiator); the connection is closed.
    Refused {
        /// The Reason Code (0 when absent).
        reason: u8,
        /// SS-user data (only with reason 2).
        user_data: Vec<u8>,
    },
    /// S-DATA indication.
    Data(Vec<u8>),
    /// S-TOKEN-GIVE indication: these tokens are now ours.
    TokensGiven(Tokens),
    /// S-TOKEN-PLEASE indication: the peer asks for these tokens.
    TokensPleased {
        /// The tokens asked for.
        tokens: Tokens,
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-CONTROL-GIVE indication: all available tokens are now ours.
    ControlGiven,
    /// S-SYNC-MINOR indication.
    MinorSyncPoint {
        /// The serial number of the synchronization point.
        serial: u32,
        /// Whether the peer asks for a confirmation (`minor_sync_ack`).
        confirm_required: bool,
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-SYNC-MINOR confirm.
    MinorSyncAck {
        /// The serial number confirmed.
        serial: u32,
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-ACTIVITY-START indication.
    ActivityStart {
        /// The activity identifier.
        id: Vec<u8>,
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-ACTIVITY-END indication: answer with `activity_end_ack`.
    ActivityEnd {
        /// The serial number of the end of the activity.
        serial: u32,
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-ACTIVITY-END confirm: the peer acknowledged the activity.
    ActivityEndAck {
        /// The serial number acknowledged.
        serial: u32,
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-ACTIVITY-INTERRUPT indication: answer with `activity_interrupt_ack`.
    ActivityInterrupted {
        /// The reason code.
        reason: u8,
    },
    /// S-ACTIVITY-INTERRUPT confirm; all available tokens are ours.
    ActivityInterruptAck,
    /// S-ACTIVITY-DISCARD indication: answer with `activity_discard_ack`.
    ActivityDiscarded {
        /// The reason code.
        reason: u8,
    },
    /// S-ACTIVITY-DISCARD confirm; all available tokens are ours.
    ActivityDiscardAck,
    /// S-U-EXCEPTION-REPORT (EXCEPTION DATA, `reason` set) or S-P-EXCEPTION-REPORT
    /// (EXCEPTION REPORT, `reason` absent) indication.
    ExceptionReport {
        /// The user's reason code; `None` for a provider exception.
        reason: Option<u8>,
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-RELEASE indication: answer with `disconnect`.
    FinishIndication {
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-RELEASE confirm: the connection is released.
    Disconnected {
        /// SS-user data.
        user_data: Vec<u8>,
    },
    /// S-U-ABORT or S-P-ABORT indication: the peer aborted; the connection is closed.
    Aborted {
        /// Whether the peer's session provider (not its user) aborted.
        provider: bool,
        /// SS-user data.
        user_data: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Initiator,
    Responder,
}

/// An activity or token operation waiting for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    EndSent(u32),
    EndReceived(u32),
    InterruptSent,
    InterruptReceived,
    DiscardSent,
    DiscardReceived,
    ControlGiveSent,
}

/// The four tokens and their place in the Token Setting Item (shift of their two bits).
const TOKEN_SHIFTS: [(Tokens, u32); 4] = [
    (Tokens::DATA, 0),
    (Tokens::MINOR_SYNC, 2),
    (Tokens::MAJOR_ACTIVITY, 4),
    (Tokens::RELEASE, 6),
];

/// One session connection, sans IO.
#[derive(Debug)]
pub struct SessionConnection {
    role: Role,
    config: SessionConfig,
    state: SessionState,
    /// Proposed (before ACCEPT) or selected functional units.
    requirements: FunctionalUnits,
    owned: Tokens,
    in_activity: bool,
    activity_id: Option<Vec<u8>>,
    pending: Pending,
    /// V(M): the next serial number.
    serial: u32,
    /// Responder: whether the CONNECT carried a Token Setting Item (the ACCEPT echoes one).
    peer_token_setting: bool,
    /// Responder: the Called Session Selector of the CONNECT.
    peer_called_ssel: Option<Vec<u8>>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
}

impl SessionConnection {
    /// A connection that will send the CONNECT (call [`SessionConnection::connect`]).
    pub fn initiator(config: SessionConfig) -> Self {
        Self::new(Role::Initiator, config)
    }

    /// A connection that waits for a CONNECT from the peer.
    pub fn responder(config: SessionConfig) -> Self {
        Self::new(Role::Responder, config)
    }

    fn new(role: Role, mut config: SessionConfig) -> Self {
        config.requirements = config.requirements & FunctionalUnits::SUPPORTED;
        Self {
            role,
            requirements: config.requirements,
            config,
            state: SessionState::Idle,
            owned: Tokens::NONE,
            in_activity: false,
            activity_id: None,
            pending: Pending::None,
            serial: 1,
            peer_token_setting: false,
            peer_called_ssel: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ----- getters -----

    /// The current state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Whether this side sent the CONNECT.
    pub fn is_initiator(&self) -> bool {
        self.role == Role::Initiator
    }

    /// The functional units proposed (before the connection is set up) or selected.
    pub fn requirements(&self) -> FunctionalUnits {
        self.requirements
    }

    /// The tokens that exist on this connection.
    pub fn available_tokens(&self) -> Tokens {
        self.requirements.available_tokens()
    }

    /// The tokens this side holds.
    pub fn owned_tokens(&self) -> Tokens {
        self.owned
    }

    /// Whether an activity is in progress (Vact).
    pub fn in_activity(&self) -> bool {
        self.in_activity
    }

    /// The identifier of the activity in progress.
    pub fn activity_id(&self) -> Option<&[u8]> {
        self.activity_id.as_deref()
    }

    /// V(M): the serial number the next synchronization point or activity end will carry.
    pub fn next_serial(&self) -> u32 {
        self.serial
    }

    // ----- output -----

    /// The next TSDU to hand to the transport.
    pub fn poll_tsdu(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next event for the session user.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    // ----- input -----

    /// Feeds one TSDU received from the transport. On a peer protocol error the connection is
    /// closed (with an ABORT queued once the connection exists) and the error returned.
    pub fn handle_tsdu(&mut self, tsdu: &[u8]) -> Result<(), SessionError> {
        if self.state == SessionState::Closed {
            return Err(SessionError::Closed);
        }
        let spdus = match spdu::parse_tsdu_with_limit(tsdu, self.config.max_user_data) {
            Ok(spdus) => spdus,
            Err(e) => return Err(self.fail(e)),
        };
        for s in spdus {
            if let Err(e) = self.handle_spdu(s) {
                return Err(self.fail(e));
            }
        }
        Ok(())
    }

    /// Closes the connection after a peer error, with an ABORT if there is a connection.
    fn fail(&mut self, e: SessionError) -> SessionError {
        tracing::debug!(error = %e, state = ?self.state, "session protocol error");
        if !matches!(self.state, SessionState::Idle | SessionState::Closed) {
            let ab = Spdu::Abort {
                transport_disconnect: Some(TD_RELEASE | TD_PROTOCOL_ERROR),
                reflect: Vec::new(),
                user_data: Vec::new(),
            };
            if let Ok(t) = spdu::emit_tsdu(&[ab]) {
                self.transmit.push_back(t);
            }
        }
        self.close();
        e
    }

    fn close(&mut self) {
        self.state = SessionState::Closed;
        self.in_activity = false;
        self.pending = Pending::None;
    }

    fn unexpected(&self, s: &Spdu) -> SessionError {
        SessionError::UnexpectedSpdu {
            spdu: s.name(),
            state: self.state,
        }
    }

    fn handle_spdu(&mut self, s: Spdu) -> Result<(), SessionError> {
        // ABORT is valid in every state once a connection is being set up.
        if let Spdu::Abort {
            transport_disconnect,
            user_data,
            ..
        } = s
        {
            if self.state == SessionState::Idle {
                return Err(SessionError::UnexpectedSpdu {
                    spdu: "AB",
                    state: self.state,
                });
            }
            let provider = transport_disconnect.unwrap_or(0) & TD_USER_ABORT == 0;
            self.close();
            self.events.push_back(SessionEvent::Aborted {
                provider,
                user_data,
            });
            return Ok(());
        }
        match self.state {
            SessionState::Idle => match s {
                Spdu::Connect(ca) if self.role == Role::Responder => self.on_connect(ca),
                other => Err(self.unexpected(&other)),
            },
            SessionState::AwaitAccept => match s {
                Spdu::Accept(ca) => self.on_accept(ca),
                Spdu::Refuse {
                    reason, user_data, ..
                } => {
                    self.close();
                    self.events.push_back(SessionEvent::Refused {
                        reason: reason.unwrap_or(0),
                        user_data,
                    });
                    Ok(())
                }
                other => Err(self.unexpected(&other)),
            },
            SessionState::DataTransfer => self.on_data_phase(s),
            SessionState::AwaitDisconnect => match s {
                Spdu::Disconnect { user_data } => {
                    self.close();
                    self.events
                        .push_back(SessionEvent::Disconnected { user_data });
                    Ok(())
                }
                // In Duplex the peer may still send data until it sees our FINISH.
                Spdu::GiveTokens { tokens } if tokens.is_empty() => Ok(()),
                Spdu::DataTransfer { user_information }
                    if self.requirements.contains(FunctionalUnits::DUPLEX) =>
                {
                    self.events.push_back(SessionEvent::Data(user_information));
                    Ok(())
                }
                other => Err(self.unexpected(&other)),
            },
            SessionState::AwaitConnectResponse | SessionState::AwaitFinishResponse => {
                Err(self.unexpected(&s))
            }
            SessionState::Closed => Err(SessionError::Closed),
        }
    }

    /// Responder: a CONNECT arrived (X.225 §7.1).
    fn on_connect(&mut self, ca: ConnectAccept) -> Result<(), SessionError> {
        if ca.version & VERSION_2 == 0 {
            self.queue_refuse_by_spm(REFUSE_VERSION_NOT_SUPPORTED);
            return Err(SessionError::VersionNotSupported);
        }
        let proposed = ca.requirements.unwrap_or(FunctionalUnits::ABSENT_DEFAULT);
        let mut selected = proposed & self.config.requirements;
        if selected.contains(FunctionalUnits::HALF_DUPLEX | FunctionalUnits::DUPLEX) {
            selected = selected & !FunctionalUnits::DUPLEX;
        }
        if !selected.intersects(FunctionalUnits::HALF_DUPLEX | FunctionalUnits::DUPLEX) {
            self.queue_refuse_by_spm(REFUSE_SPM_NOT_SPECIFIED);
            return Err(SessionError::Incompatible(
                "no dialogue mode (half-duplex or duplex) in common",
            ));
        }
        if !selected.contains(FunctionalUnits::HALF_DUPLEX) {
            selected = selected & !FunctionalUnits::EXCEPTIONS;
        }
        let setting = ca.token_setting.unwrap_or(0);
        let mut owned = Tokens::NONE;
        for (token, shift) in TOKEN_SHIFTS {
            if !selected.available_tokens().contains(token) {
                continue;
            }
            match (setting >> shift) & 0b11 {
                0b00 | 0b10 => {}
                0b01 => owned = owned | token,
                _ => {
                    return Err(SessionError::BadParameter {
                        spdu: "CN",
                        code: spdu::pi::TOKEN_SETTING_ITEM,
                        reason: "reserved token setting",
                    });
                }
            }
        }
        self.requirements = selected;
        self.owned = owned;
        self.peer_token_setting = ca.token_setting.is_some();
        self.peer_called_ssel = ca.called_ssel.clone();
        if let Some(n) = ca.initial_serial {
            self.serial = n;
        }
        self.state = SessionState::AwaitConnectResponse;
        self.events.push_back(SessionEvent::ConnectIndication {
            calling_ssel: ca.calling_ssel.unwrap_or_default(),
            called_ssel: ca.called_ssel.unwrap_or_default(),
            requirements: selected,
            user_data: ca.user_data,
        });
        Ok(())
    }

    fn queue_refuse_by_spm(&mut self, reason: u8) {
        let rf = Spdu::Refuse {
            transport_disconnect: Some(TD_RELEASE),
            requirements: None,
            version: Some(VERSION_2),
            reason: Some(reason),
            user_data: Vec::new(),
        };
        if let Ok(t) = spdu::emit_tsdu(&[rf]) {
            self.transmit.push_back(t);
        }
    }

    /// Initiator: an ACCEPT arrived (X.225 §7.4).
    fn on_accept(&mut self, ca: ConnectAccept) -> Result<(), SessionError> {
        if ca.version & VERSION_2 == 0 {
            return Err(SessionError::Negotiation(
                "ACCEPT does not select version 2",
            ));
        }
        let selected = ca.requirements.unwrap_or(FunctionalUnits::ABSENT_DEFAULT);
        if !self.requirements.contains(selected) {
            return Err(SessionError::Negotiation(
                "ACCEPT selects functional units that were not proposed",
            ));
        }
        let hd = selected.contains(FunctionalUnits::HALF_DUPLEX);
        let fd = selected.contains(FunctionalUnits::DUPLEX);
        if hd == fd {
            return Err(SessionError::Negotiation(
                "ACCEPT must select exactly one of half-duplex and duplex",
            ));
        }
        self.requirements = selected;
        self.owned = selected.available_tokens() & self.config.initiator_tokens;
        self.state = SessionState::DataTransfer;
        self.events.push_back(SessionEvent::Accepted {
            requirements: selected,
            user_data: ca.user_data,
        });
        if let Some(tokens) = ca.token_item {
            let tokens = tokens & self.owned;
            if !tokens.is_empty() {
                self.events.push_back(SessionEvent::TokensPleased {
                    tokens,
                    user_data: Vec::new(),
                });
            }
        }
        Ok(())
    }

    fn has(&self, fu: FunctionalUnits) -> bool {
        self.requirements.contains(fu)
    }

    /// Fails when the peer uses a functional unit that was not selected.
    fn peer_needs(&self, s: &Spdu, fu: FunctionalUnits) -> Result<(), SessionError> {
        if self.has(fu) {
            Ok(())
        } else {
            Err(self.unexpected(s))
        }
    }

    /// Fails when the peer acts without tokens it must hold (we hold some of them).
    fn peer_holds(&self, s: &Spdu, tokens: Tokens) -> Result<(), SessionError> {
        let needed = tokens & self.available_tokens();
        if self.owned.intersects(needed) {
            return Err(SessionError::PeerTokenViolation {
                spdu: s.name(),
                tokens: needed & self.owned,
            });
        }
        Ok(())
    }

    fn on_data_phase(&mut self, s: Spdu) -> Result<(), SessionError> {
        // While our ACTIVITY INTERRUPT / DISCARD waits for its ack, the peer's data and
        // synchronization SPDUs are discarded (X.225 §7.37, §7.39).
        if matches!(self.pending, Pending::InterruptSent | Pending::DiscardSent)
            && matches!(
                s,
                Spdu::DataTransfer { .. }
                    | Spdu::MinorSyncPoint { .. }
                    | Spdu::MinorSyncAck { .. }
                    | Spdu::ActivityEnd { .. }
                    | Spdu::ExceptionData { .. }
                    | Spdu::PleaseTokens { .. }
            )
        {
            return Ok(());
        }
        let any_pending = self.pending != Pending::None;
        match s {
            Spdu::GiveTokens { tokens } => {
                if tokens.is_empty() {
                    return Ok(());
                }
                let available = self.available_tokens();
                if !available.contains(tokens) || self.owned.intersects(tokens) {
                    return Err(SessionError::PeerTokenViolation { spdu: "GT", tokens });
                }
                self.owned = self.owned | tokens;
                self.events.push_back(SessionEvent::TokensGiven(tokens));
                Ok(())
            }
            Spdu::PleaseTokens { tokens, user_data } => {
                if !self.available_tokens().contains(tokens) {
                    return Err(SessionError::PeerTokenViolation { spdu: "PT", tokens });
                }
                self.events
                    .push_back(SessionEvent::TokensPleased { tokens, user_data });
                Ok(())
            }
            Spdu::GiveTokensConfirm => {
                self.peer_needs(&s, FunctionalUnits::ACTIVITY_MANAGEMENT)?;
                if self.in_activity || any_pending {
                    return Err(self.unexpected(&s));
                }
                self.send(&[Spdu::GiveTokensAck])?;
                self.owned = self.available_tokens();
                self.events.push_back(SessionEvent::ControlGiven);
                Ok(())
            }
            Spdu::GiveTokensAck => {
                if self.pending != Pending::ControlGiveSent {
                    return Err(self.unexpected(&s));
                }
                self.pending = Pending::None;
                Ok(())
            }
            Spdu::DataTransfer { .. } => {
                if any_pending {
                    return Err(self.unexpected(&s));
                }
                self.peer_holds(&s, Tokens::DATA)?;
                if let Spdu::DataTransfer { user_information } = s {
                    self.events.push_back(SessionEvent::Data(user_information));
                }
                Ok(())
            }
            Spdu::MinorSyncPoint { .. } => {
                self.peer_needs(&s, FunctionalUnits::MINOR_SYNC)?;
                if any_pending
                    || (self.has(FunctionalUnits::ACTIVITY_MANAGEMENT) && !self.in_activity)
                {
                    return Err(self.unexpected(&s));
                }
                self.peer_holds(&s, Tokens::MINOR_SYNC | Tokens::DATA)?;
                if let Spdu::MinorSyncPoint {
                    confirm_required,
                    serial,
                    user_data,
                } = s
                {
                    self.serial = next_serial(serial);
                    self.events.push_back(SessionEvent::MinorSyncPoint {
                        serial,
                        confirm_required,
                        user_data,
                    });
                }
                Ok(())
            }
            Spdu::MinorSyncAck { serial, user_data } => {
                if !self.has(FunctionalUnits::MINOR_SYNC) {
                    return Err(SessionError::UnexpectedSpdu {
                        spdu: "MIA",
                        state: self.state,
                    });
                }
                self.events
                    .push_back(SessionEvent::MinorSyncAck { serial, user_data });
                Ok(())
            }
            Spdu::ActivityStart { .. } => {
                self.peer_needs(&s, FunctionalUnits::ACTIVITY_MANAGEMENT)?;
                if self.in_activity || any_pending {
                    return Err(self.unexpected(&s));
                }
                self.peer_holds(
                    &s,
                    Tokens::MAJOR_ACTIVITY | Tokens::DATA | Tokens::MINOR_SYNC,
                )?;
                if let Spdu::ActivityStart { id, user_data } = s {
                    self.in_activity = true;
                    self.serial = 1;
                    self.activity_id = Some(id.clone());
                    self.events
                        .push_back(SessionEvent::ActivityStart { id, user_data });
                }
                Ok(())
            }
            Spdu::ActivityEnd { .. } => {
                self.peer_needs(&s, FunctionalUnits::ACTIVITY_MANAGEMENT)?;
                if !self.in_activity || any_pending {
                    return Err(self.unexpected(&s));
                }
                self.peer_holds(
                    &s,
                    Tokens::MAJOR_ACTIVITY | Tokens::DATA | Tokens::MINOR_SYNC,
                )?;
                if let Spdu::ActivityEnd { serial, user_data } = s {
                    self.pending = Pending::EndReceived(serial);
                    self.serial = next_serial(serial);
                    self.events
                        .push_back(SessionEvent::ActivityEnd { serial, user_data });
                }
                Ok(())
            }
            Spdu::ActivityEndAck { serial, user_data } => {
                if !matches!(self.pending, Pending::EndSent(_)) {
                    return Err(SessionError::UnexpectedSpdu {
                        spdu: "AEA",
                        state: self.state,
                    });
                }
                self.pending = Pending::None;
                self.in_activity = false;
                self.activity_id = None;
                self.events
                    .push_back(SessionEvent::ActivityEndAck { serial, user_data });
                Ok(())
            }
            Spdu::ActivityInterrupt { reason } | Spdu::ActivityDiscard { reason } => {
                self.peer_needs(&s, FunctionalUnits::ACTIVITY_MANAGEMENT)?;
                if !self.in_activity || any_pending {
                    return Err(self.unexpected(&s));
                }
                self.peer_holds(&s, Tokens::MAJOR_ACTIVITY)?;
                if matches!(s, Spdu::ActivityInterrupt { .. }) {
                    self.pending = Pending::InterruptReceived;
                    self.events
                        .push_back(SessionEvent::ActivityInterrupted { reason });
                } else {
                    self.pending = Pending::DiscardReceived;
                    self.events
                        .push_back(SessionEvent::ActivityDiscarded { reason });
                }
                Ok(())
            }
            Spdu::ActivityInterruptAck | Spdu::ActivityDiscardAck => {
                let (want, event) = if matches!(s, Spdu::ActivityInterruptAck) {
                    (Pending::InterruptSent, SessionEvent::ActivityInterruptAck)
                } else {
                    (Pending::DiscardSent, SessionEvent::ActivityDiscardAck)
                };
                if self.pending != want {
                    return Err(self.unexpected(&s));
                }
                self.pending = Pending::None;
                self.in_activity = false;
                self.activity_id = None;
                self.owned = self.available_tokens();
                self.events.push_back(event);
                Ok(())
            }
            Spdu::ExceptionReport { .. } => {
                self.peer_needs(&s, FunctionalUnits::EXCEPTIONS)?;
                self.events.push_back(SessionEvent::ExceptionReport {
                    reason: None,
                    user_data: Vec::new(),
                });
                Ok(())
            }
            Spdu::ExceptionData { .. } => {
                self.peer_needs(&s, FunctionalUnits::EXCEPTIONS)?;
                // S-U-EXCEPTION-REPORT is sent by the side without the data token.
                if !self.owned.contains(Tokens::DATA) {
                    return Err(SessionError::PeerTokenViolation {
                        spdu: "ED",
                        tokens: Tokens::DATA,
                    });
                }
                if let Spdu::ExceptionData { reason, user_data } = s {
                    self.events.push_back(SessionEvent::ExceptionReport {
                        reason: Some(reason),
                        user_data,
                    });
                }
                Ok(())
            }
            Spdu::Finish { .. } => {
                if any_pending || self.in_activity {
                    return Err(self.unexpected(&s));
                }
                self.peer_holds(&s, Tokens::ALL)?;
                if let Spdu::Finish { user_data, .. } = s {
                    self.state = SessionState::AwaitFinishResponse;
                    self.events
                        .push_back(SessionEvent::FinishIndication { user_data });
                }
                Ok(())
            }
            other => Err(self.unexpected(&other)),
        }
    }

    // ----- commands -----

    fn send(&mut self, spdus: &[Spdu]) -> Result<(), SessionError> {
        let tsdu = spdu::emit_tsdu(spdus)?;
        self.transmit.push_back(tsdu);
        Ok(())
    }

    /// Sends a category 2 SPDU behind an empty GIVE TOKENS (basic concatenation).
    fn send_cat2(&mut self, s: Spdu) -> Result<(), SessionError> {
        self.send(&[
            Spdu::GiveTokens {
                tokens: Tokens::NONE,
            },
            s,
        ])
    }

    fn require_state(
        &self,
        command: &'static str,
        state: SessionState,
    ) -> Result<(), SessionError> {
        if self.state == SessionState::Closed {
            return Err(SessionError::Closed);
        }
        if self.state != state {
            return Err(SessionError::InvalidState {
                command,
                state: self.state,
            });
        }
        Ok(())
    }

    fn require_fu(&self, command: &'static str, fu: FunctionalUnits) -> Result<(), SessionError> {
        if self.has(fu) {
            Ok(())
        } else {
            Err(SessionError::FunctionalUnitNotSelected {
                command,
                missing: fu & !self.requirements,
            })
        }
    }

    /// Fails unless we hold `tokens` (those of them that exist on this connection).
    fn require_tokens(&self, command: &'static str, tokens: Tokens) -> Result<(), SessionError> {
        let missing = (tokens & self.available_tokens()).difference(self.owned);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(SessionError::TokensNotOwned { command, missing })
        }
    }

    fn require_no_pending(&self, command: &'static str) -> Result<(), SessionError> {
        let reason = match self.pending {
            Pending::None => return Ok(()),
            Pending::EndSent(_) => "waiting for the activity end acknowledgement",
            Pending::EndReceived(_) => "the activity end must be acknowledged first",
            Pending::InterruptSent | Pending::DiscardSent => {
                "waiting for the activity interrupt/discard acknowledgement"
            }
            Pending::InterruptReceived | Pending::DiscardReceived => {
                "the activity interrupt/discard must be acknowledged first"
            }
            Pending::ControlGiveSent => "waiting for the control give acknowledgement",
        };
        Err(SessionError::ActivityRule { command, reason })
    }

    fn require_activity(&self, command: &'static str, inside: bool) -> Result<(), SessionError> {
        if self.in_activity == inside {
            Ok(())
        } else if inside {
            Err(SessionError::ActivityRule {
                command,
                reason: "no activity in progress",
            })
        } else {
            Err(SessionError::ActivityRule {
                command,
                reason: "an activity is in progress",
            })
        }
    }

    /// S-CONNECT request: sends the CONNECT (initiator, in state Idle).
    pub fn connect(&mut self, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "connect";
        if self.role != Role::Initiator {
            return Err(SessionError::InvalidState {
                command: CMD,
                state: self.state,
            });
        }
        self.require_state(CMD, SessionState::Idle)?;
        let proposed = self.config.requirements;
        if !proposed.intersects(FunctionalUnits::HALF_DUPLEX | FunctionalUnits::DUPLEX) {
            return Err(SessionError::Config(
                "requirements must include half-duplex or duplex",
            ));
        }
        if self.config.calling_ssel.len() > MAX_SELECTOR_LEN
            || self.config.called_ssel.len() > MAX_SELECTOR_LEN
        {
            return Err(SessionError::Config(
                "session selector longer than 16 octets",
            ));
        }
        if user_data.len() > MAX_CONNECT_USER_DATA {
            return Err(SessionError::UserDataTooLong {
                len: user_data.len(),
                max: MAX_CONNECT_USER_DATA,
            });
        }
        let available = proposed.available_tokens();
        let token_setting = (!available.is_empty()).then(|| {
            TOKEN_SHIFTS
                .iter()
                .filter(|(t, _)| {
                    available.contains(*t) && !self.config.initiator_tokens.contains(*t)
                })
                .fold(0u8, |acc, (_, shift)| acc | (0b01 << shift))
        });
        let non_empty = |v: &Vec<u8>| (!v.is_empty()).then(|| v.clone());
        let cn = Spdu::Connect(ConnectAccept {
            version: VERSION_2,
            token_setting,
            requirements: Some(proposed),
            calling_ssel: non_empty(&self.config.calling_ssel),
            called_ssel: non_empty(&self.config.called_ssel),
            user_data,
            ..ConnectAccept::default()
        });
        self.send(&[cn])?;
        self.requirements = proposed;
        self.state = SessionState::AwaitAccept;
        Ok(())
    }

    /// S-CONNECT response, accepted: sends the ACCEPT selecting the functional units reported
    /// in [`SessionEvent::ConnectIndication`] (responder, after the indication).
    pub fn accept(&mut self, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "accept";
        self.require_state(CMD, SessionState::AwaitConnectResponse)?;
        let token_setting = self.peer_token_setting.then(|| {
            TOKEN_SHIFTS
                .iter()
                .filter(|(t, _)| self.owned.contains(*t))
                .fold(0u8, |acc, (_, shift)| acc | (0b01 << shift))
        });
        let responding = if self.config.called_ssel.is_empty() {
            self.peer_called_ssel.clone()
        } else {
            Some(self.config.called_ssel.clone())
        };
        if responding
            .as_ref()
            .is_some_and(|s| s.len() > MAX_SELECTOR_LEN)
        {
            return Err(SessionError::Config(
                "session selector longer than 16 octets",
            ));
        }
        let ac = Spdu::Accept(ConnectAccept {
            version: VERSION_2,
            token_setting,
            requirements: Some(self.requirements),
            called_ssel: responding,
            user_data,
            ..ConnectAccept::default()
        });
        self.send(&[ac])?;
        self.state = SessionState::DataTransfer;
        Ok(())
    }

    /// S-CONNECT response, refused: sends a REFUSE and closes (responder, after the
    /// indication). User data is only allowed with reason [`REFUSE_WITH_USER_DATA`].
    pub fn refuse(&mut self, reason: u8, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "refuse";
        self.require_state(CMD, SessionState::AwaitConnectResponse)?;
        if !user_data.is_empty() && reason != REFUSE_WITH_USER_DATA {
            return Err(SessionError::InvalidArgument {
                command: CMD,
                reason: "user data is only allowed with reason 2",
            });
        }
        self.send(&[Spdu::Refuse {
            transport_disconnect: Some(TD_RELEASE),
            requirements: None,
            version: None,
            reason: Some(reason),
            user_data,
        }])?;
        self.close();
        Ok(())
    }

    /// S-DATA request: sends GIVE TOKENS + DATA TRANSFER. Needs the data token under
    /// Half-duplex, and an activity when Activity management is selected.
    pub fn send_data(&mut self, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "send_data";
        self.require_state(CMD, SessionState::DataTransfer)?;
        self.require_no_pending(CMD)?;
        if self.has(FunctionalUnits::ACTIVITY_MANAGEMENT) {
            self.require_activity(CMD, true)?;
        }
        self.require_tokens(CMD, Tokens::DATA)?;
        self.send_cat2(Spdu::DataTransfer {
            user_information: user_data,
        })
    }

    /// S-TOKEN-GIVE request: gives tokens we hold to the peer.
    pub fn give_tokens(&mut self, tokens: Tokens) -> Result<(), SessionError> {
        const CMD: &str = "give_tokens";
        self.require_state(CMD, SessionState::DataTransfer)?;
        self.require_no_pending(CMD)?;
        if tokens.is_empty() || !self.available_tokens().contains(tokens) {
            return Err(SessionError::InvalidArgument {
                command: CMD,
                reason: "no tokens, or tokens not available on this connection",
            });
        }
        self.require_tokens(CMD, tokens)?;
        self.send(&[Spdu::GiveTokens { tokens }])?;
        self.owned = self.owned.difference(tokens);
        Ok(())
    }

    /// S-TOKEN-PLEASE request: asks the peer for tokens it holds.
    pub fn please_tokens(
        &mut self,
        tokens: Tokens,
        user_data: Vec<u8>,
    ) -> Result<(), SessionError> {
        const CMD: &str = "please_tokens";
        self.require_state(CMD, SessionState::DataTransfer)?;
        if tokens.is_empty()
            || !self.available_tokens().contains(tokens)
            || self.owned.intersects(tokens)
        {
            return Err(SessionError::InvalidArgument {
                command: CMD,
                reason: "tokens empty, not available, or already held",
            });
        }
        self.send(&[Spdu::PleaseTokens { tokens, user_data }])
    }

    /// S-CONTROL-GIVE request: gives all tokens to the peer (Activity management, outside an
    /// activity).
    pub fn control_give(&mut self) -> Result<(), SessionError> {
        const CMD: &str = "control_give";
        self.require_state(CMD, SessionState::DataTransfer)?;
        self.require_fu(CMD, FunctionalUnits::ACTIVITY_MANAGEMENT)?;
        self.require_no_pending(CMD)?;
        self.require_activity(CMD, false)?;
        self.send(&[Spdu::GiveTokensConfirm])?;
        self.owned = Tokens::NONE;
        self.pending = Pending::ControlGiveSent;
        Ok(())
    }

    /// S-SYNC-MINOR request: sends a MINOR SYNC POINT and returns its serial number.
    pub fn minor_sync(
        &mut self,
        confirm_required: bool,
        user_data: Vec<u8>,
    ) -> Result<u32, SessionError> {
        const CMD: &str = "minor_sync";
        self.require_state(CMD, SessionState::DataTransfer)?;
        self.require_fu(CMD, FunctionalUnits::MINOR_SYNC)?;
        self.require_no_pending(CMD)?;
        if self.has(FunctionalUnits::ACTIVITY_MANAGEMENT) {
            self.require_activity(CMD, true)?;
        }
        self.require_tokens(CMD, Tokens::MINOR_SYNC | Tokens::DATA)?;
        let serial = self.serial;
        self.send_cat2(Spdu::MinorSyncPoint {
            confirm_required,
            serial,
            user_data,
        })?;
        self.serial = next_serial(serial);
        Ok(serial)
    }

    /// S-SYNC-MINOR response: confirms the peer's synchronization point `serial`.
    pub fn minor_sync_ack(&mut self, serial: u32, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "minor_sync_ack";
        self.require_state(CMD, SessionState::DataTransfer)?;
        self.require_fu(CMD, FunctionalUnits::MINOR_SYNC)?;
        if serial > MAX_SERIAL {
            return Err(SessionError::InvalidArgument {
                command: CMD,
                reason: "serial number above 999999",
            });
        }
        self.send_cat2(Spdu::MinorSyncAck { serial, user_data })
    }

    /// S-ACTIVITY-START request: needs the major/activity token (and the data and minor
    /// synchronize tokens when they exist); `id` is 1 to 6 octets.
    pub fn activity_start(&mut self, id: Vec<u8>, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "activity_start";
        self.require_state(CMD, SessionState::DataTransfer)?;
        self.require_fu(CMD, FunctionalUnits::ACTIVITY_MANAGEMENT)?;
        self.require_no_pending(CMD)?;
        self.require_activity(CMD, false)?;
        self.require_tokens(
            CMD,
            Tokens::MAJOR_ACTIVITY | Tokens::DATA | Tokens::MINOR_SYNC,
        )?;
        if id.is_empty() || id.len() > MAX_ACTIVITY_ID_LEN {
            return Err(SessionError::InvalidArgument {
                command: CMD,
                reason: "activity identifier must be 1 to 6 octets",
            });
        }
        self.send_cat2(Spdu::ActivityStart {
            id: id.clone(),
            user_data,
        })?;
        self.in_activity = true;
        self.activity_id = Some(id);
        self.serial = 1;
        Ok(())
    }

    /// S-ACTIVITY-END request: sends the ACTIVITY END and returns its serial number; the
    /// activity ends when [`SessionEvent::ActivityEndAck`] arrives.
    pub fn activity_end(&mut self, user_data: Vec<u8>) -> Result<u32, SessionError> {
        const CMD: &str = "activity_end";
        self.require_state(CMD, SessionState::DataTransfer)?;
        self.require_fu(CMD, FunctionalUnits::ACTIVITY_MANAGEMENT)?;
        self.require_no_pending(CMD)?;
        self.require_activity(CMD, true)?;
        self.require_tokens(
            CMD,
            Tokens::MAJOR_ACTIVITY | Tokens::DATA | Tokens::MINOR_SYNC,
        )?;
        let serial = self.serial;
        self.send_cat2(Spdu::ActivityEnd { serial, user_data })?;
        self.serial = next_serial(serial);
        self.pending = Pending::EndSent(serial);
        Ok(serial)
    }

    /// S-ACTIVITY-END response: acknowledges the peer's ACTIVITY END; the activity is over.
    pub fn activity_end_ack(&mut self, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "activity_end_ack";
        self.require_state(CMD, SessionState::DataTransfer)?;
        let Pending::EndReceived(serial) = self.pending else {
            return Err(SessionError::ActivityRule {
                command: CMD,
                reason: "no activity end to acknowledge",
            });
        };
        self.send_cat2(Spdu::ActivityEndAck { serial, user_data })?;
        self.pending = Pending::None;
        self.in_activity = false;
        self.activity_id = None;
        Ok(())
    }

    /// S-ACTIVITY-INTERRUPT request: needs the major/activity token; the activity stops when
    /// [`SessionEvent::ActivityInterruptAck`] arrives (and all tokens are ours).
    pub fn activity_interrupt(&mut self, reason: u8) -> Result<(), SessionError> {
        self.interrupt_or_discard("activity_interrupt", reason, true)
    }

    /// S-ACTIVITY-DISCARD request: as [`SessionConnection::activity_interrupt`], but the
    /// activity is abandoned rather than suspended.
    pub fn activity_discard(&mut self, reason: u8) -> Result<(), SessionError> {
        self.interrupt_or_discard("activity_discard", reason, false)
    }

    fn interrupt_or_discard(
        &mut self,
        command: &'static str,
        reason: u8,
        interrupt: bool,
    ) -> Result<(), SessionError> {
        self.require_state(command, SessionState::DataTransfer)?;
        self.require_fu(command, FunctionalUnits::ACTIVITY_MANAGEMENT)?;
        self.require_no_pending(command)?;
        self.require_activity(command, true)?;
        self.require_tokens(command, Tokens::MAJOR_ACTIVITY)?;
        if interrupt {
            self.send_cat2(Spdu::ActivityInterrupt { reason })?;
            self.pending = Pending::InterruptSent;
        } else {
            self.send_cat2(Spdu::ActivityDiscard { reason })?;
            self.pending = Pending::DiscardSent;
        }
        Ok(())
    }

    /// S-ACTIVITY-INTERRUPT response: the activity stops; all tokens go to the peer.
    pub fn activity_interrupt_ack(&mut self) -> Result<(), SessionError> {
        self.ack_interrupt_or_discard("activity_interrupt_ack", true)
    }

    /// S-ACTIVITY-DISCARD response: the activity is abandoned; all tokens go to the peer.
    pub fn activity_discard_ack(&mut self) -> Result<(), SessionError> {
        self.ack_interrupt_or_discard("activity_discard_ack", false)
    }

    fn ack_interrupt_or_discard(
        &mut self,
        command: &'static str,
        interrupt: bool,
    ) -> Result<(), SessionError> {
        self.require_state(command, SessionState::DataTransfer)?;
        let (want, spdu) = if interrupt {
            (Pending::InterruptReceived, Spdu::ActivityInterruptAck)
        } else {
            (Pending::DiscardReceived, Spdu::ActivityDiscardAck)
        };
        if self.pending != want {
            return Err(SessionError::ActivityRule {
                command,
                reason: "nothing to acknowledge",
            });
        }
        self.send_cat2(spdu)?;
        self.pending = Pending::None;
        self.in_activity = false;
        self.activity_id = None;
        self.owned = Tokens::NONE;
        Ok(())
    }

    /// S-U-EXCEPTION-REPORT request: sends EXCEPTION DATA (Exceptions; only the side without
    /// the data token may send it).
    pub fn exception_report(&mut self, reason: u8, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "exception_report";
        self.require_state(CMD, SessionState::DataTransfer)?;
        self.require_fu(CMD, FunctionalUnits::EXCEPTIONS)?;
        if self.owned.contains(Tokens::DATA) {
            return Err(SessionError::InvalidArgument {
                command: CMD,
                reason: "the holder of the data token cannot report an exception",
            });
        }
        self.send_cat2(Spdu::ExceptionData { reason, user_data })
    }

    /// S-RELEASE request: sends FINISH (orderly release). Needs all available tokens and no
    /// activity in progress; the connection is released when [`SessionEvent::Disconnected`]
    /// arrives.
    pub fn finish(&mut self, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "finish";
        self.require_state(CMD, SessionState::DataTransfer)?;
        self.require_no_pending(CMD)?;
        self.require_activity(CMD, false)?;
        self.require_tokens(CMD, Tokens::ALL)?;
        self.send(&[Spdu::Finish {
            transport_disconnect: None,
            user_data,
        }])?;
        self.state = SessionState::AwaitDisconnect;
        Ok(())
    }

    /// S-RELEASE response: answers the peer's FINISH with DISCONNECT; the connection is
    /// released.
    pub fn disconnect(&mut self, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "disconnect";
        self.require_state(CMD, SessionState::AwaitFinishResponse)?;
        self.send(&[Spdu::Disconnect { user_data }])?;
        self.close();
        Ok(())
    }

    /// S-U-ABORT request: sends ABORT (user abort, transport released) and closes.
    pub fn abort(&mut self, user_data: Vec<u8>) -> Result<(), SessionError> {
        const CMD: &str = "abort";
        match self.state {
            SessionState::Closed => return Err(SessionError::Closed),
            SessionState::Idle => {
                return Err(SessionError::InvalidState {
                    command: CMD,
                    state: self.state,
                });
            }
            _ => {}
        }
        self.send(&[Spdu::Abort {
            transport_disconnect: Some(TD_RELEASE | TD_USER_ABORT),
            reflect: Vec::new(),
            user_data,
        }])?;
        self.close();
        Ok(())
    }
}

/// The serial number after `n`, modulo 10^6.
fn next_serial(n: u32) -> u32 {
    if n >= MAX_SERIAL { 0 } else { n + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves every queued TSDU from `from` into `to`, failing on the first error.
    fn pump(from: &mut SessionConnection, to: &mut SessionConnection) -> usize {
        let mut n = 0;
        while let Some(t) = from.poll_tsdu() {
            to.handle_tsdu(&t).expect("peer accepts TSDU");
            n += 1;
        }
        n
    }

    fn events(c: &mut SessionConnection) -> Vec<SessionEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn p1_pair() -> (SessionConnection, SessionConnection) {
        let mut init = SessionConnection::initiator(SessionConfig {
            calling_ssel: vec![0, 1],
            called_ssel: vec![0, 2],
            ..SessionConfig::p1()
        });
        let mut resp = SessionConnection::responder(SessionConfig::p1());
        init.connect(b"bind".to_vec()).expect("connect");
        assert_eq!(pump(&mut init, &mut resp), 1);
        assert_eq!(
            events(&mut resp),
            vec![SessionEvent::ConnectIndication {
                calling_ssel: vec![0, 1],
                called_ssel: vec![0, 2],
                requirements: FunctionalUnits::P1,
                user_data: b"bind".to_vec(),
            }]
        );
        resp.accept(b"bound".to_vec()).expect("accept");
        assert_eq!(pump(&mut resp, &mut init), 1);
        assert_eq!(
            events(&mut init),
            vec![SessionEvent::Accepted {
                requirements: FunctionalUnits::P1,
                user_data: b"bound".to_vec(),
            }]
        );
        (init, resp)
    }

    #[test]
    fn connect_accept_with_user_data() {
        let (init, resp) = p1_pair();
        assert_eq!(init.state(), SessionState::DataTransfer);
        assert_eq!(resp.state(), SessionState::DataTransfer);
        let all = Tokens::DATA | Tokens::MINOR_SYNC | Tokens::MAJOR_ACTIVITY;
        assert_eq!(init.owned_tokens(), all);
        assert_eq!(resp.owned_tokens(), Tokens::NONE);
        assert_eq!(init.available_tokens(), all);
        assert_eq!(init.requirements(), FunctionalUnits::P1);
        assert!(init.is_initiator());
        assert!(!resp.is_initiator());
    }

    #[test]
    fn full_p1_sequence() {
        let (mut init, mut resp) = p1_pair();
        for (n, id) in [[0x02, 0x01, 0x01], [0x02, 0x01, 0x02]]
            .into_iter()
            .enumerate()
        {
            init.activity_start(id.to_vec(), vec![]).expect("AS");
            assert!(init.in_activity());
            for chunk in [&b"segment-1"[..], b"segment-2", b"segment-3"] {
                init.send_data(chunk.to_vec()).expect("DT");
            }
            let serial = init.activity_end(vec![]).expect("AE");
            assert_eq!(serial, 1);
            // Nothing else may be sent while the AE waits for its ack.
            assert!(matches!(
                init.send_data(vec![1]),
                Err(SessionError::ActivityRule { .. })
            ));
            assert_eq!(pump(&mut init, &mut resp), 5);
            assert_eq!(
                events(&mut resp),
                vec![
                    SessionEvent::ActivityStart {
                        id: id.to_vec(),
                        user_data: vec![]
                    },
                    SessionEvent::Data(b"segment-1".to_vec()),
                    SessionEvent::Data(b"segment-2".to_vec()),
                    SessionEvent::Data(b"segment-3".to_vec()),
                    SessionEvent::ActivityEnd {
                        serial: 1,
                        user_data: vec![]
                    },
                ],
                "activity {n}"
            );
            assert_eq!(resp.activity_id(), Some(&id[..]));
            resp.activity_end_ack(vec![]).expect("AEA");
            assert!(!resp.in_activity());
            assert_eq!(pump(&mut resp, &mut init), 1);
            assert_eq!(
                events(&mut init),
                vec![SessionEvent::ActivityEndAck {
                    serial: 1,
                    user_data: vec![]
                }]
            );
            assert!(!init.in_activity());
        }
        init.finish(b"close".to_vec()).expect("FN");
        assert_eq!(init.state(), SessionState::AwaitDisconnect);
        pump(&mut init, &mut resp);
        assert_eq!(
            events(&mut resp),
            vec![SessionEvent::FinishIndication {
                user_data: b"close".to_vec()
            }]
        );
        resp.disconnect(b"closed".to_vec()).expect("DN");
        pump(&mut resp, &mut init);
        assert_eq!(
            events(&mut init),
            vec![SessionEvent::Disconnected {
                user_data: b"closed".to_vec()
            }]
        );
        assert_eq!(init.state(), SessionState::Closed);
        assert_eq!(resp.state(), SessionState::Closed);
    }

    #[test]
    fn p1_bytes_match_the_capture() {
        use super::super::spdu::tests::{PCAP_AE, PCAP_AEA, PCAP_AS};
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let (mut init, mut resp) = p1_pair();
        init.activity_start(vec![0x02, 0x01, 0x01], vec![])
            .expect("AS");
        assert_eq!(init.poll_tsdu(), Some(hex(PCAP_AS)));
        init.send_data(vec![0xAA]).expect("DT");
        assert_eq!(init.poll_tsdu(), Some(vec![0x01, 0x00, 0x01, 0x00, 0xAA]));
        init.activity_end(vec![]).expect("AE");
        let ae = init.poll_tsdu().expect("AE queued");
        assert_eq!(ae, hex(PCAP_AE));
        resp.handle_tsdu(&hex(PCAP_AS)).expect("AS");
        resp.handle_tsdu(&ae).expect("AE");
        resp.activity_end_ack(vec![]).expect("AEA");
        assert_eq!(resp.poll_tsdu(), Some(hex(PCAP_AEA)));
    }

    #[test]
    fn pcap_connect_gives_pcap_accept() {
        use super::super::spdu::tests::{PCAP_AC, PCAP_CN};
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let cn = hex(PCAP_CN);
        let ac = hex(PCAP_AC);
        // The initiator, configured like the capture, sends the capture's CONNECT.
        let mut init = SessionConnection::initiator(SessionConfig {
            calling_ssel: vec![0, 1],
            called_ssel: vec![0, 2],
            ..SessionConfig::p1()
        });
        let cn_user_data = cn[27..].to_vec();
        init.connect(cn_user_data).expect("connect");
        assert_eq!(init.poll_tsdu(), Some(cn.clone()));
        // The responder answers the capture's CONNECT with the capture's ACCEPT.
        let mut resp = SessionConnection::responder(SessionConfig::p1());
        resp.handle_tsdu(&cn).expect("CN");
        assert!(matches!(
            resp.poll_event(),
            Some(SessionEvent::ConnectIndication { .. })
        ));
        resp.accept(ac[23..].to_vec()).expect("accept");
        assert_eq!(resp.poll_tsdu(), Some(ac.clone()));
        init.handle_tsdu(&ac).expect("AC");
        assert_eq!(init.state(), SessionState::DataTransfer);
    }

    #[test]
    fn activity_interrupted_and_discarded() {
        let (mut init, mut resp) = p1_pair();
        // Interrupt by the initiator; the responder holds the data token at that time.
        init.activity_start(vec![1], vec![]).expect("AS");
        init.give_tokens(Tokens::DATA).expect("GT");
        pump(&mut init, &mut resp);
        assert_eq!(
            events(&mut resp)[1..],
            [SessionEvent::TokensGiven(Tokens::DATA)]
        );
        resp.send_data(b"x".to_vec()).expect("DT from responder");
        init.activity_interrupt(3).expect("AI");
        // The responder's DT crosses the AI and is discarded by the initiator.
        pump(&mut resp, &mut init);
        assert!(events(&mut init).is_empty());
        pump(&mut init, &mut resp);
        assert_eq!(
            events(&mut resp),
            vec![SessionEvent::ActivityInterrupted { reason: 3 }]
        );
        assert!(matches!(
            resp.send_data(vec![1]),
            Err(SessionError::ActivityRule { .. })
        ));
        resp.activity_interrupt_ack().expect("AIA");
        assert_eq!(resp.owned_tokens(), Tokens::NONE);
        pump(&mut resp, &mut init);
        assert_eq!(events(&mut init), vec![SessionEvent::ActivityInterruptAck]);
        assert_eq!(init.owned_tokens(), init.available_tokens());
        assert!(!init.in_activity() && !resp.in_activity());

        // Discard.
        init.activity_start(vec![2], vec![]).expect("AS");
        init.send_data(b"y".to_vec()).expect("DT");
        init.activity_discard(0).expect("AD");
        pump(&mut init, &mut resp);
        assert_eq!(
            events(&mut resp)[2..],
            [SessionEvent::ActivityDiscarded { reason: 0 }]
        );
        resp.activity_discard_ack().expect("ADA");
        pump(&mut resp, &mut init);
        assert_eq!(events(&mut init), vec![SessionEvent::ActivityDiscardAck]);
        assert!(!init.in_activity());
        // A fresh activity works after the discard.
        init.activity_start(vec![3], vec![]).expect("AS again");
    }

    #[test]
    fn refuse() {
        let mut init = SessionConnection::initiator(SessionConfig::p1());
        let mut resp = SessionConnection::responder(SessionConfig::p1());
        init.connect(vec![]).expect("connect");
        pump(&mut init, &mut resp);
        events(&mut resp);
        assert!(matches!(
            resp.refuse(0, b"why".to_vec()),
            Err(SessionError::InvalidArgument { .. })
        ));
        resp.refuse(REFUSE_WITH_USER_DATA, b"why".to_vec())
            .expect("refuse");
        assert_eq!(resp.state(), SessionState::Closed);
        pump(&mut resp, &mut init);
        assert_eq!(
            events(&mut init),
            vec![SessionEvent::Refused {
                reason: 2,
                user_data: b"why".to_vec()
            }]
        );
        assert_eq!(init.state(), SessionState::Closed);
    }

    #[test]
    fn abort_both_ways() {
        let (mut init, mut resp) = p1_pair();
        init.activity_start(vec![1], vec![]).expect("AS");
        init.abort(b"bye".to_vec()).expect("abort");
        assert_eq!(init.state(), SessionState::Closed);
        assert!(matches!(init.send_data(vec![]), Err(SessionError::Closed)));
        pump(&mut init, &mut resp);
        assert_eq!(
            events(&mut resp)[1..],
            [SessionEvent::Aborted {
                provider: false,
                user_data: b"bye".to_vec()
            }]
        );
        assert_eq!(resp.state(), SessionState::Closed);
        assert_eq!(resp.handle_tsdu(&[0x01, 0x00]), Err(SessionError::Closed));
    }

    #[test]
    fn half_duplex_token_violations_are_rejected() {
        let (mut init, mut resp) = p1_pair();
        // Local: the responder holds no token.
        assert_eq!(
            resp.activity_start(vec![1], vec![]),
            Err(SessionError::TokensNotOwned {
                command: "activity_start",
                missing: Tokens::DATA | Tokens::MINOR_SYNC | Tokens::MAJOR_ACTIVITY,
            })
        );
        init.activity_start(vec![1], vec![]).expect("AS");
        pump(&mut init, &mut resp);
        assert!(matches!(
            resp.send_data(vec![1]),
            Err(SessionError::TokensNotOwned { .. })
        ));
        assert!(matches!(
            init.give_tokens(Tokens::RELEASE),
            Err(SessionError::InvalidArgument { .. })
        ));
        // Peer: DT from a peer without the data token aborts the connection.
        let err = init
            .handle_tsdu(&[0x01, 0x00, 0x01, 0x00, 0xAA])
            .expect_err("violation");
        assert!(matches!(err, SessionError::PeerTokenViolation { .. }));
        assert_eq!(err.fault(), super::super::Fault::Peer);
        assert_eq!(init.state(), SessionState::Closed);
        let ab = init.poll_tsdu().expect("AB queued");
        assert_eq!(ab, vec![0x19, 0x03, 0x11, 0x01, 0x05]);
    }

    #[test]
    fn giving_a_token_twice_is_a_peer_error() {
        let (mut init, mut resp) = p1_pair();
        // GT with the data token to the initiator, which already holds it.
        let err = init
            .handle_tsdu(&[0x01, 0x03, 0x10, 0x01, 0x01])
            .expect_err("GT");
        assert!(matches!(err, SessionError::PeerTokenViolation { .. }));
        // The responder may ask for tokens.
        resp.please_tokens(Tokens::DATA, b"prio".to_vec())
            .expect("PT");
        let mut init2 = p1_pair().0;
        init2
            .handle_tsdu(&resp.poll_tsdu().expect("PT queued"))
            .expect("PT");
        assert_eq!(
            events(&mut init2),
            vec![SessionEvent::TokensPleased {
                tokens: Tokens::DATA,
                user_data: b"prio".to_vec()
            }]
        );
    }

    #[test]
    fn duplex_for_p3_both_sides_send() {
        let mut init = SessionConnection::initiator(SessionConfig::p3());
        let mut resp = SessionConnection::responder(SessionConfig::p3());
        init.connect(b"bind".to_vec()).expect("connect");
        let cn = init.poll_tsdu().expect("CN");
        // Kernel + duplex: no token setting item, requirements 0x0002.
        assert_eq!(
            &cn[2..14],
            &[
                0x05, 0x06, 0x13, 0x01, 0x00, 0x16, 0x01, 0x02, 0x14, 0x02, 0x00, 0x02
            ]
        );
        resp.handle_tsdu(&cn).expect("CN");
        events(&mut resp);
        resp.accept(vec![]).expect("accept");
        pump(&mut resp, &mut init);
        events(&mut init);
        assert_eq!(init.available_tokens(), Tokens::NONE);
        init.send_data(b"submit".to_vec()).expect("init DT");
        resp.send_data(b"deliver".to_vec()).expect("resp DT");
        pump(&mut init, &mut resp);
        pump(&mut resp, &mut init);
        assert_eq!(
            events(&mut resp),
            vec![SessionEvent::Data(b"submit".to_vec())]
        );
        assert_eq!(
            events(&mut init),
            vec![SessionEvent::Data(b"deliver".to_vec())]
        );
        assert!(matches!(
            init.activity_start(vec![1], vec![]),
            Err(SessionError::FunctionalUnitNotSelected { .. })
        ));
        // Release: data may still cross the FINISH.
        init.finish(vec![]).expect("FN");
        resp.send_data(b"late".to_vec()).expect("late DT");
        pump(&mut resp, &mut init);
        pump(&mut init, &mut resp);
        assert_eq!(
            events(&mut init),
            vec![SessionEvent::Data(b"late".to_vec())]
        );
        resp.disconnect(vec![]).expect("DN");
        pump(&mut resp, &mut init);
        assert_eq!(init.state(), SessionState::Closed);
    }

    #[test]
    fn negotiation_prefers_half_duplex_and_refuses_without_dialogue_mode() {
        let mut init = SessionConnection::initiator(SessionConfig {
            requirements: FunctionalUnits::HALF_DUPLEX | FunctionalUnits::DUPLEX,
            ..SessionConfig::p1()
        });
        let mut resp = SessionConnection::responder(SessionConfig {
            requirements: FunctionalUnits::HALF_DUPLEX | FunctionalUnits::DUPLEX,
            ..SessionConfig::p1()
        });
        init.connect(vec![]).expect("connect");
        pump(&mut init, &mut resp);
        resp.accept(vec![]).expect("accept");
        pump(&mut resp, &mut init);
        assert_eq!(init.requirements(), FunctionalUnits::HALF_DUPLEX);

        let mut init = SessionConnection::initiator(SessionConfig::p3());
        let mut resp = SessionConnection::responder(SessionConfig::p1());
        init.connect(vec![]).expect("connect");
        let cn = init.poll_tsdu().expect("CN");
        assert!(matches!(
            resp.handle_tsdu(&cn),
            Err(SessionError::Incompatible(_))
        ));
        let rf = resp.poll_tsdu().expect("RF queued");
        init.handle_tsdu(&rf).expect("RF");
        assert_eq!(
            events(&mut init),
            vec![SessionEvent::Refused {
                reason: REFUSE_SPM_NOT_SPECIFIED,
                user_data: vec![]
            }]
        );
    }

    #[test]
    fn version_1_only_is_refused() {
        let mut resp = SessionConnection::responder(SessionConfig::p1());
        // CN: PGI 5 { protocol options 0, version 1 }.
        let cn = [0x0D, 0x08, 0x05, 0x06, 0x13, 0x01, 0x00, 0x16, 0x01, 0x01];
        assert_eq!(
            resp.handle_tsdu(&cn),
            Err(SessionError::VersionNotSupported)
        );
        let rf = resp.poll_tsdu().expect("RF");
        assert_eq!(
            rf,
            vec![
                0x0C, 0x09, 0x11, 0x01, 0x01, 0x16, 0x01, 0x02, 0x32, 0x01, 0x84
            ]
        );
    }

    #[test]
    fn minor_sync_and_control_give() {
        let (mut init, mut resp) = p1_pair();
        assert!(matches!(
            init.minor_sync(true, vec![]),
            Err(SessionError::ActivityRule { .. })
        ));
        init.activity_start(vec![9], vec![]).expect("AS");
        assert_eq!(init.minor_sync(true, b"cp".to_vec()), Ok(1));
        assert_eq!(init.minor_sync(false, vec![]), Ok(2));
        pump(&mut init, &mut resp);
        assert_eq!(
            events(&mut resp)[1..],
            [
                SessionEvent::MinorSyncPoint {
                    serial: 1,
                    confirm_required: true,
                    user_data: b"cp".to_vec()
                },
                SessionEvent::MinorSyncPoint {
                    serial: 2,
                    confirm_required: false,
                    user_data: vec![]
                },
            ]
        );
        resp.minor_sync_ack(1, vec![]).expect("MIA");
        pump(&mut resp, &mut init);
        assert_eq!(
            events(&mut init),
            vec![SessionEvent::MinorSyncAck {
                serial: 1,
                user_data: vec![]
            }]
        );
        assert_eq!(init.activity_end(vec![]), Ok(3));
        pump(&mut init, &mut resp);
        events(&mut resp);
        resp.activity_end_ack(vec![]).expect("AEA");
        pump(&mut resp, &mut init);
        events(&mut init);
        // Control give hands every token to the responder, which can then start an activity.
        init.control_give().expect("GTC");
        assert_eq!(init.owned_tokens(), Tokens::NONE);
        pump(&mut init, &mut resp);
        assert_eq!(events(&mut resp), vec![SessionEvent::ControlGiven]);
        assert_eq!(resp.owned_tokens(), resp.available_tokens());
        pump(&mut resp, &mut init); // GTA
        resp.activity_start(vec![1], vec![]).expect("responder AS");
        pump(&mut resp, &mut init);
        assert!(init.in_activity());
    }

    #[test]
    fn exception_report_from_the_receiver() {
        let (mut init, mut resp) = p1_pair();
        init.activity_start(vec![1], vec![]).expect("AS");
        pump(&mut init, &mut resp);
        assert!(matches!(
            init.exception_report(1, vec![]),
            Err(SessionError::InvalidArgument { .. })
        ));
        resp.exception_report(1, b"full".to_vec()).expect("ED");
        pump(&mut resp, &mut init);
        assert_eq!(
            events(&mut init)[..],
            [SessionEvent::ExceptionReport {
                reason: Some(1),
                user_data: b"full".to_vec()
            }]
        );
    }

    #[test]
    fn out_of_state_spdus_are_peer_errors() {
        // Responder: DT before CONNECT.
        let mut resp = SessionConnection::responder(SessionConfig::p1());
        assert!(resp.handle_tsdu(&[0x01, 0x00, 0x01, 0x00]).is_err());
        assert_eq!(resp.state(), SessionState::Closed);
        assert_eq!(
            resp.poll_tsdu(),
            None,
            "no ABORT before a connection exists"
        );
        // Connected: AEA without AE, ACCEPT again, DISCONNECT without FINISH.
        for bad in [
            &[0x01, 0x00, 0x2A, 0x03, 0x2A, 0x01, 0x31][..],
            &[0x0E, 0x00],
            &[0x0A, 0x00],
            &[0x01, 0x00, 0x29, 0x03, 0x2A, 0x01, 0x31],
        ] {
            let (mut init, _) = p1_pair();
            assert!(init.handle_tsdu(bad).is_err(), "{bad:02x?}");
            assert_eq!(init.state(), SessionState::Closed);
            assert!(init.poll_tsdu().is_some(), "ABORT queued");
        }
    }

    #[test]
    fn hostile_tsdus_never_panic() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x0D, 0xFF, 0xFF, 0xFF],
            &[0x0D, 0x05, 0x05, 0x03, 0xFF, 0x00],
            &[0x0D, 0x02, 0xC1, 0x10],
            &[0x2D, 0x00],
            &[0x01, 0x00, 0x01],
        ];
        for case in cases {
            let mut resp = SessionConnection::responder(SessionConfig::p1());
            assert!(resp.handle_tsdu(case).is_err(), "{case:02x?}");
            let (mut init, _) = p1_pair();
            assert!(init.handle_tsdu(case).is_err(), "{case:02x?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut resp = SessionConnection::responder(SessionConfig::p1());
            let _ = resp.handle_tsdu(&bytes);
            let (mut init, _) = p1_pair();
            let _ = init.handle_tsdu(&bytes);
            let _ = init.handle_tsdu(&bytes);
        }

        #[test]
        fn concatenated_prefixes_never_panic(
            si in proptest::sample::select(vec![0u8, 1, 2, 8, 9, 10, 12, 13, 14, 21, 22, 25, 26, 41, 42, 45, 48, 49, 50, 57, 58]),
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..48),
        ) {
            let mut bytes = vec![0x01, 0x00, si];
            bytes.extend_from_slice(&tail);
            let (mut init, mut resp) = p1_pair();
            let _ = init.handle_tsdu(&bytes);
            let _ = resp.handle_tsdu(&bytes);
        }
    }
}
