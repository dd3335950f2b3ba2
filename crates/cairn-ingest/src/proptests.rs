//! Property tests: decoding never panics on hostile bytes, the wire format
//! round-trips, and validation's accounting and output invariants hold for
//! any request.

use proptest::collection::vec;
use proptest::prelude::*;

use prost::Message;

use crate::prompb::{Exemplar, Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
use crate::{
    decode_write_request, encode_write_request, validate_write_request, DecodeLimits,
    NameValidationScheme, ValidationLimits, WriteRequestRef,
};

const NOW: i64 = 1_700_000_000_000;

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("__name__".to_string()),
        Just("job".to_string()),
        Just("instance".to_string()),
        "[a-z_]{1,4}",
        "[a-zA-Z0-9_:.\\- ]{0,6}",
        "\\PC{0,4}",
    ]
}

fn arb_value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9_:]{1,6}", "\\PC{0,8}"]
}

fn arb_label() -> impl Strategy<Value = Label> {
    (arb_name(), arb_value()).prop_map(|(name, value)| Label { name, value })
}

fn arb_sample() -> impl Strategy<Value = Sample> {
    (
        any::<u64>().prop_map(f64::from_bits),
        prop_oneof![
            Just(NOW),
            (NOW - 3_600_000)..(NOW + 1_200_000),
            any::<i64>()
        ],
    )
        .prop_map(|(value, timestamp)| Sample { value, timestamp })
}

fn arb_exemplar() -> impl Strategy<Value = Exemplar> {
    (
        vec(arb_label(), 0..3),
        any::<f64>(),
        prop_oneof![Just(0i64), Just(NOW), any::<i64>()],
    )
        .prop_map(|(labels, value, timestamp)| Exemplar {
            labels,
            value,
            timestamp,
        })
}

fn arb_series() -> impl Strategy<Value = TimeSeries> {
    (
        vec(arb_label(), 0..6),
        vec(arb_sample(), 0..5),
        vec(arb_exemplar(), 0..2),
    )
        .prop_map(|(labels, samples, exemplars)| TimeSeries {
            labels,
            samples,
            exemplars,
            histograms: vec![],
        })
}

fn arb_metadata() -> impl Strategy<Value = MetricMetadata> {
    (-1i32..9, arb_value(), arb_value(), arb_value()).prop_map(
        |(r#type, metric_family_name, help, unit)| MetricMetadata {
            r#type,
            metric_family_name,
            help,
            unit,
        },
    )
}

fn arb_request() -> impl Strategy<Value = WriteRequest> {
    (vec(arb_series(), 0..6), vec(arb_metadata(), 0..3)).prop_map(|(timeseries, metadata)| {
        WriteRequest {
            timeseries,
            metadata,
        }
    })
}

