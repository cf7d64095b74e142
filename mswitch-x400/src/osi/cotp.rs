//! X.224 (ISO 8073) TPDUs as transport class 0 uses them: CR, CC, DR, DT and ER (X.224 §13).
//!
//! A TPDU is a header, `LI` (the length indicator: the header octets that follow it) then the
//! fixed part and the variable part (parameters coded as code, length, value), followed by user
//! data up to the end of the TPDU (over RFC 1006, the end of the TPKT: class 0 does not
//! concatenate TPDUs). [`Packet`] is a checked view of one TPDU; [`Repr`] its meaning, with
//! [`Repr::parse`], [`Repr::emit`] and [`Repr::buffer_len`]. No I/O.
//!
//! Parsing is strict about lengths (the LI against the TPDU, each parameter against the
//! header) and lenient about what class 0 does not use: unknown parameters are skipped, the
//! credit nibble of CR/CC and the TPDU-NR of a DT are carried but not judged. What class 0
//! allows (no user data on CR/CC, class 0 in the CC) is the business of the
//! [`transport`](super::transport) engine.

use std::fmt;

/// The largest length indicator (X.224 §13.2.1: 255 is reserved for extensions).
pub const MAX_LI: u8 = 254;

/// Header octets after the LI of a CR or CC: code, DST-REF, SRC-REF, class and options
/// (X.224 §13.3.1, §13.4.1).
pub const CONNECT_FIXED_LEN: usize = 6;

/// Header octets after the LI of a DR: code, DST-REF, SRC-REF, reason (X.224 §13.5.1).
pub const DISCONNECT_FIXED_LEN: usize = 6;

/// The LI of a class 0 DT: code and TPDU-NR (X.224 §13.7.1, normal format, no checksum).
pub const DATA_LI: u8 = 2;

/// The octets of a class 0 DT header: LI, code, TPDU-NR with EOT (`02 F0 80` on the last DT
/// of a TSDU).
pub const DATA_HEADER_LEN: usize = 1 + DATA_LI as usize;

/// Header octets after the LI of an ER: code, DST-REF, reject cause (X.224 §13.12.1).
pub const ERROR_FIXED_LEN: usize = 4;

/// The end-of-TSDU bit in the TPDU-NR octet of a DT (X.224 §13.7.3).
pub const EOT: u8 = 0x80;

/// The most user data a CR or CC may carry, in the classes that allow any (X.224 §13.3.5;
/// class 0 allows none).
pub const MAX_CONNECT_USER_DATA: usize = 32;

/// The most user data a DR may carry, in the classes that allow any (X.224 §13.5.5).
pub const MAX_DISCONNECT_USER_DATA: usize = 64;

/// Parameter codes of the variable part (X.224 §13.3.4, §13.5.4, §13.12.4).
pub mod param {
    /// CR/CC: TPDU size, one octet, `n` meaning 2ⁿ octets.
    pub const TPDU_SIZE: u8 = 0xC0;
    /// CR/CC: calling transport selector (TSAP-ID of the initiator).
    pub const CALLING_TSEL: u8 = 0xC1;
    /// CR/CC: called transport selector (TSAP-ID of the responder).
    pub const CALLED_TSEL: u8 = 0xC2;
    /// Class 4 checksum (skipped: not used in class 0).
    pub const CHECKSUM: u8 = 0xC3;
    /// CR/CC: version number (classes 1 to 4).
    pub const VERSION: u8 = 0xC4;
    /// CR/CC: additional option selection (expedited data and more, classes 1 to 4).
    pub const ADDITIONAL_OPTIONS: u8 = 0xC6;
    /// CR: alternative protocol classes, one octet each, the class in bits 8-5.
    pub const ALTERNATIVE_CLASSES: u8 = 0xC7;
    /// CR/CC: preferred maximum TPDU size, 1 to 4 octets, in units of 128 octets.
    pub const PREFERRED_MAX_TPDU_SIZE: u8 = 0xF0;
    /// DR: additional information on the reason.
    pub const ADDITIONAL_INFORMATION: u8 = 0xE0;
    /// ER: the octets of the rejected TPDU up to the one that caused the rejection.
    pub const INVALID_TPDU: u8 = 0xC1;
}

