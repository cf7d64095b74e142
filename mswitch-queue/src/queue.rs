//! The queue's public face: opening, the shared state, and the `QueueStore` implementation.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::channel::oneshot;
use mswitch_core::envelope::codec;
use mswitch_core::store::{
    Content, EnqueueError, QueueStore, RecipientUpdate, Recovered, RecoveredPacked, StoreError,
};
use mswitch_core::{Envelope, QueueId};

use crate::fs::os::OsBackend;
use crate::fs::{Backend, LogFile};
use crate::index::Index;
use crate::record::{self, TYPE_OUTCOME, TYPE_REMOVE};
use crate::recovery::recover;
use crate::writer::{Op, Request, WriteFailure, Writer, message_request};

/// How a queue is set up.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The queue directory.
    pub dir: PathBuf,
    /// A new segment is started when the current one would grow past this.
    pub segment_size: u64,
    /// Enqueue is refused (452) when fewer octets than this are free.
    pub reserve: u64,
    /// Largest message accepted.
    pub max_message_size: u64,
    /// Most requests written and synced together.
    pub max_batch: usize,
    /// Longest the writer waits for more requests when fewer are waiting than in its last
    /// batch (zero: never wait). Keep it well below one fsync.
    pub commit_delay: Duration,
}

impl QueueConfig {
    /// Defaults for a queue in `dir`: 64 MiB segments, 100 MiB reserve, 100 MiB messages,
    /// batches of up to 4096 requests, 200 µs commit delay.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        QueueConfig {
            dir: dir.into(),
            segment_size: 64 << 20,
            reserve: 100 << 20,
            max_message_size: 100 << 20,
            max_batch: 4096,
            commit_delay: Duration::from_micros(200),
        }
    }
}

/// Why a queue could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process holds the queue directory.
    #[error("queue directory {dir} is in use by another process")]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// Reading or repairing the queue failed.
    #[error("cannot open queue {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// State shared by the queue handle and its writer thread.
pub(crate) struct Shared<B: Backend> {
    pub(crate) backend: B,
    pub(crate) config: QueueConfig,
    poisoned: Mutex<Option<String>>,
    pub(crate) index: Mutex<Index>,
    next_id: AtomicU64,
    recovered: Mutex<Option<RecoveredPacked>>,
    pub(crate) compactions: AtomicU64,
    /// fdatasyncs that succeeded.
    pub(crate) syncs: AtomicU64,
    /// Batches written.
    pub(crate) writes: AtomicU64,
    /// Read-only maps of segments, for content reads without copying.
    pub(crate) maps: Mutex<HashMap<u64, Arc<B::Map>>>,
    /// The last free-space reading: when, and how much.
    space: Mutex<Option<(Instant, u64)>>,
    /// Since when new mail is refused for want of space, and when that was last logged.
    low_space: Mutex<Option<(Instant, Instant)>>,
}

/// How often a continuing shortage of space is logged again.
const LOW_SPACE_LOG_EVERY: Duration = Duration::from_secs(60);

/// How long a free-space reading is trusted while space is plentiful.
const SPACE_READING_TTL: Duration = Duration::from_millis(100);
/// "Plentiful": at least this much beyond twice what is asked for (reserve and message).
const SPACE_MARGIN: u64 = 64 * 1024 * 1024;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Backend> Shared<B> {
    pub(crate) fn poisoned(&self) -> Option<String> {
        lock(&self.poisoned).clone()
    }

    pub(crate) fn poison(&self, reason: String) {
        tracing::error!(queue = %self.config.dir.display(), %reason, "queue poisoned: refusing writes");
        lock(&self.poisoned).get_or_insert(reason);
    }

    /// A map of segment `n` covering at least `end` octets (segments only grow, so a map too
    /// short for a newer record is replaced).
    fn map_segment(&self, n: u64, end: usize) -> Result<Arc<B::Map>, StoreError> {
        let mut maps = lock(&self.maps);
        if let Some(m) = maps.get(&n)
            && (**m).as_ref().len() >= end
        {
            return Ok(m.clone());
        }
        let map = self
            .backend
            .map(&self.segment_path(n))
            .map_err(|e| StoreError::Io(format!("cannot map segment {n}: {e}")))?;
        if map.as_ref().len() < end {
            return Err(StoreError::Corrupt(format!(
                "segment {n} is shorter than the index says ({} < {end})",
                map.as_ref().len()
            )));
        }
        let map = Arc::new(map);
        maps.insert(n, map.clone());
        Ok(map)
    }

    pub(crate) fn segment_path(&self, n: u64) -> PathBuf {
        segment_path(&self.config.dir, n)
    }
}

