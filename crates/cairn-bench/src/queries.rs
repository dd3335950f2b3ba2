//! The fixed dashboard query set, how each target's answer is read, and how
//! answers are compared.
//!
//! Evaluation times sit on whole minutes (multiples of every step) and the
//! samples 8 s before them (see `compare`), so no sample lies on a range
//! window's boundary: Prometheus 2.x (closed `[t-r, t]` windows), Prometheus
//! 3 and Cairn (left-open) and VictoriaMetrics select the same samples, and
//! VictoriaMetrics's step alignment leaves start and end where they are.
//!
//! Comparison: Prometheus's answer is the reference. Another target matches
//! when it has the same series (label sets), the same timestamps per series,
//! and every value within the query's relative tolerance. Cairn implements
//! Prometheus's semantics, so its tolerance is 1e-9 everywhere. For
//! VictoriaMetrics the queries built on `rate` get 5 %: MetricsQL's `rate`
//! does not extrapolate to the window's edges but takes the last sample
//! before the window as its starting point (by design, documented in
//! MetricsQL's "rate" notes), so its per-series rates differ from
//! Prometheus's by up to the counter's jitter over one scrape interval.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One dashboard query.
pub struct Query {
    pub name: &'static str,
    pub expr: &'static str,
    pub range: bool,
    /// Relative tolerance against Prometheus for VictoriaMetrics.
    pub vm_tolerance: f64,
}

const EXACT: f64 = 1e-9;
const RATE: f64 = 0.05;

/// The 14 queries, in the order they are reported.
pub const QUERIES: &[Query] = &[
    Query {
        name: "cpu_rate_by_instance",
        expr: r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#,
        range: false,
        vm_tolerance: RATE,
    },
    Query {
        name: "cpu_rate_by_instance_region",
        expr: r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle",region="eu-west"}[5m]))"#,
        range: true,
        vm_tolerance: RATE,
    },
    Query {
        name: "latency_p99_by_handler",
        expr: r#"histogram_quantile(0.99, sum by (le, handler) (rate(http_request_duration_seconds_bucket[5m])))"#,
        range: true,
        vm_tolerance: RATE,
    },
    Query {
        name: "latency_p90_one_handler",
        expr: r#"histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{handler="/api/v1/query"}[5m])))"#,
        range: false,
        vm_tolerance: RATE,
    },
    Query {
        name: "topk_mem_available",
        expr: r#"topk(10, node_memory_MemAvailable_bytes)"#,
        range: false,
        vm_tolerance: EXACT,
    },
    Query {
        name: "topk_load_avg",
        expr: r#"topk(5, avg_over_time(node_load1[5m]))"#,
        range: true,
        vm_tolerance: EXACT,
    },
    Query {
        name: "count_by_mode",
        expr: r#"count by (mode) (node_cpu_seconds_total)"#,
        range: false,
        vm_tolerance: EXACT,
    },
    Query {
        name: "count_by_region",
        expr: r#"count by (region) (node_filesystem_avail_bytes)"#,
        range: true,
        vm_tolerance: EXACT,
    },
    Query {
        name: "regex_fs_avail",
        expr: r#"sum(node_filesystem_avail_bytes{mountpoint=~"/|/home",instance=~"10\\.0\\.1\\..*"})"#,
        range: false,
        vm_tolerance: EXACT,
    },
    Query {
        name: "regex_net_tx_by_device",
        expr: r#"sum by (device) (rate(node_network_transmit_bytes_total{device!~"lo|veth.*"}[5m]))"#,
        range: true,
        vm_tolerance: RATE,
    },
    Query {
        name: "load_avg_over_time_by_region",
        expr: r#"avg by (region) (avg_over_time(node_load1[5m]))"#,
        range: true,
        vm_tolerance: EXACT,
    },
    Query {
        name: "mem_avg_over_time_1h_one_host",
        expr: r#"avg_over_time(node_memory_MemAvailable_bytes{instance="10.0.0.1:9100"}[1h])"#,
        range: false,
        vm_tolerance: EXACT,
    },
    Query {
        name: "count_all_series",
        expr: r#"count({__name__=~".+"})"#,
        range: false,
        vm_tolerance: EXACT,
    },
    Query {
        name: "count_all_series_range",
        expr: r#"count({__name__=~".+"})"#,
        range: true,
        vm_tolerance: EXACT,
    },
];

/// When the queries are evaluated, in ms.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
}

/// One target's API.
pub struct Endpoint {
    pub api_url: String,
    pub tenant: Option<String>,
}

/// A canonical answer: series (sorted `name="value"` pairs) → points.
pub type Answer = BTreeMap<String, Vec<(i64, f64)>>;

