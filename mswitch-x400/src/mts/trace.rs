//! X.411 `TraceInformation ::= [APPLICATION 9] SEQUENCE SIZE (1..ub-transfers) OF
//! TraceInformationElement` and `InternalTraceInformation` (the value of standard extension
//! 38), each element recording a domain's (or an MTA's) handling of the message.

use super::{
    BitString, GlobalDomainIdentifier, MtsError, UB_ENCODED_INFORMATION_TYPES, UB_MTA_NAME_LENGTH,
    UB_TRANSFERS, UtcTime, once, put_str, raw_bounded,
};
use crate::ber::{BerError, Class, Tag, Tlv, Writer};

/// X.411 `RoutingAction ::= ENUMERATED { relayed(0), rerouted(1) }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoutingAction {
    /// `relayed (0)`.
    Relayed,
    /// `rerouted (1)`.
    Rerouted,
}

impl RoutingAction {
    fn decode(tlv: &Tlv<'_>) -> Result<Self, BerError> {
        match tlv.integer()? {
            0 => Ok(RoutingAction::Relayed),
            1 => Ok(RoutingAction::Rerouted),
            _ => Err(BerError::Invalid("RoutingAction")),
        }
    }
    fn encode(self, w: &mut Writer) {
        let v = match self {
            RoutingAction::Relayed => 0,
            RoutingAction::Rerouted => 1,
        };
        w.integer_tagged(Tag::context(2), v)
    }
}

/// X.411 `OtherActions ::= BIT STRING { redirected(0), dl-operation(1) }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OtherActions(pub BitString);

impl OtherActions {
    /// `redirected`.
    pub fn redirected(&self) -> bool {
        self.0.bit(0)
    }
    /// `dl-operation`.
    pub fn dl_operation(&self) -> bool {
        self.0.bit(1)
    }
    /// Sets `redirected`.
    pub fn set_redirected(&mut self, v: bool) {
        self.0.set_bit(0, v)
    }
    /// Sets `dl-operation`.
    pub fn set_dl_operation(&mut self, v: bool) {
        self.0.set_bit(1, v)
    }
}

/// X.411 `DomainSuppliedInformation` (with the `AdditionalActions` components).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainSuppliedInformation {
    /// `arrival-time [0]`.
    pub arrival_time: UtcTime,
    /// `routing-action [2]`.
    pub routing_action: RoutingAction,
    /// `attempted-domain`: the domain that could not be reached (when rerouted).
    pub attempted_domain: Option<GlobalDomainIdentifier>,
    /// `deferred-time [1]`.
    pub deferred_time: Option<UtcTime>,
    /// `converted-encoded-information-types` (`[APPLICATION 5]`), kept whole.
    pub converted_eits: Option<Vec<u8>>,
    /// `other-actions [3]`; `None` when absent (the default, no action).
    pub other_actions: Option<OtherActions>,
}

/// X.411 `TraceInformationElement`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceInformationElement {
    /// `global-domain-identifier`: the domain that added the element.
    pub global_domain: GlobalDomainIdentifier,
    /// `domain-supplied-information`.
    pub domain_supplied: DomainSuppliedInformation,
}

/// `attempted` of `MTASuppliedInformation`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttemptedMta {
    /// `mta MTAName`.
    Mta(String),
    /// `domain GlobalDomainIdentifier`.
    Domain(GlobalDomainIdentifier),
}

/// X.411 `MTASuppliedInformation` (with the `InternalAdditionalActions` components).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MtaSuppliedInformation {
    /// `arrival-time [0]`.
    pub arrival_time: UtcTime,
    /// `routing-action [2]`.
    pub routing_action: RoutingAction,
    /// `attempted`: the MTA or domain that could not be reached.
    pub attempted: Option<AttemptedMta>,
    /// `deferred-time [1]`.
    pub deferred_time: Option<UtcTime>,
    /// `converted-encoded-information-types` (`[APPLICATION 5]`), kept whole.
    pub converted_eits: Option<Vec<u8>>,
    /// `other-actions [3]`.
    pub other_actions: Option<OtherActions>,
}

/// X.411 `InternalTraceInformationElement`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InternalTraceInformationElement {
    /// `global-domain-identifier`.
    pub global_domain: GlobalDomainIdentifier,
    /// `mta-name` (IA5String, at most [`UB_MTA_NAME_LENGTH`]).
    pub mta_name: String,
    /// `mta-supplied-information`.
    pub mta_supplied: MtaSuppliedInformation,
}

/// The components common to both supplied-information SETs.
#[derive(Default)]
struct Supplied {
    arrival: Option<UtcTime>,
    routing: Option<RoutingAction>,
    deferred: Option<UtcTime>,
    eits: Option<Vec<u8>>,
    other: Option<OtherActions>,
}

