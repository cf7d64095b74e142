//! X.411 `ORName ::= [APPLICATION 0] SEQUENCE { COMPONENTS OF ORAddress, directory-name [0]
//! Name OPTIONAL }`, converted to and from the core [`ORAddress`].
//!
//! Every built-in standard attribute and the built-in domain-defined attributes map to the
//! core fields; of the extension attributes, `common-name (1)` does, and so do the teletex
//! forms `teletex-common-name (2)`, `teletex-organization-name (3)`, `teletex-personal-name
//! (4)`, `teletex-organizational-unit-names (5)` and `teletex-domain-defined-attributes (6)`
//! when the printable form is absent (T.61 octets are read as Latin-1; [`TeletexFields`]
//! records which fields travel that way). Every other extension attribute — and a teletex one
//! that duplicates a printable field — is kept whole in
//! [`ORName::extra_extension_attributes`] and re-emitted unchanged.

use mswitch_core::address::{
    DomainDefinedAttribute, ORAddress, PersonalName, UB_COMMON_NAME_LENGTH,
    UB_COUNTRY_NAME_NUMERIC_LENGTH, UB_DOMAIN_DEFINED_ATTRIBUTE_TYPE_LENGTH,
    UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH, UB_DOMAIN_DEFINED_ATTRIBUTES, UB_DOMAIN_NAME_LENGTH,
    UB_GENERATION_QUALIFIER_LENGTH, UB_GIVEN_NAME_LENGTH, UB_INITIALS_LENGTH,
    UB_NUMERIC_USER_ID_LENGTH, UB_ORGANIZATION_NAME_LENGTH, UB_ORGANIZATIONAL_UNIT_NAME_LENGTH,
    UB_ORGANIZATIONAL_UNITS, UB_SURNAME_LENGTH, UB_TERMINAL_ID_LENGTH, UB_X121_ADDRESS_LENGTH,
};

use super::{MtsError, UB_EXTENSION_ATTRIBUTES, int_in, put_str, raw_bounded};
use crate::ber::{BerError, Class, Tag, Tlv, Writer};

/// The longest directory name kept, in octets (our bound; X.411 sets none).
pub const MAX_DIRECTORY_NAME_LENGTH: usize = 8192;

const COMMON_NAME: i64 = 1;
const TELETEX_COMMON_NAME: i64 = 2;
const TELETEX_ORGANIZATION_NAME: i64 = 3;
const TELETEX_PERSONAL_NAME: i64 = 4;
const TELETEX_ORGANIZATIONAL_UNIT_NAMES: i64 = 5;
const TELETEX_DOMAIN_DEFINED_ATTRIBUTES: i64 = 6;

/// Which fields of the core address travel as teletex extension attributes (TeletexString)
/// instead of their printable form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TeletexFields {
    /// `common_name` as `teletex-common-name (2)`.
    pub common_name: bool,
    /// `organization` as `teletex-organization-name (3)`.
    pub organization: bool,
    /// `personal_name` as `teletex-personal-name (4)`.
    pub personal_name: bool,
    /// `organizational_units` as `teletex-organizational-unit-names (5)`.
    pub organizational_units: bool,
    /// `domain_defined` as `teletex-domain-defined-attributes (6)`.
    pub domain_defined: bool,
}

/// An X.411 `ORName` (also `ORAddressAndOrDirectoryName`, `ORAddressAndOptionalDirectoryName`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ORName {
    /// The O/R address.
    pub address: ORAddress,
    /// `directory-name [0] Name`: the whole `[0]` element, kept as received.
    pub directory_name: Option<Vec<u8>>,
    /// Which address fields travel in teletex form.
    pub teletex: TeletexFields,
    /// Extension attributes not mapped to the address: each a complete `ExtensionAttribute`
    /// SEQUENCE, re-emitted unchanged after the mapped ones.
    pub extra_extension_attributes: Vec<Vec<u8>>,
}

