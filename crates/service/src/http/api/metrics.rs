//! `GET /api/metrics`: OpenMetrics text, for Prometheus.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppStateRef;

pub async fn metrics(State(state): AppStateRef) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            // What prometheus-client writes: OpenMetrics text (`# EOF`, `# UNIT`), which
            // Prometheus parses as such only when told.
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
