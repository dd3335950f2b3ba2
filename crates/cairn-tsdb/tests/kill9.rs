//! A real `kill -9`: a child process (this test binary, re-run) appends
//! batches and reports each acknowledgement on stdout; the parent kills it
//! with SIGKILL mid-stream, reopens the database, and finds every
//! acknowledged sample.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use cairn_model::{Labels, Queryable, Sample, SeriesSamples, TimeRange};
use cairn_tsdb::{Tsdb, TsdbOptions};

const CHILD_ENV: &str = "CAIRN_TSDB_KILL9_CHILD_DIR";
const SERIES: i64 = 20;

fn batch(round: i64) -> Vec<SeriesSamples> {
    (0..SERIES)
        .map(|i| SeriesSamples {
            labels: Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())]),
            samples: vec![Sample::new(round * 1000, (round * SERIES + i) as f64)],
            exemplars: Vec::new(),
        })
        .collect()
}

/// The child: append until killed (or until stdout is gone).
fn run_child(dir: &str) {
    let options = TsdbOptions {
        wal_segment_size: 64 * 1024,
        ..TsdbOptions::default()
    };
    let db = Tsdb::open(std::path::Path::new(dir), options).unwrap();
    let stdout = std::io::stdout();
    for round in 0..1_000_000 {
        db.append(batch(round)).unwrap();
        let mut out = stdout.lock();
        if writeln!(out, "acked {round}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn acknowledged_samples_survive_kill_9() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        run_child(&dir);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_samples_survive_kill_9",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_acked = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(round) = line.strip_prefix("acked ") {
            let round: i64 = round.parse().unwrap();
            last_acked = Some(round);
            if round >= 300 {
                break;
            }
        }
    }
    // SIGKILL while the child keeps appending.
    child.kill().unwrap();
    child.wait().unwrap();
    let last_acked = last_acked.expect("the child acknowledged appends");

    let db = Tsdb::open(tmp.path(), TsdbOptions::default()).unwrap();
    let selected = db.select(&[], TimeRange::all()).unwrap();
    assert_eq!(selected.len(), SERIES as usize);
    for series in &selected {
        let i: i64 = series.labels.get("i").unwrap().parse().unwrap();
        // Every acknowledged round is there, in order, with its value; rounds
        // written but not yet acknowledged may be there too.
        assert!(
            series.samples.len() as i64 > last_acked,
            "{}",
            series.labels
        );
        for (round, sample) in series.samples.iter().enumerate() {
            let round = round as i64;
            assert_eq!(
                *sample,
                Sample::new(round * 1000, (round * SERIES + i) as f64)
            );
        }
    }
}
