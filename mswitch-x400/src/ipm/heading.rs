//! The IPM heading (X.420 §7.2) and the types it is made of: `IPMIdentifier`, `ORDescriptor`,
//! `RecipientSpecifier`, `IPMSExtension` and the heading extensions a gateway reads
//! (languages, auto-submitted, extended subject).

use super::{
    MAX_HEADING_LIST, MAX_IPMS_EXTENSIONS, UB_EXTENDED_SUBJECT_LENGTH, UB_FREE_FORM_NAME,
    UB_LOCAL_IPM_IDENTIFIER, UB_SUBJECT_FIELD, UB_TELEPHONE_NUMBER, int_in, keep_unknown, oid,
    once, put_printable, universal_string,
};
use crate::ber::{BerError, Class, Oid, Tag, Tlv, Writer, parse_one};
use crate::mts::{BitString, MtsError, ORName, UtcTime};

const TELETEX: u32 = 20;
const PRINTABLE: u32 = 19;
const UNIVERSAL_STRING: u32 = 28;
const BMP_STRING: u32 = 30;

/// A TeletexString (T.61) value, kept as the octets received.
///
/// T.61 is read as Latin-1 ([`TeletexString::to_text`]): what senders put in practice, and
/// what the rest of the crate does for O/R address teletex attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TeletexString(pub Vec<u8>);

impl TeletexString {
    /// The text, each octet read as the Latin-1 character of that code.
    pub fn to_text(&self) -> String {
        self.0.iter().map(|&b| char::from(b)).collect()
    }

    /// The octets for a text of Latin-1 characters; `None` if a character is above U+00FF.
    pub fn from_latin1(text: &str) -> Option<Self> {
        text.chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect::<Option<Vec<u8>>>()
            .map(TeletexString)
    }

    /// The octets for any text, characters above U+00FF replaced by `?`.
    pub fn from_text_lossy(text: &str) -> Self {
        TeletexString(
            text.chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
        )
    }

    /// Decodes a string element (primitive or constructed) of at most `ub` octets.
    fn decode(tlv: &Tlv<'_>, ub: usize, what: &'static str) -> Result<Self, BerError> {
        let bytes = tlv.octets()?;
        if bytes.len() > ub {
            return Err(BerError::TooLarge(what));
        }
        Ok(TeletexString(bytes.into_owned()))
    }

    fn encode(
        &self,
        w: &mut Writer,
        tag: Tag,
        ub: usize,
        what: &'static str,
    ) -> Result<(), MtsError> {
        if self.0.len() > ub {
            return Err(MtsError::encode(
                what,
                format!("{} octets, more than the upper bound {ub}", self.0.len()),
            ));
        }
        w.octets(tag, &self.0);
        Ok(())
    }
}

/// X.420 `IPMIdentifier ::= [APPLICATION 11] SET { user ORName OPTIONAL,
/// user-relative-identifier LocalIPMIdentifier }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IpmIdentifier {
    /// `user`: the O/R name of the user who gave the identifier.
    pub user: Option<ORName>,
    /// `user-relative-identifier`: a PrintableString of at most
    /// [`UB_LOCAL_IPM_IDENTIFIER`] characters.
    pub user_relative_identifier: String,
}

impl IpmIdentifier {
    /// The tag, `[APPLICATION 11]`.
    pub const TAG: Tag = Tag::application(11).constructed();

    /// An identifier given by `user`.
    pub fn new(user: Option<ORName>, user_relative_identifier: impl Into<String>) -> Self {
        IpmIdentifier {
            user,
            user_relative_identifier: user_relative_identifier.into(),
        }
    }

    /// Decodes from its `[APPLICATION 11]` element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Self::TAG, "IPMIdentifier")?;
        Self::decode_implicit(tlv)
    }

    /// Decodes from an element of any tag (`replied-to-IPM [5]` is implicitly tagged).
    pub fn decode_implicit(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let (mut user, mut id) = (None, None);
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Application, 0) => once(&mut user, ORName::decode(&t)?, "user")?,
                (Class::Universal, PRINTABLE) => once(
                    &mut id,
                    t.string("user-relative-identifier", UB_LOCAL_IPM_IDENTIFIER)?,
                    "user-relative-identifier",
                )?,
                _ => {
                    return Err(BerError::Unexpected {
                        expected: "IPMIdentifier user or user-relative-identifier",
                        found: t.tag,
                    }
                    .into());
                }
            }
        }
        Ok(IpmIdentifier {
            user,
            user_relative_identifier: id.ok_or(BerError::Missing("user-relative-identifier"))?,
        })
    }

    /// Encodes as `[APPLICATION 11]`.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        self.encode_implicit(w, Self::TAG)
    }

    /// Encodes with another (implicit) tag.
    pub fn encode_implicit(&self, w: &mut Writer, tag: Tag) -> Result<(), MtsError> {
        w.try_constructed(tag, |w| {
            if let Some(u) = &self.user {
                u.encode(w)?;
            }
            put_printable(
                w,
                Tag::PRINTABLE_STRING,
                &self.user_relative_identifier,
                UB_LOCAL_IPM_IDENTIFIER,
                "user-relative-identifier",
            )
        })
    }
}

