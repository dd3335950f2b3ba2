//! The generated remote-write workload and its encoding into request bodies.
//!
//! `node`: node-exporter-like hosts, 100 series each
//! (counters such as `node_cpu_seconds_total{cpu, mode}` that reset when the
//! host restarts, gauges such as `node_load1` and memory sizes, and a classic
//! histogram `http_request_duration_seconds` with `le` buckets, `_sum` and
//! `_count`). Every value is a closed-form function of (series, scrape), so
//! scrapes can be encoded in parallel and a query's expected answer does not
//! depend on the order requests arrived in. Counters are monotone between
//! resets; bucket counts are monotone in `le`.
//!
//! Churn: every `churn_every` scrapes a fraction `churn` of the host slots
//! gets a new host (a new `instance` label, counters from zero), as pods that
//! are rescheduled. Tenants: host slot `h` belongs to tenant `h % tenants`.
//!
//! `promql`: `x{job, instance}` counters (10 jobs, `series / 10` instances),
//! the data of the cairn-promql criterion benchmark.
//!
//! Requests hold one sample per series (as a scraping Prometheus sends), at
//! most `batch` series, of one tenant; a series is always in the request of
//! the same index within its scrape, so a sender that owns that index sends
//! the series' samples in time order.

use cairn_ingest::prompb::{Label, Sample, TimeSeries, WriteRequest};

/// Series names, labels and values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// node-exporter-like hosts: counters with resets, gauges, histograms.
    Node,
    /// `x{job, instance}` counters, 10 jobs: the PromQL benchmark's data.
    Promql,
}

/// What to generate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Spec {
    pub kind: Kind,
    /// Active series (the last scrape writes exactly this many).
    pub series: usize,
    /// Samples per series slot.
    pub scrapes: usize,
    /// Milliseconds between scrapes.
    pub interval_ms: i64,
    /// Timestamp of the last scrape, ms.
    pub end_ms: i64,
    /// Fraction of host slots replaced at each churn event (0 = none).
    pub churn: f64,
    /// Scrapes between churn events.
    pub churn_every: usize,
    /// Number of tenants (`tenant-0` …); 1 sends every series to one tenant.
    pub tenants: usize,
    /// Series per request at most.
    pub batch: usize,
}

/// One encoded request: its index within a scrape (the sender shard key),
/// its tenant and its snappy-compressed protobuf body.
pub struct Body {
    pub index: usize,
    pub tenant: usize,
    pub bytes: Vec<u8>,
}

/// The workload, encoded.
pub struct Encoded {
    /// Scrape-major: every request of scrape 0, then scrape 1, …
    pub bodies: Vec<Body>,
    pub samples: u64,
    /// Distinct series written over the whole run (active + churned away).
    pub series_created: u64,
}

impl Spec {
    pub fn first_ms(&self) -> i64 {
        self.end_ms - (self.scrapes as i64 - 1) * self.interval_ms
    }

    fn per_host(&self) -> usize {
        match self.kind {
            Kind::Node => host_templates().len(),
            Kind::Promql => 1,
        }
    }

    /// Host slots; the last may be partial.
    pub fn hosts(&self) -> usize {
        self.series.div_ceil(self.per_host())
    }

    /// How many times slot `host` was replaced by scrape `scrape`: churn
    /// events happen at scrapes `churn_every, 2·churn_every, …`, and each
    /// picks its slots by a hash, independently.
    fn generation(&self, host: usize, scrape: usize) -> u64 {
        if self.churn <= 0.0 || self.churn_every == 0 {
            return 0;
        }
        let events = scrape / self.churn_every;
        (1..=events)
            .filter(|&event| unit(mix(host as u64, event as u64, 0xC0FFEE)) < self.churn)
            .count() as u64
    }

    /// The scrape at which slot `host`'s current host started (churn) or
    /// last restarted (a counter reset), whichever is later.
    fn counter_origin(&self, host: usize, scrape: usize, generation_start: usize) -> usize {
        // Each host restarts once every RESTART_PERIOD scrapes, at its own phase.
        let phase = (mix(host as u64, 7, 0xBEEF) % RESTART_PERIOD as u64) as usize;
        let restart = if scrape >= phase {
            scrape - (scrape - phase) % RESTART_PERIOD
        } else {
            0
        };
        restart.max(generation_start)
    }

