//! Vector and matrix selectors: storage access, lookback and staleness.

use cairn_model::{
    is_stale_nan, DecodedSet, Labels, MatchOp, Matcher, SeriesSet, TimeRange, METRIC_NAME,
};
use promql_parser::label::MatchOp as ParserOp;
use promql_parser::parser::{MatrixSelector, VectorSelector};

use crate::eval::{checked_sub, duration_ms, offset_ms, Evaluator, RangeArg, RangeInput};
use crate::value::{Point, StepSeries, Val};
use crate::QueryError;

/// Converts a parsed selector's name and matchers to storage matchers.
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::BadData(
            "`or` inside label matchers is not supported".into(),
        ));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::equal(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        let op = match m.op {
            ParserOp::Equal => MatchOp::Equal,
            ParserOp::NotEqual => MatchOp::NotEqual,
            ParserOp::Re(_) => MatchOp::RegexMatch,
            ParserOp::NotRe(_) => MatchOp::RegexNoMatch,
        };
        let matcher = match Matcher::new(op, m.name.clone(), m.value.clone()) {
            Ok(matcher) => matcher,
            // Go accepts `a{b}` style literal braces that Rust's regex rejects;
            // the parser already escaped those, so retry with its pattern.
            Err(err) => match &m.op {
                ParserOp::Re(re) | ParserOp::NotRe(re) => {
                    let inner = re
                        .as_str()
                        .strip_prefix("^(?:")
                        .and_then(|s| s.strip_suffix(")$"))
                        .unwrap_or(re.as_str());
                    Matcher::new(op, m.name.clone(), inner.to_string())
                        .map_err(|_| QueryError::BadData(err.to_string()))?
                }
                _ => return Err(QueryError::BadData(err.to_string())),
            },
        };
        out.push(matcher);
    }
    Ok(out)
}

/// Selects series from storage, their samples decoded as the consumer
/// reads them (each consumer counts the samples it decodes as loaded).
pub(crate) fn fetch(
    ev: &Evaluator,
    matchers: &[Matcher],
    range: TimeRange,
) -> Result<Box<dyn SeriesSet>, QueryError> {
    ev.sh.check_now()?;
    if range.start > range.end {
        return Ok(Box::new(DecodedSet::default()));
    }
    Ok(ev.sh.queryable.select_set(matchers, range)?)
}

/// The selected sample of one series at each step: `(step, sample t, value)`.
pub(crate) struct InstantSamples {
    pub labels: Labels,
    pub points: Vec<(usize, i64, f64)>,
}

/// Evaluates an instant selector at every step: the latest sample in
/// `(ref - lookback, ref]` unless it is a staleness marker, where
/// `ref = (@ or step time) - offset` (Prometheus 3 left-open lookback).
pub(crate) fn select_instant(
    ev: &Evaluator,
    vs: &VectorSelector,
) -> Result<Vec<InstantSamples>, QueryError> {
    let matchers = selector_matchers(vs)?;
    let offset = offset_ms(vs.offset.as_ref())?;
    let at = ev.at_ms(vs.at.as_ref())?;
    select_instant_with(ev, &matchers, offset, at)
}

/// [`select_instant`] with the selector already resolved.
pub(crate) fn select_instant_with(
    ev: &Evaluator,
    matchers: &[Matcher],
    offset: i64,
    at: Option<i64>,
) -> Result<Vec<InstantSamples>, QueryError> {
    select_instant_map(ev, matchers, offset, at, |step, t, v| (step, t, v)).map(|selected| {
        selected
            .into_iter()
            .map(|(labels, points)| InstantSamples { labels, points })
            .collect()
    })
}

/// An instant selector's storage answer and the geometry to pick each
/// step's sample from it.
pub(crate) struct InstantFetch {
    pub set: Box<dyn SeriesSet>,
    offset: i64,
    at: Option<i64>,
    lookback: i64,
}

impl InstantFetch {
    /// The reference time of step `i`: `(@ or step time) - offset`.
    fn reference(&self, ev: &Evaluator, i: usize) -> i64 {
        self.at
            .unwrap_or_else(|| ev.ts(i))
            .saturating_sub(self.offset)
    }

    /// Calls `point(step, sample t, value)` for the sample `series`
    /// contributes at each step, in step order, with one cursor over its
    /// samples; returns how many it selected.
    pub fn walk(
        &self,
        ev: &Evaluator,
        samples: &[cairn_model::Sample],
        mut point: impl FnMut(usize, i64, f64),
    ) -> usize {
        let mut n = 0;
        let mut next = 0usize; // first sample with t > ref
        for step in 0..ev.nsteps {
            let r = self.reference(ev, step);
            while next < samples.len() && samples[next].t <= r {
                next += 1;
            }
            if next == 0 {
                continue;
            }
            let s = samples[next - 1];
            if s.t <= r.saturating_sub(self.lookback) || is_stale_nan(s.v) {
                continue;
            }
            point(step, s.t, s.v);
            n += 1;
        }
        n
    }
}

