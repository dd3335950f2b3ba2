//! The shipper: keeps one tenant's bucket a copy of its local blocks.
//!
//! - At open ([`Shipper::prepare`], before the tenant's blocks are read),
//!   every complete block in the bucket that this disk never had is
//!   downloaded into `blocks/`: a node started on an empty disk with the
//!   same bucket serves all the data. Blocks this disk shipped and then
//!   deleted itself (compacted away, expired) are not brought back; they
//!   are listed in `shipper.json` (as Thanos's `thanos.shipper.json`).
//! - Each maintenance pass ([`Tsdb::sync_bucket`]) uploads every local
//!   block not yet in the bucket (blocks cut from the head, compacted, or
//!   dropped in by `cairn import`), oldest first, stopping at the first
//!   failure (retried next pass). Only when every local block is in the
//!   bucket does it delete the bucket's blocks that are no longer local:
//!   sources of a compaction (their data is in the uploaded compacted
//!   block), blocks expired by retention, interrupted uploads.
//!
//! So data that reached the bucket stays there until the block that
//! replaces it is there too, and a crash at any step leaves at worst an
//! extra block in the bucket, deleted at the next pass. Deletion is direct,
//! not Thanos's mark-then-delete: that delay exists for other processes
//! reading the bucket (store-gateways); here the only reader is this node's
//! start-up, which skips a block whose `meta.json` went away meanwhile.
//! One writer per tenant and bucket is assumed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::block::{self, ulid, TMP_CREATION, TMP_DELETION};
use crate::bucket::{Bucket, BucketError};
use crate::{Tsdb, TsdbError};

/// The file in a tenant's directory naming the blocks this disk knows to be
/// complete in the bucket.
pub const SHIPPER_FILE: &str = "shipper.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct ShipperFile {
    version: u32,
    uploaded: BTreeSet<String>,
}

/// One tenant's view of the bucket.
pub(crate) struct Shipper {
    bucket: Arc<Bucket>,
    tenant: String,
    file: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Blocks complete in the bucket.
    in_bucket: BTreeSet<String>,
    /// Block prefixes in the bucket without `meta.json`.
    partial: BTreeSet<String>,
}

impl From<BucketError> for TsdbError {
    fn from(error: BucketError) -> TsdbError {
        TsdbError::Bucket(Box::new(error))
    }
}

