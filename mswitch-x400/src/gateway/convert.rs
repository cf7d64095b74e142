//! Message conversion (RFC 2156 chapters 5 and 6, RFC 2157 for bodies), both ways.
//!
//! - [`to_x400`]: an RFC 5322/MIME message and its SMTP envelope become a P1 message: an IPM
//!   (P22) whose heading comes from the header fields and whose body parts come from the MIME
//!   parts, in an MTS-APDU whose envelope comes from the SMTP envelope.
//! - [`to_internet`]: a P1 message with an IPM becomes an RFC 5322/MIME message and an SMTP
//!   envelope.
//!
//! What maps to what:
//!
//! | X.400 | Internet |
//! |---|---|
//! | envelope originator / recipients | `MAIL FROM` / `RCPT TO` (addresses by [`MixerTables`]) |
//! | MTS identifier | `X400-MTS-Identifier:`, and the DSN envelope id (`ENVID`) |
//! | trace | `X400-Received:` (one per trace element) |
//! | internal trace | `Received:` (one per element, and the gateway's own) |
//! | priority (non-urgent, normal, urgent) | `Priority` of the queue (MT-PRIORITY) |
//! | per-recipient report requests | `NOTIFY=` |
//! | content type | `X400-Content-Type:` |
//! | this-IPM | `Message-ID:` |
//! | originator | `From:` (free-form name as the display name); `Sender:` when there are authorizing users |
//! | authorizing users | `From:` (with the originator as `Sender:`) |
//! | primary, copy, blind copy recipients | `To:`, `Cc:`, `Bcc:` |
//! | subject (T.61, or the extended subject for other text) | `Subject:` |
//! | replied-to-IPM | `In-Reply-To:` |
//! | related IPMs | `References:` |
//! | importance, sensitivity | `Importance:`, `Sensitivity:` |
//! | expiry-time, reply-time | `Expires:`, `Reply-By:` |
//! | reply-recipients | `Reply-To:` |
//! | obsoleted-IPMs | `Obsoletes:` |
//! | auto-forwarded | `Autoforwarded: TRUE` |
//! | ia5-text, general text body parts | `text/plain` parts |
//! | bilaterally defined, forwarded and other body parts | attachments (`application/octet-stream`, `message/rfc822` for a forwarded IPM, RFC 1494 / RFC 2157 `application/x400-bp; bp-type=` for the rest, the body part's BER byte for byte, read back into that body part on the way in) |
//!
//! MIME parts other than text travel as bilaterally defined body parts holding the whole MIME
//! entity (header and body), and come back as that entity: carried, not dropped.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address as BuilderAddress;
use mail_builder::headers::content_type::ContentType as MimeContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart as MimeBody, MimePart};
use mail_parser::{Address as ParsedAddress, HeaderValue, MessageParser, MimeHeaders, PartType};
use mswitch_core::address::{
    Address, Mailbox, ORAddress, ascii_from_printable, printable_from_ascii,
};
use mswitch_core::envelope::{
    ContentType as CoreContentType, Envelope, Notify, Priority, Recipient, ReversePath,
    X400ContentType,
};
use mswitch_core::id::Timestamp;

use super::address::{MappingError, MixerTables};
use crate::ipm::{
    BodyPart, GeneralText, Heading, Importance, InformationObject, Ipm, IpmIdentifier,
    ORDescriptor, RecipientSpecifier, Sensitivity, TeletexString,
};
use crate::mta::MtaIdentity;
use crate::mts::{
    ContentType, DomainSuppliedInformation, InternalTraceInformationElement, Message,
    MessageTransferEnvelope, MtaSuppliedInformation, MtsApdu, MtsError, MtsIdentifier, ORName,
    PerRecipientMessageTransferFields, Priority as X400Priority, RoutingAction,
    TraceInformationElement, UtcTime,
};

/// Longest local IPM identifier (X.420 `ub-local-ipm-identifier`).
const UB_LOCAL_IPM_IDENTIFIER: usize = 64;

/// Most heading recipients carried from one header field.
const MAX_HEADER_RECIPIENTS: usize = 1024;

/// Most trace elements (X.400) or `X400-Received:` fields (Internet) a message may carry
/// through the gateway: more means it is going round in a loop between the two worlds.
pub const MAX_GATEWAY_TRACE: usize = 64;

/// Most `Received:` fields of an Internet message mapped into X.400 internal trace (the
/// newest ones).
pub const MAX_RECEIVED_HOPS: usize = 32;