/// Reads what an instant selector needs for all steps from storage.
pub(crate) fn fetch_instant(
    ev: &Evaluator,
    matchers: &[Matcher],
    offset: i64,
    at: Option<i64>,
) -> Result<InstantFetch, QueryError> {
    let mut fetched = InstantFetch {
        set: Box::new(DecodedSet::default()),
        offset,
        at,
        lookback: ev.sh.lookback_ms,
    };
    if ev.nsteps == 0 {
        return Ok(fetched);
    }
    let first_ref = fetched.reference(ev, 0);
    let last_ref = fetched.reference(ev, ev.nsteps - 1);
    let range = TimeRange::new(
        first_ref.saturating_sub(fetched.lookback).saturating_add(1),
        last_ref,
    );
    fetched.set = fetch(ev, matchers, range)?;
    Ok(fetched)
}

/// The instant selection with each selected sample mapped by `point(step,
/// sample t, value)`, as `(labels, points)` per series that has any. The
/// series' labels are moved out of the storage answer, not copied.
fn select_instant_map<P: Send>(
    ev: &Evaluator,
    matchers: &[Matcher],
    offset: i64,
    at: Option<i64>,
    point: impl Fn(usize, i64, f64) -> P + Sync,
) -> Result<Vec<(Labels, Vec<P>)>, QueryError> {
    let fetched = fetch_instant(ev, matchers, offset, at)?;
    instant_points(ev, fetched, point)
}

/// [`select_instant_map`] over an answer already read. Series are split
/// across threads when the work is large; each thread decodes one series
/// at a time into a buffer it reuses.
pub(crate) fn instant_points<P: Send>(
    ev: &Evaluator,
    fetched: InstantFetch,
    point: impl Fn(usize, i64, f64) -> P + Sync,
) -> Result<Vec<(Labels, Vec<P>)>, QueryError> {
    let points = crate::parallel::map_decoded(ev, &*fetched.set, |samples| {
        let samples: &[cairn_model::Sample] = samples;
        let mut points = Vec::new();
        fetched.walk(ev, samples, |step, t, v| {
            if points.is_empty() {
                points.reserve_exact((ev.nsteps - step).min(samples.len()));
            }
            points.push(point(step, t, v));
        });
        if !points.is_empty() {
            ev.sh.add_samples(points.len())?;
        }
        Ok(points)
    })?;
    let mut selected = Vec::with_capacity(points.len());
    let mut garbage = Vec::new();
    for (labels, points) in fetched.set.into_labels().into_iter().zip(points) {
        if points.is_empty() {
            garbage.push(labels);
        } else {
            selected.push((labels, points));
        }
    }
    let allocations = garbage.len();
    crate::parallel::defer_drop(garbage, allocations);
    Ok(selected)
}

pub(crate) fn eval_vector_selector(ev: &Evaluator, vs: &VectorSelector) -> Result<Val, QueryError> {
    let matchers = selector_matchers(vs)?;
    let offset = offset_ms(vs.offset.as_ref())?;
    let at = ev.at_ms(vs.at.as_ref())?;
    let selected = select_instant_map(ev, &matchers, offset, at, |step, _, v| Point { step, v })?;
    Ok(Val::Vector(
        selected
            .into_iter()
            .map(|(labels, points)| StepSeries {
                labels,
                drop_name: false,
                points,
            })
            .collect(),
    ))
}

/// Selects what a matrix selector needs for all steps, decoded when the
/// range function reads it (which drops staleness markers, as Prometheus
/// never returns them from range selectors: [`RangeInput::Storage`]).
pub(crate) fn eval_matrix_selector(
    ev: &Evaluator,
    ms: &MatrixSelector,
) -> Result<RangeArg, QueryError> {
    let vs = &ms.vs;
    let matchers = selector_matchers(vs)?;
    let range = duration_ms(&ms.range)?;
    let offset = offset_ms(vs.offset.as_ref())?;
    let at = ev.at_ms(vs.at.as_ref())?;
    let mut arg = RangeArg {
        input: RangeInput::Series(Vec::new()),
        range,
        offset,
        at,
    };
    if ev.nsteps == 0 {
        return Ok(arg);
    }
    let first_end = arg.window_end(ev.ts(0));
    let last_end = arg.window_end(ev.ts(ev.nsteps - 1));
    let time_range = TimeRange::new(
        checked_sub(first_end, range)
            .unwrap_or(i64::MIN)
            .saturating_add(1),
        last_end,
    );
    arg.input = RangeInput::Storage(fetch(ev, &matchers, time_range)?);
    Ok(arg)
}
