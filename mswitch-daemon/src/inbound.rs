//! The SMTP server channel: a relay service and a submission service, each an inbound
//! [`Channel`] ([`SmtpListener`]) whose `serve` runs a tokio listener until shutdown, with the
//! connections answered by the submission pipeline.
//!
//! Per connection: the connection gate (limits in total and per client address, `421 4.7.0`
//! past them), then each transaction goes through the pipeline: MAIL opens it, each RCPT adds
//! a recipient, the end of data commits it. Before the commit the message is checked for a
//! mail loop (more `Received:` headers than the configured maximum: `554 5.4.6`) and gets its
//! own `Received:` header. The `250` goes out only after the queue has made it durable.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mswitch_core::address::{Address, Mailbox};
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, InboundContext, PipelineHandle,
};
use mswitch_core::dsn::format_rfc5322_date;
use mswitch_core::envelope::{
    BodyType, ContentType, Envelope, Notify, Priority, Recipient, ReversePath,
};
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::qmgr::ConnectionGate;
use mswitch_core::status::Status;
use mswitch_core::submission::{
    ClientInfo, Service as SubmissionService, SubmissionContext, SubmissionPipeline, Transaction,
};
use mswitch_smtp::driver::{Connection, DriverConfig, Message, Service, listen_service};
use mswitch_smtp::proto::command::{DeliverByMode, ForwardPath, MailParams, RcptParams};
use mswitch_smtp::sasl::ServerMechanism;
use mswitch_smtp::server::auth_limit::Throttled;

/// The current wall-clock time.
pub fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    )
}

/// What every connection of a listener shares. The pipeline is swapped on reload.
#[derive(Debug)]
pub struct Inbound {
    /// The listener's name, as the inbound channel's id.
    pub channel: ChannelId,
    /// Relay or submission.
    pub service: SubmissionService,
    /// The switch's host name (for Received: and the postmaster address).
    pub hostname: String,
    /// Most Received: headers accepted.
    pub max_hops: usize,
    /// The pipeline of the current configuration.
    pub pipeline: PipelineHandle,
    /// Connection limits, shared by all listeners.
    pub gate: Arc<Mutex<ConnectionGate>>,
    /// metrics: this listener's counters.
    pub metrics: Arc<crate::metrics::ListenerMetrics>,
    /// Listeners an operator has disabled (by name): their new connections get 421.
    pub disabled: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
}

impl Service for Inbound {
    type Conn = InboundConnection;

    async fn connect(&self, peer: SocketAddr, _local: SocketAddr) -> Result<Self::Conn, Status> {
        if self
            .disabled
            .read()
            .is_ok_and(|d| d.contains(self.channel.as_str()))
        {
            tracing::info!(channel = %self.channel, client = %peer,
                "connection refused: the listener is disabled by an operator");
            return Err(Status::new(
                421,
                (4, 3, 2),
                "service not available, try again later",
            ));
        }
        let admitted = self
            .gate
            .lock()
            .map_err(|_| Status::new(421, (4, 3, 0), "internal error"))?
            .admit(peer.ip());
        if let Err(refusal) = admitted {
            tracing::warn!(channel = %self.channel, client = %peer, reply = %refusal.text,
                "connection refused: limit reached");
            return Err(refusal);
        }
        tracing::debug!(channel = %self.channel, client = %peer, "connect");
        let pipeline = self.pipeline.current();
        Ok(InboundConnection {
            channel: self.channel.clone(),
            service: self.service,
            hostname: self.hostname.clone(),
            max_hops: self.max_hops,
            pipeline,
            gate: self.gate.clone(),
            peer,
            client: ClientInfo {
                address: Some(peer.ip()),
                ..ClientInfo::default()
            },
            transaction: None,
            released: false,
            metrics: self.metrics.connection(), // metrics
        })
    }
}

