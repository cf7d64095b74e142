//! X.228 RTSE APDUs, normal mode: RTORQ, RTOAC, RTORJ (in ACSE user information), RTTP and
//! RTTR (in presentation data), RTAB (in an ARU PPDU).
//!
//! The Reliable-Transfer-APDU module tags explicitly by default: the SETs are `[16]`, `[17]`,
//! `[18]` and `[22]` IMPLICIT, their INTEGER fields implicit, and `connectionDataRQ [3]`,
//! `connectionDataAC [2]`, `open [0]`, `userDataRJ [1]` and `userdataAB [2]` explicit (CHOICEs
//! and open types). Open-type values are kept as the complete BER element of the value; for
//! P1, `open` holds the ROS `bind-invoke` / `bind-result` / `bind-error` (see
//! [`super::ros::RosBind`]).
//!
//! RTTR segments can be megabytes: [`rttr_segment`] gives the segment without copying (or with
//! one copy if the peer sent a constructed OCTET STRING), and [`RtsePdu::decode`] copies it
//! once.

use std::borrow::Cow;

use crate::ber::{BerError, Tag, Tlv, Writer, parse_one};

use super::{BitString, context_number};

/// Why an RTSE APDU could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtseError {
    /// The bytes are not valid BER, or not the APDU's structure (the peer's fault).
    #[error("RTSE APDU: {0}")]
    Ber(#[from] BerError),
    /// A tag that is none of the RTSE APDUs (the peer's fault).
    #[error("not an RTSE APDU: {0}")]
    UnknownApdu(Tag),
    /// A dialogue mode other than monologue (0) or two-way-alternate (1) (the peer's fault).
    #[error("invalid RTSE dialogue mode {0}")]
    InvalidDialogueMode(i64),
}

/// `dialogueMode` of an RTORQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DialogueMode {
    /// `monologue (0)`, the DEFAULT: only the initiator sends.
    #[default]
    Monologue,
    /// `twa (1)`: two-way alternate, the turn passes with RTTP.
    TwoWayAlternate,
}

impl DialogueMode {
    /// The INTEGER value.
    pub fn value(self) -> i64 {
        match self {
            DialogueMode::Monologue => 0,
            DialogueMode::TwoWayAlternate => 1,
        }
    }

    /// From the INTEGER value.
    pub fn from_value(v: i64) -> Result<Self, RtseError> {
        match v {
            0 => Ok(DialogueMode::Monologue),
            1 => Ok(DialogueMode::TwoWayAlternate),
            _ => Err(RtseError::InvalidDialogueMode(v)),
        }
    }
}

/// `ConnectionData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionData {
    /// `open [0]`: the complete BER element of the RTSE user data (the ROS bind PDU for P1).
    Open(Vec<u8>),
    /// `recover [1] IMPLICIT SessionConnectionIdentifier`: the content octets of the `[1]`
    /// element (the SEQUENCE's components), kept as received.
    Recover(Vec<u8>),
}

impl ConnectionData {
    fn decode(t: &Tlv<'_>) -> Result<Self, RtseError> {
        let choice = t.explicit_inner()?;
        match context_number(choice.tag) {
            Some(0) => Ok(ConnectionData::Open(choice.explicit_inner()?.raw.to_vec())),
            Some(1) => {
                choice.children()?;
                Ok(ConnectionData::Recover(choice.content.to_vec()))
            }
            _ => Err(BerError::Unexpected {
                expected: "ConnectionData open [0] or recover [1]",
                found: choice.tag,
            }
            .into()),
        }
    }

    fn encode(&self, w: &mut Writer, n: u32) {
        w.explicit(Tag::context(n), |w| match self {
            ConnectionData::Open(v) => w.explicit(Tag::context(0), |w| w.raw(v)),
            ConnectionData::Recover(v) => w.constructed(Tag::context(1), |w| w.raw(v)),
        });
    }
}

/// Default `checkpointSize` (no checkpointing).
pub const DEFAULT_CHECKPOINT_SIZE: i64 = 0;
/// Default `windowSize`.
pub const DEFAULT_WINDOW_SIZE: i64 = 3;

