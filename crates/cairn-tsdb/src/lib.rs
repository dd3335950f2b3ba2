//! One tenant's time-series database, and the registry of all tenants' databases.
//!
//! API contract (the server and the PromQL conformance runner build on it):
//! - [`Tsdb::open`] opens (creating if needed) one tenant's directory and
//!   replays its WAL; a torn or corrupt WAL tail is truncated with a warning.
//! - [`Tsdb::append`] validates order per series, writes accepted samples to
//!   the WAL (to the OS; fsynced when [`FsyncPolicy::Always`]) and only then
//!   makes them visible in the head. It returns once the data is durable.
//! - [`Tsdb`] implements [`cairn_model::Queryable`].
//! - [`TenantStore`] maps [`TenantId`]s to open [`Tsdb`]s under `<data>/tenants/<tenant>/`.

use std::path::Path;
use std::sync::Arc;

use cairn_model::{
    DiscardReason, Exemplar, Labels, Matcher, MetricMetadata, Queryable, Series, SeriesSamples,
    StorageError, TenantId, TimeRange,
};

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
}

impl Default for TsdbOptions {
    fn default() -> Self {
        TsdbOptions {
            fsync: FsyncPolicy::Never,
            wal_segment_size: 128 << 20,
            max_exemplars: 100_000,
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
}

/// One sample that storage refused, for the client's error message.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub reason: DiscardReason,
    pub labels: Labels,
    pub t: i64,
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
}

/// Point-in-time figures for self-monitoring.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TsdbStats {
    pub active_series: u64,
    pub wal_bytes_written: u64,
    pub samples_appended: u64,
}

/// One tenant's database.
pub struct Tsdb {}

impl Tsdb {
    pub fn open(_dir: &Path, _opts: TsdbOptions) -> Result<Tsdb, TsdbError> {
        todo!()
    }

    pub fn append(&self, _batch: Vec<SeriesSamples>) -> Result<AppendOutcome, TsdbError> {
        todo!()
    }

    /// Keeps metadata per metric family name (latest wins); persisted in the WAL.
    pub fn set_metadata(&self, _metadata: Vec<MetricMetadata>) -> Result<(), TsdbError> {
        todo!()
    }

    /// All metadata, sorted by metric family name.
    pub fn metadata(&self) -> Vec<MetricMetadata> {
        todo!()
    }

    /// Exemplars of matching series inside `range`, grouped by series, sorted by labels.
    pub fn exemplars(
        &self,
        _matchers: &[Matcher],
        _range: TimeRange,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        todo!()
    }

    pub fn stats(&self) -> TsdbStats {
        todo!()
    }

    /// Flushes and fsyncs the WAL; called on clean shutdown.
    pub fn close(&self) -> Result<(), TsdbError> {
        todo!()
    }
}

impl Queryable for Tsdb {
    fn select(
        &self,
        _matchers: &[Matcher],
        _range: TimeRange,
    ) -> Result<Vec<Series>, StorageError> {
        todo!()
    }

    fn label_names(
        &self,
        _matchers: &[Matcher],
        _range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        todo!()
    }

    fn label_values(
        &self,
        _name: &str,
        _matchers: &[Matcher],
        _range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        todo!()
    }
}

/// All tenants' databases under `<data>/tenants/`.
pub struct TenantStore {}

impl TenantStore {
    /// Opens every existing tenant directory (replaying each WAL).
    pub fn open(_data_dir: &Path, _opts: TsdbOptions) -> Result<TenantStore, TsdbError> {
        todo!()
    }

    pub fn get(&self, _tenant: &TenantId) -> Option<Arc<Tsdb>> {
        todo!()
    }

    pub fn get_or_create(&self, _tenant: &TenantId) -> Result<Arc<Tsdb>, TsdbError> {
        todo!()
    }

    /// Every open tenant, sorted by ID.
    pub fn tenants(&self) -> Vec<(TenantId, Arc<Tsdb>)> {
        todo!()
    }

    /// Closes every tenant's database (flushing WALs).
    pub fn close_all(&self) -> Result<(), TsdbError> {
        todo!()
    }
}
