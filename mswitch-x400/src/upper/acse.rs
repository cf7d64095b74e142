//! X.227 ACSE APDUs (the ACSE-1 module, kernel): AARQ, AARE, RLRQ, RLRE and ABRT.
//!
//! ACSE-1 tags explicitly by default: `aSO-context-name [1]`, the AP-title and AE-qualifier
//! CHOICEs, the invocation identifiers, `result [2]` and `result-source-diagnostic [3]` are
//! explicit; protocol-version, requirements, mechanism-name, implementation-information, the
//! release and abort fields and `user-information [30]` are implicit. Unknown optional
//! components are skipped on decode. User information is a `Vec<External>` (empty: absent).

use crate::ber::{BerError, External, Oid, Tag, Tlv, Writer, parse_one};

use super::{BitString, MAX_EXTERNALS, MAX_IMPLEMENTATION_INFO_LEN, context_number};

/// Why an ACSE APDU could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcseError {
    /// The bytes are not valid BER, or not the APDU's structure (the peer's fault).
    #[error("ACSE APDU: {0}")]
    Ber(#[from] BerError),
    /// An APDU other than AARQ, AARE, RLRQ, RLRE or ABRT (A-DT, ACRQ, ACRP or unknown: peer
    /// incompatible).
    #[error("unsupported ACSE APDU {0}")]
    UnsupportedApdu(Tag),
    /// More EXTERNALs in user-information than [`MAX_EXTERNALS`] (the peer's fault, against a
    /// local limit).
    #[error("too many EXTERNALs in ACSE user-information")]
    TooManyExternals,
    /// An associate result other than 0, 1 or 2 (the peer's fault).
    #[error("invalid associate result {0}")]
    InvalidResult(i64),
    /// A result-source-diagnostic other than `[1]` or `[2]` (the peer's fault).
    #[error("invalid result-source-diagnostic {0}")]
    InvalidDiagnostic(Tag),
}

/// An AP-title: the object identifier form (form 2) decoded, the others kept as their BER
/// element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApTitle {
    /// `ap-title-form2 OBJECT IDENTIFIER`.
    Form2(Oid),
    /// Any other form (a directory Name, a PrintableString, a RELATIVE-OID): the complete BER
    /// element of the CHOICE value.
    Other(Vec<u8>),
}

impl ApTitle {
    fn decode(t: &Tlv<'_>) -> Result<Self, BerError> {
        let inner = t.explicit_inner()?;
        if inner.tag == Tag::OID {
            Ok(ApTitle::Form2(inner.oid()?))
        } else {
            Ok(ApTitle::Other(inner.raw.to_vec()))
        }
    }

    fn encode(&self, w: &mut Writer, n: u32) {
        w.explicit(Tag::context(n), |w| match self {
            ApTitle::Form2(o) => w.oid(o),
            ApTitle::Other(raw) => w.raw(raw),
        });
    }
}

/// An AE-qualifier: the INTEGER form (form 2) decoded, the others kept as their BER element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AeQualifier {
    /// `aso-qualifier-form2 INTEGER`.
    Form2(i64),
    /// Any other form: the complete BER element of the CHOICE value.
    Other(Vec<u8>),
}

impl AeQualifier {
    fn decode(t: &Tlv<'_>) -> Result<Self, BerError> {
        let inner = t.explicit_inner()?;
        if inner.tag == Tag::INTEGER {
            Ok(AeQualifier::Form2(inner.integer()?))
        } else {
            Ok(AeQualifier::Other(inner.raw.to_vec()))
        }
    }

    fn encode(&self, w: &mut Writer, n: u32) {
        w.explicit(Tag::context(n), |w| match self {
            AeQualifier::Form2(v) => w.integer(*v),
            AeQualifier::Other(raw) => w.raw(raw),
        });
    }
}

/// `Associate-result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssociateResult {
    /// `accepted (0)`.
    Accepted,
    /// `rejected-permanent (1)`.
    RejectedPermanent,
    /// `rejected-transient (2)`.
    RejectedTransient,
}

impl AssociateResult {
    /// The INTEGER value.
    pub fn value(self) -> i64 {
        match self {
            AssociateResult::Accepted => 0,
            AssociateResult::RejectedPermanent => 1,
            AssociateResult::RejectedTransient => 2,
        }
    }