proptest! {
    #[test]
    fn decode_never_panics_on_raw_bytes(body in vec(any::<u8>(), 0..512)) {
        let _ = decode_write_request(&body, &DecodeLimits::default());
    }

    #[test]
    fn decode_never_panics_on_snappy_wrapped_bytes(protobuf in vec(any::<u8>(), 0..512)) {
        let body = snap::raw::Encoder::new().compress_vec(&protobuf).unwrap();
        let _ = decode_write_request(&body, &DecodeLimits::default());
    }

    /// Round trip, compared on the wire bytes so NaNs compare by bits.
    #[test]
    fn encode_decode_round_trips(request in arb_request()) {
        let body = encode_write_request(&request);
        let decoded = decode_write_request(&body, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(encode_write_request(&decoded), body);
        for (sent, got) in request.timeseries.iter().zip(&decoded.timeseries) {
            for (s, g) in sent.samples.iter().zip(&got.samples) {
                // prost omits a zero double, so -0.0 comes back as +0.0.
                if s.value != 0.0 {
                    prop_assert_eq!(s.value.to_bits(), g.value.to_bits());
                }
            }
        }
    }

    /// The hand-written borrowed decoder accepts exactly what prost accepts
    /// and reads the same request, on arbitrary bytes ...
    #[test]
    fn borrowed_decoder_agrees_with_prost_on_raw_bytes(protobuf in vec(any::<u8>(), 0..256)) {
        check_decoders_agree(&protobuf)?;
    }

    /// ... and on valid requests with one byte changed or cut short.
    #[test]
    fn borrowed_decoder_agrees_with_prost_on_damaged_requests(
        request in arb_request(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        let mut protobuf = request.encode_to_vec();
        check_decoders_agree(&protobuf)?;
        if !protobuf.is_empty() {
            let i = at.index(protobuf.len());
            if cut {
                protobuf.truncate(i);
            } else {
                protobuf[i] = byte;
            }
            check_decoders_agree(&protobuf)?;
        }
    }

    #[test]
    fn validation_accounts_for_everything(request in arb_request(), utf8 in any::<bool>()) {
        let limits = ValidationLimits {
            max_label_names_per_series: 4,
            name_validation_scheme: if utf8 { NameValidationScheme::Utf8 } else { NameValidationScheme::Legacy },
            ..ValidationLimits::default()
        };
        let mut by_ref = WriteRequestRef::from_owned(&request);
        let out = validate_write_request(&mut by_ref, &limits, NOW);
        prop_assert_eq!(out.samples_received, out.samples_accepted() + out.samples_discarded());
        prop_assert_eq!(out.exemplars_received, out.exemplars_accepted() + out.exemplars_discarded());
        prop_assert_eq!(out.metadata_received, out.metadata.len() as u64 + out.metadata_discarded());
        prop_assert_eq!(out.first_error.is_some(), out.samples_discarded() > 0);
        let max_t = NOW + limits.creation_grace_period_ms;
        for series in &out.series {
            prop_assert!(!series.samples.is_empty() || !series.exemplars.is_empty());
            let labels = series.labels.as_slice();
            prop_assert!(labels.len() <= limits.max_label_names_per_series);
            prop_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
            let metric_name = series.labels.metric_name();
            prop_assert!(metric_name.is_some_and(|n| limits.name_validation_scheme.is_valid_metric_name(n)));
            for label in labels {
                prop_assert!(!label.value.is_empty());
                prop_assert!(limits.name_validation_scheme.is_valid_label_name(label.name));
            }
            prop_assert!(series.samples.iter().all(|s| s.t <= max_t));
        }
        if let Some(err) = &out.first_error {
            let id = format!("(err-cairn-{})", err.reason.error_id());
            prop_assert!(err.message.contains(&id), "{}", err.message);
        }
    }
}

/// Both decoders accept or both refuse `protobuf`, and when they accept they
/// read the same request (compared on prost's encoding, so NaNs compare by
/// bits; histograms are only counted by the borrowed decoder).
fn check_decoders_agree(protobuf: &[u8]) -> Result<(), TestCaseError> {
    let owned = WriteRequest::decode(protobuf);
    let by_ref = WriteRequestRef::decode(protobuf);
    match (owned, by_ref) {
        (Ok(mut owned), Ok(by_ref)) => {
            for series in &mut owned.timeseries {
                for h in &mut series.histograms {
                    *h = Default::default();
                }
            }
            prop_assert_eq!(
                by_ref.to_owned_request().encode_to_vec(),
                owned.encode_to_vec()
            );
            // A series' label entries as received decode, on their own, to
            // exactly its labels: storage may look a series up by them.
            for series in by_ref.series() {
                if let Some(wire) = series.wire_labels() {
                    let alone = TimeSeries::decode(wire).expect("entries that decoded before");
                    let labels: Vec<(&str, &str)> =
                        series.labels().iter().map(|l| (l.name, l.value)).collect();
                    let again: Vec<(&str, &str)> = alone
                        .labels
                        .iter()
                        .map(|l| (l.name.as_str(), l.value.as_str()))
                        .collect();
                    prop_assert_eq!(labels, again);
                    prop_assert!(alone.samples.is_empty() && alone.exemplars.is_empty());
                }
            }
        }
        (Err(_), Err(err)) => {
            prop_assert!(err
                .to_string()
                .starts_with("failed to decode Protobuf message: "));
        }
        (owned, by_ref) => prop_assert!(
            false,
            "prost: {:?}, borrowed: {:?}",
            owned.map(|_| ()),
            by_ref.map(|_| ())
        ),
    }
    Ok(())
}
