//! `GET /api/metrics`: Prometheus text.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppStateRef;

pub async fn metrics(State(state): AppStateRef) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