/// RT-OPEN request (`RTORQapdu`, `[16] IMPLICIT SET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtorq {
    /// `checkpointSize [0]` in kilo-octets (DEFAULT 0: no checkpoints).
    pub checkpoint_size: i64,
    /// `windowSize [1]` (DEFAULT 3).
    pub window_size: i64,
    /// `dialogueMode [2]` (DEFAULT monologue).
    pub dialogue_mode: DialogueMode,
    /// `connectionDataRQ [3]`.
    pub connection_data: ConnectionData,
    /// `applicationProtocol [4]` (X.410-1984 mode only; normally absent).
    pub application_protocol: Option<i64>,
}

impl Rtorq {
    /// An RTORQ with default sizes, monologue, carrying `open` (the ROS bind-invoke element).
    pub fn open(open: Vec<u8>) -> Self {
        Rtorq {
            checkpoint_size: DEFAULT_CHECKPOINT_SIZE,
            window_size: DEFAULT_WINDOW_SIZE,
            dialogue_mode: DialogueMode::Monologue,
            connection_data: ConnectionData::Open(open),
            application_protocol: None,
        }
    }
}

/// RT-OPEN accept (`RTOACapdu`, `[17] IMPLICIT SET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtoac {
    /// `checkpointSize [0]` (DEFAULT 0).
    pub checkpoint_size: i64,
    /// `windowSize [1]` (DEFAULT 3).
    pub window_size: i64,
    /// `connectionDataAC [2]`.
    pub connection_data: ConnectionData,
}

impl Rtoac {
    /// An RTOAC with default sizes carrying `open` (the ROS bind-result element).
    pub fn open(open: Vec<u8>) -> Self {
        Rtoac {
            checkpoint_size: DEFAULT_CHECKPOINT_SIZE,
            window_size: DEFAULT_WINDOW_SIZE,
            connection_data: ConnectionData::Open(open),
        }
    }
}

/// RTORJ refuse reason: RTS busy.
pub const REFUSE_RTS_BUSY: i64 = 0;
/// RTORJ refuse reason: cannot recover.
pub const REFUSE_CANNOT_RECOVER: i64 = 1;
/// RTORJ refuse reason: validation failure.
pub const REFUSE_VALIDATION_FAILURE: i64 = 2;
/// RTORJ refuse reason: unacceptable dialogue mode.
pub const REFUSE_UNACCEPTABLE_DIALOGUE_MODE: i64 = 3;

/// RT-OPEN reject (`RTORJapdu`, `[18] IMPLICIT SET`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rtorj {
    /// `refuseReason [0]` (the `REFUSE_*` constants; X.410-1984 mode only).
    pub refuse_reason: Option<i64>,
    /// `userDataRJ [1]`: the complete BER element (for P1, the ROS bind-error).
    pub user_data: Option<Vec<u8>>,
}

/// RTAB abort reason: local system problem.
pub const ABORT_LOCAL_SYSTEM_PROBLEM: i64 = 0;
/// RTAB abort reason: invalid parameter (reflectedParameter supplied).
pub const ABORT_INVALID_PARAMETER: i64 = 1;
/// RTAB abort reason: unrecognized activity.
pub const ABORT_UNRECOGNIZED_ACTIVITY: i64 = 2;
/// RTAB abort reason: temporary problem.
pub const ABORT_TEMPORARY_PROBLEM: i64 = 3;
/// RTAB abort reason: RTSE protocol error.
pub const ABORT_PROTOCOL_ERROR: i64 = 4;
/// RTAB abort reason: permanent problem.
pub const ABORT_PERMANENT_PROBLEM: i64 = 5;
/// RTAB abort reason: user error.
pub const ABORT_USER_ERROR: i64 = 6;
/// RTAB abort reason: transfer completed (the activity cannot be discarded).
pub const ABORT_TRANSFER_COMPLETED: i64 = 7;

/// RT-ABORT (`RTABapdu`, `[22] IMPLICIT SET`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rtab {
    /// `abortReason [0]` (the `ABORT_*` constants).
    pub abort_reason: Option<i64>,
    /// `reflectedParameter [1]` (8 bits at most).
    pub reflected_parameter: Option<BitString>,
    /// `userdataAB [2]`: the complete BER element.
    pub user_data: Option<Vec<u8>>,
}

