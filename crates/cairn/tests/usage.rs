//! Usage accounting end to end: a known workload into three tenants,
//! including deliberately bad samples, then `/api/v1/usage` must report
//! exactly what was sent, also across a graceful restart in the middle.
//! The internal tenant `__cairn_usage__` is readable by admins only and
//! never writable; the report is admin-only under basic auth.

mod support;

use std::time::{Duration, Instant};

use cairn_ingest::prompb;
use serde_json::Value;
use support::{series, write_request, Cairn, DEADLINE};

const CONFIG: &str = "usage:\n  record_interval: 1s\n";
/// Cost attribution by `team`, at most two values per tenant.
const ATTRIBUTION: &str =
    "limits:\n  cost_attribution_labels: team\n  max_cost_attribution_cardinality: 2\n";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The report's rows over one interval `[start, now + 1s]`, by tenant.
fn report(cairn: &Cairn, start_ms: i64) -> Vec<Value> {
    let (status, json) = cairn.get_json(
        None,
        "/api/v1/usage",
        &[
            ("start", &format!("{}", start_ms as f64 / 1000.0)),
            ("end", &format!("{}", (now_ms() + 1000) as f64 / 1000.0)),
            ("step", "1d"),
        ],
    );
    assert_eq!(status, 200, "{json}");
    json["data"]["rows"].as_array().unwrap().clone()
}

fn row<'a>(rows: &'a [Value], tenant: &str) -> &'a Value {
    let found: Vec<&Value> = rows
        .iter()
        .filter(|r| r["tenant"] == tenant && r["attribution"].is_null())
        .collect();
    assert_eq!(found.len(), 1, "one row for {tenant}: {rows:?}");
    found[0]
}

/// What one tenant is expected to show.
#[derive(Debug, PartialEq)]
struct Expected<R> {
    received: u64,
    ingested: u64,
    discarded: Vec<(R, u64)>,
    series_created: u64,
    active_peak: u64,
    metadata: u64,
}

