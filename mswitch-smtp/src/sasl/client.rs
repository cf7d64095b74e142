//! The client side of one AUTH exchange (RFC 4954 §4): PLAIN, LOGIN and SCRAM-SHA-256.
//!
//! ```text
//! (ex, ir) = ClientExchange::start(mech, authcid, password, authzid, client_nonce)?
//! send "AUTH <mech> <ir>" if ir is Some and the line fits in 512 octets (RFC 4954 §4),
//!      else "AUTH <mech>" (the exchange then answers the server's empty challenge with it)
//! loop on the reply:
//!   334 <text>  → match ex.step(text) { Ok(line) → send line,
//!                                       Err(e) → send "*" and give up (the server answers 501) }
//!   235         → ex.finish()?: authenticated (for SCRAM, only once the server has proved
//!                 it knows the key)
//!   other       → failed
//! ```
//! SCRAM-SHA-256 runs without channel binding (GS2 flag `n`). The server must prove it knows
//! the ServerKey with the signature in its final message, which SMTP servers send as a last
//! 334 challenge (answered with an empty line); [`ClientExchange::finish`] refuses a 235 that
//! came without it, so a client does not hand mail to a server that merely said yes.

use std::fmt;

use super::codec::{self, encode, encode_initial_response};
use super::credentials::{KEY_LEN, Keys, checked_iterations, ct_eq};
use super::saslprep::saslprep;
use super::scram::{self, attribute, check_nonce, encode_saslname, is_extension};
use super::{
    MAX_IDENTITY_LEN, MAX_ITERATIONS, MAX_PASSWORD_LEN, MAX_RESPONSE_LEN, MAX_SALT_LEN,
    MIN_ITERATIONS, MIN_NONCE_LEN, check_identity,
};

/// Longest `e=` message from a SCRAM server kept for the error, in characters.
const MAX_SERVER_ERROR_LEN: usize = 100;

/// A mechanism the client side implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientMechanism {
    /// PLAIN (RFC 4616).
    Plain,
    /// LOGIN (draft-murchison-sasl-login).
    Login,
    /// SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel binding.
    ScramSha256,
}

impl ClientMechanism {
    /// The mechanisms in order of preference: SCRAM-SHA-256, then PLAIN, then LOGIN.
    pub const PREFERENCE: [ClientMechanism; 3] = [
        ClientMechanism::ScramSha256,
        ClientMechanism::Plain,
        ClientMechanism::Login,
    ];

    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            ClientMechanism::Plain => "PLAIN",
            ClientMechanism::Login => "LOGIN",
            ClientMechanism::ScramSha256 => scram::NAME,
        }
    }

    /// The mechanism named `name`, without regard to ASCII case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::PREFERENCE
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// The preferred mechanism among those a server advertised (the words after `AUTH` in its
    /// EHLO reply), if any is implemented here.
    pub fn choose<'a>(advertised: impl IntoIterator<Item = &'a str> + Clone) -> Option<Self> {
        Self::PREFERENCE.into_iter().find(|m| {
            advertised
                .clone()
                .into_iter()
                .any(|a| a.eq_ignore_ascii_case(m.name()))
        })
    }
}

