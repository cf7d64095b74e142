//! The driver of [`crate::dispatch`] on a listener shared by P1 and P3: read until the
//! responder is known (at most [`crate::dispatch::MAX_DISPATCH_INPUT`] octets, within
//! [`MAX_DISPATCH_WAIT`]), then run the P1 link or the P3 session on the transport connection
//! taken so far.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mswitch_core::channel::PipelineHandle;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::P1Settings;
use super::link::{LinkStart, Links};
use super::p3::P3Service;
use crate::dispatch::{Dispatch, DispatchConfig, DispatchError, Responder};
use crate::driver::P1Handler;
use crate::p1::Association;
use crate::p3::P3Association;

/// The longest a peer may take to send its CR and session CONNECT (the association's own
/// timeout applies when it is shorter).
pub(crate) const MAX_DISPATCH_WAIT: Duration = Duration::from_secs(30);

/// Octets read at a time before the decision.
const READ_CHUNK: usize = 4096;

/// What a connection on the shared listener may be handed to.
pub(crate) struct Shared {
    pub(crate) p1: Arc<P1Settings>,
    pub(crate) handler: Arc<dyn P1Handler>,
    pub(crate) links: Arc<Links>,
    pub(crate) p3: P3Service,
    pub(crate) pipeline: PipelineHandle,
    /// Requests about queued messages (P3 cancel-deferred-delivery).
    pub(crate) queue: std::sync::Arc<dyn mswitch_core::channel::QueueControl>,
}

/// Serves one connection accepted on the shared listener.
pub(crate) async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send>(
    mut stream: S,
    peer: SocketAddr,
    shared: Shared,
) {
    let config = DispatchConfig {
        p1_tsel: shared.p1.tsel.clone(),
        p3_tsel: shared.p3.settings.tsel.clone(),
    };
    let mut dispatch = match Dispatch::new(config) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(peer = %peer, error = %e, "cannot set up an RFC 1006 responder");
            return;
        }
    };
    let wait = shared.p1.timeout.min(MAX_DISPATCH_WAIT);
    let decided = match tokio::time::timeout(wait, decide(&mut stream, &mut dispatch)).await {
        Ok(r) => r,
        Err(_) => Err(DispatchError::Ended(format!(
            "no session CONNECT within {}s",
            wait.as_secs()
        ))),
    };
    let responder = match decided {
        Ok(r) => r,
        Err(DispatchError::Silent) => {
            tracing::info!(peer = %peer, "RFC 1006 connection closed before any input");
            return;
        }
        Err(e) => {
            tracing::warn!(peer = %peer, reason = %e, "RFC 1006 connection dropped");
            let _ = stream.shutdown().await;
            return;
        }
    };
    tracing::debug!(peer = %peer, responder = ?responder, "RFC 1006 connection dispatched");
    let transport = dispatch.into_transport();
    match responder {
        Responder::P1 => {
            let assoc = match Association::responder_on(shared.p1.association(None), transport) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(peer = %peer, error = %e, "cannot set up a P1 responder");
                    return;
                }
            };
            let start = LinkStart {
                peer,
                peer_name: None,
                first: None,
                timeout: shared.p1.timeout,
                idle: shared.p1.timeout,
            };
            super::link::run(stream, assoc, shared.handler, shared.links, start).await;
        }
        Responder::P3 => {
            let config = shared.p3.settings.association();
            let assoc = match P3Association::responder_on(config, transport) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(peer = %peer, error = %e, "cannot set up a P3 responder");
                    return;
                }
            };
            shared
                .p3
                .run(stream, peer, assoc, shared.pipeline, shared.queue)
                .await;
        }
    }
}

/// Reads and answers until the responder is known.
async fn decide<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    dispatch: &mut Dispatch,
) -> Result<Responder, DispatchError> {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => return Err(dispatch.handle_eof()),
            Ok(n) => n,
            Err(e) => return Err(DispatchError::Ended(format!("read: {e}"))),
        };
        let decided = dispatch.handle_input(&buf[..n]);
        while let Some(out) = dispatch.poll_transmit() {
            if let Err(e) = stream.write_all(&out).await {
                return Err(DispatchError::Ended(format!("write: {e}")));
            }
        }
        if let Err(e) = stream.flush().await {
            return Err(DispatchError::Ended(format!("write: {e}")));
        }
        if let Some(r) = decided? {
            return Ok(r);
        }
    }
}
