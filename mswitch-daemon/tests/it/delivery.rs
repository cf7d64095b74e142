//! Delivery end to end: mswitchd as a process between real peers on loopback. Postfix on both
//! sides of it, Dovecot behind its LMTP channel, `smtp-sink` answering 4xx or 5xx, swaks
//! submitting with STARTTLS and AUTH, and the embedded default configuration.
//!
//! Needs `postfix`, `dovecot-core`, `dovecot-lmtpd` (the testkit installs them when run as
//! root) and `swaks` with its TLS modules (`apt-get install swaks libnet-ssleay-perl
//! libio-socket-ssl-perl`).

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use mswitch_testkit::dovecot::DovecotLmtp;
use mswitch_testkit::postfix::{Postfix, PostfixConfig, SmtpSink};
use mswitch_testkit::{TempDir, chown, files_under, free_port, wait_until};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::common::Daemon;
pub(crate) use crate::common::password_line;

/// How long a test waits for something that should happen within a second or two on an idle
/// machine (the machine is shared, and Postfix's queue manager wakes up on its own schedule).
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// A body with lines that must be dot-stuffed on every hop and unstuffed at the end.
const BODY: &str = "Hello through the switch.\r\n\
                    .A line that starts with a dot\r\n\
                    ..and one that starts with two\r\n\
                    \r\n\
                    Last line.\r\n";

// ---- a minimal SMTP client ----

/// One SMTP connection over a std `TcpStream`, one command at a time, with a transcript for
/// failure messages.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    pub(crate) transcript: String,
}

impl Client {
    /// Connects and reads the greeting (220 expected).
    pub(crate) fn connect(port: u16) -> Client {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        stream
            .set_read_timeout(Some(WAIT))
            .expect("set a read timeout");
        let mut c = Client {
            reader: BufReader::new(stream),
            transcript: String::new(),
        };
        let (code, text) = c.reply();
        assert_eq!(code, 220, "greeting: {text}");
        c
    }

    /// Reads one (possibly multi-line) reply: its code and its lines.
    pub(crate) fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("read a reply: {e}\n{}", self.transcript));
            assert!(n > 0, "connection closed:\n{}", self.transcript);
            self.transcript.push_str("S: ");
            self.transcript.push_str(&line);
            text.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                let code = line
                    .get(..3)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or_else(|| panic!("not a reply line: {line:?}\n{}", self.transcript));
                return (code, text);
            }
        }
    }

    fn write(&mut self, data: &str) {
        self.reader
            .get_mut()
            .write_all(data.as_bytes())
            .unwrap_or_else(|e| panic!("write: {e}\n{}", self.transcript));
    }

    /// Sends `line` and returns the reply.
    pub(crate) fn command(&mut self, line: &str) -> (u16, String) {
        self.transcript.push_str(&format!("C: {line}\r\n"));
        self.write(&format!("{line}\r\n"));
        self.reply()
    }

    /// Sends `line` and asserts the reply's code.
    pub(crate) fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.command(line);
        assert_eq!(got, code, "{line} -> {text}\n{}", self.transcript);
        text
    }

    /// DATA, then `message` dot-stuffed, then the final dot; returns the reply to the dot.
    pub(crate) fn data(&mut self, message: &str) -> (u16, String) {
        self.expect("DATA", 354);
        let mut wire = String::with_capacity(message.len() + 16);
        for line in message.lines() {
            if line.starts_with('.') {
                wire.push('.');
            }
            wire.push_str(line);
            wire.push_str("\r\n");
        }
        wire.push_str(".\r\n");
        self.transcript.push_str("C: <message>\r\nC: .\r\n");
        self.write(&wire);
        self.reply()
    }
}

/// Sends `message` from `from` (empty: the null reverse-path) to `to` in one session and
/// returns the reply to the end of data, which must be 250.
pub(crate) fn send(port: u16, from: &str, to: &[&str], message: &str) -> String {
    let mut c = Client::connect(port);
    c.expect("EHLO client.test", 250);
    c.expect(&format!("MAIL FROM:<{from}>"), 250);
    for r in to {
        c.expect(&format!("RCPT TO:<{r}>"), 250);
    }
    let (code, text) = c.data(message);
    assert_eq!(code, 250, "end of data -> {text}\n{}", c.transcript);
    c.command("QUIT");
    text
}

