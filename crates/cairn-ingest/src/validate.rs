//! Per-series validation of a decoded remote write request, with Mimir's
//! rules, limits, discard reasons and error texts.
//!
//! For each series, in this order (Mimir's distributor order):
//! 1. labels with empty values are dropped (Prometheus semantics) and the
//!    rest sorted by name if the sender did not;
//! 2. `__name__` must be present ([`DiscardReason::MissingMetricName`]; a
//!    series left with no labels at all lands here too) and valid under the
//!    [`NameValidationScheme`] ([`DiscardReason::MetricNameInvalid`]);
//! 3. at most `max_label_names_per_series` labels;
//! 4. per label: valid name, name length, value length, no repeated name.
//!
//! A rejected series discards all its samples under its reason. Surviving
//! series then lose, one by one, samples later than `now +
//! creation_grace_period` ([`DiscardReason::TooFarInFuture`]). Sample values
//! are copied bit for bit (NaN payloads, the staleness marker).
//!
//! Exemplars and metadata that fail their checks are dropped and counted
//! ([`ExemplarDiscardReason`], [`MetadataDiscardReason`]) without failing the
//! request. Native histograms are counted and dropped: storage has no
//! histogram chunks yet.
//!
//! Lengths are in bytes, as in Mimir; the exemplar label-set limit is in
//! characters, as OpenMetrics specifies.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use cairn_model::{
    is_legacy_label_name, is_legacy_metric_name, DiscardReason, Exemplar, Label, LabelRef,
    LabelSetBounds, Labels, LabelsRef, MetricMetadata, Sample, SeriesRef, StorageHint, METRIC_NAME,
};

use crate::config_keys;
use crate::wire::{ExemplarSpan, MetricMetadataRef, WriteRequestRef};
use crate::ERROR_ID_PREFIX;

/// OpenMetrics: an exemplar's label names and values together must not
/// exceed 128 UTF-8 characters.
pub const EXEMPLAR_MAX_LABEL_SET_CHARS: usize = 128;

/// Mimir truncates label names, values and series to this many characters
/// in messages (`%.200s`).
const MESSAGE_FIELD_MAX_CHARS: usize = 200;

/// Which metric and label names are valid.
///
/// `Legacy` is the default because it is Mimir's default
/// (`-validation.name-validation-scheme=legacy`, still in Mimir 3.x):
/// a sender that works against Mimir works against Cairn, and names stay
/// writable in PromQL without quoting. `Utf8` accepts what Prometheus 3
/// accepts by default: any non-empty UTF-8 name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NameValidationScheme {
    /// Metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names
    /// `[a-zA-Z_][a-zA-Z0-9_]*`. Names starting with `__` are allowed.
    #[default]
    Legacy,
    /// Any non-empty UTF-8 string (UTF-8 is already guaranteed by decoding).
    Utf8,
}

impl NameValidationScheme {
    /// Whether `name` is a valid metric name under this scheme.
    pub fn is_valid_metric_name(self, name: &str) -> bool {
        match self {
            NameValidationScheme::Legacy => is_legacy_metric_name(name),
            NameValidationScheme::Utf8 => !name.is_empty(),
        }
    }

    /// Whether `name` is a valid label name under this scheme.
    pub fn is_valid_label_name(self, name: &str) -> bool {
        match self {
            NameValidationScheme::Legacy => is_legacy_label_name(name),
            NameValidationScheme::Utf8 => !name.is_empty(),
        }
    }
}

/// Per-tenant write-path limits. `Default` is Mimir's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationLimits {
    /// Longest label name in bytes (Mimir `max_label_name_length`, 1024).
    pub max_label_name_length: usize,
    /// Longest label value in bytes, metric name included (Mimir
    /// `max_label_value_length`, 2048).
    pub max_label_value_length: usize,
    /// Most labels on one series, `__name__` included (Mimir
    /// `max_label_names_per_series`, 30).
    pub max_label_names_per_series: usize,
    /// How far past the server's clock a sample may be, in milliseconds
    /// (Mimir `creation_grace_period`, 10m).
    pub creation_grace_period_ms: i64,
    /// Longest metadata metric name or unit in bytes; longer help text is
    /// truncated (Mimir `max_metadata_length`, 1024).
    pub max_metadata_length: usize,
    /// Which metric and label names are accepted (Mimir
    /// `name_validation_scheme`, legacy).
    pub name_validation_scheme: NameValidationScheme,
}

