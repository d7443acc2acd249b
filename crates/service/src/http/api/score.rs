//! `POST /api/score` and `POST /api/score/batch`: scoring on request, nothing stored.

use axum::body::Bytes;
use crate::telemetry::events::{Function, InvocationFinished, Outcome, WindowsScored};
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppStateRef;
use domain::WindowRecord;
use crate::http::error::{parse_json, ApiError};
use crate::http::AppState;
use ingress::events;
use scoring::{Model, ModelError};

fn window_record(value: &Value, model: &Model, path: &str) -> Result<WindowRecord, ApiError> {
    let map = value.as_object().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a window must be a JSON object",
            Some(path.trim_end_matches('.').to_string()),
        )
    })?;
    events::extract(map, &model.info.feature_names).map_err(|e| {
        let field = e.field().map(|f| format!("{path}{f}"));
        ApiError::refused(&e, field)
    })
}

fn model_failure(e: ModelError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
}

/// `POST /api/score`: one window in, its score and explanation out. Nothing is stored.
pub async fn score_one(State(state): AppStateRef, body: Result<Bytes, BytesRejection>) -> Response {
    let result = score_one_inner(&state, body).await;
    finish(&state, Function::Score, result)
}

/// `POST /api/score/batch`: `{"windows": [...]}` (or a bare array) of at most `ANOMALY_MAX_BATCH`.
pub async fn score_batch(State(state): AppStateRef, body: Result<Bytes, BytesRejection>) -> Response {
    let result = score_batch_inner(&state, body).await;
    finish(&state, Function::ScoreBatch, result)
}

/// Emits how the call ended, whichever way it did.
fn finish(
    state: &AppState,
    function: Function,
    result: Result<Response, ApiError>,
) -> Response {
    let outcome = match &result {
        Ok(_) => Outcome::Ok,
        Err(error) if error.status().is_server_error() => Outcome::ModelError,
        Err(_) => Outcome::BadRequest,
    };
    state.emit(InvocationFinished { function, outcome });
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn score_one_inner(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value: Value = parse_json(body)?;
    let model = state.model.get();
    let record = window_record(&value, &model, "")?;
    let mut scored = model
        .score(std::slice::from_ref(&record))
        .map_err(model_failure)?;
    if let Some(s) = scored.first() {
        s.check_finite()
            .map_err(|e| ApiError::refused(&e, None))?;
    }
    state.emit(WindowsScored { windows: 1 });
    Ok(Json(scored.pop()).into_response())
}

async fn score_batch_inner(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value: Value = parse_json(body)?;
    let windows = match &value {
        Value::Array(items) => items,
        Value::Object(map) => match map.get("windows") {
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "`windows` must be an array",
                    Some("windows".into()),
                ))
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "missing field `windows`",
                    Some("windows".into()),
                ))
            }
        },
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "body must be {\"windows\": [...]}",
                Some("windows".into()),
            ))
        }
    };
    let limit = state.settings.max_batch;
    if windows.len() > limit {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{} windows is more than the limit of {limit} (ANOMALY_MAX_BATCH)",
                windows.len()
            ),
            Some("windows".into()),
        ));
    }
    let model = state.model.get();
    let records = windows
        .iter()
        .enumerate()
        .map(|(i, w)| window_record(w, &model, &format!("windows[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let scored = model.score(&records).map_err(model_failure)?;
    for (i, s) in scored.iter().enumerate() {
        s.check_finite()
            .map_err(|e| ApiError::refused(&e, Some(format!("windows[{i}]"))))?;
    }
    state.emit(WindowsScored {
        windows: scored.len(),
    });
    let anomalies = scored.iter().filter(|s| s.is_anomaly).count();
    Ok(Json(json!({"model_version": model.info.model_version, "count": scored.len(), "anomalies": anomalies, "results": scored})).into_response())
}
