//! One series in the head: its interned labels, closed chunks and the open
//! chunk, and its out-of-order samples ([`super::ooo`]), if any.

use std::sync::Arc;

use cairn_model::{DiscardReason, Labels};

use super::labels::PackedLabels;
use super::ooo::{self, OooSamples};
use crate::chunk::{dense, ClosedChunk, XorAppender, ENCODING_DENSE, SAMPLES_PER_CHUNK};

/// Chunks never span a multiple of this range (2h, Prometheus's block
/// range), so the head's oldest range can be cut into a block along chunk
/// boundaries.
pub const CHUNK_RANGE_MS: i64 = 2 * 60 * 60 * 1000;

/// A series' labels as the head stores them.
pub type SeriesLabels = PackedLabels;

/// The last stored sample of a series: timestamp and value bits.
pub type LastSample = Option<(i64, u64)>;

/// What to do with one incoming sample given the series' last sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendDecision {
    Store,
    /// Same timestamp, same value bits: accepted, not stored twice.
    SilentDuplicate,
    Reject(DiscardReason),
}

/// Prometheus's in-order append rules.
pub fn decide(last: LastSample, t: i64, v_bits: u64) -> AppendDecision {
    match last {
        None => AppendDecision::Store,
        Some((last_t, _)) if t > last_t => AppendDecision::Store,
        Some((last_t, _)) if t < last_t => AppendDecision::Reject(DiscardReason::SampleOutOfOrder),
        Some((_, last_bits)) if last_bits == v_bits => AppendDecision::SilentDuplicate,
        Some(_) => AppendDecision::Reject(DiscardReason::SampleDuplicateTimestamp),
    }
}

#[derive(Debug)]
struct OpenChunk {
    min_t: i64,
    appender: XorAppender,
}

#[derive(Debug)]
pub struct MemSeries {
    labels: SeriesLabels,
    closed: Vec<ClosedChunk>,
    /// `None` only before the first sample: a cut opens the next chunk
    /// with the sample that caused it, so the open chunk always holds the
    /// series' newest sample.
    open: Option<OpenChunk>,
    /// Out-of-order samples; `None` until the first one.
    ooo: Option<Box<OooSamples>>,
}

/// Where [`MemSeries::apply`] put a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    InOrder,
    OutOfOrder,
    /// The series held the timestamp already: not stored.
    Duplicate,
}

impl MemSeries {
    pub fn new(labels: SeriesLabels) -> MemSeries {
        MemSeries {
            labels,
            closed: Vec::new(),
            open: None,
            ooo: None,
        }
    }

    pub fn labels(&self) -> &SeriesLabels {
        &self.labels
    }

    pub fn to_labels(&self) -> Labels {
        self.labels.to_labels()
    }

    pub fn last(&self) -> LastSample {
        self.open.as_ref().and_then(|open| open.appender.last())
    }

    /// The open chunk's last byte (0 without one): the byte the next
    /// append writes into, read by [`super::Head::warm_for_append`].
    pub fn open_chunk_tail(&self) -> u8 {
        self.open
            .as_ref()
            .map_or(0, |open| open.appender.last_byte())
    }

    pub fn closed_chunks(&self) -> &[ClosedChunk] {
        &self.closed
    }

    /// Stores a sample the append plan accepted (or one replayed from the
    /// WAL): in order when the in-order rules allow (newer than the last
    /// sample, not older than `min_valid_t`), else into the out-of-order
    /// buffer unless the series holds the timestamp already.
    pub fn apply(&mut self, t: i64, v: f64, min_valid_t: i64) -> Applied {
        let last = self.last();
        if t >= min_valid_t && last.is_none_or(|(last_t, _)| t > last_t) {
            self.append(t, v);
            return Applied::InOrder;
        }
        if self.sample_at(t).is_some() {
            return Applied::Duplicate;
        }
        if self.ooo.get_or_insert_with(Box::default).insert(t, v) {
            Applied::OutOfOrder
        } else {
            Applied::Duplicate
        }
    }

