//! Object-store request figures (`cairn_bucket_*`), read from the tenant
//! store's bucket at scrape time. Named after Thanos's
//! `thanos_objstore_bucket_operations_total` family, which Mimir exports.

use std::sync::{Arc, OnceLock};

use cairn_tsdb::TenantStore;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: String,
}

/// Encodes nothing until storage is open or when no bucket is configured.
pub(super) struct BucketCollector {
    pub store: Arc<OnceLock<Arc<TenantStore>>>,
}

impl std::fmt::Debug for BucketCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketCollector").finish()
    }
}

impl Collector for BucketCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = self.store.get().and_then(|s| s.bucket_stats()) else {
            return Ok(());
        };
        let labels = |operation: &str| OperationLabels {
            operation: operation.to_string(),
        };
        let mut family = encoder.encode_descriptor(
            "cairn_bucket_operations",
            "Object-store requests by operation (upload, get, delete, iter), each attempt counted",
            None,
            MetricType::Counter,
        )?;
        for op in &stats {
            ConstCounter::new(op.total).encode(family.encode_family(&labels(op.operation))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "cairn_bucket_operation_failures",
            "Object-store requests that failed, by operation",
            None,
            MetricType::Counter,
        )?;
        for op in &stats {
            ConstCounter::new(op.failures).encode(family.encode_family(&labels(op.operation))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "cairn_bucket_operation_duration_seconds",
            "Duration of object-store requests, by operation",
            None,
            MetricType::Histogram,
        )?;
        for op in &stats {
            family
                .encode_family(&labels(op.operation))?
                .encode_histogram::<OperationLabels>(
                    op.duration_seconds_sum,
                    op.total,
                    &op.duration_buckets,
                    None,
                )?;
        }
        Ok(())
    }
}
