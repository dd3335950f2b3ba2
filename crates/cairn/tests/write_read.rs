//! End-to-end write → store → query through the real binary: exact samples
//! back, tenant isolation, and every write-path rejection with its status
//! code, each proving that data accepted before it is still there.

mod support;

use cairn_ingest::prompb;
use support::{now_minute_ms, points, series, write_request, Cairn};

fn start() -> (tempfile::TempDir, Cairn) {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("data"), "");
    (dir, cairn)
}

#[test]
fn pushed_samples_come_back_exactly_through_query_range() {
    let (_dir, cairn) = start();
    let base = now_minute_ms() - 3_600_000;
    let samples: Vec<(i64, f64)> = (0..60)
        .map(|i| (base + i * 15_000, i as f64 * 1.5))
        .collect();
    let request = write_request(vec![
        series(
            &[("__name__", "gpu_util"), ("gpu", "0"), ("job", "dcgm")],
            &samples,
        ),
        series(
            &[("__name__", "gpu_util"), ("gpu", "1"), ("job", "dcgm")],
            &samples[..10],
        ),
    ]);
    assert_eq!(cairn.push(Some("team-a"), &request), (200, String::new()));

    // A step equal to the scrape interval returns every raw sample.
    let start = base as f64 / 1000.0;
    let end = (base + 59 * 15_000) as f64 / 1000.0;
    let result = cairn.query_range("team-a", r#"gpu_util{gpu="0"}"#, start, end, 15.0);
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["metric"]["gpu"], "0");
    assert_eq!(result[0]["metric"]["__name__"], "gpu_util");
    assert_eq!(points(&result[0]), samples);

    // The shorter series is extended by the 5m lookback, then ends. The
    // window is left-open, (t-5m, t], so the step exactly 5m after the last
    // sample no longer sees it: 19 extra points, not 20.
    let result = cairn.query_range("team-a", r#"gpu_util{gpu="1"}"#, start, end, 15.0);
    let got = points(&result[0]);
    assert_eq!(got.len(), 10 + 19, "10 samples, then lookback at 15s steps");
    assert_eq!(got[28], (samples[9].0 + 285_000, samples[9].1));
    assert_eq!(&got[..10], &samples[..10]);

    let result = cairn.query_range("team-a", "sum(gpu_util)", start, start, 15.0);
    assert_eq!(points(&result[0]), vec![(base, 0.0)]);
}

#[test]
fn one_tenant_never_sees_another_tenants_data() {
    let (_dir, cairn) = start();
    let t = now_minute_ms() - 60_000;
    let request = write_request(vec![series(
        &[("__name__", "secret"), ("team", "a")],
        &[(t, 42.0)],
    )]);
    assert_eq!(cairn.push(Some("a"), &request).0, 200);
    let at = t as f64 / 1000.0;

    let visible = cairn.query("a", "secret", at);
    assert_eq!(visible.as_array().unwrap().len(), 1);
    for path in ["/prometheus/api/v1/query", "/api/v1/query"] {
        for query in [
            "secret",
            r#"{__name__=~".+"}"#,
            "count(secret)",
            "absent(secret)",
        ] {
            let (status, json) = cairn.get_json(
                Some("b"),
                path,
                &[("query", query), ("time", &at.to_string())],
            );
            assert_eq!(status, 200);
            let result = json["data"]["result"].as_array().unwrap();
            if query == "absent(secret)" {
                // For b the series does not exist: absent() yields its 1.
                assert_eq!(result.len(), 1, "{path} {query}: {json}");
                assert_eq!(result[0]["metric"], serde_json::json!({}), "{json}");
                assert_eq!(result[0]["value"][1], "1", "{path} {query}: {json}");
            } else {
                assert!(
                    result.is_empty(),
                    "tenant b saw a's data via {path} {query}: {json}"
                );
            }
        }
    }
    for path in ["/prometheus/api/v1/query_range", "/api/v1/query_range"] {
        let (status, json) = cairn.get_json(
            Some("b"),
            path,
            &[
                ("query", "secret"),
                ("start", &(at - 60.0).to_string()),
                ("end", &(at + 60.0).to_string()),
                ("step", "15"),
            ],
        );
        assert_eq!(status, 200);
        assert_eq!(
            json["data"]["result"].as_array().unwrap().len(),
            0,
            "{json}"
        );
    }
}

#[test]
fn reads_without_a_tenant_are_refused() {
    let (_dir, cairn) = start();
    let (status, body) = cairn.get_json(None, "/prometheus/api/v1/query", &[("query", "up")]);
    assert_eq!(status, 401);
    assert_eq!(body, serde_json::Value::String("no org id".into()));
}

/// The state every rejection test starts from: one accepted sample.
fn seed(cairn: &Cairn, tenant: &str, t: i64) {
    let request = write_request(vec![series(
        &[("__name__", "kept"), ("job", "x")],
        &[(t, 1.0)],
    )]);
    assert_eq!(cairn.push(Some(tenant), &request), (200, String::new()));
}

fn assert_seed_still_there(cairn: &Cairn, tenant: &str, t: i64) {
    let result = cairn.query(tenant, "kept", t as f64 / 1000.0);
    assert_eq!(result[0]["value"][1], "1", "seed sample lost: {result}");
}

#[test]
fn tenant_header_errors_are_401_and_400() {
    let (_dir, cairn) = start();
    let t = now_minute_ms();
    seed(&cairn, "t1", t);
    let request = write_request(vec![series(&[("__name__", "x")], &[(t, 1.0)])]);

    assert_eq!(cairn.push(None, &request), (401, "no org id".to_string()));
    let (status, body) = cairn.push(Some("a|b"), &request);
    assert_eq!(status, 400);
    assert_eq!(body, "tenant ID 'a|b' contains unsupported character '|'");
    let (status, body) = cairn.push(Some(".."), &request);
    assert_eq!((status, body.as_str()), (400, "tenant ID is '.' or '..'"));
    let (status, body) = cairn.push(Some("a/b"), &request);
    assert_eq!(status, 400);
    assert!(body.contains("unsupported character '/'"), "{body}");
    let (status, _) = cairn.push(Some(&"x".repeat(151)), &request);
    assert_eq!(status, 400);
    let (status, body) = cairn.push(Some("__cairn_usage__"), &request);
    assert_eq!(status, 400);
    assert!(body.contains("reserved"), "{body}");
    assert_seed_still_there(&cairn, "t1", t);
    assert!(!cairn.data_dir.join("tenants").join("..").join("x").exists());
}

#[test]
fn bad_bodies_are_rejected_without_losing_accepted_data() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(
        &dir.path().join("data"),
        "distributor:\n  max_recv_msg_size_bytes: 4096\n  max_decompressed_msg_size_bytes: 65536\n",
    );
    let t = now_minute_ms();
    seed(&cairn, "t", t);

    let (status, body) = cairn.push_raw(Some("t"), b"not snappy at all".to_vec());
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("snappy"), "{body}");

    let garbage_protobuf = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
    let (status, body) = cairn.push_raw(Some("t"), garbage_protobuf);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("protobuf"), "{body}");

    // Compressed body over the cap: refused while reading, before decoding.
    let (status, body) = cairn.push_raw(Some("t"), vec![0u8; 8192]);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("err-cairn-max-write-message-size"), "{body}");

    // A small body whose snappy header declares a huge message.
    let mut bomb = Vec::new();
    let mut declared: u64 = 1 << 31;
    while declared >= 0x80 {
        bomb.push((declared as u8) | 0x80);
        declared >>= 7;
    }
    bomb.push(declared as u8);
    bomb.extend_from_slice(&[0; 16]);
    let (status, body) = cairn.push_raw(Some("t"), bomb);
    assert_eq!(status, 413, "{body}");

    assert_seed_still_there(&cairn, "t", t);
}

