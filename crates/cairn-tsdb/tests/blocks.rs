//! Blocks end to end: the head cut into blocks, compaction, retention and
//! restarts, with every sample read back exactly once; and crash safety: a
//! child process (this test binary, re-run) is stopped at a named fault
//! point inside block writing, checkpointing or compaction and killed with
//! SIGKILL, and the reopened database holds every acknowledged sample once.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use cairn_model::{Labels, Matcher, Queryable, Sample, SeriesSamples, TimeRange};
use cairn_tsdb::{Tsdb, TsdbOptions};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const SERIES: i64 = 5;

fn labels(i: i64) -> Labels {
    let job = if i % 2 == 0 { "even" } else { "odd" };
    Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string()), ("job", job)])
}

fn value(round: i64, i: i64) -> f64 {
    (round * SERIES + i) as f64
}

/// One sample per series at `round` minutes.
fn batch(round: i64) -> Vec<SeriesSamples> {
    (0..SERIES)
        .map(|i| SeriesSamples {
            labels: labels(i),
            samples: vec![Sample::new(round * MINUTE, value(round, i))],
            exemplars: Vec::new(),
        })
        .collect()
}

fn options() -> TsdbOptions {
    TsdbOptions {
        wal_segment_size: 64 * 1024,
        compaction_ranges_ms: vec![2 * HOUR, 4 * HOUR, 8 * HOUR],
        maintenance_interval: std::time::Duration::ZERO,
        ..TsdbOptions::default()
    }
}

/// Every series holds rounds `0..=last` exactly once, in order; returns
/// `last`. Storage holds each sample once too: blocks do not overlap and
/// the head starts where the blocks end (queries would hide a duplicate).
fn check_exactly_once(db: &Tsdb) -> i64 {
    let blocks = db.blocks();
    for pair in blocks.windows(2) {
        assert!(pair[0].max_time <= pair[1].min_time, "{blocks:?}");
    }
    if let (Some(last_block), Some((head_min, _))) = (blocks.last(), db.head_time_range()) {
        assert!(head_min >= last_block.max_time, "head overlaps the blocks");
    }
    let selected = db.select(&[], TimeRange::all()).unwrap();
    assert_eq!(selected.len(), SERIES as usize);
    let mut last = None;
    for series in &selected {
        let i: i64 = series.labels.get("i").unwrap().parse().unwrap();
        for (round, sample) in series.samples.iter().enumerate() {
            let round = round as i64;
            assert_eq!(
                *sample,
                Sample::new(round * MINUTE, value(round, i)),
                "series {i} round {round}"
            );
        }
        let count = series.samples.len() as i64;
        assert!(
            last.is_none_or(|l| l == count - 1),
            "series differ in length"
        );
        last = Some(count - 1);
    }
    last.unwrap()
}

