//! Cairn's shared vocabulary. No I/O lives here.
//!
//! Brief overview:
//! - [`Labels`] is a series' identity: label pairs sorted by name, names unique.
//!   [`Labels`] order is Prometheus's `labels.Compare`.
//! - [`Sample`] is one float point (`t` in milliseconds since the Unix epoch).
//!   [`STALE_NAN_BITS`] is Prometheus's staleness marker.
//! - [`TenantId`] is a validated tenant ID; only a `TenantId` may become a path
//!   component anywhere in Cairn.
//! - [`Matcher`] is one label matcher (`=`, `!=`, `=~`, `!~`), regexes fully anchored.
//! - [`Queryable`] is the seam between the PromQL engine and storage: the
//!   engine asks for series by matchers and time range and never sees the head.
//! - [`parse_duration_ms`] reads Prometheus duration notation (`1h30m`).
//! - [`SeriesSamples`], [`Exemplar`], [`MetricMetadata`] are what the write
//!   path hands to storage; [`DiscardReason`] names why a sample was dropped.
//! - [`is_legacy_metric_name`], [`is_legacy_label_name`] are the pre-UTF-8
//!   name rules; [`LabelSetBounds`] sums up many label sets for the write
//!   path's checks.
//! - [`cpu`] splits one read's per-series work across threads and hands
//!   the helpers' CPU time to the reading thread.

pub mod cpu;
mod discard;
mod duration;
mod labels;
mod matcher;
mod names;
mod queryable;
mod sample;
mod tenant;
mod write;

pub use discard::DiscardReason;
pub use duration::{parse_duration_ms, DisplayDuration, DurationError};
pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use names::{is_legacy_label_name, is_legacy_metric_name, LabelSetBounds};
pub use queryable::{
    DecodedSet, EmptyQueryable, Queryable, Series, SeriesSet, StorageError, TimeRange,
};
pub use sample::{is_stale_nan, Sample, STALE_NAN, STALE_NAN_BITS};
pub use tenant::{parse_tenant_ids, TenantId, TenantIdError, MAX_TENANT_ID_LEN};
pub use write::{
    Exemplar, LabelRef, LabelsRef, MetricMetadata, MetricType, SeriesRef, SeriesSamples,
    StorageHint,
};
