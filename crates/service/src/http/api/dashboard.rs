//! `GET /api/dashboard`: a live view of the fleet, one self-contained page served from the
//! binary (no CDN, no build step), polling `GET /api/dashboard/data` and, for the drill-down,
//! `GET /api/dashboard/device?id=`.
//!
//! The data comes through the store trait (incidents, open first; the feed; the last hour's
//! anomalies: works on SQLite and Azure SQL alike) and the pipeline's in-memory live view (devices and their recent
//! scores). It is computed at most once a second whatever the number of viewers, so the page
//! cannot slow `ScoreWindows` down.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppStateRef;
use domain::time as timefmt;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use domain::IncidentStatus;
use sinks::{HistoryQuery, IncidentQuery};
use crate::telemetry::metrics::{REFUSED, WINDOWS_SCORED};

const PAGE: &str = include_str!("dashboard.html");
/// Anomalies in the live feed.
const FEED: usize = 50;
/// At most this many anomalies are counted for the last hour (the figure says "at least").
const LAST_HOUR_LIMIT: usize = 1000;
const DEVICES_SHOWN: usize = 200;
/// Incidents shown: the store lists open ones first, so every open incident is shown unless
/// more than this many are open (the count then says "at least").
const INCIDENTS_SHOWN: usize = 30;
const FRESH_FOR: Duration = Duration::from_secs(1);


pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

pub async fn data(State(state): AppStateRef) -> Result<Response, ApiError> {
    if let Ok(last) = state.dashboard.last.lock() {
        if let Some((at, value)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return Ok(Json(value.as_ref().clone()).into_response());
            }
        }
    }
    let value = Arc::new(compute(&state).await?);
    if let Ok(mut last) = state.dashboard.last.lock() {
        *last = Some((Instant::now(), Arc::clone(&value)));
    }
    Ok(Json(value.as_ref().clone()).into_response())
}

async fn compute(state: &AppState) -> Result<Value, ApiError> {
    let unavailable = |e: sinks::StoreError| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string(), None)
    };
    let feed = state
        .store
        .history(HistoryQuery {
            limit: FEED,
            ..HistoryQuery::default()
        })
        .await
        .map_err(unavailable)?;
    // "The last hour" is of data time: up to the newest window scored (or stored).
    let newest_ms = state.live.newest_ms().or_else(|| {
        feed.first()
            .and_then(|r| sinks::unix_ms(&r.window_end))
    });
    let mut by_severity: BTreeMap<String, usize> = ["low", "medium", "high", "critical"]
        .iter()
        .map(|s| (s.to_string(), 0))
        .collect();
    let mut last_hour_capped = false;
    if let Some(newest) = newest_ms {
        let since = timefmt::format(timefmt::from_unix_seconds(
            (newest - 3_600_000).div_euclid(1000),
        ));
        let rows = state
            .store
            .history(HistoryQuery {
                since: Some(since),
                limit: LAST_HOUR_LIMIT,
                device_id: None,
            })
            .await
            .map_err(unavailable)?;
        last_hour_capped = rows.len() == LAST_HOUR_LIMIT;
        for row in rows {
            *by_severity.entry(row.severity.as_str().to_string()).or_default() += 1;
        }
    }
    let incidents = state
        .store
        .incidents(IncidentQuery {
            limit: INCIDENTS_SHOWN,
            ..IncidentQuery::default()
        })
        .await
        .map_err(unavailable)?;
    let open = incidents
        .iter()
        .filter(|i| i.status == IncidentStatus::Open)
        .count();
    let devices = state.live.devices();
    let model = state.model.get();
    // The challenger in shadow and how it compares this hour (the newest hour recorded).
    let challenger = state.model.challenger().map(|(c, _)| {
        let shadow = state
            .model
            .shadow
            .report(&c.info.model_version)
            .and_then(|r| r.hours.into_iter().next())
            .map(|h| json!({
                "hour": h.hour, "windows": h.windows, "both": h.both,
                "champion_only": h.champion_only, "challenger_only": h.challenger_only,
                "neither": h.neither, "champion_anomaly_rate": h.champion_anomaly_rate,
                "challenger_anomaly_rate": h.challenger_anomaly_rate,
            }));
        json!({"version": c.info.model_version, "detector": c.info.detector, "threshold": c.info.threshold, "shadow": shadow})
    });
    let metrics = &state.metrics;
    Ok(json!({
        "generated_at": timefmt::format(timefmt::now()),
        "model": {
            "version": model.info.model_version,
            "detector": model.info.detector,
            "threshold": model.info.threshold,
            "channels": model.info.channels,
        },
        "challenger": challenger,
        "drift": state.model.drift().map(|d| json!({"status": d.status, "windows": d.windows, "hours": d.hours,
            "worst": d.features.iter().filter_map(|f| Some((&f.feature, f.psi?))).max_by(|a, b| a.1.total_cmp(&b.1)).map(|(feature, psi)| json!({"feature": feature, "psi": psi}))})),
        "counters": {
            "windows_scored": metrics.total(&WINDOWS_SCORED),
            "refused": metrics.total(&REFUSED),
        },
        "fleet": {
            "devices_seen": devices.len(),
            "newest_window_end": newest_ms.map(|ms| timefmt::format(timefmt::from_unix_seconds(ms.div_euclid(1000)))),
            "anomalies_last_hour": by_severity,
            "anomalies_last_hour_capped": last_hour_capped,
            "incidents_open": open,
            "incidents_open_capped": open == INCIDENTS_SHOWN,
        },
        "incidents": incidents,
        "devices": devices.into_iter().take(DEVICES_SHOWN).collect::<Vec<_>>(),
        "feed": feed.iter().map(|r| json!({
            "device_id": r.device_id, "window_end": r.window_end, "severity": r.severity,
            "top_channel": r.top_channel, "explanation": r.explanation, "score": r.score,
            "threshold": r.threshold, "model_version": r.model_version,
        })).collect::<Vec<_>>(),
    }))
}

/// `GET /api/dashboard/device?id=`: the device's recent scores and contributions.
pub async fn device(
    State(state): AppStateRef,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text(), None))?;
    let id = params.get("id").filter(|s| !s.is_empty()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "`id` names the device",
            Some("id".into()),
        )
    })?;
    let points = state.live.points(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no recent windows of device {id}"),
            Some("id".into()),
        )
    })?;
    let model = state.model.get();
    Ok(Json(json!({
        "device_id": id,
        "threshold": model.info.threshold,
        "channels": model.info.channels,
        "points": points,
    }))
    .into_response())
}
