use super::*;
use crate::prompb;
use cairn_model::{MetricType, STALE_NAN_BITS};

const NOW: i64 = 1_700_000_000_000;

fn labels(pairs: &[(&str, &str)]) -> Vec<prompb::Label> {
    pairs
        .iter()
        .map(|(name, value)| prompb::Label::new(*name, *value))
        .collect()
}

fn series(pairs: &[(&str, &str)], timestamps: &[i64]) -> prompb::TimeSeries {
    prompb::TimeSeries {
        labels: labels(pairs),
        samples: timestamps
            .iter()
            .map(|t| prompb::Sample {
                value: 1.0,
                timestamp: *t,
            })
            .collect(),
        ..Default::default()
    }
}

fn request(timeseries: Vec<prompb::TimeSeries>) -> prompb::WriteRequest {
    prompb::WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

fn validate(timeseries: Vec<prompb::TimeSeries>) -> ValidatedWrite<'static> {
    validate_owned(request(timeseries), &ValidationLimits::default(), NOW)
}

/// Validates an owned request; the request is leaked so the result (which
/// borrows from it) can outlive this call. Tests only.
fn validate_owned(
    request: prompb::WriteRequest,
    limits: &ValidationLimits,
    now_ms: i64,
) -> ValidatedWrite<'static> {
    let request: &'static prompb::WriteRequest = Box::leak(Box::new(request));
    let by_ref = Box::leak(Box::new(WriteRequestRef::from_owned(request)));
    validate_write_request(by_ref, limits, now_ms)
}

/// Decodes a body the way the server does (borrowing from a leaked buffer).
fn decode_leaked(body: &[u8]) -> &'static mut WriteRequestRef<'static> {
    let buffer: &'static mut Vec<u8> = Box::leak(Box::default());
    let decoded = crate::decode_write_request_ref(body, &Default::default(), buffer).unwrap();
    Box::leak(Box::new(decoded))
}

fn assert_counts_balance(out: &ValidatedWrite) {
    assert_eq!(
        out.samples_received,
        out.samples_accepted() + out.samples_discarded()
    );
    assert_eq!(
        out.exemplars_received,
        out.exemplars_accepted() + out.exemplars_discarded()
    );
    assert_eq!(
        out.metadata_received,
        out.metadata.len() as u64 + out.metadata_discarded()
    );
}

fn many_labels(count: usize) -> Vec<(String, String)> {
    let mut pairs = vec![("__name__".to_string(), "up".to_string())];
    for i in 1..count {
        pairs.push((format!("l{i:02}"), "v".to_string()));
    }
    pairs
}

fn owned_series(pairs: &[(String, String)]) -> prompb::TimeSeries {
    prompb::TimeSeries {
        labels: pairs
            .iter()
            .map(|(n, v)| prompb::Label::new(n.as_str(), v.as_str()))
            .collect(),
        samples: vec![prompb::Sample {
            value: 1.0,
            timestamp: NOW,
        }],
        ..Default::default()
    }
}

