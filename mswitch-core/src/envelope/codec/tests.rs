use proptest::prelude::*;

use super::*;
use crate::address::Mailbox;
use crate::status::Status;

fn mailbox(s: &str) -> Address {
    Address::Mailbox(Mailbox::parse(s).expect("valid test mailbox"))
}

fn full_envelope() -> Envelope {
    let mut env = Envelope::new(
        ReversePath::Address(mailbox("sender@example.org")),
        Timestamp(1_700_000_000_123),
    );
    let mut r1 = Recipient::new(mailbox("\"odd user\"@example.com"));
    r1.original = Some(OriginalRecipient {
        addr_type: "rfc822".into(),
        address: "Odd.User@example.com".into(),
    });
    r1.notify = Notify::on(true, true, false);
    r1.route = Some(Route {
        channel: ChannelId::new("smtp-out"),
        next_hop: NextHop::Host {
            host: "relay.example.net".into(),
            port: Some(2525),
        },
        local: false,
    });
    r1.state = RecipientState::Deferred {
        attempts: 3,
        next_attempt: Timestamp(1_700_000_900_000),
        last: Status::new(451, (4, 4, 1), "connection timed out"),
    };
    let mut r2 = Recipient::new(mailbox("用户@例子.广告"));
    r2.notify = Notify::never();
    r2.state = RecipientState::Delivered {
        at: Timestamp(1_700_000_000_500),
        status: Status::new(250, (2, 0, 0), "ok"),
    };
    env.recipients = vec![r1, r2];
    env.priority = Priority::Flash;
    env.dsn_ret = Some(DsnRet::Headers);
    env.dsn_envid = Some("QQ314159".into());
    env.content_type = ContentType::Internet {
        body: BodyType::EightBitMime,
        smtputf8: true,
    };
    env.size = 4096;
    env.deferred_until = Some(Timestamp(1_700_000_001_000));
    env.expires = Some(Timestamp(1_700_432_000_000));
    env.require_tls = true;
    env.authenticated_as = Some("sender".into());
    env.trace.push(TraceHop {
        by: "mx.example.org".into(),
        from: Some("client.example.net [192.0.2.7]".into()),
        with: "ESMTPS".into(),
        id: Some("0000000000000001".into()),
        at: Timestamp(1_700_000_000_100),
    });
    env
}

#[test]
fn full_envelope_round_trips() {
    let env = full_envelope();
    assert_eq!(decode(&encode(&env)), Ok(env));
}

#[test]
fn minimal_envelope_round_trips() {
    let env = Envelope::new(ReversePath::Null, Timestamp(0));
    let bytes = encode(&env);
    assert_eq!(decode(&bytes), Ok(env));
}

#[test]
fn x400_content_types_round_trip() {
    for ct in [
        X400ContentType::BuiltIn(22),
        X400ContentType::Extended(vec![2, 6, 1, 10, 1]),
    ] {
        let mut env = full_envelope();
        env.content_type = ContentType::X400(ct);
        assert_eq!(decode(&encode(&env)), Ok(env));
    }
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let bytes = encode(&full_envelope());
    for n in 0..bytes.len() {
        assert!(decode(&bytes[..n]).is_err(), "prefix of {n} octets decoded");
    }
}

#[test]
fn unknown_fields() {
    let mut bytes = encode(&full_envelope());
    let end = bytes.split_off(bytes.len() - 2);
    assert_eq!(end, [END, 0]);
    // An ignorable field is skipped.
    bytes.extend_from_slice(&[0x90, 3, b'a', b'b', b'c', END, 0]);
    assert_eq!(decode(&bytes), Ok(full_envelope()));
    // A critical field is refused.
    bytes.truncate(bytes.len() - 2);
    bytes.extend_from_slice(&[0x30, 0, END, 0]);
    assert!(matches!(
        decode(&bytes),
        Err(DecodeError::UnknownField { tag: 0x30, .. })
    ));
}

