//! RFC 1006 packets (TPKT): how TPDUs are framed on a TCP stream (RFC 1006 §6).
//!
//! A TPKT is a 4-octet header, `03 00 <length, 2 octets big-endian>`, followed by one TPDU. The
//! length counts the header, so it runs from [`MIN_LEN`] (the header and the smallest TPDU, 3
//! octets) to [`MAX_LEN`]. No I/O here: [`frame_len`] and [`parse`] look at the front of a
//! stream buffer and say `Ok(None)` while more octets are needed; [`Packet`] is a checked view
//! of one packet; [`Repr`] writes the header.

/// The protocol version (RFC 1006 §6, `vrsn`): 3.
pub const VERSION: u8 = 3;

/// Octets in the header: version, reserved, length (RFC 1006 §6).
pub const HEADER_LEN: usize = 4;

/// The shortest packet: the header and a 3-octet TPDU (a class 0 DT with no data, RFC 1006
/// §6: "packet length ... minimum value is 7").
pub const MIN_LEN: usize = 7;

/// The longest packet: the largest value of the 16-bit length field.
pub const MAX_LEN: usize = 65_535;

/// The shortest TPDU a packet carries.
pub const MIN_PAYLOAD_LEN: usize = MIN_LEN - HEADER_LEN;

/// The longest TPDU a packet carries (65 531 octets).
pub const MAX_PAYLOAD_LEN: usize = MAX_LEN - HEADER_LEN;

/// A packet that breaks RFC 1006 §6. Every variant but [`TpktError::PayloadLength`] is the
/// peer's fault; that one is a caller's attempt to frame a TPDU no packet can carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TpktError {
    /// The peer sent a version other than [`VERSION`] (or is not speaking RFC 1006 at all).
    #[error("TPKT version {0} (only 3 is defined)")]
    Version(u8),
    /// The peer sent a packet length below [`MIN_LEN`].
    #[error("TPKT length {0} (at least {MIN_LEN})")]
    Length(u16),
    /// The buffer given to [`Packet::new_checked`] ends before the length the header states.
    #[error("TPKT of {expected} octets truncated to {actual}")]
    Truncated {
        /// The length the header states.
        expected: usize,
        /// The octets in the buffer.
        actual: usize,
    },
    /// A TPDU of this many octets cannot be framed (it must be
    /// [`MIN_PAYLOAD_LEN`]..=[`MAX_PAYLOAD_LEN`] octets).
    #[error("a TPDU of {0} octets does not fit a TPKT ({MIN_PAYLOAD_LEN} to {MAX_PAYLOAD_LEN})")]
    PayloadLength(usize),
}

/// The length of the packet at the front of `buf`, header included, once its header is there.
///
/// `Ok(None)` while fewer than [`HEADER_LEN`] octets are buffered. The length is checked
/// (version 3, at least [`MIN_LEN`]) before any octet of the body is needed, so a caller can
/// refuse an oversized packet before buffering it. The reserved octet is ignored, as RFC 1006
/// §6 leaves it for further study.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, TpktError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if header[0] != VERSION {
        return Err(TpktError::Version(header[0]));
    }
    let len = u16::from_be_bytes([header[2], header[3]]);
    if usize::from(len) < MIN_LEN {
        return Err(TpktError::Length(len));
    }
    Ok(Some(usize::from(len)))
}

/// The complete packet at the front of `buf`, or `Ok(None)` if more octets are needed.
///
/// The view covers exactly one packet: its [`Packet::total_len`] is how many octets of `buf` it
/// consumed; what follows belongs to the next packet.
pub fn parse(buf: &[u8]) -> Result<Option<Packet<&[u8]>>, TpktError> {
    match frame_len(buf)? {
        Some(len) => Ok(buf.get(..len).map(|packet| Packet { buffer: packet })),
        None => Ok(None),
    }
}

/// A view of one TPKT at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view of `buffer` that checks nothing: the accessors may panic on a short buffer.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view of `buffer`, checked: version 3, a length of at least [`MIN_LEN`] and a buffer at
    /// least that long (a longer buffer is allowed; the octets past the packet are not part of
    /// it).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, TpktError> {
        let buf = buffer.as_ref();
        match frame_len(buf)? {
            Some(len) if len <= buf.len() => Ok(Packet { buffer }),
            Some(len) => Err(TpktError::Truncated {
                expected: len,
                actual: buf.len(),
            }),
            None => Err(TpktError::Truncated {
                expected: HEADER_LEN,
                actual: buf.len(),
            }),
        }
    }

    /// The version octet.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The length field: the packet's octets, header included.
    pub fn total_len(&self) -> usize {
        let b = self.buffer.as_ref();
        usize::from(u16::from_be_bytes([b[2], b[3]]))
    }

    /// The TPDU the packet carries.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// The buffer the view was made of.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// The meaning of a TPKT header: how long a TPDU follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    payload_len: usize,
}

