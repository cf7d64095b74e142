//! Recovery: rebuilds the index and the queued envelopes from the segments at open.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use mswitch_core::envelope::RecipientState;
use mswitch_core::envelope::codec;
use mswitch_core::store::{Quarantined, Recovered, StoredMessage};
use mswitch_core::{Envelope, QueueId, ReversePath, Timestamp};

use crate::fs::{Backend, LogFile};
use crate::index::{Index, Loc, RecordRef};
use crate::queue::segment_path;
use crate::record::{self, TYPE_MESSAGE, TYPE_OUTCOME, TYPE_REMOVE};

pub(crate) struct Scan {
    pub(crate) index: Index,
    pub(crate) recovered: Recovered,
    pub(crate) max_id: u64,
    pub(crate) last_segment: Option<(u64, u64)>,
}

/// Reads every segment and rebuilds the queue. With `repair`, a torn tail is truncated away
/// and damaged records are copied to `quarantine/`.
///
/// Two phases: the segments are checked and decoded in parallel (checksums, envelopes and
/// outcome states are the expensive part), then the decoded records are applied in log order
/// on one thread, and repairs are made.
pub(crate) fn recover<B: Backend>(backend: &B, dir: &Path, repair: bool) -> io::Result<Scan> {
    let mut segments: Vec<u64> = backend
        .list(dir)?
        .iter()
        .filter_map(|n| n.strip_suffix(".seg"))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .collect();
    segments.sort_unstable();
    let mut envelopes = Envelopes::default();
    let mut index = Index::default();
    let mut quarantined = Vec::new();
    let mut max_id = 0;
    let mut last_segment = None;
    for scan in scan_all(backend, dir, &segments)? {
        let seg = scan.segment;
        let path = segment_path(dir, seg);
        index.set_segment_len(seg, scan.len);
        match scan.header {
            Header::Ok => {}
            Header::Missing => {
                // Created, but the crash came before its header was durable.
                if repair {
                    backend.truncate(&path, 0)?;
                    let mut f = backend.open_append(&path)?;
                    f.append(record::SEGMENT_MAGIC)?;
                    f.sync_data()?;
                }
                let len = record::SEGMENT_HEADER_LEN as u64;
                index.set_segment_len(seg, len);
                last_segment = Some((seg, len));
                continue;
            }
            Header::Bad(bytes) => {
                quarantined.push(quarantine(
                    backend,
                    dir,
                    seg,
                    0,
                    &bytes,
                    repair,
                    "bad segment header",
                )?);
                continue;
            }
        }
        for item in scan.items {
            let failed = match item {
                Item::Damaged {
                    offset,
                    bytes,
                    reason,
                } => Some((offset, bytes, reason)),
                other => apply(other, &mut envelopes, &mut index, &mut max_id)
                    .err()
                    .map(|(at, reason)| {
                        let bytes = backend
                            .read_at(&path, at.offset, at.len as usize)
                            .unwrap_or_default();
                        (at.offset as usize, bytes, reason)
                    }),
            };
            if let Some((offset, bytes, reason)) = failed {
                quarantined.push(quarantine(
                    backend, dir, seg, offset, &bytes, repair, reason,
                )?);
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
            if repair {
                backend.truncate(&path, torn as u64)?;
                index.set_segment_len(seg, torn as u64);
            }
            end = torn as u64;
        }
        if scan.is_last {
            last_segment = Some((seg, end));
        }
    }
    Ok(Scan {
        index,
        recovered: Recovered {
            messages: envelopes.into_messages(),
            quarantined,
        },
        max_id,
        last_segment,
    })
}

enum Header {
    Ok,
    /// The last segment is shorter than its header (created just before a crash).
    Missing,
    /// Not a segment header: the whole file is quarantined.
    Bad(Vec<u8>),
}

/// A record checked and decoded by phase 1.
// Most items are messages; boxing the envelope would add an allocation per message for the
// few small variants' sake.
#[allow(clippy::large_enum_variant)]
enum Item {
    Message {
        id: u64,
        at: RecordRef,
        env_len: u32,
        content_len: u32,
        envelope: Envelope,
    },
    Outcome {
        id: u64,
        at: RecordRef,
        updates: Vec<(usize, RecipientState)>,
    },
    Remove {
        id: u64,
        at: RecordRef,
    },
    Damaged {
        offset: usize,
        bytes: Vec<u8>,
        reason: &'static str,
    },
}

/// What phase 1 found in one segment.
struct SegmentScan {
    segment: u64,
    is_last: bool,
    len: u64,
    header: Header,
    items: Vec<Item>,
    /// Where a torn tail starts (last segment only).
    torn_at: Option<usize>,
    /// Offset after the last record read.
    end: usize,
}

/// Phase 1 over every segment, on as many threads as there are cores. (Applying each segment
/// as soon as it is decoded was measured slower here: a third thread then competes with the
/// decoders for two cores.)
fn scan_all<B: Backend>(backend: &B, dir: &Path, segments: &[u64]) -> io::Result<Vec<SegmentScan>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(segments.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<io::Result<SegmentScan>>>> =
        segments.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&seg) = segments.get(i) else { break };
                    let is_last = i + 1 == segments.len();
                    let result = scan_segment(backend, dir, seg, is_last);
                    *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or_else(|| Err(io::Error::other("segment scan did not run")))
        })
        .collect()
}