impl From<ORAddress> for ORName {
    fn from(address: ORAddress) -> Self {
        ORName {
            address,
            ..ORName::default()
        }
    }
}

impl From<ORName> for ORAddress {
    fn from(n: ORName) -> Self {
        n.address
    }
}

fn string_of(tlv: &Tlv<'_>, what: &'static str, ub: usize) -> Result<String, BerError> {
    tlv.string(what, ub)
}

/// A string element that must be one of the given universal string types.
fn typed_string(
    tlv: &Tlv<'_>,
    types: &[u32],
    what: &'static str,
    ub: usize,
) -> Result<String, BerError> {
    if tlv.tag.class != Class::Universal || !types.contains(&tlv.tag.number) {
        return Err(BerError::Unexpected {
            expected: what,
            found: tlv.tag,
        });
    }
    string_of(tlv, what, ub)
}

const NUMERIC: u32 = 18;
const PRINTABLE: u32 = 19;
const TELETEX: u32 = 20;

fn decode_personal_name(tlv: &Tlv<'_>) -> Result<PersonalName, BerError> {
    let mut r = tlv.children()?;
    let (mut s, mut g, mut i, mut q) = (None, None, None, None);
    while let Some(t) = r.next()? {
        match (t.tag.class, t.tag.number) {
            (Class::Context, 0) => super::once(
                &mut s,
                string_of(&t, "surname", UB_SURNAME_LENGTH)?,
                "surname",
            )?,
            (Class::Context, 1) => super::once(
                &mut g,
                string_of(&t, "given-name", UB_GIVEN_NAME_LENGTH)?,
                "given-name",
            )?,
            (Class::Context, 2) => super::once(
                &mut i,
                string_of(&t, "initials", UB_INITIALS_LENGTH)?,
                "initials",
            )?,
            (Class::Context, 3) => super::once(
                &mut q,
                string_of(&t, "generation-qualifier", UB_GENERATION_QUALIFIER_LENGTH)?,
                "generation-qualifier",
            )?,
            _ => {
                return Err(BerError::Unexpected {
                    expected: "PersonalName component",
                    found: t.tag,
                });
            }
        }
    }
    Ok(PersonalName {
        surname: s.ok_or(BerError::Missing("surname"))?,
        given_name: g,
        initials: i,
        generation_qualifier: q,
    })
}

fn decode_units(tlv: &Tlv<'_>, string_type: u32) -> Result<Vec<String>, BerError> {
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(t) = r.next()? {
        if out.len() >= UB_ORGANIZATIONAL_UNITS {
            return Err(BerError::TooLarge("organizational-unit-names"));
        }
        out.push(typed_string(
            &t,
            &[string_type],
            "organizational-unit-name",
            UB_ORGANIZATIONAL_UNIT_NAME_LENGTH,
        )?);
    }
    if out.is_empty() {
        return Err(BerError::Missing("organizational-unit-name"));
    }
    Ok(out)
}

fn decode_ddas(tlv: &Tlv<'_>, string_type: u32) -> Result<Vec<DomainDefinedAttribute>, BerError> {
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(t) = r.next()? {
        if out.len() >= UB_DOMAIN_DEFINED_ATTRIBUTES {
            return Err(BerError::TooLarge("domain-defined-attributes"));
        }
        let t = t.expect(Tag::SEQUENCE, "domain-defined attribute")?;
        let mut a = t.children()?;
        let kind = typed_string(
            &a.next_required("domain-defined attribute type")?,
            &[string_type],
            "domain-defined attribute type",
            UB_DOMAIN_DEFINED_ATTRIBUTE_TYPE_LENGTH,
        )?;
        let value = typed_string(
            &a.next_required("domain-defined attribute value")?,
            &[string_type],
            "domain-defined attribute value",
            UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH,
        )?;
        a.finish()?;
        out.push(DomainDefinedAttribute::new(kind, value));
    }
    if out.is_empty() {
        return Err(BerError::Missing("domain-defined attribute"));
    }
    Ok(out)
}

