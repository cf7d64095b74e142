//! Delivery settings for a peer: TLS, SASL credentials, a permanent connection. Not routing
//! decisions: the table keeps them per (channel, next hop) for the delivering channel to ask.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Whether and how to use STARTTLS with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    /// Never, even when offered.
    None,
    /// When offered, without verifying the certificate; plaintext when not offered.
    Opportunistic,
    /// STARTTLS with a certificate that verifies for the peer's name, or nothing: the message
    /// waits (4.7.x) rather than go in clear or to an impostor.
    Required,
}

/// Where the password of [`SaslCredentials`] comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SaslSecret {
    /// Given in the configuration.
    Password(String),
    /// Read by the daemon from this file (its first line), so the routing configuration need
    /// not hold secrets. This crate never reads it.
    File(PathBuf),
}

impl fmt::Debug for SaslSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslSecret::Password(_) => f.write_str("Password(<redacted>)"),
            SaslSecret::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// SMTP AUTH credentials to present to a peer (a smarthost, a provider's relay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslCredentials {
    /// The user name (SASL authentication identity).
    pub username: String,
    /// The password, or where to find it.
    pub secret: SaslSecret,
    /// The identity to act as, if not `username`.
    pub authzid: Option<String>,
    /// Authenticate without TLS too. Off by default: credentials are never sent in clear.
    pub allow_plaintext: bool,
}

/// What the delivering channel should do differently for one peer. Each field left at its
/// default means "the channel's own setting".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerSettings {
    /// The TLS policy for this peer; the channel's own when `None`.
    pub tls: Option<TlsPolicy>,
    /// Credentials for SMTP AUTH; none when `None`.
    pub auth: Option<SaslCredentials>,
    /// Keep the connection to this peer open between messages (the low-latency "permanent
    /// connection" of a switch to its hub or its store).
    pub permanent: bool,
}

impl PeerSettings {
    /// Whether nothing is set (the channel's defaults apply throughout).
    pub fn is_default(&self) -> bool {
        self == &PeerSettings::default()
    }
}

/// A named peer (`NextHop::Peer(name)`): where it is, and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPeer {
    /// Host name or IP address.
    pub host: String,
    /// Port; the channel's default when absent.
    pub port: Option<u16>,
    /// Its delivery settings.
    pub settings: PeerSettings,
}
