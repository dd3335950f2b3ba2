//! Routes, and the middleware that times every request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::compression::{CompressionLayer, CompressionLevel};

use crate::app::AppState;
use crate::{
    admin, auth, cardinality, flush, limits, push, query, remote_read, tenant_stats, usage,
};

pub(crate) fn build(state: Arc<AppState>) -> Router {
    let read_api = Router::new()
        .route(
            "/api/v1/query",
            get(query::instant_query).post(query::instant_query),
        )
        .route(
            "/api/v1/query_range",
            get(query::range_query).post(query::range_query),
        )
        .route(
            "/api/v1/series",
            get(query::series::series).post(query::series::series),
        )
        .route(
            "/api/v1/labels",
            get(query::series::label_names).post(query::series::label_names),
        )
        .route(
            "/api/v1/label/{name}/values",
            get(query::series::label_values).post(query::series::label_values),
        )
        .route(
            "/api/v1/metadata",
            get(query::metadata::metadata).post(query::metadata::metadata),
        )
        .route(
            "/api/v1/query_exemplars",
            get(query::metadata::query_exemplars).post(query::metadata::query_exemplars),
        )
        .route(
            "/api/v1/format_query",
            get(query::status::format_query).post(query::status::format_query),
        )
        .route("/api/v1/status/buildinfo", get(query::status::buildinfo))
        .route("/api/v1/status/config", get(query::status::config))
        .route("/api/v1/status/flags", get(query::status::flags))
        .route(
            "/api/v1/cardinality/label_names",
            get(cardinality::label_names).post(cardinality::label_names),
        )
        .route(
            "/api/v1/cardinality/label_values",
            get(cardinality::label_values).post(cardinality::label_values),
        )
        .route(
            "/api/v1/cardinality/active_series",
            get(cardinality::active_series).post(cardinality::active_series),
        )
        // JSON answers are gzipped when the client accepts it, as Prometheus
        // does; at the fastest level (a 44 MB range answer: 1.6 s against
        // 1.2 s plain; the default level took 2.7x the plain time).
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        // Remote read answers are snappy-compressed already.
        .route("/api/v1/read", post(remote_read::read))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            usage::count_query,
        ));
    // Every tenant endpoint sits behind authentication; `/ready` and
    // `/metrics` do not.
    let tenant_api = Router::new()
        .route("/api/v1/push", post(push::push))
        .route("/api/v1/user_stats", get(tenant_stats::user_stats))
        .route("/api/v1/admin/tenants", get(tenant_stats::admin_tenants))
        .route("/api/v1/usage", get(usage::report::usage_report))
        .route("/ingester/flush", get(flush::flush).post(flush::flush))
        .route("/runtime_config", get(limits::runtime_config))
        .route("/api/v1/user_limits", get(limits::user_limits))
        .merge(read_api.clone())
        .nest("/prometheus", read_api)
        // Series and tenant deletion (admin only).
        .merge(admin::routes())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::authenticate,
        ));
    Router::new()
        .merge(tenant_api)
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            observe_request,
        ))
        .with_state(state)
}

/// `/ready`: 200 once storage is open (WAL replayed), 503 before.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.store.get().is_some() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: replaying the write-ahead log\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match state.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to encode metrics",
        )
            .into_response(),
    }
}

/// Records `cairn_request_duration_seconds` by route template and status.
async fn observe_request(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "other".to_string());
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    state.metrics.observe_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
