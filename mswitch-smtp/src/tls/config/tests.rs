//! Configurations from good and bad PEM.

use super::*;
use crate::tls::test_certs::Ca;

#[test]
fn server_and_client_configs_from_pem() {
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["mx.example.org"]);
    assert!(server_config(&leaf.cert, &leaf.key, ClientCertAuth::None).is_ok());
    assert!(
        server_config(
            &leaf.cert,
            &leaf.key,
            ClientCertAuth::Optional(ca.pem.clone())
        )
        .is_ok()
    );
    assert!(client_config(Verification::CaFile(ca.pem.clone()), None).is_ok());
    assert!(client_config(Verification::NoVerification, Some(ca.client("relay").pem())).is_ok());
    // A chain with the CA after the leaf is fine.
    let mut chain = leaf.cert.clone();
    chain.extend_from_slice(&ca.pem);
    assert!(server_config(&chain, &leaf.key, ClientCertAuth::None).is_ok());
}

#[test]
fn errors_name_the_problem() {
    let ca = Ca::new("Test CA");
    let leaf = ca.server(&["mx.example.org"]);
    let other = ca.server(&["mx.example.org"]);

    let e = server_config(b"", &leaf.key, ClientCertAuth::None).expect_err("no cert");
    assert!(
        matches!(
            e,
            TlsConfigError::NoCertificate {
                what: "certificate chain"
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("no certificate found"), "{e}");

    // The key file given as the certificate: no certificate in it.
    let e = server_config(&leaf.key, &leaf.key, ClientCertAuth::None).expect_err("key as cert");
    assert!(matches!(e, TlsConfigError::NoCertificate { .. }), "{e:?}");

    let e = server_config(&leaf.cert, &leaf.cert, ClientCertAuth::None).expect_err("no key");
    assert!(matches!(e, TlsConfigError::NoPrivateKey), "{e:?}");

    let e = server_config(&leaf.cert, &other.key, ClientCertAuth::None).expect_err("mismatch");
    assert!(matches!(e, TlsConfigError::KeyMismatch), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the private key does not match the first certificate of the chain"
    );

    let truncated = &leaf.cert[..leaf.cert.len() - 30];
    let e = server_config(truncated, &leaf.key, ClientCertAuth::None).expect_err("bad PEM");
    assert!(
        matches!(
            e,
            TlsConfigError::Pem {
                what: "certificate chain",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("certificate chain: bad PEM"),
        "{e}"
    );

    let bad_base64 = b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
    let e = server_config(&leaf.cert, bad_base64, ClientCertAuth::None).expect_err("bad key");
    assert!(
        matches!(
            e,
            TlsConfigError::Pem {
                what: "private key",
                ..
            }
        ),
        "{e:?}"
    );

    let junk_key = b"-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n";
    let e = server_config(&leaf.cert, junk_key, ClientCertAuth::None).expect_err("junk key");
    assert!(matches!(e, TlsConfigError::UnsupportedKey(_)), "{e:?}");

    let junk_ca = b"-----BEGIN CERTIFICATE-----\nAAECAwQF\n-----END CERTIFICATE-----\n";
    let e = client_config(Verification::CaFile(junk_ca.to_vec()), None).expect_err("junk CA");
    assert!(
        matches!(e, TlsConfigError::InvalidCaCertificate { index: 1, .. }),
        "{e:?}"
    );
    let e = server_config(
        &leaf.cert,
        &leaf.key,
        ClientCertAuth::Optional(b"no PEM here".to_vec()),
    )
    .expect_err("no CA");
    assert!(
        matches!(
            e,
            TlsConfigError::NoCertificate {
                what: "CA certificates"
            }
        ),
        "{e:?}"
    );

    let mismatched = CertifiedKeyPem {
        cert_chain: &leaf.cert,
        key: &other.key,
    };
    let e = client_config(Verification::NoVerification, Some(mismatched))
        .expect_err("client key mismatch");
    assert!(matches!(e, TlsConfigError::KeyMismatch), "{e:?}");
}

#[test]
fn sni_entries_are_checked() {
    let ca = Ca::new("Test CA");
    let mx = ca.server(&["mx.example.org"]);
    let smtp = ca.server(&["smtp.example.net"]);
    assert!(
        server_config_sni(
            &[
                ("mx.example.org", mx.pem()),
                ("SMTP.example.net", smtp.pem())
            ],
            None,
            ClientCertAuth::None
        )
        .is_ok()
    );
    let e = server_config_sni(
        &[("smtp.example.net", mx.pem())],
        None,
        ClientCertAuth::None,
    )
    .expect_err("wrong name");
    assert!(
        matches!(&e, TlsConfigError::SniName { name, .. } if name == "smtp.example.net"),
        "{e:?}"
    );
    let e = server_config_sni(&[("not a name", mx.pem())], None, ClientCertAuth::None)
        .expect_err("bad name");
    assert!(matches!(e, TlsConfigError::SniName { .. }), "{e:?}");
    let e = server_config_sni(&[], None, ClientCertAuth::None).expect_err("nothing");
    assert!(matches!(e, TlsConfigError::NoServerCertificate), "{e:?}");
    assert!(server_config_sni(&[], Some(mx.pem()), ClientCertAuth::None).is_ok());
}

#[test]
fn debug_shows_no_key_material() {
    let ca = Ca::new("Test CA");
    let leaf = ca.client("alice");
    let shown = format!("{:?}", leaf.pem());
    assert!(!shown.contains("BEGIN"), "{shown}");
    assert!(shown.contains("key_len"), "{shown}");
    let shown = format!("{:?}", Verification::CaFile(ca.pem.clone()));
    assert!(!shown.contains("BEGIN"), "{shown}");
}

#[test]
fn no_verification_still_lists_signature_schemes() {
    let verifier = AcceptAnyCertificate {
        algorithms: provider().signature_verification_algorithms,
    };
    let schemes = verifier.supported_verify_schemes();
    assert!(
        schemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256),
        "{schemes:?}"
    );
    assert!(schemes.contains(&SignatureScheme::ED25519), "{schemes:?}");
}
