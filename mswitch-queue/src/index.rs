//! The in-memory index: where each live message's records are, which segments they keep
//! alive, and how many octets are live.
//!
//! A segment can be deleted when (1) no live message has a current record in it (it is not
//! *pinned*), and (2) every REMOVE record in it has outlived the records it cancels: each
//! segment that held a record of a removed message (current or superseded by a compaction
//! copy) is gone. Without (2), deleting a REMOVE before the MESSAGE it cancels would bring the
//! message back at recovery.

use std::collections::{BTreeMap, BTreeSet};

use mswitch_core::id::IdMap;

use crate::record;

/// Where a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordRef {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// Where a live message is.
#[derive(Debug, Clone)]
pub(crate) struct Loc {
    /// The MESSAGE record (envelope and content).
    pub(crate) message: RecordRef,
    pub(crate) env_len: u32,
    pub(crate) content_len: u32,
    /// Outcomes and stale segments, when there are any: most queued messages have neither, and
    /// one pointer instead of two empty vectors keeps the index small (a queue may hold a
    /// million messages).
    more: Option<Box<LocMore>>,
}

/// The rarer part of a [`Loc`].
#[derive(Debug, Clone, Default)]
struct LocMore {
    /// OUTCOME records written since the MESSAGE record, oldest first.
    outcomes: Vec<RecordRef>,
    /// Segments that may still hold superseded records of this message (from before a
    /// compaction copy).
    stale: Vec<u64>,
}

impl Loc {
    /// A message just written.
    pub(crate) fn new(message: RecordRef, env_len: u32, content_len: u32) -> Self {
        Loc {
            message,
            env_len,
            content_len,
            more: None,
        }
    }

    /// OUTCOME records written since the MESSAGE record, oldest first.
    pub(crate) fn outcomes(&self) -> &[RecordRef] {
        self.more.as_ref().map_or(&[], |m| &m.outcomes)
    }

    /// Segments that may still hold superseded records of this message.
    fn stale(&self) -> &[u64] {
        self.more.as_ref().map_or(&[], |m| &m.stale)
    }

    fn set_stale(&mut self, stale: Vec<u64>) {
        if stale.is_empty() && self.outcomes().is_empty() {
            self.more = None;
        } else {
            self.more.get_or_insert_default().stale = stale;
        }
    }

    /// Offset of the content within the message's segment.
    pub(crate) fn content_offset(&self) -> u64 {
        self.message.offset + (record::FRAME_LEN + 1 + 12) as u64 + u64::from(self.env_len)
    }

    /// Whether any current record of this message is in `segment`.
    pub(crate) fn touches(&self, segment: u64) -> bool {
        self.message.segment == segment || self.outcomes().iter().any(|o| o.segment == segment)
    }

    /// Current records with their sizes.
    fn records(&self) -> impl Iterator<Item = RecordRef> + '_ {
        std::iter::once(self.message).chain(self.outcomes().iter().copied())
    }

    /// The distinct segments holding current records.
    fn segments(&self) -> Vec<u64> {
        let mut s: Vec<u64> = self.records().map(|r| r.segment).collect();
        s.sort_unstable();
        s.dedup();
        s
    }
}

#[derive(Debug, Default)]
struct Segment {
    /// File size.
    bytes: u64,
    /// Octets of current records of live messages.
    live: u64,
    /// Live messages with a current record here.
    pins: u64,
    /// Segments holding records that REMOVE records here cancel; this segment must outlive
    /// them.
    outlives: BTreeSet<u64>,
}

/// The index.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) messages: IdMap<u64, Loc>,
    segments: BTreeMap<u64, Segment>,
    live_bytes: u64,
}

impl Index {
    /// Records the existence and size of a segment.
    pub(crate) fn set_segment_len(&mut self, segment: u64, len: u64) {
        self.segments.entry(segment).or_default().bytes = len;
    }

    fn account(&mut self, loc: &Loc, add: bool) {
        for r in loc.records() {
            let seg = self.segments.entry(r.segment).or_default();
            if add {
                seg.live += u64::from(r.len);
                self.live_bytes += u64::from(r.len);
            } else {
                seg.live = seg.live.saturating_sub(u64::from(r.len));
                self.live_bytes = self.live_bytes.saturating_sub(u64::from(r.len));
            }
        }
        // Most messages have one record: no list of segments to build.
        let segments = if loc.outcomes().is_empty() {
            vec![]
        } else {
            loc.segments()
        };
        let single = [loc.message.segment];
        let segments = if segments.is_empty() {
            &single[..]
        } else {
            &segments[..]
        };
        for &s in segments {
            let seg = self.segments.entry(s).or_default();
            if add {
                seg.pins += 1;
            } else {
                seg.pins = seg.pins.saturating_sub(1);
            }
        }
    }

    /// Adds a message, or replaces it with a compaction copy (whose older records become
    /// stale).
    pub(crate) fn insert(&mut self, id: u64, mut loc: Loc) {
        if let Some(old) = self.messages.remove(&id) {
            self.account(&old, false);
            let mut stale = old.stale().to_vec();
            stale.extend(old.segments());
            stale.retain(|s| self.segments.contains_key(s) && *s != loc.message.segment);
            stale.sort_unstable();
            stale.dedup();
            loc.set_stale(stale);
        }
        self.account(&loc, true);
        self.messages.insert(id, loc);
    }

