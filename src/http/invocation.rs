//! `POST /ScoreWindows`: one host invocation → the pipeline → the host's response.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::{invocation_status, parse_json};
use super::state::AppState;
use crate::ingress::host::InvocationRequest;
use crate::pipeline::PipelineError;

pub async fn score_windows(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let metrics = state.pipeline.metrics();
    let request: InvocationRequest = match parse_json(body) {
        Ok(r) => r,
        Err(e) => {
            metrics.invocation("ScoreWindows", "bad_request");
            return e.into_response();
        }
    };
    let result = match state.pipeline.score_batch(&request).await {
        Ok(outcome) => outcome.into_response(),
        Err(error) => Err(error),
    };
    match result {
        Ok(response) => {
            metrics.invocation("ScoreWindows", "ok");
            Json(response).into_response()
        }
        Err(error) => failure(&state, error),
    }
}

fn failure(state: &AppState, error: PipelineError) -> Response {
    let (status, outcome) = invocation_status(&error);
    state.pipeline.metrics().invocation("ScoreWindows", outcome);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(%status, error = %error, "ScoreWindows failed with a transient error; the host will retry the batch");
    } else if status.is_server_error() {
        tracing::error!(%status, error = %error, "ScoreWindows failed with a permanent error; retries will fail the same way");
    }
    let body = json!({"Outputs": {}, "Logs": [format!("ScoreWindows failed: {error}")], "ReturnValue": null, "error": error.to_string()});
    (status, Json(body)).into_response()
}