impl Repr {
    /// The header for a TPDU of `payload_len` octets, if a packet can carry one that long.
    pub fn new(payload_len: usize) -> Result<Repr, TpktError> {
        if (MIN_PAYLOAD_LEN..=MAX_PAYLOAD_LEN).contains(&payload_len) {
            Ok(Repr { payload_len })
        } else {
            Err(TpktError::PayloadLength(payload_len))
        }
    }

    /// The header of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Repr {
        Repr {
            payload_len: packet.total_len().saturating_sub(HEADER_LEN),
        }
    }

    /// The octets of the TPDU that follows the header.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// The octets of the whole packet, header included.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Appends the header ([`HEADER_LEN`] octets) to `out`; the caller appends the TPDU.
    pub fn emit(&self, out: &mut Vec<u8>) {
        // `new` keeps buffer_len within MAX_LEN, so this never saturates.
        let len = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        let [hi, lo] = len.to_be_bytes();
        out.extend_from_slice(&[VERSION, 0, hi, lo]);
    }
}

/// Appends `tpdu` framed as one packet to `out`.
pub fn emit(tpdu: &[u8], out: &mut Vec<u8>) -> Result<(), TpktError> {
    let repr = Repr::new(tpdu.len())?;
    out.reserve(repr.buffer_len());
    repr.emit(out);
    out.extend_from_slice(tpdu);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1006 §6 "Packet format": `vrsn` 3, reserved, a 16-bit length that includes the
    /// header. The bytes are a class 0 DT carrying "hi" (X.224 §13.7).
    #[test]
    fn frames_a_tpdu() {
        let mut out = Vec::new();
        emit(&[0x02, 0xF0, 0x80, b'h', b'i'], &mut out).expect("fits");
        assert_eq!(out, [0x03, 0x00, 0x00, 0x09, 0x02, 0xF0, 0x80, b'h', b'i']);
        let packet = Packet::new_checked(&out[..]).expect("valid");
        assert_eq!(packet.version(), VERSION);
        assert_eq!(packet.total_len(), 9);
        assert_eq!(packet.payload(), &[0x02, 0xF0, 0x80, b'h', b'i']);
        assert_eq!(Repr::parse(&packet), Repr::new(5).expect("fits"));
        assert_eq!(Repr::new(5).expect("fits").buffer_len(), 9);
    }

    #[test]
    fn needs_more_bytes() {
        let frame = [0x03, 0x00, 0x00, 0x07, 0x02, 0xF0, 0x80];
        for cut in 0..frame.len() {
            assert_eq!(parse(&frame[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(frame_len(&frame[..4]), Ok(Some(7)));
        let packet = parse(&frame).expect("valid").expect("complete");
        assert_eq!(packet.total_len(), 7);
    }

    #[test]
    fn stops_at_the_packet_end() {
        let two = [3, 0, 0, 7, 2, 0xF0, 0x80, 3, 0, 0, 8, 2, 0xF0, 0x80, 1];
        let first = parse(&two).expect("valid").expect("complete");
        assert_eq!(first.total_len(), 7);
        assert_eq!(first.payload(), &[2, 0xF0, 0x80]);
        let second = parse(&two[7..]).expect("valid").expect("complete");
        assert_eq!(second.payload(), &[2, 0xF0, 0x80, 1]);
    }

    /// RFC 1006 §6: the smallest packet is 7 octets; the version is 3.
    #[test]
    fn rejects_bad_headers() {
        assert_eq!(frame_len(&[3, 0, 0, 0]), Err(TpktError::Length(0)));
        assert_eq!(frame_len(&[3, 0, 0, 6]), Err(TpktError::Length(6)));
        assert_eq!(frame_len(&[2, 0, 0, 9]), Err(TpktError::Version(2)));
        // An HTTP request on port 102.
        assert_eq!(frame_len(b"GET / HTTP/1.1"), Err(TpktError::Version(b'G')));
        assert_eq!(
            Packet::new_checked(&[3u8, 0, 0xFF, 0xFF, 2, 0xF0, 0x80][..]),
            Err(TpktError::Truncated {
                expected: 65_535,
                actual: 7
            })
        );
        assert_eq!(parse(&[3, 0, 0xFF, 0xFF, 2, 0xF0, 0x80]), Ok(None));
    }

    #[test]
    fn refuses_to_frame_what_does_not_fit() {
        let mut out = Vec::new();
        assert_eq!(emit(&[], &mut out), Err(TpktError::PayloadLength(0)));
        let big = vec![0u8; MAX_PAYLOAD_LEN + 1];
        assert_eq!(
            emit(&big, &mut out),
            Err(TpktError::PayloadLength(MAX_PAYLOAD_LEN + 1))
        );
        assert!(out.is_empty());
        emit(&big[1..], &mut out).expect("the largest TPDU fits");
        assert_eq!(&out[..4], &[3, 0, 0xFF, 0xFF]);
    }
}