/// The queue id in mswitchd's "250 2.0.0 Ok: queued as <id>".
pub(crate) fn queue_id(reply: &str) -> String {
    let id = reply
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reply.contains("Ok: queued as ")
            && id.len() == 16
            && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "no queue id in {reply:?}"
    );
    id
}

/// A message with the usual header fields and [`BODY`].
pub(crate) fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: Mon, 1 Dec 2025 10:00:00 +0000\r\n\
         Message-ID: <{}.{}@client.test>\r\n\r\n{BODY}",
        subject.replace(' ', "-"),
        std::process::id()
    )
}

// ---- reading what arrived ----

/// `text` with LF line ends (Postfix's and Dovecot's Maildirs store LF, ours CRLF).
fn lf(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// The header fields of a message, unfolded, in order: (name, value).
fn header_fields(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    out
}

/// The values of the fields named `name` (case-insensitive).
fn fields<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The body of a message (after the first empty line), with LF line ends.
fn body_of(text: &str) -> String {
    let text = lf(text);
    match text.split_once("\n\n") {
        Some((_, body)) => body.to_owned(),
        None => panic!("no header/body separator in {text:?}"),
    }
}

/// Waits until the Maildir `new/` directory `dir` holds `count` files; returns them.
fn wait_for_files(dir: &Path, count: usize, what: &str) -> Vec<PathBuf> {
    wait_until(WAIT, || {
        let files = files_under(dir);
        (files.len() >= count).then_some(files)
    })
    .unwrap_or_else(|| {
        panic!(
            "{what}: {} has {:?}, not {count} message(s) after {WAIT:?}",
            dir.display(),
            files_under(dir)
        )
    })
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The log lines of `daemon` that contain every one of `needles`.
fn log_lines(daemon: &Daemon, needles: &[&str]) -> Vec<String> {
    daemon
        .log()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .map(str::to_owned)
        .collect()
}

/// Waits for `count` log lines with every one of `needles`; panics with the log otherwise.
fn wait_for_log(daemon: &Daemon, needles: &[&str], count: usize) {
    assert!(
        daemon.wait_for_log(needles, count, WAIT),
        "no {count} log line(s) with {needles:?} after {WAIT:?}:\n{}",
        daemon.log()
    );
}

/// One block of an RFC 3464 `message/delivery-status` body: its fields, unfolded.
fn dsn_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    lf(text)
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(header_fields)
        .collect()
}

/// The transactions `sink` kept that carried a message. smtp-sink's `-d` keeps a file for
/// every transaction, even one refused at RCPT (only its envelope lines), so those without
/// content (no `Subject:` line: every test message has one) do not count.
fn contents_in(sink: &SmtpSink) -> Vec<String> {
    sink.messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .filter(|m| m.contains("\nSubject: "))
        .collect()
}

// ---- tools ----

fn swaks_installed() -> bool {
    Command::new("swaks")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs swaks against 127.0.0.1:`port` with `args`; returns whether it succeeded and its
/// transcript.
fn swaks(port: u16, args: &[&str]) -> (bool, String) {
    assert!(
        swaks_installed(),
        "swaks is not installed: apt-get install swaks libnet-ssleay-perl libio-socket-ssl-perl"
    );
    let out = Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--helo", "client.test", "--timeout", "30"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run swaks");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Writes a test CA (`ca.pem`) and a certificate for `switch.test` and 127.0.0.1 that it
/// signed (`server.pem`, key `server.key`) into `dir`.
fn write_certificates(dir: &Path) {
    let mut ca_params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "mswitch test CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let mut params = CertificateParams::new(vec!["switch.test".to_owned(), "127.0.0.1".to_owned()])
        .expect("server names");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "switch.test");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("server key");
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    for (name, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("server.pem", cert.pem()),
        ("server.key", key.serialize_pem()),
    ] {
        fs::write(dir.join(name), pem).expect("write a PEM file");
    }
}

/// The configuration shared by the relay tests: host name `switch.test`, fast retries, one
/// relay listener on `port`, relaying for loopback; `rest` adds routes and channels.
fn relay_config(port: u16, rest: &str) -> String {
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

{rest}
"#
    )
}

// ---- the tests ----

