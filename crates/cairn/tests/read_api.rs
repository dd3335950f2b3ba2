//! The Prometheus HTTP read API beyond `query`/`query_range`: series, labels,
//! label values, metadata, exemplars, status endpoints, `stats` and `limit`,
//! against the real binary. Every endpoint is checked with and without the
//! `/prometheus` prefix, as GET and as form-encoded POST, for one tenant only;
//! error texts are Prometheus's (`web/api/v1/api.go`).

mod support;

use cairn_ingest::prompb;
use serde_json::{json, Value};
use support::{labels, now_minute_ms, series, Cairn};

const TENANT: &str = "team-a";
const OTHER: &str = "team-b";

/// Pushes a small fixed data set; returns the timestamp of the first sample.
fn seed(cairn: &Cairn) -> i64 {
    let base = now_minute_ms() - 10 * 60_000;
    let samples: Vec<(i64, f64)> = (0..8).map(|i| (base + i * 15_000, i as f64)).collect();
    let mut with_exemplar = series(
        &[
            ("__name__", "http_requests_total"),
            ("code", "200"),
            ("instance", "a"),
            ("job", "api"),
        ],
        &samples,
    );
    with_exemplar.exemplars.push(prompb::Exemplar {
        labels: labels(&[("trace_id", "abc123")]),
        value: 3.0,
        timestamp: base + 45_000,
    });
    let mut request = support::write_request(vec![
        with_exemplar,
        series(
            &[
                ("__name__", "http_requests_total"),
                ("code", "500"),
                ("instance", "b"),
                ("job", "api"),
            ],
            &samples,
        ),
        series(
            &[("__name__", "up"), ("instance", "a"), ("job", "api")],
            &samples,
        ),
    ]);
    request.metadata.push(prompb::MetricMetadata {
        r#type: prompb::metric_metadata::MetricType::Counter as i32,
        metric_family_name: "http_requests_total".into(),
        help: "Total requests.".into(),
        unit: String::new(),
    });
    request.metadata.push(prompb::MetricMetadata {
        r#type: prompb::metric_metadata::MetricType::Gauge as i32,
        metric_family_name: "up".into(),
        help: "Whether the target is up.".into(),
        unit: String::new(),
    });
    assert_eq!(cairn.push(Some(TENANT), &request).0, 200);
    let other = support::write_request(vec![series(
        &[("__name__", "temperature"), ("room", "kitchen")],
        &samples,
    )]);
    assert_eq!(cairn.push(Some(OTHER), &other).0, 200);
    base
}

/// The same request four ways (prefix or not, GET or POST); all must agree.
fn read_all_ways(cairn: &Cairn, tenant: &str, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let first = cairn.get_json(Some(tenant), path, params);
    for prefix in ["", "/prometheus"] {
        let full = format!("{prefix}{path}");
        let get = cairn.get_json(Some(tenant), &full, params);
        assert_eq!(get, first, "GET {full} {params:?}");
        let post = cairn.post_form_json(Some(tenant), &full, params);
        assert_eq!(post, first, "POST {full} {params:?}");
    }
    first
}

fn ok_data(cairn: &Cairn, tenant: &str, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = read_all_ways(cairn, tenant, path, params);
    assert_eq!(status, 200, "{path} {params:?}: {body}");
    assert_eq!(body["status"], "success");
    assert!(body.get("warnings").is_none(), "{body}");
    body["data"].clone()
}

