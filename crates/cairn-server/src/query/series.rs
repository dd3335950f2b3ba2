//! Series and label lookups: `/api/v1/series`, `/api/v1/labels` and
//! `/api/v1/label/<name>/values`, with Prometheus's parameter rules
//! (`web/api/v1/api.go` `series`, `labelNames`, `labelValues`).
//!
//! All three read `match[]` (series selectors, unioned), `start`/`end`
//! (defaulting to the whole time line) and `limit` (0 = none; more results
//! than the limit are cut with the warning `results truncated due to limit`).
//! Output is sorted and `[]`, never `null`, when empty.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use cairn_model::Labels;

use super::json::{write_json_string, write_labels};
use super::params::Params;
use super::{
    go_quote, parse_limit, parse_match_params, run_on_tenant, success_data, time_range,
    TRUNCATED_WARNING,
};
use crate::app::AppState;
use crate::error::ApiError;

/// `GET|POST /api/v1/series`.
pub(crate) async fn series(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let selectors = params.get_all("match[]");
    if selectors.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let range = time_range(&params)?;
    let limit = parse_limit(&params)?;
    // Unlike labels and label values, series wraps matcher errors as an
    // invalid `match[]` parameter (Prometheus's `series`).
    let matcher_sets = parse_match_params(&selectors)
        .map_err(|e| ApiError::invalid_param("match[]", e.message))?;
    let found = run_on_tenant(&state, &headers, move |db| {
        let mut all: BTreeSet<Labels> = BTreeSet::new();
        for matchers in &matcher_sets {
            all.extend(db.series_labels(matchers, range)?);
        }
        Ok(all.into_iter().collect::<Vec<Labels>>())
    })
    .await?;
    let (found, warnings) = truncate(found, limit);
    let mut data = String::with_capacity(64 * found.len() + 2);
    data.push('[');
    for (i, labels) in found.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        write_labels(&mut data, labels);
    }
    data.push(']');
    Ok(success_data(&data, &warnings))
}

/// `GET|POST /api/v1/labels`.
pub(crate) async fn label_names(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let range = time_range(&params)?;
    let limit = parse_limit(&params)?;
    let matcher_sets = parse_match_params(&params.get_all("match[]"))?;
    let names = run_on_tenant(&state, &headers, move |db| {
        if matcher_sets.is_empty() {
            return db.label_names(&[], range);
        }
        let mut all: BTreeSet<String> = BTreeSet::new();
        for matchers in &matcher_sets {
            all.extend(db.label_names(matchers, range)?);
        }
        Ok(all.into_iter().collect())
    })
    .await?;
    let (names, warnings) = truncate(names, limit);
    Ok(success_data(&string_array(&names), &warnings))
}

/// `GET|POST /api/v1/label/<name>/values`. The name may be in Prometheus's
/// `U__` value-encoding escape (UTF-8 label names in a URL path).
pub(crate) async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let name = if name.starts_with("U__") {
        unescape_label_name(&name)
    } else {
        name
    };
    // Prometheus 3 validates names as UTF-8 (the path is already UTF-8);
    // only the empty name is invalid.
    if name.is_empty() {
        return Err(ApiError::bad_data(format!(
            "invalid label name: {}",
            go_quote(&name)
        )));
    }
    let range = time_range(&params)?;
    let limit = parse_limit(&params)?;
    let matcher_sets = parse_match_params(&params.get_all("match[]"))?;
    let values = run_on_tenant(&state, &headers, move |db| {
        if matcher_sets.is_empty() {
            return db.label_values(&name, &[], range);
        }
        let mut all: BTreeSet<String> = BTreeSet::new();
        for matchers in &matcher_sets {
            all.extend(db.label_values(&name, matchers, range)?);
        }
        Ok(all.into_iter().collect())
    })
    .await?;
    let (values, warnings) = truncate(values, limit);
    Ok(success_data(&string_array(&values), &warnings))
}

/// Cuts `items` to `limit` (0 = no limit) with Prometheus's warning.
fn truncate<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, Vec<String>) {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        return (items, vec![TRUNCATED_WARNING.to_string()]);
    }
    (items, Vec::new())
}

fn string_array(strings: &[String]) -> String {
    let mut out = String::with_capacity(2 + strings.iter().map(|s| s.len() + 3).sum::<usize>());
    out.push('[');
    for (i, s) in strings.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(&mut out, s);
    }
    out.push(']');
    out
}

/// Prometheus's `model.UnescapeName(name, ValueEncodingEscaping)`: after the
/// `U__` prefix, `__` is `_` and `_<hex>_` is the code point `<hex>`; any
/// malformed escape leaves the name as it was.
pub fn unescape_label_name(name: &str) -> String {
    let Some(escaped) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let bytes = escaped.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'_' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        i += 1;
        if i >= bytes.len() {
            return name.to_string();
        }
        if bytes[i] == b'_' {
            out.push(b'_');
            i += 1;
            continue;
        }
        let mut code: u32 = 0;
        let mut digits = 0;
        loop {
            if i >= bytes.len() || digits >= 6 {
                return name.to_string();
            }
            if bytes[i] == b'_' {
                let Some(c) = char::from_u32(code) else {
                    return name.to_string();
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 1;
                break;
            }
            let Some(digit) = (bytes[i] as char).to_digit(16) else {
                return name.to_string();
            };
            code = code * 16 + digit;
            digits += 1;
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u_escaped_label_names_are_unescaped_as_prometheus_does() {
        assert_eq!(unescape_label_name("U__my_2e_label"), "my.label");
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
        assert_eq!(unescape_label_name("U___1f600_"), "\u{1f600}");
        assert_eq!(unescape_label_name("U__bad_zz_"), "U__bad_zz_");
        assert_eq!(unescape_label_name("U__open_2e"), "U__open_2e");
        assert_eq!(unescape_label_name("U__trailing_"), "U__trailing_");
        assert_eq!(unescape_label_name("plain"), "plain");
    }

    #[test]
    fn truncation_warns_only_when_something_was_cut() {
        assert_eq!(truncate(vec![1, 2], 2), (vec![1, 2], vec![]));
        assert_eq!(
            truncate(vec![1, 2, 3], 2),
            (vec![1, 2], vec![TRUNCATED_WARNING.to_string()])
        );
        assert_eq!(truncate(vec![1, 2, 3], 0), (vec![1, 2, 3], vec![]));
    }
}
