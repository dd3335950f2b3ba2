//! The evaluator's internal values.
//!
//! Every expression is evaluated over all steps of a query at once, as
//! Prometheus's `rangeEval` does: an instant-vector expression becomes a set
//! of [`StepSeries`], each holding the points it has at some of the steps.

use cairn_model::{Labels, Sample, METRIC_NAME};

/// One point of an instant-vector expression: its value at step `step`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Point {
    pub step: usize,
    pub v: f64,
}

/// An instant-vector series evaluated over the query's steps.
#[derive(Clone, Debug)]
pub(crate) struct StepSeries {
    pub labels: Labels,
    /// Prometheus 3's delayed name removal: `__name__` is dropped at the end.
    pub drop_name: bool,
    /// Points in step order, at most one per step.
    pub points: Vec<Point>,
}

/// A range-vector series: raw samples (never staleness markers).
#[derive(Clone, Debug)]
pub(crate) struct RangeSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub samples: Vec<Sample>,
}

/// The value of an expression over all steps.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    Vector(Vec<StepSeries>),
    /// Only produced for a single evaluation (instant query or function argument).
    Matrix(Vec<RangeSeries>),
    String(String),
}

impl Val {
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Vector(_) => "vector",
            Val::Matrix(_) => "matrix",
            Val::String(_) => "string",
        }
    }
}

/// Labels that Prometheus drops together with the metric name.
pub(crate) const METADATA_LABELS: [&str; 3] = [METRIC_NAME, "__type__", "__unit__"];

/// Drops `__name__`, `__type__` and `__unit__` (`labels.DropReserved(schema.IsMetadataLabel)`).
pub(crate) fn drop_metadata(labels: &Labels) -> Labels {
    if labels
        .iter()
        .any(|l| METADATA_LABELS.contains(&l.name.as_str()))
    {
        labels.without(&METADATA_LABELS)
    } else {
        labels.clone()
    }
}

/// Total points held by a list of step series.
pub(crate) fn total_points(series: &[StepSeries]) -> usize {
    series.iter().map(|s| s.points.len()).sum()
}

/// Per-step view of a set of step series: for every step, the indices of the
/// series present and their values, in series order.
pub(crate) fn transpose(series: &[StepSeries], nsteps: usize) -> Vec<Vec<(usize, f64)>> {
    // Sized exactly first: with thousands of series a step's list would
    // otherwise be reallocated a dozen times.
    let mut counts = vec![0usize; nsteps];
    for s in series {
        for p in &s.points {
            if let Some(c) = counts.get_mut(p.step) {
                *c += 1;
            }
        }
    }
    let mut out: Vec<Vec<(usize, f64)>> = counts.into_iter().map(Vec::with_capacity).collect();
    for (idx, s) in series.iter().enumerate() {
        for p in &s.points {
            if let Some(slot) = out.get_mut(p.step) {
                slot.push((idx, p.v));
            }
        }
    }
    out
}

/// Assembles per-step results into series keyed by labels, as the output
/// map of Prometheus's `rangeEval`; two results with the same labels at the
/// same step are an error.
#[derive(Default)]
pub(crate) struct SeriesBuilder {
    index: std::collections::HashMap<Labels, usize>,
    series: Vec<StepSeries>,
}

impl SeriesBuilder {
    pub fn push(
        &mut self,
        labels: &Labels,
        drop_name: bool,
        step: usize,
        v: f64,
    ) -> Result<(), crate::QueryError> {
        match self.index.get(labels) {
            Some(&i) => {
                let s = &mut self.series[i];
                if s.points.last().is_some_and(|p| p.step == step) {
                    return Err(crate::QueryError::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
                s.points.push(Point { step, v });
            }
            None => {
                self.index.insert(labels.clone(), self.series.len());
                self.series.push(StepSeries {
                    labels: labels.clone(),
                    drop_name,
                    points: vec![Point { step, v }],
                });
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<StepSeries> {
        self.series
    }
}

/// Neumaier-compensated summation step, as Prometheus's `kahansum.Inc`.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's `labels.Labels.String()`: `{a="x", b="y"}` with every label,
/// `__name__` included, inside the braces.
pub(crate) fn prom_labels_string(labels: &Labels) -> String {
    let mut out = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_legacy_name(&l.name) {
            out.push_str(&l.name);
        } else {
            out.push_str(&format!("{:?}", l.name));
        }
        out.push('=');
        out.push_str(&format!("{:?}", l.value));
    }
    out.push('}');
    out
}

fn is_legacy_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}
