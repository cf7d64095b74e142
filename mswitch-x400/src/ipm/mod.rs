//! X.420 interpersonal messaging (P2/P22): the `InformationObject` that travels as the content
//! of a message of content type 2 or 22 — an IPM (heading and body) or an IPN (receipt and
//! non-receipt notifications).
//!
//! Written by hand on [`crate::ber`], like [`crate::mts`]: the module is `IMPLICIT TAGS` with
//! one EXPLICIT exception that matters, `subject [8] EXPLICIT SubjectField`.
//!
//! # Kept, not understood
//!
//! Heading elements we do not know, heading, recipient and notification extensions, the
//! parameters and data of extended body parts, and every basic body part other than IA5 text,
//! forwarded IPM and bilaterally defined (g3-facsimile, teletex, videotex, encrypted,
//! nationally defined, mixed mode, …) are kept byte for byte and re-emitted unchanged, so that a
//! gateway or a store that rewrites the heading does not lose what it cannot read.
//!
//! # Re-encoding
//!
//! A value decoded here re-encodes to the bytes it came from when they use definite lengths,
//! primitive strings, SET elements in their ASN.1 order and no DEFAULT value sent explicitly
//! (`importance normal`, `auto-forwarded FALSE`, `reply-requested FALSE`, empty
//! `notification-requests` and `acknowledgment-mode manual` are omitted on encoding, as DER
//! does). Other valid encodings decode to the same value.
//!
//! # Leniency
//!
//! - `subject [8]` must be EXPLICIT; a *primitive* `[8]` (the subject encoded as if the tag
//!   were implicit, a known sender mistake) is accepted and read as the TeletexString octets;
//!   it re-encodes in the correct explicit form. A constructed `[8]` is always read as the
//!   explicit form (an implicit constructed string would be indistinguishable from it).
//! - TeletexString (T.61) octets are kept as received and read as Latin-1, as the rest of the
//!   crate does ([`TeletexString::to_text`]).
//! - IA5String octets above 0x7F are read as Latin-1 characters and written back as the same
//!   octets.
//!
//! # Upper bounds
//!
//! The X.420 upper bounds (IPMSUpperBounds) are named constants here and checked while
//! decoding (a value over a bound fails with [`BerError::TooLarge`]) and while encoding
//! ([`MtsError::Encode`]). Counts X.420 leaves unbounded have a bound of ours.
//!
//! # Errors
//!
//! Decoding and encoding fail with [`MtsError`], the error of the X.411 types: the IPM codec
//! has the same two kinds of fault — the peer's bytes ([`MtsError::Ber`]) and a local value
//! that cannot be sent ([`MtsError::Encode`]).

mod body;
mod heading;
mod ipn;

pub use body::{BodyPart, GeneralText, MessageParameters, character_set};
pub use heading::{
    AutoSubmitted, ExtendedSubject, Heading, Importance, IpmIdentifier, IpmsExtension,
    NotificationRequests, ORDescriptor, RecipientSpecifier, Sensitivity, TeletexString,
};
pub use ipn::{AcknowledgmentMode, Ipn, IpnChoice, NonReceiptFields, ReceiptFields};

use crate::ber::{BerError, Class, Tag, Tlv, Writer, parse_one};
use crate::mts::{MAX_UNKNOWN_ELEMENTS, MtsError};

