//! How a server checks users: the [`Credentials`] trait and the SCRAM-SHA-256 stored form
//! [`ScramStored`] (RFC 5802 §3), with the key derivations, all through `ring`.
//!
//! ```text
//! SaltedPassword = PBKDF2-HMAC-SHA-256(SASLprep(password), salt, iterations)   (Hi)
//! ClientKey      = HMAC(SaltedPassword, "Client Key")
//! StoredKey      = SHA-256(ClientKey)
//! ServerKey      = HMAC(SaltedPassword, "Server Key")
//! ```
//! A server keeps salt, iterations, StoredKey and ServerKey. SCRAM needs nothing else; PLAIN
//! and LOGIN recompute StoredKey from the password received and compare in constant time.

use std::fmt;
use std::num::NonZeroU32;

use ring::{digest, hmac, pbkdf2};

use super::codec::encode;
use super::saslprep::prepare_password;
use super::{MAX_ITERATIONS, MAX_SALT_LEN, MIN_ITERATIONS, MIN_SALT_LEN};

/// Length of a SHA-256 output, hence of every SCRAM-SHA-256 key, proof and signature.
pub const KEY_LEN: usize = 32;

/// The scheme word of a stored verifier (`SCRAM-SHA-256$…`).
pub const SCHEME: &str = "SCRAM-SHA-256";

/// How a server checks users.
///
/// Only [`Credentials::scram_sha256`] is required: from it, PLAIN and LOGIN passwords are
/// checked by [`Credentials::verify_password`], and SCRAM-SHA-256 runs without any password.
/// An implementation that checks passwords elsewhere (a directory bind, say) overrides
/// `verify_password` and returns `None` from `scram_sha256`, and then cannot offer SCRAM.
pub trait Credentials: Send + Sync {
    /// The SCRAM-SHA-256 stored form for the authentication identity `authcid`, or `None` if
    /// there is no such user (or it may not log in).
    fn scram_sha256(&self, authcid: &str) -> Option<ScramStored>;

    /// Whether `password` is the password of `authcid`: PBKDF2 over the password with the
    /// stored salt and iteration count, then ClientKey and StoredKey, compared with the stored
    /// StoredKey in constant time. False for an unknown user, and for a stored form whose salt
    /// or iteration count is outside the limits of this module.
    ///
    /// The time taken tells an unknown user (no PBKDF2 run) from a wrong password; an SMTP
    /// server delays failed AUTH replies anyway.
    fn verify_password(&self, authcid: &str, password: &str) -> bool {
        self.scram_sha256(authcid)
            .is_some_and(|stored| stored.verify_password(password))
    }

    /// Whether `authcid`, once authenticated, may act as `authzid` (RFC 4422 §3.4.1). The
    /// default allows only acting as oneself: `authzid` empty or equal to `authcid`.
    fn may_act_as(&self, authcid: &str, authzid: &str) -> bool {
        authzid.is_empty() || authzid == authcid
    }
}

/// The SCRAM-SHA-256 stored form of one user's password (RFC 5802 §3): enough to run SCRAM and
/// to check a password, not enough to log in as the user elsewhere.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScramStored {
    /// The salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// `StoredKey = SHA-256(ClientKey)`.
    pub stored_key: [u8; KEY_LEN],
    /// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; KEY_LEN],
}

/// Why a password could not be hashed: the salt or the iteration count is outside the limits.
/// The caller's (configuration) fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The iteration count is below [`MIN_ITERATIONS`] or above [`MAX_ITERATIONS`].
    #[error("iteration count {iterations} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations {
        /// The count given.
        iterations: u32,
    },
    /// The salt is shorter than [`MIN_SALT_LEN`] or longer than [`MAX_SALT_LEN`] octets.
    #[error("salt of {len} octets; it must have {MIN_SALT_LEN} to {MAX_SALT_LEN}")]
    SaltLength {
        /// The salt's length, in octets.
        len: usize,
    },
}