    /// From the INTEGER value.
    pub fn from_value(v: i64) -> Result<Self, AcseError> {
        match v {
            0 => Ok(AssociateResult::Accepted),
            1 => Ok(AssociateResult::RejectedPermanent),
            2 => Ok(AssociateResult::RejectedTransient),
            _ => Err(AcseError::InvalidResult(v)),
        }
    }
}

/// `Associate-source-diagnostic`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultSourceDiagnostic {
    /// `acse-service-user [1]`: 0 null, 1 no reason given, 2 application context name not
    /// supported, 3..=10 an AP-title/AE-qualifier/invocation identifier not recognized,
    /// 11..=14 authentication problems.
    ServiceUser(i64),
    /// `acse-service-provider [2]`: 0 null, 1 no reason given, 2 no common ACSE version.
    ServiceProvider(i64),
}

/// Service-user diagnostic: null.
pub const DIAG_NULL: i64 = 0;
/// Service-user diagnostic: no reason given.
pub const DIAG_NO_REASON_GIVEN: i64 = 1;
/// Service-user diagnostic: application context name not supported.
pub const DIAG_APPLICATION_CONTEXT_NOT_SUPPORTED: i64 = 2;
/// Service-user diagnostic: calling AP title not recognized.
pub const DIAG_CALLING_AP_TITLE_NOT_RECOGNIZED: i64 = 3;
/// Service-user diagnostic: called AP title not recognized.
pub const DIAG_CALLED_AP_TITLE_NOT_RECOGNIZED: i64 = 7;
/// Service-user diagnostic: authentication failure.
pub const DIAG_AUTHENTICATION_FAILURE: i64 = 13;

/// Release reason (RLRQ and RLRE): normal.
pub const RELEASE_NORMAL: i64 = 0;
/// Release request reason: urgent (RLRQ); release response reason: not finished (RLRE).
pub const RELEASE_URGENT_OR_NOT_FINISHED: i64 = 1;
/// Release reason (RLRQ and RLRE): user defined.
pub const RELEASE_USER_DEFINED: i64 = 30;

/// Abort source: the ACSE service user.
pub const ABORT_SOURCE_USER: i64 = 0;
/// Abort source: the ACSE service provider.
pub const ABORT_SOURCE_PROVIDER: i64 = 1;

/// How one side names itself: AP-title, AE-qualifier and the invocation identifiers (the
/// called and calling sides of an AARQ, the responding side of an AARE).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AeIdentity {
    /// AP-title.
    pub ap_title: Option<ApTitle>,
    /// AE-qualifier.
    pub ae_qualifier: Option<AeQualifier>,
    /// AP-invocation-identifier.
    pub ap_invocation_id: Option<i64>,
    /// AE-invocation-identifier.
    pub ae_invocation_id: Option<i64>,
}

impl AeIdentity {
    /// Whether no field is present.
    pub fn is_empty(&self) -> bool {
        *self == AeIdentity::default()
    }

