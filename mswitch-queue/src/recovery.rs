//! Recovery: rebuilds the index and the queued envelopes from the segments at open.
//!
//! Four phases, shaped by what costs time with a million messages (decoding envelopes, and
//! touching fresh memory):
//! 1. **check**, on all cores: every segment is read through a map and every record's checksum
//!    verified; what is kept is only each record's kind, message id and place;
//! 2. **replay**, in log order: the index is rebuilt from those places (integers only), and the
//!    last MESSAGE record of each live message is found, with the OUTCOME records after it;
//! 3. **decode**, on all cores: only those final envelopes are decoded, each straight into its
//!    place in the result (ordered by its record's position, so each segment fills one
//!    contiguous run);
//! 4. **apply** the outcomes, then repair: quarantine damaged records, truncate a torn tail.
//!    Repairs that shorten a file happen after every map of it is gone.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use mswitch_core::envelope::PackedEnvelope;
use mswitch_core::envelope::RecipientState;
use mswitch_core::envelope::codec;
use mswitch_core::id::IdMap;
use mswitch_core::store::{PackedMessage, Quarantined, RecoveredPacked};
use mswitch_core::{Envelope, QueueId, ReversePath, Timestamp};

use crate::fs::{Backend, LogFile};
use crate::index::{Index, Loc, RecordRef};
use crate::queue::segment_path;
use crate::record::{self, TYPE_MESSAGE, TYPE_OUTCOME, TYPE_REMOVE};

pub(crate) struct Scan {
    pub(crate) index: Index,
    pub(crate) recovered: RecoveredPacked,
    pub(crate) max_id: u64,
    pub(crate) last_segment: Option<(u64, u64)>,
}

enum Header {
    Ok,
    /// The last segment is shorter than its header (created just before a crash).
    Missing,
    /// Not a segment header: the whole file is quarantined.
    Bad(Vec<u8>),
}

/// A record whose checksum is good.
#[derive(Clone, Copy)]
struct Rec {
    kind: u8,
    id: u64,
    at: RecordRef,
}

/// Damaged bytes to quarantine.
struct Damage {
    segment: u64,
    offset: usize,
    bytes: Vec<u8>,
    reason: &'static str,
}

/// What phase 1 found in one segment.
struct SegmentScan<M> {
    segment: u64,
    is_last: bool,
    len: u64,
    map: Option<M>,
    header: Header,
    recs: Vec<Rec>,
    damage: Vec<Damage>,
    /// Where a torn tail starts (last segment only).
    torn_at: Option<usize>,
    /// Offset after the last record read.
    end: usize,
}

impl<M: AsRef<[u8]>> SegmentScan<M> {
    /// The payload of a record (its checksum was verified in phase 1).
    fn payload(&self, at: RecordRef) -> &[u8] {
        let buf = self.map.as_ref().map_or(&[][..], AsRef::as_ref);
        let start = at.offset as usize + record::FRAME_LEN + 1;
        let end = at.offset as usize + at.len as usize;
        buf.get(start..end).unwrap_or_default()
    }

    fn record_bytes(&self, at: RecordRef) -> Vec<u8> {
        let buf = self.map.as_ref().map_or(&[][..], AsRef::as_ref);
        let start = at.offset as usize;
        buf.get(start..start + at.len as usize)
            .unwrap_or_default()
            .to_vec()
    }
}

