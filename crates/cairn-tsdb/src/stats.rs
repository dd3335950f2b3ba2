//! Self-monitoring figures of one tenant's database: counters and duration
//! histograms kept as atomics on the hot paths and read at scrape time (the
//! server's `/metrics` collector), the tenant's ingestion rate, and the
//! head's cardinality for Mimir's cardinality API.
//!
//! Nothing here takes the tenant's write lock; readers see each counter's
//! latest value (counters are independent, not one consistent snapshot).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds (seconds) of the maintenance duration histograms: block
/// cuts and compactions take milliseconds for small tenants and minutes for
/// large ones.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A fixed-bucket histogram of durations, lock-free.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl DurationHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len() + 1);
        for (slot, bound) in DURATION_BUCKETS
            .iter()
            .chain([f64::INFINITY].iter())
            .enumerate()
        {
            cumulative += self.buckets[slot].load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        HistogramSnapshot {
            // The count is the `+Inf` bucket, so the two always agree.
            count: cumulative,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            buckets,
        }
    }
}

/// A histogram's state: cumulative `(upper bound, count)` pairs ending with
/// `+Inf`, the observation count and their sum in seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        DurationHistogram::default().snapshot()
    }
}

impl HistogramSnapshot {
    /// Adds `other` (same buckets) into `self`: several tenants' histograms
    /// become one store-wide histogram.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        debug_assert_eq!(self.buckets.len(), other.buckets.len());
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            mine.1 += theirs.1;
        }
        self.count += other.count;
        self.sum_seconds += other.sum_seconds;
    }
}

/// How often [`EwmaRate::tick`] must be called: Mimir's
/// `-ingester.rate-update-period` default.
pub const RATE_UPDATE_PERIOD: Duration = Duration::from_secs(15);

/// Mimir's ingestion rate (`pkg/util/math/rate.go` `EwmaRate`, alpha 0.2,
/// ticked every 15 s by the ingester): events counted between ticks become
/// an instant per-second rate, smoothed exponentially. The first tick sets
/// the rate to the instant rate.
#[derive(Debug)]
pub struct EwmaRate {
    new_events: AtomicU64,
    alpha: f64,
    interval: Duration,
    /// `(rate, initialised)`.
    state: Mutex<(f64, bool)>,
}

impl EwmaRate {
    pub fn new(alpha: f64, interval: Duration) -> EwmaRate {
        EwmaRate {
            new_events: AtomicU64::new(0),
            alpha,
            interval,
            state: Mutex::new((0.0, false)),
        }
    }

    pub fn add(&self, events: u64) {
        self.new_events.fetch_add(events, Ordering::Relaxed);
    }

    /// Call every `interval`.
    pub fn tick(&self) {
        let events = self.new_events.swap(0, Ordering::Relaxed);
        let instant = events as f64 / self.interval.as_secs_f64();
        let mut state = self.state.lock();
        if state.1 {
            state.0 += self.alpha * (instant - state.0);
        } else {
            *state = (instant, true);
        }
    }

    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.state.lock().0
    }
}

/// Counters of one database, updated where the work happens.
#[derive(Debug)]
pub(crate) struct Counters {
    pub wal_bytes_written: AtomicU64,
    pub samples_appended: AtomicU64,
    /// Of `samples_appended`, those stored out of order.
    pub ooo_samples_appended: AtomicU64,
    pub series_created: AtomicU64,
    pub wal_write_failures: AtomicU64,
    pub block_cuts: AtomicU64,
    pub block_cut_failures: AtomicU64,
    pub block_cut_duration: DurationHistogram,
    pub compactions: AtomicU64,
    pub compaction_failures: AtomicU64,
    pub compaction_duration: DurationHistogram,
    pub retention_blocks_deleted: AtomicU64,
    /// Wall-clock milliseconds of the last successful append (0: none yet).
    pub last_append_ms: AtomicI64,
    pub ingestion_rate: EwmaRate,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            wal_bytes_written: AtomicU64::new(0),
            samples_appended: AtomicU64::new(0),
            ooo_samples_appended: AtomicU64::new(0),
            series_created: AtomicU64::new(0),
            wal_write_failures: AtomicU64::new(0),
            block_cuts: AtomicU64::new(0),
            block_cut_failures: AtomicU64::new(0),
            block_cut_duration: DurationHistogram::default(),
            compactions: AtomicU64::new(0),
            compaction_failures: AtomicU64::new(0),
            compaction_duration: DurationHistogram::default(),
            retention_blocks_deleted: AtomicU64::new(0),
            last_append_ms: AtomicI64::new(0),
            ingestion_rate: EwmaRate::new(0.2, RATE_UPDATE_PERIOD),
        }
    }
}

