//! Result checks, ported from Go's `evalCmd.compareResult`,
//! `checkAnnotations`, `checkExpectedFailure` and `assertMatrixSorted`, with
//! `almost.Equal(a, b, 1e-6)` for floats.

use std::collections::HashSet;

use cairn_model::{is_stale_nan, Labels, Series};
use cairn_promql::{Annotations, Value, VectorSample};

use crate::checks::Checks;
use crate::script::{EvalCmd, MatchText};
use crate::series::SeqValue;

const EPSILON: f64 = 1e-6;
const MIN_NORMAL: f64 = 2.2250738585072014e-308;

/// Prometheus's `util/almost.Equal`.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if is_stale_nan(a) || is_stale_nan(b) {
        return is_stale_nan(a) && is_stale_nan(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

fn format_value(v: f64) -> String {
    if is_stale_nan(v) {
        "stale".to_string()
    } else {
        format!("{v}")
    }
}

fn format_seq(values: &[SeqValue]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| match v {
            SeqValue::Omitted => "_".to_string(),
            SeqValue::Float(f) => format_value(*f),
            SeqValue::Histogram(_) => "{{...}}".to_string(),
        })
        .collect();
    format!("[{}]", items.join(" "))
}

fn format_series(series: &Series) -> String {
    let points: Vec<String> = series
        .samples
        .iter()
        .map(|s| format!("{} @[{}]", format_value(s.v), s.t))
        .collect();
    format!(
        "{} float point{} [{}]",
        points.len(),
        if points.len() == 1 { "" } else { "s" },
        points.join(" ")
    )
}

/// Go's `assertMatrixSorted`: `labels.Compare` order is `Labels`' `Ord`.
pub fn assert_matrix_sorted(matrix: &[Series]) -> Result<(), String> {
    for (i, pair) in matrix.windows(2).enumerate() {
        if pair[0].labels > pair[1].labels {
            return Err(format!(
                "matrix results should always be sorted by labels, but matrix is not sorted: series at index {} with labels {} sorts before series at index {} with labels {}",
                i + 1,
                pair[1].labels,
                i,
                pair[0].labels
            ));
        }
    }
    Ok(())
}

/// Go's `compareResult`.
pub fn compare_result(eval: &EvalCmd, value: &Value) -> Result<(), String> {
    match value {
        Value::Matrix(matrix) => compare_matrix(eval, matrix),
        Value::Vector(vector) => compare_vector(eval, vector),
        Value::Scalar(sample) => compare_scalar(eval, sample.v),
        Value::String { value, .. } => {
            if &eval.expected_string != value {
                return Err(format!(
                    "expected string \"{}\" but got \"{}\"",
                    eval.expected_string, value
                ));
            }
            Ok(())
        }
    }
}

pub fn compare_scalar(eval: &EvalCmd, got: f64) -> Result<(), String> {
    if !eval.expect_scalar {
        return Err(format!(
            "expected vector or matrix result, but got scalar {}",
            format_value(got)
        ));
    }
    match &eval.scalar {
        Some(SeqValue::Float(expected)) => {
            if !almost_equal(*expected, got, EPSILON) {
                return Err(format!(
                    "expected scalar {} but got {}",
                    format_value(*expected),
                    format_value(got)
                ));
            }
            Ok(())
        }
        _ => Err(format!(
            "expected a histogram but got scalar {}",
            format_value(got)
        )),
    }
}

