//! `cairn import`: backfilled blocks reach a running server within its
//! maintenance interval (a file and standard input, an existing and a new
//! tenant); malformed, out-of-order and overlapping input is refused with
//! its line number and leaves nothing behind.

mod support;

use std::fmt::Write as _;

use support::{
    cairn_import, dir_names, now_minute_ms, points, series, write_request, Cairn, DEADLINE,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// OpenMetrics text: `series` counters `name_total{series="i"}`, one sample
/// a minute over `[from, to)`, interleaved by time; value `n * 10 + i`.
fn openmetrics(name: &str, series: usize, from: i64, to: i64) -> String {
    let mut out = format!("# HELP {name} Imported by the test.\n# TYPE {name} counter\n");
    for t in (from..to).step_by(MINUTE as usize) {
        for s in 0..series {
            let n = (t - from) / MINUTE;
            // Seconds with a fraction, as OpenMetrics writes them.
            writeln!(
                out,
                "{name}_total{{series=\"{s}\"}} {} {}.{:03}",
                n * 10 + s as i64,
                t / 1000,
                t % 1000
            )
            .unwrap();
        }
    }
    out.push_str("# EOF\n");
    out
}

fn expected(series: usize, from: i64, to: i64) -> Vec<(i64, f64)> {
    (from..to)
        .step_by(MINUTE as usize)
        .map(|t| (t, ((t - from) / MINUTE * 10 + series as i64) as f64))
        .collect()
}

/// Raw samples of `selector` in `(end - range, end]`, per series (sorted
/// by the `series` label as strings).
fn raw(
    cairn: &Cairn,
    tenant: &str,
    selector: &str,
    end: i64,
    range_h: i64,
) -> Vec<Vec<(i64, f64)>> {
    let result = cairn.query(
        tenant,
        &format!("{selector}[{range_h}h]"),
        end as f64 / 1000.0,
    );
    result.as_array().unwrap().iter().map(points).collect()
}

/// Polls until `check` holds, at most [`DEADLINE`].
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn imports_reach_a_running_server_and_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cairn = Cairn::start(&data, "storage:\n  maintenance_interval: 1s\n");
    // Live data in the head of tenant `t1`: the last 20 minutes.
    let now = now_minute_ms();
    let live: Vec<(i64, f64)> = (0..20)
        .map(|i| (now - (20 - i) * MINUTE, i as f64))
        .collect();
    let (status, body) = cairn.push(
        Some("t1"),
        &write_request(vec![series(&[("__name__", "live")], &live)]),
    );
    assert_eq!(status, 200, "{body}");

    // A file: three days ago, 12 hours of 5 series.
    let old_from = now - 3 * 24 * HOUR - (now % (2 * HOUR));
    let old_to = old_from + 12 * HOUR;
    let file = dir.path().join("old.om");
    std::fs::write(&file, openmetrics("imported", 5, old_from, old_to)).unwrap();
    let (status, stderr) = cairn_import(&data, &["--tenant", "t1", file.to_str().unwrap()], None);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("imported 3600 samples of 5 series into 6 blocks"),
        "{stderr}"
    );

    // Standard input, into the current block range of t1 (newer than the
    // head's oldest sample) and into a tenant that does not exist yet.
    let recent_from = now - 100 * MINUTE;
    let recent = openmetrics("recent", 2, recent_from, now - 5 * MINUTE);
    let (status, stderr) = cairn_import(&data, &["--tenant", "t1", "-"], Some(recent.as_bytes()));
    assert!(status.success(), "{stderr}");
    let (status, stderr) = cairn_import(&data, &["--tenant", "t2", "-"], Some(recent.as_bytes()));
    assert!(status.success(), "{stderr}");

    // Blocks are picked up one by one: poll until everything is there,
    // then check it exactly.
    let check_all = |cairn: &Cairn, strict: bool| -> bool {
        let old = raw(cairn, "t1", "imported_total", old_to - 1, 13);
        let recent_t1 = raw(cairn, "t1", "recent_total", now, 3);
        let recent_t2 = raw(cairn, "t2", "recent_total", now, 3);
        let live_got = raw(cairn, "t1", "live", now, 1);
        let want_old: Vec<_> = (0..5).map(|s| expected(s, old_from, old_to)).collect();
        let want_recent: Vec<_> = (0..2)
            .map(|s| expected(s, recent_from, now - 5 * MINUTE))
            .collect();
        if strict {
            assert_eq!(old, want_old);
            assert_eq!(recent_t1, want_recent);
            assert_eq!(recent_t2, want_recent);
            assert_eq!(live_got, vec![live.clone()]);
        }
        old == want_old
            && recent_t1 == want_recent
            && recent_t2 == want_recent
            && live_got == vec![live.clone()]
    };
    eventually("the imported blocks to be picked up", || {
        check_all(&cairn, false)
    });
    assert!(check_all(&cairn, true));
    assert!(cairn.log().contains("new block picked up"));
    assert!(cairn.log().contains("new tenant directory picked up"));

    // A crash and a fresh process: every sample once, the head's WAL too
    // (the imported block that ends after it must not hide it).
    cairn.kill9();
    let cairn = Cairn::restart_after_kill(&data);
    assert!(check_all(&cairn, true), "after restart");
    assert!(dir_names(&data.join("import")).iter().all(|n| n == "lock"));
}

