//! The tokio driver for P1 associations: one short loop per side (read, feed, drain, write).
//!
//! [`P1Client`] is the initiator the outbound channel uses; [`serve_p1`] runs a responder on an
//! accepted connection and hands binds and received MTS-APDUs to a [`P1Handler`].

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::p1::{
    Association, AssociationConfig, AssociationError, BindCredentials, BindError, P1Event,
};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Why a P1 exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P1DriverError {
    /// Connecting, reading or writing failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer did not answer in time.
    #[error("timed out waiting for the peer")]
    Timeout,
    /// The peer broke the protocol, or a limit was hit.
    #[error("{0}")]
    Protocol(#[from] AssociationError),
    /// The peer refused the bind.
    #[error("bind refused: {reason}")]
    BindRefused {
        /// What the peer said.
        reason: String,
        /// Whether a later attempt may work.
        transient: bool,
    },
    /// The association ended before the operation completed.
    #[error("association ended: {0}")]
    Ended(String),
}

impl P1DriverError {
    /// Whether the failure is permanent (a later attempt with the same settings will fail the
    /// same way): a permanent bind refusal.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            P1DriverError::BindRefused {
                transient: false,
                ..
            }
        )
    }
}

/// A stream with the association it carries.
#[derive(Debug)]
struct Conn<S> {
    stream: S,
    assoc: Association,
    buf: Vec<u8>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn flush(&mut self) -> Result<(), std::io::Error> {
        while let Some(bytes) = self.assoc.poll_transmit() {
            self.stream.write_all(&bytes).await?;
        }
        self.stream.flush().await
    }

    /// The next event, reading as needed.
    async fn next_event(&mut self) -> Result<P1Event, P1DriverError> {
        loop {
            if let Some(ev) = self.assoc.poll_event() {
                self.flush().await?;
                return Ok(ev);
            }
            self.flush().await?;
            let n = match tokio::time::timeout(self.timeout, self.stream.read(&mut self.buf)).await
            {
                Ok(r) => r?,
                Err(_) => return Err(P1DriverError::Timeout),
            };
            if n == 0 {
                self.assoc.connection_lost();
                continue;
            }
            let chunk = self.buf[..n].to_vec();
            if let Err(e) = self.assoc.handle_input(&chunk) {
                // The engine has queued an abort; send it before giving up.
                let _ = self.flush().await;
                return Err(e.into());
            }
        }
    }
}

/// An initiator association over TCP: bind, transfers, release.
#[derive(Debug)]
pub struct P1Client {
    conn: Conn<TcpStream>,
    peer_credentials: BindCredentials,
}

