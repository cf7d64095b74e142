//! Scripted dialogues against the server session, without sockets.

use std::time::{Duration, Instant};

use mswitch_core::status::Status;

use super::*;

/// Drives a session: feeds input, answers its events with a fixed policy, collects replies.
struct Harness {
    s: ServerSession,
    now: Instant,
    messages: Vec<Event>,
    events: Vec<String>,
    closed: bool,
    /// Statuses to give LMTP messages, one per recipient.
    lmtp: Vec<Status>,
}

impl Harness {
    fn new(config: ServerConfig) -> (Self, Vec<String>) {
        let now = Instant::now();
        let mut h = Harness {
            s: ServerSession::new(config, now),
            now,
            messages: Vec::new(),
            events: Vec::new(),
            closed: false,
            lmtp: Vec::new(),
        };
        let greeting = h.drain();
        (h, greeting)
    }

    fn smtp() -> Self {
        Self::new(ServerConfig::new("mx.example.org", Mode::Smtp)).0
    }

    /// Sends `input` and returns the reply lines it produced.
    fn send(&mut self, input: &str) -> Vec<String> {
        self.send_bytes(input.as_bytes())
    }

    fn send_bytes(&mut self, input: &[u8]) -> Vec<String> {
        self.s.handle_input(input, self.now);
        self.drain()
    }

    fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            if let Some(bytes) = self.s.poll_output() {
                out.extend_from_slice(&bytes);
            }
            let Some(event) = self.s.poll_event() else {
                break;
            };
            match &event {
                Event::Hello { name, .. } => self.events.push(format!("hello {name}")),
                Event::Mail { from, .. } => {
                    self.events.push(format!("mail {from}"));
                    let st = if from.to_string().starts_with("<bad") {
                        Status::new(550, (5, 7, 1), "Sender refused")
                    } else {
                        Status::new(250, (2, 1, 0), "Sender OK")
                    };
                    self.s.respond(st, self.now).expect("mail pending");
                }
                Event::Rcpt { to, .. } => {
                    let name = match to {
                        ForwardPath::Mailbox(m) => m.to_string(),
                        ForwardPath::Postmaster => "postmaster".into(),
                    };
                    self.events.push(format!("rcpt {name}"));
                    let st = if name.starts_with("bad") {
                        Status::new(550, (5, 1, 1), "User unknown")
                    } else {
                        Status::new(250, (2, 1, 5), "Recipient OK")
                    };
                    self.s.respond(st, self.now).expect("rcpt pending");
                }
                Event::Message { .. } => {
                    self.events.push("message".into());
                    self.messages.push(event.clone());
                    if self.lmtp.is_empty() {
                        let ok = Status::new(250, (2, 0, 0), "Queued");
                        self.s.respond(ok, self.now).expect("message pending");
                    } else {
                        let lmtp = self.lmtp.clone();
                        self.s.respond_lmtp(&lmtp, self.now).expect("lmtp pending");
                    }
                }
                Event::StartTls => {
                    self.events.push("starttls".into());
                    // A real driver runs the handshake here.
                    self.s.tls_established(self.now);
                }
                Event::TimedOut(t) => self.events.push(format!("timed out: {t}")),
                Event::TooManyErrors { errors, junk } => self
                    .events
                    .push(format!("too many errors: {errors} ({junk} junk)")),
                Event::Close => {
                    self.events.push("close".into());
                    self.closed = true;
                }
                Event::Authenticated {
                    mechanism, authcid, ..
                } => self.events.push(format!("auth {mechanism} {authcid}")),
                Event::AuthFailed {
                    mechanism,
                    authcid,
                    throttled,
                } => self.events.push(format!(
                    "auth-failed {mechanism} {} {}",
                    authcid.as_deref().unwrap_or("-"),
                    throttled.map_or("-", |t| t.as_str())
                )),
            }
        }
        String::from_utf8_lossy(&out)
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn content(&self, i: usize) -> Vec<u8> {
        match &self.messages[i] {
            Event::Message { content, .. } => content.clone(),
            _ => unreachable!("only messages are kept"),
        }
    }
}

fn codes(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect()
}

fn last(lines: &[String]) -> &str {
    lines.last().map_or("", String::as_str)
}

#[test]
fn greeting_and_ehlo() {
    let (mut h, greeting) = Harness::new(ServerConfig::new("mx.example.org", Mode::Smtp));
    assert_eq!(greeting, vec!["220 mx.example.org ESMTP mswitch"]);
    let r = h.send("EHLO client.example\r\n");
    assert_eq!(r[0], "250-mx.example.org greets client.example");
    for ext in [
        "PIPELINING",
        "SIZE 52428800",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "DSN",
        "CHUNKING",
        "BINARYMIME",
        "MT-PRIORITY STANAG4406",
    ] {
        assert!(r.iter().any(|l| &l[4..] == ext), "{ext} missing from {r:?}");
    }
    assert!(!r.iter().any(|l| l.contains("STARTTLS")), "not configured");
    assert!(r.last().is_some_and(|l| l.starts_with("250 ")));
    assert_eq!(h.events, vec!["hello client.example"]);
}