/// X.420 `ub-alpha-code-length`: the longest distribution-code `AlphaCode`.
pub const UB_ALPHA_CODE_LENGTH: usize = 16;
/// X.420 `ub-auto-forward-comment`: the longest `AutoForwardComment`.
pub const UB_AUTO_FORWARD_COMMENT: usize = 256;
/// X.420 `ub-circulation-list-members`: the most members of a circulation list.
pub const UB_CIRCULATION_LIST_MEMBERS: usize = 256;
/// X.420 `ub-distribution-codes`: the most distribution codes.
pub const UB_DISTRIBUTION_CODES: usize = 16;
/// X.420 `ub-extended-subject-length`: the longest extended subject, in characters.
pub const UB_EXTENDED_SUBJECT_LENGTH: usize = 256;
/// X.420 `ub-free-form-name`: the longest `FreeFormName`, in octets.
pub const UB_FREE_FORM_NAME: usize = 64;
/// X.420 `ub-information-categories`: the most information categories.
pub const UB_INFORMATION_CATEGORIES: usize = 16;
/// X.420 `ub-information-category-length`: the longest information category description.
pub const UB_INFORMATION_CATEGORY_LENGTH: usize = 64;
/// X.420 `ub-ipm-identifier-suffix`: the longest IPM identifier suffix.
pub const UB_IPM_IDENTIFIER_SUFFIX: usize = 2;
/// X.420 `ub-local-ipm-identifier`: the longest `LocalIPMIdentifier`.
pub const UB_LOCAL_IPM_IDENTIFIER: usize = 64;
/// X.420 `ub-manual-handling-instruction-length`: the longest manual handling instruction.
pub const UB_MANUAL_HANDLING_INSTRUCTION_LENGTH: usize = 128;
/// X.420 `ub-manual-handling-instructions`: the most manual handling instructions.
pub const UB_MANUAL_HANDLING_INSTRUCTIONS: usize = 16;
/// X.420 `ub-originators-reference-length`: the longest originator's reference.
pub const UB_ORIGINATORS_REFERENCE_LENGTH: usize = 64;
/// X.420 `ub-precedence`: the largest `Precedence`.
pub const UB_PRECEDENCE: i64 = 127;
/// X.420 `ub-subject-field`: the longest `SubjectField`, in octets.
pub const UB_SUBJECT_FIELD: usize = 128;
/// X.420 `ub-telephone-number`: the longest `TelephoneNumber`.
pub const UB_TELEPHONE_NUMBER: usize = 32;

/// The most elements of each SEQUENCE OF in a heading (recipients, authorizing users, reply
/// recipients, obsoleted and related IPMs). X.420 sets no bound; this is X.411
/// `ub-recipients`.
pub const MAX_HEADING_LIST: usize = crate::mts::UB_RECIPIENTS;
/// The most extensions in one `SET OF IPMSExtension` (our bound; X.420 sets none).
pub const MAX_IPMS_EXTENSIONS: usize = 256;
/// The most body parts in one IPM body (our bound; X.420 sets none).
pub const MAX_BODY_PARTS: usize = 4096;
/// The most character sets in `GeneralTextParameters` (our bound; X.420 sets none).
pub const MAX_CHARACTER_SETS: usize = 64;
/// The largest `CharacterSetRegistration` (X.420 Annex: `INTEGER (1..32767)`).
pub const MAX_CHARACTER_SET_REGISTRATION: i64 = 32767;

