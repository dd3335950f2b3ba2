//! Inputs found by the `eval_expr` fuzz target (`crates/cairn-promql/fuzz`)
//! that panicked, minimised, each pinned by a test named after what it
//! expects. A test is `#[ignore]`d while the bug is open (the reason says
//! where it lives); un-ignore it with the fix, and drop the matching entry
//! from the fuzz target's `KNOWN_PARSER_PANICS`.

use cairn_model::EmptyQueryable;
use cairn_promql::{Engine, EngineOptions, QueryOptions};

/// Found 2026-11-26 by the first bounded run (crash input
/// `rate(met*q0uJeststal[3333…3332:0s10s])`, 60 digits). A number used as a
/// duration (seconds, no unit) beyond u64::MAX seconds reaches
/// `Duration::from_secs_f64` in promql-parser 0.11.1's grammar action for
/// number durations, which panics ("cannot convert float seconds to
/// Duration"). The panic escapes `Engine::instant_query`/`range_query`
/// from `parse_query`. Expected: a `bad_data` error, as for any expression
/// that cannot be evaluated, and never a panic.
///
/// Fixed in Cairn: `parse_query` contains parser panics and answers
/// bad_data (the parser itself still panics; the fuzz target skips it).
#[test]
fn unitless_duration_beyond_u64_seconds_is_bad_data_not_a_panic() {
    let engine = Engine::new(EngineOptions::default());
    let opts = QueryOptions::default();
    for query in [
        "x[1e20]",
        "x[18446744073709551616]",
        "x[5m:1e100]",
        "x offset 1e100",
        "rate(met*q0uJeststal[333333333333333333333333333333333333333333333333333333333332:0s10s])",
    ] {
        let instant = engine.instant_query(&EmptyQueryable, query, 0, &opts);
        assert!(
            matches!(&instant, Err(e) if e.error_type() == "bad_data"),
            "instant {query}: {instant:?}"
        );
        let range = engine.range_query(&EmptyQueryable, query, 0, 60_000, 15_000, &opts);
        assert!(
            matches!(&range, Err(e) if e.error_type() == "bad_data"),
            "range {query}: {range:?}"
        );
    }
}
