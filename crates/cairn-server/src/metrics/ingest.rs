//! The write path's counters per tenant: samples, exemplars and metadata
//! received (before validation) and discarded, by reason.

use cairn_model::TenantId;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscardLabels {
    pub tenant: String,
    pub reason: String,
}

pub(super) struct IngestMetrics {
    received_samples: Family<TenantLabels, Counter>,
    received_exemplars: Family<TenantLabels, Counter>,
    received_metadata: Family<TenantLabels, Counter>,
    discarded_samples: Family<DiscardLabels, Counter>,
    discarded_exemplars: Family<DiscardLabels, Counter>,
    discarded_metadata: Family<DiscardLabels, Counter>,
}

impl IngestMetrics {
    pub(super) fn register(registry: &mut Registry) -> IngestMetrics {
        let metrics = IngestMetrics {
            received_samples: Family::default(),
            received_exemplars: Family::default(),
            received_metadata: Family::default(),
            discarded_samples: Family::default(),
            discarded_exemplars: Family::default(),
            discarded_metadata: Family::default(),
        };
        registry.register(
            "cairn_received_samples",
            "Samples received on the write path per tenant, before validation",
            metrics.received_samples.clone(),
        );
        registry.register(
            "cairn_received_exemplars",
            "Exemplars received on the write path per tenant",
            metrics.received_exemplars.clone(),
        );
        registry.register(
            "cairn_received_metadata",
            "Metric metadata entries received on the write path per tenant",
            metrics.received_metadata.clone(),
        );
        registry.register(
            "cairn_discarded_samples",
            "Samples discarded per tenant and reason",
            metrics.discarded_samples.clone(),
        );
        registry.register(
            "cairn_discarded_exemplars",
            "Exemplars discarded per tenant and reason",
            metrics.discarded_exemplars.clone(),
        );
        registry.register(
            "cairn_discarded_metadata",
            "Metric metadata entries discarded per tenant and reason",
            metrics.discarded_metadata.clone(),
        );
        metrics
    }

    pub(super) fn count_received(
        &self,
        tenant: &TenantId,
        samples: u64,
        exemplars: u64,
        metadata: u64,
    ) {
        let labels = TenantLabels {
            tenant: tenant.to_string(),
        };
        self.received_samples.get_or_create(&labels).inc_by(samples);
        if exemplars > 0 {
            self.received_exemplars
                .get_or_create(&labels)
                .inc_by(exemplars);
        }
        if metadata > 0 {
            self.received_metadata
                .get_or_create(&labels)
                .inc_by(metadata);
        }
    }

    pub(super) fn count_discarded_samples(&self, tenant: &TenantId, reason: &str, n: u64) {
        count_reason(&self.discarded_samples, tenant, reason, n);
    }

    pub(super) fn count_discarded_exemplars(&self, tenant: &TenantId, reason: &str, n: u64) {
        count_reason(&self.discarded_exemplars, tenant, reason, n);
    }

    pub(super) fn count_discarded_metadata(&self, tenant: &TenantId, reason: &str, n: u64) {
        count_reason(&self.discarded_metadata, tenant, reason, n);
    }
}

fn count_reason(family: &Family<DiscardLabels, Counter>, tenant: &TenantId, reason: &str, n: u64) {
    if n == 0 {
        return;
    }
    family
        .get_or_create(&DiscardLabels {
            tenant: tenant.to_string(),
            reason: reason.to_string(),
        })
        .inc_by(n);
}
