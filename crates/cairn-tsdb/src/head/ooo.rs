//! Out-of-order samples: the append rule with a window, each series'
//! out-of-order buffer, and merging it with the in-order chunks.
//!
//! The rules are Prometheus's (`tsdb/head_append.go`, `memSeries.appendable`;
//! `tsdb/ooo_head.go`), with Mimir's per-tenant `out_of_order_time_window`:
//! - a sample that the in-order rules accept (newer than the series' last
//!   sample, and not older than the head's `min_valid_t`) goes in order;
//! - otherwise, with a window `W > 0`, it is out of order and accepted if
//!   `t >= head_max - W`, where `head_max` is the newest sample time of the
//!   whole head (not the series) when the append began; older ones are
//!   `sample_too_old`;
//! - with `W = 0` nothing changes: `sample_too_old` below `min_valid_t`,
//!   `sample_out_of_order` below the series' last sample;
//! - an out-of-order sample whose timestamp the series already holds in the
//!   head is dropped without an error, whatever its value: the first write
//!   wins (Prometheus's `OOOChunk.Insert` refuses it and the appender drops
//!   it silently). Cairn also checks the in-order chunks, so the head never
//!   holds a timestamp twice and every read sees one value.
//!
//! Each series keeps its out-of-order samples in [`OooSamples`]: a sorted
//! buffer of up to [`OOO_CHUNK_CAP`] samples (Prometheus's
//! `out_of_order_cap_max` default), encoded into its own chunk when full.
//! Those chunks may overlap one another and the in-order chunks; readers get
//! them merged by [`merge_chunks`].

use std::sync::Arc;

use cairn_model::DiscardReason;

use super::series::{decide, AppendDecision, LastSample, CHUNK_RANGE_MS};
use crate::chunk::{ClosedChunk, XorAppender, XorIter, SAMPLES_PER_CHUNK};

/// Samples in an out-of-order buffer before it is encoded into a chunk.
pub const OOO_CHUNK_CAP: usize = 32;

/// Where an incoming sample goes, decided before the WAL write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Appended to the series' in-order chunks.
    InOrder,
    /// Inserted into the series' out-of-order buffer.
    OutOfOrder,
    /// Same timestamp and value as the series' last sample: accepted, not stored twice.
    SilentDuplicate,
    Reject(DiscardReason),
}

/// The out-of-order part of the append rules (see the module docs).
/// `window_ms` is the tenant's window (0: off); `head_max` the head's newest
/// sample time when the append began.
pub fn appendable(
    last: LastSample,
    t: i64,
    v_bits: u64,
    min_valid_t: i64,
    window_ms: i64,
    head_max: i64,
) -> Verdict {
    if window_ms <= 0 {
        if t < min_valid_t {
            return Verdict::Reject(DiscardReason::SampleTooOld);
        }
        return match decide(last, t, v_bits) {
            AppendDecision::Store => Verdict::InOrder,
            AppendDecision::SilentDuplicate => Verdict::SilentDuplicate,
            AppendDecision::Reject(reason) => Verdict::Reject(reason),
        };
    }
    if t >= min_valid_t {
        match decide(last, t, v_bits) {
            AppendDecision::Store => return Verdict::InOrder,
            AppendDecision::SilentDuplicate => return Verdict::SilentDuplicate,
            AppendDecision::Reject(DiscardReason::SampleDuplicateTimestamp) => {
                return Verdict::Reject(DiscardReason::SampleDuplicateTimestamp)
            }
            AppendDecision::Reject(_) => {}
        }
    }
    if t >= head_max.saturating_sub(window_ms) {
        Verdict::OutOfOrder
    } else {
        Verdict::Reject(DiscardReason::SampleTooOld)
    }
}

/// One series' out-of-order samples (see the module docs).
#[derive(Debug, Default)]
pub struct OooSamples {
    /// Sorted by time, no timestamp twice, at most [`OOO_CHUNK_CAP`].
    open: Vec<(i64, f64)>,
    /// Encoded full buffers, each sorted; they may overlap one another.
    closed: Vec<ClosedChunk>,
}

