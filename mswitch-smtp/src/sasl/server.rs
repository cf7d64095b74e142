//! The server side of one AUTH exchange (RFC 4954 §4).
//!
//! [`ServerExchange::start`] takes the mechanism and the optional initial response of the AUTH
//! command and gives the first [`Step`]; each client line then goes to
//! [`ServerExchange::step`], until a step is [`Step::Success`] or [`Step::Failure`]. A
//! [`Step::Challenge`] is sent as `334 <challenge>`; a failure as [`AuthFailure::reply`].
//!
//! The exchanges, `C:` the client's lines (base64 decoded), `S:` the challenges:
//! ```text
//! PLAIN      C: [authzid] NUL authcid NUL passwd                           (RFC 4616 §2)
//! LOGIN      S: Username:   C: authcid   S: Password:   C: passwd
//! SCRAM      C: n,[a=authzid],n=authcid,r=c-nonce                         (RFC 5802 §5)
//!            S: r=c-nonce s-nonce,s=salt,i=iterations
//!            C: c=biws,r=c-nonce s-nonce,p=ClientProof
//!            S: v=ServerSignature   C: (empty)
//! EXTERNAL   C: [authzid]                                                 (RFC 4422 App. A)
//! ```
//! A mechanism whose first message comes from the client and that got no initial response
//! starts with an empty challenge (`334 `), LOGIN with `Username:`.
//!
//! Checks, in this order: the line (length, `*`, base64), the message syntax, the credentials,
//! then whether the authenticated identity may act as the requested authorization identity
//! ([`Credentials::may_act_as`]), so that a client that does not know the password learns
//! nothing about authorization.
//!
//! SCRAM with an unknown user runs to the end with a made-up salt (RFC 5802 §5.1) and then
//! fails like a wrong password. The made-up salt is a hash of the user name: the same on every
//! attempt, but anyone who has read this code can compute it and so tell that the user does not
//! exist.

use std::fmt;
use std::sync::Arc;

use mswitch_core::status::Status;

use super::codec::{self, Response, ResponseError, decode_response, encode};
use super::credentials::{Credentials, KEY_LEN, ScramStored, ct_eq, sha256};
use super::scram::{self, attribute, check_nonce, decode_saslname, is_extension};
use super::{MAX_IDENTITY_LEN, MAX_PASSWORD_LEN, MIN_ITERATIONS, MIN_NONCE_LEN, check_identity};

/// The `Username:` challenge of LOGIN, base64.
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";

/// The `Password:` challenge of LOGIN, base64.
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// What goes into the hash that makes up a salt for an unknown SCRAM user.
const MOCK_SALT_LABEL: &[u8] = b"mswitch SCRAM-SHA-256 mock salt\0";

/// Length of that made-up salt, in octets: the length [`crate::sasl::hash_password`] users
/// commonly choose, so it does not stand out.
const MOCK_SALT_LEN: usize = 16;

/// A mechanism the server side implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerMechanism {
    /// PLAIN (RFC 4616).
    Plain,
    /// LOGIN (draft-murchison-sasl-login): user name and password in two challenges.
    Login,
    /// SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding.
    ScramSha256,
    /// EXTERNAL (RFC 4422 Appendix A), with the TLS client certificate's identity.
    External,
}

impl ServerMechanism {
    /// Every mechanism, strongest first: the order to advertise them in.
    pub const ALL: [ServerMechanism; 4] = [
        ServerMechanism::External,
        ServerMechanism::ScramSha256,
        ServerMechanism::Plain,
        ServerMechanism::Login,
    ];

    /// The SASL name, as advertised in EHLO and given in AUTH.
    pub fn name(self) -> &'static str {
        match self {
            ServerMechanism::Plain => "PLAIN",
            ServerMechanism::Login => "LOGIN",
            ServerMechanism::ScramSha256 => scram::NAME,
            ServerMechanism::External => "EXTERNAL",
        }
    }

    /// The mechanism named `name`, compared without regard to ASCII case, as SMTP keywords
    /// are; `None` for one not implemented (answer 504 5.5.4, RFC 4954 §4).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Whether the mechanism may only be offered and used over TLS; without it, a server
    /// answers AUTH with 538 5.7.11 (RFC 4954 §6). True for PLAIN and LOGIN, which send the
    /// password itself, and for EXTERNAL, whose only identity here is the TLS client
    /// certificate. False for SCRAM-SHA-256, which never sends the password; without TLS an
    /// eavesdropper can still mount a dictionary attack on what it saw, so a policy may well
    /// require TLS for it too.
    pub fn needs_tls(self) -> bool {
        match self {
            ServerMechanism::Plain | ServerMechanism::Login | ServerMechanism::External => true,
            ServerMechanism::ScramSha256 => false,
        }
    }
}

impl fmt::Display for ServerMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the exchange wants sent next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Send `334 ` followed by this base64 text (possibly empty), then pass the client's next
    /// line to [`ServerExchange::step`].
    Challenge(String),
    /// Authenticated: send 235 2.7.0. The session acts as `authzid` if given, else as
    /// `authcid`.
    Success {
        /// The authenticated identity: the user name, or for EXTERNAL the TLS client identity.
        authcid: String,
        /// The authorization identity the client asked for, already checked with
        /// [`Credentials::may_act_as`]; `None` if it asked for none.
        authzid: Option<String>,
        /// Additional data with success (RFC 4422 §3.6), base64, for a protocol that carries it
        /// in its success reply. Always `None` here: SMTP gets the SCRAM server-final message
        /// as a last 334 challenge (see [`crate::sasl`]).
        final_data: Option<String>,
    },
    /// Refused: send [`AuthFailure::reply`]. The exchange is over.
    Failure(AuthFailure),
}

