//! The management interface: a local Unix socket speaking newline-delimited JSON (protocol
//! version 1, `docs/management.md`). Who may use it is decided by the socket's file permissions
//! (mode 0600: the daemon's user). `mswitchctl` is its client.
//!
//! Every request is one JSON object on one line, `{"version":1,"op":"...", ...}`; every answer
//! is one line, `{"ok":true,"result":...}` or `{"ok":false,"error":{"code":"...","message":"..."}}`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::switch::{Management, ManagementError, MessageFilter};

/// The protocol version this daemon speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The most bytes one request line may have.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A request to the main loop to reload the configuration; answered with the outcome.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

fn default_limit() -> usize {
    100
}

/// The operations.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Counts by channel, peer, priority, state and age.
    Summary,
    /// Messages matching a filter, oldest first, a page at a time.
    List {
        /// The filter (every field optional).
        #[serde(default)]
        filter: MessageFilter,
        /// How many matching messages to skip.
        #[serde(default)]
        offset: usize,
        /// The most to return (default 100).
        #[serde(default = "default_limit")]
        limit: usize,
    },
    /// One message: envelope and per-recipient state.
    Show {
        /// Its queue id.
        id: String,
    },
    /// Hold a message.
    Hold {
        /// Its queue id.
        id: String,
    },
    /// Release a held message.
    Release {
        /// Its queue id.
        id: String,
    },
    /// Delete a message, silently or with a non-delivery report to its sender.
    Delete {
        /// Its queue id.
        id: String,
        /// Send the sender a non-delivery report.
        #[serde(default)]
        notify: bool,
    },
    /// Retry one message now, every deferred message, or those for one channel and peer.
    Retry {
        /// Its queue id; absent: everything (or the channel and peer below).
        #[serde(default)]
        id: Option<String>,
        /// With `peer`: only this channel's messages to that next hop.
        #[serde(default)]
        channel: Option<String>,
        /// The next hop as `summary` shows it (`[host]:port`, `mx:domain`, ...).
        #[serde(default)]
        peer: Option<String>,
    },
    /// Change a channel's (or listener's) operator controls.
    Channel {
        /// The channel or listener.
        name: String,
        /// The changes.
        #[serde(flatten)]
        change: crate::switch::ChannelChange,
    },
    /// Send one recipient's copy of a message to another address instead.
    Redirect {
        /// The message.
        id: String,
        /// The recipient's address.
        recipient: String,
        /// The new address.
        to: String,
    },
    /// Every peer: jobs running, resting, and self-tuning's limit and why.
    Peers,
    /// Stream delivery events, one JSON object per line, until the client goes away (local
    /// socket only).
    Watch,
    /// Pin a self-tuned peer's concurrency, or let tuning decide again.
    Pin {
        /// The channel.
        channel: String,
        /// The next hop as `peers` shows it.
        peer: String,
        /// The limit; absent: back to self-tuning.
        #[serde(default)]
        limit: Option<usize>,
    },
    /// Reload the configuration (as SIGHUP does).
    Reload,
}

/// A request line.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RequestLine {
    /// The protocol version the client speaks.
    pub version: u32,
    /// The operation.
    #[serde(flatten)]
    pub request: Request,
}

/// An error answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// `bad_request`, `unsupported_version`, `not_found`, `busy` or `failed`.
    pub code: String,
    /// For people.
    pub message: String,
}

/// An answer line.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResponseLine {
    /// Whether the operation succeeded.
    pub ok: bool,
    /// Its result, on success.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<serde_json::Value>,
    /// What went wrong, on failure.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<ErrorBody>,
}

impl ResponseLine {
    fn ok(result: serde_json::Value) -> Self {
        ResponseLine {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    fn err(code: &str, message: impl Into<String>) -> Self {
        ResponseLine {
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code: code.into(),
                message: message.into(),
            }),
        }
    }
}

impl From<ManagementError> for ResponseLine {
    fn from(e: ManagementError) -> Self {
        let code = match e {
            ManagementError::NotFound(_) | ManagementError::NoChannel(_) => "not_found",
            ManagementError::BadId(_)
            | ManagementError::BadPriority(_)
            | ManagementError::BadAddress(_) => "bad_request",
            ManagementError::Busy(_) => "busy",
            ManagementError::Failed(_) => "failed",
        };
        ResponseLine::err(code, e.to_string())
    }
}

/// What a management client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Look only: summary, list, show.
    Reader,
    /// Everything.
    Operator,
}

impl Request {
    /// Whether the request changes anything (and so needs the operator role).
    pub fn changes_state(&self) -> bool {
        !matches!(
            self,
            Request::Summary
                | Request::List { .. }
                | Request::Show { .. }
                | Request::Peers
                | Request::Watch
        )
    }
}

