//! Mimir's cardinality API for one tenant: `label_names`, `label_values`
//! and `active_series` under `<prefix>/api/v1/cardinality/`.
//!
//! As in Mimir, the figures come from the in-memory head only (Mimir asks
//! its ingesters), not from blocks on disk: a block cut can change them.
//! `count_method=inmemory` (the default) counts every head series;
//! `active` counts series whose newest sample is at most
//! [`ACTIVE_SERIES_IDLE_TIMEOUT`] old (Mimir's
//! `-ingester.active-series-metrics-idle-timeout`; Mimir measures when a
//! sample was received, Cairn the sample's timestamp, which is the same for
//! a live sender). Parameter parsing, limits, error texts, sort orders and
//! response shapes follow Mimir's `pkg/cardinality/request.go` and
//! `pkg/querier/cardinality_handler.go`. Errors are plain text with 400, as
//! Mimir answers them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_model::Matcher;
use cairn_tsdb::stats::{Cardinality, CountMethod};
use serde::Serialize;

use crate::app::AppState;
use crate::error::ApiError;
use crate::query::params::Params;
use crate::query::{go_atoi, json_response, parse_series_selector, tenant_db};

/// A series is active while its newest sample is at most this old (Mimir's
/// default since 2.14, grafana/mimir#8975).
pub const ACTIVE_SERIES_IDLE_TIMEOUT: Duration = Duration::from_secs(20 * 60);

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: i64 = 500;
/// Mimir's `label_values_max_cardinality_label_names_per_request` default.
const MAX_LABEL_NAMES_PER_REQUEST: usize = 100;
/// Largest `active_series` answer, in series (Mimir answers 413 past its
/// response size limit).
const MAX_ACTIVE_SERIES: usize = 1_000_000;

/// An error of these endpoints: plain text for their own parameter errors
/// (as Mimir answers them), the read API's envelope for the rest (tenant).
pub(crate) enum CardinalityError {
    Plain(StatusCode, String),
    Api(ApiError),
}

impl IntoResponse for CardinalityError {
    fn into_response(self) -> Response {
        match self {
            CardinalityError::Plain(status, message) => (status, message).into_response(),
            CardinalityError::Api(error) => error.into_response(),
        }
    }
}

type HandlerResult = Result<Response, CardinalityError>;

fn bad_request(message: impl Into<String>) -> CardinalityError {
    CardinalityError::Plain(StatusCode::BAD_REQUEST, message.into())
}

fn api_error(error: ApiError) -> CardinalityError {
    CardinalityError::Api(error)
}

/// `selector`: optional, at most once, a series selector.
fn selector(params: &Params) -> Result<Vec<Matcher>, CardinalityError> {
    let selectors = params.get_all("selector");
    match selectors.as_slice() {
        [] => Ok(Vec::new()),
        [one] => parse_series_selector(one)
            .map_err(|e| bad_request(format!("failed to parse selector: {}", e.message))),
        _ => Err(bad_request("multiple 'selector' params are not allowed")),
    }
}

/// `limit`: 20 by default, 0 to 500.
fn limit(params: &Params) -> Result<usize, CardinalityError> {
    let limits = params.get_all("limit");
    let value = match limits.as_slice() {
        [] => return Ok(DEFAULT_LIMIT),
        [one] => *one,
        _ => return Err(bad_request("multiple 'limit' params are not allowed")),
    };
    let limit = go_atoi(value).map_err(bad_request)?;
    if limit < 0 {
        return Err(bad_request("'limit' param cannot be less than '0'"));
    }
    if limit > MAX_LIMIT {
        return Err(bad_request(format!(
            "'limit' param cannot be greater than '{MAX_LIMIT}'"
        )));
    }
    Ok(limit as usize)
}

/// `count_method`: `inmemory` (default) or `active`.
fn count_method(params: &Params) -> Result<CountMethod, CardinalityError> {
    match params.get("count_method") {
        None | Some("inmemory") => Ok(CountMethod::InMemory),
        Some("active") => Ok(active_since()),
        Some(other) => Err(bad_request(format!(
            "invalid 'count_method' param '{other}'. valid options are: [active,inmemory]"
        ))),
    }
}

