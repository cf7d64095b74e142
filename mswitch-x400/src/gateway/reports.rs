//! Reports across the gateway (RFC 2156 §5.4 in spirit, with RFC 3464 DSNs on the Internet
//! side, RFC 2164 style):
//!
//! - [`report_to_dsn`]: an X.400 delivery or non-delivery report for a message that came from
//!   the Internet becomes a DSN to its SMTP sender; reasons and diagnostics become enhanced
//!   status codes.
//! - [`dsn_to_report`]: a DSN about a message that came from X.400 becomes an X.400 report to
//!   its originator; the subject is found by the DSN's `Original-Envelope-Id`, which the
//!   gateway set to the MTS identifier when it converted the message.

use mail_parser::{MessageParser, MimeHeaders};
use mswitch_core::address::{Address, Mailbox};
use mswitch_core::dsn::{self, DsnAction, DsnRecipient, DsnRequest};
use mswitch_core::envelope::{
    ContentType as CoreContentType, Envelope, Notify, Recipient, ReversePath, X400ContentType,
};
use mswitch_core::id::{QueueId, Timestamp};
use mswitch_core::status::Status;

use super::address::MixerTables;
use super::convert::{Converted, GatewayError, parse_mts_identifier};
use crate::mta::{MtaIdentity, Outcome, ReportEntry};
use crate::mts::{
    ContentType, LastTraceInformation, MtsApdu, ORName, PerRecipientIndicators,
    PerRecipientReportTransferFields, Report, ReportTransferContent, ReportTransferEnvelope,
    ReportType, non_delivery_diagnostic as diag, non_delivery_reason as reason,
};

/// Most recipients one DSN is read for.
const MAX_DSN_RECIPIENTS: usize = 1024;

/// The enhanced status for an X.400 non-delivery reason and diagnostic (the inverse of
/// [`ReportEntry::from_status`]).
pub fn status_for(reason_code: i64, diagnostic: Option<i64>) -> Status {
    let (code, enhanced, text) = match diagnostic {
        Some(diag::UNRECOGNISED_OR_NAME) => (550, (5, 1, 1), "unrecognised O/R name"),
        Some(diag::AMBIGUOUS_OR_NAME) => (550, (5, 1, 4), "ambiguous O/R name"),
        Some(diag::MTS_CONGESTION) => (554, (5, 4, 5), "MTS congestion"),
        Some(diag::LOOP_DETECTED) => (554, (5, 4, 6), "loop detected"),
        Some(diag::RECIPIENT_UNAVAILABLE) => (550, (5, 2, 1), "recipient unavailable"),
        Some(diag::MAXIMUM_TIME_EXPIRED) => (554, (5, 4, 7), "maximum time expired"),
        Some(diag::CONTENT_TOO_LONG) => (552, (5, 3, 4), "content too long"),
        Some(diag::UNSUPPORTED_CRITICAL_FUNCTION) => {
            (554, (5, 3, 3), "unsupported critical function")
        }
        _ if reason_code == reason::CONVERSION_NOT_PERFORMED => {
            (554, (5, 6, 3), "conversion not performed")
        }
        _ => (554, (5, 0, 0), "not delivered"),
    };
    Status::new(
        code,
        enhanced,
        format!("X.400 non-delivery: {text} (reason {reason_code}, diagnostic {diagnostic:?})"),
    )
}

