//! The management interface over TCP (`[management]`): the protocol of [`crate::management`]
//! behind implicit TLS and SASL, for operators who are not on the daemon's host, with two
//! roles (reader, operator). `docs/management.md` ("Over TCP") has the wire format.
//!
//! A connection goes through three stages:
//! 1. TLS, at once (no plaintext greeting, no STARTTLS): [`mswitch_smtp::tls::TlsStream`], the
//!    sans-IO adapter the SMTP driver uses, moved by the short loop of `Conn` here. A client
//!    certificate is asked for only when `client_ca` is configured, and then is optional.
//! 2. Authentication, by [`Gate`] (no I/O): every line must be an `auth` request until one
//!    exchange succeeds. The mechanisms are those of [`mswitch_smtp::sasl`]: SCRAM-SHA-256,
//!    PLAIN (against the `users` password file) and EXTERNAL (the client certificate's name,
//!    which must be listed in `roles`). Each refusal is answered after [`FAILURE_DELAY`];
//!    the [`MAX_AUTH_FAILURES`]-th closes the connection.
//! 3. Requests, answered by [`crate::management::handle`] with the role the user has in
//!    `roles` (reader when not listed). `reload` is offered to operators, as on the socket.
//!
//! [`Client`] is the blocking client side (`mswitchctl --connect`).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mswitch_smtp::sasl::{
    AuthFailure, ClientAuthError, ClientExchange, ClientMechanism, Credentials, PasswordFile,
    PasswordFileError, ServerExchange, ServerMechanism, Step, derive_nonce, encode,
};
use mswitch_smtp::tls::rustls::pki_types::ServerName;
use mswitch_smtp::tls::{ClientCertAuth, TlsConfigError, TlsStream, rustls, server_config};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::config::HostPort;
use crate::management::{
    ErrorBody, MAX_REQUEST, PROTOCOL_VERSION, ReloadRequest, Request, RequestLine, ResponseLine,
    Role,
};
use crate::switch::Management;

/// Refused lines before authentication (failed exchanges, requests, malformed lines) after
/// which the connection is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;

/// How long a refusal before authentication is held back, to slow down password guessing.
pub const FAILURE_DELAY: Duration = Duration::from_secs(1);

/// How long a client has, from the TCP connection, for the TLS handshake and authentication.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an authenticated connection may stay silent before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Connections served at once; one more is closed at once.
pub const MAX_CONNECTIONS: usize = 32;

/// Most steps of one exchange the client follows (SCRAM takes three).
pub const MAX_CLIENT_STEPS: usize = 8;

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 16 * 1024;

/// The mechanisms offered, in the order they are listed to clients. EXTERNAL only with
/// `client_ca`. LOGIN is not offered: it is PLAIN in two steps, made for SMTP clients.
pub const MECHANISMS: [ServerMechanism; 3] = [
    ServerMechanism::ScramSha256,
    ServerMechanism::Plain,
    ServerMechanism::External,
];

/// The error code of a refusal before authentication.
pub const UNAUTHENTICATED: &str = "unauthenticated";

/// `[management]`: the TCP listener. Absent: only the local socket.
///
/// ```toml
/// [management]
/// listen = "127.0.0.1:9925"
/// tls_cert = "mgmt.pem"
/// tls_key = "mgmt.key"
/// users = "mgmt-users"                           # mswitchd --hash-password USER lines
/// roles = { alice = "operator", bob = "reader" }  # not listed: reader
/// client_ca = "mgmt-ca.pem"                      # optional: client certificates (EXTERNAL)
/// ```
/// Paths are relative to the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementConfig {
    /// `IP:port` to listen on.
    pub listen: SocketAddr,
    /// The server's certificate chain (PEM). TLS is not optional on TCP.
    pub tls_cert: PathBuf,
    /// Its private key (PEM).
    pub tls_key: PathBuf,
    /// The password file of the users (`mswitch_smtp::sasl::PasswordFile`), for PLAIN and
    /// SCRAM-SHA-256.
    #[serde(default)]
    pub users: Option<PathBuf>,
    /// Each user's role; a user not listed is a reader. A client certificate's name must be
    /// listed here to log in with EXTERNAL.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// CA certificates (PEM) that client certificates must chain to; without it no client
    /// certificate is asked for and EXTERNAL is not offered.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl ManagementConfig {
    /// Checks the section and resolves its paths against `data_dir`. Errors are (key,
    /// message), for [`crate::config::ConfigError::Invalid`].
    pub fn resolve(&self, data_dir: &Path) -> Result<ManagementConfig, (String, String)> {
        if self.users.is_none() && self.client_ca.is_none() {
            return Err((
                "management".into(),
                "give users (a password file) or client_ca (client certificates): \
                 without either nobody can log in"
                    .into(),
            ));
        }
        for name in self.roles.keys() {
            if name.is_empty()
                || name.len() > mswitch_smtp::sasl::MAX_IDENTITY_LEN
                || name.contains(':')
                || name.chars().any(char::is_control)
            {
                return Err((
                    format!("management.roles.{name:?}"),
                    "a user name must have 1 to 255 octets, without ':' or control characters"
                        .into(),
                ));
            }
        }
        Ok(ManagementConfig {
            listen: self.listen,
            tls_cert: data_dir.join(&self.tls_cert),
            tls_key: data_dir.join(&self.tls_key),
            users: self.users.as_ref().map(|p| data_dir.join(p)),
            roles: self.roles.clone(),
            client_ca: self.client_ca.as_ref().map(|p| data_dir.join(p)),
        })
    }

    /// Reads the files the section names: certificate, key, CA and password file.
    pub fn load(&self) -> Result<Settings, SetupError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| SetupError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let (cert, key) = (read(&self.tls_cert)?, read(&self.tls_key)?);
        let client_auth = match &self.client_ca {
            Some(path) => ClientCertAuth::Optional(read(path)?),
            None => ClientCertAuth::None,
        };
        let tls = server_config(&cert, &key, client_auth).map_err(SetupError::Tls)?;
        let users = match &self.users {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SetupError::Read {
                    path: path.clone(),
                    source,
                })?;
                PasswordFile::parse(&text).map_err(|source| SetupError::Users {
                    path: path.clone(),
                    source,
                })?
            }
            None => PasswordFile::default(),
        };
        Ok(Settings {
            tls,
            access: Arc::new(Access {
                users: Arc::new(users),
                roles: self.roles.clone(),
                external: self.client_ca.is_some(),
            }),
        })
    }
}

