use super::*;
use crate::ber::ExternalEncoding;
use crate::upper::presentation::{CpPpdu, CpaPpdu};
use crate::upper::testutil::{CP_HEX, CPA_HEX, all_truncations_fail, hex, indefinite};
use crate::upper::{ID_AC_MTS_TRANSFER, ID_AS_MTA_RTSE, oid};

fn capture_aarq() -> Vec<u8> {
    let cp = CpPpdu::decode(&hex(CP_HEX)).expect("CP");
    cp.user_data[0].bytes().expect("AARQ").to_vec()
}

fn capture_aare() -> Vec<u8> {
    let cpa = CpaPpdu::decode(&hex(CPA_HEX)).expect("CPA");
    cpa.user_data[0].bytes().expect("AARE").to_vec()
}

fn single(e: &External) -> &[u8] {
    match &e.encoding {
        ExternalEncoding::SingleAsn1Type(v) => v,
        other => panic!("expected single-ASN1-type, got {other:?}"),
    }
}

#[test]
fn aarq_from_the_capture() {
    let bytes = capture_aarq();
    let aarq = Aarq::decode(&bytes).expect("AARQ decodes");
    assert_eq!(aarq.protocol_version, None);
    assert_eq!(aarq.application_context, oid(ID_AC_MTS_TRANSFER));
    assert!(aarq.called.is_empty() && aarq.calling.is_empty());
    assert_eq!(aarq.user_information.len(), 1);
    let ext = &aarq.user_information[0];
    assert_eq!(ext.direct_reference, None);
    assert_eq!(ext.indirect_reference, Some(3));
    // The RTORQ: [16] IMPLICIT SET.
    assert_eq!(single(ext)[..2], [0xB0, 0x23]);
    assert_eq!(aarq.encode(), bytes);
    assert_eq!(AcsePdu::decode(&bytes), Ok(AcsePdu::Aarq(aarq.clone())));
    assert_eq!(AcsePdu::Aarq(aarq).encode(), bytes);
}

#[test]
fn aare_from_the_capture() {
    let bytes = capture_aare();
    let aare = Aare::decode(&bytes).expect("AARE decodes");
    assert_eq!(aare.application_context, oid(ID_AC_MTS_TRANSFER));
    assert_eq!(aare.result, AssociateResult::Accepted);
    assert_eq!(
        aare.result_source_diagnostic,
        ResultSourceDiagnostic::ServiceUser(DIAG_NULL)
    );
    assert_eq!(aare.user_information.len(), 1);
    assert_eq!(aare.user_information[0].indirect_reference, Some(3));
    // The RTOAC: [17] IMPLICIT SET.
    assert_eq!(single(&aare.user_information[0])[..2], [0xB1, 0x23]);
    assert_eq!(aare.encode(), bytes);
    assert_eq!(AcsePdu::decode(&bytes), Ok(AcsePdu::Aare(aare)));
}

#[test]
fn indefinite_lengths_decode_to_the_same_values() {
    let bytes = capture_aarq();
    let aarq = Aarq::decode(&bytes).expect("AARQ");
    let rtorq = single(&aarq.user_information[0]).to_vec();
    let indef = indefinite(&bytes, &[&rtorq]);
    assert_eq!(indef[..2], [0x60, 0x80]);
    assert_eq!(Aarq::decode(&indef), Ok(aarq));

    let bytes = capture_aare();
    let aare = Aare::decode(&bytes).expect("AARE");
    let rtoac = single(&aare.user_information[0]).to_vec();
    assert_eq!(Aare::decode(&indefinite(&bytes, &[&rtoac])), Ok(aare));

    let full = full_aarq();
    let keep: Vec<&[u8]> = vec![
        full.authentication_value.as_deref().expect("auth"),
        match &full.called.ap_title {
            Some(ApTitle::Other(v)) => v,
            _ => panic!("sample has an Other AP-title"),
        },
        single(&full.user_information[0]),
    ];
    assert_eq!(Aarq::decode(&indefinite(&full.encode(), &keep)), Ok(full));
    for pdu in release_and_abort_samples() {
        assert_eq!(AcsePdu::decode(&indefinite(&pdu.encode(), &[])), Ok(pdu));
    }
}