impl ScramStored {
    /// A stored form from its four parts, as a [`Credentials`] implementation keeps them.
    pub fn new(
        salt: Vec<u8>,
        iterations: u32,
        stored_key: [u8; KEY_LEN],
        server_key: [u8; KEY_LEN],
    ) -> Self {
        ScramStored {
            salt,
            iterations,
            stored_key,
            server_key,
        }
    }

    /// Derives the stored form of `password` (after SASLprep, see [`crate::sasl`]) with the
    /// given salt, which the caller draws at random, and iteration count.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<Self, HashError> {
        if !(MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
            return Err(HashError::SaltLength { len: salt.len() });
        }
        let rounds = checked_iterations(iterations).ok_or(HashError::Iterations { iterations })?;
        let keys = Keys::derive(password, salt, rounds);
        Ok(ScramStored {
            salt: salt.to_vec(),
            iterations,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        })
    }

    /// Whether `password` matches (see [`Credentials::verify_password`]).
    pub fn verify_password(&self, password: &str) -> bool {
        let Some(rounds) = self.usable_iterations() else {
            return false;
        };
        let keys = Keys::derive(password, &self.salt, rounds);
        ct_eq(&keys.stored_key, &self.stored_key)
    }

    /// The verifier text, `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` with the
    /// three values in base64: the format PostgreSQL stores, and the part of a
    /// [`crate::sasl::PasswordFile`] line after `name:`.
    pub fn verifier(&self) -> String {
        format!(
            "{SCHEME}${}:{}${}:{}",
            self.iterations,
            encode(&self.salt),
            encode(&self.stored_key),
            encode(&self.server_key)
        )
    }

    /// The iteration count, if it and the salt are within the limits of this module.
    pub(crate) fn usable_iterations(&self) -> Option<NonZeroU32> {
        if self.salt.is_empty() || self.salt.len() > MAX_SALT_LEN {
            return None;
        }
        checked_iterations(self.iterations)
    }
}

impl fmt::Debug for ScramStored {
    /// Shows salt and iteration count, not the keys: StoredKey is what an offline dictionary
    /// attack starts from, and ServerKey lets its holder impersonate the server.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramStored")
            .field("salt", &encode(&self.salt))
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// `iterations` as a PBKDF2 round count, if within [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`].
pub(crate) fn checked_iterations(iterations: u32) -> Option<NonZeroU32> {
    if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        NonZeroU32::new(iterations)
    } else {
        None
    }
}

/// The keys derived from a password (RFC 5802 §3).
pub(crate) struct Keys {
    /// `HMAC(SaltedPassword, "Client Key")`.
    pub(crate) client_key: [u8; KEY_LEN],
    /// `SHA-256(ClientKey)`.
    pub(crate) stored_key: [u8; KEY_LEN],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub(crate) server_key: [u8; KEY_LEN],
}

impl Keys {
    /// Runs Hi (PBKDF2-HMAC-SHA-256) over the prepared password, then derives the keys.
    pub(crate) fn derive(password: &str, salt: &[u8], iterations: NonZeroU32) -> Self {
        let password = prepare_password(password);
        let mut salted = [0u8; KEY_LEN];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            password.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        Keys {
            client_key,
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }
}

/// HMAC-SHA-256.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// SHA-256.
pub(crate) fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// Equality of two keys in constant time. `ring` exposes its constant-time comparison through
/// `hmac::verify`, so this compares `HMAC(a, b)` with `HMAC(a, a)`: equal exactly when `b == a`
/// (but for an HMAC-SHA-256 collision), in a time that depends on neither.
pub(crate) fn ct_eq(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, a);
    let tag = hmac::sign(&key, a);
    hmac::verify(&key, b, tag.as_ref()).is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::sasl::codec::decode;

    /// The RFC 7677 §3 example's salt, "W22ZaJ0SNY7soEsUEjb6gQ==".
    fn rfc7677_salt() -> Vec<u8> {
        decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap_or_default()
    }

    struct Users(HashMap<String, ScramStored>);

    impl Credentials for Users {
        fn scram_sha256(&self, authcid: &str) -> Option<ScramStored> {
            self.0.get(authcid).cloned()
        }
    }

