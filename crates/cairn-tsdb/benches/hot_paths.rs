//! The head's hot paths one at a time, without the WAL: series lookup and
//! creation by label set, XOR chunk append and iteration, dense (block)
//! chunk encoding and iteration, and postings intersection for a
//! two-matcher selector.
//!
//! Run: `cargo bench -p cairn-tsdb --bench hot_paths`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use cairn_model::{LabelRef, Labels, LabelsRef, Matcher};
use cairn_tsdb::chunk::{dense, DenseIter, XorAppender, XorIter};
use cairn_tsdb::head::postings::intersect;
use cairn_tsdb::head::{Head, Postings};

const SERIES: usize = 100_000;

/// node-exporter-like label sets: 1,000 hosts × 100 metrics.
fn series_labels(n: usize) -> Vec<Labels> {
    (0..n)
        .map(|i| {
            let host = i / 100;
            Labels::from_pairs(&[
                ("__name__", &format!("node_metric_{}", i % 100)),
                (
                    "instance",
                    &format!("10.0.{}.{}:9100", host / 250, host % 250),
                ),
                ("job", "node"),
                (
                    "region",
                    ["eu-west", "eu-north", "us-east", "ap-south"][host % 4],
                ),
            ])
        })
        .collect()
}

fn series(c: &mut Criterion) {
    let labels = series_labels(SERIES);
    let mut head = Head::new();
    for (id, l) in labels.iter().enumerate() {
        assert!(head.create_series(id as u64 + 1, l));
    }
    let mut group = c.benchmark_group("head_series");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function("lookup 100k existing", |b| {
        b.iter(|| {
            let mut found = 0;
            for l in &labels {
                found += usize::from(head.lookup(l).is_some());
            }
            assert_eq!(found, SERIES);
        })
    });
    // The remote write path: labels borrowed from the request buffer.
    let borrowed: Vec<Vec<LabelRef>> = labels
        .iter()
        .map(|l| l.iter().map(LabelRef::from).collect())
        .collect();
    group.bench_function("lookup_ref 100k existing", |b| {
        b.iter(|| {
            let mut found = 0;
            for l in &borrowed {
                found += usize::from(head.lookup_ref(LabelsRef::from_sorted(l)).is_some());
            }
            assert_eq!(found, SERIES);
        })
    });
    let fresh = series_labels(10_000);
    group.throughput(Throughput::Elements(fresh.len() as u64));
    group.bench_function("create 10k into an empty head", |b| {
        b.iter_batched(
            Head::new,
            |mut head| {
                for (id, l) in fresh.iter().enumerate() {
                    head.create_series(id as u64 + 1, l);
                }
                head
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// A counter scraped every 15 s with a little jitter, as the benchmark sends.
fn counter(n: usize) -> Vec<(i64, f64)> {
    let mut value = 0.0;
    (0..n)
        .map(|i| {
            value += 3.0 + (i % 7) as f64 * 0.25;
            (1_700_000_000_000 + i as i64 * 15_000, value)
        })
        .collect()
}

fn chunk(c: &mut Criterion) {
    let samples = counter(120);
    let mut group = c.benchmark_group("xor_chunk");
    group.throughput(Throughput::Elements(samples.len() as u64));
    group.bench_function("append 120 samples", |b| {
        b.iter(|| {
            let mut appender = XorAppender::new();
            for &(t, v) in &samples {
                appender.append(t, v);
            }
            appender
        })
    });
    let mut appender = XorAppender::new();
    for &(t, v) in &samples {
        appender.append(t, v);
    }
    let bytes = appender.into_bytes();
    group.bench_function("iterate 120 samples", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for (_, v) in XorIter::new(&bytes) {
                sum += v;
            }
            sum
        })
    });
    group.finish();
}

/// A block's dense chunk of a day of 15 s scrapes, cut as the block writer
/// cuts it (2,880 samples), against the same samples in XOR chunks of 120.
fn dense_chunk(c: &mut Criterion) {
    let samples = counter(2880);
    let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
    let vs: Vec<f64> = samples.iter().map(|s| s.1).collect();
    let mut group = c.benchmark_group("dense_chunk");
    group.throughput(Throughput::Elements(samples.len() as u64));
    group.bench_function("encode 2880 samples", |b| {
        b.iter(|| dense::encode(&ts, &vs))
    });
    let bytes = dense::encode(&ts, &vs).expect("decimal values");
    group.bench_function("iterate 2880 samples", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for (_, v) in DenseIter::new(&bytes, ts[0], ts[ts.len() - 1]) {
                sum += v;
            }
            sum
        })
    });
    let xor: Vec<Vec<u8>> = samples
        .chunks(120)
        .map(|chunk| {
            let mut appender = XorAppender::new();
            for &(t, v) in chunk {
                appender.append(t, v);
            }
            appender.into_bytes()
        })
        .collect();
    group.bench_function("iterate 2880 samples as 24 XOR chunks", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for chunk in &xor {
                for (_, v) in XorIter::new(chunk) {
                    sum += v;
                }
            }
            sum
        })
    });
    // The storage benchmark's random value kinds (`cairn-bench history`
    // `node`): uniform steps no fixed-width packing fits exactly.
    for (name, values) in random_kinds(2880) {
        let bytes = dense::encode(&ts, &values).expect("decimal values");
        group.bench_function(format!("iterate 2880 samples, {name}"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for (_, v) in DenseIter::new(&bytes, ts[0], ts[ts.len() - 1]) {
                    sum += v;
                }
                sum
            })
        });
    }
    // A head chunk cut (120 samples) re-encoded as the head keeps it, per
    // value kind: the column plans for every order are most of it.
    let head_ts = &ts[..120];
    group.throughput(Throughput::Elements(120));
    group.bench_function("encode_small 120 samples", |b| {
        b.iter(|| dense::encode_small(head_ts, &vs[..120]))
    });
    for (name, values) in random_kinds(120) {
        group.bench_function(format!("encode_small 120 samples, {name}"), |b| {
            b.iter(|| dense::encode_small(head_ts, &values))
        });
    }
    group.finish();
}