impl Supplied {
    /// Takes `t` if it is a common component; `Ok(false)` if not.
    fn take(&mut self, t: &Tlv<'_>) -> Result<bool, BerError> {
        match (t.tag.class, t.tag.number) {
            (Class::Context, 0) => once(&mut self.arrival, UtcTime::decode(t)?, "arrival-time")?,
            (Class::Context, 1) => once(&mut self.deferred, UtcTime::decode(t)?, "deferred-time")?,
            (Class::Context, 2) => once(
                &mut self.routing,
                RoutingAction::decode(t)?,
                "routing-action",
            )?,
            (Class::Context, 3) => once(
                &mut self.other,
                OtherActions(BitString::decode(t, "other-actions")?),
                "other-actions",
            )?,
            (Class::Application, 5) => once(
                &mut self.eits,
                raw_bounded(
                    t,
                    UB_ENCODED_INFORMATION_TYPES,
                    "converted-encoded-information-types",
                )?,
                "converted-encoded-information-types",
            )?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn encode_common(
    w: &mut Writer,
    arrival: &UtcTime,
    routing: RoutingAction,
    deferred: Option<&UtcTime>,
    eits: Option<&Vec<u8>>,
    other: Option<&OtherActions>,
    attempted: impl FnOnce(&mut Writer) -> Result<(), MtsError>,
) -> Result<(), MtsError> {
    arrival.encode(w, Tag::context(0));
    routing.encode(w);
    attempted(w)?;
    if let Some(d) = deferred {
        d.encode(w, Tag::context(1));
    }
    if let Some(e) = eits {
        w.raw(e);
    }
    if let Some(o) = other {
        o.0.encode(w, Tag::context(3));
    }
    Ok(())
}

impl TraceInformationElement {
    /// Decodes one element (a SEQUENCE).
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SEQUENCE, "TraceInformationElement")?;
        let mut r = tlv.children()?;
        let global_domain =
            GlobalDomainIdentifier::decode(&r.next_required("global-domain-identifier")?)?;
        let dsi = r
            .next_required("domain-supplied-information")?
            .expect(Tag::SET, "domain-supplied-information")?;
        r.finish()?;
        let mut s = Supplied::default();
        let mut attempted = None;
        let mut c = dsi.children()?;
        while let Some(t) = c.next()? {
            if s.take(&t)? {
                continue;
            }
            if t.tag.same(GlobalDomainIdentifier::TAG) {
                if attempted.is_some() {
                    return Err(BerError::Duplicate("attempted-domain").into());
                }
                attempted = Some(GlobalDomainIdentifier::decode(&t)?);
            } else {
                return Err(BerError::Unexpected {
                    expected: "DomainSuppliedInformation component",
                    found: t.tag,
                }
                .into());
            }
        }
        Ok(TraceInformationElement {
            global_domain,
            domain_supplied: DomainSuppliedInformation {
                arrival_time: s.arrival.ok_or(BerError::Missing("arrival-time"))?,
                routing_action: s.routing.ok_or(BerError::Missing("routing-action"))?,
                attempted_domain: attempted,
                deferred_time: s.deferred,
                converted_eits: s.eits,
                other_actions: s.other,
            },
        })
    }

    /// Encodes as a SEQUENCE.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        let d = &self.domain_supplied;
        w.try_constructed(Tag::SEQUENCE, |w| {
            self.global_domain.encode(w)?;
            w.try_constructed(Tag::SET, |w| {
                encode_common(
                    w,
                    &d.arrival_time,
                    d.routing_action,
                    d.deferred_time.as_ref(),
                    d.converted_eits.as_ref(),
                    d.other_actions.as_ref(),
                    |w| match &d.attempted_domain {
                        Some(g) => g.encode(w),
                        None => Ok(()),
                    },
                )
            })
        })
    }
}

