//! Interpersonal notifications (X.420 §8): `IPN ::= SET { COMPONENTS OF CommonFields, choice
//! [0] CHOICE { non-receipt-fields [0], receipt-fields [1], other-notification-type-fields
//! [2] } }`. The `[0]` around the CHOICE is explicit (a tagged CHOICE always is).

use super::Ipm;
use super::{
    IpmIdentifier, IpmsExtension, ORDescriptor, UB_AUTO_FORWARD_COMMENT, int_in, keep_unknown,
    once, put_printable,
};
use crate::ber::{BerError, Class, Tag, Tlv, Writer, parse_one};
use crate::mts::{MtsError, UB_ENCODED_INFORMATION_TYPES, UB_SUPPLEMENTARY_INFO_LENGTH, UtcTime};

/// X.420 `AcknowledgmentModeField ::= ENUMERATED { manual(0), automatic(1) }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AcknowledgmentMode {
    /// `manual (0)`, the default.
    #[default]
    Manual,
    /// `automatic (1)`.
    Automatic,
}

/// X.420 `NonReceiptFields` (a SET).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NonReceiptFields {
    /// `non-receipt-reason [0]`: `ipm-discarded (0)`, `ipm-auto-forwarded (1)`, or a later
    /// value (the type is extensible, so any value is kept).
    pub non_receipt_reason: i64,
    /// `discard-reason [1]`: `ipm-expired (0)`, `ipm-obsoleted (1)`,
    /// `user-subscription-terminated (2)`, `not-used (3)` (ISO: `ipm-deleted`).
    pub discard_reason: Option<i64>,
    /// `auto-forward-comment [2]`: a PrintableString of at most
    /// [`UB_AUTO_FORWARD_COMMENT`] characters.
    pub auto_forward_comment: Option<String>,
    /// `returned-ipm [3]`: the whole `[3]` element, kept as received (see
    /// [`NonReceiptFields::returned_ipm`]).
    pub returned_ipm: Option<Vec<u8>>,
    /// `nrn-extensions [4]`.
    pub nrn_extensions: Vec<IpmsExtension>,
    /// Elements of the SET we do not recognise, kept whole and re-emitted after the others.
    pub unknown: Vec<Vec<u8>>,
}

impl NonReceiptFields {
    /// The returned IPM, decoded; `None` when absent.
    pub fn returned_ipm(&self) -> Option<Result<Ipm, MtsError>> {
        self.returned_ipm
            .as_deref()
            .map(|b| Ipm::decode_implicit(&parse_one(b)?))
    }

    fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let (mut reason, mut discard, mut comment, mut returned, mut ext) =
            (None, None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => once(
                    &mut reason,
                    int_in(&t, 0, i64::from(i32::MAX), "non-receipt-reason")?,
                    "non-receipt-reason",
                )?,
                (Class::Context, 1) => once(
                    &mut discard,
                    int_in(&t, 0, 3, "discard-reason")?,
                    "discard-reason",
                )?,
                (Class::Context, 2) => once(
                    &mut comment,
                    t.string("auto-forward-comment", UB_AUTO_FORWARD_COMMENT)?,
                    "auto-forward-comment",
                )?,
                (Class::Context, 3) => {
                    if !t.tag.constructed {
                        return Err(BerError::Invalid("returned-ipm").into());
                    }
                    once(&mut returned, t.raw.to_vec(), "returned-ipm")?
                }
                (Class::Context, 4) => once(
                    &mut ext,
                    IpmsExtension::decode_set(&t, "nrn-extensions")?,
                    "nrn-extensions",
                )?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(NonReceiptFields {
            non_receipt_reason: reason.ok_or(BerError::Missing("non-receipt-reason"))?,
            discard_reason: discard,
            auto_forward_comment: comment,
            returned_ipm: returned,
            nrn_extensions: ext.unwrap_or_default(),
            unknown,
        })
    }

