//! The P3 operations as typed values: what an invoke carries ([`P3Operation`]), what a
//! return-result carries ([`P3Result`]), and the rules of who invokes what in which abstract
//! syntax (X.411 §8 ports, X.419 `MTSAccessProtocol` abstract syntaxes).

use crate::mts::{MtsError, MtsIdentifier};

use super::types::{
    Controls, DeliveryControlArgument, DeliveryControlResult, MessageDeliveryArgument,
    MessageDeliveryResult, MessageSubmissionArgument, MessageSubmissionResult,
    ProbeSubmissionArgument, ProbeSubmissionResult, RawValue, ReportDeliveryArgument,
    ReportDeliveryResult, Waiting, operation_code as op,
};

/// The abstract syntax (port) an operation belongs to; its PDUs travel in that presentation
/// context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    /// Message submission service element (`id-as-msse`).
    Submission,
    /// Message delivery service element (`id-as-mdse-88` / `-94`).
    Delivery,
    /// Message administration service element (`id-as-mase-88` / `-94`).
    Administration,
}

/// The two parties of an MTS access association.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    /// The user agent or message store (the consumer of the ports).
    MtsUser,
    /// The MTA (the supplier of the ports).
    Mts,
}

/// Which operation an invocation is, without its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    /// `message-submission`.
    MessageSubmission,
    /// `probe-submission`.
    ProbeSubmission,
    /// `cancel-deferred-delivery`.
    CancelDeferredDelivery,
    /// `submission-control`.
    SubmissionControl,
    /// `message-delivery`.
    MessageDelivery,
    /// `report-delivery`.
    ReportDelivery,
    /// `delivery-control`.
    DeliveryControl,
    /// `register`.
    Register,
    /// `change-credentials`.
    ChangeCredentials,
    /// Another local operation code (sent in the submission context).
    Unknown(i64),
}

impl OperationKind {
    /// The local operation code.
    pub fn opcode(self) -> i64 {
        match self {
            OperationKind::MessageSubmission => op::MESSAGE_SUBMISSION,
            OperationKind::ProbeSubmission => op::PROBE_SUBMISSION,
            OperationKind::CancelDeferredDelivery => op::CANCEL_DEFERRED_DELIVERY,
            OperationKind::SubmissionControl | OperationKind::DeliveryControl => {
                op::SUBMISSION_OR_DELIVERY_CONTROL
            }
            OperationKind::MessageDelivery => op::MESSAGE_DELIVERY,
            OperationKind::ReportDelivery => op::REPORT_DELIVERY,
            OperationKind::Register => op::REGISTER,
            OperationKind::ChangeCredentials => op::CHANGE_CREDENTIALS,
            OperationKind::Unknown(c) => c,
        }
    }

    /// The port whose abstract syntax carries it.
    pub fn port(self) -> Port {
        match self {
            OperationKind::MessageSubmission
            | OperationKind::ProbeSubmission
            | OperationKind::CancelDeferredDelivery
            | OperationKind::SubmissionControl
            | OperationKind::Unknown(_) => Port::Submission,
            OperationKind::MessageDelivery
            | OperationKind::ReportDelivery
            | OperationKind::DeliveryControl => Port::Delivery,
            OperationKind::Register | OperationKind::ChangeCredentials => Port::Administration,
        }
    }

    /// Who may invoke it (X.411 §8: the consumer invokes submission, probe, cancel,
    /// delivery-control and register; the supplier invokes submission-control, delivery and
    /// report delivery); `None` for change-credentials (either) and unknown codes.
    pub fn invoker(self) -> Option<Party> {
        match self {
            OperationKind::MessageSubmission
            | OperationKind::ProbeSubmission
            | OperationKind::CancelDeferredDelivery
            | OperationKind::DeliveryControl
            | OperationKind::Register => Some(Party::MtsUser),
            OperationKind::SubmissionControl
            | OperationKind::MessageDelivery
            | OperationKind::ReportDelivery => Some(Party::Mts),
            OperationKind::ChangeCredentials | OperationKind::Unknown(_) => None,
        }
    }

    /// The operation a code names in a port's abstract syntax; `None` when the syntax has no
    /// such operation.
    pub fn from_code(port: Port, opcode: i64) -> Option<Self> {
        Some(match (port, opcode) {
            (Port::Submission, op::MESSAGE_SUBMISSION) => OperationKind::MessageSubmission,
            (Port::Submission, op::PROBE_SUBMISSION) => OperationKind::ProbeSubmission,
            (Port::Submission, op::CANCEL_DEFERRED_DELIVERY) => {
                OperationKind::CancelDeferredDelivery
            }
            (Port::Submission, op::SUBMISSION_OR_DELIVERY_CONTROL) => {
                OperationKind::SubmissionControl
            }
            (Port::Delivery, op::MESSAGE_DELIVERY) => OperationKind::MessageDelivery,
            (Port::Delivery, op::REPORT_DELIVERY) => OperationKind::ReportDelivery,
            (Port::Delivery, op::SUBMISSION_OR_DELIVERY_CONTROL) => OperationKind::DeliveryControl,
            (Port::Administration, op::REGISTER) => OperationKind::Register,
            (Port::Administration, op::CHANGE_CREDENTIALS) => OperationKind::ChangeCredentials,
            _ => return None,
        })
    }
}