/// Why a message cannot be converted. The sender's fault (the message or an address cannot be
/// expressed on the other side) unless said otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The RFC 5322 message cannot be parsed.
    #[error("the message cannot be parsed as RFC 5322")]
    Unparsable,
    /// An envelope address has no equivalent on the other side.
    #[error("address {address}: {error}")]
    Address {
        /// The address, as text.
        address: String,
        /// Why.
        error: MappingError,
    },
    /// The X.400 content is not an IPM (P2/P22), or not a valid one.
    #[error("content not convertible: {0}")]
    Content(String),
    /// Encoding the result failed (a bound exceeded).
    #[error("encoding: {0}")]
    Encode(#[from] MtsError),
    /// The queued MTS-APDU is not a message (a local fault).
    #[error("the queued X.400 object is not a message")]
    NotAMessage,
    /// The message has crossed too many domains or gateways: a loop.
    #[error("loop detected: more than {MAX_GATEWAY_TRACE} trace elements")]
    Loop,
}

/// A converted message: the queue envelope and the content to submit.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The envelope on the other side.
    pub envelope: Envelope,
    /// The content: an MTS-APDU, or an RFC 5322 message.
    pub content: Vec<u8>,
    /// Recipients that could not be converted, by index into the original recipients, and
    /// why.
    pub refused: Vec<(usize, GatewayError)>,
    /// For each recipient of [`Converted::envelope`], its index among the original ones.
    pub origin: Vec<usize>,
}

fn or_name(tables: &MixerTables, m: &Mailbox) -> Result<ORName, GatewayError> {
    tables
        .to_or(m)
        .map(ORName::from)
        .map_err(|error| GatewayError::Address {
            address: m.to_string(),
            error,
        })
}

fn descriptor(tables: &MixerTables, addr: &mail_parser::Addr<'_>) -> Option<ORDescriptor> {
    let mailbox = Mailbox::parse(addr.address.as_deref()?).ok()?;
    let formal = tables.to_or(&mailbox).ok()?;
    let mut d = ORDescriptor::formal(ORName::from(formal));
    if let Some(name) = addr.name.as_deref().filter(|n| !n.is_empty()) {
        d.free_form_name = Some(TeletexString::from_text_lossy(name));
    }
    Some(d)
}

/// The O/R descriptors of a header field's addresses (those the tables map), at most
/// [`MAX_HEADER_RECIPIENTS`].
fn or_descriptors(tables: &MixerTables, a: Option<&ParsedAddress<'_>>) -> Vec<ORDescriptor> {
    a.map(|a| {
        a.iter()
            .take(MAX_HEADER_RECIPIENTS)
            .filter_map(|x| descriptor(tables, x))
            .collect()
    })
    .unwrap_or_default()
}

fn descriptors(tables: &MixerTables, a: Option<&ParsedAddress<'_>>) -> Vec<RecipientSpecifier> {
    or_descriptors(tables, a)
        .into_iter()
        .map(RecipientSpecifier::new)
        .collect()
}

fn message_ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// A Message-ID as an IPM identifier: the RFC 2156 §3.4 printable-string mapping (`@` is
/// `(a)`, …), as the local identifier is a PrintableString.
fn ipm_id(text: &str) -> IpmIdentifier {
    let printable = printable_from_ascii(text.trim_matches(['<', '>']));
    let id: String = printable.chars().take(UB_LOCAL_IPM_IDENTIFIER).collect();
    IpmIdentifier::new(None, id)
}

/// ISO-IR registrations of the ISO 8859 right-hand parts beyond Latin-1, and the charset that
/// is the ASCII left-hand part with each.
const ISO_8859_PARTS: &[(i64, &str)] = &[
    (101, "iso-8859-2"),
    (109, "iso-8859-3"),
    (110, "iso-8859-4"),
    (144, "iso-8859-5"),
    (127, "iso-8859-6"),
    (126, "iso-8859-7"),
    (138, "iso-8859-8"),
    (148, "iso-8859-9"),
    (157, "iso-8859-10"),
    (179, "iso-8859-13"),
    (199, "iso-8859-14"),
    (203, "iso-8859-15"),
    (226, "iso-8859-16"),
];

/// General text as Unicode: UTF-8 and ISO 8859-1 as the codec reads them, and the other ISO
/// 8859 parts (the control sets and ASCII with exactly one right-hand part of
/// [`ISO_8859_PARTS`]) by their charset. `None` for any other combination of sets.
fn general_text(g: &GeneralText) -> Option<String> {
    if let Some(text) = g.to_text() {
        return Some(text);
    }
    let mut charset = None;
    for set in &g.character_sets {
        if crate::ipm::character_set::ISO_8859_1.contains(set)
            && *set != crate::ipm::character_set::LATIN_1_SUPPLEMENTARY
        {
            continue;
        }
        let (_, name) = ISO_8859_PARTS.iter().find(|(r, _)| r == set)?;
        if charset.replace(*name).is_some() {
            return None;
        }
    }
    let decoder = mail_parser::decoders::charsets::map::charset_decoder(charset?.as_bytes())?;
    Some(decoder(&g.data))
}