#[test]
fn postfix_relays_into_mswitchd_which_relays_into_postfix_that_delivers() {
    let (a_port, switch_port, b_port) = (free_port(), free_port(), free_port());
    let vmail = TempDir::new("mswitch-vmail");
    chown(vmail.path(), "65534:65534");
    let b = Postfix::start(
        PostfixConfig::new(&[b_port])
            .set("myhostname", "b.postfix.test")
            .set("virtual_mailbox_domains", "dest.example")
            .set("virtual_mailbox_base", vmail.path().display().to_string())
            .set("virtual_mailbox_maps", "inline:{ bob@dest.example=bob/ }")
            .set("virtual_uid_maps", "static:65534")
            .set("virtual_gid_maps", "static:65534"),
    );
    let daemon = Daemon::start(
        &relay_config(
            switch_port,
            &format!(
                r#"[routing]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "dest.example"
channel = "out"
host = "127.0.0.1:{b_port}"

[[channel]]
name = "out"
type = "smtp"
"#
            ),
        ),
        &[switch_port],
    );
    let a = Postfix::start(
        PostfixConfig::new(&[a_port])
            .set("myhostname", "a.postfix.test")
            .set("relayhost", format!("[127.0.0.1]:{switch_port}")),
    );

    let reply = send(
        a_port,
        "alice@origin.example",
        &["bob@dest.example"],
        &message("alice@origin.example", "bob@dest.example", "three hops"),
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");

    // A handed it to mswitchd, which said which queue id it gave it.
    let a_line = a
        .wait_for_log(&["status=sent", "Ok: queued as"], WAIT)
        .unwrap_or_else(|| panic!("Postfix A did not relay:\n{}", a.log()));
    assert!(
        a_line.contains(&format!("relay=127.0.0.1[127.0.0.1]:{switch_port}")),
        "{a_line}"
    );
    let id = queue_id(a_line.trim_end().trim_end_matches(')'));
    let qid = format!("queue_id={id}");
    wait_for_log(
        &daemon,
        &[&qid, "status=\"sent\"", "to=<bob@dest.example>"],
        1,
    );
    let sent = log_lines(&daemon, &[&qid, "status=\"sent\""]);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains(&format!("relay=[127.0.0.1]:{b_port} ")),
        "{}",
        sent[0]
    );
    assert!(sent[0].contains("code=250"), "{}", sent[0]);
    wait_for_log(&daemon, &[&qid, "removed"], 1);

    // B delivered it with virtual(8).
    let files = wait_for_files(&vmail.path().join("bob/new"), 1, "Postfix B's Maildir");
    assert_eq!(files.len(), 1, "{files:?}");
    b.wait_for_log(
        &["to=<bob@dest.example>", "relay=virtual", "status=sent"],
        WAIT,
    )
    .unwrap_or_else(|| panic!("no delivery line in B's log:\n{}", b.log()));
    let text = read(&files[0]);
    let head = header_fields(&text);
    let received = fields(&head, "Received");
    assert_eq!(received.len(), 3, "Received headers: {received:#?}\n{text}");
    // Newest first: B, then mswitchd, then A.
    assert!(
        received[0].starts_with("from switch.test ") && received[0].contains("by b.postfix.test"),
        "{}",
        received[0]
    );
    assert!(
        received[1].starts_with("from a.postfix.test ([127.0.0.1])")
            && received[1].contains("by switch.test (mswitch) with ESMTP")
            && received[1].contains("for <bob@dest.example>"),
        "{}",
        received[1]
    );
    assert!(
        received[2].starts_with("from client.test ") && received[2].contains("by a.postfix.test"),
        "{}",
        received[2]
    );
    assert_eq!(fields(&head, "Return-Path"), ["<alice@origin.example>"]);
    assert_eq!(fields(&head, "Delivered-To"), ["bob@dest.example"]);
    assert_eq!(fields(&head, "Subject"), ["three hops"]);
    assert_eq!(body_of(&text), lf(BODY));
    assert!(
        wait_until(WAIT, || (a.queued() == 0 && b.queued() == 0).then_some(())).is_some(),
        "Postfix queues not empty: A {}, B {}",
        a.queued(),
        b.queued()
    );
}