/// Why an exchange failed. The doc of each variant says whose fault it is; [`Self::reply`]
/// gives the SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The client sent `*` (RFC 4954 §4). The peer's choice.
    #[error("Authentication cancelled")]
    Cancelled,
    /// A line that is not base64 (RFC 4954 §4). Peer.
    #[error("Cannot decode response: not valid base64")]
    InvalidBase64,
    /// A line longer than [`crate::sasl::MAX_RESPONSE_LEN`] (RFC 4954 §6). Peer.
    #[error("Authentication exchange line is too long")]
    ResponseTooLong {
        /// Its length, in characters.
        len: usize,
    },
    /// A decoded message that breaks the mechanism's syntax or its limits. Peer.
    #[error("Malformed {mechanism} message: {reason}")]
    Malformed {
        /// The mechanism.
        mechanism: ServerMechanism,
        /// What is wrong.
        reason: &'static str,
    },
    /// The SCRAM client asked for channel binding (`p=`): SCRAM-SHA-256-PLUS is not
    /// implemented, nor advertised. Peer incompatible.
    #[error("Channel binding is not supported: use SCRAM-SHA-256")]
    ChannelBindingNotSupported,
    /// The SCRAM client sent a mandatory extension (`m=`), which RFC 5802 §5.1 says must fail.
    /// Peer incompatible.
    #[error("Mandatory SCRAM extension not supported")]
    MandatoryExtension,
    /// Unknown user, wrong password or wrong proof (RFC 4954 §6). Peer.
    #[error("Authentication credentials invalid")]
    InvalidCredentials,
    /// Authenticated, but not allowed to act as the authorization identity asked for. Peer.
    #[error("Authentication credentials invalid: not authorized to act as the requested identity")]
    AuthzidNotPermitted,
    /// EXTERNAL without a TLS client identity. Peer (or the TLS configuration).
    #[error("Authentication credentials invalid: no TLS client certificate")]
    NoExternalIdentity,
    /// The server nonce the caller gave is shorter than [`crate::sasl::MIN_NONCE_LEN`] or not
    /// printable ASCII without `,`. Local.
    #[error("Temporary authentication failure")]
    InvalidServerNonce,
    /// The [`Credentials`] gave a stored form whose salt or iteration count is outside the
    /// limits of this module. Local (configuration).
    #[error("Temporary authentication failure")]
    UnusableStoredCredentials,
    /// [`ServerExchange::step`] was called after the exchange ended. Local (the driver).
    #[error("Authentication exchange already finished")]
    ExchangeFinished,
}

impl AuthFailure {
    /// The reply to send.
    ///
    /// | failure | reply | source |
    /// |---|---|---|
    /// | cancelled with `*` | 501 5.0.0 | RFC 4954 §4 (501); RFC 3463 X.0.0 |
    /// | not base64, malformed message | 501 5.5.2 | RFC 4954 §4; RFC 3463 X.5.2 |
    /// | line too long | 500 5.5.6 | RFC 4954 §6 |
    /// | channel binding, mandatory extension | 504 5.5.4 | RFC 4954 §4 (504); RFC 3463 X.5.4 |
    /// | bad credentials, authzid refused, no TLS identity | 535 5.7.8 | RFC 4954 §6 |
    /// | bad server nonce, unusable stored form | 454 4.7.0 | RFC 4954 §6 |
    /// | exchange already finished | 503 5.5.1 | RFC 5321 §4.2.4; RFC 3463 X.5.1 |
    pub fn reply(&self) -> Status {
        Status::from(self)
    }

    /// Whether the failure is this side's fault (the driver or the configuration), not the
    /// client's: worth a log line at error level rather than a counted authentication
    /// failure.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            AuthFailure::InvalidServerNonce
                | AuthFailure::UnusableStoredCredentials
                | AuthFailure::ExchangeFinished
        )
    }
}

impl From<&AuthFailure> for Status {
    fn from(f: &AuthFailure) -> Self {
        use AuthFailure as F;
        let (code, enhanced) = match f {
            F::Cancelled => (501, (5, 0, 0)),
            F::InvalidBase64 | F::Malformed { .. } => (501, (5, 5, 2)),
            F::ResponseTooLong { .. } => (500, (5, 5, 6)),
            F::ChannelBindingNotSupported | F::MandatoryExtension => (504, (5, 5, 4)),
            F::InvalidCredentials | F::AuthzidNotPermitted | F::NoExternalIdentity => {
                (535, (5, 7, 8))
            }
            F::InvalidServerNonce | F::UnusableStoredCredentials => (454, (4, 7, 0)),
            F::ExchangeFinished => (503, (5, 5, 1)),
        };
        Status::new(code, enhanced, f.to_string())
    }
}

impl From<AuthFailure> for Status {
    fn from(f: AuthFailure) -> Self {
        Status::from(&f)
    }
}

/// One server-side AUTH exchange.
pub struct ServerExchange {
    mechanism: ServerMechanism,
    credentials: Arc<dyn Credentials>,
    state: State,
}

/// Where the exchange is.
enum State {
    /// PLAIN: waiting for the one message.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUsername,
    /// LOGIN: waiting for the password.
    LoginPassword { authcid: String },
    /// SCRAM: waiting for client-first-message.
    ScramClientFirst { server_nonce: String },
    /// SCRAM: waiting for client-final-message.
    ScramClientFinal(Box<ScramPending>),
    /// SCRAM: server-final-message sent, waiting for the empty response.
    ScramFinalAck {
        authcid: String,
        authzid: Option<String>,
    },
    /// EXTERNAL: waiting for the authorization identity.
    External { identity: Option<String> },
    /// Succeeded or failed.
    Done,
}

/// What SCRAM keeps between server-first-message and client-final-message.
struct ScramPending {
    gs2_header: String,
    authcid: String,
    authzid: Option<String>,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    stored: ScramStored,
    /// False when `stored` is made up for an unknown user: the proof is then refused.
    known: bool,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Plain => "Plain",
            State::LoginUsername => "LoginUsername",
            State::LoginPassword { .. } => "LoginPassword",
            State::ScramClientFirst { .. } => "ScramClientFirst",
            State::ScramClientFinal(_) => "ScramClientFinal",
            State::ScramFinalAck { .. } => "ScramFinalAck",
            State::External { .. } => "External",
            State::Done => "Done",
        }
    }
}

