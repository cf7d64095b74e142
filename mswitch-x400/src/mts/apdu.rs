//! X.419 `MTS-APDU ::= CHOICE { message [0] Message, probe [2] Probe, report [1] Report }`
//! (IMPLICIT TAGS), and the `EXTERNAL` that carries it in an RTSE transfer.

use super::{
    MessageTransferEnvelope, MtsError, ProbeTransferEnvelope, ReportTransferContent,
    ReportTransferEnvelope,
};
use crate::ber::{BerError, Class, External, ExternalEncoding, Tag, Tlv, Writer, parse_one};

/// X.411 `Message ::= SEQUENCE { envelope MessageTransferEnvelope, content Content }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// `envelope`.
    pub envelope: MessageTransferEnvelope,
    /// `content` (`OCTET STRING`): for content type 22 the encoded IPM.
    pub content: Vec<u8>,
}

/// X.411 `Probe ::= ProbeTransferEnvelope`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe {
    /// The probe's envelope, which is all there is of it.
    pub envelope: ProbeTransferEnvelope,
}

/// X.411 `Report ::= SEQUENCE { envelope ReportTransferEnvelope, content
/// ReportTransferContent }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Report {
    /// `envelope`.
    pub envelope: ReportTransferEnvelope,
    /// `content`.
    pub content: ReportTransferContent,
}

/// X.419 `MTS-APDU`: what one RTSE transfer carries between MTAs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MtsApdu {
    /// `message [0]`.
    Message(Message),
    /// `probe [2]`.
    Probe(Probe),
    /// `report [1]`.
    Report(Report),
}

impl MtsApdu {
    /// Decodes one complete `MTS-APDU` element (nothing may follow it).
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        Self::decode_tlv(&parse_one(bytes)?)
    }

    /// Decodes from a parsed element.
    pub fn decode_tlv(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        if tlv.tag.class != Class::Context || !tlv.tag.constructed {
            return Err(BerError::Unexpected {
                expected: "MTS-APDU [0], [1] or [2]",
                found: tlv.tag,
            }
            .into());
        }
        match tlv.tag.number {
            0 => {
                let mut r = tlv.children()?;
                let envelope = MessageTransferEnvelope::decode(&r.next_required("envelope")?)?;
                let content = r
                    .next_required("content")?
                    .expect(Tag::OCTET_STRING, "content")?
                    .octets()?
                    .into_owned();
                r.finish()?;
                Ok(MtsApdu::Message(Message { envelope, content }))
            }
            1 => {
                let mut r = tlv.children()?;
                let envelope = ReportTransferEnvelope::decode(&r.next_required("envelope")?)?;
                let content = ReportTransferContent::decode(&r.next_required("content")?)?;
                r.finish()?;
                Ok(MtsApdu::Report(Report { envelope, content }))
            }
            2 => Ok(MtsApdu::Probe(Probe {
                envelope: ProbeTransferEnvelope::decode(tlv)?,
            })),
            _ => Err(BerError::Unexpected {
                expected: "MTS-APDU [0], [1] or [2]",
                found: tlv.tag,
            }
            .into()),
        }
    }

    /// Encodes into `w`.
    pub fn encode_into(&self, w: &mut Writer) -> Result<(), MtsError> {
        match self {
            MtsApdu::Message(m) => w.try_constructed(Tag::context(0), |w| {
                m.envelope.encode(w)?;
                w.octets(Tag::OCTET_STRING, &m.content);
                Ok(())
            }),
            MtsApdu::Report(r) => w.try_constructed(Tag::context(1), |w| {
                r.envelope.encode(w)?;
                r.content.encode(w)
            }),
            MtsApdu::Probe(p) => p.envelope.encode_tagged(w, Tag::context(2).constructed()),
        }
    }

    /// Encodes to bytes.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        let mut w = Writer::new();
        self.encode_into(&mut w)?;
        Ok(w.finish())
    }

    /// Decodes the `EXTERNAL { indirect-reference, single-ASN1-type [0] MTS-APDU }` that the
    /// joined RTSE transfer segments hold; returns the presentation context identifier
    /// (indirect reference) with the APDU. An `octet-aligned` encoding is accepted too.
    pub fn decode_external(bytes: &[u8]) -> Result<(Option<i64>, MtsApdu), MtsError> {
        let tlv = parse_one(bytes)?.expect(Tag::EXTERNAL, "EXTERNAL")?;
        let ext = External::decode(&tlv)?;
        let value = match &ext.encoding {
            ExternalEncoding::SingleAsn1Type(v) | ExternalEncoding::OctetAligned(v) => v,
            ExternalEncoding::Arbitrary(..) => {
                return Err(BerError::Invalid("EXTERNAL encoding for MTS-APDU").into());
            }
        };
        Ok((ext.indirect_reference, MtsApdu::decode(value)?))
    }

    /// Encodes as `EXTERNAL { indirect-reference context_id, single-ASN1-type [0] .. }`.
    pub fn encode_external(&self, context_id: i64) -> Result<Vec<u8>, MtsError> {
        let ext = External::single(context_id, self.encode()?);
        let mut w = Writer::new();
        ext.encode(&mut w);
        Ok(w.finish())
    }
}
