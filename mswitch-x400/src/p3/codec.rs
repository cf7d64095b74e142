//! The upper-layer PDUs of a P3 association (ACSE and ROS directly over presentation, no
//! RTSE): what goes in the session user data of each step.
//!
//! - connect: CP { contexts ACSE / `id-as-mts` / `id-as-msse` / `id-as-mdse-88|94` /
//!   `id-as-mase-88|94`, user data [ACSE] AARQ { application context, user-information
//!   EXTERNAL [mts] `bind-invoke [16]` MTSBindArgument } };
//! - accept: CPA { results, [ACSE] AARE { accepted, EXTERNAL [mts] `bind-result [17]`
//!   MTSBindResult } }; refuse: CPR { [ACSE] AARE { rejected-permanent, EXTERNAL [mts]
//!   `bind-error [18]` mts-bind-error } };
//! - operations: P-DATA { [msse|mdse|mase] ROS invoke / return-result / return-error /
//!   reject }, each PDU in the context of the abstract syntax of its operation;
//! - release: [ACSE] RLRQ / RLRE in S-RELEASE (`mts-unbind` is an empty unbind, so nothing
//!   rides in them); abort: ARU { [ACSE] ABRT }.
//!
//! # The bind realization
//!
//! X.419 (`MTSAccessProtocol`) defines `mts-bind-unbind-abstract-syntax` (`id-as-mts`) as
//! `MTSBindUnbindPDUs ::= CHOICE { bind Bind{mts-connect.&bind}, unbind Unbind{…} }`, and
//! the 88 and 94 access contexts are `ESTABLISHED BY acse`, `INFORMATION TRANSFER BY pData`
//! (the X.882 `acse` and `pData` realizations). X.880 `Bind{}` (Generic-ROS-PDUs) is `CHOICE {
//! bind-invoke [16], bind-result [17], bind-error [18] }` around open types, so the tags are
//! explicit, as the 1988 X.219 BIND macro's `[16]`/`[17]`/`[18]` were. In the ACSE
//! realization the ROS-bind is mapped onto A-ASSOCIATE: the `Bind{}` value rides in the AARQ
//! (invoke) or AARE (result, error) user-information, as an EXTERNAL whose indirect
//! reference is the presentation context of `id-as-mts` — the MTSBindArgument is never sent
//! bare. A refused bind is an AARE `rejected (permanent)` carrying `bind-error`, in a CPR.
//! Wireshark decodes it the same way (its P3 dissector is registered with ROS on `id-as-mts`).

use crate::ber::{External, Oid};
use crate::mts::MtsError;
use crate::upper::acse::{
    self, Aare, Aarq, Abrt, AcseError, AcsePdu, AssociateResult, ResultSourceDiagnostic, Rlre, Rlrq,
};
use crate::upper::presentation::{
    self, AbortPpdu, AruPpdu, ContextDefinition, ContextIdentifier, ContextResultKind, CpPpdu,
    CpaPpdu, CprPpdu, Pdv, PresentationError,
};
use crate::upper::ros::{RosBind, RosError};
use crate::upper::{self as up, oid};

use super::association::P3Config;
use super::operation::Port;
use super::types::{MtsBindArgument, MtsBindError, MtsBindResult};

/// `id-as-mdse-94` (X.419), 2.6.0.2.14.
pub const ID_AS_MDSE_94: &[u32] = &[2, 6, 0, 2, 14];
/// `id-as-mase-94` (X.419), 2.6.0.2.16.
pub const ID_AS_MASE_94: &[u32] = &[2, 6, 0, 2, 16];