/// An SMTP listener as an inbound channel: [`Channel::serve`] accepts connections on its socket
/// until the switch shuts down.
pub struct SmtpListener {
    descriptor: ChannelDescriptor,
    socket: Mutex<Option<tokio::net::TcpListener>>,
    address: std::net::SocketAddr,
    driver: DriverConfig,
    service: SubmissionService,
    hostname: String,
    max_hops: usize,
    gate: Arc<Mutex<ConnectionGate>>,
    metrics: Arc<crate::metrics::ListenerMetrics>, // metrics
    disabled: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for SmtpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpListener")
            .field("id", &self.descriptor.id)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl SmtpListener {
    /// A listener named `id` on a bound `socket`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ChannelId,
        socket: tokio::net::TcpListener,
        driver: DriverConfig,
        service: SubmissionService,
        hostname: String,
        max_hops: usize,
        gate: Arc<Mutex<ConnectionGate>>,
    ) -> std::io::Result<Self> {
        Ok(SmtpListener {
            descriptor: ChannelDescriptor {
                id,
                kind: ChannelKind::Inbound,
                accepts: vec![mswitch_core::envelope::ContentFamily::Internet],
            },
            address: socket.local_addr()?,
            socket: Mutex::new(Some(socket)),
            driver,
            service,
            hostname,
            max_hops,
            gate,
            metrics: Arc::default(), // metrics
            disabled: Arc::default(),
        })
    }

    /// Lets an operator disable this listener: its name in `disabled` refuses new connections.
    pub fn with_disabled(
        mut self,
        disabled: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
    ) -> Self {
        self.disabled = disabled;
        self
    }

    /// metrics: counts this listener's messages and connections in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::ListenerMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The address it listens on.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }
}

#[async_trait]
impl Channel for SmtpListener {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn serve(&self, ctx: InboundContext) -> Result<(), ChannelError> {
        let socket = self
            .socket
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| {
                ChannelError::Config(format!(
                    "listener {} is already serving",
                    self.descriptor.id
                ))
            })?;
        let service = Arc::new(Inbound {
            channel: self.descriptor.id.clone(),
            service: self.service,
            hostname: self.hostname.clone(),
            max_hops: self.max_hops,
            pipeline: ctx.pipeline.clone(),
            gate: self.gate.clone(),
            metrics: self.metrics.clone(), // metrics
            disabled: self.disabled.clone(),
        });
        tokio::select! {
            result = listen_service(socket, self.driver.clone(), service) => {
                result.map_err(|e| ChannelError::Connection {
                    peer: self.address.to_string(),
                    reason: format!("accept failed: {e}"),
                })
            }
            () = ctx.shutdown.wait() => Ok(()),
        }
    }
}

/// One client's session.
pub struct InboundConnection {
    channel: ChannelId,
    service: SubmissionService,
    hostname: String,
    max_hops: usize,
    /// The pipeline as it was when the client connected: a reload applies to new connections.
    pipeline: Arc<SubmissionPipeline>,
    gate: Arc<Mutex<ConnectionGate>>,
    peer: SocketAddr,
    client: ClientInfo,
    transaction: Option<Transaction<'static>>,
    released: bool,
    /// metrics: counted in `mswitch_connections_active` while the connection lives.
    metrics: crate::metrics::ConnectionGuard,
}

impl InboundConnection {
    fn context(&self) -> SubmissionContext {
        SubmissionContext {
            channel: self.channel.clone(),
            service: self.service,
            client: self.client.clone(),
            now: now(),
        }
    }

    /// The Received: header for this message (RFC 5321 §4.4).
    fn received(&self, recipients: usize, first: Option<&str>) -> String {
        let helo = self.client.helo.as_deref().unwrap_or("unknown");
        let ip = match self.peer.ip() {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("IPv6:{a}"),
        };
        let with = match (self.client.tls, self.client.authenticated.is_some()) {
            (false, false) => "ESMTP",
            (true, false) => "ESMTPS",
            (false, true) => "ESMTPA",
            (true, true) => "ESMTPSA",
        };
        let for_clause = match (recipients, first) {
            (1, Some(r)) => format!("\r\n\tfor <{r}>"),
            _ => String::new(),
        };
        format!(
            "Received: from {helo} ([{ip}])\r\n\tby {} (mswitch) with {with}{for_clause};\r\n\t{}\r\n",
            self.hostname,
            format_rfc5322_date(now())
        )
    }
}

