//! Unit tests of the subtle parts, over a tiny in-memory [`Queryable`].

use cairn_model::{
    Label, Labels, Matcher, Queryable, Sample, Series, StorageError, TimeRange, STALE_NAN,
};

use crate::{Engine, EngineOptions, QueryError, QueryOptions, Value};

/// Series kept in memory, sorted by labels.
#[derive(Default)]
pub(crate) struct MemQueryable {
    pub(crate) series: Vec<Series>,
}

impl MemQueryable {
    pub fn add(&mut self, labels: &[(&str, &str)], samples: &[(i64, f64)]) {
        let labels = Labels::new(labels.iter().map(|(n, v)| Label::new(*n, *v)).collect());
        self.series.push(Series {
            labels,
            samples: samples.iter().map(|(t, v)| Sample::new(*t, *v)).collect(),
        });
        self.series.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
}

impl Queryable for MemQueryable {
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
        Ok(self
            .series
            .iter()
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get(&m.name).unwrap_or("")))
            })
            .map(|s| Series {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|p| range.contains(p.t))
                    .copied()
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }

    fn label_names(&self, _: &[Matcher], _: TimeRange) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }

    fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
}

fn engine() -> Engine {
    Engine::new(EngineOptions::default())
}

fn instant(q: &MemQueryable, query: &str, t: i64) -> Result<Value, QueryError> {
    engine()
        .instant_query(q, query, t, &QueryOptions::default())
        .map(|r| r.value)
}

fn vector_values(v: Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
        other => panic!("expected vector, got {other:?}"),
    }
}

const MIN: i64 = 60_000;

/// `0 10 20 ...` every minute.
fn counter(q: &mut MemQueryable, name: &str, n: i64, step: f64) {
    let samples: Vec<(i64, f64)> = (0..=n).map(|i| (i * MIN, i as f64 * step)).collect();
    q.add(&[("__name__", name)], &samples);
}

#[test]
fn lookback_window_is_left_open() {
    let mut q = MemQueryable::default();
    q.add(&[("__name__", "m")], &[(0, 1.0)]);
    assert_eq!(
        vector_values(instant(&q, "m", 5 * MIN - 1).unwrap()).len(),
        1
    );
    // At exactly t + 5m the sample falls out of (t-5m, t].
    assert!(vector_values(instant(&q, "m", 5 * MIN).unwrap()).is_empty());
}

#[test]
fn stale_marker_hides_the_series() {
    let mut q = MemQueryable::default();
    q.add(
        &[("__name__", "m")],
        &[(0, 1.0), (MIN, STALE_NAN), (3 * MIN, 2.0)],
    );
    assert_eq!(vector_values(instant(&q, "m", 30_000).unwrap()).len(), 1);
    assert!(vector_values(instant(&q, "m", 2 * MIN).unwrap()).is_empty());
    assert_eq!(vector_values(instant(&q, "m", 3 * MIN).unwrap())[0].1, 2.0);
}

#[test]
fn stale_markers_are_never_in_range_vectors() {
    let mut q = MemQueryable::default();
    q.add(
        &[("__name__", "m")],
        &[(0, 1.0), (MIN, STALE_NAN), (2 * MIN, 2.0)],
    );
    match instant(&q, "m[5m]", 2 * MIN).unwrap() {
        Value::Matrix(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].samples.len(), 2);
            assert!(m[0].samples.iter().all(|s| !s.v.is_nan()));
        }
        other => panic!("expected matrix, got {other:?}"),
    }
    let counted = vector_values(instant(&q, "count_over_time(m[5m])", 2 * MIN).unwrap());
    assert_eq!(counted[0].1, 2.0);
}