fn names_under(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn write_cut_compact_restart_returns_every_sample_once() {
    let tmp = tempfile::tempdir().unwrap();
    let rounds = 13 * 60; // 13 hours of one sample a minute
    {
        let db = Tsdb::open(tmp.path(), options()).unwrap();
        for round in 0..rounds {
            db.append(batch(round)).unwrap();
            if round % 90 == 0 {
                db.cut_blocks(i64::MAX).unwrap();
            }
        }
        db.cut_blocks(i64::MAX).unwrap();
        let blocks = db.blocks();
        // The head spans at least 1.5 ranges past its oldest range's start.
        assert_eq!(blocks.len(), 5, "{blocks:?}");
        assert_eq!(blocks.last().unwrap().max_time, 10 * HOUR);
        assert_eq!(check_exactly_once(&db), rounds - 1);
        // Samples behind the blocks are refused.
        let late = db
            .append(vec![SeriesSamples {
                labels: labels(100),
                samples: vec![Sample::new(HOUR, 1.0)],
                exemplars: Vec::new(),
            }])
            .unwrap();
        assert_eq!(late.samples_accepted, 0);
        // The WAL was checkpointed: old segments are gone.
        let wal = names_under(&tmp.path().join("wal"));
        assert!(wal.iter().any(|n| n.starts_with("checkpoint.")), "{wal:?}");
    }
    let db = Tsdb::open(tmp.path(), options()).unwrap();
    assert!(db.wal_replay_report().checkpoint.is_some());
    assert_eq!(check_exactly_once(&db), rounds - 1);
    let compacted = db.compact().unwrap();
    // [0,2h)+[2h,4h) -> [0,4h); [4h,6h)+[6h,8h) -> [4h,8h); both -> [0,8h).
    assert_eq!(compacted.len(), 3, "{compacted:?}");
    let blocks = db.blocks();
    let ranges: Vec<(i64, i64, u32)> = blocks
        .iter()
        .map(|b| (b.min_time, b.max_time, b.compaction.level))
        .collect();
    assert_eq!(ranges, vec![(0, 8 * HOUR, 3), (8 * HOUR, 10 * HOUR, 1)]);
    assert_eq!(blocks[0].stats.num_samples, (8 * 60 * SERIES) as u64);
    assert_eq!(blocks[0].compaction.sources.len(), 4);
    assert_eq!(check_exactly_once(&db), rounds - 1);
    drop(db);

    let db = Tsdb::open(tmp.path(), options()).unwrap();
    assert_eq!(check_exactly_once(&db), rounds - 1);
    // Label and series APIs see block data: a series that only lives in
    // blocks now.
    db.append(vec![SeriesSamples {
        labels: Labels::from_pairs(&[("__name__", "late"), ("zone", "z")]),
        samples: vec![Sample::new(rounds * MINUTE, 1.0)],
        exemplars: Vec::new(),
    }])
    .unwrap();
    let early = TimeRange::new(0, HOUR);
    assert_eq!(db.series(&[], early).len(), SERIES as usize);
    assert_eq!(
        db.label_values("i", &[], early).unwrap(),
        vec!["0", "1", "2", "3", "4"]
    );
    assert_eq!(
        db.label_names(&[], early).unwrap(),
        vec!["__name__", "i", "job"]
    );
    assert_eq!(
        db.label_names(&[], TimeRange::all()).unwrap(),
        vec!["__name__", "i", "job", "zone"]
    );
    assert_eq!(
        db.label_values("job", &[Matcher::equal("i", "3")], early)
            .unwrap(),
        vec!["odd"]
    );
    let selected = support::select_checked(
        &db,
        &[Matcher::equal("job", "even")],
        TimeRange::new(2 * HOUR - MINUTE, 2 * HOUR + MINUTE),
    );
    assert_eq!(selected.len(), 3);
    assert_eq!(selected[0].samples.len(), 3);
    let gone = names_under(&tmp.path().join("blocks"));
    assert!(gone.iter().all(|n| !n.contains(".tmp-for-")), "{gone:?}");
}

#[test]
fn retention_deletes_expired_blocks_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        retention: std::time::Duration::from_millis(5 * HOUR as u64),
        ..options()
    };
    let db = Tsdb::open(tmp.path(), opts.clone()).unwrap();
    let rounds = 10 * 60;
    for round in 0..rounds {
        db.append(batch(round)).unwrap();
    }
    let now = rounds * MINUTE;
    db.cut_blocks(now).unwrap();
    assert_eq!(db.blocks().len(), 4);
    let dirs_before = names_under(&tmp.path().join("blocks")).len();
    // Blocks ending at or before 10h - 5h go: [0,2h), [2h,4h).
    assert_eq!(db.apply_retention(now).unwrap(), 2);
    let left: Vec<(i64, i64)> = db
        .blocks()
        .iter()
        .map(|b| (b.min_time, b.max_time))
        .collect();
    assert_eq!(left, vec![(4 * HOUR, 6 * HOUR), (6 * HOUR, 8 * HOUR)]);
    assert_eq!(
        names_under(&tmp.path().join("blocks")).len(),
        dirs_before - 2
    );
    let first = db.select(&[], TimeRange::all()).unwrap()[0].samples[0].t;
    assert_eq!(first, 4 * HOUR);
    drop(db);
    let db = Tsdb::open(tmp.path(), opts).unwrap();
    let selected = db.select(&[], TimeRange::all()).unwrap();
    assert_eq!(selected[0].samples.len() as i64, rounds - 4 * 60);
    // Zero retention keeps everything.
    let keep = Tsdb::open(&tmp.path().join("keep"), options()).unwrap();
    for round in 0..rounds {
        keep.append(batch(round)).unwrap();
    }
    keep.cut_blocks(now).unwrap();
    assert_eq!(keep.apply_retention(i64::MAX).unwrap(), 0);
    assert_eq!(check_exactly_once(&keep), rounds - 1);
}

