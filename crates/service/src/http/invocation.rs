//! `POST /ScoreWindows`: one host invocation → the pipeline → the host's response.
//!
//! Each invocation is one span, exported as a request to Application Insights: custom handlers
//! get no `traceparent` from the host, only the `X-Azure-Functions-InvocationId` header, which
//! the span carries so a request can be matched with the host's own invocation log.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tracing::field::Empty;
use tracing::Instrument;

use super::body::{read_limited, Oversized, ReadBody};
use super::error::{invalid_json, invocation_status, ApiError};
use super::state::AppState;
use std::collections::BTreeMap;

use crate::telemetry::events::{self, Function, InvocationFinished, Outcome, RecordsRefused};
use domain::{DeadLetter, Excerpt, RecordError};
use ingress::host::{self, BatchInfo, InvocationRequest};
use pipeline::PipelineError;

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
    body: Body,
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

async fn handle(state: &AppState, body: Body) -> Response {
    let bad_request = |error: ApiError| {
        state.emit(InvocationFinished {
            function: Function::ScoreWindows,
            outcome: Outcome::BadRequest,
        });
        error.into_response()
    };
    let bytes = match read_limited(body, state.settings.max_invocation_bytes).await {
        Ok(ReadBody::Whole(bytes)) => bytes,
        Ok(ReadBody::TooLarge(oversized)) => return too_large(state, oversized),
        Err(error) => {
            return bad_request(ApiError::new(StatusCode::BAD_REQUEST, error.to_string(), None))
        }
    };
    let mut request: InvocationRequest = match host::parse_request(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(invalid_json(&e)),
    };
    let model = state.model.get();
    tracing::Span::current().record("model_version", model.info.model_version.as_str());
    let binding = &state.pipeline.options().trigger_binding;
    let events = match host::take_trigger_events(&mut request, binding) {
        Ok(events) => events,
        Err(error) => return failure(state, error.into()),
    };
    let batch = BatchInfo::of(&events, &request);
    record_batch(&batch, events.len());
    tracing::debug!(
        events = events.len(),
        partition = batch.partition_text(),
        "ScoreWindows invocation received"
    );
    let mut outcome = match state.pipeline.score_batch(&model, &events, batch).await {
        Ok(outcome) => outcome,
        Err(failed) => {
            state.emit(events::BatchFailed(&failed.store_writes));
            return failure(state, failed.error);
        }
    };
    state.observe(&mut outcome);
    let response = {
        let _build = tracing::info_span!("outputs.build", otel.kind = "internal").entered();
        let alerts: &[domain::Alert] = if state.settings.publish_window_alerts {
            &outcome.alerts
        } else {
            &[]
        };
        host::response(
            alerts,
            &outcome.incidents.messages,
            &outcome.dead_letters,
            outcome.host_logs(),
        )
    };
    match response {
        Ok(response) => {
            state.emit(InvocationFinished {
                function: Function::ScoreWindows,
                outcome: Outcome::Ok,
            });
            Json(response).into_response()
        }
        Err(error) => failure(state, error.into()),
    }
}

/// The batch's coordinates on the invocation's span (fields declared above).
fn record_batch(batch: &BatchInfo, events: usize) {
    let span = tracing::Span::current();
    span.record("events", events);
    span.record("partition", batch.partition_text());
    if let Some((first, last)) = batch.sequence_range {
        span.record("sequence_first", first);
        span.record("sequence_last", last);
    }
    if let Some(retry) = batch.retry_count {
        span.record("retry_count", retry);
    }
}

/// An invocation over `ANOMALY_MAX_INVOCATION_BYTES`: answered 200 with one dead letter that
/// says where its events are (they stay in the source hub for its retention), so the host
/// neither retries it for nothing nor drops it in silence.
fn too_large(state: &AppState, oversized: Oversized) -> Response {
    let limit = state.settings.max_invocation_bytes as u64;
    let metadata = host::metadata_from_tail(&oversized.tail).unwrap_or_default();
    let at = host::batch_coordinates(&metadata);
    let error = RecordError::InvocationTooLarge {
        bytes: oversized.total,
        limit,
    };
    let head = String::from_utf8_lossy(&oversized.head);
    let excerpt = Excerpt::of_start(&head, oversized.total, oversized.sha256);
    let mut letter = DeadLetter::new(&error, 0, None, &at.first, &excerpt);
    letter.last_sequence_number = at.last_sequence_number;
    let events = at.events.map_or("?".to_string(), |n| n.to_string());
    tracing::error!(
        bytes = oversized.total,
        limit,
        partition = ?at.first.partition_id,
        sequence_first = ?at.first.sequence_number,
        sequence_last = ?at.last_sequence_number,
        events = %events,
        "invocation over the size limit dead-lettered with its coordinates; its events are still in the source hub"
    );
    let log = format!(
        "ScoreWindows: invocation of {} bytes over the {limit}-byte limit dead-lettered (partition {}, {} events from sequence number {})",
        oversized.total,
        at.first.partition_id.as_deref().unwrap_or("?"),
        events,
        at.first.sequence_number.map_or("?".to_string(), |n| n.to_string()),
    );
    let letters = [letter];
    state.emit(RecordsRefused {
        dead_letters: &letters,
        by_kind: &BTreeMap::from([(letters[0].kind, 1)]),
    });
    match host::response(&[], &[], &letters, vec![log]) {
        Ok(response) => {
            state.emit(InvocationFinished {
                function: Function::ScoreWindows,
                outcome: Outcome::TooLarge,
            });
            Json(response).into_response()
        }
        Err(error) => failure(state, error.into()),
    }
}

fn failure(state: &AppState, error: PipelineError) -> Response {
    let (status, outcome) = invocation_status(&error);
    state.emit(InvocationFinished {
        function: Function::ScoreWindows,
        outcome,
    });
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(%status, error = %error, "ScoreWindows failed with a transient error; the host will retry the batch");
    } else if status.is_server_error() {
        tracing::error!(%status, error = %error, "ScoreWindows failed with a permanent error; retries will fail the same way");
    }
    let body = json!({"Outputs": {}, "Logs": [format!("ScoreWindows failed: {error}")], "ReturnValue": null, "error": error.to_string()});
    (status, Json(body)).into_response()
}