/// Any RTSE APDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtsePdu {
    /// RT-OPEN request.
    Rtorq(Rtorq),
    /// RT-OPEN accept.
    Rtoac(Rtoac),
    /// RT-OPEN reject.
    Rtorj(Rtorj),
    /// RT-TURN-PLEASE with its priority.
    Rttp(i64),
    /// RT-TRANSFER: one segment of the APDU being transferred.
    Rttr(Vec<u8>),
    /// RT-ABORT.
    Rtab(Rtab),
}

const RTORQ: Tag = Tag::context(16).constructed();
const RTOAC: Tag = Tag::context(17).constructed();
const RTORJ: Tag = Tag::context(18).constructed();
const RTAB: Tag = Tag::context(22).constructed();

/// Decodes an RTSE APDU (same as [`RtsePdu::decode`]).
pub fn decode_rtse(bytes: &[u8]) -> Result<RtsePdu, RtseError> {
    RtsePdu::decode(bytes)
}

/// The segment of an RTTR APDU (`OCTET STRING`, primitive or constructed) without copying it
/// when it is primitive.
pub fn rttr_segment(bytes: &[u8]) -> Result<Cow<'_, [u8]>, RtseError> {
    let t = parse_one(bytes)?.expect(Tag::OCTET_STRING, "RTTR OCTET STRING")?;
    Ok(t.octets()?)
}

/// Encodes an RTTR APDU carrying `segment`.
pub fn encode_rttr(segment: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(segment.len() + 6);
    w.octets(Tag::OCTET_STRING, segment);
    w.finish()
}

fn set_once<T>(slot: &mut Option<T>, v: T, what: &'static str) -> Result<(), BerError> {
    if slot.is_some() {
        return Err(BerError::Duplicate(what));
    }
    *slot = Some(v);
    Ok(())
}

impl RtsePdu {
    /// Decodes an RTSE APDU: a universal INTEGER is an RTTP, a universal OCTET STRING
    /// (primitive or constructed) an RTTR, `[16]`/`[17]`/`[18]`/`[22]` the others.
    pub fn decode(bytes: &[u8]) -> Result<Self, RtseError> {
        let t = parse_one(bytes)?;
        if t.tag == Tag::INTEGER {
            return Ok(RtsePdu::Rttp(t.integer()?));
        }
        if t.tag.same(Tag::OCTET_STRING) {
            return Ok(RtsePdu::Rttr(t.octets()?.into_owned()));
        }
        if !t.tag.constructed {
            return Err(RtseError::UnknownApdu(t.tag));
        }
        match context_number(t.tag) {
            Some(16) => Self::decode_rtorq(&t),
            Some(17) => Self::decode_rtoac(&t),
            Some(18) => Self::decode_rtorj(&t),
            Some(22) => Self::decode_rtab(&t),
            _ => Err(RtseError::UnknownApdu(t.tag)),
        }
    }

    fn decode_rtorq(t: &Tlv<'_>) -> Result<Self, RtseError> {
        let mut r = t.children()?;
        let (mut cs, mut ws, mut dm, mut cd, mut ap) = (None, None, None, None, None);
        while let Some(f) = r.next()? {
            match context_number(f.tag) {
                Some(0) => set_once(&mut cs, f.integer()?, "checkpointSize")?,
                Some(1) => set_once(&mut ws, f.integer()?, "windowSize")?,
                Some(2) => set_once(
                    &mut dm,
                    DialogueMode::from_value(f.integer()?)?,
                    "dialogueMode",
                )?,
                Some(3) => set_once(&mut cd, ConnectionData::decode(&f)?, "connectionDataRQ")?,
                Some(4) => set_once(&mut ap, f.integer()?, "applicationProtocol")?,
                _ => {}
            }
        }
        Ok(RtsePdu::Rtorq(Rtorq {
            checkpoint_size: cs.unwrap_or(DEFAULT_CHECKPOINT_SIZE),
            window_size: ws.unwrap_or(DEFAULT_WINDOW_SIZE),
            dialogue_mode: dm.unwrap_or_default(),
            connection_data: cd.ok_or(BerError::Missing("connectionDataRQ"))?,
            application_protocol: ap,
        }))
    }

