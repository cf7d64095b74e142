//! rustls configurations for the server and client sides of STARTTLS, made from PEM text.
//!
//! Every configuration uses the ring provider explicitly (never the process-wide default, so
//! nothing depends on which provider another crate installed) and the protocol versions rustls
//! deems safe: TLS 1.3 and TLS 1.2.
//!
//! Nothing here reads a file except [`Verification::SystemRoots`], which loads the system's
//! trust store (through `rustls-native-certs`): the caller reads certificate and key files and
//! hands their contents over.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni, WebPkiClientVerifier,
};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    ClientConfig, DigitallySignedStruct, InconsistentKeys, RootCertStore, ServerConfig,
    SignatureScheme,
};

/// What is wrong with a TLS configuration: the certificate, key or CA text given, or the system
/// trust store. Always the configuration's fault, found when the configuration is built (at
/// start-up or reload), never during a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The text is not valid PEM (a section without its end line, bad base64).
    #[error("{what}: bad PEM: {source}")]
    Pem {
        /// Which input: "certificate chain", "private key", "CA certificates".
        what: &'static str,
        /// The PEM parser's complaint.
        #[source]
        source: pem::Error,
    },
    /// No `-----BEGIN CERTIFICATE-----` section in the text.
    #[error("{what}: no certificate found (expected a -----BEGIN CERTIFICATE----- section)")]
    NoCertificate {
        /// Which input: "certificate chain" or "CA certificates".
        what: &'static str,
    },
    /// No private key section (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`) in the
    /// text.
    #[error(
        "private key: no key found (expected a -----BEGIN PRIVATE KEY-----, \
         RSA PRIVATE KEY or EC PRIVATE KEY section)"
    )]
    NoPrivateKey,
    /// The private key cannot be used (a key type or curve the ring provider does not
    /// support, or a malformed key).
    #[error("private key: not usable: {0}")]
    UnsupportedKey(#[source] rustls::Error),
    /// The private key is not the key of the first certificate of the chain (the files do not
    /// belong together, or the chain is in the wrong order: the server's own certificate must
    /// come first).
    #[error("the private key does not match the first certificate of the chain")]
    KeyMismatch,
    /// A CA certificate cannot serve as a trust anchor (it does not parse as X.509).
    #[error("CA certificates: certificate {index} is not usable as a trust anchor: {source}")]
    InvalidCaCertificate {
        /// Its position in the text, counted from 1.
        index: usize,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// An SNI entry's name is not a DNS name, or its certificate is not valid for the name.
    #[error("certificate for the SNI name {name:?}: {source}")]
    SniName {
        /// The name as given.
        name: String,
        /// Why.
        #[source]
        source: rustls::Error,
    },
    /// [`server_config_sni`] with no certificate at all.
    #[error("no certificate: give at least one SNI entry or a default certificate")]
    NoServerCertificate,
    /// No certificate could be loaded from the system trust store.
    #[error("no usable certificate in the system trust store: {details}")]
    NoSystemRoots {
        /// What the loader reported.
        details: String,
    },
    /// The client certificate verifier cannot be built (no CA certificate, say).
    #[error("client certificate verification: {0}")]
    ClientVerifier(#[source] rustls::server::VerifierBuilderError),
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Rustls(#[source] rustls::Error),
}

/// A certificate chain and its private key, both PEM, as read from their files.
#[derive(Clone, Copy)]
pub struct CertifiedKeyPem<'a> {
    /// The chain: the end-entity certificate first, then the intermediates (not the root).
    pub cert_chain: &'a [u8],
    /// The private key of the first certificate: PKCS#8 (`PRIVATE KEY`), PKCS#1
    /// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    pub key: &'a [u8],
}

impl fmt::Debug for CertifiedKeyPem<'_> {
    /// Lengths only: no key material in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedKeyPem")
            .field("cert_chain_len", &self.cert_chain.len())
            .field("key_len", &self.key.len())
            .finish()
    }
}

/// Whether the server asks clients for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientCertAuth {
    /// No client certificates are requested.
    #[default]
    None,
    /// Clients may present a certificate; one that is presented must chain to one of these CA
    /// certificates (PEM), or the handshake fails. A client without a certificate is let in
    /// without one. A verified certificate gives [`TlsStream::peer_identity`], for SASL
    /// EXTERNAL.
    ///
    /// [`TlsStream::peer_identity`]: crate::tls::TlsStream::peer_identity
    Optional(Vec<u8>),
}

/// How the client checks the server's certificate.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// Against the system's trust store (loaded when the configuration is built), and for the
    /// name the connection is made to.
    SystemRoots,
    /// Against these CA certificates (PEM), and for the name the connection is made to.
    CaFile(Vec<u8>),
    /// **No verification of the certificate at all**: any certificate, from any issuer, for any
    /// name, expired or not, is accepted. The handshake signature is still checked against the
    /// certificate's key, so the server proves it holds the key of the certificate it shows,
    /// but nothing ties that key to the host: an active attacker on the path can present their
    /// own certificate and read and change everything.
    ///
    /// This is for opportunistic TLS to MX hosts (RFC 7435, and RFC 3207 §4.1 practice: most MX
    /// certificates would not verify, and refusing them would send the mail in clear instead),
    /// where it protects against passive eavesdropping only. Never use it with AUTH passwords,
    /// for submission, or where a policy (MTA-STS, DANE, a configured requirement) says the
    /// peer must be authenticated.
    NoVerification,
}

