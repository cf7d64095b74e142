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
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use mswitch_core::envelope::ReversePath;
use mswitch_core::status::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::{ClientConfig, ClientSession, OutgoingMessage, RecipientResult};
use crate::proto::command::{ForwardPath, MailParams, RcptParams};
use crate::sasl::ServerMechanism;
use crate::server::auth_limit::Throttled;
use crate::server::{AcceptedRecipient, Event, Mode, ServerConfig, ServerSession, Timeout};
use crate::tls::TlsStream;

/// Read buffer size.
const READ_BUFFER: usize = 16 * 1024;

/// Where the server's decisions come from, for servers whose decisions do not depend on the
/// connection (tests, simple tools). A switch uses [`Service`] and [`Connection`], which see
/// who is connected; every `Handler` is also a `Service` through [`listen`] and [`serve`].
pub trait Handler: Send + Sync + 'static {
    /// Accept (2xx) or refuse this sender.
    fn mail(&self, from: &ReversePath, params: &MailParams) -> impl Future<Output = Status> + Send;

    /// Accept (2xx) or refuse this recipient.
    fn rcpt(&self, to: &ForwardPath, params: &RcptParams) -> impl Future<Output = Status> + Send;

    /// Queue this message durably, then say so (2xx). For LMTP, one status per recipient.
    fn message(&self, message: Message) -> impl Future<Output = Vec<Status>> + Send;
}

/// A server that decides per connection: [`Service::connect`] admits a client (or refuses it
/// with a status sent as the greeting, such as `421 4.7.0` past a connection limit) and gives
/// the [`Connection`] that answers that client's session.
pub trait Service: Send + Sync + 'static {
    /// The per-connection state.
    type Conn: Connection;

    /// A client connected from `peer` to `local`.
    fn connect(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> impl Future<Output = Result<Self::Conn, Status>> + Send;
}

/// One client's session, as seen by the server's decision maker.
pub trait Connection: Send + 'static {
    /// The client greeted with `name` (EHLO/LHLO if `extended`).
    fn hello(&mut self, name: &str, extended: bool) {
        let _ = (name, extended);
    }

    /// The client authenticated as `identity`.
    fn authenticated(&mut self, identity: &str) {
        let _ = identity;
    }

    /// TLS is now established.
    fn tls(&mut self) {}

    /// The client missed a deadline (`421 4.4.2` is on its way and the connection closes).
    fn timed_out(&mut self, timeout: Timeout) {
        let _ = timeout;
    }

    /// The client reached the error limit (`421 4.7.0` is on its way and the connection
    /// closes); `junk` of the `errors` were junk commands past their limit.
    fn too_many_errors(&mut self, errors: u32, junk: u32) {
        let _ = (errors, junk);
    }

    /// An AUTH attempt failed on its credentials (`throttled` is `None`, the client got 535),
    /// or was refused because of earlier failures (the client got 454). `user` is the name the
    /// client gave, if it got that far. For the log.
    fn auth_failed(
        &mut self,
        mechanism: ServerMechanism,
        user: Option<&str>,
        throttled: Option<Throttled>,
    ) {
        let _ = (mechanism, user, throttled);
    }

    /// Accept (2xx) or refuse this sender; a new transaction starts.
    fn mail(
        &mut self,
        from: &ReversePath,
        params: &MailParams,
    ) -> impl Future<Output = Status> + Send;

    /// Accept (2xx) or refuse this recipient of the current transaction.
    fn rcpt(
        &mut self,
        to: &ForwardPath,
        params: &RcptParams,
    ) -> impl Future<Output = Status> + Send;

    /// Queue this message durably, then say so (2xx). For LMTP, one status per recipient.
    fn message(&mut self, message: Message) -> impl Future<Output = Vec<Status>> + Send;

    /// The connection ended (for whatever reason).
    fn closed(&mut self) {}
}

/// Makes a [`Handler`] a [`Service`].
struct PerServer<H>(Arc<H>);

impl<H: Handler> Service for PerServer<H> {
    type Conn = PerServer<H>;

    async fn connect(&self, _: SocketAddr, _: SocketAddr) -> Result<Self::Conn, Status> {
        Ok(PerServer(self.0.clone()))
    }
}

