//! Tenant isolation: tenant `b` sees nothing of tenant `a` through any read
//! endpoint (one test per endpoint in `router.rs`), with any matcher,
//! including `{__tenant_id__="a"}` sent as `b`; each test first checks that
//! `a` itself does see its data, so an empty answer is not vacuous. Every
//! test runs twice: without federation (`b` reads as `b`) and with it (`b`
//! reads as `b|c`, `a` as `a|c`, tenant `c` holding data of its own, including
//! a stored `__tenant_id__="a"` label). Hostile tenant IDs, alone or inside a
//! federated list, are refused with 400 (401 when empty) and create nothing
//! on disk.

mod support;

use cairn_ingest::prompb;
use prost::Message;
use support::{labels, now_minute_ms, series, Cairn};

/// Every string of tenant a's data contains this marker.
const MARKER: &str = "secret";

struct Fixture {
    _dir: tempfile::TempDir,
    cairn: Cairn,
    base: i64,
    /// The `X-Scope-OrgID` that reads tenant a's data (`a`, or `a|c`).
    reader_a: &'static str,
    /// The `X-Scope-OrgID` of the tenant that must see nothing of a's.
    reader_b: &'static str,
}

/// Without federation, then with it.
fn fixtures() -> [Fixture; 2] {
    [fixture(false), fixture(true)]
}

fn fixture(federation: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = if federation {
        "tenancy:\n  federation_enabled: true\n"
    } else {
        ""
    };
    let cairn = Cairn::start(&dir.path().join("data"), config);
    let base = now_minute_ms() - 5 * 60_000;
    let samples: Vec<(i64, f64)> = (0..5).map(|i| (base + i * 15_000, i as f64)).collect();
    let mut secret = series(
        &[
            ("__name__", "secret_metric_a"),
            ("secret_label", "secret_value"),
            ("job", "secret_job"),
        ],
        &samples,
    );
    secret.exemplars.push(prompb::Exemplar {
        labels: labels(&[("trace_id", "secret_trace")]),
        value: 1.0,
        timestamp: base + 15_000,
    });
    let mut request = support::write_request(vec![secret]);
    request.metadata.push(prompb::MetricMetadata {
        r#type: prompb::metric_metadata::MetricType::Counter as i32,
        metric_family_name: "secret_metric_a".into(),
        help: "secret help".into(),
        unit: String::new(),
    });
    assert_eq!(cairn.push(Some("a"), &request).0, 200);
    let mut other = support::write_request(vec![series(
        &[("__name__", "b_metric"), ("job", "b_job")],
        &samples,
    )]);
    other.metadata.push(prompb::MetricMetadata {
        r#type: prompb::metric_metadata::MetricType::Gauge as i32,
        metric_family_name: "b_metric".into(),
        help: "b help".into(),
        unit: String::new(),
    });
    assert_eq!(cairn.push(Some("b"), &other).0, 200);
    if federation {
        // c's own data, with a stored label that claims to be tenant a.
        let impostor = support::write_request(vec![series(
            &[
                ("__name__", "c_metric"),
                ("__tenant_id__", "a"),
                ("job", "c_job"),
            ],
            &samples,
        )]);
        let (status, body) = cairn.push(Some("c"), &impostor);
        assert_eq!(status, 200, "{body}");
    }
    Fixture {
        _dir: dir,
        cairn,
        base,
        reader_a: if federation { "a|c" } else { "a" },
        reader_b: if federation { "b|c" } else { "b" },
    }
}

/// Selectors tried as b: all of them would match a's series in a's store.
const SELECTORS: &[&str] = &[
    r#"{__name__=~".+"}"#,
    r#"{__tenant_id__="a"}"#,
    r#"{__tenant_id__="a",__name__=~".*"}"#,
    r#"{__tenant_id__=~".*",__name__=~".+"}"#,
    "secret_metric_a",
    r#"{secret_label="secret_value"}"#,
    r#"{job=~"secret.*"}"#,
    r#"{__tenant_id__=~"a|b|c",__name__=~".+"}"#,
    r#"{original___tenant_id__=~".*",__name__=~".+"}"#,
    r#"{__tenant_id__!="b",__name__=~".+"}"#,
];

