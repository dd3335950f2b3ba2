//! One tenant's time-series database, and the registry of all tenants' databases.
//!
//! API contract (the server and the PromQL conformance runner build on it):
//! - [`Tsdb::open`] opens (creating if needed) one tenant's directory and
//!   replays its WAL; a torn or corrupt WAL tail is truncated with a warning.
//! - [`Tsdb::append`] validates order per series, writes accepted samples to
//!   the WAL (to the OS; fsynced when [`FsyncPolicy::Always`]) and only then
//!   makes them visible in the head. It returns once the data is durable.
//! - [`Tsdb`] implements [`cairn_model::Queryable`].
//! - [`TenantStore`] maps [`cairn_model::TenantId`]s to open [`Tsdb`]s under
//!   `<data>/tenants/<tenant>/`.
//!
//! The guarantee, in one sentence: when `append` returns `Ok`, its accepted
//! samples survive a process crash (`kill -9`); they survive a power loss
//! too under [`FsyncPolicy::Always`].
//!
//! Brief overview of the modules:
//! - [`chunk`]: Gorilla-style XOR chunks (delta-of-delta timestamps, XOR
//!   floats); closed chunks are immutable `Arc<[u8]>` with their time range.
//! - [`head`]: series in memory (packed labels, closed chunks, one open
//!   chunk, out-of-order samples within the tenant's window: [`head::ooo`]),
//!   the label hash map and the inverted index (postings).
//! - [`wal`]: segment files of checksummed records; replay and repair.
//! - `exemplars`: the per-tenant exemplar ring buffer.
//! - `db`: [`Tsdb`], tying the head, WAL, exemplars and metadata together,
//!   and its locking: one write lock per tenant held across plan, WAL write
//!   and apply; readers copy under a short read lock and decode after it.
//! - [`block`]: immutable blocks on disk (`meta.json`, `index`,
//!   `chunks/`), written to a temporary directory and renamed into place.
//! - `compact`: the maintenance work on a [`Tsdb`]: cutting the head's
//!   oldest range into a block and checkpointing the WAL
//!   ([`Tsdb::cut_blocks`]), merging blocks ([`Tsdb::compact`]) and
//!   retention ([`Tsdb::apply_retention`]); [`TenantStore`] runs it every
//!   `maintenance_interval` on a background thread.
//! - `tombstones`, `series_deletion`: deleting series
//!   ([`Tsdb::delete_series`]): tombstones hide samples at once, block
//!   rewrites and checkpoints remove their bytes.
//! - `tenant_deletion`: deleting a whole tenant after a grace period
//!   ([`TenantStore::mark_tenant_for_deletion`]).
//! - `tenants`: [`TenantStore`].
//! - [`stats`]: counters, duration histograms and the ingestion rate read
//!   by self-monitoring, disk usage, and head cardinality.
//! - [`backfill`]: imported blocks (`cairn import`) written with bounded
//!   memory, and [`Tsdb::load_new_blocks`], which picks them up while
//!   the database runs.
//! - [`bucket`]: the object-store seam ([`bucket::Bucket`]): blocks
//!   uploaded, listed, downloaded and deleted through `object_store`.
//! - `shipper`: keeps each tenant's bucket a copy of its local blocks
//!   ([`Tsdb::sync_bucket`]) and downloads the bucket's blocks at open.
//!
//! Byte formats are in `docs/format.md`.

pub mod backfill;
pub mod block;
pub mod bucket;
pub mod chunk;
mod compact;
mod db;
mod dir_lock;
mod exemplars;
mod fault;
pub mod head;
mod idhash;
mod querier;
mod series_deletion;
mod shipper;
pub mod stats;
mod tenant_deletion;
mod tenants;
pub mod tombstones;
pub mod wal;

use cairn_model::{DiscardReason, Labels};

pub use db::{FoundSeries, Tsdb};
pub use head::LabelsAsSent;
pub use series_deletion::DeleteStats;
pub use shipper::{SyncReport, SHIPPER_FILE};
pub use tenant_deletion::TenantDeletionStatus;
pub use tenants::TenantStore;

/// When the WAL is fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Written to the OS before the append returns; survives a process crash,
    /// not necessarily a power loss. Segments are fsynced when they are closed.
    #[default]
    Never,
    /// fsync before every append returns; survives power loss.
    Always,
}

