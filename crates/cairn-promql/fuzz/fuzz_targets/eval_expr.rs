//! Untrusted PromQL: any UTF-8 string is parsed and evaluated, as an instant
//! query and as a short range query, over a small in-memory dataset
//! (counters with a reset, gauges with NaN and ±Inf, classic histogram
//! buckets with `le`, a series ended by a staleness marker). Neither query
//! may panic or overflow the stack, whatever the expression; errors are fine.
//!
//! Every query runs under a 1 s timeout and a 1 M sample limit, so that
//! expressions such as `foo[100y:1ms]` end as a clean `timeout` or
//! "too many samples" error rather than a libFuzzer timeout or OOM.
//!
//! Known panics are skipped so that a run keeps looking for new ones: each
//! input is first parsed by `promql-parser` under `catch_unwind`, and an
//! input on which the parser panics with a known message is dropped (see
//! [`KNOWN_PARSER_PANICS`]; each is pinned by an ignored test in
//! `crates/cairn-promql/tests/fuzz_regressions.rs`). Any other panic, in the
//! parser or in the engine, is a crash.
#![no_main]

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use cairn_model::{
    Label, Labels, Matcher, Queryable, Sample, Series, StorageError, TimeRange, STALE_NAN,
};
use cairn_promql::{Engine, EngineOptions, QueryOptions, Value};
use libfuzzer_sys::fuzz_target;

/// Samples are 30 s apart from 0 to 20 minutes.
const STEP_MS: i64 = 30_000;
const SAMPLES_PER_SERIES: i64 = 41;
/// The instant query's time, and the range query's window over the data.
const INSTANT_MS: i64 = 600_000;
const RANGE_START_MS: i64 = 300_000;
const RANGE_END_MS: i64 = 900_000;
const RANGE_STEP_MS: i64 = 60_000;

/// A fixed set of series held in memory, answering `select` as storage does:
/// series sorted by labels, samples inside the range, staleness markers kept.
struct Dataset {
    series: Vec<Series>,
}

impl Dataset {
    fn build() -> Dataset {
        let mut series = Vec::new();
        let times = || (0..SAMPLES_PER_SERIES).map(|i| i * STEP_MS);
        // Counters, one with a reset half-way.
        for (job, instance, slope) in [
            ("api-server", "0", 1.0),
            ("api-server", "1", 2.0),
            ("app-server", "0", 3.0),
            ("app-server", "1", 4.0),
        ] {
            let samples = times()
                .enumerate()
                .map(|(i, t)| {
                    let i = if instance == "1" && job == "app-server" && i >= 20 {
                        i - 20
                    } else {
                        i
                    };
                    Sample::new(t, i as f64 * 10.0 * slope)
                })
                .collect();
            series.push(series_of(
                &[
                    ("__name__", "http_requests_total"),
                    (
                        "group",
                        if instance == "0" {
                            "production"
                        } else {
                            "canary"
                        },
                    ),
                    ("instance", instance),
                    ("job", job),
                ],
                samples,
            ));
        }
        // Gauges: one that wanders, one with NaN and infinities, one ended by
        // a staleness marker at 5 minutes, one with a single sample.
        series.push(series_of(
            &[("__name__", "metric"), ("src", "a")],
            times()
                .enumerate()
                .map(|(i, t)| Sample::new(t, ((i * 37) % 11) as f64 - 5.0))
                .collect(),
        ));
        series.push(series_of(
            &[("__name__", "metric"), ("src", "b")],
            times()
                .enumerate()
                .map(|(i, t)| {
                    let v = match i % 4 {
                        0 => f64::NAN,
                        1 => f64::INFINITY,
                        2 => f64::NEG_INFINITY,
                        _ => i as f64 * -0.5,
                    };
                    Sample::new(t, v)
                })
                .collect(),
        ));
        series.push(series_of(
            &[("__name__", "metric"), ("src", "stale")],
            times()
                .take_while(|t| *t <= 300_000)
                .map(|t| {
                    if t == 300_000 {
                        Sample::new(t, STALE_NAN)
                    } else {
                        Sample::new(t, t as f64 / 1000.0)
                    }
                })
                .collect(),
        ));
        series.push(series_of(
            &[("__name__", "foo"), ("job", "one")],
            vec![Sample::new(450_000, 42.0)],
        ));
        // Classic histogram buckets (cumulative) for two jobs, with _sum and _count.
        for (job, scale) in [("api", 1.0), ("batch", 2.5)] {
            for (le, share) in [("0.1", 0.25), ("0.5", 0.5), ("1", 0.9), ("+Inf", 1.0)] {
                series.push(series_of(
                    &[
                        ("__name__", "testhistogram_bucket"),
                        ("job", job),
                        ("le", le),
                    ],
                    times()
                        .enumerate()
                        .map(|(i, t)| Sample::new(t, (i as f64 * 10.0 * scale * share).floor()))
                        .collect(),
                ));
            }
            series.push(series_of(
                &[("__name__", "testhistogram_count"), ("job", job)],
                times()
                    .enumerate()
                    .map(|(i, t)| Sample::new(t, (i as f64 * 10.0 * scale).floor()))
                    .collect(),
            ));
            series.push(series_of(
                &[("__name__", "testhistogram_sum"), ("job", job)],
                times()
                    .enumerate()
                    .map(|(i, t)| Sample::new(t, i as f64 * 3.3 * scale))
                    .collect(),
            ));
        }
        series.sort_by(|a, b| a.labels.as_slice().cmp(b.labels.as_slice()));
        Dataset { series }
    }
}