    fn generation_start(&self, host: usize, scrape: usize) -> usize {
        if self.churn <= 0.0 || self.churn_every == 0 {
            return 0;
        }
        let events = scrape / self.churn_every;
        (1..=events)
            .rev()
            .find(|&event| unit(mix(host as u64, event as u64, 0xC0FFEE)) < self.churn)
            .map_or(0, |event| event * self.churn_every)
    }

    /// Encodes every request, scrape by scrape, using all cores.
    pub fn encode(&self) -> Encoded {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let scrapes: Vec<usize> = (0..self.scrapes).collect();
        let per_thread = scrapes.len().div_ceil(threads).max(1);
        let mut parts: Vec<Vec<Body>> = Vec::new();
        std::thread::scope(|scope| {
            let handles: Vec<_> = scrapes
                .chunks(per_thread)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .flat_map(|&scrape| self.encode_scrape(scrape))
                            .collect::<Vec<Body>>()
                    })
                })
                .collect();
            for handle in handles {
                parts.push(handle.join().expect("encoder thread"));
            }
        });
        let bodies: Vec<Body> = parts.into_iter().flatten().collect();
        let churned: u64 = (0..self.hosts())
            .map(|h| {
                self.generation(h, self.scrapes.saturating_sub(1)) * self.slot_series(h) as u64
            })
            .sum();
        Encoded {
            bodies,
            samples: (self.series * self.scrapes) as u64,
            series_created: self.series as u64 + churned,
        }
    }

    /// About how many bytes [`Spec::encode`] will produce: the first and the
    /// last scrape encoded, their mean times the scrapes (every scrape holds
    /// the same series count; only label and value digits vary).
    pub fn estimate_encoded_bytes(&self) -> u64 {
        if self.scrapes == 0 {
            return 0;
        }
        let size = |scrape: usize| -> u64 {
            self.encode_scrape(scrape)
                .iter()
                .map(|b| b.bytes.len() as u64)
                .sum()
        };
        (size(0) + size(self.scrapes - 1)) * self.scrapes as u64 / 2
    }

    /// Series in host slot `h` (the last slot may hold fewer).
    fn slot_series(&self, h: usize) -> usize {
        let per_host = self.per_host();
        (self.series - h * per_host).min(per_host)
    }

    fn encode_scrape(&self, scrape: usize) -> Vec<Body> {
        let t = self.first_ms() + scrape as i64 * self.interval_ms;
        let mut bodies = Vec::new();
        for tenant in 0..self.tenants.max(1) {
            let mut timeseries: Vec<TimeSeries> = Vec::with_capacity(self.batch);
            let mut index = 0;
            let hosts = (tenant..self.hosts()).step_by(self.tenants.max(1));
            for h in hosts {
                for m in 0..self.slot_series(h) {
                    timeseries.push(TimeSeries {
                        labels: self.labels(h, m, scrape),
                        samples: vec![Sample {
                            value: self.value(h, m, scrape),
                            timestamp: t,
                        }],
                        ..Default::default()
                    });
                    if timeseries.len() == self.batch {
                        bodies.push(self.body(index, tenant, std::mem::take(&mut timeseries)));
                        index += 1;
                    }
                }
            }
            if !timeseries.is_empty() {
                bodies.push(self.body(index, tenant, timeseries));
            }
        }
        bodies
    }

    fn body(&self, index: usize, tenant: usize, timeseries: Vec<TimeSeries>) -> Body {
        let request = WriteRequest {
            timeseries,
            ..Default::default()
        };
        Body {
            // Shard key: requests of different tenants never share a sender
            // slot with each other's series, so keys are (tenant, index).
            index: index * self.tenants.max(1) + tenant,
            tenant,
            bytes: cairn_ingest::encode_write_request(&request),
        }
    }

    /// The labels of series `m` of host slot `h` at `scrape`, sorted by name.
    pub fn labels(&self, h: usize, m: usize, scrape: usize) -> Vec<Label> {
        match self.kind {
            Kind::Promql => {
                let s = h;
                vec![
                    Label::new("__name__", "x"),
                    Label::new("instance", format!("instance-{}", s / PROMQL_JOBS)),
                    Label::new("job", format!("job-{}", s % PROMQL_JOBS)),
                ]
            }
            Kind::Node => {
                let host = h as u64 + self.generation(h, scrape) * self.hosts() as u64;
                let template = &host_templates()[m];
                let mut labels = Vec::with_capacity(template.labels.len() + 4);
                labels.push(Label::new("__name__", template.name));
                labels.push(Label::new("instance", instance(host)));
                labels.push(Label::new("job", "node"));
                labels.push(Label::new("region", REGIONS[h % REGIONS.len()]));
                for (name, value) in template.labels {
                    labels.push(Label::new(*name, *value));
                }
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                labels
            }
        }
    }

    /// The value of series `m` of host slot `h` at `scrape`.
    pub fn value(&self, h: usize, m: usize, scrape: usize) -> f64 {
        if self.kind == Kind::Promql {
            return (scrape * (h % 7 + 1)) as f64 * 3.0;
        }
        let template = &host_templates()[m];
        let series_seed = mix(h as u64, m as u64, 1);
        let u = unit(mix(series_seed, scrape as u64, 2));
        let start = self.generation_start(h, scrape);
        let steps = (scrape - self.counter_origin(h, scrape, start)) as f64;
        let interval_s = self.interval_ms as f64 / 1000.0;
        match template.kind {
            // Monotone between resets: steps + 0.5u < steps + 1.
            Metric::Counter(per_second) => {
                let rate = per_second * (0.5 + unit(series_seed));
                ((steps + 0.5 * u) * rate * interval_s * 1000.0).round() / 1000.0
            }
            Metric::Gauge(scale) => {
                let base = unit(series_seed);
                let wave = (scrape as f64 / 40.0 + base * 6.0).sin() * 0.1;
                ((base * 0.8 + 0.1 + wave + 0.02 * u) * scale * 100.0).round() / 100.0
            }
            Metric::Constant(scale) => (unit(series_seed) * 0.5 + 0.5) * scale,
            Metric::Bucket(le) => bucket_count(requests(steps, u), le),
            Metric::HistogramCount => requests(steps, u),
            Metric::HistogramSum => (requests(steps, u) * 0.137 * 1000.0).round() / 1000.0,
        }
    }
}

