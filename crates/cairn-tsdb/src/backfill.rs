//! Backfill: blocks written from outside the head (`cairn import`), and a
//! running database picking them up.
//!
//! [`Backfill`] turns samples that arrive in any order across series (but in
//! increasing time order within each series) into imported blocks of one
//! tenant, with memory bounded by the number of series, not by history:
//! each series keeps one open XOR chunk; a closed chunk goes at once to an
//! in-memory buffer of its block window, and the buffers are spilled to one
//! file per window under a staging directory whenever they exceed
//! [`BackfillOptions::spill_buffer_bytes`]. [`Backfill::finish`] then builds
//! one block per window (reading back only that window's chunks), checks
//! it against the tenant's existing blocks, and only when every block is
//! written moves them into `<tenant>/blocks/`. Any error before that leaves
//! nothing behind but the staging directory, which is removed.
//!
//! [`Tsdb::load_new_blocks`] is the other half: the maintenance pass opens
//! complete block directories that appeared since the last pass.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_model::Labels;

use crate::block::writer::NewBlock;
use crate::block::{
    self, io_error, put_uvarint, put_varint, ulid, Block, BlockMeta, BlockSeries, Decbuf,
    TMP_CREATION, TMP_DELETION,
};
use crate::chunk::{ClosedChunk, XorAppender, SAMPLES_PER_CHUNK};
use crate::head::series::CHUNK_RANGE_MS;
use crate::{Tsdb, TsdbError};

/// How a [`Backfill`] cuts and buffers.
#[derive(Clone, Debug)]
pub struct BackfillOptions {
    /// Length of each block (rounded up to a multiple of 2h); blocks are
    /// aligned to multiples of it, as the head's.
    pub block_range_ms: i64,
    /// Closed chunks held in memory before they are spilled to disk.
    pub spill_buffer_bytes: usize,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            block_range_ms: crate::DEFAULT_BLOCK_RANGE_MS,
            spill_buffer_bytes: 64 << 20,
        }
    }
}

/// Why an import was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("line {line}: sample of {labels} at {t} ms is not after its previous sample at {previous} ms (line {previous_line}); the samples of one series must be in increasing time order, without duplicates")]
    OutOfOrder {
        line: u64,
        previous_line: u64,
        labels: Labels,
        t: i64,
        previous: i64,
    },
    #[error("line {line}: {labels} from {min_t} to {max_t} ms overlaps the tenant's existing block {block} ({block_min} to {block_max} ms), which holds the same series in that time")]
    Overlap {
        line: u64,
        labels: Labels,
        min_t: i64,
        max_t: i64,
        block: String,
        block_min: i64,
        block_max: i64,
    },
    #[error(transparent)]
    Tsdb(#[from] TsdbError),
}

/// What an import wrote.
#[derive(Clone, Debug, Default)]
pub struct BackfillSummary {
    pub blocks: Vec<BlockMeta>,
    pub series: u64,
    pub samples: u64,
}

struct OpenChunk {
    window: i64,
    appender: XorAppender,
    min_t: i64,
    line: u64,
}

struct SeriesState {
    labels: Labels,
    last_t: i64,
    last_line: u64,
    open: Option<OpenChunk>,
}

/// Builds imported blocks for one tenant (see the module docs).
pub struct Backfill {
    blocks_dir: PathBuf,
    staging: PathBuf,
    spill_dir: PathBuf,
    range: i64,
    budget: usize,
    series: Vec<SeriesState>,
    /// Per block window, closed chunks not yet spilled.
    buffers: BTreeMap<i64, Vec<u8>>,
    buffered: usize,
    /// Every window that received a chunk.
    windows: BTreeSet<i64>,
    samples: u64,
    _lock: crate::dir_lock::DirLock,
}

