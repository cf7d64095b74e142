//! `GlobalDomainIdentifier` and `MTSIdentifier` (derived with rasn), `ContentType` and
//! `Priority`.

use mswitch_core::address::{UB_COUNTRY_NAME_NUMERIC_LENGTH, UB_DOMAIN_NAME_LENGTH};
use mswitch_core::envelope::{X400ContentType, X400Priority};
use rasn::types::{Ia5String, NumericString, PrintableString};
use rasn::{AsnType, Decode, Decoder, Encode, Encoder};

use super::{MtsError, UB_BUILT_IN_CONTENT_TYPE, UB_LOCAL_ID_LENGTH, rasn_decode, rasn_encode};
use crate::ber::{BerError, Class, Oid, Tag, Tlv, Writer};

/// X.411 `GlobalDomainIdentifier`: the country, ADMD and optional PRMD that name a management
/// domain (in trace, and as the first part of an [`MtsIdentifier`]).
///
/// The wire choice between NumericString and PrintableString is not kept: a country of
/// digits is sent as an X.121 DCC (NumericString), an ADMD or PRMD of digits only (and not
/// empty) as NumericString, anything else as PrintableString.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GlobalDomainIdentifier {
    /// `country-name`: ISO 3166 alpha-2 or an X.121 data country code.
    pub country: String,
    /// `administration-domain-name`; a single space is "any ADMD".
    pub admd: String,
    /// `private-domain-identifier`.
    pub prmd: Option<String>,
}

/// X.411 `MTSIdentifier`: a global domain identifier and a local identifier, naming a
/// message, probe or report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MtsIdentifier {
    /// `global-domain-identifier`.
    pub global_domain: GlobalDomainIdentifier,
    /// `local-identifier` (IA5String, at most [`UB_LOCAL_ID_LENGTH`]).
    pub local_identifier: String,
}

/// `CountryName`'s CHOICE (wrapped in an explicit `[APPLICATION 1]` where used).
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(choice)]
pub(crate) enum CountryNameWire {
    X121DccCode(NumericString),
    Iso3166Alpha2Code(PrintableString),
}

/// The numeric-or-printable CHOICE of `AdministrationDomainName` and `PrivateDomainIdentifier`.
#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(choice)]
pub(crate) enum DomainNameWire {
    Numeric(NumericString),
    Printable(PrintableString),
}

#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(tag(application, 3))]
pub(crate) struct GlobalDomainIdentifierWire {
    #[rasn(tag(explicit(application, 1)))]
    country_name: CountryNameWire,
    #[rasn(tag(explicit(application, 2)))]
    administration_domain_name: DomainNameWire,
    private_domain_identifier: Option<DomainNameWire>,
}

#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(tag(application, 4))]
pub(crate) struct MtsIdentifierWire {
    global_domain_identifier: GlobalDomainIdentifierWire,
    local_identifier: Ia5String,
}

fn text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn bounded(s: String, min: usize, max: usize, what: &'static str) -> Result<String, MtsError> {
    if s.len() > max {
        return Err(BerError::TooLarge(what).into());
    }
    if s.len() < min {
        return Err(BerError::Invalid(what).into());
    }
    Ok(s)
}

fn domain_text(d: DomainNameWire) -> String {
    match d {
        DomainNameWire::Numeric(n) => text(n.as_bytes()),
        DomainNameWire::Printable(p) => text(p.as_bytes()),
    }
}

fn domain_wire(s: &str, what: &'static str) -> Result<DomainNameWire, MtsError> {
    if s.len() > UB_DOMAIN_NAME_LENGTH {
        return Err(MtsError::encode(what, "longer than ub-domain-name-length"));
    }
    let err =
        |e: rasn::error::strings::PermittedAlphabetError| MtsError::encode(what, e.to_string());
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(DomainNameWire::Numeric(
            NumericString::from_bytes(s.as_bytes()).map_err(err)?,
        ))
    } else {
        Ok(DomainNameWire::Printable(
            PrintableString::from_bytes(s.as_bytes()).map_err(err)?,
        ))
    }
}

impl GlobalDomainIdentifier {
    /// A domain identifier.
    pub fn new(country: impl Into<String>, admd: impl Into<String>, prmd: Option<String>) -> Self {
        GlobalDomainIdentifier {
            country: country.into(),
            admd: admd.into(),
            prmd,
        }
    }

