//! IPM body parts (X.420 §7.3): IA5 text, forwarded IPMs, bilaterally defined and extended
//! body parts decoded; every other basic body part kept byte for byte.

use super::{Ipm, MAX_CHARACTER_SET_REGISTRATION, MAX_CHARACTER_SETS, int_in, oid, once};
use crate::ber::{BerError, Class, External, ExternalEncoding, Oid, Tag, Tlv, Writer, parse_one};
use crate::mts::{MtsError, UtcTime};

const IA5: u32 = 22;
const GENERAL_STRING: u32 = 27;

/// ISO International Register (ISO-IR) numbers used as `CharacterSetRegistration` values in
/// `GeneralTextParameters` (the registration authority X.420 names, `id-cs-eit-authority`).
pub mod character_set {
    /// ISO-IR 1: the C0 control set of ISO/IEC 646 / 6429.
    pub const C0_ISO_6429: i64 = 1;
    /// ISO-IR 6: the G0 set ASCII (ISO/IEC 646 IRV).
    pub const G0_ASCII: i64 = 6;
    /// ISO-IR 77: the C1 control set of ISO/IEC 6429.
    pub const C1_ISO_6429: i64 = 77;
    /// ISO-IR 100: the right-hand part of ISO 8859-1 (Latin alphabet No. 1).
    pub const LATIN_1_SUPPLEMENTARY: i64 = 100;
    /// ISO-IR 196: UTF-8 (ISO/IEC 10646, `ESC % G`). X.420 defines no repertoire for UTF-8;
    /// this is the ISO-IR registration of UTF-8 "with standard return", what this crate
    /// writes for UTF-8 general text.
    pub const UTF_8: i64 = 196;
    /// The sets that make up US-ASCII text.
    pub const US_ASCII: &[i64] = &[C0_ISO_6429, G0_ASCII];
    /// The sets that make up ISO 8859-1 text (as RFC 2157 maps `charset=ISO-8859-1`).
    pub const ISO_8859_1: &[i64] = &[C0_ISO_6429, G0_ASCII, C1_ISO_6429, LATIN_1_SUPPLEMENTARY];
}

/// X.420 `MessageParameters ::= SET { delivery-time [0] MessageDeliveryTime OPTIONAL,
/// delivery-envelope [1] OtherMessageDeliveryFields OPTIONAL }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MessageParameters {
    /// `delivery-time [0]`: when the forwarded message was delivered.
    pub delivery_time: Option<UtcTime>,
    /// `delivery-envelope [1]`: the whole `[1]` element (X.411 `OtherMessageDeliveryFields`),
    /// kept as received.
    pub delivery_envelope: Option<Vec<u8>>,
}

/// General text (ISO/IEC 10021-7 `general-text-body-part`): `GeneralTextParameters ::= SET
/// OF CharacterSetRegistration` and `GeneralTextData ::= GeneralString`, carried in an
/// extended body part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct GeneralText {
    /// The character sets (ISO-IR numbers, see [`character_set`]), in the order received.
    pub character_sets: Vec<i64>,
    /// The GeneralString octets.
    pub data: Vec<u8>,
}

impl GeneralText {
    /// ISO 8859-1 text; fails on a character above U+00FF.
    pub fn latin1(text: &str) -> Result<Self, MtsError> {
        let data = text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| MtsError::encode("general text", "a character beyond ISO 8859-1"))?;
        Ok(GeneralText {
            character_sets: character_set::ISO_8859_1.to_vec(),
            data,
        })
    }

    /// UTF-8 text (character set [`character_set::UTF_8`]).
    pub fn utf8(text: &str) -> Self {
        GeneralText {
            character_sets: vec![character_set::UTF_8],
            data: text.as_bytes().to_vec(),
        }
    }

    /// The text, when the character sets are UTF-8 or within ISO 8859-1 (octets read as
    /// Latin-1); `None` for other sets, or UTF-8 that is not valid.
    pub fn to_text(&self) -> Option<String> {
        if self.character_sets.contains(&character_set::UTF_8) {
            return String::from_utf8(self.data.clone()).ok();
        }
        if self
            .character_sets
            .iter()
            .all(|c| character_set::ISO_8859_1.contains(c))
        {
            return Some(self.data.iter().map(|&b| char::from(b)).collect());
        }
        None
    }
}

