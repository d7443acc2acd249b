//! Error → status mapping: `{"error": ..., "field": ...}` bodies for the API, and the
//! invocation failure statuses the host's retry policy acts on.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::telemetry::events::Outcome;
use domain::{RecordError, RejectionKind};
use pipeline::PipelineError;

/// A JSON error naming the offending field where there is one.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    /// For a refused window, why, in the dead-letter kinds' closed set: what a client branches on.
    kind: Option<RejectionKind>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn new(status: StatusCode, message: impl Into<String>, field: Option<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            // No field rather than an empty name (a window at the top of the body, an empty key).
            field: field.filter(|f| !f.is_empty()),
            kind: None,
        }
    }

    /// A window refused (422) as the ingestion path would dead-letter it: kind, reason, field.
    pub fn refused(error: &RecordError, field: Option<String>) -> Self {
        ApiError {
            kind: Some(error.kind()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string(), field)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.message, "field": self.field, "kind": self.kind})),
        )
            .into_response()
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "request body is larger than this route's limit (see ANOMALY_MAX_BODY_BYTES, ANOMALY_MAX_INVOCATION_BYTES)".to_string()
        } else {
            rejection.body_text()
        };
        ApiError::new(status, message, None)
    }
}

pub fn parse_json<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body?;
    serde_json::from_slice(&bytes).map_err(|e| invalid_json(&e))
}

/// A body that is not the JSON expected: 400, saying where.
pub fn invalid_json(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("invalid JSON body: {e}"),
        None,
    )
}

/// How a failed batch is answered. The host retries on any non-2xx; 503 says a retry can
/// succeed (the store was unavailable), 500 that it cannot (a bug, a broken model or a store
/// that refuses the data), 400 that the invocation itself is malformed.
pub fn invocation_status(error: &PipelineError) -> (StatusCode, Outcome) {
    match error {
        PipelineError::Protocol(_) => (StatusCode::BAD_REQUEST, Outcome::BadRequest),
        PipelineError::Store(e) if e.is_transient() => {
            (StatusCode::SERVICE_UNAVAILABLE, Outcome::StoreUnavailable)
        }
        PipelineError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, Outcome::StoreRefused),
        PipelineError::Model(_) => (StatusCode::INTERNAL_SERVER_ERROR, Outcome::ModelError),
        PipelineError::Output(_) => (StatusCode::INTERNAL_SERVER_ERROR, Outcome::OutputError),
    }
}