impl fmt::Debug for ServerExchange {
    /// Mechanism and state only: no credentials, no key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerExchange")
            .field("mechanism", &self.mechanism)
            .field("state", &self.state.name())
            .finish_non_exhaustive()
    }
}

impl ServerExchange {
    /// Starts an exchange for `AUTH <mechanism> [initial_response]`.
    ///
    /// - `initial_response`: the AUTH argument as received, base64 or `=`; `None` if absent.
    /// - `credentials`: the users.
    /// - `server_nonce`: for SCRAM-SHA-256, at least [`crate::sasl::MIN_NONCE_LEN`] printable
    ///   ASCII characters other than `,`, from a CSPRNG, new for every exchange; ignored by
    ///   the other mechanisms.
    /// - `tls_client_identity`: for EXTERNAL, the identity taken from the verified TLS client
    ///   certificate (which one, subject or subjectAltName, is the driver's policy); ignored by
    ///   the other mechanisms.
    ///
    /// Whether the mechanism may be used at all (advertised, TLS present, see
    /// [`ServerMechanism::needs_tls`]) is for the caller to decide before calling this.
    pub fn start(
        mechanism: ServerMechanism,
        initial_response: Option<&str>,
        credentials: Arc<dyn Credentials>,
        server_nonce: &str,
        tls_client_identity: Option<&str>,
    ) -> (Self, Step) {
        let state = match mechanism {
            ServerMechanism::Plain => State::Plain,
            ServerMechanism::Login => State::LoginUsername,
            ServerMechanism::ScramSha256 => {
                if server_nonce.len() < MIN_NONCE_LEN || check_nonce(server_nonce).is_err() {
                    let ex = ServerExchange {
                        mechanism,
                        credentials,
                        state: State::Done,
                    };
                    return (ex, Step::Failure(AuthFailure::InvalidServerNonce));
                }
                State::ScramClientFirst {
                    server_nonce: server_nonce.to_owned(),
                }
            }
            ServerMechanism::External => State::External {
                identity: tls_client_identity.map(str::to_owned),
            },
        };
        let mut ex = ServerExchange {
            mechanism,
            credentials,
            state,
        };
        let step = match initial_response {
            Some(ir) => ex.step(ir),
            None if mechanism == ServerMechanism::Login => {
                Step::Challenge(LOGIN_USERNAME_CHALLENGE.to_owned())
            }
            None => Step::Challenge(String::new()),
        };
        (ex, step)
    }

    /// The mechanism.
    pub fn mechanism(&self) -> ServerMechanism {
        self.mechanism
    }

    /// Whether the exchange has ended (a [`Step::Success`] or [`Step::Failure`] was given).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Takes the client's next line, without its CRLF.
    pub fn step(&mut self, client_response_b64: &str) -> Step {
        if self.is_finished() {
            return Step::Failure(AuthFailure::ExchangeFinished);
        }
        let data = match decode_response(client_response_b64) {
            Ok(Response::Data(data)) => data,
            Ok(Response::Cancel) => return self.fail(AuthFailure::Cancelled),
            Err(ResponseError::TooLong { len }) => {
                return self.fail(AuthFailure::ResponseTooLong { len });
            }
            Err(_) => return self.fail(AuthFailure::InvalidBase64),
        };
        match std::mem::replace(&mut self.state, State::Done) {
            State::Plain => self.plain(&data),
            State::LoginUsername => self.login_username(&data),
            State::LoginPassword { authcid } => self.login_password(authcid, &data),
            State::ScramClientFirst { server_nonce } => self.scram_first(&server_nonce, &data),
            State::ScramClientFinal(pending) => self.scram_final(*pending, &data),
            State::ScramFinalAck { authcid, authzid } => {
                if data.is_empty() {
                    success(authcid, authzid)
                } else {
                    self.malformed("expected an empty response to the server-final message")
                }
            }
            State::External { identity } => self.external(identity, &data),
            State::Done => Step::Failure(AuthFailure::ExchangeFinished),
        }
    }

    fn fail(&mut self, failure: AuthFailure) -> Step {
        self.state = State::Done;
        Step::Failure(failure)
    }

    fn malformed(&self, reason: &'static str) -> Step {
        Step::Failure(AuthFailure::Malformed {
            mechanism: self.mechanism,
            reason,
        })
    }

    /// Checks the password, then the authorization identity.
    fn check_password(&self, authcid: String, password: &str, authzid: Option<String>) -> Step {
        if !self.credentials.verify_password(&authcid, password) {
            return Step::Failure(AuthFailure::InvalidCredentials);
        }
        self.authorize(authcid, authzid)
    }

    fn authorize(&self, authcid: String, authzid: Option<String>) -> Step {
        if let Some(z) = &authzid
            && !self.credentials.may_act_as(&authcid, z)
        {
            return Step::Failure(AuthFailure::AuthzidNotPermitted);
        }
        success(authcid, authzid)
    }