#[test]
fn dovecot_receives_through_the_lmtp_channel() {
    let (switch_port, lmtp_port) = (free_port(), free_port());
    let dovecot = DovecotLmtp::start(lmtp_port, &["bob@lmtp.example"]);
    let daemon = Daemon::start(
        &relay_config(
            switch_port,
            &format!(
                r#"[routing]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "lmtp.example"
channel = "store"

[[route]]
domain = "origin.example"
channel = "mbox"

[[channel]]
name = "store"
type = "lmtp"
host = "127.0.0.1:{lmtp_port}"

[[channel]]
name = "mbox"
type = "maildir"
path = "maildir"
"#
            ),
        ),
        &[switch_port],
    );

    let reply = send(
        switch_port,
        "sender@origin.example",
        &["bob@lmtp.example", "nobody@lmtp.example"],
        &message("sender@origin.example", "bob@lmtp.example", "over lmtp"),
    );
    let id = queue_id(&reply);
    let qid = format!("queue_id={id}");

    // The known user has it.
    let got = wait_until(WAIT, || {
        let m = dovecot.messages("bob@lmtp.example");
        (!m.is_empty()).then_some(m)
    })
    .unwrap_or_else(|| panic!("nothing in bob's Dovecot Maildir:\n{}", dovecot.log()));
    assert_eq!(got.len(), 1);
    let text = String::from_utf8_lossy(&got[0]).into_owned();
    let head = header_fields(&text);
    assert_eq!(fields(&head, "Subject"), ["over lmtp"]);
    assert_eq!(fields(&head, "Return-Path"), ["<sender@origin.example>"]);
    let received = fields(&head, "Received");
    assert_eq!(received.len(), 2, "{received:#?}");
    assert!(received[0].contains("with LMTP"), "{}", received[0]);
    assert!(
        received[1].starts_with("from client.test ([127.0.0.1])")
            && received[1].contains("by switch.test (mswitch) with ESMTP"),
        "{}",
        received[1]
    );
    assert_eq!(body_of(&text), lf(BODY));
    assert!(dovecot.messages("nobody@lmtp.example").is_empty());

    // The unknown one bounced, and the sender got a notice in its Maildir.
    wait_for_log(
        &daemon,
        &[
            &qid,
            "to=<nobody@lmtp.example>",
            "status=\"bounced\"",
            "code=550",
        ],
        1,
    );
    wait_for_log(
        &daemon,
        &[&qid, "to=<bob@lmtp.example>", "status=\"delivered\""],
        1,
    );
    let notices = wait_for_files(
        &daemon
            .dir()
            .join("maildir/origin.example/sender/Maildir/new"),
        1,
        "the sender's Maildir",
    );
    assert_eq!(notices.len(), 1, "{notices:?}");
    let raw = fs::read(&notices[0]).expect("read the notice");
    let dsn = MessageParser::default()
        .parse(&raw)
        .expect("the notice parses");
    let parts = dsn.root_part().sub_parts().expect("a multipart").to_vec();
    assert_eq!(parts.len(), 3, "three parts");
    let status = dsn
        .part(parts[1])
        .expect("a delivery-status part")
        .text_contents()
        .expect("text");
    let blocks = dsn_blocks(status);
    assert_eq!(blocks.len(), 2, "one recipient block only: {status}");
    assert_eq!(
        fields(&blocks[1], "Final-Recipient"),
        ["rfc822; nobody@lmtp.example"]
    );
    assert_eq!(fields(&blocks[1], "Action"), ["failed"]);
    assert_eq!(fields(&blocks[1], "Status"), ["5.1.1"]);
    wait_for_log(&daemon, &[&qid, "removed"], 1);
}

