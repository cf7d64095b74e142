//! Delivery status notifications: the RFC 3464 `multipart/report; report-type=delivery-status`
//! message the switch returns to an originator when a message failed, is delayed, or (when
//! asked for) was delivered, relayed or expanded.
//!
//! This module is pure: it reads no clock (the caller passes `now`), draws no randomness (the
//! caller passes `unique` entropy for the MIME boundary and the `Message-ID`) and does no I/O.
//! The scheduler decides which recipients a notification lists, using [`wanted`] for the
//! RFC 3461 `NOTIFY` rules, and [`build`] writes the message:
//!
//! 1. `text/plain`: an explanation for a human, one paragraph per recipient;
//! 2. `message/delivery-status` (RFC 3464 §2.1), or `message/global-delivery-status`
//!    (RFC 6533 §6) when an address involved is not ASCII;
//! 3. for failure and delay notices, the message: whole (`message/rfc822`) for failures unless
//!    `RET=HDRS`, otherwise its header section (`text/rfc822-headers`); `message/global` and
//!    `message/global-headers` (RFC 6532 §3.7, RFC 6533 §6) when the returned header section is
//!    not ASCII or the message needed SMTPUTF8.
//!
//! The notification is sent with the null reverse-path (RFC 3461 §6.1), so it can never cause
//! another notification; [`build`] in turn refuses to answer a null reverse-path.
//!
//! Every line ends in CRLF and is at most [`MAX_LINE_OCTETS`] long. Text that came from a peer
//! (reply texts, host names) or from the envelope is cleaned before it is written: control
//! characters (CR and LF among them) become spaces, so no such text can start a header line or
//! a MIME boundary; in the 7-bit `message/delivery-status` part non-ASCII characters become `?`.

#[cfg(test)]
mod tests;

use crate::address::{Address, Mailbox};
use crate::envelope::{ContentType, DsnRet, Envelope, Recipient};
use crate::id::{QueueId, Timestamp};
use crate::status::{EnhancedCode, Status};

/// Longest line written, in octets without the CRLF (RFC 5322 §2.1.1, RFC 5321 §4.5.3.1.6).
pub const MAX_LINE_OCTETS: usize = 998;
/// Header lines are folded to stay within this many octets when they can be (RFC 5322 §2.1.1
/// "SHOULD be no more than 78 characters").
pub const PREFERRED_LINE_OCTETS: usize = 78;
/// Width the human-readable explanation is wrapped to.
const TEXT_WIDTH: usize = 76;
/// Indentation of continuation lines in the human-readable explanation.
const TEXT_INDENT: &str = "    ";

/// What happened to a recipient, as RFC 3464 §2.3.3 `action-value` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DsnAction {
    /// `failed`: the message could not be delivered; no further attempts are made.
    Failed,
    /// `delayed`: not delivered yet; delivery is still being retried.
    Delayed,
    /// `delivered`: delivered to the recipient's mailbox (or to a mailing list).
    Delivered,
    /// `relayed`: passed to a system that will not send a notice of delivery.
    Relayed,
    /// `expanded`: delivered to an alias and forwarded to several further addresses.
    Expanded,
}

impl DsnAction {
    /// The `action-value` as written in the `Action` field.
    pub fn as_str(self) -> &'static str {
        match self {
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
            DsnAction::Expanded => "expanded",
        }
    }

    /// Whether this is a success report (`delivered`, `relayed`, `expanded`): one that only a
    /// `NOTIFY=SUCCESS` request asks for.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            DsnAction::Delivered | DsnAction::Relayed | DsnAction::Expanded
        )
    }

    /// The class used when a recipient's status code is unusable (RFC 3461 §6.3 (g): 4.0.0 or
    /// 5.0.0 when nothing more specific fits).
    fn fallback_class(self) -> u8 {
        match self {
            DsnAction::Failed => 5,
            DsnAction::Delayed => 4,
            DsnAction::Delivered | DsnAction::Relayed | DsnAction::Expanded => 2,
        }
    }
}

