//! `POST /ScoreWindows`: one host invocation → the pipeline → the host's response.
//!
//! Each invocation is one span, exported as a request to Application Insights: custom handlers
//! get no `traceparent` from the host, only the `X-Azure-Functions-InvocationId` header, which
//! the span carries so a request can be matched with the host's own invocation log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::field::Empty;
use tracing::Instrument;

use super::error::{invocation_status, parse_json};
use super::state::AppState;
use crate::ingress::host::InvocationRequest;
use crate::pipeline::PipelineError;

pub const INVOCATION_ID_HEADER: &str = "x-azure-functions-invocationid";

/// The properties of an invocation's request telemetry (the span's fields), for the workbook
/// and alert queries; a test holds the queries to this list.
pub const INVOCATION_PROPERTIES: [&str; 14] = [
    "faas.name",
    "faas.trigger",
    "faas.invocation_id",
    "partition",
    "sequence_first",
    "sequence_last",
    "events",
    "windows_scored",
    "anomalies",
    "refused",
    "retry_count",
    "model_version",
    "outcome",
    "http.response.status_code",
];

pub async fn score_windows(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let invocation_id = headers
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let span = tracing::info_span!(
        "ScoreWindows",
        otel.name = "ScoreWindows",
        otel.kind = "server",
        otel.status_code = Empty,
        http.response.status_code = Empty,
        faas.name = "ScoreWindows",
        faas.trigger = "pubsub",
        faas.invocation_id = invocation_id.as_str(),
        partition = Empty,
        sequence_first = Empty,
        sequence_last = Empty,
        events = Empty,
        windows_scored = Empty,
        anomalies = Empty,
        refused = Empty,
        retry_count = Empty,
        model_version = Empty,
        outcome = Empty,
    );
    let response = handle(&state, body).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if !status.is_success() {
        span.record("otel.status_code", "error");
    }
    response
}

async fn handle(state: &AppState, body: Result<Bytes, BytesRejection>) -> Response {
    let span = tracing::Span::current();
    let metrics = state.pipeline.metrics();
    let request: InvocationRequest = match parse_json(body) {
        Ok(r) => r,
        Err(e) => {
            metrics.invocation("ScoreWindows", "bad_request");
            span.record("outcome", "bad_request");
            return e.into_response();
        }
    };
    let result = match state.pipeline.score_batch(&request).await {
        Ok(outcome) => {
            let _build = tracing::info_span!("outputs.build", otel.kind = "internal").entered();
            outcome.into_response()
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(response) => {
            metrics.invocation("ScoreWindows", "ok");
            span.record("outcome", "ok");
            Json(response).into_response()
        }
        Err(error) => failure(state, error),
    }
}

fn failure(state: &AppState, error: PipelineError) -> Response {
    let (status, outcome) = invocation_status(&error);
    state.pipeline.metrics().invocation("ScoreWindows", outcome);
    tracing::Span::current().record("outcome", outcome);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(%status, error = %error, "ScoreWindows failed with a transient error; the host will retry the batch");
    } else if status.is_server_error() {
        tracing::error!(%status, error = %error, "ScoreWindows failed with a permanent error; retries will fail the same way");
    }
    let body = json!({"Outputs": {}, "Logs": [format!("ScoreWindows failed: {error}")], "ReturnValue": null, "error": error.to_string()});
    (status, Json(body)).into_response()
}
