//! The open relay matrix: an untrusted, unauthenticated client tries the classic relay tricks
//! on both services. A recipient is either refused or delivered here (to the local Maildir);
//! nothing reaches the downstream (a real `smtp-sink` as the smarthost) except the control
//! message, relayed by an authenticated user, which shows the path to it works.

use std::time::Duration;

use mswitch_testkit::free_port;
use mswitch_testkit::postfix::SmtpSink;

use super::{Raw, WAIT, message, password_line};
use crate::common::Daemon;

fn config(relay: u16, submission: u16, sink: u16) -> String {
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
address = "127.0.0.1:{relay}"

[[listener]]
name = "submission"
service = "submission"
address = "127.0.0.1:{submission}"
password_file = "passwd"
allow_plaintext_auth = true

[routing]
local_domains = ["local.test"]
local_channel = "local"
trusted_networks = []
smarthost = "127.0.0.1:{sink}"

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

/// Reverse-paths an attacker uses: a stranger, the null sender, a forged local sender.
const SENDERS: &[&str] = &["<attacker@evil.example>", "<>", "<postmaster@local.test>"];

/// The relay tricks, each for `victim@far.example` or its like.
const RECIPIENTS: &[&str] = &[
    "<victim@far.example>",
    "<VICTIM@FAR.EXAMPLE>",
    "<victim@far.example.>",
    "<postmaster@far.example>",
    // The percent hack.
    "<victim%far.example@local.test>",
    "<victim%far.example@switch.test>",
    "<victim%far.example@[127.0.0.1]>",
    // Bang paths.
    "<far.example!victim@local.test>",
    "<far.example!victim>",
    "<victim!far.example>",
    // Source routes (RFC 5321 §4.1.1.3: to be ignored, so the last hop decides).
    "<@local.test:victim@far.example>",
    "<@switch.test,@local.test:victim@far.example>",
    "<@far.example:bob@local.test>",
    // Quoted local parts holding an @ or a %.
    "<\"victim@far.example\"@local.test>",
    "<\"victim@far.example\">",
    "<\"victim%far.example\"@local.test>",
    "<victim@far.example@local.test>",
    // Address literals.
    "<victim@[127.0.0.1]>",
    "<victim@[192.0.2.1]>",
    "<victim@[IPv6:::1]>",
    "<victim@[IPv6:::ffff:127.0.0.1]>",
    "<victim@[tag:far.example]>",
    // Domains that only look local.
    "<victim@local.test.far.example>",
    "<victim@far.example.local.test.>",
    "<victim@local.test@far.example>",
];

#[test]
fn no_relay_trick_relays_for_a_stranger() {
    let (relay, submission, sink_port) = (free_port(), free_port(), free_port());
    let sink = SmtpSink::start(sink_port, &[]);
    let dir = mswitch_testkit::TempDir::new("mswitchd-relay");
    std::fs::write(dir.path().join("passwd"), password_line("alice", "secret"))
        .expect("password file");
    let daemon = Daemon::start_in(
        dir,
        &config(relay, submission, sink_port),
        &[relay, submission],
    );

    // The control: an authenticated user relays, and the sink gets it.
    let mut c = Raw::connect(submission);
    c.expect("EHLO client.test", 250);
    c.expect("AUTH PLAIN AGFsaWNlAHNlY3JldA==", 235);
    c.expect("MAIL FROM:<alice@local.test>", 250);
    c.expect("RCPT TO:<control@far.example>", 250);
    c.expect("DATA", 354);
    c.send(
        format!(
            "{}.\r\n",
            message("alice@local.test", "control@far.example", "control")
        )
        .as_bytes(),
    );
    assert_eq!(c.reply().code, 250, "{}", c.transcript);
    c.expect("QUIT", 221);

    // The relay service: every trick from every sender, in one transaction per sender.
    let mut matrix = String::new();
    let mut accepted = 0;
    for sender in SENDERS {
        let mut c = Raw::connect(relay);
        c.expect("EHLO attacker.example", 250);
        c.expect(&format!("MAIL FROM:{sender}"), 250);
        let mut any = false;
        for rcpt in RECIPIENTS {
            let r = c.cmd(&format!("RCPT TO:{rcpt}"));
            matrix.push_str(&format!("relay {sender} {rcpt}: {}\n", r.text.trim_end()));
            assert!(
                r.code == 250 || (500..600).contains(&r.code),
                "{sender} {rcpt}: {}",
                r.text
            );
            if r.code == 250 {
                any = true;
                accepted += 1;
            }
        }
        if any {
            c.expect("DATA", 354);
            c.send(
                format!(
                    "{}.\r\n",
                    message("attacker@evil.example", "x@local.test", "relay attempt")
                )
                .as_bytes(),
            );
            assert_eq!(c.reply().code, 250, "{}", c.transcript);
        }
        c.expect("QUIT", 221);
    }

    // The submission service without AUTH: nothing gets as far as a recipient.
    for sender in SENDERS {
        let mut c = Raw::connect(submission);
        c.expect("EHLO attacker.example", 250);
        // A failed AUTH changes nothing.
        let failed = c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n");
        assert_eq!(failed.status(), "535 5.7.8", "{}", failed.text);
        // Pipelined, as a spammer would.
        c.send(
            format!("MAIL FROM:{sender}\r\nRCPT TO:<victim@far.example>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n")
                .as_bytes(),
        );
        let replies: Vec<_> = (0..4).map(|_| c.reply()).collect();
        matrix.push_str(&format!(
            "submission {sender}: {}\n",
            replies
                .iter()
                .map(|r| r.status())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        assert_eq!(replies[0].status(), "530 5.7.0", "{}", c.transcript);
        for r in &replies[1..] {
            assert!((500..600).contains(&r.code), "{}", c.transcript);
        }
    }
    eprintln!("{matrix}");

    // Every recipient accepted from the stranger was delivered here.
    assert!(
        daemon.wait_for_log(&["delivery", "status=\"sent\""], 1, WAIT),
        "the control message reached the sink"
    );
    if accepted > 0 {
        assert!(
            daemon.wait_for_log(
                &["delivery", "channel=local", "status=\"delivered\""],
                accepted,
                WAIT
            ),
            "{accepted} local deliveries expected\n{matrix}"
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let log = daemon.log();
    let out: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" delivery ") && l.contains("channel=out"))
        .collect();
    assert_eq!(out.len(), 1, "only the control leaves:\n{}", out.join("\n"));
    assert!(out[0].contains("to=<control@far.example>"), "{}", out[0]);
    let got = sink.messages();
    assert_eq!(got.len(), 1, "the sink got only the control message");
    assert!(String::from_utf8_lossy(&got[0]).contains("X-Rcpt-Args: <control@far.example>"));
}
