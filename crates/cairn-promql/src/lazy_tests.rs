//! The engine reading storage lazily (`Queryable::select_set`, one series
//! decoded at a time, on threads and in batches when the set is large)
//! answers exactly as reading it decoded up front (`Queryable::select`).

use cairn_model::{
    DecodedSet, Labels, Matcher, Queryable, Sample, Series, SeriesSamples, SeriesSet, StorageError,
    TimeRange, STALE_NAN,
};

use crate::tests::MemQueryable;
use crate::{Engine, EngineOptions, QueryError, QueryOptions, QueryResult};

const MIN: i64 = 60_000;
const SCRAPE: i64 = 15_000;

/// Reads only through the default `select_set`: everything decoded first.
struct Eager<'a>(&'a dyn Queryable);

impl Queryable for Eager<'_> {
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
        self.0.select(matchers, range)
    }
    fn label_names(&self, m: &[Matcher], r: TimeRange) -> Result<Vec<String>, StorageError> {
        self.0.label_names(m, r)
    }
    fn label_values(
        &self,
        n: &str,
        m: &[Matcher],
        r: TimeRange,
    ) -> Result<Vec<String>, StorageError> {
        self.0.label_values(n, m, r)
    }
}

/// [`MemQueryable`]'s series as a set that claims a large decoding cost
/// (so the engine's threaded, batched reads run on small data) and also
/// lists matching series without a sample in range, as a lazy store may.
struct Costly(Vec<Series>);

impl SeriesSet for Costly {
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
        100_000_000
    }
    fn into_labels(self: Box<Self>) -> Vec<Labels> {
        self.0.into_iter().map(|s| s.labels).collect()
    }
}

struct CostlyQueryable<'a>(&'a MemQueryable);