const CHILD_DIR: &str = "CAIRN_TSDB_BLOCKS_CHILD_DIR";

/// The child: append a round, report it, run maintenance; until a fault
/// point parks it (the parent then kills it) or the rounds run out.
fn run_child(dir: &str) {
    let db = Tsdb::open(Path::new(dir), options()).unwrap();
    let stdout = std::io::stdout();
    for round in 0..(12 * 60) {
        db.append(batch(round)).unwrap();
        {
            let mut out = stdout.lock();
            writeln!(out, "acked {round}").unwrap();
            out.flush().unwrap();
        }
        if round % 30 == 0 {
            db.cut_blocks(i64::MAX).unwrap();
            db.compact().unwrap();
        }
    }
    writeln!(stdout.lock(), "done").unwrap();
}

/// Runs the child until it parks at `fault`, kills it, and checks the
/// reopened database.
fn crash_at(test_name: &str, fault: &str) {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        run_child(&dir);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, tmp.path())
        .env("CAIRN_TSDB_FAULT", fault);
    let last_acked = support::run_until_fault(child, fault);

    let db = Tsdb::open(tmp.path(), options()).unwrap();
    let last = check_exactly_once(&db);
    assert!(last >= last_acked, "lost acknowledged rounds after {last}");
    let blocks_dir = names_under(&tmp.path().join("blocks"));
    assert!(
        blocks_dir.iter().all(|n| !n.contains(".tmp-for-")),
        "{blocks_dir:?}"
    );
    let wal = names_under(&tmp.path().join("wal"));
    assert!(wal.iter().all(|n| !n.ends_with(".tmp")), "{wal:?}");
    // Carry on from the recovered state: more data, cuts, compaction, restart.
    for round in last + 1..last + 300 {
        db.append(batch(round)).unwrap();
    }
    db.cut_blocks(i64::MAX).unwrap();
    db.compact().unwrap();
    assert_eq!(check_exactly_once(&db), last + 299);
    drop(db);
    let db = Tsdb::open(tmp.path(), options()).unwrap();
    assert_eq!(check_exactly_once(&db), last + 299);
}

#[test]
fn crash_while_writing_a_block() {
    crash_at("crash_while_writing_a_block", "block-writing");
}

#[test]
fn crash_before_a_block_is_renamed() {
    crash_at("crash_before_a_block_is_renamed", "block-before-rename");
}

#[test]
fn crash_after_a_block_is_renamed() {
    crash_at("crash_after_a_block_is_renamed", "block-after-rename");
}

#[test]
fn crash_after_the_head_drops_a_block_before_the_checkpoint() {
    crash_at(
        "crash_after_the_head_drops_a_block_before_the_checkpoint",
        "block-before-checkpoint",
    );
}

#[test]
fn crash_before_a_checkpoint_is_renamed() {
    crash_at(
        "crash_before_a_checkpoint_is_renamed",
        "checkpoint-before-rename",
    );
}

#[test]
fn crash_after_a_checkpoint_is_renamed() {
    crash_at(
        "crash_after_a_checkpoint_is_renamed",
        "checkpoint-after-rename",
    );
}

#[test]
fn crash_while_compacting() {
    crash_at("crash_while_compacting", "compaction-writing");
}

#[test]
fn crash_after_a_compacted_block_is_renamed() {
    crash_at(
        "crash_after_a_compacted_block_is_renamed",
        "compaction-after-rename",
    );
}

