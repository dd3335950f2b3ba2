//! What a query reads: the matching series of the blocks and the head,
//! decoded into samples inside the range and merged into one list sorted
//! by labels (the body of `Tsdb`'s `Queryable::select`).
//!
//! Costs that matter at tens of thousands of series per query: every source
//! yields its series already sorted (blocks by their index order, the head
//! sorted once here), so merging is a linear walk instead of a map keyed by
//! labels; samples are decoded into one reused buffer and copied out at
//! their exact length, so a series costs one allocation for its samples.

use cairn_model::{Labels, Sample, Series, TimeRange};

use crate::chunk::ClosedChunk;

/// Appends the samples of `chunks` (oldest first) that lie inside `range`
/// to `out`. Decoding stops at the first sample past the range's end.
pub(crate) fn decode_into(out: &mut Vec<Sample>, chunks: &[ClosedChunk], range: TimeRange) {
    for chunk in chunks {
        if chunk.max_t < range.start || chunk.min_t > range.end {
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

/// Below this many chunks a source is decoded on the calling thread.
const MIN_PARALLEL_CHUNKS: usize = 4_096;

/// Series of one source (a block or the head), built from `(labels,
/// chunks)` pairs; series without samples in `range` are left out. A large
/// source is decoded on several threads ([`cairn_model::cpu::split_map`],
/// which hands their CPU time to the calling thread).
pub(crate) fn decode_source<C: AsRef<[ClosedChunk]> + Sync>(
    found: Vec<(Labels, C)>,
    range: TimeRange,
) -> Vec<Series> {
    let chunks: usize = found.iter().map(|(_, c)| c.as_ref().len()).sum();
    let threads = if chunks < MIN_PARALLEL_CHUNKS {
        1
    } else {
        cairn_model::cpu::available_threads()
    };
    let decode = |part: &[(Labels, C)]| -> Vec<Vec<Sample>> {
        let mut scratch: Vec<Sample> = Vec::new();
        part.iter()
            .map(|(_, chunks)| {
                scratch.clear();
                decode_into(&mut scratch, chunks.as_ref(), range);
                scratch.as_slice().to_vec()
            })
            .collect()
    };
    let decoded: Vec<Vec<Sample>> = if threads <= 1 {
        decode(&found)
    } else {
        cairn_model::cpu::split_map(&found, threads, decode)
            .into_iter()
            // A helper only panics on a bug; its series are decoded again
            // here so that the panic surfaces on the reading thread.
            .zip(found.chunks(found.len().div_ceil(threads.min(found.len()).max(1))))
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

/// Merges per-source series lists (oldest source first) into one list
/// sorted by labels; a series present in several sources gets their
/// samples in time order, a timestamp present twice (a crash between a
/// block's rename and the head's truncation, or overlapping blocks) once,
/// from the oldest source.
pub(crate) fn merge_sources(mut sources: Vec<Vec<Series>>) -> Vec<Series> {
    for source in &mut sources {
        if !source.is_sorted_by(|a, b| a.labels <= b.labels) {
            source.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
    }
    sources.retain(|s| !s.is_empty());
    match sources.len() {
        0 => return Vec::new(),
        1 => return sources.pop().unwrap_or_default(),
        _ => {}
    }
    // A stable sort of the concatenation keeps equal label sets in source
    // order (oldest first); runs of sorted input make it near linear.
    let mut all: Vec<Series> = sources.into_iter().flatten().collect();
    all.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut out: Vec<Series> = Vec::with_capacity(all.len());
    for series in all {
        match out.last_mut() {
            Some(last) if last.labels == series.labels => {
                last.samples.extend(series.samples);
            }
            _ => out.push(series),
        }
    }
    for series in &mut out {
        if !series.samples.windows(2).all(|w| w[0].t < w[1].t) {
            // Stable: of two samples with one timestamp the older source's wins.
            series.samples.sort_by_key(|s| s.t);
            series.samples.dedup_by_key(|s| s.t);
        }
    }
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

    fn series(name: &str, points: &[(i64, f64)]) -> Series {
        Series {
            labels: Labels::from_pairs(&[("__name__", name)]),
            samples: points.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
        }
    }

    #[test]
    fn decodes_only_the_range() {
        let chunks = vec![
            chunk(&[(1, 1.0), (2, 2.0), (3, 3.0)]),
            chunk(&[(10, 10.0), (11, 11.0)]),
            chunk(&[(20, 20.0)]),
        ];
        let mut out = Vec::new();
        decode_into(&mut out, &chunks, TimeRange::new(2, 10));
        assert_eq!(
            out,
            vec![
                Sample::new(2, 2.0),
                Sample::new(3, 3.0),
                Sample::new(10, 10.0)
            ]
        );
        let found = vec![
            (Labels::from_pairs(&[("__name__", "a")]), chunks.clone()),
            (
                Labels::from_pairs(&[("__name__", "b")]),
                vec![chunks[2].clone()],
            ),
        ];
        let decoded = decode_source(found, TimeRange::new(0, 15));
        assert_eq!(decoded.len(), 1, "b has no sample in range");
        assert_eq!(decoded[0].samples.len(), 5);
    }

    #[test]
    fn merges_sorted_sources_oldest_first_and_dedupes() {
        let block = vec![series("a", &[(1, 1.0), (2, 2.0)]), series("c", &[(1, 1.0)])];
        // The head is not sorted by labels; a duplicate timestamp keeps the block's value.
        let head = vec![
            series("d", &[(5, 5.0)]),
            series("a", &[(2, 99.0), (3, 3.0)]),
            series("b", &[(4, 4.0)]),
        ];
        let merged = merge_sources(vec![block, Vec::new(), head]);
        let names: Vec<&str> = merged
            .iter()
            .map(|s| s.labels.metric_name().unwrap())
            .collect();
        assert_eq!(names, vec!["a", "b", "c", "d"]);
        assert_eq!(
            merged[0].samples,
            vec![
                Sample::new(1, 1.0),
                Sample::new(2, 2.0),
                Sample::new(3, 3.0)
            ]
        );
        let single = merge_sources(vec![vec![
            series("z", &[(1, 1.0)]),
            series("y", &[(1, 1.0)]),
        ]]);
        assert_eq!(single[0].labels.metric_name(), Some("y"));
    }
}
