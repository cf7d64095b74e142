//! MTA rules for P1 (X.411 §12, §14): what an MTA does to an MTS-APDU it takes in, hands on
//! or reports on. Pure functions of the APDU, this MTA's identity and the time.
//!
//! - [`receive`]: decodes a transferred MTS-APDU; detects loops from the internal trace;
//!   refuses critical extensions it does not support; refuses messages past their latest
//!   delivery time; adds this MTA's trace; gives the queue envelope (the recipients this MTA
//!   is responsible for) and the bytes to queue (the APDU with the new trace).
//! - [`prepare_transfer`]: sets the responsibility flags for the recipients of one transfer.
//! - [`report`]: builds the X.400 delivery / non-delivery report on a queued message or probe
//!   for its originator, with the reason and diagnostic codes X.411 defines.
//! - [`submission`]: a P3 message or probe submission as the MTS-APDU to transfer.
//! - [`delivery`]: a queued message or report as the argument of a P3 delivery operation.
//!
//! The queue holds an X.400 message as its MTS-APDU; the queue envelope is a projection used
//! for routing and scheduling. Unknown envelope elements and extensions travel unchanged.

pub mod delivery;
pub mod submission;

use std::sync::atomic::{AtomicU64, Ordering};

use mswitch_core::address::{Address, ORAddress};
use mswitch_core::envelope::{
    ContentType as CoreContentType, Envelope, Notify, Priority as CorePriority, Recipient,
    ReversePath, X400ContentType, X400Priority,
};
use mswitch_core::id::Timestamp;
use mswitch_core::status::Status;

use crate::mts::{
    ContentType, DomainSuppliedInformation, ExtensionType, GlobalDomainIdentifier,
    InternalTraceInformationElement, LastTraceInformation, Message, MessageTransferEnvelope,
    MtaSuppliedInformation, MtsApdu, MtsError, MtsIdentifier, ORName, PerRecipientIndicators,
    PerRecipientMessageTransferFields, PerRecipientReportTransferFields, Probe,
    ProbeTransferEnvelope, Report, ReportTransferContent, ReportTransferEnvelope, ReportType,
    RoutingAction, TraceInformationElement, UtcTime, non_delivery_diagnostic as diag,
    non_delivery_reason as reason, standard_extension as ext,
};

/// The critical extensions this MTA honours when it transfers a message: it never reassigns,
/// expands or converts in P1, so the prohibitions hold; it enforces the latest delivery time;
/// it maintains internal trace.
const SUPPORTED_CRITICAL: &[i64] = &[
    ext::RECIPIENT_REASSIGNMENT_PROHIBITED,
    ext::DL_EXPANSION_PROHIBITED,
    ext::CONVERSION_WITH_LOSS_PROHIBITED,
    ext::LATEST_DELIVERY_TIME,
    ext::INTERNAL_TRACE_INFORMATION,
];

/// Who this MTA is: its name and its global domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtaIdentity {
    /// `MTAName`.
    pub mta_name: String,
    /// The management domain it belongs to.
    pub global_domain: GlobalDomainIdentifier,
}

impl MtaIdentity {
    /// An identity from its parts.
    pub fn new(mta_name: &str, country: &str, admd: &str, prmd: Option<&str>) -> Self {
        MtaIdentity {
            mta_name: mta_name.to_owned(),
            global_domain: GlobalDomainIdentifier::new(country, admd, prmd.map(str::to_owned)),
        }
    }

    /// A new MTS identifier, unique for this MTA: the time in milliseconds and a counter.
    pub fn new_identifier(&self, now: Timestamp) -> MtsIdentifier {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        MtsIdentifier::new(self.global_domain.clone(), format!("{:x}.{n:x}", now.0))
    }
}

/// What kind of MTS-APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApduKind {
    /// A message.
    Message,
    /// A probe.
    Probe,
    /// A report.
    Report,
}

/// The outcome reported for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (or, for a probe, would be delivered).
    Delivered,
    /// Not delivered: X.411 `NonDeliveryReasonCode` and `NonDeliveryDiagnosticCode`, and a
    /// text for `supplementary-information`.
    NonDelivered {
        /// The reason code.
        reason: i64,
        /// The diagnostic code.
        diagnostic: Option<i64>,
        /// Free text.
        text: Option<String>,
    },
}

/// One recipient to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEntry {
    /// The recipient, as named in the subject's envelope.
    pub recipient: ORAddress,
    /// What happened.
    pub outcome: Outcome,
}

impl ReportEntry {
    /// A delivery report entry.
    pub fn delivered(recipient: &ORAddress) -> Self {
        ReportEntry {
            recipient: recipient.clone(),
            outcome: Outcome::Delivered,
        }
    }

