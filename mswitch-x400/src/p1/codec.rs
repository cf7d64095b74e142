//! The upper-layer PDUs of a P1 association: what goes in the session user data of each
//! step, built from (and checked against) the presentation, ACSE, RTSE and ROS codecs and the
//! X.411 bind types.
//!
//! - connect: CP { contexts ACSE / id-as-mta-rtse / id-as-mtse, user data [ACSE] AARQ {
//!   id-ac-mts-transfer, user-information EXTERNAL [rtse] RTORQ { open: ROS bind-invoke
//!   MTABindArgument } } };
//! - accept: CPA { results, [ACSE] AARE { accepted, EXTERNAL [rtse] RTOAC { open: bind-result
//!   MTABindResult } } }; refuse: CPR { [ACSE] AARE { rejected-permanent, EXTERNAL [rtse]
//!   RTORJ { bind-error MTABindError } } };
//! - data: P-DATA { [rtse] RTTR segment } … whose segments joined are EXTERNAL { [mtse]
//!   single-ASN1-type MTS-APDU };
//! - release: [ACSE] RLRQ / RLRE in S-RELEASE; abort: ARU { [ACSE] ABRT }.

use crate::ber::{self, External, ExternalEncoding};
use crate::mts::{Credentials, MtaBindArgument, MtaBindError, MtaBindResult, MtsError, Password};
use crate::upper::acse::{
    self, Aare, Aarq, Abrt, AcseError, AcsePdu, AssociateResult, ResultSourceDiagnostic, Rlre, Rlrq,
};
use crate::upper::presentation::{
    self, AbortPpdu, AruPpdu, ContextIdentifier, CpPpdu, CpaPpdu, CprPpdu, Pdv, PresentationError,
};
use crate::upper::ros::{RosBind, RosError};
use crate::upper::rtse::{
    self, ConnectionData, Rtoac, Rtorj, Rtorq, RtseError, RtsePdu, rttr_segment,
};
use crate::upper::{self as up, oid};

use super::association::{AssociationConfig, BindCredentials, DialogueMode};

/// An MTA-bind error a responder refuses with.
pub type BindError = MtaBindError;

