//! The client against the crate's server session, wired together in memory with a virtual
//! clock, and against scripted peers for what the server cannot be made to do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mswitch_core::address::{Address, Mailbox};
use mswitch_core::envelope::{Notify, ReversePath};
use mswitch_core::status::Status;

use super::*;
use crate::server::session::Event as ServerEvent;
use crate::server::{Mode as ServerMode, ServerConfig, ServerSession};

const CLIENT_NAME: &str = "client.example.net";

fn mailbox(s: &str) -> Mailbox {
    Mailbox::parse(s).expect("test address")
}

fn to(s: &str) -> ForwardPath {
    ForwardPath::Mailbox(mailbox(s))
}

fn message(recipients: &[&str], content: &[u8]) -> OutgoingMessage {
    OutgoingMessage {
        from: ReversePath::Address(Address::Mailbox(mailbox("alice@example.net"))),
        mail_params: MailParams::default(),
        recipients: recipients
            .iter()
            .map(|r| (to(r), RcptParams::default()))
            .collect(),
        content: Arc::from(content),
        eight_bit: false,
        smtputf8: false,
    }
}

const BODY: &[u8] = b"Subject: hello\r\n\r\nHi Bob.\r\n";

fn smtp_server() -> ServerConfig {
    ServerConfig::new("mx.example.org", ServerMode::Smtp)
}

fn client_config(mode: Mode) -> ClientConfig {
    ClientConfig::new(CLIENT_NAME, mode)
}

/// A message as the server queued it.
#[derive(Debug, Clone)]
struct Received {
    params: MailParams,
    recipients: Vec<(ForwardPath, RcptParams)>,
    content: Vec<u8>,
}

type Filter = Box<dyn FnMut(Vec<u8>) -> Vec<u8>>;

/// A client and a server session passing bytes to each other until neither has anything to
/// say. The server's decisions: every sender accepted; recipients whose local part starts with
/// "bad" refused (550 5.1.1); messages containing "REJECT-ME" refused (554 5.7.1), others
/// queued (250); for LMTP, recipients starting with "full" get 452 4.2.2 after the data.
struct Pair {
    client: ClientSession,
    server: ServerSession,
    now: Instant,
    events: Vec<Event>,
    received: Vec<Received>,
    /// MAIL commands the server saw.
    mails: usize,
    /// Everything the client wrote, and each write separately.
    c2s: Vec<u8>,
    writes: Vec<Vec<u8>>,
    /// Everything the server wrote (before any filter).
    s2c: Vec<u8>,
    /// A man in the middle rewriting the server's output.
    filter: Option<Filter>,
    /// A man in the middle adding this after the server's reply to STARTTLS: in the same read,
    /// or as a read of its own.
    inject_after_starttls: Option<(Vec<u8>, bool)>,
    server_closed_seen: bool,
}

impl Pair {
    fn new(server: ServerConfig, client: ClientConfig) -> Self {
        let now = Instant::now();
        Pair {
            client: ClientSession::new(client, now),
            server: ServerSession::new(server, now),
            now,
            events: Vec::new(),
            received: Vec::new(),
            mails: 0,
            c2s: Vec::new(),
            writes: Vec::new(),
            s2c: Vec::new(),
            filter: None,
            inject_after_starttls: None,
            server_closed_seen: false,
        }
    }

    fn smtp() -> Self {
        Pair::new(smtp_server(), client_config(Mode::Smtp))
    }

    fn send(&mut self, msg: OutgoingMessage) -> usize {
        self.client.send(msg, self.now).expect("session open")
    }

    /// Runs both sides until nothing moves.
    fn run(&mut self) {
        for _ in 0..10_000 {
            let mut progress = false;
            let mut starttls = false;
            while let Some(event) = self.server.poll_event() {
                progress = true;
                starttls |= matches!(event, ServerEvent::StartTls);
                self.server_event(event);
            }
            let server_output = self.server.poll_output();
            if let Some(mut out) = server_output {
                progress = true;
                self.s2c.extend_from_slice(&out);
                if let Some(filter) = &mut self.filter {
                    out = filter(out);
                }
                let mut separate = None;
                if starttls && let Some((inject, own_read)) = self.inject_after_starttls.take() {
                    if own_read {
                        separate = Some(inject);
                    } else {
                        out.extend_from_slice(&inject);
                    }
                }
                self.client.handle_input(&out, self.now);
                if let Some(inject) = separate {
                    self.client.handle_input(&inject, self.now);
                }
            } else if self.server.is_closed() && !self.server_closed_seen {
                self.server_closed_seen = true;
                self.client.handle_eof(self.now);
                progress = true;
            }
            while let Some(event) = self.client.poll_event() {
                progress = true;
                if event == Event::StartTls {
                    // A real driver runs the handshake here.
                    self.client.tls_established(self.now);
                }
                self.events.push(event);
            }
            while let Some(out) = self.client.poll_output() {
                progress = true;
                self.c2s.extend_from_slice(&out);
                self.writes.push(out.clone());
                if !self.server.is_closed() {
                    self.server.handle_input(&out, self.now);
                }
                self.client.handle_written(self.now);
            }
            if !progress {
                return;
            }
        }
        panic!("the sessions did not settle");
    }

    fn server_event(&mut self, event: ServerEvent) {
        let now = self.now;
        match event {
            ServerEvent::Mail { .. } => {
                self.mails += 1;
                let ok = Status::new(250, (2, 1, 0), "Sender OK");
                self.server.respond(ok, now).expect("mail pending");
            }
            ServerEvent::Rcpt { to, .. } => {
                let st = if local_part(&to).starts_with("bad") {
                    Status::new(550, (5, 1, 1), "User unknown")
                } else {
                    Status::new(250, (2, 1, 5), "Recipient OK")
                };
                self.server.respond(st, now).expect("rcpt pending");
            }
            ServerEvent::Message {
                params,
                recipients,
                content,
                ..
            } => {
                let lmtp: Vec<Status> = recipients
                    .iter()
                    .map(|r| {
                        if local_part(&r.to).starts_with("full") {
                            Status::new(452, (4, 2, 2), "Mailbox full")
                        } else {
                            Status::new(250, (2, 1, 5), "Delivered")
                        }
                    })
                    .collect();
                let reject = content.windows(9).any(|w| w == b"REJECT-ME");
                self.received.push(Received {
                    params,
                    recipients: recipients.into_iter().map(|r| (r.to, r.params)).collect(),
                    content,
                });
                if self.server.respond_lmtp(&lmtp, now).is_ok() {
                    return;
                }
                let st = if reject {
                    Status::new(554, (5, 7, 1), "Rejected by policy")
                } else {
                    Status::new(250, (2, 0, 0), "Queued")
                };
                self.server.respond(st, now).expect("message pending");
            }
            ServerEvent::StartTls => self.server.tls_established(now),
            _ => {}
        }
    }

