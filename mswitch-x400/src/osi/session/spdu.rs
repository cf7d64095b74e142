//! SPDU codec (X.225 §8): a view over one SPDU ([`SpduPacket`]), its parameters
//! ([`ParameterIter`]) and the typed representation ([`Spdu`]) with `parse` / `emit` /
//! `buffer_len`, plus the TSDU-level functions [`parse_tsdu`] and [`emit_tsdu`].
//!
//! An SPDU is `SI LI parameters [user information]` (X.225 §8.2). LI is one octet, or `0xFF`
//! followed by two octets (big-endian). Parameters are PI units (`PI LI value`) or PGI units
//! (`PGI LI PI-units`); the user data PGIs 193 and 194 carry octets. Only the DATA TRANSFER
//! SPDU has a user information field after the parameters (outside LI); it runs to the end of
//! the TSDU. Real traffic thus sends data as `01 00 01 00 <user data>`: an empty GIVE TOKENS,
//! then DATA TRANSFER with no parameters.
//!
//! Several SPDUs share an SI code and are told apart by their place in the TSDU (basic
//! concatenation, X.225 §6.3.7): `0x01` is GIVE TOKENS in first place (category 0) and DATA
//! TRANSFER in second place (category 2); `0x19`/`0x1A` are ABORT/ABORT ACCEPT alone
//! (category 1) and ACTIVITY INTERRUPT/ACK in second place; `0x29`/`0x2A` are ACTIVITY END/ACK
//! (this implementation does not negotiate Major synchronize, whose MAJOR SYNC POINT/ACK share
//! those codes).

use super::{FunctionalUnits, SessionError, Tokens};

/// SPDU identifier (SI) codes, X.225 §8.3 (Table 9 ff.).
pub mod si {
    /// EXCEPTION REPORT (ER), category 2.
    pub const EXCEPTION_REPORT: u8 = 0;
    /// DATA TRANSFER (DT), category 2; shares the code with GIVE TOKENS.
    pub const DATA_TRANSFER: u8 = 1;
    /// GIVE TOKENS (GT), category 0; shares the code with DATA TRANSFER.
    pub const GIVE_TOKENS: u8 = 1;
    /// PLEASE TOKENS (PT), category 0.
    pub const PLEASE_TOKENS: u8 = 2;
    /// EXPEDITED (EX), category 1 (not supported).
    pub const EXPEDITED: u8 = 5;
    /// PREPARE (PR), category 1 (not supported).
    pub const PREPARE: u8 = 7;
    /// NOT FINISHED (NF), category 1.
    pub const NOT_FINISHED: u8 = 8;
    /// FINISH (FN), category 1.
    pub const FINISH: u8 = 9;
    /// DISCONNECT (DN), category 1.
    pub const DISCONNECT: u8 = 10;
    /// REFUSE (RF), category 1.
    pub const REFUSE: u8 = 12;
    /// CONNECT (CN), category 1.
    pub const CONNECT: u8 = 13;
    /// ACCEPT (AC), category 1.
    pub const ACCEPT: u8 = 14;
    /// CONNECT DATA OVERFLOW (CDO), category 1 (not supported).
    pub const CONNECT_DATA_OVERFLOW: u8 = 15;
    /// OVERFLOW ACCEPT (OA), category 1 (not supported).
    pub const OVERFLOW_ACCEPT: u8 = 16;
    /// GIVE TOKENS CONFIRM (GTC), category 1.
    pub const GIVE_TOKENS_CONFIRM: u8 = 21;
    /// GIVE TOKENS ACK (GTA), category 1.
    pub const GIVE_TOKENS_ACK: u8 = 22;
    /// ABORT (AB), category 1; shares the code with ACTIVITY INTERRUPT.
    pub const ABORT: u8 = 25;
    /// ACTIVITY INTERRUPT (AI), category 2; shares the code with ABORT.
    pub const ACTIVITY_INTERRUPT: u8 = 25;
    /// ABORT ACCEPT (AA), category 1; shares the code with ACTIVITY INTERRUPT ACK.
    pub const ABORT_ACCEPT: u8 = 26;
    /// ACTIVITY INTERRUPT ACK (AIA), category 2; shares the code with ABORT ACCEPT.
    pub const ACTIVITY_INTERRUPT_ACK: u8 = 26;
    /// ACTIVITY RESUME (AR), category 2 (not supported).
    pub const ACTIVITY_RESUME: u8 = 29;
    /// TYPED DATA (TD), category 2 (not supported).
    pub const TYPED_DATA: u8 = 33;
    /// RESYNCHRONIZE ACK (RA), category 2 (not supported).
    pub const RESYNCHRONIZE_ACK: u8 = 34;
    /// ACTIVITY END (AE), category 2; same code as MAJOR SYNC POINT.
    pub const ACTIVITY_END: u8 = 41;
    /// ACTIVITY END ACK (AEA), category 2; same code as MAJOR SYNC ACK.
    pub const ACTIVITY_END_ACK: u8 = 42;
    /// ACTIVITY START (AS), category 2.
    pub const ACTIVITY_START: u8 = 45;
    /// EXCEPTION DATA (ED), category 2.
    pub const EXCEPTION_DATA: u8 = 48;
    /// MINOR SYNC POINT (MIP), category 2.
    pub const MINOR_SYNC_POINT: u8 = 49;
    /// MINOR SYNC ACK (MIA), category 2.
    pub const MINOR_SYNC_ACK: u8 = 50;
    /// RESYNCHRONIZE (RS), category 2 (not supported).
    pub const RESYNCHRONIZE: u8 = 53;
    /// ACTIVITY DISCARD (AD), category 2.
    pub const ACTIVITY_DISCARD: u8 = 57;
    /// ACTIVITY DISCARD ACK (ADA), category 2.
    pub const ACTIVITY_DISCARD_ACK: u8 = 58;
    /// CAPABILITY DATA (CD), category 2 (not supported).
    pub const CAPABILITY_DATA: u8 = 61;
    /// CAPABILITY DATA ACK (CDA), category 2 (not supported).
    pub const CAPABILITY_DATA_ACK: u8 = 62;
}

/// Parameter identifier (PI) and parameter group identifier (PGI) codes, X.225 §8.3.
pub mod pi {
    /// PGI Connection Identifier.
    pub const CONNECTION_IDENTIFIER: u8 = 1;
    /// PGI Connect/Accept Item.
    pub const CONNECT_ACCEPT_ITEM: u8 = 5;
    /// PI Called SS-user Reference (in PGI 1 of AC/RF).
    pub const CALLED_SS_USER_REFERENCE: u8 = 9;
    /// PI Calling SS-user Reference (in PGI 1 of CN).
    pub const CALLING_SS_USER_REFERENCE: u8 = 10;
    /// PI Common Reference (in PGI 1).
    pub const COMMON_REFERENCE: u8 = 11;
    /// PI Additional Reference Information (in PGI 1).
    pub const ADDITIONAL_REFERENCE: u8 = 12;
    /// PI Sync Type Item (MIP).
    pub const SYNC_TYPE_ITEM: u8 = 15;
    /// PI Token Item.
    pub const TOKEN_ITEM: u8 = 16;
    /// PI Transport Disconnect.
    pub const TRANSPORT_DISCONNECT: u8 = 17;
    /// PI Protocol Options (in PGI 5).
    pub const PROTOCOL_OPTIONS: u8 = 19;
    /// PI Session User Requirements.
    pub const SESSION_USER_REQUIREMENTS: u8 = 20;
    /// PI TSDU Maximum Size (in PGI 5).
    pub const TSDU_MAXIMUM_SIZE: u8 = 21;
    /// PI Version Number (in PGI 5, or alone in RF).
    pub const VERSION_NUMBER: u8 = 22;
    /// PI Initial Serial Number (in PGI 5).
    pub const INITIAL_SERIAL_NUMBER: u8 = 23;
    /// PI Enclosure Item.
    pub const ENCLOSURE_ITEM: u8 = 25;
    /// PI Token Setting Item (in PGI 5).
    pub const TOKEN_SETTING_ITEM: u8 = 26;
    /// PGI Linking Information (AR).
    pub const LINKING_INFORMATION: u8 = 33;
    /// PI Activity Identifier.
    pub const ACTIVITY_IDENTIFIER: u8 = 41;
    /// PI Serial Number.
    pub const SERIAL_NUMBER: u8 = 42;
    /// PI Reflect Parameter Values.
    pub const REFLECT_PARAMETER: u8 = 49;
    /// PI Reason Code.
    pub const REASON_CODE: u8 = 50;
    /// PI Calling Session Selector.
    pub const CALLING_SESSION_SELECTOR: u8 = 51;
    /// PI Called (in CN) or Responding (in AC) Session Selector.
    pub const CALLED_SESSION_SELECTOR: u8 = 52;
    /// PGI User Data.
    pub const USER_DATA: u8 = 193;
    /// PGI Extended User Data (CN, version 2, more than 512 octets).
    pub const EXTENDED_USER_DATA: u8 = 194;
}

