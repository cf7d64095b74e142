//! The MTA bind (X.411 §12.1.1): `MTABindArgument`, `MTABindResult` and the bind error,
//! derived with rasn. These are the values inside the ROS `bind-invoke [16]` /
//! `bind-result [17]` / `bind-error [18]` that ride in the RTSE RTORQ/RTOAC/RTORJ.
//!
//! Strong credentials (`[0] StrongCredentials`, with tokens and certificates) are kept
//! whole: mswitch authenticates MTAs with simple passwords only.

use rasn::types::{Any, Ia5String, OctetString};
use rasn::{AsnType, Decode, Encode, Encoder};

use super::{
    MtsError, UB_INTEGER_OPTIONS, UB_MTA_NAME_LENGTH, UB_PASSWORD_LENGTH, UB_SECURITY_LABELS,
    rasn_decode, rasn_encode,
};
use crate::ber::{BerError, Class, parse_one};

/// X.411 `Password`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Password {
    /// `ia5-string`.
    Ia5String(String),
    /// `octet-string`.
    OctetString(Vec<u8>),
}

impl Password {
    /// The password's octets, whichever form it came in.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Password::Ia5String(s) => s.as_bytes(),
            Password::OctetString(b) => b,
        }
    }
}

/// X.411 `Credentials` without `protected` (which the MTA bind excludes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// `simple Password`.
    Simple(Password),
    /// `strong [0] StrongCredentials`: the whole element, kept as received.
    Strong(StrongCredentials),
}

/// `StrongCredentials`, kept as its encoding (`[0]` element) since mswitch does not check
/// tokens or certificates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StrongCredentials(pub Vec<u8>);

/// X.411 `MTABindArgument`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MtaBindArgument {
    /// `unauthenticated NULL`.
    Null,
    /// `authenticated [1] SET`.
    Authenticated {
        /// `initiator-name [0] MTAName`.
        initiator_name: String,
        /// `initiator-credentials [1]`.
        initiator_credentials: Credentials,
        /// `security-context [2]`: the `SecurityLabel`s, each kept whole.
        security_context: Option<Vec<Vec<u8>>>,
    },
}

/// X.411 `MTABindResult`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MtaBindResult {
    /// `unauthenticated NULL`.
    Null,
    /// `authenticated [1] SET`.
    Authenticated {
        /// `responder-name [0] MTAName`.
        responder_name: String,
        /// `responder-credentials [1]`.
        responder_credentials: Credentials,
    },
}

/// The `mta-bind-error` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MtaBindError {
    /// `busy (0)`.
    Busy,
    /// `authentication-error (2)`.
    AuthenticationError,
    /// `unacceptable-dialogue-mode (3)`.
    UnacceptableDialogueMode,
    /// `unacceptable-security-context (4)`.
    UnacceptableSecurityContext,
    /// `inadequate-association-confidentiality (5)`.
    InadequateAssociationConfidentiality,
    /// Another value (0..=`ub-integer-options`).
    Other(i64),
}

#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(choice)]
enum PasswordWire {
    Ia5String(Ia5String),
    OctetString(OctetString),
}

#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(set)]
struct AuthenticatedArgumentWire {
    #[rasn(tag(0))]
    initiator_name: Ia5String,
    #[rasn(tag(explicit(1)))]
    initiator_credentials: Any,
    #[rasn(tag(2))]
    security_context: Option<Vec<Any>>,
}

#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(choice)]
enum MtaBindArgumentWire {
    Unauthenticated(()),
    #[rasn(tag(1))]
    Authenticated(AuthenticatedArgumentWire),
}

#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(set)]
struct AuthenticatedResultWire {
    #[rasn(tag(0))]
    responder_name: Ia5String,
    #[rasn(tag(explicit(1)))]
    responder_credentials: Any,
}

#[derive(AsnType, Decode, Encode, Debug, Clone, PartialEq)]
#[rasn(choice)]
enum MtaBindResultWire {
    Unauthenticated(()),
    #[rasn(tag(1))]
    Authenticated(AuthenticatedResultWire),
}

fn mta_name(s: Ia5String) -> Result<String, MtsError> {
    let b = s.as_iso646_bytes();
    if b.is_empty() || b.len() > UB_MTA_NAME_LENGTH {
        return Err(BerError::TooLarge("MTAName").into());
    }
    Ok(b.iter().map(|&c| char::from(c)).collect())
}

fn mta_name_wire(s: &str) -> Result<Ia5String, MtsError> {
    if s.is_empty() || s.len() > UB_MTA_NAME_LENGTH {
        return Err(MtsError::encode(
            "MTAName",
            "not 1 to ub-mta-name-length characters",
        ));
    }
    Ia5String::from_iso646_bytes(s.as_bytes())
        .map_err(|e| MtsError::encode("MTAName", e.to_string()))
}

impl Credentials {
    /// Simple credentials with an IA5String password.
    pub fn simple(password: impl Into<String>) -> Self {
        Credentials::Simple(Password::Ia5String(password.into()))
    }

