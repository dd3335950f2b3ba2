//! Cairn's own metrics, served on `/metrics` in Prometheus text format 0.0.4.
//!
//! Names follow Prometheus's conventions: `cairn_` prefix, base units,
//! `_total` on counters (the encoder adds it). One file per area:
//! - [`http`]: requests by route, method and status code;
//! - [`ingest`]: samples, exemplars and metadata received and discarded per
//!   tenant and reason;
//! - [`query`]: query evaluations by endpoint (duration, failures) and
//!   samples scanned per tenant;
//! - [`store`]: figures read from the tenant databases at scrape time (head,
//!   WAL, blocks, compaction, retention, disk), so nothing is double-booked;
//! - `bucket`: object-store requests by operation (`cairn_bucket_*`);
//! - [`process`]: the `process_*` metrics of the Prometheus client libraries,
//!   read from `/proc` at scrape time.
//!
//! The registry is built per server (no global state), so tests can read it.

mod bucket;
mod http;
mod ingest;
mod process;
mod query;
mod store;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cairn_model::{DiscardReason, TenantId};
use cairn_tsdb::TenantStore;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use http::RequestLabels;
pub use ingest::{DiscardLabels, TenantLabels};
pub use query::QueryOutcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Handles to every metric the server updates, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    http: http::HttpMetrics,
    ingest: ingest::IngestMetrics,
    query: query::QueryMetrics,
}

impl Metrics {
    /// Registers every metric; `store` is read at scrape time once it is
    /// set, and the filesystem holding `data_dir` is measured then.
    pub fn new(store: Arc<OnceLock<Arc<TenantStore>>>, data_dir: PathBuf) -> Metrics {
        let mut registry = Registry::default();
        let http = http::HttpMetrics::register(&mut registry);
        let ingest = ingest::IngestMetrics::register(&mut registry);
        let query = query::QueryMetrics::register(&mut registry);
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
        registry.register_collector(Box::new(store::StoreCollector::new(store, data_dir)));
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics {
            registry,
            http,
            ingest,
            query,
        }
    }

    /// For modules that own their metrics (the query scheduler) to register them.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Adds a collector read at scrape time (before the server starts).
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http.observe(method, route, status, elapsed);
    }

    pub fn count_received(&self, tenant: &TenantId, samples: u64, exemplars: u64, metadata: u64) {
        self.ingest
            .count_received(tenant, samples, exemplars, metadata);
    }

    pub fn count_discarded(&self, tenant: &TenantId, reason: DiscardReason, samples: u64) {
        self.ingest
            .count_discarded_samples(tenant, reason.as_label(), samples);
    }

    /// `reason` is the discard reason's label value.
    pub fn count_discarded_exemplars(&self, tenant: &TenantId, reason: &str, exemplars: u64) {
        self.ingest
            .count_discarded_exemplars(tenant, reason, exemplars);
    }

    /// `reason` is the discard reason's label value.
    pub fn count_discarded_metadata(&self, tenant: &TenantId, reason: &str, entries: u64) {
        self.ingest
            .count_discarded_metadata(tenant, reason, entries);
    }

    /// One query evaluation (`endpoint`: `query`, `query_range`).
    pub fn observe_query(&self, endpoint: &'static str, tenant: &str, outcome: QueryOutcome) {
        self.query.observe(endpoint, tenant, outcome);
    }

    /// The whole registry in Prometheus text format 0.0.4.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
