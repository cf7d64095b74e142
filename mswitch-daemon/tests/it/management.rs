//! mswitchctl against a running mswitchd with a real queue: summary, list with filters, show,
//! hold and release, retry, delete with and without a non-delivery report, reload, and the
//! exit codes scripts rely on.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mswitch_testkit::postfix::SmtpSink;
use mswitch_testkit::{free_port, wait_until};
use serde_json::Value;

use crate::common::Daemon;
use crate::delivery::{message, queue_id, send};

/// Runs mswitchctl with `args` against the daemon's socket; returns its exit code and output.
fn ctl(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mswitchctl"))
        .arg("--socket")
        .arg(dir.join("mswitch.sock"))
        .args(args)
        .output()
        .expect("run mswitchctl");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The `result` of a `--json` call that must succeed.
fn json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, out) = ctl(dir, &all);
    assert_eq!(code, 0, "mswitchctl {args:?}: {out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["ok"], Value::Bool(true), "{out}");
    v["result"].clone()
}

fn ids(list: &Value) -> Vec<String> {
    list["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| x["id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_operation_through_mswitchctl() {
    let (port, sink_port) = (free_port(), free_port());
    // A peer that defers everything: messages stay queued.
    let _sink = SmtpSink::start(
        sink_port,
        &["-r", "RCPT", "-b", "451 4.3.0 try again later"],
    );
    let config = format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"
retry_first = "1h"
delay_warning = "off"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = ["origin.test"]
local_channel = "local"
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "far.test"
channel = "out"
host = "127.0.0.1:{sink_port}"

[[channel]]
name = "out"
type = "smtp"
tls = "none"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#
    );
    let daemon = Daemon::start(&config, &[port]);
    let dir = daemon.dir().to_path_buf();
    let sent: Vec<String> = (1..=3)
        .map(|n| {
            let subject = format!("queued {n}");
            queue_id(&send(
                port,
                "sender@origin.test",
                &["rcpt@far.test"],
                &message("sender@origin.test", "rcpt@far.test", &subject),
            ))
        })
        .collect();
    assert!(
        daemon.wait_for_log(&["status=\"deferred\""], 3, Duration::from_secs(30)),
        "three first attempts"
    );

    // Summary and list.
    let s = json(&dir, &["summary"]);
    assert_eq!(s["messages"], 3);
    assert_eq!(s["by_state"]["deferred"], 3);
    assert_eq!(s["by_channel"]["out"], 3);
    assert_eq!(s["by_peer"][format!("[127.0.0.1]:{sink_port}")], 3);
    let all = json(&dir, &["list"]);
    assert_eq!(ids(&all), sent, "oldest first");
    assert_eq!(all["total"], 3);
    let page = json(&dir, &["list", "--offset", "1", "--limit", "1"]);
    assert_eq!(ids(&page), [sent[1].clone()]);
    assert_eq!(
        ids(&json(&dir, &["list", "--domain", "elsewhere.test"])),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&json(&dir, &["list", "--recipient", "RCPT@FAR"])).len(),
        3
    );

    // Show: the last error is there.
    let m = json(&dir, &["show", &sent[1]]);
    assert_eq!(m["recipients"][0]["state"], "deferred");
    assert_eq!(m["recipients"][0]["attempts"], 1);
    assert!(
        m["recipients"][0]["last"]
            .as_str()
            .unwrap_or("")
            .starts_with("451 4.3.0"),
        "{m}"
    );

    // Hold one; retry everything: the held one is not attempted.
    json(&dir, &["hold", &sent[0]]);
    assert_eq!(ids(&json(&dir, &["list", "--held"])), [sent[0].clone()]);
    json(&dir, &["retry", "--all"]);
    assert!(daemon.wait_for_log(&["status=\"deferred\""], 5, Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(300));
    let attempts = |id: &str| {
        daemon
            .log()
            .lines()
            .filter(|l| l.contains(&format!("queue_id={id}")) && l.contains("status=\"deferred\""))
            .count()
    };
    assert_eq!(attempts(&sent[0]), 1, "held: not retried");
    assert_eq!(attempts(&sent[1]), 2);
    // Release it (due at once) and retry just that one (due again if the released attempt
    // was already made).
    json(&dir, &["release", &sent[0]]);
    json(&dir, &["retry", &sent[0]]);
    assert!(
        wait_until(Duration::from_secs(30), || (attempts(&sent[0]) >= 2)
            .then_some(()))
        .is_some()
    );

    // Retry for one channel and peer; an unknown peer is not found.
    let peer = format!("[127.0.0.1]:{sink_port}");
    let r = json(&dir, &["retry", "--channel", "out", "--peer", &peer]);
    assert!(r["retried"].as_u64().is_some_and(|n| n >= 1), "{r}");
    let (code, out) = ctl(
        &dir,
        &["retry", "--channel", "out", "--peer", "[192.0.2.1]:25"],
    );
    assert_eq!(code, 1, "{out}");

    // Delete with a non-delivery report: the sender (a local mailbox) gets it.
    // (It may be in an attempt just now, made due by the retry above: "busy", try again.)
    assert!(
        wait_until(Duration::from_secs(10), || {
            (ctl(&dir, &["delete", "--notify", &sent[1]]).0 == 0).then_some(())
        })
        .is_some(),
        "deleted"
    );
    let ndr = wait_until(Duration::from_secs(30), || {
        let f = daemon.maildir_messages("sender", "origin.test");
        (!f.is_empty()).then_some(f)
    })
    .expect("a non-delivery report");
    let text = std::fs::read_to_string(&ndr[0]).expect("read");
    assert!(text.contains("Action: failed"), "{text:.600}");
    assert!(
        text.contains("deleted from the queue by the postmaster"),
        "{text:.900}"
    );
    // Silently.
    assert!(
        wait_until(Duration::from_secs(10), || {
            (ctl(&dir, &["delete", &sent[2]]).0 == 0).then_some(())
        })
        .is_some(),
        "deleted"
    );
    assert_eq!(ids(&json(&dir, &["list"])), [sent[0].clone()]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        daemon.maildir_messages("sender", "origin.test").len(),
        1,
        "no second report"
    );

    // Errors and exit codes.
    let (code, out) = ctl(&dir, &["show", &sent[2]]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not_found"), "{out}");
    let (code, out) = ctl(&dir, &["hold", "not-an-id"]);
    assert_eq!(code, 1, "{out}");
    let (code, out) = ctl(&dir, &["retry"]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = ctl(Path::new("/nonexistent"), &["summary"]);
    assert_eq!(code, 3, "{out}");

    // Reload, and the human-readable form.
    json(&dir, &["reload"]);
    assert!(daemon.wait_for_log(&["configuration reloaded"], 1, Duration::from_secs(10)));
    let (code, out) = ctl(&dir, &["summary"]);
    assert_eq!(code, 0);
    assert!(out.contains("messages     1"), "{out}");
    let (code, out) = ctl(&dir, &["list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&sent[0]) && out.contains("(1 shown of 1 matching)"),
        "{out}"
    );
}

fn sent_lines(daemon: &Daemon, id: &str) -> usize {
    daemon
        .log()
        .lines()
        .filter(|l| l.contains(&format!("queue_id={id}")) && l.contains("status=\"sent\""))
        .count()
}

#[test]
fn channel_controls_priority_limit_and_redirect() {
    let (port, sink_port) = (free_port(), free_port());
    let _sink = SmtpSink::start(sink_port, &[]);
    let config = format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"
retry_first = "1h"
delay_warning = "off"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
local_domains = ["origin.test"]
local_channel = "local"
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "far.test"
channel = "out"
host = "127.0.0.1:{sink_port}"

[[channel]]
name = "out"
type = "smtp"
tls = "none"
max_jobs = 1
max_per_peer = 1

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#
    );
    let daemon = Daemon::start(&config, &[port]);
    let dir = daemon.dir().to_path_buf();
    let submit = |subject: &str, priority: Option<i8>| {
        let mut c = crate::delivery::Client::connect(port);
        c.expect("EHLO client.test", 250);
        let from = match priority {
            Some(p) => format!("MAIL FROM:<sender@origin.test> MT-PRIORITY={p}"),
            None => "MAIL FROM:<sender@origin.test>".into(),
        };
        c.expect(&from, 250);
        c.expect("RCPT TO:<rcpt@far.test>", 250);
        let (code, text) = c.data(&message("sender@origin.test", "rcpt@far.test", subject));
        assert_eq!(code, 250, "{text}");
        c.command("QUIT");
        queue_id(&text)
    };

    // Disabled: the message waits; enabled: it goes.
    let s = json(&dir, &["channel", "out", "--disable"]);
    assert_eq!(s["outbound_enabled"], false);
    let m1 = submit("held back", None);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sent_lines(&daemon, &m1), 0, "nothing goes while disabled");
    json(&dir, &["channel", "out", "--enable"]);
    assert!(
        wait_until(Duration::from_secs(30), || (sent_lines(&daemon, &m1) == 1)
            .then_some(()))
        .is_some()
    );

    // A priority limit: the urgent message goes, the normal one waits.
    json(&dir, &["channel", "out", "--min-priority", "immediate"]);
    let normal = submit("normal", None);
    let urgent = submit("urgent", Some(6));
    assert!(
        wait_until(Duration::from_secs(30), || (sent_lines(&daemon, &urgent)
            == 1)
            .then_some(()))
        .is_some()
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(sent_lines(&daemon, &normal), 0, "below the limit");
    json(&dir, &["channel", "out", "--min-priority", "none"]);
    assert!(
        wait_until(Duration::from_secs(30), || (sent_lines(&daemon, &normal)
            == 1)
            .then_some(()))
        .is_some()
    );

    // Redirect a waiting recipient to a local mailbox.
    json(&dir, &["channel", "out", "--disable"]);
    let m4 = submit("redirected", None);
    let r = json(
        &dir,
        &["redirect", &m4, "rcpt@far.test", "moved@origin.test"],
    );
    assert_eq!(r["redirected"], m4.as_str());
    let files = wait_until(Duration::from_secs(30), || {
        let f = daemon.maildir_messages("moved", "origin.test");
        (!f.is_empty()).then_some(f)
    })
    .expect("the redirected copy arrives");
    assert!(
        std::fs::read_to_string(&files[0])
            .unwrap_or_default()
            .contains("Subject: redirected")
    );
    assert!(
        ids(&json(&dir, &["list"])).is_empty(),
        "the original is finished"
    );

    // Time out everything waiting on the channel: the sender is told (5.4.7).
    let m5 = submit("timed out", None);
    json(&dir, &["channel", "out", "--time-out"]);
    let ndr = wait_until(Duration::from_secs(30), || {
        let f = daemon.maildir_messages("sender", "origin.test");
        (!f.is_empty()).then_some(f)
    })
    .expect("a non-delivery report");
    let text = std::fs::read_to_string(&ndr[0]).unwrap_or_default();
    assert!(text.contains("Status: 5.4.7"), "{text:.800}");
    assert!(ids(&json(&dir, &["list"])).is_empty(), "{m5} gone");

    // A listener disabled: new connections get 421; enabled: 220 again.
    json(&dir, &["channel", "mx", "--disable", "--inbound"]);
    let greeting = |p: u16| {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p)).expect("connect");
        let mut b = [0u8; 256];
        let n = s.read(&mut b).unwrap_or(0);
        String::from_utf8_lossy(&b[..n]).into_owned()
    };
    assert!(greeting(port).starts_with("421 4.3.2"), "disabled");
    json(&dir, &["channel", "mx", "--enable", "--inbound"]);
    assert!(greeting(port).starts_with("220"), "enabled");
    let (code, out) = ctl(&dir, &["channel", "nonesuch", "--disable"]);
    assert_eq!(code, 1, "{out}");
}

#[test]
fn watch_streams_delivery_events() {
    use std::io::BufRead;
    let (port, sink_port) = (free_port(), free_port());
    let _sink = SmtpSink::start(sink_port, &[]);
    let config = format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "mx"
service = "relay"
address = "127.0.0.1:{port}"

[routing]
trusted_networks = ["127.0.0.0/8"]
smarthost = "127.0.0.1:{sink_port}"

[[channel]]
name = "out"
type = "smtp"
tls = "none"
"#
    );
    let daemon = Daemon::start(&config, &[port]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mswitchctl"))
        .arg("--socket")
        .arg(daemon.dir().join("mswitch.sock"))
        .arg("watch")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mswitchctl watch");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The watcher subscribes as soon as it has connected; a message sent before that is not
    // seen, so send until an event comes (at most three).
    let mut ids = Vec::new();
    let mut event = None;
    for n in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        ids.push(queue_id(&send(
            port,
            "sender@origin.test",
            &["rcpt@far.test"],
            &message(
                "sender@origin.test",
                "rcpt@far.test",
                &format!("watched {n}"),
            ),
        )));
        if let Ok(e) = rx.recv_timeout(Duration::from_secs(10)) {
            event = Some(e);
            break;
        }
    }
    let event = event.expect("a delivery event");
    let _ = child.kill();
    let _ = child.wait();
    let v: Value = serde_json::from_str(&event).unwrap_or_else(|e| panic!("{e}: {event}"));
    assert_eq!(v["event"], "delivery");
    assert!(ids.iter().any(|id| v["queue_id"] == id.as_str()), "{v}");
    assert_eq!(v["status"], "sent");
    assert_eq!(v["recipient"], "rcpt@far.test");
    assert!(v["reply"].as_str().unwrap_or("").starts_with("250"), "{v}");
}