/// Answers one request line from a client with `role` (the local socket's clients are
/// operators: the socket's permissions are their authorization).
pub async fn handle(
    line: &str,
    management: &Management,
    reload: Option<&mpsc::Sender<ReloadRequest>>,
    role: Role,
) -> ResponseLine {
    let request: RequestLine = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return ResponseLine::err("bad_request", format!("not a request: {e}")),
    };
    if role == Role::Reader && request.request.changes_state() {
        return ResponseLine::err(
            "forbidden",
            "this operation needs the operator role; this client is a reader",
        );
    }
    if request.version != PROTOCOL_VERSION {
        return ResponseLine::err(
            "unsupported_version",
            format!(
                "this daemon speaks version {PROTOCOL_VERSION}, not {}",
                request.version
            ),
        );
    }
    let json = |v: serde_json::Result<serde_json::Value>| match v {
        Ok(v) => ResponseLine::ok(v),
        Err(e) => ResponseLine::err("failed", e.to_string()),
    };
    match request.request {
        Request::Summary => json(serde_json::to_value(management.summary())),
        Request::List {
            filter,
            offset,
            limit,
        } => {
            let (total, messages) = management.list(&filter, offset, limit.min(10_000));
            json(serde_json::to_value(serde_json::json!({
                "total": total,
                "offset": offset,
                "messages": messages,
            })))
        }
        Request::Show { id } => match management.show(&id) {
            Ok(v) => json(serde_json::to_value(v)),
            Err(e) => e.into(),
        },
        Request::Hold { id } => match management.hold(&id) {
            Ok(()) => ResponseLine::ok(serde_json::json!({ "held": id })),
            Err(e) => e.into(),
        },
        Request::Release { id } => match management.release(&id) {
            Ok(()) => ResponseLine::ok(serde_json::json!({ "released": id })),
            Err(e) => e.into(),
        },
        Request::Delete { id, notify } => match management.delete(&id, notify).await {
            Ok(()) => ResponseLine::ok(serde_json::json!({ "deleted": id, "notified": notify })),
            Err(e) => e.into(),
        },
        Request::Retry { id, channel, peer } => {
            let result = match (&id, &channel, &peer) {
                (_, Some(c), Some(p)) if id.is_none() => management.retry_peer(c, p),
                (_, None, None) => management.retry(id.as_deref()),
                _ => {
                    return ResponseLine::err(
                        "bad_request",
                        "retry takes an id, or channel and peer together, or nothing",
                    );
                }
            };
            match result {
                Ok(n) => ResponseLine::ok(serde_json::json!({ "retried": n })),
                Err(e) => e.into(),
            }
        }
        Request::Peers => ResponseLine::ok(management.peers()),
        Request::Watch => ResponseLine::err(
            "failed",
            "watch streams events on the local socket only, on a connection of its own",
        ),
        Request::Pin {
            channel,
            peer,
            limit,
        } => match management.pin(&channel, &peer, limit) {
            Ok(()) => ResponseLine::ok(serde_json::json!({ "pinned": limit })),
            Err(e) => e.into(),
        },
        Request::Channel { name, change } => match management.channel(&name, &change).await {
            Ok(v) => ResponseLine::ok(v),
            Err(e) => e.into(),
        },
        Request::Redirect { id, recipient, to } => {
            match management.redirect(&id, &recipient, &to).await {
                Ok(new_id) => ResponseLine::ok(
                    serde_json::json!({ "redirected": id, "to": to, "queued_as": new_id }),
                ),
                Err(e) => e.into(),
            }
        }
        Request::Reload => {
            let Some(tx) = reload else {
                return ResponseLine::err("failed", "reload is not available here");
            };
            let (answer, outcome) = oneshot::channel();
            if tx.send(answer).await.is_err() {
                return ResponseLine::err("failed", "the daemon is stopping");
            }
            match outcome.await {
                Ok(Ok(())) => ResponseLine::ok(serde_json::json!({ "reloaded": true })),
                Ok(Err(e)) => ResponseLine::err("failed", e),
                Err(_) => ResponseLine::err("failed", "the daemon is stopping"),
            }
        }
    }
}

/// Binds the management socket at `path` (replacing a stale one), readable and writable by the
/// daemon's user only.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        // A socket nobody answers on is left over from a daemon that died.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running daemon", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the management socket until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    management: Management,
    reload: mpsc::Sender<ReloadRequest>,
) {
    tracing::info!(socket = %path.display(), "management socket ready");
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "management accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (m, r) = (management.clone(), reload.clone());
        tokio::spawn(async move {
            if let Err(e) = session(stream, &m, &r).await {
                tracing::debug!(error = %e, "management session ended");
            }
        });
    }
}

/// Streams delivery events until the client closes its side or goes away.
async fn watch(
    lines: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
    management: &Management,
) -> std::io::Result<()> {
    let mut events = management.events();
    let ack = ResponseLine::ok(serde_json::json!({ "watching": true }));
    let mut out = serde_json::to_vec(&ack).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            event = events.recv() => {
                let value = match event {
                    Ok(v) => v,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        serde_json::json!({ "event": "lagged", "missed": n })
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                };
                let mut out = serde_json::to_vec(&value).map_err(std::io::Error::other)?;
                out.push(b'\n');
                write.write_all(&out).await?;
            }
            read = lines.read(&mut buf) => {
                if read? == 0 {
                    return Ok(());
                }
            }
        }
    }
}

async fn session(
    stream: UnixStream,
    management: &Management,
    reload: &mpsc::Sender<ReloadRequest>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut lines)
            .take(MAX_REQUEST as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if serde_json::from_str::<RequestLine>(line.trim_end())
            .is_ok_and(|r| r.version == PROTOCOL_VERSION && matches!(r.request, Request::Watch))
        {
            return watch(&mut lines, &mut write, management).await;
        }
        let answer = if !line.ends_with('\n') && n >= MAX_REQUEST {
            let a = ResponseLine::err("bad_request", "request line too long");
            let mut out = serde_json::to_vec(&a).unwrap_or_default();
            out.push(b'\n');
            write.write_all(&out).await?;
            return Ok(());
        } else {
            handle(line.trim_end(), management, Some(reload), Role::Operator).await
        };
        let mut out = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
        out.push(b'\n');
        write.write_all(&out).await?;
    }
}