/// GETs and POSTs `path` (with and without `/prometheus`) as `tenant`; returns
/// every body.
fn read_everywhere(
    f: &Fixture,
    tenant: &str,
    path: &str,
    params: &[(&str, String)],
) -> Vec<String> {
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut bodies = Vec::new();
    for prefix in ["", "/prometheus"] {
        let full = format!("{prefix}{path}");
        let (status, body) = f.cairn.get_json(Some(tenant), &full, &params);
        assert_eq!(status, 200, "GET {full} {params:?}: {body}");
        bodies.push(body.to_string());
        let (status, body) = f.cairn.post_form_json(Some(tenant), &full, &params);
        assert_eq!(status, 200, "POST {full} {params:?}: {body}");
        bodies.push(body.to_string());
    }
    bodies
}

/// For each parameter set: a sees its marker at least once, b never.
fn assert_isolated(f: &Fixture, path: &str, param_sets: Vec<Vec<(&str, String)>>) {
    let mut a_saw = false;
    for params in &param_sets {
        for body in read_everywhere(f, f.reader_a, path, params) {
            a_saw |= body.contains(MARKER);
        }
        for body in read_everywhere(f, f.reader_b, path, params) {
            assert!(
                !body.contains(MARKER),
                "{} saw tenant a's data on {path} {params:?}: {body}",
                f.reader_b
            );
            // A federated answer labels series with their tenants: never a.
            assert!(
                !body.contains(r#""__tenant_id__":"a""#),
                "{} got a series labelled as tenant a on {path} {params:?}: {body}",
                f.reader_b
            );
        }
    }
    assert!(
        a_saw,
        "tenant a never saw its own data on {path}: the test proves nothing"
    );
}

fn window(f: &Fixture) -> Vec<(&'static str, String)> {
    vec![
        ("start", ((f.base - 60_000) / 1000).to_string()),
        ("end", ((f.base + 10 * 60_000) / 1000).to_string()),
    ]
}

fn with_matches(f: &Fixture) -> Vec<Vec<(&'static str, String)>> {
    let mut sets = vec![window(f)];
    for selector in SELECTORS {
        let mut params = window(f);
        params.push(("match[]", selector.to_string()));
        sets.push(params);
    }
    sets
}

#[test]
fn query_is_isolated() {
    for f in fixtures() {
        let time = ((f.base + 60_000) / 1000).to_string();
        let mut sets = Vec::new();
        for selector in SELECTORS {
            for query in [
                selector.to_string(),
                format!("count by (__name__, secret_label, job) ({selector})"),
                format!("{selector}[5m]"),
                format!("label_replace({selector}, \"x\", \"$1\", \"__name__\", \"(.*)\")"),
            ] {
                sets.push(vec![("query", query), ("time", time.clone())]);
            }
        }
        assert_isolated(&f, "/api/v1/query", sets);
    }
}

#[test]
fn query_range_is_isolated() {
    for f in fixtures() {
        let mut sets = Vec::new();
        for selector in SELECTORS {
            let mut params = window(&f);
            params.push(("query", selector.to_string()));
            params.push(("step", "15".to_string()));
            sets.push(params);
        }
        assert_isolated(&f, "/api/v1/query_range", sets);
    }
}

#[test]
fn series_is_isolated() {
    for f in fixtures() {
        let sets = with_matches(&f).into_iter().skip(1).collect();
        assert_isolated(&f, "/api/v1/series", sets);
    }
}

#[test]
fn labels_are_isolated() {
    for f in fixtures() {
        assert_isolated(&f, "/api/v1/labels", with_matches(&f));
    }
}

#[test]
fn label_values_are_isolated() {
    for f in fixtures() {
        for name in ["__name__", "secret_label", "job", "__tenant_id__"] {
            let path = format!("/api/v1/label/{name}/values");
            let b_sets = with_matches(&f);
            if name == "__tenant_id__" {
                // Nothing to see for a either; b must just not learn "a".
                for params in &b_sets {
                    for body in read_everywhere(&f, f.reader_b, &path, params) {
                        assert!(!body.contains(MARKER), "{path}: {body}");
                        assert!(!body.contains("\"a\""), "{path}: {body}");
                    }
                }
                continue;
            }
            assert_isolated(&f, &path, b_sets);
        }
    }
}

#[test]
fn metadata_is_isolated() {
    for f in fixtures() {
        let sets = vec![
            vec![],
            vec![("metric", "secret_metric_a".to_string())],
            vec![("limit", "1000".to_string())],
        ];
        assert_isolated(&f, "/api/v1/metadata", sets);
    }
}

#[test]
fn exemplars_are_isolated() {
    for f in fixtures() {
        let mut sets = Vec::new();
        for selector in SELECTORS {
            let mut params = window(&f);
            params.push(("query", selector.to_string()));
            sets.push(params);
        }
        assert_isolated(&f, "/api/v1/query_exemplars", sets);
    }
}

#[test]
fn remote_read_is_isolated() {
    for f in fixtures() {
        use prompb::label_matcher::Type;
        let matcher = |r#type: Type, name: &str, value: &str| prompb::LabelMatcher {
            r#type: r#type as i32,
            name: name.into(),
            value: value.into(),
        };
        let matcher_sets = vec![
            vec![matcher(Type::Re, "__name__", ".+")],
            vec![matcher(Type::Eq, "__tenant_id__", "a")],
            vec![
                matcher(Type::Eq, "__tenant_id__", "a"),
                matcher(Type::Re, "__name__", ".*"),
            ],
            vec![matcher(Type::Eq, "__name__", "secret_metric_a")],
            vec![matcher(Type::Re, "job", "secret.*")],
        ];
        let mut a_saw = false;
        for matchers in matcher_sets {
            for response_type in [
                prompb::read_request::ResponseType::Samples,
                prompb::read_request::ResponseType::StreamedXorChunks,
            ] {
                let request = prompb::ReadRequest {
                    queries: vec![prompb::Query {
                        start_timestamp_ms: f.base - 60_000,
                        end_timestamp_ms: f.base + 600_000,
                        matchers: matchers.clone(),
                        hints: None,
                    }],
                    accepted_response_types: vec![response_type as i32],
                };
                let body = snap::raw::Encoder::new()
                    .compress_vec(&request.encode_to_vec())
                    .unwrap();
                for prefix in ["", "/prometheus"] {
                    for tenant in [f.reader_a, f.reader_b] {
                        let response = f
                            .cairn
                            .client()
                            .post(f.cairn.url(&format!("{prefix}/api/v1/read")))
                            .header("Content-Type", "application/x-protobuf")
                            .header("Content-Encoding", "snappy")
                            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
                            .header("X-Scope-OrgID", tenant)
                            .body(body.clone())
                            .send()
                            .unwrap();
                        assert_eq!(response.status().as_u16(), 200);
                        let bytes = response.bytes().unwrap();
                        // Samples responses are snappy blocks; streamed ones are
                        // framed raw protobuf. Labels travel as plain bytes in both.
                        let raw = match response_type {
                            prompb::read_request::ResponseType::Samples => {
                                snap::raw::Decoder::new().decompress_vec(&bytes).unwrap()
                            }
                            _ => bytes.to_vec(),
                        };
                        let seen = raw.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
                        if tenant == f.reader_a {
                            a_saw |= seen;
                        } else {
                            assert!(
                                !seen,
                                "tenant b saw tenant a's data by remote read {matchers:?}"
                            );
                        }
                    }
                }
            }
        }
        assert!(a_saw, "tenant a never saw its own data by remote read");
    }
}

