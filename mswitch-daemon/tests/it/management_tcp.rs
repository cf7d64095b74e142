//! The TCP management listener (`[management]`) of a running mswitchd: TLS before anything,
//! authentication before any request (PLAIN, SCRAM-SHA-256, EXTERNAL with a client
//! certificate), the reader and operator roles, and `mswitchctl --connect` end to end.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mswitch_smtp::sasl::{ClientExchange, ClientMechanism, encode};
use mswitch_smtp::tls::rustls::pki_types::ServerName;
use mswitch_smtp::tls::rustls::{ClientConnection, StreamOwned};
use mswitch_smtp::tls::{CertifiedKeyPem, Verification, client_config};
use mswitch_testkit::{TempDir, free_port, wait_until};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

use crate::common::Daemon;
use crate::delivery::{message, password_line, queue_id, send};

/// Writes into `dir`: a CA (`ca.pem`); the daemon's certificate for `switch.test` and
/// 127.0.0.1 (`server.pem`, `server.key`); client certificates it signed for `carol` and
/// `mallory` (`carol.pem`/`.key`, `mallory.pem`/`.key`); and a certificate for `carol` from
/// another CA (`rogue.pem`/`.key`).
fn write_certificates(dir: &Path) {
    let ca = |name: &str| {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        (params, key, cert)
    };
    let (ca_params, ca_key, ca_cert) = ca("mswitch management test CA");
    let (rogue_params, rogue_key, _) = ca("someone else's CA");
    let ours = Issuer::from_params(&ca_params, &ca_key);
    let theirs = Issuer::from_params(&rogue_params, &rogue_key);
    let server = vec!["switch.test".to_owned(), "127.0.0.1".to_owned()];
    let server_auth = ExtendedKeyUsagePurpose::ServerAuth;
    issue(dir, server, "switch.test", server_auth, &ours, "server");
    let client = ExtendedKeyUsagePurpose::ClientAuth;
    issue(dir, vec![], "carol", client.clone(), &ours, "carol");
    issue(dir, vec![], "mallory", client.clone(), &ours, "mallory");
    issue(dir, vec![], "carol", client, &theirs, "rogue");
    fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write the CA");
}

/// Writes `file.pem` and `file.key`: a certificate for `names` and common name `cn`, for
/// `usage`, signed by `issuer`.
fn issue(
    dir: &Path,
    names: Vec<String>,
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, &KeyPair>,
    file: &str,
) {
    let mut params = CertificateParams::new(names).expect("names");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("certificate");
    fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("write a certificate");
    fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("write a key");
}

/// A daemon with a relay listener and `[management]` (alice operator, bob reader, carol
/// operator by certificate); one message queued to a peer that does not answer, so it stays.
/// Returns the daemon, the management port and the queue id.
fn start() -> (Daemon, u16, String) {
    let (smtp, mgmt, dead) = (free_port(), free_port(), free_port());
    let dir = TempDir::new("mswitchd-mgmt-tcp");
    write_certificates(dir.path());
    let users = password_line("alice", "wonderland") + &password_line("bob", "builder");
    fs::write(dir.path().join("mgmt-users"), users).expect("write the users");
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
address = "127.0.0.1:{smtp}"

[routing]
trusted_networks = ["127.0.0.0/8"]

[[route]]
domain = "far.test"
channel = "out"
host = "127.0.0.1:{dead}"

[[channel]]
name = "out"
type = "smtp"
tls = "none"

[management]
listen = "127.0.0.1:{mgmt}"
tls_cert = "server.pem"
tls_key = "server.key"
users = "mgmt-users"
roles = {{ alice = "operator", bob = "reader", carol = "operator" }}
client_ca = "ca.pem"
"#
    );
    let daemon = Daemon::start_in(dir, &config, &[smtp, mgmt]);
    let id = queue_id(&send(
        smtp,
        "sender@origin.test",
        &["rcpt@far.test"],
        &message("sender@origin.test", "rcpt@far.test", "held over TCP"),
    ));
    assert!(
        daemon.wait_for_log(&["status=\"deferred\""], 1, Duration::from_secs(30)),
        "the first attempt"
    );
    (daemon, mgmt, id)
}