/// A TPDU that X.224 defines but this module does not handle, or that breaks X.224 §13.
/// Every variant is the peer's fault except [`CotpError::HeaderTooLong`], which a caller gets
/// from [`Repr::emit`] for a header it built too long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CotpError {
    /// The peer sent a TPDU shorter than its LI and code.
    #[error("TPDU of {0} octets is too short")]
    Truncated(usize),
    /// The peer sent the reserved length indicator 255.
    #[error("reserved length indicator 255")]
    ReservedLengthIndicator,
    /// The peer's LI points past the end of the TPDU.
    #[error("length indicator {li} points past the end of a {len}-octet TPDU")]
    LengthIndicator {
        /// The LI.
        li: u8,
        /// The octets of the TPDU.
        len: usize,
    },
    /// The peer sent a code that is no X.224 TPDU.
    #[error("unknown TPDU code {0:#04x}")]
    UnknownType(u8),
    /// The peer sent a TPDU that exists in X.224 but not in class 0 (AK, RJ, ED, EA, DC).
    #[error("{0} TPDU (not used in class 0)")]
    UnsupportedType(TpduCode),
    /// The peer's LI is wrong for the TPDU: too short for the fixed part, or (DT) not 2.
    #[error("{code} TPDU with length indicator {li}")]
    HeaderLength {
        /// The TPDU.
        code: TpduCode,
        /// Its LI.
        li: u8,
    },
    /// A parameter of the peer's variable part runs past the end of the header.
    #[error("parameter {0:#04x} runs past the end of the header")]
    ParameterLength(u8),
    /// The peer sent a parameter with a value X.224 does not allow (a TPDU size code outside
    /// 7..=13, a preferred maximum TPDU size of 0 or over 4 octets).
    #[error("invalid value for parameter {0:#04x}")]
    ParameterValue(u8),
    /// The peer sent user data on a TPDU that has none (ER).
    #[error("{0} TPDU with user data")]
    UserData(TpduCode),
    /// A header built for [`Repr::emit`] is longer than [`MAX_LI`] allows (over-long
    /// transport selectors, say). Nothing was written.
    #[error("TPDU header of {0} octets (LI at most {MAX_LI})")]
    HeaderTooLong(usize),
}

impl CotpError {
    /// The reject cause an ER answering this error carries (X.224 §13.12.3).
    pub fn reject_cause(&self) -> RejectCause {
        match self {
            CotpError::UnknownType(_) | CotpError::UnsupportedType(_) => {
                RejectCause::INVALID_TPDU_TYPE
            }
            CotpError::ParameterValue(_) => RejectCause::INVALID_PARAMETER_VALUE,
            _ => RejectCause::NOT_SPECIFIED,
        }
    }
}

/// The kind of a TPDU, from the code in bits 8-5 (and 4-1 for most) of its second octet
/// (X.224 §13.1, Table 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TpduCode {
    /// CR, `1110 xxxx` (xxxx: the initial credit, 0 in class 0).
    ConnectionRequest,
    /// CC, `1101 xxxx`.
    ConnectionConfirm,
    /// DR, `1000 0000`.
    DisconnectRequest,
    /// DC, `1100 0000` (classes 1 to 4).
    DisconnectConfirm,
    /// DT, `1111 0000`.
    Data,
    /// ED, `0001 0000` (classes 1 to 4).
    ExpeditedData,
    /// AK, `0110 xxxx` (classes 1 to 4).
    DataAcknowledgement,
    /// EA, `0010 0000` (classes 1 to 4).
    ExpeditedDataAcknowledgement,
    /// RJ, `0101 xxxx` (classes 1 and 3).
    Reject,
    /// ER, `0111 0000`.
    Error,
}

impl TpduCode {
    /// The kind of TPDU whose second octet is `octet`.
    pub fn from_octet(octet: u8) -> Option<TpduCode> {
        use TpduCode::*;
        Some(match octet >> 4 {
            0xE => ConnectionRequest,
            0xD => ConnectionConfirm,
            0x6 => DataAcknowledgement,
            0x5 => Reject,
            _ => match octet {
                0x80 => DisconnectRequest,
                0xC0 => DisconnectConfirm,
                0xF0 => Data,
                0x10 => ExpeditedData,
                0x20 => ExpeditedDataAcknowledgement,
                0x70 => Error,
                _ => return None,
            },
        })
    }

    /// The code octet (with a credit of 0 where the low bits are a credit).
    pub fn octet(self) -> u8 {
        use TpduCode::*;
        match self {
            ConnectionRequest => 0xE0,
            ConnectionConfirm => 0xD0,
            DisconnectRequest => 0x80,
            DisconnectConfirm => 0xC0,
            Data => 0xF0,
            ExpeditedData => 0x10,
            DataAcknowledgement => 0x60,
            ExpeditedDataAcknowledgement => 0x20,
            Reject => 0x50,
            Error => 0x70,
        }
    }

    /// The abbreviation X.224 uses ("CR", "DT", ...).
    pub fn abbreviation(self) -> &'static str {
        use TpduCode::*;
        match self {
            ConnectionRequest => "CR",
            ConnectionConfirm => "CC",
            DisconnectRequest => "DR",
            DisconnectConfirm => "DC",
            Data => "DT",
            ExpeditedData => "ED",
            DataAcknowledgement => "AK",
            ExpeditedDataAcknowledgement => "EA",
            Reject => "RJ",
            Error => "ER",
        }
    }
}

