//! PDU codecs for the OSI upper layers that P1 and P3 ride on: presentation (X.226 kernel,
//! normal mode), ACSE (X.227), RTSE (X.228, normal mode) and ROS (X.880).
//!
//! These are codecs only: typed PDUs with `decode(&[u8])` and `encode() -> Vec<u8>`, no state.
//! The association state machines drive them. Open types (the value inside a presentation data
//! value, an EXTERNAL, the RTSE `open` connection data, a ROS argument) are kept as the raw bytes
//! of one complete BER element, so each layer decodes only its own PDU and hands the rest up.
//!
//! Decoders accept what real stacks send (indefinite lengths, constructed strings, SET
//! components in any order, defaulted values sent explicitly, unknown optional components,
//! which are skipped). Encoders emit definite lengths and leave out components equal to their
//! DEFAULT, so a PDU we build comes out as DER-like BER.

pub mod acse;
pub mod presentation;
pub mod ros;
pub mod rtse;

#[cfg(test)]
mod testutil;

use crate::ber::{BerError, Oid, Tag, Tlv, Writer};

/// The BER transfer syntax, `{joint-iso-itu-t asn1(1) basic-encoding(1)}` = 2.1.1.
pub const BER_TRANSFER_SYNTAX: &[u32] = &[2, 1, 1];
/// The ACSE abstract syntax `acse-as-id` (X.227), 2.2.1.0.1.
pub const ACSE_ABSTRACT_SYNTAX: &[u32] = &[2, 2, 1, 0, 1];
/// The ACSE application service element `aCSE-id` (X.227), 2.2.3.1.1.
pub const ACSE_ASE_ID: &[u32] = &[2, 2, 3, 1, 1];
/// `id-as-mta-rtse` (X.419): RTSE APDUs carrying the MTA-bind, 2.6.0.2.12.
pub const ID_AS_MTA_RTSE: &[u32] = &[2, 6, 0, 2, 12];
/// `id-as-mtse` (X.419): the message transfer APDUs (MTS-APDU), 2.6.0.2.7.
pub const ID_AS_MTSE: &[u32] = &[2, 6, 0, 2, 7];
/// `id-ac-mts-transfer` (X.419): the P1 application context, 2.6.0.1.6.
pub const ID_AC_MTS_TRANSFER: &[u32] = &[2, 6, 0, 1, 6];
/// `id-ac-mts-access-88` (X.419, P3 without RTSE), 2.6.0.1.0.
pub const ID_AC_MTS_ACCESS_88: &[u32] = &[2, 6, 0, 1, 0];
/// `id-ac-mts-forced-access-88` (X.419, P3 without RTSE), 2.6.0.1.1.
pub const ID_AC_MTS_FORCED_ACCESS_88: &[u32] = &[2, 6, 0, 1, 1];
/// `id-ac-mts-access-94` (X.419, P3 without RTSE), 2.6.0.1.7.
pub const ID_AC_MTS_ACCESS_94: &[u32] = &[2, 6, 0, 1, 7];
/// `id-ac-mts-forced-access-94` (X.419, P3 without RTSE), 2.6.0.1.8.
pub const ID_AC_MTS_FORCED_ACCESS_94: &[u32] = &[2, 6, 0, 1, 8];
/// `id-as-msse` (X.419): message submission service element, 2.6.0.2.1.
pub const ID_AS_MSSE: &[u32] = &[2, 6, 0, 2, 1];
/// `id-as-mdse-88` (X.419): message delivery service element, 2.6.0.2.2.
pub const ID_AS_MDSE_88: &[u32] = &[2, 6, 0, 2, 2];
/// `id-as-mase-88` (X.419): message administration service element, 2.6.0.2.6.
pub const ID_AS_MASE_88: &[u32] = &[2, 6, 0, 2, 6];
/// `id-as-mts` (X.419): the P3 bind and unbind, 2.6.0.2.11.
pub const ID_AS_MTS: &[u32] = &[2, 6, 0, 2, 11];

/// Presentation context identifier P1 uses for ACSE.
pub const P1_ACSE_CONTEXT: i64 = 1;
/// Presentation context identifier P1 uses for `id-as-mta-rtse`.
pub const P1_RTSE_CONTEXT: i64 = 3;
/// Presentation context identifier P1 uses for `id-as-mtse`.
pub const P1_MTSE_CONTEXT: i64 = 5;

/// Most presentation contexts accepted in one list (X.226 allows 0..7 and more by extension).
pub const MAX_CONTEXTS: usize = 128;
/// Most presentation data value lists accepted in one user data.
pub const MAX_PDVS: usize = 64;
/// Most EXTERNALs accepted in one ACSE user-information.
pub const MAX_EXTERNALS: usize = 64;
/// Longest presentation selector accepted, in octets.
pub const MAX_SELECTOR_LEN: usize = 64;
/// Longest ACSE implementation-information accepted, in octets.
pub const MAX_IMPLEMENTATION_INFO_LEN: usize = 1024;

/// An [`Oid`] from one of the arc constants of this module.
pub fn oid(arcs: &[u32]) -> Oid {
    Oid::new(arcs)
}

/// A BIT STRING value: the bit octets and the number of unused bits in the last one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BitString {
    /// The octets holding the bits, first bit in the most significant bit of the first octet.
    pub bits: Vec<u8>,
    /// Unused bits in the last octet (0..=7).
    pub unused: u8,
}

impl BitString {
    /// `{version1}` / `{version-1}`: bit 0 set, as presentation and ACSE protocol versions are
    /// sent (`07 80`).
    pub fn version1() -> Self {
        BitString {
            bits: vec![0x80],
            unused: 7,
        }
    }

    /// Whether bit `n` (0 = the most significant bit of the first octet) is set.
    pub fn bit(&self, n: usize) -> bool {
        let byte = n / 8;
        let used = (self.bits.len() * 8).saturating_sub(usize::from(self.unused));
        n < used
            && self
                .bits
                .get(byte)
                .is_some_and(|b| b & (0x80 >> (n % 8)) != 0)
    }

    pub(crate) fn decode(tlv: &Tlv<'_>) -> Result<Self, BerError> {
        let (bits, unused) = tlv.bit_string()?;
        Ok(BitString { bits, unused })
    }

    pub(crate) fn encode(&self, w: &mut Writer, tag: Tag) {
        w.bit_string(tag, &self.bits, self.unused);
    }
}

/// Checks that a tag is context-specific `[n]` and returns `n`, else `None`.
pub(crate) fn context_number(tag: Tag) -> Option<u32> {
    (tag.class == crate::ber::Class::Context).then_some(tag.number)
}
