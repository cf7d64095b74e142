//! The tokio driver for P1 and P3 associations: one short loop per side (read, feed, drain,
//! write).
//!
//! [`P1Client`] is the initiator the outbound channel uses; [`serve_p1`] runs a responder on an
//! accepted connection and hands binds and received MTS-APDUs to a [`P1Handler`].
//! [`P3Client`] is a P3 initiator (a user agent or message store binding to its MTA): it
//! submits and takes the MTA's deliveries.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::p1::{
    Association, AssociationConfig, AssociationError, BindCredentials, BindError, P1Event,
};
use crate::p3::types::MessageSubmissionArgument;
use crate::p3::{
    MtsBindArgument, MtsBindError, MtsBindResult, ObjectName, P3Association, P3AssociationError,
    P3Config, P3Context, P3Error, P3Event, P3Operation, P3Result,
};
use crate::upper::ros::RejectProblem;

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

// ---------------------------------------------------------------------------------------------
// P3.

/// Why a P3 exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum P3DriverError {
    /// Connecting, reading or writing failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer did not answer in time.
    #[error("timed out waiting for the peer")]
    Timeout,
    /// The peer broke the protocol, a limit was hit, or a command was not valid.
    #[error("{0}")]
    Protocol(#[from] P3AssociationError),
    /// The peer refused the bind.
    #[error("bind refused: {reason}")]
    BindRefused {
        /// The MTS-bind error, when the peer sent one.
        error: Option<MtsBindError>,
        /// What the peer said.
        reason: String,
        /// Whether a later attempt may work.
        transient: bool,
    },
    /// The association ended before the operation completed.
    #[error("association ended: {0}")]
    Ended(String),
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum P3Outcome {
    /// It succeeded.
    Result(P3Result),
    /// It failed with an abstract error.
    Error(P3Error),
    /// It was rejected (by the peer, or we rejected a mistyped answer).
    Rejected(RejectProblem),
}

/// An initiator P3 association over TCP: bind, operations (a submission waits for its own
/// answer), the peer's invocations (deliveries) queued for [`P3Client::next_invocation`],
/// release.
#[derive(Debug)]
pub struct P3Client {
    stream: TcpStream,
    assoc: P3Association,
    buf: Vec<u8>,
    timeout: Duration,
    bind_result: MtsBindResult,
    invocations: std::collections::VecDeque<(i64, P3Operation)>,
    outcomes: std::collections::HashMap<i64, P3Outcome>,
}

impl P3Client {
    /// Connects to `addr` and binds in `context`. `timeout` bounds the connect and each wait
    /// for the peer.
    pub async fn connect(
        addr: SocketAddr,
        config: P3Config,
        bind: MtsBindArgument,
        context: P3Context,
        timeout: Duration,
    ) -> Result<P3Client, P3DriverError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(s) => s?,
            Err(_) => return Err(P3DriverError::Timeout),
        };
        let _ = stream.set_nodelay(true);
        let mut client = P3Client {
            stream,
            assoc: P3Association::initiator(config, bind, context)?,
            buf: vec![0; READ_CHUNK],
            timeout,
            bind_result: MtsBindResult::simple(ObjectName::Mta("-".into()), ""),
            invocations: std::collections::VecDeque::new(),
            outcomes: std::collections::HashMap::new(),
        };
        loop {
            match client.next_event().await? {
                P3Event::Bound { result } => {
                    client.bind_result = result;
                    return Ok(client);
                }
                P3Event::BindRefused {
                    error,
                    reason,
                    transient,
                } => {
                    return Err(P3DriverError::BindRefused {
                        error,
                        reason,
                        transient,
                    });
                }
                P3Event::Aborted { reason } => return Err(P3DriverError::Ended(reason)),
                P3Event::Released => return Err(P3DriverError::Ended("released".into())),
                _ => {}
            }
        }
    }

    /// What the responder presented in its bind result.
    pub fn bind_result(&self) -> &MtsBindResult {
        &self.bind_result
    }

    async fn flush(&mut self) -> Result<(), std::io::Error> {
        while let Some(bytes) = self.assoc.poll_transmit() {
            self.stream.write_all(&bytes).await?;
        }
        self.stream.flush().await
    }

    async fn next_event(&mut self) -> Result<P3Event, P3DriverError> {
        loop {
            self.flush().await?;
            if let Some(ev) = self.assoc.poll_event() {
                return Ok(ev);
            }
            let n = match tokio::time::timeout(self.timeout, self.stream.read(&mut self.buf)).await
            {
                Ok(r) => r?,
                Err(_) => return Err(P3DriverError::Timeout),
            };
            if n == 0 {
                self.assoc.connection_lost();
                continue;
            }
            let chunk = self.buf[..n].to_vec();
            if let Err(e) = self.assoc.handle_input(&chunk) {
                let _ = self.flush().await;
                return Err(e.into());
            }
        }
    }

    /// Reads one event and files it: an answer under its invoke id, an invocation in the
    /// queue.
    async fn pump_one(&mut self) -> Result<(), P3DriverError> {
        match self.next_event().await? {
            P3Event::Invoked {
                invoke_id,
                operation,
            } => self.invocations.push_back((invoke_id, operation)),
            P3Event::Result { invoke_id, result } => {
                self.outcomes.insert(invoke_id, P3Outcome::Result(result));
            }
            P3Event::Error {
                invoke_id,
                code,
                parameter,
            } => {
                self.outcomes
                    .insert(invoke_id, P3Outcome::Error(P3Error { code, parameter }));
            }
            P3Event::Rejected {
                invoke_id: Some(id),
                problem,
                ..
            } => {
                self.outcomes.insert(id, P3Outcome::Rejected(problem));
            }
            P3Event::Aborted { reason } => return Err(P3DriverError::Ended(reason)),
            P3Event::Released => return Err(P3DriverError::Ended("released".into())),
            _ => {}
        }
        Ok(())
    }

    /// Invokes an operation and waits for its answer; the peer's invocations that arrive
    /// meanwhile are queued.
    pub async fn invoke(&mut self, operation: P3Operation) -> Result<P3Outcome, P3DriverError> {
        let id = self.assoc.invoke(operation)?;
        loop {
            if let Some(o) = self.outcomes.remove(&id) {
                return Ok(o);
            }
            self.pump_one().await?;
        }
    }

    /// Submits a message: its submission result, or the MTA's abstract error or reject.
    pub async fn submit(
        &mut self,
        argument: MessageSubmissionArgument,
    ) -> Result<P3Outcome, P3DriverError> {
        self.invoke(P3Operation::MessageSubmission(Box::new(argument)))
            .await
    }

    /// The next operation the peer invoked (a message or report delivery), waiting for one;
    /// answer it with [`P3Client::reply_result`] or [`P3Client::reply_error`].
    pub async fn next_invocation(&mut self) -> Result<(i64, P3Operation), P3DriverError> {
        loop {
            if let Some(inv) = self.invocations.pop_front() {
                return Ok(inv);
            }
            self.pump_one().await?;
        }
    }

    /// Answers the peer's invocation with a result.
    pub async fn reply_result(
        &mut self,
        invoke_id: i64,
        result: P3Result,
    ) -> Result<(), P3DriverError> {
        self.assoc.reply_result(invoke_id, result)?;
        Ok(self.flush().await?)
    }

    /// Answers the peer's invocation with an abstract error.
    pub async fn reply_error(
        &mut self,
        invoke_id: i64,
        error: P3Error,
    ) -> Result<(), P3DriverError> {
        self.assoc.reply_error(invoke_id, error)?;
        Ok(self.flush().await?)
    }

    /// Releases the association in order.
    pub async fn release(mut self) -> Result<(), P3DriverError> {
        self.assoc.release()?;
        loop {
            match self.next_event().await {
                Ok(P3Event::Released) | Ok(P3Event::Aborted { .. }) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = self.stream.shutdown().await;
        Ok(())
    }
}

#[cfg(test)]
mod p3_tests {
    use super::*;
    use crate::p3::testutil::{
        bind_argument, bind_result, delivery, submission, submission_result,
    };
    use crate::p3::types::RawValue;

    /// An MTA on loopback, driven by hand: accepts the bind, answers one submission, then
    /// delivers one message and waits for its result, then answers the release.
    async fn mta(listener: tokio::net::TcpListener) {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut a = P3Association::responder(P3Config::default()).expect("responder");
        let mut buf = vec![0; READ_CHUNK];
        loop {
            while let Some(b) = a.poll_transmit() {
                s.write_all(&b).await.expect("write");
            }
            while let Some(ev) = a.poll_event() {
                match ev {
                    P3Event::BindRequest { .. } => a.accept_bind(bind_result()).expect("accept"),
                    P3Event::Invoked { invoke_id, .. } => {
                        a.reply_result(invoke_id, P3Result::MessageSubmission(submission_result()))
                            .expect("reply");
                        a.invoke(P3Operation::MessageDelivery(Box::new(delivery())))
                            .expect("deliver");
                    }
                    P3Event::Released | P3Event::Aborted { .. } => {
                        while let Some(b) = a.poll_transmit() {
                            let _ = s.write_all(&b).await;
                        }
                        return;
                    }
                    _ => {}
                }
            }
            while let Some(b) = a.poll_transmit() {
                s.write_all(&b).await.expect("write");
            }
            let n = s.read(&mut buf).await.expect("read");
            if n == 0 {
                return;
            }
            let _ = a.handle_input(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn p3_client_submits_and_takes_a_delivery() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(mta(listener));
        let mut c = P3Client::connect(
            addr,
            P3Config::default(),
            bind_argument(),
            P3Context::Access88,
            Duration::from_secs(10),
        )
        .await
        .expect("connect");
        assert_eq!(c.bind_result(), &bind_result());
        let outcome = c.submit(submission()).await.expect("submit");
        assert_eq!(
            outcome,
            P3Outcome::Result(P3Result::MessageSubmission(submission_result()))
        );
        let (id, op) = c.next_invocation().await.expect("delivery");
        assert_eq!(op, P3Operation::MessageDelivery(Box::new(delivery())));
        c.reply_result(id, P3Result::MessageDelivery(RawValue::empty_set()))
            .await
            .expect("reply");
        c.release().await.expect("release");
        server.await.expect("server");
    }
}