/// Requests seen by a host's histogram after `steps` scrapes: 40 a scrape
/// plus a jitter below one step's worth, so it is monotone.
fn requests(steps: f64, u: f64) -> f64 {
    steps * 40.0 + (u * 30.0).floor()
}

/// Cumulative count at or below `le` (seconds): a fixed latency distribution.
fn bucket_count(requests: f64, le: f64) -> f64 {
    let cdf = LATENCY_CDF
        .iter()
        .find(|(bound, _)| *bound >= le)
        .map_or(1.0, |(_, p)| *p);
    (requests * cdf).floor()
}

const LATENCY_CDF: &[(f64, f64)] = &[
    (0.005, 0.02),
    (0.01, 0.06),
    (0.025, 0.15),
    (0.05, 0.31),
    (0.1, 0.52),
    (0.25, 0.74),
    (0.5, 0.88),
    (1.0, 0.95),
    (2.5, 0.985),
    (5.0, 0.996),
    (10.0, 0.999),
    (f64::INFINITY, 1.0),
];

/// Jobs of the `promql` workload; series `s` has job `s % 10`, instance `s / 10`.
const PROMQL_JOBS: usize = 10;
/// Scrapes between a host's restarts (counter resets): 3 h at 15 s.
const RESTART_PERIOD: usize = 720;
pub const REGIONS: &[&str] = &["eu-west", "eu-north", "us-east", "ap-south"];

