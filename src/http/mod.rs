//! ⑤ The edge. Thin: each handler parses its input, calls one stage, and maps errors to statuses.
//!
//! `POST /{FunctionName}` serves host invocations (custom-handler protocol, [`invocation`]);
//! `/api/*` serves the HTTP functions ([`api`]), which the host forwards unchanged
//! (`enableForwardingHttpRequest`).

pub mod api;
pub mod error;
pub mod invocation;
pub mod state;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;
pub use state::AppState;

/// Reload accepts a model file body up to this size.
const MAX_MODEL_BYTES: usize = 256 << 20;

pub fn router(state: Arc<AppState>) -> Router {
    let api_limit = state.settings.max_body_bytes;
    let invocation_limit = state.settings.max_invocation_bytes;
    Router::new()
        .route("/", get(ready))
        .route(
            "/ScoreWindows",
            post(invocation::score_windows).layer(DefaultBodyLimit::max(invocation_limit)),
        )
        .route("/api/score", post(api::score::score_one))
        .route("/api/score/batch", post(api::score::score_batch))
        .route("/api/health", get(api::health::health))
        .route("/api/history", get(api::history::history))
        .route("/api/model", get(api::model::model_info))
        .route(
            "/api/reload",
            post(api::reload::reload).layer(DefaultBodyLimit::max(MAX_MODEL_BYTES)),
        )
        .route("/api/metrics", get(api::metrics::metrics))
        .layer(DefaultBodyLimit::max(api_limit))
        .with_state(state)
}

/// `GET /`: the host waits for the handler to answer before sending invocations.
async fn ready() -> &'static str {
    "ok"
}
