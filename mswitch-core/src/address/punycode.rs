//! Punycode (RFC 3492), used to compare IDN domains in their A-label form.
//!
//! Only the Bootstring parameters for Punycode (RFC 3492 §5) are implemented. The full IDNA
//! mapping (UTS #46) is not: a U-label is lower-cased with Unicode's simple lower-case mapping
//! before encoding, which covers the common case-insensitive comparison without pulling in the
//! Unicode normalisation tables.

const BASE: u32 = 36;
const T_MIN: u32 = 1;
const T_MAX: u32 = 26;
const SKEW: u32 = 38;
const DAMP: u32 = 700;
const INITIAL_BIAS: u32 = 72;
const INITIAL_N: u32 = 0x80;

/// Longest label (in code points) accepted for encoding or decoding; a DNS label is at most
/// 63 octets, so anything longer is invalid before we start.
const MAX_LABEL_CHARS: usize = 63;

/// Why a label could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PunycodeError {
    /// The input is longer than a DNS label can be.
    #[error("label longer than {MAX_LABEL_CHARS} characters")]
    TooLong,
    /// A character outside the Punycode alphabet, or a truncated encoding.
    #[error("invalid punycode encoding")]
    Invalid,
    /// Arithmetic overflow while decoding (a hostile or corrupt encoding).
    #[error("punycode value overflow")]
    Overflow,
}

fn adapt(mut delta: u32, num_points: u32, first_time: bool) -> u32 {
    delta /= if first_time { DAMP } else { 2 };
    delta += delta / num_points;
    let mut k = 0;
    while delta > ((BASE - T_MIN) * T_MAX) / 2 {
        delta /= BASE - T_MIN;
        k += BASE;
    }
    k + (((BASE - T_MIN + 1) * delta) / (delta + SKEW))
}

fn digit_char(d: u32) -> char {
    // d < 36 by construction.
    let b = if d < 26 {
        b'a' + d as u8
    } else {
        b'0' + (d as u8 - 26)
    };
    char::from(b)
}

fn char_digit(c: char) -> Option<u32> {
    match c {
        'a'..='z' => Some(c as u32 - 'a' as u32),
        'A'..='Z' => Some(c as u32 - 'A' as u32),
        '0'..='9' => Some(c as u32 - '0' as u32 + 26),
        _ => None,
    }
}

fn threshold(k: u32, bias: u32) -> u32 {
    if k <= bias {
        T_MIN
    } else if k >= bias + T_MAX {
        T_MAX
    } else {
        k - bias
    }
}