impl P1Client {
    /// Connects to `addr` and binds. `timeout` bounds the connect and each wait for the peer.
    pub async fn connect(
        addr: SocketAddr,
        config: AssociationConfig,
        credentials: BindCredentials,
        timeout: Duration,
    ) -> Result<P1Client, P1DriverError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(s) => s?,
            Err(_) => return Err(P1DriverError::Timeout),
        };
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            stream,
            assoc: Association::initiator(config, credentials)?,
            buf: vec![0; READ_CHUNK],
            timeout,
        };
        loop {
            match conn.next_event().await? {
                P1Event::Bound { credentials } => {
                    return Ok(P1Client {
                        conn,
                        peer_credentials: credentials,
                    });
                }
                P1Event::BindRefused { reason, transient } => {
                    return Err(P1DriverError::BindRefused { reason, transient });
                }
                P1Event::Aborted { reason } => return Err(P1DriverError::Ended(reason)),
                P1Event::Released => return Err(P1DriverError::Ended("released".into())),
                _ => {}
            }
        }
    }

    /// What the responder presented in its bind result.
    pub fn peer_credentials(&self) -> &BindCredentials {
        &self.peer_credentials
    }

    /// Whether the association can take another transfer.
    pub fn is_usable(&self) -> bool {
        self.conn.assoc.can_transfer()
    }

    /// Transfers one MTS-APDU and waits until the responder acknowledges it (it has taken
    /// responsibility).
    pub async fn transfer(&mut self, apdu: &[u8]) -> Result<(), P1DriverError> {
        self.conn.assoc.transfer(apdu)?;
        loop {
            match self.conn.next_event().await? {
                P1Event::TransferConfirmed => return Ok(()),
                P1Event::Aborted { reason } => return Err(P1DriverError::Ended(reason)),
                P1Event::Released => return Err(P1DriverError::Ended("released".into())),
                _ => {}
            }
        }
    }

    /// Releases the association in order.
    pub async fn release(mut self) -> Result<(), P1DriverError> {
        self.conn.assoc.release()?;
        loop {
            match self.conn.next_event().await {
                Ok(P1Event::Released) | Ok(P1Event::Aborted { .. }) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = self.conn.stream.shutdown().await;
        Ok(())
    }
}

/// What a responder does with binds and transfers.
#[async_trait]
pub trait P1Handler: Send + Sync {
    /// Decides on a bind: the credentials to answer with, or the bind error.
    async fn bind(
        &self,
        peer: SocketAddr,
        credentials: &BindCredentials,
    ) -> Result<BindCredentials, BindError>;

    /// Takes one MTS-APDU. Return `Ok` only once it is durable: the activity is acknowledged
    /// then. An `Err` aborts the association, leaving the sender responsible.
    async fn received(
        &self,
        peer: SocketAddr,
        bound_as: &BindCredentials,
        apdu: Vec<u8>,
    ) -> Result<(), String>;
}

/// Runs a responder on an accepted connection until the association ends.
pub async fn serve_p1<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    config: AssociationConfig,
    idle_timeout: Duration,
    handler: &dyn P1Handler,
) -> Result<(), P1DriverError> {
    let mut conn = Conn {
        stream,
        assoc: Association::responder(config)?,
        buf: vec![0; READ_CHUNK],
        timeout: idle_timeout,
    };
    serve_events(&mut conn, peer, handler, &[]).await
}

/// [`serve_p1`] for a connection whose first bytes were already read (the listener looks at
/// the connect request to choose the responder).
pub async fn serve_p1_with_prefix<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: SocketAddr,
    config: AssociationConfig,
    idle_timeout: Duration,
    handler: &dyn P1Handler,
    prefix: &[u8],
) -> Result<(), P1DriverError> {
    let mut conn = Conn {
        stream,
        assoc: Association::responder(config)?,
        buf: vec![0; READ_CHUNK],
        timeout: idle_timeout,
    };
    serve_events(&mut conn, peer, handler, prefix).await
}

async fn serve_events<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    peer: SocketAddr,
    handler: &dyn P1Handler,
    prefix: &[u8],
) -> Result<(), P1DriverError> {
    if !prefix.is_empty() {
        conn.assoc.handle_input(prefix)?;
    }
    let mut bound_as = BindCredentials::default();
    loop {
        match conn.next_event().await? {
            P1Event::BindRequest { credentials, .. } => {
                match handler.bind(peer, &credentials).await {
                    Ok(ours) => {
                        conn.assoc.accept_bind(ours)?;
                        bound_as = credentials;
                        tracing::debug!(peer = %peer, mta = ?bound_as.mta_name, "P1 bind accepted");
                    }
                    Err(e) => {
                        tracing::warn!(peer = %peer, mta = ?credentials.mta_name, error = ?e,
                            "P1 bind refused");
                        conn.assoc.refuse_bind(e)?;
                        conn.flush().await?;
                        return Ok(());
                    }
                }
            }
            P1Event::Received { apdu } => match handler.received(peer, &bound_as, apdu).await {
                Ok(()) => conn.assoc.confirm_received()?,
                Err(reason) => {
                    tracing::warn!(peer = %peer, reason = %reason,
                        "cannot take the transfer: aborting the association");
                    conn.assoc.abort();
                    conn.flush().await?;
                    return Ok(());
                }
            },
            P1Event::TransferDiscarded => {
                tracing::info!(peer = %peer, "the peer discarded a transfer in progress");
            }
            P1Event::Released => {
                conn.flush().await?;
                let _ = conn.stream.shutdown().await;
                return Ok(());
            }
            P1Event::Aborted { reason } => {
                conn.flush().await?;
                return Err(P1DriverError::Ended(reason));
            }
            _ => {}
        }
    }
}
