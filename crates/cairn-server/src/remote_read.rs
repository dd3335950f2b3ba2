//! `POST /api/v1/read`: Prometheus remote read (`storage/remote/read_handler.go`),
//! so a Prometheus with a `remote_read` block can query a tenant's data.
//!
//! The body is a snappy-compressed `ReadRequest`; each query's matchers and
//! time range select raw samples (staleness markers included), answered as
//! one snappy-compressed `ReadResponse` (the `SAMPLES` response type), or as
//! a stream of `ChunkedReadResponse` frames of Prometheus XOR chunks
//! (`STREAMED_XOR_CHUNKS`), whichever comes first in the client's
//! `accepted_response_types` (empty means `SAMPLES`). Errors are plain text,
//! as Prometheus's handler writes them. The tenant's query limits
//! ([`crate::limits::query`]) apply to the whole request (422 when reached).
//!
//! A stream frame is `uvarint(len) | crc32c(message), big-endian | message`,
//! one series per message (`storage/remote/chunked.go`); chunks hold at most
//! 120 samples, encoded as Prometheus's `chunkenc.XORChunk` (Cairn's own
//! chunks differ in their first sample, so samples are re-encoded).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_ingest::prompb::{
    self, label_matcher, read_request::ResponseType, ReadRequest, ReadResponse,
};
use cairn_model::{MatchOp, Matcher, Queryable, TimeRange};
use prost::Message;

use crate::app::AppState;
use crate::auth::AuthContext;
use crate::error::WriteApiError;
use crate::limits::query::LimitedQueryable;
use crate::tenant;

/// `POST /api/v1/read`.
pub(crate) async fn read(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WriteApiError> {
    let tenant = tenant::read_tenant(&AuthContext::current(), &headers)?;
    let store = state.store.get().cloned().ok_or_else(|| {
        WriteApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage is still starting (replaying the write-ahead log)",
        )
    })?;
    let max_decompressed = state.options.decode_limits.max_decompressed_bytes;
    let request = decode_read_request(&body, max_decompressed)?;
    let response_type = negotiate(&request.accepted_response_types)?;
    let sample_limit = state.engine.options().max_samples;
    let limits = state.overrides.for_tenant(&tenant);
    let now = now_ms();
    if response_type == ResponseType::StreamedXorChunks {
        let body = tokio::task::spawn_blocking(move || match store.get(&tenant) {
            Some(db) => streamed::frames(
                &LimitedQueryable::new(db.as_ref(), &limits, now),
                &request,
                sample_limit,
            ),
            None => Ok(Vec::new()),
        })
        .await
        .map_err(|e| WriteApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, streamed::CONTENT_TYPE)],
            body,
        )
            .into_response());
    }
    let encoded = tokio::task::spawn_blocking(move || {
        let response = match store.get(&tenant) {
            Some(db) => answer(
                &LimitedQueryable::new(db.as_ref(), &limits, now),
                &request,
                sample_limit,
            )?,
            None => ReadResponse {
                results: vec![prompb::QueryResult::default(); request.queries.len()],
            },
        };
        snap::raw::Encoder::new()
            .compress_vec(&response.encode_to_vec())
            .map_err(|e| WriteApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
    })
    .await
    .map_err(|e| WriteApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        encoded,
    )
        .into_response())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn bad_request(message: impl Into<String>) -> WriteApiError {
    WriteApiError::new(StatusCode::BAD_REQUEST, message)
}

/// Snappy block format, with the declared length checked before allocating.
fn decode_read_request(body: &[u8], max_decompressed: usize) -> Result<ReadRequest, WriteApiError> {
    let declared =
        snap::raw::decompress_len(body).map_err(|e| bad_request(format!("snappy: {e}")))?;
    if declared > max_decompressed {
        return Err(WriteApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "remote read request of {declared} bytes is larger than the limit of {max_decompressed} bytes"
            ),
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| bad_request(format!("snappy: {e}")))?;
    ReadRequest::decode(raw.as_slice()).map_err(|e| bad_request(format!("protobuf: {e}")))
}

