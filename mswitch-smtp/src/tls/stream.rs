//! [`TlsStream`]: one TLS connection as a sans-IO adapter between an SMTP session and the
//! network. rustls' connections are themselves sans-IO; this wraps the calls a driver makes in
//! four: plaintext in ([`TlsStream::encrypt`]), records out ([`TlsStream::take_ciphertext`]),
//! records in and plaintext out ([`TlsStream::decrypt`]), and the state of the handshake.
//!
//! # Order of calls
//! 1. [`TlsStream::server`] when the server session says `Event::StartTls` (after its 220 was
//!    written in plaintext), or [`TlsStream::client`] when the client session says it.
//! 2. After every call, [`TlsStream::take_ciphertext`] and write what it gives: the handshake
//!    messages, the encrypted data, and after a failure the alert that tells the peer why.
//! 3. Every byte read from the network goes to [`TlsStream::decrypt`]; the plaintext it gives
//!    goes to the session. When [`TlsStream::is_handshaking`] turns false, tell the session
//!    (`tls_established`) before handing it that plaintext.
//! 4. Every byte the session gives goes to [`TlsStream::encrypt`].
//! 5. To end the connection cleanly, [`TlsStream::close`], then write
//!    [`TlsStream::take_ciphertext`].
//!
//! An error from [`TlsStream::decrypt`] is final: the connection cannot carry data any more.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{
    AlertDescription, ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection,
};

use crate::tls::identity::PeerIdentity;

