//! Deletion end to end against the real binary: Prometheus's
//! `admin/tsdb/delete_series` removes only the matching series and time
//! range from queries and the series/label APIs, for one tenant only, and
//! stays removed across a restart; `clean_tombstones`; admin-only under
//! basic auth (403 for other users); Mimir's `/compactor/delete_tenant`
//! removes a tenant's data directory after the grace period while other
//! tenants keep theirs.

mod support;

use std::time::{Duration, Instant};

use support::{cheap_hash, points, series, write_request, Cairn, DEADLINE};

const MINUTE: i64 = 60_000;

/// `m{i="0"}`, `m{i="1"}` and `other` every minute of the last 30 minutes
/// up to `now` (inclusive), value = minutes before now.
fn push_data(cairn: &Cairn, tenant: &str, now: i64) {
    let samples: Vec<(i64, f64)> = (0..=30)
        .map(|k| (now - k * MINUTE, k as f64))
        .rev()
        .collect();
    let request = write_request(vec![
        series(&[("__name__", "m"), ("i", "0")], &samples),
        series(&[("__name__", "m"), ("i", "1")], &samples),
        series(&[("__name__", "other")], &samples),
    ]);
    let (status, body) = cairn.push(Some(tenant), &request);
    assert_eq!(status, 200, "{body}");
}

/// Raw sample timestamps of each series `query` selects over the data
/// (an instant query of `query[31m]` at `now`), keyed by `i` (or the metric
/// name when there is no `i`).
fn range_timestamps(cairn: &Cairn, tenant: &str, query: &str, now: i64) -> Vec<(String, Vec<i64>)> {
    let result = cairn.query(tenant, &format!("{query}[31m]"), now as f64 / 1000.0);
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let metric = &s["metric"];
            let key = metric["i"]
                .as_str()
                .or(metric["__name__"].as_str())
                .unwrap_or("")
                .to_string();
            (key, points(s).into_iter().map(|(t, _)| t).collect())
        })
        .collect()
}

fn minutes_before(now: i64, from: i64, to: i64) -> Vec<i64> {
    (to..=from).rev().map(|k| now - k * MINUTE).collect()
}

