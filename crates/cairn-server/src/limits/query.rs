//! Per-tenant query limits: checks on a query's time range, its timeout, and
//! a [`Queryable`] wrapper that clamps and counts what a query reads.
//!
//! Mimir's behaviour (`pkg/frontend/querymiddleware/limits.go`,
//! `pkg/querier/querier.go`, `pkg/util/validation/errors.go`):
//! - `max_total_query_length`: a range query longer than the limit is
//!   refused (400, `err-cairn-max-total-query-length`). Cairn does not split
//!   queries, so `max_partial_query_length` applies to the same range
//!   (400, `err-cairn-max-query-length`).
//! - `max_query_lookback`: every read's start is clamped to `now - lookback`;
//!   a read ending before that reads nothing (no error).
//! - `max_fetched_series_per_query`: distinct series read by one query, over
//!   all its selectors (422, `err-cairn-max-series-per-query`).
//! - `max_fetched_chunk_bytes_per_query`: Cairn's storage hands decoded
//!   samples to the engine, not chunks, so the bytes are estimated at
//!   [`CHUNK_BYTES_PER_SAMPLE`] per sample read (422,
//!   `err-cairn-max-chunks-bytes-per-query`).
//! - `query_timeout`: the tenant's timeout replaces `querier.timeout` and
//!   caps a request's `timeout` parameter.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use cairn_model::{
    DecodedSet, Labels, Matcher, Queryable, Series, SeriesSet, StorageError, TimeRange,
};
use parking_lot::Mutex;

use super::Limits;
use crate::error::ApiError;

/// Estimated chunk bytes per sample: Prometheus's XOR chunks take about
/// 1.3 bytes per sample on real data, rounded up.
pub const CHUNK_BYTES_PER_SAMPLE: u64 = 2;

/// Refuses a range query whose `end - start` exceeds the tenant's
/// `max_total_query_length` or `max_partial_query_length` (both 400).
pub fn check_query_length(limits: &Limits, start_ms: i64, end_ms: i64) -> Result<(), ApiError> {
    let length = end_ms.saturating_sub(start_ms);
    for (limit, id, key, what) in [
        (
            limits.max_total_query_length.0,
            "max-total-query-length",
            "limits.max_total_query_length",
            "the total query time range exceeds the limit",
        ),
        (
            limits.max_partial_query_length.0,
            "max-query-length",
            "limits.max_partial_query_length",
            "the query time range exceeds the limit",
        ),
    ] {
        if limit > 0 && length > limit {
            return Err(ApiError::bad_data(with_limit(
                &format!(
                    "{what} (query length: {}, limit: {})",
                    cairn_model::DisplayDuration(length),
                    cairn_model::DisplayDuration(limit)
                ),
                id,
                key,
            )));
        }
    }
    Ok(())
}

/// The timeout a query runs with: the request's `timeout`, capped by the
/// tenant's `query_timeout` when that is set (which is then also the
/// default instead of `querier.timeout`).
pub fn query_timeout(limits: &Limits, requested: Option<Duration>) -> Option<Duration> {
    if limits.query_timeout.0 <= 0 {
        return requested;
    }
    let tenant = limits.query_timeout.as_std();
    Some(requested.map_or(tenant, |r| r.min(tenant)))
}

/// A tenant's [`Queryable`] under its query limits, for one query.
pub struct LimitedQueryable<'a> {
    inner: &'a dyn Queryable,
    /// Reads start no earlier than this (from `max_query_lookback`).
    min_t: i64,
    max_series: u64,
    max_chunk_bytes: u64,
    state: Mutex<Fetched>,
}

#[derive(Default)]
struct Fetched {
    series: HashSet<u64>,
    chunk_bytes: u64,
}

