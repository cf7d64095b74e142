use super::*;
use crate::upper::testutil::{
    CP_HEX, CPA_HEX, PDATA1_HEX, PDATA2_HEX, all_truncations_fail, hex, indefinite,
};

fn all_p1_syntaxes() -> Vec<Oid> {
    vec![
        oid(ACSE_ABSTRACT_SYNTAX),
        oid(ID_AS_MTA_RTSE),
        oid(ID_AS_MTSE),
    ]
}

#[test]
fn cp_from_the_capture_decodes_and_reencodes_byte_for_byte() {
    let bytes = hex(CP_HEX);
    let cp = CpPpdu::decode(&bytes).expect("CP decodes");
    assert_eq!(cp.protocol_version, Some(BitString::version1()));
    assert_eq!(cp.calling_selector.as_deref(), Some(&[0, 0, 0, 1][..]));
    assert_eq!(cp.called_selector.as_deref(), Some(&[0, 0, 0, 2][..]));
    assert_eq!(cp.contexts, p1_context_definitions());
    assert_eq!(cp.default_context, None);
    assert_eq!(cp.presentation_requirements, None);
    assert_eq!(cp.user_data.len(), 1);
    assert_eq!(cp.user_data[0].context_id, 1);
    assert_eq!(cp.user_data[0].transfer_syntax, None);
    let aarq = cp.user_data[0].bytes().expect("single ASN.1 type");
    assert_eq!(aarq[..2], [0x60, 0x36]);
    assert_eq!(cp.encode(), bytes);
    assert_eq!(
        check_p1_offer(&cp),
        Ok(P1Contexts {
            acse: 1,
            rtse: 3,
            mtse: 5
        })
    );
}

#[test]
fn cpa_from_the_capture_decodes_and_reencodes_byte_for_byte() {
    let bytes = hex(CPA_HEX);
    let cpa = CpaPpdu::decode(&bytes).expect("CPA decodes");
    assert_eq!(cpa.protocol_version, Some(BitString::version1()));
    assert_eq!(cpa.responding_selector.as_deref(), Some(&[0, 0, 0, 2][..]));
    assert_eq!(cpa.results, vec![ContextResult::accepted_ber(); 3]);
    assert_eq!(
        cpa.results,
        respond_to_contexts(&p1_context_definitions(), &all_p1_syntaxes())
    );
    assert_eq!(cpa.user_data.len(), 1);
    assert_eq!(cpa.user_data[0].context_id, 1);
    assert_eq!(
        cpa.user_data[0].bytes().map(|b| b[..2].to_vec()),
        Some(vec![0x61, 0x42])
    );
    assert_eq!(cpa.encode(), bytes);
}

#[test]
fn p_data_from_the_capture_carries_rttr_in_context_3() {
    for (h, seg_len) in [(PDATA1_HEX, 0x97), (PDATA2_HEX, 0x98)] {
        let bytes = hex(h);
        let pdvs = decode_user_data(&bytes).expect("P-DATA decodes");
        assert_eq!(pdvs.len(), 1);
        assert_eq!(pdvs[0].context_id, P1_RTSE_CONTEXT);
        let PdvValue::SingleAsn1Type(v) = &pdvs[0].value else {
            panic!("expected single-ASN1-type, got {:?}", pdvs[0].value);
        };
        assert_eq!(v[..3], [0x04, 0x81, seg_len]);
        assert_eq!(v.len(), 3 + usize::from(seg_len));
        assert_eq!(encode_user_data(&pdvs), bytes);
    }
}

