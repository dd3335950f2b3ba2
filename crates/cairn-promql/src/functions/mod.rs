//! Function calls: dispatch by name to one module per family.
//!
//! Range-vector functions go through [`eval_range_fn`], which slides a
//! window over each series' samples with two cursors (as Prometheus's
//! `matrixIterSlice` does across steps); instant-vector functions map each
//! series' points.

mod histogram;
mod info;
mod label;
mod math;
mod over_time;
mod rate;
mod sort;
mod time;

use cairn_model::{is_stale_nan, Label, Labels, Sample, METRIC_NAME};
use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::{Call, Expr};

use crate::eval::{Evaluator, RangeArg, RangeInput};
use crate::value::{total_points, Point, RangeSeries, StepSeries, Val};
use crate::QueryError;

pub(crate) use math::quantile;

/// Context of one window evaluation.
pub(crate) struct Window {
    pub step: usize,
    /// Evaluation time of the step.
    pub ts: i64,
    /// Exclusive window start and inclusive end (after offset and `@`).
    pub start: i64,
    pub end: i64,
    pub range_ms: i64,
    /// Index of the window's first sample in its series.
    pub offset: usize,
}

/// Applies `f` to every series' window at every step. `f` returns the value
/// for the step or `None` for no point. Large inputs are split by series
/// across threads ([`crate::parallel::map_chunks`]). The series' labels are
/// moved into the result, not copied.
pub(crate) fn eval_range_fn(
    ev: &Evaluator,
    arg: RangeArg,
    drop_name: bool,
    f: impl Fn(&Window, &[Sample]) -> Option<f64> + Sync,
) -> Result<Vec<StepSeries>, QueryError> {
    eval_range_fn_with(ev, arg, drop_name, |_| (), |w, samples, _| f(w, samples))
}

/// [`eval_range_fn`] with per-series state: `prepare(samples)` runs once per
/// series (e.g. to index its counter resets), and `f` gets that state with
/// every window.
pub(crate) fn eval_range_fn_with<S>(
    ev: &Evaluator,
    mut arg: RangeArg,
    drop_name: bool,
    prepare: impl Fn(&[Sample]) -> S + Sync,
    f: impl Fn(&Window, &[Sample], &S) -> Option<f64> + Sync,
) -> Result<Vec<StepSeries>, QueryError> {
    let input = std::mem::replace(&mut arg.input, RangeInput::Series(Vec::new()));
    let set = match input {
        RangeInput::Series(series) => {
            return eval_range_fn_series(ev, &arg, series, drop_name, prepare, f)
        }
        RangeInput::Storage(set) => set,
    };
    // A matrix selector: decoded one series at a time per thread.
    let points = crate::parallel::map_decoded(ev, &*set, |samples| {
        samples.retain(|p| !is_stale_nan(p.v));
        series_points(ev, &arg, samples, &prepare, &f)
    })?;
    let mut out = Vec::with_capacity(points.len());
    let mut garbage = Vec::new();
    for (labels, points) in set.into_labels().into_iter().zip(points) {
        if points.is_empty() {
            garbage.push(labels);
        } else {
            out.push(StepSeries {
                labels,
                drop_name,
                points,
            });
        }
    }
    let allocations = garbage.len();
    crate::parallel::defer_drop(garbage, allocations);
    Ok(out)
}

/// [`eval_range_fn_with`] over series evaluated already (a subquery).
fn eval_range_fn_series<S>(
    ev: &Evaluator,
    arg: &RangeArg,
    series: Vec<RangeSeries>,
    drop_name: bool,
    prepare: impl Fn(&[Sample]) -> S + Sync,
    f: impl Fn(&Window, &[Sample], &S) -> Option<f64> + Sync,
) -> Result<Vec<StepSeries>, QueryError> {
    let samples: usize = series.iter().map(|s| s.samples.len()).sum();
    let work = samples.saturating_add(series.len().saturating_mul(ev.nsteps));
    let points = crate::parallel::map_chunks(&series, work, |chunk| {
        chunk
            .iter()
            .map(|s| series_points(ev, arg, &s.samples, &prepare, &f))
            .collect()
    })?;
    let mut out = Vec::with_capacity(series.len());
    let mut garbage = Vec::with_capacity(series.len());
    for (series, points) in series.into_iter().zip(points) {
        garbage.push(series.samples);
        if !points.is_empty() {
            out.push(StepSeries {
                labels: series.labels,
                drop_name: drop_name || series.drop_name,
                points,
            });
        }
    }
    let allocations = garbage.len();
    crate::parallel::defer_drop(garbage, allocations);
    Ok(out)
}