/// Every per-series label rule: the reason, and the exact client message.
#[test]
fn series_label_rules() {
    let long_name = "n".repeat(1025);
    let long_value = "v".repeat(2049);
    let limit_hint = |key: &str| {
        format!(". To adjust the related per-tenant limit, configure {key}, or contact your service administrator.")
    };
    struct Case {
        name: &'static str,
        series: prompb::TimeSeries,
        reason: DiscardReason,
        message: String,
    }
    let cases = vec![
        Case {
            name: "no metric name",
            series: series(&[("job", "a")], &[NOW]),
            reason: DiscardReason::MissingMetricName,
            message: "received series has no metric name (err-cairn-missing-metric-name)".into(),
        },
        Case {
            name: "empty metric name is no metric name",
            series: series(&[("__name__", ""), ("job", "a")], &[NOW]),
            reason: DiscardReason::MissingMetricName,
            message: "received series has no metric name (err-cairn-missing-metric-name)".into(),
        },
        Case {
            name: "no labels at all",
            series: series(&[], &[NOW]),
            reason: DiscardReason::MissingMetricName,
            message: "received series has no metric name (err-cairn-missing-metric-name)".into(),
        },
        Case {
            name: "metric name starting with a digit",
            series: series(&[("__name__", "1up")], &[NOW]),
            reason: DiscardReason::MetricNameInvalid,
            message: "received a series with invalid metric name: '1up' (err-cairn-metric-name-invalid)".into(),
        },
        Case {
            name: "metric name with a dot (legacy scheme)",
            series: series(&[("__name__", "http.requests")], &[NOW]),
            reason: DiscardReason::MetricNameInvalid,
            message: "received a series with invalid metric name: 'http.requests' (err-cairn-metric-name-invalid)".into(),
        },
        Case {
            name: "metric name with non-ascii characters is echoed without them",
            series: series(&[("__name__", "caf\u{e9}_total")], &[NOW]),
            reason: DiscardReason::MetricNameInvalid,
            message: "received a series with invalid metric name: 'caf_total (non-ascii characters removed)' (err-cairn-metric-name-invalid)".into(),
        },
        Case {
            name: "label name with a dash",
            series: series(&[("__name__", "up"), ("foo-bar", "x")], &[NOW]),
            reason: DiscardReason::LabelNameInvalid,
            message: r#"received a series with an invalid label: 'foo-bar' series: 'up{foo-bar="x"}' (err-cairn-label-invalid)"#.into(),
        },
        Case {
            name: "empty label name",
            series: series(&[("__name__", "up"), ("", "x")], &[NOW]),
            reason: DiscardReason::LabelNameInvalid,
            message: r#"received a series with an invalid label: '' series: 'up{="x"}' (err-cairn-label-invalid)"#.into(),
        },
        Case {
            name: "label name with a colon (allowed in metric names only)",
            series: series(&[("__name__", "a:b"), ("a:b", "x")], &[NOW]),
            reason: DiscardReason::LabelNameInvalid,
            message: r#"received a series with an invalid label: 'a:b' series: 'a:b{a:b="x"}' (err-cairn-label-invalid)"#.into(),
        },
        Case {
            name: "label name too long",
            series: series(&[("__name__", "up"), (&long_name, "x")], &[NOW]),
            reason: DiscardReason::LabelNameTooLong,
            message: format!(
                "received a series whose label name length exceeds the limit, label: '{}' series: '{}' (err-cairn-label-name-too-long){}",
                "n".repeat(200),
                format!("up{{{long_name}=\"x\"}}").chars().take(200).collect::<String>(),
                limit_hint("limits.max_label_name_length"),
            ),
        },
        Case {
            name: "label value too long",
            series: series(&[("__name__", "up"), ("job", &long_value)], &[NOW]),
            reason: DiscardReason::LabelValueTooLong,
            message: format!(
                "received a series whose label value length of 2049 exceeds the limit of 2048, label: 'job', value: '{}' (truncated) series: '{}' (err-cairn-label-value-too-long){}",
                "v".repeat(200),
                format!("up{{job=\"{long_value}\"}}").chars().take(200).collect::<String>(),
                limit_hint("limits.max_label_value_length"),
            ),
        },
        Case {
            name: "metric name too long counts as a label value",
            series: series(&[("__name__", &"m".repeat(2049))], &[NOW]),
            reason: DiscardReason::LabelValueTooLong,
            message: format!(
                "received a series whose label value length of 2049 exceeds the limit of 2048, label: '__name__', value: '{}' (truncated) series: '{}' (err-cairn-label-value-too-long){}",
                "m".repeat(200),
                "m".repeat(200),
                limit_hint("limits.max_label_value_length"),
            ),
        },
        Case {
            name: "duplicate label name",
            series: series(&[("__name__", "up"), ("job", "a"), ("job", "b")], &[NOW]),
            reason: DiscardReason::DuplicateLabelNames,
            message: r#"received a series with duplicate label name, label: 'job' series: 'up{job="a", job="b"}' (err-cairn-duplicate-label-names)"#.into(),
        },
        Case {
            name: "duplicate label name, unsorted input",
            series: series(&[("job", "a"), ("__name__", "up"), ("job", "b")], &[NOW]),
            reason: DiscardReason::DuplicateLabelNames,
            message: r#"received a series with duplicate label name, label: 'job' series: 'up{job="a", job="b"}' (err-cairn-duplicate-label-names)"#.into(),
        },
        Case {
            name: "duplicate __name__",
            series: series(&[("__name__", "up"), ("__name__", "down")], &[NOW]),
            reason: DiscardReason::DuplicateLabelNames,
            message: r#"received a series with duplicate label name, label: '__name__' series: 'up{}' (err-cairn-duplicate-label-names)"#.into(),
        },
        Case {
            name: "too many labels",
            series: owned_series(&many_labels(31)),
            reason: DiscardReason::MaxLabelNamesPerSeries,
            message: {
                let text = Labels::new(
                    many_labels(31)
                        .into_iter()
                        .map(|(n, v)| Label::new(n, v))
                        .collect(),
                )
                .to_string();
                assert!(text.chars().count() > 200);
                format!(
                    "received a series whose number of labels exceeds the limit (actual: 31, limit: 30) series: '{}\u{2026}' (err-cairn-max-label-names-per-series){}",
                    text.chars().take(200).collect::<String>(),
                    limit_hint("limits.max_label_names_per_series"),
                )
            },
        },
        Case {
            name: "the label count is checked before label names",
            series: {
                let mut pairs = many_labels(31);
                pairs.push(("bad-name".into(), "x".into()));
                owned_series(&pairs)
            },
            reason: DiscardReason::MaxLabelNamesPerSeries,
            message: String::new(),
        },
        Case {
            name: "the metric name is checked before the label count",
            series: {
                let mut pairs = many_labels(31);
                pairs[0].1 = "bad-name".into();
                owned_series(&pairs)
            },
            reason: DiscardReason::MetricNameInvalid,
            message: String::new(),
        },
    ];

    for case in cases {
        let sample_count = case.series.samples.len() as u64;
        let out = validate(vec![case.series]);
        assert!(out.series.is_empty(), "{}: series kept", case.name);
        assert_eq!(
            out.discarded,
            BTreeMap::from([(case.reason, sample_count)]),
            "{}",
            case.name
        );
        let err = out
            .first_error
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no error", case.name));
        assert_eq!(err.reason, case.reason, "{}", case.name);
        if !case.message.is_empty() {
            assert_eq!(err.message, case.message, "{}", case.name);
            assert_eq!(err.to_string(), case.message, "{}", case.name);
        }
        assert!(
            err.message
                .contains(&format!("(err-cairn-{})", case.reason.error_id())),
            "{}",
            case.name
        );
        assert_counts_balance(&out);
    }
}