/// X.420 `ORDescriptor ::= SET { formal-name ORName OPTIONAL, free-form-name [0]
/// FreeFormName OPTIONAL, telephone-number [1] TelephoneNumber OPTIONAL }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ORDescriptor {
    /// `formal-name`: the O/R name.
    pub formal_name: Option<ORName>,
    /// `free-form-name [0]`: a TeletexString of at most [`UB_FREE_FORM_NAME`] octets (the
    /// display name).
    pub free_form_name: Option<TeletexString>,
    /// `telephone-number [1]`: a PrintableString of at most [`UB_TELEPHONE_NUMBER`]
    /// characters.
    pub telephone_number: Option<String>,
}

impl ORDescriptor {
    /// A descriptor holding only a formal name.
    pub fn formal(name: ORName) -> Self {
        ORDescriptor {
            formal_name: Some(name),
            ..ORDescriptor::default()
        }
    }

    /// The free-form name as text (T.61 read as Latin-1).
    pub fn free_form_text(&self) -> Option<String> {
        self.free_form_name.as_ref().map(TeletexString::to_text)
    }

    /// Decodes an `ORDescriptor` SET under any tag (it is implicitly tagged wherever it
    /// appears with a tag).
    pub fn decode_implicit(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let mut d = ORDescriptor::default();
        let (mut formal, mut free, mut tel) = (None, None, None);
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Application, 0) => once(&mut formal, ORName::decode(&t)?, "formal-name")?,
                (Class::Context, 0) => once(
                    &mut free,
                    TeletexString::decode(&t, UB_FREE_FORM_NAME, "free-form-name")?,
                    "free-form-name",
                )?,
                (Class::Context, 1) => once(
                    &mut tel,
                    t.string("telephone-number", UB_TELEPHONE_NUMBER)?,
                    "telephone-number",
                )?,
                _ => {
                    return Err(BerError::Unexpected {
                        expected: "ORDescriptor component",
                        found: t.tag,
                    }
                    .into());
                }
            }
        }
        d.formal_name = formal;
        d.free_form_name = free;
        d.telephone_number = tel;
        Ok(d)
    }

    /// Decodes an untagged `ORDescriptor` SET.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "ORDescriptor")?;
        Self::decode_implicit(tlv)
    }

    /// Encodes under the given tag ([`Tag::SET`] untagged).
    pub fn encode_implicit(&self, w: &mut Writer, tag: Tag) -> Result<(), MtsError> {
        w.try_constructed(tag, |w| {
            if let Some(n) = &self.formal_name {
                n.encode(w)?;
            }
            if let Some(f) = &self.free_form_name {
                f.encode(w, Tag::context(0), UB_FREE_FORM_NAME, "free-form-name")?;
            }
            if let Some(t) = &self.telephone_number {
                put_printable(
                    w,
                    Tag::context(1),
                    t,
                    UB_TELEPHONE_NUMBER,
                    "telephone-number",
                )?;
            }
            Ok(())
        })
    }

    /// Encodes as an untagged SET.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        self.encode_implicit(w, Tag::SET)
    }
}

/// X.420 `NotificationRequests ::= BIT STRING { rn(0), nrn(1), ipm-return(2),
/// an-supported(3), suppress-an(4) }` (at most X.411 `ub-bit-options` bits accepted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NotificationRequests(pub BitString);

impl NotificationRequests {
    /// `rn (0)`: a receipt notification is requested.
    pub fn rn(&self) -> bool {
        self.0.bit(0)
    }
    /// `nrn (1)`: a non-receipt notification is requested.
    pub fn nrn(&self) -> bool {
        self.0.bit(1)
    }
    /// `ipm-return (2)`: the IPM is to be returned with a non-receipt notification.
    pub fn ipm_return(&self) -> bool {
        self.0.bit(2)
    }
    /// `an-supported (3)`: advice notifications are supported.
    pub fn an_supported(&self) -> bool {
        self.0.bit(3)
    }
    /// `suppress-an (4)`: advice notifications are to be suppressed.
    pub fn suppress_an(&self) -> bool {
        self.0.bit(4)
    }
    /// Sets `rn`.
    pub fn set_rn(&mut self, v: bool) {
        self.0.set_bit(0, v)
    }
    /// Sets `nrn`.
    pub fn set_nrn(&mut self, v: bool) {
        self.0.set_bit(1, v)
    }
    /// Sets `ipm-return`.
    pub fn set_ipm_return(&mut self, v: bool) {
        self.0.set_bit(2, v)
    }
    /// Sets `an-supported`.
    pub fn set_an_supported(&mut self, v: bool) {
        self.0.set_bit(3, v)
    }
    /// Sets `suppress-an`.
    pub fn set_suppress_an(&mut self, v: bool) {
        self.0.set_bit(4, v)
    }
}