impl Default for ValidationLimits {
    fn default() -> ValidationLimits {
        ValidationLimits {
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_label_names_per_series: 30,
            creation_grace_period_ms: 10 * 60 * 1000,
            max_metadata_length: 1024,
            name_validation_scheme: NameValidationScheme::Legacy,
        }
    }
}

impl ValidationLimits {
    /// Whether every label set within `bounds` passes the label checks
    /// under these limits (so a series known to be one of them needs none).
    pub fn admits_all(&self, bounds: &LabelSetBounds) -> bool {
        bounds.well_formed
            && (self.name_validation_scheme == NameValidationScheme::Utf8 || bounds.legacy_names)
            && bounds.max_labels <= self.max_label_names_per_series
            && bounds.max_name_len <= self.max_label_name_length
            && bounds.max_value_len <= self.max_label_value_length
    }
}

/// A client-facing write error: why, and the full message in Mimir's form
/// `<message> (err-cairn-<id>)[. To adjust the related per-tenant limit, ...]`.
/// Validation errors are all HTTP 400.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteError {
    pub reason: DiscardReason,
    pub message: String,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WriteError {}

/// Why an exemplar was dropped (the `reason` label of Cairn's discarded
/// exemplars counter; Mimir's spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExemplarDiscardReason {
    /// No labels at all.
    LabelsMissing,
    /// Timestamp 0.
    TimestampInvalid,
    /// Label names and values together over 128 characters.
    LabelsTooLong,
    /// Labels present, but none with both a name and a value.
    LabelsBlank,
    /// Later than `now + creation_grace_period`.
    TooFarInFuture,
    /// Its series was rejected, so it has nowhere to go.
    SeriesInvalid,
}

impl ExemplarDiscardReason {
    pub fn as_label(self) -> &'static str {
        match self {
            ExemplarDiscardReason::LabelsMissing => "exemplar_labels_missing",
            ExemplarDiscardReason::TimestampInvalid => "exemplar_timestamp_invalid",
            ExemplarDiscardReason::LabelsTooLong => "exemplar_labels_too_long",
            ExemplarDiscardReason::LabelsBlank => "exemplar_labels_blank",
            ExemplarDiscardReason::TooFarInFuture => "exemplar_too_far_in_future",
            ExemplarDiscardReason::SeriesInvalid => "exemplar_series_invalid",
        }
    }
}

/// Why a metadata entry was dropped (the `reason` label of Cairn's discarded
/// metadata counter; Mimir's spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetadataDiscardReason {
    /// Empty `metric_family_name`.
    MissingMetricName,
    /// `metric_family_name` longer than `max_metadata_length`.
    MetricNameTooLong,
    /// `unit` longer than `max_metadata_length`.
    UnitTooLong,
}

impl MetadataDiscardReason {
    pub fn as_label(self) -> &'static str {
        match self {
            MetadataDiscardReason::MissingMetricName => "missing_metric_name",
            MetadataDiscardReason::MetricNameTooLong => "metric_name_too_long",
            MetadataDiscardReason::UnitTooLong => "unit_too_long",
        }
    }
}