impl<H: Handler> Connection for PerServer<H> {
    async fn mail(&mut self, from: &ReversePath, params: &MailParams) -> Status {
        self.0.mail(from, params).await
    }

    async fn rcpt(&mut self, to: &ForwardPath, params: &RcptParams) -> Status {
        self.0.rcpt(to, params).await
    }

    async fn message(&mut self, message: Message) -> Vec<Status> {
        self.0.message(message).await
    }
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
    listen_service(listener, config, Arc::new(PerServer(handler))).await
}

/// Serves one connection to its end.
pub async fn serve<H: Handler>(
    stream: TcpStream,
    config: DriverConfig,
    handler: Arc<H>,
) -> io::Result<()> {
    serve_service(stream, config, Arc::new(PerServer(handler))).await
}

/// Accepts connections until the listener fails, serving each in its own task through
/// `service`.
pub async fn listen_service<S: Service>(
    listener: TcpListener,
    config: DriverConfig,
    service: Arc<S>,
) -> io::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: wait a little rather than stop serving.
            Err(e) if is_transient_accept_error(&e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let (config, service) = (config.clone(), service.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_service(stream, config, service).await {
                // A client that drops the connection is ordinary (probes, impatient clients).
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                ) {
                    tracing::debug!(%peer, error = %e, "SMTP client went away");
                } else {
                    tracing::info!(%peer, error = %e, "SMTP session ended with an error");
                }
            }
        });
    }
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}

/// Serves one connection to its end through `service`. A client that `service` refuses gets
/// the refusal as its greeting, and the connection is closed.
pub async fn serve_service<S: Service>(
    mut stream: TcpStream,
    config: DriverConfig,
    service: Arc<S>,
) -> io::Result<()> {
    let peer = stream.peer_addr()?;
    let local = stream.local_addr()?;
    let mut conn = match service.connect(peer, local).await {
        Ok(conn) => conn,
        Err(refusal) => {
            let mut out = Vec::new();
            let code = if (400..600).contains(&refusal.code) {
                refusal.code
            } else {
                421
            };
            crate::proto::reply::write_reply(
                &mut out,
                code,
                Some(refusal.enhanced),
                &[&format!("{} {}", config.session.hostname, refusal.text)],
            );
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
            return Ok(());
        }
    };
    let result = drive(&mut stream, &config, &mut conn, peer).await;
    conn.closed();
    result
}