#[test]
fn indefinite_lengths_decode_to_the_same_values() {
    let cp_bytes = hex(CP_HEX);
    let cp = CpPpdu::decode(&cp_bytes).expect("CP");
    let aarq = cp.user_data[0].bytes().expect("aarq").to_vec();
    let indef = indefinite(&cp_bytes, &[&aarq]);
    assert_ne!(indef, cp_bytes);
    assert_eq!(CpPpdu::decode(&indef), Ok(cp.clone()));

    let cpa_bytes = hex(CPA_HEX);
    let cpa = CpaPpdu::decode(&cpa_bytes).expect("CPA");
    let aare = cpa.user_data[0].bytes().expect("aare").to_vec();
    assert_eq!(CpaPpdu::decode(&indefinite(&cpa_bytes, &[&aare])), Ok(cpa));

    for h in [PDATA1_HEX, PDATA2_HEX] {
        let bytes = hex(h);
        let pdvs = decode_user_data(&bytes).expect("P-DATA");
        assert_eq!(decode_user_data(&indefinite(&bytes, &[])), Ok(pdvs));
    }

    let cpr = sample_cpr();
    let keep = cpr.user_data[0].bytes().expect("value").to_vec();
    assert_eq!(
        CprPpdu::decode(&indefinite(&cpr.encode(), &[&keep])),
        Ok(cpr)
    );
    let aru = sample_aru();
    let keep = aru.user_data[0].bytes().expect("value").to_vec();
    assert_eq!(
        AruPpdu::decode(&indefinite(&aru.encode(), &[&keep])),
        Ok(aru)
    );
    let arp = ArpPpdu {
        reason: Some(1),
        event: Some(7),
    };
    assert_eq!(ArpPpdu::decode(&indefinite(&arp.encode(), &[])), Ok(arp));
}

fn sample_cpr() -> CprPpdu {
    CprPpdu {
        protocol_version: Some(BitString::version1()),
        responding_selector: Some(vec![9]),
        results: vec![
            ContextResult::accepted_ber(),
            ContextResult {
                result: ContextResultKind::ProviderRejection,
                transfer_syntax: None,
                provider_reason: Some(REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED),
            },
        ],
        default_context_result: Some(0),
        provider_reason: Some(CPR_TEMPORARY_CONGESTION),
        user_data: vec![Pdv::single(1, vec![0x61, 0x00])],
    }
}

fn sample_aru() -> AruPpdu {
    AruPpdu {
        contexts: vec![
            ContextIdentifier {
                id: 1,
                transfer_syntax: oid(BER_TRANSFER_SYNTAX),
            },
            ContextIdentifier {
                id: 3,
                transfer_syntax: oid(BER_TRANSFER_SYNTAX),
            },
        ],
        user_data: vec![Pdv::single(1, vec![0x64, 0x03, 0x80, 0x01, 0x00])],
    }
}

#[test]
fn every_ppdu_round_trips() {
    let cp = CpPpdu {
        protocol_version: None,
        calling_selector: None,
        called_selector: Some(b"P1".to_vec()),
        contexts: p1_context_definitions(),
        default_context: Some(DefaultContext {
            abstract_syntax: oid(ACSE_ABSTRACT_SYNTAX),
            transfer_syntax: oid(BER_TRANSFER_SYNTAX),
        }),
        presentation_requirements: Some(BitString {
            bits: vec![0],
            unused: 6,
        }),
        user_session_requirements: Some(BitString {
            bits: vec![0x92, 0x40],
            unused: 3,
        }),
        user_data: vec![
            Pdv {
                context_id: 1,
                transfer_syntax: Some(oid(BER_TRANSFER_SYNTAX)),
                value: PdvValue::SingleAsn1Type(vec![0x05, 0x00]),
            },
            Pdv {
                context_id: 3,
                transfer_syntax: None,
                value: PdvValue::OctetAligned(vec![1, 2, 3]),
            },
            Pdv {
                context_id: 5,
                transfer_syntax: None,
                value: PdvValue::Arbitrary(vec![0xF0], 4),
            },
        ],
    };
    assert_eq!(CpPpdu::decode(&cp.encode()), Ok(cp.clone()));
    // A bare CP: only the mode selector and an empty normal-mode-parameters.
    let bare = CpPpdu::default();
    assert_eq!(
        bare.encode(),
        [0x31, 0x07, 0xA0, 0x03, 0x80, 0x01, 0x01, 0xA2, 0x00]
    );
    assert_eq!(CpPpdu::decode(&bare.encode()), Ok(bare));

    let cpa = CpaPpdu {
        protocol_version: None,
        responding_selector: None,
        results: respond_to_contexts(&cp.contexts, &[oid(ACSE_ABSTRACT_SYNTAX)]),
        presentation_requirements: None,
        user_session_requirements: None,
        user_data: cp.user_data.clone(),
    };
    assert_eq!(cpa.results[1].result, ContextResultKind::ProviderRejection);
    assert_eq!(CpaPpdu::decode(&cpa.encode()), Ok(cpa));

    let cpr = sample_cpr();
    assert_eq!(CprPpdu::decode(&cpr.encode()), Ok(cpr));
    let aru = sample_aru();
    assert_eq!(AruPpdu::decode(&aru.encode()), Ok(aru.clone()));
    assert_eq!(
        AbortPpdu::decode(&aru.encode()),
        Ok(AbortPpdu::Aru(aru.clone()))
    );
    let arp = ArpPpdu {
        reason: Some(2),
        event: Some(8),
    };
    // ARP-PPDU ::= SEQUENCE { [0] IMPLICIT Abort-reason, [1] IMPLICIT Event-identifier }.
    assert_eq!(
        arp.encode(),
        [0x30, 0x06, 0x80, 0x01, 0x02, 0x81, 0x01, 0x08]
    );
    assert_eq!(
        AbortPpdu::decode(&arp.encode()),
        Ok(AbortPpdu::Arp(arp.clone()))
    );
    assert_eq!(AbortPpdu::Arp(arp.clone()).encode(), arp.encode());
    assert_eq!(AbortPpdu::Aru(aru.clone()).encode(), aru.encode());
    let v1 = BitString::version1();
    assert!(v1.bit(0) && !v1.bit(1) && !v1.bit(8));
    assert!(
        !BitString {
            bits: Vec::new(),
            unused: 3
        }
        .bit(0)
    );
    // An empty user data encodes to nothing.
    assert!(encode_user_data(&[]).is_empty());
}

