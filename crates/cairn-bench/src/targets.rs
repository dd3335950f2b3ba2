//! The three servers a comparison runs: Cairn (a release binary given by
//! path), Prometheus (`--web.enable-remote-write-receiver`) and
//! VictoriaMetrics single-node, each a child process on 127.0.0.1 with its
//! own data directory, stopped by PID (SIGTERM, then SIGKILL after 60 s).
//!
//! Each target also knows how to flush what it holds to its long-term form,
//! so that bytes on disk per sample compare like with like:
//! - Cairn: `POST /ingester/flush?wait=true` (Mimir's endpoint) cuts the
//!   whole head into blocks; bytes are the `blocks/` directories (the WAL
//!   that remains is a checkpoint and is reported apart).
//! - Prometheus: `POST /api/v1/admin/tsdb/snapshot` (`--web.enable-admin-api`)
//!   writes the head as a block, exactly what its head compaction would
//!   write; bytes are that snapshot directory. Prometheus has no endpoint
//!   that compacts the head in place, and a restart only replays the WAL.
//! - VictoriaMetrics: `GET /internal/force_flush` turns its in-memory rows
//!   into file parts; bytes are `data/` and `indexdb/`, counted again after
//!   the graceful stop (which writes everything) and that figure used.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procstat;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    Cairn,
    Prometheus,
    VictoriaMetrics,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Cairn => "Cairn",
            Kind::Prometheus => "Prometheus",
            Kind::VictoriaMetrics => "VictoriaMetrics",
        }
    }
}

/// A running server, stopped when dropped.
pub struct Server {
    pub kind: Kind,
    pub pid: u32,
    pub port: u16,
    pub dir: PathBuf,
    pub version: String,
    child: Option<Child>,
}

/// What a forced flush left on disk.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Flushed {
    /// Bytes of the long-term form (see the module doc).
    pub bytes: u64,
    /// Every byte under the data directory after the flush.
    pub data_dir_bytes: u64,
    /// Server CPU-seconds the flush took.
    pub cpu_seconds: f64,
    /// VictoriaMetrics only: `data/` + `indexdb/` again after the graceful
    /// stop (everything written); the figure used per sample, as the bytes
    /// right after `force_flush` varied between runs (0.4–2.3 bytes/sample
    /// at 10k series) with merges still pending.
    pub bytes_after_stop: Option<u64>,
    pub how: &'static str,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free loopback port")
}