/// Why an upper-layer PDU is not what P1 allows. The peer's fault unless said otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpperError {
    /// A presentation PPDU was invalid.
    #[error("presentation: {0}")]
    Presentation(#[from] PresentationError),
    /// An ACSE APDU was invalid.
    #[error("ACSE: {0}")]
    Acse(#[from] AcseError),
    /// An RTSE APDU was invalid.
    #[error("RTSE: {0}")]
    Rtse(#[from] RtseError),
    /// A ROS PDU was invalid.
    #[error("ROS: {0}")]
    Ros(#[from] RosError),
    /// An X.411 value (bind, MTS-APDU wrapper) was invalid.
    #[error("X.411: {0}")]
    Mts(#[from] MtsError),
    /// BER below any of those.
    #[error("BER: {0}")]
    Ber(#[from] ber::BerError),
    /// Valid PDUs, but not the P1 dialogue (wrong application context, missing element, a PDU
    /// out of place).
    #[error("{0}")]
    Protocol(String),
}

/// The presentation context identifiers in use on an association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contexts {
    /// ACSE.
    pub acse: i64,
    /// `id-as-mta-rtse`.
    pub rtse: i64,
    /// `id-as-mtse`.
    pub mtse: i64,
}

impl Contexts {
    /// The identifiers an initiator proposes (1, 3, 5, as common practice).
    pub const P1_PROPOSED: Contexts = Contexts {
        acse: up::P1_ACSE_CONTEXT,
        rtse: up::P1_RTSE_CONTEXT,
        mtse: up::P1_MTSE_CONTEXT,
    };
}

fn bind_argument(c: &BindCredentials) -> MtaBindArgument {
    match &c.mta_name {
        None => MtaBindArgument::Null,
        Some(name) => MtaBindArgument::Authenticated {
            initiator_name: name.clone(),
            initiator_credentials: Credentials::Simple(password(c)),
            security_context: None,
        },
    }
}

fn password(c: &BindCredentials) -> Password {
    let pw = c.password.clone().unwrap_or_default();
    match String::from_utf8(pw) {
        Ok(s) if s.is_ascii() => Password::Ia5String(s),
        Ok(s) => Password::OctetString(s.into_bytes()),
        Err(e) => Password::OctetString(e.into_bytes()),
    }
}

fn credentials_of(name: String, c: &Credentials) -> BindCredentials {
    BindCredentials {
        mta_name: Some(name),
        password: match c {
            Credentials::Simple(p) => Some(p.bytes().to_vec()),
            Credentials::Strong(_) => None,
        },
    }
}

fn rtse_external(contexts: &Contexts, pdu: &RtsePdu) -> External {
    External::single(contexts.rtse, pdu.encode())
}

fn selector(s: &[u8]) -> Option<Vec<u8>> {
    (!s.is_empty()).then(|| s.to_vec())
}

/// The CP PPDU an initiator sends in its S-CONNECT.
pub(crate) fn connect_request(
    config: &AssociationConfig,
    credentials: &BindCredentials,
) -> Result<Vec<u8>, UpperError> {
    let contexts = Contexts::P1_PROPOSED;
    let bind = RosBind::Invoke(bind_argument(credentials).encode()?).encode();
    let mut rtorq = Rtorq::open(bind);
    rtorq.dialogue_mode = match config.dialogue_mode {
        DialogueMode::Monologue => rtse::DialogueMode::Monologue,
        DialogueMode::TwoWayAlternate => rtse::DialogueMode::TwoWayAlternate,
    };
    let mut aarq = Aarq::new(oid(up::ID_AC_MTS_TRANSFER));
    aarq.user_information = vec![rtse_external(&contexts, &RtsePdu::Rtorq(rtorq))];
    let cp = CpPpdu {
        calling_selector: selector(&config.local_psel),
        called_selector: selector(&config.remote_psel),
        contexts: presentation::p1_context_definitions(),
        user_data: vec![Pdv::single(contexts.acse, AcsePdu::Aarq(aarq).encode())],
        ..CpPpdu::default()
    };
    Ok(cp.encode())
}

/// What a responder learns from the initiator's S-CONNECT.
#[derive(Debug)]
pub(crate) struct ConnectRequest {
    pub(crate) contexts: Contexts,
    pub(crate) definitions: Vec<presentation::ContextDefinition>,
    pub(crate) credentials: BindCredentials,
    pub(crate) dialogue_mode: DialogueMode,
}

fn pdv_for(user_data: &[Pdv], context: i64) -> Result<&[u8], UpperError> {
    user_data
        .iter()
        .find(|p| p.context_id == context)
        .and_then(Pdv::bytes)
        .ok_or_else(|| UpperError::Protocol(format!("no user data in context {context}")))
}

fn rtse_of(externals: &[External], contexts: &Contexts) -> Result<RtsePdu, UpperError> {
    let ext = externals
        .iter()
        .find(|e| e.indirect_reference.is_none_or(|r| r == contexts.rtse))
        .ok_or_else(|| UpperError::Protocol("no RTSE APDU in the ACSE user information".into()))?;
    let value = ext
        .value()
        .ok_or_else(|| UpperError::Protocol("RTSE APDU in an unexpected encoding".into()))?;
    Ok(rtse::decode_rtse(value)?)
}

/// Parses the CP PPDU of a P1 initiator.
pub(crate) fn parse_connect_request(user_data: &[u8]) -> Result<ConnectRequest, UpperError> {
    let cp = CpPpdu::decode(user_data)?;
    let p1 = presentation::check_p1_offer(&cp)?;
    let contexts = Contexts {
        acse: p1.acse,
        rtse: p1.rtse,
        mtse: p1.mtse,
    };
    let aarq = match AcsePdu::decode(pdv_for(&cp.user_data, contexts.acse)?)? {
        AcsePdu::Aarq(a) => a,
        other => {
            return Err(UpperError::Protocol(format!(
                "expected AARQ, got {other:?}"
            )));
        }
    };
    if aarq.application_context != oid(up::ID_AC_MTS_TRANSFER) {
        return Err(UpperError::Protocol(format!(
            "application context {} is not id-ac-mts-transfer",
            aarq.application_context
        )));
    }
    let RtsePdu::Rtorq(rtorq) = rtse_of(&aarq.user_information, &contexts)? else {
        return Err(UpperError::Protocol("expected RTORQ".into()));
    };
    let ConnectionData::Open(open) = &rtorq.connection_data else {
        return Err(UpperError::Protocol(
            "RTSE recovery is not supported (checkpointing is negotiated off)".into(),
        ));
    };
    let credentials = match RosBind::decode(open)? {
        RosBind::Invoke(arg) => match MtaBindArgument::decode(&arg)? {
            MtaBindArgument::Null => BindCredentials::default(),
            MtaBindArgument::Authenticated {
                initiator_name,
                initiator_credentials,
                ..
            } => credentials_of(initiator_name, &initiator_credentials),
        },
        _ => return Err(UpperError::Protocol("expected a bind invoke".into())),
    };
    Ok(ConnectRequest {
        contexts,
        definitions: cp.contexts.clone(),
        credentials,
        dialogue_mode: match rtorq.dialogue_mode {
            rtse::DialogueMode::Monologue => DialogueMode::Monologue,
            rtse::DialogueMode::TwoWayAlternate => DialogueMode::TwoWayAlternate,
        },
    })
}

fn supported_syntaxes() -> Vec<crate::ber::Oid> {
    vec![
        oid(up::ACSE_ABSTRACT_SYNTAX),
        oid(up::ID_AS_MTA_RTSE),
        oid(up::ID_AS_MTSE),
    ]
}

/// The CPA PPDU a responder accepts with. Checkpointing is answered 0 (none) and the window
/// with the default.
pub(crate) fn connect_accept(
    config: &AssociationConfig,
    contexts: &Contexts,
    definitions: &[presentation::ContextDefinition],
    credentials: &BindCredentials,
) -> Result<Vec<u8>, UpperError> {
    let result = match &credentials.mta_name {
        None => MtaBindResult::Null,
        Some(name) => MtaBindResult::Authenticated {
            responder_name: name.clone(),
            responder_credentials: Credentials::Simple(password(credentials)),
        },
    };
    let open = RosBind::Result(result.encode()?).encode();
    let mut aare = Aare::new(
        oid(up::ID_AC_MTS_TRANSFER),
        AssociateResult::Accepted,
        ResultSourceDiagnostic::ServiceUser(acse::DIAG_NULL),
    );
    aare.user_information = vec![rtse_external(contexts, &RtsePdu::Rtoac(Rtoac::open(open)))];
    let cpa = CpaPpdu {
        responding_selector: selector(&config.local_psel),
        results: presentation::respond_to_contexts(definitions, &supported_syntaxes()),
        user_data: vec![Pdv::single(contexts.acse, AcsePdu::Aare(aare).encode())],
        ..CpaPpdu::default()
    };
    Ok(cpa.encode())
}

/// The CPR PPDU a responder refuses a bind with.
pub(crate) fn connect_refuse(
    config: &AssociationConfig,
    contexts: &Contexts,
    definitions: &[presentation::ContextDefinition],
    error: BindError,
) -> Result<Vec<u8>, UpperError> {
    let rj = Rtorj {
        refuse_reason: None,
        user_data: Some(RosBind::Error(error.encode()?).encode()),
    };
    let mut aare = Aare::new(
        oid(up::ID_AC_MTS_TRANSFER),
        AssociateResult::RejectedPermanent,
        ResultSourceDiagnostic::ServiceUser(acse::DIAG_NO_REASON_GIVEN),
    );
    aare.user_information = vec![rtse_external(contexts, &RtsePdu::Rtorj(rj))];
    let cpr = CprPpdu {
        responding_selector: selector(&config.local_psel),
        results: presentation::respond_to_contexts(definitions, &supported_syntaxes()),
        user_data: vec![Pdv::single(contexts.acse, AcsePdu::Aare(aare).encode())],
        ..CprPpdu::default()
    };
    Ok(cpr.encode())
}

/// The initiator's view of the CPA: the responder's credentials, or why the bind failed and
/// whether that may be transient.
pub(crate) fn parse_connect_accept(
    user_data: &[u8],
) -> Result<Result<BindCredentials, (String, bool)>, UpperError> {
    let cpa = CpaPpdu::decode(user_data)?;
    let contexts = Contexts::P1_PROPOSED;
    let aare = match AcsePdu::decode(pdv_for(&cpa.user_data, contexts.acse)?)? {
        AcsePdu::Aare(a) => a,
        other => {
            return Err(UpperError::Protocol(format!(
                "expected AARE, got {other:?}"
            )));
        }
    };
    if aare.result != AssociateResult::Accepted {
        return Ok(Err(describe_aare(&aare, &contexts)));
    }
    let RtsePdu::Rtoac(rtoac) = rtse_of(&aare.user_information, &contexts)? else {
        return Err(UpperError::Protocol("expected RTOAC".into()));
    };
    let ConnectionData::Open(open) = &rtoac.connection_data else {
        return Err(UpperError::Protocol("RTOAC without the bind result".into()));
    };
    match RosBind::decode(open)? {
        RosBind::Result(r) => Ok(Ok(match MtaBindResult::decode(&r)? {
            MtaBindResult::Null => BindCredentials::default(),
            MtaBindResult::Authenticated {
                responder_name,
                responder_credentials,
            } => credentials_of(responder_name, &responder_credentials),
        })),
        RosBind::Error(e) => Ok(Err(describe_bind_error(&e))),
        RosBind::Invoke(_) => Err(UpperError::Protocol("bind invoke in an RTOAC".into())),
    }
}

fn describe_bind_error(bytes: &[u8]) -> (String, bool) {
    match MtaBindError::decode(bytes) {
        Ok(MtaBindError::Busy) => ("MTA-bind error: busy".into(), true),
        Ok(e) => (format!("MTA-bind error: {e:?}"), false),
        Err(_) => ("MTA-bind error".into(), false),
    }
}

fn describe_aare(aare: &Aare, contexts: &Contexts) -> (String, bool) {
    let transient = aare.result == AssociateResult::RejectedTransient;
    if let Ok(RtsePdu::Rtorj(rj)) = rtse_of(&aare.user_information, contexts) {
        if let Some(ud) = &rj.user_data
            && let Ok(RosBind::Error(e)) = RosBind::decode(ud)
        {
            let (text, busy) = describe_bind_error(&e);
            return (text, transient || busy);
        }
        if let Some(r) = rj.refuse_reason {
            return (format!("RTSE refused, reason {r}"), transient || r == 0);
        }
    }
    (
        format!(
            "association rejected ({:?}, {:?})",
            aare.result, aare.result_source_diagnostic
        ),
        transient,
    )
}

/// Why an S-CONNECT was refused, from the RF SPDU's reason and user data (a CPR).
pub(crate) fn parse_connect_refuse(reason: u8, user_data: &[u8]) -> (String, bool) {
    if let Ok(cpr) = CprPpdu::decode(user_data) {
        let contexts = Contexts::P1_PROPOSED;
        if let Ok(bytes) = pdv_for(&cpr.user_data, contexts.acse)
            && let Ok(AcsePdu::Aare(aare)) = AcsePdu::decode(bytes)
        {
            return describe_aare(&aare, &contexts);
        }
        if let Some(r) = cpr.provider_reason {
            return (format!("presentation connection refused, reason {r}"), true);
        }
    }
    (
        format!("session connection refused, reason {reason:#04x}"),
        true,
    )
}

/// Appends the RTSE transfer segments in one P-DATA to `buf`, refusing to grow it past
/// `limit`.
pub(crate) fn append_segments(
    user_data: &[u8],
    contexts: &Contexts,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<(), UpperError> {
    let pdvs = presentation::decode_user_data(user_data)?;
    for pdv in &pdvs {
        if pdv.context_id != contexts.rtse {
            return Err(UpperError::Protocol(format!(
                "data in presentation context {} during a transfer",
                pdv.context_id
            )));
        }
        let bytes = pdv
            .bytes()
            .ok_or_else(|| UpperError::Protocol("RTSE data in an unexpected encoding".into()))?;
        match rtse::decode_rtse(bytes)? {
            RtsePdu::Rttr(_) => {
                let seg = rttr_segment(bytes)?;
                if buf.len().saturating_add(seg.len()) > limit {
                    return Err(UpperError::Protocol(format!(
                        "MTS-APDU larger than {limit} bytes"
                    )));
                }
                buf.extend_from_slice(&seg);
            }
            RtsePdu::Rtab(ab) => {
                return Err(UpperError::Protocol(format!(
                    "the peer aborted the transfer (RTAB {:?})",
                    ab.abort_reason
                )));
            }
            RtsePdu::Rttp(_) => {}
            other => {
                return Err(UpperError::Protocol(format!(
                    "unexpected RTSE APDU during a transfer: {other:?}"
                )));
            }
        }
    }
    Ok(())
}

/// The MTS-APDU inside the joined segments: `EXTERNAL { [mtse] single-ASN1-type MTS-APDU }`.
pub(crate) fn unwrap_transfer(joined: &[u8], contexts: &Contexts) -> Result<Vec<u8>, UpperError> {
    let tlv = ber::parse_one(joined)?.expect(ber::Tag::EXTERNAL, "EXTERNAL")?;
    let ext = External::decode(&tlv)?;
    if let Some(r) = ext.indirect_reference
        && r != contexts.mtse
    {
        return Err(UpperError::Protocol(format!(
            "transfer in presentation context {r}, not id-as-mtse"
        )));
    }
    match ext.encoding {
        ExternalEncoding::SingleAsn1Type(v) | ExternalEncoding::OctetAligned(v) => Ok(v),
        ExternalEncoding::Arbitrary(..) => {
            Err(UpperError::Protocol("MTS-APDU as a BIT STRING".into()))
        }
    }
}

/// The P-DATA user data for each segment of one transfer.
pub(crate) fn transfer_segments(
    apdu: &[u8],
    contexts: &Contexts,
    segment_size: usize,
) -> Vec<Vec<u8>> {
    let mut w = ber::Writer::with_capacity(apdu.len() + 16);
    External::single(contexts.mtse, apdu.to_vec()).encode(&mut w);
    let joined = w.finish();
    joined
        .chunks(segment_size.max(1))
        .map(|chunk| {
            presentation::encode_user_data(&[Pdv::single(contexts.rtse, rtse::encode_rttr(chunk))])
        })
        .collect()
}

/// A session activity identifier for the n-th transfer (an INTEGER, as seen in practice).
pub(crate) fn activity_id(n: u64) -> Vec<u8> {
    let mut w = ber::Writer::new();
    w.integer(i64::try_from(n % (1 << 31)).unwrap_or(0));
    w.finish()
}

/// The user data of S-RELEASE request: [ACSE] RLRQ.
pub(crate) fn release_request(contexts: &Contexts) -> Vec<u8> {
    let rlrq = Rlrq {
        reason: Some(acse::RELEASE_NORMAL),
        user_information: Vec::new(),
    };
    presentation::encode_user_data(&[Pdv::single(contexts.acse, AcsePdu::Rlrq(rlrq).encode())])
}

/// Checks the user data of an S-RELEASE indication is an RLRQ.
pub(crate) fn check_release_request(user_data: &[u8]) -> Result<(), UpperError> {
    if user_data.is_empty() {
        return Ok(());
    }
    let pdvs = presentation::decode_user_data(user_data)?;
    for p in &pdvs {
        if let Some(bytes) = p.bytes()
            && let Ok(AcsePdu::Rlrq(_)) = AcsePdu::decode(bytes)
        {
            return Ok(());
        }
    }
    Err(UpperError::Protocol("S-RELEASE without an RLRQ".into()))
}

/// The user data of S-RELEASE response: [ACSE] RLRE.
pub(crate) fn release_response(contexts: &Contexts) -> Vec<u8> {
    let rlre = Rlre {
        reason: Some(acse::RELEASE_NORMAL),
        user_information: Vec::new(),
    };
    presentation::encode_user_data(&[Pdv::single(contexts.acse, AcsePdu::Rlre(rlre).encode())])
}

/// The user data of S-U-ABORT: ARU { [ACSE] ABRT (service-user) }.
pub(crate) fn abort_request(contexts: &Contexts) -> Vec<u8> {
    let abrt = Abrt {
        source: acse::ABORT_SOURCE_USER,
        diagnostic: None,
        user_information: Vec::new(),
    };
    AruPpdu {
        contexts: vec![
            ContextIdentifier {
                id: contexts.acse,
                transfer_syntax: oid(up::BER_TRANSFER_SYNTAX),
            },
            ContextIdentifier {
                id: contexts.rtse,
                transfer_syntax: oid(up::BER_TRANSFER_SYNTAX),
            },
            ContextIdentifier {
                id: contexts.mtse,
                transfer_syntax: oid(up::BER_TRANSFER_SYNTAX),
            },
        ],
        user_data: vec![Pdv::single(contexts.acse, AcsePdu::Abrt(abrt).encode())],
    }
    .encode()
}

/// A description of an abort's user data, for logs.
pub(crate) fn describe_abort(user_data: &[u8]) -> String {
    if user_data.is_empty() {
        return "aborted by the peer".into();
    }
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

/// The user data of S-TOKEN-PLEASE for RT-TURN-PLEASE: P-DATA-style user data with the RTTP
/// APDU (its priority) in the RTSE context.
pub(crate) fn turn_please(contexts: &Contexts, priority: i64) -> Vec<u8> {
    presentation::encode_user_data(&[Pdv::single(contexts.rtse, RtsePdu::Rttp(priority).encode())])
}
