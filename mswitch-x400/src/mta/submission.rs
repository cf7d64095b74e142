//! Submission (X.411 §12.2.1.1 and §12.2.1.2): a message or probe a user agent submits over P3
//! becomes the MTS-APDU this MTA transfers, as if it had come in over P1 from inside its own
//! domain. The result is then taken in with [`super::receive`] like any transfer.
//!
//! What the originating MTA adds: the MTS identifier (unique for this MTA), the trace element
//! of its domain (arrival time = submission time, action relayed), and for each recipient its
//! originally-specified-recipient-number (from 1, in the order submitted), the responsibility
//! flag and the report requests. The report request of the originator maps to the
//! per-recipient indicators both as the originator's and as the originating MTA's request
//! (X.411 §12.2.1.1.1.8: the originating MTA asks for at least what the originator asked
//! for); a probe's recipients always ask for a report (a probe is answered by one). Content
//! type, identifiers, priority, indicators, times and extensions are copied.

use mswitch_core::id::Timestamp;

use super::{MtaIdentity, our_trace, utc};
use crate::mts::{
    Message, MessageTransferEnvelope, MtsError, MtsIdentifier, PerRecipientIndicators,
    PerRecipientMessageTransferFields, Probe, ProbeTransferEnvelope, UtcTime,
};
use crate::p3::types::{
    MessageSubmissionArgument, PerRecipientMessageSubmissionFields, ProbeSubmissionArgument,
};

/// The per-recipient transfer fields of submitted recipients, numbered from 1. A probe exists
/// to be answered by a report: its recipients ask for one whatever the originator wrote.
fn recipients(
    submitted: &[PerRecipientMessageSubmissionFields],
    probe: bool,
) -> Vec<PerRecipientMessageTransferFields> {
    submitted
        .iter()
        .zip(1i64..)
        .map(|(r, number)| {
            let mut ind = PerRecipientIndicators::default();
            ind.set_responsibility(true);
            let report = probe || r.report_requested();
            // Non-delivery is always reported to the originating MTA (it decides, with the
            // originator's request, whether the user agent gets it).
            ind.set_originating_mta_report(report);
            ind.set_originating_mta_non_delivery_report(true);
            ind.set_originator_report(report);
            ind.set_originator_non_delivery_report(report || r.non_delivery_report_requested());
            PerRecipientMessageTransferFields {
                recipient_name: r.recipient_name.clone(),
                originally_specified_recipient_number: number,
                per_recipient_indicators: ind,
                explicit_conversion: r.explicit_conversion,
                extensions: r.extensions.clone(),
                unknown: Vec::new(),
            }
        })
        .collect()
}

/// The message to transfer for a message submission: the P1 message, its MTS identifier (the
/// `message-submission-identifier` of the result) and the submission time.
pub fn to_transfer(
    arg: &MessageSubmissionArgument,
    me: &MtaIdentity,
    now: Timestamp,
) -> Result<(Message, MtsIdentifier, UtcTime), MtsError> {
    let time = utc(now)?;
    let identifier = me.new_identifier(now);
    let e = &arg.envelope;
    let envelope = MessageTransferEnvelope {
        message_identifier: identifier.clone(),
        originator_name: e.originator_name.clone(),
        original_eits: e.original_eits.clone(),
        content_type: e.content_type.clone(),
        content_identifier: e.content_identifier.clone(),
        priority: e.priority,
        per_message_indicators: e.per_message_indicators.clone(),
        deferred_delivery_time: e.deferred_delivery_time.clone(),
        per_domain_bilateral_information: None,
        trace_information: vec![our_trace(me, now)?],
        extensions: e.extensions.clone(),
        per_recipient_fields: recipients(&e.per_recipient_fields, false),
        unknown: Vec::new(),
    };
    let message = Message {
        envelope,
        content: arg.content.clone(),
    };
    Ok((message, identifier, time))
}

/// The probe to transfer for a probe submission, its MTS identifier and the submission time.
pub fn probe_to_transfer(
    arg: &ProbeSubmissionArgument,
    me: &MtaIdentity,
    now: Timestamp,
) -> Result<(Probe, MtsIdentifier, UtcTime), MtsError> {
    let time = utc(now)?;
    let identifier = me.new_identifier(now);
    let envelope = ProbeTransferEnvelope {
        probe_identifier: identifier.clone(),
        originator_name: arg.originator_name.clone(),
        original_eits: arg.original_eits.clone(),
        content_type: arg.content_type.clone(),
        content_identifier: arg.content_identifier.clone(),
        content_length: arg.content_length,
        per_message_indicators: arg.per_message_indicators.clone(),
        per_domain_bilateral_information: None,
        trace_information: vec![our_trace(me, now)?],
        extensions: arg.extensions.clone(),
        per_recipient_fields: recipients(&arg.per_recipient_fields, true),
        unknown: Vec::new(),
    };
    Ok((Probe { envelope }, identifier, time))
}
