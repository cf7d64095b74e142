//! One RFC 1006 listener for P1 and P3, as a sans-IO engine: [`Dispatch`] takes a new
//! connection up to the point where the responder it belongs to is known, then hands the
//! transport connection over to that responder's engine
//! ([`crate::p1::Association::responder_on`], [`crate::p3::P3Association::responder_on`]).
//!
//! The role of an OSI transport service listener: a connection goes to a responder by the
//! called transport selector of its CR and, when both responders serve that selector, by the
//! application context name of the AARQ (X.227) in the CP PPDU (X.226) in the session CONNECT
//! (X.225) that opens the session: one of the P3 access contexts (`mts-access-88` /
//! `mts-forced-access-88` / `-94`) goes to P3, anything else to P1, whose responder refuses
//! what it cannot serve as it always has. Nothing here is a second parser: the TPDUs go through
//! [`Transport`], the CONNECT through the session, presentation and ACSE decoders.
//!
//! The CR and the CONNECT arrive in different TPKTs, and the initiator sends the CONNECT only
//! after our CC: the dispatcher answers the CR itself (CC, or DR for a selector neither
//! responder serves) and stops at the first TSDU, which it leaves queued in the transport for
//! the engine it is handed to.
//!
//! A driver:
//! 1. [`Dispatch::new`] once the TCP connection is accepted;
//! 2. on each read, [`Dispatch::handle_input`]; after it (whatever its result) write out
//!    [`Dispatch::poll_transmit`];
//! 3. on `Ok(Some(responder))`, [`Dispatch::into_transport`] and build that responder's engine
//!    on it; on an error, close the connection (the peer is at fault, see [`DispatchError`]);
//!    at end of file before a decision, [`Dispatch::handle_eof`].
//!
//! Limits: at most [`MAX_DISPATCH_INPUT`] octets are taken before the decision; the driver
//! bounds the time (the channel's `MAX_DISPATCH_WAIT`).

use crate::osi::cotp::DisconnectReason;
use crate::osi::session::{Spdu, parse_tsdu};
use crate::osi::transport::{Transport, TransportConfig, TransportError, TransportEvent};
use crate::p3::P3Context;
use crate::upper::acse::AcsePdu;
use crate::upper::presentation::{self, CpPpdu};
use crate::upper::{self as up, oid};

/// The most octets a peer may send before the dispatch decision: a CR (at most a few hundred
/// octets) and a session CONNECT with its largest user data (10 240 octets, X.225
/// `MAX_CONNECT_USER_DATA`) in DTs of the smallest TPDU size, with room to spare.
pub const MAX_DISPATCH_INPUT: usize = 16 * 1024;

/// The responder a connection goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responder {
    /// P1 (message transfer, `id-ac-mts-transfer`), and whatever is not P3.
    P1,
    /// P3 (MTS access, the `mts-access` and `mts-forced-access` contexts).
    P3,
}

/// Which transport selectors each responder serves (empty: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchConfig {
    /// The P1 responder's transport selector.
    pub p1_tsel: Vec<u8>,
    /// The P3 responder's transport selector.
    pub p3_tsel: Vec<u8>,
}

impl DispatchConfig {
    /// The responders that serve `called_tsel`.
    fn serving(&self, called_tsel: &[u8]) -> (bool, bool) {
        let serves = |ours: &[u8]| ours.is_empty() || ours == called_tsel;
        (serves(&self.p1_tsel), serves(&self.p3_tsel))
    }
}

/// Why a connection was dropped before it reached a responder. Every variant is the peer's
/// doing: it broke the protocol, asked for something not here, sent too much, or went away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The peer broke RFC 1006 / X.224 (an ER is queued where the framing allowed one).
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The CR named a transport selector neither responder serves; a DR (reason 2, no session
    /// entity attached) is queued.
    #[error("connection for transport selector {0:02x?}, served by neither P1 nor P3")]
    ForeignSelector(Vec<u8>),
    /// More than [`MAX_DISPATCH_INPUT`] octets without a session CONNECT.
    #[error("peer sent more than {MAX_DISPATCH_INPUT} octets before its session CONNECT")]
    TooLong,
    /// The peer closed the connection without sending anything (a port probe).
    #[error("the peer closed the connection without sending anything")]
    Silent,
    /// The peer disconnected (DR, ER or end of file) before its session CONNECT, or did not
    /// send it in time.
    #[error("connection ended before the session CONNECT: {0}")]
    Ended(String),
}