/// An admin call with form parameters; returns status and body.
fn admin(
    cairn: &Cairn,
    method: &str,
    path: &str,
    tenant: Option<&str>,
    user: Option<(&str, &str)>,
    params: &[(&str, &str)],
) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let body: String = params
        .iter()
        .map(|(k, v)| format!("{}={}", support::form_escape(k), support::form_escape(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut builder = cairn
        .client()
        .request(method, cairn.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(tenant) = tenant {
        builder = builder.header("X-Scope-OrgID", tenant);
    }
    if let Some((name, password)) = user {
        builder = builder.basic_auth(name, Some(password));
    }
    let response = builder.send().unwrap();
    (response.status().as_u16(), response.text().unwrap())
}

fn series_names(cairn: &Cairn, tenant: &str, selector: &str) -> Vec<String> {
    let (status, json) = cairn.get_json(Some(tenant), "/api/v1/series", &[("match[]", selector)]);
    assert_eq!(status, 200, "{json}");
    json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn names(cairn: &Cairn, tenant: &str) -> Vec<String> {
    let (status, json) = cairn.get_json(
        Some(tenant),
        "/prometheus/api/v1/label/__name__/values",
        &[],
    );
    assert_eq!(status, 200, "{json}");
    json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn delete_series_removes_only_the_matching_series_and_range_of_one_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cairn = Cairn::start(&data, "");
    let now = support::now_minute_ms();
    push_data(&cairn, "a", now);
    push_data(&cairn, "b", now);
    let all = minutes_before(now, 30, 0);

    // Bad requests change nothing.
    let (status, body) = admin(
        &cairn,
        "POST",
        "/api/v1/admin/tsdb/delete_series",
        Some("a"),
        None,
        &[],
    );
    assert_eq!(
        (status, body.contains("no match[] parameter provided")),
        (400, true),
        "{body}"
    );
    let (status, body) = admin(
        &cairn,
        "POST",
        "/api/v1/admin/tsdb/delete_series",
        Some("a"),
        None,
        &[("match[]", "m"), ("start", "yesterday")],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#"invalid parameter \"start\""#), "{body}");
    let (status, body) = admin(
        &cairn,
        "POST",
        "/api/v1/admin/tsdb/delete_series",
        Some("a"),
        None,
        &[("match[]", "{}")],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#"invalid parameter \"match[]\""#), "{body}");
    let (status, _) = admin(
        &cairn,
        "POST",
        "/api/v1/admin/tsdb/delete_series",
        None,
        None,
        &[("match[]", "m")],
    );
    assert_eq!(status, 401);

    // m{i="0"} from 20 to 10 minutes ago (inclusive), by Unix seconds.
    let start = ((now - 20 * MINUTE) / 1000).to_string();
    let end = ((now - 10 * MINUTE) / 1000).to_string();
    let (status, body) = admin(
        &cairn,
        "POST",
        "/api/v1/admin/tsdb/delete_series",
        Some("a"),
        None,
        &[("match[]", r#"m{i="0"}"#), ("start", &start), ("end", &end)],
    );
    assert_eq!((status, body.as_str()), (204, ""));
    let expect_m0 = [minutes_before(now, 30, 21), minutes_before(now, 9, 0)].concat();
    assert_eq!(
        range_timestamps(&cairn, "a", "m", now),
        vec![
            ("0".to_string(), expect_m0.clone()),
            ("1".to_string(), all.clone())
        ]
    );
    assert_eq!(
        range_timestamps(&cairn, "b", "m", now),
        vec![
            ("0".to_string(), all.clone()),
            ("1".to_string(), all.clone())
        ]
    );

    // All of `other` (PUT and the /prometheus prefix work too).
    let (status, _) = admin(
        &cairn,
        "PUT",
        "/prometheus/api/v1/admin/tsdb/delete_series",
        Some("a"),
        None,
        &[("match[]", "other"), ("match[]", "nothing_matches")],
    );
    assert_eq!(status, 204);
    assert!(range_timestamps(&cairn, "a", "other", now).is_empty());
    assert!(series_names(&cairn, "a", "other").is_empty());
    assert_eq!(series_names(&cairn, "a", "m").len(), 2);
    assert_eq!(names(&cairn, "a"), vec!["m"]);
    assert_eq!(names(&cairn, "b"), vec!["m", "other"]);
    assert_eq!(series_names(&cairn, "b", "other").len(), 1);
    let instant = cairn.query("a", "count(other)", now as f64 / 1000.0);
    assert_eq!(instant.as_array().unwrap().len(), 0, "{instant}");

    // clean_tombstones removes the bytes; nothing reappears, here or
    // after a restart.
    let (status, _) = admin(
        &cairn,
        "POST",
        "/api/v1/admin/tsdb/clean_tombstones",
        Some("a"),
        None,
        &[],
    );
    assert_eq!(status, 204);
    let (status, _) = admin(
        &cairn,
        "PUT",
        "/prometheus/api/v1/admin/tsdb/clean_tombstones",
        Some("a"),
        None,
        &[],
    );
    assert_eq!(status, 204);
    assert!(cairn.terminate().success());
    let cairn = Cairn::restart_after_kill(&data);
    assert_eq!(
        range_timestamps(&cairn, "a", "m", now),
        vec![("0".to_string(), expect_m0), ("1".to_string(), all.clone())]
    );
    assert!(range_timestamps(&cairn, "a", "other", now).is_empty());
    assert_eq!(names(&cairn, "a"), vec!["m"]);
    assert_eq!(
        range_timestamps(&cairn, "b", "other", now),
        vec![("other".to_string(), all)]
    );
    // A tenant that never wrote: nothing to delete, still 204.
    let (status, _) = admin(
        &cairn,
        "POST",
        "/api/v1/admin/tsdb/delete_series",
        Some("never"),
        None,
        &[("match[]", "m")],
    );
    assert_eq!(status, 204);
}

fn users_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("users.yaml");
    let yaml = format!(
        "users:\n  root:\n    password_hash: '{}'\n    read: []\n    write: []\n    admin: true\n  alice:\n    password_hash: '{}'\n    read: [\"a\"]\n    write: [\"a\"]\n",
        cheap_hash("pw-root"),
        cheap_hash("pw-alice")
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn only_admins_may_delete_under_basic_auth() {
    let tmp = tempfile::tempdir().unwrap();
    let users = users_file(tmp.path());
    let config = format!("auth:\n  mode: basic\n  users_file: {}\n", users.display());
    let cairn = Cairn::start(&tmp.path().join("data"), &config);
    let alice = Some(("alice", "pw-alice"));
    let root = Some(("root", "pw-root"));
    let now = support::now_minute_ms();
    let request = write_request(vec![series(&[("__name__", "m")], &[(now, 1.0)])]);
    let response = cairn
        .client()
        .post(cairn.url("/api/v1/push"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Scope-OrgID", "a")
        .basic_auth("alice", Some("pw-alice"))
        .body(cairn_ingest::encode_write_request(&request))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let calls = [
        ("POST", "/api/v1/admin/tsdb/delete_series"),
        ("PUT", "/prometheus/api/v1/admin/tsdb/delete_series"),
        ("POST", "/api/v1/admin/tsdb/clean_tombstones"),
        ("POST", "/compactor/delete_tenant"),
        ("GET", "/compactor/delete_tenant_status"),
    ];
    for (method, path) in calls {
        let (status, body) = admin(&cairn, method, path, Some("a"), alice, &[("match[]", "m")]);
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(body.contains("err-cairn-admin-required"), "{body}");
        let (status, _) = admin(&cairn, method, path, Some("a"), None, &[("match[]", "m")]);
        assert_eq!(status, 401, "{method} {path}");
    }
    let (status, json) = {
        let response = cairn
            .client()
            .get(cairn.url("/api/v1/query"))
            .query(&[("query", "m"), ("time", &(now / 1000).to_string())])
            .header("X-Scope-OrgID", "a")
            .basic_auth("alice", Some("pw-alice"))
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    assert_eq!(status, 200);
    assert!(
        json.contains(r#""__name__":"m""#),
        "nothing was deleted: {json}"
    );

    // An admin acts on any tenant, without read or write rights on it.
    let (status, body) = admin(
        &cairn,
        "POST",
        "/api/v1/admin/tsdb/delete_series",
        Some("a"),
        root,
        &[("match[]", "m")],
    );
    assert_eq!(status, 204, "{body}");
    let (status, body) = admin(
        &cairn,
        "GET",
        "/compactor/delete_tenant_status",
        Some("a"),
        root,
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"tenant_id":"a","blocks_deleted":false}"#);
    let response = cairn
        .client()
        .get(cairn.url("/api/v1/query"))
        .query(&[("query", "m"), ("time", &(now / 1000).to_string())])
        .header("X-Scope-OrgID", "a")
        .basic_auth("alice", Some("pw-alice"))
        .send()
        .unwrap();
    let text = response.text().unwrap();
    assert!(text.contains(r#""result":[]"#), "{text}");
}

#[test]
fn a_deleted_tenant_loses_its_data_after_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cairn = Cairn::start(
        &data,
        "storage:\n  tenant_deletion_delay: 2s\n  maintenance_interval: 500ms\n",
    );
    let now = support::now_minute_ms();
    push_data(&cairn, "a", now);
    push_data(&cairn, "b", now);
    let status_of = |tenant: &str| {
        let (status, body) = admin(
            &cairn,
            "GET",
            "/compactor/delete_tenant_status",
            Some(tenant),
            None,
            &[],
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    assert_eq!(
        status_of("a"),
        serde_json::json!({"tenant_id": "a", "blocks_deleted": false})
    );
    let (status, body) = admin(
        &cairn,
        "POST",
        "/compactor/delete_tenant",
        Some("a"),
        None,
        &[],
    );
    assert_eq!((status, body.as_str()), (200, ""));
    let marked = Instant::now();
    assert!(data.join("tenants/a/tenant-deletion-mark.json").exists());
    // Still there during the grace period.
    assert_eq!(range_timestamps(&cairn, "a", "other", now).len(), 1);

    while status_of("a")["blocks_deleted"] != true {
        assert!(
            marked.elapsed() < DEADLINE,
            "tenant a never deleted; log:\n{}",
            cairn.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        marked.elapsed() >= Duration::from_secs(1),
        "deleted before its grace period"
    );
    assert!(!data.join("tenants/a").exists());
    assert!(range_timestamps(&cairn, "a", "m", now).is_empty());
    assert!(series_names(&cairn, "a", "{__name__=~\".+\"}").is_empty());
    assert_eq!(range_timestamps(&cairn, "b", "m", now).len(), 2);
    assert_eq!(status_of("b")["blocks_deleted"], false);

    // A restart finds no trace of it; b is intact.
    assert!(cairn.terminate().success());
    let cairn = Cairn::restart_after_kill(&data);
    assert!(range_timestamps(&cairn, "a", "m", now).is_empty());
    assert_eq!(range_timestamps(&cairn, "b", "other", now).len(), 1);
}
