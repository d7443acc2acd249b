//! `GET /api/drift`: does the live data still look like the training data (PSI per feature).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppStateRef;

pub async fn drift(State(state): AppStateRef) -> Response {
    match state.model.drift() {
        Some(report) => Json(report).into_response(),
        None => Json(json!({
            "status": "unavailable",
            "model_version": state.model.get().info.model_version,
            "reason": "the model carries no training quantiles (anomaly.feature_quantiles), so drift cannot be measured",
        }))
        .into_response(),
    }
}