    /// Decodes the field with tag `[n]` where `first` is the tag of the AP-title; returns
    /// whether the tag was one of the four.
    fn decode_field(&mut self, t: &Tlv<'_>, n: u32, first: u32) -> Result<bool, BerError> {
        match n.checked_sub(first) {
            Some(0) => self.ap_title = Some(ApTitle::decode(t)?),
            Some(1) => self.ae_qualifier = Some(AeQualifier::decode(t)?),
            Some(2) => self.ap_invocation_id = Some(t.explicit_inner()?.integer()?),
            Some(3) => self.ae_invocation_id = Some(t.explicit_inner()?.integer()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn encode(&self, w: &mut Writer, first: u32) {
        if let Some(t) = &self.ap_title {
            t.encode(w, first);
        }
        if let Some(q) = &self.ae_qualifier {
            q.encode(w, first + 1);
        }
        if let Some(v) = self.ap_invocation_id {
            w.explicit(Tag::context(first + 2), |w| w.integer(v));
        }
        if let Some(v) = self.ae_invocation_id {
            w.explicit(Tag::context(first + 3), |w| w.integer(v));
        }
    }
}

/// A-ASSOCIATE request (`AARQ-apdu`, `[APPLICATION 0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aarq {
    /// `protocol-version`; `None` when absent (DEFAULT `{version1}`).
    pub protocol_version: Option<BitString>,
    /// `aSO-context-name` (the application context name).
    pub application_context: Oid,
    /// The called AP-title, AE-qualifier and invocation identifiers (`[2]`..`[5]`).
    pub called: AeIdentity,
    /// The calling AP-title, AE-qualifier and invocation identifiers (`[6]`..`[9]`).
    pub calling: AeIdentity,
    /// `sender-acse-requirements [10]`.
    pub acse_requirements: Option<BitString>,
    /// `mechanism-name [11]`.
    pub mechanism_name: Option<Oid>,
    /// `calling-authentication-value [12]`: the complete BER element of the CHOICE value.
    pub authentication_value: Option<Vec<u8>>,
    /// `implementation-information [29]` (GraphicString).
    pub implementation_information: Option<String>,
    /// `user-information [30]` (empty: absent); for P1, one EXTERNAL with the RTORQ.
    pub user_information: Vec<External>,
}

impl Aarq {
    /// An AARQ for `application_context` with nothing else.
    pub fn new(application_context: Oid) -> Self {
        Aarq {
            protocol_version: None,
            application_context,
            called: AeIdentity::default(),
            calling: AeIdentity::default(),
            acse_requirements: None,
            mechanism_name: None,
            authentication_value: None,
            implementation_information: None,
            user_information: Vec::new(),
        }
    }

    /// Decodes an AARQ.
    pub fn decode(bytes: &[u8]) -> Result<Self, AcseError> {
        Self::decode_tlv(&parse_one(bytes)?)
    }

    fn decode_tlv(top: &Tlv<'_>) -> Result<Self, AcseError> {
        let top = top.expect(AARQ, "AARQ [APPLICATION 0]")?;
        let mut r = top.children()?;
        let mut a = Aarq::new(Oid(Vec::new()));
        let mut context = None;
        while let Some(t) = r.next()? {
            let Some(n) = context_number(t.tag) else {
                continue;
            };
            if a.called.decode_field(&t, n, 2)? || a.calling.decode_field(&t, n, 6)? {
                continue;
            }
            match n {
                0 => a.protocol_version = Some(BitString::decode(&t)?),
                1 => {
                    context = Some(
                        t.explicit_inner()?
                            .expect(Tag::OID, "aSO-context-name")?
                            .oid()?,
                    )
                }
                10 => a.acse_requirements = Some(BitString::decode(&t)?),
                11 => a.mechanism_name = Some(t.oid()?),
                12 => a.authentication_value = Some(t.explicit_inner()?.raw.to_vec()),
                29 => a.implementation_information = Some(implementation_info(&t)?),
                30 => a.user_information = decode_user_information(&t)?,
                _ => {}
            }
        }
        a.application_context = context.ok_or(BerError::Missing("aSO-context-name"))?;
        Ok(a)
    }

    /// Encodes the AARQ.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.finish()
    }

    fn encode_into(&self, w: &mut Writer) {
        w.constructed(AARQ, |w| {
            if let Some(v) = &self.protocol_version {
                v.encode(w, Tag::context(0));
            }
            w.explicit(Tag::context(1), |w| w.oid(&self.application_context));
            self.called.encode(w, 2);
            self.calling.encode(w, 6);
            if let Some(v) = &self.acse_requirements {
                v.encode(w, Tag::context(10));
            }
            if let Some(v) = &self.mechanism_name {
                w.oid_tagged(Tag::context(11), v);
            }
            if let Some(v) = &self.authentication_value {
                w.explicit(Tag::context(12), |w| w.raw(v));
            }
            if let Some(v) = &self.implementation_information {
                w.string(Tag::context(29), v);
            }
            encode_user_information(w, &self.user_information);
        });
    }
}

/// A-ASSOCIATE response (`AARE-apdu`, `[APPLICATION 1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aare {
    /// `protocol-version`; `None` when absent (DEFAULT `{version1}`).
    pub protocol_version: Option<BitString>,
    /// `aSO-context-name` (the application context name).
    pub application_context: Oid,
    /// `result [2]`.
    pub result: AssociateResult,
    /// `result-source-diagnostic [3]`.
    pub result_source_diagnostic: ResultSourceDiagnostic,
    /// The responding AP-title, AE-qualifier and invocation identifiers (`[4]`..`[7]`).
    pub responding: AeIdentity,
    /// `responder-acse-requirements [8]`.
    pub acse_requirements: Option<BitString>,
    /// `mechanism-name [9]`.
    pub mechanism_name: Option<Oid>,
    /// `responding-authentication-value [10]`: the complete BER element of the CHOICE value.
    pub authentication_value: Option<Vec<u8>>,
    /// `implementation-information [29]` (GraphicString).
    pub implementation_information: Option<String>,
    /// `user-information [30]` (empty: absent); for P1, one EXTERNAL with the RTOAC or RTORJ.
    pub user_information: Vec<External>,
}

