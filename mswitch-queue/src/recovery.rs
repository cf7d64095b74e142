//! Recovery: rebuilds the index and the queued envelopes from the segments at open.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use mswitch_core::envelope::RecipientState;
use mswitch_core::envelope::codec;
use mswitch_core::store::{Quarantined, Recovered, StoredMessage};
use mswitch_core::{Envelope, QueueId};

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

/// Reads every segment in order and rebuilds the queue. With `repair`, a torn tail is
/// truncated away and damaged records are copied to `quarantine/`.
pub(crate) fn recover<B: Backend>(backend: &B, dir: &Path, repair: bool) -> io::Result<Scan> {
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
        index.set_segment_len(seg, buf.len() as u64);
        if buf.get(..record::SEGMENT_HEADER_LEN) != Some(&record::SEGMENT_MAGIC[..]) {
            if is_last && buf.len() < record::SEGMENT_HEADER_LEN {
                // Created, but the crash came before its header was durable.
                if repair {
                    backend.truncate(&path, 0)?;
                    let mut f = backend.open_append(&path)?;
                    f.append(record::SEGMENT_MAGIC)?;
                    f.sync_data()?;
                }
                index.set_segment_len(seg, record::SEGMENT_HEADER_LEN as u64);
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
                    let at = RecordRef {
                        segment: seg,
                        offset: pos as u64,
                        len: (next - pos) as u32,
                    };
                    if let Err(reason) = apply(&rec, at, &mut envelopes, &mut index, &mut max_id) {
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
                            index.set_segment_len(seg, pos as u64);
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
    at: RecordRef,
    envelopes: &mut BTreeMap<u64, Envelope>,
    index: &mut Index,
    max_id: &mut u64,
) -> Result<(), &'static str> {
    let p = rec.payload;
    let id = record::u64_at(p, 0).ok_or("record too short for an id")?;
    match rec.kind {
        TYPE_MESSAGE => {
            let env_len = record::u32_at(p, 8).ok_or("message record too short")?;
            let env_end = 12 + env_len as usize;
            let env_bytes = p.get(12..env_end).ok_or("envelope length out of range")?;
            let envelope = codec::decode(env_bytes).map_err(|_| "envelope does not decode")?;
            *max_id = (*max_id).max(id);
            // A later MESSAGE record for the same id is a compaction copy: it replaces the
            // earlier one, with every outcome up to then already applied.
            envelopes.insert(id, envelope);
            index.insert(id, Loc::new(at, env_len, (p.len() - env_end) as u32));
        }
        TYPE_OUTCOME => {
            let Some(env) = envelopes.get_mut(&id) else {
                return Ok(()); // outcome of a message already removed
            };
            let updates = parse_outcome(p)?;
            if updates.iter().any(|(i, _)| *i >= env.recipients.len()) {
                return Err("outcome for a recipient the message does not have");
            }
            for (i, state) in updates {
                env.recipients[i].state = state;
            }
            index.add_outcome(id, at);
        }
        TYPE_REMOVE => {
            envelopes.remove(&id);
            index.remove(id, at.segment);
        }
        _ => return Err("unknown record type"),
    }
    Ok(())
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
