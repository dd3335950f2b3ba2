//! What a query reads: the matching series of the blocks and the head,
//! merged into one list sorted by labels, then either decoded into the
//! samples inside the range (`Tsdb`'s `Queryable::select`) or handed out
//! undecoded as a [`LazySeries`] that decodes one series at a time into
//! the caller's buffer (`Queryable::select_set`, what the engine reads).
//!
//! Costs that matter at tens of thousands of series per query: every source
//! yields its series already sorted (blocks by their index order, the head
//! sorted once here), so merging is a near-linear walk over chunk lists
//! (no map keyed by labels, no samples copied); each series is then decoded
//! once, with reused buffers; a large eager selection is decoded on
//! several threads.

use cairn_model::{Labels, Sample, Series, TimeRange};

use crate::chunk::dense::Decoder;
use crate::chunk::{ClosedChunk, ENCODING_DENSE};

/// Appends the samples of `chunks` (oldest first) that lie inside `range`
/// to `out`. Decoding stops at the first sample past the range's end; dense
/// chunks (blocks) are decoded with `dense`'s reused buffers and their
/// samples in range found by binary search.
pub(crate) fn decode_into(
    out: &mut Vec<Sample>,
    chunks: &[ClosedChunk],
    range: TimeRange,
    dense: &mut Decoder,
) {
    for chunk in chunks {
        if chunk.max_t < range.start || chunk.min_t > range.end {
            continue;
        }
        if let (ENCODING_DENSE, bytes) = chunk.encoded() {
            // A malformed chunk yields no sample, as its iterator would.
            if dense.decode(bytes, chunk.min_t, chunk.max_t).is_ok() {
                let (ts, vs) = (dense.timestamps(), dense.values());
                let from = ts.partition_point(|&t| t < range.start);
                let to = from + ts[from..].partition_point(|&t| t <= range.end);
                out.extend(
                    ts[from..to]
                        .iter()
                        .zip(&vs[from..to])
                        .map(|(&t, &v)| Sample::new(t, v)),
                );
            }
            continue;
        }
        for (t, v) in chunk.iter() {
            if t > range.end {
                break;
            }
            if t >= range.start {
                out.push(Sample::new(t, v));
            }
        }
    }
}

/// Below this many chunks a selection is decoded on the calling thread.
const MIN_PARALLEL_CHUNKS: usize = 4_096;

/// One series' chunks from all sources (oldest source first).
pub(crate) type FoundSeries = (Labels, Vec<ClosedChunk>);

/// Appends the samples of one series' chunks inside `range` to `out`, in
/// time order. Chunks that follow each other in time (the rule within a
/// source) are decoded in turn; otherwise (overlapping sources) the samples
/// are sorted and of two with one timestamp the older source's is kept (a
/// crash between a block's rename and the head's truncation, or
/// overlapping blocks).
fn append_series_samples(
    out: &mut Vec<Sample>,
    dense: &mut Decoder,
    chunks: &[ClosedChunk],
    range: TimeRange,
) {
    let from = out.len();
    decode_into(out, chunks, range, dense);
    let in_order = chunks.windows(2).all(|w| w[0].max_t < w[1].min_t);
    if !in_order && !out[from..].windows(2).all(|w| w[0].t < w[1].t) {
        // Stable: equal timestamps stay in source order, the first is kept.
        let mut tail = out.split_off(from);
        tail.sort_by_key(|s| s.t);
        tail.dedup_by_key(|s| s.t);
        out.extend_from_slice(&tail);
    }
}

/// Samples of one series' chunks inside `range` (see
/// [`append_series_samples`]), decoded into `scratch` and copied out at
/// their exact length.
fn series_samples(
    scratch: &mut Vec<Sample>,
    dense: &mut Decoder,
    chunks: &[ClosedChunk],
    range: TimeRange,
) -> Vec<Sample> {
    scratch.clear();
    append_series_samples(scratch, dense, chunks, range);
    scratch.as_slice().to_vec()
}

/// Samples a chunk is assumed to hold when estimating decoding work (the
/// head cuts chunks at 120).
const SAMPLES_PER_CHUNK: usize = 120;

thread_local! {
    /// The dense-chunk decoder of this thread's lazy reads (its buffers are
    /// reused from one series to the next).
    static DENSE: std::cell::RefCell<Decoder> = std::cell::RefCell::new(Decoder::default());
}

