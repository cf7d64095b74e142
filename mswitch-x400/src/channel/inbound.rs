//! The P1 listener: an RFC 1006 listener whose associations feed the submission pipeline.
//! With [`P1Listener::with_p3`] it also serves P3: each connection then goes to the P1 or the
//! P3 responder by its called transport selector and application context
//! ([`crate::dispatch`], driven by [`super::dispatch`]).
//!
//! For each MTS-APDU received: the MTA rules ([`crate::mta::receive`]) give the queue
//! envelope and the recipients refused outright (loop, unsupported critical extension); the
//! pipeline routes and queues the rest; recipients it refuses get a non-delivery report, which
//! is queued too. Only when all of that is durable is the activity acknowledged.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use mswitch_core::channel::{
    Channel, ChannelDescriptor, ChannelError, ChannelKind, InboundContext, PipelineHandle,
};
use mswitch_core::envelope::ContentFamily;
use mswitch_core::id::{ChannelId, Timestamp};
use mswitch_core::submission::{ClientInfo, Service, SubmissionContext};

use super::link::{LinkStart, Links};
use super::p3::{BoundUsers, P3Service, P3Settings};
use super::{Listening, P1Settings};
use crate::driver::P1Handler;
use crate::mta::{self, ReportEntry};
use crate::p1::Association;
use crate::p1::{BindCredentials, BindError};

/// The P1 listener channel.
#[derive(Debug)]
pub struct P1Listener {
    descriptor: ChannelDescriptor,
    listening: Listening,
    settings: Arc<P1Settings>,
    links: Arc<Links>,
    clock: fn() -> Timestamp,
    /// P3 served on this listener too.
    p3: Option<P3Service>,
}

impl P1Listener {
    /// A listener named `id` on a bound socket; `links` is the registry it shares with the
    /// outbound channel (associations opened by peers in two-way-alternate mode carry our
    /// transfers to them too); `clock` gives the current time.
    pub fn new(
        id: ChannelId,
        socket: tokio::net::TcpListener,
        settings: Arc<P1Settings>,
        links: Arc<Links>,
        clock: fn() -> Timestamp,
    ) -> std::io::Result<Self> {
        Ok(P1Listener {
            descriptor: ChannelDescriptor {
                id,
                kind: ChannelKind::Inbound,
                accepts: vec![ContentFamily::X400],
            },
            listening: Listening::new(socket)?,
            settings,
            links,
            clock,
            p3: None,
        })
    }

    /// Serves P3 on this listener as well (one RFC 1006 port for both): a connection whose
    /// called transport selector only P3 serves, or whose AARQ names an MTS access context,
    /// goes to a P3 responder, as on the P3 listener; its submissions are made in the inbound
    /// channel `p3_id`. `users` is the registry shared with the P3 delivery channels.
    pub fn with_p3(
        mut self,
        p3_id: ChannelId,
        settings: Arc<P3Settings>,
        users: Arc<BoundUsers>,
    ) -> Self {
        self.p3 = Some(P3Service {
            channel: p3_id,
            settings,
            users,
            submissions: Arc::default(),
            clock: self.clock,
        });
        self
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.listening.address()
    }
}

#[async_trait]
impl Channel for P1Listener {
    fn descriptor(&self) -> &ChannelDescriptor {
        &self.descriptor
    }

    async fn serve(&self, ctx: InboundContext) -> Result<(), ChannelError> {
        let handler = transfer_handler(
            self.descriptor.id.clone(),
            self.settings.clone(),
            ctx.pipeline.clone(),
            self.clock,
        );
        self.listening
            .accept_each(&self.descriptor.id, &ctx.shutdown, |stream, peer| {
                if let Some(p3) = &self.p3 {
                    let shared = super::dispatch::Shared {
                        p1: self.settings.clone(),
                        handler: handler.clone(),
                        links: self.links.clone(),
                        p3: p3.clone(),
                        pipeline: ctx.pipeline.clone(),
                        queue: ctx.queue.clone(),
                    };
                    tokio::spawn(super::dispatch::serve(stream, peer, shared));
                    return;
                }
                let assoc = match Association::responder(self.settings.association(None)) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!(peer = %peer, error = %e, "cannot set up a responder");
                        return;
                    }
                };
                let start = LinkStart {
                    peer,
                    peer_name: None,
                    first: None,
                    timeout: self.settings.timeout,
                    idle: self.settings.timeout,
                };
                tracing::debug!(peer = %peer, "P1 connection");
                tokio::spawn(super::link::run(
                    stream,
                    assoc,
                    handler.clone(),
                    self.links.clone(),
                    start,
                ));
            })
            .await
    }
}

