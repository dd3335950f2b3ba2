//! `time`, `timestamp` and the calendar functions (`minute`, `hour`,
//! `day_of_week`, ...), evaluated in UTC as Prometheus's `dateWrapper`.

use cairn_model::Labels;
use promql_parser::parser::{Call, Expr};

use super::{arg, map_points};
use crate::eval::Evaluator;
use crate::selector::select_instant;
use crate::value::{Point, StepSeries, Val};
use crate::QueryError;

pub(super) fn eval(ev: &Evaluator, call: &Call, name: &str) -> Result<Option<Val>, QueryError> {
    let val = match name {
        "time" => Val::Scalar((0..ev.nsteps).map(|i| ev.ts(i) as f64 / 1000.0).collect()),
        "start" => Val::Scalar(vec![ev.sh.query_start as f64 / 1000.0; ev.nsteps]),
        "end" => Val::Scalar(vec![ev.sh.query_end as f64 / 1000.0; ev.nsteps]),
        "range" => Val::Scalar(vec![
            (ev.sh.query_end - ev.sh.query_start) as f64 / 1000.0;
            ev.nsteps
        ]),
        "step" => Val::Scalar(vec![ev.sh.query_step as f64 / 1000.0; ev.nsteps]),
        "timestamp" => {
            let a = arg(call, 0)?;
            if let Expr::VectorSelector(vs) = a {
                // The sample's own timestamp, not the step's
                // (`rangeEvalTimestampFunctionOverVectorSelector`).
                let selected = select_instant(ev, vs)?;
                Val::Vector(
                    selected
                        .into_iter()
                        .map(|s| StepSeries {
                            labels: s.labels,
                            drop_name: true,
                            points: s
                                .points
                                .into_iter()
                                .map(|(step, t, _)| Point {
                                    step,
                                    v: t as f64 / 1000.0,
                                })
                                .collect(),
                        })
                        .collect(),
                )
            } else {
                let v = ev.eval_vector(a)?;
                Val::Vector(map_points(v, true, |step, _| {
                    Some(ev.ts(step) as f64 / 1000.0)
                }))
            }
        }
        "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let f = date_fn(name);
            match call.args.args.first() {
                None => {
                    let points = (0..ev.nsteps)
                        .map(|step| Point {
                            step,
                            v: f(ev.ts(step).div_euclid(1000)),
                        })
                        .collect::<Vec<_>>();
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
                Some(a) => {
                    let v = ev.eval_vector(a)?;
                    Val::Vector(map_points(v, true, |_, x| Some(f(go_float_to_i64(x)))))
                }
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(val))
}

/// Go's `int64(f)` on amd64: truncation, and the minimum for NaN/overflow.
fn go_float_to_i64(f: f64) -> i64 {
    const LIMIT: f64 = 9.223_372_036_854_776e18;
    if f.is_nan() || !(-LIMIT..LIMIT).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

fn date_fn(name: &str) -> fn(i64) -> f64 {
    match name {
        "minute" => |s| (s.rem_euclid(3600) / 60) as f64,
        "hour" => |s| (s.rem_euclid(86400) / 3600) as f64,
        "day_of_month" => |s| civil(s).2 as f64,
        // 1970-01-01 was a Thursday (4).
        "day_of_week" => |s| ((s.div_euclid(86400) + 4).rem_euclid(7)) as f64,
        "day_of_year" => |s| {
            let (y, m, d) = civil(s);
            (days_before_month(y, m) + d) as f64
        },
        "days_in_month" => |s| {
            let (y, m, _) = civil(s);
            days_in_month(y, m) as f64
        },
        "month" => |s| civil(s).1 as f64,
        _ => |s| civil(s).0 as f64,
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
    }
}

fn days_before_month(y: i64, m: u32) -> u32 {
    (1..m).map(|mm| days_in_month(y, mm)).sum()
}

/// Civil date (year, month, day) of Unix seconds, proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil(secs: i64) -> (i64, u32, u32) {
    let z = secs.div_euclid(86400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(951_782_400), (2000, 2, 29));
        assert_eq!(civil(-86400), (1969, 12, 31));
    }
}