/// An X.400 report on a message from the Internet, as a DSN for its SMTP sender. `None` when
/// no recipient of it can be named on the Internet side.
pub fn report_to_dsn(
    stored: &[u8],
    tables: &MixerTables,
    hostname: &str,
    queue_id: QueueId,
    now: Timestamp,
) -> Result<Option<Converted>, GatewayError> {
    let MtsApdu::Report(r) = MtsApdu::decode(stored)? else {
        return Err(GatewayError::NotAMessage);
    };
    let to = tables
        .to_mailbox(&r.envelope.report_destination_name.address)
        .map_err(|error| GatewayError::Address {
            address: r.envelope.report_destination_name.address.to_string(),
            error,
        })?;
    let mut env = Envelope::new(ReversePath::Address(Address::Mailbox(to)), now);
    env.dsn_envid = Some(r.content.subject_identifier.to_string());
    let mut listed = Vec::new();
    for f in &r.content.per_recipient_fields {
        let Ok(m) = tables.to_mailbox(&f.actual_recipient_name.address) else {
            continue;
        };
        let (action, status) = match &f.last_trace_information.report_type {
            ReportType::Delivery { .. } => (
                DsnAction::Delivered,
                Status::new(250, (2, 0, 0), "delivered in the X.400 world"),
            ),
            ReportType::NonDelivery {
                reason_code,
                diagnostic_code,
            } => {
                let mut s = status_for(*reason_code, *diagnostic_code);
                if let Some(info) = &f.supplementary_information {
                    s.text = format!("{}; {info}", s.text);
                }
                (DsnAction::Failed, s)
            }
        };
        listed.push(DsnRecipient {
            index: env.recipients.len(),
            action,
            status,
            remote_mta: None,
            diagnostic_from_peer: false,
            last_attempt: Some(now),
            will_retry_until: None,
        });
        env.recipients.push(Recipient::new(Address::Mailbox(m)));
    }
    // The original message travelled as X.400: its header section here names it.
    let headers = format!(
        "X400-MTS-Identifier: [{}]\r\n\r\n",
        r.content.subject_identifier
    );
    let Some(notice) = dsn::build(&DsnRequest {
        reporting_mta: hostname,
        queue_id,
        envelope: &env,
        content: headers.as_bytes(),
        recipients: listed,
        now,
        unique: now.0 ^ queue_id.0,
    }) else {
        return Ok(None);
    };
    let mut out = Envelope::new(ReversePath::Null, now);
    out.content_type = CoreContentType::Internet {
        body: if notice.eight_bit {
            mswitch_core::envelope::BodyType::EightBitMime
        } else {
            mswitch_core::envelope::BodyType::SevenBit
        },
        smtputf8: notice.smtputf8,
    };
    let mut rcpt = Recipient::new(Address::Mailbox(notice.to.clone()));
    rcpt.notify = Notify::never();
    out.recipients.push(rcpt);
    out.size = notice.content.len() as u64;
    Ok(Some(Converted {
        envelope: out,
        content: notice.content,
        refused: Vec::new(),
        origin: Vec::new(),
    }))
}

/// The fields of one `message/delivery-status` recipient block.
#[derive(Debug, Default)]
struct DsnFields {
    final_recipient: Option<String>,
    action: Option<String>,
    status: Option<String>,
    diagnostic: Option<String>,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (k, v) = line.split_once(':')?;
    k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
}

fn address_of(value: &str) -> &str {
    // `rfc822; user@example.com`
    value.split_once(';').map_or(value, |(_, a)| a.trim())
}