fn series_of(pairs: &[(&str, &str)], samples: Vec<Sample>) -> Series {
    Series {
        labels: Labels::from_pairs(pairs),
        samples,
    }
}

fn label_value<'a>(labels: &'a Labels, name: &str) -> &'a str {
    labels.get(name).unwrap_or("")
}

impl Queryable for Dataset {
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
        let mut out = Vec::new();
        for series in &self.series {
            if !matchers
                .iter()
                .all(|m| m.matches(label_value(&series.labels, &m.name)))
            {
                continue;
            }
            let samples: Vec<Sample> = series
                .samples
                .iter()
                .filter(|s| range.contains(s.t))
                .copied()
                .collect();
            if !samples.is_empty() {
                out.push(Series {
                    labels: series.labels.clone(),
                    samples,
                });
            }
        }
        Ok(out)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        let mut names: Vec<String> = self
            .select(matchers, range)?
            .iter()
            .flat_map(|s| s.labels.iter().map(|l: &Label| l.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        let mut values: Vec<String> = self
            .select(matchers, range)?
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_owned))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}

struct Fixture {
    dataset: Dataset,
    engine: Engine,
    opts: QueryOptions,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        dataset: Dataset::build(),
        engine: Engine::new(EngineOptions {
            max_samples: 1_000_000,
            default_timeout: Duration::from_secs(1),
            ..EngineOptions::default()
        }),
        opts: QueryOptions {
            timeout: Some(Duration::from_secs(1)),
            ..QueryOptions::default()
        },
    })
}

/// Panic messages of known `promql-parser` 0.11.1 bugs, reported and pinned
/// by `#[ignore]`d tests in `tests/fuzz_regressions.rs`. Remove an entry
/// when the parser is fixed.
const KNOWN_PARSER_PANICS: &[&str] = &[
    // A unitless duration over u64::MAX seconds (`x[1e20]`, `x offset 1e100`,
    // `x[5m:1e100]`): `Duration::from_secs_f64` panics in the grammar action.
    "cannot convert float seconds to Duration",
];

thread_local! {
    /// Set while probing the parser, so the panic hook lets the panic unwind
    /// to our `catch_unwind` instead of aborting as libFuzzer's hook does.
    static PROBING_PARSER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the parser panics on `expr` with a known message. Unknown
/// panics propagate (libfuzzer-sys aborts on them: a crash).
fn parser_hits_known_panic(expr: &str) -> bool {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let fuzzer_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !PROBING_PARSER.with(Cell::get) {
                fuzzer_hook(info);
            }
        }));
    });
    PROBING_PARSER.with(|p| p.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = promql_parser::parser::parse(expr);
    }));
    PROBING_PARSER.with(|p| p.set(false));
    let Err(payload) = outcome else {
        return false;
    };
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    if KNOWN_PARSER_PANICS
        .iter()
        .any(|known| message.contains(known))
    {
        return true;
    }
    panic!("promql-parser panicked on {expr:?}: {message}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    if parser_hits_known_panic(expr) {
        return;
    }
    let fx = fixture();
    let _ = fx
        .engine
        .instant_query(&fx.dataset, expr, INSTANT_MS, &fx.opts);
    if let Ok(result) = fx.engine.range_query(
        &fx.dataset,
        expr,
        RANGE_START_MS,
        RANGE_END_MS,
        RANGE_STEP_MS,
        &fx.opts,
    ) {
        // A range query answers with a matrix, whatever the expression.
        assert!(
            matches!(result.value, Value::Matrix(_)),
            "range query of {expr:?} returned {:?}",
            result.value
        );
    }
});
