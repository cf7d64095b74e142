//! X.226 presentation protocol, kernel functional unit, normal mode: the connect PPDUs (CP, CPA,
//! CPR), the abort PPDUs (ARU, ARP) and the fully-encoded user data that every session data
//! SPDU carries (TD, the P-DATA PPDU).
//!
//! X.410-1984 mode is refused with [`PresentationError::X410Mode`]. Simply-encoded user data
//! (`[APPLICATION 0]`, allowed only when no presentation context definition list was exchanged,
//! X.226 §8.4.1) is refused with [`PresentationError::SimplyEncodedData`]: P1 and P3 always
//! define contexts, so a peer that sends it cannot be spoken to anyway.
//!
//! Presentation user data is a `Vec<Pdv>` everywhere; an empty vector means the user-data
//! component is absent (fully-encoded data holds at least one PDV-list).

use crate::ber::{BerError, Oid, Tag, Tlv, Writer, parse_one};

use super::{
    ACSE_ABSTRACT_SYNTAX, BER_TRANSFER_SYNTAX, BitString, ID_AS_MTA_RTSE, ID_AS_MTSE, MAX_CONTEXTS,
    MAX_PDVS, MAX_SELECTOR_LEN, P1_ACSE_CONTEXT, P1_MTSE_CONTEXT, P1_RTSE_CONTEXT, context_number,
    oid,
};

/// Why a PPDU could not be decoded, or why a connection offer does not do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresentationError {
    /// The bytes are not valid BER, or not the PPDU's structure (the peer's fault).
    #[error("presentation PPDU: {0}")]
    Ber(#[from] BerError),
    /// The peer uses X.410-1984 mode, which is not implemented (peer incompatible).
    #[error("X.410-1984 mode presentation is not supported")]
    X410Mode,
    /// The peer sent simply-encoded user data (peer incompatible: P1 and P3 need contexts).
    #[error("simply-encoded presentation user data is not supported")]
    SimplyEncodedData,
    /// A list holds more entries than we accept (the peer's fault, against a local limit).
    #[error("too many {0}")]
    TooMany(&'static str),
    /// A presentation selector is longer than [`MAX_SELECTOR_LEN`] (the peer's fault).
    #[error("presentation selector too long")]
    SelectorTooLong,
    /// A context result value other than acceptance, user- or provider-rejection (peer's fault).
    #[error("invalid presentation context result {0}")]
    InvalidResult(i64),
    /// The connection offer lacks an abstract syntax with the BER transfer syntax that the
    /// application needs (peer incompatible).
    #[error("no presentation context offers {0} with BER")]
    MissingContext(Oid),
}

/// One entry of a presentation context definition list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextDefinition {
    /// Presentation context identifier (odd when the initiator proposes it).
    pub id: i64,
    /// The abstract syntax name.
    pub abstract_syntax: Oid,
    /// Transfer syntaxes offered, in order of preference.
    pub transfer_syntaxes: Vec<Oid>,
}

/// The default context name of a CP PPDU (kept, not used by P1 or P3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultContext {
    /// The abstract syntax name.
    pub abstract_syntax: Oid,
    /// The transfer syntax name.
    pub transfer_syntax: Oid,
}

/// The result for one proposed context (X.226 `Result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextResultKind {
    /// `acceptance (0)`.
    Acceptance,
    /// `user-rejection (1)`.
    UserRejection,
    /// `provider-rejection (2)`.
    ProviderRejection,
}

impl ContextResultKind {
    /// The INTEGER value.
    pub fn value(self) -> i64 {
        match self {
            ContextResultKind::Acceptance => 0,
            ContextResultKind::UserRejection => 1,
            ContextResultKind::ProviderRejection => 2,
        }
    }

    /// From the INTEGER value.
    pub fn from_value(v: i64) -> Result<Self, PresentationError> {
        match v {
            0 => Ok(ContextResultKind::Acceptance),
            1 => Ok(ContextResultKind::UserRejection),
            2 => Ok(ContextResultKind::ProviderRejection),
            _ => Err(PresentationError::InvalidResult(v)),
        }
    }
}

/// Provider reason in a context result: the abstract syntax is not supported.
pub const REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED: i64 = 1;
/// Provider reason in a context result: none of the proposed transfer syntaxes is supported.
pub const REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED: i64 = 2;