/// Why a TLS connection failed. Every variant but [`TlsError::InvalidServerName`] ends the
/// connection: take the alert with [`TlsStream::take_ciphertext`], send it, close.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer's certificate was refused: an unknown issuer, expired, not valid for the name,
    /// revoked, or none given where one was required. The peer's fault, or a configuration
    /// mismatch (the wrong CA file here).
    #[error("peer certificate refused: {0}")]
    Certificate(#[source] rustls::Error),
    /// The peer ended the connection with a fatal alert: it refused something of ours (our
    /// certificate, our parameters) or failed on its side.
    #[error("the peer sent the alert {0:?}")]
    AlertReceived(AlertDescription),
    /// Nothing in common with the peer: protocol version, cipher suite, key exchange group,
    /// signature scheme. The peer is incompatible.
    #[error("the peer is incompatible: {0}")]
    Incompatible(#[source] rustls::Error),
    /// The peer broke the TLS protocol: a malformed or unexpected message, a record that does
    /// not decrypt (data injected or changed on the path, or plaintext sent where records were
    /// due). The peer's fault, or an attacker's.
    #[error("TLS protocol violation: {0}")]
    Protocol(#[source] rustls::Error),
    /// A local failure: no random numbers, no clock, or another error of this side.
    #[error("local TLS failure: {0}")]
    Local(#[source] rustls::Error),
    /// The name given to [`TlsStream::client`] is neither a DNS name nor an IP address (a
    /// driver or configuration fault).
    #[error("{name:?} is not a valid server name for TLS")]
    InvalidServerName {
        /// The name.
        name: String,
    },
    /// Reading rustls' buffers failed (a local fault: this adapter drains them as it goes).
    #[error("TLS buffer: {0}")]
    Io(#[from] io::Error),
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        use rustls::Error as E;
        match e {
            E::InvalidCertificate(_)
            | E::NoCertificatesPresented
            | E::UnsupportedNameType
            | E::InvalidCertRevocationList(_) => TlsError::Certificate(e),
            E::AlertReceived(alert) => TlsError::AlertReceived(alert),
            E::PeerIncompatible(_) | E::NoApplicationProtocol => TlsError::Incompatible(e),
            E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::InvalidMessage(_)
            | E::InvalidEncryptedClientHello(_)
            | E::DecryptError
            | E::PeerMisbehaved(_)
            | E::PeerSentOversizedRecord => TlsError::Protocol(e),
            _ => TlsError::Local(e),
        }
    }
}

/// One TLS connection, client or server side, in memory. See the [module documentation](self).
#[derive(Debug)]
pub struct TlsStream {
    conn: Connection,
    /// Records produced and not yet taken.
    outgoing: Vec<u8>,
    /// The peer sent close_notify.
    peer_closed: bool,
    /// We sent close_notify, or the connection failed: nothing more may be encrypted.
    ended: bool,
}

impl TlsStream {
    /// The server side of a connection (after the server session's `Event::StartTls`).
    pub fn server(config: Arc<ServerConfig>) -> Result<Self, TlsError> {
        let conn = ServerConnection::new(config)?;
        Ok(Self::wrap(conn.into()))
    }

    /// The client side of a connection to `server_name` (a DNS name, sent as SNI and checked
    /// against the certificate as the configuration says, or an IP address). Its first
    /// [`TlsStream::take_ciphertext`] is the ClientHello.
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            TlsError::InvalidServerName {
                name: server_name.to_owned(),
            }
        })?;
        let conn = ClientConnection::new(config, name)?;
        Ok(Self::wrap(conn.into()))
    }

    fn wrap(conn: Connection) -> Self {
        TlsStream {
            conn,
            outgoing: Vec::new(),
            peer_closed: false,
            ended: false,
        }
    }

    /// Whether the handshake is still running (no application data can be read before it
    /// ends).
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether the peer ended the connection cleanly (close_notify): nothing more will come.
    pub fn is_peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Queues plaintext from the session to be sent encrypted; take the records with
    /// [`TlsStream::take_ciphertext`]. Before the handshake ends, plaintext is held (up to
    /// rustls' buffer limit, 64 KiB; past it, `WouldBlock`): the SMTP sessions send nothing
    /// then. `BrokenPipe` after [`TlsStream::close`] or a failed [`TlsStream::decrypt`].
    pub fn encrypt(&mut self, plaintext: &[u8]) -> io::Result<()> {
        if self.ended {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the TLS connection was closed or failed",
            ));
        }
        let mut rest = plaintext;
        while !rest.is_empty() {
            let n = self.conn.writer().write(rest)?;
            if n == 0 {
                if self.conn.is_handshaking() {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "TLS handshake not finished and its plaintext buffer is full",
                    ));
                }
                // rustls' record buffer is full: move its records out and go on.
                if self.drain() == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the TLS connection takes no more data",
                    ));
                }
            }
            rest = &rest[n..];
        }
        Ok(())
    }

    /// The records to send to the peer (possibly none).
    pub fn take_ciphertext(&mut self) -> Vec<u8> {
        self.drain();
        std::mem::take(&mut self.outgoing)
    }

    /// Moves rustls' pending records to `outgoing`; returns how many octets moved.
    fn drain(&mut self) -> usize {
        let mut moved = 0;
        while self.conn.wants_write() {
            // Writing to a Vec cannot fail.
            match self.conn.write_tls(&mut self.outgoing) {
                Ok(0) | Err(_) => break,
                Ok(n) => moved += n,
            }
        }
        moved
    }

    /// Takes records received from the peer, and gives the plaintext they carry (possibly
    /// none: handshake messages, a partial record). Bytes after the peer's close_notify are
    /// ignored. After an error the connection is dead: send [`TlsStream::take_ciphertext`]
    /// (the alert) and close; the plaintext of this call is lost with it.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, TlsError> {
        let result = self.decrypt_inner(ciphertext);
        if result.is_err() {
            self.ended = true;
        }
        result
    }

    fn decrypt_inner(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, TlsError> {
        let mut input = ciphertext;
        let mut plaintext = Vec::new();
        while !input.is_empty() && !self.peer_closed {
            let n = self.conn.read_tls(&mut input)?;
            let state = self.conn.process_new_packets()?;
            let len = state.plaintext_bytes_to_read();
            if len > 0 {
                let start = plaintext.len();
                plaintext.resize(start + len, 0);
                self.conn.reader().read_exact(&mut plaintext[start..])?;
            }
            if state.peer_has_closed() {
                self.peer_closed = true;
            }
            if n == 0 {
                break;
            }
        }
        Ok(plaintext)
    }

    /// What the peer's verified certificate says about it, once the handshake has ended. For
    /// a server, `None` unless the client presented a certificate, which the configuration
    /// ([`ClientCertAuth::Optional`]) verified against its CA: the identity for SASL EXTERNAL
    /// is [`PeerIdentity::name`]. For a client, the server's certificate, verified as the
    /// configuration said (with [`Verification::NoVerification`], not at all: log it, trust it
    /// for nothing).
    ///
    /// [`ClientCertAuth::Optional`]: crate::tls::ClientCertAuth::Optional
    /// [`Verification::NoVerification`]: crate::tls::Verification::NoVerification
    pub fn peer_identity(&self) -> Option<PeerIdentity> {
        if self.conn.is_handshaking() {
            return None;
        }
        let end_entity = self.conn.peer_certificates()?.first()?;
        Some(PeerIdentity::from_certificate(end_entity))
    }

    /// Sends close_notify (take it with [`TlsStream::take_ciphertext`]); nothing can be
    /// encrypted after it.
    pub fn close(&mut self) {
        if !self.ended {
            self.ended = true;
            self.conn.send_close_notify();
        }
    }

    /// The TLS version negotiated, once known (for a `Received:` header, RFC 8314 §4.3 style).
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The cipher suite negotiated, once known.
    pub fn cipher_suite(&self) -> Option<rustls::CipherSuite> {
        self.conn.negotiated_cipher_suite().map(|s| s.suite())
    }

    /// The rustls connection, for anything else (ALPN, exporters, SNI received).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests;
