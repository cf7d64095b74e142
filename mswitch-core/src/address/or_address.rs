//! X.400 O/R addresses: the X.411 `ORAddress` (its built-in standard attributes, the common
//! name extension attribute and the built-in domain-defined attributes) and the RFC 2156
//! (MIXER) text form of it, `std-or-address`.
//!
//! The text form, its grammar and what is checked are described on [`ORAddress`]; the
//! mapping of ASCII into PrintableString is [`printable_from_ascii`] and
//! [`ascii_from_printable`].

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// X.411 `ub-country-name-alpha-length`: an ISO 3166 alpha-2 country code has 2 letters.
pub const UB_COUNTRY_NAME_ALPHA_LENGTH: usize = 2;
/// X.411 `ub-country-name-numeric-length`: an X.121 data country code has 3 digits.
pub const UB_COUNTRY_NAME_NUMERIC_LENGTH: usize = 3;
/// X.411 `ub-domain-name-length`: the longest ADMD or PRMD name.
pub const UB_DOMAIN_NAME_LENGTH: usize = 16;
/// X.411 `ub-organization-name-length`: the longest organization name.
pub const UB_ORGANIZATION_NAME_LENGTH: usize = 64;
/// X.411 `ub-organizational-unit-name-length`: the longest organizational unit name.
pub const UB_ORGANIZATIONAL_UNIT_NAME_LENGTH: usize = 32;
/// X.411 `ub-organizational-units`: the most organizational units in one address.
pub const UB_ORGANIZATIONAL_UNITS: usize = 4;
/// X.411 `ub-surname-length`: the longest surname.
pub const UB_SURNAME_LENGTH: usize = 40;
/// X.411 `ub-given-name-length`: the longest given name.
pub const UB_GIVEN_NAME_LENGTH: usize = 16;
/// X.411 `ub-initials-length`: the most initials.
pub const UB_INITIALS_LENGTH: usize = 5;
/// X.411 `ub-generation-qualifier-length`: the longest generation qualifier.
pub const UB_GENERATION_QUALIFIER_LENGTH: usize = 3;
/// X.411 `ub-common-name-length`: the longest common name.
pub const UB_COMMON_NAME_LENGTH: usize = 64;
/// X.411 `ub-numeric-user-id-length`: the longest numeric user identifier.
pub const UB_NUMERIC_USER_ID_LENGTH: usize = 32;
/// X.411 `ub-terminal-id-length`: the longest terminal identifier.
pub const UB_TERMINAL_ID_LENGTH: usize = 24;
/// X.411 `ub-x121-address-length`: the longest X.121 network address.
pub const UB_X121_ADDRESS_LENGTH: usize = 16;
/// X.411 `ub-domain-defined-attributes`: the most domain-defined attributes in one address.
pub const UB_DOMAIN_DEFINED_ATTRIBUTES: usize = 4;
/// X.411 `ub-domain-defined-attribute-type-length`: the longest domain-defined type.
pub const UB_DOMAIN_DEFINED_ATTRIBUTE_TYPE_LENGTH: usize = 8;
/// X.411 `ub-domain-defined-attribute-value-length`: the longest domain-defined value.
pub const UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH: usize = 128;

/// The longest std-or text, in bytes, that [`ORAddress::parse_std_or`] looks at.
///
/// The longest valid address, every attribute at its upper bound and every character
/// quoted with `$`, is a little over 2,100 bytes; this leaves room for spaces and the longer
/// alternative keywords.
pub const MAX_STD_OR_LENGTH: usize = 4096;

/// The quoting character of RFC 2156 §4.1.3 `std-pair`.
const QUOTE: char = '$';

/// The prefix of a domain-defined attribute keyword in RFC 2156 (`DD.type=value`).
const DD_PREFIX: &str = "DD.";

/// The prefix of a domain-defined attribute keyword in X.402 Annex F (`DDA:type=value`).
const DDA_PREFIX: &str = "DDA:";

/// The registered domain-defined type that RFC 2156 lets stand as a keyword of its own.
const RFC_822_TYPE: &str = "RFC-822";

/// An X.400 O/R address (X.411 `ORAddress`) in its mnemonic form.
///
/// Each field is one X.411 attribute; `None` (or an empty list) means the attribute is
/// absent. Equality (`==`, [`Hash`]) is exact; [`ORAddress::matches`] compares as X.400
/// does. Parse with [`ORAddress::parse_std_or`] or [`str::parse`], print with
/// [`Display`](fmt::Display).
///
/// # The text form
///
/// RFC 2156 §4.1.3 writes an O/R address as a sequence of `keyword=value` pairs, each one
/// introduced by `/`:
///
/// ```text
/// std-or-address      = 1*( "/" attribute "=" value ) "/"
/// attribute           = standard-type / "RFC-822" / registered-dd-type
///                     / dd-key "." std-printablestring
/// value               = std-printablestring
/// std-printablestring = *( std-char / std-pair )
/// std-char            = <any ps-char except "/" and "=">
/// std-pair            = "$" ps-char
/// ```
///
/// so `/C=GB/ADMD= /PRMD=X/O=Y/OU=Z/S=Smith/G=Jane/` is Jane Smith, unit Z of organization
/// Y, in private domain X under any administration domain (a single space) in Great Britain.
/// A `/` or `=` inside a value is written `$/` and `$=`.
///
/// [`ORAddress::parse_std_or`] (and [`str::parse`]) accepts, beyond that grammar, what RFC
/// 2156 chapter 4 says "can be parsed but is not generated" — the X.400 way of writing
/// addresses (X.402 Annex F, RFC 1685):
/// - the leading and the trailing `/` are optional, `;` separates pairs as well as `/`, and
///   spaces before a keyword are ignored (`G=Jane; S=Smith; C=GB`);
/// - keywords are matched without regard to case, and the alternative keywords are accepted.
///
/// | printed            | also accepted           | X.411 attribute                      |
/// |--------------------|-------------------------|--------------------------------------|
/// | `C`                |                         | `country-name`                       |
/// | `ADMD`             | `A`                     | `administration-domain-name`         |
/// | `PRMD`             | `P`                     | `private-domain-name`                |
/// | `O`                |                         | `organization-name`                  |
/// | `OU` (repeated)    | `OU1` … `OU4`           | `organizational-unit-names`          |
/// | `S`, `G`, `I`      |                         | `personal-name` components           |
/// | `GQ`               | `Q`                     | `personal-name.generation-qualifier` |
/// | —                  | `PN` (`encoded-pn`)     | `personal-name` (§4.1.2)             |
/// | `CN`               |                         | `common-name` (extension attribute)  |
/// | `X121`             | `X.121`                 | `network-address`                    |
/// | `UA-ID`            | `N-ID`                  | `numeric-user-identifier`            |
/// | `T-ID`             |                         | `terminal-identifier`                |
/// | `DD.`*type*        | `DDA:`*type*, `RFC-822` | `built-in-domain-defined-attributes` |
///
/// Keywords RFC 2156 defines for attributes this type does not carry (the postal `PD-…`
/// attributes, `NET-NUM`, `NET-SUB`, `NET-PSAP`, `T-TY`) are refused with
/// [`StdOrError::UnsupportedKeyword`]; teletex values (`*` and `{ddd}`) are refused as bad
/// characters.
///
/// # Order of repeated attributes
///
/// Only the organizational units and the domain-defined attributes repeat, and their order
/// is the order of the X.411 `SEQUENCE`. [`ORAddress`]'s [`Display`](fmt::Display) writes
/// the most significant attribute first (`C`, `ADMD`, `PRMD`, `O`, `OU`…, `S`, `G`, `I`,
/// `GQ`, `CN`, `X121`, `UA-ID`, `T-ID`, `DD`…), so the units come out in sequence order.
/// Text written the other way round, least significant first as is common in MIXER texts
/// (`/S=Smith/OU=Sales/OU=Europe/O=Acme/C=GB/`), is recognised: when one of `C`, `ADMD`,
/// `PRMD` or `O` comes after the first plain `OU` (or the first `DD`), those are read from
/// right to left. The numbered keywords `OU1` … `OU4` are never reordered.
///
/// # What is checked
///
/// Every value must be non-empty, within the X.411 upper bound of its attribute (the `UB_…`
/// constants) and in its character repertoire: PrintableString (`A-Z a-z 0-9` and
/// `' ( ) + , - . / : = ?` and space) for most, digits for the numeric user identifier and
/// the X.121 network address; a country is two letters (ISO 3166) or three digits (X.121
/// DCC). A std-or text needs only one attribute: RFC 2156 also uses it for the part of an
/// address left over after a domain mapping (`"/S=Smith/"@x400.example`).
/// [`ORAddress::validate_mnemonic`] adds the X.402 requirement of a mnemonic O/R address
/// that the country and the administration domain are present.
///
/// # ASCII in PrintableString
///
/// [`printable_from_ascii`] and [`ascii_from_printable`] are the reversible mapping of RFC
/// 2156 §3.4, used for example for the `RFC-822` domain-defined attribute: `@` is written
/// `(a)`, `%` `(p)`, `!` `(b)`, `"` `(q)`, `_` `(u)`, `(` `(l)`, `)` `(r)`, and any other
/// character outside PrintableString `(ddd)`, its ASCII code in three decimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct ORAddress {
    /// `country-name` (`C`): an ISO 3166 alpha-2 code or an X.121 data country code.
    pub country: Option<String>,
    /// `administration-domain-name` (`ADMD`, `A`); a single space means any ADMD.
    pub admd: Option<String>,
    /// `private-domain-name` (`PRMD`, `P`).
    pub prmd: Option<String>,
    /// `organization-name` (`O`).
    pub organization: Option<String>,
    /// `organizational-unit-names` (`OU`, `OU1` … `OU4`), most significant first; at most
    /// [`UB_ORGANIZATIONAL_UNITS`].
    pub organizational_units: Vec<String>,
    /// `personal-name` (`S`, `G`, `I`, `GQ`).
    pub personal_name: Option<PersonalName>,
    /// `common-name` (`CN`), an extension attribute.
    pub common_name: Option<String>,
    /// `numeric-user-identifier` (`UA-ID`, `N-ID`), digits only.
    pub numeric_user_id: Option<String>,
    /// `terminal-identifier` (`T-ID`).
    pub terminal_id: Option<String>,
    /// `network-address` (`X121`, `X.121`), an X.121 address: digits only.
    pub network_address: Option<String>,
    /// `built-in-domain-defined-attributes` (`DD.type`, `DDA:type`), in sequence order; at
    /// most [`UB_DOMAIN_DEFINED_ATTRIBUTES`].
    pub domain_defined: Vec<DomainDefinedAttribute>,
}

/// An X.411 `PersonalName`: a surname and optionally a given name, initials and a
/// generation qualifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonalName {
    /// `surname` (`S`), required.
    pub surname: String,
    /// `given-name` (`G`).
    pub given_name: Option<String>,
    /// `initials` (`I`), the initials of the names other than the surname, without dots.
    pub initials: Option<String>,
    /// `generation-qualifier` (`GQ`, `Q`), such as `Jr` or `III`.
    pub generation_qualifier: Option<String>,
}