    /// A non-delivery entry for a recipient refused or failed with `status`: the enhanced
    /// status code mapped to X.411 codes in the spirit of RFC 2156 §5.5.
    pub fn from_status(address: &Address, status: &Status) -> Self {
        let (r, d) = match (status.enhanced.subject, status.enhanced.detail) {
            (1, 1) | (1, 2) | (1, 3) | (1, 6) => {
                (reason::UNABLE_TO_TRANSFER, diag::UNRECOGNISED_OR_NAME)
            }
            (1, 4) => (reason::UNABLE_TO_TRANSFER, diag::AMBIGUOUS_OR_NAME),
            (2, 1) | (2, 2) => (reason::TRANSFER_FAILURE, diag::RECIPIENT_UNAVAILABLE),
            (3, 4) | (2, 3) => (reason::UNABLE_TO_TRANSFER, diag::CONTENT_TOO_LONG),
            (4, 6) => (reason::UNABLE_TO_TRANSFER, diag::LOOP_DETECTED),
            (4, 7) => (reason::TRANSFER_FAILURE, diag::MAXIMUM_TIME_EXPIRED),
            (4, _) | (3, 1) | (3, 2) => (reason::TRANSFER_FAILURE, diag::MTS_CONGESTION),
            (7, _) => (reason::UNABLE_TO_TRANSFER, diag::SECURE_MESSAGING_ERROR),
            _ => (reason::TRANSFER_FAILURE, diag::RECIPIENT_UNAVAILABLE),
        };
        let recipient = match address {
            Address::X400(o) => o.as_ref().clone(),
            Address::Mailbox(_) => ORAddress::default(),
        };
        ReportEntry {
            recipient,
            outcome: Outcome::NonDelivered {
                reason: r,
                diagnostic: Some(d),
                text: Some(status.to_string()),
            },
        }
    }

    fn refused(recipient: &ORAddress, r: i64, d: i64, text: &str) -> Self {
        ReportEntry {
            recipient: recipient.clone(),
            outcome: Outcome::NonDelivered {
                reason: r,
                diagnostic: Some(d),
                text: Some(text.to_owned()),
            },
        }
    }
}

/// A received MTS-APDU, ready for the submission pipeline.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// What it is.
    pub kind: ApduKind,
    /// The queue envelope: originator, the recipients this MTA is responsible for (a report's
    /// destination), priority, times, content type.
    pub envelope: Envelope,
    /// The bytes to queue: the MTS-APDU with this MTA's trace added.
    pub stored: Vec<u8>,
    /// Recipients refused outright (loop, unsupported critical extension, expired), to be
    /// reported on.
    pub rejected: Vec<ReportEntry>,
    identifier: String,
}

impl Incoming {
    /// The MTS identifier, for logs.
    pub fn describe(&self) -> String {
        self.identifier.clone()
    }
}

pub(crate) fn utc(now: Timestamp) -> Result<UtcTime, MtsError> {
    UtcTime::from_timestamp(now).ok_or_else(|| MtsError::Encode {
        what: "UTCTime",
        message: "the clock is outside UTCTime's range".into(),
    })
}

pub(crate) fn our_trace(
    me: &MtaIdentity,
    now: Timestamp,
) -> Result<TraceInformationElement, MtsError> {
    Ok(TraceInformationElement {
        global_domain: me.global_domain.clone(),
        domain_supplied: DomainSuppliedInformation {
            arrival_time: utc(now)?,
            routing_action: RoutingAction::Relayed,
            attempted_domain: None,
            deferred_time: None,
            converted_eits: None,
            other_actions: None,
        },
    })
}

fn our_internal_trace(
    me: &MtaIdentity,
    now: Timestamp,
) -> Result<InternalTraceInformationElement, MtsError> {
    Ok(InternalTraceInformationElement {
        global_domain: me.global_domain.clone(),
        mta_name: me.mta_name.clone(),
        mta_supplied: MtaSuppliedInformation {
            arrival_time: utc(now)?,
            routing_action: RoutingAction::Relayed,
            attempted: None,
            deferred_time: None,
            converted_eits: None,
            other_actions: None,
        },
    })
}

/// Adds our domain's trace element unless the last one is already ours (the message is
/// moving inside our domain).
fn add_domain_trace(
    trace: &mut Vec<TraceInformationElement>,
    me: &MtaIdentity,
    now: Timestamp,
) -> Result<(), MtsError> {
    if trace.last().map(|t| &t.global_domain) != Some(&me.global_domain) {
        if trace.len() >= crate::mts::UB_TRANSFERS {
            return Err(MtsError::Encode {
                what: "TraceInformation",
                message: "ub-transfers reached".into(),
            });
        }
        trace.push(our_trace(me, now)?);
    }
    Ok(())
}

