//! A password file of SCRAM-SHA-256 verifiers, and [`hash_password`] to make its entries.
//!
//! One user per line:
//! ```text
//! # comment
//! name:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//! ```
//! The part after `name:` is the verifier PostgreSQL stores (`pg_authid.rolpassword`), so one
//! can be copied from there; salt, StoredKey and ServerKey are base64. Blank lines and lines
//! whose first non-blank character is `#` are skipped; spaces and tabs around a line are
//! ignored, as is a CR before the LF. The name runs to the first `:`, so it cannot contain
//! one. Nothing here reads a file: the caller reads it and hands the text to
//! [`PasswordFile::parse`].

use std::collections::HashMap;
use std::str::FromStr;

use super::codec::decode;
use super::credentials::{Credentials, HashError, KEY_LEN, SCHEME, ScramStored};
use super::{MAX_ITERATIONS, MAX_SALT_LEN, MIN_ITERATIONS, check_identity};

/// Longest line of a password file, in octets. A line at the limits (255-octet name,
/// 128-octet salt, 7-digit count) takes about 540.
pub const MAX_LINE_LEN: usize = 1024;

/// Makes the verifier of `password` for a password file (the part after `name:`): SCRAM-SHA-256
/// with the given salt, drawn at random by the caller ([`crate::sasl::MIN_SALT_LEN`] octets or
/// more), and iteration count ([`MIN_ITERATIONS`] or more).
pub fn hash_password(password: &str, salt: &[u8], iterations: u32) -> Result<String, HashError> {
    ScramStored::derive(password, salt, iterations).map(|s| s.verifier())
}

/// Users and their SCRAM-SHA-256 verifiers, parsed from a password file.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    users: HashMap<String, Entry>,
}

/// One user's verifier and the line it came from.
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    stored: ScramStored,
}

/// What is wrong with a password file, and on which line (counted from 1). The
/// configuration's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordFileError {
    /// The line is longer than [`MAX_LINE_LEN`].
    #[error("line {line}: longer than {MAX_LINE_LEN} octets")]
    LineTooLong {
        /// The line number.
        line: usize,
    },
    /// No `:` after the user name.
    #[error("line {line}: expected name:SCRAM-SHA-256$..., found no ':'")]
    MissingSeparator {
        /// The line number.
        line: usize,
    },
    /// The user name is empty, too long or contains a control character.
    #[error("line {line}: invalid user name: {reason}")]
    InvalidName {
        /// The line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The same user on two lines.
    #[error("line {line}: user {name:?} already defined on line {first}")]
    DuplicateUser {
        /// The line number of the second definition.
        line: usize,
        /// The line number of the first.
        first: usize,
        /// The user.
        name: String,
    },
    /// The verifier does not start with `SCRAM-SHA-256$` (an MD5 or clear-text entry, say).
    #[error("line {line}: unsupported password scheme, expected SCRAM-SHA-256$...")]
    UnsupportedScheme {
        /// The line number.
        line: usize,
    },
    /// The verifier is not `<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    #[error("line {line}: malformed verifier: {reason}")]
    Malformed {
        /// The line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The iteration count is not a number within
    /// [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`].
    #[error(
        "line {line}: iteration count must be a number from {MIN_ITERATIONS} to {MAX_ITERATIONS}"
    )]
    Iterations {
        /// The line number.
        line: usize,
    },
    /// A value is not base64, or not of the right length.
    #[error("line {line}: {field} {reason}")]
    InvalidValue {
        /// The line number.
        line: usize,
        /// `salt`, `StoredKey` or `ServerKey`.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl PasswordFileError {
    /// The line the error is on, counted from 1.
    pub fn line(&self) -> usize {
        match self {
            Self::LineTooLong { line }
            | Self::MissingSeparator { line }
            | Self::InvalidName { line, .. }
            | Self::DuplicateUser { line, .. }
            | Self::UnsupportedScheme { line }
            | Self::Malformed { line, .. }
            | Self::Iterations { line }
            | Self::InvalidValue { line, .. } => *line,
        }
    }
}

impl PasswordFile {
    /// Parses a password file (see the module documentation). The first error stops the
    /// parse: a file with a bad line is refused whole, so no user is silently missing.
    pub fn parse(text: &str) -> Result<Self, PasswordFileError> {
        let mut users: HashMap<String, Entry> = HashMap::new();
        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            if raw.len() > MAX_LINE_LEN {
                return Err(PasswordFileError::LineTooLong { line });
            }
            let content = raw.trim_matches([' ', '\t', '\r']);
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let (name, stored) = parse_line(content, line)?;
            if let Some(first) = users.get(name) {
                return Err(PasswordFileError::DuplicateUser {
                    line,
                    first: first.line,
                    name: name.to_owned(),
                });
            }
            users.insert(name.to_owned(), Entry { line, stored });
        }
        Ok(PasswordFile { users })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file defines no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }
}

