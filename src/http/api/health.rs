//! `GET /api/health`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppStateRef;

/// `GET /api/health`: 200 when the model is loaded and the store answers, 503 otherwise.
pub async fn health(State(state): AppStateRef) -> Response {
    let model = state.pipeline.model();
    let store = state.pipeline.store().ping().await;
    let reachable = store.is_ok();
    let body = json!({
        "status": if reachable { "ok" } else { "degraded" },
        "model": {"loaded": true, "version": model.info.model_version, "detector": model.info.detector, "source": model.source},
        "store": {"kind": state.pipeline.store().kind(), "reachable": reachable, "error": store.err().map(|e| e.to_string())},
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    });
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