fn decode_builtin_standard(tlv: &Tlv<'_>, a: &mut ORAddress) -> Result<(), BerError> {
    let mut r = tlv.children()?;
    let mut last: Option<u32> = None;
    while let Some(t) = r.next()? {
        // Position of the component in the SEQUENCE, to enforce order and uniqueness.
        let pos = match (t.tag.class, t.tag.number) {
            (Class::Application, 1) => 0,
            (Class::Application, 2) => 1,
            (Class::Context, n @ 0..=6) => n + 2,
            _ => {
                return Err(BerError::Unexpected {
                    expected: "BuiltInStandardAttributes component",
                    found: t.tag,
                });
            }
        };
        if last.is_some_and(|l| l >= pos) {
            return Err(BerError::Unexpected {
                expected: "BuiltInStandardAttributes components in order, once each",
                found: t.tag,
            });
        }
        last = Some(pos);
        match pos {
            0 => {
                a.country = Some(typed_string(
                    &t.explicit_inner()?,
                    &[NUMERIC, PRINTABLE],
                    "country-name",
                    UB_COUNTRY_NAME_NUMERIC_LENGTH,
                )?)
            }
            1 => {
                a.admd = Some(typed_string(
                    &t.explicit_inner()?,
                    &[NUMERIC, PRINTABLE],
                    "administration-domain-name",
                    UB_DOMAIN_NAME_LENGTH,
                )?)
            }
            2 => {
                a.network_address = Some(string_of(&t, "network-address", UB_X121_ADDRESS_LENGTH)?)
            }
            3 => a.terminal_id = Some(string_of(&t, "terminal-identifier", UB_TERMINAL_ID_LENGTH)?),
            4 => {
                a.prmd = Some(typed_string(
                    &t.explicit_inner()?,
                    &[NUMERIC, PRINTABLE],
                    "private-domain-name",
                    UB_DOMAIN_NAME_LENGTH,
                )?)
            }
            5 => {
                a.organization = Some(string_of(
                    &t,
                    "organization-name",
                    UB_ORGANIZATION_NAME_LENGTH,
                )?)
            }
            6 => {
                a.numeric_user_id = Some(string_of(
                    &t,
                    "numeric-user-identifier",
                    UB_NUMERIC_USER_ID_LENGTH,
                )?)
            }
            7 => a.personal_name = Some(decode_personal_name(&t)?),
            _ => a.organizational_units = decode_units(&t, PRINTABLE)?,
        }
    }
    Ok(())
}

impl ORName {
    /// The tag, `[APPLICATION 0]`.
    pub const TAG: Tag = Tag::application(0).constructed();