#[test]
fn hostile_tenant_ids_are_refused_and_create_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cairn = Cairn::start(&data, "");
    let tenants_dir = data.join("tenants");
    let before = list_tree(&data);
    let long = "a".repeat(200);
    let hostile: &[(&str, u16)] = &[
        ("../x", 400),
        ("..", 400),
        (".", 400),
        ("a/b", 400),
        ("/etc", 400),
        (long.as_str(), 400),
        ("a\tb", 400),
        ("a|b", 400),
        ("a\\b", 400),
        ("__cairn_usage__", 400),
        ("é", 400),
        // An empty header is the same as none: Mimir reads it with
        // `Header.Get` and answers 401 `no org id`.
        ("", 401),
        ("   ", 401),
    ];
    let request = support::write_request(vec![series(
        &[("__name__", "m")],
        &[(now_minute_ms(), 1.0)],
    )]);
    for (tenant, expected) in hostile {
        let (status, body) = cairn.push(Some(tenant), &request);
        assert_eq!(status, *expected, "push as {tenant:?}: {body}");
        for (path, status) in read_statuses(&cairn, tenant) {
            assert_eq!(status, *expected, "{path} as {tenant:?}");
        }
    }
    // Control characters that an HTTP client refuses to send in a header
    // (0x01, 0x7f) go over a raw socket.
    for raw in [&b"a\x01b"[..], b"a\x7fb", b"\xff\xfe"] {
        let status = raw_push_status(&cairn.address, raw);
        assert!(status == 400, "raw tenant {raw:?}: {status}");
    }
    assert_eq!(list_tree(&data), before, "hostile IDs created files");
    assert!(!dir.path().join("x").exists());
    if tenants_dir.exists() {
        assert_eq!(std::fs::read_dir(&tenants_dir).unwrap().count(), 0);
    }
}

