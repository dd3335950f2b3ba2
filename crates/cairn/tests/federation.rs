//! Tenant federation end to end: `X-Scope-OrgID: a|b` on every read
//! endpoint, with Mimir's semantics (`__tenant_id__` on every series, a
//! stored `__tenant_id__` kept as `original___tenant_id__`, matchers on
//! `__tenant_id__` choosing tenants, the labels APIs listing it), and off by
//! default.

mod support;

use cairn_ingest::prompb;
use prost::Message;
use serde_json::{json, Value};
use support::{labels, now_minute_ms, series, Cairn};

struct Fixture {
    _dir: tempfile::TempDir,
    cairn: Cairn,
    /// Sample times are `base`, `base + 15s`, ... `base + 60s`.
    base: i64,
}

/// Tenants a and b each write `up{job=...}` (a: 2 series, b: 1 series with
/// a stored `__tenant_id__`), with metadata and an exemplar.
fn fixture(config: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("data"), config);
    let base = now_minute_ms() - 5 * 60_000;
    let samples = |v: f64| -> Vec<(i64, f64)> { (0..5).map(|i| (base + i * 15_000, v)).collect() };
    let mut a_api = series(&[("__name__", "up"), ("job", "api")], &samples(1.0));
    a_api.exemplars.push(prompb::Exemplar {
        labels: labels(&[("trace_id", "ta")]),
        value: 1.0,
        timestamp: base + 15_000,
    });
    let mut request = support::write_request(vec![
        a_api,
        series(&[("__name__", "up"), ("job", "db")], &samples(2.0)),
    ]);
    request.metadata.push(metadata("up", "a's help"));
    request.metadata.push(metadata("other", "same help"));
    assert_eq!(cairn.push(Some("a"), &request).0, 200);
    let mut b_up = series(
        &[
            ("__name__", "up"),
            ("job", "api"),
            ("__tenant_id__", "stored"),
        ],
        &samples(10.0),
    );
    b_up.exemplars.push(prompb::Exemplar {
        labels: labels(&[("trace_id", "tb")]),
        value: 10.0,
        timestamp: base + 15_000,
    });
    let mut request = support::write_request(vec![b_up]);
    request.metadata.push(metadata("up", "b's help"));
    request.metadata.push(metadata("other", "same help"));
    let (status, body) = cairn.push(Some("b"), &request);
    assert_eq!(status, 200, "{body}");
    Fixture {
        _dir: dir,
        cairn,
        base,
    }
}

fn metadata(name: &str, help: &str) -> prompb::MetricMetadata {
    prompb::MetricMetadata {
        r#type: prompb::metric_metadata::MetricType::Gauge as i32,
        metric_family_name: name.into(),
        help: help.into(),
        unit: String::new(),
    }
}

fn federated() -> Fixture {
    fixture("tenancy:\n  federation_enabled: true\n")
}

fn time(f: &Fixture) -> String {
    ((f.base + 60_000) / 1000).to_string()
}