    fn delivered(&self) -> Vec<(usize, Vec<RecipientResult>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Delivered { message, results } => Some((*message, results.clone())),
                _ => None,
            })
            .collect()
    }

    /// The results of the only message.
    fn only(&self) -> Vec<RecipientResult> {
        let d = self.delivered();
        assert_eq!(d.len(), 1, "{:?}", self.events);
        d.into_iter().next().map(|(_, r)| r).unwrap_or_default()
    }

    fn closed(&self) -> Option<CloseReason> {
        self.events.iter().find_map(|e| match e {
            Event::Closed { reason } => Some(reason.clone()),
            _ => None,
        })
    }

    fn c2s_text(&self) -> String {
        String::from_utf8_lossy(&self.c2s).into_owned()
    }

    /// The command lines the client wrote (content excluded: lines of known verbs only).
    fn commands(&self) -> Vec<String> {
        const VERBS: [&str; 11] = [
            "EHLO", "LHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "QUIT", "STARTTLS",
            "AUTH",
        ];
        self.c2s_text()
            .split("\r\n")
            .filter(|l| VERBS.iter().any(|v| l.starts_with(v)))
            .map(str::to_owned)
            .collect()
    }
}

fn local_part(to: &ForwardPath) -> String {
    to.mailbox()
        .map(|m| m.local_part().as_str().to_owned())
        .unwrap_or_default()
}

/// (recipient, outcome, code, enhanced code, stage) of each result.
fn summary(results: &[RecipientResult]) -> Vec<(String, Outcome, u16, String, Stage)> {
    results
        .iter()
        .map(|r| {
            (
                local_part(&r.recipient),
                r.outcome,
                r.status.code,
                r.status.enhanced.to_string(),
                r.stage,
            )
        })
        .collect()
}

fn row(
    who: &str,
    outcome: Outcome,
    code: u16,
    enhanced: &str,
    stage: Stage,
) -> (String, Outcome, u16, String, Stage) {
    (who.to_owned(), outcome, code, enhanced.to_owned(), stage)
}

use Outcome::{Accepted, PermanentFailure, TemporaryFailure};

// ---- with the server session ----

#[test]
fn plain_transaction() {
    let mut config = smtp_server();
    config.chunking = false;
    let mut p = Pair::new(config, client_config(Mode::Smtp));
    let m = p.send(message(&["bob@example.org", "carol@example.org"], BODY));
    p.run();
    assert_eq!(m, 0);
    assert_eq!(
        summary(&p.only()),
        vec![
            row("bob", Accepted, 250, "2.0.0", Stage::Content),
            row("carol", Accepted, 250, "2.0.0", Stage::Content),
        ]
    );
    assert!(
        p.only()
            .iter()
            .all(|r| r.from_peer && !r.relayed_without_dsn)
    );
    assert_eq!(p.received.len(), 1);
    assert_eq!(p.received[0].content, BODY);
    assert_eq!(
        p.received[0]
            .recipients
            .iter()
            .map(|r| r.0.clone())
            .collect::<Vec<_>>(),
        vec![to("bob@example.org"), to("carol@example.org")]
    );
    assert_eq!(p.received[0].params.size, Some(BODY.len() as u64));
    assert_eq!(
        p.commands(),
        vec![
            format!("EHLO {CLIENT_NAME}"),
            format!("MAIL FROM:<alice@example.net> SIZE={}", BODY.len()),
            "RCPT TO:<bob@example.org>".into(),
            "RCPT TO:<carol@example.org>".into(),
            "DATA".into(),
        ]
    );
    assert_eq!(p.events.last(), Some(&Event::Ready));
    assert!(p.client.extensions().pipelining());

    p.client.close(p.now);
    p.run();
    assert_eq!(p.closed(), Some(CloseReason::Quit));
    assert!(p.client.is_closed());
    assert_eq!(p.commands().last().map(String::as_str), Some("QUIT"));
    assert_eq!(
        p.client.send(message(&["bob@example.org"], BODY), p.now),
        Err(UsageError::Closed)
    );
}

#[test]
fn ready_once_when_idle() {
    let mut p = Pair::smtp();
    p.run();
    assert_eq!(p.events, vec![Event::Ready]);
    assert_eq!(p.client.poll_timeout(), None, "idle: no deadline");
    p.send(message(&["bob@example.org"], BODY));
    p.run();
    assert!(matches!(p.events[1], Event::Delivered { message: 0, .. }));
    assert_eq!(p.events[2], Event::Ready);
    assert_eq!(p.events.len(), 3);
}

#[test]
fn pipelining_puts_the_envelope_in_one_write() {
    let mut config = smtp_server();
    config.chunking = false;
    let mut p = Pair::new(config, client_config(Mode::Smtp));
    p.send(message(&["bob@example.org", "bad@example.org"], BODY));
    p.run();
    let group = p
        .writes
        .iter()
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .find(|w| w.starts_with("MAIL"))
        .unwrap_or_default();
    assert_eq!(
        group,
        format!(
            "MAIL FROM:<alice@example.net> SIZE={}\r\nRCPT TO:<bob@example.org>\r\n\
             RCPT TO:<bad@example.org>\r\nDATA\r\n",
            BODY.len()
        )
    );
    assert_eq!(p.received.len(), 1);
}

/// Without PIPELINING the server cuts off a client that sends a command before the reply to
/// the previous one (554 5.5.0). Only with DATA here: the server also takes the octets of a
/// BDAT chunk for a pipelined command (see the scripted `bdat_without_pipelining` instead).
#[test]
fn without_pipelining_one_command_at_a_time() {
    {
        let chunking = false;
        let mut config = smtp_server();
        config.pipelining = false;
        config.chunking = chunking;
        let mut p = Pair::new(config, client_config(Mode::Smtp));
        p.send(message(
            &["bob@example.org", "bad@example.org", "carol@example.org"],
            BODY,
        ));
        p.send(message(&["dave@example.org"], BODY));
        p.run();
        assert!(
            !p.server.is_closed(),
            "chunking {chunking}: {}",
            String::from_utf8_lossy(&p.s2c)
        );
        assert!(!p.client.extensions().pipelining());
        for w in &p.writes {
            let text = String::from_utf8_lossy(w);
            let lines = text.matches("\r\n").count();
            if !text.starts_with("BDAT") && !w.ends_with(b".\r\n") {
                assert_eq!(lines, 1, "one command per write: {text:?}");
            }
        }
        let d = p.delivered();
        assert_eq!(d.len(), 2);
        assert_eq!(
            summary(&d[0].1),
            vec![
                row("bob", Accepted, 250, "2.0.0", Stage::Content),
                row("bad", PermanentFailure, 550, "5.1.1", Stage::Rcpt),
                row("carol", Accepted, 250, "2.0.0", Stage::Content),
            ]
        );
        assert_eq!(d[1].1[0].outcome, Accepted);
        assert_eq!(p.received.len(), 2);
    }
}

#[test]
fn bdat_when_chunking_is_offered_data_otherwise() {
    for chunking in [true, false] {
        let mut config = smtp_server();
        config.chunking = chunking;
        let mut p = Pair::new(config, client_config(Mode::Smtp));
        p.send(message(&["bob@example.org"], BODY));
        p.run();
        let commands = p.commands();
        let bdat = format!("BDAT {} LAST", BODY.len());
        assert_eq!(commands.contains(&bdat), chunking, "{commands:?}");
        assert_eq!(
            commands.contains(&"DATA".to_owned()),
            !chunking,
            "{commands:?}"
        );
        assert_eq!(p.received.len(), 1);
        assert_eq!(p.received[0].content, BODY);
        assert_eq!(p.only()[0].outcome, Accepted);
    }
}

