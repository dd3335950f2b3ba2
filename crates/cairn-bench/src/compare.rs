//! `cairn-bench compare`: Cairn, Prometheus and VictoriaMetrics side by side
//! on the same machine in the same run. For each run every target is started
//! on a fresh data directory, sent the same pre-encoded workload (one target
//! at a time, the order rotating between runs), flushed, and then asked the
//! dashboard queries, the targets taking turns query by query. The figures
//! of a run are taken from `/proc/<pid>` of each server, so the load
//! generator's CPU is not counted; the report gives the median over runs and
//! the ratios Cairn/VictoriaMetrics and Cairn/Prometheus.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::procstat;
use crate::queries::{self, Endpoint, Window, QUERIES};
use crate::send::{self, Target};
use crate::targets::{self, Kind, Server};
use crate::workload::{self, Spec};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Cairn release binary.
    #[arg(long, default_value = "target/release/cairn")]
    pub cairn: PathBuf,
    /// Prometheus binary (Debian's package: /usr/bin/prometheus).
    #[arg(long, default_value = "/usr/bin/prometheus")]
    pub prometheus: PathBuf,
    /// VictoriaMetrics single-node binary.
    #[arg(long, default_value = "/usr/bin/victoria-metrics")]
    pub victoria_metrics: PathBuf,
    /// Targets to run, comma-separated: cairn, prometheus, vm.
    #[arg(long, value_delimiter = ',', default_value = "cairn,prometheus,vm")]
    pub targets: Vec<String>,
    /// Active series.
    #[arg(long, default_value_t = 10_000)]
    pub series: usize,
    /// Samples per series.
    #[arg(long, default_value_t = 240)]
    pub scrapes: usize,
    /// Seconds between samples of a series.
    #[arg(long, default_value_t = 15)]
    pub interval: i64,
    /// Fraction of hosts replaced (new `instance`) at each churn event.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Scrapes between churn events.
    #[arg(long, default_value_t = 60)]
    pub churn_every: usize,
    /// Tenants (`tenant-0` …); queries are compared only with one tenant.
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// Samples (series) per request.
    #[arg(long, default_value_t = 2_000)]
    pub batch: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Whole runs (fresh servers each); the report gives medians.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Timed requests per query and target after the warm-ups.
    #[arg(long, default_value_t = 10)]
    pub query_runs: usize,
    /// Untimed requests per query and target before the timed ones; the
    /// first answer (timed or not) is the one compared.
    #[arg(long, default_value_t = 1)]
    pub query_warmups: usize,
    /// Seconds one query may run, on every target and in the client.
    #[arg(long, default_value_t = 600)]
    pub query_timeout: u64,
    /// Range-query step in seconds (a divisor of 60).
    #[arg(long, default_value_t = 30)]
    pub step: i64,
    /// Skip the queries (ingestion, memory and disk only).
    #[arg(long)]
    pub no_queries: bool,
    /// Directory for the servers' data (default: a new one under /tmp);
    /// each run's directories are deleted after it.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One target's figures in one run.
#[derive(Clone, Debug, Default, Serialize)]
struct RunFigures {
    samples_per_second: f64,
    ingest_cpu_seconds: f64,
    cpu_seconds_per_million_samples: f64,
    rss_before_bytes: u64,
    rss_final_bytes: u64,
    rss_peak_bytes: u64,
    rss_bytes_per_active_series: f64,
    failed_requests: usize,
    flush: targets::Flushed,
    bytes_per_sample: f64,
    /// Query name → (median ms, p99 ms).
    queries: BTreeMap<String, (f64, f64)>,
    /// Query name → the error of a query that failed on this target.
    failed_queries: BTreeMap<String, String>,
    /// VmRSS and VmHWM after the queries (a query's memory spike shows here).
    rss_after_queries_bytes: u64,
    rss_peak_after_queries_bytes: u64,
    /// Wall seconds of the send, of the wait for idle after it.
    ingest_wall_seconds: f64,
    idle_wait_seconds: f64,
}

