//! The MX rules against a fake lookup: every case of the module's table, exactly.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use futures::executor::block_on;
use mswitch_core::status::EnhancedCode;

use super::*;
use crate::dns::ManualClock;

const TTL: Duration = Duration::from_secs(300);

type Res<T> = Result<Answer<T>, LookupError>;

/// Answers from maps. A name present in any map exists (a missing type is no data); any
/// other name does not exist. Every query is logged as "MX name", "A name", "AAAA name".
#[derive(Default)]
struct Fake {
    mx: HashMap<String, Res<Mx>>,
    a: HashMap<String, Res<Ipv4Addr>>,
    aaaa: HashMap<String, Res<Ipv6Addr>>,
    queries: Mutex<Vec<String>>,
}

fn temp() -> LookupError {
    LookupError::Temporary("SERVFAIL".into())
}

fn nx() -> LookupError {
    LookupError::NoSuchDomain { negative_ttl: None }
}

fn nodata() -> LookupError {
    LookupError::NoRecords { negative_ttl: None }
}

impl Fake {
    fn mx(mut self, domain: &str, records: &[(u16, &str)]) -> Self {
        let records = records.iter().map(|(p, x)| Mx::new(*p, x)).collect();
        self.mx.insert(domain.into(), Ok(Answer::new(records, TTL)));
        self
    }

    fn mx_err(mut self, domain: &str, e: LookupError) -> Self {
        self.mx.insert(domain.into(), Err(e));
        self
    }

    fn a(mut self, name: &str, addrs: &[&str]) -> Self {
        let records = addrs
            .iter()
            .map(|a| a.parse().expect("test IPv4"))
            .collect();
        self.a.insert(name.into(), Ok(Answer::new(records, TTL)));
        self
    }

    fn a_err(mut self, name: &str, e: LookupError) -> Self {
        self.a.insert(name.into(), Err(e));
        self
    }

    fn aaaa(mut self, name: &str, addrs: &[&str]) -> Self {
        let records = addrs
            .iter()
            .map(|a| a.parse().expect("test IPv6"))
            .collect();
        self.aaaa.insert(name.into(), Ok(Answer::new(records, TTL)));
        self
    }

    fn aaaa_err(mut self, name: &str, e: LookupError) -> Self {
        self.aaaa.insert(name.into(), Err(e));
        self
    }

    fn exists(&self, name: &str) -> bool {
        self.mx.contains_key(name) || self.a.contains_key(name) || self.aaaa.contains_key(name)
    }