fn compare_matrix(eval: &EvalCmd, matrix: &[Series]) -> Result<(), String> {
    if eval.is_ordered() {
        return Err("expected ordered result, but query returned a matrix".to_string());
    }
    if eval.expect_scalar {
        return Err(format!(
            "expected scalar result, but got matrix with {} series",
            matrix.len()
        ));
    }
    assert_matrix_sorted(matrix)?;
    let mut seen: HashSet<&Labels> = HashSet::new();
    for series in matrix {
        let Some(expected) = eval.expected.get(&series.labels) else {
            return Err(format!(
                "unexpected metric {} in result, has {}",
                series.labels,
                format_series(series)
            ));
        };
        seen.insert(&series.labels);
        let mut expected_floats: Vec<(i64, f64)> = Vec::new();
        let mut expected_histograms = 0usize;
        for (i, value) in expected.values.iter().enumerate() {
            let t = eval.start_ms + i as i64 * eval.step_ms;
            // Go compares with the zero time when there is no end (an instant
            // eval without `expect range vector`), so any point is too many.
            if eval.end_ms.is_none_or(|end| t > end) {
                return Err(format!(
                    "expected {} points for {}, but query time range cannot return this many points",
                    expected.values.len(),
                    series.labels
                ));
            }
            match value {
                SeqValue::Histogram(_) => expected_histograms += 1,
                SeqValue::Float(v) => expected_floats.push((t, *v)),
                SeqValue::Omitted => {}
            }
        }
        if expected_floats.len() != series.samples.len() || expected_histograms != 0 {
            return Err(format!(
                "expected {} float points and {} histogram points for {}, but got {}",
                expected_floats.len(),
                expected_histograms,
                series.labels,
                format_series(series)
            ));
        }
        for (i, ((t, v), actual)) in expected_floats.iter().zip(&series.samples).enumerate() {
            if *t != actual.t {
                return Err(format!(
                    "expected float value at index {i} for {} to have timestamp {t}, but it had timestamp {} (result has {})",
                    series.labels,
                    actual.t,
                    format_series(series)
                ));
            }
            if !almost_equal(actual.v, *v, EPSILON) {
                return Err(format!(
                    "expected float value at index {i} (t={}) for {} to be {}, but got {} (result has {})",
                    actual.t,
                    series.labels,
                    format_value(*v),
                    format_value(actual.v),
                    format_series(series)
                ));
            }
        }
    }
    for labels in eval.expected.keys() {
        if !seen.contains(labels) {
            return Err(format!("expected metric {labels} not found"));
        }
    }
    Ok(())
}

pub fn compare_vector(eval: &EvalCmd, vector: &[VectorSample]) -> Result<(), String> {
    if eval.expect_scalar {
        return Err(format!(
            "expected scalar result, but got vector with {} samples",
            vector.len()
        ));
    }
    let mut seen: HashSet<&Labels> = HashSet::new();
    for (pos, sample) in vector.iter().enumerate() {
        let Some(expected) = eval.expected.get(&sample.labels) else {
            return Err(format!(
                "unexpected metric {} in result, has value {}",
                sample.labels,
                format_value(sample.v)
            ));
        };
        if eval.is_ordered() && expected.pos != pos + 1 {
            return Err(format!(
                "expected metric {} with {} at position {} but was at {}",
                sample.labels,
                format_seq(&expected.values),
                expected.pos,
                pos + 1
            ));
        }
        match expected.values.first() {
            Some(SeqValue::Float(v)) => {
                if !almost_equal(*v, sample.v, EPSILON) {
                    return Err(format!(
                        "expected {} for {} but got {}",
                        format_value(*v),
                        sample.labels,
                        format_value(sample.v)
                    ));
                }
            }
            Some(SeqValue::Histogram(_)) => {
                return Err(format!(
                    "expected a histogram for {} but got float value {}",
                    sample.labels,
                    format_value(sample.v)
                ));
            }
            // Go reads the zero value of an omitted point: 0.
            Some(SeqValue::Omitted) | None => {
                if !almost_equal(0.0, sample.v, EPSILON) {
                    return Err(format!(
                        "expected 0 for {} but got {}",
                        sample.labels,
                        format_value(sample.v)
                    ));
                }
            }
        }
        seen.insert(&sample.labels);
    }
    for (labels, expected) in &eval.expected {
        if !seen.contains(labels) {
            return Err(format!(
                "expected metric {labels} with {} not found",
                format_seq(&expected.values)
            ));
        }
    }
    Ok(())
}

/// Go's `checkAnnotations`.
pub fn check_annotations(
    eval: &EvalCmd,
    query: &str,
    annotations: &Annotations,
) -> Result<(), String> {
    if eval.legacy_warn && annotations.warnings.is_empty() {
        return Err(format!(
            "expected warnings evaluating query {query:?} but got none"
        ));
    }
    if eval.legacy_info && annotations.infos.is_empty() {
        return Err(format!(
            "expected info annotations evaluating query {query:?} but got none"
        ));
    }
    check_annotations_of_kind(
        query,
        &eval.expect_warn,
        &annotations.warnings,
        "warn",
        annotations,
    )?;
    check_annotations_of_kind(
        query,
        &eval.expect_info,
        &annotations.infos,
        "info",
        annotations,
    )?;
    if eval.expect_no_warn && !annotations.warnings.is_empty() {
        return Err(format!(
            "unexpected warning annotations evaluating query {query:?}: {:?}",
            annotations.warnings
        ));
    }
    if eval.expect_no_info && !annotations.infos.is_empty() {
        return Err(format!(
            "unexpected info annotations evaluating query {query:?}: {:?}",
            annotations.infos
        ));
    }
    Ok(())
}