impl fmt::Display for TpduCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.abbreviation())
    }
}

/// A maximum TPDU size as the TPDU size parameter (`C0`) codes it: 2ⁿ octets for `n` in
/// 7..=13, 128 to 8192 octets (X.224 §13.3.4 b; X.224 allows at most 2048 in class 0, RFC 1006
/// peers are met that propose more, and the value is read as such).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TpduSize(u8);

impl TpduSize {
    /// 128 octets, also the size when a CR has no TPDU size parameter.
    pub const MIN: TpduSize = TpduSize(7);
    /// 2048 octets, the largest X.224 allows in class 0.
    pub const CLASS_0_MAX: TpduSize = TpduSize(11);
    /// 8192 octets, the largest the parameter codes.
    pub const MAX: TpduSize = TpduSize(13);

    /// The size a parameter value codes, if it is one of 7..=13.
    pub const fn from_code(code: u8) -> Option<TpduSize> {
        if code >= TpduSize::MIN.0 && code <= TpduSize::MAX.0 {
            Some(TpduSize(code))
        } else {
            None
        }
    }

    /// The size of `octets`, if that is a power of two from 128 to 8192.
    pub const fn from_octets(octets: u32) -> Option<TpduSize> {
        if octets.is_power_of_two() {
            // trailing_zeros of a u32 is at most 32: the cast cannot truncate.
            TpduSize::from_code(octets.trailing_zeros() as u8)
        } else {
            None
        }
    }

    /// The parameter value, 7..=13.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// The size in octets.
    pub const fn octets(self) -> u32 {
        1 << self.0
    }
}

/// The reason of a DR (X.224 §13.5.3 e). Values 0 to 3 are for all classes, 128 and up for
/// classes 1 to 4 (class 0 peers send them too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DisconnectReason(pub u8);

impl DisconnectReason {
    /// 0: reason not specified.
    pub const NOT_SPECIFIED: DisconnectReason = DisconnectReason(0);
    /// 1: congestion at the TSAP.
    pub const CONGESTION_AT_TSAP: DisconnectReason = DisconnectReason(1);
    /// 2: session entity not attached to the TSAP.
    pub const SESSION_ENTITY_NOT_ATTACHED: DisconnectReason = DisconnectReason(2);
    /// 3: address unknown.
    pub const ADDRESS_UNKNOWN: DisconnectReason = DisconnectReason(3);
    /// 128 + 0: normal disconnect initiated by the session entity.
    pub const NORMAL: DisconnectReason = DisconnectReason(128);
    /// 128 + 1: remote transport entity congestion at connect request time.
    pub const REMOTE_CONGESTION: DisconnectReason = DisconnectReason(129);
    /// 128 + 2: connection negotiation failed (proposed classes not supported).
    pub const NEGOTIATION_FAILED: DisconnectReason = DisconnectReason(130);
    /// 128 + 3: duplicate source reference detected for the same pair of NSAPs.
    pub const DUPLICATE_SOURCE_REFERENCE: DisconnectReason = DisconnectReason(131);
    /// 128 + 4: mismatched references.
    pub const MISMATCHED_REFERENCES: DisconnectReason = DisconnectReason(132);
    /// 128 + 5: protocol error.
    pub const PROTOCOL_ERROR: DisconnectReason = DisconnectReason(133);
    /// 128 + 7: reference overflow.
    pub const REFERENCE_OVERFLOW: DisconnectReason = DisconnectReason(135);
    /// 128 + 8: connection request refused on this network connection.
    pub const REFUSED: DisconnectReason = DisconnectReason(136);
    /// 128 + 10: header or parameter length invalid.
    pub const INVALID_LENGTH: DisconnectReason = DisconnectReason(138);

    fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "reason not specified",
            1 => "congestion at TSAP",
            2 => "session entity not attached to TSAP",
            3 => "address unknown",
            128 => "normal disconnect",
            129 => "remote transport entity congestion",
            130 => "connection negotiation failed",
            131 => "duplicate source reference",
            132 => "mismatched references",
            133 => "protocol error",
            135 => "reference overflow",
            136 => "connection request refused",
            138 => "header or parameter length invalid",
            _ => return None,
        })
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "reason {}", self.0),
        }
    }
}

/// The reject cause of an ER (X.224 §13.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RejectCause(pub u8);

impl RejectCause {
    /// 0: reason not specified.
    pub const NOT_SPECIFIED: RejectCause = RejectCause(0);
    /// 1: invalid parameter code.
    pub const INVALID_PARAMETER_CODE: RejectCause = RejectCause(1);
    /// 2: invalid TPDU type.
    pub const INVALID_TPDU_TYPE: RejectCause = RejectCause(2);
    /// 3: invalid parameter value.
    pub const INVALID_PARAMETER_VALUE: RejectCause = RejectCause(3);
}

