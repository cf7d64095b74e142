//! The hostile-input suites: clients and peers that try to turn the switch into an open relay,
//! a spoofing tool (SMTP smuggling) or a password oracle, to inject into its queue and logs, or
//! to make mail loop. Each test runs a real mswitchd on loopback and talks to it over TCP with
//! byte-exact scripts ([`Raw`]), with a real downstream (Postfix's `smtp-sink`) where mail may
//! leave the switch.

mod auth;
mod injection;
mod loops;
mod osi;
mod relay;
mod smuggling;

pub(crate) use crate::common::password_line;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mswitch_smtp::tls::{TlsStream, Verification, client_config};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

/// How long a test waits for something that takes a second or two on an idle machine.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// One reply: its code and its text (every line, CRLF included).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) text: String,
}

impl Reply {
    /// The enhanced status code of the last line (`"5.7.1"`), or `""`.
    pub(crate) fn enhanced(&self) -> &str {
        let last = self.text.trim_end().rsplit("\r\n").next().unwrap_or("");
        last.get(4..)
            .and_then(|t| t.split(' ').next())
            .filter(|t| t.len() >= 5 && t.as_bytes()[1] == b'.')
            .unwrap_or("")
    }

    /// `"550 5.5.2"`: the code and the enhanced code, for assertions.
    pub(crate) fn status(&self) -> String {
        format!("{} {}", self.code, self.enhanced())
    }
}

/// A byte-exact SMTP client over TCP, optionally switched to TLS (the switch's STARTTLS),
/// keeping a transcript for failure messages.
pub(crate) struct Raw {
    stream: TcpStream,
    tls: Option<TlsStream>,
    /// Plaintext received and not yet consumed.
    input: Vec<u8>,
    closed: bool,
    pub(crate) transcript: String,
}

impl Raw {
    /// Connects from 127.0.0.1 and reads the greeting, which must be 220.
    pub(crate) fn connect(port: u16) -> Raw {
        Raw::connect_from(Ipv4Addr::LOCALHOST, port)
    }

    /// Connects from `source` (any 127.0.0.0/8 address: a different client as far as the switch
    /// can tell) and reads the greeting, which must be 220.
    pub(crate) fn connect_from(source: Ipv4Addr, port: u16) -> Raw {
        let mut r = Raw::open_from(source, port);
        let greeting = r.reply();
        assert_eq!(greeting.code, 220, "greeting: {}", greeting.text);
        r
    }

    /// Connects without reading anything.
    pub(crate) fn open_from(source: Ipv4Addr, port: u16) -> Raw {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a runtime to bind a client socket");
        let stream = rt
            .block_on(async {
                let s = tokio::net::TcpSocket::new_v4()?;
                s.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
                let c = s
                    .connect(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
                    .await?;
                c.into_std()
            })
            .unwrap_or_else(|e| panic!("connect from {source} to 127.0.0.1:{port}: {e}"));
        stream.set_nonblocking(false).expect("blocking socket");
        stream
            .set_read_timeout(Some(WAIT))
            .expect("set a read timeout");
        Raw {
            stream,
            tls: None,
            input: Vec::new(),
            closed: false,
            transcript: String::new(),
        }
    }

    /// Sends `bytes` as they are (encrypted once TLS is on).
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.transcript.push_str(&format!(
            "C: {}\n",
            String::from_utf8_lossy(bytes).escape_debug()
        ));
        let wire = match self.tls.as_mut() {
            None => bytes.to_vec(),
            Some(t) => {
                t.encrypt(bytes).expect("encrypt");
                t.take_ciphertext()
            }
        };
        // A server that has closed may reset the connection: the reply says what happened.
        let _ = self.stream.write_all(&wire);
    }

