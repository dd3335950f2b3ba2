//! The evaluator core: walks the AST once for all steps of a query.
//!
//! Like Prometheus's `evaluator`, every node is evaluated over the whole step
//! range `[start, end]` at once; selectors walk each series' samples across
//! the steps with a moving cursor instead of re-running per step.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_model::{Labels, Queryable, Sample};
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr};

use crate::annotations::AnnotationSet;
use crate::value::{RangeSeries, StepSeries, Val};
use crate::{aggregate, binary, functions, selector, QueryError};

/// Default step of a subquery without one (`x[10m:]`): Prometheus's default
/// global evaluation interval.
pub(crate) const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// State shared by all evaluators of one query (subqueries included).
pub(crate) struct Shared<'a> {
    pub queryable: &'a dyn Queryable,
    pub query: &'a str,
    pub lookback_ms: i64,
    pub max_samples: usize,
    /// Points currently held, as Prometheus's `currentSamples`.
    pub current_samples: AtomicUsize,
    /// Samples loaded from storage.
    pub total_samples: AtomicU64,
    pub deadline: Instant,
    pub cancel: Option<Arc<AtomicBool>>,
    pub annotations: Mutex<AnnotationSet>,
    /// The query's own start and end, for `@ start()` and `@ end()`.
    pub query_start: i64,
    pub query_end: i64,
    /// The query's step (0 for instant queries), for `step()`.
    pub query_step: i64,
    /// String literals that are invalid UTF-8 in Go (see
    /// [`crate::annotations::invalid_utf8_literals`]).
    pub invalid_strings: Vec<(String, String)>,
}

impl<'a> Shared<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        queryable: &'a dyn Queryable,
        query: &'a str,
        lookback_ms: i64,
        max_samples: usize,
        timeout: Duration,
        cancel: Option<Arc<AtomicBool>>,
        query_start: i64,
        query_end: i64,
        query_step: i64,
    ) -> Shared<'a> {
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        Shared {
            queryable,
            query,
            lookback_ms,
            max_samples,
            current_samples: AtomicUsize::new(0),
            total_samples: AtomicU64::new(0),
            deadline,
            cancel,
            annotations: Mutex::new(AnnotationSet::default()),
            query_start,
            query_end,
            query_step,
            invalid_strings: crate::annotations::invalid_utf8_literals(query),
        }
    }

    /// Checks the cancel flag and the deadline; cheap enough to call per step.
    pub fn check(&self) -> Result<(), QueryError> {
        // A per-thread counter: workers of one query must not contend on it.
        thread_local! {
            static CHECKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        }
        let n = CHECKS.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        if !n.is_multiple_of(64) {
            return Ok(());
        }
        self.check_now()
    }

    pub fn check_now(&self) -> Result<(), QueryError> {
        if let Some(cancel) = &self.cancel {
            if cancel.load(Ordering::Relaxed) {
                return Err(QueryError::Canceled("expression evaluation"));
            }
        }
        if Instant::now() >= self.deadline {
            return Err(QueryError::Timeout("expression evaluation"));
        }
        Ok(())
    }

    /// Accounts for `n` more points in memory; fails past `max_samples`.
    pub fn add_samples(&self, n: usize) -> Result<(), QueryError> {
        let total = self
            .current_samples
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        if total > self.max_samples {
            return Err(QueryError::TooManySamples("query execution"));
        }
        Ok(())
    }

    /// Points currently accounted for.
    pub fn samples_now(&self) -> usize {
        self.current_samples.load(Ordering::Relaxed)
    }

    /// Resets the in-memory count to `base + n` after a node replaced its inputs.
    pub fn reset_samples(&self, base: usize, n: usize) -> Result<(), QueryError> {
        self.current_samples.store(base, Ordering::Relaxed);
        self.add_samples(n)
    }

    pub fn loaded(&self, n: usize) {
        self.total_samples.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn warn(&self, text: String) {
        self.annotations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .warn(text);
    }

    pub fn info(&self, text: String) {
        self.annotations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .info(text);
    }

    /// ` (line:col)` of a sub-expression for annotation texts, or "".
    pub fn pos(&self, e: &Expr) -> String {
        crate::annotations::position(self.query, e)
    }
}

