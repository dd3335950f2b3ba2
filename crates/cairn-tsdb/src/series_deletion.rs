//! Series deletion, Prometheus's `admin/tsdb/delete_series` and
//! `clean_tombstones` (`tsdb/db.go` `Delete`, `CleanTombstones`):
//!
//! - [`Tsdb::delete_series`] records tombstones: per block, the deleted
//!   ranges of its matching series, in the block's `tombstones` file
//!   (replaced atomically); for the head, a WAL tombstones record, then the
//!   ranges in memory. Every read leaves tombstoned samples out from then on.
//! - The bytes go later: a head range cut into a block leaves deleted
//!   samples out (`cut_blocks`), compaction leaves them out of merged blocks,
//!   [`Tsdb::rewrite_tombstoned_blocks`] (every maintenance pass) rewrites
//!   each block that still has tombstones, and WAL checkpoints leave deleted
//!   samples out. [`Tsdb::clean_tombstones`] does the last two at once. The
//!   bucket follows at the same pass (`Tsdb::sync_bucket` uploads the
//!   rewritten block, then deletes the replaced one there).
//!
//! As in Prometheus, a head series' range ends at the newest sample it held
//! at the time of the call ("delete only until the current values"), so
//! samples written later are not hidden. Exemplars of the deleted ranges
//! are dropped from the exemplar buffer too (Prometheus leaves them); WAL
//! replay drops them again at the tombstones record. Deletion holds the maintenance
//! lock, as Prometheus's `Delete` holds its compaction mutex, so no block
//! can be cut or merged from data the tombstones have not reached.

use std::sync::Arc;

use cairn_model::Matcher;

use crate::block::writer::NewBlock;
use crate::block::{self, Block};
use crate::head::SeriesSnapshot;
use crate::tombstones::{self, Interval, Tombstones};
use crate::wal;
use crate::{Tsdb, TsdbError};

/// What one [`Tsdb::delete_series`] call marked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteStats {
    /// Head series with a deleted range.
    pub head_series: usize,
    /// Block series with a deleted range (a series counts once per block).
    pub block_series: usize,
}

impl Tsdb {
    /// Deletes the samples in `[min_t, max_t]` (inclusive) of every series
    /// matching `matchers`, from every read at once and durably (see the
    /// module docs). Returns what was marked.
    pub fn delete_series(
        &self,
        matchers: &[Matcher],
        min_t: i64,
        max_t: i64,
    ) -> Result<DeleteStats, TsdbError> {
        let mut stats = DeleteStats::default();
        if min_t > max_t {
            return Ok(stats);
        }
        let _maintenance = self.maintenance.lock();
        let blocks = self.blocks.read().clone();
        for b in blocks.iter().filter(|b| b.overlaps(min_t, max_t)) {
            stats.block_series += delete_in_block(b, matchers, min_t, max_t)?;
        }
        let mut writer = self.writer.lock();
        let stones: Vec<(u64, Interval)> = {
            let head = self.head.read();
            head.select_ids(matchers)
                .into_iter()
                .filter_map(|id| {
                    // Clamped at the top only: samples and exemplars
                    // written later stay visible, older exemplars (kept
                    // apart from the chunks) are hidden too.
                    let (_, last) = head.get(id)?.time_range()?;
                    let interval = Interval::new(min_t, max_t.min(last));
                    (interval.min_t <= interval.max_t).then_some((id, interval))
                })
                .collect()
        };
        if !stones.is_empty() {
            let mut framed = Vec::new();
            wal::record::encode_tombstones(&stones, &mut framed);
            self.write_wal(&mut writer, &framed)?;
            let mut added = Tombstones::default();
            for (id, interval) in &stones {
                added.add(*id, *interval);
            }
            self.exemplars
                .write()
                .retain(|id, e| !added.get(id).is_some_and(|d| d.contains(e.t)));
            let mut head_tombstones = self.head_tombstones.write();
            for (id, interval) in stones.iter() {
                head_tombstones.add(*id, *interval);
            }
        }
        drop(writer);
        stats.head_series = stones.len();
        tracing::info!(
            dir = %self.dir.display(),
            min_t,
            max_t,
            head_series = stats.head_series,
            block_series = stats.block_series,
            "series deleted (tombstones recorded)"
        );
        Ok(stats)
    }

    /// Removes tombstoned data from disk now: rewrites every block with
    /// tombstones and, when head series have deleted ranges, checkpoints the
    /// WAL without their samples; then brings the bucket (if any) in line:
    /// the rewritten blocks are uploaded and the old ones deleted there.
    /// Returns the number of blocks rewritten or dropped.
    pub fn clean_tombstones(&self) -> Result<usize, TsdbError> {
        let rewritten = self.rewrite_tombstoned_blocks()?;
        {
            let _maintenance = self.maintenance.lock();
            if !self.head_tombstones.read().is_empty() {
                self.checkpoint()?;
            }
        }
        self.sync_bucket()?;
        Ok(rewritten)
    }

