//! Per-tenant limits: what each tenant may send, store and query.
//!
//! [`Limits`] has Mimir's YAML key names and defaults
//! (`grafana/mimir: pkg/util/validation/limits.go`), so a Mimir `limits:`
//! block or runtime overrides file carries over. The config file's `limits:`
//! section is the default [`Limits`]; [`Overrides`] holds per-tenant
//! overrides read from the runtime config file and re-read periodically.
//! [`IngestionRateLimiter`] holds each tenant's token bucket; [`write`] has
//! the write-path checks and messages.

mod overrides;
pub mod query;
mod rate;
pub mod write;

pub use overrides::{Overrides, RuntimeConfigError, RuntimeConfigOptions};
pub use rate::{retry_after_seconds, IngestionRateLimiter};

use cairn_tsdb::{TenantStore, Tsdb};

use cairn_ingest::ValidationLimits;
use cairn_model::{parse_duration_ms, DisplayDuration};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One tenant's limits. Every key is optional in YAML; missing keys take the
/// defaults (the config file's `limits:` for overrides, Mimir's defaults for
/// the config file). 0 disables a limit unless its doc says otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Samples, exemplars and metadata entries per second (token bucket refill).
    pub ingestion_rate: f64,
    /// Token bucket size: most items one burst (and one request) may carry.
    pub ingestion_burst_size: u64,
    /// Most in-memory series of the tenant.
    pub max_global_series_per_user: u64,
    /// Most in-memory series per metric name.
    pub max_global_series_per_metric: u64,
    /// Most labels on one series, `__name__` included.
    pub max_label_names_per_series: usize,
    /// Longest label name, bytes.
    pub max_label_name_length: usize,
    /// Longest label value (and metric name), bytes.
    pub max_label_value_length: usize,
    /// How far in the future a sample may be.
    pub creation_grace_period: PromDuration,
    /// How far in the past (before now) a sample may be; 0 = no limit.
    pub past_grace_period: PromDuration,
    /// Out-of-order samples accepted within this window of the newest sample.
    pub out_of_order_time_window: PromDuration,
    /// Most distinct series one query may fetch.
    pub max_fetched_series_per_query: u64,
    /// Most chunk bytes one query may fetch.
    pub max_fetched_chunk_bytes_per_query: u64,
    /// Queries may not look further back than this (start is clamped).
    pub max_query_lookback: PromDuration,
    /// Longest time range of one query's selectors (Mimir: after splitting).
    pub max_partial_query_length: PromDuration,
    /// Longest `end - start` of a range query.
    pub max_total_query_length: PromDuration,
    /// Most queries of the tenant evaluated at once (Mimir: split/shard
    /// fan-out per query; Cairn uses it as per-tenant query concurrency).
    pub max_query_parallelism: usize,
    /// Query timeout for the tenant; 0 = the server's `querier.timeout`.
    pub query_timeout: PromDuration,
    /// Blocks older than this are deleted; 0 = `storage.retention_period`.
    pub compactor_blocks_retention_period: PromDuration,
    /// Comma-separated label names usage is attributed to (Mimir's
    /// `cost_attribution_labels`).
    pub cost_attribution_labels: String,
    /// Most distinct attribution label-value combinations tracked.
    pub max_cost_attribution_cardinality: usize,
}

impl Default for Limits {
    /// Mimir's defaults.
    fn default() -> Limits {
        let validation = ValidationLimits::default();
        Limits {
            ingestion_rate: 10_000.0,
            ingestion_burst_size: 200_000,
            max_global_series_per_user: 150_000,
            max_global_series_per_metric: 0,
            max_label_names_per_series: validation.max_label_names_per_series,
            max_label_name_length: validation.max_label_name_length,
            max_label_value_length: validation.max_label_value_length,
            creation_grace_period: PromDuration(validation.creation_grace_period_ms),
            past_grace_period: PromDuration(0),
            out_of_order_time_window: PromDuration(0),
            max_fetched_series_per_query: 0,
            max_fetched_chunk_bytes_per_query: 0,
            max_query_lookback: PromDuration(0),
            max_partial_query_length: PromDuration(0),
            max_total_query_length: PromDuration(0),
            max_query_parallelism: 14,
            query_timeout: PromDuration(0),
            compactor_blocks_retention_period: PromDuration(0),
            cost_attribution_labels: String::new(),
            // Mimir's `-validation.max-cost-attribution-cardinality` default
            // (2000 since Mimir 3.x; 5000 before).
            max_cost_attribution_cardinality: 2_000,
        }
    }
}

