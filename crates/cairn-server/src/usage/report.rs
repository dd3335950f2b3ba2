//! `GET /api/v1/usage`: the usage report, computed with the PromQL engine
//! over the internal usage tenant. Column definitions: `docs/usage.md`.
//!
//! The period `[start, end]` is cut into intervals of `step` (the last one
//! ends at `end`). Counter columns are the difference of the cumulative
//! counter between the interval's ends, each end being the last record at
//! or before it (`last_over_time`); a counter lower than at the previous
//! end was reset (its history lost) and counts from 0. Gauge columns use
//! `avg_over_time` / `max_over_time` / `last_over_time` over the interval.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_model::Labels;
use cairn_promql::{Engine, QueryOptions, Value};
use cairn_tsdb::Tsdb;
use serde::Serialize;

use super::attribution::AttrKey;
use super::recorder::{names, OWN_LABELS};
use super::usage_tenant;
use crate::app::AppState;
use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::query::params::{parse_duration, parse_time, Params};

/// Most intervals one report may have.
const MAX_INTERVALS: i64 = 1_000;
/// How far before `start` the first counter value is looked for.
const BASELINE_LOOKBACK_MS: i64 = 24 * 3600 * 1000;
const DEFAULT_STEP_MS: i64 = 24 * 3600 * 1000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// One row: a tenant (or one attribution key of it) over one interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Row {
    pub tenant: String,
    /// Attribution label values; `None` on the tenant's total row.
    pub attribution: Option<BTreeMap<String, String>>,
    pub interval_start: String,
    pub interval_end: String,
    pub samples_received: u64,
    /// Tenant rows only (attribution rows: `null`).
    pub samples_ingested: Option<u64>,
    pub samples_discarded: u64,
    pub samples_discarded_by_reason: BTreeMap<String, u64>,
    pub exemplars_received: Option<u64>,
    pub metadata_received: Option<u64>,
    pub series_created: Option<u64>,
    pub active_series_avg: f64,
    pub active_series_peak: u64,
    pub series_hours: f64,
    pub bytes_stored_disk: Option<u64>,
    pub bytes_stored_bucket: Option<u64>,
    pub queries: Option<u64>,
    pub queries_by_endpoint: Option<BTreeMap<String, u64>>,
    pub query_samples_scanned: Option<u64>,
    pub query_cpu_seconds: Option<f64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    status: &'static str,
    data: Data<'a>,
}

#[derive(Serialize)]
struct Data<'a> {
    start: String,
    end: String,
    step_seconds: f64,
    rows: &'a [Row],
}

pub(crate) async fn usage_report(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    AuthContext::current().require_admin()?;
    let now = chrono::Utc::now().timestamp_millis();
    let end = match params.get("end") {
        Some(v) => parse_time(v).map_err(|e| ApiError::invalid_param("end", e))?,
        None => now,
    };
    let step = match params.get("step") {
        Some(v) => parse_duration(v).map_err(|e| ApiError::invalid_param("step", e))?,
        None => DEFAULT_STEP_MS,
    };
    if step <= 0 {
        return Err(ApiError::invalid_param("step", "step must be positive"));
    }
    let start = match params.get("start") {
        Some(v) => parse_time(v).map_err(|e| ApiError::invalid_param("start", e))?,
        None => end.saturating_sub(step),
    };
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    if (end as i128 - start as i128) / step as i128 >= MAX_INTERVALS as i128 {
        return Err(ApiError::bad_data(format!(
            "the report would have more than {MAX_INTERVALS} intervals; increase step"
        )));
    }
    let format = match params.get("format").unwrap_or("json") {
        "json" => Format::Json,
        "csv" => Format::Csv,
        other => {
            return Err(ApiError::invalid_param(
                "format",
                format!("{other:?} is not json or csv"),
            ))
        }
    };
    let tenants: Vec<String> = params
        .get_all("tenant")
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let store = state.open_store()?;
    let task_state = Arc::clone(&state);
    let rows = tokio::task::spawn_blocking(move || {
        let Some(db) = store.get(&usage_tenant()) else {
            return Ok(Vec::new());
        };
        let mut rows = compute(&task_state.engine, &db, start, end, step)?;
        if !tenants.is_empty() {
            rows.retain(|r| tenants.contains(&r.tenant));
        }
        Ok::<_, ApiError>(rows)
    })
    .await
    .map_err(|e| ApiError::internal(format!("usage report task failed: {e}")))??;
    Ok(match format {
        Format::Json => {
            let body = serde_json::to_string(&Envelope {
                status: "success",
                data: Data {
                    start: rfc3339(start),
                    end: rfc3339(end),
                    step_seconds: step as f64 / 1000.0,
                    rows: &rows,
                },
            })
            .map_err(|e| ApiError::internal(e.to_string()))?;
            crate::query::json_response(body)
        }
        Format::Csv => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            to_csv(&rows),
        )
            .into_response(),
    })
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| ms.to_string())
}

