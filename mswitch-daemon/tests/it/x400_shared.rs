//! One RFC 1006 port for P1 and P3 (`p3_listen` = `listen`): a user agent binds and submits on
//! the port a peer MTA transfers to over P1, and takes the deliveries of both on its
//! association; binds are still checked on each side; junk on the port is dropped with a
//! warning naming the peer.

use std::time::Duration;

use mswitch_testkit::free_port;
use mswitch_x400::driver::{P3Client, P3DriverError, P3Outcome};
use mswitch_x400::p3::types::RawValue;
use mswitch_x400::p3::{ObjectName, P3Operation, P3Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::Daemon;
use crate::x400_p3::{A_ORIG, UA_PASSWORD, bind_as, submission};

const T_SENDER: &str = "/C=GB/ADMD= /PRMD=PRMD-T/O=T/S=Sender/";
const PEER_PASSWORD: &str = "secret-t";

/// One instance: P1 and P3 on `port`; its `O=Ex` delivered by the `p3` channel, the rest of
/// its domain refused; the test plays the peer MTA `test-mta`.
fn config(port: u16) -> String {
    format!(
        r#"[server]
hostname = "a.x400.test"

[queue]
path = "queue"
retry_first = "1s"
retry_max = "2s"

[x400]
mta_name = "mta-a"
country = "GB"
admd = " "
prmd = "PRMD-A"
password = "secret-a"
listen = "127.0.0.1:{port}"
p3_listen = "127.0.0.1:{port}"
idle_timeout = "30s"

[[x400.user]]
address = "{A_ORIG}"
password = "{UA_PASSWORD}"

[[x400.peer]]
name = "test-mta"
address = "127.0.0.1:9"
password = "{PEER_PASSWORD}"

[[channel]]
name = "p3"
type = "p3"

[[x400_tree]]
name = "local"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-A/"
action = "refuse"

[[x400_tree.route]]
match = "/C=GB/ADMD= /PRMD=PRMD-A/O=Ex/"
action = "local"
channel = "p3"
"#
    )
}

async fn bind_ua(port: u16, password: &str) -> Result<P3Client, P3DriverError> {
    bind_as(port, A_ORIG, password).await
}

/// The next message delivery on the user agent's association, answered; its content.
fn next_delivery(rt: &tokio::runtime::Runtime, ua: &mut P3Client, a: &Daemon) -> Vec<u8> {
    let (invoke_id, op) = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(30), ua.next_invocation()).await
        })
        .unwrap_or_else(|_| panic!("no delivery within 30 s; log:\n{}", a.log()))
        .unwrap_or_else(|e| panic!("no delivery ({e}); log:\n{}", a.log()));
    let P3Operation::MessageDelivery(d) = op else {
        panic!("expected a message delivery: {op:?}");
    };
    rt.block_on(ua.reply_result(invoke_id, P3Result::MessageDelivery(RawValue::empty_set())))
        .expect("answer the delivery");
    d.content
}

#[test]
fn x400_p1_and_p3_share_one_rfc1006_listener() {
    let port = free_port();
    let a = Daemon::start(&config(port), &[port]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");

    // P3 on the P1 port: a wrong password is refused by the P3 responder, the right one binds.
    let refused = rt.block_on(bind_ua(port, "wrong"));
    assert!(
        matches!(
            refused,
            Err(P3DriverError::BindRefused {
                transient: false,
                ..
            })
        ),
        "{:?}",
        refused.err()
    );
    let mut ua = rt
        .block_on(bind_ua(port, UA_PASSWORD))
        .unwrap_or_else(|e| panic!("the user agent binds ({e}); log:\n{}", a.log()));
    assert_eq!(
        ua.bind_result().responder_name,
        ObjectName::Mta("mta-a".into())
    );

    // A submission to itself: the result, then the delivery on the same association.
    let outcome = rt
        .block_on(ua.submit(submission(A_ORIG, &[A_ORIG], b"submitted over P3")))
        .expect("an answer");
    assert!(
        matches!(&outcome, P3Outcome::Result(P3Result::MessageSubmission(_))),
        "{outcome:?}"
    );
    assert_eq!(next_delivery(&rt, &mut ua, &a), b"submitted over P3");

    // P1 on the same port while the user agent is bound: a peer MTA transfers a message,
    // which the user agent gets.
    crate::x400::transfer(
        port,
        PEER_PASSWORD,
        &[crate::x400::message(
            "shared-1",
            T_SENDER,
            &[A_ORIG],
            b"transferred over P1",
        )],
    )
    .unwrap_or_else(|e| panic!("P1 transfer on the shared port ({e}); log:\n{}", a.log()));
    assert_eq!(next_delivery(&rt, &mut ua, &a), b"transferred over P1");
    // The P1 responder still checks the MTA bind.
    let wrong = crate::x400::transfer(port, "wrong", &[]);
    assert!(wrong.is_err(), "a wrong P1 password binds");

    // Junk: dropped with a warning naming the peer; the port serves on.
    let junk_from = rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let local = s.local_addr().expect("local address");
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.expect("write");
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
        local
    });
    let logged = mswitch_testkit::wait_until(Duration::from_secs(10), || {
        let log = a.log();
        log.lines()
            .any(|l| {
                l.contains("WARN")
                    && l.contains("RFC 1006 connection dropped")
                    && l.contains(&junk_from.to_string())
            })
            .then_some(())
    });
    assert!(
        logged.is_some(),
        "no warning for the junk; log:\n{}",
        a.log()
    );
    crate::x400::transfer(
        port,
        PEER_PASSWORD,
        &[crate::x400::message(
            "shared-2",
            T_SENDER,
            &[A_ORIG],
            b"after the junk",
        )],
    )
    .unwrap_or_else(|e| panic!("P1 transfer after the junk ({e}); log:\n{}", a.log()));
    assert_eq!(next_delivery(&rt, &mut ua, &a), b"after the junk");

    rt.block_on(ua.release()).expect("release");
}