impl Aare {
    /// An AARE with the given context, result and diagnostic and nothing else.
    pub fn new(
        application_context: Oid,
        result: AssociateResult,
        result_source_diagnostic: ResultSourceDiagnostic,
    ) -> Self {
        Aare {
            protocol_version: None,
            application_context,
            result,
            result_source_diagnostic,
            responding: AeIdentity::default(),
            acse_requirements: None,
            mechanism_name: None,
            authentication_value: None,
            implementation_information: None,
            user_information: Vec::new(),
        }
    }

    /// Decodes an AARE.
    pub fn decode(bytes: &[u8]) -> Result<Self, AcseError> {
        Self::decode_tlv(&parse_one(bytes)?)
    }

    fn decode_tlv(top: &Tlv<'_>) -> Result<Self, AcseError> {
        let top = top.expect(AARE, "AARE [APPLICATION 1]")?;
        let mut r = top.children()?;
        let mut a = Aare::new(
            Oid(Vec::new()),
            AssociateResult::Accepted,
            ResultSourceDiagnostic::ServiceUser(DIAG_NULL),
        );
        let mut context = None;
        let mut result = None;
        let mut diagnostic = None;
        while let Some(t) = r.next()? {
            let Some(n) = context_number(t.tag) else {
                continue;
            };
            if a.responding.decode_field(&t, n, 4)? {
                continue;
            }
            match n {
                0 => a.protocol_version = Some(BitString::decode(&t)?),
                1 => {
                    context = Some(
                        t.explicit_inner()?
                            .expect(Tag::OID, "aSO-context-name")?
                            .oid()?,
                    )
                }
                2 => {
                    let v = t
                        .explicit_inner()?
                        .expect(Tag::INTEGER, "result")?
                        .integer()?;
                    result = Some(AssociateResult::from_value(v)?);
                }
                3 => {
                    let inner = t.explicit_inner()?;
                    let v = inner.explicit_inner()?.expect(Tag::INTEGER, "diagnostic")?;
                    diagnostic = Some(match context_number(inner.tag) {
                        Some(1) => ResultSourceDiagnostic::ServiceUser(v.integer()?),
                        Some(2) => ResultSourceDiagnostic::ServiceProvider(v.integer()?),
                        _ => return Err(AcseError::InvalidDiagnostic(inner.tag)),
                    });
                }
                8 => a.acse_requirements = Some(BitString::decode(&t)?),
                9 => a.mechanism_name = Some(t.oid()?),
                10 => a.authentication_value = Some(t.explicit_inner()?.raw.to_vec()),
                29 => a.implementation_information = Some(implementation_info(&t)?),
                30 => a.user_information = decode_user_information(&t)?,
                _ => {}
            }
        }
        a.application_context = context.ok_or(BerError::Missing("aSO-context-name"))?;
        a.result = result.ok_or(BerError::Missing("result"))?;
        a.result_source_diagnostic =
            diagnostic.ok_or(BerError::Missing("result-source-diagnostic"))?;
        Ok(a)
    }

