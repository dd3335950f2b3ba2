//! The configuration: one serde tree with documented defaults.
//!
//! `cairn config defaults` prints [`Config::default`] with a one-line
//! comment per field, taken from [`FIELD_DOCS`]; a test keeps the two in
//! step. Unknown keys are an error that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cairn_ingest::DecodeLimits;
use cairn_promql::EngineOptions;
use cairn_server::auth::{AuthMode, AuthOptions};
pub use cairn_server::limits::PromDuration;
use cairn_server::limits::{Limits, RuntimeConfigOptions};
use cairn_server::query::scheduler::SchedulerOptions;
use cairn_server::tenant::TenancyOptions;
use cairn_server::tls::TlsOptions;
use cairn_server::usage::UsageOptions;
use cairn_server::ServerOptions;
use cairn_tsdb::bucket::{AzureOptions, BucketBackend, GcsOptions, S3Options, Secret};
use cairn_tsdb::{FsyncPolicy, TsdbOptions};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub tenancy: TenancyConfig,
    pub auth: AuthConfig,
    pub distributor: DistributorConfig,
    pub limits: Limits,
    pub runtime_config: RuntimeConfigConfig,
    pub querier: QuerierConfig,
    pub usage: UsageConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub http_listen_address: String,
    pub log_level: String,
    pub tls: TlsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_listen_address: "127.0.0.1:8080".into(),
            log_level: "info".into(),
            tls: TlsConfig::default(),
        }
    }
}

/// HTTPS; off while `cert_file` is empty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert_file: String,
    pub key_file: String,
    pub client_ca_file: String,
    pub reload_interval: PromDuration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: String::new(),
            key_file: String::new(),
            client_ca_file: String::new(),
            reload_interval: PromDuration(5_000),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub users_file: String,
    pub user_as_tenant: bool,
    pub reload_interval: PromDuration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let auth = AuthOptions::default();
        AuthConfig {
            mode: auth.mode,
            users_file: String::new(),
            user_as_tenant: auth.user_as_tenant,
            reload_interval: PromDuration(auth.reload_interval.as_millis() as i64),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalFsync {
    Never,
    Always,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub wal_fsync: WalFsync,
    pub wal_segment_size_bytes: u64,
    pub max_exemplars_per_tenant: usize,
    pub retention_period: PromDuration,
    pub maintenance_interval: PromDuration,
    pub tenant_deletion_delay: PromDuration,
    pub bucket: BucketConfig,
}

/// Where blocks are uploaded (Mimir's `blocks_storage` backends).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BucketConfig {
    pub backend: Backend,
    pub filesystem: FilesystemBucketConfig,
    pub s3: S3BucketConfig,
    pub gcs: GcsBucketConfig,
    pub azure: AzureBucketConfig,
}

