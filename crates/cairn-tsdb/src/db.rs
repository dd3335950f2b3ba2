//! [`Tsdb`]: one tenant's database, the head behind its WAL.
//!
//! Locks: `writer` (a mutex around the WAL writer) is the tenant's write
//! lock: an append holds it while it plans (which samples are accepted,
//! reading the head under a short read lock), writes the WAL, and applies the
//! plan to the head (a short write lock). Readers take only the head's read
//! lock, copy what they need, and decode after releasing it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use std::borrow::Cow;

use cairn_model::{
    DiscardReason, Exemplar, LabelRef, LabelSetBounds, Labels, LabelsRef, MatchOp, Matcher,
    MetricMetadata, Queryable, Series, SeriesRef, SeriesSamples, SeriesSet, StorageError,
    StorageHint, TimeRange,
};

use crate::block::{self, Block};
use crate::exemplars::ExemplarStore;
use crate::head::ooo::{self, Verdict};
use crate::head::{Applied, Found, Head, LabelsAsSent, SeriesSnapshot, SlotId, NO_SLOT};
use crate::idhash::IdMap;
use crate::querier;
use crate::stats::{
    self, Cardinality, CountMethod, Counters, DiskUsage, HistogramSnapshot, WalCounters,
};
use crate::tombstones::Tombstones;
use crate::wal::{self, OsFiles, Record, RefExemplar, RefSample, SegmentOpener, WalWriter};
use crate::{AppendOutcome, Rejection, SeriesLimits, TsdbError, TsdbOptions, TsdbStats};

/// One tenant's database.
pub struct Tsdb {
    pub(crate) dir: PathBuf,
    pub(crate) opts: TsdbOptions,
    pub(crate) head: RwLock<Head>,
    /// The tenant's write lock (see the module docs).
    pub(crate) writer: Mutex<WalWriter>,
    pub(crate) exemplars: RwLock<ExemplarStore>,
    pub(crate) metadata: RwLock<BTreeMap<String, MetricMetadata>>,
    /// The blocks, sorted by `minTime`; replaced whole (copy on write) so
    /// queries take an `Arc` under a short lock and read without it.
    pub(crate) blocks: RwLock<Arc<Vec<Arc<Block>>>>,
    /// Serializes block cuts, compactions and retention.
    pub(crate) maintenance: Mutex<()>,
    /// IDs of blocks that left the block list (compacted or expired): their
    /// directories may linger while a query reads them, and
    /// [`Tsdb::load_new_blocks`] must not take them for new ones.
    pub(crate) retired_blocks: Mutex<std::collections::HashSet<String>>,
    /// Retention in milliseconds (0: forever); see [`Tsdb::set_retention`].
    pub(crate) retention_ms: std::sync::atomic::AtomicI64,
    /// Deleted ranges of head series, by series ID (`Tsdb::delete_series`).
    pub(crate) head_tombstones: RwLock<Tombstones>,
    pub(crate) counters: Counters,
    wal_counters: Arc<WalCounters>,
    /// The bucket connection, when blocks are shipped (see `shipper`).
    pub(crate) shipper: std::sync::OnceLock<crate::shipper::Shipper>,
    /// What the WAL replay at open found (and repaired).
    replay_report: wal::ReplayReport,
}

/// What one append will write and apply, decided before the WAL write.
#[derive(Default)]
struct AppendPlan {
    new_series: Vec<(u64, Labels)>,
    samples: Vec<RefSample>,
    /// Per planned sample, the head slot its series had at planning
    /// ([`NO_SLOT`] for a series this batch creates): the apply reaches
    /// the series without a lookup by ID.
    sample_slots: Vec<SlotId>,
    exemplars: Vec<RefExemplar>,
    discarded: BTreeMap<DiscardReason, u64>,
    outcome: AppendOutcome,
}

impl Tsdb {
    /// Opens (creating if needed) the database in `dir` and replays its WAL
    /// from `<dir>/wal/`, repairing a torn or corrupt tail.
    pub fn open(dir: &Path, opts: TsdbOptions) -> Result<Tsdb, TsdbError> {
        Tsdb::open_with(dir, opts, Arc::new(OsFiles))
    }

    /// [`Tsdb::open`] writing WAL segments through `files` (a fault-injection
    /// seam for tests; replay always reads the real files).
    pub fn open_with(
        dir: &Path,
        opts: TsdbOptions,
        files: Arc<dyn SegmentOpener>,
    ) -> Result<Tsdb, TsdbError> {
        std::fs::create_dir_all(dir).map_err(|source| TsdbError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let wal_dir = dir.join("wal");
        let blocks = block::open_blocks(&dir.join("blocks"))?;
        // Samples older than the newest block's end are in a block already
        // (a crash between a block's rename and the WAL checkpoint leaves
        // them in both), unless they are late out-of-order samples.
        // Imported blocks hold no head data and do not count.
        let blocks_end = blocks.iter().filter_map(|b| b.meta().head_data_end()).max();
        let mut head = Head::new();
        let mut exemplars = ExemplarStore::new(opts.max_exemplars);
        let mut metadata = BTreeMap::new();
        // Replayed samples older than that end go to the out-of-order
        // buffers (as they did live, where the cut had raised the bound):
        // afterwards those already in a block are dropped.
        if let Some(end) = blocks_end {
            head.raise_min_valid_t(end);
        }
        let mut replay = ReplayState::default();
        let report = wal::replay(&wal_dir, |record| {
            replay.apply(record, &mut head, &mut exemplars, &mut metadata);
        })?;
        if let Some(end) = blocks_end {
            // A block that cannot be read leaves the samples in the head:
            // reads and compaction keep one copy of a timestamp anyway.
            match drop_samples_in_blocks(&mut head, &blocks, end) {
                Ok(dropped) => replay.in_blocks_samples = dropped,
                Err(error) => tracing::warn!(
                    dir = %dir.display(),
                    %error,
                    "could not check replayed samples against the blocks; keeping them"
                ),
            }
            head.truncate_before(end);
        }
        let mut head_tombstones = std::mem::take(&mut replay.tombstones);
        head_tombstones.retain(head.oldest_held_t(), |id| head.get(id).is_some());
        if replay.unknown_series_samples > 0 || replay.refused_samples > 0 {
            tracing::warn!(
                dir = %dir.display(),
                unknown_series_samples = replay.unknown_series_samples,
                refused_samples = replay.refused_samples,
                "wal replay skipped samples"
            );
        }
        tracing::info!(
            dir = %dir.display(),
            segments = report.segments,
            records = report.records,
            series = head.num_series(),
            blocks = blocks.len(),
            samples_in_blocks_skipped = replay.in_blocks_samples,
            repaired = report.corruption.is_some(),
            "wal replayed"
        );
        let writer = WalWriter::open_with(&wal_dir, opts.wal_segment_size, opts.fsync, files)?;
        let wal_counters = writer.counters();
        let counters = Counters::default();
        counters
            .last_append_ms
            .store(newest_mtime_ms(&wal_dir).unwrap_or(0), Ordering::Relaxed);
        let retention_ms = i64::try_from(opts.retention.as_millis()).unwrap_or(i64::MAX);
        Ok(Tsdb {
            dir: dir.to_path_buf(),
            opts,
            blocks: RwLock::new(Arc::new(blocks.into_iter().map(Arc::new).collect())),
            maintenance: Mutex::new(()),
            retired_blocks: Mutex::new(std::collections::HashSet::new()),
            retention_ms: std::sync::atomic::AtomicI64::new(retention_ms),
            head_tombstones: RwLock::new(head_tombstones),
            head: RwLock::new(head),
            writer: Mutex::new(writer),
            exemplars: RwLock::new(exemplars),
            metadata: RwLock::new(metadata),
            counters,
            wal_counters,
            shipper: std::sync::OnceLock::new(),
            replay_report: report,
        })
    }

    /// What the WAL replay at open found: segments and records read, and
    /// the corruption repaired (segment, offset, reason), if any. The server
    /// exports it as `wal_corruptions_total`.
    pub fn wal_replay_report(&self) -> &wal::ReplayReport {
        &self.replay_report
    }

    /// The directory this database lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a batch: refuses samples that break the per-series order
    /// rules, writes the accepted ones to the WAL, then makes them visible.
    /// On a WAL error nothing is applied and the error is returned.
    pub fn append(&self, batch: Vec<SeriesSamples>) -> Result<AppendOutcome, TsdbError> {
        self.append_limited(batch, SeriesLimits::default())
    }

    /// [`Tsdb::append`] refusing new series beyond `limits` (their samples
    /// are discarded as `per_user_series_limit` / `per_metric_series_limit`;
    /// series that exist keep accepting). The check runs under the tenant's
    /// write lock, so concurrent appends cannot overshoot a limit.
    pub fn append_limited(
        &self,
        batch: Vec<SeriesSamples>,
        limits: SeriesLimits,
    ) -> Result<AppendOutcome, TsdbError> {
        let mut owned_labels = Vec::with_capacity(batch.len());
        let mut rest = Vec::with_capacity(batch.len());
        for series in batch {
            owned_labels.push(series.labels);
            rest.push((series.samples, series.exemplars));
        }
        let label_refs: Vec<Vec<LabelRef<'_>>> = owned_labels
            .iter()
            .map(|labels| labels.iter().map(LabelRef::from).collect())
            .collect();
        let by_ref = rest
            .iter_mut()
            .zip(&label_refs)
            .map(|((samples, exemplars), labels)| SeriesRef {
                labels: LabelsRef::from_sorted(labels),
                samples: Cow::Borrowed(samples.as_slice()),
                exemplars: std::mem::take(exemplars),
                found: None,
            })
            .collect();
        self.append_refs(by_ref, limits)
    }

    /// Where the head holds each of a request's series, found by their
    /// labels exactly as sent: the write path calls this before validating
    /// them (see [`FoundSeries`]). `None`, without looking, unless
    /// `admits` passes the bounds of every label set the head holds
    /// ([`Head::label_bounds`], read under the same lock as the lookup, so
    /// a series created meanwhile is covered by what `admits` saw).
    pub fn find_series<'l>(
        &self,
        sets: impl Iterator<Item = LabelsAsSent<'l>> + Clone,
        admits: impl FnOnce(&LabelSetBounds) -> bool,
    ) -> Option<FoundSeries> {
        let head = self.head.read();
        if !admits(&head.label_bounds()) {
            return None;
        }
        let hints = head
            .lookup_label_sets(sets)
            .into_iter()
            .map(|found| found.map(|(id, slot, _)| head.hint(id, slot)))
            .collect();
        Some(FoundSeries { hints })
    }

