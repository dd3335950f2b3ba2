//! [`TenantStore`]: every tenant's [`Tsdb`] under `<data>/tenants/<tenant>/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use cairn_model::TenantId;

use crate::bucket::{Bucket, OperationStats};
use crate::shipper::Shipper;
use crate::tenant_deletion::TenantSweeper;
use crate::{Tsdb, TsdbError, TsdbOptions};

/// All tenants' databases under `<data>/tenants/`.
///
/// Lookups take a read lock on the map only; opening a new tenant (which may
/// replay a WAL) happens under a separate creation lock, so appends to
/// existing tenants never wait for it.
///
/// A background thread runs [`Tsdb::maintain`] on every tenant each
/// `maintenance_interval` (cutting blocks, compacting, retention); it stops
/// when the store is dropped.
///
/// With a bucket configured, every tenant found in the bucket is opened
/// too, after its blocks missing on disk are downloaded (see `shipper`).
pub struct TenantStore {
    pub(crate) tenants_dir: PathBuf,
    pub(crate) opts: TsdbOptions,
    pub(crate) bucket: Option<Arc<Bucket>>,
    pub(crate) tenants: Arc<RwLock<HashMap<TenantId, Arc<Tsdb>>>>,
    /// Serializes opening (and deleting) tenants, so one directory is never
    /// opened twice (shared with the maintenance thread, which deletes
    /// tenants and opens tenants that `cairn import` created).
    pub(crate) creating: Arc<Mutex<()>>,
    maintenance: Option<Maintenance>,
    /// Declared last: released only after the maintenance thread stopped.
    _lock: crate::dir_lock::DirLock,
}