impl OooSamples {
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.closed.is_empty()
    }

    /// The value bits stored at `t`, if any.
    pub fn get(&self, t: i64) -> Option<u64> {
        if let Ok(i) = self.open.binary_search_by_key(&t, |s| s.0) {
            return Some(self.open[i].1.to_bits());
        }
        self.closed
            .iter()
            .filter(|c| c.min_t <= t && t <= c.max_t)
            .find_map(|c| c.iter().find(|s| s.0 == t).map(|s| s.1.to_bits()))
    }

    /// Inserts a sample; false (nothing changed) if `t` is held already.
    pub fn insert(&mut self, t: i64, v: f64) -> bool {
        if self.get(t).is_some() {
            return false;
        }
        if self.open.len() >= OOO_CHUNK_CAP {
            let full = std::mem::take(&mut self.open);
            self.closed.extend(encode(&full));
        }
        let at = self.open.partition_point(|s| s.0 < t);
        self.open.insert(at, (t, v));
        true
    }

    /// Oldest and newest timestamp held.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let open = match (self.open.first(), self.open.last()) {
            (Some(first), Some(last)) => Some((first.0, last.0)),
            _ => None,
        };
        self.closed
            .iter()
            .map(|c| (c.min_t, c.max_t))
            .chain(open)
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }

    /// Whether a sample may lie inside `[start, end]` (by chunk ranges).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.time_range()
            .is_some_and(|(min_t, max_t)| min_t <= end && start <= max_t)
    }

    /// Samples inside `[start, end]`, sorted by time.
    pub fn samples_in(&self, start: i64, end: i64) -> Vec<(i64, f64)> {
        let mut out: Vec<(i64, f64)> = self
            .open
            .iter()
            .copied()
            .filter(|s| start <= s.0 && s.0 <= end)
            .collect();
        for chunk in self.closed.iter().filter(|c| c.overlaps(start, end)) {
            out.extend(chunk.iter().filter(|s| start <= s.0 && s.0 <= end));
        }
        if !self.closed.is_empty() {
            out.sort_by_key(|s| s.0);
        }
        out
    }

    /// Removes the samples at the given timestamps (after they were written
    /// to a block); returns how many were removed.
    pub fn remove(&mut self, timestamps: &[i64]) -> usize {
        let mut gone: Vec<i64> = timestamps.to_vec();
        gone.sort_unstable();
        let before = self.len();
        let kept: Vec<(i64, f64)> = self
            .samples_in(i64::MIN, i64::MAX)
            .into_iter()
            .filter(|s| gone.binary_search(&s.0).is_err())
            .collect();
        let full = kept.len() / OOO_CHUNK_CAP * OOO_CHUNK_CAP;
        self.closed = kept[..full]
            .chunks(OOO_CHUNK_CAP)
            .flat_map(encode)
            .collect();
        self.open = kept[full..].to_vec();
        before - self.len()
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        let closed: usize = self
            .closed
            .iter()
            .map(|c| usize::from(crate::chunk::xor::sample_count(&c.data)))
            .sum();
        closed + self.open.len()
    }

    /// Bytes held (encoded chunks plus the open buffer).
    pub fn bytes(&self) -> usize {
        let closed: usize = self.closed.iter().map(|c| c.data.len()).sum();
        closed + self.open.len() * std::mem::size_of::<(i64, f64)>()
    }

    /// Chunks held, the open buffer counting as one.
    pub fn chunk_count(&self) -> usize {
        self.closed.len() + usize::from(!self.open.is_empty())
    }
}

/// Encodes sorted samples into chunks of at most [`SAMPLES_PER_CHUNK`],
/// never spanning a multiple of [`CHUNK_RANGE_MS`] (so a head range can be
/// cut into a block along chunk boundaries).
pub fn encode(samples: &[(i64, f64)]) -> Vec<ClosedChunk> {
    let mut out = Vec::new();
    let mut current: Option<(i64, XorAppender)> = None;
    for &(t, v) in samples {
        let must_cut = current.as_ref().is_some_and(|(min_t, appender)| {
            appender.sample_count() >= SAMPLES_PER_CHUNK
                || min_t.div_euclid(CHUNK_RANGE_MS) != t.div_euclid(CHUNK_RANGE_MS)
        });
        if must_cut {
            out.extend(finish(current.take()));
        }
        current
            .get_or_insert_with(|| (t, XorAppender::new()))
            .1
            .append(t, v);
    }
    out.extend(finish(current));
    out
}

fn finish(current: Option<(i64, XorAppender)>) -> Option<ClosedChunk> {
    let (min_t, appender) = current?;
    let (max_t, _) = appender.last()?;
    Some(ClosedChunk {
        min_t,
        max_t,
        data: Arc::from(appender.into_bytes()),
    })
}

/// The samples of sorted, non-overlapping in-order `chunks` and sorted
/// out-of-order samples, inside `[start, end]`, merged into sorted chunks
/// without a timestamp twice (the in-order sample wins a tie).
pub fn merge_chunks(
    chunks: &[ClosedChunk],
    ooo: &[(i64, f64)],
    start: i64,
    end: i64,
) -> Vec<ClosedChunk> {
    let in_order = chunks
        .iter()
        .flat_map(|c| c.iter())
        .filter(|s| start <= s.0 && s.0 <= end);
    let mut merged: Vec<(i64, f64)> = Vec::with_capacity(ooo.len() + 120 * chunks.len());
    let mut ooo = ooo
        .iter()
        .copied()
        .filter(|s| start <= s.0 && s.0 <= end)
        .peekable();
    for sample in in_order {
        while let Some(next) = ooo.next_if(|o| o.0 < sample.0) {
            merged.push(next);
        }
        ooo.next_if(|o| o.0 == sample.0);
        merged.push(sample);
    }
    merged.extend(ooo);
    encode(&merged)
}

