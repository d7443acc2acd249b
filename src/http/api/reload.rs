//! `POST /api/reload`: put another model in service without a restart.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::AppStateRef;
use crate::http::error::ApiError;
use crate::scoring::Model;
use crate::telemetry::metrics::labels;

#[derive(Deserialize)]
struct ReloadRequest {
    path: Option<String>,
}

/// `POST /api/reload`: `{"path": "models/new.onnx"}` (a file the handler can read), or the model
/// bytes as `application/octet-stream`, or no body to re-read `ANOMALY_MODEL_PATH`. The new model
/// is fully loaded and probed before it replaces the old one; a broken file changes nothing.
pub async fn reload(
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
            let old = state.pipeline.replace_model(model);
            state
                .pipeline
                .metrics()
                .model_reloads
                .get_or_create(&labels(&[("outcome", "ok")]))
                .inc();
            tracing::info!(from = %old.info.model_version, to = %new_version, %source, "model reloaded");
            Ok(Json(json!({"status": "reloaded", "model_version": new_version, "previous_version": old.info.model_version, "source": source})).into_response())
        }
        Err(e) => {
            state
                .pipeline
                .metrics()
                .model_reloads
                .get_or_create(&labels(&[("outcome", "refused")]))
                .inc();
            let serving = state.pipeline.model().info.model_version.clone();
            tracing::warn!(error = %e, %serving, "model reload refused; the serving model is unchanged");
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("model not reloaded, still serving {serving}: {e}"),
                Some("path".into()),
            ))
        }
    }
}
