//! The X.411 MTS access types that P3 carries (X.411 §8, the MTS abstract service; the ASN.1 of
//! the MTSAbstractService module): the MTS-bind, the submission port (message submission,
//! probe submission, cancel deferred delivery, submission control), the delivery port (message
//! delivery, report delivery, delivery control), the administration port and the P3 errors.
//!
//! Written by hand on [`crate::ber`] like the envelopes of [`crate::mts`]: elements of a SET
//! that are not recognised are kept whole and re-emitted after the known ones; open or rarely
//! used types (security contexts, registrations) are kept as their complete BER element;
//! controls and waiting information are typed (`controls`). The X.411 upper bounds are checked while decoding.
//!
//! The module is `IMPLICIT TAGS`: a tag on a CHOICE (credentials, report type, messages
//! waiting, which is `[1] EXPLICIT` anyway) is explicit.

use crate::ber::{BerError, Class, Tag, Tlv, Writer, parse_one};
use crate::mts::{
    BitString, ContentType, Credentials, ExtensionField, MAX_EXTENSION_FIELDS, MtaBindError,
    MtsError, MtsIdentifier, ORName, Password, PerMessageIndicators, Priority, ReportType,
    StrongCredentials, UB_CONTENT_ID_LENGTH, UB_CONTENT_LENGTH, UB_ENCODED_INFORMATION_TYPES,
    UB_INTEGER_OPTIONS, UB_MTA_NAME_LENGTH, UB_PASSWORD_LENGTH, UB_RECIPIENTS,
    UB_SUPPLEMENTARY_INFO_LENGTH, UtcTime,
};
use crate::mts::{int_in, keep_unknown, once, put_str, raw_bounded};

/// X.411 `ub-queue-size`: the largest message count in a `DeliveryQueue`.
pub const UB_QUEUE_SIZE: i64 = 2_147_483_647;

/// The largest security context, control or other element kept whole, in octets (our bound).
pub const MAX_RAW_ELEMENT: usize = 64 * 1024;

/// X.411 operation codes (X.419 `MTSAccessProtocol`, `op-*`), all `local` codes.
pub mod operation_code {
    /// `op-register`.
    pub const REGISTER: i64 = 1;
    /// `op-submission-control` (in the submission abstract syntax) and `op-delivery-control`
    /// (in the delivery abstract syntax) share this value.
    pub const SUBMISSION_OR_DELIVERY_CONTROL: i64 = 2;
    /// `op-message-submission`.
    pub const MESSAGE_SUBMISSION: i64 = 3;
    /// `op-probe-submission`.
    pub const PROBE_SUBMISSION: i64 = 4;
    /// `op-message-delivery`.
    pub const MESSAGE_DELIVERY: i64 = 5;
    /// `op-report-delivery`.
    pub const REPORT_DELIVERY: i64 = 6;
    /// `op-cancel-deferred-delivery`.
    pub const CANCEL_DEFERRED_DELIVERY: i64 = 7;
    /// `op-change-credentials`.
    pub const CHANGE_CREDENTIALS: i64 = 8;
}

/// X.411 error codes (X.419 `MTSAccessProtocol`, `err-*`), all `local` codes. Some values are
/// shared between the submission and delivery abstract syntaxes.
pub mod error_code {
    /// `err-submission-control-violated` (submission).
    pub const SUBMISSION_CONTROL_VIOLATED: i64 = 1;
    /// `err-delivery-control-violated` (delivery).
    pub const DELIVERY_CONTROL_VIOLATED: i64 = 1;
    /// `err-originator-invalid`.
    pub const ORIGINATOR_INVALID: i64 = 2;
    /// `err-recipient-improperly-specified` (parameter: the recipients' names).
    pub const RECIPIENT_IMPROPERLY_SPECIFIED: i64 = 3;
    /// `err-element-of-service-not-subscribed`.
    pub const ELEMENT_OF_SERVICE_NOT_SUBSCRIBED: i64 = 4;
    /// `err-old-credentials-incorrectly-specified`.
    pub const OLD_CREDENTIALS_INCORRECTLY_SPECIFIED: i64 = 5;
    /// `err-new-credentials-unacceptable`.
    pub const NEW_CREDENTIALS_UNACCEPTABLE: i64 = 6;
    /// `err-message-submission-identifier-invalid`.
    pub const MESSAGE_SUBMISSION_IDENTIFIER_INVALID: i64 = 7;
    /// `err-deferred-delivery-cancellation-rejected`.
    pub const DEFERRED_DELIVERY_CANCELLATION_REJECTED: i64 = 8;
    /// `err-register-rejected`.
    pub const REGISTER_REJECTED: i64 = 10;
    /// `err-inconsistent-request`.
    pub const INCONSISTENT_REQUEST: i64 = 11;
    /// `err-security-error` (parameter: a `SecurityProblem` INTEGER).
    pub const SECURITY_ERROR: i64 = 12;
    /// `err-unsupported-critical-function`.
    pub const UNSUPPORTED_CRITICAL_FUNCTION: i64 = 13;
    /// `err-control-violates-registration`.
    pub const CONTROL_VIOLATES_REGISTRATION: i64 = 14;
    /// `err-remote-bind-error`.
    pub const REMOTE_BIND_ERROR: i64 = 15;
    /// `err-operation-refused` (parameter: a `RefusedOperation` SET).
    pub const OPERATION_REFUSED: i64 = 16;
}

// ---------------------------------------------------------------------------------------------
// Helpers (the ones of `mts` are private to it).

/// `SET OF ExtensionField` from its (implicitly tagged) element.
fn decode_extensions(tlv: &Tlv<'_>) -> Result<Vec<ExtensionField>, MtsError> {
    let mut r = tlv.children()?;
    let mut out = Vec::new();
    while let Some(e) = r.next()? {
        if out.len() >= MAX_EXTENSION_FIELDS {
            return Err(BerError::TooLarge("extensions").into());
        }
        out.push(ExtensionField::decode(&e)?);
    }
    Ok(out)
}

/// Writes `[n] SET OF ExtensionField`, nothing for an empty list (the DEFAULT).
fn encode_extensions(w: &mut Writer, n: u32, exts: &[ExtensionField]) {
    if exts.is_empty() {
        return;
    }
    w.constructed(Tag::context(n).constructed(), |w| {
        for e in exts {
            e.encode(w);
        }
    });
}

/// An `EncodedInformationTypes` sent under another tag (`[1]`, `[6]` in delivery fields),
/// kept in its own `[APPLICATION 5]` form, as in [`crate::mts`].
fn eits_from_implicit(tlv: &Tlv<'_>, what: &'static str) -> Result<Vec<u8>, BerError> {
    if !tlv.tag.constructed || tlv.raw.len() > UB_ENCODED_INFORMATION_TYPES {
        return Err(BerError::TooLarge(what));
    }
    let mut w = Writer::with_capacity(tlv.content.len() + 4);
    w.constructed(EITS_TAG, |w| w.raw(tlv.content));
    Ok(w.finish())
}