/// One entry of a presentation context definition result list, in the order of the proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextResult {
    /// Accepted or rejected.
    pub result: ContextResultKind,
    /// The transfer syntax chosen (present on acceptance).
    pub transfer_syntax: Option<Oid>,
    /// Why the provider rejected it (`reason-not-specified (0)`,
    /// [`REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED`], [`REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED`],
    /// `local-limit-on-DCS-exceeded (3)`).
    pub provider_reason: Option<i64>,
}

impl ContextResult {
    /// Acceptance with the BER transfer syntax.
    pub fn accepted_ber() -> Self {
        ContextResult {
            result: ContextResultKind::Acceptance,
            transfer_syntax: Some(oid(BER_TRANSFER_SYNTAX)),
            provider_reason: None,
        }
    }
}

/// One entry of a presentation context identifier list (ARU PPDU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextIdentifier {
    /// Presentation context identifier.
    pub id: i64,
    /// Its transfer syntax.
    pub transfer_syntax: Oid,
}

/// The presentation data values of one PDV-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PdvValue {
    /// `single-ASN1-type [0]`: the complete BER element of the value.
    SingleAsn1Type(Vec<u8>),
    /// `octet-aligned [1] IMPLICIT OCTET STRING`: one or more encoded values, concatenated.
    OctetAligned(Vec<u8>),
    /// `arbitrary [2] IMPLICIT BIT STRING`: the bit octets and the number of unused bits.
    Arbitrary(Vec<u8>, u8),
}

/// A PDV-list: presentation data values of one context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdv {
    /// Presentation context identifier.
    pub context_id: i64,
    /// Transfer syntax name (only sent when the context has more than one; normally absent).
    pub transfer_syntax: Option<Oid>,
    /// The values.
    pub value: PdvValue,
}

impl Pdv {
    /// One ASN.1 value (its complete BER element) in context `context_id`.
    pub fn single(context_id: i64, value: Vec<u8>) -> Self {
        Pdv {
            context_id,
            transfer_syntax: None,
            value: PdvValue::SingleAsn1Type(value),
        }
    }

    /// The value's bytes for `single-ASN1-type` and `octet-aligned`.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.value {
            PdvValue::SingleAsn1Type(v) | PdvValue::OctetAligned(v) => Some(v),
            PdvValue::Arbitrary(..) => None,
        }
    }

    fn decode(tlv: &Tlv<'_>) -> Result<Self, PresentationError> {
        let tlv = tlv.expect(Tag::SEQUENCE, "PDV-list")?;
        let mut r = tlv.children()?;
        let transfer_syntax = match r.next_if(Tag::OID)? {
            Some(t) => Some(t.oid()?),
            None => None,
        };
        let context_id = r
            .next_required("presentation-context-identifier")?
            .expect(Tag::INTEGER, "presentation-context-identifier")?
            .integer()?;
        let v = r.next_required("presentation-data-values")?;
        let value = match context_number(v.tag) {
            Some(0) => PdvValue::SingleAsn1Type(v.explicit_inner()?.raw.to_vec()),
            Some(1) => PdvValue::OctetAligned(v.octets()?.into_owned()),
            Some(2) => {
                let (bits, unused) = v.bit_string()?;
                PdvValue::Arbitrary(bits, unused)
            }
            _ => {
                return Err(BerError::Unexpected {
                    expected: "presentation-data-values [0], [1] or [2]",
                    found: v.tag,
                }
                .into());
            }
        };
        r.finish()?;
        Ok(Pdv {
            context_id,
            transfer_syntax,
            value,
        })
    }

    fn encode(&self, w: &mut Writer) {
        w.sequence(|w| {
            if let Some(ts) = &self.transfer_syntax {
                w.oid(ts);
            }
            w.integer(self.context_id);
            match &self.value {
                PdvValue::SingleAsn1Type(v) => w.explicit(Tag::context(0), |w| w.raw(v)),
                PdvValue::OctetAligned(v) => w.octets(Tag::context(1), v),
                PdvValue::Arbitrary(v, unused) => w.bit_string(Tag::context(2), v, *unused),
            }
        });
    }
}