#[test]
fn rate_compensates_counter_resets() {
    let mut q = MemQueryable::default();
    // 0 10 20 5 15 : one reset, true increase 10+10+5+10 = 35 over 4 minutes.
    q.add(
        &[("__name__", "c_total")],
        &[
            (0, 0.0),
            (MIN, 10.0),
            (2 * MIN, 20.0),
            (3 * MIN, 5.0),
            (4 * MIN, 15.0),
        ],
    );
    let v = vector_values(instant(&q, "increase(c_total[4m])", 4 * MIN).unwrap());
    // Window (0, 4m]: samples at 1m..4m, raw increase 10+5+10=25 over 3m,
    // extrapolated to the 4m window start: 25 * 4/3.
    assert!((v[0].1 - 25.0 * 4.0 / 3.0).abs() < 1e-9, "{v:?}");
    assert_eq!(v[0].0, "{}");
}

#[test]
fn rate_extrapolation_stops_at_counter_zero() {
    let mut q = MemQueryable::default();
    q.add(
        &[("__name__", "c_total")],
        &[(2 * MIN, 0.2), (3 * MIN, 1.2)],
    );
    let v = vector_values(instant(&q, "increase(c_total[5m])", 3 * MIN).unwrap());
    // The window start is far, so extrapolation would be half an interval
    // (30s), but the counter's zero point is only 12s before the first
    // sample: (60 + 12 + 0) / 60 * 1.
    assert!((v[0].1 - 1.2).abs() < 1e-9, "{v:?}");
}

