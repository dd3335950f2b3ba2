//! `POST /api/v1/push`: Prometheus remote write 1.0.
//!
//! The compressed body is capped while it is read (413 past the cap), then
//! decoded and validated by `cairn-ingest`. As Mimir does, the valid series
//! of a request are stored even when others are rejected; the request then
//! answers 400 with the first rejection. The 2xx is sent only after the
//! tenant's WAL holds the samples.
//!
//! Per-tenant limits ([`crate::limits`]): validation limits and the past
//! grace period drop series and samples (400); the ingestion rate refuses a
//! whole request before anything is stored (429 with `Retry-After`); series
//! limits refuse new series inside storage (400).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use cairn_ingest::{
    decode_write_request_ref_with, validate_write_request_known, DecodeError, DecodeScratch,
    WriteRequestRef,
};
use cairn_model::{DiscardReason, TenantId};
use cairn_tsdb::{LabelsAsSent, TenantStore};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::app::AppState;
use crate::auth::AuthContext;
use crate::error::WriteApiError;
use crate::{limits, tenant};

pub(crate) async fn push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, WriteApiError> {
    let tenant = tenant::write_tenant(&AuthContext::current(), &headers)?;
    let store = state.store.get().cloned().ok_or_else(|| {
        WriteApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage is still starting (replaying the write-ahead log)",
        )
    })?;
    let body = read_capped_body(&headers, body, state.options.max_write_body_bytes).await?;
    let ingest_state = Arc::clone(&state);
    tokio::task::spawn_blocking(move || ingest(&ingest_state, &store, &tenant, &body))
        .await
        .map_err(|err| WriteApiError::new(StatusCode::INTERNAL_SERVER_ERROR, err.to_string()))?
}

/// Reads the body, refusing more than `max` bytes before buffering them.
async fn read_capped_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
) -> Result<bytes::Bytes, WriteApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = declared.filter(|size| *size > max as u64) {
        return Err(too_large(Some(size), max));
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(None, max)),
        Err(err) => Err(WriteApiError::new(
            StatusCode::BAD_REQUEST,
            format!("failed to read request body: {err}"),
        )),
    }
}

/// The same text the decoder uses for an oversized message (`err-cairn-max-write-message-size`).
fn too_large(actual: Option<u64>, max: usize) -> WriteApiError {
    WriteApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        DecodeError::body_too_large(actual, max).to_string(),
    )
}

/// A blocking-pool thread keeps its decompression buffer and decoded
/// arrays up to this size each between requests (bigger ones are freed
/// after the request).
const KEPT_BUFFER_BYTES: usize = 8 << 20;

thread_local! {
    /// The decompressed body of the request this thread is ingesting and
    /// the decoded request's arrays, reused across requests.
    static SCRATCH: RefCell<(Vec<u8>, DecodeScratch)> = RefCell::new(Default::default());
}

/// Decode, validate, append; runs on the blocking pool (CPU and file I/O).
fn ingest(
    state: &AppState,
    store: &TenantStore,
    tenant: &TenantId,
    body: &[u8],
) -> Result<StatusCode, WriteApiError> {
    let (mut buffer, mut scratch) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let result = ingest_with_buffer(state, store, tenant, body, &mut buffer, &mut scratch);
    if buffer.capacity() > KEPT_BUFFER_BYTES {
        buffer = Vec::new();
    }
    if scratch.capacity_bytes() > KEPT_BUFFER_BYTES {
        scratch = DecodeScratch::default();
    }
    SCRATCH.with(|s| *s.borrow_mut() = (buffer, scratch));
    result
}

