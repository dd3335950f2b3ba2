//! Cairn's PromQL engine: evaluates expressions parsed by `promql-parser`
//! over any [`cairn_model::Queryable`], with Prometheus 3's semantics.
//!
//! API contract (the HTTP server and the conformance runner build on it):
//! [`Engine::instant_query`] and [`Engine::range_query`] return a
//! [`QueryResult`] (a [`Value`], annotations, statistics) or a [`QueryError`]
//! whose [`QueryError::error_type`] is the Prometheus API `errorType`.
//!
//! Brief overview of the modules:
//! - `eval` walks the AST once for all steps of a query (Prometheus's
//!   `rangeEval` model); every instant-vector node is a set of per-step series.
//! - `selector` turns selectors into storage reads with lookback and staleness.
//! - `binary` and `aggregate` are the operators; `functions/` holds one file
//!   per family of functions.
//! - `annotations` carries Prometheus's warning and info texts and finds
//!   the source positions they cite.
//! - `value` holds the internal per-step values; `parallel` splits
//!   per-series work of large queries across threads and frees large
//!   intermediate values on a background thread.
//!
//! Limits: a query is bounded by its timeout and cancel flag (checked as it
//! runs), by [`EngineOptions::max_samples`], and by
//! [`MAX_EXPRESSION_DEPTH`] so that evaluation never exhausts the stack.

mod aggregate;
mod annotations;
mod binary;
mod eval;
mod functions;
mod parallel;
mod parse_cache;
mod selector;
mod value;

pub use parallel::{take_worker_cpu_time, thread_cpu_time};
pub use selector::selector_matchers;

#[cfg(test)]
mod lazy_tests;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use cairn_model::{Labels, Queryable, Sample, Series, StorageError};

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (default 5m).
    pub lookback_delta_ms: i64,
    /// Most samples a query may hold in memory at once (default 50 million, as Prometheus).
    pub max_samples: usize,
    /// Timeout when the request sets none (default 2 minutes).
    pub default_timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            default_timeout: Duration::from_secs(120),
        }
    }
}

/// Per-query settings from the request.
#[derive(Clone, Debug, Default)]
pub struct QueryOptions {
    pub lookback_delta_ms: Option<i64>,
    pub timeout: Option<Duration>,
    /// Set to true to abandon the query (the client went away).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// A query's result, as the Prometheus API's `resultType` names them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(Sample),
    String {
        t: i64,
        value: String,
    },
    Vector(Vec<VectorSample>),
    /// Range query results and range-vector instant results, sorted by labels.
    Matrix(Vec<Series>),
}

/// Warning and info annotations, as full strings
/// (`PromQL warning: ... (1:6)`), as Prometheus emits them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueryStats {
    /// Samples loaded from storage (`stats=all`'s `totalQueryableSamples`).
    pub total_samples: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub annotations: Annotations,
    pub stats: QueryStats,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The expression does not parse or is invalid (`bad_data`, 400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (`execution`, 422), e.g. many-to-many matching.
    #[error("{0}")]
    Execution(String),
    /// `timeout` (503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// `canceled` (499).
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// `execution` (422), Prometheus's text.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
    /// `internal`/`execution` depending on the cause.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl QueryError {
    /// The Prometheus HTTP API `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::TooManySamples(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Canceled(_) => "canceled",
            QueryError::Storage(_) => "internal",
        }
    }
}

