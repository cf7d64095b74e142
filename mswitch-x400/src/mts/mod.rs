//! X.411 P1: the MTA abstract service as it travels between MTAs (X.419 `MTS-APDU`), the MTA
//! bind, and the common X.411 types they are made of.
//!
//! # Two codecs, one model
//!
//! The closed types — `GlobalDomainIdentifier`, `MTSIdentifier`, the MTA-bind argument,
//! result and error — are derived with rasn and converted to the plain structs here. What
//! must keep elements it does not understand, or holds an open type, is written by hand on
//! [`crate::ber`]: the envelopes (SETs that include `COMPONENTS OF` another SET), extensions
//! (relayed unchanged, honouring their criticality), trace, O/R names (unknown extension
//! attributes are kept) and the APDU itself.
//!
//! # Re-encoding
//!
//! Every value decoded here re-encodes to the bytes it came from when those bytes use
//! definite lengths, primitive strings, the elements of each SET in their ASN.1 order and the
//! string type a value of its characters calls for (see [`GlobalDomainIdentifier`]). Other
//! valid encodings decode to the same value and re-encode in that form; elements we do not
//! know (unknown SET elements, extension values, unknown O/R extension attributes, directory
//! names) are re-emitted byte for byte, after the known ones.
//!
//! # Upper bounds
//!
//! The X.411 upper bounds (MTSUpperBounds) are hard limits: decoding fails with
//! [`BerError::TooLarge`] as soon as one is exceeded, before the element is stored, and
//! encoding refuses with [`MtsError::Encode`] a value that a peer would have to reject.

mod apdu;
mod bind;
mod envelope;
mod extension;
mod identifiers;
mod or_name;
mod report;
mod time;
mod trace;

pub use apdu::{Message, MtsApdu, Probe, Report};
pub use bind::{
    Credentials, MtaBindArgument, MtaBindError, MtaBindResult, Password, StrongCredentials,
};
pub use envelope::{
    MessageTransferEnvelope, PerMessageIndicators, PerRecipientIndicators,
    PerRecipientMessageTransferFields, PerRecipientProbeTransferFields, ProbeTransferEnvelope,
};
pub use extension::{Criticality, ExtensionField, ExtensionType, standard_extension};
pub use identifiers::{ContentType, GlobalDomainIdentifier, MtsIdentifier, Priority};
pub use or_name::{MAX_DIRECTORY_NAME_LENGTH, ORName, TeletexFields};
pub use report::{
    LastTraceInformation, PerRecipientReportTransferFields, ReportTransferContent,
    ReportTransferEnvelope, ReportType, non_delivery_diagnostic, non_delivery_reason,
    type_of_mts_user,
};
pub use time::{MAX_UTC_TIME_LENGTH, UtcTime};
pub use trace::{
    AttemptedMta, DomainSuppliedInformation, InternalTraceInformationElement,
    MtaSuppliedInformation, OtherActions, RoutingAction, TraceInformationElement,
};

use crate::ber::{BerError, Tag, Tlv, Writer};