/// Object identifiers of X.420 (IPMSObjectIdentifiers), as arcs.
pub mod oid {
    /// `id-ipms`: `{joint-iso-itu-t mhs(6) ipms(1)}`.
    pub const ID_IPMS: &[u32] = &[2, 6, 1];
    /// `id-et-ia5-text`: extended body part type IA5 text.
    pub const ID_ET_IA5_TEXT: &[u32] = &[2, 6, 1, 4, 0];
    /// `id-et-message`: extended body part type forwarded IPM.
    pub const ID_ET_MESSAGE: &[u32] = &[2, 6, 1, 4, 7];
    /// `id-et-bilaterally-defined`.
    pub const ID_ET_BILATERALLY_DEFINED: &[u32] = &[2, 6, 1, 4, 9];
    /// `id-et-general-text`: data `GeneralTextData ::= GeneralString`.
    pub const ID_ET_GENERAL_TEXT: &[u32] = &[2, 6, 1, 4, 11];
    /// `id-et-file-transfer`.
    pub const ID_ET_FILE_TRANSFER: &[u32] = &[2, 6, 1, 4, 12];
    /// `id-et-voice`.
    pub const ID_ET_VOICE: &[u32] = &[2, 6, 1, 4, 16];
    /// `id-ep-general-text`: parameters `GeneralTextParameters ::= SET OF
    /// CharacterSetRegistration`.
    pub const ID_EP_GENERAL_TEXT: &[u32] = &[2, 6, 1, 11, 11];
    /// `id-hex-incomplete-copy`.
    pub const ID_HEX_INCOMPLETE_COPY: &[u32] = &[2, 6, 1, 5, 0];
    /// `id-hex-languages`: `SET OF Language` (PrintableString of 2 or 5 characters).
    pub const ID_HEX_LANGUAGES: &[u32] = &[2, 6, 1, 5, 1];
    /// `id-hex-auto-submitted`: `AutoSubmitted`.
    pub const ID_HEX_AUTO_SUBMITTED: &[u32] = &[2, 6, 1, 5, 2];
    /// `id-hex-authorization-time`: `GeneralizedTime`.
    pub const ID_HEX_AUTHORIZATION_TIME: &[u32] = &[2, 6, 1, 5, 5];
    /// `id-hex-extended-subject`: `UniversalOrBMPString{ub-extended-subject-length}`.
    pub const ID_HEX_EXTENDED_SUBJECT: &[u32] = &[2, 6, 1, 5, 8];
    /// `id-hex-originators-reference`.
    pub const ID_HEX_ORIGINATORS_REFERENCE: &[u32] = &[2, 6, 1, 5, 11];
    /// `id-rex-precedence`: recipient extension `Precedence`.
    pub const ID_REX_PRECEDENCE: &[u32] = &[2, 6, 1, 20, 1];
    /// `id-on-absence-advice`: other notification type absence advice.
    pub const ID_ON_ABSENCE_ADVICE: &[u32] = &[2, 6, 1, 19, 0];
}

/// X.420 `InformationObject ::= CHOICE { ipm [0] IPM, ipn [1] IPN }`: the content of an
/// interpersonal message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InformationObject {
    /// `ipm [0]`: an interpersonal message.
    Ipm(Ipm),
    /// `ipn [1]`: an interpersonal notification.
    Ipn(Ipn),
}

impl InformationObject {
    /// Decodes one complete `InformationObject` (nothing may follow it), such as the
    /// `content` of a [`crate::mts::Message`] of content type 22.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        Self::decode_tlv(&parse_one(bytes)?)
    }

    /// Decodes from a parsed element.
    pub fn decode_tlv(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        match (tlv.tag.class, tlv.tag.number) {
            (Class::Context, 0) => Ok(InformationObject::Ipm(Ipm::decode_implicit(tlv)?)),
            (Class::Context, 1) => Ok(InformationObject::Ipn(Ipn::decode_implicit(tlv)?)),
            _ => Err(BerError::Unexpected {
                expected: "InformationObject ipm [0] or ipn [1]",
                found: tlv.tag,
            }
            .into()),
        }
    }

    /// Encodes to BER (definite lengths).
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        let mut w = Writer::new();
        self.encode_to(&mut w)?;
        Ok(w.finish())
    }

    /// Appends the encoding to a writer.
    pub fn encode_to(&self, w: &mut Writer) -> Result<(), MtsError> {
        match self {
            InformationObject::Ipm(m) => m.encode_implicit(w, Tag::context(0)),
            InformationObject::Ipn(n) => n.encode_implicit(w, Tag::context(1)),
        }
    }
}

impl From<Ipm> for InformationObject {
    fn from(m: Ipm) -> Self {
        InformationObject::Ipm(m)
    }
}

impl From<Ipn> for InformationObject {
    fn from(n: Ipn) -> Self {
        InformationObject::Ipn(n)
    }
}

/// X.420 `IPM ::= SEQUENCE { heading Heading, body Body }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipm {
    /// `heading`.
    pub heading: Heading,
    /// `body`: `SEQUENCE OF BodyPart`, at most [`MAX_BODY_PARTS`].
    pub body: Vec<BodyPart>,
}

