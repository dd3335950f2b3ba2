//! Out-of-order samples end to end through the public API: the window's
//! bounds and reasons, reads merging in-order and out-of-order data,
//! duplicates, WAL replay, block cuts (out-of-order blocks overlapping
//! earlier ones), compaction merging them, and a crash between a block's
//! rename and the WAL checkpoint: every sample is read back exactly once
//! and stored exactly once. The crash tests kill a child process (this test
//! binary, re-run) with SIGKILL at named fault points of a block cut while
//! it ingests late samples, as `tests/blocks.rs` does for in-order data.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use cairn_model::{DiscardReason, Labels, Matcher, Queryable, Sample, SeriesSamples, TimeRange};
use cairn_tsdb::{SeriesLimits, Tsdb, TsdbOptions};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn series(name: &str, samples: &[(i64, f64)]) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs(&[("__name__", name)]),
        samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
        exemplars: Vec::new(),
    }
}

fn window(ms: i64) -> SeriesLimits {
    SeriesLimits {
        out_of_order_window_ms: ms,
        ..SeriesLimits::default()
    }
}

fn options() -> TsdbOptions {
    TsdbOptions {
        compaction_ranges_ms: vec![2 * HOUR, 4 * HOUR, 8 * HOUR],
        maintenance_interval: std::time::Duration::ZERO,
        ..TsdbOptions::default()
    }
}

fn open(dir: &Path) -> Tsdb {
    Tsdb::open(dir, options()).unwrap()
}

/// `(t, v)` of series `name` over all time.
fn read(db: &Tsdb, name: &str) -> Vec<(i64, f64)> {
    let found = support::select_checked(db, &[Matcher::equal("__name__", name)], TimeRange::all());
    assert!(found.len() <= 1);
    found
        .first()
        .map(|s| s.samples.iter().map(|p| (p.t, p.v)).collect())
        .unwrap_or_default()
}

/// Every minute in `[from, to)`, value = t in minutes.
fn minutes(from: i64, to: i64) -> Vec<(i64, f64)> {
    (from / MINUTE..to / MINUTE)
        .map(|m| (m * MINUTE, m as f64))
        .collect()
}

#[test]
fn the_window_bounds_out_of_order_samples_by_the_heads_max_time() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path());
    let w = window(10 * MINUTE);
    db.append_limited(
        vec![
            series("a", &minutes(0, 101 * MINUTE)),
            series("b", &minutes(0, 11 * MINUTE)),
        ],
        w,
    )
    .unwrap();
    // The head's max is 100m: 90m is the oldest accepted, for every series.
    let outcome = db
        .append_limited(
            vec![
                series("a", &[(95 * MINUTE + 1, -1.0), (90 * MINUTE - 1, -2.0)]),
                series("b", &[(5 * MINUTE + 1, -3.0)]),
            ],
            w,
        )
        .unwrap();
    assert_eq!(outcome.samples_accepted, 1);
    assert_eq!(outcome.discarded, vec![(DiscardReason::SampleTooOld, 2)]);
    let rejection = outcome.first_rejection.unwrap();
    assert_eq!(
        (rejection.reason, rejection.t),
        (DiscardReason::SampleTooOld, 90 * MINUTE - 1)
    );
    assert_eq!(db.stats().ooo_samples_appended, 1);
    // 90m exactly is inside; b's own max (10m) does not matter.
    let outcome = db
        .append_limited(
            vec![series(
                "b",
                &[(95 * MINUTE, 1.0), (92 * MINUTE, 2.0), (90 * MINUTE, 3.0)],
            )],
            w,
        )
        .unwrap();
    assert_eq!((outcome.samples_accepted, outcome.discarded.len()), (3, 0));
    assert_eq!(db.stats().ooo_samples_appended, 3);

    // Without a window (and with a window of 0) nothing changes: out of order.
    for limits in [SeriesLimits::default(), window(0)] {
        let outcome = db
            .append_limited(vec![series("a", &[(99 * MINUTE + 1, 0.0)])], limits)
            .unwrap();
        assert_eq!(outcome.samples_accepted, 0);
        assert_eq!(
            outcome.discarded,
            vec![(DiscardReason::SampleOutOfOrder, 1)]
        );
    }
    // A new window applies to the next append.
    let outcome = db
        .append_limited(vec![series("a", &[(50 * MINUTE + 1, 7.0)])], window(HOUR))
        .unwrap();
    assert_eq!(outcome.samples_accepted, 1);
}