fn bad_data(cairn: &Cairn, path: &str, params: &[(&str, &str)]) -> String {
    let (status, body) = read_all_ways(cairn, TENANT, path, params);
    assert_eq!(status, 400, "{path} {params:?}: {body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    body["error"].as_str().unwrap().to_string()
}

#[test]
fn series_labels_and_label_values_answer_as_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");
    let base = seed(&cairn);

    // Series: sorted, unioned over match[], deduplicated.
    let data = ok_data(
        &cairn,
        TENANT,
        "/api/v1/series",
        &[
            ("match[]", "http_requests_total"),
            ("match[]", r#"{instance="a"}"#),
        ],
    );
    assert_eq!(
        data,
        json!([
            {"__name__":"http_requests_total","code":"200","instance":"a","job":"api"},
            {"__name__":"http_requests_total","code":"500","instance":"b","job":"api"},
            {"__name__":"up","instance":"a","job":"api"},
        ])
    );
    // Grafana's series-mode metric browser selector.
    let data = ok_data(
        &cairn,
        TENANT,
        "/api/v1/series",
        &[("match[]", r#"{__name__!=""}"#), ("limit", "40000")],
    );
    assert_eq!(data.as_array().unwrap().len(), 3);
    // Time bounds: nothing before the first sample.
    let before = ((base - 600_000) / 1000).to_string();
    let just_before = ((base - 1_000) / 1000).to_string();
    let data = ok_data(
        &cairn,
        TENANT,
        "/api/v1/series",
        &[("match[]", "up"), ("start", &before), ("end", &just_before)],
    );
    assert_eq!(data, json!([]));
    // Another tenant's data is invisible.
    let data = ok_data(&cairn, OTHER, "/api/v1/series", &[("match[]", "up")]);
    assert_eq!(data, json!([]));
    let data = ok_data(&cairn, "nobody", "/api/v1/labels", &[]);
    assert_eq!(data, json!([]));

    // Limit: truncated with a warning, only when something was cut.
    let (status, body) = read_all_ways(
        &cairn,
        TENANT,
        "/api/v1/series",
        &[("match[]", "http_requests_total"), ("limit", "1")],
    );
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));
    ok_data(
        &cairn,
        TENANT,
        "/api/v1/series",
        &[("match[]", "http_requests_total"), ("limit", "2")],
    );

    // Label names.
    let data = ok_data(&cairn, TENANT, "/api/v1/labels", &[]);
    assert_eq!(data, json!(["__name__", "code", "instance", "job"]));
    let data = ok_data(&cairn, TENANT, "/api/v1/labels", &[("match[]", "up")]);
    assert_eq!(data, json!(["__name__", "instance", "job"]));
    let data = ok_data(&cairn, OTHER, "/api/v1/labels", &[]);
    assert_eq!(data, json!(["__name__", "room"]));
    let (_, body) = read_all_ways(&cairn, TENANT, "/api/v1/labels", &[("limit", "2")]);
    assert_eq!(body["data"], json!(["__name__", "code"]));
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));

    // Label values, including Grafana's metric list and the U__ escape.
    let data = ok_data(&cairn, TENANT, "/api/v1/label/__name__/values", &[]);
    assert_eq!(data, json!(["http_requests_total", "up"]));
    let data = ok_data(
        &cairn,
        TENANT,
        "/api/v1/label/instance/values",
        &[("match[]", "up"), ("match[]", r#"{code="500"}"#)],
    );
    assert_eq!(data, json!(["a", "b"]));
    let data = ok_data(&cairn, TENANT, "/api/v1/label/U__job/values", &[]);
    assert_eq!(data, json!(["api"]));
    let data = ok_data(&cairn, TENANT, "/api/v1/label/missing/values", &[]);
    assert_eq!(data, json!([]));
    let (_, body) = read_all_ways(
        &cairn,
        TENANT,
        "/api/v1/label/code/values",
        &[("limit", "1")],
    );
    assert_eq!(body["data"], json!(["200"]));
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));

    // Errors, with Prometheus's texts.
    assert_eq!(
        bad_data(&cairn, "/api/v1/series", &[]),
        "no match[] parameter provided"
    );
    assert_eq!(
        bad_data(&cairn, "/api/v1/series", &[("match[]", r#"{job=~".*"}"#)]),
        r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#
    );
    assert_eq!(
        bad_data(&cairn, "/api/v1/labels", &[("match[]", r#"{job=""}"#)]),
        "match[] must contain at least one non-empty matcher"
    );
    bad_data(&cairn, "/api/v1/series", &[("match[]", "up{")]);
    bad_data(&cairn, "/api/v1/series", &[("match[]", "rate(up[5m])")]);
    assert_eq!(
        bad_data(&cairn, "/api/v1/labels", &[("limit", "abc")]),
        r#"invalid parameter "limit": strconv.Atoi: parsing "abc": invalid syntax"#
    );
    assert_eq!(
        bad_data(&cairn, "/api/v1/label/job/values", &[("limit", "-1")]),
        r#"invalid parameter "limit": limit must be non-negative"#
    );
    assert_eq!(
        bad_data(
            &cairn,
            "/api/v1/series",
            &[("match[]", "up"), ("start", "yesterday")]
        ),
        r#"invalid parameter "start": Invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#
    );
    assert_eq!(
        bad_data(&cairn, "/api/v1/labels", &[("end", "x")]),
        r#"invalid parameter "end": Invalid time value for 'end': cannot parse "x" to a valid timestamp"#
    );

    // No tenant: Mimir's 401.
    let (status, body) = cairn.get_json(None, "/prometheus/api/v1/labels", &[]);
    assert_eq!(status, 401, "{body}");
}

#[test]
fn metadata_and_exemplars_come_from_remote_write() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");
    let base = seed(&cairn);

    let data = ok_data(&cairn, TENANT, "/api/v1/metadata", &[]);
    assert_eq!(
        data,
        json!({
            "http_requests_total": [{"type":"counter","help":"Total requests.","unit":""}],
            "up": [{"type":"gauge","help":"Whether the target is up.","unit":""}],
        })
    );
    let data = ok_data(&cairn, TENANT, "/api/v1/metadata", &[("metric", "up")]);
    assert_eq!(data.as_object().unwrap().len(), 1);
    assert!(data.get("up").is_some());
    let data = ok_data(&cairn, TENANT, "/api/v1/metadata", &[("limit", "1")]);
    assert_eq!(data.as_object().unwrap().len(), 1);
    let data = ok_data(&cairn, TENANT, "/api/v1/metadata", &[("limit", "0")]);
    assert_eq!(data, json!({}));
    let data = ok_data(
        &cairn,
        TENANT,
        "/api/v1/metadata",
        &[("limit_per_metric", "1")],
    );
    assert_eq!(data.as_object().unwrap().len(), 2);
    let data = ok_data(&cairn, OTHER, "/api/v1/metadata", &[]);
    assert_eq!(data, json!({}));
    assert_eq!(
        bad_data(&cairn, "/api/v1/metadata", &[("limit", "x")]),
        "limit must be a number"
    );
    assert_eq!(
        bad_data(&cairn, "/api/v1/metadata", &[("limit_per_metric", "x")]),
        "limit_per_metric must be a number"
    );

    let start = ((base - 60_000) / 1000).to_string();
    let end = ((base + 600_000) / 1000).to_string();
    let data = ok_data(
        &cairn,
        TENANT,
        "/api/v1/query_exemplars",
        &[
            ("query", "sum(rate(http_requests_total[5m]))"),
            ("start", &start),
            ("end", &end),
        ],
    );
    // Whole seconds are written without a fraction, as Prometheus does.
    let exemplar_time = (base + 45_000) / 1000;
    assert_eq!(
        data,
        json!([{
            "seriesLabels": {"__name__":"http_requests_total","code":"200","instance":"a","job":"api"},
            "exemplars": [{"labels":{"trace_id":"abc123"},"value":"3","timestamp":exemplar_time}],
        }])
    );
    // Outside the exemplar's time, for another tenant, or without selectors.
    let data = ok_data(
        &cairn,
        TENANT,
        "/api/v1/query_exemplars",
        &[("query", "up"), ("start", &start), ("end", &end)],
    );
    assert_eq!(data, json!([]));
    let data = ok_data(
        &cairn,
        OTHER,
        "/api/v1/query_exemplars",
        &[("query", "http_requests_total")],
    );
    assert_eq!(data, json!([]));
    let data = ok_data(
        &cairn,
        TENANT,
        "/api/v1/query_exemplars",
        &[("query", "1+1")],
    );
    assert_eq!(data, Value::Null);
    assert_eq!(
        bad_data(
            &cairn,
            "/api/v1/query_exemplars",
            &[("query", "up"), ("start", "10"), ("end", "5")]
        ),
        "end timestamp must not be before start timestamp"
    );
    bad_data(&cairn, "/api/v1/query_exemplars", &[("query", "sum(")]);
}

#[test]
fn status_endpoints_stats_and_query_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");
    let base = seed(&cairn);

    for path in [
        "/api/v1/status/buildinfo",
        "/prometheus/api/v1/status/buildinfo",
    ] {
        let (status, body) = cairn.get_json(Some(TENANT), path, &[]);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(body["data"]["application"], "Cairn");
        let features = body["data"]["features"].as_object().unwrap();
        assert!(!features.is_empty());
        assert!(features.values().all(|v| v == "true" || v == "false"));
    }
    let (status, body) = cairn.get_json(Some(TENANT), "/api/v1/status/config", &[]);
    assert_eq!((status, &body["data"]), (200, &json!({"yaml": ""})));
    let (status, body) = cairn.get_json(Some(TENANT), "/api/v1/status/flags", &[]);
    assert_eq!((status, &body["data"]), (200, &json!({})));

    let data = ok_data(
        &cairn,
        TENANT,
        "/api/v1/format_query",
        &[("query", "sum  by(job)(rate(up[5m] ))")],
    );
    assert_eq!(data, json!("sum by (job) (rate(up[5m]))"));
    let error = bad_data(&cairn, "/api/v1/format_query", &[("query", "sum(")]);
    assert!(
        error.starts_with(r#"invalid parameter "query": "#),
        "{error}"
    );

    // stats: samples loaded, in Prometheus's shape.
    let time = ((base + 105_000) / 1000).to_string();
    // (Timings differ per request, so each way is checked on its own.)
    let params = [
        ("query", "sum_over_time(http_requests_total[1m])"),
        ("time", time.as_str()),
        ("stats", "all"),
    ];
    for (status, body) in [
        cairn.get_json(Some(TENANT), "/prometheus/api/v1/query", &params),
        cairn.post_form_json(Some(TENANT), "/api/v1/query", &params),
    ] {
        assert_eq!(status, 200, "{body}");
        // Two series, four samples each in (t-1m, t].
        assert_eq!(body["data"]["stats"]["samples"]["totalQueryableSamples"], 8);
        assert!(body["data"]["stats"]["timings"]["execTotalTime"].is_number());
        assert_eq!(body["data"]["resultType"], "vector");
        assert_eq!(body["data"]["result"].as_array().unwrap().len(), 2);
    }
    let (_, without) = cairn.get_json(
        Some(TENANT),
        "/api/v1/query",
        &[("query", "up"), ("time", &time)],
    );
    assert!(without["data"].get("stats").is_none());

    // limit on query endpoints truncates vectors and matrices with a warning.
    let (status, body) = read_all_ways(
        &cairn,
        TENANT,
        "/api/v1/query",
        &[
            ("query", "http_requests_total"),
            ("time", &time),
            ("limit", "1"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));
    let start = (base / 1000).to_string();
    let (status, body) = read_all_ways(
        &cairn,
        TENANT,
        "/api/v1/query_range",
        &[
            ("query", "http_requests_total"),
            ("start", &start),
            ("end", &time),
            ("step", "15"),
            ("limit", "1"),
        ],
    );
    assert_eq!(status, 200);
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));
    assert_eq!(
        bad_data(&cairn, "/api/v1/query", &[("query", "up"), ("limit", "-3")]),
        r#"invalid parameter "limit": limit must be non-negative"#
    );
}

/// Sends a remote read request; returns status and the decoded response.
fn remote_read(
    cairn: &Cairn,
    tenant: Option<&str>,
    path: &str,
    request: &prompb::ReadRequest,
) -> (u16, Option<prompb::ReadResponse>) {
    use prost::Message;
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let mut builder = cairn
        .client()
        .post(cairn.url(path))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(body);
    if let Some(tenant) = tenant {
        builder = builder.header("X-Scope-OrgID", tenant);
    }
    let response = builder.send().unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().unwrap();
    if status != 200 {
        return (status, None);
    }
    let raw = snap::raw::Decoder::new().decompress_vec(&bytes).unwrap();
    (
        status,
        Some(prompb::ReadResponse::decode(raw.as_slice()).unwrap()),
    )
}

#[test]
fn remote_read_returns_the_tenants_raw_samples() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");
    let base = seed(&cairn);
    let matcher =
        |r#type: prompb::label_matcher::Type, name: &str, value: &str| prompb::LabelMatcher {
            r#type: r#type as i32,
            name: name.into(),
            value: value.into(),
        };
    use prompb::label_matcher::Type;
    let request = prompb::ReadRequest {
        queries: vec![
            prompb::Query {
                start_timestamp_ms: base + 15_000,
                end_timestamp_ms: base + 45_000,
                matchers: vec![
                    matcher(Type::Eq, "__name__", "http_requests_total"),
                    matcher(Type::Re, "code", "5.."),
                ],
                hints: None,
            },
            prompb::Query {
                start_timestamp_ms: base,
                end_timestamp_ms: base + 600_000,
                matchers: vec![matcher(Type::Nre, "__name__", "http_.*|up")],
                hints: None,
            },
        ],
        accepted_response_types: vec![prompb::read_request::ResponseType::Samples as i32],
    };
    for path in ["/api/v1/read", "/prometheus/api/v1/read"] {
        let (status, response) = remote_read(&cairn, Some(TENANT), path, &request);
        assert_eq!(status, 200);
        let response = response.unwrap();
        assert_eq!(response.results.len(), 2);
        let first = &response.results[0].timeseries;
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0].labels,
            labels(&[
                ("__name__", "http_requests_total"),
                ("code", "500"),
                ("instance", "b"),
                ("job", "api"),
            ])
        );
        let samples: Vec<(i64, f64)> = first[0]
            .samples
            .iter()
            .map(|s| (s.timestamp, s.value))
            .collect();
        assert_eq!(
            samples,
            vec![
                (base + 15_000, 1.0),
                (base + 30_000, 2.0),
                (base + 45_000, 3.0)
            ]
        );
        // Nothing of this tenant's matches the second query.
        assert!(response.results[1].timeseries.is_empty());
    }
    // The other tenant sees only its own series.
    let (_, response) = remote_read(&cairn, Some(OTHER), "/api/v1/read", &request);
    let response = response.unwrap();
    assert!(response.results[0].timeseries.is_empty());
    assert_eq!(response.results[1].timeseries.len(), 1);
    // No tenant: 401. No response type Cairn knows: 400.
    assert_eq!(remote_read(&cairn, None, "/api/v1/read", &request).0, 401);
    let unknown_type = prompb::ReadRequest {
        accepted_response_types: vec![7],
        ..request.clone()
    };
    assert_eq!(
        remote_read(&cairn, Some(TENANT), "/api/v1/read", &unknown_type).0,
        400
    );

    // Streamed XOR chunks: one frame per series, checksummed.
    let streamed = prompb::ReadRequest {
        queries: vec![prompb::Query {
            start_timestamp_ms: base,
            end_timestamp_ms: base + 600_000,
            matchers: vec![matcher(Type::Eq, "job", "api")],
            hints: None,
        }],
        accepted_response_types: vec![
            prompb::read_request::ResponseType::StreamedXorChunks as i32,
            prompb::read_request::ResponseType::Samples as i32,
        ],
    };
    use prost::Message;
    let body = snap::raw::Encoder::new()
        .compress_vec(&streamed.encode_to_vec())
        .unwrap();
    let response = cairn
        .client()
        .post(cairn.url("/prometheus/api/v1/read"))
        .header("X-Scope-OrgID", TENANT)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
    );
    let bytes = response.bytes().unwrap();
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (length, used) = read_uvarint(rest);
        let message = &rest[used + 4..used + 4 + length];
        frames.push(ChunkedReadResponse::decode(message).unwrap());
        rest = &rest[used + 4 + length..];
    }
    assert_eq!(frames.len(), 3);
    for frame in &frames {
        assert_eq!(frame.query_index, 0);
        let series = &frame.chunked_series[0];
        assert_eq!(series.chunks.len(), 1);
        let chunk = &series.chunks[0];
        assert_eq!(chunk.r#type, 1, "XOR");
        assert_eq!(
            (chunk.min_time_ms, chunk.max_time_ms),
            (base, base + 105_000)
        );
        assert_eq!(&chunk.data[..2], &[0, 8], "sample count");
    }
    assert_eq!(frames[2].chunked_series[0].labels[0].value, "up");
}