/// Writes an `[APPLICATION 5]` EncodedInformationTypes element under `tag`.
fn eits_implicit(w: &mut Writer, tag: Tag, eits: &[u8]) -> Result<(), MtsError> {
    let t = parse_one(eits)?;
    w.constructed(tag.constructed(), |w| w.raw(t.content));
    Ok(())
}

const EITS_TAG: Tag = Tag::application(5).constructed();

fn sequence_of_names(tlv: &Tlv<'_>, what: &'static str) -> Result<Vec<ORName>, MtsError> {
    let mut r = tlv.children()?;
    let mut v = Vec::new();
    while let Some(t) = r.next()? {
        if v.len() >= UB_RECIPIENTS {
            return Err(BerError::TooLarge(what).into());
        }
        v.push(ORName::decode(&t)?);
    }
    if v.is_empty() {
        return Err(BerError::Missing(what).into());
    }
    Ok(v)
}

fn check_count(n: usize, what: &'static str) -> Result<(), MtsError> {
    if n == 0 || n > UB_RECIPIENTS {
        return Err(MtsError::Encode {
            what,
            message: "needs 1 to ub-recipients elements".into(),
        });
    }
    Ok(())
}

fn decode_top<T>(
    bytes: &[u8],
    f: impl FnOnce(&Tlv<'_>) -> Result<T, MtsError>,
) -> Result<T, MtsError> {
    f(&parse_one(bytes)?)
}

fn encode_top(f: impl FnOnce(&mut Writer) -> Result<(), MtsError>) -> Result<Vec<u8>, MtsError> {
    let mut w = Writer::new();
    f(&mut w)?;
    Ok(w.finish())
}

// ---------------------------------------------------------------------------------------------
// MTS-bind.

/// X.411 `ObjectName`: who binds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ObjectName {
    /// `user-agent ORAddressAndOptionalDirectoryName` (`[APPLICATION 0]`).
    UserAgent(ORName),
    /// `mTA [0] MTAName`.
    Mta(String),
    /// `message-store [4] ORAddressAndOptionalDirectoryName`.
    MessageStore(ORName),
}

impl ObjectName {
    fn is_tag(tag: Tag) -> bool {
        tag.same(ORName::TAG) || tag.same(Tag::context(0)) || tag.same(Tag::context(4))
    }

    /// Decodes from its element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        match (tlv.tag.class, tlv.tag.number) {
            (Class::Application, 0) => Ok(ObjectName::UserAgent(ORName::decode(tlv)?)),
            (Class::Context, 0) => {
                let s = tlv.string("MTAName", UB_MTA_NAME_LENGTH)?;
                if s.is_empty() {
                    return Err(BerError::Invalid("MTAName").into());
                }
                Ok(ObjectName::Mta(s))
            }
            (Class::Context, 4) => Ok(ObjectName::MessageStore(ORName::decode_implicit(tlv)?)),
            _ => Err(BerError::Unexpected {
                expected: "ObjectName",
                found: tlv.tag,
            }
            .into()),
        }
    }

    /// Encodes as its element.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        match self {
            ObjectName::UserAgent(n) => n.encode(w),
            ObjectName::Mta(s) => put_str(w, Tag::context(0), s, UB_MTA_NAME_LENGTH, "MTAName"),
            ObjectName::MessageStore(n) => n.encode_implicit(w, Tag::context(4).constructed()),
        }
    }
}

/// X.411 `DeliveryQueue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DeliveryQueue {
    /// `messages [0]`.
    pub messages: i64,
    /// `octets [1]`.
    pub octets: Option<i64>,
}

impl DeliveryQueue {
    fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let (mut m, mut o) = (None, None);
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => once(
                    &mut m,
                    int_in(&t, 0, UB_QUEUE_SIZE, "messages")?,
                    "messages",
                )?,
                (Class::Context, 1) => once(
                    &mut o,
                    int_in(&t, 0, UB_CONTENT_LENGTH, "octets")?,
                    "octets",
                )?,
                _ => {}
            }
        }
        Ok(DeliveryQueue {
            messages: m.ok_or(BerError::Missing("messages"))?,
            octets: o,
        })
    }

    fn encode(&self, w: &mut Writer, n: u32) {
        w.constructed(Tag::context(n).constructed(), |w| {
            w.integer_tagged(Tag::context(0), self.messages);
            if let Some(o) = self.octets {
                w.integer_tagged(Tag::context(1), o);
            }
        });
    }
}

/// X.411 `MessagesWaiting`: what the MTA holds for the user, by priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MessagesWaiting {
    /// `urgent [0]`.
    pub urgent: DeliveryQueue,
    /// `normal [1]`.
    pub normal: DeliveryQueue,
    /// `non-urgent [2]`.
    pub non_urgent: DeliveryQueue,
}

impl MessagesWaiting {
    fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        let mut r = tlv.children()?;
        let (mut u, mut n, mut nu) = (None, None, None);
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => once(&mut u, DeliveryQueue::decode(&t)?, "urgent")?,
                (Class::Context, 1) => once(&mut n, DeliveryQueue::decode(&t)?, "normal")?,
                (Class::Context, 2) => once(&mut nu, DeliveryQueue::decode(&t)?, "non-urgent")?,
                _ => {}
            }
        }
        Ok(MessagesWaiting {
            urgent: u.ok_or(BerError::Missing("urgent"))?,
            normal: n.ok_or(BerError::Missing("normal"))?,
            non_urgent: nu.ok_or(BerError::Missing("non-urgent"))?,
        })
    }

    fn encode(&self, w: &mut Writer) {
        w.explicit(Tag::context(1).constructed(), |w| {
            w.set(|w| {
                self.urgent.encode(w, 0);
                self.normal.encode(w, 1);
                self.non_urgent.encode(w, 2);
            })
        });
    }
}

fn decode_credentials(tlv: &Tlv<'_>) -> Result<Credentials, MtsError> {
    let inner = tlv.explicit_inner()?;
    let password = |p: Password| -> Result<Credentials, MtsError> {
        if p.bytes().len() > UB_PASSWORD_LENGTH {
            return Err(BerError::TooLarge("Password").into());
        }
        Ok(Credentials::Simple(p))
    };
    match (inner.tag.class, inner.tag.number) {
        (Class::Universal, 22) => password(Password::Ia5String(
            inner.string("Password", UB_PASSWORD_LENGTH)?,
        )),
        (Class::Universal, 4) => password(Password::OctetString(inner.octets()?.into_owned())),
        (Class::Context, 0) => Ok(Credentials::Strong(StrongCredentials(raw_bounded(
            &inner,
            MAX_RAW_ELEMENT,
            "strong credentials",
        )?))),
        _ => Err(BerError::Unexpected {
            expected: "Credentials simple or strong",
            found: inner.tag,
        }
        .into()),
    }
}

