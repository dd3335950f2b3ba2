//! `histogram_quantile` and `histogram_fraction` over classic `le` buckets,
//! as promql/quantile.go `BucketQuantile` and `BucketFraction`. Native
//! histograms are not stored by Cairn, so only classic buckets occur.

use std::collections::HashMap;

use cairn_model::Labels;
use promql_parser::parser::Call;

use super::{arg, format_g, unparen};
use crate::eval::Evaluator;
use crate::value::{transpose, SeriesBuilder, Val};
use crate::QueryError;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    pub upper: f64,
    pub count: f64,
}

pub(super) fn eval(ev: &Evaluator, call: &Call, name: &str) -> Result<Option<Val>, QueryError> {
    // `histogram_quantiles(v, "label", q1, q2, ...)` adds a label per quantile.
    let mut quantile_label: Option<String> = None;
    let mut q_exprs: Vec<&promql_parser::parser::Expr> = Vec::new();
    let (params, vec_expr) = match name {
        "histogram_quantile" => {
            q_exprs.push(arg(call, 0)?);
            (vec![ev.eval_scalar(arg(call, 0)?)?], arg(call, 1)?)
        }
        "histogram_quantiles" => {
            quantile_label = Some(super::string_arg(ev, arg(call, 1)?)?);
            let mut ps = Vec::new();
            for a in call.args.args.iter().skip(2) {
                q_exprs.push(a);
                ps.push(ev.eval_scalar(a)?);
            }
            (ps, arg(call, 0)?)
        }
        "histogram_fraction" => (
            vec![
                ev.eval_scalar(arg(call, 0)?)?,
                ev.eval_scalar(arg(call, 1)?)?,
            ],
            arg(call, 2)?,
        ),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // Only native histograms have these; float samples are ignored.
            let _ = ev.eval_vector(arg(call, 0)?)?;
            return Ok(Some(Val::Vector(Vec::new())));
        }
        _ => return Ok(None),
    };
    let input = ev.eval_vector(vec_expr)?;
    // Positions are found only when an annotation needs them.
    let pos_vec = std::cell::OnceCell::new();
    let pos_vec = || pos_vec.get_or_init(|| ev.sh.pos(unparen(vec_expr))).clone();
    let mut quantile_labels: HashMap<(usize, usize), Labels> = HashMap::new();
    // Group series by their labels without `le`, once. Results keep those
    // labels, `__name__` included, and drop the name at the end.
    let mut group_of: Vec<Option<usize>> = Vec::with_capacity(input.len());
    let mut uppers: Vec<f64> = Vec::with_capacity(input.len());
    let mut groups_found = crate::aggregate::GroupIndex::default();
    for s in &input {
        let le = s.labels.get("le").unwrap_or("");
        match parse_go_float(le) {
            Some(upper) => {
                let gi = groups_found.index_of(&s.labels, |name| name != "le");
                group_of.push(Some(gi));
                uppers.push(upper);
            }
            None => {
                group_of.push(None);
                uppers.push(f64::NAN);
                let metric = s.labels.metric_name().unwrap_or("");
                let name_part = if metric.is_empty() {
                    String::new()
                } else {
                    format!(" for metric name {metric:?}")
                };
                ev.sh.warn(format!(
                    "bucket label \"le\" is missing or has a malformed value of {le:?}{name_part}{}",
                    pos_vec()
                ));
            }
        }
    }
    let group_labels = groups_found.into_labels();
    let steps = transpose(&input, ev.nsteps);
    let mut builder = SeriesBuilder::default();
    let mut buckets: Vec<Vec<Bucket>> = vec![Vec::new(); group_labels.len()];
    let mut warned_q = vec![false; params.len()];
    let mut monotonicity: Vec<(String, Mono)> = Vec::new();
    for (step, vec) in steps.iter().enumerate() {
        ev.sh.check()?;
        for b in buckets.iter_mut() {
            b.clear();
        }
        let mut order: Vec<usize> = Vec::new();
        for &(si, v) in vec {
            if let Some(gi) = group_of[si] {
                if buckets[gi].is_empty() {
                    order.push(gi);
                }
                buckets[gi].push(Bucket {
                    upper: uppers[si],
                    count: v,
                });
            }
        }
        if name != "histogram_fraction" {
            for (qi, qparam) in params.iter().enumerate() {
                let q = qparam[step];
                if !warned_q[qi] && (q.is_nan() || !(0.0..=1.0).contains(&q)) {
                    warned_q[qi] = true;
                    ev.sh.warn(format!(
                        "quantile value should be between 0 and 1, got {}{}",
                        format_g(q),
                        ev.sh.pos(unparen(q_exprs[qi]))
                    ));
                }
                for &gi in &order {
                    let mut scratch = buckets[gi].clone();
                    let r = bucket_quantile(q, &mut scratch);
                    if r.forced_monotonic {
                        let metric = group_labels[gi].metric_name().unwrap_or("");
                        let t = ev.ts(step);
                        match monotonicity.iter_mut().find(|(k, _)| k == metric) {
                            Some((_, m)) => {
                                m.min_ts = m.min_ts.min(t);
                                m.max_ts = m.max_ts.max(t);
                                m.min_bucket = m.min_bucket.min(r.min_bucket);
                                m.max_bucket = m.max_bucket.max(r.max_bucket);
                                m.max_diff = m.max_diff.max(r.max_diff);
                                m.count += 1;
                            }
                            None => monotonicity.push((
                                metric.to_string(),
                                Mono {
                                    min_ts: t,
                                    max_ts: t,
                                    min_bucket: r.min_bucket,
                                    max_bucket: r.max_bucket,
                                    max_diff: r.max_diff,
                                    count: 1,
                                },
                            )),
                        }
                    }
                    match &quantile_label {
                        None => builder.push(&group_labels[gi], true, step, r.value)?,
                        Some(label) => {
                            let labels = quantile_labels.entry((gi, qi)).or_insert_with(|| {
                                let mut b = group_labels[gi].builder();
                                b.set(label, &format_openmetrics_float(q));
                                b.build()
                            });
                            builder.push(labels, true, step, r.value)?;
                        }
                    }
                }
            }
        } else {
            let (lower, upper) = (params[0][step], params[1][step]);
            for gi in order {
                let v = bucket_fraction(lower, upper, &mut buckets[gi]);
                builder.push(&group_labels[gi], true, step, v)?;
            }
        }
    }
    for (metric, m) in &monotonicity {
        let name_part = if metric.is_empty() {
            String::new()
        } else {
            format!(" for metric name {metric:?}")
        };
        ev.sh.info(format!(
            "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile){name_part}, from buckets {} to {}, with a max diff of {}, over {} samples from {} to {}{}",
            format_g(m.min_bucket),
            format_g(m.max_bucket),
            format_2g(m.max_diff),
            m.count,
            rfc3339(m.min_ts.div_euclid(1000)),
            rfc3339(m.max_ts.div_euclid(1000)),
            pos_vec()
        ));
    }
    Ok(Some(Val::Vector(builder.finish())))
}