/// X.420 `RecipientSpecifier ::= SET { recipient [0] ORDescriptor, notification-requests [1]
/// NotificationRequests DEFAULT {}, reply-requested [2] BOOLEAN DEFAULT FALSE,
/// recipient-extensions [3] RecipientExtensionsField OPTIONAL }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RecipientSpecifier {
    /// `recipient [0]` (implicitly tagged SET).
    pub recipient: ORDescriptor,
    /// `notification-requests [1]`; omitted on encoding when no bit is set.
    pub notification_requests: NotificationRequests,
    /// `reply-requested [2]`; omitted on encoding when false.
    pub reply_requested: bool,
    /// `recipient-extensions [3]` (circulation-list indicator, precedence, …), kept as
    /// received; empty when absent.
    pub recipient_extensions: Vec<IpmsExtension>,
}

impl RecipientSpecifier {
    /// A recipient with no notification or reply requested.
    pub fn new(recipient: ORDescriptor) -> Self {
        RecipientSpecifier {
            recipient,
            ..RecipientSpecifier::default()
        }
    }

    /// Decodes one `RecipientSpecifier` SET.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "RecipientSpecifier")?;
        let mut r = tlv.children()?;
        let (mut rcpt, mut nr, mut rr, mut ext) = (None, None, None, None);
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => {
                    once(&mut rcpt, ORDescriptor::decode_implicit(&t)?, "recipient")?
                }
                (Class::Context, 1) => {
                    let mut bits = BitString::decode(&t, "notification-requests")?;
                    if bits.bytes.iter().all(|&b| b == 0) {
                        // No bit set: the DEFAULT, whatever its length on the wire.
                        bits = BitString::new();
                    }
                    once(&mut nr, NotificationRequests(bits), "notification-requests")?
                }
                (Class::Context, 2) => once(&mut rr, t.boolean()?, "reply-requested")?,
                (Class::Context, 3) => once(
                    &mut ext,
                    IpmsExtension::decode_set(&t, "recipient-extensions")?,
                    "recipient-extensions",
                )?,
                _ => {
                    return Err(BerError::Unexpected {
                        expected: "RecipientSpecifier component",
                        found: t.tag,
                    }
                    .into());
                }
            }
        }
        Ok(RecipientSpecifier {
            recipient: rcpt.ok_or(BerError::Missing("recipient"))?,
            notification_requests: nr.unwrap_or_default(),
            reply_requested: rr.unwrap_or(false),
            recipient_extensions: ext.unwrap_or_default(),
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.try_constructed(Tag::SET, |w| {
            self.recipient.encode_implicit(w, Tag::context(0))?;
            let nr = &self.notification_requests.0;
            if nr.bytes.iter().any(|&b| b != 0) {
                nr.encode(w, Tag::context(1));
            }
            if self.reply_requested {
                w.boolean_tagged(Tag::context(2), true);
            }
            IpmsExtension::encode_set(w, Tag::context(3), &self.recipient_extensions)
        })
    }
}

/// X.420 `ImportanceField ::= ENUMERATED { low(0), normal(1), high(2) }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Importance {
    /// `low (0)`.
    Low,
    /// `normal (1)`, the default.
    #[default]
    Normal,
    /// `high (2)`.
    High,
}

impl Importance {
    /// The ENUMERATED value.
    pub fn value(self) -> i64 {
        match self {
            Importance::Low => 0,
            Importance::Normal => 1,
            Importance::High => 2,
        }
    }
}

/// X.420 `SensitivityField ::= ENUMERATED { personal(1), private(2),
/// company-confidential(3) }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sensitivity {
    /// `personal (1)`.
    Personal,
    /// `private (2)`.
    Private,
    /// `company-confidential (3)`.
    CompanyConfidential,
}

impl Sensitivity {
    /// The ENUMERATED value.
    pub fn value(self) -> i64 {
        match self {
            Sensitivity::Personal => 1,
            Sensitivity::Private => 2,
            Sensitivity::CompanyConfidential => 3,
        }
    }
}

/// X.420 `IPMSExtension ::= SEQUENCE { type OBJECT IDENTIFIER, value ANY DEFAULT NULL }`:
/// a heading, recipient or notification extension, kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpmsExtension {
    /// `type`.
    pub kind: Oid,
    /// `value`: the complete encoding of the value (an untagged open type), kept as received;
    /// `None` when absent (the default, NULL).
    pub value: Option<Vec<u8>>,
}