/// An RFC 5322 date-time header field (`Expires:`, `Reply-By:`) as an X.400 time.
fn header_time(parsed: &mail_parser::Message<'_>, name: &str) -> Option<UtcTime> {
    let date = mail_parser::DateTime::parse_rfc822(parsed.header_raw(name)?.trim())?;
    UtcTime::from_unix_seconds(date.to_timestamp())
}

/// An X.400 time as an RFC 5322 date-time.
fn rfc5322_time(t: &UtcTime) -> Option<String> {
    let seconds = i64::try_from(t.to_timestamp()?.0 / 1000).ok()?;
    Some(mail_builder::headers::date::Date::new(seconds).to_rfc822())
}

fn text_part(text: &str) -> Result<BodyPart, MtsError> {
    if text.is_ascii() {
        Ok(BodyPart::ia5_text(text))
    } else {
        BodyPart::from_general_text(&GeneralText::utf8(text))
    }
}

/// Converts an Internet message for the given recipients (indexes into `envelope`) into a P1
/// message from this gateway MTA.
pub fn to_x400(
    envelope: &Envelope,
    message: &[u8],
    recipients: &[usize],
    tables: &MixerTables,
    me: &MtaIdentity,
    now: Timestamp,
) -> Result<Converted, GatewayError> {
    let parsed = MessageParser::default()
        .parse(message)
        .ok_or(GatewayError::Unparsable)?;
    let originator = match envelope.originator.mailbox() {
        Some(m) => or_name(tables, m)?,
        None => ORName::from(tables.gateway_or().clone()),
    };
    let mut refused = Vec::new();
    let mut origin = Vec::new();
    let mut fields = Vec::new();
    let mut queue_rcpts = Vec::new();
    for &i in recipients {
        let Some(r) = envelope.recipients.get(i) else {
            continue;
        };
        let Address::Mailbox(m) = &r.address else {
            refused.push((
                i,
                GatewayError::Content("the recipient is already an O/R address".into()),
            ));
            continue;
        };
        match or_name(tables, m) {
            Ok(name) => {
                let number = fields.len() as i64 + 1;
                let mut f = PerRecipientMessageTransferFields::new(name.clone(), number);
                f.per_recipient_indicators
                    .set_originating_mta_report(r.notify.success());
                f.per_recipient_indicators
                    .set_originating_mta_non_delivery_report(!r.notify.is_never());
                fields.push(f);
                let mut q = Recipient::new(Address::X400(Box::new(name.address)));
                q.notify = r.notify;
                queue_rcpts.push(q);
                origin.push(i);
            }
            Err(e) => refused.push((i, e)),
        }
    }
    // The IPM.
    let this_ipm = match parsed.message_id() {
        Some(id) => ipm_id(id),
        None => ipm_id(&format!("{}@{}", now.0, tables.gateway_domain())),
    };
    let mut heading = Heading::new(this_ipm);
    // RFC 2156 (as RFC 987): with a Sender:, the Sender: is the originator and the From:
    // addresses are the authorizing users; without, the From: is the originator.
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| descriptor(tables, a));
    match parsed
        .sender()
        .and_then(|a| a.first())
        .and_then(|a| descriptor(tables, a))
    {
        Some(sender) => {
            heading.originator = Some(sender);
            heading.authorizing_users = or_descriptors(tables, parsed.from());
        }
        None => heading.originator = from,
    }
    if heading.originator.is_none() {
        heading.originator = Some(ORDescriptor::formal(originator.clone()));
    }
    heading.primary_recipients = descriptors(tables, parsed.to());
    heading.copy_recipients = descriptors(tables, parsed.cc());
    heading.blind_copy_recipients = descriptors(tables, parsed.bcc());
    if let Some(s) = parsed.subject() {
        heading.set_subject(s)?;
    }
    heading.replied_to_ipm = message_ids(parsed.in_reply_to())
        .first()
        .map(|id| ipm_id(id));
    heading.related_ipms = message_ids(parsed.references())
        .iter()
        .map(|id| ipm_id(id))
        .collect();
    heading.importance = match parsed
        .header_raw("Importance")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("high") => Importance::High,
        Some("low") => Importance::Low,
        _ => Importance::Normal,
    };
    heading.sensitivity = match parsed
        .header_raw("Sensitivity")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("personal") => Some(Sensitivity::Personal),
        Some("private") => Some(Sensitivity::Private),
        Some("company-confidential") => Some(Sensitivity::CompanyConfidential),
        _ => None,
    };
    // RFC 2156: Expires: ⇄ expiry-time, Reply-By: ⇄ reply-time, Reply-To: ⇄
    // reply-recipients, Obsoletes: ⇄ obsoleted-IPMs, Autoforwarded: ⇄ auto-forwarded.
    heading.expiry_time = header_time(&parsed, "Expires");
    heading.reply_time = header_time(&parsed, "Reply-By");
    heading.reply_recipients = or_descriptors(tables, parsed.reply_to());
    heading.obsoleted_ipms = parsed
        .header_raw("Obsoletes")
        .map(|v| {
            v.split_whitespace()
                .filter_map(|id| id.strip_prefix('<')?.strip_suffix('>'))
                .take(MAX_HEADER_RECIPIENTS)
                .map(ipm_id)
                .collect()
        })
        .unwrap_or_default();
    heading.auto_forwarded = parsed
        .header_raw("Autoforwarded")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("TRUE"));
    let mut body = Vec::new();
    for (n, part) in parsed.parts.iter().enumerate() {
        match &part.body {
            PartType::Text(t) if n == 0 || parsed.text_body.contains(&(n as u32)) => {
                body.push(text_part(t)?);
            }
            PartType::Multipart(_) => {}
            PartType::Binary(_) | PartType::InlineBinary(_) if x400_body_part(part).is_some() => {
                body.extend(x400_body_part(part));
            }
            PartType::Text(_)
            | PartType::Html(_)
            | PartType::Binary(_)
            | PartType::InlineBinary(_)
            | PartType::Message(_) => {
                let raw = message
                    .get(part.raw_header_offset() as usize..part.raw_end_offset() as usize)
                    .unwrap_or_default();
                body.push(BodyPart::Bilaterally(raw.to_vec()));
            }
        }
    }
    if body.is_empty() {
        body.push(BodyPart::ia5_text(""));
    }
    let content = InformationObject::Ipm(Ipm::new(heading, body)).encode()?;
    let mts_id = parsed
        .header_raw("X400-MTS-Identifier")
        .and_then(|v| parse_mts_identifier(v.trim()))
        .unwrap_or_else(|| me.new_identifier(now));
    // RFC 2156: X400-Received fields are the trace the message had before it left X.400.
    let mut trace: Vec<TraceInformationElement> = parsed
        .header_values("X400-Received")
        .filter_map(|v| v.as_text().and_then(parse_x400_received))
        .collect();
    if trace.len() >= MAX_GATEWAY_TRACE {
        return Err(GatewayError::Loop);
    }
    let internal = internet_hops(&parsed, tables, me, &mut trace)?;
    trace.push(crate::mta::our_trace(me, now)?);
    let x400_priority = X400Priority::from(envelope.priority.x400());
    let mts = MessageTransferEnvelope {
        message_identifier: mts_id.clone(),
        originator_name: originator.clone(),
        original_eits: None,
        content_type: ContentType::BuiltIn(22),
        content_identifier: None,
        priority: (x400_priority != X400Priority::Normal).then_some(x400_priority),
        per_message_indicators: None,
        deferred_delivery_time: None,
        per_domain_bilateral_information: None,
        trace_information: trace,
        extensions: Vec::new(),
        per_recipient_fields: fields,
        unknown: Vec::new(),
    };
    let mut mts = mts;
    mts.set_internal_trace(&internal)?;
    let apdu = MtsApdu::Message(Message {
        envelope: mts,
        content,
    })
    .encode()?;
    let mut env = Envelope::new(
        ReversePath::Address(Address::X400(Box::new(originator.address))),
        now,
    );
    env.content_type = CoreContentType::X400(X400ContentType::BuiltIn(22));
    env.priority = envelope.priority;
    env.recipients = queue_rcpts;
    env.size = apdu.len() as u64;
    env.dsn_envid = Some(mts_id.to_string());
    Ok(Converted {
        envelope: env,
        content: apdu,
        refused,
        origin,
    })
}