#[test]
fn swaks_submission_with_starttls_and_auth_reaches_maildir() {
    let port = free_port();
    let dir = TempDir::new("mswitchd-submission");
    write_certificates(dir.path());
    fs::write(dir.path().join("passwd"), password_line("alice", "secret"))
        .expect("write the password file");
    let ca = dir.path().join("ca.pem").display().to_string();
    let daemon = Daemon::start_in(
        dir,
        &format!(
            r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[[listener]]
name = "submission"
service = "submission"
address = "127.0.0.1:{port}"
tls_cert = "server.pem"
tls_key = "server.key"
password_file = "passwd"

[routing]
local_domains = ["local.test"]
local_channel = "local"

[[channel]]
name = "local"
type = "maildir"
path = "maildir"
"#
        ),
        &[port],
    );
    let body = "Submitted over TLS by an authenticated user.";
    let (ok, transcript) = swaks(
        port,
        &[
            "--from",
            "alice@local.test",
            "--to",
            "carol@local.test",
            "--tls",
            "--tls-verify",
            "--tls-ca-path",
            &ca,
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "secret",
            "--header",
            "Subject: submitted",
            "--body",
            body,
        ],
    );
    assert!(ok, "swaks failed:\n{transcript}");
    assert!(transcript.contains("<~  235 2.7.0"), "{transcript}");
    let files = wait_for_files(
        &daemon.dir().join("maildir/local.test/carol/Maildir/new"),
        1,
        "carol's Maildir",
    );
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(daemon.maildir_messages("carol", "local.test"), files);
    let text = read(&files[0]);
    let head = header_fields(&text);
    assert_eq!(fields(&head, "Return-Path"), ["<alice@local.test>"]);
    assert_eq!(fields(&head, "Delivered-To"), ["carol@local.test"]);
    assert_eq!(fields(&head, "Subject"), ["submitted"]);
    let received = fields(&head, "Received");
    assert_eq!(received.len(), 1, "{received:#?}");
    assert!(
        received[0].starts_with("from client.test ([127.0.0.1])")
            && received[0].contains("by switch.test (mswitch) with ESMTPSA"),
        "{}",
        received[0]
    );
    assert!(body_of(&text).starts_with(body), "{text}");
    assert_eq!(
        log_lines(&daemon, &["authenticated", "user=\"alice\""]).len(),
        1
    );

    // Without AUTH, in plaintext or under TLS: refused at MAIL.
    for tls in [false, true] {
        let mut args = vec!["--from", "alice@local.test", "--to", "carol@local.test"];
        if tls {
            args.extend(["--tls", "--tls-verify", "--tls-ca-path", &ca]);
        }
        let (ok, transcript) = swaks(port, &args);
        assert!(
            !ok,
            "swaks without AUTH (tls {tls}) succeeded:\n{transcript}"
        );
        assert!(
            // swaks marks an error reply "<**", or "<~*" under TLS.
            transcript.contains(&format!(
                "{} 530 5.7.0 Authentication required",
                if tls { "<~*" } else { "<**" }
            )),
            "tls {tls}:\n{transcript}"
        );
    }
    // A wrong password is refused too.
    let (ok, transcript) = swaks(
        port,
        &[
            "--from",
            "alice@local.test",
            "--to",
            "carol@local.test",
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "wrong",
        ],
    );
    assert!(!ok, "a wrong password succeeded:\n{transcript}");
    assert!(transcript.contains("<~* 535 "), "{transcript}");
    assert_eq!(log_lines(&daemon, &["received", "queue_id="]).len(), 1);
    assert_eq!(daemon.maildir_messages("carol", "local.test").len(), 1);
}

#[test]
fn a_4xx_sink_is_retried_until_it_accepts() {
    let (switch_port, sink_port) = (free_port(), free_port());
    let soft = SmtpSink::start(
        sink_port,
        &["-r", "RCPT", "-b", "451 4.3.0 try again later"],
    );
    let daemon = Daemon::start(
        &relay_config(
            switch_port,
            &format!(
                r#"[routing]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "far.example"
channel = "out"
host = "127.0.0.1:{sink_port}"

[[channel]]
name = "out"
type = "smtp"
"#
            ),
        ),
        &[switch_port],
    );
    let reply = send(
        switch_port,
        "sender@origin.example",
        &["rcpt@far.example"],
        &message("sender@origin.example", "rcpt@far.example", "retried"),
    );
    let qid = format!("queue_id={}", queue_id(&reply));
    // Two refused attempts: the first and a retry.
    wait_for_log(
        &daemon,
        &[&qid, "status=\"deferred\"", "code=451", "dsn=4.3.0"],
        2,
    );
    assert_eq!(contents_in(&soft), Vec::<String>::new());
    drop(soft);
    let sink = SmtpSink::start(sink_port, &[]);
    wait_for_log(&daemon, &[&qid, "status=\"sent\""], 1);
    wait_for_log(&daemon, &[&qid, "removed"], 1);

    let log = daemon.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&qid)).collect();
    let first_deferred = lines
        .iter()
        .position(|l| l.contains("status=\"deferred\""))
        .expect("a deferred line");
    let sent = lines
        .iter()
        .position(|l| l.contains("status=\"sent\""))
        .expect("a sent line");
    assert!(first_deferred < sent, "{lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("status=\"sent\""))
            .count(),
        1,
        "{lines:#?}"
    );
    assert!(
        lines[first_deferred].contains("attempt=1"),
        "{}",
        lines[first_deferred]
    );
    assert!(!lines[sent].contains("attempt=1 "), "{}", lines[sent]);
    let got = contents_in(&sink);
    assert_eq!(got.len(), 1, "the sink got {got:#?}");
    let text = &got[0];
    assert!(text.contains("Subject: retried"), "{text}");
    assert!(lf(text).contains(&lf(BODY)), "{text}");
}

