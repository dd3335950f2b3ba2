//! `/api/v1/status/*` and `/api/v1/format_query`.
//!
//! Build info has Mimir's shape (`application`, `version`, ..., `features`):
//! Grafana reads the version from it, and a non-empty `features` map makes
//! it treat the store as Mimir-like. Feature values are the strings
//! `"true"`/`"false"`, as Mimir writes them, and say only what Cairn does
//! today. Config and flags are compatibility answers, as Mimir's are.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;

use super::json::write_json_string;
use super::params::Params;
use super::success_data;
use crate::app::AppState;
use crate::error::ApiError;

/// Mimir's buildinfo features and whether Cairn has each.
const FEATURES: [(&str, bool); 4] = [
    // No `<prefix>/config/v1/rules` API yet.
    ("ruler_config_api", false),
    // No `/api/v1/alerts` Alertmanager configuration API.
    ("alertmanager_config_api", false),
    // Queries are not split into shards.
    ("query_sharding", false),
    // No federated (multi-tenant) rule groups.
    ("federated_rules", false),
];

/// `GET /api/v1/status/buildinfo`.
pub(crate) async fn buildinfo() -> Response {
    let mut data = String::from(r#"{"application":"Cairn","version":"#);
    write_json_string(&mut data, env!("CARGO_PKG_VERSION"));
    data.push_str(r#","revision":"","branch":"","goVersion":"","features":{"#);
    for (i, (name, enabled)) in FEATURES.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        write_json_string(&mut data, name);
        data.push(':');
        write_json_string(&mut data, if *enabled { "true" } else { "false" });
    }
    data.push_str("}}");
    success_data(&data, &[])
}

/// `GET /api/v1/status/config`: Prometheus's `{"yaml": ...}`; Cairn has no
/// Prometheus configuration (scrapes, rules), so it is empty.
pub(crate) async fn config() -> Response {
    success_data(r#"{"yaml":""}"#, &[])
}

/// `GET /api/v1/status/flags`: Cairn has no Prometheus flags.
pub(crate) async fn flags() -> Response {
    success_data("{}", &[])
}

/// `GET|POST /api/v1/format_query`: the query, parsed and pretty-printed.
pub(crate) async fn format_query(
    State(_state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    let expr = params.get("query").unwrap_or_default();
    let parsed = cairn_promql::parse_expr(expr).map_err(|e| ApiError::invalid_param("query", e))?;
    let mut data = String::new();
    write_json_string(&mut data, &parsed.prettify());
    Ok(success_data(&data, &[]))
}