/// The Internet hops of a message going into X.400 (the `Received:` mapping of the MIXER
/// RFCs, RFC 1138 onwards):
/// each `Received:` field, oldest first, becomes an internal trace element (the `by` host as
/// MTA name, cut to `ub-mta-name-length`, its date as arrival time, action relayed), in the
/// management domain its host maps to by the tables (the gateway's domain when it maps to
/// none); a change of domain from the last trace element adds a trace element for it.
///
/// Fields without a `by` host name or a date, or whose host is not ASCII, are skipped, and so
/// is a host named like this MTA (its loop detection would take the hop for itself). Only the
/// newest [`MAX_RECEIVED_HOPS`] fields are read.
fn internet_hops(
    parsed: &mail_parser::Message<'_>,
    tables: &MixerTables,
    me: &MtaIdentity,
    trace: &mut Vec<TraceInformationElement>,
) -> Result<Vec<InternalTraceInformationElement>, GatewayError> {
    let hops: Vec<&mail_parser::Received<'_>> = parsed
        .header_values("Received")
        .filter_map(|v| match v {
            HeaderValue::Received(r) => Some(&**r),
            _ => None,
        })
        .take(MAX_RECEIVED_HOPS)
        .collect();
    let mut internal = Vec::new();
    for r in hops.iter().rev() {
        let (Some(mail_parser::Host::Name(by)), Some(date)) = (&r.by, &r.date) else {
            continue;
        };
        let by = by.trim_end_matches('.');
        if by.is_empty() || !by.is_ascii() || by.eq_ignore_ascii_case(&me.mta_name) {
            continue;
        }
        let Ok(secs) = u64::try_from(date.to_timestamp()) else {
            continue;
        };
        let Ok(arrival) = crate::mta::utc(Timestamp::from_secs(secs)) else {
            continue;
        };
        let domain = domain_of_host(tables, by).unwrap_or_else(|| me.global_domain.clone());
        if trace.last().map(|t| &t.global_domain) != Some(&domain) {
            trace.push(TraceInformationElement {
                global_domain: domain.clone(),
                domain_supplied: DomainSuppliedInformation {
                    arrival_time: arrival.clone(),
                    routing_action: RoutingAction::Relayed,
                    attempted_domain: None,
                    deferred_time: None,
                    converted_eits: None,
                    other_actions: None,
                },
            });
        }
        let mut name = by.to_owned();
        name.truncate(crate::mts::UB_MTA_NAME_LENGTH);
        internal.push(InternalTraceInformationElement {
            global_domain: domain,
            mta_name: name,
            mta_supplied: MtaSuppliedInformation {
                arrival_time: arrival,
                routing_action: RoutingAction::Relayed,
                attempted: None,
                deferred_time: None,
                converted_eits: None,
                other_actions: None,
            },
        });
    }
    Ok(internal)
}