#[test]
fn range_query_walks_steps() {
    let mut q = MemQueryable::default();
    counter(&mut q, "c_total", 20, 10.0);
    let r = engine()
        .range_query(
            &q,
            "rate(c_total[2m])",
            5 * MIN,
            10 * MIN,
            MIN,
            &QueryOptions::default(),
        )
        .unwrap();
    match r.value {
        Value::Matrix(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].samples.len(), 6);
            for s in &m[0].samples {
                assert!((s.v - 10.0 / 60.0).abs() < 1e-9);
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sort_puts_nan_last_both_ways() {
    let mut q = MemQueryable::default();
    q.add(&[("__name__", "m"), ("i", "a")], &[(0, f64::NAN)]);
    q.add(&[("__name__", "m"), ("i", "b")], &[(0, 2.0)]);
    q.add(&[("__name__", "m"), ("i", "c")], &[(0, 1.0)]);
    let asc = vector_values(instant(&q, "sort(m)", 0).unwrap());
    assert_eq!(asc[0].1, 1.0);
    assert!(asc[2].1.is_nan());
    let desc = vector_values(instant(&q, "sort_desc(m)", 0).unwrap());
    assert_eq!(desc[0].1, 2.0);
    assert!(desc[2].1.is_nan());
}

#[test]
fn topk_prefers_numbers_over_nan() {
    let mut q = MemQueryable::default();
    q.add(&[("__name__", "m"), ("i", "a")], &[(0, f64::NAN)]);
    q.add(&[("__name__", "m"), ("i", "b")], &[(0, 2.0)]);
    q.add(&[("__name__", "m"), ("i", "c")], &[(0, 1.0)]);
    let top = vector_values(instant(&q, "topk(2, m)", 0).unwrap());
    assert_eq!(top.iter().map(|x| x.1).collect::<Vec<_>>(), vec![2.0, 1.0]);
    let bottom = vector_values(instant(&q, "bottomk(2, m)", 0).unwrap());
    assert_eq!(
        bottom.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![1.0, 2.0]
    );
    // With k larger than the number of numbers, NaN comes last.
    let all = vector_values(instant(&q, "topk(3, m)", 0).unwrap());
    assert!(all[2].1.is_nan());
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let q = MemQueryable::default();
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(matches!(instant(&q, &deep, 0), Err(QueryError::BadData(_))));
    let chain = vec!["1"; 20000].join("+");
    assert!(matches!(
        instant(&q, &chain, 0),
        Err(QueryError::BadData(_))
    ));
    let unary = format!("{}1", "-".repeat(20000));
    assert!(matches!(
        instant(&q, &unary, 0),
        Err(QueryError::BadData(_))
    ));
}

#[test]
fn offsets_and_at_modifier() {
    let mut q = MemQueryable::default();
    counter(&mut q, "c", 10, 1.0);
    assert_eq!(
        vector_values(instant(&q, "c offset 2m", 5 * MIN).unwrap())[0].1,
        3.0
    );
    assert_eq!(
        vector_values(instant(&q, "c offset -2m", 5 * MIN).unwrap())[0].1,
        7.0
    );
    assert_eq!(
        vector_values(instant(&q, "c @ 120", 5 * MIN).unwrap())[0].1,
        2.0
    );
    assert_eq!(
        vector_values(instant(&q, "c @ end()", 5 * MIN).unwrap())[0].1,
        5.0
    );
}

#[test]
fn binary_matching_and_name_dropping() {
    let mut q = MemQueryable::default();
    q.add(&[("__name__", "a"), ("j", "x")], &[(0, 4.0)]);
    q.add(&[("__name__", "b"), ("j", "x")], &[(0, 2.0)]);
    let v = vector_values(instant(&q, "a / b", 0).unwrap());
    assert_eq!(v, vec![("{j=\"x\"}".to_string(), 2.0)]);
    let v = vector_values(instant(&q, "a > 3", 0).unwrap());
    assert_eq!(v, vec![("a{j=\"x\"}".to_string(), 4.0)]);
    let v = vector_values(instant(&q, "a > bool 5", 0).unwrap());
    assert_eq!(v, vec![("{j=\"x\"}".to_string(), 0.0)]);
}

#[test]
fn max_samples_is_enforced() {
    let mut q = MemQueryable::default();
    counter(&mut q, "c", 100, 1.0);
    let e = Engine::new(EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    });
    let r = e.range_query(&q, "c", 0, 100 * MIN, MIN, &QueryOptions::default());
    assert!(matches!(r, Err(QueryError::TooManySamples(_))));
}

#[test]
fn annotation_positions_point_at_the_sub_expression() {
    let mut q = MemQueryable::default();
    q.add(&[("__name__", "foo")], &[(0, 1.0), (MIN, 2.0)]);
    let r = engine()
        .instant_query(&q, "sum(rate(foo[5m] ))", MIN, &QueryOptions::default())
        .unwrap();
    assert_eq!(
        r.annotations.infos,
        vec!["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"foo\" (1:10)".to_string()]
    );
}

#[test]
fn nesting_up_to_the_limit_fits_a_small_thread_stack() {
    // Server worker threads may have 2 MiB stacks; the deepest accepted
    // query must evaluate there.
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let mut q = MemQueryable::default();
            counter(&mut q, "c_total", 30, 1.0);
            // Each level below is one or two AST nodes; the limit is 200.
            let depth = 195;
            let queries = [
                format!("{}c_total{}", "abs(".repeat(depth), ")".repeat(depth)),
                format!("{}c_total{}", "sum(".repeat(depth), ")".repeat(depth)),
                format!(
                    "{}c_total{}",
                    "(1 + ".repeat(depth / 2),
                    ")".repeat(depth / 2)
                ),
                format!(
                    "{}rate(c_total[5m]){}",
                    "max_over_time(".repeat(depth / 3),
                    "[5m:1m])".repeat(depth / 3)
                ),
            ];
            for query in &queries {
                let r = engine().range_query(
                    &q,
                    query,
                    10 * MIN,
                    20 * MIN,
                    MIN,
                    &QueryOptions::default(),
                );
                assert!(r.is_ok(), "{query}: {r:?}");
            }
            let too_deep = format!("{}c_total{}", "abs(".repeat(300), ")".repeat(300));
            assert!(matches!(
                instant(&q, &too_deep, 0),
                Err(QueryError::BadData(_))
            ));
        })
        .unwrap();
    handle.join().unwrap();
}

