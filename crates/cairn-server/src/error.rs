//! The one place where errors become HTTP responses.
//!
//! Reads answer Prometheus's JSON envelope
//! (`{"status":"error","errorType":"bad_data","error":"..."}`) with
//! Prometheus's status per `errorType`; writes answer plain text as Mimir
//! does. Internal details are logged, not sent.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_model::TenantIdError;

use crate::query::json::write_json_string;

/// Prometheus's status for a client that went away (`statusClientClosedConnection`).
const STATUS_CLIENT_CLOSED: u16 = 499;

/// An error on a read endpoint, rendered as Prometheus's error envelope.
#[derive(Debug)]
pub struct ApiError {
    pub error_type: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError {
            error_type: "bad_data",
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            error_type: "internal",
            message: message.into(),
        }
    }

    pub fn unavailable() -> ApiError {
        ApiError {
            error_type: "unavailable",
            message: "storage is still starting (replaying the write-ahead log)".into(),
        }
    }

    /// Prometheus's `invalidParamError`: `invalid parameter "<name>": <cause>`.
    pub fn invalid_param(name: &str, cause: impl std::fmt::Display) -> ApiError {
        ApiError::bad_data(format!("invalid parameter \"{name}\": {cause}"))
    }

    /// Status per `errorType`, as Prometheus's `web/api/v1` `returnAPIError`.
    pub fn status(&self) -> StatusCode {
        let code = match self.error_type {
            "bad_data" => 400,
            "execution" => 422,
            "canceled" => STATUS_CLIENT_CLOSED,
            "timeout" => 503,
            "unavailable" => 503,
            "not_found" => 404,
            "not_acceptable" => 406,
            "unauthorized" => 401,
            "forbidden" => 403,
            _ => 500,
        };
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<TenantIdError> for ApiError {
    fn from(err: TenantIdError) -> ApiError {
        let error_type = match err {
            TenantIdError::Missing => "unauthorized",
            _ => "bad_data",
        };
        ApiError {
            error_type,
            message: err.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Missing tenant: plain text `no org id` with 401, as Mimir answers on
        // every path; a tenant the user may not use: plain text 403.
        if self.error_type == "unauthorized" || self.error_type == "forbidden" {
            return (status, self.message).into_response();
        }
        if status.is_server_error() && self.error_type == "internal" {
            tracing::error!(error = %self.message, "internal error on read path");
        }
        let mut body = String::with_capacity(64 + self.message.len());
        body.push_str(r#"{"status":"error","errorType":""#);
        body.push_str(self.error_type);
        body.push_str(r#"","error":"#);
        write_json_string(&mut body, &self.message);
        body.push('}');
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// An error on the write path, answered as plain text (Mimir's format).
#[derive(Debug)]
pub struct WriteApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 from the ingestion rate limit).
    pub retry_after: Option<u64>,
}

impl WriteApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> WriteApiError {
        WriteApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> WriteApiError {
        self.retry_after = Some(seconds);
        self
    }
}

impl From<TenantIdError> for WriteApiError {
    fn from(err: TenantIdError) -> WriteApiError {
        let status = match err {
            TenantIdError::Missing => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        WriteApiError::new(status, err.to_string())
    }
}

impl IntoResponse for WriteApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), error = %self.message, "write failed");
        }
        match self.retry_after {
            Some(seconds) => (
                self.status,
                [(header::RETRY_AFTER, seconds.to_string())],
                self.message,
            )
                .into_response(),
            None => (self.status, self.message).into_response(),
        }
    }
}
