//! Write-path limit checks that sit between validation and storage, and the
//! client messages of every write limit (Mimir's texts, `err-cairn-` IDs).

use cairn_ingest::{ValidatedWrite, WriteError};
use cairn_model::{DiscardReason, Labels};
use cairn_tsdb::SeriesLimits;

use super::Limits;

/// Mimir truncates series in messages to 200 characters (`%.200s`).
const MESSAGE_FIELD_MAX_CHARS: usize = 200;

/// Drops samples older than `now - (past_grace_period +
/// out_of_order_time_window)` (Mimir's `validation.past-grace-period`
/// bound), counting them as `too_far_in_past`; the first becomes the
/// request's error if it has none. Off while `past_grace_period` is 0.
pub fn enforce_past_grace(validated: &mut ValidatedWrite, limits: &Limits, now_ms: i64) {
    if limits.past_grace_period.0 <= 0 {
        return;
    }
    let oldest = now_ms
        .saturating_sub(limits.past_grace_period.0)
        .saturating_sub(limits.out_of_order_time_window.0.max(0));
    let mut dropped = 0u64;
    for series in &mut validated.series {
        let before = series.samples.len();
        if let Some(first_old) = series.samples.iter().find(|s| s.t < oldest) {
            if validated.first_error.is_none() {
                validated.first_error = Some(WriteError {
                    reason: DiscardReason::TooFarInPast,
                    message: with_limit(
                        &format!(
                            "received a sample whose timestamp is too far in the past, timestamp: {} series: '{}'",
                            first_old.t,
                            truncate(&series.labels.to_string())
                        ),
                        DiscardReason::TooFarInPast,
                        "limits.past_grace_period",
                    ),
                });
            }
            series.samples.to_mut().retain(|s| s.t >= oldest);
        }
        dropped += (before - series.samples.len()) as u64;
    }
    if dropped > 0 {
        validated
            .series
            .retain(|s| !s.samples.is_empty() || !s.exemplars.is_empty());
        *validated
            .discarded
            .entry(DiscardReason::TooFarInPast)
            .or_default() += dropped;
    }
}

/// Items a request costs against the ingestion rate: the samples, exemplars
/// and metadata entries that passed validation (Mimir counts the same three).
pub fn rate_cost(validated: &ValidatedWrite) -> u64 {
    let exemplars: u64 = validated
        .series
        .iter()
        .map(|s| s.exemplars.len() as u64)
        .sum();
    validated.samples_accepted() + exemplars + validated.metadata.len() as u64
}

/// The 429 text for a request over the tenant's ingestion rate.
pub fn rate_limited_message(limits: &Limits) -> String {
    with_limit(
        &format!(
            "the request has been rejected because the tenant exceeded the ingestion rate limit, set to {} items/s with a maximum allowed burst of {}. This limit is applied on the total number of samples, exemplars and metadata received",
            limits.ingestion_rate, limits.ingestion_burst_size
        ),
        DiscardReason::RateLimited,
        "limits.ingestion_rate and limits.ingestion_burst_size",
    )
}

/// The tenant's series limits and out-of-order window for
/// [`cairn_tsdb::Tsdb::append_limited`] (read per request, so a runtime
/// overrides reload applies to the next push).
pub fn series_limits(limits: &Limits) -> SeriesLimits {
    SeriesLimits {
        max_series: limits.max_global_series_per_user,
        max_series_per_metric: limits.max_global_series_per_metric,
        out_of_order_window_ms: limits.out_of_order_time_window.0.max(0),
    }
}

/// The 400 text for a series refused by a series limit, or `None` for other
/// storage rejections.
pub fn series_limit_message(
    reason: DiscardReason,
    limits: &Limits,
    labels: &Labels,
) -> Option<String> {
    match reason {
        DiscardReason::PerUserSeriesLimit => Some(with_limit(
            &format!(
                "per-user series limit of {} exceeded",
                limits.max_global_series_per_user
            ),
            reason,
            "limits.max_global_series_per_user",
        )),
        // Mimir appends the series after the limit hint.
        DiscardReason::PerMetricSeriesLimit => Some(format!(
            "{} This is for series {}",
            with_limit(
                &format!(
                    "per-metric series limit of {} exceeded",
                    limits.max_global_series_per_metric
                ),
                reason,
                "limits.max_global_series_per_metric",
            ),
            truncate(&labels.to_string())
        )),
        _ => None,
    }
}

/// Mimir's wording of `sample_too_old` (`err-cairn-sample-timestamp-too-old`).
const TOO_OLD_TEXT: &str = "the sample has been rejected because its timestamp is too old";

/// The 400 text for a sample the tenant's database refused: as
/// [`cairn_ingest::storage_rejection_message`], except that with an
/// out-of-order window a too-old sample is worded as beyond the window
/// (Mimir's `newSampleTimestampTooOldOOOEnabledError`).
pub fn storage_message(reason: DiscardReason, limits: &Limits, labels: &Labels, t: i64) -> String {
    let message = cairn_ingest::storage_rejection_message(reason, labels, t);
    let window = limits.out_of_order_time_window.0;
    if reason != DiscardReason::SampleTooOld || window <= 0 {
        return message;
    }
    message.replacen(
        TOO_OLD_TEXT,
        &format!(
            "the sample has been rejected because another sample with a more recent timestamp has already been ingested and this sample is beyond the out-of-order time window of {}",
            cairn_model::DisplayDuration(window)
        ),
        1,
    )
}