    /// The value bits of the sample at `t` held in the head, if any
    /// (decodes at most the chunks whose range holds `t`).
    pub fn sample_at(&self, t: i64) -> Option<u64> {
        if let Some(open) = &self.open {
            if open.min_t <= t && open.appender.last().is_some_and(|(max_t, _)| t <= max_t) {
                if let Some(bits) = ooo::find_in_chunk(&open.appender.to_shared(), t) {
                    return Some(bits);
                }
            }
        }
        let closed = self
            .closed
            .iter()
            .filter(|c| c.min_t <= t && t <= c.max_t)
            .find_map(|c| ooo::find_in_samples(c.iter(), t));
        closed.or_else(|| self.ooo.as_ref().and_then(|o| o.get(t)))
    }

    /// The out-of-order samples, if the series ever had one.
    pub fn ooo(&self) -> Option<&OooSamples> {
        self.ooo.as_deref().filter(|o| !o.is_empty())
    }

    /// Removes out-of-order samples at these timestamps (written to a
    /// block); returns how many.
    pub fn remove_ooo(&mut self, timestamps: &[i64]) -> usize {
        let removed = self.ooo.as_mut().map_or(0, |o| o.remove(timestamps));
        if self.ooo.as_ref().is_some_and(|o| o.is_empty()) {
            self.ooo = None;
        }
        removed
    }

    /// Drops every in-order chunk, the open one too (its data is in a
    /// block; the series lives on for its out-of-order samples). Returns
    /// how many chunks.
    pub fn drop_in_order(&mut self) -> usize {
        let dropped = self.closed.len() + usize::from(self.open.is_some());
        self.closed = Vec::new();
        self.open = None;
        dropped
    }

    /// Appends a sample under the in-order rules; returns the decision taken.
    pub fn append(&mut self, t: i64, v: f64) -> AppendDecision {
        let decision = decide(self.last(), t, v.to_bits());
        if decision != AppendDecision::Store {
            return decision;
        }
        let must_cut = self.open.as_ref().is_some_and(|open| {
            open.appender.sample_count() >= SAMPLES_PER_CHUNK
                || open.min_t.div_euclid(CHUNK_RANGE_MS) != t.div_euclid(CHUNK_RANGE_MS)
        });
        if must_cut {
            self.cut_open_chunk();
        }
        let open = self.open.get_or_insert_with(|| OpenChunk {
            min_t: t,
            appender: XorAppender::new(),
        });
        open.appender.append(t, v);
        decision
    }

    /// Closes the open chunk (re-encoded by [`compact_chunk`]).
    ///
    /// A presized next chunk (capacity from this one's length, no quarter
    /// steps) was measured and not kept: ~2-4 % less ingest CPU, but a
    /// half-full chunk then reserves its full size, +20 % live head heap
    /// mid-chunk (BENCHMARKS.md, issue 8 fifth round).
    fn cut_open_chunk(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let Some((max_t, _)) = open.appender.last() else {
            return;
        };
        // Chunks are cut every ~120 samples: grow one slot at a time.
        self.closed.reserve_exact(1);
        // Untrimmed: `compact_chunk` copies the bytes into an exact-size
        // chunk and the vector is dropped right after.
        let xor = open.appender.into_untrimmed_bytes();
        self.closed.push(compact_chunk(open.min_t, max_t, &xor));
    }

    /// Chunks overlapping `[start, end]`, sorted and not overlapping, the
    /// open one copied. With out-of-order samples in the range, the range's
    /// samples are merged into new chunks clipped to `[start, end]`.
    pub fn chunks_overlapping(&self, start: i64, end: i64) -> Vec<ClosedChunk> {
        let in_order = self.in_order_chunks_overlapping(start, end);
        match self.ooo() {
            Some(ooo) if ooo.overlaps(start, end) => {
                let samples = ooo.samples_in(start, end);
                if samples.is_empty() {
                    return in_order;
                }
                ooo::merge_chunks(&in_order, &samples, start, end)
            }
            _ => in_order,
        }
    }