pub(crate) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.seg"))
}

/// A message's content as a slice of a mapped segment: no copy.
struct Mapped<M> {
    map: Arc<M>,
    start: usize,
    end: usize,
}

impl<M: AsRef<[u8]>> AsRef<[u8]> for Mapped<M> {
    fn as_ref(&self) -> &[u8] {
        // The range was checked against the map's length when this was built.
        (*self.map)
            .as_ref()
            .get(self.start..self.end)
            .unwrap_or_default()
    }
}

/// Counters describing a queue (for tests, metrics and management).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    /// Live messages.
    pub messages: usize,
    /// Octets of live records (messages and their outcome records).
    pub live_bytes: u64,
    /// Octets in segment files.
    pub disk_bytes: u64,
    /// Segment files.
    pub segments: usize,
    /// Segments compacted since the queue was opened.
    pub compactions: u64,
    /// Log fdatasyncs since the queue was opened (one per batch).
    pub syncs: u64,
    /// Batches written since the queue was opened.
    pub writes: u64,
}

/// The durable queue over a file-system backend ([`OsBackend`] by default).
pub struct DiskQueue<B: Backend = OsBackend> {
    shared: Arc<Shared<B>>,
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
    _lock: B::Lock,
}

impl DiskQueue<OsBackend> {
    /// Opens (creating if needed) a queue on the real file system.
    pub fn open(config: QueueConfig) -> Result<Self, OpenError> {
        DiskQueue::open_with(OsBackend, config)
    }
}

impl<B: Backend + Clone> DiskQueue<B> {
    /// Opens a queue over `backend`: locks the directory, recovers, starts the writer.
    pub fn open_with(backend: B, config: QueueConfig) -> Result<Self, OpenError> {
        let dir = config.dir.clone();
        let io_err = |source| OpenError::Io {
            dir: dir.clone(),
            source,
        };
        backend.create_dir_all(&dir).map_err(io_err)?;
        let dir_lock = backend.lock_dir(&dir).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                OpenError::Locked { dir: dir.clone() }
            } else {
                io_err(e)
            }
        })?;
        let scan = recover(&backend, &dir, true).map_err(io_err)?;
        for q in &scan.recovered.quarantined {
            tracing::warn!(queue = %dir.display(), location = %q.location, reason = %q.reason,
                "queue recovery quarantined damaged data");
        }
        // Continue in the last segment, or start the first.
        let (current, current_len, fresh) = match scan.last_segment {
            Some((n, len)) => (n, len, false),
            None => (1, 0, true),
        };
        let mut file = backend
            .open_append(&segment_path(&dir, current))
            .map_err(io_err)?;
        let mut current_len = current_len;
        let mut index = scan.index;
        if fresh {
            file.append(record::SEGMENT_MAGIC).map_err(io_err)?;
            file.sync_data().map_err(io_err)?;
            backend.sync_dir(&dir).map_err(io_err)?;
            current_len = record::SEGMENT_HEADER_LEN as u64;
            index.set_segment_len(current, current_len);
        }
        let shared = Arc::new(Shared {
            backend: backend.clone(),
            config,
            poisoned: Mutex::new(None),
            index: Mutex::new(index),
            // Identifiers never repeat, even after the queue was emptied (its files gone):
            // they continue from the highest recovered one or from the clock in microseconds,
            // whichever is larger, so a queue id in a log names one message only.
            next_id: AtomicU64::new((scan.max_id + 1).max(clock_micros())),
            recovered: Mutex::new(Some(scan.recovered)),
            compactions: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            maps: Mutex::new(HashMap::new()),
            space: Mutex::new(None),
            low_space: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = thread::Builder::new()
            .name("mswitch-queue-writer".into())
            .spawn(move || {
                let mut writer = Writer {
                    shared: writer_shared,
                    file,
                    segment: current,
                    len: current_len,
                    unsynced: false,
                    to_reclaim: Vec::new(),
                };
                // A queue left fragmented (by a crash, or by an older version) is compacted
                // before the first write.
                writer.compact();
                writer.run(rx)
            })
            .map_err(io_err)?;
        Ok(DiskQueue {
            shared,
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            _lock: dir_lock,
        })
    }
}

