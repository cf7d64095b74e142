//! X.411 submission and delivery controls (§8.2.1.4, §8.3.1.3) and what an MTA holds back
//! under them (`Waiting`).
//!
//! `Controls ::= SET` carries, all optional: `restrict [0] BOOLEAN DEFAULT TRUE` (update the
//! controls or remove them), `permissible-operations [1] Operations`,
//! `permissible-maximum-content-length [2] ContentLength`, `permissible-lowest-priority
//! Priority`, `permissible-content-types [4] ContentTypes`,
//! `permissible-encoded-information-types` and `permissible-security-context [5]`. The 1994
//! delivery-control argument adds `extensions [6]`; the 1988 one (`DeliveryControls88`) sends
//! the encoded information types as an `EncodedInformationTypes` (`[APPLICATION 5]`) instead of
//! the 1994 `EncodedInformationTypesConstraints` (a SEQUENCE): both are accepted and kept whole,
//! as is the security context.

use crate::ber::{BerError, Class, Tag, Tlv, Writer};
use crate::mts::{
    BitString, ContentType, ExtensionField, MtsError, Priority, UB_CONTENT_LENGTH,
    UB_ENCODED_INFORMATION_TYPES,
};
use crate::mts::{int_in, keep_unknown, once, raw_bounded};

use super::{MAX_RAW_ELEMENT, decode_extensions, decode_top, encode_extensions, encode_top};

/// X.411 `ub-content-types`: the most content types in a `ContentTypes` set.
pub const UB_CONTENT_TYPES: usize = 1024;

/// The bits of X.411 `Operations` (permissible and waiting operations).
pub mod operations {
    /// `probe-submission-or-report-delivery (0)`.
    pub const PROBE_SUBMISSION_OR_REPORT_DELIVERY: usize = 0;
    /// `message-submission-or-message-delivery (1)`.
    pub const MESSAGE_SUBMISSION_OR_MESSAGE_DELIVERY: usize = 1;
}

/// The bits of X.411 `WaitingMessages`: why messages are held.
pub mod waiting_messages {
    /// `long-content (0)`: longer than the permissible maximum content length.
    pub const LONG_CONTENT: usize = 0;
    /// `low-priority (1)`: below the permissible lowest priority.
    pub const LOW_PRIORITY: usize = 1;
    /// `other-security-labels (2)`: outside the permissible security context.
    pub const OTHER_SECURITY_LABELS: usize = 2;
}

/// X.411 `Controls` (`SubmissionControls`, `DeliveryControls`): what the invoker permits the
/// other party to invoke on it. An absent control restricts nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Controls {
    /// `restrict [0] BOOLEAN DEFAULT TRUE`: `true` puts these controls in force, `false`
    /// removes every control.
    pub restrict: bool,
    /// `permissible-operations [1] Operations`: a one bit permits the operation (see
    /// [`operations`]).
    pub permissible_operations: Option<BitString>,
    /// `permissible-maximum-content-length [2] ContentLength`, in octets.
    pub permissible_maximum_content_length: Option<i64>,
    /// `permissible-lowest-priority Priority`.
    pub permissible_lowest_priority: Option<Priority>,
    /// `permissible-content-types [4] ContentTypes` (delivery controls only).
    pub permissible_content_types: Option<Vec<ContentType>>,
    /// `permissible-encoded-information-types`: the complete element, a 1994
    /// `EncodedInformationTypesConstraints` SEQUENCE or a 1988 `[APPLICATION 5]`
    /// `EncodedInformationTypes` (delivery controls only).
    pub permissible_encoded_information_types: Option<Vec<u8>>,
    /// `permissible-security-context [5] SecurityContext`, its complete element.
    pub permissible_security_context: Option<Vec<u8>>,
    /// Elements not recognised, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl Default for Controls {
    /// Controls that restrict nothing (`restrict` TRUE, nothing else).
    fn default() -> Self {
        Controls {
            restrict: true,
            permissible_operations: None,
            permissible_maximum_content_length: None,
            permissible_lowest_priority: None,
            permissible_content_types: None,
            permissible_encoded_information_types: None,
            permissible_security_context: None,
            unknown: Vec::new(),
        }
    }
}

impl Controls {
    /// Controls that remove every control in force (`restrict` FALSE).
    pub fn remove() -> Self {
        Controls {
            restrict: false,
            ..Controls::default()
        }
    }

    /// Whether an operation (a bit of [`operations`]) is permitted.
    pub fn permits_operation(&self, bit: usize) -> bool {
        self.permissible_operations
            .as_ref()
            .is_none_or(|ops| ops.bit(bit))
    }