impl PersonalName {
    /// A personal name with only a surname.
    pub fn new(surname: impl Into<String>) -> Self {
        PersonalName {
            surname: surname.into(),
            given_name: None,
            initials: None,
            generation_qualifier: None,
        }
    }
}

/// An X.411 `BuiltInDomainDefinedAttribute`: a type and a value, both PrintableString,
/// whose meaning the management domain defines (for example type `RFC-822`, RFC 2156).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainDefinedAttribute {
    /// The X.411 `type` of the attribute.
    pub kind: String,
    /// The X.411 `value` of the attribute.
    pub value: String,
}

impl DomainDefinedAttribute {
    /// A domain-defined attribute of the given type and value.
    pub fn new(kind: impl Into<String>, value: impl Into<String>) -> Self {
        DomainDefinedAttribute {
            kind: kind.into(),
            value: value.into(),
        }
    }
}

/// An attribute of an O/R address, as named in errors; it displays as its RFC 2156
/// keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ORAddressAttribute {
    /// `country-name` (`C`).
    Country,
    /// `administration-domain-name` (`ADMD`).
    AdministrationDomainName,
    /// `private-domain-name` (`PRMD`).
    PrivateDomainName,
    /// `organization-name` (`O`).
    OrganizationName,
    /// An `organizational-unit-names` element (`OU`).
    OrganizationalUnitName,
    /// The whole `personal-name` written as `encoded-pn` (`PN`).
    PersonalName,
    /// `personal-name.surname` (`S`).
    Surname,
    /// `personal-name.given-name` (`G`).
    GivenName,
    /// `personal-name.initials` (`I`).
    Initials,
    /// `personal-name.generation-qualifier` (`GQ`).
    GenerationQualifier,
    /// `common-name` (`CN`).
    CommonName,
    /// `network-address` (`X121`).
    NetworkAddress,
    /// `numeric-user-identifier` (`UA-ID`).
    NumericUserIdentifier,
    /// `terminal-identifier` (`T-ID`).
    TerminalIdentifier,
    /// The type of a domain-defined attribute (the part after `DD.`).
    DomainDefinedAttributeType,
    /// The value of a domain-defined attribute.
    DomainDefinedAttributeValue,
}

impl ORAddressAttribute {
    /// The RFC 2156 keyword that [`ORAddress`]'s `Display` prints for this attribute.
    pub fn keyword(self) -> &'static str {
        match self {
            ORAddressAttribute::Country => "C",
            ORAddressAttribute::AdministrationDomainName => "ADMD",
            ORAddressAttribute::PrivateDomainName => "PRMD",
            ORAddressAttribute::OrganizationName => "O",
            ORAddressAttribute::OrganizationalUnitName => "OU",
            ORAddressAttribute::PersonalName => "PN",
            ORAddressAttribute::Surname => "S",
            ORAddressAttribute::GivenName => "G",
            ORAddressAttribute::Initials => "I",
            ORAddressAttribute::GenerationQualifier => "GQ",
            ORAddressAttribute::CommonName => "CN",
            ORAddressAttribute::NetworkAddress => "X121",
            ORAddressAttribute::NumericUserIdentifier => "UA-ID",
            ORAddressAttribute::TerminalIdentifier => "T-ID",
            ORAddressAttribute::DomainDefinedAttributeType
            | ORAddressAttribute::DomainDefinedAttributeValue => "DD",
        }
    }
}

impl fmt::Display for ORAddressAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ORAddressAttribute::DomainDefinedAttributeType => f.write_str("DD type"),
            ORAddressAttribute::DomainDefinedAttributeValue => f.write_str("DD value"),
            other => f.write_str(other.keyword()),
        }
    }
}

/// Why a text is not an RFC 2156 std-or address, or why an [`ORAddress`] is not valid.
///
/// Every variant is the fault of whoever wrote the address (the peer, the user or the
/// configuration); byte positions count from the start of the parsed text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StdOrError {
    /// The address has no attribute at all (empty text, only separators or spaces).
    #[error("empty O/R address: no attribute given")]
    Empty,
    /// The text is longer than [`MAX_STD_OR_LENGTH`]; nothing of it was parsed.
    #[error("O/R address text of {actual} bytes, more than the limit of {limit}")]
    TooLong {
        /// [`MAX_STD_OR_LENGTH`].
        limit: usize,
        /// The length of the text, in bytes.
        actual: usize,
    },
    /// Two separators (`/` or `;`) with nothing but spaces between them.
    #[error("empty component at byte {position}")]
    EmptyComponent {
        /// Where the empty component starts.
        position: usize,
    },
    /// A component has no unquoted `=` between its keyword and its value.
    #[error("component {component:?} has no \"=\"")]
    MissingEquals {
        /// The component, as written.
        component: String,
    },
    /// A component starts with `=`: it has no keyword.
    #[error("component at byte {position} has no keyword before \"=\"")]
    MissingKeyword {
        /// Where the component starts.
        position: usize,
    },
    /// The keyword is not one of RFC 2156 or X.402.
    #[error("unknown O/R address keyword {keyword:?}")]
    UnknownKeyword {
        /// The keyword, as written.
        keyword: String,
    },
    /// The keyword is one of RFC 2156, for an attribute (postal, extended network address,
    /// terminal type) that [`ORAddress`] does not carry.
    #[error("O/R address keyword {keyword:?} is not supported")]
    UnsupportedKeyword {
        /// The keyword, as written.
        keyword: String,
    },
    /// A `$` ends the text: it quotes nothing.
    #[error("\"$\" at byte {position} quotes nothing")]
    BadEscape {
        /// Where the `$` is.
        position: usize,
    },
    /// An attribute is present with an empty value.
    #[error("{attribute} has an empty value")]
    EmptyValue {
        /// The attribute.
        attribute: ORAddressAttribute,
    },
    /// A value is longer than the X.411 upper bound of its attribute.
    #[error("{attribute} is {actual} characters long, more than the limit of {limit}")]
    ValueTooLong {
        /// The attribute.
        attribute: ORAddressAttribute,
        /// The X.411 upper bound (a `UB_…` constant).
        limit: usize,
        /// The length of the value, in characters.
        actual: usize,
    },
    /// A value has a character outside the repertoire of its attribute (PrintableString, or
    /// digits for the numeric ones).
    #[error("{attribute} may not contain {character:?}")]
    BadCharacter {
        /// The attribute.
        attribute: ORAddressAttribute,
        /// The first character that is not allowed.
        character: char,
    },
    /// The country is neither two letters (ISO 3166 alpha-2) nor three digits (X.121 DCC).
    #[error("country {value:?} is neither two letters nor three digits")]
    BadCountry {
        /// The value, as given.
        value: String,
    },
    /// More organizational units than [`UB_ORGANIZATIONAL_UNITS`] (or a keyword `OU5` and
    /// beyond).
    #[error("{count} organizational units, more than the limit of {limit}", limit = UB_ORGANIZATIONAL_UNITS)]
    TooManyOrganizationalUnits {
        /// How many there are (or the number in the `OUn` keyword).
        count: usize,
    },
    /// More domain-defined attributes than [`UB_DOMAIN_DEFINED_ATTRIBUTES`].
    #[error("{count} domain-defined attributes, more than the limit of {limit}", limit = UB_DOMAIN_DEFINED_ATTRIBUTES)]
    TooManyDomainDefinedAttributes {
        /// How many there are.
        count: usize,
    },
    /// An attribute that may appear once appears twice (perhaps under two keywords, such as
    /// `ADMD` and `A`, or `PN` and `S`).
    #[error("{attribute} given twice")]
    DuplicateAttribute {
        /// The attribute.
        attribute: ORAddressAttribute,
    },
    /// Plain `OU` keywords and numbered `OU1` … `OU4` keywords in the same address.
    #[error("OU and OU1 ... OU4 mixed in one address")]
    MixedOrganizationalUnitKeywords,
    /// A numbered organizational unit is given while one before it is missing (`OU2`
    /// without `OU1`).
    #[error("OU{missing} missing before a later numbered OU")]
    OrganizationalUnitGap {
        /// The number of the missing unit, from 1.
        missing: usize,
    },
    /// A given name, initials or generation qualifier without a surname: X.411 requires the
    /// surname in a personal name.
    #[error("{attribute} given without a surname (S)")]
    SurnameMissing {
        /// The personal name component that is present.
        attribute: ORAddressAttribute,
    },
    /// A `PN` value that is not an RFC 2156 `encoded-pn` (`Given.I.N.Surname`).
    #[error("PN value {value:?} is not given.initials.surname")]
    BadPersonalName {
        /// The value, as given.
        value: String,
    },
    /// An attribute required in a mnemonic O/R address (X.402: country and ADMD) is absent.
    #[error("{attribute} missing: a mnemonic O/R address needs C and ADMD")]
    MissingAttribute {
        /// The missing attribute.
        attribute: ORAddressAttribute,
    },
}

/// Why a PrintableString is not the RFC 2156 §3.4 encoding of an ASCII string.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PrintableMappingError {
    /// A character that PrintableString does not have.
    #[error("{character:?} at byte {position} is not a PrintableString character")]
    NotPrintable {
        /// The character.
        character: char,
        /// Its byte position.
        position: usize,
    },
    /// A `(` that does not start `(a)`, `(p)`, `(b)`, `(q)`, `(u)`, `(l)`, `(r)` or
    /// `(ddd)`, or a `)` that closes nothing.
    #[error("bad escape at byte {position}")]
    BadEscape {
        /// Where the parenthesis is.
        position: usize,
    },
    /// A `(ddd)` escape above 127, outside ASCII.
    #[error("escape ({value:03}) at byte {position} is not an ASCII code")]
    OutOfRange {
        /// The decimal value.
        value: u16,
        /// Where the escape starts.
        position: usize,
    },
}

impl ORAddress {
    /// Parses the RFC 2156 `std-or-address` text form (see [`ORAddress`] for what is
    /// accepted) and checks the result with [`ORAddress::validate`].
    ///
    /// The address needs at least one attribute; use [`ORAddress::validate_mnemonic`] to
    /// require a country and an ADMD as well.
    pub fn parse_std_or(text: &str) -> Result<Self, StdOrError> {
        if text.len() > MAX_STD_OR_LENGTH {
            return Err(StdOrError::TooLong {
                limit: MAX_STD_OR_LENGTH,
                actual: text.len(),
            });
        }
        let components = split_components(text)?;
        let last = components.len().saturating_sub(1);
        let mut builder = StdOrBuilder::default();
        for (index, (start, component)) in components.into_iter().enumerate() {
            let body = component.trim_start_matches(is_blank);
            let body_start = start + (component.len() - body.len());
            if body.is_empty() {
                if index == 0 || index == last {
                    continue;
                }
                return Err(StdOrError::EmptyComponent { position: start });
            }
            let Some(equals) = find_unquoted_equals(body) else {
                return Err(StdOrError::MissingEquals {
                    component: body.to_owned(),
                });
            };
            let raw_keyword = body.get(..equals).unwrap_or_default();
            let raw_value = body.get(equals + 1..).unwrap_or_default();
            let keyword = Keyword::classify(raw_keyword, body_start)?;
            let value = unquote(raw_value, body_start + equals + 1)?;
            builder.add(index, keyword, value)?;
        }
        builder.finish()
    }

