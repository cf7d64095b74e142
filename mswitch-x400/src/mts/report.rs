//! `ReportTransferEnvelope` and `ReportTransferContent` (X.411 §12.2.1.3): delivery and
//! non-delivery reports as they travel between MTAs.

use super::extension::{decode_extensions, encode_extensions};
use super::trace::{decode_trace, encode_trace};
use super::{
    ContentType, ExtensionField, MtsError, MtsIdentifier, ORName, PerRecipientIndicators,
    TraceInformationElement, UB_ADDITIONAL_INFO, UB_CONTENT_ID_LENGTH, UB_DIAGNOSTIC_CODES,
    UB_ENCODED_INFORMATION_TYPES, UB_MTS_USER_TYPES, UB_REASON_CODES, UB_RECIPIENTS,
    UB_SUPPLEMENTARY_INFO_LENGTH, UB_TRANSFERS, UtcTime, int_in, keep_unknown, once, put_str,
    raw_bounded,
};
use crate::ber::{BerError, Class, Tag, Tlv, Writer};

/// X.411 `NonDeliveryReasonCode` values.
pub mod non_delivery_reason {
    /// `transfer-failure`.
    pub const TRANSFER_FAILURE: i64 = 0;
    /// `unable-to-transfer`.
    pub const UNABLE_TO_TRANSFER: i64 = 1;
    /// `conversion-not-performed`.
    pub const CONVERSION_NOT_PERFORMED: i64 = 2;
    /// `physical-rendition-not-performed`.
    pub const PHYSICAL_RENDITION_NOT_PERFORMED: i64 = 3;
    /// `physical-delivery-not-performed`.
    pub const PHYSICAL_DELIVERY_NOT_PERFORMED: i64 = 4;
    /// `restricted-delivery`.
    pub const RESTRICTED_DELIVERY: i64 = 5;
    /// `directory-operation-unsuccessful`.
    pub const DIRECTORY_OPERATION_UNSUCCESSFUL: i64 = 6;
    /// `deferred-delivery-not-performed`.
    pub const DEFERRED_DELIVERY_NOT_PERFORMED: i64 = 7;
    /// `transfer-failure-for-security-reason`.
    pub const TRANSFER_FAILURE_FOR_SECURITY_REASON: i64 = 8;
}