    /// PLAIN (RFC 4616 §2): `[authzid] NUL authcid NUL passwd`, exactly two NULs, UTF-8, each
    /// field at most 255 octets, authcid and passwd not empty.
    fn plain(&mut self, data: &[u8]) -> Step {
        let mut fields = data.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(passwd), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return self.malformed("expected exactly two NUL separators");
        };
        if authzid.len() > MAX_IDENTITY_LEN || authcid.len() > MAX_IDENTITY_LEN {
            return self.malformed("identity longer than 255 octets");
        }
        if passwd.len() > MAX_PASSWORD_LEN {
            return self.malformed("password longer than 255 octets");
        }
        let (Ok(authzid), Ok(authcid), Ok(passwd)) = (
            std::str::from_utf8(authzid),
            std::str::from_utf8(authcid),
            std::str::from_utf8(passwd),
        ) else {
            return self.malformed("not UTF-8");
        };
        if passwd.is_empty() {
            return self.malformed("empty password");
        }
        if let Err(reason) = check_identity(authcid) {
            return self.malformed(reason);
        }
        let authzid = if authzid.is_empty() {
            None
        } else if let Err(reason) = check_identity(authzid) {
            return self.malformed(reason);
        } else {
            Some(authzid.to_owned())
        };
        self.check_password(authcid.to_owned(), passwd, authzid)
    }

    fn login_username(&mut self, data: &[u8]) -> Step {
        let Ok(authcid) = std::str::from_utf8(data) else {
            return self.malformed("user name is not UTF-8");
        };
        if let Err(reason) = check_identity(authcid) {
            return self.malformed(reason);
        }
        self.state = State::LoginPassword {
            authcid: authcid.to_owned(),
        };
        Step::Challenge(LOGIN_PASSWORD_CHALLENGE.to_owned())
    }

    fn login_password(&mut self, authcid: String, data: &[u8]) -> Step {
        if data.len() > MAX_PASSWORD_LEN {
            return self.malformed("password longer than 255 octets");
        }
        let Ok(passwd) = std::str::from_utf8(data) else {
            return self.malformed("password is not UTF-8");
        };
        if passwd.is_empty() {
            return self.malformed("empty password");
        }
        self.check_password(authcid, passwd, None)
    }

    /// EXTERNAL (RFC 4422 Appendix A): the message is the authorization identity, possibly
    /// empty; the authentication identity is the TLS client's.
    fn external(&mut self, identity: Option<String>, data: &[u8]) -> Step {
        let Ok(authzid) = std::str::from_utf8(data) else {
            return self.malformed("authorization identity is not UTF-8");
        };
        let authzid = if authzid.is_empty() {
            None
        } else if let Err(reason) = check_identity(authzid) {
            return self.malformed(reason);
        } else {
            Some(authzid.to_owned())
        };
        match identity {
            Some(identity) => self.authorize(identity, authzid),
            None => Step::Failure(AuthFailure::NoExternalIdentity),
        }
    }

    /// SCRAM client-first-message (RFC 5802 §7):
    /// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`.
    fn scram_first(&mut self, server_nonce: &str, data: &[u8]) -> Step {
        let Ok(message) = std::str::from_utf8(data) else {
            return self.malformed("not UTF-8");
        };
        let mut header = message.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (header.next(), header.next(), header.next())
        else {
            return self.malformed("expected a GS2 header and client-first-message-bare");
        };
        match flag {
            // "y": the client could bind but thinks the server cannot. The server offers no
            // -PLUS mechanism, so that is right, and no downgrade.
            "n" | "y" => {}
            _ if flag.starts_with("p=") => {
                return Step::Failure(AuthFailure::ChannelBindingNotSupported);
            }
            _ => return self.malformed("GS2 channel binding flag must be n, y or p="),
        }
        let gs2_header = message[..flag.len() + authzid.len() + 2].to_owned();
        let authzid = if authzid.is_empty() {
            None
        } else {
            let Some(name) = attribute(authzid, b'a') else {
                return self.malformed("expected a= in the GS2 header");
            };
            match decode_saslname(name) {
                Ok(name) if check_identity(&name).is_ok() => Some(name),
                Ok(_) => return self.malformed("invalid authorization identity"),
                Err(reason) => return self.malformed(reason),
            }
        };

        let mut parts = bare.split(',');
        let first = parts.next().unwrap_or_default();
        if attribute(first, b'm').is_some() {
            return Step::Failure(AuthFailure::MandatoryExtension);
        }
        let Some(name) = attribute(first, b'n') else {
            return self.malformed("expected n= (the user name)");
        };
        let authcid = match decode_saslname(name) {
            Ok(name) => name,
            Err(reason) => return self.malformed(reason),
        };
        if let Err(reason) = check_identity(&authcid) {
            return self.malformed(reason);
        }
        let Some(client_nonce) = parts.next().and_then(|p| attribute(p, b'r')) else {
            return self.malformed("expected r= (the nonce) after the user name");
        };
        if let Err(reason) = check_nonce(client_nonce) {
            return self.malformed(reason);
        }
        if !parts.all(is_extension) {
            return self.malformed("invalid attribute after the nonce");
        }

        let (stored, known) = match self.credentials.scram_sha256(&authcid) {
            Some(stored) if stored.usable_iterations().is_some() => (stored, true),
            Some(_) => return Step::Failure(AuthFailure::UnusableStoredCredentials),
            None => (mock_stored(&authcid), false),
        };
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            encode(&stored.salt),
            stored.iterations
        );
        let challenge = encode(server_first.as_bytes());
        self.state = State::ScramClientFinal(Box::new(ScramPending {
            gs2_header,
            authcid,
            authzid,
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
            stored,
            known,
        }));
        Step::Challenge(challenge)
    }

    /// SCRAM client-final-message (RFC 5802 §7):
    /// `channel-binding "," nonce ["," extensions] "," proof`.
    fn scram_final(&mut self, p: ScramPending, data: &[u8]) -> Step {
        let Ok(message) = std::str::from_utf8(data) else {
            return self.malformed("not UTF-8");
        };
        let Some((without_proof, proof)) = message.rsplit_once(",p=") else {
            return self.malformed("expected the proof p= last");
        };
        let mut parts = without_proof.split(',');
        let binding = parts
            .next()
            .and_then(|c| attribute(c, b'c'))
            .and_then(codec::decode);
        // Without channel binding, c= carries the GS2 header, nothing more (RFC 5802 §7).
        if binding.as_deref() != Some(p.gs2_header.as_bytes()) {
            return self.malformed("c= does not carry the GS2 header of the first message");
        }
        if parts.next().and_then(|r| attribute(r, b'r')) != Some(p.nonce.as_str()) {
            return self.malformed("r= is not the nonce of the server-first message");
        }
        if !parts.all(is_extension) {
            return self.malformed("invalid attribute before the proof");
        }
        let Some(proof) = codec::decode(proof).and_then(|v| <[u8; KEY_LEN]>::try_from(v).ok())
        else {
            return self.malformed("p= is not 32 octets of base64");
        };

        let auth_message =
            scram::auth_message(&p.client_first_bare, &p.server_first, without_proof);
        let client_key = scram::xor_client_signature(&proof, &p.stored.stored_key, &auth_message);
        let proof_ok = ct_eq(&sha256(&client_key), &p.stored.stored_key);
        if !(proof_ok && p.known) {
            return Step::Failure(AuthFailure::InvalidCredentials);
        }
        if let Some(z) = &p.authzid
            && !self.credentials.may_act_as(&p.authcid, z)
        {
            return Step::Failure(AuthFailure::AuthzidNotPermitted);
        }
        let signature = scram::server_signature(&p.stored.server_key, &auth_message);
        let server_final = format!("v={}", encode(&signature));
        self.state = State::ScramFinalAck {
            authcid: p.authcid,
            authzid: p.authzid,
        };
        Step::Challenge(encode(server_final.as_bytes()))
    }
}

