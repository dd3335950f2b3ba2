//! Append throughput, printed. Ignored by default:
//! `cargo test --release -p cairn-tsdb --test throughput -- --ignored --nocapture`

use std::time::{Duration, Instant};

use cairn_model::{Labels, Sample, SeriesSamples};
use cairn_tsdb::{Tsdb, TsdbOptions};

#[test]
#[ignore]
fn append_throughput() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    let series_count = 10_000usize;
    let scrapes = 60;
    let labels: Vec<Labels> = (0..series_count)
        .map(|i| {
            Labels::from_pairs(&[
                ("__name__", &format!("metric_{}", i % 100)),
                (
                    "instance",
                    &format!("10.0.{}.{}:9100", i / 250 % 250, i % 250),
                ),
                ("job", "node"),
                ("pod", &format!("worker-{}", i / 10)),
            ])
        })
        .collect();
    let mut building = Duration::ZERO;
    let mut appending = Duration::ZERO;
    for scrape in 0..scrapes {
        let t = 1_700_000_000_000 + scrape * 15_000;
        let started = Instant::now();
        // Batches of 1000 series, as remote write sends them.
        let batches: Vec<Vec<SeriesSamples>> = labels
            .chunks(1000)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|l| SeriesSamples {
                        labels: l.clone(),
                        samples: vec![Sample::new(t, scrape as f64)],
                        exemplars: Vec::new(),
                    })
                    .collect()
            })
            .collect();
        building += started.elapsed();
        let started = Instant::now();
        for batch in batches {
            db.append(batch).unwrap();
        }
        appending += started.elapsed();
    }
    let samples = (series_count as u64) * scrapes as u64;
    println!(
        "{samples} samples: build {building:?}, append {appending:?} = {:.0} samples/s",
        samples as f64 / appending.as_secs_f64()
    );
    drop(db);
    let started = Instant::now();
    let reopened = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    let replay = started.elapsed();
    assert_eq!(reopened.stats().active_series, series_count as u64);
    println!(
        "replay {replay:?} = {:.0} samples/s",
        samples as f64 / replay.as_secs_f64()
    );
}