/// Whether this MTA already relayed the message: a loop (X.411 §14.3.1.1).
fn looped(internal: &[InternalTraceInformationElement], me: &MtaIdentity) -> bool {
    internal.iter().any(|e| {
        e.mta_name == me.mta_name
            && e.global_domain == me.global_domain
            && e.mta_supplied.routing_action == RoutingAction::Relayed
    })
}

fn supported() -> Vec<ExtensionType> {
    SUPPORTED_CRITICAL
        .iter()
        .map(|&n| ExtensionType::Standard(n))
        .collect()
}

fn notify_for(ind: &PerRecipientIndicators) -> Notify {
    // A delivery report when the originator or its MTA asked for one; non-delivery is
    // always reported (X.411 §12.2.1.1.1.8: a "no-report" request still gets NDRs to the
    // originating MTA, which is us or upstream).
    Notify::on(
        ind.originator_report() || ind.originating_mta_report(),
        true,
        false,
    )
}

fn core_content_type(c: &ContentType) -> CoreContentType {
    CoreContentType::X400(X400ContentType::from(c.clone()))
}

/// What messages and probes have in common for the MTA rules: identifier, originator,
/// content type, trace and per-recipient fields (a probe's per-recipient fields are the
/// message's type).
trait Transferred {
    fn identifier(&self) -> &MtsIdentifier;
    fn originator(&self) -> &ORName;
    fn content_type(&self) -> &ContentType;
    fn content_identifier(&self) -> Option<&String>;
    fn original_eits(&self) -> Option<&Vec<u8>>;
    fn trace(&self) -> &[TraceInformationElement];
    fn trace_mut(&mut self) -> &mut Vec<TraceInformationElement>;
    fn recipients(&self) -> &[PerRecipientMessageTransferFields];
    fn recipients_mut(&mut self) -> &mut [PerRecipientMessageTransferFields];
    fn internal_trace(&self) -> Result<Vec<InternalTraceInformationElement>, MtsError>;
    fn set_internal_trace(
        &mut self,
        trace: &[InternalTraceInformationElement],
    ) -> Result<(), MtsError>;
    fn has_unsupported_critical(&self) -> bool;
}

macro_rules! transferred {
    ($t:ty, $id:ident) => {
        impl Transferred for $t {
            fn identifier(&self) -> &MtsIdentifier {
                &self.$id
            }
            fn originator(&self) -> &ORName {
                &self.originator_name
            }
            fn content_type(&self) -> &ContentType {
                &self.content_type
            }
            fn content_identifier(&self) -> Option<&String> {
                self.content_identifier.as_ref()
            }
            fn original_eits(&self) -> Option<&Vec<u8>> {
                self.original_eits.as_ref()
            }
            fn trace(&self) -> &[TraceInformationElement] {
                &self.trace_information
            }
            fn trace_mut(&mut self) -> &mut Vec<TraceInformationElement> {
                &mut self.trace_information
            }
            fn recipients(&self) -> &[PerRecipientMessageTransferFields] {
                &self.per_recipient_fields
            }
            fn recipients_mut(&mut self) -> &mut [PerRecipientMessageTransferFields] {
                &mut self.per_recipient_fields
            }
            fn internal_trace(&self) -> Result<Vec<InternalTraceInformationElement>, MtsError> {
                <$t>::internal_trace(self)
            }
            fn set_internal_trace(
                &mut self,
                trace: &[InternalTraceInformationElement],
            ) -> Result<(), MtsError> {
                <$t>::set_internal_trace(self, trace)
            }
            fn has_unsupported_critical(&self) -> bool {
                self.critical_unsupported(&supported()).is_some()
            }
        }
    };
}

transferred!(MessageTransferEnvelope, message_identifier);
transferred!(ProbeTransferEnvelope, probe_identifier);

