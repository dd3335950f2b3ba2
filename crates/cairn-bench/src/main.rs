//! `cairn-bench`: sends a generated remote-write workload to any remote-write
//! URL and measures what the server spent on it (`ingest`, the default when
//! no subcommand is given), times a PromQL range query over HTTP against
//! any Prometheus-compatible API (`query`), or runs Cairn, Prometheus and
//! VictoriaMetrics side by side (`compare`, see [`compare`]).
//!
//! `ingest`: the workload ([`workload`]) is node-exporter-like by default;
//! the `promql` workload is `x{job, instance}` counters (10 jobs,
//! `series / 10` instances), the data of the PromQL benchmark. One sample
//! per series per scrape, `scrapes` scrapes `interval` apart ending now (or
//! at `--end-ms`). Requests hold `batch` samples each and are all encoded
//! before the clock starts. Server CPU comes from `/proc/<pid>/stat`
//! (utime + stime), peak RSS from `/proc/<pid>/status` (VmHWM), so the load
//! generator's own CPU is not counted.
//!
//! `query`: one untimed warm-up request, then `runs` timed requests of the
//! same `query_range`; prints each run's wall time, the median and a digest
//! of the result (series, points, sum of values) so that two servers' answers
//! can be compared.

mod compare;
mod history;
mod procstat;
mod queries;
mod send;
mod targets;
mod workload;

use std::ffi::OsString;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(about = "Remote-write ingestion and PromQL query benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send a generated workload by remote write (the default: flags
    /// without a subcommand are `ingest`'s).
    Ingest(Args),
    /// Time a PromQL range query over HTTP.
    Query(QueryArgs),
    /// Write a workload's history as text exposition with timestamps to
    /// standard output (input for `cairn import`, `promtool tsdb
    /// create-blocks-from openmetrics` and VictoriaMetrics's
    /// `/api/v1/import/prometheus`).
    History(history::HistoryArgs),
    /// Cairn, Prometheus and VictoriaMetrics side by side: ingestion CPU,
    /// memory, disk and dashboard queries, with result checks.
    Compare(compare::CompareArgs),
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Remote-write URL, e.g. http://127.0.0.1:8080/api/v1/push.
    #[arg(long)]
    url: String,
    /// PID of the server process, for its CPU time and RSS.
    #[arg(long)]
    pid: u32,
    /// X-Scope-OrgID header value (omit for single-tenant targets); with
    /// --tenants N > 1, the prefix of `<tenant>-0` … `<tenant>-(N-1)`.
    #[arg(long)]
    tenant: Option<String>,
    /// Number of tenants the hosts are spread over.
    #[arg(long, default_value_t = 1)]
    tenants: usize,
    /// Basic-auth user (with --password).
    #[arg(long)]
    user: Option<String>,
    /// Basic-auth password.
    #[arg(long, default_value = "")]
    password: String,
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Samples per series.
    #[arg(long, default_value_t = 240)]
    scrapes: usize,
    /// Seconds between samples of a series.
    #[arg(long, default_value_t = 15)]
    interval: i64,
    /// Fraction of hosts replaced (new `instance`) at each churn event.
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Scrapes between churn events.
    #[arg(long, default_value_t = 60)]
    churn_every: usize,
    /// Samples per request.
    #[arg(long, default_value_t = 2_000)]
    batch: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Series names, labels and values.
    #[arg(long, value_enum, default_value_t = workload::Kind::Node)]
    workload: workload::Kind,
    /// Timestamp of the last sample in ms (default: one interval before now).
    #[arg(long)]
    end_ms: Option<i64>,
}

