//! ⑤ The edge. Thin: each handler parses its input, calls one stage, and maps errors to statuses.
//!
//! `POST /{FunctionName}` serves host invocations (custom-handler protocol, [`invocation`]);
//! `/api/*` serves the HTTP functions ([`api`]), which the host forwards unchanged
//! (`enableForwardingHttpRequest`).

pub mod api;
pub mod body;
pub mod error;
pub mod invocation;
pub mod probe;
pub mod state;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tracing::Instrument;

pub use error::ApiError;
pub use state::AppState;

/// Reload accepts a model file body up to this size.
const MAX_MODEL_BYTES: usize = 256 << 20;

pub fn router(state: Arc<AppState>) -> Router {
    let api_limit = state.settings.max_body_bytes;
    Router::new()
        .route("/", get(ready))
        .route(
            "/ScoreWindows",
            // The handler reads the body itself: over the limit it answers with a dead letter,
            // not a 413 the host would retry and then drop (`body`).
            post(invocation::score_windows).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/score", post(api::score::score_one))
        .route("/api/score/batch", post(api::score::score_batch))
        .route("/api/health", get(api::health::health))
        .route("/api/health/store", get(api::health::store))
        .route("/api/history", get(api::history::history))
        .route("/api/model", get(api::model::model_info))
        .route(
            "/api/reload",
            post(api::reload::reload).layer(DefaultBodyLimit::max(MAX_MODEL_BYTES)),
        )
        .route("/api/metrics", get(api::metrics::metrics))
        .route("/api/drift", get(api::drift::drift))
        .route("/api/dashboard", get(api::dashboard::page))
        .route("/api/dashboard/data", get(api::dashboard::data))
        .route("/api/dashboard/device", get(api::dashboard::device))
        .layer(DefaultBodyLimit::max(api_limit))
        .layer(axum::middleware::from_fn(request_span))
        .with_state(state)
}

/// A request span for every `/api/*` call (an Application Insights request named after the
/// route, with its status). Invocations (`/ScoreWindows`) make their own span.
async fn request_span(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if !path.starts_with("/api/") {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |m| m.as_str().to_string());
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{} {route}", request.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = request.method().as_str(),
        http.route = route.as_str(),
        url.path = path.as_str(),
        http.response.status_code = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
    response
}

/// `GET /`: the host waits for the handler to answer before sending invocations.
async fn ready() -> &'static str {
    "ok"
}