const FULLY_ENCODED: Tag = Tag::application(1).constructed();
const SIMPLY_ENCODED: Tag = Tag::application(0);

/// Decodes presentation user data (the whole input is one `User-data` element): what a
/// session data SPDU (P-DATA / TD PPDU) carries.
pub fn decode_user_data(bytes: &[u8]) -> Result<Vec<Pdv>, PresentationError> {
    decode_user_data_tlv(&parse_one(bytes)?)
}

/// Encodes fully-encoded presentation user data (`[APPLICATION 1]`). An empty slice gives an
/// empty output (no user data).
pub fn encode_user_data(pdvs: &[Pdv]) -> Vec<u8> {
    let mut w = Writer::with_capacity(pdvs.iter().map(pdv_len_hint).sum::<usize>() + 16);
    write_user_data(&mut w, pdvs);
    w.finish()
}

fn pdv_len_hint(p: &Pdv) -> usize {
    p.bytes().map_or(0, <[u8]>::len) + 16
}

fn write_user_data(w: &mut Writer, pdvs: &[Pdv]) {
    if pdvs.is_empty() {
        return;
    }
    w.constructed(FULLY_ENCODED, |w| {
        for p in pdvs {
            p.encode(w);
        }
    });
}

fn is_user_data(tag: Tag) -> bool {
    tag.same(FULLY_ENCODED) || tag.same(SIMPLY_ENCODED)
}

fn decode_user_data_tlv(tlv: &Tlv<'_>) -> Result<Vec<Pdv>, PresentationError> {
    if tlv.tag.same(SIMPLY_ENCODED) {
        return Err(PresentationError::SimplyEncodedData);
    }
    let tlv = tlv.expect(FULLY_ENCODED, "fully-encoded-data [APPLICATION 1]")?;
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(t) = r.next()? {
        if out.len() == MAX_PDVS {
            return Err(PresentationError::TooMany("PDV-lists"));
        }
        out.push(Pdv::decode(&t)?);
    }
    if out.is_empty() {
        return Err(BerError::Missing("PDV-list").into());
    }
    Ok(out)
}

fn set_once<T>(slot: &mut Option<T>, v: T, what: &'static str) -> Result<(), BerError> {
    if slot.is_some() {
        return Err(BerError::Duplicate(what));
    }
    *slot = Some(v);
    Ok(())
}

fn selector(t: &Tlv<'_>) -> Result<Vec<u8>, PresentationError> {
    let v = t.octets()?;
    if v.len() > MAX_SELECTOR_LEN {
        return Err(PresentationError::SelectorTooLong);
    }
    Ok(v.into_owned())
}

