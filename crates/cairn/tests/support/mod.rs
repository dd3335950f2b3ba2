//! Test harness: runs the real `cairn` binary on a free loopback port with a
//! temporary data directory, and talks to it over HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_ingest::prompb;

/// How long any wait in these tests may take before failing.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A running `cairn serve` child process.
pub struct Cairn {
    child: Option<Child>,
    pub address: String,
    pub data_dir: PathBuf,
    config_path: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::blocking::Client,
}

impl Cairn {
    /// Starts cairn on `data_dir` with the given YAML (merged into a config
    /// file that sets nothing else), and waits until `/ready` answers 200.
    pub fn start(data_dir: &Path, config_yaml: &str) -> Cairn {
        std::fs::create_dir_all(data_dir).unwrap();
        let config_path = data_dir.with_extension("yaml");
        std::fs::write(&config_path, config_yaml).unwrap();
        Cairn::spawn(data_dir, &config_path)
    }

    fn spawn(data_dir: &Path, config_path: &Path) -> Cairn {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("serve")
            .arg("--config")
            .arg(config_path)
            .arg("--http.listen-address")
            .arg("127.0.0.1:0")
            .arg("--storage.path")
            .arg(data_dir)
            .arg("--log.level")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cairn");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let log_writer = Arc::clone(&log);
        // Drains stderr for the life of the process so the pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("cairn listening") {
                    if let Some(address) = field(&line, "address") {
                        let _ = address_tx.send(address);
                    }
                }
                log_writer.lock().unwrap().push(line);
            }
        });
        let address = match address_rx.recv_timeout(DEADLINE) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "cairn did not start; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let cairn = Cairn {
            child: Some(child),
            address,
            data_dir: data_dir.to_path_buf(),
            config_path: config_path.to_path_buf(),
            log,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        cairn.wait_ready();
        cairn
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            if let Ok(response) = self.client.get(self.url("/ready")).send() {
                if response.status().as_u16() == 200 {
                    return;
                }
            }
            assert!(
                started.elapsed() < DEADLINE,
                "cairn never became ready; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, then wait for a clean exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                panic!("cairn did not exit after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a new process on the same data directory and config.
    pub fn restart_after_kill(data_dir: &Path) -> Cairn {
        let config_path = data_dir.with_extension("yaml");
        Cairn::spawn(data_dir, &config_path)
    }

    /// Pushes a remote-write request; returns status and body text.
    pub fn push(&self, tenant: Option<&str>, request: &prompb::WriteRequest) -> (u16, String) {
        self.push_raw(tenant, cairn_ingest::encode_write_request(request))
    }

    pub fn push_raw(&self, tenant: Option<&str>, body: Vec<u8>) -> (u16, String) {
        let (status, text, _) = self.push_raw_with_retry_after(tenant, body);
        (status, text)
    }

    /// Pushes a remote-write request; returns status, body text and the
    /// `Retry-After` header, if any.
    pub fn push_with_retry_after(
        &self,
        tenant: Option<&str>,
        request: &prompb::WriteRequest,
    ) -> (u16, String, Option<String>) {
        self.push_raw_with_retry_after(tenant, cairn_ingest::encode_write_request(request))
    }

    fn push_raw_with_retry_after(
        &self,
        tenant: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, String, Option<String>) {
        let mut builder = self
            .client
            .post(self.url("/api/v1/push"))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body);
        if let Some(tenant) = tenant {
            builder = builder.header("X-Scope-OrgID", tenant);
        }
        let response = builder.send().expect("push request");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, response.text().unwrap_or_default(), retry_after)
    }

    /// GET on a read path with query parameters; returns status and JSON.
    pub fn get_json(
        &self,
        tenant: Option<&str>,
        path: &str,
        params: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let mut builder = self.client.get(self.url(path)).query(params);
        if let Some(tenant) = tenant {
            builder = builder.header("X-Scope-OrgID", tenant);
        }
        let response = builder.send().expect("read request");
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        let json =
            serde_json::from_str(&text).unwrap_or_else(|_| serde_json::Value::String(text.clone()));
        (status, json)
    }

    /// Form-encoded POST on a read path; returns status and JSON.
    pub fn post_form_json(
        &self,
        tenant: Option<&str>,
        path: &str,
        params: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let body: String = params
            .iter()
            .map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut builder = self
            .client
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(tenant) = tenant {
            builder = builder.header("X-Scope-OrgID", tenant);
        }
        let response = builder.send().expect("read request");
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        let json =
            serde_json::from_str(&text).unwrap_or_else(|_| serde_json::Value::String(text.clone()));
        (status, json)
    }

    /// The raw HTTP client, for requests the helpers do not cover.
    pub fn client(&self) -> &reqwest::blocking::Client {
        &self.client
    }

    /// A successful range query's `data.result`.
    pub fn query_range(
        &self,
        tenant: &str,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Vec<serde_json::Value> {
        let (status, json) = self.get_json(
            Some(tenant),
            "/prometheus/api/v1/query_range",
            &[
                ("query", query),
                ("start", &start.to_string()),
                ("end", &end.to_string()),
                ("step", &step.to_string()),
            ],
        );
        assert_eq!(status, 200, "query_range {query}: {json}");
        assert_eq!(json["status"], "success");
        json["data"]["result"].as_array().unwrap().clone()
    }

    /// A successful instant query's `data.result`.
    pub fn query(&self, tenant: &str, query: &str, time: f64) -> serde_json::Value {
        let (status, json) = self.get_json(
            Some(tenant),
            "/prometheus/api/v1/query",
            &[("query", query), ("time", &time.to_string())],
        );
        assert_eq!(status, 200, "query {query}: {json}");
        json["data"]["result"].clone()
    }

    /// GET `path` with query parameters; returns status and body text.
    pub fn get_text(&self, path: &str, params: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .query(params)
            .send()
            .expect("GET request");
        let status = response.status().as_u16();
        (status, response.text().unwrap_or_default())
    }

    pub fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    }
}