/// An operation with its argument, as invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum P3Operation {
    /// `message-submission`.
    MessageSubmission(Box<MessageSubmissionArgument>),
    /// `probe-submission`.
    ProbeSubmission(Box<ProbeSubmissionArgument>),
    /// `cancel-deferred-delivery`: the message submission identifier.
    CancelDeferredDelivery(MtsIdentifier),
    /// `submission-control`: `SubmissionControls`.
    SubmissionControl(Box<Controls>),
    /// `message-delivery`.
    MessageDelivery(Box<MessageDeliveryArgument>),
    /// `report-delivery`.
    ReportDelivery(Box<ReportDeliveryArgument>),
    /// `delivery-control`.
    DeliveryControl(Box<DeliveryControlArgument>),
    /// `register`: kept whole.
    Register(RawValue),
    /// `change-credentials`: kept whole.
    ChangeCredentials(RawValue),
    /// Another operation code, sent in the submission context. A peer's invocation of an
    /// operation its abstract syntax does not have is rejected, never reported as this.
    Unknown {
        /// The local operation code.
        opcode: i64,
        /// The argument's complete BER element.
        argument: Option<Vec<u8>>,
    },
}

impl P3Operation {
    /// Which operation this is.
    pub fn kind(&self) -> OperationKind {
        match self {
            P3Operation::MessageSubmission(_) => OperationKind::MessageSubmission,
            P3Operation::ProbeSubmission(_) => OperationKind::ProbeSubmission,
            P3Operation::CancelDeferredDelivery(_) => OperationKind::CancelDeferredDelivery,
            P3Operation::SubmissionControl(_) => OperationKind::SubmissionControl,
            P3Operation::MessageDelivery(_) => OperationKind::MessageDelivery,
            P3Operation::ReportDelivery(_) => OperationKind::ReportDelivery,
            P3Operation::DeliveryControl(_) => OperationKind::DeliveryControl,
            P3Operation::Register(_) => OperationKind::Register,
            P3Operation::ChangeCredentials(_) => OperationKind::ChangeCredentials,
            P3Operation::Unknown { opcode, .. } => OperationKind::Unknown(*opcode),
        }
    }

    /// The argument's encoding.
    pub fn encode_argument(&self) -> Result<Option<Vec<u8>>, MtsError> {
        Ok(Some(match self {
            P3Operation::MessageSubmission(a) => a.encode()?,
            P3Operation::ProbeSubmission(a) => a.encode()?,
            P3Operation::CancelDeferredDelivery(id) => {
                let mut w = crate::ber::Writer::new();
                id.encode(&mut w)?;
                w.finish()
            }
            P3Operation::MessageDelivery(a) => a.encode()?,
            P3Operation::ReportDelivery(a) => a.encode()?,
            P3Operation::SubmissionControl(c) => c.encode()?,
            P3Operation::DeliveryControl(a) => a.encode()?,
            P3Operation::Register(v) | P3Operation::ChangeCredentials(v) => v.0.clone(),
            P3Operation::Unknown { argument, .. } => return Ok(argument.clone()),
        }))
    }

    /// Decodes the argument of an invocation of `kind` (never `Unknown`).
    pub fn decode(kind: OperationKind, argument: Option<&[u8]>) -> Result<Self, MtsError> {
        let arg = || argument.ok_or(crate::ber::BerError::Missing("argument"));
        Ok(match kind {
            OperationKind::MessageSubmission => {
                P3Operation::MessageSubmission(Box::new(MessageSubmissionArgument::decode(arg()?)?))
            }
            OperationKind::ProbeSubmission => {
                P3Operation::ProbeSubmission(Box::new(ProbeSubmissionArgument::decode(arg()?)?))
            }
            OperationKind::CancelDeferredDelivery => P3Operation::CancelDeferredDelivery(
                MtsIdentifier::decode(&crate::ber::parse_one(arg()?)?)?,
            ),
            OperationKind::SubmissionControl => {
                P3Operation::SubmissionControl(Box::new(Controls::decode(arg()?)?))
            }
            OperationKind::MessageDelivery => {
                P3Operation::MessageDelivery(Box::new(MessageDeliveryArgument::decode(arg()?)?))
            }
            OperationKind::ReportDelivery => {
                P3Operation::ReportDelivery(Box::new(ReportDeliveryArgument::decode(arg()?)?))
            }
            OperationKind::DeliveryControl => {
                P3Operation::DeliveryControl(Box::new(DeliveryControlArgument::decode(arg()?)?))
            }
            OperationKind::Register => P3Operation::Register(RawValue::decode(arg()?)?),
            OperationKind::ChangeCredentials => {
                P3Operation::ChangeCredentials(RawValue::decode(arg()?)?)
            }
            OperationKind::Unknown(opcode) => P3Operation::Unknown {
                opcode,
                argument: argument.map(<[u8]>::to_vec),
            },
        })
    }
}

