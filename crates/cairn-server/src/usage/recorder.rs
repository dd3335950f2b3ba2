//! Writes the usage counters into the internal tenant, and reads them back
//! on start.
//!
//! Every record appends one batch (one WAL write) holding every tenant's
//! series at one timestamp, so a record is either wholly stored or wholly
//! lost. Gauges (active series) are sampled every second between records,
//! for the per-interval maximum and the series-seconds integral.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_model::{
    Label, Labels, MatchOp, Matcher, Queryable, Sample, SeriesSamples, TenantId, TimeRange,
};
use cairn_tsdb::{TenantStore, TsdbError};

use super::attribution::AttrKey;
use super::{usage_tenant, AttrCounters, TenantUsage, Usage};
use crate::app::AppState;

/// Metric names of the usage series (all in the internal tenant).
pub mod names {
    pub const SAMPLES_RECEIVED: &str = "cairn_usage_samples_received_total";
    pub const SAMPLES_INGESTED: &str = "cairn_usage_samples_ingested_total";
    pub const SAMPLES_DISCARDED: &str = "cairn_usage_samples_discarded_total";
    pub const EXEMPLARS_RECEIVED: &str = "cairn_usage_exemplars_received_total";
    pub const METADATA_RECEIVED: &str = "cairn_usage_metadata_received_total";
    pub const SERIES_CREATED: &str = "cairn_usage_series_created_total";
    pub const ACTIVE_SERIES: &str = "cairn_usage_active_series";
    pub const ACTIVE_SERIES_MAX: &str = "cairn_usage_active_series_max";
    pub const SERIES_SECONDS: &str = "cairn_usage_series_seconds_total";
    pub const BYTES_STORED: &str = "cairn_usage_bytes_stored";
    pub const QUERIES: &str = "cairn_usage_queries_total";
    pub const QUERY_SAMPLES_SCANNED: &str = "cairn_usage_query_samples_scanned_total";
    pub const QUERY_CPU_SECONDS: &str = "cairn_usage_query_cpu_seconds_total";
    pub const ATTR_SAMPLES_RECEIVED: &str = "cairn_usage_attributed_samples_received_total";
    pub const ATTR_SAMPLES_DISCARDED: &str = "cairn_usage_attributed_samples_discarded_total";
    pub const ATTR_ACTIVE_SERIES: &str = "cairn_usage_attributed_active_series";
    pub const ATTR_SERIES_SECONDS: &str = "cairn_usage_attributed_series_seconds_total";
}

/// Labels of the usage series that are not attribution labels.
pub(crate) const OWN_LABELS: [&str; 3] = ["__name__", "tenant", "reason"];

/// How often active series are sampled between records.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Recorder bookkeeping, behind [`Usage`]'s recording lock.
#[derive(Debug, Default)]
pub struct RecordState {
    /// The counters were read back from the internal tenant (or there was
    /// nothing to read); records are written only after that.
    restored: bool,
    /// Timestamp of the last record written (or read back).
    last_record_ms: i64,
    retention_set: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The background task: waits for storage, then samples every
/// second and records every `record_interval` until aborted.
pub(crate) async fn run(state: Arc<AppState>) {
    if !state.usage.options().enabled {
        return;
    }
    // Storage is set once it is open and the counters are restored.
    let store = loop {
        if let Some(store) = state.store.get() {
            break Arc::clone(store);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let interval = state.usage.options().record_interval;
    let tick = SAMPLE_EVERY.min(interval);
    let mut last_record = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let due = last_record.elapsed() >= interval;
        let task_state = Arc::clone(&state);
        let task_store = Arc::clone(&store);
        let result = tokio::task::spawn_blocking(move || {
            if due {
                record(&task_state.usage, &task_store, now_ms())
            } else {
                sample(&task_state.usage, &task_store, now_ms());
                Ok(())
            }
        })
        .await;
        if due {
            last_record = tokio::time::Instant::now();
        }
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "writing the usage record failed"),
            Err(error) => tracing::error!(%error, "usage record task failed"),
        }
    }
}