#[test]
fn reads_merge_in_order_and_out_of_order_samples_sorted() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path());
    let w = window(HOUR);
    // Even minutes in order, then the odd ones backwards (out of order,
    // more than one 32-sample out-of-order chunk).
    let evens: Vec<(i64, f64)> = (0..100).map(|m| (2 * m * MINUTE, (2 * m) as f64)).collect();
    db.append_limited(vec![series("m", &evens)], w).unwrap();
    let odds: Vec<(i64, f64)> = (0..99)
        .rev()
        .map(|m| ((2 * m + 1) * MINUTE, (2 * m + 1) as f64))
        .collect();
    // Window: head max 198m, so 138m and later only.
    let outcome = db.append_limited(vec![series("m", &odds)], w).unwrap();
    let accepted_odds = odds.iter().filter(|s| s.0 >= 138 * MINUTE).count() as u64;
    assert_eq!(outcome.samples_accepted, accepted_odds);
    let mut expected = evens.clone();
    expected.extend(odds.iter().filter(|s| s.0 >= 138 * MINUTE));
    expected.sort_by_key(|s| s.0);
    assert_eq!(read(&db, "m"), expected);
    // A range inside the merged part.
    let part = support::select_checked(&db, &[], TimeRange::new(150 * MINUTE, 160 * MINUTE));
    let ts: Vec<i64> = part[0].samples.iter().map(|s| s.t / MINUTE).collect();
    assert_eq!(ts, (150..=160).collect::<Vec<_>>());
    assert_eq!(
        db.series(&[], TimeRange::new(151 * MINUTE, 151 * MINUTE))
            .len(),
        1
    );
}

#[test]
fn out_of_order_duplicates_keep_the_first_value() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open(tmp.path());
    let w = window(HOUR);
    db.append_limited(vec![series("m", &[(10, 1.0), (20, 2.0), (30, 3.0)])], w)
        .unwrap();
    let outcome = db
        .append_limited(
            vec![series(
                "m",
                &[
                    (20, 9.0), // an in-order timestamp, other value: dropped
                    (15, 1.5), // out of order: stored
                    (15, 9.0), // repeated in the batch: dropped at apply
                    (30, 3.0), // the last sample again: a silent duplicate
                ],
            )],
            w,
        )
        .unwrap();
    // Prometheus answers success for all of them (OOOChunk.Insert refuses
    // a stored timestamp; the appender drops the sample silently).
    assert_eq!(outcome.samples_accepted, 4);
    assert!(outcome.discarded.is_empty());
    let outcome = db
        .append_limited(vec![series("m", &[(15, 7.0), (30, 8.0)])], w)
        .unwrap();
    // 15 is held (out of order): dropped; 30 is the last sample with
    // another value: refused as before.
    assert_eq!(
        outcome.discarded,
        vec![(DiscardReason::SampleDuplicateTimestamp, 1)]
    );
    let expected = vec![(10, 1.0), (15, 1.5), (20, 2.0), (30, 3.0)];
    assert_eq!(read(&db, "m"), expected);
    assert_eq!(db.stats().ooo_samples_appended, 1);
    drop(db);
    // Replay drops the same samples.
    assert_eq!(read(&open(tmp.path()), "m"), expected);
}

#[test]
fn out_of_order_samples_survive_a_restart_and_the_window_still_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let w = window(30 * MINUTE);
    let mut expected = minutes(0, 2 * HOUR + MINUTE);
    {
        let db = open(tmp.path());
        db.append_limited(
            vec![series(
                "m",
                &minutes(0, 2 * HOUR + MINUTE)
                    .into_iter()
                    .step_by(2)
                    .collect::<Vec<_>>(),
            )],
            w,
        )
        .unwrap();
        let odds: Vec<(i64, f64)> = minutes(0, 2 * HOUR)
            .into_iter()
            .skip(1)
            .step_by(2)
            .collect();
        let outcome = db.append_limited(vec![series("m", &odds)], w).unwrap();
        // Head max 120m: 90m and later.
        assert_eq!(outcome.samples_accepted, 15);
        expected.retain(|s| s.0 % (2 * MINUTE) == 0 || s.0 >= 90 * MINUTE);
        assert_eq!(read(&db, "m"), expected);
    }
    let db = open(tmp.path());
    assert_eq!(read(&db, "m"), expected);
    // The head's max time came back with the WAL: same bound as before.
    let outcome = db
        .append_limited(
            vec![series(
                "m",
                &[(89 * MINUTE, 0.0), (90 * MINUTE + 30_000, 0.5)],
            )],
            w,
        )
        .unwrap();
    assert_eq!(outcome.samples_accepted, 1);
    assert_eq!(outcome.discarded, vec![(DiscardReason::SampleTooOld, 1)]);
}