#[derive(Clone, Debug)]
pub struct TsdbOptions {
    pub fsync: FsyncPolicy,
    /// WAL segment size in bytes (default 128 MiB, as Prometheus).
    pub wal_segment_size: u64,
    /// Exemplars kept in memory per tenant (a ring buffer, as Prometheus's).
    pub max_exemplars: usize,
    /// The head hands each complete range of this length to a block (default
    /// 2h). Rounded up to a multiple of 2h (the head's chunk range).
    pub block_range_ms: i64,
    /// Block lengths compaction builds, each a multiple of the previous one
    /// (default 2h, 12h, 24h). The first should equal `block_range_ms`.
    pub compaction_ranges_ms: Vec<i64>,
    /// Blocks that ended longer ago than this are deleted whole; zero keeps
    /// everything forever (the default). A tenant's own value can be set at
    /// run time with [`Tsdb::set_retention`].
    pub retention: std::time::Duration,
    /// How often [`TenantStore`]'s background thread cuts blocks, compacts
    /// and applies retention (default one minute; zero: no thread, call
    /// [`Tsdb::maintain`] yourself).
    pub maintenance_interval: std::time::Duration,
    /// How long after [`TenantStore::mark_tenant_for_deletion`] the
    /// maintenance thread deletes the tenant's data (default 12h, Mimir's
    /// `-compactor.deletion-delay`).
    pub tenant_deletion_delay: std::time::Duration,
    /// Where [`TenantStore`] ships blocks; `None`: local disk only (the
    /// library's default; the server's is a local folder).
    pub bucket: Option<bucket::BucketBackend>,
}

/// Two hours, Prometheus's block range.
pub const DEFAULT_BLOCK_RANGE_MS: i64 = 2 * 60 * 60 * 1000;

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            fsync: FsyncPolicy::Never,
            wal_segment_size: 128 << 20,
            max_exemplars: 100_000,
            block_range_ms: DEFAULT_BLOCK_RANGE_MS,
            compaction_ranges_ms: vec![
                DEFAULT_BLOCK_RANGE_MS,
                6 * DEFAULT_BLOCK_RANGE_MS,
                12 * DEFAULT_BLOCK_RANGE_MS,
            ],
            retention: std::time::Duration::ZERO,
            maintenance_interval: std::time::Duration::from_secs(60),
            tenant_deletion_delay: std::time::Duration::from_secs(12 * 60 * 60),
            bucket: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    #[error("i/o error on {path}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("wal corruption in segment {segment} at offset {offset}: {reason}")]
    Corruption {
        segment: u64,
        offset: u64,
        reason: String,
    },
    #[error(transparent)]
    Bucket(Box<bucket::BucketError>),
    #[error("{path} is locked by another process ({holder} is using this directory)")]
    Locked {
        path: std::path::PathBuf,
        holder: &'static str,
    },
}

/// One sample that storage refused, for the client's error message.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub reason: DiscardReason,
    pub labels: Labels,
    pub t: i64,
}

/// A tenant's limits checked under its write lock: on creating series (when
/// an append would create a new series; existing series keep accepting
/// samples), and its out-of-order window. 0 means no limit / no window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Most series in the head (Mimir `max_global_series_per_user`).
    pub max_series: u64,
    /// Most head series per metric name (Mimir `max_global_series_per_metric`).
    pub max_series_per_metric: u64,
    /// How far (ms) behind the head's newest sample an out-of-order sample
    /// is still accepted (Mimir `out_of_order_time_window`; see
    /// [`head::ooo`]). 0: out-of-order samples are refused.
    pub out_of_order_window_ms: i64,
}

/// What an append kept and what it refused.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendOutcome {
    pub samples_accepted: u64,
    pub exemplars_accepted: u64,
    pub series_created: u64,
    /// Discarded sample counts per reason (only reasons with a count > 0).
    pub discarded: Vec<(DiscardReason, u64)>,
    /// The first refused sample, if any.
    pub first_rejection: Option<Rejection>,
    /// Discarded samples as (index of the series in the batch, reason,
    /// count), for per-series accounting (usage cost attribution).
    pub discarded_by_series: Vec<(usize, DiscardReason, u64)>,
}

/// Point-in-time figures for self-monitoring and tenant statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TsdbStats {
    /// Series in the head (every series with data since open or replay).
    pub active_series: u64,
    /// WAL bytes written by this process since open (replayed bytes not counted).
    pub wal_bytes_written: u64,
    /// Samples stored by appends since open (exact duplicates, accepted
    /// without being stored, and replayed samples are not counted).
    pub samples_appended: u64,
    /// Of `samples_appended`, those stored out of order (inside the
    /// tenant's out-of-order window).
    pub ooo_samples_appended: u64,
    /// Series created by appends since open.
    pub series_created: u64,
    /// Appends refused because the WAL write failed.
    pub wal_write_failures: u64,
    pub wal_fsyncs: u64,
    pub wal_fsync_failures: u64,
    pub wal_segments_created: u64,
    /// Blocks written from the head, and cut passes that failed.
    pub block_cuts: u64,
    pub block_cut_failures: u64,
    /// Blocks written by compaction, and compaction passes that failed.
    pub compactions: u64,
    pub compaction_failures: u64,
    pub retention_blocks_deleted: u64,
    /// Wall-clock time (ms) of the last append that stored data; before any
    /// since open, the modification time of the newest WAL file; `None` if
    /// the tenant never wrote.
    pub last_write_ms: Option<i64>,
    /// Samples per second accepted, Mimir's EWMA (see [`stats::EwmaRate`]).
    pub ingestion_rate: f64,
}
