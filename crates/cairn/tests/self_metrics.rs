//! `/metrics` speaks Prometheus's text format (checked by the real
//! `promtool check metrics`) and carries the per-tenant figures.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{now_minute_ms, series, write_request, Cairn};

#[test]
fn metrics_pass_promtool_and_count_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("data"), "");
    let t = now_minute_ms() - 60_000;
    let good = write_request(vec![series(
        &[("__name__", "m"), ("job", "x")],
        &[(t, 1.0), (t + 1, 2.0)],
    )]);
    assert_eq!(cairn.push(Some("team-a"), &good).0, 200);
    let out_of_order = write_request(vec![series(
        &[("__name__", "m"), ("job", "x")],
        &[(t - 1, 0.0)],
    )]);
    assert_eq!(cairn.push(Some("team-a"), &out_of_order).0, 400);

    assert_eq!(
        cairn
            .query("team-a", "m", (t / 1000) as f64)
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let text = cairn.metrics_text();
    for expected in [
        r#"cairn_received_samples_total{tenant="team-a"} 3"#,
        r#"cairn_discarded_samples_total{tenant="team-a",reason="sample_out_of_order"} 1"#,
        r#"cairn_active_series{tenant="team-a"} 1"#,
        r#"cairn_request_duration_seconds_count{method="POST",route="/api/v1/push",status_code="200"} 1"#,
        r#"cairn_request_duration_seconds_count{method="POST",route="/api/v1/push",status_code="400"} 1"#,
        "cairn_wal_written_bytes_total{tenant=\"team-a\"}",
        "cairn_build_info{version=",
        r#"cairn_created_series_total{tenant="team-a"} 1"#,
        r#"cairn_head_chunks{tenant="team-a"} 1"#,
        r#"cairn_wal_segments{tenant="team-a"} 1"#,
        r#"cairn_wal_write_failures_total{tenant="team-a"} 0"#,
        r#"cairn_blocks{tenant="team-a"} 0"#,
        r#"cairn_last_write_timestamp_seconds{tenant="team-a"} "#,
        "cairn_block_cut_duration_seconds_count 0",
        "cairn_compaction_duration_seconds_bucket{le=\"+Inf\"} 0",
        r#"cairn_queries_total{tenant="team-a",endpoint="query"} 1"#,
        r#"cairn_query_samples_scanned_total{tenant="team-a"} 1"#,
        r#"cairn_query_duration_seconds_count{endpoint="query"} 1"#,
        "cairn_storage_filesystem_available_bytes ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package) is installed by .ci/run");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