/// The MTA rules common to messages and probes: loop detection, critical extensions,
/// `expired` (a message past its latest delivery time), trace; the queue envelope with the
/// recipients we are responsible for, and the refusals.
fn take_in<E: Transferred>(
    env: &mut E,
    expired: bool,
    probe: bool,
    me: &MtaIdentity,
    now: Timestamp,
) -> Result<(Envelope, Vec<ReportEntry>), MtsError> {
    let mut internal = env.internal_trace()?;
    let refusal = if looped(&internal, me) {
        Some((
            reason::UNABLE_TO_TRANSFER,
            diag::LOOP_DETECTED,
            "loop detected",
        ))
    } else if env.has_unsupported_critical() {
        Some((
            reason::UNABLE_TO_TRANSFER,
            diag::UNSUPPORTED_CRITICAL_FUNCTION,
            "unsupported critical extension",
        ))
    } else if expired {
        Some((
            reason::TRANSFER_FAILURE,
            diag::MAXIMUM_TIME_EXPIRED,
            "latest delivery time passed",
        ))
    } else {
        None
    };
    add_domain_trace(env.trace_mut(), me, now)?;
    internal.push(our_internal_trace(me, now)?);
    env.set_internal_trace(&internal)?;
    let mut queue = Envelope::new(
        ReversePath::Address(Address::X400(Box::new(env.originator().address.clone()))),
        now,
    );
    queue.content_type = core_content_type(env.content_type());
    let mut rejected = Vec::new();
    for r in env
        .recipients()
        .iter()
        .filter(|r| r.per_recipient_indicators.responsibility())
    {
        let or = &r.recipient_name.address;
        match refusal {
            Some((rc, dc, text)) => rejected.push(ReportEntry::refused(or, rc, dc, text)),
            None => {
                let mut rcpt = Recipient::new(Address::X400(Box::new(or.clone())));
                // A probe is answered with a report either way.
                rcpt.notify = if probe {
                    Notify::on(true, true, false)
                } else {
                    notify_for(&r.per_recipient_indicators)
                };
                queue.recipients.push(rcpt);
            }
        }
    }
    Ok((queue, rejected))
}

/// Takes in a transferred MTS-APDU (see the module documentation).
pub fn receive(apdu: &[u8], me: &MtaIdentity, now: Timestamp) -> Result<Incoming, MtsError> {
    match MtsApdu::decode(apdu)? {
        MtsApdu::Message(mut m) => {
            let identifier = m.envelope.message_identifier.to_string();
            let latest = m
                .envelope
                .latest_delivery_time()?
                .and_then(|t| t.to_timestamp());
            let expired = latest.is_some_and(|t| t < now);
            let (mut env, rejected) = take_in(&mut m.envelope, expired, false, me, now)?;
            env.priority =
                CorePriority::from_x400(X400Priority::from(m.envelope.priority_or_default()));
            env.deferred_until = m
                .envelope
                .deferred_delivery_time
                .as_ref()
                .and_then(UtcTime::to_timestamp);
            env.expires = latest;
            env.size = m.content.len() as u64;
            Ok(Incoming {
                kind: ApduKind::Message,
                envelope: env,
                stored: MtsApdu::Message(m).encode()?,
                rejected,
                identifier,
            })
        }
        MtsApdu::Probe(mut p) => {
            let identifier = p.envelope.probe_identifier.to_string();
            let (mut env, rejected) = take_in(&mut p.envelope, false, true, me, now)?;
            env.size = p
                .envelope
                .content_length
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0);
            Ok(Incoming {
                kind: ApduKind::Probe,
                envelope: env,
                stored: MtsApdu::Probe(p).encode()?,
                rejected,
                identifier,
            })
        }
        MtsApdu::Report(mut r) => {
            let identifier = r.envelope.report_identifier.to_string();
            add_domain_trace(&mut r.envelope.trace_information, me, now)?;
            let mut env = Envelope::new(ReversePath::Null, now);
            env.content_type = core_content_type(
                r.content
                    .content_type
                    .as_ref()
                    .unwrap_or(&ContentType::BuiltIn(22)),
            );
            let mut rcpt = Recipient::new(Address::X400(Box::new(
                r.envelope.report_destination_name.address.clone(),
            )));
            rcpt.notify = Notify::never();
            env.recipients.push(rcpt);
            let stored = MtsApdu::Report(r).encode()?;
            env.size = stored.len() as u64;
            Ok(Incoming {
                kind: ApduKind::Report,
                envelope: env,
                stored,
                rejected: Vec::new(),
                identifier,
            })
        }
    }
}

/// The kind of a queued MTS-APDU, from its outer tag.
pub fn kind_of(stored: &[u8]) -> Option<ApduKind> {
    match stored.first()? {
        0xA0 => Some(ApduKind::Message),
        0xA1 => Some(ApduKind::Report),
        0xA2 => Some(ApduKind::Probe),
        _ => None,
    }
}