fn bounded_list<T>(
    t: &Tlv<'_>,
    what: &'static str,
    mut f: impl FnMut(&Tlv<'_>) -> Result<T, PresentationError>,
) -> Result<Vec<T>, PresentationError> {
    let mut r = t.children()?;
    let mut out = Vec::new();
    while let Some(item) = r.next()? {
        if out.len() == MAX_CONTEXTS {
            return Err(PresentationError::TooMany(what));
        }
        out.push(f(&item)?);
    }
    Ok(out)
}

fn decode_context_list(t: &Tlv<'_>) -> Result<Vec<ContextDefinition>, PresentationError> {
    bounded_list(t, "presentation contexts", |item| {
        let mut r = item
            .expect(Tag::SEQUENCE, "Context-list item")?
            .children()?;
        let id = r
            .next_required("presentation-context-identifier")?
            .expect(Tag::INTEGER, "presentation-context-identifier")?
            .integer()?;
        let abstract_syntax = r
            .next_required("abstract-syntax-name")?
            .expect(Tag::OID, "abstract-syntax-name")?
            .oid()?;
        let list = r
            .next_required("transfer-syntax-name-list")?
            .expect(Tag::SEQUENCE, "transfer-syntax-name-list")?;
        let transfer_syntaxes = bounded_list(&list, "transfer syntaxes", |ts| {
            Ok(ts.expect(Tag::OID, "transfer-syntax-name")?.oid()?)
        })?;
        r.finish()?;
        Ok(ContextDefinition {
            id,
            abstract_syntax,
            transfer_syntaxes,
        })
    })
}

fn encode_context_list(w: &mut Writer, tag: Tag, contexts: &[ContextDefinition]) {
    w.constructed(tag, |w| {
        for c in contexts {
            w.sequence(|w| {
                w.integer(c.id);
                w.oid(&c.abstract_syntax);
                w.sequence(|w| {
                    for ts in &c.transfer_syntaxes {
                        w.oid(ts);
                    }
                });
            });
        }
    });
}

fn decode_result_list(t: &Tlv<'_>) -> Result<Vec<ContextResult>, PresentationError> {
    bounded_list(t, "presentation context results", |item| {
        let mut r = item.expect(Tag::SEQUENCE, "Result-list item")?.children()?;
        let mut result = None;
        let mut transfer_syntax = None;
        let mut provider_reason = None;
        while let Some(f) = r.next()? {
            match context_number(f.tag) {
                Some(0) => set_once(
                    &mut result,
                    ContextResultKind::from_value(f.integer()?)?,
                    "result",
                )?,
                Some(1) => set_once(&mut transfer_syntax, f.oid()?, "transfer-syntax-name")?,
                Some(2) => set_once(&mut provider_reason, f.integer()?, "provider-reason")?,
                _ => {}
            }
        }
        Ok(ContextResult {
            result: result.ok_or(BerError::Missing("result"))?,
            transfer_syntax,
            provider_reason,
        })
    })
}

fn encode_result_list(w: &mut Writer, tag: Tag, results: &[ContextResult]) {
    w.constructed(tag, |w| {
        for c in results {
            w.sequence(|w| {
                w.integer_tagged(Tag::context(0), c.result.value());
                if let Some(ts) = &c.transfer_syntax {
                    w.oid_tagged(Tag::context(1), ts);
                }
                if let Some(r) = c.provider_reason {
                    w.integer_tagged(Tag::context(2), r);
                }
            });
        }
    });
}

/// Checks the mode-selector `[0] IMPLICIT SET { mode-value [0] IMPLICIT INTEGER }`.
fn check_mode(t: &Tlv<'_>) -> Result<(), PresentationError> {
    let mut r = t.children()?;
    let mut mode = None;
    while let Some(f) = r.next()? {
        if context_number(f.tag) == Some(0) {
            set_once(&mut mode, f.integer()?, "mode-value")?;
        }
    }
    match mode {
        Some(1) => Ok(()),
        Some(0) => Err(PresentationError::X410Mode),
        Some(_) => Err(BerError::Invalid("mode-value").into()),
        None => Err(BerError::Missing("mode-value").into()),
    }
}

fn encode_mode(w: &mut Writer) {
    w.constructed(Tag::context(0), |w| w.integer_tagged(Tag::context(0), 1));
}

/// Splits the outer SET of a CP-type or CPA-PPDU into its normal-mode parameters.
fn normal_mode_parameters<'a>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<Tlv<'a>, PresentationError> {
    let top = parse_one(bytes)?.expect(Tag::SET, what)?;
    let mut r = top.children()?;
    let mut mode = None;
    let mut normal = None;
    while let Some(t) = r.next()? {
        match context_number(t.tag) {
            Some(0) => set_once(&mut mode, t, "mode-selector")?,
            Some(1) => return Err(PresentationError::X410Mode),
            Some(2) => set_once(&mut normal, t, "normal-mode-parameters")?,
            _ => {}
        }
    }
    check_mode(&mode.ok_or(BerError::Missing("mode-selector"))?)?;
    Ok(normal.ok_or(BerError::Missing("normal-mode-parameters"))?)
}

/// The CP PPDU (`CP-type`, normal mode): the user data of the session CONNECT SPDU.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpPpdu {
    /// `protocol-version`; `None` when absent (DEFAULT `{version-1}`).
    pub protocol_version: Option<BitString>,
    /// Calling presentation selector.
    pub calling_selector: Option<Vec<u8>>,
    /// Called presentation selector.
    pub called_selector: Option<Vec<u8>>,
    /// Presentation context definition list (empty: absent).
    pub contexts: Vec<ContextDefinition>,
    /// Default context name (kept, unused).
    pub default_context: Option<DefaultContext>,
    /// Presentation requirements; only the kernel is implemented, so this is normally absent.
    pub presentation_requirements: Option<BitString>,
    /// User session requirements, when they differ from the session's.
    pub user_session_requirements: Option<BitString>,
    /// User data (empty: absent), normally one PDV with the AARQ in the ACSE context.
    pub user_data: Vec<Pdv>,
}