impl<B: Backend> DiskQueue<B> {
    /// As [`QueueStore::recover`], with the envelopes left packed: what the switch uses at
    /// start-up, so that a big queue is never held decoded all at once (see
    /// [`mswitch_core::envelope::PackedEnvelope`]).
    pub fn recover_packed(&self) -> Result<RecoveredPacked, StoreError> {
        if let Some(r) = lock(&self.shared.recovered).take() {
            return Ok(r);
        }
        recover(&self.shared.backend, &self.shared.config.dir, false)
            .map(|s| s.recovered)
            .map_err(|e| StoreError::Io(e.to_string()))
    }

    /// Stops the writer after the requests already sent; later writes fail with `Closed`.
    pub fn close(&self) {
        lock(&self.tx).take();
        if let Some(h) = lock(&self.writer).take() {
            let _ = h.join();
        }
    }

    /// Why the queue refuses writes, if it does.
    pub fn poisoned(&self) -> Option<String> {
        self.shared.poisoned()
    }

    /// Counters describing the queue now.
    pub fn stats(&self) -> QueueStats {
        let index = lock(&self.shared.index);
        QueueStats {
            messages: index.messages.len(),
            live_bytes: index.live_bytes(),
            disk_bytes: index.disk_bytes(),
            segments: index.segments(),
            compactions: self.shared.compactions.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            writes: self.shared.writes.load(Ordering::Relaxed),
        }
    }

    /// Number of live messages.
    pub fn len(&self) -> usize {
        lock(&self.shared.index).messages.len()
    }

    /// Whether no message is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn submit(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), WriteFailure>>) -> Request,
    ) -> Result<(), WriteFailure> {
        if let Some(reason) = self.shared.poisoned() {
            return Err(WriteFailure::Poisoned(reason));
        }
        let (done, wait) = oneshot::channel();
        let request = make(done);
        let sent = lock(&self.tx).as_ref().map(|tx| tx.send(request).is_ok());
        if sent != Some(true) {
            return Err(WriteFailure::Poisoned("queue is closed".into()));
        }
        wait.await
            .unwrap_or_else(|_| Err(WriteFailure::Poisoned("queue writer stopped".into())))
    }
}

impl<B: Backend> Drop for DiskQueue<B> {
    fn drop(&mut self) {
        self.close();
    }
}

fn failure_to_enqueue(f: WriteFailure) -> EnqueueError {
    match f {
        WriteFailure::Poisoned(reason) => EnqueueError::Poisoned { reason },
        WriteFailure::RolledBack(reason) => EnqueueError::Io(reason),
    }
}

fn failure_to_store(f: WriteFailure) -> StoreError {
    match f {
        WriteFailure::Poisoned(reason) => StoreError::Poisoned(reason),
        WriteFailure::RolledBack(reason) => StoreError::Io(reason),
    }
}

impl<B: Backend> DiskQueue<B> {
    /// Free space on the queue's file system. A `statfs` per message (SMTP asks at MAIL FROM and
    /// again at enqueue) is measurable at thousands of messages per second, so a reading is
    /// reused for [`SPACE_READING_TTL`], but only while it is far above `needed`: near the
    /// reserve every check reads afresh.
    fn available_space(&self, needed: u64) -> Result<u64, EnqueueError> {
        let mut last = lock(&self.shared.space);
        if let Some((at, available)) = *last
            && at.elapsed() < SPACE_READING_TTL
            && available >= needed.saturating_mul(2).saturating_add(SPACE_MARGIN)
        {
            return Ok(available);
        }
        let available = self
            .shared
            .backend
            .available_space(&self.shared.config.dir)
            .map_err(|e| EnqueueError::Io(e.to_string()))?;
        *last = Some((Instant::now(), available));
        Ok(available)
    }
}