/// Sets the responsibility flags for one transfer: on for `recipients`, off for the others
/// (another transfer, or this MTA, is responsible for those).
pub fn prepare_transfer(
    stored: &[u8],
    recipients: &[&ORAddress],
    _me: &MtaIdentity,
    _now: Timestamp,
) -> Result<Vec<u8>, MtsError> {
    let mut apdu = MtsApdu::decode(stored)?;
    let fields = match &mut apdu {
        MtsApdu::Message(Message { envelope, .. }) => envelope.recipients_mut(),
        MtsApdu::Probe(Probe { envelope }) => envelope.recipients_mut(),
        MtsApdu::Report(_) => return Ok(stored.to_vec()),
    };
    for r in fields {
        let on = recipients.iter().any(|o| **o == r.recipient_name.address);
        r.per_recipient_indicators.set_responsibility(on);
    }
    apdu.encode()
}

/// A report ready for the queue.
#[derive(Debug, Clone)]
pub struct BuiltReport {
    /// Its queue envelope: null originator, the report destination as recipient.
    pub envelope: Envelope,
    /// The report MTS-APDU.
    pub apdu: Vec<u8>,
}

/// Builds the report on a queued message or probe for `entries` (see the module
/// documentation). `None` when there is nothing to report: the subject is itself a report,
/// or no entry names one of its recipients.
pub fn report(
    stored: &[u8],
    entries: &[ReportEntry],
    me: &MtaIdentity,
    now: Timestamp,
) -> Result<Option<BuiltReport>, MtsError> {
    let apdu = MtsApdu::decode(stored)?;
    let (subject, returned): (&dyn Transferred, Option<&Vec<u8>>) = match &apdu {
        MtsApdu::Message(m) => (
            &m.envelope,
            m.envelope
                .per_message_indicators
                .as_ref()
                .is_some_and(|i| i.content_return_request())
                .then_some(&m.content),
        ),
        MtsApdu::Probe(p) => (&p.envelope, None),
        MtsApdu::Report(_) => return Ok(None),
    };
    let arrival = utc(now)?;
    let mut per_recipient = Vec::new();
    for e in entries {
        let Some(r) = subject
            .recipients()
            .iter()
            .find(|r| r.recipient_name.address == e.recipient)
        else {
            continue;
        };
        let (report_type, text) = match &e.outcome {
            Outcome::Delivered => (
                ReportType::Delivery {
                    message_delivery_time: arrival.clone(),
                    type_of_mts_user: None,
                },
                None,
            ),
            Outcome::NonDelivered {
                reason,
                diagnostic,
                text,
            } => (
                ReportType::NonDelivery {
                    reason_code: *reason,
                    diagnostic_code: *diagnostic,
                },
                text.clone(),
            ),
        };
        per_recipient.push(PerRecipientReportTransferFields {
            actual_recipient_name: r.recipient_name.clone(),
            originally_specified_recipient_number: r.originally_specified_recipient_number,
            per_recipient_indicators: r.per_recipient_indicators.clone(),
            last_trace_information: LastTraceInformation {
                arrival_time: arrival.clone(),
                converted_eits: None,
                report_type,
            },
            originally_intended_recipient_name: None,
            supplementary_information: text.map(|t| {
                t.chars()
                    .filter(|c| c.is_ascii() && !c.is_ascii_control())
                    .take(crate::mts::UB_SUPPLEMENTARY_INFO_LENGTH)
                    .collect()
            }),
            extensions: Vec::new(),
            unknown: Vec::new(),
        });
    }
    if per_recipient.is_empty() {
        return Ok(None);
    }
    let envelope = ReportTransferEnvelope {
        report_identifier: me.new_identifier(now),
        report_destination_name: subject.originator().clone(),
        trace_information: vec![our_trace(me, now)?],
        extensions: Vec::new(),
        unknown: Vec::new(),
    };
    let content = ReportTransferContent {
        subject_identifier: subject.identifier().clone(),
        subject_intermediate_trace: subject.trace().to_vec(),
        original_eits: subject.original_eits().cloned(),
        content_type: Some(subject.content_type().clone()),
        content_identifier: subject.content_identifier().cloned(),
        returned_content: returned.cloned(),
        additional_information: None,
        extensions: Vec::new(),
        per_recipient_fields: per_recipient,
        unknown: Vec::new(),
    };
    let report_apdu = MtsApdu::Report(Report { envelope, content }).encode()?;
    let mut env = Envelope::new(ReversePath::Null, now);
    env.content_type = core_content_type(subject.content_type());
    let mut rcpt = Recipient::new(Address::X400(Box::new(
        subject.originator().address.clone(),
    )));
    rcpt.notify = Notify::never();
    env.recipients.push(rcpt);
    env.size = report_apdu.len() as u64;
    Ok(Some(BuiltReport {
        envelope: env,
        apdu: report_apdu,
    }))
}

#[cfg(test)]
mod tests;
