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
use axum::routing::{self, MethodFilter, MethodRouter};
use axum::Router;
use tracing::Instrument;

pub use error::ApiError;
pub use state::AppState;

/// Reload accepts a model file body up to this size.
const MAX_MODEL_BYTES: usize = 256 << 20;

/// The OpenAPI 3.1 document of every route, served at `/api/openapi.json`; a test holds it to
/// [`Route::ALL`] and `scripts/api-contract.sh` attacks the live handler with it (Schemathesis).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The HTTP methods the handler serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
}

impl Verb {
    /// As OpenAPI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
        }
    }
}

/// Every route, so that the router and the OpenAPI document are built from one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ready,
    ScoreWindows,
    Score,
    ScoreBatch,
    Health,
    HealthStore,
    History,
    Incidents,
    Model,
    Reload,
    Metrics,
    Drift,
    Dashboard,
    DashboardData,
    DashboardDevice,
    OpenApi,
}

impl Route {
    pub const ALL: [Route; 16] = [
        Route::Ready,
        Route::ScoreWindows,
        Route::Score,
        Route::ScoreBatch,
        Route::Health,
        Route::HealthStore,
        Route::History,
        Route::Incidents,
        Route::Model,
        Route::Reload,
        Route::Metrics,
        Route::Drift,
        Route::Dashboard,
        Route::DashboardData,
        Route::DashboardDevice,
        Route::OpenApi,
    ];

    pub fn path(self) -> &'static str {
        match self {
            Route::Ready => "/",
            Route::ScoreWindows => "/ScoreWindows",
            Route::Score => "/api/score",
            Route::ScoreBatch => "/api/score/batch",
            Route::Health => "/api/health",
            Route::HealthStore => "/api/health/store",
            Route::History => "/api/history",
            Route::Incidents => "/api/incidents",
            Route::Model => "/api/model",
            Route::Reload => "/api/reload",
            Route::Metrics => "/api/metrics",
            Route::Drift => "/api/drift",
            Route::Dashboard => "/api/dashboard",
            Route::DashboardData => "/api/dashboard/data",
            Route::DashboardDevice => "/api/dashboard/device",
            Route::OpenApi => "/api/openapi.json",
        }
    }

    pub fn verb(self) -> Verb {
        match self {
            Route::ScoreWindows | Route::Score | Route::ScoreBatch | Route::Reload => Verb::Post,
            _ => Verb::Get,
        }
    }

    fn handler(self) -> MethodRouter<Arc<AppState>> {
        let f = self.verb().filter();
        match self {
            Route::Ready => routing::on(f, ready),
            // The handler reads the body itself: over the limit it answers with a dead letter,
            // not a 413 the host would retry and then drop (`body`).
            Route::ScoreWindows => {
                routing::on(f, invocation::score_windows).layer(DefaultBodyLimit::disable())
            }
            Route::Score => routing::on(f, api::score::score_one),
            Route::ScoreBatch => routing::on(f, api::score::score_batch),
            Route::Health => routing::on(f, api::health::health),
            Route::HealthStore => routing::on(f, api::health::store),
            Route::History => routing::on(f, api::history::history),
            Route::Incidents => routing::on(f, api::incidents::incidents),
            Route::Model => routing::on(f, api::model::model_info),
            Route::Reload => {
                routing::on(f, api::reload::reload).layer(DefaultBodyLimit::max(MAX_MODEL_BYTES))
            }
            Route::Metrics => routing::on(f, api::metrics::metrics),
            Route::Drift => routing::on(f, api::drift::drift),
            Route::Dashboard => routing::on(f, api::dashboard::page),
            Route::DashboardData => routing::on(f, api::dashboard::data),
            Route::DashboardDevice => routing::on(f, api::dashboard::device),
            Route::OpenApi => routing::on(f, openapi),
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let api_limit = state.settings.max_body_bytes;
    Route::ALL
        .iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path(), route.handler())
        })
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

/// `GET /api/openapi.json`: the API's contract.
async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// `GET /`: the host waits for the handler to answer before sending invocations.
async fn ready() -> &'static str {
    "ok"
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::{Route, OPENAPI};

    #[test]
    fn the_openapi_document_lists_exactly_the_routes_the_router_serves() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item")
                    .keys()
                    .filter(|k| ["get", "post", "put", "patch", "delete", "head", "options"].contains(&k.as_str()))
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = Route::ALL
            .iter()
            .map(|r| (r.verb().as_str().to_string(), r.path().to_string()))
            .collect();
        assert_eq!(documented, served, "openapi.json and the router disagree");
        for (method, path) in &documented {
            let op = &doc["paths"][path][method];
            assert!(op["operationId"].is_string(), "{method} {path}: no operationId");
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.contains_key("default"), "{method} {path}: a catch-all response");
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success");
        }
        // An error's `kind` is the dead-letter kinds' closed set.
        let kinds: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["kind"]["oneOf"][1]
            ["enum"]
            .as_array()
            .expect("the kinds")
            .iter()
            .map(|k| k.as_str().expect("a name"))
            .collect();
        let all: Vec<&str> = domain::RejectionKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, all);
    }
}