fn encode_credentials(w: &mut Writer, c: &Credentials) -> Result<(), MtsError> {
    w.try_constructed(Tag::context(2).constructed(), |w| match c {
        Credentials::Simple(p) => {
            if p.bytes().len() > UB_PASSWORD_LENGTH {
                return Err(MtsError::Encode {
                    what: "Password",
                    message: "longer than ub-password-length".into(),
                });
            }
            match p {
                Password::Ia5String(s) => {
                    if !s.is_ascii() {
                        return Err(MtsError::Encode {
                            what: "Password",
                            message: "not IA5".into(),
                        });
                    }
                    w.string(Tag::IA5_STRING, s);
                }
                Password::OctetString(b) => w.octets(Tag::OCTET_STRING, b),
            }
            Ok(())
        }
        Credentials::Strong(s) => {
            w.raw(&s.0);
            Ok(())
        }
    })
}

/// X.411 `MTSBindArgument`: what a user agent, message store or MTA presents when it binds
/// over P3. Protected passwords (`[1] ProtectedPassword`) are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MtsBindArgument {
    /// `initiator-name`.
    pub initiator_name: ObjectName,
    /// `messages-waiting [1]`.
    pub messages_waiting: Option<MessagesWaiting>,
    /// `initiator-credentials [2]`.
    pub initiator_credentials: Credentials,
    /// `security-context [3]`, the whole element kept as received.
    pub security_context: Option<Vec<u8>>,
    /// `extensions [5]`.
    pub extensions: Vec<ExtensionField>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl MtsBindArgument {
    /// A bind with a name and a simple (IA5) password, nothing else.
    pub fn simple(initiator_name: ObjectName, password: impl Into<String>) -> Self {
        MtsBindArgument {
            initiator_name,
            messages_waiting: None,
            initiator_credentials: Credentials::simple(password),
            security_context: None,
            extensions: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Decodes from the complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            let b = BindFields::decode(tlv, "MTSBindArgument")?;
            Ok(MtsBindArgument {
                initiator_name: b.name.ok_or(BerError::Missing("initiator-name"))?,
                messages_waiting: b.waiting,
                initiator_credentials: b
                    .credentials
                    .ok_or(BerError::Missing("initiator-credentials"))?,
                security_context: b.security_context,
                extensions: b.extensions.unwrap_or_default(),
                unknown: b.unknown,
            })
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.try_constructed(Tag::SET, |w| {
                self.initiator_name.encode(w)?;
                if let Some(m) = &self.messages_waiting {
                    m.encode(w);
                }
                encode_credentials(w, &self.initiator_credentials)?;
                if let Some(s) = &self.security_context {
                    w.raw(s);
                }
                encode_extensions(w, 5, &self.extensions);
                for u in &self.unknown {
                    w.raw(u);
                }
                Ok(())
            })
        })
    }
}

/// X.411 `MTSBindResult`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MtsBindResult {
    /// `responder-name`.
    pub responder_name: ObjectName,
    /// `messages-waiting [1]`.
    pub messages_waiting: Option<MessagesWaiting>,
    /// `responder-credentials [2]`.
    pub responder_credentials: Credentials,
    /// `extensions [5]`.
    pub extensions: Vec<ExtensionField>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl MtsBindResult {
    /// A result with a name and a simple (IA5) password, nothing else.
    pub fn simple(responder_name: ObjectName, password: impl Into<String>) -> Self {
        MtsBindResult {
            responder_name,
            messages_waiting: None,
            responder_credentials: Credentials::simple(password),
            extensions: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Decodes from the complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            let mut b = BindFields::decode(tlv, "MTSBindResult")?;
            if let Some(s) = b.security_context.take() {
                b.unknown.push(s);
            }
            Ok(MtsBindResult {
                responder_name: b.name.ok_or(BerError::Missing("responder-name"))?,
                messages_waiting: b.waiting,
                responder_credentials: b
                    .credentials
                    .ok_or(BerError::Missing("responder-credentials"))?,
                extensions: b.extensions.unwrap_or_default(),
                unknown: b.unknown,
            })
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.try_constructed(Tag::SET, |w| {
                self.responder_name.encode(w)?;
                if let Some(m) = &self.messages_waiting {
                    m.encode(w);
                }
                encode_credentials(w, &self.responder_credentials)?;
                encode_extensions(w, 5, &self.extensions);
                for u in &self.unknown {
                    w.raw(u);
                }
                Ok(())
            })
        })
    }
}

/// The `mts-bind-error` parameter: the same INTEGER values as the MTA bind error.
pub type MtsBindError = MtaBindError;

#[derive(Default)]
struct BindFields {
    name: Option<ObjectName>,
    waiting: Option<MessagesWaiting>,
    credentials: Option<Credentials>,
    security_context: Option<Vec<u8>>,
    extensions: Option<Vec<ExtensionField>>,
    unknown: Vec<Vec<u8>>,
}

impl BindFields {
    fn decode(tlv: &Tlv<'_>, what: &'static str) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, what)?;
        let mut b = BindFields::default();
        let mut r = tlv.children()?;
        while let Some(t) = r.next()? {
            if ObjectName::is_tag(t.tag) {
                once(&mut b.name, ObjectName::decode(&t)?, "name")?;
                continue;
            }
            match (t.tag.class, t.tag.number) {
                (Class::Context, 1) => once(
                    &mut b.waiting,
                    MessagesWaiting::decode(&t.explicit_inner()?)?,
                    "messages-waiting",
                )?,
                (Class::Context, 2) => {
                    once(&mut b.credentials, decode_credentials(&t)?, "credentials")?
                }
                (Class::Context, 3) => once(
                    &mut b.security_context,
                    raw_bounded(&t, MAX_RAW_ELEMENT, "security-context")?,
                    "security-context",
                )?,
                (Class::Context, 5) => {
                    once(&mut b.extensions, decode_extensions(&t)?, "extensions")?
                }
                _ => keep_unknown(&mut b.unknown, &t)?,
            }
        }
        Ok(b)
    }
}

