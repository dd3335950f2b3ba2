//! `/api/v1/metadata` and `/api/v1/query_exemplars`, from the metadata and
//! exemplars remote write carried for the tenant (Prometheus reads its scrape
//! targets' metadata instead; the shape and parameters are the same:
//! `web/api/v1/api.go` `metricMetadata`, `queryExemplars`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use cairn_model::{Exemplar, Labels, Matcher, TimeRange};
use promql_parser::parser::Expr;
use promql_parser::util::{walk_expr, ExprVisitor};

use super::json::{write_float, write_json_string, write_labels, write_timestamp};
use super::{go_atoi, selector_matchers, success_data, tenant_db, time_range, Params};
use crate::app::AppState;
use crate::error::ApiError;

/// `GET|POST /api/v1/metadata`: `{"<metric>":[{"type","help","unit"}]}`.
pub(crate) async fn metadata(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    // As Prometheus: negative means no limit; 0 returns nothing.
    let limit = number_param(&params, "limit")?.unwrap_or(-1);
    // Each metric has one entry here, so any positive per-metric limit keeps
    // it; the parameter is still validated as Prometheus does.
    let _limit_per_metric = number_param(&params, "limit_per_metric")?;
    let metric = params.get("metric").map(str::to_string);
    let db = tenant_db(&state, &headers)?;
    let all = db.map(|db| db.metadata()).unwrap_or_default();
    let mut data = String::from("{");
    let mut written: i64 = 0;
    for m in &all {
        if metric
            .as_deref()
            .is_some_and(|wanted| wanted != m.metric_family_name)
        {
            continue;
        }
        if limit >= 0 && written >= limit {
            break;
        }
        if written > 0 {
            data.push(',');
        }
        written += 1;
        write_json_string(&mut data, &m.metric_family_name);
        data.push_str(r#":[{"type":"#);
        write_json_string(&mut data, m.metric_type.as_str());
        data.push_str(r#","help":"#);
        write_json_string(&mut data, &m.help);
        data.push_str(r#","unit":"#);
        write_json_string(&mut data, &m.unit);
        data.push_str("}]");
    }
    data.push('}');
    Ok(success_data(&data, &[]))
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
    let db = tenant_db(&state, &headers)?;
    let found = match db {
        None => Vec::new(),
        Some(db) => {
            tokio::task::spawn_blocking(move || select_exemplars(&db, &matcher_sets, range))
                .await
                .map_err(|e| ApiError::internal(format!("exemplar task failed: {e}")))?
        }
    };
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

/// Exemplars of series matching any of the sets, each series once, sorted by labels.
fn select_exemplars(
    db: &cairn_tsdb::Tsdb,
    matcher_sets: &[Vec<Matcher>],
    range: TimeRange,
) -> Vec<(Labels, Vec<Exemplar>)> {
    let mut by_series: BTreeMap<Labels, Vec<Exemplar>> = BTreeMap::new();
    for matchers in matcher_sets {
        for (labels, exemplars) in db.exemplars(matchers, range) {
            by_series.entry(labels).or_insert(exemplars);
        }
    }
    by_series.into_iter().collect()
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