/// Label sets that are valid, and what they become.
#[test]
fn series_that_pass() {
    let cases: Vec<(&str, prompb::TimeSeries, Labels)> = vec![
        (
            "sorted input",
            series(&[("__name__", "up"), ("job", "a")], &[NOW]),
            Labels::from_pairs(&[("__name__", "up"), ("job", "a")]),
        ),
        (
            "unsorted input is sorted",
            series(&[("zone", "z"), ("job", "a"), ("__name__", "up")], &[NOW]),
            Labels::from_pairs(&[("__name__", "up"), ("job", "a"), ("zone", "z")]),
        ),
        (
            "labels with empty values are dropped",
            series(&[("__name__", "up"), ("empty", ""), ("job", "a")], &[NOW]),
            Labels::from_pairs(&[("__name__", "up"), ("job", "a")]),
        ),
        (
            "an empty duplicate is not a duplicate",
            series(&[("__name__", "up"), ("job", "a"), ("job", "")], &[NOW]),
            Labels::from_pairs(&[("__name__", "up"), ("job", "a")]),
        ),
        (
            "double-underscore label names are allowed",
            series(&[("__name__", "up"), ("__replica__", "r1")], &[NOW]),
            Labels::from_pairs(&[("__name__", "up"), ("__replica__", "r1")]),
        ),
        (
            "colons in metric names",
            series(&[("__name__", "job:up:sum")], &[NOW]),
            Labels::from_pairs(&[("__name__", "job:up:sum")]),
        ),
        (
            "exactly the label count limit",
            owned_series(&many_labels(30)),
            Labels::new(
                many_labels(30)
                    .into_iter()
                    .map(|(n, v)| Label::new(n, v))
                    .collect(),
            ),
        ),
        (
            "exactly the name and value length limits",
            series(
                &[("__name__", &"m".repeat(2048)), (&"n".repeat(1024), "x")],
                &[NOW],
            ),
            Labels::from_pairs(&[("__name__", &"m".repeat(2048)), (&"n".repeat(1024), "x")]),
        ),
        (
            "label values may be any UTF-8",
            series(
                &[("__name__", "up"), ("path", "/caf\u{e9}/\u{1f600}")],
                &[NOW],
            ),
            Labels::from_pairs(&[("__name__", "up"), ("path", "/caf\u{e9}/\u{1f600}")]),
        ),
    ];
    for (name, input, expected) in cases {
        let out = validate(vec![input]);
        assert_eq!(out.first_error, None, "{name}");
        assert!(out.discarded.is_empty(), "{name}");
        assert_eq!(out.series.len(), 1, "{name}");
        assert_eq!(out.series[0].labels, expected, "{name}");
        assert_counts_balance(&out);
    }
}

