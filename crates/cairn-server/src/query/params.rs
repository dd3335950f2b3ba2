//! Request parameters with Prometheus's parsing rules (`web/api/v1/api.go`
//! `parseTime`, `parseDuration`; `model.ParseDuration`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use cairn_model::parse_duration_ms;
use chrono::DateTime;

use crate::error::ApiError;

/// Parameters from the URL query string and, for form-encoded POSTs, the
/// body; body values come first, as Go's `Request.FormValue` reads them.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(body: Option<&[u8]>, query: Option<&str>) -> Params {
        let mut pairs = Vec::new();
        if let Some(body) = body {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(query) = query {
            pairs.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    /// The first value of `name`, if present and non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Every value of `name` (for `match[]`).
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Read endpoints take their parameters as this extractor: the query string
/// plus, for `application/x-www-form-urlencoded` requests, the body.
impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Params, ApiError> {
        let query = request.uri().query().map(str::to_string);
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::bad_data(format!("cannot read request body: {e}")))?;
        Ok(Params::parse(
            is_form.then_some(&body[..]),
            query.as_deref(),
        ))
    }
}

/// Prometheus's `parseTime`: Unix seconds with decimals (rounded to the
/// millisecond), or RFC 3339 with optional fractional seconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Some(seconds) = parse_go_float(s) {
        if !seconds.is_finite() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let whole = seconds.trunc();
        let fraction = ((seconds - whole) * 1000.0).round();
        let ms = whole * 1000.0 + fraction;
        if ms > i64::MAX as f64 || ms < i64::MIN as f64 {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        return Ok(ms as i64);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    // Prometheus's own boundary times (`MinTime`, `MaxTime` in web/api/v1),
    // which clients send as "no limit" and Go's parser cannot read.
    const GO_UNIX_TO_INTERNAL: i64 = 62_135_596_801;
    match s {
        "-292273086-05-16T16:47:06Z" => Ok((i64::MIN / 1000 + GO_UNIX_TO_INTERNAL) * 1000),
        "292277025-08-18T07:12:54.999999999Z" => {
            Ok((i64::MAX / 1000 - GO_UNIX_TO_INTERNAL) * 1000 + 999)
        }
        _ => Err(format!("cannot parse {s:?} to a valid timestamp")),
    }
}

/// Prometheus's `parseDuration`: float seconds or a Prometheus duration; in ms.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Some(seconds) = parse_go_float(s) {
        let ms = seconds * 1000.0;
        if !ms.is_finite() || ms > i64::MAX as f64 / 1e6 || ms < i64::MIN as f64 / 1e6 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(ms.round() as i64);
    }
    parse_duration_ms(s).map_err(|_| format!("cannot parse {s:?} to a valid duration"))
}

/// Go's `strconv.ParseFloat` accepts what Rust's does plus `Inf`/`+Inf`/`infinity`
/// spellings; Rust accepts `inf`, `infinity`, `nan` case-insensitively too.
/// Both reject empty strings. Hex floats are rare enough to ignore.
fn parse_go_float(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_prometheus_does() {
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(parse_time("1435781451"), Ok(1_435_781_451_000));
        assert_eq!(parse_time("-1.5"), Ok(-1_500));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51+02:00"),
            Ok(1_435_781_451_000)
        );
        assert_eq!(
            parse_time("yesterday"),
            Err("cannot parse \"yesterday\" to a valid timestamp".into())
        );
    }

    #[test]
    fn durations_parse_as_prometheus_does() {
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("100ms"), Ok(100));
        assert!(parse_duration("30s1m").is_err());
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn body_values_come_before_query_values() {
        let params = Params::parse(
            Some(b"query=up&match%5B%5D=a"),
            Some("query=down&match[]=b"),
        );
        assert_eq!(params.get("query"), Some("up"));
        assert_eq!(params.get_all("match[]"), vec!["a", "b"]);
    }
}
