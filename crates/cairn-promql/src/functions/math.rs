//! Element-wise float functions and scalar/vector conversions
//! (`simpleFloatFunc`, `clamp*`, `round`, `vector`, `scalar`, `absent`, ...).

use cairn_model::Labels;
use promql_parser::parser::Call;

use super::{absent_labels, arg, map_points, scalar_arg_or};
use crate::eval::Evaluator;
use crate::value::{transpose, Point, StepSeries, Val};
use crate::QueryError;

/// Go's `vectorByValueHeap` order (NaN first) for sorting values.
fn less_nan_first(a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Prometheus's `quantile`: linear interpolation between closest ranks.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| less_nan_first(*a, *b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn simple_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

pub(super) fn eval(ev: &Evaluator, call: &Call, name: &str) -> Result<Option<Val>, QueryError> {
    if let Some(f) = simple_fn(name) {
        let v = ev.eval_vector(arg(call, 0)?)?;
        return Ok(Some(Val::Vector(map_points(v, true, |_, x| Some(f(x))))));
    }
    let val = match name {
        "pi" => Val::Scalar(vec![std::f64::consts::PI; ev.nsteps]),
        "max_of" | "min_of" => {
            let a = ev.eval_scalar(arg(call, 0)?)?;
            let b = ev.eval_scalar(arg(call, 1)?)?;
            Val::Scalar(
                a.iter()
                    .zip(b.iter())
                    .map(|(x, y)| {
                        if name == "max_of" {
                            go_max(*x, *y)
                        } else {
                            go_min(*x, *y)
                        }
                    })
                    .collect(),
            )
        }
        "round" => {
            let v = ev.eval_vector(arg(call, 0)?)?;
            let to = scalar_arg_or(ev, call, 1, 1.0)?;
            Val::Vector(map_points(v, true, |step, x| {
                let inv = 1.0 / to.get(step).copied().unwrap_or(1.0);
                Some((x * inv + 0.5).floor() / inv)
            }))
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(arg(call, 0)?)?;
            let (lo, hi) = match name {
                "clamp" => (
                    ev.eval_scalar(arg(call, 1)?)?,
                    ev.eval_scalar(arg(call, 2)?)?,
                ),
                "clamp_min" => (
                    ev.eval_scalar(arg(call, 1)?)?,
                    vec![f64::INFINITY; ev.nsteps],
                ),
                _ => (
                    vec![f64::NEG_INFINITY; ev.nsteps],
                    ev.eval_scalar(arg(call, 1)?)?,
                ),
            };
            Val::Vector(map_points(v, true, |step, x| {
                let (mn, mx) = (lo[step], hi[step]);
                if mx < mn {
                    return None;
                }
                Some(go_max(mn, go_min(mx, x)))
            }))
        }
        "vector" => {
            let s = ev.eval_scalar(arg(call, 0)?)?;
            let points: Vec<Point> = s
                .iter()
                .enumerate()
                .map(|(step, v)| Point { step, v: *v })
                .collect();
            if points.is_empty() {
                Val::Vector(Vec::new())
            } else {
                Val::Vector(vec![StepSeries {
                    labels: Labels::empty(),
                    drop_name: false,
                    points,
                }])
            }
        }
        "scalar" => {
            let v = ev.eval_vector(arg(call, 0)?)?;
            let steps = transpose(&v, ev.nsteps);
            Val::Scalar(
                steps
                    .iter()
                    .map(|vec| if vec.len() == 1 { vec[0].1 } else { f64::NAN })
                    .collect(),
            )
        }
        "absent" => {
            let a = arg(call, 0)?;
            let v = ev.eval_vector(a)?;
            let points = absent_points(&v, ev.nsteps);
            if points.is_empty() {
                Val::Vector(Vec::new())
            } else {
                Val::Vector(vec![StepSeries {
                    labels: absent_labels(a),
                    drop_name: false,
                    points,
                }])
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(val))
}

/// Go's `math.Max`: NaN wins, +Inf wins.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins, -Inf wins.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// A point of value 1 at every step where none of `series` has a point:
/// what `absent` and `absent_over_time` return.
pub(crate) fn absent_points(series: &[StepSeries], nsteps: usize) -> Vec<Point> {
    let mut seen = vec![false; nsteps];
    for s in series {
        for p in &s.points {
            seen[p.step] = true;
        }
    }
    seen.iter()
        .enumerate()
        .filter(|(_, seen)| !**seen)
        .map(|(step, _)| Point { step, v: 1.0 })
        .collect()
}
