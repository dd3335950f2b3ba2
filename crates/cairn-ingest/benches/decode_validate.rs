//! Decode and validate one remote write request of 2,000 samples: 200 series
//! of 10 samples with node-exporter-like labels, the shape Prometheus sends
//! with its default `max_samples_per_send`.
//!
//! Run: `cargo bench -p cairn-ingest --bench decode_validate`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use cairn_ingest::prompb::{Label, Sample, TimeSeries, WriteRequest};
use cairn_ingest::{
    decode_write_request, decode_write_request_ref, encode_write_request, validate_write_request,
    DecodeLimits, ValidationLimits, WriteRequestRef,
};

const NOW: i64 = 1_700_000_000_000;
const SERIES: usize = 200;
const SAMPLES_PER_SERIES: usize = 10;

fn request() -> WriteRequest {
    let timeseries = (0..SERIES)
        .map(|i| TimeSeries {
            labels: vec![
                Label::new("__name__", "node_cpu_seconds_total"),
                Label::new("cpu", (i % 64).to_string()),
                Label::new("instance", format!("10.0.{}.{}:9100", i / 64, i % 64)),
                Label::new("job", "node"),
                Label::new("mode", ["user", "system", "idle", "iowait"][i % 4]),
            ],
            samples: (0..SAMPLES_PER_SERIES)
                .map(|j| Sample {
                    value: (i * 1000 + j) as f64 * 0.25,
                    timestamp: NOW - 15_000 * (SAMPLES_PER_SERIES - j) as i64,
                })
                .collect(),
            exemplars: vec![],
            histograms: vec![],
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

fn bench(c: &mut Criterion) {
    let body = encode_write_request(&request());
    let decode_limits = DecodeLimits::default();
    let validation_limits = ValidationLimits::default();

    let mut group = c.benchmark_group("remote_write_2000_samples");
    group.throughput(Throughput::Elements((SERIES * SAMPLES_PER_SERIES) as u64));
    // The owned decoder (prost: a String per label, a Vec per series), for
    // comparison with the borrowed one the server uses.
    group.bench_function("decode_owned_prost", |b| {
        b.iter(|| decode_write_request(&body, &decode_limits).unwrap())
    });
    group.bench_function("decode", |b| {
        let mut buffer = Vec::new();
        b.iter(|| {
            decode_write_request_ref(&body, &decode_limits, &mut buffer)
                .unwrap()
                .series_count()
        })
    });
    group.bench_function("validate", |b| {
        let owned = decode_write_request(&body, &decode_limits).unwrap();
        let decoded = WriteRequestRef::from_owned(&owned);
        b.iter_batched_ref(
            || decoded.clone(),
            |decoded| {
                validate_write_request(decoded, &validation_limits, NOW)
                    .series
                    .len()
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("decode_and_validate", |b| {
        let mut buffer = Vec::new();
        b.iter(|| {
            let mut decoded = decode_write_request_ref(&body, &decode_limits, &mut buffer).unwrap();
            validate_write_request(&mut decoded, &validation_limits, NOW)
                .series
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
