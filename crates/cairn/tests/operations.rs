//! The operations kit in `operations/`: the rules pass `promtool check
//! rules` and their unit tests pass `promtool test rules`; every PromQL
//! expression of the dashboards and rules parses with Cairn's own parser
//! and names only metrics Cairn exports; and against a Cairn that a real
//! Prometheus scrapes and remote-writes into, the dashboards' core panels
//! return data.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{
    free_port, sends_remote_write_headers, start_header_relay, Cairn, ChildPrometheus, DEADLINE,
};

fn operations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../operations")
}

fn files(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(operations_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *.{extension} in operations/{dir}");
    out
}

fn promtool(args: &[&str], paths: &[PathBuf]) {
    let output = Command::new("promtool")
        .args(args)
        .args(paths)
        .output()
        .expect("promtool (Debian's prometheus package) is installed by .ci/run");
    assert!(
        output.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    promtool(&["check", "rules"], &files("rules", "yaml"));
    promtool(&["test", "rules"], &files("tests", "yaml"));
}

/// One dashboard query: dashboard file, panel title, expression.
struct PanelQuery {
    dashboard: String,
    panel: String,
    expr: String,
}

fn dashboard_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for path in files("dashboards", "json") {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                out.push(PanelQuery {
                    dashboard: name.clone(),
                    panel: panel["title"].as_str().unwrap().to_string(),
                    expr: target["expr"].as_str().unwrap().to_string(),
                });
            }
        }
    }
    out
}

fn rule_expressions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in files("rules", "yaml") {
        let rules: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for group in rules["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap();
                out.push((name.to_string(), rule["expr"].as_str().unwrap().to_string()));
            }
        }
    }
    out
}

/// Grafana's variables replaced by what the "All" choice and the default
/// rate interval give.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$job", ".+")
        .replace("$tenant", ".+")
}

/// Identifiers in an expression that name Cairn's metrics.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("cairn_") || word.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

/// The family a sample name belongs to (`_total`, `_bucket`, `_count`,
/// `_sum` stripped), as `# TYPE` lines name it.
fn family_of(name: &str, families: &BTreeSet<String>) -> Option<String> {
    if families.contains(name) {
        return Some(name.to_string());
    }
    ["_total", "_bucket", "_count", "_sum"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| families.contains(*base))
        .map(str::to_string)
}

/// One of everything the dashboards chart: a push with an exemplar and
/// metadata, a discarded sample, a query and a failing query, so that every
/// labelled family has a member.
fn exercise(cairn: &Cairn) {
    use cairn_ingest::prompb;
    let t = support::now_minute_ms();
    let mut with_exemplar = support::series(&[("__name__", "m"), ("job", "x")], &[(t, 1.0)]);
    with_exemplar.exemplars = vec![prompb::Exemplar {
        labels: support::labels(&[("trace_id", "abc")]),
        value: 1.0,
        timestamp: t,
    }];
    let mut request = support::write_request(vec![with_exemplar]);
    request.metadata = vec![prompb::MetricMetadata {
        r#type: 1,
        metric_family_name: "m".into(),
        help: "a counter".into(),
        unit: String::new(),
    }];
    assert_eq!(cairn.push(Some("team-a"), &request).0, 200);
    let out_of_order = support::series(&[("__name__", "m"), ("job", "x")], &[(t - 1, 1.0)]);
    assert_eq!(
        cairn
            .push(Some("team-a"), &support::write_request(vec![out_of_order]))
            .0,
        400
    );
    let now = (t / 1000) as f64;
    assert_eq!(cairn.query("team-a", "m", now).as_array().unwrap().len(), 1);
    let (status, _) = cairn.get_json(
        Some("team-a"),
        "/prometheus/api/v1/query",
        &[("query", "rate(m[1m]"), ("time", &now.to_string())],
    );
    assert_eq!(status, 400);
}

#[test]
fn every_expression_parses_and_names_real_metrics() {
    let dir = tempfile::tempdir().unwrap();
    // An override, so that the per-tenant limit family is exported too.
    let overrides = dir.path().join("overrides.yaml");
    std::fs::write(
        &overrides,
        "overrides:\n  team-a:\n    max_global_series_per_user: 1000\n",
    )
    .unwrap();
    let config = format!("runtime_config:\n  file: {}\n", overrides.display());
    let cairn = Cairn::start(&dir.path().join("data"), &config);
    exercise(&cairn);
    let text = cairn.metrics_text();
    let families: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();

    let mut expressions: Vec<(String, String)> = dashboard_queries()
        .into_iter()
        .map(|q| (format!("{} / {}", q.dashboard, q.panel), q.expr))
        .collect();
    expressions.extend(rule_expressions());
    assert!(expressions.len() > 60, "{} expressions", expressions.len());
    for (what, expr) in &expressions {
        if let Err(error) = cairn_promql::parse_expr(&substitute(expr)) {
            panic!("{what}: {expr:?} does not parse: {error}");
        }
        for name in metric_names(expr) {
            // Object-storage metrics exist only with a bucket configured.
            if name.starts_with("cairn_bucket_")
                && !families.iter().any(|f| f.starts_with("cairn_bucket_"))
            {
                continue;
            }
            assert!(
                family_of(&name, &families).is_some(),
                "{what}: {name} is not a metric Cairn exports"
            );
        }
    }
}

