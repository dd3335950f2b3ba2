//! Per-tenant overrides from the runtime config file, re-read periodically.
//!
//! The file has Mimir's shape (`docs/sources/mimir/configure/about-runtime-configuration.md`):
//!
//! ```yaml
//! overrides:
//!   tenant-a:
//!     ingestion_rate: 50000
//! ```
//!
//! A tenant's keys are laid over the defaults (the config file's `limits:`);
//! unset keys inherit them. The file is re-read every `period`; when its
//! bytes changed it is parsed whole, and a file that cannot be read or
//! parsed (unknown key, bad value, invalid tenant ID) keeps the limits in
//! force, logs an error and sets `cairn_runtime_config_last_reload_successful`
//! to 0 (Mimir: `cortex_runtime_config_last_reload_successful`). At start-up
//! a broken file is fatal, as in Mimir. The numeric limits in force are
//! exported as `cairn_limits_defaults{limit_name}` and
//! `cairn_limits_overrides{limit_name,tenant}` (Mimir's overrides-exporter).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_model::TenantId;
use parking_lot::{Mutex, RwLock};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Limits;

/// Where the runtime config file is and how often it is re-read.
#[derive(Clone, Debug)]
pub struct RuntimeConfigOptions {
    /// No file: every tenant has the default limits.
    pub file: Option<PathBuf>,
    pub period: Duration,
}