#[test]
fn a_5xx_sink_makes_a_dsn_the_sender_can_parse() {
    let (switch_port, sink_port) = (free_port(), free_port());
    let _sink = SmtpSink::start(sink_port, &["-f", "RCPT", "-B", "550 5.1.1 no such user"]);
    let daemon = Daemon::start(
        &relay_config(
            switch_port,
            &format!(
                r#"[routing]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "far.example"
channel = "out"
host = "127.0.0.1:{sink_port}"

[[route]]
domain = "origin.example"
channel = "mbox"

[[channel]]
name = "out"
type = "smtp"

[[channel]]
name = "mbox"
type = "maildir"
path = "maildir"
"#
            ),
        ),
        &[switch_port],
    );
    let subject = "a message that will bounce";
    let reply = send(
        switch_port,
        "sender@origin.example",
        &["rcpt@far.example"],
        &message("sender@origin.example", "rcpt@far.example", subject),
    );
    let id = queue_id(&reply);
    let qid = format!("queue_id={id}");
    wait_for_log(
        &daemon,
        &[
            &qid,
            "to=<rcpt@far.example>",
            "status=\"bounced\"",
            "code=550",
            "dsn=5.1.1",
        ],
        1,
    );
    let notices = wait_for_files(
        &daemon
            .dir()
            .join("maildir/origin.example/sender/Maildir/new"),
        1,
        "the sender's Maildir",
    );
    assert_eq!(notices.len(), 1, "{notices:?}");
    let raw = fs::read(&notices[0]).expect("read the notice");
    // The maildir channel writes the envelope sender first: the null reverse-path.
    assert!(
        raw.starts_with(b"Return-Path: <>\r\nDelivered-To: sender@origin.example\r\n"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let dsn = MessageParser::default()
        .parse(&raw)
        .expect("the notice parses");
    let ct = dsn.content_type().expect("a Content-Type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    assert_eq!(
        dsn.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("sender@origin.example")
    );
    let parts = dsn.root_part().sub_parts().expect("a multipart").to_vec();
    assert_eq!(parts.len(), 3, "three parts");
    let part = |i: usize| dsn.part(parts[i]).expect("a part");

    let explanation = part(0);
    let ct = explanation.content_type().expect("part 1 type");
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
    assert!(
        explanation
            .text_contents()
            .is_some_and(|t| t.contains("rcpt@far.example")),
        "{:?}",
        explanation.text_contents()
    );

    let report = part(1);
    let ct = report.content_type().expect("part 2 type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("message", Some("delivery-status"))
    );
    let text = report.text_contents().expect("a 7-bit report");
    let blocks = dsn_blocks(text);
    assert_eq!(
        blocks.len(),
        2,
        "per-message and one per-recipient block: {text}"
    );
    assert_eq!(fields(&blocks[0], "Reporting-MTA"), ["dns; switch.test"]);
    let rcpt = &blocks[1];
    assert_eq!(
        fields(rcpt, "Final-Recipient"),
        ["rfc822; rcpt@far.example"]
    );
    assert_eq!(fields(rcpt, "Action"), ["failed"]);
    assert_eq!(fields(rcpt, "Status"), ["5.1.1"]);
    assert_eq!(fields(rcpt, "Remote-MTA"), ["dns; 127.0.0.1"]);
    // The peer's reply: its code and text (whether the text keeps the enhanced code, which
    // the Status field carries, is the builder's choice).
    let diagnostic = fields(rcpt, "Diagnostic-Code");
    assert!(
        diagnostic.len() == 1
            && diagnostic[0].starts_with("smtp; 550 ")
            && diagnostic[0].ends_with(" no such user"),
        "{diagnostic:?}"
    );

    let returned = part(2);
    let ct = returned.content_type().expect("part 3 type");
    assert_eq!((ct.ctype(), ct.subtype()), ("message", Some("rfc822")));
    let original = returned.message().expect("the returned message");
    assert_eq!(original.subject(), Some(subject));
    assert!(
        lf(&String::from_utf8_lossy(original.raw_message())).contains(&lf(BODY)),
        "the whole message is returned"
    );
    wait_for_log(&daemon, &[&qid, "notice queued"], 1);
    wait_for_log(&daemon, &[&qid, "removed"], 1);
}

#[test]
fn a_null_sender_failure_is_dropped_not_bounced() {
    let (switch_port, sink_port) = (free_port(), free_port());
    let sink = SmtpSink::start(sink_port, &["-f", "RCPT", "-B", "550 5.1.1 no such user"]);
    let daemon = Daemon::start(
        &relay_config(
            switch_port,
            &format!(
                r#"[routing]
trusted_networks = ["127.0.0.0/8"]
# A notice to the postmaster, or to anyone, would land in the Maildir.
local_domains = ["switch.test", "origin.example"]
local_channel = "mbox"

[[route]]
domain = "far.example"
channel = "out"
host = "127.0.0.1:{sink_port}"

[[channel]]
name = "out"
type = "smtp"

[[channel]]
name = "mbox"
type = "maildir"
path = "maildir"
"#
            ),
        ),
        &[switch_port],
    );
    let reply = send(
        switch_port,
        "",
        &["rcpt@far.example"],
        &message(
            "mailer-daemon@origin.example",
            "rcpt@far.example",
            "a bounce",
        ),
    );
    let qid = format!("queue_id={}", queue_id(&reply));
    wait_for_log(&daemon, &[&qid, "status=\"bounced\"", "code=550"], 1);
    wait_for_log(
        &daemon,
        &[
            &qid,
            "no notice sent: the message came from the null sender",
        ],
        1,
    );
    wait_for_log(&daemon, &[&qid, "removed"], 1);
    assert!(
        log_lines(&daemon, &["notice queued"]).is_empty(),
        "{}",
        daemon.log()
    );
    assert_eq!(
        log_lines(&daemon, &["received", "queue_id="]).len(),
        1,
        "one message received, no notice submitted:\n{}",
        daemon.log()
    );
    assert_eq!(
        files_under(&daemon.dir().join("maildir")),
        Vec::<PathBuf>::new()
    );
    assert_eq!(contents_in(&sink), Vec::<String>::new());
}

#[test]
fn embedded_default_delivers_a_swaks_message_to_maildir() {
    // The embedded default listens on fixed ports.
    for port in [2525, 2587] {
        if let Err(e) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            panic!(
                "127.0.0.1:{port} is busy ({e}): this test runs mswitchd on its embedded default \
                 configuration, which listens on 127.0.0.1:2525 and 127.0.0.1:2587; stop \
                 whatever holds the port (`ss -ltnp 'sport = :{port}'`) and run it again"
            );
        }
    }
    let daemon = Daemon::start_embedded(&[2525, 2587]);
    let body = "Delivered by the embedded default.";
    let (ok, transcript) = swaks(
        2525,
        &[
            "--from",
            "alice@localhost",
            "--to",
            "bob@localhost",
            "--header",
            "Subject: embedded default",
            "--body",
            body,
        ],
    );
    assert!(ok, "swaks failed:\n{transcript}");
    let files = wait_for_files(
        &daemon.dir().join("maildir/localhost/bob/Maildir/new"),
        1,
        "bob's Maildir",
    );
    assert_eq!(files.len(), 1, "{files:?}");
    let text = read(&files[0]);
    let head = header_fields(&text);
    assert_eq!(fields(&head, "Return-Path"), ["<alice@localhost>"]);
    assert_eq!(fields(&head, "Delivered-To"), ["bob@localhost"]);
    assert_eq!(fields(&head, "Subject"), ["embedded default"]);
    let received = fields(&head, "Received");
    assert_eq!(received.len(), 1, "{received:#?}");
    assert!(
        received[0].contains("by localhost (mswitch) with ESMTP"),
        "{}",
        received[0]
    );
    assert!(body_of(&text).starts_with(body), "{text}");
    assert!(
        daemon.log().contains("configuration=embedded default"),
        "{}",
        daemon.log()
    );
}
