//! Cairn's own metrics, served on `/metrics` in Prometheus text format 0.0.4.
//!
//! Names follow Prometheus's conventions: `cairn_` prefix, base units,
//! `_total` on counters. Per-tenant storage figures (active series, WAL
//! bytes) are read from the tenant databases at scrape time by
//! [`StoreCollector`], so nothing is double-booked.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cairn_model::{DiscardReason, TenantId};
use cairn_tsdb::TenantStore;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

mod bucket;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscardLabels {
    pub tenant: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Handles to every metric the server updates, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    request_duration: Family<RequestLabels, Histogram>,
    received_samples: Family<TenantLabels, Counter>,
    received_exemplars: Family<TenantLabels, Counter>,
    received_metadata: Family<TenantLabels, Counter>,
    discarded_samples: Family<DiscardLabels, Counter>,
    discarded_exemplars: Family<DiscardLabels, Counter>,
    discarded_metadata: Family<DiscardLabels, Counter>,
}

impl Metrics {
    /// Registers every metric; `store` is read at scrape time once it is set.
    pub fn new(store: Arc<OnceLock<Arc<TenantStore>>>) -> Metrics {
        let mut registry = Registry::default();
        let request_duration =
            Family::<RequestLabels, Histogram>::new_with_constructor(request_duration_histogram);
        registry.register(
            "cairn_request_duration_seconds",
            "Time spent serving HTTP requests, by route and status code",
            request_duration.clone(),
        );
        let received_samples = Family::<TenantLabels, Counter>::default();
        registry.register(
            "cairn_received_samples",
            "Samples received on the write path per tenant, before validation",
            received_samples.clone(),
        );
        let received_exemplars = Family::<TenantLabels, Counter>::default();
        registry.register(
            "cairn_received_exemplars",
            "Exemplars received on the write path per tenant",
            received_exemplars.clone(),
        );
        let received_metadata = Family::<TenantLabels, Counter>::default();
        registry.register(
            "cairn_received_metadata",
            "Metric metadata entries received on the write path per tenant",
            received_metadata.clone(),
        );
        let discarded_samples = Family::<DiscardLabels, Counter>::default();
        registry.register(
            "cairn_discarded_samples",
            "Samples discarded per tenant and reason",
            discarded_samples.clone(),
        );
        let discarded_exemplars = Family::<DiscardLabels, Counter>::default();
        registry.register(
            "cairn_discarded_exemplars",
            "Exemplars discarded per tenant and reason",
            discarded_exemplars.clone(),
        );
        let discarded_metadata = Family::<DiscardLabels, Counter>::default();
        registry.register(
            "cairn_discarded_metadata",
            "Metric metadata entries discarded per tenant and reason",
            discarded_metadata.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register("cairn_build_info", "Cairn's version; always 1", build_info);
        registry.register_collector(Box::new(bucket::BucketCollector {
            store: Arc::clone(&store),
        }));
        registry.register_collector(Box::new(StoreCollector { store }));
        Metrics {
            registry,
            request_duration,
            received_samples,
            received_exemplars,
            received_metadata,
            discarded_samples,
            discarded_exemplars,
            discarded_metadata,
        }
    }

    /// Adds a collector read at scrape time (before the server starts).
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.request_duration
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                route: route.to_string(),
                status_code: status.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn count_received(&self, tenant: &TenantId, samples: u64, exemplars: u64, metadata: u64) {
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

    pub fn count_discarded(&self, tenant: &TenantId, reason: DiscardReason, samples: u64) {
        count_reason(&self.discarded_samples, tenant, reason.as_label(), samples);
    }

    /// `reason` is the discard reason's label value.
    pub fn count_discarded_exemplars(&self, tenant: &TenantId, reason: &str, exemplars: u64) {
        count_reason(&self.discarded_exemplars, tenant, reason, exemplars);
    }

    /// `reason` is the discard reason's label value.
    pub fn count_discarded_metadata(&self, tenant: &TenantId, reason: &str, entries: u64) {
        count_reason(&self.discarded_metadata, tenant, reason, entries);
    }

    /// The whole registry in Prometheus text format 0.0.4.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
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

fn request_duration_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Reads per-tenant storage figures at scrape time.
struct StoreCollector {
    store: Arc<OnceLock<Arc<TenantStore>>>,
}

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCollector")
            .field("store_open", &self.store.get().is_some())
            .finish()
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(store) = self.store.get() else {
            return Ok(());
        };
        let tenants = store.tenants();
        let stats: Vec<_> = tenants
            .iter()
            .map(|(id, db)| {
                (
                    TenantLabels {
                        tenant: id.to_string(),
                    },
                    db.stats(),
                )
            })
            .collect();

        let active = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "cairn_active_series",
            "Series in the tenant's in-memory head",
            None,
            active.metric_type(),
        )?;
        for (labels, stat) in &stats {
            let gauge = ConstGauge::new(stat.active_series as i64);
            gauge.encode(family.encode_family(labels)?)?;
        }

        let wal = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "cairn_wal_written_bytes",
            "Bytes written to the tenant's write-ahead log since start-up",
            None,
            wal.metric_type(),
        )?;
        for (labels, stat) in &stats {
            let counter = ConstCounter::new(stat.wal_bytes_written);
            counter.encode(family.encode_family(labels)?)?;
        }

        let appended = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "cairn_appended_samples",
            "Samples appended to the tenant's database since start-up",
            None,
            appended.metric_type(),
        )?;
        for (labels, stat) in &stats {
            let counter = ConstCounter::new(stat.samples_appended);
            counter.encode(family.encode_family(labels)?)?;
        }

        let repaired = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "cairn_wal_corruptions_repaired",
            "WAL corruptions found and cut at the tenant's last start-up (0 or 1)",
            None,
            repaired.metric_type(),
        )?;
        for (labels, db) in tenants.iter().map(|(id, db)| {
            (
                TenantLabels {
                    tenant: id.to_string(),
                },
                db,
            )
        }) {
            let count = u64::from(db.wal_replay_report().corruption.is_some());
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }

        let tenant_count = ConstGauge::new(stats.len() as i64);
        tenant_count.encode(encoder.encode_descriptor(
            "cairn_tenants",
            "Tenants with a database open on this node",
            None,
            tenant_count.metric_type(),
        )?)?;
        Ok(())
    }
}