impl fmt::Debug for Verification {
    /// Without the CA text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verification::SystemRoots => f.write_str("SystemRoots"),
            Verification::CaFile(pem) => write!(f, "CaFile({} octets)", pem.len()),
            Verification::NoVerification => f.write_str("NoVerification"),
        }
    }
}

/// The provider every configuration here uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM text, in order; at least one.
fn certificates(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsConfigError::Pem { what, source })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate { what });
    }
    Ok(certs)
}

/// The first private key of a PEM text.
fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey,
        source => TlsConfigError::Pem {
            what: "private key",
            source,
        },
    })
}

/// A chain and its key, checked to belong together.
fn certified_key(
    pem: CertifiedKeyPem<'_>,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsConfigError> {
    let chain = certificates(pem.cert_chain, "certificate chain")?;
    let key = private_key(pem.key)?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(TlsConfigError::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsConfigError::KeyMismatch)
        }
        // The provider cannot give the public key of this key type: nothing to compare.
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        // The end-entity certificate does not parse.
        Err(e) => Err(TlsConfigError::Rustls(e)),
    }
}

/// A root store holding every certificate of a PEM text.
fn root_store(pem: &[u8]) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certificates(pem, "CA certificates")?
        .into_iter()
        .enumerate()
    {
        roots
            .add(cert)
            .map_err(|source| TlsConfigError::InvalidCaCertificate {
                index: i + 1,
                source,
            })?;
    }
    Ok(roots)
}

/// The client certificate verifier for `auth`, if any.
fn client_verifier(
    auth: &ClientCertAuth,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, TlsConfigError> {
    match auth {
        ClientCertAuth::None => Ok(None),
        ClientCertAuth::Optional(ca_pem) => {
            let roots = Arc::new(root_store(ca_pem)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(TlsConfigError::ClientVerifier)?;
            Ok(Some(verifier))
        }
    }
}

/// A server configuration from a resolver.
fn server_from_resolver(
    resolver: Arc<dyn ResolvesServerCert>,
    client_auth: &ClientCertAuth,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Rustls)?;
    let config = match client_verifier(client_auth, &provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    }
    .with_cert_resolver(resolver);
    Ok(Arc::new(config))
}

/// A server configuration with one certificate (chain and key, PEM), shown to every client.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_auth: ClientCertAuth,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let pem = CertifiedKeyPem {
        cert_chain: cert_chain_pem,
        key: key_pem,
    };
    let key = certified_key(pem, &provider())?;
    server_from_resolver(Arc::new(SingleCertAndKey::from(key)), &client_auth)
}

/// A server configuration that picks the certificate by the name the client asks for (SNI,
/// RFC 6066 §3): `entries` are (name, certificate) pairs, each certificate checked to be valid
/// for its name; names are matched exactly, without regard to case (a wildcard certificate is
/// listed under each name it serves). A client that sends no name, or one not listed, gets
/// `default`; without a default, its handshake fails.
pub fn server_config_sni(
    entries: &[(&str, CertifiedKeyPem<'_>)],
    default: Option<CertifiedKeyPem<'_>>,
    client_auth: ClientCertAuth,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    if entries.is_empty() && default.is_none() {
        return Err(TlsConfigError::NoServerCertificate);
    }
    let provider = provider();
    let mut by_name = ResolvesServerCertUsingSni::new();
    for (name, pem) in entries {
        let key = certified_key(*pem, &provider)?;
        by_name
            .add(name, key)
            .map_err(|source| TlsConfigError::SniName {
                name: (*name).to_owned(),
                source,
            })?;
    }
    let default = match default {
        Some(pem) => Some(Arc::new(certified_key(pem, &provider)?)),
        None => None,
    };
    server_from_resolver(Arc::new(SniResolver { by_name, default }), &client_auth)
}

/// A client configuration: the server is checked as `verification` says; `client_cert`, if
/// given, is presented to servers that ask for one (to authenticate this host to a peer).
pub fn client_config(
    verification: Verification,
    client_cert: Option<CertifiedKeyPem<'_>>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsConfigError::Rustls)?;
    let builder = match verification {
        Verification::SystemRoots => builder.with_root_certificates(system_roots()?),
        Verification::CaFile(pem) => builder.with_root_certificates(root_store(&pem)?),
        Verification::NoVerification => {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
        }
    };
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let key = certified_key(pem, &provider)?;
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key)))
        }
    };
    Ok(Arc::new(config))
}

/// The system trust store.
fn system_roots() -> Result<RootCertStore, TlsConfigError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let mut details: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        if ignored > 0 {
            details.push(format!("{ignored} certificates could not be parsed"));
        }
        if details.is_empty() {
            details.push("the store is empty".into());
        }
        return Err(TlsConfigError::NoSystemRoots {
            details: details.join("; "),
        });
    }
    Ok(roots)
}

/// A certificate by SNI name, else the default.
#[derive(Debug)]
struct SniResolver {
    by_name: ResolvesServerCertUsingSni,
    default: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.by_name.resolve(hello).or_else(|| self.default.clone())
    }
}

/// The verifier of [`Verification::NoVerification`]: any certificate is accepted, and the
/// handshake signature is checked against its key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