#[test]
fn a_whole_transaction() {
    let mut h = Harness::smtp();
    h.send("EHLO c.example\r\n");
    assert_eq!(
        h.send("MAIL FROM:<a@example.org>\r\n"),
        vec!["250 2.1.0 Sender OK"]
    );
    assert_eq!(
        h.send("RCPT TO:<b@example.com>\r\n"),
        vec!["250 2.1.5 Recipient OK"]
    );
    assert_eq!(codes(&h.send("DATA\r\n")), vec!["354"]);
    let r = h.send("Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n");
    assert_eq!(r, vec!["250 2.0.0 Queued"]);
    assert_eq!(h.content(0), b"Subject: hi\r\n\r\n.dot\r\nbody\r\n");
    // The transaction is over: a new one can start.
    assert_eq!(codes(&h.send("MAIL FROM:<>\r\n")), vec!["250"]);
    assert_eq!(codes(&h.send("QUIT\r\n")), vec!["221"]);
    assert!(h.closed);
}

#[test]
fn command_order_rules() {
    let mut h = Harness::smtp();
    assert_eq!(
        last(&h.send("MAIL FROM:<a@example.org>\r\n")),
        "503 5.5.1 Send HELO/EHLO first"
    );
    h.send("EHLO c.example\r\n");
    assert_eq!(
        last(&h.send("RCPT TO:<b@example.com>\r\n")),
        "503 5.5.1 Need MAIL before RCPT"
    );
    assert_eq!(last(&h.send("DATA\r\n")), "503 5.5.1 Need MAIL command");
    h.send("MAIL FROM:<a@example.org>\r\n");
    assert_eq!(
        last(&h.send("MAIL FROM:<a@example.org>\r\n")),
        "503 5.5.1 Nested MAIL command"
    );
    assert_eq!(last(&h.send("DATA\r\n")), "503 5.5.1 Need RCPT command");
    assert_eq!(codes(&h.send("RCPT TO:<bad@example.com>\r\n")), vec!["550"]);
    // Every RCPT refused: DATA gets 554 (RFC 2920 §3.1).
    assert_eq!(last(&h.send("DATA\r\n")), "554 5.5.1 No valid recipients");
    // RSET ends the transaction; EHLO does too.
    assert_eq!(codes(&h.send("RSET\r\n")), vec!["250"]);
    assert_eq!(codes(&h.send("MAIL FROM:<a@example.org>\r\n")), vec!["250"]);
    h.send("EHLO c.example\r\n");
    assert_eq!(codes(&h.send("RCPT TO:<b@example.com>\r\n")), vec!["503"]);
}

