//! Cost attribution inside a tenant: which attribution key a series counts
//! under, with Mimir's `__missing__` and `__overflow__` values.
//!
//! A key is the values of the tenant's attribution labels (Mimir's
//! `cost_attribution_labels`). A series without one of the labels (or with
//! an empty value, which Prometheus treats as absent) counts under
//! `__missing__` for it (Mimir `pkg/costattribution`, `missingValue`).
//!
//! Up to `max_cardinality` distinct keys are tracked per tenant, admitted in
//! the order they are first seen; a key seen after that counts under the
//! overflow key, whose every value is `__overflow__`. Unlike Mimir, which
//! switches the whole tracker to `__overflow__` for a cool-down period, keys
//! already admitted keep counting under their own values: the usage figures
//! are cumulative billing totals, and a key must not change meaning halfway
//! through an interval.

use std::collections::{HashMap, HashSet};

use cairn_model::LabelsRef;

/// The value of an attribution label a series does not carry.
pub const MISSING: &str = "__missing__";
/// The value of every attribution label once a tenant's keys exceed its cap.
pub const OVERFLOW: &str = "__overflow__";

/// Label names the usage series use themselves; an attribution label of
/// one of these names is ignored (it would clash).
const RESERVED: [&str; 4] = ["tenant", "reason", "endpoint", "location"];

/// A tenant's attribution configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttributionSpec {
    /// Attribution label names, sorted and de-duplicated.
    pub labels: Vec<String>,
    /// Most distinct keys tracked; more fold into the overflow key.
    pub max_cardinality: usize,
}

impl AttributionSpec {
    /// Normalises `labels`: sorted, de-duplicated, and without names that
    /// are not usable as usage-series labels (`__`-prefixed, or one of
    /// `tenant`, `reason`, `endpoint`, `location`). `None` when none is left
    /// or the cap is 0.
    pub fn new(labels: Vec<String>, max_cardinality: usize) -> Option<AttributionSpec> {
        let mut labels: Vec<String> = labels
            .into_iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && !l.starts_with("__") && !RESERVED.contains(&l.as_str()))
            .collect();
        labels.sort();
        labels.dedup();
        (!labels.is_empty() && max_cardinality > 0).then_some(AttributionSpec {
            labels,
            max_cardinality,
        })
    }
}

/// An attribution key: (label name, value) pairs sorted by name.
pub type AttrKey = Vec<(String, String)>;

/// The keys one tenant has admitted, per set of label names (a tenant whose
/// configuration changed keeps its old keys under the old names).
#[derive(Debug, Default)]
pub struct Tracker {
    admitted: HashMap<Vec<String>, HashSet<Vec<String>>>,
}

impl Tracker {
    /// Marks `key` as admitted regardless of the cap (keys restored from
    /// the usage record after a restart).
    pub fn restore(&mut self, key: &AttrKey) {
        let (names, values): (Vec<String>, Vec<String>) = key.iter().cloned().unzip();
        if values.iter().all(|v| v == OVERFLOW) {
            return;
        }
        self.admitted.entry(names).or_default().insert(values);
    }

    /// The key a series with these `values` (one per `spec.labels` name,
    /// `None` when absent) counts under, admitting it when there is room.
    pub fn key(&mut self, spec: &AttributionSpec, values: &[Option<&str>]) -> AttrKey {
        let values: Vec<String> = values
            .iter()
            .map(|v| match v {
                Some(v) if !v.is_empty() => (*v).to_string(),
                _ => MISSING.to_string(),
            })
            .collect();
        let known = self.admitted.entry(spec.labels.clone()).or_default();
        let values = if known.contains(&values) {
            values
        } else if known.len() < spec.max_cardinality {
            known.insert(values.clone());
            values
        } else {
            vec![OVERFLOW.to_string(); spec.labels.len()]
        };
        spec.labels.iter().cloned().zip(values).collect()
    }

    /// The key of a series' labels.
    pub fn key_of(&mut self, spec: &AttributionSpec, labels: LabelsRef<'_>) -> AttrKey {
        let values: Vec<Option<&str>> = spec.labels.iter().map(|n| labels.get(n)).collect();
        self.key(spec, &values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::LabelRef;

    fn spec(labels: &[&str], cap: usize) -> AttributionSpec {
        AttributionSpec::new(labels.iter().map(|s| s.to_string()).collect(), cap).unwrap()
    }

    fn values(key: &AttrKey) -> Vec<&str> {
        key.iter().map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn values_beyond_the_cap_fold_into_overflow_and_admitted_ones_stay() {
        let spec = spec(&["team"], 2);
        let mut tracker = Tracker::default();
        assert_eq!(values(&tracker.key(&spec, &[Some("a")])), ["a"]);
        assert_eq!(values(&tracker.key(&spec, &[Some("b")])), ["b"]);
        assert_eq!(values(&tracker.key(&spec, &[Some("c")])), [OVERFLOW]);
        assert_eq!(values(&tracker.key(&spec, &[Some("d")])), [OVERFLOW]);
        // Admitted keys keep their own values after the cap is reached.
        assert_eq!(values(&tracker.key(&spec, &[Some("a")])), ["a"]);
        assert_eq!(
            tracker.key(&spec, &[Some("b")]),
            vec![("team".into(), "b".into())]
        );
    }

    #[test]
    fn a_missing_or_empty_label_is_missing_and_takes_a_slot() {
        let spec = spec(&["team", "env"], 2);
        let mut tracker = Tracker::default();
        // Names are sorted: env, team.
        assert_eq!(
            values(&tracker.key(&spec, &[None, Some("x")])),
            [MISSING, "x"]
        );
        assert_eq!(
            values(&tracker.key(&spec, &[Some(""), Some("x")])),
            [MISSING, "x"]
        );
        assert_eq!(
            values(&tracker.key(&spec, &[Some("p"), None])),
            ["p", MISSING]
        );
        assert_eq!(
            values(&tracker.key(&spec, &[Some("p"), Some("y")])),
            [OVERFLOW, OVERFLOW]
        );
    }

    #[test]
    fn keys_are_read_from_series_labels() {
        let spec = spec(&["team"], 10);
        let mut tracker = Tracker::default();
        let pairs = [
            LabelRef {
                name: "__name__",
                value: "up",
            },
            LabelRef {
                name: "team",
                value: "db",
            },
        ];
        assert_eq!(
            tracker.key_of(&spec, LabelsRef::from_sorted(&pairs)),
            vec![("team".into(), "db".into())]
        );
        assert_eq!(
            values(&tracker.key_of(&spec, LabelsRef::from_sorted(&pairs[..1]))),
            [MISSING]
        );
    }

    #[test]
    fn restored_keys_count_against_the_cap_and_are_kept() {
        let spec = spec(&["team"], 1);
        let mut tracker = Tracker::default();
        tracker.restore(&vec![("team".into(), "old".into())]);
        tracker.restore(&vec![("team".into(), OVERFLOW.into())]);
        assert_eq!(values(&tracker.key(&spec, &[Some("new")])), [OVERFLOW]);
        assert_eq!(values(&tracker.key(&spec, &[Some("old")])), ["old"]);
    }

    #[test]
    fn spec_drops_unusable_names_and_sorts() {
        let s = AttributionSpec::new(
            vec![
                "team".into(),
                " env ".into(),
                "tenant".into(),
                "__name__".into(),
                "team".into(),
            ],
            5,
        )
        .unwrap();
        assert_eq!(s.labels, ["env", "team"]);
        assert!(AttributionSpec::new(vec!["tenant".into()], 5).is_none());
        assert!(AttributionSpec::new(vec!["team".into()], 0).is_none());
    }
}