/// Counts the Received: header fields in the header section of `content`.
fn count_received(content: &[u8]) -> usize {
    let mut n = 0;
    for line in content.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.len() >= 9 && line[..9].eq_ignore_ascii_case(b"received:") {
            n += 1;
        }
    }
    n
}

/// The envelope a MAIL command starts.
fn envelope_from(from: &ReversePath, params: &MailParams, arrival: Timestamp) -> Envelope {
    let mut e = Envelope::new(from.clone(), arrival);
    e.content_type = ContentType::Internet {
        body: params.body.unwrap_or(BodyType::SevenBit),
        smtputf8: params.smtputf8,
    };
    e.dsn_ret = params.ret;
    e.dsn_envid = params.envid.clone();
    e.require_tls = params.require_tls;
    if let Some(p) = params.mt_priority.and_then(Priority::from_mt_priority) {
        e.priority = p;
    }
    if let Some(by) = params.by {
        // RFC 2852: R-mode fails the message when the time passes; N-mode only notifies,
        // which the scheduler's delay notice covers.
        if by.mode == DeliverByMode::Return && by.seconds > 0 {
            e.expires = Some(
                arrival.saturating_add(std::time::Duration::from_secs(by.seconds.unsigned_abs())),
            );
        }
    }
    e.size = params.size.unwrap_or(0);
    e
}

impl Connection for InboundConnection {
    fn hello(&mut self, name: &str, _extended: bool) {
        self.client.helo = Some(name.to_owned());
    }

    fn timed_out(&mut self, timeout: mswitch_smtp::server::Timeout) {
        tracing::warn!(channel = %self.channel, client = %self.peer, %timeout,
            in_transaction = self.transaction.is_some(),
            "session closed: the client was too slow (421 4.4.2)");
    }

    fn too_many_errors(&mut self, errors: u32, junk: u32) {
        tracing::warn!(channel = %self.channel, client = %self.peer, errors, junk_commands = junk,
            in_transaction = self.transaction.is_some(),
            "session closed: too many errors (421 4.7.0)");
    }

    fn authenticated(&mut self, identity: &str) {
        tracing::info!(channel = %self.channel, client = %self.peer, user = identity,
            "authenticated");
        self.client.authenticated = Some(identity.to_owned());
    }

    fn auth_failed(
        &mut self,
        mechanism: ServerMechanism,
        user: Option<&str>,
        throttled: Option<Throttled>,
    ) {
        // The user name is the client's text: quoted and escaped (Debug), never raw. Whether
        // the user exists is not said here either: the log may be read by more people than
        // the password file.
        let user = user.unwrap_or("");
        match throttled {
            None => tracing::warn!(channel = %self.channel, client = %self.peer,
                mechanism = %mechanism, user, "authentication failed"),
            Some(t) => tracing::warn!(channel = %self.channel, client = %self.peer,
                mechanism = %mechanism, user, limit = t.as_str(),
                "authentication refused: too many failures"),
        }
    }

    fn tls(&mut self) {
        self.client.tls = true;
        // RFC 3207: everything learned before TLS is forgotten.
        self.client.helo = None;
        self.transaction = None;
    }

    async fn mail(&mut self, from: &ReversePath, params: &MailParams) -> Status {
        self.transaction = None;
        let mut envelope = envelope_from(from, params, now());
        if let Some(Some(auth)) = &params.auth
            && self.client.authenticated.is_some()
        {
            envelope.authenticated_as = Some(auth.clone());
        } else {
            envelope.authenticated_as = self.client.authenticated.clone();
        }
        let size = params.size;
        match self
            .pipeline
            .begin_shared(self.context(), envelope, size)
            .await
        {
            Ok(tx) => {
                self.transaction = Some(tx);
                Status::new(250, (2, 1, 0), "Sender OK")
            }
            Err(refusal) => {
                tracing::info!(channel = %self.channel, client = %self.peer,
                    from = %display_path(from), reply = %refusal.status.text,
                    code = refusal.status.code, "sender refused");
                refusal.status
            }
        }
    }

