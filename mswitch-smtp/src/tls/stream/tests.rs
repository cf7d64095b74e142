//! Two in-memory TLS connections talking to each other.

use super::*;
use crate::tls::test_certs::Ca;
use crate::tls::{ClientCertAuth, Verification, client_config, server_config, server_config_sni};

/// Moves records both ways until neither side has anything to send. Returns the plaintext
/// each side received (client, server), or the first error and which side it was on.
fn pump(
    client: &mut TlsStream,
    server: &mut TlsStream,
) -> Result<(Vec<u8>, Vec<u8>), (bool, TlsError)> {
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let c = client.take_ciphertext();
        let s = server.take_ciphertext();
        if c.is_empty() && s.is_empty() {
            return Ok((to_client, to_server));
        }
        to_server.extend(server.decrypt(&c).map_err(|e| (false, e))?);
        to_client.extend(client.decrypt(&s).map_err(|e| (true, e))?);
    }
    panic!("no quiescence after 100 rounds");
}

fn pair(
    verification: Verification,
    name: &str,
    client_cert: Option<crate::tls::CertifiedKeyPem<'_>>,
    server: Arc<ServerConfig>,
) -> (TlsStream, TlsStream) {
    let config = client_config(verification, client_cert).expect("client config");
    let client = TlsStream::client(config, name).expect("client");
    let server = TlsStream::server(server).expect("server");
    (client, server)
}

#[test]
fn handshake_and_data_both_ways() {
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["mx.example.org"]);
    let config = server_config(&leaf.cert, &leaf.key, ClientCertAuth::None).expect("config");
    let (mut c, mut s) = pair(
        Verification::CaFile(ca.pem.clone()),
        "mx.example.org",
        None,
        config,
    );
    assert!(c.is_handshaking() && s.is_handshaking());
    assert_eq!(c.peer_identity(), None);
    pump(&mut c, &mut s).expect("handshake");
    assert!(!c.is_handshaking() && !s.is_handshaking());
    assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert!(c.cipher_suite().is_some());
    // The server's certificate, seen by the client.
    let id = c.peer_identity().expect("server identity");
    assert_eq!(id.dns_names, ["mx.example.org"]);
    // No client certificate.
    assert_eq!(s.peer_identity(), None);

    c.encrypt(b"EHLO client.example.org\r\n").expect("encrypt");
    let wire = c.take_ciphertext();
    assert!(
        !wire.windows(4).any(|w| w == b"EHLO"),
        "plaintext on the wire"
    );
    assert_eq!(
        s.decrypt(&wire).expect("decrypt"),
        b"EHLO client.example.org\r\n"
    );

    // Records split anywhere still decrypt.
    s.encrypt(b"250 mx.example.org\r\n").expect("encrypt");
    let wire = s.take_ciphertext();
    let mut got = Vec::new();
    for piece in wire.chunks(3) {
        got.extend(c.decrypt(piece).expect("decrypt"));
    }
    assert_eq!(got, b"250 mx.example.org\r\n");
}

#[test]
fn large_writes_pass_the_buffer_limit() {
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["mx.example.org"]);
    let config = server_config(&leaf.cert, &leaf.key, ClientCertAuth::None).expect("config");
    let (mut c, mut s) = pair(
        Verification::CaFile(ca.pem.clone()),
        "mx.example.org",
        None,
        config,
    );
    pump(&mut c, &mut s).expect("handshake");
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    c.encrypt(&big).expect("encrypt 3 MiB");
    let wire = c.take_ciphertext();
    assert!(wire.len() > big.len());
    assert_eq!(s.decrypt(&wire).expect("decrypt"), big);
}

#[test]
fn plaintext_before_the_handshake_is_held_up_to_the_limit() {
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["mx.example.org"]);
    let config = server_config(&leaf.cert, &leaf.key, ClientCertAuth::None).expect("config");
    let (mut c, mut s) = pair(
        Verification::CaFile(ca.pem.clone()),
        "mx.example.org",
        None,
        config,
    );
    c.encrypt(b"early\r\n").expect("held");
    let e = c.encrypt(&vec![b'x'; 100_000]).expect_err("over the limit");
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    let (_, at_server) = pump(&mut c, &mut s).expect("handshake");
    assert!(
        at_server.starts_with(b"early\r\n"),
        "held data sent after the handshake"
    );
}

#[test]
fn client_certificate_gives_the_server_an_identity() {
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["mx.example.org"]);
    let alice = ca.client("alice");
    let config = server_config(
        &leaf.cert,
        &leaf.key,
        ClientCertAuth::Optional(ca.pem.clone()),
    )
    .expect("config");
    let verification = Verification::CaFile(ca.pem.clone());
    let (mut c, mut s) = pair(
        verification.clone(),
        "mx.example.org",
        Some(alice.pem()),
        config.clone(),
    );
    pump(&mut c, &mut s).expect("handshake");
    let id = s.peer_identity().expect("client identity");
    assert_eq!(id.name(), Some("alice"));

    // Optional: no certificate is fine too.
    let (mut c, mut s) = pair(verification.clone(), "mx.example.org", None, config.clone());
    pump(&mut c, &mut s).expect("handshake");
    assert_eq!(s.peer_identity(), None);

    // A certificate from another CA ends the handshake.
    let stranger = Ca::new("Other CA").client("alice");
    let (mut c, mut s) = pair(verification, "mx.example.org", Some(stranger.pem()), config);
    let (client_side, e) = pump(&mut c, &mut s).expect_err("unknown issuer");
    assert!(!client_side);
    assert!(matches!(e, TlsError::Certificate(_)), "{e:?}");
    assert_eq!(s.peer_identity(), None);
    // The server's alert reaches the client.
    let e = c.decrypt(&s.take_ciphertext()).expect_err("alert");
    assert!(matches!(e, TlsError::AlertReceived(_)), "{e:?}");
}