impl CpPpdu {
    /// Decodes a CP PPDU. Protocol options, nominated context and extensions are skipped.
    pub fn decode(bytes: &[u8]) -> Result<Self, PresentationError> {
        let normal = normal_mode_parameters(bytes, "CP-type SET")?;
        let mut cp = CpPpdu::default();
        let mut r = normal.children()?;
        while let Some(t) = r.next()? {
            if is_user_data(t.tag) {
                cp.user_data = decode_user_data_tlv(&t)?;
                continue;
            }
            match context_number(t.tag) {
                Some(0) => cp.protocol_version = Some(BitString::decode(&t)?),
                Some(1) => cp.calling_selector = Some(selector(&t)?),
                Some(2) => cp.called_selector = Some(selector(&t)?),
                Some(4) => cp.contexts = decode_context_list(&t)?,
                Some(6) => {
                    let mut d = t.children()?;
                    let a = d.next_required("abstract-syntax-name")?.oid()?;
                    let ts = d.next_required("transfer-syntax-name")?.oid()?;
                    cp.default_context = Some(DefaultContext {
                        abstract_syntax: a,
                        transfer_syntax: ts,
                    });
                }
                Some(8) => cp.presentation_requirements = Some(BitString::decode(&t)?),
                Some(9) => cp.user_session_requirements = Some(BitString::decode(&t)?),
                _ => {}
            }
        }
        Ok(cp)
    }

    /// Encodes the CP PPDU.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.set(|w| {
            encode_mode(w);
            w.constructed(Tag::context(2), |w| {
                if let Some(v) = &self.protocol_version {
                    v.encode(w, Tag::context(0));
                }
                if let Some(s) = &self.calling_selector {
                    w.octets(Tag::context(1), s);
                }
                if let Some(s) = &self.called_selector {
                    w.octets(Tag::context(2), s);
                }
                if !self.contexts.is_empty() {
                    encode_context_list(w, Tag::context(4), &self.contexts);
                }
                if let Some(d) = &self.default_context {
                    w.constructed(Tag::context(6), |w| {
                        w.oid_tagged(Tag::context(0), &d.abstract_syntax);
                        w.oid_tagged(Tag::context(1), &d.transfer_syntax);
                    });
                }
                if let Some(v) = &self.presentation_requirements {
                    v.encode(w, Tag::context(8));
                }
                if let Some(v) = &self.user_session_requirements {
                    v.encode(w, Tag::context(9));
                }
                write_user_data(w, &self.user_data);
            });
        });
        w.finish()
    }
}

/// The CPA PPDU (normal mode): the user data of the session ACCEPT SPDU.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpaPpdu {
    /// `protocol-version`; `None` when absent (DEFAULT `{version-1}`).
    pub protocol_version: Option<BitString>,
    /// Responding presentation selector.
    pub responding_selector: Option<Vec<u8>>,
    /// Presentation context definition result list, one per proposed context, in order.
    pub results: Vec<ContextResult>,
    /// Presentation requirements (normally absent: kernel only).
    pub presentation_requirements: Option<BitString>,
    /// User session requirements, when they differ from the session's.
    pub user_session_requirements: Option<BitString>,
    /// User data (empty: absent), normally one PDV with the AARE in the ACSE context.
    pub user_data: Vec<Pdv>,
}

impl CpaPpdu {
    /// Decodes a CPA PPDU. Protocol options and the nominated context are skipped.
    pub fn decode(bytes: &[u8]) -> Result<Self, PresentationError> {
        let normal = normal_mode_parameters(bytes, "CPA-PPDU SET")?;
        let mut cpa = CpaPpdu::default();
        let mut r = normal.children()?;
        while let Some(t) = r.next()? {
            if is_user_data(t.tag) {
                cpa.user_data = decode_user_data_tlv(&t)?;
                continue;
            }
            match context_number(t.tag) {
                Some(0) => cpa.protocol_version = Some(BitString::decode(&t)?),
                Some(3) => cpa.responding_selector = Some(selector(&t)?),
                Some(5) => cpa.results = decode_result_list(&t)?,
                Some(8) => cpa.presentation_requirements = Some(BitString::decode(&t)?),
                Some(9) => cpa.user_session_requirements = Some(BitString::decode(&t)?),
                _ => {}
            }
        }
        Ok(cpa)
    }