impl From<ORName> for ObjectName {
    fn from(n: ORName) -> Self {
        ObjectName::UserAgent(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Submission port.

/// X.411 `PerRecipientMessageSubmissionFields` (and `PerRecipientProbeSubmissionFields`,
/// which has the same components).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerRecipientMessageSubmissionFields {
    /// `recipient-name`.
    pub recipient_name: ORName,
    /// `originator-report-request [0]`: bit 3 `report`, bit 4 `non-delivery-report`.
    pub originator_report_request: BitString,
    /// `explicit-conversion [1]`.
    pub explicit_conversion: Option<i64>,
    /// `extensions [2]`.
    pub extensions: Vec<ExtensionField>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

/// X.411 `PerRecipientProbeSubmissionFields`.
pub type PerRecipientProbeSubmissionFields = PerRecipientMessageSubmissionFields;

impl PerRecipientMessageSubmissionFields {
    /// A recipient for which the originator asks for non-delivery reports only.
    pub fn new(recipient_name: ORName) -> Self {
        let mut req = BitString::zeros(8);
        req.set_bit(4, true);
        PerRecipientMessageSubmissionFields {
            recipient_name,
            originator_report_request: req,
            explicit_conversion: None,
            extensions: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Whether a delivery report is asked for (`report`).
    pub fn report_requested(&self) -> bool {
        self.originator_report_request.bit(3)
    }

    /// Whether only a non-delivery report is asked for.
    pub fn non_delivery_report_requested(&self) -> bool {
        self.originator_report_request.bit(4)
    }

    fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "PerRecipientMessageSubmissionFields")?;
        let mut r = tlv.children()?;
        let (mut name, mut req, mut conv, mut ext) = (None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Application, 0) => once(&mut name, ORName::decode(&t)?, "recipient-name")?,
                (Class::Context, 0) => once(
                    &mut req,
                    BitString::decode(&t, "originator-report-request")?,
                    "originator-report-request",
                )?,
                (Class::Context, 1) => once(
                    &mut conv,
                    int_in(&t, 0, UB_INTEGER_OPTIONS, "explicit-conversion")?,
                    "explicit-conversion",
                )?,
                (Class::Context, 2) => once(&mut ext, decode_extensions(&t)?, "extensions")?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(PerRecipientMessageSubmissionFields {
            recipient_name: name.ok_or(BerError::Missing("recipient-name"))?,
            originator_report_request: req.ok_or(BerError::Missing("originator-report-request"))?,
            explicit_conversion: conv,
            extensions: ext.unwrap_or_default(),
            unknown,
        })
    }

    fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.try_constructed(Tag::SET, |w| {
            self.recipient_name.encode(w)?;
            self.originator_report_request.encode(w, Tag::context(0));
            if let Some(c) = self.explicit_conversion {
                w.integer_tagged(Tag::context(1), c);
            }
            encode_extensions(w, 2, &self.extensions);
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}

fn decode_submission_recipients(
    tlv: &Tlv<'_>,
) -> Result<Vec<PerRecipientMessageSubmissionFields>, MtsError> {
    let mut r = tlv.children()?;
    let mut v = Vec::new();
    while let Some(t) = r.next()? {
        if v.len() >= UB_RECIPIENTS {
            return Err(BerError::TooLarge("per-recipient-fields").into());
        }
        v.push(PerRecipientMessageSubmissionFields::decode(&t)?);
    }
    if v.is_empty() {
        return Err(BerError::Missing("per-recipient-fields element").into());
    }
    Ok(v)
}

fn encode_submission_recipients(
    w: &mut Writer,
    n: u32,
    v: &[PerRecipientMessageSubmissionFields],
) -> Result<(), MtsError> {
    check_count(v.len(), "per-recipient-fields")?;
    w.try_constructed(Tag::context(n).constructed(), |w| {
        for r in v {
            r.encode(w)?;
        }
        Ok(())
    })
}

/// The per-message fields the message and probe submission envelopes share, while decoding.
#[derive(Default)]
struct SubmissionCommon {
    originator: Option<ORName>,
    eits: Option<Vec<u8>>,
    content_type: Option<ContentType>,
    content_identifier: Option<String>,
    indicators: Option<PerMessageIndicators>,
    extensions: Option<Vec<ExtensionField>>,
}

impl SubmissionCommon {
    fn take(&mut self, t: &Tlv<'_>) -> Result<bool, MtsError> {
        match (t.tag.class, t.tag.number) {
            (Class::Application, 0) => {
                once(&mut self.originator, ORName::decode(t)?, "originator-name")?
            }
            (Class::Application, 5) => once(
                &mut self.eits,
                raw_bounded(
                    t,
                    UB_ENCODED_INFORMATION_TYPES,
                    "original-encoded-information-types",
                )?,
                "original-encoded-information-types",
            )?,
            _ if ContentType::is_tag(t.tag) => once(
                &mut self.content_type,
                ContentType::decode(t)?,
                "content-type",
            )?,
            (Class::Application, 10) => once(
                &mut self.content_identifier,
                t.string("content-identifier", UB_CONTENT_ID_LENGTH)?,
                "content-identifier",
            )?,
            (Class::Application, 8) => once(
                &mut self.indicators,
                PerMessageIndicators(BitString::decode(t, "per-message-indicators")?),
                "per-message-indicators",
            )?,
            (Class::Context, 2) => once(&mut self.extensions, decode_extensions(t)?, "extensions")?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn encode_content_identifier(w: &mut Writer, ci: &Option<String>) -> Result<(), MtsError> {
    if let Some(ci) = ci {
        put_str(
            w,
            Tag::application(10),
            ci,
            UB_CONTENT_ID_LENGTH,
            "content-identifier",
        )?;
    }
    Ok(())
}

/// X.411 `MessageSubmissionEnvelope` (a SET including `COMPONENTS OF
/// PerMessageSubmissionFields`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageSubmissionEnvelope {
    /// `originator-name`.
    pub originator_name: ORName,
    /// `original-encoded-information-types` (`[APPLICATION 5]`), kept whole.
    pub original_eits: Option<Vec<u8>>,
    /// `content-type`.
    pub content_type: ContentType,
    /// `content-identifier`.
    pub content_identifier: Option<String>,
    /// `priority`; `None` when absent (normal).
    pub priority: Option<Priority>,
    /// `per-message-indicators`; `None` when absent.
    pub per_message_indicators: Option<PerMessageIndicators>,
    /// `deferred-delivery-time [0]`.
    pub deferred_delivery_time: Option<UtcTime>,
    /// `extensions [2]`.
    pub extensions: Vec<ExtensionField>,
    /// `per-recipient-fields [1]`.
    pub per_recipient_fields: Vec<PerRecipientMessageSubmissionFields>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl MessageSubmissionEnvelope {
    /// Decodes from its SET element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "MessageSubmissionEnvelope")?;
        let mut c = SubmissionCommon::default();
        let (mut priority, mut deferred, mut recips) = (None, None, None);
        let mut unknown = Vec::new();
        let mut r = tlv.children()?;
        while let Some(t) = r.next()? {
            if c.take(&t)? {
                continue;
            }
            match (t.tag.class, t.tag.number) {
                (Class::Application, 7) => once(&mut priority, Priority::decode(&t)?, "priority")?,
                (Class::Context, 0) => once(
                    &mut deferred,
                    UtcTime::decode(&t)?,
                    "deferred-delivery-time",
                )?,
                (Class::Context, 1) => once(
                    &mut recips,
                    decode_submission_recipients(&t)?,
                    "per-recipient-fields",
                )?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(MessageSubmissionEnvelope {
            originator_name: c.originator.ok_or(BerError::Missing("originator-name"))?,
            original_eits: c.eits,
            content_type: c.content_type.ok_or(BerError::Missing("content-type"))?,
            content_identifier: c.content_identifier,
            priority,
            per_message_indicators: c.indicators,
            deferred_delivery_time: deferred,
            extensions: c.extensions.unwrap_or_default(),
            per_recipient_fields: recips.ok_or(BerError::Missing("per-recipient-fields"))?,
            unknown,
        })
    }

    /// Encodes as a SET, in ASN.1 order, unknown elements last.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.try_constructed(Tag::SET, |w| {
            self.originator_name.encode(w)?;
            if let Some(e) = &self.original_eits {
                w.raw(e);
            }
            self.content_type.encode(w);
            encode_content_identifier(w, &self.content_identifier)?;
            if let Some(p) = self.priority {
                p.encode(w);
            }
            if let Some(i) = &self.per_message_indicators {
                i.0.encode(w, PerMessageIndicators::TAG);
            }
            if let Some(d) = &self.deferred_delivery_time {
                d.encode(w, Tag::context(0));
            }
            encode_extensions(w, 2, &self.extensions);
            encode_submission_recipients(w, 1, &self.per_recipient_fields)?;
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}

/// X.411 `MessageSubmissionArgument ::= SEQUENCE { envelope, content }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageSubmissionArgument {
    /// `envelope`.
    pub envelope: MessageSubmissionEnvelope,
    /// `content` (an OCTET STRING: the content's encoding, e.g. an IPM).
    pub content: Vec<u8>,
}

impl MessageSubmissionArgument {
    /// Decodes from the complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            let mut r = tlv
                .expect(Tag::SEQUENCE, "MessageSubmissionArgument")?
                .children()?;
            let envelope = MessageSubmissionEnvelope::decode(&r.next_required("envelope")?)?;
            let content = r
                .next_required("content")?
                .expect(Tag::OCTET_STRING, "content")?
                .octets()?
                .into_owned();
            r.finish()?;
            Ok(MessageSubmissionArgument { envelope, content })
        })
    }

    /// Encodes as a SEQUENCE.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.try_constructed(Tag::SEQUENCE, |w| {
                self.envelope.encode(w)?;
                w.octets(Tag::OCTET_STRING, &self.content);
                Ok(())
            })
        })
    }
}