/// Runs `query` once; returns the wall time and the raw body.
pub fn run(
    client: &reqwest::blocking::Client,
    endpoint: &Endpoint,
    query: &Query,
    window: Window,
) -> Result<(Duration, Vec<u8>), String> {
    let seconds = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    let request = if query.range {
        client
            .get(format!("{}/query_range", endpoint.api_url))
            .query(&[
                ("query", query.expr.to_string()),
                ("start", seconds(window.start_ms)),
                ("end", seconds(window.end_ms)),
                ("step", seconds(window.step_ms)),
            ])
    } else {
        client.get(format!("{}/query", endpoint.api_url)).query(&[
            ("query", query.expr.to_string()),
            ("time", seconds(window.end_ms)),
        ])
    };
    let request = match &endpoint.tenant {
        Some(tenant) => request.header("X-Scope-OrgID", tenant),
        None => request,
    };
    let started = Instant::now();
    let response = request.send().map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    if !status.is_success() {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(500)])
        ));
    }
    Ok((elapsed, body.to_vec()))
}

/// Parses a `query` or `query_range` answer into an [`Answer`].
pub fn parse(body: &[u8]) -> Result<Answer, String> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if json["status"] != "success" {
        return Err(format!("status {}", json["status"]));
    }
    let data = &json["data"];
    let point = |p: &serde_json::Value| -> (i64, f64) {
        let t = p[0].as_f64().unwrap_or(f64::NAN);
        let v = p[1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        ((t * 1000.0).round() as i64, v)
    };
    let mut answer = Answer::new();
    match data["resultType"].as_str() {
        Some("scalar") => {
            answer.insert("{}".into(), vec![point(&data["result"])]);
        }
        Some("vector") | Some("matrix") => {
            for series in data["result"].as_array().into_iter().flatten() {
                let mut labels: Vec<(String, String)> = series["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect();
                labels.sort();
                let key = format!(
                    "{{{}}}",
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let points: Vec<(i64, f64)> = if series["values"].is_array() {
                    series["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(point)
                        .collect()
                } else {
                    vec![point(&series["value"])]
                };
                answer.insert(key, points);
            }
        }
        other => return Err(format!("unexpected resultType {other:?}")),
    }
    Ok(answer)
}

/// How `other` compares with the reference.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub matches: bool,
    pub tolerance: f64,
    pub reference_series: usize,
    pub reference_points: usize,
    pub missing_series: usize,
    pub extra_series: usize,
    /// Points whose timestamps differ, or missing/extra points in a common series.
    pub timestamp_mismatches: usize,
    pub values_outside_tolerance: usize,
    /// Largest relative difference of a common point.
    pub max_relative_difference: f64,
    /// A first example of a difference, if any.
    pub example: Option<String>,
}

pub fn compare(reference: &Answer, other: &Answer, tolerance: f64) -> Check {
    let mut check = Check {
        matches: true,
        tolerance,
        reference_series: reference.len(),
        reference_points: reference.values().map(Vec::len).sum(),
        missing_series: 0,
        extra_series: 0,
        timestamp_mismatches: 0,
        values_outside_tolerance: 0,
        max_relative_difference: 0.0,
        example: None,
    };
    for (key, points) in reference {
        let Some(theirs) = other.get(key) else {
            check.missing_series += 1;
            check
                .example
                .get_or_insert_with(|| format!("missing series {key}"));
            continue;
        };
        let mine: BTreeMap<i64, f64> = points.iter().copied().collect();
        let theirs: BTreeMap<i64, f64> = theirs.iter().copied().collect();
        for (t, a) in &mine {
            let Some(b) = theirs.get(t) else {
                check.timestamp_mismatches += 1;
                check
                    .example
                    .get_or_insert_with(|| format!("{key}: no point at {t}"));
                continue;
            };
            let diff = relative_difference(*a, *b);
            check.max_relative_difference = check.max_relative_difference.max(diff);
            if diff > tolerance {
                check.values_outside_tolerance += 1;
                check
                    .example
                    .get_or_insert_with(|| format!("{key} at {t}: {a} vs {b}"));
            }
        }
        check.timestamp_mismatches += theirs.keys().filter(|t| !mine.contains_key(t)).count();
    }
    check.extra_series = other.keys().filter(|k| !reference.contains_key(*k)).count();
    if let Some(key) = other.keys().find(|k| !reference.contains_key(*k)) {
        let extra = format!("extra series {key}");
        check.example = Some(match check.example.take() {
            Some(first) => format!("{first}; {extra}"),
            None => extra,
        });
    }
    check.matches = check.missing_series == 0
        && check.extra_series == 0
        && check.timestamp_mismatches == 0
        && check.values_outside_tolerance == 0;
    check
}

fn relative_difference(a: f64, b: f64) -> f64 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0.0;
    }
    if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
        return f64::INFINITY;
    }
    (a - b).abs() / a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median of unsorted values (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}
