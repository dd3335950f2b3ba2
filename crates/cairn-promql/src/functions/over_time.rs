//! `*_over_time`, `changes`, `resets`, `deriv`, `predict_linear`,
//! `double_exponential_smoothing`: functions of a window's samples, as in
//! promql/functions.go.

use cairn_model::Sample;
use promql_parser::parser::Call;

use super::math::quantile;
use super::{absent_labels, arg, eval_range_fn, scalar_arg_or, unparen};
use crate::eval::Evaluator;
use crate::value::{kahan_inc, StepSeries, Val};
use crate::QueryError;

pub(super) fn eval(ev: &Evaluator, call: &Call, name: &str) -> Result<Option<Val>, QueryError> {
    let out = match name {
        "avg_over_time" => simple(ev, call, true, |s| Some(avg(s)))?,
        "sum_over_time" => simple(ev, call, true, |s| Some(sum(s)))?,
        "count_over_time" => simple(ev, call, true, |s| Some(s.len() as f64))?,
        "min_over_time" => simple(ev, call, true, |s| {
            Some(compare(s, |cur, m| cur < m || m.is_nan()).0)
        })?,
        "max_over_time" => simple(ev, call, true, |s| {
            Some(compare(s, |cur, m| cur > m || m.is_nan()).0)
        })?,
        "ts_of_min_over_time" => simple(ev, call, true, |s| {
            Some(compare(s, |cur, m| cur <= m || m.is_nan()).1 as f64 / 1000.0)
        })?,
        "ts_of_max_over_time" => simple(ev, call, true, |s| {
            Some(compare(s, |cur, m| cur >= m || m.is_nan()).1 as f64 / 1000.0)
        })?,
        "ts_of_first_over_time" => simple(ev, call, true, |s| Some(s[0].t as f64 / 1000.0))?,
        "ts_of_last_over_time" => {
            simple(ev, call, true, |s| Some(s[s.len() - 1].t as f64 / 1000.0))?
        }
        "last_over_time" => simple(ev, call, false, |s| Some(s[s.len() - 1].v))?,
        "first_over_time" => simple(ev, call, false, |s| Some(s[0].v))?,
        "present_over_time" => simple(ev, call, true, |_| Some(1.0))?,
        "stddev_over_time" => simple(ev, call, true, |s| Some(variance(s).sqrt()))?,
        "stdvar_over_time" => simple(ev, call, true, |s| Some(variance(s)))?,
        "mad_over_time" => simple(ev, call, true, |s| Some(mad(s)))?,
        "changes" => simple(ev, call, true, |s| Some(changes(s)))?,
        "resets" => simple(ev, call, true, |s| Some(resets(s)))?,
        "deriv" => simple(ev, call, true, |s| {
            if s.len() < 2 {
                return None;
            }
            Some(linear_regression(s, s[0].t).0)
        })?,
        "quantile_over_time" => {
            let q = ev.eval_scalar(arg(call, 0)?)?;
            let range_arg = ev.eval_range_arg(arg(call, 1)?)?;
            let out = eval_range_fn(ev, range_arg, true, |w, s| {
                let qv = q.get(w.step).copied().unwrap_or(f64::NAN);
                let mut values: Vec<f64> = s.iter().map(|p| p.v).collect();
                Some(quantile(qv, &mut values))
            })?;
            // Warn about the quantiles of the steps that produced a value.
            let mut used: Vec<f64> = out
                .iter()
                .flat_map(|s| s.points.iter().map(|p| q[p.step]))
                .filter(|qv| qv.is_nan() || !(0.0..=1.0).contains(qv))
                .collect();
            used.truncate(1);
            if !used.is_empty() {
                super::quantile_param_warnings(ev, &used, Some(arg(call, 0)?));
            }
            out
        }
        "predict_linear" => {
            let range_arg = ev.eval_range_arg(arg(call, 0)?)?;
            let duration = ev.eval_scalar(arg(call, 1)?)?;
            eval_range_fn(ev, range_arg, true, |w, s| {
                if s.len() < 2 {
                    return None;
                }
                let d = duration.get(w.step).copied().unwrap_or(f64::NAN);
                let (slope, intercept) = linear_regression(s, w.ts);
                Some(slope * d + intercept)
            })?
        }
        "holt_winters" | "double_exponential_smoothing" => {
            let range_arg = ev.eval_range_arg(arg(call, 0)?)?;
            let sf = scalar_arg_or(ev, call, 1, f64::NAN)?;
            let tf = scalar_arg_or(ev, call, 2, f64::NAN)?;
            let err = std::sync::Mutex::new(None);
            let out = eval_range_fn(ev, range_arg, true, |w, s| {
                let sfv = sf.get(w.step).copied().unwrap_or(f64::NAN);
                let tfv = tf.get(w.step).copied().unwrap_or(f64::NAN);
                // NaN factors fail these checks too, as in Go.
                let problem = if !(sfv > 0.0 && sfv < 1.0) {
                    Some(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {sfv:.6}"
                    ))
                } else if !(tfv > 0.0 && tfv < 1.0) {
                    Some(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {tfv:.6}"
                    ))
                } else {
                    None
                };
                if let Some(p) = problem {
                    err.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(p);
                    return None;
                }
                double_exponential_smoothing(s, sfv, tfv)
            })?;
            if let Some(e) = err.into_inner().unwrap_or_else(|e| e.into_inner()) {
                return Err(QueryError::Execution(e));
            }
            out
        }
        "absent_over_time" => {
            let a = arg(call, 0)?;
            let range_arg = ev.eval_range_arg(a)?;
            let present = eval_range_fn(ev, range_arg, true, |_, _| Some(1.0))?;
            let points = super::math::absent_points(&present, ev.nsteps);
            if points.is_empty() {
                Vec::new()
            } else {
                // Only a direct matrix selector contributes labels.
                let labels = absent_labels(unparen(a));
                vec![StepSeries {
                    labels,
                    drop_name: true,
                    points,
                }]
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(Val::Vector(out)))
}