/// Blocks, their overlaps and what the head holds: (sum of samples in
/// blocks, whether two blocks overlap).
fn block_figures(db: &Tsdb) -> (u64, bool) {
    let blocks = db.blocks();
    let stored = blocks.iter().map(|b| b.stats.num_samples).sum();
    let overlap = blocks.windows(2).any(|p| p[1].min_time < p[0].max_time);
    (stored, overlap)
}

/// Cuts the in-order head, then out-of-order samples for ranges already in
/// blocks (their own overlapping block), for a range being cut (the same
/// block), and compaction merging the overlaps: each sample read and
/// stored once, before and after a restart.
#[test]
fn out_of_order_blocks_overlap_until_compaction_merges_them_and_each_sample_stays_once() {
    let tmp = tempfile::tempdir().unwrap();
    let w = window(5 * HOUR);
    let db = open(tmp.path());
    // Every other minute, 0..6h.
    let in_order: Vec<(i64, f64)> = minutes(0, 6 * HOUR).into_iter().step_by(2).collect();
    db.append_limited(vec![series("m", &in_order)], w).unwrap();
    let cut = db.cut_blocks(i64::MAX).unwrap();
    assert_eq!(
        cut.iter()
            .map(|b| (b.min_time, b.max_time))
            .collect::<Vec<_>>(),
        vec![(0, 2 * HOUR), (2 * HOUR, 4 * HOUR)]
    );
    // Odd minutes: some already in a block (1h..2h), some in the head (4h..5h).
    let late: Vec<(i64, f64)> = minutes(HOUR, 2 * HOUR)
        .into_iter()
        .chain(minutes(4 * HOUR, 5 * HOUR))
        .filter(|s| s.0 % (2 * MINUTE) != 0)
        .collect();
    let outcome = db.append_limited(vec![series("m", &late)], w).unwrap();
    assert_eq!(outcome.samples_accepted, late.len() as u64);
    let mut expected = in_order.clone();
    expected.extend(late.iter().copied());
    expected.sort_by_key(|s| s.0);
    assert_eq!(read(&db, "m"), expected);

    // More in-order data: [4h, 6h) is cut with its out-of-order samples,
    // then the late ones for [0, 2h) become a block overlapping the first.
    let more: Vec<(i64, f64)> = minutes(6 * HOUR, 8 * HOUR).into_iter().step_by(2).collect();
    db.append_limited(vec![series("m", &more)], w).unwrap();
    expected.extend(more.iter().copied());
    let cut = db.cut_blocks(i64::MAX).unwrap();
    assert_eq!(
        cut.iter()
            .map(|b| (b.min_time, b.max_time))
            .collect::<Vec<_>>(),
        vec![(4 * HOUR, 6 * HOUR), (0, 2 * HOUR)]
    );
    let (in_blocks, overlap) = block_figures(&db);
    assert!(overlap);
    let in_head = expected.iter().filter(|s| s.0 >= 6 * HOUR).count() as u64;
    assert_eq!(in_blocks + in_head, expected.len() as u64);
    // The head let go of everything it wrote, out-of-order samples too.
    assert_eq!(db.head_time_range().map(|r| r.0), Some(6 * HOUR));
    assert_eq!(read(&db, "m"), expected);

    // Restart: nothing comes back into the head twice.
    drop(db);
    let db = open(tmp.path());
    assert_eq!(read(&db, "m"), expected);
    assert_eq!(db.head_time_range().map(|r| r.0), Some(6 * HOUR));

    db.compact().unwrap();
    let (in_blocks, overlap) = block_figures(&db);
    assert!(!overlap, "{:?}", db.blocks());
    assert_eq!(in_blocks + in_head, expected.len() as u64);
    assert_eq!(read(&db, "m"), expected);
    // Flushing the rest leaves every sample in exactly one block.
    db.flush_head().unwrap();
    let (in_blocks, _) = block_figures(&db);
    assert_eq!(in_blocks, expected.len() as u64);
    drop(db);
    assert_eq!(read(&open(tmp.path()), "m"), expected);
}