fn instance(host: u64) -> String {
    format!(
        "10.{}.{}.{}:9100",
        (host >> 16) & 0xff,
        (host >> 8) & 0xff,
        host & 0xff
    )
}

#[derive(Clone, Copy)]
enum Metric {
    /// Counter climbing at about this many units per second.
    Counter(f64),
    /// Gauge wandering within `0..scale`.
    Gauge(f64),
    /// Gauge that never changes (machine sizes).
    Constant(f64),
    /// A classic histogram bucket with this upper bound.
    Bucket(f64),
    HistogramCount,
    HistogramSum,
}

struct Template {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    kind: Metric,
}

macro_rules! t {
    ($name:literal, [$($l:literal = $v:literal),*], $kind:expr) => {
        Template { name: $name, labels: &[$(($l, $v)),*], kind: $kind }
    };
}

macro_rules! cpu {
    ($cpu:literal) => {
        [
            t!(
                "node_cpu_seconds_total",
                ["cpu" = $cpu, "mode" = "idle"],
                Metric::Counter(0.7)
            ),
            t!(
                "node_cpu_seconds_total",
                ["cpu" = $cpu, "mode" = "user"],
                Metric::Counter(0.2)
            ),
            t!(
                "node_cpu_seconds_total",
                ["cpu" = $cpu, "mode" = "system"],
                Metric::Counter(0.06)
            ),
            t!(
                "node_cpu_seconds_total",
                ["cpu" = $cpu, "mode" = "iowait"],
                Metric::Counter(0.02)
            ),
            t!(
                "node_cpu_seconds_total",
                ["cpu" = $cpu, "mode" = "irq"],
                Metric::Counter(0.005)
            ),
            t!(
                "node_cpu_seconds_total",
                ["cpu" = $cpu, "mode" = "softirq"],
                Metric::Counter(0.01)
            ),
            t!(
                "node_cpu_seconds_total",
                ["cpu" = $cpu, "mode" = "steal"],
                Metric::Counter(0.001)
            ),
            t!(
                "node_cpu_seconds_total",
                ["cpu" = $cpu, "mode" = "nice"],
                Metric::Counter(0.004)
            ),
        ]
    };
}

macro_rules! histogram {
    ($handler:literal) => {
        [
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "0.005"],
                Metric::Bucket(0.005)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "0.01"],
                Metric::Bucket(0.01)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "0.025"],
                Metric::Bucket(0.025)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "0.05"],
                Metric::Bucket(0.05)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "0.1"],
                Metric::Bucket(0.1)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "0.25"],
                Metric::Bucket(0.25)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "0.5"],
                Metric::Bucket(0.5)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "1"],
                Metric::Bucket(1.0)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "2.5"],
                Metric::Bucket(2.5)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "5"],
                Metric::Bucket(5.0)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "10"],
                Metric::Bucket(10.0)
            ),
            t!(
                "http_request_duration_seconds_bucket",
                ["handler" = $handler, "le" = "+Inf"],
                Metric::Bucket(f64::INFINITY)
            ),
            t!(
                "http_request_duration_seconds_count",
                ["handler" = $handler],
                Metric::HistogramCount
            ),
            t!(
                "http_request_duration_seconds_sum",
                ["handler" = $handler],
                Metric::HistogramSum
            ),
        ]
    };
}