/// The final record at graceful shutdown, so the report is exact up to it.
pub(crate) fn final_record(usage: &Usage, store: &TenantStore) {
    if !usage.options().enabled {
        return;
    }
    if let Err(error) = record(usage, store, now_ms()) {
        tracing::error!(%error, "writing the final usage record failed");
    }
}

/// Reads the last record from the internal tenant into the counters; runs
/// while storage opens, before any write is accepted. On failure nothing is
/// recorded until restart (a record from zero would look like a reset).
pub(crate) fn restore(usage: &Usage, store: &TenantStore) {
    if !usage.options().enabled {
        return;
    }
    if let Err(error) = read_last_record(usage, store) {
        tracing::error!(%error, "cannot read the last usage record; usage is not recorded");
    }
}

/// Adds the last record's counters to the in-memory ones.
fn read_last_record(usage: &Usage, store: &TenantStore) -> Result<(), TsdbError> {
    let mut recording = usage.recording.lock();
    if recording.restored {
        return Ok(());
    }
    let Some(db) = store.get(&usage_tenant()) else {
        recording.restored = true;
        return Ok(());
    };
    let head_max = db.head_time_range().map(|(_, max)| max);
    let block_max = db.blocks().iter().map(|b| b.max_time - 1).max();
    let Some(last) = head_max.into_iter().chain(block_max).max() else {
        recording.restored = true;
        return Ok(());
    };
    // Every record holds every series, so the last one is in this window.
    let window = (usage.options().record_interval.as_millis() as i64 * 10).max(600_000);
    let matchers = [
        Matcher::new(MatchOp::RegexMatch, "__name__", "cairn_usage_.+_total")
            .expect("a valid regex"),
    ];
    let series = db
        .select(&matchers, TimeRange::new(last - window, last))
        .map_err(|e| TsdbError::Io {
            path: db.dir().to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let mut restored = 0usize;
    for s in series {
        let Some(value) = s.samples.last().map(|sample| sample.v) else {
            continue;
        };
        let Some(tenant) = s
            .labels
            .get("tenant")
            .and_then(|t| TenantId::new_internal(t).ok())
        else {
            continue;
        };
        let Some(entry) = usage.tenant(&tenant) else {
            continue;
        };
        restore_series(&mut entry.lock(), &s.labels, value);
        restored += 1;
    }
    recording.restored = true;
    recording.last_record_ms = last;
    tracing::info!(
        series = restored,
        last_record_ms = last,
        "usage counters restored"
    );
    Ok(())
}

fn restore_series(usage: &mut TenantUsage, labels: &Labels, value: f64) {
    let count = value.max(0.0) as u64;
    let reason = labels.get("reason").unwrap_or_default().to_string();
    let attr_key = || -> AttrKey {
        labels
            .iter()
            .filter(|l| !OWN_LABELS.contains(&l.name.as_str()))
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect()
    };
    match labels.metric_name().unwrap_or_default() {
        names::SAMPLES_RECEIVED => usage.samples_received += count,
        names::SAMPLES_INGESTED => usage.samples_ingested += count,
        names::SAMPLES_DISCARDED => *usage.samples_discarded.entry(reason).or_default() += count,
        names::EXEMPLARS_RECEIVED => usage.exemplars_received += count,
        names::METADATA_RECEIVED => usage.metadata_received += count,
        names::SERIES_CREATED => usage.series_created += count,
        names::SERIES_SECONDS => usage.series_seconds += value,
        names::QUERIES => {
            let endpoint = labels.get("endpoint").unwrap_or_default().to_string();
            *usage.queries.entry(endpoint).or_default() += count;
        }
        names::QUERY_SAMPLES_SCANNED => usage.query_samples_scanned += count,
        names::QUERY_CPU_SECONDS => usage.query_cpu_seconds += value,
        names::ATTR_SAMPLES_RECEIVED => {
            let key = attr_key();
            usage.tracker.restore(&key);
            usage.attributed.entry(key).or_default().samples_received += count;
        }
        names::ATTR_SAMPLES_DISCARDED => {
            let key = attr_key();
            usage.tracker.restore(&key);
            *usage
                .attributed
                .entry(key)
                .or_default()
                .samples_discarded
                .entry(reason)
                .or_default() += count;
        }
        names::ATTR_SERIES_SECONDS => {
            let key = attr_key();
            usage.tracker.restore(&key);
            usage.attributed.entry(key).or_default().series_seconds += value;
        }
        _ => {}
    }
}

/// A tenant to record: its database (if open) and its counters.
type RecordedTenant = (
    TenantId,
    Option<Arc<cairn_tsdb::Tsdb>>,
    Arc<parking_lot::Mutex<TenantUsage>>,
);

/// Every ordinary tenant: those with storage and those with counters.
fn tenants(usage: &Usage, store: &TenantStore) -> Vec<RecordedTenant> {
    let mut dbs: BTreeMap<TenantId, Arc<cairn_tsdb::Tsdb>> = store
        .tenants()
        .into_iter()
        .filter(|(id, _)| !id.is_internal())
        .collect();
    let mut out = Vec::new();
    for (id, db) in &dbs {
        if let Some(entry) = usage.tenant(id) {
            out.push((id.clone(), Some(Arc::clone(db)), entry));
        }
    }
    for (id, entry) in usage.entries() {
        if dbs.remove(&id).is_none() {
            out.push((id, None, entry));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Samples every tenant's active series: the interval maximum and the
/// series-seconds integral (left Riemann sum over the samples).
pub(crate) fn sample(usage: &Usage, store: &TenantStore, now: i64) {
    for (_, db, entry) in tenants(usage, store) {
        let active = db.map_or(0, |db| db.stats().active_series);
        sample_one(&mut entry.lock(), active, now);
    }
}

fn sample_one(usage: &mut TenantUsage, active: u64, now: i64) {
    if let Some((t, previous)) = usage.last_active {
        if now > t {
            usage.series_seconds += previous as f64 * (now - t) as f64 / 1000.0;
        }
    }
    usage.last_active = Some((now, active));
    usage.active_max = usage.active_max.max(active);
}

/// Writes one record of every tenant at `now` (or just after the previous
/// record, should the clock have gone back).
pub(crate) fn record(usage: &Usage, store: &TenantStore, now: i64) -> Result<(), TsdbError> {
    let mut recording = usage.recording.lock();
    if !recording.restored {
        return Ok(());
    }
    let t = now.max(recording.last_record_ms + 1);
    let mut batch = Vec::new();
    for (tenant, db, entry) in tenants(usage, store) {
        let active = db.as_ref().map_or(0, |db| db.stats().active_series);
        let disk_bytes = db.as_ref().map_or(0, |db| dir_size(db.dir()));
        // While a bucket sync runs, the previous measurement stands.
        let bucket_dirs = match &db {
            Some(db) => db.bucket_block_dirs(),
            None => Some(Vec::new()),
        };
        let bucket_bytes = bucket_dirs.map(|dirs| dirs.iter().map(|d| dir_size(d)).sum::<u64>());
        let spec = db.as_ref().and_then(|_| usage.attribution_spec(&tenant));
        let attr_counts = match (&db, &spec) {
            (Some(db), Some(spec)) => Some(db.head_series_by_labels(&spec.labels)),
            _ => None,
        };
        let mut u = entry.lock();
        if let Some(bytes) = bucket_bytes {
            u.bucket_bytes = bytes;
        }
        sample_one(&mut u, active, t);
        // Active series per attribution key, folded like writes are.
        let mut attr_active: BTreeMap<AttrKey, u64> = BTreeMap::new();
        if let (Some(spec), Some(counts)) = (&spec, attr_counts) {
            for (values, count) in counts {
                let values: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
                let key = u.tracker.key(spec, &values);
                *attr_active.entry(key).or_default() += count;
            }
        }
        if let Some((at, previous)) = u.attr_active.take() {
            let seconds = (t - at).max(0) as f64 / 1000.0;
            for (key, count) in previous {
                u.attributed.entry(key).or_default().series_seconds += count as f64 * seconds;
            }
        }
        for key in attr_active.keys() {
            u.attributed.entry(key.clone()).or_default();
        }
        append_tenant(&mut batch, &tenant, &u, t, active, disk_bytes, &attr_active);
        u.active_max = active;
        u.attr_active = Some((t, attr_active));
    }
    if batch.is_empty() {
        return Ok(());
    }
    let db = store.get_or_create(&usage_tenant())?;
    if !recording.retention_set {
        db.set_retention(usage.options().retention);
        recording.retention_set = true;
    }
    let outcome = db.append(batch)?;
    if let Some(rejection) = outcome.first_rejection {
        tracing::warn!(reason = ?rejection.reason, labels = ?rejection.labels, "usage record sample refused");
    }
    recording.last_record_ms = t;
    Ok(())
}

/// The series of one tenant's record.
fn append_tenant(
    batch: &mut Vec<SeriesSamples>,
    tenant: &TenantId,
    u: &TenantUsage,
    t: i64,
    active: u64,
    disk_bytes: u64,
    attr_active: &BTreeMap<AttrKey, u64>,
) {
    let tenant = tenant.as_str();
    let mut push = |name: &str, extra: &[(&str, &str)], value: f64| {
        let mut labels = vec![Label::new("__name__", name), Label::new("tenant", tenant)];
        labels.extend(extra.iter().map(|(n, v)| Label::new(*n, *v)));
        batch.push(SeriesSamples {
            labels: Labels::new(labels),
            samples: vec![Sample::new(t, value)],
            exemplars: Vec::new(),
        });
    };
    push(names::SAMPLES_RECEIVED, &[], u.samples_received as f64);
    push(names::SAMPLES_INGESTED, &[], u.samples_ingested as f64);
    for (reason, count) in &u.samples_discarded {
        push(
            names::SAMPLES_DISCARDED,
            &[("reason", reason)],
            *count as f64,
        );
    }
    push(names::EXEMPLARS_RECEIVED, &[], u.exemplars_received as f64);
    push(names::METADATA_RECEIVED, &[], u.metadata_received as f64);
    push(names::SERIES_CREATED, &[], u.series_created as f64);
    push(names::ACTIVE_SERIES, &[], active as f64);
    push(
        names::ACTIVE_SERIES_MAX,
        &[],
        u.active_max.max(active) as f64,
    );
    push(names::SERIES_SECONDS, &[], u.series_seconds);
    push(
        names::BYTES_STORED,
        &[("location", "disk")],
        disk_bytes as f64,
    );
    push(
        names::BYTES_STORED,
        &[("location", "bucket")],
        u.bucket_bytes as f64,
    );
    for (endpoint, count) in &u.queries {
        push(names::QUERIES, &[("endpoint", endpoint)], *count as f64);
    }
    push(
        names::QUERY_SAMPLES_SCANNED,
        &[],
        u.query_samples_scanned as f64,
    );
    push(names::QUERY_CPU_SECONDS, &[], u.query_cpu_seconds);
    for (key, counters) in &u.attributed {
        let attrs: Vec<(&str, &str)> = key.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let AttrCounters {
            samples_received,
            samples_discarded,
            series_seconds,
        } = counters;
        push(
            names::ATTR_SAMPLES_RECEIVED,
            &attrs,
            *samples_received as f64,
        );
        for (reason, count) in samples_discarded {
            let mut with_reason = attrs.clone();
            with_reason.push(("reason", reason));
            push(names::ATTR_SAMPLES_DISCARDED, &with_reason, *count as f64);
        }
        push(names::ATTR_SERIES_SECONDS, &attrs, *series_seconds);
        let active = attr_active.get(key).copied().unwrap_or(0);
        push(names::ATTR_ACTIVE_SERIES, &attrs, active as f64);
    }
}

/// Bytes of every file under `dir` (WAL, blocks, everything), following
/// no symlinks; unreadable entries count 0.
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}
