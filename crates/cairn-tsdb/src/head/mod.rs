//! The head: recent data in memory.
//!
//! [`Head`] owns every series ([`MemSeries`]) in a [`SeriesSlab`] (by ID and
//! by slot), finds a series' slot from its labels through a hash map
//! (collisions kept in a side table), and answers matchers through
//! [`Postings`]. A series keeps its labels packed in one
//! allocation ([`PackedLabels`]); the index keeps one copy of each distinct
//! name and value. The head takes no locks itself; [`crate::Tsdb`] wraps it
//! in an `RwLock`.

pub mod labels;
pub mod ooo;
pub mod postings;
pub mod series;
pub mod slab;

use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cairn_model::{LabelSetBounds, Labels, LabelsRef, Matcher, StorageHint};

use crate::chunk::ClosedChunk;
use crate::idhash::IdMap;
pub use labels::{LabelsAsSent, PackedLabels};
pub use postings::Postings;
pub use series::{decide, AppendDecision, Applied, LastSample, MemSeries, SeriesLabels};
pub use slab::{SeriesSlab, SlotId, NO_SLOT};

/// A series copied out of the head for reading without holding its lock.
#[derive(Clone, Debug)]
pub struct SeriesSnapshot {
    pub id: u64,
    pub labels: SeriesLabels,
    /// Chunks overlapping the requested range, oldest first.
    pub chunks: Vec<ClosedChunk>,
}

impl SeriesSnapshot {
    /// Samples inside `[start, end]`, in order.
    pub fn samples_in(&self, start: i64, end: i64) -> Vec<cairn_model::Sample> {
        let mut out = Vec::new();
        for chunk in &self.chunks {
            for (t, v) in chunk.iter() {
                if t > end {
                    break;
                }
                if t >= start {
                    out.push(cairn_model::Sample::new(t, v));
                }
            }
        }
        out
    }

    /// Whether any sample lies inside `[start, end]`; decodes only chunks
    /// that overlap the range partially.
    pub fn has_sample_in(&self, start: i64, end: i64) -> bool {
        self.chunks.iter().any(|chunk| {
            (start <= chunk.min_t && chunk.max_t <= end)
                || chunk.iter().any(|(t, _)| start <= t && t <= end)
        })
    }
}

#[derive(Debug, Default)]
pub struct Head {
    series: SeriesSlab,
    /// Label hash → the slot of the first series with that hash.
    by_hash: IdMap<SlotId>,
    /// Label hash → slots of further series with the same hash (rare).
    hash_conflicts: IdMap<Vec<SlotId>>,
    postings: Postings,
    /// Seeds the label hash: foldhash, randomly seeded per head, so label
    /// sets chosen to collide cannot be precomputed (hash flooding only
    /// costs the side table, never correctness).
    hasher: foldhash::fast::RandomState,
    next_id: u64,
    /// Samples older than this are refused ([`Head::truncate_before`] moved
    /// the head's start past them).
    min_valid_t: i64,
    /// Newest in-order sample time ever appended (Prometheus's head
    /// `MaxTime`; out-of-order samples are older): the out-of-order window
    /// is measured back from it. Not lowered by truncation.
    max_t: Option<i64>,
    /// Covers the labels of every series this head ever created (never
    /// narrowed when series go): the write path skips label checks for a
    /// series it finds here when these bounds pass its limits.
    label_bounds: LabelSetBounds,
    /// Unique per head in this process: [`StorageHint`]s carry it, so a
    /// hint from another tenant's head is never taken for one of ours.
    token: u64,
    /// Tests force every label hash to collide.
    #[cfg(test)]
    forced_hash: Option<u64>,
}

/// Hands out [`Head::token`]s; 0 is never handed out.
static NEXT_HEAD_TOKEN: AtomicU64 = AtomicU64::new(1);

/// One answer of [`Head::lookup_packed_many`]: the series' ID, slot and
/// the series.
pub type Found<'h> = Option<(u64, SlotId, &'h MemSeries)>;

