//! What the write path hands to storage after decoding and validation:
//! owned series ([`SeriesSamples`]) or series whose labels are borrowed from
//! the request buffer ([`SeriesRef`], the remote write hot path: no
//! allocation per label).

use std::borrow::Cow;
use std::fmt;

use crate::{Label, Labels, Sample, METRIC_NAME};

/// An exemplar attached to a series: its own labels (for example a trace ID),
/// a value and a timestamp in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub t: i64,
}

/// Samples and exemplars for one series, in the order they arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<Sample>,
    pub exemplars: Vec<Exemplar>,
}

/// Prometheus metric types as remote write 1.0 names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    Unknown,
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
}

impl MetricType {
    /// The name used by Prometheus's `/api/v1/metadata`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
        }
    }
}

/// Metadata about a metric family, kept per metric name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetricMetadata {
    pub metric_family_name: String,
    pub metric_type: MetricType,
    pub help: String,
    pub unit: String,
}

/// One label pair borrowed from a request buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelRef<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

impl<'a> From<&'a Label> for LabelRef<'a> {
    fn from(label: &'a Label) -> LabelRef<'a> {
        LabelRef {
            name: &label.name,
            value: &label.value,
        }
    }
}

/// A borrowed label set with the invariants of [`Labels`]: sorted by name,
/// unique names, no empty values. Built by validation, so whoever makes
/// one checks those first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelsRef<'a>(&'a [LabelRef<'a>]);

impl<'a> LabelsRef<'a> {
    /// Wraps pairs the caller guarantees are sorted by name, unique, and
    /// have non-empty values.
    pub fn from_sorted(pairs: &'a [LabelRef<'a>]) -> LabelsRef<'a> {
        debug_assert!(pairs.windows(2).all(|w| w[0].name < w[1].name));
        debug_assert!(pairs.iter().all(|l| !l.value.is_empty()));
        LabelsRef(pairs)
    }

    pub fn as_slice(&self) -> &'a [LabelRef<'a>] {
        self.0
    }

    pub fn iter(&self) -> std::slice::Iter<'a, LabelRef<'a>> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .binary_search_by(|l| l.name.cmp(name))
            .ok()
            .map(|i| self.0[i].value)
    }

    /// The value of `__name__`, if any.
    pub fn metric_name(&self) -> Option<&'a str> {
        self.get(METRIC_NAME)
    }

    /// An owned copy (one allocation per name and value).
    pub fn to_labels(&self) -> Labels {
        Labels::from_sorted(self.0.iter().map(|l| Label::new(l.name, l.value)).collect())
    }
}

impl PartialEq<Labels> for LabelsRef<'_> {
    fn eq(&self, other: &Labels) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .zip(other)
                .all(|(a, b)| a.name == b.name && a.value == b.value)
    }
}

/// Prometheus's text form, as [`Labels`] displays.
impl fmt::Display for LabelsRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for label in self.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", label.name, label.value)?;
        }
        f.write_str("}")
    }
}

/// [`SeriesSamples`] with borrowed labels and (unless something had to drop
/// samples) borrowed samples.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesRef<'a> {
    pub labels: LabelsRef<'a>,
    pub samples: Cow<'a, [Sample]>,
    pub exemplars: Vec<Exemplar>,
    /// Where storage found the series when the write path looked its labels
    /// up before validating them; `None` when not looked up or not found.
    pub found: Option<StorageHint>,
}

/// Where a store held a series when it was looked up: meaningful only to
/// the store that issued it, and only a hint. The store checks that it
/// issued the hint and that the series is still there before using it, and
/// looks the series up by its labels otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageHint {
    /// Which store issued the hint (unique within the process).
    pub store: u64,
    /// The series' ID in that store.
    pub id: u64,
    /// Where the store keeps it.
    pub slot: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_ref_matches_labels() {
        let owned = Labels::from_pairs(&[("__name__", "up"), ("job", "x\"y")]);
        let pairs: Vec<LabelRef> = owned.iter().map(LabelRef::from).collect();
        let borrowed = LabelsRef::from_sorted(&pairs);
        assert_eq!(borrowed, owned);
        assert_eq!(borrowed.to_labels(), owned);
        assert_eq!(borrowed.to_string(), owned.to_string());
        assert_eq!(borrowed.get("job"), Some("x\"y"));
        assert_eq!(borrowed.get("nope"), None);
        assert_ne!(LabelsRef::from_sorted(&pairs[..1]), owned);
    }
}
