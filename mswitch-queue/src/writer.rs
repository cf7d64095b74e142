//! The writer thread: group commit, segment roll-over, reclaiming and compaction.
//!
//! It is the only code that appends to the log. It takes every request waiting when it becomes
//! free, writes them with one `write`, makes them durable with one `fdatasync`, updates the
//! index, and only then completes them.
//!
//! Outcome and REMOVE records are the exception: losing one in a crash can only make a message
//! be delivered again (a duplicate), never lost, so they do not cost a sync of their own. A
//! batch of nothing else is written and completed without `fdatasync`; the next sync covers it
//! (the next MESSAGE, a segment roll-over, or at the latest [`LAZY_SYNC`] later). Segments are
//! deleted only once the REMOVE records that free them are durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use mswitch_core::envelope::codec;

use crate::fs::{Backend, LogFile};
use crate::index::{Loc, RecordRef};
use crate::queue::{Shared, lock};
use crate::record::{self, TYPE_MESSAGE, TYPE_OUTCOME};
use crate::recovery;

/// What a request does to the index once durable.
pub(crate) enum Op {
    Message {
        id: u64,
        env_len: u32,
        content_len: u32,
    },
    Outcome {
        id: u64,
    },
    Remove {
        id: u64,
    },
}

/// How long an outcome or REMOVE record may stay written but not yet synced.
pub(crate) const LAZY_SYNC: Duration = Duration::from_millis(50);

impl Op {
    /// Whether the request must be durable before it completes: only a new message is. An
    /// outcome or a removal lost in a crash replays the earlier state of a message, whose
    /// recipients are then tried again: duplicates at worst, never a loss.
    fn must_sync(&self) -> bool {
        matches!(self, Op::Message { .. })
    }
}

/// One framed record to append, and who to tell.
pub(crate) struct Request {
    pub(crate) bytes: Vec<u8>,
    pub(crate) op: Op,
    pub(crate) done: Option<oneshot::Sender<Result<(), WriteFailure>>>,
}

#[derive(Debug, Clone)]
pub(crate) enum WriteFailure {
    /// The queue refuses writes.
    Poisoned(String),
    /// The write failed and was rolled back; the queue is still usable.
    RolledBack(String),
}

pub(crate) struct Writer<B: Backend> {
    pub(crate) shared: Arc<Shared<B>>,
    pub(crate) file: B::File,
    pub(crate) segment: u64,
    pub(crate) len: u64,
    /// Bytes of the current segment written but not yet synced (outcomes and removals).
    pub(crate) unsynced: bool,
    /// Segments freed by removals not yet synced: deleted after the next sync.
    pub(crate) to_reclaim: Vec<u64>,
}

