//! `GET /api/incidents`.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::history::{listing, Listing};
use super::AppStateRef;
use crate::http::error::ApiError;
use domain::IncidentStatus;
use sinks::IncidentQuery;

/// `GET /api/incidents?device=&status=&since=&limit=`: open incidents first, then the others by
/// last activity (last anomalous window or resolution), newest first; `since` keeps those
/// active at or after it.
pub async fn incidents(
    State(state): AppStateRef,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text(), None))?;
    let Listing { device_id, since, limit } = listing(&params, &["status"])?;
    let status = match params.get("status").filter(|s| !s.is_empty()) {
        Some(text) => Some(text.parse::<IncidentStatus>().map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, e.to_string(), Some("status".into()))
        })?),
        None => None,
    };
    let query = IncidentQuery {
        device_id,
        status,
        since,
        limit,
    };
    let incidents = state
        .store
        .incidents(query)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None))?;
    let open = incidents.iter().filter(|i| i.status == IncidentStatus::Open).count();
    Ok(Json(json!({"count": incidents.len(), "open": open, "incidents": incidents})).into_response())
}