/// X.411 `NonDeliveryDiagnosticCode` values (the ones an MTA uses; the list goes on to 78
/// with physical delivery and security diagnostics).
pub mod non_delivery_diagnostic {
    /// `unrecognised-OR-name`.
    pub const UNRECOGNISED_OR_NAME: i64 = 0;
    /// `ambiguous-OR-name`.
    pub const AMBIGUOUS_OR_NAME: i64 = 1;
    /// `mts-congestion`.
    pub const MTS_CONGESTION: i64 = 2;
    /// `loop-detected`.
    pub const LOOP_DETECTED: i64 = 3;
    /// `recipient-unavailable`.
    pub const RECIPIENT_UNAVAILABLE: i64 = 4;
    /// `maximum-time-expired`.
    pub const MAXIMUM_TIME_EXPIRED: i64 = 5;
    /// `encoded-information-types-unsupported`.
    pub const ENCODED_INFORMATION_TYPES_UNSUPPORTED: i64 = 6;
    /// `content-too-long`.
    pub const CONTENT_TOO_LONG: i64 = 7;
    /// `conversion-impractical`.
    pub const CONVERSION_IMPRACTICAL: i64 = 8;
    /// `implicit-conversion-prohibited`.
    pub const IMPLICIT_CONVERSION_PROHIBITED: i64 = 9;
    /// `implicit-conversion-not-subscribed`.
    pub const IMPLICIT_CONVERSION_NOT_SUBSCRIBED: i64 = 10;
    /// `invalid-arguments`.
    pub const INVALID_ARGUMENTS: i64 = 11;
    /// `content-syntax-error`.
    pub const CONTENT_SYNTAX_ERROR: i64 = 12;
    /// `size-constraint-violation`.
    pub const SIZE_CONSTRAINT_VIOLATION: i64 = 13;
    /// `protocol-violation`.
    pub const PROTOCOL_VIOLATION: i64 = 14;
    /// `content-type-not-supported`.
    pub const CONTENT_TYPE_NOT_SUPPORTED: i64 = 15;
    /// `too-many-recipients`.
    pub const TOO_MANY_RECIPIENTS: i64 = 16;
    /// `no-bilateral-agreement`.
    pub const NO_BILATERAL_AGREEMENT: i64 = 17;
    /// `unsupported-critical-function`.
    pub const UNSUPPORTED_CRITICAL_FUNCTION: i64 = 18;
    /// `conversion-with-loss-prohibited`.
    pub const CONVERSION_WITH_LOSS_PROHIBITED: i64 = 19;
    /// `line-too-long`.
    pub const LINE_TOO_LONG: i64 = 20;
    /// `page-split`.
    pub const PAGE_SPLIT: i64 = 21;
    /// `pictorial-symbol-loss`.
    pub const PICTORIAL_SYMBOL_LOSS: i64 = 22;
    /// `punctuation-symbol-loss`.
    pub const PUNCTUATION_SYMBOL_LOSS: i64 = 23;
    /// `alphabetic-character-loss`.
    pub const ALPHABETIC_CHARACTER_LOSS: i64 = 24;
    /// `multiple-information-loss`.
    pub const MULTIPLE_INFORMATION_LOSS: i64 = 25;
    /// `recipient-reassignment-prohibited`.
    pub const RECIPIENT_REASSIGNMENT_PROHIBITED: i64 = 26;
    /// `redirection-loop-detected`.
    pub const REDIRECTION_LOOP_DETECTED: i64 = 27;
    /// `dl-expansion-prohibited`.
    pub const DL_EXPANSION_PROHIBITED: i64 = 28;
    /// `no-dl-submit-permission`.
    pub const NO_DL_SUBMIT_PERMISSION: i64 = 29;
    /// `dl-expansion-failure`.
    pub const DL_EXPANSION_FAILURE: i64 = 30;
    /// `physical-rendition-attributes-not-supported`.
    pub const PHYSICAL_RENDITION_ATTRIBUTES_NOT_SUPPORTED: i64 = 31;
    /// `secure-messaging-error`.
    pub const SECURE_MESSAGING_ERROR: i64 = 46;
    /// `unable-to-downgrade`.
    pub const UNABLE_TO_DOWNGRADE: i64 = 47;
    /// `unable-to-complete-transfer`.
    pub const UNABLE_TO_COMPLETE_TRANSFER: i64 = 48;
    /// `transfer-attempts-limit-reached`.
    pub const TRANSFER_ATTEMPTS_LIMIT_REACHED: i64 = 49;
    /// `incorrect-notification-type`.
    pub const INCORRECT_NOTIFICATION_TYPE: i64 = 50;
    /// `security-policy-violation`.
    pub const SECURITY_POLICY_VIOLATION: i64 = 53;
}

/// X.411 `TypeOfMTSUser` values.
pub mod type_of_mts_user {
    /// `public`, the default.
    pub const PUBLIC: i64 = 0;
    /// `private`.
    pub const PRIVATE: i64 = 1;
    /// `ms` (message store).
    pub const MS: i64 = 2;
    /// `dl` (distribution list).
    pub const DL: i64 = 3;
    /// `pdau` (physical delivery access unit).
    pub const PDAU: i64 = 4;
    /// `physical-recipient`.
    pub const PHYSICAL_RECIPIENT: i64 = 5;
    /// `other`.
    pub const OTHER: i64 = 6;
}