/// A row's identity: tenant and attribution key (empty for the total row).
type RowKey = (String, AttrKey);

fn row_key(labels: &Labels) -> RowKey {
    let tenant = labels.get("tenant").unwrap_or_default().to_string();
    let attrs = labels
        .iter()
        .filter(|l| {
            !OWN_LABELS.contains(&l.name.as_str()) && l.name != "endpoint" && l.name != "location"
        })
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    (tenant, attrs)
}

fn instant(engine: &Engine, db: &Tsdb, expr: &str, t: i64) -> Result<Vec<(Labels, f64)>, ApiError> {
    let result = engine
        .instant_query(db, expr, t, &QueryOptions::default())
        .map_err(|e| ApiError::internal(format!("usage query {expr:?} failed: {e}")))?;
    Ok(match result.value {
        Value::Vector(samples) => samples.into_iter().map(|s| (s.labels, s.v)).collect(),
        _ => Vec::new(),
    })
}

/// Every row of the report, sorted by tenant, attribution and interval.
pub(crate) fn compute(
    engine: &Engine,
    db: &Tsdb,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Vec<Row>, ApiError> {
    let mut bounds = vec![start];
    let mut b = start;
    while b < end {
        b = (b + step).min(end);
        bounds.push(b);
    }
    // Cumulative counters at every boundary; the first looks further back.
    let mut counters: BTreeMap<Labels, Vec<Option<f64>>> = BTreeMap::new();
    for (i, &t) in bounds.iter().enumerate() {
        let window = if i == 0 {
            step.max(BASELINE_LOOKBACK_MS)
        } else {
            step
        };
        let expr = format!("last_over_time({{__name__=~\"cairn_usage_.+_total\"}}[{window}ms])");
        for (labels, v) in instant(engine, db, &expr, t)? {
            counters
                .entry(labels)
                .or_insert_with(|| vec![None; bounds.len()])[i] = Some(v);
        }
    }
    let mut rows: BTreeMap<(RowKey, usize), Row> = BTreeMap::new();
    fn row<'a>(
        rows: &'a mut BTreeMap<(RowKey, usize), Row>,
        bounds: &[i64],
        key: &RowKey,
        i: usize,
    ) -> &'a mut Row {
        rows.entry((key.clone(), i)).or_insert_with(|| {
            let total = key.1.is_empty();
            // Tenant rows have every column; attribution rows only some.
            let zero = total.then_some(0);
            Row {
                tenant: key.0.clone(),
                attribution: (!total).then(|| key.1.iter().cloned().collect()),
                interval_start: rfc3339(bounds[i]),
                interval_end: rfc3339(bounds[i + 1]),
                samples_ingested: zero,
                exemplars_received: zero,
                metadata_received: zero,
                series_created: zero,
                bytes_stored_disk: zero,
                bytes_stored_bucket: zero,
                queries: zero,
                queries_by_endpoint: total.then(BTreeMap::new),
                query_samples_scanned: zero,
                query_cpu_seconds: total.then_some(0.0),
                ..Row::default()
            }
        })
    }
    for (labels, values) in &counters {
        let key = row_key(labels);
        let name = labels.metric_name().unwrap_or_default();
        let reason = labels.get("reason").unwrap_or_default().to_string();
        for (i, delta) in increases(values).into_iter().enumerate() {
            let r = row(&mut rows, &bounds, &key, i);
            let n = delta.round() as u64;
            match name {
                names::SAMPLES_RECEIVED | names::ATTR_SAMPLES_RECEIVED => r.samples_received += n,
                names::SAMPLES_INGESTED => *r.samples_ingested.get_or_insert(0) += n,
                names::SAMPLES_DISCARDED | names::ATTR_SAMPLES_DISCARDED => {
                    r.samples_discarded += n;
                    *r.samples_discarded_by_reason
                        .entry(reason.clone())
                        .or_default() += n;
                }
                names::EXEMPLARS_RECEIVED => *r.exemplars_received.get_or_insert(0) += n,
                names::METADATA_RECEIVED => *r.metadata_received.get_or_insert(0) += n,
                names::SERIES_CREATED => *r.series_created.get_or_insert(0) += n,
                names::SERIES_SECONDS | names::ATTR_SERIES_SECONDS => {
                    r.series_hours += delta / 3600.0
                }
                names::QUERIES => {
                    *r.queries.get_or_insert(0) += n;
                    let endpoint = labels.get("endpoint").unwrap_or_default().to_string();
                    *r.queries_by_endpoint
                        .get_or_insert_with(BTreeMap::new)
                        .entry(endpoint)
                        .or_default() += n;
                }
                names::QUERY_SAMPLES_SCANNED => *r.query_samples_scanned.get_or_insert(0) += n,
                names::QUERY_CPU_SECONDS => *r.query_cpu_seconds.get_or_insert(0.0) += delta,
                _ => {}
            }
        }
    }
    // Gauges, per interval.
    for i in 0..bounds.len() - 1 {
        let (from, to) = (bounds[i], bounds[i + 1]);
        let window = (to - from).max(1);
        for metric in [names::ACTIVE_SERIES, names::ATTR_ACTIVE_SERIES] {
            for (labels, v) in instant(
                engine,
                db,
                &format!("avg_over_time({metric}[{window}ms])"),
                to,
            )? {
                row(&mut rows, &bounds, &row_key(&labels), i).active_series_avg = v;
            }
        }
        for metric in [names::ACTIVE_SERIES_MAX, names::ATTR_ACTIVE_SERIES] {
            for (labels, v) in instant(
                engine,
                db,
                &format!("max_over_time({metric}[{window}ms])"),
                to,
            )? {
                row(&mut rows, &bounds, &row_key(&labels), i).active_series_peak = v.round() as u64;
            }
        }
        let expr = format!("last_over_time({}[{window}ms])", names::BYTES_STORED);
        for (labels, v) in instant(engine, db, &expr, to)? {
            let r = row(&mut rows, &bounds, &row_key(&labels), i);
            let bytes = Some(v.round() as u64);
            match labels.get("location") {
                Some("disk") => r.bytes_stored_disk = bytes,
                Some("bucket") => r.bytes_stored_bucket = bytes,
                _ => {}
            }
        }
    }
    Ok(rows.into_values().collect())
}