/// Why an upper-layer PDU is not what P3 allows. The peer's fault unless said otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum P3UpperError {
    /// A presentation PPDU was invalid.
    #[error("presentation: {0}")]
    Presentation(#[from] PresentationError),
    /// An ACSE APDU was invalid.
    #[error("ACSE: {0}")]
    Acse(#[from] AcseError),
    /// A ROS PDU was invalid.
    #[error("ROS: {0}")]
    Ros(#[from] RosError),
    /// An X.411 value (bind argument, result, error) was invalid.
    #[error("X.411: {0}")]
    Mts(#[from] MtsError),
    /// BER below any of those.
    #[error("BER: {0}")]
    Ber(#[from] crate::ber::BerError),
    /// Valid PDUs, but not the P3 dialogue (an application context that is not P3, a missing
    /// context or element, a PDU out of place).
    #[error("{0}")]
    Protocol(String),
}

/// The P3 application context of an association (X.419 `MTSAccessProtocol`, without RTSE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum P3Context {
    /// `mts-access-88` (2.6.0.1.0): the MTS user binds to the MTA; 1988 delivery and
    /// administration abstract syntaxes.
    Access88,
    /// `mts-forced-access-88` (2.6.0.1.1): the MTA binds to the MTS user (to deliver).
    ForcedAccess88,
    /// `mts-access-94` (2.6.0.1.7).
    Access94,
    /// `mts-forced-access-94` (2.6.0.1.8).
    ForcedAccess94,
}

impl P3Context {
    /// The application context name.
    pub fn oid(self) -> Oid {
        oid(match self {
            P3Context::Access88 => up::ID_AC_MTS_ACCESS_88,
            P3Context::ForcedAccess88 => up::ID_AC_MTS_FORCED_ACCESS_88,
            P3Context::Access94 => up::ID_AC_MTS_ACCESS_94,
            P3Context::ForcedAccess94 => up::ID_AC_MTS_FORCED_ACCESS_94,
        })
    }

    /// The context an application context name names, if it is one of these four.
    pub fn from_oid(o: &Oid) -> Option<Self> {
        [
            P3Context::Access88,
            P3Context::ForcedAccess88,
            P3Context::Access94,
            P3Context::ForcedAccess94,
        ]
        .into_iter()
        .find(|c| &c.oid() == o)
    }

    /// Whether the MTA is the initiator (forced access).
    pub fn is_forced(self) -> bool {
        matches!(self, P3Context::ForcedAccess88 | P3Context::ForcedAccess94)
    }

    /// The abstract syntax of a port in this context.
    pub fn abstract_syntax(self, port: Port) -> Oid {
        let is94 = matches!(self, P3Context::Access94 | P3Context::ForcedAccess94);
        oid(match (port, is94) {
            (Port::Submission, _) => up::ID_AS_MSSE,
            (Port::Delivery, false) => up::ID_AS_MDSE_88,
            (Port::Delivery, true) => ID_AS_MDSE_94,
            (Port::Administration, false) => up::ID_AS_MASE_88,
            (Port::Administration, true) => ID_AS_MASE_94,
        })
    }

    fn syntaxes(self) -> Vec<Oid> {
        vec![
            oid(up::ACSE_ABSTRACT_SYNTAX),
            oid(up::ID_AS_MTS),
            self.abstract_syntax(Port::Submission),
            self.abstract_syntax(Port::Delivery),
            self.abstract_syntax(Port::Administration),
        ]
    }
}

/// The presentation context identifiers in use on a P3 association; a port whose context the
/// peer did not propose or accept is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P3Contexts {
    /// ACSE.
    pub acse: i64,
    /// `id-as-mts` (bind and unbind).
    pub mts: i64,
    /// `id-as-msse`.
    pub submission: Option<i64>,
    /// `id-as-mdse-88` / `-94`.
    pub delivery: Option<i64>,
    /// `id-as-mase-88` / `-94`.
    pub administration: Option<i64>,
}

impl P3Contexts {
    /// The identifiers an initiator proposes: 1, 3, 5, 7, 9.
    pub const PROPOSED: P3Contexts = P3Contexts {
        acse: 1,
        mts: 3,
        submission: Some(5),
        delivery: Some(7),
        administration: Some(9),
    };

    /// The context identifier of a port.
    pub fn of(&self, port: Port) -> Option<i64> {
        match port {
            Port::Submission => self.submission,
            Port::Delivery => self.delivery,
            Port::Administration => self.administration,
        }
    }

    /// The port whose context has this identifier.
    pub fn port(&self, id: i64) -> Option<Port> {
        [Port::Submission, Port::Delivery, Port::Administration]
            .into_iter()
            .find(|p| self.of(*p) == Some(id))
    }

    fn identifiers(&self) -> Vec<i64> {
        [
            Some(self.acse),
            Some(self.mts),
            self.submission,
            self.delivery,
            self.administration,
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

fn selector(s: &[u8]) -> Option<Vec<u8>> {
    (!s.is_empty()).then(|| s.to_vec())
}

fn definitions(context: P3Context) -> Vec<ContextDefinition> {
    let p = P3Contexts::PROPOSED;
    let ids = [p.acse, p.mts, 5, 7, 9];
    ids.into_iter()
        .zip(context.syntaxes())
        .map(|(id, abstract_syntax)| ContextDefinition {
            id,
            abstract_syntax,
            transfer_syntaxes: vec![oid(up::BER_TRANSFER_SYNTAX)],
        })
        .collect()
}

fn pdv_for(user_data: &[Pdv], context: i64) -> Result<&[u8], P3UpperError> {
    user_data
        .iter()
        .find(|p| p.context_id == context)
        .and_then(Pdv::bytes)
        .ok_or_else(|| P3UpperError::Protocol(format!("no user data in context {context}")))
}

fn bind_of(externals: &[External], contexts: &P3Contexts) -> Result<RosBind, P3UpperError> {
    let ext = externals
        .iter()
        .find(|e| e.indirect_reference.is_none_or(|r| r == contexts.mts))
        .ok_or_else(|| P3UpperError::Protocol("no MTS-bind in the ACSE user information".into()))?;
    let value = ext
        .value()
        .ok_or_else(|| P3UpperError::Protocol("MTS-bind in an unexpected encoding".into()))?;
    Ok(RosBind::decode(value)?)
}

/// The CP PPDU an initiator sends in its S-CONNECT.
pub(crate) fn connect_request(
    config: &P3Config,
    context: P3Context,
    bind: &MtsBindArgument,
) -> Result<Vec<u8>, P3UpperError> {
    let contexts = P3Contexts::PROPOSED;
    let invoke = RosBind::Invoke(bind.encode()?).encode();
    let mut aarq = Aarq::new(context.oid());
    aarq.user_information = vec![External::single(contexts.mts, invoke)];
    let cp = CpPpdu {
        calling_selector: selector(&config.local_psel),
        called_selector: selector(&config.remote_psel),
        contexts: definitions(context),
        user_data: vec![Pdv::single(contexts.acse, AcsePdu::Aarq(aarq).encode())],
        ..CpPpdu::default()
    };
    Ok(cp.encode())
}

/// What a responder learns from the initiator's S-CONNECT.
#[derive(Debug)]
pub(crate) struct ConnectRequest {
    pub(crate) context: P3Context,
    pub(crate) contexts: P3Contexts,
    pub(crate) definitions: Vec<ContextDefinition>,
    pub(crate) argument: MtsBindArgument,
}

/// Parses the CP PPDU of a P3 initiator.
pub(crate) fn parse_connect_request(user_data: &[u8]) -> Result<ConnectRequest, P3UpperError> {
    let cp = CpPpdu::decode(user_data)?;
    let find = |o: Oid| presentation::find_ber_context(&cp.contexts, &o);
    let acse = find(oid(up::ACSE_ABSTRACT_SYNTAX)).ok_or(PresentationError::MissingContext(
        oid(up::ACSE_ABSTRACT_SYNTAX),
    ))?;
    let aarq = match AcsePdu::decode(pdv_for(&cp.user_data, acse)?)? {
        AcsePdu::Aarq(a) => a,
        other => {
            return Err(P3UpperError::Protocol(format!(
                "expected AARQ, got {other:?}"
            )));
        }
    };
    let context = P3Context::from_oid(&aarq.application_context).ok_or_else(|| {
        P3UpperError::Protocol(format!(
            "application context {} is not an MTS access context",
            aarq.application_context
        ))
    })?;
    let mts =
        find(oid(up::ID_AS_MTS)).ok_or(PresentationError::MissingContext(oid(up::ID_AS_MTS)))?;
    let contexts = P3Contexts {
        acse,
        mts,
        submission: find(context.abstract_syntax(Port::Submission)),
        delivery: find(context.abstract_syntax(Port::Delivery)),
        administration: find(context.abstract_syntax(Port::Administration)),
    };
    let argument = match bind_of(&aarq.user_information, &contexts)? {
        RosBind::Invoke(arg) => MtsBindArgument::decode(&arg)?,
        _ => return Err(P3UpperError::Protocol("expected a bind invoke".into())),
    };
    Ok(ConnectRequest {
        context,
        contexts,
        definitions: cp.contexts,
        argument,
    })
}

/// The CPA PPDU a responder accepts with.
pub(crate) fn connect_accept(
    config: &P3Config,
    context: P3Context,
    contexts: &P3Contexts,
    definitions: &[ContextDefinition],
    result: &MtsBindResult,
) -> Result<Vec<u8>, P3UpperError> {
    let mut aare = Aare::new(
        context.oid(),
        AssociateResult::Accepted,
        ResultSourceDiagnostic::ServiceUser(acse::DIAG_NULL),
    );
    aare.user_information = vec![External::single(
        contexts.mts,
        RosBind::Result(result.encode()?).encode(),
    )];
    let cpa = CpaPpdu {
        responding_selector: selector(&config.local_psel),
        results: presentation::respond_to_contexts(definitions, &context.syntaxes()),
        user_data: vec![Pdv::single(contexts.acse, AcsePdu::Aare(aare).encode())],
        ..CpaPpdu::default()
    };
    Ok(cpa.encode())
}

/// The CPR PPDU a responder refuses a bind with.
pub(crate) fn connect_refuse(
    config: &P3Config,
    context: P3Context,
    contexts: &P3Contexts,
    definitions: &[ContextDefinition],
    error: MtsBindError,
) -> Result<Vec<u8>, P3UpperError> {
    let mut aare = Aare::new(
        context.oid(),
        AssociateResult::RejectedPermanent,
        ResultSourceDiagnostic::ServiceUser(acse::DIAG_NO_REASON_GIVEN),
    );
    aare.user_information = vec![External::single(
        contexts.mts,
        RosBind::Error(error.encode()?).encode(),
    )];
    let cpr = CprPpdu {
        responding_selector: selector(&config.local_psel),
        results: presentation::respond_to_contexts(definitions, &context.syntaxes()),
        user_data: vec![Pdv::single(contexts.acse, AcsePdu::Aare(aare).encode())],
        ..CprPpdu::default()
    };
    Ok(cpr.encode())
}

/// A refusal as the initiator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) error: Option<MtsBindError>,
    pub(crate) reason: String,
    pub(crate) transient: bool,
}

/// The initiator's view of the CPA: the bind result and the contexts accepted, or why the
/// bind failed.
pub(crate) fn parse_connect_accept(
    user_data: &[u8],
) -> Result<Result<(MtsBindResult, P3Contexts), Refusal>, P3UpperError> {
    let cpa = CpaPpdu::decode(user_data)?;
    let p = P3Contexts::PROPOSED;
    let aare = match AcsePdu::decode(pdv_for(&cpa.user_data, p.acse)?)? {
        AcsePdu::Aare(a) => a,
        other => {
            return Err(P3UpperError::Protocol(format!(
                "expected AARE, got {other:?}"
            )));
        }
    };
    if aare.result != AssociateResult::Accepted {
        return Ok(Err(describe_aare(&aare)));
    }
    let accepted = |i: usize, id: i64| {
        cpa.results
            .get(i)
            .is_none_or(|r| r.result == ContextResultKind::Acceptance)
            .then_some(id)
    };
    let contexts = P3Contexts {
        acse: p.acse,
        mts: p.mts,
        submission: accepted(2, 5),
        delivery: accepted(3, 7),
        administration: accepted(4, 9),
    };
    match bind_of(&aare.user_information, &p)? {
        RosBind::Result(r) => Ok(Ok((MtsBindResult::decode(&r)?, contexts))),
        RosBind::Error(e) => Ok(Err(describe_bind_error(&e, false))),
        RosBind::Invoke(_) => Err(P3UpperError::Protocol("bind invoke in an AARE".into())),
    }
}

fn describe_bind_error(bytes: &[u8], transient: bool) -> Refusal {
    match MtsBindError::decode(bytes) {
        Ok(e) => Refusal {
            error: Some(e),
            reason: format!("MTS-bind error: {e:?}"),
            transient: transient || e == MtsBindError::Busy,
        },
        Err(_) => Refusal {
            error: None,
            reason: "MTS-bind error".into(),
            transient,
        },
    }
}

fn describe_aare(aare: &Aare) -> Refusal {
    let transient = aare.result == AssociateResult::RejectedTransient;
    if let Ok(RosBind::Error(e)) = bind_of(&aare.user_information, &P3Contexts::PROPOSED) {
        return describe_bind_error(&e, transient);
    }
    Refusal {
        error: None,
        reason: format!(
            "association rejected ({:?}, {:?})",
            aare.result, aare.result_source_diagnostic
        ),
        transient,
    }
}

/// Why an S-CONNECT was refused, from the RF SPDU's reason and user data (a CPR).
pub(crate) fn parse_connect_refuse(reason: u8, user_data: &[u8]) -> Refusal {
    if let Ok(cpr) = CprPpdu::decode(user_data) {
        if let Ok(bytes) = pdv_for(&cpr.user_data, P3Contexts::PROPOSED.acse)
            && let Ok(AcsePdu::Aare(aare)) = AcsePdu::decode(bytes)
        {
            return describe_aare(&aare);
        }
        if let Some(r) = cpr.provider_reason {
            return Refusal {
                error: None,
                reason: format!("presentation connection refused, reason {r}"),
                transient: true,
            };
        }
    }
    Refusal {
        error: None,
        reason: format!("session connection refused, reason {reason:#04x}"),
        transient: true,
    }
}

/// The user data of S-RELEASE request: [ACSE] RLRQ.
pub(crate) fn release_request(contexts: &P3Contexts) -> Vec<u8> {
    let rlrq = Rlrq {
        reason: Some(acse::RELEASE_NORMAL),
        user_information: Vec::new(),
    };
    presentation::encode_user_data(&[Pdv::single(contexts.acse, AcsePdu::Rlrq(rlrq).encode())])
}

/// Checks the user data of an S-RELEASE indication is an RLRQ.
pub(crate) fn check_release_request(user_data: &[u8]) -> Result<(), P3UpperError> {
    if user_data.is_empty() {
        return Ok(());
    }
    for p in &presentation::decode_user_data(user_data)? {
        if let Some(bytes) = p.bytes()
            && let Ok(AcsePdu::Rlrq(_)) = AcsePdu::decode(bytes)
        {
            return Ok(());
        }
    }
    Err(P3UpperError::Protocol("S-RELEASE without an RLRQ".into()))
}

/// The user data of S-RELEASE response: [ACSE] RLRE.
pub(crate) fn release_response(contexts: &P3Contexts) -> Vec<u8> {
    let rlre = Rlre {
        reason: Some(acse::RELEASE_NORMAL),
        user_information: Vec::new(),
    };
    presentation::encode_user_data(&[Pdv::single(contexts.acse, AcsePdu::Rlre(rlre).encode())])
}

/// The user data of S-U-ABORT: ARU { [ACSE] ABRT (service-user) }.
pub(crate) fn abort_request(contexts: &P3Contexts) -> Vec<u8> {
    let abrt = Abrt {
        source: acse::ABORT_SOURCE_USER,
        diagnostic: None,
        user_information: Vec::new(),
    };
    AruPpdu {
        contexts: contexts
            .identifiers()
            .into_iter()
            .map(|id| ContextIdentifier {
                id,
                transfer_syntax: oid(up::BER_TRANSFER_SYNTAX),
            })
            .collect(),
        user_data: vec![Pdv::single(contexts.acse, AcsePdu::Abrt(abrt).encode())],
    }
    .encode()
}

/// A description of an abort's user data, for logs.
pub(crate) fn describe_abort(user_data: &[u8]) -> String {
    match AbortPpdu::decode(user_data) {
        Ok(AbortPpdu::Aru(aru)) => {
            for p in &aru.user_data {
                if let Some(b) = p.bytes()
                    && let Ok(AcsePdu::Abrt(a)) = AcsePdu::decode(b)
                {
                    return format!(
                        "aborted by the peer (ACSE source {}, diagnostic {:?})",
                        a.source, a.diagnostic
                    );
                }
            }
            "aborted by the peer".into()
        }
        Ok(AbortPpdu::Arp(arp)) => format!(
            "aborted by the peer's presentation provider (reason {:?})",
            arp.reason
        ),
        Err(_) => "aborted by the peer".into(),
    }
}