#[test]
fn other_commands() {
    let mut h = Harness::smtp();
    h.send("EHLO c.example\r\n");
    assert_eq!(codes(&h.send("NOOP\r\n")), vec!["250"]);
    assert_eq!(codes(&h.send("VRFY postmaster\r\n")), vec!["252"]);
    assert_eq!(codes(&h.send("EXPN list\r\n")), vec!["502"]);
    assert_eq!(codes(&h.send("HELP\r\n")), vec!["214"]);
    assert_eq!(codes(&h.send("FROB\r\n")), vec!["500"]);
    assert_eq!(codes(&h.send("STARTTLS\r\n")), vec!["502"]);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let mut h = Harness::smtp();
    h.send("EHLO c.example\r\n");
    let r = h.send(
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<bad@example.com>\r\n\
         RCPT TO:<c@example.com>\r\nDATA\r\n",
    );
    assert_eq!(codes(&r), vec!["250", "250", "550", "250", "354"]);
    assert_eq!(codes(&h.send("x\r\n.\r\n")), vec!["250"]);
    match &h.messages[0] {
        Event::Message { recipients, .. } => assert_eq!(recipients.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pipelining_without_the_extension_is_a_synchronization_error() {
    let mut h = Harness::smtp();
    h.send("HELO c.example\r\n");
    let r = h.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n");
    assert_eq!(
        last(&r),
        "554 5.5.0 SMTP synchronization error: command sent before the reply"
    );
    assert!(h.closed);
    assert!(
        !h.events.iter().any(|e| e.starts_with("mail")),
        "{:?}",
        h.events
    );
}

#[test]
fn content_sent_before_354_is_a_synchronization_error() {
    let mut h = Harness::smtp();
    h.send("EHLO c.example\r\n");
    let r =
        h.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: x\r\n");
    assert_eq!(codes(&r), vec!["250", "250", "554"]);
    assert!(h.closed);
}

#[test]
fn starttls_discards_injected_plaintext_and_forgets_state() {
    let mut config = ServerConfig::new("mx.example.org", Mode::Smtp);
    config.starttls = true;
    let (mut h, _) = Harness::new(config);
    let r = h.send("EHLO c.example\r\n");
    assert!(r.iter().any(|l| l.ends_with("STARTTLS")));
    // The classic injection: a command pipelined after STARTTLS in the same plaintext packet.
    let r = h.send("STARTTLS\r\nMAIL FROM:<evil@example.net>\r\n");
    assert_eq!(r, vec!["220 2.0.0 Ready to start TLS"]);
    assert!(
        !h.events.iter().any(|e| e.starts_with("mail")),
        "{:?}",
        h.events
    );
    assert!(h.s.is_tls());
    // Everything learned before TLS is gone: EHLO is needed again.
    assert_eq!(codes(&h.send("MAIL FROM:<a@example.org>\r\n")), vec!["503"]);
    let r = h.send("EHLO c.example\r\n");
    assert!(
        !r.iter().any(|l| l.contains("STARTTLS")),
        "not offered twice"
    );
    assert_eq!(codes(&h.send("STARTTLS\r\n")), vec!["503"]);
    assert_eq!(codes(&h.send("MAIL FROM:<a@example.org>\r\n")), vec!["250"]);
}

#[test]
fn limits() {
    let mut config = ServerConfig::new("mx.example.org", Mode::Smtp);
    config.max_recipients = 2;
    config.max_message_size = 1000;
    let (mut h, _) = Harness::new(config);
    h.send("EHLO c.example\r\n");
    assert_eq!(
        last(&h.send("MAIL FROM:<a@example.org> SIZE=5000\r\n")),
        "552 5.3.4 Message size exceeds fixed maximum message size"
    );
    h.send("MAIL FROM:<a@example.org> SIZE=500\r\n");
    h.send("RCPT TO:<b@example.com>\r\n");
    h.send("RCPT TO:<c@example.com>\r\n");
    assert_eq!(
        last(&h.send("RCPT TO:<d@example.com>\r\n")),
        "452 4.5.3 Too many recipients"
    );
    // The message itself over the limit: read to the end, then refused.
    h.send("DATA\r\n");
    let big = format!("{}.\r\n", format!("{}\r\n", "x".repeat(100)).repeat(20));
    assert_eq!(codes(&h.send(&big)), vec!["552"]);
    assert!(h.messages.is_empty());
    // An over-long command line.
    let long = format!("NOOP {}\r\n", "a".repeat(600));
    assert!(last(&h.send(&long)).starts_with("500 5.5.2 line too long"));
    // Longer than even MAIL may be: the rest of the line is skipped without buffering it.
    let huge = format!("MAIL FROM:<a@example.org> {}\r\n", "X".repeat(5000));
    assert_eq!(last(&h.send(&huge)), "500 5.5.2 Line too long");
    assert_eq!(
        codes(&h.send("NOOP\r\n")),
        vec!["250"],
        "the session goes on"
    );
}

#[test]
fn too_many_errors_close_the_session() {
    let mut h = Harness::smtp();
    let mut all = Vec::new();
    for _ in 0..DEFAULT_MAX_ERRORS {
        all.extend(h.send("BOGUS\r\n"));
    }
    assert_eq!(last(&all), "421 4.7.0 Too many errors, closing connection");
    assert!(h.closed);
}

#[test]
fn junk_commands_past_the_limit_count_as_errors() {
    let mut config = ServerConfig::new("mx.example.org", Mode::Smtp);
    config.max_junk_commands = 5;
    let (mut h, _) = Harness::new(config);
    h.send("EHLO client.example\r\n");
    // Within the limit: as many as it allows, every one answered.
    for cmd in ["NOOP", "RSET", "VRFY x", "HELP", "NOOP"] {
        assert_eq!(codes(&h.send(&format!("{cmd}\r\n"))).len(), 1, "{cmd}");
    }
    // An accepted message starts the count again.
    h.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    assert_eq!(codes(&h.send("hi\r\n.\r\n")), vec!["250"]);
    for _ in 0..5 {
        assert_eq!(codes(&h.send("NOOP\r\n")), vec!["250"]);
    }
    assert!(!h.closed);
    // Past it, each junk command is still answered but counts as an error: with the default
    // error limit, the tenth closes the session.
    let mut all = Vec::new();
    for _ in 0..DEFAULT_MAX_ERRORS {
        all.extend(h.send("NOOP\r\n"));
    }
    assert_eq!(last(&all), "421 4.7.0 Too many errors, closing connection");
    assert!(h.closed);
    assert!(
        h.events
            .iter()
            .any(|e| e == "too many errors: 10 (10 junk)"),
        "{:?}",
        h.events
    );
}

#[test]
fn timeout_closes_with_421() {
    let mut h = Harness::smtp();
    let deadline = h.s.poll_timeout().expect("a deadline");
    assert_eq!(deadline, h.now + DEFAULT_COMMAND_TIMEOUT);
    h.s.handle_timeout(h.now + Duration::from_secs(10));
    assert!(h.drain().is_empty(), "not yet");
    h.s.handle_timeout(deadline);
    assert_eq!(h.drain(), vec!["421 4.4.2 Timeout, closing connection"]);
    assert!(h.closed);
}

/// A session with short timeouts: commands 10 s, data blocks 10 s, whole content 30 s.
fn short_timeouts() -> Harness {
    let mut config = ServerConfig::new("mx.example.org", Mode::Smtp);
    config.command_timeout = Duration::from_secs(10);
    config.data_timeout = Duration::from_secs(10);
    config.data_time_limit = Some(Duration::from_secs(30));
    Harness::new(config).0
}

#[test]
fn a_trickled_command_line_gets_no_more_time() {
    let mut h = short_timeouts();
    let start = h.now;
    // One octet every 4 s: each arrives well within the command timeout, the line never does.
    for (i, b) in b"EHLO".iter().enumerate() {
        h.now = start + Duration::from_secs(4 * i as u64);
        assert!(h.send_bytes(&[*b]).is_empty());
        assert!(!h.closed);
    }
    let deadline = h.s.poll_timeout().expect("a deadline");
    assert_eq!(
        deadline,
        start + Duration::from_secs(10),
        "from the greeting"
    );
    h.now = deadline;
    h.s.handle_timeout(deadline);
    assert_eq!(h.drain(), vec!["421 4.4.2 Timeout, closing connection"]);
    assert!(h.closed);
    assert!(h.events.contains(&"timed out: command timeout".to_owned()));
}

#[test]
fn each_complete_command_gets_the_full_command_timeout() {
    let mut h = short_timeouts();
    let start = h.now;
    h.now = start + Duration::from_secs(8);
    assert_eq!(codes(&h.send("EHLO c.example\r\n")), vec!["250"]);
    assert_eq!(
        h.s.poll_timeout(),
        Some(start + Duration::from_secs(18)),
        "the next command's time runs from this reply"
    );
}

#[test]
fn trickled_content_is_cut_at_the_data_time_limit() {
    let mut h = short_timeouts();
    h.send("EHLO c.example\r\n");
    h.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n");
    assert_eq!(codes(&h.send("DATA\r\n")), vec!["354"]);
    let start = h.now;
    // A line every 5 s: never a pause as long as the data timeout, but no end either.
    let mut t = 0;
    while h
        .s
        .poll_timeout()
        .is_some_and(|d| d > start + Duration::from_secs(t + 5))
    {
        t += 5;
        h.now = start + Duration::from_secs(t);
        h.send("Subject: slow\r\n");
    }
    let deadline = h.s.poll_timeout().expect("a deadline");
    assert_eq!(
        deadline,
        start + Duration::from_secs(30),
        "the data time limit"
    );
    h.now = deadline;
    h.s.handle_timeout(deadline);
    assert_eq!(
        h.drain(),
        vec!["421 4.4.2 Message transfer took too long, closing connection"]
    );
    assert!(h.events.contains(&"timed out: data time limit".to_owned()));
    assert!(h.messages.is_empty(), "nothing was handed over");
}

#[test]
fn a_pause_in_the_content_is_a_data_timeout() {
    let mut h = short_timeouts();
    h.send("EHLO c.example\r\n");
    h.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n");
    h.send("DATA\r\n");
    h.send("Subject: x\r\n");
    let deadline = h.s.poll_timeout().expect("a deadline");
    assert_eq!(deadline, h.now + Duration::from_secs(10));
    h.s.handle_timeout(deadline);
    assert_eq!(
        h.drain(),
        vec!["421 4.4.2 Timeout waiting for data, closing connection"]
    );
    assert!(h.events.contains(&"timed out: data timeout".to_owned()));
}

#[test]
fn the_data_time_limit_spans_bdat_chunks() {
    let mut h = short_timeouts();
    h.send("EHLO c.example\r\n");
    h.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n");
    let start = h.now;
    // A small chunk every 8 s, each command within the command timeout.
    let mut t = 0;
    while t <= 24 {
        h.now = start + Duration::from_secs(t);
        assert_eq!(codes(&h.send("BDAT 3\r\nabc")), vec!["250"]);
        t += 8;
    }
    let deadline = h.s.poll_timeout().expect("a deadline");
    assert_eq!(
        deadline,
        start + Duration::from_secs(30),
        "capped by the limit"
    );
    h.s.handle_timeout(deadline);
    assert_eq!(
        h.drain(),
        vec!["421 4.4.2 Message transfer took too long, closing connection"]
    );
}

#[test]
fn a_tls_handshake_that_never_ends_times_out() {
    let mut config = ServerConfig::new("mx.example.org", Mode::Smtp);
    config.starttls = true;
    config.command_timeout = Duration::from_secs(10);
    let start = Instant::now();
    let mut s = ServerSession::new(config, start);
    s.handle_input(b"EHLO c.example\r\n", start);
    while s.poll_event().is_some() {}
    s.handle_input(b"STARTTLS\r\n", start);
    let mut events = Vec::new();
    while let Some(e) = s.poll_event() {
        events.push(e);
    }
    assert_eq!(events, vec![Event::StartTls]);
    // The driver runs the handshake; the client never finishes it.
    let deadline = s.poll_timeout().expect("the handshake has a deadline");
    assert_eq!(deadline, start + Duration::from_secs(10));
    s.handle_timeout(deadline);
    assert!(s.is_closed());
    let mut events = Vec::new();
    while let Some(e) = s.poll_event() {
        events.push(e);
    }
    assert_eq!(
        events,
        vec![Event::TimedOut(Timeout::Command), Event::Close]
    );
}

#[test]
fn submission_requires_authentication() {
    let (mut h, _) = Harness::new(ServerConfig::new("mx.example.org", Mode::Submission));
    h.send("EHLO c.example\r\n");
    assert_eq!(
        last(&h.send("MAIL FROM:<a@example.org>\r\n")),
        "530 5.7.0 Authentication required"
    );
    h.s.set_authenticated("alice");
    assert_eq!(codes(&h.send("MAIL FROM:<a@example.org>\r\n")), vec!["250"]);
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut h = Harness::smtp();
    h.send("EHLO c.example\r\n");
    assert_eq!(
        codes(&h.send("MAIL FROM:<jörg@example.org>\r\n")),
        vec!["553"]
    );
    assert_eq!(
        codes(&h.send("MAIL FROM:<jörg@example.org> SMTPUTF8\r\n")),
        vec!["250"]
    );
    assert_eq!(codes(&h.send("RCPT TO:<用户@例子.广告>\r\n")), vec!["250"]);
}

#[test]
fn lmtp_answers_per_recipient() {
    let (mut h, greeting) = Harness::new(ServerConfig::new("store.example", Mode::Lmtp));
    assert_eq!(greeting, vec!["220 store.example LMTP mswitch"]);
    assert_eq!(codes(&h.send("EHLO c.example\r\n")), vec!["500"]);
    assert_eq!(codes(&h.send("LHLO c.example\r\n")), vec!["250"]);
    h.send("MAIL FROM:<a@example.org>\r\n");
    h.send("RCPT TO:<b@example.com>\r\n");
    h.send("RCPT TO:<c@example.com>\r\n");
    h.lmtp = vec![
        Status::new(250, (2, 0, 0), "delivered to b"),
        Status::new(452, (4, 2, 2), "c is over quota"),
    ];
    h.send("DATA\r\n");
    let r = h.send("hello\r\n.\r\n");
    assert_eq!(
        r,
        vec!["250 2.0.0 delivered to b", "452 4.2.2 c is over quota"]
    );
}

#[test]
fn bdat_chunks() {
    let mut h = Harness::smtp();
    h.send("EHLO c.example\r\n");
    h.send("MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n");
    h.send("RCPT TO:<b@example.com>\r\n");
    assert_eq!(
        h.send("BDAT 5\r\nhel\r\n"),
        vec!["250 2.0.0 5 octets received"]
    );
    // Binary-safe: no dot-unstuffing, CRLF.CRLF means nothing inside a chunk.
    let r = h.send("BDAT 7 LAST\r\n\r\n.\r\nxy");
    assert_eq!(r, vec!["250 2.0.0 Queued"]);
    assert_eq!(h.content(0), b"hel\r\n\r\n.\r\nxy");
    // DATA may not follow BDAT in one transaction.
    h.send("MAIL FROM:<a@example.org>\r\n");
    h.send("RCPT TO:<b@example.com>\r\n");
    h.send("BDAT 1\r\nz");
    assert_eq!(
        last(&h.send("DATA\r\n")),
        "503 5.5.1 DATA may not follow BDAT"
    );
    // A BDAT refused for order is swallowed, so the session stays in step.
    h.send("RSET\r\n");
    assert_eq!(codes(&h.send("BDAT 4 LAST\r\nNOOP")), vec!["503"]);
    assert_eq!(codes(&h.send("NOOP\r\n")), vec!["250"]);
}

#[test]
fn bdat_without_pipelining() {
    // The chunk follows BDAT at once (RFC 3030 §2): not a synchronisation error.
    let mut config = ServerConfig::new("mx.example.org", Mode::Smtp);
    config.pipelining = false;
    let (mut h, _) = Harness::new(config);
    h.send("EHLO c.example\r\n");
    h.send("MAIL FROM:<a@example.org>\r\n");
    h.send("RCPT TO:<b@example.com>\r\n");
    assert_eq!(codes(&h.send("BDAT 5\r\nhello")), vec!["250"]);
    assert_eq!(codes(&h.send("BDAT 2 LAST\r\n!!")), vec!["250"]);
    assert_eq!(h.content(0), b"hello!!");
    // But a command sent after the chunk, before its reply, still is one.
    h.send("MAIL FROM:<a@example.org>\r\n");
    h.send("RCPT TO:<b@example.com>\r\n");
    assert_eq!(codes(&h.send("BDAT 1 LAST\r\nxQUIT\r\n")), vec!["554"]);
    assert!(h.closed);
}

#[test]
fn lmtp_refused_content_gets_a_reply_per_recipient() {
    let (mut h, _) = Harness::new(ServerConfig::new("store.example", Mode::Lmtp));
    h.send("LHLO c.example\r\n");
    h.send("MAIL FROM:<a@example.org>\r\n");
    h.send("RCPT TO:<b@example.com>\r\n");
    h.send("RCPT TO:<c@example.com>\r\n");
    h.send("DATA\r\n");
    let r = h.send("bare\nline\r\n.\r\n");
    assert_eq!(codes(&r), vec!["550", "550"]);
    assert!(h.messages.is_empty());
}

#[test]
fn pipelined_commands_after_a_refused_mail_are_not_errors() {
    let mut h = Harness::smtp();
    h.send("EHLO c.example\r\n");
    let mut group = String::from("MAIL FROM:<bad@example.org>\r\n");
    for i in 0..15 {
        group.push_str(&format!("RCPT TO:<r{i}@example.com>\r\n"));
    }
    group.push_str("DATA\r\n");
    let r = h.send(&group);
    let c = codes(&r);
    assert_eq!(c[0], "550");
    assert_eq!(c.len(), 17, "{r:?}");
    assert!(c[1..].iter().all(|c| *c == "503"), "{r:?}");
    assert!(!h.closed, "no 421 for an ordinary pipelined group");
}

#[test]
fn smuggled_end_of_data_never_ends_the_message() {
    for fake in [
        "\n.\n",
        "\r.\r",
        "\r\n.\n",
        "\n.\r\n",
        "\r.\r\n",
        "\r\n\0.\r\n",
        "\r\n.\0\r\n",
    ] {
        let mut h = Harness::smtp();
        h.send("EHLO c.example\r\n");
        h.send("MAIL FROM:<a@example.org>\r\n");
        h.send("RCPT TO:<b@example.com>\r\n");
        h.send("DATA\r\n");
        let input = format!(
            "Subject: one{fake}MAIL FROM:<evil@example.net>\r\nRCPT TO:<victim@example.com>\r\n\
             DATA\r\nSubject: smuggled\r\n.\r\n"
        );
        let r = h.send(&input);
        let smuggled = h
            .events
            .iter()
            .any(|e| e.contains("evil") || e.contains("victim"));
        assert!(
            !smuggled,
            "{fake:?}: a second transaction ran: {:?}",
            h.events
        );
        // Without a NUL the fake ending has bare CR/LF: refused once the real end arrives.
        assert_eq!(r.len(), 1, "{fake:?}: {r:?}");
        assert!(h.messages.len() <= 1, "{fake:?}");
        if !fake.contains('\0') {
            assert_eq!(&r[0][..9], "550 5.5.2", "{fake:?}");
        }
    }
}

#[test]
fn bare_line_endings_in_commands_are_refused() {
    let mut h = Harness::smtp();
    h.send("EHLO c.example\r\n");
    let r = h.send("MAIL FROM:<a@example.org>\nRCPT TO:<b@example.com>\r\n");
    // RFC 5321 §4.1.2: invalid characters in a command get 501.
    assert_eq!(codes(&r), vec!["501"]);
    assert!(r[0].starts_with("501 5.5.2"), "{r:?}");
    assert!(!h.events.iter().any(|e| e.starts_with("mail")));
}

#[test]
fn respond_without_a_pending_decision_is_a_usage_error() {
    let mut h = Harness::smtp();
    let ok = Status::new(250, (2, 0, 0), "OK");
    assert_eq!(
        h.s.respond(ok.clone(), h.now),
        Err(UsageError::NothingPending)
    );
    assert_eq!(
        h.s.respond_lmtp(&[ok], h.now),
        Err(UsageError::NothingPending)
    );
}

mod auth {
    use std::sync::Arc;

    use super::*;
    use crate::sasl::{self, ClientExchange, ClientMechanism, PasswordFile};

    fn credentials() -> Arc<PasswordFile> {
        let verifier = sasl::hash_password("secret", b"0123456789abcdef", 4096).expect("hash");
        Arc::new(PasswordFile::parse(&format!("alice:{verifier}\n")).expect("password file"))
    }

    fn config(mode: Mode, starttls: bool) -> ServerConfig {
        let mut c = ServerConfig::new("mx.example.org", mode);
        c.starttls = starttls;
        c.auth = Some(AuthConfig::new(credentials()));
        c
    }

    fn b64(s: &str) -> String {
        sasl::encode(s.as_bytes())
    }

    /// A session that has done STARTTLS and EHLO again.
    fn after_tls(mode: Mode) -> Harness {
        let (mut h, _) = Harness::new(config(mode, true));
        h.send("EHLO c.example\r\n");
        h.send("STARTTLS\r\n");
        h.send("EHLO c.example\r\n");
        h
    }

    /// Sessions from `client` sharing `limiter`, after STARTTLS and EHLO.
    fn limited(limiter: &Arc<AuthLimiter>, client: [u8; 4]) -> Harness {
        let mut c = config(Mode::Submission, true);
        if let Some(a) = c.auth.as_mut() {
            a.limiter = Some(limiter.clone());
            a.max_failures = 100;
        }
        let (mut h, _) = Harness::new(c);
        h.s.set_client_address(IpAddr::from(client));
        h.send("EHLO c.example\r\n");
        h.send("STARTTLS\r\n");
        h.send("EHLO c.example\r\n");
        h
    }

    fn limiter(per_client: u32, per_user: u32) -> Arc<AuthLimiter> {
        Arc::new(AuthLimiter::new(crate::server::auth_limit::AuthLimits {
            per_client,
            per_user,
            window: Duration::from_secs(60),
        }))
    }

    #[test]
    fn the_limiter_refuses_a_client_across_sessions() {
        let l = limiter(2, 0);
        for user in ["alice", "mallory"] {
            let mut h = limited(&l, [192, 0, 2, 1]);
            let r = h.send(&format!(
                "AUTH PLAIN {}\r\n",
                b64(&format!("\0{user}\0wrong"))
            ));
            assert_eq!(last(&r), "535 5.7.8 Authentication credentials invalid");
            assert_eq!(
                h.events.last().map(String::as_str),
                Some(&*format!("auth-failed PLAIN {user} -"))
            );
        }
        // The right password, from that address: refused before the credentials are looked at.
        let mut h = limited(&l, [192, 0, 2, 1]);
        let r = h.send(&format!("AUTH PLAIN {}\r\n", b64("\0alice\0secret")));
        assert!(last(&r).starts_with("454 4.7.0 "), "{r:?}");
        assert_eq!(
            h.events.last().map(String::as_str),
            Some("auth-failed PLAIN - client")
        );
        assert_eq!(h.s.authenticated(), None);
        // From another address it works.
        let mut h = limited(&l, [192, 0, 2, 2]);
        let r = h.send(&format!("AUTH PLAIN {}\r\n", b64("\0alice\0secret")));
        assert_eq!(r, vec!["235 2.7.0 Authentication successful"]);
    }

    #[test]
    fn the_limiter_refuses_a_user_alike_whether_it_exists_or_not() {
        let l = limiter(0, 2);
        for (i, user) in ["alice", "alice", "nobody", "nobody"].iter().enumerate() {
            let mut h = limited(&l, [192, 0, 2, i as u8 + 1]);
            let r = h.send(&format!(
                "AUTH PLAIN {}\r\n",
                b64(&format!("\0{user}\0wrong"))
            ));
            assert_eq!(last(&r), "535 5.7.8 Authentication credentials invalid");
        }
        let mut replies = Vec::new();
        for (user, password) in [("alice", "secret"), ("nobody", "secret")] {
            // PLAIN, LOGIN and SCRAM all get the same 454, with the right password too.
            let mut h = limited(&l, [198, 51, 100, 1]);
            let r = h.send(&format!(
                "AUTH PLAIN {}\r\n",
                b64(&format!("\0{user}\0{password}"))
            ));
            replies.push(last(&r).to_owned());
            assert!(
                h.events.contains(&format!("auth-failed PLAIN {user} user")),
                "{:?}",
                h.events
            );
            h.send("AUTH LOGIN\r\n");
            h.send(&format!("{}\r\n", b64(user)));
            let r = h.send(&format!("{}\r\n", b64(password)));
            replies.push(last(&r).to_owned());
            h.s.set_entropy([7; 32]);
            let (mut client, first) = ClientExchange::start(
                ClientMechanism::ScramSha256,
                user,
                password,
                None,
                "clientnonce0123456789",
            )
            .expect("client starts");
            let first = first.expect("SCRAM sends an initial response");
            let r = h.send(&format!("AUTH SCRAM-SHA-256 {first}\r\n"));
            let challenge = last(&r).strip_prefix("334 ").expect("challenge").to_owned();
            let fin = client.step(&challenge).expect("final");
            let r = h.send(&format!("{fin}\r\n"));
            replies.push(last(&r).to_owned());
            assert_eq!(h.s.authenticated(), None);
        }
        assert!(replies.iter().all(|r| r == &replies[0]), "{replies:?}");
        assert!(replies[0].starts_with("454 4.7.0 "), "{replies:?}");
        // Another user is not affected; a success forgets the user's failures.
        let l = limiter(0, 2);
        let mut h = limited(&l, [192, 0, 2, 9]);
        h.send(&format!("AUTH PLAIN {}\r\n", b64("\0alice\0wrong")));
        h.send(&format!("AUTH PLAIN {}\r\n", b64("\0alice\0secret")));
        assert_eq!(h.s.authenticated(), Some("alice"));
        assert_eq!(l.tracked().1, 0);
    }

    #[test]
    fn password_mechanisms_need_tls() {
        let (mut h, _) = Harness::new(config(Mode::Smtp, true));
        let r = h.send("EHLO c.example\r\n");
        assert!(r.iter().any(|l| &l[4..] == "AUTH SCRAM-SHA-256"), "{r:?}");
        let plain = b64("\0alice\0secret");
        assert_eq!(
            last(&h.send(&format!("AUTH PLAIN {plain}\r\n"))),
            "538 5.7.11 Encryption required for requested authentication mechanism"
        );
        h.send("STARTTLS\r\n");
        let r = h.send("EHLO c.example\r\n");
        assert!(
            r.iter()
                .any(|l| &l[4..] == "AUTH SCRAM-SHA-256 PLAIN LOGIN"),
            "{r:?}"
        );
    }

    #[test]
    fn plain_and_login() {
        let mut h = after_tls(Mode::Submission);
        let plain = b64("\0alice\0secret");
        assert_eq!(
            h.send(&format!("AUTH PLAIN {plain}\r\n")),
            vec!["235 2.7.0 Authentication successful"]
        );
        assert!(
            h.events.contains(&"auth PLAIN alice".to_owned()),
            "{:?}",
            h.events
        );
        assert_eq!(h.s.authenticated(), Some("alice"));
        assert_eq!(
            codes(&h.send(&format!("AUTH PLAIN {plain}\r\n"))),
            vec!["503"]
        );
        // Submission now accepts MAIL.
        assert_eq!(
            codes(&h.send("MAIL FROM:<alice@example.org>\r\n")),
            vec!["250"]
        );
        assert_eq!(codes(&h.send("AUTH LOGIN\r\n")), vec!["503"]);

        let mut h = after_tls(Mode::Smtp);
        assert_eq!(h.send("AUTH LOGIN\r\n"), vec!["334 VXNlcm5hbWU6"]);
        assert_eq!(
            h.send(&format!("{}\r\n", b64("alice"))),
            vec!["334 UGFzc3dvcmQ6"]
        );
        assert_eq!(
            codes(&h.send(&format!("{}\r\n", b64("secret")))),
            vec!["235"]
        );
    }

    #[test]
    fn cancel_bad_base64_and_order() {
        let mut h = after_tls(Mode::Smtp);
        h.send("AUTH LOGIN\r\n");
        assert_eq!(codes(&h.send("*\r\n")), vec!["501"]);
        assert!(h.s.authenticated().is_none());
        assert_eq!(codes(&h.send("AUTH PLAIN !!!notbase64\r\n")), vec!["501"]);
        assert_eq!(codes(&h.send("AUTH KERBEROS_V4\r\n")), vec!["504"]);
        h.send("MAIL FROM:<a@example.org>\r\n");
        let plain = b64("\0alice\0secret");
        assert_eq!(
            last(&h.send(&format!("AUTH PLAIN {plain}\r\n"))),
            "503 5.5.1 AUTH not permitted during a mail transaction"
        );
    }

    #[test]
    fn failed_attempts_are_limited() {
        let mut h = after_tls(Mode::Smtp);
        let wrong = b64("\0alice\0guess");
        let mut all = Vec::new();
        for _ in 0..DEFAULT_MAX_AUTH_FAILURES {
            all.extend(h.send(&format!("AUTH PLAIN {wrong}\r\n")));
        }
        assert_eq!(codes(&all), vec!["535", "535", "535", "421"]);
        assert!(h.closed);
    }

    #[test]
    fn scram_needs_entropy_then_works() {
        let mut h = after_tls(Mode::Smtp);
        assert_eq!(codes(&h.send("AUTH SCRAM-SHA-256\r\n")), vec!["454"]);
        h.s.set_entropy([7; 32]);
        let (mut client, first) = ClientExchange::start(
            ClientMechanism::ScramSha256,
            "alice",
            "secret",
            None,
            "clientnonce0123456789",
        )
        .expect("client starts");
        let first = first.expect("SCRAM sends an initial response");
        let mut reply = h.send(&format!("AUTH SCRAM-SHA-256 {first}\r\n"));
        let mut rounds = 0;
        while let Some(challenge) = reply.first().and_then(|l| l.strip_prefix("334 ")) {
            let response = client.step(challenge).expect("server proves itself");
            reply = h.send(&format!("{response}\r\n"));
            rounds += 1;
            assert!(rounds < 5, "{reply:?}");
        }
        assert_eq!(reply, vec!["235 2.7.0 Authentication successful"]);
        client.finish().expect("server signature verified");
        assert_eq!(h.s.authenticated(), Some("alice"));
    }

    #[test]
    fn authentication_before_tls_is_forgotten_after_it() {
        let mut c = config(Mode::Smtp, true);
        if let Some(a) = c.auth.as_mut() {
            a.allow_plaintext = true;
        }
        let (mut h, _) = Harness::new(c);
        h.send("EHLO c.example\r\n");
        let plain = b64("\0alice\0secret");
        assert_eq!(
            codes(&h.send(&format!("AUTH PLAIN {plain}\r\n"))),
            vec!["235"]
        );
        h.send("STARTTLS\r\n");
        assert!(h.s.authenticated().is_none());
    }
}
