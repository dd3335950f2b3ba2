//! Mimir's `user_stats` and cardinality API, the admin tenants overview and
//! `cairn tenants`, against the real binary with a known dataset in two
//! tenants: exact figures, never another tenant's.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{cheap_hash, now_minute_ms, series, write_request, Cairn, DEADLINE};

/// team-a: 6 series now (`env` prod×4, dev×2; `job` api×3, db×3) plus 2
/// series whose newest sample is 2 h old; team-b: 1 series.
fn load_dataset(cairn: &Cairn) -> i64 {
    let now = now_minute_ms();
    let old = now - 2 * 3_600_000;
    let mut team_a = Vec::new();
    for (env, job, pod) in [
        ("prod", "api", "1"),
        ("prod", "api", "2"),
        ("prod", "db", "1"),
        ("prod", "db", "2"),
        ("dev", "api", "1"),
        ("dev", "db", "1"),
    ] {
        team_a.push(series(
            &[("__name__", "up"), ("env", env), ("job", job), ("pod", pod)],
            &[(now - 30_000, 1.0), (now, 1.0)],
        ));
    }
    team_a.push(series(
        &[("__name__", "old_metric"), ("env", "prod")],
        &[(old, 1.0)],
    ));
    team_a.push(series(
        &[("__name__", "old_metric"), ("env", "staging")],
        &[(old, 1.0)],
    ));
    // One request: 14 samples, counted by one rate tick.
    assert_eq!(cairn.push(Some("team-a"), &write_request(team_a)).0, 200);
    let team_b = vec![series(
        &[("__name__", "secret_b"), ("env", "b-only")],
        &[(now, 1.0)],
    )];
    assert_eq!(cairn.push(Some("team-b"), &write_request(team_b)).0, 200);
    now
}

