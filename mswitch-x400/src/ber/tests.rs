use super::*;

#[test]
fn definite_and_indefinite_lengths_decode_the_same() {
    let definite = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xAA];
    let indefinite = [0x30, 0x80, 0x02, 0x01, 0x05, 0x04, 0x01, 0xAA, 0x00, 0x00];
    for bytes in [&definite[..], &indefinite[..]] {
        let t = parse_one(bytes).expect("valid");
        let mut r = t.children().expect("constructed");
        assert_eq!(r.next_required("int").expect("int").integer(), Ok(5));
        assert_eq!(r.next_required("os").expect("os").content, &[0xAA]);
        assert!(r.finish().is_ok());
        assert_eq!(t.raw.len(), bytes.len());
    }
}

#[test]
fn nested_indefinite_lengths_and_constructed_strings() {
    // SEQUENCE (indef) { OCTET STRING constructed (indef) { 01, 02 03 }, SEQUENCE (indef) {} }
    let bytes = [
        0x30, 0x80, 0x24, 0x80, 0x04, 0x01, 0x01, 0x04, 0x02, 0x02, 0x03, 0x00, 0x00, 0x30, 0x80,
        0x00, 0x00, 0x00, 0x00,
    ];
    let t = parse_one(&bytes).expect("valid");
    let mut r = t.children().expect("constructed");
    let os = r.next_required("os").expect("os");
    assert_eq!(&*os.octets().expect("octets"), &[1, 2, 3]);
    let inner = r.next_required("seq").expect("seq");
    assert!(inner.children().expect("c").is_empty());
    assert!(r.finish().is_ok());
}

#[test]
fn hostile_lengths_are_errors_without_allocation() {
    // Claims 2 GiB of content.
    assert_eq!(
        parse_one(&[0x30, 0x84, 0x7F, 0xFF, 0xFF, 0xFF, 0x02]),
        Err(BerError::Truncated(0))
    );
    // Five length octets.
    assert_eq!(
        parse_one(&[0x04, 0x85, 1, 0, 0, 0, 0]),
        Err(BerError::BadLength(0))
    );
    // Truncated indefinite length: no end-of-contents.
    assert!(matches!(
        parse_one(&[0x30, 0x80, 0x02, 0x01, 0x05]),
        Err(BerError::Truncated(_))
    ));
    // Indefinite primitive.
    assert_eq!(
        parse_one(&[0x04, 0x80, 0x00, 0x00]),
        Err(BerError::IndefinitePrimitive(0))
    );
    // Deep nesting of indefinite lengths.
    let mut deep = Vec::new();
    for _ in 0..(MAX_DEPTH + 10) {
        deep.extend_from_slice(&[0x30, 0x80]);
    }
    for _ in 0..(MAX_DEPTH + 10) {
        deep.extend_from_slice(&[0, 0]);
    }
    assert_eq!(parse_one(&deep), Err(BerError::TooDeep));
    // Deep nesting of definite lengths is caught when descending.
    let mut t = parse_one(&[0x30, 0x02, 0x30, 0x00]).expect("valid");
    t.depth = MAX_DEPTH;
    assert_eq!(t.children().map(|_| ()), Err(BerError::TooDeep));
}

#[test]
fn element_len_says_when_more_is_needed() {
    assert_eq!(element_len(&[0x30]), Ok(None));
    assert_eq!(element_len(&[0x30, 0x03, 0x02]), Ok(None));
    assert_eq!(element_len(&[0x30, 0x00, 0xFF]), Ok(Some(2)));
}