/// A message of many lines, larger than a DATA block and than a BDAT chunk.
fn big_content() -> Vec<u8> {
    let mut content = b"Subject: big\r\n\r\n".to_vec();
    let mut n = 0;
    while content.len() < 2 * BDAT_CHUNK_SIZE + 1000 {
        let line = format!(
            "{}line {n} {}\r\n",
            if n % 7 == 0 { "." } else { "" },
            "x".repeat(90)
        );
        content.extend_from_slice(line.as_bytes());
        n += 1;
    }
    content
}

#[test]
fn large_messages_in_blocks_and_chunks() {
    let content = big_content();
    for chunking in [true, false] {
        let mut config = smtp_server();
        config.chunking = chunking;
        let mut p = Pair::new(config, client_config(Mode::Smtp));
        p.send(message(&["bob@example.org"], &content));
        p.run();
        assert_eq!(p.received.len(), 1, "chunking {chunking}");
        assert!(p.received[0].content == content, "content differs");
        // Each chunk waits for the reply to the one before: one write each.
        let chunks: Vec<String> = p
            .writes
            .iter()
            .filter(|w| w.starts_with(b"BDAT "))
            .map(|w| {
                let end = w.windows(2).position(|x| x == b"\r\n").unwrap_or(0);
                String::from_utf8_lossy(&w[..end]).into_owned()
            })
            .collect();
        if chunking {
            let sizes = [
                BDAT_CHUNK_SIZE,
                BDAT_CHUNK_SIZE,
                content.len() - 2 * BDAT_CHUNK_SIZE,
            ];
            assert_eq!(
                chunks,
                vec![
                    format!("BDAT {}", sizes[0]),
                    format!("BDAT {}", sizes[1]),
                    format!("BDAT {} LAST", sizes[2]),
                ]
            );
        } else {
            let max = p.writes.iter().map(Vec::len).max().unwrap_or(0);
            assert!(max <= CONTENT_BLOCK_SIZE + 8, "a write of {max} octets");
            assert!(p.writes.len() > content.len() / CONTENT_BLOCK_SIZE);
        }
        assert_eq!(p.only()[0].outcome, Accepted);
    }
}

#[test]
fn dot_stuffing_round_trip_and_no_smuggling() {
    let content: &[u8] = b"Subject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\n\
        bare LF\n.\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n\
        smuggled\r\n.\r\nbare CR\r.\rafter\r\n\r\n.\r\nQUIT\r\nno final line ending";
    let expected: &[u8] = b"Subject: dots\r\n\r\n.leading dot\r\n.\r\n..two\r\n\
        bare LF\r\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n\
        smuggled\r\n.\r\nbare CR\r\n.\r\nafter\r\n\r\n.\r\nQUIT\r\nno final line ending\r\n";
    for chunking in [false, true] {
        let mut config = smtp_server();
        config.chunking = chunking;
        let mut p = Pair::new(config, client_config(Mode::Smtp));
        p.send(message(&["bob@example.org"], content));
        p.run();
        assert_eq!(
            p.received.len(),
            1,
            "exactly one message, chunking {chunking}"
        );
        assert_eq!(p.mails, 1, "no smuggled MAIL");
        assert_eq!(
            String::from_utf8_lossy(&p.received[0].content),
            String::from_utf8_lossy(expected)
        );
        assert_eq!(p.received[0].recipients.len(), 1);
        assert_eq!(p.received[0].params.size, Some(expected.len() as u64));
        assert_eq!(
            summary(&p.only()),
            vec![row("bob", Accepted, 250, "2.0.0", Stage::Content)]
        );
        // The session is still in step: a second message goes through.
        p.send(message(&["carol@example.org"], BODY));
        p.run();
        assert_eq!(p.received.len(), 2);
        assert_eq!(p.received[1].content, BODY);
    }
}

#[test]
fn per_recipient_results() {
    let mut p = Pair::smtp();
    p.send(message(
        &[
            "bob@example.org",
            "bad-one@example.org",
            "carol@example.org",
        ],
        BODY,
    ));
    p.run();
    assert_eq!(
        summary(&p.only()),
        vec![
            row("bob", Accepted, 250, "2.0.0", Stage::Content),
            row("bad-one", PermanentFailure, 550, "5.1.1", Stage::Rcpt),
            row("carol", Accepted, 250, "2.0.0", Stage::Content),
        ]
    );
    assert_eq!(p.only()[1].status.text, "User unknown");
    assert_eq!(p.received[0].recipients.len(), 2);
}

#[test]
fn all_recipients_refused_sends_no_content() {
    for chunking in [false, true] {
        let mut config = smtp_server();
        config.chunking = chunking;
        let mut p = Pair::new(config, client_config(Mode::Smtp));
        p.send(message(
            &["bad1@example.org", "bad2@example.org"],
            b"Subject: secret\r\n\r\nx\r\n",
        ));
        p.run();
        assert_eq!(
            summary(&p.only()),
            vec![
                row("bad1", PermanentFailure, 550, "5.1.1", Stage::Rcpt),
                row("bad2", PermanentFailure, 550, "5.1.1", Stage::Rcpt),
            ]
        );
        assert!(!p.c2s_text().contains("secret"), "{}", p.c2s_text());
        assert!(!p.c2s_text().contains("BDAT"));
        assert!(p.received.is_empty());
        // The transaction was left open: RSET before the next one, in the same group.
        p.send(message(&["bob@example.org"], BODY));
        p.run();
        assert_eq!(p.received.len(), 1);
        let commands = p.commands();
        let rset = commands.iter().position(|c| c == "RSET");
        let second_mail = commands.iter().rposition(|c| c.starts_with("MAIL"));
        assert!(rset.is_some() && rset < second_mail, "{commands:?}");
        assert_eq!(p.delivered()[1].1[0].outcome, Accepted);
    }
}

#[test]
fn refusal_after_the_data_applies_to_every_accepted_recipient() {
    for chunking in [false, true] {
        let mut config = smtp_server();
        config.chunking = chunking;
        let mut p = Pair::new(config, client_config(Mode::Smtp));
        p.send(message(
            &["bob@example.org", "bad@example.org", "carol@example.org"],
            b"Subject: REJECT-ME\r\n\r\nx\r\n",
        ));
        p.run();
        assert_eq!(
            summary(&p.only()),
            vec![
                row("bob", PermanentFailure, 554, "5.7.1", Stage::Content),
                row("bad", PermanentFailure, 550, "5.1.1", Stage::Rcpt),
                row("carol", PermanentFailure, 554, "5.7.1", Stage::Content),
            ]
        );
        // The final reply ends the transaction: no RSET needed.
        p.send(message(&["bob@example.org"], BODY));
        p.run();
        assert!(!p.commands().contains(&"RSET".to_owned()));
        assert_eq!(p.delivered()[1].1[0].outcome, Accepted);
    }
}

