//! The Prometheus HTTP read API: `/api/v1/query` and `/api/v1/query_range`.
//!
//! Served with and without Mimir's `/prometheus` prefix, for GET and
//! form-encoded POST. Evaluation runs on the blocking pool; if the client
//! goes away, the engine's cancel flag is raised.

pub mod json;
pub mod params;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_model::{Matcher, Queryable, Series, StorageError, TimeRange};
use cairn_promql::{QueryError, QueryOptions, QueryResult};

use crate::app::AppState;
use crate::error::ApiError;
use crate::tenant;
use params::{parse_duration, parse_time, Params};

/// Prometheus's limit on points per series in a range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

pub(crate) async fn instant_query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = request_params(&headers, query.as_deref(), &body);
    let expr = params.get("query").unwrap_or_default().to_string();
    let time = match params.get("time") {
        Some(t) => parse_time(t).map_err(|e| ApiError::invalid_param("time", e))?,
        None => now_ms(),
    };
    let options = query_options(&params)?;
    let result = evaluate(&state, &headers, options, move |engine, queryable, opts| {
        engine.instant_query(queryable, &expr, time, opts)
    })
    .await?;
    Ok(success(&result))
}

pub(crate) async fn range_query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = request_params(&headers, query.as_deref(), &body);
    let expr = params.get("query").unwrap_or_default().to_string();
    let start = parse_time(params.get("start").unwrap_or_default())
        .map_err(|e| ApiError::invalid_param("start", e))?;
    let end = parse_time(params.get("end").unwrap_or_default())
        .map_err(|e| ApiError::invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = parse_duration(params.get("step").unwrap_or_default())
        .map_err(|e| ApiError::invalid_param("step", e))?;
    if step <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    // As Prometheus: end.Sub(start)/step compared as durations.
    if (end as i128 - start as i128) / step as i128 > MAX_POINTS_PER_SERIES as i128 {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let options = query_options(&params)?;
    let result = evaluate(&state, &headers, options, move |engine, queryable, opts| {
        engine.range_query(queryable, &expr, start, end, step, opts)
    })
    .await?;
    Ok(success(&result))
}

/// Reads the query string and, for form-encoded POSTs, the body.
fn request_params(headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Params {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    Params::parse(is_form.then_some(body), query)
}

fn query_options(params: &Params) -> Result<QueryOptions, ApiError> {
    let mut options = QueryOptions::default();
    if let Some(timeout) = params.get("timeout") {
        let ms = parse_duration(timeout).map_err(|e| ApiError::invalid_param("timeout", e))?;
        options.timeout = Some(Duration::from_millis(ms.max(0) as u64));
    }
    if let Some(lookback) = params.get("lookback_delta") {
        let ms =
            parse_duration(lookback).map_err(|e| ApiError::invalid_param("lookback_delta", e))?;
        options.lookback_delta_ms = Some(ms);
    }
    Ok(options)
}

/// Raises the engine's cancel flag when dropped, i.e. when the handler's
/// future is dropped because the client went away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn evaluate<F>(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    mut options: QueryOptions,
    run: F,
) -> Result<QueryResult, ApiError>
where
    F: FnOnce(
            &cairn_promql::Engine,
            &dyn Queryable,
            &QueryOptions,
        ) -> Result<QueryResult, QueryError>
        + Send
        + 'static,
{
    let tenant = tenant::read_tenant(&state.options.tenancy, headers)?;
    let store = state
        .store
        .get()
        .cloned()
        .ok_or_else(ApiError::unavailable)?;
    let cancel = Arc::new(AtomicBool::new(false));
    options.cancel = Some(Arc::clone(&cancel));
    let guard = CancelOnDrop(cancel);
    let state = Arc::clone(state);
    let outcome = tokio::task::spawn_blocking(move || {
        let db = store.get(&tenant);
        let queryable: &dyn Queryable = match &db {
            Some(db) => db.as_ref(),
            None => &EmptyStore,
        };
        run(&state.engine, queryable, &options)
    })
    .await
    .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?;
    // Raising the flag after the query finished is harmless.
    drop(guard);
    outcome.map_err(query_error)
}

/// Maps engine errors as Prometheus's API does: errors from parsing are
/// `invalid parameter "query"`, others keep their own type.
fn query_error(err: QueryError) -> ApiError {
    match err {
        QueryError::BadData(message) => ApiError::invalid_param("query", message),
        QueryError::Storage(storage) => {
            let error_type = match storage {
                StorageError::TooManySeries { .. } => "execution",
                _ => "internal",
            };
            ApiError {
                error_type,
                message: storage.to_string(),
            }
        }
        other => ApiError {
            error_type: other.error_type(),
            message: other.to_string(),
        },
    }
}

fn success(result: &QueryResult) -> Response {
    let mut body = String::with_capacity(256);
    body.push_str(r#"{"status":"success","data":"#);
    json::write_query_data(&mut body, &result.value);
    json::write_string_array_field(&mut body, "warnings", &result.annotations.warnings);
    json::write_string_array_field(&mut body, "infos", &result.annotations.infos);
    body.push('}');
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The store of a tenant that has never written: no series.
struct EmptyStore;

impl Queryable for EmptyStore {
    fn select(&self, _: &[Matcher], _: TimeRange) -> Result<Vec<Series>, StorageError> {
        Ok(Vec::new())
    }

    fn label_names(&self, _: &[Matcher], _: TimeRange) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }

    fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
