//! SMTP wire formats.

pub mod command;
pub mod reply;

/// RFC 5321 §4.1.2 `esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`, the grammar of
/// both MAIL/RCPT parameter keywords and EHLO keywords.
pub(crate) fn is_esmtp_keyword(keyword: &str) -> bool {
    keyword
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && keyword
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