/// X.420 `AutoSubmitted ::= ENUMERATED { not-auto-submitted(0), auto-generated(1),
/// auto-replied(2) }` (heading extension `auto-submitted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutoSubmitted {
    /// `not-auto-submitted (0)`.
    NotAutoSubmitted,
    /// `auto-generated (1)`.
    AutoGenerated,
    /// `auto-replied (2)`.
    AutoReplied,
}

/// The value of heading extension `extended-subject`: X.411 `UniversalOrBMPString{
/// ub-extended-subject-length}`, the subject in characters beyond Latin-1.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtendedSubject {
    /// The text (from `two-octets` BMPString or `four-octets` UniversalString).
    pub text: String,
    /// `iso-639-language-code`: a PrintableString of 2 or 5 characters.
    pub language: Option<String>,
}

impl IpmsExtension {
    /// An extension of type `kind` with the given encoded value.
    pub fn new(kind: &[u32], value: Option<Vec<u8>>) -> Self {
        IpmsExtension {
            kind: Oid::new(kind),
            value,
        }
    }

    /// Whether it is of type `kind` (one of the [`super::oid`] constants).
    pub fn is(&self, kind: &[u32]) -> bool {
        self.kind.0 == kind
    }

    /// Heading extension `languages`: `SET OF Language` (ISO 639 codes such as `en` or
    /// `en-GB`'s five-character form).
    pub fn languages(languages: &[&str]) -> Result<Self, MtsError> {
        let mut w = Writer::new();
        w.try_constructed(Tag::SET, |w| {
            for l in languages {
                if l.len() != 2 && l.len() != 5 {
                    return Err(MtsError::encode("Language", "not 2 or 5 characters"));
                }
                put_printable(w, Tag::PRINTABLE_STRING, l, 5, "Language")?;
            }
            Ok(())
        })?;
        Ok(IpmsExtension::new(oid::ID_HEX_LANGUAGES, Some(w.finish())))
    }

    /// Heading extension `auto-submitted`.
    pub fn auto_submitted(v: AutoSubmitted) -> Self {
        let n = match v {
            AutoSubmitted::NotAutoSubmitted => 0,
            AutoSubmitted::AutoGenerated => 1,
            AutoSubmitted::AutoReplied => 2,
        };
        let mut w = Writer::new();
        w.integer_tagged(Tag::ENUMERATED, n);
        IpmsExtension::new(oid::ID_HEX_AUTO_SUBMITTED, Some(w.finish()))
    }

    /// Heading extension `extended-subject`: BMPString when every character is in the Basic
    /// Multilingual Plane, UniversalString otherwise.
    pub fn extended_subject(text: &str, language: Option<&str>) -> Result<Self, MtsError> {
        let n = text.chars().count();
        if n == 0 || n > UB_EXTENDED_SUBJECT_LENGTH {
            return Err(MtsError::encode(
                "extended-subject",
                format!("{n} characters, not within 1..={UB_EXTENDED_SUBJECT_LENGTH}"),
            ));
        }
        let mut w = Writer::new();
        w.try_constructed(Tag::SET, |w| {
            if text.chars().all(|c| u32::from(c) <= 0xFFFF) {
                let b: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
                w.octets(Tag::universal(BMP_STRING), &b);
            } else {
                let b: Vec<u8> = text
                    .chars()
                    .flat_map(|c| u32::from(c).to_be_bytes())
                    .collect();
                w.octets(Tag::universal(UNIVERSAL_STRING), &b);
            }
            if let Some(l) = language {
                if l.len() != 2 && l.len() != 5 {
                    return Err(MtsError::encode(
                        "iso-639-language-code",
                        "not 2 or 5 characters",
                    ));
                }
                put_printable(w, Tag::PRINTABLE_STRING, l, 5, "iso-639-language-code")?;
            }
            Ok(())
        })?;
        Ok(IpmsExtension::new(
            oid::ID_HEX_EXTENDED_SUBJECT,
            Some(w.finish()),
        ))
    }