    pub(crate) fn from_wire(w: GlobalDomainIdentifierWire) -> Result<Self, MtsError> {
        let country = match w.country_name {
            CountryNameWire::X121DccCode(n) => text(n.as_bytes()),
            CountryNameWire::Iso3166Alpha2Code(p) => text(p.as_bytes()),
        };
        Ok(GlobalDomainIdentifier {
            country: bounded(country, 1, UB_COUNTRY_NAME_NUMERIC_LENGTH, "country-name")?,
            admd: bounded(
                domain_text(w.administration_domain_name),
                0,
                UB_DOMAIN_NAME_LENGTH,
                "administration-domain-name",
            )?,
            prmd: w
                .private_domain_identifier
                .map(|p| {
                    bounded(
                        domain_text(p),
                        1,
                        UB_DOMAIN_NAME_LENGTH,
                        "private-domain-identifier",
                    )
                })
                .transpose()?,
        })
    }

    pub(crate) fn to_wire(&self) -> Result<GlobalDomainIdentifierWire, MtsError> {
        let what = "country-name";
        let err =
            |e: rasn::error::strings::PermittedAlphabetError| MtsError::encode(what, e.to_string());
        let country_name = if self.country.bytes().all(|b| b.is_ascii_digit()) {
            CountryNameWire::X121DccCode(
                NumericString::from_bytes(self.country.as_bytes()).map_err(err)?,
            )
        } else {
            CountryNameWire::Iso3166Alpha2Code(
                PrintableString::from_bytes(self.country.as_bytes()).map_err(err)?,
            )
        };
        if self.country.is_empty() || self.country.len() > UB_COUNTRY_NAME_NUMERIC_LENGTH {
            return Err(MtsError::encode(what, "not 2 letters or 3 digits"));
        }
        Ok(GlobalDomainIdentifierWire {
            country_name,
            administration_domain_name: domain_wire(&self.admd, "administration-domain-name")?,
            private_domain_identifier: self
                .prmd
                .as_deref()
                .map(|p| domain_wire(p, "private-domain-identifier"))
                .transpose()?,
        })
    }

    /// Decodes from its `[APPLICATION 3]` element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Self::TAG, "GlobalDomainIdentifier")?;
        Self::from_wire(rasn_decode("GlobalDomainIdentifier", tlv.raw)?)
    }

    /// Encodes as its `[APPLICATION 3]` element.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.raw(&rasn_encode("GlobalDomainIdentifier", &self.to_wire()?)?);
        Ok(())
    }

    /// The tag, `[APPLICATION 3]`.
    pub const TAG: Tag = Tag::application(3).constructed();
}

impl MtsIdentifier {
    /// An identifier.
    pub fn new(global_domain: GlobalDomainIdentifier, local_identifier: impl Into<String>) -> Self {
        MtsIdentifier {
            global_domain,
            local_identifier: local_identifier.into(),
        }
    }

    /// Decodes from its `[APPLICATION 4]` element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Self::TAG, "MTSIdentifier")?;
        let w: MtsIdentifierWire = rasn_decode("MTSIdentifier", tlv.raw)?;
        Ok(MtsIdentifier {
            global_domain: GlobalDomainIdentifier::from_wire(w.global_domain_identifier)?,
            local_identifier: bounded(
                text(w.local_identifier.as_iso646_bytes()),
                1,
                UB_LOCAL_ID_LENGTH,
                "local-identifier",
            )?,
        })
    }

    /// Encodes as its `[APPLICATION 4]` element.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        let what = "local-identifier";
        if self.local_identifier.is_empty() || self.local_identifier.len() > UB_LOCAL_ID_LENGTH {
            return Err(MtsError::encode(
                what,
                "not 1 to ub-local-id-length characters",
            ));
        }
        let wire = MtsIdentifierWire {
            global_domain_identifier: self.global_domain.to_wire()?,
            local_identifier: Ia5String::from_iso646_bytes(self.local_identifier.as_bytes())
                .map_err(|e| MtsError::encode(what, e.to_string()))?,
        };
        w.raw(&rasn_encode("MTSIdentifier", &wire)?);
        Ok(())
    }

    /// The tag, `[APPLICATION 4]`.
    pub const TAG: Tag = Tag::application(4).constructed();
}