    /// Takes one element of the SET; `Ok(false)` when it is not a control.
    fn take(&mut self, t: &Tlv<'_>, seen: &mut Seen) -> Result<bool, MtsError> {
        match (t.tag.class, t.tag.number) {
            (Class::Context, 0) => {
                once(&mut seen.restrict, (), "restrict")?;
                self.restrict = t.boolean()?;
            }
            (Class::Context, 1) => once(
                &mut self.permissible_operations,
                BitString::decode(t, "permissible-operations")?,
                "permissible-operations",
            )?,
            (Class::Context, 2) => once(
                &mut self.permissible_maximum_content_length,
                int_in(
                    t,
                    0,
                    UB_CONTENT_LENGTH,
                    "permissible-maximum-content-length",
                )?,
                "permissible-maximum-content-length",
            )?,
            (Class::Application, 7) => once(
                &mut self.permissible_lowest_priority,
                Priority::decode(t)?,
                "permissible-lowest-priority",
            )?,
            (Class::Context, 4) => once(
                &mut self.permissible_content_types,
                content_types(t, "permissible-content-types")?,
                "permissible-content-types",
            )?,
            (Class::Universal, 16) | (Class::Application, 5) => once(
                &mut self.permissible_encoded_information_types,
                raw_bounded(
                    t,
                    UB_ENCODED_INFORMATION_TYPES,
                    "permissible-encoded-information-types",
                )?,
                "permissible-encoded-information-types",
            )?,
            (Class::Context, 5) => once(
                &mut self.permissible_security_context,
                raw_bounded(t, MAX_RAW_ELEMENT, "permissible-security-context")?,
                "permissible-security-context",
            )?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Writes the elements (inside the SET), in ASN.1 order; `restrict` only when FALSE.
    fn put(&self, w: &mut Writer) {
        if !self.restrict {
            w.boolean_tagged(Tag::context(0), false);
        }
        if let Some(ops) = &self.permissible_operations {
            ops.encode(w, Tag::context(1));
        }
        if let Some(n) = self.permissible_maximum_content_length {
            w.integer_tagged(Tag::context(2), n);
        }
        if let Some(p) = self.permissible_lowest_priority {
            p.encode(w);
        }
        if let Some(types) = &self.permissible_content_types {
            put_content_types(w, 4, types);
        }
        if let Some(e) = &self.permissible_encoded_information_types {
            w.raw(e);
        }
        if let Some(s) = &self.permissible_security_context {
            w.raw(s);
        }
        for u in &self.unknown {
            w.raw(u);
        }
    }

    /// Decodes the SET; `extensions [6]` is decoded when `with_extensions`, else kept whole.
    fn decode_set(
        tlv: &Tlv<'_>,
        what: &'static str,
        with_extensions: bool,
    ) -> Result<(Self, Vec<ExtensionField>), MtsError> {
        tlv.expect(Tag::SET, what)?;
        let mut c = Controls::default();
        let mut seen = Seen::default();
        let mut ext = None;
        let mut r = tlv.children()?;
        while let Some(t) = r.next()? {
            if c.take(&t, &mut seen)? {
                continue;
            }
            if with_extensions && t.tag.same(Tag::context(6).constructed()) {
                once(&mut ext, decode_extensions(&t)?, "extensions")?;
            } else {
                keep_unknown(&mut c.unknown, &t)?;
            }
        }
        Ok((c, ext.unwrap_or_default()))
    }

    /// Decodes `SubmissionControls` from its complete element. X.411 leaves the content types
    /// and encoded information types out of submission controls: present, they are kept.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            Ok(Controls::decode_set(tlv, "Controls", false)?.0)
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.constructed(Tag::SET, |w| self.put(w));
            Ok(())
        })
    }
}

/// Which elements without a slot of their own were seen (duplicates are refused).
#[derive(Default)]
struct Seen {
    restrict: Option<()>,
}

fn content_types(t: &Tlv<'_>, what: &'static str) -> Result<Vec<ContentType>, MtsError> {
    let mut r = t.children()?;
    let mut v = Vec::new();
    while let Some(c) = r.next()? {
        if v.len() >= UB_CONTENT_TYPES {
            return Err(BerError::TooLarge(what).into());
        }
        v.push(ContentType::decode(&c)?);
    }
    Ok(v)
}

fn put_content_types(w: &mut Writer, n: u32, types: &[ContentType]) {
    w.constructed(Tag::context(n).constructed(), |w| {
        for c in types {
            c.encode(w);
        }
    });
}

/// X.411 `SubmissionControlArgument ::= SubmissionControls`.
pub type SubmissionControlArgument = Controls;

/// X.411 `DeliveryControlArgument ::= SET { COMPONENTS OF DeliveryControls, extensions [6] }`
/// (1988: `DeliveryControls88`, the same without extensions).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DeliveryControlArgument {
    /// The controls.
    pub controls: Controls,
    /// `extensions [6]`.
    pub extensions: Vec<ExtensionField>,
}

impl DeliveryControlArgument {
    /// Decodes from its complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            let (controls, extensions) =
                Controls::decode_set(tlv, "DeliveryControlArgument", true)?;
            Ok(DeliveryControlArgument {
                controls,
                extensions,
            })
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.constructed(Tag::SET, |w| {
                self.controls.put(w);
                encode_extensions(w, 6, &self.extensions);
            });
            Ok(())
        })
    }
}