    /// The value as a parsed element (`None` for an absent value).
    fn value_tlv(&self) -> Result<Option<Tlv<'_>>, MtsError> {
        Ok(self.value.as_deref().map(parse_one).transpose()?)
    }

    /// Reads a `languages` value.
    fn decode_languages(&self) -> Result<Vec<String>, MtsError> {
        let t = self
            .value_tlv()?
            .ok_or(BerError::Missing("languages value"))?
            .expect(Tag::SET, "SET OF Language")?;
        let mut r = t.children()?;
        let mut out = Vec::new();
        while let Some(l) = r.next()? {
            if out.len() >= MAX_IPMS_EXTENSIONS {
                return Err(BerError::TooLarge("languages").into());
            }
            let l = universal_string(l, PRINTABLE, "Language PrintableString")?;
            let s = l.string("Language", 5)?;
            if s.len() != 2 && s.len() != 5 {
                return Err(BerError::Invalid("Language").into());
            }
            out.push(s);
        }
        Ok(out)
    }

    /// Reads an `auto-submitted` value.
    fn decode_auto_submitted(&self) -> Result<AutoSubmitted, MtsError> {
        let t = self
            .value_tlv()?
            .ok_or(BerError::Missing("auto-submitted value"))?
            .expect(Tag::ENUMERATED, "AutoSubmitted")?;
        Ok(match int_in(&t, 0, 2, "AutoSubmitted")? {
            0 => AutoSubmitted::NotAutoSubmitted,
            1 => AutoSubmitted::AutoGenerated,
            _ => AutoSubmitted::AutoReplied,
        })
    }

    /// Reads an `extended-subject` value.
    fn decode_extended_subject(&self) -> Result<ExtendedSubject, MtsError> {
        let t = self
            .value_tlv()?
            .ok_or(BerError::Missing("extended-subject value"))?
            .expect(Tag::SET, "UniversalOrBMPString")?;
        let mut r = t.children()?;
        let (mut text, mut language) = (None, None);
        while let Some(e) = r.next()? {
            match (e.tag.class, e.tag.number) {
                (Class::Universal, BMP_STRING) => {
                    let b = e.octets()?;
                    if b.len() % 2 != 0 || b.len() / 2 > UB_EXTENDED_SUBJECT_LENGTH {
                        return Err(bmp_error(b.len() % 2 != 0).into());
                    }
                    let units = b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                    let s = char::decode_utf16(units)
                        .collect::<Result<String, _>>()
                        .map_err(|_| BerError::Invalid("BMPString"))?;
                    once(&mut text, s, "character-encoding")?;
                }
                (Class::Universal, UNIVERSAL_STRING) => {
                    let b = e.octets()?;
                    if b.len() % 4 != 0 {
                        return Err(BerError::Invalid("UniversalString").into());
                    }
                    if b.len() / 4 > UB_EXTENDED_SUBJECT_LENGTH {
                        return Err(BerError::TooLarge("extended-subject").into());
                    }
                    let s = b
                        .chunks_exact(4)
                        .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                        .collect::<Option<String>>()
                        .ok_or(BerError::Invalid("UniversalString"))?;
                    once(&mut text, s, "character-encoding")?;
                }
                (Class::Universal, PRINTABLE) => once(
                    &mut language,
                    e.string("iso-639-language-code", 5)?,
                    "iso-639-language-code",
                )?,
                _ => {
                    return Err(BerError::Unexpected {
                        expected: "UniversalOrBMPString component",
                        found: e.tag,
                    }
                    .into());
                }
            }
        }
        Ok(ExtendedSubject {
            text: text.ok_or(BerError::Missing("character-encoding"))?,
            language,
        })
    }

    /// Decodes one `IPMSExtension` SEQUENCE.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SEQUENCE, "IPMSExtension")?;
        let mut r = tlv.children()?;
        let kind = r
            .next_required("IPMSExtension type")?
            .expect(Tag::OID, "IPMSExtension type")?
            .oid()?;
        let value = r.next()?.map(|v| v.raw.to_vec());
        r.finish()?;
        Ok(IpmsExtension { kind, value })
    }

    /// Encodes as a SEQUENCE.
    pub fn encode(&self, w: &mut Writer) {
        w.sequence(|w| {
            w.oid(&self.kind);
            if let Some(v) = &self.value {
                w.raw(v);
            }
        })
    }

    /// Decodes a `SET OF IPMSExtension` under any tag, bounded by [`MAX_IPMS_EXTENSIONS`].
    pub(crate) fn decode_set(tlv: &Tlv<'_>, what: &'static str) -> Result<Vec<Self>, MtsError> {
        let mut r = tlv.children()?;
        let mut out = Vec::new();
        while let Some(e) = r.next()? {
            if out.len() >= MAX_IPMS_EXTENSIONS {
                return Err(BerError::TooLarge(what).into());
            }
            out.push(IpmsExtension::decode(&e)?);
        }
        Ok(out)
    }

    /// Encodes a `SET OF IPMSExtension` under `tag`; nothing when the list is empty.
    pub(crate) fn encode_set(w: &mut Writer, tag: Tag, exts: &[Self]) -> Result<(), MtsError> {
        if exts.is_empty() {
            return Ok(());
        }
        if exts.len() > MAX_IPMS_EXTENSIONS {
            return Err(MtsError::encode(
                "IPMS extensions",
                "more than MAX_IPMS_EXTENSIONS",
            ));
        }
        w.constructed(tag, |w| {
            for e in exts {
                e.encode(w);
            }
        });
        Ok(())
    }
}

fn bmp_error(odd: bool) -> BerError {
    if odd {
        BerError::Invalid("BMPString")
    } else {
        BerError::TooLarge("extended-subject")
    }
}

