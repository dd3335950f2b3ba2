//! `cairn-bench history`: a workload's samples as text exposition with
//! timestamps, scrape by scrape, for backfill benchmarks (`cairn import`,
//! `promtool tsdb create-blocks-from openmetrics`, VictoriaMetrics's
//! `/api/v1/import/prometheus`). Its `node` series are the storage
//! benchmark's (`scripts/bench-storage.sh`), kept as they were measured.

use cairn_ingest::prompb::Label;
use clap::ValueEnum;

const METRICS_PER_HOST: usize = 100;
/// Jobs of the `promql` workload; series `s` has job `s % 10`, instance `s / 10`.
const PROMQL_JOBS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TextFormat {
    /// OpenMetrics: timestamps in seconds (3 decimals), `# EOF` at the end.
    Openmetrics,
    /// Prometheus text: timestamps in milliseconds.
    Prometheus,
}

#[derive(clap::Args, Debug)]
pub struct HistoryArgs {
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

/// Writes every scrape in time order, all series per scrape, as a dump of
/// scrapes would be.
pub fn run(args: &HistoryArgs) {
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