/// The PromQL engine.
pub struct Engine {
    options: EngineOptions,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Engine {
        Engine { options }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant_query(
        &self,
        queryable: &dyn Queryable,
        query: &str,
        time_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        self.run(queryable, query, time_ms, time_ms, 0, opts)
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive;
    /// the result is a matrix (a scalar expression gives one series with no labels).
    pub fn range_query(
        &self,
        queryable: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        self.run(queryable, query, start_ms, end_ms, step_ms, opts)
    }

    fn run(
        &self,
        queryable: &dyn Queryable,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        opts: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        let expr = parse_expr(query)?;
        let instant = step_ms == 0;
        if !instant {
            use promql_parser::parser::value::ValueType;
            let vt = expr.value_type();
            if !matches!(vt, ValueType::Scalar | ValueType::Vector) {
                let name = match vt {
                    ValueType::Matrix => "range vector",
                    ValueType::String => "string",
                    _ => "unknown",
                };
                return Err(QueryError::BadData(format!(
                    "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
                )));
            }
        }
        let lookback = opts
            .lookback_delta_ms
            .filter(|l| *l > 0)
            .unwrap_or(self.options.lookback_delta_ms);
        let timeout = opts.timeout.unwrap_or(self.options.default_timeout);
        let shared = eval::Shared::new(
            queryable,
            query,
            lookback,
            self.options.max_samples,
            timeout,
            opts.cancel.clone(),
            start_ms,
            end_ms,
            step_ms,
        );
        let ev = eval::Evaluator::new(&shared, start_ms, end_ms, step_ms.max(1))?;
        let val = ev.eval(&expr)?;
        let value = finish(&ev, val, instant)?;
        shared.check_now()?;
        Ok(QueryResult {
            value,
            annotations: shared
                .annotations
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .into_annotations(),
            stats: QueryStats {
                total_samples: shared
                    .total_samples
                    .load(std::sync::atomic::Ordering::Relaxed),
            },
        })
    }
}

/// Most nested sub-expressions a query may have.
pub const MAX_EXPRESSION_DEPTH: usize = 200;

/// Parses a query, rejecting expressions nested too deeply to evaluate
/// without risking the stack. Repeated queries come from a bounded cache
/// (see `parse_cache`).
pub fn parse_expr(query: &str) -> Result<promql_parser::parser::Expr, QueryError> {
    parse_cache::get_or_parse(query, parse_uncached)
}

fn parse_uncached(query: &str) -> Result<promql_parser::parser::Expr, QueryError> {
    // Cheap lexical bound first, so neither the parser nor dropping the AST
    // recurses without limit: nesting depth plus operator count.
    let mut depth = 0usize;
    let mut max_depth = 0usize;
    let mut operators = 0usize;
    let mut in_string: Option<char> = None;
    let mut escaped = false;
    for c in query.chars() {
        if let Some(q) = in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                in_string = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_string = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '<' | '>' | '=' | '!' => operators += 1,
            _ => {}
        }
    }
    if max_depth + operators / 2 > 4 * MAX_EXPRESSION_DEPTH {
        return Err(QueryError::BadData(format!(
            "query is too complex: nesting exceeds {MAX_EXPRESSION_DEPTH} levels"
        )));
    }
    // promql-parser 0.11.1 panics on some inputs (a unitless duration beyond
    // u64::MAX seconds, found by the fuzz target and pinned in
    // tests/fuzz_regressions.rs). A query must never panic: contain it and
    // answer bad_data with the parser's message.
    let parsed =
        std::panic::catch_unwind(|| promql_parser::parser::parse(query)).map_err(|payload| {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("the parser failed on this input");
            QueryError::BadData(format!("parse error: {message}"))
        })?;
    let expr = parsed.map_err(QueryError::BadData)?;
    if expr_depth(&expr, 0) > MAX_EXPRESSION_DEPTH {
        return Err(QueryError::BadData(format!(
            "query is too complex: nesting exceeds {MAX_EXPRESSION_DEPTH} levels"
        )));
    }
    Ok(expr)
}

fn expr_depth(e: &promql_parser::parser::Expr, d: usize) -> usize {
    use promql_parser::parser::Expr;
    if d > MAX_EXPRESSION_DEPTH {
        return d;
    }
    match e {
        Expr::Aggregate(a) => {
            let p = a.param.as_ref().map(|p| expr_depth(p, d + 1)).unwrap_or(d);
            p.max(expr_depth(&a.expr, d + 1))
        }
        Expr::Unary(u) => expr_depth(&u.expr, d + 1),
        Expr::Binary(b) => expr_depth(&b.lhs, d + 1).max(expr_depth(&b.rhs, d + 1)),
        Expr::Paren(p) => expr_depth(&p.expr, d + 1),
        Expr::Subquery(s) => expr_depth(&s.expr, d + 1),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .map(|a| expr_depth(a, d + 1))
            .max()
            .unwrap_or(d),
        _ => d,
    }
}

/// Turns the evaluated value into the API result: drops `__name__` where
/// delayed name removal asked for it (Prometheus's `cleanupMetricLabels`),
/// checks label-set uniqueness and sorts matrices by labels.
fn finish(ev: &eval::Evaluator, val: value::Val, instant: bool) -> Result<Value, QueryError> {
    use value::Val;
    let t0 = ev.start;
    Ok(match val {
        Val::String(s) => Value::String { t: t0, value: s },
        Val::Scalar(v) => {
            if instant {
                Value::Scalar(Sample::new(t0, v.first().copied().unwrap_or(f64::NAN)))
            } else {
                let samples: Vec<Sample> = v
                    .iter()
                    .enumerate()
                    .map(|(i, x)| Sample::new(ev.ts(i), *x))
                    .collect();
                Value::Matrix(vec![Series {
                    labels: Labels::empty(),
                    samples,
                }])
            }
        }
        Val::Vector(mut series) => {
            for s in series.iter_mut() {
                if s.drop_name {
                    s.labels = value::drop_metadata(&s.labels);
                    s.drop_name = false;
                }
            }
            if instant {
                let mut seen = std::collections::HashSet::new();
                let mut out = Vec::with_capacity(series.len());
                for s in series {
                    if !seen.insert(s.labels.clone()) {
                        return Err(QueryError::Execution(
                            "vector cannot contain metrics with the same labelset".into(),
                        ));
                    }
                    for p in s.points {
                        out.push(VectorSample {
                            labels: s.labels.clone(),
                            t: t0,
                            v: p.v,
                        });
                    }
                }
                Value::Vector(out)
            } else {
                let merged = binary::merge_same_labels(series)?;
                let mut out: Vec<Series> = merged
                    .into_iter()
                    .map(|s| Series {
                        samples: s
                            .points
                            .iter()
                            .map(|p| Sample::new(ev.ts(p.step), p.v))
                            .collect(),
                        labels: s.labels,
                    })
                    .collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(out)
            }
        }
        Val::Matrix(series) => {
            let mut out: Vec<Series> = series
                .into_iter()
                .map(|s| Series {
                    labels: if s.drop_name {
                        value::drop_metadata(&s.labels)
                    } else {
                        s.labels
                    },
                    samples: s.samples,
                })
                .collect();
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            // Series that became equal when their names were dropped merge
            // when their samples never share a timestamp
            // (`mergeSeriesWithSameLabelset`).
            let mut merged: Vec<Series> = Vec::with_capacity(out.len());
            for s in out {
                match merged.last_mut() {
                    Some(last) if last.labels == s.labels => {
                        last.samples.extend(s.samples);
                        last.samples.sort_by_key(|p| p.t);
                        if last.samples.windows(2).any(|w| w[0].t == w[1].t) {
                            return Err(QueryError::Execution(
                                "vector cannot contain metrics with the same labelset".into(),
                            ));
                        }
                    }
                    _ => merged.push(s),
                }
            }
            Value::Matrix(merged)
        }
    })
}