impl fmt::Display for ClientMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the client side stopped. After any of these the client sends `*` if the server is
/// waiting for a response, and does not consider itself authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientAuthError {
    /// The identity, password or nonce given to [`ClientExchange::start`] cannot be sent: empty,
    /// too long, a forbidden character, or an authorization identity with LOGIN. Local
    /// (configuration).
    #[error("cannot authenticate: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: &'static str,
    },
    /// A challenge longer than [`MAX_RESPONSE_LEN`]. Peer.
    #[error("server challenge of {len} characters is too long")]
    ChallengeTooLong {
        /// Its length, in characters.
        len: usize,
    },
    /// A challenge that is not base64. Peer.
    #[error("server challenge is not valid base64")]
    InvalidBase64,
    /// A challenge when none was expected: after the PLAIN message, a third LOGIN challenge,
    /// or one after the SCRAM exchange ended. Peer.
    #[error("unexpected server challenge")]
    UnexpectedChallenge,
    /// A SCRAM server message that breaks the syntax of RFC 5802 §7. Peer.
    #[error("malformed SCRAM server message: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The SCRAM server nonce does not extend the client's (RFC 5802 §5.1). Peer.
    #[error("server nonce does not start with the client nonce")]
    NonceMismatch,
    /// The SCRAM iteration count is outside [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`]: too few
    /// would make a captured exchange cheap to attack, too many would stall the client. Peer.
    #[error("server asks for {iterations} iterations, outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations {
        /// The count asked for (saturated at `u64::MAX`).
        iterations: u64,
    },
    /// The SCRAM server reported an error (`e=`, RFC 5802 §7). Peer.
    #[error("server reported SCRAM error {message:?}")]
    ServerError {
        /// The error value, control characters replaced, at most 100 characters.
        message: String,
    },
    /// The SCRAM server signature is wrong: the server does not know the user's ServerKey, or
    /// the exchange was tampered with. Peer (or an attacker).
    #[error("server signature does not match: the server cannot be trusted")]
    ServerSignatureMismatch,
    /// The server reported success before proving it knows the SCRAM key. Peer.
    #[error("server reported success without proving it knows the credentials")]
    ServerNotVerified,
    /// [`ClientExchange::step`] was called after the exchange had failed or ended. Local (the
    /// driver).
    #[error("the authentication exchange is over")]
    ExchangeFinished,
}

/// One client-side AUTH exchange. Holds the password until SCRAM no longer needs it.
pub struct ClientExchange {
    mechanism: ClientMechanism,
    state: State,
}

/// Where the exchange is.
enum State {
    /// PLAIN: the message is the initial response; sent again if the server sends an empty
    /// challenge because the AUTH line did not carry it.
    Plain { message: String, sent: bool },
    /// LOGIN: user name and password to send, base64, and how many challenges came.
    Login {
        username: String,
        password: String,
        challenges: u8,
    },
    /// SCRAM: client-first-message sent (or to send), waiting for server-first-message.
    ScramFirst(Box<ScramFirst>),
    /// SCRAM: client-final-message sent, waiting for server-final-message.
    ScramFinal {
        server_key: [u8; KEY_LEN],
        auth_message: String,
    },
    /// SCRAM: the server signature checked.
    ScramVerified,
    /// Failed, or used up.
    Failed,
}

struct ScramFirst {
    initial: String,
    sent: bool,
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
    password: String,
}

