//! The queue: index, writer thread (group commit), recovery.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

use async_trait::async_trait;
use futures::channel::oneshot;
use mswitch_core::envelope::codec;
use mswitch_core::store::{
    Content, EnqueueError, Quarantined, QueueStore, RecipientUpdate, Recovered, StoreError,
    StoredMessage,
};
use mswitch_core::{Envelope, QueueId};

use crate::fs::os::OsBackend;
use crate::fs::{Backend, LogFile};
use crate::record::{self, TYPE_MESSAGE, TYPE_OUTCOME, TYPE_REMOVE};

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
}

impl QueueConfig {
    /// Defaults for a queue in `dir`: 64 MiB segments, 100 MiB reserve, 100 MiB messages.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        QueueConfig {
            dir: dir.into(),
            segment_size: 64 << 20,
            reserve: 100 << 20,
            max_message_size: 100 << 20,
            max_batch: 4096,
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

#[derive(Debug, Clone)]
struct Loc {
    /// Segment of the message record (content lives there).
    segment: u64,
    content_offset: u64,
    content_len: usize,
    /// Segments holding records of this message (message and outcomes).
    segments: Vec<u64>,
}

#[derive(Debug, Default)]
struct Index {
    messages: HashMap<u64, Loc>,
    /// Live records per segment.
    pins: BTreeMap<u64, u64>,
}

impl Index {
    fn pin(&mut self, id: u64, segment: u64) {
        if let Some(loc) = self.messages.get_mut(&id)
            && !loc.segments.contains(&segment)
        {
            loc.segments.push(segment);
            *self.pins.entry(segment).or_default() += 1;
        }
    }

    fn insert(&mut self, id: u64, loc: Loc) {
        let segs = loc.segments.clone();
        if let Some(old) = self.messages.insert(id, loc) {
            self.unpin_all(&old.segments);
        }
        for s in segs {
            *self.pins.entry(s).or_default() += 1;
        }
    }

    fn remove(&mut self, id: u64) {
        if let Some(old) = self.messages.remove(&id) {
            self.unpin_all(&old.segments);
        }
    }