impl fmt::Display for RejectCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0 => "reason not specified",
            1 => "invalid parameter code",
            2 => "invalid TPDU type",
            3 => "invalid parameter value",
            _ => return write!(f, "cause {}", self.0),
        };
        write!(f, "{name} ({})", self.0)
    }
}

/// A view of one TPDU: the whole of a TPKT's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view of `buffer` that checks nothing: the accessors may panic on a bad buffer.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// A view of `buffer`, checked: an LI and a code at least, an LI other than 255 that stays
    /// within the buffer. The header layout of each kind is checked by [`Repr::parse`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, CotpError> {
        let buf = buffer.as_ref();
        if buf.len() < 2 {
            return Err(CotpError::Truncated(buf.len()));
        }
        let li = buf[0];
        if li == 255 {
            return Err(CotpError::ReservedLengthIndicator);
        }
        if li == 0 || usize::from(li) >= buf.len() {
            return Err(CotpError::LengthIndicator { li, len: buf.len() });
        }
        Ok(Packet { buffer })
    }

    /// The length indicator: the header octets after this one.
    pub fn length_indicator(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The code octet (the second).
    pub fn code_octet(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The kind of TPDU, if the code is one X.224 defines.
    pub fn code(&self) -> Option<TpduCode> {
        TpduCode::from_octet(self.code_octet())
    }

    /// The header: LI, fixed part and variable part.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..=usize::from(self.length_indicator())]
    }

    /// The octets after the header: user data.
    pub fn user_data(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.length_indicator()) + 1..]
    }

    /// The buffer the view was made of.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// A CR or a CC (X.224 §13.3, §13.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectRepr<'a> {
    /// DST-REF: 0 in a CR; the initiator's SRC-REF in a CC.
    pub dst_ref: u16,
    /// SRC-REF: the sender's reference for the connection.
    pub src_ref: u16,
    /// The preferred (CR) or selected (CC) class, 0 to 4 (bits 8-5 of the class octet).
    pub class: u8,
    /// The options in bits 4-1 of the class octet (extended formats, explicit flow control);
    /// 0 in class 0.
    pub options: u8,
    /// The TPDU size parameter, if present (absent means 128 octets).
    pub tpdu_size: Option<TpduSize>,
    /// The preferred maximum TPDU size parameter, if present, in units of 128 octets.
    pub preferred_max_tpdu_size: Option<u32>,
    /// The calling transport selector, if present.
    pub calling_tsel: Option<&'a [u8]>,
    /// The called transport selector, if present.
    pub called_tsel: Option<&'a [u8]>,
    /// The alternative protocol classes parameter (CR), if present: one octet per class, the
    /// class in bits 8-5.
    pub alternative_classes: Option<&'a [u8]>,
    /// User data (none in class 0).
    pub user_data: &'a [u8],
}

/// A DR (X.224 §13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisconnectRepr<'a> {
    /// DST-REF: the peer's reference.
    pub dst_ref: u16,
    /// SRC-REF: the sender's reference, 0 when refusing a CR.
    pub src_ref: u16,
    /// Why.
    pub reason: DisconnectReason,
    /// The additional information parameter, if present.
    pub additional_info: Option<&'a [u8]>,
    /// User data (none in class 0).
    pub user_data: &'a [u8],
}

/// A class 0 DT (X.224 §13.7, normal format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRepr<'a> {
    /// Whether this is the last DT of a TSDU (EOT).
    pub eot: bool,
    /// TPDU-NR, bits 7-1 (0 in class 0).
    pub nr: u8,
    /// A segment of the TSDU.
    pub user_data: &'a [u8],
}

/// An ER (X.224 §13.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorRepr<'a> {
    /// DST-REF: the peer's reference.
    pub dst_ref: u16,
    /// Why the TPDU was rejected.
    pub cause: RejectCause,
    /// The invalid TPDU parameter, if present: the rejected TPDU's octets up to and including
    /// the one that caused the rejection.
    pub invalid_tpdu: Option<&'a [u8]>,
}

