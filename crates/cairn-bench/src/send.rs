//! Sends encoded request bodies to a remote-write URL with a fixed number of
//! concurrent senders. Each sender owns the requests whose shard key maps to
//! it (as Prometheus's remote-write shards own series), so every series'
//! samples arrive in time order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::workload::Body;

/// Where and how to send.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    /// `X-Scope-OrgID` per body tenant index: `tenant_names[body.tenant]`;
    /// empty sends no header.
    pub tenant_names: Vec<String>,
    pub basic_auth: Option<(String, String)>,
}

pub struct SendReport {
    pub wall_seconds: f64,
    pub failed_requests: usize,
}

/// Sends every body; returns the wall time and the failures (the first few
/// are printed).
pub fn send_all(bodies: &[Body], target: &Target, concurrency: usize) -> SendReport {
    let concurrency = concurrency.max(1);
    let failures = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for shard in 0..concurrency {
            let failures = &failures;
            scope.spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .expect("http client");
                for (i, body) in bodies
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.index % concurrency == shard)
                {
                    let mut request = client
                        .post(&target.url)
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .body(body.bytes.clone());
                    if let Some(name) = target.tenant_names.get(body.tenant) {
                        request = request.header("X-Scope-OrgID", name);
                    }
                    if let Some((user, password)) = &target.basic_auth {
                        request = request.basic_auth(user, Some(password));
                    }
                    match request.send() {
                        Ok(response) if response.status().is_success() => {}
                        Ok(response) => {
                            let status = response.status();
                            let text = response.text().unwrap_or_default();
                            if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("request {i}: {status}: {}", text.trim());
                            }
                        }
                        Err(err) => {
                            if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("request {i}: {err}");
                            }
                        }
                    }
                }
            });
        }
    });
    SendReport {
        wall_seconds: started.elapsed().as_secs_f64(),
        failed_requests: failures.load(Ordering::Relaxed),
    }
}