/// Merged series (see [`merge_sources`]) decoded on demand: `Tsdb`'s
/// [`cairn_model::SeriesSet`]. Only chunk references are held (block
/// chunks are mapped, head chunks shared), so a query over every series
/// never holds all their decoded samples at once.
pub(crate) struct LazySeries {
    found: Vec<FoundSeries>,
    range: TimeRange,
    chunks: usize,
}

impl LazySeries {
    pub(crate) fn new(found: Vec<FoundSeries>, range: TimeRange) -> LazySeries {
        let chunks = found.iter().map(|(_, c)| c.len()).sum();
        LazySeries {
            found,
            range,
            chunks,
        }
    }
}

impl cairn_model::SeriesSet for LazySeries {
    fn len(&self) -> usize {
        self.found.len()
    }

    fn labels(&self, i: usize) -> &Labels {
        &self.found[i].0
    }

    fn append_samples(&self, i: usize, out: &mut Vec<Sample>) {
        let chunks = &self.found[i].1;
        DENSE.with(|dense| match dense.try_borrow_mut() {
            Ok(mut dense) => append_series_samples(out, &mut dense, chunks, self.range),
            // Only if a consumer reads from inside another read.
            Err(_) => append_series_samples(out, &mut Decoder::default(), chunks, self.range),
        });
    }

    fn decode_cost(&self) -> usize {
        self.chunks.saturating_mul(SAMPLES_PER_CHUNK)
    }

    fn into_labels(self: Box<Self>) -> Vec<Labels> {
        self.found.into_iter().map(|(labels, _)| labels).collect()
    }
}

/// Decodes merged series (see [`merge_sources`]); series without samples
/// in `range` are left out. A large selection is decoded on several
/// threads ([`cairn_model::cpu::split_map`], which hands their CPU time to
/// the calling thread).
pub(crate) fn decode_series(found: Vec<FoundSeries>, range: TimeRange) -> Vec<Series> {
    let chunks: usize = found.iter().map(|(_, c)| c.len()).sum();
    let threads = if chunks < MIN_PARALLEL_CHUNKS {
        1
    } else {
        cairn_model::cpu::available_threads()
            .min(found.len())
            .max(1)
    };
    let decode = |part: &[FoundSeries]| -> Vec<Vec<Sample>> {
        let mut scratch: Vec<Sample> = Vec::new();
        let mut dense = Decoder::default();
        part.iter()
            .map(|(_, chunks)| series_samples(&mut scratch, &mut dense, chunks, range))
            .collect()
    };
    let decoded: Vec<Vec<Sample>> = if threads <= 1 {
        decode(&found)
    } else {
        let parts = cairn_model::cpu::split_map(&found, threads, decode);
        // `split_map` cuts the same contiguous chunks. A helper only panics
        // on a bug; its part is decoded again here so that the panic
        // surfaces on the reading thread.
        parts
            .into_iter()
            .zip(found.chunks(found.len().div_ceil(threads)))
            .flat_map(|(part, items)| part.unwrap_or_else(|| decode(items)))
            .collect()
    };
    found
        .into_iter()
        .zip(decoded)
        .filter(|(_, samples)| !samples.is_empty())
        .map(|((labels, _), samples)| Series { labels, samples })
        .collect()
}

