//! Append and select throughput of one tenant's database.
//! `cargo bench -p cairn-tsdb --bench append`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use std::borrow::Cow;

use cairn_model::{
    LabelRef, Labels, LabelsRef, Matcher, Queryable, Sample, SeriesRef, SeriesSamples, TimeRange,
};
use cairn_tsdb::{SeriesLimits, Tsdb, TsdbOptions};

const SERIES: usize = 1000;

fn series_labels() -> Vec<Labels> {
    (0..SERIES)
        .map(|i| {
            Labels::from_pairs(&[
                ("__name__", &format!("metric_{}", i % 10)),
                ("instance", &format!("10.0.0.{}:9100", i % 250)),
                ("job", "node"),
                ("pod", &format!("worker-{}", i / 4)),
            ])
        })
        .collect()
}

/// One remote-write request: one sample for each of `SERIES` series.
fn request(labels: &[Labels], t: i64) -> Vec<SeriesSamples> {
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| SeriesSamples {
            labels: l.clone(),
            samples: vec![Sample::new(t, (t / 1000 + i as i64) as f64)],
            exemplars: Vec::new(),
        })
        .collect()
}

fn append(c: &mut Criterion) {
    let labels = series_labels();
    let tmp = tempfile::tempdir().unwrap();
    let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    let mut t = 0i64;
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function("1000 existing series x 1 sample", |b| {
        b.iter_batched(
            || {
                t += 15_000;
                request(&labels, t)
            },
            |batch| db.append(batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // The remote write path: labels and samples borrowed from the request.
    let borrowed: Vec<Vec<LabelRef>> = labels
        .iter()
        .map(|l| l.iter().map(LabelRef::from).collect())
        .collect();
    group.bench_function("1000 existing series x 1 sample, borrowed labels", |b| {
        b.iter_batched(
            || {
                t += 15_000;
                (0..SERIES)
                    .map(|i| vec![Sample::new(t, (t / 1000 + i as i64) as f64)])
                    .collect::<Vec<_>>()
            },
            |samples| {
                let batch = borrowed
                    .iter()
                    .zip(&samples)
                    .map(|(l, s)| SeriesRef {
                        labels: LabelsRef::from_sorted(l),
                        samples: Cow::Borrowed(s.as_slice()),
                        exemplars: Vec::new(),
                        found: None,
                    })
                    .collect();
                db.append_refs(batch, SeriesLimits::default()).unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn select(c: &mut Criterion) {
    let labels = series_labels();
    let tmp = tempfile::tempdir().unwrap();
    let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    for step in 0..480 {
        db.append(request(&labels, step * 15_000)).unwrap();
    }
    let mut group = c.benchmark_group("select");
    group.throughput(Throughput::Elements(100 * 240));
    let matchers = [Matcher::equal("__name__", "metric_3")];
    group.bench_function("100 series x 1h of 2h", |b| {
        b.iter(|| {
            db.select(&matchers, TimeRange::new(3_600_000, 7_199_999))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, append, select);
criterion_main!(benches);
