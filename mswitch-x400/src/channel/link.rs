//! Links: one task per association with a peer MTA, whichever side opened it.
//!
//! A link receives transfers (handing each to the [`P1Handler`], acknowledging it once durable)
//! and sends the transfers the outbound channel gives it. An association we opened sends at
//! once (we hold the turn); one the peer opened in two-way-alternate mode sends after asking
//! for the turn, so a single association carries messages both ways. Links to a peer are
//! registered by its `MTAName` in [`Links`], where the outbound channel looks for an idle one
//! before it opens another association.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::driver::P1Handler;
use crate::p1::{Association, BindCredentials, DialogueMode, P1Event, State};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One transfer for a link: the MTS-APDU, and where to say how it went.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) apdu: Vec<u8>,
    pub(crate) done: oneshot::Sender<Result<(), String>>,
}

#[derive(Debug, Clone)]
struct LinkHandle {
    id: u64,
    tx: mpsc::Sender<Job>,
    busy: Arc<AtomicBool>,
}

/// The links in service, by peer `MTAName`.
#[derive(Debug, Default)]
pub struct Links {
    map: Mutex<HashMap<String, Vec<LinkHandle>>>,
    next: AtomicU64,
}

impl Links {
    /// An empty registry.
    pub fn new() -> Arc<Links> {
        Arc::new(Links::default())
    }

    /// How many links to `peer` are in service.
    pub fn count(&self, peer: &str) -> usize {
        self.map
            .lock()
            .map(|m| m.get(peer).map_or(0, Vec::len))
            .unwrap_or(0)
    }

    fn register(&self, peer: &str, busy: Arc<AtomicBool>) -> (u64, mpsc::Receiver<Job>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(1);
        if let Ok(mut m) = self.map.lock() {
            m.entry(peer.to_owned())
                .or_default()
                .push(LinkHandle { id, tx, busy });
        }
        (id, rx)
    }

    fn unregister(&self, peer: &str, id: u64) {
        if let Ok(mut m) = self.map.lock()
            && let Some(list) = m.get_mut(peer)
        {
            list.retain(|l| l.id != id);
            if list.is_empty() {
                m.remove(peer);
            }
        }
    }

    /// Hands `job` to an idle link to `peer`, or gives it back.
    pub(crate) fn try_send(&self, peer: &str, job: Job) -> Result<(), Job> {
        let handles: Vec<LinkHandle> = match self.map.lock() {
            Ok(m) => m.get(peer).cloned().unwrap_or_default(),
            Err(_) => return Err(job),
        };
        let mut job = job;
        for h in handles {
            if h.busy
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            match h.tx.try_send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j)) => {
                    h.busy.store(false, Ordering::Release);
                    job = j;
                }
            }
        }
        Err(job)
    }
}

/// How a link starts.
pub(crate) struct LinkStart {
    /// The peer's address, for logs and the handler.
    pub(crate) peer: SocketAddr,
    /// The peer's `MTAName` when we opened the association (known before the bind).
    pub(crate) peer_name: Option<String>,
    /// A transfer to send as soon as the association is bound (the one it was opened for).
    pub(crate) first: Option<Job>,
    /// How long to wait for the peer during a transfer or the bind.
    pub(crate) timeout: Duration,
    /// How long an idle association is kept.
    pub(crate) idle: Duration,
}

struct Link<S> {
    stream: S,
    assoc: Association,
    handler: Arc<dyn P1Handler>,
    links: Arc<Links>,
    start: LinkStart,
    busy: Arc<AtomicBool>,
    registered: Option<(String, u64)>,
    rx: Option<mpsc::Receiver<Job>>,
    sending: Option<Job>,
    waiting: Option<Job>,
    bound_as: BindCredentials,
}

