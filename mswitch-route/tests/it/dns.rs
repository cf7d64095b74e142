//! MX routing against a real DNS server: dnsmasq on loopback (mswitch-testkit), asked through
//! the hickory back end.

#![cfg(feature = "dns")]

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mswitch_core::route::{HostResolver, MailHost, ResolveError};
use mswitch_core::status::EnhancedCode;
use mswitch_route::dns::{
    HickoryConfig, HickoryLookup, ManualClock, MxConfig, MxResolver, NameServers,
};
use mswitch_testkit::dnsmasq::{Dnsmasq, Record};
use mswitch_testkit::free_port;

/// The zone every test serves (documentation addresses: nothing connects to them).
fn zone() -> Vec<Record> {
    vec![
        // Three preference levels, two hosts at the middle one.
        Record::mx("example.test", 10, "mx1.example.test"),
        Record::mx("example.test", 20, "mx2a.example.test"),
        Record::mx("example.test", 20, "mx2b.example.test"),
        Record::mx("example.test", 30, "mx3.example.test"),
        Record::host("mx1.example.test", &["192.0.2.1", "2001:db8::1"]),
        Record::host("mx2a.example.test", &["192.0.2.21"]),
        Record::host("mx2b.example.test", &["192.0.2.22"]),
        Record::host("mx3.example.test", &["192.0.2.3"]),
        // RFC 7505.
        Record::null_mx("null.test"),
        // An MX exchange that is a CNAME.
        Record::mx("alias.test", 10, "cname.alias.test"),
        Record::cname("cname.alias.test", "mx1.example.test"),
        // No MX: the implicit MX.
        Record::host("nomx.test", &["192.0.2.5", "2001:db8::5"]),
        // Failing names.
        Record::servfail("fail.test"),
        Record::timeout("slow.test"),
        Record::mx("halfbroken.test", 10, "mx.fail.test"),
        Record::mx("halfbroken.test", 20, "mx3.example.test"),
        // This host (me.example.test) among the MX hosts.
        Record::mx("loop.test", 10, "mx1.example.test"),
        Record::mx("loop.test", 20, "me.example.test"),
        Record::mx("loop.test", 20, "mx2a.example.test"),
        Record::mx("loop.test", 30, "mx3.example.test"),
        Record::host("me.example.test", &["192.0.2.99"]),
        Record::mx("selfloop.test", 10, "me.example.test"),
        Record::mx("selfloop.test", 20, "mx3.example.test"),
    ]
}

fn start() -> Dnsmasq {
    Dnsmasq::start(free_port(), &zone())
}

fn lookup(dns: &Dnsmasq) -> HickoryLookup {
    let mut config = HickoryConfig::with_name_servers([dns.addr()]);
    config.timeout = Duration::from_millis(500);
    config.attempts = 1;
    assert_eq!(
        config.name_servers,
        NameServers::Addresses(vec![dns.addr()])
    );
    HickoryLookup::new(&config).expect("build the hickory resolver")
}

fn config() -> MxConfig {
    let mut config = MxConfig::default();
    config.seed = Some(7);
    config
}