/// A crash after a block's rename but before the WAL checkpoint leaves
/// the block and the old WAL: replay drops what the block holds (in-order
/// and out-of-order) and keeps the late samples that are not in it.
#[test]
fn a_crash_before_the_checkpoint_neither_loses_nor_doubles_out_of_order_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let w = window(5 * HOUR);
    let db = open(tmp.path());
    let in_order: Vec<(i64, f64)> = minutes(0, 4 * HOUR).into_iter().step_by(2).collect();
    db.append_limited(vec![series("m", &in_order)], w).unwrap();
    db.cut_blocks(i64::MAX).unwrap();
    // Late samples for the range in the block, then more in-order data.
    let late: Vec<(i64, f64)> = minutes(0, HOUR)
        .into_iter()
        .filter(|s| s.0 % (2 * MINUTE) != 0)
        .collect();
    db.append_limited(vec![series("m", &late)], w).unwrap();
    let more: Vec<(i64, f64)> = minutes(4 * HOUR, 6 * HOUR).into_iter().step_by(2).collect();
    db.append_limited(vec![series("m", &more)], w).unwrap();
    let mut expected: Vec<(i64, f64)> =
        in_order.iter().chain(&late).chain(&more).copied().collect();
    expected.sort_by_key(|s| s.0);
    db.close().unwrap();
    let saved_wal = tmp.path().join("wal-before-cut");
    support::copy_dir(&tmp.path().join("wal"), &saved_wal);
    // This cut writes [2h, 4h) and the late samples' own [0, 2h) block.
    let cut = db.cut_blocks(i64::MAX).unwrap();
    assert_eq!(cut.len(), 2);
    drop(db);
    // The crash: the blocks are in place, the checkpoint never happened.
    std::fs::remove_dir_all(tmp.path().join("wal")).unwrap();
    std::fs::rename(&saved_wal, tmp.path().join("wal")).unwrap();
    let db = open(tmp.path());
    assert_eq!(read(&db, "m"), expected);
    db.flush_head().unwrap();
    let (in_blocks, _) = block_figures(&db);
    assert_eq!(in_blocks, expected.len() as u64);
    assert_eq!(read(&db, "m"), expected);
}

/// A deleted out-of-order sample older than the head's in-order data stays
/// deleted through the next block cut (its tombstone is kept while the
/// head holds the sample) and a restart, and never reaches a block.
#[test]
fn deleted_out_of_order_samples_stay_deleted_through_cuts_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let w = window(5 * HOUR);
    let db = open(tmp.path());
    let in_order: Vec<(i64, f64)> = minutes(0, 4 * HOUR).into_iter().step_by(2).collect();
    db.append_limited(vec![series("m", &in_order)], w).unwrap();
    db.cut_blocks(i64::MAX).unwrap();
    // [0, 2h) is in a block; these two late samples are in the head only.
    let late = [(HOUR + MINUTE, -1.0), (HOUR + 3 * MINUTE, -3.0)];
    db.append_limited(vec![series("m", &late)], w).unwrap();
    db.delete_series(&[Matcher::equal("__name__", "m")], HOUR, HOUR + 2 * MINUTE)
        .unwrap();
    let mut expected: Vec<(i64, f64)> = in_order
        .iter()
        .copied()
        .filter(|s| !(HOUR..=HOUR + 2 * MINUTE).contains(&s.0))
        .collect();
    expected.push(late[1]);
    expected.sort_by_key(|s| s.0);
    assert_eq!(read(&db, "m"), expected);
    // A cut of an unrelated range prunes tombstones below the head's start.
    db.append_limited(vec![series("m", &[(7 * HOUR, 7.0)])], w)
        .unwrap();
    expected.push((7 * HOUR, 7.0));
    db.cut_blocks(4 * HOUR).unwrap();
    assert_eq!(read(&db, "m"), expected);
    drop(db);
    let db = open(tmp.path());
    assert_eq!(read(&db, "m"), expected);
    db.flush_head().unwrap();
    db.compact().unwrap();
    assert_eq!(read(&db, "m"), expected);
}

const CRASH_SERIES: i64 = 3;
/// How late each round's out-of-order sample is: more than the head keeps
/// in order after a cut, so some become blocks of their own.
const LATENESS: i64 = 90 * MINUTE;

fn crash_labels(i: i64) -> Labels {
    Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())])
}

/// Round `r`: per series an in-order sample at `r` minutes and, from round
/// 90, a late one 90 minutes (and 30 s) back, in one append.
fn crash_round(r: i64) -> Vec<SeriesSamples> {
    (0..CRASH_SERIES)
        .map(|i| {
            let v = (r * CRASH_SERIES + i) as f64;
            let mut samples = vec![Sample::new(r * MINUTE, v)];
            if r * MINUTE >= LATENESS {
                samples.push(Sample::new(r * MINUTE - LATENESS + 30_000, -v));
            }
            SeriesSamples {
                labels: crash_labels(i),
                samples,
                exemplars: Vec::new(),
            }
        })
        .collect()
}