/// The management domain an Internet host belongs to by the mapping tables: that of the O/R
/// address its postmaster maps to, when it has a country and an ADMD.
fn domain_of_host(tables: &MixerTables, host: &str) -> Option<crate::mts::GlobalDomainIdentifier> {
    let postmaster = Mailbox::parse(&format!("postmaster@{host}")).ok()?;
    let or = tables.to_or(&postmaster).ok()?;
    Some(crate::mts::GlobalDomainIdentifier::new(
        or.country.clone()?,
        or.admd.clone()?,
        or.prmd.clone(),
    ))
}

/// The `Received:` fields of a message leaving X.400, newest first: this gateway's own, then
/// one per internal trace element (the hops inside the last management domain, read back
/// from what [`internet_hops`] wrote or written by X.400 MTAs).
fn received_fields(
    envelope: &MessageTransferEnvelope,
    tables: &MixerTables,
    now: Timestamp,
) -> String {
    let date =
        |t: Timestamp| mail_builder::headers::date::Date::new((t.0 / 1000) as i64).to_rfc822();
    let dotted = |s: &str| {
        !s.is_empty()
            && s.split('.')
                .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let g = |d: &crate::mts::GlobalDomainIdentifier| {
        format!(
            "/C={}/ADMD={}/PRMD={}/",
            d.country,
            d.admd,
            d.prmd.as_deref().unwrap_or("")
        )
        .replace(['(', ')', '\\'], "")
    };
    let mut out = String::new();
    let from = envelope
        .trace_information
        .last()
        .map(|t| format!(" (X.400 domain {})", g(&t.global_domain)))
        .unwrap_or_default();
    out.push_str(&format!(
        "Received: by {}{from}\r\n\twith X400 id {};\r\n\t{}\r\n",
        tables.gateway_domain(),
        atom_id(&envelope.message_identifier.local_identifier),
        date(now)
    ));
    let internal = envelope.internal_trace().unwrap_or_default();
    for e in internal.iter().rev() {
        let Some(at) = e.mta_supplied.arrival_time.to_timestamp() else {
            continue;
        };
        let by = if dotted(&e.mta_name) {
            e.mta_name.clone()
        } else {
            "unknown".to_owned()
        };
        out.push_str(&format!(
            "Received: by {by} (X.400 MTA in {});\r\n\t{}\r\n",
            g(&e.global_domain),
            date(at)
        ));
    }
    out
}

/// An MTS local identifier as an RFC 5322 atom (characters outside `atext` dropped).
fn atom_id(local: &str) -> String {
    let s: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(*c))
        .collect();
    if s.is_empty() { "unknown".into() } else { s }
}