    /// Whether no attribute at all is present.
    pub fn is_empty(&self) -> bool {
        self.country.is_none()
            && self.admd.is_none()
            && self.prmd.is_none()
            && self.organization.is_none()
            && self.organizational_units.is_empty()
            && self.personal_name.is_none()
            && self.common_name.is_none()
            && self.numeric_user_id.is_none()
            && self.terminal_id.is_none()
            && self.network_address.is_none()
            && self.domain_defined.is_empty()
    }

    /// Checks every attribute against X.411: at least one attribute present, every value
    /// non-empty, within its upper bound and its character repertoire, the country two
    /// letters or three digits, at most four organizational units and four domain-defined
    /// attributes.
    ///
    /// Every address that passes prints (with `Display`) to a text that parses back to an
    /// equal address.
    pub fn validate(&self) -> Result<(), StdOrError> {
        if self.is_empty() {
            return Err(StdOrError::Empty);
        }
        if let Some(country) = &self.country {
            check_country(country)?;
        }
        check_optional(
            self.admd.as_deref(),
            ORAddressAttribute::AdministrationDomainName,
            UB_DOMAIN_NAME_LENGTH,
            is_printable,
        )?;
        check_optional(
            self.prmd.as_deref(),
            ORAddressAttribute::PrivateDomainName,
            UB_DOMAIN_NAME_LENGTH,
            is_printable,
        )?;
        check_optional(
            self.organization.as_deref(),
            ORAddressAttribute::OrganizationName,
            UB_ORGANIZATION_NAME_LENGTH,
            is_printable,
        )?;
        if self.organizational_units.len() > UB_ORGANIZATIONAL_UNITS {
            return Err(StdOrError::TooManyOrganizationalUnits {
                count: self.organizational_units.len(),
            });
        }
        for unit in &self.organizational_units {
            check_value(
                unit,
                ORAddressAttribute::OrganizationalUnitName,
                UB_ORGANIZATIONAL_UNIT_NAME_LENGTH,
                is_printable,
            )?;
        }
        if let Some(name) = &self.personal_name {
            check_personal_name(name)?;
        }
        check_optional(
            self.common_name.as_deref(),
            ORAddressAttribute::CommonName,
            UB_COMMON_NAME_LENGTH,
            is_printable,
        )?;
        check_optional(
            self.numeric_user_id.as_deref(),
            ORAddressAttribute::NumericUserIdentifier,
            UB_NUMERIC_USER_ID_LENGTH,
            is_digit,
        )?;
        check_optional(
            self.terminal_id.as_deref(),
            ORAddressAttribute::TerminalIdentifier,
            UB_TERMINAL_ID_LENGTH,
            is_printable,
        )?;
        check_optional(
            self.network_address.as_deref(),
            ORAddressAttribute::NetworkAddress,
            UB_X121_ADDRESS_LENGTH,
            is_digit,
        )?;
        if self.domain_defined.len() > UB_DOMAIN_DEFINED_ATTRIBUTES {
            return Err(StdOrError::TooManyDomainDefinedAttributes {
                count: self.domain_defined.len(),
            });
        }
        for attribute in &self.domain_defined {
            check_value(
                &attribute.kind,
                ORAddressAttribute::DomainDefinedAttributeType,
                UB_DOMAIN_DEFINED_ATTRIBUTE_TYPE_LENGTH,
                is_printable,
            )?;
            check_value(
                &attribute.value,
                ORAddressAttribute::DomainDefinedAttributeValue,
                UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH,
                is_printable,
            )?;
        }
        Ok(())
    }

    /// [`ORAddress::validate`], and then the X.402 rule for a mnemonic O/R address: the
    /// country (`C`) and the administration domain (`ADMD`, perhaps a single space for
    /// "any") must be present.
    ///
    /// A std-or text on its own need not satisfy this: RFC 2156 also writes the part of an
    /// address that is left over once the rest is carried in a domain.
    pub fn validate_mnemonic(&self) -> Result<(), StdOrError> {
        self.validate()?;
        if self.country.is_none() {
            return Err(StdOrError::MissingAttribute {
                attribute: ORAddressAttribute::Country,
            });
        }
        if self.admd.is_none() {
            return Err(StdOrError::MissingAttribute {
                attribute: ORAddressAttribute::AdministrationDomainName,
            });
        }
        Ok(())
    }

    /// Whether two addresses name the same recipient under the X.400 matching rules.
    ///
    /// The same attributes must be present in both, and each pair of values must match:
    /// - PrintableString values (everything but the numeric ones) match without regard to
    ///   case, once leading and trailing spaces are dropped and every run of inner spaces
    ///   is taken as one space (so `"Acme  Ltd "` matches `"ACME Ltd"`);
    /// - numeric values (`UA-ID`, `X121`, a numeric country) match when their digits are
    ///   equal, spaces ignored;
    /// - a country matches another written the same way without regard to case; an alpha-2
    ///   code never matches a numeric one (there is no table here between the two);
    /// - organizational units and domain-defined attributes match element by element, in
    ///   order, both the type and the value of a domain-defined attribute as PrintableString.
    ///
    /// An ADMD of a single space ("any ADMD") matches only another blank ADMD: this is
    /// equality of names, not routing.
    pub fn matches(&self, other: &ORAddress) -> bool {
        optional_matches(
            self.country.as_deref(),
            other.country.as_deref(),
            country_matches,
        ) && optional_matches(
            self.admd.as_deref(),
            other.admd.as_deref(),
            printable_matches,
        ) && optional_matches(
            self.prmd.as_deref(),
            other.prmd.as_deref(),
            printable_matches,
        ) && optional_matches(
            self.organization.as_deref(),
            other.organization.as_deref(),
            printable_matches,
        ) && self.organizational_units.len() == other.organizational_units.len()
            && self
                .organizational_units
                .iter()
                .zip(&other.organizational_units)
                .all(|(a, b)| printable_matches(a, b))
            && optional_matches(
                self.personal_name.as_ref(),
                other.personal_name.as_ref(),
                personal_name_matches,
            )
            && optional_matches(
                self.common_name.as_deref(),
                other.common_name.as_deref(),
                printable_matches,
            )
            && optional_matches(
                self.numeric_user_id.as_deref(),
                other.numeric_user_id.as_deref(),
                numeric_matches,
            )
            && optional_matches(
                self.terminal_id.as_deref(),
                other.terminal_id.as_deref(),
                printable_matches,
            )
            && optional_matches(
                self.network_address.as_deref(),
                other.network_address.as_deref(),
                numeric_matches,
            )
            && self.domain_defined.len() == other.domain_defined.len()
            && self
                .domain_defined
                .iter()
                .zip(&other.domain_defined)
                .all(|(a, b)| {
                    printable_matches(&a.kind, &b.kind) && printable_matches(&a.value, &b.value)
                })
    }
}

impl FromStr for ORAddress {
    type Err = StdOrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ORAddress::parse_std_or(s)
    }
}

/// Prints the RFC 2156 `std-or-address` form, most significant attribute first, with a
/// leading and a trailing `/`: `/C=GB/ADMD= /PRMD=X/O=Y/OU=Z/S=Smith/G=Jane/`. A `/`, `=`,
/// `;` or `$` inside a value is quoted with `$`. An address with no attribute prints as `/`.
impl fmt::Display for ORAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("/")?;
        write_optional(f, ORAddressAttribute::Country, self.country.as_deref())?;
        write_optional(
            f,
            ORAddressAttribute::AdministrationDomainName,
            self.admd.as_deref(),
        )?;
        write_optional(
            f,
            ORAddressAttribute::PrivateDomainName,
            self.prmd.as_deref(),
        )?;
        write_optional(
            f,
            ORAddressAttribute::OrganizationName,
            self.organization.as_deref(),
        )?;
        for unit in &self.organizational_units {
            write_pair(
                f,
                ORAddressAttribute::OrganizationalUnitName.keyword(),
                unit,
            )?;
        }
        if let Some(name) = &self.personal_name {
            write_pair(f, ORAddressAttribute::Surname.keyword(), &name.surname)?;
            write_optional(f, ORAddressAttribute::GivenName, name.given_name.as_deref())?;
            write_optional(f, ORAddressAttribute::Initials, name.initials.as_deref())?;
            write_optional(
                f,
                ORAddressAttribute::GenerationQualifier,
                name.generation_qualifier.as_deref(),
            )?;
        }
        write_optional(
            f,
            ORAddressAttribute::CommonName,
            self.common_name.as_deref(),
        )?;
        write_optional(
            f,
            ORAddressAttribute::NetworkAddress,
            self.network_address.as_deref(),
        )?;
        write_optional(
            f,
            ORAddressAttribute::NumericUserIdentifier,
            self.numeric_user_id.as_deref(),
        )?;
        write_optional(
            f,
            ORAddressAttribute::TerminalIdentifier,
            self.terminal_id.as_deref(),
        )?;
        for attribute in &self.domain_defined {
            f.write_str(DD_PREFIX)?;
            write_quoted(f, &attribute.kind)?;
            f.write_str("=")?;
            write_quoted(f, &attribute.value)?;
            f.write_str("/")?;
        }
        Ok(())
    }
}

/// Encodes ASCII text as PrintableString with the reversible mapping of RFC 2156 §3.4.
///
/// PrintableString characters other than the parentheses are kept; `@` `%` `!` `"` `_` `(`
/// `)` become `(a)` `(p)` `(b)` `(q)` `(u)` `(l)` `(r)`; any other character becomes
/// `(ddd)`, its code in three decimal digits. So `Postmaster@mx.example` becomes
/// `Postmaster(a)mx.example`. The input is meant to be ASCII: a non-ASCII character is
/// written byte by byte as `(ddd)` codes above 127, which RFC 2156 does not define and
/// [`ascii_from_printable`] refuses.
pub fn printable_from_ascii(ascii: &str) -> String {
    let mut printable = String::with_capacity(ascii.len());
    for byte in ascii.bytes() {
        match byte {
            b'@' => printable.push_str("(a)"),
            b'%' => printable.push_str("(p)"),
            b'!' => printable.push_str("(b)"),
            b'"' => printable.push_str("(q)"),
            b'_' => printable.push_str("(u)"),
            b'(' => printable.push_str("(l)"),
            b')' => printable.push_str("(r)"),
            _ if is_ps_restricted(char::from(byte)) => printable.push(char::from(byte)),
            _ => {
                printable.push('(');
                printable.push(char::from(b'0' + byte / 100));
                printable.push(char::from(b'0' + byte / 10 % 10));
                printable.push(char::from(b'0' + byte % 10));
                printable.push(')');
            }
        }
    }
    printable
}

