use super::*;
use crate::ber::{External, ExternalEncoding};
use crate::upper::acse::{Aare, Aarq};
use crate::upper::presentation::{CpPpdu, CpaPpdu, decode_user_data};
use crate::upper::ros::RosBind;
use crate::upper::testutil::{
    CP_HEX, CPA_HEX, PDATA1_HEX, PDATA2_HEX, all_truncations_fail, hex, indefinite,
};

fn capture_rtorq() -> Vec<u8> {
    let cp = CpPpdu::decode(&hex(CP_HEX)).expect("CP");
    let aarq = Aarq::decode(cp.user_data[0].bytes().expect("AARQ")).expect("AARQ");
    aarq.user_information[0].value().expect("RTORQ").to_vec()
}

fn capture_rtoac() -> Vec<u8> {
    let cpa = CpaPpdu::decode(&hex(CPA_HEX)).expect("CPA");
    let aare = Aare::decode(cpa.user_data[0].bytes().expect("AARE")).expect("AARE");
    aare.user_information[0].value().expect("RTOAC").to_vec()
}

fn open(c: &ConnectionData) -> &[u8] {
    match c {
        ConnectionData::Open(v) => v,
        other => panic!("expected open, got {other:?}"),
    }
}

#[test]
fn rtorq_from_the_capture() {
    let bytes = capture_rtorq();
    let RtsePdu::Rtorq(q) = decode_rtse(&bytes).expect("RTORQ decodes") else {
        panic!("not an RTORQ");
    };
    assert_eq!(q.checkpoint_size, 0);
    assert_eq!(q.window_size, 3);
    assert_eq!(q.dialogue_mode, DialogueMode::Monologue);
    assert_eq!(q.application_protocol, None);
    let bind = open(&q.connection_data);
    assert_eq!(
        RosBind::decode(bind)
            .map(|b| matches!(b, RosBind::Invoke(ref a) if a[..2] == [0xA1, 0x1B])),
        Ok(true)
    );
    assert_eq!(q, Rtorq::open(bind.to_vec()));
    assert_eq!(RtsePdu::Rtorq(q).encode(), bytes);
}

#[test]
fn rtoac_from_the_capture() {
    let bytes = capture_rtoac();
    let RtsePdu::Rtoac(a) = decode_rtse(&bytes).expect("RTOAC decodes") else {
        panic!("not an RTOAC");
    };
    let bind = open(&a.connection_data);
    assert!(matches!(RosBind::decode(bind), Ok(RosBind::Result(_))));
    assert_eq!(a, Rtoac::open(bind.to_vec()));
    assert_eq!(RtsePdu::Rtoac(a).encode(), bytes);
}

#[test]
fn rttr_segments_from_the_capture_join_into_the_mts_apdu_external() {
    let mut joined = Vec::new();
    for h in [PDATA1_HEX, PDATA2_HEX] {
        let pdvs = decode_user_data(&hex(h)).expect("P-DATA");
        let rttr = pdvs[0].bytes().expect("RTTR");
        let seg = rttr_segment(rttr).expect("segment");
        assert!(matches!(seg, Cow::Borrowed(_)));
        let RtsePdu::Rttr(owned) = decode_rtse(rttr).expect("RTTR") else {
            panic!("not an RTTR");
        };
        assert_eq!(owned, &*seg);
        assert_eq!(RtsePdu::Rttr(owned).encode(), rttr);
        assert_eq!(encode_rttr(&seg), rttr);
        joined.extend_from_slice(&seg);
    }
    let ext = External::decode(&parse_one(&joined).expect("one element")).expect("EXTERNAL");
    assert_eq!(ext.indirect_reference, Some(5));
    assert!(matches!(ext.encoding, ExternalEncoding::SingleAsn1Type(_)));
}