impl FromStr for PasswordFile {
    type Err = PasswordFileError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Credentials for PasswordFile {
    fn scram_sha256(&self, authcid: &str) -> Option<ScramStored> {
        self.users.get(authcid).map(|e| e.stored.clone())
    }
}

/// Parses `name:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
fn parse_line(content: &str, line: usize) -> Result<(&str, ScramStored), PasswordFileError> {
    let malformed = |reason| PasswordFileError::Malformed { line, reason };
    let (name, verifier) = content
        .split_once(':')
        .ok_or(PasswordFileError::MissingSeparator { line })?;
    check_identity(name).map_err(|reason| PasswordFileError::InvalidName { line, reason })?;
    let verifier = verifier
        .strip_prefix(SCHEME)
        .and_then(|v| v.strip_prefix('$'))
        .ok_or(PasswordFileError::UnsupportedScheme { line })?;
    let (params, keys) = verifier.split_once('$').ok_or(malformed(
        "expected '$' between <iterations>:<salt> and the keys",
    ))?;
    let (iterations, salt) = params
        .split_once(':')
        .ok_or(malformed("expected <iterations>:<salt>"))?;
    let (stored_key, server_key) = keys
        .split_once(':')
        .ok_or(malformed("expected <StoredKey>:<ServerKey>"))?;

    let iterations = parse_iterations(iterations).ok_or(PasswordFileError::Iterations { line })?;
    let invalid = |field, reason| PasswordFileError::InvalidValue {
        line,
        field,
        reason,
    };
    let salt = decode(salt).ok_or(invalid("salt", "is not valid base64"))?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(invalid("salt", "must have 1 to 128 octets"));
    }
    let key = |field, text| -> Result<[u8; KEY_LEN], PasswordFileError> {
        let bytes = decode(text).ok_or(invalid(field, "is not valid base64"))?;
        <[u8; KEY_LEN]>::try_from(bytes.as_slice())
            .map_err(|_| invalid(field, "must have 32 octets"))
    };
    let stored_key = key("StoredKey", stored_key)?;
    let server_key = key("ServerKey", server_key)?;
    Ok((
        name,
        ScramStored::new(salt, iterations, stored_key, server_key),
    ))
}