    /// Encodes the CPA PPDU.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.set(|w| {
            encode_mode(w);
            w.constructed(Tag::context(2), |w| {
                if let Some(v) = &self.protocol_version {
                    v.encode(w, Tag::context(0));
                }
                if let Some(s) = &self.responding_selector {
                    w.octets(Tag::context(3), s);
                }
                if !self.results.is_empty() {
                    encode_result_list(w, Tag::context(5), &self.results);
                }
                if let Some(v) = &self.presentation_requirements {
                    v.encode(w, Tag::context(8));
                }
                if let Some(v) = &self.user_session_requirements {
                    v.encode(w, Tag::context(9));
                }
                write_user_data(w, &self.user_data);
            });
        });
        w.finish()
    }
}

/// Provider reason of a CPR PPDU: reason not specified.
pub const CPR_REASON_NOT_SPECIFIED: i64 = 0;
/// Provider reason of a CPR PPDU: temporary congestion.
pub const CPR_TEMPORARY_CONGESTION: i64 = 1;
/// Provider reason of a CPR PPDU: local limit exceeded.
pub const CPR_LOCAL_LIMIT_EXCEEDED: i64 = 2;
/// Provider reason of a CPR PPDU: called presentation address unknown.
pub const CPR_CALLED_ADDRESS_UNKNOWN: i64 = 3;
/// Provider reason of a CPR PPDU: protocol version not supported.
pub const CPR_PROTOCOL_VERSION_NOT_SUPPORTED: i64 = 4;
/// Provider reason of a CPR PPDU: default context not supported.
pub const CPR_DEFAULT_CONTEXT_NOT_SUPPORTED: i64 = 5;
/// Provider reason of a CPR PPDU: user data not readable.
pub const CPR_USER_DATA_NOT_READABLE: i64 = 6;
/// Provider reason of a CPR PPDU: no PSAP available.
pub const CPR_NO_PSAP_AVAILABLE: i64 = 7;

/// The CPR PPDU (normal mode): the user data of the session REFUSE SPDU.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CprPpdu {
    /// `protocol-version`; `None` when absent (DEFAULT `{version-1}`).
    pub protocol_version: Option<BitString>,
    /// Responding presentation selector.
    pub responding_selector: Option<Vec<u8>>,
    /// Presentation context definition result list (empty: absent).
    pub results: Vec<ContextResult>,
    /// Default context result.
    pub default_context_result: Option<i64>,
    /// Provider reason (the `CPR_*` constants) when the provider refuses; absent when the
    /// user (ACSE, with an AARE in the user data) refuses.
    pub provider_reason: Option<i64>,
    /// User data (empty: absent).
    pub user_data: Vec<Pdv>,
}

impl CprPpdu {
    /// Decodes a CPR PPDU.
    pub fn decode(bytes: &[u8]) -> Result<Self, PresentationError> {
        let top = parse_one(bytes)?;
        if top.tag.same(Tag::SET) {
            return Err(PresentationError::X410Mode);
        }
        let top = top.expect(Tag::SEQUENCE, "CPR-PPDU SEQUENCE")?;
        let mut cpr = CprPpdu::default();
        let mut r = top.children()?;
        while let Some(t) = r.next()? {
            if is_user_data(t.tag) {
                cpr.user_data = decode_user_data_tlv(&t)?;
                continue;
            }
            match context_number(t.tag) {
                Some(0) => cpr.protocol_version = Some(BitString::decode(&t)?),
                Some(3) => cpr.responding_selector = Some(selector(&t)?),
                Some(5) => cpr.results = decode_result_list(&t)?,
                Some(7) => cpr.default_context_result = Some(t.integer()?),
                Some(10) => cpr.provider_reason = Some(t.integer()?),
                _ => {}
            }
        }
        Ok(cpr)
    }