#[test]
fn utf8_scheme_accepts_what_legacy_rejects() {
    let limits = ValidationLimits {
        name_validation_scheme: NameValidationScheme::Utf8,
        ..ValidationLimits::default()
    };
    let input = series(
        &[
            ("__name__", "http.server.duration"),
            ("service.name", "api"),
            ("caf\u{e9}", "x"),
        ],
        &[NOW],
    );
    let out = validate_owned(request(vec![input.clone()]), &limits, NOW);
    assert_eq!(out.first_error, None);
    assert_eq!(out.series.len(), 1);

    let legacy = validate(vec![input]);
    assert_eq!(
        legacy.first_error.map(|e| e.reason),
        Some(DiscardReason::MetricNameInvalid)
    );

    // Empty names stay invalid under UTF-8 too.
    let out = validate_owned(
        request(vec![series(&[("__name__", "up"), ("", "x")], &[NOW])]),
        &limits,
        NOW,
    );
    assert_eq!(
        out.first_error.map(|e| e.reason),
        Some(DiscardReason::LabelNameInvalid)
    );
}

#[test]
fn name_schemes() {
    let legacy = NameValidationScheme::Legacy;
    let utf8 = NameValidationScheme::Utf8;
    let cases: &[(&str, bool, bool, bool)] = &[
        // name, legacy metric, legacy label, utf8 (both)
        ("up", true, true, true),
        ("_x", true, true, true),
        ("__name__", true, true, true),
        (":x", true, false, true),
        ("a:b", true, false, true),
        ("A9_", true, true, true),
        ("9a", false, false, true),
        ("a-b", false, false, true),
        ("a.b", false, false, true),
        ("a b", false, false, true),
        ("\u{e9}", false, false, true),
        ("", false, false, false),
    ];
    for (name, metric, label, any) in cases {
        assert_eq!(legacy.is_valid_metric_name(name), *metric, "{name:?}");
        assert_eq!(legacy.is_valid_label_name(name), *label, "{name:?}");
        assert_eq!(utf8.is_valid_metric_name(name), *any, "{name:?}");
        assert_eq!(utf8.is_valid_label_name(name), *any, "{name:?}");
    }
}

#[test]
fn samples_too_far_in_future_are_discarded_one_by_one() {
    let grace = ValidationLimits::default().creation_grace_period_ms;
    let out = validate(vec![series(
        &[("__name__", "up"), ("job", "a")],
        &[NOW, NOW + grace, NOW + grace + 1, NOW - 1, NOW + 2 * grace],
    )]);
    assert_eq!(out.series.len(), 1);
    let kept: Vec<i64> = out.series[0].samples.iter().map(|s| s.t).collect();
    assert_eq!(kept, vec![NOW, NOW + grace, NOW - 1]);
    assert_eq!(
        out.discarded,
        BTreeMap::from([(DiscardReason::TooFarInFuture, 2)])
    );
    let err = out.first_error.as_ref().unwrap();
    assert_eq!(err.reason, DiscardReason::TooFarInFuture);
    assert_eq!(
        err.message,
        format!(
            "received a sample whose timestamp is too far in the future, timestamp: {} series: 'up' (err-cairn-too-far-in-future). To adjust the related per-tenant limit, configure limits.creation_grace_period, or contact your service administrator.",
            NOW + grace + 1
        )
    );
    assert_counts_balance(&out);
}

#[test]
fn creation_grace_period_is_configurable() {
    let limits = ValidationLimits {
        creation_grace_period_ms: 0,
        ..ValidationLimits::default()
    };
    let out = validate_owned(
        request(vec![series(&[("__name__", "up")], &[NOW, NOW + 1])]),
        &limits,
        NOW,
    );
    assert_eq!(out.samples_accepted(), 1);
    assert_eq!(
        out.discarded,
        BTreeMap::from([(DiscardReason::TooFarInFuture, 1)])
    );
}

#[test]
fn series_with_every_sample_in_the_future_is_omitted() {
    let out = validate(vec![series(
        &[("__name__", "up")],
        &[i64::MAX, NOW + 3_600_000],
    )]);
    assert!(out.series.is_empty());
    assert_eq!(out.samples_discarded(), 2);
    assert_counts_balance(&out);
}

#[test]
fn invalid_series_are_skipped_and_valid_ones_kept() {
    let out = validate(vec![
        series(&[("__name__", "a")], &[NOW]),
        series(&[("job", "x")], &[NOW, NOW - 1]),
        series(&[("__name__", "b"), ("job", "x"), ("job", "y")], &[NOW]),
        series(&[("__name__", "c")], &[NOW, NOW - 1, NOW - 2]),
    ]);
    let names: Vec<&str> = out
        .series
        .iter()
        .map(|s| s.labels.metric_name().unwrap())
        .collect();
    assert_eq!(names, vec!["a", "c"]);
    assert_eq!(out.samples_received, 7);
    assert_eq!(out.samples_accepted(), 4);
    assert_eq!(
        out.discarded,
        BTreeMap::from([
            (DiscardReason::MissingMetricName, 2),
            (DiscardReason::DuplicateLabelNames, 1),
        ])
    );
    // The first error wins.
    assert_eq!(
        out.first_error.unwrap().reason,
        DiscardReason::MissingMetricName
    );
}