#[test]
fn lmtp_one_reply_per_recipient() {
    for chunking in [false, true] {
        let mut config = ServerConfig::new("lmtp.example.org", ServerMode::Lmtp);
        config.chunking = chunking;
        let mut p = Pair::new(config, client_config(Mode::Lmtp));
        p.send(message(
            &[
                "bob@example.org",
                "bad@example.org",
                "full@example.org",
                "carol@example.org",
            ],
            BODY,
        ));
        p.run();
        assert_eq!(p.commands()[0], format!("LHLO {CLIENT_NAME}"));
        assert_eq!(
            summary(&p.only()),
            vec![
                row("bob", Accepted, 250, "2.1.5", Stage::Content),
                row("bad", PermanentFailure, 550, "5.1.1", Stage::Rcpt),
                row("full", TemporaryFailure, 452, "4.2.2", Stage::Content),
                row("carol", Accepted, 250, "2.1.5", Stage::Content),
            ],
            "chunking {chunking}"
        );
        assert_eq!(p.received.len(), 1);
        // Still in step for the next message.
        p.send(message(&["dave@example.org"], BODY));
        p.run();
        assert_eq!(p.delivered()[1].1[0].outcome, Accepted);
        assert_eq!(p.received.len(), 2);
    }
}

#[test]
fn three_messages_over_one_connection() {
    let mut p = Pair::smtp();
    for who in ["bob", "carol", "dave"] {
        p.send(message(&[&format!("{who}@example.org")], BODY));
    }
    p.run();
    let d = p.delivered();
    assert_eq!(d.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(
        d.iter()
            .all(|(_, r)| r.len() == 1 && r[0].outcome == Accepted)
    );
    assert_eq!(p.received.len(), 3);
    assert_eq!(
        String::from_utf8_lossy(&p.s2c)
            .matches("ESMTP mswitch")
            .count(),
        1,
        "one greeting, one connection"
    );
    let commands = p.commands();
    assert_eq!(commands.iter().filter(|c| c.starts_with("EHLO")).count(), 1);
    assert!(
        !commands.contains(&"RSET".to_owned()),
        "clean ends need no RSET"
    );
    assert_eq!(p.events.last(), Some(&Event::Ready));
}

#[test]
fn too_large_for_the_peer_is_refused_before_mail() {
    let mut config = smtp_server();
    config.max_message_size = 100;
    let mut p = Pair::new(config, client_config(Mode::Smtp));
    p.send(message(
        &["bob@example.org", "carol@example.org"],
        &[b'x'; 500],
    ));
    p.send(message(&["dave@example.org"], BODY));
    p.run();
    let d = p.delivered();
    assert_eq!(
        summary(&d[0].1),
        vec![
            row("bob", PermanentFailure, 552, "5.3.4", Stage::Session),
            row("carol", PermanentFailure, 552, "5.3.4", Stage::Session),
        ]
    );
    assert!(!d[0].1[0].from_peer);
    assert_eq!(p.mails, 1, "MAIL only for the second message");
    assert_eq!(d[1].1[0].outcome, Accepted);
}

#[test]
fn eight_bit_needs_8bitmime() {
    let eight_bit = "Subject: café\r\n\r\nvoilà\r\n".as_bytes();
    // A peer without 8BITMIME (the line taken out of the EHLO reply on the way).
    let mut p = Pair::smtp();
    p.filter = Some(Box::new(|out: Vec<u8>| {
        let text = String::from_utf8_lossy(&out).replace("250-8BITMIME\r\n", "");
        text.into_bytes()
    }));
    p.send(message(&["bob@example.org"], eight_bit));
    let mut flagged = message(&["carol@example.org"], b"Subject: 7 bit really\r\n\r\n");
    flagged.eight_bit = true;
    p.send(flagged);
    p.send(message(&["dave@example.org"], BODY));
    p.run();
    assert!(!p.client.extensions().eight_bit_mime());
    let d = p.delivered();
    assert_eq!(
        summary(&d[0].1),
        vec![row("bob", PermanentFailure, 554, "5.6.3", Stage::Session)]
    );
    assert_eq!(
        summary(&d[1].1),
        vec![row("carol", PermanentFailure, 554, "5.6.3", Stage::Session)]
    );
    assert_eq!(d[2].1[0].outcome, Accepted);
    assert_eq!(p.mails, 1);
    assert!(!p.c2s_text().contains("BODY="));

    // With 8BITMIME: BODY=8BITMIME.
    let mut p = Pair::smtp();
    p.send(message(&["bob@example.org"], eight_bit));
    p.run();
    assert_eq!(p.only()[0].outcome, Accepted);
    assert_eq!(p.received[0].params.body, Some(BodyType::EightBitMime));
    assert_eq!(p.received[0].content, eight_bit);
}

#[test]
fn smtputf8_needs_the_extension() {
    let mut config = smtp_server();
    config.smtputf8 = false;
    let mut p = Pair::new(config, client_config(Mode::Smtp));
    p.send(message(&["josé@example.org"], BODY));
    p.run();
    assert_eq!(
        summary(&p.only()),
        vec![row("josé", PermanentFailure, 554, "5.6.7", Stage::Session)]
    );
    assert_eq!(p.mails, 0);

    let mut p = Pair::smtp();
    p.send(message(&["josé@example.org"], BODY));
    p.run();
    assert_eq!(p.only()[0].outcome, Accepted);
    assert!(p.received[0].params.smtputf8);
}

#[test]
fn dsn_parameters_only_when_offered() {
    let dsn_message = || {
        let mut m = message(&["bob@example.org", "carol@example.org"], BODY);
        m.recipients[0].1.notify = Some(Notify::on(true, true, false));
        m
    };
    for dsn in [true, false] {
        let mut config = smtp_server();
        config.dsn = dsn;
        let mut p = Pair::new(config, client_config(Mode::Smtp));
        p.send(dsn_message());
        p.run();
        let results = p.only();
        assert!(results.iter().all(|r| r.outcome == Accepted));
        assert_eq!(results[0].relayed_without_dsn, !dsn);
        assert!(
            !results[1].relayed_without_dsn,
            "nothing was asked for carol"
        );
        assert_eq!(p.received[0].recipients[0].1.notify.is_some(), dsn);
        assert_eq!(p.c2s_text().contains("NOTIFY="), dsn);
    }
    // ENVID on the message: every recipient lost it.
    let mut config = smtp_server();
    config.dsn = false;
    let mut p = Pair::new(config, client_config(Mode::Smtp));
    let mut m = dsn_message();
    m.mail_params.envid = Some("abc".into());
    p.send(m);
    p.run();
    assert!(p.only().iter().all(|r| r.relayed_without_dsn));
    assert!(!p.c2s_text().contains("ENVID"));
}

#[test]
fn mt_priority_and_requiretls_only_when_possible() {
    let prioritised = || {
        let mut m = message(&["bob@example.org"], BODY);
        m.mail_params.mt_priority = Some(2);
        m
    };
    // Offered (STANAG4406 by default): sent.
    let mut p = Pair::smtp();
    p.send(prioritised());
    p.run();
    assert_eq!(p.only()[0].outcome, Accepted);
    assert_eq!(p.received[0].params.mt_priority, Some(2));
    // Not offered: dropped (the server refuses MT-PRIORITY= it did not announce, 555).
    let mut config = smtp_server();
    config.mt_priority = None;
    let mut p = Pair::new(config, client_config(Mode::Smtp));
    p.send(prioritised());
    p.run();
    assert_eq!(p.only()[0].outcome, Accepted);
    assert_eq!(p.received[0].params.mt_priority, None);
    assert!(!p.c2s_text().contains("MT-PRIORITY"));

    // REQUIRETLS (RFC 8689) is never dropped: no TLS, no REQUIRETLS, no relay.
    let mut p = Pair::smtp();
    let mut m = message(&["bob@example.org"], BODY);
    m.mail_params.require_tls = true;
    p.send(m);
    p.run();
    assert_eq!(
        summary(&p.only()),
        vec![row("bob", PermanentFailure, 554, "5.7.30", Stage::Session)]
    );
    assert_eq!(p.mails, 0);
}

#[test]
fn garbage_after_quit_keeps_the_reason() {
    let mut client = client_config(Mode::Smtp);
    client.tls = TlsPolicy::Required;
    let mut s = Script::new(client);
    s.greet(&[]);
    assert_eq!(s.drain(), "");
    s.reply("not a reply\r\n");
    assert!(matches!(s.closed(), Some(CloseReason::TlsUnavailable(_))));
}

#[test]
fn starttls_opportunistic() {
    let mut config = smtp_server();
    config.starttls = true;
    let mut p = Pair::new(config, client_config(Mode::Smtp));
    p.send(message(&["bob@example.org"], BODY));
    p.run();
    assert!(p.client.is_tls() && p.server.is_tls());
    assert!(p.events.contains(&Event::StartTls));
    let commands = p.commands();
    assert_eq!(
        commands[..3],
        [
            format!("EHLO {CLIENT_NAME}"),
            "STARTTLS".to_owned(),
            format!("EHLO {CLIENT_NAME}")
        ]
    );
    assert!(
        !p.client.extensions().starttls(),
        "the reply under TLS counts"
    );
    assert_eq!(p.only()[0].outcome, Accepted);
    assert_eq!(p.client.discarded_after_starttls(), 0);

    // TlsPolicy::None: never.
    let mut config = smtp_server();
    config.starttls = true;
    let mut client = client_config(Mode::Smtp);
    client.tls = TlsPolicy::None;
    let mut p = Pair::new(config, client);
    p.send(message(&["bob@example.org"], BODY));
    p.run();
    assert!(!p.client.is_tls());
    assert!(!p.commands().contains(&"STARTTLS".to_owned()));
    assert_eq!(p.only()[0].outcome, Accepted);
}

#[test]
fn replies_injected_after_starttls_are_discarded() {
    let injections: [&[u8]; 4] = [
        b"250 fake\r\n",
        b"250-fake\r\n",
        b"421 4.3.2 fake shutdown\r\n",
        b"250 fake\r\n250 fake\r\n250 fake\r\n354 fake\r\n",
    ];
    for inject in injections {
        for own_read in [false, true] {
            let mut config = smtp_server();
            config.starttls = true;
            let mut p = Pair::new(config, client_config(Mode::Smtp));
            p.inject_after_starttls = Some((inject.to_vec(), own_read));
            p.send(message(&["bob@example.org", "carol@example.org"], BODY));
            p.run();
            let case = format!(
                "{:?} in its own read: {own_read}",
                String::from_utf8_lossy(inject)
            );
            assert!(p.inject_after_starttls.is_none(), "{case}: injected");
            assert_eq!(
                p.client.discarded_after_starttls(),
                inject.len() as u64,
                "{case}"
            );
            assert!(p.client.is_tls(), "{case}");
            // Had the fake reply been taken for the EHLO reply, the extensions would be empty
            // and every later reply one step off.
            assert!(p.client.extensions().pipelining(), "{case}");
            assert!(p.client.extensions().chunking(), "{case}");
            assert_eq!(p.closed(), None, "{case}");
            assert!(p.only().iter().all(|r| r.outcome == Accepted), "{case}");
            assert_eq!(p.received.len(), 1, "{case}");
        }
    }
}

#[test]
fn tls_required_without_starttls_fails_every_recipient() {
    let mut client = client_config(Mode::Smtp);
    client.tls = TlsPolicy::Required;
    let mut p = Pair::new(smtp_server(), client);
    p.send(message(&["bob@example.org", "carol@example.org"], BODY));
    p.send(message(&["dave@example.org"], BODY));
    p.run();
    let d = p.delivered();
    assert_eq!(d.len(), 2);
    for (_, results) in &d {
        for r in results {
            assert_eq!(r.outcome, TemporaryFailure);
            assert_eq!(
                (r.status.code, r.status.enhanced.to_string()),
                (451, "4.7.4".into())
            );
            assert!(!r.from_peer);
            assert!(r.status.text.contains("STARTTLS"), "{}", r.status.text);
        }
    }
    assert_eq!(p.mails, 0);
    assert!(!p.c2s_text().contains("MAIL"));
    assert_eq!(p.commands().last().map(String::as_str), Some("QUIT"));
    assert!(matches!(p.closed(), Some(CloseReason::TlsUnavailable(_))));
    assert!(p.client.is_closed());
    assert!(!p.events.contains(&Event::Ready));
    assert_eq!(
        p.client.send(message(&["bob@example.org"], BODY), p.now),
        Err(UsageError::Closed)
    );
}

#[test]
fn tls_required_and_offered() {
    let mut config = smtp_server();
    config.starttls = true;
    let mut client = client_config(Mode::Smtp);
    client.tls = TlsPolicy::Required;
    let mut p = Pair::new(config, client);
    p.send(message(&["bob@example.org"], BODY));
    p.run();
    assert!(p.client.is_tls());
    assert_eq!(p.only()[0].outcome, Accepted);
}

#[test]
fn service_closing_when_the_server_times_out() {
    let mut p = Pair::smtp();
    p.run();
    assert_eq!(p.events, vec![Event::Ready]);
    // The server's command timeout passes while the client is idle: 421 4.4.2.
    p.now += Duration::from_secs(301);
    p.server.handle_timeout(p.now);
    p.run();
    let reason = p.closed();
    assert!(
        matches!(&reason, Some(CloseReason::ServiceClosing(s)) if s.code == 421),
        "{reason:?}"
    );
    assert!(p.client.is_closed());
    assert_eq!(p.client.poll_timeout(), None);
}

// ---- with a scripted peer ----

/// A client fed canned replies.
struct Script {
    c: ClientSession,
    now: Instant,
    events: Vec<Event>,
}

impl Script {
    fn new(config: ClientConfig) -> Self {
        let now = Instant::now();
        Script {
            c: ClientSession::new(config, now),
            now,
            events: Vec::new(),
        }
    }

    /// Feeds `input` and returns what the client wrote in response.
    fn reply(&mut self, input: &str) -> String {
        self.c.handle_input(input.as_bytes(), self.now);
        self.drain()
    }

    fn drain(&mut self) -> String {
        let mut out = Vec::new();
        while let Some(bytes) = self.c.poll_output() {
            out.extend_from_slice(&bytes);
        }
        while let Some(e) = self.c.poll_event() {
            self.events.push(e);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn send(&mut self, msg: OutgoingMessage) -> String {
        self.c.send(msg, self.now).expect("session open");
        self.drain()
    }

    fn delivered(&self) -> Vec<Vec<RecipientResult>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Delivered { results, .. } => Some(results.clone()),
                _ => None,
            })
            .collect()
    }

    fn closed(&self) -> Option<CloseReason> {
        self.events.iter().find_map(|e| match e {
            Event::Closed { reason } => Some(reason.clone()),
            _ => None,
        })
    }

    /// Greeting and an EHLO reply announcing `extensions`.
    fn greet(&mut self, extensions: &[&str]) {
        assert_eq!(
            self.reply("220 mx.example.org ESMTP\r\n"),
            format!("EHLO {CLIENT_NAME}\r\n")
        );
        let mut lines = vec!["mx.example.org".to_owned()];
        lines.extend(extensions.iter().map(|e| (*e).to_owned()));
        let last = lines.len() - 1;
        let ehlo: String = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }))
            .collect();
        let _ = self.reply(&ehlo);
    }
}