    fn unpin_all(&mut self, segs: &[u64]) {
        for s in segs {
            if let Some(n) = self.pins.get_mut(s) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

enum Op {
    Message {
        id: u64,
        content_at: usize,
        content_len: usize,
    },
    Outcome {
        id: u64,
    },
    Remove {
        id: u64,
    },
}

struct Request {
    bytes: Vec<u8>,
    op: Op,
    done: oneshot::Sender<Result<(), WriteFailure>>,
}

#[derive(Debug, Clone)]
enum WriteFailure {
    Poisoned(String),
    /// The write failed and was rolled back; the queue is still usable.
    RolledBack(String),
}

struct Shared<B: Backend> {
    backend: B,
    config: QueueConfig,
    poisoned: Mutex<Option<String>>,
    index: Mutex<Index>,
    next_id: AtomicU64,
    recovered: Mutex<Option<Recovered>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B: Backend> Shared<B> {
    fn poisoned(&self) -> Option<String> {
        lock(&self.poisoned).clone()
    }

    fn poison(&self, reason: String) {
        tracing::error!(queue = %self.config.dir.display(), %reason, "queue poisoned: refusing writes");
        lock(&self.poisoned).get_or_insert(reason);
    }

    fn segment_path(&self, n: u64) -> PathBuf {
        segment_path(&self.config.dir, n)
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016x}.seg"))
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
        if fresh {
            file.append(record::SEGMENT_MAGIC).map_err(io_err)?;
            file.sync_data().map_err(io_err)?;
            backend.sync_dir(&dir).map_err(io_err)?;
            current_len = record::SEGMENT_HEADER_LEN as u64;
        }
        let shared = Arc::new(Shared {
            backend: backend.clone(),
            config,
            poisoned: Mutex::new(None),
            index: Mutex::new(scan.index),
            next_id: AtomicU64::new(scan.max_id + 1),
            recovered: Mutex::new(Some(scan.recovered)),
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let writer = thread::Builder::new()
            .name("mswitch-queue-writer".into())
            .spawn(move || {
                Writer {
                    shared: writer_shared,
                    file,
                    segment: current,
                    len: current_len,
                }
                .run(rx)
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

    /// Number of live messages.
    pub fn len(&self) -> usize {
        lock(&self.shared.index).messages.len()
    }

    /// Whether no message is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn submit(&self, bytes: Vec<u8>, op: Op) -> Result<(), WriteFailure> {
        if let Some(reason) = self.shared.poisoned() {
            return Err(WriteFailure::Poisoned(reason));
        }
        let (done, wait) = oneshot::channel();
        let sent = lock(&self.tx)
            .as_ref()
            .map(|tx| tx.send(Request { bytes, op, done }).is_ok());
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

struct Writer<B: Backend> {
    shared: Arc<Shared<B>>,
    file: B::File,
    segment: u64,
    len: u64,
}

impl<B: Backend> Writer<B> {
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let max_batch = self.shared.config.max_batch.max(1);
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let result = self.write_batch(&batch);
            for r in batch {
                let _ = r.done.send(result.clone());
            }
        }
    }

    fn write_batch(&mut self, batch: &[Request]) -> Result<(), WriteFailure> {
        if let Some(reason) = self.shared.poisoned() {
            return Err(WriteFailure::Poisoned(reason));
        }
        let total: u64 = batch.iter().map(|r| r.bytes.len() as u64).sum();
        let mut new_segment = false;
        if self.len > record::SEGMENT_HEADER_LEN as u64
            && self.len + total > self.shared.config.segment_size
        {
            self.start_segment()?;
            new_segment = true;
        }
        let start = self.len;
        let mut buf = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        let mut offsets = Vec::with_capacity(batch.len());
        for r in batch {
            offsets.push(start + buf.len() as u64);
            buf.extend_from_slice(&r.bytes);
        }
        if let Err(e) = self.file.append(&buf) {
            // Roll back a partial write so the segment ends on a record boundary.
            let path = self.shared.segment_path(self.segment);
            return match self.shared.backend.truncate(&path, start) {
                Ok(()) => Err(WriteFailure::RolledBack(e.to_string())),
                Err(t) => {
                    let reason = format!("write failed ({e}) and rollback failed ({t})");
                    self.shared.poison(reason.clone());
                    Err(WriteFailure::Poisoned(reason))
                }
            };
        }
        if let Err(e) = self.file.sync_data() {
            let reason = format!("fdatasync of segment {} failed: {e}", self.segment);
            self.shared.poison(reason.clone());
            return Err(WriteFailure::Poisoned(reason));
        }
        if new_segment && let Err(e) = self.shared.backend.sync_dir(&self.shared.config.dir) {
            let reason = format!("directory sync failed: {e}");
            self.shared.poison(reason.clone());
            return Err(WriteFailure::Poisoned(reason));
        }
        self.len = start + total;
        let mut index = lock(&self.shared.index);
        for (r, &at) in batch.iter().zip(&offsets) {
            match r.op {
                Op::Message {
                    id,
                    content_at,
                    content_len,
                } => index.insert(
                    id,
                    Loc {
                        segment: self.segment,
                        content_offset: at + content_at as u64,
                        content_len,
                        segments: vec![self.segment],
                    },
                ),
                Op::Outcome { id } => index.pin(id, self.segment),
                Op::Remove { id } => index.remove(id),
            }
        }
        let reclaimable: Vec<u64> = index
            .pins
            .iter()
            .take_while(|&(&s, &n)| n == 0 && s < self.segment)
            .map(|(&s, _)| s)
            .collect();
        for s in &reclaimable {
            index.pins.remove(s);
        }
        drop(index);
        self.reclaim(&reclaimable);
        Ok(())
    }

    fn start_segment(&mut self) -> Result<(), WriteFailure> {
        let next = self.segment + 1;
        let path = self.shared.segment_path(next);
        let opened = self
            .shared
            .backend
            .open_append(&path)
            .and_then(|mut f| f.append(record::SEGMENT_MAGIC).map(|()| f));
        match opened {
            Ok(f) => {
                self.file = f;
                self.segment = next;
                self.len = record::SEGMENT_HEADER_LEN as u64;
                lock(&self.shared.index).pins.entry(next).or_default();
                Ok(())
            }
            Err(e) => Err(WriteFailure::RolledBack(format!(
                "cannot start segment {next}: {e}"
            ))),
        }
    }

    /// Deletes segments that hold nothing live, oldest first (a REMOVE record must outlive the
    /// records it cancels, so only a prefix of the log is ever deleted).
    fn reclaim(&self, segments: &[u64]) {
        if segments.is_empty() {
            return;
        }
        for &s in segments {
            if let Err(e) = self.shared.backend.remove(&self.shared.segment_path(s)) {
                tracing::warn!(segment = s, error = %e, "cannot delete reclaimed segment");
            }
        }
        if let Err(e) = self.shared.backend.sync_dir(&self.shared.config.dir) {
            self.shared.poison(format!("directory sync failed: {e}"));
        }
    }
}

struct Scan {
    index: Index,
    recovered: Recovered,
    max_id: u64,
    last_segment: Option<(u64, u64)>,
}

/// Reads every segment in order and rebuilds the queue. With `repair`, a torn tail is
/// truncated away and damaged records are copied to `quarantine/`.
fn recover<B: Backend>(backend: &B, dir: &Path, repair: bool) -> io::Result<Scan> {
    let mut segments: Vec<u64> = backend
        .list(dir)?
        .iter()
        .filter_map(|n| n.strip_suffix(".seg"))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .collect();
    segments.sort_unstable();
    let mut envelopes: BTreeMap<u64, Envelope> = BTreeMap::new();
    let mut index = Index::default();
    let mut quarantined = Vec::new();
    let mut max_id = 0;
    let mut last_segment = None;
    for (i, &seg) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let path = segment_path(dir, seg);
        let buf = backend.read(&path)?;
        index.pins.entry(seg).or_default();
        if buf.get(..record::SEGMENT_HEADER_LEN) != Some(&record::SEGMENT_MAGIC[..]) {
            if is_last && buf.len() < record::SEGMENT_HEADER_LEN {
                // Created, but the crash came before its header was durable.
                if repair {
                    backend.truncate(&path, 0)?;
                    let mut f = backend.open_append(&path)?;
                    f.append(record::SEGMENT_MAGIC)?;
                    f.sync_data()?;
                }
                last_segment = Some((seg, record::SEGMENT_HEADER_LEN as u64));
                continue;
            }
            quarantined.push(quarantine(
                backend,
                dir,
                seg,
                0,
                &buf,
                repair,
                "bad segment header",
            )?);
            continue;
        }
        let mut pos = record::SEGMENT_HEADER_LEN;
        while pos < buf.len() {
            match record::read_at(&buf, pos) {
                Some((rec, next)) => {
                    if let Err(reason) = apply(&rec, seg, &mut envelopes, &mut index, &mut max_id) {
                        quarantined.push(quarantine(
                            backend,
                            dir,
                            seg,
                            pos,
                            &buf[pos..next],
                            repair,
                            reason,
                        )?);
                    }
                    pos = next;
                }
                None => match record::resync(&buf, pos) {
                    Some(next) => {
                        quarantined.push(quarantine(
                            backend,
                            dir,
                            seg,
                            pos,
                            &buf[pos..next],
                            repair,
                            "damaged record (checksum or length)",
                        )?);
                        pos = next;
                    }
                    None if is_last => {
                        // A torn tail: the last write before a crash. Nothing in it was
                        // acknowledged, so it is dropped.
                        tracing::info!(
                            segment = seg,
                            offset = pos,
                            octets = buf.len() - pos,
                            "queue recovery dropped a torn tail"
                        );
                        if repair {
                            backend.truncate(&path, pos as u64)?;
                        }
                        break;
                    }
                    None => {
                        quarantined.push(quarantine(
                            backend,
                            dir,
                            seg,
                            pos,
                            &buf[pos..],
                            repair,
                            "damaged data up to the end of a segment",
                        )?);
                        pos = buf.len();
                    }
                },
            }
        }
        if is_last {
            last_segment = Some((seg, pos.min(buf.len()) as u64));
        }
    }
    let messages = envelopes
        .into_iter()
        .map(|(id, envelope)| StoredMessage {
            id: QueueId(id),
            envelope,
        })
        .collect();
    Ok(Scan {
        index,
        recovered: Recovered {
            messages,
            quarantined,
        },
        max_id,
        last_segment,
    })
}

fn apply(
    rec: &record::RawRecord<'_>,
    seg: u64,
    envelopes: &mut BTreeMap<u64, Envelope>,
    index: &mut Index,
    max_id: &mut u64,
) -> Result<(), &'static str> {
    let p = rec.payload;
    let id = record::u64_at(p, 0).ok_or("record too short for an id")?;
    match rec.kind {
        TYPE_MESSAGE => {
            let env_len = record::u32_at(p, 8).ok_or("message record too short")? as usize;
            let env_bytes = p
                .get(12..12 + env_len)
                .ok_or("envelope length out of range")?;
            let envelope = codec::decode(env_bytes).map_err(|_| "envelope does not decode")?;
            let content_start = 12 + env_len;
            *max_id = (*max_id).max(id);
            envelopes.insert(id, envelope);
            index.insert(
                id,
                Loc {
                    segment: seg,
                    content_offset: (rec.payload_offset + content_start) as u64,
                    content_len: p.len() - content_start,
                    segments: vec![seg],
                },
            );
        }
        TYPE_OUTCOME => {
            let Some(env) = envelopes.get_mut(&id) else {
                return Ok(()); // outcome of a message already removed
            };
            let mut updates = Vec::new();
            let mut at = 8;
            while at < p.len() {
                let i = record::u32_at(p, at).ok_or("outcome truncated")? as usize;
                let n = record::u32_at(p, at + 4).ok_or("outcome truncated")? as usize;
                let bytes = p
                    .get(at + 8..at + 8 + n)
                    .ok_or("outcome state out of range")?;
                let state = codec::decode_recipient_state(bytes)
                    .map_err(|_| "outcome state does not decode")?;
                if i >= env.recipients.len() {
                    return Err("outcome for a recipient the message does not have");
                }
                updates.push((i, state));
                at += 8 + n;
            }
            for (i, state) in updates {
                env.recipients[i].state = state;
            }
            index.pin(id, seg);
        }
        TYPE_REMOVE => {
            envelopes.remove(&id);
            index.remove(id);
        }
        _ => return Err("unknown record type"),
    }
    Ok(())
}

fn quarantine<B: Backend>(
    backend: &B,
    dir: &Path,
    seg: u64,
    offset: usize,
    bytes: &[u8],
    repair: bool,
    reason: &str,
) -> io::Result<Quarantined> {
    let location = format!(
        "segment {} offset {offset} ({} octets)",
        segment_path(dir, seg).display(),
        bytes.len()
    );
    if repair {
        let qdir = dir.join("quarantine");
        backend.create_dir_all(&qdir)?;
        let path = qdir.join(format!("{seg:016x}-{offset:010}.bin"));
        if backend.read(&path).is_err() {
            let mut f = backend.open_append(&path)?;
            f.append(bytes)?;
            f.sync_data()?;
            backend.sync_dir(&qdir)?;
        }
    }
    Ok(Quarantined {
        location,
        reason: reason.to_owned(),
    })
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
        let available = self
            .shared
            .backend
            .available_space(&cfg.dir)
            .map_err(|e| EnqueueError::Io(e.to_string()))?;
        if available < cfg.reserve.saturating_add(size_hint.unwrap_or(0)) {
            return Err(EnqueueError::InsufficientSpace {
                available,
                reserve: cfg.reserve,
            });
        }
        Ok(())
    }

    async fn enqueue(&self, envelope: &Envelope, content: &[u8]) -> Result<QueueId, EnqueueError> {
        self.admission(Some(content.len() as u64))?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let env = codec::encode(envelope);
        let env_len = u32::try_from(env.len()).map_err(|_| EnqueueError::TooLarge {
            size: env.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        let mut bytes = Vec::with_capacity(record::FRAME_LEN + 13 + env.len() + content.len());
        record::frame(
            &mut bytes,
            TYPE_MESSAGE,
            &[&id.to_le_bytes(), &env_len.to_le_bytes(), &env, content],
        );
        let content_at = record::FRAME_LEN + 1 + 12 + env.len();
        self.submit(
            bytes,
            Op::Message {
                id,
                content_at,
                content_len: content.len(),
            },
        )
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
        self.submit(bytes, Op::Outcome { id: id.0 })
            .await
            .map_err(failure_to_store)
    }

    async fn remove(&self, id: QueueId) -> Result<(), StoreError> {
        if !lock(&self.shared.index).messages.contains_key(&id.0) {
            return Err(StoreError::UnknownMessage(id));
        }
        let mut bytes = Vec::new();
        record::frame(&mut bytes, TYPE_REMOVE, &[&id.0.to_le_bytes()]);
        self.submit(bytes, Op::Remove { id: id.0 })
            .await
            .map_err(failure_to_store)
    }

    async fn content(&self, id: QueueId) -> Result<Content, StoreError> {
        let loc = lock(&self.shared.index)
            .messages
            .get(&id.0)
            .cloned()
            .ok_or(StoreError::UnknownMessage(id))?;
        let bytes = self
            .shared
            .backend
            .read_at(
                &self.shared.segment_path(loc.segment),
                loc.content_offset,
                loc.content_len,
            )
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Content::from(bytes))
    }

    async fn recover(&self) -> Result<Recovered, StoreError> {
        if let Some(r) = lock(&self.shared.recovered).take() {
            return Ok(r);
        }
        recover(&self.shared.backend, &self.shared.config.dir, false)
            .map(|s| s.recovered)
            .map_err(|e| StoreError::Io(e.to_string()))
    }
}