    /// [`Tsdb::append_limited`] for series whose labels are borrowed (the
    /// remote write path): a series' labels are copied only when it is new.
    /// A series' [`SeriesRef::found`] hint, from [`Tsdb::find_series`] on
    /// the same labels, saves looking it up again while it holds.
    pub fn append_refs(
        &self,
        batch: Vec<SeriesRef<'_>>,
        limits: SeriesLimits,
    ) -> Result<AppendOutcome, TsdbError> {
        let mut writer = self.writer.lock();
        let plan = {
            let head = self.head.read();
            let exemplars = self.exemplars.read();
            let plan = plan_append(&head, &exemplars, batch, limits);
            head.warm_for_append(plan.sample_slots.iter().copied());
            plan
        };
        let (mut stored, mut stored_ooo) = (0u64, 0u64);
        let mut framed = Vec::new();
        wal::record::encode_series(&plan.new_series, &mut framed);
        wal::record::encode_samples(&plan.samples, &mut framed);
        wal::record::encode_exemplars(&plan.exemplars, &mut framed);
        self.write_wal(&mut writer, &framed)?;
        {
            let mut head = self.head.write();
            for (id, labels) in &plan.new_series {
                let created = head.create_series(*id, labels);
                debug_assert!(created, "planned series {id} already exists");
            }
            // The writer lock was held since planning: no series was removed,
            // so the planned slots still hold their series (checked anyway).
            debug_assert_eq!(plan.samples.len(), plan.sample_slots.len());
            for (i, sample) in plan.samples.iter().enumerate() {
                let slot = plan.sample_slots.get(i).copied().unwrap_or(NO_SLOT);
                // Out-of-order samples repeating a timestamp within the batch
                // are dropped here, as replay will drop them.
                match head.append_in_slot(slot, sample.id, sample.t, sample.v) {
                    Some(Applied::InOrder) => stored += 1,
                    Some(Applied::OutOfOrder) => stored_ooo += 1,
                    Some(Applied::Duplicate) => {}
                    None => debug_assert!(false, "planned series {} missing", sample.id),
                }
            }
        }
        if !plan.exemplars.is_empty() {
            let mut exemplars = self.exemplars.write();
            for e in plan.exemplars {
                exemplars.add(e.id, e.exemplar);
            }
        }
        drop(writer);
        let counters = &self.counters;
        counters
            .samples_appended
            .fetch_add(stored + stored_ooo, Ordering::Relaxed);
        counters
            .ooo_samples_appended
            .fetch_add(stored_ooo, Ordering::Relaxed);
        counters
            .series_created
            .fetch_add(plan.new_series.len() as u64, Ordering::Relaxed);
        counters.ingestion_rate.add(plan.outcome.samples_accepted);
        if !framed.is_empty() {
            counters.last_append_ms.store(wall_ms(), Ordering::Relaxed);
        }
        Ok(plan.outcome)
    }

