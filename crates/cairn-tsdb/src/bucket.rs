//! The object-store seam: blocks in a bucket (a local folder, S3 or
//! anything S3-compatible, GCS, Azure) through the `object_store` crate.
//!
//! Layout, as Thanos and Mimir: `<tenant>/<block ULID>/{chunks/000001...,
//! index, meta.json}`. `meta.json` is uploaded last and deleted first, so a
//! block is complete in the bucket exactly when its `meta.json` exists
//! (`docs/format.md`, "Object storage").
//!
//! `object_store` is async and the tsdb's maintenance runs on plain
//! threads, so [`Bucket`] owns a small tokio runtime (two workers) and every
//! public method blocks: the future is spawned on that runtime and the
//! caller waits on a channel. That works from any thread, including a
//! `spawn_blocking` thread of the server's runtime, where `block_on` would
//! panic, and never ties up the server's workers.
//!
//! A local-folder bucket on the same filesystem as the blocks (the default,
//! `<storage.path>/bucket`) receives hard links instead of copies: blocks
//! are immutable once written, so the bucket costs no second copy of the
//! data on that disk. Linking falls back to copying (another filesystem,
//! or any link error).
//!
//! Every object request is counted in [`BucketMetrics`]; a failed request
//! is retried with exponential backoff ([`RETRY_ATTEMPTS`]) on top of the
//! HTTP backends' own retries, and a block that still fails is retried at
//! the next maintenance pass.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use tokio::io::AsyncWriteExt;

use crate::block::{self, BlockMeta, TMP_CREATION};

/// Attempts per object request before a block's upload or download fails.
pub const RETRY_ATTEMPTS: u32 = 4;
/// First pause between attempts; doubled after each failure.
const RETRY_FIRST_BACKOFF: Duration = Duration::from_millis(200);
const RETRY_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Objects larger than this are uploaded in parts (S3's minimum part is 5 MiB).
const UPLOAD_BUFFER: usize = 8 << 20;

/// Where blocks go.
#[derive(Clone, Debug, PartialEq)]
pub enum BucketBackend {
    /// A local folder (created if missing).
    Filesystem {
        dir: PathBuf,
    },
    S3(S3Options),
    Gcs(GcsOptions),
    Azure(AzureOptions),
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// S3 or an S3-compatible server. Empty fields fall back to the standard
/// `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct S3Options {
    pub bucket_name: String,
    /// e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Plain `http://` endpoints (S3-compatible servers on a private network).
    pub allow_http: bool,
    /// `bucket.endpoint/key` URLs instead of `endpoint/bucket/key` (path
    /// style, the default, which S3-compatible servers expect).
    pub virtual_hosted_style: bool,
}

/// Google Cloud Storage. An empty service account path falls back to the
/// `GOOGLE_*` environment variables and application default credentials.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GcsOptions {
    pub bucket_name: String,
    pub service_account_path: String,
}

/// Azure Blob Storage. Empty fields fall back to the `AZURE_*` environment
/// variables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AzureOptions {
    pub account_name: String,
    pub account_key: Secret,
    pub container_name: String,
    /// Custom endpoint (e.g. an emulator); empty for Azure's own.
    pub endpoint: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("object storage configuration: {0}")]
    Config(String),
    #[error("object storage {operation} of {key} failed")]
    Store {
        operation: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("object storage: local file {path}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object storage: block {0} is incomplete in the bucket (no meta.json)")]
    Incomplete(String),
    #[error("object storage: bad block {key}: {reason}")]
    BadBlock { key: String, reason: String },
    #[error("object storage runtime stopped")]
    Stopped,
}