#[async_trait]
impl<B: Backend + Clone> QueueStore for DiskQueue<B> {
    fn admission(&self, size_hint: Option<u64>) -> Result<(), EnqueueError> {
        if let Some(reason) = self.shared.poisoned() {
            return Err(EnqueueError::Poisoned { reason });
        }
        let cfg = &self.shared.config;
        if let Some(size) = size_hint
            && size > cfg.max_message_size
        {
            return Err(EnqueueError::TooLarge {
                size,
                limit: cfg.max_message_size,
            });
        }
        let needed = cfg.reserve.saturating_add(size_hint.unwrap_or(0));
        let available = self.available_space(needed)?;
        // The shortage is logged when it starts, every minute while it lasts, and when it
        // ends (a message too large for the space left does not start one).
        let mut low = lock(&self.shared.low_space);
        let now = Instant::now();
        if available < cfg.reserve {
            match &mut *low {
                Some((_, logged)) if now.duration_since(*logged) < LOW_SPACE_LOG_EVERY => {}
                Some((since, logged)) => {
                    *logged = now;
                    tracing::warn!(queue = %cfg.dir.display(), available, reserve = cfg.reserve,
                        for_seconds = now.duration_since(*since).as_secs(),
                        "queue file system still below its free-space reserve: refusing new mail");
                }
                None => {
                    *low = Some((now, now));
                    tracing::warn!(queue = %cfg.dir.display(), available, reserve = cfg.reserve,
                        "queue file system below its free-space reserve: refusing new mail \
                         (452 4.3.1) until space returns");
                }
            }
        } else if let Some((since, _)) = low.take() {
            tracing::info!(queue = %cfg.dir.display(), available, reserve = cfg.reserve,
                after_seconds = now.duration_since(since).as_secs(),
                "queue file system has space again: accepting mail");
        }
        drop(low);
        if available < needed {
            return Err(EnqueueError::InsufficientSpace {
                available,
                reserve: cfg.reserve,
            });
        }
        Ok(())
    }

    async fn enqueue(&self, envelope: &Envelope, content: &[u8]) -> Result<QueueId, EnqueueError> {
        self.admission(Some(content.len() as u64))?;
        let size = content.len() as u64;
        if content.len() + 64 * 1024 > record::MAX_RECORD_LEN {
            return Err(EnqueueError::TooLarge {
                size,
                limit: (record::MAX_RECORD_LEN - 64 * 1024) as u64,
            });
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        self.submit(|done| message_request(id, envelope, content, Some(done)))
            .await
            .map_err(failure_to_enqueue)?;
        Ok(QueueId(id))
    }

    async fn record(&self, id: QueueId, updates: &[RecipientUpdate]) -> Result<(), StoreError> {
        if !lock(&self.shared.index).messages.contains_key(&id.0) {
            return Err(StoreError::UnknownMessage(id));
        }
        let mut payload = id.0.to_le_bytes().to_vec();
        let mut state = Vec::new();
        for u in updates {
            state.clear();
            codec::encode_recipient_state(&u.state, &mut state);
            let index = u32::try_from(u.index)
                .map_err(|_| StoreError::UnknownRecipient { id, index: u.index })?;
            payload.extend_from_slice(&index.to_le_bytes());
            payload.extend_from_slice(&(state.len() as u32).to_le_bytes());
            payload.extend_from_slice(&state);
        }
        let mut bytes = Vec::new();
        record::frame(&mut bytes, TYPE_OUTCOME, &[&payload]);
        self.submit(|done| Request {
            bytes,
            op: Op::Outcome { id: id.0 },
            done: Some(done),
        })
        .await
        .map_err(failure_to_store)
    }

    async fn remove(&self, id: QueueId) -> Result<(), StoreError> {
        if !lock(&self.shared.index).messages.contains_key(&id.0) {
            return Err(StoreError::UnknownMessage(id));
        }
        let mut bytes = Vec::new();
        record::frame(&mut bytes, TYPE_REMOVE, &[&id.0.to_le_bytes()]);
        self.submit(|done| Request {
            bytes,
            op: Op::Remove { id: id.0 },
            done: Some(done),
        })
        .await
        .map_err(failure_to_store)
    }

    async fn content(&self, id: QueueId) -> Result<Content, StoreError> {
        // The index stays locked until the segment is mapped: the writer deletes a segment
        // only after taking it out of the index under this lock (compaction may be moving this
        // very message), and a map, once made, outlives the file's deletion.
        let index = lock(&self.shared.index);
        let loc = index
            .messages
            .get(&id.0)
            .ok_or(StoreError::UnknownMessage(id))?;
        let start = usize::try_from(loc.content_offset())
            .map_err(|_| StoreError::Corrupt("content offset out of range".into()))?;
        let end = start + loc.content_len as usize;
        let map = self.shared.map_segment(loc.message.segment, end)?;
        drop(index);
        Ok(Content::new(Mapped { map, start, end }))
    }

    async fn recover(&self) -> Result<Recovered, StoreError> {
        self.recover_packed().map(RecoveredPacked::unpack)
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
fn clock_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