/// Version Number bit for protocol version 1.
pub const VERSION_1: u8 = 0x01;
/// Version Number bit for protocol version 2.
pub const VERSION_2: u8 = 0x02;
/// Transport Disconnect bit 1: the transport connection is released (clear: kept).
pub const TD_RELEASE: u8 = 0x01;
/// Transport Disconnect bit 2: user abort.
pub const TD_USER_ABORT: u8 = 0x02;
/// Transport Disconnect bit 3: protocol error.
pub const TD_PROTOCOL_ERROR: u8 = 0x04;
/// Transport Disconnect bit 4: no reason.
pub const TD_NO_REASON: u8 = 0x08;
/// Enclosure Item value meaning "beginning and end of SSDU" (an unsegmented SPDU).
pub const ENCLOSURE_WHOLE: u8 = 0x03;

/// Most parameters (PI and PGI units, nested ones included) accepted in one SPDU.
pub const MAX_PARAMETERS: usize = 32;
/// Longest session selector (X.225 §8.3.1.18: up to 16 octets).
pub const MAX_SELECTOR_LEN: usize = 16;
/// Longest activity identifier (X.225: up to 6 octets).
pub const MAX_ACTIVITY_ID_LEN: usize = 6;
/// Most decimal digits in a serial number (X.225: 1 to 6 IA5 digits).
pub const MAX_SERIAL_DIGITS: usize = 6;
/// Largest serial number (serial numbers are taken modulo 10^6).
pub const MAX_SERIAL: u32 = 999_999;
/// Longest SS-user reference or common reference (64 octets).
pub const MAX_REFERENCE_LEN: usize = 64;
/// Longest additional reference information (4 octets).
pub const MAX_ADDITIONAL_REFERENCE_LEN: usize = 4;
/// Longest Reflect Parameter Values field (9 octets).
pub const MAX_REFLECT_LEN: usize = 9;
/// Longest user data a CONNECT may carry in PGI 193 (version 1 rule, also used as the switch
/// point to PGI 194).
pub const MAX_SHORT_USER_DATA: usize = 512;
/// Longest user data a CONNECT may carry in version 2 without the overflow mechanism
/// (Extended User Data, PGI 194).
pub const MAX_CONNECT_USER_DATA: usize = 10_240;
/// Largest value of a length indicator (two-octet form).
pub const MAX_LI: usize = 0xFFFF;
/// Default limit on SS-user data taken from one SPDU (DT user information included).
pub const DEFAULT_MAX_USER_DATA: usize = 1 << 20;

fn truncated(what: &'static str) -> SessionError {
    SessionError::Truncated { what }
}

/// Reads a length indicator (X.225 §8.2.5); returns the length and the bytes after the LI.
fn read_li(buf: &[u8]) -> Result<(usize, &[u8]), SessionError> {
    match buf {
        [] => Err(truncated("length indicator")),
        [0xFF, hi, lo, rest @ ..] => Ok((usize::from(u16::from_be_bytes([*hi, *lo])), rest)),
        [0xFF, ..] => Err(truncated("length indicator")),
        [n, rest @ ..] => Ok((usize::from(*n), rest)),
    }
}

/// Size of the length indicator for `len`.
const fn li_len(len: usize) -> usize {
    if len < 0xFF { 1 } else { 3 }
}

/// A view over one SPDU at the start of a buffer (X.225 §8.2).
#[derive(Debug, Clone)]
pub struct SpduPacket<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
    li: usize,
}

impl<T: AsRef<[u8]>> SpduPacket<T> {
    /// Checks that the buffer starts with an SI, a complete LI and LI octets of parameters.
    pub fn new_checked(buffer: T) -> Result<Self, SessionError> {
        let bytes = buffer.as_ref();
        let Some((_, after_si)) = bytes.split_first() else {
            return Err(truncated("SPDU"));
        };
        let (li, after_li) = read_li(after_si)?;
        if after_li.len() < li {
            return Err(truncated("SPDU parameters"));
        }
        let header_len = bytes.len() - after_li.len();
        Ok(Self {
            buffer,
            header_len,
            li,
        })
    }

    /// The SPDU identifier.
    pub fn si(&self) -> u8 {
        self.buffer.as_ref().first().copied().unwrap_or_default()
    }

    /// The length indicator: the length of the parameter field.
    pub fn length_indicator(&self) -> usize {
        self.li
    }

    /// The length of SI plus LI (2 or 4).
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The length of SI, LI and parameters (user information excluded).
    pub fn spdu_len(&self) -> usize {
        self.header_len + self.li
    }

    /// The parameter field.
    pub fn parameter_bytes(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.header_len..self.spdu_len())
            .unwrap_or_default()
    }

    /// The parameters, in order.
    pub fn parameters(&self) -> ParameterIter<'_> {
        ParameterIter::new(self.parameter_bytes())
    }

    /// The bytes after the parameter field: the user information of a DATA TRANSFER, or the
    /// next SPDU of the TSDU.
    pub fn trailing(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.spdu_len()..)
            .unwrap_or_default()
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// One PI or PGI unit: its code and its value (for a PGI, the PI units it contains).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parameter<'a> {
    /// The PI or PGI code.
    pub code: u8,
    /// The value field.
    pub value: &'a [u8],
}

/// Iterator over the PI/PGI units of a parameter field; stops after the first error.
#[derive(Debug, Clone)]
pub struct ParameterIter<'a> {
    buf: &'a [u8],
}

impl<'a> ParameterIter<'a> {
    /// Iterates over the units in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
}

impl<'a> Iterator for ParameterIter<'a> {
    type Item = Result<Parameter<'a>, SessionError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&code, rest) = self.buf.split_first()?;
        let item = read_li(rest).and_then(|(len, rest)| {
            if rest.len() < len {
                return Err(truncated("parameter"));
            }
            let (value, rest) = rest.split_at(len);
            self.buf = rest;
            Ok(Parameter { code, value })
        });
        if item.is_err() {
            self.buf = &[];
        }
        Some(item)
    }
}

/// Connection Identifier PGI (X.225 §8.3.1.3): references chosen by the SS-users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionIdentifier {
    /// Calling (in CN, PI 10) or called (in AC/RF, PI 9) SS-user reference.
    pub ss_user_reference: Option<Vec<u8>>,
    /// Common reference (PI 11).
    pub common_reference: Option<Vec<u8>>,
    /// Additional reference information (PI 12).
    pub additional_reference: Option<Vec<u8>>,
}

impl ConnectionIdentifier {
    fn is_empty(&self) -> bool {
        self.ss_user_reference.is_none()
            && self.common_reference.is_none()
            && self.additional_reference.is_none()
    }
}

/// The parameters of CONNECT and ACCEPT (X.225 §8.3.1, §8.3.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectAccept {
    /// Connection Identifier PGI; emitted when any reference is present.
    pub connection_id: ConnectionIdentifier,
    /// Protocol Options (PI 19); bit 1: able to receive extended concatenated SPDUs.
    pub protocol_options: u8,
    /// TSDU Maximum Size (PI 21): two 16-bit sizes, initiator to responder first.
    pub tsdu_maximum_size: Option<[u16; 2]>,
    /// Version Number (PI 22) bits ([`VERSION_1`], [`VERSION_2`]); version 1 when absent.
    pub version: u8,
    /// Initial Serial Number (PI 23).
    pub initial_serial: Option<u32>,
    /// Token Setting Item (PI 26): two bits per token (`00` initiator's side, `01` responder's
    /// side, `10` called SS-user's choice), release in bits 8-7, major/activity 6-5, minor
    /// synchronize 4-3, data 2-1.
    pub token_setting: Option<u8>,
    /// Token Item (PI 16, ACCEPT only): tokens the acceptor asks for.
    pub token_item: Option<Tokens>,
    /// Session User Requirements (PI 20); [`FunctionalUnits::ABSENT_DEFAULT`] when absent.
    pub requirements: Option<FunctionalUnits>,
    /// Calling Session Selector (PI 51).
    pub calling_ssel: Option<Vec<u8>>,
    /// Called (CONNECT) or Responding (ACCEPT) Session Selector (PI 52).
    pub called_ssel: Option<Vec<u8>>,
    /// SS-user data (PGI 193, or 194 in a CONNECT above 512 octets); omitted when empty.
    pub user_data: Vec<u8>,
}