/// X.420 `Heading` (a SET): every heading field of the 1999 edition.
///
/// SEQUENCE OF fields are empty when absent (absent and empty mean the same); DEFAULT fields
/// hold their default when absent and are not encoded when they hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Heading {
    /// `this-IPM`.
    pub this_ipm: IpmIdentifier,
    /// `originator [0]`.
    pub originator: Option<ORDescriptor>,
    /// `authorizing-users [1]`.
    pub authorizing_users: Vec<ORDescriptor>,
    /// `primary-recipients [2]`.
    pub primary_recipients: Vec<RecipientSpecifier>,
    /// `copy-recipients [3]`.
    pub copy_recipients: Vec<RecipientSpecifier>,
    /// `blind-copy-recipients [4]`.
    pub blind_copy_recipients: Vec<RecipientSpecifier>,
    /// `replied-to-IPM [5]`.
    pub replied_to_ipm: Option<IpmIdentifier>,
    /// `obsoleted-IPMs [6]`.
    pub obsoleted_ipms: Vec<IpmIdentifier>,
    /// `related-IPMs [7]`.
    pub related_ipms: Vec<IpmIdentifier>,
    /// `subject [8] EXPLICIT SubjectField`: TeletexString octets, at most
    /// [`UB_SUBJECT_FIELD`]. See [`Heading::subject_text`] and [`Heading::set_subject`].
    pub subject: Option<TeletexString>,
    /// `expiry-time [9]`.
    pub expiry_time: Option<UtcTime>,
    /// `reply-time [10]`.
    pub reply_time: Option<UtcTime>,
    /// `reply-recipients [11]`.
    pub reply_recipients: Vec<ORDescriptor>,
    /// `importance [12]`, default normal.
    pub importance: Importance,
    /// `sensitivity [13]`.
    pub sensitivity: Option<Sensitivity>,
    /// `auto-forwarded [14]`, default false.
    pub auto_forwarded: bool,
    /// `extensions [15]`: heading extensions, kept as received (helpers:
    /// [`Heading::languages`], [`Heading::auto_submitted`], [`Heading::extended_subject`]).
    pub extensions: Vec<IpmsExtension>,
    /// Elements of the SET we do not recognise, kept whole and re-emitted after the others.
    pub unknown: Vec<Vec<u8>>,
}

fn decode_descriptors(tlv: &Tlv<'_>, what: &'static str) -> Result<Vec<ORDescriptor>, MtsError> {
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(t) = r.next()? {
        if out.len() >= MAX_HEADING_LIST {
            return Err(BerError::TooLarge(what).into());
        }
        out.push(ORDescriptor::decode(&t)?);
    }
    Ok(out)
}

fn decode_recipients(
    tlv: &Tlv<'_>,
    what: &'static str,
) -> Result<Vec<RecipientSpecifier>, MtsError> {
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(t) = r.next()? {
        if out.len() >= MAX_HEADING_LIST {
            return Err(BerError::TooLarge(what).into());
        }
        out.push(RecipientSpecifier::decode(&t)?);
    }
    Ok(out)
}

fn decode_identifiers(tlv: &Tlv<'_>, what: &'static str) -> Result<Vec<IpmIdentifier>, MtsError> {
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(t) = r.next()? {
        if out.len() >= MAX_HEADING_LIST {
            return Err(BerError::TooLarge(what).into());
        }
        out.push(IpmIdentifier::decode(&t)?);
    }
    Ok(out)
}

/// `subject [8] EXPLICIT TeletexString`; a primitive `[8]` is read leniently as the string.
fn decode_subject(tlv: &Tlv<'_>) -> Result<TeletexString, BerError> {
    if !tlv.tag.constructed {
        return TeletexString::decode(tlv, UB_SUBJECT_FIELD, "subject");
    }
    let inner = universal_string(tlv.explicit_inner()?, TELETEX, "SubjectField TeletexString")?;
    TeletexString::decode(&inner, UB_SUBJECT_FIELD, "subject")
}

/// Checks the element count of a heading list before encoding.
fn check_list(n: usize, what: &'static str) -> Result<(), MtsError> {
    if n > MAX_HEADING_LIST {
        return Err(MtsError::encode(
            what,
            "more elements than MAX_HEADING_LIST",
        ));
    }
    Ok(())
}

impl Heading {
    /// A heading with only this-IPM.
    pub fn new(this_ipm: IpmIdentifier) -> Self {
        Heading {
            this_ipm,
            ..Heading::default()
        }
    }

    /// The subject field as text (T.61 read as Latin-1); `None` when absent.
    pub fn subject_text(&self) -> Option<String> {
        self.subject.as_ref().map(TeletexString::to_text)
    }

    /// The best subject for display: the `extended-subject` heading extension when present
    /// and readable, otherwise the subject field.
    pub fn display_subject(&self) -> Option<String> {
        match self.extended_subject() {
            Ok(Some(e)) => Some(e.text),
            _ => self.subject_text(),
        }
    }