/// Evaluates expressions over the steps `start, start+interval, ..., end`.
pub(crate) struct Evaluator<'a> {
    pub sh: &'a Shared<'a>,
    pub start: i64,
    pub end: i64,
    /// Step, at least 1 ms.
    pub interval: i64,
    pub nsteps: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(
        sh: &'a Shared<'a>,
        start: i64,
        end: i64,
        interval: i64,
    ) -> Result<Evaluator<'a>, QueryError> {
        if interval <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        let nsteps = if end < start {
            0
        } else {
            let span = (end as i128) - (start as i128);
            let steps = span / (interval as i128) + 1;
            if steps > sh.max_samples as i128 {
                return Err(QueryError::TooManySamples("query execution"));
            }
            steps as usize
        };
        Ok(Evaluator {
            sh,
            start,
            end,
            interval,
            nsteps,
        })
    }

    /// Timestamp of step `i`.
    pub fn ts(&self, i: usize) -> i64 {
        // Cannot overflow: start + (nsteps-1)*interval <= end.
        self.start + (i as i64) * self.interval
    }

    pub fn is_instant(&self) -> bool {
        self.nsteps == 1
    }

    pub fn eval(&self, expr: &Expr) -> Result<Val, QueryError> {
        self.sh.check_now()?;
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; self.nsteps])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => self.eval_unary(&u.expr),
            Expr::VectorSelector(vs) => selector::eval_vector_selector(self, vs),
            Expr::MatrixSelector(ms) => {
                let arg = selector::eval_matrix_selector(self, ms)?;
                self.range_value(arg)
            }
            Expr::Subquery(sq) => {
                let arg = self.eval_subquery(sq)?;
                self.range_value(arg)
            }
            Expr::Aggregate(a) => aggregate::eval_aggregate(self, a),
            Expr::Binary(b) => binary::eval_binary(self, b),
            Expr::Call(c) => functions::eval_call(self, c),
            Expr::Extension(_) => Err(QueryError::BadData(
                "unsupported expression extension".into(),
            )),
        }
    }

    /// A range vector as a value (an instant query's result), counted
    /// against `max_samples`.
    fn range_value(&self, arg: RangeArg) -> Result<Val, QueryError> {
        let series = arg.into_instant_matrix(self);
        self.sh
            .add_samples(series.iter().map(|s| s.samples.len()).sum())?;
        Ok(Val::Matrix(series))
    }

    /// Evaluates `expr` expecting an instant vector.
    pub fn eval_vector(&self, expr: &Expr) -> Result<Vec<StepSeries>, QueryError> {
        match self.eval(expr)? {
            Val::Vector(v) => Ok(v),
            other => Err(QueryError::BadData(format!(
                "expected type instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates `expr` expecting a scalar.
    pub fn eval_scalar(&self, expr: &Expr) -> Result<Vec<f64>, QueryError> {
        match self.eval(expr)? {
            Val::Scalar(v) => Ok(v),
            other => Err(QueryError::BadData(format!(
                "expected type scalar, got {}",
                other.type_name()
            ))),
        }
    }

    fn eval_unary(&self, inner: &Expr) -> Result<Val, QueryError> {
        match self.eval(inner)? {
            Val::Scalar(mut v) => {
                for x in v.iter_mut() {
                    *x = -*x;
                }
                Ok(Val::Scalar(v))
            }
            Val::Vector(mut series) => {
                for s in series.iter_mut() {
                    s.drop_name = true;
                    for p in s.points.iter_mut() {
                        p.v = -p.v;
                    }
                }
                Ok(Val::Vector(series))
            }
            other => Err(QueryError::BadData(format!(
                "unary expression only allowed on expressions of type scalar or vector, got: {}",
                other.type_name()
            ))),
        }
    }

    /// The range-vector argument of a function: a matrix selector or a subquery.
    pub fn eval_range_arg(&self, expr: &Expr) -> Result<RangeArg, QueryError> {
        match expr {
            Expr::MatrixSelector(ms) => selector::eval_matrix_selector(self, ms),
            Expr::Subquery(sq) => self.eval_subquery(sq),
            Expr::Paren(p) => self.eval_range_arg(&p.expr),
            _ => Err(QueryError::BadData(
                "expected type range vector in call to function".into(),
            )),
        }
    }

    /// Evaluates a subquery as Prometheus's `evalSubquery`: the inner
    /// expression runs at steps aligned to multiples of the subquery step.
    pub fn eval_subquery(&self, sq: &SubqueryExpr) -> Result<RangeArg, QueryError> {
        let range = duration_ms(&sq.range)?;
        let offset = offset_ms(sq.offset.as_ref())?;
        let at = self.at_ms(sq.at.as_ref())?;
        let step = match &sq.step {
            Some(d) => duration_ms(d)?,
            None => DEFAULT_SUBQUERY_STEP_MS,
        };
        if step <= 0 {
            return Err(QueryError::BadData("subquery step must be positive".into()));
        }
        let (outer_start, outer_end) = match at {
            Some(t) => (t, t),
            None => (self.start, self.end),
        };
        let sub_end = checked_sub(outer_end, offset)?;
        let lowest = checked_sub(checked_sub(outer_start, offset)?, range)?;
        // First timestamp after `lowest` that is a multiple of the step.
        let mut sub_start = (lowest / step).checked_mul(step).ok_or_else(overflow)?;
        if sub_start <= lowest {
            sub_start = checked_add(sub_start, step)?;
        }
        let inner = Evaluator::new(self.sh, sub_start, sub_end, step)?;
        let base = self.sh.samples_now();
        let val = inner.eval(&sq.expr)?;
        let series: Vec<RangeSeries> = match val {
            Val::Vector(v) => v
                .into_iter()
                .map(|s| RangeSeries {
                    samples: s
                        .points
                        .iter()
                        .map(|p| Sample::new(inner.ts(p.step), p.v))
                        .collect(),
                    labels: s.labels,
                    drop_name: s.drop_name,
                })
                .filter(|s| !s.samples.is_empty())
                .collect(),
            Val::Scalar(v) => {
                let samples: Vec<Sample> = v
                    .iter()
                    .enumerate()
                    .map(|(i, x)| Sample::new(inner.ts(i), *x))
                    .collect();
                if samples.is_empty() {
                    Vec::new()
                } else {
                    vec![RangeSeries {
                        labels: Labels::empty(),
                        drop_name: false,
                        samples,
                    }]
                }
            }
            other => {
                return Err(QueryError::BadData(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    other.type_name()
                )))
            }
        };
        let n: usize = series.iter().map(|s| s.samples.len()).sum();
        self.sh.reset_samples(base, n)?;
        Ok(RangeArg {
            input: RangeInput::Series(series),
            range,
            offset,
            at,
        })
    }

    /// Resolves an `@` modifier to milliseconds.
    pub fn at_ms(&self, at: Option<&AtModifier>) -> Result<Option<i64>, QueryError> {
        Ok(match at {
            None => None,
            Some(AtModifier::Start) => Some(self.sh.query_start),
            Some(AtModifier::End) => Some(self.sh.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(*t)?),
        })
    }
}

/// The series of a range-vector argument.
pub(crate) enum RangeInput {
    /// Evaluated already (a subquery).
    Series(Vec<RangeSeries>),
    /// A matrix selector's storage answer, decoded series by series as it
    /// is read; staleness markers are dropped on reading.
    Storage(Box<dyn cairn_model::SeriesSet>),
}

/// A range-vector argument: series with raw samples and the window geometry.
/// At step `ts` the window is `(e - range, e]` with `e = (at or ts) - offset`.
pub(crate) struct RangeArg {
    pub input: RangeInput,
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

impl RangeArg {
    /// The window end at evaluation time `ts`.
    pub fn window_end(&self, ts: i64) -> i64 {
        self.at.unwrap_or(ts).saturating_sub(self.offset)
    }

    /// The samples of each series inside the window of the (single) step, for
    /// a range vector returned as a value.
    pub fn into_instant_matrix(self, ev: &Evaluator) -> Vec<RangeSeries> {
        if ev.nsteps == 0 {
            return Vec::new();
        }
        let end = self.window_end(ev.ts(0));
        let start = end.saturating_sub(self.range);
        let in_window = |p: &cairn_model::Sample| p.t > start && p.t <= end;
        match self.input {
            RangeInput::Series(series) => series
                .into_iter()
                .filter_map(|mut s| {
                    s.samples.retain(in_window);
                    if s.samples.is_empty() {
                        None
                    } else {
                        Some(s)
                    }
                })
                .collect(),
            RangeInput::Storage(set) => {
                let mut loaded = crate::parallel::Loaded::new(ev);
                let mut samples = Vec::new();
                let kept: Vec<Vec<cairn_model::Sample>> = (0..set.len())
                    .map(|i| {
                        samples.clear();
                        set.append_samples(i, &mut samples);
                        loaded.add(samples.len());
                        samples
                            .iter()
                            .filter(|p| !cairn_model::is_stale_nan(p.v) && in_window(p))
                            .copied()
                            .collect()
                    })
                    .collect();
                set.into_labels()
                    .into_iter()
                    .zip(kept)
                    .filter(|(_, samples)| !samples.is_empty())
                    .map(|(labels, samples)| RangeSeries {
                        labels,
                        drop_name: false,
                        samples,
                    })
                    .collect()
            }
        }
    }
}

pub(crate) fn overflow() -> QueryError {
    QueryError::BadData("timestamp out of range".into())
}

pub(crate) fn checked_sub(a: i64, b: i64) -> Result<i64, QueryError> {
    a.checked_sub(b).ok_or_else(overflow)
}

pub(crate) fn checked_add(a: i64, b: i64) -> Result<i64, QueryError> {
    a.checked_add(b).ok_or_else(overflow)
}

pub(crate) fn duration_ms(d: &Duration) -> Result<i64, QueryError> {
    i64::try_from(d.as_millis()).map_err(|_| overflow())
}

pub(crate) fn offset_ms(o: Option<&Offset>) -> Result<i64, QueryError> {
    Ok(match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d)?,
        Some(Offset::Neg(d)) => -duration_ms(d)?,
    })
}

pub(crate) fn system_time_ms(t: SystemTime) -> Result<i64, QueryError> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => Ok(-duration_ms(&e.duration())?),
    }
}