impl Default for RuntimeConfigOptions {
    fn default() -> Self {
        RuntimeConfigOptions {
            file: None,
            period: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeConfigError {
    #[error("cannot read runtime config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid runtime config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The runtime config file as written. Only `overrides` is understood.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeFile {
    #[serde(default)]
    overrides: Option<BTreeMap<String, serde_yaml::Value>>,
}

/// What one successful load produced.
struct Loaded {
    /// Full limits per overridden tenant.
    tenants: HashMap<String, Arc<Limits>>,
    /// SHA-256 of the file's bytes (hex); empty without a file.
    hash: String,
}

/// The limits in force for every tenant: defaults plus runtime overrides.
pub struct Overrides {
    defaults: Arc<Limits>,
    options: RuntimeConfigOptions,
    loaded: RwLock<Arc<Loaded>>,
    /// The bytes last attempted, so an unchanged file is not re-parsed and a
    /// broken file is logged once.
    last_bytes: Mutex<Option<Vec<u8>>>,
    last_reload_ok: AtomicBool,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("file", &self.options.file)
            .field("tenants", &self.loaded.read().tenants.len())
            .finish()
    }
}

impl Overrides {
    /// Loads the runtime config file if one is configured; a file that cannot
    /// be read or parsed is an error here (only later reloads keep the old).
    pub fn new(
        defaults: Limits,
        options: RuntimeConfigOptions,
    ) -> Result<Overrides, RuntimeConfigError> {
        let defaults = Arc::new(defaults);
        let mut last_bytes = None;
        let loaded = match &options.file {
            None => Loaded {
                tenants: HashMap::new(),
                hash: String::new(),
            },
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| RuntimeConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let loaded = parse_runtime_config(&bytes, &defaults).map_err(|message| {
                    RuntimeConfigError::Parse {
                        path: path.clone(),
                        message,
                    }
                })?;
                tracing::info!(path = %path.display(), tenants = loaded.tenants.len(), "runtime config loaded");
                last_bytes = Some(bytes);
                loaded
            }
        };
        Ok(Overrides {
            defaults,
            options,
            loaded: RwLock::new(Arc::new(loaded)),
            last_bytes: Mutex::new(last_bytes),
            last_reload_ok: AtomicBool::new(true),
        })
    }

    /// Only defaults, no file (tests and tools).
    pub fn fixed(defaults: Limits) -> Overrides {
        Overrides::new(defaults, RuntimeConfigOptions::default())
            .expect("no file to read, nothing can fail")
    }

    /// The limits in force for `tenant` (a short read lock and an `Arc` clone).
    pub fn for_tenant(&self, tenant: &TenantId) -> Arc<Limits> {
        self.loaded
            .read()
            .tenants
            .get(tenant.as_str())
            .cloned()
            .unwrap_or_else(|| Arc::clone(&self.defaults))
    }

    /// The config file's `limits:`.
    pub fn defaults(&self) -> &Arc<Limits> {
        &self.defaults
    }

    /// Every tenant with an override, sorted, with its full limits.
    pub fn overridden(&self) -> BTreeMap<String, Arc<Limits>> {
        let loaded = Arc::clone(&self.loaded.read());
        loaded
            .tenants
            .iter()
            .map(|(tenant, limits)| (tenant.clone(), Arc::clone(limits)))
            .collect()
    }

    /// Whether the last reload attempt succeeded.
    pub fn last_reload_successful(&self) -> bool {
        self.last_reload_ok.load(Ordering::Relaxed)
    }

    /// SHA-256 (hex) of the file in force; empty without a file.
    pub fn hash(&self) -> String {
        self.loaded.read().hash.clone()
    }

    /// Re-reads the file if its bytes changed. Returns true when new limits
    /// took effect. A file that cannot be read or parsed keeps the limits in
    /// force, logs an error (once per distinct content) and marks the reload
    /// failed.
    pub fn reload_if_changed(&self) -> bool {
        let Some(path) = &self.options.file else {
            return false;
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) => {
                let mut last = self.last_bytes.lock();
                if last.is_some() || self.last_reload_successful() {
                    tracing::error!(path = %path.display(), %error, "cannot read runtime config file, keeping the limits in force");
                }
                *last = None;
                self.last_reload_ok.store(false, Ordering::Relaxed);
                return false;
            }
        };
        let mut last = self.last_bytes.lock();
        if last.as_deref() == Some(bytes.as_slice()) {
            return false;
        }
        let changed = match parse_runtime_config(&bytes, &self.defaults) {
            Ok(loaded) => {
                tracing::info!(path = %path.display(), tenants = loaded.tenants.len(), "runtime config reloaded");
                *self.loaded.write() = Arc::new(loaded);
                self.last_reload_ok.store(true, Ordering::Relaxed);
                true
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "invalid runtime config file, keeping the limits in force");
                self.last_reload_ok.store(false, Ordering::Relaxed);
                false
            }
        };
        *last = Some(bytes);
        changed
    }

    /// Polls the file every `period` until the task is aborted; `on_change`
    /// runs (on the blocking pool) after each reload that took effect.
    pub(crate) fn spawn_reloader(
        self: &Arc<Self>,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.options.file.as_ref()?;
        let this = Arc::clone(self);
        let on_change = Arc::new(on_change);
        Some(tokio::spawn(async move {
            let mut interval = tokio::time::interval(this.options.period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            loop {
                interval.tick().await;
                let reloader = Arc::clone(&this);
                let on_change = Arc::clone(&on_change);
                let _ = tokio::task::spawn_blocking(move || {
                    if reloader.reload_if_changed() {
                        on_change();
                    }
                })
                .await;
            }
        }))
    }

    /// `GET /runtime_config` body: the overrides in force as YAML, each
    /// tenant with its full limits, or with `diff` only the keys that differ
    /// from the defaults (Mimir's `?mode=diff`).
    pub fn to_yaml(&self, diff: bool) -> String {
        let defaults = limits_mapping(&self.defaults);
        let mut overrides = serde_yaml::Mapping::new();
        for (tenant, limits) in self.overridden() {
            let mut full = limits_mapping(&limits);
            if diff {
                full.retain(|key, value| defaults.get(key) != Some(value));
            }
            overrides.insert(tenant.into(), serde_yaml::Value::Mapping(full));
        }
        let mut root = serde_yaml::Mapping::new();
        root.insert("overrides".into(), serde_yaml::Value::Mapping(overrides));
        serde_yaml::to_string(&root).unwrap_or_default()
    }

    /// `cairn_runtime_config_*` metrics, read at scrape time.
    pub fn collector(self: &Arc<Self>) -> Box<dyn Collector> {
        Box::new(RuntimeConfigCollector {
            overrides: Arc::clone(self),
        })
    }
}

