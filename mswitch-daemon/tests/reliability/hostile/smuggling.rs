//! SMTP smuggling (CVE-2023-51764 class) through a running switch, both ways.
//!
//! Inbound: every end-of-data look-alike (bare LF or CR around the dot, NUL around the dot),
//! followed by a smuggled transaction, alone and pipelined with a real second transaction: no
//! second message is ever queued. Outbound: content holding the same look-alikes (taken in
//! through BDAT, which carries octets verbatim) leaves the switch with only CRLF line ends,
//! dot-stuffed, to a downstream (Postfix's `smtp-sink`) that, like many servers, takes a bare
//! LF for a line end: it receives exactly one message.

use std::time::Duration;

use mswitch_testkit::free_port;
use mswitch_testkit::postfix::SmtpSink;

use super::{Raw, WAIT, recorder};
use crate::common::Daemon;

/// `local.test` to Maildir; `remote.test` to 127.0.0.1:`out_port` (a local route: accepted
/// from anyone); nobody may relay.
fn config(port: u16, out_port: u16) -> String {
    format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"
retry_first = "1s"
retry_max = "2s"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = ["local.test"]
local_channel = "local"

[[route]]
domain = "remote.test"
channel = "out"
host = "127.0.0.1:{out_port}"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"

[[channel]]
name = "out"
type = "smtp"
tls = "none"
connection_idle = "off"
"#
    )
}

/// Each is something some server once took for the end of data.
const VARIANTS: &[&[u8]] = &[
    b"\n.\n",
    b"\r.\r",
    b"\r\n.\n",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n.\r",
    b"\n\r.\r\n",
    b"\r\n.\r\r\n",
    b"\r\n\0.\r\n",
    b"\r\n.\0\r\n",
    b"\r\n\0.\0\r\n",
];

fn has_bare_line_ending(s: &[u8]) -> bool {
    s.iter().enumerate().any(|(i, &b)| {
        (b == b'\r' && s.get(i + 1) != Some(&b'\n'))
            || (b == b'\n' && (i == 0 || s[i - 1] != b'\r'))
    })
}

/// The smuggled transaction: for victim@local.test, "from" the local CEO.
fn smuggled(n: usize) -> String {
    format!(
        "MAIL FROM:<ceo@local.test>\r\nRCPT TO:<victim@local.test>\r\nDATA\r\n\
         From: <ceo@local.test>\r\nSubject: smuggled {n}\r\n\r\npay now\r\n"
    )
}

fn first(n: usize) -> Vec<u8> {
    format!(
        "From: <attacker@evil.example>\r\nTo: <bob@local.test>\r\nSubject: variant {n}\r\n\r\nhello"
    )
    .into_bytes()
}

#[test]
fn inbound_end_of_data_look_alikes_never_create_a_second_message() {
    let port = free_port();
    let daemon = Daemon::start(&config(port, free_port()), &[port]);
    let mut accepted_first = 0;
    let mut c = Raw::connect(port);
    c.expect("EHLO attacker.example", 250);
    for (n, v) in VARIANTS.iter().enumerate() {
        let refused = has_bare_line_ending(v);
        // Alone: the look-alike and the smuggled commands, then a pause in which a vulnerable
        // server would have answered the first message and the smuggled commands.
        c.expect("MAIL FROM:<attacker@evil.example>", 250);
        c.expect("RCPT TO:<bob@local.test>", 250);
        c.expect("DATA", 354);
        let mut wire = first(n);
        wire.extend_from_slice(v);
        wire.extend_from_slice(smuggled(n).as_bytes());
        c.send(&wire);
        let early = c.try_reply(Duration::from_millis(700));
        assert!(
            early.is_none(),
            "variant {n} {v:?} ended the data: {early:?}\n{}",
            c.transcript
        );
        c.send(b".\r\n");
        let end = c.reply();
        if refused {
            assert_eq!(end.status(), "550 5.5.2", "variant {n} {v:?}: {}", end.text);
        } else {
            assert_eq!(end.code, 250, "variant {n} {v:?}: {}", end.text);
            accepted_first += 1;
        }
        // Pipelined: the same, its real end and a second, genuine transaction, in one write.
        c.expect("MAIL FROM:<attacker@evil.example>", 250);
        c.expect("RCPT TO:<bob@local.test>", 250);
        c.expect("DATA", 354);
        let mut wire = first(n);
        wire.extend_from_slice(v);
        wire.extend_from_slice(smuggled(n).as_bytes());
        wire.extend_from_slice(
            b".\r\nMAIL FROM:<second@client.test>\r\nRCPT TO:<carol@local.test>\r\nDATA\r\n",
        );
        c.send(&wire);
        let end = c.reply();
        if refused {
            assert_eq!(
                end.status(),
                "550 5.5.2",
                "pipelined {n} {v:?}: {}",
                end.text
            );
        } else {
            assert_eq!(end.code, 250, "pipelined {n} {v:?}: {}", end.text);
            accepted_first += 1;
        }
        assert_eq!(c.reply().code, 250, "{}", c.transcript);
        assert_eq!(c.reply().code, 250, "{}", c.transcript);
        assert_eq!(c.reply().code, 354, "{}", c.transcript);
        c.send(format!("Subject: second {n}\r\n\r\ngenuine\r\n.\r\n").as_bytes());
        assert_eq!(c.reply().code, 250, "second {n}: {}", c.transcript);
    }
    c.expect("QUIT", 221);
    let total = accepted_first + VARIANTS.len();
    assert!(
        daemon.wait_for_log(&["delivery", "status=\"delivered\""], total, WAIT),
        "{total} deliveries expected"
    );
    // Every genuine second message arrived, and the first messages of the NUL variants (with
    // the smuggled commands inside them as text); no smuggled message anywhere.
    assert_eq!(
        daemon.maildir_messages("carol", "local.test").len(),
        VARIANTS.len()
    );
    let firsts = daemon.maildir_messages("bob", "local.test");
    assert_eq!(firsts.len(), accepted_first);
    assert_eq!(accepted_first, 6, "the three NUL variants, twice each");
    for f in &firsts {
        let text = std::fs::read(f).expect("read a message");
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("RCPT TO:<victim@local.test>"), "{text}");
    }
    assert!(daemon.maildir_messages("victim", "local.test").is_empty());
    std::thread::sleep(Duration::from_secs(1));
    let log = daemon.log();
    assert_eq!(log.matches(" received").count(), total, "{log}");
    assert!(
        !log.contains("victim@local.test"),
        "the smuggled RCPT ran:\n{log}"
    );
}

