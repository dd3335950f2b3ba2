//! Whole-tenant deletion after a grace period, as Mimir's
//! `POST /compactor/delete_tenant` (`pkg/compactor/compactor_http.go`):
//!
//! - [`TenantStore::mark_tenant_for_deletion`] writes
//!   `<tenant>/tenant-deletion-mark.json` (`{"deletion_time": <unix
//!   seconds>}`, Mimir's `TenantDeletionMark`) durably. A repeated request
//!   keeps the first mark, so it never pushes the deletion back.
//! - Once `tenant_deletion_delay` has passed, the maintenance thread (or
//!   [`TenantStore::delete_due_tenants`]) first deletes the tenant's blocks
//!   from the bucket, if one is configured (while the local mark still
//!   exists, so a failure or crash is retried: otherwise the next start
//!   would bring the tenant back from the bucket). Then it removes the
//!   tenant from the store, refuses further writes through the old handle,
//!   renames its directory into `<data>/deleting-tenants/` (one atomic step:
//!   the tenant is gone) and deletes it there; leftovers of a crash are
//!   deleted at open.
//! - As in Mimir, writes are still accepted during the grace period, and the
//!   deletion removes everything the tenant holds when it runs, including
//!   those. Writes after it start a new, empty tenant.
//! - [`TenantStore::tenant_deletion_status`] answers Mimir's
//!   `{"tenant_id", "blocks_deleted"}`: `blocks_deleted` is true once the
//!   tenant has no data directory and no block in the bucket.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_model::TenantId;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::block::{io_error, sync_dir};
use crate::bucket::Bucket;
use crate::{TenantStore, Tsdb, TsdbError};

/// The mark's file name inside the tenant directory (Mimir's name).
pub const MARK_FILE: &str = "tenant-deletion-mark.json";
/// Where a tenant's directory goes to be deleted, under the data directory.
const DELETING_DIR: &str = "deleting-tenants";

/// The mark's contents (Mimir's `TenantDeletionMark`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TenantDeletionMark {
    /// When deletion was requested, Unix seconds.
    deletion_time: i64,
}

/// Mimir's `DeleteTenantStatusResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantDeletionStatus {
    pub tenant_id: String,
    /// True once none of the tenant's data is left.
    pub blocks_deleted: bool,
}

/// What the maintenance thread needs to delete due tenants.
#[derive(Clone)]
pub(crate) struct TenantSweeper {
    pub tenants_dir: PathBuf,
    pub tenants: Arc<RwLock<HashMap<TenantId, Arc<Tsdb>>>>,
    /// The store's tenant-creation lock.
    pub creating: Arc<Mutex<()>>,
    pub delay: Duration,
    pub bucket: Option<Arc<Bucket>>,
}

impl TenantSweeper {
    /// Deletes every tenant whose mark is older than the delay; returns them.
    pub fn run(&self, now_ms: i64) -> Vec<TenantId> {
        let delay_ms = i64::try_from(self.delay.as_millis()).unwrap_or(i64::MAX);
        let candidates: Vec<(TenantId, PathBuf)> = self
            .tenants
            .read()
            .iter()
            .map(|(tenant, tsdb)| (tenant.clone(), tsdb.dir().to_path_buf()))
            .collect();
        let mut deleted = Vec::new();
        for (tenant, dir) in candidates {
            let mark = match read_mark(&dir) {
                Ok(Some(mark)) => mark,
                Ok(None) => continue,
                Err(error) => {
                    tracing::error!(tenant = %tenant, %error, "cannot read the tenant deletion mark");
                    continue;
                }
            };
            let due = mark
                .deletion_time
                .saturating_mul(1000)
                .saturating_add(delay_ms);
            if now_ms < due {
                continue;
            }
            match self.delete(&tenant) {
                Ok(()) => deleted.push(tenant),
                Err(error) => {
                    tracing::error!(tenant = %tenant, %error, "deleting a tenant failed; retrying next round")
                }
            }
        }
        deleted
    }

    fn delete(&self, tenant: &TenantId) -> Result<(), TsdbError> {
        if let Some(bucket) = &self.bucket {
            delete_from_bucket(bucket, tenant)?;
        }
        let staged = {
            // No request can open the tenant again until its directory is gone.
            let _creating = self.creating.lock();
            let Some(tsdb) = self.tenants.write().remove(tenant) else {
                return Ok(());
            };
            {
                let _maintenance = tsdb.maintenance.lock();
                tsdb.writer.lock().retire();
            }
            let dir = self.tenants_dir.join(tenant.as_str());
            let data_dir = self.tenants_dir.parent().unwrap_or(&self.tenants_dir);
            let deleting = data_dir.join(DELETING_DIR);
            fs::create_dir_all(&deleting).map_err(io_error(&deleting))?;
            let staged =
                deleting.join(format!("{}-{}", tenant.as_str(), crate::block::ulid::new()));
            fs::rename(&dir, &staged).map_err(io_error(&dir))?;
            sync_dir(&self.tenants_dir)?;
            staged
        };
        fs::remove_dir_all(&staged).map_err(io_error(&staged))?;
        tracing::info!(tenant = %tenant, "tenant deleted after its grace period");
        Ok(())
    }
}