impl InternalTraceInformationElement {
    /// Decodes one element (a SEQUENCE).
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SEQUENCE, "InternalTraceInformationElement")?;
        let mut r = tlv.children()?;
        let global_domain =
            GlobalDomainIdentifier::decode(&r.next_required("global-domain-identifier")?)?;
        let mta_name = r
            .next_required("mta-name")?
            .expect(Tag::IA5_STRING, "mta-name")?
            .string("mta-name", UB_MTA_NAME_LENGTH)?;
        let msi = r
            .next_required("mta-supplied-information")?
            .expect(Tag::SET, "mta-supplied-information")?;
        r.finish()?;
        let mut s = Supplied::default();
        let mut attempted = None;
        let mut c = msi.children()?;
        while let Some(t) = c.next()? {
            if s.take(&t)? {
                continue;
            }
            let a = if t.tag.same(GlobalDomainIdentifier::TAG) {
                AttemptedMta::Domain(GlobalDomainIdentifier::decode(&t)?)
            } else if t.tag.same(Tag::IA5_STRING) {
                AttemptedMta::Mta(t.string("attempted mta", UB_MTA_NAME_LENGTH)?)
            } else {
                return Err(BerError::Unexpected {
                    expected: "MTASuppliedInformation component",
                    found: t.tag,
                }
                .into());
            };
            once(&mut attempted, a, "attempted")?;
        }
        Ok(InternalTraceInformationElement {
            global_domain,
            mta_name,
            mta_supplied: MtaSuppliedInformation {
                arrival_time: s.arrival.ok_or(BerError::Missing("arrival-time"))?,
                routing_action: s.routing.ok_or(BerError::Missing("routing-action"))?,
                attempted,
                deferred_time: s.deferred,
                converted_eits: s.eits,
                other_actions: s.other,
            },
        })
    }

    /// Encodes as a SEQUENCE.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        let m = &self.mta_supplied;
        w.try_constructed(Tag::SEQUENCE, |w| {
            self.global_domain.encode(w)?;
            put_str(
                w,
                Tag::IA5_STRING,
                &self.mta_name,
                UB_MTA_NAME_LENGTH,
                "mta-name",
            )?;
            w.try_constructed(Tag::SET, |w| {
                encode_common(
                    w,
                    &m.arrival_time,
                    m.routing_action,
                    m.deferred_time.as_ref(),
                    m.converted_eits.as_ref(),
                    m.other_actions.as_ref(),
                    |w| match &m.attempted {
                        Some(AttemptedMta::Mta(n)) => {
                            put_str(w, Tag::IA5_STRING, n, UB_MTA_NAME_LENGTH, "attempted mta")
                        }
                        Some(AttemptedMta::Domain(g)) => g.encode(w),
                        None => Ok(()),
                    },
                )
            })
        })
    }
}

/// The `[APPLICATION 9]` tag of `TraceInformation`.
pub(crate) const TRACE_TAG: Tag = Tag::application(9).constructed();

/// Decodes `TraceInformation` (from its `[APPLICATION 9]` element).
pub(crate) fn decode_trace(tlv: &Tlv<'_>) -> Result<Vec<TraceInformationElement>, MtsError> {
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(t) = r.next()? {
        if out.len() >= UB_TRANSFERS {
            return Err(BerError::TooLarge("trace-information").into());
        }
        out.push(TraceInformationElement::decode(&t)?);
    }
    if out.is_empty() {
        return Err(BerError::Missing("trace information element").into());
    }
    Ok(out)
}

/// Encodes `TraceInformation`.
pub(crate) fn encode_trace(
    w: &mut Writer,
    trace: &[TraceInformationElement],
) -> Result<(), MtsError> {
    if trace.is_empty() || trace.len() > UB_TRANSFERS {
        return Err(MtsError::encode(
            "trace-information",
            "needs 1 to ub-transfers elements",
        ));
    }
    w.try_constructed(TRACE_TAG, |w| {
        for t in trace {
            t.encode(w)?;
        }
        Ok(())
    })
}

/// Decodes `InternalTraceInformation` (a SEQUENCE OF, the value of extension 38).
pub(crate) fn decode_internal_trace(
    tlv: &Tlv<'_>,
) -> Result<Vec<InternalTraceInformationElement>, MtsError> {
    tlv.expect(Tag::SEQUENCE, "InternalTraceInformation")?;
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(t) = r.next()? {
        if out.len() >= UB_TRANSFERS {
            return Err(BerError::TooLarge("internal-trace-information").into());
        }
        out.push(InternalTraceInformationElement::decode(&t)?);
    }
    if out.is_empty() {
        return Err(BerError::Missing("internal trace information element").into());
    }
    Ok(out)
}

/// Encodes `InternalTraceInformation`.
pub(crate) fn encode_internal_trace(
    trace: &[InternalTraceInformationElement],
) -> Result<Vec<u8>, MtsError> {
    if trace.is_empty() || trace.len() > UB_TRANSFERS {
        return Err(MtsError::encode(
            "internal-trace-information",
            "needs 1 to ub-transfers elements",
        ));
    }
    let mut w = Writer::new();
    w.try_constructed(Tag::SEQUENCE, |w| {
        for t in trace {
            t.encode(w)?;
        }
        Ok::<(), MtsError>(())
    })?;
    Ok(w.finish())
}
