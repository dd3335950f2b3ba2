//! `sort`, `sort_desc`, `sort_by_label`, `sort_by_label_desc`. Order only
//! matters for instant queries; range results are always sorted by labels.

use std::cmp::Ordering;

use promql_parser::parser::Call;

use super::{arg, string_arg};
use crate::eval::Evaluator;
use crate::value::{StepSeries, Val};
use crate::QueryError;

pub(super) fn eval(ev: &Evaluator, call: &Call, name: &str) -> Result<Option<Val>, QueryError> {
    if !matches!(
        name,
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
    ) {
        return Ok(None);
    }
    if !ev.is_instant() || ev.start != ev.end {
        let pos = ev.sh.pos(&promql_parser::parser::Expr::Call(call.clone()));
        ev.sh.warn(format!(
            "sort is ineffective for range queries since results are always ordered by labels{pos}"
        ));
    }
    let mut series = ev.eval_vector(arg(call, 0)?)?;
    if !ev.is_instant() {
        return Ok(Some(Val::Vector(series)));
    }
    let value = |s: &StepSeries| s.points.first().map(|p| p.v).unwrap_or(f64::NAN);
    match name {
        // NaN sorts last in both directions.
        "sort" => series.sort_by(|a, b| nan_last(value(a), value(b), false)),
        "sort_desc" => series.sort_by(|a, b| nan_last(value(a), value(b), true)),
        _ => {
            let mut names = Vec::new();
            for a in call.args.args.iter().skip(1) {
                names.push(string_arg(ev, a)?);
            }
            let desc = name == "sort_by_label_desc";
            series.sort_by(|a, b| {
                for n in &names {
                    let va = a.labels.get(n).unwrap_or("");
                    let vb = b.labels.get(n).unwrap_or("");
                    if va == vb {
                        continue;
                    }
                    let ord = natural_cmp(va, vb);
                    if ord == Ordering::Equal {
                        continue;
                    }
                    return if desc { ord.reverse() } else { ord };
                }
                let ord = a.labels.cmp(&b.labels);
                if desc {
                    ord.reverse()
                } else {
                    ord
                }
            });
        }
    }
    Ok(Some(Val::Vector(series)))
}

fn nan_last(a: f64, b: f64, desc: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => {
            let o = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// Natural ("version") string order, as the `natsort` package Prometheus
/// uses: digit runs compare numerically.
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if ab[i] != bb[j] {
                return ab[i].cmp(&bb[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_digit_runs_as_numbers() {
        let mut v = vec![
            "10", "2", "1", "100", "20", "a10", "a9", "4m1000", "4m5", "4m600",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            vec!["1", "2", "4m5", "4m600", "4m1000", "10", "20", "100", "a9", "a10"]
        );
        assert_eq!(natural_cmp("1.2.3", "1.11.3"), Ordering::Less);
        assert_eq!(natural_cmp("1.111.3", "1.11.3"), Ordering::Greater);
    }
}