/// X.411 `MessageSubmissionResult` (and `ProbeSubmissionResult`, which has the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageSubmissionResult {
    /// `message-submission-identifier` (or `probe-submission-identifier`).
    pub message_submission_identifier: MtsIdentifier,
    /// `message-submission-time [0]` (or `probe-submission-time`).
    pub message_submission_time: UtcTime,
    /// `content-identifier`.
    pub content_identifier: Option<String>,
    /// `extensions [1]`.
    pub extensions: Vec<ExtensionField>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

/// X.411 `ProbeSubmissionResult`.
pub type ProbeSubmissionResult = MessageSubmissionResult;

impl MessageSubmissionResult {
    /// A result with the identifier and time only.
    pub fn new(identifier: MtsIdentifier, time: UtcTime) -> Self {
        MessageSubmissionResult {
            message_submission_identifier: identifier,
            message_submission_time: time,
            content_identifier: None,
            extensions: Vec::new(),
            unknown: Vec::new(),
        }
    }

    /// Decodes from the complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            tlv.expect(Tag::SET, "MessageSubmissionResult")?;
            let mut r = tlv.children()?;
            let (mut id, mut time, mut ci, mut ext) = (None, None, None, None);
            let mut unknown = Vec::new();
            while let Some(t) = r.next()? {
                match (t.tag.class, t.tag.number) {
                    (Class::Application, 4) => {
                        once(&mut id, MtsIdentifier::decode(&t)?, "submission-identifier")?
                    }
                    (Class::Context, 0) => {
                        once(&mut time, UtcTime::decode(&t)?, "submission-time")?
                    }
                    (Class::Application, 10) => once(
                        &mut ci,
                        t.string("content-identifier", UB_CONTENT_ID_LENGTH)?,
                        "content-identifier",
                    )?,
                    (Class::Context, 1) => once(&mut ext, decode_extensions(&t)?, "extensions")?,
                    _ => keep_unknown(&mut unknown, &t)?,
                }
            }
            Ok(MessageSubmissionResult {
                message_submission_identifier: id
                    .ok_or(BerError::Missing("submission-identifier"))?,
                message_submission_time: time.ok_or(BerError::Missing("submission-time"))?,
                content_identifier: ci,
                extensions: ext.unwrap_or_default(),
                unknown,
            })
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.try_constructed(Tag::SET, |w| {
                self.message_submission_identifier.encode(w)?;
                self.message_submission_time.encode(w, Tag::context(0));
                encode_content_identifier(w, &self.content_identifier)?;
                encode_extensions(w, 1, &self.extensions);
                for u in &self.unknown {
                    w.raw(u);
                }
                Ok(())
            })
        })
    }
}

/// X.411 `ProbeSubmissionArgument ::= ProbeSubmissionEnvelope`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeSubmissionArgument {
    /// `originator-name`.
    pub originator_name: ORName,
    /// `original-encoded-information-types`, kept whole.
    pub original_eits: Option<Vec<u8>>,
    /// `content-type`.
    pub content_type: ContentType,
    /// `content-identifier`.
    pub content_identifier: Option<String>,
    /// `content-length [0]`.
    pub content_length: Option<i64>,
    /// `per-message-indicators`; `None` when absent.
    pub per_message_indicators: Option<PerMessageIndicators>,
    /// `extensions [2]`.
    pub extensions: Vec<ExtensionField>,
    /// `per-recipient-fields [3]`.
    pub per_recipient_fields: Vec<PerRecipientProbeSubmissionFields>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl ProbeSubmissionArgument {
    /// Decodes from the complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            tlv.expect(Tag::SET, "ProbeSubmissionEnvelope")?;
            let mut c = SubmissionCommon::default();
            let (mut length, mut recips) = (None, None);
            let mut unknown = Vec::new();
            let mut r = tlv.children()?;
            while let Some(t) = r.next()? {
                if c.take(&t)? {
                    continue;
                }
                match (t.tag.class, t.tag.number) {
                    (Class::Context, 0) => once(
                        &mut length,
                        int_in(&t, 0, UB_CONTENT_LENGTH, "content-length")?,
                        "content-length",
                    )?,
                    (Class::Context, 3) => once(
                        &mut recips,
                        decode_submission_recipients(&t)?,
                        "per-recipient-fields",
                    )?,
                    _ => keep_unknown(&mut unknown, &t)?,
                }
            }
            Ok(ProbeSubmissionArgument {
                originator_name: c.originator.ok_or(BerError::Missing("originator-name"))?,
                original_eits: c.eits,
                content_type: c.content_type.ok_or(BerError::Missing("content-type"))?,
                content_identifier: c.content_identifier,
                content_length: length,
                per_message_indicators: c.indicators,
                extensions: c.extensions.unwrap_or_default(),
                per_recipient_fields: recips.ok_or(BerError::Missing("per-recipient-fields"))?,
                unknown,
            })
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.try_constructed(Tag::SET, |w| {
                self.originator_name.encode(w)?;
                if let Some(e) = &self.original_eits {
                    w.raw(e);
                }
                self.content_type.encode(w);
                encode_content_identifier(w, &self.content_identifier)?;
                if let Some(l) = self.content_length {
                    w.integer_tagged(Tag::context(0), l);
                }
                if let Some(i) = &self.per_message_indicators {
                    i.0.encode(w, PerMessageIndicators::TAG);
                }
                encode_extensions(w, 2, &self.extensions);
                encode_submission_recipients(w, 3, &self.per_recipient_fields)?;
                for u in &self.unknown {
                    w.raw(u);
                }
                Ok(())
            })
        })
    }
}