fn active_since() -> CountMethod {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    CountMethod::ActiveSince(now - ACTIVE_SERIES_IDLE_TIMEOUT.as_millis() as i64)
}

fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Runs `read` on the tenant's database on the blocking pool; a tenant
/// that never wrote has an empty head.
async fn on_head<T: Default + Send + 'static>(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    read: impl FnOnce(&cairn_tsdb::Tsdb) -> T + Send + 'static,
) -> Result<T, CardinalityError> {
    let db = tenant_db(state, headers).map_err(api_error)?;
    tokio::task::spawn_blocking(move || db.map(|db| read(&db)).unwrap_or_default())
        .await
        .map_err(|e| api_error(ApiError::internal(format!("read task failed: {e}"))))
}

#[derive(Serialize)]
struct LabelNamesResponse {
    label_values_count_total: usize,
    label_names_count: usize,
    cardinality: Vec<LabelNameItem>,
}

#[derive(Serialize)]
struct LabelNameItem {
    label_name: String,
    label_values_count: usize,
}

/// `GET,POST <prefix>/api/v1/cardinality/label_names`.
pub(crate) async fn label_names(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> HandlerResult {
    let matchers = selector(&params)?;
    let limit = limit(&params)?;
    let method = count_method(&params)?;
    let found = on_head(&state, &headers, move |db| {
        db.head_cardinality(&matchers, method, None)
    })
    .await?;
    Ok(json(&label_names_response(found, limit)))
}

fn label_names_response(found: Cardinality, limit: usize) -> LabelNamesResponse {
    let mut items: Vec<LabelNameItem> = found
        .values
        .into_iter()
        .map(|(label_name, values)| LabelNameItem {
            label_name,
            label_values_count: values.len(),
        })
        .collect();
    // By values count descending, then name ascending.
    items.sort_by(|a, b| {
        b.label_values_count
            .cmp(&a.label_values_count)
            .then_with(|| a.label_name.cmp(&b.label_name))
    });
    let label_values_count_total = items.iter().map(|i| i.label_values_count).sum();
    let label_names_count = items.len();
    items.truncate(limit);
    LabelNamesResponse {
        label_values_count_total,
        label_names_count,
        cardinality: items,
    }
}

#[derive(Serialize)]
struct LabelValuesResponse {
    series_count_total: u64,
    labels: Vec<LabelValuesItem>,
}

#[derive(Serialize)]
struct LabelValuesItem {
    label_name: String,
    label_values_count: u64,
    series_count: u64,
    cardinality: Vec<LabelValueItem>,
}

#[derive(Serialize)]
struct LabelValueItem {
    label_value: String,
    series_count: u64,
}

/// `GET,POST <prefix>/api/v1/cardinality/label_values`.
pub(crate) async fn label_values(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> HandlerResult {
    let names = params.get_all("label_names[]");
    if names.is_empty() {
        return Err(bad_request("'label_names[]' param is required"));
    }
    if let Some(invalid) = names.iter().find(|n| !is_valid_label_name(n)) {
        return Err(bad_request(format!(
            "invalid 'label_names' param '{invalid}'"
        )));
    }
    let names: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
    if names.len() > MAX_LABEL_NAMES_PER_REQUEST {
        return Err(bad_request(format!(
            "label values cardinality request label names limit (limit: {MAX_LABEL_NAMES_PER_REQUEST} actual: {}) exceeded",
            names.len()
        )));
    }
    let matchers = selector(&params)?;
    let limit = limit(&params)?;
    let method = count_method(&params)?;
    let wanted = names.clone();
    let (total, found) = on_head(&state, &headers, move |db| {
        // Mimir's `series_count_total` is the tenant's whole series count
        // (its `UserStats` under the same count method), not the selection.
        (
            db.head_series_count(method),
            db.head_cardinality(&matchers, method, Some(&wanted)),
        )
    })
    .await?;
    Ok(json(&label_values_response(total, &names, found, limit)))
}

fn label_values_response(
    series_count_total: u64,
    names: &BTreeSet<String>,
    mut found: Cardinality,
    limit: usize,
) -> LabelValuesResponse {
    let mut labels: Vec<LabelValuesItem> = names
        .iter()
        .map(|name| {
            let values = found.values.remove(name).unwrap_or_default();
            let mut cardinality: Vec<LabelValueItem> = values
                .into_iter()
                .map(|(label_value, series_count)| LabelValueItem {
                    label_value,
                    series_count,
                })
                .collect();
            cardinality.sort_by(|a, b| {
                b.series_count
                    .cmp(&a.series_count)
                    .then_with(|| a.label_value.cmp(&b.label_value))
            });
            let series_count = cardinality.iter().map(|v| v.series_count).sum();
            let label_values_count = cardinality.len() as u64;
            cardinality.truncate(limit);
            LabelValuesItem {
                label_name: name.clone(),
                label_values_count,
                series_count,
                cardinality,
            }
        })
        .collect();
    labels.sort_by(|a, b| {
        b.series_count
            .cmp(&a.series_count)
            .then_with(|| a.label_name.cmp(&b.label_name))
    });
    LabelValuesResponse {
        series_count_total,
        labels,
    }
}

/// `GET,POST <prefix>/api/v1/cardinality/active_series`: `{"data":[{labels}]}`
/// of the active series matching the required `selector`.
pub(crate) async fn active_series(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> HandlerResult {
    if params.get("selector").is_none() {
        return Err(bad_request("missing 'selector' parameter"));
    }
    let matchers = selector(&params)?;
    let method = active_since();
    let found = on_head(&state, &headers, move |db| {
        Some(db.head_series_labels(&matchers, method, MAX_ACTIVE_SERIES))
    })
    .await?;
    let Some(series) = found.unwrap_or(Some(Vec::new())) else {
        return Err(CardinalityError::Plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the response is too large: more than {MAX_ACTIVE_SERIES} series match; narrow the selector"),
        ));
    };
    let mut body = String::with_capacity(16 + series.len() * 64);
    body.push_str(r#"{"data":["#);
    for (i, labels) in series.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        crate::query::json::write_labels(&mut body, labels);
    }
    body.push_str("]}");
    Ok(json_response(body))
}

fn json(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => json_response(body),
        Err(e) => ApiError::internal(format!("encoding failed: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cardinality(pairs: &[(&str, &[(&str, u64)])]) -> Cardinality {
        let mut out = Cardinality::default();
        for (name, values) in pairs {
            out.values.insert(
                name.to_string(),
                values.iter().map(|(v, n)| (v.to_string(), *n)).collect(),
            );
        }
        out
    }

    #[test]
    fn label_names_sort_by_count_then_name_and_total_before_limit() {
        let found = cardinality(&[
            ("job", &[("a", 1), ("b", 1)]),
            ("env", &[("x", 1), ("y", 1)]),
            ("__name__", &[("m", 1), ("n", 1), ("o", 1)]),
        ]);
        let response = serde_json::to_value(label_names_response(found, 2)).unwrap();
        assert_eq!(
            response,
            serde_json::json!({
                "label_values_count_total": 7,
                "label_names_count": 3,
                "cardinality": [
                    {"label_name": "__name__", "label_values_count": 3},
                    {"label_name": "env", "label_values_count": 2},
                ]
            })
        );
    }

    #[test]
    fn label_values_sort_and_limit_and_keep_unknown_names() {
        let found = cardinality(&[("job", &[("a", 1), ("b", 3), ("c", 3)])]);
        let names: BTreeSet<String> = ["job".into(), "nope".into()].into();
        let response = serde_json::to_value(label_values_response(9, &names, found, 2)).unwrap();
        assert_eq!(
            response,
            serde_json::json!({
                "series_count_total": 9,
                "labels": [
                    {"label_name": "job", "label_values_count": 3, "series_count": 7,
                     "cardinality": [
                        {"label_value": "b", "series_count": 3},
                        {"label_value": "c", "series_count": 3}]},
                    {"label_name": "nope", "label_values_count": 0, "series_count": 0, "cardinality": []}
                ]
            })
        );
    }

    #[test]
    fn label_name_validity_is_prometheus_legacy() {
        assert!(is_valid_label_name("__name__"));
        assert!(is_valid_label_name("a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name(""));
    }
}
