//! Per-tenant statistics: Mimir's `GET /api/v1/user_stats` for the
//! request's tenant, and `GET /api/v1/admin/tenants`, every tenant's
//! overview for operators (admin only; what `cairn tenants` prints).
//!
//! The ingestion rate is Mimir's: samples accepted by the tenant's database,
//! an exponentially weighted moving average ticked every 15 s
//! ([`spawn_rate_ticker`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cairn_tsdb::stats::RATE_UPDATE_PERIOD;
use cairn_tsdb::TenantStore;
use serde::Serialize;

use crate::app::AppState;
use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::query::{json_response, tenant_db};

/// Mimir's `distributor.UserStats` JSON (`pkg/distributor/http_server.go`).
#[derive(Debug, Default, Serialize)]
struct UserStats {
    #[serde(rename = "ingestionRate")]
    ingestion_rate: f64,
    #[serde(rename = "numSeries")]
    num_series: u64,
    #[serde(rename = "APIIngestionRate")]
    api_ingestion_rate: f64,
    #[serde(rename = "RuleIngestionRate")]
    rule_ingestion_rate: f64,
}

/// `GET /api/v1/user_stats`: the tenant's series in memory and ingestion
/// rate. Every sample arrives through the API (Cairn has no ruler), so the
/// rule rate is 0 and the API rate is the whole rate. A tenant that never
/// wrote gets zeros, as in Mimir.
pub(crate) async fn user_stats(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let stats = match tenant_db(&state, &headers)? {
        Some(db) => {
            let stats = db.stats();
            UserStats {
                ingestion_rate: stats.ingestion_rate,
                num_series: stats.active_series,
                api_ingestion_rate: stats.ingestion_rate,
                rule_ingestion_rate: 0.0,
            }
        }
        None => UserStats::default(),
    };
    Ok(json(&stats))
}

/// One row of the tenants overview.
#[derive(Debug, Serialize)]
struct TenantOverview {
    tenant: String,
    /// Series in the head.
    #[serde(rename = "activeSeries")]
    active_series: u64,
    /// Samples per second (Mimir's EWMA).
    #[serde(rename = "ingestionRate")]
    ingestion_rate: f64,
    /// WAL plus blocks on local disk.
    #[serde(rename = "bytesStored")]
    bytes_stored: u64,
    #[serde(rename = "walBytes")]
    wal_bytes: u64,
    #[serde(rename = "blockBytes")]
    block_bytes: u64,
    blocks: u64,
    /// RFC 3339, or null for a tenant that never wrote.
    #[serde(rename = "lastWriteTime")]
    last_write_time: Option<String>,
}

#[derive(Debug, Serialize)]
struct Envelope<T> {
    status: &'static str,
    data: T,
}

/// `GET /api/v1/admin/tenants`: every tenant with a database on this node,
/// sorted by tenant ID (admin only).
pub(crate) async fn admin_tenants(
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    AuthContext::current().require_admin()?;
    let store = state.open_store()?;
    let rows = tokio::task::spawn_blocking(move || overview(&store))
        .await
        .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?;
    Ok(json(&Envelope {
        status: "success",
        data: rows,
    }))
}

fn overview(store: &TenantStore) -> Vec<TenantOverview> {
    store
        .tenants()
        .into_iter()
        .map(|(tenant, db)| {
            let stats = db.stats();
            let disk = db.disk_usage();
            TenantOverview {
                tenant: tenant.to_string(),
                active_series: stats.active_series,
                ingestion_rate: stats.ingestion_rate,
                bytes_stored: disk.total_bytes(),
                wal_bytes: disk.wal_bytes,
                block_bytes: disk.block_bytes,
                blocks: disk.blocks,
                last_write_time: stats.last_write_ms.and_then(rfc3339),
            }
        })
        .collect()
}

fn rfc3339(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn json(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => json_response(body),
        Err(e) => ApiError::internal(format!("encoding failed: {e}")).into_response(),
    }
}

/// Ticks every tenant's ingestion rate every [`RATE_UPDATE_PERIOD`] until
/// the task is aborted.
pub(crate) fn spawn_rate_ticker(
    store: Arc<std::sync::OnceLock<Arc<TenantStore>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(RATE_UPDATE_PERIOD);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once; rates start one period later.
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Some(store) = store.get() {
                for (_, db) in store.tenants() {
                    db.tick_ingestion_rate();
                }
            }
        }
    })
}
