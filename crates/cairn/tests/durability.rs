//! Acknowledged means durable: `kill -9` after a 2xx loses nothing, and a
//! WAL with a torn last record still starts.

mod support;

use support::{now_minute_ms, points, series, write_request, Cairn};

const SERIES: usize = 20;
const BATCHES: i64 = 40;
const SAMPLES_PER_BATCH: i64 = 10;
const STEP_MS: i64 = 15_000;

fn push_batches(cairn: &Cairn, tenant: &str, base: i64) {
    for batch in 0..BATCHES {
        let timeseries = (0..SERIES)
            .map(|s| {
                let samples: Vec<(i64, f64)> = (0..SAMPLES_PER_BATCH)
                    .map(|i| {
                        let n = batch * SAMPLES_PER_BATCH + i;
                        (base + n * STEP_MS, (n * 1000 + s as i64) as f64)
                    })
                    .collect();
                series(
                    &[("__name__", "acked"), ("series", &s.to_string())],
                    &samples,
                )
            })
            .collect();
        let (status, body) = cairn.push(Some(tenant), &write_request(timeseries));
        assert_eq!(status, 200, "batch {batch}: {body}");
    }
}

/// Every sample of every series that a query over the whole range returns.
fn all_points(cairn: &Cairn, tenant: &str, base: i64) -> Vec<Vec<(i64, f64)>> {
    let last = base + (BATCHES * SAMPLES_PER_BATCH - 1) * STEP_MS;
    let result = cairn.query_range(
        tenant,
        "acked",
        base as f64 / 1000.0,
        last as f64 / 1000.0,
        (STEP_MS / 1000) as f64,
    );
    result.iter().map(points).collect()
}

fn expected(base: i64, s: usize, samples: i64) -> Vec<(i64, f64)> {
    (0..samples)
        .map(|n| (base + n * STEP_MS, (n * 1000 + s as i64) as f64))
        .collect()
}

#[test]
fn kill_9_after_acknowledgement_loses_no_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cairn = Cairn::start(&data, "");
    let base = now_minute_ms() - 3 * 3_600_000;
    push_batches(&cairn, "durable", base);
    cairn.kill9();

    let cairn = Cairn::restart_after_kill(&data);
    let got = all_points(&cairn, "durable", base);
    assert_eq!(got.len(), SERIES);
    let total = BATCHES * SAMPLES_PER_BATCH;
    for (s, points) in got.iter().enumerate() {
        // Series sort by their `series` label as strings: "0", "1", "10", ...
        let label_value: usize = {
            let mut names: Vec<String> = (0..SERIES).map(|i| i.to_string()).collect();
            names.sort();
            names[s].parse().unwrap()
        };
        assert_eq!(
            points,
            &expected(base, label_value, total),
            "series {label_value}"
        );
    }
}

#[test]
fn clean_shutdown_on_sigterm_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cairn = Cairn::start(&data, "storage:\n  wal_fsync: always\n");
    let base = now_minute_ms() - 3 * 3_600_000;
    push_batches(&cairn, "t", base);
    let status = cairn.terminate();
    assert!(status.success(), "exit status {status:?}");

    let cairn = Cairn::restart_after_kill(&data);
    let got = all_points(&cairn, "t", base);
    assert_eq!(got.len(), SERIES);
    assert!(got
        .iter()
        .all(|p| p.len() == (BATCHES * SAMPLES_PER_BATCH) as usize));
}

#[test]
fn a_torn_last_wal_record_is_cut_and_start_up_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cairn = Cairn::start(&data, "");
    let base = now_minute_ms() - 3 * 3_600_000;
    push_batches(&cairn, "torn", base);
    cairn.kill9();

    // Tear the newest WAL segment: drop the last 5 bytes, as a crash in the
    // middle of a write would leave it.
    let wal_dir = data.join("tenants").join("torn").join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    segments.sort();
    let last = segments.last().expect("a WAL segment");
    let len = std::fs::metadata(last).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(last).unwrap();
    file.set_len(len - 5).unwrap();
    drop(file);

    let cairn = Cairn::restart_after_kill(&data);
    let got = all_points(&cairn, "torn", base);
    assert_eq!(got.len(), SERIES);
    // At most the torn last record (part of the last batch) is lost;
    // everything before it is intact.
    let min_kept = ((BATCHES - 1) * SAMPLES_PER_BATCH) as usize;
    for points in &got {
        assert!(
            points.len() >= min_kept,
            "lost more than the torn record: {}",
            points.len()
        );
    }
    // New writes are accepted after the repair.
    let after = base + BATCHES * SAMPLES_PER_BATCH * STEP_MS;
    let request = write_request(vec![series(
        &[("__name__", "after_repair")],
        &[(after, 1.0)],
    )]);
    assert_eq!(cairn.push(Some("torn"), &request).0, 200);
    assert!(
        cairn.log().contains("WARN"),
        "expected a warning about the torn WAL:\n{}",
        cairn.log()
    );
}

/// A second `cairn serve` on a data directory in use refuses to start (it
/// would interleave WAL segments with the first) and names the lock; the
/// first server keeps serving what it acknowledged.
#[test]
fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = Cairn::start(&data, "");
    let base = now_minute_ms() - 2 * 3_600_000;
    push_batches(&first, "t", base);

    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("serve")
        .arg("--http.listen-address")
        .arg("127.0.0.1:0")
        .arg("--storage.path")
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            second.kill().unwrap();
            second.wait().unwrap();
            panic!("a second server started on a data directory in use");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("is locked by another process"),
        "stderr: {stderr}"
    );

    let every_series_whole = |got: Vec<Vec<(i64, f64)>>| {
        got.len() == SERIES
            && got
                .iter()
                .all(|points| points.len() as i64 == BATCHES * SAMPLES_PER_BATCH)
    };
    assert!(every_series_whole(all_points(&first, "t", base)));
    // Stopped by kill -9, the lock goes with the process: a restart works.
    first.kill9();
    let restarted = Cairn::restart_after_kill(&data);
    assert!(every_series_whole(all_points(&restarted, "t", base)));
}