    /// Encodes the CPR PPDU.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.sequence(|w| {
            if let Some(v) = &self.protocol_version {
                v.encode(w, Tag::context(0));
            }
            if let Some(s) = &self.responding_selector {
                w.octets(Tag::context(3), s);
            }
            if !self.results.is_empty() {
                encode_result_list(w, Tag::context(5), &self.results);
            }
            if let Some(v) = self.default_context_result {
                w.integer_tagged(Tag::context(7), v);
            }
            if let Some(v) = self.provider_reason {
                w.integer_tagged(Tag::context(10), v);
            }
            write_user_data(w, &self.user_data);
        });
        w.finish()
    }
}

/// The ARU PPDU (normal mode): a presentation user abort, the user data of a session ABORT
/// SPDU, normally carrying an ACSE ABRT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AruPpdu {
    /// Presentation context identifier list (only needed before the contexts are agreed;
    /// empty: absent).
    pub contexts: Vec<ContextIdentifier>,
    /// User data (empty: absent).
    pub user_data: Vec<Pdv>,
}

impl AruPpdu {
    /// Decodes an ARU PPDU.
    pub fn decode(bytes: &[u8]) -> Result<Self, PresentationError> {
        Self::decode_tlv(&parse_one(bytes)?)
    }

    fn decode_tlv(top: &Tlv<'_>) -> Result<Self, PresentationError> {
        if top.tag.same(Tag::SET) {
            return Err(PresentationError::X410Mode);
        }
        let top = top.expect(Tag::context(0), "ARU-PPDU [0]")?;
        let mut aru = AruPpdu::default();
        let mut r = top.children()?;
        while let Some(t) = r.next()? {
            if is_user_data(t.tag) {
                aru.user_data = decode_user_data_tlv(&t)?;
            } else if context_number(t.tag) == Some(0) {
                aru.contexts = bounded_list(&t, "presentation contexts", |item| {
                    let mut r = item
                        .expect(Tag::SEQUENCE, "context identifier")?
                        .children()?;
                    let id = r
                        .next_required("presentation-context-identifier")?
                        .integer()?;
                    let transfer_syntax = r.next_required("transfer-syntax-name")?.oid()?;
                    r.finish()?;
                    Ok(ContextIdentifier {
                        id,
                        transfer_syntax,
                    })
                })?;
            }
        }
        Ok(aru)
    }

    /// Encodes the ARU PPDU.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.constructed(Tag::context(0), |w| {
            if !self.contexts.is_empty() {
                w.constructed(Tag::context(0), |w| {
                    for c in &self.contexts {
                        w.sequence(|w| {
                            w.integer(c.id);
                            w.oid(&c.transfer_syntax);
                        });
                    }
                });
            }
            write_user_data(w, &self.user_data);
        });
        w.finish()
    }
}

/// The ARP PPDU: a presentation provider abort.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArpPpdu {
    /// `Abort-reason`: 0 not specified, 1 unrecognized PPDU, 2 unexpected PPDU, 3 unexpected
    /// session service primitive, 4 unrecognized PPDU parameter, 5 unexpected PPDU parameter,
    /// 6 invalid PPDU parameter value.
    pub reason: Option<i64>,
    /// `Event-identifier`: the PPDU or session event that caused the abort.
    pub event: Option<i64>,
}

impl ArpPpdu {
    /// Decodes an ARP PPDU.
    pub fn decode(bytes: &[u8]) -> Result<Self, PresentationError> {
        Self::decode_tlv(&parse_one(bytes)?)
    }

    fn decode_tlv(top: &Tlv<'_>) -> Result<Self, PresentationError> {
        let top = top.expect(Tag::SEQUENCE, "ARP-PPDU SEQUENCE")?;
        let mut arp = ArpPpdu::default();
        let mut r = top.children()?;
        while let Some(t) = r.next()? {
            match context_number(t.tag) {
                Some(0) => arp.reason = Some(t.integer()?),
                Some(1) => arp.event = Some(t.integer()?),
                _ => {}
            }
        }
        Ok(arp)
    }

    /// Encodes the ARP PPDU.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.sequence(|w| {
            if let Some(v) = self.reason {
                w.integer_tagged(Tag::context(0), v);
            }
            if let Some(v) = self.event {
                w.integer_tagged(Tag::context(1), v);
            }
        });
        w.finish()
    }
}

