//! P3 (X.411 / X.419): MTS access between an MTS user (user agent, message store) and an MTA,
//! in the application contexts without RTSE: `mts-access-88` / `-94` (the user binds) and
//! `mts-forced-access-88` / `-94` (the MTA binds, to deliver).
//!
//! - [`types`]: the MTS-bind and the arguments and results of the submission, delivery and
//!   administration operations, hand-written on [`crate::ber`] like [`crate::mts`];
//! - [`P3Operation`] / [`P3Result`]: the operations as typed values and who may invoke them;
//! - [`P3Association`]: one association as a sans-IO engine (transport, session kernel +
//!   duplex, presentation, ACSE with the MTS-bind in the AARQ/AARE, ROS in P-DATA).
//!
//! Driver order, for every read from the socket: [`P3Association::handle_input`], then drain
//! [`P3Association::poll_event`] (acting on each event), then [`P3Association::poll_transmit`]
//! until it returns `None` and write what it gave; after each command drain
//! `poll_transmit` as well.

mod association;
mod codec;
mod operation;
pub mod types;

#[cfg(test)]
pub(crate) mod testutil;

pub use association::{
    DEFAULT_MAX_OUTSTANDING, DEFAULT_MAX_PDU, P3Association, P3AssociationError, P3Config, P3Event,
    P3State,
};
pub use codec::{ID_AS_MASE_94, ID_AS_MDSE_94, P3Context, P3Contexts, P3UpperError};
pub use operation::{OperationKind, P3Operation, P3Result, Party, Port};
pub use types::{
    MtsBindArgument, MtsBindError, MtsBindResult, ObjectName, P3Error, error_code, operation_code,
};
