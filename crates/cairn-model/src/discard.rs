//! Why a sample was discarded: one name for metrics, one stable error ID for clients.

/// A reason for discarding data on the write path.
///
/// [`DiscardReason::as_label`] is the `reason` label of
/// `cairn_discarded_samples_total` (Mimir's spelling where Mimir has it);
/// [`DiscardReason::error_id`] is the stable ID in client error messages,
/// listed in `docs/errors.md`. Never rename either once shipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiscardReason {
    MissingMetricName,
    MetricNameInvalid,
    LabelNameInvalid,
    LabelValueInvalid,
    DuplicateLabelNames,
    LabelNameTooLong,
    LabelValueTooLong,
    MaxLabelNamesPerSeries,
    TooFarInFuture,
    SampleOutOfOrder,
    SampleDuplicateTimestamp,
    SampleTooOld,
    /// Older than `past_grace_period` before now.
    TooFarInPast,
    /// A new series over the tenant's `max_global_series_per_user`.
    PerUserSeriesLimit,
    /// A new series over the tenant's `max_global_series_per_metric`.
    PerMetricSeriesLimit,
    /// The whole request was over the tenant's ingestion rate (429).
    RateLimited,
}

impl DiscardReason {
    pub const ALL: [DiscardReason; 16] = [
        DiscardReason::MissingMetricName,
        DiscardReason::MetricNameInvalid,
        DiscardReason::LabelNameInvalid,
        DiscardReason::LabelValueInvalid,
        DiscardReason::DuplicateLabelNames,
        DiscardReason::LabelNameTooLong,
        DiscardReason::LabelValueTooLong,
        DiscardReason::MaxLabelNamesPerSeries,
        DiscardReason::TooFarInFuture,
        DiscardReason::SampleOutOfOrder,
        DiscardReason::SampleDuplicateTimestamp,
        DiscardReason::SampleTooOld,
        DiscardReason::TooFarInPast,
        DiscardReason::PerUserSeriesLimit,
        DiscardReason::PerMetricSeriesLimit,
        DiscardReason::RateLimited,
    ];

    /// The `reason` label value on discard counters.
    pub fn as_label(self) -> &'static str {
        match self {
            DiscardReason::MissingMetricName => "missing_metric_name",
            DiscardReason::MetricNameInvalid => "metric_name_invalid",
            DiscardReason::LabelNameInvalid => "label_invalid",
            DiscardReason::LabelValueInvalid => "label_value_invalid",
            DiscardReason::DuplicateLabelNames => "duplicate_label_names",
            DiscardReason::LabelNameTooLong => "label_name_too_long",
            DiscardReason::LabelValueTooLong => "label_value_too_long",
            DiscardReason::MaxLabelNamesPerSeries => "max_label_names_per_series",
            DiscardReason::TooFarInFuture => "too_far_in_future",
            DiscardReason::SampleOutOfOrder => "sample_out_of_order",
            DiscardReason::SampleDuplicateTimestamp => "new_value_for_timestamp",
            DiscardReason::SampleTooOld => "sample_too_old",
            DiscardReason::TooFarInPast => "too_far_in_past",
            DiscardReason::PerUserSeriesLimit => "per_user_series_limit",
            DiscardReason::PerMetricSeriesLimit => "per_metric_series_limit",
            DiscardReason::RateLimited => "rate_limited",
        }
    }

    /// The stable client-facing error ID, without the `err-cairn-` prefix.
    pub fn error_id(self) -> &'static str {
        match self {
            DiscardReason::MissingMetricName => "missing-metric-name",
            DiscardReason::MetricNameInvalid => "metric-name-invalid",
            DiscardReason::LabelNameInvalid => "label-invalid",
            DiscardReason::LabelValueInvalid => "label-value-invalid",
            DiscardReason::DuplicateLabelNames => "duplicate-label-names",
            DiscardReason::LabelNameTooLong => "label-name-too-long",
            DiscardReason::LabelValueTooLong => "label-value-too-long",
            DiscardReason::MaxLabelNamesPerSeries => "max-label-names-per-series",
            DiscardReason::TooFarInFuture => "too-far-in-future",
            DiscardReason::SampleOutOfOrder => "sample-out-of-order",
            DiscardReason::SampleDuplicateTimestamp => "sample-duplicate-timestamp",
            DiscardReason::SampleTooOld => "sample-timestamp-too-old",
            DiscardReason::TooFarInPast => "too-far-in-past",
            DiscardReason::PerUserSeriesLimit => "max-series-per-user",
            DiscardReason::PerMetricSeriesLimit => "max-series-per-metric",
            DiscardReason::RateLimited => "tenant-max-ingestion-rate",
        }
    }
}
