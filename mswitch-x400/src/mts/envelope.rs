//! `MessageTransferEnvelope` and `ProbeTransferEnvelope` (X.411 §12.2.1.1, §12.2.1.2): SETs
//! that include `COMPONENTS OF PerMessageTransferFields` (or `PerProbeTransferFields`), so
//! every per-message field and the per-recipient fields are elements of one SET.

use super::extension::{decode_extensions, encode_extensions, first_critical_unsupported};
use super::trace::{decode_internal_trace, decode_trace, encode_internal_trace, encode_trace};
use super::{
    BitString, ContentType, ExtensionField, ExtensionType, InternalTraceInformationElement,
    MtsError, MtsIdentifier, ORName, Priority, TraceInformationElement, UB_BILATERAL_INFO,
    UB_CONTENT_ID_LENGTH, UB_CONTENT_LENGTH, UB_ENCODED_INFORMATION_TYPES, UB_INTEGER_OPTIONS,
    UB_RECIPIENTS, UB_TRANSFERS, UtcTime, int_in, keep_unknown, once, put_str, raw_bounded,
    standard_extension,
};
use crate::ber::{BerError, Class, Tag, Tlv, Writer, parse_one};

/// X.411 `PerMessageIndicators ::= [APPLICATION 8] BIT STRING`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PerMessageIndicators(pub BitString);

impl PerMessageIndicators {
    /// `disclosure-of-other-recipients (0)`.
    pub fn disclosure_of_other_recipients(&self) -> bool {
        self.0.bit(0)
    }
    /// `implicit-conversion-prohibited (1)`.
    pub fn implicit_conversion_prohibited(&self) -> bool {
        self.0.bit(1)
    }
    /// `alternate-recipient-allowed (2)`.
    pub fn alternate_recipient_allowed(&self) -> bool {
        self.0.bit(2)
    }
    /// `content-return-request (3)`.
    pub fn content_return_request(&self) -> bool {
        self.0.bit(3)
    }
    /// `service-message (7)`.
    pub fn service_message(&self) -> bool {
        self.0.bit(7)
    }
    /// Sets `disclosure-of-other-recipients`.
    pub fn set_disclosure_of_other_recipients(&mut self, v: bool) {
        self.0.set_bit(0, v)
    }
    /// Sets `implicit-conversion-prohibited`.
    pub fn set_implicit_conversion_prohibited(&mut self, v: bool) {
        self.0.set_bit(1, v)
    }
    /// Sets `alternate-recipient-allowed`.
    pub fn set_alternate_recipient_allowed(&mut self, v: bool) {
        self.0.set_bit(2, v)
    }
    /// Sets `content-return-request`.
    pub fn set_content_return_request(&mut self, v: bool) {
        self.0.set_bit(3, v)
    }
    /// Sets `service-message`.
    pub fn set_service_message(&mut self, v: bool) {
        self.0.set_bit(7, v)
    }

    /// The tag, `[APPLICATION 8]`.
    pub const TAG: Tag = Tag::application(8);
}

/// X.411 `PerRecipientIndicators ::= BIT STRING (SIZE (8..ub-bit-options))`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerRecipientIndicators(pub BitString);

impl Default for PerRecipientIndicators {
    /// Eight zero bits (the minimum size).
    fn default() -> Self {
        PerRecipientIndicators(BitString::zeros(8))
    }
}

impl PerRecipientIndicators {
    /// `responsibility (0)`: this MTA is responsible for the recipient.
    pub fn responsibility(&self) -> bool {
        self.0.bit(0)
    }
    /// `originating-MTA-report (1)`.
    pub fn originating_mta_report(&self) -> bool {
        self.0.bit(1)
    }
    /// `originating-MTA-non-delivery-report (2)`.
    pub fn originating_mta_non_delivery_report(&self) -> bool {
        self.0.bit(2)
    }
    /// `originator-report (3)`.
    pub fn originator_report(&self) -> bool {
        self.0.bit(3)
    }
    /// `originator-non-delivery-report (4)`.
    pub fn originator_non_delivery_report(&self) -> bool {
        self.0.bit(4)
    }
    /// Sets `responsibility`.
    pub fn set_responsibility(&mut self, v: bool) {
        self.0.set_bit(0, v)
    }
    /// Sets `originating-MTA-report`.
    pub fn set_originating_mta_report(&mut self, v: bool) {
        self.0.set_bit(1, v)
    }
    /// Sets `originating-MTA-non-delivery-report`.
    pub fn set_originating_mta_non_delivery_report(&mut self, v: bool) {
        self.0.set_bit(2, v)
    }
    /// Sets `originator-report`.
    pub fn set_originator_report(&mut self, v: bool) {
        self.0.set_bit(3, v)
    }
    /// Sets `originator-non-delivery-report`.
    pub fn set_originator_non_delivery_report(&mut self, v: bool) {
        self.0.set_bit(4, v)
    }