/// Parses an `X400-Received:` field as this gateway writes it (`by /C=GB/ADMD= /PRMD=X/ ;
/// relayed ; YYMMDDhhmmssZ`) back into a trace element.
pub fn parse_x400_received(text: &str) -> Option<TraceInformationElement> {
    let mut parts = text.split(';').map(str::trim);
    let by = parts.next()?.strip_prefix("by")?.trim();
    let action = match parts.next()? {
        "relayed" => RoutingAction::Relayed,
        "rerouted" => RoutingAction::Rerouted,
        _ => return None,
    };
    let time = UtcTime::parse(parts.next()?).ok()?;
    let mut country = None;
    let mut admd = None;
    let mut prmd = None;
    for part in by.trim_matches('/').split('/') {
        let (k, v) = part.split_once('=')?;
        match k {
            "C" => country = Some(v.to_owned()),
            "ADMD" | "A" => admd = Some(v.to_owned()),
            "PRMD" | "P" => prmd = Some(v.to_owned()).filter(|p| !p.is_empty()),
            _ => return None,
        }
    }
    Some(TraceInformationElement {
        global_domain: crate::mts::GlobalDomainIdentifier::new(country?, admd?, prmd),
        domain_supplied: DomainSuppliedInformation {
            arrival_time: time,
            routing_action: action,
            attempted_domain: None,
            deferred_time: None,
            converted_eits: None,
            other_actions: None,
        },
    })
}

/// Parses the RFC 2156 text form of an MTS identifier, `/C=GB/A= /P=PRMD/;local-id` (what
/// [`MtsIdentifier`]'s `Display` writes).
pub fn parse_mts_identifier(text: &str) -> Option<MtsIdentifier> {
    let (domain, local) = text.split_once(";")?;
    let mut country = None;
    let mut admd = None;
    let mut prmd = None;
    for part in domain.trim_matches('/').split('/') {
        let (k, v) = part.split_once('=')?;
        match k {
            "C" => country = Some(v.to_owned()),
            "A" | "ADMD" => admd = Some(v.to_owned()),
            "P" | "PRMD" => prmd = Some(v.to_owned()),
            _ => return None,
        }
    }
    if local.is_empty() || local.len() > crate::mts::UB_LOCAL_ID_LENGTH {
        return None;
    }
    Some(MtsIdentifier::new(
        crate::mts::GlobalDomainIdentifier::new(country?, admd?, prmd),
        local,
    ))
}

fn builder_address(tables: &MixerTables, d: &ORDescriptor) -> Option<(Option<String>, String)> {
    let formal = d.formal_name.as_ref()?;
    let m = tables.to_mailbox(&formal.address).ok()?;
    Some((d.free_form_text(), m.to_string()))
}

fn address_list<'x>(list: Vec<(Option<String>, String)>) -> BuilderAddress<'x> {
    BuilderAddress::new_list(
        list.into_iter()
            .map(|(name, addr)| BuilderAddress::new_address(name, addr))
            .collect(),
    )
}

fn recipients_header(
    tables: &MixerTables,
    list: &[RecipientSpecifier],
) -> Vec<(Option<String>, String)> {
    list.iter()
        .filter_map(|r| builder_address(tables, &r.recipient))
        .collect()
}

fn msg_id(id: &IpmIdentifier, tables: &MixerTables) -> String {
    let local = ascii_from_printable(&id.user_relative_identifier)
        .unwrap_or_else(|_| id.user_relative_identifier.clone());
    let local = local.trim_matches(['<', '>']);
    if local.contains('@') {
        local.to_owned()
    } else {
        // RFC 2156 §5.3.6: an X.400-generated identifier becomes a message id at the gateway.
        let clean: String = local
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{clean}@{}", tables.gateway_domain())
    }
}

fn body_mime(part: &BodyPart, n: usize, tables: &MixerTables) -> Option<MimePart<'static>> {
    match part {
        BodyPart::Ia5Text { text, .. } => Some(MimePart::new("text/plain", text.clone())),
        BodyPart::Bilaterally(raw) => Some(restore_mime_entity(raw).unwrap_or_else(|| {
            MimePart::new("application/octet-stream", raw.clone())
                .attachment(format!("bodypart-{n}.bin"))
        })),
        BodyPart::Message { ipm, .. } => {
            let inner = ipm_to_rfc822(ipm, None, tables).ok()?;
            Some(MimePart::new("message/rfc822", inner))
        }
        other => match other.general_text().and_then(|g| general_text(&g)) {
            Some(text) => Some(MimePart::new("text/plain", text)),
            None => {
                let mut w = crate::ber::Writer::new();
                other.encode(&mut w).ok()?;
                let raw = w.finish();
                let bp_type = bp_type(other, &raw)?;
                Some(
                    MimePart::new(
                        MimeContentType::new("application/x400-bp").attribute("bp-type", bp_type),
                        raw,
                    )
                    .attachment(format!("bodypart-{n}.ber")),
                )
            }
        },
    }
}

