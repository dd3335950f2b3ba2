//! The Prometheus HTTP read API.
//!
//! Served with and without Mimir's `/prometheus` prefix, for GET and
//! form-encoded POST. This module holds `/api/v1/query` and
//! `/api/v1/query_range` and the helpers every read endpoint shares
//! (parameters, tenant lookup, the success envelope); the others live in:
//! - [`series`]: `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`;
//! - [`metadata`]: `/api/v1/metadata`, `/api/v1/query_exemplars`;
//! - [`status`]: `/api/v1/status/*`, `/api/v1/format_query`.
//!
//! Evaluation and storage reads run on the [`scheduler`]'s query workers
//! (a query known to be cheap inline, see there), over the request's tenant
//! or federated tenants ([`crate::federation`]); if the client goes away,
//! the engine's cancel flag is raised.

pub mod json;
pub mod metadata;
pub mod params;
pub mod scheduler;
pub mod series;
pub mod status;

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_model::{Matcher, Queryable, StorageError, TimeRange};
use cairn_promql::{QueryError, QueryOptions, QueryResult, Value};

use crate::app::AppState;
use crate::error::ApiError;
use crate::federation::ReadTarget;
use crate::limits::query as query_limits;
use crate::metrics::QueryOutcome;
use params::{parse_duration, parse_time, Params};

/// Prometheus's limit on points per series in a range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

pub(crate) async fn instant_query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let expr = params.get("query").unwrap_or_default().to_string();
    // Prometheus reads `time` with `parseTimeParam`, whose error names it twice.
    let time = time_param(&params, "time")?.unwrap_or_else(now_ms);
    let options = query_options(&params)?;
    let output = output_options(&params)?;
    let started = Instant::now();
    let shape = cost_shape(&expr, &options, None);
    let result = evaluate(
        &state,
        &headers,
        "query",
        options,
        None,
        shape,
        move |engine, queryable, opts| engine.instant_query(queryable, &expr, time, opts),
    )
    .await?;
    Ok(success(result, &output, started.elapsed()))
}