/// `data.result` of an instant query, as `(metric, value)` pairs.
fn instant(f: &Fixture, tenants: &str, query: &str) -> Vec<(Value, String)> {
    let (status, body) = f.cairn.get_json(
        Some(tenants),
        "/prometheus/api/v1/query",
        &[("query", query), ("time", &time(f))],
    );
    assert_eq!(status, 200, "{query}: {body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"].clone(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn data(f: &Fixture, tenants: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = f.cairn.get_json(Some(tenants), path, params);
    assert_eq!(status, 200, "{path} {params:?}: {body}");
    body["data"].clone()
}

#[test]
fn federated_queries_return_every_tenants_series_labelled_with_its_tenant() {
    let f = federated();
    assert_eq!(
        instant(&f, "a|b", "up"),
        vec![
            (
                json!({"__name__": "up", "__tenant_id__": "a", "job": "api"}),
                "1".into()
            ),
            (
                json!({"__name__": "up", "__tenant_id__": "a", "job": "db"}),
                "2".into()
            ),
            (
                json!({"__name__": "up", "__tenant_id__": "b", "job": "api",
                       "original___tenant_id__": "stored"}),
                "10".into()
            ),
        ]
    );
    // The order of the list and repeats do not matter.
    assert_eq!(instant(&f, "b|a|b", "up"), instant(&f, "a|b", "up"));
    // One tenant, even when repeated, is not federated: no label is added
    // and the stored one stays as it is (Mimir's bypass for a single ID).
    assert_eq!(
        instant(&f, "b|b", "up"),
        vec![(
            json!({"__name__": "up", "__tenant_id__": "stored", "job": "api"}),
            "10".into()
        )]
    );
    // A tenant that never wrote adds nothing.
    assert_eq!(instant(&f, "a|b|nobody", "up").len(), 3);
}

#[test]
fn tenant_matchers_select_tenants_and_aggregate_by_tenant() {
    let f = federated();
    let only_a = instant(&f, "a|b", r#"{__tenant_id__="a"}"#);
    assert_eq!(only_a.len(), 2);
    assert!(only_a.iter().all(|(m, _)| m["__tenant_id__"] == "a"));
    assert_eq!(
        instant(&f, "a|b", r#"up{__tenant_id__=~"b|z"}"#)
            .into_iter()
            .map(|(_, v)| v)
            .collect::<Vec<_>>(),
        ["10"]
    );
    // A tenant outside the header is never read, whatever the matcher.
    assert!(instant(&f, "b|c", r#"{__tenant_id__="a"}"#).is_empty());
    // The stored label answers under its new name.
    let stored = instant(&f, "a|b", r#"up{original___tenant_id__="stored"}"#);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0["__tenant_id__"], "b");
    assert_eq!(
        instant(&f, "a|b", "sum by (__tenant_id__) (up)"),
        vec![
            (json!({"__tenant_id__": "a"}), "3".into()),
            (json!({"__tenant_id__": "b"}), "10".into()),
        ]
    );
    assert_eq!(
        instant(&f, "a|b", "count(up) by (job)"),
        vec![
            (json!({"job": "api"}), "2".into()),
            (json!({"job": "db"}), "1".into()),
        ]
    );
    // Range queries federate the same way.
    let start = (f.base / 1000).to_string();
    let end = time(&f);
    let (status, body) = f.cairn.get_json(
        Some("a|b"),
        "/api/v1/query_range",
        &[
            ("query", "sum by (__tenant_id__) (up)"),
            ("start", &start),
            ("end", &end),
            ("step", "15"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(result[1]["metric"], json!({"__tenant_id__": "b"}));
    assert_eq!(result[1]["values"].as_array().unwrap().len(), 5);
}

#[test]
fn series_and_label_apis_include_the_tenant_label() {
    let f = federated();
    let series = data(
        &f,
        "a|b",
        "/api/v1/series",
        &[("match[]", r#"up{job="api"}"#)],
    );
    assert_eq!(
        series,
        json!([
            {"__name__": "up", "__tenant_id__": "a", "job": "api"},
            {"__name__": "up", "__tenant_id__": "b", "job": "api",
             "original___tenant_id__": "stored"},
        ])
    );
    assert_eq!(
        data(&f, "a|b", "/prometheus/api/v1/labels", &[]),
        json!(["__name__", "__tenant_id__", "job", "original___tenant_id__"])
    );
    assert_eq!(
        data(&f, "a", "/api/v1/labels", &[]),
        json!(["__name__", "job"])
    );
    assert_eq!(
        data(&f, "a|b|nobody", "/api/v1/label/__tenant_id__/values", &[]),
        json!(["a", "b"])
    );
    assert_eq!(
        data(
            &f,
            "a|b",
            "/api/v1/label/__tenant_id__/values",
            &[("match[]", r#"up{job="db"}"#)]
        ),
        json!(["a"])
    );
    assert_eq!(
        data(
            &f,
            "a|b",
            "/api/v1/label/job/values",
            &[("match[]", r#"{__tenant_id__="b"}"#)]
        ),
        json!(["api"])
    );
    assert_eq!(
        data(
            &f,
            "a|b",
            "/api/v1/label/original___tenant_id__/values",
            &[]
        ),
        json!(["stored"])
    );
}

#[test]
fn metadata_merges_and_exemplars_carry_the_tenant() {
    let f = federated();
    // Identical entries of two tenants appear once; different ones each.
    assert_eq!(
        data(&f, "a|b", "/api/v1/metadata", &[]),
        json!({
            "other": [{"type": "gauge", "help": "same help", "unit": ""}],
            "up": [
                {"type": "gauge", "help": "a's help", "unit": ""},
                {"type": "gauge", "help": "b's help", "unit": ""},
            ],
        })
    );
    assert_eq!(
        data(
            &f,
            "a|b",
            "/api/v1/metadata",
            &[("limit_per_metric", "1"), ("metric", "up")]
        ),
        json!({"up": [{"type": "gauge", "help": "a's help", "unit": ""}]})
    );
    assert_eq!(
        data(&f, "b", "/api/v1/metadata", &[("metric", "up")]),
        json!({"up": [{"type": "gauge", "help": "b's help", "unit": ""}]})
    );
    let start = (f.base / 1000).to_string();
    let end = time(&f);
    let exemplars = data(
        &f,
        "a|b",
        "/api/v1/query_exemplars",
        &[("query", "up"), ("start", &start), ("end", &end)],
    );
    let tenants: Vec<&Value> = exemplars
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["seriesLabels"]["__tenant_id__"])
        .collect();
    assert_eq!(tenants, [&json!("a"), &json!("b")]);
    let only_b = data(
        &f,
        "a|b",
        "/api/v1/query_exemplars",
        &[
            ("query", r#"up{__tenant_id__="b"}"#),
            ("start", &start),
            ("end", &end),
        ],
    );
    assert_eq!(only_b.as_array().unwrap().len(), 1);
    assert_eq!(only_b[0]["exemplars"][0]["labels"]["trace_id"], "tb");
}

#[test]
fn remote_read_federates() {
    let f = federated();
    let request = prompb::ReadRequest {
        queries: vec![prompb::Query {
            start_timestamp_ms: f.base,
            end_timestamp_ms: f.base + 60_000,
            matchers: vec![
                prompb::LabelMatcher {
                    r#type: prompb::label_matcher::Type::Eq as i32,
                    name: "__name__".into(),
                    value: "up".into(),
                },
                prompb::LabelMatcher {
                    r#type: prompb::label_matcher::Type::Re as i32,
                    name: "__tenant_id__".into(),
                    value: "b|c".into(),
                },
            ],
            hints: None,
        }],
        accepted_response_types: vec![],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let response = f
        .cairn
        .client()
        .post(f.cairn.url("/prometheus/api/v1/read"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Scope-OrgID", "a|b")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&response.bytes().unwrap())
        .unwrap();
    let answer = prompb::ReadResponse::decode(raw.as_slice()).unwrap();
    let series = &answer.results[0].timeseries;
    assert_eq!(series.len(), 1);
    let pairs: Vec<(&str, &str)> = series[0]
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("__name__", "up"),
            ("__tenant_id__", "b"),
            ("job", "api"),
            ("original___tenant_id__", "stored")
        ]
    );
    assert_eq!(series[0].samples.len(), 5);
}

#[test]
fn federation_is_off_by_default_and_the_tenant_count_can_be_capped() {
    let f = fixture("");
    let (status, body) = f
        .cairn
        .get_json(Some("a|b"), "/api/v1/query", &[("query", "up")]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"],
        "tenant ID 'a|b' contains unsupported character '|'"
    );
    let capped = fixture("tenancy:\n  federation_enabled: true\n  federation_max_tenants: 2\n");
    assert_eq!(instant(&capped, "a|b", "up").len(), 3);
    let (status, body) = capped.cairn.get_json(Some("a|b|c"), "/api/v1/labels", &[]);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many tenant IDs present in the request: 3 (limit: 2)"),
        "{body}"
    );
}

#[test]
fn each_tenant_of_a_federated_query_reads_under_its_own_limits() {
    // One series per query and tenant: a has two `up` series, b one.
    let f = fixture(
        "tenancy:\n  federation_enabled: true\nlimits:\n  max_fetched_series_per_query: 1\n",
    );
    // One series from each tenant: each is within its own limit.
    assert_eq!(instant(&f, "a|b", r#"up{job="api"}"#).len(), 2);
    assert_eq!(instant(&f, "a|b", r#"up{__tenant_id__="b"}"#).len(), 1);
    let (status, body) = f.cairn.get_json(
        Some("a|b"),
        "/api/v1/query",
        &[("query", "up"), ("time", &time(&f))],
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("maximum number of series (limit: 1 series)"),
        "{body}"
    );
}
