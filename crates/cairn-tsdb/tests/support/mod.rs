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