fn ingest_with_buffer(
    state: &AppState,
    store: &TenantStore,
    tenant: &TenantId,
    body: &[u8],
    buffer: &mut Vec<u8>,
    scratch: &mut DecodeScratch,
) -> Result<StatusCode, WriteApiError> {
    let decoded = decode_write_request_ref_with(
        body,
        &state.options.decode_limits,
        buffer,
        std::mem::take(scratch),
    );
    let mut request = decoded.map_err(|err| {
        let status = if err.is_too_large() {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        WriteApiError::new(status, err.to_string())
    })?;
    let result = store_request(state, store, tenant, &mut request);
    *scratch = request.into_scratch();
    result
}

/// Validates a decoded request, applies the tenant's limits and stores it.
fn store_request(
    state: &AppState,
    store: &TenantStore,
    tenant: &TenantId,
    request: &mut WriteRequestRef<'_>,
) -> Result<StatusCode, WriteApiError> {
    let limits = state.overrides.for_tenant(tenant);
    let validation_limits = limits.validation_limits();
    let now = now_ms();
    let mut usage = state.usage.begin_write(tenant, request);
    // Series the tenant's head already holds, with labels exactly as sent,
    // need no label checks when every stored label set passes this
    // tenant's limits: found first, they skip them (same outcome, less
    // work), and their hints spare storage a second lookup. Label entries
    // sent back to back are looked up by their bytes as received: the
    // head keeps labels in that encoding.
    let found = store.get(tenant).and_then(|db| {
        let sets = request.series().map(|s| LabelsAsSent {
            labels: s.labels(),
            wire: s.wire_labels(),
        });
        db.find_series(sets, |bounds| validation_limits.admits_all(bounds))
    });
    let mut validated = validate_write_request_known(request, &validation_limits, now, |i| {
        found.as_ref().and_then(|found| found.get(i))
    });
    limits::write::enforce_past_grace(&mut validated, &limits, now);
    usage.validated(&validated);
    let metrics = &state.metrics;
    metrics.count_received(
        tenant,
        validated.samples_received,
        validated.exemplars_received,
        validated.metadata_received,
    );
    for (reason, count) in &validated.discarded {
        metrics.count_discarded(tenant, *reason, *count);
    }
    for (reason, count) in &validated.discarded_exemplars {
        metrics.count_discarded_exemplars(tenant, reason.as_label(), *count);
    }
    for (reason, count) in &validated.discarded_metadata {
        metrics.count_discarded_metadata(tenant, reason.as_label(), *count);
    }

    // The rate limit is checked before anything is stored: a refused request
    // leaves no trace but its discard counts.
    if let Err(wait) =
        state
            .ingestion_rate
            .allow(tenant, &limits, limits::write::rate_cost(&validated))
    {
        let exemplars: u64 = validated
            .series
            .iter()
            .map(|s| s.exemplars.len() as u64)
            .sum();
        let rate_limited = DiscardReason::RateLimited;
        usage.discard_all(&validated, rate_limited);
        metrics.count_discarded(tenant, rate_limited, validated.samples_accepted());
        metrics.count_discarded_exemplars(tenant, rate_limited.as_label(), exemplars);
        metrics.count_discarded_metadata(
            tenant,
            rate_limited.as_label(),
            validated.metadata.len() as u64,
        );
        return Err(WriteApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            limits::write::rate_limited_message(&limits),
        )
        .with_retry_after(limits::retry_after_seconds(wait)));
    }

    let mut storage_rejection = None;
    if !validated.series.is_empty() || !validated.metadata.is_empty() {
        let db = store.get_or_create(tenant).map_err(storage_failed)?;
        limits::ensure_retention(&db, &limits, state.options.tsdb.retention);
        if !validated.metadata.is_empty() {
            db.set_metadata(validated.metadata)
                .map_err(storage_failed)?;
        }
        if !validated.series.is_empty() {
            let outcome = db
                .append_refs(validated.series, limits::write::series_limits(&limits))
                .map_err(storage_failed)?;
            usage.appended(&outcome);
            for (reason, count) in &outcome.discarded {
                metrics.count_discarded(tenant, *reason, *count);
            }
            storage_rejection = outcome.first_rejection;
        }
    }

    if let Some(err) = validated.first_error {
        return Err(WriteApiError::new(StatusCode::BAD_REQUEST, err.message));
    }
    if let Some(rejection) = storage_rejection {
        let message =
            limits::write::series_limit_message(rejection.reason, &limits, &rejection.labels)
                .unwrap_or_else(|| {
                    limits::write::storage_message(
                        rejection.reason,
                        &limits,
                        &rejection.labels,
                        rejection.t,
                    )
                });
        return Err(WriteApiError::new(StatusCode::BAD_REQUEST, message));
    }
    Ok(StatusCode::OK)
}

fn storage_failed(err: cairn_tsdb::TsdbError) -> WriteApiError {
    // Details go to the log; the sender retries a 5xx.
    tracing::error!(error = %err, source = ?std::error::Error::source(&err), "append failed");
    WriteApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "failed to store samples")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