/// X.420 `BodyPart`: the basic body parts this crate reads, extended body parts, and every
/// other kind kept whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyPart {
    /// `ia5-text [0] IA5TextBodyPart`.
    Ia5Text {
        /// `parameters.repertoire [0]`: `ita2 (2)` or `ia5 (5)`; `None` when absent (ia5).
        repertoire: Option<i64>,
        /// `data`: the text (octets above 0x7F, not IA5, are read as Latin-1).
        text: String,
    },
    /// `message [9] MessageBodyPart`: a forwarded IPM.
    Message {
        /// `parameters`.
        parameters: MessageParameters,
        /// `data`: the forwarded IPM.
        ipm: Box<Ipm>,
    },
    /// `bilaterally-defined [14] OCTET STRING`.
    Bilaterally(Vec<u8>),
    /// `extended [15] ExtendedBodyPart`: `SEQUENCE { parameters [0] INSTANCE OF
    /// TYPE-IDENTIFIER OPTIONAL, data INSTANCE OF TYPE-IDENTIFIER }` — the 1994 way to carry
    /// general text, file transfer, voice, MIME content and other registered types. An
    /// INSTANCE OF has the encoding of an EXTERNAL with only a direct reference and a
    /// single-ASN1-type value. See [`BodyPart::general_text`].
    Extended {
        /// `parameters [0]`.
        parameters: Option<External>,
        /// `data`.
        data: External,
    },
    /// Any other basic body part (`g3-facsimile [3]`, `g4-class1 [4]`, `teletex [5]`,
    /// `videotex [6]`, `nationally-defined [7]`, `encrypted [8]`, `mixed-mode [11]`, …), kept
    /// byte for byte.
    Unknown {
        /// Its tag.
        tag: Tag,
        /// The whole element as received.
        raw: Vec<u8>,
    },
}

/// Decodes an `INSTANCE OF TYPE-IDENTIFIER` (an EXTERNAL with a direct reference).
fn instance_of(tlv: &Tlv<'_>) -> Result<External, BerError> {
    let e = External::decode(tlv)?;
    if e.direct_reference.is_none() {
        return Err(BerError::Missing("INSTANCE OF type-id"));
    }
    Ok(e)
}

impl BodyPart {
    /// An IA5 text body part with the default repertoire.
    pub fn ia5_text(text: impl Into<String>) -> Self {
        BodyPart::Ia5Text {
            repertoire: None,
            text: text.into(),
        }
    }

    /// A general text extended body part (parameters `id-ep-general-text`, data
    /// `id-et-general-text`).
    pub fn from_general_text(g: &GeneralText) -> Result<Self, MtsError> {
        if g.character_sets.len() > MAX_CHARACTER_SETS {
            return Err(MtsError::encode(
                "GeneralTextParameters",
                "more than MAX_CHARACTER_SETS character sets",
            ));
        }
        if let Some(c) = g
            .character_sets
            .iter()
            .find(|&&c| !(1..=MAX_CHARACTER_SET_REGISTRATION).contains(&c))
        {
            return Err(MtsError::encode(
                "CharacterSetRegistration",
                format!("{c} is outside 1..=32767"),
            ));
        }
        let mut p = Writer::new();
        p.set(|w| {
            for &c in &g.character_sets {
                w.integer(c);
            }
        });
        let mut d = Writer::new();
        d.octets(Tag::universal(GENERAL_STRING), &g.data);
        let instance = |arcs: &[u32], value: Vec<u8>| External {
            direct_reference: Some(Oid::new(arcs)),
            indirect_reference: None,
            data_value_descriptor: None,
            encoding: ExternalEncoding::SingleAsn1Type(value),
        };
        Ok(BodyPart::Extended {
            parameters: Some(instance(oid::ID_EP_GENERAL_TEXT, p.finish())),
            data: instance(oid::ID_ET_GENERAL_TEXT, d.finish()),
        })
    }

    /// The character sets and octets of a general text extended body part; `None` for any
    /// other body part, or one whose data is not a GeneralString. Character sets are empty
    /// when the parameters are absent or not `id-ep-general-text`.
    pub fn general_text(&self) -> Option<GeneralText> {
        let BodyPart::Extended { parameters, data } = self else {
            return None;
        };
        if data.direct_reference.as_ref()?.0 != oid::ID_ET_GENERAL_TEXT {
            return None;
        }
        let ExternalEncoding::SingleAsn1Type(v) = &data.encoding else {
            return None;
        };
        let t = parse_one(v).ok()?;
        if t.tag.class != Class::Universal || t.tag.number != GENERAL_STRING {
            return None;
        }
        let bytes = t.octets().ok()?.into_owned();
        let character_sets = parameters
            .as_ref()
            .filter(|p| {
                p.direct_reference
                    .as_ref()
                    .is_some_and(|o| o.0 == oid::ID_EP_GENERAL_TEXT)
            })
            .and_then(|p| match &p.encoding {
                ExternalEncoding::SingleAsn1Type(v) => decode_character_sets(v).ok(),
                _ => None,
            })
            .unwrap_or_default();
        Some(GeneralText {
            character_sets,
            data: bytes,
        })
    }