/// Phase 1 for one segment: checks every record and decodes it. Reads through a map (no copy
/// of the segment into memory); the map is dropped before any repair shortens the file.
fn scan_segment<B: Backend>(
    backend: &B,
    dir: &Path,
    seg: u64,
    is_last: bool,
) -> io::Result<SegmentScan> {
    let map = backend.map(&segment_path(dir, seg))?;
    let buf = map.as_ref();
    let mut scan = SegmentScan {
        segment: seg,
        is_last,
        len: buf.len() as u64,
        header: Header::Ok,
        items: Vec::new(),
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
    let mut pos = record::SEGMENT_HEADER_LEN;
    while pos < buf.len() {
        match record::read_at(buf, pos) {
            Some((rec, next)) => {
                let at = RecordRef {
                    segment: seg,
                    offset: pos as u64,
                    len: (next - pos) as u32,
                };
                scan.items
                    .push(decode(&rec, at).unwrap_or_else(|reason| Item::Damaged {
                        offset: pos,
                        bytes: buf[pos..next].to_vec(),
                        reason,
                    }));
                pos = next;
            }
            None => match record::resync(buf, pos) {
                Some(next) => {
                    scan.items.push(Item::Damaged {
                        offset: pos,
                        bytes: buf[pos..next].to_vec(),
                        reason: "damaged record (checksum or length)",
                    });
                    pos = next;
                }
                None if is_last => {
                    scan.torn_at = Some(pos);
                    break;
                }
                None => {
                    scan.items.push(Item::Damaged {
                        offset: pos,
                        bytes: buf[pos..].to_vec(),
                        reason: "damaged data up to the end of a segment",
                    });
                    pos = buf.len();
                }
            },
        }
    }
    scan.end = pos.min(buf.len());
    Ok(scan)
}

/// Decodes one record whose checksum is good.
fn decode(rec: &record::RawRecord<'_>, at: RecordRef) -> Result<Item, &'static str> {
    let p = rec.payload;
    let id = record::u64_at(p, 0).ok_or("record too short for an id")?;
    Ok(match rec.kind {
        TYPE_MESSAGE => {
            let env_len = record::u32_at(p, 8).ok_or("message record too short")?;
            let env_end = 12 + env_len as usize;
            let env_bytes = p.get(12..env_end).ok_or("envelope length out of range")?;
            let envelope = codec::decode(env_bytes).map_err(|_| "envelope does not decode")?;
            Item::Message {
                id,
                at,
                env_len,
                content_len: (p.len() - env_end) as u32,
                envelope,
            }
        }
        TYPE_OUTCOME => Item::Outcome {
            id,
            at,
            updates: parse_outcome(p)?,
        },
        TYPE_REMOVE => Item::Remove { id, at },
        _ => return Err("unknown record type"),
    })
}

/// Phase 2 for one decoded record.
fn apply(
    item: Item,
    envelopes: &mut Envelopes,
    index: &mut Index,
    max_id: &mut u64,
) -> Result<(), (RecordRef, &'static str)> {
    match item {
        Item::Message {
            id,
            at,
            env_len,
            content_len,
            envelope,
        } => {
            *max_id = (*max_id).max(id);
            // A later MESSAGE record for the same id is a compaction copy: it replaces the
            // earlier one, with every outcome up to then already applied.
            envelopes.insert(id, envelope);
            index.insert(id, Loc::new(at, env_len, content_len));
        }
        Item::Outcome { id, at, updates } => {
            let Some(env) = envelopes.get_mut(id) else {
                return Ok(()); // outcome of a message already removed
            };
            if updates.iter().any(|(i, _)| *i >= env.recipients.len()) {
                return Err((at, "outcome for a recipient the message does not have"));
            }
            for (i, state) in updates {
                env.recipients[i].state = state;
            }
            index.add_outcome(id, at);
        }
        Item::Remove { id, at } => {
            envelopes.remove(id);
            index.remove(id, at.segment);
        }
        Item::Damaged { .. } => {}
    }
    Ok(())
}

/// The envelopes being recovered, in the order they were first queued, built in place: one
/// vector and a position map, no second copy at the end.
#[derive(Default)]
struct Envelopes {
    list: Vec<StoredMessage>,
    live: Vec<bool>,
    position: HashMap<u64, usize>,
}

impl Envelopes {
    fn insert(&mut self, id: u64, envelope: Envelope) {
        match self.position.get(&id) {
            // A compaction copy replaces the message where it is.
            Some(&i) => {
                self.list[i].envelope = envelope;
                self.live[i] = true;
            }
            None => {
                self.position.insert(id, self.list.len());
                self.list.push(StoredMessage {
                    id: QueueId(id),
                    envelope,
                });
                self.live.push(true);
            }
        }
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Envelope> {
        let &i = self.position.get(&id)?;
        self.live[i].then(|| &mut self.list[i].envelope)
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.position.remove(&id) {
            self.live[i] = false;
            // Free what the envelope holds now; the slot goes at the end.
            self.list[i].envelope = Envelope::new(ReversePath::Null, Timestamp(0));
        }
    }

    fn into_messages(mut self) -> Vec<StoredMessage> {
        let mut live = self.live.into_iter();
        self.list.retain(|_| live.next().unwrap_or(false));
        self.list
    }
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