    /// Sets the subject from text. Latin-1 text goes in the subject field as a
    /// TeletexString (any `extended-subject` extension is removed); other text goes in the
    /// subject field with `?` for the characters beyond Latin-1, and in full in an
    /// `extended-subject` heading extension (X.420 has no other string form for the subject
    /// field itself). Fails if the text is longer than [`UB_SUBJECT_FIELD`] (or, beyond
    /// Latin-1, [`UB_EXTENDED_SUBJECT_LENGTH`]) characters.
    pub fn set_subject(&mut self, text: &str) -> Result<(), MtsError> {
        let n = text.chars().count();
        if n > UB_SUBJECT_FIELD {
            return Err(MtsError::encode(
                "subject",
                format!("{n} characters, more than the upper bound {UB_SUBJECT_FIELD}"),
            ));
        }
        let ext = match TeletexString::from_latin1(text) {
            Some(t) => {
                self.subject = Some(t);
                None
            }
            None => {
                self.subject = Some(TeletexString::from_text_lossy(text));
                Some(IpmsExtension::extended_subject(text, None)?)
            }
        };
        self.extensions
            .retain(|e| !e.is(oid::ID_HEX_EXTENDED_SUBJECT));
        self.extensions.extend(ext);
        Ok(())
    }

    /// The first extension of type `kind`.
    pub fn extension(&self, kind: &[u32]) -> Option<&IpmsExtension> {
        self.extensions.iter().find(|e| e.is(kind))
    }

    /// The `languages` heading extension; `Ok(None)` when absent.
    pub fn languages(&self) -> Result<Option<Vec<String>>, MtsError> {
        self.extension(oid::ID_HEX_LANGUAGES)
            .map(IpmsExtension::decode_languages)
            .transpose()
    }

    /// The `auto-submitted` heading extension; `Ok(None)` when absent.
    pub fn auto_submitted(&self) -> Result<Option<AutoSubmitted>, MtsError> {
        self.extension(oid::ID_HEX_AUTO_SUBMITTED)
            .map(IpmsExtension::decode_auto_submitted)
            .transpose()
    }

    /// The `extended-subject` heading extension; `Ok(None)` when absent.
    pub fn extended_subject(&self) -> Result<Option<ExtendedSubject>, MtsError> {
        self.extension(oid::ID_HEX_EXTENDED_SUBJECT)
            .map(IpmsExtension::decode_extended_subject)
            .transpose()
    }