#[test]
fn invalid_series_are_rejected_and_valid_ones_in_the_same_request_stored() {
    let (_dir, cairn) = start();
    let t = now_minute_ms() - 120_000;
    seed(&cairn, "t", t);
    let good = |name: &str| series(&[("__name__", name)], &[(t, 7.0)]);
    let long_value = "v".repeat(2049);
    let long_name = "n".repeat(1025);
    let many_labels: Vec<(String, String)> =
        (0..30).map(|i| (format!("l{i:02}"), "x".into())).collect();
    let mut too_many: Vec<(&str, &str)> = vec![("__name__", "m")];
    too_many.extend(many_labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let cases: Vec<(&str, prompb::TimeSeries, &str)> = vec![
        (
            "value too long",
            series(&[("__name__", "m"), ("v", &long_value)], &[(t, 1.0)]),
            "err-cairn-label-value-too-long",
        ),
        (
            "name too long",
            series(&[("__name__", "m"), (&long_name, "x")], &[(t, 1.0)]),
            "err-cairn-label-name-too-long",
        ),
        (
            "31 labels",
            series(&too_many, &[(t, 1.0)]),
            "err-cairn-max-label-names-per-series",
        ),
        (
            "missing name",
            series(&[("job", "x")], &[(t, 1.0)]),
            "err-cairn-missing-metric-name",
        ),
        (
            "bad name",
            series(&[("__name__", "1bad")], &[(t, 1.0)]),
            "err-cairn-metric-name-invalid",
        ),
        (
            "bad label",
            series(&[("__name__", "m"), ("bad-label", "x")], &[(t, 1.0)]),
            "err-cairn-label-invalid",
        ),
        (
            "duplicate label",
            series(
                &[("__name__", "m"), ("job", "a"), ("job", "b")],
                &[(t, 1.0)],
            ),
            "err-cairn-duplicate-label-names",
        ),
        (
            "future",
            series(&[("__name__", "m")], &[(t + 3_600_000, 1.0)]),
            "err-cairn-too-far-in-future",
        ),
    ];
    for (i, (what, bad, id)) in cases.into_iter().enumerate() {
        let name = format!("good_{i}");
        let (status, body) = cairn.push(Some("t"), &write_request(vec![bad, good(&name)]));
        assert_eq!(status, 400, "{what}: {body}");
        assert!(body.contains(id), "{what}: {body}");
        // The valid series of the same request was stored.
        let result = cairn.query("t", &name, t as f64 / 1000.0);
        assert_eq!(
            result[0]["value"][1], "7",
            "{what}: valid series not stored: {result}"
        );
    }
    assert_seed_still_there(&cairn, "t", t);
}

#[test]
fn out_of_order_and_conflicting_duplicates_are_rejected_identical_duplicates_accepted() {
    let (_dir, cairn) = start();
    let t = now_minute_ms() - 120_000;
    seed(&cairn, "t", t);
    let kept = [("__name__", "kept"), ("job", "x")];

    // The same timestamp and value again: accepted silently.
    let request = write_request(vec![series(&kept, &[(t, 1.0)])]);
    assert_eq!(cairn.push(Some("t"), &request), (200, String::new()));

    let request = write_request(vec![series(&kept, &[(t - 15_000, 5.0)])]);
    let (status, body) = cairn.push(Some("t"), &request);
    assert_eq!(status, 400);
    assert!(body.contains("err-cairn-sample-out-of-order"), "{body}");

    let request = write_request(vec![series(&kept, &[(t, 2.0)])]);
    let (status, body) = cairn.push(Some("t"), &request);
    assert_eq!(status, 400);
    assert!(
        body.contains("err-cairn-sample-duplicate-timestamp"),
        "{body}"
    );

    assert_seed_still_there(&cairn, "t", t);
    let metrics = cairn.metrics_text();
    for reason in ["sample_out_of_order", "new_value_for_timestamp"] {
        let line = format!(r#"cairn_discarded_samples_total{{tenant="t",reason="{reason}"}} 1"#);
        assert!(metrics.contains(&line), "missing {line} in\n{metrics}");
    }
}

#[test]
fn nan_and_staleness_markers_are_stored_as_such() {
    let (_dir, cairn) = start();
    let t = now_minute_ms() - 120_000;
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let request = write_request(vec![series(
        &[("__name__", "flappy")],
        &[(t, f64::NAN), (t + 15_000, 3.0), (t + 30_000, stale)],
    )]);
    assert_eq!(cairn.push(Some("t"), &request).0, 200);
    let at = |ms: i64| ms as f64 / 1000.0;
    assert_eq!(cairn.query("t", "flappy", at(t))[0]["value"][1], "NaN");
    assert_eq!(
        cairn.query("t", "flappy", at(t + 15_000))[0]["value"][1],
        "3"
    );
    // After the staleness marker the series is gone, not NaN.
    assert_eq!(
        cairn
            .query("t", "flappy", at(t + 30_000))
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        cairn
            .query("t", "flappy", at(t + 60_000))
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// A read request that must fail: path, parameters, status, `errorType`.
type ErrorCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a str);

#[test]
fn query_parameter_errors_use_prometheus_envelope_and_status() {
    let (_dir, cairn) = start();
    let cases: Vec<ErrorCase> = vec![
        ("/api/v1/query", vec![("query", "sum(")], 400, "bad_data"),
        (
            "/api/v1/query",
            vec![("query", "up"), ("time", "yesterday")],
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up"),
                ("start", "10"),
                ("end", "5"),
                ("step", "1"),
            ],
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up"),
                ("start", "0"),
                ("end", "100000"),
                ("step", "1"),
            ],
            400,
            "bad_data",
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up"),
                ("start", "0"),
                ("end", "10"),
                ("step", "0"),
            ],
            400,
            "bad_data",
        ),
    ];
    for (path, params, status, error_type) in cases {
        let (got_status, json) = cairn.get_json(Some("t"), path, &params);
        assert_eq!(got_status, status, "{path} {params:?}: {json}");
        assert_eq!(json["status"], "error", "{json}");
        assert_eq!(json["errorType"], error_type, "{json}");
    }
    let (_, json) = cairn.get_json(
        Some("t"),
        "/api/v1/query_range",
        &[
            ("query", "up"),
            ("start", "10"),
            ("end", "5"),
            ("step", "1"),
        ],
    );
    assert_eq!(
        json["error"],
        "invalid parameter \"end\": end timestamp must not be before start time"
    );
}

#[test]
fn large_range_answers_are_streamed_complete_and_valid() {
    let (_dir, cairn) = start();
    let base = now_minute_ms() - 2 * 3_600_000;
    // 300 series × 200 points = 60,000 points: above the streaming threshold.
    let samples: Vec<(i64, f64)> = (0..200).map(|i| (base + i * 15_000, i as f64)).collect();
    let timeseries = (0..300)
        .map(|s| series(&[("__name__", "big"), ("s", &format!("{s:03}"))], &samples))
        .collect();
    assert_eq!(cairn.push(Some("t"), &write_request(timeseries)).0, 200);
    let start = base as f64 / 1000.0;
    let end = (base + 199 * 15_000) as f64 / 1000.0;
    let result = cairn.query_range("t", "big", start, end, 15.0);
    assert_eq!(result.len(), 300);
    for (i, series) in result.iter().enumerate() {
        assert_eq!(series["metric"]["s"], format!("{i:03}").as_str());
        assert_eq!(points(series), samples);
    }
}