/// X.411 `ub-recipients`: the most recipients of one message, probe or report.
pub const UB_RECIPIENTS: usize = 32767;
/// X.411 `ub-transfers`: the most trace elements (and internal trace elements).
pub const UB_TRANSFERS: usize = 512;
/// X.411 `ub-extension-types`: the largest standard extension number.
pub const UB_EXTENSION_TYPES: i64 = 256;
/// X.411 `ub-extension-attributes`: the most extension attributes in one O/R address, and
/// the largest extension attribute type.
pub const UB_EXTENSION_ATTRIBUTES: usize = 256;
/// X.411 `ub-bit-options`: the most bits in the indicator and criticality BIT STRINGs.
pub const UB_BIT_OPTIONS: usize = 16;
/// X.411 `ub-integer-options`: the largest explicit-conversion and bind-error values.
pub const UB_INTEGER_OPTIONS: i64 = 256;
/// X.411 `ub-local-id-length`: the longest `LocalIdentifier`.
pub const UB_LOCAL_ID_LENGTH: usize = 32;
/// X.411 `ub-mta-name-length`: the longest `MTAName`.
pub const UB_MTA_NAME_LENGTH: usize = 32;
/// X.411 `ub-content-id-length`: the longest `ContentIdentifier`.
pub const UB_CONTENT_ID_LENGTH: usize = 16;
/// X.411 `ub-content-length`: the largest `ContentLength`.
pub const UB_CONTENT_LENGTH: i64 = 2_147_483_647;
/// X.411 `ub-built-in-content-type`: the largest built-in content type.
pub const UB_BUILT_IN_CONTENT_TYPE: i64 = 32767;
/// X.411 `ub-reason-codes`: the largest non-delivery reason code.
pub const UB_REASON_CODES: i64 = 32767;
/// X.411 `ub-diagnostic-codes`: the largest non-delivery diagnostic code.
pub const UB_DIAGNOSTIC_CODES: i64 = 32767;
/// X.411 `ub-mts-user-types`: the largest `TypeOfMTSUser`.
pub const UB_MTS_USER_TYPES: i64 = 256;
/// X.411 `ub-supplementary-info-length`: the longest `SupplementaryInformation`.
pub const UB_SUPPLEMENTARY_INFO_LENGTH: usize = 256;
/// X.411 `ub-additional-info`: the most octets of `AdditionalInformation`, encoding included.
pub const UB_ADDITIONAL_INFO: usize = 1024;
/// X.411 `ub-password-length`: the longest simple-credentials password.
pub const UB_PASSWORD_LENGTH: usize = 62;
/// X.411 `ub-security-labels`: the most labels in a `SecurityContext`.
pub const UB_SECURITY_LABELS: usize = 256;
/// X.411 `ub-bilateral-info`: the most octets of one per-domain bilateral information element.
pub const UB_BILATERAL_INFO: usize = 1024;
/// X.411 `ub-encoded-information-types`: the most extended encoded information types; the
/// raw `EncodedInformationTypes` kept here may be at most this many octets long.
pub const UB_ENCODED_INFORMATION_TYPES: usize = 1024;

/// The most extension fields accepted in one `SET OF ExtensionField` (X.411 sets no bound on
/// the count; each standard type may appear once and private ones are rare, so this is
/// `ub-extension-types`).
pub const MAX_EXTENSION_FIELDS: usize = UB_EXTENSION_TYPES as usize;

/// The most elements we keep of a SET that we do not recognise (our bound, against a peer
/// that sends thousands of empty elements).
pub const MAX_UNKNOWN_ELEMENTS: usize = 64;

/// Why an X.411 value could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MtsError {
    /// The peer sent bytes that are not valid BER for the type, or a value beyond an X.411
    /// upper bound.
    #[error(transparent)]
    Ber(#[from] BerError),
    /// The peer sent a closed type (decoded with rasn) that rasn rejected.
    #[error("invalid {what}: {message}")]
    Decode {
        /// The X.411 type being decoded.
        what: &'static str,
        /// rasn's description of the problem.
        message: String,
    },
    /// A value built here cannot be sent: a string outside its character set or beyond its
    /// upper bound, or a number out of range. The fault is local.
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// The X.411 type or field being encoded.
        what: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl MtsError {
    /// The X.411 non-delivery reason and diagnostic for a message that could not be taken in
    /// because of this error: a bound exceeded is a `size-constraint-violation`, anything else
    /// the peer sent is `invalid-arguments`; both with reason `unable-to-transfer`.
    pub fn non_delivery(&self) -> (i64, i64) {
        let diagnostic = match self {
            MtsError::Ber(BerError::TooLarge(_)) => {
                non_delivery_diagnostic::SIZE_CONSTRAINT_VIOLATION
            }
            _ => non_delivery_diagnostic::INVALID_ARGUMENTS,
        };
        (non_delivery_reason::UNABLE_TO_TRANSFER, diagnostic)
    }

    pub(crate) fn encode(what: &'static str, message: impl Into<String>) -> Self {
        MtsError::Encode {
            what,
            message: message.into(),
        }
    }
}

/// A BIT STRING kept as received: its octets and the number of unused bits in the last one.
/// Bit 0 is the most significant bit of the first octet (X.690 §8.6).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct BitString {
    /// The octets.
    pub bytes: Vec<u8>,
    /// Unused bits in the last octet (0..=7; 0 when there are no octets).
    pub unused: u8,
}

impl BitString {
    /// An empty bit string.
    pub fn new() -> Self {
        BitString::default()
    }

    /// A bit string of `n` zero bits.
    pub fn zeros(n: usize) -> Self {
        let bytes = vec![0; n.div_ceil(8)];
        BitString {
            bytes,
            unused: ((8 - n % 8) % 8) as u8,
        }
    }