#[test]
fn sample_values_pass_through_bit_exactly() {
    let values = [
        f64::from_bits(STALE_NAN_BITS),
        f64::NAN,
        f64::from_bits(0xfff8_0000_dead_beef),
        f64::INFINITY,
        f64::MIN_POSITIVE / 2.0,
    ];
    let input = prompb::TimeSeries {
        labels: labels(&[("__name__", "up")]),
        samples: values
            .iter()
            .enumerate()
            .map(|(i, v)| prompb::Sample {
                value: *v,
                timestamp: NOW + i as i64,
            })
            .collect(),
        ..Default::default()
    };
    // Through the wire format too, as the server sees it.
    let body = crate::encode_write_request(&request(vec![input]));
    let decoded = decode_leaked(&body);
    let out = validate_write_request(decoded, &ValidationLimits::default(), NOW);
    let bits: Vec<u64> = out.series[0]
        .samples
        .iter()
        .map(|s| s.v.to_bits())
        .collect();
    let expected: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
    assert_eq!(bits, expected);
    assert!(cairn_model::is_stale_nan(out.series[0].samples[0].v));
}

/// `prost`, like gogo-protobuf senders, omits a zero double when encoding,
/// so -0.0 cannot round-trip through [`crate::encode_write_request`]; a
/// sender that does write it (protobuf-go) gets its sign kept.
#[test]
fn negative_zero_sent_explicitly_keeps_its_sign() {
    #[rustfmt::skip]
    let protobuf: Vec<u8> = vec![
        0x0a, 29,                                   // WriteRequest.timeseries
          0x0a, 14,                                 //   labels
            0x0a, 8, b'_', b'_', b'n', b'a', b'm', b'e', b'_', b'_',
            0x12, 2, b'u', b'p',
          0x12, 11,                                 //   samples
            0x09, 0, 0, 0, 0, 0, 0, 0, 0x80,        //     value = -0.0
            0x10, 1,                                //     timestamp = 1
    ];
    let body = snap::raw::Encoder::new().compress_vec(&protobuf).unwrap();
    let decoded = decode_leaked(&body);
    let out = validate_write_request(decoded, &ValidationLimits::default(), NOW);
    assert_eq!(out.series[0].samples[0].v.to_bits(), (-0.0f64).to_bits());
}

#[test]
fn series_without_samples_is_omitted_without_error() {
    let out = validate(vec![series(&[("__name__", "up")], &[])]);
    assert!(out.series.is_empty());
    assert_eq!(out.first_error, None);

    // A rejected series with nothing in it costs no error either.
    let out = validate(vec![series(&[("job", "x")], &[])]);
    assert_eq!(out.first_error, None);
    assert!(out.discarded.is_empty());
}

#[test]
fn histograms_are_counted_and_dropped() {
    let mut input = series(&[("__name__", "h")], &[NOW]);
    input.histograms = vec![
        prompb::Histogram {
            timestamp: NOW,
            ..Default::default()
        };
        3
    ];
    let out = validate(vec![input]);
    assert_eq!(out.histograms_received, 3);
    assert_eq!(out.samples_accepted(), 1);
    assert_eq!(out.first_error, None);
}

fn exemplar(pairs: &[(&str, &str)], timestamp: i64) -> prompb::Exemplar {
    prompb::Exemplar {
        labels: labels(pairs),
        value: 0.5,
        timestamp,
    }
}