/// Per interval, how much a cumulative counter grew: values at the
/// boundaries (`None`: no record near it, so the previous value carries
/// on; 0 before the first), and a drop is a reset counting from 0.
fn increases(values: &[Option<f64>]) -> Vec<f64> {
    let mut previous = values.first().copied().flatten().unwrap_or(0.0);
    values[1..]
        .iter()
        .map(|v| {
            let current = v.unwrap_or(previous);
            let delta = if current >= previous {
                current - previous
            } else {
                current
            };
            previous = current;
            delta
        })
        .collect()
}

const CSV_HEAD: [&str; 4] = ["tenant", "attribution", "interval_start", "interval_end"];

/// The report as CSV (RFC 4180), with a header row. Discards have one
/// column per reason present in the report (`discarded_<reason>`);
/// columns that do not apply to attribution rows are empty there.
pub(crate) fn to_csv(rows: &[Row]) -> String {
    let reasons: std::collections::BTreeSet<&str> = rows
        .iter()
        .flat_map(|r| r.samples_discarded_by_reason.keys().map(String::as_str))
        .collect();
    let mut out = String::new();
    let mut header: Vec<String> = CSV_HEAD.iter().map(|s| s.to_string()).collect();
    header.extend(["samples_received", "samples_ingested", "samples_discarded"].map(String::from));
    header.extend(reasons.iter().map(|r| format!("discarded_{r}")));
    header.extend(
        [
            "exemplars_received",
            "metadata_received",
            "series_created",
            "active_series_avg",
            "active_series_peak",
            "series_hours",
            "bytes_stored_disk",
            "bytes_stored_bucket",
            "queries",
            "query_samples_scanned",
            "query_cpu_seconds",
        ]
        .map(String::from),
    );
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        let attribution = r.attribution.as_ref().map_or(String::new(), |a| {
            a.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";")
        });
        let mut fields = vec![
            csv_field(&r.tenant),
            csv_field(&attribution),
            r.interval_start.clone(),
            r.interval_end.clone(),
            r.samples_received.to_string(),
            opt(r.samples_ingested),
            r.samples_discarded.to_string(),
        ];
        for reason in &reasons {
            fields.push(
                r.samples_discarded_by_reason
                    .get(*reason)
                    .copied()
                    .unwrap_or(0)
                    .to_string(),
            );
        }
        fields.extend([
            opt(r.exemplars_received),
            opt(r.metadata_received),
            opt(r.series_created),
            r.active_series_avg.to_string(),
            r.active_series_peak.to_string(),
            r.series_hours.to_string(),
            opt(r.bytes_stored_disk),
            opt(r.bytes_stored_bucket),
            opt(r.queries),
            opt(r.query_samples_scanned),
            r.query_cpu_seconds.map_or(String::new(), |v| v.to_string()),
        ]);
        let _ = write!(out, "{}\r\n", fields.join(","));
    }
    out
}