/// Merged details of forced-monotonicity fixes, per metric name, as
/// Prometheus merges `histogramQuantileForcedMonotonicityErr`s.
struct Mono {
    min_ts: i64,
    max_ts: i64,
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
    count: u64,
}

/// `labels.FormatOpenMetricsFloat`: like `%g`, but integers keep a `.0`.
fn format_openmetrics_float(f: f64) -> String {
    let s = format_g(f);
    if f.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

/// Go's `%.2g`.
fn format_2g(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format_g(f);
    }
    let exp = f.abs().log10().floor() as i32;
    if !(-4..2).contains(&exp) {
        let s = format!("{f:.1e}");
        let s = match s.split_once('e') {
            Some((m, e)) => {
                let m = m.trim_end_matches('0').trim_end_matches('.');
                let (sign, d) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                let d = if d.len() < 2 {
                    format!("0{d}")
                } else {
                    d.to_string()
                };
                format!("{m}e{sign}{d}")
            }
            None => s,
        };
        return s;
    }
    let decimals = (1 - exp).max(0) as usize;
    let s = format!("{f:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn rfc3339(secs: i64) -> String {
    let (y, m, d) = super::time::civil(secs);
    let rem = secs.rem_euclid(86400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Go's `strconv.ParseFloat` for label values: decimal, exponent, `Inf`,
/// `+Inf`, `-Inf`, `NaN` (case-insensitive), `Infinity`.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let t = s.trim_start_matches(['+', '-']);
    let lower = t.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if lower == "nan" {
        return if t.len() == s.len() {
            Some(f64::NAN)
        } else {
            None
        };
    }
    if lower.starts_with("0x") {
        return None;
    }
    s.replace('_', "")
        .parse::<f64>()
        .ok()
        .filter(|_| !s.contains('_'))
}

pub(crate) struct QuantileResult {
    pub value: f64,
    pub forced_monotonic: bool,
    pub min_bucket: f64,
    pub max_bucket: f64,
    pub max_diff: f64,
}

fn sort_and_coalesce(buckets: &mut Vec<Bucket>) {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

/// Go's `almost.Equal`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
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

/// `BucketQuantile`.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> QuantileResult {
    let mut r = QuantileResult {
        value: f64::NAN,
        forced_monotonic: false,
        min_bucket: f64::INFINITY,
        max_bucket: f64::NEG_INFINITY,
        max_diff: 0.0,
    };
    if q.is_nan() {
        return r;
    }
    if q < 0.0 {
        r.value = f64::NEG_INFINITY;
        return r;
    }
    if q > 1.0 {
        r.value = f64::INFINITY;
        return r;
    }
    sort_and_coalesce_sorted_only(buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return r;
    }
    sort_and_coalesce(buckets);
    // ensureMonotonicAndIgnoreSmallDeltas
    let mut prev = buckets[0].count;
    for bucket in buckets.iter_mut().skip(1) {
        let curr = bucket.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            bucket.count = prev;
            continue;
        }
        if curr < prev {
            bucket.count = prev;
            r.forced_monotonic = true;
            r.min_bucket = r.min_bucket.min(bucket.upper);
            r.max_bucket = r.max_bucket.max(bucket.upper);
            if prev - curr > r.max_diff {
                r.max_diff = prev - curr;
            }
            continue;
        }
        prev = curr;
    }
    if buckets.len() < 2 {
        return r;
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return r;
    }
    let mut rank = q * observations;
    // sort.Search over the first n-1 buckets.
    let n1 = buckets.len() - 1;
    let b = buckets[..n1].partition_point(|bk| bk.count < rank || bk.count.is_nan());
    r.value = if b == n1 {
        buckets[n1 - 1].upper
    } else if b == 0 && buckets[0].upper <= 0.0 {
        buckets[0].upper
    } else {
        let mut bucket_start = 0.0;
        let bucket_end = buckets[b].upper;
        let mut count = buckets[b].count;
        if b > 0 {
            bucket_start = buckets[b - 1].upper;
            count -= buckets[b - 1].count;
            rank -= buckets[b - 1].count;
        }
        bucket_start + (bucket_end - bucket_start) * (rank / count)
    };
    r
}

fn sort_and_coalesce_sorted_only(buckets: &mut [Bucket]) {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
}

/// `BucketFraction`.
pub(crate) fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    sort_and_coalesce_sorted_only(buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return f64::NAN;
    }
    sort_and_coalesce(buckets);
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let mut rank = 0.0;
    let mut lower_rank = 0.0;
    let mut upper_rank = 0.0;
    let mut lower_set = false;
    let mut upper_set = false;
    let mut lower_bound = if buckets[0].upper <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper;
        }
        let upper_bound = b.upper;
        let interpolate = |v: f64| -> f64 {
            if lower_bound == f64::NEG_INFINITY {
                return b.count;
            }
            rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs
            .iter()
            .map(|(u, c)| Bucket {
                upper: *u,
                count: *c,
            })
            .collect()
    }

    #[test]
    fn quantile_interpolates_inside_bucket() {
        let mut buckets = b(&[(0.1, 10.0), (0.2, 20.0), (f64::INFINITY, 20.0)]);
        let r = bucket_quantile(0.5, &mut buckets);
        assert!((r.value - 0.1).abs() < 1e-12);
        assert!(!r.forced_monotonic);
    }

    #[test]
    fn quantile_without_inf_bucket_is_nan() {
        let mut buckets = b(&[(0.1, 10.0), (0.2, 20.0)]);
        assert!(bucket_quantile(0.5, &mut buckets).value.is_nan());
    }

    #[test]
    fn quantile_in_inf_bucket_returns_second_highest_bound() {
        let mut buckets = b(&[(1.0, 1.0), (2.0, 2.0), (f64::INFINITY, 10.0)]);
        assert_eq!(bucket_quantile(0.9, &mut buckets).value, 2.0);
    }

    #[test]
    fn quantile_out_of_range_and_empty() {
        let mut buckets = b(&[(1.0, 0.0), (f64::INFINITY, 0.0)]);
        assert!(bucket_quantile(0.5, &mut buckets).value.is_nan());
        let mut buckets = b(&[(1.0, 1.0), (f64::INFINITY, 2.0)]);
        assert_eq!(bucket_quantile(-1.0, &mut buckets).value, f64::NEG_INFINITY);
        assert_eq!(bucket_quantile(2.0, &mut buckets).value, f64::INFINITY);
    }

    #[test]
    fn non_monotonic_buckets_are_fixed() {
        let mut buckets = b(&[(1.0, 5.0), (2.0, 3.0), (f64::INFINITY, 6.0)]);
        let r = bucket_quantile(0.5, &mut buckets);
        assert!(r.forced_monotonic);
        assert_eq!(r.max_diff, 2.0);
    }

    #[test]
    fn go_float_parsing() {
        assert_eq!(parse_go_float("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_go_float("0.5"), Some(0.5));
        assert_eq!(parse_go_float("1e3"), Some(1000.0));
        assert_eq!(parse_go_float("x"), None);
        assert_eq!(parse_go_float(""), None);
    }
}