/// Bytes per sample for a node-exporter-like workload (500 series from 5
/// "nodes", one sample every 15 s, 26 hours): WAL, head chunks, and blocks
/// after compaction to 24h; once with scrape-aligned timestamps and once
/// with 0-3 ms of scrape jitter. A figure, not a check; run with
/// `cargo test --release -p cairn-tsdb --test blocks -- --ignored --nocapture bytes_per_sample`.
#[test]
#[ignore]
fn bytes_per_sample_node_exporter_like() {
    for jitter_ms in [0, 4] {
        println!("-- timestamp jitter 0..{jitter_ms} ms");
        node_exporter_like_figures(jitter_ms);
    }
}

fn node_exporter_like_figures(jitter_ms: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        maintenance_interval: std::time::Duration::ZERO,
        ..TsdbOptions::default()
    };
    let db = Tsdb::open(tmp.path(), opts).unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let nodes = 5;
    let per_node = 100;
    // Per series kind: cpu seconds (2-decimal counters), byte counters,
    // rarely changing counters (errors, drops), memory gauges (pages),
    // constant gauges (sizes, info, up), load averages (2-decimal gauges).
    let kind = |k: usize| match k {
        0..32 => ("node_cpu_seconds_total", 0),
        32..48 => ("node_network_receive_bytes_total", 1),
        48..64 => ("node_network_receive_errs_total", 2),
        64..80 => ("node_memory_bytes", 3),
        80..95 => ("node_filesystem_size_bytes", 4),
        _ => ("node_load", 5),
    };
    let series_labels: Vec<Labels> = (0..nodes * per_node)
        .map(|s| {
            let (node, k) = (s / per_node, s % per_node);
            Labels::from_pairs(&[
                ("__name__", kind(k).0),
                ("instance", &format!("node-{node}:9100")),
                ("job", "node"),
                ("k", &k.to_string()),
            ])
        })
        .collect();
    let mut state: Vec<f64> = (0..nodes * per_node)
        .map(|s| match kind(s % per_node).1 {
            3 => 8_000_000_000.0,
            4 => 500_107_862_016.0,
            _ => 0.0,
        })
        .collect();
    let steps = 26 * 60 * 4;
    let mut samples = 0u64;
    for step in 0..steps {
        let mut batch = Vec::with_capacity(state.len());
        for (s, labels) in series_labels.iter().enumerate() {
            let r = next();
            let jitter = if jitter_ms == 0 {
                0
            } else {
                (r % jitter_ms) as i64
            };
            let t = step * 15_000 + jitter;
            let v = &mut state[s];
            let draw = (r >> 16) as f64 / (1u64 << 48) as f64;
            match kind(s % per_node).1 {
                0 => *v = ((*v + 15.0 * draw) * 100.0).round() / 100.0,
                1 => *v += (draw * 1_000_000.0).round(),
                2 => *v += if draw < 0.01 { 1.0 } else { 0.0 },
                3 => *v = 8_000_000_000.0 + ((draw - 0.5) * 256.0).round() * 4096.0,
                4 => {}
                _ => *v = (draw * 400.0).round() / 100.0,
            }
            batch.push(SeriesSamples {
                labels: labels.clone(),
                samples: vec![Sample::new(t, *v)],
                exemplars: Vec::new(),
            });
            samples += 1;
        }
        db.append(batch).unwrap();
        if step == 2 * 60 * 4 {
            let head = db.head_chunk_bytes() as f64 / (samples as f64);
            println!("head chunks: {head:.3} bytes/sample (first 2h, all in memory)");
        }
    }
    let wal = db.stats().wal_bytes_written as f64 / samples as f64;
    println!("samples: {samples}, wal: {wal:.3} bytes/sample");
    db.cut_blocks(i64::MAX).unwrap();
    let level1: u64 = db.blocks().iter().map(|b| b.stats.num_samples).sum();
    let size = |dir: &Path| -> (u64, u64) {
        let (mut chunks, mut index) = (0, 0);
        for block in std::fs::read_dir(dir).unwrap() {
            let block = block.unwrap().path();
            index += std::fs::metadata(block.join("index")).unwrap().len()
                + std::fs::metadata(block.join("meta.json")).unwrap().len();
            for f in std::fs::read_dir(block.join("chunks")).unwrap() {
                chunks += f.unwrap().metadata().unwrap().len();
            }
        }
        (chunks, index)
    };
    let (chunks, index) = size(&tmp.path().join("blocks"));
    println!(
        "2h blocks: {} blocks, {level1} samples, chunks {:.3} + index/meta {:.3} = {:.3} bytes/sample",
        db.blocks().len(),
        chunks as f64 / level1 as f64,
        index as f64 / level1 as f64,
        (chunks + index) as f64 / level1 as f64
    );
    db.compact().unwrap();
    let compacted: u64 = db.blocks().iter().map(|b| b.stats.num_samples).sum();
    assert_eq!(compacted, level1);
    let (chunks, index) = size(&tmp.path().join("blocks"));
    println!(
        "after compaction: {:?} h, chunks {:.3} + index/meta {:.3} = {:.3} bytes/sample",
        db.blocks()
            .iter()
            .map(|b| (b.max_time - b.min_time) / HOUR)
            .collect::<Vec<_>>(),
        chunks as f64 / compacted as f64,
        index as f64 / compacted as f64,
        (chunks + index) as f64 / compacted as f64
    );
}