fn read_uvarint(bytes: &[u8]) -> (usize, usize) {
    let mut value = 0usize;
    for (i, byte) in bytes.iter().enumerate() {
        value |= ((byte & 0x7f) as usize) << (7 * i);
        if *byte < 0x80 {
            return (value, i + 1);
        }
    }
    panic!("truncated uvarint");
}

/// `prometheus.ChunkedReadResponse` and its parts, for decoding frames.
#[derive(Clone, PartialEq, prost::Message)]
struct ChunkedReadResponse {
    #[prost(message, repeated, tag = "1")]
    chunked_series: Vec<ChunkedSeries>,
    #[prost(int64, tag = "2")]
    query_index: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ChunkedSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<prompb::Label>,
    #[prost(message, repeated, tag = "2")]
    chunks: Vec<StreamedChunk>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StreamedChunk {
    #[prost(int64, tag = "1")]
    min_time_ms: i64,
    #[prost(int64, tag = "2")]
    max_time_ms: i64,
    #[prost(int32, tag = "3")]
    r#type: i32,
    #[prost(bytes = "vec", tag = "4")]
    data: Vec<u8>,
}

/// Replays what Grafana's Prometheus data source sends (grafana/grafana
/// `pkg/promlib`, `packages/grafana-prometheus`), in order, as form POSTs
/// where Grafana uses POST (its default HTTP method) and GET where it only
/// uses GET:
/// 1. "Save & test": `POST api/v1/query` with `query=1+1&time=4`; any error
///    fails the test. Then `GET api/v1/status/buildinfo`: a non-empty
///    `features` map marks a Mimir-like store.
/// 2. Explore / metric browser: `GET api/v1/label/__name__/values` and
///    `POST api/v1/labels` with `start`, `end`, `limit=40000`; label values
///    with `match[]`; in series mode `POST api/v1/series` with
///    `match[]={__name__!=""}`; `GET api/v1/metadata` for HELP/TYPE hints.
/// 3. Running a query: `POST api/v1/query_exemplars` (exemplar toggle) and
///    `POST api/v1/query_range` with `start`/`end` floored to a multiple of
///    `step`, all in float seconds.
#[test]
fn grafana_data_source_requests_are_answered_as_grafana_expects() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");
    let base = seed(&cairn);
    let prefix = "/prometheus";
    let post = |path: &str, params: &[(&str, &str)]| {
        let (status, body) = cairn.post_form_json(Some(TENANT), &format!("{prefix}{path}"), params);
        assert_eq!(status, 200, "POST {path}: {body}");
        assert_eq!(body["status"], "success");
        body["data"].clone()
    };
    let get = |path: &str, params: &[(&str, &str)]| {
        let (status, body) = cairn.get_json(Some(TENANT), &format!("{prefix}{path}"), params);
        assert_eq!(status, 200, "GET {path}: {body}");
        assert_eq!(body["status"], "success");
        body["data"].clone()
    };