#[test]
fn verification_failures() {
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["mx.example.org"]);
    let config = server_config(&leaf.cert, &leaf.key, ClientCertAuth::None).expect("config");

    let other_ca = Ca::new("Other CA");
    let (mut c, mut s) = pair(
        Verification::CaFile(other_ca.pem.clone()),
        "mx.example.org",
        None,
        config.clone(),
    );
    let (client_side, e) = pump(&mut c, &mut s).expect_err("unknown issuer");
    assert!(client_side);
    assert!(matches!(e, TlsError::Certificate(_)), "{e:?}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    // The client's alert is there to send.
    assert!(!c.take_ciphertext().is_empty());

    let (mut c, mut s) = pair(
        Verification::CaFile(ca.pem.clone()),
        "smtp.example.net",
        None,
        config.clone(),
    );
    let (client_side, e) = pump(&mut c, &mut s).expect_err("wrong name");
    assert!(client_side);
    assert!(matches!(e, TlsError::Certificate(_)), "{e:?}");

    // Opportunistic: anything goes, including the wrong name and an unknown issuer.
    let (mut c, mut s) = pair(
        Verification::NoVerification,
        "smtp.example.net",
        None,
        config,
    );
    pump(&mut c, &mut s).expect("handshake without verification");
    assert_eq!(
        c.peer_identity().expect("server identity").name(),
        Some("mx.example.org")
    );
}

#[test]
fn sni_picks_the_certificate() {
    let ca = Ca::new("Test CA");
    let mx = ca.server(&["mx.example.org"]);
    let smtp = ca.server(&["smtp.example.net"]);
    let fallback = ca.server(&["fallback.example.com"]);
    let with_default = server_config_sni(
        &[
            ("mx.example.org", mx.pem()),
            ("smtp.example.net", smtp.pem()),
        ],
        Some(fallback.pem()),
        ClientCertAuth::None,
    )
    .expect("config");
    for (asked, shown) in [
        ("mx.example.org", "mx.example.org"),
        ("SMTP.Example.NET", "smtp.example.net"),
        ("other.example.org", "fallback.example.com"),
        ("192.0.2.1", "fallback.example.com"), // no SNI for an address
    ] {
        let (mut c, mut s) = pair(
            Verification::NoVerification,
            asked,
            None,
            with_default.clone(),
        );
        pump(&mut c, &mut s).expect("handshake");
        let id = c.peer_identity().expect("server identity");
        assert_eq!(id.dns_names, [shown], "asked for {asked}");
    }
    let without_default =
        server_config_sni(&[("mx.example.org", mx.pem())], None, ClientCertAuth::None)
            .expect("config");
    let (mut c, mut s) = pair(
        Verification::NoVerification,
        "other.example.org",
        None,
        without_default,
    );
    let (client_side, _) = pump(&mut c, &mut s).expect_err("no certificate for the name");
    assert!(!client_side);
}

#[test]
fn garbage_close_and_bad_names() {
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["mx.example.org"]);
    let config = server_config(&leaf.cert, &leaf.key, ClientCertAuth::None).expect("config");

    // Plaintext where records are due.
    let mut s = TlsStream::server(config.clone()).expect("server");
    let e = s.decrypt(b"250 OK\r\n").expect_err("not TLS");
    assert!(matches!(e, TlsError::Protocol(_)), "{e:?}");
    assert!(!s.take_ciphertext().is_empty(), "an alert goes back");

    // A record changed on the path.
    let (mut c, mut s) = pair(
        Verification::CaFile(ca.pem.clone()),
        "mx.example.org",
        None,
        config.clone(),
    );
    pump(&mut c, &mut s).expect("handshake");
    c.encrypt(b"MAIL FROM:<a@example.org>\r\n")
        .expect("encrypt");
    let mut wire = c.take_ciphertext();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    let e = s.decrypt(&wire).expect_err("tampered");
    assert!(matches!(e, TlsError::Protocol(_)), "{e:?}");
    let e = s.encrypt(b"250 OK\r\n").expect_err("after a failure");
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);

    // close_notify.
    let (mut c, mut s) = pair(
        Verification::CaFile(ca.pem.clone()),
        "mx.example.org",
        None,
        config.clone(),
    );
    pump(&mut c, &mut s).expect("handshake");
    s.encrypt(b"221 bye\r\n").expect("encrypt");
    s.close();
    let e = s.encrypt(b"more").expect_err("after close");
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    let mut wire = s.take_ciphertext();
    wire.extend_from_slice(b"ignored after close_notify");
    assert_eq!(c.decrypt(&wire).expect("decrypt"), b"221 bye\r\n");
    assert!(c.is_peer_closed());

    let config = client_config(Verification::NoVerification, None).expect("client config");
    let e = TlsStream::client(config, "not a name!").expect_err("bad name");
    assert!(matches!(e, TlsError::InvalidServerName { .. }), "{e:?}");
}