impl Head {
    pub fn new() -> Head {
        Head {
            next_id: 1,
            min_valid_t: i64::MIN,
            token: NEXT_HEAD_TOKEN.fetch_add(1, Ordering::Relaxed),
            ..Head::default()
        }
    }

    pub fn num_series(&self) -> usize {
        self.series.len()
    }

    /// Series whose metric name is `name` (from the index, no scan).
    pub fn series_count_for_metric(&self, name: &str) -> usize {
        self.postings.count(cairn_model::METRIC_NAME, name)
    }

    /// Bytes of encoded sample data in all chunks of all series.
    pub fn chunk_bytes(&self) -> u64 {
        self.series.values().map(|s| s.chunk_bytes() as u64).sum()
    }

    /// The oldest timestamp the head accepts.
    pub fn min_valid_t(&self) -> i64 {
        self.min_valid_t
    }

    /// Refuses samples older than `t` from now on (before a block of the
    /// range below `t` is written, so nothing can slip in behind it).
    pub fn raise_min_valid_t(&mut self, t: i64) {
        self.min_valid_t = self.min_valid_t.max(t);
    }

    /// The newest in-order sample time appended since open or replay.
    pub fn max_time(&self) -> Option<i64> {
        self.max_t
    }

    /// Oldest and newest sample time over all series, out-of-order
    /// samples included, if any.
    pub fn time_bounds(&self) -> Option<(i64, i64)> {
        self.bounds(MemSeries::time_range)
    }

    /// Oldest and newest in-order sample time over all series, if any.
    pub fn in_order_bounds(&self) -> Option<(i64, i64)> {
        self.bounds(MemSeries::in_order_range)
    }

    /// The oldest time the head may still hold a sample at: `min_valid_t`,
    /// or an older out-of-order sample not yet in a block (tombstones
    /// covering it must stay).
    pub fn oldest_held_t(&self) -> i64 {
        self.ooo_min_time()
            .map_or(self.min_valid_t, |t| t.min(self.min_valid_t))
    }

    /// The oldest out-of-order sample time over all series, if any.
    pub fn ooo_min_time(&self) -> Option<i64> {
        self.series
            .values()
            .filter_map(|s| s.ooo().and_then(|o| o.time_range()))
            .map(|(min_t, _)| min_t)
            .min()
    }

    /// Per series, the timestamps of its out-of-order samples inside
    /// `[start, end)`.
    pub fn ooo_timestamps_in(&self, start: i64, end: i64) -> Vec<(u64, Vec<i64>)> {
        let mut out = Vec::new();
        for (id, series) in self.series.iter() {
            let Some(ooo) = series.ooo() else {
                continue;
            };
            if !ooo.overlaps(start, end - 1) {
                continue;
            }
            let ts: Vec<i64> = ooo.samples_in(start, end - 1).iter().map(|s| s.0).collect();
            if !ts.is_empty() {
                out.push((id, ts));
            }
        }
        out
    }

    /// Removes these out-of-order samples (written to a block) and the
    /// series left with no sample at all; returns the samples removed.
    pub fn remove_ooo(&mut self, written: &[(u64, Vec<i64>)]) -> usize {
        let mut removed = 0;
        let mut empty = Vec::new();
        for (id, timestamps) in written {
            if let Some(series) = self.series.get_mut(*id) {
                removed += series.remove_ooo(timestamps);
                if series.time_range().is_none() {
                    empty.push(*id);
                }
            }
        }
        self.remove_series_batch(&empty);
        removed
    }

    fn bounds(&self, range: impl Fn(&MemSeries) -> Option<(i64, i64)>) -> Option<(i64, i64)> {
        let mut bounds: Option<(i64, i64)> = None;
        for series in self.series.values() {
            if let Some((min_t, max_t)) = range(series) {
                bounds = Some(match bounds {
                    None => (min_t, max_t),
                    Some((lo, hi)) => (lo.min(min_t), hi.max(max_t)),
                });
            }
        }
        bounds
    }