#[test]
fn unknown_components_are_skipped() {
    // The capture's CP with protocol-options [11] and extensions [14] added at the end of the
    // normal-mode parameters and an unknown [5] in the outer SET.
    let cp = CpPpdu::decode(&hex(CP_HEX)).expect("CP");
    let mut w = Writer::new();
    w.set(|w| {
        w.constructed(Tag::context(5), |_| {});
        w.constructed(Tag::context(0), |w| w.integer_tagged(Tag::context(0), 1));
        w.constructed(Tag::context(2), |w| {
            w.bit_string(Tag::context(0), &[0x80], 7);
            w.octets(Tag::context(1), &[0, 0, 0, 1]);
            w.octets(Tag::context(2), &[0, 0, 0, 2]);
            encode_context_list(w, Tag::context(4), &cp.contexts);
            w.explicit(Tag::context(11), |w| w.bit_string(Tag::BIT_STRING, &[0], 5));
            w.explicit(Tag::context(14), |w| w.sequence(|_| {}));
            write_user_data(w, &cp.user_data);
        });
    });
    assert_eq!(CpPpdu::decode(&w.finish()), Ok(cp));
}

#[test]
fn refused_modes_and_encodings() {
    // mode-value x410-1984-mode (0).
    let x410 = [0x31, 0x07, 0xA0, 0x03, 0x80, 0x01, 0x00, 0xA2, 0x00];
    assert_eq!(CpPpdu::decode(&x410), Err(PresentationError::X410Mode));
    // x410-mode-parameters [1] present.
    let x410 = [0x31, 0x07, 0xA0, 0x03, 0x80, 0x01, 0x01, 0xA1, 0x00];
    assert_eq!(CpaPpdu::decode(&x410), Err(PresentationError::X410Mode));
    // CPR and ARU in X.410 mode are SETs.
    assert_eq!(
        CprPpdu::decode(&[0x31, 0x00]),
        Err(PresentationError::X410Mode)
    );
    assert_eq!(
        AbortPpdu::decode(&[0x31, 0x00]),
        Err(PresentationError::X410Mode)
    );
    // Simply-encoded data.
    assert_eq!(
        decode_user_data(&[0x40, 0x02, 0x05, 0x00]),
        Err(PresentationError::SimplyEncodedData)
    );
    // Mode selector missing, mode value missing.
    assert_eq!(
        CpPpdu::decode(&[0x31, 0x02, 0xA2, 0x00]),
        Err(PresentationError::Ber(BerError::Missing("mode-selector")))
    );
    assert_eq!(
        CpPpdu::decode(&[0x31, 0x04, 0xA0, 0x00, 0xA2, 0x00]),
        Err(PresentationError::Ber(BerError::Missing("mode-value")))
    );
    // An invalid context result.
    let mut w = Writer::new();
    w.set(|w| {
        encode_mode(w);
        w.constructed(Tag::context(2), |w| {
            w.constructed(Tag::context(5), |w| {
                w.sequence(|w| w.integer_tagged(Tag::context(0), 9))
            })
        });
    });
    assert_eq!(
        CpaPpdu::decode(&w.finish()),
        Err(PresentationError::InvalidResult(9))
    );
}