fn success(authcid: String, authzid: Option<String>) -> Step {
    Step::Success {
        authcid,
        authzid,
        final_data: None,
    }
}

/// The stored form made up for an unknown SCRAM user: a salt that depends only on the name,
/// the minimum iteration count, and keys no proof can match (the exchange also refuses it by
/// the `known` flag).
fn mock_stored(authcid: &str) -> ScramStored {
    let mut input = MOCK_SALT_LABEL.to_vec();
    input.extend_from_slice(authcid.as_bytes());
    let salt = sha256(&input)[..MOCK_SALT_LEN].to_vec();
    ScramStored::new(salt, MIN_ITERATIONS, [0; KEY_LEN], [0; KEY_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::PasswordFile;
    use crate::sasl::codec::decode;

    /// RFC 7677 §3: user "user", password "pencil", salt, 4096 iterations, the two nonces.
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
        p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
    const NONCE: &str = "server-nonce-0123456789";

    /// Users: "user" / "pencil" (the RFC 7677 salt), "admin" / "secret", and "boss", who may
    /// act as "user".
    struct Users(PasswordFile);

    impl Credentials for Users {
        fn scram_sha256(&self, authcid: &str) -> Option<ScramStored> {
            self.0.scram_sha256(authcid)
        }
        fn may_act_as(&self, authcid: &str, authzid: &str) -> bool {
            authzid.is_empty() || authzid == authcid || (authcid == "boss" && authzid == "user")
        }
    }

    fn users() -> Arc<dyn Credentials> {
        let salt = decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap_or_default();
        let mut text = String::new();
        for (name, password) in [("user", "pencil"), ("admin", "secret"), ("boss", "b0ss")] {
            let Ok(v) = crate::sasl::hash_password(password, &salt, 4096) else {
                panic!("hash_password failed");
            };
            text.push_str(&format!("{name}:{v}\n"));
        }
        match PasswordFile::parse(&text) {
            Ok(f) => Arc::new(Users(f)),
            Err(e) => panic!("{e}"),
        }
    }

    fn b64(s: &str) -> String {
        encode(s.as_bytes())
    }

    fn challenge_text(step: &Step) -> String {
        let Step::Challenge(c) = step else {
            panic!("expected a challenge, got {step:?}");
        };
        let Some(bytes) = decode(c) else {
            panic!("challenge {c:?} is not base64");
        };
        String::from_utf8(bytes).unwrap_or_default()
    }

    fn start(mech: ServerMechanism, ir: Option<&str>) -> (ServerExchange, Step) {
        ServerExchange::start(mech, ir, users(), NONCE, None)
    }

    fn assert_success(step: &Step, who: &str, as_whom: Option<&str>) {
        let Step::Success {
            authcid,
            authzid,
            final_data,
        } = step
        else {
            panic!("expected success, got {step:?}");
        };
        assert_eq!(authcid, who);
        assert_eq!(authzid.as_deref(), as_whom);
        assert_eq!(*final_data, None);
    }

    fn assert_failure(step: &Step, expected: &AuthFailure) {
        assert_eq!(step, &Step::Failure(expected.clone()));
    }

    fn assert_malformed(step: &Step) {
        assert!(
            matches!(step, Step::Failure(AuthFailure::Malformed { .. })),
            "expected Malformed, got {step:?}"
        );
    }

    #[test]
    fn scram_rfc_7677_example_byte_for_byte() {
        let (mut ex, step) = ServerExchange::start(
            ServerMechanism::ScramSha256,
            Some(&b64(CLIENT_FIRST)),
            users(),
            SERVER_NONCE,
            None,
        );
        assert_eq!(step, Step::Challenge(b64(SERVER_FIRST)));
        assert_eq!(challenge_text(&step), SERVER_FIRST);
        let step = ex.step(&b64(CLIENT_FINAL));
        assert_eq!(challenge_text(&step), SERVER_FINAL);
        assert!(!ex.is_finished());
        assert_success(&ex.step(""), "user", None);
        assert!(ex.is_finished());
        assert_failure(&ex.step(""), &AuthFailure::ExchangeFinished);
    }

    #[test]
    fn scram_without_initial_response() {
        let (mut ex, step) = ServerExchange::start(
            ServerMechanism::ScramSha256,
            None,
            users(),
            SERVER_NONCE,
            None,
        );
        assert_eq!(step, Step::Challenge(String::new()));
        assert_eq!(challenge_text(&ex.step(&b64(CLIENT_FIRST))), SERVER_FIRST);
        assert_eq!(challenge_text(&ex.step(&b64(CLIENT_FINAL))), SERVER_FINAL);
        // "=" is accepted as the empty response too.
        assert_success(&ex.step("="), "user", None);
    }

    #[test]
    fn scram_wrong_proof() {
        let (mut ex, _) = ServerExchange::start(
            ServerMechanism::ScramSha256,
            Some(&b64(CLIENT_FIRST)),
            users(),
            SERVER_NONCE,
            None,
        );
        let forged = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
        assert_failure(&ex.step(&b64(&forged)), &AuthFailure::InvalidCredentials);
        assert!(ex.is_finished());
    }

    #[test]
    fn scram_unknown_user_gets_a_stable_salt_then_fails() {
        let first = "n,,n=nobody,r=rOprNGfwEbeRWgbNEkqO";
        let (_, one) = start(ServerMechanism::ScramSha256, Some(&b64(first)));
        let (mut ex, two) = start(ServerMechanism::ScramSha256, Some(&b64(first)));
        assert_eq!(
            one, two,
            "the made-up salt must not change between attempts"
        );
        let server_first = challenge_text(&two);
        assert!(server_first.contains(",i=4096"), "{server_first}");
        let nonce = server_first
            .split(',')
            .next()
            .and_then(|r| r.strip_prefix("r="))
            .unwrap_or_default();
        let fin = format!("c=biws,r={nonce},p={}", encode(&[0; 32]));
        assert_failure(&ex.step(&b64(&fin)), &AuthFailure::InvalidCredentials);
    }

    #[test]
    fn scram_malformed_messages() {
        for first in [
            "n,,n=user",              // no nonce
            "n,,r=abc,n=user",        // wrong order
            "n,n=user,r=abc",         // no GS2 header
            "x,,n=user,r=abc",        // bad flag
            "n,b=admin,n=user,r=abc", // bad authzid attribute
            "n,,n=us=er,r=abc",       // bad saslname escape
            "n,,n=,r=abc",            // empty user
            "n,,n=user,r=",           // empty nonce
            "n,,n=user,r=a b",        // space in nonce
            "n,,n=user,r=abc,1=x",    // bad extension
            "n,,n=user,r=abc,",       // empty attribute
            "n,,n=u\u{1}ser,r=abc",   // control character in the user name
        ] {
            let (ex, step) = start(ServerMechanism::ScramSha256, Some(&b64(first)));
            assert_malformed(&step);
            assert!(ex.is_finished(), "{first}");
        }
        let (_, step) = start(
            ServerMechanism::ScramSha256,
            Some(&encode(b"n,,n=\xff,r=a")),
        );
        assert_malformed(&step);
    }

    #[test]
    fn scram_malformed_final_messages() {
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        for fin in [
            format!("c=biws,r={nonce}"),                      // no proof
            format!("c=eSws,r={nonce},{proof}"),              // "y,," instead of "n,,"
            format!("c=biws,r={nonce}x,{proof}"),             // other nonce
            format!("c=biws,r=rOprNGfwEbeRWgbNEkqO,{proof}"), // client nonce only
            format!("r={nonce},c=biws,{proof}"),              // order
            format!("c=biws,r={nonce},p=AAAA"),               // short proof
            format!("c=biws,r={nonce},p=%%%%"),               // proof not base64
            format!("c=biws,r={nonce},9=x,{proof}"),          // bad extension
        ] {
            let (mut ex, _) = ServerExchange::start(
                ServerMechanism::ScramSha256,
                Some(&b64(CLIENT_FIRST)),
                users(),
                SERVER_NONCE,
                None,
            );
            assert_malformed(&ex.step(&b64(&fin)));
        }
        // A known extension-like attribute before the proof is skipped.
        let (mut ex, _) = ServerExchange::start(
            ServerMechanism::ScramSha256,
            Some(&b64(CLIENT_FIRST)),
            users(),
            SERVER_NONCE,
            None,
        );
        // It is part of AuthMessage, so the RFC proof no longer matches: a credentials
        // failure, not a syntax one.
        let fin = format!("c=biws,r={nonce},x=1,{proof}");
        assert_failure(&ex.step(&b64(&fin)), &AuthFailure::InvalidCredentials);
    }

    #[test]
    fn scram_final_ack_must_be_empty() {
        let (mut ex, _) = ServerExchange::start(
            ServerMechanism::ScramSha256,
            Some(&b64(CLIENT_FIRST)),
            users(),
            SERVER_NONCE,
            None,
        );
        let _ = ex.step(&b64(CLIENT_FINAL));
        assert_malformed(&ex.step(&b64("again")));
    }

    #[test]
    fn scram_channel_binding_and_mandatory_extensions_refused() {
        let (_, step) = start(
            ServerMechanism::ScramSha256,
            Some(&b64("p=tls-exporter,,n=user,r=abc")),
        );
        assert_failure(&step, &AuthFailure::ChannelBindingNotSupported);
        assert_eq!(AuthFailure::ChannelBindingNotSupported.reply().code, 504);
        let (_, step) = start(
            ServerMechanism::ScramSha256,
            Some(&b64("n,,m=ext,n=user,r=abc")),
        );
        assert_failure(&step, &AuthFailure::MandatoryExtension);
        // "y": the client supports binding but believes the server does not; accepted.
        let (_, step) = start(ServerMechanism::ScramSha256, Some(&b64("y,,n=user,r=abc")));
        assert!(challenge_text(&step).starts_with("r=abc"));
    }

    #[test]
    fn scram_authzid() {
        // "boss" may act as "user" but not as "admin"; the proof itself is not reached when
        // the header is refused, so use the round trip in client.rs for the happy path.
        let (_, step) = start(
            ServerMechanism::ScramSha256,
            Some(&b64("n,a=us=3Der,n=boss,r=abcdef")),
        );
        assert!(matches!(step, Step::Challenge(_)), "{step:?}");
        let (_, step) = start(
            ServerMechanism::ScramSha256,
            Some(&b64("n,a=,n=boss,r=abcdef")),
        );
        assert_malformed(&step);
    }

    #[test]
    fn bad_server_nonce_is_a_local_failure() {
        for nonce in ["short", "has,comma-0123456789", "has space 0123456789"] {
            let (ex, step) = ServerExchange::start(
                ServerMechanism::ScramSha256,
                Some(&b64(CLIENT_FIRST)),
                users(),
                nonce,
                None,
            );
            assert_failure(&step, &AuthFailure::InvalidServerNonce);
            assert!(ex.is_finished());
            assert!(AuthFailure::InvalidServerNonce.is_local());
            assert_eq!(AuthFailure::InvalidServerNonce.reply().code, 454);
        }
        // PLAIN does not use the nonce.
        let (_, step) = ServerExchange::start(
            ServerMechanism::Plain,
            Some(&b64("\0user\0pencil")),
            users(),
            "",
            None,
        );
        assert_success(&step, "user", None);
    }

    #[test]
    fn unusable_stored_form_is_a_local_failure() {
        struct Weak;
        impl Credentials for Weak {
            fn scram_sha256(&self, _: &str) -> Option<ScramStored> {
                Some(ScramStored::new(vec![1; 16], 1, [0; 32], [0; 32]))
            }
        }
        let (_, step) = ServerExchange::start(
            ServerMechanism::ScramSha256,
            Some(&b64(CLIENT_FIRST)),
            Arc::new(Weak),
            SERVER_NONCE,
            None,
        );
        assert_failure(&step, &AuthFailure::UnusableStoredCredentials);
        let (_, step) = ServerExchange::start(
            ServerMechanism::Plain,
            Some(&b64("\0user\0pencil")),
            Arc::new(Weak),
            SERVER_NONCE,
            None,
        );
        assert_failure(&step, &AuthFailure::InvalidCredentials);
    }

    #[test]
    fn plain() {
        let (_, step) = start(ServerMechanism::Plain, Some(&b64("\0user\0pencil")));
        assert_success(&step, "user", None);
        let (_, step) = start(ServerMechanism::Plain, Some(&b64("user\0user\0pencil")));
        assert_success(&step, "user", Some("user"));
        let (_, step) = start(ServerMechanism::Plain, Some(&b64("user\0boss\0b0ss")));
        assert_success(&step, "boss", Some("user"));
        // Without initial response: an empty challenge first.
        let (mut ex, step) = start(ServerMechanism::Plain, None);
        assert_eq!(step, Step::Challenge(String::new()));
        assert_success(&ex.step(&b64("\0admin\0secret")), "admin", None);
    }

    #[test]
    fn plain_wrong_password_and_unknown_user() {
        for msg in [
            "\0user\0pencil2",
            "\0user\0Pencil",
            "\0nobody\0pencil",
            "\0User\0pencil",
        ] {
            let (ex, step) = start(ServerMechanism::Plain, Some(&b64(msg)));
            assert_failure(&step, &AuthFailure::InvalidCredentials);
            assert!(ex.is_finished());
        }
        let reply = AuthFailure::InvalidCredentials.reply();
        assert_eq!(
            (reply.code, reply.enhanced.to_string()),
            (535, "5.7.8".to_owned())
        );
    }

    #[test]
    fn plain_forbidden_authzid() {
        let (_, step) = start(ServerMechanism::Plain, Some(&b64("admin\0user\0pencil")));
        assert_failure(&step, &AuthFailure::AuthzidNotPermitted);
        let reply = AuthFailure::AuthzidNotPermitted.reply();
        assert_eq!(
            (reply.code, reply.enhanced.to_string()),
            (535, "5.7.8".to_owned())
        );
        // With a wrong password, the authzid is not even looked at.
        let (_, step) = start(ServerMechanism::Plain, Some(&b64("admin\0user\0wrong")));
        assert_failure(&step, &AuthFailure::InvalidCredentials);
    }

    #[test]
    fn plain_malformed() {
        for msg in [
            "\0user\0pencil\0",     // three NULs
            "a\0\0user\0pencil",    // three NULs
            "user\0pencil",         // one NUL
            "userpencil",           // none
            "\0\0pencil",           // empty authcid
            "\0user\0",             // empty password
            "",                     // empty message
            "\0us\u{1b}er\0pencil", // control character
        ] {
            let (_, step) = start(ServerMechanism::Plain, Some(&b64(msg)));
            assert_malformed(&step);
        }
        let (_, step) = start(ServerMechanism::Plain, Some("="));
        assert_malformed(&step);
        let (_, step) = start(ServerMechanism::Plain, Some(&encode(b"\0us\xffer\0pencil")));
        assert_malformed(&step);
        let reply = AuthFailure::Malformed {
            mechanism: ServerMechanism::Plain,
            reason: "x",
        }
        .reply();
        assert_eq!(
            (reply.code, reply.enhanced.to_string()),
            (501, "5.5.2".to_owned())
        );
    }

    #[test]
    fn plain_field_limits() {
        let long = "x".repeat(MAX_IDENTITY_LEN + 1);
        let (_, step) = start(ServerMechanism::Plain, Some(&b64(&format!("\0{long}\0p"))));
        assert_malformed(&step);
        let (_, step) = start(
            ServerMechanism::Plain,
            Some(&b64(&format!("{long}\0user\0p"))),
        );
        assert_malformed(&step);
        let long = "x".repeat(MAX_PASSWORD_LEN + 1);
        let (_, step) = start(
            ServerMechanism::Plain,
            Some(&b64(&format!("\0user\0{long}"))),
        );
        assert_malformed(&step);
        // At the limit: well-formed, so it reaches the credentials check.
        let ok = "x".repeat(MAX_IDENTITY_LEN);
        let (_, step) = start(ServerMechanism::Plain, Some(&b64(&format!("\0{ok}\0{ok}"))));
        assert_failure(&step, &AuthFailure::InvalidCredentials);
    }

    #[test]
    fn login() {
        let (mut ex, step) = start(ServerMechanism::Login, None);
        assert_eq!(step, Step::Challenge("VXNlcm5hbWU6".to_owned()));
        assert_eq!(challenge_text(&step), "Username:");
        let step = ex.step(&b64("user"));
        assert_eq!(step, Step::Challenge("UGFzc3dvcmQ6".to_owned()));
        assert_eq!(challenge_text(&step), "Password:");
        assert_success(&ex.step(&b64("pencil")), "user", None);
        // With the user name as initial response.
        let (mut ex, step) = start(ServerMechanism::Login, Some(&b64("admin")));
        assert_eq!(step, Step::Challenge(LOGIN_PASSWORD_CHALLENGE.to_owned()));
        assert_success(&ex.step(&b64("secret")), "admin", None);
    }

    #[test]
    fn login_wrong_password_and_malformed() {
        let (mut ex, _) = start(ServerMechanism::Login, Some(&b64("user")));
        assert_failure(&ex.step(&b64("pencil!")), &AuthFailure::InvalidCredentials);
        let (mut ex, _) = start(ServerMechanism::Login, None);
        assert_malformed(&ex.step(""));
        let (mut ex, _) = start(ServerMechanism::Login, Some(&b64("user")));
        assert_malformed(&ex.step(""));
        let (mut ex, _) = start(ServerMechanism::Login, Some(&b64("user")));
        assert_malformed(&ex.step(&b64(&"p".repeat(MAX_PASSWORD_LEN + 1))));
    }

    #[test]
    fn bad_base64() {
        let (_, step) = start(ServerMechanism::Plain, Some("AHVzZXIAcGVuY2ls=="));
        assert_failure(&step, &AuthFailure::InvalidBase64);
        let (mut ex, _) = start(ServerMechanism::Login, None);
        assert_failure(&ex.step("dXNl cg=="), &AuthFailure::InvalidBase64);
        assert!(ex.is_finished());
        let reply = AuthFailure::InvalidBase64.reply();
        assert_eq!(
            (reply.code, reply.enhanced.to_string()),
            (501, "5.5.2".to_owned())
        );
    }

    #[test]
    fn cancel() {
        for mech in ServerMechanism::ALL {
            let (mut ex, step) = ServerExchange::start(mech, None, users(), NONCE, Some("cn"));
            assert!(matches!(step, Step::Challenge(_)), "{mech}: {step:?}");
            assert_failure(&ex.step("*"), &AuthFailure::Cancelled);
            assert!(ex.is_finished());
        }
        let (mut ex, _) = start(ServerMechanism::Login, Some(&b64("user")));
        assert_failure(&ex.step("*"), &AuthFailure::Cancelled);
        let reply = AuthFailure::Cancelled.reply();
        assert_eq!(
            (reply.code, reply.enhanced.to_string()),
            (501, "5.0.0".to_owned())
        );
    }

    #[test]
    fn over_long_response() {
        let line = "A".repeat(crate::sasl::MAX_RESPONSE_LEN + 4);
        let (mut ex, _) = start(ServerMechanism::Plain, None);
        let step = ex.step(&line);
        assert_failure(&step, &AuthFailure::ResponseTooLong { len: line.len() });
        let reply = AuthFailure::ResponseTooLong { len: 0 }.reply();
        assert_eq!(
            (reply.code, reply.enhanced.to_string()),
            (500, "5.5.6".to_owned())
        );
        let (_, step) = start(ServerMechanism::ScramSha256, Some(&line));
        assert_failure(&step, &AuthFailure::ResponseTooLong { len: line.len() });
    }

    #[test]
    fn external_with_tls_identity() {
        let start = |ir: Option<&str>, id: Option<&str>| {
            ServerExchange::start(ServerMechanism::External, ir, users(), "", id)
        };
        let (_, step) = start(Some("="), Some("boss"));
        assert_success(&step, "boss", None);
        let (_, step) = start(Some(&b64("user")), Some("boss"));
        assert_success(&step, "boss", Some("user"));
        let (_, step) = start(Some(&b64("boss")), Some("boss"));
        assert_success(&step, "boss", Some("boss"));
        let (_, step) = start(Some(&b64("admin")), Some("boss"));
        assert_failure(&step, &AuthFailure::AuthzidNotPermitted);
        let (mut ex, step) = start(None, Some("boss"));
        assert_eq!(step, Step::Challenge(String::new()));
        assert_success(&ex.step(""), "boss", None);
        let (_, step) = start(Some(&b64("a\u{0}b")), Some("boss"));
        assert_malformed(&step);
    }

    #[test]
    fn external_without_tls_identity() {
        let (_, step) =
            ServerExchange::start(ServerMechanism::External, Some("="), users(), "", None);
        assert_failure(&step, &AuthFailure::NoExternalIdentity);
        let (mut ex, _) = ServerExchange::start(ServerMechanism::External, None, users(), "", None);
        assert_failure(&ex.step(&b64("user")), &AuthFailure::NoExternalIdentity);
        assert_eq!(AuthFailure::NoExternalIdentity.reply().code, 535);
    }

    #[test]
    fn mechanism_names() {
        for m in ServerMechanism::ALL {
            assert_eq!(ServerMechanism::from_name(m.name()), Some(m));
            assert_eq!(
                ServerMechanism::from_name(&m.name().to_ascii_lowercase()),
                Some(m)
            );
        }
        assert_eq!(ServerMechanism::ScramSha256.name(), "SCRAM-SHA-256");
        assert_eq!(ServerMechanism::from_name("SCRAM-SHA-256-PLUS"), None);
        assert_eq!(ServerMechanism::from_name("CRAM-MD5"), None);
        assert!(ServerMechanism::Plain.needs_tls());
        assert!(ServerMechanism::Login.needs_tls());
        assert!(ServerMechanism::External.needs_tls());
        assert!(!ServerMechanism::ScramSha256.needs_tls());
    }

    #[test]
    fn debug_shows_no_secrets() {
        let (ex, _) = start(ServerMechanism::Login, Some(&b64("user")));
        let shown = format!("{ex:?}");
        assert!(shown.contains("LoginPassword"), "{shown}");
        assert!(!shown.contains("user"), "{shown}");
    }

    #[test]
    fn failure_replies_carry_the_text() {
        let s = AuthFailure::InvalidCredentials.reply();
        assert_eq!(
            s.to_string(),
            "535 5.7.8 Authentication credentials invalid"
        );
        let s = Status::from(AuthFailure::ExchangeFinished);
        assert_eq!((s.code, s.enhanced.to_string()), (503, "5.5.1".to_owned()));
        assert!(!AuthFailure::InvalidCredentials.is_local());
    }
}
