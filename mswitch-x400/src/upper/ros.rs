//! X.880 ROS PDUs: the bind and unbind wrappers that ride in RTSE `open` (P1) or ACSE user
//! information (P3), and the general ROS PDUs (invoke, return-result, return-error, reject)
//! for P3.
//!
//! The bind wrappers tag an open type, so they are explicit: `bind-invoke [16]`,
//! `bind-result [17]`, `bind-error [18]`, `unbind-invoke [19]`, `unbind-result [20]`,
//! `unbind-error [21]`, each around the complete BER element of the argument, result or error
//! (the X.411 `MTABindArgument`, … codecs live elsewhere). The Generic-ROS-PDUs module tags
//! implicitly: `invoke [1]` etc. are implicit SEQUENCEs, `linkedId present [0]` an implicit
//! INTEGER, the reject problems `[0]`..`[3]` implicit INTEGERs; arguments, results and
//! parameters are open types, kept as their BER element.

use crate::ber::{BerError, Oid, Tag, Tlv, Writer, parse_one};

use super::context_number;

/// Why a ROS PDU could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RosError {
    /// The bytes are not valid BER, or not the PDU's structure (the peer's fault).
    #[error("ROS PDU: {0}")]
    Ber(#[from] BerError),
    /// A tag that is not one of the PDUs expected here (the peer's fault).
    #[error("unexpected ROS PDU {0}")]
    UnknownPdu(Tag),
}

/// The ROS bind PDUs (`Bind{}` of X.880): what RTSE `open` carries for P1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosBind {
    /// `bind-invoke [16]`: the bind argument element (MTABindArgument).
    Invoke(Vec<u8>),
    /// `bind-result [17]`: the bind result element (MTABindResult).
    Result(Vec<u8>),
    /// `bind-error [18]`: the bind error element (MTABindError).
    Error(Vec<u8>),
}

/// The ROS unbind PDUs (`Unbind{}` of X.880). P1 unbinds with an RLRQ and no data, so these
/// are for P3 peers that send them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosUnbind {
    /// `unbind-invoke [19]`: the unbind argument element.
    Invoke(Vec<u8>),
    /// `unbind-result [20]`: the unbind result element.
    Result(Vec<u8>),
    /// `unbind-error [21]`: the unbind error element.
    Error(Vec<u8>),
}

fn decode_wrapper(bytes: &[u8], first: u32) -> Result<(u32, Vec<u8>), RosError> {
    let t = parse_one(bytes)?;
    match context_number(t.tag) {
        Some(n) if (first..first + 3).contains(&n) && t.tag.constructed => {
            Ok((n - first, t.explicit_inner()?.raw.to_vec()))
        }
        _ => Err(RosError::UnknownPdu(t.tag)),
    }
}

fn encode_wrapper(n: u32, inner: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(inner.len() + 6);
    w.explicit(Tag::context(n), |w| w.raw(inner));
    w.finish()
}

impl RosBind {
    /// Decodes a bind PDU.
    pub fn decode(bytes: &[u8]) -> Result<Self, RosError> {
        Ok(match decode_wrapper(bytes, 16)? {
            (0, v) => RosBind::Invoke(v),
            (1, v) => RosBind::Result(v),
            (_, v) => RosBind::Error(v),
        })
    }

    /// Encodes the bind PDU.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RosBind::Invoke(v) => encode_wrapper(16, v),
            RosBind::Result(v) => encode_wrapper(17, v),
            RosBind::Error(v) => encode_wrapper(18, v),
        }
    }
}

impl RosUnbind {
    /// Decodes an unbind PDU.
    pub fn decode(bytes: &[u8]) -> Result<Self, RosError> {
        Ok(match decode_wrapper(bytes, 19)? {
            (0, v) => RosUnbind::Invoke(v),
            (1, v) => RosUnbind::Result(v),
            (_, v) => RosUnbind::Error(v),
        })
    }

    /// Encodes the unbind PDU.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RosUnbind::Invoke(v) => encode_wrapper(19, v),
            RosUnbind::Result(v) => encode_wrapper(20, v),
            RosUnbind::Error(v) => encode_wrapper(21, v),
        }
    }
}

/// `InvokeId ::= CHOICE { present INTEGER, absent NULL }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvokeId {
    /// `present`.
    Present(i64),
    /// `absent` (only in a reject of a PDU whose invoke id could not be read).
    Absent,
}