/// Runs a link until its association ends.
pub(crate) async fn run<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    assoc: Association,
    handler: Arc<dyn P1Handler>,
    links: Arc<Links>,
    start: LinkStart,
) {
    let busy = Arc::new(AtomicBool::new(start.first.is_some()));
    let mut link = Link {
        stream,
        assoc,
        handler,
        links,
        start,
        busy,
        registered: None,
        rx: None,
        sending: None,
        waiting: None,
        bound_as: BindCredentials::default(),
    };
    let end = link.serve().await;
    let peer = link.start.peer;
    match &end {
        Ok(()) => tracing::debug!(peer = %peer, "P1 association ended"),
        // A peer that broke the protocol is worth a warning; one that went away, a note.
        Err(e) if e.contains("protocol error") => {
            tracing::warn!(peer = %peer, reason = %e, "P1 association ended")
        }
        Err(e) => tracing::info!(peer = %peer, reason = %e, "P1 association ended"),
    }
    let reason = end
        .err()
        .unwrap_or_else(|| "the association ended".to_owned());
    link.fail_jobs(&reason);
    if let Some((name, id)) = link.registered.take() {
        link.links.unregister(&name, id);
    }
    let _ = link.stream.shutdown().await;
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Link<S> {
    fn fail_jobs(&mut self, reason: &str) {
        for job in [
            self.sending.take(),
            self.waiting.take(),
            self.start.first.take(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = job.done.send(Err(reason.to_owned()));
        }
        self.busy.store(false, Ordering::Release);
    }

    async fn flush(&mut self) -> Result<(), String> {
        while let Some(bytes) = self.assoc.poll_transmit() {
            self.stream
                .write_all(&bytes)
                .await
                .map_err(|e| format!("write: {e}"))?;
        }
        self.stream.flush().await.map_err(|e| format!("write: {e}"))
    }

    fn register(&mut self, name: &str) {
        if self.registered.is_none() {
            let (id, rx) = self.links.register(name, self.busy.clone());
            self.registered = Some((name.to_owned(), id));
            self.rx = Some(rx);
        }
    }

    /// Starts a job: at once if we hold the turn, after asking for it otherwise.
    fn start_job(&mut self, job: Job) {
        if self.assoc.can_transfer() {
            match self.assoc.transfer(&job.apdu) {
                Ok(()) => self.sending = Some(job),
                Err(e) => {
                    let _ = job.done.send(Err(e.to_string()));
                    self.busy.store(false, Ordering::Release);
                }
            }
        } else if self.assoc.dialogue_mode() == DialogueMode::TwoWayAlternate {
            match self.assoc.request_turn() {
                Ok(()) => self.waiting = Some(job),
                Err(e) => {
                    let _ = job.done.send(Err(e.to_string()));
                    self.busy.store(false, Ordering::Release);
                }
            }
        } else {
            let _ = job
                .done
                .send(Err("this association cannot send (monologue)".into()));
            self.busy.store(false, Ordering::Release);
        }
    }

    /// Acts on the association's events; `Ok(false)` when it has ended.
    async fn events(&mut self) -> Result<bool, String> {
        while let Some(ev) = self.assoc.poll_event() {
            match ev {
                P1Event::BindRequest {
                    credentials,
                    dialogue_mode,
                } => match self.handler.bind(self.start.peer, &credentials).await {
                    Ok(ours) => {
                        self.assoc.accept_bind(ours).map_err(|e| e.to_string())?;
                        tracing::debug!(peer = %self.start.peer, mta = ?credentials.mta_name,
                            mode = ?dialogue_mode, "P1 bind accepted");
                        if dialogue_mode == DialogueMode::TwoWayAlternate
                            && let Some(name) = &credentials.mta_name
                        {
                            let name = name.clone();
                            self.register(&name);
                        }
                        self.bound_as = credentials;
                    }
                    Err(e) => {
                        tracing::warn!(peer = %self.start.peer, mta = ?credentials.mta_name,
                            error = ?e, "P1 bind refused");
                        self.assoc.refuse_bind(e).map_err(|e| e.to_string())?;
                        self.flush().await?;
                        return Ok(false);
                    }
                },
                P1Event::Bound { credentials } => {
                    self.bound_as = credentials;
                    if let Some(name) = self.start.peer_name.clone() {
                        self.register(&name);
                    }
                    if let Some(job) = self.start.first.take() {
                        self.start_job(job);
                    }
                }
                P1Event::BindRefused { reason, transient } => {
                    return Err(format!(
                        "bind refused{}: {reason}",
                        if transient { " for now" } else { "" }
                    ));
                }
                P1Event::Received { apdu } => {
                    match self
                        .handler
                        .received(self.start.peer, &self.bound_as, apdu)
                        .await
                    {
                        Ok(()) => self.assoc.confirm_received().map_err(|e| e.to_string())?,
                        Err(reason) => {
                            tracing::warn!(peer = %self.start.peer, reason = %reason,
                                "cannot take the transfer: aborting the association");
                            self.assoc.abort();
                            self.flush().await?;
                            return Err(format!("transfer not taken: {reason}"));
                        }
                    }
                }
                P1Event::TransferConfirmed => {
                    if let Some(job) = self.sending.take() {
                        let _ = job.done.send(Ok(()));
                    }
                    self.busy.store(false, Ordering::Release);
                }
                P1Event::TurnReceived => {
                    if let Some(job) = self.waiting.take() {
                        self.start_job(job);
                    }
                }
                P1Event::TransferDiscarded => {
                    tracing::info!(peer = %self.start.peer,
                        "the peer discarded a transfer in progress");
                }
                P1Event::Released => return Ok(false),
                P1Event::Aborted { reason } => return Err(reason),
                _ => {}
            }
        }
        self.flush().await?;
        Ok(self.assoc.state() != State::Closed)
    }

    async fn serve(&mut self) -> Result<(), String> {
        let mut buf = vec![0u8; READ_CHUNK];
        self.flush().await?;
        loop {
            if !self.events().await? {
                return Ok(());
            }
            let active = self.sending.is_some()
                || self.waiting.is_some()
                || self.start.first.is_some()
                || !matches!(self.assoc.state(), State::Ready);
            let wait = if active {
                self.start.timeout
            } else {
                self.start.idle
            };
            let accept_jobs = self.rx.is_some() && self.sending.is_none() && self.waiting.is_none();
            tokio::select! {
                read = tokio::time::timeout(wait, self.stream.read(&mut buf)) => match read {
                    Ok(Ok(0)) => self.assoc.connection_lost(),
                    Ok(Ok(n)) => {
                        if let Err(e) = self.assoc.handle_input(&buf[..n]) {
                            let _ = self.flush().await;
                            return Err(e.to_string());
                        }
                    }
                    Ok(Err(e)) => {
                        self.assoc.connection_lost();
                        return Err(format!("read: {e}"));
                    }
                    Err(_) if active => {
                        self.assoc.abort();
                        let _ = self.flush().await;
                        return Err("timed out waiting for the peer".into());
                    }
                    Err(_) => {
                        // Idle: the side that opened the association releases it.
                        if self.assoc.role() == crate::p1::Role::Initiator {
                            if let Some((name, id)) = self.registered.take() {
                                self.links.unregister(&name, id);
                            }
                            // A job handed over just before the link left the registry is
                            // still sent.
                            if let Some(mut rx) = self.rx.take()
                                && let Ok(job) = rx.try_recv()
                            {
                                self.start_job(job);
                                continue;
                            }
                            self.assoc.release().map_err(|e| e.to_string())?;
                        } else {
                            self.assoc.abort();
                            let _ = self.flush().await;
                            return Err("idle for too long".into());
                        }
                    }
                },
                job = recv(&mut self.rx), if accept_jobs => match job {
                    Some(job) => self.start_job(job),
                    None => self.rx = None,
                },
            }
        }
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<Job>>) -> Option<Job> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}