#[test]
fn malformed_input_is_refused_with_its_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let blocks = data.join("tenants").join("t").join("blocks");
    let cases: &[(&str, &str)] = &[
        ("a 1 1\nb{x=\"1\"} 2 1\nc{x=1} 3 1\n# EOF\n", "line 3"),
        ("a 1 1\na 2\n# EOF\n", "line 2: missing timestamp"),
        (
            "# TYPE a countr\na 1 1\n# EOF\n",
            "line 1: unknown metric type",
        ),
        ("a 1 1\n# EOF\na 2 2\n", "line 3: data after `# EOF`"),
        ("a 1 1\na 2 2\n", "does not end with `# EOF`"),
        ("a 1 1\na one 2\n# EOF\n", "line 2: invalid sample value"),
        ("a 1 1\n# a comment\n# EOF\n", "line 2"),
        (
            "a{x=\"1\",x=\"2\"} 1 1\n# EOF\n",
            "line 1: label \"x\" appears twice",
        ),
        (
            "a 1 1\nb 1 1\na 2 0.5\n# EOF\n",
            "line 3: sample of a{} at 500 ms is not after its previous sample at 1000 ms (line 1)",
        ),
        ("a 1 1\na 1 1\n# EOF\n", "(line 1)"),
    ];
    for (input, message) in cases {
        let file = dir.path().join("bad.om");
        std::fs::write(&file, input).unwrap();
        let (status, stderr) =
            cairn_import(&data, &["--tenant", "t", file.to_str().unwrap()], None);
        assert!(!status.success(), "{input:?} was accepted");
        assert!(stderr.contains(message), "{input:?}: {stderr}");
        assert!(stderr.contains("nothing imported"), "{stderr}");
        assert!(
            dir_names(&blocks).is_empty(),
            "{input:?} left {:?}",
            dir_names(&blocks)
        );
    }
    // The Prometheus format: milliseconds, no `# EOF`, comments allowed.
    let file = dir.path().join("ok.prom");
    std::fs::write(&file, "# a comment\na{x=\"1\"} 1 1000\na{x=\"1\"} 2 2000\n").unwrap();
    let (status, stderr) = cairn_import(
        &data,
        &[
            "--tenant",
            "t",
            "--format",
            "prometheus",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(status.success(), "{stderr}");
    assert_eq!(dir_names(&blocks).len(), 1);
    // An invalid tenant.
    let (status, stderr) = cairn_import(&data, &["--tenant", "a/b", file.to_str().unwrap()], None);
    assert!(!status.success());
    assert!(stderr.contains("invalid tenant"), "{stderr}");
}

#[test]
fn overlapping_imports_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let blocks = data.join("tenants").join("t").join("blocks");
    let from = 1_700_000_000_000 - 1_700_000_000_000 % (2 * HOUR);
    let first = dir.path().join("first.om");
    std::fs::write(&first, openmetrics("m", 3, from, from + 5 * HOUR)).unwrap();
    let (status, stderr) = cairn_import(&data, &["--tenant", "t", first.to_str().unwrap()], None);
    assert!(status.success(), "{stderr}");
    let written = dir_names(&blocks);
    assert_eq!(written.len(), 3);
    // The same series in an overlapping time: refused, at the first line of
    // the overlapping series (series 1 at from + 4h, line 3 of this file).
    let mut second = String::from("# TYPE m counter\n");
    writeln!(
        second,
        "m_total{{series=\"9\"}} 1 {}",
        (from + 4 * HOUR) / 1000
    )
    .unwrap();
    writeln!(
        second,
        "m_total{{series=\"1\"}} 1 {}",
        (from + 4 * HOUR) / 1000
    )
    .unwrap();
    second.push_str("# EOF\n");
    let (status, stderr) = cairn_import(&data, &["--tenant", "t", "-"], Some(second.as_bytes()));
    assert!(!status.success());
    assert!(stderr.contains("line 3: m_total{series=\"1\"}"), "{stderr}");
    assert!(
        stderr.contains("overlaps the tenant's existing block"),
        "{stderr}"
    );
    assert_eq!(dir_names(&blocks), written);
    // Other series in the same time, and the same series later, are fine.
    let mut third = String::from("# TYPE m counter\n");
    writeln!(
        third,
        "m_total{{series=\"9\"}} 1 {}",
        (from + 4 * HOUR) / 1000
    )
    .unwrap();
    writeln!(
        third,
        "m_total{{series=\"1\"}} 1 {}",
        (from + 6 * HOUR) / 1000
    )
    .unwrap();
    third.push_str("# EOF\n");
    let (status, stderr) = cairn_import(&data, &["--tenant", "t", "-"], Some(third.as_bytes()));
    assert!(status.success(), "{stderr}");
    assert_eq!(dir_names(&blocks).len(), 5);
    // Imports are read back by a server started afterwards.
    let cairn = Cairn::start(&data, "");
    let got = raw(&cairn, "t", "m_total", from + 7 * HOUR, 8);
    assert_eq!(got.len(), 4);
    assert_eq!(got[1].len(), 5 * 60 + 1);
    assert_eq!(got[0], expected(0, from, from + 5 * HOUR));
}