impl InvokeId {
    fn decode(t: &Tlv<'_>) -> Result<Self, BerError> {
        if t.tag == Tag::INTEGER {
            Ok(InvokeId::Present(t.integer()?))
        } else if t.tag == Tag::NULL {
            Ok(InvokeId::Absent)
        } else {
            Err(BerError::Unexpected {
                expected: "InvokeId INTEGER or NULL",
                found: t.tag,
            })
        }
    }

    fn encode(self, w: &mut Writer) {
        match self {
            InvokeId::Present(v) => w.integer(v),
            InvokeId::Absent => w.null_tagged(Tag::NULL),
        }
    }
}

/// `Code ::= CHOICE { local INTEGER, global OBJECT IDENTIFIER }`: an operation or error code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    /// `local`: X.400 uses these (P3 operations 1..=8).
    Local(i64),
    /// `global`.
    Global(Oid),
}

impl Code {
    fn decode(t: &Tlv<'_>) -> Result<Self, BerError> {
        if t.tag == Tag::INTEGER {
            Ok(Code::Local(t.integer()?))
        } else if t.tag == Tag::OID {
            Ok(Code::Global(t.oid()?))
        } else {
            Err(BerError::Unexpected {
                expected: "Code INTEGER or OBJECT IDENTIFIER",
                found: t.tag,
            })
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Code::Local(v) => w.integer(*v),
            Code::Global(o) => w.oid(o),
        }
    }
}

/// `invoke [1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoke {
    /// `invokeId`.
    pub invoke_id: InvokeId,
    /// `linkedId`: `present [0]` or `absent [1]`; `None` when the component is left out.
    pub linked_id: Option<InvokeId>,
    /// `opcode`.
    pub opcode: Code,
    /// `argument`: the complete BER element.
    pub argument: Option<Vec<u8>>,
}

/// The `result` component of a return-result: the operation code and the result element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationResult {
    /// `opcode`.
    pub opcode: Code,
    /// `result`: the complete BER element.
    pub result: Vec<u8>,
}

/// `returnResult [2]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnResult {
    /// `invokeId`.
    pub invoke_id: InvokeId,
    /// `result` (absent for operations that return no value).
    pub result: Option<OperationResult>,
}

/// `returnError [3]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnError {
    /// `invokeId`.
    pub invoke_id: InvokeId,
    /// `errcode`.
    pub errcode: Code,
    /// `parameter`: the complete BER element.
    pub parameter: Option<Vec<u8>>,
}

/// The `problem` of a reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectProblem {
    /// `general [0]`: 0 unrecognized PDU, 1 mistyped PDU, 2 badly structured PDU.
    General(i64),
    /// `invoke [1]`: 0 duplicate invocation, 1 unrecognized operation, 2 mistyped argument,
    /// 3 resource limitation, 4 release in progress, 5..=7 linked operation problems.
    Invoke(i64),
    /// `returnResult [2]`: 0 unrecognized invocation, 1 result response unexpected,
    /// 2 mistyped result.
    ReturnResult(i64),
    /// `returnError [3]`: 0 unrecognized invocation, 1 error response unexpected,
    /// 2 unrecognized error, 3 unexpected error, 4 mistyped parameter.
    ReturnError(i64),
}

/// `reject [4]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// `invokeId` (absent when the rejected PDU's could not be read).
    pub invoke_id: InvokeId,
    /// `problem`.
    pub problem: RejectProblem,
}

/// `ROS ::= CHOICE { invoke [1], returnResult [2], returnError [3], reject [4] }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosPdu {
    /// `invoke [1]`.
    Invoke(Invoke),
    /// `returnResult [2]`.
    ReturnResult(ReturnResult),
    /// `returnError [3]`.
    ReturnError(ReturnError),
    /// `reject [4]`.
    Reject(Reject),
}

impl RosPdu {
    /// Decodes a ROS PDU.
    pub fn decode(bytes: &[u8]) -> Result<Self, RosError> {
        let t = parse_one(bytes)?;
        if !t.tag.constructed {
            return Err(RosError::UnknownPdu(t.tag));
        }
        let pdu = match context_number(t.tag) {
            Some(1) => RosPdu::Invoke(decode_invoke(&t)?),
            Some(2) => RosPdu::ReturnResult(decode_return_result(&t)?),
            Some(3) => RosPdu::ReturnError(decode_return_error(&t)?),
            Some(4) => RosPdu::Reject(decode_reject(&t)?),
            _ => return Err(RosError::UnknownPdu(t.tag)),
        };
        Ok(pdu)
    }