/// A connection on the shared listener, before its responder is known: see the
/// [module documentation](self).
#[derive(Debug)]
pub struct Dispatch {
    config: DispatchConfig,
    transport: Transport,
    taken: usize,
    decided: Option<Responder>,
}

impl Dispatch {
    /// A new connection, waiting for its CR.
    pub fn new(config: DispatchConfig) -> Result<Dispatch, TransportError> {
        let transport = Transport::responder(TransportConfig {
            max_tsdu: MAX_DISPATCH_INPUT,
            ..TransportConfig::default()
        })?;
        Ok(Dispatch {
            config,
            transport,
            taken: 0,
            decided: None,
        })
    }

    /// The responder, once decided.
    pub fn decision(&self) -> Option<Responder> {
        self.decided
    }

    /// Feeds octets read from the connection, in any chunking: `Ok(Some(_))` once the
    /// responder is known (input after that point stays queued in the transport for it),
    /// `Ok(None)` for more. An error ends the connection; write out
    /// [`Dispatch::poll_transmit`] first.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<Option<Responder>, DispatchError> {
        if self.decided.is_some() {
            // The caller hands the transport over at the decision; keep anything more for it.
            self.transport.handle_input(bytes)?;
            return Ok(self.decided);
        }
        self.taken = self.taken.saturating_add(bytes.len());
        if self.taken > MAX_DISPATCH_INPUT {
            self.transport.disconnect();
            return Err(DispatchError::TooLong);
        }
        self.transport.handle_input(bytes)?;
        while let Some(event) = self.transport.peek_event() {
            match event {
                TransportEvent::ConnectIndication { called_tsel, .. } => {
                    let called_tsel = called_tsel.clone();
                    self.transport.poll_event();
                    match self.config.serving(&called_tsel) {
                        (false, false) => {
                            self.transport
                                .refuse(DisconnectReason::SESSION_ENTITY_NOT_ATTACHED)?;
                            return Err(DispatchError::ForeignSelector(called_tsel));
                        }
                        (p1, p3) => {
                            self.transport.accept()?;
                            if p1 != p3 {
                                // The selector alone decides.
                                self.decided = Some(if p1 { Responder::P1 } else { Responder::P3 });
                                return Ok(self.decided);
                            }
                        }
                    }
                }
                TransportEvent::Data(tsdu) => {
                    // Left queued: the responder's session takes it from here.
                    self.decided = Some(responder_for(tsdu));
                    return Ok(self.decided);
                }
                _ => {
                    let ended = self.transport.poll_event();
                    self.transport.disconnect();
                    return Err(DispatchError::Ended(format!("{ended:?}")));
                }
            }
        }
        Ok(None)
    }

    /// The peer closed the connection before the decision.
    pub fn handle_eof(&mut self) -> DispatchError {
        if self.taken == 0 {
            self.transport.disconnect();
            return DispatchError::Silent;
        }
        match self.transport.handle_eof() {
            Err(e) => DispatchError::Transport(e),
            Ok(()) => DispatchError::Ended("the peer closed the connection".into()),
        }
    }

    /// Octets to write to the connection (the CC, or the DR or ER that ends it).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transport.poll_transmit()
    }

    /// The transport connection, for the responder's engine.
    pub fn into_transport(self) -> Transport {
        self.transport
    }
}

/// The application context name of the AARQ in a session CONNECT TSDU, if it is one: the
/// TSDU is a CONNECT whose user data is a CP PPDU carrying an AARQ in the context it offers
/// for ACSE.
pub fn application_context(tsdu: &[u8]) -> Option<crate::ber::Oid> {
    let spdus = parse_tsdu(tsdu).ok()?;
    let [Spdu::Connect(connect)] = spdus.as_slice() else {
        return None;
    };
    let cp = CpPpdu::decode(&connect.user_data).ok()?;
    let acse = presentation::find_ber_context(&cp.contexts, &oid(up::ACSE_ABSTRACT_SYNTAX))?;
    let pdv = cp.user_data.iter().find(|p| p.context_id == acse)?;
    match AcsePdu::decode(pdv.bytes()?).ok()? {
        AcsePdu::Aarq(aarq) => Some(aarq.application_context),
        _ => None,
    }
}

/// The responder for a session CONNECT TSDU: P3 for an MTS access context, P1 otherwise
/// (including a CONNECT that cannot be read: the P1 responder refuses it as it always has).
pub fn responder_for(tsdu: &[u8]) -> Responder {
    match application_context(tsdu) {
        Some(context) if P3Context::from_oid(&context).is_some() => Responder::P3,
        _ => Responder::P1,
    }
}

#[cfg(test)]
mod tests;
