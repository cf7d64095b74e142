//! What the SCRAM client and server share (RFC 5802 §5, §7): the `saslname` escaping, nonces,
//! attributes, and the proof and signature computations.

use super::MAX_NONCE_LEN;
use super::credentials::{KEY_LEN, hmac_sha256};

/// The mechanism name.
pub(crate) const NAME: &str = "SCRAM-SHA-256";

/// `saslname` (RFC 5802 §7): `,` is sent as `=2C` and `=` as `=3D`.
pub(crate) fn encode_saslname(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes a `saslname`: `=2C` and `=3D` only; a bare `,` cannot occur (attributes are split
/// on it), any other `=` is an error (RFC 5802 §5.1: the server must fail the exchange).
pub(crate) fn decode_saslname(s: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err("'=' not followed by 2C or 3D in a user name"),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks a nonce part: 1 to [`MAX_NONCE_LEN`] printable ASCII characters other than `,`
/// (RFC 5802 §7 `printable`).
pub(crate) fn check_nonce(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        return Err("empty nonce");
    }
    if s.len() > MAX_NONCE_LEN {
        return Err("nonce too long");
    }
    if !s.bytes().all(|b| (0x21..=0x7E).contains(&b) && b != b',') {
        return Err("nonce must be printable ASCII without ','");
    }
    Ok(())
}

/// The value of attribute `name` in `part` (`"r=abc"` with `'r'` gives `"abc"`).
pub(crate) fn attribute(part: &str, name: u8) -> Option<&str> {
    match part.as_bytes() {
        [n, b'=', ..] if *n == name => Some(&part[2..]),
        _ => None,
    }
}

/// Whether `part` is a well-formed `attr-val` (RFC 5802 §7: `ALPHA "=" value`, value not
/// empty); extensions the exchange does not know are skipped if they are.
pub(crate) fn is_extension(part: &str) -> bool {
    matches!(part.as_bytes(), [a, b'=', _, ..] if a.is_ascii_alphabetic())
}

/// `AuthMessage = client-first-message-bare "," server-first-message ","
/// client-final-message-without-proof` (RFC 5802 §3).
pub(crate) fn auth_message(
    client_first_bare: &str,
    server_first: &str,
    final_bare: &str,
) -> String {
    format!("{client_first_bare},{server_first},{final_bare}")
}

/// `ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)`; applied to a received proof, the
/// same computation gives back ClientKey.
pub(crate) fn xor_client_signature(
    key_or_proof: &[u8; KEY_LEN],
    stored_key: &[u8; KEY_LEN],
    auth_message: &str,
) -> [u8; KEY_LEN] {
    let signature = hmac_sha256(stored_key, auth_message.as_bytes());
    let mut out = [0u8; KEY_LEN];
    for (o, (a, b)) in out
        .iter_mut()
        .zip(key_or_proof.iter().zip(signature.iter()))
    {
        *o = a ^ b;
    }
    out
}

/// `ServerSignature = HMAC(ServerKey, AuthMessage)`.
pub(crate) fn server_signature(server_key: &[u8; KEY_LEN], auth_message: &str) -> [u8; KEY_LEN] {
    hmac_sha256(server_key, auth_message.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_round_trip() {
        for name in ["user", "a,b", "a=b", "=,=", "", "jérôme=2C"] {
            let enc = encode_saslname(name);
            assert!(!enc.contains(','), "{enc}");
            assert_eq!(decode_saslname(&enc).as_deref(), Ok(name));
        }
        assert_eq!(encode_saslname("a=b,c"), "a=3Db=2Cc");
    }

    #[test]
    fn saslname_bad_escapes() {
        for bad in ["a=", "a=2", "a=2c", "a=3d", "a=41", "=", "==3D"] {
            assert!(decode_saslname(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nonces() {
        assert_eq!(
            check_nonce("rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"),
            Ok(())
        );
        assert!(check_nonce("").is_err());
        assert!(check_nonce("a,b").is_err());
        assert!(check_nonce("a b").is_err());
        assert!(check_nonce("é").is_err());
        assert!(check_nonce(&"x".repeat(MAX_NONCE_LEN + 1)).is_err());
        assert!(check_nonce(&"x".repeat(MAX_NONCE_LEN)).is_ok());
    }

    #[test]
    fn attributes() {
        assert_eq!(attribute("r=abc", b'r'), Some("abc"));
        assert_eq!(attribute("r=", b'r'), Some(""));
        assert_eq!(attribute("s=abc", b'r'), None);
        assert_eq!(attribute("r", b'r'), None);
        assert!(is_extension("x=1"));
        assert!(!is_extension("x="));
        assert!(!is_extension("1=x"));
        assert!(!is_extension("xy=1"));
    }
}
