//! X.411 `ExtensionField`: `SEQUENCE { type ExtensionType, criticality [1] Criticality
//! DEFAULT {}, value [2] ANY DEFAULT NULL }`, kept as decoded fields and the value's raw
//! bytes, so that an extension we do not know is relayed unchanged.

use super::{BitString, MAX_EXTENSION_FIELDS, MtsError, UB_EXTENSION_TYPES, int_in};
use crate::ber::{BerError, Class, Oid, Tag, Tlv, Writer};

/// The numbers of the X.411 (and X.420) standard extensions, `standard-extension:n`.
pub mod standard_extension {
    /// `recipient-reassignment-prohibited`.
    pub const RECIPIENT_REASSIGNMENT_PROHIBITED: i64 = 1;
    /// `originator-requested-alternate-recipient`.
    pub const ORIGINATOR_REQUESTED_ALTERNATE_RECIPIENT: i64 = 2;
    /// `dl-expansion-prohibited`.
    pub const DL_EXPANSION_PROHIBITED: i64 = 3;
    /// `conversion-with-loss-prohibited`.
    pub const CONVERSION_WITH_LOSS_PROHIBITED: i64 = 4;
    /// `latest-delivery-time` (value: `Time`).
    pub const LATEST_DELIVERY_TIME: i64 = 5;
    /// `requested-delivery-method`.
    pub const REQUESTED_DELIVERY_METHOD: i64 = 6;
    /// `physical-forwarding-prohibited`.
    pub const PHYSICAL_FORWARDING_PROHIBITED: i64 = 7;
    /// `physical-forwarding-address-request`.
    pub const PHYSICAL_FORWARDING_ADDRESS_REQUEST: i64 = 8;
    /// `physical-delivery-modes`.
    pub const PHYSICAL_DELIVERY_MODES: i64 = 9;
    /// `registered-mail-type`.
    pub const REGISTERED_MAIL_TYPE: i64 = 10;
    /// `recipient-number-for-advice`.
    pub const RECIPIENT_NUMBER_FOR_ADVICE: i64 = 11;
    /// `physical-rendition-attributes`.
    pub const PHYSICAL_RENDITION_ATTRIBUTES: i64 = 12;
    /// `originator-return-address`.
    pub const ORIGINATOR_RETURN_ADDRESS: i64 = 13;
    /// `physical-delivery-report-request`.
    pub const PHYSICAL_DELIVERY_REPORT_REQUEST: i64 = 14;
    /// `originator-certificate`.
    pub const ORIGINATOR_CERTIFICATE: i64 = 15;
    /// `message-token`.
    pub const MESSAGE_TOKEN: i64 = 16;
    /// `content-confidentiality-algorithm-identifier`.
    pub const CONTENT_CONFIDENTIALITY_ALGORITHM_IDENTIFIER: i64 = 17;
    /// `content-integrity-check`.
    pub const CONTENT_INTEGRITY_CHECK: i64 = 18;
    /// `message-origin-authentication-check`.
    pub const MESSAGE_ORIGIN_AUTHENTICATION_CHECK: i64 = 19;
    /// `message-security-label`.
    pub const MESSAGE_SECURITY_LABEL: i64 = 20;
    /// `proof-of-submission-request`.
    pub const PROOF_OF_SUBMISSION_REQUEST: i64 = 21;
    /// `proof-of-delivery-request`.
    pub const PROOF_OF_DELIVERY_REQUEST: i64 = 22;
    /// `content-correlator`.
    pub const CONTENT_CORRELATOR: i64 = 23;
    /// `probe-origin-authentication-check`.
    pub const PROBE_ORIGIN_AUTHENTICATION_CHECK: i64 = 24;
    /// `redirection-history`.
    pub const REDIRECTION_HISTORY: i64 = 25;
    /// `dl-expansion-history`.
    pub const DL_EXPANSION_HISTORY: i64 = 26;
    /// `physical-forwarding-address`.
    pub const PHYSICAL_FORWARDING_ADDRESS: i64 = 27;
    /// `recipient-certificate`.
    pub const RECIPIENT_CERTIFICATE: i64 = 28;
    /// `proof-of-delivery`.
    pub const PROOF_OF_DELIVERY: i64 = 29;
    /// `originator-and-DL-expansion-history`.
    pub const ORIGINATOR_AND_DL_EXPANSION_HISTORY: i64 = 30;
    /// `reporting-DL-name`.
    pub const REPORTING_DL_NAME: i64 = 31;
    /// `reporting-MTA-certificate`.
    pub const REPORTING_MTA_CERTIFICATE: i64 = 32;
    /// `report-origin-authentication-check`.
    pub const REPORT_ORIGIN_AUTHENTICATION_CHECK: i64 = 33;
    /// `originating-MTA-certificate`.
    pub const ORIGINATING_MTA_CERTIFICATE: i64 = 34;
    /// `proof-of-submission`.
    pub const PROOF_OF_SUBMISSION: i64 = 35;
    /// `trace-information` (in P3 and the MS).
    pub const TRACE_INFORMATION: i64 = 37;
    /// `internal-trace-information` (value: `InternalTraceInformation`).
    pub const INTERNAL_TRACE_INFORMATION: i64 = 38;
    /// `reporting-MTA-name`.
    pub const REPORTING_MTA_NAME: i64 = 39;
    /// `multiple-originator-certificates`.
    pub const MULTIPLE_ORIGINATOR_CERTIFICATES: i64 = 40;
    /// `blind-copy-recipients` (X.420).
    pub const BLIND_COPY_RECIPIENTS: i64 = 41;
    /// `dl-exempted-recipients`.
    pub const DL_EXEMPTED_RECIPIENTS: i64 = 42;
    /// `body-part-encryption-token` (X.420).
    pub const BODY_PART_ENCRYPTION_TOKEN: i64 = 43;
    /// `forwarded-content-token` (X.420).
    pub const FORWARDED_CONTENT_TOKEN: i64 = 44;
    /// `certificate-selectors`.
    pub const CERTIFICATE_SELECTORS: i64 = 45;
    /// `certificate-selectors-override`.
    pub const CERTIFICATE_SELECTORS_OVERRIDE: i64 = 46;
}