/// A TLS connection to the management port, speaking raw lines.
struct Tls {
    io: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl Tls {
    /// Connects with TLS, the daemon's certificate checked against the test CA; presents the
    /// client certificate `cert` (`carol`, `mallory`, `rogue`) if given.
    fn connect(dir: &Path, port: u16, cert: Option<&str>) -> std::io::Result<Tls> {
        let ca = fs::read(dir.join("ca.pem")).expect("read the CA");
        let pair = cert.map(|c| {
            (
                fs::read(dir.join(format!("{c}.pem"))).expect("read a certificate"),
                fs::read(dir.join(format!("{c}.key"))).expect("read a key"),
            )
        });
        let config = client_config(
            Verification::CaFile(ca),
            pair.as_ref().map(|(c, k)| CertifiedKeyPem {
                cert_chain: c,
                key: k,
            }),
        )
        .expect("client configuration");
        let mut socket = TcpStream::connect(("127.0.0.1", port))?;
        socket.set_read_timeout(Some(Duration::from_secs(20)))?;
        let name = ServerName::try_from("127.0.0.1").expect("a server name");
        let mut conn = ClientConnection::new(Arc::clone(&config), name).expect("a connection");
        while conn.is_handshaking() {
            conn.complete_io(&mut socket)?;
        }
        Ok(Tls {
            io: BufReader::new(StreamOwned::new(conn, socket)),
        })
    }

    /// Sends `line`; the answer line, or `None` if the daemon closed the connection.
    fn try_send(&mut self, line: &str) -> std::io::Result<Option<String>> {
        let out = self.io.get_mut();
        out.write_all(format!("{line}\n").as_bytes())?;
        out.flush()?;
        let mut answer = String::new();
        Ok((self.io.read_line(&mut answer)? > 0).then_some(answer))
    }

    /// Sends `line` and parses the answer, which must come.
    fn send(&mut self, line: &Value) -> Value {
        let answer = self
            .try_send(&line.to_string())
            .expect("send and read")
            .expect("an answer");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
    }

    /// A request, `{"version":1,"op":op, ...fields}`.
    fn request(&mut self, op: &str, fields: Value) -> Value {
        let mut line = json!({"version": 1, "op": op});
        if let Value::Object(f) = fields {
            for (k, v) in f {
                line[k] = v;
            }
        }
        self.send(&line)
    }

    /// Logs in with PLAIN.
    fn plain(&mut self, user: &str, password: &str) -> Value {
        let data = encode(format!("\0{user}\0{password}").as_bytes());
        self.send(&json!({"version": 1, "op": "auth", "mechanism": "PLAIN", "data": data}))
    }
}

fn refused(answer: &Value, code: &str) -> String {
    assert_eq!(answer["ok"], false, "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    assert_eq!(answer.get("result"), None, "{answer}");
    answer["error"]["message"].as_str().unwrap_or("").to_owned()
}

fn result(answer: &Value) -> Value {
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].clone()
}

#[test]
fn nothing_is_answered_before_authentication() {
    let (daemon, port, _) = start();
    let dir = daemon.dir().to_path_buf();

    // A plaintext client gets no answer: the handshake fails (at most a TLS alert comes back).
    let mut plain = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    plain
        .write_all(b"{\"version\":1,\"op\":\"summary\"}\n")
        .expect("write");
    let mut back = Vec::new();
    let _ = plain.read_to_end(&mut back);
    assert!(
        back.is_empty() || back[0] == 0x15,
        "nothing but an alert record: {back:?}"
    );
    assert!(
        !String::from_utf8_lossy(&back).contains("\"ok\""),
        "{back:?}"
    );
    assert!(daemon.wait_for_log(
        &["management TLS handshake failed"],
        1,
        Duration::from_secs(10)
    ));

    // Over TLS, a request before authentication is refused, as are bad logins; the third
    // refusal closes the connection.
    let mut c = Tls::connect(&dir, port, None).expect("TLS");
    let message = refused(&c.request("summary", json!({})), "unauthenticated");
    assert!(message.contains("authenticate first"), "{message}");
    let message = refused(&c.plain("alice", "not her password"), "unauthenticated");
    assert_eq!(message, "Authentication credentials invalid");
    let message = refused(&c.plain("nobody", "wonderland"), "unauthenticated");
    assert_eq!(message, "Authentication credentials invalid");
    let after = c.try_send(r#"{"version":1,"op":"summary"}"#);
    assert!(matches!(after, Ok(None) | Err(_)), "closed: {after:?}");

    // A mechanism that is not offered, and EXTERNAL without a certificate.
    let mut c = Tls::connect(&dir, port, None).expect("TLS");
    let login = json!({"version": 1, "op": "auth", "mechanism": "LOGIN"});
    let message = refused(&c.send(&login), "unauthenticated");
    assert!(
        message.contains("offered: SCRAM-SHA-256, PLAIN, EXTERNAL"),
        "{message}"
    );
    let external = json!({"version": 1, "op": "auth", "mechanism": "EXTERNAL", "data": ""});
    let message = refused(&c.send(&external), "unauthenticated");
    assert!(
        message.contains("no verified client certificate"),
        "{message}"
    );

    // A certificate the CA did not sign is refused in the handshake (TLS 1.3: the client
    // learns it at its first read).
    let rogue =
        Tls::connect(&dir, port, Some("rogue")).and_then(|mut t| t.try_send(&external.to_string()));
    assert!(rogue.is_err(), "{rogue:?}");

    // The right password, after all that.
    let mut c = Tls::connect(&dir, port, None).expect("TLS");
    assert_eq!(
        c.plain("alice", "wonderland"),
        json!({"ok": true, "result": {"user": "alice", "role": "operator"}})
    );
    assert!(daemon.wait_for_log(
        &["management client authenticated", "alice", "operator"],
        1,
        Duration::from_secs(10)
    ));

    // A reload reads the password file again: alice's new password works, the old one no
    // longer does.
    fs::write(
        dir.join("mgmt-users"),
        password_line("alice", "looking-glass") + &password_line("bob", "builder"),
    )
    .expect("write the users");
    daemon.hangup();
    let changed = wait_until(Duration::from_secs(30), || {
        let mut c = Tls::connect(&dir, port, None).ok()?;
        (c.plain("alice", "looking-glass")["ok"] == true).then_some(())
    });
    assert!(changed.is_some(), "the new password never worked");
    let mut c = Tls::connect(&dir, port, None).expect("TLS");
    refused(&c.plain("alice", "wonderland"), "unauthenticated");
}

#[test]
fn a_management_section_that_does_not_load_stops_the_start() {
    let dir = TempDir::new("mswitchd-mgmt-bad");
    write_certificates(dir.path());
    fs::write(dir.path().join("mgmt-users"), "alice:not a verifier\n").expect("write");
    let config = format!(
        r#"[server]
hostname = "switch.test"

[queue]
path = "queue"

[management]
listen = "127.0.0.1:{}"
tls_cert = "server.pem"
tls_key = "server.key"
users = "mgmt-users"
"#,
        free_port()
    );
    fs::write(dir.path().join("mswitch.toml"), config).expect("write the configuration");
    let out = Command::new(env!("CARGO_BIN_EXE_mswitchd"))
        .arg("--config")
        .arg(dir.path().join("mswitch.toml"))
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run mswitchd");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("mswitchd: cannot start: [management]: password file")
            && stderr.contains("mgmt-users: line 1"),
        "{stderr}"
    );
}

#[test]
fn roles_decide_what_a_client_may_do() {
    let (daemon, port, id) = start();
    let dir = daemon.dir().to_path_buf();

    // bob, not an operator: he may look, not touch.
    let mut bob = Tls::connect(&dir, port, None).expect("TLS");
    assert_eq!(
        bob.plain("bob", "builder"),
        json!({"ok": true, "result": {"user": "bob", "role": "reader"}})
    );
    let summary = result(&bob.request("summary", json!({})));
    assert_eq!(summary["messages"], 1);
    assert_eq!(summary["held"], 0);
    refused(&bob.request("hold", json!({ "id": id })), "forbidden");
    refused(&bob.request("reload", json!({})), "forbidden");
    assert_eq!(
        result(&bob.request("show", json!({ "id": id })))["held"],
        false
    );
    let again = bob.plain("alice", "wonderland");
    let message = refused(&again, "bad_request");
    assert_eq!(message, "already authenticated as bob");

    // alice, an operator, with SCRAM-SHA-256: the server-first and server-final messages
    // come as "continue", the last one answered with empty data.
    let mut alice = Tls::connect(&dir, port, None).expect("TLS");
    let (mut scram, first) = ClientExchange::start(
        ClientMechanism::ScramSha256,
        "alice",
        "wonderland",
        None,
        "fyko+d2lbbFgONRv9qkxdawL",
    )
    .expect("SCRAM");
    let mut answer = alice.send(&json!({
        "version": 1, "op": "auth", "mechanism": "SCRAM-SHA-256", "data": first
    }));
    let mut steps = 0;
    while let Some(challenge) = answer["result"]["continue"].as_str() {
        let data = scram.step(challenge).expect("SCRAM step");
        answer = alice.send(&json!({"version": 1, "op": "auth", "data": data}));
        steps += 1;
    }
    assert_eq!(steps, 2);
    assert_eq!(
        answer,
        json!({"ok": true, "result": {"user": "alice", "role": "operator"}})
    );
    scram.finish().expect("the daemon proved it knows the key");
    assert_eq!(
        result(&alice.request("hold", json!({ "id": id }))),
        json!({ "held": id })
    );
    assert_eq!(
        result(&bob.request("show", json!({ "id": id })))["held"],
        true
    );
    assert_eq!(result(&bob.request("summary", json!({})))["held"], 1);
    assert_eq!(
        result(&alice.request("release", json!({ "id": id }))),
        json!({ "released": id })
    );
    assert_eq!(
        result(&bob.request("show", json!({ "id": id })))["held"],
        false
    );
    // Reload is offered to operators over TCP too.
    assert_eq!(
        result(&alice.request("reload", json!({}))),
        json!({"reloaded": true})
    );

    // carol, by certificate (EXTERNAL): an operator.
    let mut carol = Tls::connect(&dir, port, Some("carol")).expect("TLS");
    let external = json!({"version": 1, "op": "auth", "mechanism": "EXTERNAL", "data": ""});
    assert_eq!(
        carol.send(&external),
        json!({"ok": true, "result": {"user": "carol", "role": "operator"}})
    );
    assert_eq!(
        result(&carol.request("hold", json!({ "id": id }))),
        json!({ "held": id })
    );
    assert_eq!(
        result(&carol.request("release", json!({ "id": id }))),
        json!({ "released": id })
    );
    // mallory's certificate is signed by the same CA, but she is not in the roles table.
    let mut mallory = Tls::connect(&dir, port, Some("mallory")).expect("TLS");
    let message = refused(&mallory.send(&external), "unauthenticated");
    assert!(message.contains("not listed"), "{message}");
    refused(&mallory.request("summary", json!({})), "unauthenticated");
    assert!(daemon.wait_for_log(
        &["management request", "alice", "hold"],
        1,
        Duration::from_secs(10)
    ));
}

/// Runs mswitchctl with `args` (`env`: extra environment); exit code and output.
fn ctl(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mswitchctl"))
        .args(args)
        .env_remove("MSWITCH_PASSWORD")
        .envs(env.iter().copied())
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

#[test]
fn mswitchctl_connects_over_tcp() {
    let (daemon, port, id) = start();
    let dir = daemon.dir().to_path_buf();
    let path = |f: &str| dir.join(f).display().to_string();
    fs::write(dir.join("alice.pw"), "wonderland\n").expect("write");
    fs::write(dir.join("wrong.pw"), "guess\n").expect("write");
    let connect = format!("127.0.0.1:{port}");
    let ca = path("ca.pem");
    let alice_pw = path("alice.pw");
    let base = ["--connect", connect.as_str(), "--ca-file", ca.as_str()];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
    };
    let run = |args: Vec<String>, env: &[(&str, &str)]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(&refs, env)
    };