impl fmt::Debug for ClientExchange {
    /// Mechanism and state only: no password, no key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Plain { .. } => "Plain",
            State::Login { .. } => "Login",
            State::ScramFirst(_) => "ScramFirst",
            State::ScramFinal { .. } => "ScramFinal",
            State::ScramVerified => "ScramVerified",
            State::Failed => "Failed",
        };
        f.debug_struct("ClientExchange")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ClientExchange {
    /// Starts an exchange. Returns it with the initial response (base64, `=` if empty) for the
    /// AUTH command: `Some` for PLAIN and SCRAM-SHA-256, `None` for LOGIN, which waits for the
    /// server's `Username:`.
    ///
    /// - `authcid`, `password`: at most 255 octets each, not empty, no NUL; the identity also
    ///   without control characters.
    /// - `authzid`: the identity to act as, if not oneself (`None` or `Some("")` for none);
    ///   LOGIN cannot carry one.
    /// - `client_nonce`: for SCRAM-SHA-256, [`MIN_NONCE_LEN`] to [`crate::sasl::MAX_NONCE_LEN`] printable
    ///   ASCII characters other than `,`, from a CSPRNG, new for each exchange; ignored by the
    ///   other mechanisms.
    pub fn start(
        mechanism: ClientMechanism,
        authcid: &str,
        password: &str,
        authzid: Option<&str>,
        client_nonce: &str,
    ) -> Result<(Self, Option<String>), ClientAuthError> {
        let invalid = |reason| ClientAuthError::InvalidInput { reason };
        check_identity(authcid).map_err(invalid)?;
        let authzid = authzid.filter(|z| !z.is_empty());
        if let Some(z) = authzid {
            check_identity(z).map_err(invalid)?;
        }
        if password.is_empty() {
            return Err(invalid("empty password"));
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(invalid("password longer than 255 octets"));
        }
        if password.contains('\0') {
            return Err(invalid("NUL in the password"));
        }
        let (state, initial) = match mechanism {
            ClientMechanism::Plain => {
                let message = format!("{}\0{authcid}\0{password}", authzid.unwrap_or_default());
                let message = encode_initial_response(message.as_bytes());
                (
                    State::Plain {
                        message: message.clone(),
                        sent: false,
                    },
                    Some(message),
                )
            }
            ClientMechanism::Login => {
                if authzid.is_some() {
                    return Err(invalid("LOGIN cannot carry an authorization identity"));
                }
                let state = State::Login {
                    username: encode(authcid.as_bytes()),
                    password: encode(password.as_bytes()),
                    challenges: 0,
                };
                (state, None)
            }
            ClientMechanism::ScramSha256 => {
                if client_nonce.len() < MIN_NONCE_LEN {
                    return Err(invalid("client nonce shorter than 16 characters"));
                }
                check_nonce(client_nonce).map_err(invalid)?;
                // RFC 5802 §5.1: the user name is prepared with SASLprep before it is sent.
                let name = saslprep(authcid)
                    .map_err(|_| invalid("user name contains a character SASLprep prohibits"))?;
                if name.is_empty() || name.len() > MAX_IDENTITY_LEN {
                    return Err(invalid("user name empty or too long after SASLprep"));
                }
                let gs2_header = match authzid {
                    Some(z) => format!("n,a={},", encode_saslname(z)),
                    None => "n,,".to_owned(),
                };
                let client_first_bare = format!("n={},r={client_nonce}", encode_saslname(&name));
                let initial = encode(format!("{gs2_header}{client_first_bare}").as_bytes());
                let state = State::ScramFirst(Box::new(ScramFirst {
                    initial: initial.clone(),
                    sent: false,
                    gs2_header,
                    client_first_bare,
                    client_nonce: client_nonce.to_owned(),
                    password: password.to_owned(),
                }));
                (state, Some(initial))
            }
        };
        Ok((ClientExchange { mechanism, state }, initial))
    }

    /// The mechanism.
    pub fn mechanism(&self) -> ClientMechanism {
        self.mechanism
    }

    /// Takes the text of a 334 reply (base64, possibly empty) and gives the line to send back.
    pub fn step(&mut self, server_challenge_b64: &str) -> Result<String, ClientAuthError> {
        let result = self.step_inner(server_challenge_b64);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    /// Called on the 235 reply: `Ok` if the client may consider itself authenticated. For
    /// SCRAM-SHA-256 that needs the server signature to have been checked; otherwise the
    /// server has not proved anything and the client should end the session.
    pub fn finish(&self) -> Result<(), ClientAuthError> {
        match (&self.state, self.mechanism) {
            (State::ScramVerified, _) => Ok(()),
            (State::Failed, _) => Err(ClientAuthError::ExchangeFinished),
            (_, ClientMechanism::ScramSha256) => Err(ClientAuthError::ServerNotVerified),
            _ => Ok(()),
        }
    }

    fn step_inner(&mut self, challenge_b64: &str) -> Result<String, ClientAuthError> {
        if challenge_b64.len() > MAX_RESPONSE_LEN {
            return Err(ClientAuthError::ChallengeTooLong {
                len: challenge_b64.len(),
            });
        }
        let challenge = codec::decode(challenge_b64).ok_or(ClientAuthError::InvalidBase64)?;
        match &mut self.state {
            State::Plain { message, sent } => {
                // An empty challenge asks for the message the AUTH line did not carry.
                if *sent || !challenge.is_empty() {
                    return Err(ClientAuthError::UnexpectedChallenge);
                }
                *sent = true;
                Ok(std::mem::take(message))
            }
            State::Login {
                username,
                password,
                challenges,
            } => {
                // The prompts are not checked: servers word them differently, and the order is
                // fixed (user name, then password).
                *challenges += 1;
                match *challenges {
                    1 => Ok(std::mem::take(username)),
                    2 => Ok(std::mem::take(password)),
                    _ => Err(ClientAuthError::UnexpectedChallenge),
                }
            }
            State::ScramFirst(first) => {
                if challenge.is_empty() {
                    if first.sent {
                        return Err(ClientAuthError::UnexpectedChallenge);
                    }
                    first.sent = true;
                    return Ok(first.initial.clone());
                }
                let (response, next) = scram_client_final(first, &challenge)?;
                self.state = next;
                Ok(response)
            }
            State::ScramFinal {
                server_key,
                auth_message,
            } => {
                verify_server_final(server_key, auth_message, &challenge)?;
                self.state = State::ScramVerified;
                Ok(String::new())
            }
            State::ScramVerified | State::Failed => Err(ClientAuthError::ExchangeFinished),
        }
    }
}

/// Parses server-first-message (`r=nonce,s=salt,i=count[,extensions]`) and builds
/// client-final-message.
fn scram_client_final(
    first: &ScramFirst,
    challenge: &[u8],
) -> Result<(String, State), ClientAuthError> {
    let malformed = |reason| ClientAuthError::Malformed { reason };
    let message = std::str::from_utf8(challenge).map_err(|_| malformed("not UTF-8"))?;
    if let Some(e) = attribute(message, b'e') {
        return Err(server_error(e));
    }
    let mut parts = message.split(',');
    let first_part = parts.next().unwrap_or_default();
    if attribute(first_part, b'm').is_some() {
        return Err(malformed("mandatory extension not supported"));
    }
    let nonce = attribute(first_part, b'r').ok_or(malformed("expected r= first"))?;
    check_nonce_combined(nonce, &first.client_nonce)?;
    let salt = parts
        .next()
        .and_then(|s| attribute(s, b's'))
        .ok_or(malformed("expected s= after the nonce"))?;
    let salt = codec::decode(salt).ok_or(malformed("salt is not base64"))?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(malformed("salt empty or longer than 128 octets"));
    }
    let iterations = parts
        .next()
        .and_then(|s| attribute(s, b'i'))
        .ok_or(malformed("expected i= after the salt"))?;
    if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("iteration count is not a number"));
    }
    let count = iterations.parse::<u64>().unwrap_or(u64::MAX);
    let rounds = u32::try_from(count)
        .ok()
        .and_then(checked_iterations)
        .ok_or(ClientAuthError::Iterations { iterations: count })?;
    if !parts.all(is_extension) {
        return Err(malformed("invalid attribute after the iteration count"));
    }

    let keys = Keys::derive(&first.password, &salt, rounds);
    let final_bare = format!("c={},r={nonce}", encode(first.gs2_header.as_bytes()));
    let auth_message = scram::auth_message(&first.client_first_bare, message, &final_bare);
    let proof = scram::xor_client_signature(&keys.client_key, &keys.stored_key, &auth_message);
    let response = format!("{final_bare},p={}", encode(&proof));
    let next = State::ScramFinal {
        server_key: keys.server_key,
        auth_message,
    };
    Ok((encode(response.as_bytes()), next))
}

