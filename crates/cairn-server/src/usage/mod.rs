//! Tenant usage accounting: what each tenant sent, stored and queried.
//!
//! - This module keeps the per-tenant counters in memory, fed by small hooks
//!   on the write path ([`Usage::begin_write`]) and the read path
//!   ([`count_query`] middleware, [`Usage::count_evaluation`]).
//! - [`recorder`] writes them every `usage.record_interval` as series into
//!   the reserved internal tenant [`USAGE_TENANT`] through the normal TSDB
//!   append (so they are in the WAL and survive restarts), and on start
//!   continues the cumulative counters from the last record.
//! - [`report`] is `GET /api/v1/usage`, computed with the PromQL engine over
//!   that tenant.
//! - [`attribution`] folds series into cost-attribution keys.
//!
//! Counters are cumulative totals that never reset: after a graceful
//! restart they continue from the final record written at shutdown. After a
//! `kill -9`, what was counted since the last record is lost for the report
//! (the samples themselves are stored, by the WAL).

pub mod attribution;
pub mod recorder;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cairn_ingest::{ValidatedWrite, WriteRequestRef};
use cairn_model::{DiscardReason, TenantId};
use cairn_tsdb::AppendOutcome;
use parking_lot::{Mutex, RwLock};

use crate::app::AppState;
use crate::auth::AuthContext;
use attribution::{AttrKey, AttributionSpec, Tracker};

/// The reserved internal tenant usage records are written to.
pub const USAGE_TENANT: &str = "__cairn_usage__";

/// The internal tenant's ID.
pub fn usage_tenant() -> TenantId {
    TenantId::new_internal(USAGE_TENANT).expect("a valid internal tenant ID")
}

#[derive(Clone, Debug)]
pub struct UsageOptions {
    /// Off: nothing is counted or recorded and `/api/v1/usage` is empty.
    pub enabled: bool,
    /// How often the counters are written to the internal tenant.
    pub record_interval: Duration,
    /// Retention of the internal tenant (zero: forever).
    pub retention: Duration,
}

impl Default for UsageOptions {
    fn default() -> Self {
        UsageOptions {
            enabled: true,
            record_interval: Duration::from_secs(60),
            retention: Duration::ZERO,
        }
    }
}

/// A tenant's attribution configuration, looked up per write.
pub type AttributionLookup = dyn Fn(&TenantId) -> Option<AttributionSpec> + Send + Sync;

/// Cumulative counters of one attribution key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AttrCounters {
    pub samples_received: u64,
    pub samples_discarded: BTreeMap<String, u64>,
    /// Integral of the key's active series over time, in series-seconds.
    pub series_seconds: f64,
}

/// One tenant's figures. Counters are cumulative since the tenant's first
/// record; `active_max` and the sampling state are per record interval.
#[derive(Debug, Default)]
pub struct TenantUsage {
    pub samples_received: u64,
    pub samples_ingested: u64,
    pub samples_discarded: BTreeMap<String, u64>,
    pub exemplars_received: u64,
    pub metadata_received: u64,
    pub series_created: u64,
    pub queries: BTreeMap<String, u64>,
    pub query_samples_scanned: u64,
    pub query_cpu_seconds: f64,
    /// Integral of active series over time, in series-seconds.
    pub series_seconds: f64,
    pub attributed: BTreeMap<AttrKey, AttrCounters>,
    tracker: Tracker,
    /// Highest active-series count sampled since the last record.
    active_max: u64,
    /// The last sample of active series: (time in ms, count).
    last_active: Option<(i64, u64)>,
    /// Bytes of the tenant's blocks in the bucket at the last measurement.
    bucket_bytes: u64,
    /// Active series per attribution key at the last record: (time, counts).
    attr_active: Option<(i64, BTreeMap<AttrKey, u64>)>,
}

/// The accountant: every tenant's [`TenantUsage`].
pub struct Usage {
    options: UsageOptions,
    tenants: RwLock<HashMap<TenantId, Arc<Mutex<TenantUsage>>>>,
    attribution: RwLock<Option<Arc<AttributionLookup>>>,
    /// Serialises records (the periodic one and the final one at shutdown).
    recording: Mutex<recorder::RecordState>,
}

impl Usage {
    pub fn new(options: UsageOptions) -> Usage {
        Usage {
            options,
            tenants: RwLock::new(HashMap::new()),
            attribution: RwLock::new(None),
            recording: Mutex::new(recorder::RecordState::default()),
        }
    }