/// The outcome of validating one request.
///
/// Invariants: `samples_received == samples_accepted() + samples_discarded()`,
/// `exemplars_received == exemplars_accepted() + exemplars_discarded()`,
/// `metadata_received == metadata.len() + metadata_discarded()`.
/// `first_error` is `Some` exactly when some sample was discarded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidatedWrite<'a> {
    /// Accepted series, labels sorted and validated, in request order,
    /// borrowing from the decoded request. Series left with neither samples
    /// nor exemplars are omitted.
    pub series: Vec<SeriesRef<'a>>,
    /// Accepted metadata, in request order.
    pub metadata: Vec<MetricMetadata>,
    /// Discarded samples by reason (reasons with none are absent).
    pub discarded: BTreeMap<DiscardReason, u64>,
    /// Discarded exemplars by reason.
    pub discarded_exemplars: BTreeMap<ExemplarDiscardReason, u64>,
    /// Discarded metadata by reason.
    pub discarded_metadata: BTreeMap<MetadataDiscardReason, u64>,
    /// Discarded samples as (index of the series in the request, reason,
    /// count), for per-series accounting (usage cost attribution).
    pub discarded_by_series: Vec<(usize, DiscardReason, u64)>,
    /// The first problem, for the response body (400). The rest of the
    /// request was still processed: valid series are in `series`.
    pub first_error: Option<WriteError>,
    pub samples_received: u64,
    pub exemplars_received: u64,
    pub metadata_received: u64,
    /// Native histogram samples received; all are dropped for now.
    pub histograms_received: u64,
}

impl ValidatedWrite<'_> {
    pub fn samples_accepted(&self) -> u64 {
        self.series.iter().map(|s| s.samples.len() as u64).sum()
    }

    pub fn samples_discarded(&self) -> u64 {
        self.discarded.values().sum()
    }

    pub fn exemplars_accepted(&self) -> u64 {
        self.series.iter().map(|s| s.exemplars.len() as u64).sum()
    }

    pub fn exemplars_discarded(&self) -> u64 {
        self.discarded_exemplars.values().sum()
    }

    pub fn metadata_discarded(&self) -> u64 {
        self.discarded_metadata.values().sum()
    }

    fn discard_samples(&mut self, reason: DiscardReason, count: u64) {
        if count > 0 {
            *self.discarded.entry(reason).or_insert(0) += count;
        }
    }

    fn discard_series_samples(&mut self, index: usize, reason: DiscardReason, count: u64) {
        if count > 0 {
            self.discard_samples(reason, count);
            self.discarded_by_series.push((index, reason, count));
        }
    }

    fn discard_exemplars(&mut self, reason: ExemplarDiscardReason, count: u64) {
        if count > 0 {
            *self.discarded_exemplars.entry(reason).or_insert(0) += count;
        }
    }

    /// Keeps the first error; builds the message only when it is kept.
    fn record_error(&mut self, build: impl FnOnce() -> WriteError) {
        if self.first_error.is_none() {
            self.first_error = Some(build());
        }
    }
}

/// Validates a decoded request. `now_ms` is the server's clock in
/// milliseconds since the Unix epoch (passed in so tests control time).
///
/// Labels and samples are cleaned, sorted and filtered in place in
/// `request`, and the accepted series borrow them from there: nothing is
/// allocated per label or per series.
pub fn validate_write_request<'b>(
    request: &'b mut WriteRequestRef<'_>,
    limits: &ValidationLimits,
    now_ms: i64,
) -> ValidatedWrite<'b> {
    validate_write_request_known(request, limits, now_ms, |_| None)
}

