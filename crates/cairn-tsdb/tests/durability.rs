//! Durability and concurrency of `Tsdb` and `TenantStore` through the public API.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use cairn_model::{
    Labels, Matcher, Queryable, Sample, SeriesSamples, TenantId, TimeRange, STALE_NAN,
};
use cairn_tsdb::{FsyncPolicy, TenantStore, Tsdb, TsdbOptions};

fn batch(series_count: usize, first_t: i64, samples_per_series: i64) -> Vec<SeriesSamples> {
    (0..series_count)
        .map(|i| SeriesSamples {
            labels: Labels::from_pairs(&[
                ("__name__", "metric"),
                ("instance", &format!("host-{i}")),
                ("job", if i % 2 == 0 { "even" } else { "odd" }),
            ]),
            samples: (0..samples_per_series)
                .map(|k| {
                    let t = first_t + k * 15_000;
                    let v = if t % 7 == 0 {
                        STALE_NAN
                    } else {
                        (t as f64) * 0.5 + i as f64
                    };
                    Sample::new(t, v)
                })
                .collect(),
            exemplars: Vec::new(),
        })
        .collect()
}

fn expected_value(instance: usize, t: i64) -> u64 {
    if t % 7 == 0 {
        STALE_NAN.to_bits()
    } else {
        ((t as f64) * 0.5 + instance as f64).to_bits()
    }
}

fn small_segments() -> TsdbOptions {
    TsdbOptions {
        wal_segment_size: 16 * 1024,
        ..TsdbOptions::default()
    }
}

fn wal_segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut segments: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    segments
}

/// Every sample an append acknowledged must be in the WAL files by the time
/// the call returns: dropping the database without `close` (a crash, as far
/// as the files know) loses nothing.
#[test]
fn acknowledged_samples_survive_a_crash_without_close() {
    for fsync in [FsyncPolicy::Never, FsyncPolicy::Always] {
        crash_and_replay(fsync);
    }
}

fn crash_and_replay(fsync: FsyncPolicy) {
    let opts = TsdbOptions {
        fsync,
        ..small_segments()
    };
    let tmp = tempfile::tempdir().unwrap();
    let series_count = 50;
    let batches = 40;
    let per_batch = 5;
    {
        let db = Tsdb::open(tmp.path(), opts.clone()).unwrap();
        for b in 0..batches {
            let outcome = db
                .append(batch(series_count, b * per_batch * 15_000, per_batch))
                .unwrap();
            assert_eq!(
                outcome.samples_accepted,
                (series_count as i64 * per_batch) as u64
            );
        }
        // No close(): the process "dies" here.
    }
    assert!(
        wal_segments(tmp.path()).len() > 2,
        "small segments were rotated"
    );
    let db = Tsdb::open(tmp.path(), opts.clone()).unwrap();
    let selected = db
        .select(&[Matcher::equal("__name__", "metric")], TimeRange::all())
        .unwrap();
    assert_eq!(selected.len(), series_count);
    assert_eq!(db.stats().active_series, series_count as u64);
    for series in &selected {
        let instance: usize = series.labels.get("instance").unwrap()[5..].parse().unwrap();
        let got: Vec<(i64, u64)> = series
            .samples
            .iter()
            .map(|s| (s.t, s.v.to_bits()))
            .collect();
        let want: Vec<(i64, u64)> = (0..batches * per_batch)
            .map(|k| (k * 15_000, expected_value(instance, k * 15_000)))
            .collect();
        assert_eq!(got, want, "{}", series.labels);
    }
    // Appends after the replay continue where the old ones stopped.
    let outcome = db.append(batch(series_count, 0, 1)).unwrap();
    assert_eq!(outcome.samples_accepted, 0);
    assert_eq!(outcome.discarded.len(), 1);
}

/// A crash in the middle of a write leaves a torn record at the end of the
/// last segment: start-up cuts it with a warning and keeps every earlier sample.
#[test]
fn a_truncated_last_record_is_cut_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
        for b in 0..10 {
            db.append(batch(3, b * 15_000, 1)).unwrap();
        }
        db.close().unwrap();
    }
    let last = wal_segments(tmp.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    let selected = db.select(&[], TimeRange::all()).unwrap();
    let total: usize = selected.iter().map(|s| s.samples.len()).sum();
    assert_eq!(
        total, 27,
        "the last batch (3 samples) is lost, nothing else"
    );
    assert!(std::fs::metadata(&last).unwrap().len() < len - 5);
    // The repaired log accepts new writes and replays cleanly again.
    db.append(batch(3, 9 * 15_000, 1)).unwrap();
    drop(db);
    let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    let total: usize = db
        .select(&[], TimeRange::all())
        .unwrap()
        .iter()
        .map(|s| s.samples.len())
        .sum();
    assert_eq!(total, 30);
}