/// The first accepted response type Cairn serves; an empty list means `SAMPLES`.
fn negotiate(accepted: &[i32]) -> Result<ResponseType, WriteApiError> {
    if accepted.is_empty() {
        return Ok(ResponseType::Samples);
    }
    for t in accepted {
        if let Ok(t) = ResponseType::try_from(*t) {
            return Ok(t);
        }
    }
    let names: Vec<String> = accepted.iter().map(i32::to_string).collect();
    Err(bad_request(format!(
        "server does not support any of the requested response types: [{}]; supported: [SAMPLES STREAMED_XOR_CHUNKS]",
        names.join(" ")
    )))
}

fn answer(
    db: &dyn Queryable,
    request: &ReadRequest,
    sample_limit: usize,
) -> Result<ReadResponse, WriteApiError> {
    let mut results = Vec::with_capacity(request.queries.len());
    let mut samples_total = 0usize;
    for query in &request.queries {
        let selected = select(db, query)?;
        let mut timeseries = Vec::with_capacity(selected.len());
        for series in selected {
            samples_total += series.samples.len();
            if samples_total > sample_limit {
                return Err(bad_request(format!(
                    "exceeded sample limit ({sample_limit})"
                )));
            }
            timeseries.push(prompb::TimeSeries {
                labels: series
                    .labels
                    .iter()
                    .map(|l| prompb::Label::new(l.name.as_str(), l.value.as_str()))
                    .collect(),
                samples: series
                    .samples
                    .iter()
                    .map(|s| prompb::Sample {
                        value: s.v,
                        timestamp: s.t,
                    })
                    .collect(),
                ..Default::default()
            });
        }
        results.push(prompb::QueryResult { timeseries });
    }
    Ok(ReadResponse { results })
}

/// The series of one query, sorted by labels, with their samples in range.
fn select(
    db: &dyn Queryable,
    query: &prompb::Query,
) -> Result<Vec<cairn_model::Series>, WriteApiError> {
    let matchers = query
        .matchers
        .iter()
        .map(convert_matcher)
        .collect::<Result<Vec<Matcher>, WriteApiError>>()?;
    let range = TimeRange::new(query.start_timestamp_ms, query.end_timestamp_ms);
    db.select(&matchers, range).map_err(|e| {
        // A per-tenant query limit is the client's to fix, as on the query API.
        let status = match e {
            cairn_model::StorageError::LimitExceeded(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        WriteApiError::new(status, e.to_string())
    })
}

fn convert_matcher(m: &prompb::LabelMatcher) -> Result<Matcher, WriteApiError> {
    let op = match label_matcher::Type::try_from(m.r#type) {
        Ok(label_matcher::Type::Eq) => MatchOp::Equal,
        Ok(label_matcher::Type::Neq) => MatchOp::NotEqual,
        Ok(label_matcher::Type::Re) => MatchOp::RegexMatch,
        Ok(label_matcher::Type::Nre) => MatchOp::RegexNoMatch,
        Err(_) => return Err(bad_request(format!("invalid matcher type {}", m.r#type))),
    };
    Matcher::new(op, m.name.as_str(), m.value.as_str()).map_err(|e| bad_request(e.to_string()))
}

mod streamed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_served_response_type_wins() {
        assert_eq!(negotiate(&[]).unwrap(), ResponseType::Samples);
        assert_eq!(negotiate(&[1, 0]).unwrap(), ResponseType::StreamedXorChunks);
        assert_eq!(negotiate(&[7, 0]).unwrap(), ResponseType::Samples);
        let err = negotiate(&[7]).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn oversized_requests_are_refused_before_decompression() {
        let body = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 4096])
            .unwrap();
        let err = decode_read_request(&body, 1024).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