/// Counters the WAL writer updates (shared with [`crate::Tsdb`] so they are
/// read without the write lock).
#[derive(Debug, Default)]
pub struct WalCounters {
    /// fsync calls on segment files (per write under `FsyncPolicy::Always`,
    /// per finished segment otherwise).
    pub fsyncs: AtomicU64,
    pub fsync_failures: AtomicU64,
    pub segments_created: AtomicU64,
    /// Set while the writer refuses writes after a write it could not undo.
    pub broken: AtomicBool,
}

/// Bytes and files a database holds on disk, measured when asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// WAL segments and checkpoints.
    pub wal_bytes: u64,
    /// WAL segment files (checkpoints not counted).
    pub wal_segments: u64,
    /// Sum of the blocks' file sizes.
    pub block_bytes: u64,
    pub blocks: u64,
}

impl DiskUsage {
    pub fn total_bytes(&self) -> u64 {
        self.wal_bytes + self.block_bytes
    }
}

/// Which series the cardinality figures count (Mimir's `count_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountMethod {
    /// Every series in the head.
    InMemory,
    /// Series in the head whose newest sample is at or after this time (ms).
    ActiveSince(i64),
}

/// Per label name, the distinct values and the series count of each, over
/// the series a cardinality request selected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cardinality {
    /// Series selected.
    pub series: u64,
    /// name → value → series carrying that pair.
    pub values: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Cardinality {
    /// Counts `pairs` of one series; only names in `only` when given.
    pub(crate) fn add_series<'a>(
        &mut self,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
        only: Option<&BTreeSet<String>>,
    ) {
        self.series += 1;
        for (name, value) in pairs {
            if only.is_some_and(|wanted| !wanted.contains(name)) {
                continue;
            }
            let values = match self.values.get_mut(name) {
                Some(values) => values,
                None => self.values.entry(name.to_string()).or_default(),
            };
            match values.get_mut(value) {
                Some(count) => *count += 1,
                None => {
                    values.insert(value.to_string(), 1);
                }
            }
        }
    }
}

/// Bytes of the regular files under `dir`, recursively; entries that vanish
/// or cannot be read while walking count as zero (a block being deleted, a
/// segment being checkpointed away).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            total += dir_size(&entry.path());
        } else if file_type.is_file() {
            total += entry.metadata().map_or(0, |m| m.len());
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_the_count() {
        let h = DurationHistogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(1000));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.001, 0));
        assert_eq!(s.buckets[1], (0.005, 2));
        assert_eq!(s.buckets[DURATION_BUCKETS.len() - 1].1, 2);
        assert_eq!(*s.buckets.last().unwrap(), (f64::INFINITY, 3));
        assert!((s.sum_seconds - 1000.006).abs() < 1e-9);
        let mut merged = s.clone();
        merged.merge(&s);
        assert_eq!(merged.count, 6);
        assert_eq!(merged.buckets[1].1, 4);
    }

    /// Mimir's `EwmaRate`: the first tick takes the instant rate, later ticks
    /// move 20 % of the way towards it.
    #[test]
    fn ewma_rate_follows_mimir() {
        let rate = EwmaRate::new(0.2, Duration::from_secs(15));
        assert_eq!(rate.rate(), 0.0);
        rate.add(150);
        rate.tick();
        assert_eq!(rate.rate(), 10.0);
        rate.add(300);
        rate.tick();
        assert!((rate.rate() - 12.0).abs() < 1e-12);
        rate.tick();
        assert!((rate.rate() - 9.6).abs() < 1e-12);
    }
}
