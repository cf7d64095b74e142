//! Injection into the queue, the logs and the messages through the envelope: ORCPT, ENVID,
//! AUTH=, HELO and addresses carrying CR, LF, NUL or other control characters are refused, and
//! nothing a client sends ever starts another log line, another header field or another
//! command parameter downstream.

use std::time::Duration;

use mswitch_testkit::free_port;
use mswitch_testkit::postfix::SmtpSink;

use super::{Raw, WAIT, message, raw_control_lines};
use crate::common::Daemon;

fn config(port: u16, sink: u16, bounce: u16, log_format: &str) -> String {
    format!(
        r#"[server]
hostname = "switch.test"
log_format = "{log_format}"

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
host = "127.0.0.1:{sink}"

[[route]]
domain = "bounce.test"
channel = "out"
host = "127.0.0.1:{bounce}"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"

[[channel]]
name = "out"
type = "smtp"
tls = "none"
"#
    )
}

/// MAIL commands (after EHLO) whose envelope values decode to control characters.
const MAIL: &[&[u8]] = &[
    b"MAIL FROM:<a@client.test> ENVID=abc+0D+0AX-Injected:+20yes",
    b"MAIL FROM:<a@client.test> ENVID=abc+0Dx",
    b"MAIL FROM:<a@client.test> ENVID=abc+00x",
    b"MAIL FROM:<a@client.test> ENVID=abc+1Bx",
    b"MAIL FROM:<a@client.test> ENVID=abc+7Fx",
    b"MAIL FROM:<a@client.test> AUTH=<x+0D+0Ay@client.test>",
    b"MAIL FROM:<a@client.test> AUTH=x+0A@client.test",
    b"MAIL FROM:<a\0b@client.test>",
    b"MAIL FROM:<a\x01b@client.test>",
    b"MAIL FROM:<\"a\x01b\"@client.test>",
    b"MAIL FROM:<\"a\\\x01b\"@client.test>",
    b"MAIL FROM:<a@client\x7f.test>",
    b"MAIL FROM:<a\xc2\x85b@client.test> SMTPUTF8",
    b"MAIL FROM:<a@client.test>\nRCPT TO:<victim@local.test>",
    b"MAIL FROM:<a@client.test>\rX",
];

/// RCPT commands (after a good MAIL).
const RCPT: &[&[u8]] = &[
    b"RCPT TO:<bob@local.test> ORCPT=rfc822;bob+0D+0AX-Injected:+20yes@local.test",
    b"RCPT TO:<bob@local.test> ORCPT=rfc822;bob+00@local.test",
    b"RCPT TO:<bob@local.test> ORCPT=utf-8;bob\\x{D}\\x{A}X@local.test",
    b"RCPT TO:<bob@local.test> ORCPT=utf-8;bob\\x{85}@local.test",
    b"RCPT TO:<bob\0@local.test>",
    b"RCPT TO:<\"bob\x0b\"@local.test>",
    b"RCPT TO:<bob@local.test>\nRCPT TO:<victim@local.test>",
];

/// Greetings.
const HELO: &[&[u8]] = &[
    b"EHLO evil\x01.example",
    b"EHLO evil\0.example",
    b"HELO evil\x1b[2J.example",
    b"EHLO evil.example\nMAIL FROM:<x@y>",
    b"EHLO evil.example\xc2\x85forged",
    // Text that would forge the rest of the Received: field (the client's real address).
    b"EHLO evil.example (forged [10.9.8.7])",
    b"HELO evil.example; by mx.example.com",
];

fn escape(b: &[u8]) -> String {
    String::from_utf8_lossy(b).escape_debug().to_string()
}