#[test]
fn exemplar_rules() {
    let grace = ValidationLimits::default().creation_grace_period_ms;
    let at_limit = "x".repeat(128 - "trace_id".len());
    let over_limit = "x".repeat(129 - "trace_id".len());
    // Characters, not bytes: 120 two-byte characters fit.
    let multibyte = "\u{e9}".repeat(120);
    let cases: Vec<(&str, prompb::Exemplar, Option<ExemplarDiscardReason>)> = vec![
        ("valid", exemplar(&[("trace_id", "abc")], NOW), None),
        (
            "no labels",
            exemplar(&[], NOW),
            Some(ExemplarDiscardReason::LabelsMissing),
        ),
        (
            "timestamp 0",
            exemplar(&[("trace_id", "abc")], 0),
            Some(ExemplarDiscardReason::TimestampInvalid),
        ),
        (
            "label set at 128 characters",
            exemplar(&[("trace_id", &at_limit)], NOW),
            None,
        ),
        (
            "label set over 128 characters",
            exemplar(&[("trace_id", &over_limit)], NOW),
            Some(ExemplarDiscardReason::LabelsTooLong),
        ),
        (
            "multibyte characters count once",
            exemplar(&[("t", &multibyte)], NOW),
            None,
        ),
        (
            "only empty values",
            exemplar(&[("trace_id", "")], NOW),
            Some(ExemplarDiscardReason::LabelsBlank),
        ),
        (
            "only empty names",
            exemplar(&[("", "abc")], NOW),
            Some(ExemplarDiscardReason::LabelsBlank),
        ),
        (
            "too far in the future",
            exemplar(&[("trace_id", "abc")], NOW + grace + 1),
            Some(ExemplarDiscardReason::TooFarInFuture),
        ),
    ];
    for (name, input, expected) in cases {
        let mut with_exemplar = series(&[("__name__", "up")], &[NOW]);
        with_exemplar.exemplars = vec![input];
        let out = validate(vec![with_exemplar]);
        // Exemplar problems never fail the request nor touch the samples.
        assert_eq!(out.first_error, None, "{name}");
        assert_eq!(out.samples_accepted(), 1, "{name}");
        assert_eq!(out.exemplars_received, 1, "{name}");
        match expected {
            None => {
                assert_eq!(out.exemplars_accepted(), 1, "{name}");
                assert!(out.discarded_exemplars.is_empty(), "{name}");
            }
            Some(reason) => {
                assert_eq!(out.exemplars_accepted(), 0, "{name}");
                assert_eq!(
                    out.discarded_exemplars,
                    BTreeMap::from([(reason, 1)]),
                    "{name}"
                );
            }
        }
        assert_counts_balance(&out);
    }
}

#[test]
fn valid_exemplar_is_converted() {
    let mut input = series(&[("__name__", "up")], &[]);
    input.exemplars = vec![exemplar(
        &[("span_id", "s"), ("trace_id", "t"), ("empty", "")],
        NOW,
    )];
    let out = validate(vec![input]);
    // A series with only exemplars is kept.
    assert_eq!(out.series.len(), 1);
    assert_eq!(
        out.series[0].exemplars,
        vec![Exemplar {
            labels: Labels::from_pairs(&[("span_id", "s"), ("trace_id", "t")]),
            value: 0.5,
            t: NOW,
        }]
    );
}

#[test]
fn exemplars_of_a_rejected_series_are_counted() {
    let mut input = series(&[("job", "x")], &[NOW]);
    input.exemplars = vec![exemplar(&[("trace_id", "t")], NOW); 2];
    let out = validate(vec![input]);
    assert_eq!(
        out.discarded_exemplars,
        BTreeMap::from([(ExemplarDiscardReason::SeriesInvalid, 2)])
    );
    assert_counts_balance(&out);
}

fn metadata(name: &str, help: &str, unit: &str, metric_type: i32) -> prompb::MetricMetadata {
    prompb::MetricMetadata {
        r#type: metric_type,
        metric_family_name: name.to_string(),
        help: help.to_string(),
        unit: unit.to_string(),
    }
}

#[test]
fn metadata_rules() {
    let counter = prompb::metric_metadata::MetricType::Counter as i32;
    let long = "x".repeat(1025);
    let cases: Vec<(&str, prompb::MetricMetadata, Option<MetadataDiscardReason>)> = vec![
        ("valid", metadata("up", "help", "seconds", counter), None),
        (
            "no metric family name",
            metadata("", "help", "", counter),
            Some(MetadataDiscardReason::MissingMetricName),
        ),
        (
            "metric family name too long",
            metadata(&long, "", "", counter),
            Some(MetadataDiscardReason::MetricNameTooLong),
        ),
        (
            "unit too long",
            metadata("up", "", &long, counter),
            Some(MetadataDiscardReason::UnitTooLong),
        ),
        (
            "long help is kept, cut",
            metadata("up", &long, "", counter),
            None,
        ),
    ];
    for (name, input, expected) in cases {
        let out = validate_owned(
            prompb::WriteRequest {
                timeseries: vec![],
                metadata: vec![input],
            },
            &ValidationLimits::default(),
            NOW,
        );
        assert_eq!(out.metadata_received, 1, "{name}");
        assert_eq!(out.first_error, None, "{name}");
        match expected {
            None => assert_eq!(out.metadata.len(), 1, "{name}"),
            Some(reason) => {
                assert!(out.metadata.is_empty(), "{name}");
                assert_eq!(
                    out.discarded_metadata,
                    BTreeMap::from([(reason, 1)]),
                    "{name}"
                );
            }
        }
        assert_counts_balance(&out);
    }
}