    /// Encodes the AARE.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode_into(&mut w);
        w.finish()
    }

    fn encode_into(&self, w: &mut Writer) {
        w.constructed(AARE, |w| {
            if let Some(v) = &self.protocol_version {
                v.encode(w, Tag::context(0));
            }
            w.explicit(Tag::context(1), |w| w.oid(&self.application_context));
            w.explicit(Tag::context(2), |w| w.integer(self.result.value()));
            w.explicit(Tag::context(3), |w| match self.result_source_diagnostic {
                ResultSourceDiagnostic::ServiceUser(v) => {
                    w.explicit(Tag::context(1), |w| w.integer(v));
                }
                ResultSourceDiagnostic::ServiceProvider(v) => {
                    w.explicit(Tag::context(2), |w| w.integer(v));
                }
            });
            self.responding.encode(w, 4);
            if let Some(v) = &self.acse_requirements {
                v.encode(w, Tag::context(8));
            }
            if let Some(v) = &self.mechanism_name {
                w.oid_tagged(Tag::context(9), v);
            }
            if let Some(v) = &self.authentication_value {
                w.explicit(Tag::context(10), |w| w.raw(v));
            }
            if let Some(v) = &self.implementation_information {
                w.string(Tag::context(29), v);
            }
            encode_user_information(w, &self.user_information);
        });
    }
}

/// A-RELEASE request (`RLRQ-apdu`, `[APPLICATION 2]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rlrq {
    /// `reason [0]`: [`RELEASE_NORMAL`], [`RELEASE_URGENT_OR_NOT_FINISHED`] (urgent),
    /// [`RELEASE_USER_DEFINED`].
    pub reason: Option<i64>,
    /// `user-information [30]` (empty: absent).
    pub user_information: Vec<External>,
}

/// A-RELEASE response (`RLRE-apdu`, `[APPLICATION 3]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rlre {
    /// `reason [0]`: [`RELEASE_NORMAL`], [`RELEASE_URGENT_OR_NOT_FINISHED`] (not finished),
    /// [`RELEASE_USER_DEFINED`].
    pub reason: Option<i64>,
    /// `user-information [30]` (empty: absent).
    pub user_information: Vec<External>,
}

/// A-ABORT (`ABRT-apdu`, `[APPLICATION 4]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Abrt {
    /// `abort-source [0]`: [`ABORT_SOURCE_USER`] or [`ABORT_SOURCE_PROVIDER`].
    pub source: i64,
    /// `abort-diagnostic [1]` (1 no reason given, 2 protocol error, 3..=6 authentication).
    pub diagnostic: Option<i64>,
    /// `user-information [30]` (empty: absent).
    pub user_information: Vec<External>,
}

/// Decodes a release APDU body: `(reason, user_information)`.
fn decode_release(
    top: &Tlv<'_>,
    tag: Tag,
    what: &'static str,
) -> Result<(Option<i64>, Vec<External>), AcseError> {
    let top = top.expect(tag, what)?;
    let mut r = top.children()?;
    let mut reason = None;
    let mut user_information = Vec::new();
    while let Some(t) = r.next()? {
        match context_number(t.tag) {
            Some(0) => reason = Some(t.integer()?),
            Some(30) => user_information = decode_user_information(&t)?,
            _ => {}
        }
    }
    Ok((reason, user_information))
}

fn encode_release(w: &mut Writer, tag: Tag, reason: Option<i64>, ui: &[External]) {
    w.constructed(tag, |w| {
        if let Some(v) = reason {
            w.integer_tagged(Tag::context(0), v);
        }
        encode_user_information(w, ui);
    });
}

impl Rlrq {
    /// Decodes an RLRQ.
    pub fn decode(bytes: &[u8]) -> Result<Self, AcseError> {
        let (reason, user_information) =
            decode_release(&parse_one(bytes)?, RLRQ, "RLRQ [APPLICATION 2]")?;
        Ok(Rlrq {
            reason,
            user_information,
        })
    }

    /// Encodes the RLRQ.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        encode_release(&mut w, RLRQ, self.reason, &self.user_information);
        w.finish()
    }
}

impl Rlre {
    /// Decodes an RLRE.
    pub fn decode(bytes: &[u8]) -> Result<Self, AcseError> {
        let (reason, user_information) =
            decode_release(&parse_one(bytes)?, RLRE, "RLRE [APPLICATION 3]")?;
        Ok(Rlre {
            reason,
            user_information,
        })
    }

    /// Encodes the RLRE.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        encode_release(&mut w, RLRE, self.reason, &self.user_information);
        w.finish()
    }
}

impl Abrt {
    /// Decodes an ABRT.
    pub fn decode(bytes: &[u8]) -> Result<Self, AcseError> {
        Self::decode_tlv(&parse_one(bytes)?)
    }