    #[test]
    fn pbkdf2_hmac_sha256_known_answer() {
        // RFC 7914 §11, PBKDF2-HMAC-SHA-256 with P="passwd", S="salt", c=1, first 32 octets.
        let mut out = [0u8; 32];
        let one = NonZeroU32::MIN;
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            one,
            b"salt",
            b"passwd",
            &mut out,
        );
        assert_eq!(
            out[..8],
            [0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f],
            "ring's PBKDF2-HMAC-SHA-256"
        );
    }

    #[test]
    fn derive_and_verify() {
        let salt = rfc7677_salt();
        assert_eq!(salt.len(), 16);
        let stored = ScramStored::derive("pencil", &salt, 4096);
        let Ok(stored) = stored else {
            panic!("derive failed: {stored:?}");
        };
        assert!(stored.verify_password("pencil"));
        assert!(!stored.verify_password("pencil "));
        assert!(!stored.verify_password("Pencil"));
        assert!(!stored.verify_password(""));
    }

    #[test]
    fn derive_limits() {
        let salt = [7u8; MIN_SALT_LEN];
        assert_eq!(
            ScramStored::derive("p", &salt, MIN_ITERATIONS - 1),
            Err(HashError::Iterations {
                iterations: MIN_ITERATIONS - 1
            })
        );
        assert_eq!(
            ScramStored::derive("p", &salt, MAX_ITERATIONS + 1),
            Err(HashError::Iterations {
                iterations: MAX_ITERATIONS + 1
            })
        );
        assert_eq!(
            ScramStored::derive("p", &salt[..MIN_SALT_LEN - 1], MIN_ITERATIONS),
            Err(HashError::SaltLength {
                len: MIN_SALT_LEN - 1
            })
        );
        assert_eq!(
            ScramStored::derive("p", &[0; MAX_SALT_LEN + 1], MIN_ITERATIONS),
            Err(HashError::SaltLength {
                len: MAX_SALT_LEN + 1
            })
        );
    }

    #[test]
    fn unusable_stored_form_never_verifies() {
        let salt = rfc7677_salt();
        let Ok(good) = ScramStored::derive("pencil", &salt, 4096) else {
            panic!("derive failed");
        };
        let mut low = good.clone();
        low.iterations = 1;
        assert!(!low.verify_password("pencil"));
        let mut huge = good.clone();
        huge.iterations = u32::MAX;
        assert!(!huge.verify_password("pencil"));
        let mut no_salt = good;
        no_salt.salt.clear();
        assert!(!no_salt.verify_password("pencil"));
    }

    #[test]
    fn saslprep_applies_to_passwords() {
        let salt = rfc7677_salt();
        let Ok(stored) = ScramStored::derive("pen\u{AD}cil", &salt, 4096) else {
            panic!("derive failed");
        };
        assert!(stored.verify_password("pencil"));
        assert!(stored.verify_password("pen\u{AD}cil"));
    }

    #[test]
    fn trait_defaults() {
        let salt = rfc7677_salt();
        let Ok(stored) = ScramStored::derive("pencil", &salt, 4096) else {
            panic!("derive failed");
        };
        let users = Users(HashMap::from([("user".to_owned(), stored)]));
        assert!(users.verify_password("user", "pencil"));
        assert!(!users.verify_password("user", "pen"));
        assert!(!users.verify_password("nobody", "pencil"));
        assert!(users.may_act_as("user", ""));
        assert!(users.may_act_as("user", "user"));
        assert!(!users.may_act_as("user", "admin"));
    }

    #[test]
    fn constant_time_equality() {
        let a = [1u8; KEY_LEN];
        let mut b = a;
        assert!(ct_eq(&a, &b));
        b[KEY_LEN - 1] ^= 1;
        assert!(!ct_eq(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!ct_eq(&a, &b));
    }

    #[test]
    fn debug_hides_keys() {
        let stored = ScramStored::new(vec![1, 2, 3], 4096, [0xAB; KEY_LEN], [0xCD; KEY_LEN]);
        let shown = format!("{stored:?}");
        assert!(shown.contains("4096"));
        assert!(!shown.contains(&encode(&[0xAB; KEY_LEN])));
        assert!(!shown.contains("171"), "{shown}");
    }
}