    /// Every series with its ID, in no particular order.
    pub fn iter_series(&self) -> impl Iterator<Item = (u64, &MemSeries)> {
        self.series.iter()
    }

    /// The ID the next new series gets. IDs start at 1 and only grow.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The seeded hash of packed label bytes ([`labels::pack_pairs`]): one
    /// pass over one byte string, and the packing is prefix-free, so no two
    /// different label sets feed the same bytes.
    fn hash_packed(&self, packed: &[u8]) -> u64 {
        #[cfg(test)]
        if let Some(forced) = self.forced_hash {
            return forced;
        }
        let mut hasher = self.hasher.build_hasher();
        hasher.write(packed);
        hasher.finish()
    }

    /// The ID of the series with exactly these labels.
    pub fn lookup(&self, labels: &Labels) -> Option<u64> {
        let mut packed = Vec::new();
        labels::pack_pairs(
            labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
            &mut packed,
        );
        self.lookup_packed(&packed).map(|(id, _)| id)
    }

    /// [`Head::lookup`] for borrowed labels, with the series itself.
    pub fn lookup_ref(&self, labels: LabelsRef<'_>) -> Option<(u64, &MemSeries)> {
        let mut packed = Vec::new();
        labels::pack_pairs(labels.iter().map(|l| (l.name, l.value)), &mut packed);
        self.lookup_packed(&packed)
    }

    /// The series whose labels pack to exactly `packed`
    /// ([`labels::pack_pairs`]), with its ID: one hash of the bytes and one
    /// `memcmp`, nothing allocated. (The write path looks up a request's
    /// series together, with [`Head::lookup_label_sets`].)
    #[inline]
    pub fn lookup_packed(&self, packed: &[u8]) -> Option<(u64, &MemSeries)> {
        self.find_series(self.hash_packed(packed), |labels| {
            labels.as_bytes() == packed
        })
    }

    /// Bounds covering the labels of every series this head ever created.
    pub fn label_bounds(&self) -> LabelSetBounds {
        self.label_bounds
    }