    /// In-order chunks overlapping `[start, end]`, the open one copied, oldest first.
    pub fn in_order_chunks_overlapping(&self, start: i64, end: i64) -> Vec<ClosedChunk> {
        let mut out: Vec<ClosedChunk> = self
            .closed
            .iter()
            .filter(|c| c.overlaps(start, end))
            .cloned()
            .collect();
        if let Some(open) = &self.open {
            if let Some((max_t, _)) = open.appender.last() {
                if open.min_t <= end && start <= max_t {
                    out.push(ClosedChunk {
                        min_t: open.min_t,
                        max_t,
                        data: open.appender.to_shared(),
                    });
                }
            }
        }
        out
    }

    /// Drops closed chunks that end before `min_t` (once they are in a
    /// block). Returns how many were dropped. The open chunk is kept: a
    /// series whose newest sample is older than `min_t` is removed whole by
    /// [`super::Head::truncate_before`] instead.
    pub fn drop_chunks_before(&mut self, min_t: i64) -> usize {
        let keep_from = self.closed.partition_point(|c| c.max_t < min_t);
        self.closed.drain(..keep_from);
        keep_from
    }

    /// Bytes of sample data held (closed chunks, the open one and the
    /// out-of-order samples).
    pub fn chunk_bytes(&self) -> usize {
        let closed: usize = self.closed.iter().map(|c| c.data.len()).sum();
        closed
            + self.open.as_ref().map_or(0, |o| o.appender.encoded_len())
            + self.ooo.as_ref().map_or(0, |o| o.bytes())
    }

    /// Time range of all samples held, out-of-order ones too, if any.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let ooo = self.ooo().and_then(|o| o.time_range());
        match (self.in_order_range(), ooo) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        }
    }

    /// Time range of the in-order samples, if any.
    pub fn in_order_range(&self) -> Option<(i64, i64)> {
        let min_t = match (self.closed.first(), &self.open) {
            (Some(first), _) => first.min_t,
            (None, Some(open)) => open.min_t,
            (None, None) => return None,
        };
        self.last().map(|(max_t, _)| (min_t, max_t))
    }
}