#[derive(clap::Args, Debug)]
struct QueryArgs {
    /// query_range URL, e.g. http://127.0.0.1:9090/api/v1/query_range.
    #[arg(long)]
    url: String,
    /// X-Scope-OrgID header value (omit for single-tenant targets).
    #[arg(long)]
    tenant: Option<String>,
    /// PromQL expression.
    #[arg(long)]
    query: String,
    /// Range start, in seconds since the epoch (decimals allowed).
    #[arg(long)]
    start: String,
    /// Range end, in seconds since the epoch (decimals allowed).
    #[arg(long)]
    end: String,
    /// Step, in seconds or as a duration (`15s`).
    #[arg(long)]
    step: String,
    /// Timed requests after one untimed warm-up.
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

fn main() {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    // Flags without a subcommand are `ingest`'s, as before `query` existed.
    let starts_with_flag = argv
        .get(1)
        .and_then(|arg| arg.to_str())
        .is_some_and(|arg| arg.starts_with("--") && !matches!(arg, "--help" | "--version"));
    if starts_with_flag {
        argv.insert(1, OsString::from("ingest"));
    }
    match Cli::parse_from(argv).command {
        Command::Ingest(args) => ingest(&args),
        Command::Query(args) => query(&args),
        Command::History(args) => history::run(&args),
        Command::Compare(args) => {
            if let Err(error) = compare::run(&args) {
                eprintln!("error: {error}");
                std::process::exit(1);
            }
        }
    }
}

fn ingest(args: &Args) {
    let interval_ms = args.interval * 1000;
    let end_ms = args.end_ms.unwrap_or_else(|| {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        now_ms - interval_ms
    });
    let spec = workload::Spec {
        kind: args.workload,
        series: args.series,
        scrapes: args.scrapes,
        interval_ms,
        end_ms,
        churn: args.churn,
        churn_every: args.churn_every,
        tenants: args.tenants.max(1),
        batch: args.batch,
    };
    eprintln!("samples from {} to {} (ms)", spec.first_ms(), spec.end_ms);
    let encoded = spec.encode();
    eprintln!(
        "{} requests, {} samples, {} series created, {:.1} MB compressed",
        encoded.bodies.len(),
        encoded.samples,
        encoded.series_created,
        encoded.bodies.iter().map(|b| b.bytes.len()).sum::<usize>() as f64 / 1e6
    );
    let tenant_names = match (&args.tenant, spec.tenants) {
        (None, _) => Vec::new(),
        (Some(tenant), 1) => vec![tenant.clone()],
        (Some(tenant), n) => (0..n).map(|t| format!("{tenant}-{t}")).collect(),
    };
    let target = send::Target {
        url: args.url.clone(),
        tenant_names,
        basic_auth: args.user.clone().map(|u| (u, args.password.clone())),
    };
    let cpu_before = procstat::cpu_seconds(args.pid);
    let report = send::send_all(&encoded.bodies, &target, args.concurrency);
    let cpu = procstat::cpu_seconds(args.pid) - cpu_before;
    let (rss, peak) = procstat::memory_bytes(args.pid);
    let total_samples = encoded.samples;
    let elapsed = report.wall_seconds;
    println!("samples            {total_samples}");
    println!("failed requests    {}", report.failed_requests);
    println!("wall seconds       {elapsed:.2}");
    println!("samples/s (wall)   {:.0}", total_samples as f64 / elapsed);
    println!("server cpu s       {cpu:.2}");
    println!(
        "server cpu s / 1M  {:.3}",
        cpu / (total_samples as f64 / 1e6)
    );
    println!("server rss MiB     {:.1}", rss as f64 / 1048576.0);
    println!("server peak MiB    {:.1}", peak as f64 / 1048576.0);
    println!(
        "peak bytes/series  {:.0}",
        peak as f64 / encoded.series_created as f64
    );
    if report.failed_requests > 0 {
        std::process::exit(1);
    }
}

fn query(args: &QueryArgs) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("http client");
    let send = || {
        let mut request = client.get(&args.url).query(&[
            ("query", args.query.as_str()),
            ("start", args.start.as_str()),
            ("end", args.end.as_str()),
            ("step", args.step.as_str()),
        ]);
        if let Some(tenant) = &args.tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        let started = Instant::now();
        let response = request.send().expect("query request");
        let status = response.status();
        let body = response.bytes().expect("query response body");
        let elapsed = started.elapsed();
        if !status.is_success() {
            eprintln!("{status}: {}", String::from_utf8_lossy(&body));
            std::process::exit(1);
        }
        (elapsed, body)
    };

    let (_, warm_up) = send();
    let digest = ResultDigest::of(&warm_up);
    let mut times_ms = Vec::with_capacity(args.runs);
    for run in 0..args.runs {
        let (elapsed, _) = send();
        let ms = elapsed.as_secs_f64() * 1e3;
        eprintln!("run {}: {ms:.1} ms", run + 1);
        times_ms.push(ms);
    }
    times_ms.sort_by(f64::total_cmp);
    println!(
        "result             {} series, {} points, sum {:.6e}",
        digest.series, digest.points, digest.sum
    );
    println!("runs               {}", times_ms.len());
    if let (Some(min), Some(max)) = (times_ms.first(), times_ms.last()) {
        println!("min ms             {min:.1}");
        println!("median ms          {:.1}", median(&times_ms));
        println!("max ms             {max:.1}");
    }
}

/// Median of sorted values (the mean of the middle two for an even count).
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if !n.is_multiple_of(2) {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// What a `query_range` answered, in brief: enough to see that two servers
/// returned the same series and (nearly) the same values.
struct ResultDigest {
    series: usize,
    points: usize,
    sum: f64,
}

impl ResultDigest {
    fn of(body: &[u8]) -> ResultDigest {
        let json: serde_json::Value = serde_json::from_slice(body).expect("query response JSON");
        assert_eq!(json["status"], "success", "query failed: {json}");
        let result = json["data"]["result"]
            .as_array()
            .expect("data.result array");
        let mut digest = ResultDigest {
            series: result.len(),
            points: 0,
            sum: 0.0,
        };
        for series in result {
            for point in series["values"].as_array().into_iter().flatten() {
                digest.points += 1;
                let value: f64 = point[1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                digest.sum += value;
            }
        }
        digest
    }
}
