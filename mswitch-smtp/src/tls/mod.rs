//! TLS for STARTTLS (RFC 3207) with rustls (ring provider): configurations made from PEM, and
//! [`TlsStream`], a sans-IO adapter that turns the SMTP sessions' plaintext into TLS records
//! and back. No sockets here: the driver moves the bytes.
//!
//! - [`config`]: [`server_config`] and [`server_config_sni`] (certificate and key from PEM,
//!   optional client certificates verified against a CA, for SASL EXTERNAL), and
//!   [`client_config`] with the way the peer is verified ([`Verification`]: the system roots,
//!   a CA file, or none at all for opportunistic TLS to MX hosts, RFC 7435) and an optional
//!   client certificate.
//! - [`stream`]: [`TlsStream`], one TLS connection in memory: [`TlsStream::encrypt`],
//!   [`TlsStream::take_ciphertext`], [`TlsStream::decrypt`], [`TlsStream::is_handshaking`],
//!   [`TlsStream::peer_identity`].
//! - [`identity`]: [`PeerIdentity`], what a peer certificate says about its holder (subject
//!   common name, DNS names, SHA-256 fingerprint), and the name SASL EXTERNAL uses.
//!
//! # How a server driver uses it
//! ```text
//! Event::StartTls =>
//!     write everything s.poll_output() gives, in plaintext (the 220 reply);
//!     tls = TlsStream::server(config)?;
//!     from now on every byte read from the socket goes to tls.decrypt, never to the session
//!     (what was read before the event belonged to the session, which threw it away)
//! bytes read =>
//!     let was_handshaking = tls.is_handshaking();
//!     match tls.decrypt(&bytes) {
//!         Ok(plain) => {
//!             if was_handshaking && !tls.is_handshaking() {
//!                 if let Some(name) = tls.peer_identity().and_then(|p| p.name().map(..)) {
//!                     s.set_tls_client_identity(name);        // offers AUTH EXTERNAL
//!                 }
//!                 s.tls_established(now);
//!             }
//!             s.handle_input(&plain, now);
//!         }
//!         Err(e) => { write tls.take_ciphertext() (the alert), log e, close }
//!     }
//!     write tls.take_ciphertext()
//! session output => tls.encrypt(&bytes)?; write tls.take_ciphertext()
//! ```
//! A client driver does the same on the client session's `Event::StartTls` with
//! [`TlsStream::client`] (whose first [`TlsStream::take_ciphertext`] is the ClientHello), and
//! calls `tls_established(now)` when the handshake ends, or `tls_failed(&e.to_string(), now)`
//! when [`TlsStream::decrypt`] fails during it.
//!
//! [`server_config`]: config::server_config
//! [`server_config_sni`]: config::server_config_sni
//! [`client_config`]: config::client_config
//! [`Verification`]: config::Verification
//! [`TlsStream`]: stream::TlsStream
//! [`TlsStream::encrypt`]: stream::TlsStream::encrypt
//! [`TlsStream::take_ciphertext`]: stream::TlsStream::take_ciphertext
//! [`TlsStream::decrypt`]: stream::TlsStream::decrypt
//! [`TlsStream::is_handshaking`]: stream::TlsStream::is_handshaking
//! [`TlsStream::peer_identity`]: stream::TlsStream::peer_identity
//! [`TlsStream::client`]: stream::TlsStream::client
//! [`PeerIdentity`]: identity::PeerIdentity

pub mod config;
pub mod identity;
pub mod stream;

pub use config::{
    CertifiedKeyPem, ClientCertAuth, TlsConfigError, Verification, client_config, server_config,
    server_config_sni,
};
pub use identity::PeerIdentity;
pub use stream::{TlsError, TlsStream};

/// The rustls crate this module is built on, for the types its API shows (configurations,
/// connections, errors, versions).
pub use rustls;

#[cfg(test)]
mod test_certs;