/// A cut chunk as the head keeps it: re-encoded dense
/// ([`crate::chunk::dense`]) when that is smaller, else the XOR bytes.
///
/// The XOR encoding is what appending needs (one sample at a time, no
/// look-ahead), but on decimal values (node exporter's 2-decimal CPU
/// seconds, byte counters) it costs 5-6 bytes per sample, where the dense
/// encoding, which sees the whole chunk, takes about 2: the closed chunks
/// are most of a head's memory. Readers take either encoding
/// ([`ClosedChunk::iter`]); blocks are written dense anyway.
fn compact_chunk(min_t: i64, max_t: i64, xor: &[u8]) -> ClosedChunk {
    // Sized from the header: collecting unsized grows each vector ~8
    // times per cut, a few per cent of ingest CPU in reallocations.
    let count = usize::from(crate::chunk::xor::sample_count(xor));
    let (mut ts, mut vs) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for (t, v) in crate::chunk::XorIter::new(xor) {
        ts.push(t);
        vs.push(v);
    }
    if !ts.is_empty() {
        if let Some(dense) = dense::encode_small(&ts, &vs) {
            // The in-memory tag of a non-XOR chunk takes 3 bytes.
            if dense.len() + 3 < xor.len() {
                return ClosedChunk::tagged(min_t, max_t, ENCODING_DENSE, &dense);
            }
        }
    }
    ClosedChunk {
        min_t,
        max_t,
        data: Arc::from(xor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_rules() {
        let mut series = MemSeries::new(PackedLabels::new(&Labels::empty()));
        assert_eq!(series.append(10, 1.0), AppendDecision::Store);
        assert_eq!(series.append(10, 1.0), AppendDecision::SilentDuplicate);
        assert_eq!(
            series.append(10, 2.0),
            AppendDecision::Reject(DiscardReason::SampleDuplicateTimestamp)
        );
        assert_eq!(
            series.append(9, 1.0),
            AppendDecision::Reject(DiscardReason::SampleOutOfOrder)
        );
        assert_eq!(series.append(11, f64::NAN), AppendDecision::Store);
        assert_eq!(series.append(11, f64::NAN), AppendDecision::SilentDuplicate);
    }

    #[test]
    fn closed_chunks_of_decimal_values_are_kept_dense_and_read_back_exactly() {
        let mut series = MemSeries::new(PackedLabels::new(&Labels::empty()));
        // A 2-decimal counter growing by irregular steps (CPU seconds).
        let samples: Vec<(i64, f64)> = (0..130)
            .map(|i| (i * 15_000, (i * 1_234 + (i * i) % 97) as f64 / 100.0))
            .collect();
        for &(t, v) in &samples {
            series.append(t, v);
        }
        let closed = &series.closed_chunks()[0];
        assert_eq!(closed.encoded().0, ENCODING_DENSE);
        let xor_len = {
            let mut xor = XorAppender::new();
            samples[..120].iter().for_each(|&(t, v)| xor.append(t, v));
            xor.encoded_len()
        };
        assert!(
            closed.data.len() < xor_len / 2,
            "{} vs {xor_len}",
            closed.data.len()
        );
        let read: Vec<(i64, f64)> = series
            .chunks_overlapping(i64::MIN, i64::MAX)
            .iter()
            .flat_map(|c| c.iter().collect::<Vec<_>>())
            .collect();
        assert_eq!(read, samples);
        assert_eq!(series.sample_at(15_000), Some(samples[1].1.to_bits()));
        assert_eq!(series.sample_at(15_001), None);
        // An out-of-order sample at a timestamp a dense chunk holds is a duplicate.
        assert_eq!(series.apply(30_000, 1.0, i64::MIN), Applied::Duplicate);
    }

    /// `n` samples of noise-like values (xorshift bits, ~8 XOR bytes
    /// each), at jittered timestamps (2 more bytes each) if `jitter`.
    fn noise(n: i64, jitter: bool) -> Vec<(i64, f64)> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let t = i * 10_000 + if jitter { (state % 5_000) as i64 } else { 0 };
                (t, f64::from_bits(state))
            })
            .collect()
    }

    #[test]
    fn closed_chunks_hold_exactly_their_bytes() {
        // Noise-like values stay XOR (dense is no smaller): the closed chunk
        // is an exact-size copy of the XOR bytes, not the untrimmed buffer.
        let samples = noise(121, false);
        let mut series = MemSeries::new(PackedLabels::new(&Labels::empty()));
        samples.iter().for_each(|&(t, v)| {
            series.append(t, v);
        });
        let closed = &series.closed_chunks()[0];
        let mut xor = XorAppender::new();
        samples[..120].iter().for_each(|&(t, v)| xor.append(t, v));
        let expected = xor.into_bytes();
        assert_eq!(closed.encoded().0, crate::chunk::ENCODING_XOR);
        assert_eq!(&closed.data[..], &expected[..]);
    }

    #[test]
    fn chunks_are_cut_at_120_samples_and_at_range_boundaries() {
        let mut series = MemSeries::new(PackedLabels::new(&Labels::empty()));
        for i in 0..250 {
            series.append(i * 1000, i as f64);
        }
        let chunks = series.chunks_overlapping(i64::MIN, i64::MAX);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.iter().count()).collect();
        assert_eq!(sizes, vec![120, 120, 10]);
        assert_eq!((chunks[1].min_t, chunks[1].max_t), (120_000, 239_000));

        let mut crossing = MemSeries::new(PackedLabels::new(&Labels::empty()));
        crossing.append(CHUNK_RANGE_MS - 1, 1.0);
        crossing.append(CHUNK_RANGE_MS, 2.0);
        assert_eq!(crossing.closed_chunks().len(), 1);
        assert_eq!(
            crossing.time_range(),
            Some((CHUNK_RANGE_MS - 1, CHUNK_RANGE_MS))
        );
        assert_eq!(
            crossing.chunks_overlapping(CHUNK_RANGE_MS, i64::MAX).len(),
            1
        );
    }
}
