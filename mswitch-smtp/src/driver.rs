//! The tokio driver for the server session (feature `tokio`): one short loop per connection
//! that moves bytes between a TCP stream and [`ServerSession`], runs the TLS handshake through
//! [`TlsStream`] when the session asks for it, and takes every policy decision to a
//! [`Handler`].
//!
//! The loop: write what the session produced; answer its events (awaiting the handler); read
//! from the socket until the session's deadline; feed what was read (decrypted under TLS).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use mswitch_core::envelope::ReversePath;
use mswitch_core::status::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::proto::command::{ForwardPath, MailParams, RcptParams};
use crate::server::{AcceptedRecipient, Event, Mode, ServerConfig, ServerSession};
use crate::tls::TlsStream;

/// Read buffer size.
const READ_BUFFER: usize = 16 * 1024;

/// Where the server's decisions come from (normally the submission pipeline).
pub trait Handler: Send + Sync + 'static {
    /// Accept (2xx) or refuse this sender.
    fn mail(&self, from: &ReversePath, params: &MailParams) -> impl Future<Output = Status> + Send;

    /// Accept (2xx) or refuse this recipient.
    fn rcpt(&self, to: &ForwardPath, params: &RcptParams) -> impl Future<Output = Status> + Send;

    /// Queue this message durably, then say so (2xx). For LMTP, one status per recipient.
    fn message(&self, message: Message) -> impl Future<Output = Vec<Status>> + Send;
}

/// A complete message handed to [`Handler::message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: ReversePath,
    /// MAIL parameters.
    pub params: MailParams,
    /// Accepted recipients.
    pub recipients: Vec<AcceptedRecipient>,
    /// The content (dot-unstuffed).
    pub content: Vec<u8>,
    /// The identity the client authenticated as.
    pub authenticated: Option<String>,
    /// Whether the session was under TLS.
    pub tls: bool,
}

/// What the driver needs besides the session configuration.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// The session configuration (set `starttls` only together with `tls`).
    pub session: ServerConfig,
    /// The TLS configuration for STARTTLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Accepts connections until the listener fails, serving each in its own task.
pub async fn listen<H: Handler>(
    listener: TcpListener,
    config: DriverConfig,
    handler: Arc<H>,
) -> io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let (config, handler) = (config.clone(), handler.clone());
        tokio::spawn(async move {
            if let Err(e) = serve(stream, config, handler).await {
                tracing::info!(%peer, error = %e, "SMTP session ended with an error");
            }
        });
    }
}

/// Serves one connection to its end.
pub async fn serve<H: Handler>(
    mut stream: TcpStream,
    config: DriverConfig,
    handler: Arc<H>,
) -> io::Result<()> {
    let mut session_config = config.session.clone();
    session_config.starttls &= config.tls.is_some();
    let lmtp = session_config.mode == Mode::Lmtp;
    let mut session = ServerSession::new(session_config, Instant::now());
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| io::Error::other("no system randomness"))?;
    session.set_entropy(seed);
    let mut tls: Option<TlsStream> = None;
    let mut handshaking = false;
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        while let Some(out) = session.poll_output() {
            write(&mut stream, tls.as_mut(), &out).await?;
        }
        let mut answered = false;
        while let Some(event) = session.poll_event() {
            answered = true;
            let now = Instant::now();
            match event {
                Event::Mail { from, params } => {
                    let st = handler.mail(&from, &params).await;
                    respond(session.respond(st, now))?;
                }
                Event::Rcpt { to, params } => {
                    let st = handler.rcpt(&to, &params).await;
                    respond(session.respond(st, now))?;
                }
                Event::Message {
                    from,
                    params,
                    recipients,
                    content,
                } => {
                    let statuses = handler
                        .message(Message {
                            from,
                            params,
                            recipients,
                            content,
                            authenticated: session.authenticated().map(str::to_owned),
                            tls: session.is_tls(),
                        })
                        .await;
                    let result = if lmtp {
                        session.respond_lmtp(&statuses, now)
                    } else {
                        let st = statuses.into_iter().next().unwrap_or_else(|| {
                            Status::new(451, (4, 3, 0), "Local error in processing")
                        });
                        session.respond(st, now)
                    };
                    respond(result)?;
                }
                Event::StartTls => {
                    // The 220 went out in clear above; from now on every byte is TLS.
                    let Some(cfg) = config.tls.clone() else {
                        return Err(io::Error::other("STARTTLS without a TLS configuration"));
                    };
                    tls = Some(TlsStream::server(cfg).map_err(io::Error::other)?);
                    handshaking = true;
                }
                Event::Close => {
                    while let Some(out) = session.poll_output() {
                        write(&mut stream, tls.as_mut(), &out).await?;
                    }
                    if let Some(t) = tls.as_mut() {
                        t.close();
                        let _ = stream.write_all(&t.take_ciphertext()).await;
                    }
                    let _ = stream.shutdown().await;
                    return Ok(());
                }
                _ => {}
            }
        }
        if answered {
            continue;
        }
        let read = match session.poll_timeout() {
            Some(deadline) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        session.handle_timeout(Instant::now());
                        continue;
                    }
                }
            }
            None => stream.read(&mut buf).await?,
        };
        if read == 0 {
            return Ok(());
        }
        let now = Instant::now();
        match tls.as_mut() {
            None => session.handle_input(&buf[..read], now),
            Some(t) => {
                let plain = t.decrypt(&buf[..read]).map_err(io::Error::other)?;
                let handshake = t.take_ciphertext();
                if !handshake.is_empty() {
                    stream.write_all(&handshake).await?;
                }
                if handshaking && !t.is_handshaking() {
                    handshaking = false;
                    if let Some(identity) =
                        t.peer_identity().and_then(|p| p.name().map(str::to_owned))
                    {
                        session.set_tls_client_identity(identity);
                    }
                    session.tls_established(now);
                }
                if !plain.is_empty() {
                    session.handle_input(&plain, now);
                }
            }
        }
    }
}

fn respond(result: Result<(), crate::server::UsageError>) -> io::Result<()> {
    result.map_err(|e| io::Error::other(format!("driver bug: {e}")))
}

async fn write(
    stream: &mut TcpStream,
    tls: Option<&mut TlsStream>,
    bytes: &[u8],
) -> io::Result<()> {
    match tls {
        None => stream.write_all(bytes).await,
        Some(t) => {
            t.encrypt(bytes)?;
            stream.write_all(&t.take_ciphertext()).await
        }
    }
}