/// The combined nonce must be the client's followed by at least one character of the server's
/// (RFC 5802 §5.1), all printable.
fn check_nonce_combined(nonce: &str, client_nonce: &str) -> Result<(), ClientAuthError> {
    let server_part = nonce
        .strip_prefix(client_nonce)
        .filter(|s| !s.is_empty())
        .ok_or(ClientAuthError::NonceMismatch)?;
    check_nonce(server_part).map_err(|reason| ClientAuthError::Malformed { reason })
}

/// Checks server-final-message: `v=<ServerSignature>[,extensions]`, or `e=<error>`.
fn verify_server_final(
    server_key: &[u8; KEY_LEN],
    auth_message: &str,
    challenge: &[u8],
) -> Result<(), ClientAuthError> {
    let malformed = |reason| ClientAuthError::Malformed { reason };
    let message = std::str::from_utf8(challenge).map_err(|_| malformed("not UTF-8"))?;
    let mut parts = message.split(',');
    let first = parts.next().unwrap_or_default();
    if let Some(e) = attribute(first, b'e') {
        return Err(server_error(e));
    }
    let signature = attribute(first, b'v').ok_or(malformed("expected v= or e="))?;
    if !parts.all(is_extension) {
        return Err(malformed("invalid attribute after the signature"));
    }
    let signature = codec::decode(signature)
        .and_then(|v| <[u8; KEY_LEN]>::try_from(v).ok())
        .ok_or(ClientAuthError::ServerSignatureMismatch)?;
    let expected = scram::server_signature(server_key, auth_message);
    if ct_eq(&expected, &signature) {
        Ok(())
    } else {
        Err(ClientAuthError::ServerSignatureMismatch)
    }
}