    fn decode_tlv(top: &Tlv<'_>) -> Result<Self, AcseError> {
        let top = top.expect(ABRT, "ABRT [APPLICATION 4]")?;
        let mut r = top.children()?;
        let mut source = None;
        let mut diagnostic = None;
        let mut user_information = Vec::new();
        while let Some(t) = r.next()? {
            match context_number(t.tag) {
                Some(0) => source = Some(t.integer()?),
                Some(1) => diagnostic = Some(t.integer()?),
                Some(30) => user_information = decode_user_information(&t)?,
                _ => {}
            }
        }
        Ok(Abrt {
            source: source.ok_or(BerError::Missing("abort-source"))?,
            diagnostic,
            user_information,
        })
    }

    /// Encodes the ABRT.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.constructed(ABRT, |w| {
            w.integer_tagged(Tag::context(0), self.source);
            if let Some(v) = self.diagnostic {
                w.integer_tagged(Tag::context(1), v);
            }
            encode_user_information(w, &self.user_information);
        });
        w.finish()
    }
}

/// Any of the five ACSE APDUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcsePdu {
    /// A-ASSOCIATE request.
    Aarq(Aarq),
    /// A-ASSOCIATE response.
    Aare(Aare),
    /// A-RELEASE request.
    Rlrq(Rlrq),
    /// A-RELEASE response.
    Rlre(Rlre),
    /// A-ABORT.
    Abrt(Abrt),
}

impl AcsePdu {
    /// Decodes an ACSE APDU, told apart by its APPLICATION tag.
    pub fn decode(bytes: &[u8]) -> Result<Self, AcseError> {
        let top = parse_one(bytes)?;
        if top.tag.class != crate::ber::Class::Application {
            return Err(AcseError::UnsupportedApdu(top.tag));
        }
        match top.tag.number {
            0 => Ok(AcsePdu::Aarq(Aarq::decode_tlv(&top)?)),
            1 => Ok(AcsePdu::Aare(Aare::decode_tlv(&top)?)),
            2 => {
                let (reason, user_information) = decode_release(&top, RLRQ, "RLRQ")?;
                Ok(AcsePdu::Rlrq(Rlrq {
                    reason,
                    user_information,
                }))
            }
            3 => {
                let (reason, user_information) = decode_release(&top, RLRE, "RLRE")?;
                Ok(AcsePdu::Rlre(Rlre {
                    reason,
                    user_information,
                }))
            }
            4 => Ok(AcsePdu::Abrt(Abrt::decode_tlv(&top)?)),
            _ => Err(AcseError::UnsupportedApdu(top.tag)),
        }
    }

    /// Encodes the APDU.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            AcsePdu::Aarq(a) => a.encode(),
            AcsePdu::Aare(a) => a.encode(),
            AcsePdu::Rlrq(a) => a.encode(),
            AcsePdu::Rlre(a) => a.encode(),
            AcsePdu::Abrt(a) => a.encode(),
        }
    }
}

const AARQ: Tag = Tag::application(0).constructed();
const AARE: Tag = Tag::application(1).constructed();
const RLRQ: Tag = Tag::application(2).constructed();
const RLRE: Tag = Tag::application(3).constructed();
const ABRT: Tag = Tag::application(4).constructed();

fn implementation_info(t: &Tlv<'_>) -> Result<String, BerError> {
    t.string("implementation-information", MAX_IMPLEMENTATION_INFO_LEN)
}

fn decode_user_information(t: &Tlv<'_>) -> Result<Vec<External>, AcseError> {
    let mut r = t.children()?;
    let mut out = Vec::new();
    while let Some(e) = r.next()? {
        if out.len() == MAX_EXTERNALS {
            return Err(AcseError::TooManyExternals);
        }
        out.push(External::decode(&e.expect(Tag::EXTERNAL, "EXTERNAL")?)?);
    }
    Ok(out)
}

fn encode_user_information(w: &mut Writer, ui: &[External]) {
    if ui.is_empty() {
        return;
    }
    w.constructed(Tag::context(30), |w| {
        for e in ui {
            e.encode(w);
        }
    });
}

#[cfg(test)]
mod tests;