impl Limits {
    /// The write-path validation limits of this tenant.
    pub fn validation_limits(&self) -> ValidationLimits {
        ValidationLimits {
            max_label_name_length: self.max_label_name_length,
            max_label_value_length: self.max_label_value_length,
            max_label_names_per_series: self.max_label_names_per_series,
            creation_grace_period_ms: self.creation_grace_period.0,
            ..ValidationLimits::default()
        }
    }

    /// The tenant's retention: `compactor_blocks_retention_period`, or
    /// `storage_default` (the config's `storage.retention_period`) when 0.
    pub fn retention(&self, storage_default: std::time::Duration) -> std::time::Duration {
        if self.compactor_blocks_retention_period.0 > 0 {
            self.compactor_blocks_retention_period.as_std()
        } else {
            storage_default
        }
    }

    /// `cost_attribution_labels` split on commas, trimmed, empty parts dropped.
    pub fn cost_attribution_label_names(&self) -> Vec<String> {
        self.cost_attribution_labels
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Checks values no limit can mean (negative durations, a negative or
    /// non-finite rate).
    pub fn validate(&self) -> Result<(), String> {
        if !self.ingestion_rate.is_finite() || self.ingestion_rate < 0.0 {
            return Err(format!(
                "ingestion_rate must be a non-negative number, got {}",
                self.ingestion_rate
            ));
        }
        if self.ingestion_rate > 0.0 && self.ingestion_burst_size == 0 {
            return Err(
                "ingestion_burst_size must be positive while ingestion_rate is set (a burst of 0 refuses every request)"
                    .into(),
            );
        }
        for (name, value) in [
            ("creation_grace_period", self.creation_grace_period),
            ("past_grace_period", self.past_grace_period),
            ("out_of_order_time_window", self.out_of_order_time_window),
            ("max_query_lookback", self.max_query_lookback),
            ("max_partial_query_length", self.max_partial_query_length),
            ("max_total_query_length", self.max_total_query_length),
            ("query_timeout", self.query_timeout),
            (
                "compactor_blocks_retention_period",
                self.compactor_blocks_retention_period,
            ),
        ] {
            if value.0 < 0 {
                return Err(format!("{name} must not be negative"));
            }
        }
        Ok(())
    }
}

/// Sets `db`'s retention from the tenant's limits if it differs (one atomic
/// load when it does not); called when a tenant's database is used for a
/// write, so a database created after start-up gets its tenant's retention.
pub(crate) fn ensure_retention(db: &Tsdb, limits: &Limits, storage_default: std::time::Duration) {
    let wanted = limits.retention(storage_default);
    if db.retention() != wanted {
        db.set_retention(wanted);
    }
}

/// Applies every open tenant's retention (at start-up and after a reload).
pub(crate) fn apply_retention_all(
    store: &TenantStore,
    overrides: &Overrides,
    storage_default: std::time::Duration,
) {
    for (tenant, db) in store.tenants() {
        ensure_retention(&db, &overrides.for_tenant(&tenant), storage_default);
    }
}

/// A duration in Prometheus's notation (`10m`, `1h30m`), held in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PromDuration(pub i64);

impl PromDuration {
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&DisplayDuration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration_ms(&text).map(PromDuration).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} (use Prometheus notation such as 30s, 10m, 1h30m)"
            ))
        })
    }
}