/// X.411 `CancelDeferredDeliveryArgument ::= MessageSubmissionIdentifier`.
pub type CancelDeferredDeliveryArgument = MtsIdentifier;

// ---------------------------------------------------------------------------------------------
// Delivery port.

/// X.411 `DeliveredContentType`: `built-in [0]` (an implicit INTEGER) or the extended OBJECT
/// IDENTIFIER. A built-in type sent as `[APPLICATION 6]` is accepted too.
fn decode_delivered_content_type(t: &Tlv<'_>) -> Result<ContentType, MtsError> {
    if t.tag.same(Tag::context(0)) {
        let v = int_in(t, 0, i64::from(u16::MAX), "built-in content type")?;
        let v = u16::try_from(v).map_err(|_| BerError::TooLarge("built-in content type"))?;
        return Ok(ContentType::BuiltIn(v));
    }
    Ok(ContentType::decode(t)?)
}

fn encode_delivered_content_type(w: &mut Writer, c: &ContentType) {
    match c {
        ContentType::BuiltIn(v) => w.integer_tagged(Tag::context(0), i64::from(*v)),
        ContentType::Extended(oid) => w.oid(oid),
    }
}

/// X.411 `OtherMessageDeliveryFields`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OtherMessageDeliveryFields {
    /// `content-type` (`DeliveredContentType`: a built-in type travels as `[0]`).
    pub content_type: ContentType,
    /// `originator-name`.
    pub originator_name: ORName,
    /// `original-encoded-information-types [1]`, kept in its `[APPLICATION 5]` form.
    pub original_eits: Option<Vec<u8>>,
    /// `priority`; `None` when absent (normal).
    pub priority: Option<Priority>,
    /// `delivery-flags [2]` (bit 1: implicit-conversion-prohibited).
    pub delivery_flags: Option<BitString>,
    /// `other-recipient-names [3]` (empty when absent).
    pub other_recipient_names: Vec<ORName>,
    /// `this-recipient-name [4]`.
    pub this_recipient_name: ORName,
    /// `originally-intended-recipient-name [5]`.
    pub originally_intended_recipient_name: Option<ORName>,
    /// `converted-encoded-information-types [6]`, kept in its `[APPLICATION 5]` form.
    pub converted_eits: Option<Vec<u8>>,
    /// `message-submission-time [7]`.
    pub message_submission_time: UtcTime,
    /// `content-identifier [8]`.
    pub content_identifier: Option<String>,
    /// `extensions [9]`.
    pub extensions: Vec<ExtensionField>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl OtherMessageDeliveryFields {
    /// Decodes from its SET element.
    pub fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "OtherMessageDeliveryFields")?;
        let mut r = tlv.children()?;
        let (mut ct, mut orig, mut eits, mut prio, mut flags, mut others) =
            (None, None, None, None, None, None);
        let (mut this, mut oirn, mut conv, mut time, mut ci, mut ext) =
            (None, None, None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number, t.tag.constructed) {
                (Class::Context, 0, false)
                | (Class::Application, 6, _)
                | (Class::Universal, 6, _) => {
                    once(&mut ct, decode_delivered_content_type(&t)?, "content-type")?
                }
                (Class::Application, 0, _) => {
                    once(&mut orig, ORName::decode(&t)?, "originator-name")?
                }
                (Class::Context, 1, _) => once(
                    &mut eits,
                    eits_from_implicit(&t, "original-encoded-information-types")?,
                    "original-encoded-information-types",
                )?,
                (Class::Application, 7, _) => once(&mut prio, Priority::decode(&t)?, "priority")?,
                (Class::Context, 2, _) => once(
                    &mut flags,
                    BitString::decode(&t, "delivery-flags")?,
                    "delivery-flags",
                )?,
                (Class::Context, 3, _) => once(
                    &mut others,
                    sequence_of_names(&t, "other-recipient-names")?,
                    "other-recipient-names",
                )?,
                (Class::Context, 4, _) => once(
                    &mut this,
                    ORName::decode_implicit(&t)?,
                    "this-recipient-name",
                )?,
                (Class::Context, 5, _) => once(
                    &mut oirn,
                    ORName::decode_implicit(&t)?,
                    "originally-intended-recipient-name",
                )?,
                (Class::Context, 6, _) => once(
                    &mut conv,
                    eits_from_implicit(&t, "converted-encoded-information-types")?,
                    "converted-encoded-information-types",
                )?,
                (Class::Context, 7, _) => {
                    once(&mut time, UtcTime::decode(&t)?, "message-submission-time")?
                }
                (Class::Context, 8, _) => once(
                    &mut ci,
                    t.string("content-identifier", UB_CONTENT_ID_LENGTH)?,
                    "content-identifier",
                )?,
                (Class::Context, 9, _) => once(&mut ext, decode_extensions(&t)?, "extensions")?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(OtherMessageDeliveryFields {
            content_type: ct.ok_or(BerError::Missing("content-type"))?,
            originator_name: orig.ok_or(BerError::Missing("originator-name"))?,
            original_eits: eits,
            priority: prio,
            delivery_flags: flags,
            other_recipient_names: others.unwrap_or_default(),
            this_recipient_name: this.ok_or(BerError::Missing("this-recipient-name"))?,
            originally_intended_recipient_name: oirn,
            converted_eits: conv,
            message_submission_time: time.ok_or(BerError::Missing("message-submission-time"))?,
            content_identifier: ci,
            extensions: ext.unwrap_or_default(),
            unknown,
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.try_constructed(Tag::SET, |w| {
            encode_delivered_content_type(w, &self.content_type);
            self.originator_name.encode(w)?;
            if let Some(e) = &self.original_eits {
                eits_implicit(w, Tag::context(1), e)?;
            }
            if let Some(p) = self.priority {
                p.encode(w);
            }
            if let Some(f) = &self.delivery_flags {
                f.encode(w, Tag::context(2));
            }
            if !self.other_recipient_names.is_empty() {
                check_count(self.other_recipient_names.len(), "other-recipient-names")?;
                w.try_constructed(Tag::context(3).constructed(), |w| {
                    for n in &self.other_recipient_names {
                        n.encode(w)?;
                    }
                    Ok::<(), MtsError>(())
                })?;
            }
            self.this_recipient_name
                .encode_implicit(w, Tag::context(4).constructed())?;
            if let Some(n) = &self.originally_intended_recipient_name {
                n.encode_implicit(w, Tag::context(5).constructed())?;
            }
            if let Some(e) = &self.converted_eits {
                eits_implicit(w, Tag::context(6), e)?;
            }
            self.message_submission_time.encode(w, Tag::context(7));
            if let Some(ci) = &self.content_identifier {
                put_str(
                    w,
                    Tag::context(8),
                    ci,
                    UB_CONTENT_ID_LENGTH,
                    "content-identifier",
                )?;
            }
            encode_extensions(w, 9, &self.extensions);
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}

/// X.411 `MessageDeliveryEnvelope`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageDeliveryEnvelope {
    /// `message-delivery-identifier`.
    pub message_delivery_identifier: MtsIdentifier,
    /// `message-delivery-time`.
    pub message_delivery_time: UtcTime,
    /// `other-fields`.
    pub other_fields: OtherMessageDeliveryFields,
}

/// X.411 `MessageDeliveryArgument ::= SEQUENCE { COMPONENTS OF MessageDeliveryEnvelope,
/// content }`: four elements in one SEQUENCE.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageDeliveryArgument {
    /// The envelope's components.
    pub envelope: MessageDeliveryEnvelope,
    /// `content`.
    pub content: Vec<u8>,
}

impl MessageDeliveryArgument {
    /// Decodes from the complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            let mut r = tlv
                .expect(Tag::SEQUENCE, "MessageDeliveryArgument")?
                .children()?;
            let id = MtsIdentifier::decode(&r.next_required("message-delivery-identifier")?)?;
            let time = UtcTime::decode(
                &r.next_required("message-delivery-time")?
                    .expect(Tag::UTC_TIME, "message-delivery-time")?,
            )?;
            let other = OtherMessageDeliveryFields::decode(&r.next_required("other-fields")?)?;
            let content = r
                .next_required("content")?
                .expect(Tag::OCTET_STRING, "content")?
                .octets()?
                .into_owned();
            r.finish()?;
            Ok(MessageDeliveryArgument {
                envelope: MessageDeliveryEnvelope {
                    message_delivery_identifier: id,
                    message_delivery_time: time,
                    other_fields: other,
                },
                content,
            })
        })
    }

    /// Encodes as a SEQUENCE.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.try_constructed(Tag::SEQUENCE, |w| {
                self.envelope.message_delivery_identifier.encode(w)?;
                self.envelope.message_delivery_time.encode(w, Tag::UTC_TIME);
                self.envelope.other_fields.encode(w)?;
                w.octets(Tag::OCTET_STRING, &self.content);
                Ok(())
            })
        })
    }
}