#[test]
fn p1_offer_check() {
    let mut cp = CpPpdu {
        contexts: p1_context_definitions(),
        ..CpPpdu::default()
    };
    // Other identifiers are fine, and a second transfer syntax too.
    for (i, c) in cp.contexts.iter_mut().enumerate() {
        c.id = 11 + 2 * i as i64;
        c.transfer_syntaxes.insert(0, Oid::new(&[2, 1, 2, 1]));
    }
    assert_eq!(
        check_p1_offer(&cp),
        Ok(P1Contexts {
            acse: 11,
            rtse: 13,
            mtse: 15
        })
    );
    cp.contexts[2].transfer_syntaxes.truncate(1);
    assert_eq!(
        check_p1_offer(&cp),
        Err(PresentationError::MissingContext(oid(ID_AS_MTSE)))
    );
    let results = respond_to_contexts(&cp.contexts, &all_p1_syntaxes());
    assert_eq!(
        results[2].provider_reason,
        Some(REASON_TRANSFER_SYNTAXES_NOT_SUPPORTED)
    );
    cp.contexts.remove(0);
    assert_eq!(
        check_p1_offer(&cp),
        Err(PresentationError::MissingContext(oid(ACSE_ABSTRACT_SYNTAX)))
    );
}

#[test]
fn hostile_inputs_are_errors() {
    all_truncations_fail(&hex(CP_HEX), CpPpdu::decode);
    all_truncations_fail(&hex(CPA_HEX), CpaPpdu::decode);
    all_truncations_fail(&hex(PDATA1_HEX), decode_user_data);
    all_truncations_fail(&sample_cpr().encode(), CprPpdu::decode);
    all_truncations_fail(&sample_aru().encode(), AbortPpdu::decode);
    // Wrong outer tags.
    assert!(CpPpdu::decode(&[0x30, 0x00]).is_err());
    assert!(CpaPpdu::decode(&[0x04, 0x00]).is_err());
    assert!(CprPpdu::decode(&[0xA0, 0x00]).is_err());
    assert!(ArpPpdu::decode(&[0xA0, 0x00]).is_err());
    assert!(AruPpdu::decode(&[0x30, 0x00]).is_err());
    assert!(decode_user_data(&[0x30, 0x00]).is_err());
    // Empty fully-encoded data, a PDV without values, a bad PDV choice.
    assert!(decode_user_data(&[0x61, 0x00]).is_err());
    assert!(decode_user_data(&[0x61, 0x05, 0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
    assert!(decode_user_data(&[0x61, 0x07, 0x30, 0x05, 0x02, 0x01, 0x01, 0x85, 0x00]).is_err());
    // single-ASN1-type [0] must hold exactly one element.
    assert!(decode_user_data(&[0x61, 0x07, 0x30, 0x05, 0x02, 0x01, 0x01, 0xA0, 0x00]).is_err());
    // A huge claimed length.
    assert!(matches!(
        decode_user_data(&[0x61, 0x84, 0x7F, 0xFF, 0xFF, 0xFF, 0x30]),
        Err(PresentationError::Ber(BerError::Truncated(_)))
    ));
    // Too many PDV-lists.
    let many = vec![Pdv::single(1, vec![0x05, 0x00]); MAX_PDVS + 1];
    assert_eq!(
        decode_user_data(&encode_user_data(&many)),
        Err(PresentationError::TooMany("PDV-lists"))
    );
    // A long selector.
    let cp = CpPpdu {
        calling_selector: Some(vec![0; MAX_SELECTOR_LEN + 1]),
        ..CpPpdu::default()
    };
    assert_eq!(
        CpPpdu::decode(&cp.encode()),
        Err(PresentationError::SelectorTooLong)
    );
    // Too many contexts.
    let cp = CpPpdu {
        contexts: vec![p1_context_definitions()[0].clone(); MAX_CONTEXTS + 1],
        ..CpPpdu::default()
    };
    assert!(matches!(
        CpPpdu::decode(&cp.encode()),
        Err(PresentationError::TooMany(_))
    ));
}
