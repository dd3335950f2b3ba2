//! A real Prometheus (Debian's package) scrapes itself and remote-writes to
//! Cairn with a tenant header; Cairn then answers PromQL over that data.
//! `.ci/run` installs Prometheus; it runs as our child process on loopback
//! with its own data directory and is stopped by its PID.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Cairn, DEADLINE};

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn real_prometheus_remote_writes_and_cairn_answers_queries() {
    let binary = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into());
    let dir = tempfile::tempdir().unwrap();
    let cairn = Cairn::start(&dir.path().join("cairn"), "");

    let port = free_port();
    let config = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
remote_write:
  - url: http://{cairn}/api/v1/push
    headers:
      X-Scope-OrgID: demo
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
        cairn = cairn.address
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {binary} (install Debian's prometheus package): {e}")
        });
    let _prometheus = Prometheus(child);

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