#[test]
fn metadata_is_converted_and_help_cut_at_a_char_boundary() {
    // 1023 ASCII bytes then a 2-byte character straddling the 1024 limit.
    let help = format!("{}\u{e9}tail", "h".repeat(1023));
    let out = validate_owned(
        prompb::WriteRequest {
            timeseries: vec![],
            metadata: vec![
                metadata("http_requests", &help, "requests", 1),
                metadata("weird", "", "", 99),
            ],
        },
        &ValidationLimits::default(),
        NOW,
    );
    assert_eq!(
        out.metadata[0],
        MetricMetadata {
            metric_family_name: "http_requests".into(),
            metric_type: MetricType::Counter,
            help: "h".repeat(1023),
            unit: "requests".into(),
        }
    );
    assert_eq!(out.metadata[1].metric_type, MetricType::Unknown);
}

#[test]
fn defaults_are_mimirs() {
    let limits = ValidationLimits::default();
    assert_eq!(limits.max_label_name_length, 1024);
    assert_eq!(limits.max_label_value_length, 2048);
    assert_eq!(limits.max_label_names_per_series, 30);
    assert_eq!(limits.creation_grace_period_ms, 600_000);
    assert_eq!(limits.max_metadata_length, 1024);
    assert_eq!(limits.name_validation_scheme, NameValidationScheme::Legacy);
}

#[test]
fn storage_rejection_messages_follow_mimir() {
    // Mimir's own test vector: 1575043969 ms is 1970-01-19T05:30:43.969Z.
    let series = Labels::from_pairs(&[("__name__", "test"), ("job", "a")]);
    let cases = [
        (
            DiscardReason::SampleOutOfOrder,
            "the sample has been rejected because another sample with a more recent timestamp has already been ingested and out-of-order samples are not allowed (err-cairn-sample-out-of-order)",
        ),
        (
            DiscardReason::SampleDuplicateTimestamp,
            "the sample has been rejected because another sample with the same timestamp, but a different value, has already been ingested (err-cairn-sample-duplicate-timestamp)",
        ),
        (
            DiscardReason::SampleTooOld,
            "the sample has been rejected because its timestamp is too old (err-cairn-sample-timestamp-too-old)",
        ),
    ];
    for (reason, head) in cases {
        assert_eq!(
            storage_rejection_message(reason, &series, 1_575_043_969),
            format!(
                r#"{head}. The affected sample has timestamp 1970-01-19T05:30:43.969Z and is from series test{{job="a"}}"#
            )
        );
    }
}