/// Panels every running Cairn has data for (the others show discards,
/// failures or optional features).
const CORE_PANELS: &[(&str, &str)] = &[
    (
        "cairn-writes.json",
        "Push requests per second by status code",
    ),
    ("cairn-writes.json", "Push latency"),
    ("cairn-writes.json", "Samples received per second by tenant"),
    ("cairn-writes.json", "Samples appended per second by tenant"),
    ("cairn-writes.json", "Series created per second by tenant"),
    ("cairn-writes.json", "WAL bytes written per second"),
    ("cairn-writes.json", "WAL fsyncs and failures per second"),
    (
        "cairn-reads.json",
        "Read requests per second by route and status code",
    ),
    ("cairn-reads.json", "Query evaluation latency by endpoint"),
    ("cairn-reads.json", "Queries per second by tenant"),
    ("cairn-reads.json", "Samples scanned per second by tenant"),
    ("cairn-tenants.json", "Tenants"),
    ("cairn-tenants.json", "Active series by tenant"),
    ("cairn-tenants.json", "Ingestion rate by tenant"),
    ("cairn-tenants.json", "Bytes stored on local disk by tenant"),
    ("cairn-tenants.json", "Time since last write by tenant"),
    (
        "cairn-tenants.json",
        "Queries and samples scanned per second by tenant",
    ),
    ("cairn-tenants.json", "Top 10 tenants by active series"),
    (
        "cairn-tenants.json",
        "Active series as a share of the series limit",
    ),
    ("cairn-storage.json", "Head series"),
    ("cairn-storage.json", "Head chunks"),
    ("cairn-storage.json", "WAL segments and size"),
    ("cairn-storage.json", "Blocks"),
    ("cairn-storage.json", "Block bytes on disk"),
    ("cairn-storage.json", "Blocks cut and compacted per hour"),
    ("cairn-storage.json", "Maintenance failures per hour"),
    ("cairn-storage.json", "WAL corruptions repaired at start-up"),
    ("cairn-resources.json", "CPU"),
    ("cairn-resources.json", "Resident memory"),
    ("cairn-resources.json", "Open file descriptors"),
    ("cairn-resources.json", "Uptime"),
    ("cairn-resources.json", "Data filesystem space available"),
    ("cairn-resources.json", "Version"),
];

#[test]
fn core_panels_return_data_from_a_cairn_that_monitors_itself() {
    const TENANT: &str = "cairn-self";
    let binary = support::prometheus_binary();
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");
    let port = free_port();
    let write_target = if sends_remote_write_headers(&binary) {
        cairn.address.clone()
    } else {
        start_header_relay(&cairn.address, TENANT)
    };
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: cairn
    static_configs:
      - targets: ["{cairn}"]
remote_write:
  - url: http://{write_target}/api/v1/push
    headers:
      X-Scope-OrgID: {TENANT}
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
        cairn = cairn.address
    );
    let _prometheus = ChildPrometheus::start(dir.path(), port, &config);

    let queries = dashboard_queries();
    for (dashboard, panel) in CORE_PANELS {
        assert!(
            queries
                .iter()
                .any(|q| q.dashboard == *dashboard && q.panel == *panel),
            "core panel {dashboard} / {panel} is not in the dashboards"
        );
    }
    let mut pending: Vec<&PanelQuery> = queries
        .iter()
        .filter(|q| {
            CORE_PANELS
                .iter()
                .any(|(d, p)| q.dashboard == *d && q.panel == *p)
        })
        .collect();
    let started = Instant::now();
    while !pending.is_empty() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        pending.retain(|q| {
            let result = cairn.query(TENANT, &substitute(&q.expr), now);
            result.as_array().is_none_or(|r| r.is_empty())
        });
        if pending.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "core panels without data after {:?}:\n{}\ncairn log:\n{}",
            DEADLINE,
            pending
                .iter()
                .map(|q| format!("{} / {}: {}", q.dashboard, q.panel, q.expr))
                .collect::<Vec<_>>()
                .join("\n"),
            cairn.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