    pub fn options(&self) -> &UsageOptions {
        &self.options
    }

    /// Sets where per-tenant attribution labels come from.
    pub fn set_attribution(&self, lookup: Arc<AttributionLookup>) {
        *self.attribution.write() = Some(lookup);
    }

    fn attribution_spec(&self, tenant: &TenantId) -> Option<AttributionSpec> {
        let lookup = self.attribution.read().clone()?;
        lookup(tenant)
    }

    /// The tenant's entry, created on first use; `None` for internal
    /// tenants and when usage accounting is off.
    fn tenant(&self, tenant: &TenantId) -> Option<Arc<Mutex<TenantUsage>>> {
        if !self.options.enabled || tenant.is_internal() {
            return None;
        }
        if let Some(entry) = self.tenants.read().get(tenant) {
            return Some(Arc::clone(entry));
        }
        Some(Arc::clone(
            self.tenants.write().entry(tenant.clone()).or_default(),
        ))
    }

    /// Every tenant with an entry, sorted.
    fn entries(&self) -> Vec<(TenantId, Arc<Mutex<TenantUsage>>)> {
        let mut all: Vec<_> = self
            .tenants
            .read()
            .iter()
            .map(|(id, entry)| (id.clone(), Arc::clone(entry)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Starts accounting one write request; call before validation
    /// consumes `series`. The counts are committed when the returned
    /// [`WriteUsage`] is dropped, whatever the request's outcome.
    pub fn begin_write(&self, tenant: &TenantId, request: &WriteRequestRef<'_>) -> WriteUsage {
        let entry = self.tenant(tenant);
        let spec = entry.as_ref().and_then(|_| self.attribution_spec(tenant));
        let mut write = WriteUsage {
            entry,
            spec,
            request_keys: Vec::new(),
            stored_keys: Vec::new(),
            delta: WriteDelta::default(),
        };
        if let (Some(entry), Some(spec)) = (&write.entry, &write.spec) {
            let mut usage = entry.lock();
            write.request_keys = request
                .series()
                .map(|s| {
                    let values: Vec<Option<&str>> = spec
                        .labels
                        .iter()
                        .map(|name| s.labels().iter().find(|l| l.name == name).map(|l| l.value))
                        .collect();
                    usage.tracker.key(spec, &values)
                })
                .collect();
            for (key, s) in write.request_keys.iter().zip(request.series()) {
                *write.delta.attr_received.entry(key.clone()).or_default() +=
                    s.samples().len() as u64;
            }
        }
        write
    }

    /// Counts a query request on `endpoint` (`query`, `query_range`, ...).
    pub fn count_query(&self, tenant: &TenantId, endpoint: &str) {
        if let Some(entry) = self.tenant(tenant) {
            *entry
                .lock()
                .queries
                .entry(endpoint.to_string())
                .or_default() += 1;
        }
    }

    /// Counts what one PromQL evaluation scanned and the CPU it used.
    /// Charges one evaluation to the tenants it read. A federated read is
    /// split evenly between its tenants (the remainder of the samples goes
    /// to the first), so that the tenants' figures add up to what ran.
    pub fn count_read(&self, tenants: Vec<&TenantId>, samples: u64, cpu: Duration) {
        let n = tenants.len() as u64;
        if n == 0 {
            return;
        }
        for (i, tenant) in tenants.into_iter().enumerate() {
            let share = samples / n + if i == 0 { samples % n } else { 0 };
            self.count_evaluation(tenant, share, cpu / n as u32);
        }
    }

    pub fn count_evaluation(&self, tenant: &TenantId, samples: u64, cpu: Duration) {
        if let Some(entry) = self.tenant(tenant) {
            let mut usage = entry.lock();
            usage.query_samples_scanned += samples;
            usage.query_cpu_seconds += cpu.as_secs_f64();
        }
    }
}

/// What one write request adds, committed at once.
#[derive(Default)]
struct WriteDelta {
    samples_received: u64,
    samples_ingested: u64,
    exemplars_received: u64,
    metadata_received: u64,
    series_created: u64,
    discarded: BTreeMap<&'static str, u64>,
    attr_received: HashMap<AttrKey, u64>,
    attr_discarded: HashMap<(AttrKey, &'static str), u64>,
}

/// The accounting of one write request (see [`Usage::begin_write`]).
pub struct WriteUsage {
    entry: Option<Arc<Mutex<TenantUsage>>>,
    spec: Option<AttributionSpec>,
    /// Attribution key per series of the request.
    request_keys: Vec<AttrKey>,
    /// Attribution key per validated series (the append batch).
    stored_keys: Vec<AttrKey>,
    delta: WriteDelta,
}

impl WriteUsage {
    /// Counts what validation (and any check after it that drops samples
    /// from `validated`, such as the past grace period) received and
    /// discarded. Call it once `validated.series` is what will be appended.
    pub fn validated(&mut self, validated: &ValidatedWrite) {
        if self.entry.is_none() {
            return;
        }
        let delta = &mut self.delta;
        delta.samples_received += validated.samples_received;
        delta.exemplars_received += validated.exemplars_received;
        delta.metadata_received += validated.metadata_received;
        for (reason, count) in &validated.discarded {
            *delta.discarded.entry(reason.as_label()).or_default() += count;
        }
        let (Some(entry), Some(spec)) = (&self.entry, &self.spec) else {
            return;
        };
        // Discards validation reported per series.
        let mut covered: BTreeMap<DiscardReason, u64> = BTreeMap::new();
        let mut accounted: HashMap<AttrKey, u64> = HashMap::new();
        for (index, reason, count) in &validated.discarded_by_series {
            *covered.entry(*reason).or_default() += count;
            if let Some(key) = self.request_keys.get(*index) {
                *delta
                    .attr_discarded
                    .entry((key.clone(), reason.as_label()))
                    .or_default() += count;
                *accounted.entry(key.clone()).or_default() += count;
            }
        }
        {
            let mut usage = entry.lock();
            self.stored_keys = validated
                .series
                .iter()
                .map(|s| usage.tracker.key_of(spec, s.labels))
                .collect();
        }
        for (key, series) in self.stored_keys.iter().zip(&validated.series) {
            *accounted.entry(key.clone()).or_default() += series.samples.len() as u64;
        }
        // Samples dropped after validation without a per-series report:
        // per key, what was received but neither kept nor reported, charged
        // to the reasons not reported per series (exact when there is one).
        let mut uncovered: Vec<(DiscardReason, u64)> = validated
            .discarded
            .iter()
            .map(|(r, n)| (*r, n.saturating_sub(covered.get(r).copied().unwrap_or(0))))
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut gaps: Vec<(&AttrKey, u64)> = delta
            .attr_received
            .iter()
            .map(|(key, received)| {
                let gap = received.saturating_sub(accounted.get(key).copied().unwrap_or(0));
                (key, gap)
            })
            .filter(|(_, gap)| *gap > 0)
            .collect();
        gaps.sort();
        for (key, mut gap) in gaps {
            for (reason, left) in uncovered.iter_mut() {
                let n = gap.min(*left);
                if n > 0 {
                    *delta
                        .attr_discarded
                        .entry((key.clone(), reason.as_label()))
                        .or_default() += n;
                    *left -= n;
                    gap -= n;
                }
            }
        }
    }

    /// Counts every sample about to be appended as discarded for `reason`
    /// (a request refused whole after validation, e.g. by the rate limit).
    pub fn discard_all(&mut self, validated: &ValidatedWrite, reason: DiscardReason) {
        if self.entry.is_none() {
            return;
        }
        let total = validated.samples_accepted();
        if total > 0 {
            *self.delta.discarded.entry(reason.as_label()).or_default() += total;
        }
        for (key, series) in self.stored_keys.iter().zip(&validated.series) {
            if !series.samples.is_empty() {
                *self
                    .delta
                    .attr_discarded
                    .entry((key.clone(), reason.as_label()))
                    .or_default() += series.samples.len() as u64;
            }
        }
    }

    /// Counts what storage kept, created and discarded.
    pub fn appended(&mut self, outcome: &AppendOutcome) {
        if self.entry.is_none() {
            return;
        }
        let delta = &mut self.delta;
        delta.samples_ingested += outcome.samples_accepted;
        delta.series_created += outcome.series_created;
        for (reason, count) in &outcome.discarded {
            *delta.discarded.entry(reason.as_label()).or_default() += count;
        }
        for (index, reason, count) in &outcome.discarded_by_series {
            if let Some(key) = self.stored_keys.get(*index) {
                *delta
                    .attr_discarded
                    .entry((key.clone(), reason.as_label()))
                    .or_default() += count;
            }
        }
    }
}

impl Drop for WriteUsage {
    fn drop(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        let delta = std::mem::take(&mut self.delta);
        let mut usage = entry.lock();
        usage.samples_received += delta.samples_received;
        usage.samples_ingested += delta.samples_ingested;
        usage.exemplars_received += delta.exemplars_received;
        usage.metadata_received += delta.metadata_received;
        usage.series_created += delta.series_created;
        for (reason, count) in delta.discarded {
            *usage
                .samples_discarded
                .entry(reason.to_string())
                .or_default() += count;
        }
        for (key, count) in delta.attr_received {
            usage.attributed.entry(key).or_default().samples_received += count;
        }
        for ((key, reason), count) in delta.attr_discarded {
            *usage
                .attributed
                .entry(key)
                .or_default()
                .samples_discarded
                .entry(reason.to_string())
                .or_default() += count;
        }
    }
}

/// The `endpoint` label of a read route (without the `/prometheus`
/// prefix); `None` for routes that are not tenant queries.
fn endpoint_name(route: &str) -> Option<&'static str> {
    let route = route.strip_prefix("/prometheus").unwrap_or(route);
    Some(match route {
        "/api/v1/query" => "query",
        "/api/v1/query_range" => "query_range",
        "/api/v1/series" => "series",
        "/api/v1/labels" => "labels",
        "/api/v1/label/{name}/values" => "label_values",
        "/api/v1/metadata" => "metadata",
        "/api/v1/query_exemplars" => "query_exemplars",
        "/api/v1/read" => "remote_read",
        _ => return None,
    })
}

/// Middleware on the read API: counts each request whose tenant resolves
/// (whatever its outcome) under its endpoint. Tenants that have never
/// written are not counted, so reads of made-up tenant names cannot grow
/// the usage records.
pub(crate) async fn count_query(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| endpoint_name(p.as_str()));
    if let Some(endpoint) = endpoint {
        if let Ok(tenant) = crate::tenant::read_tenant(&AuthContext::current(), request.headers()) {
            let exists = state.store.get().is_some_and(|s| s.get(&tenant).is_some());
            if exists {
                state.usage.count_query(&tenant, endpoint);
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ingest::{prompb, validate_write_request, ValidationLimits};
    use cairn_tsdb::{SeriesLimits, TenantStore, TsdbOptions};

    fn series(labels: &[(&str, &str)], samples: &[i64]) -> prompb::TimeSeries {
        prompb::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| prompb::Label::new(*n, *v))
                .collect(),
            samples: samples
                .iter()
                .map(|t| prompb::Sample {
                    value: 1.0,
                    timestamp: *t,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn team(value: &str) -> AttrKey {
        vec![("team".to_string(), value.to_string())]
    }

    /// Writes through the same hooks as the push handler.
    fn write(
        usage: &Usage,
        store: &TenantStore,
        tenant: &TenantId,
        request: Vec<prompb::TimeSeries>,
    ) {
        let request = prompb::WriteRequest {
            timeseries: request,
            ..Default::default()
        };
        let mut request = WriteRequestRef::from_owned(&request);
        let mut write = usage.begin_write(tenant, &request);
        let validated =
            validate_write_request(&mut request, &ValidationLimits::default(), 10_000_000);
        write.validated(&validated);
        let db = store.get_or_create(tenant).unwrap();
        let outcome = db
            .append_refs(validated.series, SeriesLimits::default())
            .unwrap();
        write.appended(&outcome);
    }

    #[test]
    fn writes_are_counted_per_tenant_and_attribution_key_and_survive_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let options = TsdbOptions {
            maintenance_interval: Duration::ZERO,
            ..TsdbOptions::default()
        };
        let store = TenantStore::open(dir.path(), options.clone()).unwrap();
        let usage = Usage::new(UsageOptions::default());
        usage.set_attribution(Arc::new(|_: &TenantId| {
            AttributionSpec::new(vec!["team".into()], 2)
        }));
        recorder::restore(&usage, &store);
        let tenant = TenantId::new("t").unwrap();
        write(
            &usage,
            &store,
            &tenant,
            vec![
                series(&[("__name__", "m"), ("team", "a")], &[1000, 2000]),
                series(
                    &[("__name__", "m"), ("bad-name", "x"), ("team", "a")],
                    &[1000],
                ),
                series(&[("__name__", "m"), ("job", "j")], &[1000]),
                series(&[("__name__", "m"), ("team", "c")], &[1000]),
            ],
        );
        // Out of order on team a, accepted on the missing key.
        write(
            &usage,
            &store,
            &tenant,
            vec![
                series(&[("__name__", "m"), ("team", "a")], &[1500, 3000]),
                series(&[("__name__", "m"), ("job", "j")], &[2000]),
            ],
        );
        let check = |usage: &Usage| {
            let entry = usage.tenant(&tenant).unwrap();
            let u = entry.lock();
            assert_eq!(u.samples_received, 8);
            assert_eq!(u.samples_ingested, 6);
            assert_eq!(u.series_created, 3);
            let discarded: Vec<(&str, u64)> = u
                .samples_discarded
                .iter()
                .map(|(r, n)| (r.as_str(), *n))
                .collect();
            assert_eq!(
                discarded,
                [("label_invalid", 1), ("sample_out_of_order", 1)]
            );
            let a = &u.attributed[&team("a")];
            assert_eq!(a.samples_received, 5);
            assert_eq!(a.samples_discarded["label_invalid"], 1);
            assert_eq!(a.samples_discarded["sample_out_of_order"], 1);
            // `__missing__` took the second slot; team c overflowed.
            assert_eq!(
                u.attributed[&team(attribution::MISSING)].samples_received,
                2
            );
            assert_eq!(
                u.attributed[&team(attribution::OVERFLOW)].samples_received,
                1
            );
            assert_eq!(u.attributed.len(), 3);
        };
        check(&usage);

        // A record, read back by a fresh accountant, continues exactly.
        recorder::record(&usage, &store, 20_000_000).unwrap();
        drop(usage);
        let again = Usage::new(UsageOptions::default());
        again.set_attribution(Arc::new(|_: &TenantId| {
            AttributionSpec::new(vec!["team".into()], 2)
        }));
        recorder::restore(&again, &store);
        check(&again);
        // The restored keys still fill the cap.
        write(
            &again,
            &store,
            &tenant,
            vec![series(&[("__name__", "m"), ("team", "d")], &[5000])],
        );
        let entry = again.tenant(&tenant).unwrap();
        assert_eq!(
            entry.lock().attributed[&team(attribution::OVERFLOW)].samples_received,
            2
        );
    }

    #[test]
    fn drops_after_validation_and_refused_requests_are_attributed() {
        let usage = Usage::new(UsageOptions::default());
        usage.set_attribution(Arc::new(|_: &TenantId| {
            AttributionSpec::new(vec!["team".into()], 10)
        }));
        let tenant = TenantId::new("t").unwrap();
        let request = vec![
            series(&[("__name__", "m"), ("team", "a")], &[1000, 2000, 3000]),
            series(&[("__name__", "m"), ("team", "b")], &[1000]),
        ];
        let request = prompb::WriteRequest {
            timeseries: request,
            ..Default::default()
        };
        let mut request = WriteRequestRef::from_owned(&request);
        let mut write = usage.begin_write(&tenant, &request);
        let mut validated =
            validate_write_request(&mut request, &ValidationLimits::default(), 10_000_000);
        // A check after validation (as the past grace period) drops team
        // a's two oldest samples and team b's series.
        validated.series[0].samples.to_mut().drain(..2);
        validated.series.remove(1);
        validated.discarded.insert(DiscardReason::TooFarInPast, 3);
        write.validated(&validated);
        // Then the whole rest is refused (as by the rate limit).
        write.discard_all(&validated, DiscardReason::RateLimited);
        drop(write);
        let entry = usage.tenant(&tenant).unwrap();
        let u = entry.lock();
        assert_eq!(u.samples_received, 4);
        assert_eq!(u.samples_discarded["too_far_in_past"], 3);
        assert_eq!(u.samples_discarded["rate_limited"], 1);
        let a = &u.attributed[&team("a")];
        assert_eq!(a.samples_discarded["too_far_in_past"], 2);
        assert_eq!(a.samples_discarded["rate_limited"], 1);
        assert_eq!(
            u.attributed[&team("b")].samples_discarded["too_far_in_past"],
            1
        );
    }

    #[test]
    fn internal_tenants_are_not_accounted() {
        let usage = Usage::new(UsageOptions::default());
        usage.count_query(&usage_tenant(), "query");
        assert!(usage.entries().is_empty());
    }

    #[test]
    fn thread_cpu_time_advances_with_work() {
        let before = cairn_promql::thread_cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cairn_promql::thread_cpu_time() > before);
    }

    #[test]
    fn endpoints_are_named_with_and_without_the_prefix() {
        assert_eq!(endpoint_name("/api/v1/query"), Some("query"));
        assert_eq!(
            endpoint_name("/prometheus/api/v1/label/{name}/values"),
            Some("label_values")
        );
        assert_eq!(endpoint_name("/api/v1/status/buildinfo"), None);
    }
}