/// The maintenance thread and its stop signal.
struct Maintenance {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for TenantStore {
    fn drop(&mut self) {
        if let Some(mut maintenance) = self.maintenance.take() {
            *maintenance.stop.0.lock() = true;
            maintenance.stop.1.notify_all();
            if let Some(thread) = maintenance.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Opens tenant directories that appeared under `tenants_dir` since the
/// store opened (a `cairn import` into a new tenant).
fn discover_tenants(sweeper: &TenantSweeper, opts: &TsdbOptions) {
    let TenantSweeper {
        tenants_dir,
        tenants,
        creating,
        bucket,
        ..
    } = sweeper;
    let Ok(entries) = std::fs::read_dir(tenants_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(Ok(tenant)) = entry.file_name().to_str().map(TenantId::new_internal) else {
            continue;
        };
        if tenants.read().contains_key(&tenant) || !entry.path().join("blocks").is_dir() {
            continue;
        }
        let _creating = creating.lock();
        if tenants.read().contains_key(&tenant) {
            continue;
        }
        match open_tenant(tenants_dir, &tenant, opts, bucket.as_ref()) {
            Ok(tsdb) => {
                tracing::info!(tenant = %tenant, blocks = tsdb.blocks().len(), "new tenant directory picked up");
                tenants.write().insert(tenant, Arc::new(tsdb));
            }
            Err(error) => {
                tracing::error!(tenant = %tenant, %error, "cannot open a new tenant directory; retrying next pass");
            }
        }
    }
}

fn spawn_maintenance(
    tenants: Arc<RwLock<HashMap<TenantId, Arc<Tsdb>>>>,
    interval: std::time::Duration,
    sweeper: TenantSweeper,
    opts: TsdbOptions,
) -> Option<Maintenance> {
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let signal = stop.clone();
    let spawned = std::thread::Builder::new()
        .name("cairn-tsdb-maintenance".to_string())
        .spawn(move || loop {
            {
                let mut stopped = signal.0.lock();
                if !*stopped {
                    signal.1.wait_for(&mut stopped, interval);
                }
                if *stopped {
                    return;
                }
            }
            sweeper.run(now_ms());
            discover_tenants(&sweeper, &opts);
            let all: Vec<(TenantId, Arc<Tsdb>)> = tenants
                .read()
                .iter()
                .map(|(id, tsdb)| (id.clone(), tsdb.clone()))
                .collect();
            for (tenant, tsdb) in all {
                if *signal.0.lock() {
                    return;
                }
                if let Err(error) = tsdb.maintain(now_ms()) {
                    tracing::error!(tenant = %tenant, %error, "tsdb maintenance failed; retrying next round");
                }
            }
        });
    match spawned {
        Ok(thread) => Some(Maintenance {
            stop,
            thread: Some(thread),
        }),
        Err(error) => {
            tracing::error!(%error, "cannot start the tsdb maintenance thread");
            None
        }
    }
}

impl TenantStore {
    /// Opens every existing tenant directory (replaying each WAL, several
    /// tenants at a time). Directory names that are not valid tenant IDs are
    /// skipped with a warning. A corrupt WAL is repaired, never fatal; an
    /// I/O error opening any tenant fails the whole open, so that a server
    /// never runs while hiding a tenant's data.
    pub fn open(data_dir: &Path, opts: TsdbOptions) -> Result<TenantStore, TsdbError> {
        let tenants_dir = data_dir.join("tenants");
        let io_error = |source| TsdbError::Io {
            path: tenants_dir.clone(),
            source,
        };
        let lock = crate::dir_lock::DirLock::acquire(data_dir, "another cairn serve")?;
        std::fs::create_dir_all(&tenants_dir).map_err(io_error)?;
        crate::tenant_deletion::remove_leftovers(data_dir)?;
        let mut found: Vec<TenantId> = Vec::new();
        for entry in std::fs::read_dir(&tenants_dir).map_err(io_error)? {
            let entry = entry.map_err(io_error)?;
            if !entry.file_type().map_err(io_error)?.is_dir() {
                continue;
            }
            let name = entry.file_name();
            match name.to_str().map(TenantId::new_internal) {
                Some(Ok(tenant)) => found.push(tenant),
                Some(Err(error)) => {
                    tracing::warn!(dir = ?name, %error, "skipping tenant directory with an invalid name");
                }
                None => {
                    tracing::warn!(dir = ?name, "skipping tenant directory with a non-utf-8 name");
                }
            }
        }
        let bucket = match &opts.bucket {
            Some(backend) => Some(Arc::new(Bucket::new(backend)?)),
            None => None,
        };
        if let Some(bucket) = &bucket {
            for name in bucket.list_tenants()? {
                match TenantId::new_internal(&name) {
                    Ok(tenant) if !found.contains(&tenant) => found.push(tenant),
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(prefix = %name, %error, "skipping a bucket prefix that is not a tenant ID");
                    }
                }
            }
        }
        let tenants = Arc::new(RwLock::new(open_all(
            &tenants_dir,
            found,
            &opts,
            bucket.as_ref(),
        )?));
        let mut store = TenantStore {
            tenants_dir,
            opts,
            bucket,
            tenants,
            creating: Arc::new(Mutex::new(())),
            maintenance: None,
            _lock: lock,
        };
        if !store.opts.maintenance_interval.is_zero() {
            store.maintenance = spawn_maintenance(
                store.tenants.clone(),
                store.opts.maintenance_interval,
                store.sweeper(),
                store.opts.clone(),
            );
        }
        Ok(store)
    }

    pub fn get(&self, tenant: &TenantId) -> Option<Arc<Tsdb>> {
        self.tenants.read().get(tenant).cloned()
    }

    /// The tenant's database, created (directory and all) on first use.
    pub fn get_or_create(&self, tenant: &TenantId) -> Result<Arc<Tsdb>, TsdbError> {
        if let Some(tsdb) = self.get(tenant) {
            return Ok(tsdb);
        }
        let _creating = self.creating.lock();
        if let Some(tsdb) = self.get(tenant) {
            return Ok(tsdb);
        }
        // Only a validated TenantId becomes a path component. With a
        // bucket, the tenant's blocks there (another node's) are listed
        // first: creation fails while the bucket is unreachable, and the
        // client retries, rather than hiding data.
        let tsdb = Arc::new(open_tenant(
            &self.tenants_dir,
            tenant,
            &self.opts,
            self.bucket.as_ref(),
        )?);
        self.tenants.write().insert(tenant.clone(), tsdb.clone());
        tracing::info!(tenant = %tenant, "tenant database created");
        Ok(tsdb)
    }

    /// Object-store request figures since start-up; `None` without a bucket.
    pub fn bucket_stats(&self) -> Option<Vec<OperationStats>> {
        self.bucket.as_ref().map(|b| b.metrics().stats())
    }

    /// Every open tenant, sorted by ID.
    pub fn tenants(&self) -> Vec<(TenantId, Arc<Tsdb>)> {
        let mut all: Vec<(TenantId, Arc<Tsdb>)> = self
            .tenants
            .read()
            .iter()
            .map(|(id, tsdb)| (id.clone(), tsdb.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Closes every tenant's database (flushing WALs); tries them all and
    /// returns the first error.
    pub fn close_all(&self) -> Result<(), TsdbError> {
        let mut first_error = None;
        for (tenant, tsdb) in self.tenants() {
            if let Err(error) = tsdb.close() {
                tracing::error!(tenant = %tenant, %error, "closing tenant database failed");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Opens (replays) the given tenants, several at a time: replay is CPU work
/// and start-up time is downtime.
/// Opens one tenant; with a bucket, first downloads its blocks missing on
/// disk, and attaches the shipper.
fn open_tenant(
    tenants_dir: &Path,
    tenant: &TenantId,
    opts: &TsdbOptions,
    bucket: Option<&Arc<Bucket>>,
) -> Result<Tsdb, TsdbError> {
    let dir = tenants_dir.join(tenant.as_str());
    let Some(bucket) = bucket else {
        return Tsdb::open(&dir, opts.clone());
    };
    let shipper = Shipper::prepare(Arc::clone(bucket), tenant.as_str(), &dir)?;
    let tsdb = Tsdb::open(&dir, opts.clone())?;
    tsdb.attach_shipper(shipper);
    Ok(tsdb)
}

fn open_all(
    tenants_dir: &Path,
    tenants: Vec<TenantId>,
    opts: &TsdbOptions,
    bucket: Option<&Arc<Bucket>>,
) -> Result<HashMap<TenantId, Arc<Tsdb>>, TsdbError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(tenants.len().max(1));
    let queue = Mutex::new(tenants);
    let opened = Mutex::new(HashMap::new());
    let first_error: Mutex<Option<TsdbError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if first_error.lock().is_some() {
                    return;
                }
                let Some(tenant) = queue.lock().pop() else {
                    return;
                };
                match open_tenant(tenants_dir, &tenant, opts, bucket) {
                    Ok(tsdb) => {
                        opened.lock().insert(tenant, Arc::new(tsdb));
                    }
                    Err(error) => {
                        first_error.lock().get_or_insert(error);
                    }
                }
            });
        }
    });
    match first_error.into_inner() {
        Some(error) => Err(error),
        None => Ok(opened.into_inner()),
    }
}