/// The server only constructs a `TenantStore`: its background thread cuts
/// blocks on its own.
#[test]
fn tenant_store_maintenance_thread_cuts_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        maintenance_interval: std::time::Duration::from_millis(20),
        ..options()
    };
    let store = cairn_tsdb::TenantStore::open(tmp.path(), opts).unwrap();
    let tenant = cairn_model::TenantId::new("a").unwrap();
    let db = store.get_or_create(&tenant).unwrap();
    // Two complete ranges: [0, 2h) and [2h, 4h).
    let rounds = 6 * 60;
    for round in 0..rounds {
        db.append(batch(round)).unwrap();
    }
    // Wait until blocks hold both ranges' samples (4h of rounds). Counting
    // blocks would race: the same pass may compact the two 2h blocks into
    // one 4h block.
    let in_blocks = |db: &Tsdb| -> u64 { db.blocks().iter().map(|b| b.stats.num_samples).sum() };
    let expected = 4 * 60 * SERIES as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while in_blocks(&db) < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "no blocks cut in time"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(check_exactly_once(&db), rounds - 1);
    drop(db);
    drop(store);
    let db = Tsdb::open(&tmp.path().join("tenants").join("a"), options()).unwrap();
    assert_eq!(check_exactly_once(&db), rounds - 1);
}

mod model {
    //! Random appends, block cuts, compactions and restarts checked against
    //! a map of series to samples applying the same rules (in order per
    //! series; older than the newest block's end is too old).

    use std::collections::BTreeMap;

    use cairn_model::{Labels, Queryable, Sample, SeriesSamples, TimeRange};
    use cairn_tsdb::Tsdb;
    use proptest::prelude::*;

    use super::{options, MINUTE};