/// Every series holds exactly rounds `0..=last` (both samples of each),
/// sorted; returns `last`.
fn check_rounds(db: &Tsdb) -> i64 {
    let found = db.select(&[], TimeRange::all()).unwrap();
    assert_eq!(found.len(), CRASH_SERIES as usize);
    let mut last = None;
    for series in &found {
        let i: i64 = series.labels.get("i").unwrap().parse().unwrap();
        let rounds = series.samples.iter().filter(|s| s.t % MINUTE == 0).count() as i64;
        let mut expected: Vec<Sample> = Vec::new();
        for r in 0..rounds {
            let round = crash_round(r);
            expected.extend(round[i as usize].samples.iter().copied());
        }
        expected.sort_by_key(|s| s.t);
        assert_eq!(series.samples, expected, "series {i}");
        assert!(last.is_none_or(|l| l == rounds - 1), "series differ");
        last = Some(rounds - 1);
    }
    last.unwrap()
}

fn samples_up_to(last: i64) -> u64 {
    let late_rounds = (last - LATENESS / MINUTE + 1).max(0);
    (CRASH_SERIES * (last + 1 + late_rounds)) as u64
}

const CRASH_CHILD_DIR: &str = "CAIRN_TSDB_OOO_CHILD_DIR";
const CRASH_CHILD_FAULT: &str = "CAIRN_TSDB_OOO_CHILD_FAULT";

/// The child: a round per append, a cut and compaction every 30 rounds;
/// the fault point is armed after the first cut (so the crash hits a cut
/// with late samples both inside the range and older than the head).
fn run_crash_child(dir: &str) {
    let db = open(Path::new(dir));
    let w = window(2 * HOUR);
    let stdout = std::io::stdout();
    for round in 0..(12 * 60) {
        db.append_limited(crash_round(round), w).unwrap();
        {
            let mut out = stdout.lock();
            writeln!(out, "acked {round}").unwrap();
            out.flush().unwrap();
        }
        if round == 200 {
            // Single-threaded child (`--test-threads=1`): nothing else
            // reads the environment meanwhile.
            std::env::set_var(
                "CAIRN_TSDB_FAULT",
                std::env::var(CRASH_CHILD_FAULT).unwrap(),
            );
        }
        if round % 30 == 0 {
            db.cut_blocks(i64::MAX).unwrap();
            db.compact().unwrap();
        }
    }
    writeln!(stdout.lock(), "done").unwrap();
}

fn ooo_crash_at(test_name: &str, fault: &str) {
    if let Ok(dir) = std::env::var(CRASH_CHILD_DIR) {
        run_crash_child(&dir);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_DIR, tmp.path())
        .env(CRASH_CHILD_FAULT, fault)
        .env_remove("CAIRN_TSDB_FAULT");
    let last_acked = support::run_until_fault(child, fault);
    assert!(last_acked > 200);

    let db = open(tmp.path());
    let last = check_rounds(&db);
    assert!(last >= last_acked, "lost acknowledged rounds after {last}");
    // Nothing is held twice: the head took back only what no block holds.
    db.flush_head().unwrap();
    let stored: u64 = db.blocks().iter().map(|b| b.stats.num_samples).sum();
    assert_eq!(stored, samples_up_to(last));
    // Carry on: more rounds, cuts, compaction, a restart, then everything
    // into blocks, each sample stored once.
    let w = window(2 * HOUR);
    for round in last + 1..last + 200 {
        db.append_limited(crash_round(round), w).unwrap();
    }
    db.cut_blocks(i64::MAX).unwrap();
    db.compact().unwrap();
    assert_eq!(check_rounds(&db), last + 199);
    drop(db);
    let db = open(tmp.path());
    assert_eq!(check_rounds(&db), last + 199);
    db.flush_head().unwrap();
    let stored: u64 = db.blocks().iter().map(|b| b.stats.num_samples).sum();
    assert_eq!(stored, samples_up_to(last + 199));
    assert_eq!(check_rounds(&db), last + 199);
}

#[test]
fn ooo_crash_while_writing_a_block() {
    ooo_crash_at("ooo_crash_while_writing_a_block", "block-writing");
}

#[test]
fn ooo_crash_after_a_block_is_renamed() {
    ooo_crash_at("ooo_crash_after_a_block_is_renamed", "block-after-rename");
}

#[test]
fn ooo_crash_after_the_head_drops_a_block_before_the_checkpoint() {
    ooo_crash_at(
        "ooo_crash_after_the_head_drops_a_block_before_the_checkpoint",
        "block-before-checkpoint",
    );
}

#[test]
fn ooo_crash_before_a_checkpoint_is_renamed() {
    ooo_crash_at(
        "ooo_crash_before_a_checkpoint_is_renamed",
        "checkpoint-before-rename",
    );
}