fn local_blocks(blocks_dir: &Path) -> Result<BTreeSet<String>, TsdbError> {
    let mut found = BTreeSet::new();
    let entries = match std::fs::read_dir(blocks_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(source) => {
            return Err(TsdbError::Io {
                path: blocks_dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(TMP_CREATION) || name.ends_with(TMP_DELETION) {
            continue;
        }
        if ulid::parse(&name).is_some() && entry.path().join("meta.json").exists() {
            found.insert(name);
        }
    }
    Ok(found)
}

impl Shipper {
    /// Lists the tenant's blocks in the bucket and downloads those this disk
    /// never had into `<dir>/blocks/`. Call before [`Tsdb::open`] reads the
    /// blocks. A block that cannot be downloaded fails the open: a node must
    /// not serve (and later mirror) a tenant while missing its data.
    pub(crate) fn prepare(
        bucket: Arc<Bucket>,
        tenant: &str,
        dir: &Path,
    ) -> Result<Shipper, TsdbError> {
        let file = dir.join(SHIPPER_FILE);
        let known = read_shipper_file(&file)?;
        let listing = bucket.list_blocks(tenant)?;
        let blocks_dir = dir.join("blocks");
        std::fs::create_dir_all(&blocks_dir).map_err(block::io_error(&blocks_dir))?;
        let local = local_blocks(&blocks_dir)?;
        let mut in_bucket: BTreeSet<String> = listing.complete.iter().cloned().collect();
        let mut downloaded = 0;
        for ulid in &listing.complete {
            if local.contains(ulid) || known.contains(ulid) {
                continue;
            }
            match bucket.download_block(tenant, ulid, &blocks_dir) {
                Ok(meta) => {
                    downloaded += 1;
                    tracing::info!(tenant, block = %ulid, min_time = meta.min_time, max_time = meta.max_time, "block downloaded from the bucket");
                }
                Err(BucketError::Incomplete(_)) => {
                    // Deleted since the listing.
                    in_bucket.remove(ulid);
                }
                Err(error) => return Err(error.into()),
            }
        }
        let shipper = Shipper {
            bucket,
            tenant: tenant.to_string(),
            file,
            state: Mutex::new(State {
                in_bucket,
                partial: listing.partial.into_iter().collect(),
            }),
        };
        shipper.persist(&shipper.state.lock())?;
        tracing::info!(
            tenant,
            in_bucket = listing.complete.len(),
            downloaded,
            "tenant blocks listed in the bucket"
        );
        Ok(shipper)
    }

    fn persist(&self, state: &State) -> Result<(), TsdbError> {
        let body = serde_json::to_vec_pretty(&ShipperFile {
            version: 1,
            uploaded: state.in_bucket.clone(),
        })
        .expect("the shipper file serializes");
        let tmp = self.file.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.file)
        };
        write().map_err(block::io_error(&self.file))
    }
}

fn read_shipper_file(path: &Path) -> Result<BTreeSet<String>, TsdbError> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<ShipperFile>(&bytes) {
            Ok(file) => Ok(file.uploaded),
            Err(error) => {
                // Only an optimisation against re-downloading deleted
                // blocks: a bad file means "knows nothing".
                tracing::warn!(path = %path.display(), %error, "ignoring an unreadable shipper file");
                Ok(BTreeSet::new())
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(source) => Err(TsdbError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What one [`Tsdb::sync_bucket`] pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub uploaded: usize,
    pub deleted: usize,
    /// Local blocks still not in the bucket (after a failure).
    pub pending: usize,
}

impl Tsdb {
    /// Connects this database to a bucket (see [`Shipper::prepare`]).
    pub(crate) fn attach_shipper(&self, shipper: Shipper) {
        if self.shipper.set(shipper).is_err() {
            tracing::error!(dir = %self.dir.display(), "a shipper was already attached");
        }
    }

    /// Whether blocks go to a bucket.
    pub fn has_bucket(&self) -> bool {
        self.shipper.get().is_some()
    }

    /// Uploads every local block not yet in the bucket; then, if none is
    /// left, deletes the bucket's blocks that are no longer local. Run at
    /// the end of every [`Tsdb::maintain`]; a no-op without a bucket.
    pub fn sync_bucket(&self) -> Result<SyncReport, TsdbError> {
        let Some(shipper) = self.shipper.get() else {
            return Ok(SyncReport::default());
        };
        let _maintenance = self.maintenance.lock();
        let blocks = self.blocks.read().clone();
        let mut report = SyncReport::default();
        let mut state = shipper.state.lock();
        let pending: Vec<_> = blocks
            .iter()
            .filter(|b| !state.in_bucket.contains(&b.meta().ulid))
            .cloned()
            .collect();
        report.pending = pending.len();
        for b in pending {
            // `b` is held: its directory outlives the upload even if it is
            // replaced meanwhile.
            if let Err(error) = shipper.bucket.upload_block(&shipper.tenant, b.dir()) {
                tracing::warn!(tenant = %shipper.tenant, block = %b.meta().ulid, %error, "block upload failed; retrying at the next pass");
                return Err(error.into());
            }
            state.in_bucket.insert(b.meta().ulid.clone());
            state.partial.remove(&b.meta().ulid);
            shipper.persist(&state)?;
            report.uploaded += 1;
            report.pending -= 1;
            tracing::info!(tenant = %shipper.tenant, block = %b.meta().ulid, min_time = b.meta().min_time, max_time = b.meta().max_time, "block uploaded");
        }
        let local: BTreeSet<&str> = blocks.iter().map(|b| b.meta().ulid.as_str()).collect();
        let extra: Vec<String> = state
            .in_bucket
            .iter()
            .chain(state.partial.iter())
            .filter(|u| !local.contains(u.as_str()))
            .cloned()
            .collect();
        for ulid in extra {
            shipper.bucket.delete_block(&shipper.tenant, &ulid)?;
            state.in_bucket.remove(&ulid);
            state.partial.remove(&ulid);
            shipper.persist(&state)?;
            report.deleted += 1;
            tracing::info!(tenant = %shipper.tenant, block = %ulid, "block deleted from the bucket");
        }
        Ok(report)
    }
}