impl Default for BucketConfig {
    fn default() -> Self {
        BucketConfig {
            backend: Backend::Filesystem,
            filesystem: FilesystemBucketConfig::default(),
            s3: S3BucketConfig::default(),
            gcs: GcsBucketConfig::default(),
            azure: AzureBucketConfig::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    None,
    Filesystem,
    S3,
    Gcs,
    Azure,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemBucketConfig {
    pub dir: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3BucketConfig {
    pub endpoint: String,
    pub region: String,
    pub bucket_name: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub insecure: bool,
    pub bucket_lookup_type: BucketLookup,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BucketLookup {
    #[default]
    Path,
    VirtualHosted,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcsBucketConfig {
    pub bucket_name: String,
    pub service_account_path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureBucketConfig {
    pub account_name: String,
    pub account_key: String,
    pub container_name: String,
    pub endpoint: String,
}

impl BucketConfig {
    /// The tsdb's backend; a relative or empty filesystem dir is resolved
    /// against `data_dir` (empty: `<data_dir>/bucket`).
    pub fn backend(&self, data_dir: &Path) -> Option<BucketBackend> {
        Some(match self.backend {
            Backend::None => return None,
            Backend::Filesystem => BucketBackend::Filesystem {
                dir: if self.filesystem.dir.is_empty() {
                    data_dir.join("bucket")
                } else {
                    PathBuf::from(&self.filesystem.dir)
                },
            },
            Backend::S3 => BucketBackend::S3(S3Options {
                bucket_name: self.s3.bucket_name.clone(),
                endpoint: self.s3.endpoint.clone(),
                region: self.s3.region.clone(),
                access_key_id: self.s3.access_key_id.clone(),
                secret_access_key: Secret(self.s3.secret_access_key.clone()),
                allow_http: self.s3.insecure,
                virtual_hosted_style: self.s3.bucket_lookup_type == BucketLookup::VirtualHosted,
            }),
            Backend::Gcs => BucketBackend::Gcs(GcsOptions {
                bucket_name: self.gcs.bucket_name.clone(),
                service_account_path: self.gcs.service_account_path.clone(),
            }),
            Backend::Azure => BucketBackend::Azure(AzureOptions {
                account_name: self.azure.account_name.clone(),
                account_key: Secret(self.azure.account_key.clone()),
                container_name: self.azure.container_name.clone(),
                endpoint: self.azure.endpoint.clone(),
            }),
        })
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        let tsdb = TsdbOptions::default();
        StorageConfig {
            path: PathBuf::from("./data"),
            wal_fsync: WalFsync::Never,
            wal_segment_size_bytes: tsdb.wal_segment_size,
            max_exemplars_per_tenant: tsdb.max_exemplars,
            retention_period: PromDuration(tsdb.retention.as_millis() as i64),
            maintenance_interval: PromDuration(tsdb.maintenance_interval.as_millis() as i64),
            tenant_deletion_delay: PromDuration(tsdb.tenant_deletion_delay.as_millis() as i64),
            bucket: BucketConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancyConfig {
    pub multitenancy_enabled: bool,
    pub no_auth_tenant: String,
    pub federation_enabled: bool,
    pub federation_max_tenants: usize,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        let tenancy = TenancyOptions::default();
        TenancyConfig {
            multitenancy_enabled: tenancy.multitenancy_enabled,
            no_auth_tenant: tenancy.no_auth_tenant,
            federation_enabled: tenancy.federation_enabled,
            federation_max_tenants: tenancy.federation_max_tenants,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistributorConfig {
    pub max_recv_msg_size_bytes: usize,
    pub max_decompressed_msg_size_bytes: usize,
}

impl Default for DistributorConfig {
    fn default() -> Self {
        let decode = DecodeLimits::default();
        DistributorConfig {
            max_recv_msg_size_bytes: decode.max_compressed_bytes,
            max_decompressed_msg_size_bytes: decode.max_decompressed_bytes,
        }
    }
}

/// Mimir's `runtime_config:` block: the per-tenant overrides file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfigConfig {
    pub file: String,
    pub period: PromDuration,
}

impl Default for RuntimeConfigConfig {
    fn default() -> Self {
        RuntimeConfigConfig {
            file: String::new(),
            period: PromDuration(RuntimeConfigOptions::default().period.as_millis() as i64),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerierConfig {
    pub lookback_delta: PromDuration,
    pub timeout: PromDuration,
    pub max_samples: usize,
    pub max_concurrent: usize,
    pub max_outstanding_requests_per_tenant: usize,
}

impl Default for QuerierConfig {
    fn default() -> Self {
        let engine = EngineOptions::default();
        QuerierConfig {
            lookback_delta: PromDuration(engine.lookback_delta_ms),
            timeout: PromDuration(engine.default_timeout.as_millis() as i64),
            max_samples: engine.max_samples,
            max_concurrent: 0,
            max_outstanding_requests_per_tenant: SchedulerOptions::default()
                .max_outstanding_per_tenant,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    pub enabled: bool,
    pub record_interval: PromDuration,
    pub retention_period: PromDuration,
}

impl Default for UsageConfig {
    fn default() -> Self {
        let usage = UsageOptions::default();
        UsageConfig {
            enabled: usage.enabled,
            record_interval: PromDuration(usage.record_interval.as_millis() as i64),
            retention_period: PromDuration(usage.retention.as_millis() as i64),
        }
    }
}

/// One line of documentation per configuration key, in file order.
pub const FIELD_DOCS: &[(&str, &str)] = &[
    ("server", "HTTP server"),
    ("server.http_listen_address", "address and port of the HTTP API (flag --http.listen-address)"),
    ("server.log_level", "log filter: error, warn, info, debug, trace, or a tracing directive list"),
    ("server.tls", "HTTPS (rustls); off while cert_file is empty; HTTP/2 and HTTP/1.1 by ALPN"),
    ("server.tls.cert_file", "PEM certificate chain, server certificate first; reloaded when it changes"),
    ("server.tls.key_file", "PEM private key (PKCS#8, PKCS#1 or SEC1) of the certificate; reloaded when it changes"),
    ("server.tls.client_ca_file", "PEM CA certificates; when set, clients must present a certificate they signed (mTLS)"),
    ("server.tls.reload_interval", "how often the certificate, key and CA files are checked for changes"),
    ("storage", "local storage"),
    ("storage.path", "data directory; each tenant's database lives in <path>/tenants/<tenant>/"),
    ("storage.wal_fsync", "never: WAL written to the OS before a write is acknowledged (survives a crash of cairn); always: also fsynced (survives power loss)"),
    ("storage.wal_segment_size_bytes", "size at which a WAL segment file is closed and a new one started"),
    ("storage.max_exemplars_per_tenant", "exemplars kept in memory per tenant (oldest dropped first)"),
    ("storage.retention_period", "blocks whose newest sample is older than this are deleted whole; 0s keeps data forever"),
    ("storage.maintenance_interval", "how often each tenant cuts 2h blocks from the head, compacts them (2h, 12h, 24h), applies retention and uploads new blocks to the bucket"),
    ("storage.tenant_deletion_delay", "grace period between POST /compactor/delete_tenant and the removal of the tenant's data (Mimir's compactor.deletion-delay)"),
    ("storage.bucket", "object storage the blocks are uploaded to; local disk then acts as a cache (see README, Object storage)"),
    ("storage.bucket.backend", "none (local disk only), filesystem, s3, gcs or azure"),
    ("storage.bucket.filesystem", "backend filesystem: a local (or mounted) folder"),
    ("storage.bucket.filesystem.dir", "the folder; empty: <storage.path>/bucket"),
    ("storage.bucket.s3", "backend s3: Amazon S3 or an S3-compatible server; empty fields fall back to the AWS_* environment variables"),
    ("storage.bucket.s3.endpoint", "e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000"),
    ("storage.bucket.s3.region", "bucket region (AWS_REGION)"),
    ("storage.bucket.s3.bucket_name", "bucket name (AWS_BUCKET_NAME)"),
    ("storage.bucket.s3.access_key_id", "access key (AWS_ACCESS_KEY_ID)"),
    ("storage.bucket.s3.secret_access_key", "secret key (AWS_SECRET_ACCESS_KEY; prefer the variable to the file)"),
    ("storage.bucket.s3.insecure", "allow a plain http:// endpoint"),
    ("storage.bucket.s3.bucket_lookup_type", "path (endpoint/bucket/key, what S3-compatible servers expect) or virtual-hosted (bucket.endpoint/key)"),
    ("storage.bucket.gcs", "backend gcs: Google Cloud Storage; empty fields fall back to the GOOGLE_* variables and application default credentials"),
    ("storage.bucket.gcs.bucket_name", "bucket name"),
    ("storage.bucket.gcs.service_account_path", "service account JSON key file"),
    ("storage.bucket.azure", "backend azure: Azure Blob Storage; empty fields fall back to the AZURE_* environment variables"),
    ("storage.bucket.azure.account_name", "storage account name"),
    ("storage.bucket.azure.account_key", "storage account key (prefer AZURE_STORAGE_ACCOUNT_KEY to the file)"),
    ("storage.bucket.azure.container_name", "container name"),
    ("storage.bucket.azure.endpoint", "custom endpoint (e.g. an emulator); empty for Azure's own"),
    ("tenancy", "how requests map to tenants"),
    ("tenancy.multitenancy_enabled", "true: tenant from the X-Scope-OrgID header; false: every request belongs to no_auth_tenant"),
    ("tenancy.no_auth_tenant", "tenant used when multi-tenancy is disabled"),
    ("tenancy.federation_enabled", "reads may name several tenants as X-Scope-OrgID: a|b; each series then carries __tenant_id__ (Mimir's tenant_federation.enabled)"),
    ("tenancy.federation_max_tenants", "most tenants one federated read may name; 0: no limit"),
    ("auth", "authentication (see docs/auth.md)"),
    ("auth.mode", "none: X-Scope-OrgID is trusted; basic: HTTP basic auth against users_file, whose users list the tenants they may read and write"),
    ("auth.users_file", "YAML users file with argon2id password hashes (cairn users add writes it); reloaded when it changes"),
    ("auth.user_as_tenant", "basic mode: a request without X-Scope-OrgID belongs to the tenant named like the user"),
    ("auth.reload_interval", "how often the users file is checked for changes"),
    ("distributor", "write path"),
    ("distributor.max_recv_msg_size_bytes", "largest compressed remote-write body accepted (larger: 413)"),
    ("distributor.max_decompressed_msg_size_bytes", "largest decompressed remote-write message, checked before decompressing (larger: 413)"),
    ("limits", "per-tenant limits (Mimir's key names and defaults); every tenant's unless runtime_config.file overrides them; 0 disables a limit"),
    ("limits.ingestion_rate", "samples, exemplars and metadata entries per second a tenant may push (token bucket refill); above it: 429"),
    ("limits.ingestion_burst_size", "token bucket size: most items accepted at once (also the largest request)"),
    ("limits.max_global_series_per_user", "most in-memory series per tenant; new series beyond it are refused"),
    ("limits.max_global_series_per_metric", "most in-memory series per metric name"),
    ("limits.max_label_names_per_series", "most labels (the metric name included) a series may have"),
    ("limits.max_label_name_length", "longest label name accepted, in bytes"),
    ("limits.max_label_value_length", "longest label value (and metric name) accepted, in bytes"),
    ("limits.creation_grace_period", "how far in the future a sample timestamp may be"),
    ("limits.past_grace_period", "how far in the past a sample timestamp may be; 0s: no limit"),
    ("limits.out_of_order_time_window", "how far behind the tenant's newest sample (the head's max time, not the series') a sample older than its series' newest is still accepted, as Mimir/Prometheus out-of-order ingestion; 0s: refused as sample_out_of_order. Also widens past_grace_period's bound (as in Mimir)"),
    ("limits.max_fetched_series_per_query", "most distinct series one query may read"),
    ("limits.max_fetched_chunk_bytes_per_query", "most chunk bytes one query may read"),
    ("limits.max_query_lookback", "how far back queries may look; an earlier start is clamped"),
    ("limits.max_partial_query_length", "longest time range one query's selectors may cover"),
    ("limits.max_total_query_length", "longest end - start of a range query"),
    ("limits.max_query_parallelism", "most queries of one tenant evaluated at once"),
    ("limits.query_timeout", "per-tenant query timeout; 0s: querier.timeout"),
    ("limits.compactor_blocks_retention_period", "per-tenant retention; 0s: storage.retention_period"),
    ("limits.cost_attribution_labels", "comma-separated label names usage is attributed to"),
    ("limits.max_cost_attribution_cardinality", "most distinct attribution label-value combinations tracked per tenant"),
    ("runtime_config", "per-tenant overrides file (Mimir's shape: overrides: {tenant: {limit: value}})"),
    ("runtime_config.file", "YAML overrides file; empty: no overrides. Re-read every period; a broken file keeps the limits in force"),
    ("runtime_config.period", "how often the overrides file is re-read"),
    ("querier", "PromQL evaluation"),
    ("querier.lookback_delta", "how far back an instant selector looks for the latest sample"),
    ("querier.timeout", "query timeout when the request sets none; time waiting in the query queue counts against it"),
    ("querier.max_samples", "most samples one query may hold in memory"),
    ("querier.max_concurrent", "query worker threads: storage reads evaluated at once across all tenants; 0: CPU cores + 1. One tenant may use all but one"),
    ("querier.max_outstanding_requests_per_tenant", "reads one tenant may have waiting for a worker; more get 429 (Mimir's query_scheduler.max_outstanding_requests_per_tenant)"),
    ("usage", "tenant usage accounting, recorded into the internal tenant __cairn_usage__ (see docs/usage.md)"),
    ("usage.enabled", "count and record per-tenant usage; GET /api/v1/usage reports it"),
    ("usage.record_interval", "how often usage counters are written to __cairn_usage__ (and once more at graceful shutdown)"),
    ("usage.retention_period", "how long usage records are kept; 0s keeps them forever"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses YAML; an empty document is the defaults.
    pub fn parse(text: &str) -> Result<Config, serde_yaml::Error> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml::from_str(text)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self
            .server
            .http_listen_address
            .parse::<SocketAddr>()
            .is_err()
        {
            return invalid(format!(
                "server.http_listen_address {:?} is not an IP:port address",
                self.server.http_listen_address
            ));
        }
        if self.distributor.max_recv_msg_size_bytes == 0
            || self.distributor.max_decompressed_msg_size_bytes == 0
        {
            return invalid("distributor message size limits must be positive".into());
        }
        if self.storage.wal_segment_size_bytes < 64 * 1024 {
            return invalid("storage.wal_segment_size_bytes must be at least 65536".into());
        }
        if self.storage.retention_period.0 < 0 || self.storage.maintenance_interval.0 <= 0 {
            return invalid(
                "storage.retention_period must not be negative and storage.maintenance_interval must be positive"
                    .into(),
            );
        }
        if self.usage.record_interval.0 < 1000 || self.usage.retention_period.0 < 0 {
            return invalid(
                "usage.record_interval must be at least 1s and usage.retention_period must not be negative"
                    .into(),
            );
        }
        if self.storage.tenant_deletion_delay.0 < 0 {
            return invalid("storage.tenant_deletion_delay must not be negative".into());
        }
        if self.querier.lookback_delta.0 <= 0 || self.querier.timeout.0 <= 0 {
            return invalid("querier.lookback_delta and querier.timeout must be positive".into());
        }
        if self.querier.max_outstanding_requests_per_tenant == 0 {
            return invalid("querier.max_outstanding_requests_per_tenant must be positive".into());
        }
        if self.auth.mode == AuthMode::Basic && self.auth.users_file.is_empty() {
            return invalid("auth.mode basic needs auth.users_file".into());
        }
        if self.auth.reload_interval.0 <= 0 || self.server.tls.reload_interval.0 <= 0 {
            return invalid(
                "auth.reload_interval and server.tls.reload_interval must be positive".into(),
            );
        }
        if self.server.tls.cert_file.is_empty() != self.server.tls.key_file.is_empty() {
            return invalid("server.tls.cert_file and server.tls.key_file go together".into());
        }
        if self.server.tls.cert_file.is_empty() && !self.server.tls.client_ca_file.is_empty() {
            return invalid("server.tls.client_ca_file needs server.tls.cert_file".into());
        }
        self.limits
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("limits: {e}")))?;
        if self.runtime_config.period.0 <= 0 {
            return invalid("runtime_config.period must be positive".into());
        }
        if !self.tenancy.multitenancy_enabled {
            cairn_model::TenantId::new(&self.tenancy.no_auth_tenant)
                .map_err(|e| ConfigError::Invalid(format!("tenancy.no_auth_tenant: {e}")))?;
        }
        Ok(())
    }

    /// What the HTTP layer needs, resolved from this configuration.
    pub fn server_options(&self) -> Result<ServerOptions, ConfigError> {
        let listen_address = self
            .server
            .http_listen_address
            .parse()
            .map_err(|e| ConfigError::Invalid(format!("server.http_listen_address: {e}")))?;
        Ok(ServerOptions {
            listen_address,
            data_dir: self.storage.path.clone(),
            tsdb: TsdbOptions {
                fsync: match self.storage.wal_fsync {
                    WalFsync::Never => FsyncPolicy::Never,
                    WalFsync::Always => FsyncPolicy::Always,
                },
                wal_segment_size: self.storage.wal_segment_size_bytes,
                max_exemplars: self.storage.max_exemplars_per_tenant,
                retention: std::time::Duration::from_millis(self.storage.retention_period.0 as u64),
                maintenance_interval: std::time::Duration::from_millis(
                    self.storage.maintenance_interval.0 as u64,
                ),
                tenant_deletion_delay: std::time::Duration::from_millis(
                    self.storage.tenant_deletion_delay.0 as u64,
                ),
                bucket: self.storage.bucket.backend(&self.storage.path),
                ..TsdbOptions::default()
            },
            tenancy: TenancyOptions {
                multitenancy_enabled: self.tenancy.multitenancy_enabled,
                no_auth_tenant: self.tenancy.no_auth_tenant.clone(),
                federation_enabled: self.tenancy.federation_enabled,
                federation_max_tenants: self.tenancy.federation_max_tenants,
            },
            auth: AuthOptions {
                mode: self.auth.mode,
                users_file: non_empty_path(&self.auth.users_file),
                user_as_tenant: self.auth.user_as_tenant,
                reload_interval: std::time::Duration::from_millis(
                    self.auth.reload_interval.0 as u64,
                ),
            },
            tls: non_empty_path(&self.server.tls.cert_file).map(|cert_file| TlsOptions {
                cert_file,
                key_file: PathBuf::from(&self.server.tls.key_file),
                client_ca_file: non_empty_path(&self.server.tls.client_ca_file),
                reload_interval: std::time::Duration::from_millis(
                    self.server.tls.reload_interval.0 as u64,
                ),
            }),
            max_write_body_bytes: self.distributor.max_recv_msg_size_bytes,
            decode_limits: DecodeLimits {
                max_compressed_bytes: self.distributor.max_recv_msg_size_bytes,
                max_decompressed_bytes: self.distributor.max_decompressed_msg_size_bytes,
            },
            limits: self.limits.clone(),
            runtime_config: RuntimeConfigOptions {
                file: non_empty_path(&self.runtime_config.file),
                period: self.runtime_config.period.as_std(),
            },
            engine: EngineOptions {
                lookback_delta_ms: self.querier.lookback_delta.0,
                max_samples: self.querier.max_samples,
                default_timeout: std::time::Duration::from_millis(self.querier.timeout.0 as u64),
            },
            scheduler: SchedulerOptions {
                max_concurrent: match self.querier.max_concurrent {
                    0 => SchedulerOptions::default_max_concurrent(),
                    n => n,
                },
                max_outstanding_per_tenant: self.querier.max_outstanding_requests_per_tenant,
            },
            usage: UsageOptions {
                enabled: self.usage.enabled,
                record_interval: std::time::Duration::from_millis(
                    self.usage.record_interval.0 as u64,
                ),
                retention: std::time::Duration::from_millis(self.usage.retention_period.0 as u64),
            },
        })
    }
}

fn non_empty_path(text: &str) -> Option<PathBuf> {
    (!text.is_empty()).then(|| PathBuf::from(text))
}

/// The default configuration as YAML, each field preceded by its comment.
pub fn defaults_yaml() -> String {
    let value = serde_yaml::to_value(Config::default()).expect("the default config serializes");
    let mut out = String::from(
        "# Cairn's default configuration (`cairn config defaults`).\n# Every key is optional; unknown keys are an error.\n",
    );
    write_commented(&mut out, &value, "", 0);
    out
}

fn write_commented(out: &mut String, value: &serde_yaml::Value, path: &str, depth: usize) {
    let serde_yaml::Value::Mapping(map) = value else {
        return;
    };
    let indent = "  ".repeat(depth);
    for (key, child) in map {
        let key = key.as_str().unwrap_or_default();
        let child_path = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        if let Some((_, doc)) = FIELD_DOCS.iter().find(|(p, _)| *p == child_path) {
            out.push_str(&format!("{indent}# {doc}\n"));
        }
        match child {
            serde_yaml::Value::Mapping(_) => {
                out.push_str(&format!("{indent}{key}:\n"));
                write_commented(out, child, &child_path, depth + 1);
            }
            scalar => {
                let text = serde_yaml::to_string(scalar).unwrap_or_default();
                out.push_str(&format!("{indent}{key}: {}\n", text.trim_end()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_paths(value: &serde_yaml::Value, path: &str, out: &mut Vec<String>) {
        if let serde_yaml::Value::Mapping(map) = value {
            for (key, child) in map {
                let key = key.as_str().unwrap();
                let child_path = if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                };
                out.push(child_path.clone());
                leaf_paths(child, &child_path, out);
            }
        }
    }

    #[test]
    fn every_config_key_is_documented_and_every_doc_names_a_key() {
        let value = serde_yaml::to_value(Config::default()).unwrap();
        let mut paths = Vec::new();
        leaf_paths(&value, "", &mut paths);
        let documented: Vec<String> = FIELD_DOCS.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(paths, documented);
    }

    #[test]
    fn printed_defaults_parse_back_to_the_defaults() {
        let text = defaults_yaml();
        assert!(text.contains("http_listen_address: 127.0.0.1:8080"));
        assert_eq!(Config::parse(&text).unwrap(), Config::default());
        Config::default().validate().unwrap();
    }

    #[test]
    fn an_unknown_key_is_an_error_that_names_it() {
        let err = Config::parse("server:\n  http_listen_adress: 127.0.0.1:9\n").unwrap_err();
        assert!(err.to_string().contains("http_listen_adress"), "{err}");
        let err = Config::parse("storage_path: x\n").unwrap_err();
        assert!(err.to_string().contains("storage_path"), "{err}");
    }

    #[test]
    fn basic_auth_needs_a_users_file_and_tls_needs_cert_and_key() {
        let config = Config::parse("auth:\n  mode: basic\n").unwrap();
        assert!(config.validate().is_err());
        let config =
            Config::parse("auth:\n  mode: basic\n  users_file: u.yaml\n  user_as_tenant: true\n")
                .unwrap();
        config.validate().unwrap();
        assert!(config.server_options().unwrap().auth.user_as_tenant);
        let config = Config::parse("server:\n  tls:\n    cert_file: c.pem\n").unwrap();
        assert!(config.validate().is_err());
        assert!(Config::parse("auth:\n  mode: digest\n").is_err());
    }

    #[test]
    fn bucket_backends_resolve() {
        let data = Path::new("/data");
        let default = Config::default().storage.bucket.backend(data);
        assert_eq!(
            default,
            Some(BucketBackend::Filesystem {
                dir: PathBuf::from("/data/bucket")
            })
        );
        let config = Config::parse(
            "storage:\n  bucket:\n    backend: s3\n    s3:\n      endpoint: http://127.0.0.1:9000\n      bucket_name: blocks\n      secret_access_key: s3cr3t\n      insecure: true\n",
        )
        .unwrap();
        let Some(BucketBackend::S3(s3)) = config.storage.bucket.backend(data) else {
            panic!("not s3");
        };
        assert_eq!(s3.bucket_name, "blocks");
        assert!(s3.allow_http && !s3.virtual_hosted_style);
        assert!(
            !format!("{s3:?}").contains("s3cr3t"),
            "secrets stay out of logs"
        );
        let none = Config::parse("storage:\n  bucket:\n    backend: none\n").unwrap();
        assert_eq!(none.storage.bucket.backend(data), None);
        assert!(Config::parse("storage:\n  bucket:\n    backend: swift\n").is_err());
    }

    #[test]
    fn partial_files_keep_other_defaults_and_durations_parse() {
        let config = Config::parse("limits:\n  creation_grace_period: 1h30m\n").unwrap();
        assert_eq!(config.limits.creation_grace_period, PromDuration(5_400_000));
        assert_eq!(config.server, ServerConfig::default());
        assert!(Config::parse("querier:\n  timeout: soon\n").is_err());
    }
}
