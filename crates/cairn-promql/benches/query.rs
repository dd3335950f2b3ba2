//! `sum by (job) (rate(x[5m]))` over 10,000 counters × 1 h at 15 s
//! (240 samples each, 2.4 M samples) held in a real `Tsdb` (head + WAL in a
//! temp dir): the range query over that hour at 15 s steps (240 steps), and
//! the instant query at its end. The same data and query are timed over HTTP
//! against Prometheus by `scripts/bench-query.sh`; figures in BENCHMARKS.md.
//!
//! Run: `cargo bench -p cairn-promql --bench query`

use std::time::Duration;

use cairn_model::{Labels, Sample, SeriesSamples};
use cairn_promql::{Engine, EngineOptions, QueryOptions, Value};
use cairn_tsdb::{Tsdb, TsdbOptions};
use criterion::{criterion_group, criterion_main, Criterion};

const JOBS: usize = 10;
const INSTANCES: usize = 1_000;
const SCRAPES: i64 = 240;
const INTERVAL_MS: i64 = 15_000;
/// First sample, an arbitrary fixed time (2023-11-14T22:13:20Z).
const START_MS: i64 = 1_700_000_000_000;
const END_MS: i64 = START_MS + (SCRAPES - 1) * INTERVAL_MS;
const QUERY: &str = "sum by (job) (rate(x[5m]))";

/// Series `x{job="job-J", instance="instance-I"}`, 10 jobs × 1,000
/// instances: counters that climb by a per-series step (as
/// `cairn-bench ingest --workload promql` sends them over remote write).
fn load(tsdb: &Tsdb) {
    let labels: Vec<Labels> = (0..JOBS * INSTANCES)
        .map(|s| {
            let job = format!("job-{}", s % JOBS);
            let instance = format!("instance-{}", s / JOBS);
            Labels::from_pairs(&[("__name__", "x"), ("instance", &instance), ("job", &job)])
        })
        .collect();
    // One append per scrape, every series once, in time order (as a
    // scraping Prometheus would write them).
    for scrape in 0..SCRAPES {
        let t = START_MS + scrape * INTERVAL_MS;
        let batch = labels
            .iter()
            .enumerate()
            .map(|(s, series_labels)| SeriesSamples {
                labels: series_labels.clone(),
                samples: vec![Sample::new(t, counter_value(s, scrape))],
                exemplars: Vec::new(),
            })
            .collect();
        let outcome = tsdb.append(batch).expect("append");
        assert_eq!(outcome.samples_accepted, (JOBS * INSTANCES) as u64);
    }
}

/// The same formula as cairn-bench's `promql` workload.
fn counter_value(series: usize, scrape: i64) -> f64 {
    (scrape as usize * (series % 7 + 1)) as f64 * 3.0
}

fn bench_query(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tsdb = Tsdb::open(dir.path(), TsdbOptions::default()).expect("open tsdb");
    load(&tsdb);
    let engine = Engine::new(EngineOptions::default());
    let opts = QueryOptions::default();

    // Sanity check before timing: one series per job, 240 steps each.
    let result = engine
        .range_query(&tsdb, QUERY, START_MS, END_MS, INTERVAL_MS, &opts)
        .expect("range query");
    let Value::Matrix(series) = &result.value else {
        panic!("range query returned {:?}", result.value);
    };
    assert_eq!(series.len(), JOBS);
    assert!(series
        .iter()
        .all(|s| s.samples.len() == SCRAPES as usize - 1));

    let mut group = c.benchmark_group("sum_by_job_rate_x_5m");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("range_1h_step_15s_10k_series", |b| {
        b.iter(|| {
            engine
                .range_query(&tsdb, QUERY, START_MS, END_MS, INTERVAL_MS, &opts)
                .expect("range query")
        })
    });
    group.bench_function("instant_at_end_10k_series", |b| {
        b.iter(|| {
            engine
                .instant_query(&tsdb, QUERY, END_MS, &opts)
                .expect("instant query")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_query);
criterion_main!(benches);
