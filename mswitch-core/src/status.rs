//! Delivery and refusal status: an SMTP reply code with its RFC 3463 enhanced status code and
//! text. Every refusal in the core carries one, so each protocol can put it on the wire (SMTP
//! directly, X.400 through its own mapping).

use std::fmt;

/// Whether a failure may succeed if tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// 4xx / 4.x.x: try again later.
    Transient,
    /// 5xx / 5.x.x: do not try again.
    Permanent,
}

/// An RFC 3463 enhanced status code `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// The subject (RFC 3463 §3: 0 other, 1 addressing, 2 mailbox, 3 mail system, 4 network and
    /// routing, 5 mail delivery protocol, 6 message content or media, 7 security or policy).
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds a code.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A reply: SMTP code, enhanced code and human-readable text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Status {
    /// The three-digit SMTP reply code.
    pub code: u16,
    /// The enhanced status code.
    pub enhanced: EnhancedCode,
    /// Text for the human reader; one line, no CR or LF.
    pub text: String,
}

impl Status {
    /// Builds a status. CR, LF and other control characters in `text` are replaced by spaces so
    /// the text can never break a protocol line or a log line.
    pub fn new(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Self {
        let text: String = text
            .into()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Status {
            code,
            enhanced: EnhancedCode::new(enhanced.0, enhanced.1, enhanced.2),
            text,
        }
    }

    /// Transient or permanent, from the reply code's first digit (anything but 5xx counts as
    /// transient, the safe reading).
    pub fn severity(&self) -> Severity {
        if (500..600).contains(&self.code) {
            Severity::Permanent
        } else {
            Severity::Transient
        }
    }

    /// Whether this is a 2xx success.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.enhanced, self.text)
    }
}
