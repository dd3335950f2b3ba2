//! Maintenance of one tenant's database, run by [`crate::TenantStore`]'s
//! background thread (or called directly):
//!
//! - [`Tsdb::cut_blocks`]: the head's oldest complete range becomes a
//!   block; then the head drops it and the WAL is checkpointed.
//! - [`Tsdb::compact`]: adjacent blocks are merged into longer ranges.
//! - [`Tsdb::apply_retention`]: expired blocks are deleted whole.
//! - Cut and compaction leave out samples deleted by tombstones
//!   (`series_deletion`); the WAL checkpoint does too.
//!
//! Crash safety, step by step (a crash leaves the old state or the new):
//! 1. under the write lock the head starts refusing in-order samples older
//!    than the range's end, so nothing can land in order behind the block
//!    being written, and the range is copied (out-of-order samples arriving
//!    later stay in the head for a later block);
//! 2. the block is written to `<ULID>.tmp-for-creation/` from the copied
//!    chunks (no lock held), fsynced and renamed (a leftover tmp is deleted
//!    at open);
//! 3. the block joins the block list, then the head drops what it copied
//!    (queries merging both in between deduplicate by timestamp);
//! 4. the WAL is checkpointed: a crash before the checkpoint replaces the
//!    old segments replays them, and replay drops the replayed samples
//!    older than the newest block's end that a block holds, so nothing is
//!    counted twice.
//!
//! Out-of-order samples (`head::ooo`) older than the head's in-order bound
//! are cut after each in-order cut into blocks of their own, which overlap
//! earlier blocks until compaction merges them.
//!
//! Compaction writes the merged block the same way, swaps the block list
//! under a short lock, then deletes the sources (renamed to
//! `.tmp-for-deletion` first) once no query reads them any more; a crash
//! before the deletion leaves sources that open removes, as the new block
//! lists them. Retention deletes the same way.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use cairn_model::Labels;

use crate::block::writer::NewBlock;
use crate::block::{self, Block, BlockMeta, BlockSeries};
use crate::chunk::{ClosedChunk, XorAppender, SAMPLES_PER_CHUNK};
use crate::head::series::CHUNK_RANGE_MS;
use crate::wal::{self, RefExemplar, RefSample};
use crate::{Tsdb, TsdbError};

/// A series as the checkpoint writes it: ID, labels, in-order chunks and
/// out-of-order samples.
type CheckpointSeries = (u64, Labels, Vec<ClosedChunk>, Vec<(i64, f64)>);

/// Series per batch of checkpoint records (bounds the memory of a checkpoint).
const CHECKPOINT_BATCH: usize = 1000;

impl Tsdb {
    /// The block range, rounded up to a multiple of the head's chunk range
    /// so no chunk straddles a block boundary.
    fn block_range(&self) -> i64 {
        let wanted = self.opts.block_range_ms.max(CHUNK_RANGE_MS);
        (wanted + CHUNK_RANGE_MS - 1) / CHUNK_RANGE_MS * CHUNK_RANGE_MS
    }