    /// Decodes from its `[APPLICATION 0]` element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Self::TAG, "ORName")?;
        Self::decode_implicit(tlv)
    }

    /// Decodes from an element of any tag (an implicitly tagged `ORName`, such as `[0]` in
    /// per-recipient report fields).
    pub fn decode_implicit(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let mut name = ORName::default();
        let bisa = r
            .next_required("built-in-standard-attributes")?
            .expect(Tag::SEQUENCE, "built-in-standard-attributes")?;
        decode_builtin_standard(&bisa, &mut name.address)?;
        if let Some(t) = r.next_if(Tag::SEQUENCE)? {
            name.address.domain_defined = decode_ddas(&t, PRINTABLE)?;
        }
        if let Some(t) = r.next_if(Tag::SET)? {
            name.decode_extension_attributes(&t)?;
        }
        if let Some(t) = r.next_if(Tag::context(0))? {
            name.directory_name = Some(raw_bounded(
                &t,
                MAX_DIRECTORY_NAME_LENGTH,
                "directory-name",
            )?);
        }
        r.finish()?;
        Ok(name)
    }

    fn decode_extension_attributes(&mut self, tlv: &Tlv<'_>) -> Result<(), MtsError> {
        let mut r = tlv.children()?;
        let mut attrs = Vec::new();
        while let Some(t) = r.next()? {
            if attrs.len() >= UB_EXTENSION_ATTRIBUTES {
                return Err(BerError::TooLarge("extension-attributes").into());
            }
            let t = t.expect(Tag::SEQUENCE, "ExtensionAttribute")?;
            let mut c = t.children()?;
            let ty = c
                .next_required("extension-attribute-type")?
                .expect(Tag::context(0), "extension-attribute-type")?;
            let ty = int_in(
                &ty,
                0,
                UB_EXTENSION_ATTRIBUTES as i64,
                "extension-attribute-type",
            )?;
            let value = c
                .next_required("extension-attribute-value")?
                .expect(Tag::context(1), "extension-attribute-value")?
                .explicit_inner()?;
            c.finish()?;
            attrs.push((ty, t, value));
        }
        if attrs.is_empty() {
            return Err(BerError::Missing("extension attribute").into());
        }
        let has_printable_cn = attrs.iter().any(|(ty, ..)| *ty == COMMON_NAME);
        let a = &mut self.address;
        let tt = &mut self.teletex;
        for (ty, whole, v) in attrs {
            let mapped = match ty {
                COMMON_NAME => {
                    let cn = typed_string(&v, &[PRINTABLE], "common-name", UB_COMMON_NAME_LENGTH)?;
                    super::once(&mut a.common_name, cn, "common-name")?;
                    true
                }
                TELETEX_COMMON_NAME if !has_printable_cn && a.common_name.is_none() => {
                    a.common_name = Some(typed_string(
                        &v,
                        &[TELETEX],
                        "teletex-common-name",
                        UB_COMMON_NAME_LENGTH,
                    )?);
                    tt.common_name = true;
                    true
                }
                TELETEX_ORGANIZATION_NAME if a.organization.is_none() => {
                    a.organization = Some(typed_string(
                        &v,
                        &[TELETEX],
                        "teletex-organization-name",
                        UB_ORGANIZATION_NAME_LENGTH,
                    )?);
                    tt.organization = true;
                    true
                }
                TELETEX_PERSONAL_NAME if a.personal_name.is_none() => {
                    let v = v.expect(Tag::SET, "teletex-personal-name")?;
                    a.personal_name = Some(decode_personal_name(&v)?);
                    tt.personal_name = true;
                    true
                }
                TELETEX_ORGANIZATIONAL_UNIT_NAMES if a.organizational_units.is_empty() => {
                    let v = v.expect(Tag::SEQUENCE, "teletex-organizational-unit-names")?;
                    a.organizational_units = decode_units(&v, TELETEX)?;
                    tt.organizational_units = true;
                    true
                }
                TELETEX_DOMAIN_DEFINED_ATTRIBUTES if a.domain_defined.is_empty() => {
                    let v = v.expect(Tag::SEQUENCE, "teletex-domain-defined-attributes")?;
                    a.domain_defined = decode_ddas(&v, TELETEX)?;
                    tt.domain_defined = true;
                    true
                }
                _ => false,
            };
            if !mapped {
                self.extra_extension_attributes.push(whole.raw.to_vec());
            }
        }
        Ok(())
    }

    /// Encodes as `[APPLICATION 0]`.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        self.encode_implicit(w, Self::TAG)
    }

    /// Encodes with another (implicit) tag.
    pub fn encode_implicit(&self, w: &mut Writer, tag: Tag) -> Result<(), MtsError> {
        let a = &self.address;
        let tt = &self.teletex;
        w.try_constructed(tag, |w| {
            w.try_constructed(Tag::SEQUENCE, |w| {
                if let Some(c) = &a.country {
                    w.try_constructed(Tag::application(1), |w| {
                        put_str(
                            w,
                            choice_tag(c, true),
                            c,
                            UB_COUNTRY_NAME_NUMERIC_LENGTH,
                            "country-name",
                        )
                    })?;
                }
                if let Some(d) = &a.admd {
                    w.try_constructed(Tag::application(2), |w| {
                        put_str(
                            w,
                            choice_tag(d, false),
                            d,
                            UB_DOMAIN_NAME_LENGTH,
                            "administration-domain-name",
                        )
                    })?;
                }
                if let Some(n) = &a.network_address {
                    put_str(
                        w,
                        Tag::context(0),
                        n,
                        UB_X121_ADDRESS_LENGTH,
                        "network-address",
                    )?;
                }
                if let Some(t) = &a.terminal_id {
                    put_str(
                        w,
                        Tag::context(1),
                        t,
                        UB_TERMINAL_ID_LENGTH,
                        "terminal-identifier",
                    )?;
                }
                if let Some(p) = &a.prmd {
                    w.try_constructed(Tag::context(2), |w| {
                        put_str(
                            w,
                            choice_tag(p, false),
                            p,
                            UB_DOMAIN_NAME_LENGTH,
                            "private-domain-name",
                        )
                    })?;
                }
                if let Some(o) = a.organization.as_ref().filter(|_| !tt.organization) {
                    put_str(
                        w,
                        Tag::context(3),
                        o,
                        UB_ORGANIZATION_NAME_LENGTH,
                        "organization-name",
                    )?;
                }
                if let Some(n) = &a.numeric_user_id {
                    put_str(
                        w,
                        Tag::context(4),
                        n,
                        UB_NUMERIC_USER_ID_LENGTH,
                        "numeric-user-identifier",
                    )?;
                }
                if let Some(pn) = a.personal_name.as_ref().filter(|_| !tt.personal_name) {
                    encode_personal_name(w, Tag::context(5), pn)?;
                }
                if !tt.organizational_units && !a.organizational_units.is_empty() {
                    encode_units(
                        w,
                        Tag::context(6),
                        &a.organizational_units,
                        Tag::PRINTABLE_STRING,
                    )?;
                }
                Ok::<(), MtsError>(())
            })?;
            if !tt.domain_defined && !a.domain_defined.is_empty() {
                encode_ddas(w, &a.domain_defined, Tag::PRINTABLE_STRING)?;
            }
            self.encode_extension_attributes(w)?;
            if let Some(d) = &self.directory_name {
                w.raw(d);
            }
            Ok(())
        })
    }

    fn encode_extension_attributes(&self, w: &mut Writer) -> Result<(), MtsError> {
        let a = &self.address;
        let tt = &self.teletex;
        let cn = a.common_name.as_ref();
        let any = cn.is_some()
            || (tt.organization && a.organization.is_some())
            || (tt.personal_name && a.personal_name.is_some())
            || (tt.organizational_units && !a.organizational_units.is_empty())
            || (tt.domain_defined && !a.domain_defined.is_empty())
            || !self.extra_extension_attributes.is_empty();
        if !any {
            return Ok(());
        }
        if a.domain_defined.len() > UB_DOMAIN_DEFINED_ATTRIBUTES {
            return Err(MtsError::encode("domain-defined-attributes", "more than 4"));
        }
        w.try_constructed(Tag::SET, |w| {
            let attr = |w: &mut Writer,
                        ty: i64,
                        f: &dyn Fn(&mut Writer) -> Result<(), MtsError>|
             -> Result<(), MtsError> {
                w.try_constructed(Tag::SEQUENCE, |w| {
                    w.integer_tagged(Tag::context(0), ty);
                    w.try_constructed(Tag::context(1), f)
                })
            };
            if let Some(cn) = cn {
                let (ty, st) = if tt.common_name {
                    (TELETEX_COMMON_NAME, Tag::TELETEX_STRING)
                } else {
                    (COMMON_NAME, Tag::PRINTABLE_STRING)
                };
                attr(w, ty, &|w| {
                    put_str(w, st, cn, UB_COMMON_NAME_LENGTH, "common-name")
                })?;
            }
            if let Some(o) = a.organization.as_ref().filter(|_| tt.organization) {
                attr(w, TELETEX_ORGANIZATION_NAME, &|w| {
                    put_str(
                        w,
                        Tag::TELETEX_STRING,
                        o,
                        UB_ORGANIZATION_NAME_LENGTH,
                        "teletex-organization-name",
                    )
                })?;
            }
            if let Some(pn) = a.personal_name.as_ref().filter(|_| tt.personal_name) {
                attr(w, TELETEX_PERSONAL_NAME, &|w| {
                    encode_personal_name(w, Tag::SET, pn)
                })?;
            }
            if tt.organizational_units && !a.organizational_units.is_empty() {
                attr(w, TELETEX_ORGANIZATIONAL_UNIT_NAMES, &|w| {
                    encode_units(
                        w,
                        Tag::SEQUENCE,
                        &a.organizational_units,
                        Tag::TELETEX_STRING,
                    )
                })?;
            }
            if tt.domain_defined && !a.domain_defined.is_empty() {
                attr(w, TELETEX_DOMAIN_DEFINED_ATTRIBUTES, &|w| {
                    encode_ddas(w, &a.domain_defined, Tag::TELETEX_STRING)
                })?;
            }
            for raw in &self.extra_extension_attributes {
                w.raw(raw);
            }
            Ok(())
        })
    }
}