impl BucketError {
    fn is_not_found(&self) -> bool {
        matches!(
            self,
            BucketError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}

/// Operations counted, Thanos's `objstore` names.
pub const OPERATIONS: [&str; 4] = ["upload", "get", "delete", "iter"];
/// Upper bounds (seconds) of the operation-duration histogram.
pub const DURATION_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Counters of one operation.
#[derive(Default)]
struct OperationCounters {
    total: AtomicU64,
    failures: AtomicU64,
    duration_nanos: AtomicU64,
    /// Per bucket of [`DURATION_BUCKETS`], plus `+Inf`; not cumulative.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
}

/// Object-store request counts, failures and durations since start-up.
#[derive(Default)]
pub struct BucketMetrics {
    operations: [OperationCounters; OPERATIONS.len()],
}

/// One operation's figures, for the server's `/metrics`.
#[derive(Clone, Debug, PartialEq)]
pub struct OperationStats {
    pub operation: &'static str,
    pub total: u64,
    pub failures: u64,
    pub duration_seconds_sum: f64,
    /// `(upper bound, count)` per bucket, not cumulative, `+Inf` last.
    pub duration_buckets: Vec<(f64, u64)>,
}

impl BucketMetrics {
    fn observe(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        let Some(position) = OPERATIONS.iter().position(|o| *o == operation) else {
            debug_assert!(false, "unknown bucket operation {operation}");
            return;
        };
        let counters = &self.operations[position];
        counters.total.fetch_add(1, Ordering::Relaxed);
        if !ok {
            counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        counters
            .duration_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        counters.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> Vec<OperationStats> {
        OPERATIONS
            .iter()
            .zip(&self.operations)
            .map(|(operation, c)| OperationStats {
                operation,
                total: c.total.load(Ordering::Relaxed),
                failures: c.failures.load(Ordering::Relaxed),
                duration_seconds_sum: c.duration_nanos.load(Ordering::Relaxed) as f64 / 1e9,
                duration_buckets: DURATION_BUCKETS
                    .iter()
                    .copied()
                    .chain(std::iter::once(f64::INFINITY))
                    .zip(&c.buckets)
                    .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
                    .collect(),
            })
            .collect()
    }
}

/// Blocks of one tenant found in the bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BucketListing {
    /// Blocks whose `meta.json` exists, sorted.
    pub complete: Vec<String>,
    /// Block prefixes without `meta.json` (an interrupted upload or
    /// deletion), sorted.
    pub partial: Vec<String>,
}

/// A bucket of blocks; see the module docs.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// Taken (and shut down in the background) on drop, which may happen
    /// inside the server's runtime where a blocking shutdown would panic.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    metrics: Arc<BucketMetrics>,
    description: String,
    /// The local-folder backend, whose objects are files that uploads and
    /// downloads hard-link (see the module doc).
    local: Option<Arc<object_store::local::LocalFileSystem>>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("store", &self.description)
            .finish()
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The HTTP backends' own retries: a few quick ones, bounded in time, so a
/// dead endpoint fails a request in seconds and our backoff takes over.
fn http_retry() -> RetryConfig {
    RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    }
}

fn http_client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120))
}

/// The store, its description, and the local-folder store when it is one.
type BuiltStore = (
    Arc<dyn ObjectStore>,
    String,
    Option<Arc<object_store::local::LocalFileSystem>>,
);

fn build_store(backend: &BucketBackend) -> Result<BuiltStore, BucketError> {
    let config = |e: object_store::Error| BucketError::Config(e.to_string());
    if let BucketBackend::Filesystem { dir } = backend {
        std::fs::create_dir_all(dir).map_err(|source| BucketError::Local {
            path: dir.clone(),
            source,
        })?;
        let store = Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(config)?
                .with_automatic_cleanup(true),
        );
        let description = format!("filesystem {}", dir.display());
        return Ok((store.clone(), description, Some(store)));
    }
    let (store, description) = build_remote_store(backend)?;
    Ok((store, description, None))
}

fn build_remote_store(
    backend: &BucketBackend,
) -> Result<(Arc<dyn ObjectStore>, String), BucketError> {
    let config = |e: object_store::Error| BucketError::Config(e.to_string());
    Ok(match backend {
        BucketBackend::Filesystem { .. } => unreachable!("built by build_store"),
        BucketBackend::S3(s3) => {
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_retry(http_retry())
                .with_client_options(http_client_options(s3.allow_http))
                .with_allow_http(s3.allow_http)
                .with_virtual_hosted_style_request(s3.virtual_hosted_style);
            let set = |value: &str| (!value.is_empty()).then(|| value.to_string());
            if let Some(v) = set(&s3.bucket_name) {
                builder = builder.with_bucket_name(v);
            }
            if let Some(v) = set(&s3.endpoint) {
                builder = builder.with_endpoint(v);
            }
            if let Some(v) = set(&s3.region) {
                builder = builder.with_region(v);
            }
            if let Some(v) = set(&s3.access_key_id) {
                builder = builder.with_access_key_id(v);
            }
            if let Some(v) = set(&s3.secret_access_key.0) {
                builder = builder.with_secret_access_key(v);
            }
            let store = builder.build().map_err(config)?;
            let description = format!("s3 {} at {}", s3.bucket_name, s3.endpoint);
            (Arc::new(store), description)
        }
        BucketBackend::Gcs(gcs) => {
            let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_retry(http_retry())
                .with_client_options(http_client_options(false));
            if !gcs.bucket_name.is_empty() {
                builder = builder.with_bucket_name(&gcs.bucket_name);
            }
            if !gcs.service_account_path.is_empty() {
                builder = builder.with_service_account_path(&gcs.service_account_path);
            }
            let store = builder.build().map_err(config)?;
            (Arc::new(store), format!("gcs {}", gcs.bucket_name))
        }
        BucketBackend::Azure(azure) => {
            let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_retry(http_retry())
                .with_client_options(http_client_options(false));
            if !azure.account_name.is_empty() {
                builder = builder.with_account(&azure.account_name);
            }
            if !azure.account_key.0.is_empty() {
                builder = builder.with_access_key(&azure.account_key.0);
            }
            if !azure.container_name.is_empty() {
                builder = builder.with_container_name(&azure.container_name);
            }
            if !azure.endpoint.is_empty() {
                builder = builder
                    .with_endpoint(azure.endpoint.clone())
                    .with_allow_http(azure.endpoint.starts_with("http://"));
            }
            let store = builder.build().map_err(config)?;
            (Arc::new(store), format!("azure {}", azure.container_name))
        }
    })
}

