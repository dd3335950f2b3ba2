//! `rate`, `increase`, `delta`, `irate`, `idelta`, as promql/functions.go
//! `extrapolatedRate` and `instantValue`.

use cairn_model::Sample;
use promql_parser::parser::Call;

use super::{arg, eval_range_fn, eval_range_fn_with, unparen, Window};
use crate::eval::Evaluator;
use crate::value::Val;
use crate::QueryError;

pub(super) fn eval(ev: &Evaluator, call: &Call, name: &str) -> Result<Option<Val>, QueryError> {
    let (is_counter, is_rate, instant) = match name {
        "rate" => (true, true, false),
        "increase" => (true, false, false),
        "delta" => (false, false, false),
        "irate" => (true, true, true),
        "idelta" => (false, false, true),
        _ => return Ok(None),
    };
    let arg_expr = arg(call, 0)?;
    let range_arg = ev.eval_range_arg(arg_expr)?;
    let out = if instant {
        eval_range_fn(ev, range_arg, true, |_, samples| {
            instant_value(samples, is_rate)
        })?
    } else if is_counter {
        eval_range_fn_with(ev, range_arg, true, counter_resets, |w, samples, resets| {
            let in_window = resets_in(resets, w.offset, samples.len());
            extrapolated_rate(w, samples, in_window, is_counter, is_rate)
        })?
    } else {
        eval_range_fn(ev, range_arg, true, |w, samples| {
            extrapolated_rate(w, samples, &[], is_counter, is_rate)
        })?
    };
    if matches!(name, "rate" | "increase") {
        // Prometheus: info when the input might not be a counter, for every
        // series that produced a point (the outputs keep the input labels).
        let mut pos: Option<String> = None;
        for s in &out {
            let Some(metric) = s.labels.metric_name() else {
                continue;
            };
            if !metric.ends_with("_total")
                && !metric.ends_with("_sum")
                && !metric.ends_with("_count")
                && !metric.ends_with("_bucket")
            {
                ev.sh.info(format!(
                    "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}{}",
                    pos.get_or_insert_with(|| ev.sh.pos(unparen(arg_expr)))
                ));
            }
        }
    }
    Ok(Some(Val::Vector(out)))
}

/// Indices `i` of a series' samples where the value drops below the one
/// before (a counter reset), ascending; usually none, so a window's rate
/// costs no pass over its samples.
fn counter_resets(samples: &[Sample]) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, pair) in samples.windows(2).enumerate() {
        if pair[1].v < pair[0].v {
            out.push((i + 1) as u32);
        }
    }
    out
}

/// The resets of the window `samples[offset..offset + len]`: reset indices
/// `i` with both `i - 1` and `i` inside it.
fn resets_in(resets: &[u32], offset: usize, len: usize) -> &[u32] {
    if resets.is_empty() {
        return resets;
    }
    let from = resets.partition_point(|&i| (i as usize) <= offset);
    let to = resets.partition_point(|&i| (i as usize) < offset + len);
    &resets[from..to.max(from)]
}

/// `extrapolatedRate` for float samples: counter resets are compensated,
/// and the result is extrapolated towards the window boundaries by at most
/// 1.1× the average sample interval (half an interval otherwise), never
/// below a counter's zero point.
pub(crate) fn extrapolated_rate(
    w: &Window,
    samples: &[Sample],
    resets: &[u32],
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        // `resets` holds, in order, the indices (in the series) of the
        // window's samples that are below their predecessor: Prometheus adds
        // the predecessor's value for each, in the same order.
        let offset = w.offset;
        for &i in resets {
            result += samples[i as usize - offset - 1].v;
        }
    }
    let range_start = w.start;
    let range_end = w.end;
    let mut duration_to_start = (first.t - range_start) as f64 / 1000.0;
    let mut duration_to_end = (range_end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let num_minus_one = (samples.len() - 1) as f64;
    let average_between = sampled_interval / num_minus_one;
    let threshold = average_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between / 2.0;
    }
    if is_counter {
        let mut duration_to_zero = duration_to_start;
        if result > 0.0 && first.v >= 0.0 {
            duration_to_zero = sampled_interval * (first.v / result);
        }
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between / 2.0;
    }
    let mut factor = 1.0;
    if sampled_interval != 0.0 {
        factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    }
    if is_rate {
        factor /= w.range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `instantValue`: the last two samples of the window.
pub(crate) fn instant_value(samples: &[Sample], is_rate: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let prev = samples[samples.len() - 2];
    let last = samples[samples.len() - 1];
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    let mut v = last.v;
    let reset = last.v < prev.v;
    if !is_rate || !reset {
        v = last.v - prev.v;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reset index yields, for every window, exactly the resets a pass
    /// over the window's pairs finds, in order (so the sum is the same).
    #[test]
    fn reset_index_gives_each_windows_resets_in_order() {
        let values = [
            5.0,
            3.0,
            4.0,
            4.0,
            1.0,
            0.0,
            7.0,
            2.0,
            2.5,
            f64::NAN,
            1.0,
            0.5,
        ];
        let samples: Vec<Sample> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Sample::new(i as i64 * 1000, *v))
            .collect();
        let resets = counter_resets(&samples);
        for lo in 0..samples.len() {
            for hi in lo + 1..=samples.len() {
                let window = &samples[lo..hi];
                let pass: Vec<usize> = (1..window.len())
                    .filter(|&j| window[j].v < window[j - 1].v)
                    .map(|j| lo + j)
                    .collect();
                let indexed: Vec<usize> = resets_in(&resets, lo, hi - lo)
                    .iter()
                    .map(|&i| i as usize)
                    .collect();
                assert_eq!(indexed, pass, "window {lo}..{hi}");
            }
        }
        assert!(resets_in(&[], 3, 4).is_empty());
    }
}