/// Why the TCP listener cannot start (or its files cannot be read again at a reload). The
/// configuration's fault, or the address is taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A file named by `[management]` cannot be read.
    #[error("[management]: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The password file has a bad line.
    #[error("[management]: password file {path}: {source}")]
    Users {
        /// The file.
        path: PathBuf,
        /// The line and what is wrong with it.
        source: PasswordFileError,
    },
    /// The certificate, key or client CA cannot be used.
    #[error("[management]: TLS: {0}")]
    Tls(#[source] TlsConfigError),
    /// The address cannot be listened on.
    #[error("[management]: cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// What the files say: the TLS configuration and who may log in as what.
#[derive(Clone)]
pub struct Settings {
    tls: Arc<rustls::ServerConfig>,
    access: Arc<Access>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

/// Who may log in, and as what.
pub struct Access {
    users: Arc<dyn Credentials>,
    roles: BTreeMap<String, Role>,
    external: bool,
}

impl std::fmt::Debug for Access {
    /// The roles only: no credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("roles", &self.roles)
            .field("external", &self.external)
            .finish_non_exhaustive()
    }
}

impl Access {
    /// Users checked against `users`, roles from `roles`, EXTERNAL offered if `external`.
    pub fn new(users: Arc<dyn Credentials>, roles: BTreeMap<String, Role>, external: bool) -> Self {
        Access {
            users,
            roles,
            external,
        }
    }

    /// Whether `mechanism` is offered.
    pub fn offers(&self, mechanism: ServerMechanism) -> bool {
        MECHANISMS.contains(&mechanism) && (mechanism != ServerMechanism::External || self.external)
    }

    fn offered(&self) -> String {
        MECHANISMS
            .iter()
            .filter(|m| self.offers(**m))
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Reader => "reader",
        Role::Operator => "operator",
    }
}

fn answer_ok(result: serde_json::Value) -> ResponseLine {
    ResponseLine {
        ok: true,
        result: Some(result),
        error: None,
    }
}

fn answer_err(code: &str, message: impl Into<String>) -> ResponseLine {
    ResponseLine {
        ok: false,
        result: None,
        error: Some(ErrorBody {
            code: code.into(),
            message: message.into(),
        }),
    }
}

/// An `auth` line: `{"version":1,"op":"auth","mechanism":M,"data":BASE64}` to start (`data`
/// absent: no initial response), `{"version":1,"op":"auth","data":BASE64}` for each later
/// step (`"*"` cancels).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthLine {
    version: u32,
    #[allow(dead_code)]
    op: String,
    #[serde(default)]
    mechanism: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

/// The operation of any line, to tell `auth` from the rest.
#[derive(Debug, Deserialize)]
struct Peek {
    #[serde(default)]
    op: Option<String>,
}

/// What the driver does with a line.
#[derive(Debug)]
#[must_use]
pub enum Verdict {
    /// Send this answer (an exchange goes on, or a line refused after authentication).
    Answer(ResponseLine),
    /// Send this answer: the client is now `user` with `role`.
    Authenticated {
        /// `{"ok":true,"result":{"user":...,"role":...}}`.
        answer: ResponseLine,
        /// The user (for EXTERNAL, the certificate's name).
        user: String,
        /// Its role.
        role: Role,
        /// The mechanism it used.
        mechanism: ServerMechanism,
    },
    /// Send this refusal after [`FAILURE_DELAY`]; then close the connection if `close`.
    Refuse {
        /// The refusal (`unauthenticated`, `bad_request` or `unsupported_version`).
        answer: ResponseLine,
        /// Whether this was the last one allowed.
        close: bool,
        /// Whether it is this side's fault (worth an error log line, not a warning).
        local: bool,
    },
    /// An authenticated request: answer it with [`crate::management::handle`] and `role`.
    Request {
        /// The client's role.
        role: Role,
        /// The operation, as far as it could be read (for the log).
        op: Option<String>,
    },
}

/// Where a connection is.
enum GateState {
    /// No exchange yet, or the last one failed.
    Open,
    /// An exchange is running.
    Exchange(Box<ServerExchange>),
    /// Done: requests pass.
    Authenticated { user: String, role: Role },
}

/// Authentication of one connection, without I/O: each line goes to [`Gate::handle_line`],
/// which says what to answer; requests pass once an exchange has succeeded.
pub struct Gate {
    access: Arc<Access>,
    tls_identity: Option<String>,
    seed: [u8; 32],
    exchanges: u64,
    failures: u32,
    state: GateState,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("failures", &self.failures)
            .field("user", &self.user())
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate for a connection whose verified client certificate names `tls_identity` (for
    /// EXTERNAL); `seed`: 32 random bytes for the SCRAM nonces.
    pub fn new(access: Arc<Access>, tls_identity: Option<String>, seed: [u8; 32]) -> Self {
        Gate {
            access,
            tls_identity,
            seed,
            exchanges: 0,
            failures: 0,
            state: GateState::Open,
        }
    }

    /// The authenticated user and role, once there is one.
    pub fn user(&self) -> Option<(&str, Role)> {
        match &self.state {
            GateState::Authenticated { user, role } => Some((user, *role)),
            _ => None,
        }
    }

    /// Takes one line (without its line end).
    pub fn handle_line(&mut self, line: &str) -> Verdict {
        let op = serde_json::from_str::<Peek>(line).map(|p| p.op);
        if let GateState::Authenticated { user, role } = &self.state {
            return match op {
                Ok(Some(op)) if op == "auth" => Verdict::Answer(answer_err(
                    "bad_request",
                    format!("already authenticated as {user}"),
                )),
                op => Verdict::Request {
                    role: *role,
                    op: op.ok().flatten(),
                },
            };
        }
        match op {
            Err(e) => return self.refuse("bad_request", format!("not a request: {e}"), false),
            Ok(Some(op)) if op == "auth" => {}
            Ok(_) => {
                return self.refuse(
                    UNAUTHENTICATED,
                    format!(
                        "authenticate first: {{\"version\":1,\"op\":\"auth\",\"mechanism\":M,\
                         \"data\":BASE64}}, M one of {}",
                        self.access.offered()
                    ),
                    false,
                );
            }
        }
        let auth: AuthLine = match serde_json::from_str(line) {
            Ok(a) => a,
            Err(e) => {
                return self.refuse("bad_request", format!("not an auth request: {e}"), false);
            }
        };
        if auth.version != PROTOCOL_VERSION {
            return self.refuse(
                "unsupported_version",
                format!(
                    "this daemon speaks version {PROTOCOL_VERSION}, not {}",
                    auth.version
                ),
                false,
            );
        }
        let step = match (
            std::mem::replace(&mut self.state, GateState::Open),
            auth.mechanism,
        ) {
            (GateState::Exchange(_), Some(_)) => {
                return self.refuse(
                    UNAUTHENTICATED,
                    "an exchange was in progress: it is abandoned (answer a \"continue\" with \
                     \"data\" only, or cancel with \"data\":\"*\")",
                    false,
                );
            }
            (GateState::Exchange(mut ex), None) => {
                let step = ex.step(auth.data.as_deref().unwrap_or(""));
                self.state = GateState::Exchange(ex);
                step
            }
            (_, None) => {
                return self.refuse(
                    UNAUTHENTICATED,
                    format!(
                        "no exchange in progress: give a mechanism, one of {}",
                        self.access.offered()
                    ),
                    false,
                );
            }
            (_, Some(name)) => {
                let Some(mechanism) =
                    ServerMechanism::from_name(&name).filter(|m| self.access.offers(*m))
                else {
                    return self.refuse(
                        UNAUTHENTICATED,
                        format!(
                            "mechanism {name:?} is not offered here; offered: {}",
                            self.access.offered()
                        ),
                        false,
                    );
                };
                let nonce = derive_nonce(&self.seed, self.exchanges);
                self.exchanges += 1;
                let (ex, step) = ServerExchange::start(
                    mechanism,
                    auth.data.as_deref(),
                    self.access.users.clone(),
                    &nonce,
                    self.tls_identity.as_deref(),
                );
                self.state = GateState::Exchange(Box::new(ex));
                step
            }
        };
        let mechanism = match &self.state {
            GateState::Exchange(ex) => ex.mechanism(),
            _ => ServerMechanism::Plain,
        };
        match step {
            Step::Challenge(challenge) => {
                Verdict::Answer(answer_ok(serde_json::json!({ "continue": challenge })))
            }
            Step::Success {
                authcid, authzid, ..
            } => {
                self.state = GateState::Open;
                let user = authzid.unwrap_or(authcid);
                let role = match (self.access.roles.get(&user), mechanism) {
                    (Some(role), _) => *role,
                    (None, ServerMechanism::External) => {
                        return self.refuse(
                            UNAUTHENTICATED,
                            format!(
                                "the client certificate names {user:?}, who is not listed in \
                                 [management] roles"
                            ),
                            false,
                        );
                    }
                    (None, _) => Role::Reader,
                };
                self.state = GateState::Authenticated {
                    user: user.clone(),
                    role,
                };
                Verdict::Authenticated {
                    answer: answer_ok(serde_json::json!({ "user": user, "role": role })),
                    user,
                    role,
                    mechanism,
                }
            }
            Step::Failure(f) => {
                self.state = GateState::Open;
                let local = f.is_local();
                let message = match f {
                    AuthFailure::NoExternalIdentity => {
                        "no verified client certificate: EXTERNAL needs one".to_owned()
                    }
                    f => f.to_string(),
                };
                self.refuse(UNAUTHENTICATED, message, local)
            }
        }
    }

    fn refuse(&mut self, code: &str, message: impl Into<String>, local: bool) -> Verdict {
        self.state = GateState::Open;
        self.failures += 1;
        Verdict::Refuse {
            answer: answer_err(code, message),
            close: self.failures >= MAX_AUTH_FAILURES,
            local,
        }
    }
}

/// 32 bytes from the system's generator (through rustls' ring provider).
fn random_seed() -> io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut seed)
        .map_err(|_| io::Error::other("no system randomness"))?;
    Ok(seed)
}

