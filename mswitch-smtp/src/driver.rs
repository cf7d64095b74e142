//! The tokio drivers (feature `tokio`): one short loop per connection that moves bytes between
//! a TCP stream and a session, and runs the TLS handshake through [`TlsStream`] when the
//! session asks for it.
//!
//! - Server: [`listen`] / [`serve`] drive a [`ServerSession`] and take every policy decision to
//!   a [`Handler`].
//! - Client: [`deliver`] drives a [`ClientSession`] over one connection and returns each
//!   message's per-recipient results.
//!
//! The loop: write what the session produced; answer its events; read from the socket until
//! the session's deadline; feed what was read (decrypted under TLS).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use mswitch_core::envelope::ReversePath;
use mswitch_core::status::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::{ClientConfig, ClientSession, OutgoingMessage, RecipientResult};
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

/// What the client driver needs besides the session configuration.
#[derive(Clone, Debug)]
pub struct ClientDriverConfig {
    /// The session configuration (TLS policy, timeouts, AUTH credentials).
    pub session: ClientConfig,
    /// The TLS configuration for STARTTLS (verification policy, client certificate).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The name the peer's certificate must carry.
    pub server_name: String,
}

/// The results of one message: its index in the list given to [`deliver`], and one result
/// per recipient.
pub type Delivery = (usize, Vec<RecipientResult>);

/// Delivers `messages` over one connection to `peer`, then QUIT. Every message gets its
/// results, whatever happens to the connection (a failure to connect is the only error).
pub async fn deliver(
    peer: std::net::SocketAddr,
    config: ClientDriverConfig,
    messages: Vec<OutgoingMessage>,
) -> io::Result<Vec<Delivery>> {
    let mut stream = TcpStream::connect(peer).await?;
    let now = Instant::now();
    let mut session = ClientSession::new(config.session.clone(), now);
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| io::Error::other("no system randomness"))?;
    session.set_entropy(seed);
    for m in messages {
        session
            .send(m, now)
            .map_err(|e| io::Error::other(format!("driver bug: {e}")))?;
    }
    session.close(now);
    let mut tls: Option<TlsStream> = None;
    let mut handshaking = false;
    let mut results = Vec::new();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        while let Some(out) = session.poll_output() {
            write(&mut stream, tls.as_mut(), &out).await?;
            session.handle_written(Instant::now());
        }
        let mut any = false;
        while let Some(event) = session.poll_event() {
            any = true;
            match event {
                crate::client::Event::StartTls => {
                    let started = config
                        .tls
                        .clone()
                        .ok_or_else(|| "no TLS configuration".to_owned())
                        .and_then(|cfg| {
                            TlsStream::client(cfg, &config.server_name).map_err(|e| e.to_string())
                        });
                    match started {
                        Ok(mut t) => {
                            // The ClientHello.
                            stream.write_all(&t.take_ciphertext()).await?;
                            tls = Some(t);
                            handshaking = true;
                        }
                        Err(why) => session.tls_failed(&why, Instant::now()),
                    }
                }
                crate::client::Event::Delivered {
                    message,
                    results: r,
                } => {
                    results.push((message, r));
                }
                crate::client::Event::Closed { .. } => {
                    while let Some(out) = session.poll_output() {
                        let _ = write(&mut stream, tls.as_mut(), &out).await;
                    }
                    let _ = stream.shutdown().await;
                    return Ok(results);
                }
                _ => {}
            }
        }
        if any {
            continue;
        }
        let read = match session.poll_timeout() {
            Some(deadline) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                    Ok(r) => r,
                    Err(_) => {
                        session.handle_timeout(Instant::now());
                        continue;
                    }
                }
            }
            None => stream.read(&mut buf).await,
        };
        let now = Instant::now();
        let n = match read {
            Ok(0) | Err(_) => {
                session.handle_eof(now);
                continue;
            }
            Ok(n) => n,
        };
        match tls.as_mut() {
            None => session.handle_input(&buf[..n], now),
            Some(t) => match t.decrypt(&buf[..n]) {
                Ok(plain) => {
                    let handshake = t.take_ciphertext();
                    if !handshake.is_empty() {
                        stream.write_all(&handshake).await?;
                    }
                    if handshaking && !t.is_handshaking() {
                        handshaking = false;
                        session.tls_established(now);
                    }
                    if !plain.is_empty() {
                        session.handle_input(&plain, now);
                    }
                }
                Err(e) => {
                    // Send our alert, drop the broken stream, then tell the session.
                    let _ = stream.write_all(&t.take_ciphertext()).await;
                    tls = None;
                    if std::mem::take(&mut handshaking) {
                        session.tls_failed(&e.to_string(), now);
                    } else {
                        session.handle_eof(now);
                    }
                }
            },
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