#[test]
fn rfc3339_formatting_matches_go() {
    let cases = [
        (0, "1970-01-01T00:00:00Z"),
        (1_500, "1970-01-01T00:00:01.5Z"),
        (1_250, "1970-01-01T00:00:01.25Z"),
        (1_575_043_969, "1970-01-19T05:30:43.969Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (1_700_000_000_000, "2023-11-14T22:13:20Z"),
        (1_709_164_800_000, "2024-02-29T00:00:00Z"),
        (951_782_400_000, "2000-02-29T00:00:00Z"),
        (4_102_444_799_999, "2099-12-31T23:59:59.999Z"),
        (-62_135_596_800_000, "0001-01-01T00:00:00Z"),
    ];
    for (t, expected) in cases {
        assert_eq!(format_rfc3339_millis(t), expected, "{t}");
    }
}

#[test]
fn message_fields_are_cut_at_200_characters() {
    let long = "\u{e9}".repeat(300);
    assert_eq!(truncate_chars(&long).chars().count(), 200);
    assert_eq!(truncate_chars("short"), "short");
}

/// The legacy scheme's lookup table agrees with the character ranges it
/// encodes, for every byte in first and in later position.
#[test]
fn legacy_name_table_matches_the_character_ranges() {
    let label_first = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    let label_rest = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let metric_first = |b: u8| label_first(b) || b == b':';
    let metric_rest = |b: u8| label_rest(b) || b == b':';
    let legacy = NameValidationScheme::Legacy;
    for b in 0..=127u8 {
        let alone = (b as char).to_string();
        let after = format!("a{}", b as char);
        assert_eq!(legacy.is_valid_label_name(&alone), label_first(b), "{b}");
        assert_eq!(legacy.is_valid_label_name(&after), label_rest(b), "{b}");
        assert_eq!(legacy.is_valid_metric_name(&alone), metric_first(b), "{b}");
        assert_eq!(legacy.is_valid_metric_name(&after), metric_rest(b), "{b}");
    }
    assert!(!legacy.is_valid_label_name("aé"));
    assert!(!legacy.is_valid_metric_name("é"));
    assert!(!legacy.is_valid_label_name(""));
}

fn hint(id: u64) -> StorageHint {
    StorageHint {
        store: 7,
        id,
        slot: id as u32,
    }
}

/// A series storage found is taken as sent, carries its hint, and still
/// has its samples and exemplars checked; the others are validated as
/// always, and the outcome equals plain validation's.
#[test]
fn found_series_skip_the_label_checks_and_keep_the_sample_checks() {
    let far = NOW + 11 * 60 * 1000;
    let mut found = series(&[("__name__", "up"), ("job", "a")], &[NOW, far]);
    found.exemplars = vec![prompb::Exemplar {
        labels: labels(&[("trace_id", "abc")]),
        value: 1.0,
        timestamp: far,
    }];
    let timeseries = vec![
        found,
        series(&[("job", "b"), ("__name__", "up")], &[NOW]),
        series(&[("job", "c")], &[NOW]),
    ];
    let request: &'static prompb::WriteRequest = Box::leak(Box::new(request(timeseries)));
    let plain = validate_write_request(
        Box::leak(Box::new(WriteRequestRef::from_owned(request))),
        &ValidationLimits::default(),
        NOW,
    );
    let known = validate_write_request_known(
        Box::leak(Box::new(WriteRequestRef::from_owned(request))),
        &ValidationLimits::default(),
        NOW,
        |i| (i == 0).then(|| hint(1)),
    );
    assert_eq!(known.series.len(), 2);
    assert_eq!(known.series[0].found, Some(hint(1)));
    assert_eq!(known.series[1].found, None);
    assert_eq!(known.series[1].labels.to_string(), r#"up{job="b"}"#);
    // The found series' future sample and exemplar are dropped all the same.
    assert_eq!(known.series[0].samples.len(), 1);
    assert!(known.series[0].exemplars.is_empty());
    assert_eq!(known.discarded, plain.discarded);
    assert_eq!(known.discarded_exemplars, plain.discarded_exemplars);
    assert_eq!(known.first_error, plain.first_error);
    let strip = |w: &ValidatedWrite| -> Vec<_> {
        w.series
            .iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.samples.to_vec(),
                    s.exemplars.clone(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&known), strip(&plain));
    assert_counts_balance(&known);
}

/// The hint skips the label checks whatever the labels are: it is the
/// caller's promise (storage found them, and the limits admit every stored
/// set) that makes skipping them safe, and the checks do run without it.
#[test]
fn without_a_hint_the_same_labels_are_checked() {
    let pairs = &[("__name__", "up"), ("bad-name", "x")];
    let request: &'static prompb::WriteRequest =
        Box::leak(Box::new(request(vec![series(pairs, &[NOW])])));
    let checked = validate_write_request_known(
        Box::leak(Box::new(WriteRequestRef::from_owned(request))),
        &ValidationLimits::default(),
        NOW,
        |_| None,
    );
    assert_eq!(
        checked.discarded.get(&DiscardReason::LabelNameInvalid),
        Some(&1)
    );
    let trusted = validate_write_request_known(
        Box::leak(Box::new(WriteRequestRef::from_owned(request))),
        &ValidationLimits::default(),
        NOW,
        |_| Some(hint(3)),
    );
    assert_eq!(trusted.series.len(), 1);
    assert!(trusted.first_error.is_none());
}

/// `admits_all` holds exactly when every dimension of the bounds is within
/// the limits, with the legacy scheme also needing legacy names.
#[test]
fn limits_admit_bounds_within_every_limit() {
    let limits = ValidationLimits::default();
    let within = LabelSetBounds {
        max_labels: 30,
        max_name_len: 1024,
        max_value_len: 2048,
        well_formed: true,
        legacy_names: true,
    };
    assert!(limits.admits_all(&within));
    assert!(limits.admits_all(&LabelSetBounds::default()));
    for outside in [
        LabelSetBounds {
            max_labels: 31,
            ..within
        },
        LabelSetBounds {
            max_name_len: 1025,
            ..within
        },
        LabelSetBounds {
            max_value_len: 2049,
            ..within
        },
        LabelSetBounds {
            well_formed: false,
            ..within
        },
        LabelSetBounds {
            legacy_names: false,
            ..within
        },
    ] {
        assert!(!limits.admits_all(&outside), "{outside:?}");
    }
    let utf8 = ValidationLimits {
        name_validation_scheme: NameValidationScheme::Utf8,
        ..ValidationLimits::default()
    };
    assert!(utf8.admits_all(&LabelSetBounds {
        legacy_names: false,
        ..within
    }));
    assert!(!utf8.admits_all(&LabelSetBounds {
        well_formed: false,
        ..within
    }));
}