#[test]
fn user_stats_and_cardinality_are_exact_and_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("data"), "");
    load_dataset(&cairn);

    // label_names over the whole head, and with a selector and a limit.
    let path = "/prometheus/api/v1/cardinality/label_names";
    let (status, body) = cairn.get_json(Some("team-a"), path, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "label_values_count_total": 9,
            "label_names_count": 4,
            "cardinality": [
                {"label_name": "env", "label_values_count": 3},
                {"label_name": "__name__", "label_values_count": 2},
                {"label_name": "job", "label_values_count": 2},
                {"label_name": "pod", "label_values_count": 2},
            ]
        })
    );
    let (_, body) = cairn.get_json(
        Some("team-a"),
        path,
        &[("selector", r#"{job="api"}"#), ("limit", "2")],
    );
    assert_eq!(
        body,
        json!({
            "label_values_count_total": 6,
            "label_names_count": 4,
            "cardinality": [
                {"label_name": "env", "label_values_count": 2},
                {"label_name": "pod", "label_values_count": 2},
            ]
        })
    );
    // Only active series (newest sample within 20 minutes).
    let (_, body) = cairn.get_json(Some("team-a"), path, &[("count_method", "active")]);
    assert_eq!(body["label_values_count_total"], 7);
    assert_eq!(
        body["cardinality"][0],
        json!({"label_name": "env", "label_values_count": 2})
    );

    // label_values, GET and form POST, with selector and limit.
    let path = "/prometheus/api/v1/cardinality/label_values";
    let params = [
        ("label_names[]", "job"),
        ("label_names[]", "env"),
        ("selector", r#"{__name__="up"}"#),
        ("limit", "1"),
    ];
    let expected = json!({
        "series_count_total": 8,
        "labels": [
            {"label_name": "env", "label_values_count": 2, "series_count": 6,
             "cardinality": [{"label_value": "prod", "series_count": 4}]},
            {"label_name": "job", "label_values_count": 2, "series_count": 6,
             "cardinality": [{"label_value": "api", "series_count": 3}]},
        ]
    });
    let (status, body) = cairn.get_json(Some("team-a"), path, &params);
    assert_eq!((status, &body), (200, &expected));
    let (status, body) = cairn.post_form_json(Some("team-a"), path, &params);
    assert_eq!((status, &body), (200, &expected));
    let (_, body) = cairn.get_json(
        Some("team-a"),
        "/api/v1/cardinality/label_values",
        &[("label_names[]", "env"), ("count_method", "active")],
    );
    assert_eq!(
        body,
        json!({
            "series_count_total": 6,
            "labels": [{"label_name": "env", "label_values_count": 2, "series_count": 6,
                "cardinality": [
                    {"label_value": "prod", "series_count": 4},
                    {"label_value": "dev", "series_count": 2}]}]
        })
    );

    // active_series: the 4 active `prod` series, sorted.
    let (status, body) = cairn.get_json(
        Some("team-a"),
        "/prometheus/api/v1/cardinality/active_series",
        &[("selector", r#"{env="prod"}"#)],
    );
    assert_eq!(status, 200, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 4, "the old prod series is not active: {body}");
    assert_eq!(
        data[0],
        json!({"__name__": "up", "env": "prod", "job": "api", "pod": "1"})
    );

    // Another tenant sees only its own series; an unknown one sees nothing.
    let (_, body) = cairn.get_json(
        Some("team-b"),
        "/prometheus/api/v1/cardinality/label_names",
        &[],
    );
    assert_eq!(
        body,
        json!({"label_values_count_total": 2, "label_names_count": 2, "cardinality": [
            {"label_name": "__name__", "label_values_count": 1},
            {"label_name": "env", "label_values_count": 1}]})
    );
    let (_, body) = cairn.get_json(
        Some("team-b"),
        "/prometheus/api/v1/cardinality/active_series",
        &[("selector", r#"{__name__="up"}"#)],
    );
    assert_eq!(body, json!({"data": []}));
    let (_, body) = cairn.get_json(
        Some("nobody"),
        "/prometheus/api/v1/cardinality/label_values",
        &[("label_names[]", "env")],
    );
    assert_eq!(
        body,
        json!({"series_count_total": 0, "labels": [
            {"label_name": "env", "label_values_count": 0, "series_count": 0, "cardinality": []}]})
    );

    // Mimir's parameter errors: plain text, 400; no tenant: 401.
    for (path, params, message) in [
        ("label_values", vec![], "'label_names[]' param is required"),
        (
            "label_values",
            vec![("label_names[]", "1x")],
            "invalid 'label_names' param '1x'",
        ),
        (
            "label_names",
            vec![("limit", "501")],
            "'limit' param cannot be greater than '500'",
        ),
        (
            "label_names",
            vec![("limit", "-1")],
            "'limit' param cannot be less than '0'",
        ),
        (
            "label_names",
            vec![("count_method", "x")],
            "invalid 'count_method' param 'x'. valid options are: [active,inmemory]",
        ),
        (
            "label_names",
            vec![("selector", "{a=\"b\"}"), ("selector", "{c=\"d\"}")],
            "multiple 'selector' params are not allowed",
        ),
        ("active_series", vec![], "missing 'selector' parameter"),
    ] {
        let (status, body) = cairn.get_json(
            Some("team-a"),
            &format!("/prometheus/api/v1/cardinality/{path}"),
            &params,
        );
        assert_eq!(
            (status, body.as_str()),
            (400, Some(message)),
            "{path} {params:?}"
        );
    }
    let (status, _) = cairn.get_json(None, "/prometheus/api/v1/cardinality/label_names", &[]);
    assert_eq!(status, 401);

    // user_stats: series in the head; the rate is Mimir's EWMA of accepted
    // samples, 14 samples in one 15 s tick = 14/15 per second at the first
    // tick, then 0.8 of that per idle tick.
    let (_, body) = cairn.get_json(Some("nobody"), "/api/v1/user_stats", &[]);
    assert_eq!(
        body,
        json!({"ingestionRate": 0.0, "numSeries": 0, "APIIngestionRate": 0.0, "RuleIngestionRate": 0.0})
    );
    let started = Instant::now();
    let stats = loop {
        let (status, body) = cairn.get_json(Some("team-a"), "/api/v1/user_stats", &[]);
        assert_eq!(status, 200, "{body}");
        if body["ingestionRate"].as_f64().unwrap() > 0.0 {
            break body;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the ingestion rate never moved"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(stats["numSeries"], 8);
    assert_eq!(stats["RuleIngestionRate"], 0.0);
    assert_eq!(stats["APIIngestionRate"], stats["ingestionRate"]);
    let rate = stats["ingestionRate"].as_f64().unwrap();
    let first = 14.0 / 15.0;
    assert!(
        (0..4).any(|ticks| (rate - first * 0.8f64.powi(ticks)).abs() < 1e-9),
        "rate {rate} is not 14/15 decayed by whole ticks"
    );
    let (_, body) = cairn.get_json(Some("team-b"), "/api/v1/user_stats", &[]);
    assert_eq!(body["numSeries"], 1);

    // The admin overview (mode none: every request may) and `cairn tenants`.
    let (status, body) = cairn.get_json(None, "/api/v1/admin/tenants", &[]);
    assert_eq!(status, 200, "{body}");
    let tenants = body["data"].as_array().unwrap();
    assert_eq!(tenants.len(), 2);
    assert_eq!(tenants[0]["tenant"], "team-a");
    assert_eq!(tenants[0]["activeSeries"], 8);
    assert_eq!(tenants[1]["tenant"], "team-b");
    assert_eq!(tenants[1]["activeSeries"], 1);
    for tenant in tenants {
        assert!(tenant["bytesStored"].as_u64().unwrap() > 0, "{tenant}");
        assert!(tenant["lastWriteTime"].as_str().unwrap().ends_with('Z'));
    }
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["tenants", "--url", &cairn.url("")])
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("TENANT"));
    assert!(lines[1].starts_with("team-a  8 "), "{table}");
    assert!(lines[2].starts_with("team-b  1 "), "{table}");
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["tenants", "--json", "--url", &cairn.url("")])
        .output()
        .unwrap();
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["data"][1]["tenant"], "team-b");
}

#[test]
fn admin_tenants_needs_an_admin_in_basic_mode() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(
        &users,
        format!(
            "users:\n  ops:\n    password_hash: '{}'\n    read: ['*']\n    write: ['*']\n    admin: true\n  dev:\n    password_hash: '{}'\n    read: ['team-a']\n    write: ['team-a']\n",
            cheap_hash("pw-ops"),
            cheap_hash("pw-dev")
        ),
    )
    .unwrap();
    let config = format!("auth:\n  mode: basic\n  users_file: {}\n", users.display());
    let cairn = Cairn::start(&dir.path().join("data"), &config);
    let get = |user: Option<(&str, &str)>| {
        let mut request = cairn.client().get(cairn.url("/api/v1/admin/tenants"));
        if let Some((name, password)) = user {
            request = request.basic_auth(name, Some(password));
        }
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    assert_eq!(get(None).0, 401);
    assert_eq!(get(Some(("dev", "pw-dev"))).0, 403);
    assert_eq!(
        get(Some(("ops", "pw-ops"))),
        (200, r#"{"status":"success","data":[]}"#.to_string())
    );
    // The CLI passes the credentials from the environment.
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["tenants", "--url", &cairn.url(""), "--user", "ops"])
        .env("CAIRN_PASSWORD", "pw-ops")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["tenants", "--url", &cairn.url(""), "--user", "dev"])
        .env("CAIRN_PASSWORD", "pw-dev")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("403"));
}
