//! [`StoreCollector`]: storage figures read from the tenant databases at
//! scrape time: head, WAL, blocks, compaction, retention, disk usage per
//! tenant; maintenance durations summed over tenants into one histogram
//! each; and the filesystem that holds the data directory.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use cairn_tsdb::stats::HistogramSnapshot;
use cairn_tsdb::{TenantStore, TsdbStats};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::TenantLabels;

pub(super) struct StoreCollector {
    store: Arc<OnceLock<Arc<TenantStore>>>,
    data_dir: PathBuf,
}

impl StoreCollector {
    pub(super) fn new(store: Arc<OnceLock<Arc<TenantStore>>>, data_dir: PathBuf) -> StoreCollector {
        StoreCollector { store, data_dir }
    }
}

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCollector")
            .field("store_open", &self.store.get().is_some())
            .finish()
    }
}

/// What one tenant contributes to a scrape.
struct TenantRow {
    labels: TenantLabels,
    stats: TsdbStats,
    disk: cairn_tsdb::stats::DiskUsage,
    head_chunks: u64,
    wal_corruptions_repaired: u64,
}

type Counter = fn(&TenantRow) -> u64;
type Gauge = fn(&TenantRow) -> f64;

/// Per-tenant counters: name (without `_total`), help, value.
const COUNTERS: &[(&str, &str, Counter)] = &[
    (
        "cairn_wal_written_bytes",
        "Bytes written to the tenant's write-ahead log since start-up",
        |r| r.stats.wal_bytes_written,
    ),
    (
        "cairn_appended_samples",
        "Samples appended to the tenant's database since start-up",
        |r| r.stats.samples_appended,
    ),
    (
        "cairn_appended_out_of_order_samples",
        "Of the samples appended since start-up, those stored out of order (inside the tenant's out_of_order_time_window)",
        |r| r.stats.ooo_samples_appended,
    ),
    (
        "cairn_created_series",
        "Series created in the tenant's head by appends since start-up",
        |r| r.stats.series_created,
    ),
    (
        "cairn_wal_write_failures",
        "Appends refused because writing the tenant's WAL failed",
        |r| r.stats.wal_write_failures,
    ),
    (
        "cairn_wal_fsyncs",
        "fsync calls on the tenant's WAL segments",
        |r| r.stats.wal_fsyncs,
    ),
    (
        "cairn_wal_fsync_failures",
        "fsync calls on the tenant's WAL segments that failed",
        |r| r.stats.wal_fsync_failures,
    ),
    (
        "cairn_wal_segments_created",
        "WAL segment files the tenant's database created since start-up",
        |r| r.stats.wal_segments_created,
    ),
    (
        "cairn_wal_corruptions_repaired",
        "WAL corruptions found and cut at the tenant's last start-up (0 or 1)",
        |r| r.wal_corruptions_repaired,
    ),
    (
        "cairn_block_cuts",
        "Blocks written from the tenant's head",
        |r| r.stats.block_cuts,
    ),
    (
        "cairn_block_cut_failures",
        "Attempts to write a block from the tenant's head that failed",
        |r| r.stats.block_cut_failures,
    ),
    (
        "cairn_compactions",
        "Blocks written by compacting the tenant's blocks",
        |r| r.stats.compactions,
    ),
    (
        "cairn_compaction_failures",
        "Compactions of the tenant's blocks that failed",
        |r| r.stats.compaction_failures,
    ),
    (
        "cairn_retention_deleted_blocks",
        "Blocks of the tenant deleted by retention",
        |r| r.stats.retention_blocks_deleted,
    ),
];