fn key(parts: &[&str]) -> ObjectPath {
    ObjectPath::from_iter(parts.iter().copied())
}

/// Runs `attempt` until it succeeds, a `NotFound` comes back, or
/// [`RETRY_ATTEMPTS`] attempts failed, sleeping 200 ms, 400 ms, ... (at
/// most 5 s) in between.
async fn with_retries<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, BucketError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BucketError>>,
{
    let mut backoff = RETRY_FIRST_BACKOFF;
    let mut tries = 1;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if error.is_not_found() || tries >= RETRY_ATTEMPTS => return Err(error),
            Err(error) => {
                tracing::warn!(%error, what, attempt = tries, backoff_ms = backoff.as_millis() as u64, "object storage request failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX_BACKOFF);
                tries += 1;
            }
        }
    }
}

/// One request, timed and counted.
async fn observed<T>(
    metrics: &BucketMetrics,
    operation: &'static str,
    key: &ObjectPath,
    request: impl Future<Output = object_store::Result<T>>,
) -> Result<T, BucketError> {
    let started = Instant::now();
    let result = request.await;
    metrics.observe(operation, started.elapsed(), result.is_ok());
    result.map_err(|source| BucketError::Store {
        operation,
        key: if key.as_ref().is_empty() {
            "the bucket root".to_string()
        } else {
            key.to_string()
        },
        source,
    })
}

/// Every object under `prefix` (one block's files), listed in one
/// request, timed and counted as `iter`.
async fn list_objects(
    store: &dyn ObjectStore,
    metrics: &BucketMetrics,
    prefix: &ObjectPath,
) -> Result<Vec<ObjectPath>, BucketError> {
    let started = Instant::now();
    let listed: Result<Vec<_>, _> = store
        .list(Some(prefix))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect();
    metrics.observe("iter", started.elapsed(), listed.is_ok());
    listed
        .map(|l| l.into_iter().map(|m| m.location).collect())
        .map_err(|source| BucketError::Store {
            operation: "iter",
            key: prefix.to_string(),
            source,
        })
}

