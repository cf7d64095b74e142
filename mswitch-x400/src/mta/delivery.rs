//! Delivery over P3 (X.411 §12.2.1.3, §12.2.1.4): a queued message or report, as this MTA holds
//! it (the P1 MTS-APDU), becomes the argument of a `message-delivery` or `report-delivery`
//! operation for one recipient.
//!
//! - A message: the delivery identifier is the message identifier, the submission time the
//!   arrival time in the first trace element (the originating domain's), other recipients are
//!   disclosed only when the originator asked for it, and `delivery-flags` says whether
//!   implicit conversion was prohibited. The envelope's extensions are delivered except the
//!   internal trace, which belongs to transfer.
//! - A report: delivered to its destination (the subject's originator) with the per-recipient
//!   fields the originator asked to be told about (`originator-report` for delivery reports,
//!   `originator-non-delivery-report` or `originator-report` for non-delivery reports).
//!   Nothing may be left, in which case there is nothing to deliver.

use mswitch_core::address::ORAddress;
use mswitch_core::id::Timestamp;

use super::utc;
use crate::mts::{
    BitString, ExtensionType, Message, MtsError, Report, ReportType, standard_extension as ext,
};
use crate::p3::types::{
    MessageDeliveryArgument, MessageDeliveryEnvelope, OtherMessageDeliveryFields,
    PerRecipientReportDeliveryFields, ReportDeliveryArgument,
};

/// `delivery-flags` bit `implicit-conversion-prohibited`.
const IMPLICIT_CONVERSION_PROHIBITED: usize = 1;

/// The `message-delivery` argument of `message` for `recipient`; `None` when the message
/// does not name that recipient.
pub fn message_delivery(
    message: &Message,
    recipient: &ORAddress,
    now: Timestamp,
) -> Result<Option<MessageDeliveryArgument>, MtsError> {
    let e = &message.envelope;
    let Some(this) = e
        .per_recipient_fields
        .iter()
        .find(|r| r.recipient_name.address.matches(recipient))
    else {
        return Ok(None);
    };
    let delivery_time = utc(now)?;
    let submission_time = e
        .trace_information
        .first()
        .map(|t| t.domain_supplied.arrival_time.clone())
        .unwrap_or_else(|| delivery_time.clone());
    let indicators = e.per_message_indicators.as_ref();
    let other_recipient_names = if indicators.is_some_and(|i| i.disclosure_of_other_recipients()) {
        e.per_recipient_fields
            .iter()
            .filter(|r| !std::ptr::eq(*r, this))
            .map(|r| r.recipient_name.clone())
            .collect()
    } else {
        Vec::new()
    };
    let delivery_flags = indicators
        .is_some_and(|i| i.implicit_conversion_prohibited())
        .then(|| {
            let mut b = BitString::zeros(2);
            b.set_bit(IMPLICIT_CONVERSION_PROHIBITED, true);
            b
        });
    let extensions = e
        .extensions
        .iter()
        .filter(|x| x.kind != ExtensionType::Standard(ext::INTERNAL_TRACE_INFORMATION))
        .cloned()
        .collect();
    Ok(Some(MessageDeliveryArgument {
        envelope: MessageDeliveryEnvelope {
            message_delivery_identifier: e.message_identifier.clone(),
            message_delivery_time: delivery_time,
            other_fields: OtherMessageDeliveryFields {
                content_type: e.content_type.clone(),
                originator_name: e.originator_name.clone(),
                original_eits: e.original_eits.clone(),
                priority: e.priority,
                delivery_flags,
                other_recipient_names,
                this_recipient_name: this.recipient_name.clone(),
                originally_intended_recipient_name: None,
                converted_eits: None,
                message_submission_time: submission_time,
                content_identifier: e.content_identifier.clone(),
                extensions,
                unknown: Vec::new(),
            },
        },
        content: message.content.clone(),
    }))
}

/// The `report-delivery` argument of `report` for its destination; `None` when the
/// originator asked to be told about none of the recipients it reports on.
pub fn report_delivery(report: &Report) -> Option<ReportDeliveryArgument> {
    let c = &report.content;
    let per_recipient_fields: Vec<PerRecipientReportDeliveryFields> = c
        .per_recipient_fields
        .iter()
        .filter(|r| {
            let ind = &r.per_recipient_indicators;
            match r.last_trace_information.report_type {
                ReportType::Delivery { .. } => ind.originator_report(),
                ReportType::NonDelivery { .. } => {
                    ind.originator_non_delivery_report() || ind.originator_report()
                }
            }
        })
        .map(|r| PerRecipientReportDeliveryFields {
            actual_recipient_name: r.actual_recipient_name.clone(),
            report_type: r.last_trace_information.report_type.clone(),
            converted_eits: r.last_trace_information.converted_eits.clone(),
            originally_intended_recipient_name: r.originally_intended_recipient_name.clone(),
            supplementary_information: r.supplementary_information.clone(),
            extensions: r.extensions.clone(),
            unknown: Vec::new(),
        })
        .collect();
    if per_recipient_fields.is_empty() {
        return None;
    }
    Some(ReportDeliveryArgument {
        subject_submission_identifier: c.subject_identifier.clone(),
        content_identifier: c.content_identifier.clone(),
        content_type: c.content_type.clone(),
        original_eits: c.original_eits.clone(),
        extensions: c.extensions.clone(),
        per_recipient_fields,
        returned_content: c.returned_content.clone(),
        unknown: Vec::new(),
    })
}
