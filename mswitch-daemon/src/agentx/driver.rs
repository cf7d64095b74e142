//! The tokio side of the subagent: connect to the master, drive a [`Session`] (read,
//! `handle_input`, answer, write, sleep until `poll_timeout`), and when the session ends for
//! any reason but our stopping, connect again after a backoff that doubles from
//! [`FIRST_BACKOFF`] to [`MAX_BACKOFF`] (back to the first after a session that registered).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::Endpoint;
use super::mib::{MibView, Snapshot};
use super::pdu::{CloseReason, res_error};
use super::session::{Event, Session, SessionConfig};

/// The wait before the first reconnection.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write to the master may take before the session is given up.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one snapshot answers requests: a walk (one GetNext per object) reads the switch's
/// figures a few times a second at most.
pub const VIEW_TTL: Duration = Duration::from_millis(500);

/// Reads the figures served.
pub type SnapshotSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;

/// How a session ended.
enum Ended {
    /// We were told to stop.
    Stopped,
    /// The master went away or the session failed; `registered`: it had been serving.
    Lost { why: String, registered: bool },
}

/// Keeps a session with the master at `endpoint` until `stop` turns true.
pub async fn run(
    endpoint: Endpoint,
    config: SessionConfig,
    snapshot: SnapshotSource,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *stop.borrow() {
            return;
        }
        let connected = tokio::select! {
            c = connect(&endpoint) => c,
            _ = stop.wait_for(|s| *s) => return,
        };
        let why = match connected {
            Ok(Stream::Tcp(s)) => {
                let _ = s.set_nodelay(true);
                serve(s, &endpoint, &config, &snapshot, &mut stop).await
            }
            Ok(Stream::Unix(s)) => serve(s, &endpoint, &config, &snapshot, &mut stop).await,
            Err(e) => Ended::Lost {
                why: format!("cannot connect: {e}"),
                registered: false,
            },
        };
        match why {
            Ended::Stopped => return,
            Ended::Lost { why, registered } => {
                if registered {
                    backoff = FIRST_BACKOFF;
                }
                tracing::warn!(master = %endpoint, reason = %why, retry_in = ?backoff,
                    "agentx: no session with the master agent; reconnecting");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn connect(endpoint: &Endpoint) -> std::io::Result<Stream> {
    let attempt = async {
        match endpoint {
            Endpoint::Tcp(a) => tokio::net::TcpStream::connect(a).await.map(Stream::Tcp),
            Endpoint::Unix(p) => tokio::net::UnixStream::connect(p).await.map(Stream::Unix),
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connection attempt timed out",
            ))
        })
}

/// One session on one connection.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    endpoint: &Endpoint,
    config: &SessionConfig,
    snapshot: &SnapshotSource,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut session = Session::new(config.clone(), Instant::now());
    let mut registered = false;
    let mut view: Option<(Instant, MibView)> = None;
    let mut buf = vec![0u8; 8192];
    let lost = |why: String, registered: bool| Ended::Lost { why, registered };
    loop {
        if let Some(out) = session.poll_transmit() {
            match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return lost(format!("write: {e}"), registered),
                Err(_) => return lost("write: timed out".into(), registered),
            }
        }
        while let Some(e) = session.poll_event() {
            if matches!(e, Event::Ready { registered: n } if n > 0) {
                registered = true;
            }
            log(endpoint, session.session_id(), &e);
        }
        if session.is_closed() {
            return lost("session closed".into(), registered);
        }
        let deadline = session.poll_timeout();
        let stopping = tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) => return lost("the master closed the connection".into(), registered),
                Ok(n) => {
                    session.handle_input(&buf[..n], Instant::now());
                    false
                }
                Err(e) => return lost(format!("read: {e}"), registered),
            },
            () = sleep_until(deadline) => {
                session.handle_timeout(Instant::now());
                false
            }
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            session.close(CloseReason::SHUTDOWN);
            if let Some(out) = session.poll_transmit() {
                let _ = tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&out)).await;
            }
            let _ = tokio::time::timeout(WRITE_TIMEOUT, wr.shutdown()).await;
            tracing::info!(master = %endpoint, "agentx: session closed (shutdown)");
            return Ended::Stopped;
        }
        if session.has_requests() {
            let now = Instant::now();
            let fresh = view
                .as_ref()
                .is_some_and(|(at, _)| now.saturating_duration_since(*at) < VIEW_TTL);
            if !fresh {
                view = Some((now, MibView::new(&snapshot(), session.master_uptime(now))));
            }
            if let Some((_, v)) = &view {
                session.answer(v);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn log(endpoint: &Endpoint, session_id: u32, event: &Event) {
    match event {
        Event::Opened { session_id } => {
            tracing::debug!(master = %endpoint, session_id, "agentx: session open");
        }
        Event::OpenRefused { error } => {
            tracing::warn!(master = %endpoint, error = res_error::name(*error),
                "agentx: the master agent refused to open a session");
        }
        Event::Registered(r) => {
            tracing::debug!(master = %endpoint, session_id, subtree = %r, "agentx: registered");
        }
        Event::RegistrationRefused {
            registration,
            error,
        } => {
            tracing::warn!(master = %endpoint, session_id, subtree = %registration,
                error = res_error::name(*error), "agentx: registration refused");
        }
        Event::Ready { registered } => {
            tracing::info!(master = %endpoint, session_id, registrations = registered,
                "agentx: registered with the master agent");
        }
        Event::ClosedByMaster(reason) => {
            tracing::warn!(master = %endpoint, session_id, reason = %reason,
                "agentx: the master agent closed the session");
        }
        Event::Closed(reason) => {
            tracing::debug!(master = %endpoint, session_id, reason = %reason,
                "agentx: closing the session");
        }
        Event::Malformed(e) => {
            tracing::warn!(master = %endpoint, session_id, error = %e,
                "agentx: malformed PDU from the master agent");
        }
        Event::TimedOut => {
            tracing::warn!(master = %endpoint, session_id,
                "agentx: the master agent did not answer in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;
    use crate::agentx::mib::{MtaFigures, Snapshot};
    use crate::agentx::pdu::{Message, Oid, Packet, Pdu, Response, SearchRange, Value, frame_len};
    use crate::agentx::session::Registration;

    fn config() -> SessionConfig {
        SessionConfig {
            id: Oid::null(),
            description: "test".into(),
            timeout: 0,
            registrations: vec![Registration {
                subtree: "1.3.6.1.2.1.28".parse().expect("oid"),
                range: None,
                priority: 127,
            }],
        }
    }

    /// Reads one PDU from a connection.
    async fn read_pdu<S: AsyncRead + Unpin>(s: &mut S) -> Option<Message> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            if let Ok(Some(n)) = frame_len(&buf)
                && buf.len() >= n
            {
                let p = Packet::new_checked(&buf[..n]).expect("checked");
                return Some(Message::parse(&p).expect("parses"));
            }
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn reply(to: &Message, session_id: u32) -> Vec<u8> {
        Message::new(
            session_id,
            to.transaction_id,
            to.packet_id,
            Pdu::Response(Response {
                sys_uptime: 500,
                error: 0,
                index: 0,
                varbinds: Vec::new(),
            }),
        )
        .to_bytes()
    }

    /// A master that opens session `id`, accepts the registration, asks one Get and returns
    /// the answer's first value.
    async fn one_session(listener: &TcpListener, id: u32) -> Value {
        let (s, _) = listener.accept().await.expect("accept");
        session_on(s, id).await
    }

    async fn session_on<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, id: u32) -> Value {
        let open = read_pdu(&mut s).await.expect("open");
        assert!(matches!(open.pdu, Pdu::Open(_)));
        s.write_all(&reply(&open, id)).await.expect("write");
        let reg = read_pdu(&mut s).await.expect("register");
        assert_eq!(reg.session_id, id);
        s.write_all(&reply(&reg, id)).await.expect("write");
        let get = Message::new(
            id,
            1,
            99,
            Pdu::Get(vec![SearchRange {
                start: "1.3.6.1.2.1.28.1.1.1.1".parse().expect("oid"),
                include: false,
                end: Oid::null(),
            }]),
        );
        s.write_all(&get.to_bytes()).await.expect("write");
        let answer = read_pdu(&mut s).await.expect("answer");
        assert_eq!((answer.session_id, answer.packet_id), (id, 99));
        match answer.pdu {
            Pdu::Response(r) => r.varbinds[0].value.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn it_serves_reconnects_after_the_master_goes_away_and_closes_on_stop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = Endpoint::Tcp(listener.local_addr().expect("address"));
        let (tx, rx) = watch::channel(false);
        let snapshot: SnapshotSource = Arc::new(|| Snapshot {
            mta: MtaFigures {
                received_messages: 7,
                ..MtaFigures::default()
            },
            ..Snapshot::default()
        });
        let task = tokio::spawn(run(endpoint, config(), snapshot, rx));
        let limit = Duration::from_secs(20);
        let first = tokio::time::timeout(limit, one_session(&listener, 11))
            .await
            .expect("first session in time");
        assert_eq!(first, Value::Counter32(7));
        // The master goes away (the connection is dropped at the end of one_session); the
        // subagent comes back after FIRST_BACKOFF and registers again.
        let started = Instant::now();
        let second = tokio::time::timeout(limit, one_session(&listener, 12))
            .await
            .expect("second session in time");
        assert_eq!(second, Value::Counter32(7));
        assert!(started.elapsed() >= FIRST_BACKOFF - Duration::from_millis(100));
        // Stop: the subagent sends a Close (reasonShutdown) and ends.
        let (mut s, _) = tokio::time::timeout(limit, listener.accept())
            .await
            .expect("third connection")
            .expect("accept");
        let open = read_pdu(&mut s).await.expect("open");
        s.write_all(&reply(&open, 13)).await.expect("write");
        let reg = read_pdu(&mut s).await.expect("register");
        s.write_all(&reply(&reg, 13)).await.expect("write");
        tx.send(true).expect("stop");
        let close = read_pdu(&mut s).await.expect("close");
        assert_eq!(close.pdu, Pdu::Close(CloseReason::SHUTDOWN));
        assert_eq!(close.session_id, 13);
        tokio::time::timeout(limit, task)
            .await
            .expect("stopped in time")
            .expect("no panic");
    }

    #[tokio::test]
    async fn it_serves_over_a_unix_socket() {
        let dir = std::env::temp_dir().join(format!("mswitch-agentx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let path = dir.join("master");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run(
            Endpoint::Unix(path.clone()),
            config(),
            Arc::new(Snapshot::default),
            rx,
        ));
        let limit = Duration::from_secs(20);
        let (s, _) = tokio::time::timeout(limit, listener.accept())
            .await
            .expect("connects")
            .expect("accept");
        assert_eq!(session_on(s, 3).await, Value::Counter32(0));
        tx.send(true).expect("stop");
        tokio::time::timeout(limit, task)
            .await
            .expect("stopped in time")
            .expect("no panic");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn garbage_from_the_master_ends_the_session_not_the_task() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = Endpoint::Tcp(listener.local_addr().expect("address"));
        let (tx, rx) = watch::channel(false);
        let task = tokio::spawn(run(endpoint, config(), Arc::new(Snapshot::default), rx));
        let limit = Duration::from_secs(20);
        let (mut s, _) = tokio::time::timeout(limit, listener.accept())
            .await
            .expect("connects")
            .expect("accept");
        let _open = read_pdu(&mut s).await.expect("open");
        // Not AgentX: version 0x47 ('G' of "GET / HTTP/1.1").
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        // No session was open, so the subagent just hangs up.
        assert!(read_pdu(&mut s).await.is_none());
        // And tries again.
        let again = tokio::time::timeout(limit, one_session(&listener, 5))
            .await
            .expect("reconnected in time");
        assert_eq!(again, Value::Counter32(0));
        tx.send(true).expect("stop");
        tokio::time::timeout(limit, task)
            .await
            .expect("stopped in time")
            .expect("no panic");
    }
}