/// Reads every segment and rebuilds the queue. With `repair`, a torn tail is truncated away
/// and damaged records are copied to `quarantine/`.
pub(crate) fn recover<B: Backend>(backend: &B, dir: &Path, repair: bool) -> io::Result<Scan> {
    let mut segments: Vec<u64> = backend
        .list(dir)?
        .iter()
        .filter_map(|n| n.strip_suffix(".seg"))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .collect();
    segments.sort_unstable();

    // Phase 1: check.
    let mut scans = parallel(&segments, |i, &seg| {
        scan_segment(backend, dir, seg, i + 1 == segments.len())
    })
    .into_iter()
    .collect::<io::Result<Vec<_>>>()?;

    // Phase 2: replay.
    let mut index = Index::default();
    let mut damage: Vec<Damage> = Vec::new();
    let mut max_id = 0;
    let mut last_segment = None;
    // The last MESSAGE record of each live message, and the OUTCOME records after it.
    let mut latest: IdMap<u64, (usize, Rec)> = IdMap::default();
    let mut outcomes: IdMap<u64, Vec<(usize, Rec)>> = IdMap::default();
    let mut truncations: Vec<(PathBuf, u64)> = Vec::new();
    let mut rewrite_headers: Vec<PathBuf> = Vec::new();
    for (si, scan) in scans.iter_mut().enumerate() {
        let seg = scan.segment;
        index.set_segment_len(seg, scan.len);
        damage.append(&mut scan.damage);
        match std::mem::replace(&mut scan.header, Header::Ok) {
            Header::Ok => {}
            Header::Missing => {
                rewrite_headers.push(segment_path(dir, seg));
                let len = record::SEGMENT_HEADER_LEN as u64;
                index.set_segment_len(seg, len);
                last_segment = Some((seg, len));
                continue;
            }
            Header::Bad(bytes) => {
                damage.push(Damage {
                    segment: seg,
                    offset: 0,
                    bytes,
                    reason: "bad segment header",
                });
                continue;
            }
        }
        for &rec in &scan.recs {
            match rec.kind {
                TYPE_MESSAGE => {
                    let p = scan.payload(rec.at);
                    let env_len = record::u32_at(p, 8).unwrap_or(0);
                    let content_len = p.len().saturating_sub(12 + env_len as usize) as u32;
                    max_id = max_id.max(rec.id);
                    // A later MESSAGE record of an id is a compaction copy: it replaces the
                    // earlier one, with every outcome up to then already applied.
                    index.insert(rec.id, Loc::new(rec.at, env_len, content_len));
                    latest.insert(rec.id, (si, rec));
                    outcomes.remove(&rec.id);
                }
                // An outcome of a message already removed is dropped.
                TYPE_OUTCOME if latest.contains_key(&rec.id) => {
                    index.add_outcome(rec.id, rec.at);
                    outcomes.entry(rec.id).or_default().push((si, rec));
                }
                TYPE_REMOVE => {
                    latest.remove(&rec.id);
                    outcomes.remove(&rec.id);
                    index.remove(rec.id, seg);
                }
                _ => {}
            }
        }
        let mut end = scan.end as u64;
        if let Some(torn) = scan.torn_at {
            // A torn tail: the last write before a crash. Nothing in it was acknowledged, so
            // it is dropped.
            tracing::info!(
                segment = seg,
                offset = torn,
                octets = scan.len - torn as u64,
                "queue recovery dropped a torn tail"
            );
            truncations.push((segment_path(dir, seg), torn as u64));
            index.set_segment_len(seg, torn as u64);
            end = torn as u64;
        }
        if scan.is_last {
            last_segment = Some((seg, end));
        }
    }

    // Phase 3: decode the final envelopes into their places.
    let mut per_segment: Vec<Vec<Rec>> = vec![Vec::new(); scans.len()];
    for (si, rec) in latest.into_values() {
        per_segment[si].push(rec);
    }
    for recs in &mut per_segment {
        recs.sort_unstable_by_key(|r| r.at.offset);
    }
    let total: usize = per_segment.iter().map(Vec::len).sum();
    // Envelopes stay packed (checked, not kept decoded): decoding a million of them at once
    // would take most of the memory the switch then holds for them, and leave it fragmented.
    let placeholder = PackedEnvelope::pack(&Envelope::new(ReversePath::Null, Timestamp(0)))
        .ok_or_else(|| io::Error::other("an empty envelope does not pack"))?;
    let mut messages: Vec<PackedMessage> = Vec::with_capacity(total);
    messages.resize_with(total, || PackedMessage {
        id: QueueId(0),
        envelope: placeholder.clone(),
    });
    let failures = {
        let mut chunks = Vec::with_capacity(scans.len());
        let mut rest = messages.as_mut_slice();
        for recs in &per_segment {
            let (chunk, tail) = rest.split_at_mut(recs.len());
            chunks.push(Mutex::new(chunk));
            rest = tail;
        }
        let jobs: Vec<usize> = (0..scans.len()).collect();
        parallel(&jobs, |_, &si| {
            let mut chunk = chunks[si].lock().unwrap_or_else(PoisonError::into_inner);
            let mut failed = Vec::new();
            for (slot, rec) in chunk.iter_mut().zip(&per_segment[si]) {
                let p = scans[si].payload(rec.at);
                let env_len = record::u32_at(p, 8).unwrap_or(0) as usize;
                match p.get(12..12 + env_len).map(PackedEnvelope::from_encoded) {
                    Some(Ok(envelope)) => {
                        *slot = PackedMessage {
                            id: QueueId(rec.id),
                            envelope,
                        }
                    }
                    _ => failed.push(*rec),
                }
            }
            (si, failed)
        })
    };
    for (si, failed) in failures {
        for rec in failed {
            // The checksum is good but the envelope does not decode (written by an
            // incompatible version?): set aside and reported, never delivered.
            damage.push(Damage {
                segment: rec.at.segment,
                offset: rec.at.offset as usize,
                bytes: scans[si].record_bytes(rec.at),
                reason: "envelope does not decode",
            });
            index.forget(rec.id);
            outcomes.remove(&rec.id);
        }
    }
    // A slot whose envelope did not decode still holds its placeholder (id 0; queue ids start
    // at 1).
    messages.retain(|m| m.id != QueueId(0));

    // Phase 4: apply the outcomes that follow each final envelope.
    let place: IdMap<u64, usize> = messages
        .iter()
        .filter(|_| !outcomes.is_empty())
        .enumerate()
        .map(|(i, m)| (m.id.0, i))
        .collect();
    for (id, recs) in outcomes {
        let Some(&i) = place.get(&id) else { continue };
        // Checked in phase 3.
        let Ok(mut decoded) = messages[i].envelope.unpack() else {
            continue;
        };
        let envelope = &mut decoded;
        for (si, rec) in recs {
            match parse_outcome(scans[si].payload(rec.at)) {
                Ok(updates) if updates.iter().all(|(r, _)| *r < envelope.recipients.len()) => {
                    for (r, state) in updates {
                        envelope.recipients[r].state = state;
                    }
                }
                Ok(_) | Err(_) => damage.push(Damage {
                    segment: rec.at.segment,
                    offset: rec.at.offset as usize,
                    bytes: scans[si].record_bytes(rec.at),
                    reason: "outcome record does not apply to its message",
                }),
            }
        }
        if let Some(packed) = PackedEnvelope::pack(&decoded) {
            messages[i].envelope = packed;
        }
    }

    // Repairs, once no map of the segments is left.
    drop(scans);
    let mut quarantined = Vec::with_capacity(damage.len());
    for d in &damage {
        quarantined.push(quarantine(
            backend, dir, d.segment, d.offset, &d.bytes, repair, d.reason,
        )?);
    }
    if repair {
        for (path, len) in truncations {
            backend.truncate(&path, len)?;
        }
        for path in rewrite_headers {
            backend.truncate(&path, 0)?;
            let mut f = backend.open_append(&path)?;
            f.append(record::SEGMENT_MAGIC)?;
            f.sync_data()?;
        }
    }
    Ok(Scan {
        index,
        recovered: RecoveredPacked {
            messages,
            quarantined,
        },
        max_id,
        last_segment,
    })
}