/// The TCP listener, bound and with its files read, not yet serving.
#[derive(Debug)]
pub struct ManagementListener {
    listener: TcpListener,
    listen: SocketAddr,
    settings: Settings,
}

impl ManagementListener {
    /// Reads the files of `config` and binds its address.
    pub async fn bind(config: &ManagementConfig) -> Result<ManagementListener, SetupError> {
        let settings = config.load()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SetupError::Bind {
                    address: config.listen,
                    source,
                })?;
        Ok(ManagementListener {
            listener,
            listen: config.listen,
            settings,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections until the returned handle is dropped. `reload`: where `reload`
    /// requests go (as from the socket); `None` answers them with `failed`.
    pub fn spawn(
        self,
        management: Management,
        reload: Option<mpsc::Sender<ReloadRequest>>,
    ) -> RunningListener {
        let current = Arc::new(RwLock::new(self.settings));
        let task = tokio::spawn(serve(self.listener, current.clone(), management, reload));
        RunningListener {
            listen: self.listen,
            current,
            task,
        }
    }
}

/// A serving TCP listener. Dropping it stops the listener (sessions in progress end when
/// their client leaves or times out).
#[derive(Debug)]
pub struct RunningListener {
    listen: SocketAddr,
    current: Arc<RwLock<Settings>>,
    task: JoinHandle<()>,
}

impl RunningListener {
    /// Reads the files again for a new configuration (at SIGHUP or `reload`): certificate,
    /// password file, roles and CA apply to new connections. A changed address, or a removed
    /// section, needs a restart (logged); files that do not load leave the old settings.
    pub fn reload(&self, config: Option<&ManagementConfig>) {
        let Some(config) = config else {
            tracing::warn!(listen = %self.listen,
                "[management] removed: the TCP listener stays until a restart");
            return;
        };
        if config.listen != self.listen {
            tracing::warn!(listen = %self.listen, new = %config.listen,
                "[management] listen changed: it takes effect at a restart");
        }
        match config.load() {
            Ok(settings) => {
                if let Ok(mut c) = self.current.write() {
                    *c = settings;
                }
            }
            Err(e) => tracing::error!(error = %e,
                "[management] not reloaded; the old certificate, users and roles stay"),
        }
    }
}

impl Drop for RunningListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    listener: TcpListener,
    current: Arc<RwLock<Settings>>,
    management: Management,
    reload: Option<mpsc::Sender<ReloadRequest>>,
) {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(listen = %address, "management TCP listener ready (TLS)");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "management accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "management connection refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let settings = match current.read() {
            Ok(s) => s.clone(),
            Err(_) => continue,
        };
        let (m, r) = (management.clone(), reload.clone());
        tokio::spawn(async move {
            if let Err(e) = session(stream, peer, settings, &m, r.as_ref()).await {
                tracing::debug!(%peer, error = %e, "management connection ended");
            }
            drop(slot);
        });
    }
}