/// NumericString for a country of digits (X.121 DCC) or an ADMD/PRMD of digits only,
/// PrintableString otherwise.
fn choice_tag(v: &str, country: bool) -> Tag {
    if (country || !v.is_empty()) && v.bytes().all(|b| b.is_ascii_digit()) {
        Tag::NUMERIC_STRING
    } else {
        Tag::PRINTABLE_STRING
    }
}

fn encode_personal_name(w: &mut Writer, tag: Tag, pn: &PersonalName) -> Result<(), MtsError> {
    w.try_constructed(tag, |w| {
        put_str(
            w,
            Tag::context(0),
            &pn.surname,
            UB_SURNAME_LENGTH,
            "surname",
        )?;
        if let Some(g) = &pn.given_name {
            put_str(w, Tag::context(1), g, UB_GIVEN_NAME_LENGTH, "given-name")?;
        }
        if let Some(i) = &pn.initials {
            put_str(w, Tag::context(2), i, UB_INITIALS_LENGTH, "initials")?;
        }
        if let Some(q) = &pn.generation_qualifier {
            put_str(
                w,
                Tag::context(3),
                q,
                UB_GENERATION_QUALIFIER_LENGTH,
                "generation-qualifier",
            )?;
        }
        Ok(())
    })
}

fn encode_units(w: &mut Writer, tag: Tag, units: &[String], st: Tag) -> Result<(), MtsError> {
    if units.len() > UB_ORGANIZATIONAL_UNITS {
        return Err(MtsError::encode("organizational-unit-names", "more than 4"));
    }
    w.try_constructed(tag, |w| {
        for u in units {
            put_str(
                w,
                st,
                u,
                UB_ORGANIZATIONAL_UNIT_NAME_LENGTH,
                "organizational-unit-name",
            )?;
        }
        Ok(())
    })
}

fn encode_ddas(w: &mut Writer, ddas: &[DomainDefinedAttribute], st: Tag) -> Result<(), MtsError> {
    if ddas.len() > UB_DOMAIN_DEFINED_ATTRIBUTES {
        return Err(MtsError::encode("domain-defined-attributes", "more than 4"));
    }
    w.try_constructed(Tag::SEQUENCE, |w| {
        for d in ddas {
            w.try_constructed(Tag::SEQUENCE, |w| {
                put_str(
                    w,
                    st,
                    &d.kind,
                    UB_DOMAIN_DEFINED_ATTRIBUTE_TYPE_LENGTH,
                    "domain-defined attribute type",
                )?;
                put_str(
                    w,
                    st,
                    &d.value,
                    UB_DOMAIN_DEFINED_ATTRIBUTE_VALUE_LENGTH,
                    "domain-defined attribute value",
                )
            })?;
        }
        Ok(())
    })
}
