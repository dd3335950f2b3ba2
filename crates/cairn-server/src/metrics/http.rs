//! `cairn_request_duration_seconds`: every HTTP request by route template,
//! method and status code (its `_count` is the request rate; 5xx codes are
//! the errors).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status_code: String,
}

pub(super) struct HttpMetrics {
    request_duration: Family<RequestLabels, Histogram>,
}

impl HttpMetrics {
    pub(super) fn register(registry: &mut Registry) -> HttpMetrics {
        let request_duration =
            Family::<RequestLabels, Histogram>::new_with_constructor(request_duration_histogram);
        registry.register(
            "cairn_request_duration_seconds",
            "Time spent serving HTTP requests, by route and status code",
            request_duration.clone(),
        );
        HttpMetrics { request_duration }
    }

    pub(super) fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.request_duration
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status_code: status.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

fn request_duration_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}
