//! The codec against octets laid out by hand from RFC 2741's figures (§6.1 header, §5.1 OID,
//! §5.3 octet string, §5.4 varbind, §6.2.x payloads), round trips in both byte orders, and
//! malformed input.

use super::*;

/// Octets from a hex string with spaces and `|` as separators.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {s:?}"
    );
    digits
        .chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16).map(|v| v as u8).unwrap_or(0);
            d(p[0]) << 4 | d(p[1])
        })
        .collect()
}

fn oid(s: &str) -> Oid {
    s.parse().expect("a dotted OID")
}

fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    Message::parse(&Packet::new_checked(bytes)?)
}

/// §6.2.1: o.timeout, 3 reserved, o.id (1.3.6.1.2.1.28 as prefix 2 and 1.28), o.descr.
#[test]
fn an_open_pdu_is_laid_out_as_in_the_rfc() {
    let m = Message::new(
        0,
        0,
        1,
        Pdu::Open(Open {
            timeout: 0,
            id: oid("1.3.6.1.2.1.28"),
            description: b"mswitchd".to_vec(),
        }),
    );
    let expected = hex("01 01 10 00 | 00000000 | 00000000 | 00000001 | 0000001c |
         00 000000 |
         02 02 00 00 | 00000001 | 0000001c |
         00000008 | 6d 73 77 69 74 63 68 64");
    assert_eq!(m.to_bytes(), expected);
    assert_eq!(m.buffer_len(), expected.len());
    assert_eq!(parse(&expected), Ok(m));
}

/// §6.2.3: r.timeout, r.priority, r.range_subid, reserved, r.subtree, r.upper_bound: the row
/// registration net-snmp 5.9 accepted in recipes.md (mtaEntry columns 1 to 12 of row 1).
#[test]
fn a_range_registration_is_laid_out_as_in_the_rfc() {
    let m = Message::new(
        5,
        0,
        2,
        Pdu::Register(Register {
            instance: false,
            timeout: 0,
            priority: 127,
            subtree: oid("1.3.6.1.2.1.28.1.1.1.1"),
            range: Some((10, 12)),
        }),
    );
    let expected = hex("01 03 10 00 | 00000005 | 00000000 | 00000002 | 00000024 |
         00 7f 0a 00 |
         06 02 00 00 | 00000001 | 0000001c | 00000001 | 00000001 | 00000001 | 00000001 |
         0000000c");
    assert_eq!(m.to_bytes(), expected);
    assert_eq!(parse(&expected), Ok(m));
}

/// A GetNext as a little-endian master with a non-default context would send it: the
/// context (§6.1.1) comes first, then the SearchRangeList (§5.2) with `include` set on the
/// start.
#[test]
fn a_little_endian_getnext_with_a_context_is_read() {
    let bytes = hex("01 06 08 00 | 07000000 | 2a000000 | 03000000 | 28000000 |
         03000000 | 63 74 78 00 |
         03 02 01 00 | 01000000 | 1c000000 | 01000000 |
         03 02 00 00 | 01000000 | 1c000000 | 02000000");
    let m = parse(&bytes).expect("parses");
    assert_eq!(m.session_id, 7);
    assert_eq!(m.transaction_id, 42);
    assert_eq!(m.packet_id, 3);
    assert_eq!(m.byte_order, ByteOrder::Little);
    assert_eq!(m.context.as_deref(), Some(&b"ctx"[..]));
    assert_eq!(
        m.pdu,
        Pdu::GetNext(vec![SearchRange {
            start: oid("1.3.6.1.2.1.28.1"),
            include: true,
            end: oid("1.3.6.1.2.1.28.2"),
        }])
    );
    // And written back the same way.
    assert_eq!(m.to_bytes(), bytes);
}

/// §6.2.16 with §5.4 varbinds: a Counter32, a padded Octet String, an endOfMibView (no
/// data), and an OID value under a name that cannot use the prefix (prefix 0).
#[test]
fn a_response_is_laid_out_as_in_the_rfc() {
    let m = Message::new(
        5,
        9,
        11,
        Pdu::Response(Response {
            sys_uptime: 0,
            error: 0,
            index: 0,
            varbinds: vec![
                VarBind::new(oid("1.3.6.1.2.1.28.1.1.1.1"), Value::Counter32(3)),
                VarBind::new(
                    oid("1.3.6.1.2.1.27.1.1.2.1"),
                    Value::OctetString(b"hello".to_vec()),
                ),
                VarBind::new(oid("1.3.6.1.2.1.28"), Value::EndOfMibView),
                VarBind::new(
                    oid("1.0.8802.1"),
                    Value::ObjectIdentifier(oid("1.3.6.1.2.1.27.4.25")),
                ),
            ],
        }),
    );
    let expected = hex("01 12 10 00 | 00000005 | 00000009 | 0000000b | 00000094 |
         00000000 | 0000 | 0000 |
         0041 0000 | 06 02 00 00 | 00000001 0000001c 00000001 00000001 00000001 00000001 |
           00000003 |
         0004 0000 | 06 02 00 00 | 00000001 0000001b 00000001 00000001 00000002 00000001 |
           00000005 | 68 65 6c 6c 6f 00 00 00 |
         0082 0000 | 02 02 00 00 | 00000001 0000001c |
         0006 0000 | 04 00 00 00 | 00000001 00000000 00002262 00000001 |
           04 02 00 00 | 00000001 0000001b 00000004 00000019");
    assert_eq!(m.to_bytes(), expected);
    assert_eq!(m.buffer_len(), expected.len());
    assert_eq!(parse(&expected), Ok(m));
}

/// §6.2.2: a Close with r.reason reasonShutdown.
#[test]
fn a_close_pdu() {
    let m = Message::new(5, 0, 3, Pdu::Close(CloseReason::SHUTDOWN));
    let expected = hex("01 02 10 00 | 00000005 | 00000000 | 00000003 | 00000004 | 05 000000");
    assert_eq!(m.to_bytes(), expected);
    assert_eq!(parse(&expected), Ok(m));
}

/// §5.1: `1.3.6.1.<n>` with nothing after it is written as prefix n and no sub-identifiers;
/// the null OID as all zeroes; a fifth sub-identifier above 255 is not a prefix.
#[test]
fn oid_prefix_compression_edges() {
    let enc = |o: &Oid| {
        let mut v = Vec::new();
        o.emit(false, &mut v, ByteOrder::Network);
        v
    };
    assert_eq!(enc(&oid("1.3.6.1.4")), hex("00 04 00 00"));
    assert_eq!(enc(&Oid::null()), hex("00 00 00 00"));
    assert_eq!(
        enc(&oid("1.3.6.1.256.1")),
        hex("06 00 00 00 | 00000001 00000003 00000006 00000001 00000100 00000001")
    );
    assert_eq!(
        enc(&oid("1.3.6.2.1")),
        hex("05 00 00 00 | 00000001 00000003 00000006 00000002 00000001")
    );
    assert_eq!(oid(".1.3.6").to_string(), "1.3.6");
    assert!("1..3".parse::<Oid>().is_err());
    assert!("1.x".parse::<Oid>().is_err());
    assert!(oid("1.3.6.1.2.1.28") < oid("1.3.6.1.2.1.28.1"));
    assert!(oid("1.3.6.1.2.1.28.2") > oid("1.3.6.1.2.1.28.1.1.9.1"));
}

fn every_pdu() -> Vec<Pdu> {
    let range = |s: &str, include: bool, e: &str| SearchRange {
        start: oid(s),
        include,
        end: if e.is_empty() { Oid::null() } else { oid(e) },
    };
    vec![
        Pdu::Open(Open {
            timeout: 5,
            id: Oid::null(),
            description: b"odd length".to_vec(),
        }),
        Pdu::Close(CloseReason::PARSE_ERROR),
        Pdu::Register(Register {
            instance: true,
            timeout: 0,
            priority: 1,
            subtree: oid("1.3.6.1.4.1.99999.1.0"),
            range: None,
        }),
        Pdu::Get(vec![range("1.3.6.1.2.1.28.1.1.1.1", false, "")]),
        Pdu::GetNext(vec![
            range("1.3.6.1.2.1.28", true, "1.3.6.1.2.1.29"),
            range("0.0", false, ""),
        ]),
        Pdu::GetBulk {
            non_repeaters: 1,
            max_repetitions: 10,
            ranges: vec![
                range("1.3.6.1.2.1.27", false, ""),
                range("1.3.6.1.2.1.28.2.1.2", false, "1.3.6.1.2.1.28.3"),
            ],
        },
        Pdu::TestSet(vec![VarBind::new(
            oid("1.3.6.1.2.1.27.1.1.2.1"),
            Value::OctetString(Vec::new()),
        )]),
        Pdu::CommitSet,
        Pdu::UndoSet,
        Pdu::CleanupSet,
        Pdu::Ping,
        Pdu::Response(Response {
            sys_uptime: 123_456,
            error: res_error::NOT_WRITABLE,
            index: 2,
            varbinds: vec![
                VarBind::new(oid("1.3.6.1.2.1.1.3.0"), Value::TimeTicks(77)),
                VarBind::new(oid("1.3.6.1.2.1.1.3.1"), Value::Integer(-5)),
                VarBind::new(oid("1.3.6.1.2.1.1.3.2"), Value::Null),
                VarBind::new(oid("1.3.6.1.2.1.1.3.3"), Value::IpAddress([127, 0, 0, 1])),
                VarBind::new(oid("1.3.6.1.2.1.1.3.4"), Value::Gauge32(u32::MAX)),
                VarBind::new(oid("1.3.6.1.2.1.1.3.5"), Value::Opaque(vec![1, 2, 3, 4])),
                VarBind::new(oid("1.3.6.1.2.1.1.3.6"), Value::Counter64(1 << 40)),
                VarBind::new(oid("1.3.6.1.2.1.1.3.7"), Value::NoSuchObject),
                VarBind::new(oid("1.3.6.1.2.1.1.3.8"), Value::NoSuchInstance),
            ],
        }),
    ]
}

#[test]
fn every_pdu_round_trips_in_both_byte_orders_and_with_a_context() {
    for pdu in every_pdu() {
        for order in [ByteOrder::Network, ByteOrder::Little] {
            for context in [None, Some(b"c1".to_vec())] {
                let mut m = Message::new(0x0102_0304, 9, 0xfffe_fdfc, pdu.clone());
                m.byte_order = order;
                m.context = context.filter(|_| pdu.pdu_type().has_context());
                let bytes = m.to_bytes();
                assert_eq!(bytes.len(), m.buffer_len(), "{m:?}");
                assert_eq!(bytes.len() % 4, 0, "{m:?}");
                assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
                assert_eq!(parse(&bytes), Ok(m.clone()), "{bytes:02x?}");
            }
        }
    }
}

#[test]
fn framing_waits_for_the_header_and_the_payload() {
    let bytes = Message::new(1, 2, 3, Pdu::Ping).to_bytes();
    assert_eq!(frame_len(&bytes[..19]), Ok(None));
    let close = Message::new(1, 2, 3, Pdu::Close(CloseReason::OTHER)).to_bytes();
    assert_eq!(frame_len(&close[..23]), Ok(None));
    assert_eq!(frame_len(&close), Ok(Some(24)));
    let mut two = close.clone();
    two.extend_from_slice(&bytes);
    assert_eq!(frame_len(&two), Ok(Some(24)));
    assert_eq!(
        Packet::new_checked(&two[..]).err(),
        Some(ParseError::Trailing(20))
    );
    assert_eq!(
        Packet::new_checked(&close[..22]).err(),
        Some(ParseError::Truncated)
    );
}

#[test]
fn a_stream_that_cannot_be_framed_is_an_error() {
    let mut v2 = Message::new(1, 2, 3, Pdu::Ping).to_bytes();
    v2[0] = 2;
    assert_eq!(frame_len(&v2), Err(ParseError::Version(2)));
    let too_long = hex("01 0d 10 00 | 00000001 | 00000000 | 00000001 | 00010004");
    assert_eq!(
        frame_len(&too_long),
        Err(ParseError::PayloadTooLong(65_540))
    );
    let odd = hex("01 0d 10 00 | 00000001 | 00000000 | 00000001 | 00000003");
    assert_eq!(frame_len(&odd), Err(ParseError::PayloadMisaligned(3)));
}

#[test]
fn malformed_payloads_are_errors_not_panics() {
    let head = |t: u8, len: u32| {
        let mut h = hex("01 00 10 00 | 00000001 | 00000002 | 00000003");
        h[1] = t;
        h.extend_from_slice(&len.to_be_bytes());
        h
    };
    let with = |t: u8, payload: &str| {
        let p = hex(payload);
        let mut b = head(t, p.len() as u32);
        b.extend_from_slice(&p);
        b
    };
    // An OID claiming 129 sub-identifiers.
    assert_eq!(
        parse(&with(5, "81 02 00 00 | 00000000")),
        Err(ParseError::OidTooLong(129))
    );
    // An OID claiming more sub-identifiers than the payload holds.
    assert_eq!(
        parse(&with(5, "04 02 00 00 | 00000001")),
        Err(ParseError::Short("SearchRange start"))
    );
    // A start without its end.
    assert_eq!(
        parse(&with(6, "01 02 00 00 | 00000001")),
        Err(ParseError::Short("SearchRange end"))
    );
    // An octet string claiming 4 GiB.
    assert_eq!(
        parse(&with(1, "00 000000 | 00 00 00 00 | ffffffff")),
        Err(ParseError::Short("o.descr"))
    );
    // A varbind of an unknown type.
    assert_eq!(
        parse(&with(
            18,
            "00000000 0000 0000 | 0099 0000 | 00 00 00 00 | 00000000"
        )),
        Err(ParseError::UnknownValueType(0x99))
    );
    // An IpAddress of 8 octets.
    assert_eq!(
        parse(&with(
            18,
            "00000000 0000 0000 | 0040 0000 | 00 00 00 00 | 00000008 | 0102030405060708"
        )),
        Err(ParseError::BadIpAddress(8))
    );
    // Trailing octets after a Close.
    assert_eq!(
        parse(&with(2, "05 000000 | 00000000")),
        Err(ParseError::Trailing(4))
    );
    // A GetBulk too short for its two counts.
    assert_eq!(
        parse(&with(7, "")),
        Err(ParseError::Short("g.non_repeaters"))
    );
    // Unknown and unsupported types.
    assert_eq!(parse(&with(0, "")), Err(ParseError::UnknownType(0)));
    assert_eq!(parse(&with(19, "")), Err(ParseError::UnknownType(19)));
    assert_eq!(
        parse(&with(12, "")),
        Err(ParseError::UnsupportedType(PduType::Notify))
    );
}

/// Every truncation and many one-octet corruptions of valid PDUs: parsing returns, whatever
/// it returns (a deterministic stand-in for the fuzz target).
#[test]
fn corrupted_pdus_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for pdu in every_pdu() {
        let bytes = Message::new(1, 2, 3, pdu).to_bytes();
        for cut in 0..bytes.len() {
            let _ = frame_len(&bytes[..cut]);
            let _ = parse(&bytes[..cut]);
        }
        for _ in 0..2000 {
            let mut b = bytes.clone();
            let i = (next() as usize) % b.len();
            b[i] = next() as u8;
            if let Ok(Some(n)) = frame_len(&b)
                && n <= b.len()
            {
                let _ = parse(&b[..n]);
            }
        }
    }
}