    /// Adds an OUTCOME record to a live message; ignored for a message no longer live.
    pub(crate) fn add_outcome(&mut self, id: u64, at: RecordRef) {
        let Some(mut loc) = self.messages.remove(&id) else {
            return;
        };
        self.account(&loc, false);
        loc.more.get_or_insert_default().outcomes.push(at);
        self.account(&loc, true);
        self.messages.insert(id, loc);
    }

    /// Forgets a message whose REMOVE record is in segment `at`.
    pub(crate) fn remove(&mut self, id: u64, at: u64) {
        let Some(old) = self.messages.remove(&id) else {
            return;
        };
        self.account(&old, false);
        let cancelled: Vec<u64> = old
            .segments()
            .into_iter()
            .chain(old.stale().iter().copied())
            .filter(|&s| s != at && self.segments.contains_key(&s))
            .collect();
        self.segments
            .entry(at)
            .or_default()
            .outlives
            .extend(cancelled);
    }

    /// Forgets a message whose record turned out unusable at recovery (it was quarantined):
    /// unlike `remove`, no REMOVE record stands for it.
    pub(crate) fn forget(&mut self, id: u64) {
        if let Some(old) = self.messages.remove(&id) {
            self.account(&old, false);
        }
    }

    /// Removes and returns the segments that can be deleted now (never `current`).
    pub(crate) fn take_deletable(&mut self, current: u64) -> Vec<u64> {
        let mut gone = Vec::new();
        loop {
            let next = self.segments.iter().find(|&(&s, seg)| {
                s != current
                    && seg.pins == 0
                    && seg.outlives.iter().all(|o| !self.segments.contains_key(o))
            });
            match next {
                Some((&s, _)) => {
                    self.segments.remove(&s);
                    gone.push(s);
                }
                None => return gone,
            }
        }
    }

    /// The segment whose compaction frees the most: the pinned segment (other than `current`)
    /// with the most garbage, counting the unpinned segments that wait only for it.
    pub(crate) fn compaction_victim(&self, current: u64) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for (&s, seg) in &self.segments {
            if s == current || seg.pins == 0 {
                continue;
            }
            let mut gain = seg.bytes.saturating_sub(seg.live);
            for other in self.segments.values() {
                if other.pins == 0 && other.outlives.contains(&s) {
                    gain += other.bytes;
                }
            }
            if gain > 0 && best.is_none_or(|(_, g)| gain > g) {
                best = Some((s, gain));
            }
        }
        best.map(|(s, _)| s)
    }

    /// Octets of live records.
    pub(crate) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Octets in segment files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum()
    }

    /// Number of segment files.
    pub(crate) fn segments(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u64) -> RecordRef {
        RecordRef {
            segment,
            offset,
            len: 100,
        }
    }

    #[test]
    fn a_remove_outlives_what_it_cancels() {
        let mut ix = Index::default();
        for s in 1..=3 {
            ix.set_segment_len(s, 1000);
        }
        ix.insert(7, Loc::new(at(1, 8), 10, 50));
        ix.insert(8, Loc::new(at(1, 108), 10, 50));
        ix.remove(7, 2);
        // Segment 2 holds the REMOVE of 7, whose MESSAGE is in segment 1, still pinned by 8.
        assert_eq!(ix.take_deletable(3), Vec::<u64>::new());
        ix.remove(8, 3);
        // Now 1 goes, then 2 (what it cancels is gone); 3 is current.
        assert_eq!(ix.take_deletable(3), vec![1, 2]);
    }

    #[test]
    fn compaction_copies_make_old_records_stale() {
        let mut ix = Index::default();
        for s in 1..=4 {
            ix.set_segment_len(s, 1000);
        }
        ix.insert(7, Loc::new(at(1, 8), 10, 50));
        ix.add_outcome(7, at(2, 8));
        // Compaction copies 7 into segment 3: segments 1 and 2 are unpinned, and stale.
        ix.insert(7, Loc::new(at(3, 8), 10, 50));
        assert_eq!(ix.live_bytes(), 100);
        // Removing 7 in segment 4: that REMOVE must outlive 1, 2 and 3.
        ix.remove(7, 4);
        let mut gone = ix.take_deletable(5);
        gone.sort_unstable();
        assert_eq!(gone, vec![1, 2, 3, 4]);
        let mut ix2 = Index::default();
        for s in 1..=4 {
            ix2.set_segment_len(s, 1000);
        }
        ix2.insert(7, Loc::new(at(1, 8), 10, 50));
        ix2.insert(7, Loc::new(at(3, 8), 10, 50));
        ix2.insert(9, Loc::new(at(1, 200), 10, 50));
        ix2.remove(7, 4);
        // 1 is pinned by 9, so 4 (which cancels 7's stale record in 1) must stay; 3 may go.
        assert_eq!(ix2.take_deletable(5), vec![2, 3]);
    }

    #[test]
    fn victim_is_the_segment_with_most_garbage() {
        let mut ix = Index::default();
        for s in 1..=3 {
            ix.set_segment_len(s, 1000);
        }
        ix.insert(1, Loc::new(at(1, 8), 10, 50));
        for i in 0..9 {
            ix.insert(10 + i, Loc::new(at(2, 8 + 100 * i), 10, 50));
        }
        assert_eq!(ix.compaction_victim(3), Some(1));
        assert_eq!(ix.compaction_victim(1), Some(2));
    }
}