#[test]
fn hostile_tenant_ids_in_federated_lists_are_refused_and_create_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cairn = Cairn::start(&data, "tenancy:\n  federation_enabled: true\n");
    let before = list_tree(&data);
    let long = format!("a|{}", "b".repeat(200));
    let hostile = [
        "a|../x",
        "../x|a",
        "a|..",
        "..|a",
        "a|.",
        "a|a/b",
        "a|",
        "|a",
        "a||b",
        "|",
        long.as_str(),
        "a|b\tc",
        "a|__cairn_usage__",
        "a|b\\c",
    ];
    for tenant in hostile {
        for (path, status) in read_statuses(&cairn, tenant) {
            assert_eq!(status, 400, "{path} as {tenant:?}");
        }
    }
    // Writes never federate: `a|b` is one tenant ID with an unsupported
    // character, whatever the read setting.
    let request = support::write_request(vec![series(
        &[("__name__", "m")],
        &[(now_minute_ms(), 1.0)],
    )]);
    for tenant in ["a|b", "a|a", "a|../x"] {
        let (status, body) = cairn.push(Some(tenant), &request);
        assert_eq!(status, 400, "push as {tenant:?}: {body}");
    }
    assert_eq!(list_tree(&data), before, "hostile IDs created files");
    assert!(!dir.path().join("x").exists());
}

/// The status of every read endpoint (GET, and remote read's POST) called as `tenant`.
fn read_statuses(cairn: &Cairn, tenant: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    let reads: &[(&str, &[(&str, &str)])] = &[
        ("/api/v1/query", &[("query", "m")]),
        (
            "/api/v1/query_range",
            &[
                ("query", "m"),
                ("start", "0"),
                ("end", "60"),
                ("step", "15"),
            ],
        ),
        ("/api/v1/series", &[("match[]", "m")]),
        ("/api/v1/labels", &[]),
        ("/api/v1/label/__name__/values", &[]),
        ("/api/v1/metadata", &[]),
        ("/api/v1/query_exemplars", &[("query", "m")]),
    ];
    for (path, params) in reads {
        for prefix in ["", "/prometheus"] {
            let full = format!("{prefix}{path}");
            let (status, _) = cairn.get_json(Some(tenant), &full, params);
            out.push((full, status));
        }
    }
    let request = prompb::ReadRequest {
        queries: vec![prompb::Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: 60_000,
            matchers: vec![prompb::LabelMatcher {
                r#type: prompb::label_matcher::Type::Eq as i32,
                name: "__name__".into(),
                value: "m".into(),
            }],
            hints: None,
        }],
        accepted_response_types: vec![],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let response = cairn
        .client()
        .post(cairn.url("/api/v1/read"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Scope-OrgID", tenant)
        .body(body)
        .send()
        .unwrap();
    out.push(("/api/v1/read".to_string(), response.status().as_u16()));
    out
}

/// Sends a push with a raw header value; returns the status code.
fn raw_push_status(address: &str, tenant: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let body = cairn_ingest::encode_write_request(&support::write_request(vec![]));
    let mut request = Vec::new();
    request.extend_from_slice(b"POST /api/v1/push HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    request
        .extend_from_slice(b"Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n");
    request.extend_from_slice(b"X-Scope-OrgID: ");
    request.extend_from_slice(tenant);
    request.extend_from_slice(format!("\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(&body);
    stream.write_all(&request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn list_tree(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}