impl<B: Backend> Writer<B> {
    pub(crate) fn run(mut self, rx: mpsc::Receiver<Request>) {
        let max_batch = self.shared.config.max_batch.max(1);
        let delay = self.shared.config.commit_delay;
        // How many requests the last batch held: about how many writers are waiting on us.
        let mut expected = 1;
        loop {
            let first = if self.unsynced {
                match rx.recv_timeout(LAZY_SYNC) {
                    Ok(r) => r,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.sync_now();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        self.sync_now();
                        break;
                    }
                }
            } else {
                match rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                }
            };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            // Commit delay: when fewer requests are here than last time, the rest are
            // probably on their way (their writers were just woken by our last
            // acknowledgement); waiting briefly for them costs less than a sync of its own.
            if !delay.is_zero() && batch.len() < expected.min(max_batch) {
                let deadline = Instant::now() + delay;
                while batch.len() < expected.min(max_batch) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
            }
            expected = batch.len();
            let result = self.write_batch(&batch);
            for r in batch {
                if let Some(done) = r.done {
                    let _ = done.send(result.clone());
                }
            }
            if self.over_threshold() {
                self.compact();
            }
        }
    }

    pub(crate) fn write_batch(&mut self, batch: &[Request]) -> Result<(), WriteFailure> {
        if let Some(reason) = self.shared.poisoned() {
            return Err(WriteFailure::Poisoned(reason));
        }
        let total: u64 = batch.iter().map(|r| r.bytes.len() as u64).sum();
        let mut new_segment = false;
        if self.len > record::SEGMENT_HEADER_LEN as u64
            && self.len + total > self.shared.config.segment_size
        {
            // The segment being left must not keep unsynced records.
            if self.unsynced {
                self.sync_file()?;
            }
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
                Err(t) => Err(self.poison(format!("write failed ({e}) and rollback failed ({t})"))),
            };
        }
        self.shared.writes.fetch_add(1, Ordering::Relaxed);
        let sync = new_segment || batch.iter().any(|r| r.op.must_sync());
        if sync {
            self.sync_file()?;
        } else {
            self.unsynced = true;
        }
        if new_segment && let Err(e) = self.shared.backend.sync_dir(&self.shared.config.dir) {
            return Err(self.poison(format!("directory sync failed: {e}")));
        }
        self.len = start + total;
        let mut index = lock(&self.shared.index);
        index.set_segment_len(self.segment, self.len);
        for (r, &offset) in batch.iter().zip(&offsets) {
            let at = RecordRef {
                segment: self.segment,
                offset,
                len: r.bytes.len() as u32,
            };
            match r.op {
                Op::Message {
                    id,
                    env_len,
                    content_len,
                } => index.insert(id, Loc::new(at, env_len, content_len)),
                Op::Outcome { id } => index.add_outcome(id, at),
                Op::Remove { id } => index.remove(id, self.segment),
            }
        }
        let reclaimable = index.take_deletable(self.segment);
        drop(index);
        self.to_reclaim.extend(reclaimable);
        if !self.unsynced {
            let reclaimable = std::mem::take(&mut self.to_reclaim);
            self.reclaim(&reclaimable);
        }
        Ok(())
    }

    /// `fdatasync` of the current segment; everything written so far is durable after it.
    fn sync_file(&mut self) -> Result<(), WriteFailure> {
        if let Err(e) = self.file.sync_data() {
            return Err(self.poison(format!("fdatasync of segment {} failed: {e}", self.segment)));
        }
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        self.unsynced = false;
        Ok(())
    }

    /// Makes the outcome and REMOVE records written without a sync durable, and deletes the
    /// segments they freed.
    fn sync_now(&mut self) {
        if self.sync_file().is_ok() {
            let reclaimable = std::mem::take(&mut self.to_reclaim);
            self.reclaim(&reclaimable);
        }
    }

    fn poison(&self, reason: String) -> WriteFailure {
        self.shared.poison(reason.clone());
        WriteFailure::Poisoned(reason)
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
                lock(&self.shared.index).set_segment_len(next, self.len);
                Ok(())
            }
            Err(e) => Err(WriteFailure::RolledBack(format!(
                "cannot start segment {next}: {e}"
            ))),
        }
    }

    /// Deletes segments that hold nothing live and no REMOVE record still needed (see
    /// `index`).
    fn reclaim(&self, segments: &[u64]) {
        if segments.is_empty() {
            return;
        }
        for &s in segments {
            lock(&self.shared.maps).remove(&s);
            if let Err(e) = self.shared.backend.remove(&self.shared.segment_path(s)) {
                tracing::warn!(segment = s, error = %e, "cannot delete reclaimed segment");
            }
        }
        if let Err(e) = self.shared.backend.sync_dir(&self.shared.config.dir) {
            self.poison(format!("directory sync failed: {e}"));
        }
    }

    /// Whether the log holds more than 1.5 times the live data plus one segment.
    fn over_threshold(&self) -> bool {
        let index = lock(&self.shared.index);
        index.disk_bytes() > index.live_bytes() / 2 * 3 + self.shared.config.segment_size
    }

    /// While the log holds much more than the live data (more than 1.5 times it plus one
    /// segment), moves the live messages out of the segment whose compaction frees the most, so
    /// a few long-deferred messages do not keep whole segments on disk. Each moved message is
    /// rewritten as one MESSAGE record with its current recipient states; recovery takes the
    /// later record of an id.
    pub(crate) fn compact(&mut self) {
        let budget = lock(&self.shared.index).segments();
        for _ in 0..budget {
            let (victim, ids) = {
                if !self.over_threshold() {
                    return;
                }
                let index = lock(&self.shared.index);
                let Some(victim) = index.compaction_victim(self.segment) else {
                    return;
                };
                let ids: Vec<u64> = index
                    .messages
                    .iter()
                    .filter(|(_, loc)| loc.touches(victim))
                    .map(|(&id, _)| id)
                    .collect();
                (victim, ids)
            };
            let mut moves = Vec::with_capacity(ids.len());
            for id in ids {
                match self.rewrite(id) {
                    Ok(r) => moves.push(r),
                    Err(reason) => {
                        tracing::error!(segment = victim, message = id, %reason,
                            "compaction stopped: cannot read a live message back");
                        return;
                    }
                }
            }
            if let Err(e) = self.write_batch(&moves) {
                tracing::error!(segment = victim, error = ?e, "compaction write failed");
                return;
            }
            self.shared.compactions.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(segment = victim, moved = moves.len(), "compacted segment");
        }
    }

    /// Reads a live message back with its outcomes applied, as a new MESSAGE record.
    fn rewrite(&self, id: u64) -> Result<Request, String> {
        let loc = lock(&self.shared.index)
            .messages
            .get(&id)
            .cloned()
            .ok_or("message vanished")?;
        let read = |at: RecordRef| {
            self.shared
                .backend
                .read_at(
                    &self.shared.segment_path(at.segment),
                    at.offset,
                    at.len as usize,
                )
                .map_err(|e| e.to_string())
        };
        let buf = read(loc.message)?;
        let (rec, _) = record::read_at(&buf, 0).ok_or("message record fails its checksum")?;
        if rec.kind != TYPE_MESSAGE || record::u64_at(rec.payload, 0) != Some(id) {
            return Err("index points at the wrong record".into());
        }
        let env_len = loc.env_len as usize;
        let env_bytes = rec
            .payload
            .get(12..12 + env_len)
            .ok_or("envelope out of range")?;
        let content = &rec.payload[12 + env_len..];
        let mut envelope = codec::decode(env_bytes).map_err(|e| e.to_string())?;
        for at in loc.outcomes() {
            let obuf = read(*at)?;
            let (orec, _) = record::read_at(&obuf, 0).ok_or("outcome record fails its checksum")?;
            if orec.kind != TYPE_OUTCOME {
                return Err("index points at the wrong record".into());
            }
            for (i, state) in recovery::parse_outcome(orec.payload)? {
                let r = envelope
                    .recipients
                    .get_mut(i)
                    .ok_or("outcome for a recipient the message does not have")?;
                r.state = state;
            }
        }
        Ok(message_request(id, &envelope, content, None))
    }
}

/// Frames a MESSAGE record.
pub(crate) fn message_request(
    id: u64,
    envelope: &mswitch_core::Envelope,
    content: &[u8],
    done: Option<oneshot::Sender<Result<(), WriteFailure>>>,
) -> Request {
    let env = codec::encode(envelope);
    let env_len = env.len() as u32;
    let mut bytes = Vec::with_capacity(record::FRAME_LEN + 13 + env.len() + content.len());
    record::frame(
        &mut bytes,
        TYPE_MESSAGE,
        &[&id.to_le_bytes(), &env_len.to_le_bytes(), &env, content],
    );
    Request {
        bytes,
        op: Op::Message {
            id,
            env_len,
            content_len: content.len() as u32,
        },
        done,
    }
}