/// A function of the window alone, on the first argument.
fn simple(
    ev: &Evaluator,
    call: &Call,
    drop_name: bool,
    f: impl Fn(&[Sample]) -> Option<f64> + Sync,
) -> Result<Vec<StepSeries>, QueryError> {
    let range_arg = ev.eval_range_arg(arg(call, 0)?)?;
    eval_range_fn(ev, range_arg, drop_name, |_, s| f(s))
}

/// `avg_over_time`: Kahan sum, switching to an incremental mean on overflow.
fn avg(s: &[Sample]) -> f64 {
    let mut sum = s[0].v;
    let mut count = 1.0;
    let mut mean = 0.0;
    let mut c = 0.0;
    let mut incremental = false;
    for (i, p) in s[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(p.v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        let (m, nc) = kahan_inc(p.v / count, q * mean, q * c);
        mean = m;
        c = nc;
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

fn sum(s: &[Sample]) -> f64 {
    let mut sum = 0.0;
    let mut c = 0.0;
    for p in s {
        let (ns, nc) = kahan_inc(p.v, sum, c);
        sum = ns;
        c = nc;
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + c
    }
}

/// `compareOverTime`: the selected value and its timestamp.
fn compare(s: &[Sample], better: impl Fn(f64, f64) -> bool) -> (f64, i64) {
    let mut best = s[0].v;
    let mut ts = s[0].t;
    for p in s {
        if better(p.v, best) {
            best = p.v;
            ts = p.t;
        }
    }
    (best, ts)
}

/// `varianceOverTime`: Welford with Kahan compensation.
fn variance(s: &[Sample]) -> f64 {
    let mut count = 0.0;
    let (mut mean, mut c_mean) = (0.0, 0.0);
    let (mut aux, mut c_aux) = (0.0, 0.0);
    for p in s {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        let (m, cm) = kahan_inc(delta / count, mean, c_mean);
        mean = m;
        c_mean = cm;
        let (a, ca) = kahan_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
        aux = a;
        c_aux = ca;
    }
    (aux + c_aux) / count
}

/// `mad_over_time`: median absolute deviation.
fn mad(s: &[Sample]) -> f64 {
    let mut values = Vec::with_capacity(s.len());
    for p in s {
        if p.v.is_nan() {
            return f64::NAN;
        }
        values.push(p.v);
    }
    let median = quantile(0.5, &mut values);
    for v in values.iter_mut() {
        *v = (*v - median).abs();
    }
    quantile(0.5, &mut values)
}

fn changes(s: &[Sample]) -> f64 {
    let mut n = 0;
    for pair in s.windows(2) {
        let (prev, cur) = (pair[0].v, pair[1].v);
        if cur != prev && !(cur.is_nan() && prev.is_nan()) {
            n += 1;
        }
    }
    n as f64
}

fn resets(s: &[Sample]) -> f64 {
    s.windows(2).filter(|w| w[1].v < w[0].v).count() as f64
}

/// `linearRegression`: slope and intercept at `intercept_time`, Kahan sums.
pub(crate) fn linear_regression(s: &[Sample], intercept_time: i64) -> (f64, f64) {
    let mut n = 0.0;
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    let init_y = s[0].v;
    let mut const_y = true;
    for (i, p) in s.iter().enumerate() {
        if const_y && i > 0 && p.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.t - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// `funcDoubleExponentialSmoothing`.
fn double_exponential_smoothing(s: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = s[0].v;
    let mut b = s[1].v - s[0].v;
    for (i, p) in s.iter().enumerate().skip(1) {
        let x = sf * p.v;
        b = if i - 1 == 0 {
            b
        } else {
            tf * (s1 - s0) + (1.0 - tf) * b
        };
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}
