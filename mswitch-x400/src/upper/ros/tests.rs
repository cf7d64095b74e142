use super::*;
use crate::upper::testutil::{all_truncations_fail, indefinite};

#[test]
fn bind_and_unbind_round_trip() {
    let arg = vec![0xA1, 0x03, 0x80, 0x01, 0x41];
    for b in [
        RosBind::Invoke(arg.clone()),
        RosBind::Result(arg.clone()),
        RosBind::Error(vec![0x02, 0x01, 0x01]),
    ] {
        assert_eq!(RosBind::decode(&b.encode()), Ok(b.clone()));
        assert_eq!(RosBind::decode(&indefinite(&b.encode(), &[&arg])), Ok(b));
    }
    // bind-invoke [16] EXPLICIT around the argument element.
    assert_eq!(
        RosBind::Invoke(arg.clone()).encode(),
        [0xB0, 0x05, 0xA1, 0x03, 0x80, 0x01, 0x41]
    );
    assert_eq!(
        RosBind::Error(vec![0x05, 0x00]).encode(),
        [0xB2, 0x02, 0x05, 0x00]
    );
    for u in [
        RosUnbind::Invoke(vec![0x05, 0x00]),
        RosUnbind::Result(vec![0x05, 0x00]),
        RosUnbind::Error(vec![0x05, 0x00]),
    ] {
        assert_eq!(RosUnbind::decode(&u.encode()), Ok(u));
    }
    assert_eq!(RosUnbind::Result(vec![0x05, 0x00]).encode()[0], 0xB4);
}

#[test]
fn bind_hostile_inputs() {
    // An unbind where a bind is expected, a primitive [16], an empty [16], trailing bytes.
    assert!(matches!(
        RosBind::decode(&[0xB3, 0x02, 0x05, 0x00]),
        Err(RosError::UnknownPdu(_))
    ));
    assert!(matches!(
        RosUnbind::decode(&[0xB0, 0x02, 0x05, 0x00]),
        Err(RosError::UnknownPdu(_))
    ));
    assert!(matches!(
        RosBind::decode(&[0x90, 0x00]),
        Err(RosError::UnknownPdu(_))
    ));
    assert!(RosBind::decode(&[0xB0, 0x00]).is_err());
    assert!(RosBind::decode(&[0xB0, 0x04, 0x05, 0x00, 0x05, 0x00]).is_err());
    all_truncations_fail(&[0xB0, 0x05, 0xA1, 0x03, 0x80, 0x01, 0x41], RosBind::decode);
}

fn samples() -> Vec<RosPdu> {
    vec![
        RosPdu::Invoke(Invoke {
            invoke_id: InvokeId::Present(1),
            linked_id: None,
            opcode: Code::Local(3),
            argument: Some(vec![0x30, 0x03, 0x02, 0x01, 0x07]),
        }),
        RosPdu::Invoke(Invoke {
            invoke_id: InvokeId::Present(-2),
            linked_id: Some(InvokeId::Present(1)),
            opcode: Code::Global(Oid::new(&[2, 6, 0, 1, 0])),
            argument: None,
        }),
        RosPdu::Invoke(Invoke {
            invoke_id: InvokeId::Present(300),
            linked_id: Some(InvokeId::Absent),
            opcode: Code::Local(5),
            argument: Some(vec![0x05, 0x00]),
        }),
        RosPdu::ReturnResult(ReturnResult {
            invoke_id: InvokeId::Present(1),
            result: Some(OperationResult {
                opcode: Code::Local(3),
                result: vec![0x31, 0x00],
            }),
        }),
        RosPdu::ReturnResult(ReturnResult {
            invoke_id: InvokeId::Present(2),
            result: None,
        }),
        RosPdu::ReturnError(ReturnError {
            invoke_id: InvokeId::Present(1),
            errcode: Code::Local(8),
            parameter: Some(vec![0x02, 0x01, 0x01]),
        }),
        RosPdu::ReturnError(ReturnError {
            invoke_id: InvokeId::Present(1),
            errcode: Code::Global(Oid::new(&[1, 2, 3])),
            parameter: None,
        }),
        RosPdu::Reject(Reject {
            invoke_id: InvokeId::Absent,
            problem: RejectProblem::General(2),
        }),
        RosPdu::Reject(Reject {
            invoke_id: InvokeId::Present(4),
            problem: RejectProblem::Invoke(1),
        }),
        RosPdu::Reject(Reject {
            invoke_id: InvokeId::Present(4),
            problem: RejectProblem::ReturnResult(0),
        }),
        RosPdu::Reject(Reject {
            invoke_id: InvokeId::Present(4),
            problem: RejectProblem::ReturnError(4),
        }),
    ]
}