    pub(crate) fn decode(tlv: &Tlv<'_>) -> Result<Self, BerError> {
        Ok(PerRecipientIndicators(BitString::decode(
            tlv,
            "per-recipient-indicators",
        )?))
    }
}

/// X.411 `PerRecipientMessageTransferFields`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerRecipientMessageTransferFields {
    /// `recipient-name`.
    pub recipient_name: ORName,
    /// `originally-specified-recipient-number [0]` (1..=[`UB_RECIPIENTS`]).
    pub originally_specified_recipient_number: i64,
    /// `per-recipient-indicators [1]`.
    pub per_recipient_indicators: PerRecipientIndicators,
    /// `explicit-conversion [2]`.
    pub explicit_conversion: Option<i64>,
    /// `extensions [3]`.
    pub extensions: Vec<ExtensionField>,
    /// Elements of the SET we do not recognise, kept whole and re-emitted after the others.
    pub unknown: Vec<Vec<u8>>,
}

/// X.411 `PerRecipientProbeTransferFields`: the same components as
/// [`PerRecipientMessageTransferFields`].
pub type PerRecipientProbeTransferFields = PerRecipientMessageTransferFields;

impl PerRecipientMessageTransferFields {
    /// Fields for a recipient: the given number, indicators with `responsibility` set and no
    /// report requested of the originating MTA beyond non-delivery.
    pub fn new(recipient_name: ORName, number: i64) -> Self {
        let mut ind = PerRecipientIndicators::default();
        ind.set_responsibility(true);
        ind.set_originating_mta_non_delivery_report(true);
        PerRecipientMessageTransferFields {
            recipient_name,
            originally_specified_recipient_number: number,
            per_recipient_indicators: ind,
            explicit_conversion: None,
            extensions: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Decodes one SET.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "PerRecipientMessageTransferFields")?;
        let mut r = tlv.children()?;
        let (mut name, mut num, mut ind, mut conv, mut ext) = (None, None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Application, 0) => once(&mut name, ORName::decode(&t)?, "recipient-name")?,
                (Class::Context, 0) => once(
                    &mut num,
                    int_in(
                        &t,
                        1,
                        UB_RECIPIENTS as i64,
                        "originally-specified-recipient-number",
                    )?,
                    "originally-specified-recipient-number",
                )?,
                (Class::Context, 1) => once(
                    &mut ind,
                    PerRecipientIndicators::decode(&t)?,
                    "per-recipient-indicators",
                )?,
                (Class::Context, 2) => once(
                    &mut conv,
                    int_in(&t, 0, UB_INTEGER_OPTIONS, "explicit-conversion")?,
                    "explicit-conversion",
                )?,
                (Class::Context, 3) => once(&mut ext, decode_extensions(&t)?, "extensions")?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(PerRecipientMessageTransferFields {
            recipient_name: name.ok_or(BerError::Missing("recipient-name"))?,
            originally_specified_recipient_number: num
                .ok_or(BerError::Missing("originally-specified-recipient-number"))?,
            per_recipient_indicators: ind.ok_or(BerError::Missing("per-recipient-indicators"))?,
            explicit_conversion: conv,
            extensions: ext.unwrap_or_default(),
            unknown,
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.try_constructed(Tag::SET, |w| {
            self.recipient_name.encode(w)?;
            w.integer_tagged(Tag::context(0), self.originally_specified_recipient_number);
            self.per_recipient_indicators.0.encode(w, Tag::context(1));
            if let Some(c) = self.explicit_conversion {
                w.integer_tagged(Tag::context(2), c);
            }
            encode_extensions(w, Tag::context(3).constructed(), &self.extensions);
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}

/// The fields shared by the message and probe envelopes, while decoding.
#[derive(Default)]
struct Common {
    identifier: Option<MtsIdentifier>,
    originator: Option<ORName>,
    eits: Option<Vec<u8>>,
    content_type: Option<ContentType>,
    content_identifier: Option<String>,
    indicators: Option<PerMessageIndicators>,
    bilateral: Option<Vec<u8>>,
    trace: Option<Vec<TraceInformationElement>>,
    extensions: Option<Vec<ExtensionField>>,
    recipients: Option<Vec<PerRecipientMessageTransferFields>>,
}

impl Common {
    /// Takes `t` if it is one of the shared elements; `Ok(false)` if not.
    fn take(&mut self, t: &Tlv<'_>, what: &'static str) -> Result<bool, MtsError> {
        match (t.tag.class, t.tag.number) {
            (Class::Application, 4) => once(&mut self.identifier, MtsIdentifier::decode(t)?, what)?,
            (Class::Application, 0) => {
                once(&mut self.originator, ORName::decode(t)?, "originator-name")?
            }
            (Class::Application, 5) => once(
                &mut self.eits,
                raw_bounded(
                    t,
                    UB_ENCODED_INFORMATION_TYPES,
                    "original-encoded-information-types",
                )?,
                "original-encoded-information-types",
            )?,
            _ if ContentType::is_tag(t.tag) => once(
                &mut self.content_type,
                ContentType::decode(t)?,
                "content-type",
            )?,
            (Class::Application, 10) => once(
                &mut self.content_identifier,
                t.string("content-identifier", UB_CONTENT_ID_LENGTH)?,
                "content-identifier",
            )?,
            (Class::Application, 8) => once(
                &mut self.indicators,
                PerMessageIndicators(BitString::decode(t, "per-message-indicators")?),
                "per-message-indicators",
            )?,
            (Class::Context, 1) => once(
                &mut self.bilateral,
                raw_bounded(
                    t,
                    UB_TRANSFERS * UB_BILATERAL_INFO,
                    "per-domain-bilateral-information",
                )?,
                "per-domain-bilateral-information",
            )?,
            (Class::Application, 9) => {
                once(&mut self.trace, decode_trace(t)?, "trace-information")?
            }
            (Class::Context, 3) => once(&mut self.extensions, decode_extensions(t)?, "extensions")?,
            (Class::Context, 2) => {
                let mut r = t.children()?;
                let mut v = Vec::new();
                while let Some(p) = r.next()? {
                    if v.len() >= UB_RECIPIENTS {
                        return Err(BerError::TooLarge("per-recipient-fields").into());
                    }
                    v.push(PerRecipientMessageTransferFields::decode(&p)?);
                }
                if v.is_empty() {
                    return Err(BerError::Missing("per-recipient-fields element").into());
                }
                once(&mut self.recipients, v, "per-recipient-fields")?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn encode_recipients(
    w: &mut Writer,
    recipients: &[PerRecipientMessageTransferFields],
) -> Result<(), MtsError> {
    if recipients.is_empty() || recipients.len() > UB_RECIPIENTS {
        return Err(MtsError::encode(
            "per-recipient-fields",
            "needs 1 to ub-recipients recipients",
        ));
    }
    w.try_constructed(Tag::context(2), |w| {
        for r in recipients {
            r.encode(w)?;
        }
        Ok(())
    })
}

/// The value of standard extension `n` among `exts`, as a parsed element.
fn extension_value(exts: &[ExtensionField], n: i64) -> Option<&[u8]> {
    exts.iter()
        .find(|e| e.is_standard(n))
        .and_then(|e| e.value.as_deref())
}

fn internal_trace_of(
    exts: &[ExtensionField],
) -> Result<Vec<InternalTraceInformationElement>, MtsError> {
    match extension_value(exts, standard_extension::INTERNAL_TRACE_INFORMATION) {
        Some(v) => decode_internal_trace(&parse_one(v)?),
        None => Ok(Vec::new()),
    }
}

fn set_internal_trace_in(
    exts: &mut Vec<ExtensionField>,
    trace: &[InternalTraceInformationElement],
) -> Result<(), MtsError> {
    let n = standard_extension::INTERNAL_TRACE_INFORMATION;
    if trace.is_empty() {
        exts.retain(|e| !e.is_standard(n));
        return Ok(());
    }
    let value = encode_internal_trace(trace)?;
    match exts.iter_mut().find(|e| e.is_standard(n)) {
        Some(e) => e.value = Some(value),
        None => exts.push(ExtensionField::standard(n, value)),
    }
    Ok(())
}

fn append_internal_trace_in(
    exts: &mut Vec<ExtensionField>,
    element: InternalTraceInformationElement,
) -> Result<(), MtsError> {
    let mut t = internal_trace_of(exts)?;
    if t.len() >= UB_TRANSFERS {
        return Err(MtsError::encode(
            "internal-trace-information",
            "ub-transfers elements already",
        ));
    }
    t.push(element);
    set_internal_trace_in(exts, &t)
}

fn append_trace_to(
    trace: &mut Vec<TraceInformationElement>,
    element: TraceInformationElement,
) -> Result<(), MtsError> {
    if trace.len() >= UB_TRANSFERS {
        return Err(MtsError::encode(
            "trace-information",
            "ub-transfers elements already",
        ));
    }
    trace.push(element);
    Ok(())
}

/// X.411 `MessageTransferEnvelope`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageTransferEnvelope {
    /// `message-identifier`.
    pub message_identifier: MtsIdentifier,
    /// `originator-name`.
    pub originator_name: ORName,
    /// `original-encoded-information-types` (`[APPLICATION 5]`), kept whole.
    pub original_eits: Option<Vec<u8>>,
    /// `content-type`.
    pub content_type: ContentType,
    /// `content-identifier` (`[APPLICATION 10]` PrintableString).
    pub content_identifier: Option<String>,
    /// `priority`; `None` when absent (the default, normal).
    pub priority: Option<Priority>,
    /// `per-message-indicators`; `None` when absent (the default, no bit set).
    pub per_message_indicators: Option<PerMessageIndicators>,
    /// `deferred-delivery-time [0]`.
    pub deferred_delivery_time: Option<UtcTime>,
    /// `per-domain-bilateral-information [1]`, the whole element kept as received.
    pub per_domain_bilateral_information: Option<Vec<u8>>,
    /// `trace-information`, oldest first.
    pub trace_information: Vec<TraceInformationElement>,
    /// `extensions [3]` (an empty list is sent as absent, the default).
    pub extensions: Vec<ExtensionField>,
    /// `per-recipient-fields [2]`.
    pub per_recipient_fields: Vec<PerRecipientMessageTransferFields>,
    /// Elements of the SET we do not recognise, kept whole and re-emitted after the others.
    pub unknown: Vec<Vec<u8>>,
}

impl MessageTransferEnvelope {
    /// Decodes from its SET element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "MessageTransferEnvelope")?;
        let mut c = Common::default();
        let (mut priority, mut deferred) = (None, None);
        let mut unknown = Vec::new();
        let mut r = tlv.children()?;
        while let Some(t) = r.next()? {
            if c.take(&t, "message-identifier")? {
                continue;
            }
            match (t.tag.class, t.tag.number) {
                (Class::Application, 7) => once(&mut priority, Priority::decode(&t)?, "priority")?,
                (Class::Context, 0) => once(
                    &mut deferred,
                    UtcTime::decode(&t)?,
                    "deferred-delivery-time",
                )?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(MessageTransferEnvelope {
            message_identifier: c
                .identifier
                .ok_or(BerError::Missing("message-identifier"))?,
            originator_name: c.originator.ok_or(BerError::Missing("originator-name"))?,
            original_eits: c.eits,
            content_type: c.content_type.ok_or(BerError::Missing("content-type"))?,
            content_identifier: c.content_identifier,
            priority,
            per_message_indicators: c.indicators,
            deferred_delivery_time: deferred,
            per_domain_bilateral_information: c.bilateral,
            trace_information: c.trace.ok_or(BerError::Missing("trace-information"))?,
            extensions: c.extensions.unwrap_or_default(),
            per_recipient_fields: c
                .recipients
                .ok_or(BerError::Missing("per-recipient-fields"))?,
            unknown,
        })
    }

    /// Encodes as a SET, the elements in their ASN.1 order, unknown ones last.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.try_constructed(Tag::SET, |w| {
            self.message_identifier.encode(w)?;
            self.originator_name.encode(w)?;
            if let Some(e) = &self.original_eits {
                w.raw(e);
            }
            self.content_type.encode(w);
            if let Some(ci) = &self.content_identifier {
                put_str(
                    w,
                    Tag::application(10),
                    ci,
                    UB_CONTENT_ID_LENGTH,
                    "content-identifier",
                )?;
            }
            if let Some(p) = self.priority {
                p.encode(w);
            }
            if let Some(i) = &self.per_message_indicators {
                i.0.encode(w, PerMessageIndicators::TAG);
            }
            if let Some(d) = &self.deferred_delivery_time {
                d.encode(w, Tag::context(0));
            }
            if let Some(b) = &self.per_domain_bilateral_information {
                w.raw(b);
            }
            encode_trace(w, &self.trace_information)?;
            encode_extensions(w, Tag::context(3).constructed(), &self.extensions);
            encode_recipients(w, &self.per_recipient_fields)?;
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }

    /// The priority, the default (normal) when absent.
    pub fn priority_or_default(&self) -> Priority {
        self.priority.unwrap_or_default()
    }

    /// The `latest-delivery-time` extension (standard extension 5), if present.
    pub fn latest_delivery_time(&self) -> Result<Option<UtcTime>, MtsError> {
        match extension_value(&self.extensions, standard_extension::LATEST_DELIVERY_TIME) {
            Some(v) => {
                let t = parse_one(v)?.expect(Tag::UTC_TIME, "latest-delivery-time")?;
                Ok(Some(UtcTime::decode(&t)?))
            }
            None => Ok(None),
        }
    }

    /// The `internal-trace-information` extension (standard extension 38), empty when
    /// absent.
    pub fn internal_trace(&self) -> Result<Vec<InternalTraceInformationElement>, MtsError> {
        internal_trace_of(&self.extensions)
    }

    /// Replaces the internal trace (removes the extension when `trace` is empty).
    pub fn set_internal_trace(
        &mut self,
        trace: &[InternalTraceInformationElement],
    ) -> Result<(), MtsError> {
        set_internal_trace_in(&mut self.extensions, trace)
    }

    /// Appends an internal trace element, adding the extension if needed.
    pub fn append_internal_trace(
        &mut self,
        element: InternalTraceInformationElement,
    ) -> Result<(), MtsError> {
        append_internal_trace_in(&mut self.extensions, element)
    }

    /// Appends a trace element; fails at [`UB_TRANSFERS`] (a loop, in practice).
    pub fn append_trace(&mut self, element: TraceInformationElement) -> Result<(), MtsError> {
        append_trace_to(&mut self.trace_information, element)
    }

    /// The first extension, of the envelope or of a recipient, that is critical for
    /// transfer and whose type is not in `supported`: an MTA must not relay such a message
    /// (X.411 criticality rule; the non-delivery diagnostic is `unsupported-critical-function`).
    pub fn critical_unsupported(&self, supported: &[ExtensionType]) -> Option<&ExtensionField> {
        first_critical_unsupported(
            self.extensions
                .iter()
                .chain(self.per_recipient_fields.iter().flat_map(|r| &r.extensions)),
            supported,
        )
    }
}

/// X.411 `ProbeTransferEnvelope`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeTransferEnvelope {
    /// `probe-identifier`.
    pub probe_identifier: MtsIdentifier,
    /// `originator-name`.
    pub originator_name: ORName,
    /// `original-encoded-information-types`, kept whole.
    pub original_eits: Option<Vec<u8>>,
    /// `content-type`.
    pub content_type: ContentType,
    /// `content-identifier`.
    pub content_identifier: Option<String>,
    /// `content-length [0]` (0..=[`UB_CONTENT_LENGTH`]).
    pub content_length: Option<i64>,
    /// `per-message-indicators`; `None` when absent.
    pub per_message_indicators: Option<PerMessageIndicators>,
    /// `per-domain-bilateral-information [1]`, kept whole.
    pub per_domain_bilateral_information: Option<Vec<u8>>,
    /// `trace-information`.
    pub trace_information: Vec<TraceInformationElement>,
    /// `extensions [3]`.
    pub extensions: Vec<ExtensionField>,
    /// `per-recipient-fields [2]`.
    pub per_recipient_fields: Vec<PerRecipientProbeTransferFields>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl ProbeTransferEnvelope {
    /// Decodes from its element (a SET, or `[2]` implicitly tagged in `MTS-APDU`).
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut c = Common::default();
        let mut length = None;
        let mut unknown = Vec::new();
        let mut r = tlv.children()?;
        while let Some(t) = r.next()? {
            if c.take(&t, "probe-identifier")? {
                continue;
            }
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => once(
                    &mut length,
                    int_in(&t, 0, UB_CONTENT_LENGTH, "content-length")?,
                    "content-length",
                )?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(ProbeTransferEnvelope {
            probe_identifier: c.identifier.ok_or(BerError::Missing("probe-identifier"))?,
            originator_name: c.originator.ok_or(BerError::Missing("originator-name"))?,
            original_eits: c.eits,
            content_type: c.content_type.ok_or(BerError::Missing("content-type"))?,
            content_identifier: c.content_identifier,
            content_length: length,
            per_message_indicators: c.indicators,
            per_domain_bilateral_information: c.bilateral,
            trace_information: c.trace.ok_or(BerError::Missing("trace-information"))?,
            extensions: c.extensions.unwrap_or_default(),
            per_recipient_fields: c
                .recipients
                .ok_or(BerError::Missing("per-recipient-fields"))?,
            unknown,
        })
    }

    /// Encodes with the given tag (a SET, or `[2]` in `MTS-APDU`).
    pub fn encode_tagged(&self, w: &mut Writer, tag: Tag) -> Result<(), MtsError> {
        w.try_constructed(tag, |w| {
            self.probe_identifier.encode(w)?;
            self.originator_name.encode(w)?;
            if let Some(e) = &self.original_eits {
                w.raw(e);
            }
            self.content_type.encode(w);
            if let Some(ci) = &self.content_identifier {
                put_str(
                    w,
                    Tag::application(10),
                    ci,
                    UB_CONTENT_ID_LENGTH,
                    "content-identifier",
                )?;
            }
            if let Some(l) = self.content_length {
                w.integer_tagged(Tag::context(0), l);
            }
            if let Some(i) = &self.per_message_indicators {
                i.0.encode(w, PerMessageIndicators::TAG);
            }
            if let Some(b) = &self.per_domain_bilateral_information {
                w.raw(b);
            }
            encode_trace(w, &self.trace_information)?;
            encode_extensions(w, Tag::context(3).constructed(), &self.extensions);
            encode_recipients(w, &self.per_recipient_fields)?;
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }

    /// The internal trace (standard extension 38), empty when absent.
    pub fn internal_trace(&self) -> Result<Vec<InternalTraceInformationElement>, MtsError> {
        internal_trace_of(&self.extensions)
    }

    /// Replaces the internal trace.
    pub fn set_internal_trace(
        &mut self,
        trace: &[InternalTraceInformationElement],
    ) -> Result<(), MtsError> {
        set_internal_trace_in(&mut self.extensions, trace)
    }

    /// Appends an internal trace element.
    pub fn append_internal_trace(
        &mut self,
        element: InternalTraceInformationElement,
    ) -> Result<(), MtsError> {
        append_internal_trace_in(&mut self.extensions, element)
    }

    /// Appends a trace element; fails at [`UB_TRANSFERS`].
    pub fn append_trace(&mut self, element: TraceInformationElement) -> Result<(), MtsError> {
        append_trace_to(&mut self.trace_information, element)
    }

    /// The first extension critical for transfer that is not in `supported`.
    pub fn critical_unsupported(&self, supported: &[ExtensionType]) -> Option<&ExtensionField> {
        first_critical_unsupported(
            self.extensions
                .iter()
                .chain(self.per_recipient_fields.iter().flat_map(|r| &r.extensions)),
            supported,
        )
    }
}
