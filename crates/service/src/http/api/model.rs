//! `GET /api/model`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppStateRef;

/// `GET /api/model`: what the serving model expects and how it was trained, where it came from,
/// and the model store this instance follows (with the challenger it scores in shadow).
pub async fn model_info(State(state): AppStateRef) -> Response {
    let model = state.model.get();
    let challenger = state.model.challenger().map(|(m, origin)| {
        json!({
            "model_version": m.info.model_version,
            "detector": m.info.detector,
            "threshold": m.info.threshold,
            "origin": origin,
            "shadow": state.model.shadow.report(&m.info.model_version),
        })
    });
    let model_store = state.follower.as_ref().map(|f| {
        json!({
            "container": f.target(),
            "poll_secs": state.settings.model_poll.as_secs_f64(),
        })
    });
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
        "origin": state.model.origin(),
        "challenger": challenger,
        "model_store": model_store,
    }))
    .into_response()
}