    // alice, password from a file: a summary, then hold.
    let (code, out) = run(
        with(&[
            "--user",
            "alice",
            "--password-file",
            &alice_pw,
            "--json",
            "summary",
        ]),
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["result"]["messages"], 1, "{out}");
    let (code, out) = run(
        with(&["--user", "alice", "--password-file", &alice_pw, "hold", &id]),
        &[],
    );
    assert_eq!(code, 0, "{out}");

    // bob, password from the environment, with SCRAM-SHA-256: sees it held, may not release.
    let bob = |extra: &[&str]| {
        let mut a = with(&["--user", "bob", "--mechanism", "SCRAM-SHA-256"]);
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        run(a, &[("MSWITCH_PASSWORD", "builder")])
    };
    let (code, out) = bob(&["--json", "show", &id]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["result"]["held"], true, "{out}");
    let (code, out) = bob(&["release", &id]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(forbidden)"), "{out}");

    // carol, by certificate: releases it.
    let (cert, key) = (path("carol.pem"), path("carol.key"));
    let (code, out) = run(with(&["--cert", &cert, "--key", &key, "release", &id]), &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = bob(&["--json", "show", &id]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"held\": false"), "{out}");

    // A wrong password: refused by the daemon (exit 1).
    let wrong = path("wrong.pw");
    let (code, out) = run(
        with(&["--user", "alice", "--password-file", &wrong, "summary"]),
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("(unauthenticated)"), "{out}");

    // The daemon's certificate does not verify against the system roots: not reached (3).
    let (code, out) = ctl(
        &[
            "--connect",
            &connect,
            "--user",
            "alice",
            "--password-file",
            &alice_pw,
            "summary",
        ],
        &[],
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("TLS handshake"), "{out}");

    // Usage errors (2): no password source, no identity, and no password on the command line.
    let (code, out) = run(with(&["--user", "alice", "summary"]), &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("MSWITCH_PASSWORD"), "{out}");
    let (code, out) = run(with(&["summary"]), &[]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = run(
        with(&["--user", "alice", "--password", "wonderland", "summary"]),
        &[],
    );
    assert_eq!(code, 2, "{out}");
}