impl std::fmt::Display for MtsIdentifier {
    /// The RFC 2156 form, `/C=GB/A= /P=TESTPRMD/;msg-0001`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = &self.global_domain;
        write!(f, "/C={}/A={}/", g.country, g.admd)?;
        if let Some(p) = &g.prmd {
            write!(f, "P={p}/")?;
        }
        write!(f, ";{}", self.local_identifier)
    }
}

/// X.411 `ContentType`: `built-in [APPLICATION 6] INTEGER` or `extended` (the 1988
/// OBJECT IDENTIFIER form; the 1999 RELATIVE-OID form is refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// `built-in`: 2 = P2 1984, 22 = P22 1988, 35 = EDI, 40 = voice, ...
    BuiltIn(u16),
    /// `extended`.
    Extended(Oid),
}

impl ContentType {
    /// `interpersonal-messaging-1984 (2)`.
    pub const IPM_1984: ContentType = ContentType::BuiltIn(2);
    /// `interpersonal-messaging-1988 (22)`.
    pub const IPM_1988: ContentType = ContentType::BuiltIn(22);

    /// Whether `tag` starts a content type.
    pub(crate) fn is_tag(tag: Tag) -> bool {
        tag.same(Tag::application(6)) || tag.same(Tag::OID)
    }

    pub(crate) fn decode(tlv: &Tlv<'_>) -> Result<Self, BerError> {
        match (tlv.tag.class, tlv.tag.number) {
            (Class::Application, 6) => {
                let v = super::int_in(tlv, 0, UB_BUILT_IN_CONTENT_TYPE, "built-in content type")?;
                Ok(ContentType::BuiltIn(u16::try_from(v).map_err(|_| {
                    BerError::TooLarge("built-in content type")
                })?))
            }
            (Class::Universal, 6) => Ok(ContentType::Extended(tlv.oid()?)),
            _ => Err(BerError::Unexpected {
                expected: "ContentType",
                found: tlv.tag,
            }),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        match self {
            ContentType::BuiltIn(v) => w.integer_tagged(Tag::application(6), i64::from(*v)),
            ContentType::Extended(oid) => w.oid(oid),
        }
    }
}

impl From<ContentType> for X400ContentType {
    fn from(c: ContentType) -> Self {
        match c {
            ContentType::BuiltIn(v) => X400ContentType::BuiltIn(v),
            ContentType::Extended(oid) => X400ContentType::Extended(oid.0),
        }
    }
}

impl From<X400ContentType> for ContentType {
    fn from(c: X400ContentType) -> Self {
        match c {
            X400ContentType::BuiltIn(v) => ContentType::BuiltIn(v),
            X400ContentType::Extended(arcs) => ContentType::Extended(Oid(arcs)),
        }
    }
}

/// X.411 `Priority ::= [APPLICATION 7] ENUMERATED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// `normal (0)`, the default.
    #[default]
    Normal,
    /// `non-urgent (1)`.
    NonUrgent,
    /// `urgent (2)`.
    Urgent,
}

impl Priority {
    /// The tag, `[APPLICATION 7]`.
    pub const TAG: Tag = Tag::application(7);

    /// The ENUMERATED value.
    pub fn value(self) -> i64 {
        match self {
            Priority::Normal => 0,
            Priority::NonUrgent => 1,
            Priority::Urgent => 2,
        }
    }

    pub(crate) fn decode(tlv: &Tlv<'_>) -> Result<Self, BerError> {
        match tlv.integer()? {
            0 => Ok(Priority::Normal),
            1 => Ok(Priority::NonUrgent),
            2 => Ok(Priority::Urgent),
            _ => Err(BerError::Invalid("Priority")),
        }
    }

    pub(crate) fn encode(self, w: &mut Writer) {
        w.integer_tagged(Self::TAG, self.value())
    }
}

impl From<Priority> for X400Priority {
    fn from(p: Priority) -> Self {
        match p {
            Priority::Normal => X400Priority::Normal,
            Priority::NonUrgent => X400Priority::NonUrgent,
            Priority::Urgent => X400Priority::Urgent,
        }
    }
}

impl From<X400Priority> for Priority {
    fn from(p: X400Priority) -> Self {
        match p {
            X400Priority::Normal => Priority::Normal,
            X400Priority::NonUrgent => Priority::NonUrgent,
            X400Priority::Urgent => Priority::Urgent,
        }
    }
}
