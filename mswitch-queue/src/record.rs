//! Segment files and their records.
//!
//! ```text
//! segment = magic:"MSWQSEG1" *record
//! record  = len:u32le crc:u32le body      ; body is `len` octets
//! body    = type:u8 payload
//! crc     = CRC32C over len (4 octets, LE) and body
//! ```
//! Every record is length-prefixed and checksummed (the length too), so no octet of a message
//! can be taken for structure, and a damaged length is detected like damaged data.
//!
//! | type | payload |
//! |---|---|
//! | 1 MESSAGE | id:u64le env_len:u32le envelope content |
//! | 2 OUTCOME | id:u64le *( index:u32le state_len:u32le state ) |
//! | 3 REMOVE  | id:u64le |

/// Magic at the start of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"MSWQSEG1";
/// Octets before the first record of a segment.
pub const SEGMENT_HEADER_LEN: usize = SEGMENT_MAGIC.len();
/// Octets of a record's frame before its body.
pub const FRAME_LEN: usize = 8;
/// Largest record body accepted (a message of up to 1 GiB plus its envelope).
pub const MAX_RECORD_LEN: usize = (1 << 30) + (1 << 20);

/// A new message.
pub const TYPE_MESSAGE: u8 = 1;
/// New states for some recipients of a message.
pub const TYPE_OUTCOME: u8 = 2;
/// A message is gone.
pub const TYPE_REMOVE: u8 = 3;

/// Appends one framed record to `out`.
pub fn frame(out: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) {
    let body_len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let len = u32::try_from(body_len).unwrap_or(u32::MAX);
    let len_bytes = len.to_le_bytes();
    let mut crc = crc32c::crc32c(&len_bytes);
    crc = crc32c::crc32c_append(crc, &[kind]);
    for p in parts {
        crc = crc32c::crc32c_append(crc, p);
    }
    out.reserve(FRAME_LEN + body_len);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// A record found in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Its type.
    pub kind: u8,
    /// Its payload.
    pub payload: &'a [u8],
    /// Offset of its frame in the segment.
    pub offset: usize,
    /// Offset of its payload in the segment.
    pub payload_offset: usize,
}

/// Reads the record at `pos`: `Some((record, next_pos))` if a complete record with a valid
/// checksum and known type starts there.
pub fn read_at(buf: &[u8], pos: usize) -> Option<(RawRecord<'_>, usize)> {
    let frame = buf.get(pos..pos.checked_add(FRAME_LEN)?)?;
    let len_bytes: [u8; 4] = frame[..4].try_into().ok()?;
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 || len > MAX_RECORD_LEN {
        return None;
    }
    let crc = u32::from_le_bytes(frame[4..8].try_into().ok()?);
    let body_start = pos + FRAME_LEN;
    let body = buf.get(body_start..body_start.checked_add(len)?)?;
    let kind = body[0];
    if !matches!(kind, TYPE_MESSAGE | TYPE_OUTCOME | TYPE_REMOVE) {
        return None;
    }
    if crc32c::crc32c_append(crc32c::crc32c(&len_bytes), body) != crc {
        return None;
    }
    Some((
        RawRecord {
            kind,
            payload: &body[1..],
            offset: pos,
            payload_offset: body_start + 1,
        },
        body_start + len,
    ))
}

/// The first offset after `pos` where a valid record starts, if any (resynchronisation after
/// damage).
pub fn resync(buf: &[u8], pos: usize) -> Option<usize> {
    (pos + 1..buf.len().saturating_sub(FRAME_LEN)).find(|&p| read_at(buf, p).is_some())
}

/// Reads a little-endian u64 at the start of `b`.
pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Reads a little-endian u32 at the start of `b`.
pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_records_read_back_and_damage_is_detected() {
        let mut buf = SEGMENT_MAGIC.to_vec();
        frame(&mut buf, TYPE_REMOVE, &[&7u64.to_le_bytes()]);
        let second = buf.len();
        frame(&mut buf, TYPE_MESSAGE, &[&1u64.to_le_bytes(), b"abc"]);
        let (r, next) = read_at(&buf, SEGMENT_HEADER_LEN).expect("first record");
        assert_eq!((r.kind, u64_at(r.payload, 0)), (TYPE_REMOVE, Some(7)));
        assert_eq!(next, second);
        let (r, end) = read_at(&buf, next).expect("second record");
        assert_eq!(&r.payload[8..], b"abc");
        assert_eq!(end, buf.len());
        // Every single-bit flip anywhere in the records is detected.
        for i in SEGMENT_HEADER_LEN..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                let first = read_at(&bad, SEGMENT_HEADER_LEN);
                let ok = first.is_some_and(|(_, n)| n == second && read_at(&bad, n).is_some());
                assert!(!ok, "flip at {i} bit {bit} went unnoticed");
            }
        }
        // Resync finds the second record after damage to the first.
        let mut bad = buf.clone();
        bad[SEGMENT_HEADER_LEN + 9] ^= 0xff;
        assert_eq!(resync(&bad, SEGMENT_HEADER_LEN), Some(second));
        // Every truncation is incomplete, never a record.
        for cut in SEGMENT_HEADER_LEN..second {
            assert!(read_at(&buf[..cut], SEGMENT_HEADER_LEN).is_none());
        }
    }
}