/// Per-tenant gauges: name, help, value.
const GAUGES: &[(&str, &str, Gauge)] = &[
    (
        "cairn_active_series",
        "Series in the tenant's in-memory head",
        |r| r.stats.active_series as f64,
    ),
    (
        "cairn_head_chunks",
        "Chunks (closed and open) in the tenant's in-memory head",
        |r| r.head_chunks as f64,
    ),
    (
        "cairn_wal_segments",
        "WAL segment files of the tenant on disk",
        |r| r.disk.wal_segments as f64,
    ),
    (
        "cairn_wal_size_bytes",
        "Bytes of the tenant's WAL on disk (segments and checkpoints)",
        |r| r.disk.wal_bytes as f64,
    ),
    ("cairn_blocks", "Blocks of the tenant on disk", |r| {
        r.disk.blocks as f64
    }),
    (
        "cairn_blocks_size_bytes",
        "Bytes of the tenant's blocks on disk",
        |r| r.disk.block_bytes as f64,
    ),
    (
        "cairn_ingestion_rate_samples_per_second",
        "Samples per second the tenant's database accepted, exponentially smoothed every 15s (Mimir's user_stats ingestionRate)",
        |r| r.stats.ingestion_rate,
    ),
];

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_filesystem(&mut encoder, &self.data_dir)?;
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        let tenants = store.tenants();
        let mut cut_durations = HistogramSnapshot::default();
        let mut compaction_durations = HistogramSnapshot::default();
        let mut rows = Vec::with_capacity(tenants.len());
        for (id, db) in &tenants {
            let (cuts, compactions) = db.maintenance_durations();
            cut_durations.merge(&cuts);
            compaction_durations.merge(&compactions);
            rows.push(TenantRow {
                labels: TenantLabels {
                    tenant: id.to_string(),
                },
                stats: db.stats(),
                disk: db.disk_usage(),
                head_chunks: db.head_chunks(),
                wal_corruptions_repaired: u64::from(db.wal_replay_report().corruption.is_some()),
            });
        }

        for (name, help, value) in COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for row in &rows {
                ConstCounter::new(value(row)).encode(family.encode_family(&row.labels)?)?;
            }
        }
        for (name, help, value) in GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for row in &rows {
                ConstGauge::new(value(row)).encode(family.encode_family(&row.labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "cairn_last_write_timestamp_seconds",
            "When the tenant last stored data (after a restart: its newest WAL file's modification time)",
            None,
            MetricType::Gauge,
        )?;
        for row in &rows {
            if let Some(ms) = row.stats.last_write_ms {
                ConstGauge::new(ms as f64 / 1000.0).encode(family.encode_family(&row.labels)?)?;
            }
        }

        encode_histogram(
            &mut encoder,
            "cairn_block_cut_duration_seconds",
            "Time spent writing one block from a tenant's head, all tenants",
            &cut_durations,
        )?;
        encode_histogram(
            &mut encoder,
            "cairn_compaction_duration_seconds",
            "Time spent writing one compacted block, all tenants",
            &compaction_durations,
        )?;
        let tenant_count = ConstGauge::new(rows.len() as i64);
        tenant_count.encode(encoder.encode_descriptor(
            "cairn_tenants",
            "Tenants with a database open on this node",
            None,
            tenant_count.metric_type(),
        )?)?;
        Ok(())
    }
}

fn encode_histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    snapshot: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    metric.encode_histogram::<NoLabelSet>(
        snapshot.sum_seconds,
        snapshot.count,
        &snapshot.buckets,
        None,
    )
}

/// Size and free space of the filesystem holding the data directory (what a
/// "disk nearly full" alert needs), when it can be measured.
fn encode_filesystem(
    encoder: &mut DescriptorEncoder,
    data_dir: &std::path::Path,
) -> Result<(), std::fmt::Error> {
    let Ok(fs) = rustix::fs::statvfs(data_dir) else {
        return Ok(());
    };
    let size = ConstGauge::new(fs.f_blocks.saturating_mul(fs.f_frsize) as f64);
    size.encode(encoder.encode_descriptor(
        "cairn_storage_filesystem_size_bytes",
        "Size of the filesystem holding the data directory",
        None,
        MetricType::Gauge,
    )?)?;
    let available = ConstGauge::new(fs.f_bavail.saturating_mul(fs.f_frsize) as f64);
    available.encode(encoder.encode_descriptor(
        "cairn_storage_filesystem_available_bytes",
        "Bytes available to Cairn on the filesystem holding the data directory",
        None,
        MetricType::Gauge,
    )?)
}