    /// Cuts the head's oldest ranges into blocks while the head spans more
    /// than 1.5 ranges past the oldest one's start and the range has ended
    /// before `now_ms`; after each block the head drops the range and the
    /// WAL is checkpointed. Returns the blocks written.
    pub fn cut_blocks(&self, now_ms: i64) -> Result<Vec<BlockMeta>, TsdbError> {
        let result = self.cut_blocks_timed(now_ms);
        if result.is_err() {
            self.counters
                .block_cut_failures
                .fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// [`Tsdb::cut_blocks`], counting and timing each block written.
    fn cut_blocks_timed(&self, now_ms: i64) -> Result<Vec<BlockMeta>, TsdbError> {
        let _maintenance = self.maintenance.lock();
        let range = self.block_range();
        let mut written = Vec::new();
        loop {
            // In-order data decides; out-of-order samples inside the range
            // go into the same block.
            let Some((head_min, head_max)) = self.head.read().in_order_bounds() else {
                break;
            };
            let start = head_min.div_euclid(range) * range;
            let end = start + range;
            if head_max.saturating_sub(start) < range / 2 * 3 || end > now_ms {
                break;
            }
            written.push(self.cut_range(start, end)?);
        }
        // As Prometheus compacts its out-of-order head after a head
        // compaction (`DB.compactOOOHead`), out-of-order samples older than
        // what the head now accepts in order become their own blocks, which
        // overlap earlier ones until compaction merges them.
        if !written.is_empty() {
            written.extend(self.cut_ooo_below_min_valid()?);
        }
        Ok(written)
    }

    /// Cuts the out-of-order samples older than the head's `min_valid_t`
    /// into blocks, one per block range they fall in.
    fn cut_ooo_below_min_valid(&self) -> Result<Vec<BlockMeta>, TsdbError> {
        let range = self.block_range();
        let mut written = Vec::new();
        let mut cut_up_to = i64::MIN;
        loop {
            let (ooo_min, min_valid) = {
                let head = self.head.read();
                (head.ooo_min_time(), head.min_valid_t())
            };
            let Some(ooo_min) = ooo_min.filter(|&t| t < min_valid) else {
                break;
            };
            // Samples arriving meanwhile wait for the next pass rather than
            // loop here.
            if ooo_min < cut_up_to {
                break;
            }
            let start = ooo_min.div_euclid(range) * range;
            let end = (start + range).min(min_valid);
            written.push(self.cut_range(start, end)?);
            cut_up_to = end;
        }
        Ok(written)
    }

    /// Writes everything the head holds into blocks now, as Mimir's
    /// `/ingester/flush` (a forced head compaction): each block-range
    /// aligned range becomes a block, the last one ending just after the
    /// head's newest sample; the head drops what was written and refuses
    /// samples older than that end from then on. Returns the blocks written.
    pub fn flush_head(&self) -> Result<Vec<BlockMeta>, TsdbError> {
        let _maintenance = self.maintenance.lock();
        let range = self.block_range();
        let mut written = Vec::new();
        let mut cut_up_to = i64::MIN;
        loop {
            // Bound first: a read guard in the loop's condition would live
            // through the body and deadlock with the cut's write lock.
            let bounds = self.head.read().time_bounds();
            let Some((head_min, head_max)) = bounds else {
                break;
            };
            // Each pass drops everything before its end; stop rather than
            // cut the same range twice should the head not shrink.
            if head_min < cut_up_to {
                break;
            }
            let start = head_min.div_euclid(range) * range;
            let end = (start + range).min(head_max.saturating_add(1));
            written.push(self.cut_range(start, end)?);
            cut_up_to = end;
        }
        Ok(written)
    }

    /// Cuts `[start, end)` of the head into a block (steps 1–4 of the
    /// module doc). The caller holds the maintenance lock.
    fn cut_range(&self, start: i64, end: i64) -> Result<BlockMeta, TsdbError> {
        let started = Instant::now();
        let blocks_dir = self.dir.join("blocks");
        // Under the write lock: what is copied is exactly what the head
        // drops below (out-of-order samples may still arrive for the range;
        // they stay for a later block).
        let (snapshots, ooo_written) = {
            let _writer = self.writer.lock();
            self.head.write().raise_min_valid_t(end);
            let head = self.head.read();
            (
                head.snapshot(&[], start, end - 1),
                head.ooo_timestamps_in(start, end),
            )
        };
        let snapshots = self.without_deleted(snapshots);
        let mut series: Vec<BlockSeries> = snapshots
            .into_iter()
            .filter_map(|snapshot| {
                let chunks: Vec<ClosedChunk> = snapshot
                    .chunks
                    .into_iter()
                    .filter(|c| c.max_t < end)
                    .collect();
                (!chunks.is_empty()).then(|| BlockSeries {
                    labels: snapshot.labels.to_labels(),
                    chunks,
                })
            })
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let meta = block::write_block(
            &blocks_dir,
            series.into_iter().map(Ok),
            NewBlock {
                min_time: start,
                max_time: end,
                level: 1,
                sources: Vec::new(),
                imported: false,
                head_end: None,
            },
        )?;
        let opened = Arc::new(Block::open(&blocks_dir.join(&meta.ulid))?);
        self.swap_blocks(&[], Some(opened));
        {
            let _writer = self.writer.lock();
            let mut head = self.head.write();
            head.remove_ooo(&ooo_written);
            head.truncate_before(end);
        }
        self.prune_head_tombstones();
        crate::fault::point("block-before-checkpoint");
        self.checkpoint()?;
        tracing::info!(
            dir = %self.dir.display(),
            block = %meta.ulid,
            min_time = meta.min_time,
            max_time = meta.max_time,
            samples = meta.stats.num_samples,
            series = meta.stats.num_series,
            "block written from the head"
        );
        self.counters.block_cuts.fetch_add(1, Ordering::Relaxed);
        self.counters.block_cut_duration.observe(started.elapsed());
        Ok(meta)
    }

    /// Replaces the WAL up to its newest segment with a checkpoint of the
    /// head (see `docs/format.md`, "Checkpoints"). Holds the write lock only
    /// to close the segment and copy the head.
    pub(crate) fn checkpoint(&self) -> Result<(), TsdbError> {
        let (index, min_t, oldest_held, series, exemplars, metadata, tombstones) = {
            let mut writer = self.writer.lock();
            let Some(index) = writer.cut_segment()? else {
                return Ok(());
            };
            let head = self.head.read();
            let min_t = head.min_valid_t();
            let oldest_held = head.oldest_held_t();
            // In-order chunks, then the out-of-order samples (any age: not
            // in a block yet), so that replay sorts them the same way.
            let series: Vec<CheckpointSeries> = head
                .iter_series()
                .map(|(id, s)| {
                    let ooo = s.ooo().map(|o| o.samples_in(i64::MIN, i64::MAX));
                    (
                        id,
                        s.to_labels(),
                        s.in_order_chunks_overlapping(min_t, i64::MAX),
                        ooo.unwrap_or_default(),
                    )
                })
                .collect();
            drop(head);
            let exemplars = self.exemplars.read().query(i64::MIN, i64::MAX, |_| true);
            let metadata: Vec<_> = self.metadata.read().values().cloned().collect();
            let tombstones = self.head_tombstones.read().clone();
            (
                index,
                min_t,
                oldest_held,
                series,
                exemplars,
                metadata,
                tombstones,
            )
        };
        let live: HashSet<u64> = series.iter().map(|(id, ..)| *id).collect();
        let exemplars: Vec<RefExemplar> = exemplars
            .into_iter()
            .filter(|(id, _)| live.contains(id))
            .map(|(id, exemplar)| RefExemplar { id, exemplar })
            .collect();
        // Deleted samples stay out of the checkpoint (their bytes leave the
        // disk with the segments it replaces); the tombstones stay in, for
        // the head's copy of them until the range is cut into a block.
        let stones: Vec<(u64, crate::tombstones::Interval)> = tombstones
            .iter()
            .filter(|(id, iv)| live.contains(id) && iv.max_t >= oldest_held)
            .collect();
        let series_parts = series.chunks(CHECKPOINT_BATCH).map(move |batch| {
            let mut framed = Vec::new();
            let pairs: Vec<(u64, Labels)> = batch
                .iter()
                .map(|(id, labels, ..)| (*id, labels.clone()))
                .collect();
            wal::record::encode_series(&pairs, &mut framed);
            let mut samples = Vec::new();
            for (id, _, chunks, ooo) in batch {
                let deleted = tombstones.get(*id);
                for chunk in chunks {
                    for (t, v) in chunk.iter() {
                        if t >= min_t && !deleted.is_some_and(|d| d.contains(t)) {
                            samples.push(RefSample { id: *id, t, v });
                        }
                    }
                }
                for &(t, v) in ooo {
                    if !deleted.is_some_and(|d| d.contains(t)) {
                        samples.push(RefSample { id: *id, t, v });
                    }
                }
            }
            wal::record::encode_samples(&samples, &mut framed);
            framed
        });
        let mut tail = Vec::new();
        wal::record::encode_exemplars(&exemplars, &mut tail);
        wal::record::encode_metadata(&metadata, &mut tail);
        wal::record::encode_tombstones(&stones, &mut tail);
        wal::write_checkpoint(
            &self.dir.join("wal"),
            index,
            series_parts.chain(std::iter::once(tail)),
        )
    }

    /// Replaces `remove` with `add` in the block list (a short write lock).
    pub(crate) fn swap_blocks(&self, remove: &[Arc<Block>], add: Option<Arc<Block>>) {
        let mut list = self.blocks.write();
        self.retired_blocks
            .lock()
            .extend(remove.iter().map(|b| b.meta().ulid.clone()));
        let mut next: Vec<Arc<Block>> = list
            .iter()
            .filter(|b| !remove.iter().any(|r| Arc::ptr_eq(r, b)))
            .cloned()
            .collect();
        next.extend(add);
        next.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
        *list = Arc::new(next);
    }

    /// Merges adjacent blocks into the longer ranges of
    /// `compaction_ranges_ms`, until nothing is left to merge. Ingestion and
    /// queries go on meanwhile. Returns the blocks written.
    pub fn compact(&self) -> Result<Vec<BlockMeta>, TsdbError> {
        let _maintenance = self.maintenance.lock();
        let mut written = Vec::new();
        while let Some(group) = self.plan_compaction() {
            let started = Instant::now();
            match self.compact_group(&group) {
                Ok(meta) => {
                    self.counters.compactions.fetch_add(1, Ordering::Relaxed);
                    self.counters.compaction_duration.observe(started.elapsed());
                    written.push(meta);
                }
                Err(error) => {
                    self.counters
                        .compaction_failures
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(error);
                }
            }
        }
        if !written.is_empty() {
            return_freed_memory();
        }
        Ok(written)
    }

    /// The first group of two or more blocks inside one aligned window of a
    /// compaction range that later blocks have moved past, smallest range first.
    fn plan_compaction(&self) -> Option<Vec<Arc<Block>>> {
        let blocks = self.blocks.read().clone();
        let newest_end = blocks.iter().map(|b| b.meta().max_time).max()?;
        for &range in self.opts.compaction_ranges_ms.iter() {
            if range <= 0 {
                continue;
            }
            let mut windows: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
            for b in blocks.iter() {
                let window = b.meta().min_time.div_euclid(range);
                if (b.meta().max_time - 1).div_euclid(range) != window {
                    continue;
                }
                windows.entry(window).or_default().push(b.clone());
            }
            for (window, group) in windows {
                if group.len() >= 2 && (window + 1) * range <= newest_end {
                    return Some(group);
                }
            }
        }
        None
    }

    fn compact_group(&self, sources: &[Arc<Block>]) -> Result<BlockMeta, TsdbError> {
        let blocks_dir = self.dir.join("blocks");
        let min_time = sources.iter().map(|b| b.meta().min_time).min();
        let max_time = sources.iter().map(|b| b.meta().max_time).max();
        let (Some(min_time), Some(max_time)) = (min_time, max_time) else {
            unreachable!("a compaction group has blocks");
        };
        let level = sources
            .iter()
            .map(|b| b.meta().compaction.level)
            .max()
            .unwrap_or(1)
            + 1;
        let mut source_ids: Vec<String> = sources
            .iter()
            .flat_map(|b| b.meta().compaction.sources.iter().cloned())
            .collect();
        source_ids.sort();
        source_ids.dedup();
        // A streaming k-way merge: one series per source in memory at a time.
        let inputs = sources
            .iter()
            .map(|b| b.all_series())
            .collect::<Result<Vec<_>, _>>()?;
        let merged = MergeSeries::new(inputs);
        // Imported sources hold no head data: the merged block must not
        // move the WAL replay floor past what the head really handed over.
        let head_end = sources
            .iter()
            .filter_map(|b| b.meta().head_data_end())
            .max();
        let meta = block::write_block(
            &blocks_dir,
            merged,
            NewBlock {
                min_time,
                max_time,
                level,
                sources: source_ids,
                imported: head_end.is_none(),
                head_end: head_end.filter(|&end| end != max_time),
            },
        )?;
        let opened = Arc::new(Block::open(&blocks_dir.join(&meta.ulid))?);
        self.swap_blocks(sources, Some(opened));
        for source in sources {
            source.delete_when_unused();
        }
        tracing::info!(
            dir = %self.dir.display(),
            block = %meta.ulid,
            level,
            sources = sources.len(),
            min_time,
            max_time,
            "blocks compacted"
        );
        Ok(meta)
    }

    /// Deletes, whole, every block that ended at least `retention` before
    /// `now_ms` (nothing when retention is zero). Returns how many.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, TsdbError> {
        let retention_ms = self.retention_ms.load(std::sync::atomic::Ordering::Relaxed);
        if retention_ms <= 0 {
            return Ok(0);
        }
        let _maintenance = self.maintenance.lock();
        let cutoff = now_ms.saturating_sub(retention_ms);
        let expired: Vec<Arc<Block>> = self
            .blocks
            .read()
            .iter()
            .filter(|b| b.meta().max_time <= cutoff)
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        self.swap_blocks(&expired, None);
        self.counters
            .retention_blocks_deleted
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        for b in &expired {
            b.delete_when_unused();
            tracing::info!(dir = %self.dir.display(), block = %b.meta().ulid, max_time = b.meta().max_time, "block deleted by retention");
        }
        Ok(expired.len())
    }

    /// One maintenance pass: pick up blocks `cairn import` added, cut
    /// blocks, compact, apply retention, rewrite blocks that have tombstones
    /// (`series_deletion`), drop the cached indexes of blocks no query used
    /// since the last pass, and bring the bucket (if any) in line with the
    /// local blocks.
    pub fn maintain(&self, now_ms: i64) -> Result<(), TsdbError> {
        self.load_new_blocks()?;
        self.cut_blocks(now_ms)?;
        self.compact()?;
        self.apply_retention(now_ms)?;
        self.rewrite_tombstoned_blocks()?;
        let blocks = self.blocks.read().clone();
        for b in blocks.iter() {
            b.release_idle_index();
        }
        self.sync_bucket()?;
        Ok(())
    }

    /// Changes this tenant's retention (a per-tenant override of
    /// [`crate::TsdbOptions::retention`]; zero keeps everything). Applied at
    /// the next retention pass.
    pub fn set_retention(&self, retention: std::time::Duration) {
        let ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        self.retention_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// This tenant's retention (zero: forever).
    pub fn retention(&self) -> std::time::Duration {
        let ms = self.retention_ms.load(std::sync::atomic::Ordering::Relaxed);
        std::time::Duration::from_millis(ms.max(0) as u64)
    }
}

/// Hands memory freed by a compaction back to the system. glibc's
/// allocator keeps freed heap pages for reuse; after a compaction (chunks
/// read and written, the new index built) that is megabytes no longer in
/// use which would otherwise count in the process's RSS until reused
/// (measured in `BENCHMARKS.md`, "Memory bounded by active series").
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of glibc's arenas; it
    // takes the allocator's own locks and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A k-way merge of series streams, each sorted by labels (Prometheus's
/// compactor merges its sources' `ChunkSeriesSet`s the same way): yields
/// each label set once, with the chunks of every source that has it, in
/// label order. Chunks that overlap in time (overlapping sources, or the
/// same series in two sources) are rewritten into one stream with each
/// timestamp once: the earliest source's sample wins. Holds one series per
/// source; stops at the first error.
pub(crate) struct MergeSeries<I> {
    sources: Vec<I>,
    /// The next series of each source; `None` once it is exhausted.
    heads: Vec<Option<BlockSeries>>,
    started: bool,
    failed: bool,
}

impl<I: Iterator<Item = Result<BlockSeries, TsdbError>>> MergeSeries<I> {
    pub(crate) fn new(sources: Vec<I>) -> Self {
        let heads = sources.iter().map(|_| None).collect();
        MergeSeries {
            sources,
            heads,
            started: false,
            failed: false,
        }
    }

    fn pull(&mut self, source: usize) -> Result<(), TsdbError> {
        self.heads[source] = self.sources[source].next().transpose()?;
        Ok(())
    }

    fn step(&mut self) -> Result<Option<BlockSeries>, TsdbError> {
        if !self.started {
            self.started = true;
            for source in 0..self.sources.len() {
                self.pull(source)?;
            }
        }
        let Some(min) = self
            .heads
            .iter()
            .flatten()
            .map(|s| &s.labels)
            .min()
            .cloned()
        else {
            return Ok(None);
        };
        let mut chunks = Vec::new();
        for source in 0..self.sources.len() {
            if self.heads[source].as_ref().is_some_and(|s| s.labels == min) {
                let taken = self.heads[source].take().expect("checked above");
                chunks.extend(taken.chunks);
                self.pull(source)?;
                if let Some(next) = &self.heads[source] {
                    if next.labels <= min {
                        return Err(TsdbError::Io {
                            path: std::path::PathBuf::new(),
                            source: std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!(
                                    "compaction source {source} is not sorted by labels at {min:?}"
                                ),
                            ),
                        });
                    }
                }
            }
        }
        // Stable: for equal start times the earlier source stays first.
        chunks.sort_by_key(|c| c.min_t);
        if chunks.windows(2).any(|w| w[1].min_t <= w[0].max_t) {
            chunks = rechunk(&chunks);
        }
        Ok(Some(BlockSeries {
            labels: min,
            chunks,
        }))
    }
}

impl<I: Iterator<Item = Result<BlockSeries, TsdbError>>> Iterator for MergeSeries<I> {
    type Item = Result<BlockSeries, TsdbError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let result = self.step().transpose();
        if matches!(result, Some(Err(_))) {
            self.failed = true;
        }
        result
    }
}