    /// Finds each label set, as given (unsorted sets, repeats or empty
    /// values simply match nothing), with [`Head::lookup_packed_many`]. A
    /// set's wire bytes, when given, are looked up as they are; the other
    /// sets are packed first.
    pub fn lookup_label_sets<'h, 'l>(
        &'h self,
        sets: impl Iterator<Item = LabelsAsSent<'l>> + Clone,
    ) -> Vec<Found<'h>> {
        let to_pack = || sets.clone().filter(|set| set.wire.is_none());
        let packed_len: usize = to_pack()
            .flat_map(|set| set.labels)
            .map(|l| labels::packed_len(l.name.len(), l.value.len()))
            .sum();
        let mut packed: Vec<u8> = Vec::with_capacity(packed_len);
        let mut ends: Vec<usize> = Vec::new();
        for set in to_pack() {
            labels::pack_pairs(set.labels.iter().map(|l| (l.name, l.value)), &mut packed);
            ends.push(packed.len());
        }
        let (mut ends, mut start) = (ends.into_iter(), 0);
        let keys: Vec<&[u8]> = sets
            .map(|set| match set.wire {
                Some(wire) => wire,
                None => {
                    let end = ends.next().expect("one end per packed set");
                    let key = &packed[start..end];
                    start = end;
                    key
                }
            })
            .collect();
        let mut found = Vec::with_capacity(keys.len());
        self.lookup_packed_many(&keys, &mut found);
        found
    }

    /// A hint for the series this head holds in `slot` under `id`.
    pub fn hint(&self, id: u64, slot: SlotId) -> StorageHint {
        StorageHint {
            store: self.token,
            id,
            slot,
        }
    }

    /// The series a hint points at, if this head issued the hint and the
    /// slot still holds that series.
    #[inline]
    pub fn at_hint(&self, hint: StorageHint) -> Found<'_> {
        if hint.store != self.token {
            return None;
        }
        match self.series.at(hint.slot) {
            Some((id, series)) if id == hint.id => Some((id, hint.slot, series)),
            _ => None,
        }
    }

    /// [`Head::lookup_packed`] for many packed label sets at once. Pushes
    /// one answer per set to `out`, in order.
    ///
    /// The lookups run as short passes over all sets (hash; probe the hash
    /// map; probe the series map; compare labels) instead of one set after
    /// the other: within a pass the memory reads of different sets do not
    /// depend on each other, so the CPU overlaps their cache misses, which
    /// are most of a lookup's cost once the head outgrows the CPU caches.
    ///
    /// Each answer carries the series' slot, which
    /// [`Head::append_in_slot`] takes to reach the series without a probe.
    pub fn lookup_packed_many<'h>(&'h self, sets: &[&[u8]], out: &mut Vec<Found<'h>>) {
        let hashes: Vec<u64> = sets.iter().map(|set| self.hash_packed(set)).collect();
        let firsts: Vec<Option<SlotId>> = hashes
            .iter()
            .map(|hash| self.by_hash.get(hash).copied())
            .collect();
        let candidates: Vec<Option<(u64, &MemSeries)>> = firsts
            .iter()
            .map(|slot| slot.and_then(|slot| self.series.at(slot)))
            .collect();
        // Read what the comparison and the append plan read next (the
        // packed labels, the series' last sample), for the same reason.
        let mut sink = 0u64;
        for (_, series) in candidates.iter().flatten() {
            let first_label_byte = series.labels().as_bytes().first().copied();
            let last_t = series.last().map_or(0, |(t, _)| t as u64);
            sink = sink.wrapping_add(u64::from(first_label_byte.unwrap_or(0)) ^ last_t);
        }
        std::hint::black_box(sink);
        out.reserve(sets.len());
        for (i, &set) in sets.iter().enumerate() {
            let found = match (firsts[i], candidates[i]) {
                (None, _) => None,
                (Some(slot), Some((id, series))) if series.labels().as_bytes() == set => {
                    Some((id, slot, series))
                }
                // Not the first series under this hash: the side table.
                _ => self.find_slot(hashes[i], |labels| labels.as_bytes() == set),
            };
            out.push(found);
        }
    }

    /// The series under `hash` whose labels satisfy `same`.
    #[inline]
    fn find_series(
        &self,
        hash: u64,
        same: impl Fn(&PackedLabels) -> bool,
    ) -> Option<(u64, &MemSeries)> {
        self.find_slot(hash, same).map(|(id, _, s)| (id, s))
    }

    /// [`Head::find_series`] with the series' slot.
    #[inline]
    fn find_slot(
        &self,
        hash: u64,
        same: impl Fn(&PackedLabels) -> bool,
    ) -> Option<(u64, SlotId, &MemSeries)> {
        let first = *self.by_hash.get(&hash)?;
        let matching = |slot: SlotId| {
            self.series
                .at(slot)
                .filter(|(_, s)| same(s.labels()))
                .map(|(id, s)| (id, slot, s))
        };
        if let Some(found) = matching(first) {
            return Some(found);
        }
        self.hash_conflicts
            .get(&hash)
            .and_then(|slots| slots.iter().find_map(|slot| matching(*slot)))
    }

    /// Reads, for each slot, what appending to its series will touch (the
    /// slot and the open chunk's last byte), so that the appends that
    /// follow find it in cache. These reads do not depend on each other, so
    /// the CPU overlaps their misses, where the appends (long loop bodies)
    /// would wait on them one at a time. [`NO_SLOT`] is skipped.
    pub fn warm_for_append(&self, slots: impl Iterator<Item = SlotId>) {
        let mut sink = 0u64;
        for slot in slots {
            if let Some((_, series)) = self.series.at(slot) {
                sink = sink.wrapping_add(u64::from(series.open_chunk_tail()));
            }
        }
        std::hint::black_box(sink);
    }

    pub fn get(&self, id: u64) -> Option<&MemSeries> {
        self.series.get(id)
    }

    /// Creates a series with a given ID (from an append plan or the WAL).
    /// Returns false, changing nothing, if the ID or the labels already exist.
    pub fn create_series(&mut self, id: u64, labels: &Labels) -> bool {
        let packed = PackedLabels::new(labels);
        let hash = self.hash_packed(packed.as_bytes());
        if self.series.contains(id) || self.find_series(hash, |l| *l == packed).is_some() {
            return false;
        }
        self.postings.add(
            id,
            labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        );
        self.label_bounds
            .include(labels.iter().map(|l| (l.name.as_str(), l.value.as_str())));
        let slot = self.series.insert(id, MemSeries::new(packed));
        match self.by_hash.entry(hash) {
            Entry::Vacant(entry) => {
                entry.insert(slot);
            }
            Entry::Occupied(_) => self.hash_conflicts.entry(hash).or_default().push(slot),
        }
        self.next_id = self.next_id.max(id + 1);
        true
    }

    /// Stores one accepted (or replayed) sample in series `id`, in order or
    /// out of order ([`MemSeries::apply`]); `None` if there is no such series.
    pub fn append(&mut self, id: u64, t: i64, v: f64) -> Option<Applied> {
        self.append_in_slot(NO_SLOT, id, t, v)
    }

    /// [`Head::append`] to the series a lookup found in `slot` (from
    /// [`Head::lookup_packed_many`]; the same writer must not have removed
    /// series since). The slot is checked to hold series `id`; if it does
    /// not (or is [`NO_SLOT`]), the series is found by ID.
    #[inline]
    pub fn append_in_slot(&mut self, slot: SlotId, id: u64, t: i64, v: f64) -> Option<Applied> {
        let slot = match self.series.at(slot) {
            Some((found, _)) if found == id => slot,
            _ => self.series.slot_of(id)?,
        };
        let min_valid_t = self.min_valid_t;
        let applied = self.series.at_mut(slot, id)?.apply(t, v, min_valid_t);
        if applied == Applied::InOrder && self.max_t.is_none_or(|max_t| t > max_t) {
            self.max_t = Some(t);
        }
        Some(applied)
    }

    /// Garbage-collects data older than `min_t`, as the head does after its
    /// oldest range was written to a block: closed chunks ending before
    /// `min_t` are dropped, and series whose newest sample is older than
    /// `min_t` are removed from the maps and the index; later appends older
    /// than `min_t` are refused as too old. Returns
    /// `(chunks_dropped, series_removed)`.
    pub fn truncate_before(&mut self, min_t: i64) -> (usize, usize) {
        let mut chunks_dropped = 0;
        let mut stale: Vec<u64> = Vec::new();
        for (id, series) in self.series.iter_mut() {
            match series.last() {
                Some((last_t, _)) if last_t >= min_t => {
                    chunks_dropped += series.drop_chunks_before(min_t);
                }
                // Out-of-order samples not yet in a block keep the series.
                _ if series.ooo().is_some() => chunks_dropped += series.drop_in_order(),
                _ => stale.push(id),
            }
        }
        chunks_dropped += self.remove_series_batch(&stale);
        self.min_valid_t = self.min_valid_t.max(min_t);
        (chunks_dropped, stale.len())
    }

    /// Removes many series from the maps and the index, rewriting each
    /// postings list once; returns their chunk count.
    fn remove_series_batch(&mut self, ids: &[u64]) -> usize {
        let removed: Vec<(u64, SlotId, MemSeries)> = ids
            .iter()
            .filter_map(|id| self.series.remove(*id).map(|(slot, s)| (*id, slot, s)))
            .collect();
        let mut chunks = 0;
        for (_, slot, series) in &removed {
            let hash = self.hash_packed(series.labels().as_bytes());
            self.unlink_hash(hash, *slot);
            chunks += series.closed_chunks().len() + 1;
        }
        self.postings.remove_many(
            removed
                .iter()
                .map(|(id, _, series)| (*id, series.labels().iter())),
        );
        chunks
    }

    fn unlink_hash(&mut self, hash: u64, slot: SlotId) {
        let conflicts = self.hash_conflicts.get_mut(&hash);
        if self.by_hash.get(&hash) == Some(&slot) {
            // Promote a conflicting series, if any, to the primary slot.
            match conflicts.and_then(|ids| ids.pop()) {
                Some(next) => {
                    self.by_hash.insert(hash, next);
                }
                None => {
                    self.by_hash.remove(&hash);
                }
            }
        } else if let Some(ids) = conflicts {
            ids.retain(|other| *other != slot);
        }
        if self
            .hash_conflicts
            .get(&hash)
            .is_some_and(|ids| ids.is_empty())
        {
            self.hash_conflicts.remove(&hash);
        }
    }

    /// IDs of the series matching every matcher, ascending.
    pub fn select_ids(&self, matchers: &[Matcher]) -> Vec<u64> {
        self.postings.select(matchers)
    }

    /// Copies out matching series with chunks overlapping `[start, end]`
    /// (series without such chunks are left out).
    pub fn snapshot(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<SeriesSnapshot> {
        let mut out = Vec::new();
        for id in self.select_ids(matchers) {
            let Some(series) = self.series.get(id) else {
                continue;
            };
            let chunks = series.chunks_overlapping(start, end);
            if chunks.is_empty() {
                continue;
            }
            out.push(SeriesSnapshot {
                id,
                labels: series.labels().clone(),
                chunks,
            });
        }
        out
    }

    /// Every label name in the index, unsorted.
    pub fn label_names(&self) -> Vec<Arc<str>> {
        self.postings.label_names().cloned().collect()
    }

    /// Per label name, the number of distinct values, sorted by name.
    pub fn label_names_cardinality(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .postings
            .label_names()
            .map(|name| {
                let values = self.postings.label_values(name).count();
                (name.to_string(), values as u64)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Per value of label `name`, the number of series carrying it, sorted by value.
    pub fn label_values_cardinality(&self, name: &str) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = self
            .postings
            .label_values(name)
            .map(|(value, ids)| (value.to_string(), ids.len() as u64))
            .collect();
        out.sort_unstable();
        out
    }

    /// Names, values and series per value over every series, read from
    /// the index (only the names in `only` when given).
    pub fn index_cardinality(
        &self,
        only: Option<&std::collections::BTreeSet<String>>,
    ) -> crate::stats::Cardinality {
        let mut out = crate::stats::Cardinality {
            series: self.num_series() as u64,
            ..Default::default()
        };
        for name in self.postings.label_names() {
            if only.is_some_and(|wanted| !wanted.contains(&**name)) {
                continue;
            }
            let values = self
                .postings
                .label_values(name)
                .filter(|(_, ids)| !ids.is_empty())
                .map(|(value, ids)| (value.to_string(), ids.len() as u64))
                .collect();
            out.values.insert(name.to_string(), values);
        }
        out
    }

    /// Every value of label `name` in the index, unsorted.
    pub fn label_values(&self, name: &str) -> Vec<Arc<str>> {
        self.postings
            .label_values(name)
            .map(|(v, _)| v.clone())
            .collect()
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::LabelRef;

    fn label_refs(labels: &Labels) -> Vec<LabelRef<'_>> {
        labels.iter().map(LabelRef::from).collect()
    }

    #[test]
    fn lookup_by_borrowed_labels_matches_lookup_by_owned_labels() {
        let mut head = Head::new();
        let sets = [
            Labels::from_pairs(&[("__name__", "up"), ("job", "a")]),
            Labels::from_pairs(&[("__name__", "up"), ("job", "ab")]),
            Labels::from_pairs(&[("__name__", "upj"), ("ob", "a")]),
            Labels::from_pairs(&[("__name__", "up")]),
        ];
        for (i, labels) in sets.iter().enumerate() {
            assert!(head.create_series(i as u64 + 1, labels));
        }
        for (i, labels) in sets.iter().enumerate() {
            let pairs = label_refs(labels);
            assert_eq!(head.lookup(labels), Some(i as u64 + 1));
            assert_eq!(
                head.lookup_ref(LabelsRef::from_sorted(&pairs))
                    .map(|(id, _)| id),
                Some(i as u64 + 1)
            );
            // A prefix of a known set is not that set.
            if pairs.len() > 1 {
                let prefix = LabelsRef::from_sorted(&pairs[..1]);
                assert_ne!(
                    head.lookup_ref(prefix).map(|(id, _)| id),
                    Some(i as u64 + 1)
                );
            }
        }
    }

    #[test]
    fn hash_collisions_keep_series_apart() {
        let mut head = Head::new();
        head.forced_hash = Some(42);
        let a = Labels::from_pairs(&[("__name__", "a")]);
        let b = Labels::from_pairs(&[("__name__", "b")]);
        let c = Labels::from_pairs(&[("__name__", "c")]);
        assert!(head.create_series(1, &a));
        assert!(head.create_series(2, &b));
        assert!(head.create_series(3, &c));
        assert!(!head.create_series(4, &b));
        assert_eq!(head.lookup(&a), Some(1));
        assert_eq!(head.lookup(&b), Some(2));
        assert_eq!(head.lookup(&c), Some(3));
        assert_eq!(head.lookup(&Labels::from_pairs(&[("__name__", "d")])), None);
        for (labels, id) in [(&a, 1), (&b, 2), (&c, 3)] {
            let pairs = label_refs(labels);
            assert_eq!(
                head.lookup_ref(LabelsRef::from_sorted(&pairs))
                    .map(|(id, _)| id),
                Some(id)
            );
        }
        head.append(2, 5, 1.0);
        let snap = head.snapshot(&[Matcher::equal("__name__", "b")], 0, 10);
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].labels.to_labels(), b);
        assert_eq!(head.next_id(), 4);
    }

    #[test]
    fn truncation_drops_old_chunks_and_stale_series_even_when_hashes_collide() {
        let mut head = Head::new();
        head.forced_hash = Some(7);
        let old = Labels::from_pairs(&[("__name__", "old")]);
        let live = Labels::from_pairs(&[("__name__", "live")]);
        let also_old = Labels::from_pairs(&[("__name__", "also_old")]);
        for (id, labels) in [(1, &old), (2, &live), (3, &also_old)] {
            head.create_series(id, labels);
        }
        for i in 0..300 {
            head.append(2, i * 1000, 1.0);
        }
        head.append(1, 5, 1.0);
        head.append(3, 6, 1.0);
        // Series 2 has chunks [0, 119s], [120s, 239s] and an open one.
        let (chunks, series) = head.truncate_before(150_000);
        assert_eq!(head.min_valid_t(), 150_000);
        assert_eq!((chunks, series), (1 + 2, 2));
        assert_eq!(head.num_series(), 1);
        assert_eq!(head.lookup(&old), None);
        assert_eq!(head.lookup(&also_old), None);
        assert_eq!(head.lookup(&live), Some(2));
        assert_eq!(head.select_ids(&[]), vec![2]);
        assert!(head.label_values("__name__").iter().all(|v| &**v == "live"));
        let first = head.snapshot(&[], i64::MIN, i64::MAX)[0].samples_in(i64::MIN, i64::MAX)[0];
        assert_eq!(first.t, 120_000);
        // A removed series can come back as a new one.
        assert!(head.create_series(4, &old));
        assert_eq!(head.lookup(&old), Some(4));
    }

    #[test]
    fn has_sample_in_is_exact() {
        let mut head = Head::new();
        head.create_series(1, &Labels::from_pairs(&[("a", "b")]));
        head.append(1, 0, 1.0);
        head.append(1, 100, 1.0);
        let snap = &head.snapshot(&[], 50, 60)[0];
        assert!(!snap.has_sample_in(50, 60));
        assert!(snap.has_sample_in(50, 100));
        assert!(snap.samples_in(50, 60).is_empty());
    }
}