impl<'a> LimitedQueryable<'a> {
    pub fn new(inner: &'a dyn Queryable, limits: &Limits, now_ms: i64) -> LimitedQueryable<'a> {
        let min_t = if limits.max_query_lookback.0 > 0 {
            now_ms.saturating_sub(limits.max_query_lookback.0)
        } else {
            i64::MIN
        };
        LimitedQueryable {
            inner,
            min_t,
            max_series: limits.max_fetched_series_per_query,
            max_chunk_bytes: limits.max_fetched_chunk_bytes_per_query,
            state: Mutex::new(Fetched::default()),
        }
    }

    /// `range` with its start clamped by the lookback limit; `None` when
    /// nothing of it may be read.
    fn clamp(&self, range: TimeRange) -> Option<TimeRange> {
        let start = range.start.max(self.min_t);
        (start <= range.end).then_some(TimeRange::new(start, range.end))
    }

    fn account(&self, series: &[Series]) -> Result<(), StorageError> {
        if self.max_series == 0 && self.max_chunk_bytes == 0 {
            return Ok(());
        }
        let mut fetched = self.state.lock();
        for s in series {
            fetched.series.insert(stable_hash(&s.labels));
            fetched.chunk_bytes = fetched
                .chunk_bytes
                .saturating_add(s.samples.len() as u64 * CHUNK_BYTES_PER_SAMPLE);
        }
        if self.max_series > 0 && fetched.series.len() as u64 > self.max_series {
            return Err(too_many_series(self.max_series));
        }
        if self.max_chunk_bytes > 0 && fetched.chunk_bytes > self.max_chunk_bytes {
            return Err(StorageError::LimitExceeded(query_limit_message(
                &format!(
                    "the query exceeded the aggregated chunks size limit (limit: {} bytes)",
                    self.max_chunk_bytes
                ),
                "max-chunks-bytes-per-query",
                "limits.max_fetched_chunk_bytes_per_query",
            )));
        }
        Ok(())
    }
}

impl Queryable for LimitedQueryable<'_> {
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
        let Some(range) = self.clamp(range) else {
            return Ok(Vec::new());
        };
        let series = self.inner.select(matchers, range)?;
        self.account(&series)?;
        Ok(series)
    }

    /// Decoded on demand when no series or chunk-bytes limit applies;
    /// otherwise decoded first and counted as [`Queryable::select`] is, so
    /// the limits see exactly the series and samples they always did.
    fn select_set(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Box<dyn SeriesSet>, StorageError> {
        let Some(range) = self.clamp(range) else {
            return Ok(Box::new(DecodedSet::default()));
        };
        if self.max_series == 0 && self.max_chunk_bytes == 0 {
            return self.inner.select_set(matchers, range);
        }
        let series = self.inner.select(matchers, range)?;
        self.account(&series)?;
        Ok(Box::new(DecodedSet(series)))
    }

    /// Counted against the series limit like a select; no chunk is fetched,
    /// so the chunk-bytes limit does not apply.
    fn series_labels(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<Labels>, StorageError> {
        let Some(range) = self.clamp(range) else {
            return Ok(Vec::new());
        };
        let labels = self.inner.series_labels(matchers, range)?;
        if self.max_series > 0 {
            let mut fetched = self.state.lock();
            fetched.series.extend(labels.iter().map(stable_hash));
            if fetched.series.len() as u64 > self.max_series {
                return Err(too_many_series(self.max_series));
            }
        }
        Ok(labels)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        match self.clamp(range) {
            Some(range) => self.inner.label_names(matchers, range),
            None => Ok(Vec::new()),
        }
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        match self.clamp(range) {
            Some(range) => self.inner.label_values(name, matchers, range),
            None => Ok(Vec::new()),
        }
    }
}

fn too_many_series(limit: u64) -> StorageError {
    StorageError::LimitExceeded(query_limit_message(
        &format!("the query exceeded the maximum number of series (limit: {limit} series)"),
        "max-series-per-query",
        "limits.max_fetched_series_per_query",
    ))
}

/// A hash of a series' labels that is the same for every select of one
/// query (a fixed-key hasher; collisions would only under-count).
fn stable_hash(labels: &Labels) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut hasher);
    hasher.finish()
}

/// Mimir's query-limit text: the message, the ID, and how to get under it.
fn query_limit_message(message: &str, id: &str, key: &str) -> String {
    format!(
        "{message} ({}{id}). Consider reducing the time range and/or number of series selected by the query. One way to reduce the number of selected series is to add more label matchers to the query. Otherwise, to adjust the related per-tenant limit, configure {key}, or contact your service administrator.",
        cairn_ingest::ERROR_ID_PREFIX
    )
}