#[test]
fn writer_round_trips_integers_oids_and_long_lengths() {
    for v in [
        0i64,
        1,
        127,
        128,
        255,
        256,
        -1,
        -128,
        -129,
        65535,
        i64::MAX,
        i64::MIN,
    ] {
        let mut w = Writer::new();
        w.integer(v);
        let bytes = w.finish();
        assert_eq!(parse_one(&bytes).expect("int").integer(), Ok(v), "{v}");
    }
    // X.690 §8.19.5 example arcs and the X.400 ones.
    for arcs in [
        &[2u32, 100, 3][..],
        &[2, 6, 0, 1, 6],
        &[1, 0, 8571, 1, 1],
        &[2, 2, 1, 0, 1],
    ] {
        let oid = Oid::new(arcs);
        let mut w = Writer::new();
        w.oid(&oid);
        let bytes = w.finish();
        assert_eq!(parse_one(&bytes).expect("oid").oid(), Ok(oid));
    }
    let mut w = Writer::new();
    w.oid(&Oid::new(&[2, 6, 0, 1, 6]));
    assert_eq!(w.finish(), [0x06, 0x04, 0x56, 0x00, 0x01, 0x06]);
    // Lengths of 128 and 70000 bytes need long forms.
    for n in [127usize, 128, 255, 256, 70_000] {
        let body = vec![0x5A; n];
        let mut w = Writer::new();
        w.sequence(|w| w.octets(Tag::OCTET_STRING, &body));
        let bytes = w.finish();
        let t = parse_one(&bytes).expect("seq");
        let inner = t.explicit_inner().expect("one child");
        assert_eq!(inner.content.len(), n);
    }
}

#[test]
fn high_tag_numbers() {
    let mut w = Writer::new();
    w.primitive(Tag::context(200), &[1]);
    let bytes = w.finish();
    assert_eq!(bytes[..3], [0x9F, 0x81, 0x48]);
    let t = parse_one(&bytes).expect("tag");
    assert_eq!(t.tag, Tag::context(200));
}

#[test]
fn external_with_both_references_round_trips() {
    // direct-reference 2.1.1 (BER), indirect-reference 3, single-ASN1-type [0] { NULL }.
    let bytes = [
        0x28, 0x0C, 0x06, 0x02, 0x51, 0x01, 0x02, 0x01, 0x03, 0xA0, 0x02, 0x05, 0x00,
    ];
    let mut bytes = bytes.to_vec();
    bytes[1] = (bytes.len() - 2) as u8;
    let t = parse_one(&bytes).expect("external");
    let ext = External::decode(&t).expect("decodes");
    assert_eq!(ext.direct_reference, Some(Oid::new(&[2, 1, 1])));
    assert_eq!(ext.indirect_reference, Some(3));
    assert_eq!(ext.value(), Some(&[0x05, 0x00][..]));
    let mut w = Writer::new();
    ext.encode(&mut w);
    assert_eq!(w.finish(), bytes);
    // Only an indirect reference, octet-aligned.
    let e = External {
        direct_reference: None,
        indirect_reference: Some(5),
        data_value_descriptor: None,
        encoding: ExternalEncoding::OctetAligned(vec![1, 2, 3]),
    };
    let mut w = Writer::new();
    e.encode(&mut w);
    let bytes = w.finish();
    assert_eq!(
        External::decode(&parse_one(&bytes).expect("ext")).expect("decodes"),
        e
    );
    // No reference at all is refused.
    assert!(External::decode(&parse_one(&[0x28, 0x03, 0x81, 0x01, 0x00]).expect("ext")).is_err());
}

#[test]
fn try_constructed_rolls_back_on_error() {
    let mut w = Writer::new();
    w.integer(1);
    let r: Result<(), ()> = w.try_constructed(Tag::SEQUENCE, |w| {
        w.integer(2);
        Err(())
    });
    assert_eq!(r, Err(()));
    assert_eq!(w.as_bytes(), &[0x02, 0x01, 0x01]);
    let r: Result<(), ()> = w.try_constructed(Tag::SEQUENCE, |w| {
        w.integer(2);
        Ok(())
    });
    assert_eq!(r, Ok(()));
    assert_eq!(
        w.finish(),
        vec![0x02, 0x01, 0x01, 0x30, 0x03, 0x02, 0x01, 0x02]
    );
}