/// `<message> (err-cairn-<id>). To adjust the related per-tenant limit,
/// configure <key>, or contact your service administrator.`
fn with_limit(message: &str, reason: DiscardReason, config_key: &str) -> String {
    format!(
        "{message} ({}{}). To adjust the related per-tenant limit, configure {config_key}, or contact your service administrator.",
        cairn_ingest::ERROR_ID_PREFIX,
        reason.error_id()
    )
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(MESSAGE_FIELD_MAX_CHARS) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_model::{LabelRef, LabelsRef, Sample, SeriesRef};

    fn validated(series: Vec<(&'static str, Vec<i64>)>) -> ValidatedWrite<'static> {
        ValidatedWrite {
            series: series
                .into_iter()
                .map(|(name, ts)| SeriesRef {
                    labels: LabelsRef::from_sorted(Box::leak(Box::new([LabelRef {
                        name: "__name__",
                        value: name,
                    }]))),
                    samples: ts.into_iter().map(|t| Sample::new(t, 1.0)).collect(),
                    exemplars: Vec::new(),
                    found: None,
                })
                .collect(),
            metadata: Vec::new(),
            discarded: Default::default(),
            discarded_exemplars: Default::default(),
            discarded_metadata: Default::default(),
            discarded_by_series: Vec::new(),
            first_error: None,
            samples_received: 0,
            exemplars_received: 0,
            metadata_received: 0,
            histograms_received: 0,
        }
    }

    #[test]
    fn past_grace_drops_old_samples_and_names_the_limit() {
        let limits = Limits {
            past_grace_period: super::super::PromDuration(1000),
            out_of_order_time_window: super::super::PromDuration(500),
            ..Limits::default()
        };
        let mut write = validated(vec![("a", vec![8_000, 8_600, 9_000]), ("b", vec![1])]);
        enforce_past_grace(&mut write, &limits, 10_000);
        assert_eq!(write.series.len(), 1);
        assert_eq!(write.series[0].samples.len(), 2);
        assert_eq!(write.discarded[&DiscardReason::TooFarInPast], 2);
        let err = write.first_error.unwrap();
        assert!(
            err.message.contains("timestamp: 8000 series: 'a{}'"),
            "{}",
            err.message
        );
        assert!(err.message.contains("(err-cairn-too-far-in-past)"));
        assert!(err.message.contains("limits.past_grace_period"));

        let mut off = validated(vec![("a", vec![1])]);
        enforce_past_grace(&mut off, &Limits::default(), 10_000);
        assert_eq!(off.series[0].samples.len(), 1);
    }

    #[test]
    fn too_old_is_worded_as_beyond_the_window_only_with_a_window() {
        let labels = Labels::from_pairs(&[("__name__", "m")]);
        let without = storage_message(DiscardReason::SampleTooOld, &Limits::default(), &labels, 0);
        assert!(
            without.starts_with(
                "the sample has been rejected because its timestamp is too old (err-cairn-sample-timestamp-too-old). The affected sample has timestamp 1970-01-01T00:00:00"
            ),
            "{without}"
        );
        let limits = Limits {
            out_of_order_time_window: super::super::PromDuration(2 * 3_600_000 + 30 * 60_000),
            ..Limits::default()
        };
        let with = storage_message(DiscardReason::SampleTooOld, &limits, &labels, 0);
        assert!(
            with.starts_with(
                "the sample has been rejected because another sample with a more recent timestamp has already been ingested and this sample is beyond the out-of-order time window of 2h30m (err-cairn-sample-timestamp-too-old). The affected sample has timestamp 1970-01-01T00:00:00"
            ),
            "{with}"
        );
        // Other reasons keep their text.
        assert_eq!(
            storage_message(DiscardReason::SampleOutOfOrder, &limits, &labels, 0),
            cairn_ingest::storage_rejection_message(DiscardReason::SampleOutOfOrder, &labels, 0)
        );
        assert_eq!(series_limits(&limits).out_of_order_window_ms, 9_000_000);
    }

    #[test]
    fn messages_name_the_limit_and_its_value() {
        let limits = Limits {
            ingestion_rate: 50.0,
            ingestion_burst_size: 70,
            max_global_series_per_user: 3,
            max_global_series_per_metric: 2,
            ..Limits::default()
        };
        let rate = rate_limited_message(&limits);
        assert!(
            rate.contains("set to 50 items/s with a maximum allowed burst of 70"),
            "{rate}"
        );
        assert!(rate.contains("(err-cairn-tenant-max-ingestion-rate)"));
        let labels = Labels::from_pairs(&[("__name__", "up"), ("job", "x")]);
        let user =
            series_limit_message(DiscardReason::PerUserSeriesLimit, &limits, &labels).unwrap();
        assert!(
            user.starts_with("per-user series limit of 3 exceeded (err-cairn-max-series-per-user)"),
            "{user}"
        );
        let metric =
            series_limit_message(DiscardReason::PerMetricSeriesLimit, &limits, &labels).unwrap();
        assert!(
            metric.starts_with(
                "per-metric series limit of 2 exceeded (err-cairn-max-series-per-metric)"
            ),
            "{metric}"
        );
        assert!(
            metric.ends_with("This is for series up{job=\"x\"}"),
            "{metric}"
        );
        assert!(series_limit_message(DiscardReason::SampleTooOld, &limits, &labels).is_none());
    }
}