fn resolver(dns: &Dnsmasq, config: MxConfig) -> MxResolver<HickoryLookup> {
    MxResolver::new(lookup(dns), config)
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

async fn hosts(r: &MxResolver<HickoryLookup>, domain: &str) -> Vec<MailHost> {
    match r.mail_hosts(domain).await {
        Ok(h) => h,
        Err(e) => panic!("mail_hosts({domain}): {e}"),
    }
}

async fn error(r: &MxResolver<HickoryLookup>, domain: &str) -> ResolveError {
    match r.mail_hosts(domain).await {
        Ok(h) => panic!("mail_hosts({domain}) gave {h:?}, expected an error"),
        Err(e) => e,
    }
}

fn assert_status(e: &ResolveError, permanent: bool, code: u16, enhanced: (u8, u16, u16)) {
    assert_eq!(
        matches!(e, ResolveError::Permanent(_)),
        permanent,
        "permanent? {e:?}"
    );
    assert_eq!(
        (e.status().code, e.status().enhanced),
        (code, EnhancedCode::new(enhanced.0, enhanced.1, enhanced.2)),
        "{e}"
    );
}

#[tokio::test]
async fn mx_hosts_by_preference_equal_ones_in_random_order() {
    let dns = start();
    let r = resolver(&dns, config());
    let mut middles = BTreeSet::new();
    for _ in 0..16 {
        let h = hosts(&r, "example.test").await;
        assert_eq!(h.len(), 4, "{h:?}");
        assert_eq!(
            h[0],
            host("mx1.example.test", 10, &["2001:db8::1", "192.0.2.1"])
        );
        let middle: BTreeSet<MailHostKey> = h[1..3].iter().map(key).collect();
        assert_eq!(
            middle,
            BTreeSet::from([
                ("mx2a.example.test".into(), 20, vec![ip("192.0.2.21")]),
                ("mx2b.example.test".into(), 20, vec![ip("192.0.2.22")]),
            ])
        );
        assert_eq!(h[3], host("mx3.example.test", 30, &["192.0.2.3"]));
        middles.insert(h[1].name.clone());
    }
    assert_eq!(
        middles,
        BTreeSet::from(["mx2a.example.test".into(), "mx2b.example.test".into()])
    );
}

type MailHostKey = (String, u16, Vec<IpAddr>);

fn key(h: &MailHost) -> MailHostKey {
    (h.name.clone(), h.preference, h.addresses.clone())
}

#[tokio::test]
async fn null_mx_is_refused_556_5_1_10() {
    let dns = start();
    let r = resolver(&dns, config());
    let e = error(&r, "null.test").await;
    assert_status(&e, true, 556, (5, 1, 10));
    assert_eq!(
        e.status().text,
        "domain null.test does not accept mail (null MX, RFC 7505)"
    );
}

#[tokio::test]
async fn mx_exchange_that_is_a_cname_is_followed() {
    let dns = start();
    let r = resolver(&dns, config());
    assert_eq!(
        hosts(&r, "alias.test").await,
        vec![host("cname.alias.test", 10, &["2001:db8::1", "192.0.2.1"])]
    );
}

#[tokio::test]
async fn no_mx_falls_back_to_a_and_aaaa() {
    let dns = start();
    let r = resolver(&dns, config());
    assert_eq!(
        hosts(&r, "nomx.test").await,
        vec![host("nomx.test", 0, &["2001:db8::5", "192.0.2.5"])]
    );
    // An MX host name without MX records of its own is also an implicit MX.
    assert_eq!(
        hosts(&r, "MX3.Example.Test.").await,
        vec![host("mx3.example.test", 0, &["192.0.2.3"])]
    );
}

#[tokio::test]
async fn missing_domain_is_refused_550_5_1_2() {
    let dns = start();
    let r = resolver(&dns, config());
    let e = error(&r, "nosuch.test").await;
    assert_status(&e, true, 550, (5, 1, 2));
    assert_eq!(
        e.status().text,
        "domain nosuch.test does not exist (NXDOMAIN)"
    );
}

#[tokio::test]
async fn servfail_is_temporary_451_4_4_3() {
    let dns = start();
    let r = resolver(&dns, config());
    let e = error(&r, "fail.test").await;
    assert_status(&e, false, 451, (4, 4, 3));
    assert!(
        e.status()
            .text
            .starts_with("MX lookup for fail.test failed: "),
        "{e}"
    );
    // An MX host whose addresses SERVFAIL is skipped; the next one is used.
    assert_eq!(
        hosts(&r, "halfbroken.test").await,
        vec![host("mx3.example.test", 20, &["192.0.2.3"])]
    );
    // Failures are not cached: the server is asked again.
    let before = dns.queries();
    assert_status(&error(&r, "fail.test").await, false, 451, (4, 4, 3));
    assert!(dns.queries() > before, "{}", dns.log());
}

#[tokio::test]
async fn unanswered_query_is_temporary_451_4_4_3() {
    let dns = start();
    let r = resolver(&dns, config());
    let started = Instant::now();
    let e = error(&r, "slow.test").await;
    assert_status(&e, false, 451, (4, 4, 3));
    // One attempt of 500 ms: not the default 2 × 5 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn own_name_dropped_with_equal_and_worse_preferences() {
    let dns = start();
    let mut c = config();
    c.local_names = vec!["ME.example.test".into()];
    let r = resolver(&dns, c);
    assert_eq!(
        hosts(&r, "loop.test").await,
        vec![host("mx1.example.test", 10, &["2001:db8::1", "192.0.2.1"])]
    );
    let e = error(&r, "selfloop.test").await;
    assert_status(&e, true, 554, (5, 4, 6));

    // The same by address.
    let mut c = config();
    c.local_addresses = vec![ip("192.0.2.99")];
    let r = resolver(&dns, c);
    assert_eq!(
        hosts(&r, "loop.test").await,
        vec![host("mx1.example.test", 10, &["2001:db8::1", "192.0.2.1"])]
    );
    assert_status(&error(&r, "selfloop.test").await, true, 554, (5, 4, 6));
}

#[tokio::test]
async fn cached_answers_outlive_the_server_until_their_ttl() {
    let mut dns = start();
    let clock = ManualClock::new();
    let r = resolver(&dns, config()).with_clock(Arc::new(clock.clone()));
    let expected = vec![host("cname.alias.test", 10, &["2001:db8::1", "192.0.2.1"])];
    assert_eq!(hosts(&r, "alias.test").await, expected);
    let asked = dns.queries();
    assert_eq!(hosts(&r, "alias.test").await, expected);
    assert_eq!(dns.queries(), asked, "a cache hit asks nothing");

    dns.stop();
    clock.advance(Duration::from_secs(59));
    assert_eq!(hosts(&r, "alias.test").await, expected);

    // The zone's TTL is 60 s: then the server is needed again, and it is gone.
    clock.advance(Duration::from_secs(1));
    assert_status(&error(&r, "alias.test").await, false, 451, (4, 4, 3));
}

#[tokio::test]
async fn host_addresses_of_a_configured_host() {
    let dns = start();
    let r: Arc<dyn HostResolver> = Arc::new(resolver(&dns, config()));
    assert_eq!(
        r.host_addresses("mx1.example.test").await,
        Ok(vec![ip("2001:db8::1"), ip("192.0.2.1")])
    );
    assert_eq!(
        r.host_addresses("cname.alias.test").await,
        Ok(vec![ip("2001:db8::1"), ip("192.0.2.1")])
    );
    let e = r
        .host_addresses("nosuch.test")
        .await
        .expect_err("no such host");
    assert_status(&e, false, 451, (4, 4, 4));
    let e = r
        .host_addresses("mx.fail.test")
        .await
        .expect_err("SERVFAIL");
    assert_status(&e, false, 451, (4, 4, 3));
}