/// RFC 4180 quoting when the value needs it.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increases_carry_missing_values_and_count_resets_from_zero() {
        assert_eq!(increases(&[Some(10.0), Some(15.0), Some(15.0)]), [5.0, 0.0]);
        // No value at the start: the counter began inside the period.
        assert_eq!(increases(&[None, Some(7.0), Some(9.0)]), [7.0, 2.0]);
        // No record near a boundary: the previous value carries on.
        assert_eq!(increases(&[Some(1.0), None, Some(4.0)]), [0.0, 3.0]);
        // A reset: the counter lost its history and counts from 0.
        assert_eq!(increases(&[Some(100.0), Some(3.0)]), [3.0]);
    }

    #[test]
    fn csv_has_a_header_and_quotes_when_needed() {
        let mut by_reason = BTreeMap::new();
        by_reason.insert("too_far_in_future".to_string(), 2);
        let rows = vec![Row {
            tenant: "a".into(),
            attribution: Some([("team".to_string(), "x,y".to_string())].into()),
            interval_start: "s".into(),
            interval_end: "e".into(),
            samples_received: 5,
            samples_discarded: 2,
            samples_discarded_by_reason: by_reason,
            ..Row::default()
        }];
        let csv = to_csv(&rows);
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("tenant,attribution,interval_start,interval_end,samples_received,samples_ingested,samples_discarded,discarded_too_far_in_future,"));
        assert_eq!(
            lines.next().unwrap(),
            "a,\"team=x,y\",s,e,5,,2,2,,,,0,0,0,,,,,"
        );
    }
}