#[test]
fn outbound_content_never_carries_an_end_of_data_look_alike() {
    let (port, sink_port, rec_port) = (free_port(), free_port(), free_port());
    let sink = SmtpSink::start(sink_port, &[]);
    let wire = recorder(rec_port, sink_port);
    let daemon = Daemon::start(&config(port, rec_port), &[port]);
    // BDAT takes its octets verbatim: the message holds every look-alike, and a genuine
    // <CRLF>.<CRLF> followed by a smuggled transaction.
    let mut content =
        b"From: <a@client.test>\r\nTo: <rcpt@remote.test>\r\nSubject: out\r\n\r\n".to_vec();
    for (n, v) in VARIANTS.iter().enumerate() {
        content.extend_from_slice(format!("line {n}").as_bytes());
        content.extend_from_slice(v);
        content.extend_from_slice(
            format!("MAIL FROM:<ceo{n}@remote.test>\r\nRCPT TO:<victim@remote.test>\r\nDATA\r\n")
                .as_bytes(),
        );
    }
    content.extend_from_slice(b"tail\r\n.\r\nMAIL FROM:<ceo@remote.test>\r\nRCPT TO:<victim@remote.test>\r\nDATA\r\nsmuggled\r\n.\r\nlast line\r\n");
    let mut c = Raw::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<a@client.test>", 250);
    c.expect("RCPT TO:<rcpt@remote.test>", 250);
    c.send(format!("BDAT {} LAST\r\n", content.len()).as_bytes());
    c.send(&content);
    let end = c.reply();
    assert_eq!(end.code, 250, "{}", c.transcript);
    c.expect("QUIT", 221);
    assert!(
        daemon.wait_for_log(&["delivery", "status=\"sent\""], 1, WAIT),
        "relayed to the sink"
    );
    // What the switch wrote: only CRLF line ends, and one end of data.
    let sent = wire.lock().expect("recording").clone();
    assert!(
        !has_bare_line_ending(&sent),
        "a bare CR or LF on the wire: {:?}",
        String::from_utf8_lossy(&sent)
    );
    let ends = sent.windows(5).filter(|w| w == b"\r\n.\r\n").count();
    assert_eq!(ends, 1, "{:?}", String::from_utf8_lossy(&sent));
    // The lenient sink saw one message, with the smuggled lines inside it.
    std::thread::sleep(Duration::from_secs(1));
    let got = sink.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    let text = String::from_utf8_lossy(&got[0]);
    assert!(
        text.contains("smuggled") && text.contains("last line"),
        "{text}"
    );
    // Its envelope (smtp-sink's X- lines): the one sender and the one recipient.
    let envelope: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("X-Mail-Args:") || l.starts_with("X-Rcpt-Args:"))
        .collect();
    assert_eq!(
        envelope,
        [
            "X-Mail-Args: <a@client.test>",
            "X-Rcpt-Args: <rcpt@remote.test>"
        ],
        "the sink saw a smuggled recipient: {text}"
    );
}
