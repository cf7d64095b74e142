//! P1 (X.411/X.419) associations between MTAs, in 1988 normal mode.
//!
//! [`Association`] is one association as a sans-IO engine: it owns the transport (TPKT +
//! COTP), the session and the upper-layer PDUs (presentation, ACSE, RTSE, the MTA bind) and
//! gives the MTA a small surface: bind, transfer one MTS-APDU per activity, confirm, release.
//!
//! Driver order, for every read from the socket: [`Association::handle_input`], then drain
//! [`Association::poll_event`] (acting on each event), then [`Association::poll_transmit`] until
//! it returns `None` and write what it gave.

mod association;
mod codec;

pub use association::{
    Association, AssociationConfig, AssociationError, BindCredentials, DEFAULT_MAX_APDU,
    DEFAULT_SEGMENT_SIZE, DialogueMode, P1Event, Role, State,
};
pub use codec::{BindError, Contexts, UpperError};
