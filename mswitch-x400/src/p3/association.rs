//! One P3 association as a sans-IO engine.
//!
//! The stack is the P1 one without RTSE: [`Transport`] (RFC 1006 TPKT + COTP class 0) carries
//! TSDUs for the [`SessionConnection`] (X.225 v2, Kernel + Duplex: no tokens, both sides send
//! at any time), whose user data carries presentation PPDUs with ACSE and ROS. The engine
//! gives the MTS user (user agent, message store) or the MTA the P3 surface:
//!
//! - initiator: [`P3Association::initiator`] with an [`MtsBindArgument`] and a [`P3Context`]
//!   → [`P3Event::Bound`] or [`P3Event::BindRefused`];
//! - responder: [`P3Association::responder`] → [`P3Event::BindRequest`] →
//!   [`P3Association::accept_bind`] or [`P3Association::refuse_bind`];
//! - then, on both sides at once (duplex): [`P3Association::invoke`] gives an invoke id, the
//!   answer comes as [`P3Event::Result`], [`P3Event::Error`] or [`P3Event::Rejected`]; the
//!   peer's invocations come as [`P3Event::Invoked`] and are answered with
//!   [`P3Association::reply_result`] or [`P3Association::reply_error`]. Several operations may
//!   be outstanding in each direction, up to [`P3Config::max_outstanding`];
//! - [`P3Association::release`] (ACSE release, by either side) → [`P3Event::Released`];
//!   [`P3Association::abort`].
//!
//! Who may invoke what follows X.411 §8: the MTS user invokes message submission, probe
//! submission, cancel deferred delivery, delivery control and register; the MTA invokes
//! submission control, message delivery and report delivery. In `mts-access` contexts the
//! initiator is the MTS user, in `mts-forced-access` the MTA. A peer invocation outside these
//! rules, of an unknown operation, with a mistyped argument, a duplicate invoke id or beyond the
//! limit is rejected (X.880 reject PDU) without troubling the application.
//!
//! Driver order, for every read from the socket: [`P3Association::handle_input`], then drain
//! [`P3Association::poll_event`] (acting on each event), then [`P3Association::poll_transmit`]
//! until it returns `None` and write what it gave. After each command, drain
//! `poll_transmit` too. There are no timers.

use std::collections::{HashMap, VecDeque};

use crate::mts::MtsError;
use crate::osi::cotp::DisconnectReason;
use crate::osi::session::{SessionConfig, SessionConnection, SessionError, SessionEvent};
use crate::osi::transport::{Transport, TransportConfig, TransportError, TransportEvent};
use crate::p1::Role;
use crate::upper::presentation::{self, ContextDefinition, Pdv};
use crate::upper::ros::{
    Code, Invoke, InvokeId, OperationResult, RejectProblem, ReturnError, ReturnResult, RosPdu,
};

use super::codec::{self, P3Context, P3Contexts, P3UpperError};
use super::operation::{OperationKind, P3Operation, P3Result, Party, Port};
use super::types::{MtsBindArgument, MtsBindError, MtsBindResult, P3Error};

/// Largest ROS PDU (an operation's argument or result with its envelope) accepted from a peer
/// or sent, by default.
pub const DEFAULT_MAX_PDU: usize = 16 * 1024 * 1024;

/// Most operations outstanding in each direction, by default.
pub const DEFAULT_MAX_OUTSTANDING: usize = 64;

/// Room for the presentation, session and ROS headers around the largest PDU.
const HEADER_ROOM: usize = 64 * 1024;

/// X.880 general problems.
mod general_problem {
    pub(super) const MISTYPED_PDU: i64 = 1;
    pub(super) const BADLY_STRUCTURED_PDU: i64 = 2;
}

/// X.880 invoke problems.
mod invoke_problem {
    pub(super) const DUPLICATE_INVOCATION: i64 = 0;
    pub(super) const UNRECOGNIZED_OPERATION: i64 = 1;
    pub(super) const MISTYPED_ARGUMENT: i64 = 2;
    pub(super) const RESOURCE_LIMITATION: i64 = 3;
    pub(super) const RELEASE_IN_PROGRESS: i64 = 4;
    pub(super) const UNRECOGNIZED_LINKED_ID: i64 = 5;
}

