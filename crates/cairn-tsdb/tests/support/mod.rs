//! Shared by the crash tests: runs a child test process (this same test
//! binary, re-run with an environment variable that makes it the writer)
//! until it parks at a fault point, then kills it; and copies data
//! directories to replay a crash's state.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Spawns `child` (stdout piped), reads its `acked <round>` lines until it
/// prints `fault-point <fault>`, kills it (SIGKILL by PID, std's
/// `Child::kill`) and returns the last acknowledged round.
pub fn run_until_fault(mut child: Command, fault: &str) -> i64 {
    let mut child = child
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_acked = None;
    let mut reached = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(round) = line.strip_prefix("acked ") {
            last_acked = Some(round.parse::<i64>().unwrap());
        } else if line == format!("fault-point {fault}") {
            reached = true;
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(reached, "the child never reached {fault}");
    last_acked.expect("the child acknowledged appends")
}

/// Copies directory `from` (recursively) to `to`, e.g. a database as it
/// was at a crash point.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `db.select(matchers, range)`, checked against what the PromQL engine
/// reads: `select_set` decoded series by series into one reused buffer (the
/// same series in the same order and the same samples bit for bit; the set
/// may also list series without a sample in `range`, read as empty).
pub fn select_checked(
    db: &cairn_tsdb::Tsdb,
    matchers: &[cairn_model::Matcher],
    range: cairn_model::TimeRange,
) -> Vec<cairn_model::Series> {
    use cairn_model::Queryable;
    let eager = db.select(matchers, range).unwrap();
    let set = db.select_set(matchers, range).unwrap();
    let mut buffer = Vec::new();
    let mut lazy = Vec::new();
    for i in 0..set.len() {
        buffer.clear();
        // Something left in the buffer must stay in front of what is appended.
        buffer.push(cairn_model::Sample::new(i64::MIN, 0.0));
        set.append_samples(i, &mut buffer);
        assert_eq!(buffer[0].t, i64::MIN);
        if buffer.len() > 1 {
            lazy.push((set.labels(i).clone(), buffer[1..].to_vec()));
        }
    }
    let bits = |samples: &[cairn_model::Sample]| -> Vec<(i64, u64)> {
        samples.iter().map(|s| (s.t, s.v.to_bits())).collect()
    };
    let eager_bits: Vec<_> = eager
        .iter()
        .map(|s| (s.labels.clone(), bits(&s.samples)))
        .collect();
    let lazy_bits: Vec<_> = lazy.iter().map(|(l, s)| (l.clone(), bits(s))).collect();
    assert_eq!(lazy_bits, eager_bits, "select_set differs from select");
    let labels = set.into_labels();
    assert!(labels.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    eager
}
