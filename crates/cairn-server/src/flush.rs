//! `GET|POST /ingester/flush`: Mimir's forced flush. Every tenant's head
//! (or only the `tenant=` ones, repeatable) is written into blocks now
//! ([`cairn_tsdb::Tsdb::flush_head`]); with `wait=true` the answer (204)
//! comes once the blocks are on disk, otherwise at once while the flush runs
//! in the background. Admin only. Used before a planned shutdown and by the
//! benchmark to measure bytes on disk per sample.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;

use crate::app::AppState;
use crate::auth::AuthContext;
use crate::error::ApiError;

pub(crate) async fn flush(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<StatusCode, ApiError> {
    AuthContext::current().require_admin()?;
    let store = state.open_store()?;
    let only: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "tenant")
        .map(|(_, v)| v.clone())
        .collect();
    let wait = params
        .iter()
        .any(|(k, v)| k == "wait" && matches!(v.as_str(), "true" | "1"));
    let job = tokio::task::spawn_blocking(move || {
        for (tenant, tsdb) in store.tenants() {
            if !only.is_empty() && !only.iter().any(|t| t == tenant.as_str()) {
                continue;
            }
            match tsdb.flush_head() {
                Ok(blocks) => {
                    tracing::info!(tenant = %tenant, blocks = blocks.len(), "head flushed")
                }
                Err(error) => {
                    tracing::error!(tenant = %tenant, %error, "flush failed");
                    return Err(ApiError::internal(format!(
                        "flushing tenant {tenant}: {error}"
                    )));
                }
            }
        }
        Ok(())
    });
    if wait {
        job.await
            .map_err(|error| ApiError::internal(error.to_string()))??;
    }
    Ok(StatusCode::NO_CONTENT)
}