/// Timing smoke test: `cargo test --release -p cairn-promql --lib perf -- --ignored --nocapture`.
#[test]
#[ignore]
fn perf_smoke() {
    let mut q = MemQueryable::default();
    let per_series = 2880;
    for i in 0..1000 {
        let job = format!("j{}", i % 10);
        let inst = format!("i{i}");
        let samples: Vec<(i64, f64)> = (0..per_series)
            .map(|k| (k as i64 * 30_000, (k * (i % 7 + 1)) as f64))
            .collect();
        q.add(
            &[("__name__", "x_total"), ("job", &job), ("instance", &inst)],
            &samples,
        );
    }
    let day = 86_400_000;
    for query in [
        "x_total",
        "rate(x_total[5m])",
        "sum by (job) (rate(x_total[5m]))",
        "topk(5, x_total)",
        "x_total / on(instance) group_left x_total",
        "histogram_quantile(0.9, sum by (le) (rate(x_total[5m])))",
        "max_over_time(rate(x_total[5m])[30m:1m])",
    ] {
        let started = std::time::Instant::now();
        let r = engine()
            .range_query(&q, query, 0, day, 60_000, &QueryOptions::default())
            .unwrap();
        let n = match &r.value {
            Value::Matrix(m) => m.len(),
            _ => 0,
        };
        println!("{query}: {n} series in {:?}", started.elapsed());
    }
}