/// Merges per-source `(labels, chunks)` lists (oldest source first) into
/// one list sorted by labels, a series found in several sources getting
/// their chunks in source order. Each source holds a label set at most
/// once; the sorted ones are merged pairwise in one pass each (one label
/// comparison per series, nothing moved twice).
pub(crate) fn merge_sources(mut sources: Vec<Vec<FoundSeries>>) -> Vec<FoundSeries> {
    for source in &mut sources {
        if !source.is_sorted_by(|a, b| a.0 <= b.0) {
            source.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
    sources
        .into_iter()
        .filter(|s| !s.is_empty())
        .reduce(merge_two)
        .unwrap_or_default()
}

/// Merges two sorted lists, `older`'s chunks first for a shared label set.
fn merge_two(older: Vec<FoundSeries>, newer: Vec<FoundSeries>) -> Vec<FoundSeries> {
    let mut out = Vec::with_capacity(older.len().max(newer.len()));
    let mut older = older.into_iter().peekable();
    let mut newer = newer.into_iter().peekable();
    while let (Some(a), Some(b)) = (older.peek(), newer.peek()) {
        match a.0.cmp(&b.0) {
            std::cmp::Ordering::Less => out.extend(older.next()),
            std::cmp::Ordering::Greater => out.extend(newer.next()),
            std::cmp::Ordering::Equal => {
                if let (Some((labels, mut chunks)), Some((_, later))) = (older.next(), newer.next())
                {
                    chunks.extend(later);
                    out.push((labels, chunks));
                }
            }
        }
    }
    out.extend(older);
    out.extend(newer);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::XorAppender;
    use std::sync::Arc;

    fn chunk(points: &[(i64, f64)]) -> ClosedChunk {
        let mut appender = XorAppender::new();
        for &(t, v) in points {
            appender.append(t, v);
        }
        ClosedChunk {
            min_t: points[0].0,
            max_t: points[points.len() - 1].0,
            data: Arc::from(appender.into_bytes()),
        }
    }

    fn named(name: &str) -> Labels {
        Labels::from_pairs(&[("__name__", name)])
    }

    fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
        points.iter().map(|&(t, v)| Sample::new(t, v)).collect()
    }

    #[test]
    fn decodes_only_the_range() {
        let chunks = vec![
            chunk(&[(1, 1.0), (2, 2.0), (3, 3.0)]),
            chunk(&[(10, 10.0), (11, 11.0)]),
            chunk(&[(20, 20.0)]),
        ];
        let mut out = Vec::new();
        decode_into(
            &mut out,
            &chunks,
            TimeRange::new(2, 10),
            &mut Decoder::default(),
        );
        assert_eq!(out, samples(&[(2, 2.0), (3, 3.0), (10, 10.0)]));
        let found = vec![
            (named("a"), chunks.clone()),
            (named("b"), vec![chunks[2].clone()]),
        ];
        let decoded = decode_series(found, TimeRange::new(0, 15));
        assert_eq!(decoded.len(), 1, "b has no sample in range");
        assert_eq!(decoded[0].samples.len(), 5);
    }

    /// Dense chunks (blocks) decode through the reused decoder, a range
    /// cutting into them at both ends, as their iterator would.
    #[test]
    fn dense_chunks_decode_the_range_with_one_decoder() {
        let dense = |points: &[(i64, f64)]| {
            let ts: Vec<i64> = points.iter().map(|p| p.0).collect();
            let vs: Vec<f64> = points.iter().map(|p| p.1).collect();
            let bytes = crate::chunk::dense::encode(&ts, &vs).unwrap();
            ClosedChunk::tagged(ts[0], ts[ts.len() - 1], ENCODING_DENSE, &bytes)
        };
        let long: Vec<(i64, f64)> = (0..300).map(|i| (i * 15, i as f64 * 0.5)).collect();
        let chunks = vec![
            dense(&long[..200]),
            dense(&long[200..]),
            chunk(&[(5000, 1.0)]),
        ];
        let mut decoder = Decoder::default();
        for (start, end) in [(0, 10_000), (14, 15), (16, 29), (1000, 3500), (2985, 2985)] {
            let range = TimeRange::new(start, end);
            let mut got = Vec::new();
            decode_into(&mut got, &chunks, range, &mut decoder);
            let expected: Vec<Sample> = chunks
                .iter()
                .flat_map(|c| c.iter())
                .filter(|&(t, _)| range.contains(t))
                .map(|(t, v)| Sample::new(t, v))
                .collect();
            assert_eq!(got, expected, "{range:?}");
        }
        // A malformed chunk yields nothing and leaves the decoder usable.
        let bad = ClosedChunk::tagged(0, 10, ENCODING_DENSE, &[1, 2, 3]);
        let mut got = Vec::new();
        decode_into(
            &mut got,
            &[bad, chunks[1].clone()],
            TimeRange::all(),
            &mut decoder,
        );
        assert_eq!(got.len(), 100);
    }

    #[test]
    fn large_selections_decode_on_threads_in_order() {
        let many: Vec<FoundSeries> = (0..MIN_PARALLEL_CHUNKS + 7)
            .map(|i| {
                let points: Vec<(i64, f64)> =
                    (0..5).map(|t| (t + i as i64 % 3, t as f64)).collect();
                (named(&format!("m{i:05}")), vec![chunk(&points)])
            })
            .collect();
        let range = TimeRange::new(2, 4);
        let decoded = decode_series(many.clone(), range);
        assert_eq!(decoded.len(), many.len());
        for ((labels, chunks), series) in many.iter().zip(&decoded) {
            assert_eq!(&series.labels, labels);
            let mut expected = Vec::new();
            decode_into(&mut expected, chunks, range, &mut Decoder::default());
            assert_eq!(series.samples, expected);
        }
    }

    #[test]
    fn merges_sorted_sources_oldest_first_and_dedupes() {
        let block = vec![
            (named("a"), vec![chunk(&[(1, 1.0), (2, 2.0)])]),
            (named("c"), vec![chunk(&[(1, 1.0)])]),
        ];
        // The head is not sorted by labels; a timestamp the block also has
        // keeps the block's value.
        let head = vec![
            (named("d"), vec![chunk(&[(5, 5.0)])]),
            (named("a"), vec![chunk(&[(2, 99.0), (3, 3.0)])]),
            (named("b"), vec![chunk(&[(4, 4.0)])]),
        ];
        let merged = decode_series(
            merge_sources(vec![block, Vec::new(), head]),
            TimeRange::all(),
        );
        let names: Vec<&str> = merged
            .iter()
            .map(|s| s.labels.metric_name().unwrap())
            .collect();
        assert_eq!(names, vec!["a", "b", "c", "d"]);
        assert_eq!(merged[0].samples, samples(&[(1, 1.0), (2, 2.0), (3, 3.0)]));
        // Chunks that follow each other are concatenated as they are.
        let later = vec![(named("a"), vec![chunk(&[(7, 7.0)])])];
        let block = vec![(named("a"), vec![chunk(&[(1, 1.0)])])];
        let merged = decode_series(merge_sources(vec![block, later]), TimeRange::all());
        assert_eq!(merged[0].samples, samples(&[(1, 1.0), (7, 7.0)]));
        let single = merge_sources(vec![vec![
            (named("z"), vec![chunk(&[(1, 1.0)])]),
            (named("y"), vec![chunk(&[(1, 1.0)])]),
        ]]);
        assert_eq!(single[0].0.metric_name(), Some("y"));
    }

    /// The lazy set lists every merged series (one with no sample in the
    /// range included), and appends each series' samples after what the
    /// buffer holds: overlapping sources sorted and deduplicated (the older
    /// source's value kept) without touching the samples in front.
    #[test]
    fn lazy_series_append_what_decode_series_returns() {
        use cairn_model::SeriesSet;
        let block = vec![
            (named("a"), vec![chunk(&[(1, 1.0), (2, 2.0), (5, 5.0)])]),
            (named("c"), vec![chunk(&[(1, 1.0), (9, 9.0)])]),
        ];
        let head = vec![
            (named("a"), vec![chunk(&[(2, 99.0), (3, 3.0)])]),
            (named("b"), vec![chunk(&[(4, 4.0)])]),
        ];
        let range = TimeRange::new(2, 5);
        let merged = merge_sources(vec![block, head]);
        let eager = decode_series(merged.clone(), range);
        let lazy: Box<dyn SeriesSet> = Box::new(LazySeries::new(merged, range));
        assert_eq!(lazy.len(), 3);
        // `c` has chunks overlapping [2, 5] but no sample inside it.
        let mut got = Vec::new();
        let mut buffer = vec![Sample::new(100, 0.0)];
        for i in 0..lazy.len() {
            buffer.truncate(1);
            lazy.append_samples(i, &mut buffer);
            assert_eq!(buffer[0], Sample::new(100, 0.0));
            if buffer.len() > 1 {
                got.push(Series {
                    labels: lazy.labels(i).clone(),
                    samples: buffer[1..].to_vec(),
                });
            }
        }
        assert_eq!(got, eager);
        assert_eq!(
            got[0].samples,
            samples(&[(2, 2.0), (3, 3.0), (5, 5.0)]),
            "the block's value at t=2"
        );
        assert_eq!(lazy.decode_cost(), 4 * SAMPLES_PER_CHUNK);
        let labels = lazy.into_labels();
        assert_eq!(labels, vec![named("a"), named("b"), named("c")]);
    }
}