    fn encode(&self, w: &mut Writer, tag: Tag) -> Result<(), MtsError> {
        w.try_constructed(tag, |w| {
            w.integer_tagged(Tag::context(0), self.non_receipt_reason);
            if let Some(d) = self.discard_reason {
                w.integer_tagged(Tag::context(1), d);
            }
            if let Some(c) = &self.auto_forward_comment {
                put_printable(
                    w,
                    Tag::context(2),
                    c,
                    UB_AUTO_FORWARD_COMMENT,
                    "auto-forward-comment",
                )?;
            }
            if let Some(r) = &self.returned_ipm {
                w.raw(r);
            }
            IpmsExtension::encode_set(w, Tag::context(4), &self.nrn_extensions)?;
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}

/// X.420 `ReceiptFields` (a SET).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptFields {
    /// `receipt-time [0]`.
    pub receipt_time: UtcTime,
    /// `acknowledgment-mode [1]`, default manual (not encoded when manual).
    pub acknowledgment_mode: AcknowledgmentMode,
    /// `suppl-receipt-info [2]`: X.411 `SupplementaryInformation`, a PrintableString of 1 to
    /// `ub-supplementary-info-length` characters.
    pub suppl_receipt_info: Option<String>,
    /// `rn-extensions [3]`.
    pub rn_extensions: Vec<IpmsExtension>,
    /// Elements of the SET we do not recognise, kept whole and re-emitted after the others.
    pub unknown: Vec<Vec<u8>>,
}

impl ReceiptFields {
    /// Receipt at `receipt_time`, acknowledged manually.
    pub fn new(receipt_time: UtcTime) -> Self {
        ReceiptFields {
            receipt_time,
            acknowledgment_mode: AcknowledgmentMode::Manual,
            suppl_receipt_info: None,
            rn_extensions: Vec::new(),
            unknown: Vec::new(),
        }
    }

    fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let (mut time, mut mode, mut info, mut ext) = (None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => once(&mut time, UtcTime::decode(&t)?, "receipt-time")?,
                (Class::Context, 1) => {
                    let m = match int_in(&t, 0, 1, "acknowledgment-mode")? {
                        0 => AcknowledgmentMode::Manual,
                        _ => AcknowledgmentMode::Automatic,
                    };
                    once(&mut mode, m, "acknowledgment-mode")?
                }
                (Class::Context, 2) => once(
                    &mut info,
                    t.string("suppl-receipt-info", UB_SUPPLEMENTARY_INFO_LENGTH)?,
                    "suppl-receipt-info",
                )?,
                (Class::Context, 3) => once(
                    &mut ext,
                    IpmsExtension::decode_set(&t, "rn-extensions")?,
                    "rn-extensions",
                )?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(ReceiptFields {
            receipt_time: time.ok_or(BerError::Missing("receipt-time"))?,
            acknowledgment_mode: mode.unwrap_or_default(),
            suppl_receipt_info: info,
            rn_extensions: ext.unwrap_or_default(),
            unknown,
        })
    }

    fn encode(&self, w: &mut Writer, tag: Tag) -> Result<(), MtsError> {
        w.try_constructed(tag, |w| {
            self.receipt_time.encode(w, Tag::context(0));
            if self.acknowledgment_mode == AcknowledgmentMode::Automatic {
                w.integer_tagged(Tag::context(1), 1);
            }
            if let Some(i) = &self.suppl_receipt_info {
                put_printable(
                    w,
                    Tag::context(2),
                    i,
                    UB_SUPPLEMENTARY_INFO_LENGTH,
                    "suppl-receipt-info",
                )?;
            }
            IpmsExtension::encode_set(w, Tag::context(3), &self.rn_extensions)?;
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}

/// The `choice [0]` of an IPN: which kind of notification it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IpnChoice {
    /// `non-receipt-fields [0]`: a non-receipt notification (NRN).
    NonReceipt(NonReceiptFields),
    /// `receipt-fields [1]`: a receipt notification (RN).
    Receipt(ReceiptFields),
    /// `other-notification-type-fields [2]`: `SET OF IPMSExtension` (absence advice,
    /// change-of-address advice, …), kept as received.
    Other(Vec<IpmsExtension>),
}

/// X.420 `IPN`: an interpersonal notification.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ipn {
    /// `subject-ipm`: the IPM this notification is about.
    pub subject_ipm: IpmIdentifier,
    /// `ipn-originator [1]`.
    pub ipn_originator: Option<ORDescriptor>,
    /// `ipm-intended-recipient [2]` (1988: `ipm-preferred-recipient`).
    pub ipm_intended_recipient: Option<ORDescriptor>,
    /// `conversion-eits`: the whole X.411 `EncodedInformationTypes` element (`[APPLICATION
    /// 5]`), kept as received.
    pub conversion_eits: Option<Vec<u8>>,
    /// `notification-extensions [3]`.
    pub notification_extensions: Vec<IpmsExtension>,
    /// `choice [0]`.
    pub choice: IpnChoice,
    /// Elements of the SET we do not recognise, kept whole and re-emitted after the others.
    pub unknown: Vec<Vec<u8>>,
}

impl Ipn {
    /// A notification about `subject_ipm`.
    pub fn new(subject_ipm: IpmIdentifier, choice: IpnChoice) -> Self {
        Ipn {
            subject_ipm,
            ipn_originator: None,
            ipm_intended_recipient: None,
            conversion_eits: None,
            notification_extensions: Vec::new(),
            choice,
            unknown: Vec::new(),
        }
    }

    /// Decodes an untagged `IPN` SET.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "IPN")?;
        Self::decode_implicit(tlv)
    }

    /// Decodes an `IPN` under any tag (`ipn [1]` in an `InformationObject`).
    pub fn decode_implicit(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let (mut subject, mut originator, mut intended, mut eits, mut ext, mut choice) =
            (None, None, None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Application, 11) => {
                    once(&mut subject, IpmIdentifier::decode(&t)?, "subject-ipm")?
                }
                (Class::Context, 1) => once(
                    &mut originator,
                    ORDescriptor::decode_implicit(&t)?,
                    "ipn-originator",
                )?,
                (Class::Context, 2) => once(
                    &mut intended,
                    ORDescriptor::decode_implicit(&t)?,
                    "ipm-intended-recipient",
                )?,
                (Class::Application, 5) => {
                    if !t.tag.constructed {
                        return Err(BerError::Invalid("conversion-eits").into());
                    }
                    if t.raw.len() > UB_ENCODED_INFORMATION_TYPES {
                        return Err(BerError::TooLarge("conversion-eits").into());
                    }
                    once(&mut eits, t.raw.to_vec(), "conversion-eits")?
                }
                (Class::Context, 3) => once(
                    &mut ext,
                    IpmsExtension::decode_set(&t, "notification-extensions")?,
                    "notification-extensions",
                )?,
                (Class::Context, 0) => {
                    let c = t.explicit_inner()?;
                    let v = match (c.tag.class, c.tag.number) {
                        (Class::Context, 0) => IpnChoice::NonReceipt(NonReceiptFields::decode(&c)?),
                        (Class::Context, 1) => IpnChoice::Receipt(ReceiptFields::decode(&c)?),
                        (Class::Context, 2) => IpnChoice::Other(IpmsExtension::decode_set(
                            &c,
                            "other-notification-type-fields",
                        )?),
                        _ => {
                            return Err(BerError::Unexpected {
                                expected: "IPN choice [0], [1] or [2]",
                                found: c.tag,
                            }
                            .into());
                        }
                    };
                    once(&mut choice, v, "IPN choice")?
                }
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(Ipn {
            subject_ipm: subject.ok_or(BerError::Missing("subject-ipm"))?,
            ipn_originator: originator,
            ipm_intended_recipient: intended,
            conversion_eits: eits,
            notification_extensions: ext.unwrap_or_default(),
            choice: choice.ok_or(BerError::Missing("IPN choice"))?,
            unknown,
        })
    }

    /// Encodes as an untagged SET.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        self.encode_implicit(w, Tag::SET)
    }

    /// Encodes under the given tag, the elements in ASN.1 order, unknown elements last.
    pub fn encode_implicit(&self, w: &mut Writer, tag: Tag) -> Result<(), MtsError> {
        w.try_constructed(tag, |w| {
            self.subject_ipm.encode(w)?;
            if let Some(o) = &self.ipn_originator {
                o.encode_implicit(w, Tag::context(1))?;
            }
            if let Some(o) = &self.ipm_intended_recipient {
                o.encode_implicit(w, Tag::context(2))?;
            }
            if let Some(e) = &self.conversion_eits {
                w.raw(e);
            }
            IpmsExtension::encode_set(w, Tag::context(3), &self.notification_extensions)?;
            w.try_constructed(Tag::context(0), |w| match &self.choice {
                IpnChoice::NonReceipt(n) => n.encode(w, Tag::context(0)),
                IpnChoice::Receipt(r) => r.encode(w, Tag::context(1)),
                IpnChoice::Other(v) => {
                    w.constructed(Tag::context(2), |w| {
                        for e in v {
                            e.encode(w);
                        }
                    });
                    Ok(())
                }
            })?;
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}