/// One line read, or why there is none.
enum Line {
    Text(String),
    TooLong,
    Eof,
}

/// A TCP connection under TLS: the read, decrypt, write loop around [`TlsStream`].
struct Conn {
    stream: TcpStream,
    tls: TlsStream,
    plain: Vec<u8>,
    buf: Box<[u8]>,
}

impl Conn {
    /// Reads once, decrypts, sends what TLS has to send; false at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.tls.is_peer_closed() {
            return Ok(false);
        }
        let n = self.stream.read(&mut self.buf).await?;
        if n == 0 {
            return Ok(false);
        }
        match self.tls.decrypt(&self.buf[..n]) {
            Ok(plain) => {
                self.plain.extend_from_slice(&plain);
                let out = self.tls.take_ciphertext();
                if !out.is_empty() {
                    self.stream.write_all(&out).await?;
                }
                Ok(true)
            }
            Err(e) => {
                // The alert, if TLS made one.
                let alert = self.tls.take_ciphertext();
                let _ = self.stream.write_all(&alert).await;
                Err(io::Error::other(e))
            }
        }
    }

    async fn handshake(&mut self) -> io::Result<()> {
        while self.tls.is_handshaking() {
            if !self.fill().await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed during the TLS handshake",
                ));
            }
        }
        Ok(())
    }

    async fn read_line(&mut self) -> io::Result<Line> {
        loop {
            if let Some(end) = self.plain.iter().position(|b| *b == b'\n') {
                if end > MAX_REQUEST {
                    return Ok(Line::TooLong);
                }
                let rest = self.plain.split_off(end + 1);
                let line = std::mem::replace(&mut self.plain, rest);
                let text = String::from_utf8_lossy(&line[..end]);
                return Ok(Line::Text(text.trim_end_matches('\r').to_owned()));
            }
            if self.plain.len() > MAX_REQUEST {
                return Ok(Line::TooLong);
            }
            if !self.fill().await? {
                return Ok(Line::Eof);
            }
        }
    }

    async fn write(&mut self, answer: &ResponseLine) -> io::Result<()> {
        let mut out = serde_json::to_vec(answer).map_err(io::Error::other)?;
        out.push(b'\n');
        self.tls.encrypt(&out)?;
        let cipher = self.tls.take_ciphertext();
        self.stream.write_all(&cipher).await
    }

    async fn close(&mut self) {
        self.tls.close();
        let out = self.tls.take_ciphertext();
        let _ = self.stream.write_all(&out).await;
        let _ = self.stream.shutdown().await;
    }
}