    fn decode_rtoac(t: &Tlv<'_>) -> Result<Self, RtseError> {
        let mut r = t.children()?;
        let (mut cs, mut ws, mut cd) = (None, None, None);
        while let Some(f) = r.next()? {
            match context_number(f.tag) {
                Some(0) => set_once(&mut cs, f.integer()?, "checkpointSize")?,
                Some(1) => set_once(&mut ws, f.integer()?, "windowSize")?,
                Some(2) => set_once(&mut cd, ConnectionData::decode(&f)?, "connectionDataAC")?,
                _ => {}
            }
        }
        Ok(RtsePdu::Rtoac(Rtoac {
            checkpoint_size: cs.unwrap_or(DEFAULT_CHECKPOINT_SIZE),
            window_size: ws.unwrap_or(DEFAULT_WINDOW_SIZE),
            connection_data: cd.ok_or(BerError::Missing("connectionDataAC"))?,
        }))
    }

    fn decode_rtorj(t: &Tlv<'_>) -> Result<Self, RtseError> {
        let mut r = t.children()?;
        let mut rj = Rtorj::default();
        while let Some(f) = r.next()? {
            match context_number(f.tag) {
                Some(0) => set_once(&mut rj.refuse_reason, f.integer()?, "refuseReason")?,
                Some(1) => set_once(
                    &mut rj.user_data,
                    f.explicit_inner()?.raw.to_vec(),
                    "userDataRJ",
                )?,
                _ => {}
            }
        }
        Ok(RtsePdu::Rtorj(rj))
    }

    fn decode_rtab(t: &Tlv<'_>) -> Result<Self, RtseError> {
        let mut r = t.children()?;
        let mut ab = Rtab::default();
        while let Some(f) = r.next()? {
            match context_number(f.tag) {
                Some(0) => set_once(&mut ab.abort_reason, f.integer()?, "abortReason")?,
                Some(1) => set_once(
                    &mut ab.reflected_parameter,
                    BitString::decode(&f)?,
                    "reflectedParameter",
                )?,
                Some(2) => set_once(
                    &mut ab.user_data,
                    f.explicit_inner()?.raw.to_vec(),
                    "userdataAB",
                )?,
                _ => {}
            }
        }
        Ok(RtsePdu::Rtab(ab))
    }

    /// Encodes the APDU (components equal to their DEFAULT are left out).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            RtsePdu::Rtorq(q) => w.constructed(RTORQ, |w| {
                encode_sizes(w, q.checkpoint_size, q.window_size);
                if q.dialogue_mode != DialogueMode::Monologue {
                    w.integer_tagged(Tag::context(2), q.dialogue_mode.value());
                }
                q.connection_data.encode(w, 3);
                if let Some(v) = q.application_protocol {
                    w.integer_tagged(Tag::context(4), v);
                }
            }),
            RtsePdu::Rtoac(a) => w.constructed(RTOAC, |w| {
                encode_sizes(w, a.checkpoint_size, a.window_size);
                a.connection_data.encode(w, 2);
            }),
            RtsePdu::Rtorj(j) => w.constructed(RTORJ, |w| {
                if let Some(v) = j.refuse_reason {
                    w.integer_tagged(Tag::context(0), v);
                }
                if let Some(v) = &j.user_data {
                    w.explicit(Tag::context(1), |w| w.raw(v));
                }
            }),
            RtsePdu::Rttp(p) => w.integer(*p),
            RtsePdu::Rttr(s) => return encode_rttr(s),
            RtsePdu::Rtab(a) => w.constructed(RTAB, |w| {
                if let Some(v) = a.abort_reason {
                    w.integer_tagged(Tag::context(0), v);
                }
                if let Some(v) = &a.reflected_parameter {
                    v.encode(w, Tag::context(1));
                }
                if let Some(v) = &a.user_data {
                    w.explicit(Tag::context(2), |w| w.raw(v));
                }
            }),
        }
        w.finish()
    }
}

fn encode_sizes(w: &mut Writer, checkpoint_size: i64, window_size: i64) {
    if checkpoint_size != DEFAULT_CHECKPOINT_SIZE {
        w.integer_tagged(Tag::context(0), checkpoint_size);
    }
    if window_size != DEFAULT_WINDOW_SIZE {
        w.integer_tagged(Tag::context(1), window_size);
    }
}

#[cfg(test)]
mod tests;