/// X.880 return-result and return-error problems.
mod return_problem {
    pub(super) const UNRECOGNIZED_INVOCATION: i64 = 0;
    pub(super) const MISTYPED_RESULT: i64 = 2;
    pub(super) const UNRECOGNIZED_ERROR: i64 = 2;
}

/// Settings of one P3 association.
#[derive(Debug, Clone)]
pub struct P3Config {
    /// Our transport selector (calling for an initiator; a responder refuses connections for
    /// another one when this is not empty).
    pub local_tsel: Vec<u8>,
    /// The peer's transport selector.
    pub remote_tsel: Vec<u8>,
    /// Our session selector.
    pub local_ssel: Vec<u8>,
    /// The peer's session selector.
    pub remote_ssel: Vec<u8>,
    /// Our presentation selector.
    pub local_psel: Vec<u8>,
    /// The peer's presentation selector.
    pub remote_psel: Vec<u8>,
    /// Largest ROS PDU accepted or sent.
    pub max_pdu: usize,
    /// Most operations outstanding in each direction.
    pub max_outstanding: usize,
}

impl Default for P3Config {
    fn default() -> Self {
        P3Config {
            local_tsel: Vec::new(),
            remote_tsel: Vec::new(),
            local_ssel: Vec::new(),
            remote_ssel: Vec::new(),
            local_psel: Vec::new(),
            remote_psel: Vec::new(),
            max_pdu: DEFAULT_MAX_PDU,
            max_outstanding: DEFAULT_MAX_OUTSTANDING,
        }
    }
}

/// Where the association stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P3State {
    /// Transport and session connection and the bind in progress.
    Connecting,
    /// Responder: the bind request is with the application.
    AwaitingBindDecision,
    /// Bound: operations flow both ways.
    Bound,
    /// We asked for release; waiting for the answer.
    Releasing,
    /// Released, refused or aborted.
    Closed,
}

/// What the association tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum P3Event {
    /// Responder: the peer asks to bind; answer with [`P3Association::accept_bind`] or
    /// [`P3Association::refuse_bind`].
    BindRequest {
        /// What the initiator presented.
        argument: MtsBindArgument,
        /// The application context it asked for.
        context: P3Context,
    },
    /// Initiator: the responder accepted the bind.
    Bound {
        /// What the responder presented.
        result: MtsBindResult,
    },
    /// Initiator: the responder refused the association or the bind; the association is
    /// closed.
    BindRefused {
        /// The MTS-bind error, when the peer sent one.
        error: Option<MtsBindError>,
        /// Why, as far as the peer said.
        reason: String,
        /// Whether trying again later may work (busy, transient rejection).
        transient: bool,
    },
    /// The peer invoked an operation; answer with [`P3Association::reply_result`] or
    /// [`P3Association::reply_error`].
    Invoked {
        /// The peer's invoke id, to answer with.
        invoke_id: i64,
        /// The operation and its argument.
        operation: P3Operation,
    },
    /// One of our operations succeeded.
    Result {
        /// The id [`P3Association::invoke`] gave.
        invoke_id: i64,
        /// The result.
        result: P3Result,
    },
    /// One of our operations failed with an abstract error.
    Error {
        /// The id [`P3Association::invoke`] gave.
        invoke_id: i64,
        /// The error code (see [`super::error_code`]).
        code: i64,
        /// The parameter's complete BER element.
        parameter: Option<Vec<u8>>,
    },
    /// A ROS reject: the peer rejected one of our PDUs (`by_peer`), or we rejected the
    /// peer's answer to one of our operations (a mistyped result or error). Either way the
    /// operation named by `invoke_id`, if ours, is over.
    Rejected {
        /// The invoke id the reject names.
        invoke_id: Option<i64>,
        /// The X.880 problem.
        problem: RejectProblem,
        /// Whether the peer sent the reject.
        by_peer: bool,
    },
    /// The association was released in order.
    Released,
    /// The association ended abruptly (abort, disconnect, protocol error).
    Aborted {
        /// What happened.
        reason: String,
    },
}