#[test]
fn hostile_lengths_and_versions() {
    assert!(matches!(decode(&[]), Err(DecodeError::Truncated)));
    assert!(matches!(
        decode(&[2]),
        Err(DecodeError::UnsupportedVersion(2))
    ));
    // A field claiming an enormous length.
    let huge = [
        VERSION, ORIGINATOR, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ];
    assert!(matches!(decode(&huge), Err(DecodeError::Truncated)));
    // An over-long varint.
    let bad = [
        VERSION, SIZE, 11, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
    ];
    assert!(matches!(decode(&bad), Err(DecodeError::BadVarint)));
    // Octets after the end marker.
    let mut trailing = encode(&Envelope::new(ReversePath::Null, Timestamp(5)));
    trailing.push(0);
    assert!(matches!(
        decode(&trailing),
        Err(DecodeError::TrailingBytes(_))
    ));
    // A duplicated single-valued field.
    let mut dup = encode(&Envelope::new(ReversePath::Null, Timestamp(5)));
    dup.truncate(dup.len() - 2);
    dup.extend_from_slice(&[SIZE, 1, 9, END, 0]);
    assert!(matches!(
        decode(&dup),
        Err(DecodeError::DuplicateField("size"))
    ));
    // A forged address that does not parse.
    let forged = [VERSION, ORIGINATOR, 5, 1, 3, b'a', b'\r', b'b', END, 0];
    assert!(matches!(
        decode(&forged),
        Err(DecodeError::InvalidAddress { .. })
    ));
}

fn arb_mailbox() -> impl Strategy<Value = Address> {
    let local_chars: Vec<char> = "abcXYZ019.+-_!#'~ \"\\@é".chars().collect();
    let label_chars: Vec<char> = "abz09-".chars().collect();
    (
        prop::collection::vec(prop::sample::select(local_chars), 1..20),
        prop::collection::vec(
            prop::collection::vec(prop::sample::select(label_chars), 1..10),
            1..4,
        ),
        any::<bool>(),
    )
        .prop_filter_map("valid mailbox", |(local, labels, quote)| {
            let local: String = local.into_iter().collect();
            let local = if quote {
                let escaped: String = local
                    .chars()
                    .flat_map(|c| match c {
                        '"' | '\\' => vec!['\\', c],
                        c => vec![c],
                    })
                    .collect();
                format!("\"{escaped}\"")
            } else {
                local
            };
            let domain: Vec<String> = labels
                .into_iter()
                .map(|l| l.into_iter().collect())
                .collect();
            Mailbox::parse(&format!("{local}@{}", domain.join(".")))
                .ok()
                .map(Address::Mailbox)
        })
}

fn arb_or_address() -> impl Strategy<Value = Address> {
    let printable: Vec<char> = "ABCxyz09 '()+,-.:=?".chars().collect();
    (
        prop::sample::select(vec!["GB", "DE", "US", "826"]),
        prop::collection::vec(prop::sample::select(printable.clone()), 1..12),
        prop::collection::vec(prop::sample::select(printable), 1..12),
    )
        .prop_filter_map("valid std-or", |(c, o, s)| {
            let o: String = o.into_iter().collect();
            let s: String = s.into_iter().collect();
            format!("/C={c}/ADMD= /PRMD=Switch/O={o}/S={s}/")
                .parse()
                .ok()
                .map(|a: crate::address::ORAddress| Address::from(a))
        })
}

fn arb_address() -> impl Strategy<Value = Address> {
    prop_oneof![3 => arb_mailbox(), 1 => arb_or_address()]
}

fn arb_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..30).prop_map(|v| v.into_iter().collect())
}

fn arb_status() -> impl Strategy<Value = Status> {
    (200u16..600, 2u8..6, 0u16..10, 0u16..30, arb_text())
        .prop_map(|(code, c, s, d, t)| Status::new(code, (c, s, d), t))
}

fn arb_next_hop() -> impl Strategy<Value = NextHop> {
    prop_oneof![
        Just(NextHop::Local),
        arb_text().prop_map(NextHop::Domain),
        (arb_text(), prop::option::of(any::<u16>()))
            .prop_map(|(host, port)| NextHop::Host { host, port }),
        arb_text().prop_map(NextHop::Peer),
    ]
}