/// One recipient as a notification reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// Index of the recipient in [`Envelope::recipients`]. An index out of range is skipped.
    pub index: usize,
    /// What happened.
    pub action: DsnAction,
    /// The status: its enhanced code goes into the `Status` field, its reply code and text into
    /// `Diagnostic-Code` when [`diagnostic_from_peer`](Self::diagnostic_from_peer) is set, and
    /// into the human-readable explanation in any case.
    pub status: Status,
    /// The host that gave the status (`Remote-MTA: dns; host`), if a remote MTA was involved.
    pub remote_mta: Option<String>,
    /// Whether `status` is a reply received from a peer (written as `Diagnostic-Code: smtp;`),
    /// rather than one made up by this switch.
    pub diagnostic_from_peer: bool,
    /// When delivery was last attempted (`Last-Attempt-Date`), if it was.
    pub last_attempt: Option<Timestamp>,
    /// Until when delivery will be retried (`Will-Retry-Until`); written for
    /// [`DsnAction::Delayed`] only, as RFC 3464 §2.3.9 requires.
    pub will_retry_until: Option<Timestamp>,
}

/// Everything [`build`] needs to write one notification about one message.
#[derive(Debug, Clone)]
pub struct DsnRequest<'a> {
    /// This switch's host name: the `Reporting-MTA` (type `dns`), the domain of the
    /// `MAILER-DAEMON` address in `From` and of the `Message-ID`.
    pub reporting_mta: &'a str,
    /// The queue identifier of the message reported on (goes into the `Message-ID`).
    pub queue_id: QueueId,
    /// The envelope of the message reported on.
    pub envelope: &'a Envelope,
    /// The content of the message reported on, as queued (CRLF line ends).
    pub content: &'a [u8],
    /// The recipients to report on, in the order they are listed; the caller chooses them
    /// (see [`wanted`]).
    pub recipients: Vec<DsnRecipient>,
    /// The current time, for the `Date` field.
    pub now: Timestamp,
    /// Entropy from the caller (a random number), for the MIME boundary and the `Message-ID`.
    pub unique: u64,
}

/// A notification ready to be queued: send it with the null reverse-path (`MAIL FROM:<>`) to
/// [`to`](Self::to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The recipient of the notification: the original message's originator.
    pub to: Mailbox,
    /// The whole message, header and body, CRLF line ends.
    pub content: Vec<u8>,
    /// Whether the content has octets above 127 and needs `BODY=8BITMIME` (RFC 6152).
    pub eight_bit: bool,
    /// Whether the notification needs SMTPUTF8 (RFC 6531): its recipient (the original
    /// originator) or another of its header fields is not ASCII. A notification that merely
    /// reports on a non-ASCII recipient uses `message/global-delivery-status`, an 8-bit body
    /// part, and needs only 8BITMIME.
    pub smtputf8: bool,
}

/// Whether `recipient` asked for a notification of `action` (RFC 3461 §4.1, §5.2): never with
/// `NOTIFY=NEVER`; failures and delays unless `NOTIFY` was given without `FAILURE` or `DELAY`
/// (an absent `NOTIFY` means `FAILURE,DELAY`); `delivered`, `relayed` (the next hop does not
/// report delivery) and `expanded` only with `NOTIFY=SUCCESS`.
pub fn wanted(recipient: &Recipient, action: DsnAction) -> bool {
    let notify = recipient.notify;
    if notify.is_never() {
        return false;
    }
    match action {
        DsnAction::Failed => notify.failure(),
        DsnAction::Delayed => notify.delay(),
        DsnAction::Delivered | DsnAction::Relayed | DsnAction::Expanded => notify.success(),
    }
}