#[test]
fn indefinite_lengths_and_constructed_strings() {
    let bytes = capture_rtorq();
    let q = decode_rtse(&bytes).expect("RTORQ");
    let RtsePdu::Rtorq(inner) = &q else {
        panic!("not an RTORQ");
    };
    let bind = open(&inner.connection_data).to_vec();
    let indef = indefinite(&bytes, &[&bind]);
    assert_eq!(indef[..2], [0xB0, 0x80]);
    assert_eq!(decode_rtse(&indef), Ok(q.clone()));

    let bytes = capture_rtoac();
    let a = decode_rtse(&bytes).expect("RTOAC");
    let RtsePdu::Rtoac(inner) = &a else {
        panic!("not an RTOAC");
    };
    let bind = open(&inner.connection_data).to_vec();
    assert_eq!(decode_rtse(&indefinite(&bytes, &[&bind])), Ok(a.clone()));

    for pdu in samples() {
        let keep: Vec<Vec<u8>> = match &pdu {
            RtsePdu::Rtorj(Rtorj {
                user_data: Some(v), ..
            })
            | RtsePdu::Rtab(Rtab {
                user_data: Some(v), ..
            }) => vec![v.clone()],
            RtsePdu::Rtorq(Rtorq {
                connection_data: ConnectionData::Open(v),
                ..
            })
            | RtsePdu::Rtoac(Rtoac {
                connection_data: ConnectionData::Open(v),
                ..
            }) => vec![v.clone()],
            _ => Vec::new(),
        };
        let keep: Vec<&[u8]> = keep.iter().map(Vec::as_slice).collect();
        assert_eq!(decode_rtse(&indefinite(&pdu.encode(), &keep)), Ok(pdu));
    }

    // A constructed, indefinite RTTR: 24 80 { 04 02 01 02, 04 01 03 } 00 00.
    let c = [
        0x24, 0x80, 0x04, 0x02, 0x01, 0x02, 0x04, 0x01, 0x03, 0x00, 0x00,
    ];
    assert_eq!(decode_rtse(&c), Ok(RtsePdu::Rttr(vec![1, 2, 3])));
    assert!(matches!(rttr_segment(&c), Ok(Cow::Owned(v)) if v == [1, 2, 3]));
}

fn samples() -> Vec<RtsePdu> {
    vec![
        RtsePdu::Rtorq(Rtorq {
            checkpoint_size: 8,
            window_size: 5,
            dialogue_mode: DialogueMode::TwoWayAlternate,
            connection_data: ConnectionData::Open(vec![0xB0, 0x02, 0x05, 0x00]),
            application_protocol: Some(12),
        }),
        RtsePdu::Rtorq(Rtorq {
            checkpoint_size: 0,
            window_size: 3,
            dialogue_mode: DialogueMode::Monologue,
            // callingSSuserReference OCTET STRING, commonReference UTCTime.
            connection_data: ConnectionData::Recover(vec![
                0x04, 0x01, 0x41, 0x17, 0x0D, b'2', b'6', b'0', b'1', b'0', b'1', b'0', b'0', b'0',
                b'0', b'0', b'0', b'Z',
            ]),
            application_protocol: None,
        }),
        RtsePdu::Rtoac(Rtoac {
            checkpoint_size: 16,
            window_size: 1,
            connection_data: ConnectionData::Open(vec![0xB1, 0x02, 0x05, 0x00]),
        }),
        RtsePdu::Rtorj(Rtorj::default()),
        RtsePdu::Rtorj(Rtorj {
            refuse_reason: Some(REFUSE_VALIDATION_FAILURE),
            user_data: Some(vec![0xB2, 0x03, 0x02, 0x01, 0x01]),
        }),
        RtsePdu::Rttp(0),
        RtsePdu::Rttp(200),
        RtsePdu::Rttr(Vec::new()),
        RtsePdu::Rttr(b"segment".to_vec()),
        RtsePdu::Rtab(Rtab::default()),
        RtsePdu::Rtab(Rtab {
            abort_reason: Some(ABORT_INVALID_PARAMETER),
            reflected_parameter: Some(BitString {
                bits: vec![0xA0],
                unused: 0,
            }),
            user_data: Some(vec![0x05, 0x00]),
        }),
    ]
}

