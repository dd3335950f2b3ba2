//! Blocks end to end through the real binary: write, let the server cut
//! blocks and compact them, restart a fresh process, and read every sample
//! exactly once; and the same after `kill -9` (by PID) at the worst
//! moments of block writing and compaction (`CAIRN_TSDB_FAULT` parks the
//! maintenance thread there), with no temporary folder left after start-up.

mod support;

use std::path::Path;

use support::{dir_names, now_minute_ms, points, series, write_request, Cairn, DEADLINE};

const SERIES: usize = 10;
const HOURS: i64 = 30;
const MINUTE: i64 = 60_000;
const CONFIG: &str = "storage:\n  maintenance_interval: 1s\n";

/// Pushes `HOURS` hours of one sample a minute for each series, ending an
/// hour ago, an hour per request; every request must be acknowledged.
fn push_history(cairn: &Cairn, first: i64) {
    for hour in 0..HOURS {
        let timeseries = (0..SERIES)
            .map(|s| {
                let samples: Vec<(i64, f64)> = (0..60)
                    .map(|m| {
                        let n = hour * 60 + m;
                        (first + n * MINUTE, (n * 100 + s as i64) as f64)
                    })
                    .collect();
                series(&[("__name__", "kept"), ("s", &s.to_string())], &samples)
            })
            .collect();
        let (status, body) = cairn.push(Some("t"), &write_request(timeseries));
        assert_eq!(status, 200, "hour {hour}: {body}");
    }
}

/// Every sample comes back exactly once, from blocks and head alike.
fn check_exactly_once(cairn: &Cairn, first: i64) {
    let last = first + (HOURS * 60 - 1) * MINUTE;
    let result = cairn.query("t", &format!("kept[{}h]", HOURS + 1), last as f64 / 1000.0);
    let got: Vec<Vec<(i64, f64)>> = result.as_array().unwrap().iter().map(points).collect();
    assert_eq!(got.len(), SERIES);
    for (position, points) in got.iter().enumerate() {
        let s: i64 = result[position]["metric"]["s"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let expected: Vec<(i64, f64)> = (0..HOURS * 60)
            .map(|n| (first + n * MINUTE, (n * 100 + s) as f64))
            .collect();
        assert_eq!(points, &expected, "series {s}");
    }
}

/// Highest compaction level among the tenant's blocks (0: none).
fn top_level(blocks: &Path) -> u64 {
    dir_names(blocks)
        .iter()
        .filter_map(|name| std::fs::read(blocks.join(name).join("meta.json")).ok())
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .filter_map(|meta| meta["compaction"]["level"].as_u64())
        .max()
        .unwrap_or(0)
}

/// No two blocks overlap in time (nothing here is imported, so an overlap
/// would be a sample stored twice) and they hold at most what was written.
fn check_no_sample_twice_on_disk(blocks: &Path) {
    let mut ranges: Vec<(i64, i64, u64)> = dir_names(blocks)
        .iter()
        .map(|name| {
            let bytes = std::fs::read(blocks.join(name).join("meta.json")).unwrap();
            let meta: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            (
                meta["minTime"].as_i64().unwrap(),
                meta["maxTime"].as_i64().unwrap(),
                meta["stats"]["numSamples"].as_u64().unwrap(),
            )
        })
        .collect();
    ranges.sort();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{ranges:?}");
    let stored: u64 = ranges.iter().map(|r| r.2).sum();
    assert!(stored <= (SERIES as i64 * HOURS * 60) as u64, "{ranges:?}");
}

fn first_sample() -> i64 {
    now_minute_ms() - (HOURS + 1) * 60 * MINUTE
}

#[test]
fn write_cut_compact_restart_returns_every_sample_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let blocks = data.join("tenants").join("t").join("blocks");
    let first = first_sample();
    let cairn = Cairn::start(&data, CONFIG);
    push_history(&cairn, first);
    wait_for_compaction(&cairn, &blocks);
    check_exactly_once(&cairn, first);
    let status = cairn.terminate();
    assert!(status.success());
    let cairn = Cairn::restart_after_kill(&data);
    check_exactly_once(&cairn, first);
    assert!(top_level(&blocks) >= 2);
}

/// Waits (bounded by `DEADLINE`) until compaction has left at least two
/// top-level blocks.
fn wait_for_compaction(cairn: &Cairn, blocks: &Path) {
    let started = std::time::Instant::now();
    while top_level(blocks) < 2 {
        assert!(
            started.elapsed() < DEADLINE,
            "no compaction; log:\n{}",
            cairn.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Pushes with the maintenance thread set to park at `fault`, kills the
/// server by PID once it is there, restarts it and checks the data.
fn crash_at(fault: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let blocks = data.join("tenants").join("t").join("blocks");
    let first = first_sample();
    let cairn = Cairn::start_with_env(&data, CONFIG, &[("CAIRN_TSDB_FAULT", fault)]);
    push_history(&cairn, first);
    cairn.wait_for_stdout(&format!("fault-point {fault}"));
    cairn.kill9();
    // Restart with maintenance out of the way, to see what start-up left.
    let config = data.with_extension("yaml");
    std::fs::write(&config, "storage:\n  maintenance_interval: 1h\n").unwrap();
    let cairn = Cairn::restart_after_kill(&data);
    let left = dir_names(&blocks);
    assert!(left.iter().all(|n| !n.contains(".tmp-for-")), "{left:?}");
    check_no_sample_twice_on_disk(&blocks);
    check_exactly_once(&cairn, first);
    assert!(cairn.terminate().success());
    // The restarted server finishes the interrupted work.
    std::fs::write(&config, CONFIG).unwrap();
    let cairn = Cairn::restart_after_kill(&data);
    wait_for_compaction(&cairn, &blocks);
    check_exactly_once(&cairn, first);
}

#[test]
fn kill_9_while_writing_a_block() {
    crash_at("block-writing");
}

#[test]
fn kill_9_after_a_block_is_renamed_before_the_checkpoint() {
    crash_at("block-before-checkpoint");
}

#[test]
fn kill_9_while_compacting() {
    crash_at("compaction-writing");
}

#[test]
fn kill_9_after_a_compacted_block_is_renamed_before_its_sources_go() {
    crash_at("compaction-after-rename");
}