/// A DSN about a message from X.400, as an X.400 report for its originator (the mailbox the
/// DSN is addressed to, mapped back). `None` when the DSN reports nothing final (only delays).
pub fn dsn_to_report(
    to: &Mailbox,
    message: &[u8],
    tables: &MixerTables,
    me: &MtaIdentity,
    now: Timestamp,
) -> Result<Option<Converted>, GatewayError> {
    let parsed = MessageParser::default()
        .parse(message)
        .ok_or(GatewayError::Unparsable)?;
    let status_part = parsed
        .parts
        .iter()
        .find(|p| {
            p.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct
                        .subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
            })
        })
        .ok_or_else(|| GatewayError::Content("not a DSN (no message/delivery-status)".into()))?;
    let text = String::from_utf8_lossy(status_part.contents()).replace("\r\n", "\n");
    let mut blocks = text.split("\n\n");
    let per_message = blocks.next().unwrap_or_default();
    let envid = per_message
        .lines()
        .find_map(|l| field(l, "Original-Envelope-Id"))
        .ok_or_else(|| GatewayError::Content("the DSN has no Original-Envelope-Id".into()))?;
    let subject = parse_mts_identifier(envid).ok_or_else(|| {
        GatewayError::Content(format!(
            "Original-Envelope-Id {envid:?} is no MTS identifier"
        ))
    })?;
    let destination = tables.to_or(to).map_err(|error| GatewayError::Address {
        address: to.to_string(),
        error,
    })?;
    let now_utc = crate::mta::utc(now)?;
    let mut fields = Vec::new();
    for block in blocks.take(MAX_DSN_RECIPIENTS) {
        let mut f = DsnFields::default();
        for line in block.lines() {
            if let Some(v) = field(line, "Final-Recipient") {
                f.final_recipient = Some(address_of(v).to_owned());
            } else if let Some(v) = field(line, "Action") {
                f.action = Some(v.to_ascii_lowercase());
            } else if let Some(v) = field(line, "Status") {
                f.status = Some(v.to_owned());
            } else if let Some(v) = field(line, "Diagnostic-Code") {
                f.diagnostic = Some(v.to_owned());
            }
        }
        let (Some(rcpt), Some(action)) = (f.final_recipient, f.action) else {
            continue;
        };
        let Ok(mailbox) = Mailbox::parse(&rcpt) else {
            continue;
        };
        let Ok(or) = tables.to_or(&mailbox) else {
            continue;
        };
        let report_type = match action.as_str() {
            "failed" => {
                let parts: Vec<u16> = f
                    .status
                    .as_deref()
                    .unwrap_or("5.0.0")
                    .split('.')
                    .filter_map(|n| n.trim().parse().ok())
                    .collect();
                let (c, s, d) = match parts[..] {
                    [c, s, d] => (c, s, d),
                    _ => (5, 0, 0),
                };
                let status = Status::new(
                    550,
                    (u8::try_from(c).unwrap_or(5), s, d),
                    f.diagnostic.clone().unwrap_or_default(),
                );
                match ReportEntry::from_status(&Address::X400(Box::new(or.clone())), &status)
                    .outcome
                {
                    Outcome::NonDelivered {
                        reason, diagnostic, ..
                    } => ReportType::NonDelivery {
                        reason_code: reason,
                        diagnostic_code: diagnostic,
                    },
                    Outcome::Delivered => continue,
                }
            }
            "delivered" | "relayed" | "expanded" => ReportType::Delivery {
                message_delivery_time: now_utc.clone(),
                type_of_mts_user: None,
            },
            _ => continue,
        };
        let mut ind = PerRecipientIndicators::default();
        ind.set_responsibility(true);
        fields.push(PerRecipientReportTransferFields {
            actual_recipient_name: ORName::from(or),
            originally_specified_recipient_number: fields.len() as i64 + 1,
            per_recipient_indicators: ind,
            last_trace_information: LastTraceInformation {
                arrival_time: now_utc.clone(),
                converted_eits: None,
                report_type,
            },
            originally_intended_recipient_name: None,
            supplementary_information: f.diagnostic.map(|d| {
                d.chars()
                    .filter(|c| c.is_ascii() && !c.is_ascii_control())
                    .take(crate::mts::UB_SUPPLEMENTARY_INFO_LENGTH)
                    .collect()
            }),
            extensions: Vec::new(),
            unknown: Vec::new(),
        });
    }
    if fields.is_empty() {
        return Ok(None);
    }
    let apdu = MtsApdu::Report(Report {
        envelope: ReportTransferEnvelope {
            report_identifier: me.new_identifier(now),
            report_destination_name: ORName::from(destination.clone()),
            trace_information: vec![crate::mta::our_trace(me, now)?],
            extensions: Vec::new(),
            unknown: Vec::new(),
        },
        content: ReportTransferContent {
            subject_identifier: subject,
            subject_intermediate_trace: Vec::new(),
            original_eits: None,
            content_type: Some(ContentType::BuiltIn(22)),
            content_identifier: None,
            returned_content: None,
            additional_information: None,
            extensions: Vec::new(),
            per_recipient_fields: fields,
            unknown: Vec::new(),
        },
    })
    .encode()?;
    let mut env = Envelope::new(ReversePath::Null, now);
    env.content_type = CoreContentType::X400(X400ContentType::BuiltIn(22));
    let mut rcpt = Recipient::new(Address::X400(Box::new(destination)));
    rcpt.notify = Notify::never();
    env.recipients.push(rcpt);
    env.size = apdu.len() as u64;
    Ok(Some(Converted {
        envelope: env,
        content: apdu,
        refused: Vec::new(),
        origin: Vec::new(),
    }))
}

#[cfg(test)]
mod tests;