fn full_aarq() -> Aarq {
    Aarq {
        protocol_version: Some(BitString::version1()),
        application_context: oid(ID_AC_MTS_TRANSFER),
        called: AeIdentity {
            // PrintableString form 3.
            ap_title: Some(ApTitle::Other(vec![0x13, 0x03, b'M', b'T', b'A'])),
            ae_qualifier: Some(AeQualifier::Form2(7)),
            ap_invocation_id: Some(1),
            ae_invocation_id: Some(2),
        },
        calling: AeIdentity {
            ap_title: Some(ApTitle::Form2(Oid::new(&[1, 3, 6, 1, 4, 1, 9999]))),
            ae_qualifier: Some(AeQualifier::Other(vec![0x13, 0x01, b'Q'])),
            ap_invocation_id: None,
            ae_invocation_id: Some(-5),
        },
        acse_requirements: Some(BitString {
            bits: vec![0x80],
            unused: 7,
        }),
        mechanism_name: Some(Oid::new(&[2, 2, 3, 1])),
        // charstring [0] IMPLICIT GraphicString "pw".
        authentication_value: Some(vec![0x80, 0x02, b'p', b'w']),
        implementation_information: Some("mswitch".into()),
        user_information: vec![External {
            direct_reference: Some(oid(ID_AS_MTA_RTSE)),
            indirect_reference: Some(3),
            data_value_descriptor: None,
            encoding: ExternalEncoding::SingleAsn1Type(vec![0xB0, 0x04, 0xA3, 0x02, 0xA0, 0x00]),
        }],
    }
}

fn release_and_abort_samples() -> Vec<AcsePdu> {
    let ui = vec![External::single(3, vec![0x05, 0x00])];
    vec![
        AcsePdu::Rlrq(Rlrq::default()),
        AcsePdu::Rlrq(Rlrq {
            reason: Some(RELEASE_NORMAL),
            user_information: ui.clone(),
        }),
        AcsePdu::Rlre(Rlre {
            reason: Some(RELEASE_URGENT_OR_NOT_FINISHED),
            user_information: Vec::new(),
        }),
        AcsePdu::Rlre(Rlre {
            reason: None,
            user_information: ui.clone(),
        }),
        AcsePdu::Abrt(Abrt {
            source: ABORT_SOURCE_PROVIDER,
            diagnostic: Some(2),
            user_information: ui,
        }),
        AcsePdu::Abrt(Abrt::default()),
    ]
}

#[test]
fn every_apdu_round_trips() {
    let full = full_aarq();
    assert_eq!(Aarq::decode(&full.encode()), Ok(full.clone()));
    let aare = Aare {
        protocol_version: Some(BitString::version1()),
        application_context: oid(ID_AC_MTS_TRANSFER),
        result: AssociateResult::RejectedPermanent,
        result_source_diagnostic: ResultSourceDiagnostic::ServiceProvider(2),
        responding: full.calling.clone(),
        acse_requirements: full.acse_requirements.clone(),
        mechanism_name: full.mechanism_name.clone(),
        authentication_value: full.authentication_value.clone(),
        implementation_information: Some("x".into()),
        user_information: full.user_information.clone(),
    };
    assert_eq!(Aare::decode(&aare.encode()), Ok(aare.clone()));
    assert_eq!(AcsePdu::decode(&aare.encode()), Ok(AcsePdu::Aare(aare)));
    let rejected = Aare::new(
        oid(ID_AC_MTS_TRANSFER),
        AssociateResult::RejectedTransient,
        ResultSourceDiagnostic::ServiceUser(DIAG_AUTHENTICATION_FAILURE),
    );
    // [2] { INTEGER 2 }, [3] { [1] { INTEGER 13 } }: explicit tags in the ACSE module.
    let bytes = rejected.encode();
    assert_eq!(
        bytes,
        [
            0x61, 0x14, 0xA1, 0x06, 0x06, 0x04, 0x56, 0x00, 0x01, 0x06, 0xA2, 0x03, 0x02, 0x01,
            0x02, 0xA3, 0x05, 0xA1, 0x03, 0x02, 0x01, 0x0D
        ]
    );
    assert_eq!(Aare::decode(&bytes), Ok(rejected));
    for pdu in release_and_abort_samples() {
        assert_eq!(AcsePdu::decode(&pdu.encode()), Ok(pdu.clone()));
        match &pdu {
            AcsePdu::Rlrq(p) => assert_eq!(Rlrq::decode(&p.encode()).as_ref(), Ok(p)),
            AcsePdu::Rlre(p) => assert_eq!(Rlre::decode(&p.encode()).as_ref(), Ok(p)),
            AcsePdu::Abrt(p) => assert_eq!(Abrt::decode(&p.encode()).as_ref(), Ok(p)),
            _ => {}
        }
    }
    // RLRQ reason normal: [APPLICATION 2] { [0] IMPLICIT INTEGER 0 }.
    let rlrq = Rlrq {
        reason: Some(RELEASE_NORMAL),
        user_information: Vec::new(),
    };
    assert_eq!(rlrq.encode(), [0x62, 0x03, 0x80, 0x01, 0x00]);
    assert_eq!(Rlre::default().encode(), [0x63, 0x00]);
    assert_eq!(Abrt::default().encode(), [0x64, 0x03, 0x80, 0x01, 0x00]);
}