impl Drop for Backfill {
    fn drop(&mut self) {
        if self.staging.exists() {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

impl Backfill {
    /// Starts an import into `<data_dir>/tenants/<tenant>/` (a validated
    /// tenant ID). Staging happens in `<data_dir>/import/`, outside every
    /// tenant, under a lock that allows one import per data directory at a
    /// time; leftovers of a crashed import are removed here.
    pub fn new(
        data_dir: &Path,
        tenant: &cairn_model::TenantId,
        opts: BackfillOptions,
    ) -> Result<Backfill, TsdbError> {
        let import_dir = data_dir.join("import");
        fs::create_dir_all(&import_dir).map_err(io_error(&import_dir))?;
        let lock = crate::dir_lock::DirLock::acquire(&import_dir, "another cairn import")?;
        for entry in fs::read_dir(&import_dir).map_err(io_error(&import_dir))? {
            let entry = entry.map_err(io_error(&import_dir))?;
            if entry.file_name().to_string_lossy().ends_with(TMP_CREATION) {
                let path = entry.path();
                tracing::info!(dir = %path.display(), "removing a crashed import's staging directory");
                fs::remove_dir_all(&path).map_err(io_error(&path))?;
            }
        }
        let staging = import_dir.join(format!("{}{TMP_CREATION}", ulid::new()));
        let spill_dir = staging.join("spill");
        fs::create_dir_all(&spill_dir).map_err(io_error(&spill_dir))?;
        let wanted = opts.block_range_ms.max(CHUNK_RANGE_MS);
        let range = (wanted + CHUNK_RANGE_MS - 1) / CHUNK_RANGE_MS * CHUNK_RANGE_MS;
        Ok(Backfill {
            blocks_dir: data_dir
                .join("tenants")
                .join(tenant.as_str())
                .join("blocks"),
            staging,
            spill_dir,
            range,
            budget: opts.spill_buffer_bytes.max(1),
            series: Vec::new(),
            buffers: BTreeMap::new(),
            buffered: 0,
            windows: BTreeSet::new(),
            samples: 0,
            _lock: lock,
        })
    }

    /// Registers a series; the caller keeps one ID per distinct label set.
    pub fn add_series(&mut self, labels: Labels) -> u32 {
        self.series.push(SeriesState {
            labels,
            last_t: i64::MIN,
            last_line: 0,
            open: None,
        });
        (self.series.len() - 1) as u32
    }

    pub fn labels(&self, id: u32) -> &Labels {
        &self.series[id as usize].labels
    }

    /// Samples accepted so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Adds one sample of series `id`, read from input line `line`.
    pub fn append(&mut self, id: u32, t: i64, v: f64, line: u64) -> Result<(), BackfillError> {
        let range = self.range;
        let state = &mut self.series[id as usize];
        if state.last_t != i64::MIN && t <= state.last_t {
            return Err(BackfillError::OutOfOrder {
                line,
                previous_line: state.last_line,
                labels: state.labels.clone(),
                t,
                previous: state.last_t,
            });
        }
        let window = t.div_euclid(range);
        let cut = state.open.as_ref().is_some_and(|open| {
            open.window != window || open.appender.sample_count() >= SAMPLES_PER_CHUNK
        });
        let last_t = state.last_t;
        if cut {
            let open = state.open.take().expect("checked above");
            self.spill(id, open, last_t)?;
        }
        let state = &mut self.series[id as usize];
        let open = state.open.get_or_insert_with(|| OpenChunk {
            window,
            appender: XorAppender::new(),
            min_t: t,
            line,
        });
        open.appender.append(t, v);
        state.last_t = t;
        state.last_line = line;
        self.samples += 1;
        Ok(())
    }

    /// Moves a closed chunk into its window's buffer (spilling when full).
    /// Record: uvarint series, varint min_t, varint max_t, uvarint line,
    /// uvarint length, chunk bytes.
    fn spill(&mut self, id: u32, open: OpenChunk, max_t: i64) -> Result<(), TsdbError> {
        let bytes = open.appender.into_bytes();
        let buffer = self.buffers.entry(open.window).or_default();
        let before = buffer.len();
        put_uvarint(buffer, u64::from(id));
        put_varint(buffer, open.min_t);
        put_varint(buffer, max_t);
        put_uvarint(buffer, open.line);
        put_uvarint(buffer, bytes.len() as u64);
        buffer.extend_from_slice(&bytes);
        self.buffered += buffer.len() - before;
        self.windows.insert(open.window);
        if self.buffered >= self.budget {
            self.flush_buffers()?;
        }
        Ok(())
    }

    fn flush_buffers(&mut self) -> Result<(), TsdbError> {
        for (window, buffer) in std::mem::take(&mut self.buffers) {
            let path = self.spill_dir.join(window.to_string());
            let mut file = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_error(&path))?;
            file.write_all(&buffer).map_err(io_error(&path))?;
        }
        self.buffered = 0;
        Ok(())
    }

    /// Number of block windows the input touches (for a progress bar).
    pub fn windows(&self) -> usize {
        let mut all = self.windows.clone();
        all.extend(
            self.series
                .iter()
                .filter_map(|s| s.open.as_ref().map(|o| o.window)),
        );
        all.len()
    }

    /// Writes one block per window, checks each against the tenant's
    /// existing blocks, then moves them all into the tenant's `blocks/`.
    /// `progress` is called after each block with (done, total).
    pub fn finish(
        mut self,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<BackfillSummary, BackfillError> {
        for id in 0..self.series.len() {
            let state = &mut self.series[id];
            if let Some(open) = state.open.take() {
                let last_t = state.last_t;
                self.spill(id as u32, open, last_t)?;
            }
        }
        self.flush_buffers()?;
        let existing = existing_blocks(&self.blocks_dir)?;
        let windows: Vec<i64> = self.windows.iter().copied().collect();
        let mut summary = BackfillSummary {
            samples: self.samples,
            series: self.series.len() as u64,
            blocks: Vec::new(),
        };
        for (done, &window) in windows.iter().enumerate() {
            let meta = self.write_window(window, &existing)?;
            summary.blocks.push(meta);
            progress(done + 1, windows.len());
        }
        // Every block is complete: move them in, each with one rename.
        fs::create_dir_all(&self.blocks_dir).map_err(io_error(&self.blocks_dir))?;
        for meta in &summary.blocks {
            let from = self.staging.join(&meta.ulid);
            let to = self.blocks_dir.join(&meta.ulid);
            fs::rename(&from, &to).map_err(io_error(&from))?;
        }
        block::sync_dir(&self.blocks_dir)?;
        if let Some(tenant_dir) = self.blocks_dir.parent() {
            block::sync_dir(tenant_dir)?;
        }
        Ok(summary)
    }

    fn write_window(&self, window: i64, existing: &[Block]) -> Result<BlockMeta, BackfillError> {
        let path = self.spill_dir.join(window.to_string());
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        let mut per_series: BTreeMap<u32, Vec<(ClosedChunk, u64)>> = BTreeMap::new();
        let mut buf = Decbuf::new(&bytes);
        while buf.pos < bytes.len() {
            let record = (|| {
                let id = u32::try_from(buf.uvarint()?).ok()?;
                let min_t = buf.varint()?;
                let max_t = buf.varint()?;
                let line = buf.uvarint()?;
                let len = usize::try_from(buf.uvarint()?).ok()?;
                let data = buf.take(len)?;
                Some((id, min_t, max_t, line, data))
            })();
            let Some((id, min_t, max_t, line, data)) = record else {
                return Err(block::corrupt_block(&path, "bad import spill record").into());
            };
            per_series.entry(id).or_default().push((
                ClosedChunk {
                    min_t,
                    max_t,
                    data: Arc::from(data),
                },
                line,
            ));
        }
        drop(bytes);
        let min_time = window * self.range;
        let max_time = min_time + self.range;
        let mut ids: Vec<u32> = per_series.keys().copied().collect();
        ids.sort_by(|a, b| self.labels(*a).cmp(self.labels(*b)));
        let overlapping: Vec<&Block> = existing
            .iter()
            .filter(|b| b.overlaps(min_time, max_time - 1))
            .collect();
        for b in &overlapping {
            let index = b.index()?;
            for &id in &ids {
                let labels = self.labels(id);
                let Some(position) = index.find(labels)? else {
                    continue;
                };
                let theirs = index.series(position)?.chunks;
                for (chunk, line) in &per_series[&id] {
                    if theirs
                        .iter()
                        .any(|c| c.min_t <= chunk.max_t && chunk.min_t <= c.max_t)
                    {
                        return Err(BackfillError::Overlap {
                            line: *line,
                            labels: labels.clone(),
                            min_t: chunk.min_t,
                            max_t: chunk.max_t,
                            block: b.meta().ulid.clone(),
                            block_min: b.meta().min_time,
                            block_max: b.meta().max_time,
                        });
                    }
                }
            }
        }
        let series = ids.into_iter().map(|id| {
            let chunks = per_series
                .get(&id)
                .map(|list| list.iter().map(|(c, _)| c.clone()).collect())
                .unwrap_or_default();
            Ok(BlockSeries {
                labels: self.labels(id).clone(),
                chunks,
            })
        });
        let meta = block::write_block(
            &self.staging,
            series,
            NewBlock {
                min_time,
                max_time,
                level: 1,
                sources: Vec::new(),
                imported: true,
                head_end: None,
            },
        )?;
        fs::remove_file(&path).map_err(io_error(&path))?;
        Ok(meta)
    }
}

/// The complete blocks in `blocks_dir`, read-only (a running server may own
/// the directory: nothing is deleted, vanished blocks are skipped).
fn existing_blocks(blocks_dir: &Path) -> Result<Vec<Block>, TsdbError> {
    let entries = match fs::read_dir(blocks_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(blocks_dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error(blocks_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if ulid::parse(&name).is_none() {
            continue;
        }
        match Block::open(&entry.path()) {
            Ok(b) => out.push(b),
            Err(TsdbError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(out)
}

impl Tsdb {
    /// Opens complete block directories that appeared in `blocks/` since
    /// the database was opened (written by `cairn import` while it runs)
    /// and adds them to the block list; queries deduplicate any overlap
    /// with the head or other blocks, and compaction merges it. Temporary
    /// directories, blocks this database retired (compacted or expired,
    /// possibly still read by a query) and blocks whose sources a listed
    /// block already holds are skipped. Returns the blocks added.
    pub fn load_new_blocks(&self) -> Result<Vec<BlockMeta>, TsdbError> {
        let _maintenance = self.maintenance.lock();
        let blocks_dir = self.dir.join("blocks");
        let entries = match fs::read_dir(&blocks_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&blocks_dir)(e)),
        };
        let current = self.blocks.read().clone();
        let mut known: HashSet<String> = self.retired_blocks.lock().clone();
        let mut held: HashSet<String> = HashSet::new();
        for b in current.iter() {
            known.insert(b.meta().ulid.clone());
            held.extend(b.meta().compaction.sources.iter().cloned());
        }
        let mut added = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&blocks_dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(TMP_CREATION)
                || name.ends_with(TMP_DELETION)
                || ulid::parse(&name).is_none()
                || known.contains(&name)
            {
                continue;
            }
            let path = entry.path();
            let opened = match Block::open(&path) {
                Ok(b) => b,
                Err(error) => {
                    tracing::warn!(dir = %path.display(), %error, "cannot open a new block; retrying next pass");
                    continue;
                }
            };
            if opened
                .meta()
                .compaction
                .sources
                .iter()
                .all(|s| held.contains(s))
            {
                continue;
            }
            tracing::info!(
                dir = %self.dir.display(),
                block = %opened.meta().ulid,
                min_time = opened.meta().min_time,
                max_time = opened.meta().max_time,
                samples = opened.meta().stats.num_samples,
                "new block picked up"
            );
            added.push(opened.meta().clone());
            self.swap_blocks(&[], Some(Arc::new(opened)));
        }
        Ok(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TsdbOptions;
    use cairn_model::{Queryable, Sample, SeriesSamples, TenantId, TimeRange};

    const HOUR: i64 = 3_600_000;

    fn labels(i: u32) -> Labels {
        Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())])
    }

    fn options() -> TsdbOptions {
        TsdbOptions {
            maintenance_interval: std::time::Duration::ZERO,
            ..TsdbOptions::default()
        }
    }

    /// Imports `series` series, one sample a minute over `[from, to)`,
    /// interleaved by time (as a scrape dump is).
    fn import(
        data: &Path,
        tenant: &str,
        series: std::ops::Range<u32>,
        from: i64,
        to: i64,
        budget: usize,
    ) -> BackfillSummary {
        let tenant = TenantId::new(tenant).unwrap();
        let mut backfill = Backfill::new(
            data,
            &tenant,
            BackfillOptions {
                spill_buffer_bytes: budget,
                ..BackfillOptions::default()
            },
        )
        .unwrap();
        let ids: Vec<u32> = series.map(|i| backfill.add_series(labels(i))).collect();
        let mut line = 0;
        for t in (from..to).step_by(60_000) {
            for (i, &id) in ids.iter().enumerate() {
                line += 1;
                backfill
                    .append(id, t, (t / 60_000) as f64 + i as f64, line)
                    .unwrap();
            }
        }
        backfill.finish(|_, _| {}).unwrap()
    }

    fn count(db: &Tsdb) -> Vec<usize> {
        db.select(&[], TimeRange::all())
            .unwrap()
            .iter()
            .map(|s| {
                assert!(s.samples.windows(2).all(|w| w[0].t < w[1].t));
                s.samples.len()
            })
            .collect()
    }

    /// A small spill buffer (many spills) gives the same blocks; a running
    /// database picks them up once, and restart keeps its head (imported
    /// blocks newer than the head do not move the WAL replay floor).
    #[test]
    fn imported_blocks_are_picked_up_once_and_do_not_hide_the_wal() {
        let tmp = tempfile::tempdir().unwrap();
        let tenant_dir = tmp.path().join("tenants").join("t");
        let db = Tsdb::open(&tenant_dir, options()).unwrap();
        // Live data in the head: series 0 over [10h, 11h).
        for minute in 0..60 {
            let t = 10 * HOUR + minute * 60_000;
            db.append(vec![SeriesSamples {
                labels: labels(0),
                samples: vec![Sample::new(t, 1.0)],
                exemplars: Vec::new(),
            }])
            .unwrap();
        }
        // Imported: series 1..3 over [0, 14h): blocks end after the head.
        let summary = import(tmp.path(), "t", 0..3, 0, 14 * HOUR, 4096);
        assert_eq!(summary.blocks.len(), 7);
        assert_eq!(summary.samples, 3 * 14 * 60);
        assert!(summary.blocks.iter().all(|b| b.imported));
        assert!(!tmp.path().join("import").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(TMP_CREATION)));
        assert_eq!(db.load_new_blocks().unwrap().len(), 7);
        assert!(db.load_new_blocks().unwrap().is_empty());
        // Series 0's hour in the head is imported too: one sample per time.
        assert_eq!(count(&db), vec![14 * 60, 14 * 60, 14 * 60]);
        db.compact().unwrap();
        assert_eq!(count(&db), vec![14 * 60, 14 * 60, 14 * 60]);
        // Compacted blocks are retired: never picked up again.
        assert!(db.load_new_blocks().unwrap().is_empty());
        drop(db);
        let db = Tsdb::open(&tenant_dir, options()).unwrap();
        assert_eq!(count(&db), vec![14 * 60, 14 * 60, 14 * 60]);
        // The head was replayed in full: it still accepts its own range.
        assert_eq!(
            db.head_time_range(),
            Some((10 * HOUR, 10 * HOUR + 59 * 60_000))
        );
    }

    #[test]
    fn out_of_order_and_overlapping_imports_are_refused_and_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let tenant = TenantId::new("t").unwrap();
        let mut backfill = Backfill::new(tmp.path(), &tenant, BackfillOptions::default()).unwrap();
        let a = backfill.add_series(labels(0));
        backfill.append(a, 1000, 1.0, 3).unwrap();
        let error = backfill.append(a, 1000, 2.0, 7).unwrap_err();
        assert!(
            matches!(
                error,
                BackfillError::OutOfOrder {
                    line: 7,
                    previous_line: 3,
                    ..
                }
            ),
            "{error}"
        );
        drop(backfill);
        assert!(!tmp.path().join("tenants").join("t").join("blocks").exists());

        import(tmp.path(), "t", 0..2, 0, 3 * HOUR, 1 << 20);
        let blocks_dir = tmp.path().join("tenants").join("t").join("blocks");
        let before: Vec<_> = std::fs::read_dir(&blocks_dir).unwrap().collect();
        let mut backfill = Backfill::new(tmp.path(), &tenant, BackfillOptions::default()).unwrap();
        let other = backfill.add_series(labels(9));
        let same = backfill.add_series(labels(1));
        backfill.append(other, 2 * HOUR, 1.0, 1).unwrap();
        backfill.append(same, 4 * HOUR, 1.0, 2).unwrap();
        backfill.append(same, 4 * HOUR + 60_000, 1.0, 3).unwrap();
        backfill
            .append(same, 2 * HOUR + 30 * 60_000, 1.0, 4)
            .unwrap_err();
        drop(backfill);
        let mut backfill = Backfill::new(tmp.path(), &tenant, BackfillOptions::default()).unwrap();
        let other = backfill.add_series(labels(9));
        let same = backfill.add_series(labels(1));
        backfill.append(other, 2 * HOUR, 1.0, 1).unwrap();
        backfill
            .append(same, 2 * HOUR + 30 * 60_000, 1.0, 2)
            .unwrap();
        let error = backfill.finish(|_, _| {}).unwrap_err();
        assert!(
            matches!(error, BackfillError::Overlap { line: 2, .. }),
            "{error}"
        );
        let after: Vec<_> = std::fs::read_dir(&blocks_dir).unwrap().collect();
        assert_eq!(before.len(), after.len());
        // Another series in the same time is no overlap.
        let mut backfill = Backfill::new(tmp.path(), &tenant, BackfillOptions::default()).unwrap();
        let other = backfill.add_series(labels(9));
        backfill.append(other, 2 * HOUR, 1.0, 1).unwrap();
        assert_eq!(backfill.finish(|_, _| {}).unwrap().blocks.len(), 1);
    }

    /// A head block and imported blocks compact into a block whose replay
    /// floor is the head block's end, not the imported data's: the head's
    /// WAL after it survives a restart.
    #[test]
    fn compacting_head_and_imported_blocks_keeps_the_head_floor() {
        let tmp = tempfile::tempdir().unwrap();
        let tenant_dir = tmp.path().join("tenants").join("t");
        let opts = TsdbOptions {
            compaction_ranges_ms: vec![2 * HOUR, 4 * HOUR],
            ..options()
        };
        let db = Tsdb::open(&tenant_dir, opts.clone()).unwrap();
        for minute in 0..(3 * 60 + 30) {
            db.append(vec![SeriesSamples {
                labels: labels(0),
                samples: vec![Sample::new(minute * 60_000, 1.0)],
                exemplars: Vec::new(),
            }])
            .unwrap();
        }
        assert_eq!(db.cut_blocks(i64::MAX).unwrap().len(), 1);
        import(tmp.path(), "t", 5..6, 0, 4 * HOUR, 1 << 20);
        assert_eq!(db.load_new_blocks().unwrap().len(), 2);
        assert_eq!(db.compact().unwrap().len(), 2);
        let top = db.blocks();
        assert_eq!(top.len(), 1, "{top:?}");
        assert_eq!((top[0].min_time, top[0].max_time), (0, 4 * HOUR));
        assert_eq!(top[0].head_data_end(), Some(2 * HOUR));
        assert_eq!(count(&db), vec![210, 240]);
        drop(db);
        let db = Tsdb::open(&tenant_dir, opts).unwrap();
        assert_eq!(count(&db), vec![210, 240]);
    }
}
