//! The base64 of SMTP AUTH (RFC 4954 §4), strict.
//!
//! Challenges and responses travel as base64 (RFC 4648 §4, the standard alphabet with
//! padding). Decoding is strict: no whitespace anywhere, canonical padding only, no bits left
//! over in the last character. Anything else is a response the server "cannot Base64 decode",
//! answered with 501 5.5.2. Two lines are not base64:
//! - `=` is the empty initial response (RFC 4954 §4: `AUTH PLAIN =`). It is also accepted as an
//!   empty response later in the exchange, where an empty line is the regular form;
//! - `*` cancels the exchange (RFC 4954 §4), answered with 501.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::MAX_RESPONSE_LEN;

/// The line a client sends to cancel an exchange (RFC 4954 §4).
pub const CANCEL: &str = "*";

/// The initial response that stands for zero octets (RFC 4954 §4).
pub const EMPTY_INITIAL_RESPONSE: &str = "=";

/// A decoded client response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The decoded octets (empty for an empty line or `=`).
    Data(Vec<u8>),
    /// The client cancelled the exchange with `*`.
    Cancel,
}

/// Why a response line could not be decoded. Always the peer's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The line is longer than [`MAX_RESPONSE_LEN`]; it was not decoded.
    #[error("line of {len} characters is longer than the limit of {MAX_RESPONSE_LEN}")]
    TooLong {
        /// Its length, in characters.
        len: usize,
    },
    /// The line is not strict base64: a character outside the alphabet (whitespace
    /// included), wrong or missing padding, or bits left over in the last character.
    #[error("not valid base64")]
    InvalidBase64,
}

/// Decodes one response line (without its CRLF): `*` is [`Response::Cancel`], an empty line or
/// `=` is empty data, anything else must be strict base64 of at most [`MAX_RESPONSE_LEN`]
/// characters. The length is checked before anything is allocated.
pub fn decode_response(line: &str) -> Result<Response, ResponseError> {
    if line.len() > MAX_RESPONSE_LEN {
        return Err(ResponseError::TooLong { len: line.len() });
    }
    match line {
        CANCEL => Ok(Response::Cancel),
        "" | EMPTY_INITIAL_RESPONSE => Ok(Response::Data(Vec::new())),
        _ => decode(line)
            .map(Response::Data)
            .ok_or(ResponseError::InvalidBase64),
    }
}

/// Encodes a challenge or a response (the empty string for zero octets: the server sends
/// `334 ` with nothing after the space, the client an empty line).
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Encodes an initial response for the AUTH command: `=` for zero octets (RFC 4954 §4).
pub fn encode_initial_response(data: &[u8]) -> String {
    if data.is_empty() {
        EMPTY_INITIAL_RESPONSE.to_owned()
    } else {
        encode(data)
    }
}

/// Strict base64 decoding of a value inside a mechanism message (a SCRAM salt, proof or
/// signature): `None` unless canonical base64.
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"\0user\0pencil",
            &[0xff; 70],
        ] {
            let line = encode(data);
            assert_eq!(decode_response(&line), Ok(Response::Data(data.to_vec())));
        }
        assert_eq!(encode(b"Username:"), "VXNlcm5hbWU6");
        assert_eq!(encode(b"Password:"), "UGFzc3dvcmQ6");
    }

    #[test]
    fn empty_and_cancel() {
        assert_eq!(decode_response(""), Ok(Response::Data(Vec::new())));
        assert_eq!(decode_response("="), Ok(Response::Data(Vec::new())));
        assert_eq!(decode_response("*"), Ok(Response::Cancel));
        assert_eq!(encode_initial_response(b""), "=");
        assert_eq!(encode_initial_response(b"x"), "eA==");
        assert_eq!(encode(b""), "");
    }

    #[test]
    fn strict() {
        for bad in [
            "dXNlcg",       // missing padding
            "dXNlcg=",      // short padding
            "dXNlcg===",    // extra padding
            "dXN lcg==",    // space inside
            "dXNl\tcg==",   // tab inside
            " dXNlcg==",    // leading space
            "dXNlcg== ",    // trailing space
            "dXNlcg==\r",   // stray CR
            "dXNlcg-_",     // URL-safe alphabet
            "dXNlch==",     // bits left over in the last character
            "dXNl=cg=",     // padding in the middle
            "**",           // not a cancel
            "==",           // not the empty response
            "d",            // impossible length
            "dXNlcg==dXNl", // data after padding
            "é",
        ] {
            assert_eq!(
                decode_response(bad),
                Err(ResponseError::InvalidBase64),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn too_long_is_refused_before_decoding() {
        let ok = "A".repeat(MAX_RESPONSE_LEN);
        assert!(matches!(decode_response(&ok), Ok(Response::Data(_))));
        let long = "A".repeat(MAX_RESPONSE_LEN + 4);
        assert_eq!(
            decode_response(&long),
            Err(ResponseError::TooLong {
                len: MAX_RESPONSE_LEN + 4
            })
        );
    }
}