impl Drop for Cairn {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The value of `name=value` in a tracing log line.
fn field(line: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&prefix))
        .map(|v| v.trim_matches('"').to_string())
}

pub fn labels(pairs: &[(&str, &str)]) -> Vec<prompb::Label> {
    pairs
        .iter()
        .map(|(n, v)| prompb::Label::new(*n, *v))
        .collect()
}

/// One series with samples `(t_ms, v)`.
pub fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> prompb::TimeSeries {
    prompb::TimeSeries {
        labels: labels(pairs),
        samples: samples
            .iter()
            .map(|(t, v)| prompb::Sample {
                value: *v,
                timestamp: *t,
            })
            .collect(),
        ..Default::default()
    }
}

pub fn write_request(timeseries: Vec<prompb::TimeSeries>) -> prompb::WriteRequest {
    prompb::WriteRequest {
        timeseries,
        ..Default::default()
    }
}

/// Milliseconds since the epoch, rounded down to a whole minute so test
/// timestamps are easy to query.
pub fn now_minute_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now - now % 60_000
}

/// `[[t, "v"], ...]` of a matrix series as `(t_ms, v)`.
pub fn points(series: &serde_json::Value) -> Vec<(i64, f64)> {
    series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            let v: f64 = p[1].as_str().unwrap().parse().unwrap();
            (t, v)
        })
        .collect()
}

/// A cheap argon2id hash for users files: debug builds of argon2 take
/// seconds at the default cost, and the tests only check the plumbing.
pub fn cheap_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Argon2, Params, Version};
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(64, 1, 1, None).unwrap(),
    );
    let salt = SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap();
    argon
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

/// `application/x-www-form-urlencoded` escaping of one key or value.
pub fn form_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The Prometheus binary the tests run (Debian's package; `PROMETHEUS_BIN` overrides).
pub fn prometheus_binary() -> String {
    std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".into())
}

/// A free loopback port (bound and released; the caller binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Prometheus running as our child process on 127.0.0.1:`port`
/// with its own data directory under `dir`; stopped by its PID on drop.
pub struct ChildPrometheus(Child);

impl ChildPrometheus {
    /// Writes `config` to `dir/prometheus.yml` and starts Prometheus with it.
    pub fn start(dir: &Path, port: u16, config: &str) -> ChildPrometheus {
        let binary = prometheus_binary();
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {binary} (install Debian's prometheus package): {e}")
            });
        ChildPrometheus(child)
    }
}

impl Drop for ChildPrometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