    fn answer<T: Clone>(&self, map: &HashMap<String, Res<T>>, kind: &str, name: &str) -> Res<T> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{kind} {name}"));
        match map.get(name) {
            Some(r) => r.clone(),
            None if self.exists(name) => Err(nodata()),
            None => Err(nx()),
        }
    }

    fn queries(&self) -> Vec<String> {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn query_count(&self) -> usize {
        self.queries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl DnsLookup for Fake {
    async fn mx(&self, name: &str) -> Res<Mx> {
        self.answer(&self.mx, "MX", name)
    }

    async fn ipv4(&self, name: &str) -> Res<Ipv4Addr> {
        self.answer(&self.a, "A", name)
    }

    async fn ipv6(&self, name: &str) -> Res<Ipv6Addr> {
        self.answer(&self.aaaa, "AAAA", name)
    }
}

fn config() -> MxConfig {
    MxConfig {
        seed: Some(1),
        ..MxConfig::default()
    }
}

fn resolver(fake: Fake) -> MxResolver<Arc<Fake>> {
    resolver_with(fake, config())
}

fn resolver_with(fake: Fake, config: MxConfig) -> MxResolver<Arc<Fake>> {
    MxResolver::new(Arc::new(fake), config)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn host(name: &str, preference: u16, addresses: &[&str]) -> MailHost {
    MailHost {
        name: name.into(),
        preference,
        addresses: addresses.iter().map(|a| ip(a)).collect(),
    }
}

fn hosts(r: &MxResolver<Arc<Fake>>, domain: &str) -> Vec<MailHost> {
    match block_on(r.mail_hosts(domain)) {
        Ok(h) => h,
        Err(e) => panic!("mail_hosts({domain}): {e}"),
    }
}

fn error(r: &MxResolver<Arc<Fake>>, domain: &str) -> ResolveError {
    match block_on(r.mail_hosts(domain)) {
        Ok(h) => panic!("mail_hosts({domain}) gave {h:?}, expected an error"),
        Err(e) => e,
    }
}

fn permanent(code: u16, enhanced: (u8, u16, u16)) -> impl Fn(&ResolveError) {
    move |e| {
        assert!(matches!(e, ResolveError::Permanent(_)), "{e:?}");
        assert_eq!(
            (e.status().code, e.status().enhanced),
            (code, EnhancedCode::new(enhanced.0, enhanced.1, enhanced.2)),
            "{e}"
        );
    }
}

fn temporary(code: u16, enhanced: (u8, u16, u16)) -> impl Fn(&ResolveError) {
    move |e| {
        assert!(matches!(e, ResolveError::Temporary(_)), "{e:?}");
        assert_eq!(
            (e.status().code, e.status().enhanced),
            (code, EnhancedCode::new(enhanced.0, enhanced.1, enhanced.2)),
            "{e}"
        );
    }
}

fn names(h: &[MailHost]) -> Vec<&str> {
    h.iter().map(|h| h.name.as_str()).collect()
}

/// Three preference levels, two hosts at the middle one.
fn three_levels() -> Fake {
    Fake::default()
        .mx(
            "example.com",
            &[
                (30, "c.example.com"),
                (10, "a.example.com"),
                (20, "b1.example.com"),
                (20, "b2.example.com"),
            ],
        )
        .a("a.example.com", &["192.0.2.1"])
        .a("b1.example.com", &["192.0.2.21"])
        .a("b2.example.com", &["192.0.2.22"])
        .a("c.example.com", &["192.0.2.3"])
}

#[test]
fn mx_hosts_sorted_by_preference_with_their_addresses() {
    let r = resolver(three_levels());
    let h = hosts(&r, "example.com");
    assert_eq!(h.len(), 4);
    assert_eq!(h[0], host("a.example.com", 10, &["192.0.2.1"]));
    let middle: BTreeSet<_> = h[1..3]
        .iter()
        .map(|h| (h.name.clone(), h.preference))
        .collect();
    assert_eq!(
        middle,
        BTreeSet::from([
            ("b1.example.com".to_owned(), 20),
            ("b2.example.com".to_owned(), 20)
        ])
    );
    assert_eq!(h[3], host("c.example.com", 30, &["192.0.2.3"]));
    // The domain's own address records are not asked for when it has MX records.
    assert!(!r.lookup().queries().iter().any(|q| q == "A example.com"));
}

#[test]
fn equal_preferences_in_random_order_that_the_seed_fixes() {
    let order = |seed: u64| {
        let r = resolver_with(
            three_levels(),
            MxConfig {
                seed: Some(seed),
                ..MxConfig::default()
            },
        );
        (0..4)
            .map(|_| names(&hosts(&r, "example.com"))[1].to_owned())
            .collect::<Vec<_>>()
    };
    // The same seed, the same sequence of orders.
    for seed in 0..8 {
        assert_eq!(order(seed), order(seed));
    }
    // Both orders occur, across calls and across seeds; the others never move.
    let firsts: BTreeSet<String> = (0..16).flat_map(order).collect();
    assert_eq!(
        firsts,
        BTreeSet::from(["b1.example.com".to_owned(), "b2.example.com".to_owned()])
    );
    let r = resolver(three_levels());
    for _ in 0..16 {
        let n = names(&hosts(&r, "example.com"))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        assert_eq!(n[0], "a.example.com");
        assert_eq!(n[3], "c.example.com");
    }
}

#[test]
fn implicit_mx_when_the_domain_has_no_mx_records() {
    let fake = Fake::default()
        .a("nomx.example", &["192.0.2.7"])
        .aaaa("nomx.example", &["2001:db8::7"]);
    let r = resolver(fake);
    assert_eq!(
        hosts(&r, "nomx.example"),
        vec![host("nomx.example", 0, &["2001:db8::7", "192.0.2.7"])]
    );
    assert_eq!(
        r.lookup().queries(),
        vec!["MX nomx.example", "A nomx.example", "AAAA nomx.example"]
    );
}

#[test]
fn null_mx_is_permanent_556_5_1_10() {
    let fake = Fake::default()
        .mx("nullmx.example", &[(0, ".")])
        .a("nullmx.example", &["192.0.2.9"]);
    let r = resolver(fake);
    let e = error(&r, "nullmx.example");
    permanent(556, (5, 1, 10))(&e);
    assert_eq!(
        e.status().text,
        "domain nullmx.example does not accept mail (null MX, RFC 7505)"
    );
    // No address lookup at all: the null MX is the whole answer.
    assert_eq!(r.lookup().queries(), vec!["MX nullmx.example"]);
}

#[test]
fn a_root_mx_among_others_is_ignored() {
    let fake = Fake::default()
        .mx("mixed.example", &[(0, "."), (10, "mx.mixed.example")])
        .a("mx.mixed.example", &["192.0.2.10"]);
    let r = resolver(fake);
    assert_eq!(
        hosts(&r, "mixed.example"),
        vec![host("mx.mixed.example", 10, &["192.0.2.10"])]
    );
}

#[test]
fn nxdomain_is_permanent_550_5_1_2() {
    let r = resolver(Fake::default());
    let e = error(&r, "nosuch.example");
    permanent(550, (5, 1, 2))(&e);
    assert_eq!(
        e.status().text,
        "domain nosuch.example does not exist (NXDOMAIN)"
    );
    assert_eq!(r.lookup().queries(), vec!["MX nosuch.example"]);
}

#[test]
fn temporary_mx_failure_is_451_4_4_3_and_no_fallback_to_addresses() {
    let fake = Fake::default()
        .mx_err("flaky.example", temp())
        .a("flaky.example", &["192.0.2.11"]);
    let r = resolver(fake);
    let e = error(&r, "flaky.example");
    temporary(451, (4, 4, 3))(&e);
    assert_eq!(
        e.status().text,
        "MX lookup for flaky.example failed: SERVFAIL"
    );
    assert_eq!(r.lookup().queries(), vec!["MX flaky.example"]);
}

#[test]
fn implicit_mx_failures() {
    // No MX, no address: permanent 5.4.4.
    let r = resolver(Fake::default().mx_err("bare.example", nodata()));
    let e = error(&r, "bare.example");
    permanent(554, (5, 4, 4))(&e);
    assert_eq!(
        e.status().text,
        "domain bare.example has no MX and no address records"
    );
    // No MX, address lookups fail temporarily: temporary.
    let r = resolver(
        Fake::default()
            .mx_err("slow.example", nodata())
            .a_err("slow.example", temp())
            .aaaa_err("slow.example", temp()),
    );
    temporary(451, (4, 4, 3))(&error(&r, "slow.example"));
    // No MX, and the name vanished in between (NXDOMAIN for A and AAAA): 5.1.2.
    let r = resolver(
        Fake::default()
            .mx_err("gone.example", nodata())
            .a_err("gone.example", nx())
            .aaaa_err("gone.example", nx()),
    );
    permanent(550, (5, 1, 2))(&error(&r, "gone.example"));
}

#[test]
fn own_name_drops_its_preference_and_worse() {
    let fake = Fake::default()
        .mx(
            "example.org",
            &[
                (10, "primary.example.org"),
                (20, "ME.example.net"),
                (20, "peer.example.org"),
                (30, "backup.example.org"),
            ],
        )
        .a("primary.example.org", &["192.0.2.1"])
        .a("peer.example.org", &["192.0.2.2"])
        .a("backup.example.org", &["192.0.2.3"])
        .a("me.example.net", &["192.0.2.99"]);
    let r = resolver_with(
        fake,
        MxConfig {
            local_names: vec!["Me.Example.Net.".into()],
            ..config()
        },
    );
    assert_eq!(
        hosts(&r, "example.org"),
        vec![host("primary.example.org", 10, &["192.0.2.1"])]
    );
    // The dropped hosts are not even looked up.
    let q = r.lookup().queries();
    assert!(
        !q.iter()
            .any(|q| q.contains("peer") || q.contains("backup") || q.contains("me."))
    );
}

#[test]
fn own_name_as_best_mx_is_a_loop_554_5_4_6() {
    let fake = Fake::default()
        .mx(
            "example.org",
            &[(10, "me.example.net"), (20, "backup.example.org")],
        )
        .a("backup.example.org", &["192.0.2.3"]);
    let r = resolver_with(
        fake,
        MxConfig {
            local_names: vec!["me.example.net".into()],
            ..config()
        },
    );
    let e = error(&r, "example.org");
    permanent(554, (5, 4, 6))(&e);
    assert_eq!(
        e.status().text,
        "mail for example.org loops back to myself (this host is its best MX)"
    );
}

#[test]
fn better_hosts_without_addresses_before_this_host_are_no_loop() {
    let fake = Fake::default().mx(
        "example.org",
        &[(10, "gone.example.org"), (20, "me.example.net")],
    );
    let r = resolver_with(
        fake,
        MxConfig {
            local_names: vec!["me.example.net".into()],
            ..config()
        },
    );
    let e = error(&r, "example.org");
    permanent(554, (5, 4, 4))(&e);
    assert_eq!(
        e.status().text,
        "no MX host of example.org has an address (gone.example.org)"
    );
}

#[test]
fn own_address_drops_its_preference_and_worse() {
    let fake = Fake::default()
        .mx(
            "example.org",
            &[
                (10, "primary.example.org"),
                (20, "alias-of-me.example.org"),
                (20, "peer.example.org"),
                (30, "backup.example.org"),
            ],
        )
        .a("primary.example.org", &["192.0.2.1"])
        .a("alias-of-me.example.org", &["198.51.100.5"])
        .aaaa("alias-of-me.example.org", &["2001:db8::5"])
        .a("peer.example.org", &["192.0.2.2"])
        .a("backup.example.org", &["192.0.2.3"]);
    let r = resolver_with(
        fake,
        MxConfig {
            local_addresses: vec![ip("2001:db8::5")],
            ..config()
        },
    );
    assert_eq!(
        hosts(&r, "example.org"),
        vec![host("primary.example.org", 10, &["192.0.2.1"])]
    );

    // Best MX by address: a loop.
    let fake = Fake::default()
        .mx(
            "example.org",
            &[(5, "me.example.org"), (10, "b.example.org")],
        )
        .a("me.example.org", &["198.51.100.5"])
        .a("b.example.org", &["192.0.2.2"]);
    let r = resolver_with(
        fake,
        MxConfig {
            local_addresses: vec![ip("198.51.100.5")],
            ..config()
        },
    );
    permanent(554, (5, 4, 6))(&error(&r, "example.org"));
}

#[test]
fn implicit_mx_that_is_this_host_is_a_loop() {
    let fake = Fake::default().a("me.example.net", &["192.0.2.50"]);
    let by_name = resolver_with(
        fake,
        MxConfig {
            local_names: vec!["me.example.net".into()],
            ..config()
        },
    );
    permanent(554, (5, 4, 6))(&error(&by_name, "me.example.net"));
    let fake = Fake::default().a("me.example.net", &["192.0.2.50"]);
    let by_address = resolver_with(
        fake,
        MxConfig {
            local_addresses: vec![ip("192.0.2.50")],
            ..config()
        },
    );
    permanent(554, (5, 4, 6))(&error(&by_address, "me.example.net"));
}

#[test]
fn loop_behind_a_temporarily_failing_better_host_is_temporary() {
    let fake = Fake::default()
        .mx(
            "example.org",
            &[(10, "a.example.org"), (20, "me.example.net")],
        )
        .a_err("a.example.org", temp())
        .aaaa_err("a.example.org", temp());
    let r = resolver_with(
        fake,
        MxConfig {
            local_names: vec!["me.example.net".into()],
            ..config()
        },
    );
    temporary(451, (4, 4, 3))(&error(&r, "example.org"));
}

#[test]
fn host_failing_temporarily_is_skipped() {
    let fake = Fake::default()
        .mx(
            "example.com",
            &[(10, "a.example.com"), (20, "b.example.com")],
        )
        .a_err("a.example.com", temp())
        .aaaa_err("a.example.com", temp())
        .a("b.example.com", &["192.0.2.2"]);
    let r = resolver(fake);
    assert_eq!(
        hosts(&r, "example.com"),
        vec![host("b.example.com", 20, &["192.0.2.2"])]
    );
}

#[test]
fn every_host_failing_temporarily_is_451_4_4_3() {
    let fake = Fake::default()
        .mx(
            "example.com",
            &[(10, "a.example.com"), (20, "b.example.com")],
        )
        .a_err("a.example.com", temp())
        .aaaa_err("a.example.com", temp())
        .a_err("b.example.com", temp())
        .aaaa_err("b.example.com", nodata());
    let r = resolver(fake);
    let e = error(&r, "example.com");
    temporary(451, (4, 4, 3))(&e);
    assert_eq!(
        e.status().text,
        "no mail host for example.com could be resolved: \
         a.example.com: SERVFAIL; b.example.com: SERVFAIL"
    );
}

#[test]
fn temporary_and_permanent_host_failures_together_are_temporary() {
    let fake = Fake::default()
        .mx(
            "example.com",
            &[(10, "gone.example.com"), (20, "b.example.com")],
        )
        .a_err("b.example.com", temp())
        .aaaa_err("b.example.com", temp());
    let r = resolver(fake);
    temporary(451, (4, 4, 3))(&error(&r, "example.com"));
}

#[test]
fn no_mx_host_with_an_address_is_permanent_554_5_4_4() {
    let fake = Fake::default()
        .mx(
            "example.com",
            &[(10, "gone.example.com"), (20, "empty.example.com")],
        )
        .mx_err("empty.example.com", nodata());
    let r = resolver(fake);
    let e = error(&r, "example.com");
    permanent(554, (5, 4, 4))(&e);
    assert_eq!(
        e.status().text,
        "no MX host of example.com has an address (gone.example.com, empty.example.com)"
    );
}

fn dual_stack() -> Fake {
    Fake::default()
        .mx("example.com", &[(10, "mx.example.com")])
        .a("mx.example.com", &["192.0.2.1", "192.0.2.2", "192.0.2.3"])
        .aaaa("mx.example.com", &["2001:db8::1", "2001:db8::2"])
}

fn addresses_in(order: AddressOrder) -> (Vec<IpAddr>, Vec<String>) {
    let r = resolver_with(
        dual_stack(),
        MxConfig {
            address_order: order,
            ..config()
        },
    );
    let h = hosts(&r, "example.com");
    (h[0].addresses.clone(), r.lookup().queries())
}

#[test]
fn address_orders() {
    let ips = |l: &[&str]| l.iter().map(|a| ip(a)).collect::<Vec<_>>();
    let (a, q) = addresses_in(AddressOrder::Interleave);
    assert_eq!(
        a,
        ips(&[
            "2001:db8::1",
            "192.0.2.1",
            "2001:db8::2",
            "192.0.2.2",
            "192.0.2.3"
        ])
    );
    assert_eq!(q.len(), 3);
    let (a, _) = addresses_in(AddressOrder::default());
    assert_eq!(a[0], ip("2001:db8::1"));
    let (a, _) = addresses_in(AddressOrder::Ipv6First);
    assert_eq!(
        a,
        ips(&[
            "2001:db8::1",
            "2001:db8::2",
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3"
        ])
    );
    let (a, _) = addresses_in(AddressOrder::Ipv4First);
    assert_eq!(
        a,
        ips(&[
            "192.0.2.1",
            "192.0.2.2",
            "192.0.2.3",
            "2001:db8::1",
            "2001:db8::2"
        ])
    );
    let (a, q) = addresses_in(AddressOrder::Ipv4Only);
    assert_eq!(a, ips(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
    assert_eq!(q, vec!["MX example.com", "A mx.example.com"]);
    let (a, q) = addresses_in(AddressOrder::Ipv6Only);
    assert_eq!(a, ips(&["2001:db8::1", "2001:db8::2"]));
    assert_eq!(q, vec!["MX example.com", "AAAA mx.example.com"]);
}

#[test]
fn one_family_failing_temporarily_leaves_the_other() {
    let fake = Fake::default()
        .mx("example.com", &[(10, "mx.example.com")])
        .a("mx.example.com", &["192.0.2.1"])
        .aaaa_err("mx.example.com", temp());
    let r = resolver(fake);
    assert_eq!(
        hosts(&r, "example.com"),
        vec![host("mx.example.com", 10, &["192.0.2.1"])]
    );
}

#[test]
fn duplicate_addresses_and_exchanges_are_merged() {
    let fake = Fake::default()
        .mx(
            "example.com",
            &[(20, "MX.example.com."), (10, "mx.example.com")],
        )
        .a("mx.example.com", &["192.0.2.1", "192.0.2.1"]);
    let r = resolver(fake);
    assert_eq!(
        hosts(&r, "example.com"),
        vec![host("mx.example.com", 10, &["192.0.2.1"])]
    );
}

#[test]
fn mx_pointing_to_an_ip_address() {
    let fake = || {
        Fake::default()
            .mx("example.com", &[(10, "192.0.2.77")])
            .a("192.0.2.77", &["203.0.113.1"])
    };
    // Refused by default, without a lookup of the "name".
    let r = resolver(fake());
    let e = error(&r, "example.com");
    permanent(554, (5, 4, 4))(&e);
    assert_eq!(r.lookup().queries(), vec!["MX example.com"]);
    // Taken as the address when allowed.
    let r = resolver_with(
        fake(),
        MxConfig {
            allow_mx_to_ip: true,
            ..config()
        },
    );
    assert_eq!(
        hosts(&r, "example.com"),
        vec![host("192.0.2.77", 10, &["192.0.2.77"])]
    );
}

#[test]
fn address_literals_need_no_dns() {
    let r = resolver(Fake::default());
    assert_eq!(
        hosts(&r, "[192.0.2.1]"),
        vec![host("[192.0.2.1]", 0, &["192.0.2.1"])]
    );
    assert_eq!(
        hosts(&r, "[IPv6:2001:db8::1]"),
        vec![host("[IPv6:2001:db8::1]", 0, &["2001:db8::1"])]
    );
    permanent(550, (5, 1, 2))(&error(&r, "[not-an-address]"));
    permanent(550, (5, 1, 2))(&error(&r, ""));
    permanent(550, (5, 1, 2))(&error(&r, "."));
    assert_eq!(r.lookup().query_count(), 0);
    let me = resolver_with(
        Fake::default(),
        MxConfig {
            local_addresses: vec![ip("192.0.2.1")],
            ..config()
        },
    );
    permanent(554, (5, 4, 6))(&error(&me, "[192.0.2.1]"));
}

#[test]
fn domain_names_are_normalized_before_lookup() {
    let fake = Fake::default()
        .mx("example.com", &[(10, "mx.example.com")])
        .a("mx.example.com", &["192.0.2.1"]);
    let r = resolver(fake);
    assert_eq!(
        hosts(&r, "Example.COM."),
        vec![host("mx.example.com", 10, &["192.0.2.1"])]
    );
    // IDNs are looked up by A-label.
    let fake = Fake::default()
        .mx("xn--bcher-kva.example", &[(10, "mx.example.com")])
        .a("mx.example.com", &["192.0.2.1"]);
    let r = resolver(fake);
    assert_eq!(hosts(&r, "bücher.example")[0].name, "mx.example.com");
}

#[test]
fn max_mail_hosts_keeps_the_best() {
    let r = resolver_with(
        three_levels(),
        MxConfig {
            max_mail_hosts: 1,
            ..config()
        },
    );
    assert_eq!(names(&hosts(&r, "example.com")), vec!["a.example.com"]);
    assert_eq!(
        r.lookup().queries(),
        vec!["MX example.com", "A a.example.com", "AAAA a.example.com"]
    );
}

#[test]
fn host_addresses_of_configured_hosts() {
    let fake = Fake::default()
        .a("relay.example", &["192.0.2.1"])
        .aaaa("relay.example", &["2001:db8::1"])
        .mx("mxonly.example", &[(10, "relay.example")])
        .a_err("flaky.example", temp())
        .aaaa_err("flaky.example", temp());
    let r = resolver(fake);
    assert_eq!(
        block_on(r.host_addresses("Relay.Example.")),
        Ok(vec![ip("2001:db8::1"), ip("192.0.2.1")])
    );
    assert_eq!(
        block_on(r.host_addresses("192.0.2.9")),
        Ok(vec![ip("192.0.2.9")])
    );
    assert_eq!(
        block_on(r.host_addresses("[IPv6:2001:db8::9]")),
        Ok(vec![ip("2001:db8::9")])
    );
    let status = |host: &str| match block_on(r.host_addresses(host)) {
        Ok(a) => panic!("{host}: {a:?}"),
        Err(e) => e,
    };
    // A configured host that is missing from DNS is the operator's mistake: mail waits.
    let e = status("nosuch.example");
    temporary(451, (4, 4, 4))(&e);
    assert_eq!(
        e.status().text,
        "host nosuch.example does not exist (NXDOMAIN): check the configuration"
    );
    temporary(451, (4, 4, 4))(&status("mxonly.example"));
    temporary(451, (4, 4, 3))(&status("flaky.example"));
}

#[test]
fn answers_come_from_the_cache_until_their_ttl_runs_out() {
    let clock = ManualClock::new();
    let mut config = config();
    // The hosts have no AAAA: keep those negative answers as long as the positive ones.
    config.cache.negative_ttl = TTL;
    let r = resolver_with(three_levels(), config).with_clock(Arc::new(clock.clone()));
    let first = hosts(&r, "example.com");
    let asked = r.lookup().query_count();
    assert_eq!(asked, 9); // MX, then A and AAAA of four hosts
    assert_eq!(r.cached_answers(), 9);
    clock.advance(TTL - Duration::from_secs(1));
    let second = hosts(&r, "example.com");
    assert_eq!(r.lookup().query_count(), asked);
    assert_eq!(names(&second)[0], names(&first)[0]);
    clock.advance(Duration::from_secs(1));
    hosts(&r, "example.com");
    assert_eq!(r.lookup().query_count(), 2 * asked);
    r.clear_cache();
    assert_eq!(r.cached_answers(), 0);
}

#[test]
fn negative_answers_are_cached_temporary_failures_are_not() {
    let clock = ManualClock::new();
    let fake = Fake::default().mx_err("flaky.example", temp());
    let r = resolver(fake).with_clock(Arc::new(clock.clone()));
    permanent(550, (5, 1, 2))(&error(&r, "nosuch.example"));
    permanent(550, (5, 1, 2))(&error(&r, "nosuch.example"));
    assert_eq!(r.lookup().query_count(), 1);
    // The default negative TTL (no SOA in the answer) is 60 s.
    clock.advance(Duration::from_secs(60));
    permanent(550, (5, 1, 2))(&error(&r, "nosuch.example"));
    assert_eq!(r.lookup().query_count(), 2);

    temporary(451, (4, 4, 3))(&error(&r, "flaky.example"));
    temporary(451, (4, 4, 3))(&error(&r, "flaky.example"));
    assert_eq!(r.lookup().query_count(), 4);
}

#[test]
fn an_answer_without_records_counts_as_no_data() {
    let mut fake = Fake::default().a("empty-mx.example", &["192.0.2.4"]);
    fake.mx
        .insert("empty-mx.example".into(), Ok(Answer::new(Vec::new(), TTL)));
    let r = resolver(fake);
    assert_eq!(
        hosts(&r, "empty-mx.example"),
        vec![host("empty-mx.example", 0, &["192.0.2.4"])]
    );
}

#[test]
fn works_as_a_host_resolver_trait_object() {
    let fake = Fake::default()
        .mx("example.com", &[(10, "mx.example.com")])
        .a("mx.example.com", &["192.0.2.1"]);
    let r: Arc<dyn HostResolver> = Arc::new(resolver(fake));
    assert_eq!(
        block_on(r.mail_hosts("example.com")),
        Ok(vec![host("mx.example.com", 10, &["192.0.2.1"])])
    );
}