/// X.411 `ExtensionType`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ExtensionType {
    /// `standard-extension [0] INTEGER (0..ub-extension-types)`.
    Standard(i64),
    /// `private-extension [3] OBJECT IDENTIFIER`.
    Private(Oid),
}

/// X.411 `Criticality ::= BIT STRING { for-submission(0), for-transfer(1),
/// for-delivery(2) }`: a one bit means the extension must be understood at that step.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Criticality(pub BitString);

impl Criticality {
    /// Critical for submission.
    pub fn for_submission(&self) -> bool {
        self.0.bit(0)
    }
    /// Critical for transfer (what an MTA relaying the message checks).
    pub fn for_transfer(&self) -> bool {
        self.0.bit(1)
    }
    /// Critical for delivery.
    pub fn for_delivery(&self) -> bool {
        self.0.bit(2)
    }
    /// Sets `for-submission`.
    pub fn set_for_submission(&mut self, v: bool) {
        self.0.set_bit(0, v)
    }
    /// Sets `for-transfer`.
    pub fn set_for_transfer(&mut self, v: bool) {
        self.0.set_bit(1, v)
    }
    /// Sets `for-delivery`.
    pub fn set_for_delivery(&mut self, v: bool) {
        self.0.set_bit(2, v)
    }
}

/// One X.411 `ExtensionField`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionField {
    /// `type`.
    pub kind: ExtensionType,
    /// `criticality [1]`; `None` when absent (the default, not critical).
    pub criticality: Option<Criticality>,
    /// `value [2]` (explicitly tagged: an open type): the complete encoding of the value
    /// inside the tag, kept as received. `None` when absent (the default, NULL).
    pub value: Option<Vec<u8>>,
}

impl ExtensionField {
    /// A standard extension, not critical, with the given encoded value.
    pub fn standard(number: i64, value: Vec<u8>) -> Self {
        ExtensionField {
            kind: ExtensionType::Standard(number),
            criticality: None,
            value: Some(value),
        }
    }

    /// Whether this is `standard-extension:number`.
    pub fn is_standard(&self, number: i64) -> bool {
        self.kind == ExtensionType::Standard(number)
    }

    /// Whether it is critical for transfer.
    pub fn critical_for_transfer(&self) -> bool {
        self.criticality
            .as_ref()
            .is_some_and(Criticality::for_transfer)
    }

    /// Decodes one `ExtensionField` SEQUENCE.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SEQUENCE, "ExtensionField")?;
        let mut r = tlv.children()?;
        let t = r.next_required("ExtensionField type")?;
        let kind = match (t.tag.class, t.tag.number, t.tag.constructed) {
            (Class::Context, 0, false) => ExtensionType::Standard(int_in(
                &t,
                0,
                UB_EXTENSION_TYPES,
                "standard extension type",
            )?),
            (Class::Context, 3, false) => ExtensionType::Private(t.oid()?),
            _ => {
                return Err(BerError::Unexpected {
                    expected: "ExtensionType [0] or [3]",
                    found: t.tag,
                }
                .into());
            }
        };
        let criticality = r
            .next_if(Tag::context(1))?
            .map(|c| BitString::decode(&c, "criticality").map(Criticality))
            .transpose()?;
        let value = r
            .next_if(Tag::context(2))?
            .map(|v| v.explicit_inner().map(|i| i.raw.to_vec()))
            .transpose()?;
        r.finish()?;
        Ok(ExtensionField {
            kind,
            criticality,
            value,
        })
    }

    /// Encodes as a SEQUENCE.
    pub fn encode(&self, w: &mut Writer) {
        w.sequence(|w| {
            match &self.kind {
                ExtensionType::Standard(n) => w.integer_tagged(Tag::context(0), *n),
                ExtensionType::Private(oid) => w.oid_tagged(Tag::context(3), oid),
            }
            if let Some(c) = &self.criticality {
                c.0.encode(w, Tag::context(1));
            }
            if let Some(v) = &self.value {
                w.explicit(Tag::context(2), |w| w.raw(v));
            }
        })
    }
}

/// Decodes `[n] SET OF ExtensionField` from its element.
pub(crate) fn decode_extensions(tlv: &Tlv<'_>) -> Result<Vec<ExtensionField>, MtsError> {
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(e) = r.next()? {
        if out.len() >= MAX_EXTENSION_FIELDS {
            return Err(BerError::TooLarge("extensions").into());
        }
        out.push(ExtensionField::decode(&e)?);
    }
    Ok(out)
}

/// Encodes `[n] SET OF ExtensionField`, nothing when the list is empty (the default).
pub(crate) fn encode_extensions(w: &mut Writer, tag: Tag, exts: &[ExtensionField]) {
    if exts.is_empty() {
        return;
    }
    w.constructed(tag, |w| {
        for e in exts {
            e.encode(w);
        }
    });
}

/// The first extension critical for transfer whose type is not in `supported`.
pub(crate) fn first_critical_unsupported<'a>(
    exts: impl IntoIterator<Item = &'a ExtensionField>,
    supported: &[ExtensionType],
) -> Option<&'a ExtensionField> {
    exts.into_iter()
        .find(|e| e.critical_for_transfer() && !supported.contains(&e.kind))
}