/// Three of the storage benchmark's value kinds, from a fixed xorshift.
fn random_kinds(n: usize) -> Vec<(&'static str, Vec<f64>)> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut draw = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut cpu, mut bytes) = (0.0f64, 0.0f64);
    let mut kinds = vec![
        ("cpu seconds +0..15.00", Vec::new()),
        ("byte counter +0..1e6", Vec::new()),
        ("gauge 0..4.00", Vec::new()),
    ];
    for _ in 0..n {
        cpu = ((cpu + 15.0 * draw()) * 100.0).round() / 100.0;
        bytes += (draw() * 1_000_000.0).round();
        kinds[0].1.push(cpu);
        kinds[1].1.push(bytes);
        kinds[2].1.push((draw() * 400.0).round() / 100.0);
    }
    kinds
}

fn postings(c: &mut Criterion) {
    let labels = series_labels(SERIES);
    let mut postings = Postings::default();
    for (id, l) in labels.iter().enumerate() {
        postings.add(
            id as u64 + 1,
            l.iter().map(|l| (l.name.as_str(), l.value.as_str())),
        );
    }
    let matchers = [
        Matcher::equal("__name__", "node_metric_7"),
        Matcher::equal("region", "eu-west"),
    ];
    let mut group = c.benchmark_group("postings");
    group.bench_function("select name= and region= over 100k", |b| {
        b.iter(|| {
            let ids = postings.select(&matchers);
            assert_eq!(ids.len(), 250);
            ids
        })
    });
    let a: Vec<u64> = (0..100_000).step_by(2).collect();
    let b_list: Vec<u64> = (0..100_000).step_by(3).collect();
    group.throughput(Throughput::Elements((a.len() + b_list.len()) as u64));
    group.bench_function("intersect 50k and 33k ids", |b| {
        b.iter(|| intersect(&a, &b_list))
    });
    group.finish();
}

criterion_group!(benches, series, chunk, dense_chunk, postings);
criterion_main!(benches);