fn limits_mapping(limits: &Limits) -> serde_yaml::Mapping {
    match serde_yaml::to_value(limits) {
        Ok(serde_yaml::Value::Mapping(map)) => map,
        _ => serde_yaml::Mapping::new(),
    }
}

/// Parses the file and lays each tenant's keys over `defaults`. Errors name
/// the tenant and the offending key.
fn parse_runtime_config(bytes: &[u8], defaults: &Limits) -> Result<Loaded, String> {
    let hash = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not UTF-8".to_string())?;
    // An empty file (or only comments) means no overrides, as in Mimir.
    let file: RuntimeFile = match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(serde_yaml::Value::Null) => RuntimeFile { overrides: None },
        Ok(_) => serde_yaml::from_str(text).map_err(|e| e.to_string())?,
        Err(e) => return Err(e.to_string()),
    };
    let base = limits_mapping(defaults);
    let mut tenants = HashMap::new();
    for (tenant, value) in file.overrides.unwrap_or_default() {
        TenantId::new(&tenant).map_err(|e| format!("overrides: tenant {tenant:?}: {e}"))?;
        let mut merged = base.clone();
        match value {
            serde_yaml::Value::Null => {}
            serde_yaml::Value::Mapping(keys) => {
                for (key, value) in keys {
                    merged.insert(key, value);
                }
            }
            _ => {
                return Err(format!(
                    "overrides: tenant {tenant:?}: expected a map of limits"
                ))
            }
        }
        let limits: Limits = serde_yaml::from_value(serde_yaml::Value::Mapping(merged))
            .map_err(|e| format!("overrides: tenant {tenant:?}: {e}"))?;
        limits
            .validate()
            .map_err(|e| format!("overrides: tenant {tenant:?}: {e}"))?;
        tenants.insert(tenant, Arc::new(limits));
    }
    Ok(Loaded { tenants, hash })
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HashLabels {
    sha256: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DefaultLimitLabels {
    limit_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OverrideLimitLabels {
    limit_name: String,
    tenant: String,
}

/// The numeric limits of `limits` by key, durations in seconds (what
/// Mimir's overrides-exporter publishes); text limits are left out.
fn numeric_limits(limits: &Limits) -> Vec<(String, f64)> {
    limits_mapping(limits)
        .into_iter()
        .filter_map(|(key, value)| {
            let key = key.as_str()?.to_string();
            let number = match &value {
                serde_yaml::Value::Number(n) => n.as_f64()?,
                // Durations serialize as Prometheus duration strings.
                serde_yaml::Value::String(text) => {
                    cairn_model::parse_duration_ms(text).ok()? as f64 / 1000.0
                }
                _ => return None,
            };
            Some((key, number))
        })
        .collect()
}

struct RuntimeConfigCollector {
    overrides: Arc<Overrides>,
}

impl std::fmt::Debug for RuntimeConfigCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfigCollector").finish()
    }
}

impl RuntimeConfigCollector {
    /// `cairn_runtime_config_last_reload_successful` and `_hash`.
    fn encode_reload_state(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ok = ConstGauge::new(i64::from(self.overrides.last_reload_successful()));
        ok.encode(encoder.encode_descriptor(
            "cairn_runtime_config_last_reload_successful",
            "Whether the last runtime config (per-tenant overrides) reload attempt succeeded (1) or kept the previous limits (0)",
            None,
            ok.metric_type(),
        )?)?;
        let hash = ConstGauge::new(1i64);
        let mut family = encoder.encode_descriptor(
            "cairn_runtime_config_hash",
            "SHA-256 of the runtime config file in force, as a label; always 1",
            None,
            hash.metric_type(),
        )?;
        hash.encode(family.encode_family(&HashLabels {
            sha256: self.overrides.hash(),
        })?)?;
        Ok(())
    }
}