/// Decodes a PrintableString written with the RFC 2156 §3.4 mapping back to ASCII: the
/// inverse of [`printable_from_ascii`].
///
/// The letter escapes are read without regard to case (`(A)` is `@` too); `(ddd)` must be
/// three digits and at most 127. A PrintableString that is not such an encoding (a lone
/// parenthesis, an unknown escape, a character outside PrintableString) is refused, as RFC
/// 2156 asks; a caller that prefers may then carry the value unchanged.
pub fn ascii_from_printable(printable: &str) -> Result<String, PrintableMappingError> {
    let mut ascii = String::with_capacity(printable.len());
    let mut rest = printable;
    let mut position = 0;
    while let Some(character) = rest.chars().next() {
        let consumed = if character == '(' {
            let Some(close) = rest.find(')') else {
                return Err(PrintableMappingError::BadEscape { position });
            };
            let code = rest.get(1..close).unwrap_or_default();
            ascii.push(decode_escape(code, position)?);
            close + 1
        } else if is_ps_restricted(character) {
            ascii.push(character);
            character.len_utf8()
        } else if character == ')' {
            return Err(PrintableMappingError::BadEscape { position });
        } else {
            return Err(PrintableMappingError::NotPrintable {
                character,
                position,
            });
        };
        rest = rest.get(consumed..).unwrap_or_default();
        position += consumed;
    }
    Ok(ascii)
}

/// The character an RFC 2156 §3.4 escape stands for; `code` is what is between the
/// parentheses.
fn decode_escape(code: &str, position: usize) -> Result<char, PrintableMappingError> {
    let letter = match code {
        "a" | "A" => Some('@'),
        "p" | "P" => Some('%'),
        "b" | "B" => Some('!'),
        "q" | "Q" => Some('"'),
        "u" | "U" => Some('_'),
        "l" | "L" => Some('('),
        "r" | "R" => Some(')'),
        _ => None,
    };
    if let Some(letter) = letter {
        return Ok(letter);
    }
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PrintableMappingError::BadEscape { position });
    }
    let value = code
        .bytes()
        .fold(0u16, |value, digit| value * 10 + u16::from(digit - b'0'));
    match u8::try_from(value) {
        Ok(byte) if byte.is_ascii() => Ok(char::from(byte)),
        _ => Err(PrintableMappingError::OutOfRange { value, position }),
    }
}

/// A keyword of the std-or form, as understood by the parser.
enum Keyword<'a> {
    /// `C`.
    Country,
    /// `ADMD`, `A`.
    AdministrationDomainName,
    /// `PRMD`, `P`.
    PrivateDomainName,
    /// `O`.
    OrganizationName,
    /// `OU`, in order of appearance.
    OrganizationalUnit,
    /// `OU1` … `OU4`; the number counts from 1.
    NumberedOrganizationalUnit(usize),
    /// `PN`, an `encoded-pn`.
    PersonalName,
    /// `S`.
    Surname,
    /// `G`.
    GivenName,
    /// `I`.
    Initials,
    /// `GQ`, `Q`.
    GenerationQualifier,
    /// `CN`.
    CommonName,
    /// `X121`, `X.121`.
    NetworkAddress,
    /// `UA-ID`, `N-ID`.
    NumericUserIdentifier,
    /// `T-ID`.
    TerminalIdentifier,
    /// `DD.type` or `DDA:type`: the type as written (still quoted) and where it starts.
    DomainDefined(&'a str, usize),
    /// A registered domain-defined type used as the keyword (`RFC-822`).
    RegisteredDomainDefined(&'static str),
}

impl<'a> Keyword<'a> {
    /// Recognises the keyword part of a component (everything before the first unquoted
    /// `=`), which starts at byte `position` of the text.
    fn classify(raw: &'a str, position: usize) -> Result<Self, StdOrError> {
        for prefix in [DD_PREFIX, DDA_PREFIX] {
            if let Some((head, kind)) = raw.split_at_checked(prefix.len())
                && head.eq_ignore_ascii_case(prefix)
            {
                return Ok(Keyword::DomainDefined(kind, position + prefix.len()));
            }
        }
        let keyword = raw.trim_end_matches(is_blank);
        if keyword.is_empty() {
            return Err(StdOrError::MissingKeyword { position });
        }
        let upper = keyword.to_ascii_uppercase();
        let recognised = match upper.as_str() {
            "C" => Keyword::Country,
            "ADMD" | "A" => Keyword::AdministrationDomainName,
            "PRMD" | "P" => Keyword::PrivateDomainName,
            "O" => Keyword::OrganizationName,
            "OU" => Keyword::OrganizationalUnit,
            "PN" => Keyword::PersonalName,
            "S" => Keyword::Surname,
            "G" => Keyword::GivenName,
            "I" => Keyword::Initials,
            "GQ" | "Q" => Keyword::GenerationQualifier,
            "CN" => Keyword::CommonName,
            "X121" | "X.121" => Keyword::NetworkAddress,
            "UA-ID" | "N-ID" => Keyword::NumericUserIdentifier,
            "T-ID" => Keyword::TerminalIdentifier,
            "RFC-822" => Keyword::RegisteredDomainDefined(RFC_822_TYPE),
            "NET-NUM" | "NET-SUB" | "NET-PSAP" | "ISDN" | "PSAP" | "E.164" | "T-TY" => {
                return Err(StdOrError::UnsupportedKeyword {
                    keyword: keyword.to_owned(),
                });
            }
            other if other.starts_with("PD-") => {
                return Err(StdOrError::UnsupportedKeyword {
                    keyword: keyword.to_owned(),
                });
            }
            other => match organizational_unit_number(other) {
                Some(number @ 1..=UB_ORGANIZATIONAL_UNITS) => {
                    Keyword::NumberedOrganizationalUnit(number)
                }
                Some(number) if number > UB_ORGANIZATIONAL_UNITS => {
                    return Err(StdOrError::TooManyOrganizationalUnits { count: number });
                }
                _ => {
                    return Err(StdOrError::UnknownKeyword {
                        keyword: keyword.to_owned(),
                    });
                }
            },
        };
        Ok(recognised)
    }
}

/// The number of an `OUn` keyword (upper case), if it is one.
fn organizational_unit_number(keyword: &str) -> Option<usize> {
    let digits = keyword.strip_prefix("OU")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Too many digits for a usize is as good as "more than four".
    Some(digits.parse().unwrap_or(usize::MAX))
}

/// What the parser has collected so far.
#[derive(Default)]
struct StdOrBuilder {
    /// The attributes that need no further work.
    address: ORAddress,
    /// `S`.
    surname: Option<String>,
    /// `G`.
    given_name: Option<String>,
    /// `I`.
    initials: Option<String>,
    /// `GQ`.
    generation_qualifier: Option<String>,
    /// `PN`, already split.
    encoded_personal_name: Option<PersonalName>,
    /// Plain `OU` values, in order of appearance.
    plain_units: Vec<String>,
    /// `OU1` … `OU4` values.
    numbered_units: [Option<String>; UB_ORGANIZATIONAL_UNITS],
    /// The index of the first plain `OU` component.
    first_plain_unit: Option<usize>,
    /// The index of the first domain-defined attribute component.
    first_domain_defined: Option<usize>,
    /// The index of the last `C`, `ADMD`, `PRMD` or `O` component.
    last_anchor: Option<usize>,
}

impl StdOrBuilder {
    /// Records the component at `index` (counting separators).
    fn add(&mut self, index: usize, keyword: Keyword<'_>, value: String) -> Result<(), StdOrError> {
        match keyword {
            Keyword::Country => {
                self.last_anchor = Some(index);
                set_once(
                    &mut self.address.country,
                    ORAddressAttribute::Country,
                    value,
                )
            }
            Keyword::AdministrationDomainName => {
                self.last_anchor = Some(index);
                set_once(
                    &mut self.address.admd,
                    ORAddressAttribute::AdministrationDomainName,
                    value,
                )
            }
            Keyword::PrivateDomainName => {
                self.last_anchor = Some(index);
                set_once(
                    &mut self.address.prmd,
                    ORAddressAttribute::PrivateDomainName,
                    value,
                )
            }
            Keyword::OrganizationName => {
                self.last_anchor = Some(index);
                set_once(
                    &mut self.address.organization,
                    ORAddressAttribute::OrganizationName,
                    value,
                )
            }
            Keyword::OrganizationalUnit => {
                if self.plain_units.len() == UB_ORGANIZATIONAL_UNITS {
                    return Err(StdOrError::TooManyOrganizationalUnits {
                        count: UB_ORGANIZATIONAL_UNITS + 1,
                    });
                }
                self.first_plain_unit.get_or_insert(index);
                self.plain_units.push(value);
                Ok(())
            }
            Keyword::NumberedOrganizationalUnit(number) => {
                match self.numbered_units.get_mut(number.saturating_sub(1)) {
                    Some(slot) => set_once(slot, ORAddressAttribute::OrganizationalUnitName, value),
                    None => Err(StdOrError::TooManyOrganizationalUnits { count: number }),
                }
            }
            Keyword::PersonalName => {
                if self.encoded_personal_name.is_some() {
                    return Err(StdOrError::DuplicateAttribute {
                        attribute: ORAddressAttribute::PersonalName,
                    });
                }
                self.encoded_personal_name = Some(parse_encoded_personal_name(value)?);
                Ok(())
            }
            Keyword::Surname => set_once(&mut self.surname, ORAddressAttribute::Surname, value),
            Keyword::GivenName => {
                set_once(&mut self.given_name, ORAddressAttribute::GivenName, value)
            }
            Keyword::Initials => set_once(&mut self.initials, ORAddressAttribute::Initials, value),
            Keyword::GenerationQualifier => set_once(
                &mut self.generation_qualifier,
                ORAddressAttribute::GenerationQualifier,
                value,
            ),
            Keyword::CommonName => set_once(
                &mut self.address.common_name,
                ORAddressAttribute::CommonName,
                value,
            ),
            Keyword::NetworkAddress => set_once(
                &mut self.address.network_address,
                ORAddressAttribute::NetworkAddress,
                value,
            ),
            Keyword::NumericUserIdentifier => set_once(
                &mut self.address.numeric_user_id,
                ORAddressAttribute::NumericUserIdentifier,
                value,
            ),
            Keyword::TerminalIdentifier => set_once(
                &mut self.address.terminal_id,
                ORAddressAttribute::TerminalIdentifier,
                value,
            ),
            Keyword::DomainDefined(raw_kind, kind_position) => {
                let kind = unquote(raw_kind, kind_position)?;
                self.push_domain_defined(index, kind, value)
            }
            Keyword::RegisteredDomainDefined(kind) => {
                self.push_domain_defined(index, kind.to_owned(), value)
            }
        }
    }

    /// Appends a domain-defined attribute, refusing the fifth.
    fn push_domain_defined(
        &mut self,
        index: usize,
        kind: String,
        value: String,
    ) -> Result<(), StdOrError> {
        if self.address.domain_defined.len() == UB_DOMAIN_DEFINED_ATTRIBUTES {
            return Err(StdOrError::TooManyDomainDefinedAttributes {
                count: UB_DOMAIN_DEFINED_ATTRIBUTES + 1,
            });
        }
        self.first_domain_defined.get_or_insert(index);
        self.address
            .domain_defined
            .push(DomainDefinedAttribute { kind, value });
        Ok(())
    }

    /// Puts the organizational units, the personal name and the domain-defined attributes
    /// together and validates the address.
    fn finish(mut self) -> Result<ORAddress, StdOrError> {
        let numbered = self.numbered_units.iter().any(Option::is_some);
        if numbered && !self.plain_units.is_empty() {
            return Err(StdOrError::MixedOrganizationalUnitKeywords);
        }
        if numbered {
            let highest = self
                .numbered_units
                .iter()
                .rposition(Option::is_some)
                .unwrap_or_default();
            let mut units = Vec::with_capacity(highest + 1);
            for (number, unit) in self
                .numbered_units
                .into_iter()
                .enumerate()
                .take(highest + 1)
            {
                match unit {
                    Some(unit) => units.push(unit),
                    None => {
                        return Err(StdOrError::OrganizationalUnitGap {
                            missing: number + 1,
                        });
                    }
                }
            }
            self.address.organizational_units = units;
        } else {
            if written_backwards(self.first_plain_unit, self.last_anchor) {
                self.plain_units.reverse();
            }
            self.address.organizational_units = self.plain_units;
        }
        if written_backwards(self.first_domain_defined, self.last_anchor) {
            self.address.domain_defined.reverse();
        }
        self.address.personal_name = match self.encoded_personal_name {
            Some(mut name) => {
                let conflict = [
                    (self.surname.is_some(), ORAddressAttribute::Surname),
                    (self.given_name.is_some(), ORAddressAttribute::GivenName),
                    (self.initials.is_some(), ORAddressAttribute::Initials),
                ]
                .into_iter()
                .find_map(|(present, attribute)| present.then_some(attribute));
                if let Some(attribute) = conflict {
                    return Err(StdOrError::DuplicateAttribute { attribute });
                }
                name.generation_qualifier = self.generation_qualifier;
                Some(name)
            }
            None => match self.surname {
                Some(surname) => Some(PersonalName {
                    surname,
                    given_name: self.given_name,
                    initials: self.initials,
                    generation_qualifier: self.generation_qualifier,
                }),
                None => {
                    let orphan = [
                        (self.given_name.is_some(), ORAddressAttribute::GivenName),
                        (self.initials.is_some(), ORAddressAttribute::Initials),
                        (
                            self.generation_qualifier.is_some(),
                            ORAddressAttribute::GenerationQualifier,
                        ),
                    ]
                    .into_iter()
                    .find_map(|(present, attribute)| present.then_some(attribute));
                    if let Some(attribute) = orphan {
                        return Err(StdOrError::SurnameMissing { attribute });
                    }
                    None
                }
            },
        };
        self.address.validate()?;
        Ok(self.address)
    }
}

/// Whether a repeated attribute first seen at component `first` comes before the last of
/// `C`, `ADMD`, `PRMD`, `O`: then the address is written least significant first.
fn written_backwards(first: Option<usize>, last_anchor: Option<usize>) -> bool {
    matches!((first, last_anchor), (Some(first), Some(anchor)) if first < anchor)
}

/// Stores `value` in an empty slot, or reports the attribute as given twice.
fn set_once(
    slot: &mut Option<String>,
    attribute: ORAddressAttribute,
    value: String,
) -> Result<(), StdOrError> {
    if slot.is_some() {
        return Err(StdOrError::DuplicateAttribute { attribute });
    }
    *slot = Some(value);
    Ok(())
}

/// Splits an RFC 2156 §4.1.2 `encoded-pn`:
/// `encoded-pn = [ given "." ] *( initial "." ) surname`, where a given name has at least
/// two characters and an initial is one letter. `Marshall.M.T.Rose` is given name
/// `Marshall`, initials `MT`, surname `Rose`; `J.Smith` is initial `J`, surname `Smith`.
fn parse_encoded_personal_name(value: String) -> Result<PersonalName, StdOrError> {
    let parts: Vec<&str> = value.split('.').collect();
    if parts.iter().any(|part| part.is_empty()) {
        return Err(StdOrError::BadPersonalName { value });
    }
    let Some((surname, names)) = parts.split_last() else {
        return Err(StdOrError::BadPersonalName { value });
    };
    let mut given_name = None;
    let mut initials = String::new();
    for (index, part) in names.iter().enumerate() {
        let mut letters = part.chars();
        match (letters.next(), letters.next()) {
            (Some(initial), None) if initial.is_ascii_alphabetic() => initials.push(initial),
            (Some(_), Some(_)) if index == 0 => given_name = Some((*part).to_owned()),
            _ => return Err(StdOrError::BadPersonalName { value }),
        }
    }
    Ok(PersonalName {
        surname: (*surname).to_owned(),
        given_name,
        initials: (!initials.is_empty()).then_some(initials),
        generation_qualifier: None,
    })
}

/// Splits the text at every unquoted `/` and `;`, giving each component with the byte
/// position where it starts.
fn split_components(text: &str) -> Result<Vec<(usize, &str)>, StdOrError> {
    let mut components = Vec::new();
    let mut start = 0;
    let mut characters = text.char_indices();
    while let Some((position, character)) = characters.next() {
        match character {
            QUOTE => {
                characters
                    .next()
                    .ok_or(StdOrError::BadEscape { position })?;
            }
            '/' | ';' => {
                components.push((start, text.get(start..position).unwrap_or_default()));
                start = position + 1;
            }
            _ => {}
        }
    }
    components.push((start, text.get(start..).unwrap_or_default()));
    Ok(components)
}

/// The byte position of the first `=` not quoted by `$`.
fn find_unquoted_equals(text: &str) -> Option<usize> {
    let mut characters = text.char_indices();
    while let Some((position, character)) = characters.next() {
        match character {
            QUOTE => {
                characters.next();
            }
            '=' => return Some(position),
            _ => {}
        }
    }
    None
}

/// Removes the `$` quoting; `offset` is the byte position of `text` in the whole text.
fn unquote(text: &str, offset: usize) -> Result<String, StdOrError> {
    let mut unquoted = String::with_capacity(text.len());
    let mut characters = text.char_indices();
    while let Some((position, character)) = characters.next() {
        if character == QUOTE {
            match characters.next() {
                Some((_, quoted)) => unquoted.push(quoted),
                None => {
                    return Err(StdOrError::BadEscape {
                        position: offset + position,
                    });
                }
            }
        } else {
            unquoted.push(character);
        }
    }
    Ok(unquoted)
}

/// Writes `/keyword=value` minus the leading `/`, plus a trailing one, if the value is present.
fn write_optional(
    f: &mut fmt::Formatter<'_>,
    attribute: ORAddressAttribute,
    value: Option<&str>,
) -> fmt::Result {
    match value {
        Some(value) => write_pair(f, attribute.keyword(), value),
        None => Ok(()),
    }
}

/// Writes `keyword=value/`, quoting the value.
fn write_pair(f: &mut fmt::Formatter<'_>, keyword: &str, value: &str) -> fmt::Result {
    f.write_str(keyword)?;
    f.write_str("=")?;
    write_quoted(f, value)?;
    f.write_str("/")
}

/// Writes a value with `$` before each `/`, `=`, `;` and `$`.
fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    for character in value.chars() {
        if matches!(character, '/' | '=' | ';' | QUOTE) {
            f.write_str("$")?;
        }
        fmt::Write::write_char(f, character)?;
    }
    Ok(())
}