    async fn rcpt(&mut self, to: &ForwardPath, params: &RcptParams) -> Status {
        let Some(tx) = self.transaction.as_mut() else {
            return Status::new(503, (5, 5, 1), "need MAIL command");
        };
        let mailbox = match to {
            ForwardPath::Mailbox(m) => m.clone(),
            ForwardPath::Postmaster => {
                match Mailbox::parse(&format!("postmaster@{}", self.hostname)) {
                    Ok(m) => m,
                    Err(_) => return Status::new(550, (5, 1, 1), "no postmaster here"),
                }
            }
        };
        let mut recipient = Recipient::new(Address::Mailbox(mailbox.clone()));
        recipient.notify = params.notify.unwrap_or(Notify::unspecified());
        recipient.original = params.orcpt.clone();
        match tx.add_recipient(recipient).await {
            Ok(_) => Status::new(250, (2, 1, 5), "Recipient OK"),
            Err(refusal) => {
                tracing::info!(channel = %self.channel, client = %self.peer, to = %mailbox,
                    code = refusal.status.code, dsn = %refusal.status.enhanced,
                    reply = %refusal.status.text, "recipient refused");
                refusal.status
            }
        }
    }

    async fn message(&mut self, message: Message) -> Vec<Status> {
        let Some(tx) = self.transaction.take() else {
            return vec![Status::new(503, (5, 5, 1), "no transaction")];
        };
        let hops = count_received(&message.content);
        if hops > self.max_hops {
            tracing::warn!(channel = %self.channel, client = %self.peer, hops,
                "message refused: mail loop (too many Received headers)");
            return vec![Status::new(
                554,
                (5, 4, 6),
                format!("Too many hops ({hops}): mail loop detected"),
            )];
        }
        let recipients = tx.envelope().recipients.len();
        let first = tx
            .envelope()
            .recipients
            .first()
            .and_then(|r| match &r.address {
                Address::Mailbox(m) => Some(m.to_string()),
                Address::X400(_) => None,
            });
        let header = self.received(recipients, first.as_deref());
        let mut content = Vec::with_capacity(header.len() + message.content.len());
        content.extend_from_slice(header.as_bytes());
        content.extend_from_slice(&message.content);
        let from = display_path(&message.from);
        match tx.commit(&content).await {
            Ok(submitted) => {
                tracing::info!(
                    queue_id = %submitted.id,
                    channel = %self.channel,
                    client = %self.peer,
                    helo = self.client.helo.as_deref().unwrap_or(""),
                    tls = self.client.tls,
                    user = self.client.authenticated.as_deref().unwrap_or(""),
                    from = %from,
                    size = content.len(),
                    nrcpt = submitted.envelope.recipients.len(),
                    priority = ?submitted.envelope.priority,
                    "received"
                );
                self.metrics.listener().received(); // metrics
                self.metrics.listener().received_volume(
                    submitted.envelope.size,
                    submitted.envelope.recipients.len() as u64,
                ); // agentx
                vec![Status::new(
                    250,
                    (2, 0, 0),
                    format!("Ok: queued as {}", submitted.id),
                )]
            }
            Err(refusal) => {
                tracing::warn!(channel = %self.channel, client = %self.peer, from = %from,
                    code = refusal.status.code, dsn = %refusal.status.enhanced,
                    reply = %refusal.status.text, "message refused");
                vec![refusal.status]
            }
        }
    }

    fn closed(&mut self) {
        if !std::mem::replace(&mut self.released, true)
            && let Ok(mut gate) = self.gate.lock()
        {
            gate.leave(self.peer.ip());
        }
        tracing::debug!(channel = %self.channel, client = %self.peer, "disconnect");
    }
}

impl Drop for InboundConnection {
    fn drop(&mut self) {
        // A session that ended by an error or a panic still gives its slot back.
        if !self.released
            && let Ok(mut gate) = self.gate.lock()
        {
            gate.leave(self.peer.ip());
        }
    }
}

fn display_path(p: &ReversePath) -> String {
    match p.mailbox() {
        Some(m) => format!("<{m}>"),
        None => "<>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_headers_are_counted_in_the_header_section_only() {
        let m = b"Received: a\r\nX: y\r\nreceived: b\r\n\tcontinued\r\n\r\nReceived: in body\r\n";
        assert_eq!(count_received(m), 2);
        assert_eq!(count_received(b"Subject: x\r\n\r\n"), 0);
    }
}