#[test]
fn four_hundred_twenty_one_in_the_middle() {
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["PIPELINING"]);
    let out = s.send(message(&["bob@example.org", "carol@example.org"], BODY));
    assert_eq!(
        out,
        "MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n\
         RCPT TO:<carol@example.org>\r\nDATA\r\n"
    );
    s.c.send(message(&["dave@example.org"], BODY), s.now)
        .expect("open");
    let out = s.reply("250 2.1.0 ok\r\n250 2.1.5 ok\r\n421 4.3.2 shutting down\r\n");
    assert_eq!(out, "", "no QUIT after 421");
    let d = s.delivered();
    assert_eq!(
        summary(&d[0]),
        vec![
            row("bob", TemporaryFailure, 421, "4.3.2", Stage::Rcpt),
            row("carol", TemporaryFailure, 421, "4.3.2", Stage::Rcpt),
        ]
    );
    assert!(d[0][0].from_peer);
    assert_eq!(
        summary(&d[1]),
        vec![row("dave", TemporaryFailure, 421, "4.3.2", Stage::Session)]
    );
    assert!(matches!(s.closed(), Some(CloseReason::ServiceClosing(_))));
    assert!(s.c.is_closed());
    // Nothing more is read.
    assert_eq!(s.reply("250 late\r\n"), "");
    assert_eq!(
        s.events.len(),
        4,
        "Ready, two Delivered, Closed: {:?}",
        s.events
    );
}