/// `Abort-type`: what the user data of a session ABORT SPDU holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbortPpdu {
    /// A user abort.
    Aru(AruPpdu),
    /// A provider abort.
    Arp(ArpPpdu),
}

impl AbortPpdu {
    /// Decodes either abort PPDU, told apart by the outer tag.
    pub fn decode(bytes: &[u8]) -> Result<Self, PresentationError> {
        let top = parse_one(bytes)?;
        if top.tag.same(Tag::SEQUENCE) {
            Ok(AbortPpdu::Arp(ArpPpdu::decode_tlv(&top)?))
        } else {
            Ok(AbortPpdu::Aru(AruPpdu::decode_tlv(&top)?))
        }
    }

    /// Encodes the abort PPDU.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            AbortPpdu::Aru(a) => a.encode(),
            AbortPpdu::Arp(a) => a.encode(),
        }
    }
}

/// The presentation context definition list P1 proposes: 1 = ACSE, 3 = `id-as-mta-rtse`,
/// 5 = `id-as-mtse`, each with the BER transfer syntax only.
pub fn p1_context_definitions() -> Vec<ContextDefinition> {
    [
        (P1_ACSE_CONTEXT, ACSE_ABSTRACT_SYNTAX),
        (P1_RTSE_CONTEXT, ID_AS_MTA_RTSE),
        (P1_MTSE_CONTEXT, ID_AS_MTSE),
    ]
    .into_iter()
    .map(|(id, arcs)| ContextDefinition {
        id,
        abstract_syntax: oid(arcs),
        transfer_syntaxes: vec![oid(BER_TRANSFER_SYNTAX)],
    })
    .collect()
}

/// The context identifiers a P1 association uses, as the initiator numbered them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct P1Contexts {
    /// The ACSE context.
    pub acse: i64,
    /// The `id-as-mta-rtse` context (RTSE APDUs, MTA-bind).
    pub rtse: i64,
    /// The `id-as-mtse` context (MTS-APDUs inside RTTR).
    pub mtse: i64,
}

/// Finds, in a context definition list, the context offering `abstract_syntax` with BER.
pub fn find_ber_context(contexts: &[ContextDefinition], abstract_syntax: &Oid) -> Option<i64> {
    let ber = oid(BER_TRANSFER_SYNTAX);
    contexts
        .iter()
        .find(|c| &c.abstract_syntax == abstract_syntax && c.transfer_syntaxes.contains(&ber))
        .map(|c| c.id)
}

/// Checks that a CP offers what P1 needs (ACSE, `id-as-mta-rtse` and `id-as-mtse`, each with
/// BER, whatever their identifiers) and says which identifiers it gave them.
pub fn check_p1_offer(cp: &CpPpdu) -> Result<P1Contexts, PresentationError> {
    let find = |arcs: &[u32]| {
        let o = oid(arcs);
        find_ber_context(&cp.contexts, &o).ok_or(PresentationError::MissingContext(o))
    };
    Ok(P1Contexts {
        acse: find(ACSE_ABSTRACT_SYNTAX)?,
        rtse: find(ID_AS_MTA_RTSE)?,
        mtse: find(ID_AS_MTSE)?,
    })
}

/// The result list a responder sends for `contexts`: acceptance with BER for each abstract
/// syntax in `supported` offered with BER; otherwise a provider rejection with
/// [`REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED`] or [`REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED`].
pub fn respond_to_contexts(
    contexts: &[ContextDefinition],
    supported: &[Oid],
) -> Vec<ContextResult> {
    let ber = oid(BER_TRANSFER_SYNTAX);
    contexts
        .iter()
        .map(|c| {
            if !supported.contains(&c.abstract_syntax) {
                ContextResult {
                    result: ContextResultKind::ProviderRejection,
                    transfer_syntax: None,
                    provider_reason: Some(REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED),
                }
            } else if !c.transfer_syntaxes.contains(&ber) {
                ContextResult {
                    result: ContextResultKind::ProviderRejection,
                    transfer_syntax: None,
                    provider_reason: Some(REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED),
                }
            } else {
                ContextResult::accepted_ber()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
