//! Routes. Thin: each handler parses its input, calls one stage, and maps errors to statuses.
//!
//! `POST /{FunctionName}` serves host invocations (custom-handler protocol); `/api/*` serves the
//! HTTP functions, which the host forwards unchanged (`enableForwardingHttpRequest`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::host::InvocationRequest;
use crate::metrics::labels;
use crate::pipeline::{self, PipelineError};
use crate::records;
use crate::scoring::Model;
use crate::startup::AppState;
use crate::store::HistoryQuery;
use crate::timefmt;

type AppStateRef = State<Arc<AppState>>;

/// The most history rows one request returns.
pub const MAX_HISTORY_LIMIT: usize = 1000;
/// Reload accepts a model file body up to this size.
const MAX_MODEL_BYTES: usize = 256 << 20;

pub fn router(state: Arc<AppState>) -> Router {
    let api_limit = state.settings.max_body_bytes;
    let invocation_limit = state.settings.max_invocation_bytes;
    Router::new()
        .route("/", get(ready))
        .route(
            "/ScoreWindows",
            post(score_windows).layer(DefaultBodyLimit::max(invocation_limit)),
        )
        .route("/api/score", post(score_one))
        .route("/api/score/batch", post(score_batch))
        .route("/api/health", get(health))
        .route("/api/history", get(history))
        .route("/api/model", get(model_info))
        .route(
            "/api/reload",
            post(reload).layer(DefaultBodyLimit::max(MAX_MODEL_BYTES)),
        )
        .route("/api/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(api_limit))
        .with_state(state)
}

/// A JSON error naming the offending field where there is one.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>, field: Option<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.message, "field": self.field})),
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

fn parse_json<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {e}"),
            None,
        )
    })
}

async fn ready() -> &'static str {
    "ok"
}

async fn score_windows(State(state): AppStateRef, body: Result<Bytes, BytesRejection>) -> Response {
    let request: InvocationRequest = match parse_json(body) {
        Ok(r) => r,
        Err(e) => {
            state.metrics.invocation("ScoreWindows", "bad_request");
            return e.into_response();
        }
    };
    match pipeline::score_windows(&state, request).await {
        Ok(response) => {
            state.metrics.invocation("ScoreWindows", "ok");
            Json(response).into_response()
        }
        Err(error) => {
            let (status, outcome) = match &error {
                PipelineError::Protocol(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                PipelineError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
                PipelineError::Model(_) => (StatusCode::INTERNAL_SERVER_ERROR, "model_error"),
            };
            state.metrics.invocation("ScoreWindows", outcome);
            let body = json!({"Outputs": {}, "Logs": [format!("ScoreWindows failed: {error}")], "ReturnValue": null, "error": error.to_string()});
            (status, Json(body)).into_response()
        }
    }
}

fn window_record(
    value: &Value,
    model: &Model,
    path: &str,
) -> Result<records::WindowRecord, ApiError> {
    let map = value.as_object().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a window must be a JSON object",
            Some(path.trim_end_matches('.').to_string()),
        )
    })?;
    records::extract(map, &model.info.feature_names).map_err(|e| {
        let field = e.field().map(|f| format!("{path}{f}"));
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), field)
    })
}

fn model_failure(e: crate::scoring::ModelError) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
}

/// `POST /api/score`: one window in, its score and explanation out. Nothing is stored.
async fn score_one(
    State(state): AppStateRef,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let value: Value = parse_json(body)?;
    let model = state.model();
    let record = window_record(&value, &model, "")?;
    let mut scored = model
        .score(std::slice::from_ref(&record))
        .map_err(model_failure)?;
    if let Some(s) = scored.first() {
        s.check_finite()
            .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), None))?;
    }
    state.metrics.windows_scored.inc();
    state.metrics.invocation("Score", "ok");
    Ok(Json(scored.pop()).into_response())
}

/// `POST /api/score/batch`: `{"windows": [...]}` (or a bare array) of at most `ANOMALY_MAX_BATCH`.
async fn score_batch(
    State(state): AppStateRef,
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
    let model = state.model();
    let records = windows
        .iter()
        .enumerate()
        .map(|(i, w)| window_record(w, &model, &format!("windows[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let scored = model.score(&records).map_err(model_failure)?;
    for (i, s) in scored.iter().enumerate() {
        s.check_finite().map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                e.to_string(),
                Some(format!("windows[{i}]")),
            )
        })?;
    }
    state.metrics.windows_scored.inc_by(scored.len() as u64);
    state.metrics.invocation("ScoreBatch", "ok");
    let anomalies = scored.iter().filter(|s| s.is_anomaly).count();
    Ok(Json(json!({"model_version": model.info.model_version, "count": scored.len(), "anomalies": anomalies, "results": scored})).into_response())
}