#[test]
fn four_hundred_twenty_one_keeps_earlier_refusals() {
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["PIPELINING"]);
    s.send(message(&["bad@example.org", "carol@example.org"], BODY));
    s.reply("250 ok\r\n550 5.1.1 no such user\r\n421 4.7.0 bye\r\n");
    assert_eq!(
        summary(&s.delivered()[0]),
        vec![
            row("bad", PermanentFailure, 550, "5.1.1", Stage::Rcpt),
            row("carol", TemporaryFailure, 421, "4.7.0", Stage::Rcpt),
        ]
    );
}

#[test]
fn refused_data_command_fails_the_accepted_recipients() {
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["PIPELINING", "8BITMIME"]);
    s.send(message(&["bob@example.org", "bad@example.org"], BODY));
    let out = s.reply("250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n451 4.3.0 try later\r\n");
    // Nothing is queued: RSET goes with the next MAIL.
    assert_eq!(out, "");
    assert_eq!(
        summary(&s.delivered()[0]),
        vec![
            row("bob", TemporaryFailure, 451, "4.3.0", Stage::Data),
            row("bad", PermanentFailure, 550, "5.1.1", Stage::Rcpt),
        ]
    );
    let out = s.send(message(&["bob@example.org"], BODY));
    assert!(out.starts_with("RSET\r\nMAIL FROM:"), "{out:?}");
    let out = s.reply("250 reset\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    assert_eq!(out, "Subject: hello\r\n\r\nHi Bob.\r\n.\r\n");
    s.reply("250 2.0.0 queued\r\n");
    assert_eq!(s.delivered()[1][0].outcome, Accepted);
    assert_eq!(s.events.last(), Some(&Event::Ready));
}

#[test]
fn bdat_without_pipelining() {
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["CHUNKING", "SIZE 1000"]);
    assert_eq!(
        s.send(message(&["bob@example.org", "bad@example.org"], b"a\nb")),
        "MAIL FROM:<alice@example.net> SIZE=6\r\n"
    );
    assert_eq!(s.reply("250 ok\r\n"), "RCPT TO:<bob@example.org>\r\n");
    assert_eq!(s.reply("250 ok\r\n"), "RCPT TO:<bad@example.org>\r\n");
    assert_eq!(s.reply("550 no\r\n"), "BDAT 6 LAST\r\na\r\nb\r\n");
    assert_eq!(s.reply("250 2.0.0 queued\r\n"), "");
    assert_eq!(
        summary(&s.delivered()[0]),
        vec![
            row("bob", Accepted, 250, "2.0.0", Stage::Content),
            row("bad", PermanentFailure, 550, "5.0.0", Stage::Rcpt),
        ]
    );
}

#[test]
fn refused_bdat_chunk_stops_the_chunks() {
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["CHUNKING", "PIPELINING"]);
    let content = vec![b'x'; BDAT_CHUNK_SIZE + 10];
    let out = s.send(message(&["bob@example.org"], &content));
    assert_eq!(
        out,
        "MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n"
    );
    let out = s.reply("250 ok\r\n250 ok\r\n");
    assert!(
        out.starts_with(&format!("BDAT {BDAT_CHUNK_SIZE}\r\nxxx")),
        "{}",
        &out[..20]
    );
    assert_eq!(
        out.len(),
        BDAT_CHUNK_SIZE + format!("BDAT {BDAT_CHUNK_SIZE}\r\n").len()
    );
    assert_eq!(
        s.reply("452 4.3.1 disk full\r\n"),
        "",
        "no more chunks (RFC 3030 §2)"
    );
    assert_eq!(
        summary(&s.delivered()[0]),
        vec![row("bob", TemporaryFailure, 452, "4.3.1", Stage::Content)]
    );
    // The transaction is still open on the server: RSET first.
    let out = s.send(message(&["carol@example.org"], b"hi\r\n"));
    assert!(out.starts_with("RSET\r\nMAIL FROM:"), "{out:?}");
}

#[test]
fn greeting_554_then_quit() {
    let mut s = Script::new(client_config(Mode::Smtp));
    s.c.send(message(&["bob@example.org"], BODY), s.now)
        .expect("open");
    let out = s.reply("554 5.7.1 no service for you\r\n");
    assert_eq!(out, "QUIT\r\n");
    assert_eq!(
        summary(&s.delivered()[0]),
        vec![row("bob", PermanentFailure, 554, "5.7.1", Stage::Session)]
    );
    assert_eq!(s.closed(), None, "waits for the reply to QUIT");
    s.reply("221 bye\r\n");
    assert!(matches!(s.closed(), Some(CloseReason::Refused(st)) if st.code == 554));
}