    /// Reads more from the socket into `input`; false at the end of the stream or on timeout.
    fn fill(&mut self, timeout: Duration) -> bool {
        if self.closed {
            return false;
        }
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set a read timeout");
        let mut buf = [0u8; 16 * 1024];
        let n = match self.stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                // EOF, reset or timeout; a timeout leaves the connection usable.
                return false;
            }
            Ok(n) => n,
        };
        match self.tls.as_mut() {
            None => self.input.extend_from_slice(&buf[..n]),
            Some(t) => {
                let plain = t.decrypt(&buf[..n]).expect("decrypt");
                let out = t.take_ciphertext();
                if !out.is_empty() {
                    let _ = self.stream.write_all(&out);
                }
                self.input.extend_from_slice(&plain);
            }
        }
        true
    }

    /// The next complete reply, if one arrives within `timeout`.
    pub(crate) fn try_reply(&mut self, timeout: Duration) -> Option<Reply> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            // A complete reply: lines up to one whose fourth octet is a space.
            let mut at = 0;
            while let Some(end) = self.input[at..].iter().position(|&b| b == b'\n') {
                let line = &self.input[at..at + end + 1];
                at += end + 1;
                if line.len() < 4 || line[3] != b'-' {
                    let text = String::from_utf8_lossy(&self.input[..at]).into_owned();
                    self.input.drain(..at);
                    self.transcript.push_str(&format!("S: {text}"));
                    let code = text.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                    return Some(Reply { code, text });
                }
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || !self.fill(left) {
                return None;
            }
        }
    }

    /// The next reply; panics if none comes.
    pub(crate) fn reply(&mut self) -> Reply {
        match self.try_reply(WAIT) {
            Some(r) => r,
            None => panic!("no reply (connection closed?):\n{}", self.transcript),
        }
    }

    /// Sends `line` with CRLF and reads the reply.
    pub(crate) fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends `line` and asserts the reply's code.
    pub(crate) fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} -> {}\n{}", r.text, self.transcript);
        r
    }

    /// Whether the server closes the connection within `timeout` (anything it still sends is
    /// read and dropped).
    pub(crate) fn is_closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set a read timeout");
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    /// After a `220` to STARTTLS: runs the TLS handshake (the server's certificate is not
    /// checked: these tests are about the protocol, not the PKI). Anything received in clear
    /// after the 220 is kept in `input` so that a test can see it.
    pub(crate) fn start_tls(&mut self) {
        let cfg = client_config(Verification::NoVerification, None).expect("TLS client config");
        let mut t = TlsStream::client(cfg, "switch.test").expect("TLS client");
        self.stream
            .write_all(&t.take_ciphertext())
            .expect("ClientHello");
        self.stream
            .set_read_timeout(Some(WAIT))
            .expect("set a read timeout");
        let mut buf = [0u8; 16 * 1024];
        while t.is_handshaking() {
            let n = self.stream.read(&mut buf).expect("TLS handshake");
            assert!(n > 0, "closed during the TLS handshake");
            let plain = t.decrypt(&buf[..n]).expect("TLS handshake");
            self.stream
                .write_all(&t.take_ciphertext())
                .expect("TLS handshake");
            self.input.extend_from_slice(&plain);
        }
        self.transcript.push_str("-- TLS --\n");
        self.tls = Some(t);
    }
}

/// A message with the usual header fields and a short body, CRLF line ends, no final dot.
pub(crate) fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: Mon, 1 Dec 2025 10:00:00 +0000\r\n\
         Message-ID: <{}.{}@client.test>\r\n\r\nHello.\r\n",
        subject.replace(' ', "-"),
        std::process::id()
    )
}

/// Writes a self-signed certificate for `switch.test` (`server.pem`, key `server.key`).
pub(crate) fn write_certificate(dir: &Path) {
    let mut params = CertificateParams::new(vec!["switch.test".to_owned()]).expect("names");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "switch.test");
    params.distinguished_name = dn;
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write server.pem");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write server.key");
}