async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    settings: Settings,
    management: &Management,
    reload: Option<&mpsc::Sender<ReloadRequest>>,
) -> io::Result<()> {
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    let mut conn = Conn {
        stream,
        tls: TlsStream::server(settings.tls.clone()).map_err(io::Error::other)?,
        plain: Vec::new(),
        buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
    };
    match tokio::time::timeout_at(deadline, conn.handshake()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "management TLS handshake failed");
            return Ok(());
        }
        Err(_) => {
            tracing::info!(%peer, "management TLS handshake timed out");
            return Ok(());
        }
    }
    let identity = conn
        .tls
        .peer_identity()
        .and_then(|p| p.name().map(str::to_owned));
    let mut gate = Gate::new(settings.access.clone(), identity, random_seed()?);
    loop {
        let read = match gate.user() {
            None => tokio::time::timeout_at(deadline, conn.read_line()).await,
            Some(_) => tokio::time::timeout(IDLE_TIMEOUT, conn.read_line()).await,
        };
        let line = match read {
            Ok(Ok(Line::Text(line))) => line,
            Ok(Ok(Line::Eof)) => return Ok(()),
            Ok(Ok(Line::TooLong)) => {
                conn.write(&answer_err("bad_request", "request line too long"))
                    .await?;
                conn.close().await;
                return Ok(());
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                tracing::info!(%peer, authenticated = gate.user().is_some(),
                    "management connection timed out");
                conn.close().await;
                return Ok(());
            }
        };
        match gate.handle_line(&line) {
            Verdict::Answer(answer) => conn.write(&answer).await?,
            Verdict::Authenticated {
                answer,
                user,
                role,
                mechanism,
            } => {
                tracing::info!(%peer, user, role = role_name(role), %mechanism,
                    "management client authenticated");
                conn.write(&answer).await?;
            }
            Verdict::Refuse {
                answer,
                close,
                local,
            } => {
                let (code, reason) = answer
                    .error
                    .as_ref()
                    .map(|e| (e.code.as_str(), e.message.as_str()))
                    .unwrap_or_default();
                if local {
                    tracing::error!(%peer, code, reason, "management authentication failed");
                } else {
                    tracing::warn!(%peer, code, reason, "management authentication refused");
                }
                tokio::time::sleep(FAILURE_DELAY).await;
                conn.write(&answer).await?;
                if close {
                    tracing::warn!(%peer, "management connection closed: too many failures");
                    conn.close().await;
                    return Ok(());
                }
            }
            Verdict::Request { role, op } => {
                let answer = crate::management::handle(&line, management, reload, role).await;
                let user = gate.user().map(|(u, _)| u).unwrap_or_default();
                let op = op.unwrap_or_default();
                let code = answer.error.as_ref().map(|e| e.code.as_str());
                if matches!(op.as_str(), "summary" | "list" | "show") {
                    tracing::debug!(%peer, user, op, error = code, "management request");
                } else {
                    tracing::info!(%peer, user, op, error = code, "management request");
                }
                conn.write(&answer).await?;
            }
        }
    }
}

