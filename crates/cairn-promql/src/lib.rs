//! Cairn's PromQL engine: evaluates expressions parsed by `promql-parser`
//! over any [`cairn_model::Queryable`], with Prometheus 3's semantics.
//!
//! API contract (the HTTP server and the conformance runner build on it):
//! [`Engine::instant_query`] and [`Engine::range_query`] return a
//! [`QueryResult`] (a [`Value`], annotations, statistics) or a [`QueryError`]
//! whose [`QueryError::error_type`] is the Prometheus API `errorType`.

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
        _queryable: &dyn Queryable,
        _query: &str,
        _time_ms: i64,
        _opts: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        todo!()
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive;
    /// the result is a matrix (a scalar expression gives one series with no labels).
    pub fn range_query(
        &self,
        _queryable: &dyn Queryable,
        _query: &str,
        _start_ms: i64,
        _end_ms: i64,
        _step_ms: i64,
        _opts: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        todo!()
    }
}
