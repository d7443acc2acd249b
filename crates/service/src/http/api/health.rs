//! `GET /api/health` (anonymous liveness) and `GET /api/health/store` (the store probe, behind
//! a function key).
//!
//! Liveness answers from memory: an anonymous caller must not be able to turn the health check
//! against the store (a flood of probes holding every pooled connection, or keeping a
//! serverless database awake), nor read store errors and file paths. The store probe runs at
//! most once per [`PROBE_INTERVAL`] whoever asks, and only key holders see its details.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppStateRef;
pub use crate::http::probe::{StoreProbe, PROBE_INTERVAL};

/// `GET /api/health`: 200 while the handler runs, from memory. The store's state is the last
/// probe's (`null` before any), without its error text.
pub async fn health(State(state): AppStateRef) -> Response {
    let model = state.model.get();
    let reachable = state.store_probe.cached().map(|p| p.error.is_none());
    Json(json!({
        "status": "ok",
        "model": {"loaded": true, "version": model.info.model_version, "detector": model.info.detector},
        "store": {"kind": &state.store.kind(), "reachable": reachable},
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    }))
    .into_response()
}

/// `GET /api/health/store` (function key): 200 when the store would take a write now, 503
/// otherwise, with the reason and where the model came from.
pub async fn store(State(state): AppStateRef) -> Response {
    let model = state.model.get();
    let store = &state.store;
    let probed = state.store_probe.check(store.as_ref()).await;
    let reachable = probed.error.is_none();
    let body = json!({
        "status": if reachable { "ok" } else { "degraded" },
        "model": {"loaded": true, "version": model.info.model_version, "detector": model.info.detector, "source": model.source},
        "store": {
            "kind": store.kind(),
            "target": store.target(),
            "reachable": reachable,
            "error": probed.error,
            "checked_seconds_ago": probed.at.elapsed().as_secs_f64(),
        },
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
    });
    let status = if reachable {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