/// The handler of received transfers (and binds) the P1 listener and the outbound channel's
/// associations share: MTA rules, the submission pipeline, non-delivery reports.
pub fn transfer_handler(
    channel: ChannelId,
    settings: Arc<P1Settings>,
    pipeline: PipelineHandle,
    clock: fn() -> Timestamp,
) -> Arc<dyn P1Handler> {
    Arc::new(Inbound {
        channel,
        settings,
        pipeline,
        clock,
    })
}

struct Inbound {
    channel: ChannelId,
    settings: Arc<P1Settings>,
    pipeline: PipelineHandle,
    clock: fn() -> Timestamp,
}

#[async_trait]
impl P1Handler for Inbound {
    async fn bind(
        &self,
        peer: SocketAddr,
        credentials: &BindCredentials,
    ) -> Result<BindCredentials, BindError> {
        let known = credentials
            .mta_name
            .as_ref()
            .and_then(|n| self.settings.peers.get(n));
        let ok = match known {
            Some(p) => match &p.password {
                Some(expected) => credentials.password.as_deref() == Some(expected.as_slice()),
                None => true,
            },
            None => !self.settings.require_authentication,
        };
        if !ok {
            tracing::warn!(peer = %peer, mta = ?credentials.mta_name,
                "P1 bind refused: unknown MTA or wrong password");
            return Err(BindError::AuthenticationError);
        }
        Ok(BindCredentials {
            mta_name: Some(self.settings.identity.mta_name.clone()),
            password: known
                .and_then(|p| p.our_password.clone())
                .or_else(|| self.settings.password.clone()),
        })
    }

    async fn received(
        &self,
        peer: SocketAddr,
        bound_as: &BindCredentials,
        apdu: Vec<u8>,
    ) -> Result<(), String> {
        let now = (self.clock)();
        let incoming = match mta::receive(&apdu, &self.settings.identity, now) {
            Ok(i) => i,
            Err(e) => {
                // Undecodable: refuse the transfer (the sender keeps it and will report).
                tracing::warn!(peer = %peer, mta = ?bound_as.mta_name, error = %e,
                    "P1 transfer refused: invalid MTS-APDU");
                return Err(format!("invalid MTS-APDU: {e}"));
            }
        };
        let authenticated = self
            .settings
            .peers
            .contains_key(bound_as.mta_name.as_deref().unwrap_or(""))
            .then(|| bound_as.mta_name.clone())
            .flatten();
        let ctx = SubmissionContext {
            channel: self.channel.clone(),
            service: Service::X400Transfer,
            client: ClientInfo {
                address: Some(peer.ip()),
                helo: bound_as.mta_name.clone(),
                tls: false,
                authenticated,
            },
            now,
        };
        let pipeline = self.pipeline.current();
        let mut refused: Vec<ReportEntry> = incoming.rejected.clone();
        let id = incoming.describe();
        if !incoming.envelope.recipients.is_empty() {
            let report = pipeline
                .submit(ctx.clone(), incoming.envelope.clone(), &incoming.stored)
                .await;
            if let Err(r) = &report.outcome
                && r.is_temporary()
            {
                tracing::warn!(peer = %peer, message = %id, reply = %r.status,
                    "P1 transfer refused for now");
                return Err(r.status.text.clone());
            }
            for (address, result) in &report.recipients {
                if let Err(refusal) = result {
                    if refusal.is_temporary() && report.outcome.is_err() {
                        return Err(refusal.status.text.clone());
                    }
                    tracing::info!(peer = %peer, message = %id, recipient = %address,
                        reply = %refusal.status, "P1 recipient refused: non-delivery report");
                    refused.push(ReportEntry::from_status(address, &refusal.status));
                }
            }
            match &report.outcome {
                Ok(s) => tracing::info!(peer = %peer, mta = ?bound_as.mta_name, message = %id,
                    queue_id = %s.id, recipients = incoming.envelope.recipients.len() - refused.len(),
                    "P1 transfer accepted"),
                Err(r) => tracing::info!(peer = %peer, message = %id, reply = %r.status,
                    "P1 transfer: no recipient accepted"),
            }
        }
        if !refused.is_empty() {
            match mta::report(&incoming.stored, &refused, &self.settings.identity, now) {
                Ok(Some(report)) => {
                    let ctx = SubmissionContext {
                        service: Service::Internal,
                        ..ctx
                    };
                    let r = pipeline.submit(ctx, report.envelope, &report.apdu).await;
                    match r.outcome {
                        Ok(s) => tracing::info!(message = %id, report = %s.id,
                            "non-delivery report queued"),
                        Err(e) if e.is_temporary() => return Err(e.status.text),
                        Err(e) => tracing::warn!(message = %id, reply = %e.status,
                            "non-delivery report could not be queued"),
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(message = %id, error = %e, "cannot build a report"),
            }
        }
        Ok(())
    }
}