/// One SPDU, typed (X.225 §8.3). SPDUs of unsupported functional units are not represented:
/// parsing them gives [`SessionError::UnsupportedSpdu`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Spdu {
    /// CONNECT (CN).
    Connect(ConnectAccept),
    /// ACCEPT (AC).
    Accept(ConnectAccept),
    /// REFUSE (RF).
    Refuse {
        /// Transport Disconnect (PI 17).
        transport_disconnect: Option<u8>,
        /// Session User Requirements (PI 20).
        requirements: Option<FunctionalUnits>,
        /// Version Number (PI 22).
        version: Option<u8>,
        /// First octet of the Reason Code (PI 50).
        reason: Option<u8>,
        /// SS-user data: the octets after the reason code.
        user_data: Vec<u8>,
    },
    /// FINISH (FN).
    Finish {
        /// Transport Disconnect (PI 17).
        transport_disconnect: Option<u8>,
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// DISCONNECT (DN).
    Disconnect {
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// NOT FINISHED (NF).
    NotFinished {
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// ABORT (AB).
    Abort {
        /// Transport Disconnect (PI 17): [`TD_RELEASE`], [`TD_USER_ABORT`], ...
        transport_disconnect: Option<u8>,
        /// Reflect Parameter Values (PI 49).
        reflect: Vec<u8>,
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// ABORT ACCEPT (AA).
    AbortAccept,
    /// GIVE TOKENS (GT).
    GiveTokens {
        /// Token Item (PI 16); omitted when empty.
        tokens: Tokens,
    },
    /// PLEASE TOKENS (PT).
    PleaseTokens {
        /// Token Item (PI 16); omitted when empty.
        tokens: Tokens,
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// GIVE TOKENS CONFIRM (GTC): S-CONTROL-GIVE.
    GiveTokensConfirm,
    /// GIVE TOKENS ACK (GTA).
    GiveTokensAck,
    /// DATA TRANSFER (DT).
    DataTransfer {
        /// The user information field (after the parameters, outside LI).
        user_information: Vec<u8>,
    },
    /// MINOR SYNC POINT (MIP).
    MinorSyncPoint {
        /// Sync Type Item (PI 15) bit 1 clear: explicit confirmation required.
        confirm_required: bool,
        /// Serial Number (PI 42).
        serial: u32,
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// MINOR SYNC ACK (MIA).
    MinorSyncAck {
        /// Serial Number (PI 42).
        serial: u32,
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// ACTIVITY START (AS).
    ActivityStart {
        /// Activity Identifier (PI 41), 1 to 6 octets.
        id: Vec<u8>,
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// ACTIVITY END (AE).
    ActivityEnd {
        /// Serial Number (PI 42).
        serial: u32,
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// ACTIVITY END ACK (AEA).
    ActivityEndAck {
        /// Serial Number (PI 42).
        serial: u32,
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
    /// ACTIVITY INTERRUPT (AI).
    ActivityInterrupt {
        /// Reason Code (PI 50); 0 when absent.
        reason: u8,
    },
    /// ACTIVITY INTERRUPT ACK (AIA).
    ActivityInterruptAck,
    /// ACTIVITY DISCARD (AD).
    ActivityDiscard {
        /// Reason Code (PI 50); 0 when absent.
        reason: u8,
    },
    /// ACTIVITY DISCARD ACK (ADA).
    ActivityDiscardAck,
    /// EXCEPTION REPORT (ER): the peer's SPM detected a protocol error.
    ExceptionReport {
        /// Reflect Parameter Values (PI 49).
        reflect: Vec<u8>,
    },
    /// EXCEPTION DATA (ED): S-U-EXCEPTION-REPORT.
    ExceptionData {
        /// Reason Code (PI 50).
        reason: u8,
        /// SS-user data (PGI 193).
        user_data: Vec<u8>,
    },
}

/// The place of an SPDU in a TSDU, which decides what a shared SI code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Alone in its TSDU: category 0 or category 1.
    Alone,
    /// First of two: category 0.
    First,
    /// Second of two: category 2.
    Second,
}

/// The known parameters of one SPDU, gathered before the typed value is built.
#[derive(Default)]
struct Fields<'a> {
    connection_id: Option<&'a [u8]>,
    connect_accept: Option<&'a [u8]>,
    sync_type: Option<u8>,
    token_item: Option<u8>,
    transport_disconnect: Option<u8>,
    requirements: Option<u16>,
    version: Option<u8>,
    activity_id: Option<&'a [u8]>,
    serial: Option<&'a [u8]>,
    reflect: Option<&'a [u8]>,
    reason: Option<&'a [u8]>,
    calling_ssel: Option<&'a [u8]>,
    called_ssel: Option<&'a [u8]>,
    user_data: Option<&'a [u8]>,
    extended_user_data: Option<&'a [u8]>,
}

fn one_octet(spdu: &'static str, p: Parameter<'_>) -> Result<u8, SessionError> {
    match p.value {
        [v] => Ok(*v),
        _ => Err(SessionError::BadParameter {
            spdu,
            code: p.code,
            reason: "length is not 1",
        }),
    }
}

/// Accepts only the Enclosure Item "beginning and end": segmenting is never negotiated.
fn check_enclosure(spdu: &'static str, p: Parameter<'_>) -> Result<(), SessionError> {
    if one_octet(spdu, p)? & ENCLOSURE_WHOLE == ENCLOSURE_WHOLE {
        Ok(())
    } else {
        Err(SessionError::Segmented)
    }
}

fn bounded<'a>(spdu: &'static str, p: Parameter<'a>, max: usize) -> Result<&'a [u8], SessionError> {
    if p.value.len() > max {
        return Err(SessionError::BadParameter {
            spdu,
            code: p.code,
            reason: "value too long",
        });
    }
    Ok(p.value)
}

fn user_data_limit(data: &[u8], max: usize) -> Result<Vec<u8>, SessionError> {
    if data.len() > max {
        return Err(SessionError::UserDataTooLong {
            len: data.len(),
            max,
        });
    }
    Ok(data.to_vec())
}

/// Parses a Serial Number value: 1 to 6 IA5 decimal digits.
fn parse_serial(spdu: &'static str, code: u8, value: &[u8]) -> Result<u32, SessionError> {
    if value.is_empty() || value.len() > MAX_SERIAL_DIGITS {
        return Err(SessionError::BadParameter {
            spdu,
            code,
            reason: "serial number is not 1 to 6 digits",
        });
    }
    value.iter().try_fold(0u32, |acc, &d| {
        if d.is_ascii_digit() {
            Ok(acc * 10 + u32::from(d - b'0'))
        } else {
            Err(SessionError::BadParameter {
                spdu,
                code,
                reason: "serial number is not decimal digits",
            })
        }
    })
}

fn collect<'a>(spdu: &'static str, params: &'a [u8]) -> Result<Fields<'a>, SessionError> {
    let mut f = Fields::default();
    let mut count = 0usize;
    for p in ParameterIter::new(params) {
        let p = p?;
        count += 1;
        if count > MAX_PARAMETERS {
            return Err(SessionError::TooManyParameters {
                max: MAX_PARAMETERS,
            });
        }
        match p.code {
            pi::CONNECTION_IDENTIFIER => {
                // Validate the nested units now so that garbage inside is reported.
                for inner in ParameterIter::new(p.value) {
                    inner?;
                    count += 1;
                }
                f.connection_id = Some(p.value);
            }
            pi::CONNECT_ACCEPT_ITEM => {
                for inner in ParameterIter::new(p.value) {
                    inner?;
                    count += 1;
                }
                f.connect_accept = Some(p.value);
            }
            pi::SYNC_TYPE_ITEM => f.sync_type = Some(one_octet(spdu, p)?),
            pi::TOKEN_ITEM => f.token_item = Some(one_octet(spdu, p)?),
            pi::TRANSPORT_DISCONNECT => f.transport_disconnect = Some(one_octet(spdu, p)?),
            pi::SESSION_USER_REQUIREMENTS => match p.value {
                [hi, lo] => f.requirements = Some(u16::from_be_bytes([*hi, *lo])),
                _ => {
                    return Err(SessionError::BadParameter {
                        spdu,
                        code: p.code,
                        reason: "length is not 2",
                    });
                }
            },
            pi::VERSION_NUMBER => f.version = Some(one_octet(spdu, p)?),
            pi::ENCLOSURE_ITEM => check_enclosure(spdu, p)?,
            pi::ACTIVITY_IDENTIFIER => {
                f.activity_id = Some(bounded(spdu, p, MAX_ACTIVITY_ID_LEN)?);
            }
            pi::SERIAL_NUMBER => f.serial = Some(p.value),
            pi::REFLECT_PARAMETER => f.reflect = Some(bounded(spdu, p, MAX_REFLECT_LEN)?),
            pi::REASON_CODE => f.reason = Some(p.value),
            pi::CALLING_SESSION_SELECTOR => {
                f.calling_ssel = Some(bounded(spdu, p, MAX_SELECTOR_LEN)?);
            }
            pi::CALLED_SESSION_SELECTOR => {
                f.called_ssel = Some(bounded(spdu, p, MAX_SELECTOR_LEN)?);
            }
            pi::USER_DATA => f.user_data = Some(p.value),
            pi::EXTENDED_USER_DATA => f.extended_user_data = Some(p.value),
            // X.225 §8.2.7: parameters not defined for the SPDU are ignored.
            _ => {}
        }
        if count > MAX_PARAMETERS {
            return Err(SessionError::TooManyParameters {
                max: MAX_PARAMETERS,
            });
        }
    }
    Ok(f)
}

fn parse_connection_id(
    spdu: &'static str,
    value: &[u8],
) -> Result<ConnectionIdentifier, SessionError> {
    let mut id = ConnectionIdentifier::default();
    for p in ParameterIter::new(value) {
        let p = p?;
        match p.code {
            pi::CALLED_SS_USER_REFERENCE | pi::CALLING_SS_USER_REFERENCE => {
                id.ss_user_reference = Some(bounded(spdu, p, MAX_REFERENCE_LEN)?.to_vec());
            }
            pi::COMMON_REFERENCE => {
                id.common_reference = Some(bounded(spdu, p, MAX_REFERENCE_LEN)?.to_vec());
            }
            pi::ADDITIONAL_REFERENCE => {
                id.additional_reference =
                    Some(bounded(spdu, p, MAX_ADDITIONAL_REFERENCE_LEN)?.to_vec());
            }
            _ => {}
        }
    }
    Ok(id)
}

fn parse_connect_accept(
    spdu: &'static str,
    f: &Fields<'_>,
    max_user_data: usize,
) -> Result<ConnectAccept, SessionError> {
    let mut ca = ConnectAccept {
        version: VERSION_1,
        ..ConnectAccept::default()
    };
    if let Some(v) = f.connection_id {
        ca.connection_id = parse_connection_id(spdu, v)?;
    }
    if let Some(v) = f.connect_accept {
        for p in ParameterIter::new(v) {
            let p = p?;
            match p.code {
                pi::PROTOCOL_OPTIONS => ca.protocol_options = one_octet(spdu, p)?,
                pi::TSDU_MAXIMUM_SIZE => match p.value {
                    [a, b, c, d] => {
                        ca.tsdu_maximum_size =
                            Some([u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])]);
                    }
                    _ => {
                        return Err(SessionError::BadParameter {
                            spdu,
                            code: p.code,
                            reason: "length is not 4",
                        });
                    }
                },
                pi::VERSION_NUMBER => ca.version = one_octet(spdu, p)?,
                pi::INITIAL_SERIAL_NUMBER => {
                    ca.initial_serial = Some(parse_serial(spdu, p.code, p.value)?);
                }
                pi::TOKEN_SETTING_ITEM => ca.token_setting = Some(one_octet(spdu, p)?),
                _ => {}
            }
        }
    }
    // X.225 §8.3.2: the Token Item belongs to ACCEPT; in a CONNECT it is ignored, as the
    // emitter never writes it there.
    if spdu != "CN" {
        ca.token_item = f.token_item.map(Tokens::from_bits_truncate);
    }
    ca.requirements = f.requirements.map(FunctionalUnits::from_bits);
    ca.calling_ssel = f.calling_ssel.map(<[u8]>::to_vec);
    ca.called_ssel = f.called_ssel.map(<[u8]>::to_vec);
    let data: &[u8] = match (f.user_data, f.extended_user_data) {
        (Some(_), Some(_)) => {
            return Err(SessionError::BadParameter {
                spdu,
                code: pi::EXTENDED_USER_DATA,
                reason: "both User Data and Extended User Data present",
            });
        }
        (Some(d), None) | (None, Some(d)) => d,
        (None, None) => &[],
    };
    if spdu == "CN" && data.len() > MAX_CONNECT_USER_DATA {
        return Err(SessionError::UserDataTooLong {
            len: data.len(),
            max: MAX_CONNECT_USER_DATA,
        });
    }
    ca.user_data = user_data_limit(data, max_user_data)?;
    Ok(ca)
}

fn serial_of(spdu: &'static str, f: &Fields<'_>) -> Result<u32, SessionError> {
    let v = f.serial.ok_or(SessionError::MissingParameter {
        spdu,
        code: pi::SERIAL_NUMBER,
    })?;
    parse_serial(spdu, pi::SERIAL_NUMBER, v)
}

fn reason_octet(f: &Fields<'_>) -> u8 {
    f.reason.and_then(|r| r.first().copied()).unwrap_or(0)
}

impl Spdu {
    /// Builds the typed SPDU from a checked view and its place in the TSDU. `max_user_data`
    /// bounds the SS-user data copied out of it.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &SpduPacket<T>,
        position: Position,
        max_user_data: usize,
    ) -> Result<Self, SessionError> {
        let code = packet.si();
        let name = spdu_name(code, position);
        let f = collect(name, packet.parameter_bytes())?;
        let ud = |f: &Fields<'_>| user_data_limit(f.user_data.unwrap_or_default(), max_user_data);
        let spdu = match (position, code) {
            (Position::Alone | Position::First, si::GIVE_TOKENS) => Spdu::GiveTokens {
                tokens: Tokens::from_bits_truncate(f.token_item.unwrap_or(0)),
            },
            (Position::Alone | Position::First, si::PLEASE_TOKENS) => Spdu::PleaseTokens {
                tokens: Tokens::from_bits_truncate(f.token_item.unwrap_or(0)),
                user_data: ud(&f)?,
            },
            (Position::First, _) => {
                return Err(SessionError::Concatenation(
                    "first SPDU of a concatenated TSDU is not GIVE TOKENS or PLEASE TOKENS",
                ));
            }
            (Position::Alone, si::CONNECT) => {
                Spdu::Connect(parse_connect_accept(name, &f, max_user_data)?)
            }
            (Position::Alone, si::ACCEPT) => {
                Spdu::Accept(parse_connect_accept(name, &f, max_user_data)?)
            }
            (Position::Alone, si::REFUSE) => {
                let (reason, data) = match f.reason {
                    Some([r, rest @ ..]) => (Some(*r), rest),
                    _ => (None, &[][..]),
                };
                Spdu::Refuse {
                    transport_disconnect: f.transport_disconnect,
                    requirements: f.requirements.map(FunctionalUnits::from_bits),
                    version: f.version,
                    reason,
                    user_data: user_data_limit(data, max_user_data)?,
                }
            }
            (Position::Alone, si::FINISH) => Spdu::Finish {
                transport_disconnect: f.transport_disconnect,
                user_data: ud(&f)?,
            },
            (Position::Alone, si::DISCONNECT) => Spdu::Disconnect { user_data: ud(&f)? },
            (Position::Alone, si::NOT_FINISHED) => Spdu::NotFinished { user_data: ud(&f)? },
            (Position::Alone, si::ABORT) => Spdu::Abort {
                transport_disconnect: f.transport_disconnect,
                reflect: f.reflect.unwrap_or_default().to_vec(),
                user_data: ud(&f)?,
            },
            (Position::Alone, si::ABORT_ACCEPT) => Spdu::AbortAccept,
            (Position::Alone, si::GIVE_TOKENS_CONFIRM) => Spdu::GiveTokensConfirm,
            (Position::Alone, si::GIVE_TOKENS_ACK) => Spdu::GiveTokensAck,
            (
                Position::Alone,
                si::EXPEDITED
                | si::PREPARE
                | si::CONNECT_DATA_OVERFLOW
                | si::OVERFLOW_ACCEPT
                | si::CAPABILITY_DATA
                | si::CAPABILITY_DATA_ACK
                | si::TYPED_DATA,
            ) => return Err(SessionError::UnsupportedSpdu { si: code }),
            (
                Position::Alone,
                si::EXCEPTION_REPORT
                | si::ACTIVITY_RESUME
                | si::RESYNCHRONIZE_ACK
                | si::ACTIVITY_END
                | si::ACTIVITY_END_ACK
                | si::ACTIVITY_START
                | si::EXCEPTION_DATA
                | si::MINOR_SYNC_POINT
                | si::MINOR_SYNC_ACK
                | si::RESYNCHRONIZE
                | si::ACTIVITY_DISCARD
                | si::ACTIVITY_DISCARD_ACK,
            ) => {
                return Err(SessionError::Concatenation(
                    "category 2 SPDU not preceded by GIVE TOKENS or PLEASE TOKENS",
                ));
            }
            (Position::Alone, _) => return Err(SessionError::UnknownSpdu { si: code }),
            (Position::Second, si::DATA_TRANSFER) => Spdu::DataTransfer {
                user_information: user_data_limit(packet.trailing(), max_user_data)?,
            },
            (Position::Second, si::MINOR_SYNC_POINT) => Spdu::MinorSyncPoint {
                confirm_required: f.sync_type.unwrap_or(0) & 0x01 == 0,
                serial: serial_of(name, &f)?,
                user_data: ud(&f)?,
            },
            (Position::Second, si::MINOR_SYNC_ACK) => Spdu::MinorSyncAck {
                serial: serial_of(name, &f)?,
                user_data: ud(&f)?,
            },
            (Position::Second, si::ACTIVITY_START) => Spdu::ActivityStart {
                id: f
                    .activity_id
                    .ok_or(SessionError::MissingParameter {
                        spdu: name,
                        code: pi::ACTIVITY_IDENTIFIER,
                    })?
                    .to_vec(),
                user_data: ud(&f)?,
            },
            (Position::Second, si::ACTIVITY_END) => Spdu::ActivityEnd {
                serial: serial_of(name, &f)?,
                user_data: ud(&f)?,
            },
            (Position::Second, si::ACTIVITY_END_ACK) => Spdu::ActivityEndAck {
                serial: serial_of(name, &f)?,
                user_data: ud(&f)?,
            },
            (Position::Second, si::ACTIVITY_INTERRUPT) => Spdu::ActivityInterrupt {
                reason: reason_octet(&f),
            },
            (Position::Second, si::ACTIVITY_INTERRUPT_ACK) => Spdu::ActivityInterruptAck,
            (Position::Second, si::ACTIVITY_DISCARD) => Spdu::ActivityDiscard {
                reason: reason_octet(&f),
            },
            (Position::Second, si::ACTIVITY_DISCARD_ACK) => Spdu::ActivityDiscardAck,
            (Position::Second, si::EXCEPTION_REPORT) => Spdu::ExceptionReport {
                reflect: f.reflect.unwrap_or_default().to_vec(),
            },
            (Position::Second, si::EXCEPTION_DATA) => Spdu::ExceptionData {
                reason: reason_octet(&f),
                user_data: ud(&f)?,
            },
            (
                Position::Second,
                si::ACTIVITY_RESUME
                | si::TYPED_DATA
                | si::RESYNCHRONIZE
                | si::RESYNCHRONIZE_ACK
                | si::CAPABILITY_DATA
                | si::CAPABILITY_DATA_ACK,
            ) => return Err(SessionError::UnsupportedSpdu { si: code }),
            (Position::Second, si::PLEASE_TOKENS) => {
                return Err(SessionError::Concatenation(
                    "category 0 SPDU in second place",
                ));
            }
            (
                Position::Second,
                si::CONNECT
                | si::ACCEPT
                | si::REFUSE
                | si::FINISH
                | si::DISCONNECT
                | si::NOT_FINISHED
                | si::GIVE_TOKENS_CONFIRM
                | si::GIVE_TOKENS_ACK
                | si::EXPEDITED
                | si::PREPARE
                | si::CONNECT_DATA_OVERFLOW
                | si::OVERFLOW_ACCEPT,
            ) => {
                return Err(SessionError::Concatenation(
                    "category 1 SPDU concatenated with another SPDU",
                ));
            }
            (Position::Second, _) => return Err(SessionError::UnknownSpdu { si: code }),
        };
        Ok(spdu)
    }

    /// The SI code.
    pub fn si(&self) -> u8 {
        match self {
            Spdu::Connect(_) => si::CONNECT,
            Spdu::Accept(_) => si::ACCEPT,
            Spdu::Refuse { .. } => si::REFUSE,
            Spdu::Finish { .. } => si::FINISH,
            Spdu::Disconnect { .. } => si::DISCONNECT,
            Spdu::NotFinished { .. } => si::NOT_FINISHED,
            Spdu::Abort { .. } => si::ABORT,
            Spdu::AbortAccept => si::ABORT_ACCEPT,
            Spdu::GiveTokens { .. } => si::GIVE_TOKENS,
            Spdu::PleaseTokens { .. } => si::PLEASE_TOKENS,
            Spdu::GiveTokensConfirm => si::GIVE_TOKENS_CONFIRM,
            Spdu::GiveTokensAck => si::GIVE_TOKENS_ACK,
            Spdu::DataTransfer { .. } => si::DATA_TRANSFER,
            Spdu::MinorSyncPoint { .. } => si::MINOR_SYNC_POINT,
            Spdu::MinorSyncAck { .. } => si::MINOR_SYNC_ACK,
            Spdu::ActivityStart { .. } => si::ACTIVITY_START,
            Spdu::ActivityEnd { .. } => si::ACTIVITY_END,
            Spdu::ActivityEndAck { .. } => si::ACTIVITY_END_ACK,
            Spdu::ActivityInterrupt { .. } => si::ACTIVITY_INTERRUPT,
            Spdu::ActivityInterruptAck => si::ACTIVITY_INTERRUPT_ACK,
            Spdu::ActivityDiscard { .. } => si::ACTIVITY_DISCARD,
            Spdu::ActivityDiscardAck => si::ACTIVITY_DISCARD_ACK,
            Spdu::ExceptionReport { .. } => si::EXCEPTION_REPORT,
            Spdu::ExceptionData { .. } => si::EXCEPTION_DATA,
        }
    }

    /// The X.225 abbreviation (CN, AC, DT, ...).
    pub fn name(&self) -> &'static str {
        let position = match self.category() {
            0 | 1 => Position::Alone,
            _ => Position::Second,
        };
        spdu_name(self.si(), position)
    }

    /// The concatenation category (X.225 §6.3.7): 0, 1 or 2.
    pub fn category(&self) -> u8 {
        match self {
            Spdu::GiveTokens { .. } | Spdu::PleaseTokens { .. } => 0,
            Spdu::Connect(_)
            | Spdu::Accept(_)
            | Spdu::Refuse { .. }
            | Spdu::Finish { .. }
            | Spdu::Disconnect { .. }
            | Spdu::NotFinished { .. }
            | Spdu::Abort { .. }
            | Spdu::AbortAccept
            | Spdu::GiveTokensConfirm
            | Spdu::GiveTokensAck => 1,
            _ => 2,
        }
    }

    /// The number of octets [`Spdu::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let mut c = Counter(0);
        self.write_params(&mut c);
        let user_information = match self {
            Spdu::DataTransfer { user_information } => user_information.len(),
            _ => 0,
        };
        1 + li_len(c.0) + c.0 + user_information
    }

    /// Appends the encoding of this SPDU to `buf`. Fails when a parameter or the parameter
    /// field is longer than a length indicator can express (65535 octets).
    pub fn emit(&self, buf: &mut Vec<u8>) -> Result<(), SessionError> {
        let mut c = Checker(0, None);
        self.write_params(&mut c);
        if let Some(len) = c.1 {
            return Err(SessionError::LengthOverflow { len });
        }
        if c.0 > MAX_LI {
            return Err(SessionError::LengthOverflow { len: c.0 });
        }
        buf.reserve(self.buffer_len());
        buf.push(self.si());
        put_li(buf, c.0);
        self.write_params(buf);
        if let Spdu::DataTransfer { user_information } = self {
            buf.extend_from_slice(user_information);
        }
        Ok(())
    }

    fn write_params(&self, s: &mut dyn Sink) {
        match self {
            Spdu::Connect(ca) | Spdu::Accept(ca) => {
                let is_connect = matches!(self, Spdu::Connect(_));
                if !ca.connection_id.is_empty() {
                    put_pgi(s, pi::CONNECTION_IDENTIFIER, &|s| {
                        if let Some(r) = &ca.connection_id.ss_user_reference {
                            let code = if is_connect {
                                pi::CALLING_SS_USER_REFERENCE
                            } else {
                                pi::CALLED_SS_USER_REFERENCE
                            };
                            put_pi(s, code, r);
                        }
                        if let Some(r) = &ca.connection_id.common_reference {
                            put_pi(s, pi::COMMON_REFERENCE, r);
                        }
                        if let Some(r) = &ca.connection_id.additional_reference {
                            put_pi(s, pi::ADDITIONAL_REFERENCE, r);
                        }
                    });
                }
                put_pgi(s, pi::CONNECT_ACCEPT_ITEM, &|s| {
                    put_pi(s, pi::PROTOCOL_OPTIONS, &[ca.protocol_options]);
                    if let Some([a, b]) = ca.tsdu_maximum_size {
                        let [a1, a2] = a.to_be_bytes();
                        let [b1, b2] = b.to_be_bytes();
                        put_pi(s, pi::TSDU_MAXIMUM_SIZE, &[a1, a2, b1, b2]);
                    }
                    put_pi(s, pi::VERSION_NUMBER, &[ca.version]);
                    if let Some(n) = ca.initial_serial {
                        put_pi(s, pi::INITIAL_SERIAL_NUMBER, &serial_digits(n));
                    }
                    if let Some(t) = ca.token_setting {
                        put_pi(s, pi::TOKEN_SETTING_ITEM, &[t]);
                    }
                });
                if !is_connect && let Some(t) = ca.token_item {
                    put_pi(s, pi::TOKEN_ITEM, &[t.bits()]);
                }
                if let Some(r) = ca.requirements {
                    put_pi(s, pi::SESSION_USER_REQUIREMENTS, &r.bits().to_be_bytes());
                }
                if let Some(v) = &ca.calling_ssel {
                    put_pi(s, pi::CALLING_SESSION_SELECTOR, v);
                }
                if let Some(v) = &ca.called_ssel {
                    put_pi(s, pi::CALLED_SESSION_SELECTOR, v);
                }
                if !ca.user_data.is_empty() {
                    let code = if is_connect && ca.user_data.len() > MAX_SHORT_USER_DATA {
                        pi::EXTENDED_USER_DATA
                    } else {
                        pi::USER_DATA
                    };
                    put_pi(s, code, &ca.user_data);
                }
            }
            Spdu::Refuse {
                transport_disconnect,
                requirements,
                version,
                reason,
                user_data,
            } => {
                if let Some(td) = transport_disconnect {
                    put_pi(s, pi::TRANSPORT_DISCONNECT, &[*td]);
                }
                if let Some(r) = requirements {
                    put_pi(s, pi::SESSION_USER_REQUIREMENTS, &r.bits().to_be_bytes());
                }
                if let Some(v) = version {
                    put_pi(s, pi::VERSION_NUMBER, &[*v]);
                }
                if let Some(r) = reason {
                    s.put(&[pi::REASON_CODE]);
                    put_li(s, 1 + user_data.len());
                    s.put(&[*r]);
                    s.put(user_data);
                }
            }
            Spdu::Finish {
                transport_disconnect,
                user_data,
            } => {
                if let Some(td) = transport_disconnect {
                    put_pi(s, pi::TRANSPORT_DISCONNECT, &[*td]);
                }
                put_user_data(s, user_data);
            }
            Spdu::Disconnect { user_data } | Spdu::NotFinished { user_data } => {
                put_user_data(s, user_data);
            }
            Spdu::Abort {
                transport_disconnect,
                reflect,
                user_data,
            } => {
                if let Some(td) = transport_disconnect {
                    put_pi(s, pi::TRANSPORT_DISCONNECT, &[*td]);
                }
                if !reflect.is_empty() {
                    put_pi(s, pi::REFLECT_PARAMETER, reflect);
                }
                put_user_data(s, user_data);
            }
            Spdu::AbortAccept
            | Spdu::GiveTokensConfirm
            | Spdu::GiveTokensAck
            | Spdu::DataTransfer { .. }
            | Spdu::ActivityInterruptAck
            | Spdu::ActivityDiscardAck => {}
            Spdu::GiveTokens { tokens } => {
                if !tokens.is_empty() {
                    put_pi(s, pi::TOKEN_ITEM, &[tokens.bits()]);
                }
            }
            Spdu::PleaseTokens { tokens, user_data } => {
                if !tokens.is_empty() {
                    put_pi(s, pi::TOKEN_ITEM, &[tokens.bits()]);
                }
                put_user_data(s, user_data);
            }
            Spdu::MinorSyncPoint {
                confirm_required,
                serial,
                user_data,
            } => {
                if !confirm_required {
                    put_pi(s, pi::SYNC_TYPE_ITEM, &[0x01]);
                }
                put_pi(s, pi::SERIAL_NUMBER, &serial_digits(*serial));
                put_user_data(s, user_data);
            }
            Spdu::MinorSyncAck { serial, user_data }
            | Spdu::ActivityEnd { serial, user_data }
            | Spdu::ActivityEndAck { serial, user_data } => {
                put_pi(s, pi::SERIAL_NUMBER, &serial_digits(*serial));
                put_user_data(s, user_data);
            }
            Spdu::ActivityStart { id, user_data } => {
                put_pi(s, pi::ACTIVITY_IDENTIFIER, id);
                put_user_data(s, user_data);
            }
            Spdu::ActivityInterrupt { reason } | Spdu::ActivityDiscard { reason } => {
                put_pi(s, pi::REASON_CODE, &[*reason]);
            }
            Spdu::ExceptionReport { reflect } => {
                if !reflect.is_empty() {
                    put_pi(s, pi::REFLECT_PARAMETER, reflect);
                }
            }
            Spdu::ExceptionData { reason, user_data } => {
                put_pi(s, pi::REASON_CODE, &[*reason]);
                put_user_data(s, user_data);
            }
        }
    }
}

/// The X.225 abbreviation of an SI code at a place in the TSDU.
pub fn spdu_name(code: u8, position: Position) -> &'static str {
    let second = position == Position::Second;
    match code {
        si::EXCEPTION_REPORT => "ER",
        1 if second => "DT",
        1 => "GT",
        si::PLEASE_TOKENS => "PT",
        si::EXPEDITED => "EX",
        si::PREPARE => "PR",
        si::NOT_FINISHED => "NF",
        si::FINISH => "FN",
        si::DISCONNECT => "DN",
        si::REFUSE => "RF",
        si::CONNECT => "CN",
        si::ACCEPT => "AC",
        si::CONNECT_DATA_OVERFLOW => "CDO",
        si::OVERFLOW_ACCEPT => "OA",
        si::GIVE_TOKENS_CONFIRM => "GTC",
        si::GIVE_TOKENS_ACK => "GTA",
        25 if second => "AI",
        25 => "AB",
        26 if second => "AIA",
        26 => "AA",
        si::ACTIVITY_RESUME => "AR",
        si::TYPED_DATA => "TD",
        si::RESYNCHRONIZE_ACK => "RA",
        si::ACTIVITY_END => "AE",
        si::ACTIVITY_END_ACK => "AEA",
        si::ACTIVITY_START => "AS",
        si::EXCEPTION_DATA => "ED",
        si::MINOR_SYNC_POINT => "MIP",
        si::MINOR_SYNC_ACK => "MIA",
        si::RESYNCHRONIZE => "RS",
        si::ACTIVITY_DISCARD => "AD",
        si::ACTIVITY_DISCARD_ACK => "ADA",
        si::CAPABILITY_DATA => "CD",
        si::CAPABILITY_DATA_ACK => "CDA",
        _ => "unknown",
    }
}

/// Parses one TSDU into its SPDUs (X.225 §6.3.7 basic concatenation): one category 0 or
/// category 1 SPDU alone, or a category 0 SPDU followed by one category 2 SPDU. Uses
/// [`DEFAULT_MAX_USER_DATA`] as the user data limit.
pub fn parse_tsdu(tsdu: &[u8]) -> Result<Vec<Spdu>, SessionError> {
    parse_tsdu_with_limit(tsdu, DEFAULT_MAX_USER_DATA)
}

/// [`parse_tsdu`] with an explicit limit on the SS-user data of one SPDU.
pub fn parse_tsdu_with_limit(tsdu: &[u8], max_user_data: usize) -> Result<Vec<Spdu>, SessionError> {
    let first = SpduPacket::new_checked(tsdu)?;
    let rest = first.trailing();
    if rest.is_empty() {
        return Ok(vec![Spdu::parse(&first, Position::Alone, max_user_data)?]);
    }
    if !matches!(first.si(), si::GIVE_TOKENS | si::PLEASE_TOKENS) {
        return Err(SessionError::Concatenation(
            "octets after a category 1 SPDU (extended concatenation is not supported)",
        ));
    }
    let s0 = Spdu::parse(&first, Position::First, max_user_data)?;
    let second = SpduPacket::new_checked(rest)?;
    let s2 = Spdu::parse(&second, Position::Second, max_user_data)?;
    if !matches!(s2, Spdu::DataTransfer { .. }) && !second.trailing().is_empty() {
        return Err(SessionError::Concatenation(
            "octets after the category 2 SPDU (extended concatenation is not supported)",
        ));
    }
    Ok(vec![s0, s2])
}

/// Encodes SPDUs into one TSDU. The caller keeps to the concatenation rules (one category 0
/// or 1 SPDU, or a category 0 SPDU then a category 2 SPDU).
pub fn emit_tsdu(spdus: &[Spdu]) -> Result<Vec<u8>, SessionError> {
    let mut buf = Vec::with_capacity(spdus.iter().map(Spdu::buffer_len).sum());
    for s in spdus {
        s.emit(&mut buf)?;
    }
    Ok(buf)
}

/// Decimal IA5 digits of a serial number (taken modulo 10^6).
fn serial_digits(n: u32) -> Vec<u8> {
    (n % (MAX_SERIAL + 1)).to_string().into_bytes()
}

/// Where parameters are written: the output, or a counter that measures them.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    /// Notes a length that a length indicator cannot carry.
    fn overflow(&mut self, _len: usize) {}
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

/// A counter that also records the first length above [`MAX_LI`].
struct Checker(usize, Option<usize>);

impl Sink for Checker {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
    fn overflow(&mut self, len: usize) {
        self.1.get_or_insert(len);
    }
}

fn put_li(s: &mut dyn Sink, len: usize) {
    if len > MAX_LI {
        s.overflow(len);
    }
    if len < 0xFF {
        s.put(&[len as u8]);
    } else {
        let v = u16::try_from(len).unwrap_or(u16::MAX);
        s.put(&[0xFF]);
        s.put(&v.to_be_bytes());
    }
}

fn put_pi(s: &mut dyn Sink, code: u8, value: &[u8]) {
    s.put(&[code]);
    put_li(s, value.len());
    s.put(value);
}

fn put_pgi(s: &mut dyn Sink, code: u8, inner: &dyn Fn(&mut dyn Sink)) {
    let mut c = Counter(0);
    inner(&mut c);
    s.put(&[code]);
    put_li(s, c.0);
    inner(s);
}

fn put_user_data(s: &mut dyn Sink, data: &[u8]) {
    if !data.is_empty() {
        put_pi(s, pi::USER_DATA, data);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// The CONNECT of the synthetic P1 capture (frame 6, after TPKT and COTP DT headers).
    pub(crate) const PCAP_CN: &str = "0daa05091301001601021a0100140202493302000134020002c19131818ea003800101a2818680020780810400000001820400000002a433300f020101060452010001300406025101300f02010306045600020c300406025101300f020105060456000207300406025101613f303d020101a0386036a106060456000106be2c282a020103a025b023a321a01fb01da11b800d6d74612d612e6578616d706c65a10a16087365637265742d61";
    /// The ACCEPT of the capture (frame 7).
    pub(crate) const PCAP_AC: &str = "0e9205091301001601021a01001402024934020002c17d317ba003800101a27480020780830400000002a51b300780010081025101300780010081025101300780010081025101614b3049020101a0446142a106060456000106a203020100a305a103020100be2c282a020103a025b123a221a01fb11da11b800d6d74612d622e6578616d706c65a10a16087365637265742d62";
    /// GT + AS of the capture (frame 8).
    pub(crate) const PCAP_AS: &str = "01002d052903020101";
    /// GT + AE of the capture (frame 11).
    pub(crate) const PCAP_AE: &str = "010029032a0131";
    /// GT + AEA of the capture (frame 12).
    pub(crate) const PCAP_AEA: &str = "01002a032a0131";
    /// The start of GT + DT of the capture (frame 9), cut after a few user data octets.
    pub(crate) const PCAP_DT_HEAD: &str = "010001006181a33081a0020103";

    #[test]
    fn data_pattern_empty_gt_then_dt() {
        // X.225 §8.3.11: DT's user information follows the (empty) parameter field, outside LI.
        let bytes = hex("01 00 01 00 AA BB CC");
        let spdus = parse_tsdu(&bytes).expect("parse");
        assert_eq!(
            spdus,
            vec![
                Spdu::GiveTokens {
                    tokens: Tokens::NONE
                },
                Spdu::DataTransfer {
                    user_information: vec![0xAA, 0xBB, 0xCC]
                },
            ]
        );
        assert_eq!(emit_tsdu(&spdus).expect("emit"), bytes);
        assert_eq!(spdus[0].buffer_len() + spdus[1].buffer_len(), bytes.len());
    }

    #[test]
    fn dt_with_enclosure_item_whole() {
        // LI 3 on DT covers an Enclosure Item "beginning and end"; the user data follows it.
        let spdus = parse_tsdu(&hex("01 00 01 03 19 01 03 AA BB CC")).expect("parse");
        assert_eq!(
            spdus[1],
            Spdu::DataTransfer {
                user_information: vec![0xAA, 0xBB, 0xCC]
            }
        );
        let err = parse_tsdu(&hex("01 00 01 03 19 01 01 AA")).expect_err("segment");
        assert_eq!(err, SessionError::Segmented);
    }

    #[test]
    fn connect_laid_out_as_x225_8_3_1() {
        // PGI 5 (protocol options, version, token setting), PI 20, PI 51, PI 52, PGI 193.
        let cn = Spdu::Connect(ConnectAccept {
            protocol_options: 0,
            version: VERSION_2,
            token_setting: Some(0),
            requirements: Some(FunctionalUnits::P1),
            calling_ssel: Some(vec![0x00, 0x01]),
            called_ssel: Some(vec![0x00, 0x02]),
            user_data: vec![0x31, 0x00],
            ..ConnectAccept::default()
        });
        let expected = hex(
            "0D 1B  05 09 13 01 00 16 01 02 1A 01 00  14 02 02 49  33 02 00 01  34 02 00 02  C1 02 31 00",
        );
        let mut buf = Vec::new();
        cn.emit(&mut buf).expect("emit");
        assert_eq!(buf, expected);
        assert_eq!(cn.buffer_len(), expected.len());
        assert_eq!(parse_tsdu(&expected).expect("parse"), vec![cn]);
    }

    #[test]
    fn connect_with_long_user_data_uses_extended_pgi_and_long_li() {
        let cn = Spdu::Connect(ConnectAccept {
            version: VERSION_2,
            user_data: vec![0x5A; 600],
            ..ConnectAccept::default()
        });
        let mut buf = Vec::new();
        cn.emit(&mut buf).expect("emit");
        // SI, LI = FF 02 64 (612), PGI 5 (8 octets), PGI 194 with LI FF 02 58.
        assert_eq!(&buf[..4], &[0x0D, 0xFF, 0x02, 0x64]);
        assert_eq!(&buf[12..16], &[0xC2, 0xFF, 0x02, 0x58]);
        assert_eq!(buf.len(), cn.buffer_len());
        assert_eq!(parse_tsdu(&buf).expect("parse"), vec![cn]);
    }

    #[test]
    fn pcap_connect_and_accept_round_trip() {
        for (text, is_cn) in [(PCAP_CN, true), (PCAP_AC, false)] {
            let bytes = hex(text);
            let spdus = parse_tsdu(&bytes).expect("parse");
            let ca = match (&spdus[..], is_cn) {
                ([Spdu::Connect(ca)], true) | ([Spdu::Accept(ca)], false) => ca,
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(ca.version, VERSION_2);
            assert_eq!(ca.requirements, Some(FunctionalUnits::P1));
            assert_eq!(ca.token_setting, Some(0));
            assert_eq!(ca.called_ssel.as_deref(), Some(&[0x00, 0x02][..]));
            assert_eq!(emit_tsdu(&spdus).expect("emit"), bytes);
        }
    }

    #[test]
    fn pcap_activity_spdus_round_trip() {
        let cases = [
            (
                PCAP_AS,
                Spdu::ActivityStart {
                    id: vec![0x02, 0x01, 0x01],
                    user_data: vec![],
                },
            ),
            (
                PCAP_AE,
                Spdu::ActivityEnd {
                    serial: 1,
                    user_data: vec![],
                },
            ),
            (
                PCAP_AEA,
                Spdu::ActivityEndAck {
                    serial: 1,
                    user_data: vec![],
                },
            ),
        ];
        for (text, spdu) in cases {
            let bytes = hex(text);
            let gt = Spdu::GiveTokens {
                tokens: Tokens::NONE,
            };
            let expected = vec![gt, spdu];
            assert_eq!(parse_tsdu(&bytes).expect("parse"), expected);
            assert_eq!(emit_tsdu(&expected).expect("emit"), bytes);
        }
        let dt = parse_tsdu(&hex(PCAP_DT_HEAD)).expect("parse");
        assert_eq!(
            dt[1],
            Spdu::DataTransfer {
                user_information: hex("6181a33081a0020103")
            }
        );
    }

    #[test]
    fn shared_codes_depend_on_position() {
        assert_eq!(
            parse_tsdu(&hex("19 03 11 01 03")).expect("AB"),
            vec![Spdu::Abort {
                transport_disconnect: Some(TD_RELEASE | TD_USER_ABORT),
                reflect: vec![],
                user_data: vec![],
            }]
        );
        assert_eq!(
            parse_tsdu(&hex("01 00 19 03 32 01 05")).expect("AI"),
            vec![
                Spdu::GiveTokens {
                    tokens: Tokens::NONE
                },
                Spdu::ActivityInterrupt { reason: 5 }
            ]
        );
        assert_eq!(
            parse_tsdu(&hex("1A 00")).expect("AA"),
            vec![Spdu::AbortAccept]
        );
        assert_eq!(
            parse_tsdu(&hex("01 00 1A 00")).expect("AIA")[1],
            Spdu::ActivityInterruptAck
        );
    }

    #[test]
    fn refuse_reason_carries_user_data() {
        let rf = Spdu::Refuse {
            transport_disconnect: Some(TD_RELEASE),
            requirements: None,
            version: Some(VERSION_2),
            reason: Some(2),
            user_data: vec![0xAB, 0xCD],
        };
        let bytes = emit_tsdu(std::slice::from_ref(&rf)).expect("emit");
        assert_eq!(bytes, hex("0C 0B 11 01 01 16 01 02 32 03 02 AB CD"));
        assert_eq!(parse_tsdu(&bytes).expect("parse"), vec![rf]);
    }

    #[test]
    fn hostile_inputs_give_errors() {
        let cases: &[&str] = &[
            "",                                       // nothing
            "0D",                                     // no LI
            "0D 05 14 02",                            // LI past end
            "0D FF",                                  // truncated long LI
            "0D FF 12",                               // truncated long LI
            "0D FF FF FF 00",                         // 0xFF LI with huge length
            "0D 04 05 05 13 01",                      // PGI longer than the SPDU
            "0D 04 05 02 13 05",                      // PI inside PGI past the PGI end
            "0D 05 05 03 FF 00 01",                   // nested PGI garbage (long LI cut short)
            "0D 03 14 01 02",                         // requirements of length 1
            "2D 05 29 03 02 01 01",                   // AS alone: category 2 not after category 0
            "01 00 2D 09 29 07 00 00 00 00 00 00 00", // activity id too long
            "0D 00 01 00 AA",                         // CN followed by DT
            "01 00 01",                               // DT without LI
            "01 00 02 00",                            // PT in second place
            "01 00 0D 00",                            // CN in second place
            "01 00 29 00",                            // AE without serial number
            "01 00 29 03 2A 01 41",                   // serial number not digits
            "01 00 29 09 2A 07 31 32 33 34 35 36 37", // serial number too long
            "01 00 29 03 2A 01 31 00",                // octets after a category 2 SPDU
            "7F 00",                                  // unknown SI
            "01 00 7F 00",                            // unknown SI in second place
            "3D 00",                                  // capability data: unsupported
            "01 00 1D 00",                            // activity resume: unsupported
        ];
        for case in cases {
            let result = parse_tsdu(&hex(case));
            assert!(result.is_err(), "{case:?} gave {result:?}");
        }
    }

    #[test]
    fn too_many_parameters() {
        let mut bytes = vec![0x09, 0];
        for _ in 0..(MAX_PARAMETERS + 1) {
            bytes.extend_from_slice(&[0x7E, 0x00]);
        }
        bytes[1] = u8::try_from(bytes.len() - 2).expect("small");
        assert_eq!(
            parse_tsdu(&bytes),
            Err(SessionError::TooManyParameters {
                max: MAX_PARAMETERS
            })
        );
    }

    #[test]
    fn unknown_parameters_are_skipped() {
        // FN with an unknown PI 0x7E, then user data.
        let spdus = parse_tsdu(&hex("09 07 7E 01 00 C1 02 AA BB")).expect("parse");
        assert_eq!(
            spdus,
            vec![Spdu::Finish {
                transport_disconnect: None,
                user_data: vec![0xAA, 0xBB]
            }]
        );
    }

    #[test]
    fn user_data_limit_is_enforced() {
        let bytes = hex("01 00 01 00 AA BB CC DD");
        assert_eq!(
            parse_tsdu_with_limit(&bytes, 3),
            Err(SessionError::UserDataTooLong { len: 4, max: 3 })
        );
    }

    #[test]
    fn emit_refuses_oversized_parameter() {
        let fn_ = Spdu::Finish {
            transport_disconnect: None,
            user_data: vec![0; MAX_LI],
        };
        assert!(matches!(
            fn_.emit(&mut Vec::new()),
            Err(SessionError::LengthOverflow { .. })
        ));
    }

    #[test]
    fn minor_sync_round_trip() {
        for spdu in [
            Spdu::MinorSyncPoint {
                confirm_required: false,
                serial: 123_456,
                user_data: vec![1],
            },
            Spdu::MinorSyncPoint {
                confirm_required: true,
                serial: 7,
                user_data: vec![],
            },
            Spdu::MinorSyncAck {
                serial: 0,
                user_data: vec![],
            },
        ] {
            let tsdu = vec![
                Spdu::GiveTokens {
                    tokens: Tokens::NONE,
                },
                spdu,
            ];
            let bytes = emit_tsdu(&tsdu).expect("emit");
            assert_eq!(parse_tsdu(&bytes).expect("parse"), tsdu);
        }
    }

    #[test]
    fn view_accessors() {
        let bytes = hex("01 03 10 01 01 29 03 2A 01 31");
        let p = SpduPacket::new_checked(&bytes[..]).expect("view");
        assert_eq!(p.si(), 1);
        assert_eq!(p.length_indicator(), 3);
        assert_eq!(p.header_len(), 2);
        assert_eq!(p.spdu_len(), 5);
        assert_eq!(
            p.parameters()
                .collect::<Result<Vec<_>, _>>()
                .expect("params"),
            vec![Parameter {
                code: 16,
                value: &[1]
            }]
        );
        assert_eq!(p.trailing(), &bytes[5..]);
    }

    /// Found by the `x400_session` fuzz target: a CONNECT carrying a Token Item (an ACCEPT
    /// parameter) parsed with it, but was emitted without it, so the round trip differed.
    #[test]
    fn a_token_item_in_a_connect_is_ignored() {
        // CN { Token Item (PI 16) = 0 }
        let bytes = [0x0D, 0x03, 0x10, 0x01, 0x00];
        let spdus = parse_tsdu(&bytes).expect("parses");
        assert!(matches!(&spdus[..], [Spdu::Connect(ca)] if ca.token_item.is_none()));
        let again = emit_tsdu(&spdus).expect("emits");
        assert_eq!(parse_tsdu(&again).expect("parses again"), spdus);
    }
}