/// [`validate_write_request`] for a request whose series storage has
/// looked up first. `found(i)` is where storage holds the request's `i`th
/// series, and may be `Some` only when that series' labels, exactly as
/// sent, are a stored series' labels and every label set the store holds
/// passes these limits ([`ValidationLimits::admits_all`]). Such a series'
/// labels are neither cleaned nor checked (they would pass unchanged), and
/// its [`SeriesRef::found`] carries the hint on to storage. The outcome is
/// the same as [`validate_write_request`]'s; only the work differs.
pub fn validate_write_request_known<'b>(
    request: &'b mut WriteRequestRef<'_>,
    limits: &ValidationLimits,
    now_ms: i64,
    found: impl Fn(usize) -> Option<StorageHint>,
) -> ValidatedWrite<'b> {
    let max_timestamp = now_ms.saturating_add(limits.creation_grace_period_ms);
    let WriteRequestRef {
        bytes: _,
        series: spans,
        labels: all_labels,
        samples: all_samples,
        exemplars: all_exemplars,
        exemplar_labels,
        metadata,
    } = request;
    let mut out = ValidatedWrite {
        metadata_received: metadata.len() as u64,
        ..ValidatedWrite::default()
    };
    let mut accepted: Vec<Accepted> = Vec::with_capacity(spans.len());

    for (index, span) in spans.iter().enumerate() {
        let sample_count = span.samples.len() as u64;
        let exemplar_count = span.exemplars.len() as u64;
        out.samples_received += sample_count;
        out.exemplars_received += exemplar_count;
        out.histograms_received += span.histograms as u64;

        let hint = found(index);
        let label_range = if hint.is_some() {
            span.labels.clone()
        } else {
            let kept = clean_labels(&mut all_labels[span.labels.clone()]);
            let label_range = span.labels.start..span.labels.start + kept;
            let labels = &all_labels[label_range.clone()];
            if let Err(rejection) = validate_labels(labels, limits) {
                let reason = rejection.reason();
                out.discard_series_samples(index, reason, sample_count);
                out.discard_exemplars(ExemplarDiscardReason::SeriesInvalid, exemplar_count);
                if sample_count > 0 {
                    out.record_error(|| rejection.to_write_error(labels, limits));
                }
                continue;
            }
            label_range
        };
        let labels = &all_labels[label_range.clone()];

        let mut too_far_in_future: u64 = 0;
        let mut first_too_far: Option<i64> = None;
        let samples = &mut all_samples[span.samples.clone()];
        let mut kept = 0;
        for i in 0..samples.len() {
            let sample = samples[i];
            if sample.t > max_timestamp {
                too_far_in_future += 1;
                first_too_far.get_or_insert(sample.t);
            } else {
                samples[kept] = sample;
                kept += 1;
            }
        }
        if let Some(timestamp) = first_too_far {
            out.discard_series_samples(index, DiscardReason::TooFarInFuture, too_far_in_future);
            out.record_error(|| too_far_in_future_error(labels, timestamp));
        }

        let mut exemplars = Vec::new();
        for exemplar in &all_exemplars[span.exemplars.clone()] {
            let exemplar_labels = &exemplar_labels[exemplar.labels.clone()];
            match validate_exemplar(exemplar_labels, exemplar, max_timestamp) {
                Ok(valid) => exemplars.push(valid),
                Err(reason) => out.discard_exemplars(reason, 1),
            }
        }

        if kept == 0 && exemplars.is_empty() {
            continue;
        }
        accepted.push(Accepted {
            labels: label_range,
            samples: span.samples.start..span.samples.start + kept,
            exemplars,
            hint,
        });
    }

    let all_labels: &'b [LabelRef<'_>] = all_labels;
    let all_samples: &'b [Sample] = all_samples;
    out.series = accepted
        .into_iter()
        .map(|accepted| SeriesRef {
            labels: LabelsRef::from_sorted(&all_labels[accepted.labels]),
            samples: Cow::Borrowed(&all_samples[accepted.samples]),
            exemplars: accepted.exemplars,
            found: accepted.hint,
        })
        .collect();

    for metadata in metadata.iter() {
        match validate_metadata(metadata, limits) {
            Ok(valid) => out.metadata.push(valid),
            Err(reason) => *out.discarded_metadata.entry(reason).or_insert(0) += 1,
        }
    }

    debug_assert_eq!(
        out.samples_received,
        out.samples_accepted() + out.samples_discarded()
    );
    debug_assert_eq!(
        out.exemplars_received,
        out.exemplars_accepted() + out.exemplars_discarded()
    );
    debug_assert_eq!(out.first_error.is_some(), out.samples_discarded() > 0);
    out
}

/// An accepted series as ranges of the request's arrays; they become
/// borrowed slices once the in-place edits are done.
struct Accepted {
    labels: Range<usize>,
    samples: Range<usize>,
    exemplars: Vec<Exemplar>,
    hint: Option<StorageHint>,
}

/// Why a series' labels were rejected, with what the message needs; the
/// message itself is only built for the first error of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LabelsRejection {
    MissingMetricName,
    MetricNameInvalid { index: usize },
    TooManyLabels,
    LabelNameInvalid { index: usize },
    LabelNameTooLong { index: usize },
    LabelValueTooLong { index: usize },
    DuplicateLabelName { index: usize },
}