fn server_error(value: &str) -> ClientAuthError {
    let message = value
        .chars()
        .take(MAX_SERVER_ERROR_LEN)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    ClientAuthError::ServerError { message }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sasl::codec::decode;
    use crate::sasl::{
        AuthFailure, Credentials, PasswordFile, ScramStored, ServerExchange, ServerMechanism, Step,
        hash_password,
    };

    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
        p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn b64(s: &str) -> String {
        encode(s.as_bytes())
    }

    fn text(b64: &str) -> String {
        String::from_utf8(decode(b64).unwrap_or_default()).unwrap_or_default()
    }

    /// "user" / "pencil", "boss" / "b0ss" (who may act as "user"), "jérôme" / "pässwörd",
    /// "a=b,c" / "x"; and "stolen" / "pencil", whose ServerKey is wrong, as on a server that
    /// obtained only the StoredKey.
    struct Users(PasswordFile);

    impl Credentials for Users {
        fn scram_sha256(&self, authcid: &str) -> Option<ScramStored> {
            if authcid == "stolen" {
                let mut stored = self.0.scram_sha256("user")?;
                stored.server_key[0] ^= 1;
                return Some(stored);
            }
            self.0.scram_sha256(authcid)
        }
        fn may_act_as(&self, authcid: &str, authzid: &str) -> bool {
            authzid.is_empty() || authzid == authcid || (authcid == "boss" && authzid == "user")
        }
    }

    fn users() -> Arc<dyn Credentials> {
        let salt = decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap_or_default();
        let mut text = String::new();
        for (name, password) in [
            ("user", "pencil"),
            ("boss", "b0ss"),
            ("jérôme", "pässwörd"),
            ("a=b,c", "x"),
        ] {
            let Ok(v) = hash_password(password, &salt, 4096) else {
                panic!("hash_password failed");
            };
            text.push_str(&format!("{name}:{v}\n"));
        }
        match PasswordFile::parse(&text) {
            Ok(f) => Arc::new(Users(f)),
            Err(e) => panic!("{e}"),
        }
    }

    fn start(
        mech: ClientMechanism,
        authcid: &str,
        password: &str,
        authzid: Option<&str>,
    ) -> (ClientExchange, Option<String>) {
        match ClientExchange::start(mech, authcid, password, authzid, CLIENT_NONCE) {
            Ok(started) => started,
            Err(e) => panic!("start failed: {e}"),
        }
    }

    fn server_mechanism(m: ClientMechanism) -> ServerMechanism {
        match m {
            ClientMechanism::Plain => ServerMechanism::Plain,
            ClientMechanism::Login => ServerMechanism::Login,
            ClientMechanism::ScramSha256 => ServerMechanism::ScramSha256,
        }
    }

    /// What a round trip ended with.
    #[derive(Debug)]
    enum Outcome {
        Server(Step),
        Client(ClientAuthError),
    }

    /// Runs client against server; `send_ir` says whether the AUTH line carries the initial
    /// response. Returns the server's final step once the client has accepted it, or the
    /// client's error.
    fn round_trip(
        mech: ClientMechanism,
        authcid: &str,
        password: &str,
        authzid: Option<&str>,
        send_ir: bool,
    ) -> Outcome {
        let (mut client, ir) = start(mech, authcid, password, authzid);
        let ir = ir.filter(|_| send_ir);
        let (mut server, mut step) = ServerExchange::start(
            server_mechanism(mech),
            ir.as_deref(),
            users(),
            SERVER_NONCE,
            None,
        );
        for _ in 0..10 {
            match step {
                Step::Challenge(c) => match client.step(&c) {
                    Ok(line) => step = server.step(&line),
                    Err(e) => return Outcome::Client(e),
                },
                Step::Success { .. } => {
                    return match client.finish() {
                        Ok(()) => Outcome::Server(step),
                        Err(e) => Outcome::Client(e),
                    };
                }
                Step::Failure(_) => return Outcome::Server(step),
            }
        }
        panic!("exchange did not end");
    }

    fn assert_success(outcome: Outcome, who: &str, as_whom: Option<&str>) {
        let Outcome::Server(Step::Success {
            authcid, authzid, ..
        }) = outcome
        else {
            panic!("expected success, got {outcome:?}");
        };
        assert_eq!(authcid, who);
        assert_eq!(authzid.as_deref(), as_whom);
    }

    #[test]
    fn scram_rfc_7677_example_byte_for_byte() {
        let (mut client, ir) = start(ClientMechanism::ScramSha256, "user", "pencil", None);
        assert_eq!(ir.as_deref().map(text).as_deref(), Some(CLIENT_FIRST));
        let response = client.step(&b64(SERVER_FIRST));
        assert_eq!(response.as_deref().map(text).as_deref(), Ok(CLIENT_FINAL));
        assert_eq!(client.finish(), Err(ClientAuthError::ServerNotVerified));
        assert_eq!(client.step(&b64(SERVER_FINAL)).as_deref(), Ok(""));
        assert_eq!(client.finish(), Ok(()));
        assert_eq!(
            client.step(""),
            Err(ClientAuthError::ExchangeFinished),
            "nothing after the server-final message"
        );
    }

    #[test]
    fn scram_tampered_server_signature() {
        let tampered = [
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=",
            "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
            "v=AAAA",
            "v=",
        ];
        for v in tampered {
            let (mut client, _) = start(ClientMechanism::ScramSha256, "user", "pencil", None);
            assert!(client.step(&b64(SERVER_FIRST)).is_ok());
            assert_eq!(
                client.step(&b64(v)),
                Err(ClientAuthError::ServerSignatureMismatch),
                "{v}"
            );
            assert_eq!(client.finish(), Err(ClientAuthError::ExchangeFinished));
        }
        // A server that knows the salt but not the key (its answer for another password).
        let (mut client, _) = start(ClientMechanism::ScramSha256, "user", "pencil2", None);
        assert!(client.step(&b64(SERVER_FIRST)).is_ok());
        assert_eq!(
            client.step(&b64(SERVER_FINAL)),
            Err(ClientAuthError::ServerSignatureMismatch)
        );
    }

    #[test]
    fn scram_server_messages_checked() {
        let cases: [(&str, ClientAuthError); 9] = [
            (
                "r=XOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                ClientAuthError::NonceMismatch,
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                ClientAuthError::NonceMismatch,
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
                ClientAuthError::Iterations { iterations: 4095 },
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
                ClientAuthError::Iterations {
                    iterations: 99_999_999_999,
                },
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001",
                ClientAuthError::Iterations {
                    iterations: 1_000_001,
                },
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22Z aJ0SNY7soEsUEjb6gQ==,i=4096",
                ClientAuthError::Malformed {
                    reason: "salt is not base64",
                },
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqO%hvY,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
                ClientAuthError::Malformed {
                    reason: "expected s= after the nonce",
                },
            ),
            (
                "e=unknown-user",
                ClientAuthError::ServerError {
                    message: "unknown-user".to_owned(),
                },
            ),
            (
                "m=x,r=rOprNGfwEbeRWgbNEkqO%hvY,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                ClientAuthError::Malformed {
                    reason: "mandatory extension not supported",
                },
            ),
        ];
        for (server_first, expected) in cases {
            let (mut client, _) = start(ClientMechanism::ScramSha256, "user", "pencil", None);
            assert_eq!(
                client.step(&b64(server_first)),
                Err(expected),
                "{server_first}"
            );
            assert_eq!(client.step(""), Err(ClientAuthError::ExchangeFinished));
        }
        let (mut client, _) = start(ClientMechanism::ScramSha256, "user", "pencil", None);
        assert!(client.step(&b64(SERVER_FIRST)).is_ok());
        assert_eq!(
            client.step(&b64("e=invalid-proof")),
            Err(ClientAuthError::ServerError {
                message: "invalid-proof".to_owned()
            })
        );
    }

    #[test]
    fn challenge_base64_and_length() {
        let (mut client, _) = start(ClientMechanism::ScramSha256, "user", "pencil", None);
        assert_eq!(client.step("cj1 h"), Err(ClientAuthError::InvalidBase64));
        let (mut client, _) = start(ClientMechanism::Login, "user", "pencil", None);
        let long = "A".repeat(MAX_RESPONSE_LEN + 4);
        assert_eq!(
            client.step(&long),
            Err(ClientAuthError::ChallengeTooLong { len: long.len() })
        );
    }

    #[test]
    fn round_trips_every_mechanism() {
        for mech in ClientMechanism::PREFERENCE {
            for send_ir in [true, false] {
                let outcome = round_trip(mech, "user", "pencil", None, send_ir);
                assert_success(outcome, "user", None);
                let outcome = round_trip(mech, "jérôme", "pässwörd", None, send_ir);
                assert_success(outcome, "jérôme", None);
            }
        }
        // SCRAM user names with ',' and '=' travel escaped.
        let outcome = round_trip(ClientMechanism::ScramSha256, "a=b,c", "x", None, true);
        assert_success(outcome, "a=b,c", None);
    }

    #[test]
    fn round_trips_with_authzid() {
        for mech in [ClientMechanism::Plain, ClientMechanism::ScramSha256] {
            let outcome = round_trip(mech, "boss", "b0ss", Some("user"), true);
            assert_success(outcome, "boss", Some("user"));
            let outcome = round_trip(mech, "user", "pencil", Some("boss"), true);
            assert!(
                matches!(
                    outcome,
                    Outcome::Server(Step::Failure(AuthFailure::AuthzidNotPermitted))
                ),
                "{mech}: {outcome:?}"
            );
            let outcome = round_trip(mech, "boss", "b0ss", Some(""), true);
            assert_success(outcome, "boss", None);
        }
    }

    #[test]
    fn round_trips_wrong_password() {
        for mech in ClientMechanism::PREFERENCE {
            for (user, password) in [("user", "pencil!"), ("nobody", "pencil")] {
                let outcome = round_trip(mech, user, password, None, true);
                assert!(
                    matches!(
                        outcome,
                        Outcome::Server(Step::Failure(AuthFailure::InvalidCredentials))
                    ),
                    "{mech} {user}: {outcome:?}"
                );
            }
        }
    }

    #[test]
    fn round_trip_with_a_server_that_lacks_the_server_key() {
        // The server accepts the proof (it has the StoredKey) but cannot sign.
        let outcome = round_trip(ClientMechanism::ScramSha256, "stolen", "pencil", None, true);
        assert!(
            matches!(
                outcome,
                Outcome::Client(ClientAuthError::ServerSignatureMismatch)
            ),
            "{outcome:?}"
        );
        // PLAIN only needs the StoredKey: nothing to detect there.
        let outcome = round_trip(ClientMechanism::Plain, "stolen", "pencil", None, true);
        assert_success(outcome, "stolen", None);
    }

    #[test]
    fn server_that_skips_the_signature_is_not_trusted() {
        // A server that answers client-final-message with 235 directly.
        let (mut client, _) = start(ClientMechanism::ScramSha256, "user", "pencil", None);
        assert!(client.step(&b64(SERVER_FIRST)).is_ok());
        assert_eq!(client.finish(), Err(ClientAuthError::ServerNotVerified));
        // PLAIN and LOGIN have nothing to verify.
        let (client, _) = start(ClientMechanism::Plain, "user", "pencil", None);
        assert_eq!(client.finish(), Ok(()));
    }

    #[test]
    fn plain_messages() {
        let (mut client, ir) = start(ClientMechanism::Plain, "user", "pencil", None);
        assert_eq!(ir.as_deref().map(text).as_deref(), Some("\0user\0pencil"));
        // A server that did not get the initial response asks with an empty challenge, once.
        assert_eq!(
            client.step("").as_deref().map(text).as_deref(),
            Ok("\0user\0pencil")
        );
        assert_eq!(client.step(""), Err(ClientAuthError::UnexpectedChallenge));
        let (mut client, ir) = start(ClientMechanism::Plain, "boss", "b0ss", Some("user"));
        assert_eq!(ir.as_deref().map(text).as_deref(), Some("user\0boss\0b0ss"));
        assert_eq!(
            client.step(&b64("what?")),
            Err(ClientAuthError::UnexpectedChallenge)
        );
    }

    #[test]
    fn login_messages() {
        let (mut client, ir) = start(ClientMechanism::Login, "user", "pencil", None);
        assert_eq!(ir, None);
        assert_eq!(client.step("VXNlcm5hbWU6").as_deref(), Ok("dXNlcg=="));
        assert_eq!(client.step("UGFzc3dvcmQ6").as_deref(), Ok("cGVuY2ls"));
        assert_eq!(
            client.step("UGFzc3dvcmQ6"),
            Err(ClientAuthError::UnexpectedChallenge)
        );
        assert_eq!(client.finish(), Err(ClientAuthError::ExchangeFinished));
    }

    #[test]
    fn invalid_input() {
        let nonce = CLIENT_NONCE;
        let long = "x".repeat(256);
        let bad: [(ClientMechanism, &str, &str, Option<&str>, &str); 10] = [
            (ClientMechanism::Plain, "", "p", None, nonce),
            (ClientMechanism::Plain, "u\0v", "p", None, nonce),
            (ClientMechanism::Plain, "u", "p\0q", None, nonce),
            (ClientMechanism::Plain, "u", "", None, nonce),
            (ClientMechanism::Plain, &long, "p", None, nonce),
            (ClientMechanism::Plain, "u", &long, None, nonce),
            (ClientMechanism::Login, "u", "p", Some("z"), nonce),
            (ClientMechanism::ScramSha256, "u", "p", None, "short"),
            (
                ClientMechanism::ScramSha256,
                "u",
                "p",
                None,
                "with,comma-0123456789",
            ),
            (ClientMechanism::ScramSha256, "u\u{E000}", "p", None, nonce),
        ];
        for (mech, authcid, password, authzid, nonce) in bad {
            let result = ClientExchange::start(mech, authcid, password, authzid, nonce);
            assert!(
                matches!(result, Err(ClientAuthError::InvalidInput { .. })),
                "{mech} {authcid:?} {password:?} {authzid:?} {nonce:?}: {result:?}"
            );
        }
        // The nonce does not matter to PLAIN.
        assert!(ClientExchange::start(ClientMechanism::Plain, "u", "p", None, "").is_ok());
    }

    #[test]
    fn choose_and_names() {
        assert_eq!(
            ClientMechanism::choose(["LOGIN", "PLAIN", "SCRAM-SHA-256"]),
            Some(ClientMechanism::ScramSha256)
        );
        assert_eq!(
            ClientMechanism::choose(["login", "plain", "CRAM-MD5"]),
            Some(ClientMechanism::Plain)
        );
        assert_eq!(ClientMechanism::choose(["CRAM-MD5", "GSSAPI"]), None);
        for m in ClientMechanism::PREFERENCE {
            assert_eq!(ClientMechanism::from_name(m.name()), Some(m));
        }
    }

    #[test]
    fn debug_shows_no_secrets() {
        let (client, _) = start(ClientMechanism::ScramSha256, "user", "pencil", None);
        let shown = format!("{client:?}");
        assert!(shown.contains("ScramFirst"), "{shown}");
        assert!(!shown.contains("pencil"), "{shown}");
    }
}
