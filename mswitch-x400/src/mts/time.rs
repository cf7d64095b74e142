//! X.411 `Time ::= UTCTime` (X.680 §47): `YYMMDDhhmm[ss]` followed by `Z` or a `±hhmm`
//! offset. Two-digit years 50–99 are 1950–1999, 00–49 are 2000–2049.

use mswitch_core::Timestamp;

use crate::ber::{BerError, Tag, Tlv, Writer};

/// The longest UTCTime text: `YYMMDDhhmmss+hhmm`.
pub const MAX_UTC_TIME_LENGTH: usize = 17;

/// A UTCTime, kept as the text received so that it re-encodes unchanged; validated when
/// built.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UtcTime(String);

impl UtcTime {
    /// Validates a UTCTime text.
    pub fn parse(text: &str) -> Result<Self, BerError> {
        let t = UtcTime(text.to_owned());
        t.fields().ok_or(BerError::Invalid("UTCTime"))?;
        Ok(t)
    }

    /// The UTCTime for a number of seconds since the Unix epoch, as `YYMMDDhhmmssZ`; `None`
    /// outside 1950–2049, which UTCTime cannot express.
    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        if !(1950..=2049).contains(&y) {
            return None;
        }
        Some(UtcTime(format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            y % 100,
            m,
            d,
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )))
    }

    /// The UTCTime for a core [`Timestamp`] (milliseconds are dropped).
    pub fn from_timestamp(t: Timestamp) -> Option<Self> {
        Self::from_unix_seconds(i64::try_from(t.millis() / 1000).ok()?)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Seconds since the Unix epoch, the offset applied.
    pub fn unix_seconds(&self) -> i64 {
        // Validated on construction; fields() cannot fail here.
        let Some((y, mo, d, h, mi, s, off)) = self.fields() else {
            return 0;
        };
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - off
    }

    /// As a core [`Timestamp`]; `None` before 1970.
    pub fn to_timestamp(&self) -> Option<Timestamp> {
        u64::try_from(self.unix_seconds())
            .ok()
            .map(Timestamp::from_secs)
    }

    /// (year, month, day, hour, minute, second, offset in seconds east of UTC).
    #[allow(clippy::type_complexity)]
    fn fields(&self) -> Option<(i64, i64, i64, i64, i64, i64, i64)> {
        let b = self.0.as_bytes();
        if b.len() > MAX_UTC_TIME_LENGTH || b.len() < 11 {
            return None;
        }
        let num = |i: usize| -> Option<i64> {
            let (a, c) = (*b.get(i)?, *b.get(i + 1)?);
            (a.is_ascii_digit() && c.is_ascii_digit())
                .then(|| i64::from(a - b'0') * 10 + i64::from(c - b'0'))
        };
        let yy = num(0)?;
        let y = if yy >= 50 { 1900 + yy } else { 2000 + yy };
        let (mo, d, h, mi) = (num(2)?, num(4)?, num(6)?, num(8)?);
        let mut pos = 10;
        let mut s = 0;
        if b.get(pos).is_some_and(u8::is_ascii_digit) {
            s = num(pos)?;
            pos += 2;
        }
        let off = match b.get(pos)? {
            b'Z' if b.len() == pos + 1 => 0,
            sign @ (b'+' | b'-') if b.len() == pos + 5 => {
                let (oh, om) = (num(pos + 1)?, num(pos + 3)?);
                if oh > 23 || om > 59 {
                    return None;
                }
                let o = oh * 3600 + om * 60;
                if *sign == b'-' { -o } else { o }
            }
            _ => return None,
        };
        let valid = (1..=12).contains(&mo)
            && (1..=days_in_month(y, mo)).contains(&d)
            && h <= 23
            && mi <= 59
            && s <= 59;
        valid.then_some((y, mo, d, h, mi, s, off))
    }

    pub(crate) fn decode(tlv: &Tlv<'_>) -> Result<Self, BerError> {
        let text = tlv.string("UTCTime", MAX_UTC_TIME_LENGTH)?;
        UtcTime::parse(&text)
    }

    pub(crate) fn encode(&self, w: &mut Writer, tag: Tag) {
        w.string(tag, &self.0)
    }
}

impl std::fmt::Display for UtcTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for UtcTime {
    type Err = BerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UtcTime::parse(s)
    }
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