/// Runs `f` over `items` on as many threads as there are cores; results in item order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(i, item);
                    *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .filter_map(|s| s.into_inner().unwrap_or_else(PoisonError::into_inner))
        .collect()
}

/// Phase 1 for one segment: checks every record's checksum and notes its kind, id and place.
fn scan_segment<B: Backend>(
    backend: &B,
    dir: &Path,
    seg: u64,
    is_last: bool,
) -> io::Result<SegmentScan<B::Map>> {
    let map = backend.map(&segment_path(dir, seg))?;
    let buf = map.as_ref();
    let mut scan = SegmentScan {
        segment: seg,
        is_last,
        len: buf.len() as u64,
        map: None,
        header: Header::Ok,
        recs: Vec::new(),
        damage: Vec::new(),
        torn_at: None,
        end: buf.len(),
    };
    if buf.get(..record::SEGMENT_HEADER_LEN) != Some(&record::SEGMENT_MAGIC[..]) {
        scan.header = if is_last && buf.len() < record::SEGMENT_HEADER_LEN {
            Header::Missing
        } else {
            Header::Bad(buf.to_vec())
        };
        return Ok(scan);
    }
    let damaged = |offset: usize, bytes: &[u8], reason| Damage {
        segment: seg,
        offset,
        bytes: bytes.to_vec(),
        reason,
    };
    let mut pos = record::SEGMENT_HEADER_LEN;
    while pos < buf.len() {
        match record::read_at(buf, pos) {
            Some((rec, next)) => {
                match record::u64_at(rec.payload, 0) {
                    Some(id) => scan.recs.push(Rec {
                        kind: rec.kind,
                        id,
                        at: RecordRef {
                            segment: seg,
                            offset: pos as u64,
                            len: (next - pos) as u32,
                        },
                    }),
                    None => scan.damage.push(damaged(
                        pos,
                        &buf[pos..next],
                        "record too short for an id",
                    )),
                }
                pos = next;
            }
            None => match record::resync(buf, pos) {
                Some(next) => {
                    scan.damage.push(damaged(
                        pos,
                        &buf[pos..next],
                        "damaged record (checksum or length)",
                    ));
                    pos = next;
                }
                None if is_last => {
                    scan.torn_at = Some(pos);
                    break;
                }
                None => {
                    scan.damage.push(damaged(
                        pos,
                        &buf[pos..],
                        "damaged data up to the end of a segment",
                    ));
                    pos = buf.len();
                }
            },
        }
    }
    scan.end = pos.min(buf.len());
    scan.map = Some(map);
    Ok(scan)
}

/// Parses an OUTCOME payload (`id` then `index state_len state`...).
pub(crate) fn parse_outcome(p: &[u8]) -> Result<Vec<(usize, RecipientState)>, &'static str> {
    let mut updates = Vec::new();
    let mut at = 8;
    while at < p.len() {
        let i = record::u32_at(p, at).ok_or("outcome truncated")? as usize;
        let n = record::u32_at(p, at + 4).ok_or("outcome truncated")? as usize;
        let bytes = p
            .get(at + 8..at + 8 + n)
            .ok_or("outcome state out of range")?;
        let state =
            codec::decode_recipient_state(bytes).map_err(|_| "outcome state does not decode")?;
        updates.push((i, state));
        at += 8 + n;
    }
    Ok(updates)
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