fn with_limit(message: &str, id: &str, key: &str) -> String {
    format!(
        "{message} ({}{id}). To adjust the related per-tenant limit, configure {key}, or contact your service administrator.",
        cairn_ingest::ERROR_ID_PREFIX
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::PromDuration;
    use cairn_model::Sample;

    /// Ten series `m{i="0".."9"}`, one sample a second over [0, 100s].
    struct Fixed;

    impl Queryable for Fixed {
        fn select(&self, _: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
            Ok((0..10)
                .map(|i| Series {
                    labels: Labels::from_pairs(&[("__name__", "m"), ("i", &i.to_string())]),
                    samples: (0..=100)
                        .map(|s| Sample::new(s * 1000, 1.0))
                        .filter(|s| range.contains(s.t))
                        .collect(),
                })
                .filter(|s| !s.samples.is_empty())
                .collect())
        }
        fn label_names(&self, _: &[Matcher], _: TimeRange) -> Result<Vec<String>, StorageError> {
            Ok(vec!["__name__".into()])
        }
        fn label_values(
            &self,
            _: &str,
            _: &[Matcher],
            _: TimeRange,
        ) -> Result<Vec<String>, StorageError> {
            Ok(vec!["m".into()])
        }
    }

    #[test]
    fn distinct_series_are_counted_over_every_select_of_a_query() {
        let limits = Limits {
            max_fetched_series_per_query: 10,
            ..Limits::default()
        };
        let q = LimitedQueryable::new(&Fixed, &limits, 0);
        // The same ten series twice: still ten.
        assert_eq!(q.select(&[], TimeRange::all()).unwrap().len(), 10);
        assert_eq!(q.select(&[], TimeRange::all()).unwrap().len(), 10);
        let tight = Limits {
            max_fetched_series_per_query: 9,
            ..Limits::default()
        };
        let err = LimitedQueryable::new(&Fixed, &tight, 0)
            .select(&[], TimeRange::all())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "maximum number of series (limit: 9 series) (err-cairn-max-series-per-query)"
            ),
            "{err}"
        );
        assert!(err.contains("limits.max_fetched_series_per_query"));
    }

    #[test]
    fn series_labels_count_against_the_series_limit_but_fetch_no_chunk_bytes() {
        let limits = Limits {
            max_fetched_series_per_query: 10,
            // Ten series of 101 samples would be 2,020 bytes if fetched.
            max_fetched_chunk_bytes_per_query: 1,
            ..Limits::default()
        };
        let q = LimitedQueryable::new(&Fixed, &limits, 0);
        assert_eq!(q.series_labels(&[], TimeRange::all()).unwrap().len(), 10);
        let tight = Limits {
            max_fetched_series_per_query: 9,
            ..Limits::default()
        };
        let err = LimitedQueryable::new(&Fixed, &tight, 0)
            .series_labels(&[], TimeRange::all())
            .unwrap_err()
            .to_string();
        assert!(err.contains("(limit: 9 series)"), "{err}");
        // The lookback limit clamps the range as for a select.
        let lookback = Limits {
            max_query_lookback: PromDuration(50_000),
            ..Limits::default()
        };
        let q = LimitedQueryable::new(&Fixed, &lookback, 200_000);
        assert!(q.series_labels(&[], TimeRange::all()).unwrap().is_empty());
    }

    #[test]
    fn chunk_bytes_are_estimated_from_samples() {
        // 10 series x 101 samples x 2 bytes = 2020 bytes.
        let ok = Limits {
            max_fetched_chunk_bytes_per_query: 2020,
            ..Limits::default()
        };
        assert!(LimitedQueryable::new(&Fixed, &ok, 0)
            .select(&[], TimeRange::all())
            .is_ok());
        let tight = Limits {
            max_fetched_chunk_bytes_per_query: 2019,
            ..Limits::default()
        };
        let err = LimitedQueryable::new(&Fixed, &tight, 0)
            .select(&[], TimeRange::all())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "chunks size limit (limit: 2019 bytes) (err-cairn-max-chunks-bytes-per-query)"
            ),
            "{err}"
        );
    }

    #[test]
    fn lookback_clamps_the_start_and_empties_older_reads() {
        let limits = Limits {
            max_query_lookback: PromDuration(10_000),
            ..Limits::default()
        };
        // now = 100s: only [90s, 100s] is readable.
        let q = LimitedQueryable::new(&Fixed, &limits, 100_000);
        let series = q.select(&[], TimeRange::new(0, 100_000)).unwrap();
        assert_eq!(series[0].samples.len(), 11);
        assert_eq!(series[0].samples[0].t, 90_000);
        assert!(q.select(&[], TimeRange::new(0, 89_999)).unwrap().is_empty());
        assert!(q
            .label_names(&[], TimeRange::new(0, 89_999))
            .unwrap()
            .is_empty());
        assert_eq!(
            q.label_values("__name__", &[], TimeRange::new(0, 95_000))
                .unwrap(),
            ["m"]
        );
    }

    #[test]
    fn query_length_and_timeout_follow_the_tenant() {
        let limits = Limits {
            max_total_query_length: PromDuration(3_600_000),
            max_partial_query_length: PromDuration(7_200_000),
            query_timeout: PromDuration(5_000),
            ..Limits::default()
        };
        assert!(check_query_length(&limits, 0, 3_600_000).is_ok());
        let err = check_query_length(&limits, 0, 3_600_001).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(
            err.message.contains(
                "the total query time range exceeds the limit (query length: 1h1ms, limit: 1h)"
            ),
            "{}",
            err.message
        );
        assert!(err.message.contains("(err-cairn-max-total-query-length)"));
        let partial = Limits {
            max_partial_query_length: PromDuration(1000),
            ..Limits::default()
        };
        let err = check_query_length(&partial, 0, 2000).unwrap_err();
        assert!(
            err.message.contains("(err-cairn-max-query-length)"),
            "{}",
            err.message
        );
        assert!(check_query_length(&Limits::default(), 0, i64::MAX).is_ok());

        assert_eq!(query_timeout(&limits, None), Some(Duration::from_secs(5)));
        assert_eq!(
            query_timeout(&limits, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            query_timeout(&limits, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(query_timeout(&Limits::default(), None), None);
    }
}