/// X.411 `PerRecipientReportDeliveryFields`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PerRecipientReportDeliveryFields {
    /// `actual-recipient-name [0]`.
    pub actual_recipient_name: ORName,
    /// `report-type [1]` (explicit: a CHOICE).
    pub report_type: ReportType,
    /// `converted-encoded-information-types` (`[APPLICATION 5]`), kept whole.
    pub converted_eits: Option<Vec<u8>>,
    /// `originally-intended-recipient-name [2]`.
    pub originally_intended_recipient_name: Option<ORName>,
    /// `supplementary-information [3]`.
    pub supplementary_information: Option<String>,
    /// `extensions [4]`.
    pub extensions: Vec<ExtensionField>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl PerRecipientReportDeliveryFields {
    /// Fields for one recipient, nothing optional.
    pub fn new(actual_recipient_name: ORName, report_type: ReportType) -> Self {
        PerRecipientReportDeliveryFields {
            actual_recipient_name,
            report_type,
            converted_eits: None,
            originally_intended_recipient_name: None,
            supplementary_information: None,
            extensions: Vec::new(),
            unknown: Vec::new(),
        }
    }

    fn decode(tlv: &Tlv<'_>) -> Result<Self, MtsError> {
        tlv.expect(Tag::SET, "PerRecipientReportDeliveryFields")?;
        let mut r = tlv.children()?;
        let (mut name, mut rt, mut eits, mut oirn, mut sup, mut ext) =
            (None, None, None, None, None, None);
        let mut unknown = Vec::new();
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => once(
                    &mut name,
                    ORName::decode_implicit(&t)?,
                    "actual-recipient-name",
                )?,
                (Class::Context, 1) => once(
                    &mut rt,
                    ReportType::decode(&t.explicit_inner()?)?,
                    "report-type",
                )?,
                (Class::Application, 5) => once(
                    &mut eits,
                    raw_bounded(
                        &t,
                        UB_ENCODED_INFORMATION_TYPES,
                        "converted-encoded-information-types",
                    )?,
                    "converted-encoded-information-types",
                )?,
                (Class::Context, 2) => once(
                    &mut oirn,
                    ORName::decode_implicit(&t)?,
                    "originally-intended-recipient-name",
                )?,
                (Class::Context, 3) => once(
                    &mut sup,
                    t.string("supplementary-information", UB_SUPPLEMENTARY_INFO_LENGTH)?,
                    "supplementary-information",
                )?,
                (Class::Context, 4) => once(&mut ext, decode_extensions(&t)?, "extensions")?,
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok(PerRecipientReportDeliveryFields {
            actual_recipient_name: name.ok_or(BerError::Missing("actual-recipient-name"))?,
            report_type: rt.ok_or(BerError::Missing("report-type"))?,
            converted_eits: eits,
            originally_intended_recipient_name: oirn,
            supplementary_information: sup,
            extensions: ext.unwrap_or_default(),
            unknown,
        })
    }

    fn encode(&self, w: &mut Writer) -> Result<(), MtsError> {
        w.try_constructed(Tag::SET, |w| {
            self.actual_recipient_name
                .encode_implicit(w, Tag::context(0).constructed())?;
            w.explicit(Tag::context(1).constructed(), |w| {
                self.report_type.encode(w)
            });
            if let Some(e) = &self.converted_eits {
                w.raw(e);
            }
            if let Some(n) = &self.originally_intended_recipient_name {
                n.encode_implicit(w, Tag::context(2).constructed())?;
            }
            if let Some(s) = &self.supplementary_information {
                put_str(
                    w,
                    Tag::context(3),
                    s,
                    UB_SUPPLEMENTARY_INFO_LENGTH,
                    "supplementary-information",
                )?;
            }
            encode_extensions(w, 4, &self.extensions);
            for u in &self.unknown {
                w.raw(u);
            }
            Ok(())
        })
    }
}