/// Formats `t` as an RFC 5322 §3.3 `date-time` in UTC, `Sun, 29 Nov 2026 21:00:00 +0000`
/// (milliseconds are dropped).
pub fn format_rfc5322_date(t: Timestamp) -> String {
    const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.millis() / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = WEEKDAYS[((days + 4) % 7) as usize];
    let month = MONTHS[(month - 1) as usize];
    format!(
        "{weekday}, {day:02} {month} {year:04} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // day of the 400-year era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Writes the notification for `req`.
///
/// Returns `None` when no notification may or can be sent: the originator is the null
/// reverse-path (a notification is never answered with another, RFC 3461 §5.2 and RFC 5321
/// §4.5.5), the originator is not an Internet mailbox (an X.400 originator gets an X.400
/// report, not a DSN), or no valid recipient is listed.
pub fn build(req: &DsnRequest<'_>) -> Option<Notification> {
    let to = req.envelope.originator.mailbox()?.clone();
    let listed: Vec<(&DsnRecipient, &Recipient)> = req
        .recipients
        .iter()
        .filter_map(|r| req.envelope.recipients.get(r.index).map(|rcpt| (r, rcpt)))
        .collect();
    if listed.is_empty() {
        return None;
    }

    let any_failed = listed.iter().any(|(r, _)| r.action == DsnAction::Failed);
    let any_delayed = listed.iter().any(|(r, _)| r.action == DsnAction::Delayed);
    let global = !to.to_string().is_ascii()
        || listed.iter().any(|(_, rcpt)| {
            !rcpt.address.to_string().is_ascii()
                || rcpt
                    .original
                    .as_ref()
                    .is_some_and(|o| !o.address.is_ascii())
        });
    let reporting_mta = clean(req.reporting_mta, true);

    let returned = returned_part(req, any_failed, any_delayed);
    let text = explanation(&reporting_mta, &listed, returned.as_ref());
    let status = delivery_status(&reporting_mta, req.envelope, &listed, global);

    let boundary = boundary(req, |candidate| {
        let needle = candidate.as_bytes();
        contains(text.as_bytes(), needle)
            || contains(status.as_bytes(), needle)
            || returned
                .as_ref()
                .is_some_and(|r| contains(&r.content, needle))
    });

    let subject = if any_failed {
        "Undelivered Mail Returned to Sender"
    } else if any_delayed {
        "Delayed Mail (still being retried)"
    } else {
        "Successful Mail Delivery Report"
    };

    let mut head = String::new();
    push_field(
        &mut head,
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{reporting_mta}>"),
    );
    push_field(&mut head, "To", &clean(&to.to_string(), true));
    push_field(&mut head, "Subject", subject);
    push_field(&mut head, "Date", &format_rfc5322_date(req.now));
    push_field(
        &mut head,
        "Message-ID",
        &format!("<{:016x}.{}@{reporting_mta}>", req.unique, req.queue_id),
    );
    push_field(&mut head, "Auto-Submitted", "auto-replied");
    push_field(&mut head, "MIME-Version", "1.0");
    push_field(
        &mut head,
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\""),
    );
    // The envelope recipient counts too: `clean` may have made the To: field ASCII (a
    // U+2028 in the address becomes a space) while the address itself is not.
    let smtputf8 = !head.is_ascii() || !to.to_string().is_ascii();

    let mut out: Vec<u8> = Vec::with_capacity(
        head.len() + text.len() + status.len() + req.content.len().min(1 << 20) + 1024,
    );
    let eight_bit_body = !text.is_ascii()
        || !status.is_ascii()
        || returned.as_ref().is_some_and(|r| !r.content.is_ascii());
    out.extend_from_slice(head.as_bytes());
    push_raw_field(
        &mut out,
        "Content-Transfer-Encoding",
        if eight_bit_body { "8bit" } else { "7bit" },
    );
    out.extend_from_slice(b"\r\nThis is a MIME-encapsulated delivery status notification.\r\n");

    // Part 1: the explanation.
    let mut part = String::new();
    push_field(&mut part, "Content-Description", "Notification");
    if text.is_ascii() {
        push_field(&mut part, "Content-Type", "text/plain; charset=us-ascii");
    } else {
        push_field(&mut part, "Content-Type", "text/plain; charset=utf-8");
        push_field(&mut part, "Content-Transfer-Encoding", "8bit");
    }
    push_part(&mut out, &boundary, part.as_bytes(), text.as_bytes());

    // Part 2: the machine-readable report.
    let mut part = String::new();
    push_field(&mut part, "Content-Description", "Delivery report");
    if global {
        push_field(&mut part, "Content-Type", "message/global-delivery-status");
    } else {
        push_field(&mut part, "Content-Type", "message/delivery-status");
    }
    if !status.is_ascii() {
        push_field(&mut part, "Content-Transfer-Encoding", "8bit");
    }
    push_part(&mut out, &boundary, part.as_bytes(), status.as_bytes());

    // Part 3: the message, or its header section.
    if let Some(returned) = &returned {
        let mut part = String::new();
        push_field(&mut part, "Content-Description", returned.description);
        push_field(&mut part, "Content-Type", returned.content_type);
        if !returned.content.is_ascii() {
            push_field(&mut part, "Content-Transfer-Encoding", "8bit");
        }
        push_part(&mut out, &boundary, part.as_bytes(), &returned.content);
    }
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");

    let eight_bit = !out.is_ascii();
    Some(Notification {
        to,
        content: out,
        eight_bit,
        smtputf8,
    })
}

/// The third part: what of the original message is returned, and how it is labelled.
struct Returned {
    content_type: &'static str,
    description: &'static str,
    content: Vec<u8>,
}

/// Chooses the third part (RFC 3461 §4.3, §6.2): failure notices return the whole message
/// unless `RET=HDRS` was given; delay notices and `RET=HDRS` return the header section; success
/// notices return nothing. A message that cannot travel in an 8-bit body (NUL, bare CR or LF,
/// lines over [`MAX_LINE_OCTETS`]: a `BINARYMIME` message) is returned as its header section.
fn returned_part(req: &DsnRequest<'_>, any_failed: bool, any_delayed: bool) -> Option<Returned> {
    if !any_failed && !any_delayed || req.content.is_empty() {
        return None;
    }
    let utf8_message = matches!(
        req.envelope.content_type,
        ContentType::Internet { smtputf8: true, .. }
    );
    let full = any_failed
        && req.envelope.dsn_ret != Some(DsnRet::Headers)
        && is_8bitmime_safe(req.content);
    if full {
        let global = utf8_message || !header_section(req.content).is_ascii();
        return Some(Returned {
            content_type: if global {
                "message/global"
            } else {
                "message/rfc822"
            },
            description: "Undelivered Message",
            content: req.content.to_vec(),
        });
    }
    let headers = normalize_lines(header_section(req.content));
    if headers.is_empty() {
        return None;
    }
    let global = utf8_message || !headers.is_ascii();
    Some(Returned {
        content_type: if global {
            "message/global-headers"
        } else {
            "text/rfc822-headers"
        },
        description: if any_failed {
            "Undelivered Message Headers"
        } else {
            "Message Headers"
        },
        content: headers,
    })
}

/// The header section of `content`: everything before the first empty line (all of it when
/// there is none), with the line end of the last header line.
fn header_section(content: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < content.len() {
        let end = content[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(content.len(), |i| start + i + 1);
        let line = &content[start..end];
        let bare = line
            .strip_suffix(b"\n")
            .map_or(line, |l| l.strip_suffix(b"\r").unwrap_or(l));
        if bare.is_empty() {
            return &content[..start];
        }
        start = end;
    }
    content
}

/// Whether `content` can be carried as is in a `7bit` or `8bit` body (RFC 2045 §2.7, §2.8):
/// no NUL, CR and LF only as CRLF, no line longer than [`MAX_LINE_OCTETS`].
fn is_8bitmime_safe(content: &[u8]) -> bool {
    let mut line = 0usize;
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            0 => return false,
            b'\r' => {
                if content.get(i + 1) != Some(&b'\n') {
                    return false;
                }
                line = 0;
                i += 2;
                continue;
            }
            b'\n' => return false,
            _ => {
                line += 1;
                if line > MAX_LINE_OCTETS {
                    return false;
                }
            }
        }
        i += 1;
    }
    true
}