/// Every series of one host, built once.
fn host_templates() -> &'static [Template] {
    static TEMPLATES: std::sync::OnceLock<Vec<Template>> = std::sync::OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut all = Vec::new();
        all.extend(cpu!("0"));
        all.extend(cpu!("1"));
        all.extend(cpu!("2"));
        all.extend(cpu!("3"));
        all.extend(histogram!("/api/v1/query"));
        all.extend(histogram!("/api/v1/push"));
        for device in ["eth0", "eth1", "lo"] {
            all.push(Template {
                name: "node_network_receive_bytes_total",
                labels: leak(&[("device", device)]),
                kind: Metric::Counter(120_000.0),
            });
            all.push(Template {
                name: "node_network_transmit_bytes_total",
                labels: leak(&[("device", device)]),
                kind: Metric::Counter(80_000.0),
            });
            all.push(Template {
                name: "node_network_receive_packets_total",
                labels: leak(&[("device", device)]),
                kind: Metric::Counter(900.0),
            });
            all.push(Template {
                name: "node_network_transmit_packets_total",
                labels: leak(&[("device", device)]),
                kind: Metric::Counter(700.0),
            });
        }
        for device in ["nvme0n1", "sda"] {
            all.push(Template {
                name: "node_disk_read_bytes_total",
                labels: leak(&[("device", device)]),
                kind: Metric::Counter(500_000.0),
            });
            all.push(Template {
                name: "node_disk_written_bytes_total",
                labels: leak(&[("device", device)]),
                kind: Metric::Counter(300_000.0),
            });
            all.push(Template {
                name: "node_disk_io_time_seconds_total",
                labels: leak(&[("device", device)]),
                kind: Metric::Counter(0.05),
            });
        }
        for mountpoint in ["/", "/home", "/var"] {
            all.push(Template {
                name: "node_filesystem_avail_bytes",
                labels: leak(&[
                    ("device", "/dev/nvme0n1p2"),
                    ("fstype", "ext4"),
                    ("mountpoint", mountpoint),
                ]),
                kind: Metric::Gauge(5e11),
            });
            all.push(Template {
                name: "node_filesystem_size_bytes",
                labels: leak(&[
                    ("device", "/dev/nvme0n1p2"),
                    ("fstype", "ext4"),
                    ("mountpoint", mountpoint),
                ]),
                kind: Metric::Constant(1e12),
            });
        }
        for (name, kind) in [
            ("node_load1", Metric::Gauge(4.0)),
            ("node_load5", Metric::Gauge(4.0)),
            ("node_load15", Metric::Gauge(4.0)),
            ("node_memory_MemAvailable_bytes", Metric::Gauge(3.2e10)),
            ("node_memory_MemFree_bytes", Metric::Gauge(1.6e10)),
            ("node_memory_Cached_bytes", Metric::Gauge(8e9)),
            ("node_memory_MemTotal_bytes", Metric::Constant(6.4e10)),
            ("node_procs_running", Metric::Gauge(20.0)),
            ("node_procs_blocked", Metric::Gauge(3.0)),
            ("node_filefd_allocated", Metric::Gauge(20_000.0)),
            ("node_sockstat_TCP_inuse", Metric::Gauge(500.0)),
            ("node_context_switches_total", Metric::Counter(12_000.0)),
            ("node_intr_total", Metric::Counter(9_000.0)),
            ("node_forks_total", Metric::Counter(15.0)),
            ("node_boot_time_seconds", Metric::Constant(1.7e9)),
            ("node_entropy_available_bits", Metric::Gauge(4096.0)),
        ] {
            all.push(Template {
                name,
                labels: &[],
                kind,
            });
        }
        all
    })
}

fn leak(labels: &[(&'static str, &'static str)]) -> &'static [(&'static str, &'static str)] {
    Box::leak(labels.to_vec().into_boxed_slice())
}

/// A 64-bit hash of three words (splitmix64's finaliser over a mix).
fn mix(a: u64, b: u64, c: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(c.wrapping_mul(0x1656_67B1_9E37_79F9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash mapped to `[0, 1)`.
fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_is_close_to_the_encoded_size() {
        for churn in [0.0, 0.2] {
            let spec = Spec {
                kind: Kind::Node,
                series: 2_000,
                scrapes: 30,
                interval_ms: 15_000,
                end_ms: 1_700_000_032_000,
                churn,
                churn_every: 10,
                tenants: 2,
                batch: 500,
            };
            let actual: u64 = spec
                .encode()
                .bodies
                .iter()
                .map(|b| b.bytes.len() as u64)
                .sum();
            let estimate = spec.estimate_encoded_bytes();
            let error = (estimate as f64 - actual as f64).abs() / actual as f64;
            assert!(
                error < 0.05,
                "churn {churn}: estimate {estimate}, actual {actual}"
            );
        }
    }
}
