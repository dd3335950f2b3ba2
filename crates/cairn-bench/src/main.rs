//! `cairn-bench`: sends a generated remote-write workload to any remote-write
//! URL and measures what the server spent on it (`ingest`, the default when
//! no subcommand is given), or times a PromQL range query over HTTP against
//! any Prometheus-compatible API (`query`).
//!
//! `ingest`: the default workload is node-exporter-like: `hosts × metrics`
//! series with a few labels, counters that grow and gauges that wander; the
//! `promql` workload is `x{job, instance}` counters (10 jobs, `series / 10`
//! instances), the data of the PromQL benchmark. One sample per series per
//! scrape, `scrapes` scrapes `interval` apart ending now (or at `--end-ms`).
//! Requests hold `batch` samples each and are all encoded before the clock
//! starts. Server CPU comes from `/proc/<pid>/stat` (utime + stime), peak RSS
//! from `/proc/<pid>/status` (VmHWM), so the load generator's own CPU is not
//! counted.
//!
//! `query`: one untimed warm-up request, then `runs` timed requests of the
//! same `query_range`; prints each run's wall time, the median and a digest
//! of the result (series, points, sum of values) so that two servers' answers
//! can be compared.

use std::ffi::OsString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_ingest::prompb::{Label, Sample, TimeSeries, WriteRequest};
use clap::{Parser, Subcommand, ValueEnum};

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
    History(HistoryArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TextFormat {
    /// OpenMetrics: timestamps in seconds (3 decimals), `# EOF` at the end.
    Openmetrics,
    /// Prometheus text: timestamps in milliseconds.
    Prometheus,
}

#[derive(clap::Args, Debug)]
struct HistoryArgs {
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Series names and labels: `node` (values from a seeded random walk
    /// like node exporter's: 2-decimal CPU seconds, byte counters, rare
    /// error counters, page-sized memory gauges, constant sizes, load
    /// averages) or `promql` (`x{job, instance}` counters).
    #[arg(long, value_enum, default_value_t = Workload::Node)]
    workload: Workload,
    /// First sample's timestamp, ms since the epoch.
    #[arg(long)]
    start_ms: i64,
    /// Samples are written while their timestamp is before this, ms.
    #[arg(long)]
    end_ms: i64,
    /// Seconds between samples of a series.
    #[arg(long, default_value_t = 15)]
    interval: i64,
    #[arg(long, value_enum, default_value_t = TextFormat::Openmetrics)]
    format: TextFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// node-exporter-like hosts: 100 metrics per host, counters and gauges.
    Node,
    /// `x{job, instance}` counters, 10 jobs: the PromQL benchmark's data.
    Promql,
}

#[derive(clap::Args, Debug)]
struct Args {
    /// Remote-write URL, e.g. http://127.0.0.1:8080/api/v1/push.
    #[arg(long)]
    url: String,
    /// PID of the server process, for its CPU time and RSS.
    #[arg(long)]
    pid: u32,
    /// X-Scope-OrgID header value (omit for single-tenant targets).
    #[arg(long)]
    tenant: Option<String>,
    /// Number of series.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Samples per series.
    #[arg(long, default_value_t = 240)]
    scrapes: usize,
    /// Seconds between samples of a series.
    #[arg(long, default_value_t = 15)]
    interval: i64,
    /// Samples per request.
    #[arg(long, default_value_t = 2_000)]
    batch: usize,
    /// Concurrent senders.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Series names, labels and values.
    #[arg(long, value_enum, default_value_t = Workload::Node)]
    workload: Workload,
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

const METRICS_PER_HOST: usize = 100;
/// Jobs of the `promql` workload; series `s` has job `s % 10`, instance `s / 10`.
const PROMQL_JOBS: usize = 10;

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
        Command::History(args) => history(&args),
    }
}

/// Writes every scrape in time order, all series per scrape, as a dump of
/// scrapes would be.
fn history(args: &HistoryArgs) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let prefixes: Vec<String> = (0..args.series)
        .map(|s| {
            let labels = match args.workload {
                Workload::Node => series_labels(s),
                Workload::Promql => promql_series_labels(s),
            };
            let mut text = labels[0].value.clone();
            text.push('{');
            for (i, label) in labels[1..].iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&format!("{}=\"{}\"", label.name, label.value));
            }
            text.push_str("} ");
            text
        })
        .collect();
    let mut state: Vec<f64> = (0..args.series)
        .map(|s| match s % METRICS_PER_HOST % 6 {
            1 => 8_000_000_000.0,
            3 => 500_107_862_016.0,
            _ => 0.0,
        })
        .collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let step = args.interval * 1000;
    let mut t = args.start_ms;
    let mut scrape = 0usize;
    let mut line = String::with_capacity(256);
    while t < args.end_ms {
        for (s, prefix) in prefixes.iter().enumerate() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let draw = (rng >> 16) as f64 / (1u64 << 48) as f64;
            let v = match args.workload {
                Workload::Promql => promql_counter_value(s, scrape),
                Workload::Node => {
                    let v = &mut state[s];
                    match s % METRICS_PER_HOST % 6 {
                        0 => *v = ((*v + 15.0 * draw) * 100.0).round() / 100.0,
                        2 => *v += (draw * 1_000_000.0).round(),
                        4 => *v += if draw < 0.01 { 1.0 } else { 0.0 },
                        1 => *v = 8_000_000_000.0 + ((draw - 0.5) * 256.0).round() * 4096.0,
                        3 => {}
                        _ => *v = (draw * 400.0).round() / 100.0,
                    }
                    *v
                }
            };
            line.clear();
            line.push_str(prefix);
            match args.format {
                TextFormat::Openmetrics => line.push_str(&format!(
                    "{v} {}.{:03}\n",
                    t.div_euclid(1000),
                    t.rem_euclid(1000)
                )),
                TextFormat::Prometheus => line.push_str(&format!("{v} {t}\n")),
            }
            out.write_all(line.as_bytes()).expect("write to stdout");
        }
        t += step;
        scrape += 1;
    }
    if args.format == TextFormat::Openmetrics {
        out.write_all(b"# EOF\n").expect("write to stdout");
    }
    out.flush().expect("write to stdout");
}