fn check_annotations_of_kind(
    query: &str,
    expected: &[MatchText],
    actual: &[String],
    kind: &str,
    all: &Annotations,
) -> Result<(), String> {
    if expected.is_empty() {
        return Ok(());
    }
    if actual.is_empty() {
        return Err(format!(
            "expected {kind} annotations but none were found for query {query:?}"
        ));
    }
    for e in expected {
        if !actual.iter().any(|a| e.matches(a)) {
            let found: Vec<&String> = all.warnings.iter().chain(&all.infos).collect();
            return Err(format!(
                "expected {kind} annotation matching {} but no matching annotation was found for query {query:?}, found: {found:?}",
                e.describe()
            ));
        }
    }
    for a in actual {
        if !expected.iter().any(|e| e.matches(a)) {
            return Err(format!(
                "unexpected {kind} annotation {a:?} found for query {query}"
            ));
        }
    }
    Ok(())
}

/// Go's `checkExpectedFailure`: `Ok` when the error is the one expected.
pub fn check_expected_failure(eval: &EvalCmd, error: &str) -> Result<(), String> {
    if let Some(message) = &eval.expected_fail_message {
        if !message.is_empty() && message != error {
            return Err(format!("expected error {message:?}, but got: {error}"));
        }
    }
    if let Some(regex) = &eval.expected_fail_regexp {
        if !regex.is_match(error) {
            return Err(format!(
                "expected error matching pattern {:?}, but got: {error}",
                regex.as_str()
            ));
        }
    }
    if let Some(first) = eval.expect_fail.first() {
        if !first.matches(error) {
            return Err(format!(
                "expected error matching {}, but got: {error}",
                first.describe()
            ));
        }
    }
    Ok(())
}

pub fn self_checks(checks: &mut Checks) {
    let stale = cairn_model::STALE_NAN;
    checks.ok(
        "NaN == NaN",
        almost_equal(f64::NAN, f64::NAN, EPSILON),
        || "false".into(),
    );
    checks.ok(
        "stale != NaN",
        !almost_equal(stale, f64::NAN, EPSILON),
        || "true".into(),
    );
    checks.ok(
        "NaN != stale",
        !almost_equal(f64::NAN, stale, EPSILON),
        || "true".into(),
    );
    checks.ok(
        "stale == stale",
        almost_equal(stale, stale, EPSILON),
        || "false".into(),
    );
    checks.ok(
        "Inf == Inf",
        almost_equal(f64::INFINITY, f64::INFINITY, EPSILON),
        || "false".into(),
    );
    checks.ok(
        "Inf != -Inf",
        !almost_equal(f64::INFINITY, f64::NEG_INFINITY, EPSILON),
        || "true".into(),
    );
    checks.ok(
        "relative 1e-7",
        almost_equal(1.0, 1.0 + 1e-7, EPSILON),
        || "false".into(),
    );
    checks.ok(
        "relative 1e-5",
        !almost_equal(1.0, 1.0 + 1e-5, EPSILON),
        || "true".into(),
    );
    checks.ok("zero is exact", !almost_equal(0.0, 1e-300, EPSILON), || {
        "true".into()
    });
    checks.ok("-0 == 0", almost_equal(-0.0, 0.0, EPSILON), || {
        "false".into()
    });
    checks.ok("NaN != 1", !almost_equal(f64::NAN, 1.0, EPSILON), || {
        "true".into()
    });
    let a = Series {
        labels: Labels::from_pairs(&[("a", "1")]),
        samples: vec![],
    };
    let ab = Series {
        labels: Labels::from_pairs(&[("a", "1"), ("b", "1")]),
        samples: vec![],
    };
    checks.ok(
        "sorted matrix",
        assert_matrix_sorted(&[a.clone(), ab.clone()]).is_ok(),
        || "rejected".into(),
    );
    checks.ok(
        "unsorted matrix",
        assert_matrix_sorted(&[ab, a]).is_err(),
        || "accepted".into(),
    );
}
