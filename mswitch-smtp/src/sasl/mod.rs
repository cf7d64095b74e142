//! SASL for SMTP AUTH (RFC 4954), server and client side, as sans-IO exchanges: base64 lines in,
//! base64 lines and outcomes out. No sockets, no clock, no randomness: the nonces SCRAM needs
//! are parameters, drawn by the caller from a CSPRNG.
//!
//! Mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), SCRAM-SHA-256
//! (RFC 5802, RFC 7677, without channel binding) and, on the server side, EXTERNAL
//! (RFC 4422 Appendix A) with the identity of the TLS client certificate.
//!
//! - [`codec`]: the base64 of RFC 4954 §4, strict; `=` for an empty initial response, `*` to
//!   cancel.
//! - [`credentials`]: the [`Credentials`] trait a server checks users with, and the stored form
//!   [`ScramStored`] (salt, iteration count, StoredKey, ServerKey of RFC 5802 §3). One stored
//!   form serves PLAIN, LOGIN and SCRAM-SHA-256, and no password is kept.
//! - [`password_file`]: [`PasswordFile`], a text file of such verifiers in the format
//!   PostgreSQL uses, and [`hash_password`] to make an entry.
//! - [`server`]: [`ServerExchange`], one AUTH exchange on the server side.
//! - [`client`]: [`ClientExchange`], one AUTH exchange on the client side; it checks the SCRAM
//!   server signature, so a server that does not know the key is not trusted.
//!
//! # How a server driver uses it
//! ```text
//! AUTH <mech> [ir]   → if mech.needs_tls() and no TLS: 538 5.7.11
//!                      (ex, step) = ServerExchange::start(mech, ir, creds, nonce, tls_id)
//! loop on step:
//!   Challenge(c)     → send "334 " + c, read one line (without CRLF), step = ex.step(line)
//!   Success { .. }   → send 235 2.7.0, the session is authenticated as authzid or authcid
//!   Failure(f)       → send f.reply()
//! ```
//! The SCRAM server-final message (`v=…`) is sent as a last 334 challenge, and the exchange
//! succeeds when the client answers it with an empty line. SASL (RFC 4422) lets a protocol
//! with no room for "additional data with success" send it that way, and it is the form every
//! client understands: the text of a 235 reply is for humans, and clients do not look for data
//! in it. So [`Step::Success`] never carries `final_data` here; the field is there for a
//! driver of a protocol that does carry it.
//!
//! # SASLprep
//! RFC 5802 §2.2 asks for SASLprep (RFC 4013) on user names and passwords. Without the Unicode
//! tables a full implementation needs, this module implements the part that does not need
//! them (see `saslprep.rs`): the mapping of RFC 4013 §2.1 (non-ASCII spaces to SPACE, the
//! "commonly mapped to nothing" characters removed) and the prohibited output of §2.3 (control
//! characters, private use, non-characters, and the other tables of RFC 3454 C.2 to C.9).
//! Not implemented: NFKC normalisation (§2.2), which is the identity on ASCII but not on every
//! non-ASCII string, the bidirectional check (§2.4) and the unassigned code points (§2.5, which
//! only stored strings must avoid). A non-ASCII password that NFKC would change (full-width
//! letters, ligatures, compatibility characters) therefore verifies only with a client that
//! sends it as typed. As PostgreSQL does, a password that SASLprep refuses is used as given,
//! the same way on every side (hashing, PLAIN, SCRAM client), so such a password still works.
//!
//! User names are compared as received, octet for octet, whatever the mechanism; they may not
//! contain control characters (they end up in logs and trace headers).

pub mod client;
pub mod codec;
pub mod credentials;
pub mod password_file;
mod saslprep;
mod scram;
pub mod server;

pub use client::{ClientAuthError, ClientExchange, ClientMechanism};
pub use codec::{Response, ResponseError, decode_response, encode, encode_initial_response};
pub use credentials::{Credentials, HashError, ScramStored};
pub use password_file::{PasswordFile, PasswordFileError, hash_password};
pub use server::{AuthFailure, ServerExchange, ServerMechanism, Step};

/// The `counter`-th SCRAM nonce of a session: HMAC-SHA-256 of the counter under `seed`, the
/// random bytes the driver gave the session (from the OS generator). Unpredictable without the
/// seed, never repeated within a session; base64, so it has no `,`.
pub fn derive_nonce(seed: &[u8; 32], counter: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed);
    let tag = ring::hmac::sign(&key, &counter.to_be_bytes());
    encode(&tag.as_ref()[..24])
}

/// Longest client response line, in base64 characters without the CRLF. RFC 4954 §4 sets
/// 12288 octets as the line a server must be able to take during AUTH (a Kerberos ticket fits);
/// nothing the mechanisms here exchange comes near it. A longer line is refused with
/// 500 5.5.6 before it is decoded. The client applies the same bound to server challenges.
pub const MAX_RESPONSE_LEN: usize = 12_288;

/// Longest authentication or authorization identity, in octets (RFC 4616 §2: an
/// implementation must accept up to 255 octets).
pub const MAX_IDENTITY_LEN: usize = 255;

/// Longest password, in octets (RFC 4616 §2: up to 255 octets must be accepted).
pub const MAX_PASSWORD_LEN: usize = 255;

/// Fewest PBKDF2 iterations accepted for SCRAM-SHA-256 (RFC 7677 §4: at least 4096). Applies to
/// what [`hash_password`] makes, to what a [`PasswordFile`] holds and to what a server asks of
/// the client: a lower count only helps whoever captured the exchange.
pub const MIN_ITERATIONS: u32 = 4096;

/// Most PBKDF2 iterations accepted, in a stored verifier or from a server. One PBKDF2 run costs
/// this many HMAC-SHA-256 computations per authentication (about a second at this bound), so
/// the bound keeps a hostile server, or a mistyped file, from stalling a thread for minutes;
/// it leaves room for the 600 000 that OWASP advises today.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Shortest salt [`hash_password`] accepts, in octets (128 bits, as NIST SP 800-132 asks; 16 is
/// what PostgreSQL and the RFC 7677 example use).
pub const MIN_SALT_LEN: usize = 16;

/// Longest salt accepted, in octets, in a stored verifier or from a server.
pub const MAX_SALT_LEN: usize = 128;

/// Shortest nonce this side contributes to SCRAM, in characters (the caller's random part, the
/// server nonce or the client nonce). RFC 5802 §5.1 asks for a random, unpredictable nonce;
/// 16 printable characters from a CSPRNG carry about 100 bits.
pub const MIN_NONCE_LEN: usize = 16;

/// Longest nonce part accepted from either side, in characters.
pub const MAX_NONCE_LEN: usize = 256;

/// Checks an authentication or authorization identity: not empty, at most
/// [`MAX_IDENTITY_LEN`] octets, no control character (C0, DEL, C1).
pub(crate) fn check_identity(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty identity");
    }
    if s.len() > MAX_IDENTITY_LEN {
        return Err("identity longer than 255 octets");
    }
    if s.chars().any(char::is_control) {
        return Err("control character in identity");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_rules() {
        assert_eq!(check_identity("user@example.org"), Ok(()));
        assert_eq!(check_identity("jérôme"), Ok(()));
        assert!(check_identity("").is_err());
        assert!(check_identity("a\u{7}b").is_err());
        assert!(check_identity("a\u{85}b").is_err());
        assert!(check_identity(&"x".repeat(MAX_IDENTITY_LEN)).is_ok());
        assert!(check_identity(&"x".repeat(MAX_IDENTITY_LEN + 1)).is_err());
    }
}
