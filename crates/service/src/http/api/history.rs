//! `GET /api/history`.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppStateRef;
use domain::time as timefmt;
use crate::http::error::ApiError;
use sinks::HistoryQuery;

/// The most history rows one request returns.
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// The filters `/api/history` and `/api/incidents` share.
pub struct Listing {
    pub device_id: Option<String>,
    pub since: Option<String>,
    pub limit: usize,
}

/// Reads `device`, `since` and `limit` (and the names in `extra`, left for the caller); any
/// other parameter is refused, naming it.
pub fn listing(params: &HashMap<String, String>, extra: &[&str]) -> Result<Listing, ApiError> {
    let bad = |field: &str, message: String| {
        ApiError::new(StatusCode::BAD_REQUEST, message, Some(field.to_string()))
    };
    // `code` is the function key, which the host checks and forwards with the query string.
    let known = |k: &str| ["device", "since", "limit", "code"].contains(&k) || extra.contains(&k);
    if let Some(unknown) = params.keys().find(|k| !known(k)) {
        let expected = ["device", "since", "limit"]
            .iter()
            .chain(extra)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        return Err(bad(
            unknown,
            format!("unknown query parameter `{unknown}` (expected {expected})"),
        ));
    }
    let since = match params.get("since").filter(|s| !s.is_empty()) {
        Some(text) => Some(timefmt::canonical(text).ok_or_else(|| {
            bad(
                "since",
                format!("`since` is not an RFC 3339 timestamp: {text}"),
            )
        })?),
        None => None,
    };
    let limit = match params.get("limit").filter(|s| !s.is_empty()) {
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_HISTORY_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(
                    "limit",
                    format!(
                        "`limit` must be a whole number from 1 to {MAX_HISTORY_LIMIT}, got {text}"
                    ),
                ))
            }
        },
        None => 100,
    };
    Ok(Listing {
        device_id: params.get("device").filter(|s| !s.is_empty()).cloned(),
        since,
        limit,
    })
}

/// `GET /api/history?device=&since=&limit=`: stored anomalies, newest window first.
pub async fn history(
    State(state): AppStateRef,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text(), None))?;
    let Listing { device_id, since, limit } = listing(&params, &[])?;
    let query = HistoryQuery {
        device_id,
        since,
        limit,
    };
    let rows = state
        .store
        .history(query)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None))?;
    Ok(Json(json!({"count": rows.len(), "anomalies": rows})).into_response())
}