impl LabelsRejection {
    fn reason(self) -> DiscardReason {
        match self {
            LabelsRejection::MissingMetricName => DiscardReason::MissingMetricName,
            LabelsRejection::MetricNameInvalid { .. } => DiscardReason::MetricNameInvalid,
            LabelsRejection::TooManyLabels => DiscardReason::MaxLabelNamesPerSeries,
            LabelsRejection::LabelNameInvalid { .. } => DiscardReason::LabelNameInvalid,
            LabelsRejection::LabelNameTooLong { .. } => DiscardReason::LabelNameTooLong,
            LabelsRejection::LabelValueTooLong { .. } => DiscardReason::LabelValueTooLong,
            LabelsRejection::DuplicateLabelName { .. } => DiscardReason::DuplicateLabelNames,
        }
    }

    /// Mimir's texts (`pkg/distributor/validate.go`) with Cairn's IDs and
    /// config keys. `labels` are the series' cleaned, sorted labels.
    fn to_write_error(self, labels: &[LabelRef<'_>], limits: &ValidationLimits) -> WriteError {
        let reason = self.reason();
        let series = || format_series(labels);
        let message = match self {
            LabelsRejection::MissingMetricName => {
                with_id("received series has no metric name", reason)
            }
            LabelsRejection::MetricNameInvalid { index } => with_id(
                &format!(
                    "received a series with invalid metric name: '{}'",
                    truncate_chars(&remove_non_ascii(labels[index].value)),
                ),
                reason,
            ),
            LabelsRejection::TooManyLabels => {
                let series = series();
                let ellipsis = if series.chars().count() > MESSAGE_FIELD_MAX_CHARS {
                    "\u{2026}"
                } else {
                    ""
                };
                with_limit(
                    &format!(
                        "received a series whose number of labels exceeds the limit (actual: {}, limit: {}) series: '{}{}'",
                        labels.len(),
                        limits.max_label_names_per_series,
                        truncate_chars(&series),
                        ellipsis,
                    ),
                    reason,
                    config_keys::MAX_LABEL_NAMES_PER_SERIES,
                )
            }
            LabelsRejection::LabelNameInvalid { index } => with_id(
                &format!(
                    "received a series with an invalid label: '{}' series: '{}'",
                    truncate_chars(labels[index].name),
                    truncate_chars(&series()),
                ),
                reason,
            ),
            LabelsRejection::LabelNameTooLong { index } => with_limit(
                &format!(
                    "received a series whose label name length exceeds the limit, label: '{}' series: '{}'",
                    truncate_chars(labels[index].name),
                    truncate_chars(&series()),
                ),
                reason,
                config_keys::MAX_LABEL_NAME_LENGTH,
            ),
            LabelsRejection::LabelValueTooLong { index } => with_limit(
                &format!(
                    "received a series whose label value length of {} exceeds the limit of {}, label: '{}', value: '{}' (truncated) series: '{}'",
                    labels[index].value.len(),
                    limits.max_label_value_length,
                    labels[index].name,
                    truncate_chars(labels[index].value),
                    truncate_chars(&series()),
                ),
                reason,
                config_keys::MAX_LABEL_VALUE_LENGTH,
            ),
            LabelsRejection::DuplicateLabelName { index } => with_id(
                &format!(
                    "received a series with duplicate label name, label: '{}' series: '{}'",
                    truncate_chars(labels[index].name),
                    truncate_chars(&series()),
                ),
                reason,
            ),
        };
        WriteError { reason, message }
    }
}

/// Drops empty values (moving the rest to the front, in order) and sorts
/// by name if the sender did not; returns how many labels are left.
fn clean_labels(labels: &mut [LabelRef<'_>]) -> usize {
    let mut kept = 0;
    for i in 0..labels.len() {
        if !labels[i].value.is_empty() {
            labels[kept] = labels[i];
            kept += 1;
        }
    }
    let labels = &mut labels[..kept];
    if !labels.windows(2).all(|w| w[0].name <= w[1].name) {
        // Stable, so repeated names keep their request order in messages.
        labels.sort_by(|a, b| a.name.cmp(b.name));
    }
    kept
}

/// Checks cleaned, sorted labels.
fn validate_labels(
    labels: &[LabelRef<'_>],
    limits: &ValidationLimits,
) -> Result<(), LabelsRejection> {
    let scheme = limits.name_validation_scheme;
    let Some(name_index) = labels.iter().position(|l| l.name == METRIC_NAME) else {
        return Err(LabelsRejection::MissingMetricName);
    };
    if !scheme.is_valid_metric_name(labels[name_index].value) {
        return Err(LabelsRejection::MetricNameInvalid { index: name_index });
    }
    if labels.len() > limits.max_label_names_per_series {
        return Err(LabelsRejection::TooManyLabels);
    }

    let mut previous_name: Option<&str> = None;
    for (index, label) in labels.iter().enumerate() {
        if !scheme.is_valid_label_name(label.name) {
            return Err(LabelsRejection::LabelNameInvalid { index });
        }
        if label.name.len() > limits.max_label_name_length {
            return Err(LabelsRejection::LabelNameTooLong { index });
        }
        if label.value.len() > limits.max_label_value_length {
            return Err(LabelsRejection::LabelValueTooLong { index });
        }
        if previous_name == Some(label.name) {
            return Err(LabelsRejection::DuplicateLabelName { index });
        }
        previous_name = Some(label.name);
    }
    Ok(())
}

fn too_far_in_future_error(labels: &[LabelRef<'_>], timestamp: i64) -> WriteError {
    let reason = DiscardReason::TooFarInFuture;
    let metric_name = labels
        .iter()
        .find(|l| l.name == METRIC_NAME)
        .map(|l| l.value)
        .unwrap_or_default();
    WriteError {
        reason,
        message: with_limit(
            &format!(
                "received a sample whose timestamp is too far in the future, timestamp: {} series: '{}'",
                timestamp,
                truncate_chars(metric_name),
            ),
            reason,
            config_keys::CREATION_GRACE_PERIOD,
        ),
    }
}

/// Mimir's exemplar checks, in Mimir's order.
fn validate_exemplar(
    labels: &[LabelRef<'_>],
    exemplar: &ExemplarSpan,
    max_timestamp: i64,
) -> Result<Exemplar, ExemplarDiscardReason> {
    if labels.is_empty() {
        return Err(ExemplarDiscardReason::LabelsMissing);
    }
    if exemplar.timestamp == 0 {
        return Err(ExemplarDiscardReason::TimestampInvalid);
    }
    let label_set_chars: usize = labels
        .iter()
        .map(|l| l.name.chars().count() + l.value.chars().count())
        .sum();
    if label_set_chars > EXEMPLAR_MAX_LABEL_SET_CHARS {
        return Err(ExemplarDiscardReason::LabelsTooLong);
    }
    if !labels
        .iter()
        .any(|l| !l.name.is_empty() && !l.value.is_empty())
    {
        return Err(ExemplarDiscardReason::LabelsBlank);
    }
    if exemplar.timestamp > max_timestamp {
        return Err(ExemplarDiscardReason::TooFarInFuture);
    }
    let labels = Labels::new(
        labels
            .iter()
            .filter(|l| !l.name.is_empty())
            .map(|l| Label::new(l.name, l.value))
            .collect(),
    );
    Ok(Exemplar {
        labels,
        value: exemplar.value,
        t: exemplar.timestamp,
    })
}

/// Mimir's metadata checks: a name is required, over-long names and units
/// drop the entry, over-long help is cut at a character boundary.
fn validate_metadata(
    metadata: &MetricMetadataRef<'_>,
    limits: &ValidationLimits,
) -> Result<MetricMetadata, MetadataDiscardReason> {
    if metadata.metric_family_name.is_empty() {
        return Err(MetadataDiscardReason::MissingMetricName);
    }
    if metadata.metric_family_name.len() > limits.max_metadata_length {
        return Err(MetadataDiscardReason::MetricNameTooLong);
    }
    if metadata.unit.len() > limits.max_metadata_length {
        return Err(MetadataDiscardReason::UnitTooLong);
    }
    let metric_type = metadata.metric_type().into();
    let help = &metadata.help[..floor_char_boundary(metadata.help, limits.max_metadata_length)];
    Ok(MetricMetadata {
        metric_family_name: metadata.metric_family_name.to_string(),
        metric_type,
        help: help.to_string(),
        unit: metadata.unit.to_string(),
    })
}

/// The message for a sample that storage refused, in the form of Mimir's
/// ingester errors: `<message> (err-cairn-<id>). The affected sample has
/// timestamp <RFC 3339> and is from series <labels>`.
///
/// Meant for [`DiscardReason::SampleOutOfOrder`],
/// [`DiscardReason::SampleDuplicateTimestamp`] and
/// [`DiscardReason::SampleTooOld`] (out-of-order window off); the
/// validation reasons get a generic text with their ID.
pub fn storage_rejection_message(reason: DiscardReason, labels: &Labels, t: i64) -> String {
    let message = match reason {
        DiscardReason::SampleOutOfOrder => "the sample has been rejected because another sample with a more recent timestamp has already been ingested and out-of-order samples are not allowed",
        DiscardReason::SampleDuplicateTimestamp => "the sample has been rejected because another sample with the same timestamp, but a different value, has already been ingested",
        DiscardReason::SampleTooOld => "the sample has been rejected because its timestamp is too old",
        DiscardReason::TooFarInFuture => "received a sample whose timestamp is too far in the future",
        _ => "the sample has been rejected",
    };
    format!(
        "{}. The affected sample has timestamp {} and is from series {}",
        with_id(message, reason),
        format_rfc3339_millis(t),
        labels,
    )
}

/// `<message> (err-cairn-<id>)`.
fn with_id(message: &str, reason: DiscardReason) -> String {
    format!("{message} ({ERROR_ID_PREFIX}{})", reason.error_id())
}

/// `<message> (err-cairn-<id>). To adjust the related per-tenant limit,
/// configure <key>, or contact your service administrator.`
fn with_limit(message: &str, reason: DiscardReason, config_key: &str) -> String {
    format!(
        "{}. To adjust the related per-tenant limit, configure {config_key}, or contact your service administrator.",
        with_id(message, reason)
    )
}

/// Cairn's series text, `name{a="x", b="y"}` (as [`Labels`] displays), from
/// raw pairs that may repeat a name.
fn format_series(labels: &[LabelRef<'_>]) -> String {
    let mut out = String::new();
    if let Some(name) = labels.iter().find(|l| l.name == METRIC_NAME) {
        out.push_str(name.value);
    }
    out.push('{');
    let mut first = true;
    for label in labels.iter().filter(|l| l.name != METRIC_NAME) {
        if !first {
            out.push_str(", ");
        }
        first = false;
        out.push_str(&format!("{}={:?}", label.name, label.value));
    }
    out.push('}');
    out
}

/// Go's `%.200s`: at most 200 characters.
fn truncate_chars(s: &str) -> &str {
    match s.char_indices().nth(MESSAGE_FIELD_MAX_CHARS) {
        Some((cut, _)) => &s[..cut],
        None => s,
    }
}

/// Mimir's `removeNonASCIIChars`, so a message never echoes arbitrary bytes.
fn remove_non_ascii(s: &str) -> String {
    let ascii: String = s.chars().filter(char::is_ascii).collect();
    if ascii.len() == s.len() {
        ascii
    } else {
        ascii + " (non-ascii characters removed)"
    }
}

/// The largest char boundary `<= index` (`str::floor_char_boundary` is unstable).
fn floor_char_boundary(s: &str, index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    let mut cut = index;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

/// Go's `time.RFC3339Nano` for a millisecond timestamp in UTC: trailing
/// zeros of the fraction dropped, e.g. `1970-01-19T05:30:43.969Z`.
fn format_rfc3339_millis(t: i64) -> String {
    let seconds = t.div_euclid(1000);
    let millis = t.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
    );
    if millis != 0 {
        let fraction = format!("{millis:03}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