/// Whether the encoded chunk bytes hold a sample at `t`; its value bits.
pub fn find_in_chunk(data: &[u8], t: i64) -> Option<u64> {
    find_in_samples(XorIter::new(data), t)
}

/// Whether samples in time order hold one at `t`; its value bits.
pub fn find_in_samples(samples: impl Iterator<Item = (i64, f64)>, t: i64) -> Option<u64> {
    samples
        .take_while(|s| s.0 <= t)
        .find(|s| s.0 == t)
        .map(|s| s.1.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_rules_follow_prometheus() {
        let last = Some((100, 1f64.to_bits()));
        let v = 2f64.to_bits();
        // W = 0: today's rules exactly.
        assert_eq!(
            appendable(last, 50, v, 0, 0, 100),
            Verdict::Reject(DiscardReason::SampleOutOfOrder)
        );
        assert_eq!(
            appendable(last, 50, v, 60, 0, 100),
            Verdict::Reject(DiscardReason::SampleTooOld)
        );
        assert_eq!(appendable(last, 101, v, 0, 0, 100), Verdict::InOrder);
        assert_eq!(
            appendable(last, 100, v, 0, 0, 100),
            Verdict::Reject(DiscardReason::SampleDuplicateTimestamp)
        );
        // W > 0: the bound is the head's max time minus the window.
        assert_eq!(appendable(last, 50, v, 0, 50, 100), Verdict::OutOfOrder);
        assert_eq!(
            appendable(last, 49, v, 0, 50, 100),
            Verdict::Reject(DiscardReason::SampleTooOld)
        );
        // The head's max, not the series': a series far behind the head.
        assert_eq!(
            appendable(last, 90, v, 0, 50, 1000),
            Verdict::Reject(DiscardReason::SampleTooOld)
        );
        // Below min_valid_t (already cut into a block) but inside the window.
        assert_eq!(appendable(None, 70, v, 80, 50, 100), Verdict::OutOfOrder);
        assert_eq!(
            appendable(None, 70, v, 80, 0, 100),
            Verdict::Reject(DiscardReason::SampleTooOld)
        );
        // In-order duplicates keep their rules.
        assert_eq!(
            appendable(last, 100, 1f64.to_bits(), 0, 50, 100),
            Verdict::SilentDuplicate
        );
        assert_eq!(
            appendable(last, 100, v, 0, 50, 100),
            Verdict::Reject(DiscardReason::SampleDuplicateTimestamp)
        );
    }

    #[test]
    fn buffer_stays_sorted_refuses_duplicates_and_cuts_chunks_of_32() {
        let mut ooo = OooSamples::default();
        // 100 samples in a scrambled order.
        let ts: Vec<i64> = (0..100).map(|i| (i * 37) % 100).collect();
        for &t in &ts {
            assert!(ooo.insert(t, t as f64));
        }
        assert!(!ooo.insert(5, 99.0));
        assert_eq!(ooo.get(5), Some(5f64.to_bits()));
        assert_eq!(ooo.len(), 100);
        assert_eq!(ooo.chunk_count(), 4);
        let all: Vec<i64> = ooo
            .samples_in(i64::MIN, i64::MAX)
            .iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(ooo.time_range(), Some((0, 99)));
        let some: Vec<i64> = ooo.samples_in(10, 12).iter().map(|s| s.0).collect();
        assert_eq!(some, vec![10, 11, 12]);
        assert_eq!(ooo.remove(&[3, 50, 1000]), 2);
        assert_eq!(ooo.len(), 98);
        assert_eq!(ooo.get(50), None);
        assert_eq!(ooo.get(51), Some(51f64.to_bits()));
    }

    #[test]
    fn merge_sorts_dedups_and_cuts_at_range_boundaries() {
        let in_order = encode(&[(10, 1.0), (20, 2.0), (30, 3.0)]);
        let ooo = [(5, 0.5), (20, 9.0), (25, 2.5)];
        let merged = merge_chunks(&in_order, &ooo, i64::MIN, i64::MAX);
        let got: Vec<(i64, f64)> = merged.iter().flat_map(|c| c.iter()).collect();
        assert_eq!(
            got,
            vec![(5, 0.5), (10, 1.0), (20, 2.0), (25, 2.5), (30, 3.0)]
        );
        let clipped = merge_chunks(&in_order, &ooo, 6, 25);
        assert_eq!(clipped.len(), 1);
        assert_eq!((clipped[0].min_t, clipped[0].max_t), (10, 25));
        let crossing = encode(&[(CHUNK_RANGE_MS - 1, 1.0), (CHUNK_RANGE_MS, 2.0)]);
        assert_eq!(crossing.len(), 2);
        assert_eq!(
            find_in_chunk(&crossing[1].data, CHUNK_RANGE_MS),
            Some(2f64.to_bits())
        );
        assert_eq!(find_in_chunk(&crossing[1].data, 7), None);
    }
}