/// A recording TCP relay from 127.0.0.1:`listen` to 127.0.0.1:`target`: every octet the
/// connecting side (the switch's SMTP client) sends, as it went on the wire. It changes
/// nothing: the peer behind it is real.
pub(crate) fn recorder(listen: u16, target: u16) -> Arc<Mutex<Vec<u8>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let socket = TcpListener::bind((Ipv4Addr::LOCALHOST, listen)).expect("bind the recorder");
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in socket.incoming() {
            let Ok(mut client) = client else { continue };
            let Ok(mut server) = TcpStream::connect((Ipv4Addr::LOCALHOST, target)) else {
                continue;
            };
            let (Ok(mut c2), Ok(mut s2)) = (client.try_clone(), server.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
            let record = record.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if let Ok(mut r) = record.lock() {
                                r.extend_from_slice(&buf[..n]);
                            }
                            if server.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = server.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    seen
}

/// Every line of `log` that holds an octet below 0x20 other than TAB, or DEL: a control
/// character that reached the log unescaped.
pub(crate) fn raw_control_lines(log: &[u8]) -> Vec<String> {
    log.split(|&b| b == b'\n')
        .filter(|l| l.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f))
        .map(|l| String::from_utf8_lossy(l).escape_debug().to_string())
        .collect()
}

/// The X.400 peer that the X.400 suites play: the MTA `test-mta` of PRMD-T, password
/// `secret-t` (each suite's configuration declares it as a peer).
pub(crate) mod p1_peer {
    use std::net::SocketAddr;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use mswitch_core::address::ORAddress;
    use mswitch_core::id::Timestamp;
    use mswitch_x400::driver::P1Client;
    use mswitch_x400::mta::MtaIdentity;
    use mswitch_x400::mts::{
        ContentType, DomainSuppliedInformation, Message, MessageTransferEnvelope, MtsApdu,
        MtsIdentifier, ORName, PerRecipientMessageTransferFields, RoutingAction,
        TraceInformationElement, UtcTime,
    };
    use mswitch_x400::p1::{AssociationConfig, BindCredentials};

    /// A message from `originator` to `recipient` (std-or addresses) as `test-mta` relays it:
    /// its MTS identifier's local part `id`, one trace element (ours), IA5 text content.
    pub(crate) fn message(id: &str, originator: &str, recipient: &str, content: &[u8]) -> Vec<u8> {
        let or = |a: &str| -> ORAddress { a.parse().expect("std-or address") };
        let t = MtaIdentity::new("test-mta", "GB", " ", Some("PRMD-T"));
        let now = Timestamp(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
                .unwrap_or(0),
        );
        let trace = vec![TraceInformationElement {
            global_domain: t.global_domain.clone(),
            domain_supplied: DomainSuppliedInformation {
                arrival_time: UtcTime::from_timestamp(now).expect("time"),
                routing_action: RoutingAction::Relayed,
                attempted_domain: None,
                deferred_time: None,
                converted_eits: None,
                other_actions: None,
            },
        }];
        MtsApdu::Message(Message {
            envelope: MessageTransferEnvelope {
                message_identifier: MtsIdentifier::new(t.global_domain, id),
                originator_name: ORName::from(or(originator)),
                original_eits: None,
                content_type: ContentType::BuiltIn(22),
                content_identifier: None,
                priority: None,
                per_message_indicators: None,
                deferred_delivery_time: None,
                per_domain_bilateral_information: None,
                trace_information: trace,
                extensions: Vec::new(),
                per_recipient_fields: vec![PerRecipientMessageTransferFields::new(
                    ORName::from(or(recipient)),
                    1,
                )],
                unknown: Vec::new(),
            },
            content: content.to_vec(),
        })
        .encode()
        .expect("encode the message")
    }

    /// Binds to the MTA on 127.0.0.1:`port` as `test-mta`, transfers `apdu`, releases.
    pub(crate) fn transfer(port: u16, apdu: &[u8]) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let mut c = P1Client::connect(
                SocketAddr::from(([127, 0, 0, 1], port)),
                AssociationConfig::default(),
                BindCredentials {
                    mta_name: Some("test-mta".into()),
                    password: Some(b"secret-t".to_vec()),
                },
                Duration::from_secs(10),
            )
            .await?;
            c.transfer(apdu).await?;
            c.release().await
        })
        .expect("a P1 transfer as test-mta");
    }
}