    /// Encodes the PDU.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            RosPdu::Invoke(i) => w.constructed(Tag::context(1), |w| {
                i.invoke_id.encode(w);
                match i.linked_id {
                    Some(InvokeId::Present(v)) => w.integer_tagged(Tag::context(0), v),
                    Some(InvokeId::Absent) => w.null_tagged(Tag::context(1)),
                    None => {}
                }
                i.opcode.encode(w);
                if let Some(a) = &i.argument {
                    w.raw(a);
                }
            }),
            RosPdu::ReturnResult(r) => w.constructed(Tag::context(2), |w| {
                r.invoke_id.encode(w);
                if let Some(res) = &r.result {
                    w.sequence(|w| {
                        res.opcode.encode(w);
                        w.raw(&res.result);
                    });
                }
            }),
            RosPdu::ReturnError(e) => w.constructed(Tag::context(3), |w| {
                e.invoke_id.encode(w);
                e.errcode.encode(w);
                if let Some(p) = &e.parameter {
                    w.raw(p);
                }
            }),
            RosPdu::Reject(r) => w.constructed(Tag::context(4), |w| {
                r.invoke_id.encode(w);
                let (n, v) = match r.problem {
                    RejectProblem::General(v) => (0, v),
                    RejectProblem::Invoke(v) => (1, v),
                    RejectProblem::ReturnResult(v) => (2, v),
                    RejectProblem::ReturnError(v) => (3, v),
                };
                w.integer_tagged(Tag::context(n), v);
            }),
        }
        w.finish()
    }
}

fn decode_invoke(t: &Tlv<'_>) -> Result<Invoke, RosError> {
    let mut r = t.children()?;
    let invoke_id = InvokeId::decode(&r.next_required("invokeId")?)?;
    let mut next = r.next_required("opcode")?;
    let mut linked_id = None;
    match context_number(next.tag) {
        Some(0) => linked_id = Some(InvokeId::Present(next.integer()?)),
        Some(1) => linked_id = Some(InvokeId::Absent),
        _ => {}
    }
    if linked_id.is_some() {
        next = r.next_required("opcode")?;
    }
    let opcode = Code::decode(&next)?;
    let argument = r.next()?.map(|a| a.raw.to_vec());
    r.finish()?;
    Ok(Invoke {
        invoke_id,
        linked_id,
        opcode,
        argument,
    })
}

fn decode_return_result(t: &Tlv<'_>) -> Result<ReturnResult, RosError> {
    let mut r = t.children()?;
    let invoke_id = InvokeId::decode(&r.next_required("invokeId")?)?;
    let result = match r.next()? {
        Some(seq) => {
            let mut s = seq.expect(Tag::SEQUENCE, "result SEQUENCE")?.children()?;
            let opcode = Code::decode(&s.next_required("opcode")?)?;
            let result = s.next_required("result")?.raw.to_vec();
            s.finish()?;
            Some(OperationResult { opcode, result })
        }
        None => None,
    };
    r.finish()?;
    Ok(ReturnResult { invoke_id, result })
}

fn decode_return_error(t: &Tlv<'_>) -> Result<ReturnError, RosError> {
    let mut r = t.children()?;
    let invoke_id = InvokeId::decode(&r.next_required("invokeId")?)?;
    let errcode = Code::decode(&r.next_required("errcode")?)?;
    let parameter = r.next()?.map(|a| a.raw.to_vec());
    r.finish()?;
    Ok(ReturnError {
        invoke_id,
        errcode,
        parameter,
    })
}

fn decode_reject(t: &Tlv<'_>) -> Result<Reject, RosError> {
    let mut r = t.children()?;
    let invoke_id = InvokeId::decode(&r.next_required("invokeId")?)?;
    let p = r.next_required("problem")?;
    let problem = match context_number(p.tag).filter(|_| !p.tag.constructed) {
        Some(0) => RejectProblem::General(p.integer()?),
        Some(1) => RejectProblem::Invoke(p.integer()?),
        Some(2) => RejectProblem::ReturnResult(p.integer()?),
        Some(3) => RejectProblem::ReturnError(p.integer()?),
        _ => {
            return Err(BerError::Unexpected {
                expected: "reject problem [0]..[3]",
                found: p.tag,
            }
            .into());
        }
    };
    r.finish()?;
    Ok(Reject { invoke_id, problem })
}

#[cfg(test)]
mod tests;