/// The points of one series (empty when it has none), walking its samples
/// across the steps with two cursors.
fn series_points<S>(
    ev: &Evaluator,
    arg: &RangeArg,
    samples: &[Sample],
    prepare: &impl Fn(&[Sample]) -> S,
    f: &impl Fn(&Window, &[Sample], &S) -> Option<f64>,
) -> Result<Vec<Point>, QueryError> {
    ev.sh.check_now()?;
    let state = prepare(samples);
    let mut lo = 0usize;
    let mut hi = 0usize;
    let mut points = Vec::new();
    for step in 0..ev.nsteps {
        ev.sh.check()?;
        let ts = ev.ts(step);
        let end = arg.window_end(ts);
        let start = end.saturating_sub(arg.range);
        while lo < samples.len() && samples[lo].t <= start {
            lo += 1;
        }
        if hi < lo {
            hi = lo;
        }
        while hi < samples.len() && samples[hi].t <= end {
            hi += 1;
        }
        if hi == lo {
            continue;
        }
        let window = &samples[lo..hi];
        if ev.sh.samples_now().saturating_add(window.len()) > ev.sh.max_samples {
            return Err(QueryError::TooManySamples("query execution"));
        }
        let w = Window {
            step,
            ts,
            start,
            end,
            range_ms: arg.range,
            offset: lo,
        };
        if let Some(v) = f(&w, window, &state) {
            if points.is_empty() {
                points.reserve_exact(ev.nsteps - step);
            }
            points.push(Point { step, v });
        }
    }
    if !points.is_empty() {
        ev.sh.add_samples(points.len())?;
    }
    Ok(points)
}

/// Maps every point of every series; `None` drops the point.
pub(crate) fn map_points(
    mut series: Vec<StepSeries>,
    drop_name: bool,
    mut f: impl FnMut(usize, f64) -> Option<f64>,
) -> Vec<StepSeries> {
    for s in series.iter_mut() {
        let mut kept = Vec::with_capacity(s.points.len());
        for p in &s.points {
            if let Some(v) = f(p.step, p.v) {
                kept.push(Point { step: p.step, v });
            }
        }
        s.points = kept;
        if drop_name {
            s.drop_name = true;
        }
    }
    series.retain(|s| !s.points.is_empty());
    series
}

/// Unwraps parentheses.
pub(crate) fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

/// The string value of a string-literal argument.
pub(crate) fn string_arg(ev: &Evaluator, e: &Expr) -> Result<String, QueryError> {
    match unparen(e) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        other => match ev.eval(other)? {
            Val::String(s) => Ok(s),
            v => Err(QueryError::BadData(format!(
                "expected string argument, got {}",
                v.type_name()
            ))),
        },
    }
}

fn arg(call: &Call, i: usize) -> Result<&Expr, QueryError> {
    call.args.args.get(i).map(|b| b.as_ref()).ok_or_else(|| {
        QueryError::BadData(format!(
            "wrong number of arguments for function {}",
            call.func.name
        ))
    })
}

/// A scalar argument evaluated at every step; `default` when absent.
fn scalar_arg_or(
    ev: &Evaluator,
    call: &Call,
    i: usize,
    default: f64,
) -> Result<Vec<f64>, QueryError> {
    match call.args.args.get(i) {
        Some(e) => ev.eval_scalar(e),
        None => Ok(vec![default; ev.nsteps]),
    }
}

pub(crate) fn eval_call(ev: &Evaluator, call: &Call) -> Result<Val, QueryError> {
    let name = call.func.name;
    let base = ev.sh.samples_now();
    let val = dispatch(ev, call, name)?;
    if let Val::Vector(v) = &val {
        ev.sh.reset_samples(base, total_points(v))?;
    }
    Ok(val)
}

fn dispatch(ev: &Evaluator, call: &Call, name: &str) -> Result<Val, QueryError> {
    if let Some(v) = rate::eval(ev, call, name)? {
        return Ok(v);
    }
    if let Some(v) = over_time::eval(ev, call, name)? {
        return Ok(v);
    }
    if let Some(v) = math::eval(ev, call, name)? {
        return Ok(v);
    }
    if let Some(v) = time::eval(ev, call, name)? {
        return Ok(v);
    }
    if let Some(v) = label::eval(ev, call, name)? {
        return Ok(v);
    }
    if let Some(v) = sort::eval(ev, call, name)? {
        return Ok(v);
    }
    if let Some(v) = histogram::eval(ev, call, name)? {
        return Ok(v);
    }
    if let Some(v) = info::eval(ev, call, name)? {
        return Ok(v);
    }
    Err(QueryError::BadData(format!(
        "function {name:?} is not supported"
    )))
}