/// Deletes every block (complete or partial) of `tenant` from the bucket.
fn delete_from_bucket(bucket: &Bucket, tenant: &TenantId) -> Result<(), TsdbError> {
    let listing = bucket.list_blocks(tenant.as_str())?;
    for ulid in listing.complete.iter().chain(&listing.partial) {
        bucket.delete_block(tenant.as_str(), ulid)?;
    }
    Ok(())
}

/// Deletes what an interrupted tenant deletion left in `<data>/deleting-tenants/`.
pub(crate) fn remove_leftovers(data_dir: &Path) -> Result<(), TsdbError> {
    let deleting = data_dir.join(DELETING_DIR);
    if deleting.exists() {
        tracing::info!(dir = %deleting.display(), "removing tenants whose deletion was interrupted");
        fs::remove_dir_all(&deleting).map_err(io_error(&deleting))?;
    }
    Ok(())
}

fn read_mark(tenant_dir: &Path) -> Result<Option<TenantDeletionMark>, TsdbError> {
    let path = tenant_dir.join(MARK_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&path)(e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| crate::block::corrupt_block(&path, format!("bad deletion mark: {e}")))
}

impl TenantStore {
    /// Requests deletion of `tenant`'s data once the tenant deletion delay
    /// has passed from `now_ms` (see the module docs). Returns false when
    /// the tenant holds no data (nothing to do). A tenant already marked
    /// keeps its first mark.
    pub fn mark_tenant_for_deletion(
        &self,
        tenant: &TenantId,
        now_ms: i64,
    ) -> Result<bool, TsdbError> {
        let _creating = self.creating.lock();
        let dir = self.tenants_dir.join(tenant.as_str());
        if !dir.is_dir() {
            return Ok(false);
        }
        if read_mark(&dir)?.is_some() {
            return Ok(true);
        }
        let mark = TenantDeletionMark {
            deletion_time: now_ms.div_euclid(1000),
        };
        let path = dir.join(MARK_FILE);
        let tmp = dir.join(format!("{MARK_FILE}.tmp"));
        let mut file = fs::File::create(&tmp).map_err(io_error(&tmp))?;
        file.write_all(&serde_json::to_vec(&mark).expect("a mark always serializes"))
            .map_err(io_error(&tmp))?;
        file.sync_all().map_err(io_error(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io_error(&tmp))?;
        sync_dir(&dir)?;
        tracing::info!(
            tenant = %tenant,
            delay_seconds = self.opts.tenant_deletion_delay.as_secs(),
            "tenant marked for deletion"
        );
        Ok(true)
    }

    /// Mimir's tenant deletion status: whether the tenant's data is gone,
    /// from disk and from the bucket (Mimir's `isBlocksForUserDeleted`
    /// checks the bucket). Lists the bucket: call off the async threads.
    pub fn tenant_deletion_status(
        &self,
        tenant: &TenantId,
    ) -> Result<TenantDeletionStatus, TsdbError> {
        let mut blocks_deleted = !self.tenants_dir.join(tenant.as_str()).exists();
        if blocks_deleted {
            if let Some(bucket) = &self.bucket {
                let listing = bucket.list_blocks(tenant.as_str())?;
                blocks_deleted = listing.complete.is_empty() && listing.partial.is_empty();
            }
        }
        Ok(TenantDeletionStatus {
            tenant_id: tenant.as_str().to_string(),
            blocks_deleted,
        })
    }

    /// Deletes every tenant whose grace period has ended by `now_ms` (the
    /// maintenance thread does this each round); returns them.
    pub fn delete_due_tenants(&self, now_ms: i64) -> Vec<TenantId> {
        self.sweeper().run(now_ms)
    }

    pub(crate) fn sweeper(&self) -> TenantSweeper {
        TenantSweeper {
            tenants_dir: self.tenants_dir.clone(),
            tenants: self.tenants.clone(),
            creating: self.creating.clone(),
            delay: self.opts.tenant_deletion_delay,
            bucket: self.bucket.clone(),
        }
    }
}