impl Queryable for CostlyQueryable<'_> {
    fn select(&self, matchers: &[Matcher], range: TimeRange) -> Result<Vec<Series>, StorageError> {
        self.0.select(matchers, range)
    }
    fn select_set(
        &self,
        matchers: &[Matcher],
        range: TimeRange,
    ) -> Result<Box<dyn SeriesSet>, StorageError> {
        let all = self.0.select(matchers, TimeRange::all())?;
        Ok(Box::new(Costly(
            all.into_iter()
                .map(|mut s| {
                    s.samples.retain(|p| range.contains(p.t));
                    s
                })
                .collect(),
        )))
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

/// Instant and range queries over every path that reads storage: fused
/// aggregations, instant selectors, range functions, range vectors as
/// values, offsets and `@`.
const QUERIES: &[&str] = &[
    "count(m)",
    "sum by (job) (m)",
    "avg(m)",
    "max by (job) (m)",
    "stddev without (i) (m)",
    "m",
    "topk(3, m)",
    "quantile(0.5, m)",
    "rate(c[5m])",
    "sum by (job) (rate(c[5m]))",
    "avg_over_time(m[10m])",
    "count(m offset 10m)",
    "sum(m @ 1800)",
    "last_over_time(m[1m])",
];

/// Queries run again under a samples limit they exceed.
const LIMITED: &[&str] = &["count(m)", "m", "rate(c[5m])"];

/// Both results, compared by their debug text (NaN equals NaN there).
fn same(a: Result<QueryResult, QueryError>, b: Result<QueryResult, QueryError>, what: &str) {
    let text = |r: Result<QueryResult, QueryError>| match r {
        Ok(r) => format!("{:?}", r),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(text(a), text(b), "{what}");
}

fn compare(
    lazy: &dyn Queryable,
    eager: &dyn Queryable,
    queries: &[&str],
    end: i64,
    max_samples: usize,
) {
    let engine = Engine::new(EngineOptions {
        max_samples,
        ..EngineOptions::default()
    });
    let opts = QueryOptions::default();
    for q in queries {
        for t in [end, 30 * MIN + 7_500] {
            same(
                engine.instant_query(lazy, q, t, &opts),
                engine.instant_query(eager, q, t, &opts),
                &format!("instant {q} at {t}"),
            );
        }
        same(
            engine.range_query(lazy, q, 5 * MIN, end, 4 * MIN + 30_000, &opts),
            engine.range_query(eager, q, 5 * MIN, end, 4 * MIN + 30_000, &opts),
            &format!("range {q}"),
        );
    }
    for q in ["m[5m]", "c[2m] offset 1m"] {
        same(
            engine.instant_query(lazy, q, end, &opts),
            engine.instant_query(eager, q, end, &opts),
            q,
        );
    }
}

/// Series `i`'s sample at scrape `k`: gauges `m` (some stale for a while,
/// some only in the first minutes, so that most ranges find none of their
/// samples) and counters `c` with resets.
fn point(i: usize, k: i64) -> Option<(i64, f64)> {
    let t = k * SCRAPE;
    if i.is_multiple_of(17) && k > 8 {
        return None;
    }
    if i.is_multiple_of(5) && (100..110).contains(&k) {
        // A staleness marker, then nothing for 2 minutes.
        return (k == 100).then_some((t, STALE_NAN));
    }
    Some((t, ((i * 31 + k as usize * 7) % 101) as f64 / 3.0))
}

const SERIES: usize = 2_600;
const SCRAPES: i64 = 240;

fn labels(name: &str, i: usize) -> Vec<(String, String)> {
    vec![
        ("__name__".into(), name.into()),
        ("i".into(), format!("{i:05}")),
        ("job".into(), format!("j{}", i % 3)),
    ]
}

#[test]
fn lazy_batched_reads_answer_as_decoded_reads() {
    let mut mem = MemQueryable::default();
    for i in 0..SERIES {
        let gauge: Vec<(i64, f64)> = (0..SCRAPES).filter_map(|k| point(i, k)).collect();
        let counter: Vec<(i64, f64)> = (0..SCRAPES)
            .map(|k| (k * SCRAPE, ((k + i as i64) % 50) as f64 * 2.0))
            .collect();
        for (name, samples) in [("m", gauge), ("c", counter)] {
            let pairs = labels(name, i);
            let refs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            mem.series.push(Series {
                labels: Labels::from_pairs(&refs),
                samples: samples.iter().map(|&(t, v)| Sample::new(t, v)).collect(),
            });
        }
    }
    mem.series.sort_by(|a, b| a.labels.cmp(&b.labels));
    let end = (SCRAPES - 1) * SCRAPE + 8_000;
    compare(&CostlyQueryable(&mem), &mem, QUERIES, end, 50_000_000);
    // The samples limit trips alike.
    compare(&CostlyQueryable(&mem), &mem, LIMITED, end, 20_000);
    let set = CostlyQueryable(&mem)
        .select_set(&[Matcher::equal("__name__", "m")], TimeRange::new(0, 1))
        .unwrap();
    assert_eq!(set.len(), SERIES, "empty series are listed");
    assert_eq!(
        DecodedSet(mem.select(&[], TimeRange::new(0, 1)).unwrap()).len(),
        2 * SERIES
    );
}

/// The same through the TSDB's own lazy set (head chunks; blocks, their
/// overlaps with the head and tombstones are checked against `select` in
/// cairn-tsdb's tests).
#[test]
fn tsdb_lazy_reads_answer_as_decoded_reads() {
    let dir = tempfile::tempdir().unwrap();
    let tsdb = cairn_tsdb::Tsdb::open(dir.path(), cairn_tsdb::TsdbOptions::default()).unwrap();
    // Enough chunks for threads (2 per series), fewer series than above.
    let all: Vec<Labels> = (0..SERIES / 2)
        .flat_map(|i| {
            ["m", "c"].map(|name| {
                let pairs = labels(name, i);
                let refs: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                Labels::from_pairs(&refs)
            })
        })
        .collect();
    for k in 0..SCRAPES {
        let batch = all
            .iter()
            .enumerate()
            .filter_map(|(j, labels)| {
                let i = j / 2;
                let sample = if j % 2 == 0 {
                    point(i, k)?
                } else {
                    (k * SCRAPE, ((k + i as i64) % 50) as f64 * 2.0)
                };
                Some(SeriesSamples {
                    labels: labels.clone(),
                    samples: vec![Sample::new(sample.0, sample.1)],
                    exemplars: Vec::new(),
                })
            })
            .collect();
        tsdb.append(batch).unwrap();
    }
    let set = tsdb
        .select_set(&[], TimeRange::new(0, SCRAPES * SCRAPE))
        .unwrap();
    assert!(set.decode_cost() >= 500_000, "large enough for threads");
    let end = (SCRAPES - 1) * SCRAPE + 8_000;
    compare(&tsdb, &Eager(&tsdb), QUERIES, end, 50_000_000);
    compare(&tsdb, &Eager(&tsdb), LIMITED, end, 20_000);
}