/// X.411 `ReportType`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReportType {
    /// `delivery [0] DeliveryReport`.
    Delivery {
        /// `message-delivery-time [0]`.
        message_delivery_time: UtcTime,
        /// `type-of-MTS-user [1]`; `None` when absent (the default, public).
        type_of_mts_user: Option<i64>,
    },
    /// `non-delivery [1] NonDeliveryReport`.
    NonDelivery {
        /// `non-delivery-reason-code [0]` (see [`non_delivery_reason`]).
        reason_code: i64,
        /// `non-delivery-diagnostic-code [1]` (see [`non_delivery_diagnostic`]).
        diagnostic_code: Option<i64>,
    },
}

impl ReportType {
    pub(crate) fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        match (tlv.tag.class, tlv.tag.number) {
            (Class::Context, 0) => {
                let (mut a, mut b) = (None, None);
                while let Some(t) = r.next()? {
                    match (t.tag.class, t.tag.number) {
                        (Class::Context, 0) => {
                            once(&mut a, UtcTime::decode(&t)?, "message-delivery-time")?
                        }
                        (Class::Context, 1) => once(
                            &mut b,
                            int_in(&t, 0, UB_MTS_USER_TYPES, "type-of-MTS-user")?,
                            "type-of-MTS-user",
                        )?,
                        _ => {
                            return Err(BerError::Unexpected {
                                expected: "DeliveryReport component",
                                found: t.tag,
                            }
                            .into());
                        }
                    }
                }
                Ok(ReportType::Delivery {
                    message_delivery_time: a.ok_or(BerError::Missing("message-delivery-time"))?,
                    type_of_mts_user: b,
                })
            }
            (Class::Context, 1) => {
                let (mut a, mut b) = (None, None);
                while let Some(t) = r.next()? {
                    match (t.tag.class, t.tag.number) {
                        (Class::Context, 0) => once(
                            &mut a,
                            int_in(&t, 0, UB_REASON_CODES, "non-delivery-reason-code")?,
                            "non-delivery-reason-code",
                        )?,
                        (Class::Context, 1) => once(
                            &mut b,
                            int_in(&t, 0, UB_DIAGNOSTIC_CODES, "non-delivery-diagnostic-code")?,
                            "non-delivery-diagnostic-code",
                        )?,
                        _ => {
                            return Err(BerError::Unexpected {
                                expected: "NonDeliveryReport component",
                                found: t.tag,
                            }
                            .into());
                        }
                    }
                }
                Ok(ReportType::NonDelivery {
                    reason_code: a.ok_or(BerError::Missing("non-delivery-reason-code"))?,
                    diagnostic_code: b,
                })
            }
            _ => Err(BerError::Unexpected {
                expected: "ReportType [0] or [1]",
                found: tlv.tag,
            }
            .into()),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            ReportType::Delivery {
                message_delivery_time,
                type_of_mts_user,
            } => w.constructed(Tag::context(0), |w| {
                message_delivery_time.encode(w, Tag::context(0));
                if let Some(t) = type_of_mts_user {
                    w.integer_tagged(Tag::context(1), *t);
                }
            }),
            ReportType::NonDelivery {
                reason_code,
                diagnostic_code,
            } => w.constructed(Tag::context(1), |w| {
                w.integer_tagged(Tag::context(0), *reason_code);
                if let Some(d) = diagnostic_code {
                    w.integer_tagged(Tag::context(1), *d);
                }
            }),
        }
    }
}

/// X.411 `LastTraceInformation`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LastTraceInformation {
    /// `arrival-time [0]`.
    pub arrival_time: UtcTime,
    /// `converted-encoded-information-types`, kept whole.
    pub converted_eits: Option<Vec<u8>>,
    /// `report-type [1]` (explicit: a CHOICE).
    pub report_type: ReportType,
}