/// The `bp-type` parameter of `application/x400-bp` (RFC 1494 §6.1, kept by RFC 2157): the
/// context tag number of a basic body part, the data's object identifier for an extended one.
fn bp_type(part: &BodyPart, raw: &[u8]) -> Option<String> {
    match part {
        BodyPart::Extended { data, .. } => data.direct_reference.as_ref().map(|o| o.to_string()),
        _ => crate::ber::parse_one(raw)
            .ok()
            .map(|t| t.tag.number.to_string()),
    }
}

/// An `application/x400-bp` MIME part back as the X.400 body part it carries, when the data
/// is one whole BER body part of the type its `bp-type` names (else it is carried like any
/// other MIME part).
fn x400_body_part(part: &mail_parser::MessagePart<'_>) -> Option<BodyPart> {
    let ct = part.content_type()?;
    if !ct.ctype().eq_ignore_ascii_case("application")
        || !ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("x400-bp"))
    {
        return None;
    }
    let declared = ct.attribute("bp-type")?.trim().to_owned();
    let raw = part.contents();
    let tlv = crate::ber::parse_one(raw).ok()?;
    let body = BodyPart::decode(&tlv).ok()?;
    (bp_type(&body, raw)? == declared).then_some(body)
}

/// A MIME entity that travelled as a bilaterally defined body part, back as that entity.
fn restore_mime_entity(raw: &[u8]) -> Option<MimePart<'static>> {
    let parsed = MessageParser::default().parse(raw)?;
    let part = parsed.parts.first()?;
    let ct = part.content_type()?;
    let mime = match ct.subtype() {
        Some(s) => format!("{}/{}", ct.ctype(), s),
        None => ct.ctype().to_string(),
    };
    let data = part.contents().to_vec();
    let mut p = MimePart::new(mime, data);
    if let Some(name) = part.attachment_name() {
        p = p.attachment(name.to_owned());
    }
    Some(p)
}

fn ipm_to_rfc822(
    ipm: &Ipm,
    envelope: Option<&MessageTransferEnvelope>,
    tables: &MixerTables,
) -> Result<Vec<u8>, GatewayError> {
    let h = &ipm.heading;
    let mut b = MessageBuilder::new();
    let from = h
        .originator
        .as_ref()
        .and_then(|d| builder_address(tables, d))
        .or_else(|| {
            let e = envelope?;
            let m = tables.to_mailbox(&e.originator_name.address).ok()?;
            Some((None, m.to_string()))
        });
    let authorizing: Vec<_> = h
        .authorizing_users
        .iter()
        .filter_map(|d| builder_address(tables, d))
        .collect();
    match (from, authorizing.is_empty()) {
        (Some(from), true) => b = b.from(address_list(vec![from])),
        (from, false) => {
            b = b.from(address_list(authorizing));
            if let Some(sender) = from {
                b = b.sender(address_list(vec![sender]));
            }
        }
        (None, true) => {}
    }
    for (list, which) in [
        (&h.primary_recipients, 0),
        (&h.copy_recipients, 1),
        (&h.blind_copy_recipients, 2),
    ] {
        let addrs = recipients_header(tables, list);
        if addrs.is_empty() {
            continue;
        }
        b = match which {
            0 => b.to(address_list(addrs)),
            1 => b.cc(address_list(addrs)),
            _ => b.bcc(address_list(addrs)),
        };
    }
    if let Some(s) = h.display_subject() {
        b = b.subject(s);
    }
    b = b.message_id(msg_id(&h.this_ipm, tables));
    if let Some(r) = &h.replied_to_ipm {
        b = b.in_reply_to(msg_id(r, tables));
    }
    if !h.related_ipms.is_empty() {
        let refs: Vec<String> = h.related_ipms.iter().map(|r| msg_id(r, tables)).collect();
        b = b.references(refs);
    }
    match h.importance {
        Importance::High => b = b.header("Importance", Raw::new("high")),
        Importance::Low => b = b.header("Importance", Raw::new("low")),
        Importance::Normal => {}
    }
    if let Some(t) = h.expiry_time.as_ref().and_then(rfc5322_time) {
        b = b.header("Expires", Raw::new(t));
    }
    if let Some(t) = h.reply_time.as_ref().and_then(rfc5322_time) {
        b = b.header("Reply-By", Raw::new(t));
    }
    let reply_to: Vec<_> = h
        .reply_recipients
        .iter()
        .filter_map(|d| builder_address(tables, d))
        .collect();
    if !reply_to.is_empty() {
        b = b.reply_to(address_list(reply_to));
    }
    if !h.obsoleted_ipms.is_empty() {
        let ids: Vec<String> = h
            .obsoleted_ipms
            .iter()
            .map(|r| format!("<{}>", msg_id(r, tables)))
            .collect();
        b = b.header("Obsoletes", Raw::new(ids.join(" ")));
    }
    if h.auto_forwarded {
        b = b.header("Autoforwarded", Raw::new("TRUE"));
    }
    if let Some(s) = h.sensitivity {
        let v = match s {
            Sensitivity::Personal => "Personal",
            Sensitivity::Private => "Private",
            Sensitivity::CompanyConfidential => "Company-Confidential",
        };
        b = b.header("Sensitivity", Raw::new(v));
    }
    if let Some(e) = envelope {
        b = b.header(
            "X400-MTS-Identifier",
            Raw::new(format!("[{}]", e.message_identifier)),
        );
        b = b.header("X400-Content-Type", Raw::new("P2-1988 (22)"));
        for t in &e.trace_information {
            let g = &t.global_domain;
            b = b.header(
                "X400-Received",
                Raw::new(format!(
                    "by /C={}/ADMD={}/PRMD={}/ ; {} ; {}",
                    g.country,
                    g.admd,
                    g.prmd.as_deref().unwrap_or(""),
                    match t.domain_supplied.routing_action {
                        RoutingAction::Relayed => "relayed",
                        RoutingAction::Rerouted => "rerouted",
                    },
                    t.domain_supplied.arrival_time
                )),
            );
        }
        if let Some(date) = e
            .trace_information
            .first()
            .and_then(|t| t.domain_supplied.arrival_time.to_timestamp())
        {
            b = b.date((date.0 / 1000) as i64);
        }
    }
    let parts: Vec<MimePart<'static>> = ipm
        .body
        .iter()
        .enumerate()
        .filter_map(|(n, p)| body_mime(p, n, tables))
        .collect();
    b = match parts.len() {
        0 => b.text_body(""),
        1 => match parts.into_iter().next() {
            Some(p) => b.body(p),
            None => b,
        },
        _ => b.body(MimePart::new("multipart/mixed", MimeBody::Multipart(parts))),
    };
    b.write_to_vec()
        .map_err(|e| GatewayError::Content(format!("cannot write the message: {e}")))
}

