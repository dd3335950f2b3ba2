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

/// A selection whose samples are decoded when asked, one series at a time
/// (the idea of Prometheus's `storage.SeriesSet`): the labels of every
/// selected series are known up front, and a consumer that folds series by
/// series holds one series' samples at a time in a buffer it reuses, not
/// every sample of the answer at once.
///
/// A series may turn out to have no sample inside the range (its chunks
/// overlap the range but their samples fall around it): its
/// [`SeriesSet::append_samples`] appends nothing, and consumers skip it as
/// [`Queryable::select`] would have left it out.
pub trait SeriesSet: Send + Sync {
    /// Number of series, sorted by labels.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels of series `i` (`i < len()`).
    fn labels(&self, i: usize) -> &Labels;

    /// Appends the samples of series `i` inside the selection's range to
    /// `out`, in timestamp order (staleness markers included).
    fn append_samples(&self, i: usize, out: &mut Vec<Sample>);

    /// An estimate of the work of decoding every series, in samples: what
    /// decides whether a consumer spreads it over threads.
    fn decode_cost(&self) -> usize;

    /// Every series' labels, in order, moved out.
    fn into_labels(self: Box<Self>) -> Vec<Labels>;
}

/// A selection already decoded: [`Queryable::select`]'s answer as a
/// [`SeriesSet`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DecodedSet(pub Vec<Series>);

impl SeriesSet for DecodedSet {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn labels(&self, i: usize) -> &Labels {
        &self.0[i].labels
    }

    fn append_samples(&self, i: usize, out: &mut Vec<Sample>) {
        out.extend_from_slice(&self.0[i].samples);
    }

    fn decode_cost(&self) -> usize {
        self.0.iter().map(|s| s.samples.len()).sum()
    }

    fn into_labels(self: Box<Self>) -> Vec<Labels> {
        self.0.into_iter().map(|s| s.labels).collect()
    }
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

    /// [`Queryable::select`] with the samples decoded on demand (see
    /// [`SeriesSet`]): the same series in the same order, except that a
    /// series without samples in `range` may be listed (with none). What
    /// the PromQL engine reads through; stores that can decode lazily
    /// override it, the default decodes everything first.
    fn select_set(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Box<dyn SeriesSet>, StorageError> {
        Ok(Box::new(DecodedSet(self.select(matchers, range)?)))
    }

    /// Labels of the series [`Queryable::select`] would return, sorted, without
    /// their samples (the `/api/v1/series` endpoint). Stores that can answer
    /// from their index, decoding only chunks that straddle the range's ends,
    /// override it; the default selects and drops the samples.
    fn series_labels(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .select(matchers, range)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

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
