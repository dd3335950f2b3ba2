//! Random appends checked against a simple model (a map of series to
//! samples applying the same order rules), before and after a restart.

use std::collections::BTreeMap;

use cairn_model::{
    DiscardReason, Labels, MatchOp, Matcher, Queryable, Sample, SeriesSamples, TimeRange,
};
use cairn_tsdb::{Tsdb, TsdbOptions};

mod support;
use proptest::prelude::*;

type Model = BTreeMap<Labels, Vec<(i64, u64)>>;

fn labels_for(series: u8) -> Labels {
    let job = ["api", "web", "db"][usize::from(series % 3)];
    let mut pairs = vec![("__name__", "m"), ("job", job)];
    let instance = series.to_string();
    if series & 3 != 0 {
        pairs.push(("instance", &instance));
    }
    Labels::from_pairs(&pairs)
}

/// Applies the append rules to the model; returns (accepted, discarded).
fn model_append(model: &mut Model, labels: &Labels, samples: &[(i64, u64)]) -> (u64, u64) {
    let mut accepted = 0;
    let mut discarded = 0;
    let mut kept = model.get(labels).cloned().unwrap_or_default();
    for &(t, bits) in samples {
        match kept.last() {
            Some(&(last_t, _)) if t < last_t => discarded += 1,
            Some(&(last_t, last_bits)) if t == last_t => {
                if bits == last_bits {
                    accepted += 1;
                } else {
                    discarded += 1;
                }
            }
            _ => {
                kept.push((t, bits));
                accepted += 1;
            }
        }
    }
    if !kept.is_empty() {
        model.insert(labels.clone(), kept);
    }
    (accepted, discarded)
}

fn check(db: &Tsdb, model: &Model, range: TimeRange, matchers: &[Matcher]) {
    let got: Vec<(Labels, Vec<(i64, u64)>)> = support::select_checked(db, matchers, range)
        .into_iter()
        .map(|s| {
            let samples = s.samples.iter().map(|p| (p.t, p.v.to_bits())).collect();
            (s.labels, samples)
        })
        .collect();
    let want: Vec<(Labels, Vec<(i64, u64)>)> = model
        .iter()
        .filter(|(labels, _)| {
            matchers
                .iter()
                .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
        })
        .map(|(labels, samples)| {
            let inside: Vec<(i64, u64)> = samples
                .iter()
                .copied()
                .filter(|(t, _)| range.contains(*t))
                .collect();
            (labels.clone(), inside)
        })
        .filter(|(_, samples)| !samples.is_empty())
        .collect();
    assert_eq!(got, want);
    let names: Vec<String> = db.label_values("job", matchers, range).unwrap();
    let mut want_names: Vec<String> = want
        .iter()
        .filter_map(|(l, _)| l.get("job").map(str::to_string))
        .collect();
    want_names.sort();
    want_names.dedup();
    assert_eq!(names, want_names);
}

fn sample_strategy() -> impl Strategy<Value = (i64, u64)> {
    (
        0i64..2_000_000,
        prop_oneof![
            (0u64..4).prop_map(|v| (v as f64).to_bits()),
            Just(cairn_model::STALE_NAN_BITS),
            any::<u64>(),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn appends_match_the_model_before_and_after_restart(
        batches in proptest::collection::vec(
            proptest::collection::vec(
                (0u8..8, proptest::collection::vec(sample_strategy(), 0..40)),
                1..6,
            ),
            1..12,
        ),
        range_start in 0i64..2_000_000,
        range_len in 0i64..2_000_000,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let opts = TsdbOptions { wal_segment_size: 2048, ..TsdbOptions::default() };
        let db = Tsdb::open(tmp.path(), opts.clone()).unwrap();
        let mut model = Model::new();
        for batch in &batches {
            let mut want_accepted = 0;
            let mut want_discarded = 0;
            let mut input = Vec::new();
            for (series, samples) in batch {
                let mut sorted = samples.clone();
                // Mostly ascending, with some disorder kept.
                if series & 1 == 0 {
                    sorted.sort_by_key(|s| s.0);
                }
                let labels = labels_for(*series);
                let (a, d) = model_append(&mut model, &labels, &sorted);
                want_accepted += a;
                want_discarded += d;
                input.push(SeriesSamples {
                    labels,
                    samples: sorted.iter().map(|&(t, bits)| Sample::new(t, f64::from_bits(bits))).collect(),
                    exemplars: Vec::new(),
                });
            }
            let outcome = db.append(input).unwrap();
            prop_assert_eq!(outcome.samples_accepted, want_accepted);
            let discarded: u64 = outcome.discarded.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(discarded, want_discarded);
            prop_assert!(outcome.discarded.iter().all(|(r, _)| matches!(
                r,
                DiscardReason::SampleOutOfOrder | DiscardReason::SampleDuplicateTimestamp
            )));
        }
        let range = TimeRange::new(range_start, range_start + range_len);
        let api = Matcher::new(MatchOp::RegexMatch, "job", "api|db").unwrap();
        let no_instance = Matcher::equal("instance", "");
        let not_web = Matcher::new(MatchOp::NotEqual, "job", "web").unwrap();
        for matchers in [vec![], vec![api.clone()], vec![no_instance.clone()], vec![not_web.clone(), api.clone()]] {
            check(&db, &model, TimeRange::all(), &matchers);
            check(&db, &model, range, &matchers);
        }
        prop_assert_eq!(db.stats().active_series, model.len() as u64);
        drop(db);
        let reopened = Tsdb::open(tmp.path(), opts).unwrap();
        check(&reopened, &model, TimeRange::all(), &[]);
        check(&reopened, &model, range, &[not_web]);
    }
}