/// Why a [`Client`] call failed: the daemon could not be reached or spoke something else.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `HOST:PORT` expected.
    #[error("{0:?} is not HOST:PORT")]
    Address(String),
    /// The TCP connection could not be made.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// Where to.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The TLS configuration could not be built (a bad CA file or client certificate).
    #[error("TLS configuration: {0}")]
    TlsConfig(#[source] TlsConfigError),
    /// The TLS handshake failed (the server's certificate did not verify, say).
    #[error("TLS handshake with {address}: {source}")]
    Handshake {
        /// With whom.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// Reading or writing failed after the handshake (a refused client certificate shows
    /// here, as an alert, in TLS 1.3).
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The daemon closed the connection without an answer.
    #[error("the daemon closed the connection")]
    Closed,
    /// An answer that is not a protocol answer.
    #[error("unreadable answer: {0}")]
    BadAnswer(String),
    /// The SASL exchange could not go on (for SCRAM: the server did not prove it knows the
    /// password's key).
    #[error("authentication: {0}")]
    Sasl(#[from] ClientAuthError),
}

/// How a [`Client`] authenticates.
#[derive(Debug, Clone, Copy)]
pub enum ClientAuth<'a> {
    /// A password, with PLAIN or SCRAM-SHA-256.
    Password {
        /// The mechanism.
        mechanism: ClientMechanism,
        /// The user.
        user: &'a str,
        /// The password.
        password: &'a str,
    },
    /// The TLS client certificate, with EXTERNAL (the client configuration must carry it).
    External {
        /// The user to act as; `None`: the certificate's name.
        authzid: Option<&'a str>,
    },
}

/// A blocking client of the TCP listener (mswitchctl's `--connect`).
#[derive(Debug)]
pub struct Client {
    io: BufReader<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>,
}

impl Client {
    /// Connects to `address` (`HOST:PORT`) and completes the TLS handshake, the server
    /// verified as `tls` says (for `HOST`). `timeout` bounds the connection and each read.
    pub fn connect(
        address: &str,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let bad = || ClientError::Address(address.to_owned());
        let target = HostPort::parse(address).ok_or_else(bad)?;
        let port = target.port.ok_or_else(bad)?;
        let name = ServerName::try_from(target.host.clone()).map_err(|_| bad())?;
        let connect_error = |source| ClientError::Connect {
            address: address.to_owned(),
            source,
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
        let mut socket = None;
        for a in (target.host.as_str(), port)
            .to_socket_addrs()
            .map_err(connect_error)?
        {
            match std::net::TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => {
                    socket = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let mut socket = socket.ok_or_else(|| connect_error(last))?;
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(timeout))?;
        let mut conn = rustls::ClientConnection::new(tls, name)
            .map_err(|e| ClientError::TlsConfig(TlsConfigError::Rustls(e)))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut socket)
                .map_err(|source| ClientError::Handshake {
                    address: address.to_owned(),
                    source,
                })?;
        }
        Ok(Client {
            io: BufReader::new(rustls::StreamOwned::new(conn, socket)),
        })
    }

    /// Sends one line (a newline is added) and reads one answer line, as is.
    pub fn send_line(&mut self, line: &str) -> Result<String, ClientError> {
        let out = self.io.get_mut();
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()?;
        let mut answer = String::new();
        if self.io.read_line(&mut answer)? == 0 {
            return Err(ClientError::Closed);
        }
        Ok(answer)
    }

    fn exchange(&mut self, line: &serde_json::Value) -> Result<ResponseLine, ClientError> {
        let answer = self.send_line(&line.to_string())?;
        serde_json::from_str(&answer).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// Sends a request; gives the daemon's answer.
    pub fn call(&mut self, request: Request) -> Result<ResponseLine, ClientError> {
        let line = serde_json::to_value(RequestLine {
            version: PROTOCOL_VERSION,
            request,
        })
        .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        self.exchange(&line)
    }

    /// Authenticates; gives the daemon's last answer: `ok` with the user and role, or the
    /// refusal.
    pub fn authenticate(&mut self, auth: ClientAuth<'_>) -> Result<ResponseLine, ClientError> {
        let auth_line = |mechanism: Option<&str>, data: Option<String>| {
            let mut line = serde_json::json!({ "version": PROTOCOL_VERSION, "op": "auth" });
            if let Some(m) = mechanism {
                line["mechanism"] = m.into();
            }
            if let Some(d) = data {
                line["data"] = d.into();
            }
            line
        };
        let (mechanism, password) = match auth {
            ClientAuth::External { authzid } => {
                let data = encode(authzid.unwrap_or("").as_bytes());
                return self.exchange(&auth_line(Some("EXTERNAL"), Some(data)));
            }
            ClientAuth::Password {
                mechanism,
                user,
                password,
            } => (mechanism, (user, password)),
        };
        let nonce = derive_nonce(&random_seed()?, 0);
        let (mut ex, initial) =
            ClientExchange::start(mechanism, password.0, password.1, None, &nonce)?;
        let mut answer = self.exchange(&auth_line(Some(mechanism.name()), initial))?;
        for _ in 0..MAX_CLIENT_STEPS {
            let challenge = answer
                .result
                .as_ref()
                .and_then(|r| r.get("continue"))
                .and_then(|c| c.as_str())
                .map(str::to_owned);
            let Some(challenge) = challenge else {
                if answer.ok {
                    ex.finish()?;
                }
                return Ok(answer);
            };
            match ex.step(&challenge) {
                Ok(line) => answer = self.exchange(&auth_line(None, Some(line)))?,
                Err(e) => {
                    let _ = self.exchange(&auth_line(None, Some("*".into())));
                    return Err(e.into());
                }
            }
        }
        Err(ClientError::BadAnswer(format!(
            "the exchange did not end after {MAX_CLIENT_STEPS} steps"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: &[u8; 16] = b"0123456789abcdef";

    fn users() -> Arc<dyn Credentials> {
        let mut text = String::new();
        for (user, password) in [("alice", "wonderland"), ("bob", "builder")] {
            let verifier =
                mswitch_smtp::sasl::hash_password(password, SALT, 4096).expect("hash a password");
            text.push_str(&format!("{user}:{verifier}\n"));
        }
        Arc::new(PasswordFile::parse(&text).expect("a password file"))
    }

    fn gate(external: bool, identity: Option<&str>) -> Gate {
        let roles = BTreeMap::from([
            ("alice".to_owned(), Role::Operator),
            ("carol".to_owned(), Role::Operator),
            ("dave".to_owned(), Role::Reader),
        ]);
        Gate::new(
            Arc::new(Access::new(users(), roles, external)),
            identity.map(str::to_owned),
            [7; 32],
        )
    }

    fn plain(user: &str, password: &str) -> String {
        encode(format!("\0{user}\0{password}").as_bytes())
    }

    fn line(mechanism: Option<&str>, data: Option<&str>) -> String {
        let mut v = serde_json::json!({"version": 1, "op": "auth"});
        if let Some(m) = mechanism {
            v["mechanism"] = m.into();
        }
        if let Some(d) = data {
            v["data"] = d.into();
        }
        v.to_string()
    }

    fn refusal(v: Verdict) -> (String, bool) {
        match v {
            Verdict::Refuse { answer, close, .. } => {
                assert!(!answer.ok);
                let e = answer.error.expect("an error body");
                (e.code, close)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    fn authenticated(v: Verdict) -> (String, Role) {
        match v {
            Verdict::Authenticated {
                answer, user, role, ..
            } => {
                let result = answer.result.expect("a result");
                assert_eq!(result["user"], user.as_str());
                assert_eq!(result["role"], role_name(role));
                (user, role)
            }
            other => panic!("expected success, got {other:?}"),
        }
    }

    #[test]
    fn requests_before_authentication_are_refused_and_the_third_closes() {
        let mut g = gate(false, None);
        let summary = r#"{"version":1,"op":"summary"}"#;
        assert_eq!(
            refusal(g.handle_line(summary)),
            (UNAUTHENTICATED.into(), false)
        );
        assert_eq!(
            refusal(g.handle_line("not json")),
            ("bad_request".into(), false)
        );
        assert_eq!(
            refusal(g.handle_line(summary)),
            (UNAUTHENTICATED.into(), true)
        );
        assert_eq!(g.user(), None);
    }

    #[test]
    fn plain_gives_the_role_of_the_table_and_reader_otherwise() {
        let mut g = gate(false, None);
        let v = g.handle_line(&line(Some("PLAIN"), Some(&plain("alice", "wonderland"))));
        assert_eq!(authenticated(v), ("alice".into(), Role::Operator));
        let v = g.handle_line(r#"{"version":1,"op":"hold","id":"0000000000000001"}"#);
        assert!(matches!(
            v,
            Verdict::Request { role: Role::Operator, op: Some(ref op) } if op == "hold"
        ));
        // A second auth is refused, without counting as a failure.
        let v = g.handle_line(&line(Some("PLAIN"), Some(&plain("bob", "builder"))));
        assert!(matches!(v, Verdict::Answer(ref a) if !a.ok), "{v:?}");
        assert_eq!(g.user(), Some(("alice", Role::Operator)));

        let mut g = gate(false, None);
        let v = g.handle_line(&line(Some("plain"), Some(&plain("bob", "builder"))));
        assert_eq!(authenticated(v), ("bob".into(), Role::Reader));
    }

    #[test]
    fn wrong_passwords_and_unknown_users_are_refused() {
        let mut g = gate(false, None);
        let v = g.handle_line(&line(Some("PLAIN"), Some(&plain("alice", "wrong"))));
        assert_eq!(refusal(v), (UNAUTHENTICATED.into(), false));
        let v = g.handle_line(&line(Some("PLAIN"), Some(&plain("mallory", "wonderland"))));
        assert_eq!(refusal(v), (UNAUTHENTICATED.into(), false));
        let v = g.handle_line(&line(Some("PLAIN"), Some(&plain("alice", "wonderland"))));
        assert_eq!(
            authenticated(v).0,
            "alice",
            "the third attempt still counts"
        );
    }

    #[test]
    fn plain_without_initial_response_continues() {
        let mut g = gate(false, None);
        let v = g.handle_line(&line(Some("PLAIN"), None));
        match v {
            Verdict::Answer(a) => assert_eq!(
                a.result.expect("a result"),
                serde_json::json!({"continue": ""})
            ),
            other => panic!("{other:?}"),
        }
        let v = g.handle_line(&line(None, Some(&plain("bob", "builder"))));
        assert_eq!(authenticated(v).1, Role::Reader);
    }

    #[test]
    fn scram_runs_with_the_client_exchange() {
        let mut g = gate(false, None);
        let (mut client, first) = ClientExchange::start(
            ClientMechanism::ScramSha256,
            "alice",
            "wonderland",
            None,
            "abcdefghijklmnopqrstuvwx",
        )
        .expect("start");
        let mut v = g.handle_line(&line(Some("SCRAM-SHA-256"), first.as_deref()));
        let mut steps = 0;
        loop {
            match v {
                Verdict::Answer(a) => {
                    let c = a.result.expect("a result")["continue"]
                        .as_str()
                        .expect("a challenge")
                        .to_owned();
                    let next = client.step(&c).expect("client step");
                    v = g.handle_line(&line(None, Some(&next)));
                    steps += 1;
                }
                other => {
                    assert_eq!(authenticated(other), ("alice".into(), Role::Operator));
                    break;
                }
            }
        }
        assert_eq!(steps, 2, "server-first, then server-final");
        client.finish().expect("the server proved it knows the key");
    }

    #[test]
    fn scram_with_a_wrong_password_is_refused_at_the_proof() {
        let mut g = gate(false, None);
        let (mut client, first) = ClientExchange::start(
            ClientMechanism::ScramSha256,
            "alice",
            "wrong",
            None,
            "abcdefghijklmnopqrstuvwx",
        )
        .expect("start");
        let v = g.handle_line(&line(Some("SCRAM-SHA-256"), first.as_deref()));
        let Verdict::Answer(a) = v else {
            panic!("{v:?}")
        };
        let c = a.result.expect("a result")["continue"]
            .as_str()
            .expect("a challenge")
            .to_owned();
        let next = client.step(&c).expect("client step");
        assert_eq!(
            refusal(g.handle_line(&line(None, Some(&next)))),
            (UNAUTHENTICATED.into(), false)
        );
    }

    #[test]
    fn continuation_rules() {
        let mut g = gate(false, None);
        // No exchange to continue.
        let v = g.handle_line(&line(None, Some(&plain("alice", "wonderland"))));
        assert_eq!(refusal(v).0, UNAUTHENTICATED);
        // A new mechanism in the middle of an exchange abandons it.
        let _ = g.handle_line(&line(Some("PLAIN"), None));
        let v = g.handle_line(&line(Some("PLAIN"), Some(&plain("alice", "wonderland"))));
        assert_eq!(refusal(v), (UNAUTHENTICATED.into(), false));
        // Cancel.
        let mut g = gate(false, None);
        let _ = g.handle_line(&line(Some("PLAIN"), None));
        assert_eq!(
            refusal(g.handle_line(&line(None, Some("*")))).0,
            UNAUTHENTICATED
        );
    }

    #[test]
    fn mechanisms_offered() {
        let mut g = gate(false, Some("carol"));
        for m in ["LOGIN", "EXTERNAL", "CRAM-MD5"] {
            let v = g.handle_line(&line(Some(m), Some("")));
            match v {
                Verdict::Refuse { answer, .. } => {
                    let e = answer.error.expect("error");
                    assert_eq!(e.code, UNAUTHENTICATED);
                    assert!(e.message.contains("offered: SCRAM-SHA-256, PLAIN"), "{e:?}");
                    assert!(!e.message.contains("EXTERNAL,"), "{e:?}");
                }
                other => panic!("{m}: {other:?}"),
            }
        }
    }

    #[test]
    fn external_needs_a_certificate_named_in_roles() {
        let mut g = gate(true, Some("carol"));
        assert_eq!(
            authenticated(g.handle_line(&line(Some("EXTERNAL"), Some("")))),
            ("carol".into(), Role::Operator)
        );
        // Without data: an empty challenge first, then the (empty) authorization identity.
        let mut g = gate(true, Some("dave"));
        let v = g.handle_line(&line(Some("EXTERNAL"), None));
        assert!(
            matches!(&v, Verdict::Answer(a) if a.result == Some(serde_json::json!({"continue": ""}))),
            "{v:?}"
        );
        assert_eq!(
            authenticated(g.handle_line(&line(None, Some("")))),
            ("dave".into(), Role::Reader)
        );
    }

    #[test]
    fn external_refusals() {
        // Not in roles (the CA alone does not make a user).
        let mut g = gate(true, Some("mallory"));
        assert_eq!(
            refusal(g.handle_line(&line(Some("EXTERNAL"), Some("")))).0,
            UNAUTHENTICATED
        );
        // No certificate.
        let mut g = gate(true, None);
        assert_eq!(
            refusal(g.handle_line(&line(Some("EXTERNAL"), Some("")))).0,
            UNAUTHENTICATED
        );
        // Acting as someone else.
        let mut g = gate(true, Some("carol"));
        let v = g.handle_line(&line(Some("EXTERNAL"), Some(&encode(b"alice"))));
        assert_eq!(refusal(v).0, UNAUTHENTICATED);
        assert_eq!(g.user(), None);
    }

    #[test]
    fn version_and_fields_are_checked() {
        let mut g = gate(false, None);
        let v = g.handle_line(r#"{"version":2,"op":"auth","mechanism":"PLAIN"}"#);
        assert_eq!(refusal(v).0, "unsupported_version");
        let v = g.handle_line(r#"{"version":1,"op":"auth","mechanism":"PLAIN","password":"x"}"#);
        assert_eq!(refusal(v).0, "bad_request");
    }

    #[test]
    fn configuration_section() {
        let text = r#"listen = "127.0.0.1:9925"
tls_cert = "mgmt.pem"
tls_key = "/etc/mswitch/mgmt.key"
users = "mgmt-users"
roles = { alice = "operator", bob = "reader" }
"#;
        let raw: ManagementConfig = toml::from_str(text).expect("parse");
        let c = raw.resolve(Path::new("/data")).expect("valid");
        assert_eq!(c.listen, "127.0.0.1:9925".parse().expect("address"));
        assert_eq!(c.tls_cert, Path::new("/data/mgmt.pem"));
        assert_eq!(c.tls_key, Path::new("/etc/mswitch/mgmt.key"));
        assert_eq!(c.users.as_deref(), Some(Path::new("/data/mgmt-users")));
        assert_eq!(c.roles.get("alice"), Some(&Role::Operator));
        assert_eq!(c.roles.get("bob"), Some(&Role::Reader));
        assert_eq!(c.client_ca, None);

        let bad_role = text.replace("\"reader\"", "\"admin\"");
        assert!(toml::from_str::<ManagementConfig>(&bad_role).is_err());
        let no_key = text.replace("tls_key = \"/etc/mswitch/mgmt.key\"\n", "");
        assert!(
            toml::from_str::<ManagementConfig>(&no_key).is_err(),
            "TLS is mandatory"
        );
        let nobody = text.replace("users = \"mgmt-users\"\n", "");
        let raw: ManagementConfig = toml::from_str(&nobody).expect("parse");
        let (key, _) = raw
            .resolve(Path::new("/data"))
            .expect_err("nobody can log in");
        assert_eq!(key, "management");
    }

    #[test]
    fn section_in_the_daemon_configuration() {
        let parse = |text: &str| crate::config::Config::parse(text, "test", Path::new("/data"));
        let base = "[server]\nhostname = \"switch.test\"\n[queue]\npath = \"queue\"\n";
        assert_eq!(parse(base).expect("valid").management, None);
        let text = format!(
            "{base}[management]\nlisten = \"127.0.0.1:9925\"\ntls_cert = \"c.pem\"\n\
             tls_key = \"c.key\"\nclient_ca = \"ca.pem\"\nroles = {{ carol = \"operator\" }}\n"
        );
        let c = parse(&text).expect("valid");
        let m = c.management.clone().expect("the section");
        assert_eq!(m.client_ca.as_deref(), Some(Path::new("/data/ca.pem")));
        assert_eq!(m.tls_cert, Path::new("/data/c.pem"));
        assert_eq!(m.users, None);
        assert!(
            c.to_string()
                .contains("management:    127.0.0.1:9925 (TLS)")
        );
        let e = parse(&text.replace("client_ca = \"ca.pem\"\n", "")).expect_err("nobody");
        assert!(
            e.to_string().starts_with("test: management: give users"),
            "{e}"
        );
        let e = parse(&text.replace("tls_cert = \"c.pem\"\n", "")).expect_err("no cert");
        assert!(e.to_string().contains("tls_cert"), "{e}");
    }
}