#[test]
fn every_apdu_round_trips() {
    for pdu in samples() {
        assert_eq!(RtsePdu::decode(&pdu.encode()), Ok(pdu));
    }
    // Hand-checked encodings.
    assert_eq!(RtsePdu::Rttp(0).encode(), [0x02, 0x01, 0x00]);
    assert_eq!(RtsePdu::Rtab(Rtab::default()).encode(), [0xB6, 0x00]);
    let rj = RtsePdu::Rtorj(Rtorj {
        refuse_reason: None,
        user_data: Some(vec![0x05, 0x00]),
    });
    // [18] IMPLICIT SET { userDataRJ [1] EXPLICIT { NULL } }.
    assert_eq!(rj.encode(), [0xB2, 0x04, 0xA1, 0x02, 0x05, 0x00]);
    // A megabyte segment: long length form, one copy on decode.
    let big = vec![0x5A; 1 << 20];
    let bytes = encode_rttr(&big);
    assert_eq!(bytes[..5], [0x04, 0x83, 0x10, 0x00, 0x00]);
    assert!(matches!(rttr_segment(&bytes), Ok(Cow::Borrowed(s)) if s.len() == big.len()));
    assert_eq!(decode_rtse(&bytes), Ok(RtsePdu::Rttr(big)));
}

#[test]
fn defaults_sent_explicitly_are_accepted() {
    // RTORQ { [0] 0, [1] 3, [2] 0, [3] { [0] { NULL } } } in another order.
    let bytes = [
        0xB0, 0x0F, 0xA3, 0x04, 0xA0, 0x02, 0x05, 0x00, 0x82, 0x01, 0x00, 0x81, 0x01, 0x03, 0x80,
        0x01, 0x00,
    ];
    assert_eq!(
        decode_rtse(&bytes),
        Ok(RtsePdu::Rtorq(Rtorq::open(vec![0x05, 0x00])))
    );
}

#[test]
fn hostile_inputs_are_errors() {
    all_truncations_fail(&capture_rtorq(), decode_rtse);
    all_truncations_fail(&capture_rtoac(), decode_rtse);
    for pdu in samples() {
        all_truncations_fail(&pdu.encode(), decode_rtse);
    }
    // Not RTSE APDUs.
    for bytes in [
        &[0xB3, 0x00][..],
        &[0x01, 0x01, 0xFF],
        &[0x30, 0x00],
        &[0x90, 0x00],
    ] {
        assert!(
            matches!(decode_rtse(bytes), Err(RtseError::UnknownApdu(_))),
            "{bytes:?}"
        );
    }
    // A huge claimed length.
    assert!(matches!(
        decode_rtse(&[0x04, 0x84, 0x7F, 0xFF, 0xFF, 0xFF, 0x00]),
        Err(RtseError::Ber(BerError::Truncated(_)))
    ));
    // A bad dialogue mode, missing connection data, a duplicate, a bad connection data choice.
    assert_eq!(
        decode_rtse(&[0xB0, 0x07, 0x82, 0x01, 0x05, 0xA3, 0x02, 0xA0, 0x00]),
        Err(RtseError::InvalidDialogueMode(5))
    );
    assert_eq!(
        decode_rtse(&[0xB0, 0x03, 0x80, 0x01, 0x00]),
        Err(RtseError::Ber(BerError::Missing("connectionDataRQ")))
    );
    assert_eq!(
        decode_rtse(&[0xB1, 0x06, 0x80, 0x01, 0x00, 0x80, 0x01, 0x00]),
        Err(RtseError::Ber(BerError::Duplicate("checkpointSize")))
    );
    assert!(decode_rtse(&[0xB1, 0x04, 0xA2, 0x02, 0xA5, 0x00]).is_err());
    // open [0] must hold exactly one element.
    assert!(decode_rtse(&[0xB1, 0x04, 0xA2, 0x02, 0xA0, 0x00]).is_err());
    // RTTR segment reader refuses other elements.
    assert!(rttr_segment(&[0x02, 0x01, 0x00]).is_err());
}
