//! The AgentX subagent (`[snmp]`) registered with net-snmp's snmpd as the master agent, read
//! with `snmpwalk` over SNMPv2c while mail goes through the daemon: the mtaTable and
//! mtaGroupTable of the MTA-MIB (RFC 2789) and the applTable of the NETWORK-SERVICES-MIB
//! (RFC 2788), and a new session after the master restarts.
//!
//! Needs `snmpd` and `snmp` (the testkit installs them when run as root).

use std::time::Duration;

use mswitch_testkit::snmpd::Snmpd;
use mswitch_testkit::{free_port, wait_until};

use crate::common::Daemon;
use crate::delivery::{message, send};

const MTA_TABLE: &str = "1.3.6.1.2.1.28.1";
const GROUP_TABLE: &str = "1.3.6.1.2.1.28.2";
const APPL_TABLE: &str = "1.3.6.1.2.1.27.1";
const SYS_UPTIME: &str = "1.3.6.1.2.1.1.3.0";

/// How long the subagent may take to (re)register and the figures to settle.
const SETTLE: Duration = Duration::from_secs(30);

/// A switch for `local.test` (Maildir) that relays for loopback clients to a smarthost nobody
/// listens on, registered with the master at `agentx`.
fn config(port: u16, agentx: &str) -> String {
    let nowhere = free_port();
    format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = ["local.test"]
local_channel = "local"
trusted_networks = ["127.0.0.0/8"]
smarthost = "127.0.0.1:{nowhere}"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"

[[channel]]
name = "out"
type = "smtp"
tls = "none"

[snmp]
agentx = "{agentx}"
"#
    )
}

/// Walks `oid` until the output is `expected` (after `normalize`), and returns it; panics with
/// the last walk and the expectation after [`SETTLE`].
fn walk_until_equal(
    snmpd: &Snmpd,
    oid: &str,
    expected: &str,
    normalize: impl Fn(&str) -> String,
) -> String {
    let mut last = String::new();
    let found = wait_until(SETTLE, || {
        let w = snmpd.walk(oid);
        if normalize(&w) == expected {
            return Some(w);
        }
        last = w;
        None
    });
    found.unwrap_or_else(|| {
        panic!(
            "walk of {oid} after {SETTLE:?}:\n{last}\nnormalized:\n{}\nexpected:\n{expected}",
            normalize(&last)
        )
    })
}

/// The value in `walk` of `oid` (`TYPE: value`), if it is there.
fn value<'a>(walk: &'a str, oid: &str) -> Option<&'a str> {
    let prefix = format!(".{oid} = ");
    walk.lines().find_map(|l| l.strip_prefix(&prefix))
}

/// The ticks of a `Timeticks: (N) ...` value.
fn ticks(v: &str) -> u64 {
    v.strip_prefix("Timeticks: (")
        .and_then(|r| r.split(')').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not TimeTicks: {v:?}"))
}

/// The sizes of the messages the daemon received, from its "received" log lines.
fn received_sizes(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(" received ") || l.ends_with(" received"))
        .filter(|l| l.contains("queue_id="))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("size="))
                .and_then(|n| n.parse().ok())
        })
        .collect()
}

fn kilo(octets: u64) -> u64 {
    octets.div_ceil(1024)
}

/// The mtaTable row as snmpwalk prints it.
#[allow(clippy::too_many_arguments)]
fn mta_row(
    received: u64,
    stored: u64,
    transmitted: u64,
    received_kb: u64,
    stored_kb: u64,
    transmitted_kb: u64,
    received_rcpts: u64,
    stored_rcpts: u64,
    transmitted_rcpts: u64,
) -> String {
    format!(
        ".1.3.6.1.2.1.28.1.1.1.1 = Counter32: {received}
.1.3.6.1.2.1.28.1.1.2.1 = Gauge32: {stored}
.1.3.6.1.2.1.28.1.1.3.1 = Counter32: {transmitted}
.1.3.6.1.2.1.28.1.1.4.1 = Counter32: {received_kb}
.1.3.6.1.2.1.28.1.1.5.1 = Gauge32: {stored_kb}
.1.3.6.1.2.1.28.1.1.6.1 = Counter32: {transmitted_kb}
.1.3.6.1.2.1.28.1.1.7.1 = Counter32: {received_rcpts}
.1.3.6.1.2.1.28.1.1.8.1 = Gauge32: {stored_rcpts}
.1.3.6.1.2.1.28.1.1.9.1 = Counter32: {transmitted_rcpts}
"
    )
}