fn run(log_format: &str) {
    let (port, sink_port, bounce_port) = (free_port(), free_port(), free_port());
    let sink = SmtpSink::start(sink_port, &[]);
    let _bounce = SmtpSink::start(bounce_port, &["-f", "RCPT"]);
    let daemon = Daemon::start(&config(port, sink_port, bounce_port, log_format), &[port]);
    let mut table = String::new();
    // One connection per attempt (each counts as an error, and ten end a session).
    let mut probe = |setup: &[&str], cmd: &[u8]| {
        let mut c = Raw::connect(port);
        for s in setup {
            c.expect(s, 250);
        }
        let mut line = cmd.to_vec();
        line.extend_from_slice(b"\r\n");
        c.send(&line);
        let r = c.reply();
        table.push_str(&format!("{} -> {}", escape(cmd), r.text));
        assert!(
            (500..600).contains(&r.code),
            "{} accepted: {}",
            escape(cmd),
            r.text
        );
        // Whatever followed a bare line ending was not run either.
        assert!(
            c.try_reply(Duration::from_millis(200)).is_none(),
            "{}",
            c.transcript
        );
    };
    for cmd in MAIL {
        probe(&["EHLO client.test"], cmd);
    }
    for cmd in RCPT {
        probe(&["EHLO client.test", "MAIL FROM:<a@client.test>"], cmd);
    }
    for cmd in HELO {
        probe(&[], cmd);
    }
    // RFC 6531 allows U+2028 (LINE SEPARATOR) in a local part; taken or not, it must not
    // break a log line (below).
    let mut c = Raw::connect(port);
    c.expect("EHLO client.test", 250);
    let r = c.cmd("MAIL FROM:<a\u{2028}b@local.test> SMTPUTF8");
    table.push_str(&format!(
        "MAIL FROM:<a\\u{{2028}}b@local.test> SMTPUTF8 -> {}",
        r.text
    ));
    if r.code == 250 {
        c.expect("RCPT TO:<rcpt\u{2028}x@remote.test>", 250);
        c.expect("DATA", 354);
        c.send(b"Subject: ls\r\n\r\nx\r\n.\r\n");
        assert_eq!(c.reply().code, 250, "{}", c.transcript);
    }
    c.expect("QUIT", 221);
    eprintln!("{table}");

    // Values that are legal but look like syntax: they stay inside their parameter and
    // their header field, on the way out and in the non-delivery notice.
    let mut c = Raw::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect(
        "MAIL FROM:<a@local.test> ENVID=id+20SIZE+3D1+20RET+3DFULL RET=HDRS",
        250,
    );
    c.expect("RCPT TO:<rcpt@remote.test> ORCPT=rfc822;x+20NOTIFY+3DNEVER@remote.test NOTIFY=SUCCESS,FAILURE", 250);
    c.expect(
        "RCPT TO:<gone@bounce.test> ORCPT=rfc822;g+3BSubject:+20forged@bounce.test",
        250,
    );
    c.expect("DATA", 354);
    c.send(
        format!(
            "{}.\r\n",
            message("a@local.test", "rcpt@remote.test", "envelope")
        )
        .as_bytes(),
    );
    assert_eq!(c.reply().code, 250, "{}", c.transcript);
    c.expect("QUIT", 221);
    let relayed = mswitch_testkit::wait_until(WAIT, || {
        sink.messages()
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains("X-Rcpt-Args: <rcpt@remote.test>"))
            .then_some(())
    });
    assert!(relayed.is_some(), "the message reached the sink");
    let notice = mswitch_testkit::wait_until(WAIT, || {
        daemon
            .maildir_messages("a", "local.test")
            .into_iter()
            .next()
    })
    .expect("a non-delivery notice for gone@bounce.test");
    std::thread::sleep(Duration::from_millis(500));
    let got = sink.messages();
    let got: Vec<_> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .filter(|m| m.contains("X-Rcpt-Args: <rcpt@remote.test>"))
        .collect();
    assert_eq!(got.len(), 1);
    let text = &got[0];
    let mail_args = text
        .lines()
        .find(|l| l.starts_with("X-Mail-Args:"))
        .unwrap_or("");
    let rcpt_args = text
        .lines()
        .find(|l| l.starts_with("X-Rcpt-Args:"))
        .unwrap_or("");
    eprintln!("{mail_args}\n{rcpt_args}");
    assert!(
        mail_args.contains("ENVID=id+20SIZE+3D1+20RET+3DFULL"),
        "{mail_args}"
    );
    assert!(
        !mail_args.contains(" SIZE=1") && !mail_args.contains("RET=FULL"),
        "{mail_args}"
    );
    assert!(
        rcpt_args.contains("ORCPT=rfc822;x+20NOTIFY+3DNEVER@remote.test"),
        "{rcpt_args}"
    );
    assert_eq!(rcpt_args.matches("NOTIFY=").count(), 1, "{rcpt_args}");
    let dsn =
        String::from_utf8_lossy(&std::fs::read(&notice).expect("read the notice")).into_owned();
    eprintln!("{dsn}");
    // The notice gives the values decoded (RFC 3464 fields are text), each on its own line.
    let field = |name: &str| -> Vec<&str> { dsn.lines().filter(|l| l.starts_with(name)).collect() };
    assert_eq!(
        field("Original-Envelope-Id:"),
        ["Original-Envelope-Id: id SIZE=1 RET=FULL"],
        "{dsn}"
    );
    assert_eq!(
        field("Original-Recipient:"),
        ["Original-Recipient: rfc822; g;Subject: forged@bounce.test"],
        "{dsn}"
    );
    assert!(
        !dsn.lines().any(|l| l.starts_with("Subject: forged")),
        "{dsn}"
    );

    // The U+2028 sender's message could not go on (smtp-sink has no SMTPUTF8): its sender
    // gets the notice (this was lost before: the notice was built without SMTPUTF8).
    let utf8_notice = mswitch_testkit::wait_until(WAIT, || {
        daemon
            .maildir_messages("a\u{2028}b", "local.test")
            .into_iter()
            .next()
    });
    assert!(utf8_notice.is_some(), "{}", daemon.log());

    // The log: no raw control character, and every line is one record of ours.
    let log = std::fs::read(daemon.dir().join("mswitchd.log")).expect("read the log");
    let bad = raw_control_lines(&log);
    assert!(
        bad.is_empty(),
        "control characters in the log:\n{}",
        bad.join("\n")
    );
    let text = String::from_utf8_lossy(&log);
    for line in text.lines().filter(|l| !l.is_empty()) {
        let ours = if log_format == "json" {
            serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object())
        } else {
            line.starts_with("20") && line.get(10..11) == Some("T")
        };
        assert!(ours, "a log line that is not a record: {line:?}");
        assert!(
            !line.contains('\u{85}') && !line.contains('\u{2028}'),
            "a Unicode line break in the log: {line:?}"
        );
        assert!(!line.contains("X-Injected"), "{line}");
    }
}

#[test]
fn control_characters_never_reach_a_field_or_a_text_log_line() {
    run("text");
}

#[test]
fn control_characters_never_reach_a_field_or_a_json_log_line() {
    run("json");
}