/// Why an operation on a P3 association failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum P3AssociationError {
    /// The transport layer failed (the peer sent bad TPKT/COTP, or a limit was hit).
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The session layer failed (the peer broke X.225).
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// An upper-layer PDU was invalid or not what P3 allows (the peer's fault).
    #[error("{0}")]
    Upper(#[from] P3UpperError),
    /// A value given to a command cannot be encoded (a local fault).
    #[error("encoding: {0}")]
    Encode(#[from] MtsError),
    /// The command is not valid in the current state (a local programming error).
    #[error("operation not valid in state {0:?}")]
    State(P3State),
    /// An argument or result larger than [`P3Config::max_pdu`].
    #[error("ROS PDU larger than {0} bytes")]
    TooLarge(usize),
    /// [`P3Config::max_outstanding`] of our operations are already outstanding.
    #[error("{0} operations already outstanding")]
    TooManyOutstanding(usize),
    /// A reply names no invocation of the peer's that is waiting for one.
    #[error("no outstanding invocation {0}")]
    UnknownInvocation(i64),
    /// This end may not invoke the operation in this context (X.411 §8), or a result does not
    /// answer the operation it is given for.
    #[error("{0:?} not permitted here")]
    NotPermitted(OperationKind),
    /// The presentation context of the operation's abstract syntax was not accepted.
    #[error("no presentation context for the {0:?} port")]
    NoContext(Port),
}

/// One P3 association.
#[derive(Debug)]
pub struct P3Association {
    role: Role,
    state: P3State,
    config: P3Config,
    transport: Transport,
    session: SessionConnection,
    context: P3Context,
    contexts: P3Contexts,
    /// Responder: the presentation contexts the initiator proposed.
    definitions: Vec<ContextDefinition>,
    bind: Option<MtsBindArgument>,
    events: VecDeque<P3Event>,
    /// Our invocations waiting for an answer.
    ours: HashMap<i64, OperationKind>,
    /// The peer's invocations waiting for our answer.
    theirs: HashMap<i64, OperationKind>,
    next_invoke_id: i64,
}

fn session_config(config: &P3Config, calling: &[u8], called: &[u8]) -> SessionConfig {
    SessionConfig {
        calling_ssel: calling.to_vec(),
        called_ssel: called.to_vec(),
        max_user_data: config.max_pdu.saturating_add(HEADER_ROOM),
        ..SessionConfig::p3()
    }
}

impl P3Association {
    /// An initiator: connects, then binds with `bind` in application context `context` (an
    /// MTS user with `Access*`, an MTA with `ForcedAccess*`).
    pub fn initiator(
        config: P3Config,
        bind: MtsBindArgument,
        context: P3Context,
    ) -> Result<Self, P3AssociationError> {
        let transport = Transport::initiator(TransportConfig {
            calling_tsel: config.local_tsel.clone(),
            called_tsel: config.remote_tsel.clone(),
            max_tsdu: config.max_pdu.saturating_add(HEADER_ROOM),
            ..TransportConfig::default()
        })?;
        let session = SessionConnection::initiator(session_config(
            &config,
            &config.local_ssel,
            &config.remote_ssel,
        ));
        Ok(Self::new(
            Role::Initiator,
            config,
            transport,
            session,
            context,
            Some(bind),
        ))
    }

    /// A responder for a connection a listener accepted.
    pub fn responder(config: P3Config) -> Result<Self, P3AssociationError> {
        let transport = Transport::responder(TransportConfig {
            calling_tsel: config.remote_tsel.clone(),
            called_tsel: config.local_tsel.clone(),
            max_tsdu: config.max_pdu.saturating_add(HEADER_ROOM),
            ..TransportConfig::default()
        })?;
        let session = SessionConnection::responder(session_config(
            &config,
            &config.remote_ssel,
            &config.local_ssel,
        ));
        Ok(Self::new(
            Role::Responder,
            config,
            transport,
            session,
            P3Context::Access88,
            None,
        ))
    }

    /// A responder for a connection a listener has already taken up to the transport
    /// connection: `transport` is an open responder (it confirmed the peer's CR after checking
    /// the called selector), with the first TSDU (the session CONNECT) and whatever followed
    /// still queued. That input is acted on now: a peer protocol error in it leaves the
    /// association closed with [`P3Event::Aborted`] queued and the abort ready to send, as
    /// [`P3Association::handle_input`] would. Errs only if `transport` is not an open
    /// responder.
    pub fn responder_on(
        config: P3Config,
        mut transport: Transport,
    ) -> Result<Self, P3AssociationError> {
        if transport.role() != crate::osi::transport::Role::Responder || !transport.is_open() {
            return Err(P3AssociationError::State(P3State::Connecting));
        }
        transport.set_max_tsdu(config.max_pdu.saturating_add(HEADER_ROOM))?;
        let session = SessionConnection::responder(session_config(
            &config,
            &config.remote_ssel,
            &config.local_ssel,
        ));
        let mut assoc = Self::new(
            Role::Responder,
            config,
            transport,
            session,
            P3Context::Access88,
            None,
        );
        if let Err(e) = assoc.on_transport_events() {
            assoc.fail(format!("{e}"));
        }
        Ok(assoc)
    }

    fn new(
        role: Role,
        config: P3Config,
        transport: Transport,
        session: SessionConnection,
        context: P3Context,
        bind: Option<MtsBindArgument>,
    ) -> Self {
        P3Association {
            role,
            state: P3State::Connecting,
            config,
            transport,
            session,
            context,
            contexts: P3Contexts::PROPOSED,
            definitions: Vec::new(),
            bind,
            events: VecDeque::new(),
            ours: HashMap::new(),
            theirs: HashMap::new(),
            next_invoke_id: 1,
        }
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the association stands.
    pub fn state(&self) -> P3State {
        self.state
    }

    /// The application context (for a responder, known once the bind request arrived).
    pub fn context(&self) -> P3Context {
        self.context
    }

    /// Which party this end is: the MTS user in an access context it initiated or a forced
    /// access context it answered, the MTA otherwise.
    pub fn party(&self) -> Party {
        if (self.role == Role::Initiator) != self.context.is_forced() {
            Party::MtsUser
        } else {
            Party::Mts
        }
    }

    fn peer_party(&self) -> Party {
        match self.party() {
            Party::MtsUser => Party::Mts,
            Party::Mts => Party::MtsUser,
        }
    }

    /// How many of our operations wait for an answer.
    pub fn outstanding(&self) -> usize {
        self.ours.len()
    }

    /// How many of the peer's operations wait for our answer.
    pub fn pending_replies(&self) -> usize {
        self.theirs.len()
    }

    /// Feeds bytes read from the socket. An error means the peer broke the protocol; the
    /// association has then been aborted (and [`P3Event::Aborted`] queued).
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), P3AssociationError> {
        if self.state == P3State::Closed {
            return Ok(());
        }
        let r = self.handle_input_inner(bytes);
        if let Err(e) = &r {
            self.fail(format!("{e}"));
        }
        r
    }

    fn handle_input_inner(&mut self, bytes: &[u8]) -> Result<(), P3AssociationError> {
        self.transport.handle_input(bytes)?;
        self.on_transport_events()
    }

    fn on_transport_events(&mut self) -> Result<(), P3AssociationError> {
        while let Some(ev) = self.transport.poll_event() {
            match ev {
                TransportEvent::ConnectIndication { called_tsel, .. } => {
                    if !self.config.local_tsel.is_empty() && called_tsel != self.config.local_tsel {
                        self.transport
                            .refuse(DisconnectReason::SESSION_ENTITY_NOT_ATTACHED)?;
                        self.state = P3State::Closed;
                        self.events.push_back(P3Event::Aborted {
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
                    while let Some(ev) = self.session.poll_event() {
                        self.on_session_event(ev)?;
                    }
                }
                TransportEvent::Disconnected { .. } => {
                    self.closed_by_peer("transport disconnected by the peer");
                }
                other => self.closed_by_peer(&format!("transport: {other:?}")),
            }
        }
        self.flush_session()
    }

    /// Tells the engine the TCP connection ended (EOF or error).
    pub fn connection_lost(&mut self) {
        self.closed_by_peer("connection closed");
    }

    fn closed_by_peer(&mut self, reason: &str) {
        match self.state {
            P3State::Closed => {}
            P3State::Releasing => self.close(P3Event::Released),
            _ => self.close(P3Event::Aborted {
                reason: reason.to_owned(),
            }),
        }
    }

    fn close(&mut self, event: P3Event) {
        self.state = P3State::Closed;
        self.ours.clear();
        self.theirs.clear();
        self.events.push_back(event);
    }

    fn fail(&mut self, reason: String) {
        if self.state != P3State::Closed {
            let _ = self.session.abort(Vec::new());
            let _ = self.flush_session();
            self.transport.disconnect();
            self.close(P3Event::Aborted { reason });
        }
    }

    fn send_connect(&mut self) -> Result<(), P3AssociationError> {
        let Some(bind) = &self.bind else {
            return Err(P3AssociationError::State(self.state));
        };
        let cp = codec::connect_request(&self.config, self.context, bind)?;
        self.session.connect(cp)?;
        self.flush_session()
    }

    fn flush_session(&mut self) -> Result<(), P3AssociationError> {
        while let Some(tsdu) = self.session.poll_tsdu() {
            self.transport.send(&tsdu)?;
        }
        Ok(())
    }

    fn protocol(text: impl Into<String>) -> P3AssociationError {
        P3UpperError::Protocol(text.into()).into()
    }

    fn on_session_event(&mut self, ev: SessionEvent) -> Result<(), P3AssociationError> {
        match ev {
            SessionEvent::ConnectIndication { user_data, .. } => {
                if self.role != Role::Responder || self.state != P3State::Connecting {
                    return Err(Self::protocol("unexpected S-CONNECT"));
                }
                let req = codec::parse_connect_request(&user_data)?;
                self.context = req.context;
                self.contexts = req.contexts;
                self.definitions = req.definitions;
                self.state = P3State::AwaitingBindDecision;
                self.events.push_back(P3Event::BindRequest {
                    argument: req.argument,
                    context: req.context,
                });
            }
            SessionEvent::Accepted { user_data, .. } => {
                if self.role != Role::Initiator || self.state != P3State::Connecting {
                    return Err(Self::protocol("unexpected S-CONNECT confirm"));
                }
                match codec::parse_connect_accept(&user_data)? {
                    Ok((result, contexts)) => {
                        self.contexts = contexts;
                        self.state = P3State::Bound;
                        self.events.push_back(P3Event::Bound { result });
                    }
                    Err(r) => {
                        // The ACSE rejection came in an accepted session connection: end it.
                        let _ = self.session.abort(Vec::new());
                        self.transport.disconnect();
                        self.close(P3Event::BindRefused {
                            error: r.error,
                            reason: r.reason,
                            transient: r.transient,
                        });
                    }
                }
            }
            SessionEvent::Refused { reason, user_data } => {
                let r = codec::parse_connect_refuse(reason, &user_data);
                self.transport.disconnect();
                self.close(P3Event::BindRefused {
                    error: r.error,
                    reason: r.reason,
                    transient: r.transient,
                });
            }
            SessionEvent::Data(user_data) => {
                if !matches!(self.state, P3State::Bound | P3State::Releasing) {
                    return Err(Self::protocol("data before the bind"));
                }
                self.on_data(&user_data)?;
            }
            SessionEvent::FinishIndication { user_data } => {
                if self.state != P3State::Bound {
                    return Err(Self::protocol("S-RELEASE out of place"));
                }
                codec::check_release_request(&user_data)?;
                let rlre = codec::release_response(&self.contexts);
                self.session.disconnect(rlre)?;
                self.flush_session()?;
                self.transport.disconnect();
                self.close(P3Event::Released);
            }
            SessionEvent::Disconnected { .. } => {
                self.transport.disconnect();
                self.close(P3Event::Released);
            }
            SessionEvent::Aborted { user_data, .. } => {
                self.transport.disconnect();
                self.close(P3Event::Aborted {
                    reason: codec::describe_abort(&user_data),
                });
            }
            other => {
                return Err(Self::protocol(format!(
                    "session event {other:?} on a kernel/duplex connection"
                )));
            }
        }
        Ok(())
    }

    fn on_data(&mut self, user_data: &[u8]) -> Result<(), P3AssociationError> {
        let pdvs = presentation::decode_user_data(user_data).map_err(P3UpperError::from)?;
        for pdv in &pdvs {
            let Some(port) = self.contexts.port(pdv.context_id) else {
                return Err(Self::protocol(format!(
                    "data in presentation context {}",
                    pdv.context_id
                )));
            };
            let pdu = pdv.bytes().map(RosPdu::decode);
            match pdu {
                Some(Ok(pdu)) => self.on_ros(port, pdu)?,
                Some(Err(_)) => self.reject(
                    port,
                    InvokeId::Absent,
                    RejectProblem::General(general_problem::BADLY_STRUCTURED_PDU),
                )?,
                None => self.reject(
                    port,
                    InvokeId::Absent,
                    RejectProblem::General(general_problem::MISTYPED_PDU),
                )?,
            }
        }
        Ok(())
    }

    fn on_ros(&mut self, port: Port, pdu: RosPdu) -> Result<(), P3AssociationError> {
        match pdu {
            RosPdu::Invoke(inv) => self.on_invoke(port, inv),
            RosPdu::ReturnResult(rr) => {
                let Some((id, kind)) = self.take_ours(rr.invoke_id) else {
                    return self.reject(
                        port,
                        rr.invoke_id,
                        RejectProblem::ReturnResult(return_problem::UNRECOGNIZED_INVOCATION),
                    );
                };
                match P3Result::decode(kind, rr.result.as_ref().map(|r| r.result.as_slice())) {
                    Ok(result) => {
                        self.events.push_back(P3Event::Result {
                            invoke_id: id,
                            result,
                        });
                        Ok(())
                    }
                    Err(_) => self.reject_answer(
                        port,
                        id,
                        RejectProblem::ReturnResult(return_problem::MISTYPED_RESULT),
                    ),
                }
            }
            RosPdu::ReturnError(re) => {
                let Some((id, _)) = self.take_ours(re.invoke_id) else {
                    return self.reject(
                        port,
                        re.invoke_id,
                        RejectProblem::ReturnError(return_problem::UNRECOGNIZED_INVOCATION),
                    );
                };
                match re.errcode {
                    Code::Local(code) => {
                        self.events.push_back(P3Event::Error {
                            invoke_id: id,
                            code,
                            parameter: re.parameter,
                        });
                        Ok(())
                    }
                    Code::Global(_) => self.reject_answer(
                        port,
                        id,
                        RejectProblem::ReturnError(return_problem::UNRECOGNIZED_ERROR),
                    ),
                }
            }
            RosPdu::Reject(rj) => {
                let invoke_id = match rj.invoke_id {
                    InvokeId::Present(id) => {
                        self.ours.remove(&id);
                        Some(id)
                    }
                    InvokeId::Absent => None,
                };
                self.events.push_back(P3Event::Rejected {
                    invoke_id,
                    problem: rj.problem,
                    by_peer: true,
                });
                Ok(())
            }
        }
    }

    fn take_ours(&mut self, id: InvokeId) -> Option<(i64, OperationKind)> {
        let InvokeId::Present(id) = id else {
            return None;
        };
        self.ours.remove(&id).map(|k| (id, k))
    }

    fn on_invoke(&mut self, port: Port, inv: Invoke) -> Result<(), P3AssociationError> {
        let InvokeId::Present(id) = inv.invoke_id else {
            return self.reject(
                port,
                InvokeId::Absent,
                RejectProblem::General(general_problem::MISTYPED_PDU),
            );
        };
        let problem = |p| RejectProblem::Invoke(p);
        if self.theirs.contains_key(&id) {
            return self.reject(
                port,
                inv.invoke_id,
                problem(invoke_problem::DUPLICATE_INVOCATION),
            );
        }
        if self.state == P3State::Releasing {
            return self.reject(
                port,
                inv.invoke_id,
                problem(invoke_problem::RELEASE_IN_PROGRESS),
            );
        }
        if inv.linked_id.is_some() {
            return self.reject(
                port,
                inv.invoke_id,
                problem(invoke_problem::UNRECOGNIZED_LINKED_ID),
            );
        }
        let kind = match inv.opcode {
            Code::Local(code) => OperationKind::from_code(port, code),
            Code::Global(_) => None,
        };
        let Some(kind) = kind.filter(|k| k.invoker().is_none_or(|p| p == self.peer_party())) else {
            return self.reject(
                port,
                inv.invoke_id,
                problem(invoke_problem::UNRECOGNIZED_OPERATION),
            );
        };
        if self.theirs.len() >= self.config.max_outstanding {
            return self.reject(
                port,
                inv.invoke_id,
                problem(invoke_problem::RESOURCE_LIMITATION),
            );
        }
        match P3Operation::decode(kind, inv.argument.as_deref()) {
            Ok(operation) => {
                self.theirs.insert(id, kind);
                self.events.push_back(P3Event::Invoked {
                    invoke_id: id,
                    operation,
                });
                Ok(())
            }
            Err(_) => self.reject(
                port,
                inv.invoke_id,
                problem(invoke_problem::MISTYPED_ARGUMENT),
            ),
        }
    }

    /// Rejects the peer's answer to our operation `id` and tells the application.
    fn reject_answer(
        &mut self,
        port: Port,
        id: i64,
        problem: RejectProblem,
    ) -> Result<(), P3AssociationError> {
        self.events.push_back(P3Event::Rejected {
            invoke_id: Some(id),
            problem,
            by_peer: false,
        });
        self.reject(port, InvokeId::Present(id), problem)
    }

    fn reject(
        &mut self,
        port: Port,
        invoke_id: InvokeId,
        problem: RejectProblem,
    ) -> Result<(), P3AssociationError> {
        self.send_ros(
            port,
            &RosPdu::Reject(crate::upper::ros::Reject { invoke_id, problem }),
        )
    }

    fn send_ros(&mut self, port: Port, pdu: &RosPdu) -> Result<(), P3AssociationError> {
        let ctx = self
            .contexts
            .of(port)
            .ok_or(P3AssociationError::NoContext(port))?;
        let user_data = presentation::encode_user_data(&[Pdv::single(ctx, pdu.encode())]);
        self.session.send_data(user_data)?;
        self.flush_session()
    }

    fn check_size(&self, v: &Option<Vec<u8>>) -> Result<(), P3AssociationError> {
        if v.as_ref().is_some_and(|v| v.len() > self.config.max_pdu) {
            return Err(P3AssociationError::TooLarge(self.config.max_pdu));
        }
        Ok(())
    }

    /// Responder: accepts the bind, answering with `result`.
    pub fn accept_bind(&mut self, result: MtsBindResult) -> Result<(), P3AssociationError> {
        if self.state != P3State::AwaitingBindDecision {
            return Err(P3AssociationError::State(self.state));
        }
        let cpa = codec::connect_accept(
            &self.config,
            self.context,
            &self.contexts,
            &self.definitions,
            &result,
        )?;
        self.session.accept(cpa)?;
        self.flush_session()?;
        self.state = P3State::Bound;
        Ok(())
    }

    /// Responder: refuses the bind with an MTS-bind error (authentication-error, busy, …).
    pub fn refuse_bind(&mut self, error: MtsBindError) -> Result<(), P3AssociationError> {
        if self.state != P3State::AwaitingBindDecision {
            return Err(P3AssociationError::State(self.state));
        }
        let cpr = codec::connect_refuse(
            &self.config,
            self.context,
            &self.contexts,
            &self.definitions,
            error,
        )?;
        self.session
            .refuse(crate::osi::session::machine::REFUSE_WITH_USER_DATA, cpr)?;
        self.flush_session()?;
        self.state = P3State::Closed;
        Ok(())
    }

    /// Invokes an operation; returns its invoke id, which the answer event names.
    pub fn invoke(&mut self, operation: P3Operation) -> Result<i64, P3AssociationError> {
        if self.state != P3State::Bound {
            return Err(P3AssociationError::State(self.state));
        }
        let kind = operation.kind();
        if kind.invoker().is_some_and(|p| p != self.party()) {
            return Err(P3AssociationError::NotPermitted(kind));
        }
        if self.ours.len() >= self.config.max_outstanding {
            return Err(P3AssociationError::TooManyOutstanding(self.ours.len()));
        }
        let argument = operation.encode_argument()?;
        self.check_size(&argument)?;
        let id = self.allocate_invoke_id();
        let pdu = RosPdu::Invoke(Invoke {
            invoke_id: InvokeId::Present(id),
            linked_id: None,
            opcode: Code::Local(kind.opcode()),
            argument,
        });
        self.send_ros(kind.port(), &pdu)?;
        self.ours.insert(id, kind);
        Ok(id)
    }

    fn allocate_invoke_id(&mut self) -> i64 {
        loop {
            let id = self.next_invoke_id;
            self.next_invoke_id = if id >= i64::from(i32::MAX) { 1 } else { id + 1 };
            if !self.ours.contains_key(&id) {
                return id;
            }
        }
    }

    /// Answers the peer's invocation `invoke_id` with a result of the same operation.
    pub fn reply_result(
        &mut self,
        invoke_id: i64,
        result: P3Result,
    ) -> Result<(), P3AssociationError> {
        let kind = self.pending(invoke_id)?;
        if result.kind() != kind {
            return Err(P3AssociationError::NotPermitted(result.kind()));
        }
        let value = result.encode()?;
        self.check_size(&value)?;
        let pdu = RosPdu::ReturnResult(ReturnResult {
            invoke_id: InvokeId::Present(invoke_id),
            result: value.map(|result| OperationResult {
                opcode: Code::Local(kind.opcode()),
                result,
            }),
        });
        self.send_ros(kind.port(), &pdu)?;
        self.theirs.remove(&invoke_id);
        Ok(())
    }

    /// Answers the peer's invocation `invoke_id` with an abstract error.
    pub fn reply_error(
        &mut self,
        invoke_id: i64,
        error: P3Error,
    ) -> Result<(), P3AssociationError> {
        let kind = self.pending(invoke_id)?;
        self.check_size(&error.parameter)?;
        let pdu = RosPdu::ReturnError(ReturnError {
            invoke_id: InvokeId::Present(invoke_id),
            errcode: Code::Local(error.code),
            parameter: error.parameter,
        });
        self.send_ros(kind.port(), &pdu)?;
        self.theirs.remove(&invoke_id);
        Ok(())
    }

    fn pending(&self, invoke_id: i64) -> Result<OperationKind, P3AssociationError> {
        if self.state != P3State::Bound && self.state != P3State::Releasing {
            return Err(P3AssociationError::State(self.state));
        }
        self.theirs
            .get(&invoke_id)
            .copied()
            .ok_or(P3AssociationError::UnknownInvocation(invoke_id))
    }

    /// Releases the association in order (ACSE release over S-RELEASE; the MTS-unbind is
    /// empty). Operations still outstanding get no answer.
    pub fn release(&mut self) -> Result<(), P3AssociationError> {
        if self.state != P3State::Bound {
            return Err(P3AssociationError::State(self.state));
        }
        let rlrq = codec::release_request(&self.contexts);
        self.session.finish(rlrq)?;
        self.flush_session()?;
        self.state = P3State::Releasing;
        Ok(())
    }

    /// Aborts the association (A-ABORT over S-U-ABORT).
    pub fn abort(&mut self) {
        if self.state != P3State::Closed {
            let aru = codec::abort_request(&self.contexts);
            let _ = self.session.abort(aru);
            let _ = self.flush_session();
            self.transport.disconnect();
            self.state = P3State::Closed;
            self.ours.clear();
            self.theirs.clear();
        }
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<P3Event> {
        self.events.pop_front()
    }

    /// Bytes to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transport.poll_transmit()
    }
}

#[cfg(test)]
mod tests;