#[test]
fn the_mta_mib_is_served_through_snmpd_and_survives_a_master_restart() {
    let (port, agentx_port, snmp_port) = (free_port(), free_port(), free_port());
    let mut snmpd = Snmpd::start(agentx_port, snmp_port);
    let daemon = Daemon::start(&config(port, &snmpd.agentx_address()), &[port]);

    // Registered: the row is there, every figure at zero.
    walk_until_equal(
        &snmpd,
        MTA_TABLE,
        &mta_row(0, 0, 0, 0, 0, 0, 0, 0, 0),
        str::to_owned,
    );
    assert!(
        daemon.wait_for_log(
            &[
                "agentx: registered with the master agent",
                "registrations=3"
            ],
            1,
            SETTLE
        ),
        "{}",
        daemon.log()
    );

    // Three messages to a local Maildir: received, transmitted, not stored.
    for i in 0..3 {
        send(
            port,
            "someone@client.test",
            &["bob@local.test"],
            &message(
                "someone@client.test",
                "bob@local.test",
                &format!("snmp {i}"),
            ),
        );
    }
    assert!(
        daemon.wait_for_log(&["delivery", "status=\"delivered\""], 3, SETTLE),
        "{}",
        daemon.log()
    );
    let sizes = received_sizes(&daemon.log());
    assert_eq!(sizes.len(), 3, "{}", daemon.log());
    let kb3 = kilo(sizes.iter().sum());
    let walk = walk_until_equal(
        &snmpd,
        MTA_TABLE,
        &mta_row(3, 0, 3, kb3, 0, kb3, 3, 0, 3),
        str::to_owned,
    );
    assert_eq!(value(&walk, "1.3.6.1.2.1.28.1.1.1.1"), Some("Counter32: 3"));
    // GetBulk through the master gives the same row.
    assert_eq!(snmpd.bulkwalk(MTA_TABLE), walk);

    // One message for a smarthost that refuses connections: deferred, so stored.
    send(
        port,
        "someone@client.test",
        &["carol@far.example"],
        &message("someone@client.test", "carol@far.example", "snmp far"),
    );
    assert!(
        daemon.wait_for_log(&["delivery", "status=\"deferred\""], 1, SETTLE),
        "{}",
        daemon.log()
    );
    let sizes = received_sizes(&daemon.log());
    assert_eq!(sizes.len(), 4, "{}", daemon.log());
    let (kb4, kb_far) = (kilo(sizes.iter().sum()), kilo(sizes[3]));
    let walk = walk_until_equal(
        &snmpd,
        MTA_TABLE,
        &mta_row(4, 1, 3, kb4, kb_far, kb3, 4, 1, 3),
        str::to_owned,
    );
    assert_eq!(value(&walk, "1.3.6.1.2.1.28.1.1.2.1"), Some("Gauge32: 1"));

    // The groups: the listener (1), the Maildir channel (2), the SMTP channel (3). Connections
    // admitted: the harness's readiness probe and the four sessions. The age of the oldest
    // stored message changes from walk to walk: checked apart.
    let groups = format!(
        r#".1.3.6.1.2.1.28.2.1.2.1.1 = Counter32: 4
.1.3.6.1.2.1.28.2.1.4.1.2 = Gauge32: 0
.1.3.6.1.2.1.28.2.1.4.1.3 = Gauge32: 1
.1.3.6.1.2.1.28.2.1.5.1.2 = Counter32: 3
.1.3.6.1.2.1.28.2.1.5.1.3 = Counter32: 0
.1.3.6.1.2.1.28.2.1.6.1.1 = Counter32: {kb4}
.1.3.6.1.2.1.28.2.1.7.1.2 = Gauge32: 0
.1.3.6.1.2.1.28.2.1.7.1.3 = Gauge32: {kb_far}
.1.3.6.1.2.1.28.2.1.8.1.2 = Counter32: {kb3}
.1.3.6.1.2.1.28.2.1.8.1.3 = Counter32: 0
.1.3.6.1.2.1.28.2.1.9.1.1 = Counter32: 4
.1.3.6.1.2.1.28.2.1.10.1.2 = Gauge32: 0
.1.3.6.1.2.1.28.2.1.10.1.3 = Gauge32: 1
.1.3.6.1.2.1.28.2.1.11.1.2 = Counter32: 3
.1.3.6.1.2.1.28.2.1.11.1.3 = Counter32: 0
.1.3.6.1.2.1.28.2.1.12.1.2 = INTEGER: 0
.1.3.6.1.2.1.28.2.1.12.1.3 = INTEGER: AGE
.1.3.6.1.2.1.28.2.1.13.1.1 = Gauge32: 0
.1.3.6.1.2.1.28.2.1.14.1.3 = Gauge32: 0
.1.3.6.1.2.1.28.2.1.15.1.1 = Counter32: 5
.1.3.6.1.2.1.28.2.1.20.1.3 = Counter32: 1
.1.3.6.1.2.1.28.2.1.24.1.1 = OID: .1.3.6.1.2.1.27.4.25
.1.3.6.1.2.1.28.2.1.24.1.3 = OID: .1.3.6.1.2.1.27.4.25
.1.3.6.1.2.1.28.2.1.25.1.1 = STRING: "mx"
.1.3.6.1.2.1.28.2.1.25.1.2 = STRING: "local"
.1.3.6.1.2.1.28.2.1.25.1.3 = STRING: "out"
.1.3.6.1.2.1.28.2.1.28.1.1 = STRING: "SMTP relay listener on 127.0.0.1:{port}"
.1.3.6.1.2.1.28.2.1.28.1.2 = STRING: "Maildir delivery channel"
.1.3.6.1.2.1.28.2.1.28.1.3 = STRING: "SMTP channel"
.1.3.6.1.2.1.28.2.1.31.1.1 = INTEGER: -1
.1.3.6.1.2.1.28.2.1.31.1.2 = INTEGER: -2
.1.3.6.1.2.1.28.2.1.31.1.3 = INTEGER: -2
"#
    );
    let age_line = ".1.3.6.1.2.1.28.2.1.12.1.3 = INTEGER: ";
    let hide_age = |w: &str| {
        w.lines()
            .map(|l| match l.strip_prefix(age_line) {
                Some(_) => format!("{age_line}AGE\n"),
                None => format!("{l}\n"),
            })
            .collect::<String>()
    };
    let walk = walk_until_equal(&snmpd, GROUP_TABLE, &groups, hide_age);
    let age: i64 = value(&walk, "1.3.6.1.2.1.28.2.1.12.1.3")
        .and_then(|v| v.strip_prefix("INTEGER: "))
        .and_then(|v| v.parse().ok())
        .expect("the oldest message's age");
    assert!(
        (1..SETTLE.as_millis() as i64 / 10 * 4).contains(&age),
        "age of the deferred message in hundredths: {age}"
    );

    // applTable: the name, the version, up, started after the master did.
    let appl = snmpd.walk(APPL_TABLE);
    let expect = |oid: &str, v: &str| {
        assert_eq!(value(&appl, oid), Some(v), "{oid} in\n{appl}");
    };
    expect("1.3.6.1.2.1.27.1.1.2.1", "STRING: \"mswitchd\"");
    expect("1.3.6.1.2.1.27.1.1.3.1", "\"\"");
    expect(
        "1.3.6.1.2.1.27.1.1.4.1",
        &format!("STRING: \"{}\"", env!("CARGO_PKG_VERSION")),
    );
    expect("1.3.6.1.2.1.27.1.1.6.1", "INTEGER: 1");
    expect("1.3.6.1.2.1.27.1.1.8.1", "Gauge32: 0");
    expect("1.3.6.1.2.1.27.1.1.9.1", "Gauge32: 0");
    expect("1.3.6.1.2.1.27.1.1.10.1", "Counter32: 5");
    expect("1.3.6.1.2.1.27.1.1.15.1", "Counter32: 1");
    expect(
        "1.3.6.1.2.1.27.1.1.16.1",
        "STRING: \"mswitch mail transfer agent on switch.test\"",
    );
    assert_eq!(appl.lines().count(), 11, "{appl}");
    let uptime = value(&appl, "1.3.6.1.2.1.27.1.1.5.1").expect("applUptime");
    assert_eq!(
        value(&appl, "1.3.6.1.2.1.27.1.1.7.1"),
        Some(uptime),
        "applLastChange is applUptime (up since it started)"
    );
    let now = snmpd.get(SYS_UPTIME);
    let now = ticks(now.split(" = ").nth(1).unwrap_or_default().trim());
    assert!(
        (1..=now).contains(&ticks(uptime)),
        "the switch started ({uptime}) after the master, before now ({now})"
    );

    // The master goes away and comes back: the subagent opens a new session and registers
    // again; the switch now started before the master, so applUptime is 0.
    snmpd.restart();
    walk_until_equal(
        &snmpd,
        MTA_TABLE,
        &mta_row(4, 1, 3, kb4, kb_far, kb3, 4, 1, 3),
        str::to_owned,
    );
    let appl = snmpd.walk(APPL_TABLE);
    assert_eq!(
        value(&appl, "1.3.6.1.2.1.27.1.1.5.1"),
        Some("Timeticks: (0) 0:00:00.00"),
        "{appl}"
    );
    let log = daemon.log();
    assert!(
        log.contains("agentx: no session with the master agent; reconnecting"),
        "{log}"
    );
    assert_eq!(
        log.matches("agentx: registered with the master agent")
            .count(),
        2,
        "{log}"
    );
}