impl Bucket {
    /// Connects (lazily: no request is made here) to the configured bucket.
    pub fn new(backend: &BucketBackend) -> Result<Bucket, BucketError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-bucket")
            .enable_all()
            .build()
            .map_err(|e| BucketError::Config(format!("cannot start a runtime: {e}")))?;
        // Builders of the HTTP backends spawn nothing, but the reqwest
        // client they make must be created inside a runtime.
        let _entered = runtime.enter();
        let (store, description, local) = build_store(backend)?;
        drop(_entered);
        Ok(Bucket {
            store,
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            metrics: Arc::new(BucketMetrics::default()),
            description,
            local,
        })
    }

    /// The underlying store (tests list and read it directly).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub fn metrics(&self) -> &BucketMetrics {
        &self.metrics
    }

    /// Runs `future` on the bucket's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T, BucketError>> + Send + 'static,
    ) -> Result<T, BucketError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv().map_err(|_| BucketError::Stopped)?
    }

    /// Tenants with at least one object in the bucket (names as stored).
    pub fn list_tenants(&self) -> Result<Vec<String>, BucketError> {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        self.run(async move {
            let root = ObjectPath::default();
            let listed = with_retries("list tenants", || {
                observed(&metrics, "iter", &root, store.list_with_delimiter(None))
            })
            .await?;
            let mut tenants: Vec<String> = listed
                .common_prefixes
                .iter()
                .filter_map(|p| p.parts().next_back().map(|part| part.as_ref().to_string()))
                .collect();
            tenants.sort();
            Ok(tenants)
        })
    }

    /// The tenant's blocks in the bucket, complete and partial.
    pub fn list_blocks(&self, tenant: &str) -> Result<BucketListing, BucketError> {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let prefix = key(&[tenant]);
        self.run(async move {
            with_retries("list blocks", || async {
                let started = Instant::now();
                let mut objects = store.list(Some(&prefix));
                let mut seen = std::collections::BTreeMap::<String, bool>::new();
                while let Some(item) = objects.next().await {
                    let meta = match item {
                        Ok(meta) => meta,
                        Err(source) => {
                            metrics.observe("iter", started.elapsed(), false);
                            return Err(BucketError::Store {
                                operation: "iter",
                                key: prefix.to_string(),
                                source,
                            });
                        }
                    };
                    let parts: Vec<String> = meta
                        .location
                        .prefix_match(&prefix)
                        .map(|rest| rest.map(|p| p.as_ref().to_string()).collect())
                        .unwrap_or_default();
                    let Some(ulid) = parts.first() else { continue };
                    if block::ulid::parse(ulid).is_none() {
                        continue;
                    }
                    let complete = parts.len() == 2 && parts[1] == "meta.json";
                    *seen.entry(ulid.clone()).or_default() |= complete;
                }
                metrics.observe("iter", started.elapsed(), true);
                let mut listing = BucketListing::default();
                for (ulid, complete) in seen {
                    if complete {
                        listing.complete.push(ulid);
                    } else {
                        listing.partial.push(ulid);
                    }
                }
                Ok(listing)
            })
            .await
        })
    }

    /// Uploads the block in `dir` as `<tenant>/<ULID>/...`: chunk segments,
    /// then the index, then `meta.json`. Files are streamed (in parts when
    /// large), never read whole into memory.
    pub fn upload_block(&self, tenant: &str, dir: &Path) -> Result<(), BucketError> {
        let meta = BlockMeta::read(dir).map_err(|e| BucketError::BadBlock {
            key: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let local_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BucketError::Local { path, source }
        };
        let chunks_dir = dir.join("chunks");
        let mut files: Vec<(PathBuf, ObjectPath)> = Vec::new();
        let mut segments: Vec<String> = std::fs::read_dir(&chunks_dir)
            .map_err(local_error(&chunks_dir))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        segments.sort();
        for name in segments {
            files.push((
                chunks_dir.join(&name),
                key(&[tenant, &meta.ulid, "chunks", &name]),
            ));
        }
        files.push((dir.join("index"), key(&[tenant, &meta.ulid, "index"])));
        files.push((
            dir.join("meta.json"),
            key(&[tenant, &meta.ulid, "meta.json"]),
        ));
        if let Some(local) = &self.local {
            match link_files(local, &self.metrics, &files) {
                Ok(()) => return Ok(()),
                // Copied below instead; the copy overwrites what was linked.
                Err(error) => {
                    tracing::debug!(block = %meta.ulid, %error, "cannot hard-link a block into the bucket folder; copying it")
                }
            }
        }
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        self.run(async move {
            for (path, location) in files {
                with_retries("upload", || {
                    upload_file(store.clone(), &metrics, path.clone(), location.clone())
                })
                .await?;
            }
            Ok(())
        })
    }

    /// Downloads `<tenant>/<ulid>/` into `blocks_dir/<ulid>/`, through a
    /// `.tmp-for-creation` directory (removed at open if a crash leaves
    /// it), fsynced and renamed into place like a block written locally.
    /// Objects are streamed to files. Fails with [`BucketError::Incomplete`]
    /// when the block has no `meta.json` (it was being deleted).
    pub fn download_block(
        &self,
        tenant: &str,
        ulid: &str,
        blocks_dir: &Path,
    ) -> Result<BlockMeta, BucketError> {
        let final_dir = blocks_dir.join(ulid);
        let tmp = blocks_dir.join(format!("{ulid}{TMP_CREATION}"));
        let local = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BucketError::Local { path, source }
        };
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(local(&tmp))?;
        }
        std::fs::create_dir_all(tmp.join("chunks")).map_err(local(&tmp))?;
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let local_store = self.local.clone();
        let prefix = key(&[tenant, ulid]);
        let target = tmp.clone();
        let ulid_owned = ulid.to_string();
        let result = self.run(async move {
            let objects = with_retries("list block", || {
                list_objects(store.as_ref(), &metrics, &prefix)
            })
            .await?;
            let mut relative: Vec<(Vec<String>, ObjectPath)> = objects
                .into_iter()
                .filter_map(|location| {
                    let rest: Vec<String> = location
                        .prefix_match(&prefix)?
                        .map(|p| p.as_ref().to_string())
                        .collect();
                    Some((rest, location))
                })
                .collect();
            let is_meta = |rest: &[String]| rest.len() == 1 && rest[0] == "meta.json";
            if !relative.iter().any(|(rest, _)| is_meta(rest)) {
                return Err(BucketError::Incomplete(ulid_owned));
            }
            // meta.json last: the block is whole once it is on disk.
            relative.sort_by_key(|(rest, _)| is_meta(rest));
            for (rest, location) in relative {
                let allowed = match rest.as_slice() {
                    [name] => name == "index" || name == "meta.json",
                    [dir, name] => dir == "chunks" && name.bytes().all(|b| b.is_ascii_digit()),
                    _ => false,
                };
                if !allowed {
                    tracing::warn!(object = %location, "ignoring an unknown object in a block");
                    continue;
                }
                let path = rest.iter().fold(target.clone(), |p, part| p.join(part));
                if let Some(local) = &local_store {
                    if link_file(local, &metrics, "get", &location, &path).is_ok() {
                        continue;
                    }
                    // Never write through a link the failed attempt left:
                    // that would change the bucket's object.
                    let _ = std::fs::remove_file(&path);
                }
                with_retries("download", || {
                    download_file(store.clone(), &metrics, location.clone(), path.clone())
                })
                .await?;
            }
            Ok(())
        });
        let finish = || -> Result<BlockMeta, BucketError> {
            result?;
            let meta = BlockMeta::read(&tmp).map_err(|e| BucketError::BadBlock {
                key: format!("{tenant}/{ulid}"),
                reason: e.to_string(),
            })?;
            if meta.ulid != ulid {
                return Err(BucketError::BadBlock {
                    key: format!("{tenant}/{ulid}"),
                    reason: format!("meta.json names block {}", meta.ulid),
                });
            }
            let sync = |dir: &Path| {
                block::sync_dir(dir).map_err(|e| BucketError::BadBlock {
                    key: dir.display().to_string(),
                    reason: e.to_string(),
                })
            };
            sync(&tmp.join("chunks"))?;
            sync(&tmp)?;
            std::fs::rename(&tmp, &final_dir).map_err(local(&tmp))?;
            sync(blocks_dir)?;
            Ok(meta)
        };
        let outcome = finish();
        if outcome.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        outcome
    }

    /// Deletes `<tenant>/<ulid>/`: `meta.json` first, so a crash half-way
    /// leaves a partial block that no reader takes for whole.
    pub fn delete_block(&self, tenant: &str, ulid: &str) -> Result<(), BucketError> {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        let prefix = key(&[tenant, ulid]);
        let meta = key(&[tenant, ulid, "meta.json"]);
        self.run(async move {
            match with_retries("delete", || {
                observed(&metrics, "delete", &meta, store.delete(&meta))
            })
            .await
            {
                Ok(()) => {}
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(error),
            }
            let objects = with_retries("list block", || {
                list_objects(store.as_ref(), &metrics, &prefix)
            })
            .await?;
            for location in objects {
                match with_retries("delete", || {
                    observed(&metrics, "delete", &location, store.delete(&location))
                })
                .await
                {
                    Ok(()) => {}
                    Err(error) if error.is_not_found() => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(())
        })
    }
}

/// Uploads `files` to a local-folder bucket as hard links, the last file
/// (`meta.json`) last, then makes the new directory entries durable. Each
/// link counts as an `upload` request.
///
/// The local copy is never written through the bucket's link: block files
/// are immutable, and a retried copy replaces the object by rename.
fn link_files(
    local: &object_store::local::LocalFileSystem,
    metrics: &BucketMetrics,
    files: &[(PathBuf, ObjectPath)],
) -> std::io::Result<()> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (path, location) in files {
        let dest = link_file(local, metrics, "upload", location, path)?;
        if let Some(parent) = dest.parent() {
            if !dirs.iter().any(|d| d == parent) {
                dirs.push(parent.to_path_buf());
            }
        }
    }
    // The block folder and its `chunks/`, then the tenant folder that
    // holds the block's entry.
    if let Some(tenant_dir) = dirs.last().and_then(|d| d.parent()) {
        dirs.push(tenant_dir.to_path_buf());
    }
    for dir in dirs {
        block::sync_dir(&dir).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// Hard-links the object `location` of a local-folder bucket and the local
/// file `path`, in the direction of `operation` (`upload`: the bucket's
/// object becomes a link to `path`; `get`: `path` becomes a link to the
/// object, made durable). Returns the object's file path. Counted as one
/// successful `operation` request when it succeeds.
fn link_file(
    local: &object_store::local::LocalFileSystem,
    metrics: &BucketMetrics,
    operation: &'static str,
    location: &ObjectPath,
    path: &Path,
) -> std::io::Result<PathBuf> {
    let started = Instant::now();
    let result = (|| {
        let object = local
            .path_to_filesystem(location)
            .map_err(std::io::Error::other)?;
        let (from, to) = match operation {
            "upload" => (path, object.as_path()),
            _ => (object.as_path(), path),
        };
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // A retried upload finds what the interrupted one linked or copied.
        match std::fs::remove_file(to) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        std::fs::hard_link(from, to)?;
        if operation == "get" {
            // A copied-in object was never fsynced by the store.
            std::fs::File::open(to)?.sync_all()?;
        }
        Ok(object)
    })();
    // A failed link is not a failed request: the caller copies instead,
    // and that copy is what gets counted.
    if result.is_ok() {
        metrics.observe(operation, started.elapsed(), true);
    }
    result
}

async fn upload_file(
    store: Arc<dyn ObjectStore>,
    metrics: &BucketMetrics,
    path: PathBuf,
    location: ObjectPath,
) -> Result<(), BucketError> {
    let started = Instant::now();
    let result: Result<(), std::io::Error> = async {
        let mut file = tokio::fs::File::open(&path).await?;
        let mut writer = BufWriter::with_capacity(store, location.clone(), UPLOAD_BUFFER);
        match tokio::io::copy(&mut file, &mut writer).await {
            Ok(_) => writer.shutdown().await,
            Err(error) => {
                let _ = writer.abort().await;
                Err(error)
            }
        }
    }
    .await;
    metrics.observe("upload", started.elapsed(), result.is_ok());
    result.map_err(|source| io_to_bucket_error("upload", &location, &path, source))
}

async fn download_file(
    store: Arc<dyn ObjectStore>,
    metrics: &BucketMetrics,
    location: ObjectPath,
    path: PathBuf,
) -> Result<(), BucketError> {
    let started = Instant::now();
    let got = match store.get(&location).await {
        Ok(got) => got,
        Err(source) => {
            metrics.observe("get", started.elapsed(), false);
            return Err(BucketError::Store {
                operation: "get",
                key: location.to_string(),
                source,
            });
        }
    };
    let result: Result<(), BucketError> = async {
        let local = |source| BucketError::Local {
            path: path.clone(),
            source,
        };
        let mut file = tokio::fs::File::create(&path).await.map_err(local)?;
        let mut stream = got.into_stream();
        while let Some(bytes) = stream.next().await {
            let bytes = bytes.map_err(|source| BucketError::Store {
                operation: "get",
                key: location.to_string(),
                source,
            })?;
            file.write_all(&bytes).await.map_err(local)?;
        }
        file.sync_all().await.map_err(local)
    }
    .await;
    metrics.observe("get", started.elapsed(), result.is_ok());
    result
}

/// `BufWriter` reports store errors as `io::Error`s wrapping them.
fn io_to_bucket_error(
    operation: &'static str,
    location: &ObjectPath,
    path: &Path,
    source: std::io::Error,
) -> BucketError {
    if source
        .get_ref()
        .is_some_and(|inner| inner.is::<object_store::Error>())
    {
        let inner = source
            .into_inner()
            .and_then(|inner| inner.downcast::<object_store::Error>().ok());
        if let Some(inner) = inner {
            return BucketError::Store {
                operation,
                key: location.to_string(),
                source: *inner,
            };
        }
        return BucketError::Local {
            path: path.to_path_buf(),
            source: std::io::Error::other("object store error"),
        };
    }
    BucketError::Local {
        path: path.to_path_buf(),
        source,
    }
}