    /// Rewrites, one by one, every block that has tombstones, without the
    /// deleted samples (a block left empty is dropped). The new block has
    /// the old one's sources and one level more, so a crash between its
    /// rename and the old block's deletion resolves at open as for any
    /// compaction. Returns how many blocks were rewritten or dropped.
    pub fn rewrite_tombstoned_blocks(&self) -> Result<usize, TsdbError> {
        let _maintenance = self.maintenance.lock();
        let blocks = self.blocks.read().clone();
        let mut done = 0;
        for b in blocks.iter() {
            let stones = b.tombstones.read().clone();
            if stones.is_empty() {
                continue;
            }
            self.rewrite_block(b, &stones)?;
            done += 1;
        }
        Ok(done)
    }

    fn rewrite_block(&self, b: &Arc<Block>, stones: &Arc<Tombstones>) -> Result<(), TsdbError> {
        let blocks_dir = self.dir.join("blocks");
        let series = b.all_series_without(stones.clone())?;
        let meta = block::write_block(
            &blocks_dir,
            series,
            NewBlock {
                min_time: b.meta().min_time,
                max_time: b.meta().max_time,
                level: b.meta().compaction.level + 1,
                sources: b.meta().compaction.sources.clone(),
                imported: b.meta().imported,
                head_end: b.meta().head_end,
            },
        )?;
        let new_dir = blocks_dir.join(&meta.ulid);
        let replacement = if meta.stats.num_series == 0 {
            block::delete_block_dir(&new_dir)?;
            None
        } else {
            Some(Arc::new(Block::open(&new_dir)?))
        };
        self.swap_blocks(std::slice::from_ref(b), replacement);
        b.delete_when_unused();
        tracing::info!(
            dir = %self.dir.display(),
            old = %b.meta().ulid,
            new = %meta.ulid,
            series_left = meta.stats.num_series,
            "block rewritten without its tombstoned samples"
        );
        Ok(())
    }

    /// Whether any read must look at tombstones (the head's or a block's).
    pub(crate) fn has_tombstones(&self) -> bool {
        !self.head_tombstones.read().is_empty()
            || self
                .blocks
                .read()
                .iter()
                .any(|b| !b.tombstones.read().is_empty())
    }

    /// Head snapshots without their deleted samples (series left without
    /// chunks are dropped).
    pub(crate) fn without_deleted(
        &self,
        mut snapshots: Vec<SeriesSnapshot>,
    ) -> Vec<SeriesSnapshot> {
        let stones = self.head_tombstones.read();
        if stones.is_empty() {
            return snapshots;
        }
        for snapshot in &mut snapshots {
            if let Some(deleted) = stones.get(snapshot.id) {
                snapshot.chunks = deleted.filter_chunks(std::mem::take(&mut snapshot.chunks));
            }
        }
        snapshots.retain(|s| !s.chunks.is_empty());
        snapshots
    }

    /// Forgets head tombstones of series the head no longer holds and
    /// ranges before the head's start (after a block cut).
    pub(crate) fn prune_head_tombstones(&self) {
        let head = self.head.read();
        self.head_tombstones
            .write()
            .retain(head.oldest_held_t(), |id| head.get(id).is_some());
    }
}

/// Adds `[min_t, max_t]` (clamped to the block) to the tombstones of the
/// block's matching series with a chunk in that range, rewriting its
/// `tombstones` file if anything changed. Returns the series marked.
fn delete_in_block(
    b: &Block,
    matchers: &[Matcher],
    min_t: i64,
    max_t: i64,
) -> Result<usize, TsdbError> {
    let index = b.index()?;
    let interval = Interval::new(
        min_t.max(b.meta().min_time),
        max_t.min(b.meta().max_time - 1),
    );
    let mut stones: Tombstones = (**b.tombstones.read()).clone();
    let mut marked = 0;
    for position in index.select(matchers)? {
        let series = index.series(position)?;
        if series
            .chunks
            .iter()
            .any(|c| c.min_t <= interval.max_t && interval.min_t <= c.max_t)
        {
            stones.add(u64::from(position), interval);
            marked += 1;
        }
    }
    if marked > 0 && stones != **b.tombstones.read() {
        tombstones::write_file(b.dir(), &stones)?;
        *b.tombstones.write() = Arc::new(stones);
    }
    Ok(marked)
}