    // 1. Save & test.
    let data = post("/api/v1/query", &[("query", "1+1"), ("time", "4")]);
    assert_eq!(data, json!({"resultType": "scalar", "result": [4, "2"]}));
    let data = get("/api/v1/status/buildinfo", &[]);
    assert!(data["version"].is_string());
    assert!(!data["features"].as_object().unwrap().is_empty());

    // 2. Explore and the metric browser, over the last hour.
    let end = (base + 10 * 60_000) / 1000;
    let start = end - 3600;
    let (start, end) = (start.to_string(), end.to_string());
    let window = [
        ("start", start.as_str()),
        ("end", end.as_str()),
        ("limit", "40000"),
    ];
    let data = get("/api/v1/label/__name__/values", &window);
    assert_eq!(data, json!(["http_requests_total", "up"]));
    let data = post("/api/v1/labels", &window);
    assert_eq!(data, json!(["__name__", "code", "instance", "job"]));
    let mut with_match = window.to_vec();
    with_match.push(("match[]", r#"{__name__="http_requests_total"}"#));
    let data = get("/api/v1/label/code/values", &with_match);
    assert_eq!(data, json!(["200", "500"]));
    let data = post("/api/v1/labels", &with_match);
    assert_eq!(data, json!(["__name__", "code", "instance", "job"]));
    let mut series_mode = window.to_vec();
    series_mode.push(("match[]", r#"{__name__!=""}"#));
    let data = post("/api/v1/series", &series_mode);
    assert_eq!(data.as_array().unwrap().len(), 3);
    let data = get("/api/v1/metadata", &[]);
    assert_eq!(data["http_requests_total"][0]["type"], "counter");
    let data = get("/api/v1/metadata", &[("metric", "up")]);
    assert_eq!(data["up"][0]["help"], "Whether the target is up.");

    // 3. A range query with exemplars; Grafana floors start and end to the step.
    let step = 30.0_f64;
    let floor = |t: f64| (t / step).floor() * step;
    let range_start = floor((base as f64) / 1000.0 - 7.0).to_string();
    let range_end = floor((base + 10 * 60_000) as f64 / 1000.0 + 7.0).to_string();
    let query = "sum by (code) (rate(http_requests_total[1m]))";
    let data = post(
        "/api/v1/query_exemplars",
        &[
            ("query", query),
            ("start", &range_start),
            ("end", &range_end),
        ],
    );
    assert_eq!(data[0]["exemplars"][0]["labels"]["trace_id"], "abc123");
    let data = post(
        "/api/v1/query_range",
        &[
            ("query", query),
            ("start", &range_start),
            ("end", &range_end),
            ("step", "30"),
        ],
    );
    assert_eq!(data["resultType"], "matrix");
    let result = data["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"], json!({"code": "200"}));
    assert!(!result[0]["values"].as_array().unwrap().is_empty());
}

#[test]
fn json_answers_are_gzipped_when_the_client_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");
    seed(&cairn);
    for path in ["/api/v1/series", "/prometheus/api/v1/series"] {
        let response = cairn
            .client()
            .get(cairn.url(path))
            .query(&[("match[]", r#"{__name__!=""}"#)])
            .header("X-Scope-OrgID", TENANT)
            .header("Accept-Encoding", "gzip")
            .send()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-encoding"], "gzip");
        let bytes = response.bytes().unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
    }
    let response = cairn
        .client()
        .get(cairn.url("/api/v1/series"))
        .query(&[("match[]", "up")])
        .header("X-Scope-OrgID", TENANT)
        .send()
        .unwrap();
    assert!(response.headers().get("content-encoding").is_none());
    let body: Value = serde_json::from_slice(&response.bytes().unwrap()).unwrap();
    assert_eq!(body["status"], "success");
}

/// Annotations travel in the envelope as Prometheus 3 writes them: `infos`
/// for `rate` over a metric that does not look like a counter, `warnings`
/// beside the data.
#[test]
fn promql_annotations_are_in_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");
    let base = seed(&cairn);
    let time = ((base + 105_000) / 1000).to_string();
    let (status, body) = read_all_ways(
        &cairn,
        TENANT,
        "/api/v1/query",
        &[("query", "rate(up[5m])"), ("time", &time)],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["infos"],
        json!([
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"up\" (1:6)"
        ])
    );
    assert!(body.get("warnings").is_none());
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1);
    let (_, body) = read_all_ways(
        &cairn,
        TENANT,
        "/api/v1/query",
        &[("query", "rate(http_requests_total[5m])"), ("time", &time)],
    );
    assert!(body.get("infos").is_none(), "{body}");
}