/// X.411 `Waiting`: what the answering party holds back under the controls in force.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Waiting {
    /// `waiting-operations [0] Operations DEFAULT {}`: a one bit for each kind of operation
    /// held (see [`operations`]).
    pub waiting_operations: BitString,
    /// `waiting-messages [1] WaitingMessages DEFAULT {}`: why (see [`waiting_messages`]).
    pub waiting_messages: BitString,
    /// `waiting-content-types [2] SET OF ContentType DEFAULT {}`.
    pub waiting_content_types: Vec<ContentType>,
    /// `waiting-encoded-information-types EncodedInformationTypes`, its complete
    /// `[APPLICATION 5]` element.
    pub waiting_encoded_information_types: Option<Vec<u8>>,
    /// Elements not recognised, kept whole.
    pub unknown: Vec<Vec<u8>>,
}

impl Waiting {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.waiting_operations.bytes.iter().all(|b| *b == 0)
            && self.waiting_messages.bytes.iter().all(|b| *b == 0)
            && self.waiting_content_types.is_empty()
            && self.waiting_encoded_information_types.is_none()
    }

    /// Decodes the SET; `extensions [6]` is decoded when `with_extensions`, else kept whole.
    fn decode_set(
        tlv: &Tlv<'_>,
        what: &'static str,
        with_extensions: bool,
    ) -> Result<(Self, Vec<ExtensionField>), MtsError> {
        tlv.expect(Tag::SET, what)?;
        let (mut ops, mut msgs, mut types, mut eits, mut ext) = (None, None, None, None, None);
        let mut unknown = Vec::new();
        let mut r = tlv.children()?;
        while let Some(t) = r.next()? {
            match (t.tag.class, t.tag.number) {
                (Class::Context, 0) => once(
                    &mut ops,
                    BitString::decode(&t, "waiting-operations")?,
                    "waiting-operations",
                )?,
                (Class::Context, 1) => once(
                    &mut msgs,
                    BitString::decode(&t, "waiting-messages")?,
                    "waiting-messages",
                )?,
                (Class::Context, 2) => once(
                    &mut types,
                    content_types(&t, "waiting-content-types")?,
                    "waiting-content-types",
                )?,
                (Class::Application, 5) => once(
                    &mut eits,
                    raw_bounded(
                        &t,
                        UB_ENCODED_INFORMATION_TYPES,
                        "waiting-encoded-information-types",
                    )?,
                    "waiting-encoded-information-types",
                )?,
                (Class::Context, 6) if with_extensions && t.tag.constructed => {
                    once(&mut ext, decode_extensions(&t)?, "extensions")?
                }
                _ => keep_unknown(&mut unknown, &t)?,
            }
        }
        Ok((
            Waiting {
                waiting_operations: ops.unwrap_or_default(),
                waiting_messages: msgs.unwrap_or_default(),
                waiting_content_types: types.unwrap_or_default(),
                waiting_encoded_information_types: eits,
                unknown,
            },
            ext.unwrap_or_default(),
        ))
    }

    /// Writes the elements (inside the SET); empty DEFAULT values are left out.
    fn put(&self, w: &mut Writer) {
        if !self.waiting_operations.is_empty() {
            self.waiting_operations.encode(w, Tag::context(0));
        }
        if !self.waiting_messages.is_empty() {
            self.waiting_messages.encode(w, Tag::context(1));
        }
        if !self.waiting_content_types.is_empty() {
            put_content_types(w, 2, &self.waiting_content_types);
        }
        if let Some(e) = &self.waiting_encoded_information_types {
            w.raw(e);
        }
        for u in &self.unknown {
            w.raw(u);
        }
    }

    /// Decodes `SubmissionControlResult ::= Waiting` (and the 1988 delivery-control result)
    /// from its complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            Ok(Waiting::decode_set(tlv, "Waiting", false)?.0)
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.constructed(Tag::SET, |w| self.put(w));
            Ok(())
        })
    }
}

/// X.411 `SubmissionControlResult ::= Waiting`.
pub type SubmissionControlResult = Waiting;

/// X.411 `DeliveryControlResult ::= SET { COMPONENTS OF Waiting, extensions [6] }` (1988:
/// `Waiting`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DeliveryControlResult {
    /// What is held back.
    pub waiting: Waiting,
    /// `extensions [6]`.
    pub extensions: Vec<ExtensionField>,
}

impl DeliveryControlResult {
    /// Decodes from its complete element.
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        decode_top(bytes, |tlv| {
            let (waiting, extensions) = Waiting::decode_set(tlv, "DeliveryControlResult", true)?;
            Ok(DeliveryControlResult {
                waiting,
                extensions,
            })
        })
    }

    /// Encodes as a SET.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        encode_top(|w| {
            w.constructed(Tag::SET, |w| {
                self.waiting.put(w);
                encode_extensions(w, 6, &self.extensions);
            });
            Ok(())
        })
    }
}