/// X.411 `ReportDeliveryArgument` (a SET including `COMPONENTS OF ReportDeliveryEnvelope`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportDeliveryArgument {
    /// `subject-submission-identifier`.
    pub subject_submission_identifier: MtsIdentifier,
    /// `content-identifier`.
    pub content_identifier: Option<String>,
    /// `content-type`.
    pub content_type: Option<ContentType>,
    /// `original-encoded-information-types`, kept whole.
    pub original_eits: Option<Vec<u8>>,
    /// `extensions [1]`.
    pub extensions: Vec<ExtensionField>,
    /// `per-recipient-fields` (an untagged SEQUENCE OF).
    pub per_recipient_fields: Vec<PerRecipientReportDeliveryFields>,
    /// `returned-content [0]`.
    pub returned_content: Option<Vec<u8>>,
    /// Elements of the SET we do not recognise, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl ReportDeliveryArgument {
    /// Decodes from the complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            tlv.expect(Tag::SET, "ReportDeliveryArgument")?;
            let mut r = tlv.children()?;
            let (mut id, mut ci, mut ct, mut eits, mut ext, mut recips, mut ret) =
                (None, None, None, None, None, None, None);
            let mut unknown = Vec::new();
            while let Some(t) = r.next()? {
                match (t.tag.class, t.tag.number) {
                    (Class::Application, 4) => once(
                        &mut id,
                        MtsIdentifier::decode(&t)?,
                        "subject-submission-identifier",
                    )?,
                    (Class::Application, 10) => once(
                        &mut ci,
                        t.string("content-identifier", UB_CONTENT_ID_LENGTH)?,
                        "content-identifier",
                    )?,
                    _ if ContentType::is_tag(t.tag) => {
                        once(&mut ct, ContentType::decode(&t)?, "content-type")?
                    }
                    (Class::Application, 5) => once(
                        &mut eits,
                        raw_bounded(
                            &t,
                            UB_ENCODED_INFORMATION_TYPES,
                            "original-encoded-information-types",
                        )?,
                        "original-encoded-information-types",
                    )?,
                    (Class::Context, 1) => once(&mut ext, decode_extensions(&t)?, "extensions")?,
                    (Class::Universal, 16) => {
                        let mut c = t.children()?;
                        let mut v = Vec::new();
                        while let Some(p) = c.next()? {
                            if v.len() >= UB_RECIPIENTS {
                                return Err(BerError::TooLarge("per-recipient-fields").into());
                            }
                            v.push(PerRecipientReportDeliveryFields::decode(&p)?);
                        }
                        if v.is_empty() {
                            return Err(BerError::Missing("per-recipient-fields element").into());
                        }
                        once(&mut recips, v, "per-recipient-fields")?
                    }
                    (Class::Context, 0) => {
                        once(&mut ret, t.octets()?.into_owned(), "returned-content")?
                    }
                    _ => keep_unknown(&mut unknown, &t)?,
                }
            }
            Ok(ReportDeliveryArgument {
                subject_submission_identifier: id
                    .ok_or(BerError::Missing("subject-submission-identifier"))?,
                content_identifier: ci,
                content_type: ct,
                original_eits: eits,
                extensions: ext.unwrap_or_default(),
                per_recipient_fields: recips.ok_or(BerError::Missing("per-recipient-fields"))?,
                returned_content: ret,
                unknown,
            })
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        check_count(self.per_recipient_fields.len(), "per-recipient-fields")?;
        encode_top(|w| {
            w.try_constructed(Tag::SET, |w| {
                self.subject_submission_identifier.encode(w)?;
                encode_content_identifier(w, &self.content_identifier)?;
                if let Some(ct) = &self.content_type {
                    ct.encode(w);
                }
                if let Some(e) = &self.original_eits {
                    w.raw(e);
                }
                encode_extensions(w, 1, &self.extensions);
                w.try_constructed(Tag::SEQUENCE, |w| {
                    for r in &self.per_recipient_fields {
                        r.encode(w)?;
                    }
                    Ok::<(), MtsError>(())
                })?;
                if let Some(c) = &self.returned_content {
                    w.octets(Tag::context(0), c);
                }
                for u in &self.unknown {
                    w.raw(u);
                }
                Ok(())
            })
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Values kept whole.

/// A value P3 carries but mswitch does not interpret (controls, registrations, waiting
/// information, delivery results): its complete BER element, checked to be one element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawValue(pub Vec<u8>);

impl RawValue {
    /// `NULL` (`05 00`): the result of cancel-deferred-delivery and register, the empty
    /// report-delivery result.
    pub fn null() -> Self {
        RawValue(vec![0x05, 0x00])
    }

    /// An empty SET (`31 00`): a message-delivery result or controls with nothing in them.
    pub fn empty_set() -> Self {
        RawValue(vec![0x31, 0x00])
    }

    /// Checks `bytes` are one BER element and keeps them.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        parse_one(bytes)?;
        Ok(RawValue(bytes.to_vec()))
    }
}

/// X.411 `MessageDeliveryResult` (recipient certificate, proof of delivery), kept whole.
pub type MessageDeliveryResult = RawValue;
/// X.411 `ReportDeliveryResult` (`NULL` or extensions), kept whole.
pub type ReportDeliveryResult = RawValue;

// ---------------------------------------------------------------------------------------------
// Errors.

/// X.411 `SecurityProblem` values used here (the list goes on to 35).
pub mod security_problem {
    /// `authentication-problem`.
    pub const AUTHENTICATION_PROBLEM: i64 = 1;
    /// `security-policy-violation`.
    pub const SECURITY_POLICY_VIOLATION: i64 = 21;
    /// `unauthorised-originator-name`.
    pub const UNAUTHORISED_ORIGINATOR_NAME: i64 = 29;
    /// `unauthorised-recipient-name`.
    pub const UNAUTHORISED_RECIPIENT_NAME: i64 = 30;
}

/// A P3 abstract error: its local code (see [`error_code`]) and parameter element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct P3Error {
    /// The error code.
    pub code: i64,
    /// The parameter's complete BER element (`NULL` for most errors).
    pub parameter: Option<Vec<u8>>,
}

impl P3Error {
    /// An error whose parameter is `NULL` (all but recipient-improperly-specified,
    /// security-error and operation-refused).
    pub fn new(code: i64) -> Self {
        P3Error {
            code,
            parameter: Some(vec![0x05, 0x00]),
        }
    }

    /// `recipient-improperly-specified` with the names of the recipients at fault.
    pub fn recipient_improperly_specified(recipients: &[ORName]) -> Result<Self, MtsError> {
        check_count(recipients.len(), "ImproperlySpecifiedRecipients")?;
        let parameter = encode_top(|w| {
            w.try_constructed(Tag::SEQUENCE, |w| {
                for n in recipients {
                    n.encode(w)?;
                }
                Ok(())
            })
        })?;
        Ok(P3Error {
            code: error_code::RECIPIENT_IMPROPERLY_SPECIFIED,
            parameter: Some(parameter),
        })
    }

    /// `security-error` with a [`security_problem`] value.
    pub fn security_error(problem: i64) -> Self {
        let mut w = Writer::new();
        w.integer(problem);
        P3Error {
            code: error_code::SECURITY_ERROR,
            parameter: Some(w.finish()),
        }
    }

    /// The recipients named by a `recipient-improperly-specified` error.
    pub fn improperly_specified_recipients(&self) -> Option<Result<Vec<ORName>, MtsError>> {
        if self.code != error_code::RECIPIENT_IMPROPERLY_SPECIFIED {
            return None;
        }
        let p = self.parameter.as_deref()?;
        Some(decode_top(p, |t| {
            sequence_of_names(
                &t.expect(Tag::SEQUENCE, "ImproperlySpecifiedRecipients")?,
                "ImproperlySpecifiedRecipients",
            )
        }))
    }
}

mod controls;
pub use controls::{
    Controls, DeliveryControlArgument, DeliveryControlResult, SubmissionControlArgument,
    SubmissionControlResult, UB_CONTENT_TYPES, Waiting, operations, waiting_messages,
};

#[cfg(test)]
mod tests;