/// Several threads append to one tenant and to separate tenants at once;
/// every acknowledged sample is readable, before and after a restart.
#[test]
fn concurrent_appends_to_shared_and_separate_tenants() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        fsync: FsyncPolicy::Never,
        wal_segment_size: 64 * 1024,
        max_exemplars: 10,
        ..TsdbOptions::default()
    };
    let store = Arc::new(TenantStore::open(tmp.path(), opts.clone()).unwrap());
    let threads = 4;
    let rounds = 50i64;
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                let shared = TenantId::new("shared").unwrap();
                let own = TenantId::new(&format!("tenant-{thread}")).unwrap();
                for round in 0..rounds {
                    // Each thread owns its series in the shared tenant.
                    let labels =
                        Labels::from_pairs(&[("__name__", "m"), ("thread", &thread.to_string())]);
                    let samples = vec![Sample::new(round * 1000, round as f64)];
                    for tenant in [&shared, &own] {
                        let db = store.get_or_create(tenant).unwrap();
                        let outcome = db
                            .append(vec![SeriesSamples {
                                labels: labels.clone(),
                                samples: samples.clone(),
                                exemplars: Vec::new(),
                            }])
                            .unwrap();
                        assert_eq!(outcome.samples_accepted, 1);
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    let check = |store: &TenantStore| {
        let tenants: Vec<String> = store
            .tenants()
            .iter()
            .map(|(id, _)| id.as_str().to_string())
            .collect();
        assert_eq!(
            tenants,
            ["shared", "tenant-0", "tenant-1", "tenant-2", "tenant-3"]
        );
        let shared = store.get(&TenantId::new("shared").unwrap()).unwrap();
        let selected = shared.select(&[], TimeRange::all()).unwrap();
        assert_eq!(selected.len(), threads);
        for series in &selected {
            assert_eq!(series.samples.len(), rounds as usize);
        }
        for thread in 0..threads {
            let own = store
                .get(&TenantId::new(&format!("tenant-{thread}")).unwrap())
                .unwrap();
            let selected = own.select(&[], TimeRange::all()).unwrap();
            assert_eq!(selected.len(), 1, "tenants do not see each other's series");
            assert_eq!(
                selected[0].labels.get("thread"),
                Some(thread.to_string().as_str())
            );
        }
    };
    check(&store);
    store.close_all().unwrap();
    drop(store);
    // Junk in the tenants directory is skipped, not fatal.
    std::fs::create_dir_all(tmp.path().join("tenants").join("bad name")).unwrap();
    std::fs::write(tmp.path().join("tenants").join("a-file"), b"x").unwrap();
    let reopened = TenantStore::open(tmp.path(), opts).unwrap();
    check(&reopened);
}

/// Readers running during appends see, for every series, a gap-free prefix
/// of what was written: an append becomes visible whole or not at all per
/// series, and chunks cut while a query runs never lose or repeat a sample.
#[test]
fn queries_during_appends_see_consistent_prefixes() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Arc::new(Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap());
    let series_count = 20;
    let rounds = 400i64;
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for round in 0..rounds {
                let batch: Vec<SeriesSamples> = (0..series_count)
                    .map(|i| SeriesSamples {
                        labels: Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())]),
                        samples: vec![Sample::new(round * 1000, round as f64)],
                        exemplars: Vec::new(),
                    })
                    .collect();
                db.append(batch).unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut seen_last = 0;
                while seen_last < rounds - 1 {
                    for series in db.select(&[], TimeRange::all()).unwrap() {
                        for (k, sample) in series.samples.iter().enumerate() {
                            assert_eq!(sample.t, k as i64 * 1000, "{}", series.labels);
                            assert_eq!(sample.v, k as f64);
                        }
                        seen_last = seen_last.max(series.samples.len() as i64 - 1);
                    }
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(db.stats().samples_appended, (series_count * rounds) as u64);
}