    /// Writes framed records to the WAL under the caller's writer lock,
    /// counting bytes written and failures for self-monitoring.
    pub(crate) fn write_wal(&self, writer: &mut WalWriter, framed: &[u8]) -> Result<(), TsdbError> {
        if let Err(error) = writer.write(framed) {
            self.counters
                .wal_write_failures
                .fetch_add(1, Ordering::Relaxed);
            return Err(error);
        }
        self.counters
            .wal_bytes_written
            .fetch_add(framed.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Keeps metadata per metric family name (latest wins); persisted in the
    /// WAL. Entries equal to what is already stored are not written again.
    pub fn set_metadata(&self, metadata: Vec<MetricMetadata>) -> Result<(), TsdbError> {
        let mut writer = self.writer.lock();
        let changed: Vec<MetricMetadata> = {
            let current = self.metadata.read();
            let mut latest: BTreeMap<&str, &MetricMetadata> = BTreeMap::new();
            for m in &metadata {
                latest.insert(&m.metric_family_name, m);
            }
            latest
                .into_values()
                .filter(|m| current.get(&m.metric_family_name) != Some(*m))
                .cloned()
                .collect()
        };
        if changed.is_empty() {
            return Ok(());
        }
        let mut framed = Vec::new();
        wal::record::encode_metadata(&changed, &mut framed);
        self.write_wal(&mut writer, &framed)?;
        let mut current = self.metadata.write();
        for m in changed {
            current.insert(m.metric_family_name.clone(), m);
        }
        Ok(())
    }

    /// All metadata, sorted by metric family name.
    pub fn metadata(&self) -> Vec<MetricMetadata> {
        self.metadata.read().values().cloned().collect()
    }

    /// Exemplars of matching series inside `range`, grouped by series, sorted by labels.
    pub fn exemplars(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        if range.start > range.end {
            return Vec::new();
        }
        let found = self
            .exemplars
            .read()
            .query(range.start, range.end, |_| true);
        if found.is_empty() {
            return Vec::new();
        }
        let mut labels_by_id: HashMap<u64, Labels> = HashMap::new();
        {
            let head = self.head.read();
            let wanted: BTreeSet<u64> = found.iter().map(|(id, _)| *id).collect();
            for id in head.select_ids(matchers) {
                if wanted.contains(&id) {
                    if let Some(series) = head.get(id) {
                        labels_by_id.insert(id, series.to_labels());
                    }
                }
            }
        }
        let mut grouped: HashMap<u64, Vec<Exemplar>> = HashMap::new();
        for (id, exemplar) in found {
            if labels_by_id.contains_key(&id) {
                grouped.entry(id).or_default().push(exemplar);
            }
        }
        let mut out: Vec<(Labels, Vec<Exemplar>)> = grouped
            .into_iter()
            .filter_map(|(id, exemplars)| labels_by_id.remove(&id).map(|l| (l, exemplars)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Labels of the series that match and have a sample in `range`, sorted
    /// (the `/api/v1/series` endpoint), from the head and the blocks: like
    /// `select` without returning samples, decoding only chunks that
    /// straddle the range's ends. A block that cannot be read is logged
    /// and left out.
    pub fn series(&self, matchers: &[Matcher], range: TimeRange) -> Vec<Labels> {
        match self.matching_label_sets(matchers, range) {
            Ok(found) => found,
            Err(error) => {
                tracing::error!(dir = %self.dir.display(), %error, "reading blocks for a series query failed");
                Vec::new()
            }
        }
    }

    /// Labels of the series with a sample in `range`, head and blocks, sorted.
    fn matching_label_sets(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, TsdbError> {
        let mut out: BTreeSet<Labels> = BTreeSet::new();
        for b in self.blocks_overlapping(range) {
            out.extend(b.select_labels(matchers, range.start, range.end)?);
        }
        for snapshot in self.snapshot(matchers, range) {
            if snapshot.has_sample_in(range.start, range.end) {
                out.insert(snapshot.labels.to_labels());
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Blocks overlapping `range` (taken under a short lock, read after it).
    pub(crate) fn blocks_overlapping(&self, range: TimeRange) -> Vec<Arc<Block>> {
        if range.start > range.end {
            return Vec::new();
        }
        let blocks = self.blocks.read().clone();
        blocks
            .iter()
            .filter(|b| b.overlaps(range.start, range.end))
            .cloned()
            .collect()
    }

    /// Head series counted by the values of `names` (`None` where a series
    /// lacks the label), for usage cost attribution. Walks every series:
    /// call it at record rate, not per request.
    pub fn head_series_by_labels(&self, names: &[String]) -> HashMap<Vec<Option<String>>, u64> {
        let head = self.head.read();
        let mut out: HashMap<Vec<Option<String>>, u64> = HashMap::new();
        for (_, series) in head.iter_series() {
            let labels = series.labels();
            let key = names
                .iter()
                .map(|name| labels.get(name).map(str::to_string))
                .collect();
            *out.entry(key).or_default() += 1;
        }
        out
    }

    /// Oldest and newest sample time in the head, if it holds any.
    pub fn head_time_range(&self) -> Option<(i64, i64)> {
        self.head.read().time_bounds()
    }

    /// IDs and time ranges (`minTime` inclusive, `maxTime` exclusive) of
    /// the blocks, oldest first.
    pub fn blocks(&self) -> Vec<block::BlockMeta> {
        self.blocks
            .read()
            .iter()
            .map(|b| b.meta().clone())
            .collect()
    }

    /// Per label name, the number of distinct values over all series in
    /// the head, sorted by name (Mimir's cardinality `label_names` API).
    pub fn label_names_cardinality(&self) -> Vec<(String, u64)> {
        self.head.read().label_names_cardinality()
    }

    /// Per value of label `name`, the number of series in the head carrying
    /// it, sorted by value (Mimir's cardinality `label_values` API).
    pub fn label_values_cardinality(&self, name: &str) -> Vec<(String, u64)> {
        self.head.read().label_values_cardinality(name)
    }

    /// Bytes of compressed sample data held in memory (the head's chunks),
    /// for usage reporting. Walks every series: call it at scrape rate, not
    /// per request.
    pub fn head_chunk_bytes(&self) -> u64 {
        self.head.read().chunk_bytes()
    }

    pub fn stats(&self) -> TsdbStats {
        let c = &self.counters;
        let w = &self.wal_counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let last_write = c.last_append_ms.load(Ordering::Relaxed);
        TsdbStats {
            active_series: self.head.read().num_series() as u64,
            wal_bytes_written: load(&c.wal_bytes_written),
            samples_appended: load(&c.samples_appended),
            ooo_samples_appended: load(&c.ooo_samples_appended),
            series_created: load(&c.series_created),
            wal_write_failures: load(&c.wal_write_failures),
            wal_fsyncs: load(&w.fsyncs),
            wal_fsync_failures: load(&w.fsync_failures),
            wal_segments_created: load(&w.segments_created),
            block_cuts: load(&c.block_cuts),
            block_cut_failures: load(&c.block_cut_failures),
            compactions: load(&c.compactions),
            compaction_failures: load(&c.compaction_failures),
            retention_blocks_deleted: load(&c.retention_blocks_deleted),
            last_write_ms: (last_write > 0).then_some(last_write),
            ingestion_rate: c.ingestion_rate.rate(),
        }
    }

    /// Moves the ingestion rate on; call every [`stats::RATE_UPDATE_PERIOD`].
    pub fn tick_ingestion_rate(&self) {
        self.counters.ingestion_rate.tick();
    }

    /// Durations of block cuts and of compactions.
    pub fn maintenance_durations(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        (
            self.counters.block_cut_duration.snapshot(),
            self.counters.compaction_duration.snapshot(),
        )
    }

    /// Whether the WAL refuses writes after a write it could not undo.
    pub fn wal_broken(&self) -> bool {
        self.wal_counters.broken.load(Ordering::Relaxed)
    }

    /// Bytes and files on disk: WAL (segments and checkpoints) and blocks.
    /// Lists the WAL directory; block sizes are known from their open.
    pub fn disk_usage(&self) -> DiskUsage {
        let wal_dir = self.dir.join("wal");
        let wal_segments = wal::list_segments(&wal_dir).map_or(0, |s| s.len() as u64);
        let blocks = self.blocks.read().clone();
        DiskUsage {
            wal_bytes: stats::dir_size(&wal_dir),
            wal_segments,
            block_bytes: blocks.iter().map(|b| b.size_bytes()).sum(),
            blocks: blocks.len() as u64,
        }
    }

    /// Series in the head counted by `method`.
    pub fn head_series_count(&self, method: CountMethod) -> u64 {
        let head = self.head.read();
        match method {
            CountMethod::InMemory => head.num_series() as u64,
            CountMethod::ActiveSince(since) => head
                .iter_series()
                .filter(|(_, s)| is_active(s, since))
                .count() as u64,
        }
    }

    /// Chunks in the head (closed and open).
    pub fn head_chunks(&self) -> u64 {
        self.head
            .read()
            .iter_series()
            .map(|(_, s)| {
                let ooo = s.ooo().map_or(0, |o| o.chunk_count());
                (s.closed_chunks().len() + usize::from(s.last().is_some()) + ooo) as u64
            })
            .sum()
    }

    /// Label names, values and series counts over the head's series that
    /// match `matchers` and are counted by `method` (Mimir's cardinality
    /// API answers from the ingesters' heads, as this does); only the
    /// label names in `only` when given. Copies under the head's read lock.
    pub fn head_cardinality(
        &self,
        matchers: &[Matcher],
        method: CountMethod,
        only: Option<&BTreeSet<String>>,
    ) -> Cardinality {
        let head = self.head.read();
        if matchers.is_empty() && method == CountMethod::InMemory {
            // Every series: the inverted index has the answer.
            return head.index_cardinality(only);
        }
        let mut out = Cardinality::default();
        for id in head.select_ids(matchers) {
            let Some(series) = head.get(id) else {
                continue;
            };
            if let CountMethod::ActiveSince(since) = method {
                if !is_active(series, since) {
                    continue;
                }
            }
            out.add_series(series.labels().iter(), only);
        }
        out
    }

    /// Labels of the head's series that match and are counted by `method`,
    /// sorted; `None` if there are more than `max`.
    pub fn head_series_labels(
        &self,
        matchers: &[Matcher],
        method: CountMethod,
        max: usize,
    ) -> Option<Vec<Labels>> {
        let mut out = Vec::new();
        {
            let head = self.head.read();
            for id in head.select_ids(matchers) {
                let Some(series) = head.get(id) else {
                    continue;
                };
                if let CountMethod::ActiveSince(since) = method {
                    if !is_active(series, since) {
                        continue;
                    }
                }
                if out.len() == max {
                    return None;
                }
                out.push(series.to_labels());
            }
        }
        out.sort();
        Some(out)
    }

    /// Flushes and fsyncs the WAL; called on clean shutdown. The database
    /// stays usable.
    pub fn close(&self) -> Result<(), TsdbError> {
        self.writer.lock().sync()
    }

    /// Snapshots matching series with chunks overlapping `range` (under the
    /// head's read lock, released on return).
    fn snapshot(&self, matchers: &[Matcher], range: TimeRange) -> Vec<SeriesSnapshot> {
        if range.start > range.end {
            return Vec::new();
        }
        let snapshots = self.head.read().snapshot(matchers, range.start, range.end);
        self.without_deleted(snapshots)
    }
}

/// Whether the series' newest sample is at or after `since` (ms).
fn is_active(series: &crate::head::MemSeries, since: i64) -> bool {
    series.last().is_some_and(|(t, _)| t >= since)
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Modification time (ms) of the newest file directly in `dir`.
fn newest_mtime_ms(dir: &Path) -> Option<i64> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| entry.metadata().ok()?.modified().ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .max()
}

fn storage_error(error: TsdbError) -> StorageError {
    tracing::error!(%error, "reading a block failed");
    StorageError::Io(std::io::Error::other(error.to_string()))
}

impl Tsdb {
    /// The matching series of the blocks (oldest first) and the head with
    /// their chunks overlapping `range`, merged by labels (see `querier`).
    fn select_chunks(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<querier::FoundSeries>, StorageError> {
        let blocks = self.blocks_overlapping(range);
        let snapshots = self.snapshot(matchers, range);
        let mut sources = Vec::with_capacity(blocks.len() + 1);
        for b in blocks {
            sources.push(
                b.select(matchers, range.start, range.end)
                    .map_err(storage_error)?,
            );
        }
        sources.push(
            snapshots
                .into_iter()
                .map(|snapshot| (snapshot.labels.to_labels(), snapshot.chunks))
                .collect(),
        );
        Ok(querier::merge_sources(sources))
    }
}

impl Queryable for Tsdb {
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
        // Each series decoded once (see `querier`).
        Ok(querier::decode_series(
            self.select_chunks(matchers, range)?,
            range,
        ))
    }

    fn select_set(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Box<dyn SeriesSet>, StorageError> {
        Ok(Box::new(querier::LazySeries::new(
            self.select_chunks(matchers, range)?,
            range,
        )))
    }

    /// From the indexes: no chunk is decoded unless it straddles an end of
    /// `range` (or a tombstone), where the samples decide.
    fn series_labels(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, StorageError> {
        self.matching_label_sets(matchers, range)
            .map_err(storage_error)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        if matchers.is_empty() && range == TimeRange::all() && !self.has_tombstones() {
            let mut names: BTreeSet<String> = self
                .head
                .read()
                .label_names()
                .iter()
                .map(|n| n.to_string())
                .collect();
            for b in self.blocks_overlapping(range) {
                let index = b.index().map_err(storage_error)?;
                names.extend(index.label_names().map_err(storage_error)?);
            }
            return Ok(names.into_iter().collect());
        }
        let mut names: BTreeSet<String> = BTreeSet::new();
        for labels in self
            .matching_label_sets(matchers, range)
            .map_err(storage_error)?
        {
            names.extend(labels.iter().map(|l| l.name.clone()));
        }
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        if matchers.is_empty() && range == TimeRange::all() && !self.has_tombstones() {
            let mut values: BTreeSet<String> = self
                .head
                .read()
                .label_values(name)
                .iter()
                .map(|v| v.to_string())
                .collect();
            for b in self.blocks_overlapping(range) {
                let index = b.index().map_err(storage_error)?;
                values.extend(index.label_values(name).map_err(storage_error)?);
            }
            return Ok(values.into_iter().collect());
        }
        // Only series that carry the label can contribute a value.
        let mut with_label = matchers.to_vec();
        with_label.push(
            Matcher::new(MatchOp::NotEqual, name, "").expect("a non-regex matcher always builds"),
        );
        let mut values: BTreeSet<String> = BTreeSet::new();
        for labels in self
            .matching_label_sets(&with_label, range)
            .map_err(storage_error)?
        {
            if let Some(value) = labels.get(name) {
                values.insert(value.to_string());
            }
        }
        Ok(values.into_iter().collect())
    }
}

/// Applies WAL records to a head being rebuilt.
#[derive(Default)]
struct ReplayState {
    /// Replayed samples found in blocks already (and dropped).
    in_blocks_samples: u64,
    /// Series IDs whose labels were already known under another ID.
    aliases: HashMap<u64, u64>,
    unknown_series_samples: u64,
    refused_samples: u64,
    /// Deleted ranges of head series, by (de-aliased) series ID.
    tombstones: Tombstones,
}

impl ReplayState {
    fn apply(
        &mut self,
        record: Record,
        head: &mut Head,
        exemplars: &mut ExemplarStore,
        metadata: &mut BTreeMap<String, MetricMetadata>,
    ) {
        match record {
            Record::Series(series) => {
                for (id, labels) in series {
                    if head.create_series(id, &labels) {
                        continue;
                    }
                    match head.lookup(&labels) {
                        Some(existing) if existing != id => {
                            self.aliases.insert(id, existing);
                        }
                        Some(_) => {}
                        None => {
                            tracing::warn!(id, %labels, "wal series id reused for other labels; ignoring")
                        }
                    }
                }
            }
            Record::Samples(samples) => {
                for sample in samples {
                    let id = self.aliases.get(&sample.id).copied().unwrap_or(sample.id);
                    match head.append(id, sample.t, sample.v) {
                        None => self.unknown_series_samples += 1,
                        Some(Applied::Duplicate) => self.refused_samples += 1,
                        Some(_) => {}
                    }
                }
            }
            Record::Exemplars(list) => {
                for e in list {
                    let id = self.aliases.get(&e.id).copied().unwrap_or(e.id);
                    exemplars.add(id, e.exemplar);
                }
            }
            Record::Metadata(list) => {
                for m in list {
                    metadata.insert(m.metric_family_name.clone(), m);
                }
            }
            Record::Tombstones(list) => {
                let mut stones = Tombstones::default();
                for (id, interval) in list {
                    let id = self.aliases.get(&id).copied().unwrap_or(id);
                    stones.add(id, interval);
                    self.tombstones.add(id, interval);
                }
                // Exemplars logged before the deletion go, as they went then.
                exemplars.retain(|id, e| !stones.get(id).is_some_and(|d| d.contains(e.t)));
            }
        }
    }
}

/// After replay: drops the head's samples older than `end` (all out of
/// order by then) that a block holds already, as after a crash between a
/// block's rename and the WAL checkpoint; late out-of-order samples not yet
/// cut stay. Returns how many were dropped.
fn drop_samples_in_blocks(head: &mut Head, blocks: &[Block], end: i64) -> Result<u64, TsdbError> {
    let mut found: Vec<(u64, Vec<i64>)> = Vec::new();
    for (id, series) in head.iter_series() {
        let Some((min_t, _)) = series.ooo().and_then(|o| o.time_range()) else {
            continue;
        };
        if min_t >= end {
            continue;
        }
        let labels = series.to_labels();
        let matchers: Vec<Matcher> = labels
            .iter()
            .map(|l| Matcher::equal(&l.name, &l.value))
            .collect();
        let mut in_blocks: Vec<i64> = Vec::new();
        for b in blocks.iter().filter(|b| b.overlaps(min_t, end - 1)) {
            for (found_labels, chunks) in b.select(&matchers, min_t, end - 1)? {
                if found_labels != labels {
                    continue;
                }
                for chunk in &chunks {
                    in_blocks.extend(chunk.iter().map(|(t, _)| t).filter(|t| *t < end));
                }
            }
        }
        if !in_blocks.is_empty() {
            found.push((id, in_blocks));
        }
    }
    Ok(head.remove_ooo(&found) as u64)
}

/// The answer of [`Tsdb::find_series`]: a hint per series of the request
/// that the head holds.
///
/// A series found here has labels byte for byte equal to a stored series',
/// and every stored label set passed the caller's `admits` check of their
/// bounds: the write path validates only the other series, and hands the
/// hints on to [`Tsdb::append_refs`] in [`SeriesRef::found`].
#[derive(Clone, Debug, Default)]
pub struct FoundSeries {
    hints: Vec<Option<StorageHint>>,
}

impl FoundSeries {
    /// Where the head held the request's `index`th series, if it did.
    pub fn get(&self, index: usize) -> Option<StorageHint> {
        self.hints.get(index).copied().flatten()
    }
}

/// Each series of the batch in the head: through its hint where the hint
/// still holds, else by its labels (those looked up together, see
/// `Head::lookup_packed_many`).
fn lookup_batch<'h>(head: &'h Head, batch: &[SeriesRef<'_>]) -> Vec<Found<'h>> {
    let mut found: Vec<Found<'h>> = batch
        .iter()
        .map(|series| series.found.and_then(|hint| head.at_hint(hint)))
        .collect();
    debug_assert!(batch.iter().zip(&found).all(|(series, found)| {
        found.is_none_or(|(_, _, stored)| stored.labels().equals_ref(series.labels))
    }));
    let missing: Vec<usize> = (0..batch.len()).filter(|&i| found[i].is_none()).collect();
    if !missing.is_empty() {
        let sets = missing
            .iter()
            .map(|&i| LabelsAsSent::new(batch[i].labels.as_slice()));
        for (i, looked_up) in missing.iter().zip(head.lookup_label_sets(sets)) {
            found[*i] = looked_up;
        }
    }
    found
}

/// Decides, per sample and per exemplar, what this batch accepts.
fn plan_append(
    head: &Head,
    exemplar_store: &ExemplarStore,
    batch: Vec<SeriesRef<'_>>,
    limits: SeriesLimits,
) -> AppendPlan {
    let mut plan = AppendPlan {
        samples: Vec::with_capacity(batch.iter().map(|s| s.samples.len()).sum()),
        sample_slots: Vec::with_capacity(batch.iter().map(|s| s.samples.len()).sum()),
        ..AppendPlan::default()
    };
    // New series of this batch per metric name (only with a per-metric limit).
    let mut batch_per_metric: HashMap<String, u64> = HashMap::new();
    let mut next_id = head.next_id();
    let mut batch_series: HashMap<LabelsRef<'_>, u64, foldhash::fast::RandomState> =
        HashMap::default();
    let mut batch_last: IdMap<(i64, u64)> = IdMap::default();
    batch_last.reserve(batch.len());
    let mut batch_newest_exemplar: IdMap<i64> = IdMap::default();
    let window = limits.out_of_order_window_ms;
    let in_head_all = lookup_batch(head, &batch);
    // The head's newest sample when the append began (Prometheus's
    // appender `headMaxt`); an empty head starts at the batch's first sample.
    let head_max = head
        .max_time()
        .or_else(|| batch.iter().find_map(|s| s.samples.first()).map(|s| s.t))
        .unwrap_or(i64::MIN);
    for (
        index,
        SeriesRef {
            labels,
            samples,
            exemplars,
            ..
        },
    ) in batch.into_iter().enumerate()
    {
        let in_head = in_head_all[index];
        let existing = in_head
            .map(|(id, _, _)| id)
            .or_else(|| batch_series.get(&labels).copied());
        let slot = in_head.map_or(NO_SLOT, |(_, slot, _)| slot);
        let mut last = existing.and_then(|id| {
            batch_last
                .get(&id)
                .copied()
                .or_else(|| in_head.and_then(|(_, _, s)| s.last()))
        });
        // Accepted samples go straight into the plan under a placeholder ID
        // (the series may not exist yet), fixed up or rolled back below.
        let first_planned = plan.samples.len();
        let accepted_before = plan.outcome.samples_accepted;
        for sample in samples.iter() {
            let v_bits = sample.v.to_bits();
            let verdict =
                ooo::appendable(last, sample.t, v_bits, head.min_valid_t(), window, head_max);
            match verdict {
                Verdict::InOrder => {
                    plan.samples.push(RefSample {
                        id: 0,
                        t: sample.t,
                        v: sample.v,
                    });
                    last = Some((sample.t, v_bits));
                }
                // The head holds the timestamp: the first write wins (see
                // `head::ooo`). Repeats within the batch drop at apply time.
                Verdict::OutOfOrder
                    if existing
                        .and_then(|id| head.get(id))
                        .is_some_and(|s| s.sample_at(sample.t).is_some()) =>
                {
                    plan.outcome.samples_accepted += 1
                }
                Verdict::OutOfOrder => plan.samples.push(RefSample {
                    id: 0,
                    t: sample.t,
                    v: sample.v,
                }),
                Verdict::SilentDuplicate => plan.outcome.samples_accepted += 1,
                Verdict::Reject(reason) => {
                    *plan.discarded.entry(reason).or_default() += 1;
                    match plan.outcome.discarded_by_series.last_mut() {
                        Some((i, r, n)) if *i == index && *r == reason => *n += 1,
                        _ => plan.outcome.discarded_by_series.push((index, reason, 1)),
                    }
                    if plan.outcome.first_rejection.is_none() {
                        plan.outcome.first_rejection = Some(Rejection {
                            reason,
                            labels: labels.to_labels(),
                            t: sample.t,
                        });
                    }
                }
            }
        }
        let stored = plan.samples.len() - first_planned;
        plan.outcome.samples_accepted += stored as u64;
        // A series is created only for data that is kept: an accepted sample,
        // or exemplars sent without samples (the first exemplar of a new
        // series is always kept when exemplar storage is on).
        let keeps_series = existing.is_some()
            || stored > 0
            || (samples.is_empty() && !exemplars.is_empty() && exemplar_store.is_enabled());
        if !keeps_series {
            debug_assert_eq!(stored, 0);
            continue;
        }
        let id = match existing {
            Some(id) => id,
            None => {
                if let Some(reason) =
                    series_limit_reached(head, &plan, &mut batch_per_metric, labels, limits)
                {
                    // Nothing of the series is kept: roll back its samples.
                    plan.samples.truncate(first_planned);
                    let kept = plan.outcome.samples_accepted - accepted_before;
                    plan.outcome.samples_accepted = accepted_before;
                    if kept > 0 {
                        *plan.discarded.entry(reason).or_default() += kept;
                        plan.outcome.discarded_by_series.push((index, reason, kept));
                    }
                    if plan.outcome.first_rejection.is_none() {
                        plan.outcome.first_rejection = Some(Rejection {
                            reason,
                            t: samples.first().map_or(0, |s| s.t),
                            labels: labels.to_labels(),
                        });
                    }
                    continue;
                }
                let id = next_id;
                next_id += 1;
                batch_series.insert(labels, id);
                plan.new_series.push((id, labels.to_labels()));
                plan.outcome.series_created += 1;
                id
            }
        };
        if let Some(last) = last {
            batch_last.insert(id, last);
        }
        for planned in &mut plan.samples[first_planned..] {
            planned.id = id;
        }
        plan.sample_slots.resize(plan.samples.len(), slot);
        for exemplar in exemplars {
            let newest = batch_newest_exemplar.get(&id).copied();
            if exemplar_store.accepts(id, exemplar.t, newest) {
                batch_newest_exemplar.insert(id, exemplar.t);
                plan.outcome.exemplars_accepted += 1;
                plan.exemplars.push(RefExemplar { id, exemplar });
            }
        }
    }
    plan.outcome.discarded = plan.discarded.iter().map(|(r, n)| (*r, *n)).collect();
    plan
}

/// Whether creating `labels` as a new series would exceed `limits`, counting
/// the head's series and the new series planned so far; on success the
/// series is counted in `batch_per_metric`.
fn series_limit_reached(
    head: &Head,
    plan: &AppendPlan,
    batch_per_metric: &mut HashMap<String, u64>,
    labels: LabelsRef<'_>,
    limits: SeriesLimits,
) -> Option<DiscardReason> {
    if limits.max_series > 0
        && (head.num_series() + plan.new_series.len()) as u64 >= limits.max_series
    {
        return Some(DiscardReason::PerUserSeriesLimit);
    }
    if limits.max_series_per_metric > 0 {
        let name = labels.get(cairn_model::METRIC_NAME).unwrap_or("");
        let in_batch = batch_per_metric.get(name).copied().unwrap_or(0);
        if head.series_count_for_metric(name) as u64 + in_batch >= limits.max_series_per_metric {
            return Some(DiscardReason::PerMetricSeriesLimit);
        }
        *batch_per_metric.entry(name.to_string()).or_default() += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::{DiscardReason, MetricType, Sample, STALE_NAN, STALE_NAN_BITS};

    fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::from_pairs(pairs),
            samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
            exemplars: Vec::new(),
        }
    }

    fn open(dir: &Path) -> Tsdb {
        Tsdb::open(dir, TsdbOptions::default()).unwrap()
    }

    fn all_samples(db: &Tsdb, matchers: &[Matcher]) -> Vec<(Labels, Vec<(i64, u64)>)> {
        db.select(matchers, TimeRange::all())
            .unwrap()
            .into_iter()
            .map(|s| {
                let samples = s.samples.iter().map(|p| (p.t, p.v.to_bits())).collect();
                (s.labels, samples)
            })
            .collect()
    }

    #[test]
    fn append_rules_within_and_across_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let up = [("__name__", "up")];
        let outcome = db
            .append(vec![series(
                &up,
                &[
                    (10, 1.0),
                    (20, 2.0),
                    (20, 2.0),
                    (15, 9.0),
                    (20, 3.0),
                    (30, STALE_NAN),
                ],
            )])
            .unwrap();
        assert_eq!(outcome.samples_accepted, 4);
        assert_eq!(outcome.series_created, 1);
        assert_eq!(
            outcome.discarded,
            vec![
                (DiscardReason::SampleOutOfOrder, 1),
                (DiscardReason::SampleDuplicateTimestamp, 1)
            ]
        );
        assert_eq!(
            outcome.first_rejection,
            Some(Rejection {
                reason: DiscardReason::SampleOutOfOrder,
                labels: Labels::from_pairs(&up),
                t: 15
            })
        );
        // The next batch is checked against what was accepted.
        let outcome = db
            .append(vec![series(&up, &[(30, STALE_NAN), (25, 1.0), (40, 4.0)])])
            .unwrap();
        assert_eq!(outcome.samples_accepted, 2);
        assert_eq!(outcome.series_created, 0);
        let got = all_samples(&db, &[Matcher::equal("__name__", "up")]);
        assert_eq!(
            got[0].1,
            vec![
                (10, 1f64.to_bits()),
                (20, 2f64.to_bits()),
                (30, STALE_NAN_BITS),
                (40, 4f64.to_bits())
            ]
        );
        assert_eq!(db.stats().samples_appended, 4);
        assert_eq!(db.stats().active_series, 1);
    }

    #[test]
    fn the_same_series_twice_in_one_batch_is_one_series() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let a = [("__name__", "a")];
        let outcome = db
            .append(vec![
                series(&a, &[(1, 1.0)]),
                series(&a, &[(1, 2.0), (2, 2.0)]),
            ])
            .unwrap();
        assert_eq!(outcome.series_created, 1);
        assert_eq!(outcome.samples_accepted, 2);
        assert_eq!(
            outcome.discarded,
            vec![(DiscardReason::SampleDuplicateTimestamp, 1)]
        );
        drop(db);
        let reopened = open(tmp.path());
        let got = all_samples(&reopened, &[]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, vec![(1, 1f64.to_bits()), (2, 2f64.to_bits())]);
    }

    #[test]
    fn select_filters_by_range_and_sorts_by_labels() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 1000, i as f64)).collect();
        db.append(vec![
            series(&[("__name__", "m"), ("i", "2")], &samples),
            series(&[("__name__", "m"), ("i", "1")], &samples[..10]),
            series(&[("__name__", "other")], &samples),
        ])
        .unwrap();
        let m = [Matcher::equal("__name__", "m")];
        let selected = db.select(&m, TimeRange::new(5_000, 150_000)).unwrap();
        assert_eq!(selected.len(), 2);
        assert_eq!(selected[0].labels.get("i"), Some("1"));
        let ts: Vec<i64> = selected[0].samples.iter().map(|s| s.t).collect();
        assert_eq!(ts, (5..10).map(|i| i * 1000).collect::<Vec<_>>());
        let ts: Vec<i64> = selected[1].samples.iter().map(|s| s.t).collect();
        assert_eq!(ts, (5..=150).map(|i| i * 1000).collect::<Vec<_>>());
        // Only series with a sample in range.
        let later = db.select(&m, TimeRange::new(10_000, 10_000)).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(
            db.series(&m, TimeRange::new(10_000, 10_000)),
            vec![Labels::from_pairs(&[("__name__", "m"), ("i", "2")])]
        );
        assert_eq!(db.series(&m, TimeRange::all()).len(), 2);
        assert!(db.select(&m, TimeRange::new(5, 4)).unwrap().is_empty());

        assert_eq!(
            db.label_names(&[], TimeRange::all()).unwrap(),
            vec!["__name__", "i"]
        );
        assert_eq!(
            db.label_values("i", &[], TimeRange::new(10_000, 20_000))
                .unwrap(),
            vec!["2"]
        );
        assert_eq!(
            db.label_values("__name__", &[], TimeRange::all()).unwrap(),
            vec!["m", "other"]
        );
        let other = [Matcher::equal("__name__", "other")];
        assert_eq!(
            db.label_names(&other, TimeRange::new(0, 1)).unwrap(),
            vec!["__name__"]
        );
        assert!(db
            .label_names(&other, TimeRange::new(-10, -1))
            .unwrap()
            .is_empty());
        assert_eq!(
            db.label_names_cardinality(),
            vec![("__name__".to_string(), 2), ("i".to_string(), 2)]
        );
        assert_eq!(
            db.label_values_cardinality("__name__"),
            vec![("m".to_string(), 2), ("other".to_string(), 1)]
        );
        assert!(db.label_values_cardinality("nope").is_empty());
    }

    /// A failed WAL write must leave the head untouched: nothing the client
    /// was told failed may become visible (or be replayed later).
    #[test]
    fn a_failed_wal_write_applies_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        std::fs::remove_dir_all(tmp.path().join("wal")).unwrap();
        let result = db.append(vec![series(&[("__name__", "a")], &[(1, 1.0)])]);
        assert!(matches!(result, Err(TsdbError::Io { .. })));
        assert!(db.select(&[], TimeRange::all()).unwrap().is_empty());
        assert_eq!(
            db.stats(),
            TsdbStats {
                wal_write_failures: 1,
                ..TsdbStats::default()
            }
        );
        // Once the WAL can be written again, the same samples are accepted.
        std::fs::create_dir_all(tmp.path().join("wal")).unwrap();
        let outcome = db
            .append(vec![series(&[("__name__", "a")], &[(1, 1.0)])])
            .unwrap();
        assert_eq!((outcome.samples_accepted, outcome.series_created), (1, 1));
        drop(db);
        assert_eq!(all_samples(&open(tmp.path()), &[]).len(), 1);
    }

    /// Segment files whose `n`-th write (counting from 0) stores only half
    /// its bytes and then fails, as a full disk would.
    struct TornWrites {
        fail_write: usize,
        writes: Arc<AtomicU64>,
    }

    struct TornFile {
        file: std::fs::File,
        fail_write: usize,
        writes: Arc<AtomicU64>,
    }

    impl SegmentOpener for TornWrites {
        fn create(&self, path: &Path) -> std::io::Result<Box<dyn wal::SegmentFile>> {
            let file = std::fs::OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(path)?;
            Ok(Box::new(TornFile {
                file,
                fail_write: self.fail_write,
                writes: self.writes.clone(),
            }))
        }
    }

    impl wal::SegmentFile for TornFile {
        fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            use std::io::Write;
            let n = self.writes.fetch_add(1, Ordering::SeqCst) as usize;
            if n == self.fail_write {
                self.file.write_all(&bytes[..bytes.len() / 2])?;
                return Err(std::io::Error::other("no space left (injected)"));
            }
            self.file.write_all(bytes)
        }
        fn sync_data(&mut self) -> std::io::Result<()> {
            self.file.sync_data()
        }
        fn sync_all(&mut self) -> std::io::Result<()> {
            self.file.sync_all()
        }
        fn set_len(&mut self, len: u64) -> std::io::Result<()> {
            self.file.set_len(len)
        }
    }

    /// A write that fails half-way is cut back out of the segment: the
    /// failed batch is neither visible nor replayed, and later appends land
    /// in a clean log.
    #[test]
    fn a_torn_wal_write_is_undone_and_later_appends_replay_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let files = Arc::new(TornWrites {
            fail_write: 1,
            writes: Arc::new(AtomicU64::new(0)),
        });
        let db = Tsdb::open_with(tmp.path(), TsdbOptions::default(), files).unwrap();
        let a = [("__name__", "a")];
        db.append(vec![series(&a, &[(1, 1.0)])]).unwrap();
        let failed = db.append(vec![
            series(&a, &[(2, 2.0)]),
            series(&[("__name__", "b")], &[(2, 2.0)]),
        ]);
        assert!(matches!(failed, Err(TsdbError::Io { .. })));
        assert_eq!(db.stats().active_series, 1);
        assert_eq!(all_samples(&db, &[])[0].1, vec![(1, 1f64.to_bits())]);
        let outcome = db.append(vec![series(&a, &[(3, 3.0)])]).unwrap();
        assert_eq!(outcome.samples_accepted, 1);
        drop(db);
        let reopened = open(tmp.path());
        assert_eq!(reopened.wal_replay_report().corruption, None);
        assert_eq!(
            all_samples(&reopened, &[]),
            vec![(
                Labels::from_pairs(&a),
                vec![(1, 1f64.to_bits()), (3, 3f64.to_bits())]
            )]
        );
    }

    #[test]
    fn series_limits_refuse_new_series_and_keep_existing_ones_accepting() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let limits = SeriesLimits {
            max_series: 3,
            max_series_per_metric: 2,
            ..SeriesLimits::default()
        };
        let outcome = db
            .append_limited(
                vec![
                    series(&[("__name__", "a"), ("i", "1")], &[(1, 1.0), (2, 2.0)]),
                    series(&[("__name__", "a"), ("i", "2")], &[(1, 1.0)]),
                    // Third `a` series: over the per-metric limit of 2.
                    series(&[("__name__", "a"), ("i", "3")], &[(1, 1.0), (2, 2.0)]),
                    series(&[("__name__", "b")], &[(1, 1.0)]),
                    // Fourth series: over the per-tenant limit of 3.
                    series(&[("__name__", "c")], &[(1, 1.0), (1, 1.0)]),
                ],
                limits,
            )
            .unwrap();
        assert_eq!(outcome.samples_accepted, 4);
        assert_eq!(outcome.series_created, 3);
        assert_eq!(
            outcome.discarded,
            vec![
                (DiscardReason::PerUserSeriesLimit, 2),
                (DiscardReason::PerMetricSeriesLimit, 2)
            ]
        );
        let rejection = outcome.first_rejection.unwrap();
        assert_eq!(rejection.reason, DiscardReason::PerMetricSeriesLimit);
        assert_eq!(
            rejection.labels,
            Labels::from_pairs(&[("__name__", "a"), ("i", "3")])
        );
        assert_eq!(db.stats().active_series, 3);

        // Existing series keep accepting; new ones are still refused.
        let outcome = db
            .append_limited(
                vec![
                    series(&[("__name__", "a"), ("i", "1")], &[(3, 3.0)]),
                    series(&[("__name__", "b")], &[(2, 2.0)]),
                    series(&[("__name__", "d")], &[(2, 2.0)]),
                ],
                limits,
            )
            .unwrap();
        assert_eq!(outcome.samples_accepted, 2);
        assert_eq!(
            outcome.discarded,
            vec![(DiscardReason::PerUserSeriesLimit, 1)]
        );
        assert!(all_samples(&db, &[Matcher::equal("__name__", "d")]).is_empty());
        // Without limits (or with higher ones) the series is created.
        let outcome = db
            .append(vec![series(&[("__name__", "d")], &[(2, 2.0)])])
            .unwrap();
        assert_eq!(outcome.series_created, 1);
    }

    #[test]
    fn concurrent_appends_never_overshoot_the_series_limit() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let limits = SeriesLimits {
            max_series: 100,
            max_series_per_metric: 0,
            ..SeriesLimits::default()
        };
        let created = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (db, created) = (&db, &created);
                scope.spawn(move || {
                    for batch in 0..10 {
                        let series_batch = (0..10)
                            .map(|i| {
                                let id = format!("{thread}-{batch}-{i}");
                                series(&[("__name__", "m"), ("id", &id)], &[(1, 1.0)])
                            })
                            .collect();
                        let outcome = db.append_limited(series_batch, limits).unwrap();
                        created.fetch_add(outcome.series_created, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(created.load(Ordering::Relaxed), 100);
        assert_eq!(db.stats().active_series, 100);
    }

    fn refs<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<LabelRef<'a>> {
        pairs
            .iter()
            .map(|&(name, value)| LabelRef { name, value })
            .collect()
    }

    /// A batch of one series with one sample at `t`, carrying `found`.
    fn hinted<'a>(labels: &'a [LabelRef<'a>], t: i64, found: Option<StorageHint>) -> SeriesRef<'a> {
        SeriesRef {
            labels: LabelsRef::from_sorted(labels),
            samples: Cow::Owned(vec![Sample::new(t, t as f64)]),
            exemplars: Vec::new(),
            found,
        }
    }

    /// Only label sets exactly as stored are found (an unsorted copy, an
    /// empty value or an unknown set are not), `admits` sees bounds over
    /// every stored set, and a refusal looks nothing up.
    #[test]
    fn find_series_finds_label_sets_exactly_as_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let a: &[(&str, &str)] = &[("__name__", "up"), ("job", "a")];
        let b: &[(&str, &str)] = &[("__name__", "up"), ("instance", "host:9100"), ("job", "b")];
        db.append(vec![series(a, &[(1, 1.0)]), series(b, &[(1, 1.0)])])
            .unwrap();
        let sets = [
            refs(a),
            refs(&[("job", "a"), ("__name__", "up")]),
            refs(&[("__name__", "up"), ("job", "c")]),
            refs(&[("__name__", "up"), ("job", "a"), ("zone", "")]),
            refs(b),
        ];
        // `a`'s labels as protobuf `TimeSeries.labels` entries, as
        // Prometheus sends them, then with each `Label`'s fields swapped
        // (valid protobuf for the same labels, but not that encoding).
        let a_wire: &[u8] = b"\x0a\x0e\x0a\x08__name__\x12\x02up\x0a\x08\x0a\x03job\x12\x01a";
        let a_swapped: &[u8] = b"\x0a\x0e\x12\x02up\x0a\x08__name__\x0a\x08\x12\x01a\x0a\x03job";
        let empty: &[LabelRef] = &[];
        let mut queries: Vec<LabelsAsSent> = sets.iter().map(|s| LabelsAsSent::new(s)).collect();
        queries.push(LabelsAsSent {
            labels: empty,
            wire: Some(a_wire),
        });
        queries.push(LabelsAsSent {
            labels: &sets[0],
            wire: Some(a_swapped),
        });
        let mut seen = None;
        let found = db
            .find_series(queries.iter().copied(), |bounds| {
                seen = Some(*bounds);
                true
            })
            .unwrap();
        let hits: Vec<bool> = (0..queries.len()).map(|i| found.get(i).is_some()).collect();
        assert_eq!(hits, [true, false, false, false, true, true, false]);
        assert_eq!(found.get(99), None);
        assert_ne!(found.get(0), found.get(4));
        // The wire bytes found the series the labels found.
        assert_eq!(found.get(5), found.get(0));
        assert_eq!(
            seen,
            Some(LabelSetBounds {
                max_labels: 3,
                max_name_len: 8,
                max_value_len: 9,
                well_formed: true,
                legacy_names: true,
            })
        );
        assert!(db.find_series(queries.iter().copied(), |_| false).is_none());
    }

    /// A hint that holds takes the sample to its series; a hint from
    /// another store, or naming a series the slot no longer holds, is
    /// ignored and the series found by its labels (never the hint's).
    #[test]
    fn appends_follow_hints_that_hold_and_ignore_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let other = open(&tmp.path().join("other"));
        let a = refs(&[("__name__", "a")]);
        let b = refs(&[("__name__", "b")]);
        db.append_refs(
            vec![hinted(&a, 1, None), hinted(&b, 1, None)],
            SeriesLimits::default(),
        )
        .unwrap();
        other
            .append_refs(vec![hinted(&b, 1, None)], SeriesLimits::default())
            .unwrap();
        let find = |db: &Tsdb, labels: &[LabelRef]| {
            db.find_series(std::iter::once(LabelsAsSent::new(labels)), |_| true)
                .unwrap()
                .get(0)
                .unwrap()
        };
        let hint_a = find(&db, &a);
        let hint_b = find(&db, &b);
        // `other` holds b in the slot and under the ID where `db` holds a.
        let foreign = find(&other, &b);
        assert_eq!((foreign.id, foreign.slot), (hint_a.id, hint_a.slot));
        let stale = StorageHint {
            id: hint_b.id + 100,
            ..hint_b
        };
        let outcome = db
            .append_refs(
                vec![
                    hinted(&a, 2, Some(hint_a)),
                    hinted(&b, 2, Some(foreign)),
                    hinted(&b, 3, Some(stale)),
                ],
                SeriesLimits::default(),
            )
            .unwrap();
        assert_eq!((outcome.samples_accepted, outcome.series_created), (3, 0));
        let bits = |v: f64| v.to_bits();
        assert_eq!(
            all_samples(&db, &[]),
            vec![
                (
                    Labels::from_pairs(&[("__name__", "a")]),
                    vec![(1, bits(1.0)), (2, bits(2.0))]
                ),
                (
                    Labels::from_pairs(&[("__name__", "b")]),
                    vec![(1, bits(1.0)), (2, bits(2.0)), (3, bits(3.0))]
                ),
            ]
        );
    }

    #[test]
    fn samples_older_than_a_truncated_head_are_too_old() {
        let mut head = Head::new();
        head.truncate_before(1000);
        let store = ExemplarStore::new(0);
        let pairs = [LabelRef {
            name: "__name__",
            value: "a",
        }];
        let plan = plan_append(
            &head,
            &store,
            vec![SeriesRef {
                labels: LabelsRef::from_sorted(&pairs),
                samples: Cow::Owned(vec![Sample::new(999, 1.0), Sample::new(1000, 1.0)]),
                exemplars: Vec::new(),
                found: None,
            }],
            SeriesLimits::default(),
        );
        assert_eq!(plan.outcome.samples_accepted, 1);
        assert_eq!(
            plan.outcome.discarded,
            vec![(DiscardReason::SampleTooOld, 1)]
        );
        assert_eq!(plan.samples.len(), 1);
    }

    #[test]
    fn rejected_new_series_are_not_created() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let outcome = db.append(vec![series(&[("__name__", "a")], &[])]).unwrap();
        assert_eq!(outcome.series_created, 0);
        assert_eq!(db.stats().active_series, 0);

        // Exemplars alone create a series only when they are kept.
        let mut exemplar_only = series(&[("__name__", "b")], &[]);
        exemplar_only.exemplars = vec![Exemplar {
            labels: Labels::from_pairs(&[("trace_id", "t")]),
            value: 1.0,
            t: 1,
        }];
        let no_exemplars = TsdbOptions {
            max_exemplars: 0,
            ..TsdbOptions::default()
        };
        let disabled = Tsdb::open(&tmp.path().join("disabled"), no_exemplars).unwrap();
        let outcome = disabled.append(vec![exemplar_only.clone()]).unwrap();
        assert_eq!((outcome.series_created, outcome.exemplars_accepted), (0, 0));
        let outcome = db.append(vec![exemplar_only]).unwrap();
        assert_eq!((outcome.series_created, outcome.exemplars_accepted), (1, 1));
    }

    #[test]
    fn exemplars_and_metadata_survive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let mut with_exemplars = series(&[("__name__", "req")], &[(10, 1.0)]);
        let exemplar = |t: i64, trace: &str| Exemplar {
            labels: Labels::from_pairs(&[("trace_id", trace)]),
            value: 1.0,
            t,
        };
        with_exemplars.exemplars = vec![exemplar(10, "a"), exemplar(5, "old"), exemplar(12, "b")];
        let outcome = db.append(vec![with_exemplars]).unwrap();
        assert_eq!(outcome.exemplars_accepted, 2);
        let metadata = MetricMetadata {
            metric_family_name: "req".into(),
            metric_type: MetricType::Counter,
            help: "requests".into(),
            unit: "".into(),
        };
        db.set_metadata(vec![metadata.clone()]).unwrap();
        let written = db.stats().wal_bytes_written;
        db.set_metadata(vec![metadata.clone()]).unwrap();
        assert_eq!(
            db.stats().wal_bytes_written,
            written,
            "unchanged metadata is not rewritten"
        );
        drop(db);

        let db = open(tmp.path());
        assert_eq!(db.metadata(), vec![metadata]);
        let found = db.exemplars(&[Matcher::equal("__name__", "req")], TimeRange::new(0, 11));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Labels::from_pairs(&[("__name__", "req")]));
        assert_eq!(found[0].1, vec![exemplar(10, "a")]);
        assert!(db
            .exemplars(&[Matcher::equal("__name__", "x")], TimeRange::all())
            .is_empty());
    }