/// Converts a queued P1 message for the given O/R recipients into an Internet message.
pub fn to_internet(
    stored: &[u8],
    recipients: &[(usize, &ORAddress, Notify)],
    tables: &MixerTables,
    now: Timestamp,
) -> Result<Converted, GatewayError> {
    let MtsApdu::Message(m) = MtsApdu::decode(stored)? else {
        return Err(GatewayError::NotAMessage);
    };
    if m.envelope.trace_information.len() >= MAX_GATEWAY_TRACE {
        return Err(GatewayError::Loop);
    }
    if !matches!(m.envelope.content_type, ContentType::BuiltIn(2 | 22)) {
        return Err(GatewayError::Content(format!(
            "content type {:?} is not an IPM",
            m.envelope.content_type
        )));
    }
    let ipm = match InformationObject::decode(&m.content) {
        Ok(InformationObject::Ipm(ipm)) => ipm,
        Ok(InformationObject::Ipn(_)) => {
            return Err(GatewayError::Content(
                "an IPM notification (not converted yet)".into(),
            ));
        }
        Err(e) => return Err(GatewayError::Content(format!("invalid IPM: {e}"))),
    };
    let originator = tables
        .to_mailbox(&m.envelope.originator_name.address)
        .map_err(|error| GatewayError::Address {
            address: m.envelope.originator_name.address.to_string(),
            error,
        })?;
    let mut refused = Vec::new();
    let mut origin = Vec::new();
    let mut rcpts = Vec::new();
    for (i, or, notify) in recipients {
        match tables.to_mailbox(or) {
            Ok(mb) => {
                let mut r = Recipient::new(Address::Mailbox(mb));
                r.notify = *notify;
                rcpts.push(r);
                origin.push(*i);
            }
            Err(error) => refused.push((
                *i,
                GatewayError::Address {
                    address: or.to_string(),
                    error,
                },
            )),
        }
    }
    let mut content = received_fields(&m.envelope, tables, now).into_bytes();
    content.extend_from_slice(&ipm_to_rfc822(&ipm, Some(&m.envelope), tables)?);
    let mut env = Envelope::new(ReversePath::Address(Address::Mailbox(originator)), now);
    env.content_type = CoreContentType::Internet {
        body: if content.is_ascii() {
            mswitch_core::envelope::BodyType::SevenBit
        } else {
            mswitch_core::envelope::BodyType::EightBitMime
        },
        smtputf8: false,
    };
    env.priority = Priority::from_x400(m.envelope.priority_or_default().into());
    env.dsn_envid = Some(m.envelope.message_identifier.to_string());
    env.recipients = rcpts;
    env.size = content.len() as u64;
    Ok(Converted {
        envelope: env,
        content,
        refused,
        origin,
    })
}

#[cfg(test)]
mod tests;