    /// Decodes one `BodyPart`.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        if tlv.tag.class != Class::Context {
            return Err(BerError::Unexpected {
                expected: "BodyPart",
                found: tlv.tag,
            }
            .into());
        }
        match tlv.tag.number {
            0 => {
                let mut r = tlv.children()?;
                let params = r
                    .next_required("IA5TextParameters")?
                    .expect(Tag::SET, "IA5TextParameters")?;
                let mut pr = params.children()?;
                let mut repertoire = None;
                while let Some(p) = pr.next()? {
                    if p.tag.class == Class::Context && p.tag.number == 0 {
                        let v = int_in(&p, 2, 5, "repertoire")?;
                        if v != 2 && v != 5 {
                            return Err(BerError::Invalid("repertoire").into());
                        }
                        once(&mut repertoire, v, "repertoire")?;
                    } else {
                        return Err(BerError::Unexpected {
                            expected: "IA5TextParameters repertoire [0]",
                            found: p.tag,
                        }
                        .into());
                    }
                }
                let data = r.next_required("IA5TextData")?;
                if data.tag.class != Class::Universal || data.tag.number != IA5 {
                    return Err(BerError::Unexpected {
                        expected: "IA5TextData IA5String",
                        found: data.tag,
                    }
                    .into());
                }
                r.finish()?;
                let text = data.octets()?.iter().map(|&b| char::from(b)).collect();
                Ok(BodyPart::Ia5Text { repertoire, text })
            }
            9 => {
                let mut r = tlv.children()?;
                let params = r
                    .next_required("MessageParameters")?
                    .expect(Tag::SET, "MessageParameters")?;
                let mut pr = params.children()?;
                let mut parameters = MessageParameters::default();
                let (mut time, mut env) = (None, None);
                while let Some(p) = pr.next()? {
                    match (p.tag.class, p.tag.number) {
                        (Class::Context, 0) => {
                            once(&mut time, UtcTime::decode(&p)?, "delivery-time")?
                        }
                        (Class::Context, 1) => {
                            if !p.tag.constructed {
                                return Err(BerError::Invalid("delivery-envelope").into());
                            }
                            once(&mut env, p.raw.to_vec(), "delivery-envelope")?
                        }
                        _ => {
                            return Err(BerError::Unexpected {
                                expected: "MessageParameters component",
                                found: p.tag,
                            }
                            .into());
                        }
                    }
                }
                parameters.delivery_time = time;
                parameters.delivery_envelope = env;
                let ipm = Ipm::decode(&r.next_required("MessageData")?)?;
                r.finish()?;
                Ok(BodyPart::Message {
                    parameters,
                    ipm: Box::new(ipm),
                })
            }
            14 => Ok(BodyPart::Bilaterally(tlv.octets()?.into_owned())),
            15 => {
                let mut r = tlv.children()?;
                let parameters = r
                    .next_if(Tag::context(0))?
                    .map(|p| instance_of(&p))
                    .transpose()?;
                let data = instance_of(
                    &r.next_required("ExtendedBodyPart data")?
                        .expect(Tag::EXTERNAL, "ExtendedBodyPart data INSTANCE OF")?,
                )?;
                r.finish()?;
                Ok(BodyPart::Extended { parameters, data })
            }
            _ => Ok(BodyPart::Unknown {
                tag: tlv.tag,
                raw: tlv.raw.to_vec(),
            }),
        }
    }

    /// Encodes one `BodyPart`.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        match self {
            BodyPart::Ia5Text { repertoire, text } => {
                if text.chars().any(|c| u32::from(c) > 0xFF) {
                    return Err(MtsError::encode(
                        "ia5-text",
                        "a character that has no octet",
                    ));
                }
                if repertoire.is_some_and(|r| r != 2 && r != 5) {
                    return Err(MtsError::encode(
                        "repertoire",
                        "neither ita2 (2) nor ia5 (5)",
                    ));
                }
                w.constructed(Tag::context(0), |w| {
                    w.set(|w| {
                        if let Some(r) = repertoire {
                            w.integer_tagged(Tag::context(0), *r);
                        }
                    });
                    w.string(Tag::IA5_STRING, text);
                });
                Ok(())
            }
            BodyPart::Message { parameters, ipm } => w.try_constructed(Tag::context(9), |w| {
                w.set(|w| {
                    if let Some(t) = &parameters.delivery_time {
                        t.encode(w, Tag::context(0));
                    }
                    if let Some(e) = &parameters.delivery_envelope {
                        w.raw(e);
                    }
                });
                ipm.encode(w)
            }),
            BodyPart::Bilaterally(b) => {
                w.octets(Tag::context(14), b);
                Ok(())
            }
            BodyPart::Extended { parameters, data } => {
                w.constructed(Tag::context(15), |w| {
                    if let Some(p) = parameters {
                        p.encode_tagged(w, Tag::context(0).constructed());
                    }
                    data.encode(w);
                });
                Ok(())
            }
            BodyPart::Unknown { raw, .. } => {
                w.raw(raw);
                Ok(())
            }
        }
    }
}

/// `GeneralTextParameters ::= SET OF CharacterSetRegistration` from its encoding.
fn decode_character_sets(bytes: &[u8]) -> Result<Vec<i64>, BerError> {
    let t = parse_one(bytes)?.expect(Tag::SET, "GeneralTextParameters")?;
    let mut r = t.children()?;
    let mut out = Vec::new();
    while let Some(c) = r.next()? {
        if out.len() >= MAX_CHARACTER_SETS {
            return Err(BerError::TooLarge("GeneralTextParameters"));
        }
        let c = c.expect(Tag::INTEGER, "CharacterSetRegistration")?;
        out.push(int_in(
            &c,
            1,
            MAX_CHARACTER_SET_REGISTRATION,
            "CharacterSetRegistration",
        )?);
    }
    Ok(out)
}
