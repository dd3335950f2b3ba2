//! Admin endpoints that delete data. Every handler first checks
//! [`AuthContext::require_admin`]; the tenant comes from `X-Scope-OrgID`
//! by the usual rules ([`tenant::admin_tenant`]).
//!
//! - `POST|PUT /api/v1/admin/tsdb/delete_series` (also under
//!   `/prometheus`): Prometheus's admin API (`web/api/v1/api.go`
//!   `deleteSeries`): `match[]` (required, repeated), `start` and `end`
//!   (default: all time); 204 No Content. The matching samples vanish from
//!   every read at once (tombstones) and from disk at the next maintenance
//!   pass (`cairn_tsdb::Tsdb::delete_series`).
//! - `POST|PUT /api/v1/admin/tsdb/clean_tombstones`: removes the deleted
//!   data from disk now; 204.
//! - `POST /compactor/delete_tenant`, `GET /compactor/delete_tenant_status`:
//!   Mimir's tenant deletion (`pkg/compactor/compactor_http.go`): the first
//!   marks the tenant, whose data goes after `storage.tenant_deletion_delay`
//!   (200, empty body); the second answers
//!   `{"tenant_id":"…","blocks_deleted":bool}`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use cairn_model::TenantId;
use cairn_tsdb::TenantStore;

use crate::app::AppState;
use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::query::json::write_json_string;
use crate::query::params::Params;
use crate::query::{json_response, parse_series_selector, time_range};
use crate::tenant;

/// The admin routes (put behind the authentication layer by the router).
pub(crate) fn routes() -> Router<Arc<AppState>> {
    let tsdb_admin = Router::new()
        .route(
            "/api/v1/admin/tsdb/delete_series",
            post(delete_series).put(delete_series),
        )
        .route(
            "/api/v1/admin/tsdb/clean_tombstones",
            post(clean_tombstones).put(clean_tombstones),
        );
    Router::new()
        .merge(tsdb_admin.clone())
        .nest("/prometheus", tsdb_admin)
        .route("/compactor/delete_tenant", post(delete_tenant))
        .route("/compactor/delete_tenant_status", get(delete_tenant_status))
}

/// The admin check, the tenant, and the open store.
fn admin_request(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(TenantId, Arc<TenantStore>), ApiError> {
    let auth = AuthContext::current();
    auth.require_admin()?;
    let tenant = tenant::admin_tenant(&auth, headers)?;
    Ok((tenant, state.open_store()?))
}

/// Runs blocking storage work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, cairn_tsdb::TsdbError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("admin task failed: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// `POST|PUT /api/v1/admin/tsdb/delete_series`.
async fn delete_series(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let (tenant, store) = admin_request(&state, &headers)?;
    let selectors = params.get_all("match[]");
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let range = time_range(&params)?;
    let mut matcher_sets = Vec::with_capacity(selectors.len());
    for selector in selectors {
        matcher_sets.push(
            parse_series_selector(selector)
                .map_err(|e| ApiError::invalid_param("match[]", e.message))?,
        );
    }
    let Some(db) = store.get(&tenant) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    blocking(move || {
        for matchers in &matcher_sets {
            db.delete_series(matchers, range.start, range.end)?;
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST|PUT /api/v1/admin/tsdb/clean_tombstones`.
async fn clean_tombstones(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (tenant, store) = admin_request(&state, &headers)?;
    if let Some(db) = store.get(&tenant) {
        blocking(move || db.clean_tombstones()).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /compactor/delete_tenant`.
async fn delete_tenant(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (tenant, store) = admin_request(&state, &headers)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    blocking(move || store.mark_tenant_for_deletion(&tenant, now_ms)).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /compactor/delete_tenant_status`.
async fn delete_tenant_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (tenant, store) = admin_request(&state, &headers)?;
    let status = blocking(move || store.tenant_deletion_status(&tenant)).await?;
    let mut body = String::from(r#"{"tenant_id":"#);
    write_json_string(&mut body, &status.tenant_id);
    body.push_str(r#","blocks_deleted":"#);
    body.push_str(if status.blocks_deleted {
        "true"
    } else {
        "false"
    });
    body.push('}');
    Ok(json_response(body))
}