async fn drive<C: Connection>(
    stream: &mut TcpStream,
    config: &DriverConfig,
    conn: &mut C,
    peer: SocketAddr,
) -> io::Result<()> {
    let mut session_config = config.session.clone();
    session_config.starttls &= config.tls.is_some();
    let lmtp = session_config.mode == Mode::Lmtp;
    let mut session = ServerSession::new(session_config, Instant::now());
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| io::Error::other("no system randomness"))?;
    session.set_entropy(seed);
    session.set_client_address(peer.ip());
    let mut tls: Option<TlsStream> = None;
    let mut handshaking = false;
    let mut buf = vec![0u8; READ_BUFFER];
    // A client that does not read our replies (a "slow read" attack) may keep the connection
    // no longer than one that does not send.
    let write_limit = config.session.command_timeout;
    loop {
        while let Some(out) = session.poll_output() {
            write_within(stream, tls.as_mut(), &out, write_limit).await?;
        }
        let mut answered = false;
        while let Some(event) = session.poll_event() {
            answered = true;
            let now = Instant::now();
            match event {
                Event::Mail { from, params } => {
                    let st = conn.mail(&from, &params).await;
                    respond(session.respond(st, now))?;
                }
                Event::Rcpt { to, params } => {
                    let st = conn.rcpt(&to, &params).await;
                    respond(session.respond(st, now))?;
                }
                Event::Message {
                    from,
                    params,
                    recipients,
                    content,
                } => {
                    let statuses = conn
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
                Event::Hello { name, extended } => conn.hello(&name, extended),
                Event::Authenticated {
                    authcid, authzid, ..
                } => {
                    conn.authenticated(authzid.as_deref().unwrap_or(&authcid));
                }
                Event::TimedOut(timeout) => conn.timed_out(timeout),
                Event::TooManyErrors { errors, junk } => conn.too_many_errors(errors, junk),
                Event::AuthFailed {
                    mechanism,
                    authcid,
                    throttled,
                } => conn.auth_failed(mechanism, authcid.as_deref(), throttled),
                Event::Close => {
                    while let Some(out) = session.poll_output() {
                        write_within(stream, tls.as_mut(), &out, write_limit).await?;
                    }
                    if let Some(t) = tls.as_mut() {
                        t.close();
                        let _ = stream.write_all(&t.take_ciphertext()).await;
                    }
                    let _ = stream.shutdown().await;
                    return Ok(());
                }
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
                    conn.tls();
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
    let stream = TcpStream::connect(peer).await?;
    Ok(deliver_on(stream, config, messages).await)
}

/// Delivers `messages` over a connected `stream` (connect it yourself to bound the connect
/// time), then QUIT. Every message gets its results: if the connection fails part way, the
/// messages not yet accepted get temporary failures, and those the peer already accepted
/// keep their results.
pub async fn deliver_on(
    stream: TcpStream,
    config: ClientDriverConfig,
    messages: Vec<OutgoingMessage>,
) -> Vec<Delivery> {
    let mut connection = ClientConnection::new(stream, config);
    let results = connection.send(messages).await;
    connection.quit().await;
    results
}

/// A client connection that can carry several messages, one batch after another, before it
/// is closed: the unit a connection cache keeps. The session says RSET between transactions
/// as needed.
pub struct ClientConnection {
    stream: TcpStream,
    config: ClientDriverConfig,
    session: ClientSession,
    tls: Option<TlsStream>,
    handshaking: bool,
    /// The session is over (QUIT done, or the connection failed).
    closed: bool,
    /// Writing or reading failed: no more I/O; the session finishes on its own.
    broken: bool,
    outstanding: usize,
    results: Vec<Delivery>,
    buf: Vec<u8>,
}

impl std::fmt::Debug for ClientConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnection")
            .field("server_name", &self.config.server_name)
            .field("closed", &self.closed)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientConnection {
    /// A session over a connected stream. Nothing is read or written until [`send`].
    ///
    /// [`send`]: ClientConnection::send
    pub fn new(stream: TcpStream, config: ClientDriverConfig) -> Self {
        let now = Instant::now();
        let mut session = ClientSession::new(config.session.clone(), now);
        let mut seed = [0u8; 32];
        let mut closed = false;
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed).is_err() {
            // SASL nonces need it: without system randomness the session is not run at all.
            session.handle_eof(now);
            closed = true;
        }
        session.set_entropy(seed);
        ClientConnection {
            stream,
            config,
            session,
            tls: None,
            handshaking: false,
            closed,
            broken: false,
            outstanding: 0,
            results: Vec::new(),
            buf: vec![0u8; READ_BUFFER],
        }
    }

    /// Whether the connection can take more messages.
    pub fn is_open(&self) -> bool {
        !self.closed && !self.broken
    }

    /// Whether a connection kept idle can still be used: open, and nothing arrived from the
    /// peer meanwhile (an idle server says nothing until it gives up: `421` or a close).
    pub fn is_usable(&mut self) -> bool {
        if !self.is_open() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Whether the session runs under TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some() && !self.handshaking
    }

    /// Sends `messages` and waits until each has its results (or the connection fails, which
    /// gives temporary failures for what was not accepted). The message indices in the results
    /// count from the first message ever sent on this connection.
    pub async fn send(&mut self, messages: Vec<OutgoingMessage>) -> Vec<Delivery> {
        let now = Instant::now();
        for m in messages {
            match self.session.send(m, now) {
                Ok(_) => self.outstanding += 1,
                Err(e) => tracing::error!(error = %e, "message not accepted by the client session"),
            }
        }
        if self.outstanding > 0 {
            self.drive(true).await;
        }
        std::mem::take(&mut self.results)
    }

    /// Says QUIT and closes the connection.
    pub async fn quit(mut self) {
        self.session.close(Instant::now());
        self.drive(false).await;
    }

    /// Runs the session until every message sent has its results (`until_idle`) or until it
    /// is closed.
    async fn drive(&mut self, until_idle: bool) {
        loop {
            if !self.broken {
                while let Some(out) = self.session.poll_output() {
                    if let Err(e) = write(&mut self.stream, self.tls.as_mut(), &out).await {
                        self.fail(&e);
                        break;
                    }
                    self.session.handle_written(Instant::now());
                }
            } else {
                while self.session.poll_output().is_some() {}
            }
            let mut any = false;
            while let Some(event) = self.session.poll_event() {
                any = true;
                match event {
                    crate::client::Event::StartTls => self.start_tls().await,
                    crate::client::Event::Delivered { message, results } => {
                        self.outstanding = self.outstanding.saturating_sub(1);
                        self.results.push((message, results));
                    }
                    crate::client::Event::Ready => {
                        if until_idle && self.outstanding == 0 {
                            return;
                        }
                    }
                    crate::client::Event::Closed { .. } => {
                        if !self.broken {
                            while let Some(out) = self.session.poll_output() {
                                let _ = write(&mut self.stream, self.tls.as_mut(), &out).await;
                            }
                            let _ = self.stream.shutdown().await;
                        }
                        self.closed = true;
                        // Anything still outstanding has been reported by the session.
                        while let Some(event) = self.session.poll_event() {
                            if let crate::client::Event::Delivered { message, results } = event {
                                self.results.push((message, results));
                            }
                        }
                        self.outstanding = 0;
                        return;
                    }
                }
            }
            if any {
                continue;
            }
            if self.broken || self.closed {
                // The session was told of the failure and has nothing more to say.
                return;
            }
            self.read().await;
        }
    }

    fn fail(&mut self, e: &io::Error) {
        tracing::debug!(server = %self.config.server_name, error = %e,
            "connection failed during the SMTP session");
        self.broken = true;
        self.session.handle_eof(Instant::now());
    }

    async fn start_tls(&mut self) {
        let started = self
            .config
            .tls
            .clone()
            .ok_or_else(|| "no TLS configuration".to_owned())
            .and_then(|cfg| {
                TlsStream::client(cfg, &self.config.server_name).map_err(|e| e.to_string())
            });
        match started {
            Ok(mut t) => {
                // The ClientHello.
                if let Err(e) = self.stream.write_all(&t.take_ciphertext()).await {
                    self.fail(&e);
                    return;
                }
                self.tls = Some(t);
                self.handshaking = true;
            }
            Err(why) => self.session.tls_failed(&why, Instant::now()),
        }
    }

    async fn read(&mut self) {
        let read = match self.session.poll_timeout() {
            Some(deadline) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                match tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf)).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.session.handle_timeout(Instant::now());
                        return;
                    }
                }
            }
            None => self.stream.read(&mut self.buf).await,
        };
        let now = Instant::now();
        let n = match read {
            Ok(0) => {
                self.broken = true;
                self.session.handle_eof(now);
                return;
            }
            Err(e) => {
                self.fail(&e);
                return;
            }
            Ok(n) => n,
        };
        match self.tls.as_mut() {
            None => self.session.handle_input(&self.buf[..n], now),
            Some(t) => match t.decrypt(&self.buf[..n]) {
                Ok(plain) => {
                    let handshake = t.take_ciphertext();
                    if !handshake.is_empty()
                        && let Err(e) = self.stream.write_all(&handshake).await
                    {
                        self.fail(&e);
                        return;
                    }
                    if self.handshaking && !t.is_handshaking() {
                        self.handshaking = false;
                        self.session.tls_established(now);
                    }
                    if !plain.is_empty() {
                        self.session.handle_input(&plain, now);
                    }
                }
                Err(e) => {
                    // Send our alert, drop the broken stream, then tell the session.
                    let _ = self.stream.write_all(&t.take_ciphertext()).await;
                    self.tls = None;
                    if std::mem::take(&mut self.handshaking) {
                        self.session.tls_failed(&e.to_string(), now);
                    } else {
                        self.broken = true;
                        self.session.handle_eof(now);
                    }
                }
            },
        }
    }
}

fn respond(result: Result<(), crate::server::UsageError>) -> io::Result<()> {
    result.map_err(|e| io::Error::other(format!("driver bug: {e}")))
}

/// [`write`], failing with `TimedOut` when the peer has not taken the bytes within `limit`.
async fn write_within(
    stream: &mut TcpStream,
    tls: Option<&mut TlsStream>,
    bytes: &[u8],
    limit: std::time::Duration,
) -> io::Result<()> {
    match tokio::time::timeout(limit, write(stream, tls, bytes)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client did not read our replies for {} s",
                limit.as_secs()
            ),
        )),
    }
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