pub fn run(args: &CompareArgs) -> Result<(), String> {
    let kinds: Vec<Kind> = args
        .targets
        .iter()
        .map(|t| match t.as_str() {
            "cairn" => Ok(Kind::Cairn),
            "prometheus" => Ok(Kind::Prometheus),
            "vm" | "victoriametrics" | "victoria-metrics" => Ok(Kind::VictoriaMetrics),
            other => Err(format!("unknown target {other:?} (cairn, prometheus, vm)")),
        })
        .collect::<Result<_, _>>()?;
    if 60 % args.step != 0 || args.step <= 0 {
        return Err("--step must divide 60".into());
    }
    let spec = spec(args);
    let window = window(&spec, args.step * 1000);
    // The bodies are all held in memory while the servers run: refuse a
    // workload whose bodies would take more than a quarter of the memory
    // available now, rather than push the servers into the OOM killer.
    let estimate = spec.estimate_encoded_bytes();
    let available = mem_available_bytes();
    eprintln!(
        "encoding {} series x {} samples ({} tenants, churn {}): about {:.0} MB of requests, {:.0} MB available",
        spec.series,
        spec.scrapes,
        spec.tenants,
        spec.churn,
        estimate as f64 / 1e6,
        available as f64 / 1e6
    );
    if available > 0 && estimate > available / 4 {
        return Err(format!(
            "the encoded requests (about {} MB) would take more than a quarter of the {} MB available; use fewer --scrapes or --series",
            estimate / 1_000_000,
            available / 1_000_000
        ));
    }
    let encode_started = std::time::Instant::now();
    let encoded = spec.encode();
    let body_bytes: usize = encoded.bodies.iter().map(|b| b.bytes.len()).sum();
    eprintln!(
        "{} requests, {} samples, {} series created, {:.1} MB compressed, encoded in {:.1} s",
        encoded.bodies.len(),
        encoded.samples,
        encoded.series_created,
        body_bytes as f64 / 1e6,
        encode_started.elapsed().as_secs_f64()
    );
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("cairn-bench-{}", std::process::id())),
    };
    let machine = machine();
    let mut per_target: BTreeMap<usize, Vec<RunFigures>> = BTreeMap::new();
    let mut versions: BTreeMap<usize, String> = BTreeMap::new();
    let mut checks = Vec::new();
    let tenant_names: Vec<String> = (0..spec.tenants)
        .map(|t| {
            if spec.tenants == 1 {
                "bench".to_string()
            } else {
                format!("tenant-{t}")
            }
        })
        .collect();

    let query_timeout = Duration::from_secs(args.query_timeout.max(1));
    let mut query_phase_seconds = Vec::new();
    for run in 0..args.runs {
        eprintln!("== run {} of {}", run + 1, args.runs);
        // Declared before the servers, so dropped after them: on an error
        // the servers are stopped first, then their directories deleted.
        let mut dirs = RunDirs::default();
        let mut servers = Vec::new();
        for (i, &kind) in kinds.iter().enumerate() {
            let binary = match kind {
                Kind::Cairn => &args.cairn,
                Kind::Prometheus => &args.prometheus,
                Kind::VictoriaMetrics => &args.victoria_metrics,
            };
            let dir = work_dir.join(format!("run{run}-{}", kind.name().to_lowercase()));
            let _ = std::fs::remove_dir_all(&dir);
            dirs.0.push(dir.clone());
            let server = Server::start(kind, binary, &dir, query_timeout)?;
            versions.insert(i, server.version.clone());
            servers.push(server);
        }
        let mut figures = vec![RunFigures::default(); servers.len()];
        // Ingest, one target at a time, rotating who goes first.
        for k in 0..servers.len() {
            let i = (k + run) % servers.len();
            let server = &servers[i];
            // Let the freshly started server settle before measuring.
            procstat::wait_idle(server.pid, Duration::from_secs(10));
            eprintln!(
                "{:<16} sending (load average {})",
                server.kind.name(),
                loadavg()
            );
            let (rss_before, _) = procstat::memory_bytes(server.pid);
            let cpu_before = procstat::cpu_seconds(server.pid);
            let report = send::send_all(
                &encoded.bodies,
                &Target {
                    url: server.write_url(),
                    tenant_names: tenant_names.clone(),
                    basic_auth: None,
                },
                args.concurrency,
            );
            // Background work the samples caused (buffers flushed, parts
            // merged) counts as ingestion, up to 30 s.
            let idle_wait = procstat::wait_idle(server.pid, Duration::from_secs(30));
            let cpu = procstat::cpu_seconds(server.pid) - cpu_before;
            let (rss_final, rss_peak) = procstat::memory_bytes(server.pid);
            let f = &mut figures[i];
            f.samples_per_second = encoded.samples as f64 / report.wall_seconds;
            f.ingest_cpu_seconds = cpu;
            f.cpu_seconds_per_million_samples = cpu / (encoded.samples as f64 / 1e6);
            f.rss_before_bytes = rss_before;
            f.rss_final_bytes = rss_final;
            f.rss_peak_bytes = rss_peak;
            f.rss_bytes_per_active_series = rss_final as f64 / encoded.series_created as f64;
            f.failed_requests = report.failed_requests;
            f.ingest_wall_seconds = report.wall_seconds;
            f.idle_wait_seconds = idle_wait;
            eprintln!(
                "{:<16} {:>8.0} samples/s  {:.3} CPU-s/1M  RSS {:.1} MiB  ({} failed requests)",
                server.kind.name(),
                f.samples_per_second,
                f.cpu_seconds_per_million_samples,
                rss_final as f64 / 1048576.0,
                report.failed_requests
            );
        }
        for (i, server) in servers.iter().enumerate() {
            let flushed = server.flush()?;
            figures[i].bytes_per_sample = flushed.bytes as f64 / encoded.samples as f64;
            eprintln!(
                "{:<16} flushed: {} bytes ({:.3} bytes/sample), {:.2} CPU-s, {:.1} s",
                server.kind.name(),
                flushed.bytes,
                figures[i].bytes_per_sample,
                flushed.cpu_seconds,
                flushed.wall_seconds
            );
            figures[i].flush = flushed;
        }
        if !args.no_queries && spec.tenants == 1 {
            let started = std::time::Instant::now();
            eprintln!("queries (load average {})", loadavg());
            let run_checks = time_queries(
                &servers,
                &mut figures,
                window,
                QueryRounds {
                    warmups: args.query_warmups,
                    timed: args.query_runs,
                    timeout: query_timeout,
                },
            )?;
            query_phase_seconds.push(started.elapsed().as_secs_f64());
            eprintln!(
                "queries took {:.0} s (load average {})",
                started.elapsed().as_secs_f64(),
                loadavg()
            );
            for (i, server) in servers.iter().enumerate() {
                let (rss, peak) = procstat::memory_bytes(server.pid);
                figures[i].rss_after_queries_bytes = rss;
                figures[i].rss_peak_after_queries_bytes = peak;
            }
            if run == 0 {
                checks = run_checks;
            }
        }
        for (i, mut server) in servers.into_iter().enumerate() {
            server.stop();
            if let Some(bytes) = server.bytes_at_rest() {
                figures[i].flush.bytes_after_stop = Some(bytes);
                figures[i].bytes_per_sample = bytes as f64 / encoded.samples as f64;
                eprintln!(
                    "{:<16} after stop: {} bytes ({:.3} bytes/sample)",
                    server.kind.name(),
                    bytes,
                    figures[i].bytes_per_sample
                );
            }
        }
        drop(dirs);
        for (i, f) in figures.into_iter().enumerate() {
            per_target.entry(i).or_default().push(f);
        }
    }
    let _ = std::fs::remove_dir(&work_dir);

    let medians: Vec<Medians> = (0..kinds.len())
        .map(|i| Medians::of(&per_target[&i]))
        .collect();
    print_table(&kinds, &versions, &medians, &checks, args);
    if let Some(path) = &args.json {
        let report = json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "machine": machine,
            "loadavg_at_end": loadavg(),
            "query_phase_seconds": query_phase_seconds,
            "workload": spec,
            "samples": encoded.samples,
            "series_created": encoded.series_created,
            "request_bytes": body_bytes,
            "window": window,
            "runs": args.runs,
            "query_runs": args.query_runs,
            "query_warmups": args.query_warmups,
            "targets": kinds.iter().enumerate().map(|(i, k)| json!({
                "name": k.name(),
                "version": versions.get(&i),
                "median": medians[i],
                "runs": per_target[&i],
            })).collect::<Vec<_>>(),
            "checks": checks,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn spec(args: &CompareArgs) -> Spec {
    let interval_ms = args.interval * 1000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    // The last sample 8 s before a whole minute, at least a minute ago (see
    // the queries module on window boundaries).
    let end_ms = now_ms.div_euclid(60_000) * 60_000 - 60_000 - 8_000;
    Spec {
        kind: workload::Kind::Node,
        series: args.series,
        scrapes: args.scrapes,
        interval_ms,
        end_ms,
        churn: args.churn,
        churn_every: args.churn_every,
        tenants: args.tenants.max(1),
        batch: args.batch,
    }
}

/// When the dashboard queries are evaluated: at the minute 8 s after the last
/// sample (see `spec`), and for range queries from the first whole minute
/// with a full 5 m window behind it; a workload shorter than that (a large
/// scale with few scrapes) starts at the first whole minute with at least a
/// minute of samples behind it, or at the end if there is none.
fn window(spec: &Spec, step_ms: i64) -> Window {
    let end_ms = spec.end_ms + 8_000;
    let minute_after = |ms: i64| ms.div_euclid(60_000) * 60_000 + 60_000;
    let full = minute_after(spec.first_ms() + 300_000);
    let start_ms = if full <= end_ms {
        full
    } else {
        minute_after(spec.first_ms() + 60_000).min(end_ms)
    };
    Window {
        start_ms,
        end_ms,
        step_ms,
    }
}

/// The data directories of one run, deleted (after printing the end of each
/// server's log, warnings and errors only) when dropped.
#[derive(Default)]
struct RunDirs(Vec<PathBuf>);

impl Drop for RunDirs {
    fn drop(&mut self) {
        for dir in &self.0 {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            if !lines.is_empty() {
                eprintln!(
                    "-- {} ({} lines; the last {}):",
                    dir.join("server.log").display(),
                    lines.len(),
                    lines.len().min(20)
                );
                for line in &lines[lines.len().saturating_sub(20)..] {
                    eprintln!("   {line}");
                }
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// MemAvailable from `/proc/meminfo`, bytes (0 if unknown).
fn mem_available_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The three load averages, as `/proc/loadavg` gives them.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many times each query is sent per target.
#[derive(Clone, Copy)]
struct QueryRounds {
    warmups: usize,
    timed: usize,
    timeout: Duration,
}

/// Warm-ups (the first answer is compared against Prometheus's), then
/// `timed` rounds of every query on every target in turn. Fills each
/// target's query figures.
fn time_queries(
    servers: &[Server],
    figures: &mut [RunFigures],
    window: Window,
    rounds: QueryRounds,
) -> Result<Vec<serde_json::Value>, String> {
    // The servers' own timeouts are `timeout`; the client waits a little
    // longer so that a server's timeout answer is read, not cut off.
    let client = targets::client(rounds.timeout + Duration::from_secs(30));
    let endpoints: Vec<Endpoint> = servers
        .iter()
        .map(|s| Endpoint {
            api_url: s.api_url(),
            tenant: (s.kind == Kind::Cairn).then(|| "bench".to_string()),
        })
        .collect();
    let reference = servers.iter().position(|s| s.kind == Kind::Prometheus);
    let mut checks = Vec::new();
    for query in QUERIES {
        let mut answers: Vec<Option<queries::Answer>> = vec![None; servers.len()];
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
        // A failed request (a timeout, a limit, a server that died) is
        // recorded and that target is not asked this query again; the other
        // targets and queries go on, so one failure at scale does not lose
        // the whole run.
        let mut failed: Vec<Option<String>> = vec![None; servers.len()];
        for round in 0..rounds.warmups + rounds.timed.max(1) {
            for (i, endpoint) in endpoints.iter().enumerate() {
                if failed[i].is_some() {
                    continue;
                }
                let answer =
                    queries::run(&client, endpoint, query, window).and_then(|(elapsed, body)| {
                        let parsed = match answers[i] {
                            None => Some(queries::parse(&body)?),
                            Some(_) => None,
                        };
                        Ok((elapsed, parsed))
                    });
                match answer {
                    Ok((elapsed, parsed)) => {
                        if parsed.is_some() {
                            answers[i] = parsed;
                        }
                        if round >= rounds.warmups {
                            times[i].push(elapsed.as_secs_f64() * 1e3);
                        }
                    }
                    Err(error) => {
                        eprintln!(
                            "QUERY FAILED {} on {}: {error}",
                            query.name,
                            servers[i].kind.name()
                        );
                        failed[i] = Some(error);
                    }
                }
            }
        }
        for (i, error) in failed.iter().enumerate() {
            if let Some(error) = error {
                figures[i]
                    .failed_queries
                    .insert(query.name.to_string(), error.clone());
            }
        }
        let answers: Vec<queries::Answer> =
            answers.into_iter().map(Option::unwrap_or_default).collect();
        for (i, mut t) in times.into_iter().enumerate() {
            if t.is_empty() {
                continue;
            }
            t.sort_by(f64::total_cmp);
            figures[i].queries.insert(
                query.name.to_string(),
                (queries::median(&t), queries::percentile(&t, 99.0)),
            );
        }
        if let Some(r) = reference {
            for (i, server) in servers.iter().enumerate() {
                if i == r || failed[r].is_some() || failed[i].is_some() {
                    continue;
                }
                let tolerance = match server.kind {
                    Kind::VictoriaMetrics => query.vm_tolerance,
                    _ => 1e-9,
                };
                let check = queries::compare(&answers[r], &answers[i], tolerance);
                if !check.matches {
                    eprintln!(
                        "MISMATCH {} on {}: {}",
                        server.kind.name(),
                        query.name,
                        check.example.clone().unwrap_or_default()
                    );
                }
                checks.push(json!({
                    "query": query.name,
                    "expr": query.expr,
                    "target": server.kind.name(),
                    "check": check,
                }));
            }
        }
    }
    Ok(checks)
}

/// Medians over runs of one target's figures.
#[derive(Debug, Serialize)]
struct Medians {
    samples_per_second: f64,
    cpu_seconds_per_million_samples: f64,
    rss_peak_bytes: f64,
    rss_final_bytes: f64,
    rss_bytes_per_active_series: f64,
    bytes_per_sample: f64,
    flushed_bytes: f64,
    flush_wall_seconds: f64,
    rss_peak_after_queries_bytes: f64,
    failed_requests: usize,
    /// Queries that failed in some run.
    failed_queries: Vec<String>,
    /// Query name → median over runs of (median ms, p99 ms).
    queries: BTreeMap<String, (f64, f64)>,
    query_median_sum_ms: f64,
}

impl Medians {
    fn of(runs: &[RunFigures]) -> Medians {
        let m = |f: &dyn Fn(&RunFigures) -> f64| {
            queries::median(&runs.iter().map(f).collect::<Vec<_>>())
        };
        let mut query_medians = BTreeMap::new();
        for query in QUERIES {
            let per_run: Vec<(f64, f64)> = runs
                .iter()
                .filter_map(|r| r.queries.get(query.name).copied())
                .collect();
            if per_run.is_empty() {
                continue;
            }
            let median = queries::median(&per_run.iter().map(|p| p.0).collect::<Vec<_>>());
            let p99 = queries::median(&per_run.iter().map(|p| p.1).collect::<Vec<_>>());
            query_medians.insert(query.name.to_string(), (median, p99));
        }
        Medians {
            samples_per_second: m(&|r| r.samples_per_second),
            cpu_seconds_per_million_samples: m(&|r| r.cpu_seconds_per_million_samples),
            rss_peak_bytes: m(&|r| r.rss_peak_bytes as f64),
            rss_final_bytes: m(&|r| r.rss_final_bytes as f64),
            rss_bytes_per_active_series: m(&|r| r.rss_bytes_per_active_series),
            bytes_per_sample: m(&|r| r.bytes_per_sample),
            flushed_bytes: m(&|r| r.flush.bytes as f64),
            flush_wall_seconds: m(&|r| r.flush.wall_seconds),
            rss_peak_after_queries_bytes: m(&|r| r.rss_peak_after_queries_bytes as f64),
            failed_requests: runs.iter().map(|r| r.failed_requests).sum(),
            failed_queries: runs
                .iter()
                .flat_map(|r| r.failed_queries.keys().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
            query_median_sum_ms: query_medians.values().map(|q| q.0).sum(),
            queries: query_medians,
        }
    }
}

fn print_table(
    kinds: &[Kind],
    versions: &BTreeMap<usize, String>,
    medians: &[Medians],
    checks: &[serde_json::Value],
    args: &CompareArgs,
) {
    let cairn = kinds.iter().position(|k| *k == Kind::Cairn);
    let vm = kinds.iter().position(|k| *k == Kind::VictoriaMetrics);
    let prom = kinds.iter().position(|k| *k == Kind::Prometheus);
    println!(
        "\n{} series x {} samples, {} s apart, churn {}, {} tenant(s); medians of {} runs{}",
        args.series,
        args.scrapes,
        args.interval,
        args.churn,
        args.tenants,
        args.runs,
        if args.no_queries {
            String::new()
        } else {
            format!(", queries: median of {} requests each", args.query_runs)
        }
    );
    for (i, k) in kinds.iter().enumerate() {
        println!("  {}: {}", k.name(), versions.get(&i).map_or("", |v| v));
    }
    print!("| {:<42} |", "metric");
    for k in kinds {
        print!(" {:>15} |", k.name());
    }
    if cairn.is_some() && vm.is_some() {
        print!(" {:>9} |", "Cairn/VM");
    }
    if cairn.is_some() && prom.is_some() {
        print!(" {:>10} |", "Cairn/Prom");
    }
    println!();
    print!("|{}|", "-".repeat(44));
    for _ in kinds {
        print!("{}|", "-".repeat(17));
    }
    if cairn.is_some() && vm.is_some() {
        print!("{}|", "-".repeat(11));
    }
    if cairn.is_some() && prom.is_some() {
        print!("{}|", "-".repeat(12));
    }
    println!();
    let row = |name: &str, value: &dyn Fn(&Medians) -> f64, decimals: usize| {
        print!("| {name:<42} |");
        for m in medians {
            print!(" {:>15.*} |", decimals, value(m));
        }
        let ratio = |other: usize| value(&medians[cairn.unwrap()]) / value(&medians[other]);
        if let (Some(_), Some(v)) = (cairn, vm) {
            print!(" {:>9.2} |", ratio(v));
        }
        if let (Some(_), Some(p)) = (cairn, prom) {
            print!(" {:>10.2} |", ratio(p));
        }
        println!();
    };
    row(
        "samples/s (wall, shared machine)",
        &|m| m.samples_per_second,
        0,
    );
    row(
        "server CPU-s per 1M samples",
        &|m| m.cpu_seconds_per_million_samples,
        3,
    );
    row("peak RSS MiB", &|m| m.rss_peak_bytes / 1048576.0, 1);
    row("final RSS MiB", &|m| m.rss_final_bytes / 1048576.0, 1);
    row(
        "RSS bytes per active series",
        &|m| m.rss_bytes_per_active_series,
        0,
    );
    row(
        "disk bytes per sample (flushed)",
        &|m| m.bytes_per_sample,
        3,
    );
    row("flush wall s", &|m| m.flush_wall_seconds, 1);
    if !args.no_queries && args.tenants == 1 {
        row(
            "peak RSS MiB after the queries",
            &|m| m.rss_peak_after_queries_bytes / 1048576.0,
            1,
        );
        for query in QUERIES {
            let label = format!("{} {} ms", if query.range { "R" } else { "I" }, query.name);
            row(
                &label,
                &|m| m.queries.get(query.name).map_or(f64::NAN, |q| q.0),
                1,
            );
        }
        row("sum of query medians ms", &|m| m.query_median_sum_ms, 1);
        row(
            "max of query p99s ms",
            &|m| m.queries.values().map(|q| q.1).fold(0.0, f64::max),
            1,
        );
    }
    let failed: usize = medians.iter().map(|m| m.failed_requests).sum();
    if failed > 0 {
        println!("WARNING: {failed} failed remote-write requests (see stderr)");
    }
    for (k, m) in kinds.iter().zip(medians) {
        if !m.failed_queries.is_empty() {
            println!(
                "WARNING: queries failed on {} (not timed, not compared; errors in the JSON): {}",
                k.name(),
                m.failed_queries.join(", ")
            );
        }
    }
    if !checks.is_empty() {
        let bad: Vec<&serde_json::Value> = checks
            .iter()
            .filter(|c| c["check"]["matches"] != true)
            .collect();
        println!(
            "\nresult checks against Prometheus: {} of {} match",
            checks.len() - bad.len(),
            checks.len()
        );
        for c in bad {
            println!(
                "  MISMATCH {} {}: missing {}, extra {}, timestamps {}, values {} (tolerance {}, max rel diff {:.3e}); e.g. {}",
                c["target"].as_str().unwrap_or(""),
                c["query"].as_str().unwrap_or(""),
                c["check"]["missing_series"],
                c["check"]["extra_series"],
                c["check"]["timestamp_mismatches"],
                c["check"]["values_outside_tolerance"],
                c["check"]["tolerance"],
                c["check"]["max_relative_difference"].as_f64().unwrap_or(f64::NAN),
                c["check"]["example"].as_str().unwrap_or("")
            );
        }
    }
    if let (Some(c), Some(v)) = (cairn, vm) {
        let (c, v) = (&medians[c], &medians[v]);
        let goal = |name: &str, ratio: f64, limit: f64| {
            println!(
                "  {name:<40} {ratio:>6.2}x VM (goal <= {limit}): {}",
                if ratio <= limit { "met" } else { "NOT met" }
            );
        };
        println!("\nissue targets (Cairn / VictoriaMetrics, same run):");
        goal(
            "ingestion CPU per sample",
            c.cpu_seconds_per_million_samples / v.cpu_seconds_per_million_samples,
            0.5,
        );
        goal(
            "RSS per active series",
            c.rss_bytes_per_active_series / v.rss_bytes_per_active_series,
            1.0,
        );
        goal(
            "disk bytes per sample",
            c.bytes_per_sample / v.bytes_per_sample,
            1.0,
        );
        if !c.queries.is_empty() {
            goal(
                "sum of query medians",
                c.query_median_sum_ms / v.query_median_sum_ms,
                0.5,
            );
            let slower: Vec<&String> = c
                .queries
                .iter()
                .filter(|(name, q)| v.queries.get(*name).is_some_and(|vq| q.0 > vq.0))
                .map(|(name, _)| name)
                .collect();
            println!(
                "  every query median <= VM's: {}",
                if slower.is_empty() {
                    "met".to_string()
                } else {
                    format!(
                        "NOT met ({} slower: {})",
                        slower.len(),
                        slower
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
    }
}

fn machine() -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim()
        .to_string();
    let mem_kb: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu_model": model,
        "memory_gib": mem_kb as f64 / 1048576.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg_at_start": read("/proc/loadavg").trim(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_of(scrapes: usize, interval_ms: i64) -> Spec {
        Spec {
            kind: workload::Kind::Node,
            series: 1_000,
            scrapes,
            interval_ms,
            // 8 s before a whole minute, as `spec` puts it.
            end_ms: 1_700_000_040_000 - 8_000,
            churn: 0.0,
            churn_every: 60,
            tenants: 1,
            batch: 500,
        }
    }

    #[test]
    fn window_of_an_hour_starts_with_a_full_rate_window() {
        let spec = spec_of(240, 15_000);
        let w = window(&spec, 30_000);
        assert_eq!(w.end_ms, spec.end_ms + 8_000);
        assert_eq!(w.start_ms % 60_000, 0);
        assert!(w.start_ms >= spec.first_ms() + 300_000);
        assert!(w.start_ms - (spec.first_ms() + 300_000) <= 60_000);
        assert!(w.start_ms < w.end_ms);
    }

    #[test]
    fn window_of_few_scrapes_is_not_inverted() {
        // 20 scrapes at 15 s: 285 s of samples, less than a 5 m window.
        let spec = spec_of(20, 15_000);
        let w = window(&spec, 30_000);
        assert!(w.start_ms < w.end_ms, "{w:?}");
        assert_eq!(w.start_ms % 60_000, 0);
        assert!(w.start_ms >= spec.first_ms() + 60_000);
        assert_eq!((w.end_ms - w.start_ms) % w.step_ms, 0);
    }

    #[test]
    fn window_of_one_scrape_is_the_end() {
        let spec = spec_of(1, 15_000);
        let w = window(&spec, 30_000);
        assert_eq!(w.start_ms, w.end_ms);
    }

    #[test]
    fn run_dirs_are_deleted_when_dropped() {
        let root = std::env::temp_dir().join(format!("cairn-bench-test-{}", std::process::id()));
        let dirs = RunDirs(vec![root.join("a"), root.join("b")]);
        for dir in &dirs.0 {
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("server.log"), "level=warn msg=test\n").unwrap();
        }
        drop(dirs);
        assert!(!root.join("a").exists());
        assert!(!root.join("b").exists());
        std::fs::remove_dir(&root).unwrap();
    }

    #[test]
    fn cairn_config_turns_the_write_limits_off() {
        #[derive(serde::Deserialize)]
        struct Partial {
            limits: cairn_server::limits::Limits,
            querier: serde_yaml::Value,
        }
        let text = targets::cairn_config(900);
        let parsed: Partial = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed.limits.ingestion_rate, 0.0);
        assert_eq!(parsed.limits.max_global_series_per_user, 0);
        assert_eq!(parsed.limits.max_global_series_per_metric, 0);
        parsed.limits.validate().unwrap();
        assert_eq!(parsed.querier["timeout"].as_str(), Some("900s"));
        assert_eq!(parsed.querier["max_samples"].as_u64(), Some(1_000_000_000));
    }
}