/// `GET /runtime_config[?mode=diff]` (admin): the per-tenant overrides in
/// force as YAML, as Mimir's endpoint; `mode=diff` keeps only the keys that
/// differ from the defaults.
pub(crate) async fn runtime_config(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<crate::app::AppState>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<axum::response::Response, crate::error::ApiError> {
    use axum::response::IntoResponse;
    crate::auth::AuthContext::current().require_admin()?;
    let query = query.unwrap_or_default();
    let mut diff = false;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "mode" {
            diff = match value.as_ref() {
                "diff" => true,
                "" | "all" => false,
                other => {
                    return Err(crate::error::ApiError::invalid_param(
                        "mode",
                        format!("{other:?} is not one of diff, all"),
                    ))
                }
            };
        }
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/yaml; charset=utf-8")],
        state.overrides.to_yaml(diff),
    )
        .into_response())
}

/// `GET /api/v1/user_limits`: the calling tenant's main limits as JSON, in
/// the shape of Mimir's (experimental) endpoint of that name
/// (`pkg/util/validation/user_limits_handler.go`), limited to the limits
/// Cairn has.
pub(crate) async fn user_limits(
    axum::extract::State(state): axum::extract::State<std::sync::Arc<crate::app::AppState>>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, crate::error::ApiError> {
    use axum::response::IntoResponse;
    let tenant = crate::tenant::read_tenant(&crate::auth::AuthContext::current(), &headers)?;
    let limits = state.overrides.for_tenant(&tenant);
    let retention = limits.retention(state.options.tsdb.retention).as_secs();
    let body = format!(
        concat!(
            r#"{{"ingestion_rate":{},"ingestion_burst_size":{},"#,
            r#""max_global_series_per_user":{},"max_global_series_per_metric":{},"#,
            r#""max_fetched_series_per_query":{},"max_fetched_chunk_bytes_per_query":{},"#,
            r#""compactor_blocks_retention_period_seconds":{}}}"#
        ),
        limits.ingestion_rate,
        limits.ingestion_burst_size,
        limits.max_global_series_per_user,
        limits.max_global_series_per_metric,
        limits.max_fetched_series_per_query,
        limits.max_fetched_chunk_bytes_per_query,
        retention,
    );
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retention_comes_from_the_tenant_or_the_storage_default() {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(dir.path(), cairn_tsdb::TsdbOptions::default()).unwrap();
        let storage_default = Duration::from_secs(30 * 86_400);
        ensure_retention(&db, &Limits::default(), storage_default);
        assert_eq!(db.retention(), storage_default);
        let tenant = Limits {
            compactor_blocks_retention_period: PromDuration(3_600_000),
            ..Limits::default()
        };
        ensure_retention(&db, &tenant, storage_default);
        assert_eq!(db.retention(), Duration::from_secs(3600));
    }

    #[test]
    fn limits_validate_and_split_attribution_labels() {
        assert!(Limits::default().validate().is_ok());
        let no_burst = Limits {
            ingestion_burst_size: 0,
            ..Limits::default()
        };
        assert!(no_burst
            .validate()
            .unwrap_err()
            .contains("ingestion_burst_size"));
        let off = Limits {
            ingestion_rate: 0.0,
            ingestion_burst_size: 0,
            ..Limits::default()
        };
        assert!(off.validate().is_ok());
        let negative = Limits {
            max_query_lookback: PromDuration(-1),
            ..Limits::default()
        };
        assert!(negative
            .validate()
            .unwrap_err()
            .contains("max_query_lookback"));
        let labels = Limits {
            cost_attribution_labels: " team, ,env ".into(),
            ..Limits::default()
        };
        assert_eq!(labels.cost_attribution_label_names(), ["team", "env"]);
        let validation = Limits::default().validation_limits();
        assert_eq!(validation.max_label_names_per_series, 30);
        assert_eq!(validation.creation_grace_period_ms, 600_000);
    }
}