    #[test]
    fn head_cardinality_counts_selected_and_active_series() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        db.append(vec![
            series(
                &[("__name__", "a"), ("env", "prod"), ("pod", "1")],
                &[(1_000, 1.0)],
            ),
            series(
                &[("__name__", "a"), ("env", "prod"), ("pod", "2")],
                &[(5_000, 1.0)],
            ),
            series(&[("__name__", "a"), ("env", "dev")], &[(5_000, 1.0)]),
            series(&[("__name__", "b"), ("env", "dev")], &[(9_000, 1.0)]),
        ])
        .unwrap();
        let all = db.head_cardinality(&[], CountMethod::InMemory, None);
        assert_eq!(all.series, 4);
        assert_eq!(all.values["env"]["prod"], 2);
        assert_eq!(all.values["env"]["dev"], 2);
        assert_eq!(all.values["pod"].len(), 2);
        // The index's answer equals a walk over every series.
        assert_eq!(
            all,
            db.head_cardinality(&[], CountMethod::ActiveSince(i64::MIN), None)
        );
        let env: BTreeSet<String> = ["env".to_string()].into();
        assert_eq!(
            db.head_cardinality(&[], CountMethod::InMemory, Some(&env)),
            db.head_cardinality(&[], CountMethod::ActiveSince(i64::MIN), Some(&env))
        );
        let a = [Matcher::equal("__name__", "a")];
        let only: BTreeSet<String> = ["env".to_string()].into();
        let selected = db.head_cardinality(&a, CountMethod::InMemory, Some(&only));
        assert_eq!(selected.series, 3);
        assert_eq!(selected.values.keys().collect::<Vec<_>>(), vec!["env"]);
        assert_eq!(selected.values["env"]["dev"], 1);
        let active = db.head_cardinality(&a, CountMethod::ActiveSince(5_000), None);
        assert_eq!(active.series, 2);
        assert_eq!(db.head_series_count(CountMethod::ActiveSince(5_001)), 1);
        assert_eq!(db.head_series_count(CountMethod::InMemory), 4);
        let labels = db
            .head_series_labels(&a, CountMethod::ActiveSince(5_000), 10)
            .unwrap();
        assert_eq!(labels.len(), 2);
        assert!(labels.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(db.head_series_labels(&a, CountMethod::InMemory, 2), None);
        assert_eq!(db.head_chunks(), 4);

        let stats = db.stats();
        assert_eq!((stats.series_created, stats.samples_appended), (4, 4));
        assert!(stats.last_write_ms.is_some());
        db.tick_ingestion_rate();
        assert!((db.stats().ingestion_rate - 4.0 / 15.0).abs() < 1e-12);
        let disk = db.disk_usage();
        assert_eq!((disk.wal_segments, disk.blocks), (1, 0));
        assert!(disk.wal_bytes > 0);
        // After a restart the last write time comes from the WAL files.
        drop(db);
        let reopened = open(tmp.path());
        assert!(reopened.stats().last_write_ms.is_some());
        assert!(open(&tmp.path().join("empty"))
            .stats()
            .last_write_ms
            .is_none());
    }

    #[test]
    fn block_cuts_are_counted_timed_and_sized() {
        let tmp = tempfile::tempdir().unwrap();
        let db = open(tmp.path());
        let hour = 3_600_000;
        let samples: Vec<(i64, f64)> = (0..8).map(|i| (i * hour / 2, i as f64)).collect();
        db.append(vec![series(&[("__name__", "a")], &samples)])
            .unwrap();
        let written = db.cut_blocks(100 * hour).unwrap();
        assert_eq!(written.len(), 1);
        let stats = db.stats();
        assert_eq!((stats.block_cuts, stats.block_cut_failures), (1, 0));
        let (cuts, compactions) = db.maintenance_durations();
        assert_eq!((cuts.count, compactions.count), (1, 0));
        let disk = db.disk_usage();
        assert_eq!(disk.blocks, 1);
        assert!(disk.block_bytes > 0);
    }
}