impl Server {
    /// Starts `kind` from `binary` on a fresh `dir` and waits until it is
    /// ready (at most 120 s).
    pub fn start(kind: Kind, binary: &Path, dir: &Path) -> Result<Server, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let data = dir.join("data");
        let mut command = Command::new(binary);
        match kind {
            Kind::Cairn => {
                // The default per-tenant ingestion rate (10,000 samples/s)
                // would refuse most of the workload with 429; Prometheus and
                // VictoriaMetrics have no such limit, so it is turned off.
                let config = dir.join("cairn.yml");
                std::fs::write(&config, "limits:\n  ingestion_rate: 0\n")
                    .map_err(|e| e.to_string())?;
                command
                    .arg("serve")
                    .arg("--config")
                    .arg(&config)
                    .arg("--http.listen-address")
                    .arg(&listen)
                    .arg("--storage.path")
                    .arg(&data)
                    .arg("--log.level")
                    .arg("warn");
            }
            Kind::Prometheus => {
                let config = dir.join("prometheus.yml");
                std::fs::write(&config, "global:\n  scrape_interval: 15s\n")
                    .map_err(|e| e.to_string())?;
                command
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", data.display()))
                    .arg(format!("--web.listen-address={listen}"))
                    .arg("--web.enable-remote-write-receiver")
                    .arg("--web.enable-admin-api")
                    // The high-cardinality count over every series at 1M
                    // series exceeds the default 50M-sample query limit.
                    .arg("--query.max-samples=1000000000")
                    .arg("--log.level=warn");
            }
            Kind::VictoriaMetrics => {
                command
                    .arg(format!("-storageDataPath={}", data.display()))
                    .arg(format!("-httpListenAddr={listen}"))
                    // Show samples as soon as they are written (default:
                    // hide the last 30 s) and look back 5 m for the last
                    // sample as Prometheus does; no rollup-result cache, so
                    // repeated dashboard queries are computed, not replayed.
                    .arg("-search.latencyOffset=0s")
                    .arg("-search.maxStalenessInterval=5m")
                    .arg("-search.disableCache")
                    .arg("-loggerLevel=WARN");
            }
        }
        let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        let mut server = Server {
            kind,
            pid: child.id(),
            port,
            dir: dir.to_path_buf(),
            version: String::new(),
            child: Some(child),
        };
        server.wait_ready()?;
        server.version = server.fetch_version(binary);
        Ok(server)
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let path = match self.kind {
            Kind::Cairn => "/ready",
            Kind::Prometheus => "/-/ready",
            Kind::VictoriaMetrics => "/health",
        };
        let client = client(Duration::from_secs(2));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(120) {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "{} exited at start ({status}); see {}",
                        self.kind.name(),
                        self.dir.join("server.log").display()
                    ));
                }
            }
            if client
                .get(format!("{}{path}", self.base()))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("{} not ready after 120 s", self.kind.name()))
    }

    fn fetch_version(&self, binary: &Path) -> String {
        match self.kind {
            Kind::Prometheus | Kind::Cairn => Command::new(binary)
                .arg("--version")
                .output()
                .ok()
                .map(|o| {
                    let text = String::from_utf8_lossy(&o.stdout).to_string()
                        + &String::from_utf8_lossy(&o.stderr);
                    text.lines().next().unwrap_or("").trim().to_string()
                })
                .unwrap_or_default(),
            Kind::VictoriaMetrics => client(Duration::from_secs(10))
                .get(format!("{}/metrics", self.base()))
                .send()
                .ok()
                .and_then(|r| r.text().ok())
                .and_then(|text| {
                    text.lines()
                        .find(|l| l.starts_with("vm_app_version{"))
                        .and_then(|l| l.split('"').nth(3).map(str::to_string))
                })
                .unwrap_or_default(),
        }
    }

    /// The remote-write URL.
    pub fn write_url(&self) -> String {
        match self.kind {
            Kind::Cairn => format!("{}/api/v1/push", self.base()),
            Kind::Prometheus | Kind::VictoriaMetrics => format!("{}/api/v1/write", self.base()),
        }
    }

    /// The Prometheus HTTP API prefix (`…/api/v1`).
    pub fn api_url(&self) -> String {
        match self.kind {
            Kind::Cairn => format!("{}/prometheus/api/v1", self.base()),
            Kind::Prometheus | Kind::VictoriaMetrics => format!("{}/api/v1", self.base()),
        }
    }

    /// Flushes to the long-term form and measures it (module doc).
    pub fn flush(&self) -> Result<Flushed, String> {
        let client = client(Duration::from_secs(1800));
        let cpu_before = procstat::cpu_seconds(self.pid);
        let data = self.dir.join("data");
        let (bytes, how) = match self.kind {
            Kind::Cairn => {
                let response = client
                    .post(format!("{}/ingester/flush?wait=true", self.base()))
                    .send()
                    .map_err(|e| e.to_string())?;
                check(response)?;
                procstat::wait_idle(self.pid, Duration::from_secs(30));
                (
                    sum_under_named(&data, "blocks"),
                    "POST /ingester/flush?wait=true: head cut into blocks; bytes of blocks/",
                )
            }
            Kind::Prometheus => {
                let response = client
                    .post(format!("{}/api/v1/admin/tsdb/snapshot", self.base()))
                    .send()
                    .map_err(|e| e.to_string())?;
                let body = check(response)?;
                let json: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| e.to_string())?;
                let name = json["data"]["name"]
                    .as_str()
                    .ok_or("snapshot answer without data.name")?;
                (
                    procstat::disk_bytes(&data.join("snapshots").join(name)),
                    "POST /api/v1/admin/tsdb/snapshot: head written as a block; bytes of the snapshot",
                )
            }
            Kind::VictoriaMetrics => {
                let response = client
                    .get(format!("{}/internal/force_flush", self.base()))
                    .send()
                    .map_err(|e| e.to_string())?;
                check(response)?;
                procstat::wait_idle(self.pid, Duration::from_secs(60));
                (
                    procstat::disk_bytes(&data.join("data"))
                        + procstat::disk_bytes(&data.join("indexdb")),
                    "GET /internal/force_flush, then idle: bytes of data/ and indexdb/",
                )
            }
        };
        let mut data_dir_bytes = procstat::disk_bytes(&data);
        if self.kind == Kind::Prometheus {
            data_dir_bytes -= bytes.min(data_dir_bytes);
        }
        Ok(Flushed {
            bytes,
            data_dir_bytes,
            cpu_seconds: procstat::cpu_seconds(self.pid) - cpu_before,
            bytes_after_stop: None,
            how,
        })
    }

    /// VictoriaMetrics's long-term bytes, counted once it has stopped.
    pub fn bytes_at_rest(&self) -> Option<u64> {
        let data = self.dir.join("data");
        (self.kind == Kind::VictoriaMetrics).then(|| {
            procstat::disk_bytes(&data.join("data")) + procstat::disk_bytes(&data.join("indexdb"))
        })
    }

    /// SIGTERM by PID, then SIGKILL if it has not exited after 60 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .build()
        .expect("http client")
}

fn check(response: reqwest::blocking::Response) -> Result<String, String> {
    let status = response.status();
    let body = response.text().unwrap_or_default();
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("{status}: {}", body.trim()))
    }
}

/// Bytes under every directory named `name` below `root`.
fn sum_under_named(root: &Path, name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            if e.file_name() == name {
                procstat::disk_bytes(&e.path())
            } else {
                sum_under_named(&e.path(), name)
            }
        })
        .sum()
}