/// Whether the character is a space or a tab, skipped around keywords.
fn is_blank(character: char) -> bool {
    character == ' ' || character == '\t'
}

/// Whether the character is in the ASN.1 PrintableString repertoire.
fn is_printable(character: char) -> bool {
    is_ps_restricted(character) || character == '(' || character == ')'
}

/// RFC 2156 §3.4 `ps-restricted-char`: PrintableString less the parentheses.
fn is_ps_restricted(character: char) -> bool {
    character.is_ascii_alphanumeric()
        || matches!(
            character,
            ' ' | '\'' | '+' | ',' | '-' | '.' | '/' | ':' | '=' | '?'
        )
}

/// Whether the character is a decimal digit.
fn is_digit(character: char) -> bool {
    character.is_ascii_digit()
}

/// Checks an optional value with [`check_value`].
fn check_optional(
    value: Option<&str>,
    attribute: ORAddressAttribute,
    limit: usize,
    allowed: fn(char) -> bool,
) -> Result<(), StdOrError> {
    match value {
        Some(value) => check_value(value, attribute, limit, allowed),
        None => Ok(()),
    }
}

/// Checks that a value is non-empty, at most `limit` characters long and made of allowed
/// characters.
fn check_value(
    value: &str,
    attribute: ORAddressAttribute,
    limit: usize,
    allowed: fn(char) -> bool,
) -> Result<(), StdOrError> {
    if value.is_empty() {
        return Err(StdOrError::EmptyValue { attribute });
    }
    let length = value.chars().count();
    if length > limit {
        return Err(StdOrError::ValueTooLong {
            attribute,
            limit,
            actual: length,
        });
    }
    match value.chars().find(|character| !allowed(*character)) {
        Some(character) => Err(StdOrError::BadCharacter {
            attribute,
            character,
        }),
        None => Ok(()),
    }
}

/// Checks a country: two ASCII letters or three digits.
fn check_country(country: &str) -> Result<(), StdOrError> {
    if country.is_empty() {
        return Err(StdOrError::EmptyValue {
            attribute: ORAddressAttribute::Country,
        });
    }
    let alpha = country.len() == UB_COUNTRY_NAME_ALPHA_LENGTH
        && country.bytes().all(|b| b.is_ascii_alphabetic());
    let numeric = country.len() == UB_COUNTRY_NAME_NUMERIC_LENGTH
        && country.bytes().all(|b| b.is_ascii_digit());
    if alpha || numeric {
        Ok(())
    } else {
        Err(StdOrError::BadCountry {
            value: country.to_owned(),
        })
    }
}

/// Checks the components of a personal name.
fn check_personal_name(name: &PersonalName) -> Result<(), StdOrError> {
    check_value(
        &name.surname,
        ORAddressAttribute::Surname,
        UB_SURNAME_LENGTH,
        is_printable,
    )?;
    check_optional(
        name.given_name.as_deref(),
        ORAddressAttribute::GivenName,
        UB_GIVEN_NAME_LENGTH,
        is_printable,
    )?;
    check_optional(
        name.initials.as_deref(),
        ORAddressAttribute::Initials,
        UB_INITIALS_LENGTH,
        is_printable,
    )?;
    check_optional(
        name.generation_qualifier.as_deref(),
        ORAddressAttribute::GenerationQualifier,
        UB_GENERATION_QUALIFIER_LENGTH,
        is_printable,
    )
}