    fn from_any(any: &Any) -> Result<Self, MtsError> {
        let bytes = any.as_bytes();
        let tlv = parse_one(bytes)?;
        if tlv.tag.class == Class::Context && tlv.tag.number == 0 {
            return Ok(Credentials::Strong(StrongCredentials(bytes.to_vec())));
        }
        let p = match rasn_decode::<PasswordWire>("Password", bytes)? {
            PasswordWire::Ia5String(s) => {
                Password::Ia5String(s.as_iso646_bytes().iter().map(|&c| char::from(c)).collect())
            }
            PasswordWire::OctetString(o) => Password::OctetString(o.to_vec()),
        };
        if p.bytes().len() > UB_PASSWORD_LENGTH {
            return Err(BerError::TooLarge("Password").into());
        }
        Ok(Credentials::Simple(p))
    }

    fn to_any(&self) -> Result<Any, MtsError> {
        match self {
            Credentials::Strong(s) => Ok(Any::new(s.0.clone())),
            Credentials::Simple(p) => {
                if p.bytes().len() > UB_PASSWORD_LENGTH {
                    return Err(MtsError::encode(
                        "Password",
                        "longer than ub-password-length",
                    ));
                }
                let wire = match p {
                    Password::Ia5String(s) => PasswordWire::Ia5String(
                        Ia5String::from_iso646_bytes(s.as_bytes())
                            .map_err(|e| MtsError::encode("Password", e.to_string()))?,
                    ),
                    Password::OctetString(b) => PasswordWire::OctetString(b.clone().into()),
                };
                Ok(Any::new(rasn_encode("Password", &wire)?))
            }
        }
    }
}

impl MtaBindArgument {
    /// Decodes the bind argument (the element inside the bind-invoke `[16]`).
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        match rasn_decode::<MtaBindArgumentWire>("MTABindArgument", bytes)? {
            MtaBindArgumentWire::Unauthenticated(()) => Ok(MtaBindArgument::Null),
            MtaBindArgumentWire::Authenticated(a) => {
                if a.security_context
                    .as_ref()
                    .is_some_and(|s| s.len() > UB_SECURITY_LABELS)
                {
                    return Err(BerError::TooLarge("security-context").into());
                }
                Ok(MtaBindArgument::Authenticated {
                    initiator_name: mta_name(a.initiator_name)?,
                    initiator_credentials: Credentials::from_any(&a.initiator_credentials)?,
                    security_context: a
                        .security_context
                        .map(|v| v.into_iter().map(Any::into_bytes).collect()),
                })
            }
        }
    }

    /// Encodes the bind argument.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        let wire = match self {
            MtaBindArgument::Null => MtaBindArgumentWire::Unauthenticated(()),
            MtaBindArgument::Authenticated {
                initiator_name,
                initiator_credentials,
                security_context,
            } => MtaBindArgumentWire::Authenticated(AuthenticatedArgumentWire {
                initiator_name: mta_name_wire(initiator_name)?,
                initiator_credentials: initiator_credentials.to_any()?,
                security_context: security_context
                    .as_ref()
                    .map(|v| v.iter().cloned().map(Any::new).collect()),
            }),
        };
        rasn_encode("MTABindArgument", &wire)
    }
}

impl MtaBindResult {
    /// Decodes the bind result (the element inside the bind-result `[17]`).
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        match rasn_decode::<MtaBindResultWire>("MTABindResult", bytes)? {
            MtaBindResultWire::Unauthenticated(()) => Ok(MtaBindResult::Null),
            MtaBindResultWire::Authenticated(a) => Ok(MtaBindResult::Authenticated {
                responder_name: mta_name(a.responder_name)?,
                responder_credentials: Credentials::from_any(&a.responder_credentials)?,
            }),
        }
    }

    /// Encodes the bind result.
    pub fn encode(&self) -> Result<Vec<u8>, MtsError> {
        let wire = match self {
            MtaBindResult::Null => MtaBindResultWire::Unauthenticated(()),
            MtaBindResult::Authenticated {
                responder_name,
                responder_credentials,
            } => MtaBindResultWire::Authenticated(AuthenticatedResultWire {
                responder_name: mta_name_wire(responder_name)?,
                responder_credentials: responder_credentials.to_any()?,
            }),
        };
        rasn_encode("MTABindResult", &wire)
    }
}

impl MtaBindError {
    /// The INTEGER value.
    pub fn code(self) -> i64 {
        match self {
            MtaBindError::Busy => 0,
            MtaBindError::AuthenticationError => 2,
            MtaBindError::UnacceptableDialogueMode => 3,
            MtaBindError::UnacceptableSecurityContext => 4,
            MtaBindError::InadequateAssociationConfidentiality => 5,
            MtaBindError::Other(v) => v,
        }
    }

    /// From the INTEGER value.
    pub fn from_code(v: i64) -> Self {
        match v {
            0 => MtaBindError::Busy,
            2 => MtaBindError::AuthenticationError,
            3 => MtaBindError::UnacceptableDialogueMode,
            4 => MtaBindError::UnacceptableSecurityContext,
            5 => MtaBindError::InadequateAssociationConfidentiality,
            v => MtaBindError::Other(v),
        }
    }

    /// Decodes the error parameter (an INTEGER, 0..=`ub-integer-options`).
    pub fn decode(bytes: &[u8]) -> Result<Self, MtsError> {
        let v: i64 = rasn_decode("mta-bind-error", bytes)?;
        if !(0..=UB_INTEGER_OPTIONS).contains(&v) {
            return Err(BerError::TooLarge("mta-bind-error").into());
        }
        Ok(Self::from_code(v))
    }

    /// Encodes the error parameter.
    pub fn encode(self) -> Result<Vec<u8>, MtsError> {
        rasn_encode("mta-bind-error", &self.code())
    }
}