/// `block` made safe for an 8-bit body: NUL dropped, bare CR and LF turned into CRLF, lines
/// longer than [`MAX_LINE_OCTETS`] broken with CRLF SP (a fold), and a final CRLF.
fn normalize_lines(block: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(block.len() + 2);
    let mut line = 0usize;
    let mut i = 0;
    while i < block.len() {
        match block[i] {
            0 => {}
            b'\r' | b'\n' => {
                if block[i] == b'\r' && block.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                out.extend_from_slice(b"\r\n");
                line = 0;
            }
            b => {
                if line == MAX_LINE_OCTETS {
                    out.extend_from_slice(b"\r\n ");
                    line = 1;
                }
                out.push(b);
                line += 1;
            }
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The human-readable first part.
fn explanation(
    reporting_mta: &str,
    listed: &[(&DsnRecipient, &Recipient)],
    returned: Option<&Returned>,
) -> String {
    let mut text = String::new();
    push_wrapped(
        &mut text,
        &format!("This is the mail delivery system at {reporting_mta}."),
        "",
    );
    let actions = |a: DsnAction| listed.iter().any(|(r, _)| r.action == a);
    if actions(DsnAction::Failed) {
        text.push_str("\r\n");
        push_wrapped(
            &mut text,
            "Your message could not be delivered to one or more of its recipients. \
             No further attempts will be made for them.",
            "",
        );
    }
    if actions(DsnAction::Delayed) {
        text.push_str("\r\n");
        push_wrapped(
            &mut text,
            "Your message has not yet been delivered to one or more of its recipients. \
             Delivery is still being retried; you do not need to send the message again.",
            "",
        );
    }
    if listed.iter().any(|(r, _)| r.action.is_success()) {
        text.push_str("\r\n");
        push_wrapped(
            &mut text,
            "Your message was delivered, or passed on, to one or more of its recipients, \
             as you asked to be told.",
            "",
        );
    }
    for (r, rcpt) in listed {
        let what = match r.action {
            DsnAction::Failed => "delivery failed",
            DsnAction::Delayed => "delivery delayed",
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed to a system that does not report delivery",
            DsnAction::Expanded => "delivered and forwarded to further recipients",
        };
        let address = match &rcpt.address {
            Address::Mailbox(m) => format!("<{m}>"),
            Address::X400(o) => o.to_string(),
        };
        text.push_str("\r\n");
        push_wrapped(
            &mut text,
            &clean(&format!("{address}: {what}"), true),
            TEXT_INDENT,
        );
        let mut detail = format!(
            "{TEXT_INDENT}{} {} {}",
            r.status.code, r.status.enhanced, r.status.text
        );
        if let Some(host) = &r.remote_mta
            && r.diagnostic_from_peer
        {
            detail.push_str(&format!(" (reported by {host})"));
        }
        push_wrapped(&mut text, &clean(detail.trim_end(), true), TEXT_INDENT);
        if r.action == DsnAction::Delayed
            && let Some(until) = r.will_retry_until
        {
            push_wrapped(
                &mut text,
                &format!(
                    "{TEXT_INDENT}Delivery will be retried until {}.",
                    format_rfc5322_date(until)
                ),
                TEXT_INDENT,
            );
        }
    }
    if let Some(returned) = returned {
        text.push_str("\r\n");
        push_wrapped(
            &mut text,
            if returned.content_type.ends_with("headers") {
                "The header of your message is attached."
            } else {
                "Your message is attached."
            },
            "",
        );
    }
    text
}

/// The body of the `message/delivery-status` part (RFC 3464 §2.1): the per-message fields,
/// then a blank line and the per-recipient fields for each recipient.
fn delivery_status(
    reporting_mta: &str,
    envelope: &Envelope,
    listed: &[(&DsnRecipient, &Recipient)],
    global: bool,
) -> String {
    let mut out = String::new();
    if let Some(envid) = &envelope.dsn_envid {
        push_field(&mut out, "Original-Envelope-Id", &envelope_id(envid));
    }
    push_field(
        &mut out,
        "Reporting-MTA",
        &format!("dns; {}", clean(reporting_mta, global)),
    );
    push_field(
        &mut out,
        "Arrival-Date",
        &format_rfc5322_date(envelope.arrival),
    );
    for (r, rcpt) in listed {
        out.push_str("\r\n");
        if let Some(original) = &rcpt.original {
            let addr_type = address_type(&original.addr_type);
            let address = if addr_type.eq_ignore_ascii_case("utf-8") {
                utf8_address(&original.address, global)
            } else {
                clean(&original.address, global)
            };
            push_field(
                &mut out,
                "Original-Recipient",
                &format!("{addr_type}; {address}"),
            );
        }
        let final_recipient = match &rcpt.address {
            Address::Mailbox(m) => {
                let m = m.to_string();
                if m.is_ascii() {
                    format!("rfc822; {}", clean(&m, false))
                } else {
                    format!("utf-8; {}", utf8_address(&m, global))
                }
            }
            Address::X400(o) => format!("x400; {}", clean(&o.to_string(), global)),
        };
        push_field(&mut out, "Final-Recipient", &final_recipient);
        push_field(&mut out, "Action", r.action.as_str());
        push_field(
            &mut out,
            "Status",
            &status_code(r.action, r.status.enhanced).to_string(),
        );
        if let Some(host) = &r.remote_mta {
            push_field(
                &mut out,
                "Remote-MTA",
                &format!("dns; {}", clean(host, global)),
            );
        }
        if r.diagnostic_from_peer && (200..600).contains(&r.status.code) {
            let text = clean(&r.status.text, global);
            let text = text.trim();
            // The reply as the peer gave it (RFC 3464 §2.3.6): code, enhanced code when it has
            // one of the same class, text.
            let mut diagnostic = format!("smtp; {}", r.status.code);
            let e = r.status.enhanced;
            if u16::from(e.class) == r.status.code / 100 {
                diagnostic.push_str(&format!(" {e}"));
            }
            if !text.is_empty() {
                diagnostic.push(' ');
                diagnostic.push_str(text);
            }
            push_field(&mut out, "Diagnostic-Code", &diagnostic);
        }
        if let Some(at) = r.last_attempt {
            push_field(&mut out, "Last-Attempt-Date", &format_rfc5322_date(at));
        }
        if r.action == DsnAction::Delayed
            && let Some(until) = r.will_retry_until
        {
            push_field(&mut out, "Will-Retry-Until", &format_rfc5322_date(until));
        }
    }
    out
}

/// The `Status` code for a recipient (RFC 3464 §2.3.4: `DIGIT "." 1*3DIGIT "." 1*3DIGIT`):
/// the status's enhanced code when it is well-formed and of a class that fits the action, else
/// `class.0.0` of the action's class.
fn status_code(action: DsnAction, code: EnhancedCode) -> EnhancedCode {
    let class_fits = match action {
        DsnAction::Failed | DsnAction::Delayed => matches!(code.class, 4 | 5),
        DsnAction::Delivered | DsnAction::Relayed | DsnAction::Expanded => {
            matches!(code.class, 2 | 4 | 5)
        }
    };
    if class_fits && code.subject <= 999 && code.detail <= 999 {
        code
    } else {
        EnhancedCode::new(action.fallback_class(), 0, 0)
    }
}

/// The `Original-Envelope-Id` value (RFC 3464 §2.2.1 `*text`). RFC 3461 §6.3 (a) writes the
/// ENVID decoded, and §4.4 limits it to printable US-ASCII; a value outside that range (which
/// the SMTP server should have refused) is written xtext-encoded (RFC 3461 §4) as a whole, so
/// it stays one recoverable line.
fn envelope_id(envid: &str) -> String {
    if envid.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return envid.to_owned();
    }
    let mut out = String::with_capacity(envid.len() * 3);
    for b in envid.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// An `address-type` (RFC 3464 §2.1.2: an atom) from an ORCPT: anything but atext dropped,
/// `unknown` if nothing is left.
fn address_type(addr_type: &str) -> String {
    let atom: String = addr_type
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(*c))
        .collect();
    if atom.is_empty() {
        "unknown".to_owned()
    } else {
        atom
    }
}

/// An address of type `utf-8` (RFC 6533 §3). In `message/global-delivery-status` the
/// `utf-8-address` form (the mailbox as is) is written when it has no control characters and
/// the `utf-8-addr-unitext` form otherwise; in `message/delivery-status` the 7-bit
/// `utf-8-addr-xtext` form, where every character outside QCHAR (printable ASCII but SP, `\`,
/// `+`, `=`) is written `\x{HEX}`.
fn utf8_address(address: &str, global: bool) -> String {
    if global && !address.chars().any(is_unsafe_char) {
        return address.to_owned();
    }
    let mut out = String::with_capacity(address.len() + 8);
    for c in address.chars() {
        let qchar = c.is_ascii_graphic() && !matches!(c, '\\' | '+' | '=');
        if qchar || global && !c.is_ascii() && !is_unsafe_char(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", u32::from(c)));
        }
    }
    out
}

/// Characters never written as they are: controls (C0, DEL, C1, CR and LF among them) and the
/// Unicode line and paragraph separators.
fn is_unsafe_char(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// `s` with every unsafe character (see [`is_unsafe_char`]) replaced by a space and, unless
/// `utf8`, every non-ASCII character by `?`: text that cannot break a line.
fn clean(s: &str, utf8: bool) -> String {
    s.chars()
        .map(|c| {
            if is_unsafe_char(c) {
                ' '
            } else if !utf8 && !c.is_ascii() {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Appends `name: value` CRLF, folded at spaces to keep lines within
/// [`PREFERRED_LINE_OCTETS`] where possible; a run without spaces too long for
/// [`MAX_LINE_OCTETS`] is broken with CRLF SP. `value` must already be [`clean`].
fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    let start = name.len() + 1;
    let mut col = start;
    for word in value.split(' ') {
        let fold = !word.is_empty() && col > start && col + 1 + word.len() > PREFERRED_LINE_OCTETS
            || col + 1 > MAX_LINE_OCTETS;
        if fold {
            out.push_str("\r\n");
            col = 0;
        }
        out.push(' ');
        col += 1;
        for c in word.chars() {
            let n = c.len_utf8();
            if col + n > MAX_LINE_OCTETS {
                out.push_str("\r\n ");
                col = 1;
            }
            out.push(c);
            col += n;
        }
    }
    out.push_str("\r\n");
}

/// Appends an ASCII header field that needs no folding.
fn push_raw_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `text` as lines wrapped at spaces to [`TEXT_WIDTH`], each at most
/// [`MAX_LINE_OCTETS`], each ending in CRLF. Continuation lines get the indentation `text`
/// starts with, or `hanging` if it starts with none. `text` must already be [`clean`].
fn push_wrapped(out: &mut String, text: &str, hanging: &str) {
    let lead = text.len() - text.trim_start_matches(' ').len();
    let indent = &text[..lead];
    let cont = if lead > 0 { indent } else { hanging };
    out.push_str(indent);
    let mut col = indent.len();
    let mut first = true;
    for word in text[lead..].split(' ').filter(|w| !w.is_empty()) {
        if !first {
            if col + 1 + word.len() > TEXT_WIDTH {
                out.push_str("\r\n");
                out.push_str(cont);
                col = cont.len();
            } else {
                out.push(' ');
                col += 1;
            }
        }
        first = false;
        for c in word.chars() {
            let n = c.len_utf8();
            if col + n > MAX_LINE_OCTETS {
                out.push_str("\r\n");
                out.push_str(cont);
                col = cont.len();
            }
            out.push(c);
            col += n;
        }
    }
    out.push_str("\r\n");
}

/// Appends a body part: the delimiter line, the part's header fields, a blank line, the body.
/// The CRLF that ends the body belongs to the next delimiter (RFC 2046 §5.1.1), so it is
/// written there and the body comes back out unchanged.
fn push_part(out: &mut Vec<u8>, boundary: &str, head: &[u8], body: &[u8]) {
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(head);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// A MIME boundary (RFC 2046 §5.1.1: at most 70 characters) for `req` that `collides` reports
/// absent from every part: the first candidate is made of the caller's entropy and the queue
/// identifier; later ones add a suffix derived from both and the attempt number.
fn boundary(req: &DsnRequest<'_>, collides: impl Fn(&str) -> bool) -> String {
    let mut attempt = 0u64;
    loop {
        let candidate = boundary_candidate(req.unique, req.queue_id, attempt);
        if !collides(&candidate) {
            return candidate;
        }
        // Each attempt gives a different candidate of the same length, and the content holds
        // fewer distinct substrings of that length than it has octets, so this ends.
        attempt += 1;
    }
}

/// The `attempt`-th boundary candidate (52 characters at most; `=_` cannot occur in
/// quoted-printable text, RFC 2045 §6.7).
fn boundary_candidate(unique: u64, queue_id: QueueId, attempt: u64) -> String {
    let base = format!("=_{unique:016x}.{queue_id}");
    if attempt == 0 {
        base
    } else {
        // `attempt * odd` is a bijection, and so is `mix`: distinct attempts, distinct suffixes.
        let suffix = mix(unique ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        format!("{base}.{suffix:016x}")
    }
}

/// SplitMix64's finalizer: a bijection on `u64` that spreads every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