/// Both absent, or both present and matching.
fn optional_matches<T: ?Sized>(a: Option<&T>, b: Option<&T>, matches: fn(&T, &T) -> bool) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => matches(a, b),
        _ => false,
    }
}

/// X.400 matching of PrintableString values: case ignored, leading and trailing spaces
/// dropped, inner runs of spaces taken as one.
fn printable_matches(a: &str, b: &str) -> bool {
    let mut a_words = a.split(' ').filter(|word| !word.is_empty());
    let mut b_words = b.split(' ').filter(|word| !word.is_empty());
    loop {
        match (a_words.next(), b_words.next()) {
            (None, None) => return true,
            (Some(a_word), Some(b_word)) if a_word.eq_ignore_ascii_case(b_word) => {}
            _ => return false,
        }
    }
}

/// X.400 matching of NumericString values: spaces ignored.
fn numeric_matches(a: &str, b: &str) -> bool {
    a.chars()
        .filter(|c| *c != ' ')
        .eq(b.chars().filter(|c| *c != ' '))
}

/// Countries match when written the same way (alpha-2 or numeric), case ignored.
fn country_matches(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Personal names match component by component.
fn personal_name_matches(a: &PersonalName, b: &PersonalName) -> bool {
    printable_matches(&a.surname, &b.surname)
        && optional_matches(
            a.given_name.as_deref(),
            b.given_name.as_deref(),
            printable_matches,
        )
        && optional_matches(
            a.initials.as_deref(),
            b.initials.as_deref(),
            printable_matches,
        )
        && optional_matches(
            a.generation_qualifier.as_deref(),
            b.generation_qualifier.as_deref(),
            printable_matches,
        )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The example of the `ORAddress` documentation, in the canonical order.
    const EXAMPLE: &str = "/C=GB/ADMD= /PRMD=X/O=Y/OU=Z/S=Smith/G=Jane/";

    fn parse(text: &str) -> Result<ORAddress, StdOrError> {
        text.parse()
    }

    fn full_address() -> ORAddress {
        ORAddress {
            country: Some("GB".into()),
            admd: Some("Gold 400".into()),
            prmd: Some("Acme".into()),
            organization: Some("Acme Widgets Ltd".into()),
            organizational_units: vec!["Sales".into(), "Europe".into(), "North".into()],
            personal_name: Some(PersonalName {
                surname: "Smith".into(),
                given_name: Some("Jane".into()),
                initials: Some("JQ".into()),
                generation_qualifier: Some("III".into()),
            }),
            common_name: Some("Jane Q. Smith".into()),
            numeric_user_id: Some("4711".into()),
            terminal_id: Some("T-1".into()),
            network_address: Some("23421234567".into()),
            domain_defined: vec![
                DomainDefinedAttribute::new("RFC-822", "jane.smith(a)acme.example"),
                DomainDefinedAttribute::new("Title", "Manager"),
            ],
        }
    }

    #[test]
    fn example_parses_and_prints_back() -> Result<(), StdOrError> {
        let address = parse(EXAMPLE)?;
        assert_eq!(address.country.as_deref(), Some("GB"));
        assert_eq!(address.admd.as_deref(), Some(" "));
        assert_eq!(address.prmd.as_deref(), Some("X"));
        assert_eq!(address.organization.as_deref(), Some("Y"));
        assert_eq!(address.organizational_units, vec!["Z".to_owned()]);
        let name = PersonalName {
            given_name: Some("Jane".into()),
            ..PersonalName::new("Smith")
        };
        assert_eq!(address.personal_name, Some(name));
        assert_eq!(address.to_string(), EXAMPLE);
        assert_eq!(ORAddress::parse_std_or(EXAMPLE), Ok(address));
        Ok(())
    }

    #[test]
    fn all_attributes_print_in_canonical_order_and_round_trip() -> Result<(), StdOrError> {
        let address = full_address();
        address.validate_mnemonic()?;
        let text = address.to_string();
        assert_eq!(
            text,
            "/C=GB/ADMD=Gold 400/PRMD=Acme/O=Acme Widgets Ltd/OU=Sales/OU=Europe/OU=North\
             /S=Smith/G=Jane/I=JQ/GQ=III/CN=Jane Q. Smith/X121=23421234567/UA-ID=4711/T-ID=T-1\
             /DD.RFC-822=jane.smith(a)acme.example/DD.Title=Manager/"
        );
        assert_eq!(parse(&text)?, address);
        Ok(())
    }

    #[test]
    fn numbered_organizational_units() -> Result<(), StdOrError> {
        let address = parse("/C=GB/ADMD=X/OU3=c/OU1=a/OU4=d/OU2=b/")?;
        assert_eq!(address.organizational_units, ["a", "b", "c", "d"]);
        assert_eq!(address.to_string(), "/C=GB/ADMD=X/OU=a/OU=b/OU=c/OU=d/");
        assert_eq!(parse(&address.to_string())?, address);
        Ok(())
    }

    #[test]
    fn least_significant_first_is_read_right_to_left() -> Result<(), StdOrError> {
        let backwards = parse("/S=Smith/OU=North/OU=Europe/OU=Sales/O=Acme/ADMD= /C=GB/")?;
        let forwards = parse("/C=GB/ADMD= /O=Acme/OU=Sales/OU=Europe/OU=North/S=Smith/")?;
        assert_eq!(backwards, forwards);
        assert_eq!(forwards.organizational_units, ["Sales", "Europe", "North"]);
        let dd = parse("/DD.b=2/DD.a=1/C=GB/")?;
        assert_eq!(
            dd.domain_defined,
            [
                DomainDefinedAttribute::new("a", "1"),
                DomainDefinedAttribute::new("b", "2")
            ]
        );
        // Without C, ADMD, PRMD or O the order of appearance is the sequence order.
        let plain = parse("/OU=first/OU=second/S=Smith/")?;
        assert_eq!(plain.organizational_units, ["first", "second"]);
        Ok(())
    }

    #[test]
    fn domain_defined_attribute_keywords() -> Result<(), StdOrError> {
        let expected = vec![DomainDefinedAttribute::new(
            "RFC-822",
            "jj(a)seismo.example",
        )];
        for text in [
            "/C=US/ADMD= /DD.RFC-822=jj(a)seismo.example/",
            "/C=US/ADMD= /dd.RFC-822=jj(a)seismo.example/",
            "/C=US/ADMD= /DDA:RFC-822=jj(a)seismo.example/",
            "/C=US/ADMD= /RFC-822=jj(a)seismo.example/",
            "/C=US/ADMD= /rfc-822=jj(a)seismo.example/",
        ] {
            assert_eq!(parse(text)?.domain_defined, expected, "{text}");
        }
        // The type keeps its case and may hold quoted separators and dots.
        let odd = parse("/C=US/DD.a$/b.c$=d=v/")?;
        assert_eq!(
            odd.domain_defined,
            [DomainDefinedAttribute::new("a/b.c=d", "v")]
        );
        assert_eq!(odd.to_string(), "/C=US/DD.a$/b.c$=d=v/");
        Ok(())
    }

    #[test]
    fn admd_of_a_single_space() -> Result<(), StdOrError> {
        let address = parse("/C=DE/ADMD= /PRMD=Firma/S=Muller/")?;
        assert_eq!(address.admd.as_deref(), Some(" "));
        assert_eq!(address.to_string(), "/C=DE/ADMD= /PRMD=Firma/S=Muller/");
        address.validate_mnemonic()?;
        Ok(())
    }

    #[test]
    fn alternative_keywords_and_case() -> Result<(), StdOrError> {
        let canonical = parse(
            "/C=GB/ADMD= /PRMD=P1/O=Org/OU=Unit/S=Smith/G=Jane/I=J/GQ=Jr/CN=Jane Smith\
             /X121=1234/UA-ID=42/T-ID=T1/",
        )?;
        let aliases = parse(
            "/c=GB/a= /p=P1/o=Org/ou=Unit/s=Smith/g=Jane/i=J/q=Jr/cn=Jane Smith\
             /x.121=1234/n-id=42/t-id=T1/",
        )?;
        assert_eq!(aliases, canonical);
        let mixed = parse("/Admd= /Prmd=P1/Ou1=Unit/Gq=Jr/S=Smith/Ua-Id=42/X121=1234/")?;
        assert_eq!(mixed.admd.as_deref(), Some(" "));
        assert_eq!(mixed.organizational_units, ["Unit"]);
        Ok(())
    }

    #[test]
    fn optional_slashes_semicolons_and_spaces() -> Result<(), StdOrError> {
        let expected = parse("/C=GB/ADMD=BT/O=Acme/S=Smith/G=Jane/")?;
        for text in [
            "C=GB/ADMD=BT/O=Acme/S=Smith/G=Jane/",
            "/C=GB/ADMD=BT/O=Acme/S=Smith/G=Jane",
            "C=GB/ADMD=BT/O=Acme/S=Smith/G=Jane",
            "C=GB;ADMD=BT;O=Acme;S=Smith;G=Jane",
            "G=Jane; S=Smith; O=Acme; A=BT; C=GB",
            "/C=GB; ADMD=BT/ O=Acme;S=Smith/  G=Jane/",
        ] {
            assert_eq!(parse(text), Ok(expected.clone()), "{text}");
        }
        // Spaces are dropped before a keyword only: a value is taken as written.
        let spaced = parse("/S=Smith /G= Jane/")?;
        let name = PersonalName {
            given_name: Some(" Jane".into()),
            ..PersonalName::new("Smith ")
        };
        assert_eq!(spaced.personal_name, Some(name));
        Ok(())
    }

    #[test]
    fn quoting_of_slash_equals_and_dollar() -> Result<(), StdOrError> {
        let address = parse("/C=GB/O=Smith$/Jones=Partners/OU=a$=b/")?;
        assert_eq!(
            address.organization.as_deref(),
            Some("Smith/Jones=Partners")
        );
        assert_eq!(address.organizational_units, ["a=b"]);
        assert_eq!(
            address.to_string(),
            "/C=GB/O=Smith$/Jones$=Partners/OU=a$=b/"
        );
        assert_eq!(parse(&address.to_string())?, address);
        // "$" quotes any character, but "$" itself is not PrintableString.
        assert_eq!(parse("/O=A$B/")?.organization.as_deref(), Some("AB"));
        assert!(matches!(
            parse("/O=a$$b/"),
            Err(StdOrError::BadCharacter {
                attribute: ORAddressAttribute::OrganizationName,
                character: '$'
            })
        ));
        assert!(matches!(
            parse("/O=abc$"),
            Err(StdOrError::BadEscape { position: 6 })
        ));
        assert!(matches!(
            parse("$"),
            Err(StdOrError::BadEscape { position: 0 })
        ));
        assert!(matches!(
            parse("/C=GB/ADMD= /$"),
            Err(StdOrError::BadEscape { position: 13 })
        ));
        Ok(())
    }

    #[test]
    fn encoded_personal_name() -> Result<(), StdOrError> {
        let name = parse("/PN=Marshall.M.T.Rose/C=US/")?.personal_name;
        let expected = PersonalName {
            given_name: Some("Marshall".into()),
            initials: Some("MT".into()),
            ..PersonalName::new("Rose")
        };
        assert_eq!(name, Some(expected));
        let initial = parse("/PN=J.Smith/GQ=Jr/")?.personal_name;
        let expected = PersonalName {
            initials: Some("J".into()),
            generation_qualifier: Some("Jr".into()),
            ..PersonalName::new("Smith")
        };
        assert_eq!(initial, Some(expected));
        for bad in ["/PN=/", "/PN=Rose./", "/PN=..Rose/", "/PN=J.Marshall.Rose/"] {
            assert!(
                matches!(parse(bad), Err(StdOrError::BadPersonalName { .. })),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        assert!(matches!(
            parse("/PN=Rose/S=Rose/"),
            Err(StdOrError::DuplicateAttribute {
                attribute: ORAddressAttribute::Surname
            })
        ));
        Ok(())
    }

    /// Whether an error is the expected one.
    type ErrorCheck = fn(&StdOrError) -> bool;

    #[test]
    fn malformed_text_gives_the_right_error() {
        let cases: &[(&str, ErrorCheck)] = &[
            ("", |e| matches!(e, StdOrError::Empty)),
            ("/", |e| matches!(e, StdOrError::Empty)),
            ("   ", |e| matches!(e, StdOrError::Empty)),
            (";", |e| matches!(e, StdOrError::Empty)),
            ("//", |e| {
                matches!(e, StdOrError::EmptyComponent { position: 1 })
            }),
            ("/C=GB//S=X/", |e| {
                matches!(e, StdOrError::EmptyComponent { position: 6 })
            }),
            (
                "/C=GB/Smith/",
                |e| matches!(e, StdOrError::MissingEquals { component } if component == "Smith"),
            ),
            ("/=GB/", |e| {
                matches!(e, StdOrError::MissingKeyword { position: 1 })
            }),
            (
                "/XYZ=1/",
                |e| matches!(e, StdOrError::UnknownKeyword { keyword } if keyword == "XYZ"),
            ),
            ("/OU0=a/", |e| {
                matches!(e, StdOrError::UnknownKeyword { .. })
            }),
            (
                "/PD-C=GB/",
                |e| matches!(e, StdOrError::UnsupportedKeyword { keyword } if keyword == "PD-C"),
            ),
            ("/NET-NUM=123/", |e| {
                matches!(e, StdOrError::UnsupportedKeyword { .. })
            }),
            (
                "/C=GBR/",
                |e| matches!(e, StdOrError::BadCountry { value } if value == "GBR"),
            ),
            ("/C=1/", |e| matches!(e, StdOrError::BadCountry { .. })),
            ("/C=G1/", |e| matches!(e, StdOrError::BadCountry { .. })),
            ("/C=/", |e| {
                matches!(
                    e,
                    StdOrError::EmptyValue {
                        attribute: ORAddressAttribute::Country
                    }
                )
            }),
            ("/C=GB/G=/S=Smith/", |e| {
                matches!(
                    e,
                    StdOrError::EmptyValue {
                        attribute: ORAddressAttribute::GivenName
                    }
                )
            }),
            ("/C=GB/C=FR/", |e| {
                matches!(
                    e,
                    StdOrError::DuplicateAttribute {
                        attribute: ORAddressAttribute::Country
                    }
                )
            }),
            ("/ADMD=x/A=y/", |e| {
                matches!(
                    e,
                    StdOrError::DuplicateAttribute {
                        attribute: ORAddressAttribute::AdministrationDomainName
                    }
                )
            }),
            ("/OU=a/OU=b/OU=c/OU=d/OU=e/", |e| {
                matches!(e, StdOrError::TooManyOrganizationalUnits { count: 5 })
            }),
            ("/OU5=e/", |e| {
                matches!(e, StdOrError::TooManyOrganizationalUnits { count: 5 })
            }),
            ("/OU99999999999999999999999=e/", |e| {
                matches!(e, StdOrError::TooManyOrganizationalUnits { .. })
            }),
            ("/DD.a=1/DD.b=2/DD.c=3/DD.d=4/DD.e=5/", |e| {
                matches!(e, StdOrError::TooManyDomainDefinedAttributes { count: 5 })
            }),
            ("/OU=a/OU2=b/", |e| {
                matches!(e, StdOrError::MixedOrganizationalUnitKeywords)
            }),
            ("/OU2=b/", |e| {
                matches!(e, StdOrError::OrganizationalUnitGap { missing: 1 })
            }),
            ("/OU1=a/OU3=c/", |e| {
                matches!(e, StdOrError::OrganizationalUnitGap { missing: 2 })
            }),
            ("/OU1=a/OU1=b/", |e| {
                matches!(
                    e,
                    StdOrError::DuplicateAttribute {
                        attribute: ORAddressAttribute::OrganizationalUnitName
                    }
                )
            }),
            ("/C=GB/G=Jane/", |e| {
                matches!(
                    e,
                    StdOrError::SurnameMissing {
                        attribute: ORAddressAttribute::GivenName
                    }
                )
            }),
            ("/I=J/", |e| {
                matches!(
                    e,
                    StdOrError::SurnameMissing {
                        attribute: ORAddressAttribute::Initials
                    }
                )
            }),
            ("/Q=Jr/", |e| {
                matches!(
                    e,
                    StdOrError::SurnameMissing {
                        attribute: ORAddressAttribute::GenerationQualifier
                    }
                )
            }),
            ("/S=Smith@example/", |e| {
                matches!(
                    e,
                    StdOrError::BadCharacter {
                        attribute: ORAddressAttribute::Surname,
                        character: '@'
                    }
                )
            }),
            ("/O=Müller/", |e| {
                matches!(
                    e,
                    StdOrError::BadCharacter {
                        attribute: ORAddressAttribute::OrganizationName,
                        character: 'ü'
                    }
                )
            }),
            ("/CN=yen*{165}/", |e| {
                matches!(
                    e,
                    StdOrError::BadCharacter {
                        attribute: ORAddressAttribute::CommonName,
                        character: '*'
                    }
                )
            }),
            ("/UA-ID=12a/", |e| {
                matches!(
                    e,
                    StdOrError::BadCharacter {
                        attribute: ORAddressAttribute::NumericUserIdentifier,
                        character: 'a'
                    }
                )
            }),
            ("/X121=+44/", |e| {
                matches!(
                    e,
                    StdOrError::BadCharacter {
                        attribute: ORAddressAttribute::NetworkAddress,
                        character: '+'
                    }
                )
            }),
            ("/C=GB/DD.=x/", |e| {
                matches!(
                    e,
                    StdOrError::EmptyValue {
                        attribute: ORAddressAttribute::DomainDefinedAttributeType
                    }
                )
            }),
        ];
        for (text, expected) in cases {
            match parse(text) {
                Err(error) => assert!(expected(&error), "{text:?} gave {error:?}"),
                Ok(address) => panic!("{text:?} parsed as {address:?}"),
            }
        }
    }

    #[test]
    fn overlong_text_is_refused_before_parsing() {
        let text = format!("/O={}/", "x".repeat(MAX_STD_OR_LENGTH));
        assert!(matches!(
            parse(&text),
            Err(StdOrError::TooLong { limit: MAX_STD_OR_LENGTH, actual }) if actual == text.len()
        ));
    }

    #[test]
    fn upper_bounds_are_enforced() {
        let bounds = [
            (
                "ADMD",
                ORAddressAttribute::AdministrationDomainName,
                UB_DOMAIN_NAME_LENGTH,
            ),
            (
                "PRMD",
                ORAddressAttribute::PrivateDomainName,
                UB_DOMAIN_NAME_LENGTH,
            ),
            (
                "O",
                ORAddressAttribute::OrganizationName,
                UB_ORGANIZATION_NAME_LENGTH,
            ),
            (
                "OU",
                ORAddressAttribute::OrganizationalUnitName,
                UB_ORGANIZATIONAL_UNIT_NAME_LENGTH,
            ),
            ("S", ORAddressAttribute::Surname, UB_SURNAME_LENGTH),
            ("CN", ORAddressAttribute::CommonName, UB_COMMON_NAME_LENGTH),
            (
                "T-ID",
                ORAddressAttribute::TerminalIdentifier,
                UB_TERMINAL_ID_LENGTH,
            ),
            (
                "DD.t",
                ORAddressAttribute::DomainDefinedAttributeValue,
                UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH,
            ),
        ];
        for (keyword, attribute, limit) in bounds {
            let fits = format!("/{keyword}={}/", "a".repeat(limit));
            assert!(parse(&fits).is_ok(), "{keyword} at {limit}");
            let over = format!("/{keyword}={}/", "a".repeat(limit + 1));
            assert_eq!(
                parse(&over),
                Err(StdOrError::ValueTooLong {
                    attribute,
                    limit,
                    actual: limit + 1
                }),
                "{keyword}"
            );
        }
        let numeric = [
            (
                "UA-ID",
                ORAddressAttribute::NumericUserIdentifier,
                UB_NUMERIC_USER_ID_LENGTH,
            ),
            (
                "X121",
                ORAddressAttribute::NetworkAddress,
                UB_X121_ADDRESS_LENGTH,
            ),
        ];
        for (keyword, attribute, limit) in numeric {
            assert!(parse(&format!("/{keyword}={}/", "1".repeat(limit))).is_ok());
            assert_eq!(
                parse(&format!("/{keyword}={}/", "1".repeat(limit + 1))),
                Err(StdOrError::ValueTooLong {
                    attribute,
                    limit,
                    actual: limit + 1
                })
            );
        }
        let name = [
            ("G", ORAddressAttribute::GivenName, UB_GIVEN_NAME_LENGTH),
            ("I", ORAddressAttribute::Initials, UB_INITIALS_LENGTH),
            (
                "GQ",
                ORAddressAttribute::GenerationQualifier,
                UB_GENERATION_QUALIFIER_LENGTH,
            ),
        ];
        for (keyword, attribute, limit) in name {
            assert!(parse(&format!("/S=X/{keyword}={}/", "a".repeat(limit))).is_ok());
            assert_eq!(
                parse(&format!("/S=X/{keyword}={}/", "a".repeat(limit + 1))),
                Err(StdOrError::ValueTooLong {
                    attribute,
                    limit,
                    actual: limit + 1
                })
            );
        }
        let kind = "t".repeat(UB_DOMAIN_DEFINED_ATTRIBUTE_TYPE_LENGTH + 1);
        assert_eq!(
            parse(&format!("/DD.{kind}=v/")),
            Err(StdOrError::ValueTooLong {
                attribute: ORAddressAttribute::DomainDefinedAttributeType,
                limit: UB_DOMAIN_DEFINED_ATTRIBUTE_TYPE_LENGTH,
                actual: UB_DOMAIN_DEFINED_ATTRIBUTE_TYPE_LENGTH + 1,
            })
        );
        assert!(parse("/C=GB/").is_ok());
        assert!(parse("/C=234/").is_ok());
    }

    #[test]
    fn validate_catches_what_display_could_not_round_trip() {
        let mut address = full_address();
        address.organizational_units = vec!["u".into(); UB_ORGANIZATIONAL_UNITS + 1];
        assert_eq!(
            address.validate(),
            Err(StdOrError::TooManyOrganizationalUnits { count: 5 })
        );
        let mut address = full_address();
        address.domain_defined = vec![DomainDefinedAttribute::new("t", "v"); 5];
        assert_eq!(
            address.validate(),
            Err(StdOrError::TooManyDomainDefinedAttributes { count: 5 })
        );
        let mut address = full_address();
        address.prmd = Some(String::new());
        assert_eq!(
            address.validate(),
            Err(StdOrError::EmptyValue {
                attribute: ORAddressAttribute::PrivateDomainName
            })
        );
        assert_eq!(ORAddress::default().validate(), Err(StdOrError::Empty));
        assert_eq!(ORAddress::default().to_string(), "/");
    }

    #[test]
    fn mnemonic_address_needs_country_and_admd() -> Result<(), StdOrError> {
        assert_eq!(
            parse("/S=Smith/O=Acme/")?.validate_mnemonic(),
            Err(StdOrError::MissingAttribute {
                attribute: ORAddressAttribute::Country
            })
        );
        assert_eq!(
            parse("/C=GB/S=Smith/")?.validate_mnemonic(),
            Err(StdOrError::MissingAttribute {
                attribute: ORAddressAttribute::AdministrationDomainName
            })
        );
        parse("/C=GB/ADMD= /S=Smith/")?.validate_mnemonic()
    }

    #[test]
    fn printable_from_ascii_uses_the_rfc_2156_escapes() {
        assert_eq!(
            printable_from_ascii("Postmaster@mx.example"),
            "Postmaster(a)mx.example"
        );
        assert_eq!(
            printable_from_ascii("user%host@relay"),
            "user(p)host(a)relay"
        );
        assert_eq!(printable_from_ascii("host!user"), "host(b)user");
        assert_eq!(printable_from_ascii("\"quoted name\""), "(q)quoted name(q)");
        assert_eq!(printable_from_ascii("first_last"), "first(u)last");
        assert_eq!(printable_from_ascii("(comment)"), "(l)comment(r)");
        assert_eq!(printable_from_ascii("a#b~c"), "a(035)b(126)c");
        assert_eq!(printable_from_ascii("tab\there"), "tab(009)here");
        assert_eq!(printable_from_ascii("\u{0}\u{7f}"), "(000)(127)");
        assert_eq!(printable_from_ascii("A-Z a.z/0:9=?+,'"), "A-Z a.z/0:9=?+,'");
        assert_eq!(printable_from_ascii("é"), "(195)(169)");
    }

    #[test]
    fn ascii_from_printable_reverses_the_mapping() {
        assert_eq!(
            ascii_from_printable("Postmaster(a)mx.example"),
            Ok("Postmaster@mx.example".to_owned())
        );
        assert_eq!(
            ascii_from_printable("(q)x(p)y(b)z(u)w(l)v(r)"),
            Ok("\"x%y!z_w(v)".to_owned())
        );
        assert_eq!(
            ascii_from_printable("(A)(P)(035)(065)"),
            Ok("@%#A".to_owned())
        );
        assert_eq!(ascii_from_printable(""), Ok(String::new()));
        assert_eq!(
            ascii_from_printable("a(128)"),
            Err(PrintableMappingError::OutOfRange {
                value: 128,
                position: 1
            })
        );
        assert_eq!(
            ascii_from_printable("(12)"),
            Err(PrintableMappingError::BadEscape { position: 0 })
        );
        assert_eq!(
            ascii_from_printable("ab(x)"),
            Err(PrintableMappingError::BadEscape { position: 2 })
        );
        assert_eq!(
            ascii_from_printable("(a"),
            Err(PrintableMappingError::BadEscape { position: 0 })
        );
        assert_eq!(
            ascii_from_printable("a)"),
            Err(PrintableMappingError::BadEscape { position: 1 })
        );
        assert_eq!(
            ascii_from_printable("a@b"),
            Err(PrintableMappingError::NotPrintable {
                character: '@',
                position: 1
            })
        );
        assert_eq!(
            ascii_from_printable("(195)(169)"),
            Err(PrintableMappingError::OutOfRange {
                value: 195,
                position: 0
            })
        );
    }

    #[test]
    fn matching_ignores_case_and_spaces() -> Result<(), StdOrError> {
        let a = parse("/C=gb/ADMD=Gold 400/O=Acme  Widgets /OU=Sales/S=smith/G=Jane/UA-ID=4711/")?;
        let b = parse("/C=GB/ADMD=GOLD 400/O= ACME Widgets/OU=SALES/S=Smith/G=jane/UA-ID=4711/")?;
        assert_ne!(a, b);
        assert!(a.matches(&b));
        assert!(b.matches(&a));
        assert!(a.matches(&a));

        let other_unit =
            parse("/C=GB/ADMD=Gold 400/O=Acme Widgets/OU=Marketing/S=Smith/G=Jane/UA-ID=4711/")?;
        assert!(!a.matches(&other_unit));
        let no_given_name =
            parse("/C=GB/ADMD=Gold 400/O=Acme Widgets/OU=Sales/S=Smith/UA-ID=4711/")?;
        assert!(!a.matches(&no_given_name));
        let other_id =
            parse("/C=GB/ADMD=Gold 400/O=Acme Widgets/OU=Sales/S=Smith/G=Jane/UA-ID=4712/")?;
        assert!(!a.matches(&other_id));

        let spaced = ORAddress {
            network_address: Some("2342 1234".into()),
            ..ORAddress::default()
        };
        assert!(spaced.matches(&parse("/X121=23421234/")?));

        let blank = parse("/C=GB/ADMD= /S=Smith/")?;
        assert!(!blank.matches(&parse("/C=GB/ADMD=BT/S=Smith/")?));
        assert!(!blank.matches(&parse("/C=GB/S=Smith/")?));
        assert!(!parse("/C=GB/")?.matches(&parse("/C=234/")?));
        Ok(())
    }

    /// The PrintableString repertoire.
    const PRINTABLE: &str =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?";

    fn string_of(alphabet: &str, length: std::ops::RangeInclusive<usize>) -> BoxedStrategy<String> {
        let characters: Vec<char> = alphabet.chars().collect();
        prop::collection::vec(prop::sample::select(characters), length)
            .prop_map(|characters| characters.into_iter().collect())
            .boxed()
    }

    fn printable(limit: usize) -> BoxedStrategy<String> {
        string_of(PRINTABLE, 1..=limit)
    }

    fn digits(limit: usize) -> BoxedStrategy<String> {
        string_of("0123456789", 1..=limit)
    }

    fn country() -> BoxedStrategy<String> {
        prop_oneof![
            string_of(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                2..=2
            ),
            string_of("0123456789", 3..=3),
        ]
        .boxed()
    }

    fn admd() -> BoxedStrategy<String> {
        prop_oneof![Just(" ".to_owned()), printable(UB_DOMAIN_NAME_LENGTH)].boxed()
    }

    fn personal_name() -> BoxedStrategy<PersonalName> {
        (
            printable(UB_SURNAME_LENGTH),
            proptest::option::of(printable(UB_GIVEN_NAME_LENGTH)),
            proptest::option::of(printable(UB_INITIALS_LENGTH)),
            proptest::option::of(printable(UB_GENERATION_QUALIFIER_LENGTH)),
        )
            .prop_map(
                |(surname, given_name, initials, generation_qualifier)| PersonalName {
                    surname,
                    given_name,
                    initials,
                    generation_qualifier,
                },
            )
            .boxed()
    }

    fn domain_defined() -> BoxedStrategy<DomainDefinedAttribute> {
        (
            printable(UB_DOMAIN_DEFINED_ATTRIBUTE_TYPE_LENGTH),
            printable(UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH),
        )
            .prop_map(|(kind, value)| DomainDefinedAttribute { kind, value })
            .boxed()
    }

    fn or_address() -> BoxedStrategy<ORAddress> {
        let domains = (
            proptest::option::of(country()),
            proptest::option::of(admd()),
            proptest::option::of(printable(UB_DOMAIN_NAME_LENGTH)),
            proptest::option::of(printable(UB_ORGANIZATION_NAME_LENGTH)),
            prop::collection::vec(
                printable(UB_ORGANIZATIONAL_UNIT_NAME_LENGTH),
                0..=UB_ORGANIZATIONAL_UNITS,
            ),
        );
        let person = (
            proptest::option::of(personal_name()),
            proptest::option::of(printable(UB_COMMON_NAME_LENGTH)),
            proptest::option::of(digits(UB_NUMERIC_USER_ID_LENGTH)),
            proptest::option::of(printable(UB_TERMINAL_ID_LENGTH)),
            proptest::option::of(digits(UB_X121_ADDRESS_LENGTH)),
            prop::collection::vec(domain_defined(), 0..=UB_DOMAIN_DEFINED_ATTRIBUTES),
        );
        (domains, person)
            .prop_map(
                |(
                    (country, admd, prmd, organization, organizational_units),
                    (
                        personal_name,
                        common_name,
                        numeric_user_id,
                        terminal_id,
                        network_address,
                        domain_defined,
                    ),
                )| ORAddress {
                    country,
                    admd,
                    prmd,
                    organization,
                    organizational_units,
                    personal_name,
                    common_name,
                    numeric_user_id,
                    terminal_id,
                    network_address,
                    domain_defined,
                },
            )
            .prop_filter("an address needs an attribute", |address| {
                !address.is_empty()
            })
            .boxed()
    }

    proptest! {
        #[test]
        fn display_then_parse_is_the_identity(address in or_address()) {
            prop_assert_eq!(address.validate(), Ok(()));
            let text = address.to_string();
            prop_assert!(text.len() <= MAX_STD_OR_LENGTH);
            prop_assert_eq!(text.parse::<ORAddress>(), Ok(address.clone()));
            prop_assert!(address.matches(&address));
        }

        #[test]
        fn parsing_never_panics(text in any::<String>()) {
            let _ = ORAddress::parse_std_or(&text);
            let _ = ascii_from_printable(&text);
        }

        #[test]
        fn parsing_std_or_like_text_never_panics(
            text in string_of("/;$= CADMPROUSGIQNXT-.:1ü", 0..=40)
        ) {
            if let Ok(address) = ORAddress::parse_std_or(&text) {
                prop_assert_eq!(address.validate(), Ok(()));
                prop_assert_eq!(address.to_string().parse::<ORAddress>(), Ok(address));
            }
        }

        #[test]
        fn ascii_round_trips_through_printable(
            ascii in string_of(&(0u8..=127).map(char::from).collect::<String>(), 0..=64)
        ) {
            let printable = printable_from_ascii(&ascii);
            prop_assert!(printable.chars().all(is_printable));
            prop_assert_eq!(ascii_from_printable(&printable), Ok(ascii));
        }
    }
}
