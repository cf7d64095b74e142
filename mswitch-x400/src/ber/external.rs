//! EXTERNAL (X.690 §8.18, the 1988 form that ACSE user information and P1 use).
//!
//! Peers send either reference or both; both are kept and re-emitted as received.

use super::{BerError, Oid, Tag, Tlv, Writer};

/// The encoding choice of an EXTERNAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalEncoding {
    /// `single-ASN1-type [0]`: one complete BER element (kept as its bytes).
    SingleAsn1Type(Vec<u8>),
    /// `octet-aligned [1] IMPLICIT OCTET STRING`.
    OctetAligned(Vec<u8>),
    /// `arbitrary [2] IMPLICIT BIT STRING`: bytes and unused bits.
    Arbitrary(Vec<u8>, u8),
}

/// An EXTERNAL value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// `direct-reference`: the abstract syntax's object identifier.
    pub direct_reference: Option<Oid>,
    /// `indirect-reference`: the presentation context identifier.
    pub indirect_reference: Option<i64>,
    /// `data-value-descriptor` (ObjectDescriptor, rarely sent).
    pub data_value_descriptor: Option<Vec<u8>>,
    /// The value.
    pub encoding: ExternalEncoding,
}

impl External {
    /// An EXTERNAL carrying one ASN.1 value in presentation context `context`.
    pub fn single(context: i64, value: Vec<u8>) -> Self {
        External {
            direct_reference: None,
            indirect_reference: Some(context),
            data_value_descriptor: None,
            encoding: ExternalEncoding::SingleAsn1Type(value),
        }
    }

    /// Decodes an EXTERNAL from its element (tag `[UNIVERSAL 8]` or an implicit tag the caller
    /// has already checked).
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, BerError> {
        let mut r = tlv.children()?;
        let mut direct_reference = None;
        let mut indirect_reference = None;
        let mut data_value_descriptor = None;
        if let Some(t) = r.next_if(Tag::OID)? {
            direct_reference = Some(t.oid()?);
        }
        if let Some(t) = r.next_if(Tag::INTEGER)? {
            indirect_reference = Some(t.integer()?);
        }
        if let Some(t) = r.next_if(Tag::universal(7))? {
            data_value_descriptor = Some(t.octets()?.into_owned());
        }
        let enc = r.next_required("EXTERNAL encoding")?;
        let encoding = match (enc.tag.class, enc.tag.number) {
            (super::Class::Context, 0) => {
                ExternalEncoding::SingleAsn1Type(enc.explicit_inner()?.raw.to_vec())
            }
            (super::Class::Context, 1) => {
                ExternalEncoding::OctetAligned(enc.octets()?.into_owned())
            }
            (super::Class::Context, 2) => {
                let (bits, unused) = enc.bit_string()?;
                ExternalEncoding::Arbitrary(bits, unused)
            }
            _ => {
                return Err(BerError::Unexpected {
                    expected: "EXTERNAL encoding [0], [1] or [2]",
                    found: enc.tag,
                });
            }
        };
        r.finish()?;
        if direct_reference.is_none() && indirect_reference.is_none() {
            return Err(BerError::Missing("EXTERNAL direct or indirect reference"));
        }
        Ok(External {
            direct_reference,
            indirect_reference,
            data_value_descriptor,
            encoding,
        })
    }

    /// Encodes with the given tag (normally [`Tag::EXTERNAL`]).
    pub fn encode_tagged(&self, w: &mut Writer, tag: Tag) {
        w.constructed(tag, |w| {
            if let Some(d) = &self.direct_reference {
                w.oid(d);
            }
            if let Some(i) = self.indirect_reference {
                w.integer(i);
            }
            if let Some(d) = &self.data_value_descriptor {
                w.octets(Tag::universal(7), d);
            }
            match &self.encoding {
                ExternalEncoding::SingleAsn1Type(v) => {
                    w.explicit(Tag::context(0), |w| w.raw(v));
                }
                ExternalEncoding::OctetAligned(v) => w.octets(Tag::context(1), v),
                ExternalEncoding::Arbitrary(v, unused) => w.bit_string(Tag::context(2), v, *unused),
            }
        });
    }

    /// Encodes as `[UNIVERSAL 8]`.
    pub fn encode(&self, w: &mut Writer) {
        self.encode_tagged(w, Tag::EXTERNAL)
    }

    /// The value's bytes for `single-ASN1-type` and `octet-aligned`.
    pub fn value(&self) -> Option<&[u8]> {
        match &self.encoding {
            ExternalEncoding::SingleAsn1Type(v) | ExternalEncoding::OctetAligned(v) => Some(v),
            ExternalEncoding::Arbitrary(..) => None,
        }
    }
}