fn ingest(args: &Args) {
    let bodies = Arc::new(encode_workload(args));
    let total_samples = args.series * args.scrapes;
    eprintln!(
        "{} requests, {} samples, {:.1} MB compressed",
        bodies.len(),
        total_samples,
        bodies.iter().map(|(_, b)| b.len()).sum::<usize>() as f64 / 1e6
    );

    let cpu_before = process_cpu_seconds(args.pid);
    let started = Instant::now();
    let failures = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..args.concurrency)
        .map(|shard| {
            let bodies = Arc::clone(&bodies);
            let failures = Arc::clone(&failures);
            let url = args.url.clone();
            let tenant = args.tenant.clone();
            let concurrency = args.concurrency;
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .expect("http client");
                // As Prometheus's remote-write shards: each series belongs to
                // one sender, which sends its requests in time order.
                let mine = bodies
                    .iter()
                    .enumerate()
                    .filter(|(_, (batch_index, _))| batch_index % concurrency == shard);
                for (i, (_, body)) in mine {
                    let mut request = client
                        .post(&url)
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .body(body.clone());
                    if let Some(tenant) = &tenant {
                        request = request.header("X-Scope-OrgID", tenant);
                    }
                    match request.send() {
                        Ok(response) if response.status().is_success() => {}
                        Ok(response) => {
                            let status = response.status();
                            let text = response.text().unwrap_or_default();
                            if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("request {i}: {status}: {text}");
                            }
                        }
                        Err(err) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!("request {i}: {err}");
                        }
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().expect("sender thread");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds(args.pid) - cpu_before;
    let (rss_kb, peak_kb) = process_memory_kb(args.pid);
    let failed = failures.load(Ordering::Relaxed);
    println!("samples            {total_samples}");
    println!("failed requests    {failed}");
    println!("wall seconds       {elapsed:.2}");
    println!("samples/s (wall)   {:.0}", total_samples as f64 / elapsed);
    println!("server cpu s       {cpu:.2}");
    println!(
        "server cpu s / 1M  {:.3}",
        cpu / (total_samples as f64 / 1e6)
    );
    println!("server rss MiB     {:.1}", rss_kb as f64 / 1024.0);
    println!("server peak MiB    {:.1}", peak_kb as f64 / 1024.0);
    println!(
        "peak bytes/series  {:.0}",
        peak_kb as f64 * 1024.0 / args.series as f64
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

/// Every request body in time order, scrape by scrape, `batch` series at a
/// time, with the index of its series batch (the same series every scrape).
fn encode_workload(args: &Args) -> Vec<(usize, Vec<u8>)> {
    let interval_ms = args.interval * 1000;
    let last = args.end_ms.unwrap_or_else(|| {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        now_ms - interval_ms
    });
    let first = last - (args.scrapes as i64 - 1) * interval_ms;
    eprintln!("samples from {first} to {last} (ms)");
    let series_labels: Vec<Vec<Label>> = (0..args.series)
        .map(|s| match args.workload {
            Workload::Node => series_labels(s),
            Workload::Promql => promql_series_labels(s),
        })
        .collect();
    let mut bodies = Vec::new();
    for scrape in 0..args.scrapes {
        let t = first + scrape as i64 * interval_ms;
        for (batch_index, chunk_start) in (0..args.series).step_by(args.batch).enumerate() {
            let chunk_end = (chunk_start + args.batch).min(args.series);
            let timeseries = (chunk_start..chunk_end)
                .map(|s| TimeSeries {
                    labels: series_labels[s].clone(),
                    samples: vec![Sample {
                        value: match args.workload {
                            Workload::Node => sample_value(s, scrape),
                            Workload::Promql => promql_counter_value(s, scrape),
                        },
                        timestamp: t,
                    }],
                    ..Default::default()
                })
                .collect();
            let request = WriteRequest {
                timeseries,
                ..Default::default()
            };
            bodies.push((batch_index, cairn_ingest::encode_write_request(&request)));
        }
    }
    bodies
}

fn series_labels(s: usize) -> Vec<Label> {
    let host = s / METRICS_PER_HOST;
    let metric = s % METRICS_PER_HOST;
    let name = if metric.is_multiple_of(2) {
        format!("node_metric_{metric}_total")
    } else {
        format!("node_gauge_{metric}")
    };
    vec![
        Label::new("__name__", name),
        Label::new("cluster", format!("gpu-{}", host % 4)),
        Label::new(
            "instance",
            format!("10.0.{}.{}:9100", host / 250, host % 250),
        ),
        Label::new("job", "node"),
    ]
}

/// `x{instance="instance-I", job="job-J"}`, as the cairn-promql `query` bench.
fn promql_series_labels(s: usize) -> Vec<Label> {
    vec![
        Label::new("__name__", "x"),
        Label::new("instance", format!("instance-{}", s / PROMQL_JOBS)),
        Label::new("job", format!("job-{}", s % PROMQL_JOBS)),
    ]
}

/// The same formula as the cairn-promql `query` bench's counters.
fn promql_counter_value(s: usize, scrape: usize) -> f64 {
    (scrape * (s % 7 + 1)) as f64 * 3.0
}

/// Counters climb by varying steps; gauges wander.
fn sample_value(s: usize, scrape: usize) -> f64 {
    let metric = s % METRICS_PER_HOST;
    if metric.is_multiple_of(2) {
        (scrape * (s % 7 + 1)) as f64 * 3.0
    } else {
        ((s * 31 + scrape * 17) % 1000) as f64 / 10.0
    }
}

/// utime + stime of a process, in seconds.
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // USER_HZ is 100 on every Linux architecture Cairn targets.
    100.0
}

/// (VmRSS, VmHWM) in KiB.
fn process_memory_kb(pid: u32) -> (u64, u64) {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
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