    /// How many bits it holds.
    pub fn len(&self) -> usize {
        (self.bytes.len() * 8).saturating_sub(usize::from(self.unused))
    }

    /// Whether it holds no bits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bit `n` (false beyond the end).
    pub fn bit(&self, n: usize) -> bool {
        n < self.len() && self.bytes[n / 8] & (0x80 >> (n % 8)) != 0
    }

    /// Sets bit `n`, growing the string when a one is set beyond its end.
    pub fn set_bit(&mut self, n: usize, value: bool) {
        if n >= self.len() {
            if !value {
                return;
            }
            self.bytes.resize(n / 8 + 1, 0);
            self.unused = (7 - n % 8) as u8;
        }
        if value {
            self.bytes[n / 8] |= 0x80 >> (n % 8);
        } else {
            self.bytes[n / 8] &= !(0x80 >> (n % 8));
        }
    }

    pub(crate) fn decode(tlv: &Tlv<'_>, what: &'static str) -> Result<Self, BerError> {
        let (bytes, unused) = tlv.bit_string()?;
        let b = BitString { bytes, unused };
        if b.len() > UB_BIT_OPTIONS {
            return Err(BerError::TooLarge(what));
        }
        Ok(b)
    }

    pub(crate) fn encode(&self, w: &mut Writer, tag: Tag) {
        w.bit_string(tag, &self.bytes, self.unused)
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the hand-written codecs.

/// Stores `v` in an empty slot, or fails with `Duplicate` (an element twice in a SET).
pub(crate) fn once<T>(slot: &mut Option<T>, v: T, what: &'static str) -> Result<(), BerError> {
    if slot.is_some() {
        return Err(BerError::Duplicate(what));
    }
    *slot = Some(v);
    Ok(())
}

/// Keeps an element of a SET that we do not recognise, bounded by [`MAX_UNKNOWN_ELEMENTS`].
pub(crate) fn keep_unknown(unknown: &mut Vec<Vec<u8>>, tlv: &Tlv<'_>) -> Result<(), BerError> {
    if unknown.len() >= MAX_UNKNOWN_ELEMENTS {
        return Err(BerError::TooLarge("unrecognised SET elements"));
    }
    unknown.push(tlv.raw.to_vec());
    Ok(())
}

/// An INTEGER within `min..=max`.
pub(crate) fn int_in(
    tlv: &Tlv<'_>,
    min: i64,
    max: i64,
    what: &'static str,
) -> Result<i64, BerError> {
    let v = tlv.integer()?;
    if v > max {
        return Err(BerError::TooLarge(what));
    }
    if v < min {
        return Err(BerError::Invalid(what));
    }
    Ok(v)
}

/// A string of at most `ub` characters, written one octet per character.
pub(crate) fn put_str(
    w: &mut Writer,
    tag: Tag,
    s: &str,
    ub: usize,
    what: &'static str,
) -> Result<(), MtsError> {
    let n = s.chars().count();
    if n > ub {
        return Err(MtsError::encode(
            what,
            format!("{n} characters, more than the upper bound {ub}"),
        ));
    }
    if let Some(c) = s.chars().find(|&c| u32::from(c) > 0xFF) {
        return Err(MtsError::encode(
            what,
            format!("character {c:?} has no octet"),
        ));
    }
    w.string(tag, s);
    Ok(())
}

/// Raw bytes of an element we keep whole, bounded.
pub(crate) fn raw_bounded(
    tlv: &Tlv<'_>,
    ub: usize,
    what: &'static str,
) -> Result<Vec<u8>, BerError> {
    if tlv.raw.len() > ub {
        return Err(BerError::TooLarge(what));
    }
    Ok(tlv.raw.to_vec())
}

/// Decodes a closed type with rasn from a complete element.
fn rasn_decode<T: rasn::Decode>(what: &'static str, raw: &[u8]) -> Result<T, MtsError> {
    rasn::ber::decode::<T>(raw).map_err(|e| MtsError::Decode {
        what,
        message: e.to_string(),
    })
}

/// Encodes a closed type with rasn.
fn rasn_encode<T: rasn::Encode>(what: &'static str, v: &T) -> Result<Vec<u8>, MtsError> {
    rasn::ber::encode(v).map_err(|e| MtsError::encode(what, e.to_string()))
}

#[cfg(test)]
mod tests;