fn arb_state() -> impl Strategy<Value = RecipientState> {
    prop_oneof![
        Just(RecipientState::Pending),
        (any::<u32>(), any::<u64>(), arb_status()).prop_map(|(a, n, last)| {
            RecipientState::Deferred {
                attempts: a,
                next_attempt: Timestamp(n),
                last,
            }
        }),
        (any::<u64>(), arb_status()).prop_map(|(at, status)| RecipientState::Delivered {
            at: Timestamp(at),
            status
        }),
        (any::<u64>(), arb_status()).prop_map(|(at, status)| RecipientState::Relayed {
            at: Timestamp(at),
            status
        }),
        any::<u64>().prop_map(|at| RecipientState::Expanded { at: Timestamp(at) }),
        (any::<u64>(), arb_status()).prop_map(|(at, status)| RecipientState::Failed {
            at: Timestamp(at),
            status
        }),
    ]
}

fn arb_notify() -> impl Strategy<Value = Notify> {
    prop_oneof![
        Just(Notify::unspecified()),
        Just(Notify::never()),
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(s, f, d)| Notify::on(s, f, d)),
    ]
}

fn arb_recipient() -> impl Strategy<Value = Recipient> {
    (
        arb_address(),
        prop::option::of((arb_text(), arb_text())),
        arb_notify(),
        prop::option::of((arb_text(), arb_next_hop(), any::<bool>())),
        arb_state(),
    )
        .prop_map(|(address, orcpt, notify, route, state)| Recipient {
            address,
            original: orcpt.map(|(addr_type, address)| OriginalRecipient { addr_type, address }),
            notify,
            route: route.map(|(c, next_hop, local)| Route {
                channel: ChannelId::new(c),
                next_hop,
                local,
            }),
            state,
        })
}

fn arb_content_type() -> impl Strategy<Value = ContentType> {
    prop_oneof![
        (0u8..3, any::<bool>()).prop_map(|(b, smtputf8)| ContentType::Internet {
            body: [
                BodyType::SevenBit,
                BodyType::EightBitMime,
                BodyType::BinaryMime
            ][b as usize],
            smtputf8,
        }),
        any::<u16>().prop_map(|n| ContentType::X400(X400ContentType::BuiltIn(n))),
        prop::collection::vec(any::<u32>(), 0..8)
            .prop_map(|a| ContentType::X400(X400ContentType::Extended(a))),
    ]
}

fn arb_trace() -> impl Strategy<Value = TraceHop> {
    (
        arb_text(),
        prop::option::of(arb_text()),
        arb_text(),
        prop::option::of(arb_text()),
        any::<u64>(),
    )
        .prop_map(|(by, from, with, id, at)| TraceHop {
            by,
            from,
            with,
            id,
            at: Timestamp(at),
        })
}

prop_compose! {
    fn arb_envelope()(
        originator in prop::option::of(arb_address()),
        recipients in prop::collection::vec(arb_recipient(), 0..6),
        level in 0u8..6,
        ret in prop::option::of(any::<bool>()),
        envid in prop::option::of(arb_text()),
        content_type in arb_content_type(),
        size in any::<u64>(),
        arrival in any::<u64>(),
        deferred in prop::option::of(any::<u64>()),
        expires in prop::option::of(any::<u64>()),
        require_tls in any::<bool>(),
        auth in prop::option::of(arb_text()),
        trace in prop::collection::vec(arb_trace(), 0..4),
        expansions in prop::collection::vec(arb_text(), 0..3),
    ) -> Envelope {
        Envelope {
            originator: originator.map_or(ReversePath::Null, ReversePath::Address),
            recipients,
            priority: Priority::from_level(level).unwrap_or_default(),
            dsn_ret: ret.map(|full| if full { DsnRet::Full } else { DsnRet::Headers }),
            dsn_envid: envid,
            content_type,
            size,
            arrival: Timestamp(arrival),
            deferred_until: deferred.map(Timestamp),
            expires: expires.map(Timestamp),
            require_tls,
            authenticated_as: auth,
            trace,
            expansions,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_envelope_round_trips(env in arb_envelope()) {
        let bytes = encode(&env);
        prop_assert_eq!(decode(&bytes), Ok(env));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn corrupted_encodings_never_panic(env in arb_envelope(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = encode(&env);
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = byte;
        }
        let _ = decode(&bytes);
    }
}
