//! `GET /api/model`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppStateRef;

/// `GET /api/model`: what the serving model expects and how it was trained.
pub async fn model_info(State(state): AppStateRef) -> Response {
    let model = state.model.get();
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
