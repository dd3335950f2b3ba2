//! A real Prometheus (Debian's package) scrapes itself and remote-writes to
//! Cairn with a tenant header; Cairn then answers PromQL over that data.
//! `.ci/run` installs Prometheus; it runs as our child process on loopback
//! with its own data directory and is stopped by its PID.
//!
//! Debian bookworm's Prometheus 2.42 package ignores `remote_write.headers`
//! (prometheus/prometheus#13030: the header is configured but never sent).
//! When the installed Prometheus has that bug, the test puts a loopback relay
//! between it and Cairn that adds exactly the configured `X-Scope-OrgID`
//! header and changes nothing else; with a Prometheus that sends the header
//! itself, it writes to Cairn directly.

mod support;

use std::time::{Duration, Instant};

use support::{
    free_port, sends_remote_write_headers, start_header_relay, Cairn, ChildPrometheus, DEADLINE,
};

#[test]
fn real_prometheus_remote_writes_and_cairn_answers_queries() {
    let binary = support::prometheus_binary();
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");

    let port = free_port();
    let write_target = if sends_remote_write_headers(&binary) {
        cairn.address.clone()
    } else {
        start_header_relay(&cairn.address, "demo")
    };
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
remote_write:
  - url: http://{write_target}/api/v1/push
    headers:
      X-Scope-OrgID: demo
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
    );
    let _prometheus = ChildPrometheus::start(dir.path(), port, &config);

    let started = Instant::now();
    let (mut up, mut build_info) = (false, false);
    while !(up && build_info) {
        assert!(
            started.elapsed() < DEADLINE,
            "Prometheus data never reached Cairn (up={up}, build_info={build_info}); cairn log:\n{}",
            cairn.log()
        );
        std::thread::sleep(Duration::from_millis(250));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let result = cairn.query("demo", r#"up{job="prometheus"}"#, now);
        up = result
            .as_array()
            .is_some_and(|r| r.len() == 1 && r[0]["value"][1] == "1");
        let result = cairn.query("demo", "prometheus_build_info", now);
        build_info = result.as_array().is_some_and(|r| {
            r.len() == 1 && r[0]["metric"]["instance"] == format!("127.0.0.1:{port}").as_str()
        });
    }
    // Other tenants see none of it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert_eq!(cairn.query("other", "up", now).as_array().unwrap().len(), 0);
    // Cairn counted what it received for the tenant.
    assert!(cairn
        .metrics_text()
        .contains(r#"cairn_received_samples_total{tenant="demo"}"#));
}