/// Decodes overlapping chunks into one sorted, deduplicated sample stream
/// (first copy of a timestamp wins) and re-encodes it.
fn rechunk(chunks: &[ClosedChunk]) -> Vec<ClosedChunk> {
    let mut samples: Vec<(i64, f64)> = chunks.iter().flat_map(|c| c.iter()).collect();
    samples.sort_by_key(|s| s.0);
    samples.dedup_by_key(|s| s.0);
    let mut out = Vec::new();
    for group in samples.chunks(usize::from(SAMPLES_PER_CHUNK)) {
        let mut appender = XorAppender::new();
        for &(t, v) in group {
            appender.append(t, v);
        }
        out.push(ClosedChunk {
            min_t: group[0].0,
            max_t: group[group.len() - 1].0,
            data: Arc::from(appender.into_bytes()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TsdbOptions;
    use cairn_model::{Queryable, Sample, SeriesSamples, TimeRange};

    const HOUR: i64 = 3_600_000;

    /// A query that took the block list before a compaction keeps reading
    /// the replaced blocks; their directories go when it lets go.
    #[test]
    fn replaced_blocks_stay_readable_until_the_last_reader_drops_them() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = TsdbOptions {
            compaction_ranges_ms: vec![2 * HOUR, 4 * HOUR],
            maintenance_interval: std::time::Duration::ZERO,
            ..TsdbOptions::default()
        };
        let db = Tsdb::open(tmp.path(), opts).unwrap();
        for minute in 0..(6 * 60) {
            db.append(vec![SeriesSamples {
                labels: Labels::from_pairs(&[("__name__", "m")]),
                samples: vec![Sample::new(minute * 60_000, minute as f64)],
                exemplars: Vec::new(),
            }])
            .unwrap();
        }
        assert_eq!(db.cut_blocks(i64::MAX).unwrap().len(), 2);
        let held = db.blocks_overlapping(TimeRange::all());
        let dirs: Vec<std::path::PathBuf> = held.iter().map(|b| b.dir().to_path_buf()).collect();
        assert_eq!(db.compact().unwrap().len(), 1);
        assert!(dirs.iter().all(|d| d.exists()));
        let mut read = 0;
        for b in &held {
            for (_, chunks) in b.select(&[], i64::MIN, i64::MAX).unwrap() {
                read += chunks.iter().map(|c| c.iter().count()).sum::<usize>();
            }
        }
        assert_eq!(read, 4 * 60);
        drop(held);
        assert!(dirs.iter().all(|d| !d.exists()));
        let all = db.select(&[], TimeRange::all()).unwrap();
        assert_eq!(all[0].samples.len(), 6 * 60);
    }

    fn xor_chunk(samples: &[(i64, f64)]) -> ClosedChunk {
        let mut appender = XorAppender::new();
        for &(t, v) in samples {
            appender.append(t, v);
        }
        ClosedChunk {
            min_t: samples[0].0,
            max_t: samples[samples.len() - 1].0,
            data: Arc::from(appender.into_bytes()),
        }
    }

    fn stream(
        series: Vec<(&str, Vec<ClosedChunk>)>,
    ) -> std::vec::IntoIter<Result<BlockSeries, TsdbError>> {
        series
            .into_iter()
            .map(|(name, chunks)| {
                Ok(BlockSeries {
                    labels: Labels::from_pairs(&[("__name__", name)]),
                    chunks,
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn flatten(series: &BlockSeries) -> Vec<(i64, f64)> {
        series.chunks.iter().flat_map(|c| c.iter()).collect()
    }

    /// Many sources, each sorted, some series in several of them, one
    /// source empty: each label set comes out once, in order, with all its
    /// samples in time order.
    #[test]
    fn merge_series_interleaves_many_sources_in_label_order() {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let sources: Vec<_> = (0..20i64)
            .map(|k| {
                // Source k holds every name whose index is not a multiple of
                // (k % 5) + 2, one chunk at hour k.
                let skip = (k % 5 + 2) as usize;
                stream(
                    names
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % skip != 0 || k == 19)
                        .filter(|_| k != 7)
                        .map(|(i, name)| (*name, vec![xor_chunk(&[(k * HOUR, i as f64)])]))
                        .collect(),
                )
            })
            .collect();
        let merged: Vec<BlockSeries> = MergeSeries::new(sources).collect::<Result<_, _>>().unwrap();
        let got: Vec<&str> = merged
            .iter()
            .filter_map(|s| s.labels.metric_name())
            .collect();
        assert_eq!(got, names);
        for (i, series) in merged.iter().enumerate() {
            let ts: Vec<i64> = flatten(series).iter().map(|s| s.0).collect();
            let expected: Vec<i64> = (0..20i64)
                .filter(|&k| k != 7 && (i % (k % 5 + 2) as usize != 0 || k == 19))
                .map(|k| k * HOUR)
                .collect();
            assert_eq!(ts, expected, "series {i}");
        }
        let none: Vec<std::vec::IntoIter<Result<BlockSeries, TsdbError>>> = Vec::new();
        assert_eq!(MergeSeries::new(none).count(), 0);
    }

    /// Overlapping sources (vertical compaction): each timestamp once, the
    /// first source's value where two carry the same timestamp.
    #[test]
    fn merge_series_deduplicates_overlapping_sources_by_timestamp() {
        let first = stream(vec![(
            "m",
            vec![xor_chunk(&[(0, 1.0), (10, 1.0), (20, 1.0)])],
        )]);
        let second = stream(vec![
            ("m", vec![xor_chunk(&[(5, 2.0), (10, 2.0), (30, 2.0)])]),
            ("n", vec![xor_chunk(&[(0, 3.0)])]),
        ]);
        let merged: Vec<BlockSeries> = MergeSeries::new(vec![first, second])
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(merged.len(), 2);
        assert_eq!(
            flatten(&merged[0]),
            [(0, 1.0), (5, 2.0), (10, 1.0), (20, 1.0), (30, 2.0)]
        );
        assert_eq!(flatten(&merged[1]), [(0, 3.0)]);
    }

    /// A source failing or out of label order ends the merge with an error.
    #[test]
    fn merge_series_stops_at_the_first_error() {
        let failing: Vec<Result<BlockSeries, TsdbError>> = vec![
            Ok(BlockSeries {
                labels: Labels::from_pairs(&[("__name__", "a")]),
                chunks: Vec::new(),
            }),
            Err(block::corrupt_block(std::path::Path::new("x"), "broken")),
        ];
        let results: Vec<_> = MergeSeries::new(vec![failing.into_iter()]).collect();
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
        let unsorted = stream(vec![("b", Vec::new()), ("a", Vec::new())]);
        let results: Vec<_> = MergeSeries::new(vec![unsorted]).collect();
        assert!(results.last().unwrap().is_err());
    }

    #[test]
    fn rechunk_merges_overlapping_chunks_once_per_timestamp() {
        let chunk = |ts: &[i64]| {
            let mut appender = XorAppender::new();
            for &t in ts {
                appender.append(t, t as f64);
            }
            ClosedChunk {
                min_t: ts[0],
                max_t: ts[ts.len() - 1],
                data: Arc::from(appender.into_bytes()),
            }
        };
        let many: Vec<i64> = (0..200).collect();
        let merged = rechunk(&[chunk(&many), chunk(&[5, 150, 300])]);
        let ts: Vec<i64> = merged
            .iter()
            .flat_map(|c| c.iter().map(|(t, _)| t))
            .collect();
        let mut expected = many.clone();
        expected.push(300);
        assert_eq!(ts, expected);
        assert_eq!(merged.len(), 2);
    }
}