#[test]
fn byte_escapes_that_are_invalid_utf8_are_not_label_names() {
    let mut q = MemQueryable::default();
    q.add(&[("__name__", "m"), ("src", "a")], &[(0, 1.0)]);
    let r = instant(&q, r#"label_replace(m, "\xff", "", "src", "(.*)")"#, 0);
    assert!(matches!(r, Err(QueryError::Execution(_))), "{r:?}");
    let r = instant(&q, r#"count_values("a\xc5z", m)"#, 0);
    match r {
        Err(QueryError::Execution(msg)) => assert_eq!(msg, r#"invalid label name "a\xc5z""#),
        other => panic!("{other:?}"),
    }
    // A valid UTF-8 sequence written as escapes is fine.
    assert!(instant(&q, r#"count_values("\u00e9", m)"#, 0).is_ok());
}

/// Every eval expression of the conformance files, plus odd variants, must
/// evaluate or fail cleanly — never panic — as instant and range queries.
#[test]
fn no_panics_on_conformance_expressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/promql-tests/testdata");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut q = MemQueryable::default();
    for (i, name) in ["metric", "http_requests", "foo", "x_bucket", "testmetric"]
        .iter()
        .enumerate()
    {
        for le in ["0.1", "1", "+Inf"] {
            let samples: Vec<(i64, f64)> = (0..40)
                .map(|k| (k * 30_000, (k as f64) * (i as f64 + 1.0)))
                .collect();
            q.add(&[("__name__", name), ("le", le), ("job", "a")], &samples);
        }
    }
    q.add(
        &[("__name__", "metric"), ("job", "b")],
        &[(0, f64::NAN), (MIN, STALE_NAN)],
    );
    let mut exprs = Vec::new();
    for entry in entries.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        for line in text.lines() {
            let line = line.trim();
            if !line.starts_with("eval") {
                continue;
            }
            let expr = if let Some(pos) = line.find(" step ") {
                line[pos + 6..].split_once(' ').map(|x| x.1)
            } else if let Some(pos) = line.find(" at ") {
                line[pos + 4..].split_once(' ').map(|x| x.1)
            } else {
                None
            };
            if let Some(e) = expr {
                exprs.push(e.to_string());
            }
        }
    }
    assert!(exprs.len() > 1000);
    let e = engine();
    for expr in &exprs {
        for t in [-MIN, 0, 7 * MIN] {
            let _ = e.instant_query(&q, expr, t, &QueryOptions::default());
        }
        let _ = e.range_query(&q, expr, -MIN, 10 * MIN, 45_000, &QueryOptions::default());
        let _ = e.range_query(
            &q,
            expr,
            i64::MAX - 10,
            i64::MAX,
            1,
            &QueryOptions::default(),
        );
        let _ = e.range_query(
            &q,
            expr,
            i64::MIN,
            i64::MIN + 10,
            3,
            &QueryOptions::default(),
        );
    }
}

#[test]
fn odd_queries_fail_cleanly() {
    let mut q = MemQueryable::default();
    counter(&mut q, "c", 10, 1.0);
    let e = engine();
    let opts = QueryOptions::default();
    match e.instant_query(&q, "topk(1e300, c)", MIN, &opts) {
        Err(QueryError::Execution(m)) => assert_eq!(m, "Scalar value 1e+300 overflows int64"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        e.instant_query(&q, "max_over_time(c[100y:1ms])", MIN, &opts),
        Err(QueryError::TooManySamples(_))
    ));
    assert!(e.instant_query(&q, "c offset 200y", MIN, &opts).is_ok());
    let _ = e.instant_query(&q, "rate(c[100000000y])", MIN, &opts);
    assert!(matches!(
        e.range_query(&q, "c", 0, MIN, 0, &opts),
        Err(QueryError::BadData(_))
    ));
    assert!(matches!(
        e.range_query(&q, "c[5m]", 0, MIN, 1000, &opts),
        Err(QueryError::BadData(_))
    ));
    // A cancelled query stops.
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opts = QueryOptions {
        cancel: Some(cancel),
        ..QueryOptions::default()
    };
    assert!(matches!(
        e.instant_query(&q, "c", MIN, &opts),
        Err(QueryError::Canceled(_))
    ));
    let opts = QueryOptions {
        timeout: Some(std::time::Duration::ZERO),
        ..QueryOptions::default()
    };
    assert!(matches!(
        e.instant_query(&q, "c", MIN, &opts),
        Err(QueryError::Timeout(_))
    ));
}

#[test]
fn staleness_at_window_boundaries() {
    let mut q = MemQueryable::default();
    // 1 at 0, stale at 2m, 3 at 4m.
    q.add(
        &[("__name__", "m")],
        &[(0, 1.0), (2 * MIN, STALE_NAN), (4 * MIN, 3.0)],
    );
    let r = engine()
        .range_query(&q, "m", 0, 6 * MIN, MIN, &QueryOptions::default())
        .unwrap();
    match r.value {
        Value::Matrix(m) => {
            let ts: Vec<i64> = m[0].samples.iter().map(|s| s.t / MIN).collect();
            // Present at 0 and 1m, absent while the marker is the latest
            // sample (2m, 3m), back at 4m and still in lookback at 5m, 6m.
            assert_eq!(ts, vec![0, 1, 4, 5, 6]);
        }
        other => panic!("{other:?}"),
    }
    // A window ending exactly on the marker holds only real samples; one
    // starting exactly on a sample excludes it (left-open).
    let v = vector_values(instant(&q, "count_over_time(m[2m])", 2 * MIN).unwrap());
    assert!(v.is_empty(), "{v:?}");
    let v = vector_values(instant(&q, "count_over_time(m[4m])", 4 * MIN).unwrap());
    assert_eq!(v[0].1, 1.0);
    let v = vector_values(instant(&q, "last_over_time(m[5m])", 4 * MIN).unwrap());
    assert_eq!(v, vec![("m{}".to_string(), 3.0)]);
}

#[test]
fn delayed_name_removal_keeps_names_until_the_end() {
    let mut q = MemQueryable::default();
    counter(&mut q, "a_total", 10, 1.0);
    counter(&mut q, "b_total", 10, 2.0);
    // Both rates lose their names only at the end; label_replace still sees them.
    let v = vector_values(
        instant(
            &q,
            r#"label_replace(rate({__name__=~"a_total|b_total"}[5m]), "n", "$1", "__name__", "(.*)")"#,
            10 * MIN,
        )
        .unwrap(),
    );
    let labels: Vec<&str> = v.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(labels, vec![r#"{n="a_total"}"#, r#"{n="b_total"}"#]);
    // Without the distinguishing label, the two results collide at the end.
    let r = instant(&q, r#"rate({__name__=~"a_total|b_total"}[5m])"#, 10 * MIN);
    assert!(matches!(r, Err(QueryError::Execution(_))), "{r:?}");
}

/// `op (m)` is evaluated fused with its selector; `op (-(-m))` (same values,
/// exactly) through the general path. Both must agree bit for bit, at every
/// step, with gaps, stale markers, NaN and series that select nothing.
#[test]
fn fused_selector_aggregation_equals_the_general_path() {
    let mut q = MemQueryable::default();
    let values = [1.5, -2.25, 1e16, 3.0, f64::NAN, 0.1, 7.0, 1e-3];
    for i in 0..24usize {
        let g = format!("g{}", i % 3);
        let h = format!("h{}", i % 2);
        let id = format!("{i}");
        let samples: Vec<(i64, f64)> = (0..40i64)
            .filter(|k| !(*k as usize + i).is_multiple_of(7))
            .map(|k| {
                let v = if (k as usize + 2 * i).is_multiple_of(13) {
                    STALE_NAN
                } else {
                    values[(k as usize * 3 + i) % values.len()] * (i as f64 + 1.0)
                };
                (k * 30_000 + i as i64 * 100, v)
            })
            .collect();
        q.add(
            &[("__name__", "m"), ("g", &g), ("h", &h), ("id", &id)],
            &samples,
        );
    }
    // Selects samples, but only long before the queried steps.
    q.add(&[("__name__", "m"), ("g", "old")], &[(-3_600_000, 1.0)]);
    let ops = [
        "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar",
    ];
    let groupings = [
        "",
        " by (g)",
        " by (g, h)",
        " without (id)",
        " without (h, id)",
    ];
    let key = |v: Value| -> Vec<(String, Vec<(i64, u64)>)> {
        match v {
            Value::Matrix(m) => m
                .into_iter()
                .map(|s| {
                    (
                        s.labels.to_string(),
                        s.samples.iter().map(|p| (p.t, p.v.to_bits())).collect(),
                    )
                })
                .collect(),
            Value::Vector(v) => v
                .into_iter()
                .map(|s| (s.labels.to_string(), vec![(s.t, s.v.to_bits())]))
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    for op in ops {
        for grouping in groupings {
            let fused = format!("{op}{grouping} (m)");
            let general = format!("{op}{grouping} (-(-m))");
            let run = |query: &str| {
                engine()
                    .range_query(&q, query, 0, 20 * MIN, 15_000, &QueryOptions::default())
                    .unwrap()
                    .value
            };
            assert_eq!(key(run(&fused)), key(run(&general)), "{fused}");
            for t in [0, 7 * MIN + 1, 19 * MIN] {
                assert_eq!(
                    key(instant(&q, &fused, t).unwrap()),
                    key(instant(&q, &general, t).unwrap()),
                    "{fused} at {t}"
                );
            }
        }
    }
}

/// With many groups over many steps and few samples, the fused aggregation
/// falls back to the general path (its cell arrays would dwarf the input);
/// the answer is the same.
#[test]
fn fused_aggregation_falls_back_for_sparse_groups() {
    let mut q = MemQueryable::default();
    for i in 0..401i64 {
        let id = format!("{i}");
        q.add(
            &[("__name__", "m"), ("id", &id)],
            &[(i * 25_000, i as f64 + 0.5)],
        );
    }
    for query in ["sum by (id) (m)", "count without () (m)"] {
        let general = query.replace("(m)", "(-(-m))");
        let run = |query: &str| {
            engine()
                .range_query(&q, query, 0, 10_999_000, 1_000, &QueryOptions::default())
                .unwrap()
                .value
        };
        let fused = run(query);
        match &fused {
            Value::Matrix(m) => {
                assert_eq!(m.len(), 401, "{query}");
                assert!(m.iter().all(|s| s.samples.len() == 300), "{query}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fused, run(&general), "{query}");
    }
}