#[test]
fn external_with_both_references_in_user_information() {
    // AARQ { [1] { 2.6.0.1.6 }, [30] { EXTERNAL { 2.6.0.2.12, 3, [0] { NULL } } } }, by hand.
    let bytes = [
        0x60, 0x19, 0xA1, 0x06, 0x06, 0x04, 0x56, 0x00, 0x01, 0x06, 0xBE, 0x0F, 0x28, 0x0D, 0x06,
        0x04, 0x56, 0x00, 0x02, 0x0C, 0x02, 0x01, 0x03, 0xA0, 0x02, 0x05, 0x00,
    ];
    let aarq = Aarq::decode(&bytes).expect("AARQ");
    let ext = &aarq.user_information[0];
    assert_eq!(ext.direct_reference, Some(oid(ID_AS_MTA_RTSE)));
    assert_eq!(ext.indirect_reference, Some(3));
    assert_eq!(single(ext), [0x05, 0x00]);
    assert_eq!(aarq.encode(), bytes);
}

#[test]
fn unknown_optional_components_are_skipped() {
    let bytes = capture_aarq();
    let aarq = Aarq::decode(&bytes).expect("AARQ");
    // Add called-asoi-tag [15], an extension [20] and a universal element inside.
    let mut w = Writer::new();
    w.constructed(Tag::application(0), |w| {
        w.explicit(Tag::context(1), |w| w.oid(&aarq.application_context));
        w.constructed(Tag::context(15), |w| w.sequence(|_| {}));
        w.primitive(Tag::context(20), &[1, 2, 3]);
        w.null_tagged(Tag::NULL);
        w.constructed(Tag::context(30), |w| {
            for e in &aarq.user_information {
                e.encode(w);
            }
        });
    });
    assert_eq!(Aarq::decode(&w.finish()), Ok(aarq));
}

#[test]
fn hostile_inputs_are_errors() {
    all_truncations_fail(&capture_aarq(), Aarq::decode);
    all_truncations_fail(&capture_aare(), AcsePdu::decode);
    all_truncations_fail(&full_aarq().encode(), AcsePdu::decode);
    // A-DT and universal tags are not ACSE APDUs handled here.
    assert!(matches!(
        AcsePdu::decode(&[0x65, 0x00]),
        Err(AcseError::UnsupportedApdu(_))
    ));
    assert!(matches!(
        AcsePdu::decode(&[0x30, 0x00]),
        Err(AcseError::UnsupportedApdu(_))
    ));
    // Wrong APDU for the type.
    assert!(Aarq::decode(&capture_aare()).is_err());
    assert!(Rlrq::decode(&[0x63, 0x00]).is_err());
    // Missing context name; context name implicit instead of explicit.
    assert_eq!(
        Aarq::decode(&[0x60, 0x00]),
        Err(AcseError::Ber(BerError::Missing("aSO-context-name")))
    );
    assert!(Aarq::decode(&[0x60, 0x06, 0x81, 0x04, 0x56, 0x00, 0x01, 0x06]).is_err());
    // AARE without result, with result 7, with a diagnostic [3] { [5] .. }.
    let ctx = [0xA1, 0x06, 0x06, 0x04, 0x56, 0x00, 0x01, 0x06];
    let mut no_result = vec![0x61, 0x08];
    no_result.extend_from_slice(&ctx);
    assert_eq!(
        Aare::decode(&no_result),
        Err(AcseError::Ber(BerError::Missing("result")))
    );
    let mut bad = Aare::new(
        oid(ID_AC_MTS_TRANSFER),
        AssociateResult::Accepted,
        ResultSourceDiagnostic::ServiceUser(0),
    )
    .encode();
    let result_at = bad.len() - 10;
    assert_eq!(bad[result_at..result_at + 3], [0x02, 0x01, 0x00]);
    bad[result_at + 2] = 7;
    assert_eq!(Aare::decode(&bad), Err(AcseError::InvalidResult(7)));
    bad[result_at + 2] = 0;
    bad[result_at + 5] = 0xA5;
    assert!(matches!(
        Aare::decode(&bad),
        Err(AcseError::InvalidDiagnostic(_))
    ));
    // ABRT without its source.
    assert!(Abrt::decode(&[0x64, 0x00]).is_err());
    // Too many EXTERNALs.
    let mut many = Aarq::new(oid(ID_AC_MTS_TRANSFER));
    many.user_information = vec![External::single(1, vec![5, 0]); MAX_EXTERNALS + 1];
    assert_eq!(
        Aarq::decode(&many.encode()),
        Err(AcseError::TooManyExternals)
    );
    // A huge claimed length inside.
    assert!(Aarq::decode(&[0x60, 0x06, 0xBE, 0x84, 0x7F, 0xFF, 0xFF, 0xFF]).is_err());
}