#[test]
fn helo_when_ehlo_is_not_understood() {
    let mut s = Script::new(client_config(Mode::Smtp));
    assert_eq!(
        s.reply("220 old.example.org\r\n"),
        format!("EHLO {CLIENT_NAME}\r\n")
    );
    assert_eq!(
        s.reply("502 command not implemented\r\n"),
        format!("HELO {CLIENT_NAME}\r\n")
    );
    assert_eq!(s.reply("250 old.example.org\r\n"), "");
    assert_eq!(s.events, vec![Event::Ready]);
    let mut m = message(&["bob@example.org", "carol@example.org"], BODY);
    m.recipients[0].1.notify = Some(Notify::never());
    m.mail_params.mt_priority = Some(3);
    // No extensions: no parameters, one command at a time.
    assert_eq!(s.send(m), "MAIL FROM:<alice@example.net>\r\n");
    assert_eq!(s.reply("250 ok\r\n"), "RCPT TO:<bob@example.org>\r\n");
    assert_eq!(s.reply("250 ok\r\n"), "RCPT TO:<carol@example.org>\r\n");
    assert_eq!(s.reply("250 ok\r\n"), "DATA\r\n");
    assert_eq!(
        s.reply("354 go\r\n"),
        String::from_utf8_lossy(BODY) + ".\r\n"
    );
    assert_eq!(s.reply("250 ok\r\n"), "");
    let d = s.delivered();
    assert!(d[0].iter().all(|r| r.outcome == Accepted));
    assert!(d[0][0].relayed_without_dsn && !d[0][1].relayed_without_dsn);
}

#[test]
fn lmtp_has_no_helo_fallback() {
    let mut s = Script::new(client_config(Mode::Lmtp));
    s.c.send(message(&["bob@example.org"], BODY), s.now)
        .expect("open");
    assert_eq!(s.reply("220 lmtp\r\n"), format!("LHLO {CLIENT_NAME}\r\n"));
    assert_eq!(s.reply("500 5.5.1 what\r\n"), "QUIT\r\n");
    assert_eq!(s.delivered()[0][0].status.code, 500);
    s.c.handle_eof(s.now);
    s.drain();
    assert!(matches!(s.closed(), Some(CloseReason::Refused(_))));
}

#[test]
fn starttls_refused_or_failed() {
    // Opportunistic: a refused STARTTLS goes on in plaintext.
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["STARTTLS"]);
    assert_eq!(s.drain(), "");
    s.c.send(message(&["bob@example.org"], BODY), s.now)
        .expect("open");
    // (STARTTLS was written by greet; answer it.)
    let out = s.reply("454 4.7.0 TLS not available\r\n");
    assert_eq!(out, "MAIL FROM:<alice@example.net>\r\n");

    // Required: the same refusal fails the message, temporarily.
    let mut client = client_config(Mode::Smtp);
    client.tls = TlsPolicy::Required;
    let mut s = Script::new(client);
    s.greet(&["STARTTLS"]);
    s.c.send(message(&["bob@example.org"], BODY), s.now)
        .expect("open");
    assert_eq!(s.reply("454 4.7.0 TLS not available\r\n"), "QUIT\r\n");
    assert_eq!(
        summary(&s.delivered()[0]),
        vec![row("bob", TemporaryFailure, 451, "4.7.4", Stage::Session)]
    );

    // A failed handshake ends the session.
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["STARTTLS"]);
    s.c.send(message(&["bob@example.org"], BODY), s.now)
        .expect("open");
    assert_eq!(s.reply("220 go ahead\r\n"), "");
    assert_eq!(s.events, vec![Event::StartTls]);
    s.c.tls_failed("certificate expired", s.now);
    assert_eq!(s.drain(), "");
    let d = s.delivered();
    assert_eq!(
        summary(&d[0]),
        vec![row("bob", TemporaryFailure, 451, "4.7.5", Stage::Session)]
    );
    assert!(d[0][0].status.text.contains("certificate expired"));
    assert!(matches!(s.closed(), Some(CloseReason::TlsFailed(_))));
}

#[test]
fn malformed_or_unexpected_replies_end_the_session() {
    let mut s = Script::new(client_config(Mode::Smtp));
    s.c.send(message(&["bob@example.org"], BODY), s.now)
        .expect("open");
    s.reply("220 hi\r\n");
    assert_eq!(s.reply("hello there\r\n"), "", "no QUIT on a broken stream");
    let r = &s.delivered()[0][0];
    assert_eq!((r.outcome, r.status.code), (TemporaryFailure, 451));
    assert_eq!(r.status.enhanced.to_string(), "4.5.0");
    assert!(matches!(s.closed(), Some(CloseReason::ProtocolError(_))));

    // A well-formed reply the protocol does not allow: 250 to DATA.
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["PIPELINING"]);
    s.send(message(&["bob@example.org"], BODY));
    s.reply("250 ok\r\n250 ok\r\n250 ok\r\n");
    let r = &s.delivered()[0][0];
    assert_eq!((r.status.code, r.stage), (451, Stage::Data));
    assert!(r.status.text.contains("DATA"), "{}", r.status.text);
    assert!(matches!(s.closed(), Some(CloseReason::ProtocolError(_))));

    // A reply when nothing was asked.
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&[]);
    s.reply("250 surprise\r\n");
    assert!(matches!(s.closed(), Some(CloseReason::ProtocolError(_))));
}

#[test]
fn end_of_stream_mid_transaction() {
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["PIPELINING"]);
    s.send(message(&["bob@example.org", "bad@example.org"], BODY));
    s.reply("250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n");
    s.c.handle_eof(s.now);
    s.drain();
    assert_eq!(
        summary(&s.delivered()[0]),
        vec![
            row("bob", TemporaryFailure, 451, "4.4.2", Stage::Content),
            row("bad", PermanentFailure, 550, "5.0.0", Stage::Rcpt),
        ]
    );
    assert!(matches!(s.closed(), Some(CloseReason::ConnectionLost(_))));
}

#[test]
fn timeouts_follow_rfc_5321() {
    let t = Timeouts::default();
    assert_eq!(t.greeting, Duration::from_secs(300));
    assert_eq!(t.data_initiation, Duration::from_secs(120));
    assert_eq!(t.data_block, Duration::from_secs(180));
    assert_eq!(t.data_termination, Duration::from_secs(600));

    // The greeting never comes.
    let mut s = Script::new(client_config(Mode::Smtp));
    let t0 = s.now;
    s.c.send(message(&["bob@example.org"], BODY), t0)
        .expect("open");
    assert_eq!(s.c.poll_timeout(), Some(t0 + t.greeting));
    s.c.handle_timeout(t0 + t.greeting - Duration::from_secs(1));
    s.drain();
    assert!(s.events.is_empty(), "not yet");
    s.c.handle_timeout(t0 + t.greeting);
    s.drain();
    let r = &s.delivered()[0][0];
    assert_eq!((r.outcome, r.status.code), (TemporaryFailure, 451));
    assert_eq!(r.status.enhanced.to_string(), "4.4.2");
    assert!(r.status.text.contains("greeting"), "{}", r.status.text);
    assert!(matches!(s.closed(), Some(CloseReason::Timeout(_))));

    // Each phase of a transaction gets its own deadline.
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&["PIPELINING"]);
    s.now += Duration::from_secs(1000); // idle time does not count
    s.send(message(&["bob@example.org"], BODY));
    let t1 = s.now;
    assert_eq!(s.c.poll_timeout(), Some(t1 + t.mail));
    s.now += Duration::from_secs(10);
    s.reply("250 ok\r\n");
    assert_eq!(s.c.poll_timeout(), Some(s.now + t.rcpt));
    s.now += Duration::from_secs(10);
    s.reply("250 ok\r\n");
    assert_eq!(s.c.poll_timeout(), Some(s.now + t.data_initiation));
    s.now += Duration::from_secs(10);
    s.c.handle_input(b"354 go\r\n", s.now);
    assert_eq!(s.c.poll_timeout(), Some(s.now + t.data_block));
    while s.c.poll_output().is_some() {}
    s.now += Duration::from_secs(30);
    s.c.handle_written(s.now);
    let written = s.now;
    assert_eq!(s.c.poll_timeout(), Some(written + t.data_termination));
    s.c.handle_timeout(written + t.data_termination - Duration::from_secs(1));
    assert!(s.delivered().is_empty());
    s.c.handle_timeout(written + t.data_termination);
    s.drain();
    let r = &s.delivered()[0][0];
    assert_eq!((r.status.code, r.stage), (451, Stage::Content));
    assert!(
        r.status.text.contains("end of the data"),
        "{}",
        r.status.text
    );
    assert!(matches!(s.closed(), Some(CloseReason::Timeout(_))));
    assert_eq!(s.c.poll_timeout(), None);
}