fn open_types(p: &RosPdu) -> Vec<Vec<u8>> {
    match p {
        RosPdu::Invoke(i) => i.argument.iter().cloned().collect(),
        RosPdu::ReturnResult(r) => r.result.iter().map(|r| r.result.clone()).collect(),
        RosPdu::ReturnError(e) => e.parameter.iter().cloned().collect(),
        RosPdu::Reject(_) => Vec::new(),
    }
}

#[test]
fn every_pdu_round_trips_also_with_indefinite_lengths() {
    for p in samples() {
        let bytes = p.encode();
        assert_eq!(RosPdu::decode(&bytes), Ok(p.clone()));
        let keep = open_types(&p);
        let keep: Vec<&[u8]> = keep.iter().map(Vec::as_slice).collect();
        assert_eq!(RosPdu::decode(&indefinite(&bytes, &keep)), Ok(p));
    }
}

#[test]
fn implicit_module_tags_on_the_wire() {
    // invoke [1] IMPLICIT SEQUENCE { 1, 3, argument }: a P3 message-submission.
    assert_eq!(
        samples()[0].encode(),
        [
            0xA1, 0x0B, 0x02, 0x01, 0x01, 0x02, 0x01, 0x03, 0x30, 0x03, 0x02, 0x01, 0x07
        ]
    );
    // linkedId present [0] IMPLICIT INTEGER; absent [1] IMPLICIT NULL.
    assert_eq!(samples()[1].encode()[5..8], [0x80, 0x01, 0x01]);
    assert_eq!(samples()[2].encode()[6..8], [0x81, 0x00]);
    // returnResult [2] { 1, SEQUENCE { 3, result } }.
    assert_eq!(
        samples()[3].encode(),
        [
            0xA2, 0x0A, 0x02, 0x01, 0x01, 0x30, 0x05, 0x02, 0x01, 0x03, 0x31, 0x00
        ]
    );
    // reject [4] { NULL, general [0] IMPLICIT 2 }.
    assert_eq!(
        samples()[7].encode(),
        [0xA4, 0x05, 0x05, 0x00, 0x80, 0x01, 0x02]
    );
}

#[test]
fn hostile_inputs_are_errors() {
    for p in samples() {
        all_truncations_fail(&p.encode(), RosPdu::decode);
    }
    for bytes in [&[0xA5, 0x00][..], &[0x81, 0x00], &[0x30, 0x00]] {
        assert!(
            matches!(RosPdu::decode(bytes), Err(RosError::UnknownPdu(_))),
            "{bytes:?}"
        );
    }
    // Invoke without an opcode, with two arguments, with a string as invoke id.
    assert!(RosPdu::decode(&[0xA1, 0x03, 0x02, 0x01, 0x01]).is_err());
    assert!(
        RosPdu::decode(&[
            0xA1, 0x0A, 0x02, 0x01, 0x01, 0x02, 0x01, 0x03, 0x05, 0x00, 0x05, 0x00
        ])
        .is_err()
    );
    assert!(RosPdu::decode(&[0xA1, 0x06, 0x04, 0x01, 0x01, 0x02, 0x01, 0x03]).is_err());
    // Reject with a problem [7].
    assert!(RosPdu::decode(&[0xA4, 0x06, 0x02, 0x01, 0x01, 0x87, 0x01, 0x00]).is_err());
    // A huge claimed length.
    assert!(RosPdu::decode(&[0xA1, 0x84, 0x7F, 0xFF, 0xFF, 0xFF, 0x02]).is_err());
}