/// Encodes one label (without the `xn--` prefix), RFC 3492 §6.3.
pub fn encode(label: &str) -> Result<String, PunycodeError> {
    let input: Vec<u32> = label.chars().map(u32::from).collect();
    if input.len() > MAX_LABEL_CHARS {
        return Err(PunycodeError::TooLong);
    }
    let mut output: String = label.chars().filter(char::is_ascii).collect();
    let basic = output.len() as u32;
    let mut handled = basic;
    if basic > 0 {
        output.push('-');
    }
    let mut n = INITIAL_N;
    let mut delta: u32 = 0;
    let mut bias = INITIAL_BIAS;
    let total = input.len() as u32;
    while handled < total {
        let m = input
            .iter()
            .copied()
            .filter(|&c| c >= n)
            .min()
            .ok_or(PunycodeError::Invalid)?;
        delta = (m - n)
            .checked_mul(handled + 1)
            .and_then(|x| delta.checked_add(x))
            .ok_or(PunycodeError::Overflow)?;
        n = m;
        for &c in &input {
            if c < n {
                delta = delta.checked_add(1).ok_or(PunycodeError::Overflow)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = threshold(k, bias);
                    if q < t {
                        break;
                    }
                    output.push(digit_char(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                output.push(digit_char(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta += 1;
        n += 1;
    }
    Ok(output)
}

/// Decodes one label (without the `xn--` prefix), RFC 3492 §6.2.
pub fn decode(encoded: &str) -> Result<String, PunycodeError> {
    if encoded.len() > MAX_LABEL_CHARS {
        return Err(PunycodeError::TooLong);
    }
    if !encoded.is_ascii() {
        return Err(PunycodeError::Invalid);
    }
    let (basic, extended) = match encoded.rfind('-') {
        Some(pos) => (&encoded[..pos], &encoded[pos + 1..]),
        None => ("", encoded),
    };
    let mut output: Vec<char> = basic.chars().collect();
    let mut n = INITIAL_N;
    let mut i: u32 = 0;
    let mut bias = INITIAL_BIAS;
    let mut digits = extended.chars().peekable();
    while digits.peek().is_some() {
        let old_i = i;
        let mut w: u32 = 1;
        let mut k = BASE;
        loop {
            let c = digits.next().ok_or(PunycodeError::Invalid)?;
            let digit = char_digit(c).ok_or(PunycodeError::Invalid)?;
            i = digit
                .checked_mul(w)
                .and_then(|x| i.checked_add(x))
                .ok_or(PunycodeError::Overflow)?;
            let t = threshold(k, bias);
            if digit < t {
                break;
            }
            w = w.checked_mul(BASE - t).ok_or(PunycodeError::Overflow)?;
            k += BASE;
        }
        let len = output.len() as u32 + 1;
        bias = adapt(i - old_i, len, old_i == 0);
        n = n.checked_add(i / len).ok_or(PunycodeError::Overflow)?;
        i %= len;
        let c = char::from_u32(n).ok_or(PunycodeError::Invalid)?;
        if output.len() >= MAX_LABEL_CHARS {
            return Err(PunycodeError::TooLong);
        }
        output.insert(i as usize, c);
        i += 1;
    }
    Ok(output.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3492 §7.1 sample strings (lower-cased: our encoder emits lower-case digits).
    const SAMPLES: &[(&str, &str)] = &[
        // (A) Arabic (Egyptian)
        (
            "\u{0644}\u{064A}\u{0647}\u{0645}\u{0627}\u{0628}\u{062A}\u{0643}\u{0644}\u{0645}\u{0648}\u{0634}\u{0639}\u{0631}\u{0628}\u{064A}\u{061F}",
            "egbpdaj6bu4bxfgehfvwxn",
        ),
        // (B) Chinese (simplified)
        (
            "\u{4ED6}\u{4EEC}\u{4E3A}\u{4EC0}\u{4E48}\u{4E0D}\u{8BF4}\u{4E2D}\u{6587}",
            "ihqwcrb4cv8a8dqg056pqjye",
        ),
        // (L) 3<nen>B<gumi><kinpachi><sensei>
        (
            "3\u{5E74}B\u{7D44}\u{91D1}\u{516B}\u{5148}\u{751F}",
            "3B-ww4c5e180e575a65lsy2b",
        ),
        // (R) <sono><supiido><de>
        (
            "\u{305D}\u{306E}\u{30B9}\u{30D4}\u{30FC}\u{30C9}\u{3067}",
            "d9juau41awczczp",
        ),
    ];

    #[test]
    fn rfc3492_samples_round_trip() {
        for (plain, enc) in SAMPLES {
            assert_eq!(encode(plain).as_deref(), Ok(*enc), "encoding {plain}");
            assert_eq!(decode(enc).as_deref(), Ok(*plain), "decoding {enc}");
        }
    }

    #[test]
    fn common_idn_label() {
        assert_eq!(encode("bücher").as_deref(), Ok("bcher-kva"));
        assert_eq!(decode("bcher-kva").as_deref(), Ok("bücher"));
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        assert!(matches!(
            decode("99999999999999"),
            Err(PunycodeError::Overflow)
        ));
        assert!(matches!(decode("a-!"), Err(PunycodeError::Invalid)));
        assert!(matches!(decode("ü"), Err(PunycodeError::Invalid)));
        assert!(matches!(
            decode(&"a".repeat(64)),
            Err(PunycodeError::TooLong)
        ));
        // Truncated: a digit that asks for continuation and none follows.
        assert!(matches!(decode("zz"), Err(PunycodeError::Invalid)));
    }
}