#[test]
fn quit_timeout_and_eof_end_quietly() {
    let mut s = Script::new(client_config(Mode::Smtp));
    s.greet(&[]);
    s.c.close(s.now);
    assert_eq!(s.drain(), "QUIT\r\n");
    let deadline = s.c.poll_timeout().expect("waits for 221");
    s.c.handle_timeout(deadline);
    s.drain();
    assert_eq!(s.closed(), Some(CloseReason::Quit));
}

#[test]
fn close_waits_for_queued_messages() {
    let mut p = Pair::smtp();
    p.send(message(&["bob@example.org"], BODY));
    p.send(message(&["carol@example.org"], BODY));
    p.client.close(p.now);
    assert!(
        p.client
            .send(message(&["dave@example.org"], BODY), p.now)
            .is_err()
    );
    p.run();
    assert_eq!(p.delivered().len(), 2);
    assert_eq!(p.received.len(), 2);
    assert_eq!(p.closed(), Some(CloseReason::Quit));
    assert!(!p.events.contains(&Event::Ready));
}

#[test]
fn empty_recipient_list_and_binary_content() {
    let mut p = Pair::smtp();
    let mut m = message(&[], BODY);
    m.recipients.clear();
    p.send(m);
    // BINARYMIME: verbatim, in BDAT.
    let mut bin = message(&["bob@example.org"], b"\x00\x01bare\nLF\rCR\xff");
    bin.mail_params.body = Some(BodyType::BinaryMime);
    p.send(bin.clone());
    p.run();
    let d = p.delivered();
    assert_eq!(d[0], (0, Vec::new()));
    assert_eq!(d[1].1[0].outcome, Accepted);
    assert_eq!(p.received[0].content, b"\x00\x01bare\nLF\rCR\xff");
    assert_eq!(p.received[0].params.body, Some(BodyType::BinaryMime));

    // Without CHUNKING it cannot go.
    let mut config = smtp_server();
    config.chunking = false;
    let mut p = Pair::new(config, client_config(Mode::Smtp));
    p.send(bin);
    p.run();
    assert_eq!(
        summary(&p.only()),
        vec![row("bob", PermanentFailure, 554, "5.6.3", Stage::Session)]
    );
}

mod auth {
    use super::*;
    use crate::sasl::{PasswordFile, ServerMechanism, hash_password};
    use crate::server::session::AuthConfig;

    fn server(mechanisms: &[ServerMechanism], starttls: bool, plaintext: bool) -> ServerConfig {
        let verifier = hash_password("secret", b"0123456789abcdef", 4096).expect("hash");
        let file = PasswordFile::parse(&format!("alice:{verifier}\n")).expect("password file");
        let mut auth = AuthConfig::new(Arc::new(file));
        auth.mechanisms = mechanisms.to_vec();
        auth.allow_plaintext = plaintext;
        let mut c = smtp_server();
        c.starttls = starttls;
        c.auth = Some(auth);
        c
    }

    fn client(password: &str, plaintext: bool) -> ClientConfig {
        let mut c = client_config(Mode::Smtp);
        c.auth = Some(ClientAuth {
            authcid: "alice".into(),
            password: password.into(),
            authzid: None,
            allow_plaintext: plaintext,
        });
        c
    }

    fn pair(server: ServerConfig, client: ClientConfig) -> Pair {
        let mut p = Pair::new(server, client);
        p.server.set_entropy([1; 32]);
        p.client.set_entropy([2; 32]);
        p
    }

    #[test]
    fn each_mechanism_over_tls() {
        for (mech, name) in [
            (ServerMechanism::ScramSha256, "SCRAM-SHA-256"),
            (ServerMechanism::Plain, "PLAIN"),
            (ServerMechanism::Login, "LOGIN"),
        ] {
            let mut p = pair(server(&[mech], true, false), client("secret", false));
            p.send(message(&["bob@example.org"], BODY));
            p.run();
            assert!(p.client.is_tls(), "{name}");
            assert!(p.client.is_authenticated(), "{name}: {:?}", p.events);
            assert_eq!(p.server.authenticated(), Some("alice"), "{name}");
            assert!(
                p.commands()
                    .iter()
                    .any(|c| c.starts_with(&format!("AUTH {name}"))),
                "{name}: {:?}",
                p.commands()
            );
            assert_eq!(p.only()[0].outcome, Accepted, "{name}");
        }
    }

    #[test]
    fn credentials_are_not_sent_in_clear() {
        let mut p = pair(
            server(&[ServerMechanism::Plain], false, true),
            client("secret", false),
        );
        p.send(message(&["bob@example.org"], BODY));
        p.run();
        let r = &p.only()[0];
        assert_eq!((r.outcome, r.status.code), (TemporaryFailure, 451));
        assert_eq!(r.status.enhanced.to_string(), "4.7.8");
        assert!(!p.commands().iter().any(|c| c.starts_with("AUTH")));
        assert_eq!(p.mails, 0);
        // Unless allowed (for a trusted loopback peer).
        let mut p = pair(
            server(&[ServerMechanism::Plain], false, true),
            client("secret", true),
        );
        p.send(message(&["bob@example.org"], BODY));
        p.run();
        assert_eq!(p.only()[0].outcome, Accepted);
    }

    #[test]
    fn a_wrong_password_defers_the_messages() {
        let mut p = pair(
            server(&[ServerMechanism::Plain], true, false),
            client("guess", false),
        );
        p.send(message(&["bob@example.org"], BODY));
        p.run();
        let r = &p.only()[0];
        assert_eq!((r.outcome, r.status.code), (TemporaryFailure, 451));
        assert!(r.status.text.contains("535"), "{}", r.status);
        assert_eq!(p.mails, 0);
        assert!(p.client.is_closed());
    }

    #[test]
    fn no_mechanism_in_common() {
        // The peer offers AUTH only after TLS, and the policy keeps us in clear.
        let mut c = client("secret", true);
        c.tls = TlsPolicy::None;
        let mut p = pair(server(&[ServerMechanism::Plain], true, false), c);
        p.send(message(&["bob@example.org"], BODY));
        p.run();
        let r = &p.only()[0];
        assert_eq!(r.outcome, TemporaryFailure);
        assert!(
            r.status.text.contains("no authentication mechanism"),
            "{}",
            r.status
        );
    }
}