impl Collector for RuntimeConfigCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.overrides.options.file.is_some() {
            self.encode_reload_state(&mut encoder)?;
        }
        let gauge = ConstGauge::new(0.0f64);
        let mut family = encoder.encode_descriptor(
            "cairn_limits_defaults",
            "Default per-tenant limits (the config's limits:), durations in seconds",
            None,
            gauge.metric_type(),
        )?;
        for (limit_name, value) in numeric_limits(&self.overrides.defaults) {
            ConstGauge::new(value)
                .encode(family.encode_family(&DefaultLimitLabels { limit_name })?)?;
        }
        let overridden = self.overrides.overridden();
        if overridden.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "cairn_limits_overrides",
            "Limits of tenants with runtime overrides, durations in seconds",
            None,
            gauge.metric_type(),
        )?;
        for (tenant, limits) in overridden {
            for (limit_name, value) in numeric_limits(&limits) {
                ConstGauge::new(value).encode(family.encode_family(&OverrideLimitLabels {
                    limit_name,
                    tenant: tenant.clone(),
                })?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Limits {
        Limits {
            ingestion_rate: 100.0,
            ..Limits::default()
        }
    }

    fn tenant(name: &str) -> TenantId {
        TenantId::new(name).unwrap()
    }

    #[test]
    fn overrides_lay_over_the_defaults_and_unset_keys_inherit() {
        let text =
            "overrides:\n  a:\n    ingestion_rate: 50000\n    creation_grace_period: 1h\n  b:\n";
        let loaded = parse_runtime_config(text.as_bytes(), &defaults()).unwrap();
        let a = &loaded.tenants["a"];
        assert_eq!(a.ingestion_rate, 50000.0);
        assert_eq!(a.creation_grace_period.0, 3_600_000);
        assert_eq!(a.ingestion_burst_size, 200_000);
        assert_eq!(a.max_global_series_per_user, 150_000);
        assert_eq!(*loaded.tenants["b"], defaults());
        assert_eq!(loaded.hash.len(), 64);
    }

    #[test]
    fn empty_files_mean_no_overrides_and_bad_files_name_the_problem() {
        for empty in ["", "# nothing\n", "overrides:\n", "overrides: {}\n"] {
            let loaded = parse_runtime_config(empty.as_bytes(), &defaults()).unwrap();
            assert!(loaded.tenants.is_empty(), "{empty:?}");
        }
        for (text, needle) in [
            ("overrides:\n  a:\n    ingestion_rat: 5\n", "ingestion_rat"),
            ("overrides:\n  a:\n    ingestion_rate: fast\n", "\"a\""),
            (
                "overrides:\n  a:\n    past_grace_period: 5 minutes\n",
                "duration",
            ),
            (
                "overrides:\n  a:\n    ingestion_rate: -1\n",
                "ingestion_rate",
            ),
            ("overrides:\n  ../x:\n    ingestion_rate: 1\n", "../x"),
            ("overrides:\n  a: 5\n", "expected a map"),
            ("override:\n  a: {}\n", "override"),
            ("overrides: [\n", ""),
        ] {
            let err = parse_runtime_config(text.as_bytes(), &defaults())
                .err()
                .unwrap_or_else(|| panic!("{text:?} parsed"));
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_broken_file_keeps_the_previous_limits_and_a_fixed_one_applies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.yaml");
        std::fs::write(&path, "overrides:\n  a:\n    ingestion_rate: 5\n").unwrap();
        let overrides = Overrides::new(
            defaults(),
            RuntimeConfigOptions {
                file: Some(path.clone()),
                period: Duration::from_secs(10),
            },
        )
        .unwrap();
        assert_eq!(overrides.for_tenant(&tenant("a")).ingestion_rate, 5.0);
        assert_eq!(overrides.for_tenant(&tenant("z")).ingestion_rate, 100.0);
        assert!(!overrides.reload_if_changed(), "unchanged file");
        let first_hash = overrides.hash();

        std::fs::write(&path, "overrides:\n  a:\n    ingestion_rate: [\n").unwrap();
        assert!(!overrides.reload_if_changed());
        assert!(!overrides.last_reload_successful());
        assert_eq!(overrides.for_tenant(&tenant("a")).ingestion_rate, 5.0);
        assert_eq!(overrides.hash(), first_hash);

        std::fs::remove_file(&path).unwrap();
        assert!(!overrides.reload_if_changed());
        assert!(!overrides.last_reload_successful());
        assert_eq!(overrides.for_tenant(&tenant("a")).ingestion_rate, 5.0);

        std::fs::write(&path, "overrides:\n  a:\n    ingestion_rate: 7\n").unwrap();
        assert!(overrides.reload_if_changed());
        assert!(overrides.last_reload_successful());
        assert_eq!(overrides.for_tenant(&tenant("a")).ingestion_rate, 7.0);
        assert_ne!(overrides.hash(), first_hash);
    }

    #[test]
    fn a_broken_file_at_start_up_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.yaml");
        let options = RuntimeConfigOptions {
            file: Some(path.clone()),
            period: Duration::from_secs(10),
        };
        assert!(matches!(
            Overrides::new(defaults(), options.clone()),
            Err(RuntimeConfigError::Read { .. })
        ));
        std::fs::write(&path, "overrides:\n  a:\n    nope: 1\n").unwrap();
        assert!(matches!(
            Overrides::new(defaults(), options),
            Err(RuntimeConfigError::Parse { .. })
        ));
    }

    #[test]
    fn metrics_export_the_limits_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.yaml");
        std::fs::write(&path, "overrides:\n  a:\n    ingestion_rate: 5\n").unwrap();
        let overrides = Arc::new(
            Overrides::new(
                defaults(),
                RuntimeConfigOptions {
                    file: Some(path),
                    period: Duration::from_secs(10),
                },
            )
            .unwrap(),
        );
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(overrides.collector());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "cairn_runtime_config_last_reload_successful 1",
            "cairn_limits_defaults{limit_name=\"ingestion_rate\"} 100.0",
            "cairn_limits_defaults{limit_name=\"creation_grace_period\"} 600.0",
            "cairn_limits_overrides{limit_name=\"ingestion_rate\",tenant=\"a\"} 5.0",
            "cairn_limits_overrides{limit_name=\"max_global_series_per_user\",tenant=\"a\"} 150000.0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("cost_attribution_labels\""));
        assert!(text.contains(&format!(
            "cairn_runtime_config_hash{{sha256=\"{}\"}} 1",
            overrides.hash()
        )));
    }

    #[test]
    fn the_yaml_view_shows_full_limits_or_only_the_differences() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.yaml");
        std::fs::write(&path, "overrides:\n  a:\n    ingestion_rate: 5\n").unwrap();
        let overrides = Overrides::new(
            defaults(),
            RuntimeConfigOptions {
                file: Some(path),
                period: Duration::from_secs(10),
            },
        )
        .unwrap();
        let diff = overrides.to_yaml(true);
        assert_eq!(diff, "overrides:\n  a:\n    ingestion_rate: 5.0\n");
        let full = overrides.to_yaml(false);
        assert!(full.contains("ingestion_rate: 5.0"), "{full}");
        assert!(
            full.contains("max_global_series_per_user: 150000"),
            "{full}"
        );
        assert!(full.contains("creation_grace_period: 10m"), "{full}");
        assert_eq!(
            Overrides::fixed(defaults()).to_yaml(false),
            "overrides: {}\n"
        );
    }
}