impl LastTraceInformation {
    fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let (mut arrival, mut eits, mut rt) = (None, None, None);
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => once(&mut arrival, UtcTime::decode(&t)?, "arrival-time")?,
                (Class::Application, 5) => once(
                    &mut eits,
                    raw_bounded(
                        &t,
                        UB_ENCODED_INFORMATION_TYPES,
                        "converted-encoded-information-types",
                    )?,
                    "converted-encoded-information-types",
                )?,
                (Class::Context, 1) => once(
                    &mut rt,
                    ReportType::decode(&t.explicit_inner()?)?,
                    "report-type",
                )?,
                _ => {
                    return Err(BerError::Unexpected {
                        expected: "LastTraceInformation component",
                        found: t.tag,
                    }
                    .into());
                }
            }
        }
        Ok(LastTraceInformation {
            arrival_time: arrival.ok_or(BerError::Missing("arrival-time"))?,
            converted_eits: eits,
            report_type: rt.ok_or(BerError::Missing("report-type"))?,
        })
    }

    fn encode(&self, w: &mut Writer, tag: Tag) {
        w.constructed(tag, |w| {
            self.arrival_time.encode(w, Tag::context(0));
            if let Some(e) = &self.converted_eits {
                w.raw(e);
            }
            w.explicit(Tag::context(1), |w| self.report_type.encode(w));
        })
    }
}