pub(crate) async fn range_query(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
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
    let output = output_options(&params)?;
    let started = Instant::now();
    let range = Some((start, end));
    let shape = cost_shape(&expr, &options, Some((end - start, step)));
    let result = evaluate(
        &state,
        &headers,
        "query_range",
        options,
        range,
        shape,
        move |engine, queryable, opts| engine.range_query(queryable, &expr, start, end, step, opts),
    )
    .await?;
    Ok(success(result, &output, started.elapsed()))
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

/// What a query's cost is remembered by (with its tenant, in [`evaluate`]):
/// the expression, the range query's length and step (not where the range
/// lies: a dashboard's refreshes slide it) and the lookback delta. The
/// scheduler runs a query inline when its previous evaluation was cheap
/// ([`scheduler`] module doc).
fn cost_shape(expr: &str, options: &QueryOptions, range: Option<(i64, i64)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    expr.hash(&mut hasher);
    range.hash(&mut hasher);
    options.lookback_delta_ms.hash(&mut hasher);
    hasher.finish()
}

/// Raises the engine's cancel flag when dropped, i.e. when the handler's
/// future is dropped because the client went away.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs a query on the tenant's data under the tenant's query limits
/// (`range`: a range query's start and end, for the length limits) on the
/// query workers (or inline, when `shape`, see [`cost_shape`], was cheap
/// last time), and records it in the query metrics under `endpoint`.
async fn evaluate<F>(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    endpoint: &'static str,
    mut options: QueryOptions,
    range: Option<(i64, i64)>,
    shape: u64,
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
    let target = ReadTarget::from_request(state, headers)?;
    for limits in target.limits() {
        if let Some((start, end)) = range {
            query_limits::check_query_length(limits, start, end)?;
        }
        options.timeout = query_limits::query_timeout(limits, options.timeout);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    options.cancel = Some(Arc::clone(&cancel));
    let guard = CancelOnDrop(cancel);
    let metrics_state = Arc::clone(state);
    // A federated read is recorded under its joined `a|b` key.
    let tenant_label = target.queue_key();
    let cost_key = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        (endpoint, tenant_label.as_str(), shape).hash(&mut hasher);
        hasher.finish()
    };
    let engine_state = Arc::clone(state);
    let enqueued = Instant::now();
    let outcome = scheduler::run_read_learned(state, target, Some(cost_key), move |target| {
        let started = Instant::now();
        cairn_promql::take_worker_cpu_time();
        let cpu = cairn_promql::thread_cpu_time();
        // As in Prometheus (`engine.exec`: the timeout's context is made
        // before `queueActive`), time spent waiting in the queue counts
        // against the timeout; a query whose time ran out there is not
        // started ("query timed out in query queue").
        let timeout = options
            .timeout
            .unwrap_or(engine_state.engine.options().default_timeout);
        let result = match timeout.checked_sub(enqueued.elapsed()) {
            Some(left) if !left.is_zero() => {
                options.timeout = Some(left);
                target.read(now_ms(), |queryable| {
                    run(&engine_state.engine, queryable, &options)
                })
            }
            _ => Err(QueryError::Timeout("query queue")),
        };
        let scanned = result.as_ref().map_or(0, |r| r.stats.total_samples);
        let cpu = cairn_promql::thread_cpu_time().saturating_sub(cpu)
            + cairn_promql::take_worker_cpu_time();
        engine_state
            .usage
            .count_read(target.stored_tenants(), scanned, cpu);
        (result, started.elapsed())
    })
    .await?;
    // Raising the flag after the query finished is harmless.
    drop(guard);
    let (result, elapsed) = outcome;
    let result = result.map_err(query_error);
    metrics_state.metrics.observe_query(
        endpoint,
        &tenant_label,
        QueryOutcome {
            elapsed,
            samples: result.as_ref().map_or(0, |r| r.stats.total_samples),
            error_type: result.as_ref().err().map(|e| e.error_type),
        },
    );
    result
}

/// Maps engine errors as Prometheus's API does: errors from parsing are
/// `invalid parameter "query"`, others keep their own type.
fn query_error(err: QueryError) -> ApiError {
    match err {
        QueryError::BadData(message) => ApiError::invalid_param("query", message),
        QueryError::Storage(storage) => {
            let error_type = match storage {
                StorageError::TooManySeries { .. } | StorageError::LimitExceeded(_) => "execution",
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

/// What the request asks of the response: `limit` on returned series and
/// `stats` (any non-empty value adds `data.stats`, as in Prometheus).
#[derive(Clone)]
struct OutputOptions {
    limit: usize,
    stats: bool,
}

fn output_options(params: &Params) -> Result<OutputOptions, ApiError> {
    Ok(OutputOptions {
        limit: parse_limit(params)?,
        stats: params.get("stats").is_some(),
    })
}

fn success(mut result: QueryResult, output: &OutputOptions, elapsed: Duration) -> Response {
    // Prometheus's `truncateResults`: vectors and matrices only, with a warning.
    let limit = output.limit;
    let truncated = match &mut result.value {
        Value::Vector(samples) if limit > 0 && samples.len() > limit => {
            samples.truncate(limit);
            true
        }
        Value::Matrix(series) if limit > 0 && series.len() > limit => {
            series.truncate(limit);
            true
        }
        _ => false,
    };
    if truncated {
        result
            .annotations
            .warnings
            .push(TRUNCATED_WARNING.to_string());
    }
    let output = output.clone();
    if encoded_points(&result.value) <= STREAM_ABOVE_POINTS {
        let mut body = String::with_capacity(256);
        write_envelope(&mut body, &result, &output, elapsed, &mut |_| {});
        return json_response(body);
    }
    // A large answer is encoded on the blocking pool and sent in chunks as
    // it is written, so the whole JSON text never sits in memory at once.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
    tokio::task::spawn_blocking(move || {
        let mut body = String::with_capacity(json::FLUSH_BYTES * 2);
        let mut client_gone = false;
        let mut send = |buffer: &mut String| {
            let chunk = Bytes::from(std::mem::take(buffer).into_bytes());
            // A client that went away only makes the remaining sends fail.
            client_gone = client_gone || sender.blocking_send(chunk).is_err();
        };
        write_envelope(&mut body, &result, &output, elapsed, &mut send);
        send(&mut body);
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(chunk), receiver))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Results with more points than this are streamed rather than buffered.
const STREAM_ABOVE_POINTS: usize = 50_000;

fn encoded_points(value: &Value) -> usize {
    match value {
        Value::Vector(samples) => samples.len(),
        Value::Matrix(series) => series.iter().map(|s| s.samples.len()).sum(),
        Value::Scalar(_) | Value::String { .. } => 1,
    }
}

/// The whole success envelope of a query answer.
fn write_envelope(
    body: &mut String,
    result: &QueryResult,
    output: &OutputOptions,
    elapsed: Duration,
    flush: &mut dyn FnMut(&mut String),
) {
    body.push_str(r#"{"status":"success","data":"#);
    json::write_query_data_open(body, &result.value, flush);
    if output.stats {
        write_stats(body, result, elapsed);
    }
    body.push('}');
    json::write_string_array_field(body, "warnings", &result.annotations.warnings);
    json::write_string_array_field(body, "infos", &result.annotations.infos);
    body.push('}');
}

/// `,"stats":{...}` in Prometheus's `stats.BuiltinStats` shape. Cairn times
/// the whole evaluation only, so that figure is the total and the inner
/// evaluation time, and the phases it does not have are 0. The engine does
/// not track its peak sample count, so `peakSamples` is left out.
fn write_stats(out: &mut String, result: &QueryResult, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let _ = write!(
        out,
        r#","stats":{{"timings":{{"evalTotalTime":{seconds},"resultSortTime":0,"queryPreparationTime":0,"innerEvalTime":{seconds},"execQueueTime":0,"execTotalTime":{seconds}}},"samples":{{"totalQueryableSamples":{}}}}}"#,
        result.stats.total_samples
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Prometheus's warning when `limit` cut a result.
pub(crate) const TRUNCATED_WARNING: &str = "results truncated due to limit";

/// Prometheus's `MinTime` and `MaxTime` (`web/api/v1`) in milliseconds: the
/// defaults of `start` and `end`. Anything at or past them is the whole time
/// line, which storage answers from its index alone.
const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// `start` and `end` as Prometheus's `parseTimeParam` reads them, defaulting
/// to the whole time line.
pub(crate) fn time_range(params: &Params) -> Result<TimeRange, ApiError> {
    let start = time_param(params, "start")?.unwrap_or(i64::MIN);
    let end = time_param(params, "end")?.unwrap_or(i64::MAX);
    let start = if start <= MIN_TIME_MS {
        i64::MIN
    } else {
        start
    };
    let end = if end >= MAX_TIME_MS { i64::MAX } else { end };
    Ok(TimeRange::new(start, end))
}

fn time_param(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(value) => parse_time(value).map(Some).map_err(|e| {
            ApiError::invalid_param(name, format!("Invalid time value for '{name}': {e}"))
        }),
    }
}

/// Prometheus's `parseLimitParam`: empty is 0 (no limit), negative is an error.
pub(crate) fn parse_limit(params: &Params) -> Result<usize, ApiError> {
    let Some(value) = params.get("limit") else {
        return Ok(0);
    };
    let limit = go_atoi(value).map_err(|e| ApiError::invalid_param("limit", e))?;
    if limit < 0 {
        return Err(ApiError::invalid_param(
            "limit",
            "limit must be non-negative",
        ));
    }
    Ok(limit as usize)
}

/// Go's `strconv.Atoi` with its error texts.
pub(crate) fn go_atoi(value: &str) -> Result<i64, String> {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.Atoi: parsing {}: invalid syntax",
            go_quote(value)
        ));
    }
    value.parse::<i64>().map_err(|_| {
        format!(
            "strconv.Atoi: parsing {}: value out of range",
            go_quote(value)
        )
    })
}

/// Go's `%q` for the strings error messages quote.
pub(crate) fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

const EMPTY_MATCHERS: &str = "match[] must contain at least one non-empty matcher";

/// Prometheus's `parseMatchersParam`: every `match[]` is a series selector,
/// and each must have at least one matcher that does not match the empty string.
pub(crate) fn parse_match_params(selectors: &[&str]) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut sets = Vec::with_capacity(selectors.len());
    for selector in selectors {
        sets.push(parse_series_selector(selector)?);
    }
    for set in &sets {
        if !set.iter().any(|m| !m.matches_empty()) {
            return Err(ApiError::bad_data(EMPTY_MATCHERS));
        }
    }
    Ok(sets)
}

/// One series selector (`metric{label="value",...}`) as storage matchers,
/// as Prometheus's `parser.ParseMetricSelector`.
pub(crate) fn parse_series_selector(selector: &str) -> Result<Vec<Matcher>, ApiError> {
    use promql_parser::parser::Expr;
    let expr = cairn_promql::parse_expr(selector).map_err(|err| {
        let message = err.to_string();
        // Go's `ParseMetricSelector` leaves this check to the caller, whose
        // text is the one clients see.
        if message.contains("must contain at least one non-empty matcher") {
            ApiError::bad_data(EMPTY_MATCHERS)
        } else {
            ApiError::bad_data(message)
        }
    })?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(ApiError::bad_data(format!(
            "parse error: {} is not a series selector",
            go_quote(selector)
        )));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(ApiError::bad_data(format!(
            "parse error: {} is not a series selector",
            go_quote(selector)
        )));
    }
    selector_matchers(&vs)
}

/// The storage matchers of a parsed vector selector (name first), converted
/// as the engine converts them.
pub(crate) fn selector_matchers(
    vs: &promql_parser::parser::VectorSelector,
) -> Result<Vec<Matcher>, ApiError> {
    cairn_promql::selector_matchers(vs).map_err(|e| ApiError::bad_data(e.to_string()))
}

/// The tenant's store, or `None` when the tenant has never written; for
/// endpoints that never federate (user_stats, cardinality: Mimir refuses a
/// tenant list there too).
pub(crate) fn tenant_db(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Arc<cairn_tsdb::Tsdb>>, ApiError> {
    let tenant = crate::tenant::read_tenant(&crate::auth::AuthContext::current(), headers)?;
    Ok(state.open_store()?.get(&tenant))
}

/// Runs a storage read for the request's tenant (or federated tenants) on
/// the query workers, under each tenant's query limits. A tenant that has
/// never written reads as an empty store.
pub(crate) async fn run_on_tenant<T, F>(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    read: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Queryable) -> Result<T, StorageError> + Send + 'static,
{
    let target = ReadTarget::from_request(state, headers)?;
    scheduler::run_read(state, target, move |target| target.read(now_ms(), read))
        .await?
        .map_err(|e| query_error(QueryError::Storage(e)))
}

/// `{"status":"success","data":<data>}` with `warnings` when there are any.
pub(crate) fn success_data(data: &str, warnings: &[String]) -> Response {
    let mut body = String::with_capacity(data.len() + 64);
    body.push_str(r#"{"status":"success","data":"#);
    body.push_str(data);
    json::write_string_array_field(&mut body, "warnings", warnings);
    body.push('}');
    json_response(body)
}

pub(crate) fn json_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