/// The meaning of a TPDU that class 0 uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// CR.
    ConnectionRequest(ConnectRepr<'a>),
    /// CC.
    ConnectionConfirm(ConnectRepr<'a>),
    /// DR.
    DisconnectRequest(DisconnectRepr<'a>),
    /// DT.
    Data(DataRepr<'a>),
    /// ER.
    Error(ErrorRepr<'a>),
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Calls `f` with each parameter (code, value) of a variable part.
fn parameters<'a>(
    mut var: &'a [u8],
    mut f: impl FnMut(u8, &'a [u8]) -> Result<(), CotpError>,
) -> Result<(), CotpError> {
    while let [code, rest @ ..] = var {
        let Some((&len, rest)) = rest.split_first() else {
            return Err(CotpError::ParameterLength(*code));
        };
        let Some((value, rest)) = rest.split_at_checked(usize::from(len)) else {
            return Err(CotpError::ParameterLength(*code));
        };
        f(*code, value)?;
        var = rest;
    }
    Ok(())
}

impl<'a> Repr<'a> {
    /// The meaning of a checked TPDU.
    pub fn parse(packet: &Packet<&'a [u8]>) -> Result<Repr<'a>, CotpError> {
        let buf: &'a [u8] = packet.buffer;
        let li = packet.length_indicator();
        let header = &buf[1..=usize::from(li)];
        let user_data = &buf[usize::from(li) + 1..];
        let octet = packet.code_octet();
        let code = TpduCode::from_octet(octet).ok_or(CotpError::UnknownType(octet))?;
        let fixed_len = match code {
            TpduCode::ConnectionRequest | TpduCode::ConnectionConfirm => CONNECT_FIXED_LEN,
            TpduCode::DisconnectRequest => DISCONNECT_FIXED_LEN,
            TpduCode::Data => DATA_LI.into(),
            TpduCode::Error => ERROR_FIXED_LEN,
            other => return Err(CotpError::UnsupportedType(other)),
        };
        if header.len() < fixed_len || (code == TpduCode::Data && header.len() != fixed_len) {
            return Err(CotpError::HeaderLength { code, li });
        }
        let var = &header[fixed_len..];
        Ok(match code {
            TpduCode::ConnectionRequest | TpduCode::ConnectionConfirm => {
                let mut c = ConnectRepr {
                    dst_ref: u16_at(header, 1),
                    src_ref: u16_at(header, 3),
                    class: header[5] >> 4,
                    options: header[5] & 0x0F,
                    user_data,
                    ..ConnectRepr::default()
                };
                parameters(var, |p, value| {
                    match p {
                        param::TPDU_SIZE => {
                            let [n] = value else {
                                return Err(CotpError::ParameterValue(p));
                            };
                            c.tpdu_size =
                                Some(TpduSize::from_code(*n).ok_or(CotpError::ParameterValue(p))?);
                        }
                        param::PREFERRED_MAX_TPDU_SIZE => {
                            if value.is_empty() || value.len() > 4 {
                                return Err(CotpError::ParameterValue(p));
                            }
                            let units = value.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b));
                            if units == 0 {
                                return Err(CotpError::ParameterValue(p));
                            }
                            c.preferred_max_tpdu_size = Some(units);
                        }
                        param::CALLING_TSEL => c.calling_tsel = Some(value),
                        param::CALLED_TSEL => c.called_tsel = Some(value),
                        param::ALTERNATIVE_CLASSES => c.alternative_classes = Some(value),
                        _ => {}
                    }
                    Ok(())
                })?;
                if code == TpduCode::ConnectionRequest {
                    Repr::ConnectionRequest(c)
                } else {
                    Repr::ConnectionConfirm(c)
                }
            }
            TpduCode::DisconnectRequest => {
                let mut additional_info = None;
                parameters(var, |p, value| {
                    if p == param::ADDITIONAL_INFORMATION {
                        additional_info = Some(value);
                    }
                    Ok(())
                })?;
                Repr::DisconnectRequest(DisconnectRepr {
                    dst_ref: u16_at(header, 1),
                    src_ref: u16_at(header, 3),
                    reason: DisconnectReason(header[5]),
                    additional_info,
                    user_data,
                })
            }
            TpduCode::Data => Repr::Data(DataRepr {
                eot: header[1] & EOT != 0,
                nr: header[1] & !EOT,
                user_data,
            }),
            _ => {
                if !user_data.is_empty() {
                    return Err(CotpError::UserData(code));
                }
                let mut invalid_tpdu = None;
                parameters(var, |p, value| {
                    if p == param::INVALID_TPDU {
                        invalid_tpdu = Some(value);
                    }
                    Ok(())
                })?;
                Repr::Error(ErrorRepr {
                    dst_ref: u16_at(header, 1),
                    cause: RejectCause(header[3]),
                    invalid_tpdu,
                })
            }
        })
    }

    /// The kind of TPDU.
    pub fn code(&self) -> TpduCode {
        match self {
            Repr::ConnectionRequest(_) => TpduCode::ConnectionRequest,
            Repr::ConnectionConfirm(_) => TpduCode::ConnectionConfirm,
            Repr::DisconnectRequest(_) => TpduCode::DisconnectRequest,
            Repr::Data(_) => TpduCode::Data,
            Repr::Error(_) => TpduCode::Error,
        }
    }

    /// The header octets, LI included.
    pub fn header_len(&self) -> usize {
        let opt = |v: Option<&[u8]>| v.map_or(0, |v| 2 + v.len());
        1 + match self {
            Repr::ConnectionRequest(c) | Repr::ConnectionConfirm(c) => {
                CONNECT_FIXED_LEN
                    + c.tpdu_size.map_or(0, |_| 3)
                    + c.preferred_max_tpdu_size
                        .map_or(0, |units| 2 + preferred_size_len(units))
                    + opt(c.calling_tsel)
                    + opt(c.called_tsel)
                    + opt(c.alternative_classes)
            }
            Repr::DisconnectRequest(d) => DISCONNECT_FIXED_LEN + opt(d.additional_info),
            Repr::Data(_) => DATA_LI.into(),
            Repr::Error(e) => ERROR_FIXED_LEN + opt(e.invalid_tpdu),
        }
    }

    /// The octets of the TPDU, header and user data.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.user_data().len()
    }

    fn user_data(&self) -> &'a [u8] {
        match self {
            Repr::ConnectionRequest(c) | Repr::ConnectionConfirm(c) => c.user_data,
            Repr::DisconnectRequest(d) => d.user_data,
            Repr::Data(d) => d.user_data,
            Repr::Error(_) => &[],
        }
    }

    /// Appends the TPDU ([`Repr::buffer_len`] octets) to `out`, or nothing if its header would
    /// be longer than [`MAX_LI`] allows.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), CotpError> {
        let header_len = self.header_len();
        let li = u8::try_from(header_len - 1)
            .ok()
            .filter(|&li| li <= MAX_LI)
            .ok_or(CotpError::HeaderTooLong(header_len))?;
        out.reserve(self.buffer_len());
        out.push(li);
        out.push(self.code().octet());
        let put = |out: &mut Vec<u8>, code: u8, value: Option<&[u8]>| {
            if let Some(v) = value {
                // header_len <= 255 was checked above, so every value is shorter than 256.
                out.extend_from_slice(&[code, v.len() as u8]);
                out.extend_from_slice(v);
            }
        };
        match self {
            Repr::ConnectionRequest(c) | Repr::ConnectionConfirm(c) => {
                out.extend_from_slice(&c.dst_ref.to_be_bytes());
                out.extend_from_slice(&c.src_ref.to_be_bytes());
                out.push((c.class << 4) | (c.options & 0x0F));
                if let Some(size) = c.tpdu_size {
                    out.extend_from_slice(&[param::TPDU_SIZE, 1, size.code()]);
                }
                if let Some(units) = c.preferred_max_tpdu_size {
                    let len = preferred_size_len(units);
                    let bytes = units.to_be_bytes();
                    put(out, param::PREFERRED_MAX_TPDU_SIZE, Some(&bytes[4 - len..]));
                }
                put(out, param::CALLING_TSEL, c.calling_tsel);
                put(out, param::CALLED_TSEL, c.called_tsel);
                put(out, param::ALTERNATIVE_CLASSES, c.alternative_classes);
                out.extend_from_slice(c.user_data);
            }
            Repr::DisconnectRequest(d) => {
                out.extend_from_slice(&d.dst_ref.to_be_bytes());
                out.extend_from_slice(&d.src_ref.to_be_bytes());
                out.push(d.reason.0);
                put(out, param::ADDITIONAL_INFORMATION, d.additional_info);
                out.extend_from_slice(d.user_data);
            }
            Repr::Data(d) => {
                out.push(if d.eot { EOT } else { 0 } | (d.nr & !EOT));
                out.extend_from_slice(d.user_data);
            }
            Repr::Error(e) => {
                out.extend_from_slice(&e.dst_ref.to_be_bytes());
                out.push(e.cause.0);
                put(out, param::INVALID_TPDU, e.invalid_tpdu);
            }
        }
        Ok(())
    }
}

/// The octets of a preferred maximum TPDU size value: the fewest that hold it, at least one.
fn preferred_size_len(units: u32) -> usize {
    let bits = 32 - units.leading_zeros() as usize;
    bits.div_ceil(8).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<Repr<'_>, CotpError> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }

    fn emit(repr: &Repr<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        repr.emit(&mut out).expect("emits");
        assert_eq!(out.len(), repr.buffer_len());
        out
    }

    /// X.224 §13.3: a class 0 CR as an RFC 1006 initiator sends it (the capture in
    /// `x400/vectors/synthetic-p1-port102.pcap`, frame 4): LI 17, CR with credit 0, DST-REF 0,
    /// SRC-REF 1, class 0, TPDU size 2048 (`C0 01 0B`), calling TSEL 0001, called TSEL 0002.
    #[test]
    fn connection_request_from_the_capture() {
        let bytes = [
            0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0B, 0xC1, 0x02, 0x00, 0x01,
            0xC2, 0x02, 0x00, 0x02,
        ];
        let cr = ConnectRepr {
            dst_ref: 0,
            src_ref: 1,
            tpdu_size: TpduSize::from_octets(2048),
            calling_tsel: Some(&[0, 1]),
            called_tsel: Some(&[0, 2]),
            ..ConnectRepr::default()
        };
        assert_eq!(parse(&bytes), Ok(Repr::ConnectionRequest(cr)));
        assert_eq!(emit(&Repr::ConnectionRequest(cr)), bytes);
    }

    /// X.224 §13.3.4: parameters in any order; the TPDU size code 0x0D is 8192 octets.
    #[test]
    fn connection_request_parameters_in_any_order() {
        let bytes = [
            0x11, 0xE0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0D, 0xC2, 0x02, 0x00, 0x01,
            0xC1, 0x02, 0x00, 0x01,
        ];
        let Ok(Repr::ConnectionRequest(cr)) = parse(&bytes) else {
            panic!("not a CR: {:?}", parse(&bytes));
        };
        assert_eq!(cr.tpdu_size.map(TpduSize::octets), Some(8192));
        assert_eq!(cr.calling_tsel, Some(&[0u8, 1][..]));
        assert_eq!(cr.called_tsel, Some(&[0u8, 1][..]));
    }

    /// X.224 §13.4: the CC of the capture (frame 5): DST-REF 1, SRC-REF 2, class 0, 2048.
    #[test]
    fn connection_confirm_from_the_capture() {
        let bytes = [0x09, 0xD0, 0x00, 0x01, 0x00, 0x02, 0x00, 0xC0, 0x01, 0x0B];
        let cc = ConnectRepr {
            dst_ref: 1,
            src_ref: 2,
            tpdu_size: Some(TpduSize::CLASS_0_MAX),
            ..ConnectRepr::default()
        };
        assert_eq!(parse(&bytes), Ok(Repr::ConnectionConfirm(cc)));
        assert_eq!(emit(&Repr::ConnectionConfirm(cc)), bytes);
    }

    /// X.224 §13.7: a class 0 DT is `02 F0` then EOT and TPDU-NR, then the data.
    #[test]
    fn data() {
        let last = [0x02, 0xF0, 0x80, 0x0D, 0xAA];
        let dt = DataRepr {
            eot: true,
            nr: 0,
            user_data: &[0x0D, 0xAA],
        };
        assert_eq!(parse(&last), Ok(Repr::Data(dt)));
        assert_eq!(emit(&Repr::Data(dt)), last);
        let more = [0x02, 0xF0, 0x00, 0x01];
        assert!(matches!(
            parse(&more),
            Ok(Repr::Data(DataRepr { eot: false, .. }))
        ));
        // A class 2 DT header (LI 4, with DST-REF) is not class 0.
        assert_eq!(
            parse(&[0x04, 0xF0, 0x00, 0x01, 0x80, 0x55]),
            Err(CotpError::HeaderLength {
                code: TpduCode::Data,
                li: 4
            })
        );
    }

    /// X.224 §13.5: DR with reason 128+2 (negotiation failed) and additional information.
    #[test]
    fn disconnect_request() {
        let bytes = [
            0x0A, 0x80, 0x00, 0x01, 0x00, 0x00, 0x82, 0xE0, 0x02, b'n', b'o',
        ];
        let dr = DisconnectRepr {
            dst_ref: 1,
            src_ref: 0,
            reason: DisconnectReason::NEGOTIATION_FAILED,
            additional_info: Some(b"no"),
            user_data: &[],
        };
        assert_eq!(parse(&bytes), Ok(Repr::DisconnectRequest(dr)));
        assert_eq!(emit(&Repr::DisconnectRequest(dr)), bytes);
        assert_eq!(
            DisconnectReason::NEGOTIATION_FAILED.to_string(),
            "connection negotiation failed (130)"
        );
    }

    /// X.224 §13.12: ER with cause 2 (invalid TPDU type) and the invalid TPDU parameter.
    #[test]
    fn error() {
        let bytes = [0x08, 0x70, 0x00, 0x01, 0x02, 0xC1, 0x02, 0x02, 0x60];
        let er = ErrorRepr {
            dst_ref: 1,
            cause: RejectCause::INVALID_TPDU_TYPE,
            invalid_tpdu: Some(&[0x02, 0x60]),
        };
        assert_eq!(parse(&bytes), Ok(Repr::Error(er)));
        assert_eq!(emit(&Repr::Error(er)), bytes);
        let mut with_data = bytes.to_vec();
        with_data.push(0);
        assert_eq!(parse(&with_data), Err(CotpError::UserData(TpduCode::Error)));
    }

    /// X.224 §13.3.4 (1995): the preferred maximum TPDU size counts units of 128 octets, in
    /// as few octets as hold the value.
    #[test]
    fn preferred_maximum_tpdu_size() {
        let cr = ConnectRepr {
            src_ref: 7,
            preferred_max_tpdu_size: Some(511),
            ..ConnectRepr::default()
        };
        let bytes = emit(&Repr::ConnectionRequest(cr));
        assert_eq!(bytes, [0x0A, 0xE0, 0, 0, 0, 7, 0, 0xF0, 0x02, 0x01, 0xFF]);
        assert_eq!(parse(&bytes), Ok(Repr::ConnectionRequest(cr)));
        for bad in [
            &[0xF0, 0x00][..],
            &[0xF0, 0x01, 0x00],
            &[0xF0, 5, 1, 1, 1, 1, 1],
        ] {
            let mut tpdu = vec![6 + bad.len() as u8, 0xE0, 0, 0, 0, 1, 0];
            tpdu.extend_from_slice(bad);
            assert_eq!(
                parse(&tpdu),
                Err(CotpError::ParameterValue(0xF0)),
                "{bad:x?}"
            );
        }
    }

    #[test]
    fn skips_unknown_parameters() {
        // Version number (C4) and additional option selection (C6) are not class 0's.
        let bytes = [
            0x0F, 0xE0, 0, 0, 0, 1, 0x20, 0xC4, 0x01, 0x01, 0xC6, 0x01, 0x01, 0xC0, 0x01, 0x0A,
        ];
        let Ok(Repr::ConnectionRequest(cr)) = parse(&bytes) else {
            panic!("not a CR");
        };
        assert_eq!(cr.class, 2);
        assert_eq!(cr.tpdu_size.map(TpduSize::octets), Some(1024));
    }

    #[test]
    fn rejects_bad_lengths_and_values() {
        assert_eq!(parse(&[]), Err(CotpError::Truncated(0)));
        assert_eq!(parse(&[0x02]), Err(CotpError::Truncated(1)));
        assert_eq!(
            parse(&[0xFF, 0xF0, 0x80]),
            Err(CotpError::ReservedLengthIndicator)
        );
        // LI pointing past the end.
        assert_eq!(
            parse(&[0x11, 0xE0, 0, 0, 0, 1, 0]),
            Err(CotpError::LengthIndicator { li: 0x11, len: 7 })
        );
        assert_eq!(
            parse(&[0x00, 0xF0]),
            Err(CotpError::LengthIndicator { li: 0, len: 2 })
        );
        // A CR whose LI leaves no room for the class octet.
        assert_eq!(
            parse(&[0x05, 0xE0, 0, 0, 0, 1]),
            Err(CotpError::HeaderLength {
                code: TpduCode::ConnectionRequest,
                li: 5
            })
        );
        // A parameter that runs past the header (C1 of 4 octets in a 2-octet space).
        assert_eq!(
            parse(&[0x0A, 0xE0, 0, 0, 0, 1, 0, 0xC1, 0x04, 0, 1, 0, 0]),
            Err(CotpError::ParameterLength(0xC1))
        );
        assert_eq!(
            parse(&[0x07, 0xE0, 0, 0, 0, 1, 0, 0xC1]),
            Err(CotpError::ParameterLength(0xC1))
        );
        // TPDU size 2^14 and 2^6 are not coded.
        for n in [6, 14] {
            assert_eq!(
                parse(&[0x09, 0xE0, 0, 0, 0, 1, 0, 0xC0, 0x01, n]),
                Err(CotpError::ParameterValue(0xC0))
            );
        }
        assert_eq!(
            parse(&[0x02, 0x42, 0x80]),
            Err(CotpError::UnknownType(0x42))
        );
        assert_eq!(
            parse(&[0x04, 0x60, 0, 1, 0]),
            Err(CotpError::UnsupportedType(TpduCode::DataAcknowledgement))
        );
        assert_eq!(
            CotpError::UnsupportedType(TpduCode::ExpeditedData).reject_cause(),
            RejectCause::INVALID_TPDU_TYPE
        );
    }

    #[test]
    fn refuses_to_emit_an_overlong_header() {
        let tsel = [0u8; 250];
        let cr = Repr::ConnectionRequest(ConnectRepr {
            calling_tsel: Some(&tsel),
            ..ConnectRepr::default()
        });
        let mut out = Vec::new();
        assert_eq!(cr.emit(&mut out), Err(CotpError::HeaderTooLong(259)));
        assert!(out.is_empty());
    }

    #[test]
    fn tpdu_sizes() {
        assert_eq!(TpduSize::from_octets(128), Some(TpduSize::MIN));
        assert_eq!(TpduSize::from_octets(8192), Some(TpduSize::MAX));
        assert_eq!(TpduSize::from_octets(16384), None);
        assert_eq!(TpduSize::from_octets(1000), None);
        assert_eq!(TpduSize::from_octets(0), None);
        assert_eq!(TpduSize::CLASS_0_MAX.octets(), 2048);
    }
}
