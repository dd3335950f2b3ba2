//! `/api/v1/metadata` and `/api/v1/query_exemplars`, from the metadata and
//! exemplars remote write carried for the tenant (Prometheus reads its scrape
//! targets' metadata instead; the shape and parameters are the same:
//! `web/api/v1/api.go` `metricMetadata`, `queryExemplars`). Both federate
//! over `X-Scope-OrgID: a|b` ([`ReadTarget`]): metadata is merged, exemplar
//! series carry `__tenant_id__`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use cairn_model::{Matcher, MetricMetadata};
use promql_parser::parser::Expr;
use promql_parser::util::{walk_expr, ExprVisitor};

use super::json::{write_float, write_json_string, write_labels, write_timestamp};
use super::scheduler::run_read;
use super::{go_atoi, selector_matchers, success_data, time_range, Params};
use crate::app::AppState;
use crate::error::ApiError;
use crate::federation::ReadTarget;

/// `GET|POST /api/v1/metadata`: `{"<metric>":[{"type","help","unit"}]}`.
pub(crate) async fn metadata(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    // As Prometheus: negative means no limit; 0 returns nothing.
    let limit = number_param(&params, "limit")?.unwrap_or(-1);
    // As Prometheus: a non-positive per-metric limit means no limit.
    let limit_per_metric = number_param(&params, "limit_per_metric")?.unwrap_or(-1);
    let metric = params.get("metric").map(str::to_string);
    // An in-memory map per tenant: read here, without a query worker.
    let all = ReadTarget::from_request(&state, &headers)?.metadata();
    Ok(success_data(
        &metadata_json(&all, metric.as_deref(), limit, limit_per_metric),
        &[],
    ))
}

/// `{"<metric>":[{"type","help","unit"},...],...}` from entries sorted by
/// metric family name; a federated read may have several per metric.
fn metadata_json(
    all: &[MetricMetadata],
    metric: Option<&str>,
    limit: i64,
    limit_per_metric: i64,
) -> String {
    let mut data = String::from("{");
    let mut metrics_written: i64 = 0;
    let mut i = 0;
    while i < all.len() {
        let name = &all[i].metric_family_name;
        let end = i + all[i..]
            .iter()
            .take_while(|m| &m.metric_family_name == name)
            .count();
        let entries = &all[i..end];
        i = end;
        if metric.is_some_and(|wanted| wanted != name) {
            continue;
        }
        if limit >= 0 && metrics_written >= limit {
            break;
        }
        if metrics_written > 0 {
            data.push(',');
        }
        metrics_written += 1;
        write_json_string(&mut data, name);
        data.push_str(":[");
        let keep = if limit_per_metric > 0 {
            entries.len().min(limit_per_metric as usize)
        } else {
            entries.len()
        };
        for (j, m) in entries[..keep].iter().enumerate() {
            if j > 0 {
                data.push(',');
            }
            data.push_str(r#"{"type":"#);
            write_json_string(&mut data, m.metric_type.as_str());
            data.push_str(r#","help":"#);
            write_json_string(&mut data, &m.help);
            data.push_str(r#","unit":"#);
            write_json_string(&mut data, &m.unit);
            data.push('}');
        }
        data.push(']');
    }
    data.push('}');
    data
}

/// `limit` and `limit_per_metric` of the metadata endpoint: Go's `Atoi`,
/// with the endpoint's own error text.
fn number_param(params: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(value) => go_atoi(value)
            .map(Some)
            .map_err(|_| ApiError::bad_data(format!("{name} must be a number"))),
    }
}

/// `GET|POST /api/v1/query_exemplars`.
pub(crate) async fn query_exemplars(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let range = time_range(&params)?;
    if range.end < range.start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start timestamp",
        ));
    }
    let expr = params.get("query").unwrap_or_default();
    let parsed = cairn_promql::parse_expr(expr).map_err(|e| ApiError::bad_data(e.to_string()))?;
    let matcher_sets = extract_selectors(&parsed)?;
    if matcher_sets.is_empty() {
        // Prometheus answers `data: null` for a query without selectors.
        return Ok(success_data("null", &[]));
    }
    let target = ReadTarget::from_request(&state, &headers)?;
    let found = run_read(&state, target, move |target| {
        target.exemplars(&matcher_sets, range)
    })
    .await?;
    let mut data = String::from("[");
    for (i, (series, exemplars)) in found.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        data.push_str(r#"{"seriesLabels":"#);
        write_labels(&mut data, series);
        data.push_str(r#","exemplars":["#);
        for (j, exemplar) in exemplars.iter().enumerate() {
            if j > 0 {
                data.push(',');
            }
            data.push_str(r#"{"labels":"#);
            write_labels(&mut data, &exemplar.labels);
            data.push_str(r#","value":"#);
            write_float(&mut data, exemplar.value);
            data.push_str(r#","timestamp":"#);
            write_timestamp(&mut data, exemplar.t);
            data.push('}');
        }
        data.push_str("]}");
    }
    data.push(']');
    Ok(success_data(&data, &[]))
}

/// Prometheus's `parser.ExtractSelectors`: the matchers of every vector
/// selector, including those inside range selectors.
fn extract_selectors(expr: &Expr) -> Result<Vec<Vec<Matcher>>, ApiError> {
    struct Collect(Vec<Vec<Matcher>>);
    impl ExprVisitor for Collect {
        type Error = ApiError;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ApiError> {
            match expr {
                Expr::VectorSelector(vs) => self.0.push(selector_matchers(vs)?),
                Expr::MatrixSelector(ms) => self.0.push(selector_matchers(&ms.vs)?),
                _ => {}
            }
            Ok(true)
        }
    }
    let mut collect = Collect(Vec::new());
    walk_expr(&mut collect, expr)?;
    Ok(collect.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_extracted_from_every_depth() {
        let expr = promql_parser::parser::parse(
            r#"sum(rate(a{x="1"}[5m])) / on() b + count_over_time(c[1m:10s])"#,
        )
        .unwrap();
        let sets = extract_selectors(&expr).unwrap();
        let names: Vec<String> = sets.iter().map(|s| s[0].value.clone()).collect();
        assert_eq!(names, vec!["a", "b", "c"]);
        let literal = promql_parser::parser::parse("1 + 2").unwrap();
        assert!(extract_selectors(&literal).unwrap().is_empty());
    }
}