/// Labels for `absent()`/`absent_over_time()` (`createLabelsForAbsentFunction`):
/// the equality matchers of the selector, minus names matched twice.
pub(crate) fn absent_labels(e: &Expr) -> Labels {
    let vs = match unparen(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut pairs: Vec<Label> = Vec::new();
    let mut has: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, ParserOp::Equal) && !has.contains(&m.name.as_str()) {
            pairs.retain(|l| l.name != m.name);
            pairs.push(Label::new(m.name.clone(), m.value.clone()));
            has.push(&m.name);
        } else {
            pairs.retain(|l| l.name != m.name);
        }
    }
    Labels::new(pairs)
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`, with Prometheus's `+Inf`/`-Inf`/`NaN`.
pub(crate) fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f == f64::INFINITY {
        "+Inf".to_string()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{f}")
    }
}

/// Go's `%g` / `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest
/// representation, in exponent form when the exponent is below -4 or at
/// least 6 (Go's `eprec` for the shortest precision).
pub(crate) fn format_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` is the shortest round-trip form: `1.5e-7`, `1e300`.
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        format!("{f}")
    }
}

/// Warnings for a quantile parameter outside [0, 1] (`NewInvalidQuantileWarning`).
pub(crate) fn quantile_param_warnings(ev: &Evaluator, params: &[f64], param_expr: Option<&Expr>) {
    let pos = || param_expr.map(|e| ev.sh.pos(e)).unwrap_or_default();
    if params.iter().any(|p| p.is_nan()) {
        ev.sh.warn(format!(
            "quantile value should be between 0 and 1, got NaN{}",
            pos()
        ));
    }
    let max = params.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = params.iter().copied().fold(f64::INFINITY, f64::min);
    if max > 1.0 {
        ev.sh.warn(format!(
            "quantile value should be between 0 and 1, got {}{}",
            format_g(max),
            pos()
        ));
    }
    if min < 0.0 {
        ev.sh.warn(format!(
            "quantile value should be between 0 and 1, got {}{}",
            format_g(min),
            pos()
        ));
    }
}

/// Warnings for a `limit_ratio` parameter outside [-1, 1].
pub(crate) fn ratio_param_warnings(ev: &Evaluator, min: f64, max: f64, param_expr: Option<&Expr>) {
    let pos = || param_expr.map(|e| ev.sh.pos(e)).unwrap_or_default();
    if max > 1.0 {
        ev.sh.warn(format!(
            "ratio value should be between -1 and 1, got {}, capping to 1{}",
            format_g(max),
            pos()
        ));
    }
    if min < -1.0 {
        ev.sh.warn(format!(
            "ratio value should be between -1 and 1, got {}, capping to -1{}",
            format_g(min),
            pos()
        ));
    }
}

/// Prometheus label names (UTF-8 mode): any non-empty valid UTF-8 string.
/// A literal that Go decodes to invalid UTF-8 (`"\xff"`) is not one.
pub(crate) fn is_valid_label_name(ev: &Evaluator, name: &str) -> bool {
    !name.is_empty() && !ev.sh.invalid_strings.iter().any(|(s, _)| s == name)
}

/// Go's `strconv.Quote` of a string literal's value, as Prometheus prints
/// a `StringLiteral` in errors.
pub(crate) fn go_quoted(ev: &Evaluator, s: &str) -> String {
    match ev.sh.invalid_strings.iter().find(|(d, _)| d == s) {
        Some((_, quoted)) => quoted.clone(),
        None => format!("{s:?}"),
    }
}

/// Prometheus's `labels.Labels.Hash()`: XXH64 (seed 0) of every
/// `name 0xff value 0xff`, so `limit_ratio` samples the same series.
pub(crate) fn label_hash(labels: &Labels) -> u64 {
    let mut bytes = Vec::new();
    for l in labels.iter() {
        bytes.extend_from_slice(l.name.as_bytes());
        bytes.push(0xff);
        bytes.extend_from_slice(l.value.as_bytes());
        bytes.push(0xff);
    }
    xxh64(&bytes)
}

/// XXH64 with seed 0 (the `cespare/xxhash` Prometheus uses).
pub(crate) fn xxh64(input: &[u8]) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    fn round(acc: u64, lane: u64) -> u64 {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(31)
            .wrapping_mul(P1)
    }
    fn merge(acc: u64, val: u64) -> u64 {
        (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
    }
    let read64 = |b: &[u8]| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let read32 = |b: &[u8]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let len = input.len();
    let mut rest = input;
    let mut h: u64;
    if len >= 32 {
        let mut v1 = P1.wrapping_add(P2);
        let mut v2 = P2;
        let mut v3 = 0u64;
        let mut v4 = 0u64.wrapping_sub(P1);
        while rest.len() >= 32 {
            v1 = round(v1, read64(&rest[0..8]));
            v2 = round(v2, read64(&rest[8..16]));
            v3 = round(v3, read64(&rest[16..24]));
            v4 = round(v4, read64(&rest[24..32]));
            rest = &rest[32..];
        }
        h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge(h, v1);
        h = merge(h, v2);
        h = merge(h, v3);
        h = merge(h, v4);
    } else {
        h = P5;
    }
    h = h.wrapping_add(len as u64);
    while rest.len() >= 8 {
        h ^= round(0, read64(&rest[0..8]));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= read32(&rest[0..4]).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_reference_vectors() {
        assert_eq!(xxh64(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a"), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc"), 0x44BC_2CF5_AD77_0999);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition"),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn go_style_float_formatting() {
        assert_eq!(format_g(1e300), "1e+300");
        assert_eq!(format_g(0.5), "0.5");
        assert_eq!(format_g(1e-7), "1e-07");
        assert_eq!(format_g(123456.0), "123456");
        assert_eq!(format_g(1234567.0), "1.234567e+06");
        assert_eq!(format_g(-0.0001), "-0.0001");
        assert_eq!(format_g(0.00001), "1e-05");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(1e21), "1000000000000000000000");
    }
}
