//! The part of SASLprep (RFC 4013) that needs no Unicode tables: mapping (§2.1) and prohibited
//! output (§2.3). NFKC (§2.2), the bidirectional check (§2.4) and unassigned code points (§2.5)
//! are not implemented; the module documentation of [`crate::sasl`] says what follows.
//!
//! On ASCII this is exact: NFKC leaves ASCII alone, no ASCII character is mapped, and the only
//! ASCII characters prohibited are the controls.

use std::borrow::Cow;

/// RFC 3454 B.1, "commonly mapped to nothing" (RFC 4013 §2.1).
fn mapped_to_nothing(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{34F}'
            | '\u{1806}'
            | '\u{180B}'..='\u{180D}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
    )
}

/// RFC 3454 C.1.2, non-ASCII space characters, mapped to SPACE (RFC 4013 §2.1). U+200B is also
/// in B.1; it is removed, as [`mapped_to_nothing`] is applied first.
fn non_ascii_space(c: char) -> bool {
    matches!(
        c,
        '\u{A0}' | '\u{1680}' | '\u{2000}'..='\u{200B}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// RFC 4013 §2.3 prohibited output: RFC 3454 C.1.2 (already mapped away), C.2.1, C.2.2, C.3,
/// C.4, C.5 (surrogates cannot occur in a `str`), C.6, C.7, C.8 and C.9.
fn prohibited(c: char) -> bool {
    let cp = u32::from(c);
    matches!(
        cp,
        // C.2.1 ASCII control characters.
        0x00..=0x1F | 0x7F
        // C.2.2 non-ASCII control characters.
        | 0x80..=0x9F
        | 0x6DD
        | 0x70F
        | 0x180E
        | 0x200C
        | 0x200D
        | 0x2028
        | 0x2029
        | 0x2060..=0x2063
        | 0xFEFF
        | 0x1D173..=0x1D17A
        // C.3 private use.
        | 0xE000..=0xF8FF
        | 0xF0000..=0xFFFFD
        | 0x10_0000..=0x10_FFFD
        // C.4 non-character code points (the last two of every plane are below).
        | 0xFDD0..=0xFDEF
        // C.6 inappropriate for plain text.
        | 0xFFF9..=0xFFFD
        // C.7 inappropriate for canonical representation.
        | 0x2FF0..=0x2FFB
        // C.8 change display properties or deprecated.
        | 0x340
        | 0x341
        | 0x200E
        | 0x200F
        | 0x202A..=0x202E
        | 0x206A..=0x206F
        // C.9 tagging characters.
        | 0xE0001
        | 0xE0020..=0xE007F
    ) || cp & 0xFFFE == 0xFFFE // C.4: U+xxFFFE and U+xxFFFF in every plane.
}

/// SASLprep, the subset described above, as for a "query" (RFC 4013 §2.5: unassigned code
/// points allowed). `Err` carries the first prohibited character.
pub(crate) fn saslprep(s: &str) -> Result<Cow<'_, str>, char> {
    if s.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if mapped_to_nothing(c) {
            continue;
        }
        let c = if non_ascii_space(c) { ' ' } else { c };
        if prohibited(c) {
            return Err(c);
        }
        out.push(c);
    }
    Ok(Cow::Owned(out))
}

/// The octets a password stands for in SCRAM and in a stored verifier: its SASLprep form, or,
/// when SASLprep refuses it, the password as given (PostgreSQL does the same). Used alike by
/// hashing, by the PLAIN / LOGIN check and by the SCRAM client, so all three agree.
pub(crate) fn prepare_password(password: &str) -> Cow<'_, str> {
    saslprep(password).unwrap_or(Cow::Borrowed(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_unchanged() {
        assert!(matches!(saslprep("pencil"), Ok(Cow::Borrowed("pencil"))));
        assert_eq!(saslprep("a b~!").as_deref(), Ok("a b~!"));
        assert_eq!(saslprep("").as_deref(), Ok(""));
    }

    #[test]
    fn rfc_4013_section_3_examples() {
        // RFC 4013 §3: SOFT HYPHEN mapped to nothing, U+00AA kept (NFKC would make it "a";
        // not implemented), control character prohibited.
        assert_eq!(saslprep("I\u{AD}X").as_deref(), Ok("IX"));
        assert_eq!(saslprep("user").as_deref(), Ok("user"));
        assert_eq!(saslprep("USER").as_deref(), Ok("USER"));
        assert_eq!(saslprep("\u{7}"), Err('\u{7}'));
    }

    #[test]
    fn mapping() {
        assert_eq!(saslprep("a\u{A0}b\u{3000}c").as_deref(), Ok("a b c"));
        assert_eq!(
            saslprep("a\u{200B}b\u{FEFF}c\u{FE0F}").as_deref(),
            Ok("abc")
        );
        assert_eq!(saslprep("jérôme").as_deref(), Ok("jérôme"));
    }

    #[test]
    fn prohibited_output() {
        for c in [
            '\u{0}',
            '\u{1F}',
            '\u{7F}',
            '\u{85}',
            '\u{2028}',
            '\u{E000}',
            '\u{FDD0}',
            '\u{FFFE}',
            '\u{1FFFF}',
            '\u{FFFC}',
            '\u{2FF0}',
            '\u{202E}',
            '\u{E0001}',
            '\u{10FFFD}',
        ] {
            let s = format!("ok{c}");
            assert_eq!(saslprep(&s), Err(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn password_falls_back_to_raw() {
        assert_eq!(prepare_password("pass\u{AD}word"), "password");
        assert_eq!(prepare_password("pass\u{7}word"), "pass\u{7}word");
    }
}