/// `GET /api/health`: 200 when the model is loaded and the store answers, 503 otherwise.
async fn health(State(state): AppStateRef) -> Response {
    let model = state.model();
    let store = state.store.ping().await;
    let reachable = store.is_ok();
    let body = json!({
        "status": if reachable { "ok" } else { "degraded" },
        "model": {"loaded": true, "version": model.info.model_version, "detector": model.info.detector, "source": model.source},
        "store": {"kind": state.store.kind(), "reachable": reachable, "error": store.err().map(|e| e.to_string())},
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    });
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /api/history?device=&since=&limit=`: stored anomalies, newest window first.
async fn history(
    State(state): AppStateRef,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text(), None))?;
    let bad = |field: &str, message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, message, Some(field.to_string()))
    };
    if let Some(unknown) = params
        .keys()
        .find(|k| !["device", "since", "limit"].contains(&k.as_str()))
    {
        return Err(bad(
            unknown,
            format!("unknown query parameter `{unknown}` (expected device, since, limit)"),
        ));
    }
    let since = match params.get("since").filter(|s| !s.is_empty()) {
        Some(text) => Some(timefmt::canonical(text).ok_or_else(|| {
            bad(
                "since",
                format!("`since` is not an RFC 3339 timestamp: {text}"),
            )
        })?),
        None => None,
    };
    let limit = match params.get("limit").filter(|s| !s.is_empty()) {
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_HISTORY_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(
                    "limit",
                    format!(
                        "`limit` must be a whole number from 1 to {MAX_HISTORY_LIMIT}, got {text}"
                    ),
                ))
            }
        },
        None => 100,
    };
    let query = HistoryQuery {
        device_id: params.get("device").filter(|s| !s.is_empty()).cloned(),
        since,
        limit,
    };
    let rows = state
        .store
        .history(query)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None))?;
    Ok(Json(json!({"count": rows.len(), "anomalies": rows})).into_response())
}

/// `GET /api/model`: what the serving model expects and how it was trained.
async fn model_info(State(state): AppStateRef) -> Response {
    let model = state.model();
    Json(json!({
        "model_version": model.info.model_version,
        "detector": model.info.detector,
        "feature_names": model.info.feature_names,
        "feature_channels": model.info.feature_channels,
        "channels": model.info.channels,
        "threshold": model.info.threshold,
        "feature_mean": model.info.feature_mean,
        "feature_std": model.info.feature_std,
        "training_summary": model.info.training_summary,
        "source": model.source,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct ReloadRequest {
    path: Option<String>,
}

/// `POST /api/reload`: `{"path": "models/new.onnx"}` (a file the handler can read), or the model
/// bytes as `application/octet-stream`, or no body to re-read `ANOMALY_MODEL_PATH`. The new model
/// is fully loaded and probed before it replaces the old one; a broken file changes nothing.
async fn reload(
    State(state): AppStateRef,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body?;
    let is_binary = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/octet-stream"));
    let path = if is_binary || bytes.is_empty() {
        None
    } else {
        let request: ReloadRequest = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid JSON body: {e}"),
                None,
            )
        })?;
        Some(
            request
                .path
                .filter(|p| !p.trim().is_empty())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "`path` must name the model file",
                        Some("path".into()),
                    )
                })?,
        )
    };
    let default_path = state.settings.model_path.clone();
    let loaded = tokio::task::spawn_blocking(move || match (is_binary, path) {
        (true, _) => Model::load_bytes(&bytes, "uploaded"),
        (false, Some(p)) => Model::load_file(std::path::Path::new(&p)),
        (false, None) => Model::load_file(&default_path),
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload task failed: {e}"),
            None,
        )
    })?;
    match loaded {
        Ok(model) => {
            let new_version = model.info.model_version.clone();
            let source = model.source.clone();
            let old = state.replace_model(model);
            state
                .metrics
                .model_reloads
                .get_or_create(&labels(&[("outcome", "ok")]))
                .inc();
            tracing::info!(from = %old.info.model_version, to = %new_version, %source, "model reloaded");
            Ok(Json(json!({"status": "reloaded", "model_version": new_version, "previous_version": old.info.model_version, "source": source})).into_response())
        }
        Err(e) => {
            state
                .metrics
                .model_reloads
                .get_or_create(&labels(&[("outcome", "refused")]))
                .inc();
            let serving = state.model().info.model_version.clone();
            tracing::warn!(error = %e, %serving, "model reload refused; the serving model is unchanged");
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("model not reloaded, still serving {serving}: {e}"),
                Some("path".into()),
            ))
        }
    }
}

async fn metrics(State(state): AppStateRef) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