    /// Decodes the `Heading` SET.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "Heading")?;
        let mut r = tlv.children()?;
        let mut this_ipm = None;
        let mut originator = None;
        let mut authorizing = None;
        let (mut primary, mut copy, mut blind) = (None, None, None);
        let (mut replied, mut obsoleted, mut related) = (None, None, None);
        let (mut subject, mut expiry, mut reply_time, mut reply_rcpts) = (None, None, None, None);
        let (mut importance, mut sensitivity, mut auto_fwd, mut ext) = (None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Application, 11) => {
                    once(&mut this_ipm, IpmIdentifier::decode(&t)?, "this-IPM")?
                }
                (Class::Context, 0) => once(
                    &mut originator,
                    ORDescriptor::decode_implicit(&t)?,
                    "originator",
                )?,
                (Class::Context, 1) => once(
                    &mut authorizing,
                    decode_descriptors(&t, "authorizing-users")?,
                    "authorizing-users",
                )?,
                (Class::Context, 2) => once(
                    &mut primary,
                    decode_recipients(&t, "primary-recipients")?,
                    "primary-recipients",
                )?,
                (Class::Context, 3) => once(
                    &mut copy,
                    decode_recipients(&t, "copy-recipients")?,
                    "copy-recipients",
                )?,
                (Class::Context, 4) => once(
                    &mut blind,
                    decode_recipients(&t, "blind-copy-recipients")?,
                    "blind-copy-recipients",
                )?,
                (Class::Context, 5) => once(
                    &mut replied,
                    IpmIdentifier::decode_implicit(&t)?,
                    "replied-to-IPM",
                )?,
                (Class::Context, 6) => once(
                    &mut obsoleted,
                    decode_identifiers(&t, "obsoleted-IPMs")?,
                    "obsoleted-IPMs",
                )?,
                (Class::Context, 7) => once(
                    &mut related,
                    decode_identifiers(&t, "related-IPMs")?,
                    "related-IPMs",
                )?,
                (Class::Context, 8) => once(&mut subject, decode_subject(&t)?, "subject")?,
                (Class::Context, 9) => once(&mut expiry, UtcTime::decode(&t)?, "expiry-time")?,
                (Class::Context, 10) => once(&mut reply_time, UtcTime::decode(&t)?, "reply-time")?,
                (Class::Context, 11) => once(
                    &mut reply_rcpts,
                    decode_descriptors(&t, "reply-recipients")?,
                    "reply-recipients",
                )?,
                (Class::Context, 12) => {
                    let v = match int_in(&t, 0, 2, "importance")? {
                        0 => Importance::Low,
                        1 => Importance::Normal,
                        _ => Importance::High,
                    };
                    once(&mut importance, v, "importance")?
                }
                (Class::Context, 13) => {
                    let v = match int_in(&t, 1, 3, "sensitivity")? {
                        1 => Sensitivity::Personal,
                        2 => Sensitivity::Private,
                        _ => Sensitivity::CompanyConfidential,
                    };
                    once(&mut sensitivity, v, "sensitivity")?
                }
                (Class::Context, 14) => once(&mut auto_fwd, t.boolean()?, "auto-forwarded")?,
                (Class::Context, 15) => once(
                    &mut ext,
                    IpmsExtension::decode_set(&t, "extensions")?,
                    "extensions",
                )?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(Heading {
            this_ipm: this_ipm.ok_or(BerError::Missing("this-IPM"))?,
            originator,
            authorizing_users: authorizing.unwrap_or_default(),
            primary_recipients: primary.unwrap_or_default(),
            copy_recipients: copy.unwrap_or_default(),
            blind_copy_recipients: blind.unwrap_or_default(),
            replied_to_ipm: replied,
            obsoleted_ipms: obsoleted.unwrap_or_default(),
            related_ipms: related.unwrap_or_default(),
            subject,
            expiry_time: expiry,
            reply_time,
            reply_recipients: reply_rcpts.unwrap_or_default(),
            importance: importance.unwrap_or_default(),
            sensitivity,
            auto_forwarded: auto_fwd.unwrap_or(false),
            extensions: ext.unwrap_or_default(),
            unknown,
        })
    }

    /// Encodes as a SET, the elements in ASN.1 order, unknown elements last.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        check_list(self.authorizing_users.len(), "authorizing-users")?;
        check_list(self.primary_recipients.len(), "primary-recipients")?;
        check_list(self.copy_recipients.len(), "copy-recipients")?;
        check_list(self.blind_copy_recipients.len(), "blind-copy-recipients")?;
        check_list(self.obsoleted_ipms.len(), "obsoleted-IPMs")?;
        check_list(self.related_ipms.len(), "related-IPMs")?;
        check_list(self.reply_recipients.len(), "reply-recipients")?;
        w.try_constructed(Tag::SET, |w| {
            self.this_ipm.encode(w)?;
            if let Some(o) = &self.originator {
                o.encode_implicit(w, Tag::context(0))?;
            }
            encode_descriptors(w, 1, &self.authorizing_users)?;
            encode_recipients(w, 2, &self.primary_recipients)?;
            encode_recipients(w, 3, &self.copy_recipients)?;
            encode_recipients(w, 4, &self.blind_copy_recipients)?;
            if let Some(r) = &self.replied_to_ipm {
                // IMPLICIT: [5] replaces [APPLICATION 11].
                r.encode_implicit(w, Tag::context(5))?;
            }
            encode_identifiers(w, 6, &self.obsoleted_ipms)?;
            encode_identifiers(w, 7, &self.related_ipms)?;
            if let Some(s) = &self.subject {
                w.try_constructed(Tag::context(8), |w| {
                    s.encode(w, Tag::TELETEX_STRING, UB_SUBJECT_FIELD, "subject")
                })?;
            }
            if let Some(t) = &self.expiry_time {
                t.encode(w, Tag::context(9));
            }
            if let Some(t) = &self.reply_time {
                t.encode(w, Tag::context(10));
            }
            encode_descriptors(w, 11, &self.reply_recipients)?;
            if self.importance != Importance::Normal {
                w.integer_tagged(Tag::context(12), self.importance.value());
            }
            if let Some(s) = self.sensitivity {
                w.integer_tagged(Tag::context(13), s.value());
            }
            if self.auto_forwarded {
                w.boolean_tagged(Tag::context(14), true);
            }
            IpmsExtension::encode_set(w, Tag::context(15), &self.extensions)?;
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}

fn encode_descriptors(w: &mut Writer, n: u32, v: &[ORDescriptor]) -> Result<(), MtsError> {
    if v.is_empty() {
        return Ok(());
    }
    w.try_constructed(Tag::context(n), |w| v.iter().try_for_each(|d| d.encode(w)))
}

fn encode_recipients(w: &mut Writer, n: u32, v: &[RecipientSpecifier]) -> Result<(), MtsError> {
    if v.is_empty() {
        return Ok(());
    }
    w.try_constructed(Tag::context(n), |w| v.iter().try_for_each(|d| d.encode(w)))
}

fn encode_identifiers(w: &mut Writer, n: u32, v: &[IpmIdentifier]) -> Result<(), MtsError> {
    if v.is_empty() {
        return Ok(());
    }
    w.try_constructed(Tag::context(n), |w| v.iter().try_for_each(|d| d.encode(w)))
}