fn actual(row: &Value) -> Expected<String> {
    let mut discarded: Vec<(String, u64)> = row["samples_discarded_by_reason"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    discarded.sort();
    let total: u64 = discarded.iter().map(|(_, n)| n).sum();
    assert_eq!(row["samples_discarded"].as_u64().unwrap(), total);
    Expected {
        received: row["samples_received"].as_u64().unwrap(),
        ingested: row["samples_ingested"].as_u64().unwrap(),
        discarded,
        series_created: row["series_created"].as_u64().unwrap(),
        active_peak: row["active_series_peak"].as_u64().unwrap(),
        metadata: row["metadata_received"].as_u64().unwrap(),
    }
}

/// Waits (bounded) until the report shows the `received` samples of every
/// tenant, i.e. a record after the last push was written; a count that
/// overshoots never matches and fails at the deadline.
fn wait_for_record(cairn: &Cairn, start_ms: i64, received: &[(&str, u64)]) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let rows = report(cairn, start_ms);
        let done = received.iter().all(|(tenant, n)| {
            rows.iter().any(|r| {
                r["tenant"] == *tenant && r["attribution"].is_null() && r["samples_received"] == *n
            })
        });
        if done {
            return rows;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "usage never recorded; last report: {rows:?}\nlog:\n{}",
            cairn.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The attribution row `team=<team>` of `tenant`: samples received,
/// discards by reason, peak active series.
fn assert_attributed(
    rows: &[Value],
    tenant: &str,
    team: &str,
    received: u64,
    discarded: &[(&str, u64)],
    peak: u64,
) {
    let found: Vec<&Value> = rows
        .iter()
        .filter(|r| r["tenant"] == tenant && r["attribution"]["team"] == team)
        .collect();
    assert_eq!(found.len(), 1, "one row for {tenant}/{team}: {rows:?}");
    let r = found[0];
    assert_eq!(r["samples_received"], received, "{r}");
    let by_reason: Vec<(String, u64)> = r["samples_discarded_by_reason"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    let expected: Vec<(String, u64)> = discarded.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(by_reason, expected, "{r}");
    assert_eq!(r["active_series_peak"], peak, "{r}");
    assert!(r["series_hours"].as_f64().unwrap() >= 0.0);
}

fn assert_tenant(rows: &[Value], tenant: &str, expected: Expected<&str>) {
    let mut discarded: Vec<(String, u64)> = expected
        .discarded
        .iter()
        .map(|(r, n)| (r.to_string(), *n))
        .collect();
    discarded.sort();
    let expected = Expected {
        received: expected.received,
        ingested: expected.ingested,
        discarded,
        series_created: expected.series_created,
        active_peak: expected.active_peak,
        metadata: expected.metadata,
    };
    assert_eq!(actual(row(rows, tenant)), expected, "tenant {tenant}");
}

fn metadata(name: &str) -> prompb::MetricMetadata {
    prompb::MetricMetadata {
        r#type: 1,
        metric_family_name: name.into(),
        help: "help".into(),
        unit: String::new(),
    }
}

#[test]
fn usage_report_matches_the_workload_across_a_graceful_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cairn = Cairn::start(&data, &format!("{CONFIG}{ATTRIBUTION}"));
    let start_ms = now_ms() - 1_000;
    let t0 = now_ms() - 600_000;
    let future = now_ms() + 3_600_000;

    // Tenant a: 15 good samples in two series, 2 too far in the future, one
    // metadata entry.
    let good: Vec<(i64, f64)> = (0..10).map(|i| (t0 + i * 1000, i as f64)).collect();
    let mut a1 = good.clone();
    a1.extend([(future, 1.0), (future + 1000, 2.0)]);
    let mut request = write_request(vec![
        series(&[("__name__", "m"), ("job", "x"), ("team", "x")], &a1),
        series(
            &[("__name__", "m"), ("job", "y"), ("team", "y")],
            &good[..5],
        ),
    ]);
    request.metadata = vec![metadata("m")];
    assert_eq!(cairn.push(Some("a"), &request).0, 400);

    // Tenant b: 3 good samples, then 2 out of order and 1 new value for an
    // existing timestamp.
    let b = [("__name__", "m"), ("job", "b")];
    let ok = write_request(vec![series(&b, &good[..3])]);
    assert_eq!(cairn.push(Some("b"), &ok).0, 200);
    let bad = write_request(vec![series(
        &b,
        &[(t0 - 5_000, 1.0), (t0 + 500, 1.0), (t0 + 2_000, 99.0)],
    )]);
    assert_eq!(cairn.push(Some("b"), &bad).0, 400);

    // Tenant c: 4 good samples, 2 under an invalid label name, 1 without a
    // metric name.
    let request = write_request(vec![
        series(&[("__name__", "m"), ("bad-name", "v")], &good[..2]),
        series(&[("__name__", "m"), ("job", "c")], &good[..4]),
        series(&[("job", "nameless")], &good[..1]),
    ]);
    assert_eq!(cairn.push(Some("c"), &request).0, 400);

    // Queries on a: the samples they scanned are what the engine reports.
    let mut scanned = 0;
    for (path, extra) in [
        (
            "/api/v1/query",
            vec![("time", (t0 / 1000 + 20).to_string())],
        ),
        (
            "/prometheus/api/v1/query",
            vec![("time", (t0 / 1000 + 20).to_string())],
        ),
        (
            "/api/v1/query_range",
            vec![
                ("start", (t0 / 1000).to_string()),
                ("end", (t0 / 1000 + 60).to_string()),
                ("step", "15".to_string()),
            ],
        ),
    ] {
        let mut params = vec![
            ("query", "count_over_time(m[1h])".to_string()),
            ("stats", "all".to_string()),
        ];
        params.extend(extra);
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, json) = cairn.get_json(Some("a"), path, &params);
        assert_eq!(status, 200, "{json}");
        scanned += json["data"]["stats"]["samples"]["totalQueryableSamples"]
            .as_u64()
            .unwrap();
    }
    assert!(scanned > 0);

    let rows = wait_for_record(&cairn, start_ms, &[("a", 17), ("b", 6), ("c", 7)]);
    let phase1 = |rows: &[Value]| {
        assert_tenant(
            rows,
            "a",
            Expected {
                received: 17,
                ingested: 15,
                discarded: vec![("too_far_in_future", 2)],
                series_created: 2,
                active_peak: 2,
                metadata: 1,
            },
        );
        assert_tenant(
            rows,
            "b",
            Expected {
                received: 6,
                ingested: 3,
                discarded: vec![("new_value_for_timestamp", 1), ("sample_out_of_order", 2)],
                series_created: 1,
                active_peak: 1,
                metadata: 0,
            },
        );
        assert_tenant(
            rows,
            "c",
            Expected {
                received: 7,
                ingested: 4,
                discarded: vec![("label_invalid", 2), ("missing_metric_name", 1)],
                series_created: 1,
                active_peak: 1,
                metadata: 0,
            },
        );
        let a = row(rows, "a");
        assert_eq!(a["queries"], 3, "{a}");
        assert_eq!(a["queries_by_endpoint"]["query"], 2);
        assert_eq!(a["queries_by_endpoint"]["query_range"], 1);
        assert_eq!(a["query_samples_scanned"].as_u64().unwrap(), scanned);
        assert!(a["query_cpu_seconds"].as_f64().unwrap() >= 0.0);
        for tenant in ["a", "b", "c"] {
            let r = row(rows, tenant);
            assert!(r["bytes_stored_disk"].as_u64().unwrap() > 0, "{r}");
            assert_eq!(r["bytes_stored_bucket"], 0);
        }
        assert_eq!(row(rows, "b")["queries"], 0);
        assert_attributed(rows, "a", "x", 12, &[("too_far_in_future", 2)], 1);
        assert_attributed(rows, "a", "y", 5, &[], 1);
        assert_attributed(
            rows,
            "b",
            "__missing__",
            6,
            &[("new_value_for_timestamp", 1), ("sample_out_of_order", 2)],
            1,
        );
        assert_attributed(
            rows,
            "c",
            "__missing__",
            7,
            &[("label_invalid", 2), ("missing_metric_name", 1)],
            1,
        );
    };
    phase1(&rows);

    // The internal tenant: without auth nobody may read or write it.
    let (status, body) = cairn.get_json(
        Some("__cairn_usage__"),
        "/api/v1/query",
        &[("query", "cairn_usage_samples_received_total")],
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = cairn.push(
        Some("__cairn_usage__"),
        &write_request(vec![series(&[("__name__", "x")], &good[..1])]),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("reserved"), "{body}");

    // Graceful restart: the final record makes the report exact, and the
    // counters continue from it.
    assert!(cairn.terminate().success());
    let cairn = Cairn::restart_after_kill(&data);
    phase1(&report(&cairn, start_ms));

    // More after the restart: 5 more samples and a new series on a, one
    // more duplicate on b, one sample too far in the future on a new c
    // series (which is therefore not created).
    let later: Vec<(i64, f64)> = (10..13).map(|i| (t0 + i * 1000, i as f64)).collect();
    let request = write_request(vec![
        series(&[("__name__", "m"), ("job", "x"), ("team", "x")], &later),
        series(
            &[("__name__", "m"), ("job", "z"), ("team", "z")],
            &later[..2],
        ),
    ]);
    assert_eq!(cairn.push(Some("a"), &request).0, 200);
    let dup = write_request(vec![series(&b, &[(t0 + 2_000, 42.0)])]);
    assert_eq!(cairn.push(Some("b"), &dup).0, 400);
    let request = write_request(vec![series(
        &[("__name__", "m"), ("job", "c2")],
        &[(future, 1.0)],
    )]);
    assert_eq!(cairn.push(Some("c"), &request).0, 400);

    let rows = wait_for_record(&cairn, start_ms, &[("a", 22), ("b", 7), ("c", 8)]);
    assert_tenant(
        &rows,
        "a",
        Expected {
            received: 22,
            ingested: 20,
            discarded: vec![("too_far_in_future", 2)],
            series_created: 3,
            active_peak: 3,
            metadata: 1,
        },
    );
    assert_tenant(
        &rows,
        "b",
        Expected {
            received: 7,
            ingested: 3,
            discarded: vec![("new_value_for_timestamp", 2), ("sample_out_of_order", 2)],
            series_created: 1,
            active_peak: 1,
            metadata: 0,
        },
    );
    assert_tenant(
        &rows,
        "c",
        Expected {
            received: 8,
            ingested: 4,
            discarded: vec![
                ("label_invalid", 2),
                ("missing_metric_name", 1),
                ("too_far_in_future", 1),
            ],
            series_created: 1,
            active_peak: 1,
            metadata: 0,
        },
    );
    assert_eq!(row(&rows, "a")["queries"], 3);
    // A third team is beyond the cap of two (also after the restart).
    assert_attributed(&rows, "a", "x", 15, &[("too_far_in_future", 2)], 1);
    assert_attributed(&rows, "a", "y", 5, &[], 1);
    assert_attributed(&rows, "a", "__overflow__", 2, &[], 1);
    assert_attributed(
        &rows,
        "c",
        "__missing__",
        8,
        &[
            ("label_invalid", 2),
            ("missing_metric_name", 1),
            ("too_far_in_future", 1),
        ],
        1,
    );

    // Only the asked-for tenants, and the same figures as CSV.
    let (status, json) = cairn.get_json(
        None,
        "/api/v1/usage",
        &[
            ("start", &format!("{}", start_ms as f64 / 1000.0)),
            ("end", &format!("{}", (now_ms() + 1000) as f64 / 1000.0)),
            ("tenant", "b"),
            ("tenant", "c"),
        ],
    );
    assert_eq!(status, 200);
    let tenants: Vec<(&str, &str)> = json["data"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let team = r["attribution"]["team"].as_str().unwrap_or("total");
            (r["tenant"].as_str().unwrap(), team)
        })
        .collect();
    assert_eq!(
        tenants,
        [
            ("b", "total"),
            ("b", "__missing__"),
            ("c", "total"),
            ("c", "__missing__")
        ]
    );
    let csv = cairn
        .client()
        .get(cairn.url("/api/v1/usage"))
        .query(&[
            ("start", format!("{}", start_ms as f64 / 1000.0)),
            ("end", format!("{}", (now_ms() + 1000) as f64 / 1000.0)),
            ("format", "csv".to_string()),
            ("tenant", "b".to_string()),
        ])
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let values: Vec<&str> = lines.next().unwrap().split(',').collect();
    let attributed: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(lines.next(), None, "{csv}");
    assert_eq!(attributed[..2], ["b", "team=__missing__"], "{csv}");
    let column = |name: &str| values[header.iter().position(|h| *h == name).unwrap()];
    assert_eq!(column("tenant"), "b");
    assert_eq!(column("samples_received"), "7");
    assert_eq!(column("samples_ingested"), "3");
    assert_eq!(column("discarded_new_value_for_timestamp"), "2");
    assert_eq!(column("discarded_sample_out_of_order"), "2");

    // Bad parameters are 400.
    for params in [
        [("step", "0s")],
        [("format", "xml")],
        [("start", "yesterday")],
    ] {
        let (status, json) = cairn.get_json(None, "/api/v1/usage", &params);
        assert_eq!(status, 400, "{params:?}: {json}");
    }
    assert!(cairn.terminate().success());
}

#[test]
fn the_report_and_the_usage_tenant_are_for_admins_only_under_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(
        &users,
        format!(
            "users:\n  ops:\n    password_hash: '{}'\n    read: [\"a\"]\n    admin: true\n  team:\n    password_hash: '{}'\n    read: [\"*\"]\n    write: [\"*\"]\n",
            support::cheap_hash("pw-ops"),
            support::cheap_hash("pw-team")
        ),
    )
    .unwrap();
    let config = format!(
        "{CONFIG}auth:\n  mode: basic\n  users_file: {}\n",
        users.display()
    );
    let cairn = Cairn::start(&dir.path().join("data"), &config);
    let get = |user: &str, password: &str, path: &str, tenant: Option<&str>| {
        let mut builder = cairn
            .client()
            .get(cairn.url(path))
            .query(&[("query", "cairn_usage_samples_received_total{tenant=\"a\"}")])
            .basic_auth(user, Some(password));
        if let Some(tenant) = tenant {
            builder = builder.header("X-Scope-OrgID", tenant);
        }
        let response = builder.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    let (status, body) = get("team", "pw-team", "/api/v1/usage", None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("err-cairn-admin-required"), "{body}");
    assert_eq!(get("ops", "pw-ops", "/api/v1/usage", None).0, 200);
    // The internal tenant: reserved for everyone but admins reading it.
    let (status, body) = get("team", "pw-team", "/api/v1/query", Some("__cairn_usage__"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("reserved"), "{body}");
    // The admin reads it with PromQL (whatever its read list says) and
    // sees the 3 samples the team sent to tenant a.
    let request = write_request(vec![series(
        &[("__name__", "m")],
        &[
            (now_ms() - 3000, 1.0),
            (now_ms() - 2000, 2.0),
            (now_ms() - 1000, 3.0),
        ],
    )]);
    let response = cairn
        .client()
        .post(cairn.url("/api/v1/push"))
        .header("Content-Encoding", "snappy")
        .header("X-Scope-OrgID", "a")
        .basic_auth("team", Some("pw-team"))
        .body(cairn_ingest::encode_write_request(&request))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let started = Instant::now();
    loop {
        let (status, body) = get("ops", "pw-ops", "/api/v1/query", Some("__cairn_usage__"));
        assert_eq!(status, 200, "{body}");
        let json: Value = serde_json::from_str(&body).unwrap();
        if json["data"]["result"][0]["value"][1] == "3" {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "never recorded: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let request = write_request(vec![series(&[("__name__", "x")], &[(now_ms(), 1.0)])]);
    let response = cairn
        .client()
        .post(cairn.url("/api/v1/push"))
        .header("Content-Encoding", "snappy")
        .header("X-Scope-OrgID", "__cairn_usage__")
        .basic_auth("ops", Some("pw-ops"))
        .body(cairn_ingest::encode_write_request(&request))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(cairn.terminate().success());
}

/// Bytes of every file under `dir` (0 when it does not exist).
fn tree_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                tree_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
fn bucket_bytes_are_what_the_tenant_has_in_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The default bucket is the folder <storage.path>/bucket.
    let cairn = Cairn::start(
        &data,
        &format!("{CONFIG}storage:\n  maintenance_interval: 1s\n"),
    );
    let start_ms = now_ms() - 1_000;
    // Five hours of samples: the oldest two-hour range is cut into a block
    // and shipped to the bucket.
    let now = now_ms();
    let samples: Vec<(i64, f64)> = (0..300)
        .map(|i| (now - 5 * 3_600_000 + i * 60_000, i as f64))
        .collect();
    let request = write_request(vec![series(&[("__name__", "m")], &samples)]);
    assert_eq!(cairn.push(Some("d"), &request).0, 200);
    let bucket = data.join("bucket").join("d");
    let started = Instant::now();
    loop {
        let rows = report(&cairn, start_ms);
        let reported = rows
            .iter()
            .find(|r| r["tenant"] == "d")
            .and_then(|r| r["bytes_stored_bucket"].as_u64())
            .unwrap_or(0);
        let in_bucket = tree_bytes(&bucket);
        if reported > 0 && reported == in_bucket {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "bucket bytes never matched: reported {reported}, bucket holds {in_bucket}\n{}",
            cairn.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(cairn.terminate().success());
}