/// A decimal iteration count within the limits: digits only, no sign, at most 10 of them.
fn parse_iterations(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = s.parse::<u32>().ok()?;
    (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier of "pencil" with the RFC 7677 §3 salt and 4096 iterations.
    const PENCIL: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
        WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    fn salt() -> Vec<u8> {
        decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap_or_default()
    }

    fn parse_err(text: &str) -> PasswordFileError {
        match PasswordFile::parse(text) {
            Ok(f) => panic!("{text:?} parsed: {f:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn hash_password_matches_rfc_7677_keys() {
        // StoredKey and ServerKey for the RFC 7677 §3 example; the exchange test in
        // `server.rs`, which reproduces the RFC's messages byte for byte, depends on them.
        assert_eq!(
            hash_password("pencil", &salt(), 4096).as_deref(),
            Ok(PENCIL)
        );
    }

    #[test]
    fn hash_then_verify() {
        let salt = [0x5Au8; 16];
        let Ok(verifier) = hash_password("correct horse", &salt, 4096) else {
            panic!("hash_password failed");
        };
        let file = PasswordFile::parse(&format!("alice:{verifier}\n"));
        let Ok(file) = file else {
            panic!("{file:?}");
        };
        assert!(file.verify_password("alice", "correct horse"));
        assert!(!file.verify_password("alice", "correct horse "));
        assert!(!file.verify_password("bob", "correct horse"));
    }

    #[test]
    fn hash_password_limits() {
        assert_eq!(
            hash_password("p", &salt(), 4095),
            Err(HashError::Iterations { iterations: 4095 })
        );
        assert_eq!(
            hash_password("p", &[1; 8], 4096),
            Err(HashError::SaltLength { len: 8 })
        );
    }

    #[test]
    fn parses_comments_blank_lines_and_crlf() {
        let text = format!(
            "# users\r\n\r\n   \nuser:{PENCIL}\r\n  # indented comment\n\tbob:{PENCIL}  \n"
        );
        let file = PasswordFile::parse(&text);
        let Ok(file) = file else {
            panic!("{file:?}");
        };
        assert_eq!(file.len(), 2);
        assert!(file.contains("user") && file.contains("bob"));
        assert!(!file.contains("# users"));
        assert!(file.verify_password("user", "pencil"));
        assert!(file.verify_password("bob", "pencil"));
        assert!(!file.verify_password("bob", "pen"));
        let Some(stored) = file.scram_sha256("user") else {
            panic!("user missing");
        };
        assert_eq!(stored.verifier(), PENCIL);
        assert!(PasswordFile::parse("").is_ok_and(|f| f.is_empty()));
        assert!(
            "# nothing\n"
                .parse::<PasswordFile>()
                .is_ok_and(|f| f.is_empty())
        );
    }

    #[test]
    fn errors_name_the_line() {
        let good = format!("user:{PENCIL}\n");
        type Check = fn(&PasswordFileError) -> bool;
        let cases: Vec<(String, usize, Check)> = vec![
            (format!("{good}# c\nnocolon\n"), 3, |e| {
                matches!(e, PasswordFileError::MissingSeparator { .. })
            }),
            (format!("\n:{PENCIL}"), 2, |e| {
                matches!(e, PasswordFileError::InvalidName { .. })
            }),
            (format!("a\u{7}b:{PENCIL}"), 1, |e| {
                matches!(e, PasswordFileError::InvalidName { .. })
            }),
            (format!("{good}{good}"), 2, |e| {
                matches!(e, PasswordFileError::DuplicateUser { first: 1, .. })
            }),
            ("user:md5abcdef\n".to_owned(), 1, |e| {
                matches!(e, PasswordFileError::UnsupportedScheme { .. })
            }),
            ("user:SCRAM-SHA-1$4096:c2FsdA==$a:b".to_owned(), 1, |e| {
                matches!(e, PasswordFileError::UnsupportedScheme { .. })
            }),
            (
                "x\ny\n\nuser:SCRAM-SHA-256$4096:c2FsdA==".to_owned(),
                1,
                |e| matches!(e, PasswordFileError::MissingSeparator { .. }),
            ),
            ("#\nuser:SCRAM-SHA-256$4096:c2FsdA==".to_owned(), 2, |e| {
                matches!(e, PasswordFileError::Malformed { .. })
            }),
            (
                PENCIL.replace("4096", "4095").replace("SCRAM", "u:SCRAM"),
                1,
                |e| matches!(e, PasswordFileError::Iterations { .. }),
            ),
            (
                PENCIL.replace("4096", "+4096").replace("SCRAM", "u:SCRAM"),
                1,
                |e| matches!(e, PasswordFileError::Iterations { .. }),
            ),
            (
                PENCIL
                    .replace("4096", "99999999999")
                    .replace("SCRAM", "u:SCRAM"),
                1,
                |e| matches!(e, PasswordFileError::Iterations { .. }),
            ),
            (
                PENCIL.replace("W22Z", "W 2Z").replace("SCRAM", "u:SCRAM"),
                1,
                |e| matches!(e, PasswordFileError::InvalidValue { field: "salt", .. }),
            ),
            (
                PENCIL
                    .replace("W22ZaJ0SNY7soEsUEjb6gQ==", "")
                    .replace("SCRAM", "u:SCRAM"),
                1,
                |e| matches!(e, PasswordFileError::InvalidValue { field: "salt", .. }),
            ),
            (
                PENCIL.replace("WG5d", "WG5").replace("SCRAM", "u:SCRAM"),
                1,
                |e| {
                    matches!(
                        e,
                        PasswordFileError::InvalidValue {
                            field: "StoredKey",
                            ..
                        }
                    )
                },
            ),
            (
                format!("{good}\n\nv:{}", PENCIL.replace("4qY=", "4qY")),
                4,
                |e| {
                    matches!(
                        e,
                        PasswordFileError::InvalidValue {
                            field: "StoredKey",
                            ..
                        }
                    )
                },
            ),
            (format!("u:{PENCIL}AAAA"), 1, |e| {
                matches!(
                    e,
                    PasswordFileError::InvalidValue {
                        field: "ServerKey",
                        ..
                    }
                )
            }),
            (format!("{good}u:{}", "A".repeat(MAX_LINE_LEN)), 2, |e| {
                matches!(e, PasswordFileError::LineTooLong { .. })
            }),
        ];
        for (text, line, check) in cases {
            let e = parse_err(&text);
            assert_eq!(e.line(), line, "{text:?}: {e}");
            assert!(check(&e), "{text:?}: {e:?}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
        }
    }
}
