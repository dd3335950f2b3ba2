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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{free_port, Cairn, ChildPrometheus, DEADLINE};

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

/// Whether this Prometheus build sends `remote_write.headers` (the Debian
/// 2.42 package does not; prometheus/prometheus#13030).
fn sends_remote_write_headers(binary: &str) -> bool {
    let output = Command::new(binary).arg("--version").output();
    let version = output
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
        })
        .unwrap_or_default();
    !version.contains("version 2.42.0+ds")
}

/// A loopback HTTP/1.1 relay that forwards each request to `target` with
/// `X-Scope-OrgID: tenant` added. Returns its address. Runs until the test
/// process exits; it only ever connects to `target` on loopback.
fn start_header_relay(target: &str, tenant: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let target = target.to_string();
    let tenant = tenant.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let target = target.clone();
            let tenant = tenant.clone();
            std::thread::spawn(move || {
                let _ = relay_connection(stream, &target, &tenant);
            });
        }
    });
    address
}

fn relay_connection(client: TcpStream, target: &str, tenant: &str) -> std::io::Result<()> {
    let http = reqwest::blocking::Client::new();
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .to_string();
        let mut headers = Vec::new();
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end().to_string();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body)?;
        let mut forward = http.post(format!("http://{target}{path}")).body(body);
        for (name, value) in &headers {
            if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
                forward = forward.header(name, value);
            }
        }
        let response = forward
            .header("X-Scope-OrgID", tenant)
            .send()
            .map_err(std::io::Error::other)?;
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        write!(
            writer,
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )?;
        writer.flush()?;
    }
}
