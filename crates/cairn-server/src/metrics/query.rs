//! The query engine's figures: evaluation time by endpoint, failures by
//! endpoint and error type, and queries and samples scanned per tenant.
//! (Time spent queued before evaluation is the scheduler's own metric.)

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    endpoint: String,
    error_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantEndpointLabels {
    tenant: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

/// What one evaluation took and found.
#[derive(Clone, Copy, Debug)]
pub struct QueryOutcome {
    pub elapsed: Duration,
    /// Samples the engine loaded from storage (Prometheus's `totalQueryableSamples`).
    pub samples: u64,
    /// The Prometheus `errorType` when the evaluation failed.
    pub error_type: Option<&'static str>,
}

pub(super) struct QueryMetrics {
    duration: Family<EndpointLabels, Histogram>,
    failures: Family<FailureLabels, Counter>,
    queries: Family<TenantEndpointLabels, Counter>,
    samples: Family<TenantLabels, Counter>,
}

impl QueryMetrics {
    pub(super) fn register(registry: &mut Registry) -> QueryMetrics {
        let metrics = QueryMetrics {
            duration: Family::new_with_constructor(|| {
                // 1 ms .. ~65 s.
                Histogram::new(exponential_buckets(0.001, 2.0, 17))
            }),
            failures: Family::default(),
            queries: Family::default(),
            samples: Family::default(),
        };
        registry.register(
            "cairn_query_duration_seconds",
            "Time spent evaluating PromQL queries, by endpoint",
            metrics.duration.clone(),
        );
        registry.register(
            "cairn_query_failures",
            "PromQL evaluations that failed, by endpoint and Prometheus error type",
            metrics.failures.clone(),
        );
        registry.register(
            "cairn_queries",
            "PromQL evaluations per tenant and endpoint",
            metrics.queries.clone(),
        );
        registry.register(
            "cairn_query_samples_scanned",
            "Samples loaded from storage by PromQL evaluations per tenant",
            metrics.samples.clone(),
        );
        metrics
    }

    pub(super) fn observe(&self, endpoint: &'static str, tenant: &str, outcome: QueryOutcome) {
        self.duration
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_string(),
            })
            .observe(outcome.elapsed.as_secs_f64());
        self.queries
            .get_or_create(&TenantEndpointLabels {
                tenant: tenant.to_string(),
                endpoint: endpoint.to_string(),
            })
            .inc();
        if outcome.samples > 0 {
            self.samples
                .get_or_create(&TenantLabels {
                    tenant: tenant.to_string(),
                })
                .inc_by(outcome.samples);
        }
        if let Some(error_type) = outcome.error_type {
            self.failures
                .get_or_create(&FailureLabels {
                    endpoint: endpoint.to_string(),
                    error_type: error_type.to_string(),
                })
                .inc();
        }
    }
}
