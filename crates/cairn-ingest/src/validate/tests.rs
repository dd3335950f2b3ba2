use super::*;

#[test]
fn valid_series_passes() {
    let request = prompb::WriteRequest {
        timeseries: vec![prompb::TimeSeries {
            labels: vec![
                prompb::Label::new("job", "a"),
                prompb::Label::new("__name__", "up"),
            ],
            samples: vec![prompb::Sample {
                value: 1.0,
                timestamp: 1000,
            }],
            ..Default::default()
        }],
        metadata: vec![],
    };
    let out = validate_write_request(request, &ValidationLimits::default(), 1000);
    assert_eq!(out.first_error, None);
    assert_eq!(out.series.len(), 1);
    assert_eq!(
        out.series[0].labels,
        Labels::from_pairs(&[("__name__", "up"), ("job", "a")])
    );
}