/// The result of an operation, as returned.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum P3Result {
    /// `message-submission`.
    MessageSubmission(MessageSubmissionResult),
    /// `probe-submission`.
    ProbeSubmission(ProbeSubmissionResult),
    /// `cancel-deferred-delivery` (`NULL`).
    CancelDeferredDelivery,
    /// `submission-control`: `Waiting`.
    SubmissionControl(Waiting),
    /// `message-delivery`, kept whole (an empty SET when nothing is returned).
    MessageDelivery(MessageDeliveryResult),
    /// `report-delivery`, kept whole (`NULL` when nothing is returned).
    ReportDelivery(ReportDeliveryResult),
    /// `delivery-control`: `Waiting` and extensions.
    DeliveryControl(DeliveryControlResult),
    /// `register` (`NULL`, or nothing), kept whole.
    Register(Option<RawValue>),
    /// `change-credentials`, kept whole.
    ChangeCredentials(Option<RawValue>),
    /// The result of an [`P3Operation::Unknown`] invocation.
    Unknown {
        /// The operation code.
        opcode: i64,
        /// The result's complete BER element.
        result: Option<Vec<u8>>,
    },
}

impl P3Result {
    /// Which operation this answers.
    pub fn kind(&self) -> OperationKind {
        match self {
            P3Result::MessageSubmission(_) => OperationKind::MessageSubmission,
            P3Result::ProbeSubmission(_) => OperationKind::ProbeSubmission,
            P3Result::CancelDeferredDelivery => OperationKind::CancelDeferredDelivery,
            P3Result::SubmissionControl(_) => OperationKind::SubmissionControl,
            P3Result::MessageDelivery(_) => OperationKind::MessageDelivery,
            P3Result::ReportDelivery(_) => OperationKind::ReportDelivery,
            P3Result::DeliveryControl(_) => OperationKind::DeliveryControl,
            P3Result::Register(_) => OperationKind::Register,
            P3Result::ChangeCredentials(_) => OperationKind::ChangeCredentials,
            P3Result::Unknown { opcode, .. } => OperationKind::Unknown(*opcode),
        }
    }

    /// The result's encoding; `None` sends a return-result without a result.
    pub fn encode(&self) -> Result<Option<Vec<u8>>, MtsError> {
        Ok(match self {
            P3Result::MessageSubmission(r) | P3Result::ProbeSubmission(r) => Some(r.encode()?),
            P3Result::CancelDeferredDelivery => Some(RawValue::null().0),
            P3Result::SubmissionControl(w) => Some(w.encode()?),
            P3Result::DeliveryControl(r) => Some(r.encode()?),
            P3Result::MessageDelivery(v) | P3Result::ReportDelivery(v) => Some(v.0.clone()),
            P3Result::Register(v) | P3Result::ChangeCredentials(v) => {
                v.as_ref().map(|v| v.0.clone())
            }
            P3Result::Unknown { result, .. } => result.clone(),
        })
    }

    /// Decodes the result of an invocation of `kind`.
    pub fn decode(kind: OperationKind, result: Option<&[u8]>) -> Result<Self, MtsError> {
        let res = || result.ok_or(crate::ber::BerError::Missing("result"));
        let raw = |r: Option<&[u8]>| r.map(RawValue::decode).transpose();
        Ok(match kind {
            OperationKind::MessageSubmission => {
                P3Result::MessageSubmission(MessageSubmissionResult::decode(res()?)?)
            }
            OperationKind::ProbeSubmission => {
                P3Result::ProbeSubmission(ProbeSubmissionResult::decode(res()?)?)
            }
            OperationKind::CancelDeferredDelivery => {
                raw(result)?;
                P3Result::CancelDeferredDelivery
            }
            OperationKind::SubmissionControl => {
                P3Result::SubmissionControl(Waiting::decode(res()?)?)
            }
            OperationKind::MessageDelivery => {
                P3Result::MessageDelivery(raw(result)?.unwrap_or_else(RawValue::empty_set))
            }
            OperationKind::ReportDelivery => {
                P3Result::ReportDelivery(raw(result)?.unwrap_or_else(RawValue::null))
            }
            OperationKind::DeliveryControl => {
                P3Result::DeliveryControl(DeliveryControlResult::decode(res()?)?)
            }
            OperationKind::Register => P3Result::Register(raw(result)?),
            OperationKind::ChangeCredentials => P3Result::ChangeCredentials(raw(result)?),
            OperationKind::Unknown(opcode) => P3Result::Unknown {
                opcode,
                result: result.map(<[u8]>::to_vec),
            },
        })
    }
}