impl Ipm {
    /// An IPM with the given heading and body.
    pub fn new(heading: Heading, body: Vec<BodyPart>) -> Self {
        Ipm { heading, body }
    }

    /// Decodes an untagged `IPM` SEQUENCE (as in a forwarded message body part).
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SEQUENCE, "IPM")?;
        Self::decode_implicit(tlv)
    }

    /// Decodes an `IPM` under any tag (`ipm [0]` in an `InformationObject`).
    pub fn decode_implicit(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let heading = Heading::decode(&r.next_required("heading")?)?;
        let b = r.next_required("body")?.expect(Tag::SEQUENCE, "body")?;
        r.finish()?;
        let mut body = Vec::new();
        let mut br = b.children()?;
        while let Some(p) = br.next()? {
            if body.len() >= MAX_BODY_PARTS {
                return Err(BerError::TooLarge("body").into());
            }
            body.push(BodyPart::decode(&p)?);
        }
        Ok(Ipm { heading, body })
    }

    /// Encodes as an untagged SEQUENCE.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        self.encode_implicit(w, Tag::SEQUENCE)
    }

    /// Encodes under the given tag.
    pub fn encode_implicit(&self, w: &mut Writer, tag: Tag) -> Result<(), MtsError> {
        if self.body.len() > MAX_BODY_PARTS {
            return Err(MtsError::encode(
                "body",
                "more body parts than MAX_BODY_PARTS",
            ));
        }
        w.try_constructed(tag, |w| {
            self.heading.encode(w)?;
            w.try_constructed(Tag::SEQUENCE, |w| {
                for p in &self.body {
                    p.encode(w)?;
                }
                Ok(())
            })
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the codecs of this module.

/// Stores `v` in an empty slot, or fails with `Duplicate` (an element twice in a SET).
fn once<T>(slot: &mut Option<T>, v: T, what: &'static str) -> Result<(), BerError> {
    if slot.is_some() {
        return Err(BerError::Duplicate(what));
    }
    *slot = Some(v);
    Ok(())
}

/// Keeps an element of a SET that we do not recognise, bounded by [`MAX_UNKNOWN_ELEMENTS`].
fn keep_unknown(unknown: &mut Vec<Vec<u8>>, tlv: &Tlv<'_>) -> Result<(), BerError> {
    if unknown.len() >= MAX_UNKNOWN_ELEMENTS {
        return Err(BerError::TooLarge("unrecognised SET elements"));
    }
    unknown.push(tlv.raw.to_vec());
    Ok(())
}

/// The element must be of universal string type `number` (either form).
fn universal_string<'a>(
    tlv: Tlv<'a>,
    number: u32,
    what: &'static str,
) -> Result<Tlv<'a>, BerError> {
    if tlv.tag.class == Class::Universal && tlv.tag.number == number {
        Ok(tlv)
    } else {
        Err(BerError::Unexpected {
            expected: what,
            found: tlv.tag,
        })
    }
}

/// An INTEGER or ENUMERATED within `min..=max`.
fn int_in(tlv: &Tlv<'_>, min: i64, max: i64, what: &'static str) -> Result<i64, BerError> {
    let v = tlv.integer()?;
    if v > max {
        return Err(BerError::TooLarge(what));
    }
    if v < min {
        return Err(BerError::Invalid(what));
    }
    Ok(v)
}

/// Whether every character is in the PrintableString set (X.680 §41.4).
fn is_printable(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c))
}

/// A PrintableString of at most `ub` characters.
fn put_printable(
    w: &mut Writer,
    tag: Tag,
    s: &str,
    ub: usize,
    what: &'static str,
) -> Result<(), MtsError> {
    if s.len() > ub {
        return Err(MtsError::encode(
            what,
            format!("{} characters, more than the upper bound {ub}", s.len()),
        ));
    }
    if !is_printable(s) {
        return Err(MtsError::encode(
            what,
            "a character outside the PrintableString set",
        ));
    }
    w.octets(tag, s.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests;
