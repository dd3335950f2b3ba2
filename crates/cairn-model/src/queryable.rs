//! The seam between the PromQL engine and storage.

use crate::{Labels, Matcher, Sample};

/// An inclusive time range in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

impl TimeRange {
    pub fn new(start: i64, end: i64) -> TimeRange {
        TimeRange { start, end }
    }

    /// The whole time line.
    pub fn all() -> TimeRange {
        TimeRange {
            start: i64::MIN,
            end: i64::MAX,
        }
    }

    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t <= self.end
    }
}

/// One selected series: its labels and its samples inside the requested
/// range, in timestamp order (staleness markers included).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The query would load more series than the caller's limit.
    #[error("the query exceeded the maximum number of series (limit: {limit})")]
    TooManySeries { limit: usize },
    /// A per-tenant query limit was reached; the message is complete (it
    /// names the limit, its value and its error ID).
    #[error("{0}")]
    LimitExceeded(String),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("storage i/o error")]
    Io(#[from] std::io::Error),
}

/// Read access to one tenant's data (or a federation of tenants).
///
/// Implementations snapshot what they need and release their locks before
/// returning, so a query never blocks ingestion for its whole duration.
pub trait Queryable: Send + Sync {
    /// Series that match every matcher and have at least one sample in
    /// `range`, sorted by labels, each with its samples inside `range`.
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError>;

    /// Sorted, unique label names of the series that match (all series when
    /// `matchers` is empty) with data in `range`.
    fn label_names(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError>;

    /// Sorted, unique values of label `name` over the series that match
    /// (all series when `matchers` is empty) with data in `range`.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError>;
}

/// A store without series: what a tenant that has never written reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyQueryable;

impl Queryable for EmptyQueryable {
    fn select(&self, _: &[Matcher], _: TimeRange) -> Result<Vec<Series>, StorageError> {
        Ok(Vec::new())
    }

    fn label_names(&self, _: &[Matcher], _: TimeRange) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }

    fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
}