/// X.411 `PerRecipientReportTransferFields`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerRecipientReportTransferFields {
    /// `actual-recipient-name [0]`.
    pub actual_recipient_name: ORName,
    /// `originally-specified-recipient-number [1]`.
    pub originally_specified_recipient_number: i64,
    /// `per-recipient-indicators [2]`.
    pub per_recipient_indicators: PerRecipientIndicators,
    /// `last-trace-information [3]`.
    pub last_trace_information: LastTraceInformation,
    /// `originally-intended-recipient-name [4]`.
    pub originally_intended_recipient_name: Option<ORName>,
    /// `supplementary-information [5]` (PrintableString).
    pub supplementary_information: Option<String>,
    /// `extensions [6]`.
    pub extensions: Vec<ExtensionField>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl PerRecipientReportTransferFields {
    /// Decodes one SET.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "PerRecipientReportTransferFields")?;
        let mut r = tlv.children()?;
        let (mut name, mut num, mut ind, mut last, mut oirn, mut sup, mut ext) =
            (None, None, None, None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => once(
                    &mut name,
                    ORName::decode_implicit(&t)?,
                    "actual-recipient-name",
                )?,
                (Class::Context, 1) => once(
                    &mut num,
                    int_in(
                        &t,
                        1,
                        UB_RECIPIENTS as i64,
                        "originally-specified-recipient-number",
                    )?,
                    "originally-specified-recipient-number",
                )?,
                (Class::Context, 2) => once(
                    &mut ind,
                    PerRecipientIndicators::decode(&t)?,
                    "per-recipient-indicators",
                )?,
                (Class::Context, 3) => once(
                    &mut last,
                    LastTraceInformation::decode(&t)?,
                    "last-trace-information",
                )?,
                (Class::Context, 4) => once(
                    &mut oirn,
                    ORName::decode_implicit(&t)?,
                    "originally-intended-recipient-name",
                )?,
                (Class::Context, 5) => once(
                    &mut sup,
                    t.string("supplementary-information", UB_SUPPLEMENTARY_INFO_LENGTH)?,
                    "supplementary-information",
                )?,
                (Class::Context, 6) => once(&mut ext, decode_extensions(&t)?, "extensions")?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(PerRecipientReportTransferFields {
            actual_recipient_name: name.ok_or(BerError::Missing("actual-recipient-name"))?,
            originally_specified_recipient_number: num
                .ok_or(BerError::Missing("originally-specified-recipient-number"))?,
            per_recipient_indicators: ind.ok_or(BerError::Missing("per-recipient-indicators"))?,
            last_trace_information: last.ok_or(BerError::Missing("last-trace-information"))?,
            originally_intended_recipient_name: oirn,
            supplementary_information: sup,
            extensions: ext.unwrap_or_default(),
            unknown,
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.try_constructed(Tag::SET, |w| {
            self.actual_recipient_name
                .encode_implicit(w, Tag::context(0).constructed())?;
            w.integer_tagged(Tag::context(1), self.originally_specified_recipient_number);
            self.per_recipient_indicators.0.encode(w, Tag::context(2));
            self.last_trace_information
                .encode(w, Tag::context(3).constructed());
            if let Some(n) = &self.originally_intended_recipient_name {
                n.encode_implicit(w, Tag::context(4).constructed())?;
            }
            if let Some(s) = &self.supplementary_information {
                put_str(
                    w,
                    Tag::context(5),
                    s,
                    UB_SUPPLEMENTARY_INFO_LENGTH,
                    "supplementary-information",
                )?;
            }
            encode_extensions(w, Tag::context(6).constructed(), &self.extensions);
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}

/// X.411 `ReportTransferEnvelope`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportTransferEnvelope {
    /// `report-identifier`.
    pub report_identifier: MtsIdentifier,
    /// `report-destination-name`.
    pub report_destination_name: ORName,
    /// `trace-information`.
    pub trace_information: Vec<TraceInformationElement>,
    /// `extensions [1]`.
    pub extensions: Vec<ExtensionField>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl ReportTransferEnvelope {
    /// Decodes from its SET element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "ReportTransferEnvelope")?;
        let mut r = tlv.children()?;
        let (mut id, mut dest, mut trace, mut ext) = (None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Application, 4) => {
                    once(&mut id, MtsIdentifier::decode(&t)?, "report-identifier")?
                }
                (Class::Application, 0) => {
                    once(&mut dest, ORName::decode(&t)?, "report-destination-name")?
                }
                (Class::Application, 9) => {
                    once(&mut trace, decode_trace(&t)?, "trace-information")?
                }
                (Class::Context, 1) => once(&mut ext, decode_extensions(&t)?, "extensions")?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(ReportTransferEnvelope {
            report_identifier: id.ok_or(BerError::Missing("report-identifier"))?,
            report_destination_name: dest.ok_or(BerError::Missing("report-destination-name"))?,
            trace_information: trace.ok_or(BerError::Missing("trace-information"))?,
            extensions: ext.unwrap_or_default(),
            unknown,
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.try_constructed(Tag::SET, |w| {
            self.report_identifier.encode(w)?;
            self.report_destination_name.encode(w)?;
            encode_trace(w, &self.trace_information)?;
            encode_extensions(w, Tag::context(1).constructed(), &self.extensions);
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }

    /// Appends a trace element; fails at [`UB_TRANSFERS`].
    pub fn append_trace(&mut self, element: TraceInformationElement) -> Result<(), MtsError> {
        if self.trace_information.len() >= UB_TRANSFERS {
            return Err(MtsError::encode(
                "trace-information",
                "ub-transfers elements already",
            ));
        }
        self.trace_information.push(element);
        Ok(())
    }
}

/// X.411 `ReportTransferContent` (a SET including `COMPONENTS OF PerReportTransferFields`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportTransferContent {
    /// `subject-identifier`: the message or probe reported on.
    pub subject_identifier: MtsIdentifier,
    /// `subject-intermediate-trace-information` (empty when absent).
    pub subject_intermediate_trace: Vec<TraceInformationElement>,
    /// `original-encoded-information-types`, kept whole.
    pub original_eits: Option<Vec<u8>>,
    /// `content-type`.
    pub content_type: Option<ContentType>,
    /// `content-identifier`.
    pub content_identifier: Option<String>,
    /// `returned-content [1]`.
    pub returned_content: Option<Vec<u8>>,
    /// `additional-information [2]` (an open type), the whole element kept as received.
    pub additional_information: Option<Vec<u8>>,
    /// `extensions [3]`.
    pub extensions: Vec<ExtensionField>,
    /// `per-recipient-fields [0]`.
    pub per_recipient_fields: Vec<PerRecipientReportTransferFields>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl ReportTransferContent {
    /// Decodes from its SET element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "ReportTransferContent")?;
        let mut r = tlv.children()?;
        let (mut id, mut trace, mut eits, mut ct, mut ci) = (None, None, None, None, None);
        let (mut ret, mut add, mut ext, mut recips) = (None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Application, 4) => {
                    once(&mut id, MtsIdentifier::decode(&t)?, "subject-identifier")?
                }
                (Class::Application, 9) => once(
                    &mut trace,
                    decode_trace(&t)?,
                    "subject-intermediate-trace-information",
                )?,
                (Class::Application, 5) => once(
                    &mut eits,
                    raw_bounded(
                        &t,
                        UB_ENCODED_INFORMATION_TYPES,
                        "original-encoded-information-types",
                    )?,
                    "original-encoded-information-types",
                )?,
                _ if ContentType::is_tag(t.tag) => {
                    once(&mut ct, ContentType::decode(&t)?, "content-type")?
                }
                (Class::Application, 10) => once(
                    &mut ci,
                    t.string("content-identifier", UB_CONTENT_ID_LENGTH)?,
                    "content-identifier",
                )?,
                (Class::Context, 1) => {
                    once(&mut ret, t.octets()?.into_owned(), "returned-content")?
                }
                (Class::Context, 2) => once(
                    &mut add,
                    raw_bounded(&t, UB_ADDITIONAL_INFO + 8, "additional-information")?,
                    "additional-information",
                )?,
                (Class::Context, 3) => once(&mut ext, decode_extensions(&t)?, "extensions")?,
                (Class::Context, 0) => {
                    let mut c = t.children()?;
                    let mut v = Vec::new();
                    while let Some(p) = c.next()? {
                        if v.len() >= UB_RECIPIENTS {
                            return Err(BerError::TooLarge("per-recipient-fields").into());
                        }
                        v.push(PerRecipientReportTransferFields::decode(&p)?);
                    }
                    if v.is_empty() {
                        return Err(BerError::Missing("per-recipient-fields element").into());
                    }
                    once(&mut recips, v, "per-recipient-fields")?
                }
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(ReportTransferContent {
            subject_identifier: id.ok_or(BerError::Missing("subject-identifier"))?,
            subject_intermediate_trace: trace.unwrap_or_default(),
            original_eits: eits,
            content_type: ct,
            content_identifier: ci,
            returned_content: ret,
            additional_information: add,
            extensions: ext.unwrap_or_default(),
            per_recipient_fields: recips.ok_or(BerError::Missing("per-recipient-fields"))?,
            unknown,
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        if self.per_recipient_fields.is_empty() || self.per_recipient_fields.len() > UB_RECIPIENTS {
            return Err(MtsError::encode(
                "per-recipient-fields",
                "needs 1 to ub-recipients recipients",
            ));
        }
        w.try_constructed(Tag::SET, |w| {
            self.subject_identifier.encode(w)?;
            if !self.subject_intermediate_trace.is_empty() {
                encode_trace(w, &self.subject_intermediate_trace)?;
            }
            if let Some(e) = &self.original_eits {
                w.raw(e);
            }
            if let Some(ct) = &self.content_type {
                ct.encode(w);
            }
            if let Some(ci) = &self.content_identifier {
                put_str(
                    w,
                    Tag::application(10),
                    ci,
                    UB_CONTENT_ID_LENGTH,
                    "content-identifier",
                )?;
            }
            if let Some(c) = &self.returned_content {
                w.octets(Tag::context(1), c);
            }
            if let Some(a) = &self.additional_information {
                w.raw(a);
            }
            encode_extensions(w, Tag::context(3).constructed(), &self.extensions);
            w.try_constructed(Tag::context(0), |w| {
                for r in &self.per_recipient_fields {
                    r.encode(w)?;
                }
                Ok::<(), MtsError>(())
            })?;
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}