    #[derive(Clone, Debug)]
    enum Op {
        /// Series, how far behind the clock the run starts (minutes),
        /// samples, minutes between them, how far the clock then moves.
        Append(u8, i64, usize, i64, i64),
        Cut,
        Compact,
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..6, 0i64..200, 1usize..40, 1i64..6, 0i64..240)
                .prop_map(|(s, back, n, step, advance)| Op::Append(s, back, n, step, advance)),
            2 => Just(Op::Cut),
            1 => Just(Op::Compact),
            1 => Just(Op::Restart),
        ]
    }

    fn labels(series: u8) -> Labels {
        Labels::from_pairs(&[("__name__", "m"), ("s", &series.to_string())])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn blocks_and_head_match_the_model(ops in proptest::collection::vec(op(), 1..40)) {
            let tmp = tempfile::tempdir().unwrap();
            let mut db = Tsdb::open(tmp.path(), options()).unwrap();
            let mut model: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
            let mut clock = 0i64;
            let mut value = 0.0;
            for op in ops {
                match op {
                    Op::Append(series, back, n, step, advance) => {
                        let start = (clock - back * MINUTE).max(0);
                        let labels = labels(series);
                        let mut samples = Vec::new();
                        for i in 0..n as i64 {
                            value += 1.0;
                            samples.push(Sample::new(start + i * step * MINUTE, value));
                        }
                        let min_valid = db.blocks().last().map_or(i64::MIN, |b| b.max_time);
                        let kept = model.entry(labels.clone()).or_default();
                        let mut accepted = 0;
                        for s in &samples {
                            if s.t >= min_valid && kept.last().is_none_or(|&(t, _)| s.t > t) {
                                kept.push((s.t, s.v));
                                accepted += 1;
                            }
                        }
                        let outcome = db
                            .append(vec![SeriesSamples { labels, samples, exemplars: Vec::new() }])
                            .unwrap();
                        prop_assert_eq!(outcome.samples_accepted, accepted);
                        clock = clock.max(start + n as i64 * step * MINUTE) + advance * MINUTE;
                    }
                    Op::Cut => {
                        db.cut_blocks(i64::MAX).unwrap();
                    }
                    Op::Compact => {
                        db.compact().unwrap();
                    }
                    Op::Restart => {
                        drop(db);
                        db = Tsdb::open(tmp.path(), options()).unwrap();
                    }
                }
                let got: BTreeMap<Labels, Vec<(i64, f64)>> = db
                    .select(&[], TimeRange::all())
                    .unwrap()
                    .into_iter()
                    .map(|s| (s.labels, s.samples.iter().map(|p| (p.t, p.v)).collect()))
                    .collect();
                let expected: BTreeMap<Labels, Vec<(i64, f64)>> = model
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(got, expected);
                let blocks = db.blocks();
                for pair in blocks.windows(2) {
                    prop_assert!(pair[0].max_time <= pair[1].min_time);
                }
            }
        }
    }
}

/// Retention is per tenant: a short override for `a`, the long global
/// setting for `b`; after the pass `a`'s old blocks are gone from disk and
/// `b`'s are kept.
#[test]
fn retention_override_per_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = TsdbOptions {
        retention: std::time::Duration::from_millis(100 * HOUR as u64),
        // No compaction: retention deletes whole blocks, so a block merged
        // into a longer range lives as long as its newest data.
        compaction_ranges_ms: vec![2 * HOUR],
        ..options()
    };
    let store = cairn_tsdb::TenantStore::open(tmp.path(), opts).unwrap();
    let a = store
        .get_or_create(&cairn_model::TenantId::new("a").unwrap())
        .unwrap();
    let b = store
        .get_or_create(&cairn_model::TenantId::new("b").unwrap())
        .unwrap();
    a.set_retention(std::time::Duration::from_millis(5 * HOUR as u64));
    assert_eq!(b.retention().as_millis(), 100 * HOUR as u128);
    let rounds = 10 * 60;
    for round in 0..rounds {
        a.append(batch(round)).unwrap();
        b.append(batch(round)).unwrap();
    }
    let now = rounds * MINUTE;
    for db in [&a, &b] {
        db.maintain(now).unwrap();
    }
    let a_blocks: Vec<i64> = a.blocks().iter().map(|m| m.min_time).collect();
    assert_eq!(a_blocks, vec![4 * HOUR, 6 * HOUR]);
    assert_eq!(b.blocks().len(), 4);
    assert_eq!(b.blocks()[0].min_time, 0);
    assert_eq!(check_exactly_once(&b), rounds - 1);
    let on_disk =
        |tenant: &str| names_under(&tmp.path().join("tenants").join(tenant).join("blocks"));
    assert_eq!(on_disk("a").len(), 2, "{:?}", on_disk("a"));
    assert_eq!(on_disk("b").len(), 4, "{:?}", on_disk("b"));
}
